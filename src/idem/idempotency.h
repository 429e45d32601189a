/*-------------------------------------------------------------------------
 *
 * idempotency.h
 *	  Idempotency keys and one-time checkout tokens: limits and the entry
 *	  points other subsystems (the maintenance worker) call.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ORDER_ENGINE_IDEMPOTENCY_H
#define ORDER_ENGINE_IDEMPOTENCY_H

#include "postgres.h"

#include "common/sha2.h"
#include "datatype/timestamp.h"

/* documented maximum lengths, in bytes (README, docs/idempotency.md) */
#define OE_IDEM_MAX_SCOPE_LEN	64
#define OE_IDEM_MAX_KEY_LEN		255

/*
 * Field 4 of the advisory lock tag idem_begin takes per (scope, key).  The
 * SQL-level advisory lock functions use 1 and 2, so ours never collide
 * with an application's advisory locks; pg_locks shows it as objsubid.
 */
#define OE_IDEM_LOCK_FIELD4		0x4F45

/* longest ttl of an idempotency key or checkout token */
#define OE_MAX_TTL_YEARS		100

/* idempotency.c: now() + ttl, or 22023 when not in (0, 100 years] */
extern TimestampTz OeExpiryFromTtl(Interval *ttl);

/* SHA-256, base64url */
#include "common/digest.h"

/*
 * quote_store.c: checkout quotes (order_engine.checkout_quotes), the
 * lines and unit prices frozen by quote(); see the file for the rules.
 * All three need the caller's SPI connection.
 */
typedef struct OeQuote
{
	bytea	   *hash;			/* SHA-256 of the token: the row's key */
	int			n;
	int64	   *sku_ids;
	int64	   *qtys;
	Datum	   *unit_prices;	/* numeric */
	TimestampTz expires_at;
} OeQuote;

extern char *OeQuoteStore(int64 buyer_id, int n, const int64 *sku_ids,
						  const int64 *qtys, const Datum *unit_prices,
						  TimestampTz expires_at);
extern bool OeQuoteLock(text *token, int64 buyer_id, OeQuote *quote);
extern void OeQuoteConsume(const OeQuote *quote);

/*
 * reap_keys.c: deletes at most max_rows expired idempotency keys,
 * checkout tokens and checkout quotes and returns how many it deleted.  Runs in the caller's
 * transaction (it connects to SPI itself), so the worker can call it
 * between StartTransactionCommand and CommitTransactionCommand.
 */
extern int64 OeReapExpiredKeys(int32 max_rows);

#endif							/* ORDER_ENGINE_IDEMPOTENCY_H */
