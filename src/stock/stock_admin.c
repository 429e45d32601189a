/*-------------------------------------------------------------------------
 *
 * stock_admin.c
 *	  The SKU catalogue and the shape of its stock: restock/write-off,
 *	  price, purchase limit, and spreading stock over bucket rows.
 *
 * restock and set_buckets share one routine, rebalance(): it locks the SKU
 * row and then every bucket row in bucket order (the order reserve's slow
 * path uses), adds the delta to the total available and writes the total
 * back spread evenly over the SKU's buckets.  Moving units between buckets
 * of one SKU changes none of its figures, so only the delta is journaled.
 * Bucket rows past the new count keep the held units their holds point at
 * (confirm and release return to the same row) and are deleted once they
 * hold nothing; their sold count moves to bucket 0.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/int.h"
#include "executor/spi.h"
#include "utils/builtins.h"

#include "common/errors.h"
#include "common/internal_sql.h"
#include "common/order_engine.h"
#include "stock/stock.h"
#include "stock/stock_internal.h"

static SPIPlanPtr plan_sku_create;
static const char sql_sku_create[] =
"INSERT INTO order_engine.sku (sku_id) VALUES ($1) ON CONFLICT (sku_id) DO NOTHING";

/*
 * FOR NO KEY UPDATE, not FOR UPDATE: restocks of one SKU still wait for
 * each other, but a statement that updates a bucket row its own
 * transaction already changed (the escrow fold, escrow.c) runs the
 * foreign key's check, FOR KEY SHARE of this row, while it holds the
 * bucket row; FOR UPDATE made that wait for a restock waiting for the
 * bucket row: a deadlock (test/chaos.sh, 40P01 in restock and the fold;
 * isolation escrow_restock_vs_fold).
 */
static SPIPlanPtr plan_sku_lock;
static const char sql_sku_lock[] =
"SELECT nbuckets FROM order_engine.sku WHERE sku_id OPERATOR(pg_catalog.=) $1 FOR NO KEY UPDATE";

static SPIPlanPtr plan_buckets_ensure;
static const char sql_buckets_ensure[] =
"INSERT INTO order_engine.stock_bucket (sku_id, bucket)"
" SELECT $1, g FROM pg_catalog.generate_series(0, $2 OPERATOR(pg_catalog.-) 1) AS g"
" ON CONFLICT (sku_id, bucket) DO NOTHING";

static SPIPlanPtr plan_buckets_lock;
enum
{
	Anum_bucket_bucket = 1,
	Anum_bucket_available,
	Anum_bucket_held,
	Anum_bucket_sold
};
static const char sql_buckets_lock[] =
"SELECT bucket, available, held, sold FROM order_engine.stock_bucket"
" WHERE sku_id OPERATOR(pg_catalog.=) $1 ORDER BY bucket FOR UPDATE";

static SPIPlanPtr plan_bucket_set;
static const char sql_bucket_set[] =
"UPDATE order_engine.stock_bucket SET available = available OPERATOR(pg_catalog.+) $3,"
"  sold = sold OPERATOR(pg_catalog.+) $4"
" WHERE sku_id OPERATOR(pg_catalog.=) $1 AND bucket OPERATOR(pg_catalog.=) $2";

static SPIPlanPtr plan_buckets_trim;
static const char sql_buckets_trim[] =
"DELETE FROM order_engine.stock_bucket"
" WHERE sku_id OPERATOR(pg_catalog.=) $1 AND bucket OPERATOR(pg_catalog.>=) $2"
"  AND held OPERATOR(pg_catalog.=) 0 AND available OPERATOR(pg_catalog.=) 0"
"  AND sold OPERATOR(pg_catalog.=) 0";

static SPIPlanPtr plan_sku_set_n;
static const char sql_sku_set_n[] =
"UPDATE order_engine.sku SET nbuckets = $2, updated_at = pg_catalog.now()"
" WHERE sku_id OPERATOR(pg_catalog.=) $1";

static SPIPlanPtr plan_journal;
static const char sql_journal[] =
"INSERT INTO order_engine.stock_movement (sku_id, kind, d_available, d_held, d_sold, reason)"
" VALUES ($1, $2, $3, 0, 0, $4)";

/* is the SKU escrow (0.9)?  Run after sql_sku_lock, so it is locked */
static SPIPlanPtr plan_sku_escrow;
static const char sql_sku_escrow[] =
"SELECT escrow FROM order_engine.sku WHERE sku_id OPERATOR(pg_catalog.=) $1";

static SPIPlanPtr plan_set_price;
static const char sql_set_price[] =
"INSERT INTO order_engine.sku AS s (sku_id, price) VALUES ($1, $2)"
" ON CONFLICT (sku_id) DO UPDATE SET price = excluded.price, updated_at = pg_catalog.now()";

static SPIPlanPtr plan_set_limit;
static const char sql_set_limit[] =
"UPDATE order_engine.sku SET purchase_limit = $2, updated_at = pg_catalog.now()"
" WHERE sku_id OPERATOR(pg_catalog.=) $1";

typedef struct BucketRow
{
	int32		bucket;
	int64		available;
	int64		held;
	int64		sold;
} BucketRow;

/* is the (locked) SKU an escrow SKU?  false on tables older than 0.9 */
static bool
sku_is_escrow(int64 sku_id)
{
	static const Oid types[] = {INT8OID};
	Datum		v[1] = {Int64GetDatum(sku_id)};
	bool		isnull;
	bool		escrow;

	if (!OeColumnExists("sku", "escrow"))
		return false;
	OeExecPlan(OeCachedPlan(&plan_sku_escrow, sql_sku_escrow, 1, types), v, NULL, false, 1);
	escrow = SPI_processed == 1 &&
		DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) && !isnull;
	SPI_freetuptable(SPI_tuptable);
	return escrow;
}

/*
 * Add delta to the SKU's available stock and spread it over nbuckets rows
 * (nbuckets 0: keep the SKU's current count).  Returns the new available.
 * An escrow SKU keeps one bucket row, and what a write-off finds short on
 * it comes from its escrow counter.
 */
static int64
rebalance(int64 sku_id, int64 delta, int32 nbuckets, const char *reason)
{
	Datum		v[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	BucketRow  *rows;
	int			nrows,
				i;
	bool		escrow;
	int64		available = 0,
				total = 0,
				moved_sold = 0,
				new_available,
				share,
				extra;

	v[0] = Int64GetDatum(sku_id);
	if (delta > 0)
	{
		static const Oid types[] = {INT8OID};

		OeExecPlan(OeCachedPlan(&plan_sku_create, sql_sku_create, 1, types), v, NULL, false, 0);
	}
	{
		static const Oid types[] = {INT8OID};

		OeExecPlan(OeCachedPlan(&plan_sku_lock, sql_sku_lock, 1, types), v, NULL, false, 0);
		if (SPI_processed == 0)
			OeStockSkuNotFound(sku_id);
		if (nbuckets == 0)
		{
			bool		isnull;

			nbuckets = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
												   SPI_tuptable->tupdesc, 1, &isnull));
		}
		SPI_freetuptable(SPI_tuptable);
	}
	escrow = sku_is_escrow(sku_id);
	if (escrow && nbuckets != 1)
		ereport(ERROR,
				(errcode(ERRCODE_OE_ESCROW_CONFLICT),
				 errmsg("SKU " INT64_FORMAT " is an escrow SKU", sku_id),
				 errdetail("An escrow SKU keeps its stock in one bucket row."),
				 errhint("Call set_escrow(" INT64_FORMAT ", false) first.", sku_id)));
	{
		static const Oid types[] = {INT8OID, INT4OID};

		v[1] = Int32GetDatum(nbuckets);
		OeExecPlan(OeCachedPlan(&plan_buckets_ensure, sql_buckets_ensure, 2, types), v, NULL, false, 0);
	}
	{
		static const Oid types[] = {INT8OID};

		OeExecPlan(OeCachedPlan(&plan_buckets_lock, sql_buckets_lock, 1, types), v, NULL, false, 0);
	}
	nrows = (int) SPI_processed;
	rows = palloc(sizeof(BucketRow) * Max(nrows, 1));
	for (i = 0; i < nrows; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		rows[i].bucket = DatumGetInt32(SPI_getbinval(tup, desc, Anum_bucket_bucket, &isnull));
		rows[i].available = DatumGetInt64(SPI_getbinval(tup, desc, Anum_bucket_available, &isnull));
		rows[i].held = DatumGetInt64(SPI_getbinval(tup, desc, Anum_bucket_held, &isnull));
		rows[i].sold = DatumGetInt64(SPI_getbinval(tup, desc, Anum_bucket_sold, &isnull));
		/* every restock kept available + held + sold within bigint */
		available += rows[i].available;
		total += rows[i].available + rows[i].held + rows[i].sold;
		if (rows[i].bucket >= nbuckets && rows[i].held == 0)
			moved_sold += rows[i].sold;
	}
	SPI_freetuptable(SPI_tuptable);

	if (delta > 0 && pg_add_s64_overflow(total, delta, &new_available))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("restock of SKU " INT64_FORMAT " would overflow bigint", sku_id),
				 errdetail("The SKU's available, held and sold units already sum to " INT64_FORMAT ".", total)));
	new_available = available + delta;
	/* what the row's available lacks comes from the escrow counter */
	if (new_available < 0 && escrow && OeStockTakeEscrowUnits(sku_id, -new_available, false))
		new_available = 0;
	if (new_available < 0)
		ereport(ERROR,
				(errcode(ERRCODE_OE_INSUFFICIENT_STOCK),
				 errmsg("cannot write off " INT64_FORMAT " units of SKU " INT64_FORMAT, -delta, sku_id),
				 errdetail("Only " INT64_FORMAT " units are available.", available),
				 errhint("Held units are released or sold first; write-offs only take available stock.")));

	share = new_available / nbuckets;
	extra = new_available % nbuckets;
	for (i = 0; i < nrows; i++)
	{
		static const Oid types[] = {INT8OID, INT4OID, INT8OID, INT8OID};
		BucketRow  *r = &rows[i];
		int64		target = 0,
					ds = 0;

		if (r->bucket < nbuckets)
			target = share + (r->bucket < extra ? 1 : 0);
		if (r->bucket == 0)
			ds = moved_sold;
		else if (r->bucket >= nbuckets && r->held == 0)
			ds = -r->sold;
		if (target == r->available && ds == 0)
			continue;
		v[1] = Int32GetDatum(r->bucket);
		v[2] = Int64GetDatum(target - r->available);
		v[3] = Int64GetDatum(ds);
		OeExecPlan(OeCachedPlan(&plan_bucket_set, sql_bucket_set, 4, types), v, NULL, false, 0);
	}
	{
		static const Oid types[] = {INT8OID, INT4OID};

		v[1] = Int32GetDatum(nbuckets);
		OeExecPlan(OeCachedPlan(&plan_buckets_trim, sql_buckets_trim, 2, types), v, NULL, false, 0);
		OeExecPlan(OeCachedPlan(&plan_sku_set_n, sql_sku_set_n, 2, types), v, NULL, false, 0);
	}
	if (delta != 0)
	{
		static const Oid types[] = {INT8OID, TEXTOID, INT8OID, TEXTOID};

		v[1] = CStringGetTextDatum(delta > 0 ? "restock" : "write_off");
		v[2] = Int64GetDatum(delta);
		if (reason)
			v[3] = CStringGetTextDatum(reason);
		else
			nulls[3] = 'n';
		OeExecPlan(OeCachedPlan(&plan_journal, sql_journal, 4, types), v, nulls, false, 0);
	}
	return new_available;
}

/*
 * Add (delta > 0) or write off (delta < 0) stock; returns the new
 * available.  The first positive delta creates the SKU.
 */
int64
OeStockRestock(int64 sku_id, int64 delta, const char *reason)
{
	int64		result;

	OeSqlConnect();
	result = rebalance(sku_id, delta, 0, reason);
	SPI_finish();
	return result;
}

void
OeStockSetBuckets(int64 sku_id, int32 nbuckets)
{
	OeSqlConnect();
	(void) rebalance(sku_id, 0, nbuckets, NULL);
	SPI_finish();
}

/* set the price, creating the SKU (without stock) if it is new */
void
OeStockSetPrice(int64 sku_id, Datum price)
{
	static const Oid types[] = {INT8OID, NUMERICOID};
	Datum		v[2];

	OeSqlConnect();
	v[0] = Int64GetDatum(sku_id);
	v[1] = price;
	OeExecPlan(OeCachedPlan(&plan_set_price, sql_set_price, 2, types), v, NULL, false, 0);
	SPI_finish();
}

/*
 * Purchase tallies exist only for SKUs with a limit: reserve skips the
 * upsert for the others (READ COMMITTED; see stock.c).  So setting a limit
 * rebuilds the SKU's tallies from its held and confirmed holds, and
 * removing it drops them, and neither may race with a reserve that read
 * the old limit.  The ACCESS EXCLUSIVE lock on sku waits for every
 * transaction that read the table (reserve's lookup keeps its ACCESS
 * SHARE lock until it ends) and holds new readers back until this
 * transaction ends; their lookups, run after the lock, see the new limit
 * (isolation stock_limit_set_during_reserve).  A short stall of every
 * stock call: set limits before a sale opens.
 */
static SPIPlanPtr plan_lock_skus;
static const char sql_lock_skus[] =
"LOCK TABLE order_engine.sku IN ACCESS EXCLUSIVE MODE";

static SPIPlanPtr plan_tally_drop;
static const char sql_tally_drop[] =
"DELETE FROM order_engine.purchase_tally WHERE sku_id OPERATOR(pg_catalog.=) $1";

static SPIPlanPtr plan_tally_rebuild;
static const char sql_tally_rebuild[] =
"INSERT INTO order_engine.purchase_tally (sku_id, buyer_id, units)"
" SELECT h.sku_id, h.buyer_id, pg_catalog.sum(h.qty)::pg_catalog.int8"
"   FROM order_engine.stock_hold h"
"  WHERE h.sku_id OPERATOR(pg_catalog.=) $1 AND h.buyer_id IS NOT NULL"
"    AND h.state OPERATOR(pg_catalog.=) ANY (ARRAY['held', 'confirmed'])"
"  GROUP BY h.sku_id, h.buyer_id";

void
OeStockSetPurchaseLimit(int64 sku_id, bool has_limit, int64 per_buyer)
{
	static const Oid types[] = {INT8OID, INT8OID};
	Datum		v[2];
	char		nulls[2] = {' ', ' '};

	OeSqlConnect();
	OeExecPlan(OeCachedPlan(&plan_lock_skus, sql_lock_skus, 0, NULL), NULL, NULL, false, 0);
	v[0] = Int64GetDatum(sku_id);
	v[1] = Int64GetDatum(per_buyer);
	if (!has_limit)
		nulls[1] = 'n';
	OeExecPlan(OeCachedPlan(&plan_set_limit, sql_set_limit, 2, types), v, nulls, false, 0);
	if (SPI_processed == 0)
		OeStockSkuNotFound(sku_id);
	OeExecPlan(OeCachedPlan(&plan_tally_drop, sql_tally_drop, 1, types), v, NULL, false, 0);
	if (has_limit)
		OeExecPlan(OeCachedPlan(&plan_tally_rebuild, sql_tally_rebuild, 1, types), v, NULL, false, 0);
	SPI_finish();
}
