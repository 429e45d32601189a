/*
 * order_engine 0.7 -> 0.8: checkout quotes (seed 000, issue 16 part 6).
 *
 * - quote(buyer_id, lines, ttl) freezes the unit prices of the lines when
 *   the checkout page opens and returns a secret token; only its SHA-256
 *   is stored (table checkout_quotes).
 * - place_order gets a sixth argument, quote text DEFAULT NULL: with it
 *   the order is charged the quoted prices; an unknown, used or another
 *   buyer's quote is OE024, an expired one OE025, lines that differ from
 *   the quote OE026.  It is used once.  The new C symbol
 *   (oe_place_order_v2) makes a backend that still runs an older library
 *   fail (42883) instead of ignoring the quote.
 * - reap_expired_keys reaps expired quotes with the tokens.
 * - the hot tables lose their CHECK and FOREIGN KEY constraints (the
 *   bucket counters keep one): the functions that write them validate in
 *   C, and stock_audit()/order_audit() now check what the constraints
 *   held.  The executor re-planned every CHECK at each statement start, a
 *   third of place_order's instructions (test/bench/cost.sh).  The order
 *   indexes on (buyer_id, created_at) and (seller_id, created_at), unused
 *   since buyer_orders/seller_orders (0.6), are dropped.
 * - purchase tallies exist only for SKUs with a purchase limit: reserve no
 *   longer upserts one per line for the others (in READ COMMITTED), and
 *   set_purchase_limit rebuilds or drops a SKU's tallies under an ACCESS
 *   EXCLUSIVE lock on sku, which waits out reserves that read the old
 *   limit.
 */
\echo Use "ALTER EXTENSION order_engine UPDATE TO '0.8'" to load this file. \quit

/* a live update waits out deadlocks with clients (see 0.5--0.6) */
SET LOCAL deadlock_timeout = '60s';

CREATE TABLE @extschema@.checkout_quotes (
    quote_hash   bytea       PRIMARY KEY,
    buyer_id     bigint      NOT NULL,
    sku_ids      bigint[]    NOT NULL,
    qtys         bigint[]    NOT NULL,
    unit_prices  numeric[]   NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX checkout_quotes_expires_at ON @extschema@.checkout_quotes (expires_at);
COMMENT ON TABLE @extschema@.checkout_quotes IS
    'Unused checkout quotes (SHA-256 of the token, buyer, the quoted lines and unit prices, expiry); a used quote is deleted';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.checkout_quotes', '');
ALTER TABLE @extschema@.checkout_quotes OWNER TO order_engine_owner;
REVOKE ALL ON @extschema@.checkout_quotes FROM PUBLIC;
GRANT SELECT ON @extschema@.checkout_quotes TO order_engine_admin;

/* not SECURITY DEFINER, like place_order: the C code becomes the owner */
CREATE FUNCTION @extschema@.quote(buyer_id bigint, lines jsonb,
                                  ttl interval DEFAULT '15 minutes')
RETURNS text LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'oe_quote';
COMMENT ON FUNCTION @extschema@.quote(bigint, jsonb, interval) IS
    'Checkout quote: freezes the current unit prices of the lines for ttl and returns a one-time token for place_order(..., quote => token)';
ALTER FUNCTION @extschema@.quote(bigint, jsonb, interval) OWNER TO order_engine_owner;
REVOKE ALL ON FUNCTION @extschema@.quote(bigint, jsonb, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.quote(bigint, jsonb, interval) TO order_engine_app;

DROP FUNCTION @extschema@.place_order(bigint, bigint, bigint, jsonb, interval);
CREATE FUNCTION @extschema@.place_order(order_no bigint, buyer_id bigint, seller_id bigint,
                                        lines jsonb, pay_within interval DEFAULT '30 minutes',
                                        quote text DEFAULT NULL)
RETURNS text LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'oe_place_order_v2';
COMMENT ON FUNCTION @extschema@.place_order(bigint, bigint, bigint, jsonb, interval, text) IS
    'Holds every line, writes order, lines (price snapshot, or the prices of quote) and event in one call; pending_payment or out_of_stock';
ALTER FUNCTION @extschema@.place_order(bigint, bigint, bigint, jsonb, interval, text) OWNER TO order_engine_owner;
REVOKE ALL ON FUNCTION @extschema@.place_order(bigint, bigint, bigint, jsonb, interval, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.place_order(bigint, bigint, bigint, jsonb, interval, text) TO order_engine_app;

COMMENT ON FUNCTION @extschema@.reap_expired_keys(integer) IS
    'Deletes up to max_rows expired idempotency keys, checkout tokens and checkout quotes; returns how many';

/* the hot tables' constraints (see the header) */
ALTER TABLE @extschema@.stock_bucket
    DROP CONSTRAINT stock_bucket_bucket_check, DROP CONSTRAINT stock_bucket_available_check,
    DROP CONSTRAINT stock_bucket_held_check, DROP CONSTRAINT stock_bucket_sold_check,
    ADD CONSTRAINT stock_bucket_counts_check
        CHECK (bucket OPERATOR(pg_catalog.>=) 0 AND available OPERATOR(pg_catalog.>=) 0
               AND held OPERATOR(pg_catalog.>=) 0 AND sold OPERATOR(pg_catalog.>=) 0);
ALTER TABLE @extschema@.stock_hold
    DROP CONSTRAINT stock_hold_qty_check, DROP CONSTRAINT stock_hold_state_check,
    DROP CONSTRAINT stock_hold_check;
ALTER TABLE @extschema@.stock_movement DROP CONSTRAINT stock_movement_kind_check;
ALTER TABLE @extschema@.purchase_tally DROP CONSTRAINT purchase_tally_units_check;
ALTER TABLE @extschema@.orders
    DROP CONSTRAINT orders_status_check, DROP CONSTRAINT orders_total_check,
    DROP CONSTRAINT orders_line_count_check;
ALTER TABLE @extschema@.order_lines
    DROP CONSTRAINT order_lines_order_no_fkey, DROP CONSTRAINT order_lines_qty_check,
    DROP CONSTRAINT order_lines_unit_price_check, DROP CONSTRAINT order_lines_line_total_check;
/* the archive's copies of the tables (LIKE ... INCLUDING CONSTRAINTS) follow them */
ALTER TABLE order_engine_archive.orders
    DROP CONSTRAINT orders_status_check, DROP CONSTRAINT orders_total_check,
    DROP CONSTRAINT orders_line_count_check;
ALTER TABLE order_engine_archive.order_lines
    DROP CONSTRAINT order_lines_qty_check, DROP CONSTRAINT order_lines_unit_price_check,
    DROP CONSTRAINT order_lines_line_total_check;
DROP INDEX @extschema@.orders_buyer_idx, @extschema@.orders_seller_idx;

/*
 * Purchase tallies are kept only for SKUs with a limit from 0.8 on
 * (set_purchase_limit rebuilds and drops them): the others' go.
 */
DELETE FROM @extschema@.purchase_tally t
 USING @extschema@.sku s
 WHERE s.sku_id OPERATOR(pg_catalog.=) t.sku_id AND s.purchase_limit IS NULL;

/* the audits check what those constraints held */
CREATE OR REPLACE FUNCTION @extschema@.stock_audit()
RETURNS TABLE (sku_id bigint, ok boolean, detail text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $audit$
    WITH b AS (
        SELECT sb.sku_id, pg_catalog.sum(sb.available) AS a, pg_catalog.sum(sb.held) AS h,
               pg_catalog.sum(sb.sold) AS s,
               pg_catalog.bool_or(sb.available < 0 OR sb.held < 0 OR sb.sold < 0) AS negative
          FROM @extschema@.stock_bucket sb GROUP BY sb.sku_id
    ), j AS (
        SELECT m.sku_id, pg_catalog.sum(m.d_available) AS a, pg_catalog.sum(m.d_held) AS h,
               pg_catalog.sum(m.d_sold) AS s,
               pg_catalog.sum(m.d_available + m.d_held + m.d_sold) AS total,
               COALESCE(pg_catalog.sum(m.d_sold) FILTER (WHERE m.kind = 'sale'), 0) AS direct
          FROM @extschema@.stock_movement m GROUP BY m.sku_id
    ), h AS (
        SELECT sh.sku_id,
               COALESCE(pg_catalog.sum(sh.qty) FILTER (WHERE sh.state = 'held'), 0) AS held,
               COALESCE(pg_catalog.sum(sh.qty) FILTER (WHERE sh.state = 'confirmed'), 0) AS confirmed
          FROM @extschema@.stock_hold sh GROUP BY sh.sku_id
    ), parts AS (
        -- per bucket row: held units against the parts of held holds on it
        SELECT sb.sku_id, sb.bucket, sb.held, COALESCE(p.q, 0) AS parts
          FROM @extschema@.stock_bucket sb
          LEFT JOIN (SELECT sh.sku_id, x.bucket, pg_catalog.sum(x.q) AS q
                       FROM @extschema@.stock_hold sh,
                            ROWS FROM (pg_catalog.unnest(sh.buckets), pg_catalog.unnest(sh.bucket_qtys)) AS x(bucket, q)
                      WHERE sh.state = 'held'
                      GROUP BY sh.sku_id, x.bucket) p
            ON p.sku_id = sb.sku_id AND p.bucket = sb.bucket
    ), bad_parts AS (
        SELECT parts.sku_id, pg_catalog.string_agg(pg_catalog.format('bucket %s holds %s but its holds sum to %s',
                   parts.bucket, parts.held, parts.parts), '; ' ORDER BY parts.bucket) AS msg
          FROM parts WHERE parts.held <> parts.parts GROUP BY parts.sku_id
    ), bad_holds AS (
        SELECT sh.sku_id, pg_catalog.string_agg(pg_catalog.format('hold of order %s: qty %s but bucket parts sum to %s',
                   sh.order_no, sh.qty, (SELECT pg_catalog.sum(q) FROM pg_catalog.unnest(sh.bucket_qtys) q)), '; ') AS msg
          FROM @extschema@.stock_hold sh
         WHERE sh.qty <> (SELECT pg_catalog.sum(q) FROM pg_catalog.unnest(sh.bucket_qtys) q)
         GROUP BY sh.sku_id
    ), bad_tally AS (
        SELECT COALESCE(t.sku_id, x.sku_id) AS sku_id,
               pg_catalog.string_agg(pg_catalog.format('buyer %s: tally %s but holds sum to %s',
                   COALESCE(t.buyer_id, x.buyer_id), COALESCE(t.units, 0), COALESCE(x.units, 0)), '; ') AS msg
          FROM @extschema@.purchase_tally t
          FULL JOIN (SELECT sh.sku_id, sh.buyer_id, pg_catalog.sum(sh.qty) AS units
                       FROM @extschema@.stock_hold sh
                      WHERE sh.buyer_id IS NOT NULL AND sh.state IN ('held', 'confirmed')
                      GROUP BY sh.sku_id, sh.buyer_id) x
            ON x.sku_id = t.sku_id AND x.buyer_id = t.buyer_id
         WHERE COALESCE(t.units, 0) <> COALESCE(x.units, 0)
           -- only a SKU with a purchase limit has tallies (0.8)
           AND EXISTS (SELECT FROM @extschema@.sku k
                        WHERE k.sku_id = COALESCE(t.sku_id, x.sku_id) AND k.purchase_limit IS NOT NULL)
         GROUP BY 1
    ), bad_rows AS (
        -- what the hot tables' CHECK constraints held before 0.8
        SELECT r.sku_id, pg_catalog.string_agg(r.msg, '; ' ORDER BY r.msg) AS msg
          FROM (SELECT sh.sku_id,
                       pg_catalog.format('hold of order %s: qty %s, state %s, %s buckets for %s parts',
                           sh.order_no, sh.qty, sh.state, pg_catalog.cardinality(sh.buckets),
                           pg_catalog.cardinality(sh.bucket_qtys)) AS msg
                  FROM @extschema@.stock_hold sh
                 WHERE NOT (sh.qty > 0 AND sh.state IN ('held', 'confirmed', 'released')
                            AND pg_catalog.cardinality(sh.buckets) = pg_catalog.cardinality(sh.bucket_qtys)
                            AND pg_catalog.cardinality(sh.buckets) >= 1)
                UNION ALL
                SELECT m.sku_id, pg_catalog.format('journal row %s has the unknown kind %s', m.movement_id, m.kind)
                  FROM @extschema@.stock_movement m
                 WHERE m.kind <> ALL (ARRAY['restock', 'write_off', 'hold', 'confirm', 'release', 'sale', 'return'])
                UNION ALL
                SELECT t.sku_id, pg_catalog.format('buyer %s: tally %s is negative', t.buyer_id, t.units)
                  FROM @extschema@.purchase_tally t WHERE t.units < 0) r
         GROUP BY r.sku_id
    ), checks AS (
        SELECT s.sku_id, pg_catalog.array_remove(ARRAY[
            CASE WHEN b.negative THEN 'a bucket row is negative' END,
            CASE WHEN COALESCE(b.a, 0) <> COALESCE(j.a, 0) THEN
                pg_catalog.format('available %s but the journal says %s', COALESCE(b.a, 0), COALESCE(j.a, 0)) END,
            CASE WHEN COALESCE(b.h, 0) <> COALESCE(j.h, 0) THEN
                pg_catalog.format('held %s but the journal says %s', COALESCE(b.h, 0), COALESCE(j.h, 0)) END,
            CASE WHEN COALESCE(b.s, 0) <> COALESCE(j.s, 0) THEN
                pg_catalog.format('sold %s but the journal says %s', COALESCE(b.s, 0), COALESCE(j.s, 0)) END,
            CASE WHEN COALESCE(b.a + b.h + b.s, 0) <> COALESCE(j.total, 0) THEN
                pg_catalog.format('available + held + sold = %s but the journal sums to %s',
                    COALESCE(b.a + b.h + b.s, 0), COALESCE(j.total, 0)) END,
            CASE WHEN COALESCE(b.h, 0) <> COALESCE(h.held, 0) THEN
                pg_catalog.format('held %s but held holds sum to %s', COALESCE(b.h, 0), COALESCE(h.held, 0)) END,
            CASE WHEN COALESCE(b.s, 0) <> COALESCE(h.confirmed, 0) + COALESCE(j.direct, 0) THEN
                pg_catalog.format('sold %s but confirmed holds (%s) and direct sales (%s) sum to %s',
                    COALESCE(b.s, 0), COALESCE(h.confirmed, 0), COALESCE(j.direct, 0),
                    COALESCE(h.confirmed, 0) + COALESCE(j.direct, 0)) END,
            bp.msg, bh.msg, bt.msg, br.msg], NULL) AS problems
          FROM @extschema@.sku s
          LEFT JOIN b ON b.sku_id = s.sku_id
          LEFT JOIN j ON j.sku_id = s.sku_id
          LEFT JOIN h ON h.sku_id = s.sku_id
          LEFT JOIN bad_parts bp ON bp.sku_id = s.sku_id
          LEFT JOIN bad_holds bh ON bh.sku_id = s.sku_id
          LEFT JOIN bad_tally bt ON bt.sku_id = s.sku_id
          LEFT JOIN bad_rows br ON br.sku_id = s.sku_id
    )
    SELECT c.sku_id, pg_catalog.cardinality(c.problems) = 0,
           CASE WHEN pg_catalog.cardinality(c.problems) = 0 THEN 'ok'
                ELSE pg_catalog.array_to_string(c.problems, '; ') END
      FROM checks c
     ORDER BY c.sku_id
$audit$;
COMMENT ON FUNCTION @extschema@.stock_audit() IS
    'Checks the stock invariants per SKU (no negatives; available/held/sold match the journal; held matches held holds; sold matches confirmed holds and direct sales; purchase tallies match holds for SKUs with a limit; every hold, journal row and tally well-formed)';

CREATE OR REPLACE FUNCTION @extschema@.order_audit()
RETURNS TABLE (order_no bigint, ok boolean, detail text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $audit$
    WITH o AS (
        SELECT lo.order_no, lo.status, lo.total, lo.line_count, lo.pay_deadline, lo.payment_ref
          FROM @extschema@.orders lo
        UNION ALL
        SELECT ao.order_no, ao.status, ao.total, ao.line_count, ao.pay_deadline, ao.payment_ref
          FROM order_engine_archive.orders ao
    ), pay AS (
        SELECT p.order_no,
               COALESCE(pg_catalog.sum(p.amount) FILTER (WHERE p.refund_state IS NULL), 0) AS kept,
               pg_catalog.count(*) FILTER (WHERE p.outcome OPERATOR(pg_catalog.=) 'refund_required'
                                             AND p.refund_state IS NULL) AS unflagged
          FROM @extschema@.payments p GROUP BY p.order_no
    ), h AS (
        SELECT sh.order_no, pg_catalog.count(*) AS n,
               pg_catalog.count(*) FILTER (WHERE sh.state OPERATOR(pg_catalog.=) 'held') AS held,
               pg_catalog.count(*) FILTER (WHERE sh.state OPERATOR(pg_catalog.=) 'confirmed') AS confirmed,
               pg_catalog.min(sh.expires_at) FILTER (WHERE sh.state OPERATOR(pg_catalog.=) 'held') AS first_expiry
          FROM @extschema@.stock_hold sh GROUP BY sh.order_no
    ), checks AS (
        SELECT o.order_no, pg_catalog.array_remove(ARRAY[
            CASE WHEN COALESCE(pay.unflagged, 0) OPERATOR(pg_catalog.>) 0 THEN
                pg_catalog.format('%s payments answered refund_required but are not owed back', pay.unflagged) END,
            CASE WHEN o.status OPERATOR(pg_catalog.=) ANY (ARRAY['paid', 'shipped', 'completed'])
                  AND COALESCE(pay.kept, 0) OPERATOR(pg_catalog.<>) o.total THEN
                pg_catalog.format('%s: kept payments sum to %s but the total is %s',
                                  o.status, COALESCE(pay.kept, 0), o.total) END,
            CASE WHEN o.status OPERATOR(pg_catalog.<>) ALL (ARRAY['paid', 'shipped', 'completed'])
                  AND COALESCE(pay.kept, 0) OPERATOR(pg_catalog.<>) 0 THEN
                pg_catalog.format('%s but keeps payments of %s that are not owed back',
                                  o.status, pay.kept) END,
            CASE WHEN o.status OPERATOR(pg_catalog.=) ANY (ARRAY['paid', 'shipped', 'completed'])
                  AND NOT EXISTS (SELECT FROM @extschema@.payments p
                                   WHERE p.payment_ref OPERATOR(pg_catalog.=) o.payment_ref
                                     AND p.order_no OPERATOR(pg_catalog.=) o.order_no
                                     AND p.outcome OPERATOR(pg_catalog.=) 'paid') THEN
                pg_catalog.format('%s but its payment %s is not recorded', o.status,
                                  COALESCE(o.payment_ref, '(none)')) END,
            CASE WHEN o.status OPERATOR(pg_catalog.=) 'pending_payment'
                  AND (COALESCE(h.held, 0) OPERATOR(pg_catalog.<>) o.line_count
                       OR COALESCE(h.n, 0) OPERATOR(pg_catalog.<>) o.line_count) THEN
                pg_catalog.format('awaiting payment with %s of its %s lines held',
                                  COALESCE(h.held, 0), o.line_count) END,
            CASE WHEN o.status OPERATOR(pg_catalog.=) 'pending_payment'
                  AND h.first_expiry OPERATOR(pg_catalog.<) o.pay_deadline THEN
                pg_catalog.format('a hold expires at %s, before the payment deadline %s',
                                  h.first_expiry, o.pay_deadline) END,
            CASE WHEN o.status OPERATOR(pg_catalog.=) ANY (ARRAY['paid', 'shipped', 'completed'])
                  AND COALESCE(h.confirmed, 0) OPERATOR(pg_catalog.<>) o.line_count THEN
                pg_catalog.format('%s with %s of its %s lines sold',
                                  o.status, COALESCE(h.confirmed, 0), o.line_count) END,
            CASE WHEN o.status OPERATOR(pg_catalog.<>) 'pending_payment'
                  AND COALESCE(h.held, 0) OPERATOR(pg_catalog.>) 0 THEN
                pg_catalog.format('%s but %s of its holds are still held', o.status, h.held) END
            ], NULL) AS problems
          FROM o
          LEFT JOIN pay ON pay.order_no OPERATOR(pg_catalog.=) o.order_no
          LEFT JOIN h ON h.order_no OPERATOR(pg_catalog.=) o.order_no
        UNION ALL
        SELECT p.order_no, ARRAY[pg_catalog.format('payment %s belongs to no live or archived order',
                                                   p.payment_ref)]
          FROM @extschema@.payments p
         WHERE NOT EXISTS (SELECT FROM o WHERE o.order_no OPERATOR(pg_catalog.=) p.order_no)
        UNION ALL
        SELECT lo.order_no, ARRAY['the order is both live and archived'::pg_catalog.text]
          FROM @extschema@.orders lo
          JOIN order_engine_archive.orders ao ON ao.order_no OPERATOR(pg_catalog.=) lo.order_no
        UNION ALL
        -- what the CHECK and FOREIGN KEY constraints of orders and lines held before 0.8
        SELECT lo.order_no, pg_catalog.array_remove(ARRAY[
            CASE WHEN lo.status OPERATOR(pg_catalog.<>) ALL (ARRAY['pending_payment', 'paid', 'shipped',
                      'completed', 'cancelled', 'closed', 'refund_required', 'refunded']) THEN
                pg_catalog.format('unknown status %s', lo.status) END,
            CASE WHEN lo.total OPERATOR(pg_catalog.<) 0 OR lo.line_count OPERATOR(pg_catalog.<=) 0 THEN
                pg_catalog.format('total %s with %s lines', lo.total, lo.line_count) END,
            CASE WHEN COALESCE(l.n, 0) OPERATOR(pg_catalog.<>) lo.line_count
                  OR l.total IS DISTINCT FROM lo.total THEN
                pg_catalog.format('%s lines summing to %s, but the order has %s lines and a total of %s',
                                  COALESCE(l.n, 0), COALESCE(l.total, 0), lo.line_count, lo.total) END,
            CASE WHEN l.bad OPERATOR(pg_catalog.>) 0 THEN
                pg_catalog.format('%s lines with a qty below 1, a negative price or a line total other than qty times price',
                                  l.bad) END
            ], NULL)
          FROM @extschema@.orders lo
          LEFT JOIN (SELECT ol.order_no, pg_catalog.count(*) AS n, pg_catalog.sum(ol.line_total) AS total,
                            pg_catalog.count(*) FILTER (WHERE ol.qty OPERATOR(pg_catalog.<=) 0
                                                  OR ol.unit_price OPERATOR(pg_catalog.<) 0
                                                  OR ol.line_total OPERATOR(pg_catalog.<>)
                                                     (ol.qty OPERATOR(pg_catalog.*) ol.unit_price)) AS bad
                       FROM @extschema@.order_lines ol GROUP BY ol.order_no) l
            ON l.order_no OPERATOR(pg_catalog.=) lo.order_no
        UNION ALL
        SELECT ol.order_no, ARRAY['lines without an order'::pg_catalog.text]
          FROM @extschema@.order_lines ol
         WHERE NOT EXISTS (SELECT FROM @extschema@.orders lo WHERE lo.order_no OPERATOR(pg_catalog.=) ol.order_no)
         GROUP BY ol.order_no
    )
    SELECT c.order_no, false, pg_catalog.array_to_string(c.problems, '; ')
      FROM checks c
     WHERE pg_catalog.cardinality(c.problems) OPERATOR(pg_catalog.>) 0
     ORDER BY c.order_no
$audit$;
COMMENT ON FUNCTION @extschema@.order_audit() IS
    'The money ledger: one row per order and kind of problem (no rows: all hold): payments recorded, kept payments equal the total of paid orders or are owed back, orders awaiting payment hold every line until their deadline, statuses known, lines well-formed and summing to the total';
