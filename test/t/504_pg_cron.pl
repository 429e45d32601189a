# The pg_cron path, for servers where order_engine cannot be preloaded:
# the maintenance functions are plain SQL functions that pg_cron runs.
# pg_cron 1.4 has one-minute granularity, so this test waits up to ~70 s.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use OrderEngineTest;

my $sharedir = `pg_config --sharedir`;
chomp $sharedir;
plan skip_all => 'pg_cron is not installed' unless -f "$sharedir/extension/pg_cron.control";

my $node = oe_node('cron', no_preload => 1,
	conf => "shared_preload_libraries = 'pg_cron'\ncron.database_name = 'postgres'\ncron.use_background_workers = on\nmax_worker_processes = 16");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION pg_cron;
	CREATE EXTENSION order_engine;
	SELECT order_engine.restock(1, 10);
	SELECT order_engine.reserve(1, ARRAY[1]::bigint[], ARRAY[4]::bigint[], '1 second');
});
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity
	WHERE backend_type = 'order_engine worker'}), '0', 'no order_engine worker without preload');

# the calls the README documents
$node->safe_psql('postgres', q{
	SELECT cron.schedule('order_engine-release-expired', '* * * * *',
		'SELECT order_engine.release_expired(10000)');
	SELECT cron.schedule('order_engine-close-unpaid', '* * * * *',
		'SELECT order_engine.close_unpaid(10000)');
	SELECT cron.schedule('order_engine-reap-keys', '*/5 * * * *',
		'SELECT order_engine.reap_expired_keys(10000)');
	SELECT cron.schedule('order_engine-archive', '*/10 2-4 * * *',
		'SELECT order_engine.archive_orders(''90 days'', 1000)');
});
is($node->safe_psql('postgres', 'SELECT count(*) FROM cron.job'), '4', 'four jobs scheduled');

ok(wait_for($node, q{SELECT state FROM order_engine.stock_hold WHERE order_no = 1}, 'released', 90),
	'pg_cron ran release_expired and the expired hold was released');
ok(wait_for($node, q{SELECT count(*) > 0 FROM cron.job_run_details d JOIN cron.job j USING (jobid)
	WHERE j.jobname = 'order_engine-release-expired' AND d.status = 'succeeded'}, 't', 30),
	'the run is recorded as succeeded');

$node->stop;
done_testing();
