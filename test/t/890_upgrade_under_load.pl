# Live upgrade: ALTER EXTENSION order_engine UPDATE from the last release
# (0.5, with its data) to the current version while 16 clients place,
# pay, reserve, draw ids and claim idempotency keys, and the worker runs.
# Every call that fails must fail with a documented retryable SQLSTATE;
# afterwards the audits are clean, the data is there and the worker works
# on the new version.  Then the same from every earlier version, with data
# made by that version's API.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use OrderEngineTest;

# what a client may see and retry: serialization, deadlock, lock timeout
my %retryable = map { $_ => 1 } qw(40001 40P01 55P03);
my $clients = 16;
my $rounds = 150;

my $node = oe_node('upgrade', conf => "order_engine.naptime = 200\nmax_connections = 60\n");
$node->start;
my $current = $node->safe_psql('postgres',
	q{SELECT default_version FROM pg_available_extensions WHERE name = 'order_engine'});
$node->safe_psql('postgres', q{
	CREATE EXTENSION order_engine VERSION '0.5';
	CREATE ROLE shop LOGIN IN ROLE order_engine_app;
	SELECT order_engine.restock(s, 1000000) FROM generate_series(1, 20) s;
	SELECT order_engine.set_price(s, 2) FROM generate_series(1, 20) s;
	SELECT order_engine.create_id_tag('up');
});

# one client: a loop of statements of the API that exists in both versions.
# Like a real client it retries what the docs call retryable (a deadlock
# with the upgrade's DDL, a serialization failure, a lock timeout), and
# says so on stderr with the SQLSTATE; anything else is left to fail.
sub retrying
{
	my ($stmt) = @_;
	return "DO \$\$ BEGIN FOR i IN 1 .. 20 LOOP BEGIN PERFORM $stmt; EXIT; "
	  . "EXCEPTION WHEN deadlock_detected OR serialization_failure OR lock_not_available THEN "
	  . "RAISE NOTICE 'retried %', SQLSTATE; PERFORM pg_catalog.pg_sleep(0.01); END; END LOOP; END \$\$;\n";
}

sub client_sql
{
	my ($c) = @_;
	my $sql = "\\set VERBOSITY sqlstate\n";
	for my $r (1 .. $rounds)
	{
		my $no = ($c * 100000 + $r) * 100 + 7;
		my $sku = 1 + ($c + $r) % 20;
		$sql .= retrying("order_engine.place_order($no, 7, 9, '[{\"sku_id\": $sku, \"qty\": 1}]')");
		$sql .= retrying("order_engine.pay_order($no, 'p$no', 2)") if $r % 2;
		$sql .= retrying("order_engine.reserve($no + 1000000000, '{$sku}', '{1}', '1 second')");
		$sql .= "SELECT order_engine.next_id('up'), order_engine.next_order_no(7), order_engine.snowflake_id();\n";
		$sql .= retrying("order_engine.idem_begin('up', 'k$no', '{}')");
		$sql .= retrying("order_engine.idem_finish('up', 'k$no', '{\"r\": 1}')");
		$sql .= "SELECT order_engine.order_status($no);\n";
	}
	return $sql;
}

my @h;
for my $c (1 .. $clients)
{
	my $in = client_sql($c);
	my ($out, $err) = ('', '');
	push @h, { h => IPC::Run::start([ 'psql', '-X', '-q', '-A', '-t', '-U', 'shop', '-d', $node->connstr('postgres') ],
			'<', \$in, '>', \$out, '2>', \$err), out => \$out, err => \$err };
}
# feed the clients (IPC::Run sends their input only while pumped) until
# they have been running for a while, then update under them
my ($before, $until) = (0, time() + 60);
while (time() < $until && $before < 100)
{
	$_->{h}->pump_nb for @h;
	usleep(10_000);
	$before = 0;
	$before += () = ${ $_->{out} } =~ /\n/g for @h;   # the SELECTs print, the DO blocks do not
}
cmp_ok($before, '>=', 100, "the clients were busy before the update ($before results)");
# as a DBA runs DDL under load (README "Upgrades"): a lock timeout, and a
# retry when it strikes or the update loses a deadlock
my ($tries, $updated) = (0, 0);
while (!$updated && $tries < 20)
{
	$tries++;
	my ($o, $e) = ('', '');
	$updated = IPC::Run::run([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'),
			'-c', "SET lock_timeout = '2s'", '-c', 'ALTER EXTENSION order_engine UPDATE' ], '>', \$o, '2>', \$e);
	die "update failed: $e" if !$updated && $e !~ /lock timeout|deadlock detected/;
	$_->{h}->pump_nb for @h;
}
note "ALTER EXTENSION UPDATE took $tries attempt(s)";
is($node->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'order_engine'}),
	$current, "updated 0.5 -> $current under load");
$_->{h}->finish for @h;

my (%codes, %retried, $calls);
for my $c (@h)
{
	$calls += () = ${ $c->{out} } =~ /\n/g;
	$codes{$1}++ while ${ $c->{err} } =~ /ERROR:\s+([0-9A-Z]{5})/g;
	$retried{$1}++ while ${ $c->{err} } =~ /NOTICE:\s+retried ([0-9A-Z]{5})/g;
}
note 'retried by the clients: ' . (join(', ', map { "$_ x$retried{$_}" } sort keys %retried) || 'nothing');
my @bad = grep { !$retryable{$_} } sort keys %codes;
note 'errors the clients saw: ' . (join(', ', map { "$_ x$codes{$_}" } sort keys %codes) || 'none');
is($calls, $clients * $rounds * 2, "every client ran every statement through the upgrade ($calls SELECT results; the DO blocks print none)");
is("@bad", '', 'no call failed with anything but a retryable SQLSTATE')
  or diag(join(', ', map { "$_ x$codes{$_}" } sort keys %codes) . "\n" . substr(${ $h[0]{err} }, 0, 2000));

is($node->safe_psql('postgres', q{SELECT pg_catalog.count(*) FROM order_engine.stock_audit() WHERE NOT ok}),
	'0', 'stock_audit clean after the upgrade');
cmp_ok($node->safe_psql('postgres', q{SELECT pg_catalog.count(*) FROM order_engine.orders}), '>=',
	$clients * $rounds, 'every order placed before and after is there');
is($node->safe_psql('postgres', q{SELECT pg_catalog.count(*) FROM order_engine.idempotency_keys WHERE state <> 'completed'}),
	'0', 'every key begun was finished, across the upgrade');
# the new version's API and the worker on it
is($node->safe_psql('postgres', q{SELECT claim IS NOT NULL FROM order_engine.idem_begin('up', 'after', '{}')}),
	't', 'the new idem_begin answers with a claim token');
ok(wait_for($node, q{SELECT pg_catalog.count(*) = 0 FROM order_engine.stock_hold
                      WHERE state = 'held' AND expires_at < pg_catalog.now() - interval '5 seconds'}, 't', 60),
	'the worker releases expired holds on the new version');
# the worker's batches give up on a lock after 200 ms and retry (55P03),
# which the update's DDL may cause; nothing else may fail them
my @worker_errors = grep { !/lock timeout|deadlock detected|could not serialize/ }
  (PostgreSQL::Test::Utils::slurp_file($node->logfile) =~ /order_engine \w+ failed: ([^\n]*)/g);
is("@worker_errors", '', 'no worker batch failed across the upgrade but for retried lock waits');

# every earlier version, with data made by that version's API, updates to the current one
my %data = (
	'0.1' => q{SELECT 1},
	'0.2' => q{SELECT order_engine.restock(1, 10); SELECT order_engine.reserve(11, '{1}', '{2}')},
	'0.3' => q{SELECT order_engine.restock(1, 10); SELECT order_engine.create_id_tag('t'); SELECT order_engine.next_id('t')},
	'0.4' => q{SELECT order_engine.restock(1, 10); SELECT order_engine.create_id_tag('t'); SELECT order_engine.next_id('t');
	           SELECT order_engine.idem_begin('s', 'k', '{}'); SELECT order_engine.idem_finish('s', 'k', '{"a": 1}')},
	'0.5' => q{SELECT order_engine.restock(1, 10); SELECT order_engine.set_price(1, 3); SELECT order_engine.create_id_tag('t');
	           SELECT order_engine.next_id('t'); SELECT order_engine.place_order(107, 7, 9, '[{"sku_id": 1, "qty": 2}]')},
	'0.6' => q{SELECT order_engine.restock(1, 10); SELECT order_engine.set_price(1, 3);
	           SELECT order_engine.place_order(107, 7, 9, '[{"sku_id": 1, "qty": 2}]');
	           SELECT claim FROM order_engine.idem_begin('s', 'k', '{}')},
	'0.7' => q{SELECT order_engine.restock(1, 10); SELECT order_engine.set_price(1, 3);
	           SELECT order_engine.place_order(107, 7, 9, '[{"sku_id": 1, "qty": 2}]');
	           SELECT order_engine.pay_order(107, 'p107', 6); SELECT order_engine.cancel_order(107)},
);
for my $v (sort keys %data)
{
	my $db = 'from_' . ($v =~ s/\./_/r);
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, "CREATE EXTENSION order_engine VERSION '$v'; $data{$v}");
	my ($ok, $out, $err) = (0, '', '');
	$ok = IPC::Run::run([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr($db), '-c',
			'ALTER EXTENSION order_engine UPDATE' ], '>', \$out, '2>', \$err);
	ok($ok, "update $v -> $current") or diag($err);
	is($node->safe_psql($db, q{SELECT extversion FROM pg_extension WHERE extname = 'order_engine'}), $current,
		"$db is at $current");
	is($node->safe_psql($db, q{SELECT pg_catalog.count(*) FROM order_engine.stock_audit() WHERE NOT ok}),
		'0', "$db: stock_audit clean") if $v ne '0.1';
	is($node->safe_psql($db, q{SELECT pg_catalog.count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_roles r ON r.oid = c.relowner
	                           WHERE c.relnamespace = 'order_engine'::regnamespace AND r.rolsuper}),
		'0', "$db: nothing of ours belongs to a superuser after the update");
	is($node->safe_psql($db, q{SELECT order_engine.next_order_no(7) > 0}), 't', "$db: the API works");
	$node->safe_psql($db, q{SELECT order_engine.restock(99, 5); SELECT order_engine.set_price(99, 2)});
	is($node->safe_psql($db, q{SELECT order_engine.place_order(9907, 7, 9, '[{"sku_id": 99, "qty": 1}]', '30 minutes',
	                                                           order_engine.quote(7, '[{"sku_id": 99, "qty": 1}]'))}),
		'pending_payment', "$db: place_order with a checkout quote works");
	$node->safe_psql('postgres', "DROP DATABASE $db");
}

$node->stop;
done_testing();
