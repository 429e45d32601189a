# test/bench/lib.sh: what the benchmark scripts share.  Sourced, not run.
#
# A benchmark starts its own preloaded server (as the postgres OS user) in a
# temporary directory, runs pgbench scripts against it and prints ratios of
# order_engine against the plain-SQL way of doing the same work, all
# measured in the same run.  Benchmarks are never part of the test suites:
# timings on a shared 2-core machine are too noisy to assert on.
#
# Environment:
#   OE_BENCH_BINDIR   PostgreSQL bin directory (default: the system's); point
#                     it at a private install, e.g. the one scripts/test.sh
#                     leaves in $OE_TEST_WORK/install/usr/lib/postgresql/15/bin
#   OE_BENCH_SECONDS  duration of each pgbench run (default 10)
#   OE_BENCH_CLIENTS  clients (default 16)
#   OE_BENCH_ROUNDS   rounds of the scripts that alternate their sides
#                     (stock.sh, orders.sh, worker.sh, idem.sh; default 3)
#
# A ratio is taken per round (the sides of one round run back to back, so
# they share the machine's load of that minute) and the median of the
# per-round ratios is reported, with every round's ratio behind it.

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BENCH_BINDIR=${OE_BENCH_BINDIR:-/usr/lib/postgresql/15/bin}
BENCH_SECONDS=${OE_BENCH_SECONDS:-10}
BENCH_CLIENTS=${OE_BENCH_CLIENTS:-16}
BENCH_ROUNDS=${OE_BENCH_ROUNDS:-3}
BENCH_DIR=
BENCH_PORT=
# the database bench_psql and bench_pgbench talk to; bench_fresh_db moves it
BENCH_DB=bench

bench_as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- env PATH="$BENCH_BINDIR:$PATH" "$@"
    else
        env PATH="$BENCH_BINDIR:$PATH" "$@"
    fi
}

# bench_start [extra postgresql.conf lines...]: a fresh preloaded server
# with database "bench" and the extension; stopped by bench_stop (trapped).
bench_start() {
    BENCH_DIR=$(mktemp -d /tmp/order_engine-bench.XXXXXX)
    BENCH_PORT=$((55000 + RANDOM % 1000))
    [ "$(id -u)" -eq 0 ] && chown postgres: "$BENCH_DIR"
    bench_as_postgres initdb -D "$BENCH_DIR/data" -U postgres -A trust --no-sync >/dev/null
    {
        echo "shared_preload_libraries = 'order_engine'"
        echo "order_engine.database = 'bench'"
        echo "port = $BENCH_PORT"
        echo "listen_addresses = ''"
        echo "unix_socket_directories = '$BENCH_DIR'"
        echo "max_connections = 200"
        echo "shared_buffers = '512MB'"
        echo "synchronous_commit = on"
        echo "max_worker_processes = 16"
        for line in "$@"; do echo "$line"; done
    } >>"$BENCH_DIR/data/postgresql.conf"
    trap bench_stop EXIT
    bench_as_postgres pg_ctl -D "$BENCH_DIR/data" -l "$BENCH_DIR/server.log" -w start >/dev/null
    bench_createdb bench
}

# bench_createdb NAME: a new database with the extension
bench_createdb() {
    bench_as_postgres createdb -h "$BENCH_DIR" -p "$BENCH_PORT" -U postgres "$1"
    BENCH_DB=$1 bench_psql -c 'CREATE EXTENSION order_engine' >/dev/null
}

bench_restart() {
    bench_as_postgres pg_ctl -D "$BENCH_DIR/data" -l "$BENCH_DIR/server.log" -w -m fast restart >/dev/null
}

# bench_fresh_db TEMPLATE: drop the previous copy, restart the server and
# make BENCH_DB a new copy of TEMPLATE named bench_run, wait for the
# worker there if order_engine.database names bench_run, then CHECKPOINT:
# every timed run starts from the same tables (same sizes, no dead rows),
# the same server state and the same checkpoint state.
#
# Nobody may be connected to TEMPLATE, so order_engine.database must not
# name it (bench_start "order_engine.database = 'bench_run'").  The
# restart is there because the launcher never forgets a database it once
# served (src/worker/launcher.c: served[] only grows, up to
# OE_MAX_DATABASES = 8), so without it the ninth copy would get no worker,
# and place_order without a worker NOTIFYs in its own commit, which
# serialises all commits.
bench_fresh_db() {
    local i
    # FORCE: a worker in the middle of a long statement may not leave
    # within DROP DATABASE's 5 s wait
    BENCH_DB=postgres bench_psql -c 'SET client_min_messages = warning' \
        -c 'DROP DATABASE IF EXISTS bench_run WITH (FORCE)'
    bench_restart
    BENCH_DB=postgres bench_psql -c "CREATE DATABASE bench_run TEMPLATE $1"
    BENCH_DB=bench_run
    if [ "$(bench_psql -At -c "SELECT 'bench_run' = ANY (string_to_array(replace(current_setting('order_engine.database'), ' ', ''), ','))")" = t ]; then
        for i in $(seq 1 300); do
            [ "$(bench_psql -At -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'order_engine worker' AND datname = 'bench_run'")" = 1 ] && break
            [ "$i" = 300 ] && { echo "no order_engine worker in bench_run after 30 s" >&2; return 1; }
            sleep 0.1
        done
    fi
    bench_psql -c CHECKPOINT
}

bench_stop() {
    local pid
    [ -n "$BENCH_DIR" ] && [ -f "$BENCH_DIR/data/postmaster.pid" ] || return 0
    pid=$(head -1 "$BENCH_DIR/data/postmaster.pid")
    kill -TERM "$pid" 2>/dev/null
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    cp "$BENCH_DIR/server.log" /tmp/order_engine-bench-last.log 2>/dev/null || true
    rm -rf "$BENCH_DIR"
}

bench_psql() {
    bench_as_postgres psql -X -q -v ON_ERROR_STOP=1 -h "$BENCH_DIR" -p "$BENCH_PORT" -U postgres -d "$BENCH_DB" "$@"
}

# bench_pgbench NAME SCRIPT_FILE [pgbench options...]: run it and print
# "NAME tps p99_ms WAL_bytes_per_transaction"; the tps alone goes to the
# variable BENCH_TPS, the 99th percentile latency (ms) to BENCH_P99 and
# the WAL bytes per pgbench transaction to BENCH_WAL.  The WAL is all the
# server wrote during the run (pg_current_wal_insert_lsn before and
# after) over the transactions pgbench counted: the worker's writes of
# that time are in it, as they are in the cost of a deployment.  The
# last column is the CPU the database's order_engine worker used during
# the run (utime + stime from /proc, in ms; "-" without a worker), also
# in BENCH_WORKER_MS.
bench_pgbench() {
    local name=$1 script=$2 log lsn txns worker cpu0 cpu1
    shift 2
    log=$BENCH_DIR/$name.log
    cp "$script" "$BENCH_DIR/$name.sql"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$BENCH_DIR/$name.sql"
    worker=$(bench_psql -At -c "SELECT pid FROM pg_stat_activity
        WHERE backend_type = 'order_engine worker' AND datname = current_database()")
    cpu0=$(bench_cpu_ticks "$worker")
    lsn=$(bench_psql -At -c "SELECT pg_current_wal_insert_lsn()")
    (cd "$BENCH_DIR" && bench_as_postgres pgbench -n -h "$BENCH_DIR" -p "$BENCH_PORT" -U postgres \
        -c "$BENCH_CLIENTS" -j 2 -T "$BENCH_SECONDS" -r -l --log-prefix="$BENCH_DIR/$name" \
        -f "$BENCH_DIR/$name.sql" "$@" "$BENCH_DB") >"$log" 2>&1 || { cat "$log"; return 1; }
    txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$log" | tail -1)
    BENCH_WAL=$(bench_psql -At -c "SELECT (pg_current_wal_insert_lsn() - '$lsn'::pg_lsn) / greatest(${txns:-0}, 1)")
    BENCH_WAL=${BENCH_WAL%.*}
    BENCH_TPS=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$log" | tail -1)
    # per-transaction logs: column 3 is the latency in microseconds
    BENCH_P99=$(cat "$BENCH_DIR/$name".[0-9]* 2>/dev/null | awk '{print $3}' | sort -n |
        awk '{a[NR]=$1} END {if (NR) printf "%.2f", a[int(NR*0.99)]/1000; else print "n/a"}')
    rm -f "$BENCH_DIR/$name".[0-9]*
    BENCH_WORKER_MS=-
    if [ -n "$cpu0" ] && cpu1=$(bench_cpu_ticks "$worker") && [ -n "$cpu1" ]; then
        BENCH_WORKER_MS=$(( (cpu1 - cpu0) * 1000 / $(getconf CLK_TCK) ))
    fi
    printf '%-40s %10.0f tps   p99 %8s ms   WAL %6s B/txn   worker CPU %5s ms\n' \
        "$name" "$BENCH_TPS" "$BENCH_P99" "$BENCH_WAL" "$BENCH_WORKER_MS"
}

# bench_cpu_ticks PID: utime + stime of a process in clock ticks (empty
# when there is no such process)
bench_cpu_ticks() {
    [ -n "$1" ] && [ -r "/proc/$1/stat" ] || return 0
    # the fields after the command name, which may hold spaces
    sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
}

# bench_ratio LABEL A B GOAL: print A/B and whether it meets the goal
bench_ratio() {
    awk -v l="$1" -v a="$2" -v b="$3" -v g="$4" 'BEGIN {
        r = (b > 0) ? a / b : 0;
        printf "%-58s %6.2fx  (goal >= %s: %s)\n", l, r, g, (r >= g) ? "met" : "NOT met" }'
}

# bench_rounds_ratio LABEL GOAL "A1 A2 ..." "B1 B2 ...": the median of the
# per-round ratios Ai/Bi, whether it meets GOAL ("-": no goal), and each
# round's ratio in round order
bench_rounds_ratio() {
    awk -v l="$1" -v g="$2" -v a="$3" -v b="$4" 'BEGIN {
        n = split(a, x, " "); split(b, y, " "); s = "";
        for (i = 1; i <= n; i++) {
            r[i] = (y[i] > 0) ? x[i] / y[i] : 0;
            s = s sprintf(" %.2f", r[i]);
        }
        for (i = 2; i <= n; i++) {
            v = r[i];
            for (j = i - 1; j >= 1 && r[j] > v; j--) r[j + 1] = r[j];
            r[j + 1] = v;
        }
        m = (n % 2) ? r[(n + 1) / 2] : (r[n / 2] + r[n / 2 + 1]) / 2;
        goal = (g == "-") ? "" : sprintf("  (goal >= %s: %s)", g, (m >= g) ? "met" : "NOT met");
        printf "%-58s %6.2fx%s  rounds:%s\n", l, m, goal, s }'
}

# bench_best "A1 A2 ..." "B1 B2 ...": the larger of Ai and Bi per round
bench_best() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        n = split(a, x, " "); split(b, y, " ");
        for (i = 1; i <= n; i++) printf "%s%s", (i > 1) ? " " : "", (x[i] >= y[i]) ? x[i] : y[i] }'
}

# bench_mean "A1 A2 ...": their mean
bench_mean() {
    awk -v a="$1" 'BEGIN { n = split(a, x, " "); t = 0; for (i = 1; i <= n; i++) t += x[i];
        printf "%.1f", (n > 0) ? t / n : 0 }'
}
