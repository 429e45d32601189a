--
-- The backend caches behind the writes done without SQL follow DDL:
-- table and index OIDs by name (common/direct_access.c), index
-- descriptions and partial-index predicates (common/index_cache.c), and
-- where idem_begin's claim wrote its row (idem/idem_key_row.c).  Each
-- step below runs in the same session after the caches are warm.
--
SET search_path = order_engine, public;
CREATE EXTENSION IF NOT EXISTS amcheck;
SELECT restock(104001, 1000) AS available;
-- warm: a reserve and a release, so stock_hold's indexes are cached
SELECT reserve(1040001, '{104001}', '{1}') AS held;
SELECT release(1040001) AS released;

-- an index made after the cache was filled gets the next holds' entries
CREATE INDEX test_hold_qty ON stock_hold (qty) WHERE state = 'held';
SELECT reserve(1040002, '{104001}', '{2}') AS held;
SELECT bt_index_check('order_engine.test_hold_qty'::regclass, true) AS every_row_indexed;
SET enable_seqscan = off;
SELECT order_no FROM stock_hold WHERE state = 'held' AND qty = 2 AND sku_id = 104001;
RESET enable_seqscan;
-- ... and so does one made in the same transaction as the reserve
BEGIN;
SELECT reserve(1040003, '{104001}', '{3}') AS held;
CREATE INDEX test_hold_sku_qty ON stock_hold (sku_id, qty);
SELECT reserve(1040004, '{104001}', '{4}') AS held;
SELECT release(1040003) AS released;  -- a non-HOT update: new entries in every index
COMMIT;
SELECT bt_index_check('order_engine.test_hold_qty'::regclass, true) AS every_row_indexed,
       bt_index_check('order_engine.test_hold_sku_qty'::regclass, true) AS every_row_indexed_too;
-- a dropped index is no longer written to
DROP INDEX test_hold_qty;
DROP INDEX test_hold_sku_qty;
SELECT reserve(1040005, '{104001}', '{5}') AS held;
SELECT bt_index_check('order_engine.stock_hold_expiry'::regclass, true) AS expiry_index_whole,
       bt_index_check('order_engine.stock_hold_pkey'::regclass, true) AS pkey_whole;

-- a table renamed away is missing by name at once, and found again
ALTER TABLE stock_hold RENAME TO stock_hold_away;
SELECT reserve(1040006, '{104001}', '{1}') AS held;
ALTER TABLE stock_hold_away RENAME TO stock_hold;
SELECT reserve(1040006, '{104001}', '{1}') AS held;
SELECT order_no, qty, state FROM stock_hold WHERE sku_id = 104001 ORDER BY order_no;
SELECT ok, detail FROM stock_audit() WHERE sku_id = 104001;

-- idem_finish finds the row its own transaction's idem_begin wrote ...
BEGIN;
SELECT state FROM idem_begin('caches', 'k1', '{"n": 1}');
SELECT idem_finish('caches', 'k1', '{"done": 1}');
-- ... and a second finish sees the completed version, not the claimed one
SAVEPOINT again;
SELECT idem_finish('caches', 'k1', '{"done": 2}');
ROLLBACK TO SAVEPOINT again;
COMMIT;
SELECT key, state, response FROM idempotency_keys WHERE scope = 'caches' ORDER BY key;
-- the claim it remembers is another key's: the finish is the named key's
SELECT state FROM idem_begin('caches', 'k2', '{"n": 2}');
BEGIN;
SELECT state FROM idem_begin('caches', 'k3', '{"n": 3}');
SELECT idem_finish('caches', 'k2', '{"done": 2}');
COMMIT;
SELECT key, state, response FROM idempotency_keys WHERE scope = 'caches' ORDER BY key;
-- a claim rolled back with its savepoint is not there to finish
BEGIN;
SAVEPOINT s;
SELECT state FROM idem_begin('caches', 'k4', '{"n": 4}');
ROLLBACK TO SAVEPOINT s;
SELECT idem_finish('caches', 'k4', '{"done": 4}');
ROLLBACK;
-- a table emptied in the same transaction: the remembered claim is gone
-- with it, and a claim made after it is found
BEGIN;
SELECT state FROM idem_begin('caches', 'k5', '{"n": 5}');
TRUNCATE idempotency_keys;
SAVEPOINT gone;
SELECT idem_finish('caches', 'k5', '{"done": 5}');
ROLLBACK TO SAVEPOINT gone;
SELECT state FROM idem_begin('caches', 'k5', '{"n": 5}');
SELECT idem_finish('caches', 'k5', '{"done": 5}');
SELECT key, state, response FROM idempotency_keys WHERE scope = 'caches' ORDER BY key;
ROLLBACK;
SELECT key, state FROM idempotency_keys WHERE scope = 'caches' ORDER BY key;

-- place_order writes the order and its lines without SQL, except when a
-- table has something an INSERT honours: a trigger added to order_lines
-- fires for every line, and one on orders for the order
SELECT set_price(104001, 1), set_price(104002, 2.50), restock(104002, 100) AS available;
CREATE FUNCTION public.test_tell_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE NOTICE '% row for order %', TG_TABLE_NAME, NEW.order_no;
    RETURN NEW;
END $$;
SELECT place_order(1040101, 7, 1, '[{"sku_id": 104002, "qty": 2}]') AS status;
CREATE TRIGGER test_tell AFTER INSERT ON order_lines FOR EACH ROW EXECUTE FUNCTION public.test_tell_row();
SELECT place_order(1040102, 7, 1, '[{"sku_id": 104002, "qty": 1}, {"sku_id": 104001, "qty": 1}]') AS status;
DROP TRIGGER test_tell ON order_lines;
CREATE TRIGGER test_tell AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION public.test_tell_row();
SELECT place_order(1040103, 7, 1, '[{"sku_id": 104002, "qty": 3}]') AS status;
DROP TRIGGER test_tell ON orders;
-- the event too: order_events' own CDC trigger keeps the direct write
-- (place_order does its work), any other trigger sends it to SQL
CREATE TRIGGER test_tell AFTER INSERT ON order_events FOR EACH ROW EXECUTE FUNCTION public.test_tell_row();
SELECT place_order(1040105, 7, 1, '[{"sku_id": 104002, "qty": 1}]') AS status;
DROP TRIGGER test_tell ON order_events;
SELECT place_order(1040106, 7, 1, '[{"sku_id": 104002, "qty": 1}]') AS status;
DROP FUNCTION public.test_tell_row();
-- the event's id comes from the sequence its column's default names: a
-- changed default is seen by the next direct write
CREATE SEQUENCE public.test_event_ids START 9000000;
ALTER TABLE order_events ALTER COLUMN event_id SET DEFAULT pg_catalog.nextval('public.test_event_ids'::regclass);
-- as from SQL, nextval() needs the owner role's USAGE of the sequence (42501)
SELECT place_order(1040107, 7, 1, '[{"sku_id": 104002, "qty": 1}]') AS status;
GRANT USAGE ON SEQUENCE public.test_event_ids TO order_engine_owner;
SELECT place_order(1040107, 7, 1, '[{"sku_id": 104002, "qty": 1}]') AS status;
-- a default that is not a sequence's nextval: SQL computes it
ALTER TABLE order_events ALTER COLUMN event_id SET DEFAULT pg_catalog.nextval('public.test_event_ids'::regclass) + 1000000;
SELECT place_order(1040108, 7, 1, '[{"sku_id": 104002, "qty": 1}]') AS status;
ALTER TABLE order_events ALTER COLUMN event_id SET DEFAULT pg_catalog.nextval('order_engine.order_events_event_id_seq'::regclass);
SELECT order_no, event_id >= 9000000 AS from_test_sequence, event_id > 10000000 AS from_sql_default
  FROM order_events WHERE order_no BETWEEN 1040105 AND 1040108 ORDER BY order_no;
DROP SEQUENCE public.test_event_ids;
-- the columns a direct write names are found by their current names: a
-- renamed one is missing at the next write (the kept numbers are forgotten)
BEGIN;
ALTER TABLE order_lines RENAME COLUMN line_total TO line_sum;
SELECT place_order(1040109, 7, 1, '[{"sku_id": 104002, "qty": 1}]') AS status;
ROLLBACK;
-- the same rows either way
SELECT o.order_no, o.status, o.total, o.line_count, o.version, o.pay_deadline - o.created_at AS pay_within,
       l.line_no, l.sku_id, l.qty, l.unit_price, l.line_total
  FROM orders o JOIN order_lines l USING (order_no)
 WHERE o.order_no BETWEEN 1040101 AND 1040199 ORDER BY 1, 7;
SELECT e.order_no, e.event, e.from_status, e.to_status, e.processed_at,
       e.detail->>'pay_deadline' = pg_catalog.to_json(o.pay_deadline)#>>'{}' AS deadline_as_to_json,
       e.detail->'total' AS total, pg_catalog.jsonb_typeof(e.detail->'total') AS total_type,
       e.created_at = o.created_at AS created_with_order
  FROM order_events e JOIN orders o USING (order_no)
 WHERE e.order_no BETWEEN 1040101 AND 1040199 ORDER BY e.order_no;
-- an unknown SKU is OE008 before anything is written
SELECT place_order(1040104, 7, 1, '[{"sku_id": 104999, "qty": 1}]') AS status;
SELECT count(*) AS nothing_written FROM orders WHERE order_no = 1040104;
SELECT ok, detail FROM stock_audit() WHERE sku_id IN (104001, 104002);

-- The take finds a SKU's one bucket row where reserve's lookup saw it
-- (stock/bucket_row.c: fetch_at) instead of probing stock_bucket_pkey a
-- second time; the index-scan counts the backend has not reported yet
-- (it reports none inside a transaction block) show which ran.
SELECT restock(104010, 100) AS available, restock(104011, 100) AS available_too;
SELECT set_price(104010, 2.00), set_price(104011, 3.00);
CREATE FUNCTION pg_temp.probes(index_name text) RETURNS bigint LANGUAGE sql
    AS $$ SELECT pg_catalog.pg_stat_get_xact_numscans(('order_engine.' || index_name)::regclass) $$;
BEGIN;
SELECT pg_temp.probes('stock_bucket_pkey') AS bucket_before \gset
SELECT reserve(1040201, '{104010}', '{1}') AS held;
SELECT pg_temp.probes('stock_bucket_pkey') - :bucket_before AS bucket_probes_one_line;
SELECT pg_temp.probes('stock_bucket_pkey') AS bucket_before, pg_temp.probes('sku_pkey') AS sku_before \gset
SELECT place_order(1040202, 7, 1, '[{"sku_id": 104010, "qty": 2}, {"sku_id": 104011, "qty": 1}]') AS status;
SELECT pg_temp.probes('stock_bucket_pkey') - :bucket_before AS bucket_probes_two_lines,
       -- the prices come from the lookup's read of sku: no probe of their own
       pg_temp.probes('sku_pkey') - :sku_before AS sku_probes_two_lines;
COMMIT;
-- two reserves of the SKU in one transaction: the second one's lookup
-- sees the version the first one wrote, and takes it from there
BEGIN;
SELECT pg_temp.probes('stock_bucket_pkey') AS bucket_before \gset
SELECT reserve(1040203, '{104010}', '{1}') AS held, reserve(1040204, '{104010}', '{1}') AS held_too;
SELECT pg_temp.probes('stock_bucket_pkey') - :bucket_before AS bucket_probes_two_reserves;
COMMIT;
SELECT order_no, sku_id, qty, unit_price, line_total FROM order_lines WHERE order_no = 1040202 ORDER BY line_no;
SELECT sku_id, available, held FROM stock_bucket WHERE sku_id IN (104010, 104011) ORDER BY sku_id;
SELECT ok FROM stock_audit() WHERE sku_id IN (104010, 104011);

-- an expression index is kept too (common/index_cache.c), its expression
-- and predicate prepared once for the backend: the second and third
-- placements reuse them, and every line gets its entry
CREATE INDEX test_line_value ON order_lines ((qty::numeric * unit_price)) WHERE qty > 1;
SELECT place_order(1040301, 7, 1, '[{"sku_id": 104010, "qty": 2}, {"sku_id": 104011, "qty": 1}]') AS status;
SELECT place_order(1040302, 7, 1, '[{"sku_id": 104010, "qty": 3}]') AS status;
SELECT place_order(1040303, 7, 1, '[{"sku_id": 104011, "qty": 4}]') AS status;
SELECT bt_index_check('order_engine.test_line_value'::regclass, true) AS every_line_indexed;
SET enable_seqscan = off;
SELECT order_no, qty, unit_price FROM order_lines WHERE qty::numeric * unit_price IN (6.00, 12.00) AND qty > 1
 ORDER BY order_no;
RESET enable_seqscan;
DROP INDEX test_line_value;

