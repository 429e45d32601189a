/*-------------------------------------------------------------------------
 *
 * errors.h
 *	  The SQLSTATEs of order_engine's own errors.
 *
 * Every error a client may need to branch on gets its own code in class
 * "OE" (class letters I-Z are left to implementations by the SQL standard
 * and PostgreSQL does not use "O").  Bad input uses PostgreSQL's standard
 * codes (22023, 22004, 22003 ...); the complete list, standard codes
 * included, is the SQLSTATE table in README.md.  Codes are never reused:
 * retire one by leaving a gap.
 *
 *	code   macro								raised when
 *	-----  -----------------------------------	-------------------------------
 *	OE001  ERRCODE_OE_VERSION_CONFLICT			expected_version is stale
 *	OE002  ERRCODE_OE_ROW_NOT_FOUND				versioned update of a missing row
 *	OE003  ERRCODE_OE_IDEMPOTENCY_KEY_REUSED	same key, different request
 *	OE004  ERRCODE_OE_ILLEGAL_TRANSITION		order state machine refuses a move
 *	OE005  ERRCODE_OE_HOLD_STATE_CONFLICT		e.g. confirming a released hold
 *	OE006  ERRCODE_OE_ORDER_CONFLICT			order number reused for other content
 *	OE007  ERRCODE_OE_AMOUNT_MISMATCH			payment amount differs from the total
 *	OE008  ERRCODE_OE_SKU_NOT_FOUND				unknown SKU
 *	OE009  ERRCODE_OE_ORDER_NOT_FOUND			unknown order number
 *	OE010  ERRCODE_OE_ID_TAG_NOT_FOUND			next_id on an unregistered tag
 *	OE011  ERRCODE_OE_CLOCK_MOVED_BACKWARDS		snowflake clock went back too far
 *	OE012  ERRCODE_OE_INSUFFICIENT_STOCK		a write-off larger than available
 *	OE013  ERRCODE_OE_PURCHASE_LIMIT_EXCEEDED	buyer would pass the SKU's limit
 *	OE014  ERRCODE_OE_ID_TAG_EXISTS				create_id_tag of an existing tag
 *	OE015  ERRCODE_OE_ID_EXHAUSTED				a tag ran past the bigint range
 *	OE016  ERRCODE_OE_IDEMPOTENCY_KEY_NOT_FOUND	idem_finish/abort of an unknown key
 *	OE017  ERRCODE_OE_IDEMPOTENCY_CLAIM_NOT_HELD	idem_finish/abort without the claim
 *	OE018  ERRCODE_OE_PAYMENT_REF_CONFLICT		payment_ref reused for another payment
 *	OE019  ERRCODE_OE_HOLD_BOUND_TO_ORDER		confirm/release of a placed order's holds
 *	OE020  ERRCODE_OE_REFUND_REF_CONFLICT		refund_ref reused, or a refund already recorded with another one
 *	OE021  ERRCODE_OE_PAYMENT_NOT_REFUNDABLE	refund_payment of a payment nobody owes back
 *	OE022  ERRCODE_OE_PAYMENT_NOT_FOUND			refund_payment of an unknown payment_ref
 *	OE023  ERRCODE_OE_SHARD_GENE_MISMATCH		place_order number without the buyer's gene
 *	OE024  ERRCODE_OE_QUOTE_NOT_FOUND			place_order with an unknown, used or other buyer's quote
 *	OE025  ERRCODE_OE_QUOTE_EXPIRED				place_order with a quote past its ttl
 *	OE026  ERRCODE_OE_QUOTE_MISMATCH			place_order lines that differ from the quote's
 *	OE027  ERRCODE_OE_ESCROW_CONFLICT			set_escrow of a bucketed SKU, set_buckets of an escrow one
 *
 *-------------------------------------------------------------------------
 */
#ifndef ORDER_ENGINE_ERRORS_H
#define ORDER_ENGINE_ERRORS_H

#include "utils/elog.h"

#define OE_SQLSTATE(c4, c5)	MAKE_SQLSTATE('O', 'E', '0', c4, c5)

#define ERRCODE_OE_VERSION_CONFLICT			OE_SQLSTATE('0', '1')
#define ERRCODE_OE_ROW_NOT_FOUND			OE_SQLSTATE('0', '2')
#define ERRCODE_OE_IDEMPOTENCY_KEY_REUSED	OE_SQLSTATE('0', '3')
#define ERRCODE_OE_ILLEGAL_TRANSITION		OE_SQLSTATE('0', '4')
#define ERRCODE_OE_HOLD_STATE_CONFLICT		OE_SQLSTATE('0', '5')
#define ERRCODE_OE_ORDER_CONFLICT			OE_SQLSTATE('0', '6')
#define ERRCODE_OE_AMOUNT_MISMATCH			OE_SQLSTATE('0', '7')
#define ERRCODE_OE_SKU_NOT_FOUND			OE_SQLSTATE('0', '8')
#define ERRCODE_OE_ORDER_NOT_FOUND			OE_SQLSTATE('0', '9')
#define ERRCODE_OE_ID_TAG_NOT_FOUND			OE_SQLSTATE('1', '0')
#define ERRCODE_OE_CLOCK_MOVED_BACKWARDS	OE_SQLSTATE('1', '1')
#define ERRCODE_OE_INSUFFICIENT_STOCK		OE_SQLSTATE('1', '2')
#define ERRCODE_OE_PURCHASE_LIMIT_EXCEEDED	OE_SQLSTATE('1', '3')
#define ERRCODE_OE_ID_TAG_EXISTS			OE_SQLSTATE('1', '4')
#define ERRCODE_OE_ID_EXHAUSTED				OE_SQLSTATE('1', '5')
#define ERRCODE_OE_IDEMPOTENCY_KEY_NOT_FOUND	OE_SQLSTATE('1', '6')
#define ERRCODE_OE_IDEMPOTENCY_CLAIM_NOT_HELD	OE_SQLSTATE('1', '7')
#define ERRCODE_OE_PAYMENT_REF_CONFLICT		OE_SQLSTATE('1', '8')
#define ERRCODE_OE_HOLD_BOUND_TO_ORDER		OE_SQLSTATE('1', '9')
#define ERRCODE_OE_REFUND_REF_CONFLICT		OE_SQLSTATE('2', '0')
#define ERRCODE_OE_PAYMENT_NOT_REFUNDABLE	OE_SQLSTATE('2', '1')
#define ERRCODE_OE_PAYMENT_NOT_FOUND		OE_SQLSTATE('2', '2')
#define ERRCODE_OE_SHARD_GENE_MISMATCH		OE_SQLSTATE('2', '3')
#define ERRCODE_OE_QUOTE_NOT_FOUND			OE_SQLSTATE('2', '4')
#define ERRCODE_OE_QUOTE_EXPIRED			OE_SQLSTATE('2', '5')
#define ERRCODE_OE_QUOTE_MISMATCH			OE_SQLSTATE('2', '6')
#define ERRCODE_OE_ESCROW_CONFLICT			OE_SQLSTATE('2', '7')

#endif							/* ORDER_ENGINE_ERRORS_H */
