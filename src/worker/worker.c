/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The order_engine worker: one per database, started by the launcher.
 *
 * Each round the worker checks that it may work (a primary, with the
 * extension installed in its database), runs the jobs that are due, one
 * transaction per batch, and sleeps on its latch until the earliest hold
 * expiry or payment deadline, at most order_engine.naptime.  Backends set
 * the latch when they commit something due sooner (OeWorkerWakeAtCommit).
 * It leaves when asked (DROP DATABASE, the database removed from
 * order_engine.database), on SIGTERM, and exits
 * with code 1 on an error so that the launcher starts it again.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "commands/async.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/backend_status.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "common/internal_sql.h"
#include "jobs/jobs.h"
#include "worker/worker_state.h"

/*
 * The database's and the role's settings (ALTER DATABASE/ROLE ... SET)
 * were applied when we connected; their owners are not us.  Whatever they
 * say, the worker resolves names only in pg_catalog, and nothing they set
 * may make its batches fail or wait: these override them for the life of
 * the process.
 */
static void
oe_worker_pin_settings(void)
{
	static const char *const pinned[][2] = {
		{"search_path", OE_PINNED_SEARCH_PATH},
		{"statement_timeout", "0"},
		{"lock_timeout", "0"},
		{"idle_in_transaction_session_timeout", "0"},
		{"default_transaction_read_only", "off"},
		{"default_transaction_isolation", "read committed"},
	};

	for (int i = 0; i < lengthof(pinned); i++)
		SetConfigOption(pinned[i][0], pinned[i][1], PGC_SUSET, PGC_S_OVERRIDE);
}

/*
 * Become order_engine_owner for the rest of the process, once the
 * extension (and so the role) exists.  The worker must connect as a role
 * that can log in (PostgreSQL 15 refuses NOLOGIN roles for background
 * workers), so it connects as the bootstrap superuser and gives that up
 * here, before it runs any statement of ours; pg_stat_activity then shows
 * the role it works as.  Outside a transaction, so no abort undoes it.
 */
static bool
oe_worker_become_owner(void)
{
	static bool done = false;
	Oid			owner;
	bool		legacy;

	if (done)
		return true;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	owner = OeOwnerRoleId();
	legacy = superuser_arg(owner);
	CommitTransactionCommand();

	/* an extension older than 0.6: work as before and look again next round */
	if (legacy)
		return true;
	SetSessionAuthorization(owner, false);
	PGSTAT_BEGIN_WRITE_ACTIVITY(MyBEEntry);
	MyBEEntry->st_userid = owner;
	PGSTAT_END_WRITE_ACTIVITY(MyBEEntry);
	done = true;
	return true;
}

static bool
oe_extension_installed(void)
{
	bool		installed;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	installed = OidIsValid(get_extension_oid(OE_EXTENSION_NAME, true));
	CommitTransactionCommand();
	return installed && oe_worker_become_owner();
}

/* the current transaction commits without waiting for its WAL flush */
static void
oe_commit_without_flush(void)
{
	(void) set_config_option("synchronous_commit", "off",
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
}

/*
 * NOTIFY order_engine_events for the outbox events committed since the
 * last one (see OeOutboxNotify).
 *
 * The NOTIFY's own commit need not wait for its WAL flush: the events it
 * announces were flushed before their backends set the flag, and
 * notifications do not survive a crash anyway (listeners drain the outbox
 * when they reconnect).  Under load a flush per NOTIFY was one flush in
 * five of the whole server.
 */
static void
oe_send_notify(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	oe_commit_without_flush();
	Async_Notify(OE_EVENTS_CHANNEL, "");
	CommitTransactionCommand();
}

/*
 * One batch of a job in its own transaction.  An error is logged, counted
 * and answered with a backoff; it never stops the worker.  Returns the
 * rows handled, or -1 after an error (its message in *error).
 */
static int64
oe_run_batch(OeJobId job, int32 max_rows, char **error)
{
	MemoryContext context = CurrentMemoryContext;
	int64		rows = -1;
	char		activity[64];

	*error = NULL;
	snprintf(activity, sizeof(activity), "order_engine: %s", OeJobName(job));
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);

	PG_TRY();
	{
		/* a job that need not wait for its WAL flush (the job table) */
		OeInternalScope scope;

		if (OeJobTable[job].async_commit)
			oe_commit_without_flush();
		/* as order_engine_owner; an abort restores the worker's own user */
		OeInternalEnter(&scope, true);
		rows = OeJobRunBatch(job, max_rows);
		OeInternalExit(&scope);
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(context);
		edata = CopyErrorData();
		FlushErrorState();
		AbortOutOfAnyTransaction();
		MemoryContextSwitchTo(context);
		ereport(LOG,
				(errmsg("order_engine %s failed: %s", OeJobName(job), edata->message)));
		*error = pstrdup(edata->message);
		FreeErrorData(edata);
		rows = -1;
	}
	PG_END_TRY();
	pgstat_report_activity(STATE_IDLE, NULL);
	return rows;
}

/*
 * Run every job that is due: batches until a job has nothing left (archive:
 * one batch, then its pause), and a growing backoff after an error.
 */
static void
oe_run_jobs(OeWorkerSlot *slot, TimestampTz *next_run, int *failures)
{
	for (int j = 0; j < OE_NUM_JOBS; j++)
	{
		OeJobId		job = (OeJobId) j;
		const OeJob *def = &OeJobTable[j];
		bool		paused = (def->reschedule == OE_JOB_PAUSED);
		int32		batch = *def->batch_size;

		for (int round = 0; round < 100; round++)
		{
			TimestampTz now = GetCurrentTimestamp();
			char	   *error;
			int64		rows;

			if (now < next_run[j] || OeWorkerSlotExitRequested(slot))
				break;
			if (def->window_open && !def->window_open(now))
			{
				next_run[j] = TimestampTzPlusMilliseconds(now, 60 * 1000);
				break;
			}
			rows = oe_run_batch(job, batch, &error);
			if (rows < 0)
			{
				int			backoff = Min(OE_JOB_MAX_BACKOFF_MS, 1000 << Min(failures[j], 6));

				failures[j]++;
				next_run[j] = TimestampTzPlusMilliseconds(now, backoff);
				OeWorkerSlotJobDone(slot, job, now, 0, error, next_run[j]);
				break;
			}
			failures[j] = 0;
			/*
			 * Orders just closed may be due for the archive: wake an idle
			 * paused job (one pausing between batches keeps its pause).
			 * Only a job that finishes orders: when every round of the
			 * sweep woke it, the archive scanned the finished orders each
			 * time, a quarter of the worker's CPU with 50,000 of them not
			 * yet old enough (perf record -g on the worker).
			 */
			for (int k = 0; k < OE_NUM_JOBS; k++)
				if (k != j && rows > 0 && def->finishes_orders &&
					OeJobTable[k].reschedule == OE_JOB_PAUSED &&
					next_run[k] > TimestampTzPlusMilliseconds(now, *OeJobTable[k].pause_ms))
					next_run[k] = now;
			if (paused)
			{
				/*
				 * Pause after the batch at least as long as it took, and at
				 * least order_engine.archive_pause: archiving never takes
				 * more than half of a core from the foreground.
				 */
				TimestampTz end = GetCurrentTimestamp();
				long		took_ms = TimestampDifferenceMilliseconds(now, end);

				next_run[j] = TimestampTzPlusMilliseconds(end, rows > 0 ?
														  Max(*def->pause_ms, took_ms) :
														  OeNaptimeMs);
			}
			else if (def->reschedule == OE_JOB_NAP_WHEN_DONE && rows < batch)
				next_run[j] = TimestampTzPlusMilliseconds(now, OeNaptimeMs);	/* not urgent */
			else
				next_run[j] = 0;	/* expiries and deadlines: whenever due */
			OeWorkerSlotJobDone(slot, job, now, rows, NULL, next_run[j]);
			if (paused || rows == 0 ||
				(rows < batch && def->reschedule != OE_JOB_UNTIL_EMPTY))
				break;
			CHECK_FOR_INTERRUPTS();
		}
	}
}

/*
 * When to wake: at the earliest hold expiry or payment deadline,
 * a job's backoff or pause, or the nap, whichever comes first.
 */
static TimestampTz
oe_next_wake(TimestampTz *next_run)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz wake = TimestampTzPlusMilliseconds(now, OeNaptimeMs);
	TimestampTz due;
	OeInternalScope scope;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	OeInternalEnter(&scope, true);
	due = OeJobsNextDue();
	OeInternalExit(&scope);
	PopActiveSnapshot();
	CommitTransactionCommand();

	if (due != 0)
	{
		/* due already: rows were locked by others; look again shortly */
		if (due <= now)
			due = TimestampTzPlusMilliseconds(now, 50);
		/*
		 * Let what falls due gather (order_engine.expiry_gather): holds
		 * that expire a millisecond apart, as in a flash sale, would
		 * otherwise each get a round of several transactions.
		 */
		due = Max(due, TimestampTzPlusMilliseconds(now, OeExpiryGatherMs));
		wake = Min(wake, due);
	}
	for (int j = 0; j < OE_NUM_JOBS; j++)
		if (next_run[j] > now)
			wake = Min(wake, next_run[j]);
	return wake;
}

void
OeWorkerMain(Datum main_arg)
{
	Oid			dboid = DatumGetObjectId(main_arg);
	OeWorkerSlot *slot;
	char	   *dbname;
	MemoryContext round_context;
	TimestampTz next_run[OE_NUM_JOBS] = {0};
	int			failures[OE_NUM_JOBS] = {0};
	TimestampTz planned_wake = 0;
	TimestampTz last_notify = 0;
	bool		notify_held;
	long		sleep_ms;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	slot = OeWorkerSlotClaim(dboid);
	if (slot == NULL)
		proc_exit(0);			/* another worker serves this database */

	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("order_engine worker");
	oe_worker_pin_settings();

	StartTransactionCommand();
	dbname = MemoryContextStrdup(TopMemoryContext, get_database_name(dboid));
	CommitTransactionCommand();

	round_context = AllocSetContextCreate(TopMemoryContext,
										  "order_engine worker round",
										  ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		OeWorkerPhase phase;
		TimestampTz next_wake;
		TimestampTz now;
		bool		round = false;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			/* a new nap, archive window or pause applies at once */
			for (int j = 0; j < OE_NUM_JOBS; j++)
				if (OeJobTable[j].window_open || OeJobTable[j].reschedule == OE_JOB_PAUSED)
					next_run[j] = 0;
			round = true;
		}
		if (OeWorkerSlotExitRequested(slot))
		{
			ereport(LOG,
					(errmsg("order_engine worker for database \"%s\" is leaving on request",
							dbname)));
			proc_exit(0);
		}

		MemoryContextSwitchTo(round_context);

		/*
		 * At most one NOTIFY per order_engine.notify_gather.  Within that
		 * gap the flag stays set, so committing backends find it set and
		 * leave our latch alone (OeOutboxNotify): a burst of commits costs
		 * one wake-up and one NOTIFY, not one of each per commit.
		 */
		now = GetCurrentTimestamp();
		notify_held = !TimestampDifferenceExceeds(last_notify, now, OeNotifyGatherMs);
		if (!notify_held && OeWorkerSlotTakeSignal(slot, true) &&
			!RecoveryInProgress())
		{
			oe_send_notify();
			last_notify = GetCurrentTimestamp();
		}

		/* a full round when due, or when a commit brought something sooner */
		now = GetCurrentTimestamp();
		if (OeWorkerSlotTakeSignal(slot, false) || now >= planned_wake)
			round = true;
		if (round)
		{
			pgstat_report_activity(STATE_RUNNING, "order_engine: checking for work");
			next_wake = TimestampTzPlusMilliseconds(now, OeNaptimeMs);
			/* idling: look again within a second, whatever the nap */
			if (RecoveryInProgress() || !oe_extension_installed())
			{
				phase = RecoveryInProgress() ? OE_PHASE_RECOVERY : OE_PHASE_NO_EXTENSION;
				next_wake = TimestampTzPlusMilliseconds(now, Min(OeNaptimeMs, 1000));
			}
			else
			{
				OeWorkerSlotUpdate(slot, OE_PHASE_WORKING, next_wake);
				oe_run_jobs(slot, next_run, failures);
				next_wake = oe_next_wake(next_run);
				phase = OE_PHASE_IDLE;
			}
			planned_wake = next_wake;
			OeWorkerSlotUpdate(slot, phase, next_wake);
			pgstat_report_activity(STATE_IDLE, NULL);
		}
		MemoryContextSwitchTo(TopMemoryContext);
		MemoryContextReset(round_context);

		now = GetCurrentTimestamp();
		sleep_ms = (planned_wake > now) ?
			Max(1, (long) ((planned_wake - now + 999) / 1000)) : 1;
		/* a NOTIFY held back by the gap goes out when the gap ends */
		if (notify_held && OeWorkerSlotSignalPending(slot, true))
			sleep_ms = Min(sleep_ms,
						   Max(1, OeNotifyGatherMs -
							   (long) ((now - last_notify) / 1000)));
		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 sleep_ms,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
