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

# place_order writes its event without SQL and emits the message itself
# where the trigger would fire: ALTER TABLE ... DISABLE / ENABLE REPLICA /
# ENABLE ALWAYS TRIGGER against session_replication_role, as for an INSERT
$node->safe_psql('postgres', q{SELECT pg_create_logical_replication_slot('rules', 'test_decoding')});
my %placed;
sub place_in
{
	my ($name, $setup) = @_;
	my $no = $node->safe_psql('postgres', 'SELECT order_engine.next_order_no(7)');
	$node->safe_psql('postgres', qq{$setup; SELECT order_engine.place_order($no, 7, 9, '[{"sku_id":1,"qty":1}]')});
	$placed{$name} = $no;
}
my $tg = 'ALTER TABLE order_engine.order_events';
place_in('enabled', 'SELECT 1');
place_in('replica_session', 'SET session_replication_role = replica');
$node->safe_psql('postgres', "$tg DISABLE TRIGGER order_events_logical_message");
place_in('disabled', 'SELECT 1');
$node->safe_psql('postgres', "$tg ENABLE REPLICA TRIGGER order_events_logical_message");
place_in('replica_trigger', 'SELECT 1');
place_in('replica_trigger_replica_session', 'SET session_replication_role = replica');
$node->safe_psql('postgres', "$tg ENABLE ALWAYS TRIGGER order_events_logical_message");
place_in('always_replica_session', 'SET session_replication_role = replica');
$node->safe_psql('postgres', "$tg ENABLE TRIGGER order_events_logical_message");
# two triggers with the function: two messages, as an INSERT fires both
$node->safe_psql('postgres', q{CREATE TRIGGER again AFTER INSERT ON order_engine.order_events
	FOR EACH ROW EXECUTE FUNCTION order_engine.outbox_logical_message()});
place_in('twice', 'SELECT 1');
$node->safe_psql('postgres', q{DROP TRIGGER again ON order_engine.order_events});
# another trigger on the table: the event goes in by SQL, which fires ours
$node->safe_psql('postgres', q{CREATE FUNCTION public.noop() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$;
	CREATE TRIGGER noop AFTER INSERT ON order_engine.order_events FOR EACH ROW EXECUTE FUNCTION public.noop()});
place_in('by_sql', 'SELECT 1');
$node->safe_psql('postgres', q{DROP TRIGGER noop ON order_engine.order_events});
my $changes = $node->safe_psql('postgres',
	q{SELECT pg_catalog.string_agg(data, E'\n') FROM pg_logical_slot_get_changes('rules', NULL, NULL, 'skip-empty-xacts', '1')
	   WHERE data LIKE 'message:%'});
note $changes;
my %want = (enabled => 1, replica_session => 0, disabled => 0, replica_trigger => 0,
	replica_trigger_replica_session => 1, always_replica_session => 1, twice => 2, by_sql => 1);
for my $case (sort keys %want)
{
	my $n = () = $changes =~ /"order_no":$placed{$case},"event":"placed"/g;
	is($n, $want{$case}, "a placement's event message: $case");
}
# the same message text whichever way the event was written
my ($direct) = $changes =~ /(content:\{"event_id":\d+,"order_no":$placed{enabled},[^\n]*)/;
my ($by_sql) = $changes =~ /(content:\{"event_id":\d+,"order_no":$placed{by_sql},[^\n]*)/;
s/"event_id":\d+,"order_no":\d+|"pay_deadline": "[^"]*"|"created_at":"[^"]*"//g for ($direct, $by_sql);
ok(defined $direct && defined $by_sql && $direct eq $by_sql,
	'a directly written event makes the same message as one written by SQL');

$node->stop;
done_testing();
