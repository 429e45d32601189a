/*-------------------------------------------------------------------------
 *
 * close_unpaid.c
 *	  close_unpaid: orders past their payment deadline -> closed, holds
 *	  released.  The batch is this job's; closing one order is the order
 *	  API's (OeOrderCloseOverdue, orders/orders.c).
 *
 * Locks: the order rows (SKIP LOCKED), their numbers' advisory locks
 * (skipping busy ones), then the stock, as every client does.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"

#include "common/args.h"
#include "common/internal_sql.h"
#include "jobs/jobs.h"
#include "orders/orders.h"
#include "stock/stock.h"

static OeQuery select_due_unpaid = {
	"SELECT o.order_no FROM order_engine.orders o"
	" WHERE o.status OPERATOR(pg_catalog.=) 'pending_payment'"
	"   AND o.pay_deadline OPERATOR(pg_catalog.<=) pg_catalog.now()"
	OE_NOT_QUARANTINED("close_unpaid", "o.order_no")
	" ORDER BY o.pay_deadline LIMIT $1 FOR UPDATE SKIP LOCKED",
	1, {INT4OID}
};

/*
 * The batch's overdue orders: their rows (SKIP LOCKED), their numbers'
 * advisory locks (skipping busy ones), then the stock, as every client
 * locks.  In the batch's subtransaction (OeJobProcessBatch).
 */
static int
gather_overdue(void *arg, int64 **orders_out)
{
	Datum		max_rows = Int32GetDatum(*(int32 *) arg);
	uint64		n;
	int64	   *orders;
	int			nlocked = 0;

	OeQueryRun(&select_due_unpaid, &max_rows, NULL, false, 0);
	orders = OeQueryInt64Column(&n);
	for (uint64 i = 0; i < n; i++)
		if (OeStockTryLockOrder(orders[i]))
			orders[nlocked++] = orders[i];
	OeStockLockForRelease(orders, nlocked, OE_JOB_STOCK_LOCK_TIMEOUT_MS, NULL);
	*orders_out = orders;
	return nlocked;
}

/*
 * close_unpaid: orders past their payment deadline -> closed, holds
 * released.  Runs in the caller's transaction; the worker calls it too.
 */
int64
OeCloseUnpaid(int32 max_rows)
{
	int64		closed;

	OeSqlConnect();
	closed = OeJobProcessBatch(OE_JOB_CLOSE_UNPAID, gather_overdue, &max_rows,
							   NULL, OeOrderCloseOverdue);
	SPI_finish();
	return closed;
}

PG_FUNCTION_INFO_V1(oe_close_unpaid);
Datum
oe_close_unpaid(PG_FUNCTION_ARGS)
{
	/* STRICT in SQL (order_engine--0.4--0.5.sql): no argument is null */
	int32		max_rows = PG_GETARG_INT32(0);

	CheckMaxRows(max_rows, OE_MAX_ROWS_UNBOUNDED);
	PG_RETURN_INT32((int32) OeCloseUnpaid(max_rows));
}
