/* Unit tests for azure/credential.h: choosing the credential from the
 * environment, tenant rules, token responses, refresh timing, and the client
 * certificate assertion (structure and a PS256 signature verified here with
 * OpenSSL against the certificate's public key). */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "sqltde/azure/credential.h"
#include "sqltde/codec.h"
#include "sqltde/jsonx.h"
#include "sqltde/buf.h"
#include "test.h"

/* ---- fake environment ---- */
typedef struct fake_env {
  const char *kv[32];
} fake_env;

static const char *fake_getenv(void *ud, const char *name) {
  fake_env *e = ud;
  for(int i = 0; e->kv[i]; i += 2)
    if(!strcmp(e->kv[i], name))
      return e->kv[i + 1];
  return NULL;
}

TEST(env_selection_follows_sdk_order) {
  struct {
    fake_env env;
    sq_azure_cred_kind kind;
  } cases[] = {
      /* everything set: EnvironmentCredential (secret) wins, as in the SDK */
      {{{"AZURE_TENANT_ID", "t1", "AZURE_CLIENT_ID", "c1", "AZURE_CLIENT_SECRET", "s3cret",
         "AZURE_FEDERATED_TOKEN_FILE", "/f", "AZURE_CLIENT_CERTIFICATE_PATH", "/c.pem", NULL}},
       SQ_AZCRED_SECRET},
      {{{"AZURE_TENANT_ID", "t1", "AZURE_CLIENT_ID", "c1", "AZURE_CLIENT_CERTIFICATE_PATH", "/c.pem",
         "AZURE_FEDERATED_TOKEN_FILE", "/f", NULL}},
       SQ_AZCRED_CERT},
      {{{"AZURE_TENANT_ID", "t1", "AZURE_CLIENT_ID", "c1", "AZURE_FEDERATED_TOKEN_FILE", "/f", NULL}},
       SQ_AZCRED_WORKLOAD},
      /* a secret without a tenant is skipped, like the SDK's chain */
      {{{"AZURE_CLIENT_ID", "c1", "AZURE_CLIENT_SECRET", "s", NULL}}, SQ_AZCRED_IMDS},
      {{{NULL}}, SQ_AZCRED_IMDS},
      /* forcing one kind */
      {{{"AZURE_TENANT_ID", "t1", "AZURE_CLIENT_ID", "c1", "AZURE_CLIENT_SECRET", "s",
         "AZURE_FEDERATED_TOKEN_FILE", "/f", "AZURE_TOKEN_CREDENTIALS", "WorkloadIdentityCredential",
         NULL}},
       SQ_AZCRED_WORKLOAD},
      {{{"AZURE_TENANT_ID", "t1", "AZURE_CLIENT_ID", "c1", "AZURE_CLIENT_SECRET", "s",
         "AZURE_TOKEN_CREDENTIALS", "ManagedIdentityCredential", NULL}},
       SQ_AZCRED_IMDS},
  };
  for(size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    sq_azure_cred_config cfg;
    sq_err e;
    ASSERT_OK(sq_azure_cred_config_from_env(fake_getenv, &cases[i].env, &cfg, &e));
    ASSERT_EQ(cfg.kind, cases[i].kind);
    sq_azure_cred_config_clear(&cfg);
  }
}

TEST(env_details) {
  fake_env env = {{"AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47", "AZURE_CLIENT_ID", "c1",
                   "AZURE_FEDERATED_TOKEN_FILE", "/var/run/secrets/azure/tokens/azure-identity-token",
                   "AZURE_AUTHORITY_HOST", "https://login.microsoftonline.com/",
                   "AZURE_ADDITIONALLY_ALLOWED_TENANTS", "t2;t3", NULL}};
  sq_azure_cred_config cfg;
  sq_err e;
  ASSERT_OK(sq_azure_cred_config_from_env(fake_getenv, &env, &cfg, &e));
  ASSERT_EQ(cfg.kind, SQ_AZCRED_WORKLOAD);
  /* the workload identity webhook sets a trailing '/': dropped */
  ASSERT_STR_EQ(cfg.authority_host, "https://login.microsoftonline.com");
  ASSERT_STR_EQ(cfg.federated_token_file, "/var/run/secrets/azure/tokens/azure-identity-token");
  ASSERT_STR_EQ(cfg.additional_tenants, "t2;t3");
  sq_azure_cred_config_clear(&cfg);

  fake_env mi = {{"AZURE_CLIENT_ID", "umi-client", "AZURE_POD_IDENTITY_AUTHORITY_HOST",
                  "https://login.localhost:8443/", NULL}};
  ASSERT_OK(sq_azure_cred_config_from_env(fake_getenv, &mi, &cfg, &e));
  ASSERT_EQ(cfg.kind, SQ_AZCRED_IMDS);
  ASSERT_STR_EQ(cfg.client_id, "umi-client");
  ASSERT_STR_EQ(cfg.imds_origin, "https://login.localhost:8443");
  sq_azure_cred_config_clear(&cfg);

  fake_env bad = {{"AZURE_TENANT_ID", "../evil", "AZURE_CLIENT_ID", "c", NULL}};
  ASSERT_EQ(sq_azure_cred_config_from_env(fake_getenv, &bad, &cfg, &e), SQ_EINVAL);
  fake_env bad2 = {{"AZURE_TOKEN_CREDENTIALS", "AzureCliCredential", NULL}};
  ASSERT_EQ(sq_azure_cred_config_from_env(fake_getenv, &bad2, &cfg, &e), SQ_EINVAL);
}

TEST(tenants) {
  ASSERT(sq_azure_tenant_valid("72f988bf-86f1-41af-91ab-2d7cd011db47"));
  ASSERT(sq_azure_tenant_valid("contoso.onmicrosoft.com"));
  ASSERT(!sq_azure_tenant_valid(""));
  ASSERT(!sq_azure_tenant_valid("a/b"));
  ASSERT(!sq_azure_tenant_valid(".."));
  ASSERT(!sq_azure_tenant_valid("a?b"));
  ASSERT(sq_azure_tenant_allowed("home", "", "home"));
  ASSERT(sq_azure_tenant_allowed("home", NULL, "HOME"));
  ASSERT(sq_azure_tenant_allowed("home", "", NULL));
  ASSERT(!sq_azure_tenant_allowed("home", "", "other"));
  ASSERT(sq_azure_tenant_allowed("home", "a;other;b", "other"));
  ASSERT(!sq_azure_tenant_allowed("home", "a;otherx;b", "other"));
  ASSERT(!sq_azure_tenant_allowed("home", "xother", "other"));
  ASSERT(sq_azure_tenant_allowed("home", "*", "anything"));
}

TEST(token_responses) {
  char *tok = NULL;
  int64_t life = 0;
  sq_err e;
  const char *v2 = "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"ext_expires_in\":3599,"
                   "\"access_token\":\"eyJ0eXAi.abc.def\"}";
  ASSERT_OK(sq_azure_parse_token_response(v2, strlen(v2), 1000, &tok, &life, &e));
  ASSERT_STR_EQ(tok, "eyJ0eXAi.abc.def");
  ASSERT_EQ(life, 3599);
  sq_free_secret(tok);
  /* IMDS: every number is a string */
  const char *imds = "{\"access_token\":\"tok2\",\"refresh_token\":\"\",\"expires_in\":\"86399\","
                     "\"expires_on\":\"1700086399\",\"not_before\":\"1700000000\","
                     "\"resource\":\"https://management.azure.com/\",\"token_type\":\"Bearer\"}";
  ASSERT_OK(sq_azure_parse_token_response(imds, strlen(imds), 1700000000, &tok, &life, &e));
  ASSERT_EQ(life, 86399);
  sq_free_secret(tok);
  const char *on_only = "{\"access_token\":\"t3\",\"expires_on\":1700000600}";
  ASSERT_OK(sq_azure_parse_token_response(on_only, strlen(on_only), 1700000000, &tok, &life, &e));
  ASSERT_EQ(life, 600);
  sq_free_secret(tok);

  const char *bad[] = {
      "{\"token_type\":\"Bearer\",\"expires_in\":3599}",
      "{\"access_token\":\"x\",\"token_type\":\"pop\",\"expires_in\":1}",
      "{\"access_token\":\"x\"}",
      "{\"access_token\":\"x\",\"expires_in\":\"soon\"}",
      "{\"access_token\":\"has space\",\"expires_in\":1}",
      "{\"access_token\":\"x\",\"expires_in\":1",
      "",
  };
  for(size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    tok = (char *)"sentinel";
    ASSERT_EQ(sq_azure_parse_token_response(bad[i], strlen(bad[i]), 0, &tok, &life, &e), SQ_EPARSE);
    ASSERT_NULL(tok);
    /* the message never echoes the token */
    ASSERT(!strstr(e.message, "has space"));
  }
}

TEST(refresh_window) {
  ASSERT_EQ(sq_azure_refresh_after_ms(86400000), 86400000 - 300000); /* 24 h: 5 min early */
  ASSERT_EQ(sq_azure_refresh_after_ms(3600000), 3600000 - 300000);
  ASSERT_EQ(sq_azure_refresh_after_ms(600000), 300000);               /* 10 min: half */
  ASSERT_EQ(sq_azure_refresh_after_ms(60000), 30000);                 /* short token: half */
  ASSERT_EQ(sq_azure_refresh_after_ms(0), 0);
}

/* ---- client assertion ---- */

static char *make_cert_pem(EVP_PKEY **key_out, const char *password, X509 **cert_out) {
  EVP_PKEY *key = EVP_RSA_gen(2048);
  X509 *x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 42);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, key);
  X509_NAME *n = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"sqltde-test", -1, -1, 0);
  X509_set_issuer_name(x, n);
  X509_sign(x, key, EVP_sha256());
  BIO *b = BIO_new(BIO_s_mem());
  if(password)
    PEM_write_bio_PrivateKey(b, key, EVP_aes_256_cbc(), NULL, 0, NULL, (void *)password);
  else
    PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL);
  PEM_write_bio_X509(b, x); /* key first, certificate second: order must not matter */
  char *data;
  long len = BIO_get_mem_data(b, &data);
  char *pem = sq_memdup_str(data, (size_t)len);
  BIO_free(b);
  *key_out = key;
  *cert_out = x;
  return pem;
}

static json_t *decode_part(const char *s, size_t len) {
  sq_buf b;
  sq_buf_init(&b, 8192);
  if(sq_b64_decode(s, len, &b))
    return NULL;
  json_t *j = json_loadb(b.ptr, b.len, 0, NULL);
  sq_buf_free(&b);
  return j;
}

TEST(client_assertion_ps256) {
  EVP_PKEY *key;
  X509 *cert;
  char *pem = make_cert_pem(&key, NULL, &cert);
  char *jwt = NULL;
  sq_err e;
  const char *aud = "https://login.localhost:8443/tenant-1/oauth2/v2.0/token";
  ASSERT_OK(sq_azure_client_assertion(pem, strlen(pem), NULL, "client-1", aud, 1700000000, &jwt, &e));
  const char *d1 = strchr(jwt, '.');
  ASSERT_NOT_NULL(d1);
  const char *d2 = strchr(d1 + 1, '.');
  ASSERT_NOT_NULL(d2);
  ASSERT_NULL(strchr(d2 + 1, '.'));
  ASSERT_NULL(strchr(jwt, '=')); /* base64url without padding */

  json_t *hdr = decode_part(jwt, (size_t)(d1 - jwt));
  json_t *cl = decode_part(d1 + 1, (size_t)(d2 - d1 - 1));
  ASSERT_NOT_NULL(hdr);
  ASSERT_NOT_NULL(cl);
  ASSERT_STR_EQ(sq_json_str(hdr, "alg"), "PS256");
  ASSERT_STR_EQ(sq_json_str(hdr, "typ"), "JWT");
  /* x5t#S256 = base64url(SHA-256(cert DER)); x5t = base64url(SHA-1(cert DER)) */
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned mdlen;
  sq_buf want;
  sq_buf_init(&want, 128);
  X509_digest(cert, EVP_sha256(), md, &mdlen);
  ASSERT_EQ(mdlen, 32);
  sq_b64_encode(md, mdlen, 1, &want);
  ASSERT_STR_EQ(sq_json_str(hdr, "x5t#S256"), want.ptr);
  sq_buf_reset(&want);
  want.len = 0;
  X509_digest(cert, EVP_sha1(), md, &mdlen);
  sq_b64_encode(md, mdlen, 1, &want);
  ASSERT_STR_EQ(sq_json_str(hdr, "x5t"), want.ptr);
  sq_buf_free(&want);

  ASSERT_STR_EQ(sq_json_str(cl, "aud"), aud);
  ASSERT_STR_EQ(sq_json_str(cl, "iss"), "client-1");
  ASSERT_STR_EQ(sq_json_str(cl, "sub"), "client-1");
  ASSERT_EQ(strlen(sq_json_str(cl, "jti")), 36);
  ASSERT_EQ(sq_json_int(cl, "nbf", 0), 1700000000);
  ASSERT_EQ(sq_json_int(cl, "iat", 0), 1700000000);
  ASSERT_EQ(sq_json_int(cl, "exp", 0), 1700000600);

  /* verify the PS256 signature with the certificate's public key */
  sq_buf sig;
  sq_buf_init(&sig, 1024);
  ASSERT_OK(sq_b64_decode(d2 + 1, strlen(d2 + 1), &sig));
  ASSERT_EQ(sig.len, 256);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  EVP_PKEY_CTX *pctx = NULL;
  ASSERT_EQ(EVP_DigestVerifyInit(ctx, &pctx, EVP_sha256(), NULL, X509_get0_pubkey(cert)), 1);
  EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
  EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
  EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256());
  ASSERT_EQ(EVP_DigestVerify(ctx, (unsigned char *)sig.ptr, sig.len, (const unsigned char *)jwt,
                             (size_t)(d2 - jwt)),
            1);
  /* ... and a tampered signing input fails */
  EVP_MD_CTX_free(ctx);
  ctx = EVP_MD_CTX_new();
  pctx = NULL;
  EVP_DigestVerifyInit(ctx, &pctx, EVP_sha256(), NULL, X509_get0_pubkey(cert));
  EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
  EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
  char *tampered = strndup(jwt, (size_t)(d2 - jwt));
  tampered[5] ^= 1;
  ASSERT(EVP_DigestVerify(ctx, (unsigned char *)sig.ptr, sig.len, (const unsigned char *)tampered,
                          strlen(tampered)) != 1);
  free(tampered);
  EVP_MD_CTX_free(ctx);

  /* two assertions never share a jti */
  char *jwt2 = NULL;
  ASSERT_OK(sq_azure_client_assertion(pem, strlen(pem), NULL, "client-1", aud, 1700000000, &jwt2, &e));
  const char *e1 = strchr(jwt2, '.');
  json_t *cl2 = decode_part(e1 + 1, (size_t)(strchr(e1 + 1, '.') - e1 - 1));
  ASSERT(strcmp(sq_json_str(cl, "jti"), sq_json_str(cl2, "jti")) != 0);

  json_decref(cl2);
  json_decref(hdr);
  json_decref(cl);
  sq_buf_free(&sig);
  sq_free_secret(jwt);
  sq_free_secret(jwt2);
  sq_free_secret(pem);
  EVP_PKEY_free(key);
  X509_free(cert);
}

TEST(client_assertion_errors) {
  EVP_PKEY *key, *key2;
  X509 *cert, *cert2;
  char *pem = make_cert_pem(&key, "pw-123", &cert);
  char *jwt = NULL;
  sq_err e;
  /* encrypted key: right password works, wrong or none fails with a clear error */
  ASSERT_OK(sq_azure_client_assertion(pem, strlen(pem), "pw-123", "c", "aud", 1, &jwt, &e));
  sq_free_secret(jwt);
  jwt = NULL;
  ASSERT_EQ(sq_azure_client_assertion(pem, strlen(pem), "Wr0ngPw!", "c", "aud", 1, &jwt, &e), SQ_EPARSE);
  ASSERT_STR_CONTAINS(e.message, "PASSWORD");
  ASSERT(!strstr(e.message, "Wr0ngPw!"));
  ASSERT_NULL(jwt);
  ASSERT_EQ(sq_azure_client_assertion(pem, strlen(pem), NULL, "c", "aud", 1, &jwt, &e), SQ_EPARSE);

  /* a key that does not belong to the certificate */
  char *pem2 = make_cert_pem(&key2, NULL, &cert2);
  BIO *b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, cert);
  PEM_write_bio_PrivateKey(b, key2, NULL, NULL, 0, NULL, NULL);
  char *data;
  long len = BIO_get_mem_data(b, &data);
  ASSERT_EQ(sq_azure_client_assertion(data, (size_t)len, NULL, "c", "aud", 1, &jwt, &e), SQ_EINVAL);
  ASSERT_STR_CONTAINS(e.message, "does not match");
  BIO_free(b);

  /* no certificate / garbage */
  const char *junk = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
  ASSERT_EQ(sq_azure_client_assertion(junk, strlen(junk), NULL, "c", "aud", 1, &jwt, &e), SQ_EPARSE);
  ASSERT_EQ(sq_azure_client_assertion("", 0, NULL, "c", "aud", 1, &jwt, &e), SQ_EPARSE);

  /* an EC key is refused (PS256 needs RSA) */
  EVP_PKEY *ec = EVP_EC_gen("P-256");
  X509 *x = X509_new();
  X509_set_pubkey(x, ec);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 60);
  X509_sign(x, ec, EVP_sha256());
  b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, x);
  PEM_write_bio_PrivateKey(b, ec, NULL, NULL, 0, NULL, NULL);
  len = BIO_get_mem_data(b, &data);
  ASSERT_EQ(sq_azure_client_assertion(data, (size_t)len, NULL, "c", "aud", 1, &jwt, &e), SQ_EINVAL);
  ASSERT_STR_CONTAINS(e.message, "RSA");
  BIO_free(b);
  X509_free(x);
  EVP_PKEY_free(ec);

  free(pem);
  free(pem2);
  EVP_PKEY_free(key);
  EVP_PKEY_free(key2);
  X509_free(cert);
  X509_free(cert2);
}

TEST_MAIN()
