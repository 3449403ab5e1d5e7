/* client.c — Kubernetes REST client on top of sq_http; see include/sqltde/kube/client.h.
 *
 * Every call is: build "/api|apis/.../plural[/name][/sub]?query", attach the
 * bearer token (re-read from token_file when the kubelet rotates it), send,
 * and turn a non-2xx answer into an sq_err carrying the Kubernetes Status
 * reason and message, prefixed with what we were doing ("get
 * sqldatabases.sqltde.io/x in ns1: ..."). Watches stream one JSON event per
 * line through sq_http_stream. */
#include "sqltde/kube/client.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "sqltde/buf.h"
#include "sqltde/clock.h"
#include "sqltde/http.h"
#include "sqltde/jsonx.h"

/* URLs carry selectors and continue tokens; both are small in practice. */
#define URL_MAX (64u * 1024u)
/* Request bodies are single objects; etcd refuses objects over 1.5 MiB anyway. */
#define REQ_BODY_MAX (3u * 1024u * 1024u)
/* A Status body is a few hundred bytes; do not parse anything huge as one. */
#define STATUS_MAX (64u * 1024u)
/* One watch event holds one object (<= 1.5 MiB in etcd) plus JSON overhead. */
#define WATCH_LINE_MAX (4u * 1024u * 1024u)
/* Service account tokens are ~1 KiB JWTs. */
#define TOKEN_MAX (64u * 1024u)
/* Re-read the token file at least this often even if stat says unchanged
 * (client-go does the same, guarding against same-size same-second rewrites). */
#define TOKEN_REREAD_MS 60000
/* Default page size for sq_kube_list. */
#define LIST_DEFAULT_LIMIT 500

struct sq_kube {
  sq_http *http;
  char *server;
  char *ns;
  char *token;      /* static token, secret */
  char *token_file; /* rotating token, preferred over token */
  pthread_mutex_t tok_mu;
  char *tok_cache; /* secret: last content of token_file */
  struct timespec tok_mtime;
  off_t tok_size;
  ino_t tok_ino;
  int64_t tok_read_ms;
};

const char *sq_kube_namespace(const sq_kube *k) { return k->ns; }

/* ---- token ---- */

/* Returns a private copy of the bearer token to use (NULL = none); the caller
 * frees it with sq_free_secret. Copying keeps the cache lock short and lets a
 * rotation wipe the old token while a request is still using its copy. */
static sq_code bearer_get(sq_kube *k, char **out, sq_err *err) {
  *out = NULL;
  if(!k->token_file) {
    if(k->token && !(*out = strdup(k->token)))
      return sq_err_set(err, SQ_ENOMEM, "out of memory");
    return SQ_OK;
  }
  sq_code rc = SQ_OK;
  pthread_mutex_lock(&k->tok_mu);
  struct stat st;
  int have = stat(k->token_file, &st) == 0;
  int64_t now = sq_mono_ms();
  int changed = !k->tok_cache ||
                (have && (st.st_size != k->tok_size || st.st_ino != k->tok_ino ||
                          st.st_mtim.tv_sec != k->tok_mtime.tv_sec ||
                          st.st_mtim.tv_nsec != k->tok_mtime.tv_nsec)) ||
                now - k->tok_read_ms >= TOKEN_REREAD_MS;
  if(changed) {
    sq_buf b;
    sq_buf_init(&b, TOKEN_MAX);
    rc = sq_buf_read_file(&b, k->token_file, err);
    if(!rc) {
      size_t n = b.len;
      while(n && (b.ptr[n - 1] == '\n' || b.ptr[n - 1] == '\r' || b.ptr[n - 1] == ' ' ||
                  b.ptr[n - 1] == '\t'))
        n--;
      if(!n) {
        rc = sq_err_set(err, SQ_EINVAL, "token file %s is empty", k->token_file);
      } else {
        b.ptr[n] = '\0';
        b.len = n;
        char *fresh = sq_buf_detach(&b);
        if(!fresh) {
          rc = sq_err_set(err, SQ_ENOMEM, "out of memory");
        } else {
          sq_free_secret(k->tok_cache);
          k->tok_cache = fresh;
          k->tok_read_ms = now;
          if(have) {
            k->tok_size = st.st_size;
            k->tok_ino = st.st_ino;
            k->tok_mtime = st.st_mtim;
          }
        }
      }
    }
    sq_buf_free_wipe(&b);
    /* a rotation in progress (file briefly missing) keeps the old token */
    if(rc && k->tok_cache)
      rc = SQ_OK;
  }
  if(!rc && !(*out = strdup(k->tok_cache)))
    rc = sq_err_set(err, SQ_ENOMEM, "out of memory");
  pthread_mutex_unlock(&k->tok_mu);
  return rc;
}

/* ---- lifecycle ---- */

void sq_kube_free(sq_kube *k) {
  if(!k)
    return;
  sq_http_free(k->http);
  free(k->server);
  free(k->ns);
  sq_free_secret(k->token);
  free(k->token_file);
  sq_free_secret(k->tok_cache);
  pthread_mutex_destroy(&k->tok_mu);
  free(k);
}

sq_code sq_kube_new(const sq_kube_config *cfg, sq_kube **out, sq_err *err) {
  *out = NULL;
  if(!cfg || !cfg->server || !*cfg->server)
    return sq_err_set(err, SQ_EINVAL, "Kubernetes config has no server");
  sq_kube *k = calloc(1, sizeof *k);
  if(!k)
    return sq_err_set(err, SQ_ENOMEM, "out of memory");
  pthread_mutex_init(&k->tok_mu, NULL);
  sq_code rc = SQ_OK;
  k->server = strdup(cfg->server);
  k->ns = strdup(cfg->namespace && *cfg->namespace ? cfg->namespace : "default");
  k->token = cfg->token ? strdup(cfg->token) : NULL;
  k->token_file = cfg->token_file ? strdup(cfg->token_file) : NULL;
  if(!k->server || !k->ns || (cfg->token && !k->token) || (cfg->token_file && !k->token_file)) {
    rc = sq_err_set(err, SQ_ENOMEM, "out of memory");
    goto out;
  }
  size_t n = strlen(k->server);
  while(n && k->server[n - 1] == '/')
    k->server[--n] = '\0';
  sq_http_opts o = {
      .ca_file = cfg->ca_file,
      .ca_pem = cfg->ca_pem,
      .cert_file = cfg->cert_file,
      .key_file = cfg->key_file,
      .cert_pem = cfg->cert_pem,
      .key_pem = cfg->key_pem,
      .user_agent = "sqltde-operator",
  };
  if((rc = sq_http_new(&o, &k->http, err)))
    goto out;
  if(k->token_file) {
    /* fail at startup, not on the first request, when the token is unreadable */
    char *t = NULL;
    rc = bearer_get(k, &t, err);
    sq_free_secret(t);
    if(rc)
      goto out;
  }
out:
  if(rc) {
    sq_kube_free(k);
    return rc;
  }
  *out = k;
  return SQ_OK;
}

/* ---- paths ---- */

static sq_code add_seg(sq_buf *b, const char *s) {
  sq_code rc = sq_buf_add(b, "/", 1);
  return rc ? rc : sq_url_escape(s, b);
}

static sq_code build_path(sq_buf *b, const sq_kube_gvr *r, const char *ns, const char *name,
                          const char *sub) {
  sq_code rc;
  if(!r->group || !*r->group)
    rc = sq_buf_addf(b, "/api/%s", r->version && *r->version ? r->version : "v1");
  else
    rc = sq_buf_addf(b, "/apis/%s/%s", r->group, r->version ? r->version : "v1");
  if(!rc && r->namespaced && ns && *ns) {
    rc = sq_buf_adds(b, "/namespaces");
    if(!rc)
      rc = add_seg(b, ns);
  }
  if(!rc)
    rc = add_seg(b, r->plural);
  if(!rc && name && *name)
    rc = add_seg(b, name);
  if(!rc && name && *name && sub && *sub)
    rc = add_seg(b, sub);
  return rc;
}

char *sq_kube_path(const sq_kube_gvr *r, const char *ns, const char *name, const char *sub) {
  if(!r || !r->plural || !*r->plural)
    return NULL;
  sq_buf b;
  sq_buf_init(&b, URL_MAX);
  if(build_path(&b, r, ns, name, sub)) {
    sq_buf_free(&b);
    return NULL;
  }
  return sq_buf_detach(&b);
}

/* ---- errors ---- */

/* "get sqldatabases.sqltde.io/x in ns1" — the prefix of every message. */
typedef struct what {
  char s[384];
} what;

static void what_fmt(what *w, const char *verb, const sq_kube_gvr *r, const char *ns,
                     const char *name, const char *sub) {
  int n = snprintf(w->s, sizeof w->s, "%s %s%s%s%s%s%s%s", verb, r->plural,
                   r->group && *r->group ? "." : "", r->group ? r->group : "",
                   name && *name ? "/" : "", name ? name : "", sub && *sub ? "/" : "",
                   sub ? sub : "");
  if(n > 0 && (size_t)n < sizeof w->s && r->namespaced && ns && *ns)
    snprintf(w->s + n, sizeof w->s - (size_t)n, " in %s", ns);
}

/* Copies s into a one-line form (control characters become spaces) so a
 * peer's text never breaks our log lines. */
static void one_line(char *dst, size_t dstlen, const char *s, size_t len) {
  size_t j = 0;
  for(size_t i = 0; i < len && j + 1 < dstlen; i++) {
    unsigned char ch = (unsigned char)s[i];
    dst[j++] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
  }
  while(j && dst[j - 1] == ' ') /* a trailing newline became a space */
    j--;
  dst[j] = '\0';
}

static sq_code status_error(const char *w, const sq_http_resp *resp, sq_err *err) {
  long st = resp->status;
  sq_code code = sq_code_from_http(st);
  if(code == SQ_OK) /* not expected here; keep the caller's contract */
    code = SQ_EHTTP;
  json_t *j = NULL;
  const char *msg = NULL, *reason = NULL;
  if(resp->body.len && resp->body.len <= STATUS_MAX &&
     !sq_json_parse(resp->body.ptr, resp->body.len, "Status", &j, NULL) && json_is_object(j)) {
    msg = sq_json_str(j, "message");
    reason = sq_json_str(j, "reason");
  }
  char text[SQ_ERR_MSG_MAX];
  if(msg && *msg)
    one_line(text, sizeof text, msg, strlen(msg));
  else if(resp->body.len && !j)
    one_line(text, sizeof text < 160 ? sizeof text : 160, resp->body.ptr, resp->body.len);
  else
    text[0] = '\0';
  if(st == 401)
    sq_err_set(err, code,
               "%s: the apiserver rejected our credentials (HTTP 401 Unauthorized): the bearer "
               "token or client certificate is wrong or expired%s%s",
               w, text[0] && strcmp(text, "Unauthorized") ? ": " : "",
               text[0] && strcmp(text, "Unauthorized") ? text : "");
  else if(text[0])
    sq_err_set(err, code, "%s: %s", w, text);
  else
    sq_err_set(err, code, "%s: HTTP %ld", w, st);
  if(err) {
    err->http_status = st;
    if(reason)
      snprintf(err->reason, sizeof err->reason, "%s", reason);
    else if(st == 401)
      snprintf(err->reason, sizeof err->reason, "Unauthorized");
  }
  json_decref(j);
  return code;
}

static void transport_error(sq_kube *k, const char *w, sq_err *err) {
  if(!err)
    return;
  if(err->code == SQ_ETRANSPORT)
    sq_err_prefix(err, "%s: cannot reach the apiserver at %s", w, k->server);
  else
    sq_err_prefix(err, "%s: apiserver %s", w, k->server);
}

/* ---- requests ---- */

static sq_code url_for(sq_kube *k, const char *path_q, sq_buf *url, sq_err *err) {
  sq_buf_init(url, URL_MAX);
  sq_code rc = sq_buf_adds(url, k->server);
  if(!rc)
    rc = sq_buf_adds(url, path_q);
  if(rc)
    return sq_err_set(err, rc, "request URL is longer than %u bytes", URL_MAX);
  return SQ_OK;
}

/* Sends one request and interprets the answer. out may be NULL (body
 * ignored). w is the message prefix. */
static sq_code do_json(sq_kube *k, const char *w, const char *method, const char *path_q,
                       const char *content_type, const json_t *body, json_t **out,
                       sq_err *err) {
  if(out)
    *out = NULL;
  sq_err_clear(err);
  sq_buf url;
  char *bearer = NULL, *payload = NULL;
  sq_http_resp resp;
  sq_http_resp_init(&resp);
  sq_code rc = url_for(k, path_q, &url, err);
  if(rc)
    goto out;
  if(body) {
    payload = json_dumps(body, JSON_COMPACT);
    if(!payload) {
      rc = sq_err_set(err, SQ_EINVAL, "%s: the object cannot be serialised", w);
      goto out;
    }
    if(strlen(payload) > REQ_BODY_MAX) {
      rc = sq_err_set(err, SQ_ETOOBIG, "%s: the object is larger than %u bytes", w, REQ_BODY_MAX);
      goto out;
    }
  }
  if((rc = bearer_get(k, &bearer, err))) {
    sq_err_prefix(err, "%s", w);
    goto out;
  }
  sq_http_req req = {
      .method = method,
      .url = url.ptr,
      .content_type = body ? (content_type ? content_type : "application/json") : NULL,
      .body = payload,
      .body_len = payload ? strlen(payload) : 0,
      .bearer = bearer,
  };
  rc = sq_http_do(k->http, &req, &resp, err);
  if(rc) {
    if(rc == SQ_ETRANSPORT || rc == SQ_ETIMEOUT)
      transport_error(k, w, err);
    else
      sq_err_prefix(err, "%s", w);
    goto out;
  }
  if(resp.status < 200 || resp.status >= 300) {
    rc = status_error(w, &resp, err);
    goto out;
  }
  if(out && resp.body.len) {
    json_t *j = NULL;
    rc = sq_json_parse(resp.body.ptr, resp.body.len, "apiserver response", &j, err);
    if(rc) {
      sq_err_prefix(err, "%s", w);
      goto out;
    }
    if(!json_is_object(j)) {
      json_decref(j);
      rc = sq_err_set(err, SQ_EPARSE, "%s: apiserver response is not a JSON object", w);
      goto out;
    }
    *out = j;
  }
out:
  sq_free_secret(bearer);
  if(payload) {
    sq_wipe(payload, strlen(payload)); /* objects may be Secrets */
    free(payload);
  }
  sq_buf_free(&url);
  sq_http_resp_free(&resp);
  return rc;
}

/* Namespace for a single-object call: explicit, else the object's, else the
 * client's default. Cluster-scoped resources get none. */
static const char *obj_ns(const sq_kube *k, const sq_kube_gvr *r, const char *ns,
                          const json_t *obj) {
  if(!r->namespaced)
    return NULL;
  if(ns && *ns)
    return ns;
  const char *o = obj ? sq_json_str(obj, "metadata.namespace") : NULL;
  return o && *o ? o : k->ns;
}

static sq_code check_gvr(const sq_kube_gvr *r, sq_err *err) {
  if(!r || !r->plural || !*r->plural || !r->version || !*r->version)
    return sq_err_set(err, SQ_EINVAL, "resource type without plural or version");
  return SQ_OK;
}

static sq_code path_or_err(const sq_kube_gvr *r, const char *ns, const char *name,
                           const char *sub, sq_buf *p, sq_err *err) {
  sq_buf_init(p, URL_MAX);
  if(build_path(p, r, ns, name, sub)) {
    sq_buf_free(p);
    return sq_err_set(err, SQ_ETOOBIG, "request path is too long");
  }
  return SQ_OK;
}

static sq_code single(sq_kube *k, const char *verb, const char *method, const sq_kube_gvr *r,
                      const char *ns, const char *name, const char *sub, const char *ctype,
                      const json_t *body, json_t **out, sq_err *err) {
  if(out)
    *out = NULL;
  sq_code rc = check_gvr(r, err);
  if(rc)
    return rc;
  what w;
  what_fmt(&w, verb, r, ns, name, sub);
  if(!name || !*name)
    return sq_err_set(err, SQ_EINVAL, "%s: object has no name", w.s);
  sq_buf p;
  if((rc = path_or_err(r, ns, name, sub, &p, err)))
    return rc;
  rc = do_json(k, w.s, method, p.ptr, ctype, body, out, err);
  sq_buf_free(&p);
  return rc;
}

sq_code sq_kube_get(sq_kube *k, const sq_kube_gvr *r, const char *ns, const char *name,
                    json_t **out, sq_err *err) {
  ns = r ? obj_ns(k, r, ns, NULL) : NULL;
  return single(k, "get", "GET", r, ns, name, NULL, NULL, NULL, out, err);
}

static sq_code add_param(sq_buf *b, int *first, const char *key, const char *value) {
  sq_code rc = sq_buf_addf(b, "%c%s=", *first ? '?' : '&', key);
  *first = 0;
  return rc ? rc : sq_url_escape(value, b);
}

sq_code sq_kube_list_page(sq_kube *k, const sq_kube_gvr *r, const char *ns,
                          const sq_kube_list_opts *opts, json_t **out, sq_err *err) {
  *out = NULL;
  sq_code rc = check_gvr(r, err);
  if(rc)
    return rc;
  what w;
  what_fmt(&w, "list", r, ns, NULL, NULL);
  sq_buf p;
  if((rc = path_or_err(r, ns, NULL, NULL, &p, err)))
    return rc;
  int first = 1;
  char lim[32];
  if(opts) {
    if(!rc && opts->label_selector && *opts->label_selector)
      rc = add_param(&p, &first, "labelSelector", opts->label_selector);
    if(!rc && opts->field_selector && *opts->field_selector)
      rc = add_param(&p, &first, "fieldSelector", opts->field_selector);
    if(!rc && opts->limit > 0) {
      snprintf(lim, sizeof lim, "%ld", opts->limit);
      rc = add_param(&p, &first, "limit", lim);
    }
    if(!rc && opts->continue_token && *opts->continue_token)
      rc = add_param(&p, &first, "continue", opts->continue_token);
    if(!rc && opts->resource_version && *opts->resource_version)
      rc = add_param(&p, &first, "resourceVersion", opts->resource_version);
  }
  if(rc) {
    sq_buf_free(&p);
    return sq_err_set(err, SQ_ETOOBIG, "%s: request URL is too long", w.s);
  }
  rc = do_json(k, w.s, "GET", p.ptr, NULL, NULL, out, err);
  sq_buf_free(&p);
  if(!rc && !json_is_array(json_object_get(*out, "items"))) {
    /* an empty list may come back with "items": null */
    json_t *items = json_object_get(*out, "items");
    if(!items || json_is_null(items)) {
      json_object_set_new(*out, "items", json_array());
    } else {
      json_decref(*out);
      *out = NULL;
      rc = sq_err_set(err, SQ_EPARSE, "%s: apiserver response has no items list", w.s);
    }
  }
  return rc;
}

sq_code sq_kube_list(sq_kube *k, const sq_kube_gvr *r, const char *ns, const char *label_selector,
                     long limit, json_t **out, sq_err *err) {
  *out = NULL;
  sq_kube_list_opts o = {.label_selector = label_selector,
                         .limit = limit > 0 ? limit : LIST_DEFAULT_LIMIT};
  json_t *all = NULL;
  char *cont = NULL;
  sq_code rc = SQ_OK;
  for(;;) {
    json_t *page = NULL;
    o.continue_token = cont;
    rc = sq_kube_list_page(k, r, ns, &o, &page, err);
    if(rc)
      break;
    const char *next = sq_json_str(page, "metadata.continue");
    char *next_copy = next && *next ? strdup(next) : NULL;
    if(next && *next && !next_copy) {
      json_decref(page);
      rc = sq_err_set(err, SQ_ENOMEM, "out of memory");
      break;
    }
    if(!all) {
      all = page;
    } else {
      json_array_extend(json_object_get(all, "items"), json_object_get(page, "items"));
      json_decref(page);
    }
    /* a server repeating the same token would loop forever */
    if(next_copy && cont && !strcmp(next_copy, cont)) {
      free(next_copy);
      what w;
      what_fmt(&w, "list", r, ns, NULL, NULL);
      rc = sq_err_set(err, SQ_EPARSE, "%s: apiserver returned the same continue token twice",
                      w.s);
      break;
    }
    free(cont);
    cont = next_copy;
    if(!cont)
      break;
  }
  free(cont);
  if(rc) {
    json_decref(all);
    return rc;
  }
  json_t *md = json_object_get(all, "metadata");
  if(json_is_object(md)) {
    json_object_del(md, "continue");
    json_object_del(md, "remainingItemCount");
  }
  *out = all;
  return SQ_OK;
}

sq_code sq_kube_create(sq_kube *k, const sq_kube_gvr *r, const char *ns, const json_t *obj,
                       json_t **out, sq_err *err) {
  if(out)
    *out = NULL;
  sq_code rc = check_gvr(r, err);
  if(rc)
    return rc;
  ns = obj_ns(k, r, ns, obj);
  const char *name = sq_json_str(obj, "metadata.name");
  if(!name)
    name = sq_json_str(obj, "metadata.generateName");
  what w;
  what_fmt(&w, "create", r, ns, name, NULL);
  sq_buf p;
  if((rc = path_or_err(r, ns, NULL, NULL, &p, err)))
    return rc;
  rc = do_json(k, w.s, "POST", p.ptr, NULL, obj, out, err);
  sq_buf_free(&p);
  return rc;
}

sq_code sq_kube_update(sq_kube *k, const sq_kube_gvr *r, const char *ns, const json_t *obj,
                       json_t **out, sq_err *err) {
  ns = r ? obj_ns(k, r, ns, obj) : NULL;
  return single(k, "update", "PUT", r, ns, sq_json_str(obj, "metadata.name"), NULL, NULL, obj,
                out, err);
}

sq_code sq_kube_update_status(sq_kube *k, const sq_kube_gvr *r, const char *ns, const json_t *obj,
                              json_t **out, sq_err *err) {
  ns = r ? obj_ns(k, r, ns, obj) : NULL;
  return single(k, "update", "PUT", r, ns, sq_json_str(obj, "metadata.name"), "status", NULL, obj,
                out, err);
}

sq_code sq_kube_merge_patch(sq_kube *k, const sq_kube_gvr *r, const char *ns, const char *name,
                            const char *sub, const json_t *patch, json_t **out, sq_err *err) {
  ns = r ? obj_ns(k, r, ns, NULL) : NULL;
  return single(k, "patch", "PATCH", r, ns, name, sub, "application/merge-patch+json", patch, out,
                err);
}

sq_code sq_kube_delete(sq_kube *k, const sq_kube_gvr *r, const char *ns, const char *name,
                       sq_err *err) {
  ns = r ? obj_ns(k, r, ns, NULL) : NULL;
  return single(k, "delete", "DELETE", r, ns, name, NULL, NULL, NULL, NULL, err);
}

sq_code sq_kube_request(sq_kube *k, const char *method, const char *path, const char *content_type,
                        const json_t *body, json_t **out, sq_err *err) {
  if(out)
    *out = NULL;
  if(!method || !path || path[0] != '/')
    return sq_err_set(err, SQ_EINVAL, "request path must start with '/'");
  what w;
  snprintf(w.s, sizeof w.s, "%s %s", method, path);
  return do_json(k, w.s, method, path, content_type, body, out, err);
}

/* ---- watch ---- */

typedef struct watch_ctx {
  const char *w;
  sq_kube_watch_fn fn;
  void *ud;
  sq_code rc;     /* set when an event ended the stream with an error */
  int user_stop;  /* fn asked to stop */
  /* event errors land here: sq_http_stream overwrites err when we stop it */
  sq_err ev_err;
} watch_ctx;

static int on_watch_line(void *ud, const char *line, size_t len) {
  watch_ctx *c = ud;
  json_t *ev = NULL;
  if(sq_json_parse(line, len, "watch event", &ev, &c->ev_err)) {
    c->rc = sq_err_prefix(&c->ev_err, "%s", c->w);
    return 1;
  }
  const char *type = sq_json_str(ev, "type");
  json_t *obj = json_object_get(ev, "object");
  if(!type || !json_is_object(obj)) {
    c->rc = sq_err_set(&c->ev_err, SQ_EPARSE, "%s: watch event without type or object", c->w);
    json_decref(ev);
    return 1;
  }
  if(!strcmp(type, "ERROR")) {
    long code = (long)sq_json_int(obj, "code", 0);
    const char *msg = sq_json_str(obj, "message");
    const char *reason = sq_json_str(obj, "reason");
    char text[SQ_ERR_MSG_MAX];
    one_line(text, sizeof text, msg ? msg : "", msg ? strlen(msg) : 0);
    if(code == 410)
      c->rc = sq_err_set(&c->ev_err, SQ_EGONE, "%s: resourceVersion too old (410 Gone)%s%s", c->w,
                         text[0] ? ": " : "", text);
    else
      c->rc = sq_err_set(&c->ev_err, SQ_EHTTP, "%s: watch error %ld%s%s", c->w, code,
                         text[0] ? ": " : "", text);
    c->ev_err.http_status = code;
    snprintf(c->ev_err.reason, sizeof c->ev_err.reason, "%s", reason ? reason : "");
    json_decref(ev);
    return 1;
  }
  int stop = c->fn(c->ud, type, obj);
  json_decref(ev);
  if(stop)
    c->user_stop = 1;
  return stop;
}

sq_code sq_kube_watch(sq_kube *k, const sq_kube_gvr *r, const char *ns,
                      const char *resource_version,
                      const char *label_selector, long timeout_s, const atomic_int *cancel,
                      sq_kube_watch_fn fn, void *ud, sq_err *err) {
  sq_err_clear(err);
  sq_code rc = check_gvr(r, err);
  if(rc)
    return rc;
  what w;
  what_fmt(&w, "watch", r, ns, NULL, NULL);
  sq_buf p, url;
  char *bearer = NULL;
  sq_http_resp resp;
  sq_http_resp_init(&resp);
  sq_buf_init(&url, URL_MAX);
  if((rc = path_or_err(r, ns, NULL, NULL, &p, err)))
    goto out_nop;
  int first = 0;
  rc = sq_buf_adds(&p, "?watch=1&allowWatchBookmarks=true");
  if(!rc && resource_version && *resource_version)
    rc = add_param(&p, &first, "resourceVersion", resource_version);
  if(!rc && label_selector && *label_selector)
    rc = add_param(&p, &first, "labelSelector", label_selector);
  if(!rc && timeout_s > 0)
    rc = sq_buf_addf(&p, "&timeoutSeconds=%ld", timeout_s);
  if(rc) {
    rc = sq_err_set(err, SQ_ETOOBIG, "%s: request URL is too long", w.s);
    goto out;
  }
  sq_buf_free(&url);
  if((rc = url_for(k, p.ptr, &url, err)))
    goto out;
  if((rc = bearer_get(k, &bearer, err))) {
    sq_err_prefix(err, "%s", w.s);
    goto out;
  }
  sq_http_req req = {
      .method = "GET",
      .url = url.ptr,
      .bearer = bearer,
      /* the server ends the stream after timeoutSeconds; the margin only
       * catches a connection that died silently */
      .timeout_ms = timeout_s > 0 ? (timeout_s + 30) * 1000 : -1,
      .max_body = STATUS_MAX,
      .cancel = cancel,
  };
  watch_ctx c = {.w = w.s, .fn = fn, .ud = ud};
  sq_err_clear(&c.ev_err);
  rc = sq_http_stream(k->http, &req, WATCH_LINE_MAX, on_watch_line, &c, &resp, err);
  if(c.rc) {
    rc = c.rc;
    if(err)
      *err = c.ev_err;
  } else if(c.user_stop) {
    sq_err_clear(err);
    rc = SQ_OK;
  } else if(rc == SQ_ECANCELED) {
    sq_err_set(err, SQ_ECANCELED, "%s: canceled", w.s);
  } else if(rc == SQ_ETRANSPORT || rc == SQ_ETIMEOUT) {
    transport_error(k, w.s, err);
  } else if(rc) {
    sq_err_prefix(err, "%s", w.s);
  } else if(resp.status < 200 || resp.status >= 300) {
    rc = status_error(w.s, &resp, err);
  }
out:
  sq_buf_free(&p);
out_nop:
  sq_free_secret(bearer);
  sq_buf_free(&url);
  sq_http_resp_free(&resp);
  return rc;
}
