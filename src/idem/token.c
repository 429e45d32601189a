/*-------------------------------------------------------------------------
 *
 * token.c
 *	  One-time checkout tokens: issue_token and consume_token.
 *
 * A token is 32 bytes from pg_strong_random, handed out as 43 characters
 * of base64url.  Only its SHA-256 is stored (order_engine.checkout_tokens),
 * so a copy of the table, a dump or a reader of it cannot replay tokens;
 * 256 random bits make a salt and a slow hash unnecessary.
 *
 * consume_token is one DELETE ... WHERE hash, buyer and expiry match: the
 * row lock makes a second consumer wait for the first, and once the first
 * commits the row is gone, so exactly one caller sees "true".  If the
 * first rolls back, the token is still there for the next.  A wrong buyer
 * or an unknown, used or expired token is the business answer "false",
 * not an error; a wrong buyer does not burn the token.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "common/args.h"
#include "idem/idempotency.h"
#include "common/order_engine.h"
#include "common/internal_sql.h"
#include "common/interval_check.h"

PG_FUNCTION_INFO_V1(oe_issue_token);
PG_FUNCTION_INFO_V1(oe_consume_token);

#define TOKENS_TABLE "order_engine.checkout_tokens"

static SPIPlanPtr plan_issue = NULL;
static SPIPlanPtr plan_consume = NULL;

/*
 * issue_token(buyer_id bigint, ttl interval) RETURNS text
 */
Datum
oe_issue_token(PG_FUNCTION_ARGS)
{
	char	   *token;
	bytea	   *hash;
	Interval   *ttl;
	TimestampTz expires;
	Datum		args[3];

	CheckNotNull(fcinfo, 0, "buyer_id");
	CheckNotNull(fcinfo, 1, "ttl");
	ttl = PG_GETARG_INTERVAL_P(1);
	expires = OeIntervalExpiry(ttl, "ttl", OE_MAX_TTL_YEARS);

	token = OeNewSecretToken("checkout token", &hash);
	args[0] = PointerGetDatum(hash);
	args[1] = PG_GETARG_DATUM(0);
	args[2] = TimestampTzGetDatum(expires);

	OeSqlConnect();
	if (plan_issue == NULL)
	{
		Oid			types[3] = {BYTEAOID, INT8OID, TIMESTAMPTZOID};

		plan_issue = OeKeepPlan("INSERT INTO " TOKENS_TABLE
							   " (token_hash, buyer_id, created_at, expires_at)"
							   " VALUES ($1, $2, pg_catalog.now(), $3)",
							   3, types);
	}
	if (OeExecPlan(plan_issue, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not store checkout token");
	SPI_finish();

	PG_RETURN_TEXT_P(cstring_to_text(token));
}

/*
 * consume_token(buyer_id bigint, token text) RETURNS boolean
 */
Datum
oe_consume_token(PG_FUNCTION_ARGS)
{
	text	   *token;
	Datum		args[2];
	bool		consumed;

	CheckNotNull(fcinfo, 0, "buyer_id");
	CheckNotNull(fcinfo, 1, "token");
	token = PG_GETARG_TEXT_PP(1);

	/* nothing we issued has another length: no need to hash or look */
	if (VARSIZE_ANY_EXHDR(token) != OE_TOKEN_TEXT_LEN)
		PG_RETURN_BOOL(false);

	args[0] = PG_GETARG_DATUM(0);
	args[1] = PointerGetDatum(OeSha256Bytea(VARDATA_ANY(token), OE_TOKEN_TEXT_LEN));

	OeSqlConnect();
	if (plan_consume == NULL)
	{
		Oid			types[2] = {INT8OID, BYTEAOID};

		plan_consume = OeKeepPlan("DELETE FROM " TOKENS_TABLE
								 " WHERE token_hash OPERATOR(pg_catalog.=) $2"
								 " AND buyer_id OPERATOR(pg_catalog.=) $1"
								 " AND expires_at OPERATOR(pg_catalog.>) pg_catalog.now()",
								 2, types);
	}
	if (OeExecPlan(plan_consume, args, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not consume checkout token");
	consumed = SPI_processed == 1;
	SPI_finish();

	PG_RETURN_BOOL(consumed);
}
