# A fresh install equals the upgrade chain.  CREATE EXTENSION order_engine
# runs order_engine--<default_version>.sql, built from
# src/sql/order_engine.sql; an installation of 0.1 reaches the same version
# through order_engine--0.1--0.2.sql ... .  Both must leave the same
# database and the same roles, so every change needs both the source and
# an upgrade script.
#
# Two servers, so that the roles the scripts make are compared too:
# "fresh" gets CREATE EXTENSION order_engine CASCADE in database "a",
# "chain" CREATE EXTENSION order_engine VERSION '0.1' and then ALTER
# EXTENSION order_engine UPDATE in database "b".  Compared, with a unified
# diff on a difference:
#   - pg_dump --schema-only --binary-upgrade, which writes every member of
#     the extension (ALTER EXTENSION ADD), its owner, privileges and
#     initial privileges (pg_init_privs), comments, dropped and attislocal
#     columns; less the lines that differ by nature: the OIDs it would
#     preserve (binary_upgrade_set_next_*, the toast tables' "WHERE oid"),
#     relfrozenxid/relminmxid, the random \restrict key, and the OIDs of
#     extconfig (compared by name below);
#   - plain pg_dump --schema-only (what a user's dump carries);
#   - pg_dumpall --roles-only (roles, memberships, role comments);
#   - the extension's row and its extconfig/extcondition pairs by name
#     (their order is the order of the pg_extension_config_dump calls,
#     which has no effect: pg_dump sorts what it dumps);
#   - pg_depend and pg_shdepend of every non-system object, described
#     (toast tables and RI triggers by their table, not their OID);
#   - pg_init_privs, described;
#   - the sequences' state and the rows the scripts leave in the tables
#     (without timestamptz columns);
#   - the settings an install leaves for the rest of its transaction
#     (SET LOCAL in a script lasts until the end of the caller's
#     transaction) and the messages it prints.
# And a third database on "chain", "c": 0.9, then orders_finished_idx built
# with CREATE INDEX CONCURRENTLY as README "Upgrades" tells an operator of
# a large orders table, then the update: it succeeds and the plain schema
# dump equals the fresh install's.
use strict;
use warnings;

use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use OrderEngineTest;

my $source = dirname(__FILE__) . '/../../src/sql/order_engine.sql';

my $fresh = oe_node('fresh');
my $chain = oe_node('chain');
$_->start for $fresh, $chain;
$fresh->safe_psql('postgres', 'CREATE DATABASE a');
$chain->safe_psql('postgres', 'CREATE DATABASE b');

my $default = $fresh->safe_psql('postgres',
	q{SELECT default_version FROM pg_available_extensions WHERE name = 'order_engine'});

# the fresh install must run the built script (without it, CREATE
# EXTENSION would walk the chain too and this test would prove nothing)
my $sharedir = $fresh->safe_psql('postgres',
	q{SELECT setting FROM pg_config WHERE name = 'SHAREDIR'});
my $script = "$sharedir/extension/order_engine--$default.sql";
ok(-f $script, "the install script of $default is installed");
ok(-f $script && slurp_file($script) eq slurp_file($source),
	"order_engine--$default.sql is src/sql/order_engine.sql");

my ($ret, $out, $fresh_msgs, $chain_msgs, $err);
($ret, $out, $fresh_msgs) = $fresh->psql('a', 'CREATE EXTENSION order_engine CASCADE');
is($ret, 0, 'fresh: CREATE EXTENSION order_engine CASCADE') or diag($fresh_msgs);
($ret, $out, $chain_msgs) = $chain->psql('b', q{CREATE EXTENSION order_engine VERSION '0.1'});
is($ret, 0, q{chain: CREATE EXTENSION order_engine VERSION '0.1'}) or diag($chain_msgs);
($ret, $out, $err) = $chain->psql('b', 'ALTER EXTENSION order_engine UPDATE');
is($ret, 0, 'chain: ALTER EXTENSION order_engine UPDATE') or diag($err);
$chain_msgs .= $err;
for ([ $fresh, 'a' ], [ $chain, 'b' ])
{
	is($_->[0]->safe_psql($_->[1],
			q{SELECT extversion FROM pg_extension WHERE extname = 'order_engine'}),
		$default, "$_->[1] is at $default");
}

# same(name, fresh text, chain text): equal, or fail with a unified diff
my $n = 0;
sub same
{
	my ($name, $fresh_text, $chain_text) = @_;
	return pass($name) if $fresh_text eq $chain_text;
	$n++;
	my $fa = "$PostgreSQL::Test::Utils::tmp_check/816_${n}_fresh.txt";
	my $fb = "$PostgreSQL::Test::Utils::tmp_check/816_${n}_chain.txt";
	PostgreSQL::Test::Utils::append_to_file($fa, $fresh_text);
	PostgreSQL::Test::Utils::append_to_file($fb, $chain_text);
	my ($diff) = run_command([ 'diff', '-u', '--label', 'chain (0.1 + updates)', $fb,
		'--label', 'fresh install', $fa ]);
	fail($name);
	diag($diff);
	return;
}

sub dump_of
{
	my ($node, $db, @opts) = @_;
	my ($stdout, $stderr) = run_command([ 'pg_dump', @opts, '-d', $node->connstr($db) ]);
	die "pg_dump failed: $stderr" if $stderr ne '';
	return $stdout;
}

sub normalized
{
	my ($text) = @_;
	my @out;
	for my $line (split /\n/, $text)
	{
		next if $line =~ /^SELECT pg_catalog\.binary_upgrade_set_next_/;
		$line =~ s/^(\\(?:un)?restrict) \S+$/$1 KEY/;
		$line =~ s/^(SELECT pg_catalog\.binary_upgrade_create_empty_extension\('order_engine', 'order_engine', (?:true|false), '[^']*', )'\{[0-9,]*\}', '.*'(, ARRAY\[.*\]::pg_catalog\.text\[\]\);)$/$1'{extconfig}', '{extcondition}'$2/;
		$line =~ s/relfrozenxid = '\d+', relminmxid = '\d+'/relfrozenxid = 'X', relminmxid = 'X'/;
		$line =~ s/^WHERE oid = '\d+';$/WHERE oid = 'OID';/;
		push @out, $line;
	}
	return join("\n", @out) . "\n";
}

my $binary_fresh = dump_of($fresh, 'a', '--schema-only', '--binary-upgrade');
like($binary_fresh, qr/ALTER EXTENSION order_engine ADD TABLE order_engine\.sku;/,
	'the binary-upgrade dump lists the members');
same('pg_dump --schema-only --binary-upgrade',
	normalized($binary_fresh),
	normalized(dump_of($chain, 'b', '--schema-only', '--binary-upgrade')));
same('pg_dump --schema-only',
	normalized(dump_of($fresh, 'a', '--schema-only')),
	normalized(dump_of($chain, 'b', '--schema-only')));

sub roles_of
{
	my ($node) = @_;
	my ($stdout, $stderr) = run_command([ 'pg_dumpall', '--roles-only',
		'-h', $node->host, '-p', $node->port ]);
	die "pg_dumpall failed: $stderr" if $stderr ne '';
	return normalized($stdout);
}
my $roles = roles_of($fresh);
like($roles, qr/CREATE ROLE order_engine_owner;/, 'the roles are dumped');
same('pg_dumpall --roles-only', $roles, roles_of($chain));

# catalog queries: one text per query and database
my %catalog = (
	'the extension' => q{
		SELECT e.extname, e.extowner::regrole, e.extnamespace::regnamespace,
		       e.extrelocatable, e.extversion,
		       pg_catalog.cardinality(e.extconfig), pg_catalog.cardinality(e.extcondition)
		  FROM pg_extension e WHERE e.extname = 'order_engine'},
	'extconfig and extcondition' => q{
		SELECT c.rel::regclass, c.cond
		  FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS c(rel, cond)
		 WHERE e.extname = 'order_engine' ORDER BY c.rel::regclass::text, c.cond},
	'pg_depend' => q{
		WITH d AS (
		    SELECT pg_describe_object(classid, objid, objsubid) AS obj,
		           pg_describe_object(refclassid, refobjid, refobjsubid) AS ref, deptype
		      FROM pg_depend WHERE objid >= 16384 OR refobjid >= 16384)
		SELECT obj, ref, deptype FROM d ORDER BY 1, 2, 3},
	'pg_shdepend' => q{
		SELECT pg_describe_object(classid, objid, objsubid), refobjid::regrole, deptype
		  FROM pg_shdepend
		 WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
		 ORDER BY 1, 2, 3},
	'pg_init_privs' => q{
		SELECT pg_describe_object(classoid, objoid, objsubid), privtype, initprivs
		  FROM pg_init_privs WHERE objoid >= 16384 ORDER BY 1},
	'sequences' => q{
		SELECT c.oid::regclass,
		       query_to_xml(format('SELECT last_value, is_called FROM %s', c.oid::regclass),
		                    false, false, '')
		  FROM pg_class c
		 WHERE c.relkind = 'S' AND c.relnamespace::regnamespace::text LIKE 'order_engine%'
		 ORDER BY c.oid::regclass::text},
	'rows the scripts leave' => q{
		SELECT c.oid::regclass,
		       query_to_xml(format('SELECT string_agg(x::text, %L ORDER BY x::text) FROM (SELECT %s FROM %s) x',
		                           E'\n', string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum),
		                           c.oid::regclass), false, false, '')
		  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
		 WHERE c.relkind = 'r' AND c.relnamespace::regnamespace::text LIKE 'order_engine%'
		   AND a.attnum > 0 AND NOT a.attisdropped AND a.atttypid <> 'timestamptz'::regtype
		 GROUP BY c.oid ORDER BY c.oid::regclass::text},
);

# names with OIDs in them: toast tables and RI triggers, named by their
# table instead; the rows of one-line-per-row results are sorted again
# after that, since the OIDs decided their order
my %by_line = map { $_ => 1 } ('pg_depend', 'pg_shdepend', 'pg_init_privs');
sub oid_free
{
	my ($node, $db, $what) = @_;
	my $text = $node->safe_psql($db, $catalog{$what});
	$text =~ s/RI_ConstraintTrigger_([ac])_\d+/RI_ConstraintTrigger_$1_N/g;
	$text =~ s{pg_toast_(\d+)}{'pg_toast_of_' . $node->safe_psql($db, "SELECT '$1'::oid::regclass")}ge;
	$text = join("\n", sort split(/\n/, $text)) if $by_line{$what};
	return $text;
}

for my $what (sort keys %catalog)
{
	same($what, oid_free($fresh, 'a', $what), oid_free($chain, 'b', $what));
}
like($fresh->safe_psql('a', $catalog{'extconfig and extcondition'}),
	qr/^order_engine\.id_tags\|WHERE biz_tag <> 'order_no'$/m, 'extcondition is compared');

# what an install leaves to the rest of its transaction, and what it says
$fresh->safe_psql('postgres', 'CREATE DATABASE tx');
$chain->safe_psql('postgres', 'CREATE DATABASE tx');
my $show = q{SELECT name, setting FROM pg_settings WHERE source = 'session' ORDER BY 1};
same('settings left for the rest of the transaction',
	$fresh->safe_psql('tx', "BEGIN; CREATE EXTENSION order_engine; $show; ROLLBACK;"),
	$chain->safe_psql('tx', "BEGIN; CREATE EXTENSION order_engine VERSION '0.1'; "
		  . "ALTER EXTENSION order_engine UPDATE; $show; ROLLBACK;"));
same('messages of the install', $fresh_msgs, $chain_msgs);

# On a large orders table the operator builds the 1.0 index concurrently
# before the update (README "Upgrades"); the update keeps it, and the
# schema is the fresh install's
$chain->safe_psql('postgres', 'CREATE DATABASE c');
$chain->safe_psql('c', q{CREATE EXTENSION order_engine VERSION '0.9'});
$chain->safe_psql('c', q{CREATE INDEX CONCURRENTLY orders_finished_idx ON order_engine.orders
    ((COALESCE(completed_at, closed_at, paid_at, created_at)))
    WHERE status = ANY ('{completed,cancelled,closed,refunded}'::text[])});
($ret, $out, $err) = $chain->psql('c', 'ALTER EXTENSION order_engine UPDATE');
is($ret, 0, 'the update to 1.0 keeps an index built concurrently before it') or diag($err);
same('plain pg_dump --schema-only, the index built before the update',
	normalized(dump_of($fresh, 'a', '--schema-only')), normalized(dump_of($chain, 'c', '--schema-only')));

$_->stop for $fresh, $chain;
done_testing();
