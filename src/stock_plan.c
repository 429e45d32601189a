/*-------------------------------------------------------------------------
 *
 * stock_plan.c
 *	  The stock subsystem's kept SPI plans: prepared once per backend,
 *	  always generic, and never planned as if a table were empty.
 *
 * Why the planner hook: our statements are key lookups, and their generic
 * plans live as long as the backend (until an invalidation).  A plan built
 * while a table has no pages (a fresh install, or VACUUM ANALYZE of the
 * still empty stock_hold) costs a sequential scan at nothing and keeps it
 * while the table grows to millions of rows, until autovacuum's next
 * ANALYZE happens to invalidate it: measured, a reserve then scanned
 * stock_hold three times per call.  While one of our statements is being
 * planned, a relation of fewer than 10 pages counts as 10 pages — the
 * assumption PostgreSQL itself makes for a never-vacuumed table — so the
 * index is chosen from the first plan on.  Other queries are not touched.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "optimizer/plancat.h"

#include "stock.h"

/* smallest size, in pages, our statements are planned for */
#define STOCK_PLAN_MIN_PAGES	10

/* > 0 while one of our kept statements runs (and so may be re-planned) */
static int	stock_exec_depth = 0;
static bool hook_installed = false;
static get_relation_info_hook_type prev_get_relation_info = NULL;

static void
stock_relation_info(PlannerInfo *root, Oid relid, bool inhparent, RelOptInfo *rel)
{
	if (prev_get_relation_info)
		prev_get_relation_info(root, relid, inhparent, rel);
	if (stock_exec_depth > 0 && rel->pages < STOCK_PLAN_MIN_PAGES)
	{
		/* keep the tuple density the estimate had, if it had one */
		double		density = rel->pages > 0 ? rel->tuples / rel->pages : 0;

		rel->pages = STOCK_PLAN_MIN_PAGES;
		rel->tuples = Max(rel->tuples, density * STOCK_PLAN_MIN_PAGES);
		if (rel->tuples < STOCK_PLAN_MIN_PAGES)
			rel->tuples = STOCK_PLAN_MIN_PAGES * 10;
	}
}

/*
 * Prepare a statement once per backend and keep it; *slot caches it.
 */
SPIPlanPtr
OeStockPlan(SPIPlanPtr *slot, const char *sql, int nargs, const Oid *types)
{
	if (!hook_installed)
	{
		prev_get_relation_info = get_relation_info_hook;
		get_relation_info_hook = stock_relation_info;
		hook_installed = true;
	}
	if (*slot == NULL)
	{
		/*
		 * Always the generic plan: our statements are index lookups by key
		 * whatever the values, and a custom plan would be re-planned on
		 * every call (array parameters make the generic one look dearer).
		 */
		SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, (Oid *) types,
											  CURSOR_OPT_GENERIC_PLAN);

		if (plan == NULL)
			elog(ERROR, "order_engine: SPI_prepare failed: %s",
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "order_engine: SPI_keepplan failed");
		*slot = plan;
	}
	return *slot;
}

/*
 * Run a kept plan (planning it first if it is new or was invalidated);
 * any failure of SPI itself is a bug, not user input.
 */
int
OeStockExec(SPIPlanPtr plan, Datum *values, const char *nulls, long count)
{
	int			rc;

	stock_exec_depth++;
	PG_TRY();
	{
		rc = SPI_execute_plan(plan, values, nulls, false, count);
	}
	PG_FINALLY();
	{
		stock_exec_depth--;
	}
	PG_END_TRY();
	if (rc < 0)
		elog(ERROR, "order_engine: SPI_execute_plan failed: %s",
			 SPI_result_code_string(rc));
	return rc;
}
