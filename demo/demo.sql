-- The order_engine demo: what is installed, how it is configured, and the
-- worker that serves this database.
\pset footer off
\echo
\echo '-- the extension'
SELECT extname, extversion FROM pg_extension WHERE extname = 'order_engine';

\echo '-- its settings'
SELECT name, setting, unit, short_desc
  FROM pg_settings WHERE name LIKE 'order_engine.%' ORDER BY name;

\echo '-- the worker (it may take a second to report its first round)'
SELECT pg_sleep(1.5);
SELECT DISTINCT datname, pid, state, started_at, rounds FROM order_engine.worker_status;
SELECT job, last_run_at, total_rows, errors, next_run_at FROM order_engine.worker_status ORDER BY job;
SELECT pid, backend_type, datname, wait_event_type
  FROM pg_stat_activity WHERE backend_type LIKE 'order_engine%' ORDER BY backend_type;
