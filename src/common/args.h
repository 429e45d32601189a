/*-------------------------------------------------------------------------
 *
 * common/args.h
 *	  Argument checks shared by the SQL entry points of every folder.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ORDER_ENGINE_ARGS_H
#define ORDER_ENGINE_ARGS_H

#include "postgres.h"

#include "fmgr.h"

/* argument argno must not be NULL (22004, "<name> must not be null") */
static inline void
CheckNotNull(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name)));
}

#endif							/* ORDER_ENGINE_ARGS_H */
