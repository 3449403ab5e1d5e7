/* arm.c — Azure Resource Manager client; see include/sqltde/azure/arm.h. */
#include "sqltde/azure/arm.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sqltde/azure/pager.h"
#include "sqltde/buf.h"
#include "sqltde/jsonx.h"
#include "sqltde/log.h"

#define LOGGER "azure.arm"
#define MAX_PAGES 10000
#define LIST_URL_MAX 8192
#define LRO_NOT_FOUND_TOLERANCE 3
#define MAX_SUBSCRIPTIONS 4096

/* ---- token bucket ---- */

void sq_arm_bucket_init(sq_arm_bucket *b, int64_t burst, int64_t refill_per_s, int64_t now_ms) {
  b->capacity_milli = burst * 1000;
  b->refill_per_s = refill_per_s > 0 ? refill_per_s : 1;
  b->level_milli = b->capacity_milli;
  b->last_ms = now_ms;
}

int64_t sq_arm_bucket_reserve(sq_arm_bucket *b, int64_t now_ms, int64_t max_wait_ms) {
  int64_t elapsed = now_ms - b->last_ms;
  if(elapsed > 0) {
    /* refill_per_s tokens per second == refill_per_s milli-tokens per ms */
    int64_t room = b->capacity_milli - b->level_milli;
    if(elapsed > room / b->refill_per_s + 1)
      b->level_milli = b->capacity_milli;
    else
      b->level_milli += elapsed * b->refill_per_s;
    if(b->level_milli > b->capacity_milli)
      b->level_milli = b->capacity_milli;
    b->last_ms = now_ms;
  }
  int64_t after = b->level_milli - 1000;
  if(after >= 0) {
    b->level_milli = after;
    return 0;
  }
  int64_t wait = (-after + b->refill_per_s - 1) / b->refill_per_s;
  if(wait > max_wait_ms)
    return -wait;
  b->level_milli = after;
  return wait;
}

sq_arm_class sq_arm_class_of(const char *method) {
  if(!method || !strcmp(method, "GET") || !strcmp(method, "HEAD"))
    return SQ_ARM_READ;
  if(!strcmp(method, "DELETE"))
    return SQ_ARM_DELETE;
  return SQ_ARM_WRITE;
}

void sq_arm_subscription_of(const char *path, char *out, size_t outlen) {
  out[0] = '\0';
  static const char pre[] = "/subscriptions/";
  if(strncasecmp(path, pre, sizeof pre - 1))
    return;
  const char *s = path + sizeof pre - 1;
  size_t n = strcspn(s, "/?");
  if(n >= outlen)
    n = outlen - 1;
  for(size_t i = 0; i < n; i++)
    out[i] = (char)tolower((unsigned char)s[i]);
  out[n] = '\0';
}

void sq_arm_resource_type(const char *path, char *out, size_t outlen) {
  out[0] = '\0';
  /* the last "/providers/" segment names the namespace; then type/name pairs */
  const char *p = NULL, *q = path;
  while((q = strcasestr(q, "/providers/")) != NULL) {
    p = q;
    q += 11;
  }
  if(!p)
    return;
  p += 11;
  size_t len = strcspn(p, "?");
  char seg[16][128];
  int n = 0;
  const char *s = p;
  while(s < p + len && n < 16) {
    size_t l = strcspn(s, "/?");
    if(l > (size_t)(p + len - s))
      l = (size_t)(p + len - s);
    if(l >= sizeof seg[0])
      l = sizeof seg[0] - 1;
    memcpy(seg[n], s, l);
    seg[n][l] = '\0';
    n++;
    s += l;
    if(*s == '/')
      s++;
    else
      break;
  }
  if(n < 2)
    return;
  /* seg[0] = namespace, then type, name, type, name ... */
  size_t o = (size_t)snprintf(out, outlen, "%s", seg[0]);
  for(int i = 1; i < n && o < outlen; i += 2)
    o += (size_t)snprintf(out + o, outlen - o, "/%s", seg[i]);
}

int sq_arm_path_valid(const char *path) {
  if(!path || path[0] != '/' || strlen(path) > 900)
    return 0;
  for(const char *p = path; *p; p++) {
    unsigned char c = (unsigned char)*p;
    if(c < 0x20 || c == 0x7f || c == '?' || c == '#' || c == '\\')
      return 0;
  }
  const char *s = path;
  while(*s) {
    s++; /* skip '/' */
    size_t l = strcspn(s, "/");
    if((l == 1 && s[0] == '.') || (l == 2 && s[0] == '.' && s[1] == '.'))
      return 0;
    if(l == 0 && s[0] == '/')
      return 0; /* empty segment "//" */
    s += l;
  }
  return 1;
}

static int api_version_valid(const char *v) {
  size_t n = v ? strlen(v) : 0;
  if(!n || n >= 32)
    return 0;
  for(size_t i = 0; i < n; i++)
    if(!(isalnum((unsigned char)v[i]) || v[i] == '-' || v[i] == '.'))
      return 0;
  return 1;
}

static int query_valid(const char *q) {
  if(!q)
    return 1;
  for(const char *p = q; *p; p++) {
    unsigned char c = (unsigned char)*p;
    if(c <= 0x20 || c >= 0x7f || c == '#')
      return 0;
  }
  return 1;
}

sq_code sq_arm_failed_op_code(const char *code, int canceled) {
  static const char *const throttle[] = {"TooManyRequests", "SubscriptionTooManyRequests",
                                         "SubscriptionTooManyCreateUpdateRequests",
                                         "ConflictingSubscriptionOperation"};
  static const char *const transient[] = {
      "InternalServerError", "ServiceUnavailable", "InternalError", "OperationTimedOut",
      "GatewayTimeout",      "ServerTimeout",      "RetryableError", "TransientError",
      "AzureKeyVaultConnectionFailed", "AzureKeyVaultGenericConnectionError"};
  static const char *const conflict[] = {
      "Conflict", "EncryptionProtectorChangeInProgress", "ConflictingServerOperation",
      "ConflictingDatabaseOperation", "OperationCanceled", "AnotherOperationInProgress",
      "ResourceBusy"};
  if(canceled)
    return SQ_ECONFLICT;
  if(!code)
    return SQ_EBADREQ;
  for(size_t i = 0; i < sizeof throttle / sizeof *throttle; i++)
    if(!strcmp(code, throttle[i]))
      return SQ_ETHROTTLED;
  for(size_t i = 0; i < sizeof transient / sizeof *transient; i++)
    if(!strcmp(code, transient[i]))
      return SQ_ESERVER;
  for(size_t i = 0; i < sizeof conflict / sizeof *conflict; i++)
    if(!strcmp(code, conflict[i]))
      return SQ_ECONFLICT;
  return SQ_EBADREQ;
}

/* ---- client ---- */

typedef struct sub_buckets {
  struct sub_buckets *next;
  char sub[64];
  sq_arm_bucket b[3];
} sub_buckets;

struct sq_arm {
  sq_azure_cloud cloud;
  sq_azure_cred *cred;
  char tenant[128];
  char scope[SQ_AZ_URL_MAX + 16];
  sq_azure_pipeline pipe;
  sq_arm_opts o;
  pthread_mutex_t mu;
  sub_buckets *subs;
  int n_subs;
};

void sq_arm_result_init(sq_arm_result *r) {
  memset(r, 0, sizeof *r);
  r->retry_after_ms = -1;
}

void sq_arm_result_free(sq_arm_result *r) {
  json_decref(r->body);
  r->body = NULL;
}

#define DEF(x, d)                                                                                  \
  if(!(x))                                                                                         \
  (x) = (d)

sq_code sq_arm_new(const sq_arm_opts *opts, sq_arm **out, sq_err *err) {
  *out = NULL;
  if(!opts->cloud || !opts->cred || !opts->pipeline.http)
    return sq_err_set(err, SQ_EINVAL, "ARM client: cloud, credential and HTTP client are required");
  sq_arm *a = calloc(1, sizeof *a);
  if(!a)
    return sq_err_set(err, SQ_ENOMEM, "out of memory");
  a->cloud = *opts->cloud;
  a->cred = opts->cred;
  a->pipe = opts->pipeline;
  a->o = *opts;
  a->o.cloud = NULL;
  DEF(a->o.read_burst, 250);
  DEF(a->o.read_per_s, 25);
  DEF(a->o.write_burst, 200);
  DEF(a->o.write_per_s, 10);
  DEF(a->o.delete_burst, 200);
  DEF(a->o.delete_per_s, 10);
  DEF(a->o.bucket_max_wait_ms, 120000);
  DEF(a->o.lro_min_poll_ms, 1000);
  DEF(a->o.lro_default_poll_ms, 5000);
  DEF(a->o.lro_timeout_ms, 30 * 60 * 1000);
  DEF(a->o.max_list_items, 100000);
  snprintf(a->tenant, sizeof a->tenant, "%s",
           opts->tenant ? opts->tenant : sq_azure_cred_tenant(opts->cred));
  a->o.tenant = NULL;
  sq_code rc = sq_azure_scope(a->cloud.arm_audience, a->scope, sizeof a->scope, err);
  if(rc) {
    free(a);
    return rc;
  }
  pthread_mutex_init(&a->mu, NULL);
  *out = a;
  return SQ_OK;
}

void sq_arm_free(sq_arm *a) {
  if(!a)
    return;
  sub_buckets *s = a->subs;
  while(s) {
    sub_buckets *n = s->next;
    free(s);
    s = n;
  }
  pthread_mutex_destroy(&a->mu);
  free(a);
}

static const sq_clock *clk(const sq_arm *a) {
  return a->pipe.clock ? a->pipe.clock : sq_clock_real();
}

/* Reserves a bucket token; returns the wait (>= 0) or -wait when over budget. */
static int64_t bucket_take(sq_arm *a, const char *sub, sq_arm_class cls) {
  if(a->o.bucket_disabled)
    return 0;
  int64_t now = clk(a)->mono_ms(clk(a)->ud);
  pthread_mutex_lock(&a->mu);
  sub_buckets *s = a->subs;
  while(s && strcmp(s->sub, sub))
    s = s->next;
  if(!s && a->n_subs < MAX_SUBSCRIPTIONS && (s = calloc(1, sizeof *s)) != NULL) {
    snprintf(s->sub, sizeof s->sub, "%s", sub);
    sq_arm_bucket_init(&s->b[SQ_ARM_READ], a->o.read_burst, a->o.read_per_s, now);
    sq_arm_bucket_init(&s->b[SQ_ARM_WRITE], a->o.write_burst, a->o.write_per_s, now);
    sq_arm_bucket_init(&s->b[SQ_ARM_DELETE], a->o.delete_burst, a->o.delete_per_s, now);
    s->next = a->subs;
    a->subs = s;
    a->n_subs++;
  }
  int64_t w = s ? sq_arm_bucket_reserve(&s->b[cls], now, a->o.bucket_max_wait_ms) : 0;
  pthread_mutex_unlock(&a->mu);
  return w;
}

/* Per-request state for the pipeline's auth callbacks. */
typedef struct arm_auth {
  sq_arm *a;
  const sq_azure_exec_info *info;
  char sub[64];
  sq_arm_class cls;
  sq_azure_token tok;
  int refreshed;
  int64_t client_wait_ms; /* set when the bucket refused */
} arm_auth;

static sq_code arm_prepare(void *ud, sq_http_req *req, sq_err *err) {
  arm_auth *st = ud;
  sq_arm *a = st->a;
  int64_t w = bucket_take(a, st->sub, st->cls);
  if(w < 0) {
    st->client_wait_ms = -w;
    if(a->pipe.metrics) {
      sq_azure_metric m = {"arm", st->info->operation, st->info->resource_type,
                           req->method ? req->method : "GET", 0, "client_throttled", 0};
      a->pipe.metrics(a->pipe.metrics_ud, &m);
    }
    sq_err_set(err, SQ_ETHROTTLED,
               "%s: client-side ARM budget for subscription %s exhausted; retry in %lld ms",
               st->info->operation, st->sub[0] ? st->sub : "(tenant)", (long long)-w);
    if(err)
      snprintf(err->reason, sizeof err->reason, "ClientThrottled");
    return SQ_ETHROTTLED;
  }
  if(w > 0) {
    sq_code rc = sq_azure_sleep(&a->pipe, w, err);
    if(rc)
      return rc;
  }
  if(!st->tok.value) {
    sq_code rc = sq_azure_cred_token(a->cred, a->tenant, a->scope, &st->tok, err);
    if(rc) {
      sq_err_prefix(err, "ARM token");
      return rc;
    }
  }
  req->bearer = st->tok.value;
  return SQ_OK;
}

static int arm_unauthorized(void *ud, sq_http_req *req, const sq_http_resp *resp) {
  (void)resp;
  arm_auth *st = ud;
  if(st->refreshed || !st->tok.value)
    return 0;
  /* an expired or revoked token: drop it and try once with a fresh one */
  sq_azure_cred_invalidate(st->a->cred, st->a->tenant, st->a->scope, st->tok.value);
  sq_azure_token_clear(&st->tok);
  req->bearer = NULL;
  st->refreshed = 1;
  return 1;
}

static const char *url_path(const char *url) {
  const char *p = strstr(url, "://");
  if(!p)
    return url;
  p = strchr(p + 3, '/');
  return p ? p : "/";
}

/* Sends one request to an absolute ARM URL through the pipeline. */
static sq_code arm_send(sq_arm *a, const char *method, const char *url, const char *body,
                        const char *operation, int idempotent, sq_http_resp *resp,
                        sq_azure_outcome *oc, int64_t *client_wait, sq_err *err) {
  char rtype[256];
  char path_only[1024];
  const char *p = url_path(url);
  snprintf(path_only, sizeof path_only, "%.*s", (int)strcspn(p, "?"), p);
  sq_arm_resource_type(path_only, rtype, sizeof rtype);
  sq_azure_exec_info info = {"arm", operation, rtype, idempotent, 0};
  arm_auth st;
  memset(&st, 0, sizeof st);
  st.a = a;
  st.info = &info;
  st.cls = sq_arm_class_of(method);
  sq_arm_subscription_of(path_only, st.sub, sizeof st.sub);
  sq_azure_auth auth = {arm_prepare, arm_unauthorized, &st};
  int has_body = strcmp(method, "GET") && strcmp(method, "DELETE") && strcmp(method, "HEAD");
  sq_http_req req = {.method = method,
                     .url = url,
                     .content_type = has_body ? "application/json" : NULL,
                     .accept = "application/json",
                     .body = has_body ? (body ? body : "") : NULL,
                     .body_len = has_body && body ? strlen(body) : 0};
  sq_code rc = sq_azure_exec(&a->pipe, &info, &auth, &req, resp, oc, err);
  if(client_wait)
    *client_wait = st.client_wait_ms;
  sq_azure_token_clear(&st.tok);
  return rc;
}

static sq_code build_url(const sq_arm *a, const char *path, const char *api, const char *query,
                         sq_buf *url, sq_err *err) {
  if(!sq_arm_path_valid(path))
    return sq_err_set(err, SQ_EINVAL, "ARM: invalid resource path \"%.200s\"", path ? path : "");
  if(!api_version_valid(api))
    return sq_err_set(err, SQ_EINVAL, "ARM: invalid api-version");
  if(!query_valid(query))
    return sq_err_set(err, SQ_EINVAL, "ARM: query must be percent-encoded");
  sq_code rc = sq_buf_adds(url, a->cloud.arm_endpoint);
  /* names may hold spaces or non-ASCII (database names): escape what a path
   * cannot carry, keep the path's own delimiters */
  static const char hex[] = "0123456789ABCDEF";
  for(const unsigned char *p = (const unsigned char *)path; !rc && *p; p++) {
    if(isalnum(*p) || strchr("/-._~:@!$&'()*+,;=%", *p)) {
      rc = sq_buf_add(url, p, 1);
    } else {
      char enc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
      rc = sq_buf_add(url, enc, 3);
    }
  }
  if(!rc)
    rc = sq_buf_addf(url, "?api-version=%s%s%s", api, query && *query ? "&" : "",
                     query && *query ? query : "");
  if(rc)
    return sq_err_set(err, rc, "ARM: URL too long");
  return SQ_OK;
}

static int terminal(const char *s, int *ok, int *canceled) {
  *ok = s && !strcasecmp(s, "Succeeded");
  *canceled = s && !strcasecmp(s, "Canceled");
  return s && (*ok || *canceled || !strcasecmp(s, "Failed"));
}

/* Copies a status URL from a header into dst, refusing foreign or truncated ones. */
static int take_url(char *dst, size_t dstlen, const char *hdr, size_t hdr_cap, const char *origin,
                    const char *which, sq_err *err) {
  if(!hdr || !*hdr)
    return 0;
  size_t n = strlen(hdr);
  if(n + 1 >= hdr_cap || n >= dstlen) {
    sq_err_set(err, SQ_EPARSE, "ARM: %s URL too long (%zu bytes)", which, n);
    return -1;
  }
  if(!sq_azure_same_origin(hdr, origin)) {
    sq_err_set(err, SQ_EPARSE, "ARM: %s URL is not on the ARM endpoint (%.200s)", which, hdr);
    return -1;
  }
  memcpy(dst, hdr, n + 1);
  return 1;
}

int sq_arm_lro_from_response(const char *method, const char *path, const char *api_version,
                             const char *arm_origin, long status, const char *async_hdr,
                             const char *location_hdr, int final_via_location, sq_arm_lro *lro,
                             sq_err *err) {
  memset(lro, 0, sizeof *lro);
  snprintf(lro->method, sizeof lro->method, "%s", method);
  snprintf(lro->path, sizeof lro->path, "%s", path);
  snprintf(lro->api_version, sizeof lro->api_version, "%s", api_version);
  lro->final_via_location = final_via_location;
  if(status != 201 && status != 202)
    return 0;
  /* sq_http_resp stores these headers in fields of this size */
  const size_t cap = sizeof((sq_http_resp *)0)->location;
  int ha = take_url(lro->async_url, sizeof lro->async_url, async_hdr, cap, arm_origin,
                    "Azure-AsyncOperation", err);
  if(ha < 0)
    return -1;
  int hl = 0;
  if(location_hdr && *location_hdr) {
    hl = take_url(lro->location_url, sizeof lro->location_url, location_hdr, cap, arm_origin,
                  "Location", err);
    if(hl < 0) {
      if(status == 201 && !ha) {
        /* a 201 Location may just name the created resource elsewhere: ignore */
        sq_err_clear(err);
        hl = 0;
        lro->location_url[0] = '\0';
      } else {
        return -1;
      }
    }
  }
  if(status == 201 && !ha && !hl)
    return 0;
  if(!ha && !hl) {
    sq_err_set(err, SQ_EPARSE,
               "ARM: %s %.300s answered 202 without Azure-AsyncOperation or Location", method, path);
    if(err)
      snprintf(err->reason, sizeof err->reason, "MissingOperationHeaders");
    return -1;
  }
  return 1;
}

static int64_t next_wait(const sq_arm *a, const sq_http_resp *resp) {
  int64_t ra = sq_azure_parse_retry_after(resp->retry_after[0] ? resp->retry_after : NULL,
                                          clk(a)->wall_s(clk(a)->ud));
  if(ra < 0)
    ra = a->o.lro_default_poll_ms;
  if(ra < a->o.lro_min_poll_ms)
    ra = a->o.lro_min_poll_ms;
  return ra;
}

static const char *prov_state(const json_t *body) {
  return sq_json_str(body, "properties.provisioningState");
}

/* Parses a body that may be empty (an empty body gives NULL). */
static sq_code optional_body(const sq_http_resp *resp, const char *what, json_t **out, sq_err *err) {
  *out = NULL;
  if(!resp->body.len || resp->status == 204)
    return SQ_OK;
  return sq_azure_json_body(resp, what, out, err);
}

static sq_code op_failed(const json_t *body, const char *what, int canceled, const char *st,
                         sq_err *err) {
  char code[64] = "", msg[400] = "";
  const json_t *e = json_object_get(body, "error");
  if(!json_is_object(e))
    e = sq_json_path(body, "properties.error");
  const char *c = sq_json_str(e, "code");
  const char *m = sq_json_str(e, "message");
  snprintf(code, sizeof code, "%s", c ? c : (canceled ? "Canceled" : "OperationFailed"));
  for(char *p = code; *p; p++)
    if((unsigned char)*p < 0x20)
      *p = ' ';
  if(m) {
    size_t j = 0;
    for(size_t i = 0; m[i] && j + 1 < sizeof msg; i++)
      msg[j++] = (unsigned char)m[i] < 0x20 ? ' ' : m[i];
    msg[j] = '\0';
  }
  sq_code rc = sq_arm_failed_op_code(c, canceled);
  sq_err_set(err, rc, "%s: operation %s: %s: %s", what, st, code, msg[0] ? msg : "(no message)");
  if(err) {
    err->http_status = 0;
    snprintf(err->reason, sizeof err->reason, "%s", code);
  }
  return rc;
}

/* GET of an absolute URL with the usual error mapping; *out gets the body. */
static sq_code get_url(sq_arm *a, const char *url, const char *operation, long *status,
                       sq_http_resp *resp, sq_err *err) {
  sq_code rc = arm_send(a, "GET", url, NULL, operation, 1, resp, NULL, NULL, err);
  *status = resp->status;
  return rc;
}

static sq_code finish_get(sq_arm *a, sq_arm_lro *lro, const char *url, sq_arm_result *res,
                          sq_err *err) {
  sq_http_resp resp;
  sq_http_resp_init(&resp);
  long st = 0;
  char what[1100];
  snprintf(what, sizeof what, "%s %s (final result)", lro->method, lro->path);
  sq_code rc = get_url(a, url, "lro.result", &st, &resp, err);
  if(!rc) {
    res->status = st;
    if(st == 200 || st == 201 || st == 204) {
      rc = optional_body(&resp, what, &res->body, err);
    } else if(st == 404 && !strcmp(lro->method, "DELETE")) {
      res->status = 200; /* gone, as asked */
    } else {
      rc = sq_azure_error_from_resp(&resp, what, err);
    }
  }
  sq_http_resp_free(&resp);
  return rc;
}

/* The operation reached Succeeded: fetch what the caller gets. */
static sq_code lro_final(sq_arm *a, sq_arm_lro *lro, json_t *status_body, sq_arm_result *res,
                         sq_err *err) {
  res->lro_pending = 0;
  if(!strcmp(lro->method, "PUT") || !strcmp(lro->method, "PATCH")) {
    sq_buf url;
    sq_buf_init(&url, 8192);
    sq_code rc = build_url(a, lro->path, lro->api_version, NULL, &url, err);
    if(!rc)
      rc = finish_get(a, lro, url.ptr, res, err);
    sq_buf_free(&url);
    return rc;
  }
  if(lro->final_via_location && lro->location_url[0] && lro->async_url[0])
    return finish_get(a, lro, lro->location_url, res, err);
  res->status = 200;
  if(strcmp(lro->method, "DELETE") && status_body)
    res->body = json_incref(status_body);
  return SQ_OK;
}

sq_code sq_arm_lro_poll(sq_arm *a, sq_arm_lro *lro, sq_arm_result *res, sq_err *err) {
  json_decref(res->body);
  res->body = NULL;
  res->lro_pending = 1;
  res->lro = *lro;
  sq_http_resp resp;
  sq_http_resp_init(&resp);
  json_t *body = NULL;
  sq_code rc = SQ_OK;
  long st = 0;
  char what[1100];
  snprintf(what, sizeof what, "%s %s", lro->method, lro->path);
  lro->polls++;

  if(lro->async_url[0] || lro->poll_resource) {
    sq_buf url;
    sq_buf_init(&url, 8192);
    if(lro->poll_resource)
      rc = build_url(a, lro->path, lro->api_version, NULL, &url, err);
    else
      rc = sq_buf_adds(&url, lro->async_url) ? sq_err_set(err, SQ_ETOOBIG, "URL too long") : SQ_OK;
    if(!rc)
      rc = get_url(a, url.ptr, "lro.poll", &st, &resp, err);
    sq_buf_free(&url);
    if(rc)
      goto out;
    if(st == 404 && lro->not_found_polls < LRO_NOT_FOUND_TOLERANCE) {
      /* status URLs can lag their operation for a moment */
      lro->not_found_polls++;
      lro->next_poll_ms = next_wait(a, &resp);
      goto pending;
    }
    if(st < 200 || st > 202) {
      rc = sq_azure_error_from_resp(&resp, what, err);
      goto out;
    }
    rc = sq_azure_json_body(&resp, what, &body, err);
    if(rc)
      goto out;
    const char *s = lro->poll_resource ? prov_state(body) : sq_json_str(body, "status");
    if(!s) {
      if(lro->poll_resource) {
        res->status = st; /* no provisioningState at all: the resource is there */
        res->body = body;
        body = NULL;
        res->lro_pending = 0;
        goto out;
      }
      rc = sq_err_set(err, SQ_EPARSE, "%s: operation status body has no \"status\"", what);
      goto out;
    }
    snprintf(lro->status, sizeof lro->status, "%s", s);
    int ok, canceled;
    if(terminal(s, &ok, &canceled)) {
      if(!ok) {
        rc = op_failed(body, what, canceled, lro->status, err);
        goto out;
      }
      if(lro->poll_resource) {
        res->status = st;
        res->body = body;
        body = NULL;
        res->lro_pending = 0;
      } else {
        rc = lro_final(a, lro, body, res, err);
      }
      goto out;
    }
    lro->next_poll_ms = next_wait(a, &resp);
    goto pending;
  }

  if(lro->location_url[0]) {
    rc = get_url(a, lro->location_url, "lro.poll", &st, &resp, err);
    if(rc)
      goto out;
    if(st == 202) {
      snprintf(lro->status, sizeof lro->status, "InProgress");
      lro->next_poll_ms = next_wait(a, &resp);
      goto pending;
    }
    if(st == 404 && !strcmp(lro->method, "DELETE")) {
      res->status = 200;
      res->lro_pending = 0;
      goto out;
    }
    if(st == 404 && lro->not_found_polls < LRO_NOT_FOUND_TOLERANCE) {
      lro->not_found_polls++;
      lro->next_poll_ms = next_wait(a, &resp);
      goto pending;
    }
    if(st == 200 || st == 201 || st == 204) {
      snprintf(lro->status, sizeof lro->status, "Succeeded");
      res->status = st;
      res->lro_pending = 0;
      if(!strcmp(lro->method, "PUT") || !strcmp(lro->method, "PATCH")) {
        /* the resource itself is the result; the Location body may be empty */
        rc = lro_final(a, lro, NULL, res, err);
      } else if(strcmp(lro->method, "DELETE")) {
        rc = optional_body(&resp, what, &res->body, err);
      }
      goto out;
    }
    rc = sq_azure_error_from_resp(&resp, what, err);
    goto out;
  }
  rc = sq_err_set(err, SQ_ESTATE, "%s: nothing to poll", what);
  goto out;

pending:
  res->lro_pending = 1;
out:
  if(rc)
    res->lro_pending = 0;
  res->lro = *lro;
  json_decref(body);
  sq_http_resp_free(&resp);
  return rc;
}

sq_code sq_arm_lro_wait(sq_arm *a, sq_arm_lro *lro, int64_t timeout_ms, sq_arm_result *res,
                        sq_err *err) {
  if(!timeout_ms)
    timeout_ms = a->o.lro_timeout_ms;
  int64_t deadline = clk(a)->mono_ms(clk(a)->ud) + timeout_ms;
  /* the first wait is the initial response's Retry-After */
  int64_t wait = lro->next_poll_ms;
  for(;;) {
    if(wait > 0) {
      int64_t now = clk(a)->mono_ms(clk(a)->ud);
      if(now + wait > deadline) {
        res->lro_pending = 1;
        res->lro = *lro;
        return sq_err_set(err, SQ_ETIMEOUT,
                          "%s %s: still %s after %lld s; the operation continues in Azure",
                          lro->method, lro->path, lro->status[0] ? lro->status : "running",
                          (long long)(timeout_ms / 1000));
      }
      sq_code rc = sq_azure_sleep(&a->pipe, wait, err);
      if(rc)
        return rc;
    }
    sq_code rc = sq_arm_lro_poll(a, lro, res, err);
    if(rc || !res->lro_pending)
      return rc;
    wait = lro->next_poll_ms;
  }
}

/* "databases.get" from a path and a method, for metrics labels. */
static void default_operation(const char *path, const char *verb, char *out, size_t outlen) {
  char rt[256];
  sq_arm_resource_type(path ? path : "", rt, sizeof rt);
  const char *last = strrchr(rt, '/');
  const char *type = last ? last + 1 : rt[0] ? rt : "resource";
  size_t o = (size_t)snprintf(out, outlen, "%s.", type);
  for(const char *v = verb; *v && o + 1 < outlen; v++)
    out[o++] = (char)tolower((unsigned char)*v);
  out[o < outlen ? o : outlen - 1] = '\0';
}

sq_code sq_arm_do(sq_arm *a, const sq_arm_call *call, sq_arm_result *res, sq_err *err) {
  sq_arm_result_free(res);
  sq_arm_result_init(res);
  const char *method = call->method ? call->method : "GET";
  char opbuf[128];
  if(!call->operation)
    default_operation(call->path, method, opbuf, sizeof opbuf);
  const char *op = call->operation ? call->operation : opbuf;
  sq_buf url;
  sq_buf_init(&url, 8192);
  char *body = NULL;
  sq_http_resp resp;
  sq_http_resp_init(&resp);
  char what[1100];
  snprintf(what, sizeof what, "%s %s", method, call->path ? call->path : "");
  sq_code rc = build_url(a, call->path, call->api_version, call->query, &url, err);
  if(rc)
    goto out;
  if(call->body && !(body = json_dumps(call->body, JSON_COMPACT))) {
    rc = sq_err_set(err, SQ_ENOMEM, "%s: cannot serialise the body", what);
    goto out;
  }
  int idempotent = strcmp(method, "POST") || call->post_idempotent;
  sq_azure_outcome oc;
  int64_t client_wait = 0;
  rc = arm_send(a, method, url.ptr, body, op, idempotent, &resp, &oc, &client_wait, err);
  if(rc == SQ_ETHROTTLED)
    res->retry_after_ms = client_wait ? client_wait : oc.retry_after_ms;
  if(rc)
    goto out;
  res->status = resp.status;
  if(resp.status < 200 || resp.status > 299) {
    res->retry_after_ms = oc.retry_after_ms;
    rc = sq_azure_error_from_resp(&resp, what, err);
    goto out;
  }
  if(resp.status == 202) {
    json_t *b = NULL;
    sq_err ignore;
    if(resp.body.len && !sq_azure_json_body(&resp, what, &b, &ignore))
      res->body = b; /* {"operation":...,"startTime":...}: informative only */
  } else {
    rc = optional_body(&resp, what, &res->body, err);
    if(rc)
      goto out;
  }
  if(!strcmp(method, "GET") || !strcmp(method, "HEAD"))
    goto out;
  sq_arm_lro lro;
  int need = sq_arm_lro_from_response(method, call->path, call->api_version, a->cloud.arm_endpoint,
                                      resp.status, resp.azure_async_operation, resp.location,
                                      call->final_via_location, &lro, err);
  if(need < 0) {
    rc = err ? err->code : SQ_EPARSE;
    goto out;
  }
  if(!need && (!strcmp(method, "PUT") || !strcmp(method, "PATCH")) && res->body) {
    int ok, canceled;
    const char *ps = prov_state(res->body);
    if(ps && !terminal(ps, &ok, &canceled)) {
      need = 1;
      lro.poll_resource = 1;
      snprintf(lro.status, sizeof lro.status, "%s", ps);
    } else if(ps && !ok) {
      rc = op_failed(res->body, what, canceled, ps, err);
      goto out;
    }
  }
  if(!need)
    goto out;
  lro.next_poll_ms = next_wait(a, &resp);
  json_decref(res->body);
  res->body = NULL;
  if(call->no_wait) {
    res->lro_pending = 1;
    res->lro = lro;
    goto out;
  }
  rc = sq_arm_lro_wait(a, &lro, call->lro_timeout_ms, res, err);
out:
  free(body);
  sq_buf_free(&url);
  sq_http_resp_free(&resp);
  return rc;
}

static sq_code simple(sq_arm *a, const char *method, const char *path, const char *api,
                      const char *query, const json_t *body, json_t **out, sq_err *err) {
  sq_arm_call c = {.method = method, .path = path, .api_version = api, .query = query, .body = body};
  sq_arm_result r;
  sq_arm_result_init(&r);
  sq_code rc = sq_arm_do(a, &c, &r, err);
  if(out) {
    *out = rc ? NULL : r.body;
    if(!rc)
      r.body = NULL;
  }
  sq_arm_result_free(&r);
  return rc;
}

sq_code sq_arm_get(sq_arm *a, const char *path, const char *api, const char *query, json_t **out,
                   sq_err *err) {
  return simple(a, "GET", path, api, query, NULL, out, err);
}
sq_code sq_arm_put(sq_arm *a, const char *path, const char *api, const json_t *body, json_t **out,
                   sq_err *err) {
  return simple(a, "PUT", path, api, NULL, body, out, err);
}
sq_code sq_arm_patch(sq_arm *a, const char *path, const char *api, const json_t *body,
                     json_t **out, sq_err *err) {
  return simple(a, "PATCH", path, api, NULL, body, out, err);
}
sq_code sq_arm_delete(sq_arm *a, const char *path, const char *api, sq_err *err) {
  return simple(a, "DELETE", path, api, NULL, NULL, NULL, err);
}
sq_code sq_arm_post(sq_arm *a, const char *path, const char *api, const json_t *body, json_t **out,
                    sq_err *err) {
  return simple(a, "POST", path, api, NULL, body, out, err);
}

/* The pager's send callback: one GET through the ARM pipeline. */
typedef struct arm_page_send {
  sq_arm *a;
  const char *operation;
} arm_page_send;

static sq_code arm_page_get(void *ud, const char *url, sq_http_resp *resp, sq_err *err) {
  arm_page_send *s = ud;
  return arm_send(s->a, "GET", url, NULL, s->operation, 1, resp, NULL, NULL, err);
}

sq_code sq_arm_list(sq_arm *a, const char *path, const char *api, const char *query,
                    const char *operation, sq_arm_item_fn fn, void *ud, sq_err *err) {
  char what[1100], opbuf[128];
  snprintf(what, sizeof what, "list %s", path ? path : "");
  if(!operation)
    default_operation(path, "list", opbuf, sizeof opbuf);
  arm_page_send send = {a, operation ? operation : opbuf};
  sq_azure_pager p = {.what = what,
                      .origin = a->cloud.arm_endpoint,
                      .origin_name = "the ARM endpoint",
                      .max_pages = MAX_PAGES,
                      .max_items = a->o.max_list_items,
                      .max_url = LIST_URL_MAX,
                      .send = arm_page_get,
                      .send_ud = &send,
                      .item = fn,
                      .item_ud = ud};
  sq_buf url;
  sq_buf_init(&url, LIST_URL_MAX);
  sq_code rc = build_url(a, path, api, query, &url, err);
  if(!rc)
    rc = sq_azure_list_pages(&p, url.ptr, err);
  sq_buf_free(&url);
  return rc;
}
