/*-------------------------------------------------------------------------
 *
 * stock.c
 *	  Holds and sales: reserve, confirm, release, try_deduct, and the
 *	  per-hold release the worker reuses for expired holds.
 *
 * The rules (docs/stock.md):
 *	- Stock is only ever changed by a conditional delta on a stock_bucket
 *	  row, so it cannot go below zero; every change is journaled.
 *	- A sold-out SKU answers from an unlocked MVCC read of its buckets
 *	  before any row is touched, so a "no" never queues on a row lock.
 *	- A bucketed SKU is taken from a bucket nobody holds locked (SKIP
 *	  LOCKED), else from several unlocked ones, else after waiting for one;
 *	  only when none of that works do we lock every bucket that has stock,
 *	  in bucket order, and serve from several (take()).
 *	- One call locks in a fixed order: the order (advisory lock), then per
 *	  SKU in ascending sku_id the buyer's purchase tally, then bucket rows in
 *	  ascending bucket.  confirm/release/the worker follow the same order,
 *	  so two callers never deadlock each other.
 *	- reserve is all-or-nothing without a subtransaction: lines already
 *	  taken when a later one comes up short are given back by the reverse
 *	  delta on the rows we still hold locked, and nothing is journaled.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "common/arrays.h"
#include "common/errors.h"
#include "common/order_engine.h"
#include "stock/stock.h"
#include "worker/signal.h"

/* one part of a hold or of a sale: units taken from one bucket row */
typedef struct StockPart
{
	int32		bucket;
	int64		qty;
} StockPart;

/* a hold row as read from stock_hold */
typedef struct StockHold
{
	int64		order_no;
	int64		sku_id;
	int64		qty;
	char	   *state;
	TimestampTz expires_at;
	bool		has_buyer;
	int64		buyer_id;
	int			nparts;
	StockPart  *parts;
} StockHold;

/* one line of a reserve, in sku_id order, with what the lookup found */
typedef struct ReserveLine
{
	int64		sku_id;
	int64		qty;
	bool		known;
	bool		has_limit;
	int64		limit;
	int32		nbuckets;
	int64		available;		/* MVCC sum over the buckets, unlocked */
	bool		tallied;
	int			nparts;
	StockPart  *parts;
} ReserveLine;

#define HOLD_COLUMNS "order_no, sku_id, qty, state, expires_at, buyer_id, buckets, bucket_qtys"

/* reserve's lookup: per line the SKU, its unlocked availability and any
 * hold of this order; the last column counts all holds of the order */
static SPIPlanPtr plan_info;
static const char sql_info[] =
"SELECT s.sku_id IS NOT NULL, s.purchase_limit, s.nbuckets,"
"  (SELECT COALESCE(pg_catalog.sum(b.available), 0)::pg_catalog.int8"
"     FROM order_engine.stock_bucket b WHERE b.sku_id OPERATOR(pg_catalog.=) u.sku_id),"
"  h.qty, h.state, h.buyer_id,"
"  (SELECT pg_catalog.count(*) FROM order_engine.stock_hold o WHERE o.order_no OPERATOR(pg_catalog.=) $2)"
" FROM pg_catalog.unnest($1::pg_catalog.int8[]) WITH ORDINALITY AS u(sku_id, i)"
" LEFT JOIN order_engine.sku s ON s.sku_id OPERATOR(pg_catalog.=) u.sku_id"
" LEFT JOIN order_engine.stock_hold h ON h.order_no OPERATOR(pg_catalog.=) $2"
"  AND h.sku_id OPERATOR(pg_catalog.=) u.sku_id"
" ORDER BY u.i";

static SPIPlanPtr plan_order_count;
static const char sql_order_count[] =
"SELECT pg_catalog.count(*) FROM order_engine.stock_hold WHERE order_no OPERATOR(pg_catalog.=) $1";

static SPIPlanPtr plan_sku_info;
static const char sql_sku_info[] =
"SELECT s.nbuckets,"
"  (SELECT COALESCE(pg_catalog.sum(b.available), 0)::pg_catalog.int8"
"     FROM order_engine.stock_bucket b WHERE b.sku_id OPERATOR(pg_catalog.=) s.sku_id)"
" FROM order_engine.sku s WHERE s.sku_id OPERATOR(pg_catalog.=) $1";

/* the plain SKU: one conditional decrement of its only bucket */
static SPIPlanPtr plan_take0;
static const char sql_take0[] =
"UPDATE order_engine.stock_bucket SET available = available OPERATOR(pg_catalog.-) $2,"
"  held = held OPERATOR(pg_catalog.+) $3, sold = sold OPERATOR(pg_catalog.+) $4"
" WHERE sku_id OPERATOR(pg_catalog.=) $1 AND bucket OPERATOR(pg_catalog.=) 0"
"  AND available OPERATOR(pg_catalog.>=) $2";

/* a bucketed SKU: the first bucket, from a per-backend start, that has
 * enough and that nobody holds locked */
static SPIPlanPtr plan_take_skip;
static const char sql_take_skip[] =
"UPDATE order_engine.stock_bucket b SET available = b.available OPERATOR(pg_catalog.-) $2,"
"  held = b.held OPERATOR(pg_catalog.+) $3, sold = b.sold OPERATOR(pg_catalog.+) $4"
" WHERE b.sku_id OPERATOR(pg_catalog.=) $1 AND b.bucket OPERATOR(pg_catalog.=)"
"  (SELECT c.bucket FROM order_engine.stock_bucket c"
"    WHERE c.sku_id OPERATOR(pg_catalog.=) $1 AND c.available OPERATOR(pg_catalog.>=) $2"
"    ORDER BY (c.bucket OPERATOR(pg_catalog.+) $5) OPERATOR(pg_catalog.%) $6"
"    LIMIT 1 FOR UPDATE SKIP LOCKED)"
" RETURNING b.bucket";

/* several buckets with stock that nobody holds locked, in bucket order */
static SPIPlanPtr plan_gather_skip;
static const char sql_gather_skip[] =
"SELECT bucket, available FROM order_engine.stock_bucket"
" WHERE sku_id OPERATOR(pg_catalog.=) $1 AND available OPERATOR(pg_catalog.>) 0"
" ORDER BY bucket FOR UPDATE SKIP LOCKED";

/* wait for one bucket that has enough as of our snapshot */
static SPIPlanPtr plan_take_wait;
static const char sql_take_wait[] =
"UPDATE order_engine.stock_bucket b SET available = b.available OPERATOR(pg_catalog.-) $2,"
"  held = b.held OPERATOR(pg_catalog.+) $3, sold = b.sold OPERATOR(pg_catalog.+) $4"
" WHERE b.sku_id OPERATOR(pg_catalog.=) $1 AND b.available OPERATOR(pg_catalog.>=) $2"
"  AND b.bucket OPERATOR(pg_catalog.=)"
"  (SELECT c.bucket FROM order_engine.stock_bucket c"
"    WHERE c.sku_id OPERATOR(pg_catalog.=) $1 AND c.available OPERATOR(pg_catalog.>=) $2"
"    ORDER BY (c.bucket OPERATOR(pg_catalog.+) $5) OPERATOR(pg_catalog.%) $6 LIMIT 1)"
" RETURNING b.bucket";

/* the slow path: wait for and lock every bucket with stock, in order */
static SPIPlanPtr plan_lock_avail;
static const char sql_lock_avail[] =
"SELECT bucket, available FROM order_engine.stock_bucket"
" WHERE sku_id OPERATOR(pg_catalog.=) $1 AND available OPERATOR(pg_catalog.>) 0"
" ORDER BY bucket FOR UPDATE";

static SPIPlanPtr plan_move;
static const char sql_move[] =
"UPDATE order_engine.stock_bucket SET available = available OPERATOR(pg_catalog.+) $3,"
"  held = held OPERATOR(pg_catalog.+) $4, sold = sold OPERATOR(pg_catalog.+) $5"
" WHERE sku_id OPERATOR(pg_catalog.=) $1 AND bucket OPERATOR(pg_catalog.=) $2";

/* the purchase limit: the conditional upsert is both lock and check */
static SPIPlanPtr plan_tally_add;
static const char sql_tally_add[] =
"INSERT INTO order_engine.purchase_tally AS t (sku_id, buyer_id, units)"
" VALUES ($1, $2, $3)"
" ON CONFLICT (sku_id, buyer_id) DO UPDATE SET units = t.units OPERATOR(pg_catalog.+) excluded.units"
"  WHERE $4::pg_catalog.int8 IS NULL"
"   OR (t.units OPERATOR(pg_catalog.+) excluded.units) OPERATOR(pg_catalog.<=) $4"
" RETURNING t.units";

static SPIPlanPtr plan_tally_sub;
static const char sql_tally_sub[] =
"UPDATE order_engine.purchase_tally SET units = units OPERATOR(pg_catalog.-) $3"
" WHERE sku_id OPERATOR(pg_catalog.=) $1 AND buyer_id OPERATOR(pg_catalog.=) $2";

static SPIPlanPtr plan_hold_insert;
static const char sql_hold_insert[] =
"WITH h AS (INSERT INTO order_engine.stock_hold"
"   (order_no, sku_id, qty, state, expires_at, buyer_id, buckets, bucket_qtys)"
"   VALUES ($1, $2, $3, 'held', $4, $5, $6, $7) RETURNING 1)"
" INSERT INTO order_engine.stock_movement (sku_id, kind, d_available, d_held, d_sold, order_no)"
" SELECT $2, 'hold', OPERATOR(pg_catalog.-) $3, $3, 0, $1 FROM h";

static SPIPlanPtr plan_order_holds;
static const char sql_order_holds[] =
"SELECT " HOLD_COLUMNS " FROM order_engine.stock_hold"
" WHERE order_no OPERATOR(pg_catalog.=) $1 ORDER BY sku_id FOR UPDATE";

static SPIPlanPtr plan_hold_lock;
static const char sql_hold_lock[] =
"SELECT " HOLD_COLUMNS " FROM order_engine.stock_hold"
" WHERE order_no OPERATOR(pg_catalog.=) $1 AND sku_id OPERATOR(pg_catalog.=) $2 FOR UPDATE";

static SPIPlanPtr plan_expired;
static const char sql_expired[] =
"SELECT " HOLD_COLUMNS " FROM order_engine.stock_hold"
" WHERE state OPERATOR(pg_catalog.=) 'held' AND expires_at OPERATOR(pg_catalog.<=) $1"
" ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED";

static SPIPlanPtr plan_transition;
static const char sql_transition[] =
"WITH h AS (UPDATE order_engine.stock_hold SET state = $3, updated_at = pg_catalog.now()"
"   WHERE order_no OPERATOR(pg_catalog.=) $1 AND sku_id OPERATOR(pg_catalog.=) $2"
"     AND state OPERATOR(pg_catalog.=) 'held' RETURNING 1)"
" INSERT INTO order_engine.stock_movement (sku_id, kind, d_available, d_held, d_sold, order_no)"
" SELECT $2, $4, $5, $6, $7, $1 FROM h";

static SPIPlanPtr plan_sale;
static const char sql_sale[] =
"INSERT INTO order_engine.stock_movement (sku_id, kind, d_available, d_held, d_sold)"
" VALUES ($1, 'sale', OPERATOR(pg_catalog.-) $2, 0, $2)";

/* spreads concurrent takers of a bucketed SKU over different buckets */
static uint32 take_counter = 0;

static Datum
parts_array(const StockPart *parts, int n, bool buckets)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));
	int			i;

	for (i = 0; i < n; i++)
		d[i] = buckets ? Int32GetDatum(parts[i].bucket) : Int64GetDatum(parts[i].qty);
	if (buckets)
		return PointerGetDatum(construct_array(d, n, INT4OID, sizeof(int32),
											   true, TYPALIGN_INT));
	return PointerGetDatum(construct_array(d, n, INT8OID, sizeof(int64),
										   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

static inline bool
col_isnull(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;

	(void) SPI_getbinval(tup, desc, col, &isnull);
	return isnull;
}

static inline Datum
col(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	if (isnull)
		elog(ERROR, "order_engine: unexpected null in column %d", col);
	return d;
}

/*
 * Serialise reserve/confirm/release of one order number for the rest of
 * the transaction, so a repeat never races its original.
 */
static inline void
order_lock_tag(LOCKTAG *tag, int64 order_no)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId,
						 (uint32) (((uint64) order_no) >> 32),
						 (uint32) order_no,
						 OE_ORDER_LOCK_CLASS);
}

void
OeStockLockOrder(int64 order_no)
{
	LOCKTAG		tag;

	order_lock_tag(&tag, order_no);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
}

/*
 * The same lock, if nobody holds it: close_unpaid takes it before any
 * stock lock (the order every client takes them in) and leaves an order
 * whose number is busy to the next batch rather than wait with the
 * batch's bucket locks held.
 */
bool
OeStockTryLockOrder(int64 order_no)
{
	LOCKTAG		tag;

	order_lock_tag(&tag, order_no);
	return LockAcquire(&tag, ExclusiveLock, false, true) != LOCKACQUIRE_NOT_AVAIL;
}

/* copy the hold rows of the last SPI result out (the next call frees it) */
static StockHold *
holds_from_result(int *n)
{
	TupleDesc	desc = SPI_tuptable->tupdesc;
	StockHold  *holds;
	uint64		i;

	*n = (int) SPI_processed;
	holds = palloc0(sizeof(StockHold) * Max(*n, 1));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		StockHold  *h = &holds[i];
		ArrayType  *ab = DatumGetArrayTypeP(col(tup, desc, 7));
		ArrayType  *aq = DatumGetArrayTypeP(col(tup, desc, 8));
		Datum	   *db,
				   *dq;
		int			nb,
					nq,
					k;

		h->order_no = DatumGetInt64(col(tup, desc, 1));
		h->sku_id = DatumGetInt64(col(tup, desc, 2));
		h->qty = DatumGetInt64(col(tup, desc, 3));
		h->state = TextDatumGetCString(col(tup, desc, 4));
		h->expires_at = DatumGetTimestampTz(col(tup, desc, 5));
		h->has_buyer = !col_isnull(tup, desc, 6);
		h->buyer_id = h->has_buyer ? DatumGetInt64(col(tup, desc, 6)) : 0;
		deconstruct_array(ab, INT4OID, sizeof(int32), true, TYPALIGN_INT,
						  &db, NULL, &nb);
		deconstruct_array(aq, INT8OID, sizeof(int64), FLOAT8PASSBYVAL,
						  TYPALIGN_DOUBLE, &dq, NULL, &nq);
		if (nb != nq || nb < 1)
			elog(ERROR, "order_engine: hold of order " INT64_FORMAT " has malformed bucket parts",
				 h->order_no);
		h->nparts = nb;
		h->parts = palloc(sizeof(StockPart) * nb);
		for (k = 0; k < nb; k++)
		{
			h->parts[k].bucket = DatumGetInt32(db[k]);
			h->parts[k].qty = DatumGetInt64(dq[k]);
		}
	}
	SPI_freetuptable(SPI_tuptable);
	return holds;
}

static void
move_bucket(int64 sku_id, int32 bucket, int64 da, int64 dh, int64 ds)
{
	static const Oid types[] = {INT8OID, INT4OID, INT8OID, INT8OID, INT8OID};
	Datum		v[5];

	v[0] = Int64GetDatum(sku_id);
	v[1] = Int32GetDatum(bucket);
	v[2] = Int64GetDatum(da);
	v[3] = Int64GetDatum(dh);
	v[4] = Int64GetDatum(ds);
	OeExecPlan(OeCachedPlan(&plan_move, sql_move, 5, types), v, NULL, false, 0);
	if (SPI_processed != 1)
		elog(ERROR, "order_engine: bucket %d of SKU " INT64_FORMAT " is missing",
			 bucket, sku_id);
}

static void
tally_sub(int64 sku_id, int64 buyer_id, int64 qty)
{
	static const Oid types[] = {INT8OID, INT8OID, INT8OID};
	Datum		v[3];

	v[0] = Int64GetDatum(sku_id);
	v[1] = Int64GetDatum(buyer_id);
	v[2] = Int64GetDatum(qty);
	OeExecPlan(OeCachedPlan(&plan_tally_sub, sql_tally_sub, 3, types), v, NULL, false, 0);
}

/*
 * Count qty against the buyer's purchase limit, or raise
 * PURCHASE_LIMIT_EXCEEDED.  The upsert locks the (sku, buyer) tally row,
 * so two sessions of one buyer are counted one after the other.
 */
static void
tally_add(int64 sku_id, int64 buyer_id, int64 qty, bool has_limit, int64 limit)
{
	static const Oid types[] = {INT8OID, INT8OID, INT8OID, INT8OID};
	Datum		v[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};

	if (has_limit && qty > limit)
		ereport(ERROR,
				(errcode(ERRCODE_OE_PURCHASE_LIMIT_EXCEEDED),
				 errmsg("purchase limit of SKU " INT64_FORMAT " exceeded", sku_id),
				 errdetail("Buyer " INT64_FORMAT " asks for " INT64_FORMAT " units; the limit is " INT64_FORMAT " per buyer.",
						   buyer_id, qty, limit)));
	v[0] = Int64GetDatum(sku_id);
	v[1] = Int64GetDatum(buyer_id);
	v[2] = Int64GetDatum(qty);
	v[3] = Int64GetDatum(limit);
	if (!has_limit)
		nulls[3] = 'n';
	OeExecPlan(OeCachedPlan(&plan_tally_add, sql_tally_add, 4, types), v, nulls, false, 0);
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_OE_PURCHASE_LIMIT_EXCEEDED),
				 errmsg("purchase limit of SKU " INT64_FORMAT " exceeded", sku_id),
				 errdetail("Buyer " INT64_FORMAT " already holds or bought units of this SKU; " INT64_FORMAT " more would pass the limit of " INT64_FORMAT ".",
						   buyer_id, qty, limit)));
}

/* what one attempt to take stock works with */
typedef struct TakeArgs
{
	int64		sku_id;
	int64		qty;
	int32		nbuckets;
	bool		to_held;
	StockPart  *parts;			/* out: allocated in the caller's context */
	int			nparts;
} TakeArgs;

static Datum *
take_values(const TakeArgs *t, Datum *v)
{
	v[0] = Int64GetDatum(t->sku_id);
	v[1] = Int64GetDatum(t->qty);
	v[2] = Int64GetDatum(t->to_held ? t->qty : 0);
	v[3] = Int64GetDatum(t->to_held ? 0 : t->qty);
	return v;
}

/* one part from the single-row result of the last statement, if any */
static bool
take_one_result(TakeArgs *t, MemoryContext cxt)
{
	if (SPI_processed != 1)
		return false;
	t->parts = MemoryContextAlloc(cxt, sizeof(StockPart));
	t->parts[0].bucket = DatumGetInt32(col(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	t->parts[0].qty = t->qty;
	t->nparts = 1;
	SPI_freetuptable(SPI_tuptable);
	return true;
}

/*
 * Serve qty from the rows (bucket, available) of the last statement, all
 * locked by us, in their order; false, moving nothing, when they are short.
 */
static bool
take_from_locked(TakeArgs *t, MemoryContext cxt)
{
	int64		remaining = t->qty;
	StockPart  *p = MemoryContextAlloc(cxt, sizeof(StockPart) * Max(SPI_processed, 1));
	int			np = 0;
	uint64		i;

	for (i = 0; i < SPI_processed && remaining > 0; i++)
	{
		int32		bucket = DatumGetInt32(col(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
		int64		avail = DatumGetInt64(col(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2));
		int64		q = Min(avail, remaining);

		p[np].bucket = bucket;
		p[np].qty = q;
		np++;
		remaining -= q;
	}
	SPI_freetuptable(SPI_tuptable);
	if (remaining > 0)
		return false;
	for (i = 0; i < (uint64) np; i++)
		move_bucket(t->sku_id, p[i].bucket, -p[i].qty,
					t->to_held ? p[i].qty : 0, t->to_held ? 0 : p[i].qty);
	t->parts = p;
	t->nparts = np;
	return true;
}

/* tier 1: one bucket, from a per-backend start, that nobody holds locked */
static bool
take_skip_one(TakeArgs *t, MemoryContext cxt)
{
	static const Oid types[] = {INT8OID, INT8OID, INT8OID, INT8OID, INT4OID, INT4OID};
	Datum		v[6];

	take_values(t, v);
	v[4] = Int32GetDatum((int32) (((uint32) MyProcPid + take_counter++) % (uint32) t->nbuckets));
	v[5] = Int32GetDatum(t->nbuckets);
	OeExecPlan(OeCachedPlan(&plan_take_skip, sql_take_skip, 6, types), v, NULL, false, 1);
	return take_one_result(t, cxt);
}

/* tier 2: several buckets nobody holds locked, when their sum suffices */
static bool
take_skip_many(TakeArgs *t, MemoryContext cxt)
{
	static const Oid types[] = {INT8OID};
	Datum		v[1];

	v[0] = Int64GetDatum(t->sku_id);
	OeExecPlan(OeCachedPlan(&plan_gather_skip, sql_gather_skip, 1, types), v, NULL, false, 0);
	return take_from_locked(t, cxt);
}

/* tier 3: wait for one bucket that had enough, then take from it */
static bool
take_wait_one(TakeArgs *t, MemoryContext cxt)
{
	static const Oid types[] = {INT8OID, INT8OID, INT8OID, INT8OID, INT4OID, INT4OID};
	Datum		v[6];

	take_values(t, v);
	v[4] = Int32GetDatum((int32) (((uint32) MyProcPid + take_counter++) % (uint32) t->nbuckets));
	v[5] = Int32GetDatum(t->nbuckets);
	OeExecPlan(OeCachedPlan(&plan_take_wait, sql_take_wait, 6, types), v, NULL, false, 1);
	return take_one_result(t, cxt);
}

/*
 * Run one attempt in a subtransaction that is rolled back when it takes
 * nothing.  Why: in READ COMMITTED a row is locked in its newest version
 * before the statement's condition ("available >= qty") is rechecked on
 * it, so an attempt that takes nothing may still have locked buckets.
 * Waiting for buckets in the ordered path while holding such a lock closes
 * a cycle with another caller of that path ("deadlock detected" in the
 * stampede test, about one call in 200); the rollback drops those locks.
 */
typedef struct TakeAttempt
{
	bool		(*attempt) (TakeArgs *, MemoryContext);
	TakeArgs   *t;
	MemoryContext cxt;
} TakeAttempt;

static bool
take_attempt_work(void *arg)
{
	TakeAttempt *a = (TakeAttempt *) arg;

	return a->attempt(a->t, a->cxt);
}

static bool
take_attempt(bool (*attempt) (TakeArgs *, MemoryContext), TakeArgs *t)
{
	TakeAttempt a = {attempt, t, CurrentMemoryContext};

	/* an error (a lock timeout, a cancel) rolls it back and is re-thrown */
	return OeRunInSubtransaction(take_attempt_work, &a, NULL);
}

/*
 * Take qty units of a SKU into held (to_held) or sold; on success *parts
 * says from which buckets.  false when the SKU does not have qty units.
 *
 * A bucketed SKU tries, cheapest first: one unlocked bucket (SKIP LOCKED);
 * several unlocked buckets; waiting for one bucket that had enough; and
 * last, waiting for every bucket with stock in bucket order.  The first
 * three never leave a lock behind when they fail (take_attempt), so the
 * last one starts holding no bucket of this SKU and, locking in bucket
 * order like every other caller, cannot deadlock.  The middle tiers keep
 * callers out of the ordered path, which holds all the buckets while it
 * waits and so turns every other caller's SKIP LOCKED take into a miss:
 * a convoy (measured: 15 of 16 clients queued on one bucket).
 */
static bool
take(int64 sku_id, int64 qty, int32 nbuckets, bool to_held,
	 StockPart **parts, int *nparts)
{
	TakeArgs	t;
	Datum		v[4];
	bool		got;

	t.sku_id = sku_id;
	t.qty = qty;
	t.nbuckets = nbuckets;
	t.to_held = to_held;
	t.parts = NULL;
	t.nparts = 0;
	take_values(&t, v);

	if (nbuckets <= 1)
	{
		static const Oid types[] = {INT8OID, INT8OID, INT8OID, INT8OID};

		/* one row: a failed take may keep its lock, there is no other */
		OeExecPlan(OeCachedPlan(&plan_take0, sql_take0, 4, types), v, NULL, false, 0);
		got = (SPI_processed == 1);
		if (got)
		{
			t.parts = palloc(sizeof(StockPart));
			t.parts[0].bucket = 0;
			t.parts[0].qty = qty;
			t.nparts = 1;
		}
	}
	else
		got = take_attempt(take_skip_one, &t) ||
			take_attempt(take_skip_many, &t) ||
			take_attempt(take_wait_one, &t);

	if (!got)
	{
		static const Oid types[] = {INT8OID};

		/* wait for and lock every bucket with stock, in bucket order */
		OeExecPlan(OeCachedPlan(&plan_lock_avail, sql_lock_avail, 1, types), v, NULL, false, 0);
		got = take_from_locked(&t, CurrentMemoryContext);
	}
	if (got)
	{
		*parts = t.parts;
		*nparts = t.nparts;
	}
	return got;
}

/*
 * Move a held hold (locked by the caller) to confirmed or released: the
 * tally (release only), the bucket rows it points at, the hold row and
 * the journal.
 */
static void
finish_hold(const StockHold *h, bool confirm)
{
	static const Oid types[] = {INT8OID, INT8OID, TEXTOID, TEXTOID, INT8OID, INT8OID, INT8OID};
	Datum		v[7];
	int			k;

	if (!confirm && h->has_buyer)
		tally_sub(h->sku_id, h->buyer_id, h->qty);
	for (k = 0; k < h->nparts; k++)
	{
		if (confirm)
			move_bucket(h->sku_id, h->parts[k].bucket, 0, -h->parts[k].qty, h->parts[k].qty);
		else
			move_bucket(h->sku_id, h->parts[k].bucket, h->parts[k].qty, -h->parts[k].qty, 0);
	}
	v[0] = Int64GetDatum(h->order_no);
	v[1] = Int64GetDatum(h->sku_id);
	v[2] = CStringGetTextDatum(confirm ? "confirmed" : "released");
	v[3] = CStringGetTextDatum(confirm ? "confirm" : "release");
	v[4] = Int64GetDatum(confirm ? 0 : h->qty);
	v[5] = Int64GetDatum(-h->qty);
	v[6] = Int64GetDatum(confirm ? h->qty : 0);
	OeExecPlan(OeCachedPlan(&plan_transition, sql_transition, 7, types), v, NULL, false, 0);
	if (SPI_processed != 1)
		elog(ERROR, "order_engine: hold of order " INT64_FORMAT " on SKU " INT64_FORMAT " changed under its lock",
			 h->order_no, h->sku_id);
}

static int
line_cmp(const void *a, const void *b)
{
	int64		x = ((const ReserveLine *) a)->sku_id;
	int64		y = ((const ReserveLine *) b)->sku_id;

	return (x > y) - (x < y);
}

static int
hold_cmp(const void *a, const void *b)
{
	const StockHold *x = a;
	const StockHold *y = b;

	if (x->sku_id != y->sku_id)
		return (x->sku_id > y->sku_id) - (x->sku_id < y->sku_id);
	return (x->order_no > y->order_no) - (x->order_no < y->order_no);
}

/* run reserve's lookup; returns how many holds the order already has */
static int64
reserve_lookup(int64 order_no, ReserveLine *lines, int nlines,
			   char ***hstates, int64 **hqtys, bool **hbuyer_null, int64 **hbuyers,
			   bool **hexists)
{
	static const Oid types[] = {INT8ARRAYOID, INT8OID};
	Datum		v[2];
	int64	   *skus = palloc(sizeof(int64) * nlines);
	int64		order_holds = 0;
	int			i;

	for (i = 0; i < nlines; i++)
		skus[i] = lines[i].sku_id;
	v[0] = PointerGetDatum(OeInt8Array(skus, nlines));
	v[1] = Int64GetDatum(order_no);
	OeExecPlan(OeCachedPlan(&plan_info, sql_info, 2, types), v, NULL, false, 0);
	if (SPI_processed != (uint64) nlines)
		elog(ERROR, "order_engine: stock lookup returned %llu rows for %d lines",
			 (unsigned long long) SPI_processed, nlines);

	*hstates = palloc0(sizeof(char *) * nlines);
	*hqtys = palloc0(sizeof(int64) * nlines);
	*hbuyer_null = palloc0(sizeof(bool) * nlines);
	*hbuyers = palloc0(sizeof(int64) * nlines);
	*hexists = palloc0(sizeof(bool) * nlines);
	for (i = 0; i < nlines; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		ReserveLine *l = &lines[i];

		l->known = DatumGetBool(col(tup, desc, 1));
		l->has_limit = !col_isnull(tup, desc, 2);
		l->limit = l->has_limit ? DatumGetInt64(col(tup, desc, 2)) : 0;
		l->nbuckets = l->known ? DatumGetInt32(col(tup, desc, 3)) : 1;
		l->available = DatumGetInt64(col(tup, desc, 4));
		(*hexists)[i] = !col_isnull(tup, desc, 5);
		if ((*hexists)[i])
		{
			(*hqtys)[i] = DatumGetInt64(col(tup, desc, 5));
			(*hstates)[i] = TextDatumGetCString(col(tup, desc, 6));
			(*hbuyer_null)[i] = col_isnull(tup, desc, 7);
			(*hbuyers)[i] = (*hbuyer_null)[i] ? 0 : DatumGetInt64(col(tup, desc, 7));
		}
		order_holds = DatumGetInt64(col(tup, desc, 8));
	}
	SPI_freetuptable(SPI_tuptable);
	return order_holds;
}

static int64
order_hold_count(int64 order_no)
{
	static const Oid types[] = {INT8OID};
	Datum		v[1];
	int64		n;

	v[0] = Int64GetDatum(order_no);
	OeExecPlan(OeCachedPlan(&plan_order_count, sql_order_count, 1, types), v, NULL, false, 0);
	n = DatumGetInt64(col(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	SPI_freetuptable(SPI_tuptable);
	return n;
}

/*
 * Hold every line of an order or none.  Lines must have been checked
 * (OeStockCheckLines).  true: all held (or held by an earlier identical
 * call); false: some SKU has not enough available, nothing changed.
 */
bool
OeStockReserve(int64 order_no, int nlines, const int64 *sku_ids,
			   const int64 *qtys, int64 ttl_usecs, bool has_buyer, int64 buyer_id)
{
	ReserveLine *lines;
	char	  **hstates;
	int64	   *hqtys,
			   *hbuyers;
	bool	   *hbuyer_null,
			   *hexists;
	bool		locked = false;
	bool		result = true;
	int64		order_holds;
	TimestampTz expires_at;
	int			i,
				done;

	/* a one-line order on a sold-out SKU: two index probes, no SPI */
	if (nlines == 1 && OeStockPeekShort(order_no, sku_ids[0], qtys[0]))
		return false;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "order_engine: SPI_connect failed");

	lines = palloc0(sizeof(ReserveLine) * nlines);
	for (i = 0; i < nlines; i++)
	{
		lines[i].sku_id = sku_ids[i];
		lines[i].qty = qtys[i];
	}
	qsort(lines, nlines, sizeof(ReserveLine), line_cmp);

	for (;;)
	{
		order_holds = reserve_lookup(order_no, lines, nlines, &hstates, &hqtys,
									 &hbuyer_null, &hbuyers, &hexists);
		if (order_holds > 0)
		{
			/* a repeat: it must be the same order, and still held */
			for (i = 0; i < nlines; i++)
			{
				if (!hexists[i] || hqtys[i] != lines[i].qty ||
					hbuyer_null[i] != !has_buyer || (has_buyer && hbuyers[i] != buyer_id))
					break;
			}
			if (i < nlines || order_holds != nlines)
				ereport(ERROR,
						(errcode(ERRCODE_OE_ORDER_CONFLICT),
						 errmsg("order " INT64_FORMAT " already holds other stock", order_no),
						 errdetail("A repeated reserve must name the same SKUs, quantities and buyer as the first one."),
						 errhint("Use a new order number for a different order.")));
			for (i = 0; i < nlines; i++)
				if (strcmp(hstates[i], "released") == 0)
					ereport(ERROR,
							(errcode(ERRCODE_OE_HOLD_STATE_CONFLICT),
							 errmsg("the holds of order " INT64_FORMAT " were released", order_no),
							 errdetail("The hold on SKU " INT64_FORMAT " was released or expired.", lines[i].sku_id),
							 errhint("Use a new order number to hold stock again.")));
			goto out;
		}
		for (i = 0; i < nlines; i++)
			if (!lines[i].known)
				OeStockSkuNotFound(lines[i].sku_id);
		/* sold out as of our snapshot: answer without touching a row */
		for (i = 0; i < nlines; i++)
			if (lines[i].available < lines[i].qty)
			{
				result = false;
				goto out;
			}
		if (locked)
			break;
		OeStockLockOrder(order_no);
		locked = true;
		/* an identical call may have committed before we got the lock */
		if (order_hold_count(order_no) == 0)
			break;
	}

	for (done = 0; done < nlines; done++)
	{
		ReserveLine *l = &lines[done];

		if (has_buyer)
		{
			tally_add(l->sku_id, buyer_id, l->qty, l->has_limit, l->limit);
			l->tallied = true;
		}
		if (!take(l->sku_id, l->qty, l->nbuckets, true, &l->parts, &l->nparts))
			break;
	}
	if (done < nlines)
	{
		/* give back what we took; we still hold those rows locked */
		for (i = 0; i <= done; i++)
		{
			ReserveLine *l = &lines[i];
			int			k;

			if (l->tallied)
				tally_sub(l->sku_id, buyer_id, l->qty);
			if (i == done)
				break;
			for (k = 0; k < l->nparts; k++)
				move_bucket(l->sku_id, l->parts[k].bucket, l->parts[k].qty, -l->parts[k].qty, 0);
		}
		result = false;
		goto out;
	}

	expires_at = GetCurrentTimestamp() + ttl_usecs;
	for (i = 0; i < nlines; i++)
	{
		static const Oid types[] = {INT8OID, INT8OID, INT8OID, TIMESTAMPTZOID,
		INT8OID, INT4ARRAYOID, INT8ARRAYOID};
		Datum		v[7];
		char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};

		v[0] = Int64GetDatum(order_no);
		v[1] = Int64GetDatum(lines[i].sku_id);
		v[2] = Int64GetDatum(lines[i].qty);
		v[3] = TimestampTzGetDatum(expires_at);
		v[4] = Int64GetDatum(buyer_id);
		if (!has_buyer)
			nulls[4] = 'n';
		v[5] = parts_array(lines[i].parts, lines[i].nparts, true);
		v[6] = parts_array(lines[i].parts, lines[i].nparts, false);
		OeExecPlan(OeCachedPlan(&plan_hold_insert, sql_hold_insert, 7, types), v, nulls, false, 0);
	}
	/* the worker releases these holds at expires_at: wake it if sooner */
	OeWorkerWakeAtCommit(expires_at);

out:
	SPI_finish();
	return result;
}

/*
 * Held lines of an order → sold.  Returns how many this call confirmed.
 * An unknown order is ORDER_NOT_FOUND; a released or expired line is
 * HOLD_STATE_CONFLICT and nothing changes.
 */
int32
OeStockConfirm(int64 order_no)
{
	return OeStockConfirmAt(order_no, GetCurrentTimestamp());
}

/* the same, a hold counting as expired at or before now (pay_order's clock) */
int32
OeStockConfirmAt(int64 order_no, TimestampTz now)
{
	static const Oid types[] = {INT8OID};
	Datum		v[1];
	StockHold  *holds;
	int			n,
				i;
	int32		count = 0;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "order_engine: SPI_connect failed");
	OeStockLockOrder(order_no);
	v[0] = Int64GetDatum(order_no);
	OeExecPlan(OeCachedPlan(&plan_order_holds, sql_order_holds, 1, types), v, NULL, false, 0);
	holds = holds_from_result(&n);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OE_ORDER_NOT_FOUND),
				 errmsg("order " INT64_FORMAT " holds no stock", order_no),
				 errhint("Reserve the order's stock before confirming it.")));
	for (i = 0; i < n; i++)
	{
		if (strcmp(holds[i].state, "released") == 0)
			ereport(ERROR,
					(errcode(ERRCODE_OE_HOLD_STATE_CONFLICT),
					 errmsg("cannot confirm order " INT64_FORMAT ": its hold on SKU " INT64_FORMAT " was released",
							order_no, holds[i].sku_id),
					 errdetail("A released hold has given its stock back; it cannot become a sale.")));
		if (strcmp(holds[i].state, "held") == 0 && holds[i].expires_at <= now)
			ereport(ERROR,
					(errcode(ERRCODE_OE_HOLD_STATE_CONFLICT),
					 errmsg("cannot confirm order " INT64_FORMAT ": its hold on SKU " INT64_FORMAT " has expired",
							order_no, holds[i].sku_id),
					 errdetail("The hold expired at %s.", timestamptz_to_str(holds[i].expires_at))));
	}
	for (i = 0; i < n; i++)
		if (strcmp(holds[i].state, "held") == 0)
		{
			finish_hold(&holds[i], true);
			count++;
		}
	SPI_finish();
	return count;
}

/*
 * Held lines of an order → available.  Returns how many this call
 * released (0 when nothing is held, also for an unknown order).  A
 * confirmed line is HOLD_STATE_CONFLICT: a sale is not undone here.
 */
int32
OeStockRelease(int64 order_no)
{
	static const Oid types[] = {INT8OID};
	Datum		v[1];
	StockHold  *holds;
	int			n,
				i;
	int32		count = 0;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "order_engine: SPI_connect failed");
	OeStockLockOrder(order_no);
	v[0] = Int64GetDatum(order_no);
	OeExecPlan(OeCachedPlan(&plan_order_holds, sql_order_holds, 1, types), v, NULL, false, 0);
	holds = holds_from_result(&n);
	for (i = 0; i < n; i++)
		if (strcmp(holds[i].state, "confirmed") == 0)
			ereport(ERROR,
					(errcode(ERRCODE_OE_HOLD_STATE_CONFLICT),
					 errmsg("cannot release order " INT64_FORMAT ": its hold on SKU " INT64_FORMAT " is confirmed",
							order_no, holds[i].sku_id),
					 errdetail("A confirmed hold is a sale; release does not undo sales.")));
	for (i = 0; i < n; i++)
		if (strcmp(holds[i].state, "held") == 0)
		{
			finish_hold(&holds[i], false);
			count++;
		}
	SPI_finish();
	return count;
}

/*
 * Release one hold if it is still held (waiting for its row lock).  The
 * primitive a sweeper uses; false when the hold is missing or not held.
 */
bool
OeStockReleaseHold(int64 order_no, int64 sku_id)
{
	static const Oid types[] = {INT8OID, INT8OID};
	Datum		v[2];
	StockHold  *holds;
	int			n;
	bool		released = false;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "order_engine: SPI_connect failed");
	v[0] = Int64GetDatum(order_no);
	v[1] = Int64GetDatum(sku_id);
	OeExecPlan(OeCachedPlan(&plan_hold_lock, sql_hold_lock, 2, types), v, NULL, false, 0);
	holds = holds_from_result(&n);
	if (n == 1 && strcmp(holds[0].state, "held") == 0)
	{
		finish_hold(&holds[0], false);
		released = true;
	}
	SPI_finish();
	return released;
}

/*
 * Release up to max_rows held holds that expired at or before now, oldest
 * first.  Holds locked by someone else (a confirm in flight) are skipped,
 * not waited for; the batch is released in sku_id order, the order every
 * other stock call locks in.  Returns how many were released.
 */
int32
OeStockReleaseExpiredHolds(TimestampTz now, int32 max_rows)
{
	static const Oid types[] = {TIMESTAMPTZOID, INT4OID};
	Datum		v[2];
	StockHold  *holds;
	int			n,
				i;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "order_engine: SPI_connect failed");
	v[0] = TimestampTzGetDatum(now);
	v[1] = Int32GetDatum(max_rows);
	OeExecPlan(OeCachedPlan(&plan_expired, sql_expired, 2, types), v, NULL, false, 0);
	holds = holds_from_result(&n);
	qsort(holds, n, sizeof(StockHold), hold_cmp);
	for (i = 0; i < n; i++)
		finish_hold(&holds[i], false);
	SPI_finish();
	return n;
}

/*
 * Sell qty units directly (no hold).  false when not enough is available.
 */
bool
OeStockTryDeduct(int64 sku_id, int64 qty)
{
	static const Oid types[] = {INT8OID};
	static const Oid sale_types[] = {INT8OID, INT8OID};
	Datum		v[2];
	int32		nbuckets;
	int64		available;
	StockPart  *parts;
	int			nparts;
	bool		ok = false;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "order_engine: SPI_connect failed");
	v[0] = Int64GetDatum(sku_id);
	OeExecPlan(OeCachedPlan(&plan_sku_info, sql_sku_info, 1, types), v, NULL, false, 0);
	if (SPI_processed == 0)
		OeStockSkuNotFound(sku_id);
	nbuckets = DatumGetInt32(col(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	available = DatumGetInt64(col(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2));
	SPI_freetuptable(SPI_tuptable);

	if (available >= qty && take(sku_id, qty, nbuckets, false, &parts, &nparts))
	{
		v[1] = Int64GetDatum(qty);
		OeExecPlan(OeCachedPlan(&plan_sale, sql_sale, 2, sale_types), v, NULL, false, 0);
		ok = true;
	}
	SPI_finish();
	return ok;
}
