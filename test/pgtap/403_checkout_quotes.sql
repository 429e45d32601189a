-- Checkout quotes (0.8): the objects and their privileges, the exact
-- SQLSTATE of every bad input to quote() and of every refused quote in
-- place_order, and the answers of the good paths.
BEGIN;
SELECT plan(59);

SELECT order_engine.restock(4039001, 10);
SELECT order_engine.set_price(4039001, 4.00);
SELECT order_engine.restock(4039002, 10);
SELECT order_engine.set_price(4039002, 1.25);
SELECT order_engine.restock(4039003, 10);              -- no price
SELECT order_engine.restock(4039004, 1);               -- runs out
SELECT order_engine.set_price(4039004, 9.00);

-- the objects
SELECT has_function('order_engine', 'quote', ARRAY['bigint', 'jsonb', 'interval'], 'quote(bigint, jsonb, interval) exists');
SELECT function_returns('order_engine', 'quote', ARRAY['bigint', 'jsonb', 'interval'], 'text', 'quote returns text');
SELECT has_function('order_engine', 'place_order', ARRAY['bigint', 'bigint', 'bigint', 'jsonb', 'interval', 'text'],
                    'place_order takes a quote as its sixth argument');
SELECT hasnt_function('order_engine', 'place_order', ARRAY['bigint', 'bigint', 'bigint', 'jsonb', 'interval'],
                      'the five-argument place_order is gone (the sixth has a default)');
SELECT has_table('order_engine', 'checkout_quotes', 'the quote table exists');
SELECT col_is_pk('order_engine', 'checkout_quotes', 'quote_hash', 'quotes are keyed by the hash of the token');
SELECT col_type_is('order_engine', 'checkout_quotes', 'quote_hash', 'bytea', 'the key is a hash (bytea), not the token');
SELECT table_owner_is('order_engine', 'checkout_quotes', 'order_engine_owner', 'the quote table belongs to order_engine_owner');
SELECT function_owner_is('order_engine', 'quote', ARRAY['bigint', 'jsonb', 'interval'], 'order_engine_owner',
                         'quote belongs to order_engine_owner');

-- privileges: the application quotes and places, nobody but the admin reads the quotes
SELECT function_privs_are('order_engine', 'quote', ARRAY['bigint', 'jsonb', 'interval'],
                          'order_engine_app', ARRAY['EXECUTE'], 'the app role may quote');
SELECT function_privs_are('order_engine', 'place_order', ARRAY['bigint', 'bigint', 'bigint', 'jsonb', 'interval', 'text'],
                          'order_engine_app', ARRAY['EXECUTE'], 'the app role may place orders with a quote');
SELECT ok(NOT has_function_privilege('public', 'order_engine.quote(bigint, jsonb, interval)', 'EXECUTE'),
          'PUBLIC may not quote');
SELECT isnt_definer('order_engine', 'quote', ARRAY['bigint', 'jsonb', 'interval'],
                    'quote becomes the owner in C, not through SECURITY DEFINER');
SELECT table_privs_are('order_engine', 'checkout_quotes', 'order_engine_app', ARRAY[]::text[],
                       'the app role has no privilege on the quote table');
SELECT table_privs_are('order_engine', 'checkout_quotes', 'order_engine_admin', ARRAY['SELECT'],
                       'the admin role may only read the quote table');

-- quote(): 22004 for a NULL, 22023 for a bad value
SELECT throws_ok($$SELECT order_engine.quote(NULL, '[{"sku_id": 4039001, "qty": 1}]')$$, '22004', NULL, 'quote: null buyer_id');
SELECT throws_ok($$SELECT order_engine.quote(7, NULL)$$, '22004', NULL, 'quote: null lines');
SELECT throws_ok($$SELECT order_engine.quote(7, '[{"sku_id": 4039001, "qty": 1}]', NULL)$$, '22004', NULL, 'quote: null ttl');
SELECT throws_ok($$SELECT order_engine.quote(-7, '[{"sku_id": 4039001, "qty": 1}]')$$, '22023', NULL, 'quote: negative buyer_id');
SELECT throws_ok($$SELECT order_engine.quote(7, '{"sku_id": 4039001, "qty": 1}')$$, '22023', NULL, 'quote: lines not an array');
SELECT throws_ok($$SELECT order_engine.quote(7, '[]')$$, '22023', NULL, 'quote: no lines');
SELECT throws_ok($$SELECT order_engine.quote(7, '[{"sku_id": 4039001}]')$$, '22023', NULL, 'quote: line without qty');
SELECT throws_ok($$SELECT order_engine.quote(7, '[{"sku_id": 4039001, "qty": 0}]')$$, '22023', NULL, 'quote: qty 0');
SELECT throws_ok($$SELECT order_engine.quote(7, '[{"sku_id": 4039001, "qty": 1}, {"sku_id": 4039001, "qty": 1}]')$$, '22023', NULL, 'quote: SKU twice');
SELECT throws_ok($$SELECT order_engine.quote(7, (SELECT jsonb_agg(jsonb_build_object('sku_id', g, 'qty', 1)) FROM generate_series(1, 101) g))$$,
                 '22023', NULL, 'quote: 101 lines');
SELECT throws_ok($$SELECT order_engine.quote(7, '[{"sku_id": 4039001, "qty": 1}]', '0 seconds')$$, '22023', NULL, 'quote: ttl 0');
SELECT throws_ok($$SELECT order_engine.quote(7, '[{"sku_id": 4039001, "qty": 1}]', '-1 minute')$$, '22023', NULL, 'quote: negative ttl');
SELECT throws_ok($$SELECT order_engine.quote(7, '[{"sku_id": 4039001, "qty": 1}]', '101 years')$$, '22023', NULL, 'quote: ttl over 100 years');
SELECT throws_ok($$SELECT order_engine.quote(7, '[{"sku_id": 4039999, "qty": 1}]')$$, 'OE008', NULL, 'quote: unknown SKU');
SELECT throws_ok($$SELECT order_engine.quote(7, '[{"sku_id": 4039003, "qty": 1}]')$$, '55000', NULL, 'quote: SKU without a price');
SELECT is((SELECT count(*) FROM order_engine.checkout_quotes), 0::bigint, 'refused quote calls stored nothing');

-- a quote, then a price change: the order is charged the quoted price
CREATE TEMP TABLE q AS
    SELECT 'main'::text AS name, order_engine.quote(7, '[{"sku_id": 4039001, "qty": 2}, {"sku_id": 4039002, "qty": 4}]') AS t;
SELECT matches((SELECT t FROM q WHERE name = 'main'), '^[A-Za-z0-9_-]{43}$', 'a quote token is 43 characters of base64url');
SELECT is((SELECT count(*) FROM order_engine.checkout_quotes c, q
            WHERE position(q.t IN c::text) > 0 OR c.quote_hash <> sha256(convert_to(q.t, 'UTF8'))),
          0::bigint, 'the quote row holds the SHA-256 of the token, never the token');
SELECT order_engine.set_price(4039001, 5.00);

-- place_order's refusals of a quote: OE024, OE025, OE026, each writing nothing
SELECT throws_ok($$SELECT order_engine.place_order(4039101, 7, 1, '[{"sku_id": 4039001, "qty": 2}, {"sku_id": 4039002, "qty": 4}]',
                   '30 minutes', 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA')$$, 'OE024', NULL, 'place_order: unknown quote');
SELECT throws_ok($$SELECT order_engine.place_order(4039101, 7, 1, '[{"sku_id": 4039001, "qty": 2}, {"sku_id": 4039002, "qty": 4}]',
                   '30 minutes', '')$$, 'OE024', NULL, 'place_order: empty quote');
SELECT throws_ok($$SELECT order_engine.place_order(4039101, 8, 1, '[{"sku_id": 4039001, "qty": 2}, {"sku_id": 4039002, "qty": 4}]',
                   '30 minutes', (SELECT t FROM q WHERE name = 'main'))$$, 'OE024', NULL, 'place_order: another buyer''s quote');
SELECT throws_ok($$SELECT order_engine.place_order(4039101, 7, 1, '[{"sku_id": 4039001, "qty": 2}, {"sku_id": 4039002, "qty": 5}]',
                   '30 minutes', (SELECT t FROM q WHERE name = 'main'))$$, 'OE026', NULL, 'place_order: another qty than quoted');
SELECT throws_ok($$SELECT order_engine.place_order(4039101, 7, 1, '[{"sku_id": 4039001, "qty": 2}, {"sku_id": 4039004, "qty": 4}]',
                   '30 minutes', (SELECT t FROM q WHERE name = 'main'))$$, 'OE026', NULL, 'place_order: a SKU that was not quoted');
SELECT throws_ok($$SELECT order_engine.place_order(4039101, 7, 1, '[{"sku_id": 4039001, "qty": 2}]',
                   '30 minutes', (SELECT t FROM q WHERE name = 'main'))$$, 'OE026', NULL, 'place_order: fewer lines than quoted');
SELECT throws_ok($$SELECT order_engine.place_order(4039101, 7, 1, '[{"sku_id": 4039001, "qty": 2}, {"sku_id": 4039002, "qty": 4}, {"sku_id": 4039004, "qty": 1}]',
                   '30 minutes', (SELECT t FROM q WHERE name = 'main'))$$, 'OE026', NULL, 'place_order: more lines than quoted');
SELECT throws_ok($$SELECT order_engine.place_order(4039101, 7, 1, '[{"sku_id": 4039001, "qty": 2}, {"sku_id": 4039002, "qty": 4}]',
                   NULL, (SELECT t FROM q WHERE name = 'main'))$$, '22004', NULL, 'place_order with a quote: null pay_within');
SELECT is(order_engine.order_status(4039101), 'not_found', 'the refused placements wrote no order');

-- the good path, in another order of the lines
SELECT is(order_engine.place_order(4039101, 7, 1, '[{"sku_id": 4039002, "qty": 4}, {"sku_id": 4039001, "qty": 2}]',
                                   '30 minutes', (SELECT t FROM q WHERE name = 'main')),
          'pending_payment', 'place_order with the quote, the lines in another order');
SELECT is((SELECT total FROM order_engine.orders WHERE order_no = 4039101), 13.00::numeric,
          'the total is the quoted one (2 x 4.00 + 4 x 1.25), not today''s (15.00)');
SELECT results_eq($$SELECT sku_id, unit_price FROM order_engine.order_lines WHERE order_no = 4039101 ORDER BY sku_id$$,
                  $$VALUES (4039001::bigint, 4.00::numeric), (4039002, 1.25)$$, 'the lines carry the quoted unit prices');
SELECT is((SELECT count(*) FROM order_engine.checkout_quotes c JOIN q ON c.quote_hash = sha256(convert_to(q.t, 'UTF8'))
            WHERE q.name = 'main'), 0::bigint, 'the quote is used up by the placement');
SELECT throws_ok($$SELECT order_engine.place_order(4039102, 7, 1, '[{"sku_id": 4039001, "qty": 2}, {"sku_id": 4039002, "qty": 4}]',
                   '30 minutes', (SELECT t FROM q WHERE name = 'main'))$$, 'OE024', NULL, 'place_order: a used quote');
SELECT is(order_engine.place_order(4039101, 7, 1, '[{"sku_id": 4039002, "qty": 4}, {"sku_id": 4039001, "qty": 2}]',
                                   '30 minutes', (SELECT t FROM q WHERE name = 'main')),
          'pending_payment', 'a repeat of the placement answers the same without the quote being there');
SELECT is(order_engine.pay_order(4039101, 'pgtap-quote-pay', 13.00), 'paid', 'the quoted total is what is paid');

-- expired: OE025 (the clock of placement is the transaction start)
INSERT INTO q SELECT 'expired', order_engine.quote(7, '[{"sku_id": 4039001, "qty": 1}]');
UPDATE order_engine.checkout_quotes SET expires_at = now() - interval '1 second'
 WHERE quote_hash = (SELECT sha256(convert_to(t, 'UTF8')) FROM q WHERE name = 'expired');
SELECT throws_ok($$SELECT order_engine.place_order(4039103, 7, 1, '[{"sku_id": 4039001, "qty": 1}]',
                   '30 minutes', (SELECT t FROM q WHERE name = 'expired'))$$, 'OE025', NULL, 'place_order: an expired quote');
SELECT throws_ok($$SELECT order_engine.place_order(4039106, 8, 1, '[{"sku_id": 4039001, "qty": 1}]',
                   '30 minutes', (SELECT t FROM q WHERE name = 'expired'))$$, 'OE024', NULL, 'place_order: another buyer''s expired quote is OE024');

-- out_of_stock writes nothing and leaves the quote
INSERT INTO q SELECT 'scarce', order_engine.quote(7, '[{"sku_id": 4039004, "qty": 2}]');
SELECT is(order_engine.place_order(4039104, 7, 1, '[{"sku_id": 4039004, "qty": 2}]', '30 minutes', (SELECT t FROM q WHERE name = 'scarce')),
          'out_of_stock', 'a quoted order beyond the stock is out_of_stock');
SELECT is((SELECT count(*) FROM order_engine.checkout_quotes c JOIN q ON c.quote_hash = sha256(convert_to(q.t, 'UTF8'))
            WHERE q.name = 'scarce'), 1::bigint, 'out_of_stock leaves the quote');

-- the reaper takes the expired quote and leaves the live one
SELECT cmp_ok(order_engine.reap_expired_keys(1000), '>=', 1, 'reap_expired_keys reaps');
SELECT is((SELECT count(*) FROM order_engine.checkout_quotes WHERE expires_at <= now()), 0::bigint, 'no expired quote is left');
SELECT is((SELECT count(*) FROM order_engine.checkout_quotes c JOIN q ON c.quote_hash = sha256(convert_to(q.t, 'UTF8'))
            WHERE q.name = 'scarce'), 1::bigint, 'a live quote stays');

-- the application role quotes and places with the quote, and cannot read the quotes
CREATE TEMP TABLE app_out (what text, got text);
GRANT ALL ON app_out TO order_engine_app;
SET ROLE order_engine_app;
INSERT INTO app_out SELECT 'quote', order_engine.quote(9, '[{"sku_id": 4039002, "qty": 1}]');
INSERT INTO app_out SELECT 'place', order_engine.place_order(4039105, 9, 1, '[{"sku_id": 4039002, "qty": 1}]',
                                                            '30 minutes', (SELECT got FROM app_out WHERE what = 'quote'));
DO $$
BEGIN
    PERFORM count(*) FROM order_engine.checkout_quotes;
    INSERT INTO app_out VALUES ('read', 'read the quotes');
EXCEPTION WHEN OTHERS THEN
    INSERT INTO app_out VALUES ('read', SQLSTATE);
END $$;
INSERT INTO app_out SELECT 'who', current_user;
RESET ROLE;
SELECT is((SELECT got FROM app_out WHERE what = 'place'), 'pending_payment', 'the app role places an order with its quote');
SELECT is((SELECT got FROM app_out WHERE what = 'read'), '42501', 'the app role cannot read the quote table (42501)');
SELECT is((SELECT got FROM app_out WHERE what = 'who'), 'order_engine_app', 'after quote and place_order the caller is itself again');

SELECT * FROM finish();
ROLLBACK;
