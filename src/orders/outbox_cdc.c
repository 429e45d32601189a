/*-------------------------------------------------------------------------
 *
 * outbox_cdc.c
 *	  The outbox for change data capture: every event row is also a
 *	  transactional logical decoding message (order_engine.emit_logical_messages).
 *
 * An AFTER INSERT trigger on order_engine.order_events, so that every
 * writer of events (placement, payments, the state machine, the router's
 * shards) is covered by one rule.  A transactional message is decoded at
 * its transaction's commit, in commit order, and never for a transaction
 * that rolled back: exactly the events that exist, with no polling.  With
 * the setting off (the default) or wal_level below logical the trigger
 * returns at once.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xlog.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "replication/message.h"
#include "utils/builtins.h"
#include "utils/json.h"

#include "common/order_engine.h"

/* the prefix consumers filter on */
#define OE_LOGICAL_MESSAGE_PREFIX	"order_engine"

PG_FUNCTION_INFO_V1(oe_outbox_logical_message);

Datum
oe_outbox_logical_message(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Datum		row;
	text	   *json;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("outbox_logical_message() must be an AFTER INSERT ... FOR EACH ROW trigger")));

	if (!OeEmitLogicalMessages || !XLogLogicalInfoActive())
		return PointerGetDatum(NULL);

	row = heap_copy_tuple_as_datum(trigdata->tg_trigtuple,
								   RelationGetDescr(trigdata->tg_relation));
	json = DatumGetTextPP(DirectFunctionCall1(row_to_json, row));
	(void) LogLogicalMessage(OE_LOGICAL_MESSAGE_PREFIX, VARDATA_ANY(json),
							 VARSIZE_ANY_EXHDR(json), true);
	return PointerGetDatum(NULL);
}
