--
-- One-time checkout tokens: issue_token and consume_token.
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

SELECT order_engine.issue_token(7) AS t1 \gset
SELECT order_engine.issue_token(7, '1 hour') AS t2 \gset
-- 43 characters of base64url (256 random bits), different every time
SELECT :'t1' ~ '^[A-Za-z0-9_-]{43}$' AS t1_format, :'t2' ~ '^[A-Za-z0-9_-]{43}$' AS t2_format,
       :'t1' <> :'t2' AS distinct_tokens;
-- only the SHA-256 is stored, never the token
SELECT buyer_id, expires_at - created_at AS ttl
  FROM order_engine.checkout_tokens
 WHERE token_hash IN (sha256(convert_to(:'t1', 'UTF8')), sha256(convert_to(:'t2', 'UTF8')))
 ORDER BY ttl;
-- and no column of any row holds a token, as text or as bytes (bytea
-- columns appear in hex in to_jsonb); columns added later are checked too
SELECT count(*) AS columns_holding_a_token
  FROM order_engine.checkout_tokens c, jsonb_each_text(to_jsonb(c)) AS col(name, value),
       (VALUES (:'t1'), (:'t2')) AS t(token)
 WHERE position(t.token IN col.value) > 0
    OR position(encode(convert_to(t.token, 'UTF8'), 'hex') IN col.value) > 0;

-- another buyer: false, and the token is not burnt
SELECT order_engine.consume_token(8, :'t1') AS other_buyer;
-- its buyer: true exactly once
SELECT order_engine.consume_token(7, :'t1') AS first;
SELECT order_engine.consume_token(7, :'t1') AS second;
-- a consumption that rolls back leaves the token usable
BEGIN;
SELECT order_engine.consume_token(7, :'t2') AS in_rolled_back_tx;
ROLLBACK;
SELECT order_engine.consume_token(7, :'t2') AS after_rollback;

-- expired: false
SELECT order_engine.issue_token(9, '10 minutes') AS t3 \gset
UPDATE order_engine.checkout_tokens SET expires_at = now() - interval '1 second'
 WHERE token_hash = sha256(convert_to(:'t3', 'UTF8'));
SELECT order_engine.consume_token(9, :'t3') AS expired;

-- unknown, malformed, altered or hostile strings are simply not tokens
SELECT order_engine.issue_token(7) AS t4 \gset
SELECT order_engine.consume_token(7, 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA') AS unknown,
       order_engine.consume_token(7, '') AS empty,
       order_engine.consume_token(7, $$' OR '1'='1$$) AS injection,
       order_engine.consume_token(7, translate(:'t4', 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_',
                                              'BCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_A')) AS altered,
       order_engine.consume_token(7, :'t4' || 'x') AS extended,
       order_engine.consume_token(7, left(:'t4', 42)) AS truncated;
SELECT order_engine.consume_token(7, :'t4') AS the_real_one;

-- bad input
SELECT pg_temp.try($$SELECT order_engine.issue_token(NULL)$$);
SELECT pg_temp.try($$SELECT order_engine.issue_token(1, NULL)$$);
SELECT pg_temp.try($$SELECT order_engine.issue_token(1, '0 seconds')$$);
SELECT pg_temp.try($$SELECT order_engine.issue_token(1, '-5 minutes')$$);
SELECT pg_temp.try($$SELECT order_engine.consume_token(NULL, 'x')$$);
SELECT pg_temp.try($$SELECT order_engine.consume_token(1, NULL)$$);
SELECT count(*) AS tokens_of_buyer_1 FROM order_engine.checkout_tokens WHERE buyer_id = 1;
