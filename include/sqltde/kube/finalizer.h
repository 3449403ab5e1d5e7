/* kube/finalizer.h — finalizers: cleaning up before Kubernetes deletes an object.
 *
 * A resource whose deletion needs work in Azure (or a deliberate decision not
 * to do any) carries our finalizer; Kubernetes then only marks it
 * (metadata.deletionTimestamp) until we remove the finalizer. The pattern is
 * kube-rs's finalizer(): a pure decision maps the object to
 *   ADD     — not being deleted, finalizer missing: add it first (then apply);
 *   APPLY   — not being deleted, finalizer present: normal reconcile;
 *   CLEANUP — being deleted, finalizer present: run cleanup and remove the
 *             finalizer only once cleanup reports it is done;
 *   NONE    — being deleted and our finalizer is gone: nothing of ours left.
 * Writes are merge patches of metadata.finalizers carrying the full list and
 * the object's resourceVersion, so a concurrent edit of the list fails with
 * 409 (SQ_ECONFLICT, retry after a fresh read) instead of being clobbered.
 * Objects are borrowed json_t*; returned objects are owned by the caller. */
#ifndef SQLTDE_KUBE_FINALIZER_H
#define SQLTDE_KUBE_FINALIZER_H

#include <jansson.h>

#include "sqltde/err.h"
#include "sqltde/kube/client.h"

/* Whether metadata.finalizers contains name. */
int sq_finalizer_has(const json_t *obj, const char *name);

/* Whether metadata.deletionTimestamp is set. */
int sq_finalizer_deleting(const json_t *obj);

/* Pure: the merge patch that sets metadata.finalizers to obj's list with name
 * added (add = 1) or removed (add = 0), with obj's resourceVersion as the
 * precondition. NULL when nothing would change, or on ENOMEM (*nomem set).
 * Order of the other finalizers is kept; duplicates of name are all removed. */
json_t *sq_finalizer_patch(const json_t *obj, const char *name, int add, int *nomem);

/* Adds name to the live object (no request when already present). *out, if
 * out is non-NULL, receives the updated object (a copy of obj when nothing was
 * written). SQ_ESTATE when obj is being deleted (the apiserver forbids new
 * finalizers then), SQ_EINVAL when obj has no resourceVersion, SQ_ECONFLICT
 * when the object changed since obj was read. */
sq_code sq_finalizer_add(sq_kube *k, const sq_kube_gvr *r, const json_t *obj, const char *name,
                         json_t **out, sq_err *err);

/* Removes name (no request when absent). An object that is already gone
 * (404) counts as done: SQ_OK with *out NULL. */
sq_code sq_finalizer_remove(sq_kube *k, const sq_kube_gvr *r, const json_t *obj,
                            const char *name, json_t **out, sq_err *err);

typedef enum sq_finalizer_action {
  SQ_FIN_ADD,
  SQ_FIN_APPLY,
  SQ_FIN_CLEANUP,
  SQ_FIN_NONE
} sq_finalizer_action;

/* Pure decision; see the table at the top. */
sq_finalizer_action sq_finalizer_decide(const json_t *obj, const char *name);

const char *sq_finalizer_action_name(sq_finalizer_action a);

/* Callbacks: obj is borrowed for the call. cleanup sets *done = 1 when
 * nothing of the object remains to clean (leaving 0 keeps the finalizer, and
 * the caller requeues). */
typedef sq_code (*sq_finalizer_apply_fn)(void *ud, const json_t *obj, sq_err *err);
typedef sq_code (*sq_finalizer_cleanup_fn)(void *ud, const json_t *obj, int *done, sq_err *err);

/* Runs the decision against obj: ADD -> add the finalizer, then apply on the
 * updated object; APPLY -> apply; CLEANUP -> cleanup, then remove the
 * finalizer when done; NONE -> nothing. *taken (may be NULL) tells which
 * branch ran. A callback's error is returned as is; a finalizer write error
 * (e.g. SQ_ECONFLICT) is returned with the verb in err. */
sq_code sq_finalizer_reconcile(sq_kube *k, const sq_kube_gvr *r, const json_t *obj,
                               const char *name, sq_finalizer_apply_fn apply,
                               sq_finalizer_cleanup_fn cleanup, void *ud,
                               sq_finalizer_action *taken, sq_err *err);

#endif
