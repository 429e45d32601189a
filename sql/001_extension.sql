--
-- The extension installs, drops and walks its upgrade chain cleanly.
--
CREATE EXTENSION order_engine;

SELECT extname, extrelocatable, n.nspname
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE extname = 'order_engine';

-- the installed version is the default one
SELECT e.extversion = a.default_version AS at_default_version
  FROM pg_extension e JOIN pg_available_extensions a ON a.name = e.extname
 WHERE e.extname = 'order_engine';

-- the documented roles exist, and the admin role has the app role's rights
SELECT rolname, rolcanlogin FROM pg_roles
 WHERE rolname IN ('order_engine_app', 'order_engine_admin') ORDER BY 1;
SELECT pg_has_role('order_engine_admin', 'order_engine_app', 'MEMBER') AS admin_is_app;

-- nothing of the extension is usable by PUBLIC
SELECT has_schema_privilege('public', 'order_engine', 'USAGE') AS public_schema_usage;

-- the worker table is readable (this server preloads the library)
SELECT count(*) >= 0 AS status_readable FROM order_engine.worker_status;

-- every GUC is reserved under the prefix
SET order_engine.no_such_setting = 1;

DROP EXTENSION order_engine;
-- nothing is left but the (empty) schema CREATE EXTENSION made for it
SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = 'order_engine'::regnamespace)
     + (SELECT count(*) FROM pg_proc WHERE pronamespace = 'order_engine'::regnamespace)
     + (SELECT count(*) FROM pg_type WHERE typnamespace = 'order_engine'::regnamespace)
       AS leftover_objects;

-- the upgrade chain: oldest version, then ALTER EXTENSION ... UPDATE
CREATE EXTENSION order_engine VERSION '0.1';
ALTER EXTENSION order_engine UPDATE;
SELECT e.extversion = a.default_version AS updated_to_default
  FROM pg_extension e JOIN pg_available_extensions a ON a.name = e.extname
 WHERE e.extname = 'order_engine';
