/*-------------------------------------------------------------------------
 *
 * orders/order_lines.h
 *	  Private to orders/: the lines of an order or a quote, parsed from
 *	  the API's jsonb, and their unit prices from the SKUs (order_lines.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef ORDER_ENGINE_ORDER_LINES_H
#define ORDER_ENGINE_ORDER_LINES_H

#include "postgres.h"

#include "utils/array.h"
#include "utils/jsonb.h"

#include "orders/orders.h"

typedef struct OeLines
{
	int			n;
	int64		sku_ids[OE_MAX_ORDER_LINES];
	int64		qtys[OE_MAX_ORDER_LINES];
} OeLines;

/*
 * lines must be a non-empty array of at most OE_MAX_ORDER_LINES objects
 * {"sku_id": n, "qty": n} with positive integers, each SKU once (22023).
 */
extern void OeOrderParseLines(Jsonb *lines, OeLines *out);

/*
 * The SKUs' current unit prices, one per line (OE008 for an unknown SKU,
 * 55000 for one without a payable price).  Needs an SPI connection; the
 * prices are copied into the caller's memory context.
 */
extern void OeOrderSnapshotPrices(const OeLines *lines, Datum *prices);
/* the same rules over prices read elsewhere (OeStockReserve's lookup) */
extern void OeOrderCheckPrices(const OeLines *lines, const Datum *prices,
							   const bool *has_price);

/* a numeric[] of n prices */
extern ArrayType *OeOrderPriceArray(const Datum *prices, int n);


#endif							/* ORDER_ENGINE_ORDER_LINES_H */
