/*-------------------------------------------------------------------------
 *
 * owner.h
 *	  Running a hot entry point as the function's owner, the way SECURITY
 *	  DEFINER + SET search_path would, without the GUC save and restore
 *	  that a function's SET costs on every call.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ORDER_ENGINE_OWNER_H
#define ORDER_ENGINE_OWNER_H

#include "postgres.h"

#include "fmgr.h"

typedef struct OeOwnerScope
{
	Oid			save_userid;
	int			save_sec_context;
} OeOwnerScope;

extern void OeBecomeOwner(FunctionCallInfo fcinfo, OeOwnerScope *scope);
extern void OeRestoreCaller(OeOwnerScope *scope);
extern Datum OeCallAsOwner(FunctionCallInfo fcinfo, PGFunction impl);

#endif							/* ORDER_ENGINE_OWNER_H */
