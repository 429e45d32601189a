/*-------------------------------------------------------------------------
 *
 * utility_hook.c
 *	  Lets DROP DATABASE and ALTER DATABASE ... RENAME of a database served
 *	  by an order_engine worker go through.
 *
 * Both commands refuse to run while another session is connected to the
 * database.  Before they run, we ask that database's worker to leave and
 * keep the launcher from starting it again for a while; the command's own
 * wait for other sessions to go then succeeds.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/dbcommands.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"

#include "worker_state.h"

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

static void
oe_process_utility(PlannedStmt *pstmt, const char *queryString,
				   bool readOnlyTree, ProcessUtilityContext context,
				   ParamListInfo params, QueryEnvironment *queryEnv,
				   DestReceiver *dest, QueryCompletion *qc)
{
	const char *dbname = oe_database_command_target(pstmt->utilityStmt);

	if (dbname != NULL)
	{
		Oid			dboid = get_database_oid(dbname, true);

		if (OidIsValid(dboid))
			OeWorkerRequestExit(dboid, true);
	}

	if (prev_process_utility_hook)
		prev_process_utility_hook(pstmt, queryString, readOnlyTree, context,
								  params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

void
OeUtilityHookInstall(void)
{
	prev_process_utility_hook = ProcessUtility_hook;
	ProcessUtility_hook = oe_process_utility;
}
