# Events to CDC: with wal_level = logical and
# order_engine.emit_logical_messages on, pg_recvlogical with test_decoding
# receives exactly the committed outbox events, in commit order, and none
# of a rolled-back transaction; with the setting off, none at all.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use OrderEngineTest;

my $node = oe_node('cdc', conf => "wal_level = logical\nmax_replication_slots = 4\nmax_wal_senders = 4\n"
	  . "order_engine.emit_logical_messages = on\n");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION order_engine;
	SELECT order_engine.restock(1, 100);
	SELECT order_engine.set_price(1, 5);
});
$node->safe_psql('postgres', q{SELECT pg_create_logical_replication_slot('cdc', 'test_decoding')});

my $file = "${PostgreSQL::Test::Utils::tmp_check}/cdc.out";
my $recv = IPC::Run::start([ 'pg_recvlogical', '-d', $node->connstr('postgres'), '--slot', 'cdc',
		'--start', '-o', 'skip-empty-xacts=1', '-f', $file, '-F', '1' ], '>', \my $o, '2>', \my $e);

# committed: three placements and a payment; rolled back: one placement
my @orders = map { $node->safe_psql('postgres', 'SELECT order_engine.next_order_no(7)') } 1 .. 4;
$node->safe_psql('postgres', qq{SELECT order_engine.place_order($orders[0], 7, 9, '[{"sku_id":1,"qty":1}]')});
$node->safe_psql('postgres', qq{BEGIN; SELECT order_engine.place_order($orders[1], 7, 9, '[{"sku_id":1,"qty":1}]'); ROLLBACK;});
$node->safe_psql('postgres', qq{SELECT order_engine.place_order($orders[2], 7, 9, '[{"sku_id":1,"qty":1}]')});
$node->safe_psql('postgres', qq{SELECT order_engine.pay_order($orders[0], 'p1', 5)});
$node->safe_psql('postgres', qq{SELECT order_engine.place_order($orders[3], 7, 9, '[{"sku_id":1,"qty":2}]')});
# with the setting off in a session: nothing
$node->safe_psql('postgres', qq{SET order_engine.emit_logical_messages = off;
	SELECT order_engine.cancel_order($orders[3], 'off')});

my $expected = $node->safe_psql('postgres',
	qq{SELECT pg_catalog.string_agg(event_id::text, ',' ORDER BY event_id) FROM order_engine.order_events
	    WHERE NOT (order_no = $orders[3] AND event <> 'placed')});
my $got = '';
my $deadline = time() + 60;
while (time() < $deadline)
{
	$recv->pump_nb;
	my $text = -f $file ? PostgreSQL::Test::Utils::slurp_file($file) : '';
	my @ids = $text =~ /prefix: order_engine, sz: \d+ content:\{"event_id":(\d+)/g;
	$got = join(',', @ids);
	last if $got eq $expected;
	usleep(100_000);
}
$recv->kill_kill;
my $text = -f $file ? PostgreSQL::Test::Utils::slurp_file($file) : '';
note $text;
is($got, $expected, 'exactly the committed events, in commit order');
unlike($text, qr/"order_no":$orders[1]\b/, 'nothing of the rolled-back placement');
like($text, qr/message: transactional: 1 prefix: order_engine/, 'transactional messages with the order_engine prefix');
like($text, qr/"event":"paid"/, 'the payment event came through');
my $n_events = () = $text =~ /prefix: order_engine/g;
is($n_events, scalar(split /,/, $expected), 'no message for an event written with the setting off');
like($text, qr/\{"event_id":\d+,"order_no":$orders[0],"event":"placed"/, 'each message is the event row as JSON');

$node->stop;
done_testing();
