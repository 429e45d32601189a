/*
 * order_engine_router 0.1: the order_engine application API in a router
 * database, over PL/Proxy (docs/scale-out.md).
 *
 *   cluster order_engine_orders  order shards, partition = order number's gene (order_no % 100),
 *                                or the buyer's gene (buyer_id % shard_count), masked by PL/Proxy
 *   cluster order_engine_stock   stock shards, partition = sku_id
 *
 * Both are SQL/MED servers made by order_engine_router.configure(); their
 * partition counts are powers of two.  Every shard runs order_engine and
 * order_engine_shard; the router runs neither.  Functions keep the names
 * and arguments of order_engine, so an application changes only its
 * connection string.  Internal pieces live in schema order_engine_router.
 */
\echo Use "CREATE EXTENSION order_engine_router" to load this file. \quit

CREATE SCHEMA order_engine_router;
COMMENT ON SCHEMA order_engine_router IS
    'order_engine_router: cluster configuration, partition functions, saga steps, the stock relay';

/* ---- configuration ---- */

CREATE FUNCTION order_engine_router.configure(order_shards text[], stock_shards text[])
RETURNS void LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c record;
    opts text;
BEGIN
    FOR c IN SELECT * FROM (VALUES ('order_engine_orders', order_shards),
                                   ('order_engine_stock', stock_shards)) v(name, parts)
    LOOP
        IF c.parts IS NULL OR cardinality(c.parts) = 0
           OR (cardinality(c.parts) & (cardinality(c.parts) - 1)) <> 0 THEN
            RAISE EXCEPTION 'cluster % needs a power-of-two number of partitions', c.name
                USING ERRCODE = '22023',
                      DETAIL = format('It was given %s.', coalesce(cardinality(c.parts), 0));
        END IF;
        SELECT string_agg(format('p%s %L', n - 1, p), ', ' ORDER BY n) INTO opts
          FROM unnest(c.parts) WITH ORDINALITY AS u(p, n);
        EXECUTE format('DROP SERVER IF EXISTS %I CASCADE', c.name);
        EXECUTE format('CREATE SERVER %I FOREIGN DATA WRAPPER plproxy OPTIONS (connection_lifetime %L, %s)',
                       c.name, '600', opts);
        EXECUTE format('CREATE USER MAPPING FOR PUBLIC SERVER %I', c.name);
    END LOOP;
END
$$;
COMMENT ON FUNCTION order_engine_router.configure(text[], text[]) IS
    'Creates (or replaces) the SQL/MED servers order_engine_orders and order_engine_stock from libpq connection strings; counts must be powers of two';

/* the gene count next_order_no uses on the shards (order_engine.shard_count) */
CREATE FUNCTION order_engine_router.shard_count() RETURNS integer
LANGUAGE sql STABLE
AS $$ SELECT coalesce(nullif(pg_catalog.current_setting('order_engine_router.shard_count', true), ''), '32')::integer $$;
COMMENT ON FUNCTION order_engine_router.shard_count() IS
    'Setting order_engine_router.shard_count (default 32): must equal order_engine.shard_count on the order shards';

/* how long a stock hold outlives the payment deadline: the relay's time to confirm */
CREATE FUNCTION order_engine_router.hold_grace() RETURNS interval
LANGUAGE sql STABLE
AS $$ SELECT coalesce(nullif(pg_catalog.current_setting('order_engine_router.hold_grace', true), ''), '5 minutes')::interval $$;
COMMENT ON FUNCTION order_engine_router.hold_grace() IS
    'Setting order_engine_router.hold_grace (default 5 minutes): stock holds expire this long after the payment deadline';

/* partition hashes: NULL goes to partition 0, whose order_engine gives the usual 22004 */
CREATE FUNCTION order_engine_router.order_part(order_no bigint) RETURNS integer
LANGUAGE sql IMMUTABLE
AS $$ SELECT coalesce(order_no % 100, 0)::integer $$;
COMMENT ON FUNCTION order_engine_router.order_part(bigint) IS 'Partition hash of an order number: its shard gene';

CREATE FUNCTION order_engine_router.buyer_part(buyer_id bigint) RETURNS integer
LANGUAGE sql STABLE
AS $$ SELECT coalesce(buyer_id % order_engine_router.shard_count(), 0)::integer $$;
COMMENT ON FUNCTION order_engine_router.buyer_part(bigint) IS 'Partition hash of a buyer: the gene next_order_no gives their orders';

CREATE FUNCTION order_engine_router.sku_part(sku_id bigint) RETURNS integer
LANGUAGE sql IMMUTABLE
AS $$ SELECT coalesce(sku_id % 1048576, 0)::integer $$;
COMMENT ON FUNCTION order_engine_router.sku_part(bigint) IS 'Partition hash of a SKU (its low bits)';

/* ---- saga steps (one remote transaction each) ---- */

CREATE FUNCTION order_engine_router.stock_reserve(i_order_no bigint, i_sku_ids bigint[], i_qtys bigint[],
                                                  i_ttl interval, i_buyer_id bigint,
                                                  OUT ok boolean, OUT sku_ids bigint[], OUT prices numeric[])
RETURNS SETOF record LANGUAGE plproxy
AS $$
    CLUSTER 'order_engine_stock';
    SPLIT i_sku_ids, i_qtys;
    RUN ON order_engine_router.sku_part(i_sku_ids);
    SELECT * FROM order_engine_shard.reserve_priced(i_order_no, i_sku_ids, i_qtys, i_ttl, i_buyer_id);
$$;

CREATE FUNCTION order_engine_router.stock_confirm(i_order_no bigint, i_sku_ids bigint[])
RETURNS SETOF integer LANGUAGE plproxy
AS $$
    CLUSTER 'order_engine_stock';
    SPLIT i_sku_ids;
    RUN ON order_engine_router.sku_part(i_sku_ids);
    SELECT order_engine.confirm(i_order_no) AS stock_confirm;
$$;

CREATE FUNCTION order_engine_router.stock_release(i_order_no bigint, i_sku_ids bigint[])
RETURNS SETOF integer LANGUAGE plproxy
AS $$
    CLUSTER 'order_engine_stock';
    SPLIT i_sku_ids;
    RUN ON order_engine_router.sku_part(i_sku_ids);
    SELECT order_engine.release(i_order_no) AS stock_release;
$$;

/* by order number alone: every stock shard; NULL where it holds nothing of the order */
CREATE FUNCTION order_engine_router.stock_confirm_all(i_order_no bigint)
RETURNS SETOF integer LANGUAGE plproxy
AS $$
    CLUSTER 'order_engine_stock';
    RUN ON ALL;
    SELECT CASE WHEN EXISTS (SELECT FROM order_engine.stock_hold h WHERE h.order_no = i_order_no)
                THEN order_engine.confirm(i_order_no) END AS stock_confirm_all;
$$;

CREATE FUNCTION order_engine_router.stock_release_all(i_order_no bigint)
RETURNS SETOF integer LANGUAGE plproxy
AS $$
    CLUSTER 'order_engine_stock';
    RUN ON ALL;
    SELECT order_engine.release(i_order_no) AS stock_release_all;
$$;

CREATE FUNCTION order_engine_router.order_placement(i_order_no bigint, i_buyer_id bigint, i_seller_id bigint,
                                                    i_sku_ids bigint[], i_qtys bigint[])
RETURNS text LANGUAGE plproxy
AS $$
    CLUSTER 'order_engine_orders';
    RUN ON order_engine_router.order_part(i_order_no);
    SELECT order_engine_shard.placement(i_order_no, i_buyer_id, i_seller_id, i_sku_ids, i_qtys) AS order_placement;
$$;

CREATE FUNCTION order_engine_router.order_write(i_order_no bigint, i_buyer_id bigint, i_seller_id bigint,
                                                i_sku_ids bigint[], i_qtys bigint[], i_prices numeric[],
                                                i_pay_deadline timestamptz)
RETURNS text LANGUAGE plproxy
AS $$
    CLUSTER 'order_engine_orders';
    RUN ON order_engine_router.order_part(i_order_no);
    SELECT order_engine_shard.write_order(i_order_no, i_buyer_id, i_seller_id, i_sku_ids, i_qtys,
                                          i_prices, i_pay_deadline) AS order_write;
$$;

CREATE FUNCTION order_engine_router.order_pay(i_order_no bigint, i_payment_ref text, i_amount numeric,
                                              OUT status text, OUT sku_ids bigint[])
RETURNS SETOF record LANGUAGE plproxy
AS $$
    CLUSTER 'order_engine_orders';
    RUN ON order_engine_router.order_part(i_order_no);
    SELECT s.status, ARRAY(SELECT l.sku_id FROM order_engine.order_lines l WHERE l.order_no = i_order_no) AS sku_ids
      FROM order_engine_shard.pay_order(i_order_no, i_payment_ref, i_amount) AS s(status);
$$;

CREATE FUNCTION order_engine_router.order_cancel(i_order_no bigint, i_reason text,
                                                 OUT status text, OUT sku_ids bigint[])
RETURNS SETOF record LANGUAGE plproxy
AS $$
    CLUSTER 'order_engine_orders';
    RUN ON order_engine_router.order_part(i_order_no);
    SELECT s.status, ARRAY(SELECT l.sku_id FROM order_engine.order_lines l WHERE l.order_no = i_order_no) AS sku_ids
      FROM order_engine.cancel_order(i_order_no, i_reason) AS s(status);
$$;

CREATE FUNCTION order_engine_router.stock_pending(i_max integer,
                                                  OUT id bigint, OUT order_no bigint, OUT action text,
                                                  OUT sku_ids bigint[])
RETURNS SETOF record LANGUAGE plproxy
AS $$
    CLUSTER 'order_engine_orders';
    RUN ON ALL;
    SELECT * FROM order_engine_shard.stock_pending(i_max);
$$;

CREATE FUNCTION order_engine_router.stock_ack(i_order_no bigint, i_ids bigint[])
RETURNS integer LANGUAGE plproxy
AS $$
    CLUSTER 'order_engine_orders';
    RUN ON order_engine_router.order_part(i_order_no);
    SELECT order_engine_shard.stock_ack(i_ids) AS stock_ack;
$$;

/*
 * Step 3's delivery: every order shard's stock_outbox to the stock shards,
 * at least once (confirm and release are idempotent), acknowledged after
 * the stock shards answered.  Run it in a loop (scripts/cluster.sh does)
 * or from pg_cron.  A call that fails stays pending and is tried again.
 */
CREATE FUNCTION order_engine_router.relay(max_rows integer DEFAULT 500)
RETURNS integer LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ev record;
    n integer := 0;
BEGIN
    FOR ev IN SELECT * FROM order_engine_router.stock_pending(max_rows) LOOP
        BEGIN
            IF cardinality(ev.sku_ids) > 0 THEN
                IF ev.action = 'confirm' THEN
                    PERFORM order_engine_router.stock_confirm(ev.order_no, ev.sku_ids);
                ELSE
                    PERFORM order_engine_router.stock_release(ev.order_no, ev.sku_ids);
                END IF;
            END IF;
            PERFORM order_engine_router.stock_ack(ev.order_no, ARRAY[ev.id]);
            n := n + 1;
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'order_engine_router: % of order % not delivered: % (%)',
                ev.action, ev.order_no, SQLERRM, SQLSTATE;
        END;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION order_engine_router.relay(integer) IS
    'Delivers pending confirm/release calls from the order shards to the stock shards; returns how many were acknowledged';

/* ---- the API: orders ---- */

CREATE FUNCTION order_engine_router.next_order_no(buyer_id bigint)
RETURNS bigint LANGUAGE plproxy
AS $$
    CLUSTER 'order_engine_orders';
    RUN ON order_engine_router.buyer_part(buyer_id);
    SELECT order_engine.next_order_no(buyer_id);
$$;
COMMENT ON FUNCTION order_engine_router.next_order_no(bigint) IS
    'Routed by the buyer''s gene: an order number carrying it, from the order shard that owns it';

CREATE FUNCTION @extschema@.shard_of(order_no bigint)
RETURNS integer LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
    IF order_no IS NULL THEN
        RAISE EXCEPTION 'order_no must not be null' USING ERRCODE = '22004';
    END IF;
    IF order_no < 0 THEN
        RAISE EXCEPTION 'order_no must not be negative' USING ERRCODE = '22023',
            DETAIL = format('order_no was %s.', order_no);
    END IF;
    RETURN (order_no % 100)::integer;
END
$$;
COMMENT ON FUNCTION @extschema@.shard_of(bigint) IS 'The shard gene of an order number (its last two digits), computed on the router';

CREATE FUNCTION order_engine_router.place_order(order_no bigint, buyer_id bigint, seller_id bigint,
                                                lines jsonb, pay_within interval)
RETURNS text LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    skus bigint[];
    qtys bigint[];
    st text;
    r record;
    all_ok boolean := true;
    got_skus bigint[] := '{}';
    got_prices numeric[] := '{}';
    prices numeric[];
    deadline timestamptz;
BEGIN
    IF order_no IS NULL OR buyer_id IS NULL OR seller_id IS NULL OR lines IS NULL OR pay_within IS NULL THEN
        RAISE EXCEPTION '% must not be null',
            CASE WHEN order_no IS NULL THEN 'order_no' WHEN buyer_id IS NULL THEN 'buyer_id'
                 WHEN seller_id IS NULL THEN 'seller_id' WHEN lines IS NULL THEN 'lines'
                 ELSE 'pay_within' END
            USING ERRCODE = '22004';
    END IF;
    IF order_no <= 0 THEN
        RAISE EXCEPTION 'order_no must be positive' USING ERRCODE = '22023';
    END IF;
    IF pay_within <= interval '0' OR pay_within > interval '7 days' THEN
        RAISE EXCEPTION 'pay_within must be positive and at most 7 days' USING ERRCODE = '22023';
    END IF;
    IF jsonb_typeof(lines) <> 'array' OR jsonb_array_length(lines) NOT BETWEEN 1 AND 100 THEN
        RAISE EXCEPTION 'lines must be a JSON array of 1 to 100 lines' USING ERRCODE = '22023';
    END IF;
    IF EXISTS (SELECT FROM jsonb_array_elements(lines) e(v)
                WHERE jsonb_typeof(e.v) <> 'object'
                   OR jsonb_typeof(e.v->'sku_id') IS DISTINCT FROM 'number'
                   OR jsonb_typeof(e.v->'qty') IS DISTINCT FROM 'number'
                   OR (e.v->>'qty')::numeric <= 0
                   OR (e.v->>'qty')::numeric <> trunc((e.v->>'qty')::numeric)
                   OR (e.v->>'sku_id')::numeric <> trunc((e.v->>'sku_id')::numeric)) THEN
        RAISE EXCEPTION 'every line needs an integer sku_id and a positive integer qty' USING ERRCODE = '22023';
    END IF;
    SELECT array_agg((e.v->>'sku_id')::bigint ORDER BY e.n), array_agg((e.v->>'qty')::bigint ORDER BY e.n)
      INTO skus, qtys
      FROM jsonb_array_elements(lines) WITH ORDINALITY AS e(v, n);
    IF (SELECT count(DISTINCT s) FROM unnest(skus) s) <> cardinality(skus) THEN
        RAISE EXCEPTION 'a SKU appears twice in lines' USING ERRCODE = '22023';
    END IF;

    -- a repeat answers from the order shard (or is OE006 there)
    st := order_engine_router.order_placement(order_no, buyer_id, seller_id, skus, qtys);
    IF st IS NOT NULL THEN
        RETURN st;
    END IF;

    -- step 1: hold on every stock shard; the holds outlive the deadline by hold_grace
    deadline := pg_catalog.clock_timestamp() + pay_within;
    FOR r IN SELECT * FROM order_engine_router.stock_reserve(order_no, skus, qtys,
                                                            pay_within + order_engine_router.hold_grace(),
                                                            buyer_id) LOOP
        all_ok := all_ok AND r.ok;
        got_skus := got_skus || r.sku_ids;
        got_prices := got_prices || r.prices;
    END LOOP;
    IF NOT all_ok THEN
        -- all or nothing: give back what the other stock shards held
        PERFORM order_engine_router.stock_release(order_no, skus);
        RETURN 'out_of_stock';
    END IF;
    prices := ARRAY(SELECT got_prices[array_position(got_skus, u.s)]
                      FROM unnest(skus) WITH ORDINALITY AS u(s, n) ORDER BY u.n);

    -- step 2: the order on its order shard; if this never commits, the holds expire
    RETURN order_engine_router.order_write(order_no, buyer_id, seller_id, skus, qtys, prices, deadline);
END
$$;
COMMENT ON FUNCTION order_engine_router.place_order(bigint, bigint, bigint, jsonb, interval) IS
    'Saga: reserve on each stock shard (idempotent on order_no), then write the order on its order shard; pending_payment or out_of_stock';

CREATE FUNCTION order_engine_router.pay_order(order_no bigint, payment_ref text, amount numeric)
RETURNS text LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    SELECT * INTO r FROM order_engine_router.order_pay(order_no, payment_ref, amount);
    IF r.status = 'paid' AND cardinality(r.sku_ids) > 0 THEN
        -- step 3 right away; the order shard's stock_outbox delivers it again if this fails
        BEGIN
            PERFORM order_engine_router.stock_confirm(order_no, r.sku_ids);
        EXCEPTION WHEN OTHERS THEN
            NULL;
        END;
    END IF;
    RETURN r.status;
END
$$;
COMMENT ON FUNCTION order_engine_router.pay_order(bigint, text, numeric) IS
    'Routed by the order number; paid confirms the holds on the stock shards (now, and through the order shard''s outbox)';

CREATE FUNCTION order_engine_router.cancel_order(order_no bigint, reason text)
RETURNS text LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    SELECT * INTO r FROM order_engine_router.order_cancel(order_no, reason);
    IF cardinality(r.sku_ids) > 0 THEN
        BEGIN
            PERFORM order_engine_router.stock_release(order_no, r.sku_ids);
        EXCEPTION WHEN OTHERS THEN
            NULL;
        END;
    END IF;
    RETURN r.status;
END
$$;
COMMENT ON FUNCTION order_engine_router.cancel_order(bigint, text) IS
    'Routed by the order number; the holds are released on the stock shards (now, and through the outbox)';

/*
 * The hot entry points, with PL/Proxy's connection failures (reported as
 * XX000 "PL/Proxy function ...") turned into 08006, which clients retry:
 * every step is idempotent on the order number or payment_ref.
 */
CREATE FUNCTION @extschema@.next_order_no(buyer_id bigint)
RETURNS bigint LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN order_engine_router.next_order_no(buyer_id);
EXCEPTION WHEN internal_error THEN
    IF SQLERRM LIKE 'PL/Proxy%' THEN
        RAISE EXCEPTION USING ERRCODE = '08006', MESSAGE = SQLERRM,
            HINT = 'A shard is unreachable; retry.';
    END IF;
    RAISE;
END
$$;
COMMENT ON FUNCTION @extschema@.next_order_no(bigint) IS
    'Routed by the buyer''s gene: an order number carrying it, from the order shard that owns it';

CREATE FUNCTION @extschema@.place_order(order_no bigint, buyer_id bigint, seller_id bigint,
                                        lines jsonb, pay_within interval DEFAULT '30 minutes')
RETURNS text LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN order_engine_router.place_order(order_no, buyer_id, seller_id, lines, pay_within);
EXCEPTION WHEN internal_error THEN
    IF SQLERRM LIKE 'PL/Proxy%' THEN
        RAISE EXCEPTION USING ERRCODE = '08006', MESSAGE = SQLERRM,
            HINT = 'A shard is unreachable; retry with the same order number.';
    END IF;
    RAISE;
END
$$;
COMMENT ON FUNCTION @extschema@.place_order(bigint, bigint, bigint, jsonb, interval) IS
    'Saga: reserve on each stock shard (idempotent on order_no), then write the order on its order shard; pending_payment or out_of_stock';

CREATE FUNCTION @extschema@.pay_order(order_no bigint, payment_ref text, amount numeric)
RETURNS text LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN order_engine_router.pay_order(order_no, payment_ref, amount);
EXCEPTION WHEN internal_error THEN
    IF SQLERRM LIKE 'PL/Proxy%' THEN
        RAISE EXCEPTION USING ERRCODE = '08006', MESSAGE = SQLERRM,
            HINT = 'A shard is unreachable; retry with the same payment_ref.';
    END IF;
    RAISE;
END
$$;
COMMENT ON FUNCTION @extschema@.pay_order(bigint, text, numeric) IS
    'Routed by the order number; paid confirms the holds on the stock shards (now, and through the order shard''s outbox)';

CREATE FUNCTION @extschema@.cancel_order(order_no bigint, reason text DEFAULT NULL)
RETURNS text LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN order_engine_router.cancel_order(order_no, reason);
EXCEPTION WHEN internal_error THEN
    IF SQLERRM LIKE 'PL/Proxy%' THEN
        RAISE EXCEPTION USING ERRCODE = '08006', MESSAGE = SQLERRM,
            HINT = 'A shard is unreachable; retry.';
    END IF;
    RAISE;
END
$$;
COMMENT ON FUNCTION @extschema@.cancel_order(bigint, text) IS
    'Routed by the order number; the holds are released on the stock shards (now, and through the outbox)';

CREATE FUNCTION @extschema@.ship_order(order_no bigint, logistics_no text)
RETURNS text LANGUAGE plproxy
AS $$
    CLUSTER 'order_engine_orders';
    RUN ON order_engine_router.order_part(order_no);
$$;
COMMENT ON FUNCTION @extschema@.ship_order(bigint, text) IS 'Routed by the order number';

CREATE FUNCTION @extschema@.complete_order(order_no bigint)
RETURNS text LANGUAGE plproxy
AS $$
    CLUSTER 'order_engine_orders';
    RUN ON order_engine_router.order_part(order_no);
$$;
COMMENT ON FUNCTION @extschema@.complete_order(bigint) IS 'Routed by the order number';

CREATE FUNCTION @extschema@.refund_order(order_no bigint)
RETURNS text LANGUAGE plproxy
AS $$
    CLUSTER 'order_engine_orders';
    RUN ON order_engine_router.order_part(order_no);
$$;
COMMENT ON FUNCTION @extschema@.refund_order(bigint) IS 'Routed by the order number';

CREATE FUNCTION @extschema@.order_status(order_no bigint)
RETURNS text LANGUAGE plproxy STRICT
AS $$
    CLUSTER 'order_engine_orders';
    RUN ON order_engine_router.order_part(order_no);
$$;
COMMENT ON FUNCTION @extschema@.order_status(bigint) IS 'Routed by the order number';

CREATE FUNCTION @extschema@.update_order(order_no bigint, expected_version bigint, changes jsonb)
RETURNS bigint LANGUAGE plproxy
AS $$
    CLUSTER 'order_engine_orders';
    RUN ON order_engine_router.order_part(order_no);
$$;
COMMENT ON FUNCTION @extschema@.update_order(bigint, bigint, jsonb) IS 'Routed by the order number';

/* ---- the API: stock ---- */

CREATE FUNCTION @extschema@.restock(sku_id bigint, delta bigint, reason text DEFAULT NULL)
RETURNS bigint LANGUAGE plproxy
AS $$
    CLUSTER 'order_engine_stock';
    RUN ON order_engine_router.sku_part(sku_id);
$$;
COMMENT ON FUNCTION @extschema@.restock(bigint, bigint, text) IS 'Routed by the SKU';

CREATE FUNCTION @extschema@.set_price(sku_id bigint, price numeric)
RETURNS void LANGUAGE plproxy
AS $$
    CLUSTER 'order_engine_stock';
    RUN ON order_engine_router.sku_part(sku_id);
$$;
COMMENT ON FUNCTION @extschema@.set_price(bigint, numeric) IS 'Routed by the SKU';

CREATE FUNCTION @extschema@.try_deduct(sku_id bigint, qty bigint)
RETURNS boolean LANGUAGE plproxy
AS $$
    CLUSTER 'order_engine_stock';
    RUN ON order_engine_router.sku_part(sku_id);
$$;
COMMENT ON FUNCTION @extschema@.try_deduct(bigint, bigint) IS 'Routed by the SKU';

CREATE FUNCTION @extschema@.set_buckets(sku_id bigint, n integer)
RETURNS void LANGUAGE plproxy
AS $$
    CLUSTER 'order_engine_stock';
    RUN ON order_engine_router.sku_part(sku_id);
$$;
COMMENT ON FUNCTION @extschema@.set_buckets(bigint, integer) IS 'Routed by the SKU';

CREATE FUNCTION @extschema@.set_purchase_limit(sku_id bigint, per_buyer bigint)
RETURNS void LANGUAGE plproxy
AS $$
    CLUSTER 'order_engine_stock';
    RUN ON order_engine_router.sku_part(sku_id);
$$;
COMMENT ON FUNCTION @extschema@.set_purchase_limit(bigint, bigint) IS 'Routed by the SKU';

CREATE FUNCTION @extschema@.reserve(order_no bigint, sku_ids bigint[], qtys bigint[],
                                    ttl interval DEFAULT '30 minutes', buyer_id bigint DEFAULT NULL)
RETURNS boolean LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ok boolean;
BEGIN
    IF sku_ids IS NULL OR qtys IS NULL OR cardinality(sku_ids) = 0 THEN
        -- the stock shard gives the single-node answer for bad input
        RETURN (SELECT bool_and(r.ok) FROM order_engine_router.stock_reserve(
                    order_no, ARRAY[coalesce(sku_ids[1], 0)], qtys, ttl, buyer_id) r);
    END IF;
    SELECT bool_and(r.ok) INTO ok
      FROM order_engine_router.stock_reserve(order_no, sku_ids, qtys, ttl, buyer_id) r;
    IF NOT ok THEN
        PERFORM order_engine_router.stock_release(order_no, sku_ids);
    END IF;
    RETURN ok;
END
$$;
COMMENT ON FUNCTION @extschema@.reserve(bigint, bigint[], bigint[], interval, bigint) IS
    'Split by SKU over the stock shards; all or nothing (a shard that cannot hold makes the others release)';

CREATE FUNCTION @extschema@.confirm(order_no bigint)
RETURNS integer LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
BEGIN
    IF order_no IS NULL THEN
        RAISE EXCEPTION 'order_no must not be null' USING ERRCODE = '22004';
    END IF;
    SELECT sum(c)::integer INTO n FROM order_engine_router.stock_confirm_all(order_no) c;
    IF n IS NULL THEN
        RAISE EXCEPTION 'order % holds no stock', order_no USING ERRCODE = 'OE009',
            HINT = 'Reserve the order''s stock before confirming it.';
    END IF;
    RETURN n;
END
$$;
COMMENT ON FUNCTION @extschema@.confirm(bigint) IS 'On every stock shard that holds stock of the order';

CREATE FUNCTION @extschema@.release(order_no bigint)
RETURNS integer LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ SELECT coalesce(sum(c), 0)::integer FROM order_engine_router.stock_release_all(order_no) c $$;
COMMENT ON FUNCTION @extschema@.release(bigint) IS 'On every stock shard';

CREATE FUNCTION @extschema@.stock_audit()
RETURNS TABLE(sku_id bigint, ok boolean, detail text) LANGUAGE plproxy
AS $$
    CLUSTER 'order_engine_stock';
    RUN ON ALL;
$$;
COMMENT ON FUNCTION @extschema@.stock_audit() IS 'Every stock shard''s audit, merged';
