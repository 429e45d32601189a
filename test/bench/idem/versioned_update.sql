-- The same with versioned_update.
\set id :client_id * 10000 + random(1, 10000)
SELECT version AS v FROM vu_oe WHERE id = :id \gset
SELECT order_engine.versioned_update('vu_oe', jsonb_build_object('id', (:id)::bigint), (:v)::bigint, '{"note": "shipped"}');
