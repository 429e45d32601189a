--
-- Stock: restock, prices, direct sales, holds, buckets, purchase limits,
-- the audit, and every error with its SQLSTATE.
--
SET search_path = order_engine, public;
-- SKUs of this file start at 101000 so they never meet another file's
SELECT restock(101001, 10) AS available;
SELECT restock(101001, 5, 'delivery') AS available;
SELECT restock(101001, -3, 'damaged') AS available;
SELECT set_price(101001, 9.99);
SELECT set_price(101002, 5);           -- creates the SKU without stock
SELECT sku_id, available, held, sold, price, purchase_limit, nbuckets
  FROM stock WHERE sku_id BETWEEN 101000 AND 101999 ORDER BY sku_id;
SELECT kind, d_available, d_held, d_sold, reason FROM stock_movement
 WHERE sku_id = 101001 ORDER BY movement_id;

-- direct sales: a conditional decrement, false when short
SELECT try_deduct(101001, 2) AS sold_2, try_deduct(101001, 11) AS sold_11,
       try_deduct(101002, 1) AS no_stock;
SELECT available, sold FROM stock WHERE sku_id = 101001;

-- reserve, repeat, confirm, confirm again
SELECT reserve(1010001, '{101001}', '{3}') AS held;
SELECT reserve(1010001, '{101001}', '{3}') AS repeat_holds_nothing_twice;
SELECT available, held, sold FROM stock WHERE sku_id = 101001;
SELECT order_no, sku_id, qty, state, buyer_id, buckets, bucket_qtys,
       expires_at BETWEEN now() + interval '29 minutes' AND now() + interval '31 minutes' AS ttl_30min
  FROM stock_hold WHERE order_no = 1010001;
SELECT confirm(1010001) AS confirmed, confirm(1010001) AS confirmed_again;
SELECT available, held, sold FROM stock WHERE sku_id = 101001;

-- release and its repeat; release of an unknown order is 0
SELECT reserve(1010002, '{101001}', '{4}', '1 hour') AS held;
SELECT release(1010002) AS released, release(1010002) AS released_again,
       release(1010999) AS unknown_order;
SELECT available, held, sold FROM stock WHERE sku_id = 101001;

-- all or nothing: the second line is short, so the first is not held
SELECT restock(101003, 2);
SELECT reserve(1010003, '{101001,101003}', '{1,3}') AS all_or_nothing;
SELECT count(*) AS holds_of_failed_order FROM stock_hold WHERE order_no = 1010003;
SELECT sku_id, available, held FROM stock WHERE sku_id IN (101001, 101003) ORDER BY 1;
SELECT reserve(1010003, '{101003,101001}', '{2,1}') AS both_lines;
SELECT sku_id, qty, state FROM stock_hold WHERE order_no = 1010003 ORDER BY sku_id;

-- buckets: spread, take from several, rebalance keeps every unit
SELECT restock(101004, 100);
SELECT set_buckets(101004, 4);
SELECT bucket, available, held, sold FROM stock_bucket WHERE sku_id = 101004 ORDER BY bucket;
SELECT reserve(1010004, '{101004}', '{60}') AS larger_than_any_bucket;
SELECT bucket_qtys, (SELECT sum(q) FROM unnest(bucket_qtys) q) AS total
  FROM stock_hold WHERE order_no = 1010004;
SELECT reserve(1010005, '{101004}', '{41}') AS more_than_left;
SELECT reserve(1010005, '{101004}', '{40}') AS exactly_what_is_left;
SELECT available, held FROM stock WHERE sku_id = 101004;
SELECT reserve(1010006, '{101004}', '{1}') AS sold_out;
SELECT release(1010004);
SELECT set_buckets(101004, 2);          -- rows 2, 3 stay while holds point at them
SELECT bucket, available, held, sold FROM stock_bucket WHERE sku_id = 101004 ORDER BY bucket;
SELECT release(1010005);
SELECT set_buckets(101004, 3);
SELECT bucket, available, held, sold FROM stock_bucket WHERE sku_id = 101004 ORDER BY bucket;
SELECT available, held, sold, nbuckets FROM stock WHERE sku_id = 101004;
SELECT restock(101004, -10, 'write-off spread over buckets') AS available;
SELECT try_deduct(101004, 90) AS sell_all_buckets;
SELECT available, held, sold FROM stock WHERE sku_id = 101004;

-- purchase limits: counted per buyer over held and confirmed units
SELECT restock(101005, 100);
SELECT set_purchase_limit(101005, 3);
SELECT reserve(1010010, '{101005}', '{2}', '1 hour', 42) AS first_two;
SELECT reserve(1010011, '{101005}', '{1}', '1 hour', 42) AS third;
SELECT reserve(1010012, '{101005}', '{1}', '1 hour', 43) AS other_buyer;
SELECT release(1010011);
SELECT reserve(1010013, '{101005}', '{1}', '1 hour', 42) AS after_release;
SELECT confirm(1010010);
SELECT units FROM purchase_tally WHERE sku_id = 101005 AND buyer_id = 42;
SELECT set_purchase_limit(101005, NULL);
SELECT reserve(1010014, '{101005}', '{10}', '1 hour', 42) AS no_limit_now;

-- the journal and the audit agree; a hold's hold, confirm and release are
-- read from its hold row (1.0), and stock_movement has none of them
SELECT kind, count(*), sum(d_available) AS d_available, sum(d_held) AS d_held,
       sum(d_sold) AS d_sold
  FROM stock_journal WHERE sku_id BETWEEN 101000 AND 101999 GROUP BY kind ORDER BY kind;
SELECT count(*) AS hold_kinds_in_stock_movement FROM stock_movement
 WHERE sku_id BETWEEN 101000 AND 101999 AND kind IN ('hold', 'confirm', 'release');
SELECT sku_id, ok, detail FROM stock_audit() WHERE sku_id BETWEEN 101000 AND 101999;

-- the audit notices a broken bucket row
BEGIN;
UPDATE stock_bucket SET available = available + 1 WHERE sku_id = 101001;
SELECT sku_id, ok, detail FROM stock_audit() WHERE sku_id = 101001;
ROLLBACK;

-- errors (their SQLSTATEs: test/pgtap/101_stock.sql), and nothing changes
SELECT restock(NULL, 1);
SELECT restock(101001, NULL);
SELECT restock(0, 1);
SELECT restock(101001, 0);
SELECT restock(101999, -1);                           -- unknown SKU
SELECT restock(101001, -1000);                        -- below zero
SELECT restock(101001, 9223372036854775807);          -- overflow
SELECT restock(101001, -9223372036854775808);
SELECT set_price(101001, -1);
SELECT set_price(101001, 'NaN');
SELECT set_price(101001, NULL);
SELECT try_deduct(101001, 0);
SELECT try_deduct(101999, 1);
SELECT try_deduct(NULL, 1);
SELECT reserve(NULL, '{101001}', '{1}');
SELECT reserve(0, '{101001}', '{1}');
SELECT reserve(1010020, NULL, '{1}');
SELECT reserve(1010020, '{101001}', NULL);
SELECT reserve(1010020, '{}', '{}');
SELECT reserve(1010020, '{101001,101003}', '{1}');
SELECT reserve(1010020, '{101001,NULL}', '{1,1}');
SELECT reserve(1010020, '{101001}', '{NULL}');
SELECT reserve(1010020, '{{101001}}', '{{1}}');
SELECT reserve(1010020, '{101001}', '{0}');
SELECT reserve(1010020, '{101001}', '{-1}');
SELECT reserve(1010020, '{101001,101001}', '{1,1}');   -- SKU twice: refused
SELECT reserve(1010020, '{101999}', '{1}');            -- unknown SKU
SELECT reserve(1010020, '{101001}', '{1}', '0 seconds');
SELECT reserve(1010020, '{101001}', '{1}', '-1 minute');
SELECT reserve(1010020, '{101001}', '{1}', '7 days 1 second');
SELECT reserve(1010020, '{101001}', '{1}', '1 year');
SELECT reserve(1010020, '{101001}', '{1}', NULL);
SELECT reserve(1010020, (SELECT array_agg(g) FROM generate_series(1, 1001) g),
               (SELECT array_agg(1::bigint) FROM generate_series(1, 1001) g));
SELECT reserve(1010001, '{101001}', '{4}');           -- same order, other content
SELECT reserve(1010001, '{101001}', '{3}', '30 minutes', 5);  -- other buyer
SELECT reserve(1010002, '{101001}', '{4}', '1 hour');  -- its holds were released
SELECT reserve(1010012, '{101005}', '{1}', '1 hour', 43);  -- still fine: a repeat
SELECT set_purchase_limit(101005, 3);
SELECT reserve(1010021, '{101005}', '{4}', '1 hour', 44);  -- over the limit at once
SELECT reserve(1010021, '{101005}', '{1}', '1 hour', 42);  -- 42 has 3+10 already
SELECT confirm(1010002);                              -- released
SELECT confirm(1010999);                              -- unknown order
SELECT confirm(NULL);
SELECT release(1010001);                              -- confirmed
SELECT release(NULL);
SELECT reserve(1010022, '{101001}', '{1}', '1 millisecond') AS short_hold;
SELECT pg_sleep(0.01);
\set VERBOSITY terse
SELECT confirm(1010022);                              -- expired
\set VERBOSITY default
SELECT set_buckets(101001, 0);
SELECT set_buckets(101001, 1025);
SELECT set_buckets(101999, 2);
SELECT set_buckets(NULL, 2);
SELECT set_purchase_limit(101001, 0);
SELECT set_purchase_limit(101999, 1);
SELECT count(*) AS holds_of_refused_orders FROM stock_hold WHERE order_no IN (1010020, 1010021);
SELECT sku_id, ok, detail FROM stock_audit() WHERE sku_id BETWEEN 101000 AND 101999;

-- privileges: the application may call the API, not administer stock
SELECT has_function_privilege('order_engine_app', 'order_engine.reserve(bigint,bigint[],bigint[],interval,bigint)', 'EXECUTE') AS app_reserve,
       has_function_privilege('order_engine_app', 'order_engine.restock(bigint,bigint,text)', 'EXECUTE') AS app_restock,
       has_function_privilege('order_engine_admin', 'order_engine.restock(bigint,bigint,text)', 'EXECUTE') AS admin_restock,
       has_table_privilege('order_engine_app', 'order_engine.stock_bucket', 'UPDATE') AS app_update_buckets;

-- reserve writes hold and journal rows and changes a bucket row by heap
-- and index access (common/direct_insert.c, stock/bucket_row.c); a table
-- with a trigger gets the INSERT or UPDATE instead, which fires it.  Both
-- ways write the same rows.
SELECT restock(101050, 10) AS available, restock(101051, 10) AS available;
CREATE FUNCTION public.hold_seen() RETURNS trigger LANGUAGE plpgsql
    AS $$BEGIN RAISE NOTICE 'hold of order % on SKU %', NEW.order_no, NEW.sku_id; RETURN NEW; END$$;
CREATE TRIGGER hold_seen AFTER INSERT ON stock_hold FOR EACH ROW EXECUTE FUNCTION public.hold_seen();
CREATE FUNCTION public.bucket_seen() RETURNS trigger LANGUAGE plpgsql
    AS $$BEGIN RAISE NOTICE 'bucket % of SKU %: available % -> %', NEW.bucket, NEW.sku_id, OLD.available, NEW.available; RETURN NEW; END$$;
CREATE TRIGGER bucket_seen AFTER UPDATE ON stock_bucket FOR EACH ROW EXECUTE FUNCTION public.bucket_seen();
SELECT reserve(1010050, '{101051,101050}', '{2,1}', '1 hour', 7) AS by_insert;
DROP TRIGGER hold_seen ON stock_hold;
DROP FUNCTION public.hold_seen();
DROP TRIGGER bucket_seen ON stock_bucket;
DROP FUNCTION public.bucket_seen();
SELECT reserve(1010051, '{101051,101050}', '{2,1}', '1 hour', 7) AS direct;
SELECT reserve(1010052, '{101050}', '{1}') AS direct_one_line;
SELECT reserve(1010051, '{101050,101051}', '{1,2}', '1 hour', 7) AS direct_repeat;
SELECT order_no, sku_id, qty, state, buyer_id, buckets, bucket_qtys,
       date_trunc('minute', expires_at - created_at + interval '30 seconds') AS ttl,
       updated_at = created_at AS updated_is_created, created_at <= now() AS created_before
  FROM stock_hold WHERE order_no BETWEEN 1010050 AND 1010052 ORDER BY order_no, sku_id;
SELECT m.order_no, m.sku_id, m.kind, m.d_available, m.d_held, m.d_sold, m.reason,
       m.created_at = h.created_at AS created_with_hold
  FROM stock_journal m JOIN stock_hold h USING (order_no, sku_id)
 WHERE m.order_no BETWEEN 1010050 AND 1010052 ORDER BY m.order_no, m.sku_id, m.kind;
SELECT count(DISTINCT movement_id) = count(*) AS ids_distinct FROM stock_movement;
-- the writes without SQL refuse a read-only transaction, as the
-- statements do (25006), before they touch a row
BEGIN READ ONLY;
SELECT reserve(1010060, '{101050}', '{1}') AS read_only_reserve;
ROLLBACK;
BEGIN READ ONLY;
SELECT try_deduct(101050, 1) AS read_only_deduct;
ROLLBACK;
-- 400 takes of one bucket row in one transaction fill its page, so some
-- of the new versions are not heap-only and get new index entries
SELECT restock(101052, 1000) AS available;
SELECT count(*) FILTER (WHERE reserve(o, '{101052}', '{1}')) AS held_in_one_statement
  FROM generate_series(1010100, 1010499) o;
SELECT count(*) FILTER (WHERE release(o) = 1) AS released_in_one_statement
  FROM generate_series(1010100, 1010299) o;
SELECT sku_id, available, held, sold FROM stock WHERE sku_id IN (101050, 101051, 101052) ORDER BY sku_id;
SELECT sku_id, ok FROM stock_audit() WHERE sku_id IN (101050, 101051, 101052);

-- the sweep locks a batch's due holds in the subtransaction that releases
-- them: the version each release replaced has that subtransaction's xid
-- for its xmax, not a MultiXact that every later reader must look up
CREATE EXTENSION IF NOT EXISTS pageinspect;
SELECT restock(101990, 10) AS available;
SELECT reserve(1019901, '{101990}', '{1}', '1 hour') AND reserve(1019902, '{101990}', '{2}', '1 hour') AS held;
UPDATE stock_hold SET expires_at = now() - interval '1 second' WHERE order_no IN (1019901, 1019902);
SELECT release_expired(100) >= 2 AS released;
SELECT count(*) AS replaced_versions, count(*) FILTER (WHERE (i.t_infomask & 4096) <> 0) AS xmax_is_multixact
  FROM generate_series(0, pg_relation_size('order_engine.stock_hold') / current_setting('block_size')::int - 1) AS b,
       heap_page_items(get_raw_page('order_engine.stock_hold', b::int)) AS i
 WHERE i.t_ctid IN (SELECT h.ctid FROM stock_hold h WHERE h.order_no IN (1019901, 1019902))
   AND (b::int, i.lp) NOT IN (SELECT (h.ctid::text::point)[0]::int, (h.ctid::text::point)[1]::int
                               FROM stock_hold h WHERE h.order_no IN (1019901, 1019902));
SELECT state, count(*) FROM stock_hold WHERE order_no IN (1019901, 1019902) GROUP BY state;
SELECT ok FROM stock_audit() WHERE sku_id = 101990;
DROP EXTENSION pageinspect;
