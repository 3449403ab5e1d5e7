/* dispatch.c — one request through the emulator: host -> family, faults,
 * route, family prelude (auth, api-version, throttling), handler, request
 * log. Also the response and error-shape helpers every module uses. */
#include <ctype.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "emu.h"
#include "sql.h"
#include "sqltde/jsonx.h"
#include "sqltde/log.h"

const char *emu_family_name(emu_family f) {
  switch(f) {
  case EMU_FAM_LOGIN: return "login";
  case EMU_FAM_ARM: return "arm";
  case EMU_FAM_KV: return "keyvault";
  case EMU_FAM_IMDS: return "imds";
  case EMU_FAM_CONTROL: return "control";
  default: return "none";
  }
}

/* ---- small utilities ---- */

void emu_rand_hex(char *out, size_t nbytes) {
  static const char hex[] = "0123456789abcdef";
  unsigned char b[64];
  if(nbytes > sizeof b)
    nbytes = sizeof b;
  if(RAND_bytes(b, (int)nbytes) != 1)
    memset(b, 0x5a, nbytes); /* unreachable in practice; ids only need uniqueness */
  for(size_t i = 0; i < nbytes; i++) {
    out[2 * i] = hex[b[i] >> 4];
    out[2 * i + 1] = hex[b[i] & 15];
  }
  out[2 * nbytes] = '\0';
}

void emu_guid(char out[37]) {
  char h[33];
  emu_rand_hex(h, 16);
  h[12] = '4';                           /* version 4 */
  h[16] = "89ab"[(h[16] - '0') & 3];     /* variant 10xx */
  snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8, h + 12, h + 16, h + 20);
}

int emu_is_guid(const char *s) {
  if(!s || strlen(s) != 36)
    return 0;
  for(int i = 0; i < 36; i++) {
    if(i == 8 || i == 13 || i == 18 || i == 23) {
      if(s[i] != '-')
        return 0;
    } else if(!isxdigit((unsigned char)s[i])) {
      return 0;
    }
  }
  return 1;
}

void emu_base_url(const emu *e, const char *host, char *out, size_t outlen) {
  snprintf(out, outlen, "https://%s:%d", host, e->port);
}

const char *emu_header_in(const emu_call *c, const char *name) {
  return c->req->header ? c->req->header(c->req, name) : NULL;
}

/* ---- responses ---- */

void emu_resp_init(sq_httpd_resp *r) {
  memset(r, 0, sizeof *r);
  r->status = 200;
  snprintf(r->content_type, sizeof r->content_type, "application/json");
  sq_buf_init(&r->headers, 64 * 1024);
  sq_buf_init(&r->body, 32u << 20);
}

void emu_resp_free(sq_httpd_resp *r) {
  sq_buf_free(&r->headers);
  sq_buf_free_wipe(&r->body);
}

void emu_header(emu_call *c, const char *name, const char *value) {
  /* refuses CR/LF and control characters: no header injection */
  (void)sq_httpd_resp_header(c->resp, name, value);
}

void emu_headerf(emu_call *c, const char *name, const char *fmt, ...) {
  char v[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(v, sizeof v, fmt, ap);
  va_end(ap);
  emu_header(c, name, v);
}

void emu_reply_json(emu_call *c, int status, json_t *v) {
  c->resp->status = status;
  sq_buf_reset(&c->resp->body);
  snprintf(c->resp->content_type, sizeof c->resp->content_type, "application/json; charset=utf-8");
  if(v) {
    char *s = sq_json_dump(v);
    if(s) {
      if(sq_buf_adds(&c->resp->body, s)) {
        c->resp->status = 500;
        sq_buf_reset(&c->resp->body);
      }
      free(s);
    }
    json_decref(v);
  }
}

void emu_reply_empty(emu_call *c, int status) {
  c->resp->status = status;
  sq_buf_reset(&c->resp->body);
}

static void vfmt(char *out, size_t n, const char *fmt, va_list ap) { vsnprintf(out, n, fmt, ap); }

void emu_arm_error(emu_call *c, int status, const char *code, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vfmt(msg, sizeof msg, fmt, ap);
  va_end(ap);
  emu_reply_json(c, status, json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg));
}

void emu_kv_error(emu_call *c, int status, const char *code, const char *inner, const char *fmt,
                  ...) {
  char msg[1536];
  va_list ap;
  va_start(ap, fmt);
  vfmt(msg, sizeof msg, fmt, ap);
  va_end(ap);
  json_t *err = json_pack("{s:s,s:s}", "code", code, "message", msg);
  if(inner)
    json_object_set_new(err, "innererror", json_pack("{s:s}", "code", inner));
  emu_reply_json(c, status, json_pack("{s:o}", "error", err));
}

static json_t *aad_body(emu_call *c, const char *error, int aadsts, const char *msg) {
  char ts[32], corr[37], desc[1536], uri[256];
  sq_rfc3339(c->now_ms / 1000, ts, sizeof ts);
  /* Entra's timestamp format: "2024-01-01 12:00:00Z" */
  if(strlen(ts) > 10)
    ts[10] = ' ';
  emu_guid(corr);
  if(aadsts)
    snprintf(desc, sizeof desc, "AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s", aadsts,
             msg, c->request_id, corr, ts);
  else
    snprintf(desc, sizeof desc, "%s", msg);
  json_t *b = json_pack("{s:s,s:s,s:s,s:s,s:s}", "error", error, "error_description", desc,
                        "timestamp", ts, "trace_id", c->request_id, "correlation_id", corr);
  json_t *codes = json_array();
  if(aadsts) {
    json_array_append_new(codes, json_integer(aadsts));
    char base[128];
    emu_base_url(c->e, "login.localhost", base, sizeof base);
    snprintf(uri, sizeof uri, "%s/error?code=%d", base, aadsts);
    json_object_set_new(b, "error_uri", json_string(uri));
  }
  json_object_set_new(b, "error_codes", codes);
  return b;
}

void emu_aad_error(emu_call *c, int status, const char *error, int aadsts, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vfmt(msg, sizeof msg, fmt, ap);
  va_end(ap);
  emu_reply_json(c, status, aad_body(c, error, aadsts, msg));
}

void emu_error(emu_call *c, int status, const char *code, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vfmt(msg, sizeof msg, fmt, ap);
  va_end(ap);
  switch(c->fam) {
  case EMU_FAM_LOGIN:
    emu_reply_json(c, status, aad_body(c, code, 0, msg));
    break;
  case EMU_FAM_IMDS:
    emu_reply_json(c, status, json_pack("{s:s,s:s}", "error", code, "error_description", msg));
    break;
  case EMU_FAM_KV:
    emu_kv_error(c, status, code, NULL, "%s", msg);
    break;
  default:
    emu_arm_error(c, status, code, "%s", msg);
    break;
  }
}

static int is_json_ct(const char *ct) {
  if(!ct || !*ct)
    return 0;
  size_t n = strcspn(ct, ";");
  while(n && ct[n - 1] == ' ')
    n--;
  return (n == 16 && !strncasecmp(ct, "application/json", 16)) ||
         (n == 22 && !strncasecmp(ct, "application/json-patch", 22)) ||
         (n == 25 && !strncasecmp(ct, "application/merge-patch+json", 25));
}

int emu_body_json(emu_call *c, int allow_empty, json_t **out) {
  *out = NULL;
  const sq_httpd_req *r = c->req;
  if(!r->body_len) {
    if(allow_empty) {
      *out = json_object();
      return 0;
    }
    if(c->fam == EMU_FAM_ARM)
      emu_arm_error(c, 400, "InvalidRequestContent",
                    "The request content was invalid and could not be deserialized: the body is empty.");
    else
      emu_error(c, 400, "BadParameter", "The request body is empty; a JSON object is required.");
    return -1;
  }
  if(!is_json_ct(r->content_type)) {
    if(c->fam == EMU_FAM_ARM)
      emu_arm_error(c, 415, "UnsupportedMediaType",
                    "The content media type '%s' is not supported. Only 'application/json' is supported.",
                    r->content_type && *r->content_type ? r->content_type : "(none)");
    else
      emu_error(c, 415, "BadParameter",
                "The content type '%s' is not supported; send application/json.",
                r->content_type && *r->content_type ? r->content_type : "(none)");
    return -1;
  }
  sq_err err;
  sq_err_clear(&err);
  json_t *v = NULL;
  if(sq_json_parse(r->body, r->body_len, "request body", &v, &err) || !json_is_object(v)) {
    const char *why = v ? "request body: a JSON object is required" : err.message;
    json_decref(v);
    if(c->fam == EMU_FAM_ARM)
      emu_arm_error(c, 400, "InvalidRequestContent",
                    "The request content was invalid and could not be deserialized: '%s'.", why);
    else
      emu_error(c, 400, "BadParameter", "Invalid JSON in the request body: %s", why);
    return -1;
  }
  *out = v;
  return 0;
}

/* ---- classification ---- */

static int valid_vault_name(const char *s, size_t n) {
  if(n < 3 || n > 24)
    return 0;
  for(size_t i = 0; i < n; i++)
    if(!isalnum((unsigned char)s[i]) && s[i] != '-')
      return 0;
  return 1;
}

static emu_family classify(emu_call *c) {
  const char *host = c->req->host ? c->req->host : "";
  const char *path = c->req->path ? c->req->path : "";
  if(!strncmp(path, "/_emulator/", 11) || !strcmp(path, "/_emulator") ||
     !strcmp(host, "control.localhost"))
    return EMU_FAM_CONTROL;
  if(!strncmp(path, "/metadata/identity/", 19))
    return EMU_FAM_IMDS;
  if(!strcmp(host, "login.localhost"))
    return EMU_FAM_LOGIN;
  if(!strcmp(host, "management.localhost"))
    return EMU_FAM_ARM;
  static const char suffix[] = ".vault.localhost";
  size_t hl = strlen(host), sl = sizeof suffix - 1;
  if(hl > sl && !strcmp(host + hl - sl, suffix) && valid_vault_name(host, hl - sl)) {
    memcpy(c->vault, host, hl - sl);
    c->vault[hl - sl] = '\0';
    return EMU_FAM_KV;
  }
  return EMU_FAM_NONE;
}

/* ---- family preludes ---- */

static const char *const kv_versions[] = {"7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6",
                                          "7.6-preview.1", "7.6-preview.2", "2025-07-01", NULL};

static int kv_prelude(emu_call *c) {
  const char *v = emu_query(c, "api-version");
  if(!v || !*v) {
    emu_kv_error(c, 400, "BadParameter", NULL,
                 "The request URI is missing the required query parameter 'api-version'.");
    return -1;
  }
  int ok = 0;
  for(int i = 0; kv_versions[i]; i++)
    if(!strcmp(v, kv_versions[i]))
      ok = 1;
  if(!ok) {
    emu_kv_error(c, 400, "BadParameter", NULL,
                 "The specified version (%s) is not recognized. Consider using the latest supported version (2025-07-01).",
                 v);
    return -1;
  }
  emu_vault vault;
  if(!emu_vault_get(c->e, c->vault, &vault)) {
    /* In Azure an unknown vault name does not resolve (DNS); answering keeps tests readable. */
    emu_kv_error(c, 404, "VaultNotFound", NULL,
                 "No vault named '%s' exists in this emulator (in Azure the name would not resolve).",
                 c->vault);
    return -1;
  }
  emu_header(c, "x-ms-keyvault-region", vault.region);
  emu_header(c, "x-ms-keyvault-service-version", "1.9.2025.0");
  if(c->route->flags & EMU_R_AUTH) {
    char chal[512], base[128];
    emu_base_url(c->e, "login.localhost", base, sizeof base);
    snprintf(chal, sizeof chal, "Bearer authorization=\"%s/%s\", resource=\"https://vault.localhost\"",
             base, vault.tenant);
    emu_tok_status ts = emu_bearer_verify(c, EMU_AUD_KV, NULL);
    if(ts == EMU_TOK_OK && strcasecmp(c->tid, vault.tenant)) {
      emu_header(c, "WWW-Authenticate", chal);
      emu_kv_error(c, 401, "Unauthorized", NULL,
                   "AKV10032: Invalid issuer. Expected one of https://sts.windows.net/%s/, found a token for tenant %s.",
                   vault.tenant, c->tid);
      c->oid[0] = '\0';
      return -1;
    }
    if(ts != EMU_TOK_OK) {
      emu_header(c, "WWW-Authenticate", chal);
      const char *m = "AKV10000: Request is missing a Bearer or PoP token.";
      if(ts == EMU_TOK_EXPIRED)
        m = "AKV10022: Invalid token: the token has expired.";
      else if(ts == EMU_TOK_NOTYET)
        m = "AKV10022: Invalid token: the token is not yet valid.";
      else if(ts == EMU_TOK_AUDIENCE)
        m = "AKV10022: Invalid audience. Expected https://vault.azure.net.";
      else if(ts == EMU_TOK_BADSIG || ts == EMU_TOK_MALFORMED || ts == EMU_TOK_ISSUER)
        m = "AKV10011: Invalid token: the signature or format is not valid.";
      emu_kv_error(c, 401, "Unauthorized", NULL, "%s", m);
      return -1;
    }
  }
  return 0;
}

static int arm_prelude(emu_call *c) {
  emu_arm_headers(c);
  if(c->route->flags & EMU_R_AUTH) {
    emu_tok_status ts = emu_bearer_verify(c, EMU_AUD_ARM, NULL);
    if(ts != EMU_TOK_OK) {
      const char *code = "InvalidAuthenticationToken", *msg = "The access token is invalid.";
      char m[256];
      switch(ts) {
      case EMU_TOK_MISSING:
        code = "AuthenticationFailed";
        msg = "Authentication failed. The 'Authorization' header is missing.";
        break;
      case EMU_TOK_EXPIRED:
        code = "ExpiredAuthenticationToken";
        msg = "The access token has expired. Acquire a new access token and send the request again.";
        break;
      case EMU_TOK_AUDIENCE:
        code = "InvalidAuthenticationTokenAudience";
        msg = "The access token has been obtained for wrong audience or resource. It should exactly match "
              "with one of the allowed audiences 'https://management.core.windows.net/','https://management.azure.com/'.";
        break;
      case EMU_TOK_NOTYET:
        msg = "The access token is not yet valid.";
        break;
      default:
        break;
      }
      snprintf(m, sizeof m, "Bearer authorization_uri=\"https://login.localhost:%d/\", error=\"invalid_token\", "
                            "error_description=\"The authentication failed.\"", c->e->port);
      emu_header(c, "WWW-Authenticate", m);
      emu_arm_error(c, 401, code, "%s", msg);
      return -1;
    }
  }
  if(!(c->route->flags & EMU_R_NOAPIVER) && emu_arm_check_api_version(c, NULL))
    return -1;
  const char *sub = emu_var(c, "sub");
  char scope_sub[EMU_ID_MAX];
  const char *scope = emu_var(c, "scope");
  if(!sub && scope && !strncasecmp(scope, "/subscriptions/", 15)) {
    snprintf(scope_sub, sizeof scope_sub, "%.*s", (int)strcspn(scope + 15, "/"), scope + 15);
    sub = scope_sub;
  }
  if(sub && (c->route->flags & (EMU_R_READ | EMU_R_WRITE | EMU_R_DELETE))) {
    int kind = (c->route->flags & EMU_R_WRITE) ? EMU_OP_WRITE
               : (c->route->flags & EMU_R_DELETE) ? EMU_OP_DELETE
                                                  : EMU_OP_READ;
    if(emu_arm_throttle(c, sub, kind))
      return -1;
  }
  return 0;
}

static void not_found(emu_call *c) {
  const char *path = c->req->path ? c->req->path : "";
  switch(c->fam) {
  case EMU_FAM_ARM:
    emu_arm_error(c, 404, "NotFound", "No HTTP resource was found that matches the request URI '%.300s'.", path);
    break;
  case EMU_FAM_KV:
    emu_kv_error(c, 404, "NotFound", NULL, "The requested path '%.300s' does not exist in Key Vault.", path);
    break;
  case EMU_FAM_LOGIN:
    emu_aad_error(c, 404, "invalid_request", 90002, "No endpoint at '%.300s'.", path);
    break;
  default:
    emu_error(c, 404, "NotFound", "No endpoint at '%.300s'.", path);
    break;
  }
}

void emu_handle(emu *e, const sq_httpd_req *req, sq_httpd_resp *resp, int *latency_ms) {
  emu_call *c = calloc(1, sizeof *c);
  *latency_ms = 0;
  if(!c) {
    resp->status = 500;
    return;
  }
  c->e = e;
  c->req = req;
  c->resp = resp;
  emu_guid(c->request_id);
  pthread_mutex_lock(&e->mu);
  c->now_ms = emu_now_ms(e);
  emu_lro_tick(e);
  emu_kv_tick(e);
  emu_sql_tick(e);
  c->fam = classify(c);
  emu_header(c, "x-ms-request-id", c->request_id);
  if(c->fam == EMU_FAM_NONE) {
    emu_arm_error(c, 404, "UnknownHost",
                  "The emulator serves login.localhost, management.localhost, NAME.vault.localhost, "
                  "/metadata/identity/oauth2/token and /_emulator/; host '%.200s' is none of them.",
                  req->host ? req->host : "");
    goto log;
  }
  sq_code rc = emu_path_split(c, req->path ? req->path : "");
  if(!rc)
    rc = emu_query_parse(c, req->query);
  if(rc == SQ_ETOOBIG) {
    emu_error(c, 414, c->fam == EMU_FAM_ARM ? "RequestUriTooLong" : "BadParameter",
              "The request URI is too long.");
    goto log;
  }
  if(rc) {
    emu_error(c, 400, c->fam == EMU_FAM_ARM ? "InvalidRequestUri" : "BadParameter",
              "The request URI is malformed (bad percent-encoding).");
    goto log;
  }
  if(req->body_len > EMU_MAX_BODY) {
    emu_error(c, 413, c->fam == EMU_FAM_ARM ? "RequestEntityTooLarge" : "BadParameter",
              "The request body is larger than %u bytes.", EMU_MAX_BODY);
    goto log;
  }
  if(c->fam != EMU_FAM_CONTROL) {
    emu_fault_hit hit;
    if(emu_fault_check(c, &hit)) {
      if(hit.kind == EMU_FAULT_DROP) {
        resp->drop = 1;
        resp->status = 0;
        goto log;
      }
      if(hit.kind == EMU_FAULT_STATUS) {
        if(hit.retry_after_s > 0)
          emu_headerf(c, "Retry-After", "%d", hit.retry_after_s);
        if(c->fam == EMU_FAM_ARM)
          emu_arm_headers(c);
        const char *code = hit.status == 429 ? (c->fam == EMU_FAM_KV ? "Throttled" : "TooManyRequests")
                           : hit.status == 503 ? "ServiceUnavailable"
                                               : "InternalServerError";
        if(c->fam == EMU_FAM_LOGIN)
          emu_aad_error(c, hit.status, hit.status == 429 ? "temporarily_unavailable" : "server_error",
                        hit.status == 429 ? 50196 : 90033, "Injected fault (%s).", hit.id);
        else
          emu_error(c, hit.status, code, "Injected fault %s: the service answered %d.", hit.id, hit.status);
        goto log;
      }
      if(hit.kind == EMU_FAULT_LATENCY)
        c->latency_ms = hit.latency_ms;
    }
  }
  emu_match_result m = emu_route_find(c, c->fam, req->method ? req->method : "");
  if(m == EMU_MATCH_NONE) {
    not_found(c);
    goto log;
  }
  if(m == EMU_MATCH_METHOD) {
    emu_error(c, 405, "MethodNotAllowed", "The HTTP method '%.16s' is not supported for this path.",
              req->method ? req->method : "");
    goto log;
  }
  if(c->fam == EMU_FAM_KV && kv_prelude(c))
    goto log;
  if(c->fam == EMU_FAM_ARM && arm_prelude(c))
    goto log;
  c->route->fn(c);
log:
  emu_reqlog_add(c);
  pthread_mutex_unlock(&e->mu);
  *latency_ms = c->latency_ms;
  free(c);
}
