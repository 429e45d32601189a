/*-------------------------------------------------------------------------
 *
 * outbox_cdc.c
 *	  The outbox for change data capture: every event row is also a
 *	  transactional logical decoding message
 *	  (order_engine.emit_logical_messages).
 *
 * An AFTER INSERT trigger on order_engine.order_events, so that every
 * writer of events (placement, payments, the state machine, the router's
 * shards) is covered by one rule.  A transactional message is decoded at
 * its transaction's commit, in commit order, and never for a transaction
 * that rolled back: exactly the events that exist, with no polling.  With
 * the setting off (the default) or wal_level below logical the trigger
 * returns at once.  place_order writes its event without SQL and does
 * the trigger's work itself, where the trigger would have fired
 * (OeRowTriggersFiring, common/direct_access.c): OeOutboxEmitRow is the one
 * way both emit.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xlog.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "nodes/value.h"
#include "parser/parse_func.h"
#include "replication/message.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/syscache.h"

#include "common/guc.h"
#include "common/order_engine.h"
#include "orders/orders.h"

/* the prefix consumers filter on */
#define OE_LOGICAL_MESSAGE_PREFIX	"order_engine"

/*
 * The trigger function's OID, kept for the backend and forgotten at any
 * change to pg_proc (place_order's direct write of its event asks for it
 * at every call).
 */
static Oid	trigger_func = InvalidOid;
static bool trigger_func_callback_registered = false;

static void
trigger_func_forget(Datum arg, int cacheid, uint32 hashvalue)
{
	trigger_func = InvalidOid;
}

Oid
OeOutboxTriggerFunction(void)
{
	if (!trigger_func_callback_registered)
	{
		CacheRegisterSyscacheCallback(PROCOID, trigger_func_forget, (Datum) 0);
		trigger_func_callback_registered = true;
	}
	if (!OidIsValid(trigger_func))
	{
		List	   *names = NIL;

		names = lappend(names, makeString(OE_SCHEMA_NAME));
		names = lappend(names, makeString("outbox_logical_message"));
		trigger_func = LookupFuncName(names, 0, NULL, true);
	}
	return trigger_func;
}

bool
OeOutboxEmitting(void)
{
	return OeEmitLogicalMessages && XLogLogicalInfoActive();
}

void
OeOutboxEmitRow(Datum row)
{
	text	   *json = DatumGetTextPP(DirectFunctionCall1(row_to_json, row));

	(void) LogLogicalMessage(OE_LOGICAL_MESSAGE_PREFIX, VARDATA_ANY(json),
							 VARSIZE_ANY_EXHDR(json), true);
}

PG_FUNCTION_INFO_V1(oe_outbox_logical_message);

Datum
oe_outbox_logical_message(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("outbox_logical_message() must be an AFTER INSERT ... FOR EACH ROW trigger")));

	if (OeOutboxEmitting())
		OeOutboxEmitRow(heap_copy_tuple_as_datum(trigdata->tg_trigtuple,
												 RelationGetDescr(trigdata->tg_relation)));
	return PointerGetDatum(NULL);
}
