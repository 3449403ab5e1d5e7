/* plan/plan.h — the pure planners: plan = f(desired, observed, now).
 *
 * One place decides what to write to Azure. A controller gathers a snapshot
 * (plan/plan_types.h), calls the planner, executes steps[0] (or several, in
 * order, re-planning whenever one fails), records progress in status and
 * requeues. Every step is idempotent and the plan is recomputed from observed
 * state on every pass, so a restart at any point converges.
 *
 * The planners are total: every input, including a malformed or
 * half-observed one, yields a verdict (never UB). They return SQ_ENOMEM and
 * nothing else (then *out is empty).
 *
 * Verdicts and how a controller maps them to kstatus (sq_plan_kstatus):
 *   CONVERGED    no step; Ready=True (reason UpToDate, or Retained/Deleted
 *                while being deleted: remove the finalizer).
 *   PROGRESSING  steps[0..n) to run in order; Reconciling=True.
 *   WAITING      no step now; requeue after retry_after_ms. Reconciling=True,
 *                or Stalled=True for reasons that need an outside change
 *                (key disabled, database inaccessible, ...).
 *   REFUSED      no step; Stalled=True. retry_after_ms is a re-check interval
 *                for refusals the environment can lift (0 = wait for a spec
 *                change).
 * findings[] are warnings to surface as conditions/Events without failing
 * the plan (e.g. KeyRemovalWouldStrandBackup), plus, when steps exist, what
 * will block the step after the last one listed.
 *
 * Rules (SPEC.md §4) enforced by sq_plan_db, in the order it checks them:
 *   deletion      Retain -> release, no Azure call; Delete -> DeleteDatabase on
 *                 every declared secondary, then the primary.
 *   validity      InvalidSpec (controller's verdict, >4 secondaries, one on the
 *                 primary's own server, duplicates, chaining, CMK without
 *                 identity, pinned version with autoRotation, bad key URI);
 *                 OptInToSMKNotAllowed (SMK requested on a CMK server).
 *   revalidate    an Inaccessible database whose protector is reachable again
 *                 gets Revalidate before anything else.
 *   create        CreateDatabase (Default) with identity, keys and protector.
 *   identity      SetIdentity to exactly the desired UMI (others removed),
 *                 then SetFederatedClientId, before keys that need them.
 *   keys          AddKeys (no protector) to the primary and every secondary:
 *                 the desired keys, the future protector, and the primary's
 *                 current protector on every secondary.
 *   protector     SetAutoRotation/SetProtector on the primary, then on each
 *                 secondary (the primary's protector is on every secondary
 *                 at every step). With auto-rotation on, another version of
 *                 the same key is not a diff (Azure moves within 24 h;
 *                 finding AutoRotationOverdue after that). A recorded
 *                 PerDatabaseCMKKeyRotationAttemptedWhileOldThumbprintInUse
 *                 gives RotationBlocked with bounded exponential backoff.
 *                 Server level wanted: Revert (primary, then secondaries) only
 *                 when that server is SMK, else RevertNotAllowedWithServerCMK.
 *   secondaries   CreateDatabase (Secondary) for declared replicas, with the
 *                 primary's current keys and protector.
 *   removal       RemoveKeys last, never a key that is a protector, current
 *                 (active VLFs) or needed by a retained backup
 *                 (finding KeyRemovalWouldStrandBackup instead).
 * Every key a step passes to Azure must exist, be enabled and valid now, and
 * be reachable by the identity that will use it (a grant younger than
 * SQ_PLAN_GRANT_DELAY_S is PermissionPending); otherwise the plan stops
 * before that step. */
#ifndef SQLTDE_PLAN_H
#define SQLTDE_PLAN_H

#include "sqltde/err.h"
#include "sqltde/plan/plan_types.h"

/* Rotation backoff after PerDatabaseCMKKeyRotationAttemptedWhileOldThumbprintInUse:
 * 1 min * 2^(attempts-1), at most 30 min. Active log moves on in minutes, so
 * the first retries are soon; the cap keeps a long transaction from costing
 * more than two ARM writes an hour. */
#define SQ_PLAN_ROTATION_BACKOFF_BASE_MS (60 * 1000)
#define SQ_PLAN_ROTATION_BACKOFF_MAX_MS (30 * 60 * 1000)
#define SQ_PLAN_ROTATION_BLOCKED_CODE "PerDatabaseCMKKeyRotationAttemptedWhileOldThumbprintInUse"

/* Plans one SqlDatabase (its database and its geo-secondaries). out must be
 * zero-initialised or freed; in is only read. */
sq_code sq_plan_db(const sq_plan_db_input *in, sq_plan *out, sq_err *err);

/* Plans one SqlServer: its identity and server-level protector. Emits only
 * SQ_TARGET_SERVER steps: server-level changes never touch databases (those
 * with their own protector keep it; the others follow the server in Azure). */
sq_code sq_plan_server(const sq_plan_server_input *in, sq_plan *out, sq_err *err);

/* Stable CamelCase names: "SetProtector", "RotationBlocked", "Waiting", ...
 * Never NULL ("Unknown" when out of range). */
const char *sq_plan_step_kind_name(sq_plan_step_kind k);
const char *sq_plan_reason_name(sq_plan_reason r);
/* 1 for the kinds that address the logical server, 0 for database kinds. */
int sq_plan_step_is_server(sq_plan_step_kind k);
const char *sq_plan_verdict_name(sq_plan_verdict v);

/* 1 if a WAITING/REFUSED plan with this reason cannot end without a change
 * outside the operator (spec, vault, permissions): kstatus Stalled. */
int sq_plan_reason_stalled(sq_plan_reason r);

typedef enum sq_plan_kstatus {
  SQ_PLAN_KSTATUS_READY = 0,   /* sq_cond_set_ready */
  SQ_PLAN_KSTATUS_RECONCILING, /* sq_cond_set_reconciling */
  SQ_PLAN_KSTATUS_STALLED,     /* sq_cond_set_stalled */
} sq_plan_kstatus;

sq_plan_kstatus sq_plan_kstatus_of(const sq_plan *p);

#endif
