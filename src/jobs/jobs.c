/*-------------------------------------------------------------------------
 *
 * jobs.c
 *	  What every maintenance job shares: the jobs' names, row-by-row
 *	  processing with quarantine, the stock locks of a batch, and the
 *	  earliest due time the worker sleeps towards.  The job table that
 *	  names each job's batch function is job_table.c, above the job files.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "idem/idempotency.h"
#include "jobs/jobs.h"
#include "common/order_engine.h"
#include "orders/orders.h"
#include "common/arrays.h"
#include "common/internal_sql.h"

/* the jobs' names: SQL functions, quarantine.job, worker_status.job */
static const char *const job_names[OE_NUM_JOBS] = {
	[OE_JOB_RELEASE_EXPIRED] = "release_expired",
	[OE_JOB_CLOSE_UNPAID] = "close_unpaid",
	[OE_JOB_REAP_EXPIRED_KEYS] = "reap_expired_keys",
	[OE_JOB_ARCHIVE_ORDERS] = "archive_orders",
	[OE_JOB_FOLD_ESCROW] = "fold_escrow",
};

static OeQuery insert_quarantine = {
	"INSERT INTO order_engine.quarantine (job, item, sqlstate, error)"
	" VALUES ($1, $2, $3, $4)"
	" ON CONFLICT (job, item) DO UPDATE SET sqlstate = EXCLUDED.sqlstate,"
	" error = EXCLUDED.error, failed_at = pg_catalog.now()",
	4, {TEXTOID, INT8OID, TEXTOID, TEXTOID}
};

const char *
OeJobName(OeJobId job)
{
	return job_names[job];
}

/*
 * Errors that say nothing about the row: retry the whole batch later.
 */
static bool
error_is_transient(int sqlerrcode)
{
	return ERRCODE_TO_CATEGORY(sqlerrcode) == ERRCODE_TRANSACTION_ROLLBACK ||
		sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE ||
		sqlerrcode == ERRCODE_QUERY_CANCELED ||
		sqlerrcode == ERRCODE_ADMIN_SHUTDOWN ||
		sqlerrcode == ERRCODE_READ_ONLY_SQL_TRANSACTION ||
		sqlerrcode == ERRCODE_OUT_OF_MEMORY ||
		ERRCODE_TO_CATEGORY(sqlerrcode) == ERRCODE_INSUFFICIENT_RESOURCES;
}

static void
quarantine(OeJobId job, int64 item, ErrorData *edata)
{
	Datum		values[4];

	values[0] = CStringGetTextDatum(OeJobName(job));
	values[1] = Int64GetDatum(item);
	values[2] = CStringGetTextDatum(unpack_sql_state(edata->sqlerrcode));
	values[3] = CStringGetTextDatum(edata->message ? edata->message : "");
	OeSqlConnect();
	OeQueryRun(&insert_quarantine, values, NULL, false, 0);
	SPI_finish();
	ereport(WARNING,
			(errcode(edata->sqlerrcode),
			 errmsg("order_engine %s: item " INT64_FORMAT " quarantined: %s",
					OeJobName(job), item, edata->message),
			 errhint("See order_engine.quarantine; delete the row there to retry it.")));
}

/* one item, run in one internal subtransaction */
typedef struct RowWork
{
	int64		item;
	OeRowFunction fn;
} RowWork;

static bool
row_work(void *arg)
{
	RowWork    *w = (RowWork *) arg;

	w->fn(w->item);
	return true;
}

/* items one by one, each in its subtransaction, quarantining a bad one */
static int64
rows_one_by_one(OeJobId job, const int64 *items, int nitems, OeRowFunction fn)
{
	ErrorData  *edata = NULL;
	int64		done = 0;

	for (int i = 0; i < nitems; i++)
	{
		RowWork		w = {items[i], fn};

		/* on an error the subtransaction is rolled back, the error in edata */
		if (OeRunInSubtransaction(row_work, &w, &edata))
		{
			done++;
			continue;
		}
		if (error_is_transient(edata->sqlerrcode))
			ReThrowError(edata);
		quarantine(job, items[i], edata);
		FreeErrorData(edata);
	}
	return done;
}

/* the set-based attempt of OeJobProcessBatch, in its subtransaction */
typedef struct GatheredWork
{
	OeGatherFunction gather;
	void	   *arg;
	OeBatchFunction batch;		/* or NULL: fn on each item */
	OeRowFunction fn;
	int			n;
} GatheredWork;

static bool
gathered_work(void *arg)
{
	GatheredWork *w = (GatheredWork *) arg;
	int64	   *items;

	w->n = w->gather(w->arg, &items);
	if (w->n > 0 && w->batch != NULL)
		w->batch(items, w->n);
	else
		for (int i = 0; i < w->n; i++)
			w->fn(items[i]);
	return true;
}

int64
OeJobProcessBatch(OeJobId job, OeGatherFunction gather, void *arg,
				  OeBatchFunction batch, OeRowFunction fn)
{
	ErrorData  *edata = NULL;
	GatheredWork whole = {gather, arg, batch, fn, 0};
	int64	   *items;
	int			nitems;

	if (OeRunInSubtransaction(gathered_work, &whole, &edata))
		return whole.n;
	if (error_is_transient(edata->sqlerrcode))
		ReThrowError(edata);
	FreeErrorData(edata);
	nitems = gather(arg, &items);
	return rows_one_by_one(job, items, nitems, fn);
}

static OeQuery select_next_due = {
	"SELECT LEAST("
	" (SELECT h.expires_at FROM order_engine.stock_hold h WHERE h.state OPERATOR(pg_catalog.=) 'held'"
	OE_NOT_QUARANTINED("release_expired", "h.order_no")
	"   ORDER BY h.expires_at LIMIT 1),"
	" (SELECT o.pay_deadline FROM order_engine.orders o WHERE o.status OPERATOR(pg_catalog.=) 'pending_payment'"
	OE_NOT_QUARANTINED("close_unpaid", "o.order_no")
	"   ORDER BY o.pay_deadline LIMIT 1))",
	0, {0}
};

TimestampTz
OeJobsNextDue(void)
{
	bool		isnull;
	Datum		due;

	OeSqlConnect();
	OeQueryRun(&select_next_due, NULL, NULL, true, 1);
	due = OeQueryValue(1, &isnull);
	SPI_finish();
	return isnull ? 0 : DatumGetTimestampTz(due);
}
