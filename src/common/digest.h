/*-------------------------------------------------------------------------
 *
 * common/digest.h
 *	  SHA-256 and base64url (common/digest.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef ORDER_ENGINE_DIGEST_H
#define ORDER_ENGINE_DIGEST_H

#include "postgres.h"

extern void OeSha256(const void *data, size_t len, uint8 *out);
extern bytea *OeSha256Bytea(const void *data, size_t len);
extern char *OeBase64UrlEncode(const uint8 *data, size_t len);

#endif							/* ORDER_ENGINE_DIGEST_H */
