#!/usr/bin/env bash
# scripts/test.sh: build order_engine with warnings as errors, install it,
# and run every test suite against real, preloaded PostgreSQL servers that
# this script starts (as the postgres OS user) and stops again.
#
#   sudo scripts/test.sh                          every suite
#   OE_SUITES="regress tap" scripts/test.sh       some of them
#   OE_TAP_FILES="test/t/001_worker.pl" OE_SUITES=tap scripts/test.sh
#                                                 some files of a suite
#
# Steps (not tests; each prints its own "== step" line): packages, build,
# install, lint (cppcheck, scripts/check_layers.py, scripts/check_sql_qualified.py; run when OE_SUITES
# names it).
# Suites: regress (pg_regress: sql/, expected/), isolation
# (pg_isolation_regress: test/isolation/), pgtap (psql as pg_prove runs it:
# test/pgtap/), tap (PostgreSQL::Test::Cluster: test/t/).  An unknown name in
# OE_SUITES is an error; a suite with no test file is a failure.
#
# Environment:
#   OE_SUITES            names from "lint regress isolation pgtap tap mutation" (default: all)
#   OE_REGRESS_FILES, OE_ISOLATION_FILES, OE_PGTAP_FILES, OE_TAP_FILES
#                        a subset of one suite's files, as paths from the top
#                        of the tree (sql/101_stock.sql,
#                        test/isolation/specs/stock_last_unit.spec, ...)
#   OE_TIMEOUT_BUILD, OE_TIMEOUT_LINT, OE_TIMEOUT_REGRESS,
#   OE_TIMEOUT_ISOLATION, OE_TIMEOUT_PGTAP, OE_TIMEOUT_TAP
#                        seconds each step or suite may take (defaults below,
#                        several times what they take on a 2-core machine,
#                        and all of them together under CI's 90 minutes).  On
#                        expiry its process group is killed, the servers it
#                        left are stopped, and the tests it did not run fail.
#   OE_TEST_WORK         work directory; OE_SYSTEM_INSTALL=0 skips the
#                        system-wide install.
#   CI=true              a skip not listed in OE_ALLOWED_SKIPS (scripts/lib.sh,
#                        README) fails the run.
#
# Counting: every TAP file's plan "1..N" is read; a file that stops after k
# of N tests counts N - k failed; "# skip" and "1..0 # SKIP" count as
# skipped; a file with no plan, or an exit status that is not 0 with no
# failed test, counts one failure.  pg_regress tests that print no result
# count as failed.  The last line is "N passed, N failed, N skipped"; the
# exit status is non-zero when a step or a test failed (or, in CI, skipped
# without being listed).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/scripts/lib.sh"
oe_become_root "$@"

ALL_SUITES="lint regress isolation pgtap tap mutation"
SUITES=${OE_SUITES:-$ALL_SUITES}
WORK=${OE_TEST_WORK:-/tmp/order_engine-test.$(printf '%s' "$ROOT" | md5sum | cut -c1-8)}
SRC=$WORK/src
INST=$WORK/install
PASSED=0
FAILED=0
SKIPPED=0
STEPS_FAILED=""
PIDS_DIRS=()

# per-step and per-suite limits in seconds (about 4 minutes in all today)
T_BUILD=${OE_TIMEOUT_BUILD:-600}
T_LINT=${OE_TIMEOUT_LINT:-300}
T_REGRESS=${OE_TIMEOUT_REGRESS:-300}
T_ISOLATION=${OE_TIMEOUT_ISOLATION:-600}
T_PGTAP=${OE_TIMEOUT_PGTAP:-600}
T_TAP=${OE_TIMEOUT_TAP:-2400}
T_MUTATION=${OE_TIMEOUT_MUTATION:-900}

for s in $SUITES; do
    case " $ALL_SUITES " in
        *" $s "*) ;;
        *) echo "scripts/test.sh: unknown suite \"$s\" in OE_SUITES (known: $ALL_SUITES)" >&2
           echo "0 passed, 1 failed, 0 skipped"
           exit 2 ;;
    esac
done

stop_servers_under() {          # every server with a postmaster.pid below $1
    local d
    for d in $(find "$1" -name postmaster.pid -printf '%h\n' 2>/dev/null); do
        oe_stop_server "$d"
    done
}

cleanup() {
    local d
    for d in "${PIDS_DIRS[@]}"; do oe_stop_server "$d"; done
    stop_servers_under "$WORK"  # anything a crashed harness left running
}
trap cleanup EXIT

finish() {
    [ -n "$STEPS_FAILED" ] && echo "steps failed:$STEPS_FAILED"
    echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
    [ "$FAILED" -eq 0 ] && [ -z "$STEPS_FAILED" ]
    exit $?
}

# step(name, rc, seconds): a step's own line; it is not a test
step() {
    if [ "$2" -eq 0 ]; then
        printf '== step %-10s ok (%ds)\n' "$1" "$3"
    else
        printf '== step %-10s FAILED (%s, %ds)\n' "$1" "$(rc_text "$2")" "$3"
        STEPS_FAILED="$STEPS_FAILED $1"
    fi
}

rc_text() {
    case $1 in
        124|137) echo "timed out" ;;
        *) echo "exit status $1" ;;
    esac
}

# run_limited(seconds, command...): the command in its own process group,
# TERM to the group on expiry and KILL 30 s later.  124/137 = timed out.
run_limited() {
    local secs=$1; shift
    [ "$secs" -lt 1 ] && secs=1
    timeout -k 30 "$secs" "$@"
}

is_allowed_skip() {             # is test file $1 in OE_ALLOWED_SKIPS?
    printf '%s\n' "$OE_ALLOWED_SKIPS" | grep -q "^$1:"
}

# record_skip(file, count, reason): count skips; in CI an unlisted skip fails
record_skip() {
    local f=$1 n=$2 why=$3
    if [ "${CI:-}" = true ] && ! is_allowed_skip "$f"; then
        printf '   FAILED (CI): %s skipped %d, not in OE_ALLOWED_SKIPS: %s\n' "$f" "$n" "$why"
        S_FAIL=$((S_FAIL + n))
    else
        printf '   skipped: %s (%d): %s\n' "$f" "$n" "$why"
        S_SKIP=$((S_SKIP + n))
    fi
}

# suite_begin / suite_end: per-suite counters, deadline and summary line
suite_begin() {
    S_NAME=$1 S_PASS=0 S_FAIL=0 S_SKIP=0 S_START=$SECONDS
    S_DEADLINE=$((SECONDS + $2))
    S_LIMIT=$2
}
suite_end() {
    PASSED=$((PASSED + S_PASS))
    FAILED=$((FAILED + S_FAIL))
    SKIPPED=$((SKIPPED + S_SKIP))
    printf '== %-10s %d passed, %d failed, %d skipped (%ds)\n' \
        "$S_NAME" "$S_PASS" "$S_FAIL" "$S_SKIP" $((SECONDS - S_START))
}
remaining() { echo $((S_DEADLINE - SECONDS)); }

# The files of a suite: $1 = env subset (paths from the top), $2 = dir,
# $3 = suffix.  Prints paths relative to the top; an unknown file in the
# subset is an error.
suite_files() {
    local subset=$1 dir=$2 ext=$3 f
    if [ -n "$subset" ]; then
        for f in $subset; do
            f=${f#./}
            if [ ! -f "$ROOT/$f" ] || [ "${f%/*}" != "$dir" ] || [ "${f##*.}" != "$ext" ]; then
                echo "scripts/test.sh: no such $dir/*.$ext: $f" >&2
                return 1
            fi
            echo "$f"
        done
    else
        (cd "$SRC" && ls "$dir"/*."$ext" 2>/dev/null | sort)
    fi
}

# count_tap(stdout of one TAP file) -> "passed failed skipped plan seen skipall-reason"
count_tap() {
    awk '
        function lc(s) { return tolower(s) }
        /^1\.\.[0-9]+/ {
            plan = $0; sub(/^1\.\./, "", plan); sub(/[^0-9].*$/, "", plan); plan += 0; hasplan = 1
            if (plan == 0 && lc($0) ~ /#[[:space:]]*skip/) { why = $0; sub(/^[^#]*#[[:space:]]*[Ss][Kk][Ii][Pp][[:space:]]*/, "", why) }
            next
        }
        /^Bail out!/ { bail = 1; next }
        /^(not )?ok [0-9]+/ {
            seen++
            directive = ""
            if (match($0, /#[[:space:]]*[A-Za-z]+/)) directive = lc(substr($0, RSTART, RLENGTH))
            gsub(/[#[:space:]]/, "", directive)
            if (directive == "skip" || directive == "todo") sk++
            else if ($0 ~ /^ok/) ok++
            else bad++
        }
        END {
            if (!hasplan) bad++                         # died before its plan
            else if (seen < plan) bad += plan - seen    # tests that never ran
            else if (seen > plan) bad += seen - plan    # more than planned
            if (bail && bad == 0) bad = 1
            if (why == "") why = "-"
            printf "%d %d %d %d %d %s\n", ok, bad, sk, (hasplan ? plan : -1), seen, why
        }' "$1"
}

# tap_file(file, stdout, stderr, rc, seconds[, log]): count one TAP file's
# output; on failure show its failures, stderr and the tail of log
tap_file() {
    local f=$1 out=$2 err=$3 rc=$4 secs=$5 log=${6:-} p b s plan seen why
    read -r p b s plan seen why < <(count_tap "$out")
    if [ "$plan" -eq 0 ] && [ "$seen" -eq 0 ] && [ "$why" != "-" ]; then
        record_skip "$f" 1 "$why"
        [ "$rc" -ne 0 ] && b=$((b + 1))
    else
        [ "$s" -gt 0 ] && record_skip "$f" "$s" "$(grep -iE '^(not )?ok.*#[[:space:]]*(skip|todo)' "$out" | head -3 | tr '\n' ';')"
        if [ "$rc" -ne 0 ] && [ "$b" -eq 0 ]; then b=1; fi
    fi
    S_PASS=$((S_PASS + p))
    S_FAIL=$((S_FAIL + b))
    if [ "$b" -gt 0 ]; then
        printf '   FAILED %-40s %d passed, %d failed (plan %s, ran %d, %s, %ds)\n' \
            "$f" "$p" "$b" "$plan" "$seen" "$(rc_text "$rc")" "$secs"
        grep -E '^not ok|^Bail out!' "$out" | head -50 | sed 's/^/     /'
        tail -80 "$err" | sed 's/^/     /'
        if [ -n "$log" ] && [ -f "$log" ]; then
            echo "     -- last lines of $log"
            tail -40 "$log" | sed 's/^/     /'
        fi
    else
        printf '   ok     %-40s %d passed (%ds)\n' "$f" "$p" "$secs"
    fi
}

# not_run(files...): files a suite never reached before its deadline
not_run() {
    local f
    for f in "$@"; do
        printf '   FAILED %-40s not run: suite time limit of %ds reached\n' "$f" "$S_LIMIT"
        S_FAIL=$((S_FAIL + 1))
    done
}

# ---------------------------------------------------------------- steps

t0=$SECONDS
oe_install_packages
rc=$?
step packages $rc $((SECONDS - t0))
# every program the suites call, beyond the packages' own status
for prog in make gcc cppcheck sqlsmith pg_prove prove perl timeout pgbouncer prometheus-postgres-exporter curl python3; do
    PATH="$PATH:/usr/sbin:/sbin" command -v "$prog" >/dev/null 2>&1 || { echo "   missing program: $prog"; STEPS_FAILED="$STEPS_FAILED programs"; }
done
perl -MIPC::Run -e1 2>/dev/null || { echo "   missing Perl module IPC::Run"; STEPS_FAILED="$STEPS_FAILED programs"; }
/usr/bin/python3 -c 'import psycopg2' 2>/dev/null || { echo "   missing Python module psycopg2 (for /usr/bin/python3)"; STEPS_FAILED="$STEPS_FAILED programs"; }
SHAREDIR=/usr/share/postgresql/$OE_PG_MAJOR
for ext in pg_cron pgtap plproxy; do
    [ -f "$SHAREDIR/extension/$ext.control" ] || { echo "   missing extension $ext"; STEPS_FAILED="$STEPS_FAILED programs"; }
done
if [ -n "$STEPS_FAILED" ]; then
    echo "required software is missing (README, \"Optional packages\", lists what may be)"
    finish
fi

oe_say "building in $SRC"
if [ -d "$WORK" ]; then cleanup; fi
rm -rf "$WORK"
mkdir -p "$WORK"
oe_copy_tree "$ROOT" "$SRC"
chown -R postgres: "$WORK"
t0=$SECONDS
run_limited "$T_BUILD" runuser -u postgres -- env PATH="$PATH" \
    make -s -C "$SRC" COPT="$OE_WARNINGS" >"$WORK/build.log" 2>&1
rc=$?
[ $rc -ne 0 ] && cat "$WORK/build.log"
step build $rc $((SECONDS - t0))
[ $rc -ne 0 ] && finish

# A private installation: PostgreSQL's own files plus ours, so the suites
# never depend on what else is installed system-wide.
oe_say "installing into $INST"
t0=$SECONDS
mkdir -p "$INST/usr/lib/postgresql" "$INST/usr/share/postgresql"
cp -a "/usr/lib/postgresql/$OE_PG_MAJOR" "$INST/usr/lib/postgresql/"
cp -a "/usr/share/postgresql/$OE_PG_MAJOR" "$INST/usr/share/postgresql/"
# whatever order_engine another tree installed system-wide is not ours
rm -rf "$INST/usr/share/postgresql/$OE_PG_MAJOR/extension"/order_engine[.-]* \
    "$INST/usr/lib/postgresql/$OE_PG_MAJOR/lib/order_engine.so" \
    "$INST/usr/lib/postgresql/$OE_PG_MAJOR/lib/bitcode/order_engine"*
chown -R postgres: "$INST"
# the extension, and the PL/Proxy router and shard extensions (router/)
rm -rf "$INST/usr/share/postgresql/$OE_PG_MAJOR/extension"/order_engine_router* \
    "$INST/usr/share/postgresql/$OE_PG_MAJOR/extension"/order_engine_shard*
oe_as_postgres make -s -C "$SRC" install DESTDIR="$INST" >>"$WORK/build.log" 2>&1 &&
    oe_as_postgres make -s -C "$SRC/router" install DESTDIR="$INST" >>"$WORK/build.log" 2>&1
rc=$?
if [ $rc -eq 0 ] && [ "${OE_SYSTEM_INSTALL:-1}" = 1 ]; then
    make -s -C "$SRC" install >>"$WORK/build.log" 2>&1 &&
        make -s -C "$SRC/router" install >>"$WORK/build.log" 2>&1
    rc=$?
fi
[ $rc -ne 0 ] && cat "$WORK/build.log"
step install $rc $((SECONDS - t0))
[ $rc -ne 0 ] && finish
# The previous release's library, for test/t/896_old_library.pl: built from
# its commit in this clone's history.  A clone without it (shallow) fails
# this step rather than skip the test.
if [[ " $SUITES " == *" tap "* ]]; then
    oe_say "building release $OE_PREVIOUS_RELEASE ($OE_PREVIOUS_RELEASE_COMMIT) from git"
    t0=$SECONDS
    PREV=$WORK/previous
    mkdir -p "$PREV"
    if git -C "$ROOT" cat-file -e "$OE_PREVIOUS_RELEASE_COMMIT^{commit}" 2>"$WORK/previous.log"; then
        git -C "$ROOT" archive "$OE_PREVIOUS_RELEASE_COMMIT" | tar -x -C "$PREV" &&
            chown -R postgres: "$PREV" &&
            run_limited "$T_BUILD" runuser -u postgres -- env PATH="$PATH" \
                make -s -C "$PREV" COPT="$OE_WARNINGS" >>"$WORK/previous.log" 2>&1
        rc=$?
    else
        echo "   commit $OE_PREVIOUS_RELEASE_COMMIT is not in the history of $ROOT (a shallow clone?)" \
            >>"$WORK/previous.log"
        rc=1
    fi
    [ $rc -ne 0 ] && cat "$WORK/previous.log"
    step previous $rc $((SECONDS - t0))
    export OE_PREVIOUS_LIB=$PREV/order_engine.so OE_PREVIOUS_RELEASE
fi

# the server headers, from the system's pg_config: the private installation
# has no include directory, and its pg_config names one that does not exist
SERVER_INCLUDES=$(pg_config --includedir-server)
[ -f "$SERVER_INCLUDES/postgres.h" ] || { echo "no postgres.h in $SERVER_INCLUDES"; exit 1; }

BIN=$INST/usr/lib/postgresql/$OE_PG_MAJOR/bin
export PATH="$BIN:$PATH"

PGXS_TEST=$INST/usr/lib/postgresql/$OE_PG_MAJOR/lib/pgxs/src/test

step_lint() {
    local log=$WORK/lint.log rc t0=$SECONDS
    run_limited "$T_LINT" cppcheck --quiet --error-exitcode=1 --inline-suppr \
        --enable=warning,performance,portability \
        --std=c99 --suppress=missingIncludeSystem \
        -I "$SRC/src" -I "$SERVER_INCLUDES" \
        -D__GNUC__ -DPG_MODULE_MAGIC= \
        $(find "$SRC/src" -name '*.c' | sort) >"$log" 2>&1
    rc=$?
    # the folders of src/ depend on each other one way (docs/architecture.md)
    python3 "$SRC/scripts/check_layers.py" "$SRC/src" >>"$log" 2>&1 || rc=1
    # every internal query text names its operators with their schema
    python3 "$SRC/scripts/check_sql_qualified.py" >>"$log" 2>&1 || rc=1
    cat "$log"
    step lint $rc $((SECONDS - t0))
}

# ---------------------------------------------------------------- suites

# pg_regress / pg_isolation_regress: "test name ... ok" or "... FAILED";
# $1 = run log, $2.. = the tests it was given.  A test without a result line
# (the runner died or timed out) is failed.
count_regress() {
    local log=$1 t; shift
    for t in "$@"; do
        if grep -qE "(^|[[:space:]])$t[[:space:]]+\.\.\. ok" "$log"; then
            S_PASS=$((S_PASS + 1))
        elif grep -qE "(^|[[:space:]])$t[[:space:]]+\.\.\. " "$log"; then
            S_FAIL=$((S_FAIL + 1))
        else
            printf '   FAILED %s: no result\n' "$t"
            S_FAIL=$((S_FAIL + 1))
        fi
    done
}

# run_regress(suite, runner, inputdir, files, subset-var)
run_regress() {
    local suite=$1 runner=$2 inputdir=$3 out=$WORK/$1 rc files tests
    files=$(suite_files "$4" "$5" "$6") || { S_FAIL=$((S_FAIL + 1)); return; }
    tests=$(for f in $files; do basename "$f" ".$6"; done)
    if [ -z "$tests" ]; then
        echo "   FAILED: no test file in $5"
        S_FAIL=$((S_FAIL + 1)); return
    fi
    mkdir -p "$out"; chown postgres: "$out"
    # shellcheck disable=SC2086
    (cd "$SRC" && run_limited "$(remaining)" runuser -u postgres -- env PATH="$PATH" \
        "$PGXS_TEST/$runner" \
        --bindir="$BIN" --inputdir="$inputdir" --outputdir="$out" \
        --temp-instance="$out/tmp_check" --temp-config="$SRC/test/postgresql.conf" \
        --dbname=contrib_regression $tests) >"$out/run.log" 2>&1
    rc=$?
    cat "$out/run.log"
    case $rc in 124|137) echo "   TIMEOUT: $suite ran out of its ${S_LIMIT}s"; stop_servers_under "$out" ;; esac
    for d in "$out/output_iso/regression.diffs" "$out/regression.diffs"; do
        [ -f "$d" ] && head -200 "$d"
    done
    # shellcheck disable=SC2086
    count_regress "$out/run.log" $tests
    if [ "$rc" -ne 0 ] && [ "$S_FAIL" -eq 0 ]; then
        echo "   FAILED: $runner: $(rc_text $rc) with every test ok"
        S_FAIL=$((S_FAIL + 1))
    fi
}

suite_regress() {
    run_regress regress regress/pg_regress "$SRC" "${OE_REGRESS_FILES:-}" sql sql
}

suite_isolation() {
    run_regress isolation isolation/pg_isolation_regress "$SRC/test/isolation" \
        "${OE_ISOLATION_FILES:-}" test/isolation/specs spec
}

# pgTAP: one preloaded server with both extensions; each file rolls back.
# Each file runs through psql with the settings pg_prove uses, so that its
# raw TAP (plan included) is counted here.
suite_pgtap() {
    local dir=$WORK/pgtap data=$WORK/pgtap/data port=${OE_PGTAP_PORT:-54391} rc f files t0 base
    files=$(suite_files "${OE_PGTAP_FILES:-}" test/pgtap sql) || { S_FAIL=$((S_FAIL + 1)); return; }
    if [ -z "$files" ]; then echo "   FAILED: no test file in test/pgtap"; S_FAIL=$((S_FAIL + 1)); return; fi
    mkdir -p "$dir"; chown postgres: "$dir"
    oe_as_postgres initdb -D "$data" -U postgres --no-sync -A trust >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log"; S_FAIL=$((S_FAIL + 1)); return; }
    cat "$SRC/test/postgresql.conf" >>"$data/postgresql.conf"
    printf "port = %d\nlisten_addresses = ''\nunix_socket_directories = '%s'\n" "$port" "$dir" >>"$data/postgresql.conf"
    PIDS_DIRS+=("$data")
    oe_as_postgres pg_ctl -D "$data" -l "$dir/server.log" -w start >/dev/null || { cat "$dir/server.log"; S_FAIL=$((S_FAIL + 1)); return; }
    if ! { oe_as_postgres createdb -h "$dir" -p $port contrib_regression &&
           oe_as_postgres psql -X -q -h "$dir" -p $port -d contrib_regression -v ON_ERROR_STOP=1 \
               -c 'CREATE EXTENSION pgtap' -c 'CREATE EXTENSION order_engine' >/dev/null; }; then
        S_FAIL=$((S_FAIL + 1)); oe_stop_server "$data"; return
    fi
    set -- $files
    while [ $# -gt 0 ]; do
        f=$1; shift
        if [ "$(remaining)" -le 0 ]; then not_run "$f" "$@"; break; fi
        base=$dir/$(basename "$f")
        t0=$SECONDS
        (cd "$SRC" && run_limited "$(remaining)" runuser -u postgres -- env PATH="$PATH" \
            psql -X -h "$dir" -p $port -d contrib_regression --no-align --quiet \
            --pset pager=off --pset tuples_only=true --set ON_ERROR_STOP=1 \
            --file "$f") >"$base.out" 2>"$base.err" </dev/null
        rc=$?
        tap_file "$f" "$base.out" "$base.err" $rc $((SECONDS - t0))
    done
    oe_stop_server "$data"
}

# TAP: PostgreSQL::Test::Cluster starts and stops its own servers.
suite_tap() {
    local dir=$WORK/tap rc f files t0 base
    files=$(suite_files "${OE_TAP_FILES:-}" test/t pl) || { S_FAIL=$((S_FAIL + 1)); return; }
    if [ -z "$files" ]; then echo "   FAILED: no test file in test/t"; S_FAIL=$((S_FAIL + 1)); return; fi
    mkdir -p "$dir"; chown postgres: "$dir"
    set -- $files
    while [ $# -gt 0 ]; do
        f=$1; shift
        if [ "$(remaining)" -le 0 ]; then not_run "$f" "$@"; break; fi
        base=$dir/$(basename "$f" .pl)
        t0=$SECONDS
        (cd "$SRC" && run_limited "$(remaining)" runuser -u postgres -- env PATH="$PATH" \
            TESTDIR="$dir" PG_REGRESS="$PGXS_TEST/regress/pg_regress" \
            PERL5LIB="$PGXS_TEST/perl:$SRC/test/perl" OE_TEST_CONF="$SRC/test/postgresql.conf" \
            ${OE_SQLSMITH_QUERIES:+OE_SQLSMITH_QUERIES=$OE_SQLSMITH_QUERIES} \
            ${OE_PREVIOUS_LIB:+OE_PREVIOUS_LIB=$OE_PREVIOUS_LIB OE_PREVIOUS_RELEASE=$OE_PREVIOUS_RELEASE} \
            perl "$f") >"$base.out" 2>"$base.err" </dev/null
        rc=$?
        case $rc in 124|137) echo "   TIMEOUT: $f killed, tap ran out of its ${S_LIMIT}s"; stop_servers_under "$dir" ;; esac
        tap_file "$f" "$base.out" "$base.err" $rc $((SECONDS - t0)) \
            "$dir/tmp_check/log/regress_log_$(basename "$f" .pl)"
    done
}

# mutation: test/mutation.sh breaks each of its rules, one at a time, in a copy
# of this build; each "ok" line is a rule whose test failed when broken
suite_mutation() {
    local out=$WORK/mutation.log rc
    run_limited "$(remaining)" bash "$SRC/test/mutation.sh" "$WORK" >"$out" 2>&1
    rc=$?
    grep -E '^(ok|not ok) ' "$out"
    S_PASS=$((S_PASS + $(grep -cE '^ok ' "$out")))
    S_FAIL=$((S_FAIL + $(grep -cE '^not ok ' "$out")))
    if [ $rc -ne 0 ] && ! grep -qE '^not ok ' "$out"; then
        tail -20 "$out"; S_FAIL=$((S_FAIL + 1))
    fi
}

for s in $SUITES; do
    case $s in
        lint) step_lint; continue ;;
    esac
    oe_say "suite $s"
    limit_var=T_$(echo "$s" | tr '[:lower:]' '[:upper:]')
    suite_begin "$s" "${!limit_var}"
    "suite_$s"
    stop_servers_under "$WORK/$s"
    suite_end
done

finish
