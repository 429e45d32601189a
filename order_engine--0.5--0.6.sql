/*
 * order_engine 0.5 -> 0.6: the worker's jobs: release_expired,
 * archive_orders, quarantine, per-job worker_status.
 */
\echo Use "ALTER EXTENSION order_engine UPDATE" to load this file. \quit

CREATE TABLE @extschema@.quarantine (
    job         text NOT NULL,
    item        bigint NOT NULL,
    sqlstate    text NOT NULL,
    error       text NOT NULL,
    failed_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (job, item)
);
COMMENT ON TABLE @extschema@.quarantine IS
    'Rows a maintenance job failed on (a hold, an order): skipped until the row here is deleted';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.quarantine', '');

/* hot/cold separation: finished orders move here (archive_orders) */
CREATE SCHEMA order_engine_archive;
COMMENT ON SCHEMA order_engine_archive IS
    'order_engine: finished orders moved out of the live tables by archive_orders';

CREATE TABLE order_engine_archive.orders (
    LIKE @extschema@.orders INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    archived_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (order_no)
);
CREATE INDEX orders_buyer_idx ON order_engine_archive.orders (buyer_id, created_at);
COMMENT ON TABLE order_engine_archive.orders IS
    'Archived orders (same columns as order_engine.orders plus archived_at)';

CREATE TABLE order_engine_archive.order_lines (
    LIKE @extschema@.order_lines INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    PRIMARY KEY (order_no, line_no)
);
COMMENT ON TABLE order_engine_archive.order_lines IS 'Lines of archived orders';

CREATE TABLE order_engine_archive.order_events (
    LIKE @extschema@.order_events INCLUDING CONSTRAINTS,
    PRIMARY KEY (event_id)
);
CREATE INDEX order_events_order_idx ON order_engine_archive.order_events (order_no);
COMMENT ON TABLE order_engine_archive.order_events IS 'Events of archived orders';

CREATE TABLE @extschema@.archive_watermark (
    singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    max_order_no    bigint NOT NULL DEFAULT 0,
    archived_total  bigint NOT NULL DEFAULT 0,
    last_batch_at   timestamptz
);
INSERT INTO @extschema@.archive_watermark DEFAULT VALUES;
COMMENT ON TABLE @extschema@.archive_watermark IS
    'Highest order number archived so far and the running count; updated in the same transaction as each batch';

SELECT pg_catalog.pg_extension_config_dump('order_engine_archive.orders', '');
SELECT pg_catalog.pg_extension_config_dump('order_engine_archive.order_lines', '');
SELECT pg_catalog.pg_extension_config_dump('order_engine_archive.order_events', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.archive_watermark', '');

CREATE FUNCTION @extschema@.archive_orders(older_than interval DEFAULT '90 days',
                                           max_rows integer DEFAULT 1000)
RETURNS integer LANGUAGE C VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_archive_orders';
COMMENT ON FUNCTION @extschema@.archive_orders(interval, integer) IS
    'Moves up to max_rows finished orders older than older_than, with lines and events, to order_engine_archive';

CREATE FUNCTION @extschema@.release_expired(max_rows integer DEFAULT 1000)
RETURNS integer LANGUAGE C VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_release_expired';
COMMENT ON FUNCTION @extschema@.release_expired(integer) IS
    'Releases up to max_rows holds past their expiry (the worker runs it too)';

/* worker_status becomes one row per worker and job */
DROP VIEW @extschema@.worker_status;
DROP FUNCTION @extschema@.worker_status();

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
COMMENT ON FUNCTION @extschema@.worker_status() IS
    'One row per order_engine worker and job: last run, rows, errors, next run (needs shared_preload_libraries)';

CREATE VIEW @extschema@.worker_status AS
    SELECT w.*,
           (SELECT pg_catalog.count(*) FROM @extschema@.quarantine q WHERE q.job = w.job) AS quarantined
      FROM @extschema@.worker_status() w;
COMMENT ON VIEW @extschema@.worker_status IS
    'The order_engine workers per job: last run, rows handled, errors, last error, quarantined rows, next wake-up';

REVOKE ALL ON ALL TABLES IN SCHEMA @extschema@ FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA @extschema@ FROM PUBLIC;
REVOKE ALL ON SCHEMA order_engine_archive FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA order_engine_archive FROM PUBLIC;
GRANT USAGE ON SCHEMA order_engine_archive TO order_engine_admin;
GRANT SELECT ON ALL TABLES IN SCHEMA order_engine_archive TO order_engine_admin;
GRANT SELECT, DELETE ON @extschema@.quarantine TO order_engine_admin;
GRANT SELECT ON @extschema@.archive_watermark TO order_engine_admin;
GRANT EXECUTE ON FUNCTION @extschema@.worker_status() TO order_engine_admin;
GRANT SELECT ON @extschema@.worker_status TO order_engine_admin;
GRANT EXECUTE ON FUNCTION
    @extschema@.archive_orders(interval, integer),
    @extschema@.release_expired(integer)
    TO order_engine_admin;
