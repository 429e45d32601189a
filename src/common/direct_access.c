/*-------------------------------------------------------------------------
 *
 * direct_access.c
 *	  What every read or write of our tables without SQL shares: the
 *	  table by name in the extension's schema, a column by name, the
 *	  snapshot an SPI statement would have used, and the one rule for
 *	  when a write must go through SQL instead (direct_insert.c,
 *	  stock/bucket_row.c, stock/stock_look.c).
 *
 * Tables are found in the extension's schema by name, so nothing on the
 * caller's search_path is consulted.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_trigger.h"
#include "commands/trigger.h"
#include "storage/lmgr.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/rel.h"
#include "miscadmin.h"
#include "utils/snapmgr.h"

#include "common/direct_access.h"
#include "common/internal_sql.h"
#include "common/order_engine.h"

/*
 * The OIDs of the tables and indexes found by name, kept for the backend:
 * a hot call looks up a dozen of them, and each lookup was two syscache
 * probes with a string hash (test/bench/cost.sh).  Any change to pg_class
 * names or to pg_namespace (a syscache invalidation of RELNAMENSP or
 * NAMESPACENAME, or a cache reset) forgets them all; they are only ever
 * read after the caller's lock on something has processed pending
 * invalidations, or, as before, as a name lookup whose result the caller
 * then opens and locks.  Only found names are kept.
 */
#define RELID_CACHE_SIZE 32

typedef struct RelidCacheEntry
{
	const char *schema;			/* OE_SCHEMA_NAME or OE_ARCHIVE_SCHEMA_NAME */
	char		relname[NAMEDATALEN];
	Oid			relid;
	const char *last_schema;	/* the pointers it was last asked by (callers */
	const char *last_relname;	/* pass literals): one strcmp on a hit */
} RelidCacheEntry;

static RelidCacheEntry relid_cache[RELID_CACHE_SIZE];
static int	relid_cache_used = 0;
static bool relid_callback_registered = false;

static void
relid_cache_forget(Datum arg, int cacheid, uint32 hashvalue)
{
	relid_cache_used = 0;
}

static Oid
schema_relid(const char *schema, const char *relname)
{
	Oid			nsp;
	Oid			relid;

	/* the entry last asked for by these pointers, its names checked */
	for (int i = 0; i < relid_cache_used; i++)
		if (relid_cache[i].last_relname == relname &&
			relid_cache[i].last_schema == schema &&
			strcmp(relid_cache[i].relname, relname) == 0 &&
			strcmp(relid_cache[i].schema, schema) == 0)
			return relid_cache[i].relid;
	for (int i = 0; i < relid_cache_used; i++)
		if (strcmp(relid_cache[i].schema, schema) == 0 &&
			strcmp(relid_cache[i].relname, relname) == 0)
		{
			relid_cache[i].last_schema = schema;
			relid_cache[i].last_relname = relname;
			return relid_cache[i].relid;
		}
	if (!relid_callback_registered)
	{
		CacheRegisterSyscacheCallback(RELNAMENSP, relid_cache_forget, (Datum) 0);
		CacheRegisterSyscacheCallback(NAMESPACENAME, relid_cache_forget, (Datum) 0);
		relid_callback_registered = true;
	}
	nsp = get_namespace_oid(schema, true);
	relid = OidIsValid(nsp) ? get_relname_relid(relname, nsp) : InvalidOid;
	if (OidIsValid(relid) && relid_cache_used < RELID_CACHE_SIZE &&
		strlen(relname) < NAMEDATALEN)
	{
		relid_cache[relid_cache_used].schema = schema;
		strlcpy(relid_cache[relid_cache_used].relname, relname, NAMEDATALEN);
		relid_cache[relid_cache_used].relid = relid;
		relid_cache[relid_cache_used].last_schema = schema;
		relid_cache[relid_cache_used].last_relname = relname;
		relid_cache_used++;
	}
	return relid;
}

Oid
OeSchemaRelid(const char *relname)
{
	return schema_relid(OE_SCHEMA_NAME, relname);
}

Oid
OeArchiveRelid(const char *relname)
{
	return schema_relid(OE_ARCHIVE_SCHEMA_NAME, relname);
}

AttrNumber
OeRelationColumn(Relation rel, const char *name)
{
	TupleDesc	desc = RelationGetDescr(rel);

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return att->attnum;
	}
	return InvalidAttrNumber;
}

SysScanDesc
OeIndexProbeBegin(Relation rel, Oid index, Snapshot snap, int nkeys, ScanKey keys)
{
	/* a lock held already is found in the backend's own lock table */
	LockRelationOid(index, AccessShareLock);
	return systable_beginscan(rel, index, true, snap, nkeys, keys);
}

Snapshot
OeStatementSnapshot(void)
{
	CommandCounterIncrement();
	return RegisterSnapshot(GetTransactionSnapshot());
}

/*
 * Is t an AFTER INSERT ... FOR EACH ROW trigger that calls func with no
 * arguments, no WHEN condition, no transition table and no deferral: one
 * whose whole effect the caller can reproduce for each row it writes?
 */
static bool
is_plain_row_trigger(const Trigger *t, Oid func)
{
	return OidIsValid(func) && t->tgfoid == func &&
		TRIGGER_FOR_ROW(t->tgtype) && TRIGGER_FOR_AFTER(t->tgtype) &&
		TRIGGER_FOR_INSERT(t->tgtype) &&
		t->tgnargs == 0 && t->tgqual == NULL &&
		t->tgoldtable == NULL && t->tgnewtable == NULL &&
		!t->tgdeferrable && !OidIsValid(t->tgconstraint);
}

bool
OeDirectWriteRefused(Relation rel, bool update_keeps_keys, const char *allowed_check,
					 Oid allowed_trigger_func)
{
	TupleConstr *constr = RelationGetDescr(rel)->constr;

	if (rel->rd_rel->relkind != RELKIND_RELATION ||
		rel->rd_rel->relhasrules || rel->rd_rel->relrowsecurity)
		return true;
	if (rel->trigdesc != NULL)
		for (int i = 0; i < rel->trigdesc->numtriggers; i++)
		{
			const Trigger *t = &rel->trigdesc->triggers[i];

			if (update_keeps_keys && RI_FKey_trigger_type(t->tgfoid) == RI_TRIGGER_FK)
				continue;
			if (!update_keeps_keys && is_plain_row_trigger(t, allowed_trigger_func))
				continue;
			return true;
		}
	if (constr == NULL)
		return false;
	if (constr->has_generated_stored)
		return true;
	for (int i = 0; i < constr->num_check; i++)
		if (allowed_check == NULL || strcmp(constr->check[i].ccname, allowed_check) != 0)
			return true;
	return false;
}

int
OeRowTriggersFiring(Relation rel, Oid func)
{
	int			n = 0;

	if (rel->trigdesc == NULL)
		return 0;
	for (int i = 0; i < rel->trigdesc->numtriggers; i++)
	{
		const Trigger *t = &rel->trigdesc->triggers[i];

		if (!is_plain_row_trigger(t, func))
			continue;
		/* trigger.c's rule for ENABLE [REPLICA | ALWAYS] and DISABLE */
		if (SessionReplicationRole == SESSION_REPLICATION_ROLE_REPLICA)
		{
			if (t->tgenabled == TRIGGER_FIRES_ON_REPLICA ||
				t->tgenabled == TRIGGER_FIRES_ALWAYS)
				n++;
		}
		else if (t->tgenabled == TRIGGER_FIRES_ON_ORIGIN ||
				 t->tgenabled == TRIGGER_FIRES_ALWAYS)
			n++;
	}
	return n;
}

void
OeDirectWriteAllowed(const char *cmdname)
{
	PreventCommandIfReadOnly(cmdname);
	PreventCommandIfParallelMode(cmdname);
	OeRequireOwnerScope();
}
