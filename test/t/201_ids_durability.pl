# IDs across concurrency, rollbacks, crashes and restarts:
#  - 8 backends x 100k next_id: no duplicates, increasing per backend;
#  - 1,000 caller transactions that fetch ranges and roll back: nothing reused;
#  - kill -9 of the postmaster (and its children) under a 16-client next_id
#    load, restart, go on: no id repeats across the crash;
#  - snowflake high-water mark ahead of the clock after a restart: refuse
#    (far ahead) or wait (within order_engine.snowflake_max_wait), never repeat.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use OrderEngineTest;

# small ranges so that every phase fetches many of them
my $node = oe_node('ids', conf => "order_engine.id_max_step = 50\nmax_connections = 60\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION order_engine');

# ---- 8 backends x 100k ------------------------------------------------------
$node->safe_psql('postgres', q{
	SELECT order_engine.create_id_tag('conc', 1, 10);
	CREATE UNLOGGED TABLE seen8 (b int, i int, id bigint)});
my @h;
for my $b (1 .. 8)
{
	push @h, IPC::Run::start(
		[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'), '-c',
		  "INSERT INTO seen8 SELECT $b, i, order_engine.next_id('conc') FROM generate_series(1, 100000) i" ],
		'>', \my $out, '2>', \my $err);
}
my $all_ok = 1;
$_->finish or $all_ok = 0 for @h;
ok($all_ok, '8 backends drew 100k ids each');
is($node->safe_psql('postgres', 'SELECT count(*), count(DISTINCT id) FROM seen8'),
	'800000|800000', '800,000 ids, no duplicates');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (SELECT id <= lag(id) OVER (PARTITION BY b ORDER BY i) AS back FROM seen8) s
	 WHERE back}), '0', 'ids increase within each backend');

# ---- 1,000 rolled-back caller transactions -----------------------------------
# next_ids of 60 > id_max_step, so every transaction fetches at least one range
$node->safe_psql('postgres', q{SELECT order_engine.create_id_tag('rb', 1, 10)});
my $script = join('', map { "BEGIN;\nSELECT order_engine.next_ids('rb', 60);\nROLLBACK;\n" } 1 .. 1000);
my $rolled = $node->safe_psql('postgres', $script);
my %seen;
my $dups = 0;
for my $line (split /\n/, $rolled)
{
	next unless $line =~ /^\{(.*)\}$/;
	$seen{$_}++ and $dups++ for split /,/, $1;
}
is(scalar(keys %seen), 60_000, '1,000 rolled-back transactions got 60,000 ids');
is($dups, 0, 'no id twice among them');
my @after = split /,/, ($node->safe_psql('postgres', q{SELECT order_engine.next_ids('rb', 500)}) =~ s/[{}]//gr);
is(scalar(grep { $seen{$_} } @after), 0, 'no rolled-back id is handed out again');
my ($max_rolled) = sort { $b <=> $a } keys %seen;
ok($after[0] > $max_rolled, 'allocation goes on above every rolled-back range');
ok($node->safe_psql('postgres', q{SELECT max_id FROM order_engine.id_segments WHERE biz_tag = 'rb'}) >= $after[-1],
	'the durable max_id covers every id handed out');

# ---- kill -9 under a 16-client load ------------------------------------------
$node->safe_psql('postgres', q{
	SELECT order_engine.create_id_tag('crash', 1, 10);
	CREATE TABLE seen (phase int, id bigint)});
my $bench = $node->basedir . '/crash.sql';
PostgreSQL::Test::Utils::append_to_file($bench,
	"INSERT INTO seen VALUES (:phase, order_engine.next_id('crash'));\n");
my ($bout, $berr);
my $load = IPC::Run::start(
	[ 'pgbench', '-n', '-c', '16', '-j', '2', '-T', '60', '-D', 'phase=1', '-f', $bench,
	  '-h', $node->host, '-p', $node->port, 'postgres' ],
	'>', \$bout, '2>', \$berr);
ok(wait_for($node, 'SELECT count(*) > 5000 FROM seen', 't', 60), 'the load is running');

# every process of the server dies at once, as in a power cut of the instance
my $pm = $node->{_pid};
my @children;
for my $stat (glob '/proc/[0-9]*/stat')
{
	open(my $fh, '<', $stat) or next;
	my $line = <$fh> // '';
	close $fh;
	push @children, $1 if $line =~ /^(\d+) \(.*\) \S (\d+) / && $2 == $pm;
}
$node->kill9;
kill 'KILL', @children;
$load->finish;    # pgbench ends with lost connections
for (1 .. 100)
{
	last unless grep { kill 0, $_ } @children;
	select(undef, undef, undef, 0.1);
}
$node->start;
my ($n1, $max1) = split /\|/, $node->safe_psql('postgres',
	'SELECT count(*), max(id) FROM seen WHERE phase = 1');
ok($n1 > 0, "$n1 committed ids survived the crash");

IPC::Run::run(
	[ 'pgbench', '-n', '-c', '16', '-j', '2', '-t', '300', '-D', 'phase=2', '-f', $bench,
	  '-h', $node->host, '-p', $node->port, 'postgres' ],
	'>', \$bout, '2>', \$berr) or diag($berr);
is($node->safe_psql('postgres', 'SELECT count(*) FROM seen WHERE phase = 2'), '4800',
	'16 clients drew 4,800 ids after the restart');
is($node->safe_psql('postgres', 'SELECT count(*) - count(DISTINCT id) FROM seen'), '0',
	'no id repeats across the crash');
ok($node->safe_psql('postgres', 'SELECT min(id) FROM seen WHERE phase = 2') > $max1,
	'after the crash, allocation resumes beyond every id handed out before');

# ---- snowflake high-water mark ahead of the clock -----------------------------
my $now_ms = q{((extract(epoch FROM clock_timestamp()) * 1000)::bigint - 1704067200000)};
my $sf_before = $node->safe_psql('postgres', 'SELECT order_engine.snowflake_id()');

# a mark one minute ahead: the clock looks set back by a minute after restart
$node->safe_psql('postgres', "SELECT setval('order_engine.snowflake_hwm', $now_ms + 60000)");
$node->restart;
my ($ret, $out, $err) = $node->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT order_engine.snowflake_id()");
isnt($ret, 0, 'a high-water mark far ahead of the clock: refused');
like($err, qr/ERROR:  OE011: clock moved backwards by \d+ ms/, 'with OE011 and the distance');

# a mark 1.5 s ahead with snowflake_max_wait = 5 s: it waits, then goes on above the mark
$node->append_conf('postgresql.conf', 'order_engine.snowflake_max_wait = 5000');
my $mark = $node->safe_psql('postgres', "SELECT setval('order_engine.snowflake_hwm', $now_ms + 1500)");
$node->restart;
my $sf_after = $node->safe_psql('postgres', 'SELECT order_engine.snowflake_id()');
ok(($sf_after >> 22) > $mark, 'after waiting, the id is above the persisted mark');
ok($sf_after > $sf_before, 'and above every id before the restarts');

$node->stop;

# ---- without shared_preload_libraries: 55000 with a hint ------------------------
my $plain = oe_node('ids_no_preload', no_preload => 1);
$plain->start;
$plain->safe_psql('postgres', 'CREATE EXTENSION order_engine');
for my $call ("next_id('order_no')", "next_ids('order_no', 2)", 'next_order_no(1)', 'snowflake_id()')
{
	($ret, $out, $err) = $plain->psql('postgres',
		"\\set VERBOSITY verbose\nSELECT order_engine.$call");
	like($err, qr/ERROR:  55000: order_engine must be loaded via shared_preload_libraries.*HINT:  Add order_engine/s,
		"$call without preload: 55000 with a hint");
}
$plain->stop;
done_testing();
