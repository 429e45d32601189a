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
#include "utils/fmgrprotos.h"
#include "utils/syscache.h"

#include "errors.h"
#include "ids.h"
#include "internal_sql.h"

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
}
