-- Least privilege (README "Security"): every object of the extension
-- belongs to order_engine_owner, a NOLOGIN role that is not superuser,
-- has no special attributes and no members; no object of ours belongs to
-- a superuser; every SECURITY DEFINER function pins its search_path; the
-- owner role holds no rights outside the extension's schemas.
BEGIN;
SELECT plan(12);

SELECT has_role('order_engine_owner', 'the owner role exists');

SELECT is(
    (SELECT ROW(rolsuper, rolcanlogin, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls)::text
       FROM pg_roles WHERE rolname = 'order_engine_owner'),
    '(f,f,f,f,f,f)',
    'order_engine_owner: no superuser, no login, no CREATEROLE/CREATEDB/REPLICATION/BYPASSRLS');

SELECT is_empty(
    $$SELECT m.member::regrole::text FROM pg_auth_members m
       WHERE m.roleid = 'order_engine_owner'::regrole$$,
    'nobody is a member of order_engine_owner');

SELECT is_empty(
    $$SELECT r.roleid::regrole::text FROM pg_auth_members r
       WHERE r.member = 'order_engine_owner'::regrole$$,
    'order_engine_owner is a member of no role');

-- every member object of the extension, by catalog
CREATE TEMP VIEW ext_objects AS
    SELECT pg_describe_object(d.classid, d.objid, d.objsubid) AS obj,
           CASE d.classid
               WHEN 'pg_class'::regclass THEN (SELECT relowner FROM pg_class WHERE oid = d.objid)
               WHEN 'pg_proc'::regclass THEN (SELECT proowner FROM pg_proc WHERE oid = d.objid)
               WHEN 'pg_namespace'::regclass THEN (SELECT nspowner FROM pg_namespace WHERE oid = d.objid)
               WHEN 'pg_type'::regclass THEN (SELECT typowner FROM pg_type WHERE oid = d.objid)
           END AS owner
      FROM pg_depend d
     WHERE d.refclassid = 'pg_extension'::regclass
       AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'order_engine')
       AND d.deptype = 'e';

SELECT cmp_ok((SELECT count(*) FROM ext_objects), '>', 50::bigint,
              'the audit sees the extension''s objects');

SELECT is_empty(
    $$SELECT obj FROM ext_objects
       WHERE owner IS NOT NULL AND owner <> 'order_engine_owner'::regrole$$,
    'every object of the extension belongs to order_engine_owner');

SELECT is_empty(
    $$SELECT c.oid::regclass::text FROM pg_class c
       WHERE c.relnamespace IN ('order_engine'::regnamespace, 'order_engine_archive'::regnamespace)
         AND (SELECT rolsuper FROM pg_roles WHERE oid = c.relowner)$$,
    'no relation in our schemas (runtime ones included) belongs to a superuser');

SELECT is_empty(
    $$SELECT p.oid::regprocedure::text FROM pg_proc p
       WHERE p.pronamespace = 'order_engine'::regnamespace
         AND (SELECT rolsuper FROM pg_roles WHERE oid = p.proowner)$$,
    'no function of ours belongs to a superuser');

SELECT is_empty(
    $$SELECT n.nspname::text FROM pg_namespace n
       WHERE n.nspname IN ('order_engine', 'order_engine_archive')
         AND n.nspowner <> 'order_engine_owner'::regrole$$,
    'both schemas belong to order_engine_owner');

SELECT is_empty(
    $$SELECT p.oid::regprocedure::text FROM pg_proc p
       WHERE p.pronamespace = 'order_engine'::regnamespace AND p.prosecdef
         AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)$$,
    'every SECURITY DEFINER function pins search_path to pg_catalog, pg_temp');

SELECT ok(NOT has_database_privilege('order_engine_owner', current_database(), 'CREATE')
          AND NOT has_schema_privilege('order_engine_owner', 'public', 'CREATE'),
          'order_engine_owner may not create objects outside its schemas');

-- the C entry points that are not SECURITY DEFINER switch to the role
-- themselves (src/internal_sql.c): a call as the application role works
-- although the role has no rights on the tables
SET LOCAL ROLE order_engine_app;
SELECT lives_ok($$SELECT order_engine.next_order_no(7)$$,
                'an internal statement runs as the owner, not as the caller');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
