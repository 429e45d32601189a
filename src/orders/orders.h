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
#include "common/order_engine.h"	/* OE_MAX_ORDER_LINES */
/* longest payment window place_order accepts */
#define OE_MAX_PAY_WITHIN_USECS	(INT64CONST(7) * USECS_PER_DAY)
/* longest payment_ref, refund_ref, logistics_no, reason */
#define OE_MAX_REF_LENGTH		200
/* longest address or note update_order stores (and copies into its event) */
#define OE_MAX_TEXT_FIELD_LENGTH	1000
/* the currency scale, shard gene GUCs */
#include "common/guc.h"


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

/*
 * Outbox events were written: NOTIFY once the transaction commits (sent
 * from a pre-commit callback, so a PREPAREd transaction carries no
 * notification and leaves no flag behind).
 */
extern void OeOrdersOutboxNotify(void);

/*
 * outbox_cdc.c: the CDC trigger's function (InvalidOid if missing);
 * whether events become logical messages now (the setting and
 * wal_level); an event row, as a composite Datum, as that message.
 */
extern Oid	OeOutboxTriggerFunction(void);
extern bool OeOutboxEmitting(void);
extern void OeOutboxEmitRow(Datum row);

/* a JSON object of the non-NULL pairs keys[i]: values[i] (strings), or NULL */
extern char *OeOrderEventDetail(int n, const char *const *keys,
								const char *const *values);

/* orders.c: close one overdue pending_payment order (jobs/close_unpaid.c) */
extern void OeOrderCloseOverdue(int64 order_no);

/*
 * orders.c: for the stock API's SQL entry points.  confirm/release of an
 * order number that belongs to a placed order (live or archived) is
 * ERRCODE_OE_HOLD_BOUND_TO_ORDER: its holds move only with the order.
 * Takes the order number's advisory lock first, as every stock call does.
 */
extern void OeOrderCheckStockCall(int64 order_no, const char *what);

/* orders.c: a price must be payable: at most currency_scale decimals (22023) */
extern void OeOrderCheckPrice(Datum price);

/* orders.c: lock an order (restoring it from the archive); its status */
extern OeOrderStatus OeOrderLockLive(int64 order_no);

/* refunds.c */
extern int64 OeOrderOweBack(int64 order_no);
extern int64 OeOrderMarkRefunded(int64 order_no);

#endif							/* ORDER_ENGINE_ORDERS_H */
