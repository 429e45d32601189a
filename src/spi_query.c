/*-------------------------------------------------------------------------
 *
 * spi_query.c
 *	  Kept SPI plans: prepare on first use, reuse for the backend's life.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"

#include "spi_query.h"

SPIPlanPtr
OeKeepPlan(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s",
			 sql, SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	return plan;
}

int
OeQueryRun(OeQuery *q, Datum *values, const char *nulls, bool read_only,
		   long count)
{
	int			rc;

	if (q->plan == NULL)
		q->plan = OeKeepPlan(q->sql, q->nargs, q->argtypes);
	rc = SPI_execute_plan(q->plan, values, nulls, read_only, count);
	if (rc < 0)
		elog(ERROR, "SPI_execute_plan failed for \"%s\": %s",
			 q->sql, SPI_result_code_string(rc));
	return rc;
}

Datum
OeQueryValue(int column, bool *isnull)
{
	if (SPI_processed == 0)
	{
		*isnull = true;
		return (Datum) 0;
	}
	return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
						 column, isnull);
}

int64 *
OeQueryInt64Column(uint64 *n)
{
	int64	   *result = palloc(sizeof(int64) * Max(SPI_processed, 1));

	*n = SPI_processed;
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		result[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
												SPI_tuptable->tupdesc, 1, &isnull));
	}
	return result;
}
