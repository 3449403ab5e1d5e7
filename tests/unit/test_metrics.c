/* test_metrics.c — the Prometheus registry: exact exposition text,
 * validation, the series cap, concurrency, and the operator's helpers. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>

#include "sqltde/server/metrics.h"
#include "test.h"

static char *render(sq_metrics *r) {
  sq_buf b;
  sq_buf_init(&b, 1 << 20);
  if(sq_metrics_render(r, &b))
    return NULL;
  return sq_buf_detach(&b);
}

TEST(exposition_exact_text) {
  sq_metrics *r = NULL;
  ASSERT_OK(sq_metrics_new(0, &r));
  sq_metric *c = NULL, *g = NULL, *h = NULL;
  const char *cl[] = {"method", "path", NULL};
  ASSERT_OK(sq_metrics_register(r, SQ_METRIC_COUNTER, "test_requests_total",
                                "Requests.\nSecond line \\ with \"quotes\"", cl, NULL, 0, &c,
                                NULL));
  ASSERT_OK(sq_metrics_register(r, SQ_METRIC_GAUGE, "test_temp", "Temperature.", NULL, NULL, 0, &g,
                                NULL));
  const char *hl[] = {"op", NULL};
  const double hb[] = {0.5, 1, 10};
  ASSERT_OK(sq_metrics_register(r, SQ_METRIC_HISTOGRAM, "test_latency_seconds", "Latency.", hl,
                                hb, 3, &h, NULL));

  sq_metric_inc(c, (const char *[]){"GET", "/a\"b\\c\nd"});
  sq_metric_inc(c, (const char *[]){"GET", "/a\"b\\c\nd"});
  sq_metric_add(c, (const char *[]){"PUT", NULL}, 2.5);
  sq_metric_set(g, NULL, -3.25);
  const double obs[] = {0.25, 0.5, 2, 20};
  for(int i = 0; i < 4; i++)
    sq_metric_observe(h, (const char *[]){"x"}, obs[i]);

  char *text = render(r);
  ASSERT_NOT_NULL(text);
  const char *want =
      "# HELP sqltde_metrics_dropped_series_total Metric updates dropped because the registry "
      "reached its series limit.\n"
      "# TYPE sqltde_metrics_dropped_series_total counter\n"
      "sqltde_metrics_dropped_series_total 0\n"
      "# HELP test_requests_total Requests.\\nSecond line \\\\ with \"quotes\"\n"
      "# TYPE test_requests_total counter\n"
      "test_requests_total{method=\"GET\",path=\"/a\\\"b\\\\c\\nd\"} 2\n"
      "test_requests_total{method=\"PUT\",path=\"\"} 2.5\n"
      "# HELP test_temp Temperature.\n"
      "# TYPE test_temp gauge\n"
      "test_temp -3.25\n"
      "# HELP test_latency_seconds Latency.\n"
      "# TYPE test_latency_seconds histogram\n"
      "test_latency_seconds_bucket{op=\"x\",le=\"0.5\"} 2\n"
      "test_latency_seconds_bucket{op=\"x\",le=\"1\"} 2\n"
      "test_latency_seconds_bucket{op=\"x\",le=\"10\"} 3\n"
      "test_latency_seconds_bucket{op=\"x\",le=\"+Inf\"} 4\n"
      "test_latency_seconds_sum{op=\"x\"} 22.75\n"
      "test_latency_seconds_count{op=\"x\"} 4\n";
  ASSERT_STR_EQ(text, want);
  free(text);

  double v = 0;
  uint64_t n = 0;
  ASSERT_OK(sq_metric_get(h, (const char *[]){"x"}, &v, &n));
  ASSERT_EQ(n, 4);
  ASSERT(v == 22.75);
  ASSERT_EQ(sq_metric_get(h, (const char *[]){"y"}, &v, &n), -1);
  sq_metrics_free(r);
}

TEST(number_formatting) {
  sq_metrics *r = NULL;
  ASSERT_OK(sq_metrics_new(0, &r));
  sq_metric *g = NULL;
  const char *l[] = {"k", NULL};
  ASSERT_OK(sq_metrics_register(r, SQ_METRIC_GAUGE, "g", "", l, NULL, 0, &g, NULL));
  static const struct {
    const char *k;
    double v;
    const char *want;
  } cases[] = {
      {"int", 42, "g{k=\"int\"} 42\n"},
      {"neg", -0.5, "g{k=\"neg\"} -0.5\n"},
      {"tenth", 0.1, "g{k=\"tenth\"} 0.1\n"},
      {"tiny", 1e-8, "g{k=\"tiny\"} 1e-08\n"},
      {"huge", 1e21, "g{k=\"huge\"} 1e+21\n"},
      {"big", 123456789012.0, "g{k=\"big\"} 123456789012\n"},
      {"third", 1.0 / 3, "g{k=\"third\"} 0.33333333333333331\n"},
      {"inf", INFINITY, "g{k=\"inf\"} +Inf\n"},
      {"ninf", -INFINITY, "g{k=\"ninf\"} -Inf\n"},
      {"nan", NAN, "g{k=\"nan\"} NaN\n"},
  };
  for(size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    sq_metric_set(g, (const char *[]){cases[i].k}, cases[i].v);
  char *text = render(r);
  ASSERT_NOT_NULL(text);
  for(size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    ASSERT_STR_CONTAINS(text, cases[i].want);
  free(text);
  sq_metrics_free(r);
}

TEST(histogram_defaults_and_unlabelled) {
  sq_metrics *r = NULL;
  ASSERT_OK(sq_metrics_new(0, &r));
  sq_metric *h = NULL;
  ASSERT_OK(sq_metrics_register(r, SQ_METRIC_HISTOGRAM, "h_seconds", "H.", NULL, NULL, 0, &h,
                                NULL));
  /* Unlabelled: exposed at zero before any observation. */
  char *text = render(r);
  ASSERT_STR_CONTAINS(text, "h_seconds_bucket{le=\"0.005\"} 0\n");
  ASSERT_STR_CONTAINS(text, "h_seconds_bucket{le=\"10\"} 0\n");
  ASSERT_STR_CONTAINS(text, "h_seconds_bucket{le=\"+Inf\"} 0\nh_seconds_sum 0\nh_seconds_count 0\n");
  free(text);
  sq_metric_observe(h, NULL, 0.005); /* on the bound: counts in that bucket */
  sq_metric_observe(h, NULL, 11);    /* above every bound: only +Inf */
  sq_metric_observe(h, NULL, NAN);   /* ignored */
  text = render(r);
  ASSERT_STR_CONTAINS(text, "h_seconds_bucket{le=\"0.005\"} 1\n");
  ASSERT_STR_CONTAINS(text, "h_seconds_bucket{le=\"10\"} 1\n");
  ASSERT_STR_CONTAINS(text, "h_seconds_bucket{le=\"+Inf\"} 2\nh_seconds_sum 11.005\nh_seconds_count 2\n");
  free(text);
  sq_metrics_free(r);
}

TEST(registration_rules) {
  sq_metrics *r = NULL;
  ASSERT_OK(sq_metrics_new(0, &r));
  sq_err err;
  sq_metric *a = NULL, *b = NULL;
  const char *l2[] = {"a", "b", NULL};
  ASSERT_OK(sq_metrics_register(r, SQ_METRIC_COUNTER, "x_total", "X", l2, NULL, 0, &a, &err));
  /* Same shape again: the same family. */
  ASSERT_OK(sq_metrics_register(r, SQ_METRIC_COUNTER, "x_total", "X", l2, NULL, 0, &b, &err));
  ASSERT(a == b);
  ASSERT(sq_metrics_find(r, "x_total") == a);
  ASSERT_NULL(sq_metrics_find(r, "nope"));
  /* Different type or labels: refused. */
  ASSERT_EQ(sq_metrics_register(r, SQ_METRIC_GAUGE, "x_total", "X", l2, NULL, 0, &b, &err),
            SQ_EINVAL);
  const char *l1[] = {"a", NULL};
  ASSERT_EQ(sq_metrics_register(r, SQ_METRIC_COUNTER, "x_total", "X", l1, NULL, 0, &b, &err),
            SQ_EINVAL);
  ASSERT_STR_CONTAINS(err.message, "already registered");
  /* Bad names and labels. */
  ASSERT_EQ(sq_metrics_register(r, SQ_METRIC_COUNTER, "1bad", "", NULL, NULL, 0, NULL, &err),
            SQ_EINVAL);
  ASSERT_EQ(sq_metrics_register(r, SQ_METRIC_COUNTER, "bad-name", "", NULL, NULL, 0, NULL, &err),
            SQ_EINVAL);
  ASSERT_OK(sq_metrics_register(r, SQ_METRIC_COUNTER, "ns:sub_total", "", NULL, NULL, 0, NULL,
                                &err));
  const char *colon[] = {"a:b", NULL};
  ASSERT_EQ(sq_metrics_register(r, SQ_METRIC_COUNTER, "c1", "", colon, NULL, 0, NULL, &err),
            SQ_EINVAL);
  const char *reserved[] = {"__x", NULL};
  ASSERT_EQ(sq_metrics_register(r, SQ_METRIC_COUNTER, "c2", "", reserved, NULL, 0, NULL, &err),
            SQ_EINVAL);
  const char *dup[] = {"a", "a", NULL};
  ASSERT_EQ(sq_metrics_register(r, SQ_METRIC_COUNTER, "c3", "", dup, NULL, 0, NULL, &err),
            SQ_EINVAL);
  const char *five[] = {"a", "b", "c", "d", "e", NULL};
  ASSERT_EQ(sq_metrics_register(r, SQ_METRIC_COUNTER, "c4", "", five, NULL, 0, NULL, &err),
            SQ_EINVAL);
  const char *four[] = {"a", "b", "c", "d", NULL};
  ASSERT_OK(sq_metrics_register(r, SQ_METRIC_COUNTER, "c5", "", four, NULL, 0, NULL, &err));
  const char *le[] = {"le", NULL};
  ASSERT_EQ(sq_metrics_register(r, SQ_METRIC_HISTOGRAM, "h1", "", le, NULL, 0, NULL, &err),
            SQ_EINVAL);
  ASSERT_OK(sq_metrics_register(r, SQ_METRIC_COUNTER, "c6", "", le, NULL, 0, NULL, &err));
  const double down[] = {1, 0.5};
  ASSERT_EQ(sq_metrics_register(r, SQ_METRIC_HISTOGRAM, "h2", "", NULL, down, 2, NULL, &err),
            SQ_EINVAL);
  const double inf[] = {1, INFINITY};
  ASSERT_EQ(sq_metrics_register(r, SQ_METRIC_HISTOGRAM, "h3", "", NULL, inf, 2, NULL, &err),
            SQ_EINVAL);
  /* Refusals registered nothing. */
  ASSERT_NULL(sq_metrics_find(r, "h2"));
  ASSERT_NULL(sq_metrics_find(r, "c4"));
  sq_metrics_free(r);
}

TEST(type_misuse_is_ignored) {
  sq_metrics *r = NULL;
  ASSERT_OK(sq_metrics_new(0, &r));
  sq_metric *c = NULL, *g = NULL;
  ASSERT_OK(sq_metrics_register(r, SQ_METRIC_COUNTER, "c_total", "", NULL, NULL, 0, &c, NULL));
  ASSERT_OK(sq_metrics_register(r, SQ_METRIC_GAUGE, "g", "", NULL, NULL, 0, &g, NULL));
  sq_metric_inc(c, NULL);
  sq_metric_add(c, NULL, -5); /* counters never go down */
  sq_metric_set(c, NULL, 100); /* not a gauge */
  sq_metric_observe(c, NULL, 1); /* not a histogram */
  double v = -1;
  ASSERT_OK(sq_metric_get(c, NULL, &v, NULL));
  ASSERT(v == 1);
  sq_metric_add(g, NULL, 3);
  sq_metric_add(g, NULL, -5); /* gauges do */
  ASSERT_OK(sq_metric_get(g, NULL, &v, NULL));
  ASSERT(v == -2);
  /* NULL family: no crash, nothing happens. */
  sq_metric_inc(NULL, NULL);
  sq_metric_set(NULL, NULL, 1);
  sq_metric_observe(NULL, NULL, 1);
  ASSERT_EQ(sq_metric_get(NULL, NULL, &v, NULL), -1);
  sq_metrics_free(r);
}

TEST(series_cap_and_label_truncation) {
  sq_metrics *r = NULL;
  ASSERT_OK(sq_metrics_new(3, &r));
  sq_metric *c = NULL;
  const char *l[] = {"id", NULL};
  ASSERT_OK(sq_metrics_register(r, SQ_METRIC_COUNTER, "c_total", "", l, NULL, 0, &c, NULL));
  char id[32];
  for(int i = 0; i < 10; i++) {
    snprintf(id, sizeof id, "item-%d", i);
    sq_metric_inc(c, (const char *[]){id});
  }
  ASSERT_EQ(sq_metrics_series_count(r), 3);
  ASSERT_EQ(sq_metrics_dropped(r), 7);
  /* Existing series keep working at the cap; new ones stay dropped. */
  sq_metric_inc(c, (const char *[]){"item-0"});
  sq_metric_inc(c, (const char *[]){"item-9"});
  double v = 0;
  ASSERT_OK(sq_metric_get(c, (const char *[]){"item-0"}, &v, NULL));
  ASSERT(v == 2);
  ASSERT_EQ(sq_metric_get(c, (const char *[]){"item-9"}, &v, NULL), -1);
  ASSERT_EQ(sq_metrics_dropped(r), 8);
  char *text = render(r);
  ASSERT_STR_CONTAINS(text, "sqltde_metrics_dropped_series_total 8\n");
  ASSERT(strstr(text, "item-3") == NULL);
  free(text);
  sq_metrics_free(r);

  /* Long label values are cut at SQ_METRICS_LABEL_VALUE_MAX bytes. */
  ASSERT_OK(sq_metrics_new(0, &r));
  ASSERT_OK(sq_metrics_register(r, SQ_METRIC_COUNTER, "c_total", "", l, NULL, 0, &c, NULL));
  char a[400], b[400];
  memset(a, 'a', sizeof a - 1);
  a[sizeof a - 1] = '\0';
  memcpy(b, a, sizeof b);
  b[300] = 'b'; /* differs only past the cut */
  sq_metric_inc(c, (const char *[]){a});
  sq_metric_inc(c, (const char *[]){b});
  ASSERT_EQ(sq_metrics_series_count(r), 1);
  ASSERT_OK(sq_metric_get(c, (const char *[]){a}, &v, NULL));
  ASSERT(v == 2);
  text = render(r);
  char want[SQ_METRICS_LABEL_VALUE_MAX + 32];
  snprintf(want, sizeof want, "c_total{id=\"%.*s\"} 2\n", SQ_METRICS_LABEL_VALUE_MAX, a);
  ASSERT_STR_CONTAINS(text, want);
  free(text);
  /* Label values that only differ in where they split stay distinct. */
  sq_metric *two = NULL;
  const char *l2[] = {"x", "y", NULL};
  ASSERT_OK(sq_metrics_register(r, SQ_METRIC_COUNTER, "two_total", "", l2, NULL, 0, &two, NULL));
  sq_metric_inc(two, (const char *[]){"ab", ""});
  sq_metric_inc(two, (const char *[]){"a", "b"});
  ASSERT_OK(sq_metric_get(two, (const char *[]){"ab", ""}, &v, NULL));
  ASSERT(v == 1);
  ASSERT_OK(sq_metric_get(two, (const char *[]){"a", "b"}, &v, NULL));
  ASSERT(v == 1);
  sq_metrics_free(r);
}

typedef struct hammer {
  sq_metric *c, *h, *g;
  sq_metrics *r;
  int id;
  int renders;
} hammer;

enum { HAMMER_THREADS = 6, HAMMER_N = 20000 };

static void *hammer_main(void *arg) {
  hammer *hm = arg;
  char own[16];
  snprintf(own, sizeof own, "t%d", hm->id);
  for(int i = 0; i < HAMMER_N; i++) {
    sq_metric_inc(hm->c, (const char *[]){"shared"});
    sq_metric_inc(hm->c, (const char *[]){own});
    sq_metric_observe(hm->h, (const char *[]){"shared"}, (i % 100) / 100.0);
    sq_metric_add(hm->g, NULL, i % 2 ? -1 : 1);
  }
  return NULL;
}

static void *render_main(void *arg) {
  hammer *hm = arg;
  for(int i = 0; i < 50; i++) {
    char *t = render(hm->r);
    if(t && strstr(t, "hammer_total"))
      hm->renders++;
    free(t);
  }
  return NULL;
}

TEST(concurrency_smoke) {
  sq_metrics *r = NULL;
  ASSERT_OK(sq_metrics_new(0, &r));
  hammer base = {.r = r};
  const char *l[] = {"who", NULL};
  ASSERT_OK(sq_metrics_register(r, SQ_METRIC_COUNTER, "hammer_total", "", l, NULL, 0, &base.c,
                                NULL));
  ASSERT_OK(sq_metrics_register(r, SQ_METRIC_HISTOGRAM, "hammer_seconds", "", l, NULL, 0, &base.h,
                                NULL));
  ASSERT_OK(sq_metrics_register(r, SQ_METRIC_GAUGE, "hammer_level", "", NULL, NULL, 0, &base.g,
                                NULL));
  pthread_t th[HAMMER_THREADS + 1];
  hammer hs[HAMMER_THREADS + 1];
  for(int i = 0; i < HAMMER_THREADS; i++) {
    hs[i] = base;
    hs[i].id = i;
    ASSERT_OK(pthread_create(&th[i], NULL, hammer_main, &hs[i]));
  }
  hs[HAMMER_THREADS] = base;
  ASSERT_OK(pthread_create(&th[HAMMER_THREADS], NULL, render_main, &hs[HAMMER_THREADS]));
  for(int i = 0; i <= HAMMER_THREADS; i++)
    pthread_join(th[i], NULL);
  double v = 0;
  uint64_t n = 0;
  ASSERT_OK(sq_metric_get(base.c, (const char *[]){"shared"}, &v, NULL));
  ASSERT(v == (double)HAMMER_THREADS * HAMMER_N);
  for(int i = 0; i < HAMMER_THREADS; i++) {
    char own[16];
    snprintf(own, sizeof own, "t%d", i);
    ASSERT_OK(sq_metric_get(base.c, (const char *[]){own}, &v, NULL));
    ASSERT(v == HAMMER_N);
  }
  ASSERT_OK(sq_metric_get(base.h, (const char *[]){"shared"}, &v, &n));
  ASSERT_EQ(n, (uint64_t)HAMMER_THREADS * HAMMER_N);
  ASSERT_OK(sq_metric_get(base.g, NULL, &v, NULL));
  ASSERT(v == 0);
  ASSERT_EQ(hs[HAMMER_THREADS].renders, 50);
  ASSERT_EQ(sq_metrics_series_count(r), 1 + HAMMER_THREADS + 1);
  sq_metrics_free(r);
}

/* ---- the operator's families ------------------------------------------ */

static double get(const char *family, const char *const *values, uint64_t *count) {
  double v = -1;
  sq_metric *m = sq_metrics_find(sq_metrics_global(), family);
  if(!m || sq_metric_get(m, values, &v, count))
    return -1;
  return v;
}

TEST(operator_helpers) {
  sq_metrics *g = sq_metrics_global();
  ASSERT_NOT_NULL(g);
  ASSERT(sq_metrics_global() == g);

  sq_metrics_controller_init("sqldatabase", 4);
  char *text = render(g);
  ASSERT_STR_CONTAINS(text, "# TYPE controller_runtime_reconcile_total counter\n");
  ASSERT_STR_CONTAINS(text, "controller_runtime_reconcile_total{controller=\"sqldatabase\","
                            "result=\"requeue_after\"} 0\n");
  ASSERT_STR_CONTAINS(text,
                      "controller_runtime_max_concurrent_reconciles{controller=\"sqldatabase\"} 4\n");
  ASSERT_STR_CONTAINS(text, "controller_runtime_active_workers{controller=\"sqldatabase\"} 0\n");
  ASSERT_STR_CONTAINS(text, "controller_runtime_reconcile_errors_total{controller=\"sqldatabase\"} 0\n");
  free(text);

  sq_metrics_active_workers_add("sqldatabase", 1);
  sq_metrics_reconcile("sqldatabase", SQ_RECONCILE_SUCCESS, 0.02);
  sq_metrics_reconcile("sqldatabase", SQ_RECONCILE_ERROR, 0.3);
  sq_metrics_reconcile("sqldatabase", SQ_RECONCILE_REQUEUE_AFTER, 1.5);
  ASSERT(get("controller_runtime_reconcile_total", (const char *[]){"sqldatabase", "success"},
             NULL) == 1);
  ASSERT(get("controller_runtime_reconcile_total", (const char *[]){"sqldatabase", "error"},
             NULL) == 1);
  ASSERT(get("controller_runtime_reconcile_total", (const char *[]){"sqldatabase", "requeue"},
             NULL) == 0);
  ASSERT(get("controller_runtime_reconcile_errors_total", (const char *[]){"sqldatabase"}, NULL) ==
         1);
  ASSERT(get("controller_runtime_active_workers", (const char *[]){"sqldatabase"}, NULL) == 1);
  uint64_t n = 0;
  ASSERT(get("controller_runtime_reconcile_time_seconds", (const char *[]){"sqldatabase"}, &n) ==
         0.02 + 0.3 + 1.5);
  ASSERT_EQ(n, 3);
  text = render(g);
  /* controller-runtime's bucket layout. */
  ASSERT_STR_CONTAINS(text, "controller_runtime_reconcile_time_seconds_bucket{controller="
                            "\"sqldatabase\",le=\"0.025\"} 1\n");
  ASSERT_STR_CONTAINS(text, "controller_runtime_reconcile_time_seconds_bucket{controller="
                            "\"sqldatabase\",le=\"60\"} 3\n");
  free(text);
  ASSERT_STR_EQ(sq_reconcile_outcome_name(SQ_RECONCILE_REQUEUE), "requeue");

  sq_metrics_workqueue_init("sqldatabase");
  sq_metrics_workqueue_add("sqldatabase");
  sq_metrics_workqueue_add("sqldatabase");
  sq_metrics_workqueue_retry("sqldatabase");
  sq_metrics_workqueue_depth("sqldatabase", 7);
  sq_metrics_workqueue_queue_duration("sqldatabase", 0.001);
  sq_metrics_workqueue_work_duration("sqldatabase", 2);
  sq_metrics_workqueue_unfinished("sqldatabase", 12.5, 9);
  ASSERT(get("workqueue_adds_total", (const char *[]){"sqldatabase"}, NULL) == 2);
  ASSERT(get("workqueue_retries_total", (const char *[]){"sqldatabase"}, NULL) == 1);
  ASSERT(get("workqueue_depth", (const char *[]){"sqldatabase"}, NULL) == 7);
  ASSERT(get("workqueue_unfinished_work_seconds", (const char *[]){"sqldatabase"}, NULL) == 12.5);
  ASSERT(get("workqueue_longest_running_processor_seconds", (const char *[]){"sqldatabase"},
             NULL) == 9);
  text = render(g);
  ASSERT_STR_CONTAINS(text, "workqueue_queue_duration_seconds_bucket{name=\"sqldatabase\","
                            "le=\"1e-08\"} 0\n");
  ASSERT_STR_CONTAINS(text, "workqueue_queue_duration_seconds_bucket{name=\"sqldatabase\","
                            "le=\"0.001\"} 1\n");
  ASSERT_STR_CONTAINS(text, "workqueue_work_duration_seconds_count{name=\"sqldatabase\"} 1\n");
  free(text);

  sq_metrics_leader("sqltde-operator-lock", 1);
  ASSERT(get("leader_election_master_status", (const char *[]){"sqltde-operator-lock"}, NULL) == 1);
  sq_metrics_leader("sqltde-operator-lock", 0);
  ASSERT(get("leader_election_master_status", (const char *[]){"sqltde-operator-lock"}, NULL) == 0);

  sq_metrics_azure_request("arm", "databases.get", "Microsoft.Sql/servers/databases", 200, 0.05);
  sq_metrics_azure_request("arm", "databases.get", "Microsoft.Sql/servers/databases", 429, 0.01);
  sq_metrics_azure_request("keyvault", "keys.wrap", "keys", 0, 10);
  ASSERT(get("sqltde_azure_requests_total",
             (const char *[]){"arm", "databases.get", "Microsoft.Sql/servers/databases", "429"},
             NULL) == 1);
  ASSERT(get("sqltde_azure_requests_total",
             (const char *[]){"keyvault", "keys.wrap", "keys", "<error>"}, NULL) == 1);
  ASSERT(get("sqltde_azure_request_duration_seconds", (const char *[]){"arm", "databases.get"},
             &n) == 0.05 + 0.01);
  ASSERT_EQ(n, 2);
  text = render(g);
  ASSERT_STR_CONTAINS(text, "sqltde_azure_requests_total{service=\"keyvault\",operation="
                            "\"keys.wrap\",resource_type=\"keys\",code=\"<error>\"} 1\n");
  ASSERT_STR_CONTAINS(text, "# TYPE sqltde_azure_request_duration_seconds histogram\n");
  free(text);
}

TEST_MAIN()
