/*-------------------------------------------------------------------------
 *
 * common/direct_update.h
 *	  A row of one of the extension's tables changed by heap and index
 *	  access, as an UPDATE would (direct_update.c).
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
 * The caller's condition on a version of the row, and the columns it
 * changes in it (values/nulls where repl; arrays of the table's width,
 * repl all false on entry).
 */
typedef bool (*OeRowCondition) (Relation rel, HeapTuple version, void *arg);
typedef void (*OeRowNewColumns) (Relation rel, HeapTuple version, void *arg,
								 Datum *values, bool *nulls, bool *repl);

/*
 * Change a row as an UPDATE's ModifyTable node does.  visible is the
 * version the statement's snapshot snap saw, on which the caller found its
 * condition true.  Its new version is written at once (heap_update,
 * waiting for a concurrent writer as the UPDATE does), so an uncontended
 * row is not locked first: no lock of its own in the WAL.  Only when
 * another transaction changed the row first: in READ COMMITTED its newest
 * version is locked, the condition checked on it and, when it holds, the
 * new columns computed from it and written (EvalPlanQual); under a
 * transaction snapshot that is a serialization failure (40001).  Returns
 * whether the row was changed.  what names the row in an unexpected
 * error.
 */
extern bool OeDirectRowChange(Relation rel, HeapTuple visible, Snapshot snap,
							  const char *what, OeRowCondition condition,
							  OeRowNewColumns new_columns, void *arg);

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

#endif							/* ORDER_ENGINE_DIRECT_UPDATE_H */
