/*-------------------------------------------------------------------------
 *
 * worker_state.h
 *	  The shared table through which the launcher, the per-database workers
 *	  and ordinary backends see each other.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ORDER_ENGINE_WORKER_STATE_H
#define ORDER_ENGINE_WORKER_STATE_H

#include "datatype/timestamp.h"
#include "port/atomics.h"
#include "storage/latch.h"

#include "common/order_engine.h"
#include "jobs/jobs.h"
#include "worker/signal.h"
#include "worker/worker.h"

#define OE_JOB_ERROR_LEN	256

/* what worker_status shows of one job of one worker */
typedef struct OeJobStats
{
	TimestampTz last_run_at;
	int64		last_rows;
	int64		total_rows;
	int64		runs;
	int64		errors;
	TimestampTz last_error_at;
	char		last_error[OE_JOB_ERROR_LEN];
	TimestampTz next_run_at;
} OeJobStats;

/* what a worker is doing, as worker_status shows it */
typedef enum OeWorkerPhase
{
	OE_PHASE_STARTING = 0,
	OE_PHASE_IDLE,				/* extension installed, nothing due */
	OE_PHASE_WORKING,
	OE_PHASE_NO_EXTENSION,		/* idling: extension not installed here */
	OE_PHASE_RECOVERY			/* idling: server is a standby */
} OeWorkerPhase;

/* a database the launcher must leave alone while a command drops it */
typedef struct OeWorkerHoldOff
{
	Oid			dboid;
	int			holders;		/* commands in progress on it */
	TimestampTz until;			/* and at most until then */
} OeWorkerHoldOff;

typedef struct OeWorkerSlot
{
	Oid			dboid;			/* InvalidOid: slot free */
	pid_t		pid;
	Latch	   *latch;
	bool		exit_requested;
	OeWorkerPhase phase;
	TimestampTz started_at;
	TimestampTz last_loop_at;
	TimestampTz next_wake_at;
	uint64		loops;
	pg_atomic_uint32 recheck_pending;	/* something is due sooner */
	pg_atomic_uint32 notify_pending;	/* outbox events to NOTIFY */
	OeJobStats	jobs[OE_NUM_JOBS];
} OeWorkerSlot;

extern OeWorkerSlot *OeWorkerSlotClaim(Oid dboid);
extern void OeWorkerSlotUpdate(OeWorkerSlot *slot, OeWorkerPhase phase,
							   TimestampTz next_wake_at);
extern void OeWorkerSlotJobDone(OeWorkerSlot *slot, OeJobId job,
								TimestampTz started, int64 rows,
								const char *error, TimestampTz next_run_at);
extern bool OeWorkerSlotExitRequested(OeWorkerSlot *slot);
extern bool OeWorkerRunning(Oid dboid);
extern void OeWorkerRequestExit(Oid dboid, bool hold_off);
extern bool OeWorkerHeldOff(Oid dboid, TimestampTz now);
extern void OeWorkerEndHoldOff(Oid dboid);
extern void OeWorkerRequestExitExcept(const Oid *keep, int nkeep);
extern void OeLauncherPublish(void);
extern bool OeWorkerSlotTakeSignal(OeWorkerSlot *slot, bool notify);
extern bool OeWorkerSlotSignalPending(OeWorkerSlot *slot, bool notify);

#define OE_EVENTS_CHANNEL		"order_engine_events"

#endif							/* ORDER_ENGINE_WORKER_STATE_H */
