# The worker works as order_engine_owner under its own settings, whatever a
# database owner (not a superuser) sets for the database or a role: with
# ALTER DATABASE ... SET default_transaction_read_only, statement_timeout,
# lock_timeout and a hostile search_path (an "=" of the owner's own that
# would make it superuser), the worker still releases expired holds, and
# the hostile operator never runs.  test/mutation.sh removes the worker's
# pinned settings and expects this test to fail.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use OrderEngineTest;

my $node = oe_node('wsettings', conf => "order_engine.database = 'shop'\norder_engine.naptime = 200\n");
$node->start;
$node->safe_psql('postgres', q{
	CREATE ROLE shop_owner LOGIN;
	CREATE DATABASE shop OWNER shop_owner;
});
$node->safe_psql('shop', q{
	CREATE EXTENSION order_engine;
	SELECT order_engine.restock(1, 100);
});
ok(wait_for($node, q{SELECT pg_catalog.count(*) = 1 FROM pg_catalog.pg_stat_activity
                      WHERE backend_type = 'order_engine worker' AND datname = 'shop'
                        AND usename = 'order_engine_owner'}),
	'the worker serves shop as order_engine_owner');

# the database owner's hostile settings and objects
$node->safe_psql('shop', q{
	CREATE SCHEMA evil;
	CREATE TABLE evil.ran (who text, at timestamptz DEFAULT pg_catalog.now());
	GRANT USAGE ON SCHEMA evil TO PUBLIC;
	GRANT INSERT ON evil.ran TO PUBLIC;
	CREATE FUNCTION evil.eq(a text, b text) RETURNS boolean LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO evil.ran (who) VALUES (current_user);
		IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) current_user) THEN
			EXECUTE 'ALTER ROLE shop_owner SUPERUSER';
		END IF;
		RETURN a OPERATOR(pg_catalog.=) b;
	END $$;
	CREATE OPERATOR evil.= (leftarg = text, rightarg = text, function = evil.eq);
	CREATE FUNCTION evil.eq8(a bigint, b bigint) RETURNS boolean LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO evil.ran (who) VALUES (current_user);
		IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) current_user) THEN
			EXECUTE 'ALTER ROLE shop_owner SUPERUSER';
		END IF;
		RETURN a OPERATOR(pg_catalog.=) b;
	END $$;
	CREATE OPERATOR evil.= (leftarg = bigint, rightarg = bigint, function = evil.eq8);
	ALTER DATABASE shop SET search_path = evil, pg_catalog;
	ALTER DATABASE shop SET default_transaction_read_only = on;
	ALTER DATABASE shop SET statement_timeout = '1ms';
	ALTER DATABASE shop SET lock_timeout = '1ms';
}, extra_params => [ '-U', 'shop_owner' ]);

# a new worker picks the settings up when it connects
my $old = $node->safe_psql('postgres',
	q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'order_engine worker' AND datname = 'shop'});
$node->safe_psql('postgres', "SELECT pg_terminate_backend($old)");
ok(wait_for($node, qq{SELECT pg_catalog.count(*) = 1 FROM pg_catalog.pg_stat_activity
                       WHERE backend_type = 'order_engine worker' AND datname = 'shop' AND pid <> $old}),
	'a new worker connected under the hostile settings');

# the test's own sessions in shop override the hostile settings at
# connection start: a SET would itself be a statement under the 1 ms
# statement_timeout, which a loaded machine can exceed
sub shop_sql
{
	my ($sql) = @_;
	local $ENV{PGOPTIONS} = '-c statement_timeout=0 -c lock_timeout=0 '
	  . '-c default_transaction_read_only=off -c search_path=pg_catalog';
	return $node->safe_psql('shop', $sql);
}

# holds that expire: the worker must release them
shop_sql(q{
	BEGIN READ WRITE;
	SELECT order_engine.reserve(n, '{1}', '{1}', '1 second') FROM generate_series(1, 5) n;
	COMMIT;
});
my $released = 0;
my $deadline = time() + 60;
while (time() < $deadline)
{
	$released = shop_sql(q{
		SELECT pg_catalog.count(*) FROM order_engine.stock_hold WHERE state OPERATOR(pg_catalog.=) 'released'});
	last if $released eq '5';
	select(undef, undef, undef, 0.1);
}
is($released, '5',
	'the worker released the expired holds despite the database settings');
is(shop_sql(q{SELECT pg_catalog.count(*) FROM order_engine.stock_audit() WHERE NOT ok}),
	'0', 'stock_audit clean');
is(shop_sql(q{SELECT pg_catalog.count(*) FROM evil.ran WHERE who OPERATOR(pg_catalog.<>) 'shop_owner'}),
	'0', 'the hostile operator never ran inside the worker');
is($node->safe_psql('postgres', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'shop_owner'}),
	'f', 'the database owner did not become superuser');
is(shop_sql(q{SELECT pg_catalog.sum(errors) FROM order_engine.worker_status}),
	'0', 'no worker batch failed');

$node->stop;
done_testing();
