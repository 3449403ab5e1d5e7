/* informer.c — list + watch into a cache; see include/sqltde/kube/informer.h.
 *
 * One thread per informer runs a small state machine: list (when there is no
 * usable resourceVersion), then watch from the newest resourceVersion seen,
 * forever, until stopped. Everything the thread owns (the watch position, the
 * failure count, the resync deadline) is touched by that thread only; other
 * threads see counters (atomics), the synced flag and the last resourceVersion
 * (under mu), and the cache (its own lock). */
#include "sqltde/kube/informer.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "sqltde/clock.h"
#include "sqltde/jsonx.h"
#include "sqltde/kube/ratelimit.h"
#include "sqltde/log.h"

#define LOGGER "informer"
#define RV_MAX 64

/* A watch that the server closes sooner than this (or than half its
 * timeoutSeconds, for the 1 s watches before a resync) without sending a
 * single event is treated as a failure (backoff), so a server that accepts
 * and at once closes watches cannot make us spin. */
#define SHORT_WATCH_MS 1000

typedef struct counters {
  atomic_uint_fast64_t lists, list_errors, relists, watches, watch_errors, gone, events, bookmarks,
      resyncs, dropped;
} counters;

struct sq_informer {
  sq_kube *k;
  /* owned copies of the options */
  char *group, *version, *plural, *kind, *ns, *selector, *api_version;
  sq_kube_gvr gvr; /* points at the copies above */
  long page_size;
  int64_t resync_ms;
  long watch_min_s, watch_max_s;
  int64_t backoff_initial_ms, backoff_max_ms;
  sq_cache_transform_fn transform;
  void *transform_ud;

  sq_informer_handlers handlers[SQ_INFORMER_MAX_HANDLERS];
  int nhandlers;

  sq_cache *cache;
  char what[256]; /* "sqldatabases.sqltde.io in ns1" for log lines */

  pthread_t thread;
  int started, joined;
  atomic_int stop;

  pthread_mutex_t mu; /* guards synced, last_rv; cv signals sync and stop */
  pthread_cond_t cv;
  int synced;
  char last_rv[RV_MAX];

  counters n;

  /* informer thread only */
  char rv[RV_MAX];         /* newest resourceVersion seen */
  unsigned rand_state;     /* for jitter and watch lengths */
  unsigned failures;       /* consecutive failed lists/watches */
  int64_t next_resync_ms;  /* sq_mono_ms deadline, 0 = none */
  uint64_t watch_events;   /* events of the current watch */
  int watch_failed;        /* on_event hit an error that must end the watch */
};

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static int stopping(sq_informer *inf) { return atomic_load(&inf->stop); }

static void count(atomic_uint_fast64_t *c) {
  atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

sq_code sq_informer_new(sq_kube *k, const sq_informer_opts *opts, sq_informer **out, sq_err *err) {
  *out = NULL;
  if(!k || !opts || !opts->gvr.version || !opts->gvr.plural || !*opts->gvr.plural)
    return sq_err_set(err, SQ_EINVAL, "informer needs a client and a resource (version, plural)");
  sq_informer *inf = calloc(1, sizeof *inf);
  if(!inf)
    return sq_err_set(err, SQ_ENOMEM, "out of memory creating informer");
  atomic_init(&inf->stop, 0);
  pthread_mutex_init(&inf->mu, NULL);
  pthread_cond_init(&inf->cv, NULL);
  inf->k = k;
  inf->group = strdup(opts->gvr.group ? opts->gvr.group : "");
  inf->version = strdup(opts->gvr.version);
  inf->plural = strdup(opts->gvr.plural);
  inf->kind = dup_or_null(opts->gvr.kind);
  inf->ns = (opts->namespace && *opts->namespace) ? strdup(opts->namespace) : NULL;
  inf->selector = (opts->label_selector && *opts->label_selector) ? strdup(opts->label_selector)
                                                                  : NULL;
  if(inf->group && inf->version) {
    size_t n = strlen(inf->group) + strlen(inf->version) + 2;
    inf->api_version = malloc(n);
    if(inf->api_version)
      snprintf(inf->api_version, n, "%s%s%s", inf->group, *inf->group ? "/" : "", inf->version);
  }
  if(!inf->group || !inf->version || !inf->plural || !inf->api_version ||
     (opts->gvr.kind && !inf->kind) || (opts->namespace && *opts->namespace && !inf->ns) ||
     (opts->label_selector && *opts->label_selector && !inf->selector)) {
    sq_informer_free(inf);
    return sq_err_set(err, SQ_ENOMEM, "out of memory creating informer");
  }
  inf->gvr = (sq_kube_gvr){inf->group, inf->version, inf->plural, inf->kind, opts->gvr.namespaced};

  inf->page_size = opts->page_size > 0 ? opts->page_size : SQ_INFORMER_PAGE_SIZE;
  inf->resync_ms = opts->resync_ms ? opts->resync_ms : SQ_INFORMER_RESYNC_MS;
  inf->watch_min_s = opts->watch_min_s > 0 ? opts->watch_min_s : SQ_INFORMER_WATCH_MIN_S;
  inf->watch_max_s = opts->watch_max_s > 0 ? opts->watch_max_s : SQ_INFORMER_WATCH_MAX_S;
  if(inf->watch_max_s < inf->watch_min_s)
    inf->watch_max_s = inf->watch_min_s;
  inf->backoff_initial_ms =
      opts->backoff_initial_ms > 0 ? opts->backoff_initial_ms : SQ_INFORMER_BACKOFF_INITIAL_MS;
  inf->backoff_max_ms =
      opts->backoff_max_ms > 0 ? opts->backoff_max_ms : SQ_INFORMER_BACKOFF_MAX_MS;
  inf->transform = opts->transform;
  inf->transform_ud = opts->transform_ud;

  snprintf(inf->what, sizeof inf->what, "%s%s%s in %s%s%s", inf->plural, *inf->group ? "." : "",
           inf->group, inf->ns ? inf->ns : "all namespaces", inf->selector ? " with labels " : "",
           inf->selector ? inf->selector : "");

  /* Jitter only has to differ between informers and runs, not be secret. */
  inf->rand_state = (unsigned)sq_mono_ms() ^ (unsigned)(uintptr_t)inf;

  sq_code rc = sq_cache_new(&inf->cache, err);
  if(rc) {
    sq_informer_free(inf);
    return rc;
  }
  *out = inf;
  return SQ_OK;
}

sq_code sq_informer_add_handlers(sq_informer *inf, const sq_informer_handlers *h, sq_err *err) {
  if(inf->started)
    return sq_err_set(err, SQ_ESTATE, "informer %s: handlers must be added before start",
                      inf->what);
  if(inf->nhandlers >= SQ_INFORMER_MAX_HANDLERS)
    return sq_err_set(err, SQ_ESTATE, "informer %s: more than %d handler sets", inf->what,
                      SQ_INFORMER_MAX_HANDLERS);
  inf->handlers[inf->nhandlers++] = *h;
  return SQ_OK;
}

sq_cache *sq_informer_cache(sq_informer *inf) { return inf->cache; }

int sq_informer_has_synced(sq_informer *inf) {
  pthread_mutex_lock(&inf->mu);
  int s = inf->synced;
  pthread_mutex_unlock(&inf->mu);
  return s;
}

sq_code sq_informer_wait_for_sync(sq_informer *inf, int64_t timeout_ms) {
  struct timespec ts;
  sq_code rc = SQ_OK;
  if(timeout_ms >= 0)
    sq_abstime_in(&ts, timeout_ms);
  pthread_mutex_lock(&inf->mu);
  while(!inf->synced && !stopping(inf)) {
    if(timeout_ms < 0) {
      pthread_cond_wait(&inf->cv, &inf->mu);
    } else if(pthread_cond_timedwait(&inf->cv, &inf->mu, &ts)) {
      rc = inf->synced ? SQ_OK : SQ_ETIMEOUT;
      break;
    }
  }
  if(!inf->synced && rc == SQ_OK)
    rc = SQ_ECANCELED;
  pthread_mutex_unlock(&inf->mu);
  return rc;
}

void sq_informer_last_rv(sq_informer *inf, char *out, size_t outlen) {
  pthread_mutex_lock(&inf->mu);
  snprintf(out, outlen, "%s", inf->last_rv);
  pthread_mutex_unlock(&inf->mu);
}

void sq_informer_stats_get(sq_informer *inf, sq_informer_stats *out) {
  counters *n = &inf->n;
  out->lists = atomic_load(&n->lists);
  out->list_errors = atomic_load(&n->list_errors);
  out->relists = atomic_load(&n->relists);
  out->watches = atomic_load(&n->watches);
  out->watch_errors = atomic_load(&n->watch_errors);
  out->gone = atomic_load(&n->gone);
  out->events = atomic_load(&n->events);
  out->bookmarks = atomic_load(&n->bookmarks);
  out->resyncs = atomic_load(&n->resyncs);
  out->dropped = atomic_load(&n->dropped);
  out->objects = sq_cache_len(inf->cache);
}

/* ---- informer thread ---------------------------------------------------------- */

static void set_rv(sq_informer *inf, const char *rv) {
  if(!rv || !*rv || strlen(rv) >= RV_MAX)
    return;
  snprintf(inf->rv, sizeof inf->rv, "%s", rv);
  pthread_mutex_lock(&inf->mu);
  memcpy(inf->last_rv, inf->rv, sizeof inf->last_rv);
  pthread_mutex_unlock(&inf->mu);
}

/* Default strip, then the caller's transform. 0 = keep the object. */
static int transform(sq_informer *inf, json_t *obj) {
  sq_cache_strip(obj);
  if(inf->transform && inf->transform(inf->transform_ud, obj)) {
    count(&inf->n.dropped);
    SQ_DEBUG(LOGGER, "%s: transform refused %s", inf->what,
             sq_json_str(obj, "metadata.name") ? sq_json_str(obj, "metadata.name") : "(unnamed)");
    return 1;
  }
  return 0;
}

static void deliver_add(sq_informer *inf, const json_t *o) {
  for(int i = 0; i < inf->nhandlers; i++)
    if(inf->handlers[i].on_add)
      inf->handlers[i].on_add(inf->handlers[i].ud, o);
}

static void deliver_update(sq_informer *inf, const json_t *old_obj, const json_t *new_obj) {
  for(int i = 0; i < inf->nhandlers; i++)
    if(inf->handlers[i].on_update)
      inf->handlers[i].on_update(inf->handlers[i].ud, old_obj, new_obj);
}

static void deliver_delete(sq_informer *inf, const json_t *o, int unknown) {
  for(int i = 0; i < inf->nhandlers; i++)
    if(inf->handlers[i].on_delete)
      inf->handlers[i].on_delete(inf->handlers[i].ud, o, unknown);
}

static void on_change(void *ud, sq_cache_change ch, const json_t *old_obj, const json_t *new_obj) {
  sq_informer *inf = ud;
  switch(ch) {
  case SQ_CACHE_ADDED:
    deliver_add(inf, new_obj);
    break;
  case SQ_CACHE_UPDATED:
    deliver_update(inf, old_obj, new_obj);
    break;
  case SQ_CACHE_DELETED:
    /* the object vanished while we were not watching: its final state is
     * unknown, the cached one is the best we have */
    deliver_delete(inf, old_obj, 1);
    break;
  }
}

/* Sleeps up to ms, returning early when stopped. */
static void sleep_interruptible(sq_informer *inf, int64_t ms) {
  struct timespec ts;
  sq_abstime_in(&ts, ms);
  pthread_mutex_lock(&inf->mu);
  while(!stopping(inf))
    if(pthread_cond_timedwait(&inf->cv, &inf->mu, &ts))
      break;
  pthread_mutex_unlock(&inf->mu);
}

/* Exponential backoff with "equal jitter": half the delay fixed, half random,
 * so retries of many informers spread out but never come back at once. */
static int64_t next_backoff(sq_informer *inf) {
  int64_t d = sq_backoff_jitter_ms(inf->backoff_initial_ms, inf->backoff_max_ms, inf->failures,
                                   (uint32_t)rand_r(&inf->rand_state));
  inf->failures++;
  return d;
}

/* List items of core types come without apiVersion/kind; watch events carry
 * them. Handlers see the same shape either way. */
static void fill_type(sq_informer *inf, json_t *item) {
  if(!json_object_get(item, "apiVersion"))
    json_object_set_new(item, "apiVersion", json_string(inf->api_version));
  if(inf->kind && !json_object_get(item, "kind"))
    json_object_set_new(item, "kind", json_string(inf->kind));
}

/* Full paged LIST into a fresh stage, then replace the cache and deliver the
 * differences. On success inf->rv is the list's resourceVersion. */
static sq_code list_all(sq_informer *inf, sq_err *err) {
  sq_cache_stage *st = NULL;
  char *cont = NULL;
  char list_rv[RV_MAX] = "";
  int pages = 0;
  json_t *page = NULL;
  sq_code rc = sq_cache_stage_new(&st, err);
  if(rc)
    return rc;
  for(;;) {
    if(stopping(inf)) {
      rc = SQ_ECANCELED;
      goto out;
    }
    sq_kube_list_opts o = {.label_selector = inf->selector,
                           .limit = inf->page_size,
                           .continue_token = cont};
    count(&inf->n.lists);
    rc = sq_kube_list_page(inf->k, &inf->gvr, inf->ns, &o, &page, err);
    if(rc) {
      count(&inf->n.list_errors);
      goto out;
    }
    pages++;
    /* Every page of one paged list is the same snapshot; the first page's
     * resourceVersion is where the watch must start. */
    if(!list_rv[0]) {
      const char *rv = sq_json_str(page, "metadata.resourceVersion");
      if(!rv || !*rv || strlen(rv) >= RV_MAX) {
        rc = sq_err_set(err, SQ_EPARSE, "list %s: response without a usable resourceVersion",
                        inf->what);
        goto out;
      }
      snprintf(list_rv, sizeof list_rv, "%s", rv);
    }
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(page, "items"), i, item) {
      if(!json_is_object(item)) {
        count(&inf->n.dropped);
        continue;
      }
      fill_type(inf, item);
      if(transform(inf, item))
        continue;
      sq_err perr;
      sq_code prc = sq_cache_stage_put(st, item, &perr);
      if(prc == SQ_ENOMEM) {
        rc = sq_err_set(err, prc, "list %s: %s", inf->what, perr.message);
        goto out;
      }
      if(prc) {
        count(&inf->n.dropped);
        SQ_WARN(LOGGER, "%s: skipping listed object: %s", inf->what, perr.message);
      }
    }
    const char *next = sq_json_str(page, "metadata.continue");
    free(cont);
    cont = NULL;
    if(next && *next && !(cont = strdup(next))) {
      rc = sq_err_set(err, SQ_ENOMEM, "out of memory listing %s", inf->what);
      goto out;
    }
    json_decref(page);
    page = NULL;
    if(!cont)
      break;
  }
  size_t n = sq_cache_stage_len(st);
  rc = sq_cache_replace(inf->cache, st, inf->nhandlers ? on_change : NULL, inf, err);
  st = NULL; /* taken by replace */
  if(rc)
    goto out;
  set_rv(inf, list_rv);
  SQ_INFO(LOGGER, "%s: listed %zu objects in %d page(s) at resourceVersion %s", inf->what, n,
          pages, list_rv);
out:
  json_decref(page);
  free(cont);
  sq_cache_stage_free(st);
  return rc;
}

static void apply_upsert(sq_informer *inf, json_t *o) {
  json_t *prev = NULL;
  sq_err err;
  sq_code rc = sq_cache_put(inf->cache, o, &prev, &err);
  if(rc) {
    count(&inf->n.dropped);
    SQ_WARN(LOGGER, "%s: skipping watched object: %s", inf->what, err.message);
    return;
  }
  if(prev)
    deliver_update(inf, prev, o);
  else
    deliver_add(inf, o);
  json_decref(prev);
}

static void apply_delete(sq_informer *inf, json_t *o) {
  char key[SQ_CACHE_KEY_MAX];
  sq_err err;
  if(sq_cache_key_of(o, key, sizeof key, &err)) {
    count(&inf->n.dropped);
    SQ_WARN(LOGGER, "%s: skipping deletion: %s", inf->what, err.message);
    return;
  }
  /* Not cached: a relist already reported it gone (or a transform refused
   * it), so there is nobody to tell. */
  if(sq_cache_delete(inf->cache, key, NULL, NULL) == SQ_OK)
    deliver_delete(inf, o, 0);
}

static int on_event(void *ud, const char *type, json_t *object) {
  sq_informer *inf = ud;
  if(stopping(inf))
    return 1;
  count(&inf->n.events);
  if(inf->failures && !inf->watch_events)
    SQ_INFO(LOGGER, "%s: watch re-established at resourceVersion %s after %u failure(s)",
            inf->what, inf->rv, inf->failures);
  inf->failures = 0;
  inf->watch_events++;
  const char *rv = sq_json_str(object, "metadata.resourceVersion");
  if(!strcmp(type, "BOOKMARK")) {
    /* a bookmark only moves the position forward: no object changed */
    count(&inf->n.bookmarks);
    set_rv(inf, rv);
    return 0;
  }
  int upsert = !strcmp(type, "ADDED") || !strcmp(type, "MODIFIED");
  if(!upsert && strcmp(type, "DELETED")) {
    SQ_WARN(LOGGER, "%s: ignoring watch event of unknown type %.32s", inf->what, type);
    return 0;
  }
  /* The event's object is borrowed from the client and the transform edits:
   * work on our own copy. */
  json_t *o = json_deep_copy(object);
  if(!o) {
    /* Ending the watch here makes us resume before this event. */
    inf->watch_failed = 1;
    SQ_ERROR(LOGGER, "%s: out of memory copying a watch event", inf->what);
    return 1;
  }
  if(!transform(inf, o)) {
    if(upsert)
      apply_upsert(inf, o);
    else
      apply_delete(inf, o);
  }
  json_decref(o);
  set_rv(inf, rv);
  return 0;
}

static void resync(sq_informer *inf) {
  char **keys = NULL;
  size_t n = 0;
  sq_err err;
  if(sq_cache_keys(inf->cache, &keys, &n, &err)) {
    SQ_WARN(LOGGER, "%s: resync skipped: %s", inf->what, err.message);
    return;
  }
  for(size_t i = 0; i < n && !stopping(inf); i++) {
    json_t *o = sq_cache_get(inf->cache, keys[i]);
    if(o)
      deliver_update(inf, o, o);
    json_decref(o);
  }
  sq_cache_keys_free(keys);
  count(&inf->n.resyncs);
  SQ_DEBUG(LOGGER, "%s: resynced %zu objects", inf->what, n);
}

static void maybe_resync(sq_informer *inf) {
  if(inf->resync_ms < 0)
    return;
  int64_t now = sq_mono_ms();
  if(now < inf->next_resync_ms)
    return;
  if(inf->nhandlers)
    resync(inf);
  inf->next_resync_ms = now + inf->resync_ms;
}

/* Watch length: random in [min, max], but ending by the next resync, so the
 * thread is free to deliver it on time. */
static long watch_timeout_s(sq_informer *inf) {
  long span = inf->watch_max_s - inf->watch_min_s;
  long t = inf->watch_min_s;
  if(span > 0)
    t += (long)(rand_r(&inf->rand_state) % (unsigned)(span + 1));
  if(inf->resync_ms >= 0) {
    int64_t left = inf->next_resync_ms - sq_mono_ms();
    long left_s = left <= 1000 ? 1 : (long)((left + 999) / 1000);
    if(left_s < t)
      t = left_s;
  }
  return t;
}

static void *run(void *arg) {
  sq_informer *inf = arg;
  int need_list = 1, listed_once = 0;
  sq_err err;
  while(!stopping(inf)) {
    if(need_list) {
      sq_code rc = list_all(inf, &err);
      if(stopping(inf))
        break;
      if(rc == SQ_EGONE)
        count(&inf->n.gone);
      if(rc) {
        int64_t d = next_backoff(inf);
        SQ_WARN(LOGGER, "%s: list failed (%s), retrying in %lld ms", inf->what, err.message,
                (long long)d);
        sleep_interruptible(inf, d);
        continue;
      }
      need_list = 0;
      inf->failures = 0;
      if(listed_once) {
        count(&inf->n.relists);
      } else {
        listed_once = 1;
        inf->next_resync_ms = sq_mono_ms() + (inf->resync_ms >= 0 ? inf->resync_ms : 0);
        pthread_mutex_lock(&inf->mu);
        inf->synced = 1;
        pthread_cond_broadcast(&inf->cv);
        pthread_mutex_unlock(&inf->mu);
      }
      continue;
    }

    maybe_resync(inf);
    if(stopping(inf))
      break;
    long timeout = watch_timeout_s(inf);
    int64_t t0 = sq_mono_ms();
    inf->watch_events = 0;
    inf->watch_failed = 0;
    count(&inf->n.watches);
    sq_code rc = sq_kube_watch(inf->k, &inf->gvr, inf->ns, inf->rv, inf->selector, timeout,
                               &inf->stop, on_event, inf, &err);
    if(stopping(inf))
      break;
    if(rc == SQ_EGONE) {
      count(&inf->n.gone);
      SQ_INFO(LOGGER, "%s: resourceVersion %s is too old (410 Gone), relisting", inf->what,
              inf->rv);
      need_list = 1;
      continue;
    }
    int64_t short_ms = timeout * 500 < SHORT_WATCH_MS ? timeout * 500 : SHORT_WATCH_MS;
    if(!rc && !inf->watch_failed && (inf->watch_events || sq_mono_ms() - t0 >= short_ms)) {
      /* normal end after timeoutSeconds: resume from where we are */
      SQ_DEBUG(LOGGER, "%s: watch ended after %lld ms, resuming at resourceVersion %s", inf->what,
               (long long)(sq_mono_ms() - t0), inf->rv);
      continue;
    }
    if(!rc && !inf->watch_failed)
      snprintf(err.message, sizeof err.message, "server closed the watch at once");
    else if(inf->watch_failed)
      snprintf(err.message, sizeof err.message, "event could not be processed");
    count(&inf->n.watch_errors);
    int64_t d = next_backoff(inf);
    SQ_WARN(LOGGER, "%s: watch failed (%s), reconnecting in %lld ms from resourceVersion %s",
            inf->what, err.message, (long long)d, inf->rv);
    sleep_interruptible(inf, d);
  }
  /* wake sq_informer_wait_for_sync callers */
  pthread_mutex_lock(&inf->mu);
  pthread_cond_broadcast(&inf->cv);
  pthread_mutex_unlock(&inf->mu);
  return NULL;
}

sq_code sq_informer_start(sq_informer *inf, sq_err *err) {
  if(inf->started)
    return sq_err_set(err, SQ_ESTATE, "informer %s already started", inf->what);
  if(stopping(inf))
    return sq_err_set(err, SQ_ESTATE, "informer %s was stopped", inf->what);
  int e = pthread_create(&inf->thread, NULL, run, inf);
  if(e)
    return sq_err_set(err, SQ_ENOMEM, "informer %s: cannot start thread (error %d)", inf->what, e);
  inf->started = 1;
  SQ_INFO(LOGGER, "%s: informer started", inf->what);
  return SQ_OK;
}

void sq_informer_stop(sq_informer *inf) {
  if(!inf)
    return;
  pthread_mutex_lock(&inf->mu);
  atomic_store(&inf->stop, 1);
  pthread_cond_broadcast(&inf->cv);
  pthread_mutex_unlock(&inf->mu);
  if(inf->started && !inf->joined) {
    pthread_join(inf->thread, NULL);
    inf->joined = 1;
    SQ_INFO(LOGGER, "%s: informer stopped", inf->what);
  }
}

void sq_informer_free(sq_informer *inf) {
  if(!inf)
    return;
  sq_informer_stop(inf);
  sq_cache_free(inf->cache);
  pthread_cond_destroy(&inf->cv);
  pthread_mutex_destroy(&inf->mu);
  free(inf->group);
  free(inf->version);
  free(inf->plural);
  free(inf->kind);
  free(inf->ns);
  free(inf->selector);
  free(inf->api_version);
  free(inf);
}
