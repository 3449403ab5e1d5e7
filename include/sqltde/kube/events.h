/* kube/events.h — Kubernetes Events (events.k8s.io/v1) for what the operator does.
 *
 * Every failure and every notable step of a reconcile ends in an Event on the
 * object concerned (`kubectl describe`, `kubectl get events`). A reconcile
 * loop that fails the same way every few seconds must not write an object per
 * attempt, and a broken object must not flood the apiserver, so emission goes
 * through what client-go's EventCorrelator and events broadcaster do:
 *   - series: the same (regarding, type, reason, action, note) within the
 *     series window is ONE Event object; repeats only bump series.count and
 *     series.lastObservedTime, written (merge PATCH) at most once per patch
 *     interval;
 *   - spam filter: a token bucket per regarding object (burst 25, one more
 *     every 5 minutes, as client-go) limits how many Event objects it gets;
 *     repeats folded into an existing series cost no token;
 *   - asynchronous: sq_events_emit only copies into a bounded queue (dropping
 *     and counting when full); a background thread talks to the apiserver,
 *     so reconciles never wait on Events.
 * The aggregation and spam logic (sq_evagg_*) is pure and clock-driven for
 * unit tests; the recorder (sq_events_*) does the I/O. */
#ifndef SQLTDE_KUBE_EVENTS_H
#define SQLTDE_KUBE_EVENTS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "sqltde/clock.h"
#include "sqltde/err.h"
#include "sqltde/kube/client.h"

#define SQ_EVENTS_REPORTING_CONTROLLER "sqltde.io/operator"

/* Defaults (client-go: 6 min series lifetime, spam burst 25 / 1 per 5 min,
 * 1000 queued events). */
#define SQ_EVENTS_DEFAULT_WINDOW_MS (6 * 60 * 1000)
#define SQ_EVENTS_DEFAULT_PATCH_MS (30 * 1000)
#define SQ_EVENTS_DEFAULT_BURST 25
#define SQ_EVENTS_DEFAULT_REFILL_MS (5 * 60 * 1000)
#define SQ_EVENTS_DEFAULT_MAX_ENTRIES 4096
#define SQ_EVENTS_DEFAULT_QUEUE 1000

/* API limits enforced by the apiserver's validation (longer values are cut). */
#define SQ_EVENTS_NOTE_MAX 1024
#define SQ_EVENTS_REASON_MAX 128
#define SQ_EVENTS_ACTION_MAX 128

/* The object an Event is about (namespace "" for cluster-scoped objects,
 * whose Events then go to "kube-system": the only namespace every apiserver
 * version accepts for them). All strings are copied. */
typedef struct sq_event_ref {
  const char *api_version;
  const char *kind;
  const char *namespace;
  const char *name;
  const char *uid;
} sq_event_ref;

/* Fills ref with borrowed pointers into obj (apiVersion, kind, metadata.*). */
void sq_event_ref_from_object(const json_t *obj, sq_event_ref *ref);

typedef enum sq_event_type { SQ_EVENT_NORMAL = 0, SQ_EVENT_WARNING = 1 } sq_event_type;

/* ---- pure aggregation + spam filter --------------------------------------- */

typedef struct sq_evagg_config {
  int64_t window_ms;       /* a series with no occurrence this long ends; 0 -> default */
  int64_t patch_ms;        /* at most one series PATCH per this long; 0 -> default */
  int burst;               /* spam bucket size; 0 -> default */
  int64_t refill_ms;       /* one token per this long; 0 -> default */
  size_t max_entries;      /* series and buckets each; 0 -> default; LRU beyond */
} sq_evagg_config;

/* Private linkage of the aggregator's bounded LRU tables. */
typedef struct sq_evagg_link {
  struct sq_evagg_link *hnext, *prev, *next;
  uint64_t hash;
  char *key;
} sq_evagg_link;

/* One series (one Event object). Fields are read-only for callers; event is
 * set by the I/O layer through sq_evagg_written. */
typedef struct sq_evagg_entry {
  sq_evagg_link link;     /* private; link.key is the series key */
  char *obj_key;          /* regarding-object key */
  int64_t count;          /* occurrences folded into this series */
  int64_t written;        /* count the apiserver shows; 0 = not created */
  int64_t first_ms;       /* monotonic ms of the first / last occurrence */
  int64_t last_ms;
  int64_t last_wall_us;   /* wall clock of the last occurrence (lastObservedTime) */
  int64_t last_write_ms;  /* last create/patch attempt */
  json_t *event;          /* the Event object as created (owned), or NULL */
} sq_evagg_entry;

typedef struct sq_evagg sq_evagg;

typedef enum sq_evagg_verdict {
  SQ_EVAGG_CREATE, /* new series: create an Event object now */
  SQ_EVAGG_PATCH,  /* repeat, and the patch interval has passed: patch now */
  SQ_EVAGG_DEFER,  /* repeat, counted; written later by sq_evagg_due */
  SQ_EVAGG_SPAM,   /* new series but the object's bucket is empty: drop */
  SQ_EVAGG_NOMEM   /* could not allocate: drop */
} sq_evagg_verdict;

sq_code sq_evagg_new(const sq_evagg_config *cfg, sq_evagg **out);
void sq_evagg_free(sq_evagg *a);

/* Records one occurrence at now_ms (wall_us for lastObservedTime). For
 * CREATE/PATCH/DEFER *entry is the series (valid until the next call that
 * may evict: observe, forget, expire). A series not written yet (its create
 * pending or failed) keeps counting under DEFER. */
sq_evagg_verdict sq_evagg_observe(sq_evagg *a, const char *obj_key, const char *series_key,
                                  int64_t now_ms, int64_t wall_us, sq_evagg_entry **entry);

/* The I/O layer wrote count occurrences at now_ms (takes ownership of
 * event, which may be NULL to keep the current one). */
void sq_evagg_written(sq_evagg *a, sq_evagg_entry *e, int64_t count, json_t *event,
                      int64_t now_ms);
/* A write failed at now_ms: try again after the patch interval. */
void sq_evagg_write_failed(sq_evagg *a, sq_evagg_entry *e, int64_t now_ms);
/* Drops a series (e.g. its create failed for good, or the Event is gone). */
void sq_evagg_forget(sq_evagg *a, sq_evagg_entry *e);

/* Up to max created series with unwritten occurrences whose patch interval
 * has passed (all of them when force), into out; returns how many. */
size_t sq_evagg_due(sq_evagg *a, int64_t now_ms, int force, sq_evagg_entry **out, size_t max);
/* Earliest monotonic ms at which sq_evagg_due would return something, or
 * INT64_MAX when nothing is pending. */
int64_t sq_evagg_next_due_ms(const sq_evagg *a);
/* Ends series idle for the window (unless unwritten occurrences remain) and
 * forgets spam buckets that have refilled. */
void sq_evagg_expire(sq_evagg *a, int64_t now_ms);

/* Remaining spam tokens for obj_key at now_ms (burst when unknown). */
int sq_evagg_tokens(sq_evagg *a, const char *obj_key, int64_t now_ms);
size_t sq_evagg_series_count(const sq_evagg *a);
uint64_t sq_evagg_evicted(const sq_evagg *a); /* series dropped by the LRU bound */

/* Keys used by the recorder (exported for tests). Caller frees. */
char *sq_event_obj_key(const sq_event_ref *ref);
char *sq_event_series_key(const sq_event_ref *ref, sq_event_type type, const char *reason,
                          const char *action, const char *note);

/* ---- the recorder --------------------------------------------------------- */

typedef struct sq_events_config {
  const char *reporting_controller; /* NULL -> SQ_EVENTS_REPORTING_CONTROLLER */
  const char *reporting_instance;   /* required: the leader-election identity */
  size_t queue_max;                 /* 0 -> SQ_EVENTS_DEFAULT_QUEUE */
  sq_evagg_config agg;
  const sq_clock *clock;            /* NULL -> real (drives aggregation) */
} sq_events_config;

typedef struct sq_events sq_events;

typedef struct sq_events_stats {
  uint64_t emitted;        /* sq_events_emit calls accepted into the queue */
  uint64_t dropped_queue;  /* queue full */
  uint64_t dropped_spam;   /* spam filter */
  uint64_t dropped_other;  /* invalid arguments, out of memory */
  uint64_t creates;        /* Event objects created */
  uint64_t patches;        /* series patches */
  uint64_t write_errors;   /* failed creates/patches */
} sq_events_stats;

/* Creates a recorder (copies cfg). k is borrowed and must outlive it; it may
 * be NULL only for a recorder that is never started (tests). */
sq_code sq_events_new(sq_kube *k, const sq_events_config *cfg, sq_events **out, sq_err *err);

/* Starts the background writer. Events emitted before are kept (queue-bound). */
sq_code sq_events_start(sq_events *r, sq_err *err);

/* Queues one occurrence; never blocks on I/O. Strings are copied (note cut to
 * 1 KiB, reason/action to 128 bytes, invalid UTF-8 replaced). Returns SQ_OK
 * when queued, SQ_ETOOBIG when dropped because the queue is full, SQ_EINVAL
 * for a missing kind/name/reason/action. Thread-safe. */
sq_code sq_events_emit(sq_events *r, const sq_event_ref *regarding, sq_event_type type,
                       const char *reason, const char *action, const char *note);
sq_code sq_events_emitf(sq_events *r, const sq_event_ref *regarding, sq_event_type type,
                        const char *reason, const char *action, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Waits until everything queued so far is processed and every pending series
 * count is written (patch interval ignored), or timeout_ms passes
 * (SQ_ETIMEOUT). Needs a started recorder. */
sq_code sq_events_flush(sq_events *r, int64_t timeout_ms);

void sq_events_get_stats(sq_events *r, sq_events_stats *st);

/* Stops the writer after a final flush (bounded by the HTTP timeouts) and
 * frees. NULL is fine. */
void sq_events_free(sq_events *r);

#endif
