# Escrow SKUs (0.9) on a real server: the shared-memory counter across
# crashes, the worker's fold job, the escrow_skus limit, a server without
# shared_preload_libraries, and REPEATABLE READ.
#
#  1. kill -9 of the postmaster with takes in flight (open transactions
#     that reserved), and later of one backend while the worker runs:
#     after the restart the uncommitted holds are gone and exactly the
#     units the tables leave (escrow - unfolded holds, plus available) can
#     be reserved, no more and no fewer; the counter is rebuilt from the
#     tables at the first take.  Database crashdb has no worker, so its
#     committed escrow holds stay unfolded across the crash and the
#     rebuild must subtract them.
#  2. the worker (order_engine.database = 'shop', naptime 100 ms) folds
#     escrow holds into held and journals them; units restocked or
#     released on an escrow SKU can be reserved at once from the bucket
#     row (the worker sent out of shop for that, so that the path is
#     certain) and, once the worker has moved them into escrow, from the
#     counter.
#  3. order_engine.escrow_skus = 1: a second set_escrow fails with 53400,
#     set_escrow(s, false) frees the place; OE027 for bucketed SKUs.
#  4. the same server restarted without shared_preload_libraries:
#     set_escrow(.., true) fails with 55000, set_escrow(.., false) works
#     and folds the SKU's escrow holds.
#  5. REPEATABLE READ: a reserve from the counter in an RR transaction
#     whose snapshot predates the counter's rebuild and a concurrent
#     fold; and a first take after the transaction's own uncommitted
#     escrow changes, which the rebuild must not count.
# Every stage ends with a clean stock_audit().
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use OrderEngineTest;

my $node = oe_node('escrow_crash',
	conf => "order_engine.database = 'shop'\norder_engine.naptime = 100\n"
	  # the worker folds every escrow hold at once here (60 s by default)
	  . "order_engine.escrow_fold_after = 0\n"
	  # the TAP clusters turn it off; a backend's kill -9 below restarts all
	  . "restart_after_crash = on\n");
$node->start;

my $C = 'crashdb';    # no worker: holds stay unfolded until we fold them
my $S = 'shop';       # the worker's database
$node->safe_psql('postgres', "CREATE DATABASE $C");
$node->safe_psql('postgres', "CREATE DATABASE $S");

sub q_in { my ($n, $db, $sql) = @_; return $n->safe_psql($db, $sql); }

# the audit's complaints, '' when clean
sub audit
{
	my ($n, $db) = @_;
	return $n->safe_psql($db, q{
		SELECT COALESCE(pg_catalog.string_agg(sku_id || ': ' || detail, '; ' ORDER BY sku_id), '')
		  FROM order_engine.stock_audit() WHERE NOT ok});
}

# poll $sql in $db until it returns $want; returns the last value seen
sub wait_in
{
	my ($n, $db, $sql, $want, $secs) = @_;
	my $deadline = time() + ($secs // 30);
	my $got;
	while (1)
	{
		$got = $n->safe_psql($db, $sql);
		return $got if $got eq $want || time() >= $deadline;
		usleep(50_000);
	}
}

# wait until the server accepts connections again (after a crash restart)
sub wait_up
{
	my ($n, $secs) = @_;
	my $deadline = time() + $secs;
	while (time() < $deadline)
	{
		my ($ret, $out) = $n->psql('postgres', 'SELECT 1');
		return 1 if $ret == 0 && $out eq '1';
		usleep(100_000);
	}
	return 0;
}

# the SQLSTATE a statement fails with, 'none' if it does not fail
sub sqlstate
{
	my ($n, $db, $sql) = @_;
	my ($ret, $out, $err) = $n->psql($db, "\\set VERBOSITY verbose\n$sql");
	return $err =~ /ERROR:  ([0-9A-Z]{5}):/ ? $1 : ($ret == 0 ? 'none' : "failed without SQLSTATE: $err");
}

# SKU $sku's bucket row: escrow|available|held|sold
sub bucket
{
	my ($n, $db, $sku) = @_;
	return $n->safe_psql($db, qq{
		SELECT escrow || '|' || available || '|' || held || '|' || sold
		  FROM order_engine.stock_bucket WHERE sku_id = $sku AND bucket = 0});
}

sub unfolded
{
	my ($n, $db, $sku) = @_;
	return $n->safe_psql($db, qq{
		SELECT pg_catalog.count(*) FROM order_engine.stock_hold
		 WHERE sku_id = $sku AND state = 'held' AND buckets = '{}'});
}

# how many of $count one-unit reserves (orders $first ..) succeed, in one transaction
sub reserve_units
{
	my ($n, $db, $sku, $first, $count) = @_;
	return $n->safe_psql($db, qq{
		SELECT pg_catalog.count(*) FILTER (WHERE r) FROM (
		  SELECT order_engine.reserve(g, '{$sku}', '{1}') AS r
		    FROM pg_catalog.generate_series($first, $first + $count - 1) g ORDER BY g) s});
}

# ============================================================================
# 1. kill -9 of the postmaster with escrow takes in flight (crashdb)
# ============================================================================
q_in($node, $C, q{
	CREATE EXTENSION order_engine;
	SELECT order_engine.restock(1, 100);
	SELECT order_engine.set_escrow(1);
});
is(bucket($node, $C, 1), '100|0|0|0', 'set_escrow moved the SKU\'s 100 units into escrow');

# ten committed escrow holds of 3; five of them folded; one confirmed, one
# folded and one unfolded hold released (their units go to available)
is(q_in($node, $C, q{SELECT pg_catalog.bool_and(order_engine.reserve(g, '{1}', '{3}'))
                      FROM pg_catalog.generate_series(1, 10) g}),
	't', 'ten reserves of 3 units from the counter');
is(unfolded($node, $C, 1), '10', 'their holds are unfolded escrow holds');
is(q_in($node, $C, 'SELECT order_engine.fold_escrow(5)'), '5', 'fold_escrow(5) folds five of them');
q_in($node, $C, q{
	SELECT order_engine.confirm(1);
	SELECT order_engine.release(2);
	SELECT order_engine.release(9);
});
# escrow 100 - 15 folded - 3 (hold 9, folded on release) = 82; unfolded
# holds 6, 7, 8, 10 = 12 units; available 6; held 3, 4, 5 = 9; sold 3
is(bucket($node, $C, 1), '82|6|9|3', 'bucket row after folds, a confirm and two releases');
is(q_in($node, $C, 'SELECT available, held, sold FROM order_engine.stock WHERE sku_id = 1'),
	'76|21|3', 'the view counts the unfolded holds as held');
is(audit($node, $C), '', 'stock_audit clean before the crash');

# takes in flight: four sessions hold 5 units each, uncommitted; a fifth
# took 4 in a rolled-back savepoint and 2 after it
my @inflight;
for my $i (1 .. 4)
{
	my $s = $node->background_psql($C, on_error_stop => 0);
	$s->query_safe('BEGIN');
	is($s->query_safe("SELECT order_engine.reserve(10$i, '{1}', '{5}')"), 't',
		"in-flight session $i took 5 units");
	push @inflight, $s;
}
{
	my $s = $node->background_psql($C, on_error_stop => 0);
	$s->query_safe('BEGIN');
	$s->query_safe('SAVEPOINT a');
	$s->query_safe(q{SELECT order_engine.reserve(105, '{1}', '{4}')});
	$s->query_safe('ROLLBACK TO a');
	is($s->query_safe(q{SELECT order_engine.reserve(106, '{1}', '{2}')}), 't',
		'in-flight session 5 took 2 units after a rolled-back savepoint');
	push @inflight, $s;
}
# meanwhile two other sessions commit theirs: 76 - 5 = 71 units remain
for my $o ([ 111, 2 ], [ 112, 3 ])
{
	my $s = $node->background_psql($C, on_error_stop => 0);
	$s->query_safe('BEGIN');
	$s->query_safe("SELECT order_engine.reserve($o->[0], '{1}', '{$o->[1]}')");
	$s->query_safe('COMMIT');
	$s->quit;
}
# the counter has 70 - 22 in flight - 5 committed = 43, the row 6: a
# reserve of 44 finds neither enough, one of 43 fits (rolled back: the
# abort gives them back)
is(q_in($node, $C, q{SELECT order_engine.reserve(198, '{1}', '{44}')}), 'f',
	'with 22 units in flight, 44 do not fit in the counter');
is(q_in($node, $C, q{BEGIN; SELECT order_engine.reserve(199, '{1}', '{43}'); ROLLBACK;}), 't',
	'43 do (and are given back by the rollback)');

kill9_all($node);
eval { $_->quit } for @inflight;
$node->start;

is(q_in($node, $C, q{SELECT pg_catalog.count(*) FROM order_engine.stock_hold
                     WHERE order_no BETWEEN 101 AND 106}),
	'0', 'after the crash the uncommitted holds are gone');
is(q_in($node, $C, q{SELECT pg_catalog.string_agg(order_no || ':' || state || ':' || qty, ',' ORDER BY order_no)
                     FROM order_engine.stock_hold WHERE sku_id = 1 AND buckets = '{}'}),
	'6:held:3,7:held:3,8:held:3,10:held:3,111:held:2,112:held:3',
	'the committed unfolded holds survived');
is(bucket($node, $C, 1), '82|6|9|3', 'the bucket row is as before the crash');
is(q_in($node, $C, 'SELECT available FROM order_engine.stock WHERE sku_id = 1'), '71',
	'the view says 71 units remain');
is(audit($node, $C), '', 'stock_audit clean after the crash');

# the first take rebuilds the counter: escrow 82 - unfolded 17 = 65; then
# the 6 on the row; then nothing
is(q_in($node, $C, q{SELECT order_engine.reserve(300, '{1}', '{65}')}), 't',
	'the rebuilt counter gives the 65 units escrow still covers');
is(reserve_units($node, $C, 1, 301, 7), '6', 'then the row\'s 6 available units, one by one, and no 7th');
is(q_in($node, $C, q{SELECT order_engine.reserve(400, '{1}', '{1}')}), 'f', 'one more unit: sold out');
is(q_in($node, $C, 'SELECT available FROM order_engine.stock WHERE sku_id = 1'), '0',
	'the view agrees: nothing left, no unit lost, none oversold');
is(audit($node, $C), '', 'stock_audit clean after selling out');
is(q_in($node, $C, 'SELECT order_engine.fold_escrow(1000)'), '7', 'fold_escrow folds the 7 unfolded holds left');
is(bucket($node, $C, 1), '0|0|97|3', 'and escrow is exactly used up');
is(audit($node, $C), '', 'stock_audit clean after folding');

# ============================================================================
# 5. REPEATABLE READ (crashdb, no worker)
# ============================================================================
# an RR transaction whose snapshot predates 5 units restocked and moved into
# escrow makes the SKU's first take: the rebuild reads the latest tables
q_in($node, $C, q{
	SELECT order_engine.restock(3, 10);
	SELECT order_engine.set_escrow(3);
});
my $rr = $node->background_psql($C, on_error_stop => 0);
$rr->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
$rr->query_safe('SELECT pg_catalog.count(*) FROM order_engine.stock_hold');    # the snapshot
q_in($node, $C, q{SELECT order_engine.restock(3, 5); SELECT order_engine.fold_escrow(1000);});
is(bucket($node, $C, 3), '15|0|0|0', 'fold_escrow moved the 5 restocked units into escrow');
is($rr->query_safe(q{SELECT order_engine.reserve(500, '{3}', '{8}', '30 minutes', 42)}), 't',
	'RR: a reserve (with a buyer) from the counter');
$rr->query_safe('COMMIT');
is(audit($node, $C), '', 'stock_audit clean after the RR commit');
is(q_in($node, $C, q{SELECT order_engine.reserve(501, '{3}', '{7}')}), 't',
	'the 7 units left are reservable (the rebuild did not use the RR snapshot)');
is(q_in($node, $C, q{SELECT order_engine.reserve(502, '{3}', '{1}')}), 'f', 'and no 8th');

# an RR transaction takes from the counter after a fold updated the bucket
# row since its snapshot: the take touches no row, so no serialization error
q_in($node, $C, q{SELECT order_engine.restock(3, 4)});
$rr->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
$rr->query_safe('SELECT pg_catalog.count(*) FROM order_engine.stock_hold');
is(q_in($node, $C, 'SELECT order_engine.fold_escrow(1000)'), '2', 'a fold of 500 and 501 after the RR snapshot');
is(bucket($node, $C, 3), '4|0|15|0', 'it moved the 4 restocked units into escrow');
my ($rr_out, $rr_err) = $rr->query(q{SELECT order_engine.reserve(503, '{3}', '{3}', '30 minutes', 42)});
is($rr_out, 't', 'RR: a reserve from the counter after the row changed under the snapshot');
is($rr->{stderr}, '', 'without an error');
$rr->query('COMMIT');
$rr->quit;
is(q_in($node, $C, q{SELECT buckets FROM order_engine.stock_hold WHERE order_no = 503}), '{}',
	'the RR hold came from the counter');
is(audit($node, $C), '', 'stock_audit clean after the second RR commit');
is(reserve_units($node, $C, 3, 504, 2), '1', 'exactly the 1 unit left is reservable');

# the first take of a transaction that changed the SKU's escrow itself:
# the rebuild must not count those changes, which roll back here
q_in($node, $C, q{SELECT order_engine.restock(4, 10); SELECT order_engine.set_escrow(4);});
is(q_in($node, $C, 'SELECT order_engine.fold_escrow(1000)'), '2', 'fold_escrow folds 503 and 504 first');
is(q_in($node, $C, q{
	BEGIN;
	SELECT order_engine.restock(4, 5);
	SELECT order_engine.fold_escrow(1000);
	SELECT order_engine.reserve(600, '{4}', '{1}');
	ROLLBACK;}), "5\n0\nt", 'a transaction moves 5 more units into escrow, takes one, rolls back');
is(bucket($node, $C, 4), '10|0|0|0', 'the rollback left escrow at 10');
is(reserve_units($node, $C, 4, 601, 11), '10',
	'exactly 10 units are reservable (the rebuild did not count the rolled-back 5)');
is(audit($node, $C), '', 'stock_audit clean');

# ============================================================================
# 2. the worker folds escrow holds and hands restocked/released units over
# ============================================================================
q_in($node, $S, q{
	CREATE EXTENSION order_engine;
	SELECT order_engine.restock(1, 50);
	SELECT order_engine.set_escrow(1);
});
ok(wait_in($node, 'postgres', q{SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity
                                 WHERE backend_type = 'order_engine worker' AND datname = 'shop'}, '1') eq '1',
	'a worker serves shop');
is(q_in($node, $S, q{SELECT pg_catalog.bool_and(order_engine.reserve(g, '{1}', '{2}'))
                     FROM pg_catalog.generate_series(1, 10) g}),
	't', 'ten reserves of 2 units from the counter');
is(wait_in($node, $S, q{SELECT pg_catalog.count(*) FROM order_engine.stock_hold
                        WHERE state = 'held' AND buckets = '{}'}, '0'),
	'0', 'the worker folds every escrow hold');
is(bucket($node, $S, 1), '30|0|20|0', 'their 20 units moved from escrow to held');
is(q_in($node, $S, q{SELECT pg_catalog.count(*) FROM order_engine.stock_journal
                     WHERE sku_id = 1 AND kind = 'hold'}), '10', 'and each hold is journaled');
is(q_in($node, $S, q{SELECT pg_catalog.count(*) FROM order_engine.stock_movement
                     WHERE sku_id = 1 AND kind = 'hold'}), '0', 'by its hold row alone (1.0)');
cmp_ok(q_in($node, $S, q{SELECT runs FROM order_engine.worker_status
                         WHERE datname = 'shop' AND job = 'fold_escrow'}), '>', 0,
	'worker_status shows fold_escrow runs');
is(audit($node, $S), '', 'stock_audit clean after the worker folded');

is(q_in($node, $S, q{SELECT order_engine.reserve(20, '{1}', '{30}')}), 't', 'the last 30 units');
is(q_in($node, $S, q{SELECT order_engine.reserve(21, '{1}', '{1}')}), 'f', 'then sold out');
is(wait_in($node, $S, q{SELECT pg_catalog.count(*) FROM order_engine.stock_hold
                        WHERE state = 'held' AND buckets = '{}'}, '0'),
	'0', 'the worker folds that hold');

# the worker leaves shop for a while (restock locks the bucket row FOR
# UPDATE, so no lock can keep the worker off the row and let restock in):
# restocked and released units then stay available on the row
sub worker_in_shop
{
	my ($on) = @_;
	my $dbs = $on ? 'shop' : 'postgres';
	$node->safe_psql('postgres', "ALTER SYSTEM SET order_engine.database = '$dbs'");
	$node->safe_psql('postgres', 'SELECT pg_catalog.pg_reload_conf()');
	return wait_in($node, 'postgres', q{SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity
	                                    WHERE backend_type = 'order_engine worker' AND datname = 'shop'},
		$on ? '1' : '0');
}
is(worker_in_shop(0), '0', 'the worker leaves shop');
q_in($node, $S, q{SELECT order_engine.restock(1, 5)});
is(bucket($node, $S, 1), '0|5|50|0', 'the restocked 5 units are available on the row');
is(q_in($node, $S, q{SELECT order_engine.reserve(22, '{1}', '{5}')}), 't',
	'restocked units are reservable at once');
is(q_in($node, $S, q{SELECT buckets FROM order_engine.stock_hold WHERE order_no = 22}), '{0}',
	'taken from the bucket row (the available fallback)');
is(q_in($node, $S, q{SELECT order_engine.reserve(23, '{1}', '{1}')}), 'f', 'then sold out again');
# released units: the same
is(q_in($node, $S, 'SELECT order_engine.release(22)'), '1', 'release of the 5');
is(q_in($node, $S, q{SELECT order_engine.reserve(24, '{1}', '{5}')}), 't',
	'released units are reservable at once');
is(q_in($node, $S, q{SELECT buckets FROM order_engine.stock_hold WHERE order_no = 24}), '{0}',
	'from the bucket row');
is(worker_in_shop(1), '1', 'the worker is back in shop');

# now the worker moves restocked and released units into escrow
q_in($node, $S, q{SELECT order_engine.restock(1, 7)});
is(wait_in($node, $S, q{SELECT available FROM order_engine.stock_bucket WHERE sku_id = 1}, '0'), '0',
	'the worker moves 7 restocked units into escrow');
is(q_in($node, $S, q{SELECT order_engine.reserve(25, '{1}', '{7}')}), 't',
	'they are reservable from the counter (the row has none)');
is(q_in($node, $S, q{SELECT order_engine.reserve(26, '{1}', '{1}')}), 'f', 'and not one more');
is(q_in($node, $S, 'SELECT order_engine.release(24) + order_engine.release(25)'), '2',
	'release of 5 and 7 units');
is(wait_in($node, $S, q{SELECT available FROM order_engine.stock_bucket WHERE sku_id = 1}, '0'), '0',
	'the worker moves the 12 released units into escrow');
is(q_in($node, $S, q{SELECT order_engine.reserve(27, '{1}', '{12}')}), 't',
	'they are reservable from the counter (the row has none)');
is(q_in($node, $S, q{SELECT order_engine.reserve(28, '{1}', '{1}')}), 'f', 'and not one more');
is(wait_in($node, $S, q{SELECT pg_catalog.count(*) FROM order_engine.stock_hold
                        WHERE state = 'held' AND buckets = '{}'}, '0'),
	'0', 'the worker folds them too');
is(audit($node, $S), '', 'stock_audit clean');

# ---- kill -9 of one backend with takes in flight, the worker running --------
q_in($node, $S, q{SELECT order_engine.restock(1, 40)});
is(wait_in($node, $S, q{SELECT available FROM order_engine.stock_bucket WHERE sku_id = 1}, '0'), '0',
	'the worker moved 40 restocked units into escrow');
my @inflight2;
my $victim;
for my $i (1 .. 3)
{
	my $s = $node->background_psql($S, on_error_stop => 0);
	$victim //= $s->query_safe('SELECT pg_catalog.pg_backend_pid()');
	$s->query_safe('BEGIN');
	is($s->query_safe("SELECT order_engine.reserve(4$i, '{1}', '{4}')"), 't',
		"in-flight session $i took 4 units");
	push @inflight2, $s;
}
q_in($node, $S, q{SELECT order_engine.reserve(50, '{1}', '{3}'); SELECT order_engine.reserve(51, '{1}', '{2}')});
is(q_in($node, $S, 'SELECT available FROM order_engine.stock WHERE sku_id = 1'), '35',
	'35 units left, 12 more in flight');
my $log_offset = -s $node->logfile;
kill 'KILL', $victim;
ok($node->wait_for_log(qr/all server processes terminated; reinitializing/, $log_offset),
	'kill -9 of one backend restarts every process');
ok(wait_up($node, 60), 'the server is back');
eval { $_->quit } for @inflight2;
is(q_in($node, $S, q{SELECT pg_catalog.count(*) FROM order_engine.stock_hold WHERE order_no BETWEEN 41 AND 43}),
	'0', 'the in-flight holds are gone');
is(q_in($node, $S, 'SELECT available FROM order_engine.stock WHERE sku_id = 1'), '35',
	'35 units left after the crash');
is(audit($node, $S), '', 'stock_audit clean after the crash');
is(wait_in($node, $S, q{SELECT pg_catalog.count(*) FROM order_engine.stock_hold
                        WHERE state = 'held' AND buckets = '{}'}, '0'),
	'0', 'the restarted worker folds the committed escrow holds');
is(q_in($node, $S, q{SELECT order_engine.reserve(60, '{1}', '{35}')}), 't',
	'all 35 units are reservable in one reserve');
is(q_in($node, $S, q{SELECT order_engine.reserve(61, '{1}', '{1}')}), 'f', 'and not one more');
is(wait_in($node, $S, q{SELECT pg_catalog.count(*) FROM order_engine.stock_hold
                        WHERE state = 'held' AND buckets = '{}'}, '0'),
	'0', 'the worker folds that hold as well');
is(bucket($node, $S, 1), '0|0|102|0', 'escrow used up, every unit held');
is(audit($node, $S), '', 'stock_audit clean at the end');
is(q_in($node, $S, q{SELECT pg_catalog.count(*) FROM order_engine.quarantine}), '0', 'nothing quarantined');
is(q_in($node, $S, q{SELECT COALESCE(pg_catalog.sum(errors), 0) FROM order_engine.worker_status
                     WHERE datname = 'shop' AND job = 'fold_escrow'}), '0', 'the fold job had no error');

$node->stop;

# ============================================================================
# 3. order_engine.escrow_skus = 1
# ============================================================================
my $lim = oe_node('escrow_limit', conf => "order_engine.escrow_skus = 1\n");
$lim->start;
q_in($lim, 'postgres', q{
	CREATE EXTENSION order_engine;
	SELECT order_engine.restock(s, 10) FROM pg_catalog.generate_series(1, 3) s;
	SELECT order_engine.set_buckets(3, 4);
	SELECT order_engine.set_escrow(1);
});
is(sqlstate($lim, 'postgres', 'SELECT order_engine.set_escrow(2)'), '53400',
	'a second escrow SKU with escrow_skus = 1: 53400');
is(q_in($lim, 'postgres', 'SELECT sku_id FROM order_engine.sku WHERE escrow ORDER BY 1'), '1',
	'only SKU 1 is escrow');
is(sqlstate($lim, 'postgres', 'SELECT order_engine.set_escrow(3)'), 'OE027', 'a bucketed SKU: OE027');
is(sqlstate($lim, 'postgres', 'SELECT order_engine.set_buckets(1, 2)'), 'OE027',
	'set_buckets(n > 1) of an escrow SKU: OE027');
is(q_in($lim, 'postgres', q{SELECT order_engine.reserve(1, '{1}', '{2}')}), 't', 'SKU 1 reserves from its counter');
q_in($lim, 'postgres', 'SELECT order_engine.set_escrow(1, false)');
is(sqlstate($lim, 'postgres', 'SELECT order_engine.set_escrow(2)'), 'none',
	'set_escrow(1, false) frees the place for SKU 2');
is(q_in($lim, 'postgres', 'SELECT sku_id FROM order_engine.sku WHERE escrow ORDER BY 1'), '2',
	'now only SKU 2 is escrow');
is(bucket($lim, 'postgres', 1), '0|8|2|0', 'SKU 1\'s escrow went back to available and its hold was folded');
is(q_in($lim, 'postgres', q{SELECT order_engine.reserve(2, '{2}', '{3}')}), 't', 'SKU 2 reserves');
is(q_in($lim, 'postgres', q{SELECT buckets FROM order_engine.stock_hold WHERE order_no = 2}), '{}',
	'from the counter (the freed slot is reused)');
is(q_in($lim, 'postgres', q{SELECT order_engine.reserve(3, '{1}', '{8}')}), 't',
	'SKU 1 reserves from its row again');
is(q_in($lim, 'postgres', q{SELECT buckets FROM order_engine.stock_hold WHERE order_no = 3}), '{0}',
	'from bucket 0');
is(audit($lim, 'postgres'), '', 'stock_audit clean');

# ============================================================================
# 4. the same server without shared_preload_libraries
# ============================================================================
$lim->append_conf('postgresql.conf', "shared_preload_libraries = ''\n");
$lim->restart;
is(q_in($lim, 'postgres', q{SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity
                            WHERE backend_type LIKE 'order_engine%'}), '0', 'no preload: no worker');
my ($ret, $out, $err) = $lim->psql('postgres', "\\set VERBOSITY verbose\nSELECT order_engine.set_escrow(3, true)");
like($err, qr/ERROR:  55000: order_engine must be loaded via shared_preload_libraries.*HINT:  Add order_engine/s,
	'set_escrow(.., true) without preload: 55000 with a hint');
is(sqlstate($lim, 'postgres', 'SELECT order_engine.set_escrow(1, false)'), 'none',
	'set_escrow(.., false) of a SKU without escrow works');
is(sqlstate($lim, 'postgres', 'SELECT order_engine.set_escrow(2, false)'), 'none',
	'set_escrow(.., false) of the escrow SKU works');
is(q_in($lim, 'postgres', 'SELECT pg_catalog.count(*) FROM order_engine.sku WHERE escrow'), '0',
	'no escrow SKU left');
is(bucket($lim, 'postgres', 2), '0|7|3|0', 'its unfolded hold was folded, its escrow is available again');
is(q_in($lim, 'postgres', q{SELECT order_engine.reserve(4, '{2}', '{7}')}), 't',
	'and reservable from the row');
is(audit($lim, 'postgres'), '', 'stock_audit clean without preload');
$lim->stop;

done_testing();
