/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  The order_engine launcher: starts one worker per database listed in
 *	  order_engine.database and keeps it running.
 *
 * The launcher is a static background worker connected to no database; it
 * reads pg_database (a shared catalog) to resolve the names, so a name that
 * does not exist or a database just dropped never puts a worker in a
 * crash loop.  Workers are dynamic background workers that report to the
 * launcher when they stop (bgw_notify_pid); the launcher restarts them,
 * at most once per OE_WORKER_RESTART_DELAY_MS.  This split is what lets
 * DROP DATABASE of a worker's database go through: the worker leaves when
 * asked (utility_hook.c) and the launcher does not start it again while
 * the drop is under way.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "worker/worker_state.h"

/* what the launcher remembers of each database it serves */
typedef struct OeServedDatabase
{
	Oid			dboid;
	BackgroundWorkerHandle *handle;
	TimestampTz last_start;
} OeServedDatabase;

static OeServedDatabase served[OE_MAX_DATABASES];
static int	nserved = 0;
static char *last_missing = NULL;
static MemoryContext round_context = NULL;

void
OeLauncherRegister(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, OE_LIBRARY_NAME);
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "OeLauncherMain");
	snprintf(worker.bgw_name, BGW_MAXLEN, "order_engine launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "order_engine launcher");
	RegisterBackgroundWorker(&worker);
}

static BackgroundWorkerHandle *
oe_start_worker(Oid dboid)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	MemoryContext oldcontext;
	bool		registered;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, OE_LIBRARY_NAME);
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "OeWorkerMain");
	snprintf(worker.bgw_name, BGW_MAXLEN, "order_engine worker");
	snprintf(worker.bgw_type, BGW_MAXLEN, "order_engine worker");
	worker.bgw_main_arg = ObjectIdGetDatum(dboid);
	worker.bgw_notify_pid = MyProcPid;

	/* the handle outlives the round */
	oldcontext = MemoryContextSwitchTo(TopMemoryContext);
	registered = RegisterDynamicBackgroundWorker(&worker, &handle);
	MemoryContextSwitchTo(oldcontext);
	if (!registered)
	{
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start order_engine worker for database %u", dboid),
				 errhint("Raise max_worker_processes.")));
		return NULL;
	}
	return handle;
}

/*
 * Resolve order_engine.database into database oids.  Names that do not
 * exist (or do not accept connections) are reported once and skipped.
 *
 * pg_database is read with a plain heap scan, as the autovacuum launcher
 * does: a process without a database cannot build the relcache entries of
 * its indexes before the shared relcache init file exists.
 */
static int
oe_wanted_databases(Oid *oids)
{
	char	   *rawlist = pstrdup(OeDatabaseList ? OeDatabaseList : "");
	List	   *names = NIL;
	ListCell   *lc;
	int			n = 0;
	int			nnames;
	Oid		   *found;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	StringInfoData missing;

	initStringInfo(&missing);
	if (!SplitIdentifierString(rawlist, ',', &names))
	{
		ereport(WARNING,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid list syntax in parameter \"order_engine.database\"")));
		return 0;
	}
	nnames = list_length(names);
	found = palloc0(sizeof(Oid) * Max(nnames, 1));

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	(void) MemoryContextSwitchTo(round_context);
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);
		int			i = 0;

		if (!db->datallowconn)
			continue;
		foreach(lc, names)
		{
			if (strcmp(NameStr(db->datname), (char *) lfirst(lc)) == 0)
				found[i] = db->oid;
			i++;
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	(void) MemoryContextSwitchTo(round_context);

	for (int i = 0; i < nnames; i++)
	{
		char	   *name = (char *) list_nth(names, i);

		if (!OidIsValid(found[i]))
		{
			appendStringInfo(&missing, "%s%s", missing.len ? ", " : "", name);
			continue;
		}
		if (n >= OE_MAX_DATABASES)
		{
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("order_engine serves at most %d databases; \"%s\" is left out",
							OE_MAX_DATABASES, name)));
			continue;
		}
		oids[n++] = found[i];
	}

	/* say it when the set of missing names changes, not every round */
	if (last_missing == NULL || strcmp(last_missing, missing.data) != 0)
	{
		if (missing.len > 0)
			ereport(LOG,
					(errmsg("order_engine: database(s) %s in \"order_engine.database\" do not exist or do not allow connections",
							missing.data)));
		if (last_missing)
			pfree(last_missing);
		last_missing = MemoryContextStrdup(TopMemoryContext, missing.data);
	}
	return n;
}

static OeServedDatabase *
oe_served_entry(Oid dboid)
{
	for (int i = 0; i < nserved; i++)
		if (served[i].dboid == dboid)
			return &served[i];
	if (nserved >= OE_MAX_DATABASES)
		return NULL;
	memset(&served[nserved], 0, sizeof(OeServedDatabase));
	served[nserved].dboid = dboid;
	return &served[nserved++];
}

/*
 * Forget the databases no longer wanted (dropped, renamed, taken out of
 * order_engine.database) once their worker has stopped, so that their
 * entries are free for others: the table holds OE_MAX_DATABASES, and a
 * server that cycles through more databases than that over its life
 * (a test or a restore per day) must still serve the new ones.
 */
static void
oe_forget_unwanted(const Oid *wanted, int nwanted)
{
	int			kept = 0;

	for (int i = 0; i < nserved; i++)
	{
		bool		is_wanted = false;
		pid_t		pid;

		for (int j = 0; j < nwanted && !is_wanted; j++)
			is_wanted = served[i].dboid == wanted[j];
		if (!is_wanted &&
			(served[i].handle == NULL ||
			 GetBackgroundWorkerPid(served[i].handle, &pid) == BGWH_STOPPED))
		{
			if (served[i].handle != NULL)
				pfree(served[i].handle);
			continue;
		}
		served[kept++] = served[i];
	}
	nserved = kept;
}

/*
 * One round: start the workers that are missing, ask the unwanted to go.
 * Returns how long to sleep before the next round.
 */
static long
oe_launcher_round(void)
{
	Oid			wanted[OE_MAX_DATABASES];
	int			nwanted = oe_wanted_databases(wanted);
	TimestampTz now = GetCurrentTimestamp();
	long		sleep_ms = OeNaptimeMs;

	OeWorkerRequestExitExcept(wanted, nwanted);
	oe_forget_unwanted(wanted, nwanted);

	for (int i = 0; i < nwanted; i++)
	{
		OeServedDatabase *entry = oe_served_entry(wanted[i]);
		pid_t		pid;
		TimestampTz next_start;

		if (entry == NULL)
			continue;

		/* a worker that is starting or running needs nothing */
		if (entry->handle != NULL &&
			GetBackgroundWorkerPid(entry->handle, &pid) != BGWH_STOPPED)
			continue;
		if (entry->handle != NULL)
		{
			pfree(entry->handle);
			entry->handle = NULL;
		}
		/* one started by an earlier launcher may still be alive */
		if (OeWorkerRunning(wanted[i]) || OeWorkerHeldOff(wanted[i], now))
			continue;

		next_start = TimestampTzPlusMilliseconds(entry->last_start,
												 OE_WORKER_RESTART_DELAY_MS);
		if (now < next_start)
		{
			long		wait_ms = TimestampDifferenceMilliseconds(now, next_start) + 1;

			sleep_ms = Min(sleep_ms, wait_ms);
			continue;
		}
		entry->handle = oe_start_worker(wanted[i]);
		entry->last_start = now;
	}

	/* while a worker is held off, look again soon */
	return Min(sleep_ms, OE_WORKER_RESTART_DELAY_MS);
}

void
OeLauncherMain(Datum main_arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/* no database: only shared catalogs such as pg_database are read */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	OeLauncherPublish();
	round_context = AllocSetContextCreate(TopMemoryContext,
										  "order_engine launcher round",
										  ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		long		sleep_ms;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		(void) MemoryContextSwitchTo(round_context);
		sleep_ms = oe_launcher_round();
		(void) MemoryContextSwitchTo(TopMemoryContext);
		MemoryContextReset(round_context);

		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 sleep_ms,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
