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

/* A NULL-terminated view of a list (strings borrowed); NULL when empty. */
static const char **nt(const sq_plan_list *l, sq_code *rc) {
  if(!l->n)
    return NULL;
  const char **v = calloc(l->n + 1, sizeof *v);
  if(!v) {
    *rc = SQ_ENOMEM;
    return NULL;
  }
  for(size_t i = 0; i < l->n; i++)
    v[i] = l->v[i];
  return v;
}

static sq_code need(const char *s, const char *what, sq_err *err) {
  if(s && *s)
    return SQ_OK;
  return sq_err_set(err, SQ_EINVAL, "step is missing its %s", what);
}

/* Through the generic request the planner renders (no typed call exists for
 * a server PATCH). */
static sq_code generic(sq_arm *arm, const sq_plan_step *s, sq_err *err) {
  sq_plan_request r;
  memset(&r, 0, sizeof r);
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

sq_code sq_execute_step(sq_arm *arm, const sq_plan_step *s, sq_err *err) {
  sq_code rc = SQ_OK;
  char db_id[SQ_SQL_ID_MAX], name[256];
  const char **keys = NULL, **rm = NULL;
  sq_sql_database out;
  memset(&out, 0, sizeof out);
  if((rc = need(s->server_id, "server id", err)))
    return rc;
  if(s->target != SQ_TARGET_SERVER) {
    if((rc = need(s->database, "database name", err)))
      return rc;
    if((rc = sq_sql_database_id(s->server_id, s->database, db_id, sizeof db_id, err)))
      return rc;
  }
  switch(s->kind) {
  case SQ_STEP_CREATE_DATABASE: {
    keys = nt(&s->keys, &rc);
    if(rc)
      break;
    sq_sql_db_create_args a = {
        .location = s->location,
        .mode = s->create_mode == SQ_CREATE_SECONDARY ? SQ_SQL_CREATE_SECONDARY : SQ_SQL_CREATE_DEFAULT,
        .sku_name = s->sku_name,
        .sku_tier = s->sku_tier,
        .source_database_id = s->source_database_id,
        .secondary_type = s->create_mode == SQ_CREATE_SECONDARY ? "Geo" : NULL,
        .umi_id = s->identity_id,
        .keys = keys,
        .encryption_protector = s->protector_uri,
        .auto_rotation = s->protector_uri ? s->auto_rotation : -1,
        .federated_client_id = s->federated_client_id,
    };
    rc = sq_sql_db_create(arm, db_id, &a, &out, err);
    break;
  }
  case SQ_STEP_SET_IDENTITY: {
    rm = nt(&s->remove_identities, &rc);
    if(rc)
      break;
    sq_sql_db_patch_args p = {.umi_set = s->identity_id, .umi_remove = rm, .auto_rotation = -1};
    rc = sq_sql_db_patch(arm, db_id, &p, &out, err);
    break;
  }
  case SQ_STEP_SET_FEDERATED_CLIENT_ID: {
    sq_sql_db_patch_args p = {.auto_rotation = -1,
                              .federated_client_id = s->federated_client_id ? s->federated_client_id : ""};
    rc = sq_sql_db_patch(arm, db_id, &p, &out, err);
    break;
  }
  case SQ_STEP_ADD_KEYS: {
    keys = nt(&s->keys, &rc);
    if(rc)
      break;
    sq_sql_db_patch_args p = {.keys_add = keys, .auto_rotation = -1};
    rc = sq_sql_db_patch(arm, db_id, &p, &out, err);
    break;
  }
  case SQ_STEP_SET_AUTO_ROTATION: {
    sq_sql_db_patch_args p = {.auto_rotation = s->auto_rotation ? 1 : 0};
    rc = sq_sql_db_patch(arm, db_id, &p, &out, err);
    break;
  }
  case SQ_STEP_SET_PROTECTOR: {
    if((rc = need(s->protector_uri, "protector", err)))
      break;
    keys = nt(&s->keys, &rc);
    if(rc)
      break;
    sq_sql_db_patch_args p = {.keys_add = keys, .encryption_protector = s->protector_uri,
                              .auto_rotation = s->auto_rotation ? 1 : 0};
    rc = sq_sql_db_patch(arm, db_id, &p, &out, err);
    break;
  }
  case SQ_STEP_REMOVE_KEYS: {
    rm = nt(&s->remove_keys, &rc);
    if(rc)
      break;
    if(!rm) {
      rc = sq_err_set(err, SQ_EINVAL, "RemoveKeys step without keys");
      break;
    }
    sq_sql_db_patch_args p = {.keys_remove = rm, .auto_rotation = -1};
    rc = sq_sql_db_patch(arm, db_id, &p, &out, err);
    break;
  }
  case SQ_STEP_REVALIDATE:
    rc = sq_sql_db_revalidate(arm, db_id, err);
    break;
  case SQ_STEP_REVERT:
    rc = sq_sql_db_revert(arm, db_id, err);
    break;
  case SQ_STEP_DELETE_DATABASE:
    rc = sq_sql_db_delete(arm, db_id, err);
    break;
  case SQ_STEP_SET_SERVER_IDENTITY:
    rc = generic(arm, s, err);
    break;
  case SQ_STEP_ADD_SERVER_KEY: {
    if(!s->keys.n) {
      rc = sq_err_set(err, SQ_EINVAL, "AddServerKey step without a key");
      break;
    }
    sq_sql_server_key k;
    rc = sq_sql_server_key_create(arm, s->server_id, s->keys.v[0], &k, err);
    break;
  }
  case SQ_STEP_SET_SERVER_PROTECTOR: {
    if((rc = need(s->protector_uri, "protector", err)))
      break;
    if((rc = sq_sql_server_key_name(s->protector_uri, name, sizeof name, err)))
      break;
    sq_sql_protector pr;
    rc = sq_sql_protector_set(arm, s->server_id, name, s->auto_rotation ? 1 : 0, &pr, err);
    break;
  }
  case SQ_STEP_SET_SERVER_SERVICE_MANAGED: {
    sq_sql_protector pr;
    rc = sq_sql_protector_set(arm, s->server_id, NULL, -1, &pr, err);
    break;
  }
  default:
    rc = sq_err_set(err, SQ_EINVAL, "unknown step kind %d", (int)s->kind);
  }
  free(keys);
  free(rm);
  sq_sql_database_free(&out);
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
