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

#include <limits.h>

#include "pgtime.h"
#include "utils/datetime.h"

#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "common/guc.h"
#include "common/order_engine.h"

char	   *OeDatabaseList = NULL;
int			OeNaptimeMs = 5000;
int			OeNotifyGatherMs = 5;
int			OeBatchSize = 1000;
int			OeArchiveAfterSecs = 90 * SECS_PER_DAY;
int			OeArchiveBatchSize = 500;
int			OeArchivePauseMs = 100;
char	   *OeArchiveWindow = NULL;

/* the parsed order_engine.archive_window, minutes after midnight */
static int	archive_window_start = -1;
static int	archive_window_end = -1;

static bool
parse_window(const char *s, int *start, int *end)
{
	int			h1, m1, h2, m2;
	char		extra;

	if (s == NULL || s[0] == '\0')
	{
		*start = *end = -1;
		return true;
	}
	if (sscanf(s, "%d:%d-%d:%d%c", &h1, &m1, &h2, &m2, &extra) != 4 ||
		h1 < 0 || h1 > 24 || h2 < 0 || h2 > 24 || m1 < 0 || m1 > 59 ||
		m2 < 0 || m2 > 59 || (h1 == 24 && m1 > 0) || (h2 == 24 && m2 > 0))
		return false;
	*start = h1 * 60 + m1;
	*end = h2 * 60 + m2;
	return *start != *end;
}

static bool
check_archive_window(char **newval, void **extra, GucSource source)
{
	int			start, end;

	if (!parse_window(*newval, &start, &end))
	{
		GUC_check_errdetail("Use HH:MM-HH:MM (for example 02:00-05:00), or an empty string for any time.");
		return false;
	}
	return true;
}

static void
assign_archive_window(const char *newval, void *extra)
{
	(void) parse_window(newval, &archive_window_start, &archive_window_end);
}

/*
 * Is the archive window open at "now" (server local time)?  A window may
 * wrap midnight (22:00-04:00).
 */
bool
OeArchiveWindowOpen(TimestampTz now)
{
	struct pg_tm tm;
	fsec_t		fsec;
	int			tz;
	int			minute;

	if (archive_window_start < 0)
		return true;
	if (timestamp2tm(now, &tz, &tm, &fsec, NULL, NULL) != 0)
		return true;
	minute = tm.tm_hour * 60 + tm.tm_min;
	if (archive_window_start < archive_window_end)
		return minute >= archive_window_start && minute < archive_window_end;
	return minute >= archive_window_start || minute < archive_window_end;
}

/* ids (docs/ids.md) */
int			OeMaxIdTags = 128;
int			OeExpiryGatherMs = 20;
int			OeEscrowSkus = 64;
int			OeEscrowFoldAfterSecs = 60;
int			OeIdPrefetchPercent = 10;
int			OeIdSegmentDuration = 900;
int			OeIdMaxStep = 1000000;
int			OeShardCount = 32;
int			OeOrderNoMaxGap = 10;
int			OeNodeId = 0;
int			OeSnowflakeMaxWait = 1000;

int			OeIdempotencyLeaseMs = 60000;

/* orders: the outbox as logical decoding messages too (docs/orders.md) */
bool		OeEmitLogicalMessages = false;
int			OeCurrencyScale = OE_DEFAULT_CURRENCY_SCALE;
bool		OeRequireShardGene = false;

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

	DefineCustomIntVariable("order_engine.expiry_gather",
							"How long the order_engine worker lets expiries and deadlines gather before it wakes for them.",
							"One round then releases the holds (and closes the orders) that fell due meanwhile, "
							"instead of a round for each; a hold's release waits at most this much longer.",
							&OeExpiryGatherMs,
							20, 0, 10000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("order_engine.notify_gather",
							"Shortest time between two outbox notifications the order_engine worker sends.",
							"Commits within it share one NOTIFY order_engine_events, sent when it ends; "
							"a notification comes at most this much later.",
							&OeNotifyGatherMs,
							5, 0, 10000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("order_engine.batch_size",
							"Rows one batch of release_expired, close_unpaid or reap_expired_keys handles in the worker.",
							"Each batch is one transaction.",
							&OeBatchSize,
							1000, 1, 100000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("order_engine.archive_after",
							"Age after which the worker archives a finished order.",
							"Age counts from completion, cancellation or closing.",
							&OeArchiveAfterSecs,
							90 * SECS_PER_DAY, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("order_engine.escrow_fold_after",
							"Age after which the worker folds an escrow hold into its bucket row.",
							"Most holds end sooner (confirm, release, expiry fold them then), so the fold writes only what lives long.",
							&OeEscrowFoldAfterSecs,
							60, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("order_engine.archive_batch_size",
							"Orders the worker archives per transaction.",
							NULL,
							&OeArchiveBatchSize,
							500, 1, 100000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("order_engine.archive_pause",
							"Pause of the worker between two archive batches.",
							"Keeps archiving from competing with foreground traffic.",
							&OeArchivePauseMs,
							100, 0, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomStringVariable("order_engine.archive_window",
							   "Time of day (server time) when the worker may archive, as HH:MM-HH:MM.",
							   "Empty: at any time.",
							   &OeArchiveWindow,
							   "",
							   PGC_SIGHUP, 0,
							   check_archive_window, assign_archive_window, NULL);

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

	DefineCustomIntVariable("order_engine.idempotency_lease",
							"How long an unfinished idempotency claim is protected.",
							"After this time another caller's idem_begin may take "
							"the claim over.",
							&OeIdempotencyLeaseMs,
							60000,
							100,
							24 * 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("order_engine.emit_logical_messages",
							 "Also emit every outbox event as a transactional logical decoding message.",
							 "With wal_level = logical, each row written to order_engine.order_events is "
							 "also a message with prefix \"order_engine\" and the event as JSON, seen by "
							 "pgoutput, test_decoding and Debezium in commit order.",
							 &OeEmitLogicalMessages,
							 false,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	/*
	 * Settings fixed at server start exist only when we are preloaded: a
	 * backend loading the library later may not create them.
	 */
	if (process_shared_preload_libraries_in_progress)
	{
		DefineCustomIntVariable("order_engine.max_id_tags",
								"Number of id tags shared memory has room for.",
								"One slot per tag per database; slots of dropped databases and tags are reused.",
								&OeMaxIdTags, 128, 8, 100000,
								PGC_POSTMASTER, 0, NULL, NULL, NULL);
		DefineCustomIntVariable("order_engine.escrow_skus",
								"Number of escrow SKUs (set_escrow) each database may have; shared memory has room for this many counters.",
								"One counter per escrow SKU per database, about 80 bytes each.",
								&OeEscrowSkus, 64, 0, 100000,
								PGC_POSTMASTER, 0, NULL, NULL, NULL);
		DefineCustomIntVariable("order_engine.node_id",
								"Node id that snowflake_id() puts into its ids (0-1023).",
								"Give every server that generates snowflake ids its own.",
								&OeNodeId, 0, 0, 1023,
								PGC_POSTMASTER, 0, NULL, NULL, NULL);
	}

	DefineCustomIntVariable("order_engine.currency_scale",
							"Decimal places a price (and so every total) may have.",
							"set_price refuses a price with more; place_order refuses "
							"a SKU whose stored price has more.",
							&OeCurrencyScale, OE_DEFAULT_CURRENCY_SCALE, 0,
							OE_MAX_CURRENCY_SCALE, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("order_engine.require_shard_gene",
							 "place_order refuses an order number whose shard gene is not the buyer's.",
							 "The gene is order_no % 100 and must equal buyer_id % "
							 "order_engine.shard_count (next_order_no issues such numbers).",
							 &OeRequireShardGene, false, PGC_SUSET, 0,
							 NULL, NULL, NULL);

	MarkGUCPrefixReserved("order_engine");
}
