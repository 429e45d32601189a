/*-------------------------------------------------------------------------
 *
 * idempotency.c
 *	  Idempotency keys: idem_begin, idem_finish and idem_abort.
 *
 * A key lives in order_engine.idempotency_keys, keyed by (scope, key),
 * with the SHA-256 of the request's canonical jsonb text, a state
 * (in_progress or completed), the stored response and the claim: which
 * session holds it and since when.
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
 * The claim belongs to the session (a random 63-bit id drawn once per
 * backend), not to the transaction, so a caller may also begin in one
 * transaction and finish in a later one on the same connection.  A claim
 * older than order_engine.idempotency_lease whose transaction has ended
 * may be taken over; the old holder's idem_finish then fails with OE017.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "errors.h"
#include "idempotency.h"
#include "internal_sql.h"
#include "order_engine.h"

PG_FUNCTION_INFO_V1(oe_idem_begin);
PG_FUNCTION_INFO_V1(oe_idem_finish);
PG_FUNCTION_INFO_V1(oe_idem_abort);

#define KEYS_TABLE "order_engine.idempotency_keys"

/* the claim owner of this session; 0 until first needed */
static int64 session_claim_owner = 0;

/* kept plans, prepared on first use */
static SPIPlanPtr plan_claim = NULL;
static SPIPlanPtr plan_read_locked = NULL;
static SPIPlanPtr plan_reset = NULL;
static SPIPlanPtr plan_takeover = NULL;
static SPIPlanPtr plan_finish = NULL;
static SPIPlanPtr plan_abort = NULL;
static SPIPlanPtr plan_diagnose = NULL;

/* what idem_begin decided */
typedef enum IdemOutcome
{
	IDEM_STARTED,
	IDEM_IN_PROGRESS,
	IDEM_COMPLETED,
	IDEM_RESET,					/* expired key: start afresh */
	IDEM_TAKE_OVER				/* stale claim: take it over */
} IdemOutcome;

static void
prepare_plans(void)
{
	Oid			t_ins[6] = {TEXTOID, TEXTOID, BYTEAOID, INT8OID, INT4OID, TIMESTAMPTZOID};
	Oid			t_key[2] = {TEXTOID, TEXTOID};
	Oid			t_reset[6] = {TEXTOID, TEXTOID, BYTEAOID, INT8OID, INT4OID, TIMESTAMPTZOID};
	Oid			t_take[4] = {TEXTOID, TEXTOID, INT8OID, INT4OID};
	Oid			t_finish[4] = {TEXTOID, TEXTOID, INT8OID, JSONBOID};
	Oid			t_abort[3] = {TEXTOID, TEXTOID, INT8OID};

	if (plan_diagnose != NULL)
		return;

	/*
	 * Read the key and insert it only if it was not seen, in one
	 * statement: INSERT ... ON CONFLICT alone would wait for a transaction
	 * that is changing an existing row (a concurrent idem_finish).  The
	 * last column says whether the row was inserted.
	 */
	plan_claim = OeKeepPlan(
		"WITH cur AS ("
		" SELECT fingerprint, state, response, claimed_at, expires_at FROM " KEYS_TABLE
		" WHERE scope OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.=) $2),"
		" ins AS ("
		" INSERT INTO " KEYS_TABLE
		" (scope, key, fingerprint, state, claim_owner, claim_pid, claimed_at, created_at, expires_at)"
		" SELECT $1, $2, $3, 'in_progress', $4, $5, pg_catalog.now(), pg_catalog.now(), $6"
		" WHERE NOT EXISTS (SELECT FROM cur)"
		" ON CONFLICT (scope, key) DO NOTHING RETURNING true AS inserted)"
		" SELECT cur.*, (SELECT inserted FROM ins) FROM (SELECT) AS one LEFT JOIN cur ON true",
		6, t_ins);
	plan_read_locked = OeKeepPlan(
		"SELECT fingerprint, state, response, claimed_at, expires_at FROM " KEYS_TABLE
		" WHERE scope OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.=) $2"
		" FOR UPDATE SKIP LOCKED",
		2, t_key);
	plan_reset = OeKeepPlan(
		"UPDATE " KEYS_TABLE
		" SET fingerprint = $3, state = 'in_progress', response = NULL,"
		" claim_owner = $4, claim_pid = $5, claimed_at = pg_catalog.now(),"
		" created_at = pg_catalog.now(), completed_at = NULL, expires_at = $6"
		" WHERE scope OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.=) $2",
		6, t_reset);
	plan_takeover = OeKeepPlan(
		"UPDATE " KEYS_TABLE
		" SET claim_owner = $3, claim_pid = $4, claimed_at = pg_catalog.now()"
		" WHERE scope OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.=) $2",
		4, t_take);
	plan_finish = OeKeepPlan(
		"UPDATE " KEYS_TABLE
		" SET state = 'completed', response = $4, completed_at = pg_catalog.now(),"
		" claim_owner = NULL, claim_pid = NULL"
		" WHERE scope OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.=) $2"
		" AND state OPERATOR(pg_catalog.=) 'in_progress' AND claim_owner OPERATOR(pg_catalog.=) $3",
		4, t_finish);
	plan_abort = OeKeepPlan(
		"DELETE FROM " KEYS_TABLE
		" WHERE scope OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.=) $2"
		" AND state OPERATOR(pg_catalog.=) 'in_progress' AND claim_owner OPERATOR(pg_catalog.=) $3",
		3, t_abort);
	plan_diagnose = OeKeepPlan(
		"SELECT state, claim_pid FROM " KEYS_TABLE
		" WHERE scope OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.=) $2",
		2, t_key);
}

/*
 * The id this session's claims carry; drawn from the strong random source
 * so that no other session, now or after a pid is reused, carries it.
 */
static int64
claim_owner(void)
{
	while (session_claim_owner == 0)
	{
		uint64		r;

		if (!pg_strong_random(&r, sizeof(r)))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate random claim id")));
		session_claim_owner = (int64) (r & UINT64CONST(0x7FFFFFFFFFFFFFFF));
	}
	return session_claim_owner;
}

/*
 * scope and key: not null, not empty, at most maxlen bytes.
 */
static inline text *
CheckIdemText(FunctionCallInfo fcinfo, int argno, const char *what, int maxlen)
{
	text	   *t;
	int			len;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
	t = PG_GETARG_TEXT_PP(argno);
	len = VARSIZE_ANY_EXHDR(t);
	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", what)));
	if (len > maxlen)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is too long", what),
				 errdetail("It is %d bytes long; the limit is %d bytes.", len, maxlen)));
	return t;
}

static inline void
CheckNotNull(FunctionCallInfo fcinfo, int argno, const char *what)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
}

/*
 * now() + ttl, which must lie in the future and at most OE_MAX_TTL_YEARS
 * ahead.  Each field of the interval is bounded before the addition, so
 * that a huge ttl is a 22023 naming the limit rather than the timestamp
 * arithmetic's "timestamp out of range".  Shared with issue_token.
 */
TimestampTz
OeExpiryFromTtl(Interval *ttl)
{
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	TimestampTz expires;

	if (ttl->month > OE_MAX_TTL_YEARS * MONTHS_PER_YEAR ||
		ttl->month < -OE_MAX_TTL_YEARS * MONTHS_PER_YEAR ||
		ttl->day > OE_MAX_TTL_YEARS * DAYS_PER_YEAR ||
		ttl->day < -OE_MAX_TTL_YEARS * DAYS_PER_YEAR ||
		ttl->time > (int64) (OE_MAX_TTL_YEARS * DAYS_PER_YEAR) * USECS_PER_DAY ||
		ttl->time < -(int64) (OE_MAX_TTL_YEARS * DAYS_PER_YEAR) * USECS_PER_DAY)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ttl must be at most %d years", OE_MAX_TTL_YEARS),
				 errdetail("The ttl was %s.",
						   DatumGetCString(DirectFunctionCall1(interval_out,
															   IntervalPGetDatum(ttl))))));
	expires = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
													  TimestampTzGetDatum(now),
													  IntervalPGetDatum(ttl)));
	if (expires <= now)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ttl must be positive"),
				 errdetail("The ttl was %s.",
						   DatumGetCString(DirectFunctionCall1(interval_out,
															   IntervalPGetDatum(ttl))))));
	if (expires - now > (int64) (OE_MAX_TTL_YEARS * DAYS_PER_YEAR) * USECS_PER_DAY)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ttl must be at most %d years", OE_MAX_TTL_YEARS),
				 errdetail("The ttl was %s.",
						   DatumGetCString(DirectFunctionCall1(interval_out,
															   IntervalPGetDatum(ttl))))));
	return expires;
}

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
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) (h >> 32), (uint32) h,
						 OE_IDEM_LOCK_FIELD4);
	return LockAcquire(tag, ExclusiveLock, false, true);
}

/*
 * Classify the row the last read returned (SPI_tuptable, one row):
 * columns fingerprint, state, response, claimed_at, expires_at.
 * *response is set (in the upper context) for IDEM_COMPLETED.
 */
static IdemOutcome
classify_row(bytea *fingerprint, text *scope, text *key, Datum *response,
			 bool *response_null)
{
	HeapTuple	tup = SPI_tuptable->vals[0];
	TupleDesc	desc = SPI_tuptable->tupdesc;
	bool		isnull;
	Datum		d;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	bytea	   *stored_fp;
	char	   *state;
	TimestampTz claimed_at;

	d = SPI_getbinval(tup, desc, 5, &isnull);
	if (!isnull && DatumGetTimestampTz(d) <= now)
		return IDEM_RESET;

	stored_fp = DatumGetByteaPP(SPI_getbinval(tup, desc, 1, &isnull));
	if (VARSIZE_ANY_EXHDR(stored_fp) != VARSIZE_ANY_EXHDR(fingerprint) ||
		memcmp(VARDATA_ANY(stored_fp), VARDATA_ANY(fingerprint),
			   VARSIZE_ANY_EXHDR(fingerprint)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OE_IDEMPOTENCY_KEY_REUSED),
				 errmsg("idempotency key \"%s\" in scope \"%s\" was used with a different request",
						text_to_cstring(key), text_to_cstring(scope)),
				 errdetail("A key identifies one request; its fingerprint (SHA-256 of the request's jsonb text) differs."),
				 errhint("Use a new key for a new request.")));

	state = SPI_getvalue(tup, desc, 2);
	if (strcmp(state, "completed") == 0)
	{
		d = SPI_getbinval(tup, desc, 3, response_null);
		if (!*response_null)
			*response = SPI_datumTransfer(d, false, -1);
		return IDEM_COMPLETED;
	}

	d = SPI_getbinval(tup, desc, 4, &isnull);
	claimed_at = isnull ? 0 : DatumGetTimestampTz(d);
	if (isnull || claimed_at < now - (int64) OeIdempotencyLeaseMs * 1000)
		return IDEM_TAKE_OVER;
	return IDEM_IN_PROGRESS;
}

/*
 * idem_begin(scope text, key text, request jsonb, ttl interval)
 *		RETURNS TABLE(state text, response jsonb)
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
	IdemOutcome outcome;
	Datum		response = (Datum) 0;
	bool		response_null = true;
	Datum		values[2];
	bool		nulls[2] = {false, false};
	LOCKTAG		tag;
	LockAcquireResult lock;
	static const char *const state_names[] = {"started", "in_progress", "completed"};

	CheckNotNull(fcinfo, 2, "request");
	CheckNotNull(fcinfo, 3, "ttl");
	request = PG_GETARG_JSONB_P(2);
	ttl = PG_GETARG_INTERVAL_P(3);
	expires = OeExpiryFromTtl(ttl);

	/* jsonb's text form is canonical: keys sorted, duplicates removed */
	request_text = JsonbToCString(NULL, &request->root, VARSIZE(request));
	fingerprint = OeSha256Bytea(request_text, strlen(request_text));

	InitMaterializedSRF(fcinfo, 0);

	lock = try_key_lock(scope, key, &tag);
	if (lock == LOCKACQUIRE_NOT_AVAIL)
		outcome = IDEM_IN_PROGRESS;
	else
	{
		Datum		args[6];
		bool		isnull;

		SPI_connect();
		prepare_plans();

		args[0] = PointerGetDatum(scope);
		args[1] = PointerGetDatum(key);
		args[2] = PointerGetDatum(fingerprint);
		args[3] = Int64GetDatum(claim_owner());
		args[4] = Int32GetDatum(MyProcPid);
		args[5] = TimestampTzGetDatum(expires);

		if (SPI_execute_plan(plan_claim, args, NULL, false, 0) != SPI_OK_SELECT ||
			SPI_processed != 1)
			elog(ERROR, "could not claim idempotency key");
		(void) SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 6, &isnull);
		if (!isnull)
			outcome = IDEM_STARTED;
		else
		{
			(void) SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
			/* no row seen, none inserted: one was committed meanwhile */
			outcome = isnull ? IDEM_IN_PROGRESS :
				classify_row(fingerprint, scope, key, &response, &response_null);

			/* changing it needs the row lock; a locked row is busy */
			if (outcome == IDEM_RESET || outcome == IDEM_TAKE_OVER)
			{
				if (SPI_execute_plan(plan_read_locked, args, NULL, false, 1) != SPI_OK_SELECT)
					elog(ERROR, "could not lock idempotency key");
				outcome = SPI_processed == 0 ? IDEM_IN_PROGRESS :
					classify_row(fingerprint, scope, key, &response, &response_null);
			}
			if (outcome == IDEM_RESET)
			{
				if (SPI_execute_plan(plan_reset, args, NULL, false, 0) != SPI_OK_UPDATE)
					elog(ERROR, "could not reset idempotency key");
				outcome = IDEM_STARTED;
			}
			else if (outcome == IDEM_TAKE_OVER)
			{
				Datum		targs[4] = {args[0], args[1], args[3], args[4]};

				if (SPI_execute_plan(plan_takeover, targs, NULL, false, 0) != SPI_OK_UPDATE)
					elog(ERROR, "could not take over idempotency key");
				ereport(LOG,
						(errmsg("order_engine: took over the stale claim on idempotency key \"%s\" in scope \"%s\"",
								text_to_cstring(key), text_to_cstring(scope))));
				outcome = IDEM_STARTED;
			}
		}
		SPI_finish();

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
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}

/*
 * After idem_finish or idem_abort touched no row: say why, as an error.
 */
static void
raise_not_held(text *scope, text *key, const char *action)
{
	Datum		args[2] = {PointerGetDatum(scope), PointerGetDatum(key)};
	char	   *state;

	if (SPI_execute_plan(plan_diagnose, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read idempotency key");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OE_IDEMPOTENCY_KEY_NOT_FOUND),
				 errmsg("cannot %s idempotency key \"%s\" in scope \"%s\": it does not exist",
						action, text_to_cstring(key), text_to_cstring(scope)),
				 errhint("Call idem_begin first; an expired key may have been reaped.")));

	state = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (strcmp(state, "completed") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OE_IDEMPOTENCY_CLAIM_NOT_HELD),
				 errmsg("cannot %s idempotency key \"%s\" in scope \"%s\": it is already completed",
						action, text_to_cstring(key), text_to_cstring(scope)),
				 errdetail("Its response was stored by an earlier idem_finish.")));
	ereport(ERROR,
			(errcode(ERRCODE_OE_IDEMPOTENCY_CLAIM_NOT_HELD),
			 errmsg("cannot %s idempotency key \"%s\" in scope \"%s\": this session does not hold its claim",
					action, text_to_cstring(key), text_to_cstring(scope)),
			 errdetail("The claim is held by the session of process %s.",
					   SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2)),
			 errhint("A claim older than order_engine.idempotency_lease may have been taken over by another caller.")));
}

/*
 * idem_finish(scope text, key text, response jsonb) RETURNS void
 */
static Datum
idem_finish(FunctionCallInfo fcinfo)
{
	text	   *scope = CheckIdemText(fcinfo, 0, "scope", OE_IDEM_MAX_SCOPE_LEN);
	text	   *key = CheckIdemText(fcinfo, 1, "key", OE_IDEM_MAX_KEY_LEN);
	Datum		args[4];

	CheckNotNull(fcinfo, 2, "response");

	args[0] = PointerGetDatum(scope);
	args[1] = PointerGetDatum(key);
	args[2] = Int64GetDatum(claim_owner());
	args[3] = PointerGetDatum(PG_GETARG_JSONB_P(2));

	SPI_connect();
	prepare_plans();
	if (SPI_execute_plan(plan_finish, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not finish idempotency key");
	if (SPI_processed != 1)
		raise_not_held(scope, key, "finish");
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * idem_abort(scope text, key text) RETURNS void
 *
 * Deletes the claimed key, so that a retry starts afresh (with any
 * request: nothing was done under the old one).
 */
Datum
oe_idem_abort(PG_FUNCTION_ARGS)
{
	text	   *scope = CheckIdemText(fcinfo, 0, "scope", OE_IDEM_MAX_SCOPE_LEN);
	text	   *key = CheckIdemText(fcinfo, 1, "key", OE_IDEM_MAX_KEY_LEN);
	Datum		args[3];

	args[0] = PointerGetDatum(scope);
	args[1] = PointerGetDatum(key);
	args[2] = Int64GetDatum(claim_owner());

	SPI_connect();
	prepare_plans();
	if (SPI_execute_plan(plan_abort, args, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not abort idempotency key");
	if (SPI_processed != 1)
		raise_not_held(scope, key, "abort");
	SPI_finish();
	PG_RETURN_VOID();
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
oe_idem_finish(PG_FUNCTION_ARGS)
{
	return OeInternalCall(fcinfo, idem_finish);
}
