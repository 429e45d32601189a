# The sweep's kept plans stay probes by key when the tables grow after
# they were made.  The worker plans its statements once, at its first
# sweep; here that is while no order awaits payment.  Then 3,000 orders
# await payment and 2,000 more holds fall due.  A due hold is one not bound
# to an unpaid order, which each statement checks per hold: with the status
# 'pending_payment' written as a literal, the kept plans could use the
# partial index of unpaid orders (orders_pay_deadline_idx) and, planned
# while it was empty, read it whole for each due hold (auto_explain in the
# worker: 810 ms for one plan of 5,000 unpaid orders' worth).  Asserted,
# from the plans auto_explain logs for the worker: no statement that
# checks a hold's order reads orders_pay_deadline_idx, and the planned
# holds of a batch are found by stock_hold's primary key, never the expiry
# index.  Every due hold is released, and no hold of an unpaid order.
# The archive's batch walks the index of finished orders by finishing
# time, so 500 young cancelled orders and 3,000 unpaid ones are not read.
# test/mutation.sh writes the status as a literal again and expects this
# test to fail.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use OrderEngineTest;

my $node = oe_node('sweep_plans', conf => join("\n",
	"shared_preload_libraries = 'order_engine,auto_explain'",
	"order_engine.naptime = '200ms'",
	"order_engine.expiry_gather = 0",
	"auto_explain.log_nested_statements = on",
	""));
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION order_engine;
	SELECT order_engine.restock(1, 1000000);
	SELECT order_engine.set_buckets(1, 4);
	SELECT order_engine.restock(2, 1000000);
	SELECT order_engine.set_price(2, 1);
});

# the worker's first sweep, with no unpaid order: its plans are made now
$node->safe_psql('postgres', q{
	SELECT order_engine.reserve(g, '{1}', '{1}', '1 hour') FROM generate_series(1, 20) g;
	UPDATE order_engine.stock_hold SET expires_at = pg_catalog.now() - interval '1 second';
});
ok(wait_for($node, q{SELECT count(*) FROM order_engine.stock_hold WHERE state = 'held'}, '0', 60),
	'the first sweep released its holds');

# 3,000 unpaid orders, 500 cancelled ones (finished, too young to
# archive) and 2,000 holds of no order; every plan logged from now on (the
# worker reads the setting at the reload); then the holds fall due
$node->safe_psql('postgres', q{
	SELECT order_engine.place_order(g, g, 1, '[{"sku_id": 2, "qty": 1}]', '1 day')
	  FROM generate_series(100001, 103000) g;
	SELECT order_engine.place_order(g, g, 1, '[{"sku_id": 2, "qty": 1}]', '1 day'),
	       order_engine.cancel_order(g)
	  FROM generate_series(300001, 300500) g;
	SELECT order_engine.reserve(g, '{1}', '{1}', '1 hour') FROM generate_series(200001, 202000) g;
});
my $log_from = -s $node->logfile;
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET auto_explain.log_min_duration = 0;
	SELECT pg_reload_conf();
});
sleep 1;
$node->safe_psql('postgres', q{
	UPDATE order_engine.stock_hold SET expires_at = pg_catalog.now() - interval '1 second'
	 WHERE order_no BETWEEN 200001 AND 202000;
	-- the unpaid orders' holds fall due too: they stay theirs
	UPDATE order_engine.stock_hold SET expires_at = pg_catalog.now() - interval '1 second'
	 WHERE order_no BETWEEN 100001 AND 103000;
});
ok(wait_for($node, q{SELECT count(*) FROM order_engine.stock_hold
                      WHERE order_no BETWEEN 200001 AND 202000 AND state = 'held'}, '0', 120),
	'every due hold was released');
is($node->safe_psql('postgres', q{SELECT count(*) FROM order_engine.stock_hold
                                   WHERE order_no BETWEEN 100001 AND 103000 AND state = 'held'}),
	'3000', 'no hold of an unpaid order was released');

# the plans the worker logged
my $log = substr(slurp_file($node->logfile), $log_from);
my @plans = split /\n(?=\S)/, $log;
my @hold_checks = grep { /LOG:  duration: .* plan:/ && /Query Text: .*stock_hold h/
	  && /NOT EXISTS \(SELECT FROM order_engine\.orders o/ } @plans;
cmp_ok(scalar(@hold_checks), '>=', 3, scalar(@hold_checks) . ' plans of statements that check a hold\'s order');
my @whole_reads = grep { /orders_pay_deadline_idx/ } @hold_checks;
is(scalar(@whole_reads), 0, 'none reads the partial index of unpaid orders')
  or diag $whole_reads[0];
my @planned = grep { /Query Text: SELECT l\.order_no, l\.sku_id/ } @hold_checks;
cmp_ok(scalar(@planned), '>=', 1, 'batches of one bucket row locked their planned holds');
is(scalar(grep { /stock_hold_expiry/ || !/stock_hold_pkey on stock_hold h/ } @planned), 0,
	'each by its primary key, never by the expiry index');

# the archive (every naptime here: archive_after is 90 days, nothing to
# archive) walks the index of finished orders by finishing time and stops
# at the first too young; a walk of the primary key, a scan of the table or
# a sort would read every live order
my @archive = grep { /LOG:  duration: .* plan:/ && /Query Text: SELECT o\.order_no FROM order_engine\.orders o WHERE o\.status OPERATOR\(pg_catalog\.=\) ANY/ } @plans;
cmp_ok(scalar(@archive), '>=', 1, scalar(@archive) . ' plans of the archive\'s batch');
my @other_reads = grep { !/Index Scan using orders_finished_idx on orders o/ || /orders_pkey|Seq Scan on orders|Sort/ } @archive;
is(scalar(@other_reads), 0, 'each walks the finished orders\' index in order, nothing else of orders')
  or diag $other_reads[0];

is($node->safe_psql('postgres', q{SELECT count(*) FROM order_engine.stock_audit() WHERE NOT ok}), '0',
	'the books balance');
$node->stop;
done_testing();
