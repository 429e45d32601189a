#!/usr/bin/env bash
# test/bench/idem.sh: idempotency keys and versioned_update against the
# plain SQL a client would write for the same job, in one run on one
# server (test/bench/lib.sh).  Prints tps, p99 and the ratios; goals are
# from issue 5:
#   idem_begin + idem_finish  vs  INSERT ... ON CONFLICT DO NOTHING,
#                                 SELECT, UPDATE              goal >= 1.2
#   versioned_update          vs  UPDATE ... WHERE id = $1
#                                 AND version = $2            goal >= 0.8
#
#   OE_BENCH_BINDIR=/path/to/private/bin test/bench/idem.sh
#   OE_BENCH_PROTOCOL=simple test/bench/idem.sh     (default: prepared)
#   OE_BENCH_ROUNDS=5 test/bench/idem.sh            (default: 3 alternating rounds)
#
# Every client updates its own range of rows, so versioned updates never
# conflict (a conflict is an error, which would end the pgbench client);
# idempotency keys are random numbers below 9e18, so all are new (with
# 40-bit keys two of a run's half million could meet, and idem_finish
# after "completed" is an error that ends the client).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"

PROTOCOL=${OE_BENCH_PROTOCOL:-prepared}
ROWS_PER_CLIENT=10000
ROUNDS=${OE_BENCH_ROUNDS:-3}

bench_start
bench_psql <<SQL
CREATE TABLE plain_keys (
    scope       text NOT NULL,
    key         text NOT NULL,
    fingerprint bytea NOT NULL,
    state       text NOT NULL,
    response    jsonb,
    claimed_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX ON plain_keys (expires_at);
CREATE TABLE vu_plain (id bigint PRIMARY KEY, note text, version bigint NOT NULL DEFAULT 1);
CREATE TABLE vu_oe (id bigint PRIMARY KEY, note text, version bigint NOT NULL DEFAULT 1);
INSERT INTO vu_plain (id) SELECT g FROM generate_series(0, $BENCH_CLIENTS * $ROWS_PER_CLIENT) g;
INSERT INTO vu_oe (id) SELECT g FROM generate_series(0, $BENCH_CLIENTS * $ROWS_PER_CLIENT) g;
VACUUM ANALYZE;
SQL

echo "protocol $PROTOCOL, $BENCH_CLIENTS clients, ${BENCH_SECONDS}s per run, $ROUNDS rounds"
OPTS=(-M "$PROTOCOL")

# Alternate the contenders round by round (A B A B ...): a ratio per
# round, whose two sides shared that minute's load, and the median of them
# (lib.sh).  The WAL bytes per transaction of each side are the mean over
# its rounds.
PLAIN_IDEM=""; OE_IDEM=""; PLAIN_VU=""; OE_VU=""
PLAIN_IDEM_WAL=""; OE_IDEM_WAL=""; PLAIN_VU_WAL=""; OE_VU_WAL=""
for round in $(seq 1 "$ROUNDS"); do
    bench_pgbench "idem_plain_sql.$round" "$HERE/idem/plain_keys.sql" "${OPTS[@]}"
    PLAIN_IDEM="$PLAIN_IDEM $BENCH_TPS"; PLAIN_IDEM_WAL="$PLAIN_IDEM_WAL $BENCH_WAL"
    bench_pgbench "idem_begin_finish.$round" "$HERE/idem/idem_begin_finish.sql" "${OPTS[@]}"
    OE_IDEM="$OE_IDEM $BENCH_TPS"; OE_IDEM_WAL="$OE_IDEM_WAL $BENCH_WAL"
    bench_pgbench "update_plain_sql.$round" "$HERE/idem/update_plain.sql" "${OPTS[@]}"
    PLAIN_VU="$PLAIN_VU $BENCH_TPS"; PLAIN_VU_WAL="$PLAIN_VU_WAL $BENCH_WAL"
    bench_pgbench "versioned_update.$round" "$HERE/idem/versioned_update.sql" "${OPTS[@]}"
    OE_VU="$OE_VU $BENCH_TPS"; OE_VU_WAL="$OE_VU_WAL $BENCH_WAL"
done

# the work really happened: every key completed, versions moved
bench_psql -At -c "SELECT 'keys completed: ' || count(*) FILTER (WHERE state = 'completed') || ' of ' || count(*) FROM order_engine.idempotency_keys"
bench_psql -At -c "SELECT 'versioned rows bumped: ' || count(*) FILTER (WHERE version > 1) FROM vu_oe"

echo
bench_rounds_ratio "idem_begin+idem_finish / INSERT ON CONFLICT+SELECT+UPDATE" 1.2 "$OE_IDEM" "$PLAIN_IDEM"
bench_rounds_ratio "versioned_update / UPDATE ... WHERE id AND version" 0.8 "$OE_VU" "$PLAIN_VU"
echo "WAL B/txn: idem_begin+idem_finish $(bench_mean "$OE_IDEM_WAL"), plain $(bench_mean "$PLAIN_IDEM_WAL");" \
    "versioned_update $(bench_mean "$OE_VU_WAL"), plain $(bench_mean "$PLAIN_VU_WAL")"
