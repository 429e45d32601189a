/*-------------------------------------------------------------------------
 *
 * common/arrays.h
 *	  SQL arrays built from C arrays, and sorting an int64 array
 *	  (common/arrays.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef ORDER_ENGINE_ARRAYS_H
#define ORDER_ENGINE_ARRAYS_H

#include "postgres.h"

#include "utils/array.h"

/* an int8[] of values[0..n) (n may be 0), in the current memory context */
extern ArrayType *OeInt8Array(const int64 *values, int n);

/* the same for an int4[] */
extern ArrayType *OeInt4Array(const int32 *values, int n);

/* sort values[0..n) ascending, in place */
extern void OeSortInt64(int64 *values, int n);

#endif							/* ORDER_ENGINE_ARRAYS_H */
