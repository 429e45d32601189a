/*-------------------------------------------------------------------------
 *
 * spi_query.h
 *	  Statements prepared once per backend and kept (SPI_keepplan).
 *
 * A module declares its statements as static OeQuery values; the first
 * execution prepares and keeps the plan, later ones reuse it.  Values are
 * always $n parameters.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ORDER_ENGINE_SPI_QUERY_H
#define ORDER_ENGINE_SPI_QUERY_H

#include "postgres.h"

#include "executor/spi.h"

#define OE_QUERY_MAX_ARGS	10

typedef struct OeQuery
{
	const char *sql;
	int			nargs;
	Oid			argtypes[OE_QUERY_MAX_ARGS];
	SPIPlanPtr	plan;			/* NULL until first use */
} OeQuery;

/* prepare a statement and keep its plan for the backend's life */
extern SPIPlanPtr OeKeepPlan(const char *sql, int nargs, Oid *argtypes);

/*
 * Run q with the given arguments (nulls as for SPI_execute_plan).  With
 * read_only the statement sees the caller's snapshot; anything that runs
 * after waiting for a lock must pass false to see what committed meanwhile.
 */
extern int	OeQueryRun(OeQuery *q, Datum *values, const char *nulls,
					   bool read_only, long count);

/* first column of the first row of the last result, or isnull */
extern Datum OeQueryValue(int column, bool *isnull);

/* the first (bigint, not null) column of the last result, copied out */
extern int64 *OeQueryInt64Column(uint64 *n);

#endif							/* ORDER_ENGINE_SPI_QUERY_H */
