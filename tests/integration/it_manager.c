/* Integration tests of the controller engine (kube/manager.h) against the real
 * local apiserver: objects reach the reconciler through informers and the work
 * queue; results drive requeues exactly as controller-runtime's switch does;
 * secondary watches map to primary keys; one key never runs on two workers;
 * leader election gates the workers; stop is clean. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kubetest.h"
#include "sqltde/clock.h"
#include "sqltde/jsonx.h"
#include "sqltde/kube/manager.h"
#include "sqltde/server/metrics.h"
#include "test.h"

static const sq_kube_gvr GADGETS = {"mgrtest.sqltde.io", "v1", "gadgets", "Gadget", 1};
static const sq_kube_gvr CONFIGMAPS = {"", "v1", "configmaps", "ConfigMap", 1};

#define MAXK 256
typedef struct tally {
  pthread_mutex_t mu;
  char keys[MAXK][64];
  int calls[MAXK];
  int inflight[MAXK];
  int max_inflight;
  int64_t first_ms[MAXK], last_ms[MAXK];
  sq_kube *kube;
} tally;

static tally T = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int slot(const char *key) {
  for(int i = 0; i < MAXK; i++) {
    if(!T.keys[i][0]) {
      snprintf(T.keys[i], sizeof T.keys[i], "%s", key);
      return i;
    }
    if(!strcmp(T.keys[i], key))
      return i;
  }
  return MAXK - 1;
}

static int calls_of(const char *key) {
  pthread_mutex_lock(&T.mu);
  int n = 0;
  for(int i = 0; i < MAXK; i++)
    if(!strcmp(T.keys[i], key))
      n = T.calls[i];
  pthread_mutex_unlock(&T.mu);
  return n;
}

/* Reconciler: behaviour chosen by the object's spec.mode, read from the
 * apiserver's current state (as a real reconciler reads its cache). */
static sq_reconcile_result reconcile(void *ud, const sq_reconcile_req *req) {
  (void)ud;
  pthread_mutex_lock(&T.mu);
  int s = slot(req->key);
  T.calls[s]++;
  T.inflight[s]++;
  if(T.inflight[s] > T.max_inflight)
    T.max_inflight = T.inflight[s];
  if(!T.first_ms[s])
    T.first_ms[s] = sq_mono_ms();
  T.last_ms[s] = sq_mono_ms();
  pthread_mutex_unlock(&T.mu);

  usleep(20 * 1000); /* long enough for a concurrent duplicate to show up */
  json_t *obj = NULL;
  sq_reconcile_result r = {0};
  if(sq_kube_get(T.kube, &GADGETS, req->ns, req->name, &obj, NULL) == SQ_OK) {
    const char *mode = sq_json_str(obj, "spec.mode");
    if(mode && !strcmp(mode, "fail"))
      r.err = SQ_ESERVER;
    else if(mode && !strcmp(mode, "terminal")) {
      r.err = SQ_EINVAL;
      r.terminal = 1;
    } else if(mode && !strcmp(mode, "after"))
      r.requeue_after_ms = 300;
  }
  json_decref(obj);
  pthread_mutex_lock(&T.mu);
  T.inflight[s]--;
  pthread_mutex_unlock(&T.mu);
  return r;
}

/* data.gadget names one gadget; data.fanout=N names fan-0 .. fan-(N-1), as a
 * VaultKey used by thousands of databases does. */
static void map_cm(void *ud, const json_t *obj, sq_map_out *out) {
  (void)ud;
  const char *ns = sq_json_str(obj, "metadata.namespace");
  if(!ns)
    return;
  sq_map_emit(out, ns, sq_json_str(obj, "data.gadget"));
  const char *fan = sq_json_str(obj, "data.fanout");
  for(int i = 0, n = fan ? atoi(fan) : 0; i < n; i++) {
    char name[32];
    snprintf(name, sizeof name, "fan-%d", i);
    sq_map_emit(out, ns, name);
  }
}

static void create_gadget(const char *ns, const char *name, const char *mode) {
  json_t *o = json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:s}}", "apiVersion", "mgrtest.sqltde.io/v1", "kind",
                        "Gadget", "metadata", "name", name, "namespace", ns, "spec", "mode", mode);
  sq_err e;
  if(sq_kube_create(kt_admin(), &GADGETS, ns, o, NULL, &e))
    TEST_FAIL_("create gadget %s: %s", name, e.message);
  json_decref(o);
}

typedef struct runner {
  sq_manager *m;
  atomic_int stop;
  sq_code rc;
  sq_err err;
  pthread_t th;
} runner;

static void *run_thread(void *arg) {
  runner *r = arg;
  r->rc = sq_manager_run(r->m, &r->stop, &r->err);
  return NULL;
}

static sq_kube *new_client(void) {
  sq_kube_config cfg;
  sq_kube *k = NULL;
  sq_err e;
  ASSERT_OK(sq_kube_config_load_file(getenv("KUBECONFIG"), NULL, &cfg, &e));
  ASSERT_OK(sq_kube_new(&cfg, &k, &e));
  sq_kube_config_free(&cfg);
  return k;
}

static int manager_ready(void *ud) { return sq_manager_ready(ud); }

typedef struct keywant {
  const char *key;
  int n;
} keywant;
static int has_calls(void *ud) {
  keywant *w = ud;
  return calls_of(w->key) >= w->n;
}

TEST(reconcile_results_drive_requeues) {
  kt_install_crd(&GADGETS);
  kt_ensure_ns("mgr1");
  sq_kube *k = new_client();
  T.kube = k;
  sq_manager *m;
  sq_manager_opts mo = {.namespace = "mgr1"};
  sq_err e;
  ASSERT_OK(sq_manager_new(k, &mo, &m, &e));
  sq_controller *c;
  ASSERT_OK(sq_manager_add_controller(m, "gadget", &GADGETS, 3, reconcile, NULL, &c, &e));
  ASSERT_OK(sq_controller_watch(c, m, &CONFIGMAPS, map_cm, NULL, &e));

  create_gadget("mgr1", "ok", "ok");
  create_gadget("mgr1", "fail", "fail");
  create_gadget("mgr1", "after", "after");
  create_gadget("mgr1", "terminal", "terminal");

  runner r = {.m = m};
  ASSERT_OK(pthread_create(&r.th, NULL, run_thread, &r));
  ASSERT(kt_wait(manager_ready, m, 60000));

  keywant w_after = {"mgr1/after", 5};
  ASSERT(kt_wait(has_calls, &w_after, 20000)); /* requeue_after 300 ms: comes back repeatedly */
  keywant w_fail = {"mgr1/fail", 4};
  ASSERT(kt_wait(has_calls, &w_fail, 20000)); /* errors retry with backoff */
  usleep(500 * 1000);
  ASSERT_EQ(calls_of("mgr1/ok"), 1);       /* success: reconciled once, not again */
  ASSERT_EQ(calls_of("mgr1/terminal"), 1); /* terminal error: no retry */

  /* backoff grows: 5 ms * 2^n, so after ~1 s of failures the retries thin out */
  int before = calls_of("mgr1/fail");
  usleep(1000 * 1000);
  int after = calls_of("mgr1/fail");
  ASSERT_LT(after - before, 10);

  /* a mapped secondary (ConfigMap naming a gadget) re-queues that gadget */
  json_t *cm = json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:s}}", "apiVersion", "v1", "kind", "ConfigMap", "metadata",
                         "name", "points-at-ok", "namespace", "mgr1", "data", "gadget", "ok");
  ASSERT_OK(sq_kube_create(kt_admin(), &CONFIGMAPS, "mgr1", cm, NULL, &e));
  json_decref(cm);
  keywant w_ok = {"mgr1/ok", 2};
  ASSERT(kt_wait(has_calls, &w_ok, 20000));

  /* one secondary naming many primaries wakes every one of them */
  cm = json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:s}}", "apiVersion", "v1", "kind", "ConfigMap", "metadata", "name",
                 "fans-out", "namespace", "mgr1", "data", "fanout", "150");
  ASSERT_OK(sq_kube_create(kt_admin(), &CONFIGMAPS, "mgr1", cm, NULL, &e));
  json_decref(cm);
  keywant w_first = {"mgr1/fan-0", 1}, w_last = {"mgr1/fan-149", 1};
  ASSERT(kt_wait(has_calls, &w_first, 20000));
  ASSERT(kt_wait(has_calls, &w_last, 20000));

  /* a change to the primary re-queues it */
  json_t *patch = json_pack("{s:{s:s}}", "spec", "mode", "ok2");
  ASSERT_OK(sq_kube_merge_patch(kt_admin(), &GADGETS, "mgr1", "terminal", NULL, patch, NULL, &e));
  json_decref(patch);
  keywant w_term = {"mgr1/terminal", 2};
  ASSERT(kt_wait(has_calls, &w_term, 20000));

  /* the "after" key keeps getting re-queued while 3 workers run: never two at once */
  ASSERT_EQ(T.max_inflight, 1);

  /* the engine fed the controller-runtime and workqueue metric families */
  sq_buf text;
  sq_buf_init(&text, 4 << 20);
  ASSERT_OK(sq_metrics_render(sq_metrics_global(), &text));
  ASSERT_STR_CONTAINS(text.ptr, "controller_runtime_reconcile_total{controller=\"gadget\",result=\"requeue_after\"}");
  ASSERT_STR_CONTAINS(text.ptr, "workqueue_queue_duration_seconds_count{name=\"gadget\"}");
  ASSERT(!strstr(text.ptr, "workqueue_queue_duration_seconds_count{name=\"gadget\"} 0\n"));
  ASSERT(!strstr(text.ptr, "workqueue_work_duration_seconds_count{name=\"gadget\"} 0\n"));
  ASSERT(!strstr(text.ptr, "controller_runtime_reconcile_total{controller=\"gadget\",result=\"error\"} 0\n"));
  sq_buf_free(&text);

  atomic_store(&r.stop, 1);
  pthread_join(r.th, NULL);
  ASSERT_EQ(r.rc, SQ_OK);
  int frozen = calls_of("mgr1/after");
  usleep(600 * 1000);
  ASSERT_EQ(calls_of("mgr1/after"), frozen); /* stopped means stopped */
  sq_manager_free(m);
  sq_kube_free(k);
}

TEST(leader_election_gates_workers) {
  kt_install_crd(&GADGETS);
  kt_ensure_ns("mgr2");
  create_gadget("mgr2", "led", "ok");
  sq_kube *k = new_client();
  T.kube = k;
  sq_manager *m;
  sq_manager_opts mo = {.namespace = "mgr2",
                        .leader_elect = 1,
                        .leader_election_id = "mgr-test",
                        .leader_election_ns = "mgr2",
                        .lease_duration_ms = 3000,
                        .renew_deadline_ms = 2000,
                        .retry_period_ms = 500};
  sq_err e;
  ASSERT_OK(sq_manager_new(k, &mo, &m, &e));
  sq_controller *c;
  ASSERT_OK(sq_manager_add_controller(m, "gadget", &GADGETS, 1, reconcile, NULL, &c, &e));
  runner r = {.m = m};
  ASSERT_OK(pthread_create(&r.th, NULL, run_thread, &r));
  keywant w = {"mgr2/led", 1};
  ASSERT(kt_wait(has_calls, &w, 30000));
  ASSERT(sq_manager_is_leader(m));
  static const sq_kube_gvr LEASES = {"coordination.k8s.io", "v1", "leases", "Lease", 1};
  json_t *lease = NULL;
  ASSERT_OK(sq_kube_get(kt_admin(), &LEASES, "mgr2", "mgr-test", &lease, &e));
  ASSERT_NOT_NULL(sq_json_str(lease, "spec.holderIdentity"));
  ASSERT(strlen(sq_json_str(lease, "spec.holderIdentity")) > 0);
  json_decref(lease);
  atomic_store(&r.stop, 1);
  pthread_join(r.th, NULL);
  ASSERT_EQ(r.rc, SQ_OK);
  /* released on clean stop: holder emptied so a successor need not wait */
  ASSERT_OK(sq_kube_get(kt_admin(), &LEASES, "mgr2", "mgr-test", &lease, &e));
  const char *holder = sq_json_str(lease, "spec.holderIdentity");
  ASSERT(!holder || !*holder);
  json_decref(lease);
  sq_manager_free(m);
  sq_kube_free(k);
}

TEST_MAIN()
