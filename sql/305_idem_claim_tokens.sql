--
-- Claim tokens: finishing or aborting an idempotency claim from another
-- session (a pooled connection).  Another session is simulated by
-- rewriting claim_owner, as in 301; test/t/870_pgbouncer.pl does it with
-- real pooled connections through pgbouncer.
--
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text;
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
    RETURN st || ': ' || msg;
END $$;
CREATE TEMP TABLE claims (k text PRIMARY KEY, claim text);

-- "started" carries a 43-character token; other answers carry none
INSERT INTO claims SELECT 'c-1', claim FROM order_engine.idem_begin('pool', 'c-1', '{"n": 1}');
SELECT length(claim) AS token_length, claim ~ '^[A-Za-z0-9_-]+$' AS base64url FROM claims;
SELECT state, response, claim IS NULL AS no_claim FROM order_engine.idem_begin('pool', 'c-1', '{"n": 1}');

-- the token is not stored, only its hash
SELECT count(*) AS rows_holding_the_token
  FROM order_engine.idempotency_keys k, claims c
 WHERE k.scope = 'pool' AND position(convert_to(c.claim, 'UTF8') IN
         convert_to(k::text, 'UTF8')) > 0;
SELECT k.claim_hash = sha256(convert_to(c.claim, 'UTF8')) AS hash_matches
  FROM order_engine.idempotency_keys k JOIN claims c ON c.k = k.key;

-- another session, no token: OE017; another session with the token: done
UPDATE order_engine.idempotency_keys SET claim_owner = 42 WHERE key = 'c-1';
SELECT pg_temp.try($$SELECT order_engine.idem_finish('pool', 'c-1', '{"r": 1}')$$);
SELECT order_engine.idem_finish('pool', 'c-1', '{"r": 1}', (SELECT claim FROM claims WHERE k = 'c-1'));
SELECT state, response, claim FROM order_engine.idem_begin('pool', 'c-1', '{"n": 1}');
-- the token was used up with the claim
SELECT pg_temp.try(format($$SELECT order_engine.idem_finish('pool', 'c-1', '{"r": 2}', %L)$$,
                          (SELECT claim FROM claims WHERE k = 'c-1')));

-- a wrong token, or one of the wrong shape
INSERT INTO claims SELECT 'c-2', claim FROM order_engine.idem_begin('pool', 'c-2', '{"n": 2}');
SELECT pg_temp.try($$SELECT order_engine.idem_finish('pool', 'c-2', '{}', repeat('A', 43))$$);
SELECT pg_temp.try($$SELECT order_engine.idem_finish('pool', 'c-2', '{}', 'short')$$);
SELECT pg_temp.try($$SELECT order_engine.idem_abort('pool', 'c-2', repeat('A', 44))$$);

-- abort with the token from another session: the key is gone, a retry starts afresh
UPDATE order_engine.idempotency_keys SET claim_owner = 42 WHERE key = 'c-2';
SELECT order_engine.idem_abort('pool', 'c-2', (SELECT claim FROM claims WHERE k = 'c-2'));
SELECT count(*) AS left_over FROM order_engine.idempotency_keys WHERE key = 'c-2';
SELECT state FROM order_engine.idem_begin('pool', 'c-2', '{"other": true}');

-- a takeover after the lease draws a new token: the old one fails
INSERT INTO claims SELECT 'c-3', claim FROM order_engine.idem_begin('pool', 'c-3', '{"n": 3}');
UPDATE order_engine.idempotency_keys
   SET claim_owner = 42, claimed_at = now() - interval '1 hour' WHERE key = 'c-3';
CREATE TEMP TABLE new_claim AS
    SELECT state, claim FROM order_engine.idem_begin('pool', 'c-3', '{"n": 3}');
SELECT state, claim <> (SELECT claim FROM claims WHERE k = 'c-3') AS new_token FROM new_claim;
UPDATE order_engine.idempotency_keys SET claim_owner = 43 WHERE key = 'c-3';
SELECT pg_temp.try(format($$SELECT order_engine.idem_finish('pool', 'c-3', '{}', %L)$$,
                          (SELECT claim FROM claims WHERE k = 'c-3')));
SELECT order_engine.idem_finish('pool', 'c-3', '{"by": "new"}', (SELECT claim FROM new_claim));
SELECT state, response FROM order_engine.idem_begin('pool', 'c-3', '{"n": 3}');

-- a null token keeps the same-session rule
INSERT INTO claims SELECT 'c-4', claim FROM order_engine.idem_begin('pool', 'c-4', '{"n": 4}');
SELECT order_engine.idem_finish('pool', 'c-4', '{"same": "session"}', NULL);
SELECT state, response FROM order_engine.idem_begin('pool', 'c-4', '{"n": 4}');
