# On a hot standby the worker runs no job (its rounds go on, its job
# counters stay at zero although a hold has expired) and the API fails with
# the read-only SQLSTATE (25006), not a crash; after promotion the jobs run
# and the worker releases what expired meanwhile.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use OrderEngineTest;

my $primary = oe_node('primary', init => { allows_streaming => 1 },
	conf => "order_engine.naptime = '200ms'");
$primary->start;
$primary->safe_psql('postgres', q{
	CREATE EXTENSION order_engine;
	SELECT order_engine.restock(1, 10);
});
$primary->backup('b');

my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'b', has_streaming => 1);
$standby->start;

# holds that expire while the primary is gone
$primary->safe_psql('postgres', q{
	SELECT order_engine.reserve(1, ARRAY[1]::bigint[], ARRAY[3]::bigint[], '1 hour');
	UPDATE order_engine.stock_hold SET expires_at = now() + interval '2 seconds';
});
$primary->wait_for_catchup($standby);
$primary->stop('immediate');

ok(wait_for($standby, q{SELECT DISTINCT state FROM order_engine.worker_status}, 'in recovery'),
	'the standby\'s worker idles in recovery');
# there is work: the hold has expired on the standby's clock
ok(wait_for($standby, q{SELECT bool_and(expires_at < now()) FROM order_engine.stock_hold}, 't', 60),
	'the hold has expired');
# the worker goes on looping (rounds advance) but no job runs
my $rounds = $standby->safe_psql('postgres', q{SELECT max(rounds) FROM order_engine.worker_status});
ok(wait_for($standby, "SELECT max(rounds) >= $rounds + 5 FROM order_engine.worker_status", 't', 60),
	'the standby\'s worker keeps looping in recovery');
is($standby->safe_psql('postgres', q{SELECT sum(runs) || ',' || count(last_run_at)
	FROM order_engine.worker_status}), '0,0', 'no job ran in recovery');
is($standby->safe_psql('postgres', q{SELECT state FROM order_engine.stock_hold}), 'held',
	'the expired hold is still held on the standby');

my ($ret, $out, $err) = $standby->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT order_engine.restock(1, 1)");
like($err, qr/ERROR:  25006/, 'the API fails read-only (25006) on the standby');
($ret, $out, $err) = $standby->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT order_engine.reserve(2, ARRAY[1]::bigint[], ARRAY[1]::bigint[])");
like($err, qr/ERROR:  25006/, 'reserve, which writes without SQL, fails read-only (25006) too');
($ret, $out, $err) = $standby->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT order_engine.release_expired()");
like($err, qr/ERROR:  25006/, 'a job called by hand fails read-only too');

$standby->promote;
ok(wait_for($standby, q{SELECT sum(runs) FILTER (WHERE job = 'release_expired') > 0
	FROM order_engine.worker_status}, 't', 60), 'after promotion the jobs run');
ok(wait_for($standby, q{SELECT state FROM order_engine.stock_hold}, 'released', 30),
	'after promotion the worker releases the expired hold');
is($standby->safe_psql('postgres', q{SELECT bool_and(ok) FROM order_engine.stock_audit()}), 't',
	'audit clean after promotion');

$standby->stop;
done_testing();
