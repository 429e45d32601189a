/*
 * order_engine 0.6: least privilege.
 *
 * Until 0.5 the extension's objects belonged to the superuser who created
 * it, so every internal statement (and the worker) ran as a superuser, and
 * a function slipped into one of them made its author superuser (README,
 * "Security").  From 0.6 on they belong to order_engine_owner: a NOLOGIN
 * role that is not superuser, has no members and owns nothing else.  The
 * C code runs all internal SQL as that role with search_path pinned to
 * pg_catalog, pg_temp (src/internal_sql.c); SECURITY DEFINER functions
 * are owned by it.
 */
\echo Use "ALTER EXTENSION order_engine UPDATE TO '0.6'" to load this file. \quit

/*
 * A live update takes ACCESS EXCLUSIVE locks (ALTER TABLE) while clients
 * hold row locks; when the two form a cycle, the client must be the one to
 * get 40P01 (retryable), not the update.  The deadlock detector runs in
 * whoever waited deadlock_timeout first, so the update waits longer.
 * LOCAL: it ends with this script.
 */
SET LOCAL deadlock_timeout = '60s';

/*
 * The role.  A role of that name made by someone else before us would own
 * everything we own: accept it only if it could be ours, that is, it
 * cannot log in, has no special attributes, and nobody is a member of it.
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

COMMENT ON ROLE order_engine_owner IS
    'order_engine: owns the extension''s objects; internal statements and the worker run as it (NOLOGIN, no members)';

/*
 * Idempotency behind a pooler: a claim token that finishes or aborts a
 * claim from any session (docs/idempotency.md, "Pooled connections").
 * idem_begin gains a result column and idem_finish / idem_abort an
 * argument, so they are made anew.  They name new C symbols (_v2): a
 * backend still running 0.5's library gets "could not find function"
 * rather than a row of the wrong shape; the new library serves 0.5's
 * symbols too (by the row type the caller declared and PG_NARGS).
 */
ALTER TABLE @extschema@.idempotency_keys ADD COLUMN claim_hash bytea;
COMMENT ON COLUMN @extschema@.idempotency_keys.claim_hash IS
    'SHA-256 of the claim token idem_begin returned with "started"; the token itself is never stored';

DROP FUNCTION @extschema@.idem_begin(text, text, jsonb, interval);
DROP FUNCTION @extschema@.idem_finish(text, text, jsonb);
DROP FUNCTION @extschema@.idem_abort(text, text);

CREATE FUNCTION @extschema@.idem_begin(
    scope text, key text, request jsonb, ttl interval DEFAULT '24 hours')
RETURNS TABLE (state text, response jsonb, claim text)
LANGUAGE C VOLATILE
ROWS 1
AS 'MODULE_PATHNAME', 'oe_idem_begin_v2';

COMMENT ON FUNCTION @extschema@.idem_begin(text, text, jsonb, interval) IS
    'Claim an idempotency key: started (yours now, with a claim token for idem_finish/idem_abort from any session), in_progress (someone else''s, never waits) or completed (with the stored response); OE003 when the key was used for another request';

CREATE FUNCTION @extschema@.idem_finish(scope text, key text, response jsonb,
                                        claim text DEFAULT NULL)
RETURNS void
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'oe_idem_finish_v2';

COMMENT ON FUNCTION @extschema@.idem_finish(text, text, jsonb, text) IS
    'Store the response of a claimed idempotency key and complete it; with the claim token from any session, without it only from the claiming session; OE016 unknown key, OE017 claim not held (or taken over)';

CREATE FUNCTION @extschema@.idem_abort(scope text, key text, claim text DEFAULT NULL)
RETURNS void
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_idem_abort_v2';

COMMENT ON FUNCTION @extschema@.idem_abort(text, text, text) IS
    'Give up a claimed idempotency key (it is deleted) so a retry may run; with the claim token from any session; OE016 unknown key, OE017 claim not held';

REVOKE ALL ON FUNCTION @extschema@.idem_begin(text, text, jsonb, interval),
    @extschema@.idem_finish(text, text, jsonb, text),
    @extschema@.idem_abort(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.idem_begin(text, text, jsonb, interval),
    @extschema@.idem_finish(text, text, jsonb, text),
    @extschema@.idem_abort(text, text, text) TO order_engine_app;

/*
 * Order history across live and archive (seeds 001, 004): a buyer's or a
 * seller's orders, newest (highest order number) first, a page at a time
 * by keyset: pass the last order_no of a page as before_order_no for the
 * next.  One statement reads both tables under one snapshot, so an order
 * that the archive job moves meanwhile shows up exactly once.  Each side
 * is an index range scan on (buyer_id | seller_id, order_no) that stops
 * after lim rows.
 */
CREATE INDEX orders_buyer_order_idx ON @extschema@.orders (buyer_id, order_no);
CREATE INDEX orders_seller_order_idx ON @extschema@.orders (seller_id, order_no);
CREATE INDEX orders_buyer_order_idx ON order_engine_archive.orders (buyer_id, order_no);
CREATE INDEX orders_seller_order_idx ON order_engine_archive.orders (seller_id, order_no);

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

COMMENT ON FUNCTION @extschema@.buyer_orders(bigint, bigint, integer) IS
    'A buyer''s orders, live and archived together, newest first; keyset pages: pass the last order_no as before_order_no; lim 1-1000';

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

COMMENT ON FUNCTION @extschema@.seller_orders(bigint, bigint, integer) IS
    'A seller''s orders, live and archived together, newest first; keyset pages: pass the last order_no as before_order_no; lim 1-1000';

REVOKE ALL ON FUNCTION @extschema@.buyer_orders(bigint, bigint, integer),
    @extschema@.seller_orders(bigint, bigint, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.buyer_orders(bigint, bigint, integer),
    @extschema@.seller_orders(bigint, bigint, integer) TO order_engine_app;

/*
 * Events to CDC: with order_engine.emit_logical_messages on and wal_level
 * = logical, every outbox row is also a transactional logical decoding
 * message (prefix "order_engine", the row as JSON), decoded in commit
 * order and never for a rolled-back transaction (src/outbox_cdc.c).
 */
CREATE FUNCTION @extschema@.outbox_logical_message()
RETURNS trigger
LANGUAGE C
AS 'MODULE_PATHNAME', 'oe_outbox_logical_message';

COMMENT ON FUNCTION @extschema@.outbox_logical_message() IS
    'Trigger: emits each new outbox event as a transactional logical decoding message when order_engine.emit_logical_messages is on';

REVOKE ALL ON FUNCTION @extschema@.outbox_logical_message() FROM PUBLIC;

CREATE TRIGGER order_events_logical_message
    AFTER INSERT ON @extschema@.order_events
    FOR EACH ROW EXECUTE FUNCTION @extschema@.outbox_logical_message();

/*
 * Ownership: the schemas, and every relation and function that belongs to
 * the extension.  Indexes, identity and serial sequences and the id tags'
 * sequences (OWNED BY id_tags) follow their tables.  Later versions that
 * add objects run the same loop (scripts name it "the ownership loop").
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

/* the owner role needs nothing outside its own objects */
REVOKE ALL ON SCHEMA order_engine FROM PUBLIC;
REVOKE ALL ON SCHEMA order_engine_archive FROM PUBLIC;

/*
 * Dump and restore: archive_watermark's singleton row was made by the
 * script, so every dump carried a second copy of it and pg_restore failed
 * on the duplicate.  The archive job now makes the row on its first batch;
 * a row no batch ever touched goes.  The identity sequence of the stock
 * journal was not dumped, so a restored database failed its first
 * restock: it is dumped now, like the outbox's.
 */
DELETE FROM @extschema@.archive_watermark
 WHERE last_batch_at IS NULL AND archived_total OPERATOR(pg_catalog.=) 0;
SELECT pg_catalog.pg_extension_config_dump('@extschema@.stock_movement_movement_id_seq', '');
