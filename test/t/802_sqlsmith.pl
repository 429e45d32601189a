# SQLsmith as an unprivileged role (a member of order_engine_app) against a
# database with the extension: a bounded number of random queries, and the
# server must not crash (postmaster up, no backend killed by a signal).
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use OrderEngineTest;

# (a PATH search in Perl: `command -v` is a shell builtin, and backticks
# without shell metacharacters run no shell)
my ($sqlsmith) = map { "$_/sqlsmith" } grep { -x "$_/sqlsmith" } split /:/, $ENV{PATH};
plan skip_all => 'sqlsmith is not installed (Debian package sqlsmith)' unless $sqlsmith;

my $node = oe_node('sqlsmith');
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION order_engine;
	SELECT order_engine.restock(s, 100), order_engine.set_price(s, 1.5) FROM generate_series(1, 5) s;
	SELECT order_engine.place_order(order_engine.next_order_no(7), 7, 1, '[{"sku_id": 1, "qty": 1}]');
	CREATE ROLE smith LOGIN IN ROLE order_engine_app;
});

my $queries = $ENV{OE_SQLSMITH_QUERIES} // 5000;
my $conninfo = sprintf('host=%s port=%d dbname=postgres user=smith',
	$node->host, $node->port);
my ($out, $err) = ('', '');
my $ran = eval {
	IPC::Run::run([ $sqlsmith, "--target=$conninfo", "--max-queries=$queries",
			'--seed=42', '--verbose' ],
		'>' => \$out, '2>' => \$err, IPC::Run::timeout(900));
	1;
};
my $status = $ran ? $? >> 8 : "none ($@)";
note substr($err // '', -2000);
is($status, 0, 'sqlsmith exited with status 0');
# --verbose prints "queries: N" every 100 queries and once more when
# --max-queries stops it
my @counts = ($err // '') =~ /^queries: (\d+)$/mg;
my $done = @counts ? $counts[-1] : 0;
cmp_ok($done, '>=', $queries, "sqlsmith reports $done queries run (wanted $queries)");

my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal/, "no backend died of a signal in $queries queries");
ok($node->safe_psql('postgres', 'SELECT 1') eq '1', 'the server is up');
is($node->safe_psql('postgres', q{SELECT count(*) FROM order_engine.stock_audit() WHERE NOT ok}),
	'0', 'stock books still balance');
$node->stop;
done_testing();
