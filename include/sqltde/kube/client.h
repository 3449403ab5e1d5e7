/* kube/client.h — configuration and REST access to the Kubernetes API.
 *
 * sq_kube_config is where the operator learns how to reach the apiserver: a
 * kubeconfig file (token, client certificate, CA file or inline data,
 * contexts, namespaces) or the in-cluster ServiceAccount mount. sq_kube is
 * the REST client built from it (one per process, thread-safe).
 * Objects travel as jansson json_t*; returned objects are owned by the caller
 * (json_decref). Non-2xx answers become sq_err with the Kubernetes Status
 * `reason` copied into err->reason and its `message` into err->message,
 * prefixed with the verb and resource (e.g. "list sqldatabases.sqltde.io in
 * ns1: forbidden: User ... cannot list resource ..."). */
#ifndef SQLTDE_KUBE_CLIENT_H
#define SQLTDE_KUBE_CLIENT_H

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>

#include "sqltde/err.h"

typedef struct sq_kube_config {
  char *server;       /* https://host:port, no trailing slash */
  char *ca_file;      /* PEM file to trust, or NULL */
  char *ca_pem;       /* inline PEM (from certificate-authority-data), or NULL */
  char *cert_file;    /* client certificate, file or inline */
  char *key_file;
  char *cert_pem;
  char *key_pem;      /* secret: wiped on free */
  char *token;        /* static bearer token; secret: wiped on free */
  char *token_file;   /* bearer token re-read when it changes (in-cluster, tokenFile) */
  char *namespace;    /* context namespace, or in-cluster namespace, or "default" */
  char *context;      /* the context used (kubeconfig only) */
} sq_kube_config;

/* Loads a kubeconfig file; context NULL means current-context. Errors name the
 * file and the missing/invalid field (SQ_EINVAL / SQ_EPARSE / SQ_EIO), e.g.
 * "kubeconfig /x/y: context \"foo\" not found". Relative file references
 * (certificate-authority, client-certificate, client-key, tokenFile) are
 * resolved against the kubeconfig's directory and must be readable now.
 * Refused: insecure-skip-tls-verify: true, exec and auth-provider plugins,
 * username/password, impersonation, proxy-url, plain http servers. The file is
 * bounded to 1 MiB. On success *out is owned by the caller
 * (sq_kube_config_free); on failure *out is left zeroed. */
sq_code sq_kube_config_load_file(const char *path, const char *context, sq_kube_config *out,
                                 sq_err *err);

/* In-cluster: KUBERNETES_SERVICE_HOST/PORT plus the files under root
 * (normally "/var/run/secrets/kubernetes.io/serviceaccount"): token, ca.crt,
 * namespace. The token is referenced as token_file so rotations are seen. */
sq_code sq_kube_config_in_cluster(const char *root, sq_kube_config *out, sq_err *err);

/* controller-runtime order: explicit path, else $KUBECONFIG (a ':' list: the
 * first existing file is used, files are not merged), else in-cluster (when
 * KUBERNETES_SERVICE_HOST is set; if that fails and ~/.kube/config exists, the
 * latter is used), else ~/.kube/config. */
sq_code sq_kube_config_default(const char *explicit_path, sq_kube_config *out, sq_err *err);

/* Frees every field (secrets wiped) and zeroes *c; safe to call twice. */
void sq_kube_config_free(sq_kube_config *c);

/* A resource type: core group is "". plural is the URL segment. */
typedef struct sq_kube_gvr {
  const char *group;
  const char *version;
  const char *plural;
  const char *kind;
  int namespaced;
} sq_kube_gvr;

typedef struct sq_kube sq_kube;

/* Copies what it needs from cfg (cfg may be freed afterwards). When
 * cfg->token_file is set it is read now (SQ_EIO if unreadable) and re-read
 * whenever its mtime/size/inode change (or every minute); it wins over
 * cfg->token. */
sq_code sq_kube_new(const sq_kube_config *cfg, sq_kube **out, sq_err *err);
void sq_kube_free(sq_kube *k);
const char *sq_kube_namespace(const sq_kube *k); /* default namespace */

/* Builds the URL path for a resource ("/apis/g/v/namespaces/ns/plural[/name][/sub]").
 * ns NULL or "" for cluster-scoped or all-namespaces; name/sub may be NULL.
 * Caller frees. */
char *sq_kube_path(const sq_kube_gvr *r, const char *ns, const char *name, const char *sub);

/* Single-object calls (get, create, update, update_status, merge_patch,
 * delete): for a namespaced resource, ns NULL/"" means the object's
 * metadata.namespace (create/update) or else the client's default namespace.
 * Errors: SQ_ETRANSPORT/SQ_ETIMEOUT naming the server URL when the apiserver
 * cannot be reached; SQ_EUNAUTH (401: credentials rejected), SQ_EFORBIDDEN
 * (the apiserver's message names user, verb and resource), SQ_ENOTFOUND,
 * SQ_ECONFLICT, ... via sq_code_from_http with err->http_status and
 * err->reason set; SQ_EPARSE for a 2xx body that is not a JSON object.
 * *out is NULL on failure. */
sq_code sq_kube_get(sq_kube *k, const sq_kube_gvr *r, const char *ns, const char *name,
                    json_t **out, sq_err *err);

/* One page of a list. opts may be NULL. *out is the List object (items,
 * always an array; metadata.resourceVersion, metadata.continue). ns NULL/""
 * lists all namespaces. */
typedef struct sq_kube_list_opts {
  const char *label_selector;
  const char *field_selector;
  long limit;                  /* 0 = server default / no paging */
  const char *continue_token;
  const char *resource_version;
} sq_kube_list_opts;
sq_code sq_kube_list_page(sq_kube *k, const sq_kube_gvr *r, const char *ns,
                          const sq_kube_list_opts *opts, json_t **out, sq_err *err);

/* Whole list, following `continue` with page size `limit` (0 -> 500). *out is
 * a List object whose items are all pages concatenated and whose
 * metadata.resourceVersion is that of the first page (metadata.continue
 * removed). SQ_EGONE if a continue token expired mid-way: list again. */
sq_code sq_kube_list(sq_kube *k, const sq_kube_gvr *r, const char *ns, const char *label_selector,
                     long limit, json_t **out, sq_err *err);

sq_code sq_kube_create(sq_kube *k, const sq_kube_gvr *r, const char *ns, const json_t *obj,
                       json_t **out, sq_err *err);
/* PUT; obj must carry metadata.resourceVersion for optimistic concurrency
 * (409 -> SQ_ECONFLICT). */
sq_code sq_kube_update(sq_kube *k, const sq_kube_gvr *r, const char *ns, const json_t *obj,
                       json_t **out, sq_err *err);
/* PUT on the status subresource. */
sq_code sq_kube_update_status(sq_kube *k, const sq_kube_gvr *r, const char *ns, const json_t *obj,
                              json_t **out, sq_err *err);
/* application/merge-patch+json; sub NULL or "status". */
sq_code sq_kube_merge_patch(sq_kube *k, const sq_kube_gvr *r, const char *ns, const char *name,
                            const char *sub, const json_t *patch, json_t **out, sq_err *err);
/* DELETE; SQ_ENOTFOUND if it was already gone. */
sq_code sq_kube_delete(sq_kube *k, const sq_kube_gvr *r, const char *ns, const char *name,
                       sq_err *err);

/* Watch: calls fn for each event (type "ADDED"/"MODIFIED"/"DELETED"/"BOOKMARK",
 * object borrowed for the call). ERROR events are not passed to fn: they end
 * the watch with SQ_EGONE (code 410) or SQ_EHTTP (any other code; http_status
 * and reason from the Status). Return non-zero from fn to stop (then SQ_OK).
 * Returns SQ_OK when the server closed the stream, SQ_EGONE on a 410
 * (either as HTTP status or as an ERROR event with code 410), SQ_ECANCELED
 * when *cancel became non-zero (polled ~ every 100 ms; cancel may be NULL),
 * SQ_EPARSE for a malformed event line, other codes on failures. timeout_s
 * (> 0) is sent as timeoutSeconds; ns NULL/"" watches all namespaces; an
 * event line is bounded to 4 MiB. */
typedef int (*sq_kube_watch_fn)(void *ud, const char *type, json_t *object);
sq_code sq_kube_watch(sq_kube *k, const sq_kube_gvr *r, const char *ns, const char *resource_version,
                      const char *label_selector, long timeout_s, const atomic_int *cancel,
                      sq_kube_watch_fn fn, void *ud, sq_err *err);

/* Raw request for anything else (e.g. TokenReview, discovery). path starts
 * with '/' and may carry a query. body may be NULL (content_type NULL ->
 * application/json). out may be NULL (the body is then ignored); *out is
 * NULL for empty bodies. */
sq_code sq_kube_request(sq_kube *k, const char *method, const char *path, const char *content_type,
                        const json_t *body, json_t **out, sq_err *err);

/* Read-modify-write with client-go's RetryOnConflict semantics: GET the
 * object, let fn change it in place, PUT it (to the status subresource when
 * status is non-zero); on 409 start again from a fresh GET, up to attempts
 * times (0 -> 5) with a short jittered pause. fn returning SQ_ESTATE means
 * "nothing to change": no write, SQ_OK. Any other error from fn is returned.
 * *out (may be NULL) receives the object as written (or as read, when fn
 * declined). */
typedef sq_code (*sq_kube_mutate_fn)(void *ud, json_t *obj, sq_err *err);
sq_code sq_kube_update_retry(sq_kube *k, const sq_kube_gvr *r, const char *ns, const char *name, int status,
                             int attempts, sq_kube_mutate_fn fn, void *ud, json_t **out, sq_err *err);

#endif
