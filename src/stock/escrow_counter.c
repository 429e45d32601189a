/*-------------------------------------------------------------------------
 *
 * escrow_counter.c
 *	  The shared-memory counter of an escrow SKU: a reserve takes units
 *	  from it without locking a row, the end of the taking transaction
 *	  settles the take, and the counter is rebuilt from the tables when it
 *	  is first used and by the worker.
 *
 * The rule the counter keeps (docs/stock.md, "Escrow"):
 *
 *	  units <= escrow - unfolded - in_flight
 *
 * where escrow is the SKU's stock_bucket.escrow (bucket 0), unfolded the
 * units of its committed escrow holds not yet folded into held, and
 * in_flight the units taken by transactions that have not ended.  A take
 * succeeds only while units >= qty, so the committed escrow holds never
 * sum to more than escrow: the bucket row's CHECK (escrow >= 0) and
 * stock_audit() prove it.  The counter may fall below the bound (a unit
 * is then unsold for a while, never oversold); the worker's rebuild
 * brings it back up.
 *
 * How each event keeps the rule:
 *	- a take: units -= qty, in_flight += qty (OeEscrowTake);
 *	- its commit: in_flight -= qty; its abort (or its subtransaction's):
 *	  units += qty, in_flight -= qty (the transaction callbacks below);
 *	- folding a hold, or confirming an unfolded one, lowers escrow and
 *	  unfolded together: nothing to do;
 *	- the worker moving available units into escrow adds them at its
 *	  commit (OeEscrowGrantAtCommit), unless a rebuild ran in between,
 *	  whose snapshot may already have counted them;
 *	- a rebuild (the first take's, and the worker's once a take was
 *	  refused): units = escrow - unfolded - in_flight, read so that no
 *	  take is missed: in_flight is read before the snapshot, takes made
 *	  while it reads are counted separately, and a transaction that ended
 *	  in between is counted twice at worst.  Its snapshot leaves out the
 *	  calling transaction's own changes (curcid 0), which may still roll
 *	  back.
 *
 * A transaction that took units cannot be prepared (two-phase commit):
 * its takes would be settled by another backend, which has no record of
 * them.
 *
 * Slots are keyed by (database, stock_bucket's relfilenode, SKU): a
 * counter never outlives the table it counts (DROP EXTENSION, TRUNCATE,
 * a restore into the same database), and a slot left by an old file is
 * taken over by the SKU's new counter.  order_engine.escrow_skus counters
 * serve the whole server; when they are all in use, the one used longest
 * ago with no take in flight is given to the new SKU (its SKU's next take
 * rebuilds it), so copies of a database (CREATE DATABASE ... TEMPLATE)
 * never run out of counters.  set_escrow takes an ACCESS
 * EXCLUSIVE lock on sku, which no taker holds (each holds ACCESS SHARE
 * from its lookup until it ends), so a slot is forgotten only when no
 * take is in flight.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "miscadmin.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/fmgroids.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "common/direct_access.h"
#include "common/guc.h"
#include "common/preload.h"
#include "stock/stock.h"
#include "stock/stock_internal.h"

#define ESCROW_TRANCHE "order_engine_escrow"

typedef struct EscrowSlot
{
	slock_t		mutex;			/* guards every field below */
	Oid			dbid;			/* InvalidOid: free */
	Oid			filenode;		/* stock_bucket's relfilenode */
	int64		sku_id;
	uint64		epoch;			/* new at each use of the slot */
	uint64		rebuilds;		/* bumped when a rebuild starts */
	uint64		last_used;		/* the shared clock at its last take */
	bool		ready;			/* units is valid */
	bool		rebuilding;
	bool		starved;		/* a take was refused since the last rebuild */
	int64		units;			/* what takes may still have */
	int64		in_flight;		/* taken by transactions not ended */
	int64		taken_meanwhile;	/* taken while rebuilding */
} EscrowSlot;

typedef struct EscrowShared
{
	LWLock	   *lock;			/* serialises slot use and rebuilds */
	uint64		next_epoch;
	uint64		clock;			/* ticks at each take, unlocked: a hint */
	int			nslots;
	EscrowSlot	slots[FLEXIBLE_ARRAY_MEMBER];
} EscrowShared;

static EscrowShared *escrow = NULL;

/* a take or a grant of this transaction, settled when it ends */
typedef struct EscrowPending
{
	int			slot;
	uint64		epoch;
	uint64		rebuilds;		/* a grant: the rebuild count it saw */
	bool		grant;
	int64		qty;
	SubTransactionId subid;
} EscrowPending;

static List *pending = NIL;		/* in TopTransactionContext */
static bool callbacks_registered = false;

static Size
escrow_shmem_bytes(void)
{
	return add_size(offsetof(EscrowShared, slots),
					mul_size(sizeof(EscrowSlot), (Size) Max(OeEscrowSkus, 1)));
}

Size
OeEscrowShmemSize(void)
{
	RequestNamedLWLockTranche(ESCROW_TRANCHE, 1);
	return MAXALIGN(escrow_shmem_bytes());
}

void
OeEscrowShmemInit(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	escrow = ShmemInitStruct("order_engine escrow counters", escrow_shmem_bytes(), &found);
	if (!found)
	{
		memset(escrow, 0, escrow_shmem_bytes());
		escrow->lock = &(GetNamedLWLockTranche(ESCROW_TRANCHE))->lock;
		escrow->nslots = OeEscrowSkus;
		escrow->next_epoch = 1;
		for (int i = 0; i < escrow->nslots; i++)
			SpinLockInit(&escrow->slots[i].mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

/* the relfilenode of this database's stock_bucket, InvalidOid if none */
static Oid
bucket_filenode(void)
{
	Oid			relid = OeSchemaRelid("stock_bucket");
	Relation	rel;
	Oid			filenode;

	if (!OidIsValid(relid))
		return InvalidOid;
	rel = RelationIdGetRelation(relid);
	if (!RelationIsValid(rel))
		return InvalidOid;
	filenode = rel->rd_rel->relfilenode;
	RelationClose(rel);
	return filenode;
}

/*
 * The slot of (this database, filenode, sku_id), or -1; an unlocked look,
 * checked by the caller.  With any_file, also a slot of the SKU on an
 * older file.
 */
static int
find_slot_in(int64 sku_id, Oid filenode, bool any_file)
{
	for (int i = 0; i < escrow->nslots; i++)
	{
		EscrowSlot *s = &escrow->slots[i];

		if (s->sku_id == sku_id && s->dbid == MyDatabaseId &&
			(any_file || s->filenode == filenode))
			return i;
	}
	return -1;
}

static int
find_slot(int64 sku_id)
{
	return find_slot_in(sku_id, bucket_filenode(), false);
}

/*
 * Read what the counter rests on, under a new snapshot that leaves out
 * this transaction's own changes: is the SKU still escrow, its escrow
 * units, and its unfolded escrow holds.  false: not an escrow SKU (or
 * the tables lack the 0.9 columns).
 */
static bool
read_escrow_tables(int64 sku_id, int64 *escrow_units, int64 *unfolded)
{
	Oid			sku_rel = OeSchemaRelid("sku");
	Oid			sku_pkey = OeSchemaRelid("sku_pkey");
	Oid			bucket_rel = OeSchemaRelid("stock_bucket");
	Oid			bucket_pkey = OeSchemaRelid("stock_bucket_pkey");
	Oid			hold_rel = OeSchemaRelid("stock_hold");
	Oid			unfolded_idx = OeSchemaRelid("stock_hold_unfolded");
	Relation	rel;
	Snapshot	snap;
	SysScanDesc scan;
	ScanKeyData key[2];
	HeapTuple	tup;
	AttrNumber	att;
	bool		isnull;
	bool		is_escrow = false;

	*escrow_units = 0;
	*unfolded = 0;
	if (!OidIsValid(sku_rel) || !OidIsValid(sku_pkey) || !OidIsValid(bucket_rel) ||
		!OidIsValid(bucket_pkey) || !OidIsValid(hold_rel) || !OidIsValid(unfolded_idx))
		return false;

	snap = RegisterSnapshot(GetLatestSnapshot());
	/* our own changes may roll back: see none of them */
	snap->curcid = FirstCommandId;

	rel = table_open(sku_rel, AccessShareLock);
	att = OeRelationColumn(rel, "escrow");
	if (att != InvalidAttrNumber)
	{
		ScanKeyInit(&key[0], OeRelationColumn(rel, "sku_id"), BTEqualStrategyNumber, F_INT8EQ,
					Int64GetDatum(sku_id));
		scan = systable_beginscan(rel, sku_pkey, true, snap, 1, key);
		if (HeapTupleIsValid(tup = systable_getnext(scan)))
		{
			Datum		d = heap_getattr(tup, att, RelationGetDescr(rel), &isnull);

			is_escrow = !isnull && DatumGetBool(d);
		}
		systable_endscan(scan);
	}
	table_close(rel, NoLock);
	if (!is_escrow)
	{
		UnregisterSnapshot(snap);
		return false;
	}

	rel = table_open(bucket_rel, AccessShareLock);
	att = OeRelationColumn(rel, "escrow");
	ScanKeyInit(&key[0], OeRelationColumn(rel, "sku_id"), BTEqualStrategyNumber, F_INT8EQ,
				Int64GetDatum(sku_id));
	ScanKeyInit(&key[1], OeRelationColumn(rel, "bucket"), BTEqualStrategyNumber, F_INT4EQ,
				Int32GetDatum(0));
	scan = systable_beginscan(rel, bucket_pkey, true, snap, 2, key);
	if (att != InvalidAttrNumber && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Datum		d = heap_getattr(tup, att, RelationGetDescr(rel), &isnull);

		*escrow_units = isnull ? 0 : DatumGetInt64(d);
	}
	systable_endscan(scan);
	table_close(rel, NoLock);

	/*
	 * The partial index holds exactly the unfolded held holds.  A scan key
	 * names the heap column (systable_beginscan maps it to the index's):
	 * sku_id, not the index's first column number.
	 */
	rel = table_open(hold_rel, AccessShareLock);
	att = OeRelationColumn(rel, "qty");
	ScanKeyInit(&key[0], OeRelationColumn(rel, "sku_id"), BTEqualStrategyNumber, F_INT8EQ,
				Int64GetDatum(sku_id));
	scan = systable_beginscan(rel, unfolded_idx, true, snap, 1, key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Datum		d = heap_getattr(tup, att, RelationGetDescr(rel), &isnull);

		if (!isnull)
			*unfolded += DatumGetInt64(d);
	}
	systable_endscan(scan);
	table_close(rel, NoLock);
	UnregisterSnapshot(snap);
	return true;
}

/*
 * Rebuild slot i (of sku_id) from the tables; the caller holds the
 * shared lock exclusively.  false: the SKU is not escrow, the slot is
 * freed.
 */
static bool
rebuild_slot(int i, int64 sku_id)
{
	EscrowSlot *volatile s = &escrow->slots[i];
	int64		in_flight_before;
	int64		escrow_units;
	int64		unfolded;
	volatile bool is_escrow = false;

	SpinLockAcquire(&s->mutex);
	s->rebuilding = true;
	s->starved = false;
	s->taken_meanwhile = 0;
	s->rebuilds++;
	in_flight_before = s->in_flight;
	SpinLockRelease(&s->mutex);

	PG_TRY();
	{
		is_escrow = read_escrow_tables(sku_id, &escrow_units, &unfolded);
	}
	PG_CATCH();
	{
		SpinLockAcquire(&s->mutex);
		s->rebuilding = false;
		SpinLockRelease(&s->mutex);
		PG_RE_THROW();
	}
	PG_END_TRY();

	SpinLockAcquire(&s->mutex);
	s->rebuilding = false;
	if (is_escrow)
	{
		s->units = escrow_units - unfolded - in_flight_before - s->taken_meanwhile;
		s->ready = true;
	}
	else
	{
		/* no longer escrow: no take may use it; free unless takes are in flight */
		s->ready = false;
		s->units = 0;
		if (s->in_flight == 0)
		{
			s->dbid = InvalidOid;
			s->sku_id = 0;
		}
	}
	SpinLockRelease(&s->mutex);
	return is_escrow;
}

/*
 * The relation locks a rebuild needs, taken before the shared LWLock:
 * waiting for a heavyweight lock (DDL, set_escrow's ACCESS EXCLUSIVE on
 * sku) while holding an LWLock would hide the wait from the deadlock
 * detector.  A reserve holds them already, from its lookup.
 */
static void
lock_escrow_tables(void)
{
	static const char *const names[] = {"sku", "stock_bucket", "stock_hold"};

	for (int k = 0; k < lengthof(names); k++)
	{
		Oid			relid = OeSchemaRelid(names[k]);

		if (OidIsValid(relid))
			table_close(table_open(relid, AccessShareLock), NoLock);
	}
}

/* the ready slot of sku_id, made and built if need be; -1 if none can be */
static int
ready_slot(int64 sku_id)
{
	Oid			filenode = bucket_filenode();
	int			i = find_slot_in(sku_id, filenode, false);

	if (i >= 0 && escrow->slots[i].ready)
		return i;
	if (!OidIsValid(filenode))
		return -1;
	lock_escrow_tables();
	LWLockAcquire(escrow->lock, LW_EXCLUSIVE);
	i = find_slot_in(sku_id, filenode, false);
	if (i < 0)
	{
		/* the SKU's slot on an older file, once no take of it is in flight */
		int			old = find_slot_in(sku_id, filenode, true);

		if (old >= 0 && escrow->slots[old].in_flight != 0)
			old = -1;
		/* no free slot: the one used longest ago with no take in flight */
		if (old < 0)
		{
			bool		any_free = false;
			uint64		oldest = PG_UINT64_MAX;

			for (int k = 0; k < escrow->nslots && !any_free; k++)
				any_free = (escrow->slots[k].dbid == InvalidOid);
			for (int k = 0; k < escrow->nslots && !any_free; k++)
			{
				EscrowSlot *c = &escrow->slots[k];

				if (c->in_flight == 0 && !c->rebuilding && c->last_used < oldest)
				{
					oldest = c->last_used;
					old = k;
				}
			}
		}
		for (int k = 0; k < escrow->nslots; k++)
			if (k == old || (old < 0 && escrow->slots[k].dbid == InvalidOid))
			{
				EscrowSlot *s = &escrow->slots[k];

				SpinLockAcquire(&s->mutex);
				if (s->in_flight != 0)
				{
					/* a take came in since we looked: leave it that slot */
					SpinLockRelease(&s->mutex);
					break;
				}
				s->dbid = MyDatabaseId;
				s->filenode = filenode;
				s->sku_id = sku_id;
				s->epoch = escrow->next_epoch++;
				s->ready = false;
				s->units = 0;
				s->in_flight = 0;
				s->last_used = escrow->clock;
				SpinLockRelease(&s->mutex);
				i = k;
				break;
			}
	}
	/* an error releases the LWLock with the transaction (LWLockReleaseAll) */
	if (i >= 0 && !escrow->slots[i].ready && !rebuild_slot(i, sku_id))
		i = -1;
	LWLockRelease(escrow->lock);
	return i;
}

static void
escrow_xact_callback(XactEvent event, void *arg)
{
	ListCell   *lc;

	if (pending == NIL)
		return;
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			/* only a take still held refuses; a grant is dropped (the counter is low) */
			foreach(lc, pending)
			{
				EscrowPending *p = (EscrowPending *) lfirst(lc);

				if (!p->grant && p->qty > 0 && p->epoch != 0)
					ereport(ERROR,
							(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
							 errmsg("cannot PREPARE a transaction that reserved escrow stock"),
							 errhint("Reserve escrow SKUs outside two-phase transactions.")));
			}
			pending = NIL;
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			{
				bool		commit = (event == XACT_EVENT_COMMIT ||
									  event == XACT_EVENT_PARALLEL_COMMIT);

				foreach(lc, pending)
				{
					EscrowPending *p = (EscrowPending *) lfirst(lc);
					EscrowSlot *s = &escrow->slots[p->slot];

					SpinLockAcquire(&s->mutex);
					if (s->epoch == p->epoch)
					{
						if (p->grant)
						{
							if (commit && s->ready && s->rebuilds == p->rebuilds)
								s->units += p->qty;
						}
						else
						{
							s->in_flight -= p->qty;
							if (!commit)
								s->units += p->qty;
						}
					}
					SpinLockRelease(&s->mutex);
				}
				/* the list lived in TopTransactionContext, which goes now */
				pending = NIL;
			}
			break;
		default:
			break;
	}
}

static void
escrow_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	ListCell   *lc;

	if (pending == NIL)
		return;
	if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		foreach(lc, pending)
		{
			EscrowPending *p = (EscrowPending *) lfirst(lc);

			if (p->subid == mySubid)
				p->subid = parentSubid;
		}
	}
	else if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		foreach(lc, pending)
		{
			EscrowPending *p = (EscrowPending *) lfirst(lc);
			EscrowSlot *s;

			if (p->subid != mySubid)
				continue;
			s = &escrow->slots[p->slot];
			if (!p->grant)
			{
				SpinLockAcquire(&s->mutex);
				if (s->epoch == p->epoch)
				{
					s->in_flight -= p->qty;
					s->units += p->qty;
				}
				SpinLockRelease(&s->mutex);
			}
			p->qty = 0;			/* settled */
			p->epoch = 0;
		}
	}
}

/* a record of a take or grant, made before the counter moves */
static EscrowPending *
new_pending(int slot, bool grant, int64 qty)
{
	MemoryContext old;
	EscrowPending *p;

	if (!callbacks_registered)
	{
		RegisterXactCallback(escrow_xact_callback, NULL);
		RegisterSubXactCallback(escrow_subxact_callback, NULL);
		callbacks_registered = true;
	}
	old = MemoryContextSwitchTo(TopTransactionContext);
	p = palloc0(sizeof(EscrowPending));
	pending = lappend(pending, p);
	MemoryContextSwitchTo(old);
	p->slot = slot;
	p->grant = grant;
	p->qty = qty;
	p->subid = GetCurrentSubTransactionId();
	return p;
}

/*
 * Take qty units of escrow SKU sku_id for this transaction: true if
 * taken (given back if the transaction or its subtransaction aborts).
 * false: not enough, no shared memory, no slot, or not escrow.
 */
bool
OeEscrowTake(int64 sku_id, int64 qty)
{
	EscrowPending *p;
	EscrowSlot *s;
	int			i;
	bool		taken = false;

	if (!OeShmemReady() || escrow == NULL || escrow->nslots <= 0)
		return false;
	i = ready_slot(sku_id);
	if (i < 0)
		return false;
	s = &escrow->slots[i];
	p = new_pending(i, false, 0);
	SpinLockAcquire(&s->mutex);
	s->last_used = ++escrow->clock;
	if (s->ready && s->sku_id == sku_id && s->dbid == MyDatabaseId && s->units >= qty)
	{
		s->units -= qty;
		s->in_flight += qty;
		if (s->rebuilding)
			s->taken_meanwhile += qty;
		p->epoch = s->epoch;
		p->qty = qty;
		taken = true;
	}
	else
		s->starved = true;		/* the worker's next round rebuilds it */
	SpinLockRelease(&s->mutex);
	if (!taken)
	{
		/* nothing to settle: the record made before the counter moved goes */
		pending = list_delete_last(pending);
		pfree(p);
	}
	return taken;
}

/*
 * Give back a take of this transaction at once (reserve's later line came
 * up short): the newest take of sku_id and qty, which is the one this
 * call made (an older one of the same size may be an earlier reserve's).
 */
void
OeEscrowGiveBack(int64 sku_id, int64 qty)
{
	for (int k = list_length(pending) - 1; k >= 0; k--)
	{
		EscrowPending *p = (EscrowPending *) list_nth(pending, k);
		EscrowSlot *s = &escrow->slots[p->slot];

		if (p->grant || p->qty != qty || p->epoch == 0)
			continue;
		SpinLockAcquire(&s->mutex);
		if (s->epoch == p->epoch && s->sku_id == sku_id && s->dbid == MyDatabaseId)
		{
			s->in_flight -= qty;
			s->units += qty;
			p->qty = 0;
			p->epoch = 0;
		}
		SpinLockRelease(&s->mutex);
		if (p->epoch == 0)
			return;
	}
	elog(ERROR, "order_engine: no escrow take of " INT64_FORMAT " units of SKU " INT64_FORMAT " to give back",
		 qty, sku_id);
}

/*
 * qty units were added to the SKU's escrow by this transaction: add them
 * to the counter when it commits, if no rebuild ran in between.
 */
void
OeEscrowGrantAtCommit(int64 sku_id, int64 qty)
{
	EscrowPending *p;
	EscrowSlot *s;
	int			i;

	if (!OeShmemReady() || escrow == NULL || (i = find_slot(sku_id)) < 0)
		return;
	s = &escrow->slots[i];
	p = new_pending(i, true, qty);
	SpinLockAcquire(&s->mutex);
	if (s->sku_id == sku_id && s->dbid == MyDatabaseId)
	{
		p->epoch = s->epoch;
		p->rebuilds = s->rebuilds;
	}
	SpinLockRelease(&s->mutex);
}

/*
 * Rebuild this database's ready counters from the tables (all, or with
 * only_starved those that refused a take since their last rebuild: a
 * counter is low only after a rebuild raced a commit or a grant was
 * dropped, and a refusal is when that matters), and free the slots of
 * older stock_bucket files.  A rebuild reads every unfolded hold of the
 * SKU, so the worker does not pay for it each round.
 */
void
OeEscrowRebuildAll(bool only_starved)
{
	Oid			filenode;

	if (!OeShmemReady() || escrow == NULL)
		return;
	lock_escrow_tables();
	filenode = bucket_filenode();
	LWLockAcquire(escrow->lock, LW_EXCLUSIVE);
	for (int i = 0; i < escrow->nslots; i++)
	{
		EscrowSlot *s = &escrow->slots[i];

		if (s->dbid != MyDatabaseId)
			continue;
		if (s->filenode != filenode)
		{
			SpinLockAcquire(&s->mutex);
			if (s->in_flight == 0)
			{
				s->dbid = InvalidOid;
				s->sku_id = 0;
				s->ready = false;
			}
			SpinLockRelease(&s->mutex);
		}
		else if (s->ready && (s->starved || !only_starved))
			(void) rebuild_slot(i, s->sku_id);
	}
	LWLockRelease(escrow->lock);
}

/*
 * Forget the counter of sku_id (set_escrow, under its ACCESS EXCLUSIVE
 * lock on sku: no take is in flight).  The next take rebuilds it.
 */
void
OeEscrowForget(int64 sku_id)
{
	int			i;

	if (!OeShmemReady() || escrow == NULL)
		return;
	LWLockAcquire(escrow->lock, LW_EXCLUSIVE);
	while ((i = find_slot_in(sku_id, InvalidOid, true)) >= 0)
	{
		EscrowSlot *s = &escrow->slots[i];

		SpinLockAcquire(&s->mutex);
		s->dbid = InvalidOid;
		s->sku_id = 0;
		s->ready = false;
		s->epoch = 0;
		s->units = 0;
		s->in_flight = 0;
		SpinLockRelease(&s->mutex);
	}
	LWLockRelease(escrow->lock);
}
