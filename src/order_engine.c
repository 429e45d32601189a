/*-------------------------------------------------------------------------
 *
 * order_engine.c
 *	  Library entry point: wires the subsystems of order_engine together.
 *
 * Everything that needs the postmaster (shared memory, the background
 * worker, hooks seen by every backend) is set up only when the library is
 * in shared_preload_libraries.  Loaded later, by a plain function call,
 * the library defines its GUCs and nothing else; functions that need the
 * shared state then fail with OBJECT_NOT_IN_PREREQUISITE_STATE.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"

#include "common/guc.h"
#include "shmem.h"
#include "worker/worker.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	/* pg_upgrade runs the server without our workers and hooks */
	if (IsBinaryUpgrade)
		return;

	OeDefineGucs();

	if (!process_shared_preload_libraries_in_progress)
		return;

	OeShmemInstallHooks();
	OeUtilityHookInstall();
	OeLauncherRegister();
}
