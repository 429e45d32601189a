/*-------------------------------------------------------------------------
 *
 * worker/signal.h
 *	  The one way domain code reaches the worker: wake it, or have it send
 *	  the outbox NOTIFY.  Implemented in worker/worker_state.c.  This header
 *	  includes none of order_engine's headers, so including it adds no edge
 *	  to the worker's side of the graph (scripts/check_layers.py).
 *
 *-------------------------------------------------------------------------
 */
#ifndef ORDER_ENGINE_WORKER_SIGNAL_H
#define ORDER_ENGINE_WORKER_SIGNAL_H

#include "postgres.h"

#include "datatype/timestamp.h"

/* wake this database's worker now */
extern void OeWorkerWake(Oid dboid);

/* something falls due at "due": once we commit, have the worker recheck */
extern void OeWorkerWakeAtCommit(TimestampTz due);

/* outbox events were written: the worker NOTIFYs once we commit */
extern void OeOutboxNotify(void);

#endif							/* ORDER_ENGINE_WORKER_SIGNAL_H */
