/*-------------------------------------------------------------------------
 *
 * bucket_row.c
 *	  A stock_bucket row's counters changed by heap access: the
 *	  conditional delta "available >= min, then add (da, dh, ds)" that is
 *	  the only way stock changes, without an UPDATE statement.
 *
 * Why: the UPDATE of one bucket was a third of a one-line reserve's
 * instructions and three of them a fifth of place_order's, most of it
 * executor start-up (test/bench/cost.sh).
 *
 * What it does is what the UPDATE did, step for step:
 *	- find the row's version visible to the statement's snapshot (the
 *	  command counter advanced first, as SPI does) through
 *	  stock_bucket_pkey; no row, or available below min in it: no change,
 *	  no lock (the executor locks no row that fails the condition);
 *	- lock it (OeDirectRowLock, common/direct_update.c: FOR NO KEY UPDATE,
 *	  waiting).  In READ
 *	  COMMITTED the newest version is locked and the condition rechecked
 *	  on it, which is the executor's EvalPlanQual; a row that then fails
 *	  stays locked, as it would.  Under a transaction snapshot a row
 *	  updated or deleted since is a serialization failure (40001), as
 *	  from the UPDATE;
 *	- check what stock_bucket_counts_check says in C (23514 with the
 *	  constraint's name) and write the new version (simple_heap_update:
 *	  HOT when the page has room, else new index entries).
 * SSI, WAL and pg_stat are the heap and index AMs' own, as for the UPDATE.
 * A table with anything else an UPDATE would honour (a trigger other
 * than the foreign key's checks, which an UPDATE that keeps the key does
 * not need, a rule, row security, another CHECK) answers "use SQL" and
 * the caller runs its statement (OeDirectWriteRefused, common/direct_access.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "common/int.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "nodes/execnodes.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "common/direct_access.h"
#include "common/direct_update.h"
#include "common/errors.h"
#include "stock/stock_internal.h"

#define COUNTS_CHECK "stock_bucket_counts_check"

/* the columns, by attribute number, of the table as opened */
typedef struct BucketCols
{
	AttrNumber	sku_id,
				bucket,
				available,
				held,
				sold;
} BucketCols;

static AttrNumber
col(Relation rel, const char *name)
{
	AttrNumber	att = OeRelationColumn(rel, name);

	if (att == InvalidAttrNumber)
		elog(ERROR, "order_engine: stock_bucket has no column \"%s\"", name);
	return att;
}

static int64
int8_col(HeapTuple tup, Relation rel, AttrNumber att)
{
	bool		isnull;
	Datum		d = heap_getattr(tup, att, RelationGetDescr(rel), &isnull);

	if (isnull)
		elog(ERROR, "order_engine: null counter in stock_bucket");
	return DatumGetInt64(d);
}

/*
 * If bucket row (sku_id, bucket) has available >= min_available, add
 * (da, dh, ds) to (available, held, sold).  Returns 1 when it did, 0 when
 * there is no such row or it has less, -1 when the table needs the SQL
 * statement instead (see the file header).
 */
int
OeStockBucketRowAdd(int64 sku_id, int32 bucket, int64 min_available,
					int64 da, int64 dh, int64 ds)
{
	Oid			relid = OeSchemaRelid("stock_bucket");
	Oid			pkey = OeSchemaRelid("stock_bucket_pkey");
	Relation	rel;
	BucketCols	c;
	ScanKeyData key[2];
	SysScanDesc scan;
	HeapTuple	tup;
	Snapshot	snap;
	ItemPointerData tid;
	TupleTableSlot *slot;
	bool		should_free;
	int64		counts[3];
	Datum		values[3];
	int			result = 0;

	if (!OidIsValid(relid) || !OidIsValid(pkey))
		elog(ERROR, "order_engine: stock_bucket or its primary key is missing");
	OeDirectWriteAllowed("UPDATE");
	rel = table_open(relid, RowExclusiveLock);
	/* the key columns are never changed here */
	if (OeDirectWriteRefused(rel, true, COUNTS_CHECK, InvalidOid))
	{
		table_close(rel, NoLock);
		return -1;
	}
	c.sku_id = col(rel, "sku_id");
	c.bucket = col(rel, "bucket");
	c.available = col(rel, "available");
	c.held = col(rel, "held");
	c.sold = col(rel, "sold");

	snap = OeStatementSnapshot();

	/* the version the statement's snapshot sees */
	ScanKeyInit(&key[0], c.sku_id, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(sku_id));
	ScanKeyInit(&key[1], c.bucket, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(bucket));
	scan = systable_beginscan(rel, pkey, true, snap, 2, key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup) && int8_col(tup, rel, c.available) >= min_available)
		tid = tup->t_self;
	else
		tup = NULL;
	systable_endscan(scan);
	if (tup == NULL)
		goto out;

	/* lock it; in READ COMMITTED its newest version */
	slot = table_slot_create(rel, NULL);
	if (!OeDirectRowLock(rel, &tid, snap, slot, "a bucket row"))
	{
		ExecDropSingleTupleTableSlot(slot);
		goto out;
	}
	tup = ExecFetchSlotHeapTuple(slot, true, &should_free);

	/* the condition on the version we locked (EvalPlanQual's recheck) */
	counts[0] = int8_col(tup, rel, c.available);
	counts[1] = int8_col(tup, rel, c.held);
	counts[2] = int8_col(tup, rel, c.sold);
	if (counts[0] >= min_available)
	{
		Datum		repl_values[MaxHeapAttributeNumber];
		bool		repl_nulls[MaxHeapAttributeNumber] = {false};
		bool		repl[MaxHeapAttributeNumber] = {false};

		if (pg_add_s64_overflow(counts[0], da, &counts[0]) ||
			pg_add_s64_overflow(counts[1], dh, &counts[1]) ||
			pg_add_s64_overflow(counts[2], ds, &counts[2]))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("bigint out of range")));
		if (bucket < 0 || counts[0] < 0 || counts[1] < 0 || counts[2] < 0)
			ereport(ERROR,
					(errcode(ERRCODE_CHECK_VIOLATION),
					 errmsg("new row for relation \"%s\" violates check constraint \"%s\"",
							RelationGetRelationName(rel), COUNTS_CHECK),
					 errtableconstraint(rel, COUNTS_CHECK)));
		values[0] = Int64GetDatum(counts[0]);
		values[1] = Int64GetDatum(counts[1]);
		values[2] = Int64GetDatum(counts[2]);
		repl_values[c.available - 1] = values[0];
		repl_values[c.held - 1] = values[1];
		repl_values[c.sold - 1] = values[2];
		repl[c.available - 1] = repl[c.held - 1] = repl[c.sold - 1] = true;
		OeDirectRowUpdate(rel, &tid, tup, repl_values, repl_nulls, repl);
		result = 1;
	}
	if (should_free)
		heap_freetuple(tup);
	ExecDropSingleTupleTableSlot(slot);

out:
	UnregisterSnapshot(snap);
	table_close(rel, NoLock);
	return result;
}
