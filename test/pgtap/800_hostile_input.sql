-- Hostile-input sweep: EVERY SQL function of the extension (read from
-- pg_proc through the extension's dependencies, so functions added later
-- are swept too) is called with hostile argument values: NULLs, zero,
-- -1, the extremes of bigint and integer, overflowing numerics, NaN and
-- Infinity, empty and 1 MB strings, jsonb of every wrong shape and deeply
-- nested, huge and multi-dimensional arrays, unknown ids, negative and
-- huge intervals.  Each call runs in its own subtransaction (and is rolled
-- back, so calls do not depend on each other); an error must carry one of
-- the SQLSTATEs documented in README's table, never XX000, and the
-- backend must survive.  A call that returns is checked for forbidden
-- effects inside its subtransaction, before the rollback hides them: the
-- fixture table and every relation there was at the start still exist, the
-- fixture row is still the only row, no role was made or changed, the
-- caller's user and search_path are back, and the stock books balance.
-- Each call's outcome (returned, or which SQLSTATE) is recorded.  The
-- sweep runs as a superuser (deepest paths) and as a role holding only
-- order_engine_app.
BEGIN;
SELECT plan(10);

CREATE SCHEMA hostile;
-- the application-role sweep's role (made here, before the role snapshot)
CREATE ROLE hostile_app NOLOGIN IN ROLE order_engine_app;
-- a table versioned_update may work on
CREATE TABLE hostile.t (id integer PRIMARY KEY, version bigint NOT NULL DEFAULT 1, note text);
INSERT INTO hostile.t VALUES (1, 1, 'n');
CREATE SEQUENCE hostile.s;

-- fixtures the baseline arguments point at
SELECT order_engine.restock(8001001, 100);
SELECT order_engine.set_price(8001001, 10);
SELECT order_engine.place_order(8005005, 7, 9, '[{"sku_id": 8001001, "qty": 1}]');
SELECT order_engine.create_id_tag('hostile_tag', 1, 10);
SELECT order_engine.issue_token(7);
-- a checkout quote of the baseline's buyer and lines: the baseline
-- place_order uses it (each call rolls back, so every call finds it)
CREATE TEMP TABLE hostile_quote AS
    SELECT order_engine.quote(7, '[{"sku_id": 8001001, "qty": 1}]', '1 day') AS token;

-- The documented SQLSTATEs (README, "SQLSTATEs").
CREATE TABLE hostile.allowed (sqlstate text PRIMARY KEY);
INSERT INTO hostile.allowed VALUES
    ('21000'), ('22003'), ('22004'), ('22023'), ('22P02'), ('25006'), ('42501'),
    ('42703'), ('42809'), ('42P01'), ('53400'), ('55000'),
    ('OE001'), ('OE002'), ('OE003'), ('OE004'), ('OE005'), ('OE006'),
    ('OE007'), ('OE008'), ('OE009'), ('OE010'), ('OE011'), ('OE012'),
    ('OE013'), ('OE014'), ('OE015'), ('OE016'), ('OE017'), ('OE018'),
    ('OE019'), ('OE020'), ('OE021'), ('OE022'), ('OE023'), ('OE024'), ('OE025'),
    ('OE026');

-- Hostile values per type, as text; each is cast to its type here, so a
-- value that is not even valid input fails now, not inside the sweep.
CREATE TABLE hostile.val (typ regtype, label text, val text);
INSERT INTO hostile.val VALUES
    ('bigint', 'null', NULL), ('bigint', '0', '0'), ('bigint', '1', '1'),
    ('bigint', '-1', '-1'), ('bigint', 'max', '9223372036854775807'),
    ('bigint', 'min', '-9223372036854775808'), ('bigint', 'max-1', '9223372036854775806'),
    ('bigint', 'unknown', '987654321'), ('bigint', 'sku', '8001001'),
    ('bigint', 'order', '8005005'), ('bigint', '2^31', '2147483648'),
    ('integer', 'null', NULL), ('integer', '0', '0'), ('integer', '1', '1'),
    ('integer', '-1', '-1'), ('integer', 'max', '2147483647'),
    ('integer', 'min', '-2147483648'), ('integer', '1025', '1025'),
    ('integer', '1000001', '1000001'), ('integer', '100001', '100001'),
    ('numeric', 'null', NULL), ('numeric', '0', '0'), ('numeric', '-1', '-1'),
    ('numeric', '10', '10'), ('numeric', 'tiny', '0.000000000000000000001'),
    ('numeric', 'NaN', 'NaN'), ('numeric', 'Infinity', 'Infinity'),
    ('numeric', '-Infinity', '-Infinity'), ('numeric', '1e1000', '1e1000'),
    ('numeric', '-1e1000', '-1e1000'), ('numeric', '2^63', '9223372036854775808'),
    ('numeric', '1e-1000', '1e-1000'), ('numeric', '10.0000000001', '10.0000000001'),
    ('text', 'null', NULL), ('text', 'empty', ''), ('text', 'x', 'x'),
    ('text', '1MB', repeat('x', 1048576)), ('text', '63', repeat('a', 63)),
    ('text', '64', repeat('a', 64)), ('text', '65', repeat('a', 65)),
    ('text', '255', repeat('k', 255)), ('text', '256', repeat('k', 256)),
    ('text', 'quote', $q$'"; DROP TABLE hostile.t; --$q$),
    ('text', 'utf8', repeat('é', 40)), ('text', 'space', ' '),
    ('text', 'tag', 'hostile_tag'), ('text', 'order_no', 'order_no'),
    ('text', 'scope', 'hs'), ('text', 'newline', E'a\nb'),
    ('text', 'token shape', repeat('A', 43)), ('text', 'quote', (SELECT token FROM hostile_quote)),
    ('jsonb', 'null', NULL), ('jsonb', 'json null', 'null'), ('jsonb', '{}', '{}'),
    ('jsonb', '[]', '[]'), ('jsonb', 'string', '"s"'), ('jsonb', 'number', '1'),
    ('jsonb', 'true', 'true'), ('jsonb', '1e1000', '1e1000'),
    ('jsonb', 'nested arrays', repeat('[', 5000) || repeat(']', 5000)),
    ('jsonb', 'nested objects', repeat('{"a":', 5000) || '1' || repeat('}', 5000)),
    ('jsonb', 'line', '[{"sku_id": 8001001, "qty": 1}]'),
    ('jsonb', 'line null', '[{"sku_id": null, "qty": null}]'),
    ('jsonb', 'line huge', '[{"sku_id": 1e30, "qty": 1e30}]'),
    ('jsonb', 'line neg', '[{"sku_id": -1, "qty": -1}]'),
    ('jsonb', 'line max', '[{"sku_id": 9223372036854775807, "qty": 9223372036854775807}]'),
    ('jsonb', 'line frac', '[{"sku_id": 8001001.5, "qty": 1}]'),
    ('jsonb', 'line strings', '[{"sku_id": "8001001", "qty": "1"}]'),
    ('jsonb', 'line nested', '[{"sku_id": [8001001], "qty": {"a": 1}}]'),
    ('jsonb', 'line twice', '[{"sku_id": 8001001, "qty": 1}, {"sku_id": 8001001, "qty": 1}]'),
    ('jsonb', '101 lines', (SELECT jsonb_agg(jsonb_build_object('sku_id', i, 'qty', 1)) FROM generate_series(1, 101) i)::text),
    ('jsonb', '10000 elements', (SELECT jsonb_agg(i) FROM generate_series(1, 10000) i)::text),
    ('jsonb', 'key id', '{"id": 1}'), ('jsonb', 'key id null', '{"id": null}'),
    ('jsonb', 'key id string', '{"id": "x"}'), ('jsonb', 'key id big', '{"id": 1e30}'),
    ('jsonb', 'key id object', '{"id": {"a": 1}}'), ('jsonb', 'key unknown', '{"nope": 1}'),
    ('jsonb', 'key version', '{"version": 1}'), ('jsonb', 'key order_no', '{"order_no": 8005005}'),
    ('jsonb', 'change note', '{"note": "n"}'), ('jsonb', 'change note 1MB', jsonb_build_object('note', repeat('x', 1048576))::text),
    ('jsonb', 'change logistics', '{"logistics_no": "L"}'), ('jsonb', 'change address', '{"address": {"a": [1]}}'),
    ('jsonb', 'change empty name', '{"": 1}'), ('jsonb', 'change quote name', '{"note\"; DROP TABLE hostile.t; --": 1}'),
    ('jsonb', 'change ctid', '{"ctid": "(0,1)"}'), ('jsonb', 'change xmin', '{"xmin": 1}'),
    ('jsonb', 'change tableoid', '{"tableoid": 1}'),
    ('interval', 'null', NULL), ('interval', '0', '0'), ('interval', '-1s', '-1 second'),
    ('interval', '1us', '1 microsecond'), ('interval', '1h', '1 hour'),
    ('interval', '7d', '7 days'), ('interval', '7d1us', '7 days 1 microsecond'),
    ('interval', '1mon', '1 month'), ('interval', 'huge', '178000000 years'),
    ('interval', '-huge', '-178000000 years'), ('interval', 'maxdays', '2147483647 days'),
    ('interval', 'mindays', '-2147483648 days'), ('interval', 'maxus', '2562047788 hours'),
    ('interval', 'mixed', '1 month -31 days'),
    ('bigint[]', 'null', NULL), ('bigint[]', '{}', '{}'), ('bigint[]', '{NULL}', '{NULL}'),
    ('bigint[]', '{1,NULL}', '{1,NULL}'), ('bigint[]', '{-1}', '{-1}'), ('bigint[]', '{0}', '{0}'),
    ('bigint[]', '{max}', '{9223372036854775807}'), ('bigint[]', '{min}', '{-9223372036854775808}'),
    ('bigint[]', '{sku}', '{8001001}'), ('bigint[]', '{1}', '{1}'),
    ('bigint[]', '2-D', '{{8001001,1},{1,1}}'), ('bigint[]', 'lower bound 5', '[5:5]={8001001}'),
    ('bigint[]', '{sku,sku}', '{8001001,8001001}'),
    ('bigint[]', '100000', (SELECT array_agg(i) FROM generate_series(1, 100000) i)::text),
    ('regclass', 'null', NULL), ('regclass', 'hostile.t', 'hostile.t'::regclass::oid::text),
    ('regclass', 'pg_class', 'pg_class'::regclass::oid::text),
    ('regclass', 'orders', 'order_engine.orders'::regclass::oid::text),
    ('regclass', 'stock view', 'order_engine.stock'::regclass::oid::text),
    ('regclass', 'sequence', 'hostile.s'::regclass::oid::text),
    ('regclass', 'oid 0', '0'), ('regclass', 'dangling oid', '999999999'),
    ('regclass', 'id_tags', 'order_engine.id_tags'::regclass::oid::text);

-- regclass values are stored as oids (the text cast would look names up)
CREATE FUNCTION hostile.cast_of(t regtype) RETURNS text LANGUAGE sql IMMUTABLE
AS $$ SELECT CASE WHEN t = 'regclass'::regtype THEN 'oid::regclass' ELSE t::text END $$;

DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT * FROM hostile.val LOOP
        EXECUTE format('SELECT $1::%s', hostile.cast_of(r.typ)) USING r.val;
    END LOOP;
END $$;

-- The baseline: a valid argument per parameter name (per function where
-- one needs another: fn); a sweep varies one argument at a time from it,
-- then all of them together.
CREATE TABLE hostile.base (argname text, val text, fn name, UNIQUE NULLS NOT DISTINCT (argname, fn));
INSERT INTO hostile.base (argname, val) VALUES
    ('sku_id', '8001001'), ('order_no', '8005005'), ('buyer_id', '7'), ('seller_id', '9'),
    ('delta', '5'), ('qty', '1'), ('price', '10'), ('n', '2'), ('per_buyer', '5'),
    ('reason', 'r'), ('biz_tag', 'hostile_tag'), ('start_id', '1'), ('step', '10'),
    ('description', 'd'), ('scope', 'hs'), ('key', NULL), ('request', '{"a": 1}'),
    ('ttl', '1 hour'), ('response', '{"r": 1}'), ('token', 'abc'), ('max_rows', '10'),
    ('rel', 'hostile.t'::regclass::oid::text), ('expected_version', '1'), ('changes', '{"note": "n"}'),
    ('lines', '[{"sku_id": 8001001, "qty": 1}]'), ('pay_within', '1 hour'),
    ('payment_ref', 'p1'), ('amount', '10'), ('logistics_no', 'L1'),
    ('event_ids', '{1}'), ('older_than', '0'), ('sku_ids', '{8001001}'), ('qtys', '{1}'),
    ('quote', (SELECT token FROM hostile_quote));
-- place_order of the fixture order's number is a repeat, which answers
-- before the quote is looked at: a new number takes the quote path
INSERT INTO hostile.base (argname, val, fn) VALUES ('order_no', '8005006', 'place_order');

CREATE TABLE hostile.failure (fn text, args text, sqlstate text, message text);
CREATE TABLE hostile.tally (who text, fn regprocedure, calls integer);
CREATE TABLE hostile.outcome (who text, fn regprocedure, outcome text);
-- every relation there is now, and the roles, to see that no call drops or
-- makes one (a successful injection would)
CREATE TABLE hostile.rels AS SELECT oid FROM pg_class;
CREATE TABLE hostile.roles AS SELECT oid, rolname, rolsuper, rolcreaterole, rolcanlogin FROM pg_roles;
CREATE TABLE hostile.members AS SELECT roleid, member, admin_option FROM pg_auth_members;
-- the order_engine processes, to see that none died during the sweep
CREATE TABLE hostile.procs AS
    SELECT pid, backend_type FROM pg_stat_activity WHERE backend_type LIKE 'order_engine%';

-- What a returning call must not have done (NULL: nothing); run inside
-- the call's subtransaction, so it sees what the rollback will undo.
CREATE FUNCTION hostile.broken(caller name, path text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE msg text;
BEGIN
    IF current_user <> caller THEN
        RETURN 'current_user is ' || current_user || ' after the call, not ' || caller;
    END IF;
    IF current_setting('search_path') <> path THEN
        RETURN 'search_path is ' || current_setting('search_path') || ' after the call';
    END IF;
    IF to_regclass('hostile.t') IS NULL THEN
        RETURN 'hostile.t was dropped';
    END IF;
    IF EXISTS (SELECT FROM hostile.rels r WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = r.oid)) THEN
        RETURN 'a relation was dropped: ' || (SELECT min(r.oid)::text FROM hostile.rels r
            WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = r.oid));
    END IF;
    IF (SELECT count(*) FROM hostile.t) <> 1 OR NOT EXISTS (SELECT FROM hostile.t WHERE id = 1) THEN
        RETURN 'rows of hostile.t were added or deleted';
    END IF;
    IF EXISTS (SELECT oid, rolname, rolsuper, rolcreaterole, rolcanlogin FROM pg_roles
               EXCEPT SELECT * FROM hostile.roles)
       OR (SELECT count(*) FROM pg_roles) <> (SELECT count(*) FROM hostile.roles) THEN
        RETURN 'a role was made or changed';
    END IF;
    IF EXISTS (SELECT roleid, member, admin_option FROM pg_auth_members EXCEPT SELECT * FROM hostile.members)
       OR (SELECT count(*) FROM pg_auth_members) <> (SELECT count(*) FROM hostile.members) THEN
        RETURN 'a role membership was granted or revoked';
    END IF;
    -- (the audit is the admin's; the superuser sweep runs the same paths;
    -- nested IFs, since SQL's AND does not promise an order)
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        IF EXISTS (SELECT FROM order_engine.stock_audit() WHERE NOT ok) THEN
            RETURN 'stock books do not balance: ' || (SELECT min(detail) FROM order_engine.stock_audit() WHERE NOT ok);
        END IF;
    END IF;
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
    RETURN 'the check itself failed: ' || msg;
END $f$;

-- One call: the error's SQLSTATE, or 'returned'.  A returning call is
-- checked (hostile.broken), then rolled back too (by a private error code)
-- so that every call sees the same fixtures; what the check found is
-- written after the rollback, so that it stays.
CREATE FUNCTION hostile.try_call(fn regprocedure, sql text, vals text[])
RETURNS text LANGUAGE plpgsql AS $f$
DECLARE
    st text; msg text; bad text;
    caller name := current_user;
    path text := current_setting('search_path');
BEGIN
    BEGIN
        EXECUTE sql USING vals;
        bad := hostile.broken(caller, path);
        RAISE EXCEPTION 'rollback' USING ERRCODE = 'ZX999';
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
        IF st = 'ZX999' THEN
            st := 'returned';
            IF bad IS NOT NULL THEN
                INSERT INTO hostile.failure VALUES (fn::text,
                    (SELECT string_agg(coalesce(left(v, 40), 'NULL'), ', ') FROM unnest(vals) v),
                    'effect', left(bad, 200));
            END IF;
        ELSIF NOT EXISTS (SELECT 1 FROM hostile.allowed a WHERE a.sqlstate = st) THEN
            INSERT INTO hostile.failure VALUES (fn::text,
                (SELECT string_agg(coalesce(left(v, 40), 'NULL'), ', ') FROM unnest(vals) v),
                st, left(msg, 200));
        END IF;
        INSERT INTO hostile.outcome VALUES (current_setting('hostile.who'), fn, st);
        RETURN st;
    END;
END $f$;

-- Sweep every function of the extension; returns the number of calls.
CREATE FUNCTION hostile.sweep(who text) RETURNS integer LANGUAGE plpgsql AS $f$
DECLARE
    f record;
    sql text;
    basev text[];
    v text[];
    i integer;
    k integer;
    calls integer := 0;
    fcalls integer;
    h record;
    c integer;
BEGIN
    PERFORM setseed(0.42);
    PERFORM set_config('hostile.who', who, true);
    FOR f IN
        SELECT p.oid::regprocedure AS fn, p.proname, ARRAY(SELECT t::regtype FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY u(t, o) ORDER BY o) AS types,
               coalesce(p.proargnames, '{}') AS names, p.pronargs AS nargs
          FROM pg_depend d JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
         WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
           AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'order_engine')
           AND p.prorettype <> 'trigger'::regtype   -- not callable; the trigger's own tests cover it
         ORDER BY 1
    LOOP
        fcalls := 0;
        sql := format('SELECT sum(length(r::text)) FROM %s(%s) AS r', f.fn::oid::regproc,
                      (SELECT coalesce(string_agg(format('($1[%s])::%s', j, hostile.cast_of(f.types[j])), ', ' ORDER BY j), '')
                         FROM generate_series(1, f.nargs) j));
        -- baseline values, by parameter name, else the type's second value
        basev := ARRAY(
            SELECT coalesce((SELECT b.val FROM hostile.base b WHERE b.argname = f.names[j]
                               AND (b.fn IS NULL OR b.fn = f.proname)
                               AND (f.types[j] <> 'jsonb'::regtype OR b.val LIKE '{%' OR b.val LIKE '[%')
                             ORDER BY b.fn IS NULL LIMIT 1),
                            CASE f.types[j]
                                WHEN 'jsonb'::regtype THEN '{"id": 1}'
                                WHEN 'text'::regtype THEN 'hk'
                                ELSE (SELECT hv.val FROM hostile.val hv WHERE hv.typ = f.types[j]
                                       AND hv.val IS NOT NULL ORDER BY hv.label LIMIT 1) END)
              FROM generate_series(1, f.nargs) j ORDER BY j);
        PERFORM hostile.try_call(f.fn, sql, basev);
        fcalls := fcalls + 1;
        -- one argument at a time through every value of its type
        FOR i IN 1 .. f.nargs LOOP
            FOR h IN SELECT val FROM hostile.val WHERE typ = f.types[i] LOOP
                v := basev;
                v[i] := h.val;
                PERFORM hostile.try_call(f.fn, sql, v);
                fcalls := fcalls + 1;
            END LOOP;
        END LOOP;
        -- all NULL, and random mixtures of hostile values
        IF f.nargs > 0 THEN
            PERFORM hostile.try_call(f.fn, sql, array_fill(NULL::text, ARRAY[f.nargs]));
            fcalls := fcalls + 1;
            FOR k IN 1 .. 40 LOOP
                v := ARRAY(SELECT (SELECT hv.val FROM hostile.val hv
                                    WHERE hv.typ = f.types[j] AND j > 0
                                    ORDER BY random() LIMIT 1)
                             FROM generate_series(1, f.nargs) j ORDER BY j);
                PERFORM hostile.try_call(f.fn, sql, v);
                fcalls := fcalls + 1;
            END LOOP;
        END IF;
        INSERT INTO hostile.tally VALUES (who, f.fn, fcalls);
        calls := calls + fcalls;
    END LOOP;
    RETURN calls;
END $f$;

SET LOCAL statement_timeout = '600s';

SELECT cmp_ok(hostile.sweep('superuser'), '>', 2000, 'the sweep as superuser made its calls');

-- the same as a role that holds only the application role
GRANT USAGE ON SCHEMA hostile TO hostile_app;
GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA hostile TO hostile_app;
GRANT SELECT ON hostile.t TO hostile_app;
SET LOCAL ROLE hostile_app;
SELECT cmp_ok(hostile.sweep('app'), '>', 2000, 'the sweep as the application role made its calls');
RESET ROLE;

SELECT is((SELECT count(DISTINCT fn)::integer FROM hostile.tally WHERE who = 'superuser'),
          (SELECT count(*)::integer FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
            WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
              AND d.classid = 'pg_proc'::regclass AND p.prorettype <> 'trigger'::regtype
              AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'order_engine')),
          'every function of the extension was swept');

SELECT is_empty($$SELECT * FROM hostile.failure WHERE sqlstate = 'XX000'$$,
                'no call reached XX000 (internal error)');
SELECT is_empty($$SELECT * FROM hostile.failure WHERE sqlstate NOT IN ('XX000', 'effect')$$,
                'every error carries a documented SQLSTATE');
SELECT is_empty($$SELECT * FROM hostile.failure WHERE sqlstate = 'effect'$$,
                'no returning call dropped, added, deleted or escalated anything, or left its user or search_path changed');

-- the sweep reaches past the argument checks: calls return, as both roles
SELECT cmp_ok((SELECT count(*)::integer FROM hostile.outcome WHERE who = 'superuser' AND outcome = 'returned'),
              '>', 500, 'many calls as superuser returned (and were checked for effects)');
SELECT cmp_ok((SELECT count(*)::integer FROM hostile.outcome WHERE who = 'app' AND outcome = 'returned'),
              '>', 100, 'many calls as the application role returned (and were checked for effects)');
SELECT is((SELECT count(*)::integer FROM hostile.outcome), (SELECT sum(calls)::integer FROM hostile.tally),
          'every call has its outcome recorded');

-- for the reader: functions no call of which returned, per role
SELECT diag('never returned as ' || who || ': ' || string_agg(fn::text, ', ' ORDER BY fn::text))
  FROM (SELECT who, fn FROM hostile.outcome GROUP BY who, fn
         HAVING count(*) FILTER (WHERE outcome = 'returned') = 0) n
 GROUP BY who;

SELECT is_empty($$SELECT pid, backend_type FROM hostile.procs
                  EXCEPT SELECT pid, backend_type FROM pg_stat_activity$$,
                'no order_engine process died during the sweep');

SELECT * FROM finish();
ROLLBACK;
