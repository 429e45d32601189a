/*-------------------------------------------------------------------------
 *
 * stock_price.c
 *	  Reading the SKUs' unit prices (order_engine.sku.price) for an order
 *	  or a quote: OeStockUnitPrices.  set_price writes them (stock_admin.c).
 *
 * One probe of sku's primary key per line, under the snapshot a statement
 * run now would take (OeStatementSnapshot), as stock_look.c reads the
 * same rows for the reserve.  It was one SPI statement for all lines (a
 * LATERAL probe per line, so the kept generic plan could not turn into a
 * hash join over every SKU), and its executor start-up cost ten times the
 * probes (test/bench/cost.sh).  No permission is checked: the prices go
 * into the order's lines, written by the owner role.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "common/direct_access.h"
#include "stock/stock.h"

void
OeStockUnitPrices(int n, const int64 *sku_ids, Datum *prices, bool *has_price)
{
	Oid			relid = OeSchemaRelid("sku");
	Oid			pkey = OeSchemaRelid("sku_pkey");
	Relation	rel;
	AttrNumber	price_att;
	Snapshot	snap;

	if (!OidIsValid(relid) || !OidIsValid(pkey))
		elog(ERROR, "order_engine: table \"sku\" or its primary key is missing");
	rel = table_open(relid, AccessShareLock);
	price_att = OeRelationColumn(rel, "price");
	if (price_att == InvalidAttrNumber)
		elog(ERROR, "order_engine: table \"sku\" has no column \"price\"");
	snap = OeStatementSnapshot();
	for (int i = 0; i < n; i++)
	{
		ScanKeyData skey;
		SysScanDesc scan;
		HeapTuple	tup;
		bool		isnull = true;
		Datum		price = (Datum) 0;
		bool		known;

		/* heap attribute 1, sku_id, is the key's column */
		ScanKeyInit(&skey, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(sku_ids[i]));
		scan = OeIndexProbeBegin(rel, pkey, snap, 1, &skey);
		tup = systable_getnext(scan);
		known = HeapTupleIsValid(tup);
		if (known)
		{
			price = heap_getattr(tup, price_att, RelationGetDescr(rel), &isnull);
			/* out of the buffer, detoasted, before the scan lets go of it */
			if (!isnull)
				price = PointerGetDatum(PG_DETOAST_DATUM_COPY(price));
		}
		systable_endscan(scan);
		if (!known)
		{
			UnregisterSnapshot(snap);
			OeStockSkuNotFound(sku_ids[i]);
		}
		has_price[i] = !isnull;
		prices[i] = price;
	}
	UnregisterSnapshot(snap);
	table_close(rel, NoLock);
}
