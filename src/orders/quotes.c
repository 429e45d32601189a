/*-------------------------------------------------------------------------
 *
 * quotes.c
 *	  quote(buyer_id, lines, ttl): the checkout quote (seed 000).
 *
 * When the checkout page opens, quote() freezes the unit prices of the
 * lines as they are now and returns a secret token; place_order(...,
 * quote => token) then charges those prices even if an operator changed
 * a price in between (place_order.c checks the buyer, the expiry and the
 * lines, and uses the quote once).  The lines are parsed and priced by
 * the same code place_order uses (order_lines.c); the quote's row is
 * idem/quote_store.c's, and is reaped with the checkout tokens.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "common/args.h"
#include "common/internal_sql.h"
#include "common/interval_check.h"
#include "idem/idempotency.h"
#include "orders/order_lines.h"

static Datum
quote(FunctionCallInfo fcinfo)
{
	int64		buyer_id;
	OeLines		lines;
	Datum		prices[OE_MAX_ORDER_LINES];
	TimestampTz expires_at;
	text	   *token;

	CheckNotNull(fcinfo, 0, "buyer_id");
	CheckNotNull(fcinfo, 1, "lines");
	CheckNotNull(fcinfo, 2, "ttl");
	buyer_id = PG_GETARG_INT64(0);
	CheckNotNegative(buyer_id, "buyer_id");
	OeOrderParseLines(PG_GETARG_JSONB_P(1), &lines);
	/* the ttl rule of checkout tokens: (0, 100 years] */
	expires_at = OeIntervalExpiry(PG_GETARG_INTERVAL_P(2), "ttl", OE_MAX_TTL_YEARS);

	OeSqlConnect();
	OeOrderSnapshotPrices(&lines, prices);
	token = cstring_to_text(OeQuoteStore(buyer_id, lines.n, lines.sku_ids,
										 lines.qtys, prices, expires_at));
	/* the token was built in SPI's memory, which SPI_finish frees */
	token = DatumGetTextP(SPI_datumTransfer(PointerGetDatum(token), false, -1));
	SPI_finish();
	PG_RETURN_TEXT_P(token);
}

/*
 * quote(buyer_id bigint, lines jsonb, ttl interval DEFAULT '15 minutes')
 *		RETURNS text
 *
 * Not SECURITY DEFINER, like place_order: the C code becomes the owner.
 */
PG_FUNCTION_INFO_V1(oe_quote);
Datum
oe_quote(PG_FUNCTION_ARGS)
{
	return OeInternalCall(fcinfo, quote);
}
