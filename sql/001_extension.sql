--
-- The extension installs and drops cleanly, and an installation of every
-- earlier version, with data made by that version's functions, updates to
-- the current one keeping the data and working on.  (There is no base
-- script of the current version: a fresh install runs the same chain, so
-- only an update with data in it tests more than a fresh install does.)
--
CREATE EXTENSION order_engine;

SELECT extname, extrelocatable, n.nspname
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE extname = 'order_engine';

-- every earlier version has its update test below: a new release makes
-- its predecessor show up here until one is added
SELECT v.version AS version_without_update_test
  FROM pg_available_extension_versions v
  JOIN pg_available_extensions a ON a.name = v.name
 WHERE v.name = 'order_engine' AND v.version <> a.default_version
   AND v.version NOT IN ('0.1', '0.2', '0.3', '0.4', '0.5', '0.6', '0.7', '0.8', '0.9');

-- the documented roles exist, and the admin role has the app role's rights
SELECT rolname, rolcanlogin FROM pg_roles
 WHERE rolname IN ('order_engine_app', 'order_engine_admin') ORDER BY 1;
SELECT pg_has_role('order_engine_admin', 'order_engine_app', 'MEMBER') AS admin_is_app;

-- nothing of the extension is usable by PUBLIC
SELECT has_schema_privilege('public', 'order_engine', 'USAGE') AS public_schema_usage;

-- the library is preloaded (worker_status needs its shared memory) and the
-- worker of test/postgresql.conf's database has registered its jobs
DO $$
BEGIN
    FOR i IN 1 .. 600 LOOP
        EXIT WHEN EXISTS (SELECT FROM order_engine.worker_status WHERE datname = 'postgres');
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;
SELECT datname, count(*) > 0 AS has_jobs FROM order_engine.worker_status GROUP BY datname;

-- every GUC is reserved under the prefix
SET order_engine.no_such_setting = 1;

DROP EXTENSION order_engine;
-- nothing is left but the (empty) schema CREATE EXTENSION made for it
SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = 'order_engine'::regnamespace)
     + (SELECT count(*) FROM pg_proc WHERE pronamespace = 'order_engine'::regnamespace)
     + (SELECT count(*) FROM pg_type WHERE typnamespace = 'order_engine'::regnamespace)
       AS leftover_objects;

--
-- Updates with data: for each earlier version, install it, fill it with
-- that version's functions, ALTER EXTENSION ... UPDATE, then check that the
-- data is still there and that old and new functions work on it.
--
CREATE TABLE public.upg_ids (kind text, id bigint);
CREATE TABLE public.upg_tokens (token text);

CREATE FUNCTION public.upg_fill(v text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF v >= '0.2' THEN                  -- stock, holds, buckets, limits
        PERFORM order_engine.restock(1001, 10);
        PERFORM order_engine.set_price(1001, 2.5);
        PERFORM order_engine.restock(1002, 20);
        PERFORM order_engine.set_buckets(1002, 4);
        PERFORM order_engine.set_purchase_limit(1001, 5);
        PERFORM order_engine.reserve(1, ARRAY[1001, 1002]::bigint[], ARRAY[2, 3]::bigint[], '1 hour', 77);
        PERFORM order_engine.reserve(2, ARRAY[1001]::bigint[], ARRAY[1]::bigint[]);
        PERFORM order_engine.confirm(2);
        PERFORM order_engine.reserve(3, ARRAY[1002]::bigint[], ARRAY[1]::bigint[]);
        PERFORM order_engine.release(3);
        PERFORM order_engine.try_deduct(1001, 1);
    END IF;
    IF v >= '0.3' THEN                  -- ids
        PERFORM order_engine.create_id_tag('upg', 100, 10);
        INSERT INTO public.upg_ids SELECT 'id', order_engine.next_id('upg');
        INSERT INTO public.upg_ids SELECT 'id', unnest(order_engine.next_ids('upg', 3));
        INSERT INTO public.upg_ids SELECT 'snowflake', order_engine.snowflake_id();
    END IF;
    IF v >= '0.4' THEN                  -- idempotency keys, checkout tokens
        PERFORM order_engine.idem_begin('upg', 'k1', '{"a": 1}');
        PERFORM order_engine.idem_finish('upg', 'k1', '{"done": true}');
        INSERT INTO public.upg_tokens SELECT order_engine.issue_token(5);
    END IF;
    IF v >= '0.5' THEN                  -- orders, payments, the outbox
        PERFORM order_engine.place_order(5077, 77, 1, '[{"sku_id": 1001, "qty": 1}]');
        PERFORM order_engine.pay_order(5077, 'p5077', 2.5);
    END IF;
    IF v >= '0.6' THEN                  -- a claim left open, to be finished by its token
        PERFORM set_config('upg.claim',
            (SELECT claim FROM order_engine.idem_begin('upg', 'k6', '{"six": true}')), false);
    END IF;
    IF v >= '0.7' THEN                  -- a paid order cancelled before shipment: its payment is owed
        PERFORM order_engine.place_order(5178, 78, 1, '[{"sku_id": 1001, "qty": 1}]');
        PERFORM order_engine.pay_order(5178, 'p5178', 2.5);
        PERFORM order_engine.cancel_order(5178);
    END IF;
END $$;

-- one row per check: what, and what it found
CREATE FUNCTION public.upg_check(v text, OUT what text, OUT got text) RETURNS SETOF record
LANGUAGE plpgsql AS $$
DECLARE
    st text;
BEGIN
    what := 'updated to the default version';
    got := (SELECT (e.extversion = a.default_version)::text
              FROM pg_extension e JOIN pg_available_extensions a ON a.name = e.extname
             WHERE e.extname = 'order_engine');
    RETURN NEXT;
    IF v >= '0.2' THEN
        what := 'stock kept';
        got := (SELECT string_agg(format('%s: %s/%s/%s', sku_id, available, held, sold), ', ' ORDER BY sku_id)
                  FROM order_engine.stock WHERE sku_id IN (1001, 1002));
        RETURN NEXT;
        what := 'holds kept';
        got := (SELECT string_agg(format('%s/%s:%s:%s', order_no, sku_id, qty, state), ', ' ORDER BY order_no, sku_id)
                  FROM order_engine.stock_hold);
        RETURN NEXT;
        what := 'audit'; got := (SELECT bool_and(ok)::text FROM order_engine.stock_audit()); RETURN NEXT;
        what := 'old hold confirms'; got := order_engine.confirm(1)::text; RETURN NEXT;
        what := 'new order on old stock';
        got := order_engine.place_order(9001, 77, 1, '[{"sku_id": 1001, "qty": 1}]');
        RETURN NEXT;
        -- buyer 77 has 2 confirmed + 1 pending of SKU 1001; the limit is 5
        what := 'purchase limit kept';
        BEGIN
            got := order_engine.reserve(10, ARRAY[1001]::bigint[], ARRAY[3]::bigint[], '1 hour', 77)::text;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE;
            got := 'error ' || st;
        END;
        RETURN NEXT;
        what := 'stock after';
        got := (SELECT string_agg(format('%s: %s/%s/%s', sku_id, available, held, sold), ', ' ORDER BY sku_id)
                  FROM order_engine.stock WHERE sku_id IN (1001, 1002));
        RETURN NEXT;
        what := 'audit after'; got := (SELECT bool_and(ok)::text FROM order_engine.stock_audit()); RETURN NEXT;
        -- 1.0: a hold is journaled by its row alone, the holds of older
        -- versions (journaled twice in stock_movement) once in stock_journal
        what := 'journal';
        got := (SELECT string_agg(format('%s %s: %s', j.sku_id, j.kind, j.n), ', ' ORDER BY j.sku_id, j.kind)
                  FROM (SELECT sku_id, kind, count(*) AS n FROM order_engine.stock_journal
                         WHERE kind IN ('hold', 'confirm', 'release', 'return') GROUP BY 1, 2) j);
        RETURN NEXT;
        what := 'new holds in stock_movement';
        got := (SELECT count(*) FROM order_engine.stock_movement WHERE order_no IN (1, 9001, 10))::text
            || ' of ' || (SELECT count(*) FROM order_engine.stock_journal WHERE order_no IN (1, 9001, 10));
        RETURN NEXT;
    END IF;
    IF v >= '0.3' THEN
        what := 'next id is new';
        got := (order_engine.next_id('upg') > (SELECT max(id) FROM public.upg_ids WHERE kind = 'id'))::text;
        RETURN NEXT;
        what := 'next snowflake is new';
        got := (order_engine.snowflake_id() > (SELECT max(id) FROM public.upg_ids WHERE kind = 'snowflake'))::text;
        RETURN NEXT;
    END IF;
    IF v >= '0.4' THEN
        what := 'idempotent replay';
        got := (SELECT state || ' ' || response::text FROM order_engine.idem_begin('upg', 'k1', '{"a": 1}'));
        RETURN NEXT;
        what := 'old token consumed once';
        got := order_engine.consume_token(5, (SELECT token FROM public.upg_tokens))::text || ','
            || order_engine.consume_token(5, (SELECT token FROM public.upg_tokens))::text;
        RETURN NEXT;
    END IF;
    IF v >= '0.5' THEN
        what := 'paid order kept';
        got := order_engine.order_status(5077) || ' ' ||
               (SELECT count(*) FROM order_engine.order_events WHERE order_no = 5077)::text || ' events';
        RETURN NEXT;
    END IF;
    IF v >= '0.6' THEN
        what := 'open claim finished by its token';
        PERFORM order_engine.idem_finish('upg', 'k6', '{"r": 6}', current_setting('upg.claim'));
        got := (SELECT state || ' ' || response::text FROM order_engine.idem_begin('upg', 'k6', '{"six": true}'));
        RETURN NEXT;
        what := 'order history';
        got := (SELECT string_agg(order_no || ':' || status, ', ') FROM order_engine.buyer_orders(77));
        RETURN NEXT;
    END IF;
    IF v >= '0.7' THEN
        what := 'payment owed back kept';
        got := (SELECT string_agg(format('%s/%s: %s %s', payment_ref, order_no, amount, order_status), ', ')
                  FROM order_engine.refunds_due);
        RETURN NEXT;
        what := 'old payment refunded';
        got := order_engine.refund_payment('p5178', 'rf5178');
        RETURN NEXT;
        what := 'money ledger';
        got := (SELECT count(*) || ' problems' FROM order_engine.order_audit());
        RETURN NEXT;
    END IF;
    what := 'everything belongs to order_engine_owner';
    got := NOT EXISTS (SELECT FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
                        WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'order_engine')
                          AND d.classid = 'pg_class'::regclass AND d.deptype = 'e'
                          AND c.relowner <> 'order_engine_owner'::regrole)
       AND NOT EXISTS (SELECT FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
                        WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'order_engine')
                          AND d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
                          AND p.proowner <> 'order_engine_owner'::regrole);
    RETURN NEXT;
    -- the current version's functions work on the updated installation
    PERFORM order_engine.restock(1009, 3);
    PERFORM order_engine.set_price(1009, 1);
    what := 'current functions';
    got := order_engine.place_order(9009, 1, 1, '[{"sku_id": 1009, "qty": 1}]') || ' '
        || order_engine.pay_order(9009, 'p9009', 1);
    RETURN NEXT;
    -- 0.8: a checkout quote keeps its price through a price change
    what := 'checkout quote';
    PERFORM set_config('upg.quote', order_engine.quote(1, '[{"sku_id": 1009, "qty": 1}]'), false);
    PERFORM order_engine.set_price(1009, 2);
    got := order_engine.place_order(9019, 1, 1, '[{"sku_id": 1009, "qty": 1}]', '30 minutes',
                                     current_setting('upg.quote'));
    got := got || ' ' || (SELECT total FROM order_engine.orders WHERE order_no = 9019);
    RETURN NEXT;
END $$;

CREATE EXTENSION order_engine VERSION '0.1';
SELECT public.upg_fill('0.1');
ALTER EXTENSION order_engine UPDATE;
SELECT * FROM public.upg_check('0.1');
DROP EXTENSION order_engine;
TRUNCATE public.upg_ids, public.upg_tokens;

CREATE EXTENSION order_engine VERSION '0.2';
SELECT public.upg_fill('0.2');
ALTER EXTENSION order_engine UPDATE;
SELECT * FROM public.upg_check('0.2');
DROP EXTENSION order_engine;
TRUNCATE public.upg_ids, public.upg_tokens;

CREATE EXTENSION order_engine VERSION '0.3';
SELECT public.upg_fill('0.3');
ALTER EXTENSION order_engine UPDATE;
SELECT * FROM public.upg_check('0.3');
DROP EXTENSION order_engine;
TRUNCATE public.upg_ids, public.upg_tokens;

CREATE EXTENSION order_engine VERSION '0.4';
SELECT public.upg_fill('0.4');
ALTER EXTENSION order_engine UPDATE;
SELECT * FROM public.upg_check('0.4');
DROP EXTENSION order_engine;
TRUNCATE public.upg_ids, public.upg_tokens;

CREATE EXTENSION order_engine VERSION '0.5';
SELECT public.upg_fill('0.5');
ALTER EXTENSION order_engine UPDATE;
SELECT * FROM public.upg_check('0.5');
DROP EXTENSION order_engine;
TRUNCATE public.upg_ids, public.upg_tokens;

CREATE EXTENSION order_engine VERSION '0.6';
SELECT public.upg_fill('0.6');
ALTER EXTENSION order_engine UPDATE;
SELECT * FROM public.upg_check('0.6');
DROP EXTENSION order_engine;
TRUNCATE public.upg_ids, public.upg_tokens;

CREATE EXTENSION order_engine VERSION '0.7';
SELECT public.upg_fill('0.7');
ALTER EXTENSION order_engine UPDATE;
SELECT * FROM public.upg_check('0.7');
DROP EXTENSION order_engine;
TRUNCATE public.upg_ids, public.upg_tokens;

CREATE EXTENSION order_engine VERSION '0.8';
SELECT public.upg_fill('0.8');
ALTER EXTENSION order_engine UPDATE;
SELECT * FROM public.upg_check('0.8');
DROP EXTENSION order_engine;
TRUNCATE public.upg_ids, public.upg_tokens;

CREATE EXTENSION order_engine VERSION '0.9';
SELECT public.upg_fill('0.9');
-- 0.9: an escrow SKU, a hold folded, one not, one released (the counter
-- hands out units from the commit of set_escrow on)
SELECT order_engine.restock(1003, 10);
SELECT order_engine.set_escrow(1003);
SELECT order_engine.reserve(11, ARRAY[1003]::bigint[], ARRAY[2]::bigint[]);
SELECT order_engine.fold_escrow();
SELECT order_engine.reserve(12, ARRAY[1003]::bigint[], ARRAY[1]::bigint[]);
SELECT order_engine.reserve(13, ARRAY[1003]::bigint[], ARRAY[3]::bigint[]);
SELECT order_engine.release(13);
-- the library journals each hold while the schema is older than 1.0: the
-- audit of 0.9 sums stock_movement alone
SELECT bool_and(ok) AS audit_of_0_9 FROM order_engine.stock_audit();
ALTER EXTENSION order_engine UPDATE;
SELECT * FROM public.upg_check('0.9');
-- 1.0 folds and releases the escrow holds 0.9 made without a journal row;
-- each hold is in stock_journal once
SELECT order_engine.fold_escrow() AS folded;
SELECT order_engine.release(11) + order_engine.release(12) AS released;
SELECT count(*) AS journal_rows_of_1_0 FROM order_engine.stock_movement
 WHERE order_no IN (11, 12) AND movement_id > (SELECT max(movement_id) FROM order_engine.stock_movement
                                               WHERE order_no = 13);
SELECT order_no, kind, d_available, d_held, d_sold FROM order_engine.stock_journal
 WHERE sku_id = 1003 ORDER BY order_no NULLS FIRST, kind;
SELECT ok, detail FROM order_engine.stock_audit() WHERE sku_id = 1003;
DROP EXTENSION order_engine;

DROP FUNCTION public.upg_fill(text), public.upg_check(text);
DROP TABLE public.upg_ids, public.upg_tokens;

-- the installation the other files of this suite use
CREATE EXTENSION order_engine;
