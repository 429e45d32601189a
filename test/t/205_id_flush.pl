# An id range is durable before a single id of it leaves the server: a
# client that got an id inside a transaction that never commits (the
# server is killed first) must never see that id again after the restart.
# The WAL writer is slowed down and autovacuum is off, so nothing but the
# range fetch's own XLogFlush can put the setval() record on disk in time
# (test/mutation.sh removes that flush and expects this test to fail).
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use OrderEngineTest;

my $node = oe_node('idflush',
	conf => "wal_writer_delay = 10000ms\nautovacuum = off\ncheckpoint_timeout = 1h\n");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION order_engine;
	SELECT order_engine.create_id_tag('flush' || r, 1, 1000) FROM generate_series(1, 3) r;
	SELECT order_engine.create_id_tag('flush_many' || r, 1, 1000) FROM generate_series(1, 3) r;
});
$node->safe_psql('postgres', 'CHECKPOINT');

for my $round (1 .. 3)
{
	# draw ids (the first of a fresh tag: a range fetch) inside a
	# transaction that stays open, then crash
	my ($in, $out, $err) = ("BEGIN;\nSELECT 'got', order_engine.next_id('flush$round'), (order_engine.next_ids('flush_many$round', 3))[3];\n", '', '');
	my $h = IPC::Run::start([ 'psql', '-X', '-A', '-t', '-d', $node->connstr('postgres') ],
		'<', \$in, '>', \$out, '2>', \$err);
	my $deadline = time() + 60;
	$h->pump until $out =~ /got\|(\d+)\|(\d+)/ || time() > $deadline;
	my ($id, $many) = $out =~ /got\|(\d+)\|(\d+)/;
	ok(defined $id, "round $round: ids handed out inside an open transaction ($id, $many)");
	kill9_all($node);
	$h->kill_kill;
	$node->start;
	my $after = $node->safe_psql('postgres', qq{SELECT order_engine.next_id('flush$round')});
	my $after_many = $node->safe_psql('postgres', qq{SELECT (order_engine.next_ids('flush_many$round', 3))[1]});
	cmp_ok($after, '>', $id, "round $round: next_id after the crash is above the id handed out before it");
	cmp_ok($after_many, '>', $many, "round $round: next_ids after the crash is above those handed out before it");
}

$node->stop;
done_testing();
