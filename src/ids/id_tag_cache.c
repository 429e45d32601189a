/*-------------------------------------------------------------------------
 *
 * id_tag_cache.c
 *	  From a tag's name to its slot: the lookup in order_engine.id_tags
 *	  (as the extension's owner) and the per-backend cache that spares the
 *	  hot path any catalog access.
 *
 * Once per transaction a cached tag is checked in the syscache (no table
 * access): a dropped and re-created tag has a new sequence, and a slot
 * that changed hands has a new generation; either way it is resolved
 * again.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "common/errors.h"
#include "common/internal_sql.h"
#include "ids/ids.h"
#include "ids/id_internal.h"

static HTAB *oe_tag_cache = NULL;
static OeTagCacheEntry *oe_last_entry = NULL;

/*
 * The tag's sequence and configured step from order_engine.id_tags, read
 * as the extension's owner (callers have no rights on the table).
 */
static OeQuery select_tag = {
	"SELECT t.seq::pg_catalog.oid, t.step::pg_catalog.int8"
	"  FROM order_engine.id_tags t WHERE t.biz_tag OPERATOR(pg_catalog.=) $1",
	1, {TEXTOID}
};

static bool
oe_tag_lookup(const char *tag, Oid *seqoid, int64 *step)
{
	Datum		values[1];
	OeInternalScope scope;
	volatile bool found = false;

	values[0] = CStringGetTextDatum(tag);
	OeInternalEnter(&scope, true);
	PG_TRY();
	{
		OeSqlConnect();
		OeQueryRun(&select_tag, values, NULL, true, 1);
		if (SPI_processed == 1)
		{
			bool		isnull;

			*seqoid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
													 SPI_tuptable->tupdesc, 1, &isnull));
			*step = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
												SPI_tuptable->tupdesc, 2, &isnull));
			found = true;
		}
		SPI_finish();
	}
	PG_CATCH();
	{
		OeInternalAbort(&scope);
		PG_RE_THROW();
	}
	PG_END_TRY();
	OeInternalExit(&scope);
	return found;
}

static void
oe_check_tag_arg(const char *tag, Size len)
{
	if (len == 0 || len > OE_ID_TAG_MAXLEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid id tag length %zu", len),
				 errdetail("A tag is 1 to %d bytes long.", OE_ID_TAG_MAXLEN)));
}

/* (re)resolve a tag through the table and attach its slot */
void
OeIdTagResolve(OeTagCacheEntry *e)
{
	Oid			seqoid;
	int64		step;

	if (!oe_tag_lookup(e->tag, &seqoid, &step))
	{
		e->slot = NULL;
		ereport(ERROR,
				(errcode(ERRCODE_OE_ID_TAG_NOT_FOUND),
				 errmsg("id tag \"%s\" does not exist", e->tag),
				 errhint("Register it first with order_engine.create_id_tag().")));
	}
	e->slot = OeIdSlotAttach(OE_SLOT_SEGMENT, e->tag, seqoid, step,
							 &e->generation);
	e->seqoid = seqoid;
	e->dboid = MyDatabaseId;
	e->checked_lxid = MyProc->lxid;
}

/*
 * The cache entry of a tag, valid for this transaction: once per
 * transaction we check (in the syscache, no table access) that the tag's
 * sequence still exists, so that a dropped and re-created tag is noticed.
 */
OeTagCacheEntry *
OeIdTagEntry(const char *tag, Size len)
{
	OeTagCacheEntry *e = oe_last_entry;

	if (e == NULL || strncmp(e->tag, tag, len) != 0 || e->tag[len] != '\0')
	{
		char		key[OE_ID_TAG_MAXLEN + 1];
		bool		found;

		oe_check_tag_arg(tag, len);
		if (oe_tag_cache == NULL)
		{
			HASHCTL		ctl;

			ctl.keysize = OE_ID_TAG_MAXLEN + 1;
			ctl.entrysize = sizeof(OeTagCacheEntry);
			ctl.hcxt = TopMemoryContext;
			oe_tag_cache = hash_create("order_engine id tags", 64, &ctl,
									   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
		}
		memset(key, 0, sizeof(key));
		memcpy(key, tag, len);
		e = hash_search(oe_tag_cache, key, HASH_ENTER, &found);
		if (!found)
			e->slot = NULL;
		oe_last_entry = e;
	}

	if (e->slot == NULL || e->dboid != MyDatabaseId)
		OeIdTagResolve(e);
	else if (e->checked_lxid != MyProc->lxid)
	{
		if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(e->seqoid)) ||
			pg_atomic_read_u32(&e->slot->generation) != e->generation)
			OeIdTagResolve(e);
		e->checked_lxid = MyProc->lxid;
	}
	return e;
}
