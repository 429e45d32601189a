/*-------------------------------------------------------------------------
 *
 * refunds.c
 *	  Money going back: the per-payment refund lifecycle (the stock a
 *	  cancelled paid order gives back is stock's: OeStockReturnSold).
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

/* the order's kept payments become owed back; returns how many */
int64
OeOrderOweBack(int64 order_no)
{
	Datum		arg = Int64GetDatum(order_no);
	int64		n;

	/* SQL older than 0.7: the outcome column alone says what is owed */
	if (!OeColumnExists("payments", "refund_state"))
		return 0;
	OeSqlConnect();
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

	OeSqlConnect();
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

	OeSqlConnect();
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
