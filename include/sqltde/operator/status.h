/* operator/status.h — the one status writer of every controller.
 *
 * A reconcile starts a status draft from the object it read, edits it
 * (conditions through kube/conditions.h, plus its own fields), and commits.
 * The commit sets status.observedGeneration, compares the draft with what the
 * object already had and writes ONLY when something differs — a converged
 * estate produces no status writes, so no watch events, so no reconcile loop.
 * The write is a merge patch of the status subresource (fields the draft
 * dropped are sent as null), so spec is never touched (GitOps: no drift). */
#ifndef SQLTDE_OPERATOR_STATUS_H
#define SQLTDE_OPERATOR_STATUS_H

#include <jansson.h>
#include <stdint.h>

#include "sqltde/err.h"
#include "sqltde/kube/client.h"
#include "sqltde/kube/conditions.h"

typedef struct sq_status_draft {
  const json_t *obj;  /* borrowed: the object as read */
  json_t *status;     /* owned: the draft (a deep copy of obj.status, or {}) */
  int64_t generation; /* metadata.generation of obj */
  int64_t now;        /* wall seconds for condition transition times */
} sq_status_draft;

/* Starts a draft; NULL-safe on a missing status. SQ_ENOMEM only. */
sq_code sq_status_begin(sq_status_draft *d, const json_t *obj, int64_t now_wall_s);

/* The draft's conditions array (created on demand). */
json_t *sq_status_conditions(sq_status_draft *d);

/* kstatus shorthands on the draft (see kube/conditions.h). */
sq_code sq_status_ready(sq_status_draft *d, const char *reason, const char *message);
sq_code sq_status_reconciling(sq_status_draft *d, const char *reason, const char *message);
sq_code sq_status_retrying(sq_status_draft *d, const char *reason, const char *message);
sq_code sq_status_stalled(sq_status_draft *d, const char *reason, const char *message);
/* Any other condition type (e.g. Replicated, Inaccessible). */
sq_code sq_status_condition(sq_status_draft *d, const char *type, sq_cond_status st, const char *reason,
                            const char *message);

/* Sets observedGeneration, then writes iff the draft differs from obj.status.
 * *written (may be NULL) tells whether a request was made. The draft is freed
 * either way. */
sq_code sq_status_commit(sq_kube *k, const sq_kube_gvr *gvr, sq_status_draft *d, int *written,
                         sq_err *err);

/* Frees a draft without writing. */
void sq_status_abandon(sq_status_draft *d);

/* Pure: the merge patch turning old into new ({"status": {...}} with nulls for
 * dropped keys), or NULL when they are equal. */
json_t *sq_status_patch(const json_t *old_status, const json_t *new_status);

#endif
