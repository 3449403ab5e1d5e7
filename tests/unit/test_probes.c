/* test_probes.c — /healthz, /readyz and /metrics over real HTTP, and the
 * controller-runtime bind-address syntax. */
#include <stdatomic.h>

#include "sqltde/http.h"
#include "sqltde/server/metrics.h"
#include "sqltde/server/probes.h"
#include "test.h"

TEST(bind_address_table) {
  static const struct {
    const char *in;
    int ok, disabled;
    const char *host;
    int port;
  } cases[] = {
      {":8080", 1, 0, "", 8080},
      {"127.0.0.1:8081", 1, 0, "127.0.0.1", 8081},
      {"[::1]:9443", 1, 0, "::1", 9443},
      {"localhost:0", 1, 0, "localhost", 0},
      {"0", 1, 1, NULL, 0},
      {"", 1, 1, NULL, 0},
      {NULL, 1, 1, NULL, 0},
      {"8080", 0, 0, NULL, 0},
      {":", 0, 0, NULL, 0},
      {":65536", 0, 0, NULL, 0},
      {":-1", 0, 0, NULL, 0},
      {":80x", 0, 0, NULL, 0},
      {"::1:8080", 0, 0, NULL, 0},
      {"[::1:8080", 0, 0, NULL, 0},
  };
  for(size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char host[64] = "unchanged";
    int port = -7, disabled = -1;
    sq_err err;
    sq_code rc = sq_parse_bind_addr(cases[i].in, host, sizeof host, &port, &disabled, &err);
    if(!cases[i].ok) {
      ASSERT_EQ(rc, SQ_EINVAL);
      continue;
    }
    ASSERT_OK(rc);
    ASSERT_EQ(disabled, cases[i].disabled);
    if(!cases[i].disabled) {
      ASSERT_STR_EQ(host, cases[i].host);
      ASSERT_EQ(port, cases[i].port);
    }
  }
}

static atomic_int g_synced;

static int informers_synced(void *ud, char *why, size_t why_len) {
  (void)ud;
  if(atomic_load(&g_synced))
    return 0;
  snprintf(why, why_len, "informer cache for SqlDatabase not synced");
  return 1;
}

static int always_fails(void *ud, char *why, size_t why_len) {
  (void)ud;
  snprintf(why, why_len, "broken on purpose");
  return 1;
}

static long get(sq_http *h, int port, const char *path, sq_http_resp *resp) {
  char url[256];
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
  sq_http_req r = {0};
  r.url = url;
  r.accept = "*/*";
  sq_http_resp_free(resp);
  sq_http_resp_init(resp);
  if(sq_http_do(h, &r, resp, NULL))
    return -1;
  return resp->status;
}

TEST(health_ready_metrics) {
  sq_metrics_workqueue_init("sqldatabase");
  sq_metrics_workqueue_add("sqldatabase");
  sq_probes_opts o = {.health_addr = "127.0.0.1:0", .metrics_addr = "127.0.0.1:0"};
  sq_probes *p = NULL;
  sq_err err;
  ASSERT_OK(sq_probes_start(&o, &p, &err));
  int hp = sq_probes_health_port(p), mp = sq_probes_metrics_port(p);
  ASSERT_GT(hp, 0);
  ASSERT_GT(mp, 0);
  ASSERT_NE(hp, mp);
  sq_http *h = NULL;
  ASSERT_OK(sq_http_new(NULL, &h, NULL));
  sq_http_resp resp;
  sq_http_resp_init(&resp);

  /* Liveness: the built-in ping. */
  ASSERT_EQ(get(h, hp, "/healthz", &resp), 200);
  ASSERT_STR_EQ(resp.body.ptr, "ok");
  ASSERT_EQ(get(h, hp, "/healthz?verbose", &resp), 200);
  ASSERT_STR_EQ(resp.body.ptr, "[+]ping ok\nhealthz check passed\n");
  ASSERT_EQ(get(h, hp, "/healthz/ping", &resp), 200);

  /* Readiness with nothing registered: ready. Then a check that flips. */
  ASSERT_EQ(get(h, hp, "/readyz", &resp), 200);
  atomic_store(&g_synced, 0);
  ASSERT_OK(sq_probes_add_readyz(p, "informers", informers_synced, NULL));
  ASSERT_EQ(sq_probes_add_readyz(p, "informers", informers_synced, NULL), SQ_EINVAL);
  ASSERT_EQ(sq_probes_add_readyz(p, "bad name", informers_synced, NULL), SQ_EINVAL);
  ASSERT_EQ(get(h, hp, "/readyz", &resp), 500);
  ASSERT_STR_EQ(resp.body.ptr, "[-]informers failed: reason withheld\nreadyz check failed\n");
  ASSERT_EQ(get(h, hp, "/readyz/informers", &resp), 500);
  ASSERT_EQ(get(h, hp, "/readyz?exclude=informers", &resp), 200);
  ASSERT_EQ(get(h, hp, "/healthz", &resp), 200); /* liveness unaffected */
  atomic_store(&g_synced, 1);
  ASSERT_EQ(get(h, hp, "/readyz", &resp), 200);
  ASSERT_STR_EQ(resp.body.ptr, "ok");
  ASSERT_EQ(get(h, hp, "/readyz?verbose=1", &resp), 200);
  ASSERT_STR_EQ(resp.body.ptr, "[+]informers ok\nreadyz check passed\n");
  ASSERT_EQ(get(h, hp, "/readyz/nope", &resp), 404);

  /* A failing health check makes /healthz 500 and names it. */
  ASSERT_OK(sq_probes_add_healthz(p, "deadlock", always_fails, NULL));
  ASSERT_EQ(get(h, hp, "/healthz", &resp), 500);
  ASSERT_STR_CONTAINS(resp.body.ptr, "[+]ping ok\n");
  ASSERT_STR_CONTAINS(resp.body.ptr, "[-]deadlock failed");
  ASSERT_EQ(get(h, hp, "/healthz?exclude=deadlock", &resp), 200);

  /* Paths belong to their server. */
  ASSERT_EQ(get(h, hp, "/metrics", &resp), 404);
  ASSERT_EQ(get(h, mp, "/healthz", &resp), 404);
  ASSERT_EQ(get(h, hp, "/", &resp), 404);

  /* Metrics: the text format with the operator's names. */
  ASSERT_EQ(get(h, mp, "/metrics", &resp), 200);
  ASSERT_STR_EQ(resp.content_type, SQ_METRICS_CONTENT_TYPE);
  ASSERT_STR_CONTAINS(resp.body.ptr, "# TYPE workqueue_depth gauge\n");
  ASSERT_STR_CONTAINS(resp.body.ptr, "workqueue_depth{name=\"sqldatabase\"} 0\n");
  ASSERT_STR_CONTAINS(resp.body.ptr, "workqueue_adds_total{name=\"sqldatabase\"} 1\n");
  ASSERT_STR_CONTAINS(resp.body.ptr, "# TYPE workqueue_queue_duration_seconds histogram\n");
  ASSERT_STR_CONTAINS(resp.body.ptr, "# TYPE controller_runtime_reconcile_total counter\n");
  ASSERT_STR_CONTAINS(resp.body.ptr, "# TYPE leader_election_master_status gauge\n");
  /* Only GET/HEAD. */
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", mp);
  sq_http_req r = {.method = "POST", .url = url, .body = "x", .body_len = 1};
  sq_http_resp_free(&resp);
  sq_http_resp_init(&resp);
  ASSERT_OK(sq_http_do(h, &r, &resp, NULL));
  ASSERT_EQ(resp.status, 405);

  sq_http_resp_free(&resp);
  sq_http_free(h);
  sq_probes_stop(p);
}

TEST(disabled_and_shared) {
  sq_probes *p = NULL;
  sq_err err;
  /* "0" disables metrics, as in controller-runtime. */
  sq_probes_opts o = {.health_addr = "127.0.0.1:0", .metrics_addr = "0"};
  ASSERT_OK(sq_probes_start(&o, &p, &err));
  ASSERT_GT(sq_probes_health_port(p), 0);
  ASSERT_EQ(sq_probes_metrics_port(p), 0);
  sq_probes_stop(p);

  /* Both off. */
  sq_probes_opts off = {.health_addr = "0", .metrics_addr = "0"};
  ASSERT_OK(sq_probes_start(&off, &p, &err));
  ASSERT_EQ(sq_probes_health_port(p), 0);
  ASSERT_EQ(sq_probes_metrics_port(p), 0);
  sq_probes_stop(p);

  /* Same address for both: one server, all three paths. Find a free port
   * first by binding :0 and reusing its number. */
  sq_probes_opts tmp = {.health_addr = "127.0.0.1:0", .metrics_addr = "0"};
  ASSERT_OK(sq_probes_start(&tmp, &p, &err));
  int port = sq_probes_health_port(p);
  sq_probes_stop(p);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
  sq_probes_opts same = {.health_addr = addr, .metrics_addr = addr};
  ASSERT_OK(sq_probes_start(&same, &p, &err));
  ASSERT_EQ(sq_probes_health_port(p), port);
  ASSERT_EQ(sq_probes_metrics_port(p), port);
  sq_http *h = NULL;
  ASSERT_OK(sq_http_new(NULL, &h, NULL));
  sq_http_resp resp;
  sq_http_resp_init(&resp);
  ASSERT_EQ(get(h, port, "/metrics", &resp), 200);
  ASSERT_STR_CONTAINS(resp.body.ptr, "sqltde_metrics_dropped_series_total 0\n");
  ASSERT_EQ(get(h, port, "/healthz", &resp), 200);
  ASSERT_EQ(get(h, port, "/readyz", &resp), 200);
  sq_http_resp_free(&resp);
  sq_http_free(h);
  sq_probes_stop(p);

  /* Bad addresses and a taken port fail with the endpoint named. */
  sq_probes_opts bad = {.health_addr = "nonsense", .metrics_addr = "0"};
  ASSERT_EQ(sq_probes_start(&bad, &p, &err), SQ_EINVAL);
  ASSERT_STR_CONTAINS(err.message, "health probe address");
  ASSERT_NULL(p);
  sq_probes *a = NULL;
  ASSERT_OK(sq_probes_start(&tmp, &a, &err));
  snprintf(addr, sizeof addr, "127.0.0.1:%d", sq_probes_health_port(a));
  sq_probes_opts clash = {.health_addr = "127.0.0.1:0", .metrics_addr = addr};
  ASSERT_EQ(sq_probes_start(&clash, &p, &err), SQ_EIO);
  ASSERT_STR_CONTAINS(err.message, "metrics endpoint");
  ASSERT_NULL(p);
  sq_probes_stop(a);
}

TEST_MAIN()
