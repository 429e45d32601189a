/*-------------------------------------------------------------------------
 *
 * ids.h
 *	  The id subsystem of order_engine: Leaf-style segments handed out from
 *	  shared memory, order numbers carrying a shard gene, snowflake ids.
 *
 * Other subsystems (place_order) call the C entry points at the bottom;
 * the design is in docs/ids.md.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ORDER_ENGINE_IDS_H
#define ORDER_ENGINE_IDS_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "port/atomics.h"
#include "storage/lwlock.h"

#include "common/order_engine.h"

/* a tag is 1..63 bytes, like an identifier */
#define OE_ID_TAG_MAXLEN		63

/* the tag next_order_no() draws from; created by the install script */
#define OE_ORDER_NO_TAG			"order_no"

/* the shard gene occupies the last two decimal digits of an order number */
#define OE_SHARD_GENE_BASE		100
#define OE_MAX_SHARDS			OE_SHARD_GENE_BASE

/* next_ids() hands out at most this many ids per call */
#define OE_NEXT_IDS_MAX			1000000

/*
 * Snowflake layout: 41 bits of milliseconds since OE_SNOWFLAKE_EPOCH
 * (2024-01-01 00:00 UTC, good until 2093), 10 bits of node id, 12 bits of
 * per-millisecond sequence.  The epoch is given in microseconds since the
 * PostgreSQL epoch (2000-01-01), the unit of GetCurrentTimestamp().
 */
#define OE_SNOWFLAKE_EPOCH		INT64CONST(757382400000000)
#define OE_SNOWFLAKE_SEQ_BITS	12
#define OE_SNOWFLAKE_NODE_BITS	10
#define OE_SNOWFLAKE_MAX_SEQ	((1 << OE_SNOWFLAKE_SEQ_BITS) - 1)
#define OE_SNOWFLAKE_MAX_NODE	((1 << OE_SNOWFLAKE_NODE_BITS) - 1)
/* the persisted high-water mark runs at most this far ahead of the clock */
#define OE_SNOWFLAKE_LEASE_MS	1000

/*
 * The server-wide snowflake high-water mark, a file in the data directory
 * (id_snowflake.c): every database of the server shares one generator.
 */
#define OE_SNOWFLAKE_HWM_FILE	"order_engine_snowflake.hwm"

/* a slot of the shared table serves one tag of one database */
typedef enum OeIdSlotKind
{
	OE_SLOT_FREE = 0,
	OE_SLOT_SEGMENT
} OeIdSlotKind;

/*
 * One tag's state in shared memory.  The hot path touches only the atomics:
 * it adds to cursor and accepts the ids below cur_end.  Everything else is
 * protected by lock, which guards in-memory state only (never held across
 * I/O or a heavyweight lock wait); range fetches are serialised by a session
 * lock on the tag's sequence (id_segment.c).
 */
typedef struct OeIdSlot
{
	LWLock	   *lock;
	pg_atomic_uint32 generation;	/* bumped when the slot changes owner */
	pg_atomic_uint64 cursor;	/* next id of the current range */
	pg_atomic_uint64 cur_end;	/* end of the current range, exclusive */
	pg_atomic_uint64 prefetch_at;	/* from this id on, fetch the next range */

	/* the key: written under the table lock and this slot's lock */
	OeIdSlotKind kind;
	Oid			dboid;
	Oid			seqoid;			/* the sequence that keeps max_id durable */
	char		tag[OE_ID_TAG_MAXLEN + 1];

	/* under lock */
	bool		loaded;			/* max_id has been read from the sequence */
	int64		max_id;			/* highest id ever reserved (durable) */
	int64		cur_start;
	int64		next_start;		/* the second buffer */
	int64		next_end;
	bool		next_ready;
	int64		base_step;		/* the tag's configured step */
	int64		step;			/* the dynamic step of the next fetch */
	TimestampTz last_fetch_at;
	uint64		fetches;
} OeIdSlot;

/* GUC variables (guc.c) */

/* id_segment.c: shared memory */
extern Size OeIdsShmemSize(void);
extern void OeIdsShmemInit(void);

/* id_snowflake.c: the server-wide generator (part of the ids segment) */
extern Size OeSnowflakeShmemSize(void);
extern void OeSnowflakeShmemInit(void);

/* id_segment.c: the slot table */
extern OeIdSlot *OeIdSlotAttach(OeIdSlotKind kind, const char *tag,
								Oid seqoid, int64 base_step, uint32 *generation);

/* id_store.c: durable high-water marks kept in sequences */
extern int64 OeIdStoreRead(Oid seqoid);
extern void OeIdStoreWrite(Oid seqoid, int64 value);

/* C entry points for other subsystems */
extern int64 OeNextId(const char *tag);
extern int64 OeNextIds(const char *tag, int n, int64 *out);
extern int64 OeNextOrderNo(int64 buyer_id);
extern int32 OeShardOf(int64 order_no);
extern int64 OeSnowflakeId(void);

#endif							/* ORDER_ENGINE_IDS_H */
