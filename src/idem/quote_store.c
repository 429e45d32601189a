/*-------------------------------------------------------------------------
 *
 * quote_store.c
 *	  The table order_engine.checkout_quotes: a checkout quote's frozen
 *	  lines and prices, stored under the SHA-256 of its secret token.
 *
 * A quote is a checkout token that carries the lines and unit prices the
 * buyer saw when the checkout page opened (seed 000: the "商品快照").
 * orders/quotes.c makes one (quote()) and place_order(..., quote => t)
 * takes it: OeQuoteLock finds and row-locks it, OeQuoteConsume deletes it
 * in the placement's transaction, so it is used once; a placement that
 * ends out_of_stock writes nothing and leaves it for the next try.
 * reap_keys.c deletes expired quotes with the tokens.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "common/arrays.h"
#include "common/internal_sql.h"
#include "idem/idempotency.h"

/* the columns of select_quote, in order */
enum
{
	Anum_quote_buyer_id = 1,
	Anum_quote_sku_ids,
	Anum_quote_qtys,
	Anum_quote_unit_prices,
	Anum_quote_expires_at
};

static OeQuery insert_quote = {
	"INSERT INTO order_engine.checkout_quotes"
	" (quote_hash, buyer_id, sku_ids, qtys, unit_prices, created_at, expires_at)"
	" VALUES ($1, $2, $3, $4, $5, pg_catalog.now(), $6)",
	6, {BYTEAOID, INT8OID, INT8ARRAYOID, INT8ARRAYOID, NUMERICARRAYOID, TIMESTAMPTZOID}
};

/* a used quote is gone; an expired one is still there, for its own error */
static OeQuery select_quote = {
	"SELECT buyer_id, sku_ids, qtys, unit_prices, expires_at"
	" FROM order_engine.checkout_quotes"
	" WHERE quote_hash OPERATOR(pg_catalog.=) $1 FOR UPDATE",
	1, {BYTEAOID}
};

static OeQuery delete_quote = {
	"DELETE FROM order_engine.checkout_quotes WHERE quote_hash OPERATOR(pg_catalog.=) $1",
	1, {BYTEAOID}
};

/*
 * Store the quote; returns its token.  The caller has an SPI connection.
 */
char *
OeQuoteStore(int64 buyer_id, int n, const int64 *sku_ids, const int64 *qtys,
			 const Datum *unit_prices, TimestampTz expires_at)
{
	bytea	   *hash;
	char	   *token = OeNewSecretToken("quote token", &hash);
	Datum		values[6];

	values[0] = PointerGetDatum(hash);
	values[1] = Int64GetDatum(buyer_id);
	values[2] = PointerGetDatum(OeInt8Array(sku_ids, n));
	values[3] = PointerGetDatum(OeInt8Array(qtys, n));
	values[4] = PointerGetDatum(construct_array((Datum *) unit_prices, n, NUMERICOID,
												-1, false, TYPALIGN_INT));
	values[5] = TimestampTzGetDatum(expires_at);
	OeQueryRun(&insert_quote, values, NULL, false, 0);
	return token;
}

/* the elements of a one-dimensional array without NULLs, or ERROR */
static int
quote_array(Datum d, Oid elemtype, Datum **elems)
{
	ArrayType  *a = DatumGetArrayTypeP(d);
	int16		typlen;
	bool		typbyval;
	char		typalign;
	bool	   *nulls;
	int			n;

	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	deconstruct_array(a, elemtype, typlen, typbyval, typalign, elems, &nulls, &n);
	for (int i = 0; i < n; i++)
		if (nulls[i])
			elog(ERROR, "checkout quote has a NULL line element");
	return n;
}

/*
 * Find and row-lock the quote of this token for this buyer.  false when
 * there is none: a token never issued, already used (deleted), reaped,
 * or issued to another buyer, which answers the same so that a token
 * says nothing about other buyers.  An expired quote is returned: the
 * caller raises its own error for it.  The caller has an SPI connection;
 * the arrays are allocated in its memory context.
 */
bool
OeQuoteLock(text *token, int64 buyer_id, OeQuote *quote)
{
	Datum		arg;
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum	   *skus;
	Datum	   *qtys;
	Datum	   *prices;
	int			n;

	/* nothing we issued has another length: no need to hash or look */
	if (VARSIZE_ANY_EXHDR(token) != OE_TOKEN_TEXT_LEN)
		return false;
	quote->hash = OeSha256Bytea(VARDATA_ANY(token), OE_TOKEN_TEXT_LEN);
	arg = PointerGetDatum(quote->hash);
	OeQueryRun(&select_quote, &arg, NULL, false, 1);
	if (SPI_processed == 0)
		return false;
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	if (DatumGetInt64(SPI_getbinval(tup, desc, Anum_quote_buyer_id, &isnull)) != buyer_id)
		return false;

	n = quote_array(SPI_getbinval(tup, desc, Anum_quote_sku_ids, &isnull), INT8OID, &skus);
	if (quote_array(SPI_getbinval(tup, desc, Anum_quote_qtys, &isnull), INT8OID, &qtys) != n ||
		quote_array(SPI_getbinval(tup, desc, Anum_quote_unit_prices, &isnull), NUMERICOID, &prices) != n)
		elog(ERROR, "checkout quote has arrays of different lengths");
	quote->n = n;
	quote->sku_ids = palloc(sizeof(int64) * n);
	quote->qtys = palloc(sizeof(int64) * n);
	quote->unit_prices = palloc(sizeof(Datum) * n);
	for (int i = 0; i < n; i++)
	{
		quote->sku_ids[i] = DatumGetInt64(skus[i]);
		quote->qtys[i] = DatumGetInt64(qtys[i]);
		quote->unit_prices[i] = SPI_datumTransfer(prices[i], false, -1);
	}
	quote->expires_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, Anum_quote_expires_at, &isnull));
	return true;
}

/* the placement used the quote: it is gone when the transaction commits */
void
OeQuoteConsume(const OeQuote *quote)
{
	Datum		arg = PointerGetDatum(quote->hash);

	OeQueryRun(&delete_quote, &arg, NULL, false, 0);
	if (SPI_processed != 1)
		elog(ERROR, "checkout quote vanished under its row lock");
}
