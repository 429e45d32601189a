/*-------------------------------------------------------------------------
 *
 * stock.c
 *	  Reserve: hold every line of an order or none, and the buyer's
 *	  purchase tally that a hold counts against.  The rules below are the
 *	  whole stock subsystem's; stock_take.c takes the units from the
 *	  bucket rows and stock_hold.c ends holds (confirm, release, expiry).
 *
 * The rules (docs/stock.md):
 *	- Stock is only ever changed by a conditional delta on a stock_bucket
 *	  row, so it cannot go below zero; every change is journaled.
 *	- A sold-out SKU answers from an unlocked MVCC read of its buckets
 *	  before any row is touched, so a "no" never queues on a row lock.
 *	- A bucketed SKU is taken from a bucket nobody holds locked (SKIP
 *	  LOCKED), else from several unlocked ones, else after waiting for one;
 *	  only when none of that works do we lock every bucket that has stock,
 *	  in bucket order, and serve from several (OeStockTake, stock_take.c).
 *	- One call locks in a fixed order: the order (advisory lock), then per
 *	  SKU in ascending sku_id the buyer's purchase tally, then bucket rows in
 *	  ascending bucket.  confirm/release/the worker follow the same order,
 *	  so two callers never deadlock each other.
 *	- reserve is all-or-nothing without a subtransaction: lines already
 *	  taken when a later one comes up short are given back by the reverse
 *	  delta on the rows we still hold locked, and nothing is journaled.
 *	- An escrow SKU (escrow.c) is taken from its shared-memory counter and
 *	  locks no row; its hold has no bucket parts until the worker folds it.
 *	  When the counter is short, the units its bucket row has available
 *	  (restocked or released since the worker last moved them into
 *	  escrow) are taken the usual way.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "common/arrays.h"
#include "common/direct_insert.h"
#include "common/errors.h"
#include "common/interval_check.h"
#include "common/order_engine.h"
#include "stock/stock.h"
#include "stock/stock_internal.h"
#include "worker/signal.h"

/* one line of a reserve, in sku_id order, with what the lookup found */
typedef struct ReserveLine
{
	int64		sku_id;
	int64		qty;
	bool		known;
	bool		has_limit;
	int64		limit;
	int32		nbuckets;
	int64		available;		/* MVCC sum over the buckets, unlocked */
	bool		escrow;			/* an escrow SKU */
	int64		row_available;	/* its bucket row's available, unlocked */
	bool		escrowed;		/* taken from the escrow counter */
	bool		tallied;
	int			nparts;
	StockPart  *parts;
	ItemPointerData bucket_tid; /* where the lookup saw its one bucket row */
} ReserveLine;

/*
 * A hold row.  From 1.0 it is the hold's journal (OeStockJournalsHolds);
 * before, a hold got a journal row too (sql_hold_insert_journaled), an
 * escrow hold when it is folded (escrow.c).
 */
static SPIPlanPtr plan_hold_insert;
static const char sql_hold_insert[] =
"INSERT INTO order_engine.stock_hold"
"   (order_no, sku_id, qty, state, expires_at, buyer_id, buckets, bucket_qtys)"
"   VALUES ($1, $2, $3, 'held', $4, $5, $6, $7)";

static SPIPlanPtr plan_hold_insert_journaled;
static const char sql_hold_insert_journaled[] =
"WITH h AS (INSERT INTO order_engine.stock_hold"
"   (order_no, sku_id, qty, state, expires_at, buyer_id, buckets, bucket_qtys)"
"   VALUES ($1, $2, $3, 'held', $4, $5, $6, $7) RETURNING 1)"
" INSERT INTO order_engine.stock_movement (sku_id, kind, d_available, d_held, d_sold, order_no)"
" SELECT $2, 'hold', OPERATOR(pg_catalog.-) $3, $3, 0, $1 FROM h";

/* a hold's parts as stock_hold stores them: buckets int4[], bucket_qtys int8[] */
static void
parts_arrays(const StockPart *parts, int n, Datum *buckets, Datum *qtys)
{
	int32	   *b = palloc(sizeof(int32) * Max(n, 1));
	int64	   *q = palloc(sizeof(int64) * Max(n, 1));

	for (int i = 0; i < n; i++)
	{
		b[i] = parts[i].bucket;
		q[i] = parts[i].qty;
	}
	*buckets = PointerGetDatum(OeInt4Array(b, n));
	*qtys = PointerGetDatum(OeInt8Array(q, n));
}

static int
line_cmp(const void *a, const void *b)
{
	int64		x = ((const ReserveLine *) a)->sku_id;
	int64		y = ((const ReserveLine *) b)->sku_id;

	return (x > y) - (x < y);
}

/*
 * The hold rows of a call (and before 1.0 their journal rows) by SQL,
 * line by line: when a table has what the direct insert does not do
 * (insert_holds).
 */
static void
insert_holds_sql(int64 order_no, ReserveLine *lines, int nlines,
				 TimestampTz expires_at, bool has_buyer, int64 buyer_id)
{
	bool		journaled = OeStockJournalsHolds();

	for (int i = 0; i < nlines; i++)
	{
		static const Oid types[] = {INT8OID, INT8OID, INT8OID, TIMESTAMPTZOID,
		INT8OID, INT4ARRAYOID, INT8ARRAYOID};
		Datum		v[7];
		char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};

		v[0] = Int64GetDatum(order_no);
		v[1] = Int64GetDatum(lines[i].sku_id);
		v[2] = Int64GetDatum(lines[i].qty);
		v[3] = TimestampTzGetDatum(expires_at);
		v[4] = Int64GetDatum(buyer_id);
		if (!has_buyer)
			nulls[4] = 'n';
		parts_arrays(lines[i].parts, lines[i].nparts, &v[5], &v[6]);
		if (lines[i].escrowed || !journaled)
			OeExecPlan(OeCachedPlan(&plan_hold_insert, sql_hold_insert, 7, types),
					   v, nulls, false, 0);
		else
			OeExecPlan(OeCachedPlan(&plan_hold_insert_journaled, sql_hold_insert_journaled, 7, types),
					   v, nulls, false, 0);
	}
}

/*
 * The hold rows of a call (and before 1.0 one journal row per hold), by
 * heap and index access (common/direct_insert.c): the INSERTs' executor
 * start-up was a third of a one-line reserve.  created_at is now(), as
 * the column defaults say.
 */
static void
insert_holds(int64 order_no, ReserveLine *lines, int nlines,
			 TimestampTz expires_at, bool has_buyer, int64 buyer_id)
{
	static const char *const hold_cols[] = {"order_no", "sku_id", "qty", "state",
		"expires_at", "buyer_id", "buckets", "bucket_qtys", "created_at", "updated_at"};
	static const char *const move_cols[] = {"movement_id", "sku_id", "kind",
		"d_available", "d_held", "d_sold", "order_no", "created_at"};
	OeDirectInsert *holds = OeDirectInsertBegin("stock_hold", lengthof(hold_cols), hold_cols);
	OeDirectInsert *moves = NULL;
	bool		journaled = false;
	Datum		now = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	Datum		held = CStringGetTextDatum("held");

	/* before 1.0; an escrow hold is journaled when it is folded (escrow.c) */
	if (OeStockJournalsHolds())
		for (int i = 0; i < nlines; i++)
			journaled |= !lines[i].escrowed;
	if (holds && journaled)
		moves = OeDirectInsertBegin("stock_movement", lengthof(move_cols), move_cols);
	if (holds == NULL || (journaled && moves == NULL))
	{
		if (holds)
			OeDirectInsertEnd(holds);
		insert_holds_sql(order_no, lines, nlines, expires_at, has_buyer, buyer_id);
		return;
	}
	for (int i = 0; i < nlines; i++)
	{
		Datum		hv[lengthof(hold_cols)];
		bool		hn[lengthof(hold_cols)] = {false};

		hv[0] = Int64GetDatum(order_no);
		hv[1] = Int64GetDatum(lines[i].sku_id);
		hv[2] = Int64GetDatum(lines[i].qty);
		hv[3] = held;
		hv[4] = TimestampTzGetDatum(expires_at);
		hv[5] = Int64GetDatum(buyer_id);
		hn[5] = !has_buyer;
		parts_arrays(lines[i].parts, lines[i].nparts, &hv[6], &hv[7]);
		hv[8] = now;
		hv[9] = now;
		OeDirectInsertRow(holds, hv, hn);
	}
	for (int i = 0; moves && i < nlines; i++)
	{
		Datum		mv[lengthof(move_cols)];
		bool		mn[lengthof(move_cols)] = {false};

		if (lines[i].escrowed)
			continue;
		mv[0] = Int64GetDatum(OeDirectInsertNextIdentity(moves, "movement_id"));
		mv[1] = Int64GetDatum(lines[i].sku_id);
		mv[2] = CStringGetTextDatum("hold");
		mv[3] = Int64GetDatum(-lines[i].qty);
		mv[4] = Int64GetDatum(lines[i].qty);
		mv[5] = Int64GetDatum(0);
		mv[6] = Int64GetDatum(order_no);
		mv[7] = now;
		OeDirectInsertRow(moves, mv, mn);
	}
	if (moves)
		OeDirectInsertEnd(moves);
	OeDirectInsertEnd(holds);
}

/*
 * reserve's lookup (stock_look.c): per line the SKU, its unlocked
 * availability and any hold of this order; returns how many holds the
 * order has in all.  The hold columns (and the prices, with a price_cxt)
 * go to looks.
 */
static int64
reserve_lookup(int64 order_no, ReserveLine *lines, int nlines, StockLook **looks,
			   const OeStockPeek *peek, MemoryContext price_cxt)
{
	int64		order_holds;

	*looks = palloc0(sizeof(StockLook) * nlines);
	for (int i = 0; i < nlines; i++)
		(*looks)[i].sku_id = lines[i].sku_id;
	order_holds = OeStockLook(order_no, *looks, nlines, peek, price_cxt);
	for (int i = 0; i < nlines; i++)
	{
		ReserveLine *l = &lines[i];
		StockLook  *k = &(*looks)[i];

		l->known = k->known;
		l->has_limit = k->has_limit;
		l->limit = k->limit;
		l->nbuckets = k->nbuckets;
		l->available = k->available;
		l->escrow = k->escrow;
		l->row_available = k->row_available;
		l->bucket_tid = k->bucket_tid;
	}
	return order_holds;
}

/*
 * Take one line's units: an escrow SKU's from its counter, else from its
 * bucket rows (OeStockTake).  false: not enough.
 */
static bool
take_line(ReserveLine *l)
{
	if (!l->escrow)
		return OeStockTake(l->sku_id, l->qty, l->nbuckets, true, &l->bucket_tid,
						   &l->parts, &l->nparts);
	if (OeEscrowTake(l->sku_id, l->qty))
	{
		l->escrowed = true;
		l->nparts = 0;
		return true;
	}
	/* units restocked or released since the worker last moved them */
	if (l->row_available < l->qty)
		return false;
	if (OeStockTake(l->sku_id, l->qty, l->nbuckets, true, &l->bucket_tid,
					&l->parts, &l->nparts))
		return true;
	/* the worker moved them into escrow while we waited for the row */
	if (OeEscrowTake(l->sku_id, l->qty))
	{
		l->escrowed = true;
		l->nparts = 0;
		return true;
	}
	return false;
}

/*
 * The lookup's prices in the caller's line order (looks is in sku_id
 * order); a SKU the lookup did not find has none.
 */
static void
hand_over_prices(const int64 *sku_ids, int nlines, StockLook *looks,
				 OeStockPrices *prices)
{
	for (int i = 0; i < nlines; i++)
	{
		const StockLook *k = OeStockLookFind(looks, nlines, sku_ids[i]);

		prices->has_price[i] = k != NULL && k->has_price;
		prices->values[i] = prices->has_price[i] ? k->price : (Datum) 0;
	}
}

/*
 * Hold every line of an order or none.  Lines must have been checked
 * (OeStockCheckLines).  true: all held (or held by an earlier identical
 * call); false: some SKU has not enough available, nothing changed.
 * With prices, the SKUs' prices as the lookup read them, in the caller's
 * memory (stock.h).
 */
bool
OeStockReserve(int64 order_no, int nlines, const int64 *sku_ids,
			   const int64 *qtys, int64 ttl_usecs, bool has_buyer, int64 buyer_id,
			   bool *created, const OeStockPeek *peek, OeStockPrices *prices)
{
	MemoryContext caller_cxt = CurrentMemoryContext;
	ReserveLine *lines;
	StockLook  *looks;
	bool		result = true;
	int64		order_holds;
	TimestampTz expires_at;
	int			i,
				done;

	if (created)
		*created = false;
	/*
	 * The number's lock first (place_order holds it already): the lookup
	 * then runs after it, sees what an identical call committed before it,
	 * and needs no second look.  It is this number's lock only, so a "no"
	 * still never queues behind another order's call.
	 */
	OeStockLockOrder(order_no);

	OeSqlConnect();

	lines = palloc0(sizeof(ReserveLine) * nlines);
	for (i = 0; i < nlines; i++)
	{
		lines[i].sku_id = sku_ids[i];
		lines[i].qty = qtys[i];
	}
	qsort(lines, nlines, sizeof(ReserveLine), line_cmp);

	order_holds = reserve_lookup(order_no, lines, nlines, &looks, peek,
								 prices ? caller_cxt : NULL);
	if (prices)
		hand_over_prices(sku_ids, nlines, looks, prices);
	if (order_holds > 0)
	{
		/* a repeat: it must be the same order, and still held */
		for (i = 0; i < nlines; i++)
		{
			StockLook  *k = &looks[i];

			if (!k->hold_exists || k->hold_qty != lines[i].qty ||
				k->hold_has_buyer != has_buyer || (has_buyer && k->hold_buyer_id != buyer_id))
				break;
		}
		if (i < nlines || order_holds != nlines)
			ereport(ERROR,
					(errcode(ERRCODE_OE_ORDER_CONFLICT),
					 errmsg("order " INT64_FORMAT " already holds other stock", order_no),
					 errdetail("A repeated reserve must name the same SKUs, quantities and buyer as the first one."),
					 errhint("Use a new order number for a different order.")));
		for (i = 0; i < nlines; i++)
			if (strcmp(looks[i].hold_state, "released") == 0)
				ereport(ERROR,
						(errcode(ERRCODE_OE_HOLD_STATE_CONFLICT),
						 errmsg("the holds of order " INT64_FORMAT " were released", order_no),
						 errdetail("The hold on SKU " INT64_FORMAT " was released or expired.", lines[i].sku_id),
						 errhint("Use a new order number to hold stock again.")));
		goto out;
	}
	for (i = 0; i < nlines; i++)
		if (!lines[i].known)
			OeStockSkuNotFound(lines[i].sku_id);
	/* sold out as of our snapshot: answer without touching a row */
	for (i = 0; i < nlines; i++)
		if (lines[i].available < lines[i].qty)
		{
			result = false;
			goto out;
		}

	for (done = 0; done < nlines; done++)
	{
		ReserveLine *l = &lines[done];

		/*
		 * Only a SKU with a purchase limit has tallies (stock_admin.c:
		 * set_purchase_limit rebuilds them, locking reserve's lookups
		 * out).  A transaction snapshot may predate a new limit, so
		 * REPEATABLE READ and SERIALIZABLE count every SKU, as before.
		 */
		if (has_buyer && (l->has_limit || IsolationUsesXactSnapshot()))
		{
			OeStockTallyAdd(l->sku_id, buyer_id, l->qty, l->has_limit, l->limit);
			l->tallied = true;
		}
		if (!take_line(l))
			break;
	}
	if (done < nlines)
	{
		/* give back what we took; we still hold those rows locked */
		for (i = 0; i <= done; i++)
		{
			ReserveLine *l = &lines[i];
			int			k;

			if (l->tallied)
				OeStockTallySub(l->sku_id, buyer_id, l->qty);
			if (i == done)
				break;
			if (l->escrowed)
				OeEscrowGiveBack(l->sku_id, l->qty);
			for (k = 0; k < l->nparts; k++)
				OeStockMoveBucket(l->sku_id, l->parts[k].bucket, l->parts[k].qty, -l->parts[k].qty, 0);
		}
		result = false;
		goto out;
	}

	expires_at = OeTimestampPlusUsecs(GetCurrentTimestamp(), ttl_usecs);
	insert_holds(order_no, lines, nlines, expires_at, has_buyer, buyer_id);
	if (created)
		*created = true;
	/* the worker releases these holds at expires_at: wake it if sooner */
	OeWorkerWakeAtCommit(expires_at);

out:
	SPI_finish();
	return result;
}
