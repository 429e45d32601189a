-- Orders and maintenance jobs: the exact SQLSTATE of every bad input and
-- refused move, that a refused call writes nothing, and the privileges
-- and SECURITY DEFINER settings of the order objects.
BEGIN;
SELECT plan(58);

SELECT order_engine.restock(4019001, 10);
SELECT order_engine.set_price(4019001, 2.50);
SELECT order_engine.restock(4019002, 10);
SELECT order_engine.place_order(4019100, 7, 1, '[{"sku_id": 4019001, "qty": 2}]');
SELECT order_engine.place_order(4019101, 7, 1, '[{"sku_id": 4019001, "qty": 1}]');
SELECT order_engine.pay_order(4019101, 'pgtap-pay', 2.50);

-- 22004: null where a value is required
SELECT throws_ok($$SELECT order_engine.place_order(NULL, 7, 1, '[{"sku_id": 4019001, "qty": 1}]')$$, '22004', NULL, 'place_order: null order_no');
SELECT throws_ok($$SELECT order_engine.place_order(4019200, NULL, 1, '[{"sku_id": 4019001, "qty": 1}]')$$, '22004', NULL, 'place_order: null buyer');
SELECT throws_ok($$SELECT order_engine.place_order(4019200, 7, NULL, '[{"sku_id": 4019001, "qty": 1}]')$$, '22004', NULL, 'place_order: null seller');
SELECT throws_ok($$SELECT order_engine.place_order(4019200, 7, 1, NULL)$$, '22004', NULL, 'place_order: null lines');
SELECT throws_ok($$SELECT order_engine.place_order(4019200, 7, 1, '[{"sku_id": 4019001, "qty": 1}]', NULL)$$, '22004', NULL, 'place_order: null pay_within');
SELECT throws_ok($$SELECT order_engine.pay_order(NULL, 'x', 1)$$, '22004', NULL, 'pay_order: null order_no');
SELECT throws_ok($$SELECT order_engine.pay_order(4019100, NULL, 1)$$, '22004', NULL, 'pay_order: null payment_ref');
SELECT throws_ok($$SELECT order_engine.pay_order(4019100, 'x', NULL)$$, '22004', NULL, 'pay_order: null amount');
SELECT throws_ok($$SELECT order_engine.cancel_order(NULL)$$, '22004', NULL, 'cancel_order: null order_no');
SELECT throws_ok($$SELECT order_engine.ship_order(4019101, NULL)$$, '22004', NULL, 'ship_order: null logistics_no');
SELECT throws_ok($$SELECT order_engine.complete_order(NULL)$$, '22004', NULL, 'complete_order: null order_no');
SELECT throws_ok($$SELECT order_engine.update_order(4019100, NULL, '{"note": "x"}')$$, '22004', NULL, 'update_order: null version');
SELECT throws_ok($$SELECT order_engine.update_order(4019100, 1, NULL)$$, '22004', NULL, 'update_order: null changes');

-- 22023: malformed lines and values
SELECT throws_ok($$SELECT order_engine.place_order(4019200, 7, 1, '{"sku_id": 4019001, "qty": 1}')$$, '22023', NULL, 'lines not an array');
SELECT throws_ok($$SELECT order_engine.place_order(4019200, 7, 1, '"x"')$$, '22023', NULL, 'lines a scalar');
SELECT throws_ok($$SELECT order_engine.place_order(4019200, 7, 1, '[]')$$, '22023', NULL, 'lines empty');
SELECT throws_ok($$SELECT order_engine.place_order(4019200, 7, 1, '[null]')$$, '22023', NULL, 'a line is null');
SELECT throws_ok($$SELECT order_engine.place_order(4019200, 7, 1, '[{"qty": 1}]')$$, '22023', NULL, 'line without sku_id');
SELECT throws_ok($$SELECT order_engine.place_order(4019200, 7, 1, '[{"sku_id": 4019001, "qty": 1, "x": 1}]')$$, '22023', NULL, 'line with an extra key');
SELECT throws_ok($$SELECT order_engine.place_order(4019200, 7, 1, '[{"sku_id": 4019001, "qty": "1"}]')$$, '22023', NULL, 'qty a string');
SELECT throws_ok($$SELECT order_engine.place_order(4019200, 7, 1, '[{"sku_id": 4019001, "qty": null}]')$$, '22023', NULL, 'qty null');
SELECT throws_ok($$SELECT order_engine.place_order(4019200, 7, 1, '[{"sku_id": 4019001, "qty": 0}]')$$, '22023', NULL, 'qty 0');
SELECT throws_ok($$SELECT order_engine.place_order(4019200, 7, 1, '[{"sku_id": 4019001, "qty": -3}]')$$, '22023', NULL, 'qty negative');
SELECT throws_ok($$SELECT order_engine.place_order(4019200, 7, 1, '[{"sku_id": 4019001, "qty": 2.5}]')$$, '22023', NULL, 'qty fractional');
SELECT throws_ok($$SELECT order_engine.place_order(4019200, 7, 1, '[{"sku_id": 4019001, "qty": 1e30}]')$$, '22023', NULL, 'qty beyond bigint');
SELECT throws_ok($$SELECT order_engine.place_order(4019200, 7, 1, '[{"sku_id": 4019001, "qty": 1}, {"sku_id": 4019001, "qty": 2}]')$$, '22023', NULL, 'SKU twice');
SELECT throws_ok($$SELECT order_engine.place_order(4019200, 7, 1, (SELECT jsonb_agg(jsonb_build_object('sku_id', g, 'qty', 1)) FROM generate_series(1, 101) g))$$, '22023', NULL, 'too many lines');
SELECT throws_ok($$SELECT order_engine.place_order(4019200, 7, 1, '[{"sku_id": 4019001, "qty": 1}]', '-1 minute')$$, '22023', NULL, 'pay_within negative');
SELECT throws_ok($$SELECT order_engine.place_order(4019200, 7, 1, '[{"sku_id": 4019001, "qty": 1}]', '1 year')$$, '22023', NULL, 'pay_within too long');
SELECT throws_ok($$SELECT order_engine.place_order(0, 7, 1, '[{"sku_id": 4019001, "qty": 1}]')$$, '22023', NULL, 'order_no 0');
SELECT throws_ok($$SELECT order_engine.pay_order(4019100, '', 5)$$, '22023', NULL, 'empty payment_ref');
SELECT throws_ok($$SELECT order_engine.pay_order(4019100, repeat('x', 201), 5)$$, '22023', NULL, 'payment_ref too long');
SELECT throws_ok($$SELECT order_engine.pay_order(4019100, 'x', -5)$$, '22023', NULL, 'negative amount');
SELECT throws_ok($$SELECT order_engine.pay_order(4019100, 'x', 'Infinity')$$, '22023', NULL, 'infinite amount');
SELECT throws_ok($$SELECT order_engine.ship_order(4019101, '')$$, '22023', NULL, 'empty logistics_no');
SELECT throws_ok($$SELECT order_engine.update_order(4019100, 1, '{"status": "paid"}')$$, '22023', NULL, 'update_order: status is not editable');
SELECT throws_ok($$SELECT order_engine.update_order(4019100, 1, '"x"')$$, '22023', NULL, 'update_order: changes not an object');
SELECT throws_ok($$SELECT order_engine.close_unpaid(0)$$, '22023', NULL, 'close_unpaid: max_rows 0');
SELECT throws_ok($$SELECT order_engine.release_expired(-1)$$, '22023', NULL, 'release_expired: negative max_rows');
SELECT throws_ok($$SELECT order_engine.archive_orders('-1 day', 10)$$, '22023', NULL, 'archive_orders: negative age');
SELECT is(order_engine.archive_orders('178000000 years', 10), 0, 'archive_orders: an age past the timestamp range archives nothing');

-- the business errors, with their own codes
SELECT throws_ok($$SELECT order_engine.place_order(4019100, 7, 1, '[{"sku_id": 4019001, "qty": 3}]')$$, 'OE006', NULL, 'order number reused for other content');
SELECT throws_ok($$SELECT order_engine.place_order(4019200, 7, 1, '[{"sku_id": 4019999, "qty": 1}]')$$, 'OE008', NULL, 'unknown SKU');
SELECT throws_ok($$SELECT order_engine.place_order(4019200, 7, 1, '[{"sku_id": 4019002, "qty": 1}]')$$, '55000', NULL, 'SKU without a price');
SELECT throws_ok($$SELECT order_engine.pay_order(4019100, 'x', 4.99)$$, 'OE007', NULL, 'wrong amount');
SELECT throws_ok($$SELECT order_engine.pay_order(4019100, 'pgtap-pay', 5)$$, 'OE018', NULL, 'payment_ref of another payment');
SELECT throws_ok($$SELECT order_engine.pay_order(4019999, 'x', 5)$$, 'OE009', NULL, 'pay an unknown order');
SELECT throws_ok($$SELECT order_engine.complete_order(4019101)$$, 'OE004', NULL, 'paid -> completed is illegal');
-- 0.7 (issue 12.3): a paid order cancelled before shipment is refunded
SELECT is(order_engine.cancel_order(4019101), 'refund_required', 'paid -> cancel before shipment is refund_required');
SELECT throws_ok($$SELECT order_engine.update_order(4019100, 99, '{"note": "late"}')$$, 'OE001', NULL, 'stale version');

-- nothing of the refused calls was written
SELECT is((SELECT count(*) FROM order_engine.orders WHERE order_no BETWEEN 4019100 AND 4019999), 2::bigint,
          'refused calls wrote no order');
SELECT is((SELECT held FROM order_engine.stock WHERE sku_id = 4019001), 2::bigint,
          'refused calls held no stock');

-- privileges: the app role calls the API, only the admin runs the jobs
SELECT ok(has_function_privilege('order_engine_app', 'order_engine.place_order(bigint, bigint, bigint, jsonb, interval, text)', 'EXECUTE'), 'app may place orders');
SELECT ok(NOT has_function_privilege('order_engine_app', 'order_engine.close_unpaid(integer)', 'EXECUTE'), 'app may not run close_unpaid');
SELECT ok(NOT has_table_privilege('order_engine_app', 'order_engine.orders', 'UPDATE'), 'app cannot update orders directly');
SELECT isnt_definer('order_engine', 'place_order', ARRAY['bigint', 'bigint', 'bigint', 'jsonb', 'interval', 'text'], 'place_order becomes the owner in C, not through SECURITY DEFINER');

-- the application role places an order although it cannot write any table
SET ROLE order_engine_app;
CREATE TEMP TABLE app_place AS
    SELECT order_engine.place_order(4019300, 8, 1, '[{"sku_id": 4019001, "qty": 1}]') AS status;
CREATE TEMP TABLE app_who AS SELECT current_user::text AS who;
RESET ROLE;
SELECT is((SELECT status FROM app_place), 'pending_payment', 'the app role places an order through place_order');
SELECT is((SELECT who FROM app_who), 'order_engine_app', 'after place_order the caller is itself again');

SELECT * FROM finish();
ROLLBACK;
