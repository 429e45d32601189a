/*
 * order_engine 0.1 -> 0.2: stock: deltas, holds, buckets, purchase limits, audit.
 */
\echo Use "ALTER EXTENSION order_engine UPDATE" to load this file. \quit

/*
 * The catalogue of SKUs: price, purchase limit and how many bucket rows the
 * SKU's stock is spread over.  Stock itself lives in stock_bucket, so that a
 * hot SKU's buyers do not all update this row (docs/stock.md).
 */
CREATE TABLE @extschema@.sku (
    sku_id          bigint PRIMARY KEY CHECK (sku_id > 0),
    price           numeric CHECK (price >= 0),
    purchase_limit  bigint CHECK (purchase_limit > 0),
    nbuckets        integer NOT NULL DEFAULT 1 CHECK (nbuckets BETWEEN 1 AND 1024),
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at      timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE @extschema@.sku IS
    'order_engine: SKUs (price, per-buyer purchase limit, number of stock buckets); stock is in stock_bucket';

/*
 * A SKU's stock in one or more rows.  available + held + sold of all rows
 * of a SKU are the SKU's figures.  Rows at or past sku.nbuckets only remain
 * while holds still point at them (set_buckets).  fillfactor leaves room
 * for HOT updates of these very hot rows.
 */
CREATE TABLE @extschema@.stock_bucket (
    sku_id      bigint NOT NULL REFERENCES @extschema@.sku (sku_id),
    bucket      integer NOT NULL CHECK (bucket >= 0),
    available   bigint NOT NULL DEFAULT 0 CHECK (available >= 0),
    held        bigint NOT NULL DEFAULT 0 CHECK (held >= 0),
    sold        bigint NOT NULL DEFAULT 0 CHECK (sold >= 0),
    PRIMARY KEY (sku_id, bucket)
) WITH (fillfactor = 50);
COMMENT ON TABLE @extschema@.stock_bucket IS
    'order_engine: stock of a SKU spread over bucket rows (available, held, sold); change it only through the stock functions';

/*
 * One hold per (order, SKU).  buckets/bucket_qtys say which stock_bucket
 * rows carry its held units, so confirm and release give them back to the
 * same rows.  No foreign key: the check would share-lock the SKU row on
 * every reserve.
 */
CREATE TABLE @extschema@.stock_hold (
    order_no    bigint NOT NULL,
    sku_id      bigint NOT NULL,
    qty         bigint NOT NULL CHECK (qty > 0),
    state       text NOT NULL CHECK (state IN ('held', 'confirmed', 'released')),
    expires_at  timestamptz NOT NULL,
    buyer_id    bigint,
    buckets     integer[] NOT NULL,
    bucket_qtys bigint[] NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (order_no, sku_id),
    CHECK (pg_catalog.cardinality(buckets) = pg_catalog.cardinality(bucket_qtys)
           AND pg_catalog.cardinality(buckets) >= 1)
);
COMMENT ON TABLE @extschema@.stock_hold IS
    'order_engine: stock held for an order, per SKU: held until confirmed (sold) or released (back to available) or expired';

-- the worker's "next holds to expire"
CREATE INDEX stock_hold_expiry ON @extschema@.stock_hold (expires_at) WHERE state = 'held';

/*
 * The movement journal: every change of a SKU's available/held/sold is a
 * row of deltas.  stock_audit() checks the buckets against its sums.
 */
CREATE TABLE @extschema@.stock_movement (
    movement_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sku_id      bigint NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('restock', 'write_off', 'hold', 'confirm', 'release', 'sale')),
    d_available bigint NOT NULL,
    d_held      bigint NOT NULL,
    d_sold      bigint NOT NULL,
    order_no    bigint,
    reason      text,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE INDEX stock_movement_sku ON @extschema@.stock_movement (sku_id);
COMMENT ON TABLE @extschema@.stock_movement IS
    'order_engine: journal of stock deltas (restock, write_off, hold, confirm, release, sale)';

/*
 * Units each buyer holds or bought per SKU; the conditional upsert on this
 * row is what makes the purchase limit safe under concurrency.
 */
CREATE TABLE @extschema@.purchase_tally (
    sku_id      bigint NOT NULL,
    buyer_id    bigint NOT NULL,
    units       bigint NOT NULL CHECK (units >= 0),
    PRIMARY KEY (sku_id, buyer_id)
);
COMMENT ON TABLE @extschema@.purchase_tally IS
    'order_engine: units of a SKU a buyer holds or bought (held + confirmed holds), for purchase limits';

SELECT pg_catalog.pg_extension_config_dump('@extschema@.sku', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.stock_bucket', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.stock_hold', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.stock_movement', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.purchase_tally', '');

REVOKE ALL ON @extschema@.sku, @extschema@.stock_bucket, @extschema@.stock_hold,
    @extschema@.stock_movement, @extschema@.purchase_tally FROM PUBLIC;
GRANT SELECT ON @extschema@.sku, @extschema@.stock_bucket, @extschema@.stock_hold,
    @extschema@.stock_movement, @extschema@.purchase_tally TO order_engine_admin;

/* The functions: C (src/stock*.c), SECURITY DEFINER so that the roles need
 * no rights on the tables themselves. */
CREATE FUNCTION @extschema@.restock(sku_id bigint, delta bigint, reason text DEFAULT NULL)
RETURNS bigint LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_restock';
COMMENT ON FUNCTION @extschema@.restock(bigint, bigint, text) IS
    'Adds (delta > 0) or writes off (delta < 0) stock; creates the SKU on its first positive delta; returns the new available';

CREATE FUNCTION @extschema@.set_price(sku_id bigint, price numeric)
RETURNS void LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_set_price';
COMMENT ON FUNCTION @extschema@.set_price(bigint, numeric) IS
    'Sets the current price of a SKU (creating the SKU without stock if it is new)';

CREATE FUNCTION @extschema@.try_deduct(sku_id bigint, qty bigint)
RETURNS boolean LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_try_deduct';
COMMENT ON FUNCTION @extschema@.try_deduct(bigint, bigint) IS
    'Sells qty units directly, without a hold; false when not enough is available';

/* reserve is the hot entry point: not SECURITY DEFINER, because a
 * function's SET costs a GUC save and restore on every call.  Its C code
 * becomes the function's owner and pins the search path to pg_catalog
 * itself (src/stock_sql.c, docs/stock.md "Privileges"). */
CREATE FUNCTION @extschema@.reserve(order_no bigint, sku_ids bigint[], qtys bigint[],
    ttl interval DEFAULT '30 minutes', buyer_id bigint DEFAULT NULL)
RETURNS boolean LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'oe_reserve';
COMMENT ON FUNCTION @extschema@.reserve(bigint, bigint[], bigint[], interval, bigint) IS
    'Holds every line of an order for ttl, or none (false); a repeat of the same order holds nothing twice and returns true';

CREATE FUNCTION @extschema@.confirm(order_no bigint)
RETURNS integer LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_confirm';
COMMENT ON FUNCTION @extschema@.confirm(bigint) IS
    'Turns the held lines of an order into sales; returns how many lines this call confirmed (0 on a repeat)';

CREATE FUNCTION @extschema@.release(order_no bigint)
RETURNS integer LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_release';
COMMENT ON FUNCTION @extschema@.release(bigint) IS
    'Gives the held lines of an order back to available; returns how many lines this call released (0 when nothing is held)';

CREATE FUNCTION @extschema@.set_buckets(sku_id bigint, n integer)
RETURNS void LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_set_buckets';
COMMENT ON FUNCTION @extschema@.set_buckets(bigint, integer) IS
    'Spreads the available stock of a SKU evenly over n bucket rows (hot SKUs); moves no unit in or out';

CREATE FUNCTION @extschema@.set_purchase_limit(sku_id bigint, per_buyer bigint)
RETURNS void LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_set_purchase_limit';
COMMENT ON FUNCTION @extschema@.set_purchase_limit(bigint, bigint) IS
    'Sets the most units one buyer may hold and buy of a SKU (NULL: no limit)';

/*
 * The audit is a read-only query over the stock tables; SQL says it best.
 */
CREATE FUNCTION @extschema@.stock_audit()
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
         GROUP BY 1
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
            bp.msg, bh.msg, bt.msg], NULL) AS problems
          FROM @extschema@.sku s
          LEFT JOIN b ON b.sku_id = s.sku_id
          LEFT JOIN j ON j.sku_id = s.sku_id
          LEFT JOIN h ON h.sku_id = s.sku_id
          LEFT JOIN bad_parts bp ON bp.sku_id = s.sku_id
          LEFT JOIN bad_holds bh ON bh.sku_id = s.sku_id
          LEFT JOIN bad_tally bt ON bt.sku_id = s.sku_id
    )
    SELECT c.sku_id, pg_catalog.cardinality(c.problems) = 0,
           CASE WHEN pg_catalog.cardinality(c.problems) = 0 THEN 'ok'
                ELSE pg_catalog.array_to_string(c.problems, '; ') END
      FROM checks c
     ORDER BY c.sku_id
$audit$;
COMMENT ON FUNCTION @extschema@.stock_audit() IS
    'Checks the stock invariants per SKU (no negatives; available/held/sold match the journal; held matches held holds; sold matches confirmed holds and direct sales; purchase tallies match holds)';

CREATE VIEW @extschema@.stock AS
    SELECT s.sku_id,
           COALESCE(pg_catalog.sum(b.available), 0)::bigint AS available,
           COALESCE(pg_catalog.sum(b.held), 0)::bigint AS held,
           COALESCE(pg_catalog.sum(b.sold), 0)::bigint AS sold,
           s.price, s.purchase_limit, s.nbuckets, s.created_at, s.updated_at
      FROM @extschema@.sku s
      LEFT JOIN @extschema@.stock_bucket b ON b.sku_id = s.sku_id
     GROUP BY s.sku_id;
COMMENT ON VIEW @extschema@.stock IS
    'order_engine: per SKU available, held and sold (summed over its buckets), price, purchase limit, buckets';

CREATE VIEW @extschema@.stock_holds AS
    SELECT h.order_no, h.sku_id, h.qty, h.state, h.expires_at, h.buyer_id,
           h.created_at, h.updated_at
      FROM @extschema@.stock_hold h;
COMMENT ON VIEW @extschema@.stock_holds IS
    'order_engine: holds per order and SKU with their state and expiry';

REVOKE ALL ON FUNCTION @extschema@.restock(bigint, bigint, text),
    @extschema@.set_price(bigint, numeric),
    @extschema@.try_deduct(bigint, bigint),
    @extschema@.reserve(bigint, bigint[], bigint[], interval, bigint),
    @extschema@.confirm(bigint),
    @extschema@.release(bigint),
    @extschema@.set_buckets(bigint, integer),
    @extschema@.set_purchase_limit(bigint, bigint),
    @extschema@.stock_audit() FROM PUBLIC;
REVOKE ALL ON @extschema@.stock, @extschema@.stock_holds FROM PUBLIC;

GRANT EXECUTE ON FUNCTION @extschema@.try_deduct(bigint, bigint),
    @extschema@.reserve(bigint, bigint[], bigint[], interval, bigint),
    @extschema@.confirm(bigint),
    @extschema@.release(bigint) TO order_engine_app;
GRANT SELECT ON @extschema@.stock TO order_engine_app;
GRANT EXECUTE ON FUNCTION @extschema@.restock(bigint, bigint, text),
    @extschema@.set_price(bigint, numeric),
    @extschema@.set_buckets(bigint, integer),
    @extschema@.set_purchase_limit(bigint, bigint),
    @extschema@.stock_audit() TO order_engine_admin;
GRANT SELECT ON @extschema@.stock_holds TO order_engine_admin;
