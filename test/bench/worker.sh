#!/usr/bin/env bash
# test/bench/worker.sh: how timely and how cheap the worker is.
#  1. release lag (expiry -> released) p50/p99 with 1k and 10k holds
#     expiring per second;
#  2. time to drain a backlog of 100k expired holds;
#  3. foreground reserve TPS with sweeping and archiving running vs without
#     (goal: at most 10 % drop).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

bench_start "order_engine.naptime = '10s'" "order_engine.archive_after = 0" \
    "order_engine.archive_pause = '10ms'"
bench_psql -c "SELECT order_engine.restock(1, 1000000000)" >/dev/null

# reserve_many FIRST N: N one-unit holds for orders FIRST.., 1000 per transaction
reserve_many() {
    bench_psql -q <<SQL
DO \$\$
BEGIN
    FOR i IN 0 .. ($2 - 1) / 1000 LOOP
        PERFORM order_engine.reserve(g, ARRAY[1]::bigint[], ARRAY[1]::bigint[], '1 hour')
           FROM generate_series($1 + i * 1000, LEAST($1 + $2 - 1, $1 + i * 1000 + 999)) g;
        COMMIT;
    END LOOP;
END
\$\$;
SQL
}

# holds expiring at $1 per second for $2 seconds, starting 2 s from now
lag_run() {
    local rate=$1 secs=$2 n
    n=$((rate * secs))
    reserve_many 1 "$n"
    bench_psql -q <<SQL
UPDATE order_engine.stock_hold SET expires_at = clock_timestamp() + interval '2 seconds'
                                               + (order_no - 1) * interval '1 second' / $rate
 WHERE state = 'held';
SELECT pg_reload_conf();   -- the worker recomputes its sleep
SQL
    sleep $((secs + 4))
    bench_psql -At -c "
SELECT format('release lag at %s holds/s: p50 %s ms, p99 %s ms, max %s ms, %s of %s released',
       $rate,
       round(extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY updated_at - expires_at)) * 1000, 1),
       round(extract(epoch FROM percentile_cont(0.99) WITHIN GROUP (ORDER BY updated_at - expires_at)) * 1000, 1),
       round(extract(epoch FROM max(updated_at - expires_at)) * 1000, 1),
       count(*) FILTER (WHERE state = 'released'), count(*))
  FROM order_engine.stock_hold"
    bench_psql -q -c "TRUNCATE order_engine.stock_hold"
}
lag_run 1000 5
lag_run 10000 3

# a backlog of 100k expired holds
bench_psql -q <<'SQL'
ALTER SYSTEM SET order_engine.database = 'nowhere';
SELECT pg_reload_conf();
SQL
sleep 1
reserve_many 1000001 100000
bench_psql -q <<'SQL'
UPDATE order_engine.stock_hold SET expires_at = now() - interval '1 second' WHERE state = 'held';
SQL
start=$(date +%s.%N)
bench_psql -q -c "ALTER SYSTEM SET order_engine.database = 'bench'" -c "SELECT pg_reload_conf()"
while [ "$(bench_psql -At -c "SELECT count(*) FROM order_engine.stock_hold WHERE state = 'held'")" != 0 ]; do
    sleep 0.2
done
end=$(date +%s.%N)
awk -v s="$start" -v e="$end" 'BEGIN { printf "drain of 100000 expired holds: %.1f s (%.0f holds/s)\n", e - s, 100000 / (e - s) }'

# foreground reserve TPS on a hot bucketed SKU, 1-second holds: with the
# worker sweeping them and archiving 50k finished orders (default batch and
# pause), then with the worker switched off
bench_psql -q <<'SQL'
TRUNCATE order_engine.stock_hold;
CREATE SEQUENCE rno START 10000000 CACHE 100;
SELECT order_engine.restock(2, 1000000000);
SELECT order_engine.set_buckets(2, 16);
SELECT order_engine.set_price(1, 1);
ALTER SYSTEM SET order_engine.archive_pause = '100ms';
ALTER SYSTEM SET order_engine.database = 'nowhere';
SELECT pg_reload_conf();
SQL
cat >"$BENCH_DIR/reserve.sql" <<'EOF2'
SELECT order_engine.reserve(nextval('rno'), ARRAY[2]::bigint[], ARRAY[1]::bigint[], '1 second');
EOF2
bench_psql -q <<'SQL'
DO $$
BEGIN
    FOR i IN 0 .. 49 LOOP
        PERFORM order_engine.place_order(g, g % 1000, 1, '[{"sku_id": 1, "qty": 1}]'),
                order_engine.cancel_order(g)
           FROM generate_series(20000001 + i * 1000, 20000000 + i * 1000 + 1000) g;
        COMMIT;
    END LOOP;
END
$$;
SQL
echo "foreground reserve on a 16-bucket SKU, $BENCH_CLIENTS clients, ${BENCH_SECONDS}s each"
cat >"$BENCH_DIR/reserve_long.sql" <<'EOF2'
SELECT order_engine.reserve(nextval('rno'), ARRAY[2]::bigint[], ARRAY[1]::bigint[], '1 hour');
EOF2
bench_pgbench reserve_worker_off "$BENCH_DIR/reserve_long.sql"; off=$BENCH_TPS
bench_psql -q -c "ALTER SYSTEM SET order_engine.database = 'bench'" -c "SELECT pg_reload_conf()"
sleep 1
bench_pgbench reserve_while_archiving "$BENCH_DIR/reserve_long.sql"; archiving=$BENCH_TPS
bench_psql -At -c "SELECT 'meanwhile the worker archived ' || count(*) || ' orders' FROM order_engine_archive.orders"
bench_pgbench reserve_1s_holds_swept "$BENCH_DIR/reserve.sql"; sweeping=$BENCH_TPS
bench_psql -At -c "SELECT 'the worker released ' || count(*) || ' expired holds' FROM order_engine.stock_hold WHERE state = 'released' AND expires_at > now() - interval '1 minute'"
bench_ratio "reserve TPS while the worker archives vs worker off" "$archiving" "$off" 0.9
bench_ratio "reserve TPS, 1 s holds swept as they expire, vs off" "$sweeping" "$off" 0.9
