#!/usr/bin/env bash
# test/bench/cost.sh: what one call costs, in units that do not depend on
# a quiet machine (issue 15: profile before optimising).
#
# For each hot call and the plain SQL it replaces, run the same number of
# calls in a single-user backend under Valgrind's callgrind and print the
# CPU instructions per call (the difference between a run with K calls and
# one with none, divided by K), then run them against a server and print
# the WAL bytes per call (pg_current_wal_insert_lsn before and after).
# Both sides use prepared statements, one call (or one client
# transaction) per line, so neither pays parse and plan per call.
#
#   test/bench/cost.sh                 # K = 200
#   OE_COST_CALLS=500 test/bench/cost.sh
#   OE_COST_ONLY=place_order test/bench/cost.sh
#   OE_COST_ONLY=place_order_literal test/bench/cost.sh
#       the simple-protocol call with its lines as a JSON literal (parse
#       and plan included); the second column is then the same call with
#       all six arguments given, not plain SQL
#
# Needs valgrind.  Takes a few minutes (valgrind runs ~50x slower).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

K=${OE_COST_CALLS:-200}
ONLY=${OE_COST_ONLY:-}
command -v valgrind >/dev/null || { echo "cost.sh needs valgrind"; exit 1; }

bench_start
bench_psql -o /dev/null <<'SQL'
SELECT order_engine.restock(g, 100000000) FROM generate_series(1, 999) g;
SELECT order_engine.set_price(g, 1.50 + g % 7) FROM generate_series(1, 999) g;
SELECT order_engine.create_id_tag('cost');
-- a sold-out SKU (flash sale over)
SELECT order_engine.restock(1000, 1);
SELECT order_engine.try_deduct(1000, 1);
-- a hot SKU in escrow (set_escrow: a shared-memory counter, no row lock)
SELECT order_engine.restock(1001, 100000000);
SELECT order_engine.set_escrow(1001);

-- the plain schema a client would write, with the indexes it needs for
-- the same features: hold expiry, buyer and seller history, pending events
CREATE TABLE p_stock (sku_id bigint PRIMARY KEY, available bigint NOT NULL CHECK (available >= 0),
                      held bigint NOT NULL DEFAULT 0, price numeric NOT NULL);
INSERT INTO p_stock SELECT g, 100000000, 0, 1.50 + g % 7 FROM generate_series(1, 999) g;
INSERT INTO p_stock VALUES (1000, 0, 0, 2);
CREATE TABLE p_hold (order_no bigint, sku_id bigint, qty bigint, state text, expires_at timestamptz,
                     PRIMARY KEY (order_no, sku_id));
CREATE INDEX ON p_hold (expires_at) WHERE state = 'held';
CREATE TABLE p_orders (order_no bigint PRIMARY KEY, buyer_id bigint, seller_id bigint, status text,
                       total numeric, pay_deadline timestamptz, created_at timestamptz DEFAULT now());
CREATE INDEX ON p_orders (buyer_id, order_no);
CREATE INDEX ON p_orders (seller_id, order_no);
CREATE INDEX ON p_orders (pay_deadline) WHERE status = 'pending_payment';
CREATE TABLE p_lines (order_no bigint, line_no int, sku_id bigint, qty bigint, unit_price numeric,
                      line_total numeric, PRIMARY KEY (order_no, line_no));
CREATE TABLE p_events (event_id bigserial PRIMARY KEY, order_no bigint, event text,
                       created_at timestamptz DEFAULT now(), processed_at timestamptz);
CREATE INDEX ON p_events (event_id) WHERE processed_at IS NULL;
CREATE TABLE p_idem (scope text, key text, request jsonb, response jsonb, state text,
                     expires_at timestamptz, PRIMARY KEY (scope, key));
CREATE SEQUENCE p_seq;
-- the floor of a call: a C function that does nothing, with reserve's
-- signature (pg_is_in_recovery() ignores its arguments)
CREATE FUNCTION noop_reserve(bigint, bigint[], bigint[], interval DEFAULT '30 minutes',
                             bigint DEFAULT NULL) RETURNS boolean
    LANGUAGE internal VOLATILE AS 'pg_is_in_recovery';
-- both key tables as a live service has them, not empty: with an empty
-- table the planner picks a sequential scan that a real one never runs
INSERT INTO order_engine.idempotency_keys (scope, key, fingerprint, state, created_at, expires_at)
    SELECT 'fill', g::text, '\x00', 'completed', now(), now() + interval '1 day'
    FROM generate_series(1, 20000) g;
INSERT INTO p_idem SELECT 'fill', g::text, '{}', NULL, 'completed', now() + interval '1 day'
    FROM generate_series(1, 20000) g;
-- statistics, as autovacuum would have them (none runs in single-user mode)
ANALYZE;
SQL
bench_as_postgres pg_ctl -D "$BENCH_DIR/data" -w stop >/dev/null

# prepare_<op> and call_<op> N: the statements of one side, one per line
prepare_place_order() {
    echo "PREPARE c(bigint, bigint, bigint, bigint, bigint) AS SELECT order_engine.place_order(\$1, \$2, 1, jsonb_build_array(jsonb_build_object('sku_id', \$3, 'qty', 1), jsonb_build_object('sku_id', \$4, 'qty', 2), jsonb_build_object('sku_id', \$5, 'qty', 1)))"
}
call_place_order() { echo "EXECUTE c($1, $((1 + $1 % 100000)), $((1 + $1 % 333)), $((334 + $1 % 333)), $((667 + $1 % 333)))"; }

prepare_plain_order() {
    echo "PREPARE e(bigint) AS SELECT 1 FROM p_orders WHERE order_no = \$1"
    echo "PREPARE s(bigint, bigint) AS UPDATE p_stock SET available = available - \$2, held = held + \$2 WHERE sku_id = \$1 AND available >= \$2 RETURNING price"
    echo "PREPARE h(bigint, bigint, bigint, bigint) AS INSERT INTO p_hold VALUES (\$1, \$2, 1, 'held', now() + interval '30 minutes'), (\$1, \$3, 2, 'held', now() + interval '30 minutes'), (\$1, \$4, 1, 'held', now() + interval '30 minutes')"
    echo "PREPARE o(bigint, bigint) AS INSERT INTO p_orders VALUES (\$1, \$2, 1, 'pending_payment', 12.5, now() + interval '30 minutes')"
    echo "PREPARE l(bigint, bigint, bigint, bigint) AS INSERT INTO p_lines VALUES (\$1, 1, \$2, 1, 2.5, 2.5), (\$1, 2, \$3, 2, 3.5, 7), (\$1, 3, \$4, 1, 3, 3)"
    echo "PREPARE v(bigint) AS INSERT INTO p_events (order_no, event) VALUES (\$1, 'placed')"
}
call_plain_order() {
    local n=$1 a=$((1 + $1 % 333)) b=$((334 + $1 % 333)) c=$((667 + $1 % 333))
    echo "BEGIN"
    echo "EXECUTE e($n)"
    echo "EXECUTE s($a, 1)"; echo "EXECUTE s($b, 2)"; echo "EXECUTE s($c, 1)"
    echo "EXECUTE h($n, $a, $b, $c)"
    echo "EXECUTE o($n, $((1 + n % 100000)))"
    echo "EXECUTE l($n, $a, $b, $c)"
    echo "EXECUTE v($n)"
    echo "COMMIT"
}

# the simple protocol's call, as orders.sh sends it (only with
# OE_COST_ONLY=place_order_literal): parse and plan of the call included,
# its two DEFAULTs read back; against the same call with all six arguments
prepare_place_order_literal() { echo "SELECT 1"; }
literal_lines() { echo "'[{\"sku_id\": $((1 + $1 % 333)), \"qty\": 1}, {\"sku_id\": $((334 + $1 % 333)), \"qty\": 2}, {\"sku_id\": $((667 + $1 % 333)), \"qty\": 1}]'"; }
call_place_order_literal() { echo "SELECT order_engine.place_order($1, $((1 + $1 % 100000)), 1, $(literal_lines "$1"))"; }
prepare_place_order_literal_all_args() { echo "SELECT 1"; }
call_place_order_literal_all_args() {
    echo "SELECT order_engine.place_order($1, $((1 + $1 % 100000)), 1, $(literal_lines "$1"), '30 minutes', NULL)"
}

prepare_reserve() { echo "PREPARE r(bigint, bigint) AS SELECT order_engine.reserve(\$1, ARRAY[\$2], '{1}', '30 minutes')"; }
call_reserve() { echo "EXECUTE r($((5000000 + $1)), $((1 + $1 % 999)))"; }

prepare_plain_reserve() {
    echo "PREPARE s(bigint, bigint) AS UPDATE p_stock SET available = available - \$2, held = held + \$2 WHERE sku_id = \$1 AND available >= \$2"
    echo "PREPARE h(bigint, bigint) AS INSERT INTO p_hold VALUES (\$1, \$2, 1, 'held', now() + interval '30 minutes')"
}
call_plain_reserve() {
    echo "BEGIN"; echo "EXECUTE s($((1 + $1 % 999)), 1)"; echo "EXECUTE h($((5000000 + $1)), $((1 + $1 % 999)))"; echo "COMMIT"
}

prepare_escrow() { echo "PREPARE r(bigint) AS SELECT order_engine.reserve(\$1, '{1001}', '{1}', '30 minutes')"; }
call_escrow() { echo "EXECUTE r($((20000000 + $1)))"; }   # numbers no reserve call uses

prepare_sold_out() { echo "PREPARE r(bigint) AS SELECT order_engine.reserve(\$1, '{1000}', '{1}', '30 minutes')"; }
call_sold_out() { echo "EXECUTE r($((7000000 + $1)))"; }
prepare_plain_sold_out() { echo "PREPARE s AS UPDATE p_stock SET available = available - 1, held = held + 1 WHERE sku_id = 1000 AND available >= 1"; }
call_plain_sold_out() { echo "EXECUTE s"; }
prepare_noop_reserve() { echo "PREPARE r(bigint) AS SELECT noop_reserve(\$1, '{1000}', '{1}', '30 minutes')"; }
call_noop_reserve() { echo "EXECUTE r($((7000000 + $1)))"; }

prepare_idem() {
    echo "PREPARE b(text) AS SELECT state FROM order_engine.idem_begin('cost', \$1, '{\"a\": 1}')"
    echo "PREPARE f(text) AS SELECT order_engine.idem_finish('cost', \$1, '{\"r\": 1}')"
}
call_idem() { echo "BEGIN"; echo "EXECUTE b('k$1')"; echo "EXECUTE f('k$1')"; echo "COMMIT"; }

prepare_plain_idem() {
    echo "PREPARE i(text) AS INSERT INTO p_idem VALUES ('cost', \$1, '{\"a\": 1}', NULL, 'started', now() + interval '24 hours') ON CONFLICT DO NOTHING"
    echo "PREPARE g(text) AS SELECT state, response FROM p_idem WHERE scope = 'cost' AND key = \$1"
    echo "PREPARE u(text) AS UPDATE p_idem SET response = '{\"r\": 1}', state = 'completed' WHERE scope = 'cost' AND key = \$1"
}
call_plain_idem() { echo "BEGIN"; echo "EXECUTE i('k$1')"; echo "EXECUTE g('k$1')"; echo "EXECUTE u('k$1')"; echo "COMMIT"; }

prepare_next_id() { echo "PREPARE n AS SELECT order_engine.next_id('cost')"; }
call_next_id() { echo "EXECUTE n"; }
prepare_plain_next_id() { echo "PREPARE n AS SELECT nextval('p_seq')"; }
call_plain_next_id() { echo "EXECUTE n"; }

# script OP FIRST COUNT: prepare, warm up with calls 1..3, then COUNT calls
script() {
    local op=$1 first=$2 count=$3 i
    { "prepare_$op"; for i in 1 2 3; do "call_$op" $((first + i)); done; } | sed 's/$/;/'
    for ((i = 0; i < count; i++)); do "call_$op" $((first + 10 + i)); done | sed 's/$/;/'
}

# instructions OP FIRST COUNT: total instructions of the single-user run
instructions() {
    local op=$1 out=$BENCH_DIR/cg.$1.$3
    script "$@" >"$BENCH_DIR/in.sql"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$BENCH_DIR/in.sql"
    bench_as_postgres valgrind --tool=callgrind ${OE_COST_VALGRIND_OPTS:-} --callgrind-out-file="$out" \
        "$BENCH_BINDIR/postgres" --single -D "$BENCH_DIR/data" bench \
        <"$BENCH_DIR/in.sql" >"$BENCH_DIR/single.log" 2>&1 ||
        { tail -20 "$BENCH_DIR/single.log"; exit 1; }
    if grep -q "ERROR" "$BENCH_DIR/single.log"; then grep -m3 ERROR "$BENCH_DIR/single.log"; exit 1; fi
    sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$out"
    [ -n "${OE_COST_KEEP:-}" ] && cp "$out" "$OE_COST_KEEP/" 2>/dev/null
    return 0
}

# per_call OP FIRST: instructions per call, numbering its calls from FIRST
per_call() {
    local op=$1 first=$2 base full
    base=$(instructions "$op" "$first" 0)
    full=$(instructions "$op" $((first + 1000)) "$K")
    # a failed run printed its ERROR lines instead of a count
    if ! [[ $base =~ ^[0-9]+$ && $full =~ ^[0-9]+$ ]]; then
        printf '%s: the single-user run failed:\n%s\n%s\n' "$op" "$base" "$full" >&2
        exit 1
    fi
    echo $(((full - base) / K))
}

OFFSET=1000000
printf '%-14s %14s %14s %8s\n' "call" "order_engine" "plain SQL" "ratio"
for pair in "place_order plain_order" "reserve plain_reserve" "escrow plain_reserve" "sold_out plain_sold_out" "sold_out noop_reserve" "idem plain_idem" "next_id plain_next_id" "place_order_literal place_order_literal_all_args"; do
    set -- $pair
    if [ -n "$ONLY" ] && [ "$ONLY" != "$1" ]; then continue; fi
    if [ -z "$ONLY" ] && [ "$1" = place_order_literal ]; then continue; fi
    # each run its own order numbers: the data directory keeps every run's rows
    e=$(per_call "$1" "$OFFSET") || exit 1
    OFFSET=$((OFFSET + 100000))
    p=$(per_call "$2" "$OFFSET") || exit 1
    OFFSET=$((OFFSET + 100000))
    awk -v n="$1" -v e="$e" -v p="$p" 'BEGIN {
        printf "%-14s %11d ins %11d ins %7.2fx   (plain/engine: above 1 means the call is cheaper)\n", n, e, p, p / e }'
done

# WAL bytes per call, on the server (one backend, the same statements);
# numbers past every one the instruction counts used
OFFSET=3000000
bench_as_postgres pg_ctl -D "$BENCH_DIR/data" -l "$BENCH_DIR/server.log" -w start >/dev/null
printf '\n%-14s %14s %14s\n' "call" "WAL B/call" "plain B/call"
for pair in "place_order plain_order" "reserve plain_reserve" "escrow plain_reserve" "sold_out plain_sold_out" "idem plain_idem" "next_id plain_next_id"; do
    set -- $pair
    if [ -n "$ONLY" ] && [ "$ONLY" != "$1" ]; then continue; fi
    line=""
    for op in "$1" "$2"; do
        script "$op" $((OFFSET)) "$K" >"$BENCH_DIR/in.sql"
        OFFSET=$((OFFSET + 100000))
        b=$(bench_psql -At -c "SELECT pg_current_wal_insert_lsn()")
        bench_psql -o /dev/null -f "$BENCH_DIR/in.sql"
        a=$(bench_psql -At -c "SELECT pg_current_wal_insert_lsn() - '$b'::pg_lsn")
        line="$line $(( ${a%.*} / (K + 3) ))"
    done
    set -- $1 $line
    printf '%-14s %14s %14s\n' "$1" "$2" "$3"
done
