/*-------------------------------------------------------------------------
 *
 * expiry.c
 *	  release_expired: holds past their expiry go back to available.
 *
 * Due holds are taken oldest first with FOR UPDATE SKIP LOCKED, so the
 * job never waits on (or double-processes with) a confirm or release
 * running in the API.  A batch of the worker takes the due holds of one
 * bucket row, the row of the oldest due hold (see batch_only below); the
 * SQL function release_expired takes the oldest due holds of any row.
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
#include "utils/timestamp.h"

#include "common/args.h"
#include "common/arrays.h"
#include "jobs/jobs.h"
#include "common/internal_sql.h"
#include "stock/stock.h"

/*
 * A due hold this job releases: held, expired, not quarantined, and not
 * bound to an order that awaits payment (close_unpaid's).
 */
#define DUE_HOLD_OF_THIS_JOB \
	"   WHERE h.state OPERATOR(pg_catalog.=) 'held'" \
	"     AND h.expires_at OPERATOR(pg_catalog.<=) pg_catalog.now()" \
	OE_NOT_QUARANTINED("release_expired", "h.order_no") \
	"     AND NOT EXISTS (SELECT FROM order_engine.orders o" \
	"                      WHERE o.order_no OPERATOR(pg_catalog.=) h.order_no" \
	"                        AND o.status OPERATOR(pg_catalog.=) 'pending_payment'" \
	OE_NOT_QUARANTINED("close_unpaid", "o.order_no") ")"

/*
 * The oldest due hold: which bucket row the worker's batch is for, when
 * the hold lies in one row of a SKU that has several.
 */
enum
{
	Anum_oldest_sku_id = 1,
	Anum_oldest_bucket,
	Anum_oldest_row_batch
};
static OeQuery select_oldest_due = {
	"SELECT h.sku_id, h.buckets[1],"
	"       pg_catalog.cardinality(h.buckets) OPERATOR(pg_catalog.=) 1"
	"       AND (SELECT s.nbuckets FROM order_engine.sku s"
	"             WHERE s.sku_id OPERATOR(pg_catalog.=) h.sku_id) OPERATOR(pg_catalog.>) 1"
	"  FROM order_engine.stock_hold h"
	DUE_HOLD_OF_THIS_JOB
	"   AND NOT EXISTS (SELECT FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2))"
	"                               AS busy(sku_id, bucket)"
	"                    WHERE busy.sku_id OPERATOR(pg_catalog.=) h.sku_id"
	"                      AND h.buckets OPERATOR(pg_catalog.=) ARRAY[busy.bucket])"
	" ORDER BY h.expires_at LIMIT 1",
	2, {INT8ARRAYOID, INT4ARRAYOID}
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
 * to that transaction or the next batch.  Two statements, not one with an
 * optional bucket row: a kept plan of the one with "$2 IS NULL OR ..."
 * estimated a row or two, sorted every due hold for each batch instead of
 * reading the expiry index in order, and a drain of 100,000 holds took
 * 10.7 s instead of 3.
 */
enum
{
	Anum_due_order_no = 1,
	Anum_due_sku_id
};
static OeQuery select_due_holds_batch = {
	"SELECT h.order_no, h.sku_id FROM order_engine.stock_hold h"
	DUE_HOLD_OF_THIS_JOB
	" ORDER BY h.expires_at LIMIT $1 FOR UPDATE OF h SKIP LOCKED",
	1, {INT4OID}
};

/* those wholly in bucket row ($2, $3) */
static OeQuery select_due_holds_of_row = {
	"SELECT h.order_no, h.sku_id FROM order_engine.stock_hold h"
	DUE_HOLD_OF_THIS_JOB
	"     AND h.sku_id OPERATOR(pg_catalog.=) $2"
	"     AND h.buckets OPERATOR(pg_catalog.=) ARRAY[$3::pg_catalog.int4]"
	" ORDER BY h.expires_at LIMIT $1 FOR UPDATE OF h SKIP LOCKED",
	3, {INT4OID, INT8OID, INT4OID}
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

/* the batch's due holds, as select_due_holds_batch locked them */
static int	batch_nholds;
static int64 *batch_hold_orders;
static int64 *batch_hold_skus;

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
	Datum		args[3];
	int64	   *orders;
	bool		isnull;
	int			n;

	args[0] = Int32GetDatum(max_rows);
	args[1] = Int64GetDatum(batch_only ? batch_only->sku_id : 0);
	args[2] = Int32GetDatum(batch_only ? batch_only->bucket : 0);
	OeQueryRun(batch_only ? &select_due_holds_of_row : &select_due_holds_batch,
			   args, NULL, false, 0);
	batch_nholds = (int) SPI_processed;
	batch_hold_orders = palloc(sizeof(int64) * Max(batch_nholds, 1));
	batch_hold_skus = palloc(sizeof(int64) * Max(batch_nholds, 1));
	orders = palloc(sizeof(int64) * Max(batch_nholds, 1));
	for (int i = 0; i < batch_nholds; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];

		batch_hold_orders[i] = DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc,
														   Anum_due_order_no, &isnull));
		batch_hold_skus[i] = DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc,
														 Anum_due_sku_id, &isnull));
		orders[i] = batch_hold_orders[i];
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
 * oldest due hold's bucket row, else due holds of whole orders (the SQL
 * function release_expired, whose answer counts orders).
 */
static int64
release_expired(int32 max_rows, bool by_bucket_row)
{
	int64		done;
	OeStockBucketRef only;
	bool		isnull;

	OeSqlConnect();
	batch_only = NULL;
	if (by_bucket_row)
	{
		int64		busy_skus[BUSY_ROWS];
		int32		busy_buckets[BUSY_ROWS];
		Datum		busy[2];

		update_busy_rows();
		for (int i = 0; i < nbusy_rows; i++)
		{
			busy_skus[i] = busy_rows[i].row.sku_id;
			busy_buckets[i] = busy_rows[i].row.bucket;
		}
		busy[0] = PointerGetDatum(OeInt8Array(busy_skus, nbusy_rows));
		busy[1] = PointerGetDatum(OeInt4Array(busy_buckets, nbusy_rows));
		OeQueryRun(&select_oldest_due, busy, NULL, false, 1);
		if (SPI_processed == 0)
		{
			SPI_finish();
			return 0;
		}
	}
	if (by_bucket_row && DatumGetBool(OeQueryValue(Anum_oldest_row_batch, &isnull)) && !isnull)
	{
		only.sku_id = DatumGetInt64(OeQueryValue(Anum_oldest_sku_id, &isnull));
		only.bucket = DatumGetInt32(OeQueryValue(Anum_oldest_bucket, &isnull));
		batch_only = &only;
		attempting = only;
		attempting_set = true;
	}
	done = OeJobProcessBatch(OE_JOB_RELEASE_EXPIRED, gather_due_holds, &max_rows,
							 release_batch, release_order_holds);
	attempting_set = false;
	batch_only = NULL;
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
