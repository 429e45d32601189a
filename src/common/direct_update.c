/*-------------------------------------------------------------------------
 *
 * direct_update.c
 *	  A row of one of the extension's tables locked and changed by heap
 *	  and index access: what an UPDATE's ModifyTable node does for one
 *	  row found by an index probe, without a plan or executor start-up.
 *
 * Used where an UPDATE statement's start-up was most of a hot call's cost
 * (stock/bucket_row.c, idem/idem_key_row.c).  The caller has checked that
 * the table has nothing else an UPDATE would honour (OeDirectWriteRefused
 * and OeDirectWriteAllowed, direct_access.c), found the version its
 * statement snapshot sees, and checks its own condition again on the
 * version OeDirectRowLock returns.  SSI, WAL, TOAST and pg_stat are the
 * heap and index AMs' own, as for the UPDATE.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "executor/executor.h"
#include "nodes/execnodes.h"

#include "common/direct_update.h"
#include "common/index_cache.h"

bool
OeDirectRowLock(Relation rel, ItemPointer tid, Snapshot snap,
				TupleTableSlot *slot, const char *what)
{
	TM_FailureData tmfd;
	TM_Result	res;

	res = table_tuple_lock(rel, tid, snap, slot, GetCurrentCommandId(true),
						   LockTupleNoKeyExclusive, LockWaitBlock,
						   IsolationUsesXactSnapshot() ? 0 : TUPLE_LOCK_FLAG_FIND_LAST_VERSION,
						   &tmfd);
	switch (res)
	{
		case TM_Ok:
			return true;
		case TM_Updated:
		case TM_Deleted:
			if (IsolationUsesXactSnapshot())
				ereport(ERROR,
						(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
						 errmsg("could not serialize access due to concurrent update")));
			/* READ COMMITTED: deleted since, nothing to change */
			return false;
		default:
			elog(ERROR, "order_engine: unexpected result %d locking %s",
				 (int) res, what);
	}
	return false;				/* keep the compiler quiet */
}

/* new index entries for a version that is not heap-only */
static void
insert_index_entries(Relation rel, HeapTuple tup, bool only_summarizing)
{
	EState	   *estate = CreateExecutorState();
	ResultRelInfo *rri = makeNode(ResultRelInfo);
	TupleTableSlot *slot;
	List	   *recheck;

	InitResultRelInfo(rri, rel, 1, NULL, 0);
	OeOpenIndices(rri);
	slot = ExecInitExtraTupleSlot(estate, RelationGetDescr(rel), &TTSOpsHeapTuple);
	ExecStoreHeapTuple(tup, slot, false);

	/*
	 * update = false: true only adds the "key unchanged" hint, which reads
	 * the updated columns from a range table this EState does not have
	 */
#if PG_VERSION_NUM >= 160000
	recheck = ExecInsertIndexTuples(rri, slot, estate, false, false, NULL, NIL,
									only_summarizing);
#else
	recheck = ExecInsertIndexTuples(rri, slot, estate, false, false, NULL, NIL);
#endif
	list_free(recheck);
	ExecCloseIndices(rri);
	ExecResetTupleTable(estate->es_tupleTable, false);
	FreeExecutorState(estate);
}

void
OeDirectRowUpdate(Relation rel, ItemPointer tid, HeapTuple oldtup,
				  const Datum *values, const bool *nulls, const bool *repl)
{
	HeapTuple	newtup = heap_modify_tuple(oldtup, RelationGetDescr(rel),
										   (Datum *) values, (bool *) nulls,
										   (bool *) repl);
#if PG_VERSION_NUM >= 160000
	TU_UpdateIndexes update_indexes;

	simple_heap_update(rel, tid, newtup, &update_indexes);
	if (update_indexes != TU_None)
		insert_index_entries(rel, newtup, update_indexes == TU_Summarizing);
#else
	simple_heap_update(rel, tid, newtup);
	if (!HeapTupleIsHeapOnly(newtup))
		insert_index_entries(rel, newtup, false);
#endif
	heap_freetuple(newtup);
}
