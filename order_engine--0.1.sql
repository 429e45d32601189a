/*
 * order_engine 0.1: the foundation.
 *
 * Roles, the schema's privileges and the worker's status.  Every later
 * version adds its objects in order_engine--A--B.sql; CREATE EXTENSION runs
 * this script and then the upgrade chain.
 */
\echo Use "CREATE EXTENSION order_engine" to load this file. \quit

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

COMMENT ON ROLE order_engine_app IS
    'order_engine: may call the application API (stock, orders, ids, idempotency)';
COMMENT ON ROLE order_engine_admin IS
    'order_engine: application rights plus administration and monitoring';

GRANT order_engine_app TO order_engine_admin;

REVOKE ALL ON SCHEMA @extschema@ FROM PUBLIC;
GRANT USAGE ON SCHEMA @extschema@ TO order_engine_app, order_engine_admin;

CREATE FUNCTION @extschema@.worker_status(
    OUT datid oid,
    OUT datname text,
    OUT pid integer,
    OUT state text,
    OUT started_at timestamptz,
    OUT last_round_at timestamptz,
    OUT next_wake_at timestamptz,
    OUT rounds bigint)
RETURNS SETOF record
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED
AS 'MODULE_PATHNAME', 'oe_worker_status';

COMMENT ON FUNCTION @extschema@.worker_status() IS
    'One row per running order_engine worker (needs shared_preload_libraries)';

CREATE VIEW @extschema@.worker_status AS
    SELECT * FROM @extschema@.worker_status();

COMMENT ON VIEW @extschema@.worker_status IS
    'The order_engine workers: database, pid, state, last and next round';

REVOKE ALL ON FUNCTION @extschema@.worker_status() FROM PUBLIC;
REVOKE ALL ON @extschema@.worker_status FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.worker_status() TO order_engine_admin;
GRANT SELECT ON @extschema@.worker_status TO order_engine_admin;
