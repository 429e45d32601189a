/*-------------------------------------------------------------------------
 *
 * idempotency.c
 *	  Idempotency keys: the statements on order_engine.idempotency_keys
 *	  (for the schema as installed) and the session's claim owner.
 *	  idem_begin is idem_begin.c's; idem_finish and idem_abort are
 *	  idem_finish.c's.
 *
 * A key lives in order_engine.idempotency_keys, keyed by (scope, key),
 * with the SHA-256 of the request's canonical jsonb text, a state
 * (in_progress or completed), the stored response and the claim: which
 * session holds it and since when.
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

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"

#include "idem/idempotency.h"
#include "idem/idem_internal.h"
#include "common/internal_sql.h"

#define KEYS_TABLE "order_engine.idempotency_keys"

/* the claim owner of this session; 0 until first needed */
static int64 session_claim_owner = 0;

/* kept plans, prepared on first use */
static OeIdemPlans idem_plans;

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

bool
OeIdemKeysHaveClaim(void)
{
	return keys_have_claim_hash();
}

static void prepare_plans_for(bool with_claim);

static void
free_plans(void)
{
	SPIPlanPtr *plans[] = {&idem_plans.claim, &idem_plans.read_locked,
		&idem_plans.reset, &idem_plans.takeover, &idem_plans.finish,
	&idem_plans.abort_key, &idem_plans.diagnose};

	for (int i = 0; i < lengthof(plans); i++)
		if (*plans[i] != NULL)
		{
			SPI_freeplan(*plans[i]);
			*plans[i] = NULL;
		}
}

/* see idem_internal.h; a change of the table's shape drops the old plans */
const OeIdemPlans *
OeIdemPlansGet(void)
{
	bool		with_claim = keys_have_claim_hash();

	if (idem_plans.diagnose != NULL && idem_plans.with_claim != with_claim)
		free_plans();
	idem_plans.with_claim = with_claim;
	prepare_plans_for(with_claim);
	return &idem_plans;
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

	if (idem_plans.diagnose != NULL)
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
	idem_plans.claim = OeKeepPlan(sql, 7, t_ins);
	idem_plans.read_locked = OeKeepPlan(
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
	idem_plans.reset = OeKeepPlan(sql, 7, t_reset);
	sql = psprintf("UPDATE " KEYS_TABLE
				   " SET claim_owner = $3, claim_pid = $4, claimed_at = pg_catalog.now()%s"
				   " WHERE scope OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.=) $2",
				   WITH_CLAIM(", claim_hash = $5", ""));
	idem_plans.takeover = OeKeepPlan(sql, 5, t_take);
	sql = psprintf("UPDATE " KEYS_TABLE
				   " SET state = 'completed', response = $4, completed_at = pg_catalog.now(),"
				   " claim_owner = NULL, claim_pid = NULL%s"
				   " WHERE scope OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.=) $2"
				   " AND state OPERATOR(pg_catalog.=) 'in_progress'"
				   " AND CASE WHEN $5 IS NULL THEN claim_owner OPERATOR(pg_catalog.=) $3"
				   "          ELSE %s END",
				   WITH_CLAIM(", claim_hash = NULL", ""),
				   WITH_CLAIM("claim_hash OPERATOR(pg_catalog.=) $5", "false"));
	idem_plans.finish = OeKeepPlan(sql, 5, t_finish);
	sql = psprintf("DELETE FROM " KEYS_TABLE
				   " WHERE scope OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.=) $2"
				   " AND state OPERATOR(pg_catalog.=) 'in_progress'"
				   " AND CASE WHEN $4 IS NULL THEN claim_owner OPERATOR(pg_catalog.=) $3"
				   "          ELSE %s END",
				   WITH_CLAIM("claim_hash OPERATOR(pg_catalog.=) $4", "false"));
	idem_plans.abort_key = OeKeepPlan(sql, 4, t_abort);
	idem_plans.diagnose = OeKeepPlan(
		"SELECT state, claim_pid FROM " KEYS_TABLE
		" WHERE scope OPERATOR(pg_catalog.=) $1 AND key OPERATOR(pg_catalog.=) $2",
		2, t_key);
}

/*
 * The id this session's claims carry; drawn from the strong random source
 * so that no other session, now or after a pid is reused, carries it.
 */
int64
OeIdemClaimOwner(void)
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
