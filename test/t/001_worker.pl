# The launcher and the per-database worker: name, restart after
# termination, SIGHUP reload of the nap, idling without the extension,
# DROP DATABASE of the worker's database, clean shutdown.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use OrderEngineTest;

my $node = oe_node('worker', conf => "order_engine.naptime = '10s'");
$node->start;

my $worker_pid_sql = q{SELECT pid FROM pg_stat_activity
	WHERE backend_type = 'order_engine worker' AND datname = 'postgres'};

# the extension is not installed yet: the worker idles and says why
my $pid = poll_value($node, $worker_pid_sql);
ok($pid, 'worker appears in pg_stat_activity as "order_engine worker"');
ok(wait_for($node, q{SELECT count(*) = 1 FROM pg_stat_activity
	WHERE backend_type = 'order_engine launcher'}), 'one launcher runs');

$node->safe_psql('postgres', 'CREATE EXTENSION order_engine');
$node->safe_psql('postgres', "ALTER SYSTEM SET order_engine.naptime = '100ms'");
$node->reload;
ok(wait_for($node, q{SELECT DISTINCT state FROM order_engine.worker_status}, 'idle'),
	'worker sees the extension after a reload wakes it');

# the reloaded nap takes effect: 20 more rounds (the counter moves twice a
# round) take about 1 s at 100 ms; at the old 10 s nap they would take
# 100 s, far past the deadline.  A deadline, not a window: a slow machine
# only makes this wait longer.
my $r0 = $node->safe_psql('postgres', 'SELECT max(rounds) FROM order_engine.worker_status');
my $t0 = time();
ok(wait_for($node, "SELECT max(rounds) >= $r0 + 20 FROM order_engine.worker_status", 't', 40),
	'naptime 100ms after reload: 20 rounds within 40 s (took ' . (time() - $t0) . ' s)');

# the application name is the worker's name too
is($node->safe_psql('postgres',
	"SELECT application_name FROM pg_stat_activity WHERE pid = $pid"),
	'order_engine worker', 'application_name names the worker');

# pg_terminate_backend: the launcher brings the worker back
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
my $newpid = poll_value($node, $worker_pid_sql . " AND pid <> $pid", 10);
ok($newpid, "terminated worker $pid is back as $newpid within seconds");

# a database without the extension: its worker idles and says so
$node->safe_psql('postgres', 'CREATE DATABASE victim');
$node->safe_psql('postgres', "ALTER SYSTEM SET order_engine.database = 'postgres, victim'");
$node->reload;
ok(wait_for($node, q{SELECT count(*) FROM pg_stat_activity
	WHERE backend_type = 'order_engine worker' AND datname = 'victim'}, '1'),
	'a worker starts for a database added to order_engine.database');
ok(wait_for($node, q{SELECT DISTINCT state FROM order_engine.worker_status WHERE datname = 'victim'},
	'extension not installed'), 'it idles where the extension is absent');

# DROP DATABASE of a served database completes
my ($ret, $out, $err) = $node->psql('postgres', 'DROP DATABASE victim');
is($ret, 0, 'DROP DATABASE of the worker\'s database completes') or diag $err;
ok(wait_for($node, q{SELECT count(*) FROM pg_stat_activity
	WHERE backend_type = 'order_engine worker'}, '1', 15),
	'only the worker of "postgres" remains');

# a removed database loses its worker on reload
$node->safe_psql('postgres', 'CREATE DATABASE other');
$node->safe_psql('postgres', "ALTER SYSTEM SET order_engine.database = 'other'");
$node->reload;
ok(wait_for($node, q{SELECT string_agg(datname, ',') FROM pg_stat_activity
	WHERE backend_type = 'order_engine worker'}, 'other'),
	'worker moves when order_engine.database changes');

# the worker is not restarted in a crash loop: one start per database
my $log = slurp_file($node->logfile);
unlike($log, qr/does not exist.*\n.*order_engine/,
	'no worker tried to connect to the dropped database');

# SIGTERM at shutdown: clean stop, no crash
$node->stop('fast');
$log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|was terminated by|PANIC/, 'clean shutdown');

done_testing();
