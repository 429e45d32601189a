/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The order_engine worker: one per database, started by the launcher.
 *
 * Each round the worker checks that it may work (a primary, with the
 * extension installed in its database) and sleeps on its latch for at
 * most order_engine.naptime.  It leaves when asked (DROP DATABASE, the
 * database removed from order_engine.database), on SIGTERM, and exits
 * with code 1 on an error so that the launcher starts it again.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "commands/dbcommands.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "worker_state.h"

static bool
oe_extension_installed(void)
{
	bool		installed;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	installed = OidIsValid(get_extension_oid(OE_EXTENSION_NAME, true));
	CommitTransactionCommand();
	return installed;
}

void
OeWorkerMain(Datum main_arg)
{
	Oid			dboid = DatumGetObjectId(main_arg);
	OeWorkerSlot *slot;
	char	   *dbname;
	MemoryContext round_context;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	slot = OeWorkerSlotClaim(dboid);
	if (slot == NULL)
		proc_exit(0);			/* another worker serves this database */

	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("order_engine worker");

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

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (OeWorkerSlotExitRequested(slot))
		{
			ereport(LOG,
					(errmsg("order_engine worker for database \"%s\" is leaving on request",
							dbname)));
			proc_exit(0);
		}

		MemoryContextSwitchTo(round_context);
		pgstat_report_activity(STATE_RUNNING, "order_engine: checking for work");
		if (RecoveryInProgress())
			phase = OE_PHASE_RECOVERY;
		else if (!oe_extension_installed())
			phase = OE_PHASE_NO_EXTENSION;
		else
			phase = OE_PHASE_IDLE;
		MemoryContextSwitchTo(TopMemoryContext);
		MemoryContextReset(round_context);

		next_wake = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), OeNaptimeMs);
		OeWorkerSlotUpdate(slot, phase, next_wake);
		pgstat_report_activity(STATE_IDLE, NULL);

		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 OeNaptimeMs,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
