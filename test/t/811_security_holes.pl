# Issue 11: one subtest per hole the audit of 0.5 found (holes 1, 2, 4 and
# items 6, 7, 8, 9, 12).  The generic sweep is 810_hostile_sweep.pl; item 11
# is test/isolation/specs/close_unpaid_lock_order.spec.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use IPC::Run;
use OrderEngineTest;

# our own sessions never take a hostile search_path from role/db settings
$ENV{PGOPTIONS} = '-c search_path=pg_catalog,public';

my $node = oe_node('holes', conf => join("\n",
	"max_prepared_transactions = 4",
	"order_engine.naptime = '200ms'",
	"log_min_messages = log"));
$node->start;
my $started = $node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()');
$node->safe_psql('postgres', q{
	CREATE EXTENSION order_engine;
	CREATE SCHEMA oe_test;
	GRANT USAGE ON SCHEMA oe_test TO PUBLIC;
	CREATE TABLE oe_test.shadow_log (attacker text, cur text, sess text, what text);
	GRANT INSERT ON oe_test.shadow_log TO PUBLIC;
});

# OE_ONLY=regex runs only the subtests whose name matches (while debugging)
sub hole
{
	my ($name, $code) = @_;
	return if $ENV{OE_ONLY} && $name !~ /$ENV{OE_ONLY}/;
	subtest $name => $code;
	return;
}

sub poll_until
{
	my ($db, $sql, $want, $secs) = @_;
	my $deadline = time() + ($secs // 30);
	my $got = '';
	while (time() < $deadline)
	{
		$got = $node->safe_psql($db, $sql);
		return 1 if $got eq $want;
		usleep(100_000);
	}
	diag "last answer of <$sql>: $got";
	return 0;
}

sub is_super
{
	my ($role) = @_;
	return $node->safe_psql('postgres', "SELECT rolsuper FROM pg_roles WHERE rolname = '$role'");
}

# A member of order_engine_app owning a schema with a shadow =(text,text)
# that logs who runs it and makes its owner superuser if run as one.
sub make_attacker
{
	my ($role, $db) = @_;
	$db //= 'postgres';
	$node->safe_psql($db, qq{
		DO \$\$ BEGIN
			IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$role') THEN
				CREATE ROLE $role LOGIN IN ROLE order_engine_app;
			END IF;
		END \$\$;
		CREATE SCHEMA s_$role AUTHORIZATION $role;
	});
	$node->safe_psql($db, qq{
		SET ROLE $role;
		CREATE FUNCTION s_$role.eq(a text, b text) RETURNS boolean
			LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS \$f\$
		BEGIN
			IF current_user <> '$role' THEN
				RAISE LOG 'OE_SHADOW_FOREIGN attacker=% current_user=%', '$role', current_user;
			END IF;
			BEGIN
				INSERT INTO oe_test.shadow_log VALUES ('$role', current_user, session_user, 'text = text');
			EXCEPTION WHEN others THEN NULL;
			END;
			IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
				EXECUTE 'ALTER ROLE $role SUPERUSER';
			END IF;
			RETURN a OPERATOR(pg_catalog.=) b;
		END \$f\$;
		CREATE OPERATOR s_$role.= (LEFTARG = text, RIGHTARG = text, FUNCTION = s_$role.eq);
	});
	return;
}

sub as_role
{
	my ($role, $db, $sql) = @_;
	return $node->psql($db, $sql, extra_params => [ '-U', $role, '-v', 'VERBOSITY=verbose' ]);
}

# ---- hole 1 ----------------------------------------------------------------

hole 'hole 1: next_id, next_ids, next_order_no do not run the caller\'s =(text,text)' => sub {
	$node->safe_psql('postgres', q{
		SELECT order_engine.create_id_tag('h1_next_id');
		SELECT order_engine.create_id_tag('h1_next_ids');
	});
	my %calls = (
		h1a => q{SELECT order_engine.next_id('h1_next_id')},
		h1b => q{SELECT order_engine.next_ids('h1_next_ids', 3)},
		h1c => q{SELECT order_engine.next_order_no(4711)},
	);
	for my $role (sort keys %calls)
	{
		make_attacker($role);
		my ($ret, $out, $err) = as_role($role, 'postgres',
			"SET search_path = s_$role, pg_catalog;\n$calls{$role};\n$calls{$role};");
		note "$calls{$role}: $out $err";
		is(is_super($role), 'f', "$calls{$role}: the caller did not become superuser");
		is($node->safe_psql('postgres', "SELECT string_agg(DISTINCT cur, ',') FROM oe_test.shadow_log
			WHERE attacker = '$role' AND cur <> '$role'"), '',
			"$calls{$role}: the shadow =(text,text) never ran as another role");
	}
	my @foreign = grep { /LOG:  OE_SHADOW_FOREIGN attacker=h1/ } split /\n/, slurp_file($node->logfile);
	is(scalar(@foreign), 0, 'no shadow ran as another role (server log)') or diag $foreign[0];
};

# ---- hole 2 ----------------------------------------------------------------

hole 'hole 2: a lock timeout inside reserve leaves no subtransaction or user behind' => sub {
	make_attacker('h2');
	$node->safe_psql('postgres', q{
		SELECT order_engine.restock(21, 100);
		SELECT order_engine.restock(22, 100);
		SELECT order_engine.set_buckets(22, 2);
	});
	my $locker = $node->background_psql('postgres', on_error_stop => 0);
	$locker->query_safe(q{BEGIN; SELECT bucket FROM order_engine.stock_bucket WHERE sku_id = 22 FOR UPDATE});

	my ($ret, $out, $err) = as_role('h2', 'postgres', q{
		SET lock_timeout = '300ms';
		DO $$
		BEGIN
			BEGIN
				PERFORM order_engine.reserve(2001, '{21,22}', '{1,1}', '30 minutes', 5);
			EXCEPTION WHEN others THEN NULL;
			END;
			EXECUTE 'ALTER ROLE h2 SUPERUSER';
		END $$;
	});
	like($err, qr/ERROR:  42501/, 'ALTER ROLE after the caught timeout is refused (42501)')
	  or diag "ret $ret, out: $out, err: $err";
	is(is_super('h2'), 'f', 'the caller is not superuser');

	# the same block in a session that goes on: still the caller, and a
	# COMMIT afterwards does not kill the backend
	{
		my $s = $node->background_psql('postgres', on_error_stop => 0,
			extra_params => [ '-U', 'h2', '-v', 'VERBOSITY=verbose' ]);
		eval {
			$s->query(q{SET lock_timeout = '300ms';
				DO $$ BEGIN
					BEGIN
						PERFORM order_engine.reserve(2003, '{21,22}', '{1,1}', '30 minutes', 5);
					EXCEPTION WHEN others THEN NULL;
					END;
				END $$});
		};
		my $who = eval { $s->query('SELECT current_user') } // '';
		is($who, 'h2', 'after the caught timeout the session is still the caller');
		eval { $s->query('COMMIT') };
		$s->{stderr} = '';
		my $alive = eval { $s->query('SELECT 42') } // '';
		is($alive, '42', 'a COMMIT after the caught timeout does not kill the backend') or diag $s->{stderr};
		eval { $s->quit };
	}

	# without an exception block: the error, then COMMIT or ROLLBACK
	for my $end ('COMMIT', 'ROLLBACK')
	{
		my $s = $node->background_psql('postgres', on_error_stop => 0,
			extra_params => [ '-U', 'h2', '-v', 'VERBOSITY=verbose' ]);
		eval {
			$s->query(q{SET lock_timeout = '300ms'; BEGIN;
				SELECT order_engine.reserve(2002, '{21,22}', '{1,1}', '30 minutes', 5)});
		};
		like($s->{stderr}, qr/55P03|lock timeout/, "reserve timed out ($end case)");
		$s->{stderr} = '';
		eval { $s->query($end) };
		$s->{stderr} = '';
		my $alive = eval { $s->query('SELECT 42') } // '';
		is($alive, '42', "the session survives the $end after the error") or diag $s->{stderr};
		my $who = eval { $s->query('SELECT current_user') } // '';
		is($who, 'h2', "and is still the caller after $end");
		eval { $s->quit };
	}
	# the block inside an explicit transaction that commits: the caller's
	# state comes back at COMMIT, and the failed reserve leaves nothing
	{
		my $s = $node->background_psql('postgres', on_error_stop => 0,
			extra_params => [ '-U', 'h2', '-v', 'VERBOSITY=verbose' ]);
		eval {
			$s->query(q{SET lock_timeout = '300ms'; BEGIN;
				DO $$ BEGIN
					BEGIN
						PERFORM order_engine.reserve(2007, '{21,22}', '{1,1}', '30 minutes', 5);
					EXCEPTION WHEN others THEN NULL;
					END;
				END $$});
		};
		eval { $s->query('COMMIT') };
		$s->{stderr} = '';
		my $who = eval { $s->query('SELECT current_user') } // '';
		is($who, 'h2', 'after BEGIN, the caught timeout and COMMIT the session is the caller');
		$s->{stderr} = '';
		eval { $s->query('ALTER ROLE h2 SUPERUSER') };
		like($s->{stderr}, qr/ERROR:  42501/, 'and ALTER ROLE SUPERUSER is refused there (42501)');
		eval { $s->quit };
		is(is_super('h2'), 'f', 'the caller is not superuser');
	}

	my @fatal = grep { / FATAL:  / } split /\n/, slurp_file($node->logfile);
	is(scalar(@fatal), 0, 'no FATAL in the server log') or diag join("\n", @fatal);

	$locker->query_safe('COMMIT');
	$locker->quit;
	is($node->safe_psql('postgres', q{SELECT coalesce(string_agg(sku_id || ': ' || detail, '; '), '')
		FROM order_engine.stock_audit() WHERE NOT ok}), '',
		'stock_audit is clean: no units held without a stock_hold row');
	is($node->safe_psql('postgres', q{SELECT held FROM order_engine.stock WHERE sku_id = 21}),
		$node->safe_psql('postgres', q{SELECT coalesce(sum(qty), 0) FROM order_engine.stock_hold
			WHERE sku_id = 21 AND state = 'held'}), 'SKU 21: held equals its held holds');
	is($node->safe_psql('postgres', q{SELECT available || '/' || held FROM order_engine.stock WHERE sku_id = 21}),
		'100/0', 'SKU 21: no unit stayed held by the failed reserves');
	is($node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()'), $started, 'the server did not restart');
};

# ---- hole 4 ----------------------------------------------------------------

hole 'hole 4: a failed DROP/RENAME DATABASE does not make the worker leave' => sub {
	$node->safe_psql('postgres', q{
		CREATE ROLE h4_nobody LOGIN;
		CREATE ROLE h4_owner LOGIN;    -- owns shop4, no CREATEDB
		CREATE DATABASE shop4 OWNER h4_owner;
		CREATE DATABASE d4a;
		CREATE DATABASE d4b;
	});
	$node->safe_psql($_, 'CREATE EXTENSION order_engine') for qw(shop4 d4a d4b);
	$node->safe_psql('shop4', 'SELECT order_engine.restock(1, 100)');
	$node->safe_psql('postgres', "ALTER SYSTEM SET order_engine.database = 'postgres, shop4, d4a, d4b'");
	$node->reload;
	my $wsql = q{SELECT string_agg(pid::text, ',') FROM pg_stat_activity
		WHERE backend_type = 'order_engine worker' AND datname = };
	ok(poll_until('postgres', q{SELECT count(*) FROM pg_stat_activity
		WHERE backend_type = 'order_engine worker' AND datname IN ('shop4', 'd4a', 'd4b')}, '3'),
		'workers serve shop4, d4a and d4b');
	ok(poll_until('shop4', q{SELECT bool_and(state = 'idle') FROM order_engine.worker_status}, 't'),
		'the worker of shop4 is idle');
	my $pid = $node->safe_psql('postgres', "$wsql 'shop4'");

	for my $try (1 .. 3)
	{
		my ($r, $o, $e) = $node->psql('postgres', 'DROP DATABASE shop4', extra_params => [ '-U', 'h4_nobody' ]);
		like($e, qr/must be owner of database shop4/, "DROP DATABASE by a stranger: must be owner ($try)");
		($r, $o, $e) = $node->psql('postgres', 'ALTER DATABASE shop4 RENAME TO shop4x', extra_params => [ '-U', 'h4_nobody' ]);
		like($e, qr/must be owner of database shop4/, "RENAME by a stranger: must be owner ($try)");
		($r, $o, $e) = $node->psql('postgres', 'ALTER DATABASE shop4 RENAME TO shop4x', extra_params => [ '-U', 'h4_owner' ]);
		like($e, qr/permission denied to rename database/, "RENAME by the owner without CREATEDB: denied ($try)");
	}
	my $same = 1;
	for (1 .. 10)
	{
		$same = 0 if $node->safe_psql('postgres', "$wsql 'shop4'") ne $pid;
		usleep(200_000);
	}
	ok($same, "the worker of shop4 (pid $pid) stayed through the failed attempts");
	$node->safe_psql('shop4', q{SELECT order_engine.reserve(4001, '{1}', '{1}', '1 second')});
	ok(poll_until('shop4', q{SELECT count(*) FROM order_engine.stock_hold WHERE order_no = 4001 AND state = 'held'},
		'0', 6), 'an expired hold of shop4 is still released promptly after them');

	# two concurrent drops of two served databases both succeed: the drop of
	# d4a waits for a session of its own to leave, meanwhile d4b is dropped;
	# the worker of d4a must stay away until then
	my %oid = map { $_ => $node->safe_psql('postgres', "SELECT oid FROM pg_database WHERE datname = '$_'") } qw(d4a d4b);
	my $x = $node->background_psql('d4a', on_error_stop => 0);
	$x->query_safe('SELECT 1');
	my %res = map { $_ => { out => '', err => '' } } qw(d4a d4b);
	my $ha = IPC::Run::start([ 'psql', '-X', '-d', $node->connstr('postgres'), '-c', 'DROP DATABASE d4a' ],
		'>', \$res{d4a}{out}, '2>', \$res{d4a}{err}, IPC::Run::timeout(60));
	ok(poll_until('postgres', "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'order_engine worker'
		AND datname = 'd4a'", '0', 10), 'the worker of d4a left for its DROP');
	my $hb = IPC::Run::start([ 'psql', '-X', '-d', $node->connstr('postgres'), '-c', 'DROP DATABASE d4b' ],
		'>', \$res{d4b}{out}, '2>', \$res{d4b}{err}, IPC::Run::timeout(60));
	$hb->finish;
	# (at most 2.5 s: the DROP of d4a gives other sessions 5 s to leave)
	my $back = poll_until('postgres', "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'order_engine worker'
		AND datname = 'd4a'", '1', 2.5);
	note $back ? 'the worker of d4a came back during its DROP' : 'the worker of d4a stayed away';
	$x->quit;
	$ha->finish;
	for my $d (qw(d4a d4b))
	{
		is($res{$d}{err}, '', "concurrent DROP DATABASE $d succeeded");
	}
	is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_database WHERE datname IN ('d4a', 'd4b')}), '0',
		'both databases are gone');
	# a worker restarted while its database was being dropped (its hold-off
	# overwritten by the other drop) fails to connect
	my @restarted = grep { /order_engine worker FATAL:  database ($oid{d4a}|$oid{d4b}) does not exist/ }
	  split /\n/, slurp_file($node->logfile);
	is(scalar(@restarted), 0, 'no worker was started for a database while it was being dropped')
	  or diag $restarted[0];
	$node->safe_psql('postgres', "ALTER SYSTEM SET order_engine.database = 'postgres'");
	$node->reload;
};

# ---- item 7 ----------------------------------------------------------------

hole 'item 7: PREPARE TRANSACTION after place_order' => sub {
	$node->safe_psql('postgres', q{
		SELECT order_engine.restock(71, 100);
		SELECT order_engine.set_price(71, 1);
	});
	ok(poll_until('postgres', q{SELECT count(*) FROM pg_stat_activity
		WHERE backend_type = 'order_engine worker' AND datname = 'postgres'}, '1'), 'a worker serves postgres');
	ok(poll_until('postgres', q{SELECT bool_and(state = 'idle') FROM order_engine.worker_status}, 't'),
		'it is idle');
	my $listener = $node->background_psql('postgres', on_error_stop => 0);
	$listener->query_safe('LISTEN order_engine_events');
	my $s = $node->background_psql('postgres', on_error_stop => 0);
	my ($o, $e) = $s->query(q{BEGIN;
		SELECT order_engine.place_order(7001, 1, 1, '[{"sku_id": 71, "qty": 1}]');
		PREPARE TRANSACTION 'p7'});
	is($s->{stderr}, '', 'PREPARE TRANSACTION after place_order (with a worker)');
	$s->{stderr} = '';
	$node->safe_psql('postgres', q{COMMIT PREPARED 'p7'});
	is($node->safe_psql('postgres', 'SELECT order_engine.order_status(7001)'), 'pending_payment',
		'the prepared order committed');
	# whatever the commit notified is drained here
	$listener->query('SELECT pg_sleep(1.5)');
	$s->query('SELECT 1');
	is($s->{stderr}, '', 'the next transaction of that session does not error');
	my $out = $listener->query('SELECT pg_sleep(2)');
	unlike($out, qr/Asynchronous notification/,
		'the next transaction of that session does not inherit the notify');
	$s->quit;
	$listener->quit;

	# no worker serves the database: the transaction would NOTIFY itself
	$node->safe_psql('postgres', "ALTER SYSTEM SET order_engine.database = 'no_such_database'");
	$node->reload;
	ok(poll_until('postgres', q{SELECT count(*) FROM pg_stat_activity
		WHERE backend_type = 'order_engine worker'}, '0'), 'no worker runs');
	my ($ret, $out2, $err) = $node->psql('postgres', q{BEGIN;
		SELECT order_engine.place_order(7002, 1, 1, '[{"sku_id": 71, "qty": 1}]');
		PREPARE TRANSACTION 'p7b'});
	is($err, '', 'PREPARE TRANSACTION after place_order without a worker does not error');
	$node->psql('postgres', q{COMMIT PREPARED 'p7b'});
	is($node->safe_psql('postgres', 'SELECT order_engine.order_status(7002)'), 'pending_payment',
		'and the order commits');
	$node->safe_psql('postgres', "ALTER SYSTEM SET order_engine.database = 'postgres'");
	$node->reload;
	$node->psql('postgres', q{ROLLBACK PREPARED 'p7b'});
};

# ---- item 9 ----------------------------------------------------------------

hole 'item 9: snowflake_id is unique across the databases of one server' => sub {
	for my $d (qw(s9a s9b))
	{
		$node->safe_psql('postgres', "CREATE DATABASE $d");
		$node->safe_psql($d, 'CREATE EXTENSION order_engine; SELECT order_engine.snowflake_id()');
	}
	my @h;
	my %err;
	for my $d (qw(s9a s9b))
	{
		$err{$d} = '';
		push @h, IPC::Run::start([ 'psql', '-X', '-q', '-d', $node->connstr($d), '-c',
			'CREATE TABLE public.ids AS SELECT order_engine.snowflake_id() AS id FROM generate_series(1, 200000)' ],
			'>', \my $o, '2>', \$err{$d}, IPC::Run::timeout(120));
	}
	$_->finish for @h;
	is($err{s9a} . $err{s9b}, '', 'both loops ran');
	my %a = map { $_ => 1 } split /\n/, $node->safe_psql('s9a', 'SELECT id FROM public.ids');
	my @dup = grep { $a{$_} } split /\n/, $node->safe_psql('s9b', 'SELECT id FROM public.ids');
	is(scalar(@dup), 0, 'no id was handed out in both databases') or diag "e.g. $dup[0] (" . scalar(@dup) . ' in all)';
};

# ---- item 12 ---------------------------------------------------------------

hole 'item 12: replaying an order without lines does not crash the backend' => sub {
	$node->safe_psql('postgres', q{
		SELECT order_engine.restock(121, 100);
		SELECT order_engine.set_price(121, 1);
		SELECT order_engine.place_order(12001, 1, 1, '[{"sku_id": 121, "qty": 1}]');
		DELETE FROM order_engine.order_lines WHERE order_no = 12001;
	});
	my $bystander = $node->background_psql('postgres', on_error_stop => 0);
	$bystander->query_safe('SELECT 1');
	my ($ret, $out, $err) = $node->psql('postgres',
		q{SELECT order_engine.place_order(12001, 1, 1, '[{"sku_id": 121, "qty": 1}]')});
	unlike($err, qr/server closed the connection|terminated abnormally|connection to server was lost/,
		'the repeated place_order answers (a result or an error)') or diag $err;
	isnt($ret, 2, 'psql did not lose its connection');
	my $alive = eval { $bystander->query('SELECT 42') } // '';
	is($alive, '42', 'another session survived (no crash restart)');
	eval { $bystander->quit };
	my @killed = grep { /LOG:  .*was terminated by signal/ } split /\n/, slurp_file($node->logfile);
	is(scalar(@killed), 0, 'no backend was terminated by a signal') or diag $killed[0];
	# (the test servers run with restart_after_crash = off: a crash stops it)
	my ($r, $now) = $node->psql('postgres', 'SELECT pg_postmaster_start_time()');
	is($now, $started, 'the server is up and did not restart');
	$node->{_pid} = undef if $r != 0;    # it is down: nothing to stop
};

$node->stop if defined $node->{_pid};

# ---- item 6: its own server, a spinning backend must not hang the rest ------

hole 'item 6: snowflake_id after DROP/CREATE EXTENSION in another session' => sub {
	my $n6 = oe_node('snowflake6');
	$n6->start;
	$n6->safe_psql('postgres', 'CREATE EXTENSION order_engine');
	my ($in, $out, $err) = ('', '', '');
	my $h = IPC::Run::start([ 'psql', '-X', '-At', '-v', 'ON_ERROR_STOP=0', '-d', $n6->connstr('postgres') ],
		'<', \$in, '>', \$out, '2>', \$err, IPC::Run::timeout(120));
	# the slot is loaded; then a transaction that stays open across the
	# other session's DROP/CREATE EXTENSION
	$in .= "SELECT 'pid=' || pg_backend_pid();\nSELECT order_engine.snowflake_id();\n"
	  . "BEGIN;\nSELECT order_engine.snowflake_id();\n\\echo FIRST_DONE\n";
	$h->pump until $out =~ /FIRST_DONE/ || !$h->pumpable;
	my ($pid) = $out =~ /pid=(\d+)/;
	ok($pid, 'the session generated ids');
	$n6->safe_psql('postgres', q{DROP EXTENSION order_engine; CREATE EXTENSION order_engine;
		SELECT order_engine.snowflake_id()});
	# past the lease of the high-water mark the other session just wrote
	# (order_engine.snowflake_max_wait, 1 s)
	usleep(1_500_000);
	my $wait = sub {
		my ($what, $secs) = @_;
		my $deadline = time() + $secs;
		while (time() < $deadline)
		{
			$h->pump_nb;
			return 1 if $out =~ /$what/;
			usleep(50_000);
		}
		return 0;
	};
	$in .= "SELECT order_engine.snowflake_id();\n\\echo SECOND_DONE\n";
	my $done = $wait->('SECOND_DONE', 10);
	ok($done, 'snowflake_id after the extension was recreated works or fails, within 10 s')
	  or diag "stderr: $err";
	if (!$done)
	{
		$n6->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
		my $cancelled = $wait->('SECOND_DONE', 5);
		ok($cancelled, 'pg_cancel_backend interrupts it within 5 s');
		if (!$cancelled)
		{
			$n6->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
			ok($wait->('SECOND_DONE|connection to server was lost', 5) || $err =~ /connection/,
				'pg_terminate_backend ends it within 5 s');
		}
	}
	else
	{
		# a second call in the same state, cancelled at once: it answers
		$in .= "SELECT order_engine.snowflake_id() FROM generate_series(1, 1000);\n\\echo THIRD_DONE\n";
		usleep(100_000);
		$n6->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
		ok($wait->('THIRD_DONE', 5), 'a cancelled snowflake_id loop returns within 5 s');
	}
	$h->kill_kill;
	# a backend spinning without CHECK_FOR_INTERRUPTS survives fast shutdown
	$n6->stop('immediate');
};

# ---- item 8: its own server ------------------------------------------------

hole 'item 8: id slots of dropped databases are reclaimed' => sub {
	my $n8 = oe_node('slots8');
	$n8->start;
	my $max = $n8->safe_psql('postgres', 'SHOW order_engine.max_id_tags');
	my $rounds = $max + 12;
	$n8->safe_psql('postgres', 'CREATE DATABASE tmpl8');
	$n8->safe_psql('tmpl8', q{CREATE EXTENSION order_engine; SELECT order_engine.create_id_tag('t8')});
	my $script = '';
	for my $i (1 .. $rounds)
	{
		$script .= "\\c postgres\nCREATE DATABASE s8_$i TEMPLATE tmpl8 STRATEGY file_copy;\n"
		  . "\\c s8_$i\nSELECT 'id', order_engine.next_id('t8');\n"
		  . "\\c postgres\nDROP DATABASE s8_$i;\n";
	}
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'psql', '-X', '-At', '-v', 'ON_ERROR_STOP=1', '-d', $n8->connstr('postgres') ],
		'<', \$script, '>', \$out, '2>', \$err, IPC::Run::timeout(180));
	my $n = () = $out =~ /^id\|/mg;
	is($n, $rounds, "$rounds databases created, used next_id once and were dropped ($max slots)")
	  or diag $err;
	$n8->safe_psql('postgres', 'CREATE DATABASE fresh8 TEMPLATE tmpl8');
	my ($r, $o, $e) = $n8->psql('fresh8', q{SELECT order_engine.next_id('t8')});
	is($e, '', 'next_id still works in a fresh database');
	$n8->stop;
};

done_testing();
