/*
 * order_engine 0.4 -> 0.5: orders, order lines, payments, the outbox, and
 * the maintenance jobs (release_expired, close_unpaid, archive_orders).
 */
\echo Use "ALTER EXTENSION order_engine UPDATE" to load this file. \quit

CREATE TABLE @extschema@.orders (
    order_no        bigint PRIMARY KEY,
    buyer_id        bigint NOT NULL,
    seller_id       bigint NOT NULL,
    status          text NOT NULL DEFAULT 'pending_payment'
                    CHECK (status IN ('pending_payment', 'paid', 'shipped', 'completed',
                                      'cancelled', 'closed', 'refund_required', 'refunded')),
    total           numeric NOT NULL CHECK (total >= 0),
    line_count      integer NOT NULL CHECK (line_count > 0),
    version         bigint NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    pay_deadline    timestamptz NOT NULL,
    paid_at         timestamptz,
    shipped_at      timestamptz,
    completed_at    timestamptz,
    closed_at       timestamptz,
    payment_ref     text,
    logistics_no    text,
    address         text,
    note            text,
    close_reason    text
);
CREATE INDEX orders_pay_deadline_idx ON @extschema@.orders (pay_deadline)
    WHERE status = 'pending_payment';
CREATE INDEX orders_buyer_idx ON @extschema@.orders (buyer_id, created_at);
CREATE INDEX orders_seller_idx ON @extschema@.orders (seller_id, created_at);

COMMENT ON TABLE @extschema@.orders IS
    'Live orders; amounts are the price snapshot taken at placement (one currency)';
COMMENT ON COLUMN @extschema@.orders.version IS
    'Optimistic version, bumped by every change (update_order compares it)';
COMMENT ON COLUMN @extschema@.orders.pay_deadline IS
    'close_unpaid closes the order when this passes unpaid';

CREATE TABLE @extschema@.order_lines (
    order_no    bigint NOT NULL REFERENCES @extschema@.orders ON DELETE CASCADE,
    line_no     integer NOT NULL,
    sku_id      bigint NOT NULL,
    qty         bigint NOT NULL CHECK (qty > 0),
    unit_price  numeric NOT NULL CHECK (unit_price >= 0),
    line_total  numeric NOT NULL CHECK (line_total >= 0),
    PRIMARY KEY (order_no, line_no)
);
COMMENT ON TABLE @extschema@.order_lines IS
    'Order lines with the unit price snapshot taken from the SKU at placement';

CREATE TABLE @extschema@.payments (
    payment_ref text PRIMARY KEY,
    order_no    bigint NOT NULL,
    amount      numeric NOT NULL CHECK (amount >= 0),
    outcome     text NOT NULL CHECK (outcome IN ('paid', 'refund_required')),
    received_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE INDEX payments_order_idx ON @extschema@.payments (order_no);
COMMENT ON TABLE @extschema@.payments IS
    'Every payment received, once per payment_ref; refund_required ones must be paid back';

CREATE TABLE @extschema@.order_events (
    event_id     bigserial PRIMARY KEY,
    order_no     bigint NOT NULL,
    event        text NOT NULL,
    from_status  text,
    to_status    text,
    detail       jsonb,
    created_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    processed_at timestamptz
);
CREATE INDEX order_events_pending_idx ON @extschema@.order_events (event_id)
    WHERE processed_at IS NULL;
CREATE INDEX order_events_order_idx ON @extschema@.order_events (order_no);
COMMENT ON TABLE @extschema@.order_events IS
    'Transactional outbox: one row per order change, written in the same transaction; drain with claim_events/ack_events';

SELECT pg_catalog.pg_extension_config_dump('@extschema@.orders', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.order_lines', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.payments', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.order_events', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.order_events_event_id_seq', '');

/* the hot entry point: becomes the owner in C (src/owner.c), no SET cost */
CREATE FUNCTION @extschema@.place_order(order_no bigint, buyer_id bigint, seller_id bigint,
                                        lines jsonb, pay_within interval DEFAULT '30 minutes')
RETURNS text LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'oe_place_order';
COMMENT ON FUNCTION @extschema@.place_order(bigint, bigint, bigint, jsonb, interval) IS
    'Holds every line, writes order, lines (price snapshot) and event in one call; pending_payment or out_of_stock';

CREATE FUNCTION @extschema@.pay_order(order_no bigint, payment_ref text, amount numeric)
RETURNS text LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_pay_order';
COMMENT ON FUNCTION @extschema@.pay_order(bigint, text, numeric) IS
    'Records a payment: paid, or refund_required when the order was closed, cancelled or already paid; idempotent on payment_ref';

CREATE FUNCTION @extschema@.cancel_order(order_no bigint, reason text DEFAULT NULL)
RETURNS text LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_cancel_order';
COMMENT ON FUNCTION @extschema@.cancel_order(bigint, text) IS
    'Buyer cancels an unpaid order: cancelled, holds released; idempotent';

CREATE FUNCTION @extschema@.ship_order(order_no bigint, logistics_no text)
RETURNS text LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_ship_order';
COMMENT ON FUNCTION @extschema@.ship_order(bigint, text) IS
    'paid -> shipped, recording the logistics number; idempotent';

CREATE FUNCTION @extschema@.complete_order(order_no bigint)
RETURNS text LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_complete_order';
COMMENT ON FUNCTION @extschema@.complete_order(bigint) IS
    'shipped -> completed; idempotent';

CREATE FUNCTION @extschema@.refund_order(order_no bigint)
RETURNS text LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_refund_order';
COMMENT ON FUNCTION @extschema@.refund_order(bigint) IS
    'refund_required -> refunded once the money went back; idempotent';

CREATE FUNCTION @extschema@.order_status(order_no bigint)
RETURNS text LANGUAGE C STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_order_status';
COMMENT ON FUNCTION @extschema@.order_status(bigint) IS
    'Current status of an order, or not_found';

CREATE FUNCTION @extschema@.update_order(order_no bigint, expected_version bigint, changes jsonb)
RETURNS bigint LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_update_order';
COMMENT ON FUNCTION @extschema@.update_order(bigint, bigint, jsonb) IS
    'Optimistic update of address, note or logistics_no; returns the new version, OE001 when stale';

CREATE FUNCTION @extschema@.claim_events(max_rows integer DEFAULT 100)
RETURNS SETOF @extschema@.order_events LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- LIMIT NULL would claim everything, a negative LIMIT is 2201W
    IF max_rows IS NULL THEN
        RAISE EXCEPTION 'max_rows must not be null' USING ERRCODE = '22004';
    END IF;
    IF max_rows < 1 THEN
        RAISE EXCEPTION 'max_rows must be at least 1' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('The value was %s.', max_rows);
    END IF;
    RETURN QUERY
        SELECT e.* FROM @extschema@.order_events e
         WHERE e.processed_at IS NULL
         ORDER BY e.event_id
         LIMIT claim_events.max_rows
           FOR UPDATE SKIP LOCKED;
END
$$;
COMMENT ON FUNCTION @extschema@.claim_events(integer) IS
    'Outbox consumer: locks up to max_rows unprocessed events (SKIP LOCKED); ack them in the same transaction';

CREATE FUNCTION @extschema@.ack_events(event_ids bigint[])
RETURNS integer LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    WITH done AS (
        UPDATE @extschema@.order_events e SET processed_at = pg_catalog.now()
         WHERE e.event_id = ANY (ack_events.event_ids) AND e.processed_at IS NULL
        RETURNING 1)
    SELECT pg_catalog.count(*)::integer FROM done;
END;
COMMENT ON FUNCTION @extschema@.ack_events(bigint[]) IS
    'Outbox consumer: marks claimed events processed; returns how many were newly marked';

REVOKE ALL ON ALL TABLES IN SCHEMA @extschema@ FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA @extschema@ FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA @extschema@ FROM PUBLIC;
GRANT SELECT ON @extschema@.orders, @extschema@.order_lines, @extschema@.payments,
    @extschema@.order_events TO order_engine_app;
GRANT EXECUTE ON FUNCTION
    @extschema@.place_order(bigint, bigint, bigint, jsonb, interval),
    @extschema@.pay_order(bigint, text, numeric),
    @extschema@.cancel_order(bigint, text),
    @extschema@.ship_order(bigint, text),
    @extschema@.complete_order(bigint),
    @extschema@.order_status(bigint),
    @extschema@.update_order(bigint, bigint, jsonb),
    @extschema@.claim_events(integer),
    @extschema@.ack_events(bigint[])
    TO order_engine_app;
GRANT EXECUTE ON FUNCTION @extschema@.refund_order(bigint) TO order_engine_admin;

CREATE FUNCTION @extschema@.close_unpaid(max_rows integer DEFAULT 1000)
RETURNS integer LANGUAGE C VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_close_unpaid';
COMMENT ON FUNCTION @extschema@.close_unpaid(integer) IS
    'Closes up to max_rows orders past their payment deadline, releasing their holds (the worker runs it too)';
REVOKE ALL ON FUNCTION @extschema@.close_unpaid(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.close_unpaid(integer) TO order_engine_admin;

/* ---- maintenance jobs: quarantine, archive, release_expired, worker_status per job ---- */

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
