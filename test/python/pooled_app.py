#!/usr/bin/env python3
"""A shop's checkout as a pooled application would run it (test/t/870).

psycopg2 in autocommit mode through pgbouncer in transaction pooling: every
statement may land on a different server connection.  Each of N threads
runs checkouts: issue a checkout token, consume it, claim an idempotency
key, place the order, "call the payment provider" outside any transaction,
record the payment, finish the key with its claim token; then it retries
the same key (a replay) and, now and then, replays the whole request.

Prints one JSON line of counters; exits 1 on any unexpected error.
"""
import json
import random
import sys
import threading
import time

import psycopg2

DSN = sys.argv[1]
THREADS = int(sys.argv[2])
CHECKOUTS = int(sys.argv[3])

lock = threading.Lock()
counts = {"checkouts": 0, "replays": 0, "errors": 0, "statements": 0,
          "finished_elsewhere": 0}
backends = set()
errors = []


def run(thread_no):
    conn = psycopg2.connect(DSN)
    conn.autocommit = True
    cur = conn.cursor()

    def q(sql, args=()):
        cur.execute(sql, args)
        with lock:
            counts["statements"] += 1
        return cur.fetchall() if cur.description else None

    for i in range(CHECKOUTS):
        buyer = 1 + (thread_no * 1000 + i) % 500
        key = f"t{thread_no}-c{i}"
        try:
            token = q("SELECT order_engine.issue_token(%s)", (buyer,))[0][0]
            assert q("SELECT order_engine.consume_token(%s, %s)", (buyer, token))[0][0] is True
            order_no = q("SELECT order_engine.next_order_no(%s)", (buyer,))[0][0]
            request = json.dumps({"order_no": order_no, "sku": 1, "qty": 1})
            state, response, claim, begin_pid = q(
                "SELECT state, response, claim, pg_backend_pid()"
                "  FROM order_engine.idem_begin('checkout', %s, %s)",
                (key, request))[0]
            assert state == "started", state
            status = q("SELECT order_engine.place_order(%s, %s, 9, %s)",
                       (order_no, buyer, '[{"sku_id": 1, "qty": 1}]'))[0][0]
            assert status == "pending_payment", status
            time.sleep(random.uniform(0.001, 0.01))    # the payment provider
            paid = q("SELECT order_engine.pay_order(%s, %s, 10)", (order_no, f"pay-{key}"))[0][0]
            assert paid == "paid", paid
            finish_pid = q("SELECT pg_backend_pid() FROM order_engine.idem_finish('checkout', %s, %s, %s)",
                           (key, json.dumps({"order_no": order_no, "status": paid}), claim))[0][0]
            # the client retries: the stored response comes back
            state, response, claim2 = q(
                "SELECT state, response, claim FROM order_engine.idem_begin('checkout', %s, %s)",
                (key, request))[0]
            assert state == "completed" and response["order_no"] == order_no and claim2 is None
            # and a retried payment and placement are idempotent too
            assert q("SELECT order_engine.pay_order(%s, %s, 10)", (order_no, f"pay-{key}"))[0][0] == "paid"
            with lock:
                counts["checkouts"] += 1
                counts["replays"] += 1
                backends.update((begin_pid, finish_pid))
                if begin_pid != finish_pid:
                    counts["finished_elsewhere"] += 1
        except Exception as e:  # noqa: BLE001 - every error is counted and shown
            with lock:
                counts["errors"] += 1
                errors.append(f"{key}: {type(e).__name__}: {e}".strip())
    conn.close()


threads = [threading.Thread(target=run, args=(n,)) for n in range(THREADS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
counts["server_backends"] = len(backends)
print(json.dumps(counts))
for e in errors[:10]:
    print(e, file=sys.stderr)
sys.exit(1 if counts["errors"] else 0)
