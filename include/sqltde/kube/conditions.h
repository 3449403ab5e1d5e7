/* conditions.h — the one condition writer: metav1.Condition semantics on the
 * jansson array found at status.conditions, plus the kstatus conventions
 * (Ready; Reconciling and Stalled present only while True) that Flux, Argo CD
 * and `kubectl wait --for=condition=Ready` read.
 *
 * Pure and I/O-free. Every setter reports whether it changed anything so
 * the caller can skip a status write that would change nothing (a no-op
 * write still bumps resourceVersion and wakes every watcher).
 *
 * lastTransitionTime (RFC 3339 UTC, whole seconds) moves only when a
 * condition's status flips or the condition first appears; reason, message
 * and observedGeneration are always brought up to date. `now` is wall-clock
 * seconds, passed in so one reconcile stamps every condition alike and tests
 * can fix it.
 *
 * Ownership: arrays and objects are the caller's; setters modify them in
 * place; lookups return borrowed pointers valid until the array changes. */
#ifndef SQLTDE_KUBE_CONDITIONS_H
#define SQLTDE_KUBE_CONDITIONS_H

#include <jansson.h>
#include <stdint.h>

#include "sqltde/err.h"

typedef enum sq_cond_status {
  SQ_COND_ABSENT = -1, /* lookup result only: no such condition */
  SQ_COND_UNKNOWN = 0,
  SQ_COND_TRUE,
  SQ_COND_FALSE,
} sq_cond_status;

/* metav1.Condition limits (apimachinery validation / CRD schema). */
#define SQ_COND_TYPE_MAX 316
#define SQ_COND_REASON_MAX 1024
#define SQ_COND_MESSAGE_MAX 32768

/* kstatus condition types. */
#define SQ_COND_READY "Ready"
#define SQ_COND_RECONCILING "Reconciling"
#define SQ_COND_STALLED "Stalled"

/* "True" / "False" / "Unknown" (NULL for SQ_COND_ABSENT or out of range). */
const char *sq_cond_status_name(sq_cond_status s);

/* 1 if type is a valid condition type (a qualified name: optional DNS
 * subdomain prefix and "/", then 1-63 of [A-Za-z0-9_.-] starting and ending
 * alphanumeric). */
int sq_cond_type_valid(const char *type);

/* 1 if reason matches ^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$ and is at
 * most SQ_COND_REASON_MAX bytes. */
int sq_cond_reason_valid(const char *reason);

/* Copies message (NULL = "") made safe for a condition: invalid UTF-8
 * sequences become U+FFFD and the result is cut at a character boundary to
 * at most SQ_COND_MESSAGE_MAX bytes. Returns a malloc'd string (caller
 * frees) or NULL on allocation failure. */
char *sq_cond_message_sanitize(const char *message);

/* status.conditions of status (an object), created as [] if missing or not
 * an array. Borrowed; NULL only if status is not an object or on ENOMEM. */
json_t *sq_cond_array(json_t *status);

/* Sets condition type in conds (an array) to st with reason, message and
 * observedGeneration, appending it if absent (later duplicates of the type
 * are removed). *changed (if non-NULL) is set to 1 if conds was modified,
 * else 0. SQ_EINVAL (nothing modified) for an invalid type or reason, a
 * status outside True/False/Unknown, generation < 0 or conds not an array;
 * SQ_ENOMEM. */
sq_code sq_cond_set(json_t *conds, const char *type, sq_cond_status st, const char *reason,
                    const char *message, int64_t generation, int64_t now, int *changed,
                    sq_err *err);

/* The condition object of that type (borrowed) or NULL. */
json_t *sq_cond_find(const json_t *conds, const char *type);

/* Its status, SQ_COND_ABSENT if missing; a malformed status reads Unknown. */
sq_cond_status sq_cond_get_status(const json_t *conds, const char *type);

/* 1 if present with status "True". */
int sq_cond_is_true(const json_t *conds, const char *type);

/* Removes every condition of that type; *changed (if non-NULL) says if any. */
void sq_cond_remove(json_t *conds, const char *type, int *changed);

/* --- kstatus ------------------------------------------------------------
 * Each helper sets the whole kstatus trio consistently, with one reason and
 * message, and ORs into *changed like sq_cond_set:
 *   ready        Ready=True;                      Reconciling, Stalled removed
 *   reconciling  Ready=Unknown, Reconciling=True; Stalled removed
 *   retrying     Ready=False,   Reconciling=True; Stalled removed
 *                (a transient failure the operator retries with backoff)
 *   stalled      Ready=False,   Stalled=True;     Reconciling removed
 *                (cannot proceed without a change to spec or environment) */
sq_code sq_cond_set_ready(json_t *conds, const char *reason, const char *message,
                          int64_t generation, int64_t now, int *changed, sq_err *err);
sq_code sq_cond_set_reconciling(json_t *conds, const char *reason, const char *message,
                                int64_t generation, int64_t now, int *changed, sq_err *err);
sq_code sq_cond_set_retrying(json_t *conds, const char *reason, const char *message,
                             int64_t generation, int64_t now, int *changed, sq_err *err);
sq_code sq_cond_set_stalled(json_t *conds, const char *reason, const char *message,
                            int64_t generation, int64_t now, int *changed, sq_err *err);

#endif
