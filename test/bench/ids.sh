#!/usr/bin/env bash
# test/bench/ids.sh: next_id (segments in shared memory) against nextval on
# a plain sequence, measured in the same run on one server.
#
#  1. one backend: SELECT count(order_engine.next_id('t')) FROM
#     generate_series(1, 5000000) vs the same with nextval on a CACHE 1
#     sequence (goal: ratio >= 1.0);
#  2. 16 clients, one id per transaction: SELECT order_engine.next_id('t')
#     vs SELECT nextval('s') (goal: tps ratio >= 0.95, p99 no worse).
#
#   OE_BENCH_BINDIR=/tmp/order_engine-test.XXXX/install/usr/lib/postgresql/15/bin test/bench/ids.sh
set -euo pipefail
. "$(dirname "$0")/lib.sh"

bench_start
bench_psql -c "SELECT order_engine.create_id_tag('t')" \
           -c "CREATE SEQUENCE s CACHE 1" -c "CREATE SEQUENCE s1000 CACHE 1000" >/dev/null

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; bench_stop' EXIT
echo "SELECT count(order_engine.next_id('t')) FROM generate_series(1, 5000000);" >"$tmp/bulk_next_id.sql"
echo "SELECT count(nextval('s')) FROM generate_series(1, 5000000);" >"$tmp/bulk_nextval.sql"
echo "SELECT count(nextval('s1000')) FROM generate_series(1, 5000000);" >"$tmp/bulk_nextval1000.sql"
echo "SELECT order_engine.next_id('t');" >"$tmp/next_id.sql"
echo "SELECT nextval('s');" >"$tmp/nextval.sql"

echo "== one backend, 5M ids per transaction (tps x 5M = ids/s)"
SAVE_CLIENTS=$BENCH_CLIENTS
BENCH_CLIENTS=1
bench_pgbench bulk_next_id "$tmp/bulk_next_id.sql" -j 1
A=$BENCH_TPS
bench_pgbench bulk_nextval_cache1 "$tmp/bulk_nextval.sql" -j 1
B=$BENCH_TPS
bench_pgbench bulk_nextval_cache1000 "$tmp/bulk_nextval1000.sql" -j 1
C=$BENCH_TPS
BENCH_CLIENTS=$SAVE_CLIENTS
awk -v a="$A" -v b="$B" -v c="$C" 'BEGIN { printf "ids/s: next_id %.2fM, nextval CACHE 1 %.2fM, nextval CACHE 1000 %.2fM\n", a*5, b*5, c*5 }'
bench_ratio "next_id / nextval CACHE 1, one backend" "$A" "$B" 1.0
bench_ratio "next_id / nextval CACHE 1000, one backend (no goal)" "$A" "$C" 0

echo "== $BENCH_CLIENTS clients, one id per transaction"
bench_pgbench next_id "$tmp/next_id.sql"
A=$BENCH_TPS; AP=$BENCH_P99
bench_pgbench nextval "$tmp/nextval.sql"
B=$BENCH_TPS; BP=$BENCH_P99
bench_ratio "next_id / nextval tps, $BENCH_CLIENTS clients" "$A" "$B" 0.95
bench_ratio "nextval p99 / next_id p99 (>= 1: next_id no worse)" "$BP" "$AP" 1.0
bench_psql -c "SELECT biz_tag, max_id, step, current_step, fetches FROM order_engine.id_segments WHERE biz_tag = 't'"
