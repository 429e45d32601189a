/*-------------------------------------------------------------------------
 *
 * id_order_no.c
 *	  Order numbers that carry the buyer's shard gene: next_order_no() and
 *	  shard_of().
 *
 * An order number is (an id of the tag "order_no") * 100 + (buyer_id mod
 * order_engine.shard_count), so its last two decimal digits name the shard
 * and an order is routed from its number alone.  Each number consumes a
 * random 1..order_engine.order_no_max_gap ids of the tag, so consecutive
 * orders are not consecutive numbers; docs/ids.md says what that hides and
 * what it does not.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/pg_prng.h"
#include "fmgr.h"

#include "common/args.h"
#include "common/errors.h"
#include "ids/ids.h"

int64
OeNextOrderNo(int64 buyer_id)
{
	int64		gap = 1;
	int64		id;

	CheckNotNegative(buyer_id, "buyer_id");
	if (OeOrderNoMaxGap > 1)
		gap = (int64) pg_prng_uint64_range(&pg_global_prng_state, 1,
										   (uint64) OeOrderNoMaxGap);
	id = OeNextIds(OE_ORDER_NO_TAG, (int) gap, NULL);
	if (id > (PG_INT64_MAX - (OE_SHARD_GENE_BASE - 1)) / OE_SHARD_GENE_BASE)
		ereport(ERROR,
				(errcode(ERRCODE_OE_ID_EXHAUSTED),
				 errmsg("order numbers are exhausted"),
				 errdetail("The id " INT64_FORMAT " of tag \"%s\" leaves no room for the shard gene.",
						   id, OE_ORDER_NO_TAG)));
	return id * OE_SHARD_GENE_BASE + buyer_id % OeShardCount;
}

int32
OeShardOf(int64 order_no)
{
	CheckNotNegative(order_no, "order_no");
	return (int32) (order_no % OE_SHARD_GENE_BASE);
}

PG_FUNCTION_INFO_V1(oe_next_order_no);
Datum
oe_next_order_no(PG_FUNCTION_ARGS)
{
	CheckNotNull(fcinfo, 0, "buyer_id");
	PG_RETURN_INT64(OeNextOrderNo(PG_GETARG_INT64(0)));
}

PG_FUNCTION_INFO_V1(oe_shard_of);
Datum
oe_shard_of(PG_FUNCTION_ARGS)
{
	CheckNotNull(fcinfo, 0, "order_no");
	PG_RETURN_INT32(OeShardOf(PG_GETARG_INT64(0)));
}
