/*-------------------------------------------------------------------------
 *
 * versioned_update_shape.c
 *	  The shape of a versioned_update call: rel, key and changes checked
 *	  against the catalog, and the UPDATE and SELECT prepared once per
 *	  shape and kept for the session.
 *
 * Nothing from the input is spliced into SQL: every column name is looked
 * up in pg_attribute and written with quote_identifier, the relation comes
 * from its oid, and every value is a $n parameter of the column's type.
 * A shape is the relation, its current name, the key columns, the change
 * columns and their types; a kept shape is dropped when its relation's
 * relcache entry is invalidated.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "common/internal_sql.h"
#include "idem/versioned_update.h"
#include "idem/versioned_update_internal.h"

/* one column named in key or changes */
typedef struct VuColumn
{
	char	   *name;
	JsonbValue	value;
	Oid			typid;
	int32		typmod;
} VuColumn;

/* the kept shapes, and the context that holds them for the session */
static MemoryContext vu_cache_cxt = NULL;
static List *vu_plans = NIL;

static inline void
CheckJsonObject(Jsonb *jb, const char *what)
{
	if (!JB_ROOT_IS_OBJECT(jb) || JB_ROOT_IS_SCALAR(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a JSON object", what),
				 errhint("Pass {\"column\": value, ...}.")));
	if (JB_ROOT_COUNT(jb) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must name at least one column", what)));
}

/*
 * The columns of a JSON object argument, each looked up in the catalog:
 * a name that is not a live user column of relid is 42703.
 */
static VuColumn *
collect_columns(Oid relid, const char *relname, Jsonb *jb, const char *what,
				int *ncolumns)
{
	VuColumn   *cols = palloc0(sizeof(VuColumn) * JB_ROOT_COUNT(jb));
	JsonbIterator *it = JsonbIteratorInit(&jb->root);
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			n = 0;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			char	   *name = pnstrdup(v.val.string.val, v.val.string.len);
			HeapTuple	atttup = NULL;
			Form_pg_attribute att;

			if (strlen(name) > 0 && strlen(name) < NAMEDATALEN)
				atttup = SearchSysCacheAttName(relid, name);
			if (!HeapTupleIsValid(atttup) ||
				((Form_pg_attribute) GETSTRUCT(atttup))->attnum <= 0)
			{
				if (HeapTupleIsValid(atttup))
					ReleaseSysCache(atttup);
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_COLUMN),
						 errmsg("column \"%s\" of relation %s does not exist",
								name, relname),
						 errdetail("It was named in %s.", what)));
			}
			att = (Form_pg_attribute) GETSTRUCT(atttup);
			cols[n].name = name;
			cols[n].typid = att->atttypid;
			cols[n].typmod = att->atttypmod;
			ReleaseSysCache(atttup);
		}
		else if (tok == WJB_VALUE)
			cols[n++].value = v;
	}
	*ncolumns = n;
	return cols;
}

/*
 * The key's columns must include every column of a unique index that is
 * valid, not partial and on plain columns, so the key names one row.
 */
static void
check_key_is_unique(Relation rel, const char *relname, VuColumn *keys, int nkeys)
{
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;
	bool		found = false;

	foreach(lc, indexes)
	{
		HeapTuple	idxtup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(lfirst_oid(lc)));
		Form_pg_index idx;
		bool		covered = true;
		int			i;

		if (!HeapTupleIsValid(idxtup))
			continue;
		idx = (Form_pg_index) GETSTRUCT(idxtup);
		if (!idx->indisunique || !idx->indisvalid ||
			!heap_attisnull(idxtup, Anum_pg_index_indpred, NULL))
			covered = false;
		for (i = 0; covered && i < idx->indnkeyatts; i++)
		{
			AttrNumber	attnum = idx->indkey.values[i];
			const char *attname;
			int			k;

			if (attnum <= 0)
			{
				covered = false;
				break;
			}
			attname = NameStr(TupleDescAttr(RelationGetDescr(rel), attnum - 1)->attname);
			covered = false;
			for (k = 0; k < nkeys; k++)
				if (strcmp(keys[k].name, attname) == 0)
					covered = true;
		}
		ReleaseSysCache(idxtup);
		if (covered)
		{
			found = true;
			break;
		}
	}
	list_free(indexes);

	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("key does not identify one row of %s", relname),
				 errdetail("No valid, non-partial unique index or primary key of the relation has all its columns in the key."),
				 errhint("Name the columns of the primary key or of a unique index in key.")));
}

/*
 * Length-prefixed, so no choice of column names makes two shapes equal.
 */
static void
append_names(StringInfo sig, Jsonb *jb)
{
	JsonbIterator *it = JsonbIteratorInit(&jb->root);
	JsonbValue	v;
	JsonbIteratorToken tok;

	appendStringInfo(sig, "%u[", JB_ROOT_COUNT(jb));
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		if (tok == WJB_KEY)
		{
			appendStringInfo(sig, "%d:", v.val.string.len);
			appendBinaryStringInfo(sig, v.val.string.val, v.val.string.len);
		}
	appendStringInfoChar(sig, ']');
}

/*
 * A kept shape is valid until its relation's relcache entry is
 * invalidated (ALTER TABLE, CREATE/DROP INDEX, DROP, RENAME ...): then
 * column types, names and keys are looked up again.
 */
static void
vu_relcache_callback(Datum arg, Oid relid)
{
	ListCell   *lc;

	foreach(lc, vu_plans)
	{
		VuPlan	   *p = (VuPlan *) lfirst(lc);

		if (relid == InvalidOid || p->relid == relid)
			p->valid = false;
	}
}

static void
flush_plans(void)
{
	ListCell   *lc;

	foreach(lc, vu_plans)
	{
		VuPlan	   *p = (VuPlan *) lfirst(lc);

		SPI_freeplan(p->update_plan);
		SPI_freeplan(p->select_plan);
	}
	vu_plans = NIL;
	MemoryContextReset(vu_cache_cxt);
}

static void
init_param(VuParam *p, VuColumn *col)
{
	Oid			base = getBaseType(col->typid);
	Oid			infunc;

	p->typid = col->typid;
	p->typmod = col->typmod;
	p->kind = (base == JSONBOID || base == JSONOID) ? VU_JSON : VU_TEXT;
	getTypeInputInfo(col->typid, &infunc, &p->ioparam);
	fmgr_info_cxt(infunc, &p->input, vu_cache_cxt);
}

/*
 * The type's default equality operator, schema-qualified, for comparing a
 * key column: a bare "=" would resolve through the caller's search_path
 * (versioned_update runs with the caller's rights and settings), where a
 * public or temporary operator could shadow the real one.
 */
static char *
equality_operator(Oid typid)
{
	TypeCacheEntry *tc = lookup_type_cache(typid, TYPECACHE_EQ_OPR);
	HeapTuple	tup;
	Form_pg_operator op;
	char	   *result;

	if (!OidIsValid(tc->eq_opr))
		return pstrdup("OPERATOR(pg_catalog.=)");
	tup = SearchSysCache1(OPEROID, ObjectIdGetDatum(tc->eq_opr));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for operator %u", tc->eq_opr);
	op = (Form_pg_operator) GETSTRUCT(tup);
	result = psprintf("OPERATOR(%s.%s)",
					  quote_identifier(get_namespace_name(op->oprnamespace)),
					  NameStr(op->oprname));
	ReleaseSysCache(tup);
	return result;
}

/*
 * Build and keep the plans for one shape.
 */
static VuPlan *
build_plan(Oid relid, const char *signature, uint32 hash, const char *relname,
		   VuColumn *keys, int nkeys, VuColumn *changes, int nchanges)
{
	MemoryContext old;
	VuPlan	   *plan;
	StringInfoData sql;
	char	  **keyops;
	Oid		   *argtypes;
	int			i;
	const char *version = quote_identifier(OE_VERSION_COLUMN);

	if (list_length(vu_plans) >= OE_VU_MAX_CACHED_PLANS)
		flush_plans();

	old = MemoryContextSwitchTo(vu_cache_cxt);
	plan = palloc0(sizeof(VuPlan));
	plan->relid = relid;
	plan->relname = pstrdup(relname);
	plan->hash = hash;
	plan->signature = pstrdup(signature);
	plan->nchanges = nchanges;
	plan->nkeys = nkeys;
	plan->params = palloc0(sizeof(VuParam) * (nchanges + nkeys));
	MemoryContextSwitchTo(old);
	keyops = palloc(sizeof(char *) * Max(nkeys, 1));
	for (i = 0; i < nkeys; i++)
		keyops[i] = equality_operator(keys[i].typid);

	argtypes = palloc(sizeof(Oid) * (nchanges + nkeys + 1));
	for (i = 0; i < nchanges; i++)
		init_param(&plan->params[i], &changes[i]);
	for (i = 0; i < nkeys; i++)
		init_param(&plan->params[nchanges + i], &keys[i]);
	for (i = 0; i < nchanges + nkeys; i++)
		argtypes[i] = plan->params[i].typid;
	argtypes[nchanges + nkeys] = INT8OID;

	/* UPDATE rel SET c = $i, ..., version = version + 1 WHERE ... */
	initStringInfo(&sql);
	appendStringInfo(&sql, "UPDATE %s SET ", relname);
	for (i = 0; i < nchanges; i++)
		appendStringInfo(&sql, "%s = $%d, ", quote_identifier(changes[i].name), i + 1);
	appendStringInfo(&sql, "%s = %s OPERATOR(pg_catalog.+) 1 WHERE ", version, version);
	for (i = 0; i < nkeys; i++)
		appendStringInfo(&sql, "%s %s $%d AND ", quote_identifier(keys[i].name),
						 keyops[i], nchanges + i + 1);
	appendStringInfo(&sql, "%s OPERATOR(pg_catalog.=) $%d RETURNING CAST(%s AS pg_catalog.int8)",
					 version, nchanges + nkeys + 1, version);
	plan->update_plan = OeKeepPlan(sql.data, nchanges + nkeys + 1, argtypes);

	resetStringInfo(&sql);
	appendStringInfo(&sql, "SELECT CAST(%s AS pg_catalog.int8) FROM %s WHERE ", version, relname);
	for (i = 0; i < nkeys; i++)
		appendStringInfo(&sql, "%s%s %s $%d", i > 0 ? " AND " : "",
						 quote_identifier(keys[i].name), keyops[i], i + 1);
	plan->select_plan = OeKeepPlan(sql.data, nkeys, argtypes + nchanges);
	plan->valid = true;

	old = MemoryContextSwitchTo(vu_cache_cxt);
	vu_plans = lappend(vu_plans, plan);
	MemoryContextSwitchTo(old);
	return plan;
}

/*
 * Look everything up in the catalog, check it and build the plans for a
 * shape not kept yet (or invalidated).
 */
static VuPlan *
prepare_shape(Oid relid, Jsonb *key, Jsonb *changes, const char *signature,
			  uint32 hash)
{
	char		relkind = get_rel_relkind(relid);
	char	   *relname;
	VuColumn   *keys;
	VuColumn   *chg;
	int			nkeys;
	int			nchanges;
	int			i;
	int			j;
	HeapTuple	atttup;
	Oid			vtype;
	Relation	rel;

	if (relkind == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	relname = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
										 get_rel_name(relid));
	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("%s is not a table", relname),
				 errdetail("versioned_update works on tables and partitioned tables.")));

	atttup = SearchSysCacheAttName(relid, OE_VERSION_COLUMN);
	if (!HeapTupleIsValid(atttup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("relation %s has no column \"%s\"", relname, OE_VERSION_COLUMN),
				 errhint("versioned_update needs an integer column named \"%s\".",
						 OE_VERSION_COLUMN)));
	vtype = ((Form_pg_attribute) GETSTRUCT(atttup))->atttypid;
	ReleaseSysCache(atttup);
	if (vtype != INT8OID && vtype != INT4OID && vtype != INT2OID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" of relation %s has type %s", OE_VERSION_COLUMN,
						relname, format_type_be(vtype)),
				 errhint("The version column must be bigint, integer or smallint.")));

	keys = collect_columns(relid, relname, key, "key", &nkeys);
	chg = collect_columns(relid, relname, changes, "changes", &nchanges);

	for (i = 0; i < nkeys; i++)
		if (strcmp(keys[i].name, OE_VERSION_COLUMN) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("key must not contain the version column"),
					 errhint("Pass the version as expected_version.")));
	for (i = 0; i < nchanges; i++)
	{
		if (strcmp(chg[i].name, OE_VERSION_COLUMN) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("changes must not contain the version column"),
					 errdetail("versioned_update increments the version itself.")));
		for (j = 0; j < nkeys; j++)
			if (strcmp(chg[i].name, keys[j].name) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("changes must not contain key column \"%s\"", chg[i].name),
						 errdetail("A versioned update cannot move a row to another key.")));
	}

	rel = table_open(relid, AccessShareLock);
	check_key_is_unique(rel, relname, keys, nkeys);
	table_close(rel, NoLock);

	return build_plan(relid, signature, hash, relname, keys, nkeys, chg, nchanges);
}

/*
 * The plans for this call's shape: kept ones, or built after the checks.
 */
VuPlan *
OeVuShape(Oid relid, Jsonb *key, Jsonb *changes)
{
	StringInfoData sig;
	uint32		hash;
	ListCell   *lc;
	VuPlan	   *plan = NULL;

	if (vu_cache_cxt == NULL)
	{
		vu_cache_cxt = AllocSetContextCreate(TopMemoryContext,
											 "order_engine versioned_update plans",
											 ALLOCSET_SMALL_SIZES);
		CacheRegisterRelcacheCallback(vu_relcache_callback, (Datum) 0);
	}

	CheckJsonObject(key, "key");
	CheckJsonObject(changes, "changes");

	/*
	 * Locking the relation first also processes pending invalidations, so
	 * a shape found valid below matches the catalog as of now.  (The
	 * parser takes the same lock before it checks privileges.)
	 */
	LockRelationOid(relid, AccessShareLock);

	/* the shape of this call: the relation and the column names */
	initStringInfo(&sig);
	appendStringInfo(&sig, "%u:", relid);
	append_names(&sig, key);
	append_names(&sig, changes);
	hash = hash_bytes((const unsigned char *) sig.data, sig.len);

	foreach(lc, vu_plans)
	{
		VuPlan	   *p = (VuPlan *) lfirst(lc);

		if (p->hash == hash && strcmp(p->signature, sig.data) == 0)
		{
			if (p->valid)
				plan = p;
			else
			{
				SPI_freeplan(p->update_plan);
				SPI_freeplan(p->select_plan);
				vu_plans = foreach_delete_current(vu_plans, lc);
			}
			break;
		}
	}
	if (plan == NULL)
		plan = prepare_shape(relid, key, changes, sig.data, hash);
	return plan;
}
