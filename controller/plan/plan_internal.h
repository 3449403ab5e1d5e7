/* plan_internal.h — helpers shared by the planner's sources (not public).
 *
 * plan_rules.c holds the small named checks both planners use (key and
 * permission gates, auto-rotation equivalence, rotation backoff) and the
 * plan builder (steps, findings, verdict) that records their outcome. */
#ifndef SQLTDE_PLAN_INTERNAL_H
#define SQLTDE_PLAN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "sqltde/plan/plan.h"
#include "sqltde/plan/plan_types.h"

/* Key URI split into borrowed pieces (host, key name, version; version may
 * be empty). Returns 1 on success. */
typedef struct pl_keyuri {
  const char *host;
  size_t host_len;
  const char *name;
  size_t name_len;
  const char *version;
  size_t version_len;
} pl_keyuri;
int pl_keyuri_parse(const char *uri, pl_keyuri *out);

/* Last path segment of an ARM id or key name/version for messages, e.g.
 * ".../userAssignedIdentities/umi1" -> "umi1"; "kv1/tde/0123abcd" for a key
 * URI (version cut to 8). Writes into out (always terminated). */
void pl_short_id(const char *id, char *out, size_t outlen);
void pl_short_key(const char *uri, char *out, size_t outlen);

/* ---- borrowed string set (the planner's predicted state) --------------- */

/* Room for a database's observed keys plus everything a plan can add. */
#define PL_SET_MAX (2 * SQ_PLAN_LIST_MAX + 8)
typedef struct pl_set {
  const char *v[PL_SET_MAX];
  size_t n;
} pl_set;

int pl_set_has(const pl_set *s, const char *x);
void pl_set_add(pl_set *s, const char *x); /* dedup; silently full at PL_SET_MAX */
void pl_set_del(pl_set *s, const char *x);
void pl_set_add_list(pl_set *s, const sq_plan_list *l);
int pl_set_eq(const pl_set *a, const pl_set *b); /* same members */

/* ---- plan builder ------------------------------------------------------- */

typedef struct pl_out {
  sq_plan *p;
  int oom;     /* an allocation failed: sq_plan_db/server return SQ_ENOMEM */
  int stopped; /* a wait/refusal was recorded: no more steps */
} pl_out;

/* Appends a zeroed step (secondary = -1) or NULL when full / out of memory. */
sq_plan_step *pl_step_new(pl_out *o, sq_plan_step_kind kind, sq_plan_target target,
                          const char *server_id, const char *database);
/* Writes / appends the step's one-line description (cut at
 * SQ_PLAN_DESC_MAX on a UTF-8 character boundary). */
void pl_desc(sq_plan_step *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pl_desc_append(sq_plan_step *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Owned copy (NULL stays NULL); sets o->oom on failure. */
char *pl_dup(pl_out *o, const char *s);
void pl_list_add(pl_out *o, sq_plan_list *l, const char *s);

/* Adds a finding (deduplicated by reason + message; dropped past the cap). */
void pl_finding(pl_out *o, sq_plan_reason r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records a wait (verdict WAITING) or refusal (REFUSED). When steps were
 * already emitted the plan stays PROGRESSING and this becomes a finding
 * saying what blocks the next step. Sets o->stopped. */
void pl_stop(pl_out *o, sq_plan_verdict v, sq_plan_reason r, int64_t retry_ms, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Sets the final verdict when nothing stopped the plan: PROGRESSING with
 * steps, else CONVERGED with reason r / message. */
void pl_finish(pl_out *o, sq_plan_reason converged_reason, const char *converged_msg);

/* Saturating a - b for times from untrusted input (never overflows). */
int64_t pl_sub(int64_t a, int64_t b);
/* Seconds to milliseconds, saturating. */
int64_t pl_ms(int64_t s);

/* ---- shared rules ------------------------------------------------------- */

/* Default re-check interval for waits on outside changes: 5 minutes keeps a
 * stuck object cheap while still noticing a fix soon; watch events on the
 * referenced objects requeue sooner. */
#define PL_RECHECK_MS (5 * 60 * 1000)
#define PL_REFUSED_RECHECK_MS (10 * 60 * 1000)
#define PL_BUSY_MS (60 * 1000)
#define PL_OBSERVE_MS (30 * 1000)

/* Why a key cannot be used now. */
typedef struct pl_problem {
  sq_plan_verdict verdict;
  sq_plan_reason reason;
  int64_t retry_ms;
  char msg[512];
} pl_problem;

/* 1 if key uri is usable now by identity (NULL = not known); else 0 with
 * *pr filled. Adds finding AccessUnverified when access is UNKNOWN. */
int pl_key_check(pl_out *o, const sq_plan_facts *f, int64_t now, const char *uri,
                 const char *identity, pl_problem *pr);

/* Gate for a key a step passes to Azure, used by identity (may be NULL =
 * not known). Returns 1 if usable now; otherwise records the wait/refusal
 * (pl_stop) and returns 0. An UNKNOWN access adds finding AccessUnverified. */
int pl_gate_key(pl_out *o, const sq_plan_facts *f, int64_t now, const char *uri,
                const char *identity, const char *what);

/* Whether observed protector `have` (auto-rotation `have_auto`) satisfies
 * desired `want` with desired auto-rotation `want_auto`: equal, or another
 * version of the same key while auto-rotation is on in both. In the second
 * case, adds AutoRotationOverdue if want's version is older than 24 h and
 * newer than have's (facts' created times). */
int pl_protector_matches(pl_out *o, const sq_plan_facts *f, int64_t now, const char *have,
                         int have_auto, const char *want, int want_auto, const char *who);

/* RotationBlocked backoff: returns the ms still to wait (0 = may retry) for
 * a SetProtector on a database of server_id that already has a protector. */
int64_t pl_rotation_wait_ms(const sq_plan_failure *f, const char *server_id, int64_t now);

#endif
