/*-------------------------------------------------------------------------
 *
 * refunds.c
 *	  Money going back: the per-payment refund lifecycle, and the stock
 *	  and purchase-limit allowance a paid order gives back when its buyer
 *	  cancels it before shipment.
 *
 *	  payments.refund_state:  NULL (kept) | refund_required -> refunded
 *
 * Every payment pay_order accepts is a row of order_engine.payments; a row
 * whose refund_state is refund_required is money owed back (view
 * refunds_due).  refund_payment records one refund, with the processor's
 * refund reference, exactly once; when the last payment an order owes is
 * refunded, a refund_required order becomes refunded.  refund_order (one
 * call per order) marks all of them at once, without a reference.
 *
 * Returning a sale (OeOrderReturnStock) follows stock.c's rules and lock
 * order: the order number's advisory lock, then per SKU in sku_id order
 * the buyer's tally row, then bucket rows in bucket order; every unit is
 * journaled (stock_movement kind "return"), and the hold, confirmed until
 * now, ends released, so stock_audit's sums still hold.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/numeric.h"

#include "common/args.h"
#include "common/errors.h"
#include "common/internal_sql.h"
#include "orders/orders.h"
#include "stock/stock.h"

enum
{
	Anum_confirmed_sku_id = 1,
	Anum_confirmed_qty,
	Anum_confirmed_buyer_id
};
static OeQuery select_confirmed_holds = {
	"SELECT sku_id, qty, buyer_id FROM order_engine.stock_hold"
	" WHERE order_no OPERATOR(pg_catalog.=) $1 AND state OPERATOR(pg_catalog.=) 'confirmed'"
	" ORDER BY sku_id FOR UPDATE",
	1, {INT8OID}
};

static OeQuery return_tally = {
	"UPDATE order_engine.purchase_tally SET units = units OPERATOR(pg_catalog.-) $3"
	" WHERE sku_id OPERATOR(pg_catalog.=) $1 AND buyer_id OPERATOR(pg_catalog.=) $2",
	3, {INT8OID, INT8OID, INT8OID}
};

/* sold units may sit in any bucket (set_buckets moves them to bucket 0) */
static OeQuery lock_sold_buckets = {
	"SELECT bucket, sold FROM order_engine.stock_bucket"
	" WHERE sku_id OPERATOR(pg_catalog.=) $1 AND sold OPERATOR(pg_catalog.>) 0"
	" ORDER BY bucket FOR UPDATE",
	1, {INT8OID}
};

static OeQuery return_bucket = {
	"UPDATE order_engine.stock_bucket"
	"   SET available = available OPERATOR(pg_catalog.+) $3, sold = sold OPERATOR(pg_catalog.-) $3"
	" WHERE sku_id OPERATOR(pg_catalog.=) $1 AND bucket OPERATOR(pg_catalog.=) $2",
	3, {INT8OID, INT4OID, INT8OID}
};

static OeQuery return_hold = {
	"WITH h AS (UPDATE order_engine.stock_hold SET state = 'released', updated_at = pg_catalog.now()"
	"   WHERE order_no OPERATOR(pg_catalog.=) $1 AND sku_id OPERATOR(pg_catalog.=) $2"
	"     AND state OPERATOR(pg_catalog.=) 'confirmed' RETURNING 1)"
	" INSERT INTO order_engine.stock_movement (sku_id, kind, d_available, d_held, d_sold, order_no)"
	" SELECT $2, 'return', $3, 0, OPERATOR(pg_catalog.-) $3, $1 FROM h",
	3, {INT8OID, INT8OID, INT8OID}
};

static OeQuery owe_back = {
	"UPDATE order_engine.payments SET refund_state = 'refund_required'"
	" WHERE order_no OPERATOR(pg_catalog.=) $1 AND outcome OPERATOR(pg_catalog.=) 'paid'"
	"   AND refund_state IS NULL",
	1, {INT8OID}
};

static OeQuery mark_refunded = {
	"UPDATE order_engine.payments SET refund_state = 'refunded', refunded_at = pg_catalog.now()"
	" WHERE order_no OPERATOR(pg_catalog.=) $1"
	"   AND refund_state OPERATOR(pg_catalog.=) 'refund_required'",
	1, {INT8OID}
};

static OeQuery select_payment_order = {
	"SELECT order_no FROM order_engine.payments WHERE payment_ref OPERATOR(pg_catalog.=) $1",
	1, {TEXTOID}
};

enum
{
	Anum_locked_payment_order_no = 1,
	Anum_locked_payment_amount,
	Anum_locked_payment_refund_state,
	Anum_locked_payment_refund_ref
};
static OeQuery lock_payment = {
	"SELECT order_no, amount, refund_state, refund_ref FROM order_engine.payments"
	" WHERE payment_ref OPERATOR(pg_catalog.=) $1 FOR UPDATE",
	1, {TEXTOID}
};

static OeQuery select_refund_ref = {
	"SELECT payment_ref FROM order_engine.payments WHERE refund_ref OPERATOR(pg_catalog.=) $1",
	1, {TEXTOID}
};

static OeQuery refund_one = {
	"UPDATE order_engine.payments"
	"   SET refund_state = 'refunded', refund_ref = $2, refunded_at = pg_catalog.now()"
	" WHERE payment_ref OPERATOR(pg_catalog.=) $1"
	"   AND refund_state OPERATOR(pg_catalog.=) 'refund_required'",
	2, {TEXTOID, TEXTOID}
};

static OeQuery count_owed = {
	"SELECT pg_catalog.count(*) FROM order_engine.payments"
	" WHERE order_no OPERATOR(pg_catalog.=) $1"
	"   AND refund_state OPERATOR(pg_catalog.=) 'refund_required'",
	1, {INT8OID}
};

/*
 * The confirmed holds of a paid order go back to available, and the
 * buyer's tally gives the units back.  The caller holds the order row.
 */
void
OeOrderReturnStock(int64 order_no)
{
	Datum		arg = Int64GetDatum(order_no);
	uint64		nholds;
	int64	   *skus,
			   *qtys,
			   *buyers;
	bool	   *nobuyer;

	SPI_connect();
	OeStockLockOrder(order_no);
	OeQueryRun(&select_confirmed_holds, &arg, NULL, false, 0);
	nholds = SPI_processed;
	skus = palloc(sizeof(int64) * Max(nholds, 1));
	qtys = palloc(sizeof(int64) * Max(nholds, 1));
	buyers = palloc(sizeof(int64) * Max(nholds, 1));
	nobuyer = palloc(sizeof(bool) * Max(nholds, 1));
	for (uint64 i = 0; i < nholds; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		skus[i] = DatumGetInt64(SPI_getbinval(tup, desc, Anum_confirmed_sku_id, &isnull));
		qtys[i] = DatumGetInt64(SPI_getbinval(tup, desc, Anum_confirmed_qty, &isnull));
		buyers[i] = DatumGetInt64(SPI_getbinval(tup, desc, Anum_confirmed_buyer_id, &nobuyer[i]));
	}

	for (uint64 i = 0; i < nholds; i++)
	{
		Datum		v[3];
		int64		remaining = qtys[i];
		uint64		nbuckets;
		int32	   *buckets;
		int64	   *sold;

		if (!nobuyer[i])
		{
			v[0] = Int64GetDatum(skus[i]);
			v[1] = Int64GetDatum(buyers[i]);
			v[2] = Int64GetDatum(qtys[i]);
			OeQueryRun(&return_tally, v, NULL, false, 0);
		}

		v[0] = Int64GetDatum(skus[i]);
		OeQueryRun(&lock_sold_buckets, v, NULL, false, 0);
		nbuckets = SPI_processed;
		buckets = palloc(sizeof(int32) * Max(nbuckets, 1));
		sold = palloc(sizeof(int64) * Max(nbuckets, 1));
		for (uint64 k = 0; k < nbuckets; k++)
		{
			bool		isnull;

			buckets[k] = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[k],
													 SPI_tuptable->tupdesc, 1, &isnull));
			sold[k] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[k],
												  SPI_tuptable->tupdesc, 2, &isnull));
		}
		for (uint64 k = 0; k < nbuckets && remaining > 0; k++)
		{
			int64		q = Min(sold[k], remaining);

			v[1] = Int32GetDatum(buckets[k]);
			v[2] = Int64GetDatum(q);
			OeQueryRun(&return_bucket, v, NULL, false, 0);
			remaining -= q;
		}
		if (remaining > 0)
			elog(ERROR, "order_engine: SKU " INT64_FORMAT " has fewer sold units than order " INT64_FORMAT " bought",
				 skus[i], order_no);

		v[0] = Int64GetDatum(order_no);
		v[1] = Int64GetDatum(skus[i]);
		v[2] = Int64GetDatum(qtys[i]);
		OeQueryRun(&return_hold, v, NULL, false, 0);
		if (SPI_processed != 1)
			elog(ERROR, "order_engine: hold of order " INT64_FORMAT " on SKU " INT64_FORMAT " changed under its lock",
				 order_no, skus[i]);
	}
	SPI_finish();
}

/* the order's kept payments become owed back; returns how many */
int64
OeOrderOweBack(int64 order_no)
{
	Datum		arg = Int64GetDatum(order_no);
	int64		n;

	/* SQL older than 0.7: the outcome column alone says what is owed */
	if (!OeColumnExists("payments", "refund_state"))
		return 0;
	SPI_connect();
	OeQueryRun(&owe_back, &arg, NULL, false, 0);
	n = (int64) SPI_processed;
	SPI_finish();
	return n;
}

/* every payment the order owes is refunded (refund_order); returns how many */
int64
OeOrderMarkRefunded(int64 order_no)
{
	Datum		arg = Int64GetDatum(order_no);
	int64		n;

	SPI_connect();
	OeQueryRun(&mark_refunded, &arg, NULL, false, 0);
	n = (int64) SPI_processed;
	SPI_finish();
	return n;
}

static inline char *
check_ref(FunctionCallInfo fcinfo, int argno, const char *name)
{
	char	   *s;

	CheckNotNull(fcinfo, argno, name);
	s = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	if (s[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", name)));
	if (strlen(s) > OE_MAX_REF_LENGTH)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is longer than %d bytes", name, OE_MAX_REF_LENGTH)));
	return s;
}

/*
 * refund_payment(payment_ref, refund_ref): the payment owed back went
 * back, under the processor's refund reference.  Idempotent with the same
 * reference; another reference for a refunded payment, or one reference
 * for two payments, is OE020.  Locks the order first, then the payment,
 * the order pay_order and cancel_order take them in.
 */
PG_FUNCTION_INFO_V1(oe_refund_payment);
Datum
oe_refund_payment(PG_FUNCTION_ARGS)
{
	char	   *payment_ref = check_ref(fcinfo, 0, "payment_ref");
	char	   *refund_ref = check_ref(fcinfo, 1, "refund_ref");
	Datum		args[2];
	bool		isnull;
	int64		order_no;
	OeOrderStatus status;
	Datum		amount;
	bool		state_null;
	char	   *state;

	args[0] = CStringGetTextDatum(payment_ref);
	args[1] = CStringGetTextDatum(refund_ref);

	SPI_connect();
	OeQueryRun(&select_payment_order, args, NULL, false, 1);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OE_PAYMENT_NOT_FOUND),
				 errmsg("payment \"%s\" does not exist", payment_ref)));
	order_no = DatumGetInt64(OeQueryValue(1, &isnull));
	status = OeOrderLockLive(order_no);

	OeQueryRun(&lock_payment, args, NULL, false, 1);
	amount = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, Anum_locked_payment_amount, &isnull),
							   false, -1);
	(void) SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, Anum_locked_payment_refund_state, &state_null);
	if (state_null)
		ereport(ERROR,
				(errcode(ERRCODE_OE_PAYMENT_NOT_REFUNDABLE),
				 errmsg("payment \"%s\" is not owed back", payment_ref),
				 errdetail("It paid order " INT64_FORMAT ", which keeps it.", order_no),
				 errhint("A paid order that has not shipped is refunded after cancel_order().")));
	state = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, Anum_locked_payment_refund_state);
	if (strcmp(state, "refunded") == 0)
	{
		char	   *done_ref = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, Anum_locked_payment_refund_ref);

		if (done_ref == NULL || strcmp(done_ref, refund_ref) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_OE_REFUND_REF_CONFLICT),
					 errmsg("payment \"%s\" was already refunded", payment_ref),
					 errdetail("Its refund reference is %s.", done_ref ? done_ref : "(none, refund_order)")));
		SPI_finish();
		PG_RETURN_TEXT_P(cstring_to_text("refunded"));
	}

	OeQueryRun(&select_refund_ref, &args[1], NULL, false, 1);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OE_REFUND_REF_CONFLICT),
				 errmsg("refund_ref \"%s\" was already used for another refund", refund_ref),
				 errdetail("It refunded payment %s.",
						   SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, Anum_locked_payment_order_no))));
	OeQueryRun(&refund_one, args, NULL, false, 0);
	if (SPI_processed != 1)
		elog(ERROR, "order_engine: payment \"%s\" changed under its lock", payment_ref);
	{
		const char *const keys[] = {"payment_ref", "refund_ref", "amount"};
		const char *values[3];

		values[0] = payment_ref;
		values[1] = refund_ref;
		values[2] = DatumGetCString(DirectFunctionCall1(numeric_out, amount));
		OeOrderEvent(order_no, "payment_refunded", OeOrderStatusName(status),
					 OeOrderStatusName(status), OeOrderEventDetail(3, keys, values));
	}

	/* the last payment the order owed: the order is refunded */
	if (status == OE_ORDER_REFUND_REQUIRED)
	{
		Datum		arg = Int64GetDatum(order_no);

		OeQueryRun(&count_owed, &arg, NULL, false, 1);
		if (DatumGetInt64(OeQueryValue(1, &isnull)) == 0)
			OeOrderTransition(order_no, OE_ORDER_REFUND_REQUIRED, OE_ORDER_REFUNDED,
							  NULL, NULL, NULL);
	}
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text("refunded"));
}
