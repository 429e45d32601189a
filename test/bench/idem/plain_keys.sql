-- What a client writes by hand: claim with INSERT ... ON CONFLICT DO
-- NOTHING, read the row back, store the response.
\set k random(1, 9000000000000000000)
BEGIN;
INSERT INTO plain_keys (scope, key, fingerprint, state, claimed_at, expires_at)
    VALUES ('bench', (:k)::text, sha256('{"sku": 2, "order_no": 1}'::bytea), 'in_progress', now(), now() + interval '24 hours')
    ON CONFLICT DO NOTHING;
SELECT state, response FROM plain_keys WHERE scope = 'bench' AND key = (:k)::text;
UPDATE plain_keys SET state = 'completed', response = '{"status": "ok"}'
    WHERE scope = 'bench' AND key = (:k)::text;
COMMIT;
