-- Money and orders are never lost (issue 12; issue 11 items 5 and 12):
-- the exact SQLSTATE of every refusal the 0.7 rules added, that refused
-- calls change nothing, and the privileges of the new objects.
BEGIN;
SELECT plan(40);

SELECT order_engine.restock(4019501, 10);
SELECT order_engine.set_price(4019501, 2.50);
SELECT order_engine.restock(4019502, 10);
SELECT order_engine.restock(4019503, 10);
SELECT order_engine.set_price(4019503, 4);
SELECT order_engine.set_purchase_limit(4019503, 2);
SELECT order_engine.place_order(4019600, 7, 1, '[{"sku_id": 4019501, "qty": 1}]');
SELECT order_engine.place_order(4019601, 7, 1, '[{"sku_id": 4019501, "qty": 1}]');
SELECT order_engine.pay_order(4019601, 'pgtap-m1', 2.50);
SELECT order_engine.place_order(4019602, 7, 1, '[{"sku_id": 4019501, "qty": 1}]');
SELECT order_engine.pay_order(4019602, 'pgtap-m2', 2.50);
SELECT order_engine.ship_order(4019602, 'SF4019602');

-- 12.1: a hold reserved before placement lives until the deadline
SELECT order_engine.reserve(4019603, '{4019501}', '{1}', '1 second', 7);
SELECT is(order_engine.place_order(4019603, 7, 1, '[{"sku_id": 4019501, "qty": 1}]'), 'pending_payment',
          'place_order adopts a hold reserved earlier');
SELECT ok((SELECT h.expires_at >= o.pay_deadline FROM order_engine.stock_hold h
             JOIN order_engine.orders o USING (order_no) WHERE order_no = 4019603),
          'the adopted hold is extended to the payment deadline');
-- a hold released before placement: the order cannot be placed (OE005)
SELECT order_engine.reserve(4019604, '{4019501}', '{1}', '30 minutes', 7);
SELECT order_engine.release(4019604);
SELECT throws_ok($$SELECT order_engine.place_order(4019604, 7, 1, '[{"sku_id": 4019501, "qty": 1}]')$$,
                 'OE005', NULL, 'place_order on a number whose holds were released');

-- 12.2: a placed order's holds move only with the order
SELECT throws_ok($$SELECT order_engine.release(4019600)$$, 'OE019', NULL, 'release of a placed order');
SELECT throws_ok($$SELECT order_engine.confirm(4019600)$$, 'OE019', NULL, 'confirm of a placed unpaid order');
SELECT throws_ok($$SELECT order_engine.confirm(4019601)$$, 'OE019', NULL, 'confirm of a placed paid order');
SELECT is((SELECT state FROM order_engine.stock_hold WHERE order_no = 4019600), 'held',
          'the refused stock calls left the hold held');

-- 12.3: cancel before shipment refunds; refunds per payment
SELECT order_engine.place_order(4019605, 7, 1, '[{"sku_id": 4019503, "qty": 2}]');
SELECT order_engine.pay_order(4019605, 'pgtap-m5', 8);
SELECT is(order_engine.cancel_order(4019605), 'refund_required', 'cancel of a paid order: refund_required');
SELECT is(order_engine.cancel_order(4019605), 'refund_required', 'and again: the same answer');
SELECT is((SELECT sold FROM order_engine.stock WHERE sku_id = 4019503), 0::bigint, 'its stock is returned');
SELECT is(order_engine.place_order(4019606, 7, 1, '[{"sku_id": 4019503, "qty": 2}]'), 'pending_payment',
          'the purchase-limit allowance is back');
SELECT is((SELECT count(*) FROM order_engine.refunds_due WHERE payment_ref = 'pgtap-m5'), 1::bigint,
          'refunds_due lists the payment');
SELECT is(order_engine.refund_payment('pgtap-m5', 'pgtap-rf5'), 'refunded', 'refund_payment records the refund');
SELECT is(order_engine.refund_payment('pgtap-m5', 'pgtap-rf5'), 'refunded', 'refund_payment is idempotent');
SELECT is(order_engine.order_status(4019605), 'refunded', 'the last owed payment refunds the order');
SELECT throws_ok($$SELECT order_engine.refund_payment('pgtap-m5', 'pgtap-other')$$, 'OE020', NULL,
                 'refund_payment with another refund_ref');
SELECT order_engine.pay_order(4019601, 'pgtap-m1b', 2.50);
SELECT throws_ok($$SELECT order_engine.refund_payment('pgtap-m1b', 'pgtap-rf5')$$, 'OE020', NULL,
                 'one refund_ref for two payments');
SELECT throws_ok($$SELECT order_engine.refund_payment('pgtap-m1', 'pgtap-rf1')$$, 'OE021', NULL,
                 'refund_payment of a payment the order keeps');
SELECT throws_ok($$SELECT order_engine.refund_payment('pgtap-none', 'pgtap-rf1')$$, 'OE022', NULL,
                 'refund_payment of an unknown payment');
SELECT throws_ok($$SELECT order_engine.refund_payment(NULL, 'pgtap-rf1')$$, '22004', NULL,
                 'refund_payment: null payment_ref');
SELECT throws_ok($$SELECT order_engine.refund_payment('pgtap-m1b', NULL)$$, '22004', NULL,
                 'refund_payment: null refund_ref');
SELECT throws_ok($$SELECT order_engine.refund_payment('pgtap-m1b', '')$$, '22023', NULL,
                 'refund_payment: empty refund_ref');
SELECT throws_ok($$SELECT order_engine.cancel_order(4019602)$$, 'OE004', NULL, 'cancel of a shipped order');

-- 12.4: a wrong amount on a cancelled order is recorded, owed back
SELECT order_engine.cancel_order(4019606);
SELECT is(order_engine.pay_order(4019606, 'pgtap-m6', 0.01), 'refund_required',
          'a wrong amount on a cancelled order is refund_required');
SELECT is((SELECT refund_state FROM order_engine.payments WHERE payment_ref = 'pgtap-m6'), 'refund_required',
          'and recorded as owed');
SELECT throws_ok($$SELECT order_engine.pay_order(4019600, 'pgtap-x', 2.49)$$, 'OE007', NULL,
                 'a wrong amount on an order awaiting payment is refused');

-- 12.6: payable prices
SELECT throws_ok($$SELECT order_engine.set_price(4019502, 0.333)$$, '22023', NULL, 'a price below the currency scale');
SET LOCAL order_engine.currency_scale = 3;
SELECT order_engine.set_price(4019502, 0.333);
RESET order_engine.currency_scale;
SELECT throws_ok($$SELECT order_engine.place_order(4019607, 7, 1, '[{"sku_id": 4019502, "qty": 1}]')$$,
                 '55000', NULL, 'place_order of a SKU whose price is below the scale');

-- 12.8: the same payment_ref for another order
SELECT throws_ok($$SELECT order_engine.pay_order(4019600, 'pgtap-m1', 2.50)$$, 'OE018', NULL,
                 'payment_ref of another order');

-- 12.9: update_order's validator
SELECT throws_ok($$SELECT order_engine.update_order(4019600, 1, jsonb_build_object('logistics_no', repeat('x', 5000)))$$,
                 '22023', NULL, 'update_order: logistics_no too long');
SELECT throws_ok($$SELECT order_engine.update_order(4019600, 1, '{"logistics_no": ""}')$$,
                 '22023', NULL, 'update_order: empty logistics_no');
SELECT throws_ok($$SELECT order_engine.update_order(4019600, 1, jsonb_build_object('note', repeat('x', 1000000)))$$,
                 '22023', NULL, 'update_order: a 1 MB note');
SELECT throws_ok($$SELECT order_engine.update_order(4019602, 5, '{"logistics_no": null}')$$,
                 '22004', NULL, 'update_order: no logistics_no for a shipped order');

-- 12.10 and the decisions
SELECT throws_ok($$SELECT order_engine.ack_events(NULL)$$, '22004', NULL, 'ack_events(NULL)');
SELECT throws_ok($$SELECT order_engine.place_order(4019608, -5, 1, '[{"sku_id": 4019501, "qty": 1}]')$$,
                 '22023', NULL, 'place_order: a negative buyer');
SET LOCAL order_engine.require_shard_gene = on;
SELECT throws_ok($$SELECT order_engine.place_order(4019608, 7, 1, '[{"sku_id": 4019501, "qty": 1}]')$$,
                 'OE023', NULL, 'place_order: a number without the buyer''s shard gene');
RESET order_engine.require_shard_gene;

-- issue 11.5: one checked interval conversion
SELECT throws_ok($$SELECT order_engine.place_order(4019609, 7, 1, '[{"sku_id": 4019501, "qty": 1}]',
                   '2147483647 mons 2147483647 days 2562047788 hours')$$,
                 '22023', NULL, 'place_order: a pay_within that overflows');

-- the money ledger of this file's orders holds
SELECT is_empty($$SELECT * FROM order_engine.order_audit() WHERE order_no BETWEEN 4019500 AND 4019699$$,
                'order_audit finds nothing wrong');

-- the new objects: admin only, SECURITY DEFINER with a pinned path
SELECT is_definer('order_engine', 'refund_payment', ARRAY['text', 'text'], 'refund_payment is SECURITY DEFINER');
SELECT is_definer('order_engine', 'order_audit', ARRAY[]::name[], 'order_audit is SECURITY DEFINER');

SELECT * FROM finish();
ROLLBACK;
