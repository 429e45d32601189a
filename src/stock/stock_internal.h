/*-------------------------------------------------------------------------
 *
 * stock_internal.h
 *	  What the files of stock/ share among themselves and nobody else
 *	  uses: the bucket and tally primitives, and (stock_rows.h) the row
 *	  shapes of a hold and of its bucket parts and the column readers.
 *
 *	  stock.c			reserve (holds an order's lines)
 *	  stock_hold.c		confirm, release, due holds, binding a placed order's
 *	  stock_take.c		taking units from bucket rows; try_deduct
 *	  stock_tally.c		the purchase tally
 *	  order_lock.c		the order number's lock
 *
 *-------------------------------------------------------------------------
 */
#ifndef ORDER_ENGINE_STOCK_INTERNAL_H
#define ORDER_ENGINE_STOCK_INTERNAL_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "executor/spi.h"

#include "stock/stock_rows.h"

/* stock_take.c: bucket rows */
extern void OeStockMoveBucket(int64 sku_id, int32 bucket, int64 da, int64 dh,
							  int64 ds);
extern bool OeStockTake(int64 sku_id, int64 qty, int32 nbuckets, bool to_held,
						StockPart **parts, int *nparts);

/* stock_tally.c: the buyer's purchase tally (SKUs with a limit) */
extern void OeStockTallyAdd(int64 sku_id, int64 buyer_id, int64 qty,
							bool has_limit, int64 limit);
extern void OeStockTallySub(int64 sku_id, int64 buyer_id, int64 qty);

#endif							/* ORDER_ENGINE_STOCK_INTERNAL_H */
