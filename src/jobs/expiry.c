/*-------------------------------------------------------------------------
 *
 * expiry.c
 *	  release_expired: holds past their expiry go back to available.
 *
 * Orders with due holds are taken with FOR UPDATE SKIP LOCKED, so the job
 * never waits on (or double-processes with) a confirm or release running
 * in the API.  The batch's due holds are released in one set-based
 * statement (OeStockReleaseDueHoldsOf); should it fail, order by order
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

#include "common/args.h"
#include "jobs/jobs.h"
#include "common/internal_sql.h"
#include "stock/stock.h"

static OeQuery select_due_orders = {
	"SELECT DISTINCT h.order_no FROM ("
	"  SELECT order_no FROM order_engine.stock_hold h"
	"   WHERE h.state OPERATOR(pg_catalog.=) 'held'"
	"     AND h.expires_at OPERATOR(pg_catalog.<=) pg_catalog.now()"
	OE_NOT_QUARANTINED("release_expired", "h.order_no")
	"     AND NOT EXISTS (SELECT FROM order_engine.orders o"
	"                      WHERE o.order_no OPERATOR(pg_catalog.=) h.order_no"
	"                        AND o.status OPERATOR(pg_catalog.=) 'pending_payment'"
	OE_NOT_QUARANTINED("close_unpaid", "o.order_no") ")"
	"   ORDER BY h.expires_at LIMIT $1 FOR UPDATE OF h SKIP LOCKED) h",
	1, {INT4OID}
};

/*
 * SKIP LOCKED: a hold another transaction has locked (a confirm or release
 * of it under way) is left to that transaction or the next batch; waiting
 * for it while holding the batch's bucket locks deadlocked with the
 * confirm, which locks the hold first and the buckets second.
 */
static OeQuery select_due_holds = {
	"SELECT sku_id FROM order_engine.stock_hold"
	" WHERE order_no OPERATOR(pg_catalog.=) $1 AND state OPERATOR(pg_catalog.=) 'held'"
	"   AND expires_at OPERATOR(pg_catalog.<=) pg_catalog.now()"
	" FOR UPDATE SKIP LOCKED",
	1, {INT8OID}
};

static void
release_order_holds(int64 order_no)
{
	Datum		arg = Int64GetDatum(order_no);
	uint64		n;
	int64	   *skus;

	OeQueryRun(&select_due_holds, &arg, NULL, false, 0);
	skus = OeQueryInt64Column(&n);
	for (uint64 i = 0; i < n; i++)
		(void) OeStockReleaseHold(order_no, skus[i]);
}

static void
release_batch(const int64 *orders, int n)
{
	(void) OeStockReleaseDueHoldsOf(orders, n);
}

int64
OeReleaseExpired(int32 max_rows)
{
	Datum		arg = Int32GetDatum(max_rows);
	uint64		n;
	int64	   *orders;
	int64		done;

	SPI_connect();
	OeQueryRun(&select_due_orders, &arg, NULL, false, 0);
	orders = OeQueryInt64Column(&n);
	OeStockLockForRelease(orders, (int) n, OE_JOB_STOCK_LOCK_TIMEOUT_MS);
	done = OeJobProcessBatch(OE_JOB_RELEASE_EXPIRED, orders, (int) n, release_batch,
							 release_order_holds);
	SPI_finish();
	return done;
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
