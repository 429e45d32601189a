/*-------------------------------------------------------------------------
 *
 * guc.c
 *	  The configuration parameters of order_engine (order_engine.*).
 *
 * Every parameter is reloadable with SIGHUP unless noted; units, bounds
 * and defaults are listed in README.md ("Configuration").
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/guc.h"

#include "ids.h"
#include "order_engine.h"

char	   *OeDatabaseList = NULL;
int			OeNaptimeMs = 5000;

/* ids (docs/ids.md) */
int			OeMaxIdTags = 128;
int			OeIdPrefetchPercent = 10;
int			OeIdSegmentDuration = 900;
int			OeIdMaxStep = 1000000;
int			OeShardCount = 32;
int			OeOrderNoMaxGap = 10;
int			OeNodeId = 0;
int			OeSnowflakeMaxWait = 1000;

void
OeDefineGucs(void)
{
	DefineCustomStringVariable("order_engine.database",
							   "Databases the order_engine worker runs in.",
							   "A comma-separated list of database names; the "
							   "worker idles in a database where the extension "
							   "is not installed.",
							   &OeDatabaseList,
							   "postgres",
							   PGC_SIGHUP,
							   GUC_LIST_INPUT,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("order_engine.naptime",
							"Longest time the order_engine worker sleeps between rounds.",
							"The worker wakes earlier when work falls due.",
							&OeNaptimeMs,
							5000,
							10,
							3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("order_engine.id_prefetch_percent",
							"Share of an id range used before the next range is fetched.",
							"100 turns prefetching off: the next range is then fetched when the current one runs out.",
							&OeIdPrefetchPercent, 10, 0, 100,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("order_engine.id_segment_duration",
							"How long an id range should last; the step adapts to it.",
							"A range used up faster doubles the step, one lasting over twice this halves it.",
							&OeIdSegmentDuration, 900, 1, 86400,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("order_engine.id_max_step",
							"Largest step the dynamic step of an id tag grows to.",
							"A tag's configured step is used when it is larger.",
							&OeIdMaxStep, 1000000, 1, INT_MAX,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("order_engine.shard_count",
							"Number of shards next_order_no() spreads buyers over.",
							"The gene is buyer_id modulo this, in the last two digits of the order number.",
							&OeShardCount, 32, 1, 100,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("order_engine.order_no_max_gap",
							"Each order number consumes a random 1 to this many ids.",
							"1 makes order numbers consecutive.",
							&OeOrderNoMaxGap, 10, 1, 1000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("order_engine.snowflake_max_wait",
							"Largest backward clock step snowflake_id() waits out; beyond it, an error.",
							"It also bounds the lease of the persisted high-water mark.",
							&OeSnowflakeMaxWait, 1000, 10, 60000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);

	/*
	 * Settings fixed at server start exist only when we are preloaded: a
	 * backend loading the library later may not create them.
	 */
	if (process_shared_preload_libraries_in_progress)
	{
		DefineCustomIntVariable("order_engine.max_id_tags",
								"Number of id tags (and snowflake generators) shared memory has room for.",
								"One slot per tag per database, plus one per database using snowflake_id().",
								&OeMaxIdTags, 128, 8, 100000,
								PGC_POSTMASTER, 0, NULL, NULL, NULL);
		DefineCustomIntVariable("order_engine.node_id",
								"Node id that snowflake_id() puts into its ids (0-1023).",
								"Give every server that generates snowflake ids its own.",
								&OeNodeId, 0, 0, 1023,
								PGC_POSTMASTER, 0, NULL, NULL, NULL);
	}

	MarkGUCPrefixReserved("order_engine");
}
