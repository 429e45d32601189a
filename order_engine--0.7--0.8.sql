/*
 * order_engine 0.7 -> 0.8: checkout quotes (seed 000, issue 16 part 6).
 *
 * - quote(buyer_id, lines, ttl) freezes the unit prices of the lines when
 *   the checkout page opens and returns a secret token; only its SHA-256
 *   is stored (table checkout_quotes).
 * - place_order gets a sixth argument, quote text DEFAULT NULL: with it
 *   the order is charged the quoted prices; an unknown, used or another
 *   buyer's quote is OE024, an expired one OE025, lines that differ from
 *   the quote OE026.  It is used once.  The new C symbol
 *   (oe_place_order_v2) makes a backend that still runs an older library
 *   fail (42883) instead of ignoring the quote.
 * - reap_expired_keys reaps expired quotes with the tokens.
 */
\echo Use "ALTER EXTENSION order_engine UPDATE TO '0.8'" to load this file. \quit

/* a live update waits out deadlocks with clients (see 0.5--0.6) */
SET LOCAL deadlock_timeout = '60s';

CREATE TABLE @extschema@.checkout_quotes (
    quote_hash   bytea       PRIMARY KEY,
    buyer_id     bigint      NOT NULL,
    sku_ids      bigint[]    NOT NULL,
    qtys         bigint[]    NOT NULL,
    unit_prices  numeric[]   NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX checkout_quotes_expires_at ON @extschema@.checkout_quotes (expires_at);
COMMENT ON TABLE @extschema@.checkout_quotes IS
    'Unused checkout quotes (SHA-256 of the token, buyer, the quoted lines and unit prices, expiry); a used quote is deleted';
SELECT pg_catalog.pg_extension_config_dump('@extschema@.checkout_quotes', '');
ALTER TABLE @extschema@.checkout_quotes OWNER TO order_engine_owner;
REVOKE ALL ON @extschema@.checkout_quotes FROM PUBLIC;
GRANT SELECT ON @extschema@.checkout_quotes TO order_engine_admin;

/* not SECURITY DEFINER, like place_order: the C code becomes the owner */
CREATE FUNCTION @extschema@.quote(buyer_id bigint, lines jsonb,
                                  ttl interval DEFAULT '15 minutes')
RETURNS text LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'oe_quote';
COMMENT ON FUNCTION @extschema@.quote(bigint, jsonb, interval) IS
    'Checkout quote: freezes the current unit prices of the lines for ttl and returns a one-time token for place_order(..., quote => token)';
ALTER FUNCTION @extschema@.quote(bigint, jsonb, interval) OWNER TO order_engine_owner;
REVOKE ALL ON FUNCTION @extschema@.quote(bigint, jsonb, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.quote(bigint, jsonb, interval) TO order_engine_app;

DROP FUNCTION @extschema@.place_order(bigint, bigint, bigint, jsonb, interval);
CREATE FUNCTION @extschema@.place_order(order_no bigint, buyer_id bigint, seller_id bigint,
                                        lines jsonb, pay_within interval DEFAULT '30 minutes',
                                        quote text DEFAULT NULL)
RETURNS text LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'oe_place_order_v2';
COMMENT ON FUNCTION @extschema@.place_order(bigint, bigint, bigint, jsonb, interval, text) IS
    'Holds every line, writes order, lines (price snapshot, or the prices of quote) and event in one call; pending_payment or out_of_stock';
ALTER FUNCTION @extschema@.place_order(bigint, bigint, bigint, jsonb, interval, text) OWNER TO order_engine_owner;
REVOKE ALL ON FUNCTION @extschema@.place_order(bigint, bigint, bigint, jsonb, interval, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.place_order(bigint, bigint, bigint, jsonb, interval, text) TO order_engine_app;

COMMENT ON FUNCTION @extschema@.reap_expired_keys(integer) IS
    'Deletes up to max_rows expired idempotency keys, checkout tokens and checkout quotes; returns how many';
