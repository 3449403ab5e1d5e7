/* operator/execute.h — runs one planned step (plan/plan_types.h) against
 * Azure through the typed Microsoft.Sql client (azure/sql.h), following its
 * long-running operation to the end. The planner decided; this only sends.
 * An ARM refusal comes back as the call's code with err->reason = the ARM
 * error code (e.g. PerDatabaseCMKKeyRotationAttemptedWhileOldThumbprintInUse),
 * which the controller records as the last failure. */
#ifndef SQLTDE_OPERATOR_EXECUTE_H
#define SQLTDE_OPERATOR_EXECUTE_H

#include "sqltde/azure/arm.h"
#include "sqltde/err.h"
#include "sqltde/operator/op.h"
#include "sqltde/operator/status.h"
#include "sqltde/plan/plan_types.h"

/* Executes s. SQ_EINVAL for a step missing what its kind needs. */
sq_code sq_execute_step(sq_arm *arm, const sq_plan_step *s, sq_err *err);

/* 1 for steps that write to Azure (all of them today; kept for callers that
 * count writes). */
int sq_execute_is_write(const sq_plan_step *s);

/* Runs p's steps in order, stopping at the first failure (the next pass
 * re-plans from observed state). *done = steps that succeeded. Emits a
 * Normal Event per step done and a Warning for the failure (on obj). */
sq_code sq_execute_plan(sq_op *op, const json_t *obj, const sq_plan *p, size_t *done, sq_err *err);

/* The plan's verdict as kstatus conditions on the draft (Ready / Reconciling
 * / Stalled with the plan's reason and message), plus InvalidSpec=True while
 * the reason is InvalidSpec. */
sq_code sq_execute_plan_conditions(sq_status_draft *d, const sq_plan *p);

/* Events for transitions between the object as read and the draft: Ready
 * becoming True (Normal), Stalled with a new reason and condition
 * `extra_type` (e.g. Inaccessible) becoming True (Warning). */
void sq_execute_transition_events(sq_op *op, const sq_status_draft *d, const char *extra_type);

#endif
