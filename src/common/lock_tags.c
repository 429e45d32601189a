/*-------------------------------------------------------------------------
 *
 * common/lock_tags.c
 *	  The advisory lock tags of order_engine, one function per space (the
 *	  table of spaces is in lock_tags.h).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/lock.h"

#include "common/lock_tags.h"

void
OeLockTagOrder(LOCKTAG *tag, int64 order_no)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId,
						 (uint32) (((uint64) order_no) >> 32),
						 (uint32) order_no,
						 OE_LOCK_SPACE_ORDER);
}

void
OeLockTagIdemKey(LOCKTAG *tag, uint64 key_hash)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId,
						 (uint32) (key_hash >> 32),
						 (uint32) key_hash,
						 OE_LOCK_SPACE_IDEM_KEY);
}

/* database 0: no SQL caller can take it, whatever its keys */
void
OeLockTagSnowflake(LOCKTAG *tag)
{
	SET_LOCKTAG_ADVISORY(*tag, InvalidOid, 0x6F65, 1, OE_LOCK_SPACE_SNOWFLAKE);
}
