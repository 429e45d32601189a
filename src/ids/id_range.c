/*-------------------------------------------------------------------------
 *
 * id_range.c
 *	  The ranges of a tag's slot: the lock-free hot path, the double
 *	  buffer, the dynamic step and the durable fetch of the next range;
 *	  next_id() and next_ids().
 *
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
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "common/arrays.h"
#include "common/args.h"
#include "common/errors.h"
#include "ids/ids.h"
#include "ids/id_internal.h"


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
	e = OeIdTagEntry(tag, len);

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
			OeIdTagResolve(e);
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
	CheckNotNull(fcinfo, 0, "biz_tag");
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

	CheckNotNull(fcinfo, 1, "n");
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
