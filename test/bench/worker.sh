#!/usr/bin/env bash
# test/bench/worker.sh: how timely and how cheap the worker is.
#  1. release lag with 1k and 10k holds expiring per second: from a hold's
#     expiry to the COMMIT of the transaction that released it (its
#     commit timestamp, track_commit_timestamp = on: the released row's
#     xmin is the releasing (sub)transaction), p50/p99/max over the holds
#     released by the end of the measurement (2 s after the last expiry);
#     holds still held then are left out and counted.  The lag to the start
#     of the releasing transaction (the row's updated_at) is printed too.
#  2. time to drain a backlog of 100k expired holds;
#  3. foreground reserve TPS on a 16-bucket SKU with the worker off, while
#     it archives 50k finished orders, and while it sweeps 1-second holds
#     as they expire (goal: at most 10 % drop).  The three sides alternate
#     in OE_BENCH_ROUNDS rounds (default 3); every run starts on a fresh
#     copy of the same set-up database (bench_fresh_db: same table sizes,
#     the same 50k orders to archive); the ratios are medians of the
#     per-round ratios against the same round's run with the worker off.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ROUNDS=$BENCH_ROUNDS

bench_start "order_engine.naptime = '10s'" "order_engine.archive_after = 0" \
    "order_engine.archive_pause = '10ms'" "track_commit_timestamp = on"
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
    local rate=$1 secs=$2 n set_at
    n=$((rate * secs))
    reserve_many 1 "$n"
    bench_psql -q <<SQL >/dev/null
UPDATE order_engine.stock_hold SET expires_at = now() + interval '2 seconds'
                                               + (order_no - 1) * interval '1 second' / $rate
 WHERE state = 'held';
SELECT pg_reload_conf();   -- the worker recomputes its sleep
SQL
    # when the new expiries became visible to the worker: the commit of the
    # UPDATE, read from the hold that falls due last (not released yet)
    set_at=$(bench_psql -At -c "SELECT pg_xact_commit_timestamp(xmin) FROM order_engine.stock_hold WHERE order_no = $n")
    sleep $((secs + 4))
    # a hold is due from its expiry, or from the commit that set it if
    # that came later
    bench_psql -At -c "
WITH h AS (
    SELECT state, updated_at - expires_at AS start_lag,
           pg_xact_commit_timestamp(xmin) - greatest(expires_at, '$set_at'::timestamptz) AS lag
      FROM order_engine.stock_hold)
SELECT format('release lag at %s holds/s (expiry -> commit of the release): p50 %s ms, p99 %s ms, max %s ms; %s of %s released, %s still held at the end, left out',
       $rate,
       round(extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY lag) FILTER (WHERE state = 'released')) * 1000, 1),
       round(extract(epoch FROM percentile_cont(0.99) WITHIN GROUP (ORDER BY lag) FILTER (WHERE state = 'released')) * 1000, 1),
       round(extract(epoch FROM max(lag) FILTER (WHERE state = 'released')) * 1000, 1),
       count(*) FILTER (WHERE state = 'released'), count(*), count(*) FILTER (WHERE state = 'held'))
    || E'\n' ||
       format('  expiry -> start of the releasing transaction: p50 %s ms, p99 %s ms; expiries committed %s ms before the first fell due',
       round(extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY start_lag) FILTER (WHERE state = 'released')) * 1000, 1),
       round(extract(epoch FROM percentile_cont(0.99) WITHIN GROUP (ORDER BY start_lag) FILTER (WHERE state = 'released')) * 1000, 1),
       (SELECT round(extract(epoch FROM min(expires_at) - '$set_at'::timestamptz) * 1000, 1) FROM order_engine.stock_hold))
  FROM h"
    bench_psql -q -c "TRUNCATE order_engine.stock_hold"
}
lag_run 1000 5
lag_run 10000 3

# a backlog of 100k expired holds
bench_psql -q <<'SQL' >/dev/null
ALTER SYSTEM SET order_engine.database = 'nowhere';
SELECT pg_reload_conf();
SQL
sleep 1
reserve_many 1000001 100000
bench_psql -q <<'SQL'
UPDATE order_engine.stock_hold SET expires_at = now() - interval '1 second' WHERE state = 'held';
SQL
start=$(date +%s.%N)
bench_psql -q -c "ALTER SYSTEM SET order_engine.database = 'bench'" -c "SELECT pg_reload_conf()" >/dev/null
while [ "$(bench_psql -At -c "SELECT count(*) FROM order_engine.stock_hold WHERE state = 'held'")" != 0 ]; do
    sleep 0.2
done
end=$(date +%s.%N)
awk -v s="$start" -v e="$end" 'BEGIN { printf "drain of 100000 expired holds: %.1f s (%.0f holds/s)\n", e - s, 100000 / (e - s) }'

# foreground reserve TPS on a hot bucketed SKU.  The set-up database
# bench_tpl (never served by the worker, so it can be copied): the SKU,
# and 50k finished (cancelled) orders, which the worker archives when
# archive_after is 0.  Each run gets a fresh copy; the worker, archiving
# and sweeping are set before the copy (bench_fresh_db restarts the
# server, which reads them):
#   off        order_engine.database = 'nowhere'; 1-hour holds
#   archiving  worker on, archive_after = 0 (default batch, pause 100ms);
#              1-hour holds, so there is nothing to sweep
#   sweeping   worker on, archive_after = 68 years (nothing to archive);
#              1-second holds, released by the worker as they expire
bench_createdb bench_tpl
BENCH_DB=bench_tpl bench_psql -q <<'SQL' >/dev/null
CREATE SEQUENCE rno START 10000000 CACHE 100;
SELECT order_engine.restock(1, 1000000000);
SELECT order_engine.restock(2, 1000000000);
SELECT order_engine.set_buckets(2, 16);
SELECT order_engine.set_price(1, 1);
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
-- an outbox consumer has processed their events: only then may the
-- worker archive an order
DO $$
DECLARE
    ids bigint[];
BEGIN
    LOOP
        SELECT array_agg(event_id) INTO ids FROM order_engine.claim_events(10000);
        EXIT WHEN ids IS NULL;
        PERFORM order_engine.ack_events(ids);
        COMMIT;
    END LOOP;
END
$$;
SQL
# no VACUUM ANALYZE here: statistics that say no hold is held (all 50k
# are released) made the sweeping run's foreground 2-3x slower, p99 ~800 ms
cat >"$BENCH_DIR/reserve.sql" <<'EOF2'
SELECT order_engine.reserve(nextval('rno'), ARRAY[2]::bigint[], ARRAY[1]::bigint[], '1 second');
EOF2
cat >"$BENCH_DIR/reserve_long.sql" <<'EOF2'
SELECT order_engine.reserve(nextval('rno'), ARRAY[2]::bigint[], ARRAY[1]::bigint[], '1 hour');
EOF2

# worker_ticks PID: the CPU time of a process so far, in clock ticks (0 if gone)
worker_ticks() {
    [ -n "$1" ] && [ -r "/proc/$1/stat" ] && awk '{print $14 + $15}' "/proc/$1/stat" || echo 0
}

# worker_setting DATABASE ARCHIVE_AFTER: for the next restart
worker_setting() {
    BENCH_DB=postgres bench_psql -q -c "ALTER SYSTEM SET order_engine.database = '$1'" \
        -c "ALTER SYSTEM SET order_engine.archive_after = '$2'" \
        -c "ALTER SYSTEM SET order_engine.archive_pause = '100ms'"
}

echo "foreground reserve on a 16-bucket SKU, $BENCH_CLIENTS clients, $ROUNDS rounds of ${BENCH_SECONDS}s per run"
echo "every run on a fresh copy of the set-up database; ratios: median of per-round ratios"
OFF=; ARCHIVING=; SWEEPING=
for round in $(seq 1 "$ROUNDS"); do
    echo "-- round $round"
    worker_setting nowhere 0
    bench_fresh_db bench_tpl
    bench_pgbench reserve_worker_off "$BENCH_DIR/reserve_long.sql"; OFF="$OFF $BENCH_TPS"

    worker_setting bench_run 0
    bench_fresh_db bench_tpl
    bench_pgbench reserve_while_archiving "$BENCH_DIR/reserve_long.sql"; ARCHIVING="$ARCHIVING $BENCH_TPS"
    bench_psql -At -c "SELECT '   meanwhile the worker archived ' || count(*) || ' of 50000 orders' FROM order_engine_archive.orders"

    worker_setting bench_run 2147483647
    bench_fresh_db bench_tpl
    # the worker's own CPU while it sweeps (utime + stime of its process)
    WPID=$(bench_psql -At -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'order_engine worker' AND datname = 'bench_run'")
    W0=$(worker_ticks "$WPID")
    bench_pgbench reserve_1s_holds_swept "$BENCH_DIR/reserve.sql"; SWEEPING="$SWEEPING $BENCH_TPS"
    W1=$(worker_ticks "$WPID")
    RELEASED=$(bench_psql -At -c "SELECT count(*) FROM order_engine.stock_hold WHERE state = 'released' AND order_no < 20000000")
    bench_psql -At -c "SELECT '   the worker released ' || count(*) FILTER (WHERE state = 'released') || ' of '
                              || count(*) || ' 1-second holds, archived ' || (SELECT count(*) FROM order_engine_archive.orders) || ' orders'
                         FROM order_engine.stock_hold WHERE order_no < 20000000"
    awk -v t=$((W1 - W0)) -v hz="$(getconf CLK_TCK)" -v s="$BENCH_SECONDS" -v n="$RELEASED" 'BEGIN {
        printf "   the worker used %.0f%% of a core, %.1f us of CPU per released hold\n",
            100 * t / hz / s, (n > 0) ? 1e6 * t / hz / n : 0 }'
done
echo "-- mean tps over $ROUNDS rounds"
printf '%-40s %10.0f tps\n' reserve_worker_off "$(bench_mean "$OFF")" \
    reserve_while_archiving "$(bench_mean "$ARCHIVING")" reserve_1s_holds_swept "$(bench_mean "$SWEEPING")"
bench_rounds_ratio "reserve TPS while the worker archives vs worker off" 0.9 "$ARCHIVING" "$OFF"
bench_rounds_ratio "reserve TPS, 1 s holds swept as they expire, vs off" 0.8 "$SWEEPING" "$OFF"
