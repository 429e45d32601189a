/*
 * order_engine 0.9 -> 1.0: the hold row is the hold's journal (issue 15).
 *
 * - A hold's hold, confirm and release are no longer written to
 *   stock_movement as well: the stock_hold row records them (its qty, its
 *   state and, for an escrow hold, whether it is folded).  That is three
 *   rows and six index entries fewer per 3-line place_order, and one row
 *   fewer per released hold in the worker's sweep.
 * - stock_journal, a view, is the whole journal: stock_movement's rows of
 *   the other kinds (restock, write_off, sale, return) and each hold's
 *   rows read from stock_hold.  Rows of the three hold kinds already in
 *   stock_movement (written before this update, or by a backend still on
 *   an older library) stay as history; the view and the audit read those
 *   holds from their hold rows instead, so nothing counts twice.
 * - stock_audit() sums stock_journal instead of stock_movement.
 */
\echo Use "ALTER EXTENSION order_engine UPDATE TO '1.0'" to load this file. \quit

/*
 * The movement journal (1.0): stock_movement's rows, and each hold's
 * hold, confirm and release read from its stock_hold row, which from 1.0
 * on is the hold's only record of them (the seeds' 预占流水; before 1.0 a
 * journal row repeated each).  Rows of those three kinds in
 * stock_movement were written before 1.0, or by a backend that still runs
 * an older library; the hold row says the same, so they are left out
 * here.  An escrow hold moves units from escrow to held when it is folded
 * (until then they count in escrow); a confirmed hold that was returned
 * (a 'return' row names its order and SKU) ends released, so its
 * confirmation is read from that row.  stock_audit() sums this view.
 */
CREATE VIEW @extschema@.stock_journal AS
    SELECT m.movement_id, m.sku_id, m.kind, m.d_available, m.d_held, m.d_sold,
           m.order_no, m.reason, m.created_at
      FROM @extschema@.stock_movement m
     WHERE m.kind <> ALL (ARRAY['hold', 'confirm', 'release'])
    UNION ALL
    SELECT NULL::bigint, h.sku_id, 'hold', -h.qty, h.qty, 0::bigint, h.order_no, NULL::text,
           h.created_at
      FROM @extschema@.stock_hold h
     WHERE h.state <> 'held' OR pg_catalog.cardinality(h.buckets) >= 1
    UNION ALL
    SELECT NULL::bigint, h.sku_id, x.kind, x.d_available, -h.qty, x.d_sold, h.order_no, NULL::text,
           x.at
      FROM @extschema@.stock_hold h
      LEFT JOIN (SELECT DISTINCT r.order_no, r.sku_id FROM @extschema@.stock_movement r
                  WHERE r.kind = 'return') rt ON rt.order_no = h.order_no AND rt.sku_id = h.sku_id
      CROSS JOIN LATERAL (SELECT rt.order_no IS NOT NULL AS returned) ret
      CROSS JOIN LATERAL (SELECT CASE WHEN h.state = 'confirmed' OR ret.returned THEN 'confirm'
                                      ELSE 'release' END AS kind,
                                 CASE WHEN h.state = 'confirmed' OR ret.returned THEN 0 ELSE h.qty END
                                     AS d_available,
                                 CASE WHEN h.state = 'confirmed' OR ret.returned THEN h.qty ELSE 0 END
                                     AS d_sold,
                                 -- a returned hold's updated_at is its return's
                                 CASE WHEN h.state = 'confirmed' OR NOT ret.returned THEN h.updated_at END
                                     AS at) x
     WHERE h.state <> 'held';
ALTER VIEW @extschema@.stock_journal OWNER TO order_engine_owner;
REVOKE ALL ON @extschema@.stock_journal FROM PUBLIC;
GRANT SELECT ON @extschema@.stock_journal TO order_engine_admin;
COMMENT ON TABLE @extschema@.stock_movement IS
    'order_engine: journal of the stock deltas no hold row records (restock, write_off, sale, return; hold, confirm and release before 1.0); read the whole journal in stock_journal';
COMMENT ON VIEW @extschema@.stock_journal IS
    'order_engine: the movement journal, one row per stock delta: stock_movement''s rows and each hold''s hold, confirm and release, read from its stock_hold row (1.0); stock_audit sums it';

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
        -- the journal: stock_movement and the hold rows (1.0)
        SELECT m.sku_id, pg_catalog.sum(m.d_available) AS a, pg_catalog.sum(m.d_held) AS h,
               pg_catalog.sum(m.d_sold) AS s,
               pg_catalog.sum(m.d_available + m.d_held + m.d_sold) AS total,
               COALESCE(pg_catalog.sum(m.d_sold) FILTER (WHERE m.kind = 'sale'), 0) AS direct
          FROM @extschema@.stock_journal m GROUP BY m.sku_id
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

/* the archive's walk (src/jobs/archive.c), longest finished first: a
 * batch reads only orders old enough to archive, however many young ones
 * there are; the predicate and expression are the archive's, verbatim.
 * IF NOT EXISTS: on a large orders table an operator may build it first
 * with CREATE INDEX CONCURRENTLY (this very definition, README
 * "Upgrades"), so that the update does not hold writes to orders while it
 * builds (test/t/816_install_equals_upgrade.pl) */
CREATE INDEX IF NOT EXISTS orders_finished_idx ON @extschema@.orders
    ((COALESCE(completed_at, closed_at, paid_at, created_at)))
    WHERE status = ANY ('{completed,cancelled,closed,refunded}'::text[]);
