/*
 * order_engine: the install script of the current version, in one piece.
 *
 * The Makefile copies this file to order_engine--<default_version>.sql
 * (order_engine.control), which CREATE EXTENSION runs.  Installations of
 * an older version reach the same state through the upgrade scripts at the
 * top of the tree (order_engine--0.1.sql, then order_engine--A--B.sql), so
 * a change here needs the same change in a new upgrade script, and a new
 * upgrade script needs its result written in here:
 * test/t/816_install_equals_upgrade.pl fails when a fresh install and
 * 0.1 plus the chain differ in anything pg_dump --binary-upgrade shows,
 * in pg_init_privs, pg_depend, the dumped tables or the roles.
 *
 * Sections: roles, schemas and the owner; common; stock; ids; idem;
 * orders; jobs and worker; archive; views; grants (and the ownership
 * loop); comments.
 */
\echo Use "CREATE EXTENSION order_engine" to load this file. \quit

/* ------------------------------------------------------------------
 * roles, schemas, owner
 * ------------------------------------------------------------------ */

/*
 * Two roles the docs name (README, "Roles and privileges"): the
 * application calls the API; the administrator also configures stock, id
 * tags and the worker and reads the monitoring views.  They are cluster
 * objects, so they survive DROP EXTENSION and are created only if missing.
 */
DO $roles$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['order_engine_app', 'order_engine_admin'] LOOP
        BEGIN
            EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
        EXCEPTION
            -- exists already, or another database is creating it right now
            WHEN duplicate_object OR unique_violation THEN NULL;
        END;
    END LOOP;
END
$roles$;

GRANT order_engine_app TO order_engine_admin;

/*
 * The owner of every object of the extension (README, "Security"): a
 * NOLOGIN role that is not superuser, has no members and owns nothing
 * else.  The C code runs all internal SQL as this role with search_path
 * pinned to pg_catalog, pg_temp (src/common/internal_sql.c).  A role of
 * that name made by someone else before us would own everything we own:
 * accept it only if it could be ours, that is, it cannot log in, has no
 * special attributes, and nobody is a member of it.  The objects are
 * created by the installing superuser and handed over by the ownership
 * loop at the end of the grants section.
 */
DO $owner$
DECLARE
    r pg_catalog.pg_roles%ROWTYPE;
BEGIN
    BEGIN
        CREATE ROLE order_engine_owner NOLOGIN NOSUPERUSER NOCREATEDB
            NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS;
    EXCEPTION
        WHEN duplicate_object OR unique_violation THEN NULL;
    END;
    SELECT * INTO r FROM pg_catalog.pg_roles
     WHERE rolname OPERATOR(pg_catalog.=) 'order_engine_owner';
    IF r.rolsuper OR r.rolcanlogin OR r.rolcreaterole OR r.rolcreatedb
       OR r.rolreplication OR r.rolbypassrls THEN
        RAISE EXCEPTION 'role order_engine_owner exists with rights it must not have'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'order_engine runs its internal statements as this role; it must be NOLOGIN with no special attributes.',
                  HINT = 'Drop the role or ALTER ROLE order_engine_owner NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS.';
    END IF;
    IF EXISTS (SELECT FROM pg_catalog.pg_auth_members m
                WHERE m.roleid OPERATOR(pg_catalog.=) r.oid) THEN
        RAISE EXCEPTION 'role order_engine_owner has members'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'Every member of it could act as order_engine itself.',
                  HINT = 'REVOKE order_engine_owner FROM each member.';
    END IF;
END
$owner$;

/*
 * Schema order_engine is made by CREATE EXTENSION (schema in the control
 * file); hot/cold separation keeps finished orders in a second schema
 * (archive_orders).
 */
CREATE SCHEMA order_engine_archive;

/* ------------------------------------------------------------------
 * common
 * ------------------------------------------------------------------ */

/*
 * The C folder common/ owns no SQL object.  What this script sets for
 * itself: a live update takes ACCESS EXCLUSIVE locks while clients hold
 * row locks, and when the two form a cycle the client must be the one to
 * get 40P01 (retryable), so the update waits longer than the clients
 * before the deadlock detector runs.  A fresh install takes no lock a
 * client holds, but SET LOCAL lasts until the end of the transaction that
 * runs CREATE EXTENSION, not of this script, and the upgrade chain leaves
 * it set there, so this script does the same.
 */
SET LOCAL deadlock_timeout = '60s';

/* ------------------------------------------------------------------
 * stock (src/stock/): deltas, holds, buckets, purchase limits, audit
 * ------------------------------------------------------------------ */

/*
 * The hot tables (stock_hold, stock_movement, purchase_tally, orders,
 * order_lines) have no CHECK and no FOREIGN KEY constraints: only this
 * extension's functions write them, and they validate every value in C.
 * The executor re-reads and re-plans each CHECK expression from its
 * catalog text at every statement start (about 25k instructions each, a
 * third of place_order's cost: test/bench/cost.sh), and the lines' foreign
 * key ran a query per line.  stock_audit() and order_audit() check what
 * those constraints held.  The bucket counters keep one CHECK: stock can
 * never be oversold, whatever the code does.
 */

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
    updated_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- 0.9: reserves take from a shared-memory counter (set_escrow)
    escrow          boolean NOT NULL DEFAULT false
);

/*
 * A SKU's stock in one or more rows.  available + escrow + held + sold of
 * all rows of a SKU are the SKU's figures.  Rows at or past sku.nbuckets
 * only remain while holds still point at them (set_buckets).  escrow (0.9,
 * escrow SKUs only, bucket 0) is the units the SKU's shared-memory counter
 * hands out; the escrow holds not yet folded into held still count in it
 * (docs/stock.md, "Escrow").  fillfactor leaves room for HOT updates of
 * these very hot rows.
 */
CREATE TABLE @extschema@.stock_bucket (
    sku_id      bigint NOT NULL REFERENCES @extschema@.sku (sku_id),
    bucket      integer NOT NULL,
    available   bigint NOT NULL DEFAULT 0,
    held        bigint NOT NULL DEFAULT 0,
    sold        bigint NOT NULL DEFAULT 0,
    escrow      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (sku_id, bucket),
    CONSTRAINT stock_bucket_counts_check
        CHECK (bucket OPERATOR(pg_catalog.>=) 0 AND available OPERATOR(pg_catalog.>=) 0
               AND held OPERATOR(pg_catalog.>=) 0 AND sold OPERATOR(pg_catalog.>=) 0
               AND escrow OPERATOR(pg_catalog.>=) 0)
) WITH (fillfactor = 50);

/*
 * One hold per (order, SKU).  buckets/bucket_qtys say which stock_bucket
 * rows carry its held units, so confirm and release give them back to the
 * same rows.  No foreign key: the check would share-lock the SKU row on
 * every reserve.
 */
CREATE TABLE @extschema@.stock_hold (
    order_no    bigint NOT NULL,
    sku_id      bigint NOT NULL,
    qty         bigint NOT NULL,
    state       text NOT NULL,
    expires_at  timestamptz NOT NULL,
    buyer_id    bigint,
    buckets     integer[] NOT NULL,
    bucket_qtys bigint[] NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (order_no, sku_id)
);

-- the worker's "next holds to expire"
CREATE INDEX stock_hold_expiry ON @extschema@.stock_hold (expires_at) WHERE state = 'held';
-- escrow holds not yet folded into their bucket row (0.9): the fold's
-- batches (oldest first) and the counter's rebuild read them
CREATE INDEX stock_hold_unfolded ON @extschema@.stock_hold (sku_id, created_at)
    WHERE state = 'held' AND buckets = '{}'::integer[];

/*
 * The movement journal: every change of a SKU's available/held/sold is a
 * row of deltas ("return": a sale given back by a cancelled paid order).
 * stock_audit() checks the buckets against its sums.
 */
CREATE TABLE @extschema@.stock_movement (
    movement_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sku_id      bigint NOT NULL,
    kind        text NOT NULL,
    d_available bigint NOT NULL,
    d_held      bigint NOT NULL,
    d_sold      bigint NOT NULL,
    order_no    bigint,
    reason      text,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE INDEX stock_movement_sku ON @extschema@.stock_movement (sku_id);

/*
 * Units each buyer holds or bought per SKU; the conditional upsert on this
 * row is what makes the purchase limit safe under concurrency.
 */
CREATE TABLE @extschema@.purchase_tally (
    sku_id      bigint NOT NULL,
    buyer_id    bigint NOT NULL,
    units       bigint NOT NULL,
    PRIMARY KEY (sku_id, buyer_id)
);

/* pg_dump keeps the stock and the journal's sequence, so a restored
 * database goes on journaling above every movement it had */
SELECT pg_catalog.pg_extension_config_dump('@extschema@.sku', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.stock_bucket', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.stock_hold', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.stock_movement', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.purchase_tally', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.stock_movement_movement_id_seq', '');

/* The functions: C (src/stock/), SECURITY DEFINER so that the roles need
 * no rights on the tables themselves. */
CREATE FUNCTION @extschema@.restock(sku_id bigint, delta bigint, reason text DEFAULT NULL)
RETURNS bigint LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_restock';

CREATE FUNCTION @extschema@.set_price(sku_id bigint, price numeric)
RETURNS void LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_set_price';

CREATE FUNCTION @extschema@.try_deduct(sku_id bigint, qty bigint)
RETURNS boolean LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_try_deduct';

/* reserve is the hot entry point: not SECURITY DEFINER, because a
 * function's SET costs a GUC save and restore on every call.  Its C code
 * becomes the function's owner and pins the search path to pg_catalog
 * itself (src/stock/stock_sql.c, docs/stock.md "Privileges"). */
CREATE FUNCTION @extschema@.reserve(order_no bigint, sku_ids bigint[], qtys bigint[],
    ttl interval DEFAULT '30 minutes', buyer_id bigint DEFAULT NULL)
RETURNS boolean LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'oe_reserve';

CREATE FUNCTION @extschema@.confirm(order_no bigint)
RETURNS integer LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_confirm';

CREATE FUNCTION @extschema@.release(order_no bigint)
RETURNS integer LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_release';

CREATE FUNCTION @extschema@.set_buckets(sku_id bigint, n integer)
RETURNS void LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_set_buckets';

CREATE FUNCTION @extschema@.set_purchase_limit(sku_id bigint, per_buyer bigint)
RETURNS void LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_set_purchase_limit';

CREATE FUNCTION @extschema@.set_escrow(sku_id bigint, enabled boolean DEFAULT true)
RETURNS void LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_set_escrow';

CREATE FUNCTION @extschema@.fold_escrow(max_rows integer DEFAULT 1000)
RETURNS integer LANGUAGE C VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_fold_escrow';

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

/*
 * The audit is a read-only query over the stock tables; SQL says it best.
 */
CREATE FUNCTION @extschema@.stock_audit()
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

/* ------------------------------------------------------------------
 * ids (src/ids/): Leaf-style segments, order numbers, snowflake ids
 * ------------------------------------------------------------------ */

/*
 * The registry of id tags.  A tag's max_id (the highest id ever reserved)
 * is not a column: it lives in the tag's own sequence, moved forward with
 * setval() outside the caller's transaction (docs/ids.md, "Durability"),
 * and the view id_segments shows it.  step is the configured (smallest)
 * step; the dynamic step lives in shared memory.
 */
CREATE TABLE @extschema@.id_tags (
    biz_tag     text PRIMARY KEY
                CHECK (pg_catalog.octet_length(biz_tag) BETWEEN 1 AND 63),
    start_id    bigint NOT NULL CHECK (start_id >= 1),
    step        integer NOT NULL CHECK (step >= 1),
    description text,
    seq         regclass NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);

/* high-water mark of snowflake_id(): milliseconds since 2024-01-01 UTC */
CREATE SEQUENCE @extschema@.snowflake_hwm AS bigint MINVALUE 0 START 0 NO CYCLE;
SELECT pg_catalog.setval('@extschema@.snowflake_hwm', 0, true);

CREATE FUNCTION @extschema@.create_id_tag(
    biz_tag text,
    start_id bigint DEFAULT 1,
    step integer DEFAULT 1000,
    description text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    nsp name := (SELECT n.nspname FROM pg_catalog.pg_extension e
                   JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
                  WHERE e.extname = 'order_engine');
    seqname text := 'id_tag_' || pg_catalog.md5(biz_tag) || '_seq';
    seqoid regclass;
BEGIN
    IF biz_tag IS NULL OR start_id IS NULL OR step IS NULL THEN
        RAISE EXCEPTION 'biz_tag, start_id and step must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF pg_catalog.octet_length(biz_tag) NOT BETWEEN 1 AND 63 THEN
        RAISE EXCEPTION 'invalid id tag length %', pg_catalog.octet_length(biz_tag)
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A tag is 1 to 63 bytes long.';
    END IF;
    IF start_id < 1 THEN
        RAISE EXCEPTION 'start_id must be at least 1'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = pg_catalog.format('start_id was %s.', start_id);
    END IF;
    IF step < 1 THEN
        RAISE EXCEPTION 'step must be at least 1'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = pg_catalog.format('step was %s.', step);
    END IF;

    BEGIN
        EXECUTE pg_catalog.format(
            'CREATE SEQUENCE %I.%I AS bigint MINVALUE %s START %s NO CYCLE OWNED BY %I.id_tags.biz_tag',
            nsp, seqname, start_id - 1, start_id - 1, nsp);
        seqoid := pg_catalog.format('%I.%I', nsp, seqname)::regclass;
        -- last_value reads start_id - 1: nothing reserved yet
        PERFORM pg_catalog.setval(seqoid, start_id - 1, true);
        EXECUTE pg_catalog.format('GRANT SELECT ON SEQUENCE %s TO order_engine_admin', seqoid);
        EXECUTE pg_catalog.format(
            'INSERT INTO %I.id_tags (biz_tag, start_id, step, description, seq) VALUES ($1, $2, $3, $4, $5)',
            nsp) USING biz_tag, start_id, step, description, seqoid;
    EXCEPTION WHEN unique_violation OR duplicate_table THEN
        RAISE EXCEPTION 'id tag "%" already exists', biz_tag
            USING ERRCODE = 'OE014',
                  HINT = 'Use the existing tag, or pick another name.';
    END;
END
$fn$;

CREATE FUNCTION @extschema@.next_id(biz_tag text)
RETURNS bigint
LANGUAGE C VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'oe_next_id';

CREATE FUNCTION @extschema@.next_ids(biz_tag text, n integer)
RETURNS bigint[]
LANGUAGE C VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'oe_next_ids_sql';

CREATE FUNCTION @extschema@.next_order_no(buyer_id bigint)
RETURNS bigint
LANGUAGE C VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'oe_next_order_no';

CREATE FUNCTION @extschema@.shard_of(order_no bigint)
RETURNS integer
LANGUAGE C IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'oe_shard_of';

CREATE FUNCTION @extschema@.snowflake_id()
RETURNS bigint
LANGUAGE C VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'oe_snowflake_id';

CREATE FUNCTION @extschema@.id_segment_state(
    OUT biz_tag text,
    OUT current_step bigint,
    OUT current_start bigint,
    OUT current_end bigint,
    OUT next_start bigint,
    OUT next_end bigint,
    OUT ids_left bigint,
    OUT fetches bigint,
    OUT last_fetch_at timestamptz)
RETURNS SETOF record
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED
AS 'MODULE_PATHNAME', 'oe_id_segment_state';

/*
 * The tag of next_order_no(); its sequence is a member of the extension.
 * It is made while the installing superuser still owns create_id_tag, as
 * the chain made it (the ownership loop hands the sequence over with
 * id_tags, which owns it).
 */
SELECT @extschema@.create_id_tag('order_no', 1, 1000, 'order numbers (next_order_no)');

/*
 * pg_dump keeps the user's tags and every high-water mark; the order_no
 * row is recreated by CREATE EXTENSION, its sequence value is dumped.
 */
SELECT pg_catalog.pg_extension_config_dump('@extschema@.id_tags', 'WHERE biz_tag <> ''order_no''');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.snowflake_hwm', '');
SELECT pg_catalog.pg_extension_config_dump(t.seq, '')
  FROM @extschema@.id_tags t WHERE t.biz_tag = 'order_no';

/* ------------------------------------------------------------------
 * idem (src/idem/): idempotency keys, checkout tokens, versioned updates
 * ------------------------------------------------------------------ */

/*
 * Idempotency keys (docs/idempotency.md).  The application never touches
 * the table: idem_begin/idem_finish/idem_abort run as the owner, so the
 * claim columns cannot be forged.  Those functions are the only writers
 * and validate every value (scope 1-64 bytes, key 1-255 bytes, state), so
 * the table has no CHECK constraints: the executor re-reads each CHECK
 * expression from the catalog text at every statement start, which was a
 * quarter of idem_begin's cost in the benchmark (test/bench/idem.sh).
 */
CREATE TABLE @extschema@.idempotency_keys (
    scope        text        NOT NULL,
    key          text        NOT NULL,
    fingerprint  bytea       NOT NULL,
    state        text        NOT NULL,
    response     jsonb,
    claim_owner  bigint,
    claim_pid    integer,
    claimed_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    completed_at timestamptz,
    expires_at   timestamptz NOT NULL,
    claim_hash   bytea,
    PRIMARY KEY (scope, key)
);

CREATE INDEX idempotency_keys_expires_at ON @extschema@.idempotency_keys (expires_at);

/*
 * One-time checkout tokens: only the SHA-256 of a token is stored.
 */
CREATE TABLE @extschema@.checkout_tokens (
    token_hash   bytea       PRIMARY KEY,
    buyer_id     bigint      NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    expires_at   timestamptz NOT NULL
);

CREATE INDEX checkout_tokens_expires_at ON @extschema@.checkout_tokens (expires_at);

/*
 * Checkout quotes (seed 000): the unit prices of the lines frozen when
 * the checkout page opens, under a secret token of which only the SHA-256
 * is stored; quote() makes them, place_order(..., quote) uses one once.
 */
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

SELECT pg_catalog.pg_extension_config_dump('@extschema@.idempotency_keys', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.checkout_tokens', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.checkout_quotes', '');

/*
 * idem_begin and idem_finish, the two calls of every idempotent request,
 * are not SECURITY DEFINER: their C code becomes the owner and pins the
 * search path itself (src/common/internal_sql.c), without the per-call
 * cost of a function SET.  The claim token idem_begin returns finishes or
 * aborts a claim from any session (docs/idempotency.md, "Pooled
 * connections").  The C symbols are the _v2 ones of 0.6: the library
 * serves 0.5's symbols too (by the row type the caller declared and
 * PG_NARGS).
 */
CREATE FUNCTION @extschema@.idem_begin(
    scope text, key text, request jsonb, ttl interval DEFAULT '24 hours')
RETURNS TABLE (state text, response jsonb, claim text)
LANGUAGE C VOLATILE
ROWS 1
AS 'MODULE_PATHNAME', 'oe_idem_begin_v2';

CREATE FUNCTION @extschema@.idem_finish(scope text, key text, response jsonb,
                                        claim text DEFAULT NULL)
RETURNS void
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'oe_idem_finish_v2';

CREATE FUNCTION @extschema@.idem_abort(scope text, key text, claim text DEFAULT NULL)
RETURNS void
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_idem_abort_v2';

CREATE FUNCTION @extschema@.issue_token(buyer_id bigint, ttl interval DEFAULT '15 minutes')
RETURNS text
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_issue_token';

CREATE FUNCTION @extschema@.consume_token(buyer_id bigint, token text)
RETURNS boolean
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_consume_token';

CREATE FUNCTION @extschema@.reap_expired_keys(max_rows integer DEFAULT 1000)
RETURNS integer
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_reap_expired_keys';

/*
 * Not SECURITY DEFINER: the update runs with the caller's privileges.
 */
CREATE FUNCTION @extschema@.versioned_update(
    rel regclass, key jsonb, expected_version bigint, changes jsonb)
RETURNS bigint
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'oe_versioned_update';

/* ------------------------------------------------------------------
 * orders (src/orders/): orders, lines, payments and refunds, the outbox
 * ------------------------------------------------------------------ */

CREATE TABLE @extschema@.orders (
    order_no        bigint PRIMARY KEY,
    buyer_id        bigint NOT NULL,
    seller_id       bigint NOT NULL,
    status          text NOT NULL DEFAULT 'pending_payment',
    total           numeric NOT NULL,
    line_count      integer NOT NULL,
    version         bigint NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    pay_deadline    timestamptz NOT NULL,
    paid_at         timestamptz,
    shipped_at      timestamptz,
    completed_at    timestamptz,
    closed_at       timestamptz,
    payment_ref     text,
    logistics_no    text,
    address         text,
    note            text,
    close_reason    text
);
CREATE INDEX orders_pay_deadline_idx ON @extschema@.orders (pay_deadline)
    WHERE status = 'pending_payment';
/* order history (buyer_orders, seller_orders): an index range scan on
 * (buyer_id | seller_id, order_no) that stops after a page */
CREATE INDEX orders_buyer_order_idx ON @extschema@.orders (buyer_id, order_no);
CREATE INDEX orders_seller_order_idx ON @extschema@.orders (seller_id, order_no);
/* the archive's walk (src/jobs/archive.c), longest finished first: a
 * batch reads only orders old enough to archive, however many young ones
 * there are; the predicate and expression are the archive's, verbatim */
CREATE INDEX orders_finished_idx ON @extschema@.orders
    ((COALESCE(completed_at, closed_at, paid_at, created_at)))
    WHERE status = ANY ('{completed,cancelled,closed,refunded}'::text[]);

CREATE TABLE @extschema@.order_lines (
    order_no    bigint NOT NULL,
    line_no     integer NOT NULL,
    sku_id      bigint NOT NULL,
    qty         bigint NOT NULL,
    unit_price  numeric NOT NULL,
    line_total  numeric NOT NULL,
    PRIMARY KEY (order_no, line_no)
);

/*
 * Every payment, once per payment_ref, with its own refund lifecycle:
 * refund_state NULL (the order keeps the money) | refund_required ->
 * refunded, with the processor's refund_ref (refund_payment).
 */
CREATE TABLE @extschema@.payments (
    payment_ref text PRIMARY KEY,
    order_no    bigint NOT NULL,
    amount      numeric NOT NULL CHECK (amount >= 0),
    outcome     text NOT NULL CHECK (outcome IN ('paid', 'refund_required')),
    received_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    refund_state text
        CHECK (refund_state OPERATOR(pg_catalog.=) ANY (ARRAY['refund_required', 'refunded'])),
    refund_ref  text,
    refunded_at timestamptz,
    CONSTRAINT payments_refund_ref_check
        CHECK (refund_ref IS NULL OR refund_state OPERATOR(pg_catalog.=) 'refunded'),
    CONSTRAINT payments_refunded_at_check
        CHECK (CASE WHEN refund_state OPERATOR(pg_catalog.=) 'refunded' THEN refunded_at IS NOT NULL
                   ELSE refunded_at IS NULL END)
);
CREATE INDEX payments_order_idx ON @extschema@.payments (order_no);
CREATE UNIQUE INDEX payments_refund_ref_idx ON @extschema@.payments (refund_ref)
    WHERE refund_ref IS NOT NULL;
CREATE INDEX payments_owed_idx ON @extschema@.payments (order_no)
    WHERE refund_state OPERATOR(pg_catalog.=) 'refund_required';

/* the transactional outbox */
CREATE TABLE @extschema@.order_events (
    event_id     bigserial PRIMARY KEY,
    order_no     bigint NOT NULL,
    event        text NOT NULL,
    from_status  text,
    to_status    text,
    detail       jsonb,
    created_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    processed_at timestamptz
);
CREATE INDEX order_events_pending_idx ON @extschema@.order_events (event_id)
    WHERE processed_at IS NULL;
CREATE INDEX order_events_order_idx ON @extschema@.order_events (order_no);

SELECT pg_catalog.pg_extension_config_dump('@extschema@.orders', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.order_lines', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.payments', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.order_events', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.order_events_event_id_seq', '');

/*
 * Events to CDC: with order_engine.emit_logical_messages on and wal_level
 * = logical, every outbox row is also a transactional logical decoding
 * message (prefix "order_engine", the row as JSON), decoded in commit
 * order and never for a rolled-back transaction (src/orders/outbox_cdc.c).
 */
CREATE FUNCTION @extschema@.outbox_logical_message()
RETURNS trigger
LANGUAGE C
AS 'MODULE_PATHNAME', 'oe_outbox_logical_message';

CREATE TRIGGER order_events_logical_message
    AFTER INSERT ON @extschema@.order_events
    FOR EACH ROW EXECUTE FUNCTION @extschema@.outbox_logical_message();

/* the hot entry point: becomes the owner in C (src/common/internal_sql.c),
 * no SET cost.  The C symbol is 0.8's: a backend that still runs an older
 * library fails (42883) instead of ignoring the quote. */
CREATE FUNCTION @extschema@.place_order(order_no bigint, buyer_id bigint, seller_id bigint,
                                        lines jsonb, pay_within interval DEFAULT '30 minutes',
                                        quote text DEFAULT NULL)
RETURNS text LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'oe_place_order_v2';

/* not SECURITY DEFINER, like place_order: the C code becomes the owner */
CREATE FUNCTION @extschema@.quote(buyer_id bigint, lines jsonb,
                                  ttl interval DEFAULT '15 minutes')
RETURNS text LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'oe_quote';

CREATE FUNCTION @extschema@.pay_order(order_no bigint, payment_ref text, amount numeric)
RETURNS text LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_pay_order';

CREATE FUNCTION @extschema@.cancel_order(order_no bigint, reason text DEFAULT NULL)
RETURNS text LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_cancel_order';

CREATE FUNCTION @extschema@.ship_order(order_no bigint, logistics_no text)
RETURNS text LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_ship_order';

CREATE FUNCTION @extschema@.complete_order(order_no bigint)
RETURNS text LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_complete_order';

CREATE FUNCTION @extschema@.refund_order(order_no bigint)
RETURNS text LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_refund_order';

CREATE FUNCTION @extschema@.refund_payment(payment_ref text, refund_ref text)
RETURNS text LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_refund_payment';

CREATE FUNCTION @extschema@.order_status(order_no bigint)
RETURNS text LANGUAGE C STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_order_status';

CREATE FUNCTION @extschema@.update_order(order_no bigint, expected_version bigint, changes jsonb)
RETURNS bigint LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_update_order';

CREATE FUNCTION @extschema@.claim_events(max_rows integer DEFAULT 100)
RETURNS SETOF @extschema@.order_events LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- LIMIT NULL would claim everything, a negative LIMIT is 2201W
    IF max_rows IS NULL THEN
        RAISE EXCEPTION 'max_rows must not be null' USING ERRCODE = '22004';
    END IF;
    IF max_rows < 1 THEN
        RAISE EXCEPTION 'max_rows must be at least 1' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('The value was %s.', max_rows);
    END IF;
    RETURN QUERY
        SELECT e.* FROM @extschema@.order_events e
         WHERE e.processed_at IS NULL
         ORDER BY e.event_id
         LIMIT claim_events.max_rows
           FOR UPDATE SKIP LOCKED;
END
$$;

CREATE FUNCTION @extschema@.ack_events(event_ids bigint[])
RETURNS integer LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
BEGIN
    IF event_ids IS NULL THEN
        RAISE EXCEPTION 'event_ids must not be null' USING ERRCODE = '22004';
    END IF;
    WITH done AS (
        UPDATE @extschema@.order_events e SET processed_at = pg_catalog.now()
         WHERE e.event_id OPERATOR(pg_catalog.=) ANY (ack_events.event_ids)
           AND e.processed_at IS NULL
        RETURNING 1)
    SELECT pg_catalog.count(*)::integer INTO n FROM done;
    RETURN n;
END
$$;

/*
 * Order history across live and archive (seeds 001, 004): a buyer's or a
 * seller's orders, newest (highest order number) first, a page at a time
 * by keyset: pass the last order_no of a page as before_order_no for the
 * next.  One statement reads both tables under one snapshot, so an order
 * that the archive job moves meanwhile shows up exactly once.
 */
CREATE FUNCTION @extschema@.buyer_orders(buyer_id bigint, before_order_no bigint DEFAULT NULL,
                                         lim integer DEFAULT 20)
RETURNS TABLE (order_no bigint, buyer bigint, seller bigint, status text, total numeric,
               line_count integer, created_at timestamptz, archived boolean)
LANGUAGE plpgsql STABLE SECURITY DEFINER PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF buyer_orders.buyer_id IS NULL OR buyer_orders.lim IS NULL THEN
        RAISE EXCEPTION 'buyer_id and lim must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF buyer_orders.lim OPERATOR(pg_catalog.<) 1 OR buyer_orders.lim OPERATOR(pg_catalog.>) 1000 THEN
        RAISE EXCEPTION 'lim must be between 1 and 1000'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = pg_catalog.format('lim was %s.', buyer_orders.lim);
    END IF;
    RETURN QUERY
    SELECT u.* FROM (
        (SELECT o.order_no, o.buyer_id, o.seller_id, o.status, o.total, o.line_count, o.created_at, false
           FROM @extschema@.orders o
          WHERE o.buyer_id OPERATOR(pg_catalog.=) buyer_orders.buyer_id
            AND o.order_no OPERATOR(pg_catalog.<) COALESCE(buyer_orders.before_order_no, 9223372036854775807)
          ORDER BY o.order_no DESC LIMIT buyer_orders.lim)
        UNION ALL
        (SELECT a.order_no, a.buyer_id, a.seller_id, a.status, a.total, a.line_count, a.created_at, true
           FROM order_engine_archive.orders a
          WHERE a.buyer_id OPERATOR(pg_catalog.=) buyer_orders.buyer_id
            AND a.order_no OPERATOR(pg_catalog.<) COALESCE(buyer_orders.before_order_no, 9223372036854775807)
          ORDER BY a.order_no DESC LIMIT buyer_orders.lim)
    ) u
    ORDER BY u.order_no DESC LIMIT buyer_orders.lim;
END
$fn$;

CREATE FUNCTION @extschema@.seller_orders(seller_id bigint, before_order_no bigint DEFAULT NULL,
                                          lim integer DEFAULT 20)
RETURNS TABLE (order_no bigint, buyer bigint, seller bigint, status text, total numeric,
               line_count integer, created_at timestamptz, archived boolean)
LANGUAGE plpgsql STABLE SECURITY DEFINER PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF seller_orders.seller_id IS NULL OR seller_orders.lim IS NULL THEN
        RAISE EXCEPTION 'seller_id and lim must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF seller_orders.lim OPERATOR(pg_catalog.<) 1 OR seller_orders.lim OPERATOR(pg_catalog.>) 1000 THEN
        RAISE EXCEPTION 'lim must be between 1 and 1000'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = pg_catalog.format('lim was %s.', seller_orders.lim);
    END IF;
    RETURN QUERY
    SELECT u.* FROM (
        (SELECT o.order_no, o.buyer_id, o.seller_id, o.status, o.total, o.line_count, o.created_at, false
           FROM @extschema@.orders o
          WHERE o.seller_id OPERATOR(pg_catalog.=) seller_orders.seller_id
            AND o.order_no OPERATOR(pg_catalog.<) COALESCE(seller_orders.before_order_no, 9223372036854775807)
          ORDER BY o.order_no DESC LIMIT seller_orders.lim)
        UNION ALL
        (SELECT a.order_no, a.buyer_id, a.seller_id, a.status, a.total, a.line_count, a.created_at, true
           FROM order_engine_archive.orders a
          WHERE a.seller_id OPERATOR(pg_catalog.=) seller_orders.seller_id
            AND a.order_no OPERATOR(pg_catalog.<) COALESCE(seller_orders.before_order_no, 9223372036854775807)
          ORDER BY a.order_no DESC LIMIT seller_orders.lim)
    ) u
    ORDER BY u.order_no DESC LIMIT seller_orders.lim;
END
$fn$;

/* ------------------------------------------------------------------
 * jobs and worker (src/jobs/, src/worker/)
 * ------------------------------------------------------------------ */

CREATE TABLE @extschema@.quarantine (
    job         text NOT NULL,
    item        bigint NOT NULL,
    sqlstate    text NOT NULL,
    error       text NOT NULL,
    failed_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (job, item)
);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.quarantine', '');

/* every job is also a plain SQL function (the worker runs the same C) */
CREATE FUNCTION @extschema@.close_unpaid(max_rows integer DEFAULT 1000)
RETURNS integer LANGUAGE C VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_close_unpaid';

CREATE FUNCTION @extschema@.release_expired(max_rows integer DEFAULT 1000)
RETURNS integer LANGUAGE C VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_release_expired';

/* one row per worker and job (the view worker_status adds quarantined) */
CREATE FUNCTION @extschema@.worker_status(
    OUT datname text,
    OUT pid integer,
    OUT state text,
    OUT job text,
    OUT last_run_at timestamptz,
    OUT last_rows bigint,
    OUT total_rows bigint,
    OUT runs bigint,
    OUT errors bigint,
    OUT last_error text,
    OUT last_error_at timestamptz,
    OUT next_run_at timestamptz,
    OUT next_wake_at timestamptz,
    OUT started_at timestamptz,
    OUT rounds bigint)
RETURNS SETOF record
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED
AS 'MODULE_PATHNAME', 'oe_worker_job_status';

/* ------------------------------------------------------------------
 * archive (src/jobs/archive.c): hot/cold separation
 * ------------------------------------------------------------------ */

CREATE TABLE order_engine_archive.orders (
    LIKE @extschema@.orders INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    archived_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (order_no)
);
CREATE INDEX orders_buyer_idx ON order_engine_archive.orders (buyer_id, created_at);
CREATE INDEX orders_buyer_order_idx ON order_engine_archive.orders (buyer_id, order_no);
CREATE INDEX orders_seller_order_idx ON order_engine_archive.orders (seller_id, order_no);

CREATE TABLE order_engine_archive.order_lines (
    LIKE @extschema@.order_lines INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    PRIMARY KEY (order_no, line_no)
);

CREATE TABLE order_engine_archive.order_events (
    LIKE @extschema@.order_events INCLUDING CONSTRAINTS,
    PRIMARY KEY (event_id)
);
CREATE INDEX order_events_order_idx ON order_engine_archive.order_events (order_no);

/*
 * The archived max order number, written in the same transaction as each
 * batch.  The script makes no row (a dump would carry it a second time):
 * the archive job makes it on its first batch.
 */
CREATE TABLE @extschema@.archive_watermark (
    singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    max_order_no    bigint NOT NULL DEFAULT 0,
    archived_total  bigint NOT NULL DEFAULT 0,
    last_batch_at   timestamptz
);

SELECT pg_catalog.pg_extension_config_dump('order_engine_archive.orders', '');
SELECT pg_catalog.pg_extension_config_dump('order_engine_archive.order_lines', '');
SELECT pg_catalog.pg_extension_config_dump('order_engine_archive.order_events', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.archive_watermark', '');

CREATE FUNCTION @extschema@.archive_orders(older_than interval DEFAULT '90 days',
                                           max_rows integer DEFAULT 1000)
RETURNS integer LANGUAGE C VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_archive_orders';

/* ------------------------------------------------------------------
 * views, and the money ledger (they read several concerns, live and
 * archived orders)
 * ------------------------------------------------------------------ */

CREATE VIEW @extschema@.stock AS
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

CREATE VIEW @extschema@.stock_holds AS
    SELECT h.order_no, h.sku_id, h.qty, h.state, h.expires_at, h.buyer_id,
           h.created_at, h.updated_at
      FROM @extschema@.stock_hold h;

CREATE VIEW @extschema@.id_segments AS
    SELECT t.biz_tag,
           pg_catalog.pg_sequence_last_value(t.seq) AS max_id,
           t.step,
           s.current_step,
           s.current_start,
           s.current_end,
           s.next_start,
           s.next_end,
           coalesce(s.ids_left, 0) AS ids_left,
           coalesce(s.fetches, 0) AS fetches,
           s.last_fetch_at,
           t.description
      FROM @extschema@.id_tags t
      LEFT JOIN @extschema@.id_segment_state() s ON s.biz_tag = t.biz_tag;

CREATE VIEW @extschema@.worker_status AS
    SELECT w.*,
           (SELECT pg_catalog.count(*) FROM @extschema@.quarantine q WHERE q.job = w.job) AS quarantined
      FROM @extschema@.worker_status() w;

CREATE VIEW @extschema@.refunds_due AS
    SELECT p.payment_ref, p.order_no, p.amount, p.outcome, p.received_at,
           COALESCE(o.status, a.status) AS order_status,
           a.order_no IS NOT NULL AS archived
      FROM @extschema@.payments p
      LEFT JOIN @extschema@.orders o ON o.order_no OPERATOR(pg_catalog.=) p.order_no
      LEFT JOIN order_engine_archive.orders a ON a.order_no OPERATOR(pg_catalog.=) p.order_no
     WHERE p.refund_state OPERATOR(pg_catalog.=) 'refund_required';

/*
 * The money ledger, one row per problem (none: every invariant holds).
 * A SQL function's body is checked when it is made, so it comes after
 * the archive.
 */
CREATE FUNCTION @extschema@.order_audit()
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

/* ------------------------------------------------------------------
 * grants (README, "Roles and privileges"), and the ownership loop
 *
 * Nothing is PUBLIC's; the application role calls the API, the admin
 * role also administers and monitors.  PostgreSQL 15 records the
 * privileges an extension's script leaves on an object (pg_init_privs,
 * what pg_dump compares the current privileges with) at each GRANT and
 * REVOKE, and leaves them alone on ALTER ... OWNER.  So where a grant
 * stands against the ownership loop shows in pg_dump, and this script
 * keeps the chain's places: the grants above the loop are the ones the
 * chain made while the installing superuser owned the objects (0.1 to
 * 0.6), the ones below it those it made on objects order_engine_owner
 * owned already (0.6's schemas, the objects of 0.7, 0.8, 0.9 and 1.0).
 * ------------------------------------------------------------------ */

REVOKE ALL ON SCHEMA @extschema@ FROM PUBLIC;
GRANT USAGE ON SCHEMA @extschema@ TO order_engine_app, order_engine_admin;
REVOKE ALL ON SCHEMA order_engine_archive FROM PUBLIC;
GRANT USAGE ON SCHEMA order_engine_archive TO order_engine_admin;

REVOKE ALL ON ALL TABLES IN SCHEMA @extschema@ FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA @extschema@ FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA @extschema@ FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA order_engine_archive FROM PUBLIC;

-- stock
GRANT EXECUTE ON FUNCTION @extschema@.try_deduct(bigint, bigint),
    @extschema@.reserve(bigint, bigint[], bigint[], interval, bigint),
    @extschema@.confirm(bigint),
    @extschema@.release(bigint) TO order_engine_app;
GRANT SELECT ON @extschema@.stock TO order_engine_app;
GRANT SELECT ON @extschema@.sku, @extschema@.stock_bucket, @extschema@.stock_hold,
    @extschema@.stock_movement, @extschema@.purchase_tally TO order_engine_admin;
GRANT EXECUTE ON FUNCTION @extschema@.restock(bigint, bigint, text),
    @extschema@.set_price(bigint, numeric),
    @extschema@.set_buckets(bigint, integer),
    @extschema@.set_purchase_limit(bigint, bigint),
    @extschema@.stock_audit() TO order_engine_admin;
GRANT SELECT ON @extschema@.stock_holds TO order_engine_admin;

-- ids (create_id_tag grants SELECT on each tag's sequence to order_engine_admin)
GRANT EXECUTE ON FUNCTION @extschema@.next_id(text),
    @extschema@.next_ids(text, integer),
    @extschema@.next_order_no(bigint),
    @extschema@.shard_of(bigint),
    @extschema@.snowflake_id() TO order_engine_app;
GRANT SELECT ON @extschema@.id_tags TO order_engine_admin;
GRANT SELECT ON SEQUENCE @extschema@.snowflake_hwm TO order_engine_admin;
GRANT EXECUTE ON FUNCTION @extschema@.create_id_tag(text, bigint, integer, text),
    @extschema@.id_segment_state() TO order_engine_admin;
GRANT SELECT ON @extschema@.id_segments TO order_engine_admin;

-- idem
GRANT EXECUTE ON FUNCTION @extschema@.idem_begin(text, text, jsonb, interval),
    @extschema@.idem_finish(text, text, jsonb, text),
    @extschema@.idem_abort(text, text, text),
    @extschema@.issue_token(bigint, interval),
    @extschema@.consume_token(bigint, text),
    @extschema@.versioned_update(regclass, jsonb, bigint, jsonb) TO order_engine_app;
GRANT SELECT ON @extschema@.idempotency_keys, @extschema@.checkout_tokens TO order_engine_admin;
GRANT EXECUTE ON FUNCTION @extschema@.reap_expired_keys(integer) TO order_engine_admin;

-- orders (outbox_logical_message is a trigger: nobody calls it)
GRANT SELECT ON @extschema@.orders, @extschema@.order_lines, @extschema@.payments,
    @extschema@.order_events TO order_engine_app;
GRANT EXECUTE ON FUNCTION
    @extschema@.pay_order(bigint, text, numeric),
    @extschema@.cancel_order(bigint, text),
    @extschema@.ship_order(bigint, text),
    @extschema@.complete_order(bigint),
    @extschema@.order_status(bigint),
    @extschema@.update_order(bigint, bigint, jsonb),
    @extschema@.claim_events(integer),
    @extschema@.buyer_orders(bigint, bigint, integer),
    @extschema@.seller_orders(bigint, bigint, integer)
    TO order_engine_app;
GRANT EXECUTE ON FUNCTION @extschema@.refund_order(bigint) TO order_engine_admin;

-- jobs, worker, archive
GRANT SELECT, DELETE ON @extschema@.quarantine TO order_engine_admin;
GRANT SELECT ON @extschema@.archive_watermark TO order_engine_admin;
GRANT SELECT ON ALL TABLES IN SCHEMA order_engine_archive TO order_engine_admin;
GRANT EXECUTE ON FUNCTION
    @extschema@.close_unpaid(integer),
    @extschema@.release_expired(integer),
    @extschema@.archive_orders(interval, integer),
    @extschema@.worker_status()
    TO order_engine_admin;
GRANT SELECT ON @extschema@.worker_status TO order_engine_admin;

/*
 * The ownership loop: the schemas, and every relation and function that
 * belongs to the extension, go to order_engine_owner.  Indexes, identity
 * and serial sequences and the id tags' sequences (OWNED BY id_tags)
 * follow their tables.  Upgrade scripts that add objects run the same
 * loop (they name it "the ownership loop").
 */
DO $own$
DECLARE
    obj record;
BEGIN
    FOR obj IN
        SELECT n.nspname
          FROM pg_catalog.pg_namespace n
         WHERE n.nspname OPERATOR(pg_catalog.=) ANY (ARRAY['order_engine', 'order_engine_archive']::name[])
    LOOP
        EXECUTE pg_catalog.format('ALTER SCHEMA %I OWNER TO order_engine_owner', obj.nspname);
    END LOOP;

    FOR obj IN
        SELECT c.oid::pg_catalog.regclass AS rel, c.relkind
          FROM pg_catalog.pg_depend d
          JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) d.objid
         WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
           AND d.refobjid OPERATOR(pg_catalog.=)
               (SELECT e.oid FROM pg_catalog.pg_extension e
                 WHERE e.extname OPERATOR(pg_catalog.=) 'order_engine')
           AND d.deptype OPERATOR(pg_catalog.=) 'e'
           AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p', 'v', 'm', 'S']::"char"[])
           -- a sequence that belongs to a column follows its table
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend a
                            WHERE a.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                              AND a.objid OPERATOR(pg_catalog.=) c.oid
                              AND a.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                              AND a.deptype OPERATOR(pg_catalog.=) ANY (ARRAY['a', 'i']::"char"[]))
    LOOP
        EXECUTE pg_catalog.format('ALTER %s %s OWNER TO order_engine_owner',
            CASE obj.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                             WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END,
            obj.rel);
    END LOOP;

    FOR obj IN
        SELECT p.oid::pg_catalog.regprocedure AS fn, p.prokind
          FROM pg_catalog.pg_depend d
          JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) d.objid
         WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
           AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
           AND d.refobjid OPERATOR(pg_catalog.=)
               (SELECT e.oid FROM pg_catalog.pg_extension e
                 WHERE e.extname OPERATOR(pg_catalog.=) 'order_engine')
           AND d.deptype OPERATOR(pg_catalog.=) 'e'
    LOOP
        EXECUTE pg_catalog.format('ALTER %s %s OWNER TO order_engine_owner',
            CASE obj.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE'
                             ELSE 'FUNCTION' END,
            obj.fn);
    END LOOP;
END
$own$;

/* granted as order_engine_owner's (see the top of this section) */
REVOKE ALL ON SCHEMA order_engine FROM PUBLIC;
REVOKE ALL ON SCHEMA order_engine_archive FROM PUBLIC;

-- 0.7
REVOKE ALL ON FUNCTION @extschema@.refund_payment(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.order_audit() FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.ack_events(bigint[]) FROM PUBLIC;
REVOKE ALL ON @extschema@.refunds_due FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.refund_payment(text, text) TO order_engine_admin;
GRANT EXECUTE ON FUNCTION @extschema@.order_audit() TO order_engine_admin;
GRANT EXECUTE ON FUNCTION @extschema@.ack_events(bigint[]) TO order_engine_app;
GRANT SELECT ON @extschema@.refunds_due TO order_engine_admin;

-- 0.8
REVOKE ALL ON @extschema@.checkout_quotes FROM PUBLIC;
GRANT SELECT ON @extschema@.checkout_quotes TO order_engine_admin;
REVOKE ALL ON FUNCTION @extschema@.quote(bigint, jsonb, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.quote(bigint, jsonb, interval) TO order_engine_app;
REVOKE ALL ON FUNCTION @extschema@.place_order(bigint, bigint, bigint, jsonb, interval, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.place_order(bigint, bigint, bigint, jsonb, interval, text) TO order_engine_app;

-- 0.9
REVOKE ALL ON FUNCTION @extschema@.set_escrow(bigint, boolean), @extschema@.fold_escrow(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.set_escrow(bigint, boolean), @extschema@.fold_escrow(integer)
    TO order_engine_admin;

-- 1.0
REVOKE ALL ON @extschema@.stock_journal FROM PUBLIC;
GRANT SELECT ON @extschema@.stock_journal TO order_engine_admin;

/* ------------------------------------------------------------------
 * comments: every role, schema, table, view, sequence and function says
 * what it is in \d+ and \df+
 * ------------------------------------------------------------------ */

-- roles, schemas
COMMENT ON ROLE order_engine_app IS
    'order_engine: may call the application API (stock, orders, ids, idempotency)';
COMMENT ON ROLE order_engine_admin IS
    'order_engine: application rights plus administration and monitoring';
COMMENT ON ROLE order_engine_owner IS
    'order_engine: owns the extension''s objects; internal statements and the worker run as it (NOLOGIN, no members)';
COMMENT ON SCHEMA order_engine_archive IS
    'order_engine: finished orders moved out of the live tables by archive_orders';

-- stock
COMMENT ON TABLE @extschema@.sku IS
    'order_engine: SKUs (price, per-buyer purchase limit, number of stock buckets); stock is in stock_bucket';
COMMENT ON TABLE @extschema@.stock_bucket IS
    'order_engine: stock of a SKU spread over bucket rows (available, held, sold); change it only through the stock functions';
COMMENT ON COLUMN @extschema@.sku.escrow IS
    'true: reserves take units from a shared-memory counter instead of locking a bucket row (set_escrow)';
COMMENT ON COLUMN @extschema@.stock_bucket.escrow IS
    'Escrow SKUs: units the shared-memory counter hands out, including those of escrow holds not yet folded into held';
COMMENT ON TABLE @extschema@.stock_hold IS
    'order_engine: stock held for an order, per SKU: held until confirmed (sold) or released (back to available) or expired';
COMMENT ON TABLE @extschema@.stock_movement IS
    'order_engine: journal of the stock deltas no hold row records (restock, write_off, sale, return; hold, confirm and release before 1.0); read the whole journal in stock_journal';
COMMENT ON VIEW @extschema@.stock_journal IS
    'order_engine: the movement journal, one row per stock delta: stock_movement''s rows and each hold''s hold, confirm and release, read from its stock_hold row (1.0); stock_audit sums it';
COMMENT ON TABLE @extschema@.purchase_tally IS
    'order_engine: units of a SKU a buyer holds or bought (held + confirmed holds), for purchase limits';
COMMENT ON FUNCTION @extschema@.restock(bigint, bigint, text) IS
    'Adds (delta > 0) or writes off (delta < 0) stock; creates the SKU on its first positive delta; returns the new available';
COMMENT ON FUNCTION @extschema@.set_price(bigint, numeric) IS
    'Sets the current price of a SKU (creating the SKU without stock if it is new)';
COMMENT ON FUNCTION @extschema@.try_deduct(bigint, bigint) IS
    'Sells qty units directly, without a hold; false when not enough is available';
COMMENT ON FUNCTION @extschema@.reserve(bigint, bigint[], bigint[], interval, bigint) IS
    'Holds every line of an order for ttl, or none (false); a repeat of the same order holds nothing twice and returns true';
COMMENT ON FUNCTION @extschema@.confirm(bigint) IS
    'Turns the held lines of an order into sales; returns how many lines this call confirmed (0 on a repeat)';
COMMENT ON FUNCTION @extschema@.release(bigint) IS
    'Gives the held lines of an order back to available; returns how many lines this call released (0 when nothing is held)';
COMMENT ON FUNCTION @extschema@.set_buckets(bigint, integer) IS
    'Spreads the available stock of a SKU evenly over n bucket rows (hot SKUs); moves no unit in or out';
COMMENT ON FUNCTION @extschema@.set_purchase_limit(bigint, bigint) IS
    'Sets the most units one buyer may hold and buy of a SKU (NULL: no limit)';
COMMENT ON FUNCTION @extschema@.set_escrow(bigint, boolean) IS
    'Hot SKU: reserves take its units from a shared-memory counter and write only their hold (true), or from its bucket row again (false); needs shared_preload_libraries and one bucket';
COMMENT ON FUNCTION @extschema@.fold_escrow(integer) IS
    'Folds up to max_rows escrow holds into their bucket row (held and the journal) and gives units restocked or released on escrow SKUs to the counter; the worker runs it; returns holds folded';
COMMENT ON FUNCTION @extschema@.stock_audit() IS
    'Checks the stock invariants per SKU (no negatives; available/held/sold match the journal; held matches held holds; sold matches confirmed holds and direct sales; purchase tallies match holds for SKUs with a limit; every hold, journal row and tally well-formed)';

-- ids
COMMENT ON TABLE @extschema@.id_tags IS
    'order_engine id tags: configured step and the sequence that keeps max_id durable';
COMMENT ON COLUMN @extschema@.id_tags.seq IS
    'Sequence whose last_value is the highest id ever reserved for the tag';
COMMENT ON SEQUENCE @extschema@.snowflake_hwm IS
    'snowflake_id(): persisted high-water mark of the clock (ms since 2024-01-01 UTC); ids never go below it';
COMMENT ON FUNCTION @extschema@.create_id_tag(text, bigint, integer, text) IS
    'Registers an id tag: ids start at start_id and are reserved step (or more, dynamically) at a time';
COMMENT ON FUNCTION @extschema@.next_id(text) IS
    'Next id of the tag: unique, increasing in the order handed out, never reused after rollback or crash (gaps possible)';
COMMENT ON FUNCTION @extschema@.next_ids(text, integer) IS
    'n ids of the tag (1 to 1000000) in one call, increasing';
COMMENT ON FUNCTION @extschema@.next_order_no(bigint) IS
    'New order number; its last two digits are the buyer''s shard gene (buyer_id mod order_engine.shard_count)';
COMMENT ON FUNCTION @extschema@.shard_of(bigint) IS
    'The shard gene of an order number (its last two decimal digits)';
COMMENT ON FUNCTION @extschema@.snowflake_id() IS
    'Time-ordered id (ms since 2024 | order_engine.node_id | sequence); never goes backwards, across restarts too';
COMMENT ON FUNCTION @extschema@.id_segment_state() IS
    'Shared-memory state of the id tags of this database (needs shared_preload_libraries)';

-- idem
COMMENT ON TABLE @extschema@.idempotency_keys IS
    'Idempotency keys: per (scope, key) the request fingerprint, state, stored response and the claim';
COMMENT ON COLUMN @extschema@.idempotency_keys.state IS
    'in_progress (claimed, claim_owner set) or completed (response stored)';
COMMENT ON COLUMN @extschema@.idempotency_keys.fingerprint IS
    'SHA-256 of the request''s canonical jsonb text';
COMMENT ON COLUMN @extschema@.idempotency_keys.claim_owner IS
    'Random id of the session holding the claim (in_progress only)';
COMMENT ON COLUMN @extschema@.idempotency_keys.claim_pid IS
    'Process id of the session holding the claim, for diagnosis';
COMMENT ON COLUMN @extschema@.idempotency_keys.claim_hash IS
    'SHA-256 of the claim token idem_begin returned with "started"; the token itself is never stored';
COMMENT ON TABLE @extschema@.checkout_tokens IS
    'Unused one-time checkout tokens (SHA-256 of the token, buyer, expiry); a consumed token is deleted';
COMMENT ON TABLE @extschema@.checkout_quotes IS
    'Unused checkout quotes (SHA-256 of the token, buyer, the quoted lines and unit prices, expiry); a used quote is deleted';
COMMENT ON FUNCTION @extschema@.idem_begin(text, text, jsonb, interval) IS
    'Claim an idempotency key: started (yours now, with a claim token for idem_finish/idem_abort from any session), in_progress (someone else''s, never waits) or completed (with the stored response); OE003 when the key was used for another request';
COMMENT ON FUNCTION @extschema@.idem_finish(text, text, jsonb, text) IS
    'Store the response of a claimed idempotency key and complete it; with the claim token from any session, without it only from the claiming session; OE016 unknown key, OE017 claim not held (or taken over)';
COMMENT ON FUNCTION @extschema@.idem_abort(text, text, text) IS
    'Give up a claimed idempotency key (it is deleted) so a retry may run; with the claim token from any session; OE016 unknown key, OE017 claim not held';
COMMENT ON FUNCTION @extschema@.issue_token(bigint, interval) IS
    'A new one-time checkout token for the buyer (256 random bits, base64url), valid for ttl';
COMMENT ON FUNCTION @extschema@.consume_token(bigint, text) IS
    'true exactly once per token, for its buyer, before it expires; false otherwise';
COMMENT ON FUNCTION @extschema@.reap_expired_keys(integer) IS
    'Deletes up to max_rows expired idempotency keys, checkout tokens and checkout quotes; returns how many';
COMMENT ON FUNCTION @extschema@.versioned_update(regclass, jsonb, bigint, jsonb) IS
    'Optimistic update of the row of rel matching key, if its version is expected_version; bumps and returns the version; OE001 stale version, OE002 no such row';

-- orders
COMMENT ON TABLE @extschema@.orders IS
    'Live orders; amounts are the price snapshot taken at placement (one currency)';
COMMENT ON COLUMN @extschema@.orders.version IS
    'Optimistic version, bumped by every change (update_order compares it)';
COMMENT ON COLUMN @extschema@.orders.pay_deadline IS
    'close_unpaid closes the order when this passes unpaid';
COMMENT ON TABLE @extschema@.order_lines IS
    'Order lines with the unit price snapshot taken from the SKU at placement';
COMMENT ON TABLE @extschema@.payments IS
    'Every payment received, once per payment_ref; refund_required ones must be paid back';
COMMENT ON COLUMN @extschema@.payments.outcome IS
    'What pay_order answered for this payment (paid or refund_required); replayed for the same payment_ref';
COMMENT ON COLUMN @extschema@.payments.refund_state IS
    'NULL: the order keeps the money; refund_required: owed back (view refunds_due); refunded: paid back';
COMMENT ON COLUMN @extschema@.payments.refund_ref IS
    'The payment processor''s reference of the refund (refund_payment); NULL for refund_order';
COMMENT ON COLUMN @extschema@.payments.refunded_at IS
    'When the refund was recorded';
COMMENT ON TABLE @extschema@.order_events IS
    'Transactional outbox: one row per order change, written in the same transaction; drain with claim_events/ack_events';
COMMENT ON FUNCTION @extschema@.outbox_logical_message() IS
    'Trigger: emits each new outbox event as a transactional logical decoding message when order_engine.emit_logical_messages is on';
COMMENT ON FUNCTION @extschema@.place_order(bigint, bigint, bigint, jsonb, interval, text) IS
    'Holds every line, writes order, lines (price snapshot, or the prices of quote) and event in one call; pending_payment or out_of_stock';
COMMENT ON FUNCTION @extschema@.quote(bigint, jsonb, interval) IS
    'Checkout quote: freezes the current unit prices of the lines for ttl and returns a one-time token for place_order(..., quote => token)';
COMMENT ON FUNCTION @extschema@.pay_order(bigint, text, numeric) IS
    'Records every payment: paid; refund_required (owed back, whatever the amount) when the order is closed, cancelled, past its deadline, refunded or already paid; archived orders too; idempotent on payment_ref; a wrong amount for an order awaiting payment is OE007';
COMMENT ON FUNCTION @extschema@.cancel_order(bigint, text) IS
    'Buyer cancels: an unpaid order -> cancelled (holds released); a paid, unshipped one -> refund_required (stock and allowance returned, payments owed back); idempotent';
COMMENT ON FUNCTION @extschema@.ship_order(bigint, text) IS
    'paid -> shipped, recording the logistics number; idempotent';
COMMENT ON FUNCTION @extschema@.complete_order(bigint) IS
    'shipped -> completed; idempotent';
COMMENT ON FUNCTION @extschema@.refund_order(bigint) IS
    'refund_required -> refunded once the money went back: every payment the order owes is marked refunded (without a refund reference; see refund_payment); idempotent';
COMMENT ON FUNCTION @extschema@.refund_payment(text, text) IS
    'Records that a payment owed back was refunded under the processor''s refund_ref: refund_required -> refunded; idempotent; the order becomes refunded with its last owed payment';
COMMENT ON FUNCTION @extschema@.order_status(bigint) IS
    'Current status of an order, or not_found';
COMMENT ON FUNCTION @extschema@.update_order(bigint, bigint, jsonb) IS
    'Optimistic update of address, note or logistics_no; returns the new version, OE001 when stale';
COMMENT ON FUNCTION @extschema@.claim_events(integer) IS
    'Outbox consumer: locks up to max_rows unprocessed events (SKIP LOCKED); ack them in the same transaction';
COMMENT ON FUNCTION @extschema@.ack_events(bigint[]) IS
    'Outbox consumer: marks events processed (ack only ids you claimed, in the claiming transaction); returns how many were newly marked; NULL is 22004';
COMMENT ON FUNCTION @extschema@.buyer_orders(bigint, bigint, integer) IS
    'A buyer''s orders, live and archived together, newest first; keyset pages: pass the last order_no as before_order_no; lim 1-1000';
COMMENT ON FUNCTION @extschema@.seller_orders(bigint, bigint, integer) IS
    'A seller''s orders, live and archived together, newest first; keyset pages: pass the last order_no as before_order_no; lim 1-1000';
COMMENT ON FUNCTION @extschema@.order_audit() IS
    'The money ledger: one row per order and kind of problem (no rows: all hold): payments recorded, kept payments equal the total of paid orders or are owed back, orders awaiting payment hold every line until their deadline, statuses known, lines well-formed and summing to the total';

-- jobs, worker, archive
COMMENT ON TABLE @extschema@.quarantine IS
    'Rows a maintenance job failed on (a hold, an order): skipped until the row here is deleted';
COMMENT ON FUNCTION @extschema@.close_unpaid(integer) IS
    'Closes up to max_rows orders past their payment deadline, releasing their holds (the worker runs it too)';
COMMENT ON FUNCTION @extschema@.release_expired(integer) IS
    'Releases up to max_rows holds past their expiry (the worker runs it too)';
COMMENT ON FUNCTION @extschema@.worker_status() IS
    'One row per order_engine worker and job: last run, rows, errors, next run (needs shared_preload_libraries)';
COMMENT ON TABLE order_engine_archive.orders IS
    'Archived orders (same columns as order_engine.orders plus archived_at)';
COMMENT ON TABLE order_engine_archive.order_lines IS 'Lines of archived orders';
COMMENT ON TABLE order_engine_archive.order_events IS 'Events of archived orders';
COMMENT ON TABLE @extschema@.archive_watermark IS
    'Highest order number archived so far and the running count; updated in the same transaction as each batch';
COMMENT ON FUNCTION @extschema@.archive_orders(interval, integer) IS
    'Moves up to max_rows finished orders older than older_than, with lines and events, to order_engine_archive';

-- views
COMMENT ON VIEW @extschema@.stock IS
    'order_engine: per SKU available, held and sold (summed over its buckets, escrow holds counted as held), price, purchase limit, buckets, escrow';
COMMENT ON VIEW @extschema@.stock_holds IS
    'order_engine: holds per order and SKU with their state and expiry';
COMMENT ON VIEW @extschema@.id_segments IS
    'Per id tag: durable max_id, configured and current step, current and next range (inclusive bounds), ids left in memory';
COMMENT ON VIEW @extschema@.worker_status IS
    'The order_engine workers per job: last run, rows handled, errors, last error, quarantined rows, next wake-up';
COMMENT ON VIEW @extschema@.refunds_due IS
    'Money owed back: every payment whose refund_state is refund_required, with its order''s status; refund with refund_payment()';
