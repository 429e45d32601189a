#!/usr/bin/env bash
# scripts/cluster.sh: a PL/Proxy cluster of order_engine on this machine
# (docs/scale-out.md).
#
#   sudo scripts/cluster.sh start N    a router, N order shards (N = 1, 2 or 4) and 2 stock shards
#   sudo scripts/cluster.sh status
#   sudo scripts/cluster.sh stop
#
# Servers run as the postgres OS user, on unix sockets only, with data
# directories under $OE_CLUSTER_WORK (default /tmp/order_engine-cluster)
# and ports from $OE_CLUSTER_PORT (default 55400: router; +1.. order
# shards; +11, +12 stock shards).  start builds and installs order_engine
# and router/ (make install), installs the Debian packages it needs, and is
# idempotent: a second start with the same N only prints the connection
# string.  A relay loop (order_engine_router.relay()) carries the order
# shards' confirm/release calls to the stock shards.  stop stops everything
# by pid.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/scripts/lib.sh"
if [ "$(id -u)" -ne 0 ]; then
    exec sudo --preserve-env=OE_CLUSTER_WORK,OE_CLUSTER_PORT,OE_CLUSTER_SKIP_BUILD "$0" "$@"
fi

WORK=${OE_CLUSTER_WORK:-/tmp/order_engine-cluster}
BASE=${OE_CLUSTER_PORT:-55400}
SOCK=$WORK/sock
DB=oe
BIN=$OE_SYSTEM_BINDIR
PACKAGES="postgresql-$OE_PG_MAJOR postgresql-server-dev-$OE_PG_MAJOR postgresql-$OE_PG_MAJOR-plproxy make gcc"

usage() { echo "usage: $0 start 1|2|4 | stop | status" >&2; exit 2; }

# name port role node_id, one line per server of an N-order-shard cluster
servers() {
    local n=$1 i
    echo "router $BASE router 0"
    for i in $(seq 0 $((n - 1))); do echo "order$i $((BASE + 1 + i)) order $((1 + i))"; done
    for i in 0 1; do echo "stock$i $((BASE + 11 + i)) stock $((101 + i))"; done
}

connstr() { echo "host=$SOCK port=$1 dbname=$DB"; }
psql_at() { runuser -u postgres -- env PGOPTIONS="-c client_min_messages=warning" "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$1" "${@:2}"; }
running() { [ -f "$1/postmaster.pid" ] && kill -0 "$(head -1 "$1/postmaster.pid")" 2>/dev/null; }

install_everything() {
    local missing="" p
    for p in $PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        oe_say "installing Debian packages:$missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # shellcheck disable=SC2086
        apt-get install -y -qq --no-install-recommends $missing >/dev/null
    fi
    [ -n "${OE_CLUSTER_SKIP_BUILD:-}" ] && return 0
    oe_say "building and installing order_engine and router/"
    rm -rf "$WORK/src"
    oe_copy_tree "$ROOT" "$WORK/src"
    chown -R postgres: "$WORK/src"
    runuser -u postgres -- make -s -C "$WORK/src" >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log"; exit 1; }
    make -s -C "$WORK/src" install >>"$WORK/build.log" 2>&1 || { cat "$WORK/build.log"; exit 1; }
    make -s -C "$WORK/src/router" install >>"$WORK/build.log" 2>&1 || { cat "$WORK/build.log"; exit 1; }
}

start_server() {
    local name=$1 port=$2 role=$3 node=$4 dir=$WORK/$1
    if [ ! -d "$dir" ]; then
        runuser -u postgres -- "$BIN/initdb" -D "$dir" -A trust -U postgres >"$WORK/$name.initdb.log" 2>&1
        {
            echo "port = $port"
            echo "listen_addresses = ''"
            echo "unix_socket_directories = '$SOCK'"
            echo "max_connections = 100"
            if [ "$role" != router ]; then
                echo "shared_preload_libraries = 'order_engine'"
                echo "order_engine.database = '$DB'"
                echo "order_engine.node_id = $node"
            fi
        } >>"$dir/postgresql.conf"
    fi
    if ! running "$dir"; then
        runuser -u postgres -- "$BIN/pg_ctl" -D "$dir" -l "$WORK/$name.log" -w -t 60 start >/dev/null
    fi
    if [ "$(psql_at "$port" -d postgres -Atc "SELECT count(*) FROM pg_database WHERE datname = '$DB'")" = 0 ]; then
        psql_at "$port" -d postgres -c "CREATE DATABASE $DB"
    fi
    if [ "$role" = router ]; then
        psql_at "$port" -d "$DB" -c "CREATE EXTENSION IF NOT EXISTS order_engine_router CASCADE"
    else
        psql_at "$port" -d "$DB" -c "CREATE EXTENSION IF NOT EXISTS order_engine; CREATE EXTENSION IF NOT EXISTS order_engine_shard"
    fi
}

start_relay() {
    local pidf=$WORK/relay.pid
    if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then return 0; fi
    runuser -u postgres -- setsid bash -c "while :; do
        '$BIN/psql' -X -q -At -h '$SOCK' -p $BASE -d $DB -c 'SELECT order_engine_router.relay(500)' >/dev/null 2>>'$WORK/relay.log'
        sleep 0.2
    done" </dev/null >/dev/null 2>&1 &
    echo $! >"$pidf"
}

cmd_start() {
    local n=${1:-}
    case "$n" in 1|2|4) ;; *) usage ;; esac
    mkdir -p "$WORK" "$SOCK"
    chown postgres: "$WORK" "$SOCK"
    if [ -f "$WORK/order_shards" ] && [ "$(cat "$WORK/order_shards")" != "$n" ]; then
        echo "a cluster with $(cat "$WORK/order_shards") order shards exists in $WORK: stop it and remove $WORK first" >&2
        exit 1
    fi
    if [ ! -f "$WORK/installed" ]; then
        install_everything
        touch "$WORK/installed"
    fi
    echo "$n" >"$WORK/order_shards"
    local name port role node orders=() stock=()
    while read -r name port role node; do
        start_server "$name" "$port" "$role" "$node"
        case $role in
            order) orders+=("'$(connstr "$port")'") ;;
            stock) stock+=("'$(connstr "$port")'") ;;
        esac
    done < <(servers "$n")
    psql_at "$BASE" -d "$DB" -c "SELECT order_engine_router.configure(ARRAY[$(IFS=,; echo "${orders[*]}")], ARRAY[$(IFS=,; echo "${stock[*]}")])" >/dev/null
    start_relay
    oe_say "router: $n order shards, 2 stock shards"
    connstr "$BASE"
}

cmd_stop() {
    local d
    if [ -f "$WORK/relay.pid" ]; then
        kill -- -"$(cat "$WORK/relay.pid")" 2>/dev/null || kill "$(cat "$WORK/relay.pid")" 2>/dev/null || true
        rm -f "$WORK/relay.pid"
    fi
    for d in "$WORK"/router "$WORK"/order* "$WORK"/stock*; do
        [ -d "$d" ] && oe_stop_server "$d"
    done
    oe_say "stopped"
}

cmd_status() {
    local n name port role node rc=0
    [ -f "$WORK/order_shards" ] || { echo "no cluster in $WORK"; exit 3; }
    n=$(cat "$WORK/order_shards")
    while read -r name port role node; do
        if running "$WORK/$name"; then
            printf '%-7s %-6s port %s pid %s\n' "$name" up "$port" "$(head -1 "$WORK/$name/postmaster.pid")"
        else
            printf '%-7s %-6s port %s\n' "$name" down "$port"; rc=3
        fi
    done < <(servers "$n")
    if [ -f "$WORK/relay.pid" ] && kill -0 "$(cat "$WORK/relay.pid")" 2>/dev/null; then
        echo "relay   up     pid $(cat "$WORK/relay.pid")"
    else
        echo "relay   down"; rc=3
    fi
    connstr "$BASE"
    exit $rc
}

case "${1:-}" in
    start) cmd_start "${2:-}" ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) usage ;;
esac
