/*-------------------------------------------------------------------------
 *
 * common/lock_tags.h
 *	  The advisory lock spaces of order_engine: every advisory lock tag the
 *	  extension takes is made here, so no two kinds of lock can share a key.
 *
 * An advisory lock tag is (field1, field2, field3, field4).  PostgreSQL's
 * own pg_advisory_*() functions put the database in field1 and use field4
 * 1 (one bigint key) or 2 (two integer keys); an application's advisory
 * locks therefore never meet a tag whose field4 is another number.  Each
 * of our spaces has its own field4 (pg_locks shows it as objsubid):
 *
 *	space			field1		field2, field3			field4 (objsubid)
 *	--------------	----------	----------------------	------------------
 *	order number	database	order_no, high / low	0x4F45 (20293) "OE"
 *	idempotency key	database	hash of (scope, key)	0x4F4B (20299) "OK"
 *	snowflake		0 (server)	0x6F65 "oe", 1			0x4F53 (20307) "OS"
 *
 * A new space takes a new field4 and a line in this table.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ORDER_ENGINE_LOCK_TAGS_H
#define ORDER_ENGINE_LOCK_TAGS_H

#include "postgres.h"

#include "storage/lock.h"

#define OE_LOCK_SPACE_ORDER			0x4F45
#define OE_LOCK_SPACE_IDEM_KEY		0x4F4B
#define OE_LOCK_SPACE_SNOWFLAKE		0x4F53

/* one order number (reserve, confirm, release, place_order, close_unpaid) */
extern void OeLockTagOrder(LOCKTAG *tag, int64 order_no);

/* one idempotency key of this database, by the 64-bit hash of (scope, key) */
extern void OeLockTagIdemKey(LOCKTAG *tag, uint64 key_hash);

/* the server-wide renewal of the snowflake high-water mark */
extern void OeLockTagSnowflake(LOCKTAG *tag);

#endif							/* ORDER_ENGINE_LOCK_TAGS_H */
