/*-------------------------------------------------------------------------
 *
 * order_engine.h
 *	  What the subsystems of order_engine share: limits, GUC variables and
 *	  the entry points _PG_init wires together.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ORDER_ENGINE_H
#define ORDER_ENGINE_H

#include "postgres.h"

#include "datatype/timestamp.h"

#define OE_EXTENSION_NAME		"order_engine"
#define OE_SCHEMA_NAME			"order_engine"
#define OE_LIBRARY_NAME			"order_engine"

/* at most this many databases get a worker (order_engine.database) */
#define OE_MAX_DATABASES		8

/* the launcher waits at least this long before restarting a worker */
#define OE_WORKER_RESTART_DELAY_MS	1000

/* after DROP/RENAME DATABASE asks a worker to leave, stay away this long */
#define OE_WORKER_HOLDOFF_MS	10000

/* a failing job waits 1 s, 2 s, 4 s ... at most this long before a retry */
#define OE_JOB_MAX_BACKOFF_MS	60000

/* GUC variables (guc.c) */
extern char *OeDatabaseList;
extern int	OeNaptimeMs;
extern int	OeBatchSize;
extern int	OeArchiveAfterSecs;
extern int	OeArchiveBatchSize;
extern int	OeArchivePauseMs;
extern char *OeArchiveWindow;

extern int	OeIdempotencyLeaseMs;
extern bool OeEmitLogicalMessages;

/* guc.c */
extern void OeDefineGucs(void);
extern bool OeArchiveWindowOpen(TimestampTz now);

/* shmem.c */
extern void OeShmemInstallHooks(void);
extern bool OeShmemReady(void);
extern void OeRequirePreload(void);

/* worker_state.c: the shared table of running workers */
extern Size OeWorkerStateShmemSize(void);
extern void OeWorkerStateShmemInit(void);

/* launcher.c, worker.c */
extern void OeLauncherRegister(void);
PGDLLEXPORT void OeLauncherMain(Datum main_arg);
PGDLLEXPORT void OeWorkerMain(Datum main_arg);

/* utility_hook.c */
extern void OeUtilityHookInstall(void);

#endif							/* ORDER_ENGINE_H */
