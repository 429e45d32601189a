/*-------------------------------------------------------------------------
 *
 * versioned_update_internal.h
 *	  What the two files of versioned_update share: the kept plan of a
 *	  shape and its parameters.
 *
 *	  versioned_update_shape.c	the checks of rel, key and changes against
 *								the catalog, and the plans kept per shape
 *	  versioned_update.c		the update itself: values, the statement,
 *								stale version or missing row
 *
 *-------------------------------------------------------------------------
 */
#ifndef ORDER_ENGINE_VERSIONED_UPDATE_INTERNAL_H
#define ORDER_ENGINE_VERSIONED_UPDATE_INTERNAL_H

#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "utils/jsonb.h"

/* how a JSON value becomes a column value */
typedef enum VuValueKind
{
	VU_TEXT,					/* scalars through the type's input function */
	VU_JSON						/* json, jsonb or a domain over them: JSON text */
} VuValueKind;

/* one parameter of a kept plan */
typedef struct VuParam
{
	Oid			typid;
	int32		typmod;
	Oid			ioparam;
	VuValueKind kind;
	FmgrInfo	input;
} VuParam;

/* a kept plan shape */
typedef struct VuPlan
{
	Oid			relid;
	bool		valid;			/* cleared by relcache invalidation */
	char	   *relname;		/* quoted, qualified; for messages */
	uint32		hash;
	char	   *signature;
	int			nchanges;
	int			nkeys;
	VuParam    *params;			/* changes, then keys */
	SPIPlanPtr	update_plan;	/* $1..$c changes, then keys, then version */
	SPIPlanPtr	select_plan;	/* $1..$k keys */
} VuPlan;

/*
 * versioned_update_shape.c: the checked and kept plans for this call's
 * shape (relation, key columns, change columns); locks relid in
 * AccessShareLock.  Caller is connected to SPI.
 */
extern VuPlan *OeVuShape(Oid relid, Jsonb *key, Jsonb *changes);

#endif							/* ORDER_ENGINE_VERSIONED_UPDATE_INTERNAL_H */
