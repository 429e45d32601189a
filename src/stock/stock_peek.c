/*-------------------------------------------------------------------------
 *
 * stock_peek.c
 *	  The cheap "no" of a reserve: a one-line order on a SKU that is sold
 *	  out, answered by two index probes instead of SPI.
 *
 * Why not SPI: a sold-out SKU is what a flash sale hammers, and the
 * benchmark (test/bench/stock.sh) showed half of such a call in the
 * executor start-up of reserve's general lookup query.  This answers the
 * same question from the same kind of read — an unlocked MVCC read, under
 * the snapshot SPI would have used (a new one per statement in READ
 * COMMITTED, the transaction's otherwise) — so it is never less right
 * than the general path: it only says "short" when the order holds nothing
 * yet (so it is not a repeat, which must answer true) and the SKU has
 * bucket rows (so it exists) whose available units sum to less than asked.
 * Anything else, or anything unexpected, is "don't know" and the general
 * path decides.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "common/int.h"
#include "storage/lockdefs.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "stock/stock.h"

/* heap attribute numbers that both keys use: the first column of each
 * primary key (stock_bucket.sku_id, stock_hold.order_no) */
#define KEY_ATTNUM	1

/* does the order hold anything (visible to snap)? */
static bool
order_has_holds(Oid nsp, int64 order_no, Snapshot snap, bool *known)
{
	Oid			relid = get_relname_relid("stock_hold", nsp);
	Oid			idxid = get_relname_relid("stock_hold_pkey", nsp);
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	bool		found;

	*known = OidIsValid(relid) && OidIsValid(idxid);
	if (!*known)
		return false;
	rel = table_open(relid, AccessShareLock);
	ScanKeyInit(&key, KEY_ATTNUM, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(order_no));
	scan = systable_beginscan(rel, idxid, true, snap, 1, &key);
	found = HeapTupleIsValid(systable_getnext(scan));
	systable_endscan(scan);
	table_close(rel, NoLock);
	return found;
}

/*
 * true only when a one-line reserve of qty units of sku_id by order_no
 * certainly answers false: see the file header.
 */
bool
OeStockPeekShort(int64 order_no, int64 sku_id, int64 qty)
{
	Oid			nsp = get_namespace_oid("order_engine", true);
	Oid			relid,
				idxid;
	AttrNumber	avail_att;
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	Snapshot	snap;
	int64		sum = 0;
	int			rows = 0;
	bool		ok = true;
	bool		known;
	bool		short_;

	if (!OidIsValid(nsp))
		return false;
	relid = get_relname_relid("stock_bucket", nsp);
	idxid = get_relname_relid("stock_bucket_pkey", nsp);
	if (!OidIsValid(relid) || !OidIsValid(idxid))
		return false;
	avail_att = get_attnum(relid, "available");
	if (avail_att == InvalidAttrNumber)
		return false;

	snap = RegisterSnapshot(GetTransactionSnapshot());
	rel = table_open(relid, AccessShareLock);
	ScanKeyInit(&key, KEY_ATTNUM, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(sku_id));
	scan = systable_beginscan(rel, idxid, true, snap, 1, &key);
	while (ok && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, avail_att, RelationGetDescr(rel), &isnull);

		rows++;
		if (isnull || pg_add_s64_overflow(sum, DatumGetInt64(d), &sum))
			ok = false;
	}
	systable_endscan(scan);
	table_close(rel, NoLock);

	short_ = ok && rows > 0 && sum < qty &&
		!order_has_holds(nsp, order_no, snap, &known) && known;
	UnregisterSnapshot(snap);
	return short_;
}
