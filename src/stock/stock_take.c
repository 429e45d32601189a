/*-------------------------------------------------------------------------
 *
 * stock_take.c
 *	  Taking units out of a SKU's stock_bucket rows: the conditional
 *	  delta on one bucket row (OeStockMoveBucket), the tiers of a take
 *	  (OeStockTake, for reserve's holds and for sales), and try_deduct,
 *	  the direct sale that is a take and a journal row.
 *
 * A bucketed SKU is taken from a bucket nobody holds locked (SKIP LOCKED),
 * else from several unlocked ones, else after waiting for one; only when
 * none of that works do we lock every bucket that has stock, in bucket
 * order, and serve from several.  Stock never goes below zero: every
 * change is a delta conditional on what the row has.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#include "common/internal_sql.h"
#include "stock/stock.h"
#include "stock/stock_internal.h"

/* try_deduct's lookup: the SKU's bucket count and its unlocked availability */
static SPIPlanPtr plan_sku_info;
static const char sql_sku_info[] =
"SELECT s.nbuckets,"
"  (SELECT COALESCE(pg_catalog.sum(b.available), 0)::pg_catalog.int8"
"     FROM order_engine.stock_bucket b WHERE b.sku_id OPERATOR(pg_catalog.=) s.sku_id)"
" FROM order_engine.sku s WHERE s.sku_id OPERATOR(pg_catalog.=) $1";

/* the same and whether it is an escrow SKU (0.9) */
static SPIPlanPtr plan_sku_info_escrow;
static const char sql_sku_info_escrow[] =
"SELECT s.nbuckets,"
"  (SELECT COALESCE(pg_catalog.sum(b.available), 0)::pg_catalog.int8"
"     FROM order_engine.stock_bucket b WHERE b.sku_id OPERATOR(pg_catalog.=) s.sku_id),"
"  s.escrow"
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

/* try_deduct's journal row */
static SPIPlanPtr plan_sale;
static const char sql_sale[] =
"INSERT INTO order_engine.stock_movement (sku_id, kind, d_available, d_held, d_sold)"
" VALUES ($1, 'sale', OPERATOR(pg_catalog.-) $2, 0, $2)";

/* spreads concurrent takers of a bucketed SKU over different buckets */
static uint32 take_counter = 0;

/*
 * Add (da, dh, ds) to (available, held, sold) of one bucket row that the
 * caller holds locked; the row must exist.
 */
void
OeStockMoveBucket(int64 sku_id, int32 bucket, int64 da, int64 dh, int64 ds)
{
	static const Oid types[] = {INT8OID, INT4OID, INT8OID, INT8OID, INT8OID};
	Datum		v[5];

	int			done = OeStockBucketRowAdd(sku_id, bucket, PG_INT64_MIN, da, dh, ds, NULL);

	if (done < 0)
	{
		/* the table needs the UPDATE statement (bucket_row.c) */
		v[0] = Int64GetDatum(sku_id);
		v[1] = Int32GetDatum(bucket);
		v[2] = Int64GetDatum(da);
		v[3] = Int64GetDatum(dh);
		v[4] = Int64GetDatum(ds);
		OeExecPlan(OeCachedPlan(&plan_move, sql_move, 5, types), v, NULL, false, 0);
		done = (SPI_processed == 1);
	}
	if (done != 1)
		elog(ERROR, "order_engine: bucket %d of SKU " INT64_FORMAT " is missing",
			 bucket, sku_id);
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
	t->parts[0].bucket = DatumGetInt32(StockCol(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
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
		int32		bucket = DatumGetInt32(StockCol(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
		int64		avail = DatumGetInt64(StockCol(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2));
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
		OeStockMoveBucket(t->sku_id, p[i].bucket, -p[i].qty,
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
bool
OeStockTake(int64 sku_id, int64 qty, int32 nbuckets, bool to_held,
			ItemPointer bucket_tid, StockPart **parts, int *nparts)
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
		int			done = OeStockBucketRowAdd(sku_id, 0, qty, -qty,
											   to_held ? qty : 0, to_held ? 0 : qty,
											   bucket_tid);

		if (done < 0)
		{
			/* the table needs the UPDATE statement (bucket_row.c) */
			OeExecPlan(OeCachedPlan(&plan_take0, sql_take0, 4, types), v, NULL, false, 0);
			done = (SPI_processed == 1);
		}
		got = (done == 1);
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
	bool		escrow = false;
	StockPart  *parts;
	int			nparts;
	bool		ok = false;

	OeSqlConnect();
	v[0] = Int64GetDatum(sku_id);
	if (OeColumnExists("sku", "escrow"))
		OeExecPlan(OeCachedPlan(&plan_sku_info_escrow, sql_sku_info_escrow, 1, types), v, NULL, false, 0);
	else
		OeExecPlan(OeCachedPlan(&plan_sku_info, sql_sku_info, 1, types), v, NULL, false, 0);
	if (SPI_processed == 0)
		OeStockSkuNotFound(sku_id);
	nbuckets = DatumGetInt32(StockCol(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	available = DatumGetInt64(StockCol(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2));
	if (SPI_tuptable->tupdesc->natts >= 3)
		escrow = DatumGetBool(StockCol(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3));
	SPI_freetuptable(SPI_tuptable);

	/* an escrow SKU sells from its counter first (escrow_counter.c) */
	if (escrow && OeStockTakeEscrowUnits(sku_id, qty, true))
	{
		v[1] = Int64GetDatum(qty);
		OeExecPlan(OeCachedPlan(&plan_sale, sql_sale, 2, sale_types), v, NULL, false, 0);
		ok = true;
	}
	else if (available >= qty && OeStockTake(sku_id, qty, nbuckets, false, NULL, &parts, &nparts))
	{
		v[1] = Int64GetDatum(qty);
		OeExecPlan(OeCachedPlan(&plan_sale, sql_sale, 2, sale_types), v, NULL, false, 0);
		ok = true;
	}
	SPI_finish();
	return ok;
}
