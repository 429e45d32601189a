\pset footer off
\echo
\echo '== flash sale summary'
SELECT count(*) FILTER (WHERE result IN ('pending_payment', 'paid', 'cancelled')) AS placed,
       (SELECT count(*) FROM order_engine.payments WHERE outcome = 'paid') AS paid,
       count(*) FILTER (WHERE result = 'cancelled') AS cancelled,
       count(*) FILTER (WHERE result = 'out_of_stock') AS out_of_stock,
       count(*) FILTER (WHERE result = 'purchase_limit') AS over_limit,
       count(*) AS attempts
  FROM demo_attempt;
SELECT count(*) AS released_by_worker,
       round(extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY updated_at - expires_at)) * 1000) AS lag_p50_ms,
       round(extract(epoch FROM percentile_cont(0.99) WITHIN GROUP (ORDER BY updated_at - expires_at)) * 1000) AS lag_p99_ms,
       round(extract(epoch FROM max(updated_at - expires_at)) * 1000) AS lag_max_ms
  FROM order_engine.stock_hold h
 WHERE h.state = 'released'
   AND h.order_no NOT IN (SELECT order_no FROM demo_attempt WHERE result = 'cancelled');
SELECT status, count(*) FROM order_engine.orders GROUP BY status ORDER BY status;
SELECT sku_id, available, held, sold FROM order_engine.stock WHERE sku_id = 1;
SELECT CASE WHEN bool_and(ok) THEN 'clean' ELSE 'FAILED' END AS stock_audit FROM order_engine.stock_audit();
SELECT job, total_rows, errors FROM order_engine.worker_status ORDER BY job;
