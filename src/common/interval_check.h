/*-------------------------------------------------------------------------
 *
 * interval_check.h
 *	  The one conversion of a user's interval into microseconds.
 *
 * Holds (reserve's ttl) and orders (place_order's pay_within) used to turn
 * an interval into time in two ways: 30-day months for the hold, calendar
 * months (now() + interval) for the payment deadline.  '1000 mons -29999
 * days' was then a 1-day hold and a 437-day payment window.  Every
 * duration order_engine stores as "now + d" now goes through
 * OeIntervalUsecs, and the deadline and the hold are both computed from
 * the one number it returns.
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

#endif							/* ORDER_ENGINE_INTERVAL_CHECK_H */
