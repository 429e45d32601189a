/*-------------------------------------------------------------------------
 *
 * stock_price.c
 *	  Reading the SKUs' unit prices (order_engine.sku.price) for an order
 *	  or a quote: OeStockUnitPrices.  set_price writes them (stock_admin.c).
 *
 * One statement for all lines, an index probe per line: a LATERAL
 * subquery with LIMIT 1 is never flattened into a join, so the kept
 * generic plan cannot become a hash join over a sequential scan of every
 * SKU (which `sku_id = ANY ($1)` and a plain join did on a catalogue of a
 * thousand SKUs: test/bench/cost.sh).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"

#include "common/arrays.h"
#include "common/internal_sql.h"
#include "stock/stock.h"

enum
{
	Anum_price_known = 1,
	Anum_price_price
};

static OeQuery select_prices = {
	"SELECT s.known, s.price"
	" FROM pg_catalog.unnest($1::pg_catalog.int8[]) WITH ORDINALITY AS u(sku_id, i)"
	" LEFT JOIN LATERAL (SELECT true AS known, k.price FROM order_engine.sku k"
	"                     WHERE k.sku_id OPERATOR(pg_catalog.=) u.sku_id LIMIT 1) s ON true"
	" ORDER BY u.i",
	1, {INT8ARRAYOID}
};

/*
 * prices[i] gets the price of sku_ids[i] (copied out of SPI's memory),
 * has_price[i] whether it has one; an unknown SKU is OE008.  Needs an SPI
 * connection.
 */
void
OeStockUnitPrices(int n, const int64 *sku_ids, Datum *prices, bool *has_price)
{
	Datum		arg = PointerGetDatum(OeInt8Array((int64 *) sku_ids, n));

	OeQueryRun(&select_prices, &arg, NULL, true, 0);
	if (SPI_processed != (uint64) n)
		elog(ERROR, "order_engine: price lookup returned " UINT64_FORMAT " rows for %d lines",
			 SPI_processed, n);
	for (int i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		bool		unknown;
		bool		isnull;
		Datum		price;

		(void) SPI_getbinval(tup, SPI_tuptable->tupdesc, Anum_price_known, &unknown);
		if (unknown)
			OeStockSkuNotFound(sku_ids[i]);
		price = SPI_getbinval(tup, SPI_tuptable->tupdesc, Anum_price_price, &isnull);
		has_price[i] = !isnull;
		prices[i] = isnull ? (Datum) 0 : SPI_datumTransfer(price, false, -1);
	}
}
