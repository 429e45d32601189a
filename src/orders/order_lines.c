/*-------------------------------------------------------------------------
 *
 * order_lines.c
 *	  The lines of an order or a quote: the one parser of the API's
 *	  "lines" jsonb, and the unit prices of the lines (read by stock's
 *	  OeStockUnitPrices; the client never sends amounts), which must be
 *	  payable.
 *
 * place_order (place_order.c) and quote (quotes.c) share both, so a quote
 * and the order placed from it agree on what a line is and on which
 * prices are payable.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "common/arrays.h"
#include "common/internal_sql.h"
#include "orders/order_lines.h"
#include "stock/stock.h"

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

/* see order_lines.h */
void
OeOrderParseLines(Jsonb *lines, OeLines *out)
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


ArrayType *
OeOrderPriceArray(const Datum *values, int n)
{
	return construct_array((Datum *) values, n, NUMERICOID, -1, false, TYPALIGN_INT);
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
 * The SKUs' prices of the lines (has_price[i]: line i's SKU has one) must
 * all be payable: 55000 otherwise.
 */
void
OeOrderCheckPrices(const OeLines *lines, const Datum *prices, const bool *has_price)
{
	for (int i = 0; i < lines->n; i++)
	{
		if (!has_price[i])
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("SKU " INT64_FORMAT " has no price", lines->sku_ids[i]),
					 errhint("Set one with set_price().")));
		if (!price_is_payable(prices[i]))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("SKU " INT64_FORMAT " has a price with more than %d decimal places",
							lines->sku_ids[i], OeCurrencyScale),
					 errdetail("The price is %s; no payment can match a total in fractions of the currency's smallest unit.",
							   DatumGetCString(DirectFunctionCall1(numeric_out, prices[i]))),
					 errhint("Set a payable price with set_price() (order_engine.currency_scale).")));
	}
}

/*
 * Unit prices of the lines, from the SKUs' current price; the client never
 * sends amounts.
 */
void
OeOrderSnapshotPrices(const OeLines *lines, Datum *prices)
{
	bool		has_price[OE_MAX_ORDER_LINES];

	OeStockUnitPrices(lines->n, lines->sku_ids, prices, has_price);
	OeOrderCheckPrices(lines, prices, has_price);
}
