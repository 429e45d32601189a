/*-------------------------------------------------------------------------
 *
 * stock_return.c
 *	  A sale given back: the confirmed holds of a paid order that its buyer
 *	  cancels before shipment go back to available (OeStockReturnSold,
 *	  called by orders/orders.c).
 *
 * It follows stock.c's rules and lock order: the order number's advisory
 * lock, then per SKU in sku_id order the buyer's tally row, then bucket
 * rows in bucket order; every unit is journaled (stock_movement kind
 * "return"), and the hold, confirmed until now, ends released, so
 * stock_audit's sums still hold.  A SKU without a purchase limit has no
 * tally row, and the tally statement changes nothing there.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"

#include "common/internal_sql.h"
#include "stock/stock.h"

enum
{
	Anum_confirmed_sku_id = 1,
	Anum_confirmed_qty,
	Anum_confirmed_buyer_id
};
static OeQuery select_confirmed_holds = {
	"SELECT sku_id, qty, buyer_id FROM order_engine.stock_hold"
	" WHERE order_no OPERATOR(pg_catalog.=) $1 AND state OPERATOR(pg_catalog.=) 'confirmed'"
	" ORDER BY sku_id FOR UPDATE",
	1, {INT8OID}
};

static OeQuery return_tally = {
	"UPDATE order_engine.purchase_tally SET units = units OPERATOR(pg_catalog.-) $3"
	" WHERE sku_id OPERATOR(pg_catalog.=) $1 AND buyer_id OPERATOR(pg_catalog.=) $2",
	3, {INT8OID, INT8OID, INT8OID}
};

/* sold units may sit in any bucket (set_buckets moves them to bucket 0) */
enum
{
	Anum_sold_bucket = 1,
	Anum_sold_sold
};
static OeQuery lock_sold_buckets = {
	"SELECT bucket, sold FROM order_engine.stock_bucket"
	" WHERE sku_id OPERATOR(pg_catalog.=) $1 AND sold OPERATOR(pg_catalog.>) 0"
	" ORDER BY bucket FOR UPDATE",
	1, {INT8OID}
};

static OeQuery return_bucket = {
	"UPDATE order_engine.stock_bucket"
	"   SET available = available OPERATOR(pg_catalog.+) $3, sold = sold OPERATOR(pg_catalog.-) $3"
	" WHERE sku_id OPERATOR(pg_catalog.=) $1 AND bucket OPERATOR(pg_catalog.=) $2",
	3, {INT8OID, INT4OID, INT8OID}
};

static OeQuery return_hold = {
	"WITH h AS (UPDATE order_engine.stock_hold SET state = 'released', updated_at = pg_catalog.now()"
	"   WHERE order_no OPERATOR(pg_catalog.=) $1 AND sku_id OPERATOR(pg_catalog.=) $2"
	"     AND state OPERATOR(pg_catalog.=) 'confirmed' RETURNING 1)"
	" INSERT INTO order_engine.stock_movement (sku_id, kind, d_available, d_held, d_sold, order_no)"
	" SELECT $2, 'return', $3, 0, OPERATOR(pg_catalog.-) $3, $1 FROM h",
	3, {INT8OID, INT8OID, INT8OID}
};

/*
 * The confirmed holds of a paid order go back to available, and the
 * buyer's tally gives the units back.  The caller holds the order row.
 */
void
OeStockReturnSold(int64 order_no)
{
	Datum		arg = Int64GetDatum(order_no);
	uint64		nholds;
	int64	   *skus,
			   *qtys,
			   *buyers;
	bool	   *nobuyer;

	OeSqlConnect();
	OeStockLockOrder(order_no);
	OeQueryRun(&select_confirmed_holds, &arg, NULL, false, 0);
	nholds = SPI_processed;
	skus = palloc(sizeof(int64) * Max(nholds, 1));
	qtys = palloc(sizeof(int64) * Max(nholds, 1));
	buyers = palloc(sizeof(int64) * Max(nholds, 1));
	nobuyer = palloc(sizeof(bool) * Max(nholds, 1));
	for (uint64 i = 0; i < nholds; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		skus[i] = DatumGetInt64(SPI_getbinval(tup, desc, Anum_confirmed_sku_id, &isnull));
		qtys[i] = DatumGetInt64(SPI_getbinval(tup, desc, Anum_confirmed_qty, &isnull));
		buyers[i] = DatumGetInt64(SPI_getbinval(tup, desc, Anum_confirmed_buyer_id, &nobuyer[i]));
	}

	for (uint64 i = 0; i < nholds; i++)
	{
		Datum		v[3];
		int64		remaining = qtys[i];
		uint64		nbuckets;
		int32	   *buckets;
		int64	   *sold;

		if (!nobuyer[i])
		{
			v[0] = Int64GetDatum(skus[i]);
			v[1] = Int64GetDatum(buyers[i]);
			v[2] = Int64GetDatum(qtys[i]);
			OeQueryRun(&return_tally, v, NULL, false, 0);
		}

		v[0] = Int64GetDatum(skus[i]);
		OeQueryRun(&lock_sold_buckets, v, NULL, false, 0);
		nbuckets = SPI_processed;
		buckets = palloc(sizeof(int32) * Max(nbuckets, 1));
		sold = palloc(sizeof(int64) * Max(nbuckets, 1));
		for (uint64 k = 0; k < nbuckets; k++)
		{
			bool		isnull;

			buckets[k] = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[k],
													 SPI_tuptable->tupdesc, Anum_sold_bucket, &isnull));
			sold[k] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[k],
												  SPI_tuptable->tupdesc, Anum_sold_sold, &isnull));
		}
		for (uint64 k = 0; k < nbuckets && remaining > 0; k++)
		{
			int64		q = Min(sold[k], remaining);

			v[1] = Int32GetDatum(buckets[k]);
			v[2] = Int64GetDatum(q);
			OeQueryRun(&return_bucket, v, NULL, false, 0);
			remaining -= q;
		}
		if (remaining > 0)
			elog(ERROR, "order_engine: SKU " INT64_FORMAT " has fewer sold units than order " INT64_FORMAT " bought",
				 skus[i], order_no);

		v[0] = Int64GetDatum(order_no);
		v[1] = Int64GetDatum(skus[i]);
		v[2] = Int64GetDatum(qtys[i]);
		OeQueryRun(&return_hold, v, NULL, false, 0);
		if (SPI_processed != 1)
			elog(ERROR, "order_engine: hold of order " INT64_FORMAT " on SKU " INT64_FORMAT " changed under its lock",
				 order_no, skus[i]);
	}
	SPI_finish();
}
