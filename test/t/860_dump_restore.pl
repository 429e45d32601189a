# Backup and restore with PostgreSQL's own pg_dump / pg_restore: a database
# with stock, holds, orders, archived orders, id tags, keys, tokens and
# checkout quotes is dumped in the custom and the plain format and
# restored into new databases with --exit-on-error / ON_ERROR_STOP.
# Afterwards ids continue without repeats, stock_audit is clean, every
# table accepts new rows (the sequences behind them came along), a quote
# made before the dump still charges its price, the worker serves the
# restored database and its holds still expire.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use OrderEngineTest;

my $node = oe_node('dump',
	conf => "order_engine.database = 'shop,restored_fc,restored_plain'\n"
	  . "order_engine.naptime = 200\n");
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE shop');
$node->safe_psql('shop', q{
	CREATE EXTENSION order_engine;
	SELECT order_engine.restock(1, 100);
	SELECT order_engine.restock(2, 500);
	SELECT order_engine.set_buckets(2, 4);
	SELECT order_engine.set_price(1, 10);
	SELECT order_engine.set_price(2, 3);
	SELECT order_engine.set_purchase_limit(1, 50);
	SELECT order_engine.create_id_tag('invoice', 1000, 10);
	SELECT order_engine.next_ids('invoice', 25);
	SELECT order_engine.reserve(900001, '{2}', '{5}', '1 hour', 3);
	SELECT order_engine.idem_begin('checkout', 'k1', '{"a":1}');
	SELECT order_engine.idem_finish('checkout', 'k1', '{"ok":true}');
	SELECT order_engine.issue_token(7);
	SELECT order_engine.snowflake_id();
});
# orders: one pending, one paid and finished then archived
my $pending = $node->safe_psql('shop', 'SELECT order_engine.next_order_no(7)');
my $done = $node->safe_psql('shop', 'SELECT order_engine.next_order_no(7)');
$node->safe_psql('shop', qq{
	SELECT order_engine.place_order($pending, 7, 9, '[{"sku_id":1,"qty":2}]');
	SELECT order_engine.place_order($done, 7, 9, '[{"sku_id":2,"qty":1}]');
	SELECT order_engine.pay_order($done, 'pay-$done', 3);
	SELECT order_engine.ship_order($done, 'LN1');
	SELECT order_engine.complete_order($done);
});
# a checkout quote made before the dump, then a price change: each restored
# database charges the quoted price once
my $quote = $node->safe_psql('shop', q{SELECT order_engine.quote(7, '[{"sku_id":1,"qty":3}]', '1 day')});
$node->safe_psql('shop', q{SELECT order_engine.set_price(1, 11)});
# its events were delivered (an order with pending events stays live)
$node->safe_psql('shop', qq{SELECT order_engine.ack_events(array_agg(event_id))
	FROM order_engine.order_events WHERE order_no = $done});
is($node->safe_psql('shop', q{SELECT order_engine.archive_orders('0 seconds', 100)}),
	'1', 'one finished order archived before the dump');

my $max_invoice = $node->safe_psql('shop',
	q{SELECT max_id FROM order_engine.id_tags t JOIN LATERAL (SELECT pg_catalog.pg_sequence_last_value(t.seq) AS max_id) s ON true WHERE biz_tag = 'invoice'});
my $max_order_no = $node->safe_psql('shop', qq{SELECT greatest($pending, $done)});
my $max_snowflake = $node->safe_psql('shop', 'SELECT order_engine.snowflake_id()');

my $dir = $PostgreSQL::Test::Utils::tmp_check;
my ($out, $err);

# custom format through pg_restore --exit-on-error
my $rc = $node->run_log([ 'pg_dump', '-Fc', '-d', $node->connstr('shop'), '-f', "$dir/shop.dump" ]);
ok($rc, 'pg_dump -Fc');
$node->safe_psql('postgres', 'CREATE DATABASE restored_fc');
$rc = IPC::Run::run([ 'pg_restore', '--exit-on-error', '-d', $node->connstr('restored_fc'), "$dir/shop.dump" ],
	'>', \$out, '2>', \$err);
ok($rc, 'pg_restore --exit-on-error: no error') or diag($err);

# plain format through psql -v ON_ERROR_STOP=1
$rc = $node->run_log([ 'pg_dump', '-Fp', '-d', $node->connstr('shop'), '-f', "$dir/shop.sql" ]);
ok($rc, 'pg_dump -Fp');
$node->safe_psql('postgres', 'CREATE DATABASE restored_plain');
$rc = IPC::Run::run([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('restored_plain'), '-f', "$dir/shop.sql" ],
	'>', \$out, '2>', \$err);
ok($rc, 'psql -v ON_ERROR_STOP=1 of the plain dump: no error') or diag($err);

for my $db (qw(restored_fc restored_plain))
{
	is($node->safe_psql($db, q{SELECT pg_catalog.count(*) FROM order_engine.stock_audit() WHERE NOT ok}),
		'0', "$db: stock_audit clean");
	is($node->safe_psql($db, q{SELECT pg_catalog.count(*) FROM order_engine_archive.orders}),
		'1', "$db: the archived order came along");
	is($node->safe_psql($db, qq{SELECT order_engine.order_status($done)}), 'completed',
		"$db: the archived order answers order_status");
	is($node->safe_psql($db, qq{SELECT order_engine.order_status($pending)}), 'pending_payment',
		"$db: the pending order is there");
	is($node->safe_psql($db, q{SELECT state FROM order_engine.idem_begin('checkout', 'k1', '{"a":1}')}),
		'completed', "$db: the idempotency key replays");
	is($node->safe_psql($db, q{SELECT pg_catalog.count(*) FROM order_engine.archive_watermark}),
		'1', "$db: one watermark row");

	# ids continue above everything handed out before the dump
	my $next = $node->safe_psql($db, q{SELECT order_engine.next_id('invoice')});
	cmp_ok($next, '>', $max_invoice, "$db: next_id continues above the dumped range");
	my $sf = $node->safe_psql($db, 'SELECT order_engine.snowflake_id()');
	cmp_ok($sf, '>', $max_snowflake, "$db: snowflake_id continues above the dumped mark");
	my $no = $node->safe_psql($db, 'SELECT order_engine.next_order_no(7)');
	cmp_ok($no, '>', $max_order_no, "$db: next_order_no continues");

	# every table takes new rows: the sequences behind them were restored
	is($node->safe_psql($db, q{SELECT order_engine.restock(1, 5)}), '103',
		"$db: restock journals again");
	is($node->safe_psql($db, qq{SELECT order_engine.place_order($no, 7, 9, '[{"sku_id":2,"qty":1}]')}),
		'pending_payment', "$db: place_order writes order, lines and event");
	is($node->safe_psql($db, qq{SELECT order_engine.pay_order($pending, 'pay-$pending', 20)}),
		'paid', "$db: the restored pending order can be paid");
	my $qno = $node->safe_psql($db, 'SELECT order_engine.next_order_no(7)');
	is($node->safe_psql($db, qq{SELECT order_engine.place_order($qno, 7, 9, '[{"sku_id":1,"qty":3}]', '30 minutes', '$quote')}),
		'pending_payment', "$db: the dumped checkout quote places an order");
	is($node->safe_psql($db, qq{SELECT total FROM order_engine.orders WHERE order_no = $qno}), '30',
		"$db: at the quoted price (3 x 10), not today's (3 x 11)");

	# the worker serves the restored database and holds still expire
	$node->safe_psql($db, q{SELECT order_engine.reserve(900002, '{1}', '{1}', '1 second')});
	ok(wait_for_db($node, $db,
			q{SELECT state = 'released' FROM order_engine.stock_hold WHERE order_no = 900002}, 60),
		"$db: the worker released an expired hold");
	is($node->safe_psql($db, q{SELECT pg_catalog.count(*) FROM order_engine.stock_audit() WHERE NOT ok}),
		'0', "$db: stock_audit clean after new work");
}

sub wait_for_db
{
	my ($node, $db, $sql, $secs) = @_;
	my $deadline = time() + $secs;
	while (time() < $deadline)
	{
		return 1 if $node->safe_psql($db, $sql) eq 't';
		select(undef, undef, undef, 0.1);
	}
	return 0;
}

$node->stop;
done_testing();
