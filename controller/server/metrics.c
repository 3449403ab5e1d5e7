/* metrics.c — Prometheus registry and text exposition; see
 * include/sqltde/server/metrics.h.
 *
 * Layout: a registry is a list of families (guarded by the registry lock,
 * which only registration and rendering take). Each family has its own lock
 * over a small chained hash table of series plus a creation-order list for
 * rendering. Updates take one family lock for a hash lookup and an add, so
 * hot paths (workqueue, reconcile) never contend across families. */
#include "sqltde/server/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBUCKETS_HASH 64

typedef struct series {
  struct series *hnext; /* hash chain */
  struct series *onext; /* creation order */
  uint64_t hash;
  const char *values[SQ_METRICS_MAX_LABELS]; /* point into the same allocation */
  double value;      /* counter / gauge; histogram: sum */
  uint64_t count;    /* histogram observations */
  uint64_t *buckets; /* histogram: per-bucket (non-cumulative) counts */
} series;

struct sq_metric {
  struct sq_metric *next;
  sq_metrics *reg;
  sq_metric_type type;
  char *name;
  char *help;
  int nlabels;
  char *labels[SQ_METRICS_MAX_LABELS];
  double *bounds;
  size_t nbounds;
  pthread_mutex_t mu;
  series *table[NBUCKETS_HASH];
  series *first, *last;
};

struct sq_metrics {
  pthread_mutex_t mu;
  sq_metric *first, *last;
  size_t max_series;
  atomic_size_t nseries;
  atomic_uint_fast64_t dropped;
};

static const double k_default_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                           0.5,   1,    2.5,   5,    10};

/* ---- validation -------------------------------------------------------- */

static int valid_name(const char *s, int allow_colon) {
  if(!s || !*s)
    return 0;
  for(const char *p = s; *p; p++) {
    char c = *p;
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
             (allow_colon && c == ':') || (p != s && c >= '0' && c <= '9');
    if(!ok)
      return 0;
  }
  return 1;
}

/* ---- series lookup ----------------------------------------------------- */

static size_t clamp_len(const char *v) {
  size_t n = strnlen(v, SQ_METRICS_LABEL_VALUE_MAX);
  return n;
}

static uint64_t hash_values(const sq_metric *m, const char *const *values) {
  uint64_t h = 1469598103934665603ULL;
  for(int i = 0; i < m->nlabels; i++) {
    const char *v = values && values[i] ? values[i] : "";
    size_t n = clamp_len(v);
    for(size_t j = 0; j < n; j++) {
      h ^= (unsigned char)v[j];
      h *= 1099511628211ULL;
    }
    h ^= 0xff; /* separator: ("ab","") != ("a","b") */
    h *= 1099511628211ULL;
  }
  return h;
}

static int same_values(const sq_metric *m, const series *s, const char *const *values) {
  for(int i = 0; i < m->nlabels; i++) {
    const char *v = values && values[i] ? values[i] : "";
    size_t n = clamp_len(v);
    if(strlen(s->values[i]) != n || memcmp(s->values[i], v, n))
      return 0;
  }
  return 1;
}

/* Finds the series, creating it when create is set and the registry has
 * room. Call with m->mu held. */
static series *lookup(sq_metric *m, const char *const *values, int create) {
  uint64_t h = hash_values(m, values);
  series **slot = &m->table[h % NBUCKETS_HASH];
  for(series *s = *slot; s; s = s->hnext)
    if(s->hash == h && same_values(m, s, values))
      return s;
  if(!create)
    return NULL;

  sq_metrics *r = m->reg;
  if(atomic_fetch_add(&r->nseries, 1) >= r->max_series) {
    atomic_fetch_sub(&r->nseries, 1);
    atomic_fetch_add(&r->dropped, 1);
    return NULL;
  }
  size_t text = 0;
  for(int i = 0; i < m->nlabels; i++)
    text += clamp_len(values && values[i] ? values[i] : "") + 1;
  size_t nb = m->type == SQ_METRIC_HISTOGRAM ? m->nbounds : 0;
  series *s = calloc(1, sizeof *s + nb * sizeof(uint64_t) + text);
  if(!s) {
    atomic_fetch_sub(&r->nseries, 1);
    atomic_fetch_add(&r->dropped, 1);
    return NULL;
  }
  char *p = (char *)(s + 1) + nb * sizeof(uint64_t);
  if(nb)
    s->buckets = (uint64_t *)(s + 1);
  for(int i = 0; i < m->nlabels; i++) {
    const char *v = values && values[i] ? values[i] : "";
    size_t n = clamp_len(v);
    memcpy(p, v, n);
    p[n] = '\0';
    s->values[i] = p;
    p += n + 1;
  }
  s->hash = h;
  s->hnext = *slot;
  *slot = s;
  if(m->last)
    m->last->onext = s;
  else
    m->first = s;
  m->last = s;
  return s;
}

/* ---- registry ---------------------------------------------------------- */

static void free_family(sq_metric *m) {
  series *s = m->first;
  while(s) {
    series *n = s->onext;
    free(s);
    s = n;
  }
  pthread_mutex_destroy(&m->mu);
  free(m->name);
  free(m->help);
  for(int i = 0; i < m->nlabels; i++)
    free(m->labels[i]);
  free(m->bounds);
  free(m);
}

sq_code sq_metrics_new(size_t max_series, sq_metrics **out) {
  *out = NULL;
  sq_metrics *r = calloc(1, sizeof *r);
  if(!r)
    return SQ_ENOMEM;
  pthread_mutex_init(&r->mu, NULL);
  r->max_series = max_series ? max_series : SQ_METRICS_DEFAULT_MAX_SERIES;
  atomic_init(&r->nseries, 0);
  atomic_init(&r->dropped, 0);
  /* Rendered from r->dropped; registered so the name is reserved and the
   * family appears in order. Its one series is not counted against the cap. */
  sq_code rc = sq_metrics_register(
      r, SQ_METRIC_COUNTER, "sqltde_metrics_dropped_series_total",
      "Metric updates dropped because the registry reached its series limit.", NULL, NULL, 0,
      NULL, NULL);
  if(rc) {
    sq_metrics_free(r);
    return rc;
  }
  *out = r;
  return SQ_OK;
}

void sq_metrics_free(sq_metrics *r) {
  if(!r)
    return;
  sq_metric *m = r->first;
  while(m) {
    sq_metric *n = m->next;
    free_family(m);
    m = n;
  }
  pthread_mutex_destroy(&r->mu);
  free(r);
}

static sq_metric *find_locked(sq_metrics *r, const char *name) {
  for(sq_metric *m = r->first; m; m = m->next)
    if(!strcmp(m->name, name))
      return m;
  return NULL;
}

sq_metric *sq_metrics_find(sq_metrics *r, const char *name) {
  if(!r || !name)
    return NULL;
  pthread_mutex_lock(&r->mu);
  sq_metric *m = find_locked(r, name);
  pthread_mutex_unlock(&r->mu);
  return m;
}

static int same_shape(const sq_metric *m, sq_metric_type type, const char *const *labels,
                      int nlabels, const double *buckets, size_t nbuckets) {
  if(m->type != type || m->nlabels != nlabels)
    return 0;
  for(int i = 0; i < nlabels; i++)
    if(strcmp(m->labels[i], labels[i]))
      return 0;
  if(type == SQ_METRIC_HISTOGRAM) {
    if(!buckets) {
      buckets = k_default_buckets;
      nbuckets = sizeof k_default_buckets / sizeof k_default_buckets[0];
    }
    if(m->nbounds != nbuckets)
      return 0;
    for(size_t i = 0; i < nbuckets; i++)
      if(m->bounds[i] != buckets[i])
        return 0;
  }
  return 1;
}

sq_code sq_metrics_register(sq_metrics *r, sq_metric_type type, const char *name,
                            const char *help, const char *const *label_names,
                            const double *buckets, size_t nbuckets, sq_metric **out,
                            sq_err *err) {
  if(out)
    *out = NULL;
  if(!r || !valid_name(name, 1))
    return sq_err_set(err, SQ_EINVAL, "metrics: invalid metric name \"%s\"", name ? name : "");
  if(type != SQ_METRIC_COUNTER && type != SQ_METRIC_GAUGE && type != SQ_METRIC_HISTOGRAM)
    return sq_err_set(err, SQ_EINVAL, "metrics: %s: unknown type", name);
  int nlabels = 0;
  while(label_names && label_names[nlabels]) {
    const char *l = label_names[nlabels];
    if(nlabels == SQ_METRICS_MAX_LABELS)
      return sq_err_set(err, SQ_EINVAL, "metrics: %s: more than %d labels", name,
                        SQ_METRICS_MAX_LABELS);
    if(!valid_name(l, 0) || !strncmp(l, "__", 2) ||
       (type == SQ_METRIC_HISTOGRAM && !strcmp(l, "le")))
      return sq_err_set(err, SQ_EINVAL, "metrics: %s: invalid label name \"%s\"", name, l);
    for(int j = 0; j < nlabels; j++)
      if(!strcmp(label_names[j], l))
        return sq_err_set(err, SQ_EINVAL, "metrics: %s: duplicate label \"%s\"", name, l);
    nlabels++;
  }
  if(type == SQ_METRIC_HISTOGRAM && buckets) {
    if(nbuckets == 0 || nbuckets > SQ_METRICS_MAX_BUCKETS)
      return sq_err_set(err, SQ_EINVAL, "metrics: %s: 1..%d buckets", name,
                        SQ_METRICS_MAX_BUCKETS);
    for(size_t i = 0; i < nbuckets; i++)
      if(!isfinite(buckets[i]) || (i && buckets[i] <= buckets[i - 1]))
        return sq_err_set(err, SQ_EINVAL,
                          "metrics: %s: buckets must be finite and strictly increasing", name);
  }

  pthread_mutex_lock(&r->mu);
  sq_metric *m = find_locked(r, name);
  if(m) {
    int same = same_shape(m, type, label_names, nlabels, buckets, nbuckets);
    pthread_mutex_unlock(&r->mu);
    if(!same)
      return sq_err_set(err, SQ_EINVAL,
                        "metrics: %s is already registered with another type, labels or buckets",
                        name);
    if(out)
      *out = m;
    return SQ_OK;
  }
  m = calloc(1, sizeof *m);
  if(!m)
    goto oom;
  m->reg = r;
  m->type = type;
  m->nlabels = nlabels;
  pthread_mutex_init(&m->mu, NULL);
  m->name = strdup(name);
  m->help = strdup(help ? help : "");
  if(!m->name || !m->help)
    goto oom;
  for(int i = 0; i < nlabels; i++)
    if(!(m->labels[i] = strdup(label_names[i])))
      goto oom;
  if(type == SQ_METRIC_HISTOGRAM) {
    if(!buckets) {
      buckets = k_default_buckets;
      nbuckets = sizeof k_default_buckets / sizeof k_default_buckets[0];
    }
    m->bounds = malloc(nbuckets * sizeof *m->bounds);
    if(!m->bounds)
      goto oom;
    memcpy(m->bounds, buckets, nbuckets * sizeof *m->bounds);
    m->nbounds = nbuckets;
  }
  if(nlabels == 0) {
    /* Always exposed, and not counted against the cap: one per family. */
    series *s = calloc(1, sizeof *s + m->nbounds * sizeof(uint64_t));
    if(!s)
      goto oom;
    if(m->nbounds)
      s->buckets = (uint64_t *)(s + 1);
    s->hash = hash_values(m, NULL);
    m->table[s->hash % NBUCKETS_HASH] = s;
    m->first = m->last = s;
  }
  if(r->last)
    r->last->next = m;
  else
    r->first = m;
  r->last = m;
  pthread_mutex_unlock(&r->mu);
  if(out)
    *out = m;
  return SQ_OK;
oom:
  pthread_mutex_unlock(&r->mu);
  if(m)
    free_family(m);
  return sq_err_set(err, SQ_ENOMEM, "metrics: out of memory");
}

/* ---- updates ----------------------------------------------------------- */

void sq_metric_add(sq_metric *m, const char *const *values, double v) {
  if(!m || isnan(v) || m->type == SQ_METRIC_HISTOGRAM)
    return;
  if(m->type == SQ_METRIC_COUNTER && v < 0)
    return;
  pthread_mutex_lock(&m->mu);
  series *s = lookup(m, values, 1);
  if(s)
    s->value += v;
  pthread_mutex_unlock(&m->mu);
}

void sq_metric_inc(sq_metric *m, const char *const *values) { sq_metric_add(m, values, 1); }

void sq_metric_set(sq_metric *m, const char *const *values, double v) {
  if(!m || m->type != SQ_METRIC_GAUGE)
    return;
  pthread_mutex_lock(&m->mu);
  series *s = lookup(m, values, 1);
  if(s)
    s->value = v;
  pthread_mutex_unlock(&m->mu);
}

void sq_metric_observe(sq_metric *m, const char *const *values, double v) {
  if(!m || m->type != SQ_METRIC_HISTOGRAM || isnan(v))
    return;
  /* Bucket index outside the lock: bounds never change. */
  size_t lo = 0, hi = m->nbounds;
  while(lo < hi) {
    size_t mid = (lo + hi) / 2;
    if(v <= m->bounds[mid])
      hi = mid;
    else
      lo = mid + 1;
  }
  pthread_mutex_lock(&m->mu);
  series *s = lookup(m, values, 1);
  if(s) {
    if(lo < m->nbounds)
      s->buckets[lo]++;
    s->count++;
    s->value += v;
  }
  pthread_mutex_unlock(&m->mu);
}

int sq_metric_get(sq_metric *m, const char *const *values, double *value, uint64_t *count) {
  if(!m)
    return -1;
  pthread_mutex_lock(&m->mu);
  series *s = lookup(m, values, 0);
  if(s) {
    if(value)
      *value = s->value;
    if(count)
      *count = s->count;
  }
  pthread_mutex_unlock(&m->mu);
  return s ? 0 : -1;
}

size_t sq_metrics_series_count(sq_metrics *r) { return r ? atomic_load(&r->nseries) : 0; }
uint64_t sq_metrics_dropped(sq_metrics *r) { return r ? atomic_load(&r->dropped) : 0; }

/* ---- exposition -------------------------------------------------------- */

/* Shortest text that reads back as the same double; Prometheus spellings
 * for the special values. */
static void fmt_double(char *out, size_t n, double v) {
  if(isnan(v)) {
    snprintf(out, n, "NaN");
  } else if(isinf(v)) {
    snprintf(out, n, v > 0 ? "+Inf" : "-Inf");
  } else {
    snprintf(out, n, "%.15g", v);
    if(strtod(out, NULL) != v)
      snprintf(out, n, "%.17g", v);
  }
}

static sq_code add_escaped(sq_buf *b, const char *s, int quote) {
  sq_code rc = SQ_OK;
  for(const char *p = s; *p && !rc; p++) {
    if(*p == '\\')
      rc = sq_buf_add(b, "\\\\", 2);
    else if(*p == '\n')
      rc = sq_buf_add(b, "\\n", 2);
    else if(quote && *p == '"')
      rc = sq_buf_add(b, "\\\"", 2);
    else
      rc = sq_buf_add(b, p, 1);
  }
  return rc;
}

/* {a="x",b="y"[,le="..."]} or nothing when there are no labels. */
static sq_code add_labels(sq_buf *b, const sq_metric *m, const series *s, const char *le) {
  if(!m->nlabels && !le)
    return SQ_OK;
  sq_code rc = sq_buf_add(b, "{", 1);
  for(int i = 0; i < m->nlabels && !rc; i++) {
    rc = sq_buf_addf(b, "%s%s=\"", i ? "," : "", m->labels[i]);
    if(!rc)
      rc = add_escaped(b, s->values[i], 1);
    if(!rc)
      rc = sq_buf_add(b, "\"", 1);
  }
  if(!rc && le)
    rc = sq_buf_addf(b, "%sle=\"%s\"", m->nlabels ? "," : "", le);
  if(!rc)
    rc = sq_buf_add(b, "}", 1);
  return rc;
}

static sq_code render_series(sq_buf *b, const sq_metric *m, const series *s, double value) {
  char num[64];
  sq_code rc = SQ_OK;
  if(m->type != SQ_METRIC_HISTOGRAM) {
    fmt_double(num, sizeof num, value);
    rc = sq_buf_adds(b, m->name);
    if(!rc)
      rc = add_labels(b, m, s, NULL);
    if(!rc)
      rc = sq_buf_addf(b, " %s\n", num);
    return rc;
  }
  uint64_t cum = 0;
  for(size_t i = 0; i <= m->nbounds && !rc; i++) {
    char le[64];
    if(i < m->nbounds) {
      cum += s->buckets[i];
      fmt_double(le, sizeof le, m->bounds[i]);
    } else {
      cum = s->count;
      snprintf(le, sizeof le, "+Inf");
    }
    rc = sq_buf_addf(b, "%s_bucket", m->name);
    if(!rc)
      rc = add_labels(b, m, s, le);
    if(!rc)
      rc = sq_buf_addf(b, " %llu\n", (unsigned long long)cum);
  }
  fmt_double(num, sizeof num, s->value);
  if(!rc)
    rc = sq_buf_addf(b, "%s_sum", m->name);
  if(!rc)
    rc = add_labels(b, m, s, NULL);
  if(!rc)
    rc = sq_buf_addf(b, " %s\n%s_count", num, m->name);
  if(!rc)
    rc = add_labels(b, m, s, NULL);
  if(!rc)
    rc = sq_buf_addf(b, " %llu\n", (unsigned long long)s->count);
  return rc;
}

sq_code sq_metrics_render(sq_metrics *r, sq_buf *out) {
  static const char *const types[] = {"counter", "gauge", "histogram"};
  if(!r || !out)
    return SQ_EINVAL;
  sq_code rc = SQ_OK;
  pthread_mutex_lock(&r->mu);
  for(sq_metric *m = r->first; m && !rc; m = m->next) {
    rc = sq_buf_addf(out, "# HELP %s ", m->name);
    if(!rc)
      rc = add_escaped(out, m->help, 0);
    if(!rc)
      rc = sq_buf_addf(out, "\n# TYPE %s %s\n", m->name, types[m->type]);
    pthread_mutex_lock(&m->mu);
    int is_dropped = !strcmp(m->name, "sqltde_metrics_dropped_series_total");
    for(series *s = m->first; s && !rc; s = s->onext)
      rc = render_series(out, m, s, is_dropped ? (double)atomic_load(&r->dropped) : s->value);
    pthread_mutex_unlock(&m->mu);
  }
  pthread_mutex_unlock(&r->mu);
  return rc;
}

/* ---- the operator's families ------------------------------------------- */

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static sq_metrics *g_reg;
static sq_metric *g_rec_total, *g_rec_errors, *g_rec_time, *g_active, *g_max_conc;
static sq_metric *g_wq_depth, *g_wq_adds, *g_wq_retries, *g_wq_queue, *g_wq_work, *g_wq_unfinished,
    *g_wq_longest;
static sq_metric *g_leader, *g_az_total, *g_az_time;

/* controller-runtime's reconcile_time_seconds buckets. */
static const double k_reconcile_buckets[] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6,
    0.7,   0.8,  0.9,   1.0,  1.25, 1.5, 1.75, 2.0, 2.5, 3.0,  3.5, 4.0,  4.5, 5,
    6,     7,    8,     9,    10,   15,  20,   25,  30,  40,   50,  60};
/* client-go workqueue: ExponentialBuckets(10e-9, 10, 10). */
static const double k_wq_buckets[] = {1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 10};
/* Azure calls: ARM writes and long-running polls take seconds. */
static const double k_azure_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                         1,     2.5,  5,     10,   30,  60};

#define NB(a) (sizeof(a) / sizeof((a)[0]))

static void reg(sq_metric **out, sq_metric_type t, const char *name, const char *help,
                const char *const *labels, const double *b, size_t nb) {
  /* Static, valid definitions: a failure here is out-of-memory at start-up;
   * the family then stays NULL and its updates are no-ops. */
  (void)sq_metrics_register(g_reg, t, name, help, labels, b, nb, out, NULL);
}

static void global_init(void) {
  if(sq_metrics_new(0, &g_reg))
    return;
  static const char *const ctrl[] = {"controller", NULL};
  static const char *const ctrl_res[] = {"controller", "result", NULL};
  static const char *const qname[] = {"name", NULL};
  reg(&g_rec_total, SQ_METRIC_COUNTER, "controller_runtime_reconcile_total",
      "Total number of reconciliations per controller", ctrl_res, NULL, 0);
  reg(&g_rec_errors, SQ_METRIC_COUNTER, "controller_runtime_reconcile_errors_total",
      "Total number of reconciliation errors per controller", ctrl, NULL, 0);
  reg(&g_rec_time, SQ_METRIC_HISTOGRAM, "controller_runtime_reconcile_time_seconds",
      "Length of time per reconciliation per controller", ctrl, k_reconcile_buckets,
      NB(k_reconcile_buckets));
  reg(&g_active, SQ_METRIC_GAUGE, "controller_runtime_active_workers",
      "Number of currently used workers per controller", ctrl, NULL, 0);
  reg(&g_max_conc, SQ_METRIC_GAUGE, "controller_runtime_max_concurrent_reconciles",
      "Maximum number of concurrent reconciles per controller", ctrl, NULL, 0);
  reg(&g_wq_depth, SQ_METRIC_GAUGE, "workqueue_depth", "Current depth of workqueue", qname, NULL,
      0);
  reg(&g_wq_adds, SQ_METRIC_COUNTER, "workqueue_adds_total",
      "Total number of adds handled by workqueue", qname, NULL, 0);
  reg(&g_wq_retries, SQ_METRIC_COUNTER, "workqueue_retries_total",
      "Total number of retries handled by workqueue", qname, NULL, 0);
  reg(&g_wq_queue, SQ_METRIC_HISTOGRAM, "workqueue_queue_duration_seconds",
      "How long in seconds an item stays in workqueue before being requested", qname,
      k_wq_buckets, NB(k_wq_buckets));
  reg(&g_wq_work, SQ_METRIC_HISTOGRAM, "workqueue_work_duration_seconds",
      "How long in seconds processing an item from workqueue takes.", qname, k_wq_buckets,
      NB(k_wq_buckets));
  reg(&g_wq_unfinished, SQ_METRIC_GAUGE, "workqueue_unfinished_work_seconds",
      "How many seconds of work has been done that is in progress and hasn't been observed by "
      "work_duration. Large values indicate stuck threads. One can deduce the number of stuck "
      "threads by observing the rate at which this increases.",
      qname, NULL, 0);
  reg(&g_wq_longest, SQ_METRIC_GAUGE, "workqueue_longest_running_processor_seconds",
      "How many seconds has the longest running processor for workqueue been running.", qname,
      NULL, 0);
  reg(&g_leader, SQ_METRIC_GAUGE, "leader_election_master_status",
      "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 "
      "indicates master. 'name' is the string used to identify the lease. Please make sure to "
      "group by name.",
      qname, NULL, 0);
  static const char *const az[] = {"service", "operation", "resource_type", "code", NULL};
  static const char *const az_time[] = {"service", "operation", NULL};
  reg(&g_az_total, SQ_METRIC_COUNTER, "sqltde_azure_requests_total",
      "Azure requests by service, operation, resource type and HTTP status (<error> = no "
      "response)",
      az, NULL, 0);
  reg(&g_az_time, SQ_METRIC_HISTOGRAM, "sqltde_azure_request_duration_seconds",
      "Azure request latency by service and operation", az_time, k_azure_buckets,
      NB(k_azure_buckets));
}

sq_metrics *sq_metrics_global(void) {
  pthread_once(&g_once, global_init);
  return g_reg;
}

const char *sq_reconcile_outcome_name(sq_reconcile_outcome r) {
  switch(r) {
  case SQ_RECONCILE_SUCCESS:
    return "success";
  case SQ_RECONCILE_ERROR:
    return "error";
  case SQ_RECONCILE_REQUEUE:
    return "requeue";
  case SQ_RECONCILE_REQUEUE_AFTER:
    return "requeue_after";
  }
  return "error";
}

void sq_metrics_controller_init(const char *controller, int max_concurrent) {
  sq_metrics_global();
  const char *c[] = {controller};
  for(int r = SQ_RECONCILE_SUCCESS; r <= SQ_RECONCILE_REQUEUE_AFTER; r++) {
    const char *cr[] = {controller, sq_reconcile_outcome_name((sq_reconcile_outcome)r)};
    sq_metric_add(g_rec_total, cr, 0);
  }
  sq_metric_add(g_rec_errors, c, 0);
  sq_metric_add(g_active, c, 0);
  sq_metric_set(g_max_conc, c, max_concurrent);
}

void sq_metrics_reconcile(const char *controller, sq_reconcile_outcome result, double seconds) {
  sq_metrics_global();
  const char *c[] = {controller};
  const char *cr[] = {controller, sq_reconcile_outcome_name(result)};
  sq_metric_inc(g_rec_total, cr);
  if(result == SQ_RECONCILE_ERROR)
    sq_metric_inc(g_rec_errors, c);
  sq_metric_observe(g_rec_time, c, seconds);
}

void sq_metrics_active_workers_add(const char *controller, int delta) {
  sq_metrics_global();
  const char *c[] = {controller};
  sq_metric_add(g_active, c, delta);
}

void sq_metrics_workqueue_init(const char *name) {
  sq_metrics_global();
  const char *q[] = {name};
  sq_metric_add(g_wq_depth, q, 0);
  sq_metric_add(g_wq_adds, q, 0);
  sq_metric_add(g_wq_retries, q, 0);
  sq_metric_add(g_wq_unfinished, q, 0);
  sq_metric_add(g_wq_longest, q, 0);
  /* Histograms appear with their first observation, as in client-go. */
}

void sq_metrics_workqueue_depth(const char *name, long depth) {
  sq_metrics_global();
  const char *q[] = {name};
  sq_metric_set(g_wq_depth, q, (double)depth);
}

void sq_metrics_workqueue_add(const char *name) {
  sq_metrics_global();
  const char *q[] = {name};
  sq_metric_inc(g_wq_adds, q);
}

void sq_metrics_workqueue_retry(const char *name) {
  sq_metrics_global();
  const char *q[] = {name};
  sq_metric_inc(g_wq_retries, q);
}

void sq_metrics_workqueue_queue_duration(const char *name, double seconds) {
  sq_metrics_global();
  const char *q[] = {name};
  sq_metric_observe(g_wq_queue, q, seconds);
}

void sq_metrics_workqueue_work_duration(const char *name, double seconds) {
  sq_metrics_global();
  const char *q[] = {name};
  sq_metric_observe(g_wq_work, q, seconds);
}

void sq_metrics_workqueue_unfinished(const char *name, double unfinished_seconds,
                                     double longest_seconds) {
  sq_metrics_global();
  const char *q[] = {name};
  sq_metric_set(g_wq_unfinished, q, unfinished_seconds);
  sq_metric_set(g_wq_longest, q, longest_seconds);
}

void sq_metrics_leader(const char *name, int is_leader) {
  sq_metrics_global();
  const char *q[] = {name};
  sq_metric_set(g_leader, q, is_leader ? 1 : 0);
}

void sq_metrics_azure_request(const char *service, const char *operation,
                              const char *resource_type, long status, double seconds) {
  sq_metrics_global();
  char code[24];
  if(status <= 0)
    snprintf(code, sizeof code, "<error>");
  else
    snprintf(code, sizeof code, "%ld", status);
  const char *l[] = {service, operation, resource_type, code};
  const char *t[] = {service, operation};
  sq_metric_inc(g_az_total, l);
  sq_metric_observe(g_az_time, t, seconds);
}
