/* manager.c — the controller engine; see include/sqltde/kube/manager.h. */
#include "sqltde/kube/manager.h"

#include <inttypes.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqltde/clock.h"
#include "sqltde/jsonx.h"
#include "sqltde/kube/leader.h"
#include "sqltde/log.h"
#include "sqltde/server/metrics.h"

#define MAX_INFORMERS 16
#define MAX_CONTROLLERS 16
#define MAX_WATCHES 8
#define MAX_WORKERS 64

typedef struct watch {
  struct sq_controller *ctrl;
  sq_map_fn fn; /* NULL: the primary kind itself (enqueue the object's own key) */
  void *ud;
} watch;

struct sq_controller {
  const char *name;
  const sq_kube_gvr *gvr;
  int workers;
  sq_reconcile_fn fn;
  void *ud;
  sq_wq *queue;
  pthread_t threads[MAX_WORKERS];
  int started;
  watch watches[MAX_WATCHES];
  int nwatches;
  atomic_int active;
  uint64_t exported_adds, exported_retries; /* run-loop thread only */
};

typedef struct informer_slot {
  const sq_kube_gvr *gvr;
  sq_informer *inf;
} informer_slot;

struct sq_manager {
  sq_kube *kube;
  sq_manager_opts opts;
  informer_slot informers[MAX_INFORMERS];
  int ninformers;
  struct sq_controller *controllers[MAX_CONTROLLERS];
  int ncontrollers;
  sq_leader *leader;
  atomic_int leading;
  atomic_int lost;
  atomic_int running;
};

/* ---- informer fan-out: every event becomes queue keys ------------------- */

struct sq_map_out {
  sq_wq *queue;
};

void sq_map_emit(sq_map_out *out, const char *ns, const char *name) {
  if(!out || !name || !*name)
    return;
  char key[SQ_WQ_KEY_MAX];
  snprintf(key, sizeof key, "%s/%s", ns ? ns : "", name);
  sq_wq_add(out->queue, key);
}

static void enqueue_for(watch *w, const json_t *obj) {
  if(!w->fn) {
    char key[SQ_CACHE_KEY_MAX];
    if(sq_cache_key_of(obj, key, sizeof key, NULL) == SQ_OK)
      sq_wq_add(w->ctrl->queue, key);
    return;
  }
  sq_map_out out = {w->ctrl->queue};
  w->fn(w->ud, obj, &out);
}

static void on_add(void *ud, const json_t *obj) { enqueue_for(ud, obj); }
static void on_update(void *ud, const json_t *old_obj, const json_t *new_obj) {
  watch *w = ud;
  /* a mapped secondary that moved between primaries must re-queue both */
  if(w->fn && old_obj != new_obj)
    enqueue_for(w, old_obj);
  enqueue_for(w, new_obj);
}
static void on_delete(void *ud, const json_t *obj, int final_state_unknown) {
  (void)final_state_unknown;
  enqueue_for(ud, obj);
}

sq_code sq_manager_new(sq_kube *k, const sq_manager_opts *opts, sq_manager **out, sq_err *err) {
  sq_manager *m = calloc(1, sizeof *m);
  if(!m)
    return sq_err_set(err, SQ_ENOMEM, "out of memory");
  m->kube = k;
  if(opts)
    m->opts = *opts;
  if(!m->opts.sync_timeout_ms)
    m->opts.sync_timeout_ms = 120000;
  *out = m;
  return SQ_OK;
}

sq_code sq_manager_informer(sq_manager *m, const sq_kube_gvr *gvr, sq_informer **out, sq_err *err) {
  for(int i = 0; i < m->ninformers; i++)
    if(!strcmp(m->informers[i].gvr->plural, gvr->plural) && !strcmp(m->informers[i].gvr->group, gvr->group)) {
      *out = m->informers[i].inf;
      return SQ_OK;
    }
  if(m->ninformers == MAX_INFORMERS)
    return sq_err_set(err, SQ_ESTATE, "too many informers");
  sq_informer_opts io = {.gvr = *gvr, .namespace = m->opts.namespace, .resync_ms = m->opts.resync_ms};
  sq_code rc = sq_informer_new(m->kube, &io, out, err);
  if(rc)
    return rc;
  m->informers[m->ninformers].gvr = gvr;
  m->informers[m->ninformers].inf = *out;
  m->ninformers++;
  return SQ_OK;
}

sq_code sq_controller_watch(sq_controller *c, sq_manager *m, const sq_kube_gvr *gvr, sq_map_fn fn,
                            void *ud, sq_err *err) {
  if(c->nwatches == MAX_WATCHES)
    return sq_err_set(err, SQ_ESTATE, "controller %s: too many watches", c->name);
  sq_informer *inf;
  sq_code rc = sq_manager_informer(m, gvr, &inf, err);
  if(rc)
    return rc;
  watch *w = &c->watches[c->nwatches++];
  w->ctrl = c;
  w->fn = fn;
  w->ud = ud;
  sq_informer_handlers h = {on_add, on_update, on_delete, w};
  return sq_informer_add_handlers(inf, &h, err);
}

/* Queue timings go straight to the metrics registry (one histogram each). */
static void observe_queue(void *ud, int work, double seconds) {
  if(work)
    sq_metrics_workqueue_work_duration(ud, seconds);
  else
    sq_metrics_workqueue_queue_duration(ud, seconds);
}

sq_code sq_manager_add_controller(sq_manager *m, const char *name, const sq_kube_gvr *gvr, int workers,
                                  sq_reconcile_fn fn, void *ud, sq_controller **out, sq_err *err) {
  if(m->ncontrollers == MAX_CONTROLLERS)
    return sq_err_set(err, SQ_ESTATE, "too many controllers");
  if(workers < 1 || workers > MAX_WORKERS)
    return sq_err_set(err, SQ_EINVAL, "controller %s: workers must be 1..%d", name, MAX_WORKERS);
  sq_controller *c = calloc(1, sizeof *c);
  if(!c)
    return sq_err_set(err, SQ_ENOMEM, "out of memory");
  c->name = name;
  c->gvr = gvr;
  c->workers = workers;
  c->fn = fn;
  c->ud = ud;
  sq_wq_opts qo = {.name = name, .observe = observe_queue, .observe_ud = (void *)name};
  sq_code rc = sq_wq_new(&qo, &c->queue, err);
  if(rc) {
    free(c);
    return rc;
  }
  m->controllers[m->ncontrollers++] = c;
  sq_metrics_controller_init(name, workers);
  sq_metrics_workqueue_init(name);
  rc = sq_controller_watch(c, m, gvr, NULL, NULL, err);
  if(rc)
    return rc;
  *out = c;
  return SQ_OK;
}

void sq_controller_enqueue(sq_controller *c, const char *key) { sq_wq_add(c->queue, key); }
sq_wq *sq_controller_queue(sq_controller *c) { return c->queue; }

/* ---- workers: the one switch -------------------------------------------- */

static void new_reconcile_id(char out[17]) {
  unsigned char r[8];
  if(RAND_bytes(r, sizeof r) != 1)
    memset(r, 0, sizeof r);
  for(int i = 0; i < 8; i++)
    snprintf(out + 2 * i, 3, "%02x", r[i]);
}

static void handle(sq_controller *c, const char *key) {
  char ns[SQ_WQ_KEY_MAX], id[17];
  const char *slash = strchr(key, '/');
  const char *name = key;
  ns[0] = '\0';
  if(slash) {
    size_t n = (size_t)(slash - key);
    memcpy(ns, key, n);
    ns[n] = '\0';
    name = slash + 1;
  }
  new_reconcile_id(id);
  sq_log_set_reconcile_id(id);
  sq_reconcile_req req = {c->name, ns, name, key, id};
  int64_t t0 = sq_mono_ms();
  atomic_fetch_add(&c->active, 1);
  sq_metrics_active_workers_add(c->name, 1);
  sq_reconcile_result r = c->fn(c->ud, &req);
  sq_metrics_active_workers_add(c->name, -1);
  atomic_fetch_sub(&c->active, 1);
  int64_t ms = sq_mono_ms() - t0;
  sq_reconcile_outcome result;
  if(r.err && r.terminal) {
    sq_wq_forget(c->queue, key);
    result = SQ_RECONCILE_ERROR;
  } else if(r.err) {
    int64_t delay = 0;
    sq_wq_add_rate_limited(c->queue, key, &delay);
    result = SQ_RECONCILE_ERROR;
    SQ_DEBUG(c->name, "%s failed (%s); retry in %" PRId64 " ms", key, sq_code_name(r.err), delay);
  } else if(r.requeue_after_ms > 0) {
    sq_wq_forget(c->queue, key);
    sq_wq_add_after(c->queue, key, r.requeue_after_ms);
    result = SQ_RECONCILE_REQUEUE_AFTER;
  } else if(r.requeue) {
    sq_wq_add_rate_limited(c->queue, key, NULL);
    result = SQ_RECONCILE_REQUEUE;
  } else {
    sq_wq_forget(c->queue, key);
    result = SQ_RECONCILE_SUCCESS;
  }
  char took[32];
  snprintf(took, sizeof took, "%" PRId64, ms);
  sq_log_kv(SQ_LOG_DEBUG, c->name, "reconciled", "key", key, "result", sq_reconcile_outcome_name(result),
            "ms", took, NULL);
  sq_metrics_reconcile(c->name, result, (double)ms / 1000.0);
  sq_log_set_reconcile_id(NULL);
}

static void *worker(void *arg) {
  sq_controller *c = arg;
  char key[SQ_WQ_KEY_MAX];
  while(sq_wq_get(c->queue, key, sizeof key) == SQ_OK) {
    handle(c, key);
    sq_wq_done(c->queue, key);
  }
  return NULL;
}

/* ---- leadership ---------------------------------------------------------- */

static void on_started(void *ud) {
  sq_manager *m = ud;
  atomic_store(&m->leading, 1);
}
static void on_stopped(void *ud, sq_leader_stop_reason why) {
  sq_manager *m = ud;
  atomic_store(&m->leading, 0);
  if(why == SQ_LEADER_LOST)
    atomic_store(&m->lost, 1);
}
static void on_new_leader(void *ud, const char *identity) {
  (void)ud;
  SQ_INFO("leader-election", "leader is now %s", identity && *identity ? identity : "(none)");
}

static sq_code start_leader(sq_manager *m, sq_err *err) {
  sq_leader_config lc;
  memset(&lc, 0, sizeof lc);
  sq_leader_config_defaults(&lc);
  lc.lease_namespace = m->opts.leader_election_ns ? m->opts.leader_election_ns : sq_kube_namespace(m->kube);
  lc.lease_name = m->opts.leader_election_id ? m->opts.leader_election_id : "sqltde-operator-leader";
  if(m->opts.lease_duration_ms)
    lc.lease_duration_ms = m->opts.lease_duration_ms;
  if(m->opts.renew_deadline_ms)
    lc.renew_deadline_ms = m->opts.renew_deadline_ms;
  if(m->opts.retry_period_ms)
    lc.retry_period_ms = m->opts.retry_period_ms;
  lc.on_started_leading = on_started;
  lc.on_stopped_leading = on_stopped;
  lc.on_new_leader = on_new_leader;
  lc.ud = m;
  sq_code rc = sq_leader_config_check(&lc, err);
  if(!rc)
    rc = sq_leader_new(m->kube, &lc, &m->leader, err);
  if(!rc)
    rc = sq_leader_start(m->leader, err);
  return rc;
}

/* ---- metrics -------------------------------------------------------------- */

/* The queue keeps cumulative stats; the registry wants deltas for counters
 * and histograms, so remember what was exported last time. */
static void export_queue_metrics(sq_manager *m) {
  for(int i = 0; i < m->ncontrollers; i++) {
    sq_controller *c = m->controllers[i];
    sq_wq_stats st;
    sq_wq_stats_get(c->queue, &st);
    sq_metrics_workqueue_depth(c->name, (long)st.depth);
    for(uint64_t n = c->exported_adds; n < st.adds_total; n++)
      sq_metrics_workqueue_add(c->name);
    for(uint64_t n = c->exported_retries; n < st.retries_total; n++)
      sq_metrics_workqueue_retry(c->name);
    c->exported_adds = st.adds_total;
    c->exported_retries = st.retries_total;
    sq_metrics_workqueue_unfinished(c->name, st.unfinished_work_seconds, st.longest_running_processor_seconds);
  }
  sq_metrics_leader(m->opts.leader_election_id ? m->opts.leader_election_id : "sqltde-operator-leader",
                    atomic_load(&m->leading));
}

/* ---- run ----------------------------------------------------------------- */

int sq_manager_ready(sq_manager *m) {
  if(!atomic_load(&m->running))
    return 0;
  for(int i = 0; i < m->ninformers; i++)
    if(!sq_informer_has_synced(m->informers[i].inf))
      return 0;
  return 1;
}

int sq_manager_is_leader(sq_manager *m) { return atomic_load(&m->leading); }

static int stop_requested(const atomic_int *stop) { return stop && atomic_load(stop); }

sq_code sq_manager_run(sq_manager *m, const atomic_int *stop, sq_err *err) {
  sq_code rc = SQ_OK;
  atomic_store(&m->running, 1);
  for(int i = 0; i < m->ninformers && !rc; i++)
    rc = sq_informer_start(m->informers[i].inf, err);
  int64_t deadline = sq_mono_ms() + m->opts.sync_timeout_ms;
  for(int i = 0; i < m->ninformers && !rc; i++) {
    while(!rc && !sq_informer_has_synced(m->informers[i].inf)) {
      if(stop_requested(stop))
        goto shutdown;
      if(sq_mono_ms() > deadline)
        rc = sq_err_set(err, SQ_ETIMEOUT, "caches did not sync within %" PRId64 " s (is the apiserver reachable?)",
                        m->opts.sync_timeout_ms / 1000);
      else
        sq_informer_wait_for_sync(m->informers[i].inf, 100);
    }
  }
  if(rc)
    goto shutdown;
  SQ_INFO("manager", "caches synced (%d informers)", m->ninformers);

  if(m->opts.leader_elect) {
    rc = start_leader(m, err);
    if(rc)
      goto shutdown;
    SQ_INFO("leader-election", "campaigning for lease as %s", sq_leader_identity(m->leader));
    while(!atomic_load(&m->leading)) {
      if(stop_requested(stop) || atomic_load(&m->lost))
        goto shutdown;
      sq_leader_wait(m->leader, 100);
    }
    SQ_INFO("leader-election", "acquired leadership");
  } else {
    atomic_store(&m->leading, 1);
  }

  for(int i = 0; i < m->ncontrollers; i++) {
    sq_controller *c = m->controllers[i];
    for(int w = 0; w < c->workers; w++)
      if(pthread_create(&c->threads[w], NULL, worker, c) == 0)
        c->started++;
    SQ_INFO("manager", "started controller %s with %d workers", c->name, c->started);
  }
  int64_t next_export = 0;
  while(!stop_requested(stop) && !atomic_load(&m->lost)) {
    if(sq_mono_ms() >= next_export) {
      export_queue_metrics(m);
      next_export = sq_mono_ms() + 1000;
    }
    sq_sleep_ms(100);
  }
  if(atomic_load(&m->lost))
    rc = sq_err_set(err, SQ_ECANCELED, "lost leadership; exiting so a healthy replica takes over");

shutdown:
  /* reverse order: stop handing out work, let in-flight reconciles finish,
   * then release the lease and stop watching */
  for(int i = 0; i < m->ncontrollers; i++) {
    sq_controller *c = m->controllers[i];
    sq_wq_shutdown(c->queue);
    for(int w = 0; w < c->started; w++)
      pthread_join(c->threads[w], NULL);
    c->started = 0;
  }
  if(m->leader)
    sq_leader_stop(m->leader);
  for(int i = 0; i < m->ninformers; i++)
    sq_informer_stop(m->informers[i].inf);
  atomic_store(&m->running, 0);
  atomic_store(&m->leading, 0);
  return rc;
}

void sq_manager_free(sq_manager *m) {
  if(!m)
    return;
  for(int i = 0; i < m->ncontrollers; i++) {
    sq_wq_free(m->controllers[i]->queue);
    free(m->controllers[i]);
  }
  for(int i = 0; i < m->ninformers; i++)
    sq_informer_free(m->informers[i].inf);
  sq_leader_free(m->leader);
  free(m);
}
