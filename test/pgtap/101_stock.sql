-- Stock: the exact SQLSTATE of every bad input and refused call, that a
-- refused call changes nothing, and the privileges of the stock objects.
BEGIN;
SELECT plan(59);

SELECT order_engine.restock(1019001, 10);
SELECT order_engine.restock(1019002, 10);
SELECT order_engine.reserve(1019100, '{1019001}', '{2}', '1 hour', 7);
SELECT order_engine.confirm(1019100);
SELECT order_engine.reserve(1019101, '{1019001}', '{1}');
SELECT order_engine.release(1019101);
SELECT order_engine.set_purchase_limit(1019002, 2);

-- 22004: null where a value is required
SELECT throws_ok($$SELECT order_engine.restock(NULL, 1)$$, '22004', NULL, 'restock: null sku_id');
SELECT throws_ok($$SELECT order_engine.restock(1019001, NULL)$$, '22004', NULL, 'restock: null delta');
SELECT throws_ok($$SELECT order_engine.set_price(1019001, NULL)$$, '22004', NULL, 'set_price: null price');
SELECT throws_ok($$SELECT order_engine.try_deduct(1019001, NULL)$$, '22004', NULL, 'try_deduct: null qty');
SELECT throws_ok($$SELECT order_engine.reserve(NULL, '{1019001}', '{1}')$$, '22004', NULL, 'reserve: null order_no');
SELECT throws_ok($$SELECT order_engine.reserve(1019200, NULL, '{1}')$$, '22004', NULL, 'reserve: null sku_ids');
SELECT throws_ok($$SELECT order_engine.reserve(1019200, '{1019001}', NULL)$$, '22004', NULL, 'reserve: null qtys');
SELECT throws_ok($$SELECT order_engine.reserve(1019200, '{1019001,NULL}', '{1,1}')$$, '22004', NULL, 'reserve: null SKU element');
SELECT throws_ok($$SELECT order_engine.reserve(1019200, '{1019001}', '{NULL}')$$, '22004', NULL, 'reserve: null qty element');
SELECT throws_ok($$SELECT order_engine.reserve(1019200, '{1019001}', '{1}', NULL)$$, '22004', NULL, 'reserve: null ttl');
SELECT throws_ok($$SELECT order_engine.confirm(NULL)$$, '22004', NULL, 'confirm: null order_no');
SELECT throws_ok($$SELECT order_engine.release(NULL)$$, '22004', NULL, 'release: null order_no');
SELECT throws_ok($$SELECT order_engine.set_buckets(1019001, NULL)$$, '22004', NULL, 'set_buckets: null n');
SELECT throws_ok($$SELECT order_engine.set_purchase_limit(NULL, 1)$$, '22004', NULL, 'set_purchase_limit: null sku_id');

-- 22023: invalid values
SELECT throws_ok($$SELECT order_engine.restock(0, 1)$$, '22023', NULL, 'restock: sku_id 0');
SELECT throws_ok($$SELECT order_engine.restock(1019001, 0)$$, '22023', NULL, 'restock: delta 0');
SELECT throws_ok($$SELECT order_engine.set_price(1019001, -0.01)$$, '22023', NULL, 'set_price: negative');
SELECT throws_ok($$SELECT order_engine.set_price(1019001, 'NaN')$$, '22023', NULL, 'set_price: NaN');
SELECT throws_ok($$SELECT order_engine.try_deduct(1019001, 0)$$, '22023', NULL, 'try_deduct: qty 0');
SELECT throws_ok($$SELECT order_engine.try_deduct(1019001, -5)$$, '22023', NULL, 'try_deduct: negative qty');
SELECT throws_ok($$SELECT order_engine.reserve(-1, '{1019001}', '{1}')$$, '22023', NULL, 'reserve: negative order_no');
SELECT throws_ok($$SELECT order_engine.reserve(1019200, '{}', '{}')$$, '22023', NULL, 'reserve: empty arrays');
SELECT throws_ok($$SELECT order_engine.reserve(1019200, '{1019001,1019002}', '{1}')$$, '22023', NULL, 'reserve: arrays of different length');
SELECT throws_ok($$SELECT order_engine.reserve(1019200, '{{1019001}}', '{{1}}')$$, '22023', NULL, 'reserve: two-dimensional array');
SELECT throws_ok($$SELECT order_engine.reserve(1019200, '{1019001}', '{0}')$$, '22023', NULL, 'reserve: qty 0');
SELECT throws_ok($$SELECT order_engine.reserve(1019200, '{0}', '{1}')$$, '22023', NULL, 'reserve: sku_id 0');
SELECT throws_ok($$SELECT order_engine.reserve(1019200, '{1019001,1019001}', '{1,2}')$$, '22023', NULL, 'reserve: SKU twice is refused');
SELECT throws_ok($$SELECT order_engine.reserve(1019200, '{1019001}', '{1}', '0')$$, '22023', NULL, 'reserve: ttl 0');
SELECT throws_ok($$SELECT order_engine.reserve(1019200, '{1019001}', '{1}', '-5 minutes')$$, '22023', NULL, 'reserve: negative ttl');
SELECT throws_ok($$SELECT order_engine.reserve(1019200, '{1019001}', '{1}', '8 days')$$, '22023', NULL, 'reserve: ttl beyond 7 days');
SELECT throws_ok($$SELECT order_engine.reserve(1019200, '{1019001}', '{1}', '178000000 years')$$, '22023', NULL, 'reserve: huge ttl');
SELECT throws_ok($$SELECT order_engine.reserve(1019200, (SELECT array_agg(g) FROM generate_series(1, 1001) g), (SELECT array_agg(1::bigint) FROM generate_series(1, 1001) g))$$,
                 '22023', NULL, 'reserve: more than 1000 lines');
SELECT throws_ok($$SELECT order_engine.set_buckets(1019001, 0)$$, '22023', NULL, 'set_buckets: 0');
SELECT throws_ok($$SELECT order_engine.set_buckets(1019001, 1025)$$, '22023', NULL, 'set_buckets: beyond 1024');
SELECT throws_ok($$SELECT order_engine.set_purchase_limit(1019001, -1)$$, '22023', NULL, 'set_purchase_limit: negative');

-- 22003: out of range
SELECT throws_ok($$SELECT order_engine.restock(1019001, 9223372036854775807)$$, '22003', NULL, 'restock: sum overflows bigint');
SELECT throws_ok($$SELECT order_engine.restock(1019001, -9223372036854775808)$$, '22003', NULL, 'restock: minimal bigint delta');

-- our own codes
SELECT throws_ok($$SELECT order_engine.restock(1019999, -1)$$, 'OE008', NULL, 'restock: write-off of an unknown SKU');
SELECT throws_ok($$SELECT order_engine.try_deduct(1019999, 1)$$, 'OE008', NULL, 'try_deduct: unknown SKU');
SELECT throws_ok($$SELECT order_engine.reserve(1019200, '{1019001,1019999}', '{1,1}')$$, 'OE008', NULL, 'reserve: unknown SKU');
SELECT throws_ok($$SELECT order_engine.set_buckets(1019999, 2)$$, 'OE008', NULL, 'set_buckets: unknown SKU');
SELECT throws_ok($$SELECT order_engine.restock(1019001, -100)$$, 'OE012', NULL, 'restock: write-off below zero');
SELECT throws_ok($$SELECT order_engine.reserve(1019200, '{1019002}', '{3}', '1 hour', 9)$$, 'OE013', NULL, 'reserve: over the purchase limit');
SELECT throws_ok($$SELECT order_engine.confirm(1019101)$$, 'OE005', NULL, 'confirm: released hold');
SELECT throws_ok($$SELECT order_engine.release(1019100)$$, 'OE005', NULL, 'release: confirmed hold');
SELECT throws_ok($$SELECT order_engine.reserve(1019101, '{1019001}', '{1}')$$, 'OE005', NULL, 'reserve: repeat of a released order');
SELECT throws_ok($$SELECT order_engine.reserve(1019100, '{1019001}', '{5}', '1 hour', 7)$$, 'OE006', NULL, 'reserve: order number reused for other content');
SELECT throws_ok($$SELECT order_engine.confirm(1019999)$$, 'OE009', NULL, 'confirm: unknown order');

-- nothing changed, and the books balance
SELECT results_eq($$SELECT available, held, sold FROM order_engine.stock WHERE sku_id = 1019001$$,
                  $$VALUES (8::bigint, 0::bigint, 2::bigint)$$, 'refused calls changed nothing');
SELECT is_empty($$SELECT * FROM order_engine.stock_audit() WHERE NOT ok$$, 'stock_audit is clean');

-- privileges
SELECT function_privs_are('order_engine', 'reserve', ARRAY['bigint', 'bigint[]', 'bigint[]', 'interval', 'bigint'],
                          'order_engine_app', ARRAY['EXECUTE'], 'the application may reserve');
SELECT function_privs_are('order_engine', 'restock', ARRAY['bigint', 'bigint', 'text'],
                          'order_engine_app', ARRAY[]::text[], 'the application may not restock');
SELECT isnt_definer('order_engine', 'reserve', ARRAY['bigint', 'bigint[]', 'bigint[]', 'interval', 'bigint'],
                    'reserve is not SECURITY DEFINER (its C code becomes the owner itself)');

-- reserve as the application role, which has no rights on the tables, and
-- with a search path whose schema shadows bigint "=": reserve's statements
-- run as the owner and never see the caller's operators
CREATE SCHEMA oe_evil;
CREATE FUNCTION oe_evil.eq(bigint, bigint) RETURNS boolean LANGUAGE plpgsql
    AS $$BEGIN RAISE EXCEPTION 'hijacked'; END$$;
CREATE OPERATOR oe_evil.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = oe_evil.eq);
CREATE FUNCTION oe_evil.reserve_one(o bigint, s bigint) RETURNS boolean LANGUAGE plpgsql
    SET search_path = oe_evil, pg_catalog
    AS $$BEGIN RETURN order_engine.reserve(o, ARRAY[s], ARRAY[1::bigint]); END$$;
CREATE FUNCTION oe_evil.compare() RETURNS boolean LANGUAGE plpgsql
    SET search_path = oe_evil, pg_catalog
    AS $$BEGIN RETURN 1::bigint = 1::bigint; END$$;
GRANT USAGE ON SCHEMA oe_evil TO order_engine_app;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA oe_evil TO order_engine_app;
SELECT order_engine.restock(1019003, 1);
SELECT order_engine.try_deduct(1019003, 1);
SET LOCAL ROLE order_engine_app;
SELECT throws_ok($$SELECT oe_evil.compare()$$, 'P0001', 'hijacked',
                 'the shadowing operator is in force on that search path');
SELECT is(oe_evil.reserve_one(1019300, 1019001), true,
          'reserve as the application role on a hostile search path holds stock');
SELECT is(oe_evil.reserve_one(1019301, 1019003), false,
          'reserve of a sold-out SKU as the application role answers false');
SELECT is(current_user::text, 'order_engine_app', 'reserve gives the caller''s identity back');
SELECT throws_ok($$SELECT oe_evil.reserve_one(1019302, 1019999)$$, 'OE008', NULL,
                 'reserve of an unknown SKU as the application role: OE008');
SELECT is(current_user::text, 'order_engine_app', 'an error in reserve gives the caller''s identity back');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
