/*-------------------------------------------------------------------------
 *
 * common/index_cache.h
 *	  The index descriptions of the extension's tables, kept per backend
 *	  between calls (index_cache.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef ORDER_ENGINE_INDEX_CACHE_H
#define ORDER_ENGINE_INDEX_CACHE_H

#include "postgres.h"

#include "nodes/execnodes.h"

/*
 * ExecOpenIndices(rri, false) for one of our tables, whose relation the
 * caller has opened and locked: each index opened with RowExclusiveLock,
 * its IndexInfo and (for a partial index) its prepared predicate taken
 * from the backend's cache instead of being built again.  Close with
 * ExecCloseIndices, as after ExecOpenIndices.
 */
extern void OeOpenIndices(ResultRelInfo *rri);

#endif							/* ORDER_ENGINE_INDEX_CACHE_H */
