/* azure.credentials — every credential type against the emulator's Entra ID
 * and IMDS over HTTPS: client secret, client certificate (PS256 assertion),
 * workload identity with a federated token file that rotates during the test,
 * managed identity through IMDS; typed errors; the token cache (one exchange
 * for many concurrent callers, refresh before expiry with a short token
 * lifetime); tenant rules; and no secret or token in any log line. */
#include <pthread.h>
#include <stdlib.h>

#include "azc.h"
#include "sqltde/jsonx.h"
#include "test.h"

static azc A;
static int started;
static char *seen[256]; /* every token and assertion the test handled */
static int n_seen;

/* takes ownership */
static void keep(char *s) {
  if(s && n_seen < 256)
    seen[n_seen++] = s;
  else
    sq_free_secret(s);
}
static void remember(const char *s) { keep(s ? strdup(s) : NULL); }

static void teardown(void) {
  if(started)
    azc_stop(&A);
  for(int i = 0; i < n_seen; i++)
    sq_free_secret(seen[i]);
}

static void setup(void) {
  if(started)
    return;
  if(azc_start(&A)) {
    azc_stop(&A);
    fprintf(stderr, "emulator did not start\n");
    exit(1);
  }
  started = 1;
  atexit(teardown);
}

/* ---- a fake clock the credential uses for its cache decisions ---- */
static int64_t fake_offset_ms;
static int64_t fake_mono(void *ud) {
  (void)ud;
  return sq_mono_ms() + __atomic_load_n(&fake_offset_ms, __ATOMIC_SEQ_CST);
}
static int64_t fake_wall(void *ud) {
  (void)ud;
  return sq_wall_s() + __atomic_load_n(&fake_offset_ms, __ATOMIC_SEQ_CST) / 1000;
}
static const sq_clock fake_clock = {fake_mono, fake_wall, NULL};

static sq_azure_cred *make_cred(const char *const *env, int fake, sq_err *e) {
  sq_azure_cred_config cfg;
  sq_azure_cred *c = NULL;
  if(sq_azure_cred_config_from_env(azc_env, (void *)env, &cfg, e))
    return NULL;
  sq_azure_pipeline p;
  azc_pipeline(&A, &p, 100);
  if(fake)
    p.clock = &fake_clock;
  sq_code rc = sq_azure_cred_new(&A.cloud, &cfg, &p, &c, e);
  sq_azure_cred_config_clear(&cfg);
  return rc ? NULL : c;
}

static char arm_scope[300], kv_scope[300];

static void scopes(void) {
  sq_azure_scope(A.cloud.arm_audience, arm_scope, sizeof arm_scope, NULL);
  sq_azure_scope(A.cloud.kv_audience, kv_scope, sizeof kv_scope, NULL);
}

/* Proves a credential works end to end: an ARM read as that identity. */
static void arm_read_works(sq_azure_cred *c) {
  sq_arm_opts o = {.cloud = &A.cloud, .cred = c};
  azc_pipeline(&A, &o.pipeline, 100);
  sq_arm *arm = NULL;
  sq_err e;
  ASSERT_OK(sq_arm_new(&o, &arm, &e));
  json_t *v = NULL;
  sq_code rc = sq_arm_get(arm, "/subscriptions/" AZC_SUB "/resourceGroups/rg-tde/providers/Microsoft.KeyVault/vaults/azc-east",
                          "2023-07-01", NULL, &v, &e);
  if(rc)
    fprintf(stderr, "ARM read failed: %s\n", e.message);
  ASSERT_OK(rc);
  ASSERT_STR_EQ(sq_json_str(v, "name"), "azc-east");
  json_decref(v);
  sq_arm_free(arm);
}

TEST(client_secret) {
  setup();
  scopes();
  const char *env[] = {"AZURE_TENANT_ID", AZC_TENANT, "AZURE_CLIENT_ID", AZC_OPERATOR_CLIENT,
                       "AZURE_CLIENT_SECRET", AZC_OPERATOR_SECRET, NULL};
  sq_err e;
  sq_azure_cred *c = make_cred(env, 0, &e);
  ASSERT_NOT_NULL(c);
  ASSERT_EQ(sq_azure_cred_kind_of(c), SQ_AZCRED_SECRET);
  sq_azure_token t1, t2;
  ASSERT_OK(sq_azure_cred_token(c, NULL, arm_scope, &t1, &e));
  remember(t1.value);
  ASSERT_GT(t1.expires_on, sq_wall_s());
  /* cached: the second call sends nothing */
  ASSERT_OK(sq_azure_cred_token(c, NULL, arm_scope, &t2, &e));
  ASSERT_STR_EQ(t1.value, t2.value);
  ASSERT_EQ(sq_azure_cred_exchanges(c), 1);
  /* a different scope is a different cache entry */
  sq_azure_token t3;
  ASSERT_OK(sq_azure_cred_token(c, NULL, kv_scope, &t3, &e));
  remember(t3.value);
  ASSERT(strcmp(t1.value, t3.value) != 0);
  ASSERT_EQ(sq_azure_cred_exchanges(c), 2);
  arm_read_works(c);
  sq_azure_token_clear(&t1);
  sq_azure_token_clear(&t2);
  sq_azure_token_clear(&t3);
  sq_azure_cred_free(c);
}

TEST(client_certificate) {
  setup();
  scopes();
  long long before = azc_requests_last(&A);
  const char *env[] = {"AZURE_TENANT_ID", AZC_TENANT, "AZURE_CLIENT_ID", AZC_OPERATOR_CLIENT,
                       "AZURE_CLIENT_CERTIFICATE_PATH", A.cert_pem_path, NULL};
  sq_err e;
  sq_azure_cred *c = make_cred(env, 0, &e);
  ASSERT_NOT_NULL(c);
  ASSERT_EQ(sq_azure_cred_kind_of(c), SQ_AZCRED_CERT);
  sq_azure_token t;
  sq_code rc = sq_azure_cred_token(c, NULL, arm_scope, &t, &e);
  if(rc)
    fprintf(stderr, "certificate token: %s\n", e.message);
  ASSERT_OK(rc);
  remember(t.value);
  /* the exchange went to the tenant's v2 token endpoint and succeeded */
  long long last;
  json_t *log = azc_requests(&A, before, "login.localhost", "/" AZC_TENANT "/oauth2/v2.0/token", &last);
  ASSERT_EQ(json_array_size(log), 1);
  ASSERT_EQ(sq_json_int(json_array_get(log, 0), "status", 0), 200);
  ASSERT_STR_EQ(sq_json_str(json_array_get(log, 0), "method"), "POST");
  json_decref(log);
  arm_read_works(c);
  sq_azure_token_clear(&t);
  sq_azure_cred_free(c);
}

TEST(workload_identity_rotating_token_file) {
  setup();
  scopes();
  char path[400];
  snprintf(path, sizeof path, "%s/azure-identity-token", A.dir);
  int64_t now = azc_clock_now_ms(&A) / 1000;
  ASSERT_GT(now, 0);
  /* token A expires 10 minutes from now, token B an hour from now */
  char *fa = azc_federated_token(&A, now - 60, now + 600);
  char *fb = azc_federated_token(&A, now - 60, now + 3600);
  ASSERT_NOT_NULL(fa);
  ASSERT_NOT_NULL(fb);
  keep(fa);
  keep(fb);
  ASSERT_OK(azc_write_file(path, fa));
  char authority[300];
  snprintf(authority, sizeof authority, "https://login.localhost:%d/", A.port); /* webhook style */
  const char *env[] = {"AZURE_TENANT_ID", AZC_TENANT, "AZURE_CLIENT_ID", AZC_OPERATOR_CLIENT,
                       "AZURE_FEDERATED_TOKEN_FILE", path, "AZURE_AUTHORITY_HOST", authority, NULL};
  sq_err e;
  __atomic_store_n(&fake_offset_ms, 0, __ATOMIC_SEQ_CST);
  sq_azure_cred *c = make_cred(env, 1, &e);
  ASSERT_NOT_NULL(c);
  ASSERT_EQ(sq_azure_cred_kind_of(c), SQ_AZCRED_WORKLOAD);
  sq_azure_token t1;
  sq_code rc = sq_azure_cred_token(c, NULL, arm_scope, &t1, &e);
  if(rc)
    fprintf(stderr, "workload identity: %s\n", e.message);
  ASSERT_OK(rc);
  remember(t1.value);
  ASSERT_EQ(sq_azure_cred_exchanges(c), 1);

  /* the kubelet rotates the projected token; then token A expires (emulator
   * time) and our cached access token reaches its refresh point */
  ASSERT_OK(azc_write_file(path, fb));
  ASSERT_OK(azc_clock_advance(&A, 700 * 1000));
  __atomic_store_n(&fake_offset_ms, 3400 * 1000, __ATOMIC_SEQ_CST);
  sq_azure_token t2;
  rc = sq_azure_cred_token(c, NULL, arm_scope, &t2, &e);
  if(rc)
    fprintf(stderr, "after rotation: %s\n", e.message);
  ASSERT_OK(rc); /* only token B can still be exchanged: the file was re-read */
  remember(t2.value);
  ASSERT_EQ(sq_azure_cred_exchanges(c), 2);
  ASSERT(strcmp(t1.value, t2.value) != 0);

  /* an expired federated token in the file: a typed error naming Entra's code,
   * never the assertion itself */
  char *fc = azc_federated_token(&A, now - 7200, now - 3600);
  keep(fc);
  ASSERT_OK(azc_write_file(path, fc));
  sq_azure_cred_invalidate(c, NULL, arm_scope, t2.value);
  sq_azure_token t3;
  rc = sq_azure_cred_token(c, NULL, arm_scope, &t3, &e);
  ASSERT(rc == SQ_EBADREQ || rc == SQ_EUNAUTH);
  ASSERT(e.reason[0]);
  ASSERT(!strstr(e.message, fc));
  fprintf(stderr, "expected failure: %s (reason %s)\n", e.message, e.reason);
  ASSERT_OK(azc_write_file(path, fb));
  __atomic_store_n(&fake_offset_ms, 0, __ATOMIC_SEQ_CST);
  sq_azure_token_clear(&t1);
  sq_azure_token_clear(&t2);
  sq_azure_cred_free(c);
}

TEST(managed_identity_through_imds) {
  setup();
  scopes();
  char origin[200];
  snprintf(origin, sizeof origin, "https://login.localhost:%d", A.port);
  long long before = azc_requests_last(&A);
  const char *env[] = {"AZURE_CLIENT_ID", AZC_UMI_CLIENT, "AZURE_POD_IDENTITY_AUTHORITY_HOST", origin, NULL};
  sq_err e;
  sq_azure_cred *c = make_cred(env, 0, &e);
  ASSERT_NOT_NULL(c);
  ASSERT_EQ(sq_azure_cred_kind_of(c), SQ_AZCRED_IMDS);
  sq_azure_token t;
  sq_code rc = sq_azure_cred_token(c, NULL, kv_scope, &t, &e);
  if(rc)
    fprintf(stderr, "IMDS: %s\n", e.message);
  ASSERT_OK(rc);
  remember(t.value);
  long long last;
  json_t *log = azc_requests(&A, before, NULL, "/metadata/identity/oauth2/token", &last);
  ASSERT_EQ(json_array_size(log), 1);
  const char *q = sq_json_str(json_array_get(log, 0), "query");
  ASSERT_STR_CONTAINS(q, "api-version=2018-02-01");
  ASSERT_STR_CONTAINS(q, "client_id=" AZC_UMI_CLIENT);
  /* the log shows the query decoded; on the wire it was percent-encoded */
  ASSERT_STR_CONTAINS(q, "resource=https://vault.localhost");
  json_decref(log);

  /* the identity can read keys in azc-east: use the token through the KV client */
  sq_kv_opts ko = {.cloud = &A.cloud, .cred = c};
  azc_pipeline(&A, &ko.pipeline, 100);
  sq_kv *kv = NULL;
  ASSERT_OK(sq_kv_new(&ko, &kv, &e));
  /* a key to read: created by the operator's own credential */
  const char *openv[] = {"AZURE_TENANT_ID", AZC_TENANT, "AZURE_CLIENT_ID", AZC_OPERATOR_CLIENT,
                         "AZURE_CLIENT_SECRET", AZC_OPERATOR_SECRET, NULL};
  sq_azure_cred *op = make_cred(openv, 0, &e);
  ASSERT_NOT_NULL(op);
  sq_kv_opts ko2 = ko;
  ko2.cred = op;
  sq_kv *kvop = NULL;
  ASSERT_OK(sq_kv_new(&ko2, &kvop, &e));
  sq_kv_create_params cp = {"RSA", 2048, 0, SQ_KV_ATTRS_UNSET, NULL};
  sq_kv_key k1, k2;
  sq_kv_key_init(&k1);
  sq_kv_key_init(&k2);
  ASSERT_OK(sq_kv_create(kvop, A.vault_east, "mi-probe", &cp, &k1, &e));
  rc = sq_kv_get(kv, A.vault_east, "mi-probe", NULL, &k2, &e);
  if(rc)
    fprintf(stderr, "KV as managed identity: %s\n", e.message);
  ASSERT_OK(rc);
  ASSERT_STR_EQ(k1.thumbprint, k2.thumbprint);
  /* and the identity has wrapKey/unwrapKey: the health probe passes */
  ASSERT_OK(sq_kv_probe(kv, k2.kid, &e));
  /* but not create */
  sq_kv_key k3;
  sq_kv_key_init(&k3);
  ASSERT_EQ(sq_kv_create(kv, A.vault_east, "mi-denied", &cp, &k3, &e), SQ_EFORBIDDEN);
  ASSERT_STR_EQ(e.reason, "ForbiddenByPolicy");
  sq_kv_key_free(&k1);
  sq_kv_key_free(&k2);
  sq_kv_free(kv);
  sq_kv_free(kvop);
  sq_azure_token_clear(&t);
  sq_azure_cred_free(c);
  sq_azure_cred_free(op);
}

TEST(wrong_secret_is_a_typed_error) {
  setup();
  scopes();
  const char *env[] = {"AZURE_TENANT_ID", AZC_TENANT, "AZURE_CLIENT_ID", AZC_OPERATOR_CLIENT,
                       "AZURE_CLIENT_SECRET", "azc-Wrong-Secret-0000", NULL};
  sq_err e;
  sq_azure_cred *c = make_cred(env, 0, &e);
  ASSERT_NOT_NULL(c);
  sq_azure_token t;
  sq_code rc = sq_azure_cred_token(c, NULL, arm_scope, &t, &e);
  ASSERT(rc == SQ_EUNAUTH || rc == SQ_EBADREQ);
  ASSERT_STR_EQ(e.reason, "invalid_client");
  ASSERT(e.http_status == 401 || e.http_status == 400);
  ASSERT(!strstr(e.message, "azc-Wrong-Secret-0000"));
  ASSERT_NULL(t.value);
  /* not retried: one request only (a 4xx is final) */
  ASSERT_EQ(sq_azure_cred_exchanges(c), 1);
  /* an immediate second ask reports the same failure without hammering Entra */
  rc = sq_azure_cred_token(c, NULL, arm_scope, &t, &e);
  ASSERT(rc == SQ_EUNAUTH || rc == SQ_EBADREQ);
  ASSERT_EQ(sq_azure_cred_exchanges(c), 1);
  sq_azure_cred_free(c);
}

typedef struct race {
  sq_azure_cred *c;
  char *tok;
  sq_code rc;
} race;

static void *race_fn(void *ud) {
  race *r = ud;
  sq_azure_token t;
  sq_err e;
  r->rc = sq_azure_cred_token(r->c, NULL, arm_scope, &t, &e);
  r->tok = t.value;
  return NULL;
}

static void run_race(sq_azure_cred *c, race *rs, int n) {
  pthread_t th[16];
  for(int i = 0; i < n; i++) {
    rs[i].c = c;
    rs[i].tok = NULL;
    pthread_create(&th[i], NULL, race_fn, &rs[i]);
  }
  for(int i = 0; i < n; i++)
    pthread_join(th[i], NULL);
}

TEST(single_flight_and_refresh_before_expiry) {
  setup();
  scopes();
  /* short-lived tokens: 120 s, so the refresh point is at 60 s */
  ASSERT_OK(azc_settings(&A, json_pack("{s:i}", "tokenLifetimeSeconds", 120)));
  const char *env[] = {"AZURE_TENANT_ID", AZC_TENANT, "AZURE_CLIENT_ID", AZC_OPERATOR_CLIENT,
                       "AZURE_CLIENT_SECRET", AZC_OPERATOR_SECRET, NULL};
  sq_err e;
  __atomic_store_n(&fake_offset_ms, 0, __ATOMIC_SEQ_CST);
  sq_azure_cred *c = make_cred(env, 1, &e);
  ASSERT_NOT_NULL(c);
  race rs[12];
  run_race(c, rs, 12);
  for(int i = 0; i < 12; i++) {
    ASSERT_OK(rs[i].rc);
    ASSERT_STR_EQ(rs[i].tok, rs[0].tok);
  }
  ASSERT_EQ(sq_azure_cred_exchanges(c), 1); /* one exchange for twelve callers */
  char *first = strdup(rs[0].tok);
  keep(first);
  for(int i = 0; i < 12; i++)
    sq_free_secret(rs[i].tok);

  /* 30 s later: still well inside the window, nothing sent */
  __atomic_store_n(&fake_offset_ms, 30 * 1000, __ATOMIC_SEQ_CST);
  sq_azure_token t;
  ASSERT_OK(sq_azure_cred_token(c, NULL, arm_scope, &t, &e));
  ASSERT_STR_EQ(t.value, first);
  sq_azure_token_clear(&t);
  ASSERT_EQ(sq_azure_cred_exchanges(c), 1);

  /* 70 s: past the refresh point but before expiry -> a new token, once,
   * while the old one is still accepted by ARM (refreshed *before* expiry) */
  ASSERT_OK(azc_clock_advance(&A, 70 * 1000));
  __atomic_store_n(&fake_offset_ms, 70 * 1000, __ATOMIC_SEQ_CST);
  run_race(c, rs, 12);
  ASSERT_EQ(sq_azure_cred_exchanges(c), 2);
  int fresh = 0;
  for(int i = 0; i < 12; i++) {
    ASSERT_OK(rs[i].rc);
    fresh += strcmp(rs[i].tok, first) != 0;
  }
  ASSERT_GT(fresh, 0);
  for(int i = 0; i < 12; i++) {
    remember(rs[i].tok);
    sq_free_secret(rs[i].tok);
  }
  char url[400];
  snprintf(url, sizeof url,
           "https://management.localhost:%d/subscriptions/" AZC_SUB "/resourceGroups/rg-tde/providers/"
           "Microsoft.KeyVault/vaults/azc-east?api-version=2023-07-01",
           A.port);
  sq_http_req req = {.method = "GET", .url = url, .bearer = first};
  sq_http_resp resp;
  sq_http_resp_init(&resp);
  ASSERT_OK(sq_http_do(A.http, &req, &resp, &e));
  ASSERT_EQ(resp.status, 200);
  /* ... and once past its expiry plus the 5 minutes of clock skew Azure
   * tolerates, the old one is refused there */
  ASSERT_OK(azc_clock_advance(&A, 360 * 1000));
  ASSERT_OK(sq_http_do(A.http, &req, &resp, &e));
  ASSERT_EQ(resp.status, 401);
  sq_http_resp_free(&resp);
  ASSERT_OK(azc_settings(&A, json_pack("{s:i}", "tokenLifetimeSeconds", 3600)));
  __atomic_store_n(&fake_offset_ms, 0, __ATOMIC_SEQ_CST);
  sq_azure_cred_free(c);
}

TEST(cross_tenant_rules) {
  setup();
  scopes();
  const char *env[] = {"AZURE_TENANT_ID", AZC_TENANT, "AZURE_CLIENT_ID", AZC_OPERATOR_CLIENT,
                       "AZURE_CLIENT_SECRET", AZC_OPERATOR_SECRET, NULL};
  sq_err e;
  sq_azure_cred *c = make_cred(env, 0, &e);
  sq_azure_token t;
  ASSERT_EQ(sq_azure_cred_token(c, AZC_TENANT_B, kv_scope, &t, &e), SQ_EFORBIDDEN);
  ASSERT_STR_EQ(e.reason, "TenantNotAllowed");
  ASSERT_EQ(sq_azure_cred_exchanges(c), 0); /* refused before any request */
  ASSERT_EQ(sq_azure_cred_token(c, "../evil", kv_scope, &t, &e), SQ_EINVAL);
  sq_azure_cred_free(c);

  /* allowed: the request goes to the other tenant's token endpoint */
  const char *env2[] = {"AZURE_TENANT_ID", AZC_TENANT, "AZURE_CLIENT_ID", AZC_OPERATOR_CLIENT,
                        "AZURE_CLIENT_SECRET", AZC_OPERATOR_SECRET,
                        "AZURE_ADDITIONALLY_ALLOWED_TENANTS", AZC_TENANT_B, NULL};
  c = make_cred(env2, 0, &e);
  long long before = azc_requests_last(&A);
  sq_code rc = sq_azure_cred_token(c, AZC_TENANT_B, kv_scope, &t, &e);
  if(!rc) {
    remember(t.value);
    sq_azure_token_clear(&t);
  }
  long long last;
  json_t *log = azc_requests(&A, before, "login.localhost", "/" AZC_TENANT_B "/oauth2/v2.0/token", &last);
  ASSERT_EQ(json_array_size(log), 1);
  json_decref(log);
  sq_azure_cred_free(c);
}

TEST(zz_no_secret_or_token_in_logs) {
  setup();
  /* the log really is captured (the clients wrote debug lines into it) */
  ASSERT(azc_log_contains(&A, "Azure credential: client-secret"));
  ASSERT(!azc_log_contains(&A, AZC_OPERATOR_SECRET));
  ASSERT(!azc_log_contains(&A, "azc-Wrong-Secret-0000"));
  ASSERT_GT(n_seen, 10);
  for(int i = 0; i < n_seen; i++) {
    ASSERT(!azc_log_contains(&A, seen[i]));
    /* nor the signature part alone */
    const char *dot = strrchr(seen[i], '.');
    if(dot && strlen(dot + 1) > 20)
      ASSERT(!azc_log_contains(&A, dot + 1));
  }
  /* the certificate's private key: one line of its base64 */
  sq_buf pem;
  sq_buf_init(&pem, 1 << 16);
  ASSERT_OK(sq_buf_read_file(&pem, A.cert_pem_path, NULL));
  const char *k = strstr(pem.ptr, "-----BEGIN PRIVATE KEY-----");
  ASSERT_NOT_NULL(k);
  char line[65];
  memcpy(line, k + 28 + 64 * 3, 64);
  line[64] = '\0';
  ASSERT(!azc_log_contains(&A, line));
  sq_buf_free_wipe(&pem);
}

TEST_MAIN()
