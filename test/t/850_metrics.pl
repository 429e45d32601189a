# Metrics: Debian's prometheus-postgres-exporter with our queries file
# (contrib/postgres_exporter/queries.yaml) against a real server; scrape
# /metrics with curl and check every series and its value.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use IO::Socket::INET;
use OrderEngineTest;

my $exporter = '/usr/bin/prometheus-postgres-exporter';
BAIL_OUT("$exporter is missing (scripts/lib.sh installs prometheus-postgres-exporter)")
  unless -x $exporter;
my $curl = '/usr/bin/curl';
BAIL_OUT("$curl is missing (scripts/lib.sh installs curl)") unless -x $curl;

my $node = oe_node('metrics', conf => "order_engine.naptime = 200\n");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION order_engine;
	CREATE ROLE exporter LOGIN IN ROLE order_engine_admin;
	SELECT order_engine.restock(1, 100);
	SELECT order_engine.restock(2, 1000);
	SELECT order_engine.set_buckets(2, 4);
	SELECT order_engine.create_id_tag('metrics_tag');
	SELECT order_engine.next_id('metrics_tag');
	SELECT order_engine.set_price(1, 5);
	SELECT order_engine.reserve(101, '{2}', '{3}', '1 hour', 1);
	SELECT order_engine.reserve(102, '{2}', '{4}', '1 hour', 1);
	SELECT order_engine.confirm(102);
	SELECT order_engine.place_order(order_engine.next_order_no(7), 7, 9, '[{"sku_id":1,"qty":2}]');
});
# the worker has run each job at least once
ok(wait_for($node, q{SELECT pg_catalog.count(*) = 5 FROM order_engine.worker_status WHERE last_run_at IS NOT NULL}),
	'worker ran every job');

# a free TCP port on loopback for the exporter
my $sock = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp');
my $port = $sock->sockport;
close $sock;

my $host = $node->host;
my $pgport = $node->port;
my $queries = 'contrib/postgres_exporter/queries.yaml';    # prove runs in the source tree
ok(-f $queries, 'queries file shipped');
my $log = "${PostgreSQL::Test::Utils::tmp_check}/exporter.log";
my $pid = fork();
if ($pid == 0)
{
	$ENV{DATA_SOURCE_NAME} = "postgresql://exporter\@:$pgport/postgres?host=$host&sslmode=disable";
	open STDOUT, '>', $log;
	open STDERR, '>&', \*STDOUT;
	exec $exporter, "--web.listen-address=127.0.0.1:$port",
	  "--extend.query-path=$queries", '--disable-default-metrics',
	  '--disable-settings-metrics';
	die "exec: $!";
}

my $metrics = '';
my $deadline = time() + 60;
while (time() < $deadline)
{
	$metrics = `$curl -s http://127.0.0.1:$port/metrics`;
	last if $metrics =~ /order_engine_outbox_backlog/;
	usleep(200_000);
}
kill 'TERM', $pid;
waitpid($pid, 0);
diag(PostgreSQL::Test::Utils::slurp_file($log)) unless $metrics =~ /order_engine_/;

# value of one series, by name and label text
sub series
{
	my ($name, $labels) = @_;
	for my $line (split /\n/, $metrics)
	{
		next if $line =~ /^#/;
		next unless $line =~ /^\Q$name\E(\{[^}]*\})?\s+(\S+)$/;
		my ($l, $v) = ($1 // '', $2);
		return $v if !defined $labels || index($l, $labels) >= 0;
	}
	return undef;
}

for my $job (qw(release_expired close_unpaid reap_expired_keys archive_orders fold_escrow))
{
	ok(defined series('order_engine_worker_lag_seconds', qq{job="$job"}), "worker lag of $job");
	ok(defined series('order_engine_worker_rows', qq{job="$job"}), "worker rows of $job");
	is(series('order_engine_worker_errors', qq{job="$job"}), '0', "no errors of $job");
	is(series('order_engine_worker_up', qq{job="$job"}), '1', "worker up for $job");
	is(series('order_engine_quarantine_rows', qq{job="$job"}), '0', "quarantine of $job empty");
}
is(series('order_engine_holds_holds', 'state="held"'), '2', 'two held holds (one reserve, one order line)');
is(series('order_engine_holds_units', 'state="held"'), '5', 'five units held');
is(series('order_engine_holds_holds', 'state="confirmed"'), '1', 'one confirmed hold');
is(series('order_engine_holds_holds', 'state="released"'), '0', 'no released hold');
my $next = series('order_engine_next_expiry_seconds');
ok(defined $next && $next > 0 && $next <= 3600, "next expiry within the hour ($next)");
is(series('order_engine_next_expiry_overdue_holds'), '0', 'nothing overdue');
is(series('order_engine_sku_available', 'sku_id="2"'), '993', 'bucketed SKU available');
is(series('order_engine_sku_held', 'sku_id="2"'), '3', 'bucketed SKU held');
is(series('order_engine_sku_sold', 'sku_id="2"'), '4', 'bucketed SKU sold');
is(series('order_engine_sku_nbuckets', 'sku_id="2"'), '4', 'bucketed SKU buckets');
ok(!defined series('order_engine_sku_available', 'sku_id="1"'), 'a plain SKU is not exported');
my $left = series('order_engine_id_segment_ids_left', 'tag="metrics_tag"');
ok(defined $left && $left > 0, "ids left for the tag ($left)");
is(series('order_engine_outbox_backlog'), '1', 'one event waiting in the outbox');

$node->stop;
done_testing();
