/*-------------------------------------------------------------------------
 *
 * internal_sql.h
 *	  The one path for order_engine's internal SQL: who it runs as, the
 *	  search path it sees, its kept plans and its subtransactions.
 *
 * Every statement order_engine runs on its own tables goes through here:
 *
 *	OeInternalEnter / OeInternalExit
 *		become order_engine_owner (a NOLOGIN role that is never superuser
 *		and owns only the extension's objects) the way fmgr_security_definer
 *		does, and pin search_path to "pg_catalog, pg_temp" in a GUC nest
 *		level before the first statement (OeSqlConnect); undo both.
 *	OeInternalCall
 *		run an fmgr entry point inside such a scope, restoring the caller
 *		on every error path (PG_TRY).
 *	OeQueryRun
 *		run a statement whose plan is prepared once per backend and kept,
 *		always generic, planned while inside a scope.
 *	OeRunInSubtransaction
 *		run a piece of work in an internal subtransaction under PG_TRY: on
 *		an error it is rolled back and the caller's memory context and
 *		resource owner restored, so no subtransaction of ours ever outlives
 *		the call (a PL/pgSQL exception block around us rolls back only its
 *		own).
 *
 * Query texts stay fully qualified, operators included, as a second wall.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ORDER_ENGINE_INTERNAL_SQL_H
#define ORDER_ENGINE_INTERNAL_SQL_H

#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"

/* the role internal work runs as */
#define OE_OWNER_ROLE_NAME		"order_engine_owner"

/* the extension's object whose owner internal work runs as (every version has it) */
#define OE_OWNER_ANCHOR			"worker_status"

/* the search path internal work runs under */
#define OE_PINNED_SEARCH_PATH	"pg_catalog, pg_temp"

/* ---- who: the owner role ---- */

/* who internal work runs as: the owner of the extension's objects (0.6 on: order_engine_owner) */
extern Oid	OeOwnerRoleId(void);

/*
 * Does table order_engine.<table> have <column>?  For the library serving
 * an extension whose SQL is older (between the restart that loads a new
 * library and ALTER EXTENSION ... UPDATE); kept per backend until the next
 * catalog invalidation.  table and column must be string constants.
 */
extern bool OeColumnExists(const char *table, const char *column);
extern bool OeTableExists(const char *table);

/* ---- scopes ---- */

typedef struct OeInternalScope
{
	Oid			save_userid;
	int			save_sec_context;
	int			depth;			/* its pin's place in internal_sql.c's stack */
	bool		switched_user;
} OeInternalScope;

/*
 * Become the owner (as_owner) or stay the caller; the search path is
 * pinned before the scope's first statement is prepared or run
 * (OeKeepPlan, OeExecPlan), and undone by OeInternalExit / OeInternalAbort.
 */
extern void OeInternalEnter(OeInternalScope *scope, bool as_owner);
/* pin the innermost scope's search path now, if it is not pinned yet */
extern void OePinSearchPath(void);
/*
 * SPI_connect for internal SQL, the only one.  ERROR if SPI cannot
 * connect.  Pins nothing: the first statement does (OeExecPlan).
 */
extern void OeSqlConnect(void);
extern void OeInternalExit(OeInternalScope *scope);
/* undo a scope from a PG_CATCH block, before re-throwing */
extern void OeInternalAbort(OeInternalScope *scope);

/*
 * ERROR unless we run as the owner role, as inside OeInternalEnter(.., true)
 * and our SECURITY DEFINER functions: what writes our tables without SQL
 * (direct_insert.c, stock/bucket_row.c) checks no privilege itself
 */
extern void OeRequireOwnerScope(void);

/* impl(fcinfo) as the owner, with the path pinned; restored on error */
extern Datum OeInternalCall(FunctionCallInfo fcinfo, PGFunction impl);

/* ---- kept plans ---- */

#define OE_QUERY_MAX_ARGS	10

typedef struct OeQuery
{
	const char *sql;
	int			nargs;
	Oid			argtypes[OE_QUERY_MAX_ARGS];
	SPIPlanPtr	plan;			/* NULL until first use */
} OeQuery;

/* prepare a statement (generic plan) and keep it for the backend's life */
extern SPIPlanPtr OeKeepPlan(const char *sql, int nargs, const Oid *argtypes);

/*
 * Run q with the given arguments (nulls as for SPI_execute_plan).  With
 * read_only the statement sees the caller's snapshot; anything that runs
 * after waiting for a lock must pass false to see what committed meanwhile.
 */
extern int	OeQueryRun(OeQuery *q, Datum *values, const char *nulls,
					   bool read_only, long count);

/* the plan in *slot, prepared and kept on first use */
extern SPIPlanPtr OeCachedPlan(SPIPlanPtr *slot, const char *sql, int nargs,
							   const Oid *argtypes);

/*
 * Run a kept plan (from OeKeepPlan), the search path pinned first; the
 * only SPI_execute_plan.  Returns SPI's code; SPI failures are bugs.
 */
extern int	OeExecPlan(SPIPlanPtr plan, Datum *values, const char *nulls,
					   bool read_only, long count);

/* first column of the first row of the last result, or isnull */
extern Datum OeQueryValue(int column, bool *isnull);

/* the first (bigint, not null) column of the last result, copied out */
extern int64 *OeQueryInt64Column(uint64 *n);

/* ---- subtransactions ---- */

/* work for OeRunInSubtransaction: true keeps what it did, false undoes it */
typedef bool (*OeSubxactWork) (void *arg);

/*
 * Run work(arg) in an internal subtransaction.  Returns what work
 * returned (its changes kept only when true).  On an error the
 * subtransaction is rolled back; then with edata NULL the error is
 * re-thrown, otherwise *edata gets a copy (in the caller's memory context)
 * and the result is false.
 */
extern bool OeRunInSubtransaction(OeSubxactWork work, void *arg,
								  ErrorData **edata);

#endif							/* ORDER_ENGINE_INTERNAL_SQL_H */
