/*-------------------------------------------------------------------------
 *
 * common/arrays.c
 *	  SQL arrays built from C arrays (the one int8[] builder, the one
 *	  int4[] builder) and the one sort of an int64 array.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/array.h"

#include "common/arrays.h"

ArrayType *
OeInt8Array(const int64 *values, int n)
{
	Datum	   *d;

	if (n <= 0)
		return construct_empty_array(INT8OID);	/* '{}', not a 1-D array of 0 */
	d = palloc(sizeof(Datum) * n);
	for (int i = 0; i < n; i++)
		d[i] = Int64GetDatum(values[i]);
	return construct_array(d, n, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
}

ArrayType *
OeInt4Array(const int32 *values, int n)
{
	Datum	   *d;

	if (n <= 0)
		return construct_empty_array(INT4OID);
	d = palloc(sizeof(Datum) * n);
	for (int i = 0; i < n; i++)
		d[i] = Int32GetDatum(values[i]);
	return construct_array(d, n, INT4OID, sizeof(int32), true, TYPALIGN_INT);
}

static int
int64_cmp(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
}

void
OeSortInt64(int64 *values, int n)
{
	qsort(values, n, sizeof(int64), int64_cmp);
}
