/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  The shared-memory hooks of order_engine.
 *
 * One request hook and one startup hook, chained to whatever was installed
 * before us, ask every subsystem for its size and let it initialise its
 * part.  A subsystem with shared state adds one line to each function.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"

#include "common/preload.h"
#include "ids/ids.h"
#include "stock/stock.h"
#include "shmem.h"
#include "worker/worker.h"

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
oe_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();

	RequestAddinShmemSpace(OeWorkerStateShmemSize());
	RequestAddinShmemSpace(OeIdsShmemSize());
	RequestAddinShmemSpace(OeEscrowShmemSize());
}

static void
oe_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	OeWorkerStateShmemInit();
	OeIdsShmemInit();
	OeEscrowShmemInit();
	OeShmemMarkReady();
}

void
OeShmemInstallHooks(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = oe_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = oe_shmem_startup;
}
