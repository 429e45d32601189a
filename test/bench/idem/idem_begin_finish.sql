-- The same job with order_engine: begin, (the work), finish.
\set k random(1, 9000000000000000000)
BEGIN;
SELECT state, response FROM order_engine.idem_begin('bench', (:k)::text, '{"sku": 2, "order_no": 1}');
SELECT order_engine.idem_finish('bench', (:k)::text, '{"status": "ok"}');
COMMIT;
