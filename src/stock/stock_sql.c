/*-------------------------------------------------------------------------
 *
 * stock_sql.c
 *	  The SQL-callable stock functions: argument checks, then the C API of
 *	  stock.h.
 *
 * The functions are not STRICT so that a NULL argument is an error with
 * SQLSTATE 22004 rather than a silent NULL result.  Bad input never
 * reaches the tables: every check here runs before anything changes.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/int.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "common/order_engine.h"
#include "common/args.h"
#include "common/arrays.h"
#include "common/internal_sql.h"
#include "common/interval_check.h"
#include "orders/orders.h"
#include "stock/stock.h"

PG_FUNCTION_INFO_V1(oe_restock);
PG_FUNCTION_INFO_V1(oe_set_price);
PG_FUNCTION_INFO_V1(oe_try_deduct);
PG_FUNCTION_INFO_V1(oe_reserve);
PG_FUNCTION_INFO_V1(oe_confirm);
PG_FUNCTION_INFO_V1(oe_release);
PG_FUNCTION_INFO_V1(oe_set_buckets);
PG_FUNCTION_INFO_V1(oe_set_purchase_limit);

static inline void
CheckPositive(int64 value, const char *name)
{
	if (value <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be positive", name),
				 errdetail("The value given is " INT64_FORMAT ".", value)));
}

/*
 * The lines of an order: 1 .. OE_MAX_RESERVE_LINES of them, positive SKU ids
 * and quantities, no SKU twice (refused rather than merged, so that a
 * caller's bug never silently changes the quantity held).
 */
void
OeStockCheckLines(int nlines, const int64 *sku_ids, const int64 *qtys)
{
	int64	   *sorted;
	int			i;

	if (nlines < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("an order needs at least one line")));
	if (nlines > OE_MAX_RESERVE_LINES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("an order may have at most %d lines", OE_MAX_RESERVE_LINES),
				 errdetail("The order has %d lines.", nlines)));
	for (i = 0; i < nlines; i++)
	{
		CheckPositive(sku_ids[i], "sku_id");
		CheckPositive(qtys[i], "qty");
	}
	sorted = palloc(sizeof(int64) * nlines);
	memcpy(sorted, sku_ids, sizeof(int64) * nlines);
	OeSortInt64(sorted, nlines);
	for (i = 1; i < nlines; i++)
		if (sorted[i] == sorted[i - 1])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("SKU " INT64_FORMAT " appears twice in the order", sorted[i]),
					 errhint("Give each SKU once, with the total quantity.")));
	pfree(sorted);
}

/*
 * A hold's time to live in microseconds (a month counts as 30 days):
 * positive and at most OE_STOCK_MAX_TTL_USECS.
 */
int64
OeStockTtlUsecs(const Interval *ttl)
{
	return OeIntervalUsecs(ttl, "ttl", OE_STOCK_MAX_TTL_USECS, "7 days");
}

/* a one-dimensional bigint[] without NULLs; returns its length */
static int
int8_array_arg(FunctionCallInfo fcinfo, int argno, const char *name, int64 **out)
{
	ArrayType  *a;
	Datum	   *d;
	bool	   *nulls;
	int			n,
				i;

	CheckNotNull(fcinfo, argno, name);
	a = PG_GETARG_ARRAYTYPE_P(argno);
	if (ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a one-dimensional array", name)));
	deconstruct_array(a, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &d, &nulls, &n);
	*out = palloc(sizeof(int64) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not contain nulls", name),
					 errdetail("Element %d is null.", i + 1)));
		(*out)[i] = DatumGetInt64(d[i]);
	}
	return n;
}

Datum
oe_restock(PG_FUNCTION_ARGS)
{
	int64		sku_id,
				delta;
	char	   *reason = NULL;

	CheckNotNull(fcinfo, 0, "sku_id");
	CheckNotNull(fcinfo, 1, "delta");
	sku_id = PG_GETARG_INT64(0);
	delta = PG_GETARG_INT64(1);
	CheckPositive(sku_id, "sku_id");
	if (delta == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("delta must not be zero")));
	if (delta == PG_INT64_MIN)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("delta is out of range")));
	if (!PG_ARGISNULL(2))
		reason = text_to_cstring(PG_GETARG_TEXT_PP(2));
	PG_RETURN_INT64(OeStockRestock(sku_id, delta, reason));
}

Datum
oe_set_price(PG_FUNCTION_ARGS)
{
	Numeric		price;

	CheckNotNull(fcinfo, 0, "sku_id");
	CheckNotNull(fcinfo, 1, "price");
	CheckPositive(PG_GETARG_INT64(0), "sku_id");
	price = PG_GETARG_NUMERIC(1);
	if (numeric_is_nan(price) || numeric_is_inf(price) ||
		DatumGetBool(DirectFunctionCall2(numeric_lt, NumericGetDatum(price),
										 DirectFunctionCall1(int4_numeric, Int32GetDatum(0)))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("price must be a finite number not below zero")));
	OeOrderCheckPrice(NumericGetDatum(price));
	OeStockSetPrice(PG_GETARG_INT64(0), NumericGetDatum(price));
	PG_RETURN_VOID();
}

Datum
oe_try_deduct(PG_FUNCTION_ARGS)
{
	CheckNotNull(fcinfo, 0, "sku_id");
	CheckNotNull(fcinfo, 1, "qty");
	CheckPositive(PG_GETARG_INT64(0), "sku_id");
	CheckPositive(PG_GETARG_INT64(1), "qty");
	PG_RETURN_BOOL(OeStockTryDeduct(PG_GETARG_INT64(0), PG_GETARG_INT64(1)));
}

Datum
oe_reserve(PG_FUNCTION_ARGS)
{
	int64		order_no;
	int64	   *skus,
			   *qtys;
	int			nskus,
				nqtys;
	int64		ttl_usecs;
	OeStockPeek peek;
	OeInternalScope scope;
	volatile bool held = false;

	CheckNotNull(fcinfo, 0, "order_no");
	order_no = PG_GETARG_INT64(0);
	CheckPositive(order_no, "order_no");
	nskus = int8_array_arg(fcinfo, 1, "sku_ids", &skus);
	nqtys = int8_array_arg(fcinfo, 2, "qtys", &qtys);
	if (nskus != nqtys)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("sku_ids and qtys must have the same length"),
				 errdetail("sku_ids has %d elements, qtys has %d.", nskus, nqtys)));
	CheckNotNull(fcinfo, 3, "ttl");
	ttl_usecs = OeStockTtlUsecs(PG_GETARG_INTERVAL_P(3));
	OeStockCheckLines(nskus, skus, qtys);

	/*
	 * A one-line order on a sold-out SKU: two index probes and no SQL
	 * (stock_look.c), so answered before the owner switch and the
	 * search_path pin, which only SQL needs.
	 */
	peek.valid = false;
	if (nskus == 1 && OeStockPeekShort(order_no, skus[0], qtys[0], &peek))
		PG_RETURN_BOOL(false);

	/* reserve is not SECURITY DEFINER: see internal_sql.c */
	OeInternalEnter(&scope, true);
	PG_TRY();
	{
		held = OeStockReserve(order_no, nskus, skus, qtys, ttl_usecs,
							  !PG_ARGISNULL(4),
							  PG_ARGISNULL(4) ? 0 : PG_GETARG_INT64(4), NULL, &peek, NULL);
	}
	PG_CATCH();
	{
		OeInternalAbort(&scope);
		PG_RE_THROW();
	}
	PG_END_TRY();
	OeInternalExit(&scope);
	PG_RETURN_BOOL(held);
}

Datum
oe_confirm(PG_FUNCTION_ARGS)
{
	CheckNotNull(fcinfo, 0, "order_no");
	OeOrderCheckStockCall(PG_GETARG_INT64(0), "confirm");
	PG_RETURN_INT32(OeStockConfirm(PG_GETARG_INT64(0)));
}

Datum
oe_release(PG_FUNCTION_ARGS)
{
	CheckNotNull(fcinfo, 0, "order_no");
	OeOrderCheckStockCall(PG_GETARG_INT64(0), "release");
	PG_RETURN_INT32(OeStockRelease(PG_GETARG_INT64(0)));
}

Datum
oe_set_buckets(PG_FUNCTION_ARGS)
{
	int32		n;

	CheckNotNull(fcinfo, 0, "sku_id");
	CheckNotNull(fcinfo, 1, "n");
	CheckPositive(PG_GETARG_INT64(0), "sku_id");
	n = PG_GETARG_INT32(1);
	if (n < 1 || n > OE_STOCK_MAX_BUCKETS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("n must be between 1 and %d", OE_STOCK_MAX_BUCKETS),
				 errdetail("The value given is %d.", n)));
	OeStockSetBuckets(PG_GETARG_INT64(0), n);
	PG_RETURN_VOID();
}

Datum
oe_set_purchase_limit(PG_FUNCTION_ARGS)
{
	CheckNotNull(fcinfo, 0, "sku_id");
	CheckPositive(PG_GETARG_INT64(0), "sku_id");
	if (!PG_ARGISNULL(1))
		CheckPositive(PG_GETARG_INT64(1), "per_buyer");
	OeStockSetPurchaseLimit(PG_GETARG_INT64(0), !PG_ARGISNULL(1),
							PG_ARGISNULL(1) ? 0 : PG_GETARG_INT64(1));
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(oe_set_escrow);
PG_FUNCTION_INFO_V1(oe_fold_escrow);

Datum
oe_set_escrow(PG_FUNCTION_ARGS)
{
	CheckNotNull(fcinfo, 0, "sku_id");
	CheckNotNull(fcinfo, 1, "enabled");
	CheckPositive(PG_GETARG_INT64(0), "sku_id");
	OeStockSetEscrow(PG_GETARG_INT64(0), PG_GETARG_BOOL(1));
	PG_RETURN_VOID();
}

Datum
oe_fold_escrow(PG_FUNCTION_ARGS)
{
	/* STRICT in SQL: no argument is null */
	int32		max_rows = PG_GETARG_INT32(0);

	CheckMaxRows(max_rows, OE_MAX_ROWS_UNBOUNDED);
	/* every hold, every counter: the worker's batch is the lazy one */
	PG_RETURN_INT32((int32) OeEscrowFold(max_rows, 0, false));
}
