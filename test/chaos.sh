#!/usr/bin/env bash
# test/chaos.sh: crash loop.  A 16-client mixed pgbench load (place, pay,
# ship/complete, cancel, reserve + confirm/release/expire, next_id(s) and
# snowflake ids committed and rolled back, idem_begin/finish) runs while
# the postmaster and all its children are killed with kill -9 at a random
# moment; after each restart the SPEC invariants are checked:
#   stock_audit clean and no negative stock; no id handed out twice (every
#   id is written to the server log with RAISE LOG as it is handed out,
#   committed or not, and committed ones also into a UNIQUE index); every
#   order live xor archived, none lost; every idempotency key's effect at
#   most once; every expired hold released (and every overdue order
#   closed) within a bound once the worker runs; the escrow SKUs (below)
#   never oversold: no negative escrow, escrow only on escrow SKUs and
#   they keep one bucket, every unfolded escrow hold older than
#   escrow_fold_after (set to 1 s here) folded (and every
#   unit restocked or released on them moved into escrow) within a bound
#   once the worker runs, and the shared-memory counter rebuilt after the
#   crash hands out exactly escrow minus the unfolded holds, not a unit
#   more (a probe with the bucket row locked, in a rolled-back
#   transaction); no error of the load has
#   an undocumented SQLSTATE (each error also goes to the server log with
#   RAISE LOG, so errors inside the rolled-back transactions of
#   rollback.sql, whose chaos.errors rows roll back with them, are checked
#   too); no backend died of a signal; no worker job failed.
#
#   Escrow: SKU 2 (plenty of stock, picked often) and SKU 12 (a small
#   stock the load sells out, restocks, writes off and sells directly)
#   are escrow SKUs (set_escrow), so reserve/place_order take from the
#   counter, confirm/release/expiry/cancel fold first, and the worker's
#   fold_escrow runs on them under the crashes.
#
#   test/chaos.sh [rounds]     default 20, or 3 when CI is set
#
# Environment: OE_CHAOS_BINDIR (PostgreSQL bin directory with order_engine
# installed; default: the directory of pg_ctl in PATH, else the system's),
# OE_CHAOS_DIR (work directory, default a new one under /tmp),
# OE_CHAOS_PORT (default 54481).  Run as root it re-runs itself as the
# postgres OS user.  Prints the figures at the end; exit status 0 when
# every check held in every round.
set -euo pipefail

if [ "$(id -u)" -eq 0 ]; then
    dir=${OE_CHAOS_DIR:-$(mktemp -d /tmp/order_engine-chaos.XXXXXX)}
    mkdir -p "$dir"; chown postgres: "$dir"
    exec runuser -u postgres -- env PATH="$PATH" CI="${CI:-}" OE_CHAOS_DIR="$dir" \
        OE_CHAOS_BINDIR="${OE_CHAOS_BINDIR:-}" OE_CHAOS_PORT="${OE_CHAOS_PORT:-}" \
        bash "$(readlink -f "$0")" "$@"
fi

if [ -n "${1:-}" ]; then ROUNDS=$1
elif [ -n "${CI:-}" ]; then ROUNDS=3
else ROUNDS=20
fi
BIN=${OE_CHAOS_BINDIR:-}
if [ -z "$BIN" ]; then
    if command -v pg_ctl >/dev/null; then BIN=$(dirname "$(command -v pg_ctl)")
    else BIN=/usr/lib/postgresql/15/bin
    fi
fi
DIR=${OE_CHAOS_DIR:-$(mktemp -d /tmp/order_engine-chaos.XXXXXX)}
PORT=${OE_CHAOS_PORT:-54481}
DATA=$DIR/data
LOG=$DIR/server.log
CLIENTS=16
HOLD_BOUND=30            # seconds after restart within which expired holds must be released
FOLD_BOUND=30            # seconds after that within which escrow holds must be folded
FOLD_AFTER=1             # order_engine.escrow_fold_after: the worker folds holds this old (s)
ESCROW_HOT=2             # escrow SKU with plenty of stock (chaos.op names both too)
ESCROW_SCARCE=12         # escrow SKU the load sells out
ESCROW_SCARCE_STOCK=60   # its stock at the start

say() { printf 'chaos: %s\n' "$*"; }
psql_su() { "$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U postgres -d postgres "$@"; }

server_pid() { head -1 "$DATA/postmaster.pid" 2>/dev/null || true; }

stop_server() {
    local pid
    pid=$(server_pid)
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
    "$BIN/pg_ctl" -D "$DATA" -w stop -m immediate >/dev/null 2>&1 || true
}
trap stop_server EXIT

# kill -9 the postmaster and every child it has, wait until all are gone
kill9_all() {
    local pid kids p
    pid=$(server_pid)
    [ -n "$pid" ] || return 0
    kids=$(pgrep -P "$pid" || true)
    # shellcheck disable=SC2086
    kill -KILL "$pid" $kids 2>/dev/null || true
    for _ in $(seq 1 100); do
        p=0
        for k in $pid $kids; do kill -0 "$k" 2>/dev/null && p=1; done
        [ $p -eq 0 ] && return 0
        sleep 0.05
    done
}

start_server() {
    "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 120 start >"$DIR/pg_ctl.log" 2>&1
}

# ---------------------------------------------------------------- setup
rm -rf "$DATA"
"$BIN/initdb" -D "$DATA" -U postgres -A trust --no-sync >"$DIR/initdb.log" 2>&1
cat >>"$DATA/postgresql.conf" <<EOF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$DIR'
shared_preload_libraries = 'order_engine'
order_engine.database = 'postgres'
order_engine.naptime = '200ms'
order_engine.archive_after = '1s'
order_engine.archive_pause = '10ms'
order_engine.escrow_fold_after = '${FOLD_AFTER}s'
max_connections = 60
fsync = off
log_min_messages = log
log_line_prefix = '%m [%p] %b '
EOF
start_server

psql_su -v hot="$ESCROW_HOT" -v scarce="$ESCROW_SCARCE" -v scarce_stock="$ESCROW_SCARCE_STOCK" >/dev/null <<'SQL'
CREATE EXTENSION order_engine;
CREATE ROLE chaos_app LOGIN IN ROLE order_engine_app;
SELECT order_engine.restock(s, CASE WHEN s = :scarce THEN :scarce_stock ELSE 100000 END),
       order_engine.set_price(s, s % 7 + 0.5)
  FROM generate_series(1, 20) s;
SELECT order_engine.set_buckets(1, 8);
-- the escrow SKUs (one bucket each): their units move into escrow
SELECT order_engine.set_escrow(:hot), order_engine.set_escrow(:scarce);
SELECT order_engine.create_id_tag('chaos', 1, 50);

CREATE SCHEMA chaos;
-- every id committed by the load (rolled-back ones are only in the log)
CREATE TABLE chaos.ids (tag text NOT NULL, id bigint NOT NULL);
CREATE UNIQUE INDEX chaos_ids_unique ON chaos.ids (tag, id);
CREATE TABLE chaos.placed (order_no bigint PRIMARY KEY);
CREATE TABLE chaos.effects (key text NOT NULL, at timestamptz DEFAULT clock_timestamp());
CREATE TABLE chaos.errors (id bigserial, op text, sqlstate text, message text, detail text, at timestamptz DEFAULT clock_timestamp());
-- the escrow SKUs of the setup
CREATE TABLE chaos.escrow_sku (sku_id bigint PRIMARY KEY);
INSERT INTO chaos.escrow_sku VALUES (:hot), (:scarce);
-- the documented SQLSTATEs (README) a racing load may meet
CREATE TABLE chaos.expected (sqlstate text PRIMARY KEY);
INSERT INTO chaos.expected VALUES ('OE004'), ('OE005'), ('OE006'), ('OE007'), ('OE009'),
    ('OE012'), ('OE013'), ('OE016'), ('OE017'), ('OE018');
GRANT USAGE ON SCHEMA chaos TO chaos_app;
GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA chaos TO chaos_app;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA chaos TO chaos_app;

-- restock and write-off of the escrow SKUs by the load (restock is an
-- admin's call; chaos_app is an app)
CREATE FUNCTION chaos.restock(sku bigint, delta bigint) RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$
    SELECT order_engine.restock(sku, delta, 'chaos')
$$;
REVOKE ALL ON FUNCTION chaos.restock(bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION chaos.restock(bigint, bigint) TO chaos_app;

-- the shared-memory counter of an escrow SKU, as a restart rebuilt it:
-- with the SKU's bucket row locked (no fold, release or restock can move
-- escrow or the unfolded holds meanwhile; the load is stopped), it must
-- hand out escrow minus the unfolded holds and not a unit more.  Run in
-- a transaction that is rolled back, one SKU per transaction.  Returns
-- 'ok <unfolded>' when that holds; 'retry ...' when it cannot tell now
-- (the counter is below its bound, which the worker's rebuild heals, or
-- the units came from the bucket row); else what is wrong.
CREATE FUNCTION chaos.probe_escrow(sku bigint, probe bigint) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    e bigint; u bigint; parts int;
BEGIN
    PERFORM FROM order_engine.stock_bucket b WHERE b.sku_id = sku AND b.bucket = 0 FOR UPDATE;
    SELECT b.escrow INTO e FROM order_engine.stock_bucket b WHERE b.sku_id = sku AND b.bucket = 0;
    SELECT coalesce(sum(h.qty), 0) INTO u FROM order_engine.stock_hold h
     WHERE h.sku_id = sku AND h.state = 'held' AND h.buckets = '{}';
    IF e - u > 0 THEN
        IF NOT order_engine.reserve(probe, ARRAY[sku], ARRAY[e - u], '1 minute') THEN
            RETURN format('retry: sku %s: escrow %s, unfolded holds %s, but the counter would not hand out %s',
                          sku, e, u, e - u);
        END IF;
        SELECT cardinality(h.buckets) INTO parts FROM order_engine.stock_hold h
         WHERE h.order_no = probe AND h.sku_id = sku;
        IF parts <> 0 THEN
            RETURN format('retry: sku %s: the probe took %s units from the bucket row, not the counter', sku, e - u);
        END IF;
    END IF;
    IF order_engine.reserve(probe + 1, ARRAY[sku], ARRAY[1], '1 minute') THEN
        SELECT cardinality(h.buckets) INTO parts FROM order_engine.stock_hold h
         WHERE h.order_no = probe + 1 AND h.sku_id = sku;
        IF parts = 0 THEN
            RETURN format('sku %s: the counter hands out more than escrow %s minus unfolded holds %s', sku, e, u);
        END IF;
    END IF;
    RETURN 'ok ' || u;
END $$;

CREATE FUNCTION chaos.log_id(tag text, id bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE LOG 'chaos-id % %', tag, id;
    INSERT INTO chaos.ids VALUES (tag, id);
END $$;

CREATE FUNCTION chaos.pick_pending() RETURNS order_engine.orders LANGUAGE sql AS $$
    SELECT * FROM order_engine.orders WHERE status = 'pending_payment'
     ORDER BY order_no DESC LIMIT 1 OFFSET floor(random() * 20)::int
$$;

CREATE FUNCTION chaos.op(op text, arg bigint DEFAULT 0) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; det text; r bigint := 0; o order_engine.orders; n bigint; k text;
    lines jsonb; res text; ids bigint[]; b record;
BEGIN
    BEGIN
        IF op = 'place' THEN
            n := order_engine.next_order_no((random() * 1000)::bigint);
            PERFORM chaos.log_id('order_no', n);
            SELECT jsonb_agg(jsonb_build_object('sku_id', s, 'qty', 1 + (random() * 2)::int))
              INTO lines
              FROM (SELECT DISTINCT CASE WHEN random() < 0.25 THEN 2 WHEN random() < 0.1 THEN 12
                                         ELSE 1 + (random() * 19)::int END AS s
                      FROM generate_series(1, 1 + (random() * 2)::int)) x;
            res := order_engine.place_order(n, n % 1000, 1, lines,
                                            make_interval(secs => 1 + random() * 3));
            IF res = 'pending_payment' THEN
                INSERT INTO chaos.placed VALUES (n);
                IF random() < 0.1 THEN      -- a retried submission: answered, not doubled
                    res := order_engine.place_order(n, n % 1000, 1, lines,
                                                    make_interval(secs => 1 + random() * 3));
                END IF;
            END IF;
            r := n;
        ELSIF op = 'pay' THEN
            o := chaos.pick_pending();
            IF o.order_no IS NOT NULL THEN
                res := order_engine.pay_order(o.order_no, 'pay-' || o.order_no, o.total);
                IF random() < 0.1 THEN
                    res := order_engine.pay_order(o.order_no, 'pay-' || o.order_no, o.total);
                END IF;
                IF res = 'paid' AND random() < 0.7 THEN
                    PERFORM order_engine.ship_order(o.order_no, 'L' || o.order_no);
                    PERFORM order_engine.complete_order(o.order_no);
                END IF;
            END IF;
        ELSIF op = 'cancel' THEN
            o := chaos.pick_pending();
            IF o.order_no IS NOT NULL THEN
                PERFORM order_engine.cancel_order(o.order_no, 'chaos');
            END IF;
        ELSIF op = 'hold' THEN
            n := order_engine.next_id('chaos') + 1000000000000;
            PERFORM chaos.log_id('chaos', n - 1000000000000);
            -- escrow SKUs 2 and 12 (one in each range) picked more often
            IF order_engine.reserve(n, ARRAY[CASE WHEN random() < 0.3 THEN 2 ELSE 1 + (random() * 9)::bigint END,
                                             CASE WHEN random() < 0.2 THEN 12 ELSE 11 + (random() * 9)::bigint END],
                                    ARRAY[1, 1]::bigint[], make_interval(secs => 1 + random() * 2)) THEN
                r := n;
            END IF;
        ELSIF op = 'settle' THEN
            IF arg <> 0 THEN
                IF random() < 0.4 THEN
                    PERFORM order_engine.confirm(arg);
                ELSIF random() < 0.6 THEN
                    PERFORM order_engine.release(arg);
                END IF;                         -- else: left to expire
            END IF;
        ELSIF op = 'ids' THEN
            IF random() < 0.5 THEN
                PERFORM chaos.log_id('chaos', order_engine.next_id('chaos'));
            ELSE
                ids := order_engine.next_ids('chaos', 1 + (random() * 9)::int);
                PERFORM chaos.log_id('chaos', i) FROM unnest(ids) i;
            END IF;
            PERFORM chaos.log_id('snowflake', order_engine.snowflake_id());
        ELSIF op = 'stock' THEN
            -- the escrow SKUs' other paths: restock and write-off (from
            -- the bucket row, else the counter), direct sales
            n := CASE WHEN random() < 0.6 THEN 12 ELSE 2 END;
            IF random() < 0.4 THEN
                PERFORM chaos.restock(n, CASE WHEN n = 12 THEN 1 + (random() * 4)::int ELSE 5 END);
            ELSIF random() < 0.3 THEN
                PERFORM chaos.restock(n, -1);          -- OE012 when none is left
            ELSE
                PERFORM order_engine.try_deduct(n, 1);
            END IF;
        ELSIF op = 'idem' THEN
            k := 'k' || (random() * 300)::int;
            SELECT * INTO b FROM order_engine.idem_begin('chaos', k, jsonb_build_object('key', k));
            IF b.state = 'started' THEN
                INSERT INTO chaos.effects (key) VALUES (k);
                PERFORM order_engine.idem_finish('chaos', k, jsonb_build_object('effect', k));
            ELSIF b.state = 'completed' AND b.response->>'effect' IS DISTINCT FROM k THEN
                RAISE EXCEPTION 'key % replayed %', k, b.response USING ERRCODE = 'CH001';
            END IF;
        END IF;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
        -- the log keeps what a rollback of the caller's transaction undoes
        RAISE LOG 'chaos-error % % %', op, st, msg;
        INSERT INTO chaos.errors (op, sqlstate, message, detail) VALUES (op, st, msg, det);
        r := 0;
    END;
    RETURN r;
END $$;
SQL

mkdir -p "$DIR/scripts"
echo "SELECT chaos.op('place');" >"$DIR/scripts/place.sql"
echo "SELECT chaos.op('pay');" >"$DIR/scripts/pay.sql"
echo "SELECT chaos.op('cancel');" >"$DIR/scripts/cancel.sql"
printf "SELECT chaos.op('hold') AS h \\\\gset\nSELECT chaos.op('settle', :h);\n" >"$DIR/scripts/hold.sql"
echo "SELECT chaos.op('ids');" >"$DIR/scripts/ids.sql"
printf "BEGIN;\nSELECT chaos.op('ids');\nSELECT chaos.op('place');\nROLLBACK;\n" >"$DIR/scripts/rollback.sql"
echo "SELECT chaos.op('idem');" >"$DIR/scripts/idem.sql"
echo "SELECT chaos.op('stock');" >"$DIR/scripts/stock.sql"

# ---------------------------------------------------------------- checks
# One line per violated invariant; empty when all hold.
CHECK_SQL=$(cat <<'SQL'
SELECT 'stock_audit: ' || count(*) FROM order_engine.stock_audit() WHERE NOT ok HAVING count(*) > 0
UNION ALL
SELECT 'order_audit: ' || order_no || ' ' || detail FROM order_engine.order_audit()
UNION ALL
SELECT 'negative stock: ' || count(*) FROM order_engine.stock
 WHERE available < 0 OR held < 0 OR sold < 0 HAVING count(*) > 0
UNION ALL
SELECT 'held <> holds: sku ' || s.sku_id FROM order_engine.stock s
 WHERE s.held <> coalesce((SELECT sum(qty) FROM order_engine.stock_hold h
                            WHERE h.sku_id = s.sku_id AND h.state = 'held'), 0)
UNION ALL
SELECT 'order both live and archived: ' || count(*) FROM order_engine.orders o
  JOIN order_engine_archive.orders a USING (order_no) HAVING count(*) > 0
UNION ALL
SELECT 'order neither live nor archived: ' || count(*) FROM chaos.placed p
 WHERE NOT EXISTS (SELECT 1 FROM order_engine.orders o WHERE o.order_no = p.order_no)
   AND NOT EXISTS (SELECT 1 FROM order_engine_archive.orders a WHERE a.order_no = p.order_no)
HAVING count(*) > 0
UNION ALL
SELECT 'idempotency effect more than once: ' || count(*)
  FROM (SELECT key FROM chaos.effects GROUP BY key HAVING count(*) > 1) d HAVING count(*) > 0
UNION ALL
SELECT 'negative escrow: sku ' || sku_id || ' bucket ' || bucket || ' escrow ' || escrow
  FROM order_engine.stock_bucket WHERE escrow < 0
UNION ALL
SELECT 'escrow oversold: sku ' || b.sku_id || ' escrow ' || b.escrow || ' but its unfolded holds sum to ' || u.units
  FROM order_engine.stock_bucket b
  JOIN (SELECT sku_id, sum(qty) AS units FROM order_engine.stock_hold
         WHERE state = 'held' AND buckets = '{}' GROUP BY sku_id) u USING (sku_id)
 WHERE b.bucket = 0 AND b.escrow < u.units
UNION ALL
SELECT 'escrow units on a SKU that is not escrow: sku ' || b.sku_id || ' escrow ' || b.escrow
  FROM order_engine.stock_bucket b JOIN order_engine.sku k USING (sku_id)
 WHERE NOT k.escrow AND b.escrow <> 0
UNION ALL
SELECT 'escrow SKU no longer escrow: sku ' || c.sku_id
  FROM chaos.escrow_sku c LEFT JOIN order_engine.sku k USING (sku_id) WHERE k.escrow IS NOT TRUE
UNION ALL
SELECT 'escrow SKU not one bucket: sku ' || k.sku_id || ' nbuckets ' || k.nbuckets || ' bucket rows '
       || coalesce((SELECT string_agg(b.bucket::text, ',' ORDER BY b.bucket) FROM order_engine.stock_bucket b
                     WHERE b.sku_id = k.sku_id), 'none')
  FROM order_engine.sku k
 WHERE k.escrow AND (k.nbuckets <> 1 OR (SELECT array_agg(b.bucket ORDER BY b.bucket) FROM order_engine.stock_bucket b
                                          WHERE b.sku_id = k.sku_id) IS DISTINCT FROM ARRAY[0])
UNION ALL
SELECT 'undocumented error ' || sqlstate || ' in ' || op || ' (' || count(*) || '): ' || min(message)
  FROM chaos.errors e WHERE NOT EXISTS (SELECT 1 FROM chaos.expected x WHERE x.sqlstate = e.sqlstate)
   AND e.id > :last_error
 GROUP BY sqlstate, op
SQL
)
DUE_SQL="SELECT (SELECT count(*) FROM order_engine.stock_hold WHERE state = 'held' AND expires_at < now())
             + (SELECT count(*) FROM order_engine.orders WHERE status = 'pending_payment' AND pay_deadline < now())"
# escrow holds older than escrow_fold_after not yet folded, and units
# restocked or released on an escrow SKU not yet moved into escrow: the
# worker's fold_escrow does both
FOLD_SQL="SELECT (SELECT count(*) FROM order_engine.stock_hold WHERE state = 'held' AND buckets = '{}'
                     AND created_at < now() - interval '$FOLD_AFTER seconds')
              || ' unfolded holds, ' || (SELECT coalesce(sum(b.available), 0) FROM order_engine.stock_bucket b
                                         JOIN order_engine.sku k USING (sku_id) WHERE k.escrow)
              || ' units outside escrow'"
FOLD_DONE="0 unfolded holds, 0 units outside escrow"

FAILS=0
EXPECTED=$(psql_su -c "SELECT string_agg(sqlstate, ' ') FROM chaos.expected")
LOGPOS=0
LAST_ERROR=0
OPS=0
CRASHES=0
MAXLAG=0
MAXFOLD=0
PROBES=0
PROBES_UNFOLDED=0
PROBE_RETRIES=0
fail() { say "FAIL round $1: $2"; FAILS=$((FAILS + 1)); }

check_round() {
    local round=$1 out dups t0 t1 lag bad probe sku fold
    # first, before the worker folds what the crash left unfolded: the
    # escrow counters rebuilt after the crash hand out all of escrow minus
    # the unfolded holds, not a unit more (order numbers unused by the load)
    for sku in $ESCROW_HOT $ESCROW_SCARCE; do
        t0=$(date +%s)
        while :; do
            probe=$(psql_su -v sku="$sku" -v p=$((9000000000000000 + round * 1000 + sku * 10)) <<'SQL'
BEGIN;
SELECT chaos.probe_escrow(:sku, :p);
ROLLBACK;
SQL
) || { fail "$round" "escrow probe of sku $sku failed: $probe"; break; }
            PROBES=$((PROBES + 1))
            case $probe in
            ok\ 0) break ;;
            ok\ *) PROBES_UNFOLDED=$((PROBES_UNFOLDED + 1)); break ;;
            retry*)
                t1=$(date +%s)
                if [ $((t1 - t0)) -gt $FOLD_BOUND ]; then
                    fail "$round" "escrow counter still short ${FOLD_BOUND}s after restart: $probe"
                    break
                fi
                PROBE_RETRIES=$((PROBE_RETRIES + 1))
                sleep 0.5 ;;
            *)  fail "$round" "escrow counter: $probe"; break ;;
            esac
        done
    done
    out=$(psql_su -v last_error="$LAST_ERROR" <<<"$CHECK_SQL") || { fail "$round" "check query failed"; return; }
    LAST_ERROR=$(psql_su -c "SELECT coalesce(max(id), 0) FROM chaos.errors")
    if [ -n "$out" ]; then
        while IFS= read -r l; do fail "$round" "$l"; done <<<"$out"
    fi
    # every id handed out, committed or rolled back, appears once in the log
    dups=$(grep -ho 'chaos-id [a-z_]* -\?[0-9]*' "$LOG" | sort | uniq -d | head -5)
    [ -z "$dups" ] || fail "$round" "id handed out twice: $(echo "$dups" | tr '\n' ' ')"
    # the worker releases what expired (before or during the crash) within the bound
    t0=$(date +%s)
    while :; do
        [ "$(psql_su -c "$DUE_SQL")" = 0 ] && break
        t1=$(date +%s)
        if [ $((t1 - t0)) -gt $HOLD_BOUND ]; then
            fail "$round" "expired holds or overdue orders still open ${HOLD_BOUND}s after restart: $(psql_su -c "$DUE_SQL")"
            break
        fi
        sleep 0.2
    done
    lag=$(( $(date +%s) - t0 ))
    [ $lag -gt $MAXLAG ] && MAXLAG=$lag
    # the worker folds every escrow hold and moves what came back on an
    # escrow SKU into escrow within the bound
    t0=$(date +%s)
    while :; do
        fold=$(psql_su -c "$FOLD_SQL")
        [ "$fold" = "$FOLD_DONE" ] && break
        t1=$(date +%s)
        if [ $((t1 - t0)) -gt $FOLD_BOUND ]; then
            fail "$round" "escrow not folded ${FOLD_BOUND}s after the expiries: $fold"
            break
        fi
        sleep 0.2
    done
    lag=$(( $(date +%s) - t0 ))
    [ $lag -gt $MAXFOLD ] && MAXFOLD=$lag
    # what the server logged since the last check (the load, the restart,
    # the waits above): no backend or worker died, no worker job failed
    tail -n +"$((LOGPOS + 1))" "$LOG" >"$DIR/log.slice"
    LOGPOS=$((LOGPOS + $(wc -l <"$DIR/log.slice")))
    bad=$(grep -E 'terminated by signal|PANIC|FATAL|exited with exit code [^0]' "$DIR/log.slice" |
          grep -v 'due to unexpected postmaster exit' | head -1 || true)
    [ -z "$bad" ] || fail "$round" "server log: $bad"
    bad=$(grep -E 'LOG:  order_engine [a-z_]+ failed' "$DIR/log.slice" | head -1 || true)
    [ -z "$bad" ] || fail "$round" "worker job: $bad"
    # every error of the load, rolled back or not, by its log line
    undoc=$(grep -oE 'LOG:  chaos-error [a-z_]+ [0-9A-Z]{5}' "$DIR/log.slice" |
            awk -v ok=" $EXPECTED " 'index(ok, " " $4 " ") == 0 { print $4 " in " $3 }' |
            sort | uniq -c | head -5 | tr -s ' \n' ' ' || true)
    [ -z "$undoc" ] || fail "$round" "undocumented error in the server log (rolled back ones included):$undoc"
    return 0
}

# ---------------------------------------------------------------- rounds
say "$ROUNDS rounds, $CLIENTS clients, work directory $DIR"
for round in $(seq 1 "$ROUNDS"); do
    # kill somewhere between 1.0 and 4.0 seconds into the load
    delay=$(awk -v s="$RANDOM" 'BEGIN { srand(s); printf "%.2f", 1 + rand() * 3 }')
    "$BIN/pgbench" -n -h "$DIR" -p "$PORT" -U chaos_app -c $CLIENTS -j 4 -T 30 \
        -f "$DIR/scripts/place.sql@5" -f "$DIR/scripts/pay.sql@3" -f "$DIR/scripts/cancel.sql@1" \
        -f "$DIR/scripts/hold.sql@3" -f "$DIR/scripts/ids.sql@2" -f "$DIR/scripts/rollback.sql@1" \
        -f "$DIR/scripts/idem.sql@2" -f "$DIR/scripts/stock.sql@1" postgres >"$DIR/pgbench.$round.log" 2>&1 &
    bench=$!
    sleep "$delay"
    kill9_all
    wait $bench || true
    # a client may only have died of the kill, never of an error of its own
    if grep -q 'aborted in command [0-9]* query [0-9]*: ERROR' "$DIR/pgbench.$round.log"; then
        fail "$round" "pgbench: $(grep -m1 'aborted in command [0-9]* query [0-9]*: ERROR' "$DIR/pgbench.$round.log")"
    fi
    n=$(grep -oE 'number of transactions actually processed: [0-9]+' "$DIR/pgbench.$round.log" | grep -oE '[0-9]+$' || echo 0)
    OPS=$((OPS + ${n:-0}))
    if ! start_server; then
        fail "$round" "server did not restart"; tail -20 "$LOG"; break
    fi
    CRASHES=$((CRASHES + 1))
    check_round "$round"
    say "round $round: killed after ${delay}s, $n transactions, restarted, checked ($FAILS failures so far)"
done

# integrity after all the crashes: every heap page and every index entry
# of the extension's tables (pg_amcheck --heapallindexed)
if "$BIN/pg_amcheck" -h "$DIR" -p "$PORT" -U postgres --install-missing --heapallindexed \
        --schema order_engine --schema order_engine_archive postgres >"$DIR/amcheck.log" 2>&1; then
    say "pg_amcheck --heapallindexed: clean"
else
    fail final "pg_amcheck: $(head -c 300 "$DIR/amcheck.log")"
fi

errs=$(psql_su -c "SELECT coalesce(string_agg(sqlstate || ' ' || n, ', '), 'none') FROM (SELECT sqlstate, count(*) n FROM chaos.errors GROUP BY 1 ORDER BY 1) e")
ids=$(grep -c 'chaos-id ' "$LOG" || true)
orders=$(psql_su -c "SELECT count(*) FROM chaos.placed")
archived=$(psql_su -c "SELECT count(*) FROM order_engine_archive.orders")
say "rounds: $ROUNDS, operations (pgbench transactions): $OPS, crashes survived: $CRASHES"
say "ids handed out (logged): $ids, orders placed: $orders, archived: $archived, longest wait for the worker after a restart: ${MAXLAG}s"
escrow=$(psql_su <<'SQL'
SELECT string_agg(format('sku %s: %s holds (%s confirmed), sold %s, escrow %s, available %s',
                         c.sku_id, h.n, h.confirmed, s.sold, b.escrow, s.available), '; ' ORDER BY c.sku_id)
  FROM chaos.escrow_sku c
  JOIN order_engine.stock s USING (sku_id)
  JOIN order_engine.stock_bucket b ON b.sku_id = c.sku_id AND b.bucket = 0
  CROSS JOIN LATERAL (SELECT count(*) AS n, count(*) FILTER (WHERE h.state = 'confirmed') AS confirmed
                        FROM order_engine.stock_hold h WHERE h.sku_id = c.sku_id) h
SQL
)
say "escrow SKUs: $escrow; longest wait for the fold after the expiries: ${MAXFOLD}s"
say "escrow counter probes after a restart: $PROBES ($PROBES_UNFOLDED with unfolded holds left by the crash, $PROBE_RETRIES retried)"
logged=$(grep -oE 'LOG:  chaos-error [a-z_]+ [0-9A-Z]{5}' "$LOG" | awk '{ print $4 }' | sort | uniq -c |
         awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $2, $1 }' || true)
say "business errors of the load (documented): $errs; in the log, rolled-back ones included: ${logged:-none}"
say "failures: $FAILS"
[ "$FAILS" -eq 0 ]
