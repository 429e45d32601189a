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

/*
 * A buyer, seller or order id that must not be negative (22023, with the
 * value): what next_order_no, shard_of, place_order and quote take.
 */
static inline void
CheckNotNegative(int64 value, const char *name)
{
	if (value < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be negative", name),
				 errdetail("%s was " INT64_FORMAT ".", name, value)));
}

/* CheckMaxRows without a ceiling */
#define OE_MAX_ROWS_UNBOUNDED	0

/*
 * The max_rows argument of a batch function (release_expired,
 * close_unpaid, archive_orders, reap_expired_keys): 22023 unless it is at
 * least 1 and, when most is not OE_MAX_ROWS_UNBOUNDED, at most most.  A
 * ceiling is named in the message and the value in the detail.  A null
 * max_rows is the caller's: CheckNotNull where the SQL function is not
 * STRICT (reap_expired_keys), nothing where it is (the jobs').
 */
static inline void
CheckMaxRows(int32 max_rows, int32 most)
{
	if (most != OE_MAX_ROWS_UNBOUNDED && (max_rows < 1 || max_rows > most))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_rows must be between 1 and %d", most),
				 errdetail("It was %d.", max_rows)));
	if (max_rows < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_rows must be at least 1")));
}

#endif							/* ORDER_ENGINE_ARGS_H */
