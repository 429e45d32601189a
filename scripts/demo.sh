#!/usr/bin/env bash
# scripts/demo.sh: install what is missing, build and install order_engine,
# start a throwaway preloaded server and run the demo against it.
#
#   sudo scripts/demo.sh         (re)start the demo server and run the demo
#   sudo scripts/demo.sh stop    stop the demo server and remove its files
#
# The server keeps running after the demo so you can look around; the last
# lines say how to connect and how to stop it.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/scripts/lib.sh"
oe_become_root "$@"

DIR=/tmp/order_engine-demo
DATA=$DIR/data
PORT=${OE_DEMO_PORT:-54329}
PSQL="psql -X -h $DIR -p $PORT -U postgres"

if [ -d "$DATA" ]; then
    oe_say "stopping the previous demo server"
    oe_stop_server "$DATA"
fi
rm -rf "$DIR"
if [ "${1:-}" = stop ]; then
    oe_say "demo server stopped"
    exit 0
fi

oe_install_packages

oe_say "building and installing order_engine"
BUILD=$DIR/build
oe_copy_tree "$ROOT" "$BUILD"
make -s -C "$BUILD" COPT="$OE_WARNINGS" >/dev/null
make -s -C "$BUILD" install >/dev/null

oe_say "starting a preloaded server in $DIR (port $PORT)"
mkdir -p "$DIR"
chown -R postgres: "$DIR"
export PATH="$OE_SYSTEM_BINDIR:$PATH"
oe_as_postgres initdb -D "$DATA" -U postgres -A trust --no-sync >/dev/null
cat >>"$DATA/postgresql.conf" <<CONF
shared_preload_libraries = 'order_engine'
order_engine.database = 'demo'
order_engine.naptime = '1s'
port = $PORT
listen_addresses = ''
unix_socket_directories = '$DIR'
CONF
oe_as_postgres pg_ctl -D "$DATA" -l "$DIR/server.log" -w start >/dev/null
oe_as_postgres createdb -h "$DIR" -p "$PORT" demo
oe_as_postgres $PSQL -d demo -q -c 'CREATE EXTENSION order_engine'

oe_say "running demo/demo.sql"
oe_as_postgres $PSQL -d demo -f "$ROOT/demo/demo.sql"

# The flash sale: 200 units, 16 parallel buyers; three in ten pay, one in
# ten cancels, the
# others' holds expire after 3 s and the worker gives the units back, so a
# second wave buys them again.
oe_say "flash sale: 16 parallel buyers race for 200 units (holds expire after 3 s)"
cp "$ROOT"/demo/flash_sale_* "$DIR/"
chown postgres: "$DIR"/flash_sale_*
oe_as_postgres $PSQL -d demo -q -f "$DIR/flash_sale_setup.sql" >/dev/null
progress() {
    oe_as_postgres $PSQL -d demo -At -f "$DIR/flash_sale_progress.sql"
}
for wave in 1 2; do
    oe_as_postgres pgbench -n -h "$DIR" -p "$PORT" -U postgres -c 16 -j 2 -T 4 \
        -f "$DIR/flash_sale_buyer.pgbench" demo >"$DIR/wave$wave.log" 2>&1 &
    bench=$!
    while kill -0 "$bench" 2>/dev/null; do
        printf '\r  wave %d: %s   ' "$wave" "$(progress)"
        sleep 0.5
    done
    wait "$bench" || { cat "$DIR/wave$wave.log"; exit 1; }
    printf '\r  wave %d: %s   \n' "$wave" "$(progress)"
    echo "  wave $wave throughput: $(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$DIR/wave$wave.log" | cut -d. -f1) attempts/s"
    echo "  waiting for unpaid holds to expire and the worker to release them..."
    for i in $(seq 1 100); do
        held=$(oe_as_postgres $PSQL -d demo -At -c "SELECT held FROM order_engine.stock WHERE sku_id = 1")
        printf '\r  %s   ' "$(progress)"
        [ "$held" = 0 ] && break
        sleep 0.2
    done
    printf '\n'
done
oe_as_postgres $PSQL -d demo -f "$DIR/flash_sale_summary.sql"

cat <<TXT

The demo server is still running.
  connect:  psql -h $DIR -p $PORT -U postgres demo
  stop:     $ROOT/scripts/demo.sh stop
TXT
