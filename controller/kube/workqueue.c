/* workqueue.c — the operator's work queue; see include/sqltde/kube/workqueue.h.
 *
 * One mutex guards everything. Each distinct key has one entry in a chained
 * hash table; the entry carries the key's whole state:
 *   dirty       needs processing (counted by the depth metric)
 *   queued      linked into the ready FIFO (implies dirty)
 *   processing  a worker holds it; dirty && processing means "re-queue on done"
 *   hn          membership in the delay heap
 *   failures    rate-limiter failure count
 * and is freed as soon as none of them holds. */
#include "sqltde/kube/workqueue.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sqltde/kube/heap.h"
#include "sqltde/kube/ratelimit.h"

const double sq_wq_hist_bounds[SQ_WQ_HIST_BUCKETS] = {
    1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1e0, 1e1, 1e2, 1e3};

typedef struct wq_entry {
  struct wq_entry *hnext;        /* hash chain */
  struct wq_entry *qnext;        /* ready FIFO */
  struct wq_entry *pprev, *pnext; /* processing list (for the metrics scan) */
  sq_heap_node hn;               /* delay heap */
  int64_t added_ms;              /* when it became dirty */
  int64_t started_ms;            /* when a worker took it */
  unsigned failures;
  unsigned dirty : 1, queued : 1, processing : 1;
  uint64_t hash;
  size_t keylen;
  char key[]; /* NUL-terminated copy */
} wq_entry;

#define ENTRY_OF_NODE(n) ((wq_entry *)((char *)(n) - offsetof(wq_entry, hn)))

/* Below this many buckets the table never shrinks: a few hundred bytes. */
#define MIN_BUCKETS 16
#define DEFAULT_MAX_WAIT_MS 1000

struct sq_wq {
  pthread_mutex_t mu;
  pthread_cond_t cond; /* getters wait here */
  pthread_cond_t idle; /* shutdown_drain waits here */

  wq_entry **buckets;
  size_t nbuckets, nkeys;

  wq_entry *qhead, *qtail; /* ready FIFO */
  size_t qlen;
  wq_entry *proc; /* processing list head */
  size_t nproc;
  size_t ndirty;
  sq_heap heap;

  const sq_clock *clock;
  int64_t backoff_base_ms, backoff_max_ms, max_wait_ms;
  void (*observe)(void *ud, int work, double seconds);
  void *observe_ud;
  int bucket_on;
  sq_bucket bucket;

  int shutting_down; /* adds are dropped; until shut, getters drain the FIFO */
  int shut;          /* getters return SQ_ECANCELED */

  uint64_t adds_total, retries_total;
  sq_wq_hist queue_hist, work_hist;
  char *name;
};

/* ---- small helpers ------------------------------------------------------ */

static int64_t now_ms(const sq_wq *q) { return q->clock->mono_ms(q->clock->ud); }

static int64_t real_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t sat_add(int64_t a, int64_t b) {
  if(b > 0 && a > INT64_MAX - b)
    return INT64_MAX;
  return a + b;
}

static uint64_t hash_key(const char *s, size_t len) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a: short keys, no adversary */
  for(size_t i = 0; i < len; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211ULL;
  }
  return h;
}

static void hist_observe(sq_wq_hist *h, int64_t ms) {
  double s = (ms > 0 ? (double)ms : 0.0) / 1000.0;
  h->count++;
  h->sum += s;
  for(int i = 0; i < SQ_WQ_HIST_BUCKETS; i++)
    if(s <= sq_wq_hist_bounds[i])
      h->le[i]++;
}

static int key_ok(const char *key, size_t *len) {
  if(!key || !*key)
    return 0;
  *len = strnlen(key, SQ_WQ_KEY_MAX);
  return *len < SQ_WQ_KEY_MAX;
}

/* ---- hash table --------------------------------------------------------- */

static wq_entry *lookup(const sq_wq *q, const char *key, size_t len, uint64_t h) {
  for(wq_entry *e = q->buckets[h & (q->nbuckets - 1)]; e; e = e->hnext)
    if(e->hash == h && e->keylen == len && !memcmp(e->key, key, len))
      return e;
  return NULL;
}

/* Rehashes into n buckets; on allocation failure keeps the old table (only
 * chains get longer), so resizing never fails an operation. */
static void resize(sq_wq *q, size_t n) {
  wq_entry **nb = calloc(n, sizeof *nb);
  if(!nb)
    return;
  for(size_t i = 0; i < q->nbuckets; i++) {
    wq_entry *e = q->buckets[i];
    while(e) {
      wq_entry *next = e->hnext;
      size_t j = e->hash & (n - 1);
      e->hnext = nb[j];
      nb[j] = e;
      e = next;
    }
  }
  free(q->buckets);
  q->buckets = nb;
  q->nbuckets = n;
}

static wq_entry *get_or_create(sq_wq *q, const char *key, size_t len) {
  uint64_t h = hash_key(key, len);
  wq_entry *e = lookup(q, key, len, h);
  if(e)
    return e;
  e = calloc(1, sizeof *e + len + 1);
  if(!e)
    return NULL;
  memcpy(e->key, key, len);
  e->keylen = len;
  e->hash = h;
  sq_heap_node_init(&e->hn);
  size_t b = h & (q->nbuckets - 1);
  e->hnext = q->buckets[b];
  q->buckets[b] = e;
  q->nkeys++;
  if(q->nkeys > q->nbuckets)
    resize(q, q->nbuckets * 2);
  return e;
}

/* Frees e once it carries no state; returns 1 if freed. */
static int maybe_free(sq_wq *q, wq_entry *e) {
  if(e->dirty || e->queued || e->processing || sq_heap_member(&e->hn) || e->failures)
    return 0;
  wq_entry **pp = &q->buckets[e->hash & (q->nbuckets - 1)];
  while(*pp != e)
    pp = &(*pp)->hnext;
  *pp = e->hnext;
  free(e);
  q->nkeys--;
  /* shrink with hysteresis so a burst of distinct keys does not pin memory */
  if(q->nbuckets > MIN_BUCKETS && q->nkeys < q->nbuckets / 8)
    resize(q, q->nbuckets / 2);
  return 1;
}

/* ---- queue state transitions (lock held) -------------------------------- */

static void fifo_push(sq_wq *q, wq_entry *e) {
  e->qnext = NULL;
  if(q->qtail)
    q->qtail->qnext = e;
  else
    q->qhead = e;
  q->qtail = e;
  q->qlen++;
  e->queued = 1;
}

static wq_entry *fifo_pop(sq_wq *q) {
  wq_entry *e = q->qhead;
  if(!e)
    return NULL;
  q->qhead = e->qnext;
  if(!q->qhead)
    q->qtail = NULL;
  q->qlen--;
  e->qnext = NULL;
  e->queued = 0;
  return e;
}

/* client-go Add: de-duplicate on dirty; a processing key waits for done. */
static void add_locked(sq_wq *q, wq_entry *e, int64_t now) {
  if(e->dirty)
    return;
  e->dirty = 1;
  q->ndirty++;
  q->adds_total++;
  e->added_ms = now;
  if(e->processing)
    return;
  fifo_push(q, e);
  pthread_cond_signal(&q->cond);
}

/* Moves every delayed key whose time has come into the FIFO. */
static void promote_due(sq_wq *q, int64_t now) {
  sq_heap_node *n;
  while((n = sq_heap_peek(&q->heap)) && n->when <= now) {
    sq_heap_pop(&q->heap);
    add_locked(q, ENTRY_OF_NODE(n), now);
  }
}

static void drop_delayed(sq_wq *q) {
  sq_heap_node *n;
  while((n = sq_heap_pop(&q->heap)))
    maybe_free(q, ENTRY_OF_NODE(n));
}

static sq_code add_after_locked(sq_wq *q, wq_entry *e, int64_t delay_ms, int64_t now) {
  if(delay_ms <= 0) {
    add_locked(q, e, now);
    return SQ_OK;
  }
  int64_t when = sat_add(now, delay_ms);
  if(sq_heap_member(&e->hn)) {
    if(when >= e->hn.when)
      return SQ_OK; /* the earlier ready time wins */
    sq_heap_rekey(&q->heap, &e->hn, when);
  } else if(sq_heap_push(&q->heap, &e->hn, when)) {
    maybe_free(q, e);
    return SQ_ENOMEM;
  }
  /* a new earliest deadline: waiting getters must shorten their waits */
  if(sq_heap_peek(&q->heap) == &e->hn)
    pthread_cond_broadcast(&q->cond);
  return SQ_OK;
}

static void proc_link(sq_wq *q, wq_entry *e) {
  e->pprev = NULL;
  e->pnext = q->proc;
  if(q->proc)
    q->proc->pprev = e;
  q->proc = e;
  q->nproc++;
  e->processing = 1;
}

static void proc_unlink(sq_wq *q, wq_entry *e) {
  if(e->pprev)
    e->pprev->pnext = e->pnext;
  else
    q->proc = e->pnext;
  if(e->pnext)
    e->pnext->pprev = e->pprev;
  e->pprev = e->pnext = NULL;
  q->nproc--;
  e->processing = 0;
}

/* One non-blocking attempt: SQ_OK with the key copied, SQ_ECANCELED, or
 * SQ_ETIMEOUT when nothing is ready. */
static sq_code try_get_locked(sq_wq *q, char *key) {
  if(q->shut)
    return SQ_ECANCELED;
  int64_t now = now_ms(q);
  if(!q->shutting_down)
    promote_due(q, now);
  wq_entry *e = fifo_pop(q);
  if(!e) {
    /* draining ends when nothing is queued and no done() can re-queue */
    if(q->shutting_down && q->nproc == 0)
      return SQ_ECANCELED;
    return SQ_ETIMEOUT;
  }
  e->dirty = 0;
  q->ndirty--;
  proc_link(q, e);
  e->started_ms = now;
  hist_observe(&q->queue_hist, now - e->added_ms);
  if(q->observe)
    q->observe(q->observe_ud, 0, (double)(now - e->added_ms) / 1000.0);
  memcpy(key, e->key, e->keylen + 1);
  return SQ_OK;
}

static void timed_wait(sq_wq *q, pthread_cond_t *c, int64_t ms) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_sec += (time_t)(ms / 1000);
  ts.tv_nsec += (long)(ms % 1000) * 1000000L;
  if(ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  pthread_cond_timedwait(c, &q->mu, &ts);
}

/* ---- public API --------------------------------------------------------- */

sq_code sq_wq_new(const sq_wq_opts *opts, sq_wq **out, sq_err *err) {
  sq_wq_opts def = {0};
  if(!opts)
    opts = &def;
  *out = NULL;
  sq_wq *q = calloc(1, sizeof *q);
  if(!q)
    return sq_err_set(err, SQ_ENOMEM, "work queue: out of memory");
  q->name = strdup(opts->name ? opts->name : "");
  q->nbuckets = MIN_BUCKETS;
  q->buckets = calloc(q->nbuckets, sizeof *q->buckets);
  if(!q->name || !q->buckets) {
    free(q->name);
    free(q->buckets);
    free(q);
    return sq_err_set(err, SQ_ENOMEM, "work queue: out of memory");
  }
  q->clock = opts->clock ? opts->clock : sq_clock_real();
  q->backoff_base_ms = opts->backoff_base_ms > 0 ? opts->backoff_base_ms : SQ_BACKOFF_BASE_MS;
  q->backoff_max_ms = opts->backoff_max_ms > 0 ? opts->backoff_max_ms : SQ_BACKOFF_MAX_MS;
  q->max_wait_ms = opts->max_wait_ms > 0 ? opts->max_wait_ms : DEFAULT_MAX_WAIT_MS;
  q->observe = opts->observe;
  q->observe_ud = opts->observe_ud;
  q->bucket_on = opts->bucket_qps >= 0;
  sq_bucket_init(&q->bucket, opts->bucket_qps, opts->bucket_burst, now_ms(q));
  sq_heap_init(&q->heap);

  /* condvars on CLOCK_MONOTONIC: a wall-clock jump must not stall getters */
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_mutex_init(&q->mu, NULL);
  pthread_cond_init(&q->cond, &ca);
  pthread_cond_init(&q->idle, &ca);
  pthread_condattr_destroy(&ca);
  *out = q;
  return SQ_OK;
}

void sq_wq_free(sq_wq *q) {
  if(!q)
    return;
  sq_heap_free(&q->heap); /* first: it touches the nodes inside entries */
  for(size_t i = 0; i < q->nbuckets; i++) {
    wq_entry *e = q->buckets[i];
    while(e) {
      wq_entry *next = e->hnext;
      free(e);
      e = next;
    }
  }
  free(q->buckets);
  pthread_cond_destroy(&q->cond);
  pthread_cond_destroy(&q->idle);
  pthread_mutex_destroy(&q->mu);
  free(q->name);
  free(q);
}

const char *sq_wq_name(const sq_wq *q) { return q->name; }

sq_code sq_wq_add(sq_wq *q, const char *key) {
  size_t len;
  if(!key_ok(key, &len))
    return SQ_EINVAL;
  sq_code rc = SQ_OK;
  pthread_mutex_lock(&q->mu);
  if(q->shutting_down) {
    rc = SQ_ECANCELED;
    goto out;
  }
  wq_entry *e = get_or_create(q, key, len);
  if(!e) {
    rc = SQ_ENOMEM;
    goto out;
  }
  add_locked(q, e, now_ms(q));
out:
  pthread_mutex_unlock(&q->mu);
  return rc;
}

sq_code sq_wq_add_after(sq_wq *q, const char *key, int64_t delay_ms) {
  size_t len;
  if(!key_ok(key, &len))
    return SQ_EINVAL;
  sq_code rc = SQ_OK;
  pthread_mutex_lock(&q->mu);
  if(q->shutting_down) {
    rc = SQ_ECANCELED;
    goto out;
  }
  q->retries_total++;
  wq_entry *e = get_or_create(q, key, len);
  if(!e) {
    rc = SQ_ENOMEM;
    goto out;
  }
  rc = add_after_locked(q, e, delay_ms, now_ms(q));
out:
  pthread_mutex_unlock(&q->mu);
  return rc;
}

sq_code sq_wq_add_rate_limited(sq_wq *q, const char *key, int64_t *delay_out) {
  size_t len;
  if(delay_out)
    *delay_out = 0;
  if(!key_ok(key, &len))
    return SQ_EINVAL;
  sq_code rc = SQ_OK;
  pthread_mutex_lock(&q->mu);
  if(q->shutting_down) {
    rc = SQ_ECANCELED;
    goto out;
  }
  q->retries_total++;
  wq_entry *e = get_or_create(q, key, len);
  if(!e) {
    rc = SQ_ENOMEM;
    goto out;
  }
  int64_t now = now_ms(q);
  int64_t d = sq_backoff_ms(q->backoff_base_ms, q->backoff_max_ms, e->failures);
  if(e->failures < UINT_MAX)
    e->failures++;
  if(q->bucket_on) {
    /* both limiters are consulted every time, as in client-go's MaxOf, so
     * the bucket accounts for every retry */
    int64_t b = sq_bucket_reserve(&q->bucket, now);
    if(b > d)
      d = b;
  }
  if(delay_out)
    *delay_out = d;
  rc = add_after_locked(q, e, d, now);
out:
  pthread_mutex_unlock(&q->mu);
  return rc;
}

void sq_wq_forget(sq_wq *q, const char *key) {
  size_t len;
  if(!key_ok(key, &len))
    return;
  pthread_mutex_lock(&q->mu);
  wq_entry *e = lookup(q, key, len, hash_key(key, len));
  if(e) {
    e->failures = 0;
    maybe_free(q, e);
  }
  pthread_mutex_unlock(&q->mu);
}

unsigned sq_wq_num_requeues(sq_wq *q, const char *key) {
  size_t len;
  unsigned n = 0;
  if(!key_ok(key, &len))
    return 0;
  pthread_mutex_lock(&q->mu);
  wq_entry *e = lookup(q, key, len, hash_key(key, len));
  if(e)
    n = e->failures;
  pthread_mutex_unlock(&q->mu);
  return n;
}

sq_code sq_wq_get_wait(sq_wq *q, char *key, size_t keysz, int64_t timeout_ms) {
  if(!key || keysz < SQ_WQ_KEY_MAX)
    return SQ_EINVAL;
  key[0] = '\0';
  int64_t deadline = timeout_ms > 0 ? sat_add(real_ms(), timeout_ms) : 0;
  sq_code rc;
  pthread_mutex_lock(&q->mu);
  for(;;) {
    rc = try_get_locked(q, key);
    if(rc != SQ_ETIMEOUT || timeout_ms == 0)
      break;
    /* sleep until the earliest delayed key is due (by the queue's clock),
     * the caller's deadline (real time), or max_wait_ms, whichever first */
    int64_t wait = -1;
    sq_heap_node *top = q->shutting_down ? NULL : sq_heap_peek(&q->heap);
    if(top) {
      wait = top->when - now_ms(q);
      if(wait < 1)
        wait = 1;
      if(wait > q->max_wait_ms)
        wait = q->max_wait_ms;
    }
    if(timeout_ms > 0) {
      int64_t rem = deadline - real_ms();
      if(rem <= 0)
        break; /* rc is SQ_ETIMEOUT */
      if(wait < 0 || rem < wait)
        wait = rem < q->max_wait_ms ? rem : q->max_wait_ms;
    }
    if(wait < 0)
      pthread_cond_wait(&q->cond, &q->mu);
    else
      timed_wait(q, &q->cond, wait);
  }
  pthread_mutex_unlock(&q->mu);
  return rc;
}

sq_code sq_wq_get(sq_wq *q, char *key, size_t keysz) { return sq_wq_get_wait(q, key, keysz, -1); }

sq_code sq_wq_try_get(sq_wq *q, char *key, size_t keysz) {
  return sq_wq_get_wait(q, key, keysz, 0);
}

sq_code sq_wq_done(sq_wq *q, const char *key) {
  size_t len;
  if(!key_ok(key, &len))
    return SQ_EINVAL;
  sq_code rc = SQ_OK;
  pthread_mutex_lock(&q->mu);
  wq_entry *e = lookup(q, key, len, hash_key(key, len));
  if(!e || !e->processing) {
    rc = SQ_ESTATE;
    goto out;
  }
  proc_unlink(q, e);
  int64_t worked = now_ms(q) - e->started_ms;
  hist_observe(&q->work_hist, worked);
  if(q->observe)
    q->observe(q->observe_ud, 1, (double)worked / 1000.0);
  if(e->dirty) {
    fifo_push(q, e);
    pthread_cond_signal(&q->cond);
  }
  maybe_free(q, e);
  if(q->shutting_down) {
    /* draining getters wait for the last done; the drainer for emptiness */
    pthread_cond_broadcast(&q->cond);
    pthread_cond_broadcast(&q->idle);
  }
out:
  pthread_mutex_unlock(&q->mu);
  return rc;
}

void sq_wq_wake(sq_wq *q) {
  pthread_mutex_lock(&q->mu);
  if(!q->shutting_down)
    promote_due(q, now_ms(q));
  pthread_cond_broadcast(&q->cond);
  pthread_mutex_unlock(&q->mu);
}

size_t sq_wq_len(sq_wq *q) {
  pthread_mutex_lock(&q->mu);
  size_t n = q->qlen;
  pthread_mutex_unlock(&q->mu);
  return n;
}

int sq_wq_shutting_down(sq_wq *q) {
  pthread_mutex_lock(&q->mu);
  int s = q->shutting_down;
  pthread_mutex_unlock(&q->mu);
  return s;
}

void sq_wq_shutdown(sq_wq *q) {
  pthread_mutex_lock(&q->mu);
  q->shutting_down = 1;
  q->shut = 1;
  drop_delayed(q);
  pthread_cond_broadcast(&q->cond);
  pthread_cond_broadcast(&q->idle);
  pthread_mutex_unlock(&q->mu);
}

sq_code sq_wq_shutdown_drain(sq_wq *q, int64_t timeout_ms) {
  sq_code rc = SQ_OK;
  int64_t deadline = timeout_ms >= 0 ? sat_add(real_ms(), timeout_ms) : 0;
  pthread_mutex_lock(&q->mu);
  q->shutting_down = 1;
  drop_delayed(q);
  pthread_cond_broadcast(&q->cond);
  while(!q->shut && (q->qlen > 0 || q->nproc > 0)) {
    if(timeout_ms < 0) {
      pthread_cond_wait(&q->idle, &q->mu);
      continue;
    }
    int64_t rem = deadline - real_ms();
    if(rem <= 0) {
      rc = SQ_ETIMEOUT;
      break;
    }
    timed_wait(q, &q->idle, rem);
  }
  q->shut = 1;
  pthread_cond_broadcast(&q->cond);
  pthread_mutex_unlock(&q->mu);
  return rc;
}

void sq_wq_stats_get(sq_wq *q, sq_wq_stats *out) {
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&q->mu);
  int64_t now = now_ms(q);
  if(!q->shutting_down)
    promote_due(q, now);
  out->depth = (int64_t)q->ndirty;
  out->adds_total = q->adds_total;
  out->retries_total = q->retries_total;
  out->queue_duration = q->queue_hist;
  out->work_duration = q->work_hist;
  int64_t sum = 0, longest = 0;
  for(const wq_entry *e = q->proc; e; e = e->pnext) {
    int64_t d = now - e->started_ms;
    if(d < 0)
      d = 0;
    sum += d;
    if(d > longest)
      longest = d;
  }
  out->unfinished_work_seconds = (double)sum / 1000.0;
  out->longest_running_processor_seconds = (double)longest / 1000.0;
  out->processing = q->nproc;
  out->delayed = q->heap.n;
  out->keys = q->nkeys;
  pthread_mutex_unlock(&q->mu);
}
