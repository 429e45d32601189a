-- Checkout tokens and the reaper: exact SQLSTATEs, answers, privileges.
BEGIN;
SELECT plan(17);

SELECT throws_ok($$SELECT order_engine.issue_token(NULL)$$, '22004', NULL, 'issue_token: null buyer');
SELECT throws_ok($$SELECT order_engine.issue_token(1, NULL)$$, '22004', NULL, 'issue_token: null ttl');
SELECT throws_ok($$SELECT order_engine.issue_token(1, '0 s')$$, '22023', NULL, 'issue_token: zero ttl');
SELECT throws_ok($$SELECT order_engine.consume_token(NULL, 'x')$$, '22004', NULL, 'consume_token: null buyer');
SELECT throws_ok($$SELECT order_engine.consume_token(1, NULL)$$, '22004', NULL, 'consume_token: null token');
SELECT throws_ok($$SELECT order_engine.reap_expired_keys(0)$$, '22023', NULL, 'reap_expired_keys: zero max_rows');
SELECT throws_ok($$SELECT order_engine.reap_expired_keys(NULL)$$, '22004', NULL, 'reap_expired_keys: null max_rows');

CREATE TEMP TABLE t AS SELECT order_engine.issue_token(42) AS token;
SELECT matches((SELECT token FROM t), '^[A-Za-z0-9_-]{43}$', 'a token is 43 characters of base64url');
SELECT is(order_engine.consume_token(43, (SELECT token FROM t)), false, 'another buyer: false');
SELECT is(order_engine.consume_token(42, (SELECT token FROM t)), true, 'its buyer: true');
SELECT is(order_engine.consume_token(42, (SELECT token FROM t)), false, 'a second time: false');
SELECT is(order_engine.consume_token(42, 'no such token'), false, 'an unknown token: false');

SELECT function_privs_are('order_engine', 'consume_token', ARRAY['bigint', 'text'],
                          'order_engine_app', ARRAY['EXECUTE'], 'the app role may consume tokens');
SELECT function_privs_are('order_engine', 'reap_expired_keys', ARRAY['integer'],
                          'order_engine_app', ARRAY[]::text[], 'the app role may not reap');
SELECT function_privs_are('order_engine', 'reap_expired_keys', ARRAY['integer'],
                          'order_engine_admin', ARRAY['EXECUTE'], 'the admin role may reap');
SELECT is_definer('order_engine', 'consume_token', ARRAY['bigint', 'text'], 'consume_token is SECURITY DEFINER');
SELECT ok(NOT has_table_privilege('order_engine_app', 'order_engine.checkout_tokens', 'SELECT,INSERT,UPDATE,DELETE'),
          'the app role cannot read or write the token table');

SELECT * FROM finish();
ROLLBACK;
