/*-------------------------------------------------------------------------
 *
 * orders.c
 *	  The order API: place_order, pay_order, cancel/ship/complete/refund,
 *	  order_status, update_order; the row close_unpaid closes
 *	  (OeOrderCloseOverdue; the job itself is jobs/close_unpaid.c).
 *
 * Every status change goes through OeOrderTransition (order_state.c);
 * stock moves through the stock API (stock.h), refunds through refunds.c;
 * update_order goes through the generic versioned update
 * (versioned_update.h).  The functions run as the extension's owner
 * (SECURITY DEFINER, or OeInternalCall for place_order) so the application
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

typedef struct OeLines
{
	int			n;
	int64		sku_ids[OE_MAX_ORDER_LINES];
	int64		qtys[OE_MAX_ORDER_LINES];
} OeLines;

/* live or archived: a number stays used after its order is archived */
static OeQuery select_content = {
	"SELECT o.buyer_id, o.seller_id, o.status,"
	" (SELECT pg_catalog.array_agg(l.sku_id ORDER BY l.line_no) FROM ("
	"    SELECT line_no, sku_id FROM order_engine.order_lines WHERE order_no OPERATOR(pg_catalog.=) $1"
	"    UNION ALL SELECT line_no, sku_id FROM order_engine_archive.order_lines"
	"     WHERE order_no OPERATOR(pg_catalog.=) $1) l),"
	" (SELECT pg_catalog.array_agg(l.qty ORDER BY l.line_no) FROM ("
	"    SELECT line_no, qty FROM order_engine.order_lines WHERE order_no OPERATOR(pg_catalog.=) $1"
	"    UNION ALL SELECT line_no, qty FROM order_engine_archive.order_lines"
	"     WHERE order_no OPERATOR(pg_catalog.=) $1) l)"
	" FROM (SELECT buyer_id, seller_id, status FROM order_engine.orders"
	"        WHERE order_no OPERATOR(pg_catalog.=) $1"
	"       UNION ALL"
	"       SELECT buyer_id, seller_id, status FROM order_engine_archive.orders"
	"        WHERE order_no OPERATOR(pg_catalog.=) $1) o",
	1, {INT8OID}
};

static OeQuery select_prices = {
	"SELECT s.sku_id, s.price FROM order_engine.sku s"
	" WHERE s.sku_id OPERATOR(pg_catalog.=) ANY ($1)",
	1, {INT8ARRAYOID}
};

/*
 * The placement's rows in one statement: order, lines, "placed" event.
 * The deadline comes computed ($6): the holds were given the same one.
 */
static OeQuery insert_placement = {
	"WITH o AS ("
	"  INSERT INTO order_engine.orders (order_no, buyer_id, seller_id, total, line_count, pay_deadline)"
	"  VALUES ($1, $2, $3, $4, $5, $6) RETURNING order_no),"
	" l AS ("
	"  INSERT INTO order_engine.order_lines (order_no, line_no, sku_id, qty, unit_price, line_total)"
	"  SELECT o.order_no, l.n, l.sku_id, l.qty, l.price, l.qty OPERATOR(pg_catalog.*) l.price"
	"  FROM o, ROWS FROM (pg_catalog.unnest($7::pg_catalog.int8[]), pg_catalog.unnest($8::pg_catalog.int8[]),"
	"                    pg_catalog.unnest($9::pg_catalog.numeric[])) WITH ORDINALITY AS l(sku_id, qty, price, n))"
	" INSERT INTO order_engine.order_events (order_no, event, to_status, detail)"
	" SELECT o.order_no, 'placed', 'pending_payment',"
	"        pg_catalog.jsonb_build_object('pay_deadline', $6, 'total', $4) FROM o",
	9, {INT8OID, INT8OID, INT8OID, NUMERICOID, INT4OID, TIMESTAMPTZOID,
		INT8ARRAYOID, INT8ARRAYOID, NUMERICARRAYOID}
};

/*
 * Placement binds the order's holds to it: each lives at least until the
 * payment deadline.  Holds this call created already do (reserve counts
 * from the clock, later than the deadline's start) and are only counted;
 * one reserved earlier with a shorter ttl, for instance when the number
 * was issued at checkout, is extended.  The statement answers how many
 * holds are held until the deadline: fewer than the order's lines means
 * the sweeper released one (before our snapshot, or while we waited for
 * its row lock), and place_order refuses with OE005.  In the common case
 * both parts are index probes that write nothing.  State and expiry are
 * tested inside CASE/FILTER on purpose: as plain conditions they matched
 * the partial index on held holds' expiry, and the kept generic plan
 * scanned it (every held hold in the database) next to the order's
 * primary key, which halved place_order's throughput
 * (test/bench/orders.sh).
 */
static OeQuery bind_holds = {
	"WITH b AS ("
	"  UPDATE order_engine.stock_hold SET expires_at = $2, updated_at = pg_catalog.now()"
	"   WHERE order_no OPERATOR(pg_catalog.=) $1"
	"     AND CASE WHEN state OPERATOR(pg_catalog.=) 'held'"
	"              THEN expires_at OPERATOR(pg_catalog.<) $2 ELSE false END"
	"  RETURNING 1)"
	" SELECT (SELECT pg_catalog.count(*) FROM b) OPERATOR(pg_catalog.+)"
	"        (SELECT pg_catalog.count(*) FILTER (WHERE h.state OPERATOR(pg_catalog.=) 'held'"
	"                                             AND h.expires_at OPERATOR(pg_catalog.>=) $2)"
	"           FROM order_engine.stock_hold h WHERE h.order_no OPERATOR(pg_catalog.=) $1)",
	2, {INT8OID, TIMESTAMPTZOID}
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

/* buyer and seller ids are what next_order_no takes: not negative */
static inline void
CheckNotNegative(int64 value, const char *name)
{
	if (value < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be negative", name),
				 errdetail("%s was " INT64_FORMAT ".", name, value)));
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

static ArrayType *
numeric_array(const Datum *values, int n)
{
	return construct_array((Datum *) values, n, NUMERICOID, -1, false, TYPALIGN_INT);
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
	Datum		skus_d,
				qtys_d;
	bool		skus_null,
				qtys_null;

	OeQueryRun(&select_content, &arg, NULL, false, 1);
	if (SPI_processed == 0)
		return NULL;
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	same = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull)) == buyer_id &&
		DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull)) == seller_id;

	/* an order whose lines are gone has NULL arrays: other content */
	skus_d = SPI_getbinval(tup, desc, 4, &skus_null);
	qtys_d = SPI_getbinval(tup, desc, 5, &qtys_null);
	if (skus_null || qtys_null)
		same = false;
	else if (same)
	{
		skus = DatumGetArrayTypeP(skus_d);
		qtys = DatumGetArrayTypeP(qtys_d);
		same = ArrayGetNItems(ARR_NDIM(skus), ARR_DIMS(skus)) == lines->n &&
			ArrayGetNItems(ARR_NDIM(qtys), ARR_DIMS(qtys)) == lines->n &&
			memcmp(ARR_DATA_PTR(skus), lines->sku_ids, sizeof(int64) * lines->n) == 0 &&
			memcmp(ARR_DATA_PTR(qtys), lines->qtys, sizeof(int64) * lines->n) == 0;
	}
	if (!same)
		ereport(ERROR,
				(errcode(ERRCODE_OE_ORDER_CONFLICT),
				 errmsg("order number " INT64_FORMAT " is already used by another order", order_no),
				 errdetail("An order may be placed again only with the same buyer, seller and lines."),
				 errhint("Take a new number from next_order_no().")));
	return cstring_to_text(TextDatumGetCString(SPI_getbinval(tup, desc, 3, &isnull)));
}

/* price has at most order_engine.currency_scale decimal places */
static bool
price_is_payable(Datum price)
{
	Datum		rounded = DirectFunctionCall2(numeric_round, price,
											  Int32GetDatum(OeCurrencyScale));

	return DatumGetInt32(DirectFunctionCall2(numeric_cmp, rounded, price)) == 0;
}

/*
 * Prices are held to the currency scale when they are set, so that every
 * total (qty * price, summed) is an amount a card processor can charge;
 * rounding totals instead would make the lines disagree with the total.
 */
void
OeOrderCheckPrice(Datum price)
{
	if (!price_is_payable(price))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("price must have at most %d decimal places", OeCurrencyScale),
				 errdetail("The price was %s.",
						   DatumGetCString(DirectFunctionCall1(numeric_out, price))),
				 errhint("order_engine.currency_scale sets the number of decimal places.")));
}

/*
 * Unit prices of the lines, from the SKUs' current price; the client never
 * sends amounts.
 */
static void
snapshot_prices(OeLines *lines, Datum *prices)
{
	Datum		arg = PointerGetDatum(OeInt8Array(lines->sku_ids, lines->n));
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
			if (!price_is_payable(price))
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("SKU " INT64_FORMAT " has a price with more than %d decimal places",
								sku, OeCurrencyScale),
						 errdetail("The price is %s; no payment can match a total in fractions of the currency's smallest unit.",
								   DatumGetCString(DirectFunctionCall1(numeric_out, price))),
						 errhint("Set a payable price with set_price() (order_engine.currency_scale).")));
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

static void
check_shard_gene(int64 order_no, int64 buyer_id)
{
	if (!OeRequireShardGene)
		return;
	if (order_no % OE_SHARD_GENE_BASE != buyer_id % OeShardCount)
		ereport(ERROR,
				(errcode(ERRCODE_OE_SHARD_GENE_MISMATCH),
				 errmsg("order number " INT64_FORMAT " does not carry the shard gene of buyer " INT64_FORMAT,
						order_no, buyer_id),
				 errdetail("Its gene is " INT64_FORMAT "; the buyer's is " INT64_FORMAT ".",
						   order_no % OE_SHARD_GENE_BASE, buyer_id % OeShardCount),
				 errhint("Take the number from next_order_no(buyer_id).")));
}

/*
 * Bind the order's holds to it: every one held until at least the
 * deadline.  Fewer than the order's lines means the sweeper released one
 * between reserve's look and ours (a hold reserved earlier that had
 * expired): the stock is gone, the order cannot be placed.
 */
static void
bind_order_holds(int64 order_no, int nlines, TimestampTz deadline)
{
	Datum		values[2];
	bool		isnull;

	values[0] = Int64GetDatum(order_no);
	values[1] = TimestampTzGetDatum(deadline);
	OeQueryRun(&bind_holds, values, NULL, false, 1);
	if (DatumGetInt64(OeQueryValue(1, &isnull)) != nlines)
		ereport(ERROR,
				(errcode(ERRCODE_OE_HOLD_STATE_CONFLICT),
				 errmsg("the holds of order " INT64_FORMAT " were released", order_no),
				 errdetail("A hold reserved for this number earlier expired and was released before the order was placed."),
				 errhint("Use a new order number to hold stock again.")));
}

static Datum
place_order(FunctionCallInfo fcinfo)
{
	int64		order_no;
	int64		buyer_id;
	int64		seller_id;
	int64		pay_within_usecs;
	TimestampTz deadline;
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
	if (order_no <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("order_no must be positive")));
	CheckNotNegative(buyer_id, "buyer_id");
	CheckNotNegative(seller_id, "seller_id");
	/* one conversion for the deadline and the holds (interval_check.h) */
	pay_within_usecs = OeIntervalUsecs(PG_GETARG_INTERVAL_P(4), "pay_within",
									   OE_MAX_PAY_WITHIN_USECS, "7 days");
	parse_lines(PG_GETARG_JSONB_P(3), &lines);
	check_shard_gene(order_no, buyer_id);

	SPI_connect();
	/* placements of one number queue here (the lock reserve takes too) */
	OeStockLockOrder(order_no);

	result = replay_placement(order_no, buyer_id, seller_id, &lines);
	if (result == NULL)
	{
		snapshot_prices(&lines, prices);
		/*
		 * created_at (now()) + pay_within; the holds get at least as long
		 * (reserve counts from the clock, later than now(), and
		 * bind_order_holds extends older ones), so a payment the clock
		 * says is in time always finds them held.
		 */
		deadline = OeTimestampPlusUsecs(GetCurrentTransactionStartTimestamp(),
										pay_within_usecs);
		if (!OeStockReserve(order_no, lines.n, lines.sku_ids, lines.qtys,
							pay_within_usecs, true, buyer_id))
			result = cstring_to_text("out_of_stock");
		else
		{
			Datum		values[9];

			bind_order_holds(order_no, lines.n, deadline);
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
			values[5] = TimestampTzGetDatum(deadline);
			values[6] = PointerGetDatum(OeInt8Array(lines.sku_ids, lines.n));
			values[7] = PointerGetDatum(OeInt8Array(lines.qtys, lines.n));
			values[8] = PointerGetDatum(numeric_array(prices, lines.n));
			OeQueryRun(&insert_placement, values, NULL, false, 0);
			OeOrdersOutboxNotify();
			OeWorkerWakeAtCommit(deadline);
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
 * becomes the owner in C (internal_sql.c) without a function SET's
 * per-call cost.
 */
PG_FUNCTION_INFO_V1(oe_place_order);
Datum
oe_place_order(PG_FUNCTION_ARGS)
{
	return OeInternalCall(fcinfo, place_order);
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
	SPI_connect();
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

	SPI_connect();
	order = OeOrderLockExisting(order_no);

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
			payment_ref_conflict(payment_ref, paid_order);
		/* copied out of SPI's memory, which SPI_finish frees */
		result = SPI_datumTransfer(SPI_getbinval(tup, desc, 3, &isnull), false, -1);
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

	SPI_connect();
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
			OeOrderReturnStock(order_no);
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

	SPI_connect();
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

	SPI_connect();
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

	SPI_connect();
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
