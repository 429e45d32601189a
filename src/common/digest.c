/*-------------------------------------------------------------------------
 *
 * digest.c
 *	  SHA-256 and base64url helpers for idempotency fingerprints, and the
 *	  secret tokens (checkout tokens, claim tokens, quotes).
 *
 * PostgreSQL's cryptohash API does the hashing (OpenSSL when the server
 * was built with it); the base64url encoder is ours because the server's
 * pg_b64_encode produces the '+' and '/' alphabet, which a token carried
 * in URLs and form fields should not contain.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/cryptohash.h"
#include "common/sha2.h"

#include "common/digest.h"

/*
 * out must have room for PG_SHA256_DIGEST_LENGTH bytes.
 */
void
OeSha256(const void *data, size_t len, uint8 *out)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);

	if (ctx == NULL ||
		pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) data, len) < 0 ||
		pg_cryptohash_final(ctx, out, PG_SHA256_DIGEST_LENGTH) < 0)
	{
		const char *why = ctx ? pg_cryptohash_error(ctx) : "out of memory";

		pg_cryptohash_free(ctx);
		elog(ERROR, "could not compute SHA-256 digest: %s", why);
	}
	pg_cryptohash_free(ctx);
}

bytea *
OeSha256Bytea(const void *data, size_t len)
{
	bytea	   *result = (bytea *) palloc(VARHDRSZ + PG_SHA256_DIGEST_LENGTH);

	SET_VARSIZE(result, VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
	OeSha256(data, len, (uint8 *) VARDATA(result));
	return result;
}

/*
 * RFC 4648 section 5, without padding.
 */
char *
OeBase64UrlEncode(const uint8 *data, size_t len)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	char	   *out = palloc((len * 4) / 3 + 4);
	char	   *p = out;
	size_t		i;

	for (i = 0; i + 2 < len; i += 3)
	{
		uint32		v = ((uint32) data[i] << 16) | ((uint32) data[i + 1] << 8) | data[i + 2];

		*p++ = alphabet[(v >> 18) & 0x3F];
		*p++ = alphabet[(v >> 12) & 0x3F];
		*p++ = alphabet[(v >> 6) & 0x3F];
		*p++ = alphabet[v & 0x3F];
	}
	if (i < len)
	{
		uint32		v = (uint32) data[i] << 16;

		if (i + 1 < len)
			v |= (uint32) data[i + 1] << 8;
		*p++ = alphabet[(v >> 18) & 0x3F];
		*p++ = alphabet[(v >> 12) & 0x3F];
		if (i + 1 < len)
			*p++ = alphabet[(v >> 6) & 0x3F];
	}
	*p = '\0';
	return out;
}

/*
 * 256 random bits make a salt and a slow hash unnecessary: the stored
 * SHA-256 cannot be turned back into a usable token.
 */
char *
OeNewSecretToken(const char *what, bytea **hash)
{
	uint8		raw[OE_TOKEN_RANDOM_BYTES];
	char	   *token;

	if (!pg_strong_random(raw, sizeof(raw)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random %s", what)));
	token = OeBase64UrlEncode(raw, sizeof(raw));
	Assert(strlen(token) == OE_TOKEN_TEXT_LEN);
	*hash = OeSha256Bytea(token, OE_TOKEN_TEXT_LEN);
	return token;
}
