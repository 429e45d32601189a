# Without shared_preload_libraries: no worker, and functions that need the
# shared state say so with OBJECT_NOT_IN_PREREQUISITE_STATE and a hint.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use OrderEngineTest;

my $node = oe_node('no_preload', no_preload => 1);
$node->start;

$node->safe_psql('postgres', 'CREATE EXTENSION order_engine');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity
	WHERE backend_type LIKE 'order_engine%'}), '0', 'no launcher or worker');

my ($ret, $out, $err) = $node->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT * FROM order_engine.worker_status");
isnt($ret, 0, 'worker_status fails without preload');
like($err, qr/ERROR:  55000: order_engine must be loaded via shared_preload_libraries/,
	'with SQLSTATE 55000');
like($err, qr/HINT:  Add order_engine to shared_preload_libraries/, 'and a hint');

# GUCs are still defined and reserved
is($node->safe_psql('postgres', "LOAD 'order_engine'; SHOW order_engine.naptime"), '5s',
	'GUCs are defined when loaded late');

$node->safe_psql('postgres', 'DROP EXTENSION order_engine');
$node->stop;
done_testing();
