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
/*
 * The same for a table that may have AFTER INSERT FOR EACH ROW triggers
 * calling trigger_func (OeDirectWriteRefused); *triggers_firing is how
 * many of them an INSERT would fire now (OeRowTriggersFiring): the caller
 * does the trigger's work that many times for each row, after the row.
 */
extern OeDirectInsert *OeDirectInsertBeginTriggered(const char *relname, int ncols,
													const char *const *cols,
													Oid trigger_func,
													int *triggers_firing);
/* one row: values[i], nulls[i] for cols[i] */
extern void OeDirectInsertRow(OeDirectInsert *d, const Datum *values,
							  const bool *nulls);
/* where the last row OeDirectInsertRow wrote is (its heap TID) */
extern void OeDirectInsertLastTid(OeDirectInsert *d, ItemPointer tid);
/* the last row OeDirectInsertRow wrote, every column, as a composite Datum */
extern Datum OeDirectInsertLastRow(OeDirectInsert *d);
/*
 * The next value (nextval) of the sequence an INSERT leaving column col
 * out would use: its identity's, or a serial's nextval('seq') default.
 * false when the column has neither (the caller runs its SQL).
 */
extern bool OeDirectInsertNextFromSequence(OeDirectInsert *d, const char *col,
										   int64 *value);
/* the same for an identity column, which must have its sequence */
extern int64 OeDirectInsertNextIdentity(OeDirectInsert *d, const char *col);
extern void OeDirectInsertEnd(OeDirectInsert *d);

#endif							/* ORDER_ENGINE_DIRECT_INSERT_H */
