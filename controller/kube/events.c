/* events.c — Events with series aggregation and a spam filter; see
 * include/sqltde/kube/events.h.
 *
 * Layout: keys and the bounded LRU tables; the pure aggregator (sq_evagg_*);
 * then the recorder: a bounded queue filled by sq_events_emit and one writer
 * thread that owns the aggregator and does all apiserver I/O. */
#include "sqltde/kube/events.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqltde/jsonx.h"
#include "sqltde/log.h"

#define LOGGER "events"

/* Field limits for what we copy from callers (apiserver limits or DNS names). */
#define NAME_MAX_ 253
#define NS_MAX 63
#define KIND_MAX 63
#define APIVERSION_MAX 253
#define UID_MAX 128
#define SUFFIX_LEN 16 /* hex digits after "<object>." */

/* ---- keys ----------------------------------------------------------------- */

/* Unit separator: cannot occur in Kubernetes names, kinds or reasons, so
 * different tuples never join to the same key. */
#define SEP "\x1f"

void sq_event_ref_from_object(const json_t *obj, sq_event_ref *ref) {
  ref->api_version = sq_json_str(obj, "apiVersion");
  ref->kind = sq_json_str(obj, "kind");
  ref->namespace = sq_json_str(obj, "metadata.namespace");
  ref->name = sq_json_str(obj, "metadata.name");
  ref->uid = sq_json_str(obj, "metadata.uid");
}

static const char *nz(const char *s) { return s ? s : ""; }

char *sq_event_obj_key(const sq_event_ref *ref) {
  char *out = NULL;
  if(asprintf(&out, "%s" SEP "%s" SEP "%s" SEP "%s" SEP "%s", nz(ref->api_version),
              nz(ref->kind), nz(ref->namespace), nz(ref->name), nz(ref->uid)) < 0)
    return NULL;
  return out;
}

char *sq_event_series_key(const sq_event_ref *ref, sq_event_type type, const char *reason,
                          const char *action, const char *note) {
  char *obj = sq_event_obj_key(ref), *out = NULL;
  if(!obj)
    return NULL;
  if(asprintf(&out, "%s" SEP "%s" SEP "%s" SEP "%s" SEP "%s", obj,
              type == SQ_EVENT_WARNING ? "Warning" : "Normal", nz(reason), nz(action),
              nz(note)) < 0)
    out = NULL;
  free(obj);
  return out;
}

static uint64_t fnv1a(const char *s) {
  uint64_t h = 1469598103934665603ULL;
  for(; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 1099511628211ULL;
  }
  return h;
}

/* ---- bounded LRU table ---------------------------------------------------- */

/* Fixed-size hash index + recency list (head.next = most recent). No
 * resizing: the bound is the point. */
typedef struct lru {
  sq_evagg_link **slots;
  size_t nslots; /* power of two */
  size_t n, max;
  sq_evagg_link head;
} lru;

static int lru_init(lru *t, size_t max) {
  size_t ns = 16;
  while(ns < max)
    ns <<= 1;
  t->slots = calloc(ns, sizeof *t->slots);
  if(!t->slots)
    return -1;
  t->nslots = ns;
  t->n = 0;
  t->max = max;
  t->head.next = t->head.prev = &t->head;
  return 0;
}

static sq_evagg_link *lru_find(const lru *t, const char *key, uint64_t h) {
  for(sq_evagg_link *l = t->slots[h & (t->nslots - 1)]; l; l = l->hnext)
    if(l->hash == h && !strcmp(l->key, key))
      return l;
  return NULL;
}

static void list_unlink(sq_evagg_link *l) {
  l->prev->next = l->next;
  l->next->prev = l->prev;
}

static void list_push_front(lru *t, sq_evagg_link *l) {
  l->next = t->head.next;
  l->prev = &t->head;
  t->head.next->prev = l;
  t->head.next = l;
}

static void lru_touch(lru *t, sq_evagg_link *l) {
  list_unlink(l);
  list_push_front(t, l);
}

static void lru_insert(lru *t, sq_evagg_link *l) {
  sq_evagg_link **slot = &t->slots[l->hash & (t->nslots - 1)];
  l->hnext = *slot;
  *slot = l;
  list_push_front(t, l);
  t->n++;
}

static void lru_remove(lru *t, sq_evagg_link *l) {
  sq_evagg_link **p = &t->slots[l->hash & (t->nslots - 1)];
  while(*p && *p != l)
    p = &(*p)->hnext;
  if(*p)
    *p = l->hnext;
  list_unlink(l);
  t->n--;
}

static sq_evagg_link *lru_oldest(const lru *t) {
  return t->head.prev == &t->head ? NULL : t->head.prev;
}

/* ---- the pure aggregator ---------------------------------------------------- */

typedef struct bucket {
  sq_evagg_link link; /* first member: a link pointer is a bucket pointer */
  int tokens;
  int64_t last_ms; /* refill reference point */
} bucket;

struct sq_evagg {
  sq_evagg_config cfg;
  lru series;  /* of sq_evagg_entry */
  lru buckets; /* of bucket */
  uint64_t evicted;
};

sq_code sq_evagg_new(const sq_evagg_config *cfg, sq_evagg **out) {
  sq_evagg *a = calloc(1, sizeof *a);
  *out = NULL;
  if(!a)
    return SQ_ENOMEM;
  if(cfg)
    a->cfg = *cfg;
  if(a->cfg.window_ms <= 0)
    a->cfg.window_ms = SQ_EVENTS_DEFAULT_WINDOW_MS;
  if(a->cfg.patch_ms <= 0)
    a->cfg.patch_ms = SQ_EVENTS_DEFAULT_PATCH_MS;
  if(a->cfg.burst <= 0)
    a->cfg.burst = SQ_EVENTS_DEFAULT_BURST;
  if(a->cfg.refill_ms <= 0)
    a->cfg.refill_ms = SQ_EVENTS_DEFAULT_REFILL_MS;
  if(!a->cfg.max_entries)
    a->cfg.max_entries = SQ_EVENTS_DEFAULT_MAX_ENTRIES;
  if(lru_init(&a->series, a->cfg.max_entries) || lru_init(&a->buckets, a->cfg.max_entries)) {
    free(a->series.slots);
    free(a);
    return SQ_ENOMEM;
  }
  *out = a;
  return SQ_OK;
}

static void entry_free(sq_evagg_entry *e) {
  free(e->link.key);
  free(e->obj_key);
  json_decref(e->event);
  free(e);
}

static void bucket_free(bucket *b) {
  free(b->link.key);
  free(b);
}

void sq_evagg_forget(sq_evagg *a, sq_evagg_entry *e) {
  lru_remove(&a->series, &e->link);
  entry_free(e);
}

void sq_evagg_free(sq_evagg *a) {
  sq_evagg_link *l;
  if(!a)
    return;
  while((l = lru_oldest(&a->series)))
    sq_evagg_forget(a, (sq_evagg_entry *)l);
  while((l = lru_oldest(&a->buckets))) {
    lru_remove(&a->buckets, l);
    bucket_free((bucket *)l);
  }
  free(a->series.slots);
  free(a->buckets.slots);
  free(a);
}

/* Whole tokens earned since last_ms; the remainder keeps accruing. */
static void bucket_refill(const sq_evagg *a, bucket *b, int64_t now_ms) {
  if(b->tokens >= a->cfg.burst || now_ms < b->last_ms) {
    b->last_ms = now_ms;
    return;
  }
  int64_t n = (now_ms - b->last_ms) / a->cfg.refill_ms;
  if(n <= 0)
    return;
  if(n >= a->cfg.burst - b->tokens) {
    b->tokens = a->cfg.burst;
    b->last_ms = now_ms;
  } else {
    b->tokens += (int)n;
    b->last_ms += n * a->cfg.refill_ms;
  }
}

int sq_evagg_tokens(sq_evagg *a, const char *obj_key, int64_t now_ms) {
  bucket *b = (bucket *)lru_find(&a->buckets, obj_key, fnv1a(obj_key));
  if(!b)
    return a->cfg.burst;
  bucket_refill(a, b, now_ms);
  return b->tokens;
}

/* Takes one token for obj_key; 0 when the bucket is empty, -1 on ENOMEM. */
static int take_token(sq_evagg *a, const char *obj_key, int64_t now_ms) {
  uint64_t h = fnv1a(obj_key);
  bucket *b = (bucket *)lru_find(&a->buckets, obj_key, h);
  if(b) {
    lru_touch(&a->buckets, &b->link);
    bucket_refill(a, b, now_ms);
  } else {
    if(a->buckets.n >= a->buckets.max) {
      /* Forgetting the least recent object only gives it a fresh bucket:
       * the table bound matters more than that object's history. */
      sq_evagg_link *old = lru_oldest(&a->buckets);
      lru_remove(&a->buckets, old);
      bucket_free((bucket *)old);
    }
    b = calloc(1, sizeof *b);
    if(!b || !(b->link.key = strdup(obj_key))) {
      free(b);
      return -1;
    }
    b->link.hash = h;
    b->tokens = a->cfg.burst;
    b->last_ms = now_ms;
    lru_insert(&a->buckets, &b->link);
  }
  if(b->tokens <= 0)
    return 0;
  b->tokens--;
  return 1;
}

sq_evagg_verdict sq_evagg_observe(sq_evagg *a, const char *obj_key, const char *series_key,
                                  int64_t now_ms, int64_t wall_us, sq_evagg_entry **entry) {
  uint64_t h = fnv1a(series_key);
  sq_evagg_entry *e = (sq_evagg_entry *)lru_find(&a->series, series_key, h);
  *entry = NULL;
  /* A series idle for the whole window has ended: the next occurrence starts
   * a new Event object (client-go's finishTime). Unwritten counts keep it. */
  if(e && now_ms - e->last_ms >= a->cfg.window_ms && e->written == e->count) {
    sq_evagg_forget(a, e);
    e = NULL;
  }
  if(e) {
    e->count++;
    e->last_ms = now_ms;
    e->last_wall_us = wall_us;
    lru_touch(&a->series, &e->link);
    *entry = e;
    if(e->written > 0 && now_ms - e->last_write_ms >= a->cfg.patch_ms)
      return SQ_EVAGG_PATCH;
    return SQ_EVAGG_DEFER;
  }
  /* Only a new Event object costs a token: repeats are already folded. */
  int t = take_token(a, obj_key, now_ms);
  if(t < 0)
    return SQ_EVAGG_NOMEM;
  if(t == 0)
    return SQ_EVAGG_SPAM;
  if(a->series.n >= a->series.max) {
    sq_evagg_forget(a, (sq_evagg_entry *)lru_oldest(&a->series));
    a->evicted++;
  }
  e = calloc(1, sizeof *e);
  if(!e || !(e->link.key = strdup(series_key)) || !(e->obj_key = strdup(obj_key))) {
    if(e) {
      free(e->link.key);
      free(e);
    }
    return SQ_EVAGG_NOMEM;
  }
  e->link.hash = h;
  e->count = 1;
  e->first_ms = e->last_ms = e->last_write_ms = now_ms;
  e->last_wall_us = wall_us;
  lru_insert(&a->series, &e->link);
  *entry = e;
  return SQ_EVAGG_CREATE;
}

void sq_evagg_written(sq_evagg *a, sq_evagg_entry *e, int64_t count, json_t *event,
                      int64_t now_ms) {
  (void)a;
  e->written = count;
  e->last_write_ms = now_ms;
  if(event) {
    json_decref(e->event);
    e->event = event;
  }
}

void sq_evagg_write_failed(sq_evagg *a, sq_evagg_entry *e, int64_t now_ms) {
  (void)a;
  e->last_write_ms = now_ms;
}

static int entry_pending(const sq_evagg_entry *e) { return e->written > 0 && e->count > e->written; }

size_t sq_evagg_due(sq_evagg *a, int64_t now_ms, int force, sq_evagg_entry **out, size_t max) {
  size_t n = 0;
  for(sq_evagg_link *l = a->series.head.prev; l != &a->series.head && n < max; l = l->prev) {
    sq_evagg_entry *e = (sq_evagg_entry *)l;
    if(entry_pending(e) && (force || now_ms - e->last_write_ms >= a->cfg.patch_ms))
      out[n++] = e;
  }
  return n;
}

int64_t sq_evagg_next_due_ms(const sq_evagg *a) {
  int64_t best = INT64_MAX;
  for(const sq_evagg_link *l = a->series.head.next; l != &a->series.head; l = l->next) {
    const sq_evagg_entry *e = (const sq_evagg_entry *)l;
    if(entry_pending(e) && e->last_write_ms + a->cfg.patch_ms < best)
      best = e->last_write_ms + a->cfg.patch_ms;
  }
  return best;
}

void sq_evagg_expire(sq_evagg *a, int64_t now_ms) {
  sq_evagg_link *l, *prev;
  /* Oldest first; stop at the first series still inside its window, as the
   * list is ordered by last occurrence. */
  for(l = a->series.head.prev; l != &a->series.head; l = prev) {
    prev = l->prev;
    sq_evagg_entry *e = (sq_evagg_entry *)l;
    if(now_ms - e->last_ms < a->cfg.window_ms)
      break;
    if(e->written == e->count || e->written == 0)
      sq_evagg_forget(a, e);
  }
  for(l = a->buckets.head.prev; l != &a->buckets.head; l = prev) {
    prev = l->prev;
    bucket *b = (bucket *)l;
    bucket_refill(a, b, now_ms);
    if(b->tokens >= a->cfg.burst) {
      lru_remove(&a->buckets, l);
      bucket_free(b);
    }
  }
}

size_t sq_evagg_series_count(const sq_evagg *a) { return a->series.n; }
uint64_t sq_evagg_evicted(const sq_evagg *a) { return a->evicted; }

/* ---- the recorder ----------------------------------------------------------- */

static const sq_kube_gvr event_gvr = {"events.k8s.io", "v1", "events", "Event", 1};

typedef struct item {
  int64_t mono_ms, wall_us;
  sq_event_type type;
  char *api_version, *kind, *ns, *name, *uid, *reason, *action, *note;
} item;

struct sq_events {
  sq_kube *k; /* borrowed */
  char *controller, *instance;
  const sq_clock *clock;
  sq_evagg *agg; /* writer thread only (or nobody before start) */

  pthread_mutex_t mu;
  pthread_cond_t cv;      /* writer waits: queue, stop, flush */
  pthread_cond_t done_cv; /* flushers wait */
  item **q;
  size_t qmax, qhead, qlen;
  int stop, started;
  uint64_t flush_req, flush_done;
  sq_events_stats st;
  pthread_t thr;

  uint64_t last_suffix; /* writer thread only */
};

/* Copies at most max bytes of src as valid UTF-8 (cut on a character
 * boundary, invalid bytes replaced by '?': the apiserver and jansson reject
 * invalid UTF-8). dst must hold min(strlen(src), max) + 1 bytes. */
static void copy_utf8(char *dst, const char *src, size_t max) {
  const unsigned char *s = (const unsigned char *)src;
  size_t o = 0;
  while(*s) {
    size_t n = 0;
    unsigned char c = s[0];
    if(c < 0x80)
      n = 1;
    else if(c >= 0xC2 && c <= 0xDF)
      n = 2;
    else if(c >= 0xE0 && c <= 0xEF)
      n = 3;
    else if(c >= 0xF0 && c <= 0xF4)
      n = 4;
    int ok = n > 0;
    for(size_t i = 1; ok && i < n; i++)
      ok = (s[i] & 0xC0) == 0x80;
    if(ok && n >= 3) { /* no overlongs, surrogates or code points > U+10FFFF */
      if((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F) ||
         (c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] > 0x8F))
        ok = 0;
    }
    if(!ok)
      n = 1;
    if(o + n > max)
      break;
    if(ok)
      memcpy(dst + o, s, n);
    else
      dst[o] = '?';
    o += n;
    s += n;
  }
  dst[o] = '\0';
}

static size_t cut_len(const char *s, size_t max) {
  size_t n = s ? strlen(s) : 0;
  return n < max ? n : max;
}

/* One allocation for the item and its strings. */
static item *item_new(const sq_event_ref *ref, sq_event_type type, const char *reason,
                      const char *action, const char *note) {
  const char *src[8] = {ref->api_version, ref->kind, ref->namespace, ref->name,
                        ref->uid,         reason,    action,         note};
  const size_t max[8] = {APIVERSION_MAX, KIND_MAX, NS_MAX, NAME_MAX_,
                         UID_MAX, SQ_EVENTS_REASON_MAX, SQ_EVENTS_ACTION_MAX, SQ_EVENTS_NOTE_MAX};
  size_t total = sizeof(item);
  for(int i = 0; i < 8; i++)
    total += cut_len(src[i], max[i]) + 1;
  item *it = malloc(total);
  if(!it)
    return NULL;
  char *p = (char *)(it + 1);
  char **dst[8] = {&it->api_version, &it->kind, &it->ns,     &it->name,
                   &it->uid,         &it->reason, &it->action, &it->note};
  for(int i = 0; i < 8; i++) {
    *dst[i] = p;
    copy_utf8(p, nz(src[i]), max[i]);
    p += cut_len(src[i], max[i]) + 1;
  }
  it->type = type;
  return it;
}

sq_code sq_events_new(sq_kube *k, const sq_events_config *cfg, sq_events **out, sq_err *err) {
  *out = NULL;
  if(!cfg->reporting_instance || !cfg->reporting_instance[0])
    return sq_err_set(err, SQ_EINVAL, "events: reporting instance (identity) is required");
  sq_events *r = calloc(1, sizeof *r);
  if(!r)
    return sq_err_set(err, SQ_ENOMEM, "events: out of memory");
  r->k = k;
  r->clock = cfg->clock ? cfg->clock : sq_clock_real();
  r->qmax = cfg->queue_max ? cfg->queue_max : SQ_EVENTS_DEFAULT_QUEUE;
  r->controller = strdup(cfg->reporting_controller ? cfg->reporting_controller
                                                   : SQ_EVENTS_REPORTING_CONTROLLER);
  /* reportingInstance is limited to 128 characters by validation. */
  r->instance = strndup(cfg->reporting_instance, 128);
  r->q = calloc(r->qmax, sizeof *r->q);
  if(!r->controller || !r->instance || !r->q || sq_evagg_new(&cfg->agg, &r->agg)) {
    free(r->controller);
    free(r->instance);
    free(r->q);
    free(r);
    return sq_err_set(err, SQ_ENOMEM, "events: out of memory");
  }
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cv, NULL);
  pthread_cond_init(&r->done_cv, NULL);
  *out = r;
  return SQ_OK;
}

sq_code sq_events_emit(sq_events *r, const sq_event_ref *regarding, sq_event_type type,
                       const char *reason, const char *action, const char *note) {
  if(!regarding || !regarding->kind || !regarding->kind[0] || !regarding->name ||
     !regarding->name[0] || !reason || !reason[0] || !action || !action[0]) {
    pthread_mutex_lock(&r->mu);
    r->st.dropped_other++;
    pthread_mutex_unlock(&r->mu);
    return SQ_EINVAL;
  }
  /* Stamped here, not when written: aggregation follows when things happened. */
  int64_t mono = r->clock->mono_ms(r->clock->ud);
  int64_t wall = r->clock == sq_clock_real() ? sq_wall_us()
                                             : r->clock->wall_s(r->clock->ud) * 1000000;
  pthread_mutex_lock(&r->mu);
  int full = r->qlen >= r->qmax || r->stop;
  if(full)
    r->st.dropped_queue++;
  pthread_mutex_unlock(&r->mu);
  if(full)
    return SQ_ETOOBIG;
  /* Allocate outside the lock; re-check the bound when inserting. */
  item *it = item_new(regarding, type, reason, action, note ? note : "");
  if(!it) {
    pthread_mutex_lock(&r->mu);
    r->st.dropped_other++;
    pthread_mutex_unlock(&r->mu);
    return SQ_ENOMEM;
  }
  it->mono_ms = mono;
  it->wall_us = wall;
  pthread_mutex_lock(&r->mu);
  if(r->qlen >= r->qmax || r->stop) {
    r->st.dropped_queue++;
    pthread_mutex_unlock(&r->mu);
    free(it);
    return SQ_ETOOBIG;
  }
  r->q[(r->qhead + r->qlen) % r->qmax] = it;
  r->qlen++;
  r->st.emitted++;
  pthread_cond_signal(&r->cv);
  pthread_mutex_unlock(&r->mu);
  return SQ_OK;
}

sq_code sq_events_emitf(sq_events *r, const sq_event_ref *regarding, sq_event_type type,
                        const char *reason, const char *action, const char *fmt, ...) {
  char note[SQ_EVENTS_NOTE_MAX + 1];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(note, sizeof note, fmt, ap);
  va_end(ap);
  return sq_events_emit(r, regarding, type, reason, action, note);
}

void sq_events_get_stats(sq_events *r, sq_events_stats *st) {
  pthread_mutex_lock(&r->mu);
  *st = r->st;
  pthread_mutex_unlock(&r->mu);
}

static void count_stat(sq_events *r, uint64_t *field) {
  pthread_mutex_lock(&r->mu);
  (*field)++;
  pthread_mutex_unlock(&r->mu);
}

/* "<object>.<hex>", client-go style; unique within the process. */
static void event_name(sq_events *r, const char *obj, char *out, size_t outlen) {
  uint64_t s = (uint64_t)sq_wall_us() * 1000;
  if(s <= r->last_suffix)
    s = r->last_suffix + 1;
  r->last_suffix = s;
  int keep = (int)cut_len(obj, NAME_MAX_ - 1 - SUFFIX_LEN);
  snprintf(out, outlen, "%.*s.%016llx", keep, obj, (unsigned long long)s);
}

static json_t *event_body(sq_events *r, const item *it, const char *ns, const char *name,
                          int64_t wall_us) {
  char t[40];
  sq_rfc3339_micro(wall_us, t, sizeof t);
  json_t *regarding = json_pack("{s:s, s:s, s:s}", "apiVersion", it->api_version, "kind",
                                it->kind, "name", it->name);
  if(!regarding)
    return NULL;
  if((it->ns[0] && json_object_set_new(regarding, "namespace", json_string(it->ns))) ||
     (it->uid[0] && json_object_set_new(regarding, "uid", json_string(it->uid)))) {
    json_decref(regarding);
    return NULL;
  }
  json_t *ev = json_pack("{s:s, s:s, s:{s:s, s:s}, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o}",
                         "apiVersion", "events.k8s.io/v1", "kind", "Event", "metadata", "name",
                         name, "namespace", ns, "eventTime", t, "reportingController",
                         r->controller, "reportingInstance", r->instance, "action", it->action,
                         "reason", it->reason, "note", it->note, "type",
                         it->type == SQ_EVENT_WARNING ? "Warning" : "Normal", "regarding",
                         regarding);
  return ev;
}

static json_t *series_json(int64_t count, int64_t wall_us) {
  char t[40];
  sq_rfc3339_micro(wall_us, t, sizeof t);
  return json_pack("{s:I, s:s}", "count", (json_int_t)count, "lastObservedTime", t);
}

/* Creates body (renamed until the name is free) and records it in e. */
static sq_code create_event(sq_events *r, sq_evagg_entry *e, json_t *body, const char *obj_name) {
  const char *ns = sq_json_str(body, "metadata.namespace");
  sq_err err;
  sq_code rc = SQ_OK;
  sq_err_clear(&err);
  for(int attempt = 0; attempt < 3; attempt++) {
    char name[NAME_MAX_ + 1];
    event_name(r, obj_name, name, sizeof name);
    json_object_set_new(json_object_get(body, "metadata"), "name", json_string(name));
    json_t *created = NULL;
    rc = sq_kube_create(r->k, &event_gvr, ns, body, &created, &err);
    json_decref(created);
    if(rc != SQ_ECONFLICT) /* 409 here means the name is taken */
      break;
  }
  int64_t now = r->clock->mono_ms(r->clock->ud);
  if(rc) {
    SQ_WARN(LOGGER, "creating event for %s/%s: %s", ns, obj_name, err.message);
    count_stat(r, &r->st.write_errors);
    json_decref(body);
    return rc;
  }
  count_stat(r, &r->st.creates);
  sq_evagg_written(r->agg, e, e->count, body, now);
  return SQ_OK;
}

/* Writes e's count; returns non-zero when the apiserver refused or failed. */
static sq_code patch_event(sq_events *r, sq_evagg_entry *e) {
  json_t *patch = NULL, *out = NULL;
  const char *ns = sq_json_str(e->event, "metadata.namespace");
  const char *name = sq_json_str(e->event, "metadata.name");
  sq_err err;
  sq_err_clear(&err);
  int64_t count = e->count;
  json_t *series = series_json(count, e->last_wall_us);
  if(!series || !(patch = json_pack("{s:O}", "series", series))) {
    json_decref(series);
    sq_evagg_write_failed(r->agg, e, r->clock->mono_ms(r->clock->ud));
    return SQ_ENOMEM;
  }
  sq_code rc = sq_kube_merge_patch(r->k, &event_gvr, ns, name, NULL, patch, &out, &err);
  json_decref(out);
  json_decref(patch);
  if(rc == SQ_ENOTFOUND) {
    /* Deleted (Events have a TTL): start the series again as a new object
     * that carries the count so far. */
    json_t *body = json_deep_copy(e->event);
    const char *obj = sq_json_str(e->event, "regarding.name");
    char objname[NAME_MAX_ + 1];
    snprintf(objname, sizeof objname, "%s", obj ? obj : "event");
    if(body && !json_object_set(body, "series", series)) {
      json_decref(series);
      rc = create_event(r, e, body, objname);
      if(rc)
        sq_evagg_forget(r->agg, e);
      return rc;
    }
    json_decref(body);
    json_decref(series);
    sq_evagg_forget(r->agg, e);
    return SQ_ENOMEM;
  }
  json_decref(series);
  int64_t now = r->clock->mono_ms(r->clock->ud);
  if(rc) {
    SQ_WARN(LOGGER, "updating event series %s/%s: %s", ns, name, err.message);
    count_stat(r, &r->st.write_errors);
    sq_evagg_write_failed(r->agg, e, now);
    return rc;
  }
  count_stat(r, &r->st.patches);
  sq_evagg_written(r->agg, e, count, NULL, now);
  return SQ_OK;
}

static void process_item(sq_events *r, const item *it) {
  char *ok = NULL, *sk = NULL;
  sq_event_ref ref = {it->api_version, it->kind, it->ns, it->name, it->uid};
  sq_evagg_entry *e = NULL;
  ok = sq_event_obj_key(&ref);
  sk = sq_event_series_key(&ref, it->type, it->reason, it->action, it->note);
  if(!ok || !sk) {
    count_stat(r, &r->st.dropped_other);
    goto out;
  }
  SQ_DEBUG(LOGGER, "event %s %s/%s %s: %s", it->type == SQ_EVENT_WARNING ? "Warning" : "Normal",
           it->kind, it->name, it->reason, it->note);
  switch(sq_evagg_observe(r->agg, ok, sk, it->mono_ms, it->wall_us, &e)) {
  case SQ_EVAGG_SPAM:
    count_stat(r, &r->st.dropped_spam);
    break;
  case SQ_EVAGG_NOMEM:
    count_stat(r, &r->st.dropped_other);
    break;
  case SQ_EVAGG_DEFER:
    break;
  case SQ_EVAGG_PATCH:
    (void)patch_event(r, e); /* failures are counted and retried by the due scan */
    break;
  case SQ_EVAGG_CREATE: {
    /* Cluster-scoped objects: apiservers before 1.22 accept an Event with
     * eventTime only in kube-system for them (later ones also "default"). */
    json_t *body = event_body(r, it, it->ns[0] ? it->ns : "kube-system", it->name, it->wall_us);
    if(!body) {
      count_stat(r, &r->st.dropped_other);
      sq_evagg_forget(r->agg, e);
      break;
    }
    /* A failed create forgets the series: the next occurrence tries anew. */
    if(create_event(r, e, body, it->name))
      sq_evagg_forget(r->agg, e);
    break;
  }
  }
out:
  free(ok);
  free(sk);
}

static void process_due(sq_events *r, int force) {
  sq_evagg_entry *due[64];
  /* Each written or failed entry leaves the due set (its last write moves
   * to now), so repeated rounds terminate unless force keeps failing. */
  for(int round = 0; round < 64; round++) {
    size_t n = sq_evagg_due(r->agg, r->clock->mono_ms(r->clock->ud), force, due, 64);
    if(!n)
      return;
    int failed = 0;
    /* patch_event may forget an entry (404 + failed re-create); each entry
     * appears once per round, so later pointers stay valid. */
    for(size_t i = 0; i < n; i++)
      if(patch_event(r, due[i]))
        failed = 1;
    if(force && failed)
      return; /* the apiserver is failing: do not spin on a forced flush */
  }
}

#define BATCH 64

static void *writer_main(void *arg) {
  sq_events *r = arg;
  item *batch[BATCH];
  for(;;) {
    pthread_mutex_lock(&r->mu);
    while(!r->qlen && !r->stop && r->flush_req == r->flush_done) {
      int64_t now = r->clock->mono_ms(r->clock->ud);
      int64_t due = sq_evagg_next_due_ms(r->agg);
      if(due <= now)
        break;
      /* Wake at least every 30 s to end idle series and refilled buckets. */
      int64_t wait = due - now < 30000 ? due - now : 30000;
      struct timespec ts;
      sq_abstime_in(&ts, wait);
      if(pthread_cond_timedwait(&r->cv, &r->mu, &ts) == ETIMEDOUT)
        break;
    }
    size_t n = 0;
    while(r->qlen && n < BATCH) {
      batch[n++] = r->q[r->qhead];
      r->qhead = (r->qhead + 1) % r->qmax;
      r->qlen--;
    }
    int drained = r->qlen == 0;
    int stopping = r->stop;
    uint64_t flush_gen = r->flush_req;
    pthread_mutex_unlock(&r->mu);

    for(size_t i = 0; i < n; i++) {
      process_item(r, batch[i]);
      free(batch[i]);
    }
    int force = drained && (stopping || flush_gen != r->flush_done);
    process_due(r, force);
    sq_evagg_expire(r->agg, r->clock->mono_ms(r->clock->ud));

    pthread_mutex_lock(&r->mu);
    if(force) {
      r->flush_done = flush_gen;
      pthread_cond_broadcast(&r->done_cv);
    }
    int end = stopping && drained;
    pthread_mutex_unlock(&r->mu);
    if(end)
      break;
  }
  return NULL;
}

sq_code sq_events_start(sq_events *r, sq_err *err) {
  if(r->started)
    return sq_err_set(err, SQ_ESTATE, "events: recorder already started");
  if(!r->k)
    return sq_err_set(err, SQ_EINVAL, "events: recorder has no Kubernetes client");
  if(pthread_create(&r->thr, NULL, writer_main, r))
    return sq_err_set(err, SQ_ENOMEM, "events: cannot start writer thread");
  r->started = 1;
  return SQ_OK;
}

sq_code sq_events_flush(sq_events *r, int64_t timeout_ms) {
  struct timespec ts;
  sq_code rc = SQ_OK;
  if(!r->started)
    return SQ_ESTATE;
  sq_abstime_in(&ts, timeout_ms);
  pthread_mutex_lock(&r->mu);
  uint64_t gen = ++r->flush_req;
  pthread_cond_signal(&r->cv);
  while(r->flush_done < gen) {
    if(pthread_cond_timedwait(&r->done_cv, &r->mu, &ts) == ETIMEDOUT) {
      rc = r->flush_done < gen ? SQ_ETIMEOUT : SQ_OK;
      break;
    }
  }
  pthread_mutex_unlock(&r->mu);
  return rc;
}

void sq_events_free(sq_events *r) {
  if(!r)
    return;
  pthread_mutex_lock(&r->mu);
  r->stop = 1;
  pthread_cond_signal(&r->cv);
  pthread_mutex_unlock(&r->mu);
  if(r->started)
    pthread_join(r->thr, NULL);
  while(r->qlen) { /* never started, or stopped with items left */
    free(r->q[r->qhead]);
    r->qhead = (r->qhead + 1) % r->qmax;
    r->qlen--;
  }
  sq_evagg_free(r->agg);
  pthread_cond_destroy(&r->cv);
  pthread_cond_destroy(&r->done_cv);
  pthread_mutex_destroy(&r->mu);
  free(r->q);
  free(r->controller);
  free(r->instance);
  free(r);
}
