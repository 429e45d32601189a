#!/usr/bin/env bash
# test/mutation.sh WORK: prove that rules of the code are guarded.
#
# For each rule, break it on purpose in a copy of the tree that
# scripts/test.sh built in WORK (WORK/src, WORK/install), rebuild and
# reinstall the copy, run the test that names the rule, and require that
# test to FAIL.  A mutant that passes its test, or a mutation that no
# longer applies to the code, fails this script.  Then the unmutated copy
# is rebuilt and the same tests must pass, so a failure is the mutation's.
#
#   rule                         mutation                                  test that must fail
#   reserve sorts its lines      the qsort of reserve's lines removed      isolation stock_opposite_order
#   the purchase limit           the tally upsert's limit test dropped     regress 101_stock
#   confirm's hold-state guard   confirming a released hold allowed        regress 101_stock
#   an id range is flushed       the XLogFlush after setval removed        TAP 205_id_flush
#   the worker's pinned settings the worker keeps the database's SET's     TAP 505_worker_settings
#   a new limit counts holds     set_purchase_limit without its sku lock    isolation stock_limit_set_during_reserve
#   in flight
#   a finish rechecks its claim  the recheck on the locked version dropped  isolation idem_finish_race
#   a sweep batch is one row     the worker's batch of whole orders again   TAP 506_sweep_free_buckets
#   a busy row is passed over    the row a batch could not lock not noted   TAP 506_sweep_free_buckets
#   an escrow take stays within  the counter's "units >= qty" dropped      regress 102_escrow
#   the counter
#   a counter is built from      the rebuild sees its own transaction's    regress 102_escrow
#   committed rows               changes (curcid 0 dropped)
#   an aborted take gives its    the abort callback keeps the units        isolation escrow_last_unit
#   units back
#   restock lets the fold's      restock's sku lock FOR UPDATE again       isolation escrow_restock_vs_fold
#   key check through
#   cached indexes follow DDL    the index cache's invalidation ignored    regress 104_direct_write_caches
#   a table is found by its      the OID-by-name cache never forgets       regress 104_direct_write_caches
#   current name
#   a remembered claim is only   finish uses it whatever key it has        regress 104_direct_write_caches
#   its own key's
#   expiries gather before a     the worker wakes at each expiry again     TAP 508_expiry_gather
#   sweep
#   a direct event write emits   session_replication_role ignored          TAP 895_cdc
#   where the trigger would fire
#   a default's nextval checks   the direct write's nextval unchecked      regress 104_direct_write_caches
#   USAGE, as from SQL
#   columns are found by their   the kept column numbers never forgotten   regress 104_direct_write_caches
#   current names
#   a batch locks its rows in    rows gathered (locked) in the transaction regress 400_orders
#   the subtransaction that      and changed row by row in subtransactions
#   changes them
#   from 1.0 a hold is journaled the journal rows of a hold written        regress 101_stock
#   by its row alone             to stock_movement too
#   a schema before 1.0 journals no hold journaled on an older schema      regress 101_stock
#   each hold                    (its audit, run by 001_extension, fails)
#   internal SQL runs with the   the search path never pinned              TAP 810_hostile_sweep
#   search path pinned           (a DBA's trigger then finds a shadow)
#   the sweep checks a hold's    'pending_payment' a literal again         TAP 509_sweep_plans
#   order by its key
#   a batch finds its planned    the hold state a literal again            TAP 509_sweep_plans
#   holds by their keys
#   an archive batch moves an    the batch's count of moved orders         TAP 500_worker_jobs
#   order only with its row      unchecked
#   the archive walks finished   its batch ordered by order number again   TAP 509_sweep_plans
#   orders by finishing time
#   a take starts where the      the lookup's tid never used (the probe    regress 104_direct_write_caches
#   lookup saw its bucket row    every time)
#   a statement pins the path    OeKeepPlan and OeExecPlan pin nothing      TAP 810_hostile_sweep
#   before it is prepared or run
#   a held NOTIFY goes out when  the worker's sleep not cut short for it   TAP 500_worker_jobs
#   the gather ends
#   commits gather behind one    order_engine.notify_gather ignored        TAP 500_worker_jobs
#   NOTIFY
#
# scripts/test.sh runs it as the "mutation" suite; the last line is
# "N passed, N failed" like every suite.
set -uo pipefail

WORK=${1:?usage: test/mutation.sh WORK}
PG_MAJOR=15
BIN=$WORK/install/usr/lib/postgresql/$PG_MAJOR/bin
PGXS_TEST=$WORK/install/usr/lib/postgresql/$PG_MAJOR/lib/pgxs/src/test
M=$WORK/mutation
PASSED=0
FAILED=0

as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- env PATH="$BIN:$PATH" "$@"; else env PATH="$BIN:$PATH" "$@"; fi; }

rm -rf "$M"
mkdir -p "$M"
cp -a "$WORK/src" "$M/src"                # with its objects: make rebuilds only what changed
cp -a "$WORK/install" "$M/install"
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$M"
MBIN=$M/install/usr/lib/postgresql/$PG_MAJOR/bin
MPGXS=$M/install/usr/lib/postgresql/$PG_MAJOR/lib/pgxs/src/test

# built against the system's PostgreSQL (its headers), installed into the copy
SYS_PG_CONFIG=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config
build_install() {               # without -Werror: a mutant may leave a function unused
    as_pg make -s -C "$M/src" PG_CONFIG="$SYS_PG_CONFIG" OE_WARNING_FLAGS= >"$M/build.log" 2>&1 &&
        as_pg make -s -C "$M/src" PG_CONFIG="$SYS_PG_CONFIG" install DESTDIR="$M/install" >>"$M/build.log" 2>&1
}

# run_test kind name: 0 when the test passed
run_test() {
    local kind=$1 name=$2 out=$M/out.$2
    rm -rf "$out"; mkdir -p "$out"; [ "$(id -u)" -eq 0 ] && chown postgres: "$out"
    case $kind in
        regress)
            (cd "$M/src" && as_pg "$MPGXS/regress/pg_regress" --bindir="$MBIN" --inputdir="$M/src" \
                --outputdir="$out" --temp-instance="$out/tmp_check" \
                --temp-config="$M/src/test/postgresql.conf" --dbname=contrib_regression 001_extension "$name") >"$out/run.log" 2>&1 ;;
        isolation)
            (cd "$M/src" && as_pg "$MPGXS/isolation/pg_isolation_regress" --bindir="$MBIN" \
                --inputdir="$M/src/test/isolation" --outputdir="$out" --temp-instance="$out/tmp_check" \
                --temp-config="$M/src/test/postgresql.conf" --dbname=contrib_regression "$name") >"$out/run.log" 2>&1 ;;
        tap)
            (cd "$M/src" && as_pg env PATH="$MBIN:$PATH" TESTDIR="$out" PG_REGRESS="$MPGXS/regress/pg_regress" \
                PERL5LIB="$MPGXS/perl:$M/src/test/perl" OE_TEST_CONF="$M/src/test/postgresql.conf" \
                timeout 600 prove "test/t/$name.pl") >"$out/run.log" 2>&1 ;;
    esac
}

# mutate rule file perl-substitution kind test
mutate() {
    local rule=$1 file=$2 subst=$3 kind=$4 test=$5
    cp "$WORK/src/$file" "$M/src/$file"
    perl -0pi -e "$subst" "$M/src/$file"
    touch "$M/src/$file"
    if cmp -s "$WORK/src/$file" "$M/src/$file"; then
        echo "not ok - $rule: the mutation no longer applies to $file"; FAILED=$((FAILED + 1)); return
    fi
    if ! build_install; then
        echo "not ok - $rule: the mutant does not build"; cat "$M/build.log"; FAILED=$((FAILED + 1))
    elif run_test "$kind" "$test"; then
        echo "not ok - $rule: $kind $test still passes with the rule broken"; FAILED=$((FAILED + 1))
    else
        echo "ok - $rule: $kind $test fails when it is broken"; PASSED=$((PASSED + 1))
        grep -m3 -E 'not ok|FAILED|failed|deadlock' "$M/out.$test/run.log" "$M/out.$test"/*.diffs "$M/out.$test"/output_iso/*.diffs 2>/dev/null | sed 's/^/    /' | head -3
    fi
    cp "$WORK/src/$file" "$M/src/$file"
    touch "$M/src/$file"                  # newer than the mutant's object: rebuilt
}

mutate "reserve locks its lines in sku order" src/stock/stock.c \
    's/\tqsort\(lines, nlines, sizeof\(ReserveLine\), line_cmp\);/\t\/\* mutant: no sort \*\//' \
    isolation stock_opposite_order
mutate "the purchase limit holds" src/stock/stock_tally.c \
    's/\(t\.units OPERATOR\(pg_catalog\.\+\) excluded\.units\) OPERATOR\(pg_catalog\.<=\) \$4/true/' \
    regress 101_stock
mutate "a released hold cannot be confirmed" src/stock/stock_hold.c \
    's/if \(strcmp\(holds\[i\]\.state, "released"\) == 0\)\n(\t+\tereport\(ERROR,\n\t+\(errcode\(ERRCODE_OE_HOLD_STATE_CONFLICT\),\n\t+ errmsg\("cannot confirm order)/if (false)\n$1/' \
    regress 101_stock
mutate "an id range is durable before it is handed out" src/ids/id_store.c \
    's/\n\tXLogFlush\(XactLastRecEnd\);/\n\t\/\* mutant: no flush \*\//' \
    tap 205_id_flush
mutate "the worker pins its own settings" src/worker/worker.c \
    's/\n\toe_worker_pin_settings\(\);/\n\t\/\* mutant: database settings apply \*\//' \
    tap 505_worker_settings
mutate "a limit set during a reserve counts its hold" src/stock/stock_admin.c \
    's/\n\tOeExecPlan\(OeCachedPlan\(&plan_lock_skus, sql_lock_skus, 0, NULL\), NULL, NULL, false, 0\);/\n\t\/\* mutant: no lock on sku \*\//' \
    isolation stock_limit_set_during_reserve
mutate "a table with a trigger gets the INSERT or UPDATE, which fires it" src/common/direct_access.c \
    's/\tif \(rel->trigdesc != NULL\)\n/\tif (false)\n/' \
    regress 101_stock
mutate "a bucket row's condition is rechecked on the version locked" src/common/direct_update.c \
    's/\t\tif \(condition\(rel, locked, arg\)\)\n/\t\tif (true)\n/' \
    isolation stock_last_unit
mutate "a finish rechecks its claim on the version it locked" src/common/direct_update.c \
    's/\t\tif \(condition\(rel, locked, arg\)\)\n/\t\tif (true)\n/' \
    isolation idem_finish_race
mutate "a sweep batch locks one bucket row, not every row of the SKU" src/jobs/expiry.c \
    's/\treturn release_expired\(max_rows, true\);/\treturn release_expired(max_rows, false);/' \
    tap 506_sweep_free_buckets
mutate "a row the sweep could not lock is passed over for a while" src/jobs/expiry.c \
    's/\t\tattempting_set = true;/\t\tattempting_set = false;/' \
    tap 506_sweep_free_buckets
mutate "an escrow take never hands out more than the counter has" src/stock/escrow_counter.c \
    's/ && s->units >= qty\)/)/' \
    regress 102_escrow
mutate "an escrow counter is built from committed rows only" src/stock/escrow_counter.c \
    's/\n\tsnap->curcid = FirstCommandId;/\n\t\/\* mutant: sees its own changes \*\//' \
    regress 102_escrow
mutate "restock's SKU lock lets a fold's foreign-key check through" src/stock/stock_admin.c \
    's/\$1 FOR NO KEY UPDATE";/\$1 FOR UPDATE";/' \
    isolation escrow_restock_vs_fold
mutate "an aborted escrow take gives its units back" src/stock/escrow_counter.c \
    's/\n\t+if \(!commit\)\n\t+s->units \+= p->qty;/\n\/\* mutant: an abort keeps the units \*\//' \
    isolation escrow_last_unit
mutate "a new or dropped index of our tables is seen by the next direct write" src/common/index_cache.c \
    's/(index_cache_invalidate\(Datum arg, Oid relid\)\n\{)/$1\n\treturn;/' \
    regress 104_direct_write_caches
mutate "a table is found by its current name" src/common/direct_access.c \
    's/\n\trelid_cache_used = 0;/\n\t\/\* mutant: never forgets \*\//' \
    regress 104_direct_write_caches
mutate "a finish uses the remembered claim only for the key it names" src/idem/idem_key_row.c \
    's/bytes_equal\(s, scope\) && bytes_equal\(k, key\)/true/' \
    regress 104_direct_write_caches
mutate "the worker lets expiries gather before it wakes for them" src/worker/worker.c \
    's/\n\t\tdue = Max\(due, TimestampTzPlusMilliseconds\(now, OeExpiryGatherMs\)\);/\n\t\t\/\* mutant: no gathering \*\//' \
    tap 508_expiry_gather
mutate "a directly written event is a message exactly where the trigger would fire" src/common/direct_access.c \
    's/if \(SessionReplicationRole == SESSION_REPLICATION_ROLE_REPLICA\)/if (false)/' \
    tap 895_cdc
mutate "a column default's nextval checks USAGE of its sequence, as from SQL" src/common/direct_insert.c \
    's/nextval_internal\(seq, by_default\)/nextval_internal(seq, false)/' \
    regress 104_direct_write_caches
mutate "a direct write finds its columns by their current names" src/common/direct_insert.c \
    's/(forget_table\(Datum arg, Oid relid\)\n\{)/$1\n\treturn;/' \
    regress 104_direct_write_caches
mutate "a job's batch locks its rows in the subtransaction that changes them" src/jobs/jobs.c \
    's/\tif \(OeRunInSubtransaction\(gathered_work, &whole, &edata\)\)\n\t\treturn whole.n;/\tnitems = gather(arg, &items);\n\treturn rows_one_by_one(job, items, nitems, fn);/' \
    regress 400_orders
mutate "from 1.0 a hold is journaled by its hold row alone" src/stock/stock_journal.c \
    's/return !OeTableExists\("stock_journal"\);/return true;/' \
    regress 101_stock
mutate "a schema before 1.0 journals each hold in stock_movement" src/stock/stock_journal.c \
    's/return !OeTableExists\("stock_journal"\);/return false;/' \
    regress 101_stock
mutate "the sweep checks a hold's order by its key, not the unpaid orders' index" src/jobs/expiry.c \
    's/AND o\.status OPERATOR\(pg_catalog\.=\) " pending_payment \\/AND o.status OPERATOR(pg_catalog.=) \x27pending_payment\x27" \\/' \
    tap 509_sweep_plans
mutate "a batch finds its planned holds by their keys, not the expiry index" src/jobs/expiry.c \
    's/DUE_HOLD_IN\("\$5", "\$6"\)/DUE_HOLD_IN("\x27held\x27", "\$6")/' \
    tap 509_sweep_plans
mutate "internal SQL runs with the search path pinned" src/common/internal_sql.c \
    's/\tif \(!pin->pending\)\n\t\treturn;\n/\tif (true)\n\t\treturn;\n/' \
    tap 810_hostile_sweep
mutate "an archive batch moves an order only with its order row" src/jobs/archive.c \
    's/if \(SPI_processed != \(uint64\) n\)/if (false)/' \
    tap 500_worker_jobs
mutate "the archive walks finished orders by finishing time" src/jobs/archive.c \
    's/" ORDER BY " FINISHED_AT " LIMIT/" ORDER BY o.order_no LIMIT/' \
    tap 509_sweep_plans
mutate "a take starts where the lookup saw its bucket row" src/stock/bucket_row.c \
    's/if \(tid == NULL \|\| !ItemPointerIsValid\(tid\) \|\| IsolationIsSerializable\(\)\)/if (true)/' \
    regress 104_direct_write_caches
mutate "a statement pins the path before it is prepared or run" src/common/internal_sql.c \
    's/(resolves names: the path is pinned first \*\/\n)\tOePinSearchPath\(\);\n/$1/; s/(pinned first\n\t \*\/\n)\tOePinSearchPath\(\);\n/$1/' \
    tap 810_hostile_sweep
mutate "a held NOTIFY goes out when the gather ends" src/worker/worker.c \
    's/if \(notify_held && OeWorkerSlotSignalPending\(slot, true\)\)/if (false)/' \
    tap 500_worker_jobs
mutate "commits gather behind one NOTIFY" src/worker/worker.c \
    's/notify_held = !TimestampDifferenceExceeds\(last_notify, now, OeNotifyGatherMs\);/notify_held = false;/' \
    tap 500_worker_jobs

# the unmutated tree passes the same tests, so each failure above was the mutation's
if build_install && cmp -s "$WORK/src/src/stock/stock.c" "$M/src/src/stock/stock.c" &&
    cmp -s "$WORK/src/src/stock/stock_hold.c" "$M/src/src/stock/stock_hold.c" &&
    cmp -s "$WORK/src/src/stock/stock_admin.c" "$M/src/src/stock/stock_admin.c" &&
    cmp -s "$WORK/src/src/stock/stock_tally.c" "$M/src/src/stock/stock_tally.c" &&
    cmp -s "$WORK/src/src/common/direct_access.c" "$M/src/src/common/direct_access.c" &&
    cmp -s "$WORK/src/src/stock/bucket_row.c" "$M/src/src/stock/bucket_row.c" &&
    cmp -s "$WORK/src/src/common/direct_update.c" "$M/src/src/common/direct_update.c" &&
    cmp -s "$WORK/src/src/stock/stock_journal.c" "$M/src/src/stock/stock_journal.c" &&
    cmp -s "$WORK/src/src/idem/idem_key_row.c" "$M/src/src/idem/idem_key_row.c" &&
    cmp -s "$WORK/src/src/jobs/expiry.c" "$M/src/src/jobs/expiry.c" &&
    cmp -s "$WORK/src/src/stock/escrow_counter.c" "$M/src/src/stock/escrow_counter.c" &&
    cmp -s "$WORK/src/src/common/index_cache.c" "$M/src/src/common/index_cache.c" &&
    cmp -s "$WORK/src/src/worker/worker.c" "$M/src/src/worker/worker.c" &&
    cmp -s "$WORK/src/src/common/direct_insert.c" "$M/src/src/common/direct_insert.c" &&
    cmp -s "$WORK/src/src/jobs/jobs.c" "$M/src/src/jobs/jobs.c" &&
    cmp -s "$WORK/src/src/common/internal_sql.c" "$M/src/src/common/internal_sql.c" &&
    cmp -s "$WORK/src/src/jobs/archive.c" "$M/src/src/jobs/archive.c" &&
    run_test isolation stock_opposite_order && run_test regress 101_stock && run_test regress 102_escrow && run_test regress 104_direct_write_caches && run_test isolation escrow_last_unit && run_test isolation escrow_restock_vs_fold &&
    run_test isolation stock_limit_set_during_reserve && run_test isolation stock_last_unit &&
    run_test isolation idem_finish_race && run_test tap 506_sweep_free_buckets &&
    run_test tap 205_id_flush && run_test tap 505_worker_settings && run_test tap 508_expiry_gather &&
    run_test tap 895_cdc && run_test regress 400_orders && run_test tap 810_hostile_sweep && run_test tap 509_sweep_plans &&
    run_test tap 500_worker_jobs; then
    echo "ok - the unmutated code passes the same tests"; PASSED=$((PASSED + 1))
else
    echo "not ok - the unmutated code fails one of the tests"; FAILED=$((FAILED + 1))
fi

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
