/*-------------------------------------------------------------------------
 *
 * archive.c
 *	  Hot/cold separation: archive_orders moves finished orders, with their
 *	  lines and events, into schema order_engine_archive.
 *
 * A batch moves in one statement (copy + delete of its orders, their
 * lines and their events), in the batch's subtransaction; if it fails for
 * a reason that is not transient, each order moves in a statement of its
 * own, in its own subtransaction, so that a bad row is quarantined and the
 * others still move (OeJobProcessBatch).  The watermark row is updated in
 * the same transaction as the batch.  A crash therefore leaves every order
 * either live or archived, never both and never neither.
 *
 * An order whose outbox events are not all acknowledged stays live until
 * they are: claim_events reads only the live outbox.  Payments are never
 * archived; money that reaches an archived order brings it back
 * (orders.c).
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
#include "jobs/archive.h"
#include "jobs/jobs.h"
#include "common/internal_sql.h"
#include "common/interval_check.h"

/*
 * The finished orders longest finished, by the index of finished orders'
 * finishing times (orders_finished_idx: its expression and predicate are
 * written here exactly as in the index, so the planner matches them).
 * The index walk stops at the first order finished too recently, so a
 * batch with nothing to archive reads no order at all; ordered by order
 * number, it read every live order (measured: 160-200 ms per empty batch
 * among 300,000 young finished orders, every naptime).
 */
#define FINISHED_AT "COALESCE(o.completed_at, o.closed_at, o.paid_at, o.created_at)"

static OeQuery select_finished = {
	"SELECT o.order_no FROM order_engine.orders o"
	" WHERE o.status OPERATOR(pg_catalog.=) ANY ('{completed,cancelled,closed,refunded}'::pg_catalog.text[])"
	"   AND " FINISHED_AT " OPERATOR(pg_catalog.<) $1"
	OE_NOT_QUARANTINED("archive_orders", "o.order_no")
	"   AND NOT EXISTS (SELECT FROM order_engine.order_events e"
	"                    WHERE e.order_no OPERATOR(pg_catalog.=) o.order_no"
	"                      AND e.processed_at IS NULL)"
	" ORDER BY " FINISHED_AT " LIMIT $2 FOR UPDATE SKIP LOCKED",
	2, {TIMESTAMPTZOID, INT4OID}
};

/*
 * The singleton row is made here on the first batch, not by the install
 * script: a row the script made would be in every dump as well and clash
 * with it on restore (pg_extension_config_dump).
 */
static OeQuery update_watermark = {
	"INSERT INTO order_engine.archive_watermark AS w"
	"  (singleton, max_order_no, archived_total, last_batch_at)"
	" VALUES (true, $1, $2, pg_catalog.now())"
	" ON CONFLICT (singleton) DO UPDATE"
	" SET max_order_no = GREATEST(w.max_order_no, excluded.max_order_no),"
	"     archived_total = w.archived_total OPERATOR(pg_catalog.+) excluded.archived_total,"
	"     last_batch_at = excluded.last_batch_at",
	2, {INT8OID, INT8OID}
};

/*
 * Copy + delete of orders $1 with their lines and events: one executor
 * start-up for a whole batch (archive_many), or one order (archive_one)
 */
static OeQuery move_orders = {
	"WITH e AS (DELETE FROM order_engine.order_events"
	"           WHERE order_no OPERATOR(pg_catalog.=) ANY ($1) RETURNING *),"
	" ei AS (INSERT INTO order_engine_archive.order_events SELECT * FROM e),"
	" l AS (DELETE FROM order_engine.order_lines"
	"       WHERE order_no OPERATOR(pg_catalog.=) ANY ($1) RETURNING *),"
	" li AS (INSERT INTO order_engine_archive.order_lines SELECT * FROM l),"
	" o AS (DELETE FROM order_engine.orders"
	"       WHERE order_no OPERATOR(pg_catalog.=) ANY ($1) RETURNING *)"
	" INSERT INTO order_engine_archive.orders SELECT o.*, pg_catalog.now() FROM o",
	1, {INT8ARRAYOID}
};

static void
archive_one(int64 order_no)
{
	Datum		arg = PointerGetDatum(OeInt8Array(&order_no, 1));

	OeQueryRun(&move_orders, &arg, NULL, false, 0);
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("order " INT64_FORMAT " vanished while being archived", order_no)));
}

/*
 * The batch's orders are locked (FOR UPDATE in the gather), so none can
 * vanish; if one did, the error sends the batch to archive_one, order by
 * order, which names it.
 */
static void
archive_many(const int64 *orders, int n)
{
	Datum		arg = PointerGetDatum(OeInt8Array(orders, n));

	OeQueryRun(&move_orders, &arg, NULL, false, 0);
	if (SPI_processed != (uint64) n)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%d of a batch of %d orders vanished while being archived",
						n - (int) SPI_processed, n)));
}

typedef struct ArchiveBatch
{
	TimestampTz finished_before;	/* now() - older_than */
	int32		max_rows;
	int64		max_order_no;	/* the highest order number gathered */
} ArchiveBatch;

/* the batch's finished orders, locked (SKIP LOCKED), in its subtransaction */
static int
gather_finished(void *arg, int64 **orders_out)
{
	ArchiveBatch *b = (ArchiveBatch *) arg;
	Datum		args[2];
	uint64		n;
	int64	   *orders;

	args[0] = TimestampTzGetDatum(b->finished_before);
	args[1] = Int32GetDatum(b->max_rows);
	OeQueryRun(&select_finished, args, NULL, false, 0);
	orders = OeQueryInt64Column(&n);
	b->max_order_no = 0;
	for (uint64 i = 0; i < n; i++)
		b->max_order_no = Max(b->max_order_no, orders[i]);
	*orders_out = orders;
	return (int) n;
}

int64
OeArchiveOrders(Interval *older_than, int32 max_rows)
{
	ArchiveBatch batch = {OeIntervalCutoff(older_than, "older_than"), max_rows, 0};
	int64		moved;

	OeSqlConnect();
	moved = OeJobProcessBatch(OE_JOB_ARCHIVE_ORDERS, gather_finished, &batch,
							  archive_many, archive_one);
	if (moved > 0)
	{
		Datum		args[2];

		args[0] = Int64GetDatum(batch.max_order_no);
		args[1] = Int64GetDatum(moved);
		OeQueryRun(&update_watermark, args, NULL, false, 0);
	}
	SPI_finish();
	return moved;
}

PG_FUNCTION_INFO_V1(oe_archive_orders);
Datum
oe_archive_orders(PG_FUNCTION_ARGS)
{
	/* STRICT in SQL (order_engine--0.4--0.5.sql): no argument is null */
	Interval   *older_than = PG_GETARG_INTERVAL_P(0);
	int32		max_rows = PG_GETARG_INT32(1);

	CheckMaxRows(max_rows, OE_MAX_ROWS_UNBOUNDED);
	PG_RETURN_INT32((int32) OeArchiveOrders(older_than, max_rows));
}
