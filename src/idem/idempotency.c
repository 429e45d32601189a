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
 * Behind a pooler the next call may come on any connection, so "started"
 * also returns a claim token: 32 random bytes as 43 base64url characters,
 * stored only as its SHA-256 (claim_hash), like a checkout token.
 * idem_finish and idem_abort with the token work from any session; a
 * takeover draws a new token, so the old one then fails with OE017.
 * Without a token they keep the same-session rule.
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
#include "utils/lsyscache.h"
#include "catalog/namespace.h"
#include "utils/timestamp.h"

#include "common/args.h"
#include "common/errors.h"
#include "idem/idempotency.h"
#include "common/internal_sql.h"
#include "common/order_engine.h"

/*
 * Versioned entry points (as pg_stat_statements does): 0.6's SQL functions
 * name the _v2 symbols, so a backend that still runs a 0.5 library gets a
 * clean "could not find function" after an upgrade instead of a row of the
 * wrong shape; this library serves both names.
 */
PG_FUNCTION_INFO_V1(oe_idem_begin);
PG_FUNCTION_INFO_V1(oe_idem_finish);
PG_FUNCTION_INFO_V1(oe_idem_abort);
PG_FUNCTION_INFO_V1(oe_idem_begin_v2);
PG_FUNCTION_INFO_V1(oe_idem_finish_v2);
PG_FUNCTION_INFO_V1(oe_idem_abort_v2);

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

/*
 * Does the key table have claim_hash?  Not before ALTER EXTENSION ...
 * UPDATE to 0.6: after the restart that loads this library and until the
 * update, the statements leave claim tokens out (no token is issued, and a
 * token given is never the claim's), so the API keeps working meanwhile.
 */
static bool
keys_have_claim_hash(void)
{
	return OeColumnExists("idempotency_keys", "claim_hash");
}

static bool plans_with_claim = false;
static void prepare_plans_for(bool with_claim);

static void
free_plans(void)
{
	SPIPlanPtr *plans[] = {&plan_claim, &plan_read_locked, &plan_reset, &plan_takeover,
	&plan_finish, &plan_abort, &plan_diagnose};

	for (int i = 0; i < lengthof(plans); i++)
		if (*plans[i] != NULL)
		{
			SPI_freeplan(*plans[i]);
			*plans[i] = NULL;
		}
}

static void
prepare_plans(void)
{
	bool		with_claim = keys_have_claim_hash();

	if (plan_diagnose != NULL && plans_with_claim != with_claim)
		free_plans();
	plans_with_claim = with_claim;
	prepare_plans_for(with_claim);
}

/* with_claim ? what 0.6 says : what the 0.5 table allows */
#define WITH_CLAIM(new_text, old_text) (with_claim ? (new_text) : (old_text))

static void
prepare_plans_for(bool with_claim)
{
	char	   *sql;

	Oid			t_ins[7] = {TEXTOID, TEXTOID, BYTEAOID, INT8OID, INT4OID, TIMESTAMPTZOID, BYTEAOID};
	Oid			t_key[2] = {TEXTOID, TEXTOID};
	Oid			t_reset[7] = {TEXTOID, TEXTOID, BYTEAOID, INT8OID, INT4OID, TIMESTAMPTZOID, BYTEAOID};
	Oid			t_take[5] = {TEXTOID, TEXTOID, INT8OID, INT4OID, BYTEAOID};
	Oid			t_finish[5] = {TEXTOID, TEXTOID, INT8OID, JSONBOID, BYTEAOID};
	Oid			t_abort[4] = {TEXTOID, TEXTOID, INT8OID, BYTEAOID};

	if (plan_diagnose != NULL)
		return;

	/*
	 * Read the key and insert it only if it was not seen, in one
	 * statement: INSERT ... ON CONFLICT alone would wait for a transaction
	 * that is changing an existing row (a concurrent idem_finish).  The
	 * last column says whether the row was inserted.
	 */
	sql = psprintf("WITH cur AS ("
				   " SELECT fingerprint, state, response, claimed_at, expires_at FROM " KEYS_TABLE
				   " WHERE scope OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.=) $2),"
				   " ins AS ("
				   " INSERT INTO " KEYS_TABLE
				   " (scope, key, fingerprint, state, claim_owner, claim_pid, claimed_at, created_at, expires_at%s)"
				   " SELECT $1, $2, $3, 'in_progress', $4, $5, pg_catalog.now(), pg_catalog.now(), $6%s"
				   " WHERE NOT EXISTS (SELECT FROM cur)"
				   " ON CONFLICT (scope, key) DO NOTHING RETURNING true AS inserted)"
				   " SELECT cur.*, (SELECT inserted FROM ins) FROM (SELECT) AS one LEFT JOIN cur ON true",
				   WITH_CLAIM(", claim_hash", ""), WITH_CLAIM(", $7", ""));
	plan_claim = OeKeepPlan(sql, 7, t_ins);
	plan_read_locked = OeKeepPlan(
		"SELECT fingerprint, state, response, claimed_at, expires_at FROM " KEYS_TABLE
		" WHERE scope OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.=) $2"
		" FOR UPDATE SKIP LOCKED",
		2, t_key);
	sql = psprintf("UPDATE " KEYS_TABLE
				   " SET fingerprint = $3, state = 'in_progress', response = NULL,"
				   " claim_owner = $4, claim_pid = $5, claimed_at = pg_catalog.now(),"
				   " created_at = pg_catalog.now(), completed_at = NULL, expires_at = $6%s"
				   " WHERE scope OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.=) $2",
				   WITH_CLAIM(", claim_hash = $7", ""));
	plan_reset = OeKeepPlan(sql, 7, t_reset);
	sql = psprintf("UPDATE " KEYS_TABLE
				   " SET claim_owner = $3, claim_pid = $4, claimed_at = pg_catalog.now()%s"
				   " WHERE scope OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.=) $2",
				   WITH_CLAIM(", claim_hash = $5", ""));
	plan_takeover = OeKeepPlan(sql, 5, t_take);
	sql = psprintf("UPDATE " KEYS_TABLE
				   " SET state = 'completed', response = $4, completed_at = pg_catalog.now(),"
				   " claim_owner = NULL, claim_pid = NULL%s"
				   " WHERE scope OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.=) $2"
				   " AND state OPERATOR(pg_catalog.=) 'in_progress'"
				   " AND CASE WHEN $5 IS NULL THEN claim_owner OPERATOR(pg_catalog.=) $3"
				   "          ELSE %s END",
				   WITH_CLAIM(", claim_hash = NULL", ""),
				   WITH_CLAIM("claim_hash OPERATOR(pg_catalog.=) $5", "false"));
	plan_finish = OeKeepPlan(sql, 5, t_finish);
	sql = psprintf("DELETE FROM " KEYS_TABLE
				   " WHERE scope OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.=) $2"
				   " AND state OPERATOR(pg_catalog.=) 'in_progress'"
				   " AND CASE WHEN $4 IS NULL THEN claim_owner OPERATOR(pg_catalog.=) $3"
				   "          ELSE %s END",
				   WITH_CLAIM("claim_hash OPERATOR(pg_catalog.=) $4", "false"));
	plan_abort = OeKeepPlan(sql, 4, t_abort);
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

	CheckNotNull(fcinfo, argno, what);
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
	IdemOutcome outcome;
	Datum		response = (Datum) 0;
	bool		response_null = true;
	Datum		values[3];
	bool		nulls[3] = {false, false, true};
	char	   *claim_token = NULL;
	bytea	   *claim_hash = NULL;
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
		Datum		args[7];
		bool		isnull;

		claim_token = OeNewSecretToken("claim token", &claim_hash);
		SPI_connect();
		prepare_plans();

		args[0] = PointerGetDatum(scope);
		args[1] = PointerGetDatum(key);
		args[2] = PointerGetDatum(fingerprint);
		args[3] = Int64GetDatum(claim_owner());
		args[4] = Int32GetDatum(MyProcPid);
		args[5] = TimestampTzGetDatum(expires);
		args[6] = PointerGetDatum(claim_hash);

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
				Datum		targs[5] = {args[0], args[1], args[3], args[4], args[6]};

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
	if (outcome == IDEM_STARTED && plans_with_claim)
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
 * After idem_finish or idem_abort touched no row: say why, as an error.
 */
static void
raise_not_held(text *scope, text *key, const char *action, bool with_token)
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
					   SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2)),
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

	CheckNotNull(fcinfo, 2, "response");

	args[0] = PointerGetDatum(scope);
	args[1] = PointerGetDatum(key);
	args[2] = Int64GetDatum(claim_owner());
	args[3] = PointerGetDatum(PG_GETARG_JSONB_P(2));
	args[4] = PointerGetDatum(claim);

	SPI_connect();
	prepare_plans();
	if (SPI_execute_plan(plan_finish, args, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not finish idempotency key");
	if (SPI_processed != 1)
		raise_not_held(scope, key, "finish", claim != NULL);
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

	args[0] = PointerGetDatum(scope);
	args[1] = PointerGetDatum(key);
	args[2] = Int64GetDatum(claim_owner());
	args[3] = PointerGetDatum(claim);

	SPI_connect();
	prepare_plans();
	if (SPI_execute_plan(plan_abort, args, nulls, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not abort idempotency key");
	if (SPI_processed != 1)
		raise_not_held(scope, key, "abort", claim != NULL);
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

Datum
oe_idem_begin_v2(PG_FUNCTION_ARGS)
{
	return OeInternalCall(fcinfo, idem_begin);
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
