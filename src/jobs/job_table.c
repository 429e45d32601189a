/*-------------------------------------------------------------------------
 *
 * job_table.c
 *	  The job table: for each job its batch function, batch-size GUC,
 *	  commit mode and rescheduling rule (jobs.h, OeJob).  The worker loops
 *	  over it; adding a job is one file plus one row here.  It sits above
 *	  the job files (they use jobs.c's helpers, this file uses them), so
 *	  the jobs folder has no circle.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "datatype/timestamp.h"

#include "common/order_engine.h"
#include "idem/idempotency.h"
#include "jobs/archive.h"
#include "jobs/jobs.h"
#include "stock/stock.h"

static int64 archive_batch(int32 max_rows);
static int64 fold_escrow_batch(int32 max_rows);

/*
 * The job table.  Releasing holds and reaping keys commit asynchronously:
 * after a crash a lost batch is simply done again, and any durable commit
 * that used the released stock flushes it too.
 */
const OeJob OeJobTable[OE_NUM_JOBS] = {
	[OE_JOB_RELEASE_EXPIRED] = {
		OeReleaseExpiredSweep, &OeBatchSize, true,
		OE_JOB_UNTIL_EMPTY, NULL, NULL, false
	},
	[OE_JOB_CLOSE_UNPAID] = {
		OeCloseUnpaid, &OeBatchSize, false,
		OE_JOB_WHEN_DUE, NULL, NULL, true
	},
	[OE_JOB_REAP_EXPIRED_KEYS] = {
		OeReapExpiredKeys, &OeBatchSize, true,
		OE_JOB_NAP_WHEN_DONE, NULL, NULL, false
	},
	[OE_JOB_ARCHIVE_ORDERS] = {
		archive_batch, &OeArchiveBatchSize, false,
		OE_JOB_PAUSED, &OeArchivePauseMs, OeArchiveWindowOpen, false
	},
	/* escrow SKUs (stock/escrow.c): a lost fold is folded again */
	[OE_JOB_FOLD_ESCROW] = {
		fold_escrow_batch, &OeBatchSize, true,
		OE_JOB_NAP_WHEN_DONE, NULL, NULL, false
	},
};

/* archive_orders as the worker runs it: finished longer than archive_after */
static int64
archive_batch(int32 max_rows)
{
	Interval	older_than = {0};

	older_than.time = (int64) OeArchiveAfterSecs * USECS_PER_SEC;
	return OeArchiveOrders(&older_than, max_rows);
}

/* fold_escrow as the worker runs it: holds older than escrow_fold_after, starved counters */
static int64
fold_escrow_batch(int32 max_rows)
{
	return OeEscrowFold(max_rows, (int64) OeEscrowFoldAfterSecs * USECS_PER_SEC, true);
}

int64
OeJobRunBatch(OeJobId job, int32 max_rows)
{
	if ((int) job < 0 || job >= OE_NUM_JOBS)
		elog(ERROR, "unknown order_engine job %d", (int) job);
	return OeJobTable[job].batch(max_rows);
}

