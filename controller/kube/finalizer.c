/* finalizer.c — finalizer helpers; see include/sqltde/kube/finalizer.h. */
#include "sqltde/kube/finalizer.h"

#include <string.h>

#include "sqltde/jsonx.h"

int sq_finalizer_has(const json_t *obj, const char *name) {
  json_t *list = sq_json_path(obj, "metadata.finalizers");
  size_t i;
  json_t *v;
  if(!json_is_array(list) || !name)
    return 0;
  json_array_foreach(list, i, v) {
    if(json_is_string(v) && !strcmp(json_string_value(v), name))
      return 1;
  }
  return 0;
}

int sq_finalizer_deleting(const json_t *obj) {
  const char *ts = sq_json_str(obj, "metadata.deletionTimestamp");
  return ts && ts[0];
}

json_t *sq_finalizer_patch(const json_t *obj, const char *name, int add, int *nomem) {
  json_t *old = sq_json_path(obj, "metadata.finalizers");
  const char *rv = sq_json_str(obj, "metadata.resourceVersion");
  json_t *list = NULL, *patch = NULL, *v;
  size_t i;
  int has = sq_finalizer_has(obj, name);
  if(nomem)
    *nomem = 0;
  if((add && has) || (!add && !has))
    return NULL;
  list = json_array();
  if(!list)
    goto nomem;
  if(json_is_array(old)) {
    json_array_foreach(old, i, v) {
      /* Keep other entries as they are (even odd ones): only ours changes. */
      if(!add && json_is_string(v) && !strcmp(json_string_value(v), name))
        continue;
      if(json_array_append(list, v))
        goto nomem;
    }
  }
  if(add && json_array_append_new(list, json_string(name)))
    goto nomem;
  patch = json_pack("{s:{s:O}}", "metadata", "finalizers", list);
  if(!patch)
    goto nomem;
  if(rv && json_object_set_new(json_object_get(patch, "metadata"), "resourceVersion",
                               json_string(rv)))
    goto nomem;
  json_decref(list);
  return patch;
nomem:
  json_decref(list);
  json_decref(patch);
  if(nomem)
    *nomem = 1;
  return NULL;
}

/* Shared by add and remove. */
static sq_code write_finalizers(sq_kube *k, const sq_kube_gvr *r, const json_t *obj,
                                const char *name, int add, json_t **out, sq_err *err) {
  const char *verb = add ? "adding" : "removing";
  const char *ns = sq_json_str(obj, "metadata.namespace");
  const char *oname = sq_json_str(obj, "metadata.name");
  int nomem = 0;
  sq_code rc;
  if(out)
    *out = NULL;
  if(!name || !name[0] || !oname)
    return sq_err_set(err, SQ_EINVAL, "%s finalizer: object name and finalizer are required",
                      verb);
  if(!sq_json_str(obj, "metadata.resourceVersion"))
    return sq_err_set(err, SQ_EINVAL,
                      "%s finalizer %s on %s/%s: object has no resourceVersion to guard the "
                      "write",
                      verb, name, ns ? ns : "", oname);
  if(add && sq_finalizer_deleting(obj) && !sq_finalizer_has(obj, name))
    return sq_err_set(err, SQ_ESTATE,
                      "adding finalizer %s on %s/%s: object is being deleted", name,
                      ns ? ns : "", oname);
  json_t *patch = sq_finalizer_patch(obj, name, add, &nomem);
  if(!patch) {
    if(nomem)
      return sq_err_set(err, SQ_ENOMEM, "%s finalizer: out of memory", verb);
    if(out) /* nothing to change */
      *out = json_deep_copy(obj);
    return SQ_OK;
  }
  json_t *res = NULL;
  rc = sq_kube_merge_patch(k, r, ns, oname, NULL, patch, &res, err);
  json_decref(patch);
  if(rc == SQ_ENOTFOUND && !add) {
    sq_err_clear(err); /* gone already: nothing left to hold */
    return SQ_OK;
  }
  if(rc) {
    sq_err_prefix(err, "%s finalizer %s", verb, name);
    return rc;
  }
  if(out)
    *out = res;
  else
    json_decref(res);
  return SQ_OK;
}

sq_code sq_finalizer_add(sq_kube *k, const sq_kube_gvr *r, const json_t *obj, const char *name,
                         json_t **out, sq_err *err) {
  return write_finalizers(k, r, obj, name, 1, out, err);
}

sq_code sq_finalizer_remove(sq_kube *k, const sq_kube_gvr *r, const json_t *obj,
                            const char *name, json_t **out, sq_err *err) {
  return write_finalizers(k, r, obj, name, 0, out, err);
}

sq_finalizer_action sq_finalizer_decide(const json_t *obj, const char *name) {
  int deleting = sq_finalizer_deleting(obj);
  int has = sq_finalizer_has(obj, name);
  if(!deleting)
    return has ? SQ_FIN_APPLY : SQ_FIN_ADD;
  /* No new finalizer on a dying object (the apiserver refuses it anyway); if
   * ours is gone, our cleanup already finished. */
  return has ? SQ_FIN_CLEANUP : SQ_FIN_NONE;
}

const char *sq_finalizer_action_name(sq_finalizer_action a) {
  switch(a) {
  case SQ_FIN_ADD: return "add";
  case SQ_FIN_APPLY: return "apply";
  case SQ_FIN_CLEANUP: return "cleanup";
  case SQ_FIN_NONE: return "none";
  }
  return "unknown";
}

sq_code sq_finalizer_reconcile(sq_kube *k, const sq_kube_gvr *r, const json_t *obj,
                               const char *name, sq_finalizer_apply_fn apply,
                               sq_finalizer_cleanup_fn cleanup, void *ud,
                               sq_finalizer_action *taken, sq_err *err) {
  sq_finalizer_action a = sq_finalizer_decide(obj, name);
  json_t *updated = NULL;
  sq_code rc = SQ_OK;
  int done = 0;
  if(taken)
    *taken = a;
  switch(a) {
  case SQ_FIN_NONE:
    break;
  case SQ_FIN_ADD:
    /* The finalizer goes on before any external work, so a delete racing
     * with the first reconcile still waits for cleanup. */
    rc = sq_finalizer_add(k, r, obj, name, &updated, err);
    if(rc)
      break;
    rc = apply ? apply(ud, updated, err) : SQ_OK;
    break;
  case SQ_FIN_APPLY:
    rc = apply ? apply(ud, obj, err) : SQ_OK;
    break;
  case SQ_FIN_CLEANUP:
    rc = cleanup ? cleanup(ud, obj, &done, err) : (done = 1, SQ_OK);
    if(rc || !done)
      break;
    rc = sq_finalizer_remove(k, r, obj, name, NULL, err);
    break;
  }
  json_decref(updated);
  return rc;
}
