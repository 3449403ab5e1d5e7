/* keyvault.c — the KeyVault controller.
 *
 * Every probeInterval (default 5m) it reads the vault resource through ARM
 * (Microsoft.KeyVault/vaults: enableSoftDelete, enablePurgeProtection,
 * enableRbacAuthorization, vaultUri, tenant, location) and sends one data-plane
 * request that needs no key (GET of a key name that should not exist: any
 * HTTP answer proves the vault is there). Status: reachable, lastProbeTime,
 * the three flags; Ready only when reachable AND soft delete AND purge
 * protection (Azure SQL refuses other vaults), else Stalled naming what is
 * missing. Both calls are reads: the KeyVault controller never writes to Azure.
 *
 * Scheduling: lastProbeTime is the clock. A reconcile that finds the last
 * probe younger than the interval only requeues for the remainder, so the
 * status write a probe causes (lastProbeTime moves) does not probe again. A
 * failed probe is retried after at most 30 s (the error result also goes
 * through the engine's backoff); a Stalled vault waits the full interval. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "keyctl.h"
#include "sqltde/api/kinds.h"
#include "sqltde/jsonx.h"
#include "sqltde/kube/finalizer.h"
#include "sqltde/log.h"
#include "sqltde/operator/controllers.h"

#define KV_DEFAULT_PROBE_MS (5 * 60 * 1000)
#define KV_RETRY_MS (30 * 1000)
/* A key name nothing uses; the probe only wants the vault to answer. */
#define KV_PROBE_KEY "sqltde-reachability-probe"

static const char *LOG = "keyvault";

/* Runs both probes and fills o. */
static void probe(sq_op *op, const json_t *spec, sq_kvault_obs *o) {
  memset(o, 0, sizeof *o);
  const char *uri = sq_json_str(spec, "vaultUri");
  char name[64], id[512];
  sq_err err;
  sq_err_clear(&err);
  if(sq_vault_uri_split(uri, NULL, 0, name, sizeof name) ||
     sq_vault_arm_id(sq_json_str(spec, "subscriptionId"), sq_json_str(spec, "resourceGroup"), name, id,
                     sizeof id)) {
    o->arm_code = SQ_EINVAL;
    snprintf(o->arm_error, sizeof o->arm_error, "spec.vaultUri does not name a vault");
    return;
  }
  sq_vault vault;
  memset(&vault, 0, sizeof vault);
  /* a vault in another tenant (cross-tenant CMK): ARM only accepts a token
   * from the subscription's tenant, so read it with one from spec.tenantId
   * (the credential refuses tenants not in AZURE_ADDITIONALLY_ALLOWED_TENANTS) */
  const char *vt = sq_json_str(spec, "tenantId"), *ct = sq_azure_cred_tenant(op->cred);
  sq_arm *arm = op->arm, *other = NULL;
  if(vt && *vt && ct && *ct && strcasecmp(vt, ct)) {
    sq_azure_pipeline pipe;
    sq_azure_pipeline_defaults(&pipe);
    pipe.http = op->azure_http;
    sq_arm_opts ao = {.cloud = &op->cloud, .cred = op->cred, .tenant = vt, .pipeline = pipe};
    o->arm_code = sq_arm_new(&ao, &other, &err);
    if(o->arm_code) {
      sq_kc_errstr(&err, o->arm_code, o->arm_error, sizeof o->arm_error);
      return;
    }
    arm = other;
  }
  o->arm_code = sq_vault_get(arm, id, &vault, &err);
  sq_arm_free(other);
  if(o->arm_code) {
    sq_kc_errstr(&err, o->arm_code, o->arm_error, sizeof o->arm_error);
    sq_vault_free(&vault);
    return;
  }
  sq_kvault_obs_from_vault(&vault, o);
  sq_vault_free(&vault);

  sq_err_clear(&err);
  sq_kv_key k;
  sq_kv_key_init(&k);
  o->probed = 1;
  o->dp_code = sq_kv_get(op->kv, uri, KV_PROBE_KEY, NULL, &k, &err);
  sq_kv_key_free(&k);
  if(o->dp_code)
    sq_kc_errstr(&err, o->dp_code, o->dp_error, sizeof o->dp_error);
}

static sq_reconcile_result reconcile(void *ud, const sq_reconcile_req *req) {
  sq_op *op = ud;
  json_t *obj = sq_op_get(op, &SQ_GVR_KEYVAULT, req->ns, req->name);
  if(!obj || sq_finalizer_deleting(obj)) { /* nothing in Azure belongs to a KeyVault object */
    json_decref(obj);
    return sq_kc_after(0);
  }
  int64_t now = sq_kc_now(op);
  sq_status_draft d;
  if(sq_status_begin(&d, obj, now)) {
    json_decref(obj);
    return sq_kc_error(SQ_ENOMEM);
  }
  sq_reconcile_result res;
  sq_invalid inv;
  if(sq_validate_keyvault(obj, op->cloud.kv_dns_suffix, &inv)) {
    /* no Azure call for an invalid spec; wait for it to change */
    sq_kc_set_invalid(&d, inv.rule, inv.message);
    sq_kc_transition_events(op, &d);
    sq_kc_commit(op, &SQ_GVR_KEYVAULT, &d, LOG);
    json_decref(obj);
    return sq_kc_terminal(SQ_EINVAL);
  }
  sq_kc_clear_condition(&d, KC_COND_INVALID_SPEC);

  const json_t *spec = sq_json_path(obj, "spec");
  int64_t interval = sq_kc_duration_ms(obj, "spec.probeInterval", KV_DEFAULT_PROBE_MS);
  /* settled (Ready, or Stalled until someone changes the vault): the
   * interval; a transient failure: sooner */
  const json_t *conds = sq_json_path(obj, "status.conditions");
  int settled = sq_cond_is_true(conds, SQ_COND_READY) || sq_cond_is_true(conds, SQ_COND_STALLED);
  int64_t every = settled || interval < KV_RETRY_MS ? interval : KV_RETRY_MS;
  const char *lp = sq_json_str(obj, "status.lastProbeTime");
  int64_t last = lp ? sq_parse_rfc3339(lp) : -1;
  int same_gen = sq_json_int(obj, "status.observedGeneration", -1) == d.generation;
  if(same_gen && last > 0 && now >= last && now < last + every / 1000 &&
     sq_json_path(obj, "status.conditions")) {
    sq_kc_commit(op, &SQ_GVR_KEYVAULT, &d, LOG); /* no write unless InvalidSpec just cleared */
    json_decref(obj);
    return sq_kc_after((last + every / 1000 - now) * 1000);
  }

  sq_kvault_obs o;
  probe(op, spec, &o);
  sq_verdict v;
  sq_kvault_assess(sq_json_str(spec, "vaultUri"), sq_json_str(spec, "location"), sq_json_str(spec, "tenantId"),
                   &o, &v);

  char t[32];
  sq_rfc3339(now, t, sizeof t);
  json_object_set_new(d.status, "lastProbeTime", json_string(t));
  if(o.probed)
    json_object_set_new(d.status, "reachable", json_boolean(sq_kvault_dp_reachable(o.dp_code)));
  if(!o.arm_code) {
    json_object_set_new(d.status, "softDeleteEnabled", json_boolean(o.soft_delete));
    json_object_set_new(d.status, "purgeProtectionEnabled", json_boolean(o.purge_protection));
    json_object_set_new(d.status, "rbacAuthorization", json_boolean(o.rbac));
  }
  sq_kc_apply_verdict(&d, &v);
  const char *was = sq_json_str(sq_cond_find(conds, SQ_COND_READY), "reason");
  if(v.state != SQ_KSTATE_READY && (!was || strcmp(was, v.reason))) /* once per change, not per probe */
    sq_log_kv(SQ_LOG_INFO, LOG, "vault not ready", "key", req->key, "reason", v.reason, "message", v.message,
              NULL);
  sq_kc_transition_events(op, &d);
  sq_code wrc = sq_kc_commit(op, &SQ_GVR_KEYVAULT, &d, LOG);

  if(v.state == SQ_KSTATE_RETRYING)
    res = sq_kc_error(o.arm_code ? o.arm_code : (o.dp_code ? o.dp_code : SQ_ETRANSPORT));
  else if(wrc)
    res = sq_kc_error(wrc);
  else
    res = sq_kc_after(interval);
  json_decref(obj);
  return res;
}

sq_code sq_keyvault_controller_register(sq_op *op, int workers, sq_err *err) {
  sq_controller *c;
  return sq_manager_add_controller(op->mgr, "keyvault", &SQ_GVR_KEYVAULT, workers, reconcile, op, &c, err);
}
