/*-------------------------------------------------------------------------
 *
 * order_state.c
 *	  The order state machine, in one place, and the outbox event that
 *	  every state change writes.
 *
 *	  pending_payment -> paid -> shipped -> completed
 *	  pending_payment -> cancelled          (buyer)
 *	  pending_payment -> closed             (payment deadline passed)
 *	  paid -> refund_required               (buyer cancels before shipment)
 *	  cancelled | closed | refunded -> refund_required
 *	                                        (a payment arrived anyway)
 *	  refund_required -> refunded           (every payment owed went back)
 *
 * Any other move is ERRCODE_OE_ILLEGAL_TRANSITION naming both states.  The
 * event row is written in the caller's transaction, carrying the facts of
 * the move (payment_ref, logistics_no, reason) in its detail, and a NOTIFY
 * on order_engine_events follows its commit (OeOrdersOutboxNotify).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"

#include "common/errors.h"
#include "orders/orders.h"
#include "common/internal_sql.h"
#include "worker/signal.h"

static const char *const status_names[OE_ORDER_NSTATUS] = {
	[OE_ORDER_PENDING_PAYMENT] = "pending_payment",
	[OE_ORDER_PAID] = "paid",
	[OE_ORDER_SHIPPED] = "shipped",
	[OE_ORDER_COMPLETED] = "completed",
	[OE_ORDER_CANCELLED] = "cancelled",
	[OE_ORDER_CLOSED] = "closed",
	[OE_ORDER_REFUND_REQUIRED] = "refund_required",
	[OE_ORDER_REFUNDED] = "refunded",
};

/* allowed[from][to] */
static const bool allowed[OE_ORDER_NSTATUS][OE_ORDER_NSTATUS] = {
	[OE_ORDER_PENDING_PAYMENT] = {
		[OE_ORDER_PAID] = true,
		[OE_ORDER_CANCELLED] = true,
		[OE_ORDER_CLOSED] = true,
	},
	[OE_ORDER_PAID] = {
		[OE_ORDER_SHIPPED] = true,
		[OE_ORDER_REFUND_REQUIRED] = true,
	},
	[OE_ORDER_SHIPPED] = {[OE_ORDER_COMPLETED] = true},
	[OE_ORDER_CANCELLED] = {[OE_ORDER_REFUND_REQUIRED] = true},
	[OE_ORDER_CLOSED] = {[OE_ORDER_REFUND_REQUIRED] = true},
	[OE_ORDER_REFUND_REQUIRED] = {[OE_ORDER_REFUNDED] = true},
	[OE_ORDER_REFUNDED] = {[OE_ORDER_REFUND_REQUIRED] = true},
};

static OeQuery update_status = {
	"UPDATE order_engine.orders SET status = $2, version = version OPERATOR(pg_catalog.+) 1,"
	" paid_at = CASE WHEN $2 OPERATOR(pg_catalog.=) 'paid' THEN pg_catalog.now() ELSE paid_at END,"
	" shipped_at = CASE WHEN $2 OPERATOR(pg_catalog.=) 'shipped' THEN pg_catalog.now() ELSE shipped_at END,"
	" completed_at = CASE WHEN $2 OPERATOR(pg_catalog.=) 'completed' THEN pg_catalog.now() ELSE completed_at END,"
	" closed_at = CASE WHEN $2 OPERATOR(pg_catalog.=) ANY ('{cancelled,closed}'::pg_catalog.text[])"
	"                  THEN pg_catalog.now() ELSE closed_at END,"
	" payment_ref = COALESCE($4, payment_ref),"
	" logistics_no = COALESCE($5, logistics_no),"
	" close_reason = COALESCE($6, close_reason)"
	" WHERE order_no OPERATOR(pg_catalog.=) $1 AND status OPERATOR(pg_catalog.=) $3",
	6, {INT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID}
};

static OeQuery insert_event = {
	"INSERT INTO order_engine.order_events (order_no, event, from_status, to_status, detail)"
	" VALUES ($1, $2, $3, $4, $5::pg_catalog.jsonb)",
	5, {INT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID}
};

const char *
OeOrderStatusName(OeOrderStatus status)
{
	Assert(status >= 0 && status < OE_ORDER_NSTATUS);
	return status_names[status];
}

OeOrderStatus
OeOrderStatusParse(const char *name)
{
	for (int i = 0; i < OE_ORDER_NSTATUS; i++)
		if (strcmp(name, status_names[i]) == 0)
			return (OeOrderStatus) i;
	elog(ERROR, "unknown order status \"%s\"", name);
	return OE_ORDER_NSTATUS;	/* keep compiler quiet */
}

bool
OeOrderStatusIsFinal(OeOrderStatus status)
{
	return status == OE_ORDER_COMPLETED || status == OE_ORDER_CANCELLED ||
		status == OE_ORDER_CLOSED || status == OE_ORDER_REFUNDED;
}

static Datum
text_or_null(const char *s, char *null)
{
	*null = s ? ' ' : 'n';
	return s ? CStringGetTextDatum(s) : (Datum) 0;
}

void
OeOrderEvent(int64 order_no, const char *event, const char *from_status,
			 const char *to_status, const char *detail_json)
{
	Datum		values[5];
	char		nulls[5];

	values[0] = Int64GetDatum(order_no);
	values[1] = CStringGetTextDatum(event);
	nulls[0] = nulls[1] = ' ';
	values[2] = text_or_null(from_status, &nulls[2]);
	values[3] = text_or_null(to_status, &nulls[3]);
	values[4] = text_or_null(detail_json, &nulls[4]);
	OeQueryRun(&insert_event, values, nulls, false, 0);
	OeOrdersOutboxNotify();
}

/*
 * The outbox's NOTIFY.  The flag is ours and is turned into
 * OeOutboxNotify (the worker's signal, or the transaction's own NOTIFY)
 * only at pre-commit: a PREPAREd transaction drops it (PostgreSQL refuses
 * PREPARE after NOTIFY, and the worker's flag would survive PREPARE into
 * the next transaction of this session); its events are claimed by the
 * next drain.  Every end of a transaction clears it.
 */
static bool outbox_pending = false;
static bool outbox_callback_registered = false;

static void
outbox_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_PRE_COMMIT)
	{
		if (outbox_pending)
		{
			outbox_pending = false;
			OeOutboxNotify();
		}
		return;
	}
	outbox_pending = false;
}

void
OeOrdersOutboxNotify(void)
{
	if (!outbox_callback_registered)
	{
		RegisterXactCallback(outbox_xact_callback, NULL);
		outbox_callback_registered = true;
	}
	outbox_pending = true;
}

char *
OeOrderEventDetail(int n, const char *const *keys, const char *const *values)
{
	StringInfoData buf;
	bool		any = false;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (int i = 0; i < n; i++)
	{
		if (values[i] == NULL)
			continue;
		if (any)
			appendStringInfoString(&buf, ", ");
		escape_json(&buf, keys[i]);
		appendStringInfoString(&buf, ": ");
		escape_json(&buf, values[i]);
		any = true;
	}
	appendStringInfoChar(&buf, '}');
	return any ? buf.data : NULL;
}

/*
 * Move an order the caller has locked from one status to another, bump its
 * version and write the event.  from must be the order's current status.
 */
void
OeOrderTransition(int64 order_no, OeOrderStatus from, OeOrderStatus to,
				  const char *payment_ref, const char *logistics_no,
				  const char *reason)
{
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};

	if (!allowed[from][to])
		ereport(ERROR,
				(errcode(ERRCODE_OE_ILLEGAL_TRANSITION),
				 errmsg("order " INT64_FORMAT " cannot move from %s to %s",
						order_no, status_names[from], status_names[to])));

	values[0] = Int64GetDatum(order_no);
	values[1] = CStringGetTextDatum(status_names[to]);
	values[2] = CStringGetTextDatum(status_names[from]);
	values[3] = text_or_null(payment_ref, &nulls[3]);
	values[4] = text_or_null(logistics_no, &nulls[4]);
	values[5] = text_or_null(reason, &nulls[5]);
	OeQueryRun(&update_status, values, nulls, false, 0);
	if (SPI_processed != 1)
		elog(ERROR, "order " INT64_FORMAT " was not in status %s",
			 order_no, status_names[from]);

	{
		const char *const keys[] = {"payment_ref", "logistics_no", "reason"};
		const char *const facts[] = {payment_ref, logistics_no, reason};

		OeOrderEvent(order_no, status_names[to], status_names[from],
					 status_names[to], OeOrderEventDetail(3, keys, facts));
	}
}
