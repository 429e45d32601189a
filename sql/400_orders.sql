--
-- Orders: placement with price snapshot, idempotent replays, payment,
-- cancel, ship, complete, refund on late payment, update_order, errors.
--
\set VERBOSITY terse
SELECT order_engine.restock(4001, 10);
SELECT order_engine.restock(4002, 10);
SELECT order_engine.restock(4003, 1);
SELECT order_engine.set_price(4001, 19.90);
SELECT order_engine.set_price(4002, 5.05);
SELECT order_engine.set_price(4003, 100);

-- a full lifecycle
SELECT order_engine.place_order(40001, 7, 900,
    '[{"sku_id": 4001, "qty": 2}, {"sku_id": 4002, "qty": 3}]');
SELECT order_no, buyer_id, seller_id, status, total, line_count, version,
       pay_deadline - created_at AS pay_window
  FROM order_engine.orders WHERE order_no = 40001;
SELECT line_no, sku_id, qty, unit_price, line_total
  FROM order_engine.order_lines WHERE order_no = 40001 ORDER BY line_no;
SELECT sku_id, available, held, sold FROM order_engine.stock WHERE sku_id IN (4001, 4002) ORDER BY 1;

-- the price changes after placement: the order keeps its snapshot
SELECT order_engine.set_price(4001, 25);
SELECT total FROM order_engine.orders WHERE order_no = 40001;

-- the same placement again: same answer, nothing doubled
SELECT order_engine.place_order(40001, 7, 900,
    '[{"sku_id": 4001, "qty": 2}, {"sku_id": 4002, "qty": 3}]');
SELECT count(*) AS lines FROM order_engine.order_lines WHERE order_no = 40001;
SELECT sku_id, held FROM order_engine.stock WHERE sku_id IN (4001, 4002) ORDER BY 1;
-- the same number with other content is refused
SELECT order_engine.place_order(40001, 7, 900, '[{"sku_id": 4001, "qty": 1}]');
SELECT order_engine.place_order(40001, 8, 900,
    '[{"sku_id": 4001, "qty": 2}, {"sku_id": 4002, "qty": 3}]');

-- pay: wrong amount, then the right one, then the same payment again
SELECT order_engine.pay_order(40001, 'pay-1', 50.00);
SELECT order_engine.pay_order(40001, 'pay-1', 54.95);
SELECT order_engine.pay_order(40001, 'pay-1', 54.95);
SELECT status, payment_ref, paid_at IS NOT NULL AS paid, version
  FROM order_engine.orders WHERE order_no = 40001;
SELECT sku_id, available, held, sold FROM order_engine.stock WHERE sku_id IN (4001, 4002) ORDER BY 1;
-- the same payment_ref for another amount is refused
SELECT order_engine.pay_order(40001, 'pay-1', 1);
-- a second, different payment on a paid order is kept as a refund case
SELECT order_engine.pay_order(40001, 'pay-2', 54.95);
SELECT payment_ref, amount, outcome FROM order_engine.payments WHERE order_no = 40001 ORDER BY 1;

-- ship, complete, with idempotent repeats and illegal moves
SELECT order_engine.complete_order(40001);
SELECT order_engine.ship_order(40001, 'SF666');
SELECT order_engine.ship_order(40001, 'SF666');
SELECT order_engine.ship_order(40001, 'SF888');
SELECT order_engine.complete_order(40001);
SELECT order_engine.complete_order(40001);
SELECT order_engine.cancel_order(40001);
SELECT event, from_status, to_status FROM order_engine.order_events
 WHERE order_no = 40001 ORDER BY event_id;

-- out of stock: nothing written
SELECT order_engine.place_order(40002, 7, 900, '[{"sku_id": 4003, "qty": 2}]');
SELECT order_engine.order_status(40002);
SELECT count(*) FROM order_engine.order_events WHERE order_no = 40002;

-- cancel releases the holds; a payment after cancel must be refunded
SELECT order_engine.place_order(40003, 7, 900, '[{"sku_id": 4003, "qty": 1}]');
SELECT sku_id, available, held FROM order_engine.stock WHERE sku_id = 4003;
SELECT order_engine.cancel_order(40003, 'changed my mind');
SELECT order_engine.cancel_order(40003);
SELECT sku_id, available, held FROM order_engine.stock WHERE sku_id = 4003;
SELECT order_engine.pay_order(40003, 'pay-3', 100);
SELECT status, close_reason FROM order_engine.orders WHERE order_no = 40003;
SELECT order_engine.refund_order(40003);
SELECT order_engine.order_status(40003);

-- a payment after the deadline: closed, holds released, refund_required
SELECT order_engine.place_order(40004, 7, 900, '[{"sku_id": 4002, "qty": 1}]', '1 second');
SELECT pg_sleep(1.2);
SELECT order_engine.pay_order(40004, 'pay-4', 5.05);
SELECT status, close_reason FROM order_engine.orders WHERE order_no = 40004;
SELECT order_no, sku_id, state FROM order_engine.stock_hold WHERE order_no = 40004;

-- close_unpaid closes what passed its deadline
SELECT order_engine.place_order(40005, 7, 900, '[{"sku_id": 4002, "qty": 1}]', '1 second');
SELECT pg_sleep(1.2);
SELECT order_engine.close_unpaid(100) >= 0 AS ran;  -- the worker may have been first
SELECT order_engine.order_status(40005);
SELECT state FROM order_engine.stock_hold WHERE order_no = 40005;

-- update_order: the ABA case of the logistics number
SELECT order_engine.place_order(40006, 7, 900, '[{"sku_id": 4002, "qty": 1}]');
SELECT version FROM order_engine.orders WHERE order_no = 40006;
SELECT order_engine.update_order(40006, 1, '{"address": "Road 1"}');
SELECT order_engine.update_order(40006, 2, '{"note": "ring twice", "address": "Road 2"}');
SELECT order_engine.update_order(40006, 2, '{"note": "late retry"}');
SELECT address, note, version FROM order_engine.orders WHERE order_no = 40006;
SELECT order_engine.update_order(40006, 3, '{"status": "paid"}');
SELECT order_engine.update_order(40006, 3, '{"total": 0}');
SELECT order_engine.update_order(40006, 3, '{}');
SELECT order_engine.update_order(40006, 3, '[1]');
SELECT order_engine.update_order(49999, 1, '{"note": "x"}');

-- order_status
SELECT order_engine.order_status(40006), order_engine.order_status(49999);

-- bad input: documented SQLSTATEs, nothing written
\set VERBOSITY default
\set SHOW_CONTEXT never
SELECT order_engine.place_order(NULL, 7, 900, '[{"sku_id": 4001, "qty": 1}]');
SELECT order_engine.place_order(40010, NULL, 900, '[{"sku_id": 4001, "qty": 1}]');
SELECT order_engine.place_order(40010, 7, 900, NULL);
SELECT order_engine.place_order(40010, 7, 900, '{"sku_id": 4001}');
SELECT order_engine.place_order(40010, 7, 900, '[]');
SELECT order_engine.place_order(40010, 7, 900, '[1]');
SELECT order_engine.place_order(40010, 7, 900, '[{"sku_id": 4001}]');
SELECT order_engine.place_order(40010, 7, 900, '[{"sku_id": 4001, "qty": 1, "price": 0}]');
SELECT order_engine.place_order(40010, 7, 900, '[{"sku_id": "4001", "qty": 1}]');
SELECT order_engine.place_order(40010, 7, 900, '[{"sku_id": 4001, "qty": 0}]');
SELECT order_engine.place_order(40010, 7, 900, '[{"sku_id": 4001, "qty": -1}]');
SELECT order_engine.place_order(40010, 7, 900, '[{"sku_id": 4001, "qty": 1.5}]');
SELECT order_engine.place_order(40010, 7, 900, '[{"sku_id": 4001, "qty": 99999999999999999999}]');
SELECT order_engine.place_order(40010, 7, 900, '[{"sku_id": 4001, "qty": 1}, {"sku_id": 4001, "qty": 1}]');
SELECT order_engine.place_order(40010, 7, 900,
    (SELECT jsonb_agg(jsonb_build_object('sku_id', g, 'qty', 1)) FROM generate_series(1, 101) g));
SELECT order_engine.place_order(40010, 7, 900, '[{"sku_id": 4999, "qty": 1}]');
SELECT order_engine.place_order(40010, 7, 900, '[{"sku_id": 4001, "qty": 1}]', '0 seconds');
SELECT order_engine.place_order(40010, 7, 900, '[{"sku_id": 4001, "qty": 1}]', '8 days');
SELECT order_engine.place_order(-1, 7, 900, '[{"sku_id": 4001, "qty": 1}]');
SELECT order_engine.pay_order(40006, '', 5.05);
SELECT order_engine.pay_order(40006, NULL, 5.05);
SELECT order_engine.pay_order(40006, 'p', -1);
SELECT order_engine.pay_order(40006, 'p', 'NaN');
SELECT order_engine.pay_order(49999, 'p', 1);
SELECT order_engine.ship_order(40006, '');
SELECT order_engine.cancel_order(NULL);
SELECT order_engine.close_unpaid(0);
SELECT count(*) AS untouched FROM order_engine.orders WHERE order_no = 40010;

-- the outbox: claim and ack exactly once
SELECT count(*) > 0 AS pending FROM order_engine.order_events WHERE processed_at IS NULL;
BEGIN;
CREATE TEMP TABLE claimed AS SELECT event_id FROM order_engine.claim_events(1000);
SELECT order_engine.ack_events(array_agg(event_id)) = count(*) AS acked FROM claimed;
COMMIT;
SELECT count(*) AS left_after_ack FROM order_engine.order_events WHERE processed_at IS NULL;
SELECT count(*) AS claimed_again FROM order_engine.claim_events(1000);

-- close_unpaid locks an overdue order and its stock in the subtransaction
-- that closes it: the versions it replaced (the order's, its bucket row's)
-- have that subtransaction's xid for their xmax, not a MultiXact
CREATE EXTENSION IF NOT EXISTS pageinspect;
SELECT order_engine.restock(400990, 10) AS available, order_engine.set_price(400990, 1);
SELECT order_engine.place_order(4009901, 7, 1, '[{"sku_id": 400990, "qty": 2}]') AS status;
UPDATE order_engine.orders SET pay_deadline = now() - interval '1 second' WHERE order_no = 4009901;
DO $$
BEGIN
    FOR i IN 1 .. 100 LOOP   -- the worker may take it first
        PERFORM order_engine.close_unpaid(100);
        EXIT WHEN (SELECT status FROM order_engine.orders WHERE order_no = 4009901) = 'closed';
        PERFORM pg_catalog.pg_sleep(0.1);
    END LOOP;
END $$;
SELECT status FROM order_engine.orders WHERE order_no = 4009901;
CREATE FUNCTION pg_temp.replaced_versions(rel regclass, tid tid, OUT replaced bigint, OUT xmax_is_multixact bigint)
LANGUAGE sql AS $$
    SELECT count(*), count(*) FILTER (WHERE (i.t_infomask & 4096) <> 0)
      FROM generate_series(0, pg_relation_size(rel) / current_setting('block_size')::int - 1) AS b,
           heap_page_items(get_raw_page(rel::text, b::int)) AS i
     WHERE i.t_ctid = tid AND (b::int, i.lp) <> ((tid::text::point)[0]::int, (tid::text::point)[1]::int)
$$;
SELECT v.* FROM order_engine.orders o, pg_temp.replaced_versions('order_engine.orders', o.ctid) v
 WHERE o.order_no = 4009901;
SELECT v.* FROM order_engine.stock_bucket sb, pg_temp.replaced_versions('order_engine.stock_bucket', sb.ctid) v
 WHERE sb.sku_id = 400990;
SELECT available, held FROM order_engine.stock WHERE sku_id = 400990;
DROP EXTENSION pageinspect;
