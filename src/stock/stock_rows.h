/*-------------------------------------------------------------------------
 *
 * stock/stock_rows.h
 *	  Private to stock/: the row shapes of a hold and of its bucket parts,
 *	  and the column readers of an SPI result (stock_rows.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef ORDER_ENGINE_STOCK_ROWS_H
#define ORDER_ENGINE_STOCK_ROWS_H

#include "postgres.h"

#include "access/htup.h"
#include "access/tupdesc.h"
#include "datatype/timestamp.h"

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

/* is column col of the row null? */
extern bool StockColIsNull(HeapTuple tup, TupleDesc desc, int col);

/* a column that the statement never returns null (ERROR otherwise) */
extern Datum StockCol(HeapTuple tup, TupleDesc desc, int col);

#endif							/* ORDER_ENGINE_STOCK_ROWS_H */
