/*-------------------------------------------------------------------------
 *
 * interval_check.c
 *	  The checks of a user's interval (see interval_check.h for why there
 *	  are three): OeIntervalUsecs, the checked interval-to-microseconds
 *	  conversion that reserve and place_order share; OeIntervalExpiry for
 *	  keys and tokens; OeIntervalCutoff for archive_orders' older_than.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
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

/* iv as text, for the detail of an error about it */
static char *
interval_text(const Interval *iv)
{
	return DatumGetCString(DirectFunctionCall1(interval_out,
											   IntervalPGetDatum((Interval *) iv)));
}

/*
 * Each field is bounded before the addition, so that a huge interval is a
 * 22023 naming the limit rather than the timestamp arithmetic's "timestamp
 * out of range".
 */
TimestampTz
OeIntervalExpiry(const Interval *iv, const char *name, int max_years)
{
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	TimestampTz expires;

	if (iv->month > max_years * MONTHS_PER_YEAR ||
		iv->month < -max_years * MONTHS_PER_YEAR ||
		iv->day > max_years * DAYS_PER_YEAR ||
		iv->day < -max_years * DAYS_PER_YEAR ||
		iv->time > (int64) (max_years * DAYS_PER_YEAR) * USECS_PER_DAY ||
		iv->time < -(int64) (max_years * DAYS_PER_YEAR) * USECS_PER_DAY)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be at most %d years", name, max_years),
				 errdetail("The %s was %s.", name, interval_text(iv))));
	expires = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
													  TimestampTzGetDatum(now),
													  IntervalPGetDatum((Interval *) iv)));
	if (expires <= now)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be positive", name),
				 errdetail("The %s was %s.", name, interval_text(iv))));
	if (expires - now > (int64) (max_years * DAYS_PER_YEAR) * USECS_PER_DAY)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be at most %d years", name, max_years),
				 errdetail("The %s was %s.", name, interval_text(iv))));
	return expires;
}


/* iv has no negative field: 22023 "<name> must not be negative" */
static void
check_not_negative(const Interval *iv, const char *name)
{
	if (iv->time < 0 || iv->day < 0 || iv->month < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be negative", name)));
}

/*
 * Below this many whole years an interval subtracted from now stays well
 * inside the timestamp range (4713 BC): the fields' floored years add up
 * to less than the interval by under three years.
 */
#define OE_MAX_AGE_YEARS	5000

TimestampTz
OeIntervalCutoff(const Interval *iv, const char *name)
{
	int64		years;

	check_not_negative(iv, name);
	years = iv->month / MONTHS_PER_YEAR + iv->day / 366 +
		iv->time / (USECS_PER_DAY * 366);
	if (years >= OE_MAX_AGE_YEARS)
	{
		TimestampTz nothing_is_older;

		TIMESTAMP_NOBEGIN(nothing_is_older);
		return nothing_is_older;
	}
	return DatumGetTimestampTz(DirectFunctionCall2(timestamptz_mi_interval,
												   TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()),
												   IntervalPGetDatum((Interval *) iv)));
}
