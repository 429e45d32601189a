/*-------------------------------------------------------------------------
 *
 * orders.h
 *	  Orders: the status state machine and the outbox (order_state.c), the
 *	  API that moves orders (orders.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef ORDER_ENGINE_ORDERS_H
#define ORDER_ENGINE_ORDERS_H

#include "postgres.h"

/* most lines one order may have (22023 beyond) */
#define OE_MAX_ORDER_LINES		100
/* longest payment window place_order accepts */
#define OE_MAX_PAY_WITHIN_USECS	(INT64CONST(7) * USECS_PER_DAY)
/* longest payment_ref, logistics_no, reason */
#define OE_MAX_REF_LENGTH		200


typedef enum OeOrderStatus
{
	OE_ORDER_PENDING_PAYMENT = 0,
	OE_ORDER_PAID,
	OE_ORDER_SHIPPED,
	OE_ORDER_COMPLETED,
	OE_ORDER_CANCELLED,
	OE_ORDER_CLOSED,
	OE_ORDER_REFUND_REQUIRED,
	OE_ORDER_REFUNDED,
	OE_ORDER_NSTATUS
} OeOrderStatus;

/* order_state.c */
extern const char *OeOrderStatusName(OeOrderStatus status);
extern OeOrderStatus OeOrderStatusParse(const char *name);
extern bool OeOrderStatusIsFinal(OeOrderStatus status);
extern void OeOrderTransition(int64 order_no, OeOrderStatus from,
							  OeOrderStatus to, const char *payment_ref,
							  const char *logistics_no, const char *reason);
extern void OeOrderEvent(int64 order_no, const char *event,
						 const char *from_status, const char *to_status,
						 const char *detail_json);

/* orders.c: jobs the worker runs too (caller owns the transaction) */
extern int64 OeCloseUnpaid(int32 max_rows);

#endif							/* ORDER_ENGINE_ORDERS_H */
