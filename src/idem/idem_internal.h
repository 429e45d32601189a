/*-------------------------------------------------------------------------
 *
 * idem_internal.h
 *	  What the files of the idempotency keys share: the statements on
 *	  order_engine.idempotency_keys, the session's claim owner and the
 *	  check of a scope or key argument.
 *
 *	  idempotency.c		the statements (for the installed schema) and
 *						the claim owner
 *	  idem_begin.c		idem_begin
 *	  idem_finish.c		idem_finish and idem_abort
 *	  idem_key_row.c	the claim and the finish without SQL (READ COMMITTED)
 *
 *-------------------------------------------------------------------------
 */
#ifndef ORDER_ENGINE_IDEM_INTERNAL_H
#define ORDER_ENGINE_IDEM_INTERNAL_H

#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"

#include "datatype/timestamp.h"
#include "utils/jsonb.h"

#include "common/args.h"

/* the kept statements on the key table; see idempotency.c for each */
typedef struct OeIdemPlans
{
	bool		with_claim;		/* the table has claim_hash (0.6 on) */
	SPIPlanPtr	claim;			/* read the key, insert it if unseen */
	SPIPlanPtr	read_locked;	/* the row, FOR UPDATE SKIP LOCKED */
	SPIPlanPtr	reset;			/* an expired key starts afresh */
	SPIPlanPtr	takeover;		/* a stale claim changes hands */
	SPIPlanPtr	finish;			/* in_progress -> completed, by its claim */
	SPIPlanPtr	abort_key;		/* delete the key, by its claim */
	SPIPlanPtr	diagnose;		/* state and claim_pid, for the errors */
} OeIdemPlans;

/*
 * idempotency.c: the statements, prepared for the table as it is now
 * installed (with or without claim_hash).  Caller is connected to SPI.
 */
extern const OeIdemPlans *OeIdemPlansGet(void);

/* idempotency.c: the id this session's claims carry */
extern int64 OeIdemClaimOwner(void);

/* idempotency.c: does the key table have claim_hash (0.6 on)? */
extern bool OeIdemKeysHaveClaim(void);

/* what idem_begin reads of an existing key row */
typedef struct IdemKeyRow
{
	bytea	   *fingerprint;
	bool		completed;		/* state = 'completed' */
	Datum		response;
	bool		response_null;
	TimestampTz claimed_at;
	bool		claimed_at_null;
	TimestampTz expires_at;
	bool		expires_at_null;
} IdemKeyRow;

/*
 * idem_key_row.c, with the key's advisory lock held: read (scope, key);
 * found: 0 and *row; not found: insert the claim and 1, with a new claim
 * token in *claim_token and its hash in *claim_hash when with_claim and
 * the table has claim_hash (0.6 on; else they stay NULL); -1: run the SQL
 * instead (not READ COMMITTED, or the table has what a write without SQL
 * does not do).
 */
extern int	OeIdemKeyClaimDirect(text *scope, text *key, bytea *fingerprint,
								 int64 owner, TimestampTz expires, bool with_claim,
								 char **claim_token, bytea **claim_hash,
								 IdemKeyRow *row);

/*
 * idem_key_row.c: complete (scope, key) if it is in_progress and this
 * caller's claim (by owner, or by claim_hash when not NULL): 1 if it did,
 * 0 if no row matched, -1: run the SQL instead.
 */
extern int	OeIdemKeyFinishDirect(text *scope, text *key, int64 owner,
								  Jsonb *response, bytea *claim_hash);

/*
 * scope and key: not null, not empty, at most maxlen bytes.
 */
static inline text *
CheckIdemText(FunctionCallInfo fcinfo, int argno, const char *what, int maxlen)
{
	text	   *t;
	int			len;

	CheckNotNull(fcinfo, argno, what);
	t = PG_GETARG_TEXT_PP(argno);
	len = VARSIZE_ANY_EXHDR(t);
	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", what)));
	if (len > maxlen)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is too long", what),
				 errdetail("It is %d bytes long; the limit is %d bytes.", len, maxlen)));
	return t;
}

/*
 * The columns of a key row as the claim and read_locked statements return
 * them (idempotency.c); the claim statement adds whether it inserted.
 */
enum
{
	Anum_key_fingerprint = 1,
	Anum_key_state,
	Anum_key_response,
	Anum_key_claimed_at,
	Anum_key_expires_at,
	Anum_key_inserted
};

/* the columns of the diagnose statement */
enum
{
	Anum_diagnose_state = 1,
	Anum_diagnose_claim_pid
};

#endif							/* ORDER_ENGINE_IDEM_INTERNAL_H */
