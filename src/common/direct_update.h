/*-------------------------------------------------------------------------
 *
 * common/direct_update.h
 *	  A row of one of the extension's tables locked and changed by heap
 *	  and index access, as an UPDATE would (direct_update.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef ORDER_ENGINE_DIRECT_UPDATE_H
#define ORDER_ENGINE_DIRECT_UPDATE_H

#include "postgres.h"

#include "access/htup.h"
#include "executor/tuptable.h"
#include "storage/itemptr.h"
#include "utils/relcache.h"
#include "utils/snapshot.h"

/*
 * Lock the row whose version *tid the statement's snapshot snap saw, FOR
 * NO KEY UPDATE, waiting, as an UPDATE does before it writes: in READ
 * COMMITTED its newest version (*tid is moved to it, slot holds it, and
 * the caller rechecks its condition on it, which is the executor's
 * EvalPlanQual); under a transaction snapshot a row changed since is a
 * serialization failure (40001).  False when the row was deleted since
 * (READ COMMITTED): there is nothing to change.  what names the row in
 * an unexpected error.
 */
extern bool OeDirectRowLock(Relation rel, ItemPointer tid, Snapshot snap,
							TupleTableSlot *slot, const char *what);

/*
 * Write the new version of the locked row at *tid: oldtup with the
 * columns where repl[i] replaced by values[i], nulls[i] (heap_modify_tuple;
 * then simple_heap_update: heap-only when the page has room and no
 * indexed column changed, else with new index entries).
 */
extern void OeDirectRowUpdate(Relation rel, ItemPointer tid, HeapTuple oldtup,
							  const Datum *values, const bool *nulls,
							  const bool *repl);

#endif							/* ORDER_ENGINE_DIRECT_UPDATE_H */
