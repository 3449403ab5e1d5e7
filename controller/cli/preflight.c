/* preflight.c — startup access checks; see include/sqltde/cli/preflight.h. */
#include "sqltde/cli/preflight.h"

#include <stdio.h>

#include "sqltde/api/kinds.h"
#include "sqltde/jsonx.h"

/* Asks the apiserver whether the current user may do verb on resource. A
 * list succeeding does not prove watch/patch are granted, and finding out at
 * the first reconcile would leave objects half-handled. */
static sq_code can_i(sq_kube *k, const char *verb, const sq_kube_gvr *r, const char *sub,
                     const char *ns, sq_err *err) {
  json_t *attrs = json_pack("{s:s, s:s, s:s}", "verb", verb, "group", r->group, "resource", r->plural);
  if(!attrs)
    return sq_err_set(err, SQ_ENOMEM, "out of memory");
  if(sub)
    json_object_set_new(attrs, "subresource", json_string(sub));
  if(ns)
    json_object_set_new(attrs, "namespace", json_string(ns));
  json_t *review = json_pack("{s:s, s:s, s:{s:o}}", "apiVersion", "authorization.k8s.io/v1", "kind",
                             "SelfSubjectAccessReview", "spec", "resourceAttributes", attrs);
  json_t *out = NULL;
  sq_code rc = sq_kube_request(k, "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                               "application/json", review, &out, err);
  json_decref(review);
  if(rc)
    return rc;
  if(!sq_json_bool(out, "status.allowed", 0)) {
    const char *why = sq_json_str(out, "status.reason");
    rc = sq_err_set(err, SQ_EFORBIDDEN, "missing permission: cannot %s %s%s%s.%s%s%s%s%s", verb,
                    r->plural, sub ? "/" : "", sub ? sub : "", r->group, ns ? " in namespace " : "",
                    ns ? ns : " at cluster scope", why && *why ? ": " : "", why ? why : "");
    err->http_status = 403;
  }
  json_decref(out);
  return rc;
}

sq_code sq_preflight(sq_kube *k, const char *ns, sq_err *err) {
  for(size_t i = 0; i < SQ_WATCHED_KINDS_COUNT; i++) {
    const sq_kube_gvr *r = SQ_WATCHED_KINDS[i];
    sq_kube_list_opts lo = {.limit = 1};
    json_t *list = NULL;
    sq_code rc = sq_kube_list_page(k, r, ns, &lo, &list, err);
    json_decref(list);
    if(rc == SQ_ENOTFOUND)
      return sq_err_set(err, rc, "the %s.%s custom resource definition is not installed (kubectl apply -k deploy/)",
                        r->plural, r->group);
    if(rc)
      return rc;
    static const struct {
      const char *verb, *sub;
    } needs[] = {{"watch", NULL}, {"patch", NULL}, {"update", "status"}};
    for(size_t j = 0; j < sizeof needs / sizeof needs[0]; j++) {
      rc = can_i(k, needs[j].verb, r, needs[j].sub, ns, err);
      if(rc)
        return rc;
    }
  }
  return SQ_OK;
}
