/*-------------------------------------------------------------------------
 *
 * stock_journal.c
 *	  Where a hold's journal lives: from 1.0 its stock_hold row; in a
 *	  schema before 1.0, a stock_movement row for each of its changes.
 *
 * stock.c (reserve), stock_hold.c (confirm, release, the sweep) and
 * escrow.c (folding) ask here before they write a hold's change.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/internal_sql.h"
#include "stock/stock_internal.h"

/*
 * From 1.0 the hold row is the hold's journal, the seeds' 预占流水: the
 * view stock_journal reads each hold's hold, confirm and release from
 * stock_hold, and stock_audit sums them from there, so nothing writes them
 * to stock_movement (three rows and six index entries fewer per 3-line
 * placement).  A schema before 1.0, which this library serves until ALTER
 * EXTENSION ... UPDATE, has no stock_journal, and there every hold is
 * journaled as before.
 */
bool
OeStockJournalsHolds(void)
{
	return !OeTableExists("stock_journal");
}
