-- IDs: exact SQLSTATEs for bad input and misuse, privileges of the id
-- functions, and the basic promises (unique, increasing, gene round trip).
BEGIN;
SELECT plan(33);

SELECT lives_ok($$SELECT order_engine.create_id_tag('tap_ids', 1, 5)$$, 'create_id_tag registers a tag');
SELECT is(order_engine.next_id('tap_ids'), 1::bigint, 'the first id is start_id');
SELECT is(order_engine.next_ids('tap_ids', 12), ARRAY[2,3,4,5,6,7,8,9,10,11,12,13]::bigint[],
          'next_ids crosses ranges without gaps in one session');
SELECT ok((SELECT count(DISTINCT i) = 5000 FROM unnest(order_engine.next_ids('tap_ids', 5000)) i),
          'next_ids hands out distinct ids');

-- unknown tag, existing tag, exhausted tag
SELECT throws_ok($$SELECT order_engine.next_id('tap_nope')$$, 'OE010', NULL, 'unknown tag: OE010');
SELECT throws_ok($$SELECT order_engine.next_ids('tap_nope', 2)$$, 'OE010', NULL, 'unknown tag in next_ids: OE010');
SELECT throws_ok($$SELECT order_engine.create_id_tag('tap_ids')$$, 'OE014', NULL, 'existing tag: OE014');
SELECT lives_ok($$SELECT order_engine.create_id_tag('tap_big', 9223372036854775805, 10)$$, 'a tag near the end of bigint');
SELECT is(order_engine.next_ids('tap_big', 2), ARRAY[9223372036854775805, 9223372036854775806]::bigint[],
          'the last ids of bigint are handed out');
SELECT throws_ok($$SELECT order_engine.next_id('tap_big')$$, 'OE015', NULL, 'exhausted tag: OE015');

-- bad input
SELECT throws_ok($$SELECT order_engine.next_id(NULL)$$, '22004', NULL, 'next_id(NULL): 22004');
SELECT throws_ok($$SELECT order_engine.next_id('')$$, '22023', NULL, 'empty tag: 22023');
SELECT throws_ok($$SELECT order_engine.next_id(repeat('t', 64))$$, '22023', NULL, 'tag over 63 bytes: 22023');
SELECT throws_ok($$SELECT order_engine.next_ids('tap_ids', 0)$$, '22023', NULL, 'next_ids n = 0: 22023');
SELECT throws_ok($$SELECT order_engine.next_ids('tap_ids', -3)$$, '22023', NULL, 'next_ids n < 0: 22023');
SELECT throws_ok($$SELECT order_engine.next_ids('tap_ids', 1000001)$$, '22023', NULL, 'next_ids n too large: 22023');
SELECT throws_ok($$SELECT order_engine.next_ids('tap_ids', NULL)$$, '22004', NULL, 'next_ids n NULL: 22004');
SELECT throws_ok($$SELECT order_engine.create_id_tag(NULL)$$, '22004', NULL, 'create_id_tag(NULL): 22004');
SELECT throws_ok($$SELECT order_engine.create_id_tag('tap_x', 0)$$, '22023', NULL, 'start_id 0: 22023');
SELECT throws_ok($$SELECT order_engine.create_id_tag('tap_x', 1, -1)$$, '22023', NULL, 'negative step: 22023');
SELECT throws_ok($$SELECT order_engine.create_id_tag('tap_x', 1, NULL)$$, '22004', NULL, 'NULL step: 22004');
SELECT throws_ok($$SELECT order_engine.next_order_no(-1)$$, '22023', NULL, 'negative buyer_id: 22023');
SELECT throws_ok($$SELECT order_engine.next_order_no(NULL)$$, '22004', NULL, 'NULL buyer_id: 22004');
SELECT throws_ok($$SELECT order_engine.shard_of(-1)$$, '22023', NULL, 'negative order_no: 22023');
SELECT throws_ok($$SELECT order_engine.shard_of(NULL)$$, '22004', NULL, 'NULL order_no: 22004');

-- the gene round trip
SELECT is(order_engine.shard_of(order_engine.next_order_no(77)), 77 % 32, 'shard_of gives the gene back');

-- privileges
SELECT function_privs_are('order_engine', 'next_id', ARRAY['text'], 'order_engine_app', ARRAY['EXECUTE'],
                          'the app may call next_id');
SELECT function_privs_are('order_engine', 'next_order_no', ARRAY['bigint'], 'order_engine_app', ARRAY['EXECUTE'],
                          'the app may call next_order_no');
SELECT function_privs_are('order_engine', 'snowflake_id', ARRAY[]::text[], 'order_engine_app', ARRAY['EXECUTE'],
                          'the app may call snowflake_id');
SELECT function_privs_are('order_engine', 'create_id_tag', ARRAY['text', 'bigint', 'integer', 'text'],
                          'order_engine_app', ARRAY[]::text[], 'the app may not create tags');
SELECT function_privs_are('order_engine', 'create_id_tag', ARRAY['text', 'bigint', 'integer', 'text'],
                          'order_engine_admin', ARRAY['EXECUTE'], 'the admin may create tags');
SELECT is_definer('order_engine', 'create_id_tag', ARRAY['text', 'bigint', 'integer', 'text'],
                  'create_id_tag is SECURITY DEFINER (it creates the sequence)');
SELECT isnt_definer('order_engine', 'next_id', ARRAY['text'], 'next_id runs as the caller');

SELECT * FROM finish();
ROLLBACK;
