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

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "commands/trigger.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "miscadmin.h"
#include "utils/snapmgr.h"

#include "common/direct_access.h"
#include "common/internal_sql.h"
#include "common/order_engine.h"

Oid
OeSchemaRelid(const char *relname)
{
	Oid			nsp = get_namespace_oid(OE_SCHEMA_NAME, true);

	return OidIsValid(nsp) ? get_relname_relid(relname, nsp) : InvalidOid;
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

Snapshot
OeStatementSnapshot(void)
{
	CommandCounterIncrement();
	return RegisterSnapshot(GetTransactionSnapshot());
}

bool
OeDirectWriteRefused(Relation rel, bool update_keeps_keys, const char *allowed_check)
{
	TupleConstr *constr = RelationGetDescr(rel)->constr;

	if (rel->rd_rel->relkind != RELKIND_RELATION ||
		rel->rd_rel->relhasrules || rel->rd_rel->relrowsecurity)
		return true;
	if (rel->trigdesc != NULL)
		for (int i = 0; i < rel->trigdesc->numtriggers; i++)
			if (!update_keeps_keys ||
				RI_FKey_trigger_type(rel->trigdesc->triggers[i].tgfoid) != RI_TRIGGER_FK)
				return true;
	if (constr == NULL)
		return false;
	if (constr->has_generated_stored)
		return true;
	for (int i = 0; i < constr->num_check; i++)
		if (allowed_check == NULL || strcmp(constr->check[i].ccname, allowed_check) != 0)
			return true;
	return false;
}

void
OeDirectWriteAllowed(const char *cmdname)
{
	PreventCommandIfReadOnly(cmdname);
	PreventCommandIfParallelMode(cmdname);
	OeRequireOwnerScope();
}
