/*
 * order_engine_shard 0.1: what a shard does for the router's saga
 * (docs/scale-out.md).  Installed on every order shard and stock shard,
 * next to order_engine.
 *
 *   stock shard:  reserve_priced  step 1: hold the lines, answer their prices
 *   order shard:  placement       is this order number taken, and by what
 *                 write_order     step 2: order + lines + "placed" event, no local stock
 *                 pay_order       pay_order for an order whose holds live elsewhere
 *                 stock_outbox    step 3: what the stock shards still have to hear
 *                                 (filled from order_events by a trigger, in the
 *                                 same transaction; the router's relay drains it)
 *
 * Everything runs as order_engine_owner with a pinned search_path.
 */
\echo Use "CREATE EXTENSION order_engine_shard" to load this file. \quit

CREATE TABLE @extschema@.stock_outbox (
    id          bigserial PRIMARY KEY,
    event_id    bigint NOT NULL,
    order_no    bigint NOT NULL,
    action      text NOT NULL CHECK (action IN ('confirm', 'release')),
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    done_at     timestamptz
);
CREATE INDEX stock_outbox_pending_idx ON @extschema@.stock_outbox (id) WHERE done_at IS NULL;
COMMENT ON TABLE @extschema@.stock_outbox IS
    'Per order shard: confirm/release calls the stock shards must receive (at least once); done_at when the relay got an answer';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.stock_outbox', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.stock_outbox_id_seq', '');

/* the order_engine outbox stays the application's: this trigger copies what stock needs */
CREATE FUNCTION @extschema@.stock_outbox_capture() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO order_engine_shard.stock_outbox (event_id, order_no, action)
    VALUES (NEW.event_id, NEW.order_no,
            CASE NEW.event WHEN 'paid' THEN 'confirm' ELSE 'release' END);
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION @extschema@.stock_outbox_capture() IS
    'Trigger: a paid order''s holds must be confirmed, a cancelled or closed one''s released';

CREATE TRIGGER order_engine_shard_stock_outbox
    AFTER INSERT ON order_engine.order_events
    FOR EACH ROW WHEN (NEW.event IN ('paid', 'cancelled', 'closed'))
    EXECUTE FUNCTION @extschema@.stock_outbox_capture();

/* ---- stock shard: step 1 ---- */

CREATE FUNCTION @extschema@.reserve_priced(i_order_no bigint, i_sku_ids bigint[], i_qtys bigint[],
                                           i_ttl interval, i_buyer_id bigint,
                                           OUT ok boolean, OUT sku_ids bigint[], OUT prices numeric[])
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    -- the same checks, in the same order, as place_order's price snapshot
    prices := ARRAY[]::numeric[];
    FOR r IN SELECT u.id, s.sku_id AS found, s.price
               FROM unnest(i_sku_ids) WITH ORDINALITY AS u(id, n)
               LEFT JOIN order_engine.sku s ON s.sku_id = u.id
              ORDER BY u.n
    LOOP
        IF r.found IS NULL THEN
            RAISE EXCEPTION 'SKU % does not exist', r.id USING ERRCODE = 'OE008';
        END IF;
        IF r.price IS NULL THEN
            RAISE EXCEPTION 'SKU % has no price', r.id USING ERRCODE = '55000',
                HINT = 'Set one with set_price().';
        END IF;
        prices := prices || r.price;
    END LOOP;
    sku_ids := i_sku_ids;
    ok := order_engine.reserve(i_order_no, i_sku_ids, i_qtys, i_ttl, i_buyer_id);
END
$$;
COMMENT ON FUNCTION @extschema@.reserve_priced(bigint, bigint[], bigint[], interval, bigint) IS
    'Saga step 1 on a stock shard: reserve (idempotent on order_no) and the current prices of the lines';

/* ---- order shard: step 2 ---- */

CREATE FUNCTION @extschema@.placement(i_order_no bigint, i_buyer_id bigint, i_seller_id bigint,
                                      i_sku_ids bigint[], i_qtys bigint[])
RETURNS text LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    o record;
BEGIN
    SELECT x.buyer_id, x.seller_id, x.status,
           (SELECT array_agg(l.sku_id ORDER BY l.line_no) FROM (
                SELECT line_no, sku_id FROM order_engine.order_lines WHERE order_no = i_order_no
                UNION ALL SELECT line_no, sku_id FROM order_engine_archive.order_lines WHERE order_no = i_order_no) l) AS skus,
           (SELECT array_agg(l.qty ORDER BY l.line_no) FROM (
                SELECT line_no, qty FROM order_engine.order_lines WHERE order_no = i_order_no
                UNION ALL SELECT line_no, qty FROM order_engine_archive.order_lines WHERE order_no = i_order_no) l) AS qtys
      INTO o
      FROM (SELECT buyer_id, seller_id, status FROM order_engine.orders WHERE order_no = i_order_no
            UNION ALL
            SELECT buyer_id, seller_id, status FROM order_engine_archive.orders WHERE order_no = i_order_no) x;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF o.buyer_id <> i_buyer_id OR o.seller_id <> i_seller_id
       OR o.skus IS DISTINCT FROM i_sku_ids OR o.qtys IS DISTINCT FROM i_qtys THEN
        RAISE EXCEPTION 'order number % is already used by another order', i_order_no
            USING ERRCODE = 'OE006',
                  DETAIL = 'An order may be placed again only with the same buyer, seller and lines.',
                  HINT = 'Take a new number from next_order_no().';
    END IF;
    RETURN o.status;
END
$$;
COMMENT ON FUNCTION @extschema@.placement(bigint, bigint, bigint, bigint[], bigint[]) IS
    'NULL when the order number is free; the status of the same order; OE006 for another order';

CREATE FUNCTION @extschema@.write_order(i_order_no bigint, i_buyer_id bigint, i_seller_id bigint,
                                        i_sku_ids bigint[], i_qtys bigint[], i_prices numeric[],
                                        i_pay_deadline timestamptz)
RETURNS text LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    st text;
BEGIN
    IF i_order_no IS NULL OR i_buyer_id IS NULL OR i_seller_id IS NULL OR i_sku_ids IS NULL
       OR i_qtys IS NULL OR i_prices IS NULL OR i_pay_deadline IS NULL THEN
        RAISE EXCEPTION 'write_order arguments must not be null' USING ERRCODE = '22004';
    END IF;
    IF cardinality(i_sku_ids) = 0 OR cardinality(i_sku_ids) <> cardinality(i_qtys)
       OR cardinality(i_sku_ids) <> cardinality(i_prices) THEN
        RAISE EXCEPTION 'lines must be non-empty arrays of one length' USING ERRCODE = '22023';
    END IF;
    -- placements of one number queue here; a repeat answers from the order
    PERFORM pg_advisory_xact_lock(i_order_no);
    st := order_engine_shard.placement(i_order_no, i_buyer_id, i_seller_id, i_sku_ids, i_qtys);
    IF st IS NOT NULL THEN
        RETURN st;
    END IF;
    WITH o AS (
        INSERT INTO order_engine.orders (order_no, buyer_id, seller_id, total, line_count, pay_deadline)
        SELECT i_order_no, i_buyer_id, i_seller_id,
               (SELECT sum(q * p) FROM unnest(i_qtys, i_prices) AS t(q, p)),
               cardinality(i_sku_ids), i_pay_deadline
        RETURNING order_no),
    l AS (
        INSERT INTO order_engine.order_lines (order_no, line_no, sku_id, qty, unit_price, line_total)
        SELECT o.order_no, t.n, t.sku_id, t.qty, t.price, t.qty * t.price
          FROM o, unnest(i_sku_ids, i_qtys, i_prices) WITH ORDINALITY AS t(sku_id, qty, price, n))
    INSERT INTO order_engine.order_events (order_no, event, to_status)
    SELECT o.order_no, 'placed', 'pending_payment' FROM o;
    PERFORM pg_notify('order_engine_events', '');
    RETURN 'pending_payment';
END
$$;
COMMENT ON FUNCTION @extschema@.write_order(bigint, bigint, bigint, bigint[], bigint[], numeric[], timestamptz) IS
    'Saga step 2 on an order shard: the order, lines (prices from the stock shards) and event, holding no local stock';

/*
 * pay_order for an order whose holds are on stock shards.  order_engine's
 * pay_order confirms local holds, and an order shard has none (OE009), so
 * the one path that needs them, pending_payment paid in time, is done here
 * with the same statements; every other case (replay, refund, extra
 * payment, bad input) is order_engine.pay_order itself, which does not
 * touch local stock on those paths.
 */
CREATE FUNCTION @extschema@.pay_order(i_order_no bigint, i_payment_ref text, i_amount numeric)
RETURNS text LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    o record;
BEGIN
    SELECT x.status, x.total, x.pay_deadline INTO o
      FROM order_engine.orders x WHERE x.order_no = i_order_no FOR UPDATE;
    IF FOUND AND o.status = 'pending_payment' AND pg_catalog.now() < o.pay_deadline
       AND i_amount IS NOT NULL AND i_amount = o.total AND i_amount <> 'NaN'::numeric
       AND octet_length(i_payment_ref) BETWEEN 1 AND 200
       AND NOT EXISTS (SELECT FROM order_engine.payments p WHERE p.payment_ref = i_payment_ref) THEN
        UPDATE order_engine.orders SET status = 'paid', version = version + 1,
               paid_at = pg_catalog.now(), payment_ref = i_payment_ref
         WHERE order_no = i_order_no;
        INSERT INTO order_engine.order_events (order_no, event, from_status, to_status)
        VALUES (i_order_no, 'paid', 'pending_payment', 'paid');
        INSERT INTO order_engine.payments (payment_ref, order_no, amount, outcome)
        VALUES (i_payment_ref, i_order_no, i_amount, 'paid');
        PERFORM pg_notify('order_engine_events', '');
        RETURN 'paid';
    END IF;
    RETURN order_engine.pay_order(i_order_no, i_payment_ref, i_amount);
END
$$;
COMMENT ON FUNCTION @extschema@.pay_order(bigint, text, numeric) IS
    'pay_order on an order shard (holds on the stock shards): confirmation goes out through stock_outbox';

/* ---- order shard: step 3, drained by order_engine_router.relay() ---- */

CREATE FUNCTION @extschema@.stock_pending(i_max integer,
                                          OUT id bigint, OUT order_no bigint, OUT action text,
                                          OUT sku_ids bigint[])
RETURNS SETOF record LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.id, s.order_no, s.action,
           ARRAY(SELECT l.sku_id FROM order_engine.order_lines l WHERE l.order_no = s.order_no
                 UNION SELECT l.sku_id FROM order_engine_archive.order_lines l WHERE l.order_no = s.order_no)
      FROM order_engine_shard.stock_outbox s
     WHERE s.done_at IS NULL
     ORDER BY s.id LIMIT i_max
$$;
COMMENT ON FUNCTION @extschema@.stock_pending(integer) IS
    'Relay: the oldest stock calls not yet acknowledged, with the SKUs that route them';

CREATE FUNCTION @extschema@.stock_ack(i_ids bigint[])
RETURNS integer LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    WITH d AS (UPDATE order_engine_shard.stock_outbox s SET done_at = pg_catalog.now()
                WHERE s.id = ANY (i_ids) AND s.done_at IS NULL RETURNING 1)
    SELECT count(*)::integer FROM d
$$;
COMMENT ON FUNCTION @extschema@.stock_ack(bigint[]) IS
    'Relay: marks stock calls delivered (their stock shards answered)';

/* owner, privileges */
ALTER SCHEMA @extschema@ OWNER TO order_engine_owner;
ALTER TABLE @extschema@.stock_outbox OWNER TO order_engine_owner;
DO $own$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
              WHERE p.pronamespace = '@extschema@'::regnamespace
    LOOP
        EXECUTE pg_catalog.format('ALTER FUNCTION %s OWNER TO order_engine_owner', f);
    END LOOP;
END
$own$;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA @extschema@ FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA @extschema@ FROM PUBLIC;
GRANT USAGE ON SCHEMA @extschema@ TO order_engine_app, order_engine_admin;
GRANT EXECUTE ON FUNCTION
    @extschema@.reserve_priced(bigint, bigint[], bigint[], interval, bigint),
    @extschema@.placement(bigint, bigint, bigint, bigint[], bigint[]),
    @extschema@.write_order(bigint, bigint, bigint, bigint[], bigint[], numeric[], timestamptz),
    @extschema@.pay_order(bigint, text, numeric),
    @extschema@.stock_pending(integer),
    @extschema@.stock_ack(bigint[])
    TO order_engine_app;
GRANT SELECT ON @extschema@.stock_outbox TO order_engine_admin;
