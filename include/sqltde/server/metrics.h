/* server/metrics.h — a small thread-safe Prometheus registry.
 *
 * Counters, gauges and histograms, each with up to SQ_METRICS_MAX_LABELS
 * labels; a series (one combination of label values) is created on first
 * use. sq_metrics_render writes the text exposition format 0.0.4 served at
 * /metrics (see server/probes.h).
 *
 * Memory is bounded: a registry holds at most max_series series. An update
 * that would create one more is dropped and counted in
 * sqltde_metrics_dropped_series_total, so a label-cardinality bug cannot
 * grow memory without limit. Label values longer than
 * SQ_METRICS_LABEL_VALUE_MAX bytes are truncated.
 *
 * The process-wide registry (sq_metrics_global, the one piece of global
 * state here) comes pre-loaded with the families the operator exposes —
 * controller-runtime, workqueue and leader-election names, plus the Azure
 * request metrics — and the sq_metrics_* helpers at the end update it, so
 * callers never spell label lists themselves. */
#ifndef SQLTDE_SERVER_METRICS_H
#define SQLTDE_SERVER_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "sqltde/buf.h"
#include "sqltde/err.h"

#define SQ_METRICS_MAX_LABELS 4
#define SQ_METRICS_MAX_BUCKETS 64
#define SQ_METRICS_LABEL_VALUE_MAX 256
#define SQ_METRICS_DEFAULT_MAX_SERIES 5000

typedef enum sq_metric_type {
  SQ_METRIC_COUNTER,
  SQ_METRIC_GAUGE,
  SQ_METRIC_HISTOGRAM,
} sq_metric_type;

typedef struct sq_metrics sq_metrics; /* a registry */
typedef struct sq_metric sq_metric;   /* one family, owned by its registry */

/* Creates an empty registry (max_series 0 -> SQ_METRICS_DEFAULT_MAX_SERIES).
 * It already holds sqltde_metrics_dropped_series_total. */
sq_code sq_metrics_new(size_t max_series, sq_metrics **out);
/* Frees the registry and all its families. NULL is fine. No other thread
 * may be using it. */
void sq_metrics_free(sq_metrics *r);

/* Registers a family. name and label names must be valid Prometheus
 * identifiers; label_names is NULL-terminated (or NULL for none). For a
 * histogram, buckets are upper bounds in strictly increasing order (+Inf is
 * implied); NULL uses Prometheus' defaults (5 ms .. 10 s). Registering a
 * name again with the same type and labels returns the existing family;
 * anything else is SQ_EINVAL. A family without labels starts at 0 so it is
 * always exposed. *out (optional) is owned by the registry. */
sq_code sq_metrics_register(sq_metrics *r, sq_metric_type type, const char *name,
                            const char *help, const char *const *label_names,
                            const double *buckets, size_t nbuckets, sq_metric **out,
                            sq_err *err);
/* The family registered under name, or NULL. */
sq_metric *sq_metrics_find(sq_metrics *r, const char *name);

/* Updates. values holds exactly one string per label of the family, in
 * registration order (NULL entries mean ""); it may be NULL for a family
 * without labels. A NULL family, a call that does not fit the family's type
 * (set on a counter, observe on a gauge...), a negative counter increment
 * or a NaN observation is ignored: metrics never fail their caller. */
void sq_metric_inc(sq_metric *m, const char *const *values);
void sq_metric_add(sq_metric *m, const char *const *values, double v); /* counter, gauge */
void sq_metric_set(sq_metric *m, const char *const *values, double v); /* gauge */
void sq_metric_observe(sq_metric *m, const char *const *values, double v); /* histogram */

/* Reads one series: its value (counter, gauge; histogram: the sum) and, for
 * a histogram, its observation count. Returns 0 when the series exists,
 * -1 otherwise. value and count may be NULL. */
int sq_metric_get(sq_metric *m, const char *const *values, double *value, uint64_t *count);

/* Appends the whole registry in text format 0.0.4 to out (bounded by
 * out->max: SQ_ETOOBIG if it does not fit). Families appear in registration
 * order, series in creation order. */
sq_code sq_metrics_render(sq_metrics *r, sq_buf *out);

/* Series currently held, and updates dropped because the registry was full. */
size_t sq_metrics_series_count(sq_metrics *r);
uint64_t sq_metrics_dropped(sq_metrics *r);

/* The content type of sq_metrics_render's output. */
#define SQ_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* ---- the operator's metrics (process-wide registry) ------------------- */

/* The process-wide registry, created on first call with these families:
 *   controller_runtime_reconcile_total{controller,result}
 *   controller_runtime_reconcile_errors_total{controller}
 *   controller_runtime_reconcile_time_seconds{controller}        histogram
 *   controller_runtime_active_workers{controller}                 gauge
 *   controller_runtime_max_concurrent_reconciles{controller}      gauge
 *   workqueue_depth{name}                                         gauge
 *   workqueue_adds_total{name}
 *   workqueue_retries_total{name}
 *   workqueue_queue_duration_seconds{name}                        histogram
 *   workqueue_work_duration_seconds{name}                         histogram
 *   workqueue_unfinished_work_seconds{name}                       gauge
 *   workqueue_longest_running_processor_seconds{name}             gauge
 *   leader_election_master_status{name}                           gauge
 *   sqltde_azure_requests_total{service,operation,resource_type,code}
 *   sqltde_azure_request_duration_seconds{service,operation}      histogram
 * Buckets follow controller-runtime / client-go. Never freed. */
sq_metrics *sq_metrics_global(void);

typedef enum sq_reconcile_outcome {
  SQ_RECONCILE_SUCCESS,
  SQ_RECONCILE_ERROR,
  SQ_RECONCILE_REQUEUE,
  SQ_RECONCILE_REQUEUE_AFTER,
} sq_reconcile_outcome;

/* "success" | "error" | "requeue" | "requeue_after". */
const char *sq_reconcile_outcome_name(sq_reconcile_outcome r);

/* At controller start: every result counter at 0, active workers 0, the
 * configured concurrency (as controller-runtime does). */
void sq_metrics_controller_init(const char *controller, int max_concurrent);
/* One finished reconcile: counts it by result (errors also in
 * reconcile_errors_total) and observes its duration. */
void sq_metrics_reconcile(const char *controller, sq_reconcile_outcome result, double seconds);
/* A worker started (+1) or finished (-1) a reconcile. */
void sq_metrics_active_workers_add(const char *controller, int delta);

/* At queue creation: all of the queue's series at 0. */
void sq_metrics_workqueue_init(const char *name);
void sq_metrics_workqueue_depth(const char *name, long depth);
void sq_metrics_workqueue_add(const char *name);
void sq_metrics_workqueue_retry(const char *name);
/* Time an item waited in the queue / took to process. */
void sq_metrics_workqueue_queue_duration(const char *name, double seconds);
void sq_metrics_workqueue_work_duration(const char *name, double seconds);
/* Periodic: total seconds of work in progress and the longest-running one. */
void sq_metrics_workqueue_unfinished(const char *name, double unfinished_seconds,
                                     double longest_seconds);

/* 1 while this process holds the named lease, 0 otherwise. */
void sq_metrics_leader(const char *name, int is_leader);

/* One Azure request: service ("arm", "keyvault", "login"...), operation
 * (e.g. "databases.get"), resource_type (e.g. "Microsoft.Sql/servers/databases"),
 * HTTP status (0 = no response: counted with code="<error>", as client-go
 * does) and duration. */
void sq_metrics_azure_request(const char *service, const char *operation,
                              const char *resource_type, long status, double seconds);

#endif
