/* azure.arm — the ARM client against the emulator over HTTPS: reads and
 * nextLink lists, ARM error bodies as typed errors, 429 with Retry-After
 * honoured exactly (the emulator's request log proves no request went out
 * early), a Retry-After beyond the budget handed back instead of slept on,
 * 5xx retried with jittered backoff a bounded number of times, the
 * client-side token bucket holding ARM's write refill rate (and the same load
 * without it drawing 429s), a client-side refusal when the wait would be too
 * long, a token that expires mid-operation refreshed once, and the metrics
 * hook seeing every request. */
#include <pthread.h>
#include <stdlib.h>

#include "azc.h"
#include "sqltde/azure/vaults.h"
#include "sqltde/jsonx.h"
#include "test.h"

#define SUB "/subscriptions/" AZC_SUB
#define RG SUB "/resourceGroups/rg-tde"
#define VAULT RG "/providers/Microsoft.KeyVault/vaults/azc-east"
#define KV_API "2023-07-01"
#define RA_API "2022-04-01"
#define UAA "/providers/Microsoft.Authorization/roleDefinitions/18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"

static azc A;
static int started;
static sq_azure_cred *cred;

/* metrics hook: counts by result */
static pthread_mutex_t mmu = PTHREAD_MUTEX_INITIALIZER;
static int m_total, m_throttled, m_server, m_client_throttled, m_success;
static char m_last_type[128], m_last_op[128];

static void on_metric(void *ud, const sq_azure_metric *m) {
  (void)ud;
  pthread_mutex_lock(&mmu);
  m_total++;
  if(!strcmp(m->result, "throttled"))
    m_throttled++;
  else if(!strcmp(m->result, "server_error"))
    m_server++;
  else if(!strcmp(m->result, "client_throttled"))
    m_client_throttled++;
  else if(!strcmp(m->result, "success"))
    m_success++;
  snprintf(m_last_type, sizeof m_last_type, "%s", m->resource_type);
  snprintf(m_last_op, sizeof m_last_op, "%s", m->operation);
  pthread_mutex_unlock(&mmu);
}

static void setup(void) {
  if(started)
    return;
  started = 1;
  sq_azure_pipeline p;
  azc_setup_operator(&A, &p, &cred);
}

static sq_arm *new_arm(int64_t backoff_ms, void (*tweak)(sq_arm_opts *)) {
  sq_arm_opts o = {.cloud = &A.cloud, .cred = cred};
  azc_pipeline(&A, &o.pipeline, backoff_ms);
  o.pipeline.metrics = on_metric;
  if(tweak)
    tweak(&o);
  sq_arm *a = NULL;
  sq_err e;
  if(sq_arm_new(&o, &a, &e))
    fprintf(stderr, "arm: %s\n", e.message);
  return a;
}

static int count_item(void *ud, const json_t *it) {
  (void)it;
  (*(int *)ud)++;
  return 0;
}

TEST(reads_lists_and_errors) {
  setup();
  sq_arm *arm = new_arm(100, NULL);
  ASSERT_NOT_NULL(arm);
  sq_err e;
  json_t *v = NULL;
  ASSERT_OK(sq_arm_get(arm, VAULT, KV_API, NULL, &v, &e));
  ASSERT_STR_EQ(sq_json_str(v, "name"), "azc-east");
  ASSERT(sq_json_bool(v, "properties.enablePurgeProtection", 0));
  json_decref(v);
  ASSERT_STR_EQ(m_last_type, "Microsoft.KeyVault/vaults");
  ASSERT_STR_EQ(m_last_op, "vaults.get");
  int n = 0;
  ASSERT_OK(sq_arm_list(arm, SUB "/providers/Microsoft.KeyVault/vaults", KV_API, NULL, "vaults.list",
                        count_item, &n, &e));
  ASSERT_EQ(n, 3); /* azc-east, azc-west, azc-eu in this subscription */
  /* ARM error bodies become typed errors */
  ASSERT_EQ(sq_arm_get(arm, RG "/providers/Microsoft.KeyVault/vaults/nope", KV_API, NULL, &v, &e), SQ_ENOTFOUND);
  ASSERT_EQ(e.http_status, 404);
  ASSERT(e.reason[0]);
  fprintf(stderr, "404 as: %s (reason %s)\n", e.message, e.reason);
  ASSERT_EQ(sq_arm_get(arm, VAULT, "2023-07-01&x=1", NULL, &v, &e), SQ_EINVAL); /* refused locally */
  ASSERT_EQ(sq_arm_get(arm, VAULT, "1999-01-01", NULL, &v, &e), SQ_EBADREQ);
  ASSERT_STR_EQ(e.reason, "NoRegisteredProviderFound");
  sq_arm_free(arm);
}

static int collect_roles(void *ud, const sq_role_assignment *ra) {
  char *out = ud;
  strncat(out, ra->role_guid, 4000 - strlen(out) - 2);
  strcat(out, ",");
  return 0;
}

TEST(typed_vault_resource_and_role_assignments) {
  setup();
  sq_arm *arm = new_arm(100, NULL);
  sq_err e;
  sq_vault v;
  ASSERT_OK(sq_vault_get(arm, VAULT, &v, &e));
  ASSERT(v.soft_delete);
  ASSERT(v.purge_protection);
  ASSERT(!v.rbac);
  ASSERT_STR_EQ(v.tenant_id, AZC_TENANT);
  /* the operator may manage keys; the database UMI has exactly what TDE needs */
  ASSERT_EQ(sq_vault_key_perms(&v, AZC_OPERATOR_OID) & SQ_KP_CREATE, SQ_KP_CREATE);
  ASSERT_EQ(sq_vault_key_perms(&v, "0d0d0d0d-0000-4000-8000-000000000001"), SQ_KP_TDE);
  sq_vault_free(&v);
  /* role assignments that reach the vault for the operator: Reader on the
   * subscription and User Access Administrator on the resource group */
  char roles[4000] = "";
  ASSERT_OK(sq_role_assignments_list(arm, VAULT, AZC_OPERATOR_OID, collect_roles, roles, &e));
  ASSERT_STR_CONTAINS(roles, "acdd72a7-3385-48ef-bd42-f606fba81ae7");
  ASSERT_STR_CONTAINS(roles, "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9");
  sq_arm_free(arm);
}

static json_t *ra_body(void) {
  return json_pack("{s:{s:s,s:s}}", "properties", "roleDefinitionId", SUB UAA, "principalId",
                   "0d0d0d0d-0000-4000-8000-000000000001");
}

static void ra_path(char *out, size_t n, int i) {
  snprintf(out, n, RG "/providers/Microsoft.Authorization/roleAssignments/00000000-0000-4000-8000-%012d", i);
}

TEST(throttled_429_waits_exactly_retry_after) {
  setup();
  sq_arm *arm = new_arm(100, NULL);
  sq_err e;
  ASSERT_OK(azc_fault(&A, json_pack("{s:s,s:s,s:s,s:i,s:i,s:i}", "kind", "status", "host",
                                    "management.localhost", "pathPrefix", VAULT, "status", 429, "retryAfter", 2,
                                    "count", 1),
                      NULL));
  long long before = azc_requests_last(&A);
  json_t *v = NULL;
  int64_t t0 = sq_mono_ms();
  ASSERT_OK(sq_arm_get(arm, VAULT, KV_API, NULL, &v, &e));
  int64_t took = sq_mono_ms() - t0;
  json_decref(v);
  long long last;
  json_t *log = azc_requests(&A, before, "management.localhost", VAULT, &last);
  ASSERT_EQ(json_array_size(log), 2);
  ASSERT_EQ(sq_json_int(json_array_get(log, 0), "status", 0), 429);
  ASSERT_EQ(sq_json_int(json_array_get(log, 1), "status", 0), 200);
  int64_t gap = sq_json_int(json_array_get(log, 1), "timeMs", 0) - sq_json_int(json_array_get(log, 0), "timeMs", 0);
  ASSERT_GE(gap, 2000); /* not one millisecond early */
  ASSERT_LT(took, 10000);
  json_decref(log);
  sq_arm_free(arm);
}

static void small_retry_budget(sq_arm_opts *o) { o->pipeline.max_retry_after_ms = 1000; }

TEST(retry_after_beyond_budget_is_handed_back) {
  setup();
  sq_arm *arm = new_arm(100, small_retry_budget);
  ASSERT_OK(azc_fault(&A, json_pack("{s:s,s:s,s:s,s:i,s:i,s:i}", "kind", "status", "host",
                                    "management.localhost", "pathPrefix", VAULT, "status", 429, "retryAfter", 30,
                                    "count", 1),
                      NULL));
  long long before = azc_requests_last(&A);
  sq_arm_call c = {.method = "GET", .path = VAULT, .api_version = KV_API};
  sq_arm_result r;
  sq_arm_result_init(&r);
  sq_err e;
  int64_t t0 = sq_mono_ms();
  ASSERT_EQ(sq_arm_do(arm, &c, &r, &e), SQ_ETHROTTLED);
  ASSERT_LT(sq_mono_ms() - t0, 5000); /* did not sleep 30 s */
  ASSERT_EQ(r.retry_after_ms, 30000);
  ASSERT(sq_code_retryable(e.code));
  long long last;
  json_t *log = azc_requests(&A, before, "management.localhost", VAULT, &last);
  ASSERT_EQ(json_array_size(log), 1);
  json_decref(log);
  sq_arm_result_free(&r);
  azc_faults_clear(&A);
  sq_arm_free(arm);
}

TEST(server_errors_retried_with_backoff_then_typed) {
  setup();
  sq_arm *arm = new_arm(200, NULL);
  sq_err e;
  ASSERT_OK(azc_fault(&A, json_pack("{s:s,s:s,s:s,s:i,s:i}", "kind", "status", "host", "management.localhost",
                                    "pathPrefix", VAULT, "status", 503, "count", 2),
                      NULL));
  long long before = azc_requests_last(&A);
  json_t *v = NULL;
  ASSERT_OK(sq_arm_get(arm, VAULT, KV_API, NULL, &v, &e));
  json_decref(v);
  long long last;
  json_t *log = azc_requests(&A, before, "management.localhost", VAULT, &last);
  ASSERT_EQ(json_array_size(log), 3);
  int64_t t[3];
  for(int i = 0; i < 3; i++)
    t[i] = sq_json_int(json_array_get(log, (size_t)i), "timeMs", 0);
  /* equal jitter: at least half of 200 ms, then half of 400 ms */
  ASSERT_GE(t[1] - t[0], 100);
  ASSERT_GE(t[2] - t[1], 200);
  json_decref(log);

  /* a persistent 500: bounded retries (4), then a typed error */
  ASSERT_OK(azc_fault(&A, json_pack("{s:s,s:s,s:s,s:i,s:i}", "kind", "status", "host", "management.localhost",
                                    "pathPrefix", VAULT, "status", 500, "count", 100),
                      NULL));
  before = azc_requests_last(&A);
  ASSERT_EQ(sq_arm_get(arm, VAULT, KV_API, NULL, &v, &e), SQ_ESERVER);
  ASSERT_EQ(e.http_status, 500);
  ASSERT_STR_EQ(e.reason, "InternalServerError");
  log = azc_requests(&A, before, "management.localhost", VAULT, &last);
  /* 1 + 4 retries; libcurl itself resends once when a reused connection
   * turns out dead before any answer, so allow one more */
  ASSERT_GE(json_array_size(log), 5);
  ASSERT_LE(json_array_size(log), 6);
  json_decref(log);
  azc_faults_clear(&A);
  sq_arm_free(arm);
}

typedef struct writer {
  sq_arm *arm;
  int first, count;
  int failures;
  sq_code last_rc;
} writer;

static void *write_fn(void *ud) {
  writer *w = ud;
  for(int i = w->first; i < w->first + w->count; i++) {
    char path[400];
    ra_path(path, sizeof path, i);
    json_t *b = ra_body();
    sq_err e;
    sq_code rc = sq_arm_put(w->arm, path, RA_API, b, NULL, &e);
    json_decref(b);
    if(rc) {
      w->failures++;
      w->last_rc = rc;
    }
  }
  return NULL;
}

static void run_writers(sq_arm *arm, int base, int threads, int per) {
  pthread_t th[8];
  writer w[8];
  for(int i = 0; i < threads; i++) {
    w[i] = (writer){arm, base + i * per, per, 0, SQ_OK};
    pthread_create(&th[i], NULL, write_fn, &w[i]);
  }
  for(int i = 0; i < threads; i++)
    pthread_join(th[i], NULL);
  for(int i = 0; i < threads; i++)
    if(w[i].failures)
      fprintf(stderr, "writer %d: %d failures (last %s)\n", i, w[i].failures, sq_code_name(w[i].last_rc));
}

static void writes_10_per_s(sq_arm_opts *o) {
  o->write_burst = 10; /* a small burst so the test reaches the refill rate quickly */
  o->write_per_s = 10; /* ARM's write refill rate */
  o->pipeline.max_retries = 0;
}

static void no_bucket(sq_arm_opts *o) {
  o->bucket_disabled = 1;
  o->pipeline.max_retries = 0;
}

TEST(client_bucket_holds_arm_write_rate) {
  setup();
  /* ARM's write refill rate at the emulator (10/s) with a small burst: 15,
   * five more than the client's 10 so scheduling jitter between sending and
   * arrival cannot turn an on-time request into a 429 (the rate itself is
   * checked from the request log below) */
  ASSERT_OK(azc_settings(&A, json_pack("{s:{s:b,s:{s:i,s:i}}}", "throttle", "enabled", 1, "writes", "burst", 15,
                                       "perSecond", 10)));
  /* without the client bucket the same load draws 429s: the test can fail */
  sq_arm *raw = new_arm(100, no_bucket);
  long long before = azc_requests_last(&A);
  run_writers(raw, 0, 4, 20);
  long long last;
  json_t *log = azc_requests(&A, before, "management.localhost", RG "/providers/Microsoft.Authorization", &last);
  int throttled = 0;
  for(size_t i = 0; i < json_array_size(log); i++)
    throttled += sq_json_int(json_array_get(log, i), "status", 0) == 429;
  ASSERT_GT(throttled, 0);
  json_decref(log);
  sq_arm_free(raw);
  sq_sleep_ms(1500); /* let the emulator's bucket refill */

  sq_arm *arm = new_arm(100, writes_10_per_s);
  before = azc_requests_last(&A);
  int64_t start = azc_clock_now_ms(&A); /* the emulator's clock, as the log's */
  int64_t t0 = sq_mono_ms();
  run_writers(arm, 100, 4, 10);
  int64_t took = sq_mono_ms() - t0;
  log = azc_requests(&A, before, "management.localhost", RG "/providers/Microsoft.Authorization", &last);
  ASSERT_EQ(json_array_size(log), 40);
  for(size_t i = 0; i < 40; i++) {
    json_t *r = json_array_get(log, i);
    ASSERT_EQ(sq_json_int(r, "status", 0), 201); /* ARM never had to throttle */
    /* by the arrival of request i, at most burst + rate * elapsed writes had
     * been sent (+1 for millisecond rounding); a late arrival only loosens it */
    int64_t elapsed = sq_json_int(r, "timeMs", 0) - start;
    ASSERT_LE((int64_t)i + 1, 10 + (elapsed * 10) / 1000 + 1);
  }
  /* 40 writes with a burst of 10 at 10/s take at least 3 s */
  ASSERT_GE(took, 2900);
  json_decref(log);

  /* clean up with deletes (their own bucket) */
  for(int i = 0; i < 80; i++) {
    char path[400];
    sq_err e;
    if(i < 40) {
      ra_path(path, sizeof path, 100 + i);
      ASSERT_OK(sq_arm_delete(arm, path, RA_API, &e));
    }
    ra_path(path, sizeof path, i);
    (void)sq_arm_delete(arm, path, RA_API, &e);
  }
  ASSERT_OK(azc_settings(&A, json_pack("{s:{s:b}}", "throttle", "enabled", 0)));
  sq_arm_free(arm);
}

static void tiny_bucket(sq_arm_opts *o) {
  o->write_burst = 1;
  o->write_per_s = 1;
  o->bucket_max_wait_ms = 50;
}

TEST(client_bucket_refuses_long_waits) {
  setup();
  sq_arm *arm = new_arm(100, tiny_bucket);
  char path[400];
  ra_path(path, sizeof path, 999);
  json_t *b = ra_body();
  sq_err e;
  ASSERT_OK(sq_arm_put(arm, path, RA_API, b, NULL, &e));
  long long before = azc_requests_last(&A);
  int ct = m_client_throttled;
  sq_arm_call c = {.method = "PUT", .path = path, .api_version = RA_API, .body = b};
  sq_arm_result r;
  sq_arm_result_init(&r);
  ASSERT_EQ(sq_arm_do(arm, &c, &r, &e), SQ_ETHROTTLED);
  ASSERT_STR_EQ(e.reason, "ClientThrottled");
  ASSERT_GT(r.retry_after_ms, 800);
  ASSERT_LE(r.retry_after_ms, 1000);
  ASSERT_EQ(m_client_throttled, ct + 1);
  long long last;
  json_t *log = azc_requests(&A, before, NULL, NULL, &last);
  ASSERT_EQ(json_array_size(log), 0); /* nothing was sent */
  json_decref(log);
  /* reads have their own bucket */
  json_t *v = NULL;
  ASSERT_OK(sq_arm_get(arm, VAULT, KV_API, NULL, &v, &e));
  json_decref(v);
  sq_sleep_ms(1100);
  ASSERT_OK(sq_arm_delete(arm, path, RA_API, &e));
  json_decref(b);
  sq_arm_result_free(&r);
  sq_arm_free(arm);
}

TEST(expired_token_mid_operation) {
  setup();
  sq_arm *arm = new_arm(100, NULL);
  sq_err e;
  json_t *v = NULL;
  ASSERT_OK(sq_arm_get(arm, VAULT, KV_API, NULL, &v, &e));
  json_decref(v);
  uint64_t ex = sq_azure_cred_exchanges(cred);
  ASSERT_OK(azc_clock_advance(&A, 2 * 3600 * 1000));
  long long before = azc_requests_last(&A);
  ASSERT_OK(sq_arm_get(arm, VAULT, KV_API, NULL, &v, &e));
  json_decref(v);
  ASSERT_EQ(sq_azure_cred_exchanges(cred), ex + 1);
  long long last;
  json_t *log = azc_requests(&A, before, "management.localhost", VAULT, &last);
  ASSERT_EQ(json_array_size(log), 2);
  ASSERT_EQ(sq_json_int(json_array_get(log, 0), "status", 0), 401);
  ASSERT_EQ(sq_json_int(json_array_get(log, 1), "status", 0), 200);
  json_decref(log);
  sq_arm_free(arm);
}

TEST(forbidden_is_typed) {
  setup();
  const char *env[] = {"AZURE_TENANT_ID", AZC_TENANT, "AZURE_CLIENT_ID", AZC_NOBODY_CLIENT,
                       "AZURE_CLIENT_SECRET", AZC_NOBODY_SECRET, NULL};
  sq_azure_cred_config cfg;
  sq_err e;
  sq_azure_pipeline p;
  azc_pipeline(&A, &p, 100);
  sq_azure_cred *nc = NULL;
  ASSERT_OK(sq_azure_cred_config_from_env(azc_env, (void *)env, &cfg, &e));
  ASSERT_OK(sq_azure_cred_new(&A.cloud, &cfg, &p, &nc, &e));
  sq_azure_cred_config_clear(&cfg);
  sq_arm_opts o = {.cloud = &A.cloud, .cred = nc, .pipeline = p};
  sq_arm *arm = NULL;
  ASSERT_OK(sq_arm_new(&o, &arm, &e));
  json_t *v = NULL;
  ASSERT_EQ(sq_arm_get(arm, VAULT, KV_API, NULL, &v, &e), SQ_EFORBIDDEN);
  ASSERT_STR_EQ(e.reason, "AuthorizationFailed");
  ASSERT(!sq_code_retryable(e.code));
  sq_arm_free(arm);
  sq_azure_cred_free(nc);
}

static void tiny_body(sq_arm_opts *o) { o->pipeline.max_body = 64; }
static void short_timeout(sq_arm_opts *o) {
  o->pipeline.timeout_ms = 300;
  o->pipeline.max_retries = 2;
}

TEST(transport_faults_bounded_and_typed) {
  setup();
  sq_err e;
  json_t *v = NULL;
  /* an oversized body is refused by the bounded buffer and never retried */
  sq_arm *small = new_arm(100, tiny_body);
  long long before = azc_requests_last(&A);
  ASSERT_EQ(sq_arm_get(small, VAULT, KV_API, NULL, &v, &e), SQ_ETOOBIG);
  long long last;
  json_t *log = azc_requests(&A, before, "management.localhost", VAULT, &last);
  ASSERT_EQ(json_array_size(log), 1);
  json_decref(log);
  sq_arm_free(small);

  /* a dropped connection is retried ... */
  sq_arm *arm = new_arm(100, NULL);
  ASSERT_OK(azc_fault(&A, json_pack("{s:s,s:s,s:s,s:i}", "kind", "drop", "host", "management.localhost",
                                    "pathPrefix", VAULT, "count", 1),
                      NULL));
  ASSERT_OK(sq_arm_get(arm, VAULT, KV_API, NULL, &v, &e));
  json_decref(v);
  /* ... a bounded number of times */
  ASSERT_OK(azc_fault(&A, json_pack("{s:s,s:s,s:s,s:i}", "kind", "drop", "host", "management.localhost",
                                    "pathPrefix", VAULT, "count", 100),
                      NULL));
  before = azc_requests_last(&A);
  ASSERT_EQ(sq_arm_get(arm, VAULT, KV_API, NULL, &v, &e), SQ_ETRANSPORT);
  ASSERT(sq_code_retryable(e.code));
  log = azc_requests(&A, before, "management.localhost", VAULT, &last);
  /* 1 + 4 retries; libcurl itself resends once when a reused connection
   * turns out dead before any answer, so allow one more */
  ASSERT_GE(json_array_size(log), 5);
  ASSERT_LE(json_array_size(log), 6);
  json_decref(log);
  azc_faults_clear(&A);
  sq_arm_free(arm);

  /* a server slower than the per-attempt timeout: SQ_ETIMEOUT after the retries */
  sq_arm *slow = new_arm(50, short_timeout);
  ASSERT_OK(azc_fault(&A, json_pack("{s:s,s:s,s:s,s:i,s:i}", "kind", "latency", "host", "management.localhost",
                                    "pathPrefix", VAULT, "latencyMs", 1500, "count", 3),
                      NULL));
  ASSERT_EQ(sq_arm_get(slow, VAULT, KV_API, NULL, &v, &e), SQ_ETIMEOUT);
  azc_faults_clear(&A);
  sq_sleep_ms(1600); /* let the emulator's delayed answers drain */
  sq_arm_free(slow);
}

TEST(zz_metrics_and_logs) {
  setup();
  ASSERT_GT(m_total, 50);
  ASSERT_GT(m_success, 40);
  ASSERT_GT(m_throttled, 0);
  ASSERT_GT(m_server, 0);
  ASSERT(!azc_log_contains(&A, AZC_OPERATOR_SECRET));
  sq_azure_token t;
  sq_err e;
  char scope[300];
  sq_azure_scope(A.cloud.arm_audience, scope, sizeof scope, NULL);
  ASSERT_OK(sq_azure_cred_token(cred, NULL, scope, &t, &e));
  ASSERT(!azc_log_contains(&A, t.value));
  sq_azure_token_clear(&t);
}

TEST_MAIN()
