/* leader.c — Lease-based leader election; see include/sqltde/kube/leader.h.
 *
 * Layout: the pure decision functions first (no I/O, no clock of their own),
 * then the elector: an election thread that reads the Lease, decides and
 * writes, and a watchdog thread that enforces the renew deadline by the clock
 * even while a request is stuck in the network. */
#include "sqltde/kube/leader.h"

#include <errno.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sqltde/jsonx.h"
#include "sqltde/log.h"

#define LOGGER "leader-election"

/* ---- pure decision part -------------------------------------------------- */

static void copy_str(char *dst, size_t n, const char *src) {
  size_t len = src ? strlen(src) : 0;
  if(len >= n)
    len = n - 1;
  if(len)
    memcpy(dst, src, len);
  dst[len] = '\0';
}

void sq_lease_record_from_json(const json_t *lease, sq_lease_record *rec) {
  memset(rec, 0, sizeof *rec);
  copy_str(rec->holder, sizeof rec->holder, sq_json_str(lease, "spec.holderIdentity"));
  rec->duration_s = sq_json_int(lease, "spec.leaseDurationSeconds", 0);
  copy_str(rec->acquire_time, sizeof rec->acquire_time, sq_json_str(lease, "spec.acquireTime"));
  copy_str(rec->renew_time, sizeof rec->renew_time, sq_json_str(lease, "spec.renewTime"));
  rec->transitions = sq_json_int(lease, "spec.leaseTransitions", 0);
}

static int record_equal(const sq_lease_record *a, const sq_lease_record *b) {
  return !strcmp(a->holder, b->holder) && a->duration_s == b->duration_s &&
         !strcmp(a->acquire_time, b->acquire_time) && !strcmp(a->renew_time, b->renew_time) &&
         a->transitions == b->transitions;
}

int sq_leader_observe(sq_leader_view *v, const sq_lease_record *rec, int64_t now_ms) {
  if(v->have && record_equal(&v->rec, rec))
    return 0;
  v->have = 1;
  v->rec = *rec;
  v->observed_ms = now_ms;
  return 1;
}

int sq_leader_lease_valid(const sq_leader_view *v, int64_t now_ms) {
  if(!v->have || !v->rec.holder[0] || v->rec.duration_s <= 0)
    return 0;
  if(v->rec.duration_s >= INT64_MAX / 4000)
    return 1; /* absurd duration from a peer: valid "forever", without overflow */
  return now_ms - v->observed_ms < v->rec.duration_s * 1000;
}

sq_leader_action sq_leader_decide(const sq_leader_view *v, int lease_exists, const char *me,
                                  int leading, int64_t now_ms) {
  if(!lease_exists)
    return SQ_LEADER_CREATE; /* 409 on create if a rival created it first */
  if(!v->have)
    return SQ_LEADER_WAIT; /* caller must observe before deciding */
  int mine = me && me[0] && !strcmp(v->rec.holder, me);
  if(mine)
    return SQ_LEADER_RENEW;
  if(leading)
    return SQ_LEADER_STEP_DOWN; /* someone else's name is on it now */
  if(sq_leader_lease_valid(v, now_ms))
    return SQ_LEADER_WAIT;
  return SQ_LEADER_TAKE;
}

int sq_leader_renew_expired(int64_t last_ok_ms, int64_t now_ms, int64_t renew_deadline_ms) {
  return now_ms - last_ok_ms >= renew_deadline_ms;
}

const char *sq_leader_action_name(sq_leader_action a) {
  switch(a) {
  case SQ_LEADER_CREATE: return "create";
  case SQ_LEADER_TAKE: return "take";
  case SQ_LEADER_RENEW: return "renew";
  case SQ_LEADER_WAIT: return "wait";
  case SQ_LEADER_STEP_DOWN: return "step-down";
  }
  return "unknown";
}

/* ---- configuration -------------------------------------------------------- */

void sq_leader_config_defaults(sq_leader_config *c) {
  c->lease_duration_ms = SQ_LEADER_DEFAULT_LEASE_MS;
  c->renew_deadline_ms = SQ_LEADER_DEFAULT_RENEW_MS;
  c->retry_period_ms = SQ_LEADER_DEFAULT_RETRY_MS;
}

sq_code sq_leader_config_check(const sq_leader_config *c, sq_err *err) {
  if(!c->lease_namespace || !c->lease_namespace[0])
    return sq_err_set(err, SQ_EINVAL, "leader election: lease namespace is required");
  if(!c->lease_name || !c->lease_name[0])
    return sq_err_set(err, SQ_EINVAL, "leader election: lease name (election id) is required");
  if(c->identity && (!c->identity[0] || strlen(c->identity) > SQ_LEADER_ID_MAX))
    return sq_err_set(err, SQ_EINVAL, "leader election: identity must be 1..%d characters",
                      SQ_LEADER_ID_MAX);
  if(c->lease_duration_ms <= 0 || c->renew_deadline_ms <= 0 || c->retry_period_ms <= 0)
    return sq_err_set(err, SQ_EINVAL, "leader election: durations must be positive");
  if(c->lease_duration_ms % 1000)
    return sq_err_set(err, SQ_EINVAL,
                      "leader election: lease duration must be whole seconds (got %lld ms)",
                      (long long)c->lease_duration_ms);
  if(c->lease_duration_ms <= c->renew_deadline_ms)
    return sq_err_set(err, SQ_EINVAL,
                      "leader election: lease duration (%lld ms) must be greater than the "
                      "renew deadline (%lld ms)",
                      (long long)c->lease_duration_ms, (long long)c->renew_deadline_ms);
  /* client-go: the deadline must leave room for a jittered retry. */
  if(c->renew_deadline_ms * 10 <= c->retry_period_ms * 12)
    return sq_err_set(err, SQ_EINVAL,
                      "leader election: renew deadline (%lld ms) must be greater than "
                      "1.2 x retry period (%lld ms)",
                      (long long)c->renew_deadline_ms, (long long)c->retry_period_ms);
  return SQ_OK;
}

sq_code sq_leader_make_identity(char *out, size_t outlen, sq_err *err) {
  char host[65];
  unsigned char rnd[8];
  if(gethostname(host, sizeof host))
    copy_str(host, sizeof host, "unknown");
  host[sizeof host - 1] = '\0';
  if(RAND_bytes(rnd, sizeof rnd) != 1)
    return sq_err_set(err, SQ_EIO, "leader election: no randomness for the identity");
  char hex[17];
  for(size_t i = 0; i < sizeof rnd; i++)
    snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
  if(outlen < SQ_LEADER_ID_MAX + 1)
    return sq_err_set(err, SQ_EINVAL, "leader election: identity buffer too small");
  snprintf(out, outlen, "%s_%s", host, hex);
  return SQ_OK;
}

/* ---- the elector ---------------------------------------------------------- */

static const sq_kube_gvr lease_gvr = {"coordination.k8s.io", "v1", "leases", "Lease", 1};

typedef enum elector_state { ST_CANDIDATE, ST_LEADING, ST_LOST, ST_STOPPED } elector_state;

typedef enum outcome { OUT_FAIL, OUT_WON, OUT_STEP_DOWN } outcome;

struct sq_leader {
  sq_kube *k;                    /* borrowed */
  char *ns, *name;
  char id[SQ_LEADER_ID_MAX + 1];
  int64_t lease_ms, renew_ms, retry_ms;
  int release;
  sq_leader_config cb;           /* only the callbacks and ud are used */

  pthread_t election, watchdog;
  int threads;                   /* threads started */
  pthread_mutex_t mu;
  pthread_cond_t cv;             /* state, cancel, last_ok changes */
  /* guarded by mu */
  int cancel;
  elector_state state;
  int started_cb;                /* on_started_leading was called */
  int64_t last_ok_ms;
  sq_leader_status st;

  /* election thread only (and sq_leader_stop after the join) */
  sq_leader_view view;
  json_t *lease;                 /* last Lease we read or wrote */
  int held;                      /* our last write named us and nothing said otherwise */
  char reported[SQ_LEADER_ID_MAX + 1];
  uint64_t rng;
};

static uint64_t next_rand(sq_leader *l) {
  /* xorshift64: only spreads retries of rival candidates apart. */
  uint64_t x = l->rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  l->rng = x;
  return x;
}

sq_code sq_leader_new(sq_kube *k, const sq_leader_config *cfg, sq_leader **out, sq_err *err) {
  sq_leader_config c = *cfg;
  sq_code rc;
  *out = NULL;
  if(!c.lease_duration_ms)
    c.lease_duration_ms = SQ_LEADER_DEFAULT_LEASE_MS;
  if(!c.renew_deadline_ms)
    c.renew_deadline_ms = SQ_LEADER_DEFAULT_RENEW_MS;
  if(!c.retry_period_ms)
    c.retry_period_ms = SQ_LEADER_DEFAULT_RETRY_MS;
  rc = sq_leader_config_check(&c, err);
  if(rc)
    return rc;
  sq_leader *l = calloc(1, sizeof *l);
  if(!l)
    return sq_err_set(err, SQ_ENOMEM, "leader election: out of memory");
  l->k = k;
  l->ns = strdup(c.lease_namespace);
  l->name = strdup(c.lease_name);
  if(!l->ns || !l->name) {
    rc = sq_err_set(err, SQ_ENOMEM, "leader election: out of memory");
    goto fail;
  }
  if(c.identity)
    copy_str(l->id, sizeof l->id, c.identity);
  else {
    rc = sq_leader_make_identity(l->id, sizeof l->id, err);
    if(rc)
      goto fail;
  }
  l->lease_ms = c.lease_duration_ms;
  l->renew_ms = c.renew_deadline_ms;
  l->retry_ms = c.retry_period_ms;
  l->release = !c.no_release_on_cancel;
  l->cb = c;
  l->cb.identity = l->cb.lease_name = l->cb.lease_namespace = NULL; /* not kept */
  if(RAND_bytes((unsigned char *)&l->rng, sizeof l->rng) != 1 || !l->rng)
    l->rng = (uint64_t)sq_wall_us() | 1;
  pthread_mutex_init(&l->mu, NULL);
  pthread_cond_init(&l->cv, NULL);
  l->state = ST_CANDIDATE;
  *out = l;
  return SQ_OK;
fail:
  free(l->ns);
  free(l->name);
  free(l);
  return rc;
}

const char *sq_leader_identity(const sq_leader *l) { return l->id; }

/* Ends leadership because it can no longer be trusted. Safe from any of our
 * threads; the callback runs once, outside the lock. */
static void lose(sq_leader *l, const char *why) {
  pthread_mutex_lock(&l->mu);
  if(l->state != ST_LEADING) {
    pthread_mutex_unlock(&l->mu);
    return;
  }
  l->state = ST_LOST;
  l->st.leading = 0;
  l->st.lost = 1;
  int notify = l->started_cb;
  pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
  sq_log_kv(SQ_LOG_ERROR, LOGGER, "leadership lost", "lease", l->name, "namespace", l->ns,
            "identity", l->id, "reason", why, NULL);
  if(notify && l->cb.on_stopped_leading)
    l->cb.on_stopped_leading(l->cb.ud, SQ_LEADER_LOST);
}

static void report_holder(sq_leader *l, const char *holder) {
  if(!strcmp(l->reported, holder))
    return;
  copy_str(l->reported, sizeof l->reported, holder);
  pthread_mutex_lock(&l->mu);
  copy_str(l->st.holder, sizeof l->st.holder, holder);
  pthread_mutex_unlock(&l->mu);
  if(!holder[0])
    return; /* released: nobody to announce */
  sq_log_kv(SQ_LOG_INFO, LOGGER, "new leader observed", "lease", l->name, "holder", holder, NULL);
  if(l->cb.on_new_leader)
    l->cb.on_new_leader(l->cb.ud, holder);
}

/* Writes the election fields into a Lease object (new or copied). */
static sq_code set_spec(json_t *lease, const char *holder, int64_t duration_s,
                        const char *acquire, const char *renew, int64_t transitions) {
  json_t *spec = json_object_get(lease, "spec");
  if(!json_is_object(spec)) {
    spec = json_object();
    if(!spec || json_object_set_new(lease, "spec", spec))
      return SQ_ENOMEM;
  }
  if(json_object_set_new(spec, "holderIdentity", json_string(holder)) ||
     json_object_set_new(spec, "leaseDurationSeconds", json_integer(duration_s)) ||
     json_object_set_new(spec, "acquireTime", json_string(acquire)) ||
     json_object_set_new(spec, "renewTime", json_string(renew)) ||
     json_object_set_new(spec, "leaseTransitions", json_integer(transitions)))
    return SQ_ENOMEM;
  return SQ_OK;
}

static json_t *new_lease(const sq_leader *l) {
  return json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "coordination.k8s.io/v1", "kind",
                   "Lease", "metadata", "name", l->name, "namespace", l->ns);
}

/* One round of client-go's tryAcquireOrRenew. */
static outcome try_acquire_or_renew(sq_leader *l, int leading) {
  json_t *cur = NULL, *body = NULL, *written = NULL;
  sq_err e;
  sq_lease_record rec;
  int exists = 1;
  outcome res = OUT_FAIL;
  char now_s[40];
  sq_err_clear(&e);

  sq_code rc = sq_kube_get(l->k, &lease_gvr, l->ns, l->name, &cur, &e);
  if(rc == SQ_ENOTFOUND)
    exists = 0;
  else if(rc) {
    SQ_WARN(LOGGER, "reading lease %s/%s: %s", l->ns, l->name, e.message);
    goto failed;
  }
  int64_t now = sq_mono_ms();
  if(exists) {
    sq_lease_record_from_json(cur, &rec);
    sq_leader_observe(&l->view, &rec, now);
    report_holder(l, rec.holder);
    if(strcmp(rec.holder, l->id))
      l->held = 0;
  }
  sq_leader_action act = sq_leader_decide(&l->view, exists, l->id, leading, now);
  sq_rfc3339_micro(sq_wall_us(), now_s, sizeof now_s);
  int64_t dur_s = l->lease_ms / 1000;
  switch(act) {
  case SQ_LEADER_WAIT:
    goto out;
  case SQ_LEADER_STEP_DOWN:
    res = OUT_STEP_DOWN;
    goto out;
  case SQ_LEADER_CREATE:
    body = new_lease(l);
    if(!body || set_spec(body, l->id, dur_s, now_s, now_s, 0))
      goto nomem;
    rc = sq_kube_create(l->k, &lease_gvr, l->ns, body, &written, &e);
    break;
  case SQ_LEADER_TAKE:
  case SQ_LEADER_RENEW:
    /* The copy keeps metadata.resourceVersion: the PUT fails with 409 if the
     * Lease changed since our GET, so a racing rival cannot be overwritten. */
    body = json_deep_copy(cur);
    if(!body)
      goto nomem;
    if(act == SQ_LEADER_RENEW)
      rc = set_spec(body, l->id, dur_s, rec.acquire_time[0] ? rec.acquire_time : now_s, now_s,
                    rec.transitions);
    else
      rc = set_spec(body, l->id, dur_s, now_s, now_s, rec.transitions + 1);
    if(rc)
      goto nomem;
    rc = sq_kube_update(l->k, &lease_gvr, l->ns, body, &written, &e);
    break;
  }
  if(rc == SQ_ECONFLICT) {
    SQ_DEBUG(LOGGER, "lease %s/%s: %s lost a race: %s", l->ns, l->name,
             sq_leader_action_name(act), e.message);
    pthread_mutex_lock(&l->mu);
    l->st.conflicts++;
    pthread_mutex_unlock(&l->mu);
    goto out;
  }
  if(rc) {
    SQ_WARN(LOGGER, "lease %s/%s: %s failed: %s", l->ns, l->name, sq_leader_action_name(act),
            e.message);
    goto failed;
  }
  if(act != SQ_LEADER_RENEW)
    sq_log_kv(SQ_LOG_INFO, LOGGER, "acquired lease", "lease", l->name, "namespace", l->ns,
              "identity", l->id, "action", sq_leader_action_name(act), NULL);
  json_decref(l->lease);
  l->lease = written;
  written = NULL;
  l->held = 1;
  sq_lease_record_from_json(l->lease, &rec);
  sq_leader_observe(&l->view, &rec, sq_mono_ms());
  report_holder(l, rec.holder);
  pthread_mutex_lock(&l->mu);
  l->st.writes++;
  pthread_mutex_unlock(&l->mu);
  res = OUT_WON;
  goto out;
nomem:
  SQ_ERROR(LOGGER, "lease %s/%s: out of memory", l->ns, l->name);
failed:
  pthread_mutex_lock(&l->mu);
  l->st.errors++;
  pthread_mutex_unlock(&l->mu);
out:
  json_decref(cur);
  json_decref(body);
  json_decref(written);
  return res;
}

/* Sleeps up to ms unless cancelled or lost; returns 1 when the thread should end. */
static int pause_ms(sq_leader *l, int64_t ms) {
  struct timespec ts;
  sq_abstime_in(&ts, ms);
  pthread_mutex_lock(&l->mu);
  while(!l->cancel && l->state != ST_LOST) {
    if(pthread_cond_timedwait(&l->cv, &l->mu, &ts) == ETIMEDOUT)
      break;
  }
  int end = l->cancel || l->state == ST_LOST;
  pthread_mutex_unlock(&l->mu);
  return end;
}

static void *election_main(void *arg) {
  sq_leader *l = arg;
  for(;;) {
    pthread_mutex_lock(&l->mu);
    int end = l->cancel || l->state == ST_LOST;
    int leading = l->state == ST_LEADING;
    pthread_mutex_unlock(&l->mu);
    if(end)
      break;
    /* Taken before the request: the deadline counts from the earliest
     * moment the write could have landed, so we never overstay. */
    int64_t t0 = sq_mono_ms();
    outcome o = try_acquire_or_renew(l, leading);
    if(o == OUT_WON) {
      int call_started = 0;
      pthread_mutex_lock(&l->mu);
      if(l->state == ST_CANDIDATE && !l->cancel) {
        l->state = ST_LEADING;
        l->started_cb = 1;
        l->st.leading = 1;
        call_started = 1;
      }
      if(l->state == ST_LEADING)
        l->last_ok_ms = l->st.last_renew_ms = t0;
      pthread_cond_broadcast(&l->cv);
      pthread_mutex_unlock(&l->mu);
      if(call_started) {
        sq_log_kv(SQ_LOG_INFO, LOGGER, "started leading", "lease", l->name, "namespace", l->ns,
                  "identity", l->id, NULL);
        if(l->cb.on_started_leading)
          l->cb.on_started_leading(l->cb.ud);
      }
    } else if(o == OUT_STEP_DOWN) {
      lose(l, "the lease names another holder");
      break;
    }
    /* client-go: leaders retry at the plain period; candidates add jitter so
     * rivals spread out. */
    int64_t wait = l->retry_ms;
    if(!leading && o != OUT_WON)
      wait += (int64_t)((double)(next_rand(l) % 1000000) / 1e6 * SQ_LEADER_JITTER *
                        (double)l->retry_ms);
    if(pause_ms(l, wait))
      break;
  }
  return NULL;
}

static void *watchdog_main(void *arg) {
  sq_leader *l = arg;
  pthread_mutex_lock(&l->mu);
  while(!l->cancel && l->state != ST_LOST) {
    struct timespec ts;
    if(l->state == ST_LEADING) {
      int64_t now = sq_mono_ms();
      if(sq_leader_renew_expired(l->last_ok_ms, now, l->renew_ms)) {
        pthread_mutex_unlock(&l->mu);
        lose(l, "renew deadline passed");
        pthread_mutex_lock(&l->mu);
        break;
      }
      sq_abstime_in(&ts, l->last_ok_ms + l->renew_ms - now);
    } else {
      sq_abstime_in(&ts, 1000);
    }
    pthread_cond_timedwait(&l->cv, &l->mu, &ts);
  }
  pthread_mutex_unlock(&l->mu);
  return NULL;
}

sq_code sq_leader_start(sq_leader *l, sq_err *err) {
  if(l->threads)
    return sq_err_set(err, SQ_ESTATE, "leader election already started");
  if(pthread_create(&l->election, NULL, election_main, l))
    return sq_err_set(err, SQ_ENOMEM, "leader election: cannot start thread");
  l->threads = 1;
  if(pthread_create(&l->watchdog, NULL, watchdog_main, l)) {
    pthread_mutex_lock(&l->mu);
    l->cancel = 1;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->election, NULL);
    l->threads = 0;
    return sq_err_set(err, SQ_ENOMEM, "leader election: cannot start thread");
  }
  l->threads = 2;
  sq_log_kv(SQ_LOG_INFO, LOGGER, "attempting to acquire leader lease", "lease", l->name,
            "namespace", l->ns, "identity", l->id, NULL);
  return SQ_OK;
}

/* client-go's release(): empty holder and a 1 s duration, so whoever reads it
 * next may take it at once; the resourceVersion of our last write makes the
 * PUT fail rather than clobber a Lease someone else has taken meanwhile. */
static void release_lease(sq_leader *l) {
  sq_lease_record rec;
  json_t *body = NULL, *written = NULL;
  char now_s[40];
  sq_err e;
  sq_err_clear(&e);
  if(!l->held || !l->lease)
    return;
  sq_lease_record_from_json(l->lease, &rec);
  if(strcmp(rec.holder, l->id))
    return;
  sq_rfc3339_micro(sq_wall_us(), now_s, sizeof now_s);
  body = json_deep_copy(l->lease);
  if(!body || set_spec(body, "", 1, now_s, now_s, rec.transitions)) {
    SQ_ERROR(LOGGER, "releasing lease %s/%s: out of memory", l->ns, l->name);
    goto out;
  }
  sq_code rc = sq_kube_update(l->k, &lease_gvr, l->ns, body, &written, &e);
  if(rc) {
    SQ_WARN(LOGGER, "releasing lease %s/%s: %s", l->ns, l->name, e.message);
    goto out;
  }
  l->held = 0;
  json_decref(l->lease);
  l->lease = written;
  written = NULL;
  sq_log_kv(SQ_LOG_INFO, LOGGER, "released lease", "lease", l->name, "namespace", l->ns,
            "identity", l->id, NULL);
out:
  json_decref(body);
  json_decref(written);
}

void sq_leader_stop(sq_leader *l) {
  pthread_mutex_lock(&l->mu);
  l->cancel = 1;
  pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
  if(l->threads >= 1)
    pthread_join(l->election, NULL);
  if(l->threads >= 2)
    pthread_join(l->watchdog, NULL);
  l->threads = 0;

  pthread_mutex_lock(&l->mu);
  int was_leading = l->state == ST_LEADING;
  int notify = was_leading && l->started_cb;
  if(l->state != ST_LOST)
    l->state = ST_STOPPED;
  l->st.leading = 0;
  pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
  /* The operator stops its leader-only work in the callback before anyone
   * else may take over. */
  if(notify && l->cb.on_stopped_leading)
    l->cb.on_stopped_leading(l->cb.ud, SQ_LEADER_RELEASED);
  if(l->release)
    release_lease(l);
}

void sq_leader_free(sq_leader *l) {
  if(!l)
    return;
  sq_leader_stop(l);
  json_decref(l->lease);
  pthread_cond_destroy(&l->cv);
  pthread_mutex_destroy(&l->mu);
  free(l->ns);
  free(l->name);
  free(l);
}

int sq_leader_is_leader(sq_leader *l) {
  pthread_mutex_lock(&l->mu);
  int r = l->state == ST_LEADING &&
          !sq_leader_renew_expired(l->last_ok_ms, sq_mono_ms(), l->renew_ms);
  pthread_mutex_unlock(&l->mu);
  return r;
}

sq_code sq_leader_wait(sq_leader *l, int64_t timeout_ms) {
  struct timespec ts;
  sq_code rc = SQ_OK;
  if(timeout_ms >= 0)
    sq_abstime_in(&ts, timeout_ms);
  pthread_mutex_lock(&l->mu);
  while(l->state == ST_CANDIDATE && !l->cancel) {
    if(timeout_ms < 0)
      pthread_cond_wait(&l->cv, &l->mu);
    else if(pthread_cond_timedwait(&l->cv, &l->mu, &ts) == ETIMEDOUT)
      break;
  }
  if(l->state == ST_LEADING)
    rc = SQ_OK;
  else if(l->state == ST_CANDIDATE && !l->cancel)
    rc = SQ_ETIMEOUT;
  else
    rc = SQ_ECANCELED;
  pthread_mutex_unlock(&l->mu);
  return rc;
}

void sq_leader_get_status(sq_leader *l, sq_leader_status *st) {
  pthread_mutex_lock(&l->mu);
  *st = l->st;
  st->leading = l->state == ST_LEADING;
  st->lost = l->state == ST_LOST;
  pthread_mutex_unlock(&l->mu);
}
