/*-------------------------------------------------------------------------
 *
 * stock_internal.h
 *	  What the files of stock/ share among themselves and nobody else
 *	  uses: the row shapes of a hold and of its bucket parts, the column
 *	  readers of an SPI result, and the bucket and tally primitives.
 *
 *	  stock.c			reserve (holds an order's lines); the purchase tally
 *	  stock_hold.c		the order lock; confirm, release, expired holds
 *	  stock_take.c		taking units from bucket rows; try_deduct
 *
 *-------------------------------------------------------------------------
 */
#ifndef ORDER_ENGINE_STOCK_INTERNAL_H
#define ORDER_ENGINE_STOCK_INTERNAL_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "executor/spi.h"

/* one part of a hold or of a sale: units taken from one bucket row */
typedef struct StockPart
{
	int32		bucket;
	int64		qty;
} StockPart;

/* a hold row as read from stock_hold */
typedef struct StockHold
{
	int64		order_no;
	int64		sku_id;
	int64		qty;
	char	   *state;
	TimestampTz expires_at;
	bool		has_buyer;
	int64		buyer_id;
	int			nparts;
	StockPart  *parts;
} StockHold;

static inline bool
StockColIsNull(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;

	(void) SPI_getbinval(tup, desc, col, &isnull);
	return isnull;
}

/* a column that the statement never returns null */
static inline Datum
StockCol(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	if (isnull)
		elog(ERROR, "order_engine: unexpected null in column %d", col);
	return d;
}

/* stock_take.c: bucket rows */
extern void OeStockMoveBucket(int64 sku_id, int32 bucket, int64 da, int64 dh,
							  int64 ds);
extern bool OeStockTake(int64 sku_id, int64 qty, int32 nbuckets, bool to_held,
						StockPart **parts, int *nparts);

/* stock.c: the buyer's purchase tally */
extern void OeStockTallySub(int64 sku_id, int64 buyer_id, int64 qty);

#endif							/* ORDER_ENGINE_STOCK_INTERNAL_H */
