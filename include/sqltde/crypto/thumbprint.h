/* crypto/thumbprint.h — the TDE key thumbprint, defined once for the whole
 * project (operator and Azure emulator alike).
 *
 * Azure reports a 20-byte (40 upper-case hex) thumbprint for every TDE key
 * but does not document what it hashes (azure-api.md §4.6). Our definition:
 *
 *     thumbprint = UPPERHEX( SHA-1( DER(PKCS#1 RSAPublicKey{ n, e }) ) )
 *
 * i.e. the hash of the public key's canonical DER encoding. It depends only
 * on the key material, so the same material in two vaults (backup/restore or
 * an import of the same PEM) has the same thumbprint, and different material
 * differs — exactly the property TDE relies on. */
#ifndef SQLTDE_CRYPTO_THUMBPRINT_H
#define SQLTDE_CRYPTO_THUMBPRINT_H

#include <openssl/evp.h>
#include <stddef.h>

#include "sqltde/err.h"

#define SQ_THUMBPRINT_HEX_LEN 40

/* From the raw big-endian modulus and exponent (as in a JWK's n and e after
 * base64url decoding). out must hold 41 bytes. */
sq_code sq_thumbprint_rsa(const unsigned char *n, size_t n_len, const unsigned char *e,
                          size_t e_len, char out[SQ_THUMBPRINT_HEX_LEN + 1], sq_err *err);

/* From a JWK JSON object's "n" and "e" members (base64url strings). */
sq_code sq_thumbprint_jwk(const char *n_b64url, const char *e_b64url,
                          char out[SQ_THUMBPRINT_HEX_LEN + 1], sq_err *err);

/* From an OpenSSL RSA key (public or private). */
sq_code sq_thumbprint_pkey(EVP_PKEY *pkey, char out[SQ_THUMBPRINT_HEX_LEN + 1], sq_err *err);

#endif
