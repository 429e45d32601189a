# Shared-memory id slots of dropped databases are reclaimed (issue 11,
# item 8): more databases than order_engine.max_id_tags are created, use
# next_id() and are dropped one after the other; next_id() keeps working,
# in a new database and in one that was there all along.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use OrderEngineTest;

# the default table of 128 slots, and a few more databases than that
my $ndb = 140;
my $node = oe_node('ids_slots');
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION order_engine;
	SELECT order_engine.create_id_tag('t');
	SELECT order_engine.next_id('t')});
$node->safe_psql('postgres', 'CREATE DATABASE tmpl');
$node->safe_psql('tmpl', q{
	CREATE EXTENSION order_engine;
	SELECT order_engine.create_id_tag('t')});

# one psql: create, use, drop, for each database in turn
my $script = '';
for my $i (1 .. $ndb)
{
	$script .= "CREATE DATABASE d$i TEMPLATE tmpl;\n\\c d$i\n"
	  . "SELECT order_engine.next_id('t') AS id_in_d$i;\n"
	  . "\\c postgres\nDROP DATABASE d$i WITH (FORCE);\n";
}
my ($rc, $out, $err) = $node->psql('postgres', $script, on_error_stop => 1);
is($rc, 0, "$ndb databases created, used and dropped") or diag($err);
is(scalar(() = $out =~ /^1$/mg), $ndb, 'each of them got its first id');

$node->safe_psql('postgres', 'CREATE DATABASE fresh TEMPLATE tmpl');
($rc, $out, $err) = $node->psql('fresh', q{SELECT order_engine.next_id('t')});
is($out, '1', 'next_id works in a database created after them') or diag($err);
($rc, $out, $err) = $node->psql('postgres', q{SELECT order_engine.next_id('t') > 1});
is($out, 't', 'and in a database that was there all along') or diag($err);

$node->stop;
done_testing();
