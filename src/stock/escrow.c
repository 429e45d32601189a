/*-------------------------------------------------------------------------
 *
 * escrow.c
 *	  Escrow SKUs in the tables: turning escrow on and off (set_escrow),
 *	  folding escrow holds into their bucket row, and moving a SKU's
 *	  available units into escrow for the counter (fold_escrow, the
 *	  worker's job).  The counter itself is escrow_counter.c.
 *
 * An escrow SKU has one bucket row.  Its escrow column holds the units
 * the counter hands out; its available column holds units that came back
 * (restock, release, refund) and that reserve takes the usual way, by a
 * conditional UPDATE, until the worker moves them into escrow.  A reserve
 * that took from the counter writes its hold with no bucket parts
 * (buckets '{}'): its units still sit in escrow.  Folding moves them to
 * held and journals the hold, as reserve would have; confirm and release
 * fold a hold first, so every other path sees ordinary holds.
 *
 * Lock order, as everywhere in stock/: holds, then bucket rows.  The fold
 * job locks neither with a wait: SKIP LOCKED on both.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/timestamp.h"

#include "common/arrays.h"
#include "common/errors.h"
#include "common/guc.h"
#include "common/internal_sql.h"
#include "common/preload.h"
#include "stock/stock.h"
#include "stock/stock_internal.h"

/*
 * Fold the named holds that are held escrow holds: their parts, and their
 * units from escrow into held.  From 1.0 the folded hold row is its own
 * journal; before, the journal got a hold row for each (sku_id order).
 */
enum
{
	Anum_fold_holds = 1,
	Anum_fold_skus,
	Anum_fold_rows
};
#define FOLD_HOLDS \
	"WITH f AS (" \
	"  UPDATE order_engine.stock_hold h" \
	"     SET buckets = ARRAY[0], bucket_qtys = ARRAY[h.qty], updated_at = pg_catalog.now()" \
	"    FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS d(order_no, sku_id)" \
	"   WHERE h.order_no OPERATOR(pg_catalog.=) d.order_no AND h.sku_id OPERATOR(pg_catalog.=) d.sku_id" \
	"     AND h.state OPERATOR(pg_catalog.=) 'held' AND h.buckets OPERATOR(pg_catalog.=) '{}'::pg_catalog.int4[]" \
	"  RETURNING h.order_no, h.sku_id, h.qty)," \
	" x AS (SELECT f.sku_id, pg_catalog.sum(f.qty)::pg_catalog.int8 AS qty FROM f GROUP BY f.sku_id)," \
	" b AS (" \
	"  UPDATE order_engine.stock_bucket sb" \
	"     SET escrow = sb.escrow OPERATOR(pg_catalog.-) x.qty, held = sb.held OPERATOR(pg_catalog.+) x.qty" \
	"    FROM x WHERE sb.sku_id OPERATOR(pg_catalog.=) x.sku_id AND sb.bucket OPERATOR(pg_catalog.=) 0" \
	"  RETURNING 1)"
static OeQuery fold_holds = {
	FOLD_HOLDS
	" SELECT (SELECT pg_catalog.count(*) FROM f), (SELECT pg_catalog.count(*) FROM x),"
	"        (SELECT pg_catalog.count(*) FROM b)",
	2, {INT8ARRAYOID, INT8ARRAYOID}
};
static OeQuery fold_holds_journaled = {
	FOLD_HOLDS ","
	" j AS ("
	"  INSERT INTO order_engine.stock_movement (sku_id, kind, d_available, d_held, d_sold, order_no)"
	"  SELECT f.sku_id, 'hold', OPERATOR(pg_catalog.-) f.qty, f.qty, 0, f.order_no FROM f"
	"   ORDER BY f.sku_id, f.order_no"
	"  RETURNING 1)"
	" SELECT (SELECT pg_catalog.count(*) FROM j), (SELECT pg_catalog.count(*) FROM x),"
	"        (SELECT pg_catalog.count(*) FROM b)",
	2, {INT8ARRAYOID, INT8ARRAYOID}
};

/*
 * Fold those of the named holds (locked by the caller, and their bucket
 * rows free to lock in the caller's order) that are unfolded escrow
 * holds.  Returns how many it folded.  Caller is connected to SPI.
 */
int64
OeStockFoldHolds(const int64 *order_nos, const int64 *sku_ids, int n)
{
	Datum		v[2];
	bool		isnull;
	int64		holds,
				skus,
				rows;

	if (n <= 0 || !OeColumnExists("stock_bucket", "escrow"))
		return 0;
	v[0] = PointerGetDatum(OeInt8Array(order_nos, n));
	v[1] = PointerGetDatum(OeInt8Array(sku_ids, n));
	OeQueryRun(OeStockJournalsHolds() ? &fold_holds_journaled : &fold_holds, v, NULL, false, 1);
	holds = DatumGetInt64(OeQueryValue(Anum_fold_holds, &isnull));
	skus = DatumGetInt64(OeQueryValue(Anum_fold_skus, &isnull));
	rows = DatumGetInt64(OeQueryValue(Anum_fold_rows, &isnull));
	if (rows != skus)
		elog(ERROR, "order_engine: " INT64_FORMAT " escrow bucket rows for " INT64_FORMAT " SKUs of folded holds",
			 rows, skus);
	return holds;
}

/* units taken from the counter leave escrow: sold ($3 = qty) or written off ($3 = 0) */
static OeQuery escrow_units_out = {
	"UPDATE order_engine.stock_bucket SET escrow = escrow OPERATOR(pg_catalog.-) $2,"
	"  sold = sold OPERATOR(pg_catalog.+) $3"
	" WHERE sku_id OPERATOR(pg_catalog.=) $1 AND bucket OPERATOR(pg_catalog.=) 0",
	3, {INT8OID, INT8OID, INT8OID}
};

/*
 * Take qty units of escrow SKU sku_id from its counter and out of its
 * bucket row's escrow for good: as a sale (try_deduct) or a write-off
 * (restock with a negative delta).  false when the counter has not got
 * them.  The caller journals the movement.
 */
bool
OeStockTakeEscrowUnits(int64 sku_id, int64 qty, bool as_sale)
{
	Datum		v[3];

	if (!OeEscrowTake(sku_id, qty))
		return false;
	v[0] = Int64GetDatum(sku_id);
	v[1] = Int64GetDatum(qty);
	v[2] = Int64GetDatum(as_sale ? qty : 0);
	OeQueryRun(&escrow_units_out, v, NULL, false, 0);
	if (SPI_processed != 1)
		elog(ERROR, "order_engine: escrow SKU " INT64_FORMAT " has no bucket row", sku_id);
	return true;
}

/* ---- the fold job ---- */

static OeQuery escrow_skus = {
	"SELECT s.sku_id FROM order_engine.sku s WHERE s.escrow ORDER BY s.sku_id",
	0, {0}
};

/* the oldest unfolded holds of a SKU created before $3 (stock_hold_unfolded) */
static OeQuery select_unfolded = {
	"SELECT h.order_no, h.sku_id FROM order_engine.stock_hold h"
	" WHERE h.sku_id OPERATOR(pg_catalog.=) $1 AND h.state OPERATOR(pg_catalog.=) 'held'"
	"   AND h.buckets OPERATOR(pg_catalog.=) '{}'::pg_catalog.int4[]"
	"   AND h.created_at OPERATOR(pg_catalog.<=) $3"
	" ORDER BY h.sku_id, h.created_at LIMIT $2 FOR UPDATE SKIP LOCKED",
	3, {INT8OID, INT4OID, TIMESTAMPTZOID}
};

static OeQuery lock_escrow_row_nowait = {
	"SELECT b.available FROM order_engine.stock_bucket b"
	" WHERE b.sku_id OPERATOR(pg_catalog.=) $1 AND b.bucket OPERATOR(pg_catalog.=) 0"
	" FOR UPDATE SKIP LOCKED",
	1, {INT8OID}
};

static OeQuery lock_escrow_row = {
	"SELECT b.available FROM order_engine.stock_bucket b"
	" WHERE b.sku_id OPERATOR(pg_catalog.=) $1 AND b.bucket OPERATOR(pg_catalog.=) 0"
	" FOR UPDATE",
	1, {INT8OID}
};

/* qty units of available -> escrow on the SKU's bucket row, locked by the caller */
static OeQuery move_to_escrow = {
	"UPDATE order_engine.stock_bucket b"
	"   SET escrow = b.escrow OPERATOR(pg_catalog.+) $2, available = b.available OPERATOR(pg_catalog.-) $2"
	" WHERE b.sku_id OPERATOR(pg_catalog.=) $1 AND b.bucket OPERATOR(pg_catalog.=) 0",
	2, {INT8OID, INT8OID}
};

static OeQuery ensure_escrow_row = {
	"INSERT INTO order_engine.stock_bucket (sku_id, bucket) VALUES ($1, 0)"
	" ON CONFLICT (sku_id, bucket) DO NOTHING",
	1, {INT8OID}
};

/*
 * Move the available units the lock statement just read (the row is
 * locked) into escrow; the counter gets them when the transaction
 * commits (grant), if it exists by then.
 */
static void
move_available_to_escrow(int64 sku_id, bool grant)
{
	bool		isnull;
	int64		available = DatumGetInt64(OeQueryValue(1, &isnull));
	Datum		v[2];

	if (isnull || available <= 0)
		return;
	v[0] = Int64GetDatum(sku_id);
	v[1] = Int64GetDatum(available);
	OeQueryRun(&move_to_escrow, v, NULL, false, 0);
	if (grant)
		OeEscrowGrantAtCommit(sku_id, available);
}

/* the holds (order_no first) the last statement selected, of sku_id, as two arrays */
static int
holds_of_result(int64 sku_id, int64 **orders, int64 **skus)
{
	int			n = (int) SPI_processed;
	bool		isnull;

	*orders = palloc(sizeof(int64) * Max(n, 1));
	*skus = palloc(sizeof(int64) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		(*orders)[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		(*skus)[i] = sku_id;
	}
	return n;
}

/* fold up to max_rows unfolded holds created by created_before of one SKU, and refill its escrow */
static int64
fold_sku(int64 sku_id, int32 max_rows, TimestampTz created_before)
{
	Datum		v[3];
	int64	   *orders;
	int64	   *skus;
	int			n;
	int64		folded = 0;

	v[0] = Int64GetDatum(sku_id);
	v[1] = Int32GetDatum(max_rows);
	v[2] = TimestampTzGetDatum(created_before);
	OeQueryRun(&select_unfolded, v, NULL, false, 0);
	n = holds_of_result(sku_id, &orders, &skus);
	/* the bucket row after the holds; a busy one waits for the next round */
	OeQueryRun(&lock_escrow_row_nowait, v, NULL, false, 1);
	if (SPI_processed == 0)
		return 0;
	move_available_to_escrow(sku_id, true);
	if (n > 0)
		folded = OeStockFoldHolds(orders, skus, n);
	return folded;
}

/*
 * One batch of the fold job: rebuild this database's counters (all, or
 * with only_starved those that refused a take), then per escrow SKU fold
 * up to max_rows holds at least older_than_usecs old and move its
 * available units into escrow.  Returns the holds folded.  In the
 * caller's transaction.
 *
 * The worker folds only holds older than order_engine.escrow_fold_after:
 * most holds end sooner, and confirm, release and expiry fold them then,
 * so folding every hold at once wrote each escrow hold twice more (the
 * fold's lock and update, and the journal row): as much again as the
 * reserve saved.  The SQL function folds every hold.
 */
int64
OeEscrowFold(int32 max_rows, int64 older_than_usecs, bool only_starved)
{
	TimestampTz created_before = GetCurrentTransactionStartTimestamp() - older_than_usecs;

	int64	   *skus;
	int			nskus;
	int64		folded = 0;
	bool		isnull;

	if (!OeColumnExists("sku", "escrow"))
		return 0;
	OeSqlConnect();
	/* heal counters that fell below what the tables allow (escrow_counter.c) */
	OeEscrowRebuildAll(only_starved);
	OeQueryRun(&escrow_skus, NULL, NULL, false, 0);
	nskus = (int) SPI_processed;
	skus = palloc(sizeof(int64) * Max(nskus, 1));
	for (int i = 0; i < nskus; i++)
		skus[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
	for (int i = 0; i < nskus && folded < max_rows; i++)
		folded += fold_sku(skus[i], (int32) (max_rows - folded), created_before);
	SPI_finish();
	return folded;
}

/* ---- set_escrow ---- */

static OeQuery lock_skus = {
	"LOCK TABLE order_engine.sku IN ACCESS EXCLUSIVE MODE", 0, {0}
};

static OeQuery sku_lock = {
	"SELECT s.nbuckets, s.escrow FROM order_engine.sku s"
	" WHERE s.sku_id OPERATOR(pg_catalog.=) $1 FOR NO KEY UPDATE",
	1, {INT8OID}
};

static OeQuery count_escrow_skus = {
	"SELECT pg_catalog.count(*) FROM order_engine.sku s WHERE s.escrow", 0, {0}
};

static OeQuery all_unfolded = {
	"SELECT h.order_no, h.sku_id FROM order_engine.stock_hold h"
	" WHERE h.sku_id OPERATOR(pg_catalog.=) $1 AND h.state OPERATOR(pg_catalog.=) 'held'"
	"   AND h.buckets OPERATOR(pg_catalog.=) '{}'::pg_catalog.int4[]"
	" ORDER BY h.order_no FOR UPDATE",
	1, {INT8OID}
};

static OeQuery escrow_to_available = {
	"UPDATE order_engine.stock_bucket b"
	"   SET available = b.available OPERATOR(pg_catalog.+) b.escrow, escrow = 0"
	" WHERE b.sku_id OPERATOR(pg_catalog.=) $1 AND b.escrow OPERATOR(pg_catalog.>) 0",
	1, {INT8OID}
};

static OeQuery sku_set_escrow = {
	"UPDATE order_engine.sku SET escrow = $2, updated_at = pg_catalog.now()"
	" WHERE sku_id OPERATOR(pg_catalog.=) $1",
	2, {INT8OID, BOOLOID}
};

/*
 * Turn escrow on or off for a SKU.  The ACCESS EXCLUSIVE lock on sku
 * waits for every stock call that read the SKU table (reserve's lookup
 * keeps its lock until the transaction ends) and holds new ones back, so
 * no take is in flight while the counter is forgotten, and every later
 * reserve sees the new setting.  A short stall of every stock call, like
 * set_purchase_limit: set escrow before a sale opens.
 */
void
OeStockSetEscrow(int64 sku_id, bool enabled)
{
	Datum		v[2];
	bool		isnull;
	int32		nbuckets;
	bool		was;

	if (enabled)
		OeRequirePreload();
	OeSqlConnect();
	OeQueryRun(&lock_skus, NULL, NULL, false, 0);
	v[0] = Int64GetDatum(sku_id);
	v[1] = BoolGetDatum(enabled);
	OeQueryRun(&sku_lock, v, NULL, false, 1);
	if (SPI_processed == 0)
		OeStockSkuNotFound(sku_id);
	nbuckets = DatumGetInt32(OeQueryValue(1, &isnull));
	was = DatumGetBool(OeQueryValue(2, &isnull));
	if (was == enabled)
	{
		SPI_finish();
		return;
	}
	if (enabled)
	{
		int64		count;

		if (nbuckets != 1)
			ereport(ERROR,
					(errcode(ERRCODE_OE_ESCROW_CONFLICT),
					 errmsg("SKU " INT64_FORMAT " is spread over %d buckets", sku_id, nbuckets),
					 errdetail("An escrow SKU keeps its stock in one bucket row."),
					 errhint("Call set_buckets(" INT64_FORMAT ", 1) first.", sku_id)));
		OeQueryRun(&count_escrow_skus, NULL, NULL, false, 1);
		count = DatumGetInt64(OeQueryValue(1, &isnull));
		if (count >= OeEscrowSkus)
			ereport(ERROR,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("this database has %d escrow SKUs already", (int) count),
					 errdetail("order_engine.escrow_skus is %d.", OeEscrowSkus),
					 errhint("Raise order_engine.escrow_skus (a restart), or turn escrow off for another SKU.")));
		OeQueryRun(&ensure_escrow_row, v, NULL, false, 0);
		OeQueryRun(&lock_escrow_row, v, NULL, false, 1);
		/* no counter yet: the first take builds it from the committed tables */
		move_available_to_escrow(sku_id, false);
	}
	else
	{
		int			n;
		int64	   *orders;
		int64	   *skus;

		OeQueryRun(&all_unfolded, v, NULL, false, 0);
		n = holds_of_result(sku_id, &orders, &skus);
		OeQueryRun(&lock_escrow_row, v, NULL, false, 0);
		(void) OeStockFoldHolds(orders, skus, n);
		OeQueryRun(&escrow_to_available, v, NULL, false, 0);
	}
	OeQueryRun(&sku_set_escrow, v, NULL, false, 0);
	/* under the lock no take is in flight; a rollback leaves a counter to rebuild */
	OeEscrowForget(sku_id);
	SPI_finish();
}
