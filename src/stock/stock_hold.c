/*-------------------------------------------------------------------------
 *
 * stock_hold.c
 *	  The end of a hold: confirm (held -> sold), release (held ->
 *	  available), the release of one hold and of a batch of expired ones
 *	  (the worker's), and the order-number lock every call on an order's
 *	  holds takes first.
 *
 * A hold row says which bucket rows its units sit in (buckets,
 * bucket_qtys); confirm and release return them to the same rows, in the
 * lock order of stock.c: the order (advisory lock), then per SKU in
 * ascending sku_id the buyer's tally, then bucket rows in ascending bucket.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "storage/lock.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "common/arrays.h"
#include "common/errors.h"
#include "common/internal_sql.h"
#include "common/lock_tags.h"
#include "stock/stock.h"
#include "stock/stock_internal.h"

#define HOLD_COLUMNS "order_no, sku_id, qty, state, expires_at, buyer_id, buckets, bucket_qtys"
/* HOLD_COLUMNS, in order */
enum
{
	Anum_hold_order_no = 1,
	Anum_hold_sku_id,
	Anum_hold_qty,
	Anum_hold_state,
	Anum_hold_expires_at,
	Anum_hold_buyer_id,
	Anum_hold_buckets,
	Anum_hold_bucket_qtys
};

static SPIPlanPtr plan_order_holds;
static const char sql_order_holds[] =
"SELECT " HOLD_COLUMNS " FROM order_engine.stock_hold"
" WHERE order_no OPERATOR(pg_catalog.=) $1 ORDER BY sku_id FOR UPDATE";

static SPIPlanPtr plan_hold_lock;
static const char sql_hold_lock[] =
"SELECT " HOLD_COLUMNS " FROM order_engine.stock_hold"
" WHERE order_no OPERATOR(pg_catalog.=) $1 AND sku_id OPERATOR(pg_catalog.=) $2 FOR UPDATE";

/*
 * A held hold confirmed or released.  From 1.0 the hold row is the hold's
 * journal (OeStockJournalsHolds): the update is all; before, the journal
 * got a row of the hold's deltas too.
 */
#define TRANSITION_HOLD \
"UPDATE order_engine.stock_hold SET state = $3, updated_at = pg_catalog.now()" \
"   WHERE order_no OPERATOR(pg_catalog.=) $1 AND sku_id OPERATOR(pg_catalog.=) $2" \
"     AND state OPERATOR(pg_catalog.=) 'held'"
static SPIPlanPtr plan_transition;
static const char sql_transition[] = TRANSITION_HOLD;
static SPIPlanPtr plan_transition_journaled;
static const char sql_transition_journaled[] =
"WITH h AS (" TRANSITION_HOLD " RETURNING 1)"
" INSERT INTO order_engine.stock_movement (sku_id, kind, d_available, d_held, d_sold, order_no)"
" SELECT $2, $4, $5, $6, $7, $1 FROM h";

/*
 * The worker's release of a batch, set-based: the holds, their bucket
 * parts, the buyers' tallies and the journal in one statement instead of
 * five statements per hold (release one hold, below).  Every bucket and
 * tally row is updated once, with the batch's sum; the journal gets a row
 * per hold as before (data-modifying WITH parts run whether or not the
 * final SELECT reads them).  The caller names the holds, which it chose
 * as due and locked (jobs/expiry.c): each is a probe of the primary key.
 * (It used to find them again by order number and expiry; a plan kept
 * from when the table was small joined that quadratically: 129 ms for 304
 * holds in the worker.)  The state it must still have, 'held', is a
 * parameter ($3), not a constant: with a constant the planner may use a
 * partial index "WHERE state = 'held'", and statistics that say few holds
 * are held (all released when ANALYZE last ran) made the kept plan a hash
 * join over a scan of every held hold, once per batch: 10% of the
 * worker's time in `perf` while it swept 1-second holds under a flash
 * sale.  A generic plan cannot prove a partial index's predicate from a
 * parameter, so only the primary key is left.
 */
enum
{
	Anum_due_holds = 1,
	Anum_due_parts,
	Anum_due_buckets_moved
};
static SPIPlanPtr plan_release_due;
static SPIPlanPtr plan_release_due_escrow;
static SPIPlanPtr plan_release_due_escrow_journaled;
#define RELEASE_DUE_HOLDS \
"WITH due AS (" \
"  SELECT d.order_no, d.sku_id" \
"    FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS d(order_no, sku_id))," \
" r AS (" \
"  UPDATE order_engine.stock_hold h SET state = 'released', updated_at = pg_catalog.now()" \
"    FROM due WHERE h.order_no OPERATOR(pg_catalog.=) due.order_no" \
"     AND h.sku_id OPERATOR(pg_catalog.=) due.sku_id AND h.state OPERATOR(pg_catalog.=) $3" \
"  RETURNING h.order_no, h.sku_id, h.qty, h.buyer_id, h.buckets, h.bucket_qtys),"

#define RELEASE_DUE_TALLY \
" t AS (" \
"  UPDATE order_engine.purchase_tally pt SET units = pt.units OPERATOR(pg_catalog.-) x.qty" \
"    FROM (SELECT r.sku_id, r.buyer_id, pg_catalog.sum(r.qty)::pg_catalog.int8 AS qty FROM r" \
"           WHERE r.buyer_id IS NOT NULL GROUP BY r.sku_id, r.buyer_id) x" \
"   WHERE pt.sku_id OPERATOR(pg_catalog.=) x.sku_id AND pt.buyer_id OPERATOR(pg_catalog.=) x.buyer_id" \
"  RETURNING 1)"

/* the stock tables before 0.9: no escrow */
static const char sql_release_due[] =
RELEASE_DUE_HOLDS
" parts AS ("
"  SELECT r.sku_id, p.bucket, pg_catalog.sum(p.qty)::pg_catalog.int8 AS qty"
"    FROM r, ROWS FROM (pg_catalog.unnest(r.buckets), pg_catalog.unnest(r.bucket_qtys)) AS p(bucket, qty)"
"   GROUP BY r.sku_id, p.bucket),"
" b AS ("
"  UPDATE order_engine.stock_bucket sb"
"     SET available = sb.available OPERATOR(pg_catalog.+) parts.qty,"
"         held = sb.held OPERATOR(pg_catalog.-) parts.qty"
"    FROM parts WHERE sb.sku_id OPERATOR(pg_catalog.=) parts.sku_id"
"     AND sb.bucket OPERATOR(pg_catalog.=) parts.bucket"
"  RETURNING 1),"
RELEASE_DUE_TALLY ","
" j AS ("
"  INSERT INTO order_engine.stock_movement (sku_id, kind, d_available, d_held, d_sold, order_no)"
"  SELECT r.sku_id, 'release', r.qty, OPERATOR(pg_catalog.-) r.qty, 0, r.order_no FROM r"
"   ORDER BY r.sku_id, r.order_no"
"  RETURNING 1)"
" SELECT (SELECT pg_catalog.count(*) FROM j), (SELECT pg_catalog.count(*) FROM parts),"
"        (SELECT pg_catalog.count(*) FROM b)";

/*
 * 0.9: an unfolded escrow hold (no bucket parts, escrow.c) is folded and
 * released in one: its units go from escrow to available on bucket 0,
 * and (before 1.0) it is journaled as a hold and a release, as folding it
 * first would (OeStockFoldHolds, then the release).  Each bucket row is
 * updated once, so its folded parts and its escrow holds are summed
 * together.
 */
#define RELEASE_DUE_ESCROW_PARTS \
" parts AS (" \
"  SELECT x.sku_id, x.bucket, pg_catalog.sum(x.qty)::pg_catalog.int8 AS qty," \
"         pg_catalog.sum(x.escrow)::pg_catalog.int8 AS escrow" \
"    FROM (SELECT r.sku_id, p.bucket, p.qty, 0 AS escrow" \
"            FROM r, ROWS FROM (pg_catalog.unnest(r.buckets), pg_catalog.unnest(r.bucket_qtys)) AS p(bucket, qty)" \
"          UNION ALL" \
"          SELECT r.sku_id, 0, r.qty, r.qty FROM r" \
"           WHERE pg_catalog.cardinality(r.buckets) OPERATOR(pg_catalog.=) 0) x" \
"   GROUP BY x.sku_id, x.bucket)," \
" b AS (" \
"  UPDATE order_engine.stock_bucket sb" \
"     SET available = sb.available OPERATOR(pg_catalog.+) parts.qty," \
"         held = sb.held OPERATOR(pg_catalog.-) (parts.qty OPERATOR(pg_catalog.-) parts.escrow)," \
"         escrow = sb.escrow OPERATOR(pg_catalog.-) parts.escrow" \
"    FROM parts WHERE sb.sku_id OPERATOR(pg_catalog.=) parts.sku_id" \
"     AND sb.bucket OPERATOR(pg_catalog.=) parts.bucket" \
"  RETURNING 1),"

/* 1.0: the released hold rows are the journal */
static const char sql_release_due_escrow[] =
RELEASE_DUE_HOLDS
RELEASE_DUE_ESCROW_PARTS
RELEASE_DUE_TALLY
" SELECT (SELECT pg_catalog.count(*) FROM r), (SELECT pg_catalog.count(*) FROM parts),"
"        (SELECT pg_catalog.count(*) FROM b)";

/* 0.9: an unfolded hold's journal is its hold row, then its release, per hold */
static const char sql_release_due_escrow_journaled[] =
RELEASE_DUE_HOLDS
RELEASE_DUE_ESCROW_PARTS
RELEASE_DUE_TALLY ","
" j AS ("
"  INSERT INTO order_engine.stock_movement (sku_id, kind, d_available, d_held, d_sold, order_no)"
"  SELECT y.sku_id, y.kind, y.d_available, y.d_held, 0, y.order_no"
"    FROM (SELECT r.sku_id, r.order_no, 0 AS step, 'hold'::pg_catalog.text AS kind,"
"                 OPERATOR(pg_catalog.-) r.qty AS d_available, r.qty AS d_held FROM r"
"           WHERE pg_catalog.cardinality(r.buckets) OPERATOR(pg_catalog.=) 0"
"          UNION ALL"
"          SELECT r.sku_id, r.order_no, 1, 'release', r.qty, OPERATOR(pg_catalog.-) r.qty FROM r) y"
"   ORDER BY y.sku_id, y.order_no, y.step"
"  RETURNING kind)"
" SELECT (SELECT pg_catalog.count(*) FROM j WHERE j.kind OPERATOR(pg_catalog.=) 'release'),"
"        (SELECT pg_catalog.count(*) FROM parts), (SELECT pg_catalog.count(*) FROM b)";

int64
OeStockReleaseHeldHolds(const int64 *order_nos, const int64 *sku_ids, int n)
{
	static const Oid types[] = {INT8ARRAYOID, INT8ARRAYOID, TEXTOID};
	Datum		v[3];
	HeapTuple	tup;
	int64		holds;
	int64		parts;
	int64		moved;

	if (n <= 0)
		return 0;
	OeSqlConnect();
	v[0] = PointerGetDatum(OeInt8Array((int64 *) order_nos, n));
	v[1] = PointerGetDatum(OeInt8Array((int64 *) sku_ids, n));
	v[2] = CStringGetTextDatum("held");
	if (!OeStockJournalsHolds())
		OeExecPlan(OeCachedPlan(&plan_release_due_escrow, sql_release_due_escrow, 3, types), v, NULL, false, 0);
	else if (OeColumnExists("stock_bucket", "escrow"))
		OeExecPlan(OeCachedPlan(&plan_release_due_escrow_journaled, sql_release_due_escrow_journaled, 3, types),
				   v, NULL, false, 0);
	else
		OeExecPlan(OeCachedPlan(&plan_release_due, sql_release_due, 3, types), v, NULL, false, 0);
	tup = SPI_tuptable->vals[0];
	holds = DatumGetInt64(StockCol(tup, SPI_tuptable->tupdesc, Anum_due_holds));
	parts = DatumGetInt64(StockCol(tup, SPI_tuptable->tupdesc, Anum_due_parts));
	moved = DatumGetInt64(StockCol(tup, SPI_tuptable->tupdesc, Anum_due_buckets_moved));
	SPI_finish();
	/* every part names a bucket row; one missing is a broken hold */
	if (moved != parts)
		elog(ERROR, "order_engine: " INT64_FORMAT " bucket rows for " INT64_FORMAT " bucket parts of released holds",
			 moved, parts);
	return holds;
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
		ArrayType  *ab = DatumGetArrayTypeP(StockCol(tup, desc, Anum_hold_buckets));
		ArrayType  *aq = DatumGetArrayTypeP(StockCol(tup, desc, Anum_hold_bucket_qtys));
		Datum	   *db,
				   *dq;
		int			nb,
					nq,
					k;

		h->order_no = DatumGetInt64(StockCol(tup, desc, Anum_hold_order_no));
		h->sku_id = DatumGetInt64(StockCol(tup, desc, Anum_hold_sku_id));
		h->qty = DatumGetInt64(StockCol(tup, desc, Anum_hold_qty));
		h->state = TextDatumGetCString(StockCol(tup, desc, Anum_hold_state));
		h->expires_at = DatumGetTimestampTz(StockCol(tup, desc, Anum_hold_expires_at));
		h->has_buyer = !StockColIsNull(tup, desc, Anum_hold_buyer_id);
		h->buyer_id = h->has_buyer ? DatumGetInt64(StockCol(tup, desc, Anum_hold_buyer_id)) : 0;
		deconstruct_array(ab, INT4OID, sizeof(int32), true, TYPALIGN_INT,
						  &db, NULL, &nb);
		deconstruct_array(aq, INT8OID, sizeof(int64), FLOAT8PASSBYVAL,
						  TYPALIGN_DOUBLE, &dq, NULL, &nq);
		/* no parts: an escrow hold held or released before it was folded (escrow.c) */
		if (nb != nq || (nb < 1 && strcmp(h->state, "confirmed") == 0))
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
	StockPart	folded = {0, h->qty};
	const StockPart *parts = h->parts;
	int			nparts = h->nparts;
	int			k;

	if (!confirm && h->has_buyer)
		OeStockTallySub(h->sku_id, h->buyer_id, h->qty);
	if (nparts == 0)
	{
		/* an escrow hold: folded into bucket 0's held first, then as any other */
		if (OeStockFoldHolds(&h->order_no, &h->sku_id, 1) != 1)
			elog(ERROR, "order_engine: escrow hold of order " INT64_FORMAT " on SKU " INT64_FORMAT " could not be folded",
				 h->order_no, h->sku_id);
		parts = &folded;
		nparts = 1;
	}
	for (k = 0; k < nparts; k++)
	{
		if (confirm)
			OeStockMoveBucket(h->sku_id, parts[k].bucket, 0, -parts[k].qty, parts[k].qty);
		else
			OeStockMoveBucket(h->sku_id, parts[k].bucket, parts[k].qty, -parts[k].qty, 0);
	}
	v[0] = Int64GetDatum(h->order_no);
	v[1] = Int64GetDatum(h->sku_id);
	v[2] = CStringGetTextDatum(confirm ? "confirmed" : "released");
	v[3] = CStringGetTextDatum(confirm ? "confirm" : "release");
	v[4] = Int64GetDatum(confirm ? 0 : h->qty);
	v[5] = Int64GetDatum(-h->qty);
	v[6] = Int64GetDatum(confirm ? h->qty : 0);
	if (OeStockJournalsHolds())
		OeExecPlan(OeCachedPlan(&plan_transition_journaled, sql_transition_journaled, 7, types),
				   v, NULL, false, 0);
	else
		OeExecPlan(OeCachedPlan(&plan_transition, sql_transition, 3, types), v, NULL, false, 0);
	if (SPI_processed != 1)
		elog(ERROR, "order_engine: hold of order " INT64_FORMAT " on SKU " INT64_FORMAT " changed under its lock",
			 h->order_no, h->sku_id);
}

/*
 * The order's lock, then its hold rows locked in sku_id order (the order
 * every stock call locks in).  Caller is connected to SPI.
 */
static StockHold *
lock_order_holds(int64 order_no, int *n)
{
	static const Oid types[] = {INT8OID};
	Datum		v[1];

	OeStockLockOrder(order_no);
	v[0] = Int64GetDatum(order_no);
	OeExecPlan(OeCachedPlan(&plan_order_holds, sql_order_holds, 1, types), v, NULL, false, 0);
	return holds_from_result(n);
}

/* confirm or release every hold that is still held; returns how many */
static int32
finish_held(const StockHold *holds, int n, bool confirm)
{
	int32		count = 0;

	for (int i = 0; i < n; i++)
		if (strcmp(holds[i].state, "held") == 0)
		{
			finish_hold(&holds[i], confirm);
			count++;
		}
	return count;
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
	StockHold  *holds;
	int			n,
				i;
	int32		count;

	OeSqlConnect();
	holds = lock_order_holds(order_no, &n);
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
	count = finish_held(holds, n, true);
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
	StockHold  *holds;
	int			n,
				i;
	int32		count;

	OeSqlConnect();
	holds = lock_order_holds(order_no, &n);
	for (i = 0; i < n; i++)
		if (strcmp(holds[i].state, "confirmed") == 0)
			ereport(ERROR,
					(errcode(ERRCODE_OE_HOLD_STATE_CONFLICT),
					 errmsg("cannot release order " INT64_FORMAT ": its hold on SKU " INT64_FORMAT " is confirmed",
							order_no, holds[i].sku_id),
					 errdetail("A confirmed hold is a sale; release does not undo sales.")));
	count = finish_held(holds, n, false);
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
	bool		released;

	OeSqlConnect();
	v[0] = Int64GetDatum(order_no);
	v[1] = Int64GetDatum(sku_id);
	OeExecPlan(OeCachedPlan(&plan_hold_lock, sql_hold_lock, 2, types), v, NULL, false, 0);
	holds = holds_from_result(&n);	/* 0 or 1: (order_no, sku_id) is the key */
	released = finish_held(holds, n, false) > 0;
	SPI_finish();
	return released;
}

/*
 * Placement binds the order's holds to it: each lives at least until the
 * payment deadline.  Holds this call created already do (reserve counts
 * from the clock, later than the deadline's start) and are only counted;
 * one reserved earlier with a shorter ttl, for instance when the number
 * was issued at checkout, is extended.  The statement answers how many
 * holds are held until the deadline: fewer than the order's lines means
 * the sweeper released one (before our snapshot, or while we waited for
 * its row lock), and place_order refuses with OE005.  In the common case
 * both parts are index probes that write nothing.  State and expiry are
 * tested inside CASE/FILTER on purpose: as plain conditions they matched
 * the partial index on held holds' expiry, and the kept generic plan
 * scanned it (every held hold in the database) next to the order's
 * primary key, which halved place_order's throughput
 * (test/bench/orders.sh).
 */
static OeQuery bind_holds = {
	"WITH b AS ("
	"  UPDATE order_engine.stock_hold SET expires_at = $2, updated_at = pg_catalog.now()"
	"   WHERE order_no OPERATOR(pg_catalog.=) $1"
	"     AND CASE WHEN state OPERATOR(pg_catalog.=) 'held'"
	"              THEN expires_at OPERATOR(pg_catalog.<) $2 ELSE false END"
	"  RETURNING 1)"
	" SELECT (SELECT pg_catalog.count(*) FROM b) OPERATOR(pg_catalog.+)"
	"        (SELECT pg_catalog.count(*) FILTER (WHERE h.state OPERATOR(pg_catalog.=) 'held'"
	"                                             AND h.expires_at OPERATOR(pg_catalog.>=) $2)"
	"           FROM order_engine.stock_hold h WHERE h.order_no OPERATOR(pg_catalog.=) $1)",
	2, {INT8OID, TIMESTAMPTZOID}
};

/*
 * Bind the order's holds to it: every one held until at least the
 * deadline.  Fewer than the order's lines means the sweeper released one
 * between reserve's look and ours (a hold reserved earlier that had
 * expired): the stock is gone, the order cannot be placed.
 */
void
OeStockBindHolds(int64 order_no, int nlines, TimestampTz deadline)
{
	Datum		values[2];
	bool		isnull;

	values[0] = Int64GetDatum(order_no);
	values[1] = TimestampTzGetDatum(deadline);
	OeQueryRun(&bind_holds, values, NULL, false, 1);
	if (DatumGetInt64(OeQueryValue(1, &isnull)) != nlines)
		ereport(ERROR,
				(errcode(ERRCODE_OE_HOLD_STATE_CONFLICT),
				 errmsg("the holds of order " INT64_FORMAT " were released", order_no),
				 errdetail("A hold reserved for this number earlier expired and was released before the order was placed."),
				 errhint("Use a new order number to hold stock again.")));
}

/*
 * Lock what releasing the held holds of these orders will lock, in the
 * order reserve and release lock it (the holds of the orders whatever
 * their state: a released one only adds a lock the batch did not need,
 * and without "state = 'held'" no kept plan can pick the partial expiry
 * index, which it did, scanning every due hold for each batch): SKU by
 * SKU in sku_id order, first the buyers' purchase_tally rows of that SKU,
 * then its buckets.  A batch
 * that released order by order locked in the batch's order instead and
 * deadlocked with reserve, place_order and confirm (found by
 * test/chaos.sh).
 */
enum
{
	Anum_batch_sku_id = 1,
	Anum_batch_buyers
};
static OeQuery select_batch_skus = {
	"SELECT h.sku_id, pg_catalog.array_agg(DISTINCT h.buyer_id)"
	"  FILTER (WHERE h.buyer_id IS NOT NULL)"
	" FROM order_engine.stock_hold h"
	" WHERE h.order_no OPERATOR(pg_catalog.=) ANY ($1)"
	"   AND ($2::pg_catalog.int8 IS NULL OR (h.sku_id OPERATOR(pg_catalog.=) $2"
	"        AND h.buckets OPERATOR(pg_catalog.=) ARRAY[$3::pg_catalog.int4]))"
	" GROUP BY h.sku_id ORDER BY h.sku_id",
	3, {INT8ARRAYOID, INT8OID, INT4OID}
};

static OeQuery lock_sku_tallies = {
	"SELECT 1 FROM order_engine.purchase_tally t"
	" WHERE t.sku_id OPERATOR(pg_catalog.=) $1 AND t.buyer_id OPERATOR(pg_catalog.=) ANY ($2)"
	" ORDER BY t.buyer_id FOR UPDATE",
	2, {INT8OID, INT8ARRAYOID}
};

static OeQuery lock_sku_buckets = {
	"SELECT 1 FROM order_engine.stock_bucket b"
	" WHERE b.sku_id OPERATOR(pg_catalog.=) $1 ORDER BY b.bucket FOR UPDATE",
	1, {INT8OID}
};

static OeQuery lock_one_bucket = {
	"SELECT 1 FROM order_engine.stock_bucket b"
	" WHERE b.sku_id OPERATOR(pg_catalog.=) $1 AND b.bucket OPERATOR(pg_catalog.=) $2 FOR UPDATE",
	2, {INT8OID, INT4OID}
};

/*
 * Lock, SKU by SKU in the order given (sku_id order), the buyers' tally
 * rows of each (buyers[i] an int8[] of them, or nobuyers[i]) and its
 * bucket rows (with only, that one row), each waited for at most
 * lock_timeout_ms.
 */
static void
lock_skus_for_release(int nskus, const Datum *skus, const Datum *buyers, const bool *nobuyers,
					  int lock_timeout_ms, const OeStockBucketRef *only)
{
	int			nestlevel;
	char		timeout[16];

	/* each lock waited for at most lock_timeout_ms: only for these statements, like a function's SET */
	snprintf(timeout, sizeof(timeout), "%d", lock_timeout_ms);
	nestlevel = NewGUCNestLevel();
	(void) set_config_option("lock_timeout", timeout, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	for (int i = 0; i < nskus; i++)
	{
		Datum		v[2] = {skus[i], buyers[i]};

		if (!nobuyers[i])
			OeQueryRun(&lock_sku_tallies, v, NULL, false, 0);
		if (only != NULL)
		{
			Datum		b[2] = {skus[i], Int32GetDatum(only->bucket)};

			OeQueryRun(&lock_one_bucket, b, NULL, false, 0);
		}
		else
			OeQueryRun(&lock_sku_buckets, v, NULL, false, 0);
	}
	AtEOXact_GUC(true, nestlevel);
}

void
OeStockLockForRelease(const int64 *orders, int norders, int lock_timeout_ms,
					  const OeStockBucketRef *only)
{
	Datum		args[3];
	char		nulls[3] = {' ', only ? ' ' : 'n', only ? ' ' : 'n'};
	int			nskus;
	Datum	   *skus;
	Datum	   *buyers;
	bool	   *nobuyers;

	if (norders <= 0)
		return;
	args[0] = PointerGetDatum(OeInt8Array(orders, norders));
	args[1] = Int64GetDatum(only ? only->sku_id : 0);
	args[2] = Int32GetDatum(only ? only->bucket : 0);
	OeQueryRun(&select_batch_skus, args, nulls, false, 0);
	nskus = (int) SPI_processed;
	skus = palloc(sizeof(Datum) * Max(nskus, 1));
	buyers = palloc(sizeof(Datum) * Max(nskus, 1));
	nobuyers = palloc(sizeof(bool) * Max(nskus, 1));
	for (int i = 0; i < nskus; i++)
	{
		bool		isnull;

		skus[i] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, Anum_batch_sku_id, &isnull);
		buyers[i] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, Anum_batch_buyers,
								  &nobuyers[i]);
		/* copied out: the next query frees this result */
		if (!nobuyers[i])
			buyers[i] = SPI_datumTransfer(buyers[i], false, -1);
	}
	lock_skus_for_release(nskus, skus, buyers, nobuyers, lock_timeout_ms, only);
}

void
OeStockLockRowForRelease(const OeStockBucketRef *row, const int64 *buyers, int nbuyers,
						 int lock_timeout_ms)
{
	Datum		sku = Int64GetDatum(row->sku_id);
	Datum		buyer_array = (Datum) 0;
	bool		nobuyers = true;

	if (nbuyers > 0)
	{
		int64	   *distinct = palloc(sizeof(int64) * nbuyers);
		int			n = 0;

		memcpy(distinct, buyers, sizeof(int64) * nbuyers);
		OeSortInt64(distinct, nbuyers);
		for (int i = 0; i < nbuyers; i++)
			if (n == 0 || distinct[n - 1] != distinct[i])
				distinct[n++] = distinct[i];
		buyer_array = PointerGetDatum(OeInt8Array(distinct, n));
		nobuyers = false;
	}
	lock_skus_for_release(1, &sku, &buyer_array, &nobuyers, lock_timeout_ms, row);
}
