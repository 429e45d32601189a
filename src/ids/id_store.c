/*-------------------------------------------------------------------------
 *
 * id_store.c
 *	  The durable high-water marks of the id subsystem: one PostgreSQL
 *	  sequence per id tag (and one for the snowflake clock).
 *
 * Why sequences: a range fetch must stay durable when the calling
 * transaction rolls back, and after a crash allocation must resume beyond
 * every range ever handed out.  setval() is not transactional and is
 * WAL-logged, so writing the new max_id with it and then flushing WAL up to
 * that record (XLogFlush) makes the reservation durable on its own, before
 * a single id of the range is handed out.  docs/ids.md compares this with
 * the alternatives.
 *
 * The caller (order_engine_app) has no rights on the sequences; the reads
 * and writes run as order_engine_owner through the internal-SQL path.
 * Callers hold no LWLock here: setval() and pg_sequence_last_value() take
 * the sequence's heavyweight lock, and the wait for it must stay
 * interruptible and visible to the deadlock detector.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_sequence.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "replication/syncrep.h"
#include "replication/walsender_private.h"
#include "storage/lwlock.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/syscache.h"

#include "common/errors.h"
#include "ids/ids.h"
#include "common/internal_sql.h"

/*
 * The highest value ever reserved in the sequence.  A sequence that was
 * never called reads as one below its start value.
 */
int64
OeIdStoreRead(Oid seqoid)
{
	OeInternalScope scope;
	int64		result;

	LOCAL_FCINFO(fcinfo, 1);

	OeInternalEnter(&scope, true);
	PG_TRY();
	{
		InitFunctionCallInfoData(*fcinfo, NULL, 1, InvalidOid, NULL, NULL);
		fcinfo->args[0].value = ObjectIdGetDatum(seqoid);
		fcinfo->args[0].isnull = false;
		result = DatumGetInt64(pg_sequence_last_value(fcinfo));
		if (fcinfo->isnull)
		{
			HeapTuple	tup = SearchSysCache1(SEQRELID, ObjectIdGetDatum(seqoid));

			if (!HeapTupleIsValid(tup))
				elog(ERROR, "cache lookup failed for sequence %u", seqoid);
			result = ((Form_pg_sequence) GETSTRUCT(tup))->seqstart - 1;
			ReleaseSysCache(tup);
		}
	}
	PG_CATCH();
	{
		OeInternalAbort(&scope);
		PG_RE_THROW();
	}
	PG_END_TRY();
	OeInternalExit(&scope);
	return result;
}

/*
 * With synchronous standbys configured, a range is not handed out before
 * they have flushed its record either: after a failover the new primary
 * then continues above every id the old one ever gave a client.  This
 * holds whatever the caller's synchronous_commit says (for the wait it is
 * "on"; SyncRepWaitForLSN caps a non-commit wait at remote flush).  A
 * wait that ends without the standby's confirmation (a cancel) is an
 * error: the range stays reserved and unused, a gap, never a repeat.
 */
static void
oe_wait_for_sync_standby(XLogRecPtr lsn)
{
	int			nestlevel;
	bool		confirmed;

	if (SyncRepStandbyNames == NULL || SyncRepStandbyNames[0] == '\0')
		return;
	nestlevel = NewGUCNestLevel();
	(void) set_config_option("synchronous_commit", "on", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	SyncRepWaitForLSN(lsn, false);
	AtEOXact_GUC(true, nestlevel);

	/* (not the "defined" flag: its type changed within 15.x minor releases) */
	LWLockAcquire(SyncRepLock, LW_SHARED);
	confirmed = WalSndCtl->lsn[SYNC_REP_WAIT_FLUSH] >= lsn;
	LWLockRelease(SyncRepLock);
	if (!confirmed)
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("id range not confirmed by the synchronous standby"),
				 errdetail("The wait for synchronous replication was cancelled; no id of the range was handed out."),
				 errhint("Retry; the ids are skipped, never repeated.")));
}

/*
 * Durably move the sequence to value, independent of the caller's
 * transaction: setval() is not undone by a rollback, and the flush makes
 * sure a crash right after cannot forget it.
 */
void
OeIdStoreWrite(Oid seqoid, int64 value)
{
	OeInternalScope scope;

	OeInternalEnter(&scope, true);
	PG_TRY();
	{
		DirectFunctionCall2(setval_oid, ObjectIdGetDatum(seqoid),
							Int64GetDatum(value));
	}
	PG_CATCH();
	{
		OeInternalAbort(&scope);
		PG_RE_THROW();
	}
	PG_END_TRY();
	OeInternalExit(&scope);

	/* setval() wrote its WAL record; don't hand anything out before it is on disk */
	XLogFlush(XactLastRecEnd);
	oe_wait_for_sync_standby(XactLastRecEnd);
}
