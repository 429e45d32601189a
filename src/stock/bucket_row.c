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
 *	  stock_bucket_pkey, or at the tid where reserve's lookup saw it a
 *	  moment earlier when that is still the version the snapshot sees
 *	  (fetch_at: the probe would find that same version; it was 28k of a
 *	  3-line place_order's 574k instructions, test/bench/cost.sh); no
 *	  row, or available below min in it: no change, no lock (the
 *	  executor locks no row that fails the condition);
 *	- compute the new counters, check what stock_bucket_counts_check says
 *	  in C (23514 with the constraint's name), and write the new version
 *	  of that version (OeDirectRowChange, common/direct_update.c: HOT when
 *	  the page has room, else new index entries), waiting for a
 *	  concurrent writer as the UPDATE does;
 *	- only when another transaction changed the row first: in READ
 *	  COMMITTED its newest version is locked (FOR NO KEY UPDATE) and the
 *	  condition rechecked and the counters computed on it, which is the
 *	  executor's EvalPlanQual; a row that then fails stays locked, as it
 *	  would.  Under a transaction snapshot that is a serialization failure
 *	  (40001), as from the UPDATE.
 * An uncontended row is not locked before it is written, as by the
 * UPDATE: locking it first wrote a Heap/LOCK record per bucket row, 162
 * of a 3-line place_order's 3,545 WAL bytes (pg_waldump --stats).
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
#include "storage/bufmgr.h"
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

/* a bucket row's change: the condition and the deltas */
typedef struct BucketChange
{
	BucketCols	c;
	int32		bucket;
	int64		min_available;
	int64		da,
				dh,
				ds;
} BucketChange;

static bool
has_min_available(Relation rel, HeapTuple version, void *arg)
{
	BucketChange *ch = (BucketChange *) arg;

	return int8_col(version, rel, ch->c.available) >= ch->min_available;
}

/* the counters plus the deltas, checked as stock_bucket_counts_check would */
static void
add_deltas(Relation rel, HeapTuple version, void *arg, Datum *values,
		   bool *nulls, bool *repl)
{
	BucketChange *ch = (BucketChange *) arg;
	int64		available = int8_col(version, rel, ch->c.available);
	int64		held = int8_col(version, rel, ch->c.held);
	int64		sold = int8_col(version, rel, ch->c.sold);

	if (pg_add_s64_overflow(available, ch->da, &available) ||
		pg_add_s64_overflow(held, ch->dh, &held) ||
		pg_add_s64_overflow(sold, ch->ds, &sold))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("bigint out of range")));
	if (ch->bucket < 0 || available < 0 || held < 0 || sold < 0)
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("new row for relation \"%s\" violates check constraint \"%s\"",
						RelationGetRelationName(rel), COUNTS_CHECK),
				 errtableconstraint(rel, COUNTS_CHECK)));
	values[ch->c.available - 1] = Int64GetDatum(available);
	values[ch->c.held - 1] = Int64GetDatum(held);
	values[ch->c.sold - 1] = Int64GetDatum(sold);
	repl[ch->c.available - 1] = repl[ch->c.held - 1] = repl[ch->c.sold - 1] = true;
}

/*
 * The version at tid, when snap sees it and it is row (sku_id, bucket):
 * then it is the version the primary key probe would find (the key is
 * unique, and a snapshot sees one version of a row), pinned in *buf.
 * false, with nothing pinned, sends the caller to the probe: no tid, the
 * row has a newer version or moved (a HOT successor, or its slot pruned
 * and reused), or SERIALIZABLE, where the probe's predicate lock on the
 * index page must be taken as the UPDATE takes it.  The block exists:
 * the caller's lock on the table keeps VACUUM from truncating it.
 */
static bool
fetch_at(Relation rel, ItemPointer tid, Snapshot snap, const BucketChange *ch,
		 int64 sku_id, HeapTuple tup, Buffer *buf)
{
	bool		isnull;
	Datum		d;

	if (tid == NULL || !ItemPointerIsValid(tid) || IsolationIsSerializable())
		return false;
	tup->t_self = *tid;
	if (!heap_fetch(rel, snap, tup, buf, false))
		return false;
	if (int8_col(tup, rel, ch->c.sku_id) == sku_id)
	{
		d = heap_getattr(tup, ch->c.bucket, RelationGetDescr(rel), &isnull);
		if (!isnull && DatumGetInt32(d) == ch->bucket)
			return true;
	}
	ReleaseBuffer(*buf);
	return false;
}

/*
 * If bucket row (sku_id, bucket) has available >= min_available, add
 * (da, dh, ds) to (available, held, sold).  Returns 1 when it did, 0 when
 * there is no such row or it has less, -1 when the table needs the SQL
 * statement instead (see the file header).  tid: see fetch_at.
 */
int
OeStockBucketRowAdd(int64 sku_id, int32 bucket, int64 min_available,
					int64 da, int64 dh, int64 ds, ItemPointer tid)
{
	Oid			relid = OeSchemaRelid("stock_bucket");
	Oid			pkey = OeSchemaRelid("stock_bucket_pkey");
	Relation	rel;
	BucketChange ch;
	ScanKeyData key[2];
	SysScanDesc scan = NULL;
	HeapTuple	tup;
	HeapTupleData fetched;
	Buffer		buf;
	Snapshot	snap;
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
	ch.c.sku_id = col(rel, "sku_id");
	ch.c.bucket = col(rel, "bucket");
	ch.c.available = col(rel, "available");
	ch.c.held = col(rel, "held");
	ch.c.sold = col(rel, "sold");
	ch.bucket = bucket;
	ch.min_available = min_available;
	ch.da = da;
	ch.dh = dh;
	ch.ds = ds;

	snap = OeStatementSnapshot();

	/* the version the statement's snapshot sees, changed if it qualifies */
	if (fetch_at(rel, tid, snap, &ch, sku_id, &fetched, &buf))
		tup = &fetched;
	else
	{
		ScanKeyInit(&key[0], ch.c.sku_id, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(sku_id));
		ScanKeyInit(&key[1], ch.c.bucket, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(bucket));
		scan = OeIndexProbeBegin(rel, pkey, snap, 2, key);
		tup = systable_getnext(scan);
	}
	if (HeapTupleIsValid(tup) && has_min_available(rel, tup, &ch) &&
		OeDirectRowChange(rel, tup, snap, "a bucket row", has_min_available, add_deltas, &ch))
		result = 1;
	if (scan != NULL)
		systable_endscan(scan);
	else
		ReleaseBuffer(buf);

	UnregisterSnapshot(snap);
	table_close(rel, NoLock);
	return result;
}
