# The stampede check: many clients, far more attempts than units, on one
# plain SKU and on one bucketed SKU.  Exactly the stock there was ends
# held, nothing is oversold, no call fails (no deadlock, no error), and
# stock_audit() is clean.  A bucketed SKU is also stampeded with mixed
# quantities so that takes spill over several buckets.  Bounded by
# transaction counts (a few thousand calls), not by time.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use OrderEngineTest;

# test/postgresql.conf has log_min_messages = log, which ranks ERROR below
# LOG and keeps errors out of the server log; here we want them there.
my $node = oe_node('stampede', conf => "max_connections = 60\nlog_min_messages = warning");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION order_engine;
	SELECT order_engine.restock(1, 300);
	SELECT order_engine.restock(2, 300);
	SELECT order_engine.set_buckets(2, 16);
	SELECT order_engine.restock(3, 1000);
	SELECT order_engine.set_buckets(3, 8);
});

my $clients = 24;
my $per_client = 50;		# 1200 attempts per SKU for 300 units
my $attempts = $clients * $per_client;
# pgbench 15 counts a deadlock or serialization failure as a "failed
# transaction" rather than an error; make it say which and why
my $diag = '--failures-detailed --verbose-errors';

for my $sku (1, 2)
{
	my $kind = $sku == 1 ? 'plain' : 'bucketed';
	$node->pgbench(
		"--no-vacuum --client=$clients --jobs=4 --transactions=$per_client $diag",
		0,
		[qr{processed: $attempts/$attempts}],
		[qr{^$}],
		"$kind SKU: $attempts reserves of one unit, no failed call",
		{
			"stampede_$sku" => qq{
\\set o random(1, 9000000000000000000)
SELECT order_engine.reserve(:o, ARRAY[$sku]::bigint[], ARRAY[1]::bigint[], '1 hour', :client_id);
}
		});
	is($node->safe_psql('postgres',
			"SELECT available || '/' || held || '/' || sold FROM order_engine.stock WHERE sku_id = $sku"),
		'0/300/0', "$kind SKU: exactly the 300 units are held, none oversold");
	is($node->safe_psql('postgres',
			"SELECT count(*) || '/' || sum(qty) FROM order_engine.stock_hold WHERE sku_id = $sku AND state = 'held'"),
		'300/300', "$kind SKU: 300 holds of one unit");
}

# mixed quantities on a bucketed SKU: single buckets run short, takes
# spill over several buckets under contention
$node->pgbench(
	"--no-vacuum --client=$clients --jobs=4 --transactions=$per_client $diag",
	0,
	[qr{processed: $attempts/$attempts}],
	[qr{^$}],
	"bucketed SKU, 1-60 units per reserve: no failed call (no deadlock)",
	{
		"stampede_mixed" => q{
\set o random(1, 9000000000000000000)
\set q random(1, 60)
SELECT order_engine.reserve(:o, ARRAY[3]::bigint[], ARRAY[:q]::bigint[]);
}
	});
my ($avail, $held) = split /\|/, $node->safe_psql('postgres',
	"SELECT available, held FROM order_engine.stock WHERE sku_id = 3");
is($avail + $held, 1000, "mixed quantities: available $avail + held $held = 1000");
cmp_ok($avail, '<', 60, 'mixed quantities: the SKU was taken down to less than one large order');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM order_engine.stock_hold WHERE sku_id = 3 AND cardinality(buckets) > 1") > 0 ? 1 : 0,
	1, 'some holds were served from several buckets');

# sold out: more attempts all answer false and change nothing
$node->pgbench(
	"--no-vacuum --client=8 --jobs=2 --transactions=25 $diag",
	0,
	[qr{processed: 200/200}],
	[qr{^$}],
	'sold-out SKUs: 200 more attempts',
	{
		"soldout" => q{
\set o random(1, 9000000000000000000)
\set s random(1, 2)
SELECT order_engine.reserve(:o, ARRAY[:s]::bigint[], ARRAY[1]::bigint[]);
}
	});
is($node->safe_psql('postgres',
		"SELECT string_agg(held::text, ',' ORDER BY sku_id) FROM order_engine.stock WHERE sku_id IN (1, 2)"),
	'300,300', 'sold-out attempts held nothing');

is($node->safe_psql('postgres',
		"SELECT count(*) FROM order_engine.stock_audit() WHERE NOT ok"),
	'0', 'stock_audit is clean after the stampedes');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM order_engine.stock_bucket WHERE available < 0 OR held < 0 OR sold < 0"),
	'0', 'no bucket row went negative');

# release everything: all stock comes back, the books still balance
$node->safe_psql('postgres',
	"SELECT order_engine.release(order_no) FROM (SELECT DISTINCT order_no FROM order_engine.stock_hold) o");
is($node->safe_psql('postgres',
		"SELECT string_agg(available::text, ',' ORDER BY sku_id) FROM order_engine.stock"),
	'300,300,1000', 'releasing every order gives every unit back');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM order_engine.stock_audit() WHERE NOT ok"),
	'0', 'stock_audit is clean after the releases');

$node->stop;
done_testing();
