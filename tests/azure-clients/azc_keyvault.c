/* azure.keyvault — the typed Key Vault client against the emulator over HTTPS:
 * the 401 challenge flow, create / get (latest and version) / list versions
 * across nextLink pages / import from PEM / update attributes / wrap, unwrap
 * and the probe / backup and restore (and its geography rule) / rotate /
 * delete, get-deleted, recover; thumbprints equal the project's definition
 * computed locally; 403/404 typed errors; a token that expires mid-operation
 * is refreshed once; vault URLs outside the cloud are refused before any
 * request; 429 and 5xx from the vault are retried. */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>

#include "azc.h"
#include "sqltde/jsonx.h"
#include "test.h"

static azc A;
static int started;
static sq_azure_cred *cred;
static sq_kv *kv;

static void setup(void) {
  if(started)
    return;
  started = 1;
  azc_operator_clients(&A, &cred, NULL, &kv);
}

static sq_kv_create_params rsa(int bits) {
  sq_kv_create_params p = {"RSA", bits, 0, SQ_KV_ATTRS_UNSET, NULL};
  return p;
}

TEST(challenge_then_token) {
  setup();
  long long before = azc_requests_last(&A);
  sq_kv_key k;
  sq_kv_key_init(&k);
  sq_err e;
  sq_kv_create_params p = rsa(2048);
  sq_code rc = sq_kv_create(kv, A.vault_east, "tde-a", &p, &k, &e);
  if(rc)
    fprintf(stderr, "create: %s\n", e.message);
  ASSERT_OK(rc);
  ASSERT_EQ(sq_kv_challenges(kv), 1);
  /* on the wire: one unauthenticated attempt (401), then the real one */
  long long last;
  json_t *log = azc_requests(&A, before, "azc-east.vault.localhost", "/keys/tde-a/create", &last);
  ASSERT_EQ(json_array_size(log), 2);
  ASSERT_EQ(sq_json_int(json_array_get(log, 0), "status", 0), 401);
  ASSERT_EQ(sq_json_int(json_array_get(log, 1), "status", 0), 200);
  ASSERT_STR_EQ(sq_json_str(json_array_get(log, 1), "callerOid"), AZC_OPERATOR_OID);
  json_decref(log);
  /* the vault is known now: no further challenge */
  sq_kv_key g;
  sq_kv_key_init(&g);
  ASSERT_OK(sq_kv_get(kv, A.vault_east, "tde-a", NULL, &g, &e));
  ASSERT_EQ(sq_kv_challenges(kv), 1);
  ASSERT_STR_EQ(g.kid, k.kid);
  ASSERT_EQ(g.key_size, 2048);
  ASSERT_STR_EQ(g.kty, "RSA");
  ASSERT_EQ(g.ops, SQ_KV_OP_WRAP | SQ_KV_OP_UNWRAP);
  ASSERT_EQ(g.enabled, 1);
  ASSERT_EQ(strlen(g.thumbprint), 40);
  char tp[41];
  ASSERT_OK(sq_thumbprint_jwk(g.n, g.e, tp, &e));
  ASSERT_STR_EQ(g.thumbprint, tp);
  /* by version too */
  sq_kv_key v;
  sq_kv_key_init(&v);
  ASSERT_OK(sq_kv_get(kv, A.vault_east, "tde-a", k.version, &v, &e));
  ASSERT_STR_EQ(v.kid, k.kid);
  sq_kv_key_free(&k);
  sq_kv_key_free(&g);
  sq_kv_key_free(&v);
}

typedef struct list_ctx {
  int n;
  int matched;
  char (*kids)[SQ_KV_KID_MAX];
} list_ctx;

static int count_versions(void *ud, const sq_kv_key *k) {
  list_ctx *c = ud;
  c->n++;
  for(int i = 0; i < 30; i++)
    if(!strcmp(c->kids[i], k->kid))
      c->matched++;
  return 0;
}

TEST(versions_across_pages) {
  setup();
  sq_err e;
  sq_kv_create_params p = rsa(2048);
  char kids[30][SQ_KV_KID_MAX];
  for(int i = 0; i < 30; i++) {
    sq_kv_key k;
    sq_kv_key_init(&k);
    ASSERT_OK(sq_kv_create(kv, A.vault_east, "many", &p, &k, &e));
    snprintf(kids[i], sizeof kids[i], "%s", k.kid);
    sq_kv_key_free(&k);
  }
  long long before = azc_requests_last(&A);
  list_ctx ctx = {0, 0, kids};
  sq_code rc = sq_kv_list_versions(kv, A.vault_east, "many", count_versions, &ctx, &e);
  if(rc)
    fprintf(stderr, "list: %s\n", e.message);
  ASSERT_OK(rc);
  ASSERT_EQ(ctx.n, 30);
  ASSERT_EQ(ctx.matched, 30);
  long long last;
  json_t *log = azc_requests(&A, before, "azc-east.vault.localhost", "/keys/many/versions", &last);
  ASSERT_GE(json_array_size(log), 2); /* maxresults=25: at least two pages */
  json_decref(log);
}

TEST(import_pem_and_thumbprint) {
  setup();
  EVP_PKEY *pk = EVP_RSA_gen(3072);
  BIO *b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, pk, NULL, NULL, 0, NULL, NULL);
  char *pem;
  long len = BIO_get_mem_data(b, &pem);
  sq_kv_import_params ip = {0, 0, SQ_KV_ATTRS_UNSET, NULL};
  ip.attrs.enabled = 1;
  json_t *tags = json_pack("{s:s}", "owner", "tde-operator");
  ip.tags = tags;
  sq_kv_key east, west;
  sq_kv_key_init(&east);
  sq_kv_key_init(&west);
  sq_err e;
  sq_code rc = sq_kv_import_pem(kv, A.vault_east, "imported", pem, (size_t)len, &ip, &east, &e);
  if(rc)
    fprintf(stderr, "import: %s\n", e.message);
  ASSERT_OK(rc);
  ASSERT_OK(sq_kv_import_pem(kv, A.vault_west, "imported", pem, (size_t)len, &ip, &west, &e));
  char want[41];
  ASSERT_OK(sq_thumbprint_pkey(pk, want, &e));
  /* same material in two vaults: same thumbprint, the one we compute */
  ASSERT_STR_EQ(east.thumbprint, want);
  ASSERT_STR_EQ(west.thumbprint, want);
  ASSERT_EQ(east.key_size, 3072);
  ASSERT_STR_EQ(sq_json_str(east.tags, "owner"), "tde-operator");
  sq_kv_key_free(&east);
  sq_kv_key_free(&west);
  json_decref(tags);
  BIO_free(b);
  EVP_PKEY_free(pk);
}

TEST(update_attributes) {
  setup();
  sq_err e;
  sq_kv_key k, u;
  sq_kv_key_init(&k);
  sq_kv_key_init(&u);
  sq_kv_create_params p = rsa(2048);
  ASSERT_OK(sq_kv_create(kv, A.vault_east, "attrs", &p, &k, &e));
  int64_t exp = azc_clock_now_ms(&A) / 1000 + 86400 * 365;
  sq_kv_attrs at = {0, 0, exp};
  ASSERT_OK(sq_kv_update(kv, A.vault_east, "attrs", k.version, &at, NULL, &u, &e));
  ASSERT_EQ(u.enabled, 0);
  ASSERT_EQ(u.exp, exp);
  sq_kv_key_free(&u);
  sq_kv_key_init(&u);
  ASSERT_OK(sq_kv_get(kv, A.vault_east, "attrs", NULL, &u, &e));
  ASSERT_EQ(u.enabled, 0);
  /* a disabled key cannot wrap: typed error from the vault */
  sq_buf out;
  sq_buf_init(&out, 4096);
  sq_code rc = sq_kv_wrap(kv, k.kid, "RSA-OAEP-256", "0123456789abcdef", 16, &out, NULL, &e);
  ASSERT(rc != SQ_OK);
  ASSERT(e.reason[0]);
  sq_buf_free_wipe(&out);
  sq_kv_attrs on = {1, 0, SQ_KV_CLEAR};
  sq_kv_key_free(&u);
  sq_kv_key_init(&u);
  ASSERT_OK(sq_kv_update(kv, A.vault_east, "attrs", k.version, &on, NULL, &u, &e));
  ASSERT_EQ(u.enabled, 1);
  ASSERT_EQ(u.exp, 0);
  sq_kv_key_free(&k);
  sq_kv_key_free(&u);
}

TEST(wrap_unwrap_probe) {
  setup();
  sq_err e;
  sq_kv_key k;
  sq_kv_key_init(&k);
  sq_kv_create_params p = rsa(2048);
  ASSERT_OK(sq_kv_create(kv, A.vault_east, "wrapper", &p, &k, &e));
  unsigned char dek[32];
  for(int i = 0; i < 32; i++)
    dek[i] = (unsigned char)(i * 7 + 1);
  const char *algs[] = {"RSA-OAEP-256", "RSA-OAEP"};
  for(int a = 0; a < 2; a++) {
    sq_buf w, u;
    sq_buf_init(&w, 4096);
    sq_buf_init(&u, 4096);
    char used[SQ_KV_KID_MAX];
    ASSERT_OK(sq_kv_wrap(kv, k.kid, algs[a], dek, sizeof dek, &w, used, &e));
    ASSERT_EQ(w.len, 256);
    ASSERT_STR_EQ(used, k.kid);
    ASSERT_OK(sq_kv_unwrap(kv, k.kid, algs[a], w.ptr, w.len, &u, NULL, &e));
    ASSERT_EQ(u.len, 32);
    ASSERT(!memcmp(u.ptr, dek, 32));
    sq_buf_free_wipe(&w);
    sq_buf_free_wipe(&u);
  }
  ASSERT_OK(sq_kv_probe(kv, k.kid, &e));
  /* a versionless kid is refused locally (wrap always names a version) */
  char versionless[SQ_KV_KID_MAX];
  snprintf(versionless, sizeof versionless, "%s/keys/wrapper", A.vault_east);
  ASSERT_EQ(sq_kv_probe(kv, versionless, &e), SQ_EINVAL);
  sq_kv_key_free(&k);
}

TEST(backup_restore_rotate_delete_recover) {
  setup();
  sq_err e;
  sq_kv_key k, r, rot, rec;
  sq_kv_key_init(&k);
  sq_kv_key_init(&r);
  sq_kv_key_init(&rot);
  sq_kv_key_init(&rec);
  sq_kv_create_params p = rsa(2048);
  ASSERT_OK(sq_kv_create(kv, A.vault_east, "replicated", &p, &k, &e));
  char *blob = NULL;
  ASSERT_OK(sq_kv_backup(kv, A.vault_east, "replicated", &blob, &e));
  ASSERT_GT(strlen(blob), 100);
  /* same geography and subscription: restore works, material identical */
  sq_code rc = sq_kv_restore(kv, A.vault_west, blob, &r, &e);
  if(rc)
    fprintf(stderr, "restore: %s\n", e.message);
  ASSERT_OK(rc);
  ASSERT_STR_EQ(r.thumbprint, k.thumbprint);
  ASSERT_STR_EQ(r.name, "replicated");
  ASSERT_STR_EQ(r.version, k.version);
  /* another geography: a typed refusal from the vault */
  sq_kv_key x;
  sq_kv_key_init(&x);
  rc = sq_kv_restore(kv, A.vault_eu, blob, &x, &e);
  ASSERT(rc == SQ_EBADREQ || rc == SQ_EFORBIDDEN || rc == SQ_ECONFLICT);
  ASSERT(e.reason[0]);
  fprintf(stderr, "expected refusal: %s\n", e.message);
  /* rotate: a new version with new material */
  ASSERT_OK(sq_kv_rotate(kv, A.vault_east, "replicated", &rot, &e));
  ASSERT_STR_EQ(rot.name, "replicated");
  ASSERT(strcmp(rot.version, k.version) != 0);
  ASSERT(strcmp(rot.thumbprint, k.thumbprint) != 0);
  /* soft delete, then recover */
  sq_kv_deleted_key d;
  memset(&d, 0, sizeof d);
  sq_kv_key_init(&d.key);
  ASSERT_OK(sq_kv_delete(kv, A.vault_east, "replicated", &d, &e));
  ASSERT_STR_CONTAINS(d.recovery_id, "/deletedkeys/replicated");
  ASSERT_GT(d.scheduled_purge_date, d.deleted_date);
  sq_kv_key gone;
  sq_kv_key_init(&gone);
  ASSERT_EQ(sq_kv_get(kv, A.vault_east, "replicated", NULL, &gone, &e), SQ_ENOTFOUND);
  ASSERT_STR_EQ(e.reason, "KeyNotFound");
  ASSERT_EQ(e.http_status, 404);
  /* deleted keys may show up with a lag: poll with a deadline */
  sq_kv_deleted_key dd;
  memset(&dd, 0, sizeof dd);
  sq_kv_key_init(&dd.key);
  rc = SQ_ENOTFOUND;
  for(int i = 0; i < 100 && rc == SQ_ENOTFOUND; i++) {
    rc = sq_kv_get_deleted(kv, A.vault_east, "replicated", &dd, &e);
    if(rc == SQ_ENOTFOUND)
      sq_sleep_ms(100);
  }
  ASSERT_OK(rc);
  rc = SQ_ENOTFOUND;
  for(int i = 0; i < 100 && rc; i++) {
    rc = sq_kv_recover(kv, A.vault_east, "replicated", &rec, &e);
    if(rc)
      sq_sleep_ms(100);
  }
  ASSERT_OK(rc);
  ASSERT_STR_EQ(rec.version, rot.version); /* latest version comes back */
  free(blob);
  sq_kv_key_free(&k);
  sq_kv_key_free(&r);
  sq_kv_key_free(&rot);
  sq_kv_key_free(&rec);
  sq_kv_key_free(&x);
  sq_kv_key_free(&d.key);
  sq_kv_key_free(&dd.key);
}

TEST(typed_errors) {
  setup();
  sq_err e;
  sq_kv_key k;
  sq_kv_key_init(&k);
  /* no such key */
  ASSERT_EQ(sq_kv_get(kv, A.vault_east, "does-not-exist", NULL, &k, &e), SQ_ENOTFOUND);
  ASSERT_STR_EQ(e.reason, "KeyNotFound");
  /* an identity without access */
  const char *env[] = {"AZURE_TENANT_ID", AZC_TENANT, "AZURE_CLIENT_ID", AZC_NOBODY_CLIENT,
                       "AZURE_CLIENT_SECRET", AZC_NOBODY_SECRET, NULL};
  sq_azure_cred_config cfg;
  sq_azure_pipeline p;
  azc_pipeline(&A, &p, 100);
  sq_azure_cred *nc = NULL;
  ASSERT_OK(sq_azure_cred_config_from_env(azc_env, (void *)env, &cfg, &e));
  ASSERT_OK(sq_azure_cred_new(&A.cloud, &cfg, &p, &nc, &e));
  sq_azure_cred_config_clear(&cfg);
  sq_kv_opts o = {.cloud = &A.cloud, .cred = nc, .pipeline = p};
  sq_kv *nkv = NULL;
  ASSERT_OK(sq_kv_new(&o, &nkv, &e));
  ASSERT_EQ(sq_kv_get(nkv, A.vault_east, "tde-a", NULL, &k, &e), SQ_EFORBIDDEN);
  ASSERT_STR_EQ(e.reason, "ForbiddenByPolicy");
  ASSERT_EQ(e.http_status, 403);
  ASSERT(!sq_code_retryable(e.code));
  sq_kv_free(nkv);
  sq_azure_cred_free(nc);
  /* vault URLs the cloud does not own are refused before any request */
  long long before = azc_requests_last(&A);
  char evil[200];
  snprintf(evil, sizeof evil, "https://management.localhost:%d", A.port);
  ASSERT_EQ(sq_kv_get(kv, evil, "tde-a", NULL, &k, &e), SQ_EINVAL);
  ASSERT_EQ(sq_kv_get(kv, "http://azc-east.vault.localhost", "tde-a", NULL, &k, &e), SQ_EINVAL);
  ASSERT_EQ(sq_kv_get(kv, "https://azc-east.vault.localhost.evil.com", "tde-a", NULL, &k, &e), SQ_EINVAL);
  ASSERT_EQ(sq_kv_get(kv, A.vault_east, "bad/name", NULL, &k, &e), SQ_EINVAL);
  ASSERT_EQ(sq_kv_get(kv, A.vault_east, "tde-a", "../x", &k, &e), SQ_EINVAL);
  long long last;
  json_t *log = azc_requests(&A, before, NULL, NULL, &last);
  ASSERT_EQ(json_array_size(log), 0);
  json_decref(log);
  /* an unknown vault (in Azure: does not resolve) */
  char missing[200];
  snprintf(missing, sizeof missing, "https://nope.vault.localhost:%d", A.port);
  ASSERT_NE(sq_kv_get(kv, missing, "tde-a", NULL, &k, &e), SQ_OK);
  sq_kv_key_free(&k);
}

TEST(expired_token_mid_operation_refreshes_once) {
  setup();
  sq_err e;
  sq_kv_key k;
  sq_kv_key_init(&k);
  ASSERT_OK(sq_kv_get(kv, A.vault_east, "tde-a", NULL, &k, &e));
  uint64_t ex = sq_azure_cred_exchanges(cred);
  /* two hours pass at the vault: our cached token (still "fresh" by our own
   * clock) is now expired there */
  ASSERT_OK(azc_clock_advance(&A, 2 * 3600 * 1000));
  long long before = azc_requests_last(&A);
  sq_kv_key k2;
  sq_kv_key_init(&k2);
  sq_code rc = sq_kv_get(kv, A.vault_east, "tde-a", NULL, &k2, &e);
  if(rc)
    fprintf(stderr, "after expiry: %s\n", e.message);
  ASSERT_OK(rc);
  ASSERT_EQ(sq_azure_cred_exchanges(cred), ex + 1);
  long long last;
  json_t *log = azc_requests(&A, before, "azc-east.vault.localhost", "/keys/tde-a", &last);
  ASSERT_EQ(json_array_size(log), 2);
  ASSERT_EQ(sq_json_int(json_array_get(log, 0), "status", 0), 401);
  ASSERT_EQ(sq_json_int(json_array_get(log, 1), "status", 0), 200);
  json_decref(log);
  sq_kv_key_free(&k);
  sq_kv_key_free(&k2);
}

TEST(vault_429_and_5xx_are_retried) {
  setup();
  sq_err e;
  char id[64];
  ASSERT_OK(azc_fault(&A, json_pack("{s:s,s:s,s:s,s:i,s:i,s:i}", "kind", "status", "host",
                                    "azc-east.vault.localhost", "pathPrefix", "/keys/tde-a", "status", 429,
                                    "retryAfter", 1, "count", 1),
                      id));
  ASSERT_OK(azc_fault(&A, json_pack("{s:s,s:s,s:s,s:i,s:i}", "kind", "status", "host",
                                    "azc-east.vault.localhost", "pathPrefix", "/keys/tde-a", "status", 503,
                                    "count", 1),
                      id));
  long long before = azc_requests_last(&A);
  sq_kv_key k;
  sq_kv_key_init(&k);
  ASSERT_OK(sq_kv_get(kv, A.vault_east, "tde-a", NULL, &k, &e));
  long long last;
  json_t *log = azc_requests(&A, before, "azc-east.vault.localhost", "/keys/tde-a", &last);
  ASSERT_EQ(json_array_size(log), 3);
  ASSERT_EQ(sq_json_int(json_array_get(log, 0), "status", 0), 429);
  ASSERT_EQ(sq_json_int(json_array_get(log, 1), "status", 0), 503);
  ASSERT_EQ(sq_json_int(json_array_get(log, 2), "status", 0), 200);
  /* Retry-After: 1 was honoured */
  ASSERT_GE(sq_json_int(json_array_get(log, 1), "timeMs", 0) - sq_json_int(json_array_get(log, 0), "timeMs", 0), 1000);
  json_decref(log);
  azc_faults_clear(&A);
  sq_kv_key_free(&k);
}

TEST(zz_no_token_in_logs) {
  setup();
  sq_azure_token t;
  sq_err e;
  char scope[300];
  sq_azure_scope(A.cloud.kv_audience, scope, sizeof scope, NULL);
  ASSERT_OK(sq_azure_cred_token(cred, AZC_TENANT, scope, &t, &e));
  ASSERT(azc_log_contains(&A, "keyvault")); /* debug lines were written */
  ASSERT(!azc_log_contains(&A, t.value));
  ASSERT(!azc_log_contains(&A, AZC_OPERATOR_SECRET));
  sq_azure_token_clear(&t);
}

TEST_MAIN()
