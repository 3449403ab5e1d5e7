/* arm.c — shared Azure Resource Manager behaviour for every provider the
 * emulator serves: api-version checks, subscription / resource group checks,
 * RBAC on management actions, throttling by token buckets with the
 * x-ms-ratelimit-* headers, standard headers, and long-running operations
 * (azure-api.md §3). */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "emu.h"
#include "sqltde/log.h"

void emu_arm_headers(emu_call *c) {
  char corr[37];
  emu_guid(corr);
  emu_header(c, "x-ms-correlation-request-id", corr);
  char ts[32];
  sq_rfc3339(c->now_ms / 1000, ts, sizeof ts);
  emu_headerf(c, "x-ms-routing-request-id", "LOCALHOST:%s:%s", ts, corr);
}

/* ---- api-version ---- */

static int well_formed_api_version(const char *v) {
  /* YYYY-MM-DD with an optional -preview / -beta / -alpha suffix */
  if(strlen(v) < 10)
    return 0;
  for(int i = 0; i < 10; i++) {
    if(i == 4 || i == 7) {
      if(v[i] != '-')
        return 0;
    } else if(!isdigit((unsigned char)v[i])) {
      return 0;
    }
  }
  const char *rest = v + 10;
  return !*rest || !strcmp(rest, "-preview") || !strcmp(rest, "-beta") || !strcmp(rest, "-alpha") ||
         !strcmp(rest, "-privatepreview");
}

int emu_arm_check_api_version(emu_call *c, const char *resource_type) {
  const char *v = emu_query(c, "api-version");
  if(!v || !*v) {
    emu_arm_error(c, 400, "MissingApiVersionParameter",
                  "The api-version query parameter (?api-version=) is required for all requests.");
    return -1;
  }
  const char *const *list = c->route ? c->route->api_versions : NULL;
  char supported[1024] = "";
  size_t used = 0;
  for(const char *const *p = list; p && *p; p++) {
    int n = snprintf(supported + used, sizeof supported - used, "%s%s", used ? ", " : "", *p);
    if(n > 0 && (size_t)n < sizeof supported - used)
      used += (size_t)n;
  }
  if(!well_formed_api_version(v)) {
    emu_arm_error(c, 400, "InvalidApiVersionParameter",
                  "The api-version '%.64s' is invalid. The supported versions are '%s'.", v,
                  used ? supported : "yyyy-mm-dd[-preview]");
    return -1;
  }
  if(!list)
    return 0;
  for(const char *const *p = list; *p; p++)
    if(!strcmp(*p, v))
      return 0;
  emu_arm_error(c, 400, "NoRegisteredProviderFound",
                "No registered resource provider found for location 'global' and API version '%.64s' for type '%s'. "
                "The supported api-versions are '%s'.",
                v, resource_type ? resource_type : "the requested resource", supported);
  return -1;
}

/* ---- scope ---- */

int emu_subscription_tenant(emu *e, const char *sub, char out[EMU_ID_MAX]) {
  out[0] = '\0';
  return emu_sql_text(e, out, EMU_ID_MAX, "SELECT tenant FROM subscriptions WHERE id=?", sub, NULL);
}

int emu_arm_check_scope(emu_call *c, const char *sub, const char *rg) {
  if(!emu_is_guid(sub)) {
    emu_arm_error(c, 400, "InvalidSubscriptionId",
                  "The provided subscription identifier '%.100s' is malformed or invalid.", sub);
    return -1;
  }
  char tenant[EMU_ID_MAX];
  if(!emu_subscription_tenant(c->e, sub, tenant)) {
    emu_arm_error(c, 404, "SubscriptionNotFound", "The subscription '%.100s' could not be found.", sub);
    return -1;
  }
  if(c->tid[0] && strcasecmp(c->tid, tenant)) {
    emu_arm_error(c, 401, "InvalidAuthenticationTokenTenant",
                  "The access token is from the wrong issuer '%s'. It must match the tenant "
                  "'https://sts.windows.net/%s/' associated with this subscription. Please use the authority "
                  "(URL) 'https://login.windows.net/%s' to get the token.",
                  c->tid, tenant, tenant);
    return -1;
  }
  if(!rg)
    return 0;
  char one[2];
  if(!emu_sql_text(c->e, one, sizeof one, "SELECT 1 FROM resource_groups WHERE sub=? AND name=?", sub, rg, NULL)) {
    emu_arm_error(c, 404, "ResourceGroupNotFound", "Resource group '%.100s' could not be found.", rg);
    return -1;
  }
  return 0;
}

int emu_arm_authorize(emu_call *c, const char *scope, const char *action) {
  if(!c->e->set.arm_authorization || emu_rbac_allows(c->e, c->oid, scope, action, 0))
    return 0;
  emu_arm_error(c, 403, "AuthorizationFailed",
                "The client '%s' with object id '%s' does not have authorization to perform action '%s' over "
                "scope '%.600s' or the scope is invalid. If access was recently granted, please refresh your "
                "credentials.",
                c->appid[0] ? c->appid : c->oid, c->oid, action, scope);
  return -1;
}

/* ---- throttling: token buckets per subscription (refilled by the monotonic clock) ---- */

static const char *const kind_header[EMU_OP_KINDS] = {"x-ms-ratelimit-remaining-subscription-reads",
                                                      "x-ms-ratelimit-remaining-subscription-writes",
                                                      "x-ms-ratelimit-remaining-subscription-deletes"};
static const char *const kind_name[EMU_OP_KINDS] = {"Read", "Write", "Delete"};

int emu_arm_throttle(emu_call *c, const char *sub, int kind) {
  emu *e = c->e;
  const emu_bucket_cfg *cfg = &e->set.throttle[kind];
  emu_bucket *b = e->buckets;
  while(b && strcasecmp(b->sub, sub))
    b = b->next;
  int64_t now = sq_mono_ms();
  if(!b) {
    b = calloc(1, sizeof *b);
    if(!b)
      return 0;
    snprintf(b->sub, sizeof b->sub, "%s", sub);
    for(int i = 0; i < EMU_OP_KINDS; i++) {
      b->tokens[i] = e->set.throttle[i].burst;
      b->last_ms[i] = now;
    }
    b->next = e->buckets;
    e->buckets = b;
  }
  double t = b->tokens[kind] + (double)(now - b->last_ms[kind]) / 1000.0 * cfg->rate;
  if(t > cfg->burst)
    t = cfg->burst;
  b->last_ms[kind] = now;
  if(e->set.throttle_enabled && t < 1.0) {
    b->tokens[kind] = t;
    int retry = (int)ceil((1.0 - t) / cfg->rate);
    if(retry < 1)
      retry = 1;
    emu_headerf(c, "Retry-After", "%d", retry);
    emu_header(c, kind_header[kind], "0");
    emu_arm_error(c, 429, "TooManyRequests",
                  "The request is being throttled as the limit has been reached for operation type - %s_%s. "
                  "For more information, see - https://aka.ms/armthrottling",
                  kind_name[kind], "ObservationWindow_00:00:01");
    return -1;
  }
  if(e->set.throttle_enabled)
    t -= 1.0;
  b->tokens[kind] = t;
  emu_headerf(c, kind_header[kind], "%d", (int)floor(t < 0 ? 0 : t));
  if(kind == EMU_OP_READ)
    emu_headerf(c, "x-ms-ratelimit-remaining-subscription-global-reads", "%d", (int)floor((t < 0 ? 0 : t) * 15));
  return 0;
}

/* ---- long-running operations ---- */

static void replace_id(const char *tmpl, const char *id, char *out, size_t n) {
  const char *p = strstr(tmpl, "{id}");
  if(!p)
    snprintf(out, n, "%s", tmpl);
  else
    snprintf(out, n, "%.*s%s%s", (int)(p - tmpl), tmpl, id, p + 4);
}

void emu_fmt_time_ms(int64_t ms, char *out, size_t n) {
  char t[32];
  sq_rfc3339(ms / 1000, t, sizeof t);
  /* "2022-12-15T05:48:23.09Z"-style: add milliseconds before the Z */
  size_t l = strlen(t);
  if(l && t[l - 1] == 'Z')
    t[l - 1] = '\0';
  snprintf(out, n, "%s.%03dZ", t, (int)(ms % 1000));
}

sq_code emu_lro_start(emu_call *c, const char *kind, const char *resource_id, const char *sub,
                      const char *async_path, const char *location_path, json_t *input, json_t *body,
                      char id_out[37]) {
  /* The 202's x-ms-request-id equals the operation id, as in Azure SQL captures. */
  snprintf(id_out, 37, "%s", c->request_id);
  int64_t start = c->now_ms, done = c->now_ms + c->e->set.lro_delay_ms;
  char *in = input ? json_dumps(input, JSON_COMPACT) : NULL;
  json_decref(input);
  sqlite3_stmt *st = emu_sql(c->e, "INSERT INTO lro(id, kind, resource_id, sub, status, start_ms, done_ms, input)"
                                   " VALUES(?, ?, ?, ?, 'InProgress', ?, ?, ?)");
  int ok = 0;
  if(st) {
    sqlite3_bind_text(st, 1, id_out, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, resource_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, sub, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, start);
    sqlite3_bind_int64(st, 6, done);
    if(in)
      sqlite3_bind_text(st, 7, in, -1, SQLITE_STATIC);
    else
      sqlite3_bind_null(st, 7);
    ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
  }
  free(in);
  if(!ok) {
    json_decref(body);
    emu_arm_error(c, 500, "InternalServerError", "Could not record the operation.");
    return SQ_EIO;
  }
  const char *apiver = emu_query(c, "api-version");
  char base[128], p[1024];
  emu_base_url(c->e, "management.localhost", base, sizeof base);
  if(async_path) {
    replace_id(async_path, id_out, p, sizeof p);
    emu_headerf(c, "Azure-AsyncOperation", "%s%s?api-version=%s", base, p, apiver ? apiver : "");
  }
  if(location_path) {
    replace_id(location_path, id_out, p, sizeof p);
    emu_headerf(c, "Location", "%s%s?api-version=%s", base, p, apiver ? apiver : "");
  }
  emu_headerf(c, "Retry-After", "%lld", (long long)c->e->set.lro_retry_after_s);
  emu_reply_json(c, 202, body);
  return SQ_OK;
}

static const emu_lro_hook *hook_for(const char *kind) {
  for(int i = 0; emu_lro_hooks[i]; i++)
    if(!strcmp(emu_lro_hooks[i]->kind, kind))
      return emu_lro_hooks[i];
  return NULL;
}

void emu_lro_tick(emu *e) {
  int64_t now = emu_now_ms(e);
  for(int guard = 0; guard < 1000; guard++) {
    sqlite3_stmt *st = emu_sql(e, "SELECT id, kind, resource_id, sub, start_ms, done_ms, input FROM lro"
                                  " WHERE status='InProgress' AND done_ms<=? ORDER BY done_ms LIMIT 1");
    if(!st)
      return;
    sqlite3_bind_int64(st, 1, now);
    if(sqlite3_step(st) != SQLITE_ROW) {
      sqlite3_finalize(st);
      return;
    }
    emu_lro op;
    memset(&op, 0, sizeof op);
    snprintf(op.id, sizeof op.id, "%s", emu_col_text(st, 0));
    snprintf(op.kind, sizeof op.kind, "%s", emu_col_text(st, 1));
    snprintf(op.resource_id, sizeof op.resource_id, "%s", emu_col_text(st, 2));
    snprintf(op.sub, sizeof op.sub, "%s", emu_col_text(st, 3));
    op.start_ms = sqlite3_column_int64(st, 4);
    op.done_ms = sqlite3_column_int64(st, 5);
    op.input = sqlite3_column_type(st, 6) == SQLITE_TEXT ? json_loads(emu_col_text(st, 6), 0, NULL) : NULL;
    snprintf(op.status, sizeof op.status, "InProgress");
    sqlite3_finalize(st);
    char code[128] = "", msg[512] = "";
    json_t *result = NULL;
    const emu_lro_hook *h = hook_for(op.kind);
    int failed = h ? h->complete(e, &op, code, msg, &result) : 0;
    json_decref(op.input);
    char *res = result ? json_dumps(result, JSON_COMPACT) : NULL;
    json_decref(result);
    st = emu_sql(e, "UPDATE lro SET status=?, result=?, err_code=?, err_msg=? WHERE id=?");
    if(st) {
      sqlite3_bind_text(st, 1, failed ? "Failed" : "Succeeded", -1, SQLITE_STATIC);
      if(res)
        sqlite3_bind_text(st, 2, res, -1, SQLITE_STATIC);
      else
        sqlite3_bind_null(st, 2);
      sqlite3_bind_text(st, 3, failed ? (code[0] ? code : "InternalServerError") : "", -1, SQLITE_STATIC);
      sqlite3_bind_text(st, 4, failed ? (msg[0] ? msg : "The operation failed.") : "", -1, SQLITE_STATIC);
      sqlite3_bind_text(st, 5, op.id, -1, SQLITE_STATIC);
      sqlite3_step(st);
      sqlite3_finalize(st);
    }
    free(res);
  }
}

typedef struct lro_row {
  int found;
  char status[16];
  int64_t start_ms, done_ms;
  char *result, *err_code, *err_msg;
} lro_row;

static void lro_load(emu *e, const char *id, lro_row *r) {
  memset(r, 0, sizeof *r);
  sqlite3_stmt *st = emu_sql(e, "SELECT status, start_ms, done_ms, result, err_code, err_msg FROM lro WHERE id=?");
  if(!st)
    return;
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  if(sqlite3_step(st) == SQLITE_ROW) {
    r->found = 1;
    snprintf(r->status, sizeof r->status, "%s", emu_col_text(st, 0));
    r->start_ms = sqlite3_column_int64(st, 1);
    r->done_ms = sqlite3_column_int64(st, 2);
    r->result = sqlite3_column_type(st, 3) == SQLITE_TEXT ? strdup(emu_col_text(st, 3)) : NULL;
    r->err_code = strdup(emu_col_text(st, 4));
    r->err_msg = strdup(emu_col_text(st, 5));
  }
  sqlite3_finalize(st);
}

static void lro_row_free(lro_row *r) {
  free(r->result);
  free(r->err_code);
  free(r->err_msg);
}

void emu_lro_poll_async(emu_call *c, const char *id) {
  lro_row r;
  lro_load(c->e, id, &r);
  if(!r.found) {
    emu_arm_error(c, 404, "ResourceNotFound", "The operation '%.64s' was not found.", id);
    return;
  }
  char start[40], end[40];
  emu_fmt_time_ms(r.start_ms, start, sizeof start);
  json_t *b = json_pack("{s:s,s:s,s:s}", "name", id, "status", r.status, "startTime", start);
  if(!strcmp(r.status, "InProgress")) {
    emu_headerf(c, "Retry-After", "%lld", (long long)c->e->set.lro_retry_after_s);
  } else {
    emu_fmt_time_ms(r.done_ms, end, sizeof end);
    json_object_set_new(b, "endTime", json_string(end));
    if(!strcmp(r.status, "Failed"))
      json_object_set_new(b, "error", json_pack("{s:s,s:s}", "code", r.err_code, "message", r.err_msg));
  }
  lro_row_free(&r);
  emu_reply_json(c, 200, b);
}

void emu_lro_poll_location(emu_call *c, const char *id) {
  lro_row r;
  lro_load(c->e, id, &r);
  if(!r.found) {
    emu_arm_error(c, 404, "ResourceNotFound", "The operation '%.64s' was not found.", id);
    return;
  }
  if(!strcmp(r.status, "InProgress")) {
    /* keep polling the same URL */
    char base[128];
    emu_base_url(c->e, "management.localhost", base, sizeof base);
    emu_headerf(c, "Location", "%s%s%s%s", base, c->req->path, c->req->query && *c->req->query ? "?" : "",
                c->req->query ? c->req->query : "");
    emu_headerf(c, "Retry-After", "%lld", (long long)c->e->set.lro_retry_after_s);
    emu_reply_empty(c, 202);
  } else if(!strcmp(r.status, "Failed")) {
    emu_arm_error(c, strcmp(r.err_code, "InternalServerError") ? 400 : 500, r.err_code, "%s", r.err_msg);
  } else if(r.result) {
    emu_reply_json(c, 200, json_loads(r.result, 0, NULL));
  } else {
    emu_reply_empty(c, 204);
  }
  lro_row_free(&r);
}
