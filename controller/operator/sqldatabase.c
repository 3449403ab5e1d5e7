/* sqldatabase.c — the SqlDatabase controller.
 *
 * One pass: gather a snapshot (operator/gather.h: caches + ARM reads), ask
 * the pure planner (plan/plan.h) what to do, execute the planned steps in
 * order (operator/execute.h; the first failure ends the pass), record what
 * was observed and the plan's progress in status, requeue. Nothing is
 * remembered between passes except what status holds (the key history and
 * the last failed attempt, so a restart keeps the rotation backoff).
 *
 * Requeue: converged -> after the resync interval (a pass of a converged
 * database makes reads only, and no status write when nothing moved);
 * waiting/refused -> the planner's retry; steps executed -> 1 s, to observe
 * their effect; a failed read or write -> the engine's rate-limited backoff.
 * Finalizer: added first; on deletion the planner decides (Retain releases
 * without any Azure call, Delete drops the database first). */
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
#include "sqltde/operator/server_obs.h"
#include "sqltde/plan/plan.h"
#include "sqltde/plan/plan_format.h"

static const char *LOG = "sqldatabase";
#define DB_AFTER_STEPS_MS 1000
#define COND_INACCESSIBLE "Inaccessible"
#define COND_ROTATION_BLOCKED "RotationBlocked"
#define COND_KEY_KEPT "KeyRemovalBlocked"
#define KEY_HISTORY_MAX 64
/* After Azure refused a step, the next attempt waits 5 s * 2^(attempts-1),
 * at most 5 min, counted from status.lastFailure.at — in status, so neither
 * the status write the failure causes (a watch event) nor a restart turns
 * the retry into a hot loop. The planner adds its own, longer backoff for
 * RotationBlocked. */
#define DB_FAIL_BASE_MS 5000
#define DB_FAIL_MAX_MS (5 * 60 * 1000)

/* Milliseconds until the step that failed last may be tried again (0 = now). */
static int64_t failure_wait_ms(const json_t *obj, int64_t now) {
  const json_t *lf = sq_json_path(obj, "status.lastFailure");
  const char *at = lf ? sq_json_str(lf, "at") : NULL;
  if(!at)
    return 0;
  int64_t t = sq_parse_rfc3339(at), attempts = sq_json_int(lf, "attempts", 1);
  if(t <= 0)
    return 0;
  int64_t delay = DB_FAIL_BASE_MS;
  for(int64_t i = 1; i < attempts && delay < DB_FAIL_MAX_MS; i++)
    delay *= 2;
  if(delay > DB_FAIL_MAX_MS)
    delay = DB_FAIL_MAX_MS;
  int64_t elapsed = (now - t) * 1000;
  if(elapsed < 0)
    elapsed = 0;
  return elapsed >= delay ? 0 : delay - elapsed;
}

static const char *thumb_of(const sq_db_snapshot *s, const char *uri) {
  for(size_t i = 0; i < s->db.n_keys; i++)
    if(sq_plan_uri_eq(s->db.keys[i].uri, uri) && s->db.keys[i].thumbprint[0])
      return s->db.keys[i].thumbprint;
  const sq_plan_key_fact *k = sq_plan_facts_key(&s->in.facts, uri);
  if(k && k->thumbprint[0])
    return k->thumbprint;
  if(s->server_protector_uri[0] && sq_plan_uri_eq(uri, s->server_protector_uri))
    return s->server_thumbprint;
  return "";
}

/* Appends to status.keyHistory when the protector in effect changed: the
 * open entry gets `to`, the new one `from`. */
static void key_history(json_t *st, const char *uri, const char *thumb, int64_t now) {
  json_t *kh = json_object_get(st, "keyHistory");
  if(!json_is_array(kh)) {
    kh = json_array();
    json_object_set_new(st, "keyHistory", kh);
  }
  size_t n = json_array_size(kh);
  json_t *last = n ? json_array_get(kh, n - 1) : NULL;
  const char *lu = last && !sq_json_str(last, "to") ? sq_json_str(last, "keyUri") : NULL;
  if(lu && uri && sq_plan_uri_eq(lu, uri))
    return;
  if(!lu && !uri)
    return;
  char t[32];
  sq_rfc3339(now, t, sizeof t);
  if(lu)
    json_object_set_new(last, "to", json_string(t));
  if(uri)
    json_array_append_new(kh, json_pack("{s:s,s:s,s:s}", "keyUri", uri, "thumbprint", thumb ? thumb : "",
                                        "from", t));
  while(json_array_size(kh) > KEY_HISTORY_MAX)
    json_array_remove(kh, 0);
}

static void observed_status(sq_status_draft *d, const sq_db_snapshot *s) {
  json_t *st = d->status;
  if(!s->observed)
    return;
  if(!s->in.primary.exists) {
    json_object_set_new(st, "state", json_string("NotFound"));
    return;
  }
  const sq_sql_database *db = &s->db;
  json_object_set_new(st, "state", json_string(db->status[0] ? db->status : "Unknown"));
  int dblevel = db->encryption_protector[0] != 0;
  json_object_set_new(st, "level", json_string(dblevel ? "Database" : "Server"));
  const char *uri = dblevel ? db->encryption_protector : (s->server_protector_uri[0] ? s->server_protector_uri : NULL);
  if(uri) {
    json_object_set_new(st, "protectorKeyUri", json_string(uri));
    json_object_set_new(st, "thumbprint", json_string(thumb_of(s, uri)));
  } else {
    json_object_set_new(st, "protectorKeyUri", json_string("ServiceManaged"));
    json_object_del(st, "thumbprint");
  }
  if(db->keys_present) {
    json_t *ck = json_array();
    for(size_t i = 0; i < db->n_keys; i++)
      json_array_append_new(ck, json_pack("{s:s,s:s}", "keyUri", db->keys[i].uri, "thumbprint",
                                          db->keys[i].thumbprint[0] ? db->keys[i].thumbprint
                                                                    : thumb_of(s, db->keys[i].uri)));
    json_object_set_new(st, "currentKeys", ck);
  } else if(!dblevel)
    json_object_del(st, "currentKeys");
  if(s->vlf_known) {
    json_t *v = json_array();
    for(size_t i = 0; i < s->vlf_thumbprints.n; i++)
      json_array_append_new(v, json_string(s->vlf_thumbprints.v[i]));
    json_object_set_new(st, "vlfThumbprints", v);
  }
  key_history(st, uri, uri ? thumb_of(s, uri) : NULL, s->in.now);
}

static void flag(sq_status_draft *d, const char *type, int on, const char *reason, const char *msg) {
  json_t *conds = sq_status_conditions(d);
  if(on)
    sq_cond_set(conds, type, SQ_COND_TRUE, reason, msg ? msg : "", d->generation, d->now, NULL, NULL);
  else
    sq_cond_remove(conds, type, NULL);
}

static void record_failure(sq_status_draft *d, const sq_err *e, const char *server, int64_t now) {
  const char *code = e->reason[0] ? e->reason : sq_code_name(e->code);
  const json_t *prev = json_object_get(d->status, "lastFailure");
  int64_t attempts = 1;
  if(prev && sq_json_str(prev, "code") && !strcmp(sq_json_str(prev, "code"), code))
    attempts = sq_json_int(prev, "attempts", 0) + 1;
  char t[32];
  sq_rfc3339(now, t, sizeof t);
  json_object_set_new(d->status, "lastFailure",
                      json_pack("{s:s,s:s,s:s,s:I,s:s}", "code", code, "server", server ? server : "", "at", t,
                                "attempts", (json_int_t)attempts, "message", e->message));
}

/* Cached list items carry no kind: each watch passes its own. */
static void map_refs(sq_op *op, const char *kind, const json_t *obj, sq_map_out *out) {
  const char *name = sq_json_str(obj, "metadata.name");
  const char *ns = sq_json_str(obj, "metadata.namespace");
  if(!kind || !name || !ns)
    return;
  json_t *all = sq_kc_list(op, &SQ_GVR_SQLDATABASE, ns);
  size_t i;
  const json_t *db;
  json_array_foreach(all, i, db) {
    const json_t *spec = sq_json_path(db, "spec");
    int hit = 0;
    if(!strcmp(kind, "SqlServer"))
      hit = sq_json_str(spec, "server.name") && !strcmp(sq_json_str(spec, "server.name"), name);
    else if(!strcmp(kind, "ManagedIdentity"))
      hit = sq_json_str(spec, "identity.name") && !strcmp(sq_json_str(spec, "identity.name"), name);
    else if(!strcmp(kind, "VaultKey")) {
      const char *p = sq_json_str(spec, "encryptionProtector.vaultKey.name");
      hit = p && !strcmp(p, name);
      size_t j;
      const json_t *k;
      json_array_foreach(sq_json_path(spec, "keys"), j, k) {
        const char *v = sq_json_str(k, "vaultKey");
        if(v && !strcmp(v, name))
          hit = 1;
      }
    }
    if(hit)
      sq_map_emit(out, ns, sq_json_str(db, "metadata.name"));
  }
  json_decref(all);
}

static void map_server(void *ud, const json_t *obj, sq_map_out *out) { map_refs(ud, "SqlServer", obj, out); }
static void map_identity(void *ud, const json_t *obj, sq_map_out *out) { map_refs(ud, "ManagedIdentity", obj, out); }
static void map_vaultkey(void *ud, const json_t *obj, sq_map_out *out) { map_refs(ud, "VaultKey", obj, out); }

static sq_reconcile_result reconcile(void *ud, const sq_reconcile_req *req) {
  sq_op *op = ud;
  sq_reconcile_result res = sq_kc_after(0);
  json_t *obj = sq_op_get(op, &SQ_GVR_SQLDATABASE, req->ns, req->name);
  if(!obj)
    return res;
  int deleting = sq_finalizer_deleting(obj);
  sq_err err;
  sq_err_clear(&err);
  if(deleting && !sq_finalizer_has(obj, SQ_FINALIZER)) {
    json_decref(obj);
    return res;
  }
  if(!deleting && !sq_finalizer_has(obj, SQ_FINALIZER)) {
    json_t *upd = NULL;
    sq_code rc = sq_finalizer_add(op->kube, &SQ_GVR_SQLDATABASE, obj, SQ_FINALIZER, &upd, &err);
    json_decref(obj);
    json_decref(upd);
    /* the update's watch event brings us back with the finalizer in place */
    return rc ? sq_kc_error(rc) : sq_kc_after(DB_AFTER_STEPS_MS);
  }

  int64_t now = sq_kc_now(op);
  sq_db_snapshot s;
  sq_plan plan;
  memset(&plan, 0, sizeof plan);
  sq_status_draft d;
  if(sq_status_begin(&d, obj, now)) {
    json_decref(obj);
    return sq_kc_error(SQ_ENOMEM);
  }
  sq_code grc = sq_gather_db_cached(op, obj, now, &s, &err);
  if(grc == SQ_ENOMEM || sq_plan_db(&s.in, &plan, NULL)) {
    res = sq_kc_error(SQ_ENOMEM);
    sq_status_abandon(&d);
    goto out;
  }
  /* the server list vouched for a remembered observation: good enough to
   * confirm convergence, never to act on — anything else is planned again
   * from a full, fresh observation */
  if(s.from_cache && plan.verdict != SQ_PLAN_CONVERGED) {
    sq_plan_free(&plan);
    memset(&plan, 0, sizeof plan);
    sq_db_snapshot_free(&s);
    grc = sq_gather_db(op, obj, now, &s, &err);
    if(grc == SQ_ENOMEM || sq_plan_db(&s.in, &plan, NULL)) {
      res = sq_kc_error(SQ_ENOMEM);
      sq_status_abandon(&d);
      goto out;
    }
  }
  observed_status(&d, &s);

  /* a failed read: the planner waits (not observed); say why */
  if(grc) {
    char m[600];
    sq_kc_errstr(&err, grc, m, sizeof m);
    sq_status_retrying(&d, err.reason[0] ? err.reason : "AzureReadFailed", m);
    sq_kc_commit(op, &SQ_GVR_SQLDATABASE, &d, LOG);
    res = sq_kc_error(grc);
    goto out;
  }

  const json_t *prev_plan = sq_json_int(obj, "status.observedGeneration", -1) == d.generation
                                ? sq_json_path(obj, "status.plan")
                                : NULL;
  size_t done = 0;
  sq_code xrc = SQ_OK;
  int64_t hold = plan.verdict == SQ_PLAN_PROGRESSING ? failure_wait_ms(obj, now) : 0;
  if(plan.verdict == SQ_PLAN_PROGRESSING && !hold) {
    sq_err_clear(&err);
    xrc = sq_execute_plan(op, obj, &plan, &done, &err);
    /* we wrote (or tried to): what the server list and our last full
     * observation say of this database is history */
    if(done || xrc)
      sq_server_obs_forget(op->server_obs, s.in.desired.server_id, s.db_id);
  }
  /* plan progress: executed steps leave the plan on the next pass (Done) */
  json_t *pj = sq_plan_status_json(&plan, prev_plan, xrc ? SQ_STEP_FAILED : SQ_STEP_RUNNING);
  if(pj)
    json_object_set_new(d.status, "plan", pj);

  sq_execute_plan_conditions(&d, &plan);
  int inacc = s.observed && s.in.primary.status == SQ_DB_STATUS_INACCESSIBLE;
  char im[300];
  snprintf(im, sizeof im, "database %s is Inaccessible: Azure SQL cannot reach its protector", s.db_name);
  flag(&d, COND_INACCESSIBLE, inacc, "DatabaseInaccessible", im);
  flag(&d, COND_ROTATION_BLOCKED, plan.reason == SQ_REASON_ROTATION_BLOCKED, "RotationBlocked", plan.message);
  const char *kept = NULL;
  for(size_t i = 0; i < plan.n_findings; i++)
    if(plan.findings[i].reason == SQ_REASON_KEY_REMOVAL_WOULD_STRAND_BACKUP)
      kept = plan.findings[i].message;
  flag(&d, COND_KEY_KEPT, kept != NULL, "KeyRemovalWouldStrandBackup", kept);

  if(xrc) {
    record_failure(&d, &err, s.in.desired.server_id, now);
    char m[600];
    sq_kc_errstr(&err, xrc, m, sizeof m);
    int blocked = !strcmp(err.reason, SQ_PLAN_ROTATION_BLOCKED_CODE);
    if(blocked) {
      flag(&d, COND_ROTATION_BLOCKED, 1, "RotationBlocked", m);
      sq_status_reconciling(&d, "RotationBlocked", m);
    } else
      sq_status_retrying(&d, err.reason[0] ? err.reason : "StepFailed", m);
    /* the planner turns a recorded rotation refusal into its own backoff */
    res = blocked ? sq_kc_after(DB_AFTER_STEPS_MS) : sq_kc_error(xrc);
  } else {
    if(done || plan.verdict == SQ_PLAN_CONVERGED)
      json_object_del(d.status, "lastFailure");
    if(hold) {
      /* an absolute time: the message must not change from pass to pass
       * (each change is a status write and a watch event) */
      char m[700], t[32];
      sq_rfc3339(now + (hold + 999) / 1000, t, sizeof t);
      const char *code = sq_json_str(obj, "status.lastFailure.code");
      snprintf(m, sizeof m, "Azure refused the last attempt (%s); next attempt at %s", code ? code : "?", t);
      sq_status_retrying(&d, "RetryBackoff", m);
      res = sq_kc_after(hold);
    } else if(done)
      res = sq_kc_after(DB_AFTER_STEPS_MS);
    else if(plan.verdict == SQ_PLAN_CONVERGED)
      res = sq_kc_after(op->cfg.resync_ms);
    else
      res = sq_kc_after(plan.retry_after_ms > 0 ? plan.retry_after_ms : op->cfg.resync_ms);
  }
  if(plan.verdict != SQ_PLAN_CONVERGED || plan.reason != SQ_REASON_UP_TO_DATE)
    sq_log_kv(SQ_LOG_INFO, LOG, "plan", "key", req->key, "verdict", sq_plan_verdict_name(plan.verdict), "reason",
              sq_plan_reason_name(plan.reason), "message", plan.message ? plan.message : "", NULL);
  sq_execute_transition_events(op, &d, COND_INACCESSIBLE);
  int released = deleting && plan.verdict == SQ_PLAN_CONVERGED && !xrc;
  if(released)
    sq_status_abandon(&d);
  else {
    sq_code wrc = sq_kc_commit(op, &SQ_GVR_SQLDATABASE, &d, LOG);
    if(wrc && !xrc)
      res = sq_kc_error(wrc);
  }
  if(released) {
    sq_op_event(op, obj, 0, sq_plan_reason_name(plan.reason), "Delete", "%s",
                plan.message ? plan.message : "released");
    sq_code rc = sq_finalizer_remove(op->kube, &SQ_GVR_SQLDATABASE, obj, SQ_FINALIZER, NULL, &err);
    res = rc ? sq_kc_error(rc) : sq_kc_after(0);
  }
out:
  sq_plan_free(&plan);
  sq_db_snapshot_free(&s);
  json_decref(obj);
  return res;
}

sq_code sq_sqldatabase_controller_register(sq_op *op, int workers, sq_err *err) {
  sq_controller *c;
  sq_code rc = sq_manager_add_controller(op->mgr, "sqldatabase", &SQ_GVR_SQLDATABASE, workers, reconcile, op, &c, err);
  if(!rc)
    rc = sq_controller_watch(c, op->mgr, &SQ_GVR_SQLSERVER, map_server, op, err);
  if(!rc)
    rc = sq_controller_watch(c, op->mgr, &SQ_GVR_VAULTKEY, map_vaultkey, op, err);
  if(!rc)
    rc = sq_controller_watch(c, op->mgr, &SQ_GVR_MANAGEDIDENTITY, map_identity, op, err);
  return rc;
}
