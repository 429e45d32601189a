--
-- Idempotency keys: idem_begin, idem_finish, idem_abort and the lease.
-- Another session's claim is simulated by rewriting claim_owner, a lease
-- that ran out by moving claimed_at back; the isolation specs
-- (test/isolation/specs/idem_*.spec) do it with real sessions.
--
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text; det text;
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
    RETURN st || ': ' || msg || coalesce(' | ' || nullif(det, ''), '');
END $$;

-- the lease: one minute by default, reloadable only (not per session)
SHOW order_engine.idempotency_lease;
SELECT pg_temp.try($$SET order_engine.idempotency_lease = '1s'$$);

-- a new key is started; the same request again is in progress
SELECT state, response FROM order_engine.idem_begin('checkout', 'k-1', '{"order_no": 1, "lines": [1, 2]}');
SELECT state, response FROM order_engine.idem_begin('checkout', 'k-1', '{"lines": [1, 2], "order_no": 1}');
SELECT state, response, claim_pid = pg_backend_pid() AS mine,
       expires_at - created_at AS ttl,
       fingerprint = sha256(convert_to('{"lines": [1, 2], "order_no": 1}', 'UTF8')) AS fingerprint_is_sha256
  FROM order_engine.idempotency_keys WHERE scope = 'checkout' AND key = 'k-1';

-- same key, other request: OE003, in every state
SELECT pg_temp.try($$SELECT state, response FROM order_engine.idem_begin('checkout', 'k-1', '{"order_no": 2}')$$);

-- finish stores the response; begin then replays it
SELECT order_engine.idem_finish('checkout', 'k-1', '{"status": "pending_payment"}');
SELECT state, response FROM order_engine.idem_begin('checkout', 'k-1', '{"order_no": 1, "lines": [1, 2]}');
SELECT pg_temp.try($$SELECT state, response FROM order_engine.idem_begin('checkout', 'k-1', '{"order_no": 2}')$$);
SELECT state, claim_owner IS NULL AS unclaimed, completed_at IS NOT NULL AS has_completed_at
  FROM order_engine.idempotency_keys WHERE scope = 'checkout' AND key = 'k-1';

-- a completed key cannot be finished or aborted again: OE017
SELECT pg_temp.try($$SELECT order_engine.idem_finish('checkout', 'k-1', '{"status": "other"}')$$);
SELECT pg_temp.try($$SELECT order_engine.idem_abort('checkout', 'k-1')$$);
SELECT response FROM order_engine.idempotency_keys WHERE scope = 'checkout' AND key = 'k-1';

-- unknown keys: OE016
SELECT pg_temp.try($$SELECT order_engine.idem_finish('checkout', 'nope', '{}')$$);
SELECT pg_temp.try($$SELECT order_engine.idem_abort('checkout', 'nope')$$);

-- scopes separate keys
SELECT state, response FROM order_engine.idem_begin('payment', 'k-1', '{"other": true}');
SELECT order_engine.idem_finish('payment', 'k-1', 'null');
SELECT state, response FROM order_engine.idem_begin('payment', 'k-1', '{"other": true}');

-- abort deletes the claim: a retry, even with another request, starts afresh
SELECT state, response FROM order_engine.idem_begin('checkout', 'k-2', '{"try": 1}');
SELECT order_engine.idem_abort('checkout', 'k-2');
SELECT count(*) FROM order_engine.idempotency_keys WHERE key = 'k-2';
SELECT state, response FROM order_engine.idem_begin('checkout', 'k-2', '{"try": 2}');

-- begin, work and finish in one transaction; a rollback undoes the claim too
BEGIN;
SELECT state, response FROM order_engine.idem_begin('checkout', 'k-3', '{"n": 3}');
SELECT order_engine.idem_finish('checkout', 'k-3', '{"done": 3}');
ROLLBACK;
SELECT count(*) FROM order_engine.idempotency_keys WHERE key = 'k-3';
BEGIN;
SELECT state, response FROM order_engine.idem_begin('checkout', 'k-3', '{"n": 3}');
SELECT order_engine.idem_finish('checkout', 'k-3', '{"done": 3}');
COMMIT;
SELECT state, response FROM order_engine.idem_begin('checkout', 'k-3', '{"n": 3}');

-- another session's live claim: in_progress, and finish/abort refuse (OE017)
SELECT state, response FROM order_engine.idem_begin('checkout', 'k-4', '{"n": 4}');
UPDATE order_engine.idempotency_keys SET claim_owner = 42, claim_pid = 4242
 WHERE scope = 'checkout' AND key = 'k-4';
SELECT state, response FROM order_engine.idem_begin('checkout', 'k-4', '{"n": 4}');
SELECT pg_temp.try($$SELECT order_engine.idem_finish('checkout', 'k-4', '{}')$$);
SELECT pg_temp.try($$SELECT order_engine.idem_abort('checkout', 'k-4')$$);
SELECT pg_temp.try($$SELECT state, response FROM order_engine.idem_begin('checkout', 'k-4', '{"n": 5}')$$);

-- past the lease the claim is taken over: it is ours now
UPDATE order_engine.idempotency_keys SET claimed_at = now() - interval '2 minutes'
 WHERE scope = 'checkout' AND key = 'k-4';
SELECT state, response FROM order_engine.idem_begin('checkout', 'k-4', '{"n": 4}');
SELECT claim_owner <> 42 AS taken_over, claim_pid = pg_backend_pid() AS mine,
       claimed_at > now() - interval '1 minute' AS fresh_claim
  FROM order_engine.idempotency_keys WHERE scope = 'checkout' AND key = 'k-4';
SELECT order_engine.idem_finish('checkout', 'k-4', '{"done": 4}');
-- a stale claim is taken over only by the same request
UPDATE order_engine.idempotency_keys
   SET state = 'in_progress', response = NULL, claim_owner = 42, claimed_at = now() - interval '2 minutes'
 WHERE scope = 'checkout' AND key = 'k-4';
SELECT pg_temp.try($$SELECT state, response FROM order_engine.idem_begin('checkout', 'k-4', '{"n": 5}')$$);

-- an expired key is gone for begin: it starts afresh, with any request
SELECT state, response FROM order_engine.idem_begin('checkout', 'k-5', '{"n": 5}');
SELECT order_engine.idem_finish('checkout', 'k-5', '{"done": 5}');
UPDATE order_engine.idempotency_keys SET expires_at = now() - interval '1 second'
 WHERE scope = 'checkout' AND key = 'k-5';
SELECT state, response FROM order_engine.idem_begin('checkout', 'k-5', '{"n": "new"}', '1 hour');
SELECT state, response, expires_at - created_at AS ttl
  FROM order_engine.idempotency_keys WHERE scope = 'checkout' AND key = 'k-5';

-- bad input: nothing is written
SELECT pg_temp.try($$SELECT state, response FROM order_engine.idem_begin(NULL, 'k', '{}')$$);
SELECT pg_temp.try($$SELECT state, response FROM order_engine.idem_begin('s', NULL, '{}')$$);
SELECT pg_temp.try($$SELECT state, response FROM order_engine.idem_begin('s', 'k', NULL)$$);
SELECT pg_temp.try($$SELECT state, response FROM order_engine.idem_begin('s', 'k', '{}', NULL)$$);
SELECT pg_temp.try($$SELECT state, response FROM order_engine.idem_begin('', 'k', '{}')$$);
SELECT pg_temp.try($$SELECT state, response FROM order_engine.idem_begin('s', '', '{}')$$);
SELECT pg_temp.try($$SELECT state, response FROM order_engine.idem_begin('s', 'k', '{}', '0 seconds')$$);
SELECT pg_temp.try($$SELECT state, response FROM order_engine.idem_begin('s', 'k', '{}', '-1 day')$$);
SELECT pg_temp.try($$SELECT state, response FROM order_engine.idem_begin('s', 'k', '{}', '100000000 years')$$);
SELECT pg_temp.try($$SELECT order_engine.idem_finish('s', 'k', NULL)$$);
SELECT pg_temp.try($$SELECT order_engine.idem_finish(NULL, 'k', '{}')$$);
SELECT pg_temp.try($$SELECT order_engine.idem_abort('s', NULL)$$);
-- the documented limits: scope 64 bytes, key 255 bytes
SELECT state FROM order_engine.idem_begin(repeat('s', 64), repeat('k', 255), '{}');
SELECT pg_temp.try($$SELECT state, response FROM order_engine.idem_begin(repeat('s', 65), 'k', '{}')$$);
SELECT pg_temp.try($$SELECT state, response FROM order_engine.idem_begin('s', repeat('k', 256), '{}')$$);
SELECT pg_temp.try($$SELECT state, response FROM order_engine.idem_begin('s', repeat('é', 128), '{}')$$);
SELECT count(*) FROM order_engine.idempotency_keys WHERE scope IN ('s', '') OR key = '';
-- keys are data, never SQL
SELECT state, response FROM order_engine.idem_begin($$'; DROP TABLE order_engine.idempotency_keys; --$$, $$k' OR '1'='1$$, '{}');
SELECT count(*) AS keys_table_intact FROM order_engine.idempotency_keys WHERE key = $$k' OR '1'='1$$;
