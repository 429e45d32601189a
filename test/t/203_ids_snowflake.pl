# snowflake_id() across databases and extension re-creation (issue 11,
# items 6 and 9):
#  - two databases of one server drawing snowflake ids at the same time
#    never get the same id (one generator per server);
#  - the server-wide high-water mark covers every id handed out in any
#    database, and a restart starts above it whichever database asks first;
#  - a session whose extension was dropped and created again by another
#    session, in the middle of its transaction, gets an id or a clean error
#    within a deadline, and never spins beyond the reach of cancel.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use OrderEngineTest;

my $epoch_ms = 1704067200000;
my $node = oe_node('ids_snowflake', conf => "order_engine.snowflake_max_wait = 5000\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION order_engine');
$node->safe_psql('postgres', 'CREATE DATABASE db2');
$node->safe_psql('db2', 'CREATE EXTENSION order_engine');

# ---- two databases at once ----------------------------------------------------
sub draw_both
{
	my $n = shift;
	my (%out, @h);
	for my $db ('postgres', 'db2')
	{
		$out{$db} = '';
		push @h, IPC::Run::start(
			[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr($db), '-c',
			  "COPY (SELECT order_engine.snowflake_id() FROM generate_series(1, $n)) TO STDOUT" ],
			'>', \$out{$db}, '2>', \my $err);
	}
	my $ok = 1;
	$_->finish or $ok = 0 for @h;
	return ($ok, [ split /\n/, $out{postgres} ], [ split /\n/, $out{db2} ]);
}

my ($ok, $ids1, $ids2, $overlap);
for my $try (1 .. 5)
{
	($ok, $ids1, $ids2) = draw_both(200_000);
	last unless $ok;
	# the test proves something only if both drew in the same milliseconds
	my %ms_a = map { ($_ >> 22) => 1 } @$ids1;
	$overlap = grep { $ms_a{ $_ >> 22 } } @$ids2;
	last if $overlap > 0;
}
ok($ok, 'two databases drew 200k snowflake ids each at the same time');
ok($overlap > 0, "their draws overlapped in time ($overlap ids in shared milliseconds)");
my %seen;
my $dups = 0;
$seen{$_}++ and $dups++ for (@$ids1, @$ids2);
is($dups, 0, 'no snowflake id handed out in both databases');

# ---- the server-wide mark -----------------------------------------------------
my $hwm_file = $node->data_dir . '/order_engine_snowflake.hwm';
ok(-f $hwm_file, 'the server-wide high-water mark is in the data directory');
my ($max_ms) = sort { $b <=> $a } map { $_ >> 22 } (@$ids1, @$ids2);
my ($mark) = -f $hwm_file ? (slurp_file($hwm_file) =~ /(\d+)/) : ();
ok(defined $mark && $mark >= $max_ms, 'it covers every id handed out in either database');

# a clock 1.5 s behind the mark (as after setting it back) at the restart:
# the first id, asked for in the database that did not write the mark last,
# is above the mark
$node->stop;
my $ahead = int(time() * 1000) - $epoch_ms + 1500;
open(my $fh, '>', $hwm_file) or die $!;
print $fh "$ahead\n";
close($fh);
$node->start;
my $first = $node->safe_psql('db2', 'SELECT order_engine.snowflake_id()');
ok(($first >> 22) > $ahead, 'after a restart, ids start above the server-wide mark');

# ---- DROP/CREATE EXTENSION under a session's feet -----------------------------
my $sa = $node->background_psql('postgres', on_error_stop => 0);
my $pid_a = $sa->query_safe('SELECT pg_backend_pid()');
$sa->query_safe('SELECT order_engine.snowflake_id()');
# same transaction as the next call, so the session does not look again
$sa->query_safe('BEGIN');
$sa->query_safe('SELECT order_engine.snowflake_id()');
$node->safe_psql('postgres', q{
	DROP EXTENSION order_engine;
	CREATE EXTENSION order_engine;
	SELECT order_engine.snowflake_id()});
# let the lease the other session took run out, so the next call renews
ok(wait_for($node, "SELECT last_value < (extract(epoch FROM clock_timestamp()) * 1000)::bigint - $epoch_ms FROM order_engine.snowflake_hwm"),
	'the high-water mark lease ran out');

$sa->{stdin} .= "SELECT order_engine.snowflake_id() AS stale_call;\n\\echo 'STALE_DONE'\n\\warn 'STALE_DONE'\n";
my $done = sub {
	my $secs = shift;
	my $deadline = time() + $secs;
	while (time() < $deadline)
	{
		$sa->{run}->pump_nb;
		return 1 if $sa->{stdout} =~ /STALE_DONE/ && $sa->{stderr} =~ /STALE_DONE/;
		usleep(50_000);
	}
	return 0;
};
my $finished = $done->(20);
unless ($finished)
{
	diag('still running after 20 s; cancelling');
	$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid_a)");
	$finished = $done->(10);
}
ok($finished, 'a call on a stale attachment returns (or gives in to cancel) within a deadline');
unlike($sa->{stderr}, qr/XX000|internal/i, 'and raises no internal error') if $finished;
note("stale call: stdout <$sa->{stdout}> stderr <$sa->{stderr}>");
if ($finished)
{
	$sa->{stdout} = $sa->{stderr} = '';
	$sa->query('ROLLBACK');
	$sa->quit;
	is($node->safe_psql('postgres', 'SELECT order_engine.snowflake_id() > ' . $first), 't',
		'the session goes on after it');
}

$node->stop('immediate');
done_testing();
