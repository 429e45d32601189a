/*-------------------------------------------------------------------------
 *
 * stock_look.c
 *	  What a reserve reads before it locks anything: the SKUs, their
 *	  unlocked availability and the order's holds, by index probes of
 *	  sku, stock_bucket and stock_hold instead of an SPI query.
 *
 * Why not SPI: the lookup was a third of a one-line reserve's
 * instructions (test/bench/cost.sh), nearly all of it executor start-up
 * for a query that only probes three primary keys.  These are the same
 * reads the query made — unlocked MVCC reads under the snapshot SPI would
 * have used: the command counter advanced first, as SPI does before each
 * statement, then a new snapshot per call in READ COMMITTED and the
 * transaction's otherwise (OeStatementSnapshot).  The relations are found
 * in the extension's schema by name (OeSchemaRelid), so nothing on the
 * caller's search_path is consulted, and no permission is checked: the
 * rows read never leave stock/.
 *
 * OeStockPeekShort is the cheap "no" of a one-line order on a sold-out
 * SKU, called before the owner switch and the search_path pin: it says
 * "short" only when the order holds nothing yet (a repeat must answer
 * true) and the SKU has bucket rows (so it exists) whose available units
 * sum to less than asked.  Anything else is "don't know" and the general
 * path decides.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "common/int.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "common/direct_access.h"
#include "stock/stock.h"
#include "stock/stock_internal.h"

/* one of our tables, opened with its primary key for a probe */
typedef struct LookRel
{
	Relation	rel;
	Oid			pkey;
} LookRel;

/* open relname and find its index idxname; false if either is missing */
static bool
look_open(const char *relname, const char *idxname, LookRel *lr)
{
	Oid			relid = OeSchemaRelid(relname);

	lr->pkey = OeSchemaRelid(idxname);
	if (!OidIsValid(relid) || !OidIsValid(lr->pkey))
		return false;
	lr->rel = table_open(relid, AccessShareLock);
	return true;
}

/* the heap attribute number of column name (ERROR if the table lacks it) */
static AttrNumber
look_att(LookRel *lr, const char *name)
{
	AttrNumber	att = OeRelationColumn(lr->rel, name);

	if (att == InvalidAttrNumber)
		elog(ERROR, "order_engine: table \"%s\" has no column \"%s\"",
			 RelationGetRelationName(lr->rel), name);
	return att;
}

/* a scan of lr's primary key on its first column = key */
static SysScanDesc
look_scan(LookRel *lr, int64 key, Snapshot snap)
{
	ScanKeyData skey;

	/* heap attribute 1 is the first key column of all three tables */
	ScanKeyInit(&skey, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(key));
	return OeIndexProbeBegin(lr->rel, lr->pkey, snap, 1, &skey);
}

/*
 * sum of available over the SKU's bucket rows, and of escrow (escrow_att
 * InvalidAttrNumber: the table predates it) into *escrow; *rows how many
 * rows there are, and *tid (if not NULL) where the row is when there is
 * one (else an invalid tid)
 */
static int64
bucket_available(LookRel *buckets, AttrNumber avail_att, AttrNumber escrow_att,
				 int64 sku_id, Snapshot snap, int *rows, int64 *escrow, bool *ok,
				 ItemPointer tid)
{
	SysScanDesc scan = look_scan(buckets, sku_id, snap);
	HeapTuple	tup;
	int64		sum = 0;

	*rows = 0;
	*escrow = 0;
	*ok = true;
	if (tid != NULL)
		ItemPointerSetInvalid(tid);
	while (*ok && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, avail_att, RelationGetDescr(buckets->rel), &isnull);

		if (tid != NULL)
		{
			if (*rows == 0)
				*tid = tup->t_self;
			else
				ItemPointerSetInvalid(tid);
		}
		(*rows)++;
		if (isnull || pg_add_s64_overflow(sum, DatumGetInt64(d), &sum))
			*ok = false;
		if (escrow_att != InvalidAttrNumber)
		{
			d = heap_getattr(tup, escrow_att, RelationGetDescr(buckets->rel), &isnull);
			if (isnull || pg_add_s64_overflow(*escrow, DatumGetInt64(d), escrow))
				*ok = false;
		}
	}
	systable_endscan(scan);
	return sum;
}

static int
look_cmp(const void *key, const void *elem)
{
	int64		x = *(const int64 *) key;
	int64		y = ((const StockLook *) elem)->sku_id;

	return (x > y) - (x < y);
}

StockLook *
OeStockLookFind(StockLook *looks, int n, int64 sku_id)
{
	return bsearch(&sku_id, looks, n, sizeof(StockLook), look_cmp);
}

/*
 * Fill looks[0..n-1] (sorted by sku_id, distinct; sku_id set) with each
 * SKU's row, its availability and this order's hold of it, and return how
 * many holds the order has in all.  With a price_cxt, each SKU's price too,
 * detoasted and copied into price_cxt: a place_order reads its prices from
 * the row the reserve reads (they were three more probes of sku_pkey).
 */
int64
OeStockLook(int64 order_no, StockLook *looks, int n, const OeStockPeek *peek,
			MemoryContext price_cxt)
{
	LookRel		skus,
				buckets,
				holds;
	AttrNumber	limit_att,
				nbuckets_att,
				sku_escrow_att,
				avail_att,
				escrow_att,
				hsku_att,
				hqty_att,
				hstate_att,
				hbuyer_att,
				price_att = InvalidAttrNumber;
	Snapshot	snap;
	SysScanDesc scan;
	HeapTuple	tup;
	int64		order_holds = 0;

	if (!look_open("sku", "sku_pkey", &skus) ||
		!look_open("stock_bucket", "stock_bucket_pkey", &buckets) ||
		!look_open("stock_hold", "stock_hold_pkey", &holds))
		elog(ERROR, "order_engine: a stock table or its primary key is missing");
	limit_att = look_att(&skus, "purchase_limit");
	nbuckets_att = look_att(&skus, "nbuckets");
	if (price_cxt != NULL)
		price_att = look_att(&skus, "price");
	/* the escrow columns are 0.9's: the library may serve older SQL */
	sku_escrow_att = OeRelationColumn(skus.rel, "escrow");
	avail_att = look_att(&buckets, "available");
	escrow_att = OeRelationColumn(buckets.rel, "escrow");
	hsku_att = look_att(&holds, "sku_id");
	hqty_att = look_att(&holds, "qty");
	hstate_att = look_att(&holds, "state");
	hbuyer_att = look_att(&holds, "buyer_id");

	snap = OeStatementSnapshot();
	for (int i = 0; i < n; i++)
	{
		StockLook  *l = &looks[i];
		TupleDesc	desc = RelationGetDescr(skus.rel);
		bool		isnull;
		int			rows;
		int64		escrow;
		bool		ok;

		l->known = false;
		l->escrow = false;
		l->row_available = 0;
		l->has_limit = false;
		l->limit = 0;
		l->nbuckets = 1;
		l->available = 0;
		l->hold_exists = false;
		l->has_price = false;
		l->price = (Datum) 0;
		ItemPointerSetInvalid(&l->bucket_tid);
		scan = look_scan(&skus, l->sku_id, snap);
		if (HeapTupleIsValid(tup = systable_getnext(scan)))
		{
			Datum		d;

			l->known = true;
			d = heap_getattr(tup, limit_att, desc, &isnull);
			l->has_limit = !isnull;
			l->limit = isnull ? 0 : DatumGetInt64(d);
			d = heap_getattr(tup, nbuckets_att, desc, &isnull);
			if (!isnull)
				l->nbuckets = DatumGetInt32(d);
			if (sku_escrow_att != InvalidAttrNumber)
			{
				d = heap_getattr(tup, sku_escrow_att, desc, &isnull);
				l->escrow = !isnull && DatumGetBool(d);
			}
			if (price_cxt != NULL)
			{
				d = heap_getattr(tup, price_att, desc, &isnull);
				l->has_price = !isnull;
				/* out of the buffer before the scan lets go of it */
				if (!isnull)
				{
					MemoryContext old = MemoryContextSwitchTo(price_cxt);

					l->price = PointerGetDatum(PG_DETOAST_DATUM_COPY(d));
					MemoryContextSwitchTo(old);
				}
			}
		}
		systable_endscan(scan);
		if (!l->known)
			continue;
		if (peek != NULL && peek->valid && peek->sku_id == l->sku_id)
		{
			l->row_available = peek->row_available;
			escrow = peek->escrow;
			l->bucket_tid = peek->bucket_tid;
			ok = true;
		}
		else
			l->row_available = bucket_available(&buckets, avail_att, escrow_att, l->sku_id, snap,
												&rows, &escrow, &ok, &l->bucket_tid);
		if (ok && pg_add_s64_overflow(l->row_available, escrow, &l->available))
			ok = false;
		if (!ok)
			elog(ERROR, "order_engine: available of SKU " INT64_FORMAT " is null or overflows",
				 l->sku_id);
	}

	/* the order's holds, in (order_no, sku_id) order: count all, keep ours */
	scan = look_scan(&holds, order_no, snap);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		TupleDesc	desc = RelationGetDescr(holds.rel);
		bool		isnull;
		int64		sku_id;
		StockLook  *l;
		Datum		d;

		order_holds++;
		sku_id = DatumGetInt64(heap_getattr(tup, hsku_att, desc, &isnull));
		l = OeStockLookFind(looks, n, sku_id);
		if (isnull || l == NULL)
			continue;
		l->hold_exists = true;
		l->hold_qty = DatumGetInt64(heap_getattr(tup, hqty_att, desc, &isnull));
		l->hold_state = TextDatumGetCString(heap_getattr(tup, hstate_att, desc, &isnull));
		d = heap_getattr(tup, hbuyer_att, desc, &isnull);
		l->hold_has_buyer = !isnull;
		l->hold_buyer_id = isnull ? 0 : DatumGetInt64(d);
	}
	systable_endscan(scan);

	UnregisterSnapshot(snap);
	table_close(holds.rel, NoLock);
	table_close(buckets.rel, NoLock);
	table_close(skus.rel, NoLock);
	return order_holds;
}

/*
 * true only when a one-line reserve of qty units of sku_id by order_no
 * certainly answers false: see the file header.
 */
bool
OeStockPeekShort(int64 order_no, int64 sku_id, int64 qty, OeStockPeek *peek)
{
	LookRel		buckets,
				holds;
	Snapshot	snap;
	SysScanDesc scan;
	int64		sum;
	int64		escrow;
	int			rows;
	bool		ok;
	bool		short_ = false;

	peek->valid = false;
	if (!look_open("stock_bucket", "stock_bucket_pkey", &buckets))
		return false;
	snap = OeStatementSnapshot();
	/* escrow units count too: for an escrow SKU the sum is an upper bound */
	sum = bucket_available(&buckets, look_att(&buckets, "available"),
						   OeRelationColumn(buckets.rel, "escrow"), sku_id, snap, &rows, &escrow, &ok,
						   &peek->bucket_tid);
	if (ok)
	{
		peek->valid = true;
		peek->sku_id = sku_id;
		peek->row_available = sum;
		peek->escrow = escrow;
	}
	if (ok && pg_add_s64_overflow(sum, escrow, &sum))
		ok = peek->valid = false;
	table_close(buckets.rel, NoLock);
	if (ok && rows > 0 && sum < qty && look_open("stock_hold", "stock_hold_pkey", &holds))
	{
		scan = look_scan(&holds, order_no, snap);
		short_ = !HeapTupleIsValid(systable_getnext(scan));
		systable_endscan(scan);
		table_close(holds.rel, NoLock);
	}
	UnregisterSnapshot(snap);
	return short_;
}
