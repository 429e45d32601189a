# order_engine.expiry_gather: the worker lets expiries gather before it
# wakes for them, so holds that fall due a few milliseconds apart (a
# flash sale's) are released by a few rounds instead of a round each.
# 400 holds expire 5 ms apart over 2 s; with 500 ms of gathering the
# worker needs a handful of rounds (2 s / 500 ms, plus the reload's and
# retries: 12 in one run; the test allows 40); with 0 it took a round for
# nearly every hold (782 in the same run).  Every
# hold is released, none before its expiry, and the books still balance.
# test/mutation.sh drops the gathering and expects this test to fail.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use OrderEngineTest;

my $node = oe_node('gather', conf => "order_engine.naptime = '1h'\norder_engine.expiry_gather = '500ms'\n");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION order_engine;
	SELECT order_engine.restock(1, 100000);
});
ok(wait_for($node, q{SELECT bool_and(state = 'idle') FROM order_engine.worker_status}),
	'the worker is idle');
is($node->safe_psql('postgres', 'SHOW order_engine.expiry_gather'), '500ms', 'the setting reads back');

# rounds_for_spread GATHER FIRST: 400 holds from order FIRST expiring 5 ms
# apart from 2 s from now; the worker's rounds until all are released
sub rounds_for_spread
{
	my ($gather, $first) = @_;
	$node->safe_psql('postgres', "ALTER SYSTEM SET order_engine.expiry_gather = '$gather'");
	$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
	sleep 1;
	my $before = $node->safe_psql('postgres', q{SELECT max(rounds) FROM order_engine.worker_status});
	$node->safe_psql('postgres', qq{
		SELECT order_engine.reserve(g, '{1}', '{1}', '1 hour')
		  FROM generate_series($first, $first + 399) g;
		UPDATE order_engine.stock_hold
		   SET expires_at = pg_catalog.now() + interval '2 seconds' + (order_no - $first) * interval '5 milliseconds'
		 WHERE order_no BETWEEN $first AND $first + 399;
		SELECT pg_reload_conf();  -- the worker recomputes its sleep
	});
	ok(wait_for($node, qq{SELECT count(*) FROM order_engine.stock_hold
	                       WHERE order_no BETWEEN $first AND $first + 399 AND state = 'held'}, '0', 60),
		"expiry_gather $gather: all 400 holds released");
	is($node->safe_psql('postgres', qq{SELECT count(*) FROM order_engine.stock_hold
	                                    WHERE order_no BETWEEN $first AND $first + 399
	                                      AND updated_at < expires_at}), '0',
		"expiry_gather $gather: none released before its expiry");
	my $after = $node->safe_psql('postgres', q{SELECT max(rounds) FROM order_engine.worker_status});
	return $after - $before;
}

my $gathered = rounds_for_spread('500ms', 100000);
cmp_ok($gathered, '<=', 40, "with 500 ms of gathering, $gathered rounds for 400 expiries over 2 s");
my $each = rounds_for_spread('0', 200000);
cmp_ok($each, '>', $gathered, "without it, more rounds ($each)");

is($node->safe_psql('postgres', q{SELECT bool_and(ok) FROM order_engine.stock_audit()}), 't',
	'stock_audit: every SKU balances');
$node->stop;
done_testing();
