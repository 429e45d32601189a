/*-------------------------------------------------------------------------
 *
 * id_segment.c
 *	  The shared table of id slots of the Leaf-style segment allocator:
 *	  its shared memory, attaching a tag's slot, reclaiming dead slots,
 *	  and the state behind the id_segments view.
 *
 * Each tag in use has a slot in shared memory keyed by (database, tag);
 * what a slot holds and how ranges are drawn from it is id_range.c's
 * (the design is in docs/ids.md).
 *
 * Slots are reclaimed when the table is full: those of databases that no
 * longer exist (DROP DATABASE does not tell us) and those of tags of this
 * database whose sequence is gone.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "ids/ids.h"

#define OE_IDS_TRANCHE	"order_engine_ids"

typedef struct OeIdShared
{
	LWLock	   *lock;			/* the slot table: shared to look up, exclusive to add */
	int			nslots;
	OeIdSlot	slots[FLEXIBLE_ARRAY_MEMBER];
} OeIdShared;

static OeIdShared *oe_ids = NULL;

/* ---------------------------------------------------------------------
 * shared memory
 * ---------------------------------------------------------------------
 */
Size
OeIdsShmemSize(void)
{
	RequestNamedLWLockTranche(OE_IDS_TRANCHE, OeMaxIdTags + 1);
	return add_size(MAXALIGN(add_size(offsetof(OeIdShared, slots),
									  mul_size(OeMaxIdTags, sizeof(OeIdSlot)))),
					OeSnowflakeShmemSize());
}

void
OeIdsShmemInit(void)
{
	bool		found;
	Size		size = add_size(offsetof(OeIdShared, slots),
								mul_size(OeMaxIdTags, sizeof(OeIdSlot)));

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	oe_ids = ShmemInitStruct("order_engine ids", size, &found);
	if (!found)
	{
		LWLockPadded *locks = GetNamedLWLockTranche(OE_IDS_TRANCHE);

		memset(oe_ids, 0, size);
		oe_ids->lock = &locks[0].lock;
		oe_ids->nslots = OeMaxIdTags;
		for (int i = 0; i < OeMaxIdTags; i++)
		{
			OeIdSlot   *s = &oe_ids->slots[i];

			s->lock = &locks[i + 1].lock;
			pg_atomic_init_u32(&s->generation, 0);
			pg_atomic_init_u64(&s->cursor, 0);
			pg_atomic_init_u64(&s->cur_end, 0);
			pg_atomic_init_u64(&s->prefetch_at, PG_UINT64_MAX);
		}
	}
	OeSnowflakeShmemInit();
	LWLockRelease(AddinShmemInitLock);
}

/* ---------------------------------------------------------------------
 * the slot table
 * ---------------------------------------------------------------------
 */
static int
oe_slot_find(OeIdSlotKind kind, const char *tag)
{
	for (int i = 0; i < oe_ids->nslots; i++)
	{
		OeIdSlot   *s = &oe_ids->slots[i];

		if (s->kind == kind && s->dboid == MyDatabaseId &&
			strcmp(s->tag, tag) == 0)
			return i;
	}
	return -1;
}

/*
 * Make s serve (kind, tag, seqoid) from scratch.  The generation moves
 * first, so that a backend still drawing from the old state notices and
 * drops what it drew.  Caller holds the table lock exclusively.
 */
static void
oe_slot_reset(OeIdSlot *s, OeIdSlotKind kind, const char *tag, Oid seqoid,
			  int64 base_step)
{
	LWLockAcquire(s->lock, LW_EXCLUSIVE);
	pg_atomic_fetch_add_u32(&s->generation, 1);
	pg_atomic_write_u64(&s->cur_end, 0);
	pg_atomic_write_u64(&s->prefetch_at, PG_UINT64_MAX);
	pg_write_barrier();
	pg_atomic_write_u64(&s->cursor, 0);
	s->kind = kind;
	s->dboid = MyDatabaseId;
	s->seqoid = seqoid;
	strlcpy(s->tag, tag, sizeof(s->tag));
	s->loaded = false;
	s->max_id = 0;
	s->cur_start = 0;
	s->next_start = s->next_end = 0;
	s->next_ready = false;
	s->base_step = base_step;
	s->step = base_step;
	s->last_fetch_at = 0;
	s->fetches = 0;
	LWLockRelease(s->lock);
}

/*
 * Give s back to the free list.  The generation moves, so a backend that
 * still uses it (a tag dropped in this database) re-resolves.  Caller
 * holds the table lock exclusively.
 */
static void
oe_slot_free(OeIdSlot *s)
{
	LWLockAcquire(s->lock, LW_EXCLUSIVE);
	pg_atomic_fetch_add_u32(&s->generation, 1);
	pg_atomic_write_u64(&s->cur_end, 0);
	pg_atomic_write_u64(&s->prefetch_at, PG_UINT64_MAX);
	s->kind = OE_SLOT_FREE;
	s->dboid = InvalidOid;
	s->seqoid = InvalidOid;
	s->tag[0] = '\0';
	s->loaded = false;
	s->next_ready = false;
	LWLockRelease(s->lock);
}

/*
 * Free the slots that serve nobody any more: those of a database that no
 * longer exists (pg_database, a shared catalog, seen through the syscache
 * from any database), and those of this database whose tag's sequence is
 * gone.  The catalog lookups may read pages, so they run without the table
 * lock: candidates are noted under it in shared mode, checked, and freed
 * under it in exclusive mode only if nobody took them over meanwhile.
 * Returns how many were freed.
 */
static int
oe_slots_reclaim(void)
{
	int			n = oe_ids->nslots;
	Oid		   *dbs = palloc(sizeof(Oid) * n);
	Oid		   *seqs = palloc(sizeof(Oid) * n);
	uint32	   *gens = palloc(sizeof(uint32) * n);
	bool	   *dead = palloc0(sizeof(bool) * n);
	int			freed = 0;

	/* see the drops that committed before we got here */
	AcceptInvalidationMessages();

	LWLockAcquire(oe_ids->lock, LW_SHARED);
	for (int i = 0; i < n; i++)
	{
		OeIdSlot   *s = &oe_ids->slots[i];

		dbs[i] = s->kind == OE_SLOT_FREE ? InvalidOid : s->dboid;
		seqs[i] = s->seqoid;
		gens[i] = pg_atomic_read_u32(&s->generation);
	}
	LWLockRelease(oe_ids->lock);

	for (int i = 0; i < n; i++)
	{
		if (!OidIsValid(dbs[i]))
			continue;
		if (dbs[i] == MyDatabaseId)
			dead[i] = !SearchSysCacheExists1(RELOID, ObjectIdGetDatum(seqs[i]));
		else
			dead[i] = !SearchSysCacheExists1(DATABASEOID, ObjectIdGetDatum(dbs[i]));
	}

	LWLockAcquire(oe_ids->lock, LW_EXCLUSIVE);
	for (int i = 0; i < n; i++)
	{
		OeIdSlot   *s = &oe_ids->slots[i];

		if (dead[i] && s->kind != OE_SLOT_FREE && s->dboid == dbs[i] &&
			s->seqoid == seqs[i] &&
			pg_atomic_read_u32(&s->generation) == gens[i])
		{
			oe_slot_free(s);
			freed++;
		}
	}
	LWLockRelease(oe_ids->lock);

	pfree(dbs);
	pfree(seqs);
	pfree(gens);
	pfree(dead);
	return freed;
}

/*
 * The slot serving (this database, kind, tag) with the given sequence:
 * found, or taken from the free ones.  A slot for the same tag with another
 * sequence belongs to a tag that was dropped and created again; it starts
 * over.  When no slot is free, the dead ones are reclaimed first.
 */
OeIdSlot *
OeIdSlotAttach(OeIdSlotKind kind, const char *tag, Oid seqoid,
			   int64 base_step, uint32 *generation)
{
	int			i;
	OeIdSlot   *s;
	bool		reclaimed = false;

	LWLockAcquire(oe_ids->lock, LW_SHARED);
	i = oe_slot_find(kind, tag);
	if (i >= 0 && oe_ids->slots[i].seqoid == seqoid)
	{
		s = &oe_ids->slots[i];
		*generation = pg_atomic_read_u32(&s->generation);
		LWLockRelease(oe_ids->lock);
		return s;
	}
	LWLockRelease(oe_ids->lock);

	for (;;)
	{
		LWLockAcquire(oe_ids->lock, LW_EXCLUSIVE);
		i = oe_slot_find(kind, tag);
		if (i >= 0 && oe_ids->slots[i].seqoid != seqoid)
			oe_slot_reset(&oe_ids->slots[i], kind, tag, seqoid, base_step);
		if (i < 0)
		{
			for (i = 0; i < oe_ids->nslots; i++)
				if (oe_ids->slots[i].kind == OE_SLOT_FREE)
					break;
			if (i == oe_ids->nslots)
			{
				LWLockRelease(oe_ids->lock);
				if (!reclaimed)
				{
					reclaimed = true;
					(void) oe_slots_reclaim();
					continue;
				}
				ereport(ERROR,
						(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
						 errmsg("too many id tags in use"),
						 errdetail("All %d slots of order_engine.max_id_tags are taken.",
								   oe_ids->nslots),
						 errhint("Raise order_engine.max_id_tags and restart the server.")));
			}
			oe_slot_reset(&oe_ids->slots[i], kind, tag, seqoid, base_step);
		}
		break;
	}
	s = &oe_ids->slots[i];
	*generation = pg_atomic_read_u32(&s->generation);
	LWLockRelease(oe_ids->lock);
	return s;
}

/* ---------------------------------------------------------------------
 * the id_segments view
 * ---------------------------------------------------------------------
 */

/*
 * id_segment_state(): the slots of the current database, as the
 * id_segments view shows them.
 */
PG_FUNCTION_INFO_V1(oe_id_segment_state);
Datum
oe_id_segment_state(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	OeRequirePreload();
	InitMaterializedSRF(fcinfo, 0);

	for (int i = 0; i < oe_ids->nslots; i++)
	{
		OeIdSlot   *s = &oe_ids->slots[i];
		Datum		values[9];
		bool		nulls[9] = {0};
		char		tag[OE_ID_TAG_MAXLEN + 1];
		uint64		cursor,
					end;
		int64		cur_start,
					next_start,
					next_end,
					step;
		bool		next_ready;
		TimestampTz last_fetch_at;
		uint64		fetches;
		int64		left;

		LWLockAcquire(s->lock, LW_SHARED);
		if (s->kind != OE_SLOT_SEGMENT || s->dboid != MyDatabaseId)
		{
			LWLockRelease(s->lock);
			continue;
		}
		strlcpy(tag, s->tag, sizeof(tag));
		end = pg_atomic_read_u64(&s->cur_end);
		cursor = pg_atomic_read_u64(&s->cursor);
		cur_start = s->cur_start;
		next_ready = s->next_ready;
		next_start = s->next_start;
		next_end = s->next_end;
		step = s->step;
		last_fetch_at = s->last_fetch_at;
		fetches = s->fetches;
		LWLockRelease(s->lock);

		values[0] = CStringGetTextDatum(tag);
		values[1] = Int64GetDatum(step);
		left = 0;
		if (end > 0)
		{
			values[2] = Int64GetDatum(cur_start);
			values[3] = Int64GetDatum((int64) end - 1);
			if (cursor < end)
				left = (int64) (end - cursor);
		}
		else
			nulls[2] = nulls[3] = true;
		if (next_ready)
		{
			values[4] = Int64GetDatum(next_start);
			values[5] = Int64GetDatum(next_end - 1);
			left += next_end - next_start;
		}
		else
			nulls[4] = nulls[5] = true;
		values[6] = Int64GetDatum(left);
		values[7] = Int64GetDatum((int64) fetches);
		if (last_fetch_at != 0)
			values[8] = TimestampTzGetDatum(last_fetch_at);
		else
			nulls[8] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
