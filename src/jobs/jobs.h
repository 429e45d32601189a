/*-------------------------------------------------------------------------
 *
 * jobs.h
 *	  The maintenance jobs: the same C functions behind the SQL functions
 *	  (release_expired, close_unpaid, reap_expired_keys, archive_orders) and
 *	  the background worker.
 *
 * A job's batch function runs inside the caller's transaction and returns
 * the rows it handled.  Rows are processed one by one in subtransactions
 * (OeJobProcessRows): a row that fails with a non-transient error is put
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
	OE_NUM_JOBS
} OeJobId;

typedef void (*OeRowFunction) (int64 item);

/*
 * The one quarantine filter of the jobs' queries: "AND the row is not in
 * quarantine for this job" (job: a job name literal, item: the column).
 */
#define OE_NOT_QUARANTINED(job, item) \
	"   AND NOT EXISTS (SELECT FROM order_engine.quarantine q" \
	"                    WHERE q.job OPERATOR(pg_catalog.=) '" job "'" \
	"                      AND q.item OPERATOR(pg_catalog.=) " item ")"

extern const char *OeJobName(OeJobId job);

/* the max_rows argument of a job's SQL function: at least 1 (22023) */
extern void OeJobCheckMaxRows(int32 max_rows);

/* lock the stock buckets of these orders' held holds in reserve's order */
extern void OeJobLockStock(const int64 *orders, int norders);

/* process items one by one; returns how many succeeded */
extern int64 OeJobProcessRows(OeJobId job, const int64 *items, int nitems,
							  OeRowFunction fn);

/* one batch of each job, in the caller's transaction */
extern int64 OeJobRunBatch(OeJobId job, int32 max_rows);

/* the batch functions behind the jobs */
extern int64 OeReleaseExpired(int32 max_rows);	/* expiry.c */
extern int64 OeCloseUnpaid(int32 max_rows);	/* close_unpaid.c */

/* earliest time something falls due (holds, deadlines), 0 if none */
extern TimestampTz OeJobsNextDue(void);

#endif							/* ORDER_ENGINE_JOBS_H */
