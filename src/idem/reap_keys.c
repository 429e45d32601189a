/*-------------------------------------------------------------------------
 *
 * reap_keys.c
 *	  Removal of expired idempotency keys, checkout tokens and checkout
 *	  quotes: OeReapExpiredKeys and its SQL wrapper reap_expired_keys.
 *
 * One bounded batch per call, oldest expiry first.  FOR UPDATE SKIP LOCKED
 * lets the reaper pass over a row that a foreground call holds (a key
 * being finished, a token being consumed) instead of waiting for it, and
 * lets two reapers (the worker and an operator) run at once without
 * queueing.  Keys go first, then tokens, then quotes, each getting what is
 * left of max_rows.  Before ALTER EXTENSION UPDATE to 0.8 there is no
 * quote table and quotes are skipped.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"

#include "common/args.h"
#include "idem/idempotency.h"
#include "common/order_engine.h"
#include "common/internal_sql.h"

PG_FUNCTION_INFO_V1(oe_reap_expired_keys);

/* the SQL function's ceiling on one batch; the C API takes any positive */
#define OE_REAP_MAX_ROWS	1000000

static SPIPlanPtr plan_reap_keys = NULL;
static SPIPlanPtr plan_reap_tokens = NULL;
static SPIPlanPtr plan_reap_quotes = NULL;

/*
 * See idempotency.h.  Needs a transaction and an active snapshot, as any
 * SPI caller does; may be called with or without an SPI connection open.
 */
int64
OeReapExpiredKeys(int32 max_rows)
{
	Oid			types[1] = {INT4OID};
	Datum		args[1];
	int64		reaped = 0;

	if (max_rows <= 0)
		return 0;

	OeSqlConnect();
	if (plan_reap_tokens == NULL)
	{
		plan_reap_keys = OeKeepPlan(
			"DELETE FROM order_engine.idempotency_keys k USING ("
			" SELECT scope, key FROM order_engine.idempotency_keys"
			" WHERE expires_at OPERATOR(pg_catalog.<=) pg_catalog.now()"
			" ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED) d"
			" WHERE k.scope OPERATOR(pg_catalog.=) d.scope AND k.key OPERATOR(pg_catalog.=) d.key",
			1, types);
		plan_reap_tokens = OeKeepPlan(
			"DELETE FROM order_engine.checkout_tokens t USING ("
			" SELECT token_hash FROM order_engine.checkout_tokens"
			" WHERE expires_at OPERATOR(pg_catalog.<=) pg_catalog.now()"
			" ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED) d"
			" WHERE t.token_hash OPERATOR(pg_catalog.=) d.token_hash",
			1, types);
	}

	args[0] = Int32GetDatum(max_rows);
	if (OeExecPlan(plan_reap_keys, args, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not reap idempotency keys");
	reaped = (int64) SPI_processed;

	if (reaped < max_rows)
	{
		args[0] = Int32GetDatum(max_rows - (int32) reaped);
		if (OeExecPlan(plan_reap_tokens, args, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not reap checkout tokens");
		reaped += (int64) SPI_processed;
	}
	if (reaped < max_rows && OeTableExists("checkout_quotes"))
	{
		/* prepared once the table exists (0.8) */
		if (plan_reap_quotes == NULL)
			plan_reap_quotes = OeKeepPlan(
				"DELETE FROM order_engine.checkout_quotes q USING ("
				" SELECT quote_hash FROM order_engine.checkout_quotes"
				" WHERE expires_at OPERATOR(pg_catalog.<=) pg_catalog.now()"
				" ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED) d"
				" WHERE q.quote_hash OPERATOR(pg_catalog.=) d.quote_hash",
				1, types);
		args[0] = Int32GetDatum(max_rows - (int32) reaped);
		if (OeExecPlan(plan_reap_quotes, args, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not reap checkout quotes");
		reaped += (int64) SPI_processed;
	}
	SPI_finish();
	return reaped;
}

/*
 * reap_expired_keys(max_rows integer DEFAULT 1000) RETURNS integer
 *
 * Not STRICT in SQL (order_engine--0.3--0.4.sql), so a null max_rows is
 * the 22004 error here rather than a silent null result.
 */
Datum
oe_reap_expired_keys(PG_FUNCTION_ARGS)
{
	int32		max_rows;

	CheckNotNull(fcinfo, 0, "max_rows");
	max_rows = PG_GETARG_INT32(0);
	CheckMaxRows(max_rows, OE_REAP_MAX_ROWS);
	PG_RETURN_INT32((int32) OeReapExpiredKeys(max_rows));
}
