# Range fetches and snowflake renewals against an open ALTER SEQUENCE
# (issue 11, item 10).  A fetch waits for the tag's sequence on a lock the
# deadlock detector sees, holding no LWLock:
#  - a caller waiting for a fetch gives in to pg_cancel_backend;
#  - the session that holds the sequence locked can still draw ids while
#    another caller waits for the fetch (no undetectable LWLock cycle);
#  - a real cycle (sequence one way, a table the other) ends in 40P01;
#  - snowflake_id() with snowflake_hwm locked the same way does not hang.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use OrderEngineTest;

# every next_id fetches a range of one id
my $node = oe_node('ids_locks', conf => "order_engine.id_max_step = 1\n"
	  . "order_engine.id_prefetch_percent = 100\ndeadlock_timeout = 200ms\n");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION order_engine;
	SELECT order_engine.create_id_tag('lk', 1, 1);
	SELECT order_engine.next_id('lk');
	CREATE TABLE x (i int)});
my $seq = $node->safe_psql('postgres', q{SELECT seq FROM order_engine.id_tags WHERE biz_tag = 'lk'});
my $epoch_ms = 1704067200000;

sub session
{
	my $s = $node->background_psql('postgres', on_error_stop => 0);
	$s->{pid} = $s->query_safe('SELECT pg_backend_pid()');
	$s->{n} = 0;
	return $s;
}

# send a statement without waiting for it
sub send_sql
{
	my ($s, $sql) = @_;
	my $tag = 'DONE_' . $s->{pid} . '_' . ++$s->{n};
	$s->{stdout} = $s->{stderr} = '';
	$s->{stdin} .= "$sql\n;\n\\echo '$tag'\n\\warn '$tag'\n";
	$s->{run}->pump_nb;
	$s->{tag} = $tag;
	return;
}

# wait up to $secs for the last statement sent; true when it finished
sub finished
{
	my ($s, $secs) = @_;
	my $deadline = time() + $secs;
	while (time() < $deadline)
	{
		$s->{run}->pump_nb;
		return 1 if $s->{stdout} =~ /$s->{tag}/ && $s->{stderr} =~ /$s->{tag}/;
		usleep(50_000);
	}
	return 0;
}

# a statement through psql's usual path, after whatever send_sql left behind
sub run_sql
{
	my ($s, $safe, $sql) = @_;
	$s->{stdout} = $s->{stderr} = '';
	return $safe ? $s->query_safe($sql) : $s->query($sql);
}

sub waits_on_lock
{
	my $s = shift;
	return wait_for($node,
		"SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $s->{pid}", 't', 30);
}

# end a statement that may be stuck: cancel, then terminate; report whether
# it ended within the deadlines
sub cancel_until_finished
{
	my ($s, $secs) = @_;
	return 1 if finished($s, $secs);
	$node->safe_psql('postgres', "SELECT pg_cancel_backend($s->{pid})");
	return 1 if finished($s, 10);
	$node->safe_psql('postgres', "SELECT pg_terminate_backend($s->{pid})");
	return 0;
}

my $a = session();
my $b = session();

# ---- a waiting fetch gives in to cancel ------------------------------------------
run_sql($a, 1, "BEGIN; ALTER SEQUENCE $seq INCREMENT BY 1");
send_sql($b, q{SELECT order_engine.next_id('lk')});
ok(waits_on_lock($b), 'a fetch waits for the sequence on a heavyweight lock');
$node->safe_psql('postgres', "SELECT pg_cancel_backend($b->{pid})");
ok(finished($b, 20), 'the waiting fetch gives in to pg_cancel_backend');
like($b->{stderr}, qr/canceling statement/, 'with a cancel error');

# ---- the lock holder draws while another caller waits ------------------------------
send_sql($b, q{SELECT order_engine.next_id('lk')});
ok(waits_on_lock($b), 'another fetch waits again');
send_sql($a, q{SELECT order_engine.next_id('lk')});
my $a_done = cancel_until_finished($a, 20);
ok($a_done, 'the session holding ALTER SEQUENCE is not stuck behind the waiting fetch');
like($a->{stdout}, qr/^\d+$/m, 'and gets its id') if $a_done;
if ($a_done)
{
	run_sql($a, 0, 'COMMIT');
	ok(finished($b, 20), 'the waiting fetch goes on once the ALTER SEQUENCE commits');
	like($b->{stdout}, qr/^\d+$/m, 'and gets its id');
}

# ---- a real cycle is resolved by the deadlock detector ------------------------------
if ($a_done)
{
	run_sql($a, 1, "BEGIN; ALTER SEQUENCE $seq INCREMENT BY 1");
	run_sql($b, 1, 'BEGIN; LOCK TABLE x IN ACCESS EXCLUSIVE MODE');
	send_sql($b, q{SELECT order_engine.next_id('lk')});
	ok(waits_on_lock($b), 'a fetch waits for the sequence inside a transaction holding a table');
	send_sql($a, 'LOCK TABLE x IN ACCESS EXCLUSIVE MODE');
	my $ok_a = finished($a, 30);
	my $ok_b = finished($b, 30);
	ok($ok_a && $ok_b, 'both ends of the cycle return');
	ok(($a->{stderr} . $b->{stderr}) =~ /deadlock detected/, 'one of them with deadlock detected (40P01)');
	run_sql($a, 0, 'ROLLBACK');
	run_sql($b, 0, 'ROLLBACK');
}

# ---- snowflake_id with snowflake_hwm held by ALTER SEQUENCE --------------------------
if ($a_done)
{
	run_sql($a, 1, 'SELECT order_engine.snowflake_id()');
	run_sql($b, 1, 'SELECT order_engine.snowflake_id()');
	ok(wait_for($node, "SELECT last_value < (extract(epoch FROM clock_timestamp()) * 1000)::bigint - $epoch_ms FROM order_engine.snowflake_hwm"),
		'the snowflake lease ran out');
	run_sql($a, 1, 'BEGIN; ALTER SEQUENCE order_engine.snowflake_hwm INCREMENT BY 1');
	send_sql($b, 'SELECT order_engine.snowflake_id()');
	my $b_done = cancel_until_finished($b, 20);
	ok($b_done, 'snowflake_id does not hang behind an ALTER SEQUENCE of its mark');
	send_sql($a, 'SELECT order_engine.snowflake_id()');
	ok(cancel_until_finished($a, 20), 'nor in the session that holds it');
	like($a->{stdout}, qr/^\d+$/m, 'which gets an id');
	run_sql($a, 0, 'COMMIT');
}

$node->stop('immediate');
done_testing();
