# Pooled connections: Debian's pgbouncer in transaction pooling mode (a
# pool of 3 server connections) in front of a real server, and a psycopg2
# application with 12 threads (test/python/pooled_app.py) that runs
# token -> claim -> place -> payment outside any transaction -> pay ->
# finish with the claim token, every statement on whatever connection the
# pool gives it, then retries and replays.  Expect no error, claims
# finished on another server connection than the one that made them, and
# clean audits.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(usleep);
use OrderEngineTest;

my $pgbouncer = '/usr/sbin/pgbouncer';
BAIL_OUT("$pgbouncer is missing (scripts/lib.sh installs pgbouncer)") unless -x $pgbouncer;
system('python3', '-c', 'import psycopg2') == 0
  or BAIL_OUT('python3-psycopg2 is missing (scripts/lib.sh installs it)');

my $threads = 12;
my $checkouts = 40;

my $node = oe_node('pool');
$node->start;
$node->safe_psql('postgres', qq{
	CREATE EXTENSION order_engine;
	CREATE ROLE shop_app LOGIN IN ROLE order_engine_app;
	SELECT order_engine.restock(1, 100000);
	SELECT order_engine.set_price(1, 10);
});

# pgbouncer: transaction pooling, 3 server connections for 12 clients
my $dir = PostgreSQL::Test::Utils::tempdir('pgbouncer');
my $sock = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp');
my $port = $sock->sockport;
close $sock;
my $host = $node->host;
my $pgport = $node->port;
PostgreSQL::Test::Utils::append_to_file("$dir/pgbouncer.ini", <<"EOF");
[databases]
shop = host=$host port=$pgport dbname=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = transaction
default_pool_size = 3
max_client_conn = 100
server_reset_query =
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
EOF
PostgreSQL::Test::Utils::append_to_file("$dir/userlist.txt", qq{"shop_app" ""\n});
system($pgbouncer, '-d', "$dir/pgbouncer.ini") == 0 or BAIL_OUT('pgbouncer did not start');
my $up = 0;
for (1 .. 100)
{
	if (IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp'))
	{
		$up = 1;
		last;
	}
	usleep(100_000);
}
ok($up, 'pgbouncer listens');

my ($out, $err);
my $ok = IPC::Run::run(
	[ 'python3', 'test/python/pooled_app.py',
	  "host=127.0.0.1 port=$port dbname=shop user=shop_app", $threads, $checkouts ],
	'>', \$out, '2>', \$err);
note "app: $out";
diag "app errors: $err" if $err;
ok($ok, 'the pooled app finished without an error');
my ($checkouts_done) = $out =~ /"checkouts": (\d+)/;
my ($errors) = $out =~ /"errors": (\d+)/;
my ($elsewhere) = $out =~ /"finished_elsewhere": (\d+)/;
my ($backends) = $out =~ /"server_backends": (\d+)/;
is($checkouts_done, $threads * $checkouts, 'every checkout completed');
is($errors, 0, 'no client saw an error');
cmp_ok($elsewhere // 0, '>', 0,
	"claims finished on another server connection than the one that claimed them ($elsewhere)");
cmp_ok($backends // 0, '<=', 3, 'the pool really pooled (at most 3 server connections)');

is($node->safe_psql('postgres', q{SELECT pg_catalog.count(*) FROM order_engine.stock_audit() WHERE NOT ok}),
	'0', 'stock_audit clean');
is($node->safe_psql('postgres',
		q{SELECT pg_catalog.count(*) FROM order_engine.orders WHERE status = 'paid'}),
	$threads * $checkouts, 'every order paid once');
is($node->safe_psql('postgres',
		q{SELECT pg_catalog.count(*) FROM order_engine.payments}),
	$threads * $checkouts, 'one payment row per order (retries were idempotent)');
is($node->safe_psql('postgres',
		q{SELECT pg_catalog.count(*) FROM order_engine.idempotency_keys WHERE state <> 'completed'}),
	'0', 'every claim was finished');
is($node->safe_psql('postgres',
		q{SELECT pg_catalog.count(*) FROM order_engine.stock_hold WHERE state <> 'confirmed'}),
	'0', 'every hold of a paid order confirmed');

my $pid = PostgreSQL::Test::Utils::slurp_file("$dir/pgbouncer.pid");
chomp $pid;
kill 'TERM', $pid;
$node->stop;
done_testing();
