/*
 * order_engine 0.6 -> 0.7: money and orders are never lost (issue 12).
 *
 * - payments get a per-payment refund lifecycle: refund_state NULL (kept)
 *   | refund_required -> refunded, with the processor's refund_ref;
 *   refund_payment() records a refund once; view refunds_due lists what
 *   is owed back.
 * - a paid order cancelled before shipment gives its stock back (journal
 *   kind "return") and its payments become owed.
 * - order_audit() checks the money ledger: every payment's order exists,
 *   kept payments equal the total of paid orders (anything else is
 *   flagged), an order awaiting payment holds all its lines until at
 *   least its deadline.
 * - ack_events(NULL) is an error (22004) instead of 0.
 * - the holds of orders already awaiting payment are bound to their
 *   deadline, as place_order now does.
 */
\echo Use "ALTER EXTENSION order_engine UPDATE TO '0.7'" to load this file. \quit

/* a live update waits out deadlocks with clients (see 0.5--0.6) */
SET LOCAL deadlock_timeout = '60s';


ALTER TABLE @extschema@.payments
    ADD COLUMN refund_state text
        CHECK (refund_state OPERATOR(pg_catalog.=) ANY (ARRAY['refund_required', 'refunded'])),
    ADD COLUMN refund_ref text,
    ADD COLUMN refunded_at timestamptz,
    ADD CONSTRAINT payments_refund_ref_check
        CHECK (refund_ref IS NULL OR refund_state OPERATOR(pg_catalog.=) 'refunded'),
    ADD CONSTRAINT payments_refunded_at_check
        CHECK (CASE WHEN refund_state OPERATOR(pg_catalog.=) 'refunded' THEN refunded_at IS NOT NULL
                   ELSE refunded_at IS NULL END);
COMMENT ON COLUMN @extschema@.payments.outcome IS
    'What pay_order answered for this payment (paid or refund_required); replayed for the same payment_ref';
COMMENT ON COLUMN @extschema@.payments.refund_state IS
    'NULL: the order keeps the money; refund_required: owed back (view refunds_due); refunded: paid back';
COMMENT ON COLUMN @extschema@.payments.refund_ref IS
    'The payment processor''s reference of the refund (refund_payment); NULL for refund_order';
COMMENT ON COLUMN @extschema@.payments.refunded_at IS
    'When the refund was recorded';

/* what 0.6 left: refund_required payments are owed, unless the order was refunded */
UPDATE @extschema@.payments p
   SET refund_state = CASE WHEN EXISTS (
            SELECT FROM @extschema@.orders o
             WHERE o.order_no OPERATOR(pg_catalog.=) p.order_no
               AND o.status OPERATOR(pg_catalog.=) 'refunded'
            UNION ALL
            SELECT FROM order_engine_archive.orders a
             WHERE a.order_no OPERATOR(pg_catalog.=) p.order_no
               AND a.status OPERATOR(pg_catalog.=) 'refunded')
        THEN 'refunded' ELSE 'refund_required' END,
       refunded_at = CASE WHEN EXISTS (
            SELECT FROM @extschema@.orders o
             WHERE o.order_no OPERATOR(pg_catalog.=) p.order_no
               AND o.status OPERATOR(pg_catalog.=) 'refunded'
            UNION ALL
            SELECT FROM order_engine_archive.orders a
             WHERE a.order_no OPERATOR(pg_catalog.=) p.order_no
               AND a.status OPERATOR(pg_catalog.=) 'refunded')
        THEN pg_catalog.now() END
 WHERE p.outcome OPERATOR(pg_catalog.=) 'refund_required';

CREATE UNIQUE INDEX payments_refund_ref_idx ON @extschema@.payments (refund_ref)
    WHERE refund_ref IS NOT NULL;
CREATE INDEX payments_owed_idx ON @extschema@.payments (order_no)
    WHERE refund_state OPERATOR(pg_catalog.=) 'refund_required';

/* a sale given back by a cancelled paid order */
ALTER TABLE @extschema@.stock_movement DROP CONSTRAINT stock_movement_kind_check;
ALTER TABLE @extschema@.stock_movement ADD CONSTRAINT stock_movement_kind_check
    CHECK (kind OPERATOR(pg_catalog.=) ANY (ARRAY['restock', 'write_off', 'hold', 'confirm',
                                                  'release', 'sale', 'return']));

/* orders awaiting payment keep their holds until at least their deadline */
UPDATE @extschema@.stock_hold h
   SET expires_at = o.pay_deadline, updated_at = pg_catalog.now()
  FROM @extschema@.orders o
 WHERE o.order_no OPERATOR(pg_catalog.=) h.order_no
   AND o.status OPERATOR(pg_catalog.=) 'pending_payment'
   AND h.state OPERATOR(pg_catalog.=) 'held'
   AND h.expires_at OPERATOR(pg_catalog.<) o.pay_deadline;

CREATE FUNCTION @extschema@.refund_payment(payment_ref text, refund_ref text)
RETURNS text LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'oe_refund_payment';
COMMENT ON FUNCTION @extschema@.refund_payment(text, text) IS
    'Records that a payment owed back was refunded under the processor''s refund_ref: refund_required -> refunded; idempotent; the order becomes refunded with its last owed payment';

CREATE VIEW @extschema@.refunds_due AS
    SELECT p.payment_ref, p.order_no, p.amount, p.outcome, p.received_at,
           COALESCE(o.status, a.status) AS order_status,
           a.order_no IS NOT NULL AS archived
      FROM @extschema@.payments p
      LEFT JOIN @extschema@.orders o ON o.order_no OPERATOR(pg_catalog.=) p.order_no
      LEFT JOIN order_engine_archive.orders a ON a.order_no OPERATOR(pg_catalog.=) p.order_no
     WHERE p.refund_state OPERATOR(pg_catalog.=) 'refund_required';
COMMENT ON VIEW @extschema@.refunds_due IS
    'Money owed back: every payment whose refund_state is refund_required, with its order''s status; refund with refund_payment()';

/*
 * The money ledger, one row per problem (none: every invariant holds).
 */
CREATE FUNCTION @extschema@.order_audit()
RETURNS TABLE (order_no bigint, ok boolean, detail text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $audit$
    WITH o AS (
        SELECT lo.order_no, lo.status, lo.total, lo.line_count, lo.pay_deadline, lo.payment_ref
          FROM @extschema@.orders lo
        UNION ALL
        SELECT ao.order_no, ao.status, ao.total, ao.line_count, ao.pay_deadline, ao.payment_ref
          FROM order_engine_archive.orders ao
    ), pay AS (
        SELECT p.order_no,
               COALESCE(pg_catalog.sum(p.amount) FILTER (WHERE p.refund_state IS NULL), 0) AS kept,
               pg_catalog.count(*) FILTER (WHERE p.outcome OPERATOR(pg_catalog.=) 'refund_required'
                                             AND p.refund_state IS NULL) AS unflagged
          FROM @extschema@.payments p GROUP BY p.order_no
    ), h AS (
        SELECT sh.order_no, pg_catalog.count(*) AS n,
               pg_catalog.count(*) FILTER (WHERE sh.state OPERATOR(pg_catalog.=) 'held') AS held,
               pg_catalog.count(*) FILTER (WHERE sh.state OPERATOR(pg_catalog.=) 'confirmed') AS confirmed,
               pg_catalog.min(sh.expires_at) FILTER (WHERE sh.state OPERATOR(pg_catalog.=) 'held') AS first_expiry
          FROM @extschema@.stock_hold sh GROUP BY sh.order_no
    ), checks AS (
        SELECT o.order_no, pg_catalog.array_remove(ARRAY[
            CASE WHEN COALESCE(pay.unflagged, 0) OPERATOR(pg_catalog.>) 0 THEN
                pg_catalog.format('%s payments answered refund_required but are not owed back', pay.unflagged) END,
            CASE WHEN o.status OPERATOR(pg_catalog.=) ANY (ARRAY['paid', 'shipped', 'completed'])
                  AND COALESCE(pay.kept, 0) OPERATOR(pg_catalog.<>) o.total THEN
                pg_catalog.format('%s: kept payments sum to %s but the total is %s',
                                  o.status, COALESCE(pay.kept, 0), o.total) END,
            CASE WHEN o.status OPERATOR(pg_catalog.<>) ALL (ARRAY['paid', 'shipped', 'completed'])
                  AND COALESCE(pay.kept, 0) OPERATOR(pg_catalog.<>) 0 THEN
                pg_catalog.format('%s but keeps payments of %s that are not owed back',
                                  o.status, pay.kept) END,
            CASE WHEN o.status OPERATOR(pg_catalog.=) ANY (ARRAY['paid', 'shipped', 'completed'])
                  AND NOT EXISTS (SELECT FROM @extschema@.payments p
                                   WHERE p.payment_ref OPERATOR(pg_catalog.=) o.payment_ref
                                     AND p.order_no OPERATOR(pg_catalog.=) o.order_no
                                     AND p.outcome OPERATOR(pg_catalog.=) 'paid') THEN
                pg_catalog.format('%s but its payment %s is not recorded', o.status,
                                  COALESCE(o.payment_ref, '(none)')) END,
            CASE WHEN o.status OPERATOR(pg_catalog.=) 'pending_payment'
                  AND (COALESCE(h.held, 0) OPERATOR(pg_catalog.<>) o.line_count
                       OR COALESCE(h.n, 0) OPERATOR(pg_catalog.<>) o.line_count) THEN
                pg_catalog.format('awaiting payment with %s of its %s lines held',
                                  COALESCE(h.held, 0), o.line_count) END,
            CASE WHEN o.status OPERATOR(pg_catalog.=) 'pending_payment'
                  AND h.first_expiry OPERATOR(pg_catalog.<) o.pay_deadline THEN
                pg_catalog.format('a hold expires at %s, before the payment deadline %s',
                                  h.first_expiry, o.pay_deadline) END,
            CASE WHEN o.status OPERATOR(pg_catalog.=) ANY (ARRAY['paid', 'shipped', 'completed'])
                  AND COALESCE(h.confirmed, 0) OPERATOR(pg_catalog.<>) o.line_count THEN
                pg_catalog.format('%s with %s of its %s lines sold',
                                  o.status, COALESCE(h.confirmed, 0), o.line_count) END,
            CASE WHEN o.status OPERATOR(pg_catalog.<>) 'pending_payment'
                  AND COALESCE(h.held, 0) OPERATOR(pg_catalog.>) 0 THEN
                pg_catalog.format('%s but %s of its holds are still held', o.status, h.held) END
            ], NULL) AS problems
          FROM o
          LEFT JOIN pay ON pay.order_no OPERATOR(pg_catalog.=) o.order_no
          LEFT JOIN h ON h.order_no OPERATOR(pg_catalog.=) o.order_no
        UNION ALL
        SELECT p.order_no, ARRAY[pg_catalog.format('payment %s belongs to no live or archived order',
                                                   p.payment_ref)]
          FROM @extschema@.payments p
         WHERE NOT EXISTS (SELECT FROM o WHERE o.order_no OPERATOR(pg_catalog.=) p.order_no)
        UNION ALL
        SELECT lo.order_no, ARRAY['the order is both live and archived'::pg_catalog.text]
          FROM @extschema@.orders lo
          JOIN order_engine_archive.orders ao ON ao.order_no OPERATOR(pg_catalog.=) lo.order_no
    )
    SELECT c.order_no, false, pg_catalog.array_to_string(c.problems, '; ')
      FROM checks c
     WHERE pg_catalog.cardinality(c.problems) OPERATOR(pg_catalog.>) 0
     ORDER BY c.order_no
$audit$;
COMMENT ON FUNCTION @extschema@.order_audit() IS
    'The money ledger: one row per order that breaks an invariant (no rows: all hold): payments recorded, kept payments equal the total of paid orders or are owed back, orders awaiting payment hold every line until their deadline';

/* ack_events(NULL) was a silent 0 */
CREATE OR REPLACE FUNCTION @extschema@.ack_events(event_ids bigint[])
RETURNS integer LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
BEGIN
    IF event_ids IS NULL THEN
        RAISE EXCEPTION 'event_ids must not be null' USING ERRCODE = '22004';
    END IF;
    WITH done AS (
        UPDATE @extschema@.order_events e SET processed_at = pg_catalog.now()
         WHERE e.event_id OPERATOR(pg_catalog.=) ANY (ack_events.event_ids)
           AND e.processed_at IS NULL
        RETURNING 1)
    SELECT pg_catalog.count(*)::integer INTO n FROM done;
    RETURN n;
END
$$;
COMMENT ON FUNCTION @extschema@.ack_events(bigint[]) IS
    'Outbox consumer: marks events processed (ack only ids you claimed, in the claiming transaction); returns how many were newly marked; NULL is 22004';

COMMENT ON FUNCTION @extschema@.pay_order(bigint, text, numeric) IS
    'Records every payment: paid; refund_required (owed back, whatever the amount) when the order is closed, cancelled, past its deadline, refunded or already paid; archived orders too; idempotent on payment_ref; a wrong amount for an order awaiting payment is OE007';
COMMENT ON FUNCTION @extschema@.cancel_order(bigint, text) IS
    'Buyer cancels: an unpaid order -> cancelled (holds released); a paid, unshipped one -> refund_required (stock and allowance returned, payments owed back); idempotent';
COMMENT ON FUNCTION @extschema@.refund_order(bigint) IS
    'refund_required -> refunded once the money went back: every payment the order owes is marked refunded (without a refund reference; see refund_payment); idempotent';

/* the ownership loop (as in order_engine--0.5--0.6.sql) */
DO $own$
DECLARE
    obj record;
BEGIN
    FOR obj IN
        SELECT n.nspname
          FROM pg_catalog.pg_namespace n
         WHERE n.nspname OPERATOR(pg_catalog.=) ANY (ARRAY['order_engine', 'order_engine_archive']::name[])
    LOOP
        EXECUTE pg_catalog.format('ALTER SCHEMA %I OWNER TO order_engine_owner', obj.nspname);
    END LOOP;

    FOR obj IN
        SELECT c.oid::pg_catalog.regclass AS rel, c.relkind
          FROM pg_catalog.pg_depend d
          JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) d.objid
         WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
           AND d.refobjid OPERATOR(pg_catalog.=)
               (SELECT e.oid FROM pg_catalog.pg_extension e
                 WHERE e.extname OPERATOR(pg_catalog.=) 'order_engine')
           AND d.deptype OPERATOR(pg_catalog.=) 'e'
           AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p', 'v', 'm', 'S']::"char"[])
           -- a sequence that belongs to a column follows its table
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend a
                            WHERE a.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                              AND a.objid OPERATOR(pg_catalog.=) c.oid
                              AND a.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                              AND a.deptype OPERATOR(pg_catalog.=) ANY (ARRAY['a', 'i']::"char"[]))
    LOOP
        EXECUTE pg_catalog.format('ALTER %s %s OWNER TO order_engine_owner',
            CASE obj.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                             WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END,
            obj.rel);
    END LOOP;

    FOR obj IN
        SELECT p.oid::pg_catalog.regprocedure AS fn, p.prokind
          FROM pg_catalog.pg_depend d
          JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) d.objid
         WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
           AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
           AND d.refobjid OPERATOR(pg_catalog.=)
               (SELECT e.oid FROM pg_catalog.pg_extension e
                 WHERE e.extname OPERATOR(pg_catalog.=) 'order_engine')
           AND d.deptype OPERATOR(pg_catalog.=) 'e'
    LOOP
        EXECUTE pg_catalog.format('ALTER %s %s OWNER TO order_engine_owner',
            CASE obj.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE'
                             ELSE 'FUNCTION' END,
            obj.fn);
    END LOOP;
END
$own$;

REVOKE ALL ON FUNCTION @extschema@.refund_payment(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.order_audit() FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.ack_events(bigint[]) FROM PUBLIC;
REVOKE ALL ON @extschema@.refunds_due FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.refund_payment(text, text) TO order_engine_admin;
GRANT EXECUTE ON FUNCTION @extschema@.order_audit() TO order_engine_admin;
GRANT EXECUTE ON FUNCTION @extschema@.ack_events(bigint[]) TO order_engine_app;
GRANT SELECT ON @extschema@.refunds_due TO order_engine_admin;
