/*-------------------------------------------------------------------------
 *
 * id_snowflake.c
 *	  Snowflake ids (time | node id | sequence), unique per server and
 *	  never going backwards, across restarts too: snowflake_id().
 *
 * One generator per server, shared by every database: ids of two databases
 * of one server never collide (one node id, one clock, one cursor).  Its
 * state is a few atomics in shared memory: the cursor packs the millisecond
 * and sequence of the last id and moves by compare-and-swap; the mark is
 * the durable high-water mark in milliseconds.
 *
 * The mark must be seen by every database, so it lives in a file of the
 * data directory, OE_SNOWFLAKE_HWM_FILE (written to a temporary file,
 * fsynced, durably renamed).  Before an id of millisecond m is handed out
 * the file holds a mark >= m, leased up to OE_SNOWFLAKE_LEASE_MS ahead so
 * that this costs one write per lease, not one per id.  Renewals are
 * serialised by a server-wide heavyweight lock (an advisory lock tag of
 * database 0, which no SQL caller can take), so a caller waiting for one
 * waits interruptibly; no LWLock is held across the file I/O.
 *
 * Each database's sequence order_engine.snowflake_hwm is a second, lower
 * bound: the mark of the last renewal made from that database is copied
 * there (best effort: skipped while someone holds the sequence locked, as
 * ALTER SEQUENCE does), and a backend folds its database's value into the
 * generator when it attaches.  It keeps the mark in the WAL (a promoted
 * standby starts above it) and lets an operator push the mark ahead.
 *
 * After a restart the generator starts above the file's mark: with a sane
 * clock it waits at most the lease; with the clock set back further than
 * order_engine.snowflake_max_wait it refuses (OE011) instead of repeating
 * ids.  The same rule covers a clock stepping back while the server runs.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <unistd.h>

#include "catalog/namespace.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "common/errors.h"
#include "common/lock_tags.h"
#include "ids/ids.h"

#define OE_SNOWFLAKE_SEQ_NAME	"snowflake_hwm"
#define OE_SNOWFLAKE_HWM_TMP	OE_SNOWFLAKE_HWM_FILE ".tmp"

typedef struct OeSnowflakeShared
{
	pg_atomic_uint64 cursor;	/* (ms << 12 | sequence) of the last id */
	pg_atomic_uint64 mark;		/* durable high-water mark (ms), in the file */
	pg_atomic_uint32 loaded;	/* the file has been read since the start */
} OeSnowflakeShared;

static OeSnowflakeShared *sf = NULL;

/* this backend's database: its snowflake_hwm, and when we last checked it */
static Oid	sf_dboid = InvalidOid;
static Oid	sf_seqoid = InvalidOid;
static LocalTransactionId sf_checked_lxid = InvalidLocalTransactionId;

Size
OeSnowflakeShmemSize(void)
{
	return MAXALIGN(sizeof(OeSnowflakeShared));
}

/* caller holds AddinShmemInitLock */
void
OeSnowflakeShmemInit(void)
{
	bool		found;

	sf = ShmemInitStruct("order_engine snowflake", sizeof(OeSnowflakeShared),
						 &found);
	if (!found)
	{
		pg_atomic_init_u64(&sf->cursor, 0);
		pg_atomic_init_u64(&sf->mark, 0);
		pg_atomic_init_u32(&sf->loaded, 0);
	}
}

static int64
oe_snowflake_lease(void)
{
	return Min(OE_SNOWFLAKE_LEASE_MS, OeSnowflakeMaxWait);
}

/*
 * Never hand out a millisecond at or below mark_ms: move the cursor to
 * "sequence exhausted at mark_ms" unless it is beyond that already.
 */
static void
oe_snowflake_fold(int64 mark_ms)
{
	uint64		want = ((uint64) Max(mark_ms, 0) << OE_SNOWFLAKE_SEQ_BITS) |
		OE_SNOWFLAKE_MAX_SEQ;
	uint64		old = pg_atomic_read_u64(&sf->cursor);

	while (old < want &&
		   !pg_atomic_compare_exchange_u64(&sf->cursor, &old, want))
		;
}

/* the mark in the file; 0 when there is none yet */
static int64
oe_snowflake_file_read(void)
{
	FILE	   *f = AllocateFile(OE_SNOWFLAKE_HWM_FILE, "r");
	long long	v;
	int			n;

	if (f == NULL)
	{
		if (errno == ENOENT)
			return 0;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open file \"%s\": %m", OE_SNOWFLAKE_HWM_FILE)));
	}
	n = fscanf(f, "%lld", &v);
	FreeFile(f);
	if (n != 1 || v < 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("file \"%s\" does not hold a snowflake high-water mark",
						OE_SNOWFLAKE_HWM_FILE),
				 errdetail("It must hold one non-negative number of milliseconds since 2024-01-01 UTC."),
				 errhint("Write into it a time in milliseconds at or after the last snowflake id handed out.")));
	return (int64) v;
}

/* durably replace the file's mark: temporary file, fsync, durable rename */
static void
oe_snowflake_file_write(int64 mark)
{
	char		buf[32];
	int			len = snprintf(buf, sizeof(buf), INT64_FORMAT "\n", mark);
	int			fd;

	fd = OpenTransientFile(OE_SNOWFLAKE_HWM_TMP, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create file \"%s\": %m", OE_SNOWFLAKE_HWM_TMP)));
	errno = 0;
	if (write(fd, buf, len) != len)
	{
		int			save_errno = errno;

		CloseTransientFile(fd);
		errno = save_errno ? save_errno : ENOSPC;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", OE_SNOWFLAKE_HWM_TMP)));
	}
	if (pg_fsync(fd) != 0)
		ereport(data_sync_elevel(ERROR),
				(errcode_for_file_access(),
				 errmsg("could not fsync file \"%s\": %m", OE_SNOWFLAKE_HWM_TMP)));
	if (CloseTransientFile(fd) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not close file \"%s\": %m", OE_SNOWFLAKE_HWM_TMP)));
	(void) durable_rename(OE_SNOWFLAKE_HWM_TMP, OE_SNOWFLAKE_HWM_FILE, ERROR);
}

/*
 * Copy a renewed mark into this database's snowflake_hwm, if nobody holds
 * the sequence: the file is the truth, the sequence only a lower bound, so
 * we never wait for it.  The session lock in ShareUpdateExclusiveLock
 * (conflicting with itself and ALTER/DROP, not with setval) keeps two
 * copies from crossing.
 */
static void
oe_snowflake_copy_to_db(int64 mark)
{
	LOCKTAG		tag;

	if (!OidIsValid(sf_seqoid) || sf_dboid != MyDatabaseId)
		return;
	SET_LOCKTAG_RELATION(tag, MyDatabaseId, sf_seqoid);
	if (LockAcquire(&tag, ShareUpdateExclusiveLock, true, true) ==
		LOCKACQUIRE_NOT_AVAIL)
		return;
	PG_TRY();
	{
		AcceptInvalidationMessages();
		/* dropped (the extension re-created elsewhere): next transaction re-attaches */
		if (SearchSysCacheExists1(RELOID, ObjectIdGetDatum(sf_seqoid)) &&
			OeIdStoreRead(sf_seqoid) < mark)
			OeIdStoreWrite(sf_seqoid, mark);
	}
	PG_FINALLY();
	{
		LockRelease(&tag, ShareUpdateExclusiveLock, true);
	}
	PG_END_TRY();
}

/*
 * Load the file's mark once per server start, and push the mark to
 * need_ms plus the lease if it is below need_ms.  Under the server-wide
 * renewal lock: one renewal at a time, and a caller that waited finds the
 * work done.  The file is durable before the new mark is published.
 */
static void
oe_snowflake_renew(int64 need_ms)
{
	LOCKTAG		tag;
	volatile int64 renewed = -1;

	OeLockTagSnowflake(&tag);
	(void) LockAcquire(&tag, ExclusiveLock, true, false);
	PG_TRY();
	{
		if (pg_atomic_read_u32(&sf->loaded) == 0)
		{
			int64		mark = oe_snowflake_file_read();

			oe_snowflake_fold(mark);
			pg_atomic_write_u64(&sf->mark, (uint64) mark);
			pg_write_barrier();
			pg_atomic_write_u32(&sf->loaded, 1);
		}
		if ((uint64) need_ms > pg_atomic_read_u64(&sf->mark))
		{
			int64		mark = need_ms + oe_snowflake_lease();

			oe_snowflake_file_write(mark);
			pg_atomic_write_u64(&sf->mark, (uint64) mark);
			renewed = mark;
		}
	}
	PG_FINALLY();
	{
		LockRelease(&tag, ExclusiveLock, true);
	}
	PG_END_TRY();

	if (renewed >= 0)
		oe_snowflake_copy_to_db(renewed);
}

/*
 * (Re)attach this backend to its database: find snowflake_hwm afresh (the
 * extension may have been dropped and created again) and fold its value
 * into the generator.
 */
static void
oe_snowflake_attach(void)
{
	Oid			nsp;
	Oid			seqoid = InvalidOid;

	AcceptInvalidationMessages();
	nsp = get_namespace_oid(OE_SCHEMA_NAME, true);
	if (OidIsValid(nsp))
		seqoid = get_relname_relid(OE_SNOWFLAKE_SEQ_NAME, nsp);
	if (!OidIsValid(seqoid))
	{
		sf_seqoid = InvalidOid;
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"order_engine\" is not installed in this database"),
				 errdetail("The sequence %s.%s is missing.", OE_SCHEMA_NAME,
						   OE_SNOWFLAKE_SEQ_NAME),
				 errhint("Run CREATE EXTENSION order_engine.")));
	}
	oe_snowflake_fold(OeIdStoreRead(seqoid));
	sf_seqoid = seqoid;
	sf_dboid = MyDatabaseId;
	sf_checked_lxid = MyProc->lxid;
}

/* wait a little, for the clock; cancel and terminate end the wait */
static void
oe_snowflake_sleep_us(long us)
{
	pg_usleep(us);
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

	if (pg_atomic_read_u32(&sf->loaded) == 0)
		oe_snowflake_renew(0);
	pg_read_barrier();

	if (!OidIsValid(sf_seqoid) || sf_dboid != MyDatabaseId)
		oe_snowflake_attach();
	else if (sf_checked_lxid != MyProc->lxid)
	{
		if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(sf_seqoid)))
			oe_snowflake_attach();
		sf_checked_lxid = MyProc->lxid;
	}

	for (;;)
	{
		TimestampTz now;
		int64		now_ms;
		int64		last_ms;
		int64		seq;

		CHECK_FOR_INTERRUPTS();
		now = GetCurrentTimestamp();
		now_ms = (now - OE_SNOWFLAKE_EPOCH) / 1000;
		old = pg_atomic_read_u64(&sf->cursor);
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
			oe_snowflake_sleep_us(Min(behind, 10) * 1000L);
			continue;
		}
		if (now_ms == last_ms)
		{
			if (seq == OE_SNOWFLAKE_MAX_SEQ)
			{
				/* 4096 ids in this millisecond: wait for the next one */
				oe_snowflake_sleep_us(50);
				continue;
			}
			new = old + 1;
		}
		else
			new = (uint64) now_ms << OE_SNOWFLAKE_SEQ_BITS;

		new_ms = (int64) (new >> OE_SNOWFLAKE_SEQ_BITS);
		if ((uint64) new_ms > pg_atomic_read_u64(&sf->mark))
		{
			oe_snowflake_renew(new_ms);
			continue;
		}
		if (pg_atomic_compare_exchange_u64(&sf->cursor, &old, new))
			break;
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
