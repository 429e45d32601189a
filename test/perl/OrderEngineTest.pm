# OrderEngineTest: helpers the TAP tests (test/t/*.pl) share.
package OrderEngineTest;

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use Exporter 'import';

our @EXPORT = qw(oe_node wait_for poll_value kill9_all wait_for_log);

# A node with the suite's settings (test/postgresql.conf); extra settings
# are appended.  The worker serves database "postgres" unless told.
# install_path runs the node from another installation's binaries.
sub oe_node
{
	my ($name, %opts) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name,
		$opts{install_path} ? (install_path => $opts{install_path}) : ());
	$node->init(%{ $opts{init} // {} });
	$node->append_conf('postgresql.conf',
		PostgreSQL::Test::Utils::slurp_file($ENV{OE_TEST_CONF}))
	  unless $opts{no_preload};
	$node->append_conf('postgresql.conf', "order_engine.database = 'postgres'")
	  unless $opts{no_preload};
	$node->append_conf('postgresql.conf', $opts{conf}) if $opts{conf};
	return $node;
}

# kill -9 the postmaster and every child it has, and wait until all are
# gone, so that the node can be started again at once (a crash of the
# whole server, not only of one backend).
sub kill9_all
{
	my ($node) = @_;
	my $pid = $node->{_pid};
	my @children = split /\s+/, `pgrep -P $pid`;
	kill 'KILL', $pid, grep { /^\d+$/ } @children;
	for (1 .. 100)
	{
		last unless grep { kill 0, $_ } ($pid, grep { /^\d+$/ } @children);
		usleep(50_000);
	}
	$node->{_pid} = undef;
	return;
}

# Poll $sql until it returns $want (default 't'), at most $secs seconds.
sub wait_for
{
	my ($node, $sql, $want, $secs) = @_;
	$want //= 't';
	$secs //= 30;
	my $deadline = time() + $secs;
	while (time() < $deadline)
	{
		my $got = $node->safe_psql('postgres', $sql);
		return 1 if $got eq $want;
		usleep(50_000);
	}
	return 0;
}

# Poll $sql until it returns anything but '' (or $secs pass); return it.
sub poll_value
{
	my ($node, $sql, $secs) = @_;
	$secs //= 30;
	my $deadline = time() + $secs;
	while (time() < $deadline)
	{
		my $got = $node->safe_psql('postgres', $sql);
		return $got if $got ne '';
		usleep(50_000);
	}
	return '';
}

# Wait until the node's server log matches $re, at most $secs seconds.
sub wait_for_log
{
	my ($node, $re, $secs) = @_;
	$secs //= 30;
	my $deadline = time() + $secs;
	while (time() < $deadline)
	{
		return 1 if PostgreSQL::Test::Utils::slurp_file($node->logfile) =~ $re;
		usleep(100_000);
	}
	return 0;
}

1;
