/*-------------------------------------------------------------------------
 *
 * direct_insert.c
 *	  Rows into one of the extension's tables by heap and index access:
 *	  table_tuple_insert and ExecInsertIndexTuples, as logical
 *	  replication's apply does (execReplication.c), with no plan and no
 *	  executor start-up.
 *
 * Why: in a one-line reserve the INSERT of the hold and its journal row
 * was a third of the call's instructions, most of it executor start-up
 * (test/bench/cost.sh).  What the heap and index AMs do is what an INSERT
 * does: the tuple gets the current command id (so the next statement, and
 * stock_look.c after its CommandCounterIncrement, see it), unique indexes
 * are checked (23505 as from SQL), partial index predicates are evaluated,
 * SSI conflicts are checked, the row is WAL-logged for recovery and
 * logical decoding, and pg_stat counts it.  What an INSERT adds on top —
 * triggers, rules, row security, CHECK constraints, generated columns,
 * defaults — this does not do, so OeDirectInsertBegin refuses a table
 * that has any of them and the caller runs its SQL instead.  NOT NULL is
 * checked here.  No permission is checked: callers are inside the
 * internal scope (internal_sql.c), whose owner role owns the tables.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "catalog/dependency.h"
#include "commands/sequence.h"
#include "executor/executor.h"
#include "nodes/execnodes.h"
#include "rewrite/rewriteHandler.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/rel.h"

#include "common/direct_access.h"
#include "common/direct_insert.h"
#include "common/index_cache.h"

struct OeDirectInsert
{
	Relation	rel;
	EState	   *estate;
	ResultRelInfo *rri;
	TupleTableSlot *slot;
	int			ncols;
	AttrNumber *attnums;		/* cols[i]'s attribute number */
};

/*
 * Kept for the backend, per table, and forgotten at the table's relcache
 * invalidation (ALTER TABLE, DROP, a cache reset forgets all): the
 * attribute numbers of the column lists callers name, and the sequences
 * behind columns (OeDirectInsertNextFromSequence).  Looking a column up
 * walks the table's attributes with a strcmp each (OeRelationColumn);
 * finding a sequence scans pg_depend or reads the column's default.
 */
#define COLUMNS_CACHE_SIZE 8
#define COLUMNS_CACHE_MAX_COLS 16
#define SEQUENCE_CACHE_SIZE 4

typedef struct ColumnsCacheEntry
{
	Oid			relid;
	int			ncols;
	char		names[COLUMNS_CACHE_MAX_COLS][NAMEDATALEN];
	AttrNumber	attnums[COLUMNS_CACHE_MAX_COLS];
} ColumnsCacheEntry;

typedef struct SequenceCacheEntry
{
	Oid			relid;
	AttrNumber	attnum;
	Oid			seq;
	bool		by_default;		/* nextval() checks USAGE, an identity not */
} SequenceCacheEntry;

static ColumnsCacheEntry columns_cache[COLUMNS_CACHE_SIZE];
static int	columns_cache_next = 0;
static SequenceCacheEntry sequence_cache[SEQUENCE_CACHE_SIZE];
static int	sequence_cache_next = 0;
static bool forget_callback_registered = false;

static void
forget_table(Datum arg, Oid relid)
{
	for (int i = 0; i < COLUMNS_CACHE_SIZE; i++)
		if (!OidIsValid(relid) || columns_cache[i].relid == relid)
			columns_cache[i].relid = InvalidOid;
	for (int i = 0; i < SEQUENCE_CACHE_SIZE; i++)
		if (!OidIsValid(relid) || sequence_cache[i].relid == relid)
			sequence_cache[i].relid = InvalidOid;
}

static void
register_forget(void)
{
	if (!forget_callback_registered)
	{
		CacheRegisterRelcacheCallback(forget_table, (Datum) 0);
		forget_callback_registered = true;
	}
}

/* attnums[i]: the attribute number of cols[i] in rel (ERROR if none) */
static void
column_numbers(Relation rel, int ncols, const char *const *cols, AttrNumber *attnums)
{
	Oid			relid = RelationGetRelid(rel);
	ColumnsCacheEntry *e;

	for (int k = 0; k < COLUMNS_CACHE_SIZE; k++)
	{
		bool		same;

		e = &columns_cache[k];
		if (e->relid != relid || e->ncols != ncols)
			continue;
		same = true;
		for (int i = 0; i < ncols && same; i++)
			same = strcmp(e->names[i], cols[i]) == 0;
		if (same)
		{
			memcpy(attnums, e->attnums, sizeof(AttrNumber) * ncols);
			return;
		}
	}
	for (int i = 0; i < ncols; i++)
	{
		attnums[i] = OeRelationColumn(rel, cols[i]);
		if (attnums[i] == InvalidAttrNumber)
			elog(ERROR, "order_engine: table \"%s\" has no column \"%s\"",
				 RelationGetRelationName(rel), cols[i]);
	}
	if (ncols > COLUMNS_CACHE_MAX_COLS)
		return;
	for (int i = 0; i < ncols; i++)
		if (strlen(cols[i]) >= NAMEDATALEN)
			return;
	register_forget();
	e = &columns_cache[columns_cache_next];
	columns_cache_next = (columns_cache_next + 1) % COLUMNS_CACHE_SIZE;
	e->relid = relid;
	e->ncols = ncols;
	for (int i = 0; i < ncols; i++)
	{
		strlcpy(e->names[i], cols[i], NAMEDATALEN);
		e->attnums[i] = attnums[i];
	}
}

/*
 * does an INSERT of only cols into rel do more than the heap and index AMs
 * (common/direct_access.c), or give a column outside cols a value?
 */
static bool
needs_executor(Relation rel, int ncols, const AttrNumber *attnums, Oid trigger_func)
{
	TupleDesc	desc = RelationGetDescr(rel);

	if (OeDirectWriteRefused(rel, false, NULL, trigger_func))
		return true;
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		bool		given = false;

		if (att->attisdropped)
			continue;
		for (int k = 0; k < ncols; k++)
			given |= (attnums[k] == att->attnum);
		if (!given && (att->atthasdef || att->attidentity || att->attgenerated))
			return true;
	}
	return false;
}

OeDirectInsert *
OeDirectInsertBegin(const char *relname, int ncols, const char *const *cols)
{
	int			firing;

	return OeDirectInsertBeginTriggered(relname, ncols, cols, InvalidOid, &firing);
}

OeDirectInsert *
OeDirectInsertBeginTriggered(const char *relname, int ncols, const char *const *cols,
							 Oid trigger_func, int *triggers_firing)
{
	Oid			relid = OeSchemaRelid(relname);
	OeDirectInsert *d;
	Relation	rel;
	AttrNumber *attnums;

	if (!OidIsValid(relid))
		elog(ERROR, "order_engine: table \"%s\" is missing", relname);
	OeDirectWriteAllowed("INSERT");
	rel = table_open(relid, RowExclusiveLock);
	attnums = palloc(sizeof(AttrNumber) * ncols);
	column_numbers(rel, ncols, cols, attnums);
	if (needs_executor(rel, ncols, attnums, trigger_func))
	{
		/* keep the lock, as the INSERT the caller runs instead will */
		table_close(rel, NoLock);
		pfree(attnums);
		return NULL;
	}

	d = palloc0(sizeof(OeDirectInsert));
	d->rel = rel;
	d->ncols = ncols;
	d->attnums = attnums;
	d->estate = CreateExecutorState();
	d->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(d->rri, rel, 1, NULL, 0);
	OeOpenIndices(d->rri);
	d->slot = ExecInitExtraTupleSlot(d->estate, RelationGetDescr(rel), &TTSOpsVirtual);
	*triggers_firing = OidIsValid(trigger_func) ? OeRowTriggersFiring(rel, trigger_func) : 0;
	return d;
}

void
OeDirectInsertRow(OeDirectInsert *d, const Datum *values, const bool *nulls)
{
	TupleDesc	desc = RelationGetDescr(d->rel);
	TupleTableSlot *slot = d->slot;
	List	   *recheck;

	ExecClearTuple(slot);
	for (int i = 0; i < desc->natts; i++)
	{
		slot->tts_values[i] = (Datum) 0;
		slot->tts_isnull[i] = true;
	}
	for (int k = 0; k < d->ncols; k++)
	{
		slot->tts_values[d->attnums[k] - 1] = values[k];
		slot->tts_isnull[d->attnums[k] - 1] = nulls[k];
	}
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attnotnull && slot->tts_isnull[i])
			elog(ERROR, "order_engine: null in column \"%s\" of \"%s\"",
				 NameStr(att->attname), RelationGetRelationName(d->rel));
	}
	ExecStoreVirtualTuple(slot);

	simple_table_tuple_insert(d->rel, slot);
	if (d->rri->ri_NumIndices > 0)
	{
#if PG_VERSION_NUM >= 160000
		recheck = ExecInsertIndexTuples(d->rri, slot, d->estate, false, false,
										NULL, NIL, false);
#else
		recheck = ExecInsertIndexTuples(d->rri, slot, d->estate, false, false,
										NULL, NIL);
#endif
		/* only deferred constraints ask for a recheck; ours are immediate */
		list_free(recheck);
	}
	ResetPerTupleExprContext(d->estate);
}

void
OeDirectInsertLastTid(OeDirectInsert *d, ItemPointer tid)
{
	ItemPointerCopy(&d->slot->tts_tid, tid);
}

Datum
OeDirectInsertLastRow(OeDirectInsert *d)
{
	return ExecFetchSlotHeapTupleDatum(d->slot);
}

/*
 * The sequence an INSERT that leaves column attnum out takes its value
 * from: the identity's, or the one of a default that is exactly
 * nextval('a sequence'::regclass), as serial makes it.  InvalidOid when
 * the column has neither.  *by_default: nextval(), which checks the
 * current user's USAGE of the sequence as the SQL default would.
 */
static Oid
column_sequence(Relation rel, AttrNumber attnum, bool *by_default)
{
	Form_pg_attribute att = TupleDescAttr(RelationGetDescr(rel), attnum - 1);
	Node	   *def;

	*by_default = !att->attidentity;
	if (att->attidentity)
#if PG_VERSION_NUM >= 170000
		return getIdentitySequence(rel, attnum, false);
#else
		return getIdentitySequence(RelationGetRelid(rel), attnum, false);
#endif
	if (!att->atthasdef)
		return InvalidOid;
	def = build_column_default(rel, attnum);
	if (def != NULL && IsA(def, FuncExpr) &&
		((FuncExpr *) def)->funcid == F_NEXTVAL &&
		list_length(((FuncExpr *) def)->args) == 1 &&
		IsA(linitial(((FuncExpr *) def)->args), Const))
	{
		Const	   *seq = linitial_node(Const, ((FuncExpr *) def)->args);

		if (seq->consttype == REGCLASSOID && !seq->constisnull)
			return DatumGetObjectId(seq->constvalue);
	}
	return InvalidOid;
}

bool
OeDirectInsertNextFromSequence(OeDirectInsert *d, const char *col, int64 *value)
{
	AttrNumber	attnum = OeRelationColumn(d->rel, col);
	Oid			relid = RelationGetRelid(d->rel);
	Oid			seq = InvalidOid;
	bool		by_default = false;

	if (attnum == InvalidAttrNumber)
		elog(ERROR, "order_engine: table \"%s\" has no column \"%s\"",
			 RelationGetRelationName(d->rel), col);
	for (int i = 0; i < SEQUENCE_CACHE_SIZE; i++)
		if (sequence_cache[i].relid == relid && sequence_cache[i].attnum == attnum)
		{
			seq = sequence_cache[i].seq;
			by_default = sequence_cache[i].by_default;
		}
	if (!OidIsValid(seq))
	{
		register_forget();
		seq = column_sequence(d->rel, attnum, &by_default);
		if (!OidIsValid(seq))
			return false;
		sequence_cache[sequence_cache_next].relid = relid;
		sequence_cache[sequence_cache_next].attnum = attnum;
		sequence_cache[sequence_cache_next].seq = seq;
		sequence_cache[sequence_cache_next].by_default = by_default;
		sequence_cache_next = (sequence_cache_next + 1) % SEQUENCE_CACHE_SIZE;
	}
	*value = nextval_internal(seq, by_default);
	return true;
}

int64
OeDirectInsertNextIdentity(OeDirectInsert *d, const char *col)
{
	int64		value;

	if (!OeDirectInsertNextFromSequence(d, col, &value))
		elog(ERROR, "order_engine: column \"%s\" of \"%s\" has no sequence",
			 col, RelationGetRelationName(d->rel));
	return value;
}

void
OeDirectInsertEnd(OeDirectInsert *d)
{
	ExecCloseIndices(d->rri);
	ExecResetTupleTable(d->estate->es_tupleTable, false);
	FreeExecutorState(d->estate);
	table_close(d->rel, NoLock);
	pfree(d->attnums);
	pfree(d);
}
