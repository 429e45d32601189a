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
# Every run is repeated OE_BENCH_ROUNDS times (default 3, OE_BENCH_SECONDS
# each, default 4 here), the rounds interleaved, and a ratio is taken over
# the summed throughput: on a shared machine the load drifts by 2x within
# a minute, and interleaving gives both sides of a ratio the same drift.
#
#   OE_BENCH_BINDIR=/path/to/bin test/bench/stock.sh
set -euo pipefail
: "${OE_BENCH_SECONDS:=4}"
export OE_BENCH_SECONDS
ROUNDS=${OE_BENCH_ROUNDS:-3}
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

echo "stock benchmark: $BENCH_CLIENTS clients, $ROUNDS rounds of ${BENCH_SECONDS}s per run, synchronous_commit = on"
declare -A TOTAL
RUNS="plain_hot_row:plain_hot reserve_hot_16_buckets:reserve_hot select_1:select1
      reserve_sold_out:reserve_soldout floor_c_function:floor_plain
      floor_c_definer_set_path:floor_definer plain_10k_rows:plain_10k reserve_10k_skus:reserve_10k"
for round in $(seq 1 "$ROUNDS"); do
    echo "-- round $round"
    for run in $RUNS; do
        name=${run%%:*}
        bench_pgbench "$name" "$S/${run#*:}.sql" -M prepared
        TOTAL[$name]=$(awk -v a="${TOTAL[$name]:-0}" -v b="$BENCH_TPS" 'BEGIN { printf "%.1f", a + b }')
    done
done
echo "-- mean tps over $ROUNDS rounds"
for run in $RUNS; do
    name=${run%%:*}
    awk -v n="$name" -v t="${TOTAL[$name]}" -v r="$ROUNDS" 'BEGIN { printf "%-40s %10.0f tps\n", n, t / r }'
done
plain_hot=${TOTAL[plain_hot_row]} reserve_hot=${TOTAL[reserve_hot_16_buckets]}
select1=${TOTAL[select_1]} soldout=${TOTAL[reserve_sold_out]}
floor_plain=${TOTAL[floor_c_function]} floor_definer=${TOTAL[floor_c_definer_set_path]}
plain_10k=${TOTAL[plain_10k_rows]} reserve_10k=${TOTAL[reserve_10k_skus]}

bench_psql -At -c "SELECT 'stock_audit: ' || count(*) FILTER (WHERE ok) || ' ok, ' || count(*) FILTER (WHERE NOT ok) || ' not ok' FROM order_engine.stock_audit()"
bench_ratio "reserve, hot SKU in 16 buckets / plain UPDATE+INSERT one row" "$reserve_hot" "$plain_hot" 3
bench_ratio "reserve on a sold-out SKU / SELECT 1" "$soldout" "$select1" 0.8
bench_ratio "  floor: no-op C function / SELECT 1" "$floor_plain" "$select1" 0.8
bench_ratio "  floor: no-op C, SECURITY DEFINER + SET / SELECT 1" "$floor_definer" "$select1" 0.8
bench_ratio "reserve over 10,000 SKUs / plain UPDATE+INSERT, 10,000 rows" "$reserve_10k" "$plain_10k" 1.0
