/* Unit tests for azure/keyvault.h pure parts: the 401 challenge (parsing and
 * the resource-vs-vault check), KeyBundle mapping with the project's
 * thumbprint, key ids, and the JWK import body built from a PEM. */
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "sqltde/azure/keyvault.h"
#include "sqltde/codec.h"
#include "sqltde/jsonx.h"
#include "test.h"

TEST(challenge_parsing) {
  sq_kv_challenge ch;
  sq_err e;
  /* captured from real Key Vault traffic (azure-api.md §4.5) */
  ASSERT_OK(sq_kv_parse_challenge("Bearer authorization=\"https://login.windows.net/"
                                  "72f988bf-86f1-41af-91ab-2d7cd011db47\", resource=\"https://vault.azure.net\"",
                                  &ch, &e));
  ASSERT_STR_EQ(ch.tenant, "72f988bf-86f1-41af-91ab-2d7cd011db47");
  ASSERT_STR_EQ(ch.scope, "https://vault.azure.net/.default");
  /* authorization_uri, scope instead of resource, unquoted values, extra params */
  ASSERT_OK(sq_kv_parse_challenge("bearer authorization_uri=https://login.localhost:8443/tenant-b/,"
                                  "error=\"invalid_token\",scope=\"https://vault.localhost/.default\"",
                                  &ch, &e));
  ASSERT_STR_EQ(ch.tenant, "tenant-b");
  ASSERT_STR_EQ(ch.scope, "https://vault.localhost/.default");
  /* resource wins over scope, as in the SDK; a trailing '/' on the resource is fine */
  ASSERT_OK(sq_kv_parse_challenge("Bearer authorization=\"https://l/t\", scope=\"x\", "
                                  "resource=\"https://vault.localhost/\"",
                                  &ch, &e));
  ASSERT_STR_EQ(ch.scope, "https://vault.localhost/.default");
  /* escaped quotes inside a quoted value */
  ASSERT_OK(sq_kv_parse_challenge("Bearer claims=\"{\\\"a\\\":1}\", authorization=\"https://l/t2\", "
                                  "resource=\"https://v\"",
                                  &ch, &e));
  ASSERT_STR_EQ(ch.tenant, "t2");

  const char *bad[] = {
      NULL,
      "",
      "Basic realm=\"x\"",
      "Bearer",
      "Bearer resource=\"https://vault.azure.net\"",                  /* no authorization */
      "Bearer authorization=\"https://login.windows.net/t\"",         /* no resource/scope */
      "Bearer authorization=\"https://login.windows.net\", resource=\"https://v\"", /* no tenant */
      "Bearer authorization=\"https://login.windows.net/../x\", resource=\"https://v\"",
      "Bearer authorization=\"https://login.windows.net/t, resource=\"https://v\"", /* unterminated */
      "Bearer authorization=\"https://l/a%2fb\", resource=\"https://v\"",
  };
  for(size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    ASSERT_EQ(sq_kv_parse_challenge(bad[i], &ch, &e), SQ_EPARSE);
  /* overlong values are rejected, not truncated */
  char big[3000];
  snprintf(big, sizeof big, "Bearer authorization=\"https://l/t\", resource=\"https://%02000d\"", 0);
  ASSERT_EQ(sq_kv_parse_challenge(big, &ch, &e), SQ_EPARSE);
}

TEST(challenge_resource_must_match_vault) {
  sq_kv_challenge ch;
  sq_err e;
  ASSERT_OK(sq_kv_parse_challenge("Bearer authorization=\"https://login/t\", resource=\"https://vault.azure.net\"",
                                  &ch, &e));
  ASSERT_OK(sq_kv_verify_challenge(&ch, "kv1.vault.azure.net", &e));
  ASSERT_EQ(sq_kv_verify_challenge(&ch, "kv1.vault.evil.net", &e), SQ_EUNAUTH);
  ASSERT_STR_EQ(e.reason, "ChallengeResourceMismatch");
  ASSERT_EQ(sq_kv_verify_challenge(&ch, "vault.azure.net", &e), SQ_EUNAUTH);
  ASSERT_EQ(sq_kv_verify_challenge(&ch, "kv1notvault.azure.net", &e), SQ_EUNAUTH);
  /* the emulator's shape: port in the resource URL does not matter */
  ASSERT_OK(sq_kv_parse_challenge("Bearer authorization=\"https://login/t\", resource=\"https://vault.localhost:8443\"",
                                  &ch, &e));
  ASSERT_OK(sq_kv_verify_challenge(&ch, "tde-kv.vault.localhost", &e));
  /* a challenge pointing at another service */
  ASSERT_OK(sq_kv_parse_challenge("Bearer authorization=\"https://login/t\", resource=\"https://management.azure.com\"",
                                  &ch, &e));
  ASSERT_EQ(sq_kv_verify_challenge(&ch, "kv1.vault.azure.net", &e), SQ_EUNAUTH);
}

TEST(kid_split) {
  char v[256], n[128], ver[65];
  sq_err e;
  ASSERT_OK(sq_kv_split_kid("https://KV1.vault.azure.net/keys/tde-1/0123456789abcdef0123456789abcdef", v,
                            sizeof v, n, sizeof n, ver, sizeof ver, &e));
  ASSERT_STR_EQ(v, "https://kv1.vault.azure.net");
  ASSERT_STR_EQ(n, "tde-1");
  ASSERT_STR_EQ(ver, "0123456789abcdef0123456789abcdef");
  ASSERT_OK(sq_kv_split_kid("https://kv1.vault.localhost:8443/keys/k", v, sizeof v, n, sizeof n, ver,
                            sizeof ver, &e));
  ASSERT_STR_EQ(v, "https://kv1.vault.localhost:8443");
  ASSERT_STR_EQ(ver, "");
  ASSERT_OK(sq_kv_split_kid("https://kv1.vault.azure.net/keys/k/", v, sizeof v, n, sizeof n, ver,
                            sizeof ver, &e));
  ASSERT_STR_EQ(ver, "");
  ASSERT_OK(sq_kv_split_kid("https://kv1.vault.azure.net/deletedkeys/k", v, sizeof v, n, sizeof n,
                            ver, sizeof ver, &e));
  const char *bad[] = {
      "http://kv1.vault.azure.net/keys/k/v",
      "https://kv1.vault.azure.net/secrets/k/v",
      "https://kv1.vault.azure.net/keys/",
      "https://kv1.vault.azure.net/keys/k/v/extra",
      "https://kv1.vault.azure.net/keys/k_x/v",
      "https://kv1.vault.azure.net/keys/k/v-1",
      "https://kv1.vault.azure.net/yourKey/yourKeyVersion", /* the spec examples' broken shape */
      "kv1/keys/k",
  };
  for(size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    ASSERT_EQ(sq_kv_split_kid(bad[i], v, sizeof v, n, sizeof n, ver, sizeof ver, &e), SQ_EPARSE);
}

/* A generated RSA key rendered as a KeyBundle the way Key Vault does. */
static json_t *bundle_for(EVP_PKEY *k, const char *kid) {
  BIGNUM *n = NULL, *e = NULL;
  EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n);
  EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &e);
  unsigned char nb[1024], eb[16];
  int nl = BN_bn2bin(n, nb), el = BN_bn2bin(e, eb);
  sq_buf n64, e64;
  sq_buf_init(&n64, 4096);
  sq_buf_init(&e64, 64);
  sq_b64_encode(nb, (size_t)nl, 1, &n64);
  sq_b64_encode(eb, (size_t)el, 1, &e64);
  json_t *j = json_pack("{s:{s:s,s:s,s:[s,s],s:s,s:s},s:{s:b,s:I,s:I,s:I,s:s,s:i},s:{s:s},s:b,s:s}",
                        "key", "kid", kid, "kty", "RSA", "key_ops", "wrapKey", "unwrapKey", "n",
                        n64.ptr, "e", e64.ptr, "attributes", "enabled", 1, "created",
                        (json_int_t)1593086025, "updated", (json_int_t)1593086026, "exp",
                        (json_int_t)1893456000, "recoveryLevel", "Recoverable", "recoverableDays",
                        90, "tags", "owner", "tde-operator", "managed", 0, "unknownField", "ignored");
  sq_buf_free(&n64);
  sq_buf_free(&e64);
  BN_free(n);
  BN_free(e);
  return j;
}

TEST(key_bundle_mapping) {
  EVP_PKEY *k = EVP_RSA_gen(3072);
  const char *kid = "https://kv1.vault.azure.net/keys/tde1/9cdec47fc771462c9f6e17baf1846570";
  json_t *j = bundle_for(k, kid);
  sq_kv_key key;
  sq_kv_key_init(&key);
  sq_err e;
  ASSERT_OK(sq_kv_parse_key(j, &key, &e));
  ASSERT_STR_EQ(key.kid, kid);
  ASSERT_STR_EQ(key.vault, "https://kv1.vault.azure.net");
  ASSERT_STR_EQ(key.name, "tde1");
  ASSERT_STR_EQ(key.version, "9cdec47fc771462c9f6e17baf1846570");
  ASSERT_STR_EQ(key.kty, "RSA");
  ASSERT_EQ(key.key_size, 3072);
  ASSERT_EQ(key.ops, SQ_KV_OP_WRAP | SQ_KV_OP_UNWRAP);
  ASSERT_EQ(key.enabled, 1);
  ASSERT_EQ(key.exp, 1893456000);
  ASSERT_EQ(key.nbf, 0);
  ASSERT_EQ(key.created, 1593086025);
  ASSERT_STR_EQ(key.recovery_level, "Recoverable");
  ASSERT_EQ(key.recoverable_days, 90);
  ASSERT_STR_EQ(sq_json_str(key.tags, "owner"), "tde-operator");
  /* the thumbprint is the project's definition over the same material */
  char want[41];
  ASSERT_OK(sq_thumbprint_pkey(k, want, &e));
  ASSERT_STR_EQ(key.thumbprint, want);
  sq_kv_key_free(&key);

  /* a KeyItem (list versions) has kid at the top and no key material */
  json_t *item = json_pack("{s:s,s:{s:b}}", "kid", kid, "attributes", "enabled", 0);
  sq_kv_key_init(&key);
  ASSERT_OK(sq_kv_parse_key(item, &key, &e));
  ASSERT_EQ(key.enabled, 0);
  ASSERT_STR_EQ(key.thumbprint, "");
  ASSERT_EQ(key.key_size, 0);
  sq_kv_key_free(&key);
  json_decref(item);

  /* malformed bundles are typed errors */
  const char *bad[] = {
      "{}",
      "{\"key\":{\"kty\":\"RSA\"}}",
      "{\"key\":{\"kid\":5}}",
      "{\"key\":{\"kid\":\"https://kv1.vault.azure.net/oops/x\"}}",
      "{\"key\":{\"kid\":\"https://kv1.vault.azure.net/keys/a/b\",\"key_ops\":\"wrapKey\"}}",
      "{\"key\":{\"kid\":\"https://kv1.vault.azure.net/keys/a/b\"},\"attributes\":[]}",
      "{\"key\":{\"kid\":\"https://kv1.vault.azure.net/keys/a/b\"},\"attributes\":{\"enabled\":\"yes\"}}",
      "{\"key\":{\"kid\":\"https://kv1.vault.azure.net/keys/a/b\",\"kty\":\"RSA\",\"n\":\"!!\",\"e\":\"AQAB\"}}",
  };
  for(size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    json_t *b = json_loads(bad[i], 0, NULL);
    ASSERT_NOT_NULL(b);
    sq_kv_key_init(&key);
    ASSERT_EQ(sq_kv_parse_key(b, &key, &e), SQ_EPARSE);
    sq_kv_key_free(&key);
    json_decref(b);
  }
  /* an overlong kid is too big, not truncated */
  char longkid[700];
  memset(longkid, 'a', sizeof longkid);
  memcpy(longkid, "https://kv1.vault.azure.net/keys/", 33);
  longkid[699] = '\0';
  json_t *lk = json_pack("{s:s}", "kid", longkid);
  sq_kv_key_init(&key);
  ASSERT_EQ(sq_kv_parse_key(lk, &key, &e), SQ_ETOOBIG);
  json_decref(lk);
  json_decref(j);
  EVP_PKEY_free(k);
}

static BIGNUM *bn_from_b64(const char *s) {
  sq_buf b;
  sq_buf_init(&b, 4096);
  if(!s || sq_b64_decode(s, strlen(s), &b))
    return NULL;
  BIGNUM *bn = BN_bin2bn((unsigned char *)b.ptr, (int)b.len, NULL);
  sq_buf_free_wipe(&b);
  return bn;
}

TEST(import_body_is_a_faithful_jwk) {
  EVP_PKEY *k = EVP_RSA_gen(2048);
  BIO *bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL);
  char *pem;
  long len = BIO_get_mem_data(bio, &pem);
  sq_kv_import_params p = {0, 0, SQ_KV_ATTRS_UNSET, NULL};
  p.attrs.enabled = 1;
  p.attrs.exp = 1893456000;
  json_t *tags = json_pack("{s:s}", "owner", "tde-operator");
  p.tags = tags;
  sq_buf body;
  sq_buf_init(&body, 64 * 1024);
  sq_err e;
  ASSERT_OK(sq_kv_import_body(pem, (size_t)len, &p, &body, &e));
  json_t *j = json_loadb(body.ptr, body.len, JSON_REJECT_DUPLICATES, NULL);
  ASSERT_NOT_NULL(j);
  ASSERT(json_is_false(json_object_get(j, "Hsm"))); /* capital H, as Key Vault spells it */
  ASSERT_STR_EQ(sq_json_str(j, "key.kty"), "RSA");
  ASSERT_EQ(json_array_size(sq_json_path(j, "key.key_ops")), 2);
  ASSERT(sq_json_bool(j, "attributes.enabled", 0));
  ASSERT_EQ(sq_json_int(j, "attributes.exp", 0), 1893456000);
  ASSERT_STR_EQ(sq_json_str(j, "tags.owner"), "tde-operator");
  /* every JWK member decodes to the key's own parameter */
  const char *jwk[] = {"n", "e", "d", "p", "q", "dp", "dq", "qi"};
  const char *ossl[] = {OSSL_PKEY_PARAM_RSA_N,         OSSL_PKEY_PARAM_RSA_E,
                        OSSL_PKEY_PARAM_RSA_D,         OSSL_PKEY_PARAM_RSA_FACTOR1,
                        OSSL_PKEY_PARAM_RSA_FACTOR2,   OSSL_PKEY_PARAM_RSA_EXPONENT1,
                        OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1};
  for(int i = 0; i < 8; i++) {
    char path[16];
    snprintf(path, sizeof path, "key.%s", jwk[i]);
    const char *v = sq_json_str(j, path);
    ASSERT_NOT_NULL(v);
    ASSERT_NULL(strpbrk(v, "+/=")); /* base64url, no padding */
    BIGNUM *got = bn_from_b64(v), *want = NULL;
    ASSERT(EVP_PKEY_get_bn_param(k, ossl[i], &want));
    ASSERT_EQ(BN_cmp(got, want), 0);
    BN_clear_free(got);
    BN_clear_free(want);
  }
  json_decref(j);
  sq_buf_free_wipe(&body);

  /* refusals: EC keys, encrypted PEMs, odd sizes, garbage */
  EVP_PKEY *ec = EVP_EC_gen("P-256");
  BIO *b2 = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b2, ec, NULL, NULL, 0, NULL, NULL);
  char *ecpem;
  long eclen = BIO_get_mem_data(b2, &ecpem);
  sq_buf_init(&body, 64 * 1024);
  ASSERT_EQ(sq_kv_import_body(ecpem, (size_t)eclen, &p, &body, &e), SQ_EINVAL);
  BIO *b3 = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b3, k, EVP_aes_256_cbc(), NULL, 0, NULL, (void *)"pw");
  char *encpem;
  long enclen = BIO_get_mem_data(b3, &encpem);
  ASSERT_EQ(sq_kv_import_body(encpem, (size_t)enclen, &p, &body, &e), SQ_EPARSE);
  EVP_PKEY *small = EVP_RSA_gen(1024);
  BIO *b4 = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b4, small, NULL, NULL, 0, NULL, NULL);
  char *smallpem;
  long smalllen = BIO_get_mem_data(b4, &smallpem);
  ASSERT_EQ(sq_kv_import_body(smallpem, (size_t)smalllen, &p, &body, &e), SQ_EINVAL);
  ASSERT_STR_CONTAINS(e.message, "1024");
  ASSERT_EQ(sq_kv_import_body("not a pem", 9, &p, &body, &e), SQ_EPARSE);
  /* a body buffer too small for the key is an error, not a truncated JWK */
  sq_buf tiny;
  sq_buf_init(&tiny, 100);
  ASSERT_EQ(sq_kv_import_body(pem, (size_t)len, &p, &tiny, &e), SQ_ETOOBIG);
  sq_buf_free_wipe(&tiny);
  sq_buf_free_wipe(&body);

  BIO_free(bio);
  BIO_free(b2);
  BIO_free(b3);
  BIO_free(b4);
  EVP_PKEY_free(k);
  EVP_PKEY_free(ec);
  EVP_PKEY_free(small);
  json_decref(tags);
}

TEST_MAIN()
