-- Hand-written optimistic update: read the version, update if unchanged.
\set id :client_id * 10000 + random(1, 10000)
SELECT version AS v FROM vu_plain WHERE id = :id \gset
UPDATE vu_plain SET note = 'shipped', version = version + 1 WHERE id = :id AND version = :v;
