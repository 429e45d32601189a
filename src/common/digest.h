/*-------------------------------------------------------------------------
 *
 * common/digest.h
 *	  SHA-256, base64url and secret tokens (common/digest.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef ORDER_ENGINE_DIGEST_H
#define ORDER_ENGINE_DIGEST_H

#include "postgres.h"

extern void OeSha256(const void *data, size_t len, uint8 *out);
extern bytea *OeSha256Bytea(const void *data, size_t len);
extern char *OeBase64UrlEncode(const uint8 *data, size_t len);

/*
 * A secret token (checkout token, claim token, quote): random bytes from
 * pg_strong_random, handed out as base64url text; only its SHA-256 is
 * stored.  OeNewSecretToken returns the text and sets *hash; "what" names
 * the token in the error raised when no randomness is available.
 */
#define OE_TOKEN_RANDOM_BYTES	32
#define OE_TOKEN_TEXT_LEN		43
extern char *OeNewSecretToken(const char *what, bytea **hash);

#endif							/* ORDER_ENGINE_DIGEST_H */
