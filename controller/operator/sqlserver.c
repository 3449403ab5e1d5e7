/* sqlserver.c — the SqlServer controller.
 *
 * Adopts an existing logical server (never creates or deletes it): gathers
 * the server and its encryption protector (operator/gather.h), asks
 * sq_plan_server what to write (primary UMI, server key, protector SMK/CMK +
 * auto-rotation), executes the steps in order and records the observed
 * protector in status (protectorType, protectorKeyUri, thumbprint,
 * autoRotation, location) — the SqlDatabase controller reads those instead
 * of reading the server again for each of its databases. Requeue as for
 * SqlDatabase. Deleting the object releases the server with no Azure call. */
#include <stdio.h>
#include <string.h>

#include "keyctl.h"
#include "sqltde/api/kinds.h"
#include "sqltde/jsonx.h"
#include "sqltde/kube/finalizer.h"
#include "sqltde/log.h"
#include "sqltde/operator/controllers.h"
#include "sqltde/operator/execute.h"
#include "sqltde/operator/gather.h"
#include "sqltde/plan/plan.h"
#include "sqltde/plan/plan_format.h"

static const char *LOG = "sqlserver";
#define SRV_AFTER_STEPS_MS 1000

static void observed_status(sq_status_draft *d, const sq_server_snapshot *s) {
  if(!s->observed)
    return;
  json_t *st = d->status;
  int akv = !strcmp(s->protector.server_key_type, "AzureKeyVault");
  json_object_set_new(st, "protectorType", json_string(akv ? "CustomerManaged" : "ServiceManaged"));
  if(akv && s->protector.uri[0])
    json_object_set_new(st, "protectorKeyUri", json_string(s->protector.uri));
  else
    json_object_del(st, "protectorKeyUri");
  const char *th = s->protector.thumbprint;
  if(akv && !th[0] && s->protector.uri[0]) {
    const sq_plan_key_fact *k = sq_plan_facts_key(&s->in.facts, s->protector.uri);
    th = k ? k->thumbprint : "";
  }
  if(akv && th[0])
    json_object_set_new(st, "thumbprint", json_string(th));
  else
    json_object_del(st, "thumbprint");
  json_object_set_new(st, "autoRotation", json_boolean(s->protector.auto_rotation_enabled > 0));
  if(s->server.location[0])
    json_object_set_new(st, "location", json_string(s->server.location));
}

static void map_refs(sq_op *op, const char *path, const json_t *obj, sq_map_out *out) {
  const char *name = sq_json_str(obj, "metadata.name"), *ns = sq_json_str(obj, "metadata.namespace");
  if(!name || !ns)
    return;
  json_t *all = sq_kc_list(op, &SQ_GVR_SQLSERVER, ns);
  size_t i;
  const json_t *srv;
  json_array_foreach(all, i, srv) {
    const char *ref = sq_json_str(srv, path);
    if(ref && !strcmp(ref, name))
      sq_map_emit(out, ns, sq_json_str(srv, "metadata.name"));
  }
  json_decref(all);
}
static void map_identity(void *ud, const json_t *obj, sq_map_out *out) { map_refs(ud, "spec.identity.name", obj, out); }
static void map_vaultkey(void *ud, const json_t *obj, sq_map_out *out) { map_refs(ud, "spec.protector.vaultKey.name", obj, out); }

static sq_reconcile_result reconcile(void *ud, const sq_reconcile_req *req) {
  sq_op *op = ud;
  sq_reconcile_result res = sq_kc_after(0);
  json_t *obj = sq_op_get(op, &SQ_GVR_SQLSERVER, req->ns, req->name);
  if(!obj)
    return res;
  sq_err err;
  sq_err_clear(&err);
  if(sq_finalizer_deleting(obj)) {
    /* adopted, never ours to delete: release without any Azure call */
    if(sq_finalizer_has(obj, SQ_FINALIZER)) {
      sq_code rc = sq_finalizer_remove(op->kube, &SQ_GVR_SQLSERVER, obj, SQ_FINALIZER, NULL, &err);
      res = rc ? sq_kc_error(rc) : res;
    }
    json_decref(obj);
    return res;
  }
  if(!sq_finalizer_has(obj, SQ_FINALIZER)) {
    json_t *upd = NULL;
    sq_code rc = sq_finalizer_add(op->kube, &SQ_GVR_SQLSERVER, obj, SQ_FINALIZER, &upd, &err);
    json_decref(obj);
    json_decref(upd);
    return rc ? sq_kc_error(rc) : sq_kc_after(SRV_AFTER_STEPS_MS);
  }

  int64_t now = sq_kc_now(op);
  sq_server_snapshot s;
  sq_plan plan;
  memset(&plan, 0, sizeof plan);
  sq_status_draft d;
  if(sq_status_begin(&d, obj, now)) {
    json_decref(obj);
    return sq_kc_error(SQ_ENOMEM);
  }
  sq_code grc = sq_gather_server(op, obj, now, &s, &err);
  if(grc == SQ_ENOMEM || sq_plan_server(&s.in, &plan, NULL)) {
    sq_status_abandon(&d);
    res = sq_kc_error(SQ_ENOMEM);
    goto out;
  }
  observed_status(&d, &s);
  if(grc) {
    char m[600];
    sq_kc_errstr(&err, grc, m, sizeof m);
    sq_status_retrying(&d, err.reason[0] ? err.reason : "AzureReadFailed", m);
    sq_kc_commit(op, &SQ_GVR_SQLSERVER, &d, LOG);
    res = sq_kc_error(grc);
    goto out;
  }
  const json_t *prev_plan = sq_json_int(obj, "status.observedGeneration", -1) == d.generation
                                ? sq_json_path(obj, "status.plan")
                                : NULL;
  size_t done = 0;
  sq_code xrc = SQ_OK;
  if(plan.verdict == SQ_PLAN_PROGRESSING)
    xrc = sq_execute_plan(op, obj, &plan, &done, &err);
  json_t *pj = sq_plan_status_json(&plan, prev_plan, xrc ? SQ_STEP_FAILED : SQ_STEP_RUNNING);
  if(pj)
    json_object_set_new(d.status, "plan", pj);
  sq_execute_plan_conditions(&d, &plan);
  if(xrc) {
    char m[600];
    sq_kc_errstr(&err, xrc, m, sizeof m);
    sq_status_retrying(&d, err.reason[0] ? err.reason : "StepFailed", m);
    res = sq_kc_error(xrc);
  } else if(done)
    res = sq_kc_after(SRV_AFTER_STEPS_MS);
  else if(plan.verdict == SQ_PLAN_CONVERGED)
    res = sq_kc_after(op->cfg.resync_ms);
  else
    res = sq_kc_after(plan.retry_after_ms > 0 ? plan.retry_after_ms : op->cfg.resync_ms);
  if(plan.verdict != SQ_PLAN_CONVERGED)
    sq_log_kv(SQ_LOG_INFO, LOG, "plan", "key", req->key, "verdict", sq_plan_verdict_name(plan.verdict), "reason",
              sq_plan_reason_name(plan.reason), "message", plan.message ? plan.message : "", NULL);
  sq_execute_transition_events(op, &d, NULL);
  sq_code wrc = sq_kc_commit(op, &SQ_GVR_SQLSERVER, &d, LOG);
  if(wrc && !xrc)
    res = sq_kc_error(wrc);
out:
  sq_plan_free(&plan);
  sq_server_snapshot_free(&s);
  json_decref(obj);
  return res;
}

sq_code sq_sqlserver_controller_register(sq_op *op, int workers, sq_err *err) {
  sq_controller *c;
  sq_code rc = sq_manager_add_controller(op->mgr, "sqlserver", &SQ_GVR_SQLSERVER, workers, reconcile, op, &c, err);
  if(!rc)
    rc = sq_controller_watch(c, op->mgr, &SQ_GVR_VAULTKEY, map_vaultkey, op, err);
  if(!rc)
    rc = sq_controller_watch(c, op->mgr, &SQ_GVR_MANAGEDIDENTITY, map_identity, op, err);
  return rc;
}
