/*-------------------------------------------------------------------------
 *
 * stock.h
 *	  The stock subsystem: the C API that the SQL functions wrap and that
 *	  other C code (place_order, the worker's release of expired holds)
 *	  calls directly, so that every stock rule has one implementation.
 *
 * Every function here runs inside the caller's transaction, connects to
 * SPI itself (nesting is fine) and raises the errors docs/stock.md lists.
 * Arguments are assumed validated (stock_sql.c does that for SQL callers;
 * OeStockCheck* below are the checkers to reuse).
 *
 *-------------------------------------------------------------------------
 */
#ifndef ORDER_ENGINE_STOCK_H
#define ORDER_ENGINE_STOCK_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "executor/spi.h"

#include "common/internal_sql.h"
#include "common/order_engine.h"	/* OE_MAX_RESERVE_LINES */

/* most bucket rows one SKU may be spread over */
#define OE_STOCK_MAX_BUCKETS		1024

/* longest hold: 7 days (a month in a ttl counts as 30 days) */
#define OE_STOCK_MAX_TTL_USECS		(INT64CONST(7) * USECS_PER_DAY)

/* stock.c: holds */
/*
 * all-or-nothing holds; *created (if not NULL) says whether this call made
 * them (false: a repeat found them, or nothing was held)
 */
/*
 * What OeStockPeekShort read of a SKU's bucket rows when it could not say
 * "short": handed to the reserve that follows, whose lookup then does not
 * read them again (valid false: nothing to hand over).
 */
typedef struct OeStockPeek
{
	bool		valid;
	int64		sku_id;
	int64		row_available;	/* the bucket rows' available */
	int64		escrow;			/* and their escrow */
	ItemPointerData bucket_tid; /* where the one bucket row was, if one */
} OeStockPeek;

/*
 * What OeStockReserve's lookup read of the SKUs' prices, for place_order:
 * per line (caller's order) whether the SKU has a price and the price,
 * copied into the caller's memory.  Filled whenever OeStockReserve
 * returns: its lookup comes before every answer.
 */
typedef struct OeStockPrices
{
	Datum	   *values;
	bool	   *has_price;
} OeStockPrices;

extern bool OeStockReserve(int64 order_no, int nlines, const int64 *sku_ids,
						   const int64 *qtys, int64 ttl_usecs,
						   bool has_buyer, int64 buyer_id, bool *created,
						   const OeStockPeek *peek, OeStockPrices *prices);
/* one bucket row: the holds that lie wholly in it */
typedef struct OeStockBucketRef
{
	int64		sku_id;
	int32		bucket;
} OeStockBucketRef;

/*
 * stock_hold.c: release the holds (order_nos[i], sku_ids[i]) that are
 * still held, in one statement.  The caller chose them as due and locked
 * them, and locked their tallies and buckets (OeStockLockForRelease).
 * Returns how many holds it released.
 */
extern int64 OeStockReleaseHeldHolds(const int64 *order_nos, const int64 *sku_ids, int n);
/*
 * stock_hold.c: lock what releasing the held holds of these orders (with
 * only, those wholly in that bucket row) will lock, in the order every
 * stock call locks in: the buyers' tallies, then the SKU's bucket rows
 * (with only, that one row).  Each lock waited for at most
 * lock_timeout_ms (55P03 beyond).
 */
extern void OeStockLockForRelease(const int64 *orders, int norders, int lock_timeout_ms,
								  const OeStockBucketRef *only);
/*
 * stock_hold.c: the same for holds wholly in bucket row row whose buyers
 * (those with one; duplicates allowed) the caller knows: their tallies,
 * then the row.
 */
extern void OeStockLockRowForRelease(const OeStockBucketRef *row, const int64 *buyers, int nbuyers,
									 int lock_timeout_ms);
extern int32 OeStockConfirm(int64 order_no);
extern int32 OeStockConfirmAt(int64 order_no, TimestampTz now);
extern int32 OeStockRelease(int64 order_no);
/*
 * stock_hold.c: a placed order's holds live until at least its deadline:
 * extends held ones that would end sooner; OE005 unless all nlines are
 * held until then.  Needs an SPI connection.
 */
extern void OeStockBindHolds(int64 order_no, int nlines, TimestampTz deadline);
/* stock_return.c: a paid order's confirmed holds back to available */
extern void OeStockReturnSold(int64 order_no);
extern bool OeStockReleaseHold(int64 order_no, int64 sku_id);
extern bool OeStockTryDeduct(int64 sku_id, int64 qty);
extern void OeStockLockOrder(int64 order_no);
extern bool OeStockTryLockOrder(int64 order_no);

/* stock_errors.c: ERROR, SKU sku_id does not exist (OE008, with its hint) */
extern void OeStockSkuNotFound(int64 sku_id) pg_attribute_noreturn();

/* stock_price.c: the unit prices of n SKUs, one probe each (OE008 unknown) */
extern void OeStockUnitPrices(int n, const int64 *sku_ids, Datum *prices,
							  bool *has_price);

/* stock_look.c: the cheap "no" for a one-line reserve of a sold-out SKU */
extern bool OeStockPeekShort(int64 order_no, int64 sku_id, int64 qty,
							 OeStockPeek *peek);


/* stock_admin.c: catalogue and rebalancing */
extern int64 OeStockRestock(int64 sku_id, int64 delta, const char *reason);
extern void OeStockSetPrice(int64 sku_id, Datum price);
extern void OeStockSetBuckets(int64 sku_id, int32 nbuckets);
extern void OeStockSetPurchaseLimit(int64 sku_id, bool has_limit, int64 per_buyer);
/* escrow.c: escrow on or off; the fold job's batch (fold_escrow) */
extern void OeStockSetEscrow(int64 sku_id, bool enabled);
extern int64 OeEscrowFold(int32 max_rows, int64 older_than_usecs, bool only_starved);

/* escrow_counter.c: the counters' shared memory (src/shmem.c) */
extern Size OeEscrowShmemSize(void);
extern void OeEscrowShmemInit(void);

/* stock_sql.c: input checkers shared with other SQL entry points */
extern void OeStockCheckLines(int nlines, const int64 *sku_ids, const int64 *qtys);
extern int64 OeStockTtlUsecs(const Interval *ttl);

#endif							/* ORDER_ENGINE_STOCK_H */
