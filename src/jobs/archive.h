/*-------------------------------------------------------------------------
 *
 * archive.h
 *	  archive_orders: finished orders to schema order_engine_archive.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ORDER_ENGINE_ARCHIVE_H
#define ORDER_ENGINE_ARCHIVE_H

#include "postgres.h"

#include "datatype/timestamp.h"

extern int64 OeArchiveOrders(Interval *older_than, int32 max_rows);

#endif							/* ORDER_ENGINE_ARCHIVE_H */
