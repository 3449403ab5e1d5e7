/* status.c — the status writer; see include/sqltde/operator/status.h. */
#include "sqltde/operator/status.h"

#include "sqltde/jsonx.h"

sq_code sq_status_begin(sq_status_draft *d, const json_t *obj, int64_t now_wall_s) {
  d->obj = obj;
  d->generation = sq_json_int(obj, "metadata.generation", 0);
  d->now = now_wall_s;
  json_t *cur = sq_json_path(obj, "status");
  d->status = json_is_object(cur) ? json_deep_copy(cur) : json_object();
  return d->status ? SQ_OK : SQ_ENOMEM;
}

json_t *sq_status_conditions(sq_status_draft *d) { return sq_cond_array(d->status); }

sq_code sq_status_condition(sq_status_draft *d, const char *type, sq_cond_status st, const char *reason,
                            const char *message) {
  json_t *conds = sq_status_conditions(d);
  if(!conds)
    return SQ_ENOMEM;
  return sq_cond_set(conds, type, st, reason, message, d->generation, d->now, NULL, NULL);
}

#define KSTATUS(fn, impl)                                                                       \
  sq_code fn(sq_status_draft *d, const char *reason, const char *message) {                    \
    json_t *conds = sq_status_conditions(d);                                                   \
    if(!conds)                                                                                  \
      return SQ_ENOMEM;                                                                         \
    return impl(conds, reason, message, d->generation, d->now, NULL, NULL);                     \
  }
KSTATUS(sq_status_ready, sq_cond_set_ready)
KSTATUS(sq_status_reconciling, sq_cond_set_reconciling)
KSTATUS(sq_status_retrying, sq_cond_set_retrying)
KSTATUS(sq_status_stalled, sq_cond_set_stalled)
#undef KSTATUS

json_t *sq_status_patch(const json_t *old_status, const json_t *new_status) {
  if(json_is_object(old_status) && json_equal(old_status, new_status))
    return NULL;
  if(!json_is_object(old_status) && json_object_size(new_status) == 0)
    return NULL;
  json_t *st = json_deep_copy(new_status);
  if(!st)
    return NULL;
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)old_status, key, v) {
    if(!json_object_get(new_status, key))
      json_object_set_new(st, key, json_null());
  }
  return json_pack("{s:o}", "status", st);
}

void sq_status_abandon(sq_status_draft *d) {
  json_decref(d->status);
  d->status = NULL;
}

sq_code sq_status_commit(sq_kube *k, const sq_kube_gvr *gvr, sq_status_draft *d, int *written,
                         sq_err *err) {
  if(written)
    *written = 0;
  json_object_set_new(d->status, "observedGeneration", json_integer(d->generation));
  json_t *patch = sq_status_patch(sq_json_path(d->obj, "status"), d->status);
  sq_code rc = SQ_OK;
  if(patch) {
    rc = sq_kube_merge_patch(k, gvr, sq_json_str(d->obj, "metadata.namespace"),
                             sq_json_str(d->obj, "metadata.name"), "status", patch, NULL, err);
    if(!rc && written)
      *written = 1;
    json_decref(patch);
  }
  sq_status_abandon(d);
  return rc;
}
