/*-------------------------------------------------------------------------
 *
 * jobs.h
 *	  The maintenance jobs: the same C functions behind the SQL functions
 *	  (release_expired, close_unpaid, reap_expired_keys, archive_orders) and
 *	  the background worker.
 *
 * A job's batch function runs inside the caller's transaction and returns
 * the rows it handled.  Rows are processed in subtransactions
 * (OeJobProcessBatch): a row that fails with a non-transient error is put
 * in quarantine with its error and skipped from then on, so one bad row
 * never stops the others.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ORDER_ENGINE_JOBS_H
#define ORDER_ENGINE_JOBS_H

#include "postgres.h"

#include "datatype/timestamp.h"

typedef enum OeJobId
{
	OE_JOB_RELEASE_EXPIRED = 0,
	OE_JOB_CLOSE_UNPAID,
	OE_JOB_REAP_EXPIRED_KEYS,
	OE_JOB_ARCHIVE_ORDERS,
	OE_JOB_FOLD_ESCROW,
	OE_NUM_JOBS
} OeJobId;

typedef void (*OeRowFunction) (int64 item);

/* when the worker runs a job again after a batch that succeeded */
typedef enum OeJobReschedule
{
	OE_JOB_WHEN_DUE = 0,		/* at once while batches are full, then when
								 * rows fall due (OeJobsNextDue) */
	OE_JOB_UNTIL_EMPTY,			/* the same, but at once while batches bring
								 * any rows: a batch covers part of what is
								 * due (release_expired's one bucket row), so
								 * a short one does not mean nothing is left */
	OE_JOB_NAP_WHEN_DONE,		/* at once while batches are full, then after
								 * order_engine.naptime */
	OE_JOB_PAUSED				/* one batch, then a pause at least as long as
								 * the batch took (a nap once nothing is left);
								 * woken early when a job finished orders */
} OeJobReschedule;

/*
 * One row of the job table (job_table.c).  The worker loops over the table
 * and knows no job by name: adding a job is one file plus one row (and its
 * name in jobs.c).
 */
typedef struct OeJob
{
	int64		(*batch) (int32 max_rows);	/* in the caller's transaction */
	int		   *batch_size;		/* the GUC the worker's batches take */
	bool		async_commit;	/* its batches need not wait for their WAL
								 * flush: a lost batch is simply done again */
	OeJobReschedule reschedule;
	int		   *pause_ms;		/* OE_JOB_PAUSED: the GUC of the pause */
	bool		(*window_open) (TimestampTz now);	/* NULL: runs any time */
	bool		finishes_orders;	/* the rows it handles are orders it
									 * finished: they wake the paused jobs
									 * (the archive) */
} OeJob;

extern const OeJob OeJobTable[OE_NUM_JOBS];

/*
 * The one quarantine filter of the jobs' queries: "AND the row is not in
 * quarantine for this job" (job: a job name literal, item: the column).
 */
#define OE_NOT_QUARANTINED(job, item) \
	"   AND NOT EXISTS (SELECT FROM order_engine.quarantine q" \
	"                    WHERE q.job OPERATOR(pg_catalog.=) '" job "'" \
	"                      AND q.item OPERATOR(pg_catalog.=) " item ")"

extern const char *OeJobName(OeJobId job);

/*
 * A batch that releases stock locks what the release will lock first
 * (OeStockLockForRelease), each lock waited for at most this long: one
 * that cannot get them gives up (55P03, a transient error: the worker
 * retries the batch later) long before deadlock_timeout, so a lock cycle
 * with the worker in it never makes a client's call fail with 40P01.
 */
#define OE_JOB_STOCK_LOCK_TIMEOUT_MS	200

/*
 * A batch of items that gather(arg, &items) finds and locks (returning
 * how many).  First gather and the whole batch's work run in one
 * subtransaction (one xid, whatever the batch size): batch(items, n) when
 * set, which does it in a few statements, else fn on each item.  So the
 * rows the batch changes are locked by the subtransaction that changes
 * them: a row locked by the transaction and updated or deleted by a
 * subtransaction of it gets a MultiXact for its xmax, which every later
 * reader of the row has to look up (the sweep spent a tenth of its time
 * in GetMultiXactIdMembers when its holds were locked before).  If that
 * fails with a non-transient error, gather runs again in the transaction
 * and the items go through fn one by one, each in its own subtransaction,
 * the bad one quarantined.  Transient errors are re-thrown outside any
 * subtransaction: the caller retries the whole batch later.  Returns how
 * many items were done.
 */
typedef int (*OeGatherFunction) (void *arg, int64 **items);
typedef void (*OeBatchFunction) (const int64 *items, int n);
extern int64 OeJobProcessBatch(OeJobId job, OeGatherFunction gather, void *arg,
							   OeBatchFunction batch, OeRowFunction fn);

/* one batch of a job (its row of the table, job_table.c), in the caller's transaction */
extern int64 OeJobRunBatch(OeJobId job, int32 max_rows);

/* the batch functions behind the jobs */
extern int64 OeReleaseExpired(int32 max_rows);	/* expiry.c */
/* expiry.c: the worker's batch, the due holds of one bucket row */
extern int64 OeReleaseExpiredSweep(int32 max_rows);
extern int64 OeCloseUnpaid(int32 max_rows);	/* close_unpaid.c */

/* earliest time something falls due (holds, deadlines), 0 if none */
extern TimestampTz OeJobsNextDue(void);

#endif							/* ORDER_ENGINE_JOBS_H */
