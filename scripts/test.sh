#!/usr/bin/env bash
# scripts/test.sh: build order_engine with warnings as errors, install it,
# and run every test suite against real, preloaded PostgreSQL servers that
# this script starts (as the postgres OS user) and stops again.
#
#   sudo scripts/test.sh                 every suite
#   OE_SUITES="regress tap" scripts/test.sh    some of them
#
# Suites: lint (cppcheck), regress (pg_regress: sql/, expected/),
# isolation (pg_isolation_regress: test/isolation/), pgtap (pg_prove:
# test/pgtap/), tap (PostgreSQL::Test::Cluster: test/t/).
# The last line is "N passed, N failed"; the exit status is non-zero when
# anything failed.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/scripts/lib.sh"
oe_become_root "$@"

SUITES=${OE_SUITES:-"lint regress isolation pgtap tap"}
WORK=${OE_TEST_WORK:-/tmp/order_engine-test.$(printf '%s' "$ROOT" | md5sum | cut -c1-8)}
SRC=$WORK/src
INST=$WORK/install
PGXSDIR=/usr/lib/postgresql/$OE_PG_MAJOR/lib/pgxs
PASSED=0
FAILED=0
PIDS_DIRS=()

cleanup() {
    local d
    for d in "${PIDS_DIRS[@]}"; do oe_stop_server "$d"; done
    # anything a crashed harness left running under $WORK
    for d in $(find "$WORK" -name postmaster.pid -printf '%h\n' 2>/dev/null); do
        oe_stop_server "$d"
    done
}
trap cleanup EXIT

# record(suite, passed, failed, exit status of the suite's runner)
record() {
    local suite=$1 p=$2 f=$3 rc=$4
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1                     # the runner failed without naming a test
    fi
    PASSED=$((PASSED + p))
    FAILED=$((FAILED + f))
    printf '== %-10s %d passed, %d failed\n' "$suite" "$p" "$f"
}

count_tap() {                   # TAP lines "ok N" / "not ok N" in $1
    local ok notok
    ok=$(grep -cE '^[[:space:]]*ok [0-9]+' "$1")
    notok=$(grep -cE '^[[:space:]]*not ok [0-9]+' "$1")
    echo "$ok $notok"
}

oe_install_packages

oe_say "building in $SRC"
if [ -d "$WORK" ]; then cleanup; fi
rm -rf "$WORK"
mkdir -p "$WORK"
oe_copy_tree "$ROOT" "$SRC"
chown -R postgres: "$WORK"
if ! oe_as_postgres make -s -C "$SRC" COPT="$OE_WARNINGS" >"$WORK/build.log" 2>&1; then
    cat "$WORK/build.log"
    record build 0 1 1
    echo "$PASSED passed, $FAILED failed"
    exit 1
fi
record build 1 0 0

# A private installation: PostgreSQL's own files plus ours, so the suites
# never depend on what else is installed system-wide.
oe_say "installing into $INST"
mkdir -p "$INST/usr/lib/postgresql" "$INST/usr/share/postgresql"
cp -a "/usr/lib/postgresql/$OE_PG_MAJOR" "$INST/usr/lib/postgresql/"
cp -a "/usr/share/postgresql/$OE_PG_MAJOR" "$INST/usr/share/postgresql/"
chown -R postgres: "$INST"
oe_as_postgres make -s -C "$SRC" install DESTDIR="$INST" >>"$WORK/build.log" 2>&1 || { cat "$WORK/build.log"; exit 1; }
if [ "${OE_SYSTEM_INSTALL:-1}" = 1 ]; then
    make -s -C "$SRC" install >>"$WORK/build.log" 2>&1 || { cat "$WORK/build.log"; exit 1; }
fi
BIN=$INST/usr/lib/postgresql/$OE_PG_MAJOR/bin
export PATH="$BIN:$PATH"
PGXS_TEST=$INST/usr/lib/postgresql/$OE_PG_MAJOR/lib/pgxs/src/test

suite_lint() {
    local log=$WORK/lint.log rc
    cppcheck --quiet --error-exitcode=1 --inline-suppr \
        --enable=warning,performance,portability \
        --std=c99 --suppress=missingIncludeSystem \
        -I "$SRC/src" -I "$(pg_config --includedir-server)" \
        -D__GNUC__ -DPG_MODULE_MAGIC= \
        "$SRC"/src/*.c >"$log" 2>&1
    rc=$?
    cat "$log"
    if [ $rc -eq 0 ]; then record lint 1 0 0; else record lint 0 1 $rc; fi
}

# pg_regress / pg_isolation_regress print "name ... ok" or "... FAILED"
count_regress() {
    local ok bad
    ok=$(grep -cE '\.\.\. ok' "$1")
    bad=$(grep -cE '\.\.\. (FAILED|failed)' "$1")
    echo "$ok $bad"
}

suite_regress() {
    local out=$WORK/regress rc tests
    tests=$(cd "$SRC/sql" && ls *.sql 2>/dev/null | sed 's/\.sql$//' | sort)
    mkdir -p "$out"; chown postgres: "$out"
    (cd "$SRC" && oe_as_postgres "$PGXS_TEST/regress/pg_regress" \
        --bindir="$BIN" --inputdir="$SRC" --outputdir="$out" \
        --temp-instance="$out/tmp_check" --temp-config="$SRC/test/postgresql.conf" \
        --dbname=contrib_regression $tests) >"$out/run.log" 2>&1
    rc=$?
    cat "$out/run.log"
    [ -f "$out/regression.diffs" ] && head -200 "$out/regression.diffs"
    # shellcheck disable=SC2046
    record regress $(count_regress "$out/run.log") $rc
}

suite_isolation() {
    local out=$WORK/isolation rc tests
    tests=$(cd "$SRC/test/isolation/specs" && ls *.spec 2>/dev/null | sed 's/\.spec$//' | sort)
    if [ -z "$tests" ]; then record isolation 0 0 0; return; fi
    mkdir -p "$out"; chown postgres: "$out"
    (cd "$SRC" && oe_as_postgres "$PGXS_TEST/isolation/pg_isolation_regress" \
        --bindir="$BIN" --inputdir="$SRC/test/isolation" --outputdir="$out" \
        --temp-instance="$out/tmp_check" --temp-config="$SRC/test/postgresql.conf" \
        --dbname=contrib_regression $tests) >"$out/run.log" 2>&1
    rc=$?
    cat "$out/run.log"
    [ -f "$out/output_iso/regression.diffs" ] && head -200 "$out/output_iso/regression.diffs"
    [ -f "$out/regression.diffs" ] && head -200 "$out/regression.diffs"
    # shellcheck disable=SC2046
    record isolation $(count_regress "$out/run.log") $rc
}

# pgTAP: one preloaded server with both extensions; each file rolls back.
suite_pgtap() {
    local dir=$WORK/pgtap data=$WORK/pgtap/data port=54391 rc
    mkdir -p "$dir"; chown postgres: "$dir"
    oe_as_postgres initdb -D "$data" -U postgres --no-sync -A trust >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log"; record pgtap 0 1 1; return; }
    cat "$SRC/test/postgresql.conf" >>"$data/postgresql.conf"
    printf "port = %d\nlisten_addresses = ''\nunix_socket_directories = '%s'\n" "$port" "$dir" >>"$data/postgresql.conf"
    PIDS_DIRS+=("$data")
    oe_as_postgres pg_ctl -D "$data" -l "$dir/server.log" -w start >/dev/null || { cat "$dir/server.log"; record pgtap 0 1 1; return; }
    oe_as_postgres createdb -h "$dir" -p $port contrib_regression
    oe_as_postgres psql -X -q -h "$dir" -p $port -d contrib_regression \
        -c 'CREATE EXTENSION pgtap' -c 'CREATE EXTENSION order_engine' >/dev/null
    (cd "$SRC" && oe_as_postgres pg_prove -v -h "$dir" -p $port -d contrib_regression \
        test/pgtap/*.sql) >"$dir/run.log" 2>&1
    rc=$?
    cat "$dir/run.log" | grep -vE '^[[:space:]]*ok [0-9]+' 
    oe_stop_server "$data"
    # shellcheck disable=SC2046
    record pgtap $(count_tap "$dir/run.log") $rc
}

# TAP: PostgreSQL::Test::Cluster starts and stops its own servers.
suite_tap() {
    local dir=$WORK/tap rc
    mkdir -p "$dir"; chown postgres: "$dir"
    (cd "$SRC" && oe_as_postgres env TESTDIR="$dir" PG_REGRESS="$PGXS_TEST/regress/pg_regress" \
        PERL5LIB="$PGXS_TEST/perl:$SRC/test/perl" OE_TEST_CONF="$SRC/test/postgresql.conf" \
        prove -v test/t/*.pl) >"$dir/run.log" 2>&1
    rc=$?
    cat "$dir/run.log" | grep -vE '^[[:space:]]*ok [0-9]+'
    # shellcheck disable=SC2046
    record tap $(count_tap "$dir/run.log") $rc
}

for s in $SUITES; do
    oe_say "suite $s"
    "suite_$s"
done

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
