# Crash loop (test/chaos.sh) with a few rounds: mixed 16-client load,
# kill -9 of the whole server at a random moment, invariants checked after
# every restart.  By hand: test/chaos.sh [rounds] (20 by default).
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use File::Basename qw(dirname);
use Cwd qw(abs_path);

my $script = abs_path(dirname(__FILE__) . '/../chaos.sh');
my $rounds = $ENV{OE_CHAOS_ROUNDS} // 3;
my $dir = PostgreSQL::Test::Utils::tempdir('chaos');

my ($stdout, $stderr);
my $ok = IPC::Run::run([ 'bash', $script, $rounds ],
	'>' => \$stdout, '2>' => \$stderr,
	init => sub { $ENV{OE_CHAOS_DIR} = $dir; $ENV{OE_CHAOS_PORT} = 54000 + $$ % 1000; });
note $stdout;
note $stderr if $stderr;
ok($ok, "chaos: $rounds rounds of kill -9 under load, every invariant held");
like($stdout, qr/crashes survived: $rounds\b/, 'the server came back after every kill');
like($stdout, qr/failures: 0$/m, 'no check failed');
like($stdout, qr/pg_amcheck --heapallindexed: clean/, 'pg_amcheck: heap and indexes intact after the crashes');
done_testing();
