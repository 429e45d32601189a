/*-------------------------------------------------------------------------
 *
 * common/preload.h
 *	  Is the library's shared memory there?  src/shmem.c marks it ready
 *	  once every subsystem has initialised its part; a subsystem's entry
 *	  point that needs shared state checks it itself (OeRequirePreload),
 *	  as pg_stat_statements does, and never calls back up into shmem.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ORDER_ENGINE_PRELOAD_H
#define ORDER_ENGINE_PRELOAD_H

#include "postgres.h"

extern void OeShmemMarkReady(void);
extern bool OeShmemReady(void);

/* ERROR (OBJECT_NOT_IN_PREREQUISITE_STATE) unless shared memory is ready */
extern void OeRequirePreload(void);

#endif							/* ORDER_ENGINE_PRELOAD_H */
