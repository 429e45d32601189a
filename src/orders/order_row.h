/*-------------------------------------------------------------------------
 *
 * order_row.h
 *	  One order's row, locked live or archived (order_row.c); private to
 *	  orders/.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ORDER_ENGINE_ORDER_ROW_H
#define ORDER_ENGINE_ORDER_ROW_H

#include "postgres.h"

#include "datatype/timestamp.h"

#include "orders/orders.h"

/* an order row as the API functions need it, read under FOR UPDATE */
typedef struct OeOrderRow
{
	bool		found;
	OeOrderStatus status;
	Datum		total;			/* numeric */
	TimestampTz pay_deadline;
	char	   *logistics_no;
	bool		archived;		/* found in order_engine_archive, locked there */
} OeOrderRow;

/* the order, locked; OE009 when neither live nor archived */
extern OeOrderRow OeOrderLockExisting(int64 order_no);

/*
 * Is order_no a live or archived order, as a statement run now would see
 * (no lock)?  true also when the tables are not the ones expected, so the
 * caller's SQL decides.
 */
extern bool OeOrderNumberUsed(int64 order_no);

/* an archived order that is about to change moves back to the live tables */
extern void OeOrderEnsureLive(int64 order_no, OeOrderRow *row);

#endif							/* ORDER_ENGINE_ORDER_ROW_H */
