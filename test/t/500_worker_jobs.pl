# The worker's jobs, run by the worker alone: expired holds released on
# time (it sleeps until the expiry and is woken by the commit that creates
# something sooner), unpaid orders closed, a bad row quarantined while the
# others proceed, keys reaped, finished orders archived, worker_status.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use OrderEngineTest;

# a long nap: only the expiry index and the commit-time wake make it on time
my $node = oe_node('jobs', conf => "order_engine.naptime = '1h'\norder_engine.archive_after = 0\norder_engine.archive_pause = 0");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION order_engine');
ok(wait_for($node, q{SELECT bool_and(state = 'idle') FROM order_engine.worker_status}),
	'worker idles with the extension');

# the outbox: a committed order change is notified (by the worker, right
# after the commit); a rolled-back one is not.  The listener is a psql fed
# on stdin: it prints the notifications it has after each command, so a
# marker query shows what has arrived.
sub start_listener
{
	my %l = (in => '', out => '', err => '');
	$l{h} = IPC::Run::start(['psql', '-X', '-q', '-A', '-t', '-d', $node->connstr('postgres')],
		'<', \$l{in}, '>', \$l{out}, '2>', \$l{err}, IPC::Run::timeout(180));
	$l{in} .= "LISTEN order_engine_events;\nSELECT 'listening';\n";
	$l{h}->pump until $l{out} =~ /listening/;
	return \%l;
}

my $flushes = 0;
sub flush_listener
{
	my ($l) = @_;
	$flushes++;
	$l->{in} .= "SELECT 'flush:$flushes';\n";
	$l->{h}->pump until $l->{out} =~ /flush:$flushes\b/;
	return $l->{out};
}

# the worker has begun at least one whole loop (where it sends what is
# pending) since now: two reload-triggered rounds, each counted twice
sub worker_looped
{
	my $r0 = $node->safe_psql('postgres', 'SELECT max(rounds) FROM order_engine.worker_status');
	for my $n (2, 4)
	{
		$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
		return 0 unless wait_for($node,
			"SELECT max(rounds) >= $r0 + $n FROM order_engine.worker_status", 't', 60);
	}
	return 1;
}

{
	my $l = start_listener();
	$node->safe_psql('postgres', q{
		SELECT order_engine.restock(9, 10);
		SELECT order_engine.set_price(9, 1);
		BEGIN;
		SELECT order_engine.place_order(9001, 1, 1, '[{"sku_id": 9, "qty": 1}]');
		ROLLBACK;
	});
	ok(worker_looped(), 'the worker went round after the rollback');
	flush_listener($l);
	unlike(flush_listener($l), qr/Asynchronous notification/,
		'a rolled-back order change notifies nobody');

	$node->safe_psql('postgres', q{
		SELECT order_engine.place_order(9002, 1, 1, '[{"sku_id": 9, "qty": 1}]');
		SELECT order_engine.cancel_order(9002);
	});
	my $deadline = time() + 60;
	my $out = '';
	while (time() < $deadline)
	{
		$out = flush_listener($l);
		last if $out =~ /Asynchronous notification/;
		usleep(100_000);
	}
	$l->{in} .= "\\q\n";
	$l->{h}->finish;
	my $worker = $node->safe_psql('postgres', q{SELECT pid FROM pg_stat_activity
		WHERE backend_type = 'order_engine worker'});
	like($out, qr/Asynchronous notification "order_engine_events" received from server process with PID $worker/,
		'a committed order change is notified on order_engine_events, by the worker');
	$node->safe_psql('postgres', q{SELECT order_engine.ack_events(array_agg(event_id))
		FROM order_engine.order_events});
}

# expired holds: released by the worker alone, within a bound
$node->safe_psql('postgres', q{
	SELECT order_engine.restock(1, 100);
	SELECT order_engine.reserve(g, ARRAY[1]::bigint[], ARRAY[1]::bigint[], '1 second')
	  FROM generate_series(1, 20) g;
});
ok(wait_for($node, q{SELECT count(*) FROM order_engine.stock_hold WHERE state = 'held'}, '0', 90),
	'the worker released 20 expired holds by itself');
my $lag = $node->safe_psql('postgres', q{
	SELECT round(extract(epoch FROM max(updated_at - expires_at)) * 1000)
	  FROM order_engine.stock_hold});
note "worst release lag: $lag ms";
# a bound far below the nap (1 h) and far above a busy machine's delays:
# only the wake at the expiry can meet it
cmp_ok($lag, '<', 60_000, "released within 60 s of expiry (nap is 1 h): worst $lag ms");
is($node->safe_psql('postgres', q{SELECT bool_and(ok) FROM order_engine.stock_audit()}), 't',
	'stock_audit is clean');

# an unpaid order closes by itself, its holds released
$node->safe_psql('postgres', q{
	SELECT order_engine.set_price(1, 3);
	SELECT order_engine.place_order(1001, 7, 900, '[{"sku_id": 1, "qty": 2}]', '1 second');
	SELECT order_engine.place_order(1002, 7, 900, '[{"sku_id": 1, "qty": 2}]', '1 second');
});
# (order_status: the archive job may already have moved them)
ok(wait_for($node, q{SELECT order_engine.order_status(1001) || ',' || order_engine.order_status(1002)},
	'closed,closed', 60), 'unpaid orders closed by the worker');
is($node->safe_psql('postgres', q{SELECT count(*) FROM order_engine.stock_hold
	WHERE order_no IN (1001, 1002) AND state <> 'released'}), '0', 'their holds are released');
is($node->safe_psql('postgres', q{SELECT count(*) FROM (
	SELECT event FROM order_engine.order_events WHERE order_no = 1001
	UNION ALL SELECT event FROM order_engine_archive.order_events WHERE order_no = 1001) e
	WHERE event = 'closed'}), '1', 'a closed event was written');

# one bad row must not stop the others: a trigger refuses order 2002
$node->safe_psql('postgres', q{
	CREATE FUNCTION refuse_2002() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		IF NEW.order_no = 2002 AND NEW.status = 'closed' THEN
			RAISE EXCEPTION 'order 2002 is broken' USING ERRCODE = 'P0001';
		END IF;
		RETURN NEW;
	END $$;
	CREATE TRIGGER refuse_2002 BEFORE UPDATE ON order_engine.orders
		FOR EACH ROW EXECUTE FUNCTION refuse_2002();
	SELECT order_engine.place_order(g, 7, 900, '[{"sku_id": 1, "qty": 1}]', '1 second')
	  FROM generate_series(2001, 2003) g;
});
ok(wait_for($node, q{SELECT string_agg(g || ':' || order_engine.order_status(g), ',' ORDER BY g)
	FROM generate_series(2001, 2003) g},
	'2001:closed,2002:pending_payment,2003:closed', 60),
	'the other orders closed while 2002 failed');
ok(wait_for($node, q{SELECT job || ':' || item || ':' || error FROM order_engine.quarantine},
	'close_unpaid:2002:order 2002 is broken'), '2002 is in quarantine with its error');
is($node->safe_psql('postgres', q{SELECT quarantined FROM order_engine.worker_status
	WHERE job = 'close_unpaid'}), '1', 'worker_status shows the quarantined row');

# after the fix, deleting the quarantine row lets the worker retry it
$node->safe_psql('postgres', q{
	DROP TRIGGER refuse_2002 ON order_engine.orders;
	DELETE FROM order_engine.quarantine;
	UPDATE order_engine.orders SET pay_deadline = now() WHERE order_no = 2002;
});
$node->safe_psql('postgres', q{SELECT pg_sleep(0.1)});
$node->safe_psql('postgres', q{SELECT order_engine.place_order(2004, 7, 900, '[{"sku_id": 1, "qty": 1}]', '1 second')});
ok(wait_for($node, q{SELECT order_engine.order_status(2002)}, 'closed', 60),
	'a released quarantine row is processed');

# finished orders are archived (archive_after = 0), with lines and events,
# once a consumer acknowledged their events (0.7: never before)
# (a reload wakes the paused archive at once; the nap is 1 h, and only a
# job that finished orders wakes it early)
# A batch moves in one statement; an order that cannot move sends the
# batch order by order: the others move, that order is quarantined and
# stays live, whole.  Twice: a trigger on the archive refuses 2003, and
# then a trigger that skips the delete of 2003's order row (the batch
# must not move its lines and events without it).
wait_for($node, q{SELECT order_engine.order_status(2004)}, 'closed', 60);
$node->safe_psql('postgres', q{
	CREATE FUNCTION refuse_2003() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		IF NEW.order_no = 2003 THEN
			RAISE EXCEPTION 'order 2003 cannot be archived' USING ERRCODE = 'P0001';
		END IF;
		RETURN NEW;
	END $$;
	CREATE FUNCTION keep_2003() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		RETURN CASE WHEN OLD.order_no = 2003 THEN NULL ELSE OLD END;
	END $$;
	SELECT order_engine.ack_events(array_agg(event_id))
	  FROM order_engine.order_events WHERE processed_at IS NULL;
});
my $archived = 0;
for my $case (['refuse_2003 BEFORE INSERT ON order_engine_archive.orders', 'order 2003 cannot be archived', 6],
	['keep_2003 BEFORE DELETE ON order_engine.orders', 'order 2003 vanished while being archived', 0])
{
	my ($trigger, $error, $moved) = @$case;
	my ($name, $table) = $trigger =~ /^(\S+) .* ON (\S+)$/;
	$archived += $moved;
	$node->safe_psql('postgres', qq{
		CREATE TRIGGER $trigger FOR EACH ROW EXECUTE FUNCTION $name();
		SELECT pg_reload_conf();
	});
	ok(wait_for($node, q{SELECT string_agg(job || ':' || item || ':' || error, ',') FROM order_engine.quarantine},
		"archive_orders:2003:$error", 60), "$name: the order is quarantined");
	ok(wait_for($node, q{SELECT count(*) FROM order_engine.orders}, '1', 60),
		"$name: the others of its batch were archived");
	is($node->safe_psql('postgres', q{SELECT (SELECT count(*) FROM order_engine.orders WHERE order_no = 2003)
		|| ',' || (SELECT count(*) FROM order_engine.order_lines WHERE order_no = 2003)
		|| ',' || (SELECT count(*) > 0 FROM order_engine.order_events WHERE order_no = 2003)
		|| ',' || (SELECT count(*) FROM order_engine_archive.order_lines WHERE order_no = 2003)
		|| ',' || (SELECT count(*) FROM order_engine_archive.order_events WHERE order_no = 2003)
		|| ',' || (SELECT count(*) FROM order_engine_archive.orders)}),
		"1,1,true,0,0,$archived", "$name: 2003 stayed live with its lines and events");
	$node->safe_psql('postgres', qq{
		DROP TRIGGER $name ON $table;
		DELETE FROM order_engine.quarantine;
	});
}
$node->safe_psql('postgres', q{SELECT pg_reload_conf()});
ok(wait_for($node, q{SELECT count(*) FROM order_engine.orders}, '0', 60),
	'finished orders left the live tables');
is($node->safe_psql('postgres', q{SELECT count(*) FROM order_engine_archive.orders}), '7',
	'and are all in the archive');
is($node->safe_psql('postgres', q{SELECT count(*) FROM order_engine.order_lines}), '0',
	'lines moved too');
is($node->safe_psql('postgres', q{SELECT order_engine.order_status(1001)}), 'closed',
	'order_status answers archived orders');
is($node->safe_psql('postgres', q{SELECT max_order_no, archived_total FROM order_engine.archive_watermark}),
	'9002|7', 'the watermark follows the archive');

# worker_status: per job counters
my $status = $node->safe_psql('postgres', q{SELECT job, total_rows > 0, errors
	FROM order_engine.worker_status ORDER BY job});
like($status, qr/release_expired\|t\|0/, 'release_expired counted its rows');
like($status, qr/close_unpaid\|t\|0/, 'close_unpaid counted its rows');
like($status, qr/archive_orders\|t\|0/, 'archive_orders counted its rows');

# order_engine.notify_gather: a commit within the gap after a NOTIFY gets
# no NOTIFY of its own at once, but one when the gap ends; nothing else
# wakes the worker meanwhile (nap 1 h, the second order's deadline later
# than the first's).  10 s, so that "not yet" cannot be a slow machine.
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET order_engine.notify_gather = '10s';
	SELECT pg_reload_conf();
});
ok(worker_looped(), 'the worker went round after the reload');
sub notified_within
{
	my ($l, $secs) = @_;
	my $deadline = time() + $secs;
	while (time() < $deadline)
	{
		return 1 if flush_listener($l) =~ /Asynchronous notification/;
		usleep(100_000);
	}
	return 0;
}
{
	my $l = start_listener();
	$node->safe_psql('postgres', q{SELECT order_engine.place_order(9003, 1, 1, '[{"sku_id": 9, "qty": 1}]')});
	ok(notified_within($l, 60), 'the first commit after a quiet spell is notified');
	$l->{out} = '';
	$node->safe_psql('postgres', q{SELECT order_engine.place_order(9004, 1, 1, '[{"sku_id": 9, "qty": 1}]')});
	unlike(flush_listener($l), qr/Asynchronous notification/,
		'a commit within notify_gather of the last NOTIFY is not notified at once');
	$l->{out} = '';
	ok(notified_within($l, 60), 'it is notified when the gap ends');
	$l->{in} .= "\\q\n";
	$l->{h}->finish;
}
$node->safe_psql('postgres', q{
	ALTER SYSTEM RESET order_engine.notify_gather;
	SELECT pg_reload_conf();
});

$node->stop;
done_testing();
