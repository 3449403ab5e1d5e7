/* kvcrypto.h — RSA and AES-GCM primitives for the emulated Key Vault (see
 * kvcrypto.c). EVP_PKEY results are owned by the caller (EVP_PKEY_free);
 * output goes to caller-initialised bounded sq_bufs. */
#ifndef SQLTDE_EMU_KVCRYPTO_H
#define SQLTDE_EMU_KVCRYPTO_H

#include <jansson.h>
#include <openssl/evp.h>

#include "sqltde/buf.h"
#include "sqltde/err.h"

enum { KVC_ALG_NONE = 0, KVC_ALG_OAEP, KVC_ALG_OAEP256, KVC_ALG_PKCS1 };

sq_code kvc_generate(int bits, EVP_PKEY **out, sq_err *err);
int kvc_bits(EVP_PKEY *k);
/* PKCS#8 DER of the private key (the stored form). */
sq_code kvc_to_der(EVP_PKEY *k, sq_buf *der);
sq_code kvc_from_der(const void *der, size_t len, EVP_PKEY **out);
/* Private key from a JWK (n, e, d and optionally all of p, q, dp, dq, qi);
 * refuses components that do not form a working key pair. */
sq_code kvc_from_jwk_private(const json_t *jwk, EVP_PKEY **out, sq_err *err);
/* "RSA-OAEP" | "RSA-OAEP-256" | "RSA1_5" -> KVC_ALG_*, else KVC_ALG_NONE. */
int kvc_alg(const char *alg);
/* Largest plaintext the key can wrap with alg. */
size_t kvc_max_plain(EVP_PKEY *k, int alg);
sq_code kvc_rsa_encrypt(EVP_PKEY *k, int alg, const void *in, size_t len, sq_buf *out);
sq_code kvc_rsa_decrypt(EVP_PKEY *k, int alg, const void *in, size_t len, sq_buf *out);
/* AES-256-GCM with a fixed associated-data label, for backup blobs. */
sq_code kvc_seal(const unsigned char key[32], const void *in, size_t len, sq_buf *out);
sq_code kvc_open(const unsigned char key[32], const void *blob, size_t len, sq_buf *out);

#endif
