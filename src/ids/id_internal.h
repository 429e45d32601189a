/*-------------------------------------------------------------------------
 *
 * id_internal.h
 *	  What the segment allocator's files share and nobody else uses: a
 *	  backend's cache entry for a tag.
 *
 *	  id_segment.c		the shared slot table (shared memory, attach,
 *						reclaim) and the id_segments view
 *	  id_tag_cache.c	tag -> sequence and slot, cached per backend
 *	  id_range.c		ranges: fetch, double buffer, the lock-free hot
 *						path; next_id and next_ids
 *
 *-------------------------------------------------------------------------
 */
#ifndef ORDER_ENGINE_ID_INTERNAL_H
#define ORDER_ENGINE_ID_INTERNAL_H

#include "postgres.h"

#include "ids/ids.h"

/*
 * What a backend remembers about a tag, so that the hot path needs no
 * catalog access: the slot, its generation when we looked, the tag's
 * sequence, and the transaction in which we last checked that the sequence
 * (hence the tag) still exists.
 */
typedef struct OeTagCacheEntry
{
	char		tag[OE_ID_TAG_MAXLEN + 1];	/* hash key */
	Oid			dboid;
	OeIdSlot   *slot;
	uint32		generation;
	Oid			seqoid;
	LocalTransactionId checked_lxid;
} OeTagCacheEntry;

/* id_tag_cache.c */
extern OeTagCacheEntry *OeIdTagEntry(const char *tag, Size len);
extern void OeIdTagResolve(OeTagCacheEntry *e);

#endif							/* ORDER_ENGINE_ID_INTERNAL_H */
