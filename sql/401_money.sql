--
-- Money and orders are never lost (issue 12), and issue 11 items 5, 7, 12:
-- holds bound to their order, stock calls that would strand an order,
-- refunds per payment, payments on closed and archived orders, archive vs
-- the outbox, payable prices, one clock, update_order's validator, the
-- money ledger (order_audit), PREPARE after place_order, one interval
-- conversion, an order without lines.
--
\set VERBOSITY terse
SELECT order_engine.restock(4101, 20);
SELECT order_engine.restock(4102, 20);
SELECT order_engine.restock(4103, 5);
SELECT order_engine.set_price(4101, 10.00);
SELECT order_engine.set_price(4102, 5.50);
SELECT order_engine.set_price(4103, 20);
SELECT order_engine.set_purchase_limit(4103, 2);
SELECT order_engine.restock(4104, 5);

-- 12.1: a hold reserved with a short ttl before placement lives until the
-- order's deadline; the sweeper leaves it, the payment goes through
SELECT order_engine.reserve(41001, '{4101}', '{2}', '1 second', 9);
SELECT order_engine.place_order(41001, 9, 900, '[{"sku_id": 4101, "qty": 2}]');
SELECT h.expires_at >= o.pay_deadline AS hold_lives_until_deadline
  FROM order_engine.stock_hold h JOIN order_engine.orders o USING (order_no)
 WHERE order_no = 41001;
SELECT pg_sleep(1.2);
SELECT order_engine.release_expired(100) >= 0 AS swept;
SELECT state FROM order_engine.stock_hold WHERE order_no = 41001;
SELECT order_engine.pay_order(41001, 'm-1', 20.00);
SELECT state FROM order_engine.stock_hold WHERE order_no = 41001;

-- 12.2: the holds of a placed order move only with the order
SELECT order_engine.place_order(41002, 9, 900, '[{"sku_id": 4102, "qty": 1}]');
SELECT order_engine.release(41002);
SELECT order_engine.confirm(41002);
SELECT order_engine.confirm(41001);
SELECT state FROM order_engine.stock_hold WHERE order_no = 41002;
SELECT order_engine.order_status(41002);
-- a number that is not an order is the application's to move
SELECT order_engine.reserve(41090, '{4102}', '{1}');
SELECT order_engine.release(41090);

-- 12.3: cancel a paid order before shipment: refund_required, stock and
-- the purchase-limit allowance come back, the payment is owed
SELECT order_engine.place_order(41003, 9, 900, '[{"sku_id": 4103, "qty": 2}]');
SELECT order_engine.pay_order(41003, 'm-3', 40);
SELECT sku_id, available, held, sold FROM order_engine.stock WHERE sku_id = 4103;
SELECT order_engine.cancel_order(41003, 'changed my mind');
SELECT order_engine.cancel_order(41003);
SELECT sku_id, available, held, sold FROM order_engine.stock WHERE sku_id = 4103;
SELECT kind, d_available, d_held, d_sold FROM order_engine.stock_journal
 WHERE order_no = 41003 ORDER BY array_position('{hold,confirm,release,return}', kind);
-- the allowance is back: buyer 9 may hold 2 units of 4103 again
SELECT order_engine.place_order(41013, 9, 900, '[{"sku_id": 4103, "qty": 2}]');
SELECT payment_ref, order_no, amount, outcome, order_status FROM order_engine.refunds_due
 WHERE order_no BETWEEN 41000 AND 41999 ORDER BY 1;
SELECT order_engine.refund_payment('m-3', 'rf-3');
SELECT order_engine.refund_payment('m-3', 'rf-3');
SELECT order_engine.refund_payment('m-3', 'rf-other');
SELECT order_engine.order_status(41003);
SELECT payment_ref, outcome, refund_state, refund_ref, refunded_at IS NOT NULL AS refunded
  FROM order_engine.payments WHERE order_no = 41003;
SELECT order_engine.refund_payment('m-none', 'rf-x');
SELECT order_engine.refund_payment('m-1', 'rf-x');
-- a second payment of a paid order is owed back on its own; the order stays paid
SELECT order_engine.pay_order(41001, 'm-1b', 20.00);
SELECT order_engine.refund_payment('m-1b', 'rf-3');
SELECT order_engine.refund_payment('m-1b', 'rf-1b');
SELECT order_engine.order_status(41001);
SELECT event, detail FROM order_engine.order_events
 WHERE order_no = 41001 AND event IN ('paid', 'extra_payment', 'payment_refunded') ORDER BY event_id;
-- shipped orders are not cancelled (returns are out of scope)
SELECT order_engine.ship_order(41001, 'SF41001');
SELECT order_engine.cancel_order(41001);
SELECT detail FROM order_engine.order_events WHERE order_no = 41001 AND event = 'shipped';

-- 12.4: money on cancelled, closed and archived orders is always recorded
SELECT order_engine.place_order(41004, 9, 900, '[{"sku_id": 4102, "qty": 1}]');
SELECT order_engine.cancel_order(41004);
SELECT order_engine.pay_order(41004, 'm-4', 1.00);
SELECT order_engine.pay_order(41004, 'm-4', 1.00);
SELECT order_engine.pay_order(41004, 'm-4b', 9999);
SELECT payment_ref, amount, outcome, refund_state FROM order_engine.payments
 WHERE order_no = 41004 ORDER BY 1;
SELECT order_engine.order_status(41004);
-- an archived closed order is reachable by a late payment
SELECT order_engine.place_order(41005, 9, 900, '[{"sku_id": 4102, "qty": 1}]', '1 second');
SELECT pg_sleep(1.2);
SELECT order_engine.close_unpaid(100) >= 1 AS closed;
SELECT order_engine.ack_events(array_agg(event_id)) > 0 AS acked
  FROM order_engine.order_events WHERE order_no = 41005;
SELECT order_engine.archive_orders('0 seconds', 1000) >= 1 AS archived;
SELECT count(*) AS live FROM order_engine.orders WHERE order_no = 41005;
SELECT order_engine.pay_order(41005, 'm-5', 5.50);
SELECT order_engine.pay_order(41005, 'm-5', 5.50);
SELECT status FROM order_engine.orders WHERE order_no = 41005;
SELECT count(*) AS archived FROM order_engine_archive.orders WHERE order_no = 41005;
SELECT count(*) AS lines FROM order_engine.order_lines WHERE order_no = 41005;
SELECT order_engine.refund_payment('m-5', 'rf-5');
SELECT order_engine.order_status(41005);
-- a retried cancel of an archived cancelled order is answered where it is
SELECT order_engine.place_order(41014, 9, 900, '[{"sku_id": 4102, "qty": 1}]');
SELECT order_engine.cancel_order(41014);
SELECT order_engine.ack_events(array_agg(event_id)) > 0 AS acked
  FROM order_engine.order_events WHERE order_no = 41014;
SELECT order_engine.archive_orders('0 seconds', 1000) >= 1 AS archived;
SELECT order_engine.cancel_order(41014);
SELECT count(*) AS still_archived FROM order_engine_archive.orders WHERE order_no = 41014;

-- 12.5: an order with unacknowledged events stays live until they are acked
SELECT order_engine.place_order(41006, 9, 900, '[{"sku_id": 4102, "qty": 1}]');
SELECT order_engine.cancel_order(41006);
SELECT order_engine.archive_orders('0 seconds', 1000) >= 0 AS ran;
SELECT count(*) AS live FROM order_engine.orders WHERE order_no = 41006;
SELECT count(*) AS claimable FROM order_engine.claim_events(1000) WHERE order_no = 41006;
SELECT order_engine.ack_events(array_agg(event_id)) AS acked
  FROM order_engine.order_events WHERE order_no = 41006;
SELECT order_engine.archive_orders('0 seconds', 1000) >= 1 AS archived;
SELECT count(*) AS archived FROM order_engine_archive.orders WHERE order_no = 41006;

-- 12.6: prices have at most order_engine.currency_scale (2) decimals
SELECT order_engine.set_price(4104, 0.333);
SELECT order_engine.set_price(4104, 1.2345678901234567890123456789);
SELECT order_engine.set_price(4104, 0.330);
SET order_engine.currency_scale = 3;
SELECT order_engine.set_price(4104, 0.333);
RESET order_engine.currency_scale;
SELECT order_engine.place_order(41007, 9, 900, '[{"sku_id": 4104, "qty": 1}]');
SELECT order_engine.order_status(41007);
SELECT order_engine.set_price(4104, 0.33);

-- 12.7: one clock: a transaction that began before the deadline and pays
-- after it gets refund_required, recorded, not an expired-hold error
SELECT order_engine.place_order(41008, 9, 900, '[{"sku_id": 4102, "qty": 1}]', '2 seconds');
BEGIN;
SELECT order_engine.order_status(41008);
SELECT pg_sleep(2.2);
SELECT order_engine.pay_order(41008, 'm-8', 5.50);
COMMIT;
SELECT payment_ref, outcome, refund_state FROM order_engine.payments WHERE order_no = 41008;
SELECT status, close_reason FROM order_engine.orders WHERE order_no = 41008;

-- 12.8: the same payment_ref for another order is OE018
SELECT order_engine.place_order(41009, 9, 900, '[{"sku_id": 4102, "qty": 1}]');
SELECT order_engine.pay_order(41009, 'm-1', 5.50);

-- 12.9: update_order checks what ship_order checks, and bounds the rest
SELECT order_engine.update_order(41009, 1, jsonb_build_object('logistics_no', repeat('x', 5000)));
SELECT order_engine.update_order(41009, 1, '{"logistics_no": ""}');
SELECT order_engine.update_order(41009, 1, jsonb_build_object('note', repeat('x', 1000000)));
SELECT order_engine.update_order(41009, 1, '{"address": 12}');
SELECT order_engine.update_order(41009, 1, '{"note": null, "address": "Road 9"}');
SELECT order_engine.pay_order(41009, 'm-9', 5.50);
SELECT order_engine.ship_order(41009, 'SF9');
SELECT order_engine.update_order(41009, 4, '{"logistics_no": null}');
SELECT order_engine.update_order(41009, 4, '{"logistics_no": "SF99"}');
SELECT order_engine.ship_order(41009, 'SF99');
SELECT version, logistics_no, address, note FROM order_engine.orders WHERE order_no = 41009;

-- 12.10: ack_events(NULL), negative buyers
SELECT order_engine.ack_events(NULL);
SELECT order_engine.place_order(41010, -5, 900, '[{"sku_id": 4102, "qty": 1}]');
SELECT order_engine.place_order(41010, 9, -1, '[{"sku_id": 4102, "qty": 1}]');

-- decided: order numbers must carry the buyer's shard gene when
-- order_engine.require_shard_gene is on (off by default in 0.7)
SET order_engine.require_shard_gene = on;
SELECT order_engine.place_order(41011, 7, 900, '[{"sku_id": 4102, "qty": 1}]');
SELECT order_engine.place_order(41107, 7, 900, '[{"sku_id": 4102, "qty": 1}]');
RESET order_engine.require_shard_gene;

-- issue 11.5: one interval conversion for the deadline and the holds
SELECT order_engine.place_order(41012, 9, 900, '[{"sku_id": 4102, "qty": 1}]',
                                '1000 mons -29999 days');
SELECT pay_deadline - created_at < interval '25 hours' AS one_day_window
  FROM order_engine.orders WHERE order_no = 41012;
SELECT bool_and(h.expires_at >= o.pay_deadline) AS holds_outlive_deadline
  FROM order_engine.stock_hold h JOIN order_engine.orders o USING (order_no)
 WHERE order_no = 41012;
SELECT order_engine.place_order(41015, 9, 900, '[{"sku_id": 4102, "qty": 1}]',
                                '2147483647 mons 2147483647 days 2562047788 hours');
SELECT order_engine.reserve(41091, '{4102}', '{1}', '2147483647 mons 2147483647 days 2562047788 hours');

-- issue 11.7: PREPARE TRANSACTION after place_order
BEGIN;
SELECT order_engine.place_order(41016, 9, 900, '[{"sku_id": 4102, "qty": 1}]');
PREPARE TRANSACTION 'oe_401_prepared';
COMMIT PREPARED 'oe_401_prepared';
SELECT order_engine.order_status(41016);
SELECT count(*) AS events FROM order_engine.order_events WHERE order_no = 41016;

-- the money ledger holds (orders of this file)
SELECT * FROM order_engine.order_audit() WHERE order_no BETWEEN 41000 AND 41999;
SELECT sku_id, ok, detail FROM order_engine.stock_audit() WHERE sku_id BETWEEN 4101 AND 4104;

-- and sees a broken one: a hold shorter than its order
UPDATE order_engine.stock_hold SET expires_at = now() - interval '1 hour'
 WHERE order_no = 41013;
SELECT order_no, ok, detail LIKE 'a hold expires at %, before the payment deadline %' AS short_hold
  FROM order_engine.order_audit() WHERE order_no = 41013;

-- issue 11.12: an order whose lines are gone; a repeat is a conflict, not a crash
DELETE FROM order_engine.order_lines WHERE order_no = 41002;
SELECT order_engine.place_order(41002, 9, 900, '[{"sku_id": 4102, "qty": 1}]');
SELECT order_engine.order_status(41002);
