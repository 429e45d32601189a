#!/usr/bin/env bash
# scripts/memcheck.sh: memory checks that are too slow for scripts/test.sh.
#
#   sudo scripts/memcheck.sh              both parts
#   sudo scripts/memcheck.sh valgrind     regress + isolation under Valgrind
#   sudo scripts/memcheck.sh worker       the worker's memory over a long run
#
# valgrind: builds and installs through scripts/test.sh (OE_SUITES=lint,
# so into its private installation), puts a wrapper in place of the
# postgres binary of a copy of that installation that runs every server
# process under Valgrind memcheck (PostgreSQL's way: --trace-children,
# no leak check, since memory contexts free in bulk; the suppressions in
# scripts/valgrind.supp, a minimal equivalent of PostgreSQL's
# src/tools/valgrind.supp), runs the pg_regress and isolation suites, and
# reports the Valgrind errors whose stack passes through order_engine.so.
# Debian's server is not built with USE_VALGRIND, so palloc'd chunks are
# not tracked one by one; what is found is use of freed or uninitialised
# malloc'd memory (e.g. a memory context deleted under a live pointer).
#
# worker: a preloaded server with order_engine.naptime = 10ms and a load
# that keeps holds expiring; the worker's memory (pg_log_backend_memory_
# contexts "Grand total", and VmRSS) is sampled every OE_MEMCHECK_ROUNDS/10
# worker rounds; it must not grow after warm-up.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/scripts/lib.sh"
oe_become_root "$@"

PARTS=${1:-"valgrind worker"}
WORK=${OE_MEMCHECK_WORK:-/tmp/order_engine-memcheck.$(printf "%s" "$ROOT" | md5sum | cut -c1-8)}
MC=$WORK/memcheck
ROUNDS=${OE_MEMCHECK_ROUNDS:-3000}
RC=0

oe_say "building and installing (scripts/test.sh, lint only)"
OE_SYSTEM_INSTALL=0 OE_SUITES=lint OE_TEST_WORK=$WORK "$ROOT/scripts/test.sh" >/dev/null 2>&1 || { echo "build failed: $WORK/build.log"; exit 1; }
INST=$WORK/install
BIN=$INST/usr/lib/postgresql/$OE_PG_MAJOR/bin
PGXS_TEST=$INST/usr/lib/postgresql/$OE_PG_MAJOR/lib/pgxs/src/test
SRC=$WORK/src
rm -rf "$MC"; mkdir -p "$MC"; chown postgres: "$MC"

part_valgrind() {
    local vinst=$MC/vinst vbin=$MC/vinst/usr/lib/postgresql/$OE_PG_MAJOR/bin logs=$MC/valgrind tests specs bad
    command -v valgrind >/dev/null || { echo "valgrind is not installed"; RC=1; return; }
    # a copy of the installation whose postgres runs under valgrind (pg_ctl
    # starts the postgres of its own directory; lib and share are found
    # relative to .../lib/postgresql/15/bin, so the layout must stay)
    rm -rf "$vinst"; mkdir -p "$logs"
    cp -a "$INST" "$vinst"
    mv "$vbin/postgres" "$vbin/postgres.real"
    cat >"$vbin/postgres" <<EOF
#!/bin/sh
exec valgrind --quiet --trace-children=yes --track-origins=yes --leak-check=no \\
    --read-var-info=yes --num-callers=30 --error-limit=no \\
    --suppressions=$ROOT/scripts/valgrind.supp \\
    --log-file=$logs/%p.log "$vbin/postgres.real" "\$@"
EOF
    chmod +x "$vbin/postgres"; chown -R postgres: "$vbin" "$logs"
    tests=$(cd "$SRC/sql" && ls *.sql | sed 's/\.sql$//' | sort)
    specs=$(cd "$SRC/test/isolation/specs" && ls *.spec | sed 's/\.spec$//' | sort)
    oe_say "pg_regress under valgrind (slow)"
    (cd "$SRC" && oe_as_postgres "$PGXS_TEST/regress/pg_regress" --bindir="$vbin" \
        --inputdir="$SRC" --outputdir="$MC/regress" --temp-instance="$MC/regress/tmp_check" \
        --temp-config="$SRC/test/postgresql.conf" --dbname=contrib_regression $tests) \
        >"$MC/regress.log" 2>&1
    tail -3 "$MC/regress.log"
    oe_say "isolation under valgrind (slow)"
    (cd "$SRC" && oe_as_postgres "$PGXS_TEST/isolation/pg_isolation_regress" --bindir="$vbin" \
        --inputdir="$SRC/test/isolation" --outputdir="$MC/isolation" \
        --temp-instance="$MC/isolation/tmp_check" --temp-config="$SRC/test/postgresql.conf" \
        --dbname=contrib_regression $specs) >"$MC/isolation.log" 2>&1
    tail -3 "$MC/isolation.log"
    # errors whose stack passes through our library
    bad=$(grep -l 'order_engine.so' "$logs"/*.log 2>/dev/null | wc -l)
    oe_say "valgrind: $(ls "$logs" | wc -l) process logs, $(cat "$logs"/*.log 2>/dev/null | grep -c '^==[0-9]*== [A-Z]') error lines in all, $bad logs with an error in order_engine.so"
    if [ "$bad" -gt 0 ]; then
        grep -h -A25 -B2 'order_engine.so' "$logs"/*.log | head -80
        RC=1
    fi
    grep -q 'tests passed\|All [0-9]* tests passed' "$MC/regress.log" || RC=1
}

part_worker() {
    local data=$MC/wdata port=54499 psql pid first last total0 total1 rss0 rss1 i runs
    psql="$BIN/psql -X -q -At -h $MC -p $port -d postgres"
    oe_as_postgres "$BIN/initdb" -D "$data" -U postgres -A trust --no-sync >/dev/null
    cat "$SRC/test/postgresql.conf" >>"$data/postgresql.conf"
    printf "port = %d\nlisten_addresses = ''\nunix_socket_directories = '%s'\norder_engine.naptime = 10\n" \
        "$port" "$MC" >>"$data/postgresql.conf"
    oe_as_postgres "$BIN/pg_ctl" -D "$data" -l "$MC/worker.log" -w start >/dev/null
    oe_as_postgres $psql -c "CREATE EXTENSION order_engine" -c "SELECT order_engine.restock(1, 100000000)" >/dev/null
    oe_as_postgres $psql -c "SELECT order_engine.set_price(1, 1)" >/dev/null
    pid=$(oe_as_postgres $psql -c "SELECT pid FROM order_engine.worker_status LIMIT 1")
    sample() {      # "grand total bytes" and VmRSS kB of the worker
        local before
        before=$(wc -l <"$MC/worker.log")
        oe_as_postgres $psql -c "SELECT pg_log_backend_memory_contexts($pid)" >/dev/null
        sleep 0.5
        tail -n +"$((before + 1))" "$MC/worker.log" | grep -o 'Grand total: [0-9]* bytes' | tail -1 | grep -o '[0-9]*'
        awk '/VmRSS/ { print $2 }' "/proc/$pid/status"
    }
    i=0
    oe_say "worker memory over $ROUNDS rounds (naptime 10 ms, holds expiring all the time)"
    while :; do
        # a burst of short holds and unpaid orders for the worker to release and close
        oe_as_postgres $psql -c "SELECT order_engine.reserve(1000000 + $i * 100 + g, '{1}', '{1}', '10 ms') FROM generate_series(1, 20) g" \
            -c "SELECT order_engine.place_order(2000000 + $i * 100 + g, 1, 1, '[{\"sku_id\": 1, \"qty\": 1}]', '10 ms') FROM generate_series(1, 10) g" >/dev/null
        runs=$(oe_as_postgres $psql -c "SELECT max(runs) FROM order_engine.worker_status")
        if [ "$i" -eq 20 ]; then set -- $(sample); total0=$1; rss0=$2; first=$runs
            oe_say "after warm-up (round $runs): contexts $total0 bytes, RSS $rss0 kB"; fi
        i=$((i + 1))
        [ "${runs:-0}" -ge "$ROUNDS" ] && [ "$i" -gt 20 ] && break
        sleep 0.05
    done
    set -- $(sample); total1=$1; rss1=$2; last=$runs
    oe_say "after round $last: contexts $total1 bytes, RSS $rss1 kB ($((last - first)) rounds after warm-up)"
    oe_as_postgres $psql -c "SELECT job, runs, total_rows, errors FROM order_engine.worker_status"
    oe_as_postgres "$BIN/pg_ctl" -D "$data" -w stop -m fast >/dev/null
    if [ "$total1" -gt $((total0 + 65536)) ]; then
        oe_say "FAIL: the worker's memory contexts grew by $((total1 - total0)) bytes"; RC=1
    else
        oe_say "ok: the worker's memory contexts stayed flat (change $((total1 - total0)) bytes)"
    fi
}

for p in $PARTS; do "part_$p"; done
exit $RC
