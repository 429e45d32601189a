/*-------------------------------------------------------------------------
 *
 * common/direct_insert.h
 *	  Rows into one of the extension's tables by heap and index access,
 *	  without an executor plan (direct_insert.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef ORDER_ENGINE_DIRECT_INSERT_H
#define ORDER_ENGINE_DIRECT_INSERT_H

#include "postgres.h"

#include "storage/itemptr.h"

typedef struct OeDirectInsert OeDirectInsert;

/*
 * Start inserting into order_engine.relname, the caller naming ncols
 * columns that every row gives, in that order.  NULL when the table has
 * anything an INSERT would honour and this does not (OeDirectWriteRefused,
 * or a column outside cols with a default): the caller then runs its SQL.
 */
extern OeDirectInsert *OeDirectInsertBegin(const char *relname, int ncols,
										   const char *const *cols);
/* one row: values[i], nulls[i] for cols[i] */
extern void OeDirectInsertRow(OeDirectInsert *d, const Datum *values,
							  const bool *nulls);
/* where the last row OeDirectInsertRow wrote is (its heap TID) */
extern void OeDirectInsertLastTid(OeDirectInsert *d, ItemPointer tid);
/* the next value of column col's identity sequence (nextval) */
extern int64 OeDirectInsertNextIdentity(OeDirectInsert *d, const char *col);
extern void OeDirectInsertEnd(OeDirectInsert *d);

#endif							/* ORDER_ENGINE_DIRECT_INSERT_H */
