/*
 * order_engine 0.3 -> 0.4: idempotency keys, checkout tokens, versioned updates.
 */
\echo Use "ALTER EXTENSION order_engine UPDATE" to load this file. \quit

/*
 * Idempotency keys (docs/idempotency.md).  The application never touches
 * the table: idem_begin/idem_finish/idem_abort run as the owner, so the
 * claim columns cannot be forged.  Those functions are the only writers
 * and validate every value (scope 1-64 bytes, key 1-255 bytes, state), so
 * the table has no CHECK constraints: the executor re-reads each CHECK
 * expression from the catalog text at every statement start, which was a
 * quarter of idem_begin's cost in the benchmark (test/bench/idem.sh).
 */
CREATE TABLE @extschema@.idempotency_keys (
    scope        text        NOT NULL,
    key          text        NOT NULL,
    fingerprint  bytea       NOT NULL,
    state        text        NOT NULL,
    response     jsonb,
    claim_owner  bigint,
    claim_pid    integer,
    claimed_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    completed_at timestamptz,
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE INDEX idempotency_keys_expires_at ON @extschema@.idempotency_keys (expires_at);

COMMENT ON TABLE @extschema@.idempotency_keys IS
    'Idempotency keys: per (scope, key) the request fingerprint, state, stored response and the claim';
COMMENT ON COLUMN @extschema@.idempotency_keys.state IS
    'in_progress (claimed, claim_owner set) or completed (response stored)';
COMMENT ON COLUMN @extschema@.idempotency_keys.fingerprint IS
    'SHA-256 of the request''s canonical jsonb text';
COMMENT ON COLUMN @extschema@.idempotency_keys.claim_owner IS
    'Random id of the session holding the claim (in_progress only)';
COMMENT ON COLUMN @extschema@.idempotency_keys.claim_pid IS
    'Process id of the session holding the claim, for diagnosis';

SELECT pg_catalog.pg_extension_config_dump('@extschema@.idempotency_keys', '');

/*
 * One-time checkout tokens: only the SHA-256 of a token is stored.
 */
CREATE TABLE @extschema@.checkout_tokens (
    token_hash   bytea       PRIMARY KEY,
    buyer_id     bigint      NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    expires_at   timestamptz NOT NULL
);

CREATE INDEX checkout_tokens_expires_at ON @extschema@.checkout_tokens (expires_at);

COMMENT ON TABLE @extschema@.checkout_tokens IS
    'Unused one-time checkout tokens (SHA-256 of the token, buyer, expiry); a consumed token is deleted';

SELECT pg_catalog.pg_extension_config_dump('@extschema@.checkout_tokens', '');

REVOKE ALL ON @extschema@.idempotency_keys FROM PUBLIC;
REVOKE ALL ON @extschema@.checkout_tokens FROM PUBLIC;
GRANT SELECT ON @extschema@.idempotency_keys TO order_engine_admin;
GRANT SELECT ON @extschema@.checkout_tokens TO order_engine_admin;

/*
 * idem_begin and idem_finish, the two calls of every idempotent request,
 * are not SECURITY DEFINER: their C code becomes the owner and pins the
 * search path itself (src/owner.c), without the per-call cost of a
 * function SET.
 */
CREATE FUNCTION @extschema@.idem_begin(
    scope text, key text, request jsonb, ttl interval DEFAULT '24 hours')
RETURNS TABLE (state text, response jsonb)
LANGUAGE C VOLATILE
ROWS 1
AS 'MODULE_PATHNAME', 'oe_idem_begin';

COMMENT ON FUNCTION @extschema@.idem_begin(text, text, jsonb, interval) IS
    'Claim an idempotency key: started (yours now), in_progress (someone else''s, never waits) or completed (with the stored response); OE003 when the key was used for another request';

CREATE FUNCTION @extschema@.idem_finish(scope text, key text, response jsonb)
RETURNS void
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'oe_idem_finish';

COMMENT ON FUNCTION @extschema@.idem_finish(text, text, jsonb) IS
    'Store the response of a claimed idempotency key and complete it; OE016 unknown key, OE017 claim not held by this session';

CREATE FUNCTION @extschema@.idem_abort(scope text, key text)
RETURNS void
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_idem_abort';

COMMENT ON FUNCTION @extschema@.idem_abort(text, text) IS
    'Give up a claimed idempotency key (it is deleted) so a retry may run; OE016 unknown key, OE017 claim not held by this session';

CREATE FUNCTION @extschema@.issue_token(buyer_id bigint, ttl interval DEFAULT '15 minutes')
RETURNS text
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_issue_token';

COMMENT ON FUNCTION @extschema@.issue_token(bigint, interval) IS
    'A new one-time checkout token for the buyer (256 random bits, base64url), valid for ttl';

CREATE FUNCTION @extschema@.consume_token(buyer_id bigint, token text)
RETURNS boolean
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_consume_token';

COMMENT ON FUNCTION @extschema@.consume_token(bigint, text) IS
    'true exactly once per token, for its buyer, before it expires; false otherwise';

CREATE FUNCTION @extschema@.reap_expired_keys(max_rows integer DEFAULT 1000)
RETURNS integer
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_reap_expired_keys';

COMMENT ON FUNCTION @extschema@.reap_expired_keys(integer) IS
    'Delete at most max_rows expired idempotency keys and checkout tokens; returns how many';

/*
 * Not SECURITY DEFINER: the update runs with the caller's privileges.
 */
CREATE FUNCTION @extschema@.versioned_update(
    rel regclass, key jsonb, expected_version bigint, changes jsonb)
RETURNS bigint
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'oe_versioned_update';

COMMENT ON FUNCTION @extschema@.versioned_update(regclass, jsonb, bigint, jsonb) IS
    'Optimistic update of the row of rel matching key, if its version is expected_version; bumps and returns the version; OE001 stale version, OE002 no such row';

REVOKE ALL ON FUNCTION @extschema@.idem_begin(text, text, jsonb, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.idem_finish(text, text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.idem_abort(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.issue_token(bigint, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.consume_token(bigint, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.reap_expired_keys(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.versioned_update(regclass, jsonb, bigint, jsonb) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION @extschema@.idem_begin(text, text, jsonb, interval) TO order_engine_app;
GRANT EXECUTE ON FUNCTION @extschema@.idem_finish(text, text, jsonb) TO order_engine_app;
GRANT EXECUTE ON FUNCTION @extschema@.idem_abort(text, text) TO order_engine_app;
GRANT EXECUTE ON FUNCTION @extschema@.issue_token(bigint, interval) TO order_engine_app;
GRANT EXECUTE ON FUNCTION @extschema@.consume_token(bigint, text) TO order_engine_app;
GRANT EXECUTE ON FUNCTION @extschema@.versioned_update(regclass, jsonb, bigint, jsonb) TO order_engine_app;
GRANT EXECUTE ON FUNCTION @extschema@.reap_expired_keys(integer) TO order_engine_admin;
