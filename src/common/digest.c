/*-------------------------------------------------------------------------
 *
 * digest.c
 *	  SHA-256 and base64url helpers for idempotency fingerprints, and the
 *	  secret tokens (checkout tokens, claim tokens, quotes).
 *
 * Hashing: with OpenSSL 3 (the server's own library), SHA-256 is fetched
 * once per backend and one digest context is reused.  PostgreSQL's
 * cryptohash API creates a context and fetches the algorithm on every
 * call, which is most of what a 60-byte digest costs (OpenSSL 3's implicit
 * fetch searches its provider store under a lock): two digests per
 * idem_begin were 8.5k instructions each.  Without OpenSSL 3, the
 * cryptohash API does it.
 *
 * Random bytes come from pg_strong_random (OpenSSL's CSPRNG), drawn 1 kB
 * at a time into a per-backend pool: each token takes 32 unused bytes and
 * wipes them from the pool, so an issued token's bytes are not kept.  The
 * bytes of the next tokens wait in the backend's memory, as secret as the
 * generator's own state there.  A pool filled by another process (the
 * postmaster, before a fork) is never used.
 *
 * The base64url encoder is ours because the server's pg_b64_encode
 * produces the '+' and '/' alphabet, which a token carried in URLs and
 * form fields should not contain.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#ifdef USE_OPENSSL
#include <openssl/evp.h>
#include <openssl/opensslv.h>
#endif

#include "common/cryptohash.h"
#include "common/sha2.h"
#include "miscadmin.h"

#include "common/digest.h"

#if defined(USE_OPENSSL) && OPENSSL_VERSION_NUMBER >= 0x30000000L
#define OE_SHA256_EVP 1
#endif

#ifdef OE_SHA256_EVP
static EVP_MD *sha256_md = NULL;
static EVP_MD_CTX *sha256_ctx = NULL;
#endif

/*
 * out must have room for PG_SHA256_DIGEST_LENGTH bytes.
 */
void
OeSha256(const void *data, size_t len, uint8 *out)
{
#ifdef OE_SHA256_EVP
	unsigned int outlen = 0;

	if (sha256_ctx == NULL)
	{
		if (sha256_md == NULL)
			sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
		if (sha256_md != NULL)
			sha256_ctx = EVP_MD_CTX_new();
		if (sha256_ctx == NULL)
			elog(ERROR, "could not compute SHA-256 digest: %s",
				 sha256_md == NULL ? "SHA-256 not available" : "out of memory");
	}
	if (EVP_DigestInit_ex2(sha256_ctx, sha256_md, NULL) != 1 ||
		EVP_DigestUpdate(sha256_ctx, data, len) != 1 ||
		EVP_DigestFinal_ex(sha256_ctx, out, &outlen) != 1 ||
		outlen != PG_SHA256_DIGEST_LENGTH)
		elog(ERROR, "could not compute SHA-256 digest");
#else
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
#endif
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

/* the pool of random bytes (see the file header); unused from random_pool_next on */
#define OE_RANDOM_POOL_BYTES	1024

static uint8 random_pool[OE_RANDOM_POOL_BYTES];
static int	random_pool_next = OE_RANDOM_POOL_BYTES;
static int	random_pool_pid = 0;

static void
random_from_pool(uint8 *out, int len, const char *what)
{
	Assert(len <= OE_RANDOM_POOL_BYTES);
	if (random_pool_pid != MyProcPid ||
		random_pool_next + len > OE_RANDOM_POOL_BYTES)
	{
		random_pool_next = OE_RANDOM_POOL_BYTES;
		if (!pg_strong_random(random_pool, sizeof(random_pool)))
		{
			explicit_bzero(random_pool, sizeof(random_pool));
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate a random %s", what)));
		}
		random_pool_pid = MyProcPid;
		random_pool_next = 0;
	}
	memcpy(out, random_pool + random_pool_next, len);
	explicit_bzero(random_pool + random_pool_next, len);
	random_pool_next += len;
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

	random_from_pool(raw, sizeof(raw), what);
	token = OeBase64UrlEncode(raw, sizeof(raw));
	explicit_bzero(raw, sizeof(raw));
	Assert(strlen(token) == OE_TOKEN_TEXT_LEN);
	*hash = OeSha256Bytea(token, OE_TOKEN_TEXT_LEN);
	return token;
}
