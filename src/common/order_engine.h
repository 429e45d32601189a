/*-------------------------------------------------------------------------
 *
 * common/order_engine.h
 *	  What the subsystems of order_engine share: names, limits, the GUC
 *	  variables (common/guc.h) and the shared-memory check (common/preload.h).
 *
 *-------------------------------------------------------------------------
 */
#ifndef ORDER_ENGINE_H
#define ORDER_ENGINE_H

#include "postgres.h"

#include "datatype/timestamp.h"

#define OE_EXTENSION_NAME		"order_engine"
#define OE_SCHEMA_NAME			"order_engine"
#define OE_ARCHIVE_SCHEMA_NAME	"order_engine_archive"
#define OE_LIBRARY_NAME			"order_engine"

/* at most this many databases get a worker (order_engine.database) */
#define OE_MAX_DATABASES		8

/* the launcher waits at least this long before restarting a worker */
#define OE_WORKER_RESTART_DELAY_MS	1000

/* after DROP/RENAME DATABASE asks a worker to leave, stay away this long */
#define OE_WORKER_HOLDOFF_MS	10000

/* a failing job waits 1 s, 2 s, 4 s ... at most this long before a retry */
#define OE_JOB_MAX_BACKOFF_MS	60000

/*
 * The lines of one order, the one place both limits live.  They are two
 * public contracts, each documented and tested: place_order takes at most
 * OE_MAX_ORDER_LINES lines (README), reserve at most OE_MAX_RESERVE_LINES
 * (docs/stock.md).  place_order holds its lines through OeStockReserve,
 * so every order it accepts must fit the stock API's limit.
 */
#define OE_MAX_ORDER_LINES		100
#define OE_MAX_RESERVE_LINES	1000
StaticAssertDecl(OE_MAX_ORDER_LINES <= OE_MAX_RESERVE_LINES,
				 "place_order's lines must fit one reserve");

/* the GUC variables; the shared-memory check */
#include "common/guc.h"
#include "common/preload.h"

#endif							/* ORDER_ENGINE_H */
