/*-------------------------------------------------------------------------
 *
 * common/direct_access.h
 *	  What every read or write of our tables without SQL shares: the
 *	  table by name, a column by name, the statement's snapshot, and the
 *	  rule for when a write must go through SQL (direct_access.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef ORDER_ENGINE_DIRECT_ACCESS_H
#define ORDER_ENGINE_DIRECT_ACCESS_H

#include "postgres.h"

#include "access/genam.h"
#include "utils/relcache.h"
#include "utils/snapshot.h"

/* the OID of order_engine.relname (a table or an index), InvalidOid if none */
extern Oid	OeSchemaRelid(const char *relname);
/* the same in the archive's schema, order_engine_archive */
extern Oid	OeArchiveRelid(const char *relname);

/* the attribute number of column name of rel, or InvalidAttrNumber */
extern AttrNumber OeRelationColumn(Relation rel, const char *name);

/*
 * The snapshot an SPI statement here would run under, registered (the
 * caller unregisters it): the command counter advanced first, as SPI does
 * before each statement, then GetTransactionSnapshot.
 */
extern Snapshot OeStatementSnapshot(void);

/*
 * systable_beginscan(rel, index, true, snap, nkeys, keys) for the probes
 * of the hot paths, the index's AccessShareLock kept to the end of the
 * transaction, as the executor keeps the locks of the indexes it scans.
 * systable_endscan gives back the lock its scan took: without one held
 * already, every probe took the lock from the lock manager and gave it
 * back (place_order probes a dozen times).  End it with systable_endscan.
 */
extern SysScanDesc OeIndexProbeBegin(Relation rel, Oid index, Snapshot snap,
									 int nkeys, ScanKey keys);

/*
 * Would an INSERT (update_keeps_keys false), or an UPDATE that changes no
 * key column (true), of rel do more than the heap and index AMs do: a
 * trigger, a rule, row security, a stored generated column, a CHECK
 * constraint other than allowed_check (NULL: none allowed)?  The foreign
 * key's own check triggers do nothing for an UPDATE that keeps the key.
 * For an INSERT, a trigger AFTER INSERT FOR EACH ROW calling
 * allowed_trigger_func (InvalidOid: none), with no arguments, WHEN,
 * transition table or deferral, is allowed: the caller does its work
 * for each row, once per trigger OeRowTriggersFiring counts.
 * Refused: the caller must run its SQL statement.
 */
extern bool OeDirectWriteRefused(Relation rel, bool update_keeps_keys,
								 const char *allowed_check,
								 Oid allowed_trigger_func);

/*
 * How many such triggers calling func an INSERT into rel would fire in
 * this session: ENABLE, ENABLE REPLICA, ENABLE ALWAYS and DISABLE TRIGGER
 * against session_replication_role, as the executor decides.
 */
extern int	OeRowTriggersFiring(Relation rel, Oid func);

/*
 * What the executor checks before it runs an INSERT or UPDATE (cmdname)
 * of one of our tables, for a write without SQL: not in a read-only
 * transaction or on a standby (25006), not in parallel mode, and (our own
 * rule) only as the owner role (OeRequireOwnerScope).
 */
extern void OeDirectWriteAllowed(const char *cmdname);

#endif							/* ORDER_ENGINE_DIRECT_ACCESS_H */
