/* kube/leader.h — Lease-based leader election (coordination.k8s.io/v1).
 *
 * Only one replica of the operator may reconcile at a time. This follows
 * client-go's leaderelection package, which controller-runtime uses:
 *   - candidates create the Lease if it is missing, or take it when it has no
 *     holder or has expired; a write carries the resourceVersion read just
 *     before, so two candidates racing for it cannot both win (409 -> retry);
 *   - expiry is judged by the LOCAL monotonic clock: a Lease whose record has
 *     not changed for leaseDurationSeconds since we first saw that record is
 *     expired. Clocks of different machines are never compared;
 *   - the leader renews every retry period; if no renewal has succeeded within
 *     the renew deadline it stops leading (on_stopped_leading), and it does not
 *     try again: the operator exits, as controller-runtime's manager does;
 *   - on a clean stop the leader releases the Lease (empty holder, duration
 *     1 s) so a successor takes over at once instead of waiting for expiry.
 * The decision part ("given what I observed, what do I do?") is pure and
 * exported for unit tests; the elector runs it on its own thread.
 *
 * Threads: sq_leader_start spawns an election thread and a watchdog thread
 * (the watchdog enforces the renew deadline even while a request hangs).
 * Callbacks run on those threads (on_stopped_leading may also run on the
 * thread calling sq_leader_stop); they must return quickly and must not call
 * sq_leader_stop/sq_leader_free. */
#ifndef SQLTDE_KUBE_LEADER_H
#define SQLTDE_KUBE_LEADER_H

#include <stddef.h>
#include <stdint.h>

#include "sqltde/clock.h"
#include "sqltde/err.h"
#include "sqltde/kube/client.h"

/* client-go / controller-runtime defaults. */
#define SQ_LEADER_DEFAULT_LEASE_MS 15000
#define SQ_LEADER_DEFAULT_RENEW_MS 10000
#define SQ_LEADER_DEFAULT_RETRY_MS 2000
/* client-go's JitterFactor: waits while acquiring last retry*(1 + U[0,1.2)). */
#define SQ_LEADER_JITTER 1.2

#define SQ_LEADER_ID_MAX 128 /* holderIdentity we write; longer ones read are cut */

/* ---- pure decision part -------------------------------------------------- */

/* The fields of a Lease's spec that matter for the election. */
typedef struct sq_lease_record {
  char holder[SQ_LEADER_ID_MAX + 1]; /* "" = nobody (released or never held) */
  int64_t duration_s;                /* leaseDurationSeconds; 0 when absent */
  char acquire_time[40];             /* MicroTime strings, compared not parsed */
  char renew_time[40];
  int64_t transitions; /* leaseTransitions */
} sq_lease_record;

/* Fills rec from a Lease object (missing fields -> empty / 0). */
void sq_lease_record_from_json(const json_t *lease, sq_lease_record *rec);

/* What a candidate remembers about the Lease: the last record seen and the
 * local monotonic time at which it was first seen with that content. */
typedef struct sq_leader_view {
  int have;               /* a record has been observed */
  sq_lease_record rec;
  int64_t observed_ms;    /* when rec was first seen (local monotonic ms) */
} sq_leader_view;

/* Records an observation at now_ms. The observation time moves only when the
 * record differs from the remembered one (any field: a renewal changes
 * renew_time), so a lease nobody renews ages from when we first saw it.
 * Returns 1 when the record changed (or is the first), 0 otherwise. */
int sq_leader_observe(sq_leader_view *v, const sq_lease_record *rec, int64_t now_ms);

/* True when the viewed lease has a holder whose lease is still valid:
 * now_ms < observed_ms + duration_s * 1000. */
int sq_leader_lease_valid(const sq_leader_view *v, int64_t now_ms);

typedef enum sq_leader_action {
  SQ_LEADER_CREATE,    /* no Lease exists: create it naming me */
  SQ_LEADER_TAKE,      /* free or expired: write me as holder, transitions + 1 */
  SQ_LEADER_RENEW,     /* I hold it: write a new renewTime, keep acquireTime */
  SQ_LEADER_WAIT,      /* someone else holds a valid lease: retry later */
  SQ_LEADER_STEP_DOWN  /* I was leading but the Lease names someone else */
} sq_leader_action;

/* The decision. lease_exists = 0 when the GET answered 404 (v is then
 * ignored). leading = whether this candidate currently believes it leads.
 * A leader that finds another holder steps down at once rather than waiting
 * for its renew deadline: two leaders at once is the failure this prevents. */
sq_leader_action sq_leader_decide(const sq_leader_view *v, int lease_exists, const char *me,
                                  int leading, int64_t now_ms);

/* True when a leader whose last successful renewal started at last_ok_ms must
 * stop leading at now_ms (the renew deadline has passed). */
int sq_leader_renew_expired(int64_t last_ok_ms, int64_t now_ms, int64_t renew_deadline_ms);

/* Stable name of an action ("create", "take", ...). */
const char *sq_leader_action_name(sq_leader_action a);

/* ---- the elector ---------------------------------------------------------- */

typedef enum sq_leader_stop_reason {
  SQ_LEADER_LOST = 1,     /* renew deadline passed or the Lease was taken: exit */
  SQ_LEADER_RELEASED = 2  /* sq_leader_stop while leading (clean shutdown) */
} sq_leader_stop_reason;

typedef struct sq_leader_config {
  const char *lease_namespace; /* required (--leader-election-namespace) */
  const char *lease_name;      /* required (--leader-election-id) */
  const char *identity;        /* NULL -> sq_leader_make_identity() */
  int64_t lease_duration_ms;   /* whole seconds; 0 -> 15000 */
  int64_t renew_deadline_ms;   /* 0 -> 10000; must be < lease duration */
  int64_t retry_period_ms;     /* 0 -> 2000; renew deadline must exceed 1.2 x this */
  int no_release_on_cancel;    /* 0 = release the Lease on sq_leader_stop (default) */
  /* Called once leadership is acquired. */
  void (*on_started_leading)(void *ud);
  /* Called once when leadership ends (lost, or released by sq_leader_stop). */
  void (*on_stopped_leading)(void *ud, sq_leader_stop_reason why);
  /* Called when the observed holder changes (including to ourselves). */
  void (*on_new_leader)(void *ud, const char *identity);
  void *ud;
} sq_leader_config;

/* Fills the three durations with the defaults above (other fields untouched). */
void sq_leader_config_defaults(sq_leader_config *c);

/* Checks durations as client-go does (all > 0, lease > renew > 1.2 x retry,
 * lease a whole number of seconds) and that namespace/name are set. */
sq_code sq_leader_config_check(const sq_leader_config *c, sq_err *err);

/* hostname + "_" + 16 random hex digits, like controller-runtime's
 * hostname_UUID; out must hold SQ_LEADER_ID_MAX + 1 bytes. */
sq_code sq_leader_make_identity(char *out, size_t outlen, sq_err *err);

typedef struct sq_leader sq_leader;

/* Creates an elector (copies cfg and its strings; k is borrowed and must
 * outlive it). Nothing runs until sq_leader_start. */
sq_code sq_leader_new(sq_kube *k, const sq_leader_config *cfg, sq_leader **out, sq_err *err);

/* Starts the election thread. */
sq_code sq_leader_start(sq_leader *l, sq_err *err);

/* Stops campaigning; if leading, calls on_stopped_leading(SQ_LEADER_RELEASED)
 * and then releases the Lease (unless no_release_on_cancel). Blocks until the
 * threads have exited (at most one in-flight request). Idempotent. */
void sq_leader_stop(sq_leader *l);

/* Stops (if needed) and frees. NULL is fine. */
void sq_leader_free(sq_leader *l);

/* Whether we lead right now: leading, and the renew deadline has not passed. */
int sq_leader_is_leader(sq_leader *l);

/* Blocks until leading (SQ_OK), stopped or lost (SQ_ECANCELED), or timeout_ms
 * elapsed (SQ_ETIMEOUT; < 0 waits forever). */
sq_code sq_leader_wait(sq_leader *l, int64_t timeout_ms);

/* Our identity (owned by l). */
const char *sq_leader_identity(const sq_leader *l);

typedef struct sq_leader_status {
  int leading;
  int lost;
  char holder[SQ_LEADER_ID_MAX + 1]; /* last observed holder */
  int64_t last_renew_ms;  /* monotonic start of the last successful write, 0 = none */
  uint64_t writes;        /* successful creates/updates (renewals included) */
  uint64_t conflicts;     /* 409s (a racing candidate won) */
  uint64_t errors;        /* other failures */
} sq_leader_status;

void sq_leader_get_status(sq_leader *l, sq_leader_status *st);

#endif
