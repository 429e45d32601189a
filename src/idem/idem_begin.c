/*-------------------------------------------------------------------------
 *
 * idem_begin.c
 *	  idem_begin: claim an idempotency key, or answer that it is in
 *	  progress or completed (with its stored response).
 *
 * idem_begin must never queue behind another caller.  A plain INSERT ...
 * ON CONFLICT DO NOTHING would wait for a concurrent transaction that
 * inserted the same key and has not committed yet, so idem_begin first
 * tries a transaction-level advisory lock on a 64-bit hash of (scope, key)
 * without waiting: whoever holds it is inside idem_begin or inside the
 * transaction that made the claim, so "in_progress" is the answer.
 * With the lock, idem_begin reads the row without locking it and inserts
 * only a key it did not find, so the INSERT never waits: nobody else can
 * be inserting that key, and an existing row that a concurrent
 * idem_finish or reaper is changing is never touched by the INSERT.  To
 * change an existing row (take over a stale claim, restart an expired
 * key) it locks it with SKIP LOCKED, and a busy row is "in_progress".  A
 * hash collision between two keys can only produce a spurious
 * "in_progress" while the other key's transaction runs.
 *
 * A claim older than order_engine.idempotency_lease whose transaction has
 * ended may be taken over; the taker draws a new claim token.  The rest of
 * the design is in idempotency.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "common/errors.h"
#include "common/internal_sql.h"
#include "common/interval_check.h"
#include "common/lock_tags.h"
#include "common/order_engine.h"
#include "idem/idempotency.h"
#include "idem/idem_internal.h"

/*
 * Versioned entry points (as pg_stat_statements does): 0.6's SQL functions
 * name the _v2 symbols, so a backend that still runs a 0.5 library gets a
 * clean "could not find function" after an upgrade instead of a row of the
 * wrong shape; this library serves both names.
 */
PG_FUNCTION_INFO_V1(oe_idem_begin);
PG_FUNCTION_INFO_V1(oe_idem_begin_v2);

/* what idem_begin decided */
typedef enum IdemOutcome
{
	IDEM_STARTED,
	IDEM_IN_PROGRESS,
	IDEM_COMPLETED,
	IDEM_RESET,					/* expired key: start afresh */
	IDEM_TAKE_OVER				/* stale claim: take it over */
} IdemOutcome;

/*
 * Try, without waiting, the transaction-level lock on (scope, key).
 */
static LockAcquireResult
try_key_lock(text *scope, text *key, LOCKTAG *tag)
{
	uint64		h;

	h = hash_bytes_extended((const unsigned char *) VARDATA_ANY(scope),
							VARSIZE_ANY_EXHDR(scope), 0);
	h = hash_bytes_extended((const unsigned char *) VARDATA_ANY(key),
							VARSIZE_ANY_EXHDR(key), h);
	OeLockTagIdemKey(tag, h);
	return LockAcquire(tag, ExclusiveLock, false, true);
}

/*
 * Read the row the last SPI read returned (SPI_tuptable, one row: columns
 * fingerprint, state, response, claimed_at, expires_at); the response is
 * copied to the upper context.
 */
static void
row_from_spi(IdemKeyRow *row)
{
	HeapTuple	tup = SPI_tuptable->vals[0];
	TupleDesc	desc = SPI_tuptable->tupdesc;
	bool		isnull;
	Datum		d;

	row->fingerprint = DatumGetByteaPP(SPI_getbinval(tup, desc, Anum_key_fingerprint, &isnull));
	row->completed = strcmp(SPI_getvalue(tup, desc, Anum_key_state), "completed") == 0;
	d = SPI_getbinval(tup, desc, Anum_key_response, &row->response_null);
	row->response = row->response_null ? (Datum) 0 : SPI_datumTransfer(d, false, -1);
	d = SPI_getbinval(tup, desc, Anum_key_claimed_at, &row->claimed_at_null);
	row->claimed_at = row->claimed_at_null ? 0 : DatumGetTimestampTz(d);
	d = SPI_getbinval(tup, desc, Anum_key_expires_at, &row->expires_at_null);
	row->expires_at = row->expires_at_null ? 0 : DatumGetTimestampTz(d);
}

/*
 * What an existing key row means for this request.  *response is set
 * for IDEM_COMPLETED.
 */
static IdemOutcome
classify_row(const IdemKeyRow *row, bytea *fingerprint, text *scope, text *key,
			 Datum *response, bool *response_null)
{
	TimestampTz now = GetCurrentTransactionStartTimestamp();

	if (!row->expires_at_null && row->expires_at <= now)
		return IDEM_RESET;

	if (VARSIZE_ANY_EXHDR(row->fingerprint) != VARSIZE_ANY_EXHDR(fingerprint) ||
		memcmp(VARDATA_ANY(row->fingerprint), VARDATA_ANY(fingerprint),
			   VARSIZE_ANY_EXHDR(fingerprint)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OE_IDEMPOTENCY_KEY_REUSED),
				 errmsg("idempotency key \"%s\" in scope \"%s\" was used with a different request",
						text_to_cstring(key), text_to_cstring(scope)),
				 errdetail("A key identifies one request; its fingerprint (SHA-256 of the request's jsonb text) differs."),
				 errhint("Use a new key for a new request.")));

	if (row->completed)
	{
		*response = row->response;
		*response_null = row->response_null;
		return IDEM_COMPLETED;
	}
	if (row->claimed_at_null ||
		row->claimed_at < now - (int64) OeIdempotencyLeaseMs * 1000)
		return IDEM_TAKE_OVER;
	return IDEM_IN_PROGRESS;
}

/*
 * The claim by SQL: read the key and insert it if unseen, in one
 * statement (args as the claim statement takes them).
 */
static IdemOutcome
claim_by_sql(const OeIdemPlans *plans, Datum *args, bytea *fingerprint,
			 text *scope, text *key, Datum *response, bool *response_null)
{
	bool		isnull;
	IdemKeyRow	row;

	if (OeExecPlan(plans->claim, args, NULL, false, 0) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not claim idempotency key");
	(void) SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, Anum_key_inserted, &isnull);
	if (!isnull)
		return IDEM_STARTED;
	(void) SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, Anum_key_state, &isnull);
	/* no row seen, none inserted: one was committed meanwhile */
	if (isnull)
		return IDEM_IN_PROGRESS;
	row_from_spi(&row);
	return classify_row(&row, fingerprint, scope, key, response, response_null);
}

/*
 * An expired key or a stale claim is changed under its row lock, by SQL
 * (rare); a locked row is busy.  Returns the outcome after the change.
 */
static IdemOutcome
change_by_sql(IdemOutcome outcome, const OeIdemPlans *plans, Datum *args,
			  bytea *fingerprint, text *scope, text *key, Datum *response,
			  bool *response_null)
{
	IdemKeyRow	row;

	if (OeExecPlan(plans->read_locked, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not lock idempotency key");
	if (SPI_processed == 0)
		return IDEM_IN_PROGRESS;
	row_from_spi(&row);
	outcome = classify_row(&row, fingerprint, scope, key, response, response_null);
	if (outcome == IDEM_RESET)
	{
		if (OeExecPlan(plans->reset, args, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not reset idempotency key");
		return IDEM_STARTED;
	}
	if (outcome == IDEM_TAKE_OVER)
	{
		Datum		targs[5] = {args[0], args[1], args[3], args[4], args[6]};

		if (OeExecPlan(plans->takeover, targs, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not take over idempotency key");
		ereport(LOG,
				(errmsg("order_engine: took over the stale claim on idempotency key \"%s\" in scope \"%s\"",
						text_to_cstring(key), text_to_cstring(scope))));
		return IDEM_STARTED;
	}
	return outcome;
}

/*
 * idem_begin(scope text, key text, request jsonb, ttl interval)
 *		RETURNS TABLE(state text, response jsonb, claim text)
 *
 * Before 0.6 the SQL function returned only (state, response); this C
 * function serves both, by the row type its caller declared, so an old
 * install script and a new library (or the reverse) still agree.
 */
static Datum
idem_begin(FunctionCallInfo fcinfo)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	text	   *scope = CheckIdemText(fcinfo, 0, "scope", OE_IDEM_MAX_SCOPE_LEN);
	text	   *key = CheckIdemText(fcinfo, 1, "key", OE_IDEM_MAX_KEY_LEN);
	Jsonb	   *request;
	Interval   *ttl;
	TimestampTz expires;
	bytea	   *fingerprint;
	char	   *request_text;
	IdemOutcome outcome = IDEM_IN_PROGRESS;
	Datum		response = (Datum) 0;
	bool		response_null = true;
	Datum		values[3];
	bool		nulls[3] = {false, false, true};
	char	   *claim_token = NULL;
	bytea	   *claim_hash = NULL;
	LOCKTAG		tag;
	LockAcquireResult lock;
	bool		with_claim = false;
	static const char *const state_names[] = {"started", "in_progress", "completed"};

	CheckNotNull(fcinfo, 2, "request");
	CheckNotNull(fcinfo, 3, "ttl");
	request = PG_GETARG_JSONB_P(2);
	ttl = PG_GETARG_INTERVAL_P(3);
	expires = OeIntervalExpiry(ttl, "ttl", OE_MAX_TTL_YEARS);

	/* jsonb's text form is canonical: keys sorted, duplicates removed */
	request_text = JsonbToCString(NULL, &request->root, VARSIZE(request));
	fingerprint = OeSha256Bytea(request_text, strlen(request_text));

	/*
	 * The caller's row type is the declared one (a function with OUT
	 * columns takes no column definition list); copying it saves building
	 * it again from pg_proc on every call.
	 */
	InitMaterializedSRF(fcinfo, rsinfo != NULL && IsA(rsinfo, ReturnSetInfo) &&
						rsinfo->expectedDesc != NULL ?
						MAT_SRF_USE_EXPECTED_DESC : 0);

	lock = try_key_lock(scope, key, &tag);
	if (lock == LOCKACQUIRE_NOT_AVAIL)
		outcome = IDEM_IN_PROGRESS;
	else
	{
		Datum		args[7];
		IdemKeyRow	row;
		int			direct;

		/*
		 * READ COMMITTED, the common case: no SQL (idem_key_row.c), and a
		 * claim token drawn only for a new claim
		 */
		direct = OeIdemKeyClaimDirect(scope, key, fingerprint, OeIdemClaimOwner(),
									  expires, OeIdemKeysHaveClaim(),
									  &claim_token, &claim_hash, &row);
		with_claim = (claim_token != NULL);
		if (direct == 1)
			outcome = IDEM_STARTED;
		else if (direct == 0)
			outcome = classify_row(&row, fingerprint, scope, key, &response, &response_null);

		if (direct == -1 || outcome == IDEM_RESET || outcome == IDEM_TAKE_OVER)
		{
			const OeIdemPlans *plans;

			if (claim_token == NULL)
				claim_token = OeNewSecretToken("claim token", &claim_hash);
			args[0] = PointerGetDatum(scope);
			args[1] = PointerGetDatum(key);
			args[2] = PointerGetDatum(fingerprint);
			args[3] = Int64GetDatum(OeIdemClaimOwner());
			args[4] = Int32GetDatum(MyProcPid);
			args[5] = TimestampTzGetDatum(expires);
			args[6] = PointerGetDatum(claim_hash);
			OeSqlConnect();
			plans = OeIdemPlansGet();
			with_claim = plans->with_claim;
			if (direct == -1)
				outcome = claim_by_sql(plans, args, fingerprint, scope, key,
									   &response, &response_null);
			if (outcome == IDEM_RESET || outcome == IDEM_TAKE_OVER)
				outcome = change_by_sql(outcome, plans, args, fingerprint, scope,
										key, &response, &response_null);
			SPI_finish();
		}

		/*
		 * Only a claim needs the lock until the end of the transaction; a
		 * caller told "completed" may go on with a long transaction
		 * without making others wait for its answer.
		 */
		if (outcome != IDEM_STARTED && lock == LOCKACQUIRE_OK)
			LockRelease(&tag, ExclusiveLock, false);
	}

	values[0] = CStringGetTextDatum(state_names[outcome]);
	values[1] = response;
	nulls[1] = response_null;
	if (outcome == IDEM_STARTED && with_claim)
	{
		values[2] = CStringGetTextDatum(claim_token);
		nulls[2] = false;
	}
	if (rsinfo->setDesc->natts < 3)
		nulls[2] = true;		/* the 0.5 row type has no claim column */
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}

/*
 * The two calls of every idempotent request are not SECURITY DEFINER: they
 * run as the owner through internal_sql.c, without a function SET's per-call
 * cost.  idem_abort, a rare call, stays SECURITY DEFINER.
 */
Datum
oe_idem_begin(PG_FUNCTION_ARGS)
{
	return OeInternalCall(fcinfo, idem_begin);
}

Datum
oe_idem_begin_v2(PG_FUNCTION_ARGS)
{
	return OeInternalCall(fcinfo, idem_begin);
}
