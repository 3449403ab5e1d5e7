/* workqueue.h — the operator's work queue: client-go / controller-runtime
 * semantics in C with pthreads.
 *
 * Keys are strings ("Kind/namespace/name"); the queue copies them.
 *  - add: a key already waiting is not added twice; otherwise FIFO.
 *  - get hands a key to one worker and marks it processing; a key added
 *    while processing is marked dirty and re-queued only by done(), so one
 *    key is never in the hands of two workers at once.
 *  - add_after: delayed add through a min-heap of ready times, one entry per
 *    key (the earliest wins); served by get() itself, no timer thread.
 *  - add_rate_limited: delay = max(per-key exponential backoff, overall
 *    token bucket), see ratelimit.h; forget() resets the key's failures.
 *  - shutdown: blocked and future getters return SQ_ECANCELED.
 *
 * Time: ready times and metrics use the injected sq_clock (ms). Condition
 * variable waits use real monotonic time; a getter that waits for a
 * delayed key or with a timeout re-reads the clock at least every
 * opts.max_wait_ms (an idle getter with nothing delayed just sleeps).
 * Tests drive a fake clock with sq_wq_try_get (never sleeps) or call
 * sq_wq_wake after moving the clock.
 *
 * Memory: one entry per distinct key that is waiting, processing, delayed or
 * has failures; an entry is freed as soon as none of these holds, so memory
 * is bounded by the number of live keys. All calls are thread-safe. */
#ifndef SQLTDE_KUBE_WORKQUEUE_H
#define SQLTDE_KUBE_WORKQUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "sqltde/clock.h"
#include "sqltde/err.h"

/* Longest key including its NUL: "Kind/namespace/name" with a 253-byte name
 * and 63-byte namespace fits with room to spare. */
#define SQ_WQ_KEY_MAX 512

typedef struct sq_wq sq_wq;

typedef struct sq_wq_opts {
  const char *name;        /* copied; the metrics "name" label; NULL = "" */
  const sq_clock *clock;   /* borrowed, must outlive the queue; NULL = real */
  int64_t backoff_base_ms; /* 0 = SQ_BACKOFF_BASE_MS */
  int64_t backoff_max_ms;  /* 0 = SQ_BACKOFF_MAX_MS */
  double bucket_qps;       /* 0 = SQ_BUCKET_QPS; < 0 disables the bucket */
  int bucket_burst;        /* 0 = SQ_BUCKET_BURST */
  int64_t max_wait_ms;     /* cap on one condvar wait; 0 = 1000 */
  /* Optional: called (under the queue's lock: keep it quick, never call back
   * into the queue) for each observation of how long a key waited in the
   * queue (work = 0) or was processed (work = 1), in seconds. Lets a metrics
   * registry export the histograms without keeping a second copy. */
  void (*observe)(void *ud, int work, double seconds);
  void *observe_ud;
} sq_wq_opts;

/* Creates a queue; opts may be NULL for all defaults. Free with sq_wq_free. */
sq_code sq_wq_new(const sq_wq_opts *opts, sq_wq **out, sq_err *err);

/* Frees everything. No thread may be inside a queue call (join workers
 * after sq_wq_shutdown first). NULL is a no-op. */
void sq_wq_free(sq_wq *q);

/* Marks key as needing processing. SQ_EINVAL for an empty or too long key
 * (>= SQ_WQ_KEY_MAX), SQ_ENOMEM, SQ_ECANCELED when the queue is shutting
 * down (the add is dropped; callers normally ignore this). */
sq_code sq_wq_add(sq_wq *q, const char *key);

/* Adds key after delay_ms (<= 0: now). If the key is already delayed, the
 * earlier ready time wins. Counts as a retry in the metrics. */
sq_code sq_wq_add_after(sq_wq *q, const char *key, int64_t delay_ms);

/* Adds key after max(backoff(failures), bucket) and counts one more
 * failure. *delay_ms (if non-NULL) receives the chosen delay. */
sq_code sq_wq_add_rate_limited(sq_wq *q, const char *key, int64_t *delay_ms);

/* Resets key's failure count (call on success or terminal error). Does not
 * remove a pending add. */
void sq_wq_forget(sq_wq *q, const char *key);

/* Failures recorded for key since the last forget. */
unsigned sq_wq_num_requeues(sq_wq *q, const char *key);

/* Waits for a key and copies it into key (keysz >= SQ_WQ_KEY_MAX, else
 * SQ_EINVAL); the caller then owns the key's processing until sq_wq_done.
 * timeout_ms: < 0 waits forever, 0 never blocks, otherwise real ms.
 * Returns SQ_OK, SQ_ETIMEOUT (nothing ready in time) or SQ_ECANCELED (shut
 * down; the worker should exit). */
sq_code sq_wq_get_wait(sq_wq *q, char *key, size_t keysz, int64_t timeout_ms);

/* sq_wq_get_wait with timeout -1 (blocks) and 0 (non-blocking). */
sq_code sq_wq_get(sq_wq *q, char *key, size_t keysz);
sq_code sq_wq_try_get(sq_wq *q, char *key, size_t keysz);

/* Ends processing of key (from sq_wq_get); re-queues it if it was added
 * meanwhile. SQ_ESTATE if key is not being processed (a caller bug). */
sq_code sq_wq_done(sq_wq *q, const char *key);

/* Moves due delayed keys to the queue and wakes all getters; for tests that
 * advance a fake clock while a getter blocks. */
void sq_wq_wake(sq_wq *q);

/* Keys ready to hand out now (client-go Len: excludes processing, dirty-
 * while-processing and delayed keys). */
size_t sq_wq_len(sq_wq *q);

/* Immediate shutdown: adds are dropped, delayed keys discarded, every
 * blocked or later getter returns SQ_ECANCELED. done() keeps working so
 * workers can finish their current key. Idempotent. */
void sq_wq_shutdown(sq_wq *q);

/* Graceful shutdown: adds are dropped and delayed keys discarded, but
 * getters keep receiving the keys already queued (and keys re-queued by
 * done) until the queue is empty and nothing is processing; then getters get
 * SQ_ECANCELED. Blocks the caller until drained or timeout_ms (real, < 0 =
 * forever) passes, then shuts down for good. Must not be called from a
 * worker holding a key. Returns SQ_OK or SQ_ETIMEOUT. */
sq_code sq_wq_shutdown_drain(sq_wq *q, int64_t timeout_ms);

int sq_wq_shutting_down(sq_wq *q);

/* --- metrics ------------------------------------------------------------
 * The queue keeps the client-go workqueue metrics; a metrics module exports
 * them as workqueue_depth, workqueue_adds_total, workqueue_retries_total,
 * workqueue_queue_duration_seconds, workqueue_work_duration_seconds,
 * workqueue_unfinished_work_seconds and
 * workqueue_longest_running_processor_seconds with label name=sq_wq_name(). */

/* controller-runtime's buckets: ExponentialBuckets(10e-9, 10, 12), i.e.
 * 1e-8 s .. 1e3 s. Durations are measured in whole ms of the queue's clock. */
#define SQ_WQ_HIST_BUCKETS 12
extern const double sq_wq_hist_bounds[SQ_WQ_HIST_BUCKETS];

typedef struct sq_wq_hist {
  uint64_t count;                  /* observations (the +Inf bucket) */
  double sum;                      /* seconds */
  uint64_t le[SQ_WQ_HIST_BUCKETS]; /* cumulative: observations <= bound[i] */
} sq_wq_hist;

typedef struct sq_wq_stats {
  int64_t depth;                 /* keys added and not yet handed out */
  uint64_t adds_total;           /* adds that were not de-duplicated */
  uint64_t retries_total;        /* add_after / add_rate_limited calls */
  sq_wq_hist queue_duration;     /* add -> get */
  sq_wq_hist work_duration;      /* get -> done */
  double unfinished_work_seconds;           /* sum over keys in processing */
  double longest_running_processor_seconds; /* max over keys in processing */
  size_t processing;             /* keys in the hands of workers */
  size_t delayed;                /* keys waiting in the delay heap */
  size_t keys;                   /* entries held (memory bound check) */
} sq_wq_stats;

/* Snapshot taken under the lock at the clock's now (due delayed keys are
 * moved to the queue first, so depth counts them). */
void sq_wq_stats_get(sq_wq *q, sq_wq_stats *out);

/* The name given at creation (owned by the queue). */
const char *sq_wq_name(const sq_wq *q);

#endif
