/*-------------------------------------------------------------------------
 *
 * worker/worker.h
 *	  The worker folder's entry points that _PG_init and src/shmem.c wire
 *	  together.  Domain code never includes this: it wakes the worker
 *	  through worker/signal.h.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ORDER_ENGINE_WORKER_H
#define ORDER_ENGINE_WORKER_H

#include "postgres.h"

/* worker_state.c: the shared table of running workers */
extern Size OeWorkerStateShmemSize(void);
extern void OeWorkerStateShmemInit(void);

/* launcher.c, worker.c */
extern void OeLauncherRegister(void);
PGDLLEXPORT void OeLauncherMain(Datum main_arg);
PGDLLEXPORT void OeWorkerMain(Datum main_arg);

/* utility_hook.c */
extern void OeUtilityHookInstall(void);

#endif							/* ORDER_ENGINE_WORKER_H */
