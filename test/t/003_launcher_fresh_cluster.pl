# The launcher on a brand-new cluster, before any backend has written the
# shared relcache init file, with a database that does not exist yet: it
# must not crash, and it starts the worker once the database appears;
# and it keeps doing so for databases dropped and made again.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use OrderEngineTest;

my $node = oe_node('fresh', conf => "order_engine.database = 'later'\norder_engine.naptime = '200ms'");
unlink $node->data_dir . '/global/pg_internal.init';
$node->start;

ok(wait_for($node, q{SELECT count(*) FROM pg_stat_activity
	WHERE backend_type = 'order_engine launcher'}, '1'), 'launcher is up');
my $launcher = $node->safe_psql('postgres', q{SELECT pid FROM pg_stat_activity
	WHERE backend_type = 'order_engine launcher'});
# wait until it has looked for the database and reported it missing
ok(wait_for_log($node, qr/database\(s\) later in "order_engine.database" do not exist/, 60),
	'the launcher looked for its database');
is($node->safe_psql('postgres', q{SELECT pid FROM pg_stat_activity
	WHERE backend_type = 'order_engine launcher'}), $launcher,
	'launcher keeps running while its database is missing');

$node->safe_psql('postgres', 'CREATE DATABASE later');
ok(wait_for($node, q{SELECT count(*) FROM pg_stat_activity
	WHERE backend_type = 'order_engine worker' AND datname = 'later'}, '1'),
	'worker starts once the database exists');

my $log = slurp_file($node->logfile);
unlike($log, qr/FATAL/, 'no FATAL in the server log');

# a database dropped and made again is a new database (a new OID): the
# launcher must forget the old one, or after OE_MAX_DATABASES (8) such
# cycles no new database would get a worker until a restart
my $cycles_ok = 1;
for my $cycle (1 .. 10)
{
	$node->safe_psql('postgres', 'DROP DATABASE later WITH (FORCE)');
	$node->safe_psql('postgres', 'CREATE DATABASE later');
	next if wait_for($node, q{SELECT count(*) FROM pg_stat_activity
		WHERE backend_type = 'order_engine worker' AND datname = 'later'}, '1', 60);
	$cycles_ok = 0;
	diag("no worker for the database made in cycle $cycle");
	last;
}
ok($cycles_ok, 'ten drop/create cycles of the database (FORCE ends its worker): a worker serves each new one');


$node->stop;
done_testing();
