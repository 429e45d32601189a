# An old order_engine.so still loaded while the SQL moves on (issue 16,
# part 3): the C entry points are versioned, so a backend running the
# previous release's library never runs new SQL with old semantics.
#
# The previous release's library is built by scripts/test.sh from its
# commit (OE_PREVIOUS_LIB, scripts/lib.sh OE_PREVIOUS_RELEASE*).  The node
# runs from a private copy of the installation, whose order_engine.so the
# test swaps the way a package upgrade does (a new file renamed over the
# old one, which running backends keep mapped).
#
# 1. Preloaded (production): the postmaster and every backend keep the old
#    library until a restart, so ALTER EXTENSION UPDATE fails cleanly
#    (42883, nothing changed) and the old version keeps serving; after
#    the restart the new library serves the old SQL, then the update runs.
# 2. Not preloaded: a long-lived session that loaded the old library meets
#    the new SQL another session installed.  Functions whose C symbol the
#    new SQL changed fail with 42883 instead of running with the old
#    arguments (place_order would drop its quote and charge current
#    prices); the others keep working; a new connection gets everything.
use strict;
use warnings;

use File::Basename qw(dirname);
use File::Copy qw(copy);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use OrderEngineTest;

my $old_lib = $ENV{OE_PREVIOUS_LIB};
my $old_version = $ENV{OE_PREVIOUS_RELEASE};
ok(defined $old_lib && -f $old_lib, 'the previous release\'s library was built (OE_PREVIOUS_LIB)')
  or BAIL_OUT('scripts/test.sh builds it; run this file through it');

# a private copy of the installation the suite runs (lib and share)
my $bindir = dirname(`which postgres`);
chomp $bindir;
my $major_dir = dirname($bindir);                     # .../usr/lib/postgresql/15
my $major = (split m{/}, $major_dir)[-1];
my $inst_root = dirname(dirname(dirname(dirname($major_dir))));    # above usr/
my $copy = PostgreSQL::Test::Utils::tempdir('oldlib');
system('mkdir', '-p', "$copy/usr/lib/postgresql", "$copy/usr/share/postgresql") == 0 or die;
system('cp', '-a', $major_dir, "$copy/usr/lib/postgresql/") == 0 or die "copy lib: $?";
system('cp', '-a', "$inst_root/usr/share/postgresql/$major", "$copy/usr/share/postgresql/") == 0
  or die "copy share: $?";
my $install = "$copy/usr/lib/postgresql/$major";
my $lib = "$install/lib/order_engine.so";
my $new_lib = "$copy/order_engine.new.so";
copy($lib, $new_lib) or die "keep the new library: $!";

# what a package upgrade does: write the new file, rename it over the old
sub install_library
{
	my ($from) = @_;
	copy($from, "$lib.tmp") or die "copy $from: $!";
	chmod 0755, "$lib.tmp";
	rename("$lib.tmp", $lib) or die "rename: $!";
}

install_library($old_lib);

my $current = `grep -o "default_version = '[^']*'" $copy/usr/share/postgresql/$major/extension/order_engine.control`;
($current) = $current =~ /'([^']*)'/;
isnt($current, $old_version, "the tree's version ($current) is newer than the previous release ($old_version)");

my $setup = qq{
	CREATE EXTENSION order_engine VERSION '$old_version';
	SELECT order_engine.restock(s, 1000) FROM generate_series(1, 3) s;
	SELECT order_engine.set_price(s, 10) FROM generate_series(1, 3) s;
	SELECT order_engine.create_id_tag('old');
};
my $order = 100;
sub place
{
	my ($node, $buyer) = @_;
	$order++;
	return $node->psql('postgres',
		"SELECT order_engine.place_order($order, $buyer, 9, '[{\"sku_id\": 1, \"qty\": 1}]')");
}

# ---------------------------------------------------------------- 1. preloaded
my $node = oe_node('oldlib', install_path => $install,
	conf => "order_engine.naptime = 200\n");
$node->start;
$node->safe_psql('postgres', $setup);
my ($rc) = place($node, 7);
is($rc, 0, "the previous release's library places orders");

install_library($new_lib);
my ($urc, $uout, $uerr) = $node->psql('postgres',
	"\\set VERBOSITY verbose\nALTER EXTENSION order_engine UPDATE");
isnt($urc, 0, 'ALTER EXTENSION UPDATE without a restart fails: every backend still runs the old library');
like($uerr, qr/ERROR:  42883: could not find function "oe_\w+" in file/,
	'with 42883 naming a C symbol the old library lacks');
is($node->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'order_engine'}),
	$old_version, 'and the extension stays at the previous version');
($rc) = place($node, 7);
is($rc, 0, 'which keeps serving');

$node->restart;
($rc) = place($node, 7);
is($rc, 0, 'after the restart the new library serves the old SQL');
$node->safe_psql('postgres', 'ALTER EXTENSION order_engine UPDATE');
is($node->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'order_engine'}),
	$current, "then the update runs ($old_version -> $current)");
is($node->safe_psql('postgres', q{
	SELECT order_engine.place_order(150, 7, 9, '[{"sku_id": 1, "qty": 2}]',
	         quote => order_engine.quote(7, '[{"sku_id": 1, "qty": 2}]'))}),
	'pending_payment', 'and a quoted order is placed');
is($node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE NOT ok) FROM order_engine.stock_audit()}), '0', 'stock audit clean');
is($node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE NOT ok) FROM order_engine.order_audit()}), '0', 'order audit clean');
$node->stop;

# ---------------------------------------------------------------- 2. not preloaded
install_library($old_lib);
my $plain = oe_node('oldlib_plain', install_path => $install, no_preload => 1);
$plain->start;
$plain->safe_psql('postgres', $setup);

my $old = $plain->background_psql('postgres', on_error_stop => 0);
sub old_session
{
	my ($sql) = @_;
	$old->{stderr} = '';
	my $out = $old->query("\\set VERBOSITY verbose\n$sql");
	return ($out, $old->{stderr});
}
my ($out, $err) = old_session(q{SELECT order_engine.place_order(201, 7, 9, '[{"sku_id": 1, "qty": 1}]')});
is($err, '', "a long-lived session loads the previous release's library") or diag $err;
is($out, 'pending_payment', 'and places an order');

install_library($new_lib);
$plain->safe_psql('postgres', 'ALTER EXTENSION order_engine UPDATE');
is($plain->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'order_engine'}),
	$current, 'a new session (new library) updates the extension');

($out, $err) = old_session(q{SELECT order_engine.place_order(202, 7, 9, '[{"sku_id": 1, "qty": 1}]')});
like($err, qr/ERROR:  42883: could not find function "oe_place_order_v2"/,
	'the old session cannot run the new place_order: 42883, not the old code without the quote');
($out, $err) = old_session(q{SELECT order_engine.quote(7, '[{"sku_id": 1, "qty": 1}]')});
like($err, qr/ERROR:  42883: could not find function "oe_quote"/, 'nor quote');
is($plain->safe_psql('postgres', 'SELECT count(*) FROM order_engine.orders WHERE order_no = 202'), '0',
	'and wrote nothing');

# what the new SQL kept: the old code runs it on the new tables
for my $call (
	[ q{SELECT order_engine.pay_order(201, 'p201', 10)}, 'paid' ],
	[ q{SELECT order_engine.order_status(201)}, 'paid' ],
	[ q{SELECT order_engine.reserve(300, '{2}', '{1}', '1 minute')}, 't' ],
	[ q{SELECT order_engine.confirm(300)}, '1' ],
	[ q{SELECT state FROM order_engine.idem_begin('s', 'k1', '{}')}, 'started' ],
	[ q{SELECT order_engine.idem_finish('s', 'k1', '{"r": 1}')}, '' ],
	[ q{SELECT order_engine.consume_token(7, order_engine.issue_token(7))}, 't' ],
	[ q{SELECT order_engine.reap_expired_keys(10)}, '0' ])
{
	my ($sql, $want) = @$call;
	($out, $err) = old_session($sql);
	is($err, '', "the old session still runs: $sql") or diag $err;
	is($out, $want, '... with the right answer');
}
$old->quit;

my $fresh = $plain->safe_psql('postgres', q{
	SELECT order_engine.place_order(203, 7, 9, '[{"sku_id": 3, "qty": 1}]',
	         quote => order_engine.quote(7, '[{"sku_id": 3, "qty": 1}]'))});
is($fresh, 'pending_payment', 'a new connection runs the new place_order with a quote');
is($plain->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE NOT ok) FROM order_engine.stock_audit()}), '0', 'stock audit clean');
is($plain->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE NOT ok) FROM order_engine.order_audit()}), '0', 'order audit clean');
# 1.0: the old library journaled its hold of order 300 in stock_movement
# (a hold and a confirm row); the journal reads the hold from its row alone
is($plain->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM order_engine.stock_movement WHERE order_no = 300) || ' ' ||
	       (SELECT string_agg(kind, ',' ORDER BY kind) FROM order_engine.stock_journal WHERE order_no = 300)}),
	'2 confirm,hold', "the old library's journal rows stay, and the hold counts once in stock_journal");
$plain->stop;

done_testing();
