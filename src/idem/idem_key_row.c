/*-------------------------------------------------------------------------
 *
 * idem_key_row.c
 *	  The two hot statements on order_engine.idempotency_keys done by heap
 *	  and index access: idem_begin's "read the key, insert it if unseen"
 *	  and idem_finish's "in_progress -> completed, by its claim".
 *
 * Why: each was an SPI statement whose executor start-up (a CTE with an
 * INSERT ... ON CONFLICT, an UPDATE) cost more than the row it wrote, so
 * the pair cost more than the three statements a client writes for the
 * same job (test/bench/cost.sh).
 *
 * Only in READ COMMITTED, where the statements' semantics are the ones
 * below; under a transaction snapshot (REPEATABLE READ, SERIALIZABLE) the
 * SQL runs, with its serialization failures.  Also SQL when the table has
 * anything else an INSERT or UPDATE would honour (OeDirectWriteRefused).
 *
 *	- The claim.  The caller holds the key's advisory lock (idem_begin.c),
 *	  which every inserter of the key holds until its transaction ends,
 *	  and which is released only after that transaction's commit is
 *	  visible; so the snapshot taken now sees every committed row of the
 *	  key and no insert of it is in progress.  Found: the row, as the
 *	  SQL's "cur" read it.  Not found: a new row (the unique index still
 *	  checks).  No row is locked, as the SQL locked none.
 *	- The finish.  The row the snapshot sees, if it is in_progress and
 *	  this caller's claim, is locked FOR NO KEY UPDATE (waiting) in its
 *	  newest version, the condition is checked again on that version (the
 *	  UPDATE's EvalPlanQual), and the completed version is written.
 *
 * The finish usually follows the claim in the same transaction, so the
 * claim remembers where it wrote its row (last_claim) and the finish
 * reads that heap slot instead of probing the index.  It is only a hint:
 * the version there is used only if the snapshot sees it and it carries
 * the same scope and key, which the primary key makes the one visible
 * version of that key; anything else (another transaction, a rolled-back
 * savepoint, a second finish, a rewritten table) probes the index.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "common/digest.h"
#include "common/direct_access.h"
#include "common/direct_insert.h"
#include "common/direct_update.h"
#include "idem/idem_internal.h"

#define KEYS_REL	"idempotency_keys"
#define KEYS_PKEY	"idempotency_keys_pkey"

/* the columns of the table as opened (claim_hash: 0 before 0.6) */
typedef struct KeyCols
{
	AttrNumber	scope,
				key,
				fingerprint,
				state,
				response,
				claim_owner,
				claim_pid,
				claimed_at,
				completed_at,
				expires_at,
				claim_hash;
} KeyCols;

static AttrNumber
key_col(Relation rel, const char *name, bool required)
{
	AttrNumber	att = OeRelationColumn(rel, name);

	if (att == InvalidAttrNumber && required)
		elog(ERROR, "order_engine: %s has no column \"%s\"", KEYS_REL, name);
	return att;
}

static void
key_cols(Relation rel, KeyCols *c)
{
	c->scope = key_col(rel, "scope", true);
	c->key = key_col(rel, "key", true);
	c->fingerprint = key_col(rel, "fingerprint", true);
	c->state = key_col(rel, "state", true);
	c->response = key_col(rel, "response", true);
	c->claim_owner = key_col(rel, "claim_owner", true);
	c->claim_pid = key_col(rel, "claim_pid", true);
	c->claimed_at = key_col(rel, "claimed_at", true);
	c->completed_at = key_col(rel, "completed_at", true);
	c->expires_at = key_col(rel, "expires_at", true);
	c->claim_hash = key_col(rel, "claim_hash", false);
}

/* an equality key on text column att, in the column's (the index's) collation */
static void
text_key(ScanKey k, Relation rel, AttrNumber att, text *value)
{
	ScanKeyInit(k, att, BTEqualStrategyNumber, F_TEXTEQ, PointerGetDatum(value));
	k->sk_collation = TupleDescAttr(RelationGetDescr(rel), att - 1)->attcollation;
}

/* the stored bytea or text is byte for byte the given one */
static bool
bytes_equal(Datum stored, const struct varlena *given)
{
	struct varlena *s = PG_DETOAST_DATUM_PACKED(stored);

	return VARSIZE_ANY_EXHDR(s) == VARSIZE_ANY_EXHDR(given) &&
		memcmp(VARDATA_ANY(s), VARDATA_ANY(given), VARSIZE_ANY_EXHDR(given)) == 0;
}

static bool
text_is(Datum stored, const char *word)
{
	text	   *s = DatumGetTextPP(stored);
	size_t		len = strlen(word);

	return VARSIZE_ANY_EXHDR(s) == len && memcmp(VARDATA_ANY(s), word, len) == 0;
}

/*
 * Open the table for a write without SQL; NULL when this transaction or
 * the table needs the SQL (see the file header).
 */
static Relation
open_keys(bool update, Oid *pkey)
{
	Oid			relid;
	Relation	rel;

	if (IsolationUsesXactSnapshot())
		return NULL;
	relid = OeSchemaRelid(KEYS_REL);
	*pkey = OeSchemaRelid(KEYS_PKEY);
	if (!OidIsValid(relid) || !OidIsValid(*pkey))
		return NULL;
	OeDirectWriteAllowed(update ? "UPDATE" : "INSERT");
	rel = table_open(relid, RowExclusiveLock);
	if (OeDirectWriteRefused(rel, update, NULL, InvalidOid))
	{
		/* keep the lock, as the statement the caller runs instead will */
		table_close(rel, NoLock);
		return NULL;
	}
	return rel;
}

/*
 * Where this backend's last claim wrote its row (see the file header).
 * Forgotten when a subtransaction aborts, so the row it names is one of
 * this live transaction's, which no VACUUM removes; and kept with the
 * table's file, so a rewrite in this transaction (TRUNCATE, CLUSTER)
 * does not send the read to a block the new file lacks.
 */
#if PG_VERSION_NUM >= 160000
#define REL_FILE_NUMBER(rel) ((rel)->rd_locator.relNumber)
#else
#define REL_FILE_NUMBER(rel) ((rel)->rd_node.relNode)
#endif

static struct
{
	TransactionId xid;			/* the top-level transaction; Invalid: none */
	Oid			relid;
	Oid			filenumber;
	ItemPointerData tid;
} last_claim;
static bool last_claim_callback_registered = false;

static void
last_claim_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
							SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		last_claim.xid = InvalidTransactionId;
}

static void
remember_claim(OeDirectInsert *ins, Relation rel)
{
	if (!last_claim_callback_registered)
	{
		RegisterSubXactCallback(last_claim_subxact_callback, NULL);
		last_claim_callback_registered = true;
	}
	OeDirectInsertLastTid(ins, &last_claim.tid);
	last_claim.relid = RelationGetRelid(rel);
	last_claim.filenumber = REL_FILE_NUMBER(rel);
	last_claim.xid = GetTopTransactionId();
}

/*
 * The version of (scope, key) at this transaction's last claim, if snap
 * sees it there, copied; else NULL.
 */
static HeapTuple
remembered_key(Relation rel, const KeyCols *c, text *scope, text *key,
			   Snapshot snap)
{
	HeapTupleData probe;
	HeapTuple	found = NULL;
	Buffer		buf;
	bool		isnull_scope,
				isnull_key;
	Datum		s,
				k;

	if (!TransactionIdIsValid(last_claim.xid) ||
		last_claim.xid != GetTopTransactionIdIfAny() ||
		last_claim.relid != RelationGetRelid(rel) ||
		last_claim.filenumber != REL_FILE_NUMBER(rel))
		return NULL;
	probe.t_self = last_claim.tid;
	if (!heap_fetch(rel, snap, &probe, &buf, false))
		return NULL;
	s = heap_getattr(&probe, c->scope, RelationGetDescr(rel), &isnull_scope);
	k = heap_getattr(&probe, c->key, RelationGetDescr(rel), &isnull_key);
	if (!isnull_scope && !isnull_key && bytes_equal(s, scope) && bytes_equal(k, key))
		found = heap_copytuple(&probe);
	ReleaseBuffer(buf);
	return found;
}

/*
 * The version of (scope, key) that snap sees, copied, or NULL.
 */
static HeapTuple
probe_key(Relation rel, Oid pkey, const KeyCols *c, text *scope, text *key,
		  Snapshot snap)
{
	ScanKeyData skey[2];
	SysScanDesc scan;
	HeapTuple	tup;

	if (HeapTupleIsValid(tup = remembered_key(rel, c, scope, key, snap)))
		return tup;
	text_key(&skey[0], rel, c->scope, scope);
	text_key(&skey[1], rel, c->key, key);
	scan = OeIndexProbeBegin(rel, pkey, snap, 2, skey);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		tup = heap_copytuple(tup);
	systable_endscan(scan);
	return tup;
}

int
OeIdemKeyClaimDirect(text *scope, text *key, bytea *fingerprint, int64 owner,
					 TimestampTz expires, bool with_claim, char **claim_token,
					 bytea **claim_hash, IdemKeyRow *row)
{
	Oid			pkey;
	Relation	rel = open_keys(false, &pkey);
	KeyCols		c;
	Snapshot	snap;
	HeapTuple	tup;
	int			result;

	if (rel == NULL)
		return -1;
	key_cols(rel, &c);
	snap = OeStatementSnapshot();
	tup = probe_key(rel, pkey, &c, scope, key, snap);
	if (HeapTupleIsValid(tup))
	{
		TupleDesc	desc = RelationGetDescr(rel);
		bool		isnull;
		Datum		d;

		row->fingerprint = DatumGetByteaPCopy(heap_getattr(tup, c.fingerprint, desc, &isnull));
		row->completed = text_is(heap_getattr(tup, c.state, desc, &isnull), "completed");
		d = heap_getattr(tup, c.response, desc, &row->response_null);
		/* detoasted while the snapshot is still registered */
		row->response = row->response_null ? (Datum) 0 :
			PointerGetDatum(PG_DETOAST_DATUM_COPY(d));
		d = heap_getattr(tup, c.claimed_at, desc, &row->claimed_at_null);
		row->claimed_at = row->claimed_at_null ? 0 : DatumGetTimestampTz(d);
		d = heap_getattr(tup, c.expires_at, desc, &row->expires_at_null);
		row->expires_at = row->expires_at_null ? 0 : DatumGetTimestampTz(d);
		heap_freetuple(tup);
		result = 0;
	}
	else
	{
		const char *cols[] = {"scope", "key", "fingerprint", "state", "claim_owner",
		"claim_pid", "claimed_at", "created_at", "expires_at", "claim_hash"};
		int			ncols = lengthof(cols) - (c.claim_hash ? 0 : 1);
		TimestampTz now = GetCurrentTransactionStartTimestamp();
		Datum		values[10];
		bool		nulls[10] = {false};
		OeDirectInsert *ins = OeDirectInsertBegin(KEYS_REL, ncols, cols);

		if (ins == NULL)
			result = -1;
		else
		{
			values[0] = PointerGetDatum(scope);
			values[1] = PointerGetDatum(key);
			values[2] = PointerGetDatum(fingerprint);
			values[3] = CStringGetTextDatum("in_progress");
			values[4] = Int64GetDatum(owner);
			values[5] = Int32GetDatum(MyProcPid);
			values[6] = TimestampTzGetDatum(now);
			values[7] = TimestampTzGetDatum(now);
			values[8] = TimestampTzGetDatum(expires);
			if (with_claim && c.claim_hash != InvalidAttrNumber)
				*claim_token = OeNewSecretToken("claim token", claim_hash);
			values[9] = PointerGetDatum(*claim_hash);
			nulls[9] = (*claim_hash == NULL);
			OeDirectInsertRow(ins, values, nulls);
			remember_claim(ins, rel);
			OeDirectInsertEnd(ins);
			result = 1;
		}
	}
	UnregisterSnapshot(snap);
	table_close(rel, NoLock);
	return result;
}

/* does this version say in_progress, claimed by owner (no token) or by claim_hash? */
static bool
held_by(HeapTuple tup, Relation rel, const KeyCols *c, int64 owner,
		bytea *claim_hash)
{
	TupleDesc	desc = RelationGetDescr(rel);
	bool		isnull;
	Datum		d;

	d = heap_getattr(tup, c->state, desc, &isnull);
	if (isnull || !text_is(d, "in_progress"))
		return false;
	if (claim_hash == NULL)
	{
		d = heap_getattr(tup, c->claim_owner, desc, &isnull);
		return !isnull && DatumGetInt64(d) == owner;
	}
	if (c->claim_hash == InvalidAttrNumber)
		return false;			/* a 0.5 table: no token is ever a claim's */
	d = heap_getattr(tup, c->claim_hash, desc, &isnull);
	return !isnull && bytes_equal(d, claim_hash);
}

/* a finish: the claim it must still hold, the response it stores */
typedef struct KeyFinish
{
	const KeyCols *c;
	int64		owner;
	bytea	   *claim_hash;
	Jsonb	   *response;
} KeyFinish;

static bool
still_held(Relation rel, HeapTuple version, void *arg)
{
	KeyFinish  *fin = (KeyFinish *) arg;

	return held_by(version, rel, fin->c, fin->owner, fin->claim_hash);
}

/* completed with the response; the claim columns cleared */
static void
completed(Relation rel, HeapTuple version, void *arg, Datum *values,
		  bool *nulls, bool *repl)
{
	KeyFinish  *fin = (KeyFinish *) arg;
	const KeyCols *c = fin->c;

	values[c->state - 1] = CStringGetTextDatum("completed");
	values[c->response - 1] = JsonbPGetDatum(fin->response);
	values[c->completed_at - 1] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	nulls[c->claim_owner - 1] = nulls[c->claim_pid - 1] = true;
	repl[c->state - 1] = repl[c->response - 1] = repl[c->completed_at - 1] = true;
	repl[c->claim_owner - 1] = repl[c->claim_pid - 1] = true;
	if (c->claim_hash != InvalidAttrNumber)
		nulls[c->claim_hash - 1] = repl[c->claim_hash - 1] = true;
}

int
OeIdemKeyFinishDirect(text *scope, text *key, int64 owner, Jsonb *response,
					  bytea *claim_hash)
{
	KeyFinish	fin;
	Oid			pkey;
	Relation	rel = open_keys(true, &pkey);
	KeyCols		c;
	Snapshot	snap;
	HeapTuple	tup;
	int			result = 0;

	if (rel == NULL)
		return -1;
	key_cols(rel, &c);
	snap = OeStatementSnapshot();
	tup = probe_key(rel, pkey, &c, scope, key, snap);
	fin.c = &c;
	fin.owner = owner;
	fin.claim_hash = claim_hash;
	fin.response = response;
	if (HeapTupleIsValid(tup) && still_held(rel, tup, &fin) &&
		OeDirectRowChange(rel, tup, snap, "an idempotency key", still_held, completed, &fin))
		result = 1;
	if (HeapTupleIsValid(tup))
		heap_freetuple(tup);
	UnregisterSnapshot(snap);
	table_close(rel, NoLock);
	return result;
}
