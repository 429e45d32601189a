/*-------------------------------------------------------------------------
 *
 * id_snowflake.c
 *	  Snowflake ids (time | node id | sequence) whose clock never goes
 *	  backwards, across restarts too: snowflake_id().
 *
 * The state of a database's generator lives in a slot of the id table
 * (id_segment.c): the atomic cursor packs the millisecond and sequence of
 * the last id.  Before an id of millisecond m is handed out, a high-water
 * mark >= m is made durable in the sequence order_engine.snowflake_hwm
 * (id_store.c), leased up to OE_SNOWFLAKE_LEASE_MS ahead so that this
 * costs one WAL flush per lease, not one per id.  After a restart the
 * generator starts above the mark: with a sane clock it waits at most the
 * lease; with the clock set back further than order_engine.snowflake_max_wait
 * it refuses (OE011) instead of repeating ids.  The same rule covers a clock
 * stepping back while the server runs.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "errors.h"
#include "ids.h"

#define OE_SNOWFLAKE_SEQ_NAME	"snowflake_hwm"

static OeIdSlot *sf_slot = NULL;
static uint32 sf_generation = 0;
static Oid	sf_seqoid = InvalidOid;
static Oid	sf_dboid = InvalidOid;
static LocalTransactionId sf_checked_lxid = InvalidLocalTransactionId;

static int64
oe_snowflake_lease(void)
{
	return Min(OE_SNOWFLAKE_LEASE_MS, OeSnowflakeMaxWait);
}

/*
 * Load the persisted mark, or push it to need_ms plus the lease.  The
 * generator must not use a millisecond at or below the mark it loaded, so
 * the state starts "sequence exhausted at the mark".
 */
static void
oe_snowflake_renew(OeIdSlot *s, uint32 generation, int64 need_ms)
{
	LWLockAcquire(s->lock, LW_EXCLUSIVE);
	if (pg_atomic_read_u32(&s->generation) == generation)
	{
		if (!s->loaded)
		{
			int64		mark = Max(OeIdStoreRead(s->seqoid), 0);

			s->max_id = mark;
			s->loaded = true;
			pg_atomic_write_u64(&s->cursor,
								((uint64) mark << OE_SNOWFLAKE_SEQ_BITS) | OE_SNOWFLAKE_MAX_SEQ);
			pg_write_barrier();
			pg_atomic_write_u64(&s->cur_end, (uint64) mark);
		}
		else if ((uint64) need_ms > pg_atomic_read_u64(&s->cur_end))
		{
			int64		mark = need_ms + oe_snowflake_lease();

			OeIdStoreWrite(s->seqoid, mark);
			s->max_id = mark;
			s->last_fetch_at = GetCurrentTimestamp();
			s->fetches++;
			pg_atomic_write_u64(&s->cur_end, (uint64) mark);
		}
	}
	LWLockRelease(s->lock);
}

static void
oe_snowflake_attach(void)
{
	Oid			seqoid = get_relname_relid(OE_SNOWFLAKE_SEQ_NAME,
										   get_namespace_oid(OE_SCHEMA_NAME, false));

	if (!OidIsValid(seqoid))
		elog(ERROR, "sequence %s.%s is missing", OE_SCHEMA_NAME, OE_SNOWFLAKE_SEQ_NAME);
	sf_slot = OeIdSlotAttach(OE_SLOT_SNOWFLAKE, "", seqoid, 1, &sf_generation);
	sf_seqoid = seqoid;
	sf_dboid = MyDatabaseId;
	sf_checked_lxid = MyProc->lxid;
	oe_snowflake_renew(sf_slot, sf_generation, 0);
}

static void
oe_snowflake_sleep_ms(int64 ms)
{
	pg_usleep(ms * 1000L);
	CHECK_FOR_INTERRUPTS();
}

int64
OeSnowflakeId(void)
{
	uint64		old;
	uint64		new;
	int64		new_ms;

	OeRequirePreload();
	PreventCommandIfReadOnly("snowflake_id()");

	if (sf_slot == NULL || sf_dboid != MyDatabaseId)
		oe_snowflake_attach();
	else if (sf_checked_lxid != MyProc->lxid)
	{
		if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(sf_seqoid)) ||
			pg_atomic_read_u32(&sf_slot->generation) != sf_generation)
			oe_snowflake_attach();
		sf_checked_lxid = MyProc->lxid;
	}

	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();
		int64		now_ms = (now - OE_SNOWFLAKE_EPOCH) / 1000;
		int64		last_ms;
		int64		seq;

		old = pg_atomic_read_u64(&sf_slot->cursor);
		last_ms = (int64) (old >> OE_SNOWFLAKE_SEQ_BITS);
		seq = (int64) (old & OE_SNOWFLAKE_MAX_SEQ);

		if (now_ms < last_ms)
		{
			int64		behind = last_ms - now_ms;

			if (behind > OeSnowflakeMaxWait || now_ms < 0)
				ereport(ERROR,
						(errcode(ERRCODE_OE_CLOCK_MOVED_BACKWARDS),
						 errmsg("clock moved backwards by " INT64_FORMAT " ms, refusing to generate snowflake ids",
								behind),
						 errdetail("Ids up to %s may have been handed out already; the clock says %s and order_engine.snowflake_max_wait is %d ms.",
								   timestamptz_to_str(OE_SNOWFLAKE_EPOCH + last_ms * 1000),
								   timestamptz_to_str(now), OeSnowflakeMaxWait),
						 errhint("Correct the system clock; snowflake_id() works again once the clock passes the time above.")));
			oe_snowflake_sleep_ms(Min(behind, 10));
			continue;
		}
		if (now_ms == last_ms)
		{
			if (seq == OE_SNOWFLAKE_MAX_SEQ)
			{
				/* 4096 ids in this millisecond: wait for the next one */
				pg_usleep(50);
				continue;
			}
			new = old + 1;
		}
		else
			new = (uint64) now_ms << OE_SNOWFLAKE_SEQ_BITS;

		new_ms = (int64) (new >> OE_SNOWFLAKE_SEQ_BITS);
		if ((uint64) new_ms > pg_atomic_read_u64(&sf_slot->cur_end))
		{
			oe_snowflake_renew(sf_slot, sf_generation, new_ms);
			continue;
		}
		if (pg_atomic_compare_exchange_u64(&sf_slot->cursor, &old, new))
		{
			if (pg_atomic_read_u32(&sf_slot->generation) != sf_generation)
			{
				oe_snowflake_attach();
				continue;
			}
			break;
		}
	}

	return (new_ms << (OE_SNOWFLAKE_NODE_BITS + OE_SNOWFLAKE_SEQ_BITS)) |
		((int64) OeNodeId << OE_SNOWFLAKE_SEQ_BITS) |
		(int64) (new & OE_SNOWFLAKE_MAX_SEQ);
}

PG_FUNCTION_INFO_V1(oe_snowflake_id);
Datum
oe_snowflake_id(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(OeSnowflakeId());
}
