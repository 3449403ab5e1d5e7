/* control.c — the test-control API under /_emulator/ (any host, also
 * control.localhost): injected faults, permission revocation, the virtual
 * clock, settings, runtime seeding, external token issuers, test tokens and
 * the request log. No authentication: the emulator binds to loopback and is
 * a test tool. Control requests themselves are not logged. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "emu.h"
#include "sqltde/jsonx.h"
#include "sqltde/log.h"

/* ---- faults ---- */

static int host_match(const char *pat, const char *host) {
  if(!*pat)
    return 1;
  if(pat[0] == '*' && pat[1] == '.') {
    size_t pl = strlen(pat + 1), hl = strlen(host);
    return hl > pl && !strcasecmp(host + hl - pl, pat + 1);
  }
  return !strcasecmp(pat, host);
}

int emu_region_is_down(emu *e, const char *region) {
  sqlite3_stmt *st = emu_sql(e, "SELECT 1 FROM faults WHERE kind='regionDown' AND region=?");
  if(!st)
    return 0;
  sqlite3_bind_text(st, 1, region, -1, SQLITE_STATIC);
  int r = sqlite3_step(st) == SQLITE_ROW;
  sqlite3_finalize(st);
  return r;
}

int emu_fault_revoked(emu *e, const char *vault, const char *oid) {
  sqlite3_stmt *st = emu_sql(e, "SELECT 1 FROM faults WHERE kind='revoke' AND vault=? AND object_id=?");
  if(!st)
    return 0;
  sqlite3_bind_text(st, 1, vault, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, oid, -1, SQLITE_STATIC);
  int r = sqlite3_step(st) == SQLITE_ROW;
  sqlite3_finalize(st);
  return r;
}

int emu_fault_check(emu_call *c, emu_fault_hit *hit) {
  memset(hit, 0, sizeof *hit);
  sqlite3_stmt *st = emu_sql(c->e, "SELECT id, kind, host, path_prefix, method, vault, region, status, retry_after,"
                                   " latency_ms, remaining FROM faults WHERE kind != 'revoke' AND remaining != 0"
                                   " ORDER BY created_ms, rowid");
  if(!st)
    return 0;
  const char *host = c->req->host ? c->req->host : "", *path = c->req->path ? c->req->path : "";
  const char *method = c->req->method ? c->req->method : "";
  char vault_region[EMU_ID_MAX] = "";
  emu_vault v;
  if(c->fam == EMU_FAM_KV && emu_vault_get(c->e, c->vault, &v))
    snprintf(vault_region, sizeof vault_region, "%s", v.region);
  char fired[16][40];
  int nfired = 0, found = 0;
  while(sqlite3_step(st) == SQLITE_ROW) {
    const char *kind = emu_col_text(st, 1);
    int match = 0;
    if(!strcmp(kind, "vaultDown"))
      match = c->fam == EMU_FAM_KV && !strcasecmp(emu_col_text(st, 5), c->vault);
    else if(!strcmp(kind, "regionDown"))
      match = c->fam == EMU_FAM_KV && vault_region[0] && !strcasecmp(emu_col_text(st, 6), vault_region);
    else
      match = host_match(emu_col_text(st, 2), host) && !strncmp(path, emu_col_text(st, 3), strlen(emu_col_text(st, 3))) &&
              (!*emu_col_text(st, 4) || !strcasecmp(emu_col_text(st, 4), method));
    if(!match)
      continue;
    if(nfired < 16)
      snprintf(fired[nfired++], 40, "%s", emu_col_text(st, 0));
    if(!strcmp(kind, "latency")) {
      hit->latency_ms += sqlite3_column_int(st, 9);
      if(hit->kind == EMU_FAULT_NONE)
        hit->kind = EMU_FAULT_LATENCY;
      snprintf(hit->id, sizeof hit->id, "%s", emu_col_text(st, 0));
      found = 1;
      continue;
    }
    int status = sqlite3_column_int(st, 7);
    if(!strcmp(kind, "drop") || ((!strcmp(kind, "vaultDown") || !strcmp(kind, "regionDown")) && !status)) {
      hit->kind = EMU_FAULT_DROP;
    } else {
      hit->kind = EMU_FAULT_STATUS;
      hit->status = status ? status : 503;
      hit->retry_after_s = sqlite3_column_int(st, 8);
    }
    snprintf(hit->id, sizeof hit->id, "%s", emu_col_text(st, 0));
    snprintf(c->note, sizeof c->note, "fault:%s:%s", kind, hit->id);
    found = 1;
    break;
  }
  sqlite3_finalize(st);
  if(hit->kind == EMU_FAULT_LATENCY)
    snprintf(c->note, sizeof c->note, "fault:latency:%dms", hit->latency_ms);
  for(int i = 0; i < nfired; i++) {
    st = emu_sql(c->e, "UPDATE faults SET fired = fired + 1,"
                       " remaining = CASE WHEN remaining > 0 THEN remaining - 1 ELSE remaining END WHERE id=?");
    if(st) {
      sqlite3_bind_text(st, 1, fired[i], -1, SQLITE_STATIC);
      sqlite3_step(st);
      sqlite3_finalize(st);
    }
  }
  return found;
}

static json_t *fault_row_json(sqlite3_stmt *st) {
  json_t *f = json_pack("{s:s,s:s,s:i,s:i,s:i,s:i,s:i}", "id", emu_col_text(st, 0), "kind", emu_col_text(st, 1),
                        "status", sqlite3_column_int(st, 7), "retryAfter", sqlite3_column_int(st, 8), "latencyMs",
                        sqlite3_column_int(st, 9), "remaining", sqlite3_column_int(st, 10), "fired",
                        sqlite3_column_int(st, 11));
  static const char *const names[] = {NULL, NULL, "host", "pathPrefix", "method", "vault", "region", NULL,
                                      NULL, NULL, NULL,   NULL, "objectId"};
  for(int i = 2; i <= 12; i++)
    if(names[i] && *emu_col_text(st, i))
      json_object_set_new(f, names[i], json_string(emu_col_text(st, i)));
  return f;
}

#define FAULT_COLS "id, kind, host, path_prefix, method, vault, region, status, retry_after, latency_ms, remaining, fired, object_id"

static void h_faults_list(emu_call *c) {
  sqlite3_stmt *st = emu_sql(c->e, "SELECT " FAULT_COLS " FROM faults ORDER BY created_ms, rowid");
  json_t *a = json_array();
  while(st && sqlite3_step(st) == SQLITE_ROW)
    json_array_append_new(a, fault_row_json(st));
  sqlite3_finalize(st);
  emu_reply_json(c, 200, json_pack("{s:o}", "value", a));
}

static int str_field(emu_call *c, json_t *b, const char *k, char *out, size_t n) {
  json_t *v = json_object_get(b, k);
  out[0] = '\0';
  if(!v)
    return 0;
  if(!json_is_string(v) || strlen(json_string_value(v)) >= n) {
    emu_error(c, 400, "BadRequest", "'%s' must be a string shorter than %zu characters.", k, n);
    return -1;
  }
  snprintf(out, n, "%s", json_string_value(v));
  return 0;
}

static int int_field(emu_call *c, json_t *b, const char *k, int lo, int hi, int *out) {
  json_t *v = json_object_get(b, k);
  if(!v)
    return 0;
  if(!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
    emu_error(c, 400, "BadRequest", "'%s' must be an integer in %d..%d.", k, lo, hi);
    return -1;
  }
  *out = (int)json_integer_value(v);
  return 0;
}

static void add_fault(emu_call *c, json_t *b, const char *forced_kind) {
  char kind[32], host[256], prefix[1024], method[16], vault[EMU_ID_MAX], region[EMU_ID_MAX], oid[EMU_ID_MAX];
  int status = 0, retry = 0, latency = 0, count = -1;
  if(str_field(c, b, "kind", kind, sizeof kind) || str_field(c, b, "host", host, sizeof host) ||
     str_field(c, b, "pathPrefix", prefix, sizeof prefix) || str_field(c, b, "method", method, sizeof method) ||
     str_field(c, b, "vault", vault, sizeof vault) || str_field(c, b, "region", region, sizeof region) ||
     str_field(c, b, "objectId", oid, sizeof oid) || int_field(c, b, "status", 0, 599, &status) ||
     int_field(c, b, "retryAfter", 0, 3600, &retry) || int_field(c, b, "latencyMs", 0, 600000, &latency) ||
     int_field(c, b, "count", 1, 1000000, &count))
    return;
  if(forced_kind)
    snprintf(kind, sizeof kind, "%s", forced_kind);
  const char *why = NULL;
  if(!strcmp(kind, "status")) {
    if(status < 400)
      why = "a status fault needs 'status' >= 400 (e.g. 429, 500, 503)";
  } else if(!strcmp(kind, "latency")) {
    if(latency <= 0)
      why = "a latency fault needs 'latencyMs' > 0";
  } else if(!strcmp(kind, "vaultDown")) {
    if(!vault[0])
      why = "vaultDown needs 'vault'";
  } else if(!strcmp(kind, "regionDown")) {
    if(!region[0])
      why = "regionDown needs 'region'";
  } else if(!strcmp(kind, "revoke")) {
    if(!vault[0] || !oid[0])
      why = "revoke needs 'vault' and 'objectId'";
  } else if(strcmp(kind, "drop")) {
    why = "kind must be one of status, drop, latency, vaultDown, regionDown, revoke";
  }
  if(status && status < 400)
    why = "'status' must be >= 400";
  if(why) {
    emu_error(c, 400, "BadRequest", "%s.", why);
    return;
  }
  char id[37];
  emu_guid(id);
  sqlite3_stmt *st = emu_sql(c->e, "INSERT INTO faults(id, kind, host, path_prefix, method, vault, region, object_id,"
                                   " status, retry_after, latency_ms, remaining, created_ms) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)");
  if(!st) {
    emu_error(c, 500, "InternalError", "State error.");
    return;
  }
  const char *vals[] = {id, kind, host, prefix, method, vault, region, oid};
  for(int i = 0; i < 8; i++)
    sqlite3_bind_text(st, i + 1, vals[i], -1, SQLITE_TRANSIENT);
  sqlite3_bind_int(st, 9, status);
  sqlite3_bind_int(st, 10, retry);
  sqlite3_bind_int(st, 11, latency);
  sqlite3_bind_int(st, 12, count);
  sqlite3_bind_int64(st, 13, c->now_ms);
  int ok = sqlite3_step(st) == SQLITE_DONE;
  sqlite3_finalize(st);
  if(!ok) {
    emu_error(c, 500, "InternalError", "State error.");
    return;
  }
  st = emu_sql(c->e, "SELECT " FAULT_COLS " FROM faults WHERE id=?");
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  json_t *f = sqlite3_step(st) == SQLITE_ROW ? fault_row_json(st) : json_object();
  sqlite3_finalize(st);
  SQ_INFO("emulator", "fault %s added: %s", id, kind);
  emu_reply_json(c, 201, f);
}

static void h_faults_add(emu_call *c) {
  json_t *b;
  if(emu_body_json(c, 0, &b))
    return;
  add_fault(c, b, NULL);
  json_decref(b);
}

static void h_faults_clear(emu_call *c) {
  emu_exec(c->e, "DELETE FROM faults", NULL);
  emu_reply_empty(c, 204);
}

static void h_fault_delete(emu_call *c) {
  sqlite3_stmt *st = emu_sql(c->e, "DELETE FROM faults WHERE id=?");
  sqlite3_bind_text(st, 1, emu_var(c, "id"), -1, SQLITE_STATIC);
  sqlite3_step(st);
  sqlite3_finalize(st);
  if(sqlite3_changes(c->e->db))
    emu_reply_empty(c, 204);
  else
    emu_error(c, 404, "NotFound", "No fault with id '%.64s'.", emu_var(c, "id"));
}

static void h_revoke(emu_call *c) {
  json_t *b;
  if(emu_body_json(c, 0, &b))
    return;
  add_fault(c, b, "revoke");
  json_decref(b);
}

static void h_restore_perm(emu_call *c) {
  json_t *b;
  if(emu_body_json(c, 0, &b))
    return;
  const char *vault = sq_json_str(b, "vault"), *oid = sq_json_str(b, "objectId");
  if(!vault || !oid) {
    emu_error(c, 400, "BadRequest", "'vault' and 'objectId' are required.");
  } else {
    sqlite3_stmt *st = emu_sql(c->e, "DELETE FROM faults WHERE kind='revoke' AND vault=? AND object_id=?");
    sqlite3_bind_text(st, 1, vault, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, oid, -1, SQLITE_STATIC);
    sqlite3_step(st);
    sqlite3_finalize(st);
    emu_reply_json(c, 200, json_pack("{s:i}", "restored", sqlite3_changes(c->e->db)));
  }
  json_decref(b);
}

/* ---- request log ---- */

void emu_reqlog_add(emu_call *c) {
  if(c->fam == EMU_FAM_CONTROL)
    return;
  sqlite3_stmt *st = emu_sql(c->e, "INSERT INTO request_log(ts_ms, method, host, path, query, status, oid, family, note)"
                                   " VALUES(?,?,?,?,?,?,?,?,?)");
  if(!st)
    return;
  const sq_httpd_req *r = c->req;
  sqlite3_bind_int64(st, 1, c->now_ms);
  sqlite3_bind_text(st, 2, r->method ? r->method : "", -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, r->host ? r->host : "", -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, r->path ? r->path : "", -1, SQLITE_STATIC);
  /* query strings of these APIs carry no secrets (tokens travel in headers and bodies) */
  sqlite3_bind_text(st, 5, r->query ? r->query : "", -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 6, c->resp->drop ? 0 : c->resp->status);
  sqlite3_bind_text(st, 7, c->oid, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 8, emu_family_name(c->fam), -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 9, c->note, -1, SQLITE_STATIC);
  sqlite3_step(st);
  sqlite3_finalize(st);
  if((++c->e->seq % 1000) == 0)
    emu_exec(c->e, "DELETE FROM request_log WHERE seq <= (SELECT MAX(seq) FROM request_log) - 100000", NULL);
}

static void h_requests(emu_call *c) {
  const char *since = emu_query(c, "since"), *host = emu_query(c, "host"), *prefix = emu_query(c, "pathPrefix");
  const char *method = emu_query(c, "method"), *lim = emu_query(c, "limit");
  long limit = lim ? strtol(lim, NULL, 10) : 1000;
  if(limit < 1 || limit > 10000)
    limit = 1000;
  sqlite3_stmt *st = emu_sql(c->e, "SELECT seq, ts_ms, method, host, path, query, status, oid, family, note"
                                   " FROM request_log WHERE seq > ? AND (? = '' OR host = ?)"
                                   " AND substr(path, 1, length(?)) = ? AND (? = '' OR method = ?)"
                                   " ORDER BY seq LIMIT ?");
  if(!st) {
    emu_error(c, 500, "InternalError", "State error.");
    return;
  }
  sqlite3_bind_int64(st, 1, since ? strtoll(since, NULL, 10) : 0);
  sqlite3_bind_text(st, 2, host ? host : "", -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, host ? host : "", -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, prefix ? prefix : "", -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 5, prefix ? prefix : "", -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 6, method ? method : "", -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 7, method ? method : "", -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 8, limit);
  json_t *a = json_array();
  long long last = since ? strtoll(since, NULL, 10) : 0;
  while(sqlite3_step(st) == SQLITE_ROW) {
    char t[32];
    int64_t ms = sqlite3_column_int64(st, 1);
    sq_rfc3339(ms / 1000, t, sizeof t);
    last = sqlite3_column_int64(st, 0);
    json_array_append_new(
        a, json_pack("{s:I,s:s,s:I,s:s,s:s,s:s,s:s,s:i,s:s,s:s,s:s}", "seq", (json_int_t)last, "time", t, "timeMs",
                     (json_int_t)ms, "method", emu_col_text(st, 2), "host", emu_col_text(st, 3), "path",
                     emu_col_text(st, 4), "query", emu_col_text(st, 5), "status", sqlite3_column_int(st, 6),
                     "callerOid", emu_col_text(st, 7), "family", emu_col_text(st, 8), "note", emu_col_text(st, 9)));
  }
  sqlite3_finalize(st);
  emu_reply_json(c, 200, json_pack("{s:o,s:I}", "value", a, "last", (json_int_t)last));
}

static void h_requests_clear(emu_call *c) {
  emu_exec(c->e, "DELETE FROM request_log", NULL);
  emu_reply_empty(c, 204);
}

/* ---- clock, settings, seed, issuers, tokens, health ---- */

static json_t *clock_json(emu_call *c) {
  int64_t now = emu_now_ms(c->e);
  char t[32];
  sq_rfc3339(now / 1000, t, sizeof t);
  return json_pack("{s:I,s:I,s:I,s:s}", "now", (json_int_t)(now / 1000), "nowMs", (json_int_t)now, "offsetMs",
                   (json_int_t)c->e->clock_offset_ms, "iso", t);
}

static void h_clock(emu_call *c) { emu_reply_json(c, 200, clock_json(c)); }

static void h_clock_advance(emu_call *c) {
  json_t *b;
  if(emu_body_json(c, 0, &b))
    return;
  json_t *s = json_object_get(b, "seconds"), *ms = json_object_get(b, "ms");
  int64_t delta = -1;
  if(json_is_integer(s) && !ms)
    delta = json_integer_value(s) * 1000;
  else if(json_is_integer(ms) && !s)
    delta = json_integer_value(ms);
  sq_err err;
  sq_err_clear(&err);
  if(delta < 0 || emu_clock_advance(c->e, delta, &err))
    emu_error(c, 400, "BadRequest", "Send {\"seconds\": N} or {\"ms\": N} with N >= 0 (%s).", err.message);
  else
    emu_reply_json(c, 200, clock_json(c));
  json_decref(b);
}

static void h_settings_get(emu_call *c) { emu_reply_json(c, 200, emu_settings_json(&c->e->set)); }

static void h_settings_patch(emu_call *c) {
  json_t *b;
  if(emu_body_json(c, 0, &b))
    return;
  sq_err err;
  if(emu_settings_apply(&c->e->set, b, &err))
    emu_error(c, 400, "BadRequest", "%s", err.message);
  else {
    emu_settings_save(c->e);
    emu_reply_json(c, 200, emu_settings_json(&c->e->set));
  }
  json_decref(b);
}

static void h_seed(emu_call *c) {
  json_t *b;
  if(emu_body_json(c, 0, &b))
    return;
  sq_err err;
  sq_err_clear(&err);
  if(emu_seed_apply(c->e, b, NULL, &err))
    emu_error(c, 400, "InvalidSeed", "%s", err.message);
  else
    emu_reply_json(c, 200, json_pack("{s:b}", "applied", 1));
  json_decref(b);
}

static void h_issuer_put(emu_call *c) {
  json_t *b;
  if(emu_body_json(c, 0, &b))
    return;
  json_t *seed = json_pack("{s:[O]}", "issuers", b);
  sq_err err;
  sq_err_clear(&err);
  if(emu_seed_apply(c->e, seed, NULL, &err))
    emu_error(c, 400, "InvalidIssuer", "%s", err.message);
  else
    emu_reply_json(c, 200, json_pack("{s:b}", "applied", 1));
  json_decref(seed);
  json_decref(b);
}

static void h_token(emu_call *c) {
  json_t *b;
  if(emu_body_json(c, 0, &b))
    return;
  const char *oid = sq_json_str(b, "objectId"), *cid = sq_json_str(b, "clientId"), *res = sq_json_str(b, "resource");
  int64_t life = sq_json_int(b, "lifetimeSeconds", 0);
  emu_identity id;
  char resbuf[256];
  const char *resource = emu_resource_canonical(res, resbuf, sizeof resbuf);
  int found = oid ? emu_identity_by_object_id(c->e, oid, &id) : cid ? emu_identity_by_client_id(c->e, cid, &id) : 0;
  if(!found || !resource || life < 0 || life > 86400 * 365) {
    emu_error(c, 400, "BadRequest",
              "Send {objectId | clientId of a seeded identity, resource (e.g. https://vault.azure.net), lifetimeSeconds?}.");
  } else {
    char *tok = NULL;
    int64_t exp = 0;
    if(emu_token_mint(c->e, id.object_id, id.tenant, id.client_id, resource, life, &tok, &exp, NULL))
      emu_error(c, 500, "InternalError", "Signing failed.");
    else
      emu_reply_json(c, 200, json_pack("{s:s,s:I,s:s}", "access_token", tok, "expires_on", (json_int_t)exp,
                                       "token_type", "Bearer"));
    sq_free_secret(tok);
  }
  json_decref(b);
}

static void h_health(emu_call *c) {
  emu_reply_json(c, 200, json_pack("{s:s,s:i}", "status", "ok", "port", c->e->port));
}

#define CT(m, p, f) {EMU_FAM_CONTROL, m, p, f, 0, NULL}

const emu_route emu_control_routes[] = {
    CT("GET", "/_emulator/health", h_health),
    CT("GET", "/_emulator/faults", h_faults_list),
    CT("POST", "/_emulator/faults", h_faults_add),
    CT("DELETE", "/_emulator/faults", h_faults_clear),
    CT("DELETE", "/_emulator/faults/{id}", h_fault_delete),
    CT("POST", "/_emulator/permissions/revoke", h_revoke),
    CT("POST", "/_emulator/permissions/restore", h_restore_perm),
    CT("GET", "/_emulator/requests", h_requests),
    CT("DELETE", "/_emulator/requests", h_requests_clear),
    CT("GET", "/_emulator/clock", h_clock),
    CT("POST", "/_emulator/clock/advance", h_clock_advance),
    CT("GET", "/_emulator/settings", h_settings_get),
    CT("PATCH", "/_emulator/settings", h_settings_patch),
    CT("POST", "/_emulator/seed", h_seed),
    CT("PUT", "/_emulator/issuers", h_issuer_put),
    CT("POST", "/_emulator/token", h_token),
    {0, NULL, NULL, NULL, 0, NULL},
};
