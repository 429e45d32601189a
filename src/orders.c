/*-------------------------------------------------------------------------
 *
 * orders.c
 *	  The order API: place_order, pay_order, cancel/ship/complete/refund,
 *	  order_status, update_order, and the close_unpaid job.
 *
 * Every status change goes through OeOrderTransition (order_state.c);
 * stock moves through the stock API (stock.h); update_order goes through
 * the generic versioned update (versioned_update.h).  The functions run as
 * the extension's owner (SECURITY DEFINER, or internal_sql.c for place_order) so
 * the application role writes order tables only through them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "errors.h"
#include "jobs.h"
#include "orders.h"
#include "internal_sql.h"
#include "stock.h"
#include "versioned_update.h"
#include "worker_state.h"

typedef struct OeLines
{
	int			n;
	int64		sku_ids[OE_MAX_ORDER_LINES];
	int64		qtys[OE_MAX_ORDER_LINES];
} OeLines;

/* an order row as the API functions need it, read under FOR UPDATE */
typedef struct OeOrderRow
{
	bool		found;
	OeOrderStatus status;
	Datum		total;			/* numeric */
	TimestampTz pay_deadline;
	char	   *logistics_no;
} OeOrderRow;

static OeQuery select_order = {
	"SELECT status, total, pay_deadline, logistics_no FROM order_engine.orders"
	" WHERE order_no = $1 FOR UPDATE",
	1, {INT8OID}
};

/* live or archived: a number stays used after its order is archived */
static OeQuery select_content = {
	"SELECT o.buyer_id, o.seller_id, o.status,"
	" (SELECT pg_catalog.array_agg(l.sku_id ORDER BY l.line_no) FROM ("
	"    SELECT line_no, sku_id FROM order_engine.order_lines WHERE order_no = $1"
	"    UNION ALL SELECT line_no, sku_id FROM order_engine_archive.order_lines WHERE order_no = $1) l),"
	" (SELECT pg_catalog.array_agg(l.qty ORDER BY l.line_no) FROM ("
	"    SELECT line_no, qty FROM order_engine.order_lines WHERE order_no = $1"
	"    UNION ALL SELECT line_no, qty FROM order_engine_archive.order_lines WHERE order_no = $1) l)"
	" FROM (SELECT buyer_id, seller_id, status FROM order_engine.orders WHERE order_no = $1"
	"       UNION ALL"
	"       SELECT buyer_id, seller_id, status FROM order_engine_archive.orders WHERE order_no = $1) o",
	1, {INT8OID}
};

static OeQuery select_prices = {
	"SELECT s.sku_id, s.price FROM order_engine.sku s WHERE s.sku_id = ANY ($1)",
	1, {INT8ARRAYOID}
};

/* the placement's rows in one statement: order, lines, "placed" event */
static OeQuery insert_placement = {
	"WITH o AS ("
	"  INSERT INTO order_engine.orders (order_no, buyer_id, seller_id, total, line_count, pay_deadline)"
	"  VALUES ($1, $2, $3, $4, $5, pg_catalog.now() + $6) RETURNING order_no),"
	" l AS ("
	"  INSERT INTO order_engine.order_lines (order_no, line_no, sku_id, qty, unit_price, line_total)"
	"  SELECT o.order_no, l.n, l.sku_id, l.qty, l.price, l.qty * l.price"
	"  FROM o, ROWS FROM (pg_catalog.unnest($7::int8[]), pg_catalog.unnest($8::int8[]),"
	"                    pg_catalog.unnest($9::numeric[])) WITH ORDINALITY AS l(sku_id, qty, price, n))"
	" INSERT INTO order_engine.order_events (order_no, event, to_status)"
	" SELECT o.order_no, 'placed', 'pending_payment' FROM o",
	9, {INT8OID, INT8OID, INT8OID, NUMERICOID, INT4OID, INTERVALOID,
		INT8ARRAYOID, INT8ARRAYOID, NUMERICARRAYOID}
};

static OeQuery select_payment = {
	"SELECT order_no, amount, outcome FROM order_engine.payments WHERE payment_ref = $1",
	1, {TEXTOID}
};

static OeQuery insert_payment = {
	"INSERT INTO order_engine.payments (payment_ref, order_no, amount, outcome)"
	" VALUES ($1, $2, $3, $4)",
	4, {TEXTOID, INT8OID, NUMERICOID, TEXTOID}
};

static OeQuery select_status = {
	"SELECT status FROM order_engine.orders WHERE order_no = $1"
	" UNION ALL"
	" SELECT status FROM order_engine_archive.orders WHERE order_no = $1"
	" LIMIT 1",
	1, {INT8OID}
};

static OeQuery select_due_unpaid = {
	"SELECT o.order_no FROM order_engine.orders o"
	" WHERE o.status = 'pending_payment' AND o.pay_deadline <= pg_catalog.now()"
	"   AND NOT EXISTS (SELECT FROM order_engine.quarantine q"
	"                    WHERE q.job = 'close_unpaid' AND q.item = o.order_no)"
	" ORDER BY o.pay_deadline LIMIT $1 FOR UPDATE SKIP LOCKED",
	1, {INT4OID}
};

/* ---- argument checks ---- */

static inline void
CheckNotNull(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name)));
}

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

static int64
json_integer(JsonbValue *v, int line, const char *key)
{
	char	   *s;
	char	   *end;
	int64		result;

	if (v->type != jbvNumeric)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("line %d: \"%s\" must be a number", line, key)));
	s = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
	errno = 0;
	result = strtoi64(s, &end, 10);
	if (*end != '\0' || errno != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("line %d: \"%s\" must be an integer in the bigint range, not %s",
						line, key, s)));
	if (result <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("line %d: \"%s\" must be positive, not %s", line, key, s)));
	return result;
}

/*
 * lines must be a non-empty array of at most OE_MAX_ORDER_LINES objects
 * {"sku_id": n, "qty": n} with positive integers, each SKU once.
 */
static void
parse_lines(Jsonb *lines, OeLines *out)
{
	int			n;

	if (!JB_ROOT_IS_ARRAY(lines) || JB_ROOT_IS_SCALAR(lines))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("lines must be a JSON array of {\"sku_id\": ..., \"qty\": ...} objects")));
	n = JB_ROOT_COUNT(lines);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("an order needs at least one line")));
	if (n > OE_MAX_ORDER_LINES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("an order has at most %d lines, not %d", OE_MAX_ORDER_LINES, n)));

	out->n = n;
	for (int i = 0; i < n; i++)
	{
		JsonbValue *elem = getIthJsonbValueFromContainer(&lines->root, i);
		JsonbValue	v;

		if (elem->type != jbvBinary || !JsonContainerIsObject(elem->val.binary.data))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("line %d must be an object", i + 1)));
		if (JsonContainerSize(elem->val.binary.data) != 2)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("line %d must have exactly the keys \"sku_id\" and \"qty\"", i + 1)));
		if (!getKeyJsonValueFromContainer(elem->val.binary.data, "sku_id", 6, &v))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("line %d has no \"sku_id\"", i + 1)));
		out->sku_ids[i] = json_integer(&v, i + 1, "sku_id");
		if (!getKeyJsonValueFromContainer(elem->val.binary.data, "qty", 3, &v))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("line %d has no \"qty\"", i + 1)));
		out->qtys[i] = json_integer(&v, i + 1, "qty");

		for (int j = 0; j < i; j++)
			if (out->sku_ids[j] == out->sku_ids[i])
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("SKU " INT64_FORMAT " appears in more than one line",
								out->sku_ids[i]),
						 errhint("Put the whole quantity of a SKU in one line.")));
	}
}

static int64
interval_usecs(Interval *iv)
{
	return iv->time + (int64) iv->day * USECS_PER_DAY +
		(int64) iv->month * DAYS_PER_MONTH * USECS_PER_DAY;
}

static ArrayType *
int8_array(const int64 *values, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * n);

	for (int i = 0; i < n; i++)
		d[i] = Int64GetDatum(values[i]);
	return construct_array(d, n, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
}

static ArrayType *
numeric_array(const Datum *values, int n)
{
	return construct_array((Datum *) values, n, NUMERICOID, -1, false, TYPALIGN_INT);
}

static OeOrderRow
lock_order(int64 order_no)
{
	OeOrderRow	row = {0};
	Datum		arg = Int64GetDatum(order_no);
	bool		isnull;
	HeapTuple	tup;
	TupleDesc	desc;

	OeQueryRun(&select_order, &arg, NULL, false, 1);
	if (SPI_processed == 0)
		return row;
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	row.found = true;
	row.status = OeOrderStatusParse(TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull)));
	row.total = SPI_datumTransfer(SPI_getbinval(tup, desc, 2, &isnull), false, -1);
	row.pay_deadline = DatumGetTimestampTz(SPI_getbinval(tup, desc, 3, &isnull));
	row.logistics_no = SPI_getvalue(tup, desc, 4);
	return row;
}

static OeOrderRow
lock_existing_order(int64 order_no)
{
	OeOrderRow	row = lock_order(order_no);

	if (!row.found)
		ereport(ERROR,
				(errcode(ERRCODE_OE_ORDER_NOT_FOUND),
				 errmsg("order " INT64_FORMAT " does not exist", order_no)));
	return row;
}

static text *
status_text(OeOrderStatus status)
{
	return cstring_to_text(OeOrderStatusName(status));
}

/*
 * An order with this number exists: the same content gets its current
 * status back, other content is OE006.
 */
static text *
replay_placement(int64 order_no, int64 buyer_id, int64 seller_id, OeLines *lines)
{
	Datum		arg = Int64GetDatum(order_no);
	bool		isnull;
	HeapTuple	tup;
	TupleDesc	desc;
	bool		same;
	ArrayType  *skus;
	ArrayType  *qtys;

	OeQueryRun(&select_content, &arg, NULL, false, 1);
	if (SPI_processed == 0)
		return NULL;
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	skus = DatumGetArrayTypeP(SPI_getbinval(tup, desc, 4, &isnull));
	qtys = DatumGetArrayTypeP(SPI_getbinval(tup, desc, 5, &isnull));

	same = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull)) == buyer_id &&
		DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull)) == seller_id &&
		ArrayGetNItems(ARR_NDIM(skus), ARR_DIMS(skus)) == lines->n &&
		memcmp(ARR_DATA_PTR(skus), lines->sku_ids, sizeof(int64) * lines->n) == 0 &&
		memcmp(ARR_DATA_PTR(qtys), lines->qtys, sizeof(int64) * lines->n) == 0;
	if (!same)
		ereport(ERROR,
				(errcode(ERRCODE_OE_ORDER_CONFLICT),
				 errmsg("order number " INT64_FORMAT " is already used by another order", order_no),
				 errdetail("An order may be placed again only with the same buyer, seller and lines."),
				 errhint("Take a new number from next_order_no().")));
	return cstring_to_text(TextDatumGetCString(SPI_getbinval(tup, desc, 3, &isnull)));
}

/*
 * Unit prices of the lines, from the SKUs' current price; the client never
 * sends amounts.
 */
static void
snapshot_prices(OeLines *lines, Datum *prices)
{
	Datum		arg = PointerGetDatum(int8_array(lines->sku_ids, lines->n));
	bool	   *found = palloc0(sizeof(bool) * lines->n);

	OeQueryRun(&select_prices, &arg, NULL, false, 0);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		int64		sku = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));
		Datum		price = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &isnull);

		for (int i = 0; i < lines->n; i++)
		{
			if (lines->sku_ids[i] != sku)
				continue;
			if (isnull)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("SKU " INT64_FORMAT " has no price", sku),
						 errhint("Set one with set_price().")));
			prices[i] = SPI_datumTransfer(price, false, -1);
			found[i] = true;
		}
	}
	for (int i = 0; i < lines->n; i++)
		if (!found[i])
			ereport(ERROR,
					(errcode(ERRCODE_OE_SKU_NOT_FOUND),
					 errmsg("SKU " INT64_FORMAT " does not exist", lines->sku_ids[i])));
}

static Datum
place_order(FunctionCallInfo fcinfo)
{
	int64		order_no;
	int64		buyer_id;
	int64		seller_id;
	Interval   *pay_within;
	int64		pay_within_usecs;
	OeLines		lines;
	Datum		prices[OE_MAX_ORDER_LINES];
	Datum		total;
	text	   *result;

	CheckNotNull(fcinfo, 0, "order_no");
	CheckNotNull(fcinfo, 1, "buyer_id");
	CheckNotNull(fcinfo, 2, "seller_id");
	CheckNotNull(fcinfo, 3, "lines");
	CheckNotNull(fcinfo, 4, "pay_within");
	order_no = PG_GETARG_INT64(0);
	buyer_id = PG_GETARG_INT64(1);
	seller_id = PG_GETARG_INT64(2);
	pay_within = PG_GETARG_INTERVAL_P(4);
	if (order_no <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("order_no must be positive")));
	pay_within_usecs = interval_usecs(pay_within);
	if (pay_within_usecs <= 0 || pay_within_usecs > OE_MAX_PAY_WITHIN_USECS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pay_within must be positive and at most 7 days")));
	parse_lines(PG_GETARG_JSONB_P(3), &lines);

	SPI_connect();
	/* placements of one number queue here (the lock reserve takes too) */
	OeStockLockOrder(order_no);

	result = replay_placement(order_no, buyer_id, seller_id, &lines);
	if (result == NULL)
	{
		snapshot_prices(&lines, prices);
		if (!OeStockReserve(order_no, lines.n, lines.sku_ids, lines.qtys,
							pay_within_usecs, true, buyer_id))
			result = cstring_to_text("out_of_stock");
		else
		{
			Datum		values[9];

			total = DirectFunctionCall1(int8_numeric, Int64GetDatum(0));
			for (int i = 0; i < lines.n; i++)
				total = DirectFunctionCall2(numeric_add, total,
											DirectFunctionCall2(numeric_mul, prices[i],
																DirectFunctionCall1(int8_numeric,
																					Int64GetDatum(lines.qtys[i]))));
			values[0] = Int64GetDatum(order_no);
			values[1] = Int64GetDatum(buyer_id);
			values[2] = Int64GetDatum(seller_id);
			values[3] = total;
			values[4] = Int32GetDatum(lines.n);
			values[5] = IntervalPGetDatum(pay_within);
			values[6] = PointerGetDatum(int8_array(lines.sku_ids, lines.n));
			values[7] = PointerGetDatum(int8_array(lines.qtys, lines.n));
			values[8] = PointerGetDatum(numeric_array(prices, lines.n));
			OeQueryRun(&insert_placement, values, NULL, false, 0);
			OeOutboxNotify();
			OeWorkerWakeAtCommit(GetCurrentTransactionStartTimestamp() + pay_within_usecs);
			result = cstring_to_text("pending_payment");
		}
	}
	/* the answer was built in SPI's memory, which SPI_finish frees */
	result = DatumGetTextP(SPI_datumTransfer(PointerGetDatum(result), false, -1));
	SPI_finish();
	PG_RETURN_TEXT_P(result);
}

/*
 * place_order is the hot entry point of orders: not SECURITY DEFINER, it
 * becomes the owner in C (internal_sql.c) without a function SET's per-call cost.
 */
PG_FUNCTION_INFO_V1(oe_place_order);
Datum
oe_place_order(PG_FUNCTION_ARGS)
{
	return OeInternalCall(fcinfo, place_order);
}

/*
 * pending_payment past its deadline: close it (holds released) the way
 * close_unpaid would.
 */
static void
close_overdue(int64 order_no)
{
	OeStockRelease(order_no);
	OeOrderTransition(order_no, OE_ORDER_PENDING_PAYMENT, OE_ORDER_CLOSED,
					  NULL, NULL, "payment deadline passed");
}

static void
record_payment(const char *payment_ref, int64 order_no, Datum amount, const char *outcome)
{
	Datum		values[4];

	values[0] = CStringGetTextDatum(payment_ref);
	values[1] = Int64GetDatum(order_no);
	values[2] = amount;
	values[3] = CStringGetTextDatum(outcome);
	OeQueryRun(&insert_payment, values, NULL, false, 0);
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

	SPI_connect();
	order = lock_existing_order(order_no);

	/* the same payment again: the answer it got */
	arg = CStringGetTextDatum(payment_ref);
	OeQueryRun(&select_payment, &arg, NULL, false, 1);
	if (SPI_processed > 0)
	{
		bool		isnull;
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		int64		paid_order = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		Datum		paid_amount = SPI_getbinval(tup, desc, 2, &isnull);
		Datum		result;

		if (paid_order != order_no ||
			DatumGetInt32(DirectFunctionCall2(numeric_cmp, paid_amount, amount)) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_OE_PAYMENT_REF_CONFLICT),
					 errmsg("payment_ref \"%s\" was already used for another payment", payment_ref),
					 errdetail("It paid order " INT64_FORMAT ".", paid_order)));
		/* copied out of SPI's memory, which SPI_finish frees */
		result = SPI_datumTransfer(SPI_getbinval(tup, desc, 3, &isnull), false, -1);
		SPI_finish();
		PG_RETURN_DATUM(result);
	}

	if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, order.total, amount)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OE_AMOUNT_MISMATCH),
				 errmsg("payment amount %s does not match the total of order " INT64_FORMAT,
						DatumGetCString(DirectFunctionCall1(numeric_out, amount)), order_no),
				 errdetail("The order total is %s.",
						   DatumGetCString(DirectFunctionCall1(numeric_out, order.total)))));

	switch (order.status)
	{
		case OE_ORDER_PENDING_PAYMENT:
			if (GetCurrentTransactionStartTimestamp() >= order.pay_deadline)
			{
				/* too late: its stock may be gone; never lose the money */
				close_overdue(order_no);
				OeOrderTransition(order_no, OE_ORDER_CLOSED, OE_ORDER_REFUND_REQUIRED,
								  payment_ref, NULL, NULL);
				outcome = "refund_required";
			}
			else
			{
				OeStockConfirm(order_no);
				OeOrderTransition(order_no, OE_ORDER_PENDING_PAYMENT, OE_ORDER_PAID,
								  payment_ref, NULL, NULL);
				outcome = "paid";
			}
			break;
		case OE_ORDER_CANCELLED:
		case OE_ORDER_CLOSED:
			OeOrderTransition(order_no, order.status, OE_ORDER_REFUND_REQUIRED,
							  payment_ref, NULL, NULL);
			outcome = "refund_required";
			break;
		default:
			/* a second payment for a paid order: kept as a refund case */
			OeOrderEvent(order_no, "extra_payment", OeOrderStatusName(order.status),
						 OeOrderStatusName(order.status), NULL);
			outcome = "refund_required";
			break;
	}
	record_payment(payment_ref, order_no, amount, outcome);
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(outcome));
}

PG_FUNCTION_INFO_V1(oe_cancel_order);
Datum
oe_cancel_order(PG_FUNCTION_ARGS)
{
	int64		order_no;
	char	   *reason = NULL;
	OeOrderRow	order;

	CheckNotNull(fcinfo, 0, "order_no");
	order_no = PG_GETARG_INT64(0);
	if (!PG_ARGISNULL(1))
		reason = CheckRef(PG_GETARG_TEXT_PP(1), "reason");

	SPI_connect();
	order = lock_existing_order(order_no);
	if (order.status != OE_ORDER_CANCELLED)
	{
		if (order.status == OE_ORDER_PENDING_PAYMENT)
			OeStockRelease(order_no);
		OeOrderTransition(order_no, order.status, OE_ORDER_CANCELLED,
						  NULL, NULL, reason ? reason : "cancelled by buyer");
	}
	SPI_finish();
	PG_RETURN_TEXT_P(status_text(OE_ORDER_CANCELLED));
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
	logistics_no = CheckRef(PG_GETARG_TEXT_PP(1), "logistics_no");

	SPI_connect();
	order = lock_existing_order(order_no);
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

	SPI_connect();
	order = lock_existing_order(order_no);
	if (order.status != to)
		OeOrderTransition(order_no, order.status, to, NULL, NULL, NULL);
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

	SPI_connect();
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

PG_FUNCTION_INFO_V1(oe_update_order);
Datum
oe_update_order(PG_FUNCTION_ARGS)
{
	int64		order_no;
	int64		expected;
	Jsonb	   *changes;
	Jsonb	   *key;
	OeOrderRow	order;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int64		new_version;
	char		keybuf[64];

	CheckNotNull(fcinfo, 0, "order_no");
	CheckNotNull(fcinfo, 1, "expected_version");
	CheckNotNull(fcinfo, 2, "changes");
	order_no = PG_GETARG_INT64(0);
	expected = PG_GETARG_INT64(1);
	changes = PG_GETARG_JSONB_P(2);

	if (!JB_ROOT_IS_OBJECT(changes) || JB_ROOT_COUNT(changes) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("changes must be a non-empty JSON object")));
	it = JsonbIteratorInit(&changes->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		bool		ok = false;

		if (tok != WJB_KEY)
			continue;
		for (int i = 0; i < lengthof(editable_fields); i++)
			if (v.val.string.len == strlen(editable_fields[i]) &&
				strncmp(v.val.string.val, editable_fields[i], v.val.string.len) == 0)
				ok = true;
		if (!ok)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("order field \"%.*s\" cannot be changed by update_order",
							v.val.string.len, v.val.string.val),
					 errhint("Editable fields: address, note, logistics_no.")));
	}

	SPI_connect();
	order = lock_existing_order(order_no);
	if (OeOrderStatusIsFinal(order.status))
		ereport(ERROR,
				(errcode(ERRCODE_OE_ILLEGAL_TRANSITION),
				 errmsg("order " INT64_FORMAT " is %s and can no longer be changed",
						order_no, OeOrderStatusName(order.status))));

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

/*
 * close_unpaid: orders past their payment deadline -> closed, holds
 * released.  Runs in the caller's transaction; the worker calls it too.
 */
int64
OeCloseUnpaid(int32 max_rows)
{
	Datum		arg = Int32GetDatum(max_rows);
	int64		closed;
	uint64		n;
	int64	   *orders;

	SPI_connect();
	OeQueryRun(&select_due_unpaid, &arg, NULL, false, 0);
	orders = OeQueryInt64Column(&n);
	OeJobLockStock(orders, (int) n);
	closed = OeJobProcessRows(OE_JOB_CLOSE_UNPAID, orders, (int) n, close_overdue);
	SPI_finish();
	return closed;
}

PG_FUNCTION_INFO_V1(oe_close_unpaid);
Datum
oe_close_unpaid(PG_FUNCTION_ARGS)
{
	int32		max_rows = PG_GETARG_INT32(0);

	if (max_rows < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_rows must be at least 1")));
	PG_RETURN_INT32((int32) OeCloseUnpaid(max_rows));
}
