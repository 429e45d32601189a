/*-------------------------------------------------------------------------
 *
 * expiry.c
 *	  release_expired: holds past their expiry go back to available.
 *
 * Due holds are taken oldest first with FOR UPDATE SKIP LOCKED, so the
 * job never waits on (or double-processes with) a confirm or release
 * running in the API.  A batch of the worker takes the due holds of one
 * bucket row (see batch_only below), as the sweep's plan lists them (see
 * the plan below); the SQL function release_expired takes the oldest due
 * holds of any row.
 * They are released in one set-based statement
 * (OeStockReleaseHeldHolds); should it fail, order by order
 * through the stock API (OeStockReleaseHold), one subtransaction per
 * order, quarantining the bad one (jobs.c).
 *
 * Holds of a placed order awaiting payment are not this job's: they live
 * until the order's deadline (place_order binds them) and close_unpaid
 * releases them with the order.  Only if close_unpaid quarantined the
 * order are its holds released here, so stock is never kept forever.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "common/args.h"
#include "common/arrays.h"
#include "jobs/jobs.h"
#include "common/internal_sql.h"
#include "stock/stock.h"

/*
 * A due hold this job releases: held, expired, not quarantined, and not
 * bound to an order that awaits payment (close_unpaid's).  Each takes as
 * SQL the state 'held' (a literal, or a parameter where the expiry index
 * must not be used: select_planned_holds) and the status
 * 'pending_payment', always a parameter: with the literal, kept plans
 * proved the partial index orders_pay_deadline_idx usable, and when it
 * was planned with few unpaid orders, read it whole for each due hold
 * instead of probing orders_pkey (auto_explain in the worker: 810 ms for
 * one plan of the sweep with 5,000 unpaid orders).
 */
#define DUE_HOLD_IN(held, pending_payment) \
	"   WHERE h.state OPERATOR(pg_catalog.=) " held \
	"     AND h.expires_at OPERATOR(pg_catalog.<=) pg_catalog.now()" \
	OE_NOT_QUARANTINED("release_expired", "h.order_no") \
	"     AND NOT EXISTS (SELECT FROM order_engine.orders o" \
	"                      WHERE o.order_no OPERATOR(pg_catalog.=) h.order_no" \
	"                        AND o.status OPERATOR(pg_catalog.=) " pending_payment \
	OE_NOT_QUARANTINED("close_unpaid", "o.order_no") ")"

/*
 * The due holds of a round, oldest first, for the sweep's plan (below):
 * each with the bucket row a batch for one row would take it in, or
 * row_batch false for a hold spread over several rows, or of a SKU with
 * one row.
 */
enum
{
	Anum_plan_order_no = 1,
	Anum_plan_sku_id,
	Anum_plan_bucket,
	Anum_plan_row_batch
};
static OeQuery select_due_plan = {
	"SELECT h.order_no, h.sku_id, h.buckets[1],"
	"       pg_catalog.cardinality(h.buckets) OPERATOR(pg_catalog.=) 1"
	"       AND (SELECT s.nbuckets FROM order_engine.sku s"
	"             WHERE s.sku_id OPERATOR(pg_catalog.=) h.sku_id) OPERATOR(pg_catalog.>) 1"
	"  FROM order_engine.stock_hold h"
	DUE_HOLD_IN("'held'", "$4")
	"   AND NOT EXISTS (SELECT FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2))"
	"                               AS busy(sku_id, bucket)"
	"                    WHERE busy.sku_id OPERATOR(pg_catalog.=) h.sku_id"
	"                      AND h.buckets OPERATOR(pg_catalog.=) ARRAY[busy.bucket])"
	" ORDER BY h.expires_at LIMIT $3",
	4, {INT8ARRAYOID, INT4ARRAYOID, INT4OID, TEXTOID}
};

/*
 * Bucket rows a batch of this process could not lock within its lock
 * timeout: a transaction keeps them locked (say, one left idle after a
 * reserve).  For BUSY_ROW_MS the sweep passes over their holds, so the
 * holds of every other row are released meanwhile; then it tries again.
 * A batch that ends in an error leaves attempting set, and the next one
 * counts that row as busy (whatever the error was: at worst its holds
 * wait BUSY_ROW_MS longer).
 */
#define BUSY_ROWS		16
#define BUSY_ROW_MS		10000

typedef struct BusyRow
{
	OeStockBucketRef row;
	TimestampTz until;
} BusyRow;

static BusyRow busy_rows[BUSY_ROWS];
static int	nbusy_rows = 0;
static OeStockBucketRef attempting;
static bool attempting_set = false;

/* forget rows whose time is up; note the one the last batch left unfinished */
static void
update_busy_rows(void)
{
	TimestampTz now = GetCurrentTimestamp();
	int			kept = 0;

	for (int i = 0; i < nbusy_rows; i++)
		if (busy_rows[i].until > now)
			busy_rows[kept++] = busy_rows[i];
	nbusy_rows = kept;
	if (attempting_set)
	{
		int			slot = nbusy_rows < BUSY_ROWS ? nbusy_rows++ : 0;

		busy_rows[slot].row = attempting;
		busy_rows[slot].until = TimestampTzPlusMilliseconds(now, BUSY_ROW_MS);
		attempting_set = false;
	}
}

/*
 * Due holds, oldest first, locked.  SKIP LOCKED: a hold another
 * transaction has locked (a confirm or release of it under way) is left
 * to that transaction or the next batch.  This one for a batch of any
 * due holds, select_planned_holds below for a batch of one bucket row:
 * a kept plan of one statement with an optional bucket row ("$2 IS NULL
 * OR ...") estimated a row or two, sorted every due hold for each batch
 * instead of reading the expiry index in order, and a drain of 100,000
 * holds took 10.7 s instead of 3.
 */
enum
{
	Anum_due_order_no = 1,
	Anum_due_sku_id,
	Anum_due_buyer_id			/* select_planned_holds only */
};
static OeQuery select_due_holds_batch = {
	"SELECT h.order_no, h.sku_id FROM order_engine.stock_hold h"
	DUE_HOLD_IN("'held'", "$2")
	" ORDER BY h.expires_at LIMIT $1 FOR UPDATE OF h SKIP LOCKED",
	2, {INT4OID, TEXTOID}
};

/*
 * Those of the planned holds ($1, $2) still due and wholly in bucket row
 * ($3, $4), with their buyers (Anum_due_buyer_id), found by their keys:
 * the whole condition is checked again, on the version locked, so a hold
 * confirmed, released or bound to an order since the plan was made is
 * passed over.  Each by its primary key: the lateral subquery is planned
 * per key, and the state is a parameter ($5, 'held'), so no partial
 * index's predicate can be proven and the expiry index (whose statistics
 * often say it is empty) is never read instead.
 */
static OeQuery select_planned_holds = {
	"SELECT l.order_no, l.sku_id, l.buyer_id"
	"  FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS p(order_no, sku_id),"
	"  LATERAL (SELECT h.order_no, h.sku_id, h.buyer_id FROM order_engine.stock_hold h"
	DUE_HOLD_IN("$5", "$6")
	"     AND h.order_no OPERATOR(pg_catalog.=) p.order_no"
	"     AND h.sku_id OPERATOR(pg_catalog.=) p.sku_id"
	"     AND h.sku_id OPERATOR(pg_catalog.=) $3"
	"     AND h.buckets OPERATOR(pg_catalog.=) ARRAY[$4::pg_catalog.int4]"
	"   FOR UPDATE OF h SKIP LOCKED) l",
	6, {INT8ARRAYOID, INT8ARRAYOID, INT8OID, INT4OID, TEXTOID, TEXTOID}
};

/*
 * The bucket row this batch is for, or NULL for a batch of whole orders.
 *
 * Why one bucket row per batch: a batch holds the bucket rows it releases
 * into until it commits, and a batch of whole orders locked every bucket
 * row of each SKU, waiting for each in turn while holding the ones it had.
 * Reserves of a hot bucketed SKU then all queued behind it
 * (Lock:transactionid and Lock:tuple waits in pg_stat_activity; worker
 * bench: reserve TPS 0.63 of the worker-off run while it swept 1-second
 * holds).  A batch for one bucket row locks that row only, so a reserve
 * loses at most that row for the length of a small batch, and takes one
 * of the others.  A hold spread over several bucket rows (a quantity
 * larger than one row had), or of a SKU with one row, goes in a batch of
 * any due holds, as before.
 *
 * The locks, of the bucket row and of the due holds, are taken in the
 * batch's subtransaction, not before it (gather_due_holds runs there): a
 * row locked by the transaction and updated by its subtransaction gets a
 * MultiXact for its xmax, which every later reader of the row has to look
 * up.  The holds' used to be taken before it, and the sweep's next scans
 * of the expiry index spent a tenth of the worker's time in
 * GetMultiXactIdMembers on the versions the batches had left.
 */
static const OeStockBucketRef *batch_only;

/* the batch's due holds, as select_due_holds_batch or select_planned_holds locked them */
static int	batch_nholds;
static int64 *batch_hold_orders;
static int64 *batch_hold_skus;
/* select_planned_holds: the buyers of those that have one */
static int	batch_nbuyers;
static int64 *batch_buyers;

/*
 * The sweep's plan.  One scan of the expiry index, oldest first, lists
 * the due holds of a round (PLAN_BATCHES batches' worth at most) and
 * groups them by bucket row, the rows in the order of their oldest hold;
 * each batch of the sweep then locks the next row's planned holds by
 * their keys (select_planned_holds), and a new plan is made when the last
 * one is used up.  Before, each batch scanned the expiry index twice, for
 * the oldest due hold's row and for that row's holds among every row's,
 * so a round over a 16-row SKU read each due hold some 30 times (71
 * buffers per batch for its first hold alone; with the plan, and the
 * buyers' lookup gone, the worker's CPU per released hold went from 41.6
 * to 34.3 us, docs/worker.md).  Holds not wholly in one row of a bucketed
 * SKU are a batch of any due holds (select_due_holds_batch), at the place
 * of the oldest.  A plan is only a list of candidates: a hold confirmed,
 * released or bound to an order since is passed over by the batch.
 */
#define PLAN_BATCHES	4

typedef struct PlannedHold
{
	int64		order_no;
	int64		sku_id;
	int32		bucket;
	bool		whole;			/* not wholly in one row of a bucketed SKU */
	int			seq;			/* its place in expiry order */
} PlannedHold;

typedef struct PlannedBatch
{
	bool		whole;			/* a batch of any due holds */
	OeStockBucketRef row;
	int			first;			/* its holds: plan_holds[first .. first + n) */
	int			n;
	int			seq;			/* the place of its oldest hold */
} PlannedBatch;

static MemoryContext plan_context = NULL;
static PlannedHold *plan_holds;
static PlannedBatch *plan_batches;
static int	plan_nbatches = 0;
static int	plan_next = 0;

/* the planned holds of this batch's row (none: select_due_holds_batch) */
static const PlannedBatch *batch_planned;

static int
planned_hold_cmp(const void *a, const void *b)
{
	const PlannedHold *x = a;
	const PlannedHold *y = b;

	if (x->whole != y->whole)
		return x->whole ? 1 : -1;
	if (!x->whole)
	{
		if (x->sku_id != y->sku_id)
			return x->sku_id < y->sku_id ? -1 : 1;
		if (x->bucket != y->bucket)
			return x->bucket < y->bucket ? -1 : 1;
	}
	return x->seq - y->seq;
}

static int
planned_batch_cmp(const void *a, const void *b)
{
	return ((const PlannedBatch *) a)->seq - ((const PlannedBatch *) b)->seq;
}

static bool
row_is_busy(const OeStockBucketRef *row)
{
	for (int i = 0; i < nbusy_rows; i++)
		if (busy_rows[i].row.sku_id == row->sku_id && busy_rows[i].row.bucket == row->bucket)
			return true;
	return false;
}

/* a new plan from the due holds of rows not busy; in an SPI connection */
static void
make_plan(int32 max_rows, Datum busy_skus, Datum busy_buckets)
{
	Datum		args[4];
	MemoryContext old;
	int			n;

	args[0] = busy_skus;
	args[1] = busy_buckets;
	args[2] = Int32GetDatum((int32) Min((int64) max_rows * PLAN_BATCHES, PG_INT32_MAX));
	args[3] = CStringGetTextDatum("pending_payment");
	OeQueryRun(&select_due_plan, args, NULL, false, 0);
	n = (int) SPI_processed;

	if (plan_context == NULL)
		plan_context = AllocSetContextCreate(TopMemoryContext, "order_engine sweep plan",
											 ALLOCSET_SMALL_SIZES);
	else
		MemoryContextReset(plan_context);
	old = MemoryContextSwitchTo(plan_context);
	plan_holds = palloc(sizeof(PlannedHold) * Max(n, 1));
	plan_batches = palloc(sizeof(PlannedBatch) * Max(n, 1));
	MemoryContextSwitchTo(old);
	for (int i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		PlannedHold *h = &plan_holds[i];
		bool		isnull;
		bool		row_batch;

		h->order_no = DatumGetInt64(SPI_getbinval(tup, desc, Anum_plan_order_no, &isnull));
		h->sku_id = DatumGetInt64(SPI_getbinval(tup, desc, Anum_plan_sku_id, &isnull));
		h->bucket = DatumGetInt32(SPI_getbinval(tup, desc, Anum_plan_bucket, &isnull));
		row_batch = DatumGetBool(SPI_getbinval(tup, desc, Anum_plan_row_batch, &isnull));
		h->whole = isnull || !row_batch;
		h->seq = i;
	}

	/* the holds of each row together, oldest first; then the rows by their oldest */
	qsort(plan_holds, n, sizeof(PlannedHold), planned_hold_cmp);
	plan_nbatches = 0;
	for (int i = 0; i < n;)
	{
		PlannedBatch *b = &plan_batches[plan_nbatches++];
		int			end = i + 1;

		while (end < n && plan_holds[end].whole == plan_holds[i].whole &&
			   (plan_holds[i].whole ||
				(plan_holds[end].sku_id == plan_holds[i].sku_id &&
				 plan_holds[end].bucket == plan_holds[i].bucket)))
			end++;
		b->whole = plan_holds[i].whole;
		b->row.sku_id = plan_holds[i].sku_id;
		b->row.bucket = plan_holds[i].bucket;
		b->first = i;
		b->n = Min(end - i, max_rows);
		b->seq = plan_holds[i].seq;
		i = end;
	}
	qsort(plan_batches, plan_nbatches, sizeof(PlannedBatch), planned_batch_cmp);
	plan_next = 0;
}

/* the order-by-order path: this order's holds of the batch, one by one */
static void
release_order_holds(int64 order_no)
{
	OeStockLockForRelease(&order_no, 1, OE_JOB_STOCK_LOCK_TIMEOUT_MS, batch_only);
	for (int i = 0; i < batch_nholds; i++)
		if (batch_hold_orders[i] == order_no)
			(void) OeStockReleaseHold(order_no, batch_hold_skus[i]);
}

static void
release_batch(const int64 *orders, int n)
{
	/* a planned batch knows its buyers: no lookup of them */
	if (batch_planned != NULL)
		OeStockLockRowForRelease(batch_only, batch_buyers, batch_nbuyers, OE_JOB_STOCK_LOCK_TIMEOUT_MS);
	else
		OeStockLockForRelease(orders, n, OE_JOB_STOCK_LOCK_TIMEOUT_MS, batch_only);
	(void) OeStockReleaseHeldHolds(batch_hold_orders, batch_hold_skus, batch_nholds);
}

/*
 * The batch's due holds, locked (FOR UPDATE SKIP LOCKED), into batch_*;
 * *orders_out: their orders, each once.  OeJobProcessBatch runs it in the
 * batch's subtransaction (see there), and again in the transaction if the
 * set-based release failed.
 */
static int
gather_due_holds(void *arg, int64 **orders_out)
{
	int32		max_rows = *(int32 *) arg;
	int64	   *orders;
	bool		isnull;
	int			n;

	if (batch_planned != NULL)
	{
		const PlannedBatch *b = batch_planned;
		int64	   *keys_order = palloc(sizeof(int64) * b->n);
		int64	   *keys_sku = palloc(sizeof(int64) * b->n);
		Datum		args[6];

		for (int i = 0; i < b->n; i++)
		{
			keys_order[i] = plan_holds[b->first + i].order_no;
			keys_sku[i] = plan_holds[b->first + i].sku_id;
		}
		args[0] = PointerGetDatum(OeInt8Array(keys_order, b->n));
		args[1] = PointerGetDatum(OeInt8Array(keys_sku, b->n));
		args[2] = Int64GetDatum(b->row.sku_id);
		args[3] = Int32GetDatum(b->row.bucket);
		args[4] = CStringGetTextDatum("held");
		args[5] = CStringGetTextDatum("pending_payment");
		OeQueryRun(&select_planned_holds, args, NULL, false, 0);
	}
	else
	{
		Datum		args[2];

		args[0] = Int32GetDatum(max_rows);
		args[1] = CStringGetTextDatum("pending_payment");
		OeQueryRun(&select_due_holds_batch, args, NULL, false, 0);
	}
	batch_nholds = (int) SPI_processed;
	batch_hold_orders = palloc(sizeof(int64) * Max(batch_nholds, 1));
	batch_hold_skus = palloc(sizeof(int64) * Max(batch_nholds, 1));
	batch_buyers = palloc(sizeof(int64) * Max(batch_nholds, 1));
	batch_nbuyers = 0;
	orders = palloc(sizeof(int64) * Max(batch_nholds, 1));
	for (int i = 0; i < batch_nholds; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];

		batch_hold_orders[i] = DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc,
														   Anum_due_order_no, &isnull));
		batch_hold_skus[i] = DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc,
														 Anum_due_sku_id, &isnull));
		orders[i] = batch_hold_orders[i];
		if (batch_planned != NULL)
		{
			int64		buyer = DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc,
															Anum_due_buyer_id, &isnull));

			if (!isnull)
				batch_buyers[batch_nbuyers++] = buyer;
		}
	}
	/* the batch's orders, each once */
	OeSortInt64(orders, batch_nholds);
	n = 0;
	for (int i = 0; i < batch_nholds; i++)
		if (n == 0 || orders[n - 1] != orders[i])
			orders[n++] = orders[i];
	*orders_out = orders;
	return n;
}

/*
 * One batch: with by_bucket_row (the worker's sweep) the due holds of the
 * next bucket row of the plan that has any still due, else due holds of
 * whole orders (the SQL function release_expired, whose answer counts
 * orders).  0: nothing is due (the sweep: not even in a new plan).
 */
static int64
release_expired(int32 max_rows, bool by_bucket_row)
{
	int64		done = 0;
	bool		planned = false;

	OeSqlConnect();
	batch_only = NULL;
	batch_planned = NULL;
	if (!by_bucket_row)
	{
		done = OeJobProcessBatch(OE_JOB_RELEASE_EXPIRED, gather_due_holds, &max_rows,
								 release_batch, release_order_holds);
		SPI_finish();
		return done;
	}

	update_busy_rows();
	while (done == 0)
	{
		const PlannedBatch *b;
		OeStockBucketRef only;

		if (plan_next >= plan_nbatches)
		{
			int64		busy_skus[BUSY_ROWS];
			int32		busy_buckets[BUSY_ROWS];

			if (planned)
				break;			/* a new plan, and nothing left in it */
			for (int i = 0; i < nbusy_rows; i++)
			{
				busy_skus[i] = busy_rows[i].row.sku_id;
				busy_buckets[i] = busy_rows[i].row.bucket;
			}
			make_plan(max_rows, PointerGetDatum(OeInt8Array(busy_skus, nbusy_rows)),
					  PointerGetDatum(OeInt4Array(busy_buckets, nbusy_rows)));
			planned = true;
			continue;
		}
		b = &plan_batches[plan_next++];
		if (!b->whole)
		{
			if (row_is_busy(&b->row))
				continue;
			only = b->row;
			batch_only = &only;
			batch_planned = b;
			attempting = only;
			attempting_set = true;
		}
		done = OeJobProcessBatch(OE_JOB_RELEASE_EXPIRED, gather_due_holds, &max_rows,
								 release_batch, release_order_holds);
		attempting_set = false;
		/*
		 * A full batch of any due holds leaves more of them, oldest first:
		 * the next batch is one of those again, without a new plan (a
		 * backlog on a SKU of one bucket row otherwise paid a plan's scan
		 * of PLAN_BATCHES batches for each batch: drain of 100,000 holds
		 * 2.0 s instead of 1.0).
		 */
		if (b->whole && batch_nholds >= max_rows)
			plan_next--;
		batch_only = NULL;
		batch_planned = NULL;
	}
	SPI_finish();
	return done;
}

int64
OeReleaseExpired(int32 max_rows)
{
	return release_expired(max_rows, false);
}

int64
OeReleaseExpiredSweep(int32 max_rows)
{
	return release_expired(max_rows, true);
}

PG_FUNCTION_INFO_V1(oe_release_expired);
Datum
oe_release_expired(PG_FUNCTION_ARGS)
{
	/* STRICT in SQL (order_engine--0.4--0.5.sql): no argument is null */
	int32		max_rows = PG_GETARG_INT32(0);

	CheckMaxRows(max_rows, OE_MAX_ROWS_UNBOUNDED);
	PG_RETURN_INT32((int32) OeReleaseExpired(max_rows));
}
