--
-- Checkout quotes (0.8, issue 16 part 6): quote() freezes the unit prices
-- of the lines under a one-time token stored only as its SHA-256;
-- place_order(..., quote => token) charges the quoted prices, refuses an
-- unknown, used or other buyer's quote (OE024), an expired one (OE025) and
-- other lines (OE026), uses it once, and leaves it after out_of_stock;
-- reap_expired_keys reaps expired quotes after keys and tokens.
--
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text; det text;
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
    RETURN st || ': ' || msg || coalesce(' | ' || nullif(det, ''), '');
END $$;
-- the rows of the quote of a token
CREATE FUNCTION pg_temp.quote_row(token text) RETURNS SETOF order_engine.checkout_quotes
LANGUAGE sql AS $$
    SELECT * FROM order_engine.checkout_quotes WHERE quote_hash = sha256(convert_to(token, 'UTF8'))
$$;

-- SKUs 40301..40305, buyers 4037/4038, seller 4039: no other file uses them
SELECT order_engine.restock(40301, 100);
SELECT order_engine.restock(40302, 100);
SELECT order_engine.restock(40303, 100);     -- never gets a price
SELECT order_engine.restock(40304, 1);       -- runs out
SELECT order_engine.set_price(40301, 10.00);
SELECT order_engine.set_price(40302, 3.50);
SELECT order_engine.set_price(40304, 7.25);

--
-- The happy path: the price changes between quote and placement, the
-- order is charged the quoted prices.
--
SELECT order_engine.quote(4037, '[{"sku_id": 40301, "qty": 2}, {"sku_id": 40302, "qty": 1}]') AS q1 \gset
SELECT order_engine.quote(4037, '[{"sku_id": 40301, "qty": 1}]', '1 hour') AS q2 \gset
-- 43 characters of base64url (256 random bits), different every time
SELECT :'q1' ~ '^[A-Za-z0-9_-]{43}$' AS q1_format, :'q2' ~ '^[A-Za-z0-9_-]{43}$' AS q2_format,
       :'q1' <> :'q2' AS distinct_tokens;
-- the row: the buyer, the lines and the prices of now, the ttl (default 15 minutes)
SELECT buyer_id, sku_ids, qtys, unit_prices, expires_at - created_at AS ttl
  FROM pg_temp.quote_row(:'q1');
SELECT buyer_id, sku_ids, qtys, unit_prices, expires_at - created_at AS ttl
  FROM pg_temp.quote_row(:'q2');
-- only the SHA-256 is stored, never the token: no column of any row holds
-- a token, as text or as bytes (bytea columns appear in hex in to_jsonb);
-- columns added later are checked too
SELECT count(*) AS quotes_of_4037 FROM order_engine.checkout_quotes WHERE buyer_id = 4037;
SELECT count(*) AS columns_holding_a_token
  FROM order_engine.checkout_quotes c, jsonb_each_text(to_jsonb(c)) AS col(name, value),
       (VALUES (:'q1'), (:'q2')) AS t(token)
 WHERE position(t.token IN col.value) > 0
    OR position(encode(convert_to(t.token, 'UTF8'), 'hex') IN col.value) > 0;
SELECT count(*) AS rows_holding_a_token
  FROM order_engine.checkout_quotes c, (VALUES (:'q1'), (:'q2')) AS t(token)
 WHERE position(t.token IN c::text) > 0;

-- an operator changes both prices after the checkout page opened
SELECT order_engine.set_price(40301, 12.00);
SELECT order_engine.set_price(40302, 3.00);

-- the quoted lines in another order: the same set of (sku_id, qty)
SELECT order_engine.place_order(4030007, 4037, 4039,
    '[{"sku_id": 40302, "qty": 1}, {"sku_id": 40301, "qty": 2}]', '30 minutes', :'q1');
-- charged the quoted prices (2 x 10.00 + 1 x 3.50), not today's (27.00)
SELECT status, total, line_count FROM order_engine.orders WHERE order_no = 4030007;
SELECT line_no, sku_id, qty, unit_price, line_total
  FROM order_engine.order_lines WHERE order_no = 4030007 ORDER BY line_no;
SELECT event, to_status, detail->'total' AS total FROM order_engine.order_events WHERE order_no = 4030007;
-- the quote is used: gone in the placement's transaction
SELECT count(*) AS q1_left FROM pg_temp.quote_row(:'q1');
-- used once: another order with it is OE024, and writes nothing
SELECT pg_temp.try(format($$SELECT order_engine.place_order(4030107, 4037, 4039,
    '[{"sku_id": 40301, "qty": 2}, {"sku_id": 40302, "qty": 1}]', '30 minutes', %L)$$, :'q1'));
SELECT order_engine.order_status(4030107);

-- a repeat of the same placement answers the same, with the used quote,
-- without it, or with anything; nothing doubled, the quoted total stays
SELECT order_engine.place_order(4030007, 4037, 4039,
    '[{"sku_id": 40302, "qty": 1}, {"sku_id": 40301, "qty": 2}]', '30 minutes', :'q1') AS repeat_used_quote;
SELECT order_engine.place_order(4030007, 4037, 4039,
    '[{"sku_id": 40302, "qty": 1}, {"sku_id": 40301, "qty": 2}]') AS repeat_no_quote;
SELECT order_engine.place_order(4030007, 4037, 4039,
    '[{"sku_id": 40302, "qty": 1}, {"sku_id": 40301, "qty": 2}]', '30 minutes', 'not a quote') AS repeat_bad_quote;
SELECT total, (SELECT count(*) FROM order_engine.order_lines WHERE order_no = 4030007) AS lines,
       (SELECT count(*) FROM order_engine.order_events WHERE order_no = 4030007) AS events
  FROM order_engine.orders WHERE order_no = 4030007;
SELECT sku_id, held FROM order_engine.stock WHERE sku_id IN (40301, 40302) ORDER BY 1;
-- other content under the number is still OE006, quote or not
SELECT pg_temp.try(format($$SELECT order_engine.place_order(4030007, 4037, 4039,
    '[{"sku_id": 40301, "qty": 1}]', '30 minutes', %L)$$, :'q2'));
-- the quoted total is what is paid; today's total is refused
SELECT pg_temp.try($$SELECT order_engine.pay_order(4030007, 'pay-403-1', 27.00)$$);
SELECT order_engine.pay_order(4030007, 'pay-403-1', 23.50);

-- without a quote (or with quote => NULL) the order is charged today's prices
SELECT order_engine.place_order(4030207, 4037, 4039, '[{"sku_id": 40301, "qty": 1}]', '30 minutes', NULL);
SELECT total FROM order_engine.orders WHERE order_no = 4030207;
-- q2 was not touched by all this; named argument
SELECT order_engine.place_order(4030307, 4037, 4039, '[{"sku_id": 40301, "qty": 1}]', quote => :'q2');
SELECT total FROM order_engine.orders WHERE order_no = 4030307;
SELECT unit_price FROM order_engine.order_lines WHERE order_no = 4030307;

--
-- OE024: unknown, of another buyer, malformed
--
SELECT order_engine.quote(4037, '[{"sku_id": 40301, "qty": 1}]') AS q3 \gset
-- another buyer: the same answer as an unknown token, and the quote is not burnt
SELECT pg_temp.try(format($$SELECT order_engine.place_order(4030408, 4038, 4039,
    '[{"sku_id": 40301, "qty": 1}]', '30 minutes', %L)$$, :'q3'));
SELECT count(*) AS q3_left FROM pg_temp.quote_row(:'q3');
SELECT pg_temp.try($$SELECT order_engine.place_order(4030407, 4037, 4039,
    '[{"sku_id": 40301, "qty": 1}]', '30 minutes', 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA')$$) AS unknown;
SELECT pg_temp.try($$SELECT order_engine.place_order(4030407, 4037, 4039,
    '[{"sku_id": 40301, "qty": 1}]', '30 minutes', '')$$) AS empty;
SELECT pg_temp.try($$SELECT order_engine.place_order(4030407, 4037, 4039,
    '[{"sku_id": 40301, "qty": 1}]', '30 minutes', $q$' OR '1'='1$q$)$$) AS injection;
SELECT pg_temp.try(format($$SELECT order_engine.place_order(4030407, 4037, 4039,
    '[{"sku_id": 40301, "qty": 1}]', '30 minutes', %L)$$, :'q3' || 'x')) AS extended;
SELECT pg_temp.try(format($$SELECT order_engine.place_order(4030407, 4037, 4039,
    '[{"sku_id": 40301, "qty": 1}]', '30 minutes', %L)$$, left(:'q3', 42))) AS truncated;
SELECT pg_temp.try(format($$SELECT order_engine.place_order(4030407, 4037, 4039,
    '[{"sku_id": 40301, "qty": 1}]', '30 minutes', %L)$$, upper(:'q3'))) AS altered;
-- the hash is of the token, not the token: the stored hash is no token
SELECT pg_temp.try(format($$SELECT order_engine.place_order(4030407, 4037, 4039,
    '[{"sku_id": 40301, "qty": 1}]', '30 minutes', %L)$$,
    (SELECT translate(rtrim(encode(quote_hash, 'base64'), '='), '+/', '-_')
       FROM pg_temp.quote_row(:'q3')))) AS hash_as_token;
SELECT order_engine.order_status(4030407), order_engine.order_status(4030408);

--
-- OE026: lines that differ from the quote, as a set of (sku_id, qty); the
-- quote stays
--
SELECT order_engine.quote(4037, '[{"sku_id": 40301, "qty": 2}, {"sku_id": 40302, "qty": 3}]') AS q4 \gset
SELECT pg_temp.try(format($$SELECT order_engine.place_order(4030507, 4037, 4039,
    '[{"sku_id": 40301, "qty": 2}, {"sku_id": 40302, "qty": 4}]', '30 minutes', %L)$$, :'q4')) AS other_qty;
SELECT pg_temp.try(format($$SELECT order_engine.place_order(4030507, 4037, 4039,
    '[{"sku_id": 40301, "qty": 2}]', '30 minutes', %L)$$, :'q4')) AS line_missing;
SELECT pg_temp.try(format($$SELECT order_engine.place_order(4030507, 4037, 4039,
    '[{"sku_id": 40301, "qty": 2}, {"sku_id": 40302, "qty": 3}, {"sku_id": 40304, "qty": 1}]', '30 minutes', %L)$$, :'q4')) AS line_added;
SELECT pg_temp.try(format($$SELECT order_engine.place_order(4030507, 4037, 4039,
    '[{"sku_id": 40301, "qty": 2}, {"sku_id": 40304, "qty": 3}]', '30 minutes', %L)$$, :'q4')) AS other_sku;
SELECT pg_temp.try(format($$SELECT order_engine.place_order(4030507, 4037, 4039,
    '[{"sku_id": 40301, "qty": 3}, {"sku_id": 40302, "qty": 2}]', '30 minutes', %L)$$, :'q4')) AS qtys_swapped;
SELECT order_engine.order_status(4030507);
SELECT count(*) AS q4_left FROM pg_temp.quote_row(:'q4');
-- the quoted lines still place at the quoted prices
SELECT order_engine.place_order(4030507, 4037, 4039,
    '[{"sku_id": 40302, "qty": 3}, {"sku_id": 40301, "qty": 2}]', '30 minutes', :'q4');
SELECT total FROM order_engine.orders WHERE order_no = 4030507;

--
-- OE025: expired; an expired quote stays until the reaper takes it
--
SELECT order_engine.quote(4037, '[{"sku_id": 40301, "qty": 1}]', '1 second') AS q5 \gset
SELECT pg_sleep(1.2);
SELECT regexp_replace(pg_temp.try(format($$SELECT order_engine.place_order(4030607, 4037, 4039,
    '[{"sku_id": 40301, "qty": 1}]', '30 minutes', %L)$$, :'q5')), 'until .*', 'until <expires_at>.') AS expired;
-- the expiry comes before the lines: other lines are OE025 too
SELECT regexp_replace(pg_temp.try(format($$SELECT order_engine.place_order(4030607, 4037, 4039,
    '[{"sku_id": 40302, "qty": 1}]', '30 minutes', %L)$$, :'q5')), 'until .*', 'until <expires_at>.') AS expired_other_lines;
-- and another buyer still learns nothing: OE024
SELECT pg_temp.try(format($$SELECT order_engine.place_order(4030608, 4038, 4039,
    '[{"sku_id": 40301, "qty": 1}]', '30 minutes', %L)$$, :'q5')) AS expired_other_buyer;
SELECT order_engine.order_status(4030607);
SELECT count(*) AS q5_left FROM pg_temp.quote_row(:'q5');

--
-- out_of_stock writes nothing and leaves the quote; a placement that rolls
-- back leaves it too
--
SELECT order_engine.quote(4038, '[{"sku_id": 40304, "qty": 2}]') AS q6 \gset
SELECT order_engine.set_price(40304, 9.00);
SELECT order_engine.place_order(4030708, 4038, 4039, '[{"sku_id": 40304, "qty": 2}]', '30 minutes', :'q6');
SELECT order_engine.order_status(4030708);
SELECT count(*) AS q6_left FROM pg_temp.quote_row(:'q6');
SELECT sku_id, available, held FROM order_engine.stock WHERE sku_id = 40304;
SELECT order_engine.restock(40304, 1);
BEGIN;
SELECT order_engine.place_order(4030708, 4038, 4039, '[{"sku_id": 40304, "qty": 2}]', '30 minutes', :'q6') AS in_rolled_back_tx;
SELECT count(*) AS q6_in_tx FROM pg_temp.quote_row(:'q6');
ROLLBACK;
SELECT count(*) AS q6_after_rollback FROM pg_temp.quote_row(:'q6');
-- the same number again, now with stock: the quoted 7.25, not 9.00
SELECT order_engine.place_order(4030708, 4038, 4039, '[{"sku_id": 40304, "qty": 2}]', '30 minutes', :'q6');
SELECT total FROM order_engine.orders WHERE order_no = 4030708;
SELECT count(*) AS q6_left FROM pg_temp.quote_row(:'q6');

--
-- Bad input to quote(): documented SQLSTATEs, nothing stored
--
SELECT count(*) AS quotes_before FROM order_engine.checkout_quotes \gset
SELECT pg_temp.try($$SELECT order_engine.quote(NULL, '[{"sku_id": 40301, "qty": 1}]')$$) AS null_buyer;
SELECT pg_temp.try($$SELECT order_engine.quote(4037, NULL)$$) AS null_lines;
SELECT pg_temp.try($$SELECT order_engine.quote(4037, '[{"sku_id": 40301, "qty": 1}]', NULL)$$) AS null_ttl;
SELECT pg_temp.try($$SELECT order_engine.quote(-1, '[{"sku_id": 40301, "qty": 1}]')$$) AS negative_buyer;
-- lines as place_order takes them
SELECT pg_temp.try($$SELECT order_engine.quote(4037, '{"sku_id": 40301, "qty": 1}')$$) AS not_an_array;
SELECT pg_temp.try($$SELECT order_engine.quote(4037, '"x"')$$) AS scalar;
SELECT pg_temp.try($$SELECT order_engine.quote(4037, '[]')$$) AS empty;
SELECT pg_temp.try($$SELECT order_engine.quote(4037, '[1]')$$) AS not_an_object;
SELECT pg_temp.try($$SELECT order_engine.quote(4037, '[{"sku_id": 40301}]')$$) AS no_qty;
SELECT pg_temp.try($$SELECT order_engine.quote(4037, '[{"qty": 1}]')$$) AS no_sku;
SELECT pg_temp.try($$SELECT order_engine.quote(4037, '[{"sku_id": 40301, "qty": 1, "price": 0.01}]')$$) AS extra_key;
SELECT pg_temp.try($$SELECT order_engine.quote(4037, '[{"sku_id": 40301, "qty": 0}]')$$) AS qty_zero;
SELECT pg_temp.try($$SELECT order_engine.quote(4037, '[{"sku_id": 40301, "qty": -1}]')$$) AS qty_negative;
SELECT pg_temp.try($$SELECT order_engine.quote(4037, '[{"sku_id": 40301, "qty": 1.5}]')$$) AS qty_fraction;
SELECT pg_temp.try($$SELECT order_engine.quote(4037, '[{"sku_id": 40301, "qty": "1"}]')$$) AS qty_string;
SELECT pg_temp.try($$SELECT order_engine.quote(4037, '[{"sku_id": 40301, "qty": 99999999999999999999}]')$$) AS qty_beyond_bigint;
SELECT pg_temp.try($$SELECT order_engine.quote(4037, '[{"sku_id": 40301, "qty": 1}, {"sku_id": 40301, "qty": 2}]')$$) AS sku_twice;
SELECT pg_temp.try($$SELECT order_engine.quote(4037,
    (SELECT jsonb_agg(jsonb_build_object('sku_id', g, 'qty', 1)) FROM generate_series(1, 101) g))$$) AS lines_101;
-- the ttl rule of checkout tokens: (0, 100 years]
SELECT pg_temp.try($$SELECT order_engine.quote(4037, '[{"sku_id": 40301, "qty": 1}]', '0 seconds')$$) AS ttl_zero;
SELECT pg_temp.try($$SELECT order_engine.quote(4037, '[{"sku_id": 40301, "qty": 1}]', '-5 minutes')$$) AS ttl_negative;
SELECT pg_temp.try($$SELECT order_engine.quote(4037, '[{"sku_id": 40301, "qty": 1}]', '101 years')$$) AS ttl_too_long;
-- SKUs: unknown (OE008), without a price (55000)
SELECT pg_temp.try($$SELECT order_engine.quote(4037, '[{"sku_id": 40399, "qty": 1}]')$$) AS unknown_sku;
SELECT pg_temp.try($$SELECT order_engine.quote(4037, '[{"sku_id": 40301, "qty": 1}, {"sku_id": 40399, "qty": 1}]')$$) AS one_unknown_sku;
SELECT pg_temp.try($$SELECT order_engine.quote(4037, '[{"sku_id": 40303, "qty": 1}]')$$) AS sku_without_price;
SELECT count(*) - :quotes_before AS quotes_stored_by_bad_calls FROM order_engine.checkout_quotes;
-- place_order's own checks come before the quote is looked at
SELECT order_engine.quote(4037, '[{"sku_id": 40301, "qty": 1}]') AS q7 \gset
SELECT pg_temp.try(format($$SELECT order_engine.place_order(4030807, 4037, 4039,
    '[{"sku_id": 40301, "qty": 1}]', NULL, %L)$$, :'q7')) AS null_pay_within;
SELECT pg_temp.try(format($$SELECT order_engine.place_order(4030807, 4037, 4039,
    '[]', '30 minutes', %L)$$, :'q7')) AS empty_lines;
SELECT count(*) AS q7_left FROM pg_temp.quote_row(:'q7');

--
-- reap_expired_keys: expired quotes go after keys and tokens, oldest
-- first, in batches of max_rows; live ones stay.  In one transaction, so
-- that nothing else reaps between the steps.
--
SELECT order_engine.reap_expired_keys(1000000) >= 0 AS clean;
SELECT count(*) AS expired_left FROM order_engine.checkout_quotes WHERE expires_at <= now();
-- the expired q5 of above was reaped, and is unknown now
SELECT count(*) AS q5_left FROM pg_temp.quote_row(:'q5');
SELECT order_engine.quote(4038, '[{"sku_id": 40301, "qty": 1}]') AS r1 \gset
SELECT order_engine.quote(4038, '[{"sku_id": 40301, "qty": 2}]') AS r2 \gset
SELECT order_engine.quote(4038, '[{"sku_id": 40301, "qty": 3}]') AS r3 \gset
SELECT order_engine.quote(4038, '[{"sku_id": 40301, "qty": 4}]') AS r4 \gset
SELECT order_engine.issue_token(4038) AS rt \gset
BEGIN;
UPDATE order_engine.checkout_quotes SET expires_at = now() - (qtys[1] || ' minutes')::interval
 WHERE buyer_id = 4038 AND qtys[1] IN (1, 2, 3);    -- r1 expires last, r3 first; r4 lives
UPDATE order_engine.checkout_tokens SET expires_at = now() - interval '1 minute'
 WHERE token_hash = sha256(convert_to(:'rt', 'UTF8'));
SELECT order_engine.reap_expired_keys(2) AS first_batch;
SELECT qtys FROM order_engine.checkout_quotes WHERE buyer_id = 4038 ORDER BY qtys;
SELECT count(*) AS token_left FROM order_engine.checkout_tokens WHERE token_hash = sha256(convert_to(:'rt', 'UTF8'));
SELECT order_engine.reap_expired_keys() AS second_batch;
SELECT order_engine.reap_expired_keys() AS nothing_left;
COMMIT;
SELECT qtys FROM order_engine.checkout_quotes WHERE buyer_id = 4038 ORDER BY qtys;
-- a reaped quote is unknown now (OE024), not expired; the live one works
SELECT pg_temp.try(format($$SELECT order_engine.place_order(4030908, 4038, 4039,
    '[{"sku_id": 40301, "qty": 1}]', '30 minutes', %L)$$, :'r1')) AS reaped;
SELECT order_engine.place_order(4030908, 4038, 4039, '[{"sku_id": 40301, "qty": 4}]', '30 minutes', :'r4');

--
-- The application role may quote and place with a quote, not read the
-- quotes; the admin role may read them
--
CREATE ROLE regress_quote_app IN ROLE order_engine_app;
CREATE ROLE regress_quote_admin IN ROLE order_engine_admin;
SET ROLE regress_quote_app;
SELECT order_engine.quote(4037, '[{"sku_id": 40302, "qty": 1}]') AS qa \gset
SELECT :'qa' ~ '^[A-Za-z0-9_-]{43}$' AS app_got_a_token, current_user;
SELECT pg_temp.try($$SELECT count(*) FROM order_engine.checkout_quotes$$) AS app_reads_quotes;
SELECT pg_temp.try($$DELETE FROM order_engine.checkout_quotes$$) AS app_deletes_quotes;
SELECT pg_temp.try($$UPDATE order_engine.checkout_quotes SET unit_prices = '{0.01}'$$) AS app_updates_quotes;
SELECT order_engine.place_order(4031007, 4037, 4039, '[{"sku_id": 40302, "qty": 1}]', '30 minutes', :'qa');
SELECT current_user;
RESET ROLE;
SELECT total FROM order_engine.orders WHERE order_no = 4031007;
SET ROLE regress_quote_admin;
SELECT count(*) > 0 AS admin_reads_quotes FROM order_engine.checkout_quotes;
SELECT pg_temp.try($$DELETE FROM order_engine.checkout_quotes$$) AS admin_deletes_quotes;
RESET ROLE;
SELECT has_function_privilege('order_engine_app', 'order_engine.quote(bigint, jsonb, interval)', 'EXECUTE') AS app_may_quote,
       has_function_privilege('public', 'order_engine.quote(bigint, jsonb, interval)', 'EXECUTE') AS public_may_quote;
DROP ROLE regress_quote_app;
DROP ROLE regress_quote_admin;

SELECT bool_and(ok) AS stock_audit_ok FROM order_engine.stock_audit();
