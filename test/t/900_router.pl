# The PL/Proxy router (router/, docs/scale-out.md): 2 order shards, 2 stock
# shards and a router.  The API through the router answers as one node
# does; then 16 clients place and pay while one order shard and then one
# stock shard are killed with -9 and restarted, and the invariants hold.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use OrderEngineTest;

my $naptime = "order_engine.naptime = 200\nrestart_after_crash = off\n";
my @orders = map { oe_node("order$_", conf => $naptime . "order_engine.node_id = " . (1 + $_)) } 0 .. 1;
my @stock  = map { oe_node("stock$_", conf => $naptime . "order_engine.node_id = " . (101 + $_)) } 0 .. 1;
my $router = oe_node('router', no_preload => 1,
	conf => "order_engine_router.hold_grace = '3s'\nmax_connections = 60\n");
$_->start for @orders, @stock, $router;
for my $n (@orders, @stock)
{
	$n->safe_psql('postgres', 'CREATE EXTENSION order_engine; CREATE EXTENSION order_engine_shard');
}
sub cs { my $n = shift; return "host=" . $n->host . " port=" . $n->port . " dbname=postgres"; }
$router->safe_psql('postgres', 'CREATE EXTENSION order_engine_router CASCADE');
$router->safe_psql('postgres',
	"SELECT order_engine_router.configure(ARRAY['" . join("','", map { cs($_) } @orders)
	  . "'], ARRAY['" . join("','", map { cs($_) } @stock) . "'])");

my ($rc, $out, $err) = $router->psql('postgres',
	"SELECT order_engine_router.configure(ARRAY['a','b','c'], ARRAY['d'])");
like($err, qr/power-of-two/, 'configure refuses a partition count that is not a power of two');

sub r { return $router->safe_psql('postgres', $_[0]); }
sub r_err
{
	my ($sql) = @_;
	my ($rc, $o, $e) = $router->psql('postgres', "\\set VERBOSITY sqlstate\n$sql");
	return $e =~ /ERROR:\s+(\w{5})/ ? $1 : "none";
}

# ---- the same behaviour as one node ----
is(r("SELECT order_engine.restock(1, 10), order_engine.restock(2, 5), order_engine.restock(3, 4)"),
	'10|5|4', 'restock routed by SKU');
r("SELECT order_engine.set_price(1, 9.5), order_engine.set_price(2, 3), order_engine.set_price(3, 1)");
is($stock[1]->safe_psql('postgres', 'SELECT string_agg(sku_id::text, \',\' ORDER BY sku_id) FROM order_engine.sku'),
	'1,3', 'odd SKUs live on stock shard 1');
my $o1 = r("SELECT order_engine.next_order_no(7)");
my $o2 = r("SELECT order_engine.next_order_no(8)");
is(r("SELECT order_engine.shard_of($o1)"), '7', 'next_order_no carries the buyer gene');
is($orders[1]->safe_psql('postgres', "SELECT order_engine.shard_of($o1)"), '7', 'router and shard agree on shard_of');
is(r_err("SELECT order_engine.shard_of(-1)"), '22023', 'shard_of(-1) is 22023');
is(r_err("SELECT order_engine.next_order_no(NULL)"), '22004', 'next_order_no(NULL) is 22004');
my $lines = q('[{"sku_id":1,"qty":2},{"sku_id":2,"qty":1}]');
is(r("SELECT order_engine.place_order($o1, 7, 99, $lines)"), 'pending_payment', 'place_order across two stock shards');
is(r("SELECT order_engine.place_order($o1, 7, 99, $lines)"), 'pending_payment', 'a repeat answers the same');
is(r_err("SELECT order_engine.place_order($o1, 7, 99, '[{\"sku_id\":1,\"qty\":3}]')"), 'OE006', 'other content is OE006');
is(r_err("SELECT order_engine.place_order($o2, 8, 99, '[{\"sku_id\":1,\"qty\":0}]')"), '22023', 'bad lines are 22023');
is(r_err("SELECT order_engine.place_order($o2, 8, 99, '[{\"sku_id\":77,\"qty\":1}]')"), 'OE008', 'unknown SKU is OE008');
is($orders[1]->safe_psql('postgres', "SELECT total FROM order_engine.orders WHERE order_no = $o1"), '22.0', 'price snapshot from the stock shards');
is(r("SELECT order_engine.order_status($o1)"), 'pending_payment', 'order_status');
is(r("SELECT order_engine.order_status(12345601)"), 'not_found', 'order_status of an unknown number');
is(r_err("SELECT order_engine.pay_order($o1, 'p1', 21)"), 'OE007', 'a wrong amount is OE007');
is(r("SELECT order_engine.pay_order($o1, 'p1', 22)"), 'paid', 'pay_order');
is(r("SELECT order_engine.pay_order($o1, 'p1', 22)"), 'paid', 'pay_order replays on payment_ref');
is(r("SELECT order_engine.pay_order($o1, 'p2', 22)"), 'refund_required', 'a second payment is refund_required');
is($stock[1]->safe_psql('postgres', "SELECT state FROM order_engine.stock_hold WHERE order_no = $o1"), 'confirmed', 'payment confirmed the hold on stock shard 1');
is($stock[0]->safe_psql('postgres', "SELECT state FROM order_engine.stock_hold WHERE order_no = $o1"), 'confirmed', 'and on stock shard 0');
is(r("SELECT order_engine.place_order($o2, 8, 99, '[{\"sku_id\":1,\"qty\":100},{\"sku_id\":2,\"qty\":1}]')"), 'out_of_stock', 'out_of_stock');
is($stock[0]->safe_psql('postgres', "SELECT count(*) FROM order_engine.stock_hold WHERE order_no = $o2 AND state = 'held'"), '0', 'out_of_stock leaves no hold on the other stock shard');
my $o3 = r("SELECT order_engine.next_order_no(9)");
is(r("SELECT order_engine.place_order($o3, 9, 99, '[{\"sku_id\":3,\"qty\":1}]')"), 'pending_payment', 'place a third');
is(r("SELECT order_engine.cancel_order($o3)"), 'cancelled', 'cancel_order');
is($stock[1]->safe_psql('postgres', "SELECT state FROM order_engine.stock_hold WHERE order_no = $o3"), 'released', 'cancel released the hold');
is(r("SELECT order_engine.ship_order($o1, 'L666')"), 'shipped', 'ship_order');
is(r("SELECT order_engine.update_order($o1, 3, '{\"note\":\"x\"}')"), '4', 'update_order');
is(r_err("SELECT order_engine.update_order($o1, 3, '{\"note\":\"y\"}')"), 'OE001', 'a stale version is OE001');
is(r("SELECT order_engine.complete_order($o1)"), 'completed', 'complete_order');
is(r("SELECT order_engine.reserve(5, '{1,2}', '{1,1}')"), 't', 'reserve split over the stock shards');
is(r("SELECT order_engine.reserve(5, '{1,2}', '{1,1}')"), 't', 'reserve again holds nothing twice');
is(r("SELECT order_engine.confirm(5)"), '2', 'confirm by order number alone');
is(r("SELECT order_engine.confirm(5)"), '0', 'confirm is idempotent');
is(r_err("SELECT order_engine.confirm(6)"), 'OE009', 'confirm of an unknown order is OE009');
is(r("SELECT order_engine.reserve(6, '{1,3}', '{1,99}')"), 'f', 'reserve is all or nothing');
is(r("SELECT order_engine.release(6)"), '0', 'and left nothing to release');
is(r("SELECT order_engine.try_deduct(3, 1)"), 't', 'try_deduct');
is(r("SELECT count(*) FILTER (WHERE ok), count(*) FROM order_engine.stock_audit()"), '3|3', 'stock_audit on all stock shards');
is(r("SELECT order_engine_router.relay()"), '2', 'the relay delivers the outbox (paid, cancelled)');
is(r("SELECT order_engine_router.relay()"), '0', 'and nothing twice');

# ---- load with kill -9 ----
r("SELECT order_engine.restock(s, 300) FROM generate_series(10, 17) s");
r("SELECT order_engine.set_price(s, 1) FROM generate_series(10, 17) s");
my $dir = PostgreSQL::Test::Utils::tempdir();
my $bin = $router->config_data('--bindir');
my ($rh, $rp) = ($router->host, $router->port);
my @pids;
for my $c (1 .. 16)
{
	open my $f, '>', "$dir/c$c.sql" or die;
	print $f "\\set VERBOSITY sqlstate\n";
	for my $i (1 .. 400)
	{
		my $b = $c * 1000 + $i;
		my $s1 = 10 + ($i % 8);
		my $s2 = 10 + (($i + $c) % 8);
		my $l = $s1 == $s2 ? "[{\"sku_id\":$s1,\"qty\":1}]" : "[{\"sku_id\":$s1,\"qty\":1},{\"sku_id\":$s2,\"qty\":1}]";
		my $amt = $s1 == $s2 ? 1 : 2;
		# one statement per iteration: a failed call costs only its own order; pay 3 of 4
		my $pay = $i % 4 ? "order_engine.pay_order(o, 'pay-' || o, $amt)" : "st";
		print $f "SELECT $pay FROM (SELECT o, order_engine.place_order(o, $b, 1, '$l', '4 seconds') AS st"
		  . " FROM (SELECT order_engine.next_order_no($b) AS o OFFSET 0) x OFFSET 0) y WHERE st = 'pending_payment';\n";
	}
	close $f;
	my $pid = fork();
	if ($pid == 0)
	{
		exec("$bin/psql -X -q -At -h $rh -p $rp -d postgres -f $dir/c$c.sql > $dir/c$c.out 2> $dir/c$c.err");
	}
	push @pids, $pid;
}
my $relay = fork();
if ($relay == 0)
{
	exec("while :; do $bin/psql -X -q -At -h $rh -p $rp -d postgres -c 'SELECT order_engine_router.relay(500)' >/dev/null 2>&1; sleep 0.2; done");
}
sleep 3;
kill9_all($orders[0]);
sleep 1;
$orders[0]->start;
sleep 3;
kill9_all($stock[1]);
sleep 1;
$stock[1]->start;
waitpid($_, 0) for @pids;
ok(1, '16 clients finished');

# after the payment window and the grace, the relay and the workers have run
sleep 8;
r("SELECT order_engine_router.relay(100000)");
sleep 2;
kill 'KILL', $relay;
waitpid($relay, 0);

my %bad;
for my $c (1 .. 16)
{
	open my $f, '<', "$dir/c$c.err" or die;
	while (<$f>)
	{
		$bad{$1}++ if /ERROR:\s+(\w{5})/ && $1 !~ /^(08006|08000|08001|08003|57P01|57P02|57P03|40001|40P01|57014)$/;
	}
}
is(join(',', sort keys %bad), '', 'every client error is a documented retryable one');

my %seen;
my $dups = 0;
my $placed = 0;
for my $n (@orders)
{
	for my $on (split /\n/, $n->safe_psql('postgres', 'SELECT order_no FROM order_engine.orders'))
	{
		$dups++ if $seen{$on}++;
		$placed++;
	}
}
is($dups, 0, "no order number repeats across the order shards ($placed orders)");
cmp_ok($placed, '>', 1000, 'most placements got through');
is($orders[0]->safe_psql('postgres', "SELECT count(*) FROM order_engine.orders WHERE order_engine.shard_of(order_no) % 2 <> 0"), '0',
	'order shard 0 holds only even genes');
is(join(',', map { $_->safe_psql('postgres', 'SHOW order_engine.node_id') } @orders, @stock), '1,2,101,102',
	'every shard has its own order_engine.node_id');
my %snow;
$snow{$_}++ for map { split /\n/, $_->safe_psql('postgres', 'SELECT order_engine.snowflake_id() FROM generate_series(1, 200)') } @orders, @stock;
is(scalar(grep { $snow{$_} > 1 } keys %snow), 0, 'snowflake ids do not collide across shards');

for my $i (0 .. 1)
{
	is($stock[$i]->safe_psql('postgres', 'SELECT count(*) FROM order_engine.stock_audit() WHERE NOT ok'), '0', "stock_audit clean on stock shard $i");
	is($stock[$i]->safe_psql('postgres', 'SELECT count(*) FROM order_engine.stock WHERE available < 0 OR held < 0 OR sold > 300'), '0', "no SKU oversold on stock shard $i");
	is($stock[$i]->safe_psql('postgres', "SELECT count(*) FROM order_engine.stock_hold WHERE state = 'held' AND order_no > 100000"), '0',
		"no hold survives the health-check window on stock shard $i");
}
# every paid order's holds are confirmed; every hold without an order is released
my %paid;
for my $n (@orders)
{
	$paid{$_} = 1 for split /\n/, $n->safe_psql('postgres', "SELECT order_no FROM order_engine.orders WHERE status = 'paid'");
}
my %ordered;
for my $n (@orders)
{
	$ordered{$_} = 1 for split /\n/, $n->safe_psql('postgres', 'SELECT order_no FROM order_engine.orders');
}
my ($unconfirmed, $orphan_confirmed) = (0, 0);
for my $s (@stock)
{
	for (split /\n/, $s->safe_psql('postgres', 'SELECT order_no, state FROM order_engine.stock_hold WHERE order_no > 100000'))
	{
		my ($on, $st) = split /\|/;
		$unconfirmed++ if $paid{$on} && $st ne 'confirmed';
		$orphan_confirmed++ if !$ordered{$on} && $st ne 'released';
	}
}
is($unconfirmed, 0, 'every paid order\'s holds ended confirmed (' . scalar(keys %paid) . ' paid)');
is($orphan_confirmed, 0, 'every hold without an order ended released');

done_testing();
