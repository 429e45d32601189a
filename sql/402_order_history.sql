--
-- Order history: buyer_orders / seller_orders page through live and
-- archived orders together, newest first, by keyset, on index scans.
--
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text;
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
    RETURN st || ': ' || msg;
END $$;

SELECT order_engine.restock(40201, 100);
SELECT order_engine.set_price(40201, 2);
-- buyer 4027 places five orders with seller 4029 (no other file uses them);
-- the two oldest finish and are archived
SELECT order_engine.place_order(4020007 + 100 * n, 4027, 4029, '[{"sku_id": 40201, "qty": 1}]')
  FROM generate_series(0, 4) n;
SELECT order_engine.pay_order(4020007 + 100 * n, 'p-402-' || n, 2),
       order_engine.ship_order(4020007 + 100 * n, 'L' || n),
       order_engine.complete_order(4020007 + 100 * n)
  FROM generate_series(0, 1) n;
UPDATE order_engine.orders SET completed_at = now() - interval '1 day'
 WHERE order_no IN (4020007, 4020107);
-- their outbox events were delivered (an order with pending events stays live)
SELECT order_engine.ack_events(array_agg(event_id)) > 0 AS acked
  FROM order_engine.order_events WHERE order_no IN (4020007, 4020107);
SELECT order_engine.archive_orders('1 hour', 100) AS archived;
-- an age reaching past the timestamp range: nothing is that old (not a
-- 22008 from now() - older_than), whether or not orders are finished
SELECT order_engine.archive_orders('178000000 years', 100) AS none_that_old,
       order_engine.archive_orders('2147483647 days 2562047788 hours', 100) AS nor_that,
       order_engine.archive_orders('4999 years 11 mons', 100) AS nor_that_within_range;

-- pages of two, newest first, live and archived together
SELECT order_no, buyer, seller, status, total, archived FROM order_engine.buyer_orders(4027, NULL, 2);
SELECT order_no, archived FROM order_engine.buyer_orders(4027, 4020307, 2);
SELECT order_no, archived FROM order_engine.buyer_orders(4027, 4020107, 2);
-- past the oldest: an empty page
SELECT count(*) AS next_page FROM order_engine.buyer_orders(4027, 4020007, 2);
SELECT order_no, status, archived FROM order_engine.seller_orders(4029);
SELECT count(*) AS other_seller FROM order_engine.seller_orders(4030);
-- the default page is 20
SELECT count(*) FROM order_engine.buyer_orders(4027);

-- bad arguments
SELECT pg_temp.try($$SELECT * FROM order_engine.buyer_orders(NULL)$$);
SELECT pg_temp.try($$SELECT * FROM order_engine.buyer_orders(4027, NULL, 0)$$);
SELECT pg_temp.try($$SELECT * FROM order_engine.buyer_orders(4027, NULL, 1001)$$);
SELECT pg_temp.try($$SELECT * FROM order_engine.seller_orders(900, NULL, NULL)$$);
SELECT pg_temp.try($$SELECT * FROM order_engine.seller_orders(900, NULL, -1)$$);

-- index scans only: with enough rows on both sides, paging never scans a
-- table sequentially (the statistics views count it)
INSERT INTO order_engine.orders (order_no, buyer_id, seller_id, status, total, line_count, pay_deadline)
SELECT 50000000 + i, i % 500, 1000 + i % 50, 'cancelled', 1, 1, now() FROM generate_series(1, 5000) i;
INSERT INTO order_engine_archive.orders (order_no, buyer_id, seller_id, status, total, line_count, pay_deadline)
SELECT 60000000 + i, i % 500, 1000 + i % 50, 'completed', 1, 1, now() FROM generate_series(1, 5000) i;
ANALYZE order_engine.orders;
ANALYZE order_engine_archive.orders;
SELECT pg_stat_force_next_flush();
CREATE TEMP TABLE scans_before AS
    SELECT relid::regclass::text AS rel, seq_scan, idx_scan FROM pg_stat_user_tables
     WHERE relid IN ('order_engine.orders'::regclass, 'order_engine_archive.orders'::regclass);
SELECT count(*) FROM order_engine.buyer_orders(42, NULL, 5);
SELECT count(*) FROM order_engine.buyer_orders(42, 60002000, 5);
SELECT count(*) FROM order_engine.seller_orders(1007, NULL, 50);
SELECT pg_stat_force_next_flush();
SELECT pg_stat_clear_snapshot();
SELECT b.rel, s.seq_scan - b.seq_scan AS new_seq_scans, s.idx_scan - b.idx_scan > 0 AS used_an_index
  FROM scans_before b JOIN pg_stat_user_tables s ON s.relid::regclass::text = b.rel ORDER BY 1;
-- and the plan of one side, as the function runs it
EXPLAIN (COSTS OFF)
SELECT o.order_no FROM order_engine.orders o
 WHERE o.buyer_id = 42 AND o.order_no < COALESCE(NULL::bigint, 9223372036854775807)
 ORDER BY o.order_no DESC LIMIT 5;
DELETE FROM order_engine.orders WHERE order_no > 50000000;
DELETE FROM order_engine_archive.orders WHERE order_no > 60000000;
