/*-------------------------------------------------------------------------
 *
 * stock_internal.h
 *	  What the files of stock/ share among themselves and nobody else
 *	  uses: the bucket and tally primitives, and (stock_rows.h) the row
 *	  shapes of a hold and of its bucket parts and the column readers.
 *
 *	  stock.c			reserve (holds an order's lines)
 *	  stock_hold.c		confirm, release, due holds, binding a placed order's
 *	  stock_journal.c	where a hold's journal lives (1.0: its row)
 *	  stock_take.c		taking units from bucket rows; try_deduct
 *	  stock_tally.c		the purchase tally
 *	  order_lock.c		the order number's lock
 *	  stock_look.c		the unlocked reads a reserve starts with
 *	  bucket_row.c		a bucket row's conditional delta by heap access
 *	  escrow.c			escrow SKUs in the tables: set_escrow, folding holds
 *	  escrow_counter.c	the escrow SKUs' shared-memory counters
 *
 *-------------------------------------------------------------------------
 */
#ifndef ORDER_ENGINE_STOCK_INTERNAL_H
#define ORDER_ENGINE_STOCK_INTERNAL_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "executor/spi.h"

#include "stock/stock.h"
#include "stock/stock_rows.h"

/* stock_take.c: bucket rows */
extern void OeStockMoveBucket(int64 sku_id, int32 bucket, int64 da, int64 dh,
							  int64 ds);
extern bool OeStockTake(int64 sku_id, int64 qty, int32 nbuckets, bool to_held,
						ItemPointer bucket_tid, StockPart **parts, int *nparts);

/*
 * bucket_row.c: if bucket row (sku_id, bucket) has available >=
 * min_available, add (da, dh, ds) to (available, held, sold), as the
 * conditional UPDATE would: 1 done, 0 no such row or too little, -1 the
 * table needs the UPDATE statement.  tid (NULL, or maybe invalid) is
 * where an earlier read of this transaction found the row: looked at
 * first, instead of the primary key, when it still holds the version
 * the statement sees.
 */
extern int	OeStockBucketRowAdd(int64 sku_id, int32 bucket, int64 min_available,
								int64 da, int64 dh, int64 ds, ItemPointer tid);

/* stock_journal.c: does this schema (before 1.0) journal each hold's changes? */
extern bool OeStockJournalsHolds(void);

/* stock_tally.c: the buyer's purchase tally (SKUs with a limit) */
extern void OeStockTallyAdd(int64 sku_id, int64 buyer_id, int64 qty,
							bool has_limit, int64 limit);
extern void OeStockTallySub(int64 sku_id, int64 buyer_id, int64 qty);

/*
 * escrow_counter.c: take units of an escrow SKU for this transaction (false:
 * not enough, or no counter); give a take back at once; add units the
 * transaction moved into escrow when it commits; rebuild this database's
 * counters; forget one (set_escrow)
 */
extern bool OeEscrowTake(int64 sku_id, int64 qty);
extern void OeEscrowGiveBack(int64 sku_id, int64 qty);
extern void OeEscrowGrantAtCommit(int64 sku_id, int64 qty);
extern void OeEscrowRebuildAll(bool only_starved);
extern void OeEscrowForget(int64 sku_id);

/*
 * escrow.c: fold the named holds that are unfolded escrow holds; take
 * units from the counter out of escrow for good (a sale or a write-off)
 */
extern int64 OeStockFoldHolds(const int64 *order_nos, const int64 *sku_ids, int n);
extern bool OeStockTakeEscrowUnits(int64 sku_id, int64 qty, bool as_sale);

/* stock_look.c: one line of reserve's lookup (sku_id in, the rest out) */
typedef struct StockLook
{
	int64		sku_id;
	bool		known;			/* the SKU exists */
	bool		has_limit;
	int64		limit;			/* purchase_limit, if has_limit */
	int32		nbuckets;		/* 1 for an unknown SKU */
	int64		available;		/* MVCC sum over the buckets, unlocked,
								 * escrow included (an upper bound) */
	bool		escrow;			/* an escrow SKU (sku.escrow) */
	int64		row_available;	/* the buckets' available alone */
	bool		hold_exists;	/* this order holds this SKU */
	int64		hold_qty;
	char	   *hold_state;
	bool		hold_has_buyer;
	int64		hold_buyer_id;
	bool		has_price;		/* read only when OeStockLook is given a */
	Datum		price;			/* price_cxt: sku.price, copied there */
	ItemPointerData bucket_tid; /* the SKU's bucket row, when it has one */
} StockLook;

/*
 * stock_look.c: fill looks (sorted by sku_id, distinct) under the snapshot
 * an SPI statement would use; returns how many holds the order has.  A
 * valid peek (OeStockPeekShort's, of this call) stands for its SKU's
 * bucket rows: read an instant earlier, as a statement before this one
 * would have read them.  With a price_cxt it also copies each SKU's price
 * there, from the row it reads anyway (place_order's prices).
 */
extern int64 OeStockLook(int64 order_no, StockLook *looks, int n,
						 const OeStockPeek *peek, MemoryContext price_cxt);
/* stock_look.c: the look of sku_id in looks (sorted by sku_id), or NULL */
extern StockLook *OeStockLookFind(StockLook *looks, int n, int64 sku_id);

#endif							/* ORDER_ENGINE_STOCK_INTERNAL_H */
