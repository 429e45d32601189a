/*-------------------------------------------------------------------------
 *
 * interval_check.c
 *	  OeIntervalUsecs: the checked interval-to-microseconds conversion that
 *	  reserve and place_order share (see interval_check.h for why).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/int.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "common/interval_check.h"

int64
OeIntervalUsecs(const Interval *iv, const char *name, int64 max_usecs,
				const char *max_label)
{
	int64		days;
	int64		usecs;

	/* each step checked: a huge field is a 22023, never a wrap-around */
	if (pg_mul_s64_overflow((int64) iv->month, DAYS_PER_MONTH, &days) ||
		pg_add_s64_overflow(days, (int64) iv->day, &days) ||
		pg_mul_s64_overflow(days, USECS_PER_DAY, &usecs) ||
		pg_add_s64_overflow(usecs, iv->time, &usecs) ||
		usecs <= 0 || usecs > max_usecs)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be positive and at most %s", name, max_label)));
	return usecs;
}

TimestampTz
OeTimestampPlusUsecs(TimestampTz ts, int64 usecs)
{
	TimestampTz result;

	if (pg_add_s64_overflow(ts, usecs, &result) || !IS_VALID_TIMESTAMP(result))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	return result;
}
