/*-------------------------------------------------------------------------
 *
 * shmem.h
 *	  The shared-memory hooks (shmem.c), installed by _PG_init.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ORDER_ENGINE_SHMEM_H
#define ORDER_ENGINE_SHMEM_H

extern void OeShmemInstallHooks(void);

#endif							/* ORDER_ENGINE_SHMEM_H */
