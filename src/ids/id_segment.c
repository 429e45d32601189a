/*-------------------------------------------------------------------------
 *
 * id_segment.c
 *	  Leaf-style segment allocator: the shared table of id slots, the lock
 *	  free hot path, the double buffer and the dynamic step; next_id(),
 *	  next_ids() and the state behind the id_segments view.
 *
 * Each tag in use has a slot in shared memory keyed by (database, tag).
 * A caller adds to the slot's atomic cursor and keeps the ids that fall
 * below the end of the current range: no lock, no catalog access.  When
 * a call passes order_engine.id_prefetch_percent of the range, that caller
 * fetches the next range (the second buffer) while everyone else goes on
 * drawing from the first; when the current range runs out, the next one is
 * switched in under the slot's lock, which is cheap.  A range is reserved
 * durably in the tag's sequence (id_store.c) before any id of it is used.
 *
 * Locks: the slot's LWLock guards only in-memory state and is never held
 * across I/O or a heavyweight lock wait (it holds off interrupts, and the
 * deadlock detector cannot see it).  Range fetches of a tag are serialised
 * by a session lock on the tag's sequence in ShareUpdateExclusiveLock: it
 * conflicts with itself and with ALTER/DROP of the sequence, not with the
 * RowExclusiveLock of setval(), so a fetch that has to wait waits where
 * cancel, terminate and the deadlock detector reach it.  After the wait the
 * slot's generation is checked again.
 *
 * Slots are reclaimed when the table is full: those of databases that no
 * longer exist (DROP DATABASE does not tell us) and those of tags of this
 * database whose sequence is gone.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "common/arrays.h"
#include "common/errors.h"
#include "ids/ids.h"
#include "common/internal_sql.h"

#define OE_IDS_TRANCHE	"order_engine_ids"

typedef struct OeIdShared
{
	LWLock	   *lock;			/* the slot table: shared to look up, exclusive to add */
	int			nslots;
	OeIdSlot	slots[FLEXIBLE_ARRAY_MEMBER];
} OeIdShared;

static OeIdShared *oe_ids = NULL;

/*
 * What a backend remembers about a tag, so that the hot path needs no
 * catalog access: the slot, its generation when we looked, the tag's
 * sequence, and the transaction in which we last checked that the sequence
 * (hence the tag) still exists.
 */
typedef struct OeTagCacheEntry
{
	char		tag[OE_ID_TAG_MAXLEN + 1];	/* hash key */
	Oid			dboid;
	OeIdSlot   *slot;
	uint32		generation;
	Oid			seqoid;
	LocalTransactionId checked_lxid;
} OeTagCacheEntry;

static HTAB *oe_tag_cache = NULL;
static OeTagCacheEntry *oe_last_entry = NULL;

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
 * tags: lookup in the tag table and the per-backend cache
 * ---------------------------------------------------------------------
 */

/*
 * The tag's sequence and configured step from order_engine.id_tags, read
 * as the extension's owner (callers have no rights on the table).
 */
static OeQuery select_tag = {
	"SELECT t.seq::pg_catalog.oid, t.step::pg_catalog.int8"
	"  FROM order_engine.id_tags t WHERE t.biz_tag OPERATOR(pg_catalog.=) $1",
	1, {TEXTOID}
};

static bool
oe_tag_lookup(const char *tag, Oid *seqoid, int64 *step)
{
	Datum		values[1];
	OeInternalScope scope;
	volatile bool found = false;

	values[0] = CStringGetTextDatum(tag);
	OeInternalEnter(&scope, true);
	PG_TRY();
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		OeQueryRun(&select_tag, values, NULL, true, 1);
		if (SPI_processed == 1)
		{
			bool		isnull;

			*seqoid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
													 SPI_tuptable->tupdesc, 1, &isnull));
			*step = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
												SPI_tuptable->tupdesc, 2, &isnull));
			found = true;
		}
		SPI_finish();
	}
	PG_CATCH();
	{
		OeInternalAbort(&scope);
		PG_RE_THROW();
	}
	PG_END_TRY();
	OeInternalExit(&scope);
	return found;
}

static void
oe_check_tag_arg(const char *tag, Size len)
{
	if (len == 0 || len > OE_ID_TAG_MAXLEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid id tag length %zu", len),
				 errdetail("A tag is 1 to %d bytes long.", OE_ID_TAG_MAXLEN)));
}

/* (re)resolve a tag through the table and attach its slot */
static void
oe_tag_resolve(OeTagCacheEntry *e)
{
	Oid			seqoid;
	int64		step;

	if (!oe_tag_lookup(e->tag, &seqoid, &step))
	{
		e->slot = NULL;
		ereport(ERROR,
				(errcode(ERRCODE_OE_ID_TAG_NOT_FOUND),
				 errmsg("id tag \"%s\" does not exist", e->tag),
				 errhint("Register it first with order_engine.create_id_tag().")));
	}
	e->slot = OeIdSlotAttach(OE_SLOT_SEGMENT, e->tag, seqoid, step,
							 &e->generation);
	e->seqoid = seqoid;
	e->dboid = MyDatabaseId;
	e->checked_lxid = MyProc->lxid;
}

/*
 * The cache entry of a tag, valid for this transaction: once per
 * transaction we check (in the syscache, no table access) that the tag's
 * sequence still exists, so that a dropped and re-created tag is noticed.
 */
static OeTagCacheEntry *
oe_tag_entry(const char *tag, Size len)
{
	OeTagCacheEntry *e = oe_last_entry;

	if (e == NULL || strncmp(e->tag, tag, len) != 0 || e->tag[len] != '\0')
	{
		char		key[OE_ID_TAG_MAXLEN + 1];
		bool		found;

		oe_check_tag_arg(tag, len);
		if (oe_tag_cache == NULL)
		{
			HASHCTL		ctl;

			ctl.keysize = OE_ID_TAG_MAXLEN + 1;
			ctl.entrysize = sizeof(OeTagCacheEntry);
			ctl.hcxt = TopMemoryContext;
			oe_tag_cache = hash_create("order_engine id tags", 64, &ctl,
									   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
		}
		memset(key, 0, sizeof(key));
		memcpy(key, tag, len);
		e = hash_search(oe_tag_cache, key, HASH_ENTER, &found);
		if (!found)
			e->slot = NULL;
		oe_last_entry = e;
	}

	if (e->slot == NULL || e->dboid != MyDatabaseId)
		oe_tag_resolve(e);
	else if (e->checked_lxid != MyProc->lxid)
	{
		if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(e->seqoid)) ||
			pg_atomic_read_u32(&e->slot->generation) != e->generation)
			oe_tag_resolve(e);
		e->checked_lxid = MyProc->lxid;
	}
	return e;
}

/* ---------------------------------------------------------------------
 * ranges
 * ---------------------------------------------------------------------
 */

static void oe_install_range(OeIdSlot *s, int64 start, int64 end);

/* what a range fetch came to */
typedef enum OeFetchResult
{
	OE_FETCH_DONE,				/* reserved and published */
	OE_FETCH_STALE,				/* the slot changed hands meanwhile */
	OE_FETCH_EXHAUSTED			/* the tag has run past the bigint range */
} OeFetchResult;

/*
 * The lock that serialises the range fetches of a tag: a session lock on
 * its sequence, so that it outlives neither an error (PG_FINALLY releases
 * it) nor the backend, and is seen by the deadlock detector.  With
 * dont_wait, false when someone else holds it.  An error if the sequence
 * (hence the tag) was dropped meanwhile.
 */
static bool
oe_fetch_lock(LOCKTAG *tag, Oid seqoid, const char *biz_tag, bool dont_wait)
{
	SET_LOCKTAG_RELATION(*tag, MyDatabaseId, seqoid);
	if (LockAcquire(tag, ShareUpdateExclusiveLock, true, dont_wait) ==
		LOCKACQUIRE_NOT_AVAIL)
		return false;

	/* a DROP of the tag that we waited for is visible from here on */
	AcceptInvalidationMessages();
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(seqoid)))
	{
		LockRelease(tag, ShareUpdateExclusiveLock, true);
		ereport(ERROR,
				(errcode(ERRCODE_OE_ID_TAG_NOT_FOUND),
				 errmsg("id tag \"%s\" was dropped", biz_tag),
				 errhint("Register it again with order_engine.create_id_tag().")));
	}
	return true;
}

static void
oe_fetch_unlock(LOCKTAG *tag)
{
	LockRelease(tag, ShareUpdateExclusiveLock, true);
}

/*
 * Reserve the next range of the slot durably and publish it: as the
 * current range, or (as_next) as the second buffer.  Caller holds the
 * tag's fetch lock and not the slot's LWLock, which is taken here only to
 * read and then to publish the in-memory state; the sequence I/O runs
 * without it.  A range reserved for a slot that changed hands meanwhile
 * is a gap, never handed out.
 *
 * Dynamic step (Leaf): if the previous range lasted less than
 * order_engine.id_segment_duration, double the step (up to
 * order_engine.id_max_step); if it lasted more than twice that, halve it;
 * never below the tag's configured step.
 */
static OeFetchResult
oe_fetch_range(OeIdSlot *s, uint32 generation, bool as_next)
{
	TimestampTz now = GetCurrentTimestamp();
	Oid			seqoid;
	bool		loaded;
	int64		known_max;
	int64		step;
	int64		current;
	int64		take;

	LWLockAcquire(s->lock, LW_EXCLUSIVE);
	if (pg_atomic_read_u32(&s->generation) != generation)
	{
		LWLockRelease(s->lock);
		return OE_FETCH_STALE;
	}
	step = s->step;
	if (s->last_fetch_at != 0)
	{
		int64		lasted_ms = (now - s->last_fetch_at) / 1000;
		int64		target_ms = (int64) OeIdSegmentDuration * 1000;

		if (lasted_ms < target_ms)
			step = Min(step * 2, (int64) OeIdMaxStep);
		else if (lasted_ms > 2 * target_ms)
			step = step / 2;
	}
	step = Max(step, s->base_step);
	seqoid = s->seqoid;
	loaded = s->loaded;
	known_max = s->max_id;
	LWLockRelease(s->lock);

	/* the sequence is the truth; it is only ever moved forward by us */
	current = OeIdStoreRead(seqoid);
	if (loaded)
		current = Max(current, known_max);

	/* ids stay below PG_INT64_MAX, which serves as the exclusive end */
	if (current >= PG_INT64_MAX - 1)
	{
		LWLockAcquire(s->lock, LW_EXCLUSIVE);
		if (pg_atomic_read_u32(&s->generation) != generation)
		{
			LWLockRelease(s->lock);
			return OE_FETCH_STALE;
		}
		s->loaded = true;
		s->max_id = current;
		LWLockRelease(s->lock);
		return OE_FETCH_EXHAUSTED;
	}
	take = Min(step, PG_INT64_MAX - 1 - current);

	/* durable (setval, then XLogFlush) before any id of it is published */
	OeIdStoreWrite(seqoid, current + take);

	LWLockAcquire(s->lock, LW_EXCLUSIVE);
	if (pg_atomic_read_u32(&s->generation) != generation)
	{
		LWLockRelease(s->lock);
		return OE_FETCH_STALE;
	}
	s->step = step;
	s->loaded = true;
	s->max_id = current + take;
	s->last_fetch_at = now;
	s->fetches++;
	if (as_next)
	{
		s->next_start = current + 1;
		s->next_end = current + take + 1;
		s->next_ready = true;
	}
	else
		oe_install_range(s, current + 1, current + take + 1);
	LWLockRelease(s->lock);
	return OE_FETCH_DONE;
}

/*
 * Make [start, end) the current range.  The cursor is written before the
 * end, so a caller that sees the new end also sees the new cursor; a caller
 * that still holds the old end gets an id at or above the new start, which
 * is above the old end, and comes back through the slow path.
 */
static void
oe_install_range(OeIdSlot *s, int64 start, int64 end)
{
	uint64		prefetch_at = PG_UINT64_MAX;

	if (OeIdPrefetchPercent < 100)
		prefetch_at = (uint64) start +
			(uint64) ((end - start) * (double) OeIdPrefetchPercent / 100.0);
	s->cur_start = start;
	pg_atomic_write_u64(&s->prefetch_at, PG_UINT64_MAX);
	pg_atomic_write_u64(&s->cursor, (uint64) start);
	pg_write_barrier();
	pg_atomic_write_u64(&s->cur_end, (uint64) end);
	pg_atomic_write_u64(&s->prefetch_at, prefetch_at);
}

static void
oe_exhausted(const char *tag, int64 max_id)
{
	ereport(ERROR,
			(errcode(ERRCODE_OE_ID_EXHAUSTED),
			 errmsg("id tag \"%s\" is exhausted", tag),
			 errdetail("Every id up to %lld has been handed out.",
					   (long long) max_id),
			 errhint("Register a new tag.")));
}

/*
 * The second buffer: fetched by the caller that crossed the prefetch
 * point, while the others keep drawing from the current range.  The caller
 * that swaps the prefetch point out (one compare-and-swap) is the one that
 * fetches; if the tag's fetch lock is taken (a fetch in progress, or a
 * session altering the sequence) it leaves it to the next refill, so a
 * prefetch never waits.
 */
static void
oe_prefetch(OeIdSlot *s, uint32 generation)
{
	uint64		at = pg_atomic_read_u64(&s->prefetch_at);
	Oid			seqoid;
	char		tag[OE_ID_TAG_MAXLEN + 1];
	LOCKTAG		locktag;
	bool		wanted;

	if (at == PG_UINT64_MAX ||
		!pg_atomic_compare_exchange_u64(&s->prefetch_at, &at, PG_UINT64_MAX))
		return;

	LWLockAcquire(s->lock, LW_SHARED);
	wanted = pg_atomic_read_u32(&s->generation) == generation && !s->next_ready;
	seqoid = s->seqoid;
	strlcpy(tag, s->tag, sizeof(tag));
	LWLockRelease(s->lock);
	if (!wanted || !oe_fetch_lock(&locktag, seqoid, tag, true))
		return;

	PG_TRY();
	{
		LWLockAcquire(s->lock, LW_SHARED);
		wanted = pg_atomic_read_u32(&s->generation) == generation && !s->next_ready;
		LWLockRelease(s->lock);
		/* an exhausted tag is reported by the fetch that needs the range */
		if (wanted)
			(void) oe_fetch_range(s, generation, true);
	}
	PG_FINALLY();
	{
		oe_fetch_unlock(&locktag);
	}
	PG_END_TRY();
}

/*
 * Is the current range of s used up, and still s's?  Then switch to the
 * second buffer if it is ready.  Returns true when a fetch is needed.
 * Caller holds the slot's LWLock exclusively.
 */
static bool
oe_switch_or_need(OeIdSlot *s, uint32 generation)
{
	if (pg_atomic_read_u32(&s->generation) != generation ||
		pg_atomic_read_u64(&s->cursor) < pg_atomic_read_u64(&s->cur_end))
		return false;
	if (s->next_ready)
	{
		s->next_ready = false;
		oe_install_range(s, s->next_start, s->next_end);
		return false;
	}
	return true;
}

/*
 * Slow path: the current range is used up.  Switch to the second buffer,
 * or fetch a range now if there is none.  Takes no id itself.  The wait
 * for the fetch lock is where callers queue behind a fetch in progress.
 */
static void
oe_refill(OeIdSlot *s, uint32 generation)
{
	bool		need;
	Oid			seqoid;
	char		tag[OE_ID_TAG_MAXLEN + 1];
	LOCKTAG		locktag;
	volatile OeFetchResult result = OE_FETCH_DONE;

	LWLockAcquire(s->lock, LW_EXCLUSIVE);
	need = oe_switch_or_need(s, generation);
	seqoid = s->seqoid;
	strlcpy(tag, s->tag, sizeof(tag));
	LWLockRelease(s->lock);
	if (!need)
		return;

	(void) oe_fetch_lock(&locktag, seqoid, tag, false);
	PG_TRY();
	{
		/* whoever held the lock before us may have done our work */
		LWLockAcquire(s->lock, LW_EXCLUSIVE);
		need = oe_switch_or_need(s, generation);
		LWLockRelease(s->lock);
		if (need)
			result = oe_fetch_range(s, generation, false);
	}
	PG_FINALLY();
	{
		oe_fetch_unlock(&locktag);
	}
	PG_END_TRY();

	if (result == OE_FETCH_EXHAUSTED)
		oe_exhausted(tag, s->max_id);
}

/*
 * Hot path: up to n consecutive ids from the current range.  Returns the
 * number taken (0: range used up or slot changed hands), the first in
 * *first.
 */
static inline int64
oe_take(OeIdSlot *s, uint32 generation, int64 n, int64 *first)
{
	uint64		end = pg_atomic_read_u64(&s->cur_end);
	uint64		v;
	int64		got;

	pg_read_barrier();
	v = pg_atomic_fetch_add_u64(&s->cursor, (uint64) n);
	if (v >= end || pg_atomic_read_u32(&s->generation) != generation)
		return 0;
	got = (int64) Min((uint64) n, end - v);
	*first = (int64) v;
	if (v + got > pg_atomic_read_u64(&s->prefetch_at) && !s->next_ready)
		oe_prefetch(s, generation);
	return got;
}

/*
 * n ids of a tag, increasing, into out (when not NULL); returns the last.
 * The ids are consecutive unless a range boundary falls among them.
 */
static int64
oe_next_ids(const char *tag, Size len, int64 n, int64 *out)
{
	OeTagCacheEntry *e;
	int64		done = 0;
	int64		last = 0;

	OeRequirePreload();
	PreventCommandIfReadOnly("next_id()");
	e = oe_tag_entry(tag, len);

	while (done < n)
	{
		int64		first;
		int64		got = oe_take(e->slot, e->generation, n - done, &first);

		if (got > 0)
		{
			if (out != NULL)
				for (int64 i = 0; i < got; i++)
					out[done + i] = first + i;
			done += got;
			last = first + got - 1;
			continue;
		}
		if (pg_atomic_read_u32(&e->slot->generation) != e->generation)
			oe_tag_resolve(e);
		else
			oe_refill(e->slot, e->generation);
		CHECK_FOR_INTERRUPTS();
	}
	return last;
}

int64
OeNextId(const char *tag)
{
	return oe_next_ids(tag, strlen(tag), 1, NULL);
}

int64
OeNextIds(const char *tag, int n, int64 *out)
{
	return oe_next_ids(tag, strlen(tag), n, out);
}

/* ---------------------------------------------------------------------
 * SQL functions
 * ---------------------------------------------------------------------
 */
static inline text *
oe_tag_arg(FunctionCallInfo fcinfo)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("biz_tag must not be null")));
	return PG_GETARG_TEXT_PP(0);
}

PG_FUNCTION_INFO_V1(oe_next_id);
Datum
oe_next_id(PG_FUNCTION_ARGS)
{
	text	   *tag = oe_tag_arg(fcinfo);

	PG_RETURN_INT64(oe_next_ids(VARDATA_ANY(tag), VARSIZE_ANY_EXHDR(tag),
								1, NULL));
}

PG_FUNCTION_INFO_V1(oe_next_ids_sql);
Datum
oe_next_ids_sql(PG_FUNCTION_ARGS)
{
	text	   *tag = oe_tag_arg(fcinfo);
	int32		n;
	int64	   *ids;
	ArrayType  *result;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("n must not be null")));
	n = PG_GETARG_INT32(1);
	if (n < 1 || n > OE_NEXT_IDS_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("n must be between 1 and %d", OE_NEXT_IDS_MAX),
				 errdetail("n was %d.", n)));

	ids = palloc(sizeof(int64) * n);
	oe_next_ids(VARDATA_ANY(tag), VARSIZE_ANY_EXHDR(tag), n, ids);
	result = OeInt8Array(ids, n);
	PG_RETURN_ARRAYTYPE_P(result);
}

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
