/*-------------------------------------------------------------------------
 *
 * worker_state.c
 *	  Shared table of order_engine workers: one slot per database worker,
 *	  the launcher's latch, and the worker_status() function.
 *
 * A worker claims its slot when it starts and frees it at exit, so the
 * table is the truth about which databases have a live worker.  Backends
 * use it to wake a worker early or to ask it to leave (DROP DATABASE).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/async.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "worker/worker_state.h"

typedef struct OeWorkerState
{
	LWLock	   *lock;
	pid_t		launcher_pid;
	Latch	   *launcher_latch;
	/* databases whose worker was asked to leave by a running command */
	OeWorkerHoldOff holdoffs[OE_MAX_DATABASES];
	OeWorkerSlot slots[OE_MAX_DATABASES];
} OeWorkerState;

static OeWorkerState *oe_state = NULL;

static const char *const oe_phase_names[] = {
	[OE_PHASE_STARTING] = "starting",
	[OE_PHASE_IDLE] = "idle",
	[OE_PHASE_WORKING] = "working",
	[OE_PHASE_NO_EXTENSION] = "extension not installed",
	[OE_PHASE_RECOVERY] = "in recovery",
};

Size
OeWorkerStateShmemSize(void)
{
	RequestNamedLWLockTranche("order_engine_workers", 1);
	return MAXALIGN(sizeof(OeWorkerState));
}

void
OeWorkerStateShmemInit(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	oe_state = ShmemInitStruct("order_engine worker state",
							   sizeof(OeWorkerState), &found);
	if (!found)
	{
		memset(oe_state, 0, sizeof(OeWorkerState));
		oe_state->lock = &(GetNamedLWLockTranche("order_engine_workers"))->lock;
	}
	LWLockRelease(AddinShmemInitLock);
}

static void
oe_worker_slot_release(int code, Datum arg)
{
	OeWorkerSlot *slot = &oe_state->slots[DatumGetInt32(arg)];

	LWLockAcquire(oe_state->lock, LW_EXCLUSIVE);
	if (slot->pid == MyProcPid)
		memset(slot, 0, sizeof(OeWorkerSlot));
	LWLockRelease(oe_state->lock);
}

/*
 * Take a free slot for this process's database.  Returns NULL when another
 * live worker already serves it (the caller then exits) or the table is
 * full.
 */
OeWorkerSlot *
OeWorkerSlotClaim(Oid dboid)
{
	int			free_index = -1;
	OeWorkerSlot *slot = NULL;

	LWLockAcquire(oe_state->lock, LW_EXCLUSIVE);
	for (int i = 0; i < OE_MAX_DATABASES; i++)
	{
		if (oe_state->slots[i].dboid == dboid)
		{
			free_index = -1;
			break;
		}
		if (free_index < 0 && !OidIsValid(oe_state->slots[i].dboid))
			free_index = i;
	}
	if (free_index >= 0)
	{
		slot = &oe_state->slots[free_index];
		memset(slot, 0, sizeof(OeWorkerSlot));
		slot->dboid = dboid;
		slot->pid = MyProcPid;
		slot->latch = &MyProc->procLatch;
		slot->phase = OE_PHASE_STARTING;
		slot->started_at = GetCurrentTimestamp();
		pg_atomic_init_u32(&slot->recheck_pending, 0);
		/* a notification may have been lost with a previous worker */
		pg_atomic_init_u32(&slot->notify_pending, 1);
	}
	LWLockRelease(oe_state->lock);

	if (slot != NULL)
		on_shmem_exit(oe_worker_slot_release, Int32GetDatum(free_index));
	return slot;
}

void
OeWorkerSlotUpdate(OeWorkerSlot *slot, OeWorkerPhase phase,
				   TimestampTz next_wake_at)
{
	LWLockAcquire(oe_state->lock, LW_EXCLUSIVE);
	slot->phase = phase;
	slot->last_loop_at = GetCurrentTimestamp();
	slot->next_wake_at = next_wake_at;
	slot->loops++;
	LWLockRelease(oe_state->lock);
}

void
OeWorkerSlotJobDone(OeWorkerSlot *slot, OeJobId job, TimestampTz started,
					int64 rows, const char *error, TimestampTz next_run_at)
{
	OeJobStats *stats = &slot->jobs[job];

	LWLockAcquire(oe_state->lock, LW_EXCLUSIVE);
	stats->last_run_at = started;
	stats->runs++;
	stats->next_run_at = next_run_at;
	if (error)
	{
		stats->errors++;
		stats->last_error_at = GetCurrentTimestamp();
		strlcpy(stats->last_error, error, OE_JOB_ERROR_LEN);
	}
	else
	{
		stats->last_rows = rows;
		stats->total_rows += rows;
	}
	LWLockRelease(oe_state->lock);
}

bool
OeWorkerSlotExitRequested(OeWorkerSlot *slot)
{
	bool		result;

	LWLockAcquire(oe_state->lock, LW_SHARED);
	result = slot->exit_requested;
	LWLockRelease(oe_state->lock);
	return result;
}

bool
OeWorkerRunning(Oid dboid)
{
	bool		result = false;

	LWLockAcquire(oe_state->lock, LW_SHARED);
	for (int i = 0; i < OE_MAX_DATABASES; i++)
		if (oe_state->slots[i].dboid == dboid)
			result = true;
	LWLockRelease(oe_state->lock);
	return result;
}

static void
oe_request_exit_locked(OeWorkerSlot *slot)
{
	slot->exit_requested = true;
	if (slot->latch)
		SetLatch(slot->latch);
}

/*
 * Ask the worker of a database to exit.  With hold_off, the launcher will
 * not start a new one there until OeWorkerEndHoldOff (at most
 * OE_WORKER_HOLDOFF_MS): long enough for a DROP DATABASE to finish.  Each
 * database has its own hold-off, counted, so concurrent commands on
 * different databases (or on the same one) never cancel each other's.
 */
void
OeWorkerRequestExit(Oid dboid, bool hold_off)
{
	LWLockAcquire(oe_state->lock, LW_EXCLUSIVE);
	for (int i = 0; i < OE_MAX_DATABASES; i++)
		if (oe_state->slots[i].dboid == dboid)
			oe_request_exit_locked(&oe_state->slots[i]);
	if (hold_off)
	{
		TimestampTz now = GetCurrentTimestamp();
		OeWorkerHoldOff *h = NULL;

		for (int i = 0; i < OE_MAX_DATABASES && h == NULL; i++)
			if (oe_state->holdoffs[i].dboid == dboid)
				h = &oe_state->holdoffs[i];
		for (int i = 0; i < OE_MAX_DATABASES && h == NULL; i++)
			if (oe_state->holdoffs[i].holders == 0 ||
				now >= oe_state->holdoffs[i].until)
				h = &oe_state->holdoffs[i];
		if (h != NULL)
		{
			if (h->dboid != dboid || now >= h->until)
				h->holders = 0;
			h->dboid = dboid;
			h->holders++;
			h->until = TimestampTzPlusMilliseconds(now, OE_WORKER_HOLDOFF_MS);
		}
	}
	LWLockRelease(oe_state->lock);
}

/* the command that asked for a hold-off is over, however it ended */
void
OeWorkerEndHoldOff(Oid dboid)
{
	LWLockAcquire(oe_state->lock, LW_EXCLUSIVE);
	for (int i = 0; i < OE_MAX_DATABASES; i++)
	{
		OeWorkerHoldOff *h = &oe_state->holdoffs[i];

		if (h->dboid == dboid && h->holders > 0 && --h->holders == 0)
			h->until = 0;
	}
	LWLockRelease(oe_state->lock);
	/* the launcher may serve the database again at once */
	if (oe_state->launcher_latch)
		SetLatch(oe_state->launcher_latch);
}

bool
OeWorkerHeldOff(Oid dboid, TimestampTz now)
{
	bool		result = false;

	LWLockAcquire(oe_state->lock, LW_SHARED);
	for (int i = 0; i < OE_MAX_DATABASES; i++)
		if (oe_state->holdoffs[i].dboid == dboid &&
			oe_state->holdoffs[i].holders > 0 &&
			now < oe_state->holdoffs[i].until)
			result = true;
	LWLockRelease(oe_state->lock);
	return result;
}

/*
 * Ask every worker whose database is not in keep[] to exit: the launcher
 * calls this after order_engine.database changed.
 */
void
OeWorkerRequestExitExcept(const Oid *keep, int nkeep)
{
	LWLockAcquire(oe_state->lock, LW_EXCLUSIVE);
	for (int i = 0; i < OE_MAX_DATABASES; i++)
	{
		OeWorkerSlot *slot = &oe_state->slots[i];
		bool		wanted = false;

		if (!OidIsValid(slot->dboid))
			continue;
		for (int j = 0; j < nkeep; j++)
			if (keep[j] == slot->dboid)
				wanted = true;
		if (!wanted && !slot->exit_requested)
			oe_request_exit_locked(slot);
	}
	LWLockRelease(oe_state->lock);
}

void
OeLauncherPublish(void)
{
	LWLockAcquire(oe_state->lock, LW_EXCLUSIVE);
	oe_state->launcher_pid = MyProcPid;
	oe_state->launcher_latch = &MyProc->procLatch;
	LWLockRelease(oe_state->lock);
}

/*
 * Set the latch of the worker serving a database, if there is one.
 */
void
OeWorkerWake(Oid dboid)
{
	if (oe_state == NULL)
		return;
	LWLockAcquire(oe_state->lock, LW_SHARED);
	for (int i = 0; i < OE_MAX_DATABASES; i++)
		if (oe_state->slots[i].dboid == dboid && oe_state->slots[i].latch)
			SetLatch(oe_state->slots[i].latch);
	LWLockRelease(oe_state->lock);
}

/*
 * Signals a backend sends its database's worker when its transaction
 * commits: "recheck" (something falls due sooner than the worker means to
 * wake: a hold expires, a payment deadline passes) and "notify" (outbox
 * events were written; the worker sends the NOTIFY, see OeOutboxNotify).
 * Nothing is sent for a transaction that aborts.
 */
static bool recheck_at_commit = false;
static bool notify_at_commit = false;
static bool signal_callback_registered = false;

/* set a slot's flag; true if it was clear */
static bool
raise_flag(pg_atomic_uint32 *flag)
{
	/* the read keeps the line shared while the worker holds a NOTIFY back */
	if (pg_atomic_read_u32(flag) != 0)
		return false;
	return pg_atomic_exchange_u32(flag, 1) == 0;
}

static void
oe_signal_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT && (recheck_at_commit || notify_at_commit))
	{
		LWLockAcquire(oe_state->lock, LW_SHARED);
		for (int i = 0; i < OE_MAX_DATABASES; i++)
		{
			OeWorkerSlot *slot = &oe_state->slots[i];
			bool		wake = false;

			if (slot->dboid != MyDatabaseId || slot->latch == NULL)
				continue;

			/*
			 * A flag already set needs no latch: whoever set it set the
			 * latch after it, and the worker clears the flag before it acts
			 * on what the flag says, so it acts after this commit.
			 */
			if (recheck_at_commit && raise_flag(&slot->recheck_pending))
				wake = true;
			if (notify_at_commit && raise_flag(&slot->notify_pending))
				wake = true;
			if (wake)
				SetLatch(slot->latch);
		}
		LWLockRelease(oe_state->lock);
	}
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT)
		recheck_at_commit = notify_at_commit = false;
}

static void
oe_signal_at_commit(bool recheck, bool notify)
{
	if (!signal_callback_registered)
	{
		RegisterXactCallback(oe_signal_xact_callback, NULL);
		signal_callback_registered = true;
	}
	recheck_at_commit |= recheck;
	notify_at_commit |= notify;
}

void
OeWorkerWakeAtCommit(TimestampTz due)
{
	bool		sooner = false;

	if (oe_state == NULL)
		return;
	LWLockAcquire(oe_state->lock, LW_SHARED);
	for (int i = 0; i < OE_MAX_DATABASES; i++)
		if (oe_state->slots[i].dboid == MyDatabaseId &&
			oe_state->slots[i].next_wake_at > due)
			sooner = true;
	LWLockRelease(oe_state->lock);
	if (sooner)
		oe_signal_at_commit(true, false);
}

/*
 * Outbox events were written: NOTIFY order_engine_events once they commit.
 *
 * PostgreSQL serialises every committing transaction that sent a NOTIFY
 * (a cluster-wide lock held through the commit's WAL flush), which would
 * cap order throughput at one commit per flush.  When a worker serves this
 * database, it sends the NOTIFY instead, right after the commit, one for
 * all the commits that happened since its last one.  Without a worker the
 * transaction notifies itself.
 */
void
OeOutboxNotify(void)
{
	bool		served = false;

	if (oe_state != NULL)
	{
		LWLockAcquire(oe_state->lock, LW_SHARED);
		for (int i = 0; i < OE_MAX_DATABASES; i++)
			if (oe_state->slots[i].dboid == MyDatabaseId &&
				oe_state->slots[i].latch != NULL &&
				!oe_state->slots[i].exit_requested)
				served = true;
		LWLockRelease(oe_state->lock);
	}
	if (served)
		oe_signal_at_commit(false, true);
	else
		Async_Notify(OE_EVENTS_CHANNEL, "");
}

bool
OeWorkerSlotTakeSignal(OeWorkerSlot *slot, bool notify)
{
	return pg_atomic_exchange_u32(notify ? &slot->notify_pending
								  : &slot->recheck_pending, 0) != 0;
}

/* whether the flag is set, leaving it set */
bool
OeWorkerSlotSignalPending(OeWorkerSlot *slot, bool notify)
{
	return pg_atomic_read_u32(notify ? &slot->notify_pending
							  : &slot->recheck_pending) != 0;
}

/*
 * What both worker_status() functions start with: a materialized SRF and a
 * consistent copy of the slots.
 */
static OeWorkerSlot *
status_snapshot(FunctionCallInfo fcinfo)
{
	OeWorkerSlot *copy;

	OeRequirePreload();
	InitMaterializedSRF(fcinfo, 0);

	copy = palloc(sizeof(OeWorkerSlot) * OE_MAX_DATABASES);
	LWLockAcquire(oe_state->lock, LW_SHARED);
	memcpy(copy, oe_state->slots, sizeof(OeWorkerSlot) * OE_MAX_DATABASES);
	LWLockRelease(oe_state->lock);
	return copy;
}

/*
 * worker_status() of version 0.1: one row per live database worker.
 * Kept for databases that have not run ALTER EXTENSION UPDATE yet.
 */
PG_FUNCTION_INFO_V1(oe_worker_status);
Datum
oe_worker_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	OeWorkerSlot *copy = status_snapshot(fcinfo);

	for (int i = 0; i < OE_MAX_DATABASES; i++)
	{
		OeWorkerSlot *slot = &copy[i];
		Datum		values[8];
		bool		nulls[8] = {0};
		char	   *dbname;

		if (!OidIsValid(slot->dboid))
			continue;
		dbname = get_database_name(slot->dboid);
		values[0] = ObjectIdGetDatum(slot->dboid);
		if (dbname)
			values[1] = CStringGetTextDatum(dbname);
		else
			nulls[1] = true;
		values[2] = Int32GetDatum(slot->pid);
		values[3] = CStringGetTextDatum(oe_phase_names[slot->phase]);
		values[4] = TimestampTzGetDatum(slot->started_at);
		values[5] = TimestampTzGetDatum(slot->last_loop_at);
		nulls[5] = (slot->last_loop_at == 0);
		values[6] = TimestampTzGetDatum(slot->next_wake_at);
		nulls[6] = (slot->next_wake_at == 0);
		values[7] = Int64GetDatum((int64) slot->loops);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * worker_status() from version 0.5 on: one row per live worker and job.
 */
PG_FUNCTION_INFO_V1(oe_worker_job_status);
Datum
oe_worker_job_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	OeWorkerSlot *copy = status_snapshot(fcinfo);

	for (int i = 0; i < OE_MAX_DATABASES; i++)
	{
		OeWorkerSlot *slot = &copy[i];
		char	   *dbname;

		if (!OidIsValid(slot->dboid))
			continue;
		dbname = get_database_name(slot->dboid);
		for (int j = 0; j < OE_NUM_JOBS; j++)
		{
			OeJobStats *js = &slot->jobs[j];
			Datum		values[15];
			bool		nulls[15] = {0};

			values[0] = dbname ? CStringGetTextDatum(dbname) : (Datum) 0;
			nulls[0] = (dbname == NULL);
			values[1] = Int32GetDatum(slot->pid);
			values[2] = CStringGetTextDatum(oe_phase_names[slot->phase]);
			values[3] = CStringGetTextDatum(OeJobName((OeJobId) j));
			values[4] = TimestampTzGetDatum(js->last_run_at);
			nulls[4] = (js->last_run_at == 0);
			values[5] = Int64GetDatum(js->last_rows);
			values[6] = Int64GetDatum(js->total_rows);
			values[7] = Int64GetDatum(js->runs);
			values[8] = Int64GetDatum(js->errors);
			values[9] = CStringGetTextDatum(js->last_error);
			nulls[9] = (js->last_error[0] == '\0');
			values[10] = TimestampTzGetDatum(js->last_error_at);
			nulls[10] = (js->last_error_at == 0);
			values[11] = TimestampTzGetDatum(js->next_run_at);
			nulls[11] = (js->next_run_at == 0);
			values[12] = TimestampTzGetDatum(slot->next_wake_at);
			nulls[12] = (slot->next_wake_at == 0);
			values[13] = TimestampTzGetDatum(slot->started_at);
			values[14] = Int64GetDatum((int64) slot->loops);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	return (Datum) 0;
}
