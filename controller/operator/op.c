/* op.c — the shared operator context; see include/sqltde/operator/op.h. */
#include "sqltde/operator/op.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sqltde/log.h"
#include "sqltde/operator/server_obs.h"

sq_code sq_op_init(sq_op *op, sq_kube *k, sq_manager *mgr, sq_events *events, const sq_op_config *cfg,
                   sq_err *err) {
  memset(op, 0, sizeof *op);
  op->kube = k;
  op->mgr = mgr;
  op->events = events;
  op->clock = sq_clock_real();
  if(cfg)
    op->cfg = *cfg;
  if(!op->cfg.resync_ms)
    op->cfg.resync_ms = 10 * 60 * 1000;
  if(!op->cfg.key_check_ms)
    op->cfg.key_check_ms = 10 * 60 * 1000;
  if(!op->cfg.permission_delay_ms)
    op->cfg.permission_delay_ms = 10 * 60 * 1000;

  const char *cloud = op->cfg.azure_cloud ? op->cfg.azure_cloud : "AzurePublicCloud";
  sq_code rc;
  /* a server list younger than half a resync vouches for a database's last
   * full observation, which itself is redone at least every 12 resyncs (the
   * keys map is not in the list answer) */
  rc = sq_server_obs_new(op->cfg.resync_ms / 2, op->cfg.resync_ms * 12, &op->server_obs, err);
  if(rc)
    return rc;
  /* a name with a path separator or a file suffix is a custom cloud file */
  if(strchr(cloud, '/') || strstr(cloud, ".json") || strstr(cloud, ".yaml") || strstr(cloud, ".yml"))
    rc = sq_azure_cloud_load_file(cloud, &op->cloud, err);
  else
    rc = sq_azure_cloud_named(cloud, &op->cloud, err);
  if(rc)
    return rc;
  if(op->cfg.azure_ca_bundle && *op->cfg.azure_ca_bundle)
    snprintf(op->cloud.ca_file, sizeof op->cloud.ca_file, "%s", op->cfg.azure_ca_bundle);
  rc = sq_azure_cloud_validate(&op->cloud, err);
  if(rc)
    return rc;

  sq_http_opts ho = {.ca_file = op->cloud.ca_file[0] ? op->cloud.ca_file : NULL,
                     .user_agent = "sqltde-operator"};
  rc = sq_http_new(&ho, &op->azure_http, err);
  if(rc)
    return rc;
  sq_azure_pipeline pipe;
  sq_azure_pipeline_defaults(&pipe);
  pipe.http = op->azure_http;

  sq_azure_cred_config cc;
  rc = sq_azure_cred_config_from_env(NULL, NULL, &cc, err);
  if(!rc)
    rc = sq_azure_cred_new(&op->cloud, &cc, &pipe, &op->cred, err);
  sq_azure_cred_config_clear(&cc);
  if(rc)
    return sq_err_prefix(err, "Azure credentials");

  sq_arm_opts ao = {.cloud = &op->cloud, .cred = op->cred, .pipeline = pipe};
  rc = sq_arm_new(&ao, &op->arm, err);
  if(rc)
    return rc;
  sq_kv_opts ko = {.cloud = &op->cloud, .cred = op->cred, .pipeline = pipe};
  return sq_kv_new(&ko, &op->kv, err);
}

void sq_op_free(sq_op *op) {
  sq_server_obs_free(op->server_obs);
  sq_kv_free(op->kv);
  sq_arm_free(op->arm);
  sq_azure_cred_free(op->cred);
  sq_http_free(op->azure_http);
  memset(op, 0, sizeof *op);
}

json_t *sq_op_get(sq_op *op, const sq_kube_gvr *gvr, const char *ns, const char *name) {
  sq_informer *inf;
  if(!name || sq_manager_informer(op->mgr, gvr, &inf, NULL))
    return NULL;
  char key[SQ_CACHE_KEY_MAX];
  snprintf(key, sizeof key, "%s/%s", ns ? ns : "", name);
  return sq_cache_get(sq_informer_cache(inf), key);
}

void sq_op_event(sq_op *op, const json_t *obj, int warning, const char *reason, const char *action,
                 const char *fmt, ...) {
  if(!op->events)
    return;
  char note[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(note, sizeof note, fmt, ap);
  va_end(ap);
  sq_event_ref ref;
  sq_event_ref_from_object(obj, &ref);
  sq_events_emit(op->events, &ref, warning ? SQ_EVENT_WARNING : SQ_EVENT_NORMAL, reason, action, note);
}
