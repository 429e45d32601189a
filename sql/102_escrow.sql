--
-- Escrow SKUs (0.9, issue 15): reserve takes a hot SKU's units from a
-- shared-memory counter instead of locking its bucket row, writes only its
-- hold, and the fold job catches held and the journal up.  Every other
-- path (confirm, release, expiry, try_deduct, write-offs) keeps the books
-- exactly as for any SKU, and stock_audit() proves nothing is oversold.
--
SET search_path = order_engine, public;
-- a lock wait here is a bug, not something to wait out
SET lock_timeout = '10s';
-- SKUs of this file start at 102000 so they never meet another file's
SELECT restock(102001, 10) AS available;
SELECT set_escrow(102001);
SELECT available, held, sold, escrow FROM stock WHERE sku_id = 102001;
SELECT bucket, available, held, sold, escrow FROM stock_bucket WHERE sku_id = 102001;

-- reserve takes from the counter: a hold without bucket parts, journaled
-- when it is folded; the view counts it as held
SELECT reserve(1020001, '{102001}', '{3}') AS held;
SELECT reserve(1020001, '{102001}', '{3}') AS repeat_holds_nothing_twice;
SELECT order_no, qty, state, buckets, bucket_qtys FROM stock_hold WHERE sku_id = 102001 ORDER BY order_no;
SELECT available, held, sold FROM stock WHERE sku_id = 102001;
SELECT count(*) AS hold_journal_rows FROM stock_journal WHERE sku_id = 102001 AND kind = 'hold';
SELECT ok, detail FROM stock_audit() WHERE sku_id = 102001;

-- all or nothing across an escrow SKU and a plain one: the plain line is
-- short, so the escrow line's units go back to the counter
SELECT restock(102002, 1) AS available;
SELECT reserve(1020002, '{102001,102002}', '{2,2}') AS held_none;
SELECT count(*) AS holds_of_1020002 FROM stock_hold WHERE order_no = 1020002;
SELECT reserve(1020003, '{102001}', '{8}') AS more_than_left;
SELECT reserve(1020003, '{102001}', '{7}') AS all_that_is_left;
SELECT reserve(1020004, '{102001}', '{1}') AS sold_out;
SELECT available, held, sold FROM stock WHERE sku_id = 102001;

-- the fold: held and the journal catch up, the holds get their bucket part
SELECT fold_escrow() AS folded;
SELECT bucket, available, held, sold, escrow FROM stock_bucket WHERE sku_id = 102001;
SELECT order_no, buckets, bucket_qtys FROM stock_hold WHERE sku_id = 102001 ORDER BY order_no;
SELECT ok, detail FROM stock_audit() WHERE sku_id = 102001;

-- confirm and release as for any hold; released units come back on the
-- bucket row's available and are taken from there the usual way ...
SELECT confirm(1020001) AS confirmed, release(1020003) AS released;
SELECT bucket, available, held, sold, escrow FROM stock_bucket WHERE sku_id = 102001;
SELECT reserve(1020005, '{102001}', '{2}') AS from_available;
SELECT order_no, buckets, bucket_qtys FROM stock_hold WHERE order_no = 1020005;
-- ... until the fold moves them into escrow for the counter
SELECT fold_escrow() AS folded;
SELECT bucket, available, held, sold, escrow FROM stock_bucket WHERE sku_id = 102001;
SELECT reserve(1020006, '{102001}', '{5}') AS from_escrow;
SELECT reserve(1020007, '{102001}', '{1}') AS sold_out;

-- a hold not yet folded: confirm folds it first
SELECT confirm(1020006) AS confirmed;
SELECT order_no, state, buckets, bucket_qtys FROM stock_hold WHERE order_no = 1020006;
SELECT kind, d_available, d_held, d_sold FROM stock_journal
 WHERE order_no = 1020006 ORDER BY array_position('{hold,confirm,release,return}', kind);

-- try_deduct and write-offs take from the counter too
SELECT restock(102001, 4) AS available;
SELECT fold_escrow() AS folded;
SELECT try_deduct(102001, 1) AS sold_one, try_deduct(102001, 4) AS too_many;
SELECT restock(102001, -2, 'damaged') AS available;
SELECT bucket, available, held, sold, escrow FROM stock_bucket WHERE sku_id = 102001;
SELECT available, held, sold FROM stock WHERE sku_id = 102001;

-- an expired escrow hold, not yet folded, is released like any other
SELECT reserve(1020008, '{102001}', '{1}', '1 second') AS held;
SELECT pg_sleep(1.2);
-- (at least 1: another file of the suite may leave an expired hold too)
SELECT release_expired() >= 1 AS released;
SELECT state, buckets FROM stock_hold WHERE order_no = 1020008;
SELECT bucket, available, held, sold, escrow FROM stock_bucket WHERE sku_id = 102001;
SELECT ok, detail FROM stock_audit() WHERE sku_id = 102001;

-- a transaction that took escrow units cannot be prepared (the fold
-- first gives the released unit to the counter)
SELECT fold_escrow() AS folded;
BEGIN;
SELECT reserve(1020009, '{102001}', '{1}') AS held;
PREPARE TRANSACTION 'escrow';
SELECT count(*) AS holds_of_1020009 FROM stock_hold WHERE order_no = 1020009;
SELECT reserve(1020010, '{102001}', '{1}') AS the_unit_came_back;
SELECT buckets AS from_the_counter FROM stock_hold WHERE order_no = 1020010;
-- a transaction that took nothing from the counter prepares as ever
BEGIN;
SELECT reserve(1020017, '{102001}', '{1}') AS sold_out;
PREPARE TRANSACTION 'no_escrow_take';
COMMIT PREPARED 'no_escrow_take';

-- a counter is built from committed rows only: here the transaction that
-- builds it has moved units into escrow itself and then rolls back
SELECT restock(102004, 5) AS available;
SELECT set_escrow(102004);
SELECT restock(102004, 5) AS available;
BEGIN;
SELECT fold_escrow() AS folded;
SELECT reserve(1020013, '{102004}', '{10}') AS not_before_commit;
ROLLBACK;
SELECT reserve(1020014, '{102004}', '{10}') AS more_than_there_is;
SELECT reserve(1020014, '{102004}', '{5}') AS from_escrow;
SELECT reserve(1020015, '{102004}', '{5}') AS from_available;
SELECT reserve(1020016, '{102004}', '{1}') AS sold_out;
SELECT ok, detail FROM stock_audit() WHERE sku_id = 102004;

-- refused calls
SELECT restock(102003, 10) AS available;
SELECT set_buckets(102003, 2);
SELECT set_escrow(102003);
SELECT set_buckets(102001, 3);
SELECT set_escrow(102999);
SELECT set_escrow(NULL);
SELECT set_escrow(102001, NULL);
SELECT fold_escrow(0);

-- off again: what is in escrow goes back to available, every hold folded
SELECT restock(102001, 2) AS available;
SELECT fold_escrow() AS folded;
SELECT reserve(1020011, '{102001}', '{1}') AS held;
SELECT buckets FROM stock_hold WHERE order_no = 1020011;
SELECT set_escrow(102001, false);
SELECT bucket, available, held, sold, escrow FROM stock_bucket WHERE sku_id = 102001;
SELECT count(*) AS unfolded FROM stock_hold WHERE sku_id = 102001 AND state = 'held' AND buckets = '{}';
SELECT reserve(1020012, '{102001}', '{1}') AS from_the_row;
SELECT order_no, buckets, bucket_qtys FROM stock_hold WHERE order_no = 1020012;
SELECT available, held, sold, escrow FROM stock WHERE sku_id = 102001;
SELECT sku_id, ok, detail FROM stock_audit() WHERE sku_id BETWEEN 102000 AND 102999 ORDER BY sku_id;
