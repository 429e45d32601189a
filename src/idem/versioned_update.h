/*-------------------------------------------------------------------------
 *
 * versioned_update.h
 *	  Optimistic versioned updates of any table with a "version" column.
 *
 * update_order and any other caller that needs "compare the version and
 * bump it in one statement" calls OeVersionedUpdate; it is the only
 * implementation of that rule in the extension.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ORDER_ENGINE_VERSIONED_UPDATE_H
#define ORDER_ENGINE_VERSIONED_UPDATE_H

#include "postgres.h"

#include "utils/jsonb.h"

/* the column every versioned table has */
#define OE_VERSION_COLUMN		"version"

/* plan shapes kept per session before the cache is emptied */
#define OE_VU_MAX_CACHED_PLANS	128

/*
 * Update the row of relid whose columns equal key (a JSON object, column
 * -> value) to changes (column -> value), provided its version is
 * expected_version; bump the version in the same statement and return the
 * new one.  Runs with the privileges of the current user.
 *
 * Errors: OE001 stale version (detail names the current one), OE002 no
 * such row, 42703 unknown column, 22023 malformed key or changes or an
 * attempt to change a key or the version column, 22004 null key value,
 * the column type's own input errors (22P02, 22003, 22001 ...) for values,
 * 42501 without privileges, 21000 when the key matches more than one row.
 */
extern int64 OeVersionedUpdate(Oid relid, Jsonb *key, int64 expected_version,
							   Jsonb *changes);

#endif							/* ORDER_ENGINE_VERSIONED_UPDATE_H */
