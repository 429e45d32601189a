/*-------------------------------------------------------------------------
 *
 * utility_hook.c
 *	  Lets DROP DATABASE and ALTER DATABASE ... RENAME of a database served
 *	  by an order_engine worker go through.
 *
 * Both commands refuse to run while another session is connected to the
 * database.  Before they run, we ask that database's worker to leave and
 * keep the launcher from starting it again while the command runs; the
 * command's own wait for other sessions to go then succeeds.
 *
 * Only a caller who could succeed makes the worker leave: the database's
 * owner or a superuser, for a rename also with CREATEDB.  Anyone else gets
 * the command's own "must be owner" error with the worker untouched;
 * otherwise any role could keep holds from expiring by repeating a DROP
 * it has no right to.  A command that fails ends its hold-off at once; one
 * that succeeds leaves it to run out (OE_WORKER_HOLDOFF_MS).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"

#include "worker/worker_state.h"

static ProcessUtility_hook_type prev_process_utility_hook = NULL;

static const char *
oe_database_command_target(Node *parsetree)
{
	if (IsA(parsetree, DropdbStmt))
		return ((DropdbStmt *) parsetree)->dbname;
	if (IsA(parsetree, RenameStmt) &&
		((RenameStmt *) parsetree)->renameType == OBJECT_DATABASE)
		return ((RenameStmt *) parsetree)->subname;
	return NULL;
}

/* could the current user run this command on database dboid? */
static bool
oe_caller_may(Node *parsetree, Oid dboid)
{
#if PG_VERSION_NUM >= 160000
	if (!object_ownercheck(DatabaseRelationId, dboid, GetUserId()))
		return false;
#else
	if (!pg_database_ownercheck(dboid, GetUserId()))
		return false;
#endif
	if (IsA(parsetree, RenameStmt) && !have_createdb_privilege())
		return false;
	return true;
}

static void
oe_process_utility(PlannedStmt *pstmt, const char *queryString,
				   bool readOnlyTree, ProcessUtilityContext context,
				   ParamListInfo params, QueryEnvironment *queryEnv,
				   DestReceiver *dest, QueryCompletion *qc)
{
	const char *dbname = oe_database_command_target(pstmt->utilityStmt);
	volatile Oid held = InvalidOid;

	if (dbname != NULL)
	{
		Oid			dboid = get_database_oid(dbname, true);

		if (OidIsValid(dboid) && dboid != MyDatabaseId &&
			oe_caller_may(pstmt->utilityStmt, dboid))
		{
			OeWorkerRequestExit(dboid, true);
			held = dboid;
		}
	}

	PG_TRY();
	{
		if (prev_process_utility_hook)
			prev_process_utility_hook(pstmt, queryString, readOnlyTree, context,
									  params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
									params, queryEnv, dest, qc);
	}
	PG_CATCH();
	{
		/*
		 * The command failed: serve the database again at once.  After a
		 * success the hold-off runs out by itself, since the command's
		 * transaction commits only after we return and until then the
		 * launcher would still see the database.
		 */
		if (OidIsValid(held))
			OeWorkerEndHoldOff(held);
		PG_RE_THROW();
	}
	PG_END_TRY();
}

void
OeUtilityHookInstall(void)
{
	prev_process_utility_hook = ProcessUtility_hook;
	ProcessUtility_hook = oe_process_utility;
}
