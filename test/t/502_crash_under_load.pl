# kill -9 of the postmaster while clients reserve and confirm: after the
# restart the worker releases every expired hold and the audit is clean.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use OrderEngineTest;

my $node = oe_node('crash_load', conf => "order_engine.naptime = '200ms'");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION order_engine;
	SELECT order_engine.restock(1, 100000);
	SELECT order_engine.restock(2, 100000);
	SELECT order_engine.set_buckets(2, 8);
	CREATE SEQUENCE o;
});

my $script = $node->basedir . '/load.sql';
PostgreSQL::Test::Utils::append_to_file($script, q{
SELECT nextval('o') AS n \gset
SELECT order_engine.reserve(:n, ARRAY[1, 2]::bigint[], ARRAY[1, 1]::bigint[], '2 seconds');
SELECT CASE WHEN :n % 3 = 0 THEN order_engine.confirm(:n) END;
});

# 8 clients; the postmaster is killed once they have taken 200 holds (a
# condition, not a time: on a busy machine this only takes longer)
my $bench = IPC::Run::start(['pgbench', '-n', '-c', '8', '-j', '2', '-T', '120',
	'-f', $script, '-h', $node->host, '-p', $node->port, 'postgres'],
	'>', \my $out, '2>', \my $err);
ok(wait_for($node, q{SELECT count(*) >= 200 FROM order_engine.stock_hold}, 't', 90),
	'the load reserved before the crash');
kill9_all($node);
$bench->finish;
$node->start;

ok(wait_for($node, q{SELECT count(*) FROM order_engine.stock_hold
	WHERE state = 'held' AND expires_at < now() - interval '1 second'}, '0', 30),
	'after the crash the worker released every expired hold');
ok(wait_for($node, q{SELECT count(*) FROM order_engine.stock_hold WHERE state = 'held'}, '0', 30),
	'eventually nothing is held');
is($node->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE NOT ok) FROM order_engine.stock_audit()}),
	'0', 'stock_audit is clean after the crash');
cmp_ok($node->safe_psql('postgres', 'SELECT count(*) FROM order_engine.stock_hold'), '>', 0,
	'the holds taken before the crash are still there');

$node->stop;
done_testing();
