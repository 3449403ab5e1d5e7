/* kube/manager.h — the controller engine: shared informers, one work queue
 * and worker pool per controller, leader election gating, clean shutdown.
 *
 * The engine is one short switch over a reconcile's result (controller-
 * runtime's): terminal error -> forget, no requeue; error -> rate-limited
 * requeue; requeue_after -> forget + delayed add; requeue -> rate-limited
 * requeue; success -> forget. A key is never reconciled by two workers at
 * once (the work queue guarantees it). Each reconcile gets an id that appears
 * in its log lines; metrics are updated in one spot.
 *
 * Informers are shared per resource type: controllers that read the same kind
 * use one cache. Informers start before leadership is won (so a standby has
 * warm caches); workers start only while leading, and losing leadership stops
 * the manager (the process then exits, like controller-runtime). */
#ifndef SQLTDE_KUBE_MANAGER_H
#define SQLTDE_KUBE_MANAGER_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdint.h>

#include "sqltde/err.h"
#include "sqltde/kube/client.h"
#include "sqltde/kube/informer.h"
#include "sqltde/kube/workqueue.h"

typedef struct sq_manager sq_manager;
typedef struct sq_controller sq_controller;

typedef struct sq_reconcile_req {
  const char *controller; /* controller name */
  const char *ns;         /* "" for cluster-scoped */
  const char *name;
  const char *key;        /* "ns/name" */
  const char *id;         /* reconcile id, also set on the thread's log lines */
} sq_reconcile_req;

typedef struct sq_reconcile_result {
  sq_code err;              /* non-zero: failed */
  int terminal;             /* with err: retrying cannot help (bad spec): no requeue */
  int requeue;              /* without err: come back soon (rate limited) */
  int64_t requeue_after_ms; /* > 0: come back after this long (periodic checks) */
} sq_reconcile_result;

typedef sq_reconcile_result (*sq_reconcile_fn)(void *ud, const sq_reconcile_req *req);

/* Where a map function names the primaries to re-queue. There is no limit:
 * a VaultKey used by 10,000 databases must wake all of them, and the queue
 * de-duplicates, so emitting a name twice is harmless. */
typedef struct sq_map_out sq_map_out;
void sq_map_emit(sq_map_out *out, const char *ns, const char *name);

/* Maps an object of a watched secondary kind to the primaries it concerns,
 * calling sq_map_emit once per primary. */
typedef void (*sq_map_fn)(void *ud, const json_t *obj, sq_map_out *out);

typedef struct sq_manager_opts {
  const char *namespace;   /* watch only this namespace; NULL = all */
  int64_t resync_ms;       /* informer resync; 0 -> informer default */
  int leader_elect;
  const char *leader_election_id;
  const char *leader_election_ns; /* NULL -> the client's namespace */
  int64_t lease_duration_ms, renew_deadline_ms, retry_period_ms; /* 0 -> defaults */
  int64_t sync_timeout_ms; /* waiting for caches; 0 -> 120 s */
} sq_manager_opts;

/* k is borrowed and must outlive the manager. */
sq_code sq_manager_new(sq_kube *k, const sq_manager_opts *opts, sq_manager **out, sq_err *err);
void sq_manager_free(sq_manager *m);

/* The shared informer for gvr, created on first use (before sq_manager_run).
 * Owned by the manager. */
sq_code sq_manager_informer(sq_manager *m, const sq_kube_gvr *gvr, sq_informer **out, sq_err *err);

/* Registers a controller for primary kind gvr with `workers` workers. name and
 * gvr strings must outlive the manager (use the static descriptors of
 * api/kinds.h). */
sq_code sq_manager_add_controller(sq_manager *m, const char *name, const sq_kube_gvr *gvr, int workers,
                                  sq_reconcile_fn fn, void *ud, sq_controller **out, sq_err *err);

/* Also reconcile the primary objects that map_fn names whenever an object of
 * gvr changes (e.g. a VaultKey change re-queues the SqlDatabases using it). */
sq_code sq_controller_watch(sq_controller *c, sq_manager *m, const sq_kube_gvr *gvr, sq_map_fn fn,
                            void *ud, sq_err *err);

/* Enqueues a key by hand (e.g. from a periodic check). */
void sq_controller_enqueue(sq_controller *c, const char *key);

/* The controller's queue (for tests and metrics). */
sq_wq *sq_controller_queue(sq_controller *c);

/* Runs until *stop becomes non-zero (checked every 100 ms) or leadership is
 * lost: starts informers, waits for their caches, campaigns (if enabled),
 * starts workers, then shuts down in reverse order, letting in-flight
 * reconciles finish. SQ_OK on a requested stop; SQ_ECANCELED when leadership
 * was lost; other codes when start-up failed. */
sq_code sq_manager_run(sq_manager *m, const atomic_int *stop, sq_err *err);

/* True when every informer has synced (a readiness check). */
int sq_manager_ready(sq_manager *m);

/* Whether this replica currently leads (1 when leader election is off and
 * the manager runs). */
int sq_manager_is_leader(sq_manager *m);

#endif
