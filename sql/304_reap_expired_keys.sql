--
-- reap_expired_keys: expired idempotency keys and checkout tokens go, in
-- batches of at most max_rows, keys first; live ones stay.
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

-- start from nothing expired (other files' keys expire in a day)
SELECT order_engine.reap_expired_keys(1000000) >= 0 AS clean;

SELECT count(*) FROM (SELECT order_engine.idem_begin('reap', 'k' || i, '{}') FROM generate_series(1, 5) i) s;
SELECT order_engine.idem_finish('reap', 'k1', '{"ok": true}');
SELECT count(*) FROM (SELECT order_engine.issue_token(500 + i) FROM generate_series(1, 3) i) s;
-- k1..k3 and two tokens expire; k4, k5 and one token do not.  In one
-- transaction, so a maintenance worker cannot reap them between the steps.
BEGIN;
UPDATE order_engine.idempotency_keys SET expires_at = now() - interval '1 minute'
 WHERE scope = 'reap' AND key IN ('k1', 'k2', 'k3');
UPDATE order_engine.checkout_tokens SET expires_at = now() - interval '1 minute'
 WHERE buyer_id IN (501, 502);

SELECT order_engine.reap_expired_keys(2) AS first_batch;
SELECT order_engine.reap_expired_keys(2) AS second_batch;
SELECT order_engine.reap_expired_keys() AS third_batch;
SELECT order_engine.reap_expired_keys() AS nothing_left;
COMMIT;
SELECT key, state FROM order_engine.idempotency_keys WHERE scope = 'reap' ORDER BY key;
SELECT buyer_id FROM order_engine.checkout_tokens WHERE buyer_id > 500 ORDER BY 1;

SELECT pg_temp.try($$SELECT order_engine.reap_expired_keys(0)$$);
SELECT pg_temp.try($$SELECT order_engine.reap_expired_keys(-1)$$);
SELECT pg_temp.try($$SELECT order_engine.reap_expired_keys(NULL)$$);
SELECT pg_temp.try($$SELECT order_engine.reap_expired_keys(1000001)$$);
