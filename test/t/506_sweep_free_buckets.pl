# The worker's sweep never makes the foreground wait for it on a hot SKU:
# a batch releases the due holds of one bucket row, so while a transaction
# keeps one bucket row of a SKU locked (a reserve waiting for its commit
# flush, here a session that does not commit), the due holds of the SKU's
# other bucket rows are released; those of the locked row follow once it
# is free.  Before, a batch locked every bucket row of the SKU, waiting
# for each, and released nothing until the row was free (each try ended
# in a lock timeout).  Also when the locked row's holds are the oldest
# due: the worker then counts that row busy for a while, and its next
# rounds pass over it.  test/mutation.sh makes the worker's batch one of
# whole orders again, and drops the busy mark, and expects this test to
# fail each time.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use OrderEngineTest;

my $node = oe_node('sweepfree', conf => "order_engine.naptime = 100\n");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION order_engine;
	SELECT order_engine.restock(9, 1000);
	SELECT order_engine.set_buckets(9, 4);
});

# 12 one-unit holds from one session: its takes go round the 4 bucket rows
$node->safe_psql('postgres', q{
	SELECT order_engine.reserve(g, '{9}', '{1}', '30 minutes') FROM generate_series(1, 12) g;
});
is($node->safe_psql('postgres', q{
	SELECT pg_catalog.count(DISTINCT buckets) FROM order_engine.stock_hold WHERE sku_id = 9}),
	'4', 'the holds lie in all four bucket rows');
my $locked = $node->safe_psql('postgres',
	q{SELECT buckets[1] FROM order_engine.stock_hold WHERE order_no = 1});

# a transaction keeps one bucket row locked; then every hold falls due
my $s = $node->background_psql('postgres');
$s->query_safe('BEGIN');
$s->query_safe("SELECT 1 FROM order_engine.stock_bucket WHERE sku_id = 9 AND bucket = $locked FOR UPDATE");
# (the locked row's holds fall due last here; the opposite order below)
$node->safe_psql('postgres', qq{
	UPDATE order_engine.stock_hold
	   SET expires_at = pg_catalog.now() - CASE WHEN buckets = ARRAY[$locked] THEN interval '1 second'
	                                          ELSE interval '2 seconds' END});

ok(wait_for($node, qq{SELECT pg_catalog.count(*) = 9 FROM order_engine.stock_hold
                      WHERE state = 'released' AND buckets <> ARRAY[$locked]}, 't', 20),
	'the due holds of the free bucket rows are released while one row is locked');
is($node->safe_psql('postgres', qq{SELECT pg_catalog.count(*) FROM order_engine.stock_hold
                                   WHERE state = 'held' AND buckets = ARRAY[$locked]}),
	'3', 'those of the locked row wait for it');

$s->query_safe('COMMIT');

# now the locked row's holds fall due first: the batch for that row ends
# in a lock timeout, the worker counts the row as busy for a while, and
# the holds of the other rows are released meanwhile
$node->safe_psql('postgres', q{
	SELECT order_engine.reserve(g, '{9}', '{1}', '30 minutes') FROM generate_series(101, 112) g;
});
my $locked2 = $node->safe_psql('postgres',
	q{SELECT buckets[1] FROM order_engine.stock_hold WHERE order_no = 101});
$s->query_safe('BEGIN');
$s->query_safe("SELECT 1 FROM order_engine.stock_bucket WHERE sku_id = 9 AND bucket = $locked2 FOR UPDATE");
$node->safe_psql('postgres', qq{
	UPDATE order_engine.stock_hold
	   SET expires_at = pg_catalog.now() - CASE WHEN buckets = ARRAY[$locked2] THEN interval '2 seconds'
	                                          ELSE interval '1 second' END
	 WHERE order_no > 100});
ok(wait_for($node, qq{SELECT pg_catalog.count(*) = 9 FROM order_engine.stock_hold
                      WHERE order_no > 100 AND state = 'released' AND buckets <> ARRAY[$locked2]}, 't', 30),
	'with the locked row\'s holds due first, the other rows\' holds are still released');
is($node->safe_psql('postgres', qq{SELECT pg_catalog.count(*) FROM order_engine.stock_hold
                                   WHERE order_no > 100 AND state = 'held'}),
	'3', 'only the locked row\'s holds wait');
# the row stays busy for a while (10 s): the next rounds pass over it
# instead of each waiting out a lock timeout on it again (one every round
# and backoff, about one a second, when it is not marked)
my $errors_sql = q{SELECT errors FROM order_engine.worker_status WHERE job = 'release_expired'};
my $errors = $node->safe_psql('postgres', $errors_sql);
sleep 3;
is($node->safe_psql('postgres', $errors_sql) - $errors, 0,
	'no batch tried the busy row again within 3 s');
$s->query_safe('COMMIT');
$s->quit;
ok(wait_for($node, q{SELECT pg_catalog.count(*) = 24 FROM order_engine.stock_hold WHERE state = 'released'},
		't', 30),
	'once the row is free, its holds are released too');
is($node->safe_psql('postgres', q{SELECT pg_catalog.count(*) FROM order_engine.stock_audit() WHERE NOT ok}),
	'0', 'stock_audit clean');
is($node->safe_psql('postgres', q{SELECT available FROM order_engine.stock WHERE sku_id = 9}),
	'1000', 'every unit is back');
is($node->safe_psql('postgres', q{SELECT pg_catalog.count(*) FROM order_engine.quarantine}),
	'0', 'nothing quarantined');

$node->stop;
done_testing();
