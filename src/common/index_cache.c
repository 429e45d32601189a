/*-------------------------------------------------------------------------
 *
 * index_cache.c
 *	  The index descriptions (IndexInfo, and the prepared predicate of a
 *	  partial index) of the extension's tables, kept per backend between
 *	  calls and forgotten on a relcache invalidation of the table or of
 *	  one of its indexes.
 *
 * Why: ExecOpenIndices builds every IndexInfo again (copying predicates
 * out of the relcache), and ExecInsertIndexTuples prepares each partial
 * index's predicate again, for every direct insert or non-HOT update
 * (direct_insert.c, direct_update.c).  For a reserve, with stock_hold's
 * two partial indexes, that was about 15,000 of its 260,000 instructions
 * (test/bench/cost.sh).
 *
 * What is kept depends only on the index's definition, which a relcache
 * invalidation announces whenever it changes (CREATE/DROP INDEX on the
 * table, CREATE INDEX CONCURRENTLY's state changes, REINDEX, a cache
 * reset).  The caller holds its lock on the table, which processed the
 * pending invalidations, before OeOpenIndices looks here: what it finds
 * valid is what ExecOpenIndices would build now.  An entry that goes
 * stale is rebuilt in a fresh memory context; the old one may still be
 * in use by an open insert, so it is freed only at the end of the
 * top-level transaction, when none can be.
 *
 * Only B-tree indexes without an exclusion constraint are kept: those
 * keep nothing of the EState or of the relcache in their IndexInfo once
 * the predicate and the expressions are prepared, here, with no parent
 * plan (as ExecPrepareQual and ExecPrepareExprList prepare them, in the
 * EState's memory, when they find them unset).  Until 1.0 expression
 * indexes were left out too, and orders' orders_finished_idx made every
 * order insert build six IndexInfos and plan two predicates.  A table
 * with any other index gets ExecOpenIndices every time.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/pg_am.h"
#include "executor/executor.h"
#include "nodes/pg_list.h"
#include "optimizer/optimizer.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"

#include "common/index_cache.h"

#define INDEX_CACHE_TABLES 16

typedef struct TableIndexes
{
	Oid			relid;			/* InvalidOid: slot unused */
	bool		valid;
	bool		cacheable;		/* false: ExecOpenIndices every time */
	MemoryContext cxt;			/* holds the arrays and the IndexInfos */
	int			nindexes;
	Oid		   *index_oids;
	IndexInfo **infos;
} TableIndexes;

static TableIndexes tables[INDEX_CACHE_TABLES];
static List *retired_cxts = NIL;	/* in TopMemoryContext */
static bool callbacks_registered = false;

static void
index_cache_invalidate(Datum arg, Oid relid)
{
	for (int t = 0; t < INDEX_CACHE_TABLES; t++)
	{
		TableIndexes *e = &tables[t];

		if (!OidIsValid(e->relid) || !e->valid)
			continue;
		if (!OidIsValid(relid) || relid == e->relid)
		{
			e->valid = false;
			continue;
		}
		for (int i = 0; i < e->nindexes; i++)
			if (e->index_oids[i] == relid)
				e->valid = false;
	}
}

static void
index_cache_xact_callback(XactEvent event, void *arg)
{
	ListCell   *lc;

	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
		event != XACT_EVENT_PARALLEL_COMMIT && event != XACT_EVENT_PARALLEL_ABORT &&
		event != XACT_EVENT_PREPARE)
		return;
	if (retired_cxts == NIL)
		return;
	foreach(lc, retired_cxts)
		MemoryContextDelete((MemoryContext) lfirst(lc));
	list_free(retired_cxts);
	retired_cxts = NIL;
}

static void
retire(TableIndexes *e)
{
	if (e->cxt != NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		retired_cxts = lappend(retired_cxts, e->cxt);
		MemoryContextSwitchTo(old);
	}
	e->cxt = NULL;
	e->nindexes = 0;
	e->index_oids = NULL;
	e->infos = NULL;
	e->valid = false;
}

/*
 * Describe rel's indexes into e.  Each is opened with the RowExclusiveLock
 * that the caller's insert takes anyway, and closed keeping it.  The entry
 * is marked valid before the indexes are opened, so an invalidation that
 * their locks let in marks it stale again.
 */
static void
build(TableIndexes *e, Relation rel)
{
	List	   *oids = RelationGetIndexList(rel);
	int			n = list_length(oids);
	MemoryContext old;
	ListCell   *lc;

	retire(e);
	e->relid = RelationGetRelid(rel);
	e->cxt = AllocSetContextCreate(TopMemoryContext, "order_engine index cache",
								   ALLOCSET_SMALL_SIZES);
	e->cacheable = true;
	e->index_oids = MemoryContextAllocZero(e->cxt, sizeof(Oid) * Max(n, 1));
	e->infos = MemoryContextAllocZero(e->cxt, sizeof(IndexInfo *) * Max(n, 1));
	e->valid = true;
	foreach(lc, oids)
	{
		Relation	idx = index_open(lfirst_oid(lc), RowExclusiveLock);
		IndexInfo  *ii;

		old = MemoryContextSwitchTo(e->cxt);
		ii = BuildIndexInfo(idx);
		if (idx->rd_rel->relam != BTREE_AM_OID || ii->ii_ExclusionOps != NULL)
			e->cacheable = false;
		else
		{
			/*
			 * Prepared as FormIndexDatum and ExecInsertIndexTuples would
			 * prepare them (ExecPrepareExprList, ExecPrepareQual: planned,
			 * then initialised with no parent plan), but here, once: what
			 * they find set they use.
			 */
			ListCell   *ec;

			foreach(ec, ii->ii_Expressions)
				ii->ii_ExpressionsState =
					lappend(ii->ii_ExpressionsState,
							ExecInitExpr(expression_planner((Expr *) lfirst(ec)), NULL));
			if (ii->ii_Predicate != NIL)
				ii->ii_PredicateState =
					ExecInitQual((List *) expression_planner((Expr *) ii->ii_Predicate), NULL);
		}
		MemoryContextSwitchTo(old);
		e->index_oids[e->nindexes] = lfirst_oid(lc);
		e->infos[e->nindexes] = ii;
		e->nindexes++;
		index_close(idx, NoLock);
	}
	list_free(oids);
}

void
OeOpenIndices(ResultRelInfo *rri)
{
	Relation	rel = rri->ri_RelationDesc;
	Oid			relid = RelationGetRelid(rel);
	TableIndexes *e = NULL;

	if (!callbacks_registered)
	{
		CacheRegisterRelcacheCallback(index_cache_invalidate, (Datum) 0);
		RegisterXactCallback(index_cache_xact_callback, NULL);
		callbacks_registered = true;
	}
	for (int t = 0; t < INDEX_CACHE_TABLES && e == NULL; t++)
		if (tables[t].relid == relid)
			e = &tables[t];
	for (int t = 0; t < INDEX_CACHE_TABLES && e == NULL; t++)
		if (!OidIsValid(tables[t].relid))
			e = &tables[t];
	if (e != NULL && !e->valid)
		build(e, rel);
	if (e == NULL || !e->cacheable || e->nindexes == 0)
	{
		/* more of our tables than slots, or an index kept no IndexInfo */
		ExecOpenIndices(rri, false);
		return;
	}
	rri->ri_NumIndices = e->nindexes;
	rri->ri_IndexRelationDescs = palloc(sizeof(Relation) * e->nindexes);
	rri->ri_IndexRelationInfo = e->infos;
	for (int i = 0; i < e->nindexes; i++)
		rri->ri_IndexRelationDescs[i] = index_open(e->index_oids[i], RowExclusiveLock);
}
