/* test_emu_control.c — the /_emulator test-control API: scoped status /
 * drop / latency faults with counts, vault and region outages, the virtual
 * clock, settings, and the request log (filters, order, no secrets). */
#include "emu_harness.h"

#define CTL "https://control.localhost/_emulator"
#define EAST "https://kv-tde-east.vault.localhost/keys/tde-shared?api-version=7.5"
#define WEST "https://kv-tde-west.vault.localhost/keys/tde-shared?api-version=7.5"

static emu *E;
static char *OP;

static void setup(void) {
  if(E)
    return;
  E = t_emu_open();
  OP = t_token(E, T_OP_OID, "https://vault.azure.net", 86400);
}

static char *add_fault(const char *json) {
  t_resp r = t_json(E, "POST", CTL "/faults", NULL, json);
  char *id = r.status == 201 ? strdup(t_str(&r, "id")) : NULL;
  if(!id)
    fprintf(stderr, "fault: %d %s\n", r.status, r.body);
  t_resp_free(&r);
  return id;
}

static int status_of(const char *url) {
  t_resp r = t_get(E, url, OP);
  int s = r.drop ? 0 : r.status;
  t_resp_free(&r);
  return s;
}

TEST(status_fault_with_count_and_scope) {
  setup();
  char *id = add_fault("{\"kind\":\"status\",\"status\":429,\"retryAfter\":7,\"count\":2,\"host\":\"kv-tde-east.vault.localhost\","
                       "\"pathPrefix\":\"/keys/tde-shared\"}");
  ASSERT_NOT_NULL(id);
  t_resp r = t_get(E, EAST, OP);
  ASSERT_EQ(r.status, 429);
  ASSERT_STR_EQ(t_resp_header(&r, "Retry-After"), "7");
  ASSERT_STR_EQ(t_str(&r, "error.code"), "Throttled");
  t_resp_free(&r);
  ASSERT_EQ(status_of(WEST), 200); /* other host: untouched */
  ASSERT_EQ(status_of(EAST), 429);
  ASSERT_EQ(status_of(EAST), 200); /* count exhausted */
  r = t_get(E, CTL "/faults", NULL);
  json_t *f = json_array_get(json_object_get(r.json, "value"), 0);
  ASSERT_EQ(sq_json_int(f, "fired", -1), 2);
  ASSERT_EQ(sq_json_int(f, "remaining", -1), 0);
  t_resp_free(&r);
  /* 5xx on ARM, in the ARM shape, wildcard host */
  free(add_fault("{\"kind\":\"status\",\"status\":503,\"count\":1,\"host\":\"*.localhost\",\"pathPrefix\":\"/subscriptions/\"}"));
  char *arm = t_token(E, T_OP_OID, "https://management.azure.com", 600);
  r = t_get(E, "https://management.localhost/subscriptions/" T_SUB1 "/providers/Microsoft.KeyVault/vaults?api-version=2023-07-01", arm);
  ASSERT_EQ(r.status, 503);
  ASSERT_STR_EQ(t_str(&r, "error.code"), "ServiceUnavailable");
  t_resp_free(&r);
  free(arm);
  r = t_do(E, "DELETE", CTL "/faults", NULL, NULL, NULL);
  ASSERT_EQ(r.status, 204);
  t_resp_free(&r);
  free(id);
}

TEST(drop_latency_and_outages) {
  setup();
  char *d = add_fault("{\"kind\":\"drop\",\"count\":1,\"host\":\"kv-tde-east.vault.localhost\"}");
  ASSERT_EQ(status_of(EAST), 0);
  ASSERT_EQ(status_of(EAST), 200);
  /* latency is reported to the I/O layer, which sleeps it */
  char *l = add_fault("{\"kind\":\"latency\",\"latencyMs\":250,\"host\":\"kv-tde-east.vault.localhost\"}");
  t_req t = {.method = "GET", .host = "kv-tde-east.vault.localhost", .path = "/keys/tde-shared", .query = "api-version=7.5"};
  sq_httpd_req req = {.method = "GET", .path = t.path, .query = t.query, .host = t.host, .content_type = "", .body = "",
                      .header = t_header, .impl = &t};
  sq_httpd_resp resp;
  emu_resp_init(&resp);
  int lat = 0;
  emu_handle(E, &req, &resp, &lat);
  ASSERT_EQ(lat, 250);
  emu_resp_free(&resp);
  t_resp r = t_do(E, "DELETE", CTL "/faults/nope", NULL, NULL, NULL);
  ASSERT_EQ(r.status, 404);
  t_resp_free(&r);
  char url[256];
  snprintf(url, sizeof url, CTL "/faults/%s", l);
  r = t_do(E, "DELETE", url, NULL, NULL, NULL);
  ASSERT_EQ(r.status, 204);
  t_resp_free(&r);
  /* a vault outage drops that vault only; a region outage drops every vault in the region */
  char *v = add_fault("{\"kind\":\"vaultDown\",\"vault\":\"kv-tde-west\"}");
  ASSERT_EQ(status_of(WEST), 0);
  ASSERT_EQ(status_of(EAST), 200);
  snprintf(url, sizeof url, CTL "/faults/%s", v);
  t_resp_free(&r);
  r = t_do(E, "DELETE", url, NULL, NULL, NULL);
  t_resp_free(&r);
  char *g = add_fault("{\"kind\":\"regionDown\",\"region\":\"eastus\",\"status\":503}");
  ASSERT_EQ(status_of(EAST), 503);
  ASSERT_EQ(status_of(WEST), 200);
  ASSERT(emu_region_is_down(E, "eastus"));
  ASSERT(!emu_region_is_down(E, "westus"));
  r = t_do(E, "DELETE", CTL "/faults", NULL, NULL, NULL);
  t_resp_free(&r);
  /* bad fault specs */
  const char *bad[] = {"{\"kind\":\"explode\"}", "{\"kind\":\"status\"}", "{\"kind\":\"status\",\"status\":200}",
                       "{\"kind\":\"latency\"}", "{\"kind\":\"vaultDown\"}", "{\"kind\":\"drop\",\"count\":0}",
                       "{\"kind\":\"drop\",\"host\":5}", "not json"};
  for(size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    r = t_json(E, "POST", CTL "/faults", NULL, bad[i]);
    ASSERT_EQ(r.status, 400);
    t_resp_free(&r);
  }
  free(d);
  free(l);
  free(v);
  free(g);
}

TEST(virtual_clock) {
  setup();
  t_resp r = t_get(E, CTL "/clock", NULL);
  int64_t before = sq_json_int(r.json, "now", 0);
  ASSERT_GT(before, 1600000000);
  t_resp_free(&r);
  r = t_json(E, "POST", CTL "/clock/advance", NULL, "{\"seconds\":90000}");
  ASSERT_EQ(r.status, 200);
  ASSERT_GE(sq_json_int(r.json, "now", 0) - before, 90000);
  ASSERT_GE(sq_json_int(r.json, "offsetMs", 0), 90000000);
  t_resp_free(&r);
  r = t_json(E, "POST", CTL "/clock/advance", NULL, "{\"seconds\":-5}");
  ASSERT_EQ(r.status, 400);
  t_resp_free(&r);
  /* the clock moved: the day-long token has expired (5 minutes of skew tolerated, not more) */
  ASSERT_EQ(status_of(EAST), 401);
  free(OP);
  OP = t_token(E, T_OP_OID, "https://vault.azure.net", 86400);
  ASSERT_EQ(status_of(EAST), 200);
}

TEST(request_log) {
  setup();
  t_resp r = t_do(E, "DELETE", CTL "/requests", NULL, NULL, NULL);
  ASSERT_EQ(r.status, 204);
  t_resp_free(&r);
  ASSERT_EQ(status_of(EAST), 200);
  ASSERT_EQ(status_of(WEST), 200);
  r = t_do(E, "POST", "https://login.localhost/" T_TENANT "/oauth2/v2.0/token", NULL,
           "application/x-www-form-urlencoded",
           "grant_type=client_credentials&client_id=" T_OP_CID "&client_secret=operator-test-secret&scope=https://vault.azure.net/.default");
  ASSERT_EQ(r.status, 200);
  t_resp_free(&r);
  r = t_get(E, CTL "/requests", NULL);
  json_t *v = json_object_get(r.json, "value");
  ASSERT_EQ(json_array_size(v), 3); /* control calls are not logged */
  ASSERT_STR_EQ(sq_json_str(json_array_get(v, 0), "host"), "kv-tde-east.vault.localhost");
  ASSERT_STR_EQ(sq_json_str(json_array_get(v, 0), "path"), "/keys/tde-shared");
  ASSERT_STR_EQ(sq_json_str(json_array_get(v, 0), "query"), "api-version=7.5");
  ASSERT_STR_EQ(sq_json_str(json_array_get(v, 0), "callerOid"), T_OP_OID);
  ASSERT_EQ(sq_json_int(json_array_get(v, 1), "status", 0), 200);
  ASSERT_STR_EQ(sq_json_str(json_array_get(v, 2), "family"), "login");
  ASSERT(!strstr(r.body, "operator-test-secret"));
  ASSERT(!strstr(r.body, "eyJ")); /* no tokens */
  int64_t first = sq_json_int(json_array_get(v, 0), "seq", 0);
  t_resp_free(&r);
  char url[256];
  snprintf(url, sizeof url, CTL "/requests?since=%lld&host=kv-tde-west.vault.localhost", (long long)first);
  r = t_get(E, url, NULL);
  ASSERT_EQ(json_array_size(json_object_get(r.json, "value")), 1);
  t_resp_free(&r);
}

TEST(settings) {
  setup();
  t_resp r = t_json(E, "PATCH", CTL "/settings", NULL, "{\"tokenLifetimeSeconds\":120,\"lroDelayMs\":50}");
  ASSERT_EQ(r.status, 200);
  ASSERT_EQ(sq_json_int(r.json, "tokenLifetimeSeconds", 0), 120);
  t_resp_free(&r);
  r = t_do(E, "POST", "https://login.localhost/" T_TENANT "/oauth2/v2.0/token", NULL, "application/x-www-form-urlencoded",
           "grant_type=client_credentials&client_id=" T_OP_CID "&client_secret=operator-test-secret&scope=https://vault.azure.net/.default");
  ASSERT_EQ(sq_json_int(r.json, "expires_in", 0), 120);
  t_resp_free(&r);
  r = t_json(E, "PATCH", CTL "/settings", NULL, "{\"noSuchSetting\":1}");
  ASSERT_EQ(r.status, 400);
  t_resp_free(&r);
  ASSERT_EQ(E->set.token_lifetime_s, 120);
}

TEST(zz_teardown) {
  free(OP);
  t_emu_close(E);
  E = NULL;
}

TEST_MAIN()
