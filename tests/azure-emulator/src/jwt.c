/* jwt.c — compact JWS (RS256 / PS256) parse, verify and sign; certificate
 * x5t thumbprints; RSA public JWKs. Used for the tokens the emulator issues
 * and for client assertions / federated tokens it verifies. */
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

#include "emu.h"
#include "sqltde/codec.h"
#include "sqltde/jsonx.h"

void emu_jwt_free(emu_jwt *j) {
  json_decref(j->header);
  json_decref(j->claims);
  free(j->signing_input);
  free(j->sig);
  memset(j, 0, sizeof *j);
}

static sq_code b64_json(const char *s, size_t n, const char *what, json_t **out, sq_err *err) {
  sq_buf b;
  sq_buf_init(&b, EMU_MAX_TOKEN);
  sq_code rc = sq_b64_decode(s, n, &b);
  if(rc) {
    sq_buf_free(&b);
    return sq_err_set(err, SQ_EPARSE, "%s is not base64url", what);
  }
  rc = sq_json_parse(b.ptr, b.len, what, out, err);
  sq_buf_free_wipe(&b);
  if(!rc && !json_is_object(*out)) {
    json_decref(*out);
    *out = NULL;
    return sq_err_set(err, SQ_EPARSE, "%s is not a JSON object", what);
  }
  return rc;
}

sq_code emu_jwt_parse(const char *token, emu_jwt *out, sq_err *err) {
  memset(out, 0, sizeof *out);
  size_t n = token ? strlen(token) : 0;
  if(!n)
    return sq_err_set(err, SQ_EPARSE, "empty token");
  if(n > EMU_MAX_TOKEN)
    return sq_err_set(err, SQ_ETOOBIG, "token longer than %d bytes", EMU_MAX_TOKEN);
  const char *d1 = strchr(token, '.');
  const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
  if(!d1 || !d2 || strchr(d2 + 1, '.'))
    return sq_err_set(err, SQ_EPARSE, "a JWT has three dot-separated parts");
  sq_code rc = b64_json(token, (size_t)(d1 - token), "JWT header", &out->header, err);
  if(!rc)
    rc = b64_json(d1 + 1, (size_t)(d2 - d1 - 1), "JWT payload", &out->claims, err);
  if(rc)
    goto fail;
  sq_buf sig;
  sq_buf_init(&sig, 2048);
  if(sq_b64_decode(d2 + 1, strlen(d2 + 1), &sig) || !sig.len) {
    sq_buf_free(&sig);
    rc = sq_err_set(err, SQ_EPARSE, "JWT signature is not base64url");
    goto fail;
  }
  out->sig_len = sig.len;
  out->sig = (unsigned char *)sq_buf_detach(&sig);
  out->signing_input = strndup(token, (size_t)(d2 - token));
  if(!out->signing_input || !out->sig) {
    rc = sq_err_set(err, SQ_ENOMEM, "out of memory");
    goto fail;
  }
  return SQ_OK;
fail:
  emu_jwt_free(out);
  return rc;
}

static int alg_is(const char *alg, const char *want) { return alg && !strcmp(alg, want); }

sq_code emu_jwt_verify(const emu_jwt *j, EVP_PKEY *pub, sq_err *err) {
  const char *alg = sq_json_str(j->header, "alg");
  int pss = alg_is(alg, "PS256");
  if(!pss && !alg_is(alg, "RS256"))
    return sq_err_set(err, SQ_EINVAL, "unsupported JWT alg '%s' (RS256 or PS256)", alg ? alg : "");
  if(!pub || EVP_PKEY_get_base_id(pub) != EVP_PKEY_RSA)
    return sq_err_set(err, SQ_EINVAL, "verification key is not RSA");
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  EVP_PKEY_CTX *pctx = NULL;
  sq_code rc = SQ_OK;
  if(!md || EVP_DigestVerifyInit(md, &pctx, EVP_sha256(), NULL, pub) != 1) {
    rc = sq_err_set(err, SQ_ENOMEM, "cannot set up signature verification");
    goto out;
  }
  if(pss && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_AUTO) != 1)) {
    rc = sq_err_set(err, SQ_EINVAL, "cannot set PSS padding");
    goto out;
  }
  if(EVP_DigestVerify(md, j->sig, j->sig_len, (const unsigned char *)j->signing_input,
                      strlen(j->signing_input)) != 1)
    rc = sq_err_set(err, SQ_EFORBIDDEN, "JWT signature does not verify");
out:
  EVP_MD_CTX_free(md);
  return rc;
}

static sq_code b64_json_enc(const json_t *v, sq_buf *out) {
  char *s = sq_json_dump(v);
  if(!s)
    return SQ_ENOMEM;
  sq_code rc = sq_b64_encode(s, strlen(s), 1, out);
  free(s);
  return rc;
}

sq_code emu_jwt_sign(EVP_PKEY *key, const char *alg, const json_t *hdr, const json_t *claims,
                     char **out, sq_err *err) {
  *out = NULL;
  int pss = alg_is(alg, "PS256");
  if(!pss && !alg_is(alg, "RS256"))
    return sq_err_set(err, SQ_EINVAL, "unsupported alg");
  json_t *h = hdr ? json_deep_copy(hdr) : json_object();
  json_object_set_new(h, "alg", json_string(alg));
  json_object_set_new(h, "typ", json_string("JWT"));
  sq_buf b;
  sq_buf_init(&b, EMU_MAX_TOKEN * 2);
  sq_code rc = b64_json_enc(h, &b);
  json_decref(h);
  if(!rc)
    rc = sq_buf_add(&b, ".", 1);
  if(!rc)
    rc = b64_json_enc(claims, &b);
  if(rc) {
    sq_buf_free(&b);
    return sq_err_set(err, rc, "cannot encode JWT");
  }
  unsigned char sig[1024];
  size_t siglen = sizeof sig;
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  EVP_PKEY_CTX *pctx = NULL;
  if(!md || EVP_DigestSignInit(md, &pctx, EVP_sha256(), NULL, key) != 1 ||
     (pss && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
              EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1)) ||
     EVP_DigestSign(md, sig, &siglen, (const unsigned char *)b.ptr, b.len) != 1) {
    EVP_MD_CTX_free(md);
    sq_buf_free(&b);
    return sq_err_set(err, SQ_EINVAL, "signing failed");
  }
  EVP_MD_CTX_free(md);
  rc = sq_buf_add(&b, ".", 1);
  if(!rc)
    rc = sq_b64_encode(sig, siglen, 1, &b);
  if(rc) {
    sq_buf_free(&b);
    return sq_err_set(err, rc, "cannot encode JWT");
  }
  *out = sq_buf_detach(&b);
  return SQ_OK;
}

sq_code emu_cert_x5t(const char *pem, char *x5t, size_t x5t_len, char *x5t256, size_t x5t256_len,
                     sq_err *err) {
  BIO *bio = BIO_new_mem_buf(pem, -1);
  X509 *cert = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
  BIO_free(bio);
  if(!cert)
    return sq_err_set(err, SQ_EPARSE, "not a PEM certificate");
  unsigned char *der = NULL;
  int n = i2d_X509(cert, &der);
  X509_free(cert);
  if(n <= 0)
    return sq_err_set(err, SQ_EPARSE, "cannot encode certificate");
  unsigned char s1[SHA_DIGEST_LENGTH], s256[SHA256_DIGEST_LENGTH];
  SHA1(der, (size_t)n, s1);
  SHA256(der, (size_t)n, s256);
  OPENSSL_free(der);
  sq_buf a, b;
  sq_buf_init(&a, x5t_len - 1);
  sq_buf_init(&b, x5t256_len - 1);
  sq_code rc = sq_b64_encode(s1, sizeof s1, 1, &a);
  if(!rc)
    rc = sq_b64_encode(s256, sizeof s256, 1, &b);
  if(!rc) {
    snprintf(x5t, x5t_len, "%s", a.ptr);
    snprintf(x5t256, x5t256_len, "%s", b.ptr);
  }
  sq_buf_free(&a);
  sq_buf_free(&b);
  return rc ? sq_err_set(err, rc, "x5t buffer too small") : SQ_OK;
}

static json_t *bn_b64(EVP_PKEY *pkey, const char *param) {
  BIGNUM *bn = NULL;
  if(!EVP_PKEY_get_bn_param(pkey, param, &bn))
    return NULL;
  int n = BN_num_bytes(bn);
  unsigned char *raw = malloc((size_t)n + 1);
  json_t *out = NULL;
  if(raw) {
    BN_bn2bin(bn, raw);
    sq_buf b;
    sq_buf_init(&b, 4096);
    if(!sq_b64_encode(raw, (size_t)n, 1, &b))
      out = json_string(b.ptr);
    sq_buf_free(&b);
    free(raw);
  }
  BN_free(bn);
  return out;
}

json_t *emu_rsa_public_jwk(EVP_PKEY *pkey) {
  json_t *n = bn_b64(pkey, OSSL_PKEY_PARAM_RSA_N), *e = bn_b64(pkey, OSSL_PKEY_PARAM_RSA_E);
  if(!n || !e) {
    json_decref(n);
    json_decref(e);
    return NULL;
  }
  return json_pack("{s:s,s:o,s:o}", "kty", "RSA", "n", n, "e", e);
}

sq_code emu_rsa_from_jwk_public(const json_t *jwk, EVP_PKEY **out, sq_err *err) {
  *out = NULL;
  const char *kty = sq_json_str(jwk, "kty"), *n64 = sq_json_str(jwk, "n"), *e64 = sq_json_str(jwk, "e");
  if(!kty || strcmp(kty, "RSA") || !n64 || !e64)
    return sq_err_set(err, SQ_EINVAL, "JWK is not an RSA public key (kty, n, e)");
  sq_buf n, e;
  sq_buf_init(&n, 1024);
  sq_buf_init(&e, 64);
  sq_code rc = SQ_OK;
  BIGNUM *bn = NULL, *be = NULL;
  OSSL_PARAM_BLD *bld = NULL;
  OSSL_PARAM *params = NULL;
  EVP_PKEY_CTX *ctx = NULL;
  if(sq_b64_decode(n64, strlen(n64), &n) || sq_b64_decode(e64, strlen(e64), &e) || !n.len || !e.len) {
    rc = sq_err_set(err, SQ_EPARSE, "JWK n/e are not base64url");
    goto out;
  }
  bn = BN_bin2bn((unsigned char *)n.ptr, (int)n.len, NULL);
  be = BN_bin2bn((unsigned char *)e.ptr, (int)e.len, NULL);
  bld = OSSL_PARAM_BLD_new();
  if(!bn || !be || !bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
     !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) || !(params = OSSL_PARAM_BLD_to_param(bld)) ||
     !(ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) || EVP_PKEY_fromdata_init(ctx) <= 0 ||
     EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) <= 0)
    rc = sq_err_set(err, SQ_EINVAL, "JWK is not a usable RSA key");
out:
  BN_free(bn);
  BN_free(be);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  EVP_PKEY_CTX_free(ctx);
  sq_buf_free(&n);
  sq_buf_free(&e);
  return rc;
}
