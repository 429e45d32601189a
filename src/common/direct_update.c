/*-------------------------------------------------------------------------
 *
 * direct_update.c
 *	  A row of one of the extension's tables changed by heap and index
 *	  access, locked first only when another transaction changed it
 *	  before us: what an UPDATE's ModifyTable node does for one row found
 *	  by an index probe, without a plan or executor start-up.
 *
 * Used where an UPDATE statement's start-up was most of a hot call's cost
 * (stock/bucket_row.c, idem/idem_key_row.c).  The caller has checked that
 * the table has nothing else an UPDATE would honour (OeDirectWriteRefused
 * and OeDirectWriteAllowed, direct_access.c) and found the version its
 * statement snapshot sees; OeDirectRowChange writes its new version and,
 * when a concurrent transaction came first, checks the caller's condition
 * again on the version OeDirectRowLock returns.  SSI, WAL, TOAST and
 * pg_stat are the heap and index AMs' own, as for the UPDATE.
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

/*
 * heap_update of the version at *tid to newtup, waiting for a concurrent
 * writer (wait = true, as the executor), and the index entries of a new
 * version that is not heap-only
 */
static TM_Result
write_version(Relation rel, ItemPointer tid, HeapTuple newtup)
{
	TM_FailureData tmfd;
	LockTupleMode lockmode;
	TM_Result	res;
#if PG_VERSION_NUM >= 160000
	TU_UpdateIndexes update_indexes;

	res = heap_update(rel, tid, newtup, GetCurrentCommandId(true), InvalidSnapshot,
					  true, &tmfd, &lockmode, &update_indexes);
	if (res == TM_Ok && update_indexes != TU_None)
		insert_index_entries(rel, newtup, update_indexes == TU_Summarizing);
#else
	res = heap_update(rel, tid, newtup, GetCurrentCommandId(true), InvalidSnapshot,
					  true, &tmfd, &lockmode);
	if (res == TM_Ok && !HeapTupleIsHeapOnly(newtup))
		insert_index_entries(rel, newtup, false);
#endif
	return res;
}

/* version with the caller's new columns */
static HeapTuple
new_version(Relation rel, HeapTuple version, OeRowNewColumns new_columns, void *arg)
{
	int			natts = RelationGetDescr(rel)->natts;
	Datum	   *values = palloc0(sizeof(Datum) * natts);
	bool	   *nulls = palloc0(sizeof(bool) * natts);
	bool	   *repl = palloc0(sizeof(bool) * natts);
	HeapTuple	tup;

	new_columns(rel, version, arg, values, nulls, repl);
	tup = heap_modify_tuple(version, RelationGetDescr(rel), values, nulls, repl);
	pfree(values);
	pfree(nulls);
	pfree(repl);
	return tup;
}

bool
OeDirectRowChange(Relation rel, HeapTuple visible, Snapshot snap,
				  const char *what, OeRowCondition condition,
				  OeRowNewColumns new_columns, void *arg)
{
	HeapTuple	newtup = new_version(rel, visible, new_columns, arg);
	ItemPointerData tid = visible->t_self;
	TM_Result	res;
	TupleTableSlot *slot;
	bool		changed = false;
	res = write_version(rel, &tid, newtup);
	heap_freetuple(newtup);
	if (res == TM_Ok)
		return true;
	if (res != TM_Updated && res != TM_Deleted)
		elog(ERROR, "order_engine: unexpected result %d updating %s", (int) res, what);

	/* another transaction changed it first: its newest version, locked */
	slot = table_slot_create(rel, NULL);
	if (OeDirectRowLock(rel, &tid, snap, slot, what))
	{
		bool		should_free;
		HeapTuple	locked = ExecFetchSlotHeapTuple(slot, true, &should_free);

		if (condition(rel, locked, arg))
		{
			/* locked: nobody else can change it before we do */
			newtup = new_version(rel, locked, new_columns, arg);
			res = write_version(rel, &tid, newtup);
			heap_freetuple(newtup);
			if (res != TM_Ok)
				elog(ERROR, "order_engine: unexpected result %d updating the locked %s",
					 (int) res, what);
			changed = true;
		}
		if (should_free)
			heap_freetuple(locked);
	}
	ExecDropSingleTupleTableSlot(slot);
	return changed;
}
