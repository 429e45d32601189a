# kill -9 of the worker in the middle of archiving, again and again: every
# order stays live or archived, never both, never neither, and lines and
# events travel with their order.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use OrderEngineTest;

my $node = oe_node('archive_kill', conf => join("\n",
	"order_engine.naptime = '100ms'",
	"order_engine.archive_after = 0",
	"order_engine.archive_batch_size = 50",
	"order_engine.archive_pause = 0",
	"restart_after_crash = on"));
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION order_engine');

# 3,000 finished orders, each with two lines and several events
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET order_engine.archive_window = '00:00-00:01';
	SELECT pg_reload_conf();
});
# a window that (almost surely) is closed now keeps the worker off while we load
$node->safe_psql('postgres', q{
	SELECT order_engine.restock(1, 1000000);
	SELECT order_engine.restock(2, 1000000);
	SELECT order_engine.set_price(1, 1);
	SELECT order_engine.set_price(2, 2);
	SELECT order_engine.place_order(g, g % 97, 1,
		'[{"sku_id": 1, "qty": 1}, {"sku_id": 2, "qty": 1}]') FROM generate_series(1, 3000) g;
	SELECT order_engine.cancel_order(g) FROM generate_series(1, 3000) g;
	-- delivered: 0.7 archives an order only once its events are acked
	SELECT order_engine.ack_events(array_agg(event_id)) FROM order_engine.order_events;
});
my $total = 3000;
my $lines = $node->safe_psql('postgres', 'SELECT count(*) FROM order_engine.order_lines');
my $events = $node->safe_psql('postgres', 'SELECT count(*) FROM order_engine.order_events');

$node->safe_psql('postgres', q{
	ALTER SYSTEM SET order_engine.archive_window = '';
	SELECT pg_reload_conf();
});

my $kills = 0;
for my $round (1 .. 15)
{
	my $pid = poll_value($node, q{SELECT pid FROM pg_stat_activity
		WHERE backend_type = 'order_engine worker'}, 10);
	last unless $pid;
	usleep(50_000 + int(rand(150_000)));
	last if $node->safe_psql('postgres', 'SELECT count(*) FROM order_engine.orders') eq '0';
	kill 'KILL', $pid;
	$kills++;
	# the postmaster restarts everything after a backend is killed: wait for
	# the new worker ("SELECT 1" could still reach the server before the
	# postmaster noticed the kill, and the next query then met recovery)
	$node->poll_query_until('postgres', qq{SELECT count(*) > 0 FROM pg_stat_activity
		WHERE backend_type = 'order_engine worker' AND pid <> $pid});
}
note "killed the worker $kills times while it archived";
cmp_ok($kills, '>=', 1, 'the worker was killed mid-archive at least once');

ok(wait_for($node, 'SELECT count(*) FROM order_engine.orders', '0', 120),
	'archiving finished after the kills');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM order_engine.orders o
	  JOIN order_engine_archive.orders a USING (order_no)}), '0', 'no order is both live and archived');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (SELECT order_no FROM order_engine.orders
	  UNION ALL SELECT order_no FROM order_engine_archive.orders) o}), $total,
	'every order is live or archived');
is($node->safe_psql('postgres', 'SELECT count(*) FROM order_engine_archive.order_lines'), $lines,
	'every line moved with its order');
is($node->safe_psql('postgres', 'SELECT count(*) FROM order_engine_archive.order_events'), $events,
	'every event moved with its order');
is($node->safe_psql('postgres', 'SELECT archived_total FROM order_engine.archive_watermark'), $total,
	'the watermark counted each order once');

$node->stop;
done_testing();
