/*-------------------------------------------------------------------------
 *
 * versioned_update.c
 *	  versioned_update(rel, key, expected_version, changes) and its C core
 *	  OeVersionedUpdate.
 *
 * The statement is
 *	  UPDATE rel SET c1 = $1, ..., version = version + 1
 *	   WHERE k1 = $n AND ... AND version = $v RETURNING version
 * so the comparison and the bump are one atomic step: of two callers with
 * the same expected version the second waits for the first's row lock,
 * re-checks the row (READ COMMITTED) and finds no match.  Only then, to
 * tell a stale version from a missing row, it reads the current version.
 *
 * Every value is a $n parameter of its column's type, converted here with
 * the type's input function (so a bad value fails with the type's own
 * SQLSTATE and the column's name as context).  The function is not
 * SECURITY DEFINER: SPI runs the statement as the caller, so table and
 * column privileges and row security apply as usual.  The checks of rel,
 * key and changes and the kept plans are versioned_update_shape.c's.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"

#include "common/args.h"
#include "common/errors.h"
#include "common/internal_sql.h"
#include "common/order_engine.h"
#include "idem/versioned_update.h"
#include "idem/versioned_update_internal.h"

PG_FUNCTION_INFO_V1(oe_versioned_update);

/* error context while a value is converted */
typedef struct VuErrorContext
{
	const char *column;
	const char *relname;
} VuErrorContext;

static void
vu_value_error_callback(void *arg)
{
	VuErrorContext *ctx = (VuErrorContext *) arg;

	errcontext("value for column \"%s\" of %s", ctx->column, ctx->relname);
}

/*
 * A JSON value as the column's value (through its type's input function).
 */
static Datum
coerce_value(VuParam *p, JsonbValue *v, bool *isnull, const char *column,
			 const char *relname)
{
	ErrorContextCallback errcb;
	VuErrorContext ctx = {column, relname};
	char	   *str = NULL;
	Datum		result;

	if (v->type == jbvNull)
	{
		*isnull = true;
		return (Datum) 0;
	}
	*isnull = false;

	if (p->kind == VU_JSON)
	{
		Jsonb	   *j = JsonbValueToJsonb(v);

		str = JsonbToCString(NULL, &j->root, VARSIZE(j));
	}
	else
	{
		switch (v->type)
		{
			case jbvString:
				str = pnstrdup(v->val.string.val, v->val.string.len);
				break;
			case jbvNumeric:
				str = DatumGetCString(DirectFunctionCall1(numeric_out,
														  NumericGetDatum(v->val.numeric)));
				break;
			case jbvBool:
				str = v->val.boolean ? "true" : "false";
				break;
			default:
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("value for column \"%s\" of %s must be a JSON string, number, boolean or null",
								column, relname),
						 errdetail("The column has type %s; a JSON object or array fits only json and jsonb columns.",
								   format_type_with_typemod(p->typid, p->typmod)),
						 errhint("Pass an array or composite value as a string in the type's text form, e.g. \"{1,2}\".")));
		}
	}

	errcb.callback = vu_value_error_callback;
	errcb.arg = &ctx;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	result = InputFunctionCall(&p->input, str, p->ioparam, p->typmod);
	error_context_stack = errcb.previous;
	return result;
}

int64
OeVersionedUpdate(Oid relid, Jsonb *key, int64 expected_version, Jsonb *changes)
{
	VuPlan	   *plan;
	Datum	   *values;
	char	   *nulls;
	int			nparams;
	int			n = 0;
	int64		result;
	int			rc;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *colname = NULL;

	/* everything allocated from here on goes when SPI_finish runs */
	OeSqlConnect();
	plan = OeVuShape(relid, key, changes);

	/* the values, in parameter order: changes, then keys, then the version */
	nparams = plan->nchanges + plan->nkeys;
	values = palloc(sizeof(Datum) * (nparams + 1));
	nulls = palloc(sizeof(char) * (nparams + 1));
	for (int pass = 0; pass < 2; pass++)
	{
		Jsonb	   *jb = pass == 0 ? changes : key;

		it = JsonbIteratorInit(&jb->root);
		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			bool		isnull;

			if (tok == WJB_KEY)
				colname = pnstrdup(v.val.string.val, v.val.string.len);
			else if (tok == WJB_VALUE)
			{
				if (pass == 1 && v.type == jbvNull)
					ereport(ERROR,
							(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
							 errmsg("key column \"%s\" must not be null", colname)));
				values[n] = coerce_value(&plan->params[n], &v, &isnull, colname,
										 plan->relname);
				nulls[n] = isnull ? 'n' : ' ';
				n++;
			}
		}
	}
	Assert(n == nparams);
	values[nparams] = Int64GetDatum(expected_version);
	nulls[nparams] = ' ';

	rc = OeExecPlan(plan->update_plan, values, nulls, false, 0);
	if (rc != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "versioned update of %s failed: %s", plan->relname,
			 SPI_result_code_string(rc));

	if (SPI_processed > 1)
		ereport(ERROR,
				(errcode(ERRCODE_CARDINALITY_VIOLATION),
				 errmsg("key matches more than one row of %s", plan->relname),
				 errdetail("%llu rows matched; nothing was changed.",
						   (unsigned long long) SPI_processed)));
	if (SPI_processed == 1)
	{
		bool		isnull;

		result = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											 SPI_tuptable->tupdesc, 1, &isnull));
		SPI_finish();
		return result;
	}

	/* nothing matched: a stale version or no such row? */
	rc = OeExecPlan(plan->select_plan, values + plan->nchanges,
					nulls + plan->nchanges, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read the version of %s: %s", plan->relname,
			 SPI_result_code_string(rc));
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OE_ROW_NOT_FOUND),
				 errmsg("no row of %s matches the key", plan->relname),
				 errdetail("The key was %s.",
						   JsonbToCString(NULL, &key->root, VARSIZE(key)))));
	else
	{
		bool		isnull;
		Datum		current = SPI_getbinval(SPI_tuptable->vals[0],
											SPI_tuptable->tupdesc, 1, &isnull);

		ereport(ERROR,
				(errcode(ERRCODE_OE_VERSION_CONFLICT),
				 errmsg("version conflict on %s", plan->relname),
				 isnull ?
				 errdetail("The expected version was " INT64_FORMAT "; the current version is null.",
						   expected_version) :
				 errdetail("The expected version was " INT64_FORMAT "; the current version is " INT64_FORMAT ".",
						   expected_version, DatumGetInt64(current)),
				 errhint("Read the row again and retry with its current version.")));
	}
	pg_unreachable();
}

/*
 * versioned_update(rel regclass, key jsonb, expected_version bigint,
 *					changes jsonb) RETURNS bigint
 */
Datum
oe_versioned_update(PG_FUNCTION_ARGS)
{
	static const char *const names[] = {"rel", "key", "expected_version", "changes"};
	int			i;

	for (i = 0; i < 4; i++)
		CheckNotNull(fcinfo, i, names[i]);

	PG_RETURN_INT64(OeVersionedUpdate(PG_GETARG_OID(0), PG_GETARG_JSONB_P(1),
									  PG_GETARG_INT64(2), PG_GETARG_JSONB_P(3)));
}
