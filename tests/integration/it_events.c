/* it_events.c — the Event recorder and the finalizer helpers against a real
 * kube-apiserver (tests/cluster, through with-cluster.sh).
 *
 * Events: repeats fold into one events.k8s.io/v1 Event whose series.count
 * says how many there were, with far fewer API writes than emissions (counted
 * by the recorder AND by a watch on the apiserver's side); different reasons
 * make different Events; a flood from one object is capped by the spam
 * filter; notes are cut to the API limit and cleaned to valid UTF-8.
 * Finalizers (cases finalizer_*): add/remove with the resourceVersion
 * precondition, a stale read conflicting instead of clobbering, deletion held
 * until cleanup reports done. Each run uses its own namespace. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sqltde/clock.h"
#include "sqltde/http.h"
#include "sqltde/jsonx.h"
#include "sqltde/kube/client.h"
#include "sqltde/kube/events.h"
#include "sqltde/kube/finalizer.h"
#include "test.h"

static const sq_kube_gvr EVENTS = {"events.k8s.io", "v1", "events", "Event", 1};
static const sq_kube_gvr CONFIGMAPS = {"", "v1", "configmaps", "ConfigMap", 1};
static const sq_kube_gvr NAMESPACES = {"", "v1", "namespaces", "Namespace", 0};

#define FIN "sqltde.io/finalizer"

static sq_kube *g_k;
static char g_ns[64];
static char g_instance[64];

static sq_kube *kube(void) {
  if(g_k)
    return g_k;
  sq_kube_config cfg;
  sq_err err;
  const char *kc = getenv("KUBECONFIG");
  if(!kc || !*kc)
    TEST_FAIL_("KUBECONFIG is not set (run through tests/integration/with-cluster.sh)");
  sq_http_global_init();
  if(sq_kube_config_load_file(kc, NULL, &cfg, &err))
    TEST_FAIL_("load %s: %s", kc, err.message);
  sq_code rc = sq_kube_new(&cfg, &g_k, &err);
  sq_kube_config_free(&cfg);
  if(rc)
    TEST_FAIL_("sq_kube_new: %s", err.message);
  return g_k;
}

static const char *ns(void) {
  if(!g_ns[0]) {
    snprintf(g_ns, sizeof g_ns, "it-events-%d", (int)getpid());
    snprintf(g_instance, sizeof g_instance, "it-events_%d", (int)getpid());
    json_t *o = json_pack("{s:s,s:s,s:{s:s}}", "apiVersion", "v1", "kind", "Namespace",
                          "metadata", "name", g_ns);
    sq_err err;
    sq_code rc = sq_kube_create(kube(), &NAMESPACES, NULL, o, NULL, &err);
    json_decref(o);
    if(rc && rc != SQ_ECONFLICT)
      TEST_FAIL_("create namespace %s: %s", g_ns, err.message);
  }
  return g_ns;
}

/* Creates a ConfigMap (the object Events are about); caller decrefs. */
static json_t *make_cm(const char *name, int with_finalizer) {
  json_t *o = json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:s}}", "apiVersion", "v1", "kind",
                        "ConfigMap", "metadata", "name", name, "namespace", ns(), "data", "k",
                        "v");
  if(with_finalizer)
    json_object_set_new(json_object_get(o, "metadata"), "finalizers", json_pack("[s]", FIN));
  json_t *out = NULL;
  sq_err err;
  sq_code rc = sq_kube_create(kube(), &CONFIGMAPS, ns(), o, &out, &err);
  json_decref(o);
  if(rc)
    TEST_FAIL_("create configmap %s: %s", name, err.message);
  /* The create response lacks apiVersion/kind on some versions: set them. */
  json_object_set_new(out, "apiVersion", json_string("v1"));
  json_object_set_new(out, "kind", json_string("ConfigMap"));
  return out;
}

static sq_events *new_recorder(int64_t patch_ms) {
  sq_events_config cfg;
  sq_events *r = NULL;
  sq_err err;
  memset(&cfg, 0, sizeof cfg);
  ns();
  cfg.reporting_instance = g_instance;
  cfg.agg.patch_ms = patch_ms;
  if(sq_events_new(kube(), &cfg, &r, &err) || sq_events_start(r, &err))
    TEST_FAIL_("recorder: %s", err.message);
  return r;
}

/* Events in namespace nsname about object `regarding` (and reason, if non-NULL).
 * Returns a new array. */
static json_t *events_about(const char *nsname, const char *regarding, const char *reason) {
  json_t *list = NULL, *out = json_array(), *it;
  sq_err err;
  size_t i;
  if(sq_kube_list(kube(), &EVENTS, nsname, NULL, 0, &list, &err))
    TEST_FAIL_("list events: %s", err.message);
  json_array_foreach(json_object_get(list, "items"), i, it) {
    const char *rn = sq_json_str(it, "regarding.name");
    const char *re = sq_json_str(it, "reason");
    if(rn && !strcmp(rn, regarding) && (!reason || (re && !strcmp(re, reason))))
      json_array_append(out, it);
  }
  json_decref(list);
  return out;
}

/* ---- a watch counting the apiserver's own view of our writes -------------- */

typedef struct watcher {
  pthread_t th;
  atomic_int cancel;
  pthread_mutex_t mu;
  const char *regarding;
  int added, modified;
  char rv[64];
  sq_code rc;
  sq_err err;
} watcher;

static int on_event(void *ud, const char *type, json_t *obj) {
  watcher *w = ud;
  const char *rn = sq_json_str(obj, "regarding.name");
  if(!rn || strcmp(rn, w->regarding))
    return 0;
  pthread_mutex_lock(&w->mu);
  if(!strcmp(type, "ADDED"))
    w->added++;
  else if(!strcmp(type, "MODIFIED"))
    w->modified++;
  pthread_mutex_unlock(&w->mu);
  return 0;
}

static void *watch_main(void *ud) {
  watcher *w = ud;
  w->rc = sq_kube_watch(kube(), &EVENTS, ns(), w->rv, NULL, 120, &w->cancel, on_event, w,
                        &w->err);
  return NULL;
}

static void watch_start(watcher *w, const char *regarding) {
  json_t *list = NULL;
  sq_err err;
  memset(w, 0, sizeof *w);
  pthread_mutex_init(&w->mu, NULL);
  w->regarding = regarding;
  /* Start from "now" so every later write is seen, none missed. */
  if(sq_kube_list(kube(), &EVENTS, ns(), NULL, 0, &list, &err))
    TEST_FAIL_("list events: %s", err.message);
  snprintf(w->rv, sizeof w->rv, "%s", sq_json_str(list, "metadata.resourceVersion"));
  json_decref(list);
  if(pthread_create(&w->th, NULL, watch_main, w))
    TEST_FAIL_("watch thread");
}

static void watch_counts(watcher *w, int *added, int *modified) {
  pthread_mutex_lock(&w->mu);
  *added = w->added;
  *modified = w->modified;
  pthread_mutex_unlock(&w->mu);
}

static void watch_stop(watcher *w) {
  atomic_store(&w->cancel, 1);
  pthread_join(w->th, NULL);
  pthread_mutex_destroy(&w->mu);
}

/* ---- events ----------------------------------------------------------------- */

TEST(repeats_aggregate_into_one_series) {
  json_t *cm = make_cm("cm-agg", 0);
  sq_event_ref ref;
  sq_event_ref_from_object(cm, &ref);
  watcher w;
  watch_start(&w, "cm-agg");
  sq_events *r = new_recorder(2000);

  for(int i = 0; i < 50; i++)
    ASSERT_OK(sq_events_emit(r, &ref, SQ_EVENT_WARNING, "KeyUnreachable", "Reconcile",
                             "vault sqltde-kv is unreachable"));

  /* No flush: the series count must reach the apiserver through the
   * recorder's own rate-limited patch (every 2 s here). */
  int64_t end = sq_mono_ms() + 30000;
  json_t *evs = NULL;
  int64_t count = 0;
  while(sq_mono_ms() < end) {
    json_decref(evs);
    evs = events_about(ns(), "cm-agg", "KeyUnreachable");
    count = json_array_size(evs) == 1
                ? sq_json_int(json_array_get(evs, 0), "series.count", 1)
                : -1;
    if(count == 50)
      break;
    sq_sleep_ms(200);
  }
  ASSERT_EQ(json_array_size(evs), 1);
  ASSERT_EQ(count, 50);
  json_t *ev = json_array_get(evs, 0);
  ASSERT_STR_EQ(sq_json_str(ev, "type"), "Warning");
  ASSERT_STR_EQ(sq_json_str(ev, "action"), "Reconcile");
  ASSERT_STR_EQ(sq_json_str(ev, "note"), "vault sqltde-kv is unreachable");
  ASSERT_STR_EQ(sq_json_str(ev, "reportingController"), "sqltde.io/operator");
  ASSERT_STR_EQ(sq_json_str(ev, "reportingInstance"), g_instance);
  ASSERT_STR_EQ(sq_json_str(ev, "regarding.kind"), "ConfigMap");
  ASSERT_STR_EQ(sq_json_str(ev, "regarding.namespace"), ns());
  ASSERT_STR_EQ(sq_json_str(ev, "regarding.uid"), sq_json_str(cm, "metadata.uid"));
  ASSERT_EQ(strncmp(sq_json_str(ev, "metadata.name"), "cm-agg.", 7), 0);
  ASSERT_NOT_NULL(sq_json_str(ev, "eventTime"));
  ASSERT_NOT_NULL(sq_json_str(ev, "series.lastObservedTime"));
  json_decref(evs);

  sq_events_stats st;
  sq_events_get_stats(r, &st);
  printf("  50 emissions -> %llu creates + %llu patches\n", (unsigned long long)st.creates,
         (unsigned long long)st.patches);
  ASSERT_EQ(st.emitted, 50);
  ASSERT_EQ(st.creates, 1);
  ASSERT_GE(st.patches, 1);
  ASSERT_LT(st.creates + st.patches, 10);
  ASSERT_EQ(st.write_errors, 0);
  ASSERT_EQ(st.dropped_spam + st.dropped_queue + st.dropped_other, 0);

  /* The apiserver's side: one ADDED, a few MODIFIED, far fewer than 50. */
  int added = 0, modified = 0;
  end = sq_mono_ms() + 10000;
  while(sq_mono_ms() < end) {
    watch_counts(&w, &added, &modified);
    if(added + modified >= 2)
      break;
    sq_sleep_ms(100);
  }
  watch_stop(&w);
  printf("  apiserver saw %d ADDED + %d MODIFIED\n", added, modified);
  ASSERT_EQ(added, 1);
  ASSERT_GE(modified, 1);
  ASSERT_LT(added + modified, 10);
  ASSERT_EQ((uint64_t)(added + modified), st.creates + st.patches);

  sq_events_free(r);
  json_decref(cm);
}

TEST(different_reasons_make_different_events) {
  json_t *cm = make_cm("cm-reasons", 0);
  sq_event_ref ref;
  sq_event_ref_from_object(cm, &ref);
  sq_events *r = new_recorder(0);
  ASSERT_OK(sq_events_emit(r, &ref, SQ_EVENT_NORMAL, "ProtectorSet", "SetProtector", "key v1"));
  ASSERT_OK(sq_events_emit(r, &ref, SQ_EVENT_WARNING, "RotationBlocked", "Rotate", "old VLFs"));
  ASSERT_OK(sq_events_emit(r, &ref, SQ_EVENT_NORMAL, "ProtectorSet", "SetProtector", "key v1"));
  ASSERT_OK(sq_events_flush(r, 30000));

  json_t *all = events_about(ns(), "cm-reasons", NULL);
  ASSERT_EQ(json_array_size(all), 2);
  json_decref(all);
  json_t *a = events_about(ns(), "cm-reasons", "ProtectorSet");
  json_t *b = events_about(ns(), "cm-reasons", "RotationBlocked");
  ASSERT_EQ(json_array_size(a), 1);
  ASSERT_EQ(json_array_size(b), 1);
  json_t *ea = json_array_get(a, 0), *eb = json_array_get(b, 0);
  ASSERT(strcmp(sq_json_str(ea, "metadata.name"), sq_json_str(eb, "metadata.name")) != 0);
  ASSERT_STR_EQ(sq_json_str(eb, "type"), "Warning");
  ASSERT_STR_EQ(sq_json_str(ea, "type"), "Normal");
  /* The flush wrote the repeat even though the patch interval (30 s) had
   * not passed. */
  ASSERT_EQ(sq_json_int(ea, "series.count", 1), 2);
  ASSERT_NULL(sq_json_path(eb, "series")); /* a single occurrence has no series */
  json_decref(a);
  json_decref(b);
  sq_events_free(r);
  json_decref(cm);
}

TEST(flood_from_one_object_is_capped) {
  json_t *flood = make_cm("cm-flood", 0);
  json_t *calm = make_cm("cm-calm", 0);
  sq_event_ref fr, cr;
  sq_event_ref_from_object(flood, &fr);
  sq_event_ref_from_object(calm, &cr);
  sq_events *r = new_recorder(0);
  /* Distinct notes: each would be a new Event object. */
  for(int i = 0; i < 60; i++)
    ASSERT_OK(sq_events_emitf(r, &fr, SQ_EVENT_WARNING, "ReconcileFailed", "Reconcile",
                              "attempt %d failed", i));
  ASSERT_OK(sq_events_emit(r, &cr, SQ_EVENT_NORMAL, "Synced", "Reconcile", "fine"));
  ASSERT_OK(sq_events_flush(r, 60000));

  json_t *f = events_about(ns(), "cm-flood", NULL);
  json_t *c = events_about(ns(), "cm-calm", NULL);
  printf("  60 distinct events from one object -> %zu Event objects\n", json_array_size(f));
  ASSERT_EQ(json_array_size(f), SQ_EVENTS_DEFAULT_BURST);
  ASSERT_EQ(json_array_size(c), 1); /* other objects are not starved */
  json_decref(f);
  json_decref(c);
  sq_events_stats st;
  sq_events_get_stats(r, &st);
  ASSERT_EQ(st.dropped_spam, 60 - SQ_EVENTS_DEFAULT_BURST);
  ASSERT_EQ(st.creates, SQ_EVENTS_DEFAULT_BURST + 1);
  sq_events_free(r);
  json_decref(flood);
  json_decref(calm);
}

TEST(note_limits_and_cluster_scoped_objects) {
  json_t *cm = make_cm("cm-note", 0);
  sq_event_ref ref;
  sq_event_ref_from_object(cm, &ref);
  sq_events *r = new_recorder(0);
  char note[2001];
  memset(note, 'x', 2000);
  note[2000] = '\0';
  note[0] = (char)0xff; /* not UTF-8: jansson and the apiserver would refuse it */
  ASSERT_OK(sq_events_emit(r, &ref, SQ_EVENT_NORMAL, "LongNote", "Test", note));
  /* A cluster-scoped object (our Namespace): its Event goes to kube-system. */
  sq_event_ref nsref = {"v1", "Namespace", "", ns(), NULL};
  ASSERT_OK(sq_events_emit(r, &nsref, SQ_EVENT_NORMAL, "Observed", "Test", "namespace event"));
  ASSERT_OK(sq_events_flush(r, 30000));
  sq_events_stats st;
  sq_events_get_stats(r, &st);
  ASSERT_EQ(st.write_errors, 0);

  json_t *evs = events_about(ns(), "cm-note", "LongNote");
  ASSERT_EQ(json_array_size(evs), 1);
  const char *got = sq_json_str(json_array_get(evs, 0), "note");
  ASSERT_EQ(strlen(got), SQ_EVENTS_NOTE_MAX);
  ASSERT_EQ(got[0], '?');
  ASSERT_EQ(got[1], 'x');
  json_decref(evs);

  evs = events_about("kube-system", ns(), "Observed");
  ASSERT_EQ(json_array_size(evs), 1);
  ASSERT_STR_EQ(sq_json_str(json_array_get(evs, 0), "regarding.kind"), "Namespace");
  ASSERT_NULL(sq_json_str(json_array_get(evs, 0), "regarding.namespace"));
  json_decref(evs);
  sq_events_free(r);
  json_decref(cm);
}

/* ---- finalizers --------------------------------------------------------- */

static json_t *get_cm(const char *name, sq_code *rc_out) {
  json_t *o = NULL;
  sq_err err;
  sq_code rc = sq_kube_get(kube(), &CONFIGMAPS, ns(), name, &o, &err);
  if(rc_out)
    *rc_out = rc;
  else if(rc)
    TEST_FAIL_("get configmap %s: %s", name, err.message);
  return o;
}

TEST(finalizer_add_remove_and_conflict) {
  sq_err err;
  json_t *cm = make_cm("cm-fin", 0);
  json_t *updated = NULL;
  ASSERT_OK(sq_finalizer_add(kube(), &CONFIGMAPS, cm, FIN, &updated, &err));
  ASSERT(sq_finalizer_has(updated, FIN));
  json_t *live = get_cm("cm-fin", NULL);
  ASSERT(sq_finalizer_has(live, FIN));
  json_decref(live);

  /* cm is now stale: writing from it must conflict, not drop our finalizer. */
  json_t *out = NULL;
  ASSERT_EQ(sq_finalizer_add(kube(), &CONFIGMAPS, cm, "other.io/x", &out, &err), SQ_ECONFLICT);
  ASSERT_STR_CONTAINS(err.message, "adding finalizer other.io/x");
  live = get_cm("cm-fin", NULL);
  ASSERT(sq_finalizer_has(live, FIN));
  ASSERT(!sq_finalizer_has(live, "other.io/x"));

  /* From the fresh read it works, and ours is kept alongside. */
  ASSERT_OK(sq_finalizer_add(kube(), &CONFIGMAPS, live, "other.io/x", &out, &err));
  ASSERT(sq_finalizer_has(out, FIN) && sq_finalizer_has(out, "other.io/x"));
  json_decref(live);
  json_t *o2 = NULL;
  ASSERT_OK(sq_finalizer_remove(kube(), &CONFIGMAPS, out, FIN, &o2, &err));
  ASSERT(!sq_finalizer_has(o2, FIN));
  ASSERT(sq_finalizer_has(o2, "other.io/x"));
  json_t *o3 = NULL;
  ASSERT_OK(sq_finalizer_remove(kube(), &CONFIGMAPS, o2, "other.io/x", &o3, &err));
  live = get_cm("cm-fin", NULL);
  ASSERT_NULL(sq_json_path(live, "metadata.finalizers"));
  json_decref(live);
  json_decref(o3);
  json_decref(o2);
  json_decref(out);
  json_decref(updated);
  json_decref(cm);
}

typedef struct cleanup_state {
  int applies, cleanups, done;
  int saw_finalizer_on_apply;
} cleanup_state;

static sq_code it_apply(void *ud, const json_t *obj, sq_err *err) {
  (void)err;
  cleanup_state *s = ud;
  s->applies++;
  s->saw_finalizer_on_apply = sq_finalizer_has(obj, FIN);
  return SQ_OK;
}

static sq_code it_cleanup(void *ud, const json_t *obj, int *done, sq_err *err) {
  (void)obj;
  (void)err;
  cleanup_state *s = ud;
  s->cleanups++;
  *done = s->done;
  return SQ_OK;
}

TEST(finalizer_holds_deletion_until_cleanup_done) {
  sq_err err;
  sq_finalizer_action taken;
  cleanup_state s;
  memset(&s, 0, sizeof s);
  json_t *cm = make_cm("cm-del", 0);

  /* First reconcile: the finalizer goes on, then apply sees it. */
  ASSERT_OK(sq_finalizer_reconcile(kube(), &CONFIGMAPS, cm, FIN, it_apply, it_cleanup, &s,
                                   &taken, &err));
  ASSERT_EQ(taken, SQ_FIN_ADD);
  ASSERT_EQ(s.applies, 1);
  ASSERT_EQ(s.saw_finalizer_on_apply, 1);
  json_decref(cm);

  ASSERT_OK(sq_kube_delete(kube(), &CONFIGMAPS, ns(), "cm-del", &err));
  cm = get_cm("cm-del", NULL); /* still there: our finalizer holds it */
  ASSERT(sq_finalizer_deleting(cm));
  ASSERT_EQ(sq_finalizer_decide(cm, FIN), SQ_FIN_CLEANUP);
  /* No new finalizers on a dying object. */
  ASSERT_EQ(sq_finalizer_add(kube(), &CONFIGMAPS, cm, "late.io/x", NULL, &err), SQ_ESTATE);

  /* Cleanup not finished: the object stays. */
  ASSERT_OK(sq_finalizer_reconcile(kube(), &CONFIGMAPS, cm, FIN, it_apply, it_cleanup, &s,
                                   &taken, &err));
  ASSERT_EQ(taken, SQ_FIN_CLEANUP);
  ASSERT_EQ(s.cleanups, 1);
  json_decref(cm);
  cm = get_cm("cm-del", NULL);
  ASSERT(sq_finalizer_has(cm, FIN));

  /* Cleanup done: the finalizer goes and the apiserver deletes the object. */
  s.done = 1;
  ASSERT_OK(sq_finalizer_reconcile(kube(), &CONFIGMAPS, cm, FIN, it_apply, it_cleanup, &s,
                                   &taken, &err));
  ASSERT_EQ(s.cleanups, 2);
  ASSERT_EQ(s.applies, 1);
  sq_code rc;
  json_t *gone = get_cm("cm-del", &rc);
  ASSERT_EQ(rc, SQ_ENOTFOUND);
  ASSERT_NULL(gone);
  /* Removing from an object that is gone is done, not an error. */
  ASSERT_OK(sq_finalizer_remove(kube(), &CONFIGMAPS, cm, FIN, NULL, &err));
  json_decref(cm);
}

int it_main_(int argc, char **argv);
#define main it_main_
TEST_MAIN()
#undef main

int main(int argc, char **argv) {
  int rc = it_main_(argc, argv);
  if(g_k)
    sq_kube_free(g_k);
  return rc;
}
