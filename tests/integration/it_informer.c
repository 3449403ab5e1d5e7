/* it_informer.c — the informer against a real kube-apiserver + etcd.
 *
 * Run through tests/integration/with-cluster.sh, which exports KUBECONFIG and
 * SQLTDE_CLUSTER_DIR (the cluster's env file gives ETCDCTL_ENDPOINTS). The
 * tests kill and restart that apiserver (tests/cluster/kill-apiserver.sh and
 * start-apiserver.sh) and compact its etcd, so they must own the cluster. Each
 * test works in its own namespace on a test CRD (widgets.informer.sqltde.io)
 * so they do not see each other's objects. */
#include <pthread.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sqltde/clock.h"
#include "sqltde/http.h"
#include "sqltde/jsonx.h"
#include "sqltde/kube/client.h"
#include "sqltde/kube/informer.h"
#include "sqltde/log.h"
#include "test.h"

static const sq_kube_gvr WIDGETS = {"informer.sqltde.io", "v1", "widgets", "Widget", 1};
static const sq_kube_gvr NAMESPACES = {"", "v1", "namespaces", "Namespace", 0};
static const sq_kube_gvr CONFIGMAPS = {"", "v1", "configmaps", "ConfigMap", 1};

#define WAIT_MS 60000 /* generous: CI machines are slow and shared */

/* ---- environment ---------------------------------------------------------------- */

static sq_kube *g_kube;

static const char *cluster_dir(void) {
  const char *d = getenv("SQLTDE_CLUSTER_DIR");
  if(!d || !*d)
    TEST_FAIL_("SQLTDE_CLUSTER_DIR is not set (run through with-cluster.sh)");
  return d;
}

/* tests/cluster/, from SQLTDE_SOURCE_DIR or else from this file's path. */
static void script_path(char *out, size_t n, const char *script) {
  const char *src = getenv("SQLTDE_SOURCE_DIR");
  if(src && *src) {
    snprintf(out, n, "%s/tests/cluster/%s", src, script);
  } else {
    snprintf(out, n, "%s", __FILE__);
    char *slash = strrchr(out, '/');
    if(slash)
      *slash = '\0';
    size_t len = strlen(out);
    snprintf(out + len, n - len, "/../cluster/%s", script);
  }
}

/* Runs a shell command; returns its exit status. */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
  char cmd[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  int st = system(cmd);
  return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void apiserver_kill(void) {
  char p[1024];
  script_path(p, sizeof p, "kill-apiserver.sh");
  ASSERT_EQ(sh("'%s' --kill '%s'", p, cluster_dir()), 0);
}

static void apiserver_start(void) {
  char p[1024];
  script_path(p, sizeof p, "start-apiserver.sh");
  ASSERT_EQ(sh("'%s' '%s'", p, cluster_dir()), 0);
}

/* Compacts etcd's history up to its current revision: every watch from an
 * older resourceVersion is then answered 410 Gone. */
static void etcd_compact_now(void) {
  ASSERT_EQ(sh(". '%s/env' && rev=$(etcdctl endpoint status -w json | "
               "sed -n 's/.*\"revision\":\\([0-9]*\\).*/\\1/p') && [ -n \"$rev\" ] && "
               "etcdctl compact \"$rev\" >/dev/null",
               cluster_dir()),
            0);
}

static sq_kube *kube(void) {
  if(g_kube)
    return g_kube;
  sq_kube_config cfg;
  sq_err err;
  sq_http_global_init();
  memset(&cfg, 0, sizeof cfg);
  if(sq_kube_config_default(NULL, &cfg, &err))
    TEST_FAIL_("kubeconfig: %s", err.message);
  if(sq_kube_new(&cfg, &g_kube, &err))
    TEST_FAIL_("client: %s", err.message);
  sq_kube_config_free(&cfg);
  return g_kube;
}

/* Retries transient failures: right after an apiserver restart the client's
 * pooled connections are dead, and the CRD endpoint may need a moment. */
#define RETRYING(call)                                                                    \
  do {                                                                                    \
    sq_code rc_;                                                                          \
    int64_t until_ = sq_mono_ms() + WAIT_MS;                                              \
    while((rc_ = (call)) && sq_code_retryable(rc_) && sq_mono_ms() < until_)              \
      sq_sleep_ms(250);                                                                   \
    if(rc_)                                                                               \
      TEST_FAIL_("%s: %s (%s)", #call, sq_code_name(rc_), err.message);                  \
  } while(0)

static void ensure_namespace(const char *ns) {
  sq_err err;
  json_t *o = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "v1", "kind", "Namespace",
                        "metadata", "name", ns);
  sq_code rc = sq_kube_create(kube(), &NAMESPACES, NULL, o, NULL, &err);
  json_decref(o);
  if(rc && rc != SQ_ECONFLICT)
    TEST_FAIL_("create namespace %s: %s", ns, err.message);
}

static void ensure_crd(void) {
  static int done;
  sq_err err;
  if(done)
    return;
  const char *crd =
      "{\"apiVersion\":\"apiextensions.k8s.io/v1\",\"kind\":\"CustomResourceDefinition\","
      "\"metadata\":{\"name\":\"widgets.informer.sqltde.io\"},"
      "\"spec\":{\"group\":\"informer.sqltde.io\",\"scope\":\"Namespaced\","
      "\"names\":{\"plural\":\"widgets\",\"singular\":\"widget\",\"kind\":\"Widget\","
      "\"listKind\":\"WidgetList\"},"
      "\"versions\":[{\"name\":\"v1\",\"served\":true,\"storage\":true,"
      "\"schema\":{\"openAPIV3Schema\":{\"type\":\"object\","
      "\"x-kubernetes-preserve-unknown-fields\":true}}}]}}";
  json_t *o = NULL;
  ASSERT_OK(sq_json_parse(crd, strlen(crd), "crd", &o, &err));
  sq_code rc =
      sq_kube_request(kube(), "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                      "application/json", o, NULL, &err);
  json_decref(o);
  if(rc && rc != SQ_ECONFLICT)
    TEST_FAIL_("create CRD: %s", err.message);
  /* Established, then actually served */
  int64_t until = sq_mono_ms() + WAIT_MS;
  for(;;) {
    json_t *l = NULL;
    ensure_namespace("default");
    if(!sq_kube_list(kube(), &WIDGETS, "default", NULL, 0, &l, &err)) {
      json_decref(l);
      break;
    }
    if(sq_mono_ms() > until)
      TEST_FAIL_("CRD not served: %s", err.message);
    sq_sleep_ms(200);
  }
  done = 1;
}

static json_t *widget(const char *name, int size, const char *label) {
  json_t *o = json_pack(
      "{s:s, s:s, s:{s:s, s:{s:s}}, s:{s:i, s:[s,s,s]}}", "apiVersion", "informer.sqltde.io/v1",
      "kind", "Widget", "metadata", "name", name, "annotations",
      "kubectl.kubernetes.io/last-applied-configuration",
      "{\"apiVersion\":\"informer.sqltde.io/v1\",\"kind\":\"Widget\",\"spec\":{\"size\":1}}",
      "spec", "size", size, "keys", "https://v1.vault.azure.net/keys/k/0001",
      "https://v1.vault.azure.net/keys/k/0002", "https://v1.vault.azure.net/keys/k/0003");
  if(label)
    json_object_set_new(json_object_get(o, "metadata"), "labels",
                        json_pack("{s:s}", "app", label));
  return o;
}

static void create_widget(const char *ns, const char *name, int size, const char *label) {
  sq_err err;
  json_t *o = widget(name, size, label);
  RETRYING(sq_kube_create(kube(), &WIDGETS, ns, o, NULL, &err));
  json_decref(o);
}

static void patch_widget(const char *ns, const char *name, int size) {
  sq_err err;
  json_t *p = json_pack("{s:{s:i}}", "spec", "size", size);
  RETRYING(sq_kube_merge_patch(kube(), &WIDGETS, ns, name, NULL, p, NULL, &err));
  json_decref(p);
}

static void delete_widget(const char *ns, const char *name) {
  sq_err err;
  RETRYING(sq_kube_delete(kube(), &WIDGETS, ns, name, &err));
}

/* ---- recorded handler calls ------------------------------------------------------ */

typedef struct ev {
  char type; /* 'A' add, 'U' update, 'R' resync, 'D' delete, 'X' delete with unknown state */
  char key[128];
  char rv[32];
  int size; /* spec.size of the new (or deleted) object */
} ev;

typedef struct rec {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  ev evs[4096];
  size_t n;
  int unstripped; /* objects that reached a handler with managedFields/last-applied */
  int bad_update; /* updates whose old and new keys differ */
  /* gate: block the informer thread in on_update of gate_key until opened */
  char gate_key[128];
  int gate_blocked, gate_open;
} rec;

static void rec_init(rec *r) {
  memset(r, 0, sizeof *r);
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cv, NULL);
}

static void rec_add(rec *r, char type, const json_t *o) {
  char key[SQ_CACHE_KEY_MAX] = "";
  sq_cache_key_of(o, key, sizeof key, NULL);
  const json_t *md = json_object_get(o, "metadata");
  pthread_mutex_lock(&r->mu);
  if(json_object_get(md, "managedFields") ||
     json_object_get(json_object_get(md, "annotations"),
                     "kubectl.kubernetes.io/last-applied-configuration"))
    r->unstripped++;
  if(r->n < sizeof r->evs / sizeof r->evs[0]) {
    ev *e = &r->evs[r->n++];
    e->type = type;
    snprintf(e->key, sizeof e->key, "%s", key);
    snprintf(e->rv, sizeof e->rv, "%s", sq_json_str(o, "metadata.resourceVersion"));
    e->size = (int)sq_json_int(o, "spec.size", -1);
  }
  pthread_mutex_unlock(&r->mu);
}

static void h_add(void *ud, const json_t *o) { rec_add(ud, 'A', o); }

static void h_update(void *ud, const json_t *old_obj, const json_t *new_obj) {
  rec *r = ud;
  char k1[SQ_CACHE_KEY_MAX] = "", k2[SQ_CACHE_KEY_MAX] = "";
  sq_cache_key_of(old_obj, k1, sizeof k1, NULL);
  sq_cache_key_of(new_obj, k2, sizeof k2, NULL);
  if(strcmp(k1, k2)) {
    pthread_mutex_lock(&r->mu);
    r->bad_update++;
    pthread_mutex_unlock(&r->mu);
  }
  rec_add(r, old_obj == new_obj ? 'R' : 'U', new_obj);
  pthread_mutex_lock(&r->mu);
  if(r->gate_key[0] && !strcmp(r->gate_key, k2) && old_obj != new_obj) {
    r->gate_key[0] = '\0';
    r->gate_blocked = 1;
    pthread_cond_broadcast(&r->cv);
    while(!r->gate_open)
      pthread_cond_wait(&r->cv, &r->mu);
  }
  pthread_mutex_unlock(&r->mu);
}

static void h_delete(void *ud, const json_t *o, int unknown) {
  rec_add(ud, unknown ? 'X' : 'D', o);
}

/* Number of recorded events of type for key (key NULL = any). */
static int rec_count(rec *r, char type, const char *key) {
  int c = 0;
  pthread_mutex_lock(&r->mu);
  for(size_t i = 0; i < r->n; i++)
    if(r->evs[i].type == type && (!key || !strcmp(r->evs[i].key, key)))
      c++;
  pthread_mutex_unlock(&r->mu);
  return c;
}

/* The last recorded event for key of type, copied into out; 0 if found. */
static int rec_last(rec *r, char type, const char *key, ev *out) {
  int found = -1;
  pthread_mutex_lock(&r->mu);
  for(size_t i = r->n; i-- > 0;)
    if(r->evs[i].type == type && !strcmp(r->evs[i].key, key)) {
      *out = r->evs[i];
      found = 0;
      break;
    }
  pthread_mutex_unlock(&r->mu);
  return found;
}

#define WAIT_FOR(cond)                                                                    \
  do {                                                                                    \
    int64_t until_ = sq_mono_ms() + WAIT_MS;                                              \
    while(!(cond)) {                                                                      \
      if(sq_mono_ms() > until_)                                                           \
        TEST_FAIL_("timed out waiting for %s", #cond);                                    \
      sq_sleep_ms(50);                                                                    \
    }                                                                                     \
  } while(0)

static sq_informer *start_informer(rec *r, const char *ns, const char *selector,
                                   sq_informer_opts *extra) {
  sq_informer_opts o = extra ? *extra : (sq_informer_opts){0};
  sq_informer *inf;
  sq_err err;
  o.gvr = WIDGETS;
  o.namespace = ns;
  o.label_selector = selector;
  if(!o.backoff_max_ms)
    o.backoff_max_ms = 2000; /* reconnect quickly after a restart */
  ASSERT_OK(sq_informer_new(kube(), &o, &inf, &err));
  sq_informer_handlers h = {h_add, h_update, h_delete, r};
  ASSERT_OK(sq_informer_add_handlers(inf, &h, &err));
  ASSERT_OK(sq_informer_start(inf, &err));
  ASSERT_EQ(sq_informer_start(inf, &err), SQ_ESTATE);
  ASSERT_EQ(sq_informer_add_handlers(inf, &h, &err), SQ_ESTATE);
  ASSERT_OK(sq_informer_wait_for_sync(inf, WAIT_MS));
  ASSERT(sq_informer_has_synced(inf));
  return inf;
}

/* "key=rv\n" lines, sorted, for the cache and for a fresh LIST. */
static char *cache_view(sq_informer *inf) {
  char **keys;
  size_t n;
  sq_err err;
  sq_buf b;
  sq_buf_init(&b, 1 << 20);
  if(sq_cache_keys(sq_informer_cache(inf), &keys, &n, &err))
    return NULL;
  for(size_t i = 0; i < n; i++) {
    char rv[64] = "?";
    sq_cache_get_rv(sq_informer_cache(inf), keys[i], rv, sizeof rv);
    sq_buf_addf(&b, "%s=%s\n", keys[i], rv);
  }
  sq_cache_keys_free(keys);
  return sq_buf_detach(&b);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *server_view(const char *ns, const char *selector) {
  json_t *l = NULL;
  sq_err err;
  if(sq_kube_list(kube(), &WIDGETS, ns, selector, 0, &l, &err))
    return NULL;
  json_t *items = json_object_get(l, "items");
  size_t n = json_array_size(items);
  char **lines = calloc(n + 1, sizeof *lines);
  sq_buf b;
  sq_buf_init(&b, 1 << 20);
  for(size_t i = 0; i < n; i++) {
    json_t *it = json_array_get(items, i);
    char key[SQ_CACHE_KEY_MAX] = "";
    sq_cache_key_of(it, key, sizeof key, NULL);
    if(asprintf(&lines[i], "%s=%s\n", key, sq_json_str(it, "metadata.resourceVersion")) < 0)
      lines[i] = NULL;
  }
  qsort(lines, n, sizeof *lines, cmp_str);
  for(size_t i = 0; i < n; i++) {
    if(lines[i])
      sq_buf_adds(&b, lines[i]);
    free(lines[i]);
  }
  free(lines);
  json_decref(l);
  return sq_buf_detach(&b);
}

/* Polls until the cache holds exactly what a fresh LIST returns. */
static void wait_converged(sq_informer *inf, const char *ns, const char *selector) {
  int64_t until = sq_mono_ms() + WAIT_MS;
  for(;;) {
    char *c = cache_view(inf), *s = server_view(ns, selector);
    int same = c && s && !strcmp(c, s);
    if(same || sq_mono_ms() > until) {
      if(!same)
        fprintf(stderr, "cache:\n%s\nserver:\n%s\n", c ? c : "(null)", s ? s : "(null)");
      free(c);
      free(s);
      ASSERT(same);
      return;
    }
    free(c);
    free(s);
    sq_sleep_ms(100);
  }
}

static int64_t stop_ms(sq_informer *inf) {
  int64_t t0 = sq_mono_ms();
  sq_informer_stop(inf);
  int64_t ms = sq_mono_ms() - t0;
  printf("  stop took %lld ms\n", (long long)ms);
  return ms;
}

/* ---- tests --------------------------------------------------------------------- */

TEST(crud_is_seen_by_handlers_and_cache) {
  rec r;
  sq_err err;
  rec_init(&r);
  ensure_crd();
  ensure_namespace("inf-crud");
  ensure_namespace("inf-crud-other");
  create_widget("inf-crud", "w1", 1, NULL);
  create_widget("inf-crud", "w2", 2, NULL);
  create_widget("inf-crud", "w3", 3, NULL);
  create_widget("inf-crud-other", "elsewhere", 9, NULL);

  /* page size 2: the 3 existing objects take two LIST pages */
  sq_informer_opts o = {.page_size = 2};
  sq_informer *inf = start_informer(&r, "inf-crud", NULL, &o);
  sq_cache *c = sq_informer_cache(inf);
  sq_informer_stats st;
  sq_informer_stats_get(inf, &st);
  ASSERT_EQ(st.lists, 2);
  ASSERT_EQ(st.objects, 3);
  ASSERT_EQ(rec_count(&r, 'A', NULL), 3); /* the initial list came as adds, before sync */
  ASSERT_EQ(rec_count(&r, 'A', "inf-crud/w2"), 1);
  char rv[64];
  sq_informer_last_rv(inf, rv, sizeof rv);
  ASSERT(rv[0]);

  /* what is cached is stripped, and a copy */
  json_t *w1 = sq_cache_get(c, "inf-crud/w1");
  ASSERT_NOT_NULL(w1);
  ASSERT_EQ(sq_json_int(w1, "spec.size", 0), 1);
  ASSERT_STR_EQ(sq_json_str(w1, "kind"), "Widget");
  ASSERT_NULL(sq_json_path(w1, "metadata.managedFields"));
  ASSERT_NULL(sq_json_path(w1, "metadata.annotations"));
  ASSERT_NOT_NULL(sq_json_path(w1, "metadata.uid"));
  json_decref(w1);
  /* the server does keep managedFields: stripping is ours */
  json_t *live = NULL;
  ASSERT_OK(sq_kube_get(kube(), &WIDGETS, "inf-crud", "w1", &live, &err));
  ASSERT_NOT_NULL(sq_json_path(live, "metadata.managedFields"));
  json_decref(live);

  create_widget("inf-crud", "w4", 4, NULL);
  WAIT_FOR(rec_count(&r, 'A', "inf-crud/w4") == 1);
  json_t *w4 = sq_cache_get(c, "inf-crud/w4");
  ASSERT_NOT_NULL(w4); /* cache updated before the handler ran */
  json_decref(w4);

  patch_widget("inf-crud", "w1", 11);
  WAIT_FOR(rec_count(&r, 'U', "inf-crud/w1") == 1);
  ev e;
  ASSERT_OK(rec_last(&r, 'U', "inf-crud/w1", &e));
  ASSERT_EQ(e.size, 11);
  w1 = sq_cache_get(c, "inf-crud/w1");
  ASSERT_EQ(sq_json_int(w1, "spec.size", 0), 11);
  ASSERT_STR_EQ(sq_json_str(w1, "metadata.resourceVersion"), e.rv);
  json_decref(w1);

  delete_widget("inf-crud", "w2");
  WAIT_FOR(rec_count(&r, 'D', "inf-crud/w2") == 1);
  ASSERT_NULL(sq_cache_get(c, "inf-crud/w2"));
  ASSERT_EQ(rec_count(&r, 'X', NULL), 0);

  wait_converged(inf, "inf-crud", NULL);
  ASSERT_EQ(sq_cache_len(c), 3);
  ASSERT_EQ(rec_count(&r, 'A', "inf-crud-other/elsewhere"), 0);
  ASSERT_EQ(r.unstripped, 0);
  ASSERT_EQ(r.bad_update, 0);
  sq_informer_stats_get(inf, &st);
  ASSERT_GE(st.events, 3);
  ASSERT_EQ(st.relists, 0);
  ASSERT_EQ(st.watch_errors, 0);

  /* The watch is 5-10 minutes long: only cancellation makes this quick. */
  ASSERT_LT(stop_ms(inf), 10000);
  sq_informer_stop(inf); /* idempotent */
  ASSERT_EQ(sq_informer_wait_for_sync(inf, 10), SQ_OK);
  sq_informer_free(inf);
}

TEST(all_namespaces_with_label_selector) {
  rec r;
  rec_init(&r);
  ensure_crd();
  ensure_namespace("inf-sel-a");
  ensure_namespace("inf-sel-b");
  create_widget("inf-sel-a", "yes", 1, "sel-test");
  create_widget("inf-sel-a", "no", 1, "other");
  create_widget("inf-sel-b", "yes", 2, "sel-test");

  sq_informer *inf = start_informer(&r, NULL, "app=sel-test", NULL);
  sq_cache *c = sq_informer_cache(inf);
  ASSERT_EQ(sq_cache_len(c), 2);
  json_t *a = sq_cache_get(c, "inf-sel-a/yes"), *b = sq_cache_get(c, "inf-sel-b/yes");
  ASSERT_NOT_NULL(a);
  ASSERT_NOT_NULL(b);
  json_decref(a);
  json_decref(b);
  ASSERT_NULL(sq_cache_get(c, "inf-sel-a/no"));

  create_widget("inf-sel-b", "later", 3, "sel-test");
  create_widget("inf-sel-b", "later-other", 3, "other");
  WAIT_FOR(rec_count(&r, 'A', "inf-sel-b/later") == 1);
  wait_converged(inf, NULL, "app=sel-test");
  ASSERT_EQ(rec_count(&r, 'A', "inf-sel-b/later-other"), 0);
  ASSERT_EQ(sq_cache_len(c), 3);
  sq_informer_free(inf);
}

TEST(recovers_from_apiserver_restart) {
  rec r;
  rec_init(&r);
  ensure_crd();
  ensure_namespace("inf-restart");
  for(int i = 0; i < 5; i++) {
    char name[16];
    snprintf(name, sizeof name, "r%d", i);
    create_widget("inf-restart", name, i, NULL);
  }
  sq_informer *inf = start_informer(&r, "inf-restart", NULL, NULL);
  ASSERT_EQ(sq_cache_len(sq_informer_cache(inf)), 5);

  apiserver_kill(); /* SIGKILL: the watch connection drops mid-stream */
  sq_informer_stats st;
  /* the informer notices and keeps retrying while the server is down */
  WAIT_FOR((sq_informer_stats_get(inf, &st), st.watch_errors >= 2));
  apiserver_start();

  create_widget("inf-restart", "after", 10, NULL);
  patch_widget("inf-restart", "r1", 100);
  delete_widget("inf-restart", "r2");
  WAIT_FOR(rec_count(&r, 'A', "inf-restart/after") == 1);
  wait_converged(inf, "inf-restart", NULL);
  json_t *r1 = sq_cache_get(sq_informer_cache(inf), "inf-restart/r1");
  ASSERT_EQ(sq_json_int(r1, "spec.size", 0), 100);
  json_decref(r1);
  ASSERT_NULL(sq_cache_get(sq_informer_cache(inf), "inf-restart/r2"));
  /* r2's deletion arrives as a watch event, or (if the restart cost us the
   * history) as a relist's deletion with unknown final state */
  ASSERT_EQ(rec_count(&r, 'D', "inf-restart/r2") + rec_count(&r, 'X', "inf-restart/r2"), 1);
  ASSERT_EQ(r.unstripped, 0);
  ASSERT_LT(stop_ms(inf), 10000);
  sq_informer_free(inf);
}

TEST(compacted_history_relists) {
  rec r;
  sq_err err;
  rec_init(&r);
  ensure_crd();
  ensure_namespace("inf-gone");
  create_widget("inf-gone", "gate", 0, NULL);
  create_widget("inf-gone", "keep", 1, NULL);
  create_widget("inf-gone", "change", 2, NULL);
  create_widget("inf-gone", "vanish", 3, NULL);
  sq_informer *inf = start_informer(&r, "inf-gone", NULL, NULL);
  ASSERT_EQ(sq_cache_len(sq_informer_cache(inf)), 4);

  /* Hold the informer thread inside a handler so that its watch cannot move
   * on while the world changes behind it. */
  pthread_mutex_lock(&r.mu);
  snprintf(r.gate_key, sizeof r.gate_key, "inf-gone/gate");
  pthread_mutex_unlock(&r.mu);
  patch_widget("inf-gone", "gate", 1);
  pthread_mutex_lock(&r.mu);
  int64_t until = sq_mono_ms() + WAIT_MS;
  while(!r.gate_blocked && sq_mono_ms() < until) {
    struct timespec ts;
    sq_abstime_in(&ts, 100);
    pthread_cond_timedwait(&r.cv, &r.mu, &ts);
  }
  int blocked = r.gate_blocked;
  pthread_mutex_unlock(&r.mu);
  ASSERT(blocked);

  /* A write the informer cannot see (another resource) moves etcd past the
   * informer's resourceVersion, so that after the restart even the
   * apiserver's watch cache no longer reaches back to it. */
  json_t *cm = json_pack("{s:s, s:s, s:{s:s}, s:{s:s}}", "apiVersion", "v1", "kind", "ConfigMap",
                         "metadata", "name", "bump", "data", "k", "v");
  RETRYING(sq_kube_create(kube(), &CONFIGMAPS, "inf-gone", cm, NULL, &err));
  json_decref(cm);
  apiserver_kill();
  apiserver_start();
  /* changes the informer can only learn from a relist */
  create_widget("inf-gone", "new", 4, NULL);
  patch_widget("inf-gone", "change", 20);
  delete_widget("inf-gone", "vanish");
  etcd_compact_now();

  pthread_mutex_lock(&r.mu);
  r.gate_open = 1;
  pthread_cond_broadcast(&r.cv);
  pthread_mutex_unlock(&r.mu);

  sq_informer_stats st;
  WAIT_FOR((sq_informer_stats_get(inf, &st), st.relists >= 1));
  ASSERT_GE(st.gone, 1);
  wait_converged(inf, "inf-gone", NULL);
  /* the relist's synthetic events */
  ASSERT_EQ(rec_count(&r, 'A', "inf-gone/new"), 1);
  ev e;
  ASSERT_OK(rec_last(&r, 'U', "inf-gone/change", &e));
  ASSERT_EQ(e.size, 20);
  ASSERT_EQ(rec_count(&r, 'X', "inf-gone/vanish"), 1);
  ASSERT_EQ(rec_count(&r, 'D', "inf-gone/vanish"), 0);
  ASSERT_OK(rec_last(&r, 'X', "inf-gone/vanish", &e));
  ASSERT_EQ(e.size, 3); /* the last state the cache had */
  /* unchanged objects are not reported again */
  ASSERT_EQ(rec_count(&r, 'U', "inf-gone/keep"), 0);
  ASSERT_EQ(r.unstripped, 0);

  /* and it keeps watching afterwards */
  patch_widget("inf-gone", "keep", 10);
  WAIT_FOR(rec_count(&r, 'U', "inf-gone/keep") == 1);
  wait_converged(inf, "inf-gone", NULL);
  sq_informer_free(inf);
}

TEST(periodic_resync_redelivers) {
  rec r;
  rec_init(&r);
  ensure_crd();
  ensure_namespace("inf-resync");
  create_widget("inf-resync", "a", 1, NULL);
  create_widget("inf-resync", "b", 2, NULL);
  sq_informer_opts o = {.resync_ms = 1500};
  sq_informer *inf = start_informer(&r, "inf-resync", NULL, &o);
  sq_informer_stats st0, st;
  sq_informer_stats_get(inf, &st0);
  ASSERT_EQ(rec_count(&r, 'R', NULL), 0);
  WAIT_FOR(rec_count(&r, 'R', "inf-resync/a") >= 2 && rec_count(&r, 'R', "inf-resync/b") >= 2);
  sq_informer_stats_get(inf, &st);
  ASSERT_GE(st.resyncs, 2);
  ASSERT_EQ(st.lists, st0.lists); /* from the cache, not from the apiserver */
  ASSERT_EQ(st.relists, 0);
  ASSERT_EQ(rec_count(&r, 'U', NULL), 0); /* nothing changed for real */
  ev e;
  ASSERT_OK(rec_last(&r, 'R', "inf-resync/b", &e));
  ASSERT_EQ(e.size, 2);
  sq_informer_free(inf);
}

/* A core, cluster-scoped type: keys are bare names, and listed items (which
 * the apiserver sends without apiVersion/kind) get them filled in. */
TEST(core_cluster_scoped_type) {
  rec r;
  sq_err err;
  rec_init(&r);
  ensure_namespace("inf-core-before");
  sq_informer_opts o = {.gvr = NAMESPACES};
  sq_informer *inf;
  ASSERT_OK(sq_informer_new(kube(), &o, &inf, &err));
  sq_informer_handlers h = {h_add, h_update, h_delete, &r};
  ASSERT_OK(sq_informer_add_handlers(inf, &h, &err));
  ASSERT_OK(sq_informer_start(inf, &err));
  ASSERT_OK(sq_informer_wait_for_sync(inf, WAIT_MS));
  json_t *d = sq_cache_get(sq_informer_cache(inf), "inf-core-before");
  ASSERT_NOT_NULL(d);
  ASSERT_STR_EQ(sq_json_str(d, "kind"), "Namespace");
  ASSERT_STR_EQ(sq_json_str(d, "apiVersion"), "v1");
  json_decref(d);
  ASSERT_EQ(rec_count(&r, 'A', "kube-system"), 1);
  ensure_namespace("inf-core-after");
  WAIT_FOR(rec_count(&r, 'A', "inf-core-after") == 1);
  d = sq_cache_get(sq_informer_cache(inf), "inf-core-after");
  ASSERT_STR_EQ(sq_json_str(d, "kind"), "Namespace");
  json_decref(d);
  ASSERT_EQ(r.unstripped, 0);
  sq_informer_free(inf);
}

TEST(sync_wait_times_out_and_stop_cancels) {
  /* a resource the server does not have: every LIST fails (404) */
  sq_informer_opts o = {.gvr = {"informer.sqltde.io", "v1", "nothings", "Nothing", 1},
                        .namespace = "default",
                        .backoff_max_ms = 500};
  sq_informer *inf;
  sq_err err;
  ASSERT_OK(sq_informer_new(kube(), &o, &inf, &err));
  ASSERT_OK(sq_informer_start(inf, &err));
  ASSERT_EQ(sq_informer_wait_for_sync(inf, 1500), SQ_ETIMEOUT);
  ASSERT(!sq_informer_has_synced(inf));
  sq_informer_stats st;
  WAIT_FOR((sq_informer_stats_get(inf, &st), st.list_errors >= 2));
  ASSERT_EQ(st.watches, 0);
  ASSERT_LT(stop_ms(inf), 10000);
  ASSERT_EQ(sq_informer_wait_for_sync(inf, 1000), SQ_ECANCELED);
  sq_informer_free(inf);

  /* never started: stop and free are fine */
  ASSERT_OK(sq_informer_new(kube(), &o, &inf, &err));
  sq_informer_free(inf);
  o.gvr.plural = NULL;
  ASSERT_EQ(sq_informer_new(kube(), &o, &inf, &err), SQ_EINVAL);
}

TEST_MAIN()
