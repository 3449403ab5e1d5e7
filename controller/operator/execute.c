/* execute.c — one planned step -> one Azure write; see
 * include/sqltde/operator/execute.h. */
#include <stdlib.h>
#include <string.h>

#include "sqltde/azure/sql.h"
#include "sqltde/jsonx.h"
#include "sqltde/kube/conditions.h"
#include "sqltde/log.h"
#include "sqltde/operator/execute.h"
#include "sqltde/plan/plan.h"
#include "sqltde/plan/plan_format.h"

/* The planner's formatter renders every step as one ARM request
 * (plan/plan_format.h, pinned by tests/unit/test_plan_format.c), so what is
 * sent is exactly what was planned and validated there: there is no second
 * mapping from steps to Azure calls to drift apart. sq_arm_do follows the
 * LRO and maps ARM refusals (err->reason = the ARM error code). */
sq_code sq_execute_step(sq_arm *arm, const sq_plan_step *s, sq_err *err) {
  sq_plan_request r;
  sq_code rc = sq_plan_step_request(s, &r, err);
  if(rc)
    return rc;
  sq_arm_call c = {.method = r.method, .path = r.path, .api_version = SQ_SQL_API_VERSION, .body = r.body};
  sq_arm_result res;
  sq_arm_result_init(&res);
  rc = sq_arm_do(arm, &c, &res, err);
  sq_arm_result_free(&res);
  sq_plan_request_free(&r);
  return rc;
}

int sq_execute_is_write(const sq_plan_step *s) {
  return s != NULL;
}

/* ---- plan execution and status, shared by the SqlServer and SqlDatabase
 * controllers ---- */


sq_code sq_execute_plan(sq_op *op, const json_t *obj, const sq_plan *p, size_t *done, sq_err *err) {
  *done = 0;
  for(size_t i = 0; i < p->n_steps; i++) {
    const sq_plan_step *s = &p->steps[i];
    const char *kind = sq_plan_step_kind_name(s->kind);
    sq_log_kv(SQ_LOG_INFO, "execute", "step", "action", kind, "detail", s->description, NULL);
    sq_code rc = sq_execute_step(op->arm, s, err);
    if(rc) {
      sq_op_event(op, obj, 1, err && err->reason[0] ? err->reason : "StepFailed", kind, "%s failed: %s",
                  s->description, err ? err->message : sq_code_name(rc));
      return rc;
    }
    sq_op_event(op, obj, 0, kind, kind, "%s", s->description);
    (*done)++;
  }
  return SQ_OK;
}

sq_code sq_execute_plan_conditions(sq_status_draft *d, const sq_plan *p) {
  const char *reason = sq_plan_reason_name(p->reason);
  const char *msg = p->message ? p->message : "";
  /* A wait's message counts down ("granted 12s ago", "retrying in 40s"):
   * while the reason stays the same keep the message already shown, or
   * every pass would write status and its watch event would start the next
   * pass at once. */
  if(p->verdict == SQ_PLAN_WAITING) {
    const json_t *oc = sq_json_path(d->obj, "status.conditions");
    const char *type = sq_plan_kstatus_of(p) == SQ_PLAN_KSTATUS_STALLED ? SQ_COND_STALLED : SQ_COND_RECONCILING;
    const json_t *c = sq_cond_find(oc, type);
    const char *r = c ? sq_json_str(c, "reason") : NULL, *m = c ? sq_json_str(c, "message") : NULL;
    if(r && m && !strcmp(r, reason) && sq_cond_is_true(oc, type) &&
       sq_json_int(c, "observedGeneration", -1) == d->generation)
      msg = m;
  }
  int changed;
  json_t *conds = sq_status_conditions(d);
  if(p->reason == SQ_REASON_INVALID_SPEC)
    sq_cond_set(conds, "InvalidSpec", SQ_COND_TRUE, reason, msg, d->generation, d->now, &changed, NULL);
  else
    sq_cond_remove(conds, "InvalidSpec", &changed);
  switch(sq_plan_kstatus_of(p)) {
  case SQ_PLAN_KSTATUS_READY:
    return sq_status_ready(d, reason, msg[0] ? msg : "Azure matches the spec");
  case SQ_PLAN_KSTATUS_RECONCILING:
    return sq_status_reconciling(d, reason, msg[0] ? msg : "applying the plan");
  case SQ_PLAN_KSTATUS_STALLED:
    break;
  }
  return sq_status_stalled(d, reason, msg);
}

static const char *cond_reason(const json_t *conds, const char *type) {
  const json_t *c = sq_cond_find(conds, type);
  return c ? sq_json_str(c, "reason") : NULL;
}

static int str_eq(const char *a, const char *b) {
  return (!a && !b) || (a && b && !strcmp(a, b));
}

void sq_execute_transition_events(sq_op *op, const sq_status_draft *d, const char *extra_type) {
  const json_t *old = sq_json_path(d->obj, "status.conditions");
  const json_t *now = sq_json_path(d->status, "conditions");
  if(sq_cond_is_true(now, SQ_COND_READY) && !sq_cond_is_true(old, SQ_COND_READY))
    sq_op_event(op, d->obj, 0, "Ready", "Reconcile", "%s", "Azure matches the spec");
  if(sq_cond_is_true(now, SQ_COND_STALLED) &&
     (!sq_cond_is_true(old, SQ_COND_STALLED) ||
      !str_eq(cond_reason(old, SQ_COND_STALLED), cond_reason(now, SQ_COND_STALLED)))) {
    const json_t *c = sq_cond_find(now, SQ_COND_STALLED);
    sq_op_event(op, d->obj, 1, cond_reason(now, SQ_COND_STALLED), "Reconcile", "%s",
                c && sq_json_str(c, "message") ? sq_json_str(c, "message") : "");
  }
  if(extra_type && sq_cond_is_true(now, extra_type) && !sq_cond_is_true(old, extra_type)) {
    const json_t *c = sq_cond_find(now, extra_type);
    sq_op_event(op, d->obj, 1, extra_type, "Observe", "%s",
                c && sq_json_str(c, "message") ? sq_json_str(c, "message") : "");
  }
}
