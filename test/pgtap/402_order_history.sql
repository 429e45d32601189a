-- Order history: bad input to buyer_orders / seller_orders, with the exact
-- SQLSTATE; the functions answer the application role.
BEGIN;
SELECT plan(8);

SELECT throws_ok($$SELECT * FROM order_engine.buyer_orders(NULL)$$, '22004', NULL, 'buyer_orders: null buyer');
SELECT throws_ok($$SELECT * FROM order_engine.buyer_orders(1, NULL, NULL)$$, '22004', NULL, 'buyer_orders: null lim');
SELECT throws_ok($$SELECT * FROM order_engine.buyer_orders(1, NULL, 0)$$, '22023', NULL, 'buyer_orders: lim 0');
SELECT throws_ok($$SELECT * FROM order_engine.buyer_orders(1, NULL, 1001)$$, '22023', NULL, 'buyer_orders: lim over 1000');
SELECT throws_ok($$SELECT * FROM order_engine.seller_orders(NULL)$$, '22004', NULL, 'seller_orders: null seller');
SELECT throws_ok($$SELECT * FROM order_engine.seller_orders(1, NULL, -5)$$, '22023', NULL, 'seller_orders: negative lim');

SET LOCAL ROLE order_engine_app;
SELECT lives_ok($$SELECT * FROM order_engine.buyer_orders(1)$$,
                'the application role pages a buyer''s orders (archive included) without rights on the archive');
SELECT lives_ok($$SELECT * FROM order_engine.seller_orders(1, 10, 5)$$,
                'the application role pages a seller''s orders');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
