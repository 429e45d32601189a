/*-------------------------------------------------------------------------
 *
 * stock_errors.c
 *	  The errors that several files of stock/ raise alike, in one place
 *	  below them all: "SKU does not exist" (OE008).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/errors.h"
#include "stock/stock.h"

/* the one "SKU does not exist" of the stock API (OE008) */
void
OeStockSkuNotFound(int64 sku_id)
{
	ereport(ERROR,
			(errcode(ERRCODE_OE_SKU_NOT_FOUND),
			 errmsg("SKU " INT64_FORMAT " does not exist", sku_id),
			 errhint("A SKU is created by its first restock.")));
}
