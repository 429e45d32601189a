/*-------------------------------------------------------------------------
 *
 * stock_rows.c
 *	  The column readers the files of stock/ use on SPI results.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"

#include "stock/stock_rows.h"

bool
StockColIsNull(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;

	(void) SPI_getbinval(tup, desc, col, &isnull);
	return isnull;
}

Datum
StockCol(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	if (isnull)
		elog(ERROR, "order_engine: unexpected null in column %d", col);
	return d;
}
