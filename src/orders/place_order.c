/*-------------------------------------------------------------------------
 *
 * place_order.c
 *	  place_order: one call holds every line, writes the order, its lines
 *	  with their unit prices and the "placed" event; a repeat with the
 *	  same content answers the same.
 *
 * Prices are the SKUs' current ones, or a checkout quote's (quote(),
 * quotes.c; the quote is used once, in the placement's transaction).
 * Lock order as in orders.c: the order number's advisory lock, then
 * the quote's row, then per SKU the tally and the buckets (stock/).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "common/args.h"
#include "common/arrays.h"
#include "common/direct_insert.h"
#include "common/errors.h"
#include "common/internal_sql.h"
#include "common/interval_check.h"
#include "idem/idempotency.h"
#include "ids/ids.h"
#include "orders/order_lines.h"
#include "orders/order_row.h"
#include "orders/orders.h"
#include "stock/stock.h"
#include "worker/signal.h"

/* live or archived: a number stays used after its order is archived */
enum
{
	Anum_content_buyer_id = 1,
	Anum_content_seller_id,
	Anum_content_status,
	Anum_content_sku_ids,
	Anum_content_qtys
};
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
 * The "placed" event alone by SQL, for write_placement when order_events
 * has anything (other than the CDC trigger) a direct write would not
 * honour.  created_at is given, as the direct write gives it.
 */
static OeQuery insert_placed_event = {
	"INSERT INTO order_engine.order_events (order_no, event, to_status, detail, created_at)"
	" VALUES ($1, 'placed', 'pending_payment',"
	"         pg_catalog.jsonb_build_object('pay_deadline', $2, 'total', $3),"
	"         pg_catalog.now())",
	3, {INT8OID, TIMESTAMPTZOID, NUMERICOID}
};

/*
 * What jsonb_build_object('pay_deadline', deadline, 'total', total)
 * makes: the deadline as to_json writes a timestamptz (ISO 8601 in the
 * session's time zone), the total a number (a total is never NaN or
 * infinite: prices are checked, OeOrderCheckPrice).
 */
static Datum
placed_detail(Datum deadline, Datum total)
{
	JsonbParseState *state = NULL;
	JsonbValue	v;
	char		buf[MAXDATELEN + 1];

	(void) pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	v.type = jbvString;
	v.val.string.val = "pay_deadline";
	v.val.string.len = strlen("pay_deadline");
	(void) pushJsonbValue(&state, WJB_KEY, &v);
	v.val.string.val = JsonEncodeDateTime(buf, deadline, TIMESTAMPTZOID, NULL);
	v.val.string.len = strlen(v.val.string.val);
	(void) pushJsonbValue(&state, WJB_VALUE, &v);
	v.val.string.val = "total";
	v.val.string.len = strlen("total");
	(void) pushJsonbValue(&state, WJB_KEY, &v);
	v.type = jbvNumeric;
	v.val.numeric = DatumGetNumeric(total);
	(void) pushJsonbValue(&state, WJB_VALUE, &v);
	return JsonbPGetDatum(JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL)));
}

/*
 * The "placed" event by heap and index access when order_events has
 * nothing an INSERT would honour but the CDC trigger, whose work is done
 * here where it would fire (outbox_cdc.c).  false: the caller runs SQL.
 */
static bool
write_placed_event(Datum order_no, Datum deadline, Datum total)
{
	static const char *const event_cols[] = {
		"event_id", "order_no", "event", "to_status", "detail", "created_at"
	};
	Oid			trigger = OeOutboxTriggerFunction();
	int			firing;
	OeDirectInsert *events;
	Datum		row[lengthof(event_cols)];
	bool		nulls[lengthof(event_cols)] = {false};
	int64		event_id;

	if (!OidIsValid(trigger))
		return false;
	events = OeDirectInsertBeginTriggered("order_events", lengthof(event_cols),
										  event_cols, trigger, &firing);
	if (events == NULL)
		return false;
	if (!OeDirectInsertNextFromSequence(events, "event_id", &event_id))
	{
		OeDirectInsertEnd(events);
		return false;
	}
	row[0] = Int64GetDatum(event_id);
	row[1] = order_no;
	row[2] = CStringGetTextDatum("placed");
	row[3] = CStringGetTextDatum("pending_payment");
	row[4] = placed_detail(deadline, total);
	row[5] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	OeDirectInsertRow(events, row, nulls);
	for (int i = 0; i < firing && OeOutboxEmitting(); i++)
		OeOutboxEmitRow(OeDirectInsertLastRow(events));
	OeDirectInsertEnd(events);
	return true;
}

/*
 * The placement's rows: the order, its lines and the event by heap and
 * index access (common/direct_insert.c); or by insert_placement (all
 * three) or insert_placed_event (the event) when a table has anything
 * an INSERT would honour that the direct write does not.  values are
 * insert_placement's; line_totals[i] is qty * price of line i.
 */
static void
write_placement(Datum *values, const OeLines *lines, const Datum *prices,
				const Datum *line_totals)
{
	static const char *const order_cols[] = {
		"order_no", "buyer_id", "seller_id", "status", "total", "line_count",
		"version", "created_at", "pay_deadline"
	};
	static const char *const line_cols[] = {
		"order_no", "line_no", "sku_id", "qty", "unit_price", "line_total"
	};
	OeDirectInsert *orders = OeDirectInsertBegin("orders", lengthof(order_cols), order_cols);
	OeDirectInsert *order_lines = orders ?
		OeDirectInsertBegin("order_lines", lengthof(line_cols), line_cols) : NULL;
	Datum		row[lengthof(order_cols)];
	bool		nulls[lengthof(order_cols)] = {false};
	Datum		event_args[3];

	if (order_lines == NULL)
	{
		if (orders != NULL)
			OeDirectInsertEnd(orders);
		OeQueryRun(&insert_placement, values, NULL, false, 0);
		return;
	}
	row[0] = values[0];
	row[1] = values[1];
	row[2] = values[2];
	row[3] = CStringGetTextDatum("pending_payment");
	row[4] = values[3];
	row[5] = values[4];
	row[6] = Int64GetDatum(1);
	row[7] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	row[8] = values[5];
	OeDirectInsertRow(orders, row, nulls);
	OeDirectInsertEnd(orders);
	for (int i = 0; i < lines->n; i++)
	{
		row[0] = values[0];
		row[1] = Int32GetDatum(i + 1);
		row[2] = Int64GetDatum(lines->sku_ids[i]);
		row[3] = Int64GetDatum(lines->qtys[i]);
		row[4] = prices[i];
		row[5] = line_totals[i];
		OeDirectInsertRow(order_lines, row, nulls);
	}
	OeDirectInsertEnd(order_lines);
	if (write_placed_event(values[0], values[5], values[3]))
		return;
	event_args[0] = values[0];
	event_args[1] = values[5];
	event_args[2] = values[3];
	OeQueryRun(&insert_placed_event, event_args, NULL, false, 0);
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

	/* the common case, a new number, without the query's start-up */
	if (!OeOrderNumberUsed(order_no))
		return NULL;
	OeQueryRun(&select_content, &arg, NULL, false, 1);
	if (SPI_processed == 0)
		return NULL;
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	same = DatumGetInt64(SPI_getbinval(tup, desc, Anum_content_buyer_id, &isnull)) == buyer_id &&
		DatumGetInt64(SPI_getbinval(tup, desc, Anum_content_seller_id, &isnull)) == seller_id;

	/* an order whose lines are gone has NULL arrays: other content */
	skus_d = SPI_getbinval(tup, desc, Anum_content_sku_ids, &skus_null);
	qtys_d = SPI_getbinval(tup, desc, Anum_content_qtys, &qtys_null);
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
	return cstring_to_text(TextDatumGetCString(SPI_getbinval(tup, desc, Anum_content_status, &isnull)));
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
 * The quote named by place_order's quote argument: locked, for this
 * buyer, unexpired, with exactly the lines placed (in any order).  Its
 * unit prices replace the SKUs' current ones.
 */
static void
take_quote(text *token, int64 buyer_id, const OeLines *lines, OeQuote *quote,
		   Datum *prices)
{
	if (!OeQuoteLock(token, buyer_id, quote))
		ereport(ERROR,
				(errcode(ERRCODE_OE_QUOTE_NOT_FOUND),
				 errmsg("quote not found"),
				 errdetail("No unused quote of buyer " INT64_FORMAT " has this token.", buyer_id),
				 errhint("A quote is used once, by the buyer it was made for; make a new one with quote().")));
	/* the clock placement and the holds use (transaction start) */
	if (quote->expires_at <= GetCurrentTransactionStartTimestamp())
		ereport(ERROR,
				(errcode(ERRCODE_OE_QUOTE_EXPIRED),
				 errmsg("quote expired"),
				 errdetail("It was valid until %s.", timestamptz_to_str(quote->expires_at)),
				 errhint("Show the buyer the current prices with a new quote().")));
	if (quote->n != lines->n)
		ereport(ERROR,
				(errcode(ERRCODE_OE_QUOTE_MISMATCH),
				 errmsg("the lines differ from the quote"),
				 errdetail("The quote has %d line(s), the order %d.", quote->n, lines->n),
				 errhint("Place the lines that were quoted, or make a new quote().")));
	for (int i = 0; i < lines->n; i++)
	{
		int			j;

		for (j = 0; j < quote->n; j++)
			if (quote->sku_ids[j] == lines->sku_ids[i])
				break;
		if (j == quote->n || quote->qtys[j] != lines->qtys[i])
			ereport(ERROR,
					(errcode(ERRCODE_OE_QUOTE_MISMATCH),
					 errmsg("the lines differ from the quote"),
					 j == quote->n ?
					 errdetail("SKU " INT64_FORMAT " was not quoted.", lines->sku_ids[i]) :
					 errdetail("SKU " INT64_FORMAT " was quoted with qty " INT64_FORMAT ", not " INT64_FORMAT ".",
							   lines->sku_ids[i], quote->qtys[j], lines->qtys[i]),
					 errhint("Place the lines that were quoted, or make a new quote().")));
		prices[i] = quote->unit_prices[j];
	}
}

/*
 * place_order(order_no, buyer_id, seller_id, lines, pay_within
 *			   [, quote text DEFAULT NULL])
 *
 * SQL from 0.8 on passes the sixth argument (symbol oe_place_order_v2);
 * older SQL calls oe_place_order with five.
 */
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
	bool		has_price[OE_MAX_ORDER_LINES];
	Datum		line_totals[OE_MAX_ORDER_LINES];
	Datum		total;
	text	   *result;
	text	   *quote_token = NULL;
	OeQuote		quote;
	bool		fresh_holds;

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
	OeOrderParseLines(PG_GETARG_JSONB_P(3), &lines);
	check_shard_gene(order_no, buyer_id);
	if (PG_NARGS() > 5 && !PG_ARGISNULL(5))
		quote_token = PG_GETARG_TEXT_PP(5);

	OeSqlConnect();
	/* placements of one number queue here (the lock reserve takes too) */
	OeStockLockOrder(order_no);

	/* a repeat answers as the first call did, its quote already used */
	result = replay_placement(order_no, buyer_id, seller_id, &lines);
	if (result == NULL)
	{
		OeStockPrices snapshot = {prices, has_price};
		bool		reserved;

		if (quote_token != NULL)
			take_quote(quote_token, buyer_id, &lines, &quote, prices);
		/*
		 * created_at (now()) + pay_within; the holds get at least as long
		 * (reserve counts from the clock, later than now(), and
		 * OeStockBindHolds extends older ones), so a payment the clock
		 * says is in time always finds them held.
		 */
		deadline = OeTimestampPlusUsecs(GetCurrentTransactionStartTimestamp(),
										pay_within_usecs);
		/*
		 * Without a quote the prices are the SKUs' current ones, read by
		 * the reserve's lookup from the rows it reads anyway; they are
		 * checked whatever it answers, so a SKU without a payable price
		 * is 55000 even when it is sold out, as it was when a statement
		 * of its own read them first.
		 */
		reserved = OeStockReserve(order_no, lines.n, lines.sku_ids, lines.qtys,
								  pay_within_usecs, true, buyer_id, &fresh_holds, NULL,
								  quote_token != NULL ? NULL : &snapshot);
		if (quote_token == NULL)
			OeOrderCheckPrices(&lines, prices, has_price);
		/* out_of_stock writes nothing: a quote stays for the next try */
		if (!reserved)
			result = cstring_to_text("out_of_stock");
		else
		{
			Datum		values[9];

			/* holds made by this call outlive the deadline already */
			if (!fresh_holds)
				OeStockBindHolds(order_no, lines.n, deadline);
			if (quote_token != NULL)
				OeQuoteConsume(&quote);
			total = DirectFunctionCall1(int8_numeric, Int64GetDatum(0));
			for (int i = 0; i < lines.n; i++)
			{
				line_totals[i] = DirectFunctionCall2(numeric_mul,
													 DirectFunctionCall1(int8_numeric,
																		 Int64GetDatum(lines.qtys[i])),
													 prices[i]);
				total = DirectFunctionCall2(numeric_add, total, line_totals[i]);
			}
			values[0] = Int64GetDatum(order_no);
			values[1] = Int64GetDatum(buyer_id);
			values[2] = Int64GetDatum(seller_id);
			values[3] = total;
			values[4] = Int32GetDatum(lines.n);
			values[5] = TimestampTzGetDatum(deadline);
			values[6] = PointerGetDatum(OeInt8Array(lines.sku_ids, lines.n));
			values[7] = PointerGetDatum(OeInt8Array(lines.qtys, lines.n));
			values[8] = PointerGetDatum(OeOrderPriceArray(prices, lines.n));
			write_placement(values, &lines, prices, line_totals);
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
 * per-call cost.  Two symbols, one function: a backend that still runs
 * an older library and meets 0.8's SQL finds no oe_place_order_v2 and
 * fails (42883) instead of ignoring the quote.
 */
PG_FUNCTION_INFO_V1(oe_place_order);
Datum
oe_place_order(PG_FUNCTION_ARGS)
{
	return OeInternalCall(fcinfo, place_order);
}

PG_FUNCTION_INFO_V1(oe_place_order_v2);
Datum
oe_place_order_v2(PG_FUNCTION_ARGS)
{
	return OeInternalCall(fcinfo, place_order);
}
