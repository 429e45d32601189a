-- Privilege audit against README's matrix ("Roles and privileges"): the
-- EXECUTE privilege of every function and the privileges of every table,
-- view and sequence for PUBLIC, order_engine_app and order_engine_admin;
-- the schemas; every SECURITY DEFINER function's search_path ends in
-- pg_temp; the frozen base script has no CREATE OR REPLACE; and hostile
-- objects (temp tables, public functions and operators shadowing what our
-- SQL uses) change no result of the API.  A function or relation missing
-- from the matrix fails the audit, so new objects must be documented.
BEGIN;
SELECT plan(16);

-- README's matrix: who may execute what ('app': both roles; 'admin': admin only)
CREATE TEMP TABLE fn_matrix (fn text PRIMARY KEY, who text) ON COMMIT DROP;
INSERT INTO fn_matrix VALUES
    ('order_engine.reserve(bigint,bigint[],bigint[],interval,bigint)', 'app'),
    ('order_engine.confirm(bigint)', 'app'), ('order_engine.release(bigint)', 'app'),
    ('order_engine.try_deduct(bigint,bigint)', 'app'),
    ('order_engine.restock(bigint,bigint,text)', 'admin'),
    ('order_engine.set_price(bigint,numeric)', 'admin'),
    ('order_engine.set_buckets(bigint,integer)', 'admin'),
    ('order_engine.set_purchase_limit(bigint,bigint)', 'admin'),
    ('order_engine.set_escrow(bigint,boolean)', 'admin'),
    ('order_engine.fold_escrow(integer)', 'admin'),
    ('order_engine.stock_audit()', 'admin'),
    ('order_engine.next_id(text)', 'app'), ('order_engine.next_ids(text,integer)', 'app'),
    ('order_engine.next_order_no(bigint)', 'app'), ('order_engine.shard_of(bigint)', 'app'),
    ('order_engine.snowflake_id()', 'app'),
    ('order_engine.create_id_tag(text,bigint,integer,text)', 'admin'),
    ('order_engine.id_segment_state()', 'admin'),
    ('order_engine.idem_begin(text,text,jsonb,interval)', 'app'),
    ('order_engine.idem_finish(text,text,jsonb,text)', 'app'),
    ('order_engine.idem_abort(text,text,text)', 'app'),
    ('order_engine.issue_token(bigint,interval)', 'app'),
    ('order_engine.consume_token(bigint,text)', 'app'),
    ('order_engine.versioned_update(regclass,jsonb,bigint,jsonb)', 'app'),
    ('order_engine.reap_expired_keys(integer)', 'admin'),
    ('order_engine.quote(bigint,jsonb,interval)', 'app'),
    ('order_engine.place_order(bigint,bigint,bigint,jsonb,interval,text)', 'app'),
    ('order_engine.pay_order(bigint,text,numeric)', 'app'),
    ('order_engine.cancel_order(bigint,text)', 'app'),
    ('order_engine.ship_order(bigint,text)', 'app'),
    ('order_engine.complete_order(bigint)', 'app'),
    ('order_engine.order_status(bigint)', 'app'),
    ('order_engine.update_order(bigint,bigint,jsonb)', 'app'),
    ('order_engine.buyer_orders(bigint,bigint,integer)', 'app'),
    ('order_engine.seller_orders(bigint,bigint,integer)', 'app'),
    ('order_engine.claim_events(integer)', 'app'),
    ('order_engine.ack_events(bigint[])', 'app'),
    ('order_engine.refund_order(bigint)', 'admin'),
    ('order_engine.refund_payment(text,text)', 'admin'),
    ('order_engine.order_audit()', 'admin'),
    ('order_engine.release_expired(integer)', 'admin'),
    ('order_engine.close_unpaid(integer)', 'admin'),
    ('order_engine.archive_orders(interval,integer)', 'admin'),
    ('order_engine.worker_status()', 'admin'),
    -- a trigger function: fired by the table, executed by nobody
    ('order_engine.outbox_logical_message()', 'none');

-- relations: the privileges of each role ('' = none); a name ending in %
-- is a pattern (the sequences create_id_tag makes)
CREATE TEMP TABLE rel_matrix (rel text PRIMARY KEY, app text, admin text) ON COMMIT DROP;
INSERT INTO rel_matrix VALUES
    ('order_engine.stock', 'SELECT', 'SELECT'),
    ('order_engine.stock_holds', '', 'SELECT'),
    ('order_engine.sku', '', 'SELECT'), ('order_engine.stock_bucket', '', 'SELECT'),
    ('order_engine.stock_hold', '', 'SELECT'), ('order_engine.stock_movement', '', 'SELECT'),
    ('order_engine.stock_journal', '', 'SELECT'),
    ('order_engine.purchase_tally', '', 'SELECT'),
    ('order_engine.stock_movement_movement_id_seq', '', ''),
    ('order_engine.id_tags', '', 'SELECT'), ('order_engine.snowflake_hwm', '', 'SELECT'),
    ('order_engine.id_tag_%_seq', '', 'SELECT'), ('order_engine.id_segments', '', 'SELECT'),
    ('order_engine.idempotency_keys', '', 'SELECT'), ('order_engine.checkout_tokens', '', 'SELECT'),
    ('order_engine.checkout_quotes', '', 'SELECT'),
    ('order_engine.orders', 'SELECT', 'SELECT'), ('order_engine.order_lines', 'SELECT', 'SELECT'),
    ('order_engine.payments', 'SELECT', 'SELECT'), ('order_engine.order_events', 'SELECT', 'SELECT'),
    ('order_engine.order_events_event_id_seq', '', ''),
    ('order_engine.quarantine', '', 'SELECT,DELETE'),
    ('order_engine.archive_watermark', '', 'SELECT'),
    ('order_engine.worker_status', '', 'SELECT'),
    ('order_engine.refunds_due', '', 'SELECT'),
    ('order_engine_archive.orders', '', 'SELECT'),
    ('order_engine_archive.order_lines', '', 'SELECT'),
    ('order_engine_archive.order_events', '', 'SELECT');

CREATE TEMP VIEW ext_fn AS
    SELECT p.oid, p.oid::regprocedure::text AS fn, p.prosecdef, p.proconfig
      FROM pg_depend d JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
     WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
       AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'order_engine');
CREATE TEMP VIEW ext_rel AS
    SELECT c.oid, c.oid::regclass::text AS rel,
           (SELECT m.rel FROM rel_matrix m WHERE c.oid::regclass::text LIKE m.rel
             ORDER BY length(m.rel) DESC LIMIT 1) AS matrix_rel
      FROM pg_depend d JOIN pg_class c ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
     WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
       AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'order_engine');
CREATE TEMP VIEW rel_privs AS
    SELECT r.rel, r.matrix_rel, role,
           coalesce((SELECT string_agg(p, ',' ORDER BY o) FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE',
                       'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER', 'USAGE']) WITH ORDINALITY u(p, o)
                      WHERE CASE WHEN c.relkind = 'S'
                                 THEN p IN ('SELECT', 'UPDATE', 'USAGE') AND has_sequence_privilege(role, r.oid, p)
                                 ELSE p <> 'USAGE' AND has_table_privilege(role, r.oid, p) END), '') AS privs
      FROM ext_rel r JOIN pg_class c ON c.oid = r.oid,
           unnest(ARRAY['public', 'order_engine_app', 'order_engine_admin']) role;

-- a function to create an id tag so its sequence is audited too
SELECT order_engine.create_id_tag('audit_tag');

SELECT set_eq($$SELECT fn FROM ext_fn$$, $$SELECT fn FROM fn_matrix$$,
              'the matrix lists exactly the functions of the extension');
SELECT is_empty($$SELECT fn FROM ext_fn WHERE has_function_privilege('public', oid, 'EXECUTE')$$,
                'PUBLIC may execute no function');
SELECT is_empty($$SELECT f.fn FROM ext_fn f JOIN fn_matrix m USING (fn)
                   WHERE has_function_privilege('order_engine_app', f.oid, 'EXECUTE') <> (m.who = 'app')$$,
                'order_engine_app may execute exactly the application API');
SELECT is_empty($$SELECT f.fn FROM ext_fn f JOIN fn_matrix m USING (fn)
                   WHERE has_function_privilege('order_engine_admin', f.oid, 'EXECUTE') <> (m.who <> 'none')$$,
                'order_engine_admin may execute every function but the trigger function');

SELECT is_empty($$SELECT rel FROM ext_rel WHERE matrix_rel IS NULL$$,
                'the matrix lists every table, view and sequence of the extension');
SELECT is_empty($$SELECT rel, privs FROM rel_privs WHERE role = 'public' AND privs <> ''$$,
                'PUBLIC has no privilege on any relation');
SELECT is_empty($$SELECT p.rel, p.privs, m.app FROM rel_privs p JOIN rel_matrix m ON m.rel = p.matrix_rel
                   WHERE p.role = 'order_engine_app' AND p.privs <> m.app$$,
                'order_engine_app has exactly the documented relation privileges');
SELECT is_empty($$SELECT p.rel, p.privs, m.admin FROM rel_privs p JOIN rel_matrix m ON m.rel = p.matrix_rel
                   WHERE p.role = 'order_engine_admin' AND p.privs <> m.admin$$,
                'order_engine_admin has exactly the documented relation privileges');

SELECT ok(has_schema_privilege('order_engine_app', 'order_engine', 'USAGE')
          AND NOT has_schema_privilege('order_engine_app', 'order_engine', 'CREATE')
          AND NOT has_schema_privilege('order_engine_admin', 'order_engine', 'CREATE')
          AND NOT has_schema_privilege('public', 'order_engine_archive', 'USAGE')
          AND NOT has_schema_privilege('order_engine_app', 'order_engine_archive', 'USAGE')
          AND has_schema_privilege('order_engine_admin', 'order_engine_archive', 'USAGE')
          AND NOT has_schema_privilege('order_engine_admin', 'order_engine_archive', 'CREATE'),
          'schemas: USAGE as documented, CREATE for nobody');

SELECT is_empty($$SELECT fn FROM ext_fn
                   WHERE prosecdef AND NOT EXISTS (
                       SELECT 1 FROM unnest(proconfig) c
                        WHERE c LIKE 'search\_path=%' AND c ~ '(^|[ ,=])pg_temp$')$$,
                'every SECURITY DEFINER function pins a search_path ending in pg_temp');

SELECT ok(pg_read_file((SELECT setting FROM pg_config WHERE name = 'SHAREDIR')
                       || '/extension/order_engine--0.1.sql') !~* 'create\s+or\s+replace',
          'the base script order_engine--0.1.sql has no CREATE OR REPLACE');

-- Hostile objects: what an unqualified name in our SQL would pick up.
SELECT order_engine.restock(8101001, 50);
SELECT order_engine.set_price(8101001, 2);
CREATE TABLE public.audit_v (id integer PRIMARY KEY, version bigint NOT NULL DEFAULT 1, note text);
INSERT INTO public.audit_v VALUES (1, 1, 'a'), (2, 1, 'b');

CREATE TEMP TABLE orders (order_no bigint, status text);
INSERT INTO orders VALUES (8105005, 'completed');
CREATE TEMP TABLE stock_hold (order_no bigint, sku_id bigint, qty bigint, state text, expires_at timestamptz);
CREATE TEMP TABLE sku (sku_id bigint, nbuckets integer);
CREATE TEMP TABLE id_tags (biz_tag text);
CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE sql AS $$ SELECT '2000-01-01'::timestamptz $$;
CREATE FUNCTION pg_temp.now() RETURNS timestamptz LANGUAGE sql AS $$ SELECT '2000-01-01'::timestamptz $$;
CREATE FUNCTION public.audit_evil_eq(integer, integer) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$;
CREATE OPERATOR public.= (LEFTARG = integer, RIGHTARG = integer, FUNCTION = public.audit_evil_eq);
CREATE FUNCTION public.audit_evil_eq8(bigint, bigint) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$;
CREATE OPERATOR public.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = public.audit_evil_eq8);
SET LOCAL search_path = pg_temp, public, pg_catalog, order_engine;

-- the API under the hostile path; the checks run after it is reset, so
-- that the hostile operator cannot make a comparison of the test pass
CREATE TEMP TABLE hostile_result AS
SELECT order_engine.place_order(8105005, 7, 1, '[{"sku_id": 8101001, "qty": 2}]') AS placed;
ALTER TABLE hostile_result ADD COLUMN status text, ADD COLUMN version bigint;
UPDATE hostile_result SET status = order_engine.order_status(8105005);
UPDATE hostile_result SET version = order_engine.versioned_update('public.audit_v', '{"id": 1}', 1, '{"note": "x"}');
SET LOCAL search_path = DEFAULT;

SELECT is((SELECT placed FROM hostile_result), 'pending_payment',
          'with hostile objects in the path: place_order places');
SELECT is((SELECT status FROM hostile_result), 'pending_payment',
          'order_status reads the real table, not a temp table named orders');
SELECT is((SELECT version FROM hostile_result), 2::bigint,
          'versioned_update with a public = operator in the path bumps the version');
SELECT results_eq($$SELECT id, version, note FROM public.audit_v ORDER BY id$$,
                  $$VALUES (1, 2::bigint, 'x'::text), (2, 1::bigint, 'b'::text)$$,
                  'versioned_update changed only the keyed row');
SELECT is((SELECT available FROM order_engine.stock WHERE sku_id = 8101001), 48::bigint,
          'stock moved by the real delta');

SELECT * FROM finish();
ROLLBACK;
