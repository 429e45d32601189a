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

/* random bytes in a checkout token; its text is base64url, 43 characters */
#define OE_TOKEN_RANDOM_BYTES	32
#define OE_TOKEN_TEXT_LEN		43

/* longest ttl of an idempotency key or checkout token */
#define OE_MAX_TTL_YEARS		100

/* SHA-256, base64url */
#include "common/digest.h"

/*
 * reap_keys.c: deletes at most max_rows expired idempotency keys and
 * checkout tokens and returns how many it deleted.  Runs in the caller's
 * transaction (it connects to SPI itself), so the worker can call it
 * between StartTransactionCommand and CommitTransactionCommand.
 */
extern int64 OeReapExpiredKeys(int32 max_rows);

#endif							/* ORDER_ENGINE_IDEMPOTENCY_H */
