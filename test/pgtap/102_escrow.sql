-- Escrow SKUs (0.9): the exact SQLSTATE of every bad input and refused
-- call of set_escrow and fold_escrow, that a refused call changes
-- nothing, and their privileges.
BEGIN;
SELECT plan(22);

SELECT order_engine.restock(1029001, 10);
SELECT order_engine.restock(1029002, 10);
SELECT order_engine.set_buckets(1029002, 4);
SELECT order_engine.set_price(1029003, 1);     -- a SKU without stock rows

-- 22004: null where a value is required
SELECT throws_ok($$SELECT order_engine.set_escrow(NULL, true)$$, '22004', NULL, 'set_escrow: null sku_id');
SELECT throws_ok($$SELECT order_engine.set_escrow(1029001, NULL)$$, '22004', NULL, 'set_escrow: null enabled');
SELECT is(order_engine.fold_escrow(NULL), NULL, 'fold_escrow is STRICT: null max_rows, null answer');

-- 22023: invalid values
SELECT throws_ok($$SELECT order_engine.set_escrow(0)$$, '22023', NULL, 'set_escrow: sku_id 0');
SELECT throws_ok($$SELECT order_engine.set_escrow(-5, false)$$, '22023', NULL, 'set_escrow: negative sku_id');
SELECT throws_ok($$SELECT order_engine.fold_escrow(0)$$, '22023', NULL, 'fold_escrow: max_rows 0');
SELECT throws_ok($$SELECT order_engine.fold_escrow(-1)$$, '22023', NULL, 'fold_escrow: negative max_rows');

-- our own codes
SELECT throws_ok($$SELECT order_engine.set_escrow(1029999)$$, 'OE008', NULL, 'set_escrow: unknown SKU');
SELECT throws_ok($$SELECT order_engine.set_escrow(1029999, false)$$, 'OE008', NULL, 'set_escrow off: unknown SKU');
SELECT throws_ok($$SELECT order_engine.set_escrow(1029002)$$, 'OE027', NULL, 'set_escrow: a SKU in 4 buckets');
SELECT lives_ok($$SELECT order_engine.set_escrow(1029001)$$, 'set_escrow of a one-bucket SKU');
SELECT lives_ok($$SELECT order_engine.set_escrow(1029001)$$, 'set_escrow again changes nothing');
SELECT throws_ok($$SELECT order_engine.set_buckets(1029001, 2)$$, 'OE027', NULL, 'set_buckets of an escrow SKU');
SELECT lives_ok($$SELECT order_engine.set_buckets(1029001, 1)$$, 'set_buckets(.., 1) of an escrow SKU is allowed');
SELECT lives_ok($$SELECT order_engine.set_escrow(1029003)$$, 'set_escrow of a SKU without stock rows');

-- nothing of the refused calls changed the stock; escrow moved the units
SELECT results_eq($$SELECT available, held, sold, escrow FROM order_engine.stock WHERE sku_id = 1029001$$,
                  $$VALUES (10::bigint, 0::bigint, 0::bigint, true)$$, 'the escrow SKU keeps its ten units');
SELECT results_eq($$SELECT available, escrow FROM order_engine.stock_bucket WHERE sku_id = 1029001$$,
                  $$VALUES (0::bigint, 10::bigint)$$, 'its units sit in escrow');
SELECT is_empty($$SELECT * FROM order_engine.stock_audit() WHERE NOT ok$$, 'stock_audit is clean');

-- privileges: administration only
SELECT function_privs_are('order_engine', 'set_escrow', ARRAY['bigint', 'boolean'],
                          'order_engine_app', ARRAY[]::text[], 'the application may not set escrow');
SELECT function_privs_are('order_engine', 'fold_escrow', ARRAY['integer'],
                          'order_engine_app', ARRAY[]::text[], 'the application may not run the fold');
SET LOCAL ROLE order_engine_app;
SELECT throws_ok($$SELECT order_engine.set_escrow(1029001, false)$$, '42501', NULL,
                 'set_escrow as the application role: 42501');
RESET ROLE;
SELECT is_definer('order_engine', 'set_escrow', ARRAY['bigint', 'boolean'],
                  'set_escrow is SECURITY DEFINER with a pinned search path');

SELECT * FROM finish();
ROLLBACK;
