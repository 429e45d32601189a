--
-- IDs: segment allocator (create_id_tag, next_id, next_ids, id_segments),
-- order numbers with a shard gene, snowflake ids, and every error.
-- Errors print their SQLSTATE with \echo :LAST_ERROR_SQLSTATE.
--
\set SHOW_CONTEXT never

-- a tag: ids start at start_id and increase
SELECT order_engine.create_id_tag('r_orders', 100, 10, 'regress orders');
SELECT order_engine.next_id('r_orders') AS first_id;
SELECT order_engine.next_id('r_orders') AS second_id;
-- next_ids crosses range boundaries (step 10) and stays increasing, no gaps here
SELECT order_engine.next_ids('r_orders', 25) AS batch;
SELECT biz_tag, step, current_step >= step AS step_at_least_configured,
       max_id >= current_end AS max_id_covers_ranges, fetches > 0 AS fetched,
       description
  FROM order_engine.id_segments WHERE biz_tag = 'r_orders';
-- the registry
SELECT biz_tag, start_id, step, description FROM order_engine.id_tags
 WHERE biz_tag IN ('r_orders', 'order_no') ORDER BY biz_tag;

-- a caller transaction that fetched ranges and rolled back: nothing is reused
BEGIN;
SELECT order_engine.next_ids('r_orders', 100) IS NOT NULL AS fetched_in_txn;
SELECT max(i) AS max_in_rolled_back_txn FROM unnest(order_engine.next_ids('r_orders', 1)) i \gset
ROLLBACK;
SELECT order_engine.next_id('r_orders') > :max_in_rolled_back_txn AS after_rollback_is_higher;
-- the durable max_id survived the rollback
SELECT max_id >= :max_in_rolled_back_txn AS max_id_kept
  FROM order_engine.id_segments WHERE biz_tag = 'r_orders';

-- a tag created in a transaction that rolls back is gone, and can be created again
BEGIN;
SELECT order_engine.create_id_tag('r_tmp');
SELECT order_engine.next_id('r_tmp') AS tmp_first;
ROLLBACK;
SELECT order_engine.create_id_tag('r_tmp', 5000);
SELECT order_engine.next_id('r_tmp') AS recreated_first;

-- order numbers: last two digits are buyer_id mod 32 (order_engine.shard_count)
SELECT buyer_id, order_engine.shard_of(order_engine.next_order_no(buyer_id)) AS gene,
       buyer_id % 32 AS expected
  FROM (VALUES (0), (1), (31), (32), (45), (1000000007)) b(buyer_id);
-- increasing, never equal, gaps of 1 to 10 ids (order_engine.order_no_max_gap)
SELECT bool_and(d > 0) AS increasing, bool_and(d / 100 BETWEEN 1 AND 10) AS gaps_within_bound
  FROM (SELECT o - lag(o) OVER (ORDER BY i) AS d
          FROM (SELECT i, order_engine.next_order_no(7) AS o
                  FROM generate_series(1, 200) i) s) d
 WHERE d IS NOT NULL;
SELECT order_engine.shard_of(123456789) AS gene_of_literal;

-- snowflake: increasing, node id 0, milliseconds near now
SELECT bool_and(d > 0) AS snowflake_increasing
  FROM (SELECT s - lag(s) OVER (ORDER BY i) AS d
          FROM (SELECT i, order_engine.snowflake_id() AS s
                  FROM generate_series(1, 10000) i) s) d
 WHERE d IS NOT NULL;
SELECT (order_engine.snowflake_id() >> 12) & 1023 AS node_id,
       abs(extract(epoch FROM now()) * 1000
           - ((order_engine.snowflake_id() >> 22) + 1704067200000)) < 60000 AS time_is_now;
-- the persisted high-water mark (the server's file order_engine_snowflake.hwm,
-- milliseconds since the snowflake epoch; docs/ids.md) is at or past the
-- millisecond of every id handed out: after a crash the generator starts
-- above it, so no id can repeat
CREATE TEMP TABLE r_snowflakes AS
  SELECT order_engine.snowflake_id() AS s FROM generate_series(1, 5000);
SELECT btrim(pg_read_file('order_engine_snowflake.hwm'), E'\n')::bigint >= max(s >> 22) AS hwm_ahead_of_every_id,
       count(DISTINCT s) = 5000 AS all_distinct
  FROM r_snowflakes;
DROP TABLE r_snowflakes;

-- errors -----------------------------------------------------------------

-- unknown tag: OE010 with a hint
\set VERBOSITY default
SELECT order_engine.next_id('r_no_such_tag');
\echo :LAST_ERROR_SQLSTATE
SELECT order_engine.next_ids('r_no_such_tag', 3);
\echo :LAST_ERROR_SQLSTATE
-- existing tag: OE014
SELECT order_engine.create_id_tag('r_orders');
\echo :LAST_ERROR_SQLSTATE
-- a tag that runs past bigint: OE015, and it stays exhausted
SELECT order_engine.create_id_tag('r_big', 9223372036854775800, 1000);
SELECT order_engine.next_ids('r_big', 7) AS last_ids;
SELECT order_engine.next_id('r_big');
\echo :LAST_ERROR_SQLSTATE
SELECT order_engine.next_ids('r_big', 2);
\echo :LAST_ERROR_SQLSTATE
-- bad input: 22004 / 22023
SELECT order_engine.next_id(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT order_engine.next_id('');
\echo :LAST_ERROR_SQLSTATE
SELECT order_engine.next_id(repeat('x', 64));
\echo :LAST_ERROR_SQLSTATE
SELECT order_engine.next_ids('r_orders', 0);
\echo :LAST_ERROR_SQLSTATE
SELECT order_engine.next_ids('r_orders', 1000001);
\echo :LAST_ERROR_SQLSTATE
SELECT order_engine.next_ids('r_orders', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT order_engine.create_id_tag(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT order_engine.create_id_tag('');
\echo :LAST_ERROR_SQLSTATE
SELECT order_engine.create_id_tag(repeat('x', 64));
\echo :LAST_ERROR_SQLSTATE
SELECT order_engine.create_id_tag('r_bad', 0);
\echo :LAST_ERROR_SQLSTATE
SELECT order_engine.create_id_tag('r_bad', 1, 0);
\echo :LAST_ERROR_SQLSTATE
SELECT order_engine.create_id_tag('r_bad', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT order_engine.next_order_no(-1);
\echo :LAST_ERROR_SQLSTATE
SELECT order_engine.next_order_no(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT order_engine.shard_of(-5);
\echo :LAST_ERROR_SQLSTATE
SELECT order_engine.shard_of(NULL);
\echo :LAST_ERROR_SQLSTATE
-- ids are written durably: not in a read-only transaction (25006), like nextval
BEGIN READ ONLY;
SELECT order_engine.next_id('r_orders');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN READ ONLY;
SELECT order_engine.snowflake_id();
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- none of the failed calls created a tag
SELECT count(*) AS bad_tags FROM order_engine.id_tags WHERE biz_tag IN ('r_bad', '', 'r_no_such_tag');

-- the app role may draw ids but not create tags; the admin may read the view
CREATE ROLE regress_ids_app IN ROLE order_engine_app;
CREATE ROLE regress_ids_admin IN ROLE order_engine_admin;
SET ROLE regress_ids_app;
SELECT order_engine.next_id('r_orders') > 0 AS app_gets_ids;
SELECT order_engine.create_id_tag('r_by_app');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM order_engine.id_segments;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE regress_ids_admin;
SELECT order_engine.create_id_tag('r_by_admin');
SELECT biz_tag, max_id FROM order_engine.id_segments WHERE biz_tag = 'r_by_admin';
RESET ROLE;
DROP ROLE regress_ids_app;
DROP ROLE regress_ids_admin;
