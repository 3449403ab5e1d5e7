/* keyctl.c — helpers shared by the key controllers; see keyctl.h. */
#include "keyctl.h"

#include <stdio.h>
#include <string.h>

#include "sqltde/jsonx.h"
#include "sqltde/kube/cache.h"
#include "sqltde/kube/conditions.h"
#include "sqltde/log.h"

sq_reconcile_result sq_kc_after(int64_t ms) {
  sq_reconcile_result r = {0};
  r.requeue_after_ms = ms > 0 ? ms : 0;
  return r;
}

sq_reconcile_result sq_kc_error(sq_code c) {
  sq_reconcile_result r = {0};
  r.err = c ? c : SQ_ESTATE;
  return r;
}

sq_reconcile_result sq_kc_terminal(sq_code c) {
  sq_reconcile_result r = {0};
  r.err = c ? c : SQ_EINVAL;
  r.terminal = 1;
  return r;
}

int64_t sq_kc_now(const sq_op *op) {
  const sq_clock *c = op->clock ? op->clock : sq_clock_real();
  return c->wall_s(c->ud);
}

sq_code sq_kc_apply_verdict(sq_status_draft *d, const sq_verdict *v) {
  const char *reason = v->reason[0] ? v->reason : "Unknown";
  switch(v->state) {
  case SQ_KSTATE_READY:
    return sq_status_ready(d, reason, v->message);
  case SQ_KSTATE_RECONCILING:
    return sq_status_reconciling(d, reason, v->message);
  case SQ_KSTATE_RETRYING:
    return sq_status_retrying(d, reason, v->message);
  case SQ_KSTATE_STALLED:
    return sq_status_stalled(d, reason, v->message);
  }
  return SQ_EINVAL;
}

sq_code sq_kc_set_invalid(sq_status_draft *d, const char *rule, const char *message) {
  sq_code rc = sq_status_condition(d, KC_COND_INVALID_SPEC, SQ_COND_TRUE, rule, message);
  if(!rc)
    rc = sq_status_stalled(d, "InvalidSpec", message);
  return rc;
}

void sq_kc_clear_condition(sq_status_draft *d, const char *type) {
  json_t *conds = sq_status_conditions(d);
  if(conds)
    sq_cond_remove(conds, type, NULL);
}

sq_code sq_kc_flag_condition(sq_status_draft *d, const char *type, int on, const char *reason,
                             const char *message) {
  if(!on) {
    sq_kc_clear_condition(d, type);
    return SQ_OK;
  }
  return sq_status_condition(d, type, SQ_COND_TRUE, reason, message);
}

/* Which condition transitions deserve an Event, and of which type. */
static int warning_for(const char *type, const char *status, const json_t *conds) {
  int is_true = status && !strcmp(status, "True");
  if(!strcmp(type, SQ_COND_READY))
    return !is_true && (sq_cond_is_true(conds, SQ_COND_STALLED) || (status && !strcmp(status, "False")));
  if(!strcmp(type, KC_COND_REPLICATED))
    return status && !strcmp(status, "False");
  if(!strcmp(type, KC_COND_PERMISSION_PENDING))
    return 0;
  return is_true;
}

void sq_kc_transition_events(sq_op *op, const sq_status_draft *d) {
  static const char *const types[] = {SQ_COND_READY,     KC_COND_REPLICATED,       KC_COND_EXPIRING,
                                      KC_COND_EXPIRED,   KC_COND_DISABLED,         KC_COND_PERMISSION_PENDING,
                                      KC_COND_DELETION_BLOCKED, KC_COND_INVALID_SPEC};
  const json_t *old_conds = sq_json_path(d->obj, "status.conditions");
  const json_t *new_conds = json_object_get(d->status, "conditions");
  for(size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
    const json_t *n = sq_cond_find(new_conds, types[i]);
    if(!n)
      continue;
    const json_t *o = sq_cond_find(old_conds, types[i]);
    const char *ns = sq_json_str(n, "status"), *nr = sq_json_str(n, "reason");
    if(o) {
      const char *os = sq_json_str(o, "status"), *orr = sq_json_str(o, "reason");
      if(os && ns && orr && nr && !strcmp(os, ns) && !strcmp(orr, nr))
        continue;
    }
    /* PermissionPending / Replicated going back to normal are reported by
     * Ready's own transition */
    if(ns && strcmp(ns, "True") && strcmp(types[i], SQ_COND_READY) && strcmp(types[i], KC_COND_REPLICATED))
      continue;
    const char *msg = sq_json_str(n, "message");
    sq_op_event(op, d->obj, warning_for(types[i], ns, new_conds), nr && *nr ? nr : types[i], types[i], "%s",
                msg ? msg : "");
  }
}

sq_code sq_kc_commit(sq_op *op, const sq_kube_gvr *gvr, sq_status_draft *d, const char *ctl) {
  sq_err err;
  sq_err_clear(&err);
  char key[SQ_CACHE_KEY_MAX];
  snprintf(key, sizeof key, "%s/%s", sq_json_str(d->obj, "metadata.namespace") ? sq_json_str(d->obj, "metadata.namespace") : "",
           sq_json_str(d->obj, "metadata.name") ? sq_json_str(d->obj, "metadata.name") : "");
  sq_code rc = sq_status_commit(op->kube, gvr, d, NULL, &err);
  if(rc && rc != SQ_ENOTFOUND)
    sq_log_kv(SQ_LOG_WARN, ctl, "status write failed", "key", key, "error", err.message, NULL);
  return rc == SQ_ENOTFOUND ? SQ_OK : rc;
}

json_t *sq_kc_list(sq_op *op, const sq_kube_gvr *gvr, const char *ns) {
  sq_informer *inf = NULL;
  json_t *arr = NULL;
  if(op->mgr && !sq_manager_informer(op->mgr, gvr, &inf, NULL) && inf)
    sq_cache_snapshot(sq_informer_cache(inf), ns, &arr, NULL);
  return arr ? arr : json_array();
}

void sq_kc_errstr(const sq_err *e, sq_code rc, char *out, size_t outlen) {
  if(e && e->message[0] && e->reason[0])
    snprintf(out, outlen, "%s: %s", e->reason, e->message);
  else if(e && e->message[0])
    snprintf(out, outlen, "%s", e->message);
  else
    snprintf(out, outlen, "%s", sq_code_name(rc));
}

int64_t sq_kc_duration_ms(const json_t *obj, const char *path, int64_t def_ms) {
  const char *s = sq_json_str(obj, path);
  int64_t ms;
  if(!s || sq_spec_duration_ms(s, &ms))
    return def_ms;
  return ms;
}

sq_vault_state sq_kc_object_state(const json_t *obj, char *reason, size_t reason_len) {
  if(reason_len)
    reason[0] = '\0';
  if(!obj)
    return SQ_VAULT_MISSING;
  const json_t *conds = sq_json_path(obj, "status.conditions");
  const json_t *ready = sq_cond_find(conds, SQ_COND_READY);
  const char *r = sq_json_str(ready, "reason");
  if(r && reason_len)
    snprintf(reason, reason_len, "%s", r);
  /* a status written for an older generation says nothing about this one */
  int64_t gen = sq_json_int(obj, "metadata.generation", 0);
  int64_t seen = sq_json_int(obj, "status.observedGeneration", -1);
  if(gen && seen != gen)
    return SQ_VAULT_WAITING;
  if(sq_cond_is_true(conds, SQ_COND_READY))
    return SQ_VAULT_READY;
  if(sq_cond_is_true(conds, SQ_COND_STALLED))
    return SQ_VAULT_STALLED;
  return SQ_VAULT_WAITING;
}
