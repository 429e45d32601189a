/*-------------------------------------------------------------------------
 *
 * owner.c
 *	  Become the called function's owner with the search path pinned to
 *	  pg_catalog, and back.
 *
 * The hot entry points (reserve, place_order, idem_begin, idem_finish) are
 * not SECURITY DEFINER: they call OeBecomeOwner first, which does what
 * SECURITY DEFINER + SET search_path = pg_catalog, pg_temp would do, minus
 * pg_temp and minus the per-call GUC save and restore (a quarter of a
 * cheap call's cost, docs/stock.md "Privileges").  Every statement they run names its tables
 * with their schema; the pinned path makes every operator and function a
 * built-in, whatever the caller's search_path holds.  On an error, the
 * transaction's or subtransaction's abort restores the user id and pops
 * the search path, exactly as for a SECURITY DEFINER function.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_proc.h"
#include "miscadmin.h"
#include "utils/syscache.h"

#include "owner.h"

static OverrideSearchPath catalog_only = {.schemas = NIL, .addCatalog = true, .addTemp = false};

/* the owner of the called function: who SECURITY DEFINER would run as */
static Oid
function_owner(FunctionCallInfo fcinfo)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fcinfo->flinfo->fn_oid));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for function %u", fcinfo->flinfo->fn_oid);
	owner = ((Form_pg_proc) GETSTRUCT(tup))->proowner;
	ReleaseSysCache(tup);
	return owner;
}

void
OeBecomeOwner(FunctionCallInfo fcinfo, OeOwnerScope *scope)
{
	GetUserIdAndSecContext(&scope->save_userid, &scope->save_sec_context);
	SetUserIdAndSecContext(function_owner(fcinfo),
						   scope->save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	PushOverrideSearchPath(&catalog_only);
}

void
OeRestoreCaller(OeOwnerScope *scope)
{
	PopOverrideSearchPath();
	SetUserIdAndSecContext(scope->save_userid, scope->save_sec_context);
}

/* run impl(fcinfo) as the called function's owner */
Datum
OeCallAsOwner(FunctionCallInfo fcinfo, PGFunction impl)
{
	OeOwnerScope scope;
	Datum		result;

	OeBecomeOwner(fcinfo, &scope);
	result = impl(fcinfo);
	OeRestoreCaller(&scope);
	return result;
}
