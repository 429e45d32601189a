/*-------------------------------------------------------------------------
 *
 * common/guc.h
 *	  Every GUC variable of order_engine (defined in common/guc.c), whatever
 *	  subsystem reads it, and the defaults and limits they are defined with.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ORDER_ENGINE_GUC_H
#define ORDER_ENGINE_GUC_H

#include "postgres.h"

#include "datatype/timestamp.h"

/* order_engine.currency_scale: its default and its range */
#define OE_DEFAULT_CURRENCY_SCALE	2
#define OE_MAX_CURRENCY_SCALE		6

/* worker/: which databases, how often, how much */
extern char *OeDatabaseList;
extern int	OeNaptimeMs;
extern int	OeExpiryGatherMs;
extern int	OeNotifyGatherMs;
extern int	OeBatchSize;

/* jobs/archive.c */
extern int	OeArchiveAfterSecs;
extern int	OeArchiveBatchSize;
extern int	OeArchivePauseMs;
extern char *OeArchiveWindow;

/* ids/ */
extern int	OeMaxIdTags;
extern int	OeIdPrefetchPercent;
extern int	OeIdSegmentDuration;
extern int	OeIdMaxStep;
extern int	OeShardCount;
extern int	OeOrderNoMaxGap;
extern int	OeNodeId;
extern int	OeSnowflakeMaxWait;

/* stock/ */
extern int	OeEscrowSkus;
extern int	OeEscrowFoldAfterSecs;

/* idem/ */
extern int	OeIdempotencyLeaseMs;

/* orders/ */
extern bool OeEmitLogicalMessages;
extern int	OeCurrencyScale;
extern bool OeRequireShardGene;

/* common/guc.c */
extern void OeDefineGucs(void);
extern bool OeArchiveWindowOpen(TimestampTz now);

#endif							/* ORDER_ENGINE_GUC_H */
