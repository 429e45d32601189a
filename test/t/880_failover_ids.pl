# Failover to a synchronous standby: clients draw next_id, next_order_no
# and snowflake_id from the primary and record every id the moment they
# receive it; the primary is killed (-9) at a random moment, the standby is
# promoted and the load goes on there.  No id may be handed out twice
# across the failover, and the worker must serve the new primary.
#
# Why it holds: with synchronous_standby_names set, a range fetch waits
# for the standby's flush of its setval() record before any id of it is
# handed out (src/id_store.c), whatever the client's synchronous_commit.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use OrderEngineTest;

my $clients = 4;
my $calls = 20000;

my $primary = oe_node('primary', init => { allows_streaming => 1 },
	conf => "order_engine.id_max_step = 40\n");
$primary->start;
$primary->safe_psql('postgres', q{
	CREATE EXTENSION order_engine;
	SELECT order_engine.create_id_tag('fo', 1, 10);
});
$primary->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('standby1');
$standby->init_from_backup($primary, 'b', has_streaming => 1);
$standby->start;
# synchronous only once the standby is there (every commit would wait)
$primary->safe_psql('postgres', q{ALTER SYSTEM SET synchronous_standby_names = 'standby1'});
$primary->reload;
ok(wait_for($primary, q{SELECT sync_state = 'sync' FROM pg_stat_replication WHERE application_name = 'standby1'}),
	'the standby is synchronous');

# clients in autocommit mode, some with synchronous_commit off (the wait
# for the standby must not depend on it); each prints what it receives
my $sql = "SELECT 'got', order_engine.next_id('fo'), order_engine.next_order_no(7), order_engine.snowflake_id();\n" x $calls;
sub start_clients
{
	my ($node, $tag) = @_;
	my @h;
	for my $c (1 .. $clients)
	{
		my $out = '';
		my $pre = $c % 2 ? "SET synchronous_commit = off;\n" : '';
		my $in = $pre . $sql;
		my $h = IPC::Run::start([ 'psql', '-X', '-A', '-t', '-d', $node->connstr('postgres') ],
			'<', \$in, '>', \$out, '2>', \my $err);
		push @h, { h => $h, out => \$out, name => "$tag$c" };
	}
	return @h;
}

# how many answers the clients have received so far
sub received
{
	my $n = 0;
	$n += () = ${ $_->{out} } =~ /got/g for @_;
	return $n;
}

my @first = start_clients($primary, 'p');
# let them draw until they have 200 answers (a loaded machine may take a
# while to start them: a wait for the condition, not a window of seconds)
# and then for a random 0 to 2 s more
my $deadline = time() + 120;
$_->{h}->pump_nb for @first;
while (received(@first) < 200 && time() < $deadline) { $_->{h}->pump_nb for @first; usleep(20_000); }
my $until = time() + int(rand(3));
while (time() < $until) { $_->{h}->pump_nb for @first; usleep(20_000); }
# then cut the standby off (its WAL receiver stopped) while the clients go
# on, so that anything handed out from now on that needed a new range was
# never on the standby; then kill the primary and let the standby go on
my $walrcv = $standby->safe_psql('postgres', 'SELECT pid FROM pg_stat_wal_receiver');
ok($walrcv =~ /^\d+$/, "the standby's WAL receiver ($walrcv)");
kill 'STOP', $walrcv;
$until = time() + 2;
while (time() < $until) { $_->{h}->pump_nb for @first; usleep(20_000); }
kill9_all($primary);
kill 'CONT', $walrcv;
for my $c (@first)
{
	eval { $c->{h}->finish; };
}
$standby->promote;
ok(wait_for($standby, q{SELECT NOT pg_is_in_recovery()}), 'the standby was promoted');

my @second = start_clients($standby, 's');
$deadline = time() + 120;
while (time() < $deadline && grep { $_->{h}->pumpable } @second)
{
	$_->{h}->pump_nb for @second;
	last if (() = ${ $second[0]{out} } =~ /got/g) >= 2000;
	usleep(20_000);
}
$_->{h}->kill_kill for @second;

my (%id, %no, %sf, $n_before, $n_after, %dupkind);
my $dups = 0;
for my $c (@first, @second)
{
	# a client killed in the middle of a line leaves it cut short: only
	# whole lines count
	my @lines = split /\n/, ${ $c->{out} }, -1;
	pop @lines;
	for my $line (@lines)
	{
		my ($i, $o, $f) = $line =~ /^got\|(\d+)\|(\d+)\|(\d+)$/ or next;
		my $who = $c->{name};
		substr($who, 0, 1) eq 'p' ? $n_before++ : $n_after++;
		if ($id{$i}) { $dups++; $dupkind{"next_id $i ($id{$i} and $who)"}++; }
		if ($no{$o}) { $dups++; $dupkind{"next_order_no $o ($no{$o} and $who)"}++; }
		if ($sf{$f}) { $dups++; $dupkind{"snowflake_id $f ($sf{$f} and $who)"}++; }
		$id{$i} //= $who; $no{$o} //= $who; $sf{$f} //= $who;
	}
}
cmp_ok($n_before // 0, '>', 100, "ids drawn from the primary before the kill ($n_before)");
cmp_ok($n_after // 0, '>', 100, "ids drawn from the promoted standby ($n_after)");
is($dups, 0, 'no next_id, next_order_no or snowflake_id handed out twice across the failover')
  or diag(join("\n", (sort keys %dupkind)[0 .. 9]));

ok(wait_for($standby, q{SELECT pg_catalog.count(*) > 0 FROM order_engine.worker_status WHERE pid IS NOT NULL AND runs > 0}),
	'the worker serves the new primary');

$standby->stop;
done_testing();
