/*-------------------------------------------------------------------------
 *
 * idem_finish.c
 *	  idem_finish (store the response, the key is completed) and idem_abort
 *	  (delete the key, so a retry starts afresh), each by the claim's
 *	  session or its claim token; and why neither touched a row.
 *
 * Without a token they keep the same-session rule; with one they work from
 * any session, and fail with OE017 once the claim was taken over (the
 * taker drew a new token).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "common/errors.h"
#include "common/internal_sql.h"
#include "idem/idempotency.h"
#include "idem/idem_internal.h"

/* the _v2 symbols are 0.6's (see idem_begin.c); this library serves both */
PG_FUNCTION_INFO_V1(oe_idem_finish);
PG_FUNCTION_INFO_V1(oe_idem_abort);
PG_FUNCTION_INFO_V1(oe_idem_finish_v2);
PG_FUNCTION_INFO_V1(oe_idem_abort_v2);

/*
 * After idem_finish or idem_abort touched no row: say why, as an error.
 */
static void
raise_not_held(const OeIdemPlans *plans, text *scope, text *key,
			   const char *action, bool with_token)
{
	Datum		args[2] = {PointerGetDatum(scope), PointerGetDatum(key)};
	char	   *state;

	if (OeExecPlan(plans->diagnose, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read idempotency key");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OE_IDEMPOTENCY_KEY_NOT_FOUND),
				 errmsg("cannot %s idempotency key \"%s\" in scope \"%s\": it does not exist",
						action, text_to_cstring(key), text_to_cstring(scope)),
				 errhint("Call idem_begin first; an expired key may have been reaped.")));

	state = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, Anum_diagnose_state);
	if (strcmp(state, "completed") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OE_IDEMPOTENCY_CLAIM_NOT_HELD),
				 errmsg("cannot %s idempotency key \"%s\" in scope \"%s\": it is already completed",
						action, text_to_cstring(key), text_to_cstring(scope)),
				 errdetail("Its response was stored by an earlier idem_finish.")));
	if (with_token)
		ereport(ERROR,
				(errcode(ERRCODE_OE_IDEMPOTENCY_CLAIM_NOT_HELD),
				 errmsg("cannot %s idempotency key \"%s\" in scope \"%s\": the claim token is not the current claim's",
						action, text_to_cstring(key), text_to_cstring(scope)),
				 errhint("A claim older than order_engine.idempotency_lease may have been taken over by another caller.")));
	ereport(ERROR,
			(errcode(ERRCODE_OE_IDEMPOTENCY_CLAIM_NOT_HELD),
			 errmsg("cannot %s idempotency key \"%s\" in scope \"%s\": this session does not hold its claim",
					action, text_to_cstring(key), text_to_cstring(scope)),
			 errdetail("The claim is held by the session of process %s.",
					   SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, Anum_diagnose_claim_pid)),
			 errhint("A claim older than order_engine.idempotency_lease may have been taken over by another caller.")));
}

/*
 * The hash of the claim token in argument argno, if the function has that
 * argument and it is not null; a token of the wrong shape is 22023.
 */
static bytea *
claim_arg(FunctionCallInfo fcinfo, int argno)
{
	text	   *t;

	if (PG_NARGS() <= argno || PG_ARGISNULL(argno))
		return NULL;
	t = PG_GETARG_TEXT_PP(argno);
	if (VARSIZE_ANY_EXHDR(t) != OE_TOKEN_TEXT_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid claim token"),
				 errdetail("A claim token is the %d-character text idem_begin returned.",
						   OE_TOKEN_TEXT_LEN)));
	return OeSha256Bytea(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
}

/*
 * idem_finish(scope text, key text, response jsonb, claim text DEFAULT NULL)
 *		RETURNS void
 * (three arguments before 0.6: PG_NARGS tells.)
 */
static Datum
idem_finish(FunctionCallInfo fcinfo)
{
	text	   *scope = CheckIdemText(fcinfo, 0, "scope", OE_IDEM_MAX_SCOPE_LEN);
	text	   *key = CheckIdemText(fcinfo, 1, "key", OE_IDEM_MAX_KEY_LEN);
	bytea	   *claim = claim_arg(fcinfo, 3);
	Datum		args[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', claim ? ' ' : 'n'};
	const OeIdemPlans *plans;
	int			done;

	CheckNotNull(fcinfo, 2, "response");

	args[0] = PointerGetDatum(scope);
	args[1] = PointerGetDatum(key);
	args[2] = Int64GetDatum(OeIdemClaimOwner());
	args[3] = PointerGetDatum(PG_GETARG_JSONB_P(2));
	args[4] = PointerGetDatum(claim);

	/* READ COMMITTED, the common case: no SQL (idem_key_row.c) */
	done = OeIdemKeyFinishDirect(scope, key, DatumGetInt64(args[2]),
								 DatumGetJsonbP(args[3]), claim);
	if (done == 1)
		PG_RETURN_VOID();

	OeSqlConnect();
	plans = OeIdemPlansGet();
	if (done == -1)
	{
		if (OeExecPlan(plans->finish, args, nulls, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not finish idempotency key");
		done = (SPI_processed == 1);
	}
	if (!done)
		raise_not_held(plans, scope, key, "finish", claim != NULL);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * idem_abort(scope text, key text, claim text DEFAULT NULL) RETURNS void
 *
 * Deletes the claimed key, so that a retry starts afresh (with any
 * request: nothing was done under the old one).
 */
Datum
oe_idem_abort(PG_FUNCTION_ARGS)
{
	text	   *scope = CheckIdemText(fcinfo, 0, "scope", OE_IDEM_MAX_SCOPE_LEN);
	text	   *key = CheckIdemText(fcinfo, 1, "key", OE_IDEM_MAX_KEY_LEN);
	bytea	   *claim = claim_arg(fcinfo, 2);
	Datum		args[4];
	char		nulls[4] = {' ', ' ', ' ', claim ? ' ' : 'n'};
	const OeIdemPlans *plans;

	args[0] = PointerGetDatum(scope);
	args[1] = PointerGetDatum(key);
	args[2] = Int64GetDatum(OeIdemClaimOwner());
	args[3] = PointerGetDatum(claim);

	OeSqlConnect();
	plans = OeIdemPlansGet();
	if (OeExecPlan(plans->abort_key, args, nulls, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not abort idempotency key");
	if (SPI_processed != 1)
		raise_not_held(plans, scope, key, "abort", claim != NULL);
	SPI_finish();
	PG_RETURN_VOID();
}

/* not SECURITY DEFINER, like idem_begin: as the owner through internal_sql.c */
Datum
oe_idem_finish(PG_FUNCTION_ARGS)
{
	return OeInternalCall(fcinfo, idem_finish);
}

Datum
oe_idem_finish_v2(PG_FUNCTION_ARGS)
{
	return OeInternalCall(fcinfo, idem_finish);
}

Datum
oe_idem_abort_v2(PG_FUNCTION_ARGS)
{
	return oe_idem_abort(fcinfo);
}
