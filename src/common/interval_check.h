/*-------------------------------------------------------------------------
 *
 * interval_check.h
 *	  Every check of an interval a user passes to order_engine, and the
 *	  one conversion of such an interval into microseconds.
 *
 * Holds (reserve's ttl) and orders (place_order's pay_within) used to turn
 * an interval into time in two ways: 30-day months for the hold, calendar
 * months (now() + interval) for the payment deadline.  '1000 mons -29999
 * days' was then a 1-day hold and a 437-day payment window.  Every
 * duration that becomes a hold or a payment deadline now goes through
 * OeIntervalUsecs, and the deadline and the hold are both computed from
 * the one number it returns.
 *
 * Two intervals are never turned into microseconds and keep their own
 * check here: the ttl of an idempotency key or checkout token, whose
 * expiry is one timestamp (now() + ttl in calendar months, as SQL adds
 * them), and archive_orders' older_than, which is subtracted from now()
 * the same way.  Every field is bounded before any arithmetic, so none of
 * them overflows.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ORDER_ENGINE_INTERVAL_CHECK_H
#define ORDER_ENGINE_INTERVAL_CHECK_H

#include "postgres.h"

#include "datatype/timestamp.h"

/*
 * iv as microseconds, a month counting 30 days and a day 24 hours, with
 * overflow checked: 22023 "<name> must be positive and at most
 * <max_label>" unless 0 < result <= max_usecs.
 */
extern int64 OeIntervalUsecs(const Interval *iv, const char *name,
							 int64 max_usecs, const char *max_label);

/* ts + usecs, or 22008 when that leaves the timestamp range */
extern TimestampTz OeTimestampPlusUsecs(TimestampTz ts, int64 usecs);

/*
 * The transaction's start + iv (calendar months), which must lie in the
 * future and at most max_years ahead: 22023 "<name> must be positive" or
 * "<name> must be at most <max_years> years", the detail naming iv.
 */
extern TimestampTz OeIntervalExpiry(const Interval *iv, const char *name,
									int max_years);

/*
 * The transaction's start - iv (calendar months), what "older than iv"
 * compares with; iv has no negative field (22023 "<name> must not be
 * negative").  An iv that reaches before the timestamp range gives
 * -infinity, since nothing is that old: never 22008.
 */
extern TimestampTz OeIntervalCutoff(const Interval *iv, const char *name);

#endif							/* ORDER_ENGINE_INTERVAL_CHECK_H */
