/*
 * order_engine 0.8 -> 0.9: escrow for hot SKUs (issue 15).
 *
 * - sku.escrow and stock_bucket.escrow: set_escrow(sku_id, true) moves a
 *   one-bucket SKU's available units into escrow, and reserve then takes
 *   them from a shared-memory counter per SKU and writes only its hold
 *   (buckets '{}': not yet folded).  No row lock, so a hot SKU's buyers
 *   do not queue on its bucket row (docs/stock.md, "Escrow").
 * - fold_escrow(max_rows), a worker job: folds escrow holds into their
 *   bucket row (held, the journal) and hands units restocked or released
 *   on escrow SKUs to the counter.
 * - stock_audit() checks that no escrow SKU is oversold (escrow >= its
 *   unfolded holds); the view stock counts unfolded holds as held and
 *   shows escrow.
 */
\echo Use "ALTER EXTENSION order_engine UPDATE TO '0.9'" to load this file. \quit

/* a live update waits out deadlocks with clients (see 0.5--0.6) */
SET LOCAL deadlock_timeout = '60s';

/*
 * The new columns are added without a default and then filled, not with
 * ADD COLUMN ... DEFAULT: that would keep the default as the rows'
 * "missing value" in the catalog, which a fresh install does not have
 * (test/t/816_install_equals_upgrade.pl).  Both tables are small (one row
 * per SKU and bucket); the update runs under ALTER TABLE's lock.
 */
ALTER TABLE @extschema@.sku ADD COLUMN escrow boolean;
ALTER TABLE @extschema@.sku ALTER COLUMN escrow SET DEFAULT false;
UPDATE @extschema@.sku SET escrow = false;
ALTER TABLE @extschema@.sku ALTER COLUMN escrow SET NOT NULL;
ALTER TABLE @extschema@.stock_bucket ADD COLUMN escrow bigint;
ALTER TABLE @extschema@.stock_bucket ALTER COLUMN escrow SET DEFAULT 0;
UPDATE @extschema@.stock_bucket SET escrow = 0;
ALTER TABLE @extschema@.stock_bucket ALTER COLUMN escrow SET NOT NULL;
ALTER TABLE @extschema@.stock_bucket DROP CONSTRAINT stock_bucket_counts_check,
    ADD CONSTRAINT stock_bucket_counts_check
        CHECK (bucket OPERATOR(pg_catalog.>=) 0 AND available OPERATOR(pg_catalog.>=) 0
               AND held OPERATOR(pg_catalog.>=) 0 AND sold OPERATOR(pg_catalog.>=) 0
               AND escrow OPERATOR(pg_catalog.>=) 0);
CREATE INDEX stock_hold_unfolded ON @extschema@.stock_hold (sku_id, created_at)
    WHERE state = 'held' AND buckets = '{}'::integer[];
COMMENT ON COLUMN @extschema@.sku.escrow IS
    'true: reserves take units from a shared-memory counter instead of locking a bucket row (set_escrow)';
COMMENT ON COLUMN @extschema@.stock_bucket.escrow IS
    'Escrow SKUs: units the shared-memory counter hands out, including those of escrow holds not yet folded into held';

CREATE OR REPLACE VIEW @extschema@.stock AS
    SELECT s.sku_id,
           (COALESCE(pg_catalog.sum(b.available + b.escrow), 0) - u.units)::bigint AS available,
           (COALESCE(pg_catalog.sum(b.held), 0) + u.units)::bigint AS held,
           COALESCE(pg_catalog.sum(b.sold), 0)::bigint AS sold,
           s.price, s.purchase_limit, s.nbuckets, s.created_at, s.updated_at, s.escrow
      FROM @extschema@.sku s
      -- escrow holds not yet folded into held (0.9)
      CROSS JOIN LATERAL (SELECT COALESCE(pg_catalog.sum(h.qty), 0) AS units
                            FROM @extschema@.stock_hold h
                           WHERE h.sku_id = s.sku_id AND h.state = 'held'
                             AND h.buckets = '{}'::integer[]) u
      LEFT JOIN @extschema@.stock_bucket b ON b.sku_id = s.sku_id
     GROUP BY s.sku_id, u.units;
COMMENT ON VIEW @extschema@.stock IS
    'order_engine: per SKU available, held and sold (summed over its buckets, escrow holds counted as held), price, purchase limit, buckets, escrow';

CREATE OR REPLACE FUNCTION @extschema@.stock_audit()
RETURNS TABLE (sku_id bigint, ok boolean, detail text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $audit$
    WITH b AS (
        SELECT sb.sku_id, pg_catalog.sum(sb.available + sb.escrow) AS a, pg_catalog.sum(sb.held) AS h,
               pg_catalog.sum(sb.sold) AS s, pg_catalog.sum(sb.escrow) AS e,
               pg_catalog.bool_or(sb.available < 0 OR sb.held < 0 OR sb.sold < 0 OR sb.escrow < 0) AS negative
          FROM @extschema@.stock_bucket sb GROUP BY sb.sku_id
    ), j AS (
        SELECT m.sku_id, pg_catalog.sum(m.d_available) AS a, pg_catalog.sum(m.d_held) AS h,
               pg_catalog.sum(m.d_sold) AS s,
               pg_catalog.sum(m.d_available + m.d_held + m.d_sold) AS total,
               COALESCE(pg_catalog.sum(m.d_sold) FILTER (WHERE m.kind = 'sale'), 0) AS direct
          FROM @extschema@.stock_movement m GROUP BY m.sku_id
    ), h AS (
        SELECT sh.sku_id,
               -- an escrow hold not yet folded has no bucket parts: its
               -- units still count in its bucket row's escrow (0.9)
               COALESCE(pg_catalog.sum(sh.qty) FILTER (WHERE sh.state = 'held'
                   AND pg_catalog.cardinality(sh.buckets) >= 1), 0) AS held,
               COALESCE(pg_catalog.sum(sh.qty) FILTER (WHERE sh.state = 'held'
                   AND pg_catalog.cardinality(sh.buckets) = 0), 0) AS unfolded,
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
         WHERE pg_catalog.cardinality(sh.bucket_qtys) >= 1
           AND sh.qty <> (SELECT pg_catalog.sum(q) FROM pg_catalog.unnest(sh.bucket_qtys) q)
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
                            -- no parts: an escrow hold held, or released, before it was folded (0.9)
                            AND (pg_catalog.cardinality(sh.buckets) >= 1 OR sh.state IN ('held', 'released')))
                UNION ALL
                -- an unfolded escrow hold belongs to an escrow SKU (0.9)
                SELECT sh.sku_id, pg_catalog.format('hold of order %s has no bucket parts but SKU %s has no escrow',
                           sh.order_no, sh.sku_id)
                  FROM @extschema@.stock_hold sh
                 WHERE sh.state = 'held' AND pg_catalog.cardinality(sh.buckets) = 0
                   AND NOT EXISTS (SELECT FROM @extschema@.sku k WHERE k.sku_id = sh.sku_id AND k.escrow)
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
            CASE WHEN COALESCE(b.e, 0) < COALESCE(h.unfolded, 0) THEN
                pg_catalog.format('escrow %s but its unfolded holds sum to %s', COALESCE(b.e, 0), COALESCE(h.unfolded, 0)) END,
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

CREATE FUNCTION @extschema@.set_escrow(sku_id bigint, enabled boolean DEFAULT true)
RETURNS void LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_set_escrow';

CREATE FUNCTION @extschema@.fold_escrow(max_rows integer DEFAULT 1000)
RETURNS integer LANGUAGE C VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_fold_escrow';
ALTER FUNCTION @extschema@.set_escrow(bigint, boolean) OWNER TO order_engine_owner;
ALTER FUNCTION @extschema@.fold_escrow(integer) OWNER TO order_engine_owner;
REVOKE ALL ON FUNCTION @extschema@.set_escrow(bigint, boolean), @extschema@.fold_escrow(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.set_escrow(bigint, boolean), @extschema@.fold_escrow(integer)
    TO order_engine_admin;
COMMENT ON FUNCTION @extschema@.set_escrow(bigint, boolean) IS
    'Hot SKU: reserves take its units from a shared-memory counter and write only their hold (true), or from its bucket row again (false); needs shared_preload_libraries and one bucket';
COMMENT ON FUNCTION @extschema@.fold_escrow(integer) IS
    'Folds up to max_rows escrow holds into their bucket row (held and the journal) and gives units restocked or released on escrow SKUs to the counter; the worker runs it; returns holds folded';
