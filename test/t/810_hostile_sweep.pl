# Issue 11: a generic hostile-object sweep.
#
# Three attackers, each owning a schema of its own that it puts first on
# its search_path: a member of order_engine_app, a member of
# order_engine_admin, and a database owner that is not superuser.  Each
# creates shadows of the operators, functions and aggregates internal SQL
# could use; a shadow logs who ran it and, if it runs as a superuser, makes
# its owner superuser.  Every table of the extension also carries a
# trigger of the DBA's that calls now() by its plain name, which only the
# search_path our internal SQL pins keeps away from the shadows.  Then
# every function of the extension the attacker may execute is called with
# valid arguments (plainly, in a transaction, in an exception block), every
# view is read, and the worker runs its jobs with the database's and the
# roles' search_path set hostile.
#
# Asserted: no attacker becomes superuser, no shadow ever runs as anyone
# but its owner, no attacker gains a privilege, nothing of ours runs as a
# superuser unless a superuser called it, no object of the extension is
# owned by a superuser, and the worker works as order_engine_owner.
#
# New functions are covered automatically: a function of the extension
# without sample arguments in %SAMPLES below fails the test.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use OrderEngineTest;

# Every session this script opens pins its own search_path on the command
# line, which beats ALTER DATABASE/ROLE ... SET: the hostile settings below
# must only ever reach the attackers' own sessions and the worker.
$ENV{PGOPTIONS} = '-c search_path=pg_catalog,public';

my $node = oe_node('sweep', conf => join("\n",
	"order_engine.naptime = '200ms'",
	"order_engine.archive_after = 0",
	"order_engine.archive_pause = 0",
	"log_min_messages = log"));
$node->start;

my $db = 'shop';
my %ATTACKERS = (
	app   => 'att_app',      # member of order_engine_app
	admin => 'att_admin',    # member of order_engine_admin
	dbo   => 'att_dbo',      # owns database shop, no other rights
);

sub su { return $node->safe_psql($db, $_[0]); }

sub wait_shop
{
	my ($sql, $want, $secs) = @_;
	my $deadline = time() + ($secs // 30);
	my $got = '';
	while (time() < $deadline)
	{
		$got = su($sql);
		return 1 if $got eq $want;
		usleep(100_000);
	}
	diag "last answer: $got";
	return 0;
}

# ---- the server, the database, the attackers ------------------------------

$node->safe_psql('postgres', q{
	CREATE ROLE att_dbo LOGIN;
	CREATE DATABASE shop OWNER att_dbo;
});
su('CREATE EXTENSION order_engine');
su(q{
	CREATE ROLE att_app LOGIN IN ROLE order_engine_app;
	CREATE ROLE att_admin LOGIN IN ROLE order_engine_admin;
	CREATE SCHEMA attacker_app AUTHORIZATION att_app;
	CREATE SCHEMA attacker_admin AUTHORIZATION att_admin;
	CREATE SCHEMA attacker_dbo AUTHORIZATION att_dbo;

	-- what the test records, writable by anyone (a shadow runs as whoever
	-- calls it)
	CREATE SCHEMA oe_test;
	GRANT USAGE ON SCHEMA oe_test TO PUBLIC;
	CREATE TABLE oe_test.shadow_log (
		at timestamptz NOT NULL DEFAULT clock_timestamp(),
		attacker text NOT NULL, cur text NOT NULL, sess text NOT NULL,
		what text NOT NULL, backend_type text);
	GRANT INSERT ON oe_test.shadow_log TO PUBLIC;
	CREATE TABLE oe_test.leak_log (
		at timestamptz NOT NULL DEFAULT clock_timestamp(),
		cur text NOT NULL, sess text NOT NULL, what text NOT NULL);
	GRANT INSERT ON oe_test.leak_log TO PUBLIC;
	-- who writes the extension's tables: a statement trigger on each
	CREATE TABLE oe_test.write_log (
		at timestamptz NOT NULL DEFAULT clock_timestamp(),
		tbl text NOT NULL, cur text NOT NULL, sess text NOT NULL,
		cur_super boolean NOT NULL, sess_super boolean NOT NULL,
		backend_type text, pid integer NOT NULL DEFAULT pg_backend_pid());
	GRANT INSERT ON oe_test.write_log TO PUBLIC;
	CREATE FUNCTION oe_test.log_write() RETURNS trigger
		LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
	BEGIN
		INSERT INTO oe_test.write_log (tbl, cur, sess, cur_super, sess_super, backend_type)
		SELECT TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, current_user, session_user,
		       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
		       (SELECT rolsuper FROM pg_roles WHERE rolname = session_user),
		       coalesce((SELECT backend_type FROM pg_stat_activity WHERE pid = pg_backend_pid()),
		                current_setting('application_name'));
		RETURN NULL;
	END $$;
	-- and an innocent trigger of the DBA's that names what it calls plainly,
	-- as most triggers do: it runs as whoever writes the table, with the
	-- search_path of the statement that fired it, so only the path our
	-- internal SQL pins keeps the attackers' shadow of now() out of it
	CREATE FUNCTION oe_test.stamp_write() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		PERFORM now();
		RETURN NULL;
	END $$;
	DO $$
	DECLARE
		r regclass;
	BEGIN
		FOR r IN SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		          WHERE n.nspname IN ('order_engine', 'order_engine_archive') AND c.relkind = 'r'
		LOOP
			EXECUTE format('CREATE TRIGGER oe_test_log_write AFTER INSERT OR UPDATE OR DELETE ON %s'
			               ' FOR EACH STATEMENT EXECUTE FUNCTION oe_test.log_write()', r);
			EXECUTE format('CREATE TRIGGER oe_test_stamp_write AFTER INSERT OR UPDATE OR DELETE ON %s'
			               ' FOR EACH STATEMENT EXECUTE FUNCTION oe_test.stamp_write()', r);
		END LOOP;
	END $$;

	-- a table of the caller's own for versioned_update
	CREATE TABLE oe_test.vt (id integer PRIMARY KEY, version bigint NOT NULL, val text);
	INSERT INTO oe_test.vt VALUES (1, 1, 'a');
	GRANT SELECT, UPDATE ON oe_test.vt TO PUBLIC;

	-- fixtures the sample arguments refer to
	SELECT order_engine.restock(1, 1000000);
	SELECT order_engine.restock(2, 1000000);
	SELECT order_engine.set_price(1, 2.50);
	SELECT order_engine.set_price(2, 1.25);
	SELECT order_engine.set_buckets(1, 4);
	SELECT order_engine.restock(5, 1000000);
	SELECT order_engine.create_id_tag('sweep', 1, 10);
});

# the worker serves shop from now on
$node->safe_psql('postgres', "ALTER SYSTEM SET order_engine.database = 'shop'");
$node->reload;
ok(wait_shop(q{SELECT count(*) FROM pg_stat_activity
	WHERE backend_type = 'order_engine worker' AND datname = 'shop'}, '1'),
	'a worker serves shop');

# ---- the shadows -----------------------------------------------------------

# trip(): log the caller; make the owner superuser if run as a superuser.
# RAISE LOG survives a rollback of the call, the table row does not.
sub shadow_sql
{
	my ($schema, $role) = @_;
	my $sql = <<"EOS";
-- open to everyone, as a real attacker's would be: a role without USAGE on
-- a schema never finds a name in it, whatever its search_path says
GRANT USAGE ON SCHEMA $schema TO PUBLIC;
CREATE FUNCTION $schema.trip(what text) RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS \$f\$
BEGIN
	IF current_user <> '$role' THEN
		RAISE LOG 'OE_SHADOW_FOREIGN attacker=% current_user=% session_user=% what=%',
			'$role', current_user, session_user, what;
	END IF;
	BEGIN
		INSERT INTO oe_test.shadow_log (attacker, cur, sess, what, backend_type)
		VALUES ('$role', current_user, session_user, what,
		        coalesce((SELECT backend_type FROM pg_stat_activity WHERE pid = pg_backend_pid()),
		                 current_setting('application_name')));
	EXCEPTION WHEN others THEN NULL;	-- read-only transaction and the like
	END;
	IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
		EXECUTE 'ALTER ROLE $role SUPERUSER';
	END IF;
END \$f\$;

-- every operator = <> < > <= >= + - * || -> ->> of pg_catalog on these
-- types, shadowed with the exact same argument types
DO \$d\$
DECLARE
	o record;
	types regtype[] := ARRAY['text', 'bigint', 'integer', 'numeric', 'timestamptz',
	                         'interval', 'jsonb', 'boolean']::regtype[];
	fn text;
BEGIN
	FOR o IN
		SELECT p.oid, p.oprname, p.oprkind,
		       format_type(p.oprleft, NULL) AS l, format_type(p.oprright, NULL) AS r,
		       format_type(p.oprresult, NULL) AS res
		  FROM pg_operator p
		 WHERE p.oprnamespace = 'pg_catalog'::regnamespace
		   AND p.oprname IN ('=', '<>', '<', '>', '<=', '>=', '+', '-', '*', '||', '->', '->>')
		   AND (p.oprleft = ANY (types) OR (p.oprkind = 'l' AND p.oprleft = 0))
		   AND p.oprright = ANY (types)
	LOOP
		fn := '$schema.op_' || o.oid;
		IF o.oprkind = 'l' THEN
			EXECUTE format('CREATE FUNCTION %s(b %s) RETURNS %s LANGUAGE plpgsql'
				' SET search_path = pg_catalog, pg_temp AS %L',
				fn, o.r, o.res,
				format('BEGIN PERFORM $schema.trip(%L); RETURN OPERATOR(pg_catalog.%s) b; END',
				       o.oprname || ' ' || o.r, o.oprname));
			EXECUTE format('CREATE OPERATOR $schema.%s (RIGHTARG = %s, FUNCTION = %s)',
				o.oprname, o.r, fn);
		ELSE
			EXECUTE format('CREATE FUNCTION %s(a %s, b %s) RETURNS %s LANGUAGE plpgsql'
				' SET search_path = pg_catalog, pg_temp AS %L',
				fn, o.l, o.r, o.res,
				format('BEGIN PERFORM $schema.trip(%L); RETURN a OPERATOR(pg_catalog.%s) b; END',
				       o.l || ' ' || o.oprname || ' ' || o.r, o.oprname));
			EXECUTE format('CREATE OPERATOR $schema.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = %s)',
				o.oprname, o.l, o.r, fn);
		END IF;
	END LOOP;
END
\$d\$;

-- common functions
CREATE FUNCTION $schema.now() RETURNS timestamptz LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS \$f\$ BEGIN PERFORM $schema.trip('now()'); RETURN pg_catalog.now(); END \$f\$;
CREATE FUNCTION $schema.lower(t text) RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS \$f\$ BEGIN PERFORM $schema.trip('lower'); RETURN pg_catalog.lower(t); END \$f\$;
CREATE FUNCTION $schema.upper(t text) RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS \$f\$ BEGIN PERFORM $schema.trip('upper'); RETURN pg_catalog.upper(t); END \$f\$;
CREATE FUNCTION $schema.length(t text) RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS \$f\$ BEGIN PERFORM $schema.trip('length'); RETURN pg_catalog.length(t); END \$f\$;
CREATE FUNCTION $schema.octet_length(t text) RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS \$f\$ BEGIN PERFORM $schema.trip('octet_length'); RETURN pg_catalog.octet_length(t); END \$f\$;
CREATE FUNCTION $schema.sha256(b bytea) RETURNS bytea LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS \$f\$ BEGIN PERFORM $schema.trip('sha256'); RETURN pg_catalog.sha256(b); END \$f\$;
CREATE FUNCTION $schema.md5(t text) RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS \$f\$ BEGIN PERFORM $schema.trip('md5'); RETURN pg_catalog.md5(t); END \$f\$;
CREATE FUNCTION $schema.jsonb_typeof(j jsonb) RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS \$f\$ BEGIN PERFORM $schema.trip('jsonb_typeof'); RETURN pg_catalog.jsonb_typeof(j); END \$f\$;
CREATE FUNCTION $schema.jsonb_array_length(j jsonb) RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS \$f\$ BEGIN PERFORM $schema.trip('jsonb_array_length'); RETURN pg_catalog.jsonb_array_length(j); END \$f\$;
CREATE FUNCTION $schema.jsonb_strip_nulls(j jsonb) RETURNS jsonb LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS \$f\$ BEGIN PERFORM $schema.trip('jsonb_strip_nulls'); RETURN pg_catalog.jsonb_strip_nulls(j); END \$f\$;
CREATE FUNCTION $schema.jsonb_array_elements(j jsonb) RETURNS SETOF jsonb LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS \$f\$ BEGIN PERFORM $schema.trip('jsonb_array_elements'); RETURN QUERY SELECT pg_catalog.jsonb_array_elements(j); END \$f\$;
CREATE FUNCTION $schema.jsonb_array_elements_text(j jsonb) RETURNS SETOF text LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS \$f\$ BEGIN PERFORM $schema.trip('jsonb_array_elements_text'); RETURN QUERY SELECT pg_catalog.jsonb_array_elements_text(j); END \$f\$;
CREATE FUNCTION $schema.jsonb_object_keys(j jsonb) RETURNS SETOF text LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS \$f\$ BEGIN PERFORM $schema.trip('jsonb_object_keys'); RETURN QUERY SELECT pg_catalog.jsonb_object_keys(j); END \$f\$;
CREATE FUNCTION $schema.jsonb_each(j jsonb, OUT key text, OUT value jsonb) RETURNS SETOF record LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS \$f\$ BEGIN PERFORM $schema.trip('jsonb_each'); RETURN QUERY SELECT * FROM pg_catalog.jsonb_each(j); END \$f\$;
CREATE FUNCTION $schema.jsonb_each_text(j jsonb, OUT key text, OUT value text) RETURNS SETOF record LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS \$f\$ BEGIN PERFORM $schema.trip('jsonb_each_text'); RETURN QUERY SELECT * FROM pg_catalog.jsonb_each_text(j); END \$f\$;
CREATE FUNCTION $schema.jsonb_extract_path(j jsonb, VARIADIC p text[]) RETURNS jsonb LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS \$f\$ BEGIN PERFORM $schema.trip('jsonb_extract_path'); RETURN pg_catalog.jsonb_extract_path(j, VARIADIC p); END \$f\$;
CREATE FUNCTION $schema.jsonb_set(j jsonb, p text[], v jsonb, c boolean DEFAULT true) RETURNS jsonb LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS \$f\$ BEGIN PERFORM $schema.trip('jsonb_set'); RETURN pg_catalog.jsonb_set(j, p, v, c); END \$f\$;
CREATE FUNCTION $schema.to_jsonb(v anyelement) RETURNS jsonb LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS \$f\$ BEGIN PERFORM $schema.trip('to_jsonb'); RETURN pg_catalog.to_jsonb(v); END \$f\$;
CREATE FUNCTION $schema.unnest(a anyarray) RETURNS SETOF anyelement LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS \$f\$ BEGIN PERFORM $schema.trip('unnest'); RETURN QUERY SELECT pg_catalog.unnest(a); END \$f\$;
-- jsonb_build_object/jsonb_build_array are VARIADIC "any" (no PL can take
-- that): typed overloads win over "any" on exact argument types
CREATE FUNCTION $schema.jsonb_build_object(k text, v bigint) RETURNS jsonb LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS \$f\$ BEGIN PERFORM $schema.trip('jsonb_build_object(text,bigint)'); RETURN pg_catalog.jsonb_build_object(k, v); END \$f\$;
CREATE FUNCTION $schema.jsonb_build_object(k text, v integer) RETURNS jsonb LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS \$f\$ BEGIN PERFORM $schema.trip('jsonb_build_object(text,integer)'); RETURN pg_catalog.jsonb_build_object(k, v); END \$f\$;
CREATE FUNCTION $schema.jsonb_build_object(k text, v text) RETURNS jsonb LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS \$f\$ BEGIN PERFORM $schema.trip('jsonb_build_object(text,text)'); RETURN pg_catalog.jsonb_build_object(k, v); END \$f\$;
CREATE FUNCTION $schema.jsonb_build_object(k text, v numeric) RETURNS jsonb LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS \$f\$ BEGIN PERFORM $schema.trip('jsonb_build_object(text,numeric)'); RETURN pg_catalog.jsonb_build_object(k, v); END \$f\$;
CREATE FUNCTION $schema.jsonb_build_object(k text, v jsonb) RETURNS jsonb LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS \$f\$ BEGIN PERFORM $schema.trip('jsonb_build_object(text,jsonb)'); RETURN pg_catalog.jsonb_build_object(k, v); END \$f\$;
CREATE FUNCTION $schema.jsonb_build_array(v bigint) RETURNS jsonb LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS \$f\$ BEGIN PERFORM $schema.trip('jsonb_build_array(bigint)'); RETURN pg_catalog.jsonb_build_array(v); END \$f\$;

-- aggregates sum and count
CREATE FUNCTION $schema.sum_i8(s numeric, v bigint) RETURNS numeric LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS \$f\$ BEGIN PERFORM $schema.trip('sum(bigint)'); IF v IS NULL THEN RETURN s; END IF; RETURN coalesce(s, 0) + v; END \$f\$;
CREATE AGGREGATE $schema.sum(bigint) (SFUNC = $schema.sum_i8, STYPE = numeric);
CREATE FUNCTION $schema.sum_i4(s bigint, v integer) RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS \$f\$ BEGIN PERFORM $schema.trip('sum(integer)'); IF v IS NULL THEN RETURN s; END IF; RETURN coalesce(s, 0) + v; END \$f\$;
CREATE AGGREGATE $schema.sum(integer) (SFUNC = $schema.sum_i4, STYPE = bigint);
CREATE FUNCTION $schema.sum_num(s numeric, v numeric) RETURNS numeric LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS \$f\$ BEGIN PERFORM $schema.trip('sum(numeric)'); IF v IS NULL THEN RETURN s; END IF; RETURN coalesce(s, 0) + v; END \$f\$;
CREATE AGGREGATE $schema.sum(numeric) (SFUNC = $schema.sum_num, STYPE = numeric);
CREATE FUNCTION $schema.count_star(s bigint) RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS \$f\$ BEGIN PERFORM $schema.trip('count(*)'); RETURN s + 1; END \$f\$;
CREATE AGGREGATE $schema.count(*) (SFUNC = $schema.count_star, STYPE = bigint, INITCOND = '0');
CREATE FUNCTION $schema.count_i8(s bigint, v bigint) RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS \$f\$ BEGIN PERFORM $schema.trip('count(bigint)'); RETURN s + CASE WHEN v IS NULL THEN 0 ELSE 1 END; END \$f\$;
CREATE AGGREGATE $schema.count(bigint) (SFUNC = $schema.count_i8, STYPE = bigint, INITCOND = '0');
CREATE FUNCTION $schema.count_txt(s bigint, v text) RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS \$f\$ BEGIN PERFORM $schema.trip('count(text)'); RETURN s + CASE WHEN v IS NULL THEN 0 ELSE 1 END; END \$f\$;
CREATE AGGREGATE $schema.count(text) (SFUNC = $schema.count_txt, STYPE = bigint, INITCOND = '0');
EOS
	return $sql;
}

sub as_role
{
	my ($role, $sql, %opts) = @_;
	my ($ret, $out, $err) = $node->psql($db, $sql,
		extra_params => [ '-U', $role ], on_error_stop => $opts{stop} // 0);
	return ($ret, $out, $err);
}

for my $x (sort keys %ATTACKERS)
{
	my ($ret, $out, $err) = as_role($ATTACKERS{$x}, shadow_sql("attacker_$x", $ATTACKERS{$x}), stop => 1);
	is($ret, 0, "$ATTACKERS{$x} created its shadows") or diag $err;
}
my $nshadows = su(q{SELECT count(*) FROM pg_operator WHERE oprnamespace = 'attacker_app'::regnamespace});
cmp_ok($nshadows, '>=', 80, "$nshadows operators shadowed per attacker");

# the shadows are live: under the hostile path, the attacker's own query
# runs them (as itself)
as_role('att_app', q{SET search_path = attacker_app, pg_catalog;
	SELECT 'a'::text = 'a'::text, 1::bigint + 2::bigint, now(), count(*) FROM (VALUES (1)) v(x)});
is(su(q{SELECT count(DISTINCT what) >= 4 FROM oe_test.shadow_log WHERE attacker = 'att_app' AND cur = 'att_app'}),
	't', 'shadows take precedence over pg_catalog under the hostile search_path');
su('TRUNCATE oe_test.shadow_log');

# ---- what the attackers may do, before -------------------------------------

my $privs_sql = <<'EOS';
WITH r AS (SELECT oid, rolname FROM pg_roles WHERE rolname = :'role'),
ns AS (SELECT oid FROM pg_namespace WHERE nspname IN ('order_engine', 'order_engine_archive', 'oe_test', 'public'))
SELECT k || '=' || v FROM (
  SELECT 'attr:' || a.k AS k, a.v::text AS v FROM pg_roles p, r,
    LATERAL (VALUES ('super', p.rolsuper), ('createrole', p.rolcreaterole), ('createdb', p.rolcreatedb),
                    ('replication', p.rolreplication), ('bypassrls', p.rolbypassrls)) a(k, v)
   WHERE p.oid = r.oid
  UNION ALL
  SELECT 'member:' || g.rolname, pg_has_role(r.oid, g.oid, 'USAGE')::text || pg_has_role(r.oid, g.oid, 'MEMBER')::text
    FROM pg_roles g, r WHERE g.oid <> r.oid
  UNION ALL
  SELECT 'rel:' || c.oid::regclass || ':' || p, has_table_privilege(r.oid, c.oid, p)::text
    FROM pg_class c, r, unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) p
   WHERE c.relnamespace IN (SELECT oid FROM ns) AND c.relkind IN ('r', 'v', 'm', 'p', 'f')
  UNION ALL
  SELECT 'seq:' || c.oid::regclass || ':' || p, has_sequence_privilege(r.oid, c.oid, p)::text
    FROM pg_class c, r, unnest(ARRAY['USAGE', 'SELECT', 'UPDATE']) p
   WHERE c.relnamespace IN (SELECT oid FROM ns) AND c.relkind = 'S'
  UNION ALL
  SELECT 'fn:' || f.oid::regprocedure, has_function_privilege(r.oid, f.oid, 'EXECUTE')::text
    FROM pg_proc f, r WHERE f.pronamespace IN (SELECT oid FROM ns)
  UNION ALL
  SELECT 'schema:' || n.nspname || ':' || p, has_schema_privilege(r.oid, n.oid, p)::text
    FROM pg_namespace n, r, unnest(ARRAY['USAGE', 'CREATE']) p
  UNION ALL
  SELECT 'db:' || d.datname || ':' || p, has_database_privilege(r.oid, d.oid, p)::text
    FROM pg_database d, r, unnest(ARRAY['CREATE', 'CONNECT', 'TEMP']) p
) s ORDER BY 1;
EOS

sub privileges_of
{
	my ($role) = @_;
	my ($ret, $out, $err) = $node->psql($db, $privs_sql, extra_params => [ '-v', "role=$role" ]);
	die "privilege query failed: $err" if $ret;
	return { map { /^(.*)=(\w+)$/ ? ($1 => $2) : () } split /\n/, $out };
}
my %before = map { $_ => privileges_of($_) } values %ATTACKERS;

# ---- every function of the extension, with valid arguments -----------------

# Sample arguments per signature (without the schema), in the order they
# are called.  {B} is a number of its own per attacker and way of calling.
# A function of the extension that is missing here fails the test: add
# samples for every new signature.  Signatures listed but absent are skipped.
my $lines = q{'[{"sku_id": 1, "qty": 1}, {"sku_id": 2, "qty": 1}]'};
my @SAMPLES = (
	[ 'restock(bigint,bigint,text)',            "1, 10, 'sweep'" ],
	[ 'set_price(bigint,numeric)',              "3, 1.5" ],
	[ 'set_buckets(bigint,integer)',            "2, 3" ],
	[ 'set_purchase_limit(bigint,bigint)',      "2, 1000000" ],
	[ 'set_escrow(bigint,boolean)',             "5, true" ],
	[ 'reserve(bigint,bigint[],bigint[],interval,bigint)', "{B} + 7, '{5}', '{2}', '1 second', 7" ],
	[ 'reserve(bigint,bigint[],bigint[],interval,bigint)', "{B} + 8, '{5,1}', '{1,1}', '30 minutes', 7" ],
	[ 'fold_escrow(integer)',                   "10" ],
	[ 'try_deduct(bigint,bigint)',              "1, 1" ],
	[ 'reserve(bigint,bigint[],bigint[],interval,bigint)', "{B} + 4, '{1,2}', '{1,1}', '30 minutes', 7" ],
	[ 'reserve(bigint,bigint[],bigint[],interval,bigint)', "{B} + 5, '{1,2}', '{2,1}', '1 second', 8" ],
	[ 'reserve(bigint,bigint[],bigint[],interval,bigint)', "{B} + 4, '{1,2}', '{1,1}', '30 minutes', 7" ],
	[ 'confirm(bigint)',                        "{B} + 4" ],
	[ 'release(bigint)',                        "{B} + 5" ],
	[ 'stock_audit()',                          "" ],
	[ 'create_id_tag(text,bigint,integer,text)', "'sweep{B}', 1, 10, 'sweep tag'" ],
	[ 'next_id(text)',                          "'sweep'" ],
	[ 'next_id(text)',                          "'sweep{B}'" ],
	[ 'next_ids(text,integer)',                 "'sweep', 3" ],
	[ 'next_order_no(bigint)',                  "7" ],
	[ 'shard_of(bigint)',                       "12307" ],
	[ 'snowflake_id()',                         "" ],
	[ 'id_segment_state()',                     "" ],
	[ 'idem_begin(text,text,jsonb,interval)',   q{'sweep', 'k{B}', '{"a": 1}', '1 second'} ],
	[ 'idem_begin(text,text,jsonb,interval)',   q{'sweep', 'k{B}b', '{"a": 2}', '1 second'} ],
	[ 'idem_begin(text,text,jsonb,interval)',   q{'sweep', 'k{B}', '{"a": 1}', '1 second'} ],
	[ 'idem_finish(text,text,jsonb)',           q{'sweep', 'k{B}', '{"r": 1}'} ],
	[ 'idem_finish(text,text,jsonb,text)',      q{'sweep', 'k{B}', '{"r": 1}', NULL} ],
	[ 'idem_abort(text,text)',                  q{'sweep', 'k{B}b'} ],
	[ 'idem_abort(text,text,text)',             q{'sweep', 'k{B}b', NULL} ],
	[ 'issue_token(bigint,interval)',           "7, '1 second'" ],
	[ 'consume_token(bigint,text)',             "7, order_engine.issue_token(7, '15 minutes')" ],
	[ 'reap_expired_keys(integer)',             "10" ],
	[ 'versioned_update(regclass,jsonb,bigint,jsonb)',
		q{'oe_test.vt', '{"id": 1}', (SELECT version FROM oe_test.vt WHERE id = 1), '{"val": "{B}"}'} ],
	[ 'versioned_update(regclass,jsonb,bigint,jsonb)',
		q{'order_engine.orders', '{"order_no": {B}}', 1, '{"note": "pwned"}'} ],
	[ 'quote(bigint,jsonb,interval)',           "7, $lines, '1 second'" ],
	[ 'place_order(bigint,bigint,bigint,jsonb,interval,text)', "{B} + 1, 7, 900, $lines, '30 minutes', NULL" ],
	[ 'place_order(bigint,bigint,bigint,jsonb,interval,text)', "{B} + 2, 7, 900, $lines, '30 minutes', order_engine.quote(7, $lines)" ],
	[ 'place_order(bigint,bigint,bigint,jsonb,interval,text)', "{B} + 3, 7, 900, $lines, '30 minutes', NULL" ],
	[ 'place_order(bigint,bigint,bigint,jsonb,interval,text)', "{B} + 6, 7, 900, $lines, '1 second', NULL" ],
	[ 'place_order(bigint,bigint,bigint,jsonb,interval,text)', "{B} + 1, 7, 900, $lines, '30 minutes', NULL" ],
	[ 'order_status(bigint)',                   "{B} + 1" ],
	[ 'pay_order(bigint,text,numeric)',         "{B} + 1, 'pay{B}', 3.75" ],
	[ 'pay_order(bigint,text,numeric)',         "{B} + 1, 'pay{B}', 3.75" ],
	[ 'ship_order(bigint,text)',                "{B} + 1, 'L{B}'" ],
	[ 'update_order(bigint,bigint,jsonb)',      q{{B} + 1, 3, '{"note": "n"}'} ],
	[ 'complete_order(bigint)',                 "{B} + 1" ],
	[ 'buyer_orders(bigint,bigint,integer)',    "7, NULL, 5" ],
	[ 'seller_orders(bigint,bigint,integer)',   "900, {B} + 5, 5" ],
	[ 'cancel_order(bigint,text)',              "{B} + 2, 'sweep'" ],
	[ 'cancel_order(bigint,text)',              "{B} + 3, 'sweep'" ],
	[ 'pay_order(bigint,text,numeric)',         "{B} + 3, 'pay{B}c', 3.75" ],
	[ 'refund_order(bigint)',                   "{B} + 3" ],
	[ 'refund_payment(text,text)',              "'pay{B}c', 'ref{B}c'" ],
	[ 'order_audit()',                          "" ],
	[ 'claim_events(integer)',                  "5" ],
	[ 'ack_events(bigint[])',                   "ARRAY[1, 2, 3]::bigint[]" ],
	[ 'close_unpaid(integer)',                  "10" ],
	[ 'release_expired(integer)',               "10" ],
	[ 'release(bigint)',                        "{B} + 8" ],
	[ 'set_escrow(bigint,boolean)',             "5, false" ],
	[ 'archive_orders(interval,integer)',       "'0 seconds', 10" ],
	[ 'worker_status()',                        "" ],
);
my %has_sample = map { $_->[0] => 1 } @SAMPLES;

my @functions = split /\n/, su(q{
	SELECT substr(p.oid::regprocedure::text, length(n.nspname) + 2)
	  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
	  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
	  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'order_engine'
	 WHERE p.prorettype <> 'trigger'::regtype  -- fired by their table, by every call that writes it
	 ORDER BY 1});
my %exists = map { $_ => 1 } @functions;
my @missing = grep { !$has_sample{$_} } @functions;
is(join(', ', @missing), '', 'every function of the extension has sample arguments (add them for new functions)');
cmp_ok(scalar(@functions), '>=', 30, scalar(@functions) . ' functions in the extension');

my @views = split /\n/, su(q{
	SELECT c.oid::regclass FROM pg_class c
	  JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
	  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'order_engine'
	 WHERE c.relkind = 'v' ORDER BY 1});

my %mode_sql = (
	plain => sub { "SELECT * FROM $_[0];" },
	xact  => sub { "BEGIN;\nSELECT * FROM $_[0];\nSELECT 1;\nCOMMIT;" },
	block => sub {
		my ($call, $role) = @_;
		return <<"EOS";
DO \$oe\$
BEGIN
	BEGIN
		PERFORM * FROM $call;
	EXCEPTION WHEN others THEN NULL;
	END;
	IF current_user::text OPERATOR(pg_catalog.<>) session_user::text THEN
		INSERT INTO oe_test.leak_log (cur, sess, what) VALUES (current_user, session_user, \$q\$$call\$q\$);
	END IF;
	BEGIN
		EXECUTE 'ALTER ROLE $role SUPERUSER';
	EXCEPTION WHEN others THEN NULL;
	END;
END
\$oe\$;
EOS
	},
);

my $run = 0;
for my $x (sort keys %ATTACKERS)
{
	my $role = $ATTACKERS{$x};
	for my $mode (qw(plain xact block))
	{
		$run++;
		my $base = $run * 1000;
		my @sql = ("SET search_path = attacker_$x, pg_catalog;");
		my $ncalls = 0;
		for my $s (@SAMPLES)
		{
			my ($sig, $args) = @$s;
			next unless $exists{$sig};
			next unless su("SELECT has_function_privilege('$role', 'order_engine.$sig', 'EXECUTE')") eq 't';
			(my $name = $sig) =~ s/\(.*//;
			(my $a = $args) =~ s/\{B\}/$base/g;
			push @sql, $mode_sql{$mode}->("order_engine.$name($a)", $role);
			$ncalls++;
		}
		for my $v (@views)
		{
			next unless su("SELECT has_table_privilege('$role', '$v', 'SELECT')") eq 't';
			push @sql, $mode_sql{$mode}->($v, $role);
			$ncalls++;
		}
		my ($ret, $out, $err) = as_role($role, join("\n", @sql));
		my $nerr = () = $err =~ /ERROR:/g;
		note "$role, $mode: $ncalls calls, $nerr errors";
		if ($x eq 'app' && $mode eq 'plain')
		{
			is(su("SELECT order_engine.order_status($base + 1)"), 'completed',
				'the sweep really works the API (app attacker placed, paid, shipped, completed an order)')
			  or diag $err;
		}
	}
}

# ---- the worker with hostile settings --------------------------------------

my ($r, $o, $e) = as_role('att_dbo', 'ALTER DATABASE shop SET search_path = attacker_dbo, pg_catalog');
is($r, 0, 'the database owner set the database\'s search_path to its schema') or diag $e;
su(q{
	ALTER ROLE postgres IN DATABASE shop SET search_path = attacker_dbo, pg_catalog;
	DO $$ BEGIN
		IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'order_engine_owner') THEN
			ALTER ROLE order_engine_owner IN DATABASE shop SET search_path = attacker_dbo, pg_catalog;
		END IF;
	END $$;
});
# a fresh worker, which reads the new settings at connection
my $wpid = su(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'order_engine worker' AND datname = 'shop'});
su("SELECT pg_terminate_backend($wpid)");
ok(wait_shop(qq{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'order_engine worker'
	AND datname = 'shop' AND pid <> $wpid}, '1'), 'the worker came back after the settings changed');

# due work for every job: expired holds, unpaid orders, expired keys and
# tokens, a finished order to archive
su(qq{
	SELECT order_engine.reserve(g, '{1,2}', '{1,1}', '1 second', 70) FROM generate_series(900001, 900005) g;
	SELECT order_engine.place_order(g, 7, 900, $lines, '1 second') FROM generate_series(900101, 900103) g;
	SELECT order_engine.place_order(900201, 7, 900, $lines);
	SELECT order_engine.cancel_order(900201);
	-- delivered events: an order with pending ones stays live (0.7)
	SELECT order_engine.ack_events(array_agg(event_id)) FROM order_engine.order_events WHERE order_no = 900201;
	SELECT * FROM order_engine.idem_begin('worker', 'k1', '{}', '1 second');
	SELECT order_engine.issue_token(70, '1 second');
});
ok(wait_shop(q{SELECT
	(SELECT count(*) FROM order_engine.stock_hold WHERE order_no BETWEEN 900001 AND 900103 AND state = 'held') = 0
	AND (SELECT bool_and(order_engine.order_status(g) = 'closed') FROM generate_series(900101, 900103) g)
	AND EXISTS (SELECT FROM order_engine_archive.orders WHERE order_no = 900201)
	AND NOT EXISTS (SELECT FROM order_engine.idempotency_keys WHERE scope = 'worker')
	AND NOT EXISTS (SELECT FROM order_engine.checkout_tokens WHERE buyer_id = 70)}, 't', 30),
	'the worker released, closed, archived and reaped under the hostile settings');
note 'writers of the extension\'s tables: ' . su(q{SELECT string_agg(DISTINCT cur || '/' || sess || '/' || coalesce(backend_type, '?'), ', ')
	FROM oe_test.write_log});
# (the worker's pids, as pg_stat_activity hides a worker's backend_type
# from a non-superuser)
my $new_wpid = su(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'order_engine worker' AND datname = 'shop'});
my $worker_log = su(qq{SELECT string_agg(DISTINCT cur, ',') FROM oe_test.write_log
	WHERE pid IN ($wpid, $new_wpid)});
isnt($worker_log, '', 'the worker wrote the extension\'s tables (seen by the statement triggers)');

# ---- the verdict -----------------------------------------------------------

is(su(q{SELECT string_agg(rolname, ',') FROM pg_roles WHERE rolname LIKE 'att\_%' AND rolsuper}) // '', '',
	'no attacker became superuser');
my $foreign = su(q{SELECT string_agg(DISTINCT format('%s ran %s as %s (session %s, %s)',
		attacker, what, cur, sess, coalesce(backend_type, '?')), E'\n')
	FROM oe_test.shadow_log WHERE cur <> attacker});
is($foreign, '', 'no shadow ever ran as anyone but its owner (log table)');
my @logged = grep { /LOG:  OE_SHADOW_FOREIGN/ } split /\n/, slurp_file($node->logfile);
my %uniq;
@logged = grep { !$uniq{ s/^.*OE_SHADOW_FOREIGN//r }++ } @logged;
is(scalar(@logged), 0, 'no shadow ever ran as anyone but its owner (server log, rolled back calls too)')
  or diag join("\n", map { s/^.*OE_SHADOW_FOREIGN//r } @logged[0 .. ($#logged < 9 ? $#logged : 9)]);
is(su(q{SELECT string_agg(DISTINCT cur || ' after ' || left(what, 60), E'\n') FROM oe_test.leak_log}) // '', '',
	'an exception block around a call never leaves the caller as another user');
is(su(q{SELECT string_agg(DISTINCT format('%s wrote %s as superuser %s', sess, tbl, cur), E'\n')
	FROM oe_test.write_log WHERE cur_super AND NOT sess_super}) // '', '',
	'nothing of ours runs as a superuser for a caller that is not one');
is($worker_log, 'order_engine_owner', 'the worker writes as order_engine_owner');

for my $role (sort values %ATTACKERS)
{
	my $after = privileges_of($role);
	my @gained = map { "$_: $before{$role}{$_} -> $after->{$_}" }
	  grep { exists $after->{$_} && $after->{$_} ne $before{$role}{$_} } sort keys %{ $before{$role} };
	is(join("\n", @gained[0 .. ($#gained < 19 ? $#gained : 19)]), '', "$role gained no privilege");
}

# pgTAP-style facts of the design
is(su(q{SELECT rolsuper::text || rolcanlogin::text FROM pg_roles WHERE rolname = 'order_engine_owner'}),
	'falsefalse', 'role order_engine_owner exists, NOLOGIN, not superuser');
is(su(q{SELECT string_agg(n.nspname, ',') FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner
	WHERE n.nspname IN ('order_engine', 'order_engine_archive') AND r.rolsuper}) // '', '',
	'no schema of the extension is owned by a superuser');
is(su(q{SELECT string_agg(c.oid::regclass::text, ',' ORDER BY 1) FROM pg_class c
	JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_roles r ON r.oid = c.relowner
	WHERE n.nspname IN ('order_engine', 'order_engine_archive') AND r.rolsuper}) // '', '',
	'no table, index, sequence or view of the extension is owned by a superuser');
is(su(q{SELECT string_agg(p.oid::regprocedure::text, ',' ORDER BY 1) FROM pg_proc p
	JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_roles r ON r.oid = p.proowner
	WHERE n.nspname IN ('order_engine', 'order_engine_archive') AND r.rolsuper}) // '', '',
	'no function of the extension is owned by a superuser');
is(su(q{SELECT string_agg(p.oid::regprocedure::text, ',' ORDER BY 1) FROM pg_proc p
	JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_roles r ON r.oid = p.proowner
	WHERE n.nspname IN ('order_engine', 'order_engine_archive') AND p.prosecdef
	  AND r.rolname <> 'order_engine_owner'}) // '', '',
	'every SECURITY DEFINER function belongs to order_engine_owner');
is(su(q{SELECT string_agg(c.oid::regclass::text, ',' ORDER BY 1) FROM pg_class c
	JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_roles r ON r.oid = c.relowner
	WHERE n.nspname IN ('order_engine', 'order_engine_archive') AND c.relkind IN ('r', 'S', 'v')
	  AND r.rolname <> 'order_engine_owner'}) // '', '',
	'every table, sequence and view belongs to order_engine_owner');
is(su(q{SELECT string_agg(DISTINCT usename, ',') FROM pg_stat_activity
	WHERE backend_type = 'order_engine worker' AND datname = 'shop'}), 'order_engine_owner',
	'the worker backend runs as order_engine_owner (pg_stat_activity.usename)');

$node->stop;
done_testing();
