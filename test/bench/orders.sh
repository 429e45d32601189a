#!/usr/bin/env bash
# test/bench/orders.sh: place_order with 3 lines at 16 clients
# (synchronous_commit = on) against the same writes done by a client as
# plain SQL statements in one transaction: existence check, three
# conditional stock updates, hold rows, order row, line rows, event row.
# Goal: >= 2x.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

bench_start
bench_psql <<'SQL'
SELECT order_engine.restock(g, 100000000) FROM generate_series(1, 999) g;
SELECT order_engine.set_price(g, 1.50 + g % 7) FROM generate_series(1, 999) g;
CREATE SEQUENCE ono CACHE 100;

-- the plain-SQL schema a client would write
CREATE TABLE p_stock (sku_id bigint PRIMARY KEY, available bigint NOT NULL CHECK (available >= 0),
                      held bigint NOT NULL DEFAULT 0, price numeric NOT NULL);
INSERT INTO p_stock SELECT g, 100000000, 0, 1.50 + g % 7 FROM generate_series(1, 999) g;
CREATE TABLE p_hold (order_no bigint, sku_id bigint, qty bigint, state text, expires_at timestamptz,
                     PRIMARY KEY (order_no, sku_id));
CREATE TABLE p_orders (order_no bigint PRIMARY KEY, buyer_id bigint, seller_id bigint, status text,
                       total numeric, pay_deadline timestamptz, created_at timestamptz DEFAULT now());
CREATE TABLE p_lines (order_no bigint, line_no int, sku_id bigint, qty bigint, unit_price numeric,
                      line_total numeric, PRIMARY KEY (order_no, line_no));
CREATE TABLE p_events (event_id bigserial PRIMARY KEY, order_no bigint, event text,
                       created_at timestamptz DEFAULT now());
SQL

cat >"$BENCH_DIR/engine.sql" <<'EOF2'
\set s1 random(1, 333)
\set s2 random(334, 666)
\set s3 random(667, 999)
\set buyer random(1, 100000)
SELECT nextval('ono') AS n \gset
SELECT order_engine.place_order(:n, :buyer, 1, jsonb_build_array(
    jsonb_build_object('sku_id', :s1, 'qty', 1),
    jsonb_build_object('sku_id', :s2, 'qty', 2),
    jsonb_build_object('sku_id', :s3, 'qty', 1)));
EOF2

cat >"$BENCH_DIR/plain.sql" <<'EOF2'
\set s1 random(1, 333)
\set s2 random(334, 666)
\set s3 random(667, 999)
\set buyer random(1, 100000)
SELECT nextval('ono') AS n \gset
BEGIN;
SELECT 1 FROM p_orders WHERE order_no = :n;
UPDATE p_stock SET available = available - 1, held = held + 1 WHERE sku_id = :s1 AND available >= 1 RETURNING price AS p1 \gset
UPDATE p_stock SET available = available - 2, held = held + 2 WHERE sku_id = :s2 AND available >= 2 RETURNING price AS p2 \gset
UPDATE p_stock SET available = available - 1, held = held + 1 WHERE sku_id = :s3 AND available >= 1 RETURNING price AS p3 \gset
INSERT INTO p_hold VALUES (:n, :s1, 1, 'held', now() + interval '30 minutes'),
                          (:n, :s2, 2, 'held', now() + interval '30 minutes'),
                          (:n, :s3, 1, 'held', now() + interval '30 minutes');
INSERT INTO p_orders VALUES (:n, :buyer, 1, 'pending_payment', :p1 + 2 * :p2 + :p3, now() + interval '30 minutes');
INSERT INTO p_lines VALUES (:n, 1, :s1, 1, :p1, :p1), (:n, 2, :s2, 2, :p2, 2 * :p2), (:n, 3, :s3, 1, :p3, :p3);
INSERT INTO p_events (order_no, event) VALUES (:n, 'placed');
COMMIT;
EOF2

echo "place_order, 3 lines, $BENCH_CLIENTS clients, ${BENCH_SECONDS}s each, synchronous_commit = on"
bench_pgbench plain_sql "$BENCH_DIR/plain.sql"; plain=$BENCH_TPS
bench_pgbench place_order "$BENCH_DIR/engine.sql"; engine=$BENCH_TPS
bench_ratio "place_order vs plain SQL transaction" "$engine" "$plain" 2
