# kill -9 of the worker in the middle of archiving, again and again: every
# order stays live or archived, never both, never neither, and lines and
# events travel with their order.  "In the middle" is proven, not timed:
# another session holds the archive_watermark row, which archive_orders
# writes as the last statement of each batch (src/archive.c), and the kill
# comes once pg_stat_activity shows the worker blocked by that session, so
# a batch has moved its orders and not committed.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use OrderEngineTest;

my $node = oe_node('archive_kill', conf => join("\n",
	"order_engine.naptime = '100ms'",
	"order_engine.archive_after = '3650d'",
	"order_engine.archive_batch_size = 50",
	"order_engine.archive_pause = 0",
	"restart_after_crash = on"));
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION order_engine');

# 3,000 finished orders, each with two lines and several events; none is
# old enough to archive (archive_after = 3650 days) while we load
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
is($node->safe_psql('postgres', 'SELECT count(*) FROM order_engine_archive.orders'), '0',
	'nothing archived while loading');

# a session that holds the watermark row until it is killed with the rest
sub start_blocker
{
	my ($in, $out, $err) = ('', '', '');
	my $h = IPC::Run::start(['psql', '-X', '-q', '-A', '-t', '-d', $node->connstr('postgres')],
		'<', \$in, '>', \$out, '2>', \$err, IPC::Run::timeout(120));
	# takes the singleton row whether it exists (locks it) or not (inserts
	# it, uncommitted, so the batch's INSERT ... ON CONFLICT waits too)
	$in .= "BEGIN;\nINSERT INTO order_engine.archive_watermark (singleton) VALUES (true)"
	  . " ON CONFLICT (singleton) DO UPDATE SET last_batch_at = order_engine.archive_watermark.last_batch_at;\n"
	  . "SELECT 'locked:' || pg_backend_pid();\n";
	$h->pump until $out =~ /locked:(\d+)/;
	return ($h, $1);
}

my $kills = 0;
for my $round (1 .. 4)
{
	last if $node->safe_psql('postgres', 'SELECT count(*) FROM order_engine.orders') eq '0';
	my ($blocker, $blocker_pid) = start_blocker();
	if ($round == 1)
	{
		$node->safe_psql('postgres', q{
			ALTER SYSTEM SET order_engine.archive_after = 0;
			SELECT pg_reload_conf();
		});
	}
	my $pid = poll_value($node, qq{SELECT pid FROM pg_stat_activity
		WHERE backend_type = 'order_engine worker'
		  AND $blocker_pid = ANY (pg_blocking_pids(pid))}, 60);
	if (!$pid)
	{
		$blocker->kill_kill;
		last;
	}
	kill 'KILL', $pid;
	$kills++;
	# the postmaster restarts everything after a backend is killed, the
	# blocker's backend too: wait for the new worker ("SELECT 1" could
	# still reach the server before the postmaster noticed the kill, and
	# the next query then met recovery)
	eval { $blocker->finish; };
	$node->poll_query_until('postgres', qq{SELECT count(*) > 0 FROM pg_stat_activity
		WHERE backend_type = 'order_engine worker' AND pid <> $pid});
}
note "killed the worker $kills times while it archived";
cmp_ok($kills, '>=', 3, 'the worker was killed at least 3 times with a batch in flight');

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
