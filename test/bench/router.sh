#!/usr/bin/env bash
# test/bench/router.sh: place_order TPS through the PL/Proxy router
# (scripts/cluster.sh) with 1, 2 and 4 order shards (2 stock shards),
# against a direct connection to one preloaded node, 16 clients, 2 lines.
# On this 2-core machine every server shares the same cores, so the ratio
# is the routing overhead (2 stock round trips + 2 order round trips per
# order), not scaling; docs/scale-out.md says how the design grows.
#
#   sudo test/bench/router.sh            (OE_BENCH_SECONDS, OE_BENCH_CLIENTS as lib.sh)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || exec sudo --preserve-env=OE_BENCH_SECONDS,OE_BENCH_CLIENTS,OE_BENCH_BINDIR,OE_CLUSTER_SKIP_BUILD "$0" "$@"

PLACE=$(mktemp /tmp/order_engine-bench-router.XXXXXX.sql)
cat >"$PLACE" <<'SQL'
\set buyer random(1, 1000000)
\set s1 random(1, 500)
\set s2 random(501, 1000)
SELECT order_engine.place_order(order_engine.next_order_no(:buyer), :buyer, 1,
       jsonb_build_array(jsonb_build_object('sku_id', :s1, 'qty', 1),
                         jsonb_build_object('sku_id', :s2, 'qty', 1)), '30 minutes');
SQL
chmod 644 "$PLACE"
SETUP="SELECT order_engine.restock(g, 100000000) FROM generate_series(1, 1000) g;
       SELECT order_engine.set_price(g, 2) FROM generate_series(1, 1000) g;"

# one node, direct
bench_start
bench_psql <<<"$SETUP" >/dev/null
bench_pgbench direct "$PLACE"
DIRECT=$BENCH_TPS
bench_stop
trap - EXIT

declare -A TPS
for n in 1 2 4; do
    work=/tmp/order_engine-bench-cluster$n
    port=$((56000 + 100 * n))
    OE_CLUSTER_WORK=$work OE_CLUSTER_PORT=$port "$BENCH_ROOT/scripts/cluster.sh" start $n >/dev/null
    # the saga's relay competes for the same cores: stop it for the measurement
    kill -- -"$(cat "$work/relay.pid")" 2>/dev/null || true
    runuser -u postgres -- "$BENCH_BINDIR/psql" -X -q -h "$work/sock" -p "$port" -d oe <<<"$SETUP" >/dev/null
    log=$work/bench.log
    runuser -u postgres -- "$BENCH_BINDIR/pgbench" -n -h "$work/sock" -p "$port" -c "$BENCH_CLIENTS" -j 2 \
        -T "$BENCH_SECONDS" -f "$PLACE" oe >"$log" 2>&1 || { cat "$log"; exit 1; }
    TPS[$n]=$(awk '/^tps/ {print int($3); exit}' "$log")
    printf '%-10s %8s tps\n' "router/$n" "${TPS[$n]}"
    OE_CLUSTER_WORK=$work OE_CLUSTER_PORT=$port "$BENCH_ROOT/scripts/cluster.sh" stop >/dev/null
    rm -rf "$work"
done
rm -f "$PLACE"
echo
for n in 1 2 4; do
    bench_ratio "place_order through the router, $n order shard(s) / direct" "${TPS[$n]}" "$DIRECT" 0.25
done
