-- Privilege audit of the installed extension: nothing for PUBLIC, every
-- SECURITY DEFINER function pins its search_path, the documented roles
-- exist.  Generic over every object the extension owns, so it covers the
-- objects that later versions add.
BEGIN;
SELECT plan(7);

SELECT has_role('order_engine_app', 'the application role exists');
SELECT has_role('order_engine_admin', 'the admin role exists');

SELECT is_empty($$
    SELECT p.oid::regprocedure::text
      FROM pg_depend d JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
     WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
       AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'order_engine')
       AND has_function_privilege('public', p.oid, 'EXECUTE')
$$, 'no function of the extension is executable by PUBLIC');

SELECT is_empty($$
    SELECT c.oid::regclass::text
      FROM pg_depend d JOIN pg_class c ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
     WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
       AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'order_engine')
       AND (has_table_privilege('public', c.oid, 'SELECT')
            OR has_table_privilege('public', c.oid, 'INSERT')
            OR has_table_privilege('public', c.oid, 'UPDATE')
            OR has_table_privilege('public', c.oid, 'DELETE')
            OR has_table_privilege('public', c.oid, 'TRUNCATE'))
$$, 'no table, view or sequence of the extension is usable by PUBLIC');

SELECT ok(NOT has_schema_privilege('public', 'order_engine', 'USAGE')
          AND NOT has_schema_privilege('public', 'order_engine', 'CREATE'),
          'PUBLIC has neither USAGE nor CREATE on the schema');

SELECT is_empty($$
    SELECT p.oid::regprocedure::text
      FROM pg_proc p
     WHERE p.pronamespace = 'order_engine'::regnamespace
       AND p.prosecdef
       AND NOT coalesce(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false)
$$, 'every SECURITY DEFINER function sets search_path = pg_catalog, pg_temp');

SELECT ok(has_schema_privilege('order_engine_app', 'order_engine', 'USAGE'),
          'the application role may use the schema');

SELECT * FROM finish();
ROLLBACK;
