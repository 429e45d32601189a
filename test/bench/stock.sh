#!/usr/bin/env bash
# test/bench/stock.sh: order_engine's stock against plain SQL, same run,
# same server, 16 clients, synchronous_commit = on (lib.sh).
#
#   1. reserve() of one unit of one hot SKU spread over 16 buckets vs the
#      plain transaction UPDATE stock ... available >= 1 + INSERT hold on
#      one row (goal >= 3x)
#   2. reserve() on a sold-out SKU vs SELECT 1 (goal >= 0.8), with two
#      floors for it: a C function that does nothing (int8eq) called the
#      same way, plain and with reserve's attributes (SECURITY DEFINER +
#      SET search_path, which saves and restores GUCs on every call)
#   3. reserve() of one unit of a random one of 10,000 plain SKUs vs the
#      same plain transaction on a random one of 10,000 rows (goal >= 1.0)
#
#   OE_BENCH_BINDIR=/path/to/bin test/bench/stock.sh
set -euo pipefail
. "$(dirname "$0")/lib.sh"

bench_start
bench_psql <<'SQL'
CREATE TABLE plain_stock (sku_id bigint PRIMARY KEY, available bigint NOT NULL CHECK (available >= 0));
CREATE TABLE plain_hold (order_no bigint NOT NULL, sku_id bigint NOT NULL, qty bigint NOT NULL,
                         expires_at timestamptz NOT NULL, PRIMARY KEY (order_no, sku_id));
INSERT INTO plain_stock SELECT g, 1000000000000 FROM generate_series(1, 10000) g;
SELECT order_engine.restock(1, 1000000000000);
SELECT order_engine.set_buckets(1, 16);
SELECT order_engine.restock(2, 1);
SELECT order_engine.try_deduct(2, 1);
SELECT count(order_engine.restock(g, 1000000000000)) FROM generate_series(100001, 110000) g;
CREATE FUNCTION floor_plain(bigint, bigint) RETURNS boolean
    LANGUAGE internal STRICT VOLATILE AS 'int8eq';
CREATE FUNCTION floor_definer(bigint, bigint) RETURNS boolean
    LANGUAGE internal STRICT VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS 'int8eq';
VACUUM ANALYZE;
CHECKPOINT;
SQL

S=$(mktemp -d)
trap 'rm -rf "$S"; bench_stop' EXIT
cat >"$S/plain_hot.sql" <<'EOF2'
\set o random(1, 9000000000000000000)
BEGIN;
UPDATE plain_stock SET available = available - 1 WHERE sku_id = 1 AND available >= 1;
INSERT INTO plain_hold VALUES (:o, 1, 1, now() + interval '30 minutes');
END;
EOF2
cat >"$S/reserve_hot.sql" <<'EOF2'
\set o random(1, 9000000000000000000)
SELECT order_engine.reserve(:o, ARRAY[1]::bigint[], ARRAY[1]::bigint[]);
EOF2
cat >"$S/select1.sql" <<'EOF2'
SELECT 1;
EOF2
cat >"$S/reserve_soldout.sql" <<'EOF2'
\set o random(1, 9000000000000000000)
SELECT order_engine.reserve(:o, ARRAY[2]::bigint[], ARRAY[1]::bigint[]);
EOF2
cat >"$S/floor_plain.sql" <<'EOF2'
\set o random(1, 9000000000000000000)
SELECT floor_plain(:o, 2);
EOF2
cat >"$S/floor_definer.sql" <<'EOF2'
\set o random(1, 9000000000000000000)
SELECT floor_definer(:o, 2);
EOF2
cat >"$S/plain_10k.sql" <<'EOF2'
\set o random(1, 9000000000000000000)
\set s random(1, 10000)
BEGIN;
UPDATE plain_stock SET available = available - 1 WHERE sku_id = :s AND available >= 1;
INSERT INTO plain_hold VALUES (:o, :s, 1, now() + interval '30 minutes');
END;
EOF2
cat >"$S/reserve_10k.sql" <<'EOF2'
\set o random(1, 9000000000000000000)
\set s random(100001, 110000)
SELECT order_engine.reserve(:o, ARRAY[:s]::bigint[], ARRAY[1]::bigint[]);
EOF2

echo "stock benchmark: $BENCH_CLIENTS clients, ${BENCH_SECONDS}s per run, synchronous_commit = on"
bench_pgbench plain_hot_row "$S/plain_hot.sql" -M prepared;        plain_hot=$BENCH_TPS
bench_pgbench reserve_hot_16_buckets "$S/reserve_hot.sql" -M prepared; reserve_hot=$BENCH_TPS
bench_pgbench select_1 "$S/select1.sql" -M prepared;               select1=$BENCH_TPS
bench_pgbench reserve_sold_out "$S/reserve_soldout.sql" -M prepared; soldout=$BENCH_TPS
bench_pgbench floor_c_function "$S/floor_plain.sql" -M prepared;   floor_plain=$BENCH_TPS
bench_pgbench floor_c_definer_set_path "$S/floor_definer.sql" -M prepared; floor_definer=$BENCH_TPS
bench_pgbench plain_10k_rows "$S/plain_10k.sql" -M prepared;       plain_10k=$BENCH_TPS
bench_pgbench reserve_10k_skus "$S/reserve_10k.sql" -M prepared;   reserve_10k=$BENCH_TPS

bench_psql -At -c "SELECT 'stock_audit: ' || count(*) FILTER (WHERE ok) || ' ok, ' || count(*) FILTER (WHERE NOT ok) || ' not ok' FROM order_engine.stock_audit()"
bench_ratio "reserve, hot SKU in 16 buckets / plain UPDATE+INSERT one row" "$reserve_hot" "$plain_hot" 3
bench_ratio "reserve on a sold-out SKU / SELECT 1" "$soldout" "$select1" 0.8
bench_ratio "  floor: no-op C function / SELECT 1" "$floor_plain" "$select1" 0.8
bench_ratio "  floor: no-op C, SECURITY DEFINER + SET / SELECT 1" "$floor_definer" "$select1" 0.8
bench_ratio "reserve over 10,000 SKUs / plain UPDATE+INSERT, 10,000 rows" "$reserve_10k" "$plain_10k" 1.0
