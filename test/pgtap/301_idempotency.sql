-- Idempotency keys: exact SQLSTATEs for bad input and misuse, the
-- privileges of the functions and the table.
BEGIN;
SELECT plan(36);

SELECT has_table('order_engine', 'idempotency_keys', 'the idempotency key table exists');
SELECT col_is_pk('order_engine', 'idempotency_keys', ARRAY['scope', 'key'], 'keyed by (scope, key)');

-- bad input
SELECT throws_ok($$SELECT * FROM order_engine.idem_begin(NULL, 'k', '{}')$$, '22004', NULL, 'idem_begin: null scope');
SELECT throws_ok($$SELECT * FROM order_engine.idem_begin('s', NULL, '{}')$$, '22004', NULL, 'idem_begin: null key');
SELECT throws_ok($$SELECT * FROM order_engine.idem_begin('s', 'k', NULL)$$, '22004', NULL, 'idem_begin: null request');
SELECT throws_ok($$SELECT * FROM order_engine.idem_begin('s', 'k', '{}', NULL)$$, '22004', NULL, 'idem_begin: null ttl');
SELECT throws_ok($$SELECT * FROM order_engine.idem_begin('', 'k', '{}')$$, '22023', NULL, 'idem_begin: empty scope');
SELECT throws_ok($$SELECT * FROM order_engine.idem_begin('s', '', '{}')$$, '22023', NULL, 'idem_begin: empty key');
SELECT throws_ok($$SELECT * FROM order_engine.idem_begin(repeat('s', 65), 'k', '{}')$$, '22023', NULL, 'idem_begin: scope over 64 bytes');
SELECT throws_ok($$SELECT * FROM order_engine.idem_begin('s', repeat('k', 256), '{}')$$, '22023', NULL, 'idem_begin: key over 255 bytes');
SELECT throws_ok($$SELECT * FROM order_engine.idem_begin('s', 'k', '{}', '0 s')$$, '22023', NULL, 'idem_begin: zero ttl');
SELECT throws_ok($$SELECT * FROM order_engine.idem_begin('s', 'k', '{}', '-1 h')$$, '22023', NULL, 'idem_begin: negative ttl');
SELECT throws_ok($$SELECT order_engine.idem_finish(NULL, 'k', '{}')$$, '22004', NULL, 'idem_finish: null scope');
SELECT throws_ok($$SELECT order_engine.idem_finish('s', 'k', NULL)$$, '22004', NULL, 'idem_finish: null response');
SELECT throws_ok($$SELECT order_engine.idem_abort('s', '')$$, '22023', NULL, 'idem_abort: empty key');

-- misuse a client branches on
SELECT is((SELECT state FROM order_engine.idem_begin('tap', 'k1', '{"a": 1}')), 'started', 'a new key is started');
SELECT is((SELECT state FROM order_engine.idem_begin('tap', 'k1', '{"a": 1}')), 'in_progress', 'the same key again is in progress');
SELECT throws_ok($$SELECT * FROM order_engine.idem_begin('tap', 'k1', '{"a": 2}')$$, 'OE003', NULL, 'another request on the key: OE003');
SELECT throws_ok($$SELECT order_engine.idem_finish('tap', 'unknown', '{}')$$, 'OE016', NULL, 'idem_finish of an unknown key: OE016');
SELECT throws_ok($$SELECT order_engine.idem_abort('tap', 'unknown')$$, 'OE016', NULL, 'idem_abort of an unknown key: OE016');
UPDATE order_engine.idempotency_keys SET claim_owner = 1 WHERE scope = 'tap' AND key = 'k1';
SELECT throws_ok($$SELECT order_engine.idem_finish('tap', 'k1', '{}')$$, 'OE017', NULL, 'idem_finish of another session''s claim: OE017');
SELECT throws_ok($$SELECT order_engine.idem_abort('tap', 'k1')$$, 'OE017', NULL, 'idem_abort of another session''s claim: OE017');
SELECT is((SELECT state FROM order_engine.idem_begin('tap', 'k2', '[1, 2]')), 'started', 'k2 started');
SELECT lives_ok($$SELECT order_engine.idem_finish('tap', 'k2', '{"r": 1}')$$, 'finish of one''s own claim');
SELECT results_eq($$SELECT state, response FROM order_engine.idem_begin('tap', 'k2', '[1, 2]')$$,
                  $$VALUES ('completed'::text, '{"r": 1}'::jsonb)$$, 'a completed key replays its response');
SELECT throws_ok($$SELECT order_engine.idem_finish('tap', 'k2', '{}')$$, 'OE017', NULL, 'finishing a completed key: OE017');

-- privileges: the application calls, nobody else touches the table
SELECT function_privs_are('order_engine', 'idem_begin', ARRAY['text', 'text', 'jsonb', 'interval'],
                          'order_engine_app', ARRAY['EXECUTE'], 'the app role may call idem_begin');
SELECT isnt_definer('order_engine', 'idem_begin', ARRAY['text', 'text', 'jsonb', 'interval'],
                    'idem_begin becomes the owner in C, not through SECURITY DEFINER');
SET ROLE order_engine_app;
CREATE TEMP TABLE app_call AS
    SELECT state FROM order_engine.idem_begin('tap', 'as-app', '{"x": 1}');
SELECT order_engine.idem_finish('tap', 'as-app', '{"done": true}');
CREATE TEMP TABLE app_after AS SELECT current_user::text AS who;
RESET ROLE;
SELECT is((SELECT state FROM app_call), 'started',
          'the app role claims a key although it has no rights on the key table');
SELECT is((SELECT who FROM app_after), 'order_engine_app',
          'after the call the caller is itself again');
SELECT ok(NOT has_table_privilege('order_engine_app', 'order_engine.idempotency_keys', 'SELECT,INSERT,UPDATE,DELETE'),
          'the app role cannot read or write the key table');
SELECT ok(has_table_privilege('order_engine_admin', 'order_engine.idempotency_keys', 'SELECT')
          AND NOT has_table_privilege('order_engine_admin', 'order_engine.idempotency_keys', 'UPDATE'),
          'the admin role may read the key table, not change it');

-- claim tokens (pooled connections)
SELECT throws_ok($$SELECT order_engine.idem_finish('tap', 'no-such', '{}', 'short')$$,
                 '22023', 'invalid claim token', 'idem_finish: a claim token of the wrong shape');
SELECT throws_ok($$SELECT order_engine.idem_abort('tap', 'no-such', repeat('x', 42))$$,
                 '22023', 'invalid claim token', 'idem_abort: a claim token of the wrong shape');
SELECT lives_ok($$SELECT order_engine.idem_begin('tap', 'tok', '{}')$$, 'claim a key for the token tests');
SELECT throws_ok($$SELECT order_engine.idem_finish('tap', 'tok', '{}', repeat('A', 43))$$,
                 'OE017', NULL, 'idem_finish: a token that is not the claim''s');

SELECT * FROM finish();
ROLLBACK;
