/* thumbprint.c — TDE key thumbprint; see include/sqltde/crypto/thumbprint.h. */
#include "sqltde/crypto/thumbprint.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/encoder.h>
#include <openssl/param_build.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#include "sqltde/buf.h"
#include "sqltde/codec.h"

static void to_hex(const unsigned char *md, char out[SQ_THUMBPRINT_HEX_LEN + 1]) {
  static const char hex[] = "0123456789ABCDEF";
  for(int i = 0; i < SHA_DIGEST_LENGTH; i++) {
    out[2 * i] = hex[md[i] >> 4];
    out[2 * i + 1] = hex[md[i] & 15];
  }
  out[SQ_THUMBPRINT_HEX_LEN] = '\0';
}

sq_code sq_thumbprint_pkey(EVP_PKEY *pkey, char out[SQ_THUMBPRINT_HEX_LEN + 1], sq_err *err) {
  if(!pkey || EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA)
    return sq_err_set(err, SQ_EINVAL, "thumbprint: not an RSA key");
  unsigned char *der = NULL;
  size_t der_len = 0;
  /* "type-specific" public key structure for RSA is PKCS#1 RSAPublicKey */
  OSSL_ENCODER_CTX *ctx =
      OSSL_ENCODER_CTX_new_for_pkey(pkey, EVP_PKEY_PUBLIC_KEY, "DER", "type-specific", NULL);
  if(!ctx || !OSSL_ENCODER_to_data(ctx, &der, &der_len)) {
    OSSL_ENCODER_CTX_free(ctx);
    return sq_err_set(err, SQ_EINVAL, "thumbprint: cannot encode RSA public key");
  }
  OSSL_ENCODER_CTX_free(ctx);
  unsigned char md[SHA_DIGEST_LENGTH];
  SHA1(der, der_len, md);
  OPENSSL_free(der);
  to_hex(md, out);
  return SQ_OK;
}

sq_code sq_thumbprint_rsa(const unsigned char *n, size_t n_len, const unsigned char *e,
                          size_t e_len, char out[SQ_THUMBPRINT_HEX_LEN + 1], sq_err *err) {
  if(!n || !n_len || !e || !e_len)
    return sq_err_set(err, SQ_EINVAL, "thumbprint: empty modulus or exponent");
  sq_code rc = SQ_OK;
  BIGNUM *bn_n = BN_bin2bn(n, (int)n_len, NULL);
  BIGNUM *bn_e = BN_bin2bn(e, (int)e_len, NULL);
  OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM *params = NULL;
  EVP_PKEY_CTX *pctx = NULL;
  EVP_PKEY *pkey = NULL;
  if(!bn_n || !bn_e || !bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) ||
     !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) ||
     !(params = OSSL_PARAM_BLD_to_param(bld)) ||
     !(pctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) || EVP_PKEY_fromdata_init(pctx) <= 0 ||
     EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
    rc = sq_err_set(err, SQ_EINVAL, "thumbprint: invalid RSA public key");
    goto out;
  }
  rc = sq_thumbprint_pkey(pkey, out, err);
out:
  EVP_PKEY_free(pkey);
  EVP_PKEY_CTX_free(pctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  BN_free(bn_n);
  BN_free(bn_e);
  return rc;
}

sq_code sq_thumbprint_jwk(const char *n_b64url, const char *e_b64url,
                          char out[SQ_THUMBPRINT_HEX_LEN + 1], sq_err *err) {
  if(!n_b64url || !e_b64url)
    return sq_err_set(err, SQ_EINVAL, "thumbprint: JWK lacks n or e");
  sq_buf n, e;
  sq_buf_init(&n, 4096);
  sq_buf_init(&e, 64);
  sq_code rc = SQ_OK;
  if(sq_b64_decode(n_b64url, strlen(n_b64url), &n) || sq_b64_decode(e_b64url, strlen(e_b64url), &e))
    rc = sq_err_set(err, SQ_EPARSE, "thumbprint: JWK n or e is not valid base64url");
  else
    rc = sq_thumbprint_rsa((unsigned char *)n.ptr, n.len, (unsigned char *)e.ptr, e.len, out, err);
  sq_buf_free(&n);
  sq_buf_free(&e);
  return rc;
}
