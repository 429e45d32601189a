-- versioned_update: exact SQLSTATEs for every bad input, and that it runs
-- with the caller's privileges.
BEGIN;
SELECT plan(27);

CREATE TABLE public.tap_vu (id int PRIMARY KEY, code text UNIQUE, qty int, note varchar(5),
                            version bigint NOT NULL DEFAULT 1);
INSERT INTO public.tap_vu VALUES (1, 'a', 1, NULL), (2, 'b', 1, NULL);
CREATE TABLE public.tap_noversion (id int PRIMARY KEY, qty int);
CREATE VIEW public.tap_vu_view AS SELECT * FROM public.tap_vu;

SELECT is(order_engine.versioned_update('public.tap_vu', '{"id": 1}', 1, '{"qty": 2}'), 2::bigint, 'returns the new version');
SELECT is(order_engine.versioned_update('public.tap_vu', '{"code": "a"}', 2, '{"qty": 3}'), 3::bigint, 'a unique column is a key');
SELECT throws_ok($$SELECT order_engine.versioned_update('public.tap_vu', '{"id": 1}', 1, '{"qty": 2}')$$, 'OE001', NULL, 'stale version: OE001');
SELECT throws_like($$SELECT order_engine.versioned_update('public.tap_vu', '{"id": 1}', 1, '{"qty": 2}')$$, '%version conflict%', 'the conflict says so');
SELECT throws_ok($$SELECT order_engine.versioned_update('public.tap_vu', '{"id": 9}', 1, '{"qty": 2}')$$, 'OE002', NULL, 'missing row: OE002');
SELECT throws_ok($$SELECT order_engine.versioned_update(NULL, '{"id": 1}', 3, '{"qty": 2}')$$, '22004', NULL, 'null rel');
SELECT throws_ok($$SELECT order_engine.versioned_update('public.tap_vu', NULL, 3, '{"qty": 2}')$$, '22004', NULL, 'null key');
SELECT throws_ok($$SELECT order_engine.versioned_update('public.tap_vu', '{"id": 1}', NULL, '{"qty": 2}')$$, '22004', NULL, 'null expected_version');
SELECT throws_ok($$SELECT order_engine.versioned_update('public.tap_vu', '{"id": 1}', 3, NULL)$$, '22004', NULL, 'null changes');
SELECT throws_ok($$SELECT order_engine.versioned_update('public.tap_vu', '{"id": null}', 3, '{"qty": 2}')$$, '22004', NULL, 'null key value');
SELECT throws_ok($$SELECT order_engine.versioned_update('public.tap_vu', '[1]', 3, '{"qty": 2}')$$, '22023', NULL, 'key not an object');
SELECT throws_ok($$SELECT order_engine.versioned_update('public.tap_vu', '{}', 3, '{"qty": 2}')$$, '22023', NULL, 'empty key');
SELECT throws_ok($$SELECT order_engine.versioned_update('public.tap_vu', '{"id": 1}', 3, '{}')$$, '22023', NULL, 'empty changes');
SELECT throws_ok($$SELECT order_engine.versioned_update('public.tap_vu', '{"qty": 1}', 3, '{"note": "x"}')$$, '22023', NULL, 'key without a unique index');
SELECT throws_ok($$SELECT order_engine.versioned_update('public.tap_vu', '{"id": 1}', 3, '{"version": 7}')$$, '22023', NULL, 'changing the version column');
SELECT throws_ok($$SELECT order_engine.versioned_update('public.tap_vu', '{"id": 1}', 3, '{"id": 7}')$$, '22023', NULL, 'changing a key column');
SELECT throws_ok($$SELECT order_engine.versioned_update('public.tap_vu', '{"id": 1}', 3, '{"qty": [1]}')$$, '22023', NULL, 'an array for an integer');
SELECT throws_ok($$SELECT order_engine.versioned_update('public.tap_vu', '{"id": 1}', 3, '{"nope": 1}')$$, '42703', NULL, 'unknown column in changes');
SELECT throws_ok($$SELECT order_engine.versioned_update('public.tap_vu', '{"nope": 1}', 3, '{"qty": 1}')$$, '42703', NULL, 'unknown column in key');
SELECT throws_ok($$SELECT order_engine.versioned_update('public.tap_vu', '{"id": 1}', 3, '{"qty; DROP TABLE public.tap_vu; --": 1}')$$, '42703', NULL, 'SQL as a column name');
SELECT throws_ok($$SELECT order_engine.versioned_update('public.tap_vu', '{"id": 1}', 3, '{"qty": "1; DROP TABLE public.tap_vu"}')$$, '22P02', NULL, 'SQL as an integer value');
SELECT throws_ok($$SELECT order_engine.versioned_update('public.tap_vu', '{"id": 1}', 3, '{"note": "too long"}')$$, '22001', NULL, 'value too long for the column');
SELECT throws_ok($$SELECT order_engine.versioned_update('public.tap_noversion', '{"id": 1}', 1, '{"qty": 1}')$$, '42703', NULL, 'no version column');
SELECT throws_ok($$SELECT order_engine.versioned_update('public.tap_vu_view', '{"id": 1}', 1, '{"qty": 1}')$$, '42809', NULL, 'a view');
SELECT results_eq($$SELECT id, qty, version FROM public.tap_vu ORDER BY id$$,
                  $$VALUES (1, 3, 3::bigint), (2, 1, 1::bigint)$$, 'failed calls changed nothing');

SELECT isnt_definer('order_engine', 'versioned_update', ARRAY['regclass', 'jsonb', 'bigint', 'jsonb'],
                    'versioned_update runs with the caller''s privileges');
SELECT function_privs_are('order_engine', 'versioned_update', ARRAY['regclass', 'jsonb', 'bigint', 'jsonb'],
                          'order_engine_app', ARRAY['EXECUTE'], 'the app role may call versioned_update');

SELECT * FROM finish();
ROLLBACK;
