/*-------------------------------------------------------------------------
 *
 * internal_sql.c
 *	  The one path for internal SQL: the owner role, the pinned search
 *	  path, kept plans and subtransactions under PG_TRY (internal_sql.h).
 *
 * Why a role of its own: the superuser who ran CREATE EXTENSION must not
 * be who our statements run as, or any way to slip a function into one of
 * them (an operator in the caller's schema, a database's search_path set
 * by its owner) makes its author superuser.  order_engine_owner owns the
 * extension's tables, sequences and SECURITY DEFINER functions and
 * nothing else (OeOwnerRoleId finds it as the owner of our objects);
 * the install script refuses a pre-existing role of that name that can
 * log in, is superuser or has members.
 *
 * Why a GUC nest level: it is what fmgr_security_definer does for a
 * function's SET clause, it is undone by every (sub)transaction abort,
 * and it exists on every PostgreSQL version (the override search path
 * stack is gone in 17).  When the path is already pinned (a SECURITY DEFINER
 * function with SET search_path, nested calls, the worker) nothing is set.
 *
 * Why the path is pinned at the first statement, not at the scope's start:
 * only SQL resolves names through it, and every statement of ours is
 * prepared by OeKeepPlan and run by OeExecPlan, which pin it first
 * (scripts/check_layers.py refuses SPI_connect, SPI_prepare* and
 * SPI_execute* anywhere else).  Work that reads and writes by OID (the
 * direct heap and index paths of reserve, place_order, idem_begin and
 * idem_finish) then pays for no pin even when it connects SPI for a
 * fallback it does not take: on PostgreSQL 15 setting the GUC and undoing
 * it walk every GUC variable (AtEOXact_GUC), 2.4% of the CPU of an
 * idempotent request under pgbench, 7k of a placement's 527k instructions.
 * A scope's pin state lives in a static stack, not in the caller's frame,
 * so that a (sub)transaction abort can drop the state of the scopes it
 * unwound (their frames are gone) without touching freed stack memory.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "access/htup_details.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_namespace.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "optimizer/plancat.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/syscache.h"

#include "common/internal_sql.h"
#include "common/order_engine.h"

/* ---------------------------------------------------------------------
 * the owner role
 * ---------------------------------------------------------------------
 */

static Oid	owner_role = InvalidOid;
static bool owner_callback_registered = false;
static bool legacy_logged = false;

static int	nschema_checks;

static void
owner_role_invalidate(Datum arg, int cacheid, uint32 hashvalue)
{
	owner_role = InvalidOid;
	nschema_checks = 0;			/* OeColumnExists, OeTableExists */
}

/*
 * Who owns the extension's objects: order_engine_owner from 0.6 on.  It is
 * read from the view order_engine.worker_status, which every version has
 * and which belongs to the extension (the schema does not: it outlives
 * DROP EXTENSION).  A database whose extension is older (the new library
 * runs before ALTER EXTENSION ... UPDATE, right after the restart that
 * loads it) still has the superuser who installed it there; internal SQL
 * then runs as that owner, as 0.5 did, until the update moves everything
 * to order_engine_owner, and the server log says so once per backend.
 */
Oid
OeOwnerRoleId(void)
{
	Oid			nspoid;
	Oid			relid;
	HeapTuple	tup;
	Oid			role;

	if (OidIsValid(owner_role))
		return owner_role;
	if (!owner_callback_registered)
	{
		CacheRegisterSyscacheCallback(RELOID, owner_role_invalidate, (Datum) 0);
		CacheRegisterSyscacheCallback(NAMESPACEOID, owner_role_invalidate, (Datum) 0);
		CacheRegisterSyscacheCallback(AUTHOID, owner_role_invalidate, (Datum) 0);
		owner_callback_registered = true;
	}
	nspoid = get_namespace_oid(OE_SCHEMA_NAME, true);
	relid = OidIsValid(nspoid) ? get_relname_relid(OE_OWNER_ANCHOR, nspoid) : InvalidOid;
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"%s\" is not installed in this database", OE_EXTENSION_NAME),
				 errhint("Run CREATE EXTENSION order_engine.")));
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	role = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	if (superuser_arg(role) && !legacy_logged)
	{
		ereport(LOG,
				(errmsg("order_engine: the extension's objects in database \"%s\" still belong to a superuser",
						get_database_name(MyDatabaseId)),
				 errdetail("Its SQL is older than 0.6; internal statements run as that owner, as before."),
				 errhint("Run ALTER EXTENSION order_engine UPDATE to move them to %s.",
						 OE_OWNER_ROLE_NAME)));
		legacy_logged = true;
	}
	owner_role = role;
	return role;
}

/*
 * A superuser passes too: it may write any table, and while ALTER
 * EXTENSION ... UPDATE moves a pre-0.6 install from its superuser owner to
 * order_engine_owner, a call that became the old owner at its start sees
 * the new owner here once the update's invalidations arrive (TAP 890 saw
 * that as XX000 under load).
 */
void
OeRequireOwnerScope(void)
{
	Oid			user = GetUserId();

	if (user != OeOwnerRoleId() && !superuser_arg(user))
		elog(ERROR, "order_engine: a write without SQL outside the owner's scope");
}

/*
 * The answers are kept per backend (the hot paths ask on every call) and
 * dropped with every pg_class or namespace invalidation, which ALTER
 * EXTENSION ... UPDATE and DROP/CREATE EXTENSION send.
 */
#define OE_SCHEMA_CHECKS	16

typedef struct SchemaCheck
{
	const char *table;			/* string constants of the callers */
	const char *column;			/* NULL: the table itself */
	bool		exists;
} SchemaCheck;

static SchemaCheck schema_checks[OE_SCHEMA_CHECKS];

static bool
schema_object_exists(const char *table, const char *column)
{
	Oid			nspoid;
	Oid			relid;
	bool		exists;

	for (int i = 0; i < nschema_checks; i++)
		if (schema_checks[i].table == table && schema_checks[i].column == column)
			return schema_checks[i].exists;

	nspoid = get_namespace_oid(OE_SCHEMA_NAME, true);
	relid = OidIsValid(nspoid) ? get_relname_relid(table, nspoid) : InvalidOid;
	exists = OidIsValid(relid) &&
		(column == NULL || get_attnum(relid, column) != InvalidAttrNumber);
	if (nschema_checks < OE_SCHEMA_CHECKS)
	{
		schema_checks[nschema_checks].table = table;
		schema_checks[nschema_checks].column = column;
		schema_checks[nschema_checks].exists = exists;
		nschema_checks++;
	}
	return exists;
}

bool
OeColumnExists(const char *table, const char *column)
{
	OeOwnerRoleId();			/* registers the invalidation callbacks */
	return schema_object_exists(table, column);
}

bool
OeTableExists(const char *table)
{
	OeOwnerRoleId();
	return schema_object_exists(table, NULL);
}

/* ---------------------------------------------------------------------
 * scopes
 * ---------------------------------------------------------------------
 */

/*
 * The pin of each open scope, innermost last.  pinned_at: the GUC nest
 * level of its pin (0: none yet, or none needed); xact_level: the
 * transaction nest level the scope was entered at, and pin_xact_level the
 * one its pin was made at (a subtransaction's end undoes the GUC levels
 * made inside it).
 */
#define OE_MAX_SCOPE_DEPTH	32

typedef struct ScopePin
{
	bool		pending;		/* SQL would need the path pinned first */
	int			pinned_at;
	int			xact_level;
	int			pin_xact_level;
} ScopePin;

static ScopePin scope_pins[OE_MAX_SCOPE_DEPTH];
static int	scope_depth = 0;
static bool scope_callbacks_registered = false;

/* a pin made at this transaction nest level or deeper is gone */
static void
scope_pins_undone_from(int xact_level)
{
	for (int i = 0; i < scope_depth; i++)
		if (scope_pins[i].pinned_at > 0 && scope_pins[i].pin_xact_level >= xact_level)
		{
			scope_pins[i].pinned_at = 0;
			scope_pins[i].pending = true;
		}
}

static void
scope_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		scope_depth = 0;		/* every scope's frame was unwound */
	else if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT)
		scope_pins_undone_from(1);	/* the commit pops every GUC level */
}

static void
scope_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();

	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		/* the scopes entered inside the subtransaction were unwound */
		while (scope_depth > 0 && scope_pins[scope_depth - 1].xact_level >= level)
			scope_depth--;
		scope_pins_undone_from(level);
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
		scope_pins_undone_from(level);
}

void
OeInternalEnter(OeInternalScope *scope, bool as_owner)
{
	ScopePin   *pin;

	if (!scope_callbacks_registered)
	{
		RegisterXactCallback(scope_xact_callback, NULL);
		RegisterSubXactCallback(scope_subxact_callback, NULL);
		scope_callbacks_registered = true;
	}
	if (scope_depth >= OE_MAX_SCOPE_DEPTH)
		elog(ERROR, "order_engine: internal scopes nested too deeply");
	GetUserIdAndSecContext(&scope->save_userid, &scope->save_sec_context);
	scope->switched_user = false;
	if (as_owner)
	{
		Oid			owner = OeOwnerRoleId();

		if (scope->save_userid != owner)
		{
			SetUserIdAndSecContext(owner,
								   scope->save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
			scope->switched_user = true;
		}
	}
	scope->depth = scope_depth++;
	pin = &scope_pins[scope->depth];
	pin->pinned_at = 0;
	pin->xact_level = GetCurrentTransactionNestLevel();
	pin->pin_xact_level = 0;
	pin->pending = !(namespace_search_path != NULL &&
					 strcmp(namespace_search_path, OE_PINNED_SEARCH_PATH) == 0);
}

void
OePinSearchPath(void)
{
	ScopePin   *pin;

	if (scope_depth == 0)
		return;					/* not in a scope: SQL as the caller (versioned_update) */
	pin = &scope_pins[scope_depth - 1];
	if (!pin->pending)
		return;
	pin->pinned_at = NewGUCNestLevel();
	pin->pin_xact_level = GetCurrentTransactionNestLevel();
	pin->pending = false;
	(void) set_config_option("search_path", OE_PINNED_SEARCH_PATH,
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
}

void
OeSqlConnect(void)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "order_engine: SPI_connect failed");
}

static void
scope_leave(OeInternalScope *scope, bool commit)
{
	/* an abort of an enclosing subtransaction may have dropped it already */
	if (scope->depth < scope_depth)
	{
		int			pinned_at = scope_pins[scope->depth].pinned_at;

		scope_depth = scope->depth;
		if (pinned_at > 0)
			AtEOXact_GUC(commit, pinned_at);
	}
	if (scope->switched_user)
		SetUserIdAndSecContext(scope->save_userid, scope->save_sec_context);
}

void
OeInternalExit(OeInternalScope *scope)
{
	scope_leave(scope, true);
}

/*
 * On an error the (sub)transaction abort would restore both anyway; doing
 * it in the PG_CATCH too means no code between the error and that abort
 * (an error context callback, an fmgr hook) ever runs as the owner.
 */
void
OeInternalAbort(OeInternalScope *scope)
{
	scope_leave(scope, false);
}

Datum
OeInternalCall(FunctionCallInfo fcinfo, PGFunction impl)
{
	OeInternalScope scope;
	Datum		result;

	OeInternalEnter(&scope, true);
	PG_TRY();
	{
		result = impl(fcinfo);
	}
	PG_CATCH();
	{
		OeInternalAbort(&scope);
		PG_RE_THROW();
	}
	PG_END_TRY();
	OeInternalExit(&scope);
	return result;
}

/* ---------------------------------------------------------------------
 * kept plans
 *
 * Our statements are key lookups whose generic plans live as long as the
 * backend.  A plan built while a table has no pages (a fresh install, or
 * VACUUM ANALYZE of an empty table) costs a sequential scan at nothing and
 * keeps it while the table grows, until an ANALYZE happens to invalidate
 * it (measured: a reserve then scanned stock_hold three times per call).
 * So while one of our statements is planned, a relation of fewer than 10
 * pages counts as 10 pages, what PostgreSQL itself assumes for a
 * never-vacuumed table.  Other queries are not touched.
 * ---------------------------------------------------------------------
 */

#define OE_PLAN_MIN_PAGES	10

static int	exec_depth = 0;
static bool relation_hook_installed = false;
static get_relation_info_hook_type prev_get_relation_info = NULL;

static void
oe_relation_info(PlannerInfo *root, Oid relid, bool inhparent, RelOptInfo *rel)
{
	if (prev_get_relation_info)
		prev_get_relation_info(root, relid, inhparent, rel);
	if (exec_depth > 0 && rel->pages < OE_PLAN_MIN_PAGES)
	{
		/* keep the tuple density the estimate had, if it had one */
		double		density = rel->pages > 0 ? rel->tuples / rel->pages : 0;

		rel->pages = OE_PLAN_MIN_PAGES;
		rel->tuples = Max(rel->tuples, density * OE_PLAN_MIN_PAGES);
		if (rel->tuples < OE_PLAN_MIN_PAGES)
			rel->tuples = OE_PLAN_MIN_PAGES * 10;
	}
}

SPIPlanPtr
OeKeepPlan(const char *sql, int nargs, const Oid *argtypes)
{
	SPIPlanPtr	plan;

	if (!relation_hook_installed)
	{
		prev_get_relation_info = get_relation_info_hook;
		get_relation_info_hook = oe_relation_info;
		relation_hook_installed = true;
	}

	/* parsing resolves names: the path is pinned first */
	OePinSearchPath();

	/*
	 * Always the generic plan: our statements are index lookups by key
	 * whatever the values, and a custom plan would be re-planned on every
	 * call (array parameters make the generic one look dearer).
	 */
	plan = SPI_prepare_cursor(sql, nargs, (Oid *) argtypes, CURSOR_OPT_GENERIC_PLAN);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s",
			 sql, SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	return plan;
}

int
OeExecPlan(SPIPlanPtr plan, Datum *values, const char *nulls, bool read_only,
		   long count)
{
	int			rc = 0;

	/*
	 * planning happens here, at the first execution of a generic plan, and
	 * the statement's functions resolve names as they run: pinned first
	 */
	OePinSearchPath();
	exec_depth++;
	PG_TRY();
	{
		rc = SPI_execute_plan(plan, values, nulls, read_only, count);
	}
	PG_FINALLY();
	{
		exec_depth--;
	}
	PG_END_TRY();
	if (rc < 0)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(rc));
	return rc;
}

SPIPlanPtr
OeCachedPlan(SPIPlanPtr *slot, const char *sql, int nargs, const Oid *argtypes)
{
	if (*slot == NULL)
		*slot = OeKeepPlan(sql, nargs, argtypes);
	return *slot;
}

int
OeQueryRun(OeQuery *q, Datum *values, const char *nulls, bool read_only,
		   long count)
{
	return OeExecPlan(OeCachedPlan(&q->plan, q->sql, q->nargs, q->argtypes), values, nulls, read_only, count);
}

Datum
OeQueryValue(int column, bool *isnull)
{
	if (SPI_processed == 0)
	{
		*isnull = true;
		return (Datum) 0;
	}
	return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
						 column, isnull);
}

int64 *
OeQueryInt64Column(uint64 *n)
{
	int64	   *result = palloc(sizeof(int64) * Max(SPI_processed, 1));

	*n = SPI_processed;
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		result[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
												SPI_tuptable->tupdesc, 1, &isnull));
	}
	return result;
}

/* ---------------------------------------------------------------------
 * subtransactions
 * ---------------------------------------------------------------------
 */

bool
OeRunInSubtransaction(OeSubxactWork work, void *arg, ErrorData **edata)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile bool kept = false;

	/* pinned outside, or every subtransaction's end would undo the pin */
	OePinSearchPath();
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		kept = work(arg);
		if (kept)
			ReleaseCurrentSubTransaction();
		else
			RollbackAndReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *e;

		MemoryContextSwitchTo(oldcontext);
		e = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		if (edata == NULL)
			ReThrowError(e);
		*edata = e;
		kept = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcontext);
	CurrentResourceOwner = oldowner;
	return kept;
}
