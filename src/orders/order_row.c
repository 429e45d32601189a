/*-------------------------------------------------------------------------
 *
 * order_row.c
 *	  One order's row, locked where it lives: order_engine.orders, or
 *	  order_engine_archive.orders for an order the archive job moved, and
 *	  bringing an archived order back when money or a cancel changes it.
 *	  orders.c and refunds.c both go through here (order_row.h).  Also
 *	  the unlocked "is this number used?" of place_order, by a probe of
 *	  each table's primary key instead of an SPI query.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "common/direct_access.h"
#include "common/errors.h"
#include "common/internal_sql.h"
#include "orders/order_row.h"

/* the columns of select_order and select_archived_order, in order */
#define ORDER_ROW_COLUMNS "status, total, pay_deadline, logistics_no"
enum
{
	Anum_order_row_status = 1,
	Anum_order_row_total,
	Anum_order_row_pay_deadline,
	Anum_order_row_logistics_no
};

static OeQuery select_order = {
	"SELECT " ORDER_ROW_COLUMNS " FROM order_engine.orders"
	" WHERE order_no OPERATOR(pg_catalog.=) $1 FOR UPDATE",
	1, {INT8OID}
};

static OeQuery select_archived_order = {
	"SELECT " ORDER_ROW_COLUMNS " FROM order_engine_archive.orders"
	" WHERE order_no OPERATOR(pg_catalog.=) $1 FOR UPDATE",
	1, {INT8OID}
};

/*
 * An archived order that money or a cancel reaches again comes back to
 * the live tables, lines and events with it, in one statement (the
 * reverse of archive.c's move; the foreign key of the lines is checked at
 * the end of the statement).  archive_orders moves it out again once it
 * is finished.
 */
#define ORDER_COLUMNS "order_no, buyer_id, seller_id, status, total, line_count, version," \
	" created_at, pay_deadline, paid_at, shipped_at, completed_at, closed_at, payment_ref," \
	" logistics_no, address, note, close_reason"
#define LINE_COLUMNS "order_no, line_no, sku_id, qty, unit_price, line_total"
#define EVENT_COLUMNS "event_id, order_no, event, from_status, to_status, detail, created_at, processed_at"

static OeQuery restore_order = {
	"WITH o AS (DELETE FROM order_engine_archive.orders"
	"           WHERE order_no OPERATOR(pg_catalog.=) $1 RETURNING *),"
	" oi AS (INSERT INTO order_engine.orders (" ORDER_COLUMNS ")"
	"        SELECT " ORDER_COLUMNS " FROM o RETURNING 1),"
	" l AS (DELETE FROM order_engine_archive.order_lines"
	"       WHERE order_no OPERATOR(pg_catalog.=) $1 RETURNING *),"
	" li AS (INSERT INTO order_engine.order_lines (" LINE_COLUMNS ")"
	"        SELECT " LINE_COLUMNS " FROM l),"
	" e AS (DELETE FROM order_engine_archive.order_events"
	"       WHERE order_no OPERATOR(pg_catalog.=) $1 RETURNING *),"
	" ei AS (INSERT INTO order_engine.order_events (" EVENT_COLUMNS ")"
	"        SELECT " EVENT_COLUMNS " FROM e)"
	" SELECT pg_catalog.count(*) FROM oi",
	1, {INT8OID}
};

/*
 * The order, locked: the live row, else the archived one (money and
 * cancels reach archived orders too; ensure_live brings one back before
 * it changes).
 */
static OeOrderRow
lock_order(int64 order_no)
{
	OeOrderRow	row = {0};
	Datum		arg = Int64GetDatum(order_no);
	bool		isnull;
	HeapTuple	tup;
	TupleDesc	desc;

	OeQueryRun(&select_order, &arg, NULL, false, 1);
	if (SPI_processed == 0)
	{
		OeQueryRun(&select_archived_order, &arg, NULL, false, 1);
		if (SPI_processed == 0)
		{
			/* restored by someone else while we waited for the archived row */
			OeQueryRun(&select_order, &arg, NULL, false, 1);
			if (SPI_processed == 0)
				return row;
		}
		else
			row.archived = true;
	}
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	row.found = true;
	row.status = OeOrderStatusParse(TextDatumGetCString(SPI_getbinval(tup, desc, Anum_order_row_status, &isnull)));
	row.total = SPI_datumTransfer(SPI_getbinval(tup, desc, Anum_order_row_total, &isnull), false, -1);
	row.pay_deadline = DatumGetTimestampTz(SPI_getbinval(tup, desc, Anum_order_row_pay_deadline, &isnull));
	row.logistics_no = SPI_getvalue(tup, desc, Anum_order_row_logistics_no);
	return row;
}

OeOrderRow
OeOrderLockExisting(int64 order_no)
{
	OeOrderRow	row = lock_order(order_no);

	if (!row.found)
		ereport(ERROR,
				(errcode(ERRCODE_OE_ORDER_NOT_FOUND),
				 errmsg("order " INT64_FORMAT " does not exist", order_no)));
	return row;
}

/* an archived order that is about to change moves back to the live tables */
void
OeOrderEnsureLive(int64 order_no, OeOrderRow *row)
{
	Datum		arg = Int64GetDatum(order_no);
	bool		isnull;

	if (!row->archived)
		return;
	OeQueryRun(&restore_order, &arg, NULL, false, 1);
	if (DatumGetInt64(OeQueryValue(1, &isnull)) != 1)
		elog(ERROR, "order_engine: archived order " INT64_FORMAT " vanished under its lock",
			 order_no);
	row->archived = false;
}

OeOrderStatus
OeOrderLockLive(int64 order_no)
{
	OeOrderRow	row = OeOrderLockExisting(order_no);

	OeOrderEnsureLive(order_no, &row);
	return row.status;
}

/* does relid's primary key pkey (first column order_no) have order_no? */
static bool
probe_order_no(Oid relid, Oid pkey, int64 order_no, Snapshot snap)
{
	Relation	rel = table_open(relid, AccessShareLock);
	ScanKeyData skey;
	SysScanDesc scan;
	bool		found;

	ScanKeyInit(&skey, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(order_no));
	scan = OeIndexProbeBegin(rel, pkey, snap, 1, &skey);
	found = HeapTupleIsValid(systable_getnext(scan));
	systable_endscan(scan);
	table_close(rel, NoLock);
	return found;
}

bool
OeOrderNumberUsed(int64 order_no)
{
	Oid			live = OeSchemaRelid("orders");
	Oid			live_pkey = OeSchemaRelid("orders_pkey");
	Oid			archived = OeArchiveRelid("orders");
	Oid			archived_pkey = OeArchiveRelid("orders_pkey");
	Snapshot	snap;
	bool		used;

	if (!OidIsValid(live) || !OidIsValid(live_pkey) ||
		!OidIsValid(archived) || !OidIsValid(archived_pkey))
		return true;			/* not the tables we know: let the SQL say */
	/* both under one snapshot, as the SQL's UNION ALL read them */
	snap = OeStatementSnapshot();
	used = probe_order_no(live, live_pkey, order_no, snap) ||
		probe_order_no(archived, archived_pkey, order_no, snap);
	UnregisterSnapshot(snap);
	return used;
}
