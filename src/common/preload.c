/*-------------------------------------------------------------------------
 *
 * common/preload.c
 *	  Whether order_engine's shared memory is set up (loaded via
 *	  shared_preload_libraries): the flag src/shmem.c sets and every
 *	  subsystem checks.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/preload.h"

static bool oe_shmem_ready = false;

void
OeShmemMarkReady(void)
{
	oe_shmem_ready = true;
}

bool
OeShmemReady(void)
{
	return oe_shmem_ready;
}

/*
 * Functions that need the shared state call this first.
 */
void
OeRequirePreload(void)
{
	if (!oe_shmem_ready)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("order_engine must be loaded via shared_preload_libraries"),
				 errhint("Add order_engine to shared_preload_libraries in postgresql.conf and restart the server.")));
}
