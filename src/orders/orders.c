/*-------------------------------------------------------------------------
 *
 * orders.c
 *	  The order API after placement (place_order is place_order.c):
 *	  pay_order, cancel/ship/complete/refund, order_status, update_order;
 *	  the row close_unpaid closes (OeOrderCloseOverdue; the job itself is
 *	  jobs/close_unpaid.c).
 *
 * Every status change goes through OeOrderTransition (order_state.c);
 * stock moves through the stock API (stock.h), refunds through refunds.c;
 * update_order goes through the generic versioned update
 * (versioned_update.h).  The functions run as the extension's owner
 * (SECURITY DEFINER) so the application
 * role writes order tables only through them.
 *
 * Money is never lost (docs/orders.md): a placed order's holds live at
 * least until its payment deadline and move only with the order; every
 * payment that reaches pay_order is recorded, whatever the state or the
 * amount, live order or archived; one clock decides "before the deadline"
 * for the order and for its holds.
 *
 * Lock order, for every caller: the order row, then the order number's
 * advisory lock, then per SKU the buyer's tally and the buckets
 * (stock.c); close_unpaid takes them in that order too.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "common/args.h"
#include "common/arrays.h"
#include "common/errors.h"
#include "ids/ids.h"
#include "common/interval_check.h"
#include "orders/orders.h"
#include "orders/order_row.h"
#include "common/internal_sql.h"
#include "stock/stock.h"
#include "idem/versioned_update.h"
#include "worker/signal.h"

enum
{
	Anum_payment_order_no = 1,
	Anum_payment_amount,
	Anum_payment_outcome
};
static OeQuery select_payment = {
	"SELECT order_no, amount, outcome FROM order_engine.payments"
	" WHERE payment_ref OPERATOR(pg_catalog.=) $1",
	1, {TEXTOID}
};

/*
 * ON CONFLICT: a payment_ref another transaction recorded for another
 * order while we worked is found here after waiting for it (a raw unique
 * violation before 0.7); pay_order then answers OE018.
 */
static OeQuery insert_payment = {
	"INSERT INTO order_engine.payments (payment_ref, order_no, amount, outcome, refund_state)"
	" VALUES ($1, $2, $3, $4, $5) ON CONFLICT (payment_ref) DO NOTHING",
	5, {TEXTOID, INT8OID, NUMERICOID, TEXTOID, TEXTOID}
};

/* the same before ALTER EXTENSION UPDATE to 0.7 (no refund columns yet) */
static OeQuery insert_payment_0_6 = {
	"INSERT INTO order_engine.payments (payment_ref, order_no, amount, outcome)"
	" VALUES ($1, $2, $3, $4) ON CONFLICT (payment_ref) DO NOTHING",
	5, {TEXTOID, INT8OID, NUMERICOID, TEXTOID, TEXTOID}
};

static OeQuery select_status = {
	"SELECT status FROM order_engine.orders WHERE order_no OPERATOR(pg_catalog.=) $1"
	" UNION ALL"
	" SELECT status FROM order_engine_archive.orders WHERE order_no OPERATOR(pg_catalog.=) $1"
	" LIMIT 1",
	1, {INT8OID}
};

/* is this number a placed order, live or archived? */
static OeQuery select_placed = {
	"SELECT 1 FROM order_engine.orders WHERE order_no OPERATOR(pg_catalog.=) $1"
	" UNION ALL"
	" SELECT 1 FROM order_engine_archive.orders WHERE order_no OPERATOR(pg_catalog.=) $1"
	" LIMIT 1",
	1, {INT8OID}
};

/* ---- argument checks ---- */

static inline char *
CheckRef(text *t, const char *name)
{
	char	   *s = text_to_cstring(t);
	size_t		len = strlen(s);

	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", name)));
	if (len > OE_MAX_REF_LENGTH)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is longer than %d bytes", name, OE_MAX_REF_LENGTH)));
	return s;
}

/*
 * The one check of a logistics number, for ship_order and update_order:
 * 1 .. OE_MAX_REF_LENGTH bytes.
 */
static inline void
CheckLogisticsNo(const char *s, size_t len)
{
	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("logistics_no must not be empty")));
	if (len > OE_MAX_REF_LENGTH)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("logistics_no is longer than %d bytes", OE_MAX_REF_LENGTH)));
}

/* address and note: text of at most OE_MAX_TEXT_FIELD_LENGTH bytes, or null */
static inline void
CheckTextField(const char *name, size_t len)
{
	if (len > OE_MAX_TEXT_FIELD_LENGTH)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is longer than %d bytes", name, OE_MAX_TEXT_FIELD_LENGTH)));
}


static text *
status_text(OeOrderStatus status)
{
	return cstring_to_text(OeOrderStatusName(status));
}

/*
 * confirm()/release() called by the application on a placed order's
 * number would strand the order (pending_payment without stock, or stock
 * sold for an unpaid order).  Refused after the number's advisory lock,
 * so a placement in flight is seen once it commits.
 */
void
OeOrderCheckStockCall(int64 order_no, const char *what)
{
	Datum		arg = Int64GetDatum(order_no);
	bool		placed;

	/* SQL older than 0.5 (the library runs before ALTER EXTENSION UPDATE): no orders */
	if (!OeTableExists("orders"))
		return;
	OeStockLockOrder(order_no);
	OeSqlConnect();
	OeQueryRun(&select_placed, &arg, NULL, false, 1);
	placed = SPI_processed > 0;
	SPI_finish();
	if (placed)
		ereport(ERROR,
				(errcode(ERRCODE_OE_HOLD_BOUND_TO_ORDER),
				 errmsg("cannot %s the holds of order " INT64_FORMAT ": they belong to a placed order",
						what, order_no),
				 errdetail("The holds of a placed order move only with the order."),
				 errhint("Use pay_order, cancel_order or close_unpaid.")));
}

/*
 * pending_payment past its deadline: close it (holds released) the way
 * close_unpaid would (jobs/close_unpaid.c: one row of that job).
 */
void
OeOrderCloseOverdue(int64 order_no)
{
	OeStockRelease(order_no);
	OeOrderTransition(order_no, OE_ORDER_PENDING_PAYMENT, OE_ORDER_CLOSED,
					  NULL, NULL, "payment deadline passed");
}

static void
payment_ref_conflict(const char *payment_ref, int64 paid_order)
{
	ereport(ERROR,
			(errcode(ERRCODE_OE_PAYMENT_REF_CONFLICT),
			 errmsg("payment_ref \"%s\" was already used for another payment", payment_ref),
			 errdetail("It paid order " INT64_FORMAT ".", paid_order)));
}

/*
 * Store the payment.  The row is the proof the money arrived: outcome is
 * what pay_order answered, refund_state what is owed back (NULL: nothing).
 */
static void
record_payment(const char *payment_ref, int64 order_no, Datum amount,
			   const char *outcome, bool owed)
{
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};

	values[0] = CStringGetTextDatum(payment_ref);
	values[1] = Int64GetDatum(order_no);
	values[2] = amount;
	values[3] = CStringGetTextDatum(outcome);
	values[4] = owed ? CStringGetTextDatum("refund_required") : (Datum) 0;
	if (!owed)
		nulls[4] = 'n';
	OeQueryRun(OeColumnExists("payments", "refund_state") ? &insert_payment : &insert_payment_0_6,
			   values, nulls, false, 0);
	if (SPI_processed == 1)
		return;
	/* recorded meanwhile by a payment of another order (ours is locked) */
	OeQueryRun(&select_payment, values, NULL, false, 1);
	{
		bool		isnull;

		payment_ref_conflict(payment_ref,
							 SPI_processed > 0 ? DatumGetInt64(OeQueryValue(1, &isnull)) : 0);
	}
}

static char *
payment_detail(const char *payment_ref, Datum amount)
{
	const char *const keys[] = {"payment_ref", "amount"};
	const char *values[2];

	values[0] = payment_ref;
	values[1] = DatumGetCString(DirectFunctionCall1(numeric_out, amount));
	return OeOrderEventDetail(2, keys, values);
}

PG_FUNCTION_INFO_V1(oe_pay_order);
Datum
oe_pay_order(PG_FUNCTION_ARGS)
{
	int64		order_no;
	char	   *payment_ref;
	Datum		amount;
	Datum		arg;
	OeOrderRow	order;
	const char *outcome;
	bool		owed = true;
	TimestampTz now;

	CheckNotNull(fcinfo, 0, "order_no");
	CheckNotNull(fcinfo, 1, "payment_ref");
	CheckNotNull(fcinfo, 2, "amount");
	order_no = PG_GETARG_INT64(0);
	payment_ref = CheckRef(PG_GETARG_TEXT_PP(1), "payment_ref");
	amount = PG_GETARG_DATUM(2);
	if (numeric_is_nan(DatumGetNumeric(amount)) ||
		numeric_is_inf(DatumGetNumeric(amount)) ||
		DatumGetBool(DirectFunctionCall2(numeric_lt, amount,
										 NumericGetDatum(int64_to_numeric(0)))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("amount must be a finite number not below zero")));

	OeSqlConnect();
	order = OeOrderLockExisting(order_no);

	/* the same payment again: the answer it got */
	arg = CStringGetTextDatum(payment_ref);
	OeQueryRun(&select_payment, &arg, NULL, false, 1);
	if (SPI_processed > 0)
	{
		bool		isnull;
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		int64		paid_order = DatumGetInt64(SPI_getbinval(tup, desc, Anum_payment_order_no, &isnull));
		Datum		paid_amount = SPI_getbinval(tup, desc, Anum_payment_amount, &isnull);
		Datum		result;

		if (paid_order != order_no ||
			DatumGetInt32(DirectFunctionCall2(numeric_cmp, paid_amount, amount)) != 0)
			payment_ref_conflict(payment_ref, paid_order);
		/* copied out of SPI's memory, which SPI_finish frees */
		result = SPI_datumTransfer(SPI_getbinval(tup, desc, Anum_payment_outcome, &isnull), false, -1);
		SPI_finish();
		PG_RETURN_DATUM(result);
	}

	/*
	 * One clock for the deadline and for the holds (OeStockConfirmAt): the
	 * wall clock, not the transaction start, so a transaction that began
	 * before the deadline cannot pass this check and then fail on an
	 * expired hold.
	 */
	now = GetCurrentTimestamp();
	switch (order.status)
	{
		case OE_ORDER_PENDING_PAYMENT:
			if (now >= order.pay_deadline)
			{
				/* too late, whatever the amount: its stock may be gone */
				OeOrderCloseOverdue(order_no);
				OeOrderTransition(order_no, OE_ORDER_CLOSED, OE_ORDER_REFUND_REQUIRED,
								  payment_ref, NULL, NULL);
				outcome = "refund_required";
				break;
			}

			/*
			 * An order that can still be paid refuses a wrong amount: the
			 * payment is declined, not taken (API.md), so nothing is owed.
			 */
			if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, order.total, amount)) != 0)
				ereport(ERROR,
						(errcode(ERRCODE_OE_AMOUNT_MISMATCH),
						 errmsg("payment amount %s does not match the total of order " INT64_FORMAT,
								DatumGetCString(DirectFunctionCall1(numeric_out, amount)), order_no),
						 errdetail("The order total is %s.",
								   DatumGetCString(DirectFunctionCall1(numeric_out, order.total)))));
			OeStockConfirmAt(order_no, now);
			OeOrderTransition(order_no, OE_ORDER_PENDING_PAYMENT, OE_ORDER_PAID,
							  payment_ref, NULL, NULL);
			outcome = "paid";
			owed = false;
			break;
		case OE_ORDER_CANCELLED:
		case OE_ORDER_CLOSED:
		case OE_ORDER_REFUNDED:
			/* money arrived for an order that takes none: owed back */
			OeOrderEnsureLive(order_no, &order);
			OeOrderTransition(order_no, order.status, OE_ORDER_REFUND_REQUIRED,
							  payment_ref, NULL, NULL);
			outcome = "refund_required";
			break;
		default:
			/* a second payment for a paid (or refund_required) order */
			OeOrderEnsureLive(order_no, &order);
			OeOrderEvent(order_no, "extra_payment", OeOrderStatusName(order.status),
						 OeOrderStatusName(order.status),
						 payment_detail(payment_ref, amount));
			outcome = "refund_required";
			break;
	}
	record_payment(payment_ref, order_no, amount, outcome, owed);
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(outcome));
}

/*
 * cancel_order: an unpaid order is cancelled (holds released); a paid one
 * that has not shipped becomes refund_required: its stock is returned, the
 * buyer's purchase-limit allowance comes back and its payments are owed
 * back (refunds.c).  A repeat answers the status the first call left.
 */
PG_FUNCTION_INFO_V1(oe_cancel_order);
Datum
oe_cancel_order(PG_FUNCTION_ARGS)
{
	int64		order_no;
	char	   *reason = NULL;
	OeOrderRow	order;
	OeOrderStatus result;

	CheckNotNull(fcinfo, 0, "order_no");
	order_no = PG_GETARG_INT64(0);
	if (!PG_ARGISNULL(1))
		reason = CheckRef(PG_GETARG_TEXT_PP(1), "reason");

	OeSqlConnect();
	order = OeOrderLockExisting(order_no);
	switch (order.status)
	{
		case OE_ORDER_CANCELLED:
		case OE_ORDER_REFUND_REQUIRED:
		case OE_ORDER_REFUNDED:
			/* already cancelled (or being refunded): nothing to do */
			result = order.status;
			break;
		case OE_ORDER_PENDING_PAYMENT:
			OeOrderEnsureLive(order_no, &order);
			OeStockRelease(order_no);
			OeOrderTransition(order_no, order.status, OE_ORDER_CANCELLED,
							  NULL, NULL, reason ? reason : "cancelled by buyer");
			result = OE_ORDER_CANCELLED;
			break;
		case OE_ORDER_PAID:
			OeOrderEnsureLive(order_no, &order);
			OeStockReturnSold(order_no);
			(void) OeOrderOweBack(order_no);
			OeOrderTransition(order_no, order.status, OE_ORDER_REFUND_REQUIRED,
							  NULL, NULL, reason ? reason : "cancelled by buyer after payment");
			result = OE_ORDER_REFUND_REQUIRED;
			break;
		default:
			/* shipped, completed, closed: the state machine says OE004 */
			OeOrderTransition(order_no, order.status, OE_ORDER_CANCELLED,
							  NULL, NULL, reason);
			result = OE_ORDER_CANCELLED;
			break;
	}
	SPI_finish();
	PG_RETURN_TEXT_P(status_text(result));
}

PG_FUNCTION_INFO_V1(oe_ship_order);
Datum
oe_ship_order(PG_FUNCTION_ARGS)
{
	int64		order_no;
	char	   *logistics_no;
	OeOrderRow	order;

	CheckNotNull(fcinfo, 0, "order_no");
	CheckNotNull(fcinfo, 1, "logistics_no");
	order_no = PG_GETARG_INT64(0);
	logistics_no = text_to_cstring(PG_GETARG_TEXT_PP(1));
	CheckLogisticsNo(logistics_no, strlen(logistics_no));

	OeSqlConnect();
	order = OeOrderLockExisting(order_no);
	/* a retry with the same number is answered, another number is refused */
	if (order.status == OE_ORDER_SHIPPED)
	{
		if (order.logistics_no == NULL || strcmp(order.logistics_no, logistics_no) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_OE_ILLEGAL_TRANSITION),
					 errmsg("order " INT64_FORMAT " is already shipped with logistics number %s",
							order_no, order.logistics_no ? order.logistics_no : "(none)"),
					 errhint("Correct the logistics number with update_order().")));
	}
	else
		OeOrderTransition(order_no, order.status, OE_ORDER_SHIPPED,
						  NULL, logistics_no, NULL);
	SPI_finish();
	PG_RETURN_TEXT_P(status_text(OE_ORDER_SHIPPED));
}

/* a move with no side effects, idempotent when the order is already there */
static Datum
simple_transition(FunctionCallInfo fcinfo, OeOrderStatus to)
{
	int64		order_no;
	OeOrderRow	order;

	CheckNotNull(fcinfo, 0, "order_no");
	order_no = PG_GETARG_INT64(0);

	OeSqlConnect();
	order = OeOrderLockExisting(order_no);
	if (order.status != to)
	{
		if (to == OE_ORDER_REFUNDED && order.status == OE_ORDER_REFUND_REQUIRED)
		{
			/* the money went back: every payment owed is refunded */
			OeOrderEnsureLive(order_no, &order);
			(void) OeOrderMarkRefunded(order_no);
		}
		OeOrderTransition(order_no, order.status, to, NULL, NULL, NULL);
	}
	SPI_finish();
	PG_RETURN_TEXT_P(status_text(to));
}

PG_FUNCTION_INFO_V1(oe_complete_order);
Datum
oe_complete_order(PG_FUNCTION_ARGS)
{
	return simple_transition(fcinfo, OE_ORDER_COMPLETED);
}

PG_FUNCTION_INFO_V1(oe_refund_order);
Datum
oe_refund_order(PG_FUNCTION_ARGS)
{
	return simple_transition(fcinfo, OE_ORDER_REFUNDED);
}

PG_FUNCTION_INFO_V1(oe_order_status);
Datum
oe_order_status(PG_FUNCTION_ARGS)
{
	Datum		arg = PG_GETARG_DATUM(0);
	text	   *result;
	bool		isnull;

	OeSqlConnect();
	OeQueryRun(&select_status, &arg, NULL, true, 1);
	if (SPI_processed > 0)
		result = cstring_to_text(TextDatumGetCString(OeQueryValue(1, &isnull)));
	else
		result = cstring_to_text("not_found");
	/* copied out of SPI's memory, which SPI_finish frees */
	result = DatumGetTextP(SPI_datumTransfer(PointerGetDatum(result), false, -1));
	SPI_finish();
	PG_RETURN_TEXT_P(result);
}

/* the fields update_order may change */
static const char *const editable_fields[] = {"address", "note", "logistics_no"};

/*
 * One validator for what update_order stores: the keys it may change, a
 * string (or null) of bounded length for each, and for logistics_no the
 * check ship_order makes; a shipped order keeps a logistics number, so
 * that ship_order retries keep being answered.
 */
static void
check_order_changes(Jsonb *changes, OeOrderStatus status)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			field = -1;

	if (!JB_ROOT_IS_OBJECT(changes) || JB_ROOT_COUNT(changes) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("changes must be a non-empty JSON object")));
	it = JsonbIteratorInit(&changes->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			field = -1;
			for (int i = 0; i < lengthof(editable_fields); i++)
				if (v.val.string.len == strlen(editable_fields[i]) &&
					strncmp(v.val.string.val, editable_fields[i], v.val.string.len) == 0)
					field = i;
			if (field < 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("order field \"%.*s\" cannot be changed by update_order",
								v.val.string.len, v.val.string.val),
						 errhint("Editable fields: address, note, logistics_no.")));
			continue;
		}
		if (tok != WJB_VALUE || field < 0)
			continue;
		if (v.type == jbvNull)
		{
			if (strcmp(editable_fields[field], "logistics_no") == 0 &&
				status == OE_ORDER_SHIPPED)
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("logistics_no of a shipped order must not be null")));
			continue;
		}
		if (v.type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("order field \"%s\" must be a string or null", editable_fields[field])));
		if (strcmp(editable_fields[field], "logistics_no") == 0)
			CheckLogisticsNo(v.val.string.val, v.val.string.len);
		else
			CheckTextField(editable_fields[field], v.val.string.len);
	}
}

PG_FUNCTION_INFO_V1(oe_update_order);
Datum
oe_update_order(PG_FUNCTION_ARGS)
{
	int64		order_no;
	int64		expected;
	Jsonb	   *changes;
	Jsonb	   *key;
	OeOrderRow	order;
	int64		new_version;
	char		keybuf[64];

	CheckNotNull(fcinfo, 0, "order_no");
	CheckNotNull(fcinfo, 1, "expected_version");
	CheckNotNull(fcinfo, 2, "changes");
	order_no = PG_GETARG_INT64(0);
	expected = PG_GETARG_INT64(1);
	changes = PG_GETARG_JSONB_P(2);
	/* the shape first: bad input is refused before any lookup */
	check_order_changes(changes, OE_ORDER_PENDING_PAYMENT);

	OeSqlConnect();
	order = OeOrderLockExisting(order_no);
	if (OeOrderStatusIsFinal(order.status) || order.archived)
		ereport(ERROR,
				(errcode(ERRCODE_OE_ILLEGAL_TRANSITION),
				 errmsg("order " INT64_FORMAT " is %s and can no longer be changed",
						order_no, OeOrderStatusName(order.status))));
	check_order_changes(changes, order.status);

	snprintf(keybuf, sizeof(keybuf), "{\"order_no\": " INT64_FORMAT "}", order_no);
	key = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(keybuf)));
	new_version = OeVersionedUpdate(get_relname_relid("orders", get_namespace_oid("order_engine", false)),
									key, expected, changes);
	OeOrderEvent(order_no, "updated", OeOrderStatusName(order.status),
				 OeOrderStatusName(order.status),
				 DatumGetCString(DirectFunctionCall1(jsonb_out, JsonbPGetDatum(changes))));
	SPI_finish();
	PG_RETURN_INT64(new_version);
}
