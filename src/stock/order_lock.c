/*-------------------------------------------------------------------------
 *
 * order_lock.c
 *	  The order number's lock: the first lock every stock call on an order
 *	  takes (reserve, confirm, release, place_order, the worker's batches).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "storage/lock.h"

#include "common/lock_tags.h"
#include "stock/stock.h"

/*
 * Serialise reserve/confirm/release of one order number for the rest of
 * the transaction, so a repeat never races its original.  The tag is the
 * order-number space of common/lock_tags.h.
 */
void
OeStockLockOrder(int64 order_no)
{
	LOCKTAG		tag;

	OeLockTagOrder(&tag, order_no);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
}

/*
 * The same lock, if nobody holds it: close_unpaid takes it before any
 * stock lock (the order every client takes them in) and leaves an order
 * whose number is busy to the next batch rather than wait with the
 * batch's bucket locks held.
 */
bool
OeStockTryLockOrder(int64 order_no)
{
	LOCKTAG		tag;

	OeLockTagOrder(&tag, order_no);
	return LockAcquire(&tag, ExclusiveLock, false, true) != LOCKACQUIRE_NOT_AVAIL;
}
