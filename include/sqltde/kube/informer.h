/* kube/informer.h — list + watch of one resource type into a local cache.
 *
 * An sq_informer mirrors one resource type (in one namespace or in all, with
 * an optional label selector) into an sq_cache and tells event handlers about
 * every change, so controllers read local memory and react to events instead
 * of polling the apiserver. It runs on its own thread:
 *
 *   LIST (paged, 500 a page) -> replace the cache -> WATCH from the list's
 *   resourceVersion with bookmarks, tracking the newest resourceVersion of
 *   every event (bookmarks included);
 *   watch ended by the server (timeoutSeconds, 5-10 min, randomised so many
 *     informers do not reconnect together) -> watch again from there;
 *   watch failed (transport, apiserver down, 5xx, 429...) -> exponential
 *     backoff with jitter (200 ms doubling to 30 s), then watch again from
 *     the last resourceVersion;
 *   410 Gone (HTTP status or ERROR event) -> full relist: the cache is
 *     replaced and handlers get synthetic events for what changed meanwhile
 *     (added / updated / deleted with final_state_unknown set);
 *   every resync period (default 10 h) -> every cached object is delivered
 *     again to on_update (old == new, same pointer), with no API call, as
 *     a safety net against missed events.
 *
 * Handlers run on the informer thread, one at a time, in event order, after
 * the cache already reflects the event. They must not block for long (map the
 * object to a work-queue key and return) and must not call sq_informer_stop.
 * Objects passed to handlers are borrowed for the call: json_incref or copy to
 * keep them. They are already transformed (managedFields and the kubectl
 * last-applied annotation removed, then the caller's transform applied).
 *
 * Reads from any thread go through sq_informer_cache() (see kube/cache.h:
 * every object returned is a new, caller-owned copy). */
#ifndef SQLTDE_KUBE_INFORMER_H
#define SQLTDE_KUBE_INFORMER_H

#include <jansson.h>
#include <stdint.h>

#include "sqltde/err.h"
#include "sqltde/kube/cache.h"
#include "sqltde/kube/client.h"

typedef struct sq_informer sq_informer;

typedef struct sq_informer_handlers {
  void (*on_add)(void *ud, const json_t *obj);
  /* old_obj == new_obj (same pointer) on a periodic resync */
  void (*on_update)(void *ud, const json_t *old_obj, const json_t *new_obj);
  /* final_state_unknown: the deletion was found by a relist, obj is the last
   * state the cache saw (client-go's DeletedFinalStateUnknown) */
  void (*on_delete)(void *ud, const json_t *obj, int final_state_unknown);
  void *ud;
} sq_informer_handlers;

/* Defaults in one place: 0 in an option means the default below. */
#define SQ_INFORMER_PAGE_SIZE 500
#define SQ_INFORMER_RESYNC_MS (10LL * 3600 * 1000)
/* A watch lasts a random time in [min, max]: the apiserver's own default is
 * also randomised so reconnects of many clients spread out. */
#define SQ_INFORMER_WATCH_MIN_S 300
#define SQ_INFORMER_WATCH_MAX_S 600
/* 200 ms retries a blip almost at once; 30 s keeps a down apiserver from
 * being hammered by every informer of every operator replica. */
#define SQ_INFORMER_BACKOFF_INITIAL_MS 200
#define SQ_INFORMER_BACKOFF_MAX_MS 30000
#define SQ_INFORMER_MAX_HANDLERS 8

typedef struct sq_informer_opts {
  sq_kube_gvr gvr;            /* copied */
  const char *namespace;      /* NULL or "" = all namespaces; copied */
  const char *label_selector; /* NULL = everything; copied */
  long page_size;             /* LIST page size; 0 -> 500 */
  int64_t resync_ms;          /* 0 -> 10 h; < 0 -> never */
  long watch_min_s, watch_max_s; /* 0 -> 300 / 600 */
  int64_t backoff_initial_ms, backoff_max_ms; /* 0 -> 200 / 30000 */
  /* Extra transform run after the default strip (sq_cache_strip); NULL for
   * none. Called on the informer thread. */
  sq_cache_transform_fn transform;
  void *transform_ud;
} sq_informer_opts;

/* Counters for metrics; read with sq_informer_stats (a consistent-enough copy:
 * each counter is read atomically, not all together). */
typedef struct sq_informer_stats {
  uint64_t lists;        /* LIST requests made (pages), failed ones included */
  uint64_t list_errors;  /* LIST requests that failed */
  uint64_t relists;      /* full lists after the first one (410 Gone) */
  uint64_t watches;      /* WATCH requests made */
  uint64_t watch_errors; /* watches that ended in an error other than 410 */
  uint64_t gone;         /* 410 Gone answers (watch or list) */
  uint64_t events;       /* watch events received, bookmarks included */
  uint64_t bookmarks;    /* BOOKMARK events */
  uint64_t resyncs;      /* periodic resyncs done */
  uint64_t dropped;      /* objects refused (no name, transform refusal) */
  uint64_t objects;      /* objects in the cache now */
} sq_informer_stats;

/* Creates a stopped informer. k is borrowed and must outlive the informer.
 * opts is copied. Nothing is contacted until sq_informer_start. */
sq_code sq_informer_new(sq_kube *k, const sq_informer_opts *opts, sq_informer **out, sq_err *err);

/* Adds a set of handlers (copied). Only before start: SQ_ESTATE after, or
 * when SQ_INFORMER_MAX_HANDLERS are already registered. */
sq_code sq_informer_add_handlers(sq_informer *inf, const sq_informer_handlers *h, sq_err *err);

/* Starts the informer thread. Once per informer (SQ_ESTATE otherwise). */
sq_code sq_informer_start(sq_informer *inf, sq_err *err);

/* True once the first LIST has been stored and its on_add calls made. */
int sq_informer_has_synced(sq_informer *inf);

/* Waits until synced: SQ_OK, SQ_ETIMEOUT after timeout_ms (< 0: forever), or
 * SQ_ECANCELED if the informer is stopped first. */
sq_code sq_informer_wait_for_sync(sq_informer *inf, int64_t timeout_ms);

/* The informer's cache (borrowed; valid until sq_informer_free). Read-only
 * for callers: only the informer thread writes it. */
sq_cache *sq_informer_cache(sq_informer *inf);

/* Copies the newest resourceVersion seen ("" before the first list) into out. */
void sq_informer_last_rv(sq_informer *inf, char *out, size_t outlen);

void sq_informer_stats_get(sq_informer *inf, sq_informer_stats *out);

/* Stops the thread: cancels the watch in flight (the HTTP layer notices within
 * ~100 ms), interrupts a backoff sleep, and joins. A LIST in flight is not
 * cancellable and is awaited (bounded by the HTTP timeout). Idempotent; safe
 * on a never-started informer. Must not be called from a handler. */
void sq_informer_stop(sq_informer *inf);

/* Stops if needed and frees everything, the cache included. NULL is fine. */
void sq_informer_free(sq_informer *inf);

#endif
