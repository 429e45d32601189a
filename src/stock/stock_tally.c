/*-------------------------------------------------------------------------
 *
 * stock_tally.c
 *	  order_engine.purchase_tally: units a buyer holds or bought of a SKU
 *	  that has a purchase limit (set_purchase_limit rebuilds a SKU's rows,
 *	  stock_admin.c).  Adding is the limit's check: a conditional upsert
 *	  that locks the (sku, buyer) row, so two sessions of one buyer are
 *	  counted one after the other.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"

#include "common/errors.h"
#include "common/internal_sql.h"
#include "stock/stock_internal.h"

/* the purchase limit: the conditional upsert is both lock and check */
static SPIPlanPtr plan_tally_add;
static const char sql_tally_add[] =
"INSERT INTO order_engine.purchase_tally AS t (sku_id, buyer_id, units)"
" VALUES ($1, $2, $3)"
" ON CONFLICT (sku_id, buyer_id) DO UPDATE SET units = t.units OPERATOR(pg_catalog.+) excluded.units"
"  WHERE $4::pg_catalog.int8 IS NULL"
"   OR (t.units OPERATOR(pg_catalog.+) excluded.units) OPERATOR(pg_catalog.<=) $4"
" RETURNING t.units";

static SPIPlanPtr plan_tally_sub;
static const char sql_tally_sub[] =
"UPDATE order_engine.purchase_tally SET units = units OPERATOR(pg_catalog.-) $3"
" WHERE sku_id OPERATOR(pg_catalog.=) $1 AND buyer_id OPERATOR(pg_catalog.=) $2";

/* give qty units back to the buyer's tally (a released hold, a reserve undone) */
void
OeStockTallySub(int64 sku_id, int64 buyer_id, int64 qty)
{
	static const Oid types[] = {INT8OID, INT8OID, INT8OID};
	Datum		v[3];

	v[0] = Int64GetDatum(sku_id);
	v[1] = Int64GetDatum(buyer_id);
	v[2] = Int64GetDatum(qty);
	OeExecPlan(OeCachedPlan(&plan_tally_sub, sql_tally_sub, 3, types), v, NULL, false, 0);
}

/*
 * Count qty against the buyer's purchase limit, or raise
 * PURCHASE_LIMIT_EXCEEDED.  The upsert locks the (sku, buyer) tally row,
 * so two sessions of one buyer are counted one after the other.
 */
void
OeStockTallyAdd(int64 sku_id, int64 buyer_id, int64 qty, bool has_limit, int64 limit)
{
	static const Oid types[] = {INT8OID, INT8OID, INT8OID, INT8OID};
	Datum		v[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};

	if (has_limit && qty > limit)
		ereport(ERROR,
				(errcode(ERRCODE_OE_PURCHASE_LIMIT_EXCEEDED),
				 errmsg("purchase limit of SKU " INT64_FORMAT " exceeded", sku_id),
				 errdetail("Buyer " INT64_FORMAT " asks for " INT64_FORMAT " units; the limit is " INT64_FORMAT " per buyer.",
						   buyer_id, qty, limit)));
	v[0] = Int64GetDatum(sku_id);
	v[1] = Int64GetDatum(buyer_id);
	v[2] = Int64GetDatum(qty);
	v[3] = Int64GetDatum(limit);
	if (!has_limit)
		nulls[3] = 'n';
	OeExecPlan(OeCachedPlan(&plan_tally_add, sql_tally_add, 4, types), v, nulls, false, 0);
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_OE_PURCHASE_LIMIT_EXCEEDED),
				 errmsg("purchase limit of SKU " INT64_FORMAT " exceeded", sku_id),
				 errdetail("Buyer " INT64_FORMAT " already holds or bought units of this SKU; " INT64_FORMAT " more would pass the limit of " INT64_FORMAT ".",
						   buyer_id, qty, limit)));
}
