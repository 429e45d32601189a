/*-------------------------------------------------------------------------
 *
 * guc.c
 *	  The configuration parameters of order_engine (order_engine.*).
 *
 * Every parameter is reloadable with SIGHUP unless noted; units, bounds
 * and defaults are listed in README.md ("Configuration").
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/guc.h"

#include "order_engine.h"

char	   *OeDatabaseList = NULL;
int			OeNaptimeMs = 5000;
int			OeIdempotencyLeaseMs = 60000;

void
OeDefineGucs(void)
{
	DefineCustomStringVariable("order_engine.database",
							   "Databases the order_engine worker runs in.",
							   "A comma-separated list of database names; the "
							   "worker idles in a database where the extension "
							   "is not installed.",
							   &OeDatabaseList,
							   "postgres",
							   PGC_SIGHUP,
							   GUC_LIST_INPUT,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("order_engine.naptime",
							"Longest time the order_engine worker sleeps between rounds.",
							"The worker wakes earlier when work falls due.",
							&OeNaptimeMs,
							5000,
							10,
							3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("order_engine.idempotency_lease",
							"How long an unfinished idempotency claim is protected.",
							"After this time another caller's idem_begin may take "
							"the claim over.",
							&OeIdempotencyLeaseMs,
							60000,
							100,
							24 * 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("order_engine");
}
