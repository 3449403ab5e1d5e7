/* sql_db.c — Microsoft.Sql/servers/databases (azure-api.md §1): GET with
 * $expand=keys(...), list, inaccessibleDatabases, PUT in every createMode,
 * PATCH of identity / keys map / protector / auto-rotation / federated
 * client id, DELETE, protector revalidate and revert; all writes are
 * long-running operations whose effect is applied when they complete.
 *
 * A write is validated twice by the same planner: when the request arrives
 * (bad input and rule violations answer 4xx at once, as ARM does) and again
 * when the operation completes (the world may have changed: a key deleted,
 * a permission revoked), where a failure fails the operation instead.
 *
 * The engine underneath is real: DEKs, wraps through the protector as the
 * database's identity, log segments with thumbprints, encrypted data. */
#include <ctype.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kvcrypto.h"
#include "sql.h"
#include "sqltde/jsonx.h"
#include "sqltde/log.h"

/* Messages and ids are built into fixed buffers on purpose (bounded memory for
 * anything derived from requests); truncating an over-long one is intended. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

/* ---- request plumbing ---- */

void sql_req_rid(emu_call *c, char *out, size_t n) {
  const char *p = c->req->path ? c->req->path : "";
  size_t l = strlen(p);
  while(l > 1 && p[l - 1] == '/')
    l--;
  snprintf(out, n, "%.*s", (int)l, p);
}

int sql_authorize(emu_call *c, const char *action) {
  if(emu_arm_check_scope(c, emu_var(c, "sub"), emu_var(c, "rg")))
    return 0;
  char rid[SQL_RID_MAX];
  sql_req_rid(c, rid, sizeof rid);
  return !action || !emu_arm_authorize(c, rid, action);
}

int sql_begin(emu_call *c, int is_mi, const char *action, sql_parent *p) {
  const char *name = emu_var(c, is_mi ? "mi" : "server");
  memset(p, 0, sizeof *p);
  if(!sql_authorize(c, action))
    return 0;
  if(!sql_parent_load(c->e, is_mi, emu_var(c, "sub"), emu_var(c, "rg"), name, p)) {
    emu_arm_error(c, 404, "ParentResourceNotFound",
                  "Can not perform requested operation on nested resource. Parent resource '%.128s' not found.", name);
    return 0;
  }
  return 1;
}

int sql_begin_db(emu_call *c, const char *action, void (*not_found)(emu_call *c, const char *name), sql_parent *p,
                 sql_db *d) {
  if(!sql_begin(c, 0, action, p))
    return 0;
  const char *name = emu_var(c, "db");
  if(!sql_db_load(c->e, p->id, name, d)) {
    not_found(c, name);
    sql_parent_free(p);
    return 0;
  }
  return 1;
}

/* ---- LROs ---- */

void sql_lro(emu_call *c, const char *op, const char *family, const char *region, json_t *input) {
  const char *sub = emu_var(c, "sub"), *rg = emu_var(c, "rg");
  char apath[1024], lpath[1024], start[40], resource_id[SQL_RID_MAX];
  sql_req_rid(c, resource_id, sizeof resource_id);
  if(rg) {
    snprintf(apath, sizeof apath, "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Sql/locations/%s/%sAzureAsyncOperation/{id}",
             sub, rg, region, family);
    snprintf(lpath, sizeof lpath, "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Sql/locations/%s/%sOperationResults/{id}",
             sub, rg, region, family);
  } else {
    snprintf(apath, sizeof apath, "/subscriptions/%s/providers/Microsoft.Sql/locations/%s/%sAzureAsyncOperation/{id}", sub,
             region, family);
    snprintf(lpath, sizeof lpath, "/subscriptions/%s/providers/Microsoft.Sql/locations/%s/%sOperationResults/{id}", sub,
             region, family);
  }
  if(!input)
    input = json_object();
  json_object_set_new(input, "op", json_string(op));
  const char *av = emu_query(c, "api-version");
  json_object_set_new(input, "apiVersion", json_string(av ? av : ""));
  sql_fmt_time_ms(c->now_ms, start, sizeof start);
  char id[37];
  emu_lro_start(c, SQL_LRO_KIND, resource_id, sub, apath, lpath, input,
                json_pack("{s:s,s:s}", "operation", op, "startTime", start), id);
}

int sql_lro_running(emu_call *c) {
  char resource_id[SQL_RID_MAX];
  sql_req_rid(c, resource_id, sizeof resource_id);
  sqlite3_stmt *st = emu_sql(c->e, "SELECT input FROM lro WHERE status='InProgress' AND kind=? AND"
                                   " resource_id=? COLLATE NOCASE");
  if(!st)
    return 0;
  sqlite3_bind_text(st, 1, SQL_LRO_KIND, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, resource_id, -1, SQLITE_STATIC);
  int found = 0;
  while(!found && sqlite3_step(st) == SQLITE_ROW) {
    json_t *in = json_loads(emu_col_text(st, 0), 0, NULL);
    found = sq_json_str(in, "op") != NULL;
    json_decref(in);
  }
  sqlite3_finalize(st);
  return found;
}

static const sql_lro_handler *const handler_tables[] = {sql_db_lro_handlers, sql_server_lro_handlers,
                                                         sql_geo_lro_handlers, NULL};

static int lro_complete(emu *e, const emu_lro *op, char *err_code, char *err_msg, json_t **result) {
  const char *name = sq_json_str(op->input, "op");
  for(int t = 0; name && handler_tables[t]; t++)
    for(const sql_lro_handler *h = handler_tables[t]; h->op; h++)
      if(!strcmp(h->op, name))
        return h->fn(e, op, op->input, err_code, err_msg, result);
  snprintf(err_code, 128, "InternalServerError");
  snprintf(err_msg, 512, "Unknown Microsoft.Sql operation '%s'.", name ? name : "");
  return 1;
}

const emu_lro_hook emu_sql_lro_hook = {SQL_LRO_KIND, lro_complete};

void sql_h_lro_status(emu_call *c) {
  const char *type = emu_var(c, "optype"), *id = emu_var(c, "opid");
  size_t l = strlen(type);
  static const char async_sfx[] = "AzureAsyncOperation", loc_sfx[] = "OperationResults";
  if(l > sizeof async_sfx - 1 && !strcasecmp(type + l - (sizeof async_sfx - 1), async_sfx))
    emu_lro_poll_async(c, id);
  else if(l > sizeof loc_sfx - 1 && !strcasecmp(type + l - (sizeof loc_sfx - 1), loc_sfx))
    emu_lro_poll_location(c, id);
  else
    emu_arm_error(c, 404, "NotFound", "No operation status endpoint '%.64s'.", type);
}

/* ---- errors carried from planners (to HTTP or to a failed LRO) ---- */

int sql_outf(sql_outcome *o, int status, const char *code, const char *fmt, ...) {
  o->status = status;
  snprintf(o->code, sizeof o->code, "%s", code);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(o->msg, sizeof o->msg, fmt, ap);
  va_end(ap);
  return status;
}

int sql_out_kv(sql_outcome *o, const sqlkv_fail *f, sqlkv_ctx ctx, const char *uri) {
  o->status = sqlkv_error(f, ctx, uri, o->code, o->msg);
  return o->status;
}

int sql_out_lro(const sql_outcome *o, char code[128], char msg[512]) {
  snprintf(code, 128, "%s", o->code);
  snprintf(msg, 512, "%s", o->msg);
  return 1;
}

void sql_reply_outcome(emu_call *c, const sql_outcome *o) { emu_arm_error(c, o->status, o->code, "%s", o->msg); }

int sql_fed_client_id(const json_t *v, char fed[64], sql_outcome *o) {
  if(json_is_null(v) || (json_is_string(v) && !*json_string_value(v)))
    fed[0] = '\0';
  else if(!json_is_string(v) || !emu_is_guid(json_string_value(v)))
    return sql_outf(o, 400, "InvalidParameterValue", "federatedClientId must be a GUID.");
  else
    snprintf(fed, 64, "%s", json_string_value(v));
  return 0;
}

/* ---- crypto engine ---- */

/* The object id a database reaches its keys as: its federated client's, else its UMI's ("" none). */
static void db_identity_oid(emu *e, const char *umi, const char *fed, char oid[EMU_ID_MAX]) {
  oid[0] = '\0';
  emu_identity id;
  if(fed && *fed && emu_identity_by_client_id(e, fed, &id))
    snprintf(oid, EMU_ID_MAX, "%s", id.object_id);
  else if(umi && *umi && emu_identity_by_resource_id(e, umi, &id))
    snprintf(oid, EMU_ID_MAX, "%s", id.object_id);
}

typedef struct keysrc {
  const char *oid;           /* the database's identity for its keys ("" none) */
  const sql_dbkey *keys;     /* keys given (request keys map or the database's) */
  int nkeys;
  const sql_parent *parent;  /* server keys reachable as the server's identity */
} keysrc;

/* Unwraps one wrapped DEK whose protector had thumbprint thumb, using only
 * the keys the source offers. */
static sqlkv_status unwrap_with(emu *e, const keysrc *ks, const char *kind, const char *thumb, const void *wrapped,
                                size_t n, unsigned char dek[SQL_DEK_LEN], sqlkv_fail *f, char *used_uri, size_t un) {
  memset(f, 0, sizeof *f);
  if(!strcmp(kind, "smk")) {
    EVP_PKEY *k;
    char t[SQ_THUMBPRINT_HEX_LEN + 1];
    if(sqlkv_service_key(e, &k, t)) {
      f->st = SK_CRYPTO;
      snprintf(f->detail, sizeof f->detail, "The service-managed key is unavailable.");
      return SK_CRYPTO;
    }
    sqlkv_key sk = {.pkey = k};
    sq_code rc = strcmp(t, thumb) ? SQ_EINVAL : sqlkv_unwrap(&sk, wrapped, n, dek);
    sqlkv_key_free(&sk);
    if(rc) {
      f->st = SK_CRYPTO;
      snprintf(f->detail, sizeof f->detail, "The service-managed key could not unwrap the database encryption key.");
      return SK_CRYPTO;
    }
    if(used_uri)
      snprintf(used_uri, un, "ServiceManaged");
    return SK_OK;
  }
  sqlkv_fail last;
  memset(&last, 0, sizeof last);
  int tried = 0;
  for(int i = 0; i < ks->nkeys; i++) {
    if(strcmp(ks->keys[i].thumb, thumb))
      continue;
    tried++;
    char uri[SQL_URI_MAX];
    sqlkv_uri(e, &ks->keys[i].ref, uri, sizeof uri);
    sqlkv_key k;
    if(sqlkv_access(e, uri, ks->oid, SQLKV_GET | SQLKV_UNWRAP, 0, &k, &last))
      continue;
    sq_code rc = strcmp(k.thumb, thumb) ? SQ_EINVAL : sqlkv_unwrap(&k, wrapped, n, dek);
    sqlkv_key_free(&k);
    if(!rc) {
      if(used_uri)
        snprintf(used_uri, un, "%s", uri);
      return SK_OK;
    }
    last.st = SK_CRYPTO;
    snprintf(last.detail, sizeof last.detail, "The key '%s' could not unwrap the database encryption key.", uri);
  }
  if(!strcmp(kind, "server") && ks->parent) {
    char poid[EMU_ID_MAX];
    int is_umi;
    sql_parent_oid(e, ks->parent, poid, &is_umi);
    sqlite3_stmt *st = emu_sql(e, "SELECT uri FROM sql_parent_keys WHERE parent_id=? AND thumb=?");
    char uris[8][SQL_URI_MAX];
    int nu = 0;
    if(st) {
      sqlite3_bind_text(st, 1, ks->parent->id, -1, SQLITE_STATIC);
      sqlite3_bind_text(st, 2, thumb, -1, SQLITE_STATIC);
      while(nu < 8 && sqlite3_step(st) == SQLITE_ROW)
        snprintf(uris[nu++], SQL_URI_MAX, "%s", emu_col_text(st, 0));
      sqlite3_finalize(st);
    }
    for(int i = 0; i < nu; i++) {
      tried++;
      sqlkv_key k;
      if(sqlkv_access(e, uris[i], poid, SQLKV_GET | SQLKV_UNWRAP, 0, &k, &last))
        continue;
      sq_code rc = strcmp(k.thumb, thumb) ? SQ_EINVAL : sqlkv_unwrap(&k, wrapped, n, dek);
      sqlkv_key_free(&k);
      if(!rc) {
        if(used_uri)
          snprintf(used_uri, un, "%s", uris[i]);
        return SK_OK;
      }
    }
  }
  if(!tried) {
    f->st = SK_NOTFOUND;
    snprintf(f->detail, sizeof f->detail, "No key with thumbprint %s was provided; it is needed to read the database.",
             thumb);
    return SK_NOTFOUND;
  }
  *f = last;
  return f->st ? f->st : SK_CRYPTO;
}

/* The clear DEK of a live database through its current wrap. */
sqlkv_status sql_db_unwrap_current(emu *e, const sql_db *d, unsigned char dek[SQL_DEK_LEN], sqlkv_fail *f,
                                   char uri_out[SQL_URI_MAX]) {
  sql_wrap w;
  memset(f, 0, sizeof *f);
  if(!sql_wrap_at(e, d->uid, -1, &w)) {
    f->st = SK_CRYPTO;
    snprintf(f->detail, sizeof f->detail, "The database has no encryption key.");
    return SK_CRYPTO;
  }
  sql_dbkey *keys = NULL;
  int nk = sql_dbkeys_list(e, d->uid, -1, &keys);
  char oid[EMU_ID_MAX];
  db_identity_oid(e, d->umi, d->fed_client_id, oid);
  sql_parent p;
  int havep = sql_parent_load_id(e, d->parent_id, &p);
  keysrc ks = {oid, keys, nk, havep ? &p : NULL};
  /* the current wrap's own key first (it may not be in the map: server-level) */
  sqlkv_status st = unwrap_with(e, &ks, w.kind, w.thumb, w.wrapped.ptr, w.wrapped.len, dek, f, uri_out,
                                uri_out ? SQL_URI_MAX : 0);
  free(keys);
  if(havep)
    sql_parent_free(&p);
  sq_buf_free(&w.wrapped);
  return st;
}

/* Wraps dek under a protector: kind "db" (uri as oid), "server" (the
 * parent's protector as its identity) or "smk". Fills thumb and canonical uri. */
static sqlkv_status wrap_under(emu *e, const char *kind, const char *uri, const char *oid, const sql_parent *p,
                               const unsigned char *dek, sq_buf *wrapped, char thumb[SQ_THUMBPRINT_HEX_LEN + 1],
                               char canon[SQL_URI_MAX], sqlkv_fail *f) {
  memset(f, 0, sizeof *f);
  if(!strcmp(kind, "smk")) {
    EVP_PKEY *k;
    if(sqlkv_service_key(e, &k, thumb)) {
      f->st = SK_CRYPTO;
      return SK_CRYPTO;
    }
    sqlkv_key sk = {.pkey = k};
    sq_code rc = sqlkv_wrap(&sk, dek, SQL_DEK_LEN, wrapped);
    sqlkv_key_free(&sk);
    snprintf(canon, SQL_URI_MAX, "ServiceManaged");
    return rc ? (f->st = SK_CRYPTO) : SK_OK;
  }
  char poid[EMU_ID_MAX];
  int is_umi = 0;
  if(!strcmp(kind, "server")) {
    if(sql_parent_oid(e, p, poid, &is_umi)) {
      f->st = SK_NOIDENTITY;
      snprintf(f->detail, sizeof f->detail, "The server '%s' has no identity to reach its key.", p->name);
      return SK_NOIDENTITY;
    }
    oid = poid;
    uri = p->prot_uri;
  }
  sqlkv_key k;
  sqlkv_status st = sqlkv_access(e, uri, oid, SQLKV_ALL, 0, &k, f);
  if(st)
    return st;
  sq_code rc = sqlkv_wrap(&k, dek, SQL_DEK_LEN, wrapped);
  snprintf(thumb, SQ_THUMBPRINT_HEX_LEN + 1, "%s", k.thumb);
  sqlkv_uri(e, &k.ref, canon, SQL_URI_MAX);
  sqlkv_key_free(&k);
  if(rc) {
    f->st = SK_CRYPTO;
    snprintf(f->detail, sizeof f->detail, "Wrapping with '%s' failed.", uri);
    return SK_CRYPTO;
  }
  return SK_OK;
}

/* Records a new current wrap on the database. */
static sq_code set_wrap(emu *e, sql_db *d, int64_t now, const char *kind, const char *canon, const char *thumb,
                        const sq_buf *wrapped) {
  snprintf(d->dek_kind, sizeof d->dek_kind, "%s", kind);
  snprintf(d->dek_uri, sizeof d->dek_uri, "%s", canon);
  snprintf(d->dek_thumb, sizeof d->dek_thumb, "%s", thumb);
  return sql_wrap_record(e, d->uid, now, kind, canon, thumb, wrapped->ptr, wrapped->len);
}

/* A DEK wrapped under a new protector, not yet recorded. */
typedef struct new_wrap {
  const char *kind;
  sq_buf wrapped; /* free it */
  char thumb[SQ_THUMBPRINT_HEX_LEN + 1];
  char canon[SQL_URI_MAX];
} new_wrap;

/* Opens d's DEK through its current protector and wraps it under kind/uri/oid
 * (as wrap_under) into w; used (may be NULL) gets the URI that opened it and
 * stays "" when opening failed. */
static sqlkv_status rewrap_dek(emu *e, const sql_db *d, const char *kind, const char *uri, const char *oid,
                               const sql_parent *p, new_wrap *w, sqlkv_fail *f, char used[SQL_URI_MAX]) {
  unsigned char dek[SQL_DEK_LEN];
  w->kind = kind;
  sq_buf_init(&w->wrapped, 4096);
  sqlkv_status st = sql_db_unwrap_current(e, d, dek, f, used);
  if(!st)
    st = wrap_under(e, kind, uri, oid, p, dek, &w->wrapped, w->thumb, w->canon, f);
  sq_wipe(dek, sizeof dek);
  return st;
}

static sq_code record_wrap(emu *e, sql_db *d, int64_t now, const new_wrap *w) {
  return set_wrap(e, d, now, w->kind, w->canon, w->thumb, &w->wrapped);
}

static sq_code seal(const unsigned char dek[SQL_DEK_LEN], const char *text, sq_buf *out) {
  sq_buf_init(out, strlen(text) + 256);
  return kvc_seal(dek, text, strlen(text), out);
}

/* A new log segment under the database's current wrap. */
static sq_code add_vlf(emu *e, const sql_db *d, int64_t now, const unsigned char dek[SQL_DEK_LEN], const char *text,
                       int records, int retire) {
  sql_wrap w;
  if(!sql_wrap_at(e, d->uid, -1, &w))
    return SQ_EINVAL;
  sq_buf payload;
  sq_code rc = seal(dek, text, &payload);
  sqlite3_stmt *st = rc ? NULL
                        : emu_sql(e, "INSERT INTO sql_vlfs(db_uid, created_ms, thumb, uri, wrapped, payload, records)"
                                     " VALUES(?,?,?,?,?,?,?)");
  if(st) {
    sqlite3_bind_int64(st, 1, d->uid);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_text(st, 3, w.thumb, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, w.uri, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 5, w.wrapped.ptr, (int)w.wrapped.len, SQLITE_STATIC);
    sqlite3_bind_blob(st, 6, payload.ptr, (int)payload.len, SQLITE_STATIC);
    sqlite3_bind_int(st, 7, records);
    rc = sqlite3_step(st) == SQLITE_DONE ? SQ_OK : SQ_EIO;
    sqlite3_finalize(st);
    int64_t seq = sqlite3_last_insert_rowid(e->db);
    if(!rc && retire) {
      st = emu_sql(e, "UPDATE sql_vlfs SET retired_ms=? WHERE db_uid=? AND retired_ms=0 AND seq<?");
      if(st) {
        sqlite3_bind_int64(st, 1, now);
        sqlite3_bind_int64(st, 2, d->uid);
        sqlite3_bind_int64(st, 3, seq);
        sqlite3_step(st);
        sqlite3_finalize(st);
      }
    }
  } else if(!rc) {
    rc = SQ_EIO;
  }
  sq_buf_free(&payload);
  sq_buf_free(&w.wrapped);
  return rc;
}

static sq_code add_data(emu *e, int64_t uid, int64_t now, const unsigned char dek[SQL_DEK_LEN], const char *text) {
  sq_buf ct;
  sq_code rc = seal(dek, text, &ct);
  sqlite3_stmt *st = rc ? NULL : emu_sql(e, "INSERT INTO sql_data(db_uid, created_ms, blob) VALUES(?,?,?)");
  if(st) {
    sqlite3_bind_int64(st, 1, uid);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_blob(st, 3, ct.ptr, (int)ct.len, SQLITE_STATIC);
    rc = sqlite3_step(st) == SQLITE_DONE ? SQ_OK : SQ_EIO;
    sqlite3_finalize(st);
  } else if(!rc) {
    rc = SQ_EIO;
  }
  sq_buf_free(&ct);
  return rc;
}

sqlkv_status sql_db_workload(emu *e, sql_db *d, int records, int retire, const char *text, sqlkv_fail *f) {
  unsigned char dek[SQL_DEK_LEN];
  sqlkv_status st = sql_db_unwrap_current(e, d, dek, f, NULL);
  if(st)
    return st;
  int64_t now = emu_now_ms(e);
  char line[512];
  for(int i = 0; i < records; i++) {
    snprintf(line, sizeof line, "%s #%d", text && *text ? text : "row", i + 1);
    add_data(e, d->uid, now, dek, line);
  }
  snprintf(line, sizeof line, "LOG %d records: %s", records, text && *text ? text : "workload");
  add_vlf(e, d, now, dek, line, records, retire);
  sq_wipe(dek, sizeof dek);
  /* the log ships to geo-secondaries as it is: same segments, same thumbprints */
  int64_t secs[16];
  int ns = sql_geo_secondaries(e, d->uid, secs, 16);
  for(int i = 0; i < ns; i++) {
    sql_db s;
    if(!sql_db_load_uid(e, secs[i], &s))
      continue;
    sqlkv_fail f2;
    unsigned char sdek[SQL_DEK_LEN];
    if(!sql_db_unwrap_current(e, &s, sdek, &f2, NULL)) {
      for(int r = 0; r < records; r++) {
        snprintf(line, sizeof line, "%s #%d", text && *text ? text : "row", r + 1);
        add_data(e, s.uid, now, sdek, line);
      }
      sqlite3_stmt *q = emu_sql(e, "INSERT INTO sql_vlfs(db_uid, created_ms, thumb, uri, wrapped, payload, records)"
                                   " SELECT ?, created_ms, thumb, uri, wrapped, payload, records FROM sql_vlfs"
                                   " WHERE db_uid=? ORDER BY seq DESC LIMIT 1");
      if(q) {
        sqlite3_bind_int64(q, 1, s.uid);
        sqlite3_bind_int64(q, 2, d->uid);
        sqlite3_step(q);
        sqlite3_finalize(q);
      }
      if(retire) {
        int64_t last = sqlite3_last_insert_rowid(e->db);
        q = emu_sql(e, "UPDATE sql_vlfs SET retired_ms=? WHERE db_uid=? AND retired_ms=0 AND seq<?");
        if(q) {
          sqlite3_bind_int64(q, 1, now);
          sqlite3_bind_int64(q, 2, s.uid);
          sqlite3_bind_int64(q, 3, last);
          sqlite3_step(q);
          sqlite3_finalize(q);
        }
      }
      sq_wipe(sdek, sizeof sdek);
    }
    sql_db_free(&s);
  }
  return SK_OK;
}

sqlkv_status sql_db_read_data(emu *e, const sql_db *d, json_t **out, sqlkv_fail *f) {
  *out = NULL;
  unsigned char dek[SQL_DEK_LEN];
  sqlkv_status st = sql_db_unwrap_current(e, d, dek, f, NULL);
  if(st)
    return st;
  json_t *rows = json_array();
  sqlite3_stmt *q = emu_sql(e, "SELECT blob FROM sql_data WHERE db_uid=? ORDER BY seq");
  int bad = 0;
  if(q) {
    sqlite3_bind_int64(q, 1, d->uid);
    while(sqlite3_step(q) == SQLITE_ROW) {
      sq_buf pt;
      sq_buf_init(&pt, 1 << 20);
      if(kvc_open(dek, sqlite3_column_blob(q, 0), (size_t)sqlite3_column_bytes(q, 0), &pt) == SQ_OK) {
        sq_buf_add(&pt, "", 1);
        json_array_append_new(rows, json_string(pt.ptr));
      } else {
        bad++;
      }
      sq_buf_free_wipe(&pt);
    }
    sqlite3_finalize(q);
  }
  sq_wipe(dek, sizeof dek);
  if(bad) {
    json_decref(rows);
    f->st = SK_CRYPTO;
    snprintf(f->detail, sizeof f->detail, "%d data records failed authentication under the database encryption key.", bad);
    return SK_CRYPTO;
  }
  *out = rows;
  return SK_OK;
}

sqlkv_status sql_db_check(emu *e, const sql_db *d, sqlkv_fail *f) {
  memset(f, 0, sizeof *f);
  if(d->prot_uri[0]) {
    char oid[EMU_ID_MAX];
    db_identity_oid(e, d->umi, d->fed_client_id, oid);
    return sqlkv_access(e, d->dek_uri[0] && strcmp(d->dek_kind, "db") == 0 ? d->dek_uri : d->prot_uri, oid, SQLKV_ALL,
                        0, NULL, f);
  }
  if(!strcmp(d->dek_kind, "server")) {
    sql_parent p;
    if(!sql_parent_load_id(e, d->parent_id, &p))
      return SK_OK;
    char oid[EMU_ID_MAX];
    int is_umi;
    sqlkv_status st = sql_parent_oid(e, &p, oid, &is_umi);
    if(!st) {
      const char *uri = p.is_mi && p.active_uri[0] ? p.active_uri : d->dek_uri;
      st = sqlkv_access(e, uri, oid, SQLKV_ALL, 0, NULL, f);
    } else {
      f->st = st;
    }
    sql_parent_free(&p);
    return st;
  }
  return SK_OK;
}

int sql_db_rotation_blocked(emu *e, const sql_db *d, const char *new_thumb) {
  if(!d->prot_uri[0] || !strcmp(new_thumb, d->dek_thumb))
    return 0;
  char th[64][SQ_THUMBPRINT_HEX_LEN + 1];
  int n = sql_vlf_thumbs_at(e, d->uid, -1, th, 64);
  for(int i = 0; i < n; i++)
    if(strcmp(th[i], d->dek_thumb))
      return 1;
  return 0;
}

/* ---- JSON ---- */

static int thumb_in(const char *t, char th[][SQ_THUMBPRINT_HEX_LEN + 1], int n) {
  for(int i = 0; i < n; i++)
    if(!strcmp(th[i], t))
      return 1;
  return 0;
}

static json_t *dbkey_json(const sql_dbkey *k) {
  char created[40];
  sql_fmt_time_ms(k->added_ms, created, sizeof created);
  return json_pack("{s:s,s:s,s:s,s:s,s:s}", "type", "AzureKeyVault", "thumbprint", k->thumb, "creationDate", created,
                   "subregion", k->subregion, "keyVersion", k->ref.version);
}

/* Keys map: expand 1 = the current map; 2 = keys in use at 'at' (-1 now):
 * the protector of that time and every thumbprint of the log then active. */
static json_t *keys_json(emu *e, int64_t uid, int expand, int64_t at) {
  json_t *m = json_object();
  sql_dbkey *keys = NULL;
  if(expand == 1) {
    int n = sql_dbkeys_list(e, uid, -1, &keys);
    for(int i = 0; i < n; i++)
      json_object_set_new(m, keys[i].uri, dbkey_json(&keys[i]));
    free(keys);
    return m;
  }
  char th[65][SQ_THUMBPRINT_HEX_LEN + 1];
  int nt = sql_vlf_thumbs_at(e, uid, at, th, 64);
  sql_wrap w;
  if(sql_wrap_at(e, uid, at, &w)) {
    if(!thumb_in(w.thumb, th, nt))
      snprintf(th[nt++], SQ_THUMBPRINT_HEX_LEN + 1, "%s", w.thumb);
    sq_buf_free(&w.wrapped);
  }
  int n = sql_dbkeys_list(e, uid, at < 0 ? -1 : at, &keys);
  for(int i = 0; i < n; i++)
    if(thumb_in(keys[i].thumb, th, nt))
      json_object_set_new(m, keys[i].uri, dbkey_json(&keys[i]));
  free(keys);
  if(at >= 0) { /* a needed key removed from the map since: still report it */
    n = sql_dbkeys_list(e, uid, INT64_MAX - 1, &keys);
    free(keys);
    sqlite3_stmt *st = emu_sql(e, "SELECT uri, vault, key_name, version, thumb, added_ms, subregion FROM sql_db_keys"
                                  " WHERE db_uid=? ORDER BY rowid");
    if(st) {
      sqlite3_bind_int64(st, 1, uid);
      while(sqlite3_step(st) == SQLITE_ROW) {
        const char *t = emu_col_text(st, 4);
        int present = 0;
        const char *k;
        json_t *v;
        json_object_foreach(m, k, v) if(!strcmp(sq_json_str(v, "thumbprint"), t)) present = 1;
        if(present || !thumb_in(t, th, nt))
          continue;
        sql_dbkey dk;
        memset(&dk, 0, sizeof dk);
        snprintf(dk.uri, sizeof dk.uri, "%s", emu_col_text(st, 0));
        snprintf(dk.ref.version, sizeof dk.ref.version, "%s", emu_col_text(st, 3));
        snprintf(dk.thumb, sizeof dk.thumb, "%s", t);
        dk.added_ms = sqlite3_column_int64(st, 5);
        snprintf(dk.subregion, sizeof dk.subregion, "%s", emu_col_text(st, 6));
        json_object_set_new(m, dk.uri, dbkey_json(&dk));
      }
      sqlite3_finalize(st);
    }
  }
  return m;
}

static json_t *default_sku(void) {
  return json_pack("{s:s,s:s,s:s,s:i}", "name", "GP_Gen5", "tier", "GeneralPurpose", "family", "Gen5", "capacity", 2);
}

json_t *sql_db_json(emu *e, const sql_db *d, int expand, int64_t at, int cmk_fields) {
  char id[SQL_RID_MAX + 256], created[40], earliest[40];
  sql_db_id(d, id, sizeof id);
  sql_fmt_time_ms(d->created_ms, created, sizeof created);
  sql_fmt_time_ms(d->earliest_restore_ms ? d->earliest_restore_ms : d->created_ms, earliest, sizeof earliest);
  json_t *props = d->extra ? json_deep_copy(d->extra) : json_object();
  json_t *sku = d->sku ? json_deep_copy(d->sku) : default_sku();
  json_object_set_new(props, "collation", json_string(d->collation[0] ? d->collation : "SQL_Latin1_General_CP1_CI_AS"));
  json_object_set_new(props, "maxSizeBytes", json_integer(d->max_size ? d->max_size : (json_int_t)34359738368LL));
  json_object_set_new(props, "status", json_string(d->status));
  json_object_set_new(props, "databaseId", json_string(d->database_id));
  json_object_set_new(props, "creationDate", json_string(created));
  json_object_set_new(props, "earliestRestoreDate", json_string(earliest));
  const char *skn = sq_json_str(sku, "name");
  json_object_set_new(props, "currentServiceObjectiveName", json_string(skn ? skn : "GP_Gen5"));
  json_object_set_new(props, "requestedServiceObjectiveName", json_string(skn ? skn : "GP_Gen5"));
  json_object_set_new(props, "currentSku", json_deep_copy(sku));
  json_object_set_new(props, "catalogCollation", json_string("SQL_Latin1_General_CP1_CI_AS"));
  json_object_set_new(props, "zoneRedundant", json_false());
  json_object_set_new(props, "readScale", json_string("Disabled"));
  json_object_set_new(props, "currentBackupStorageRedundancy", json_string("Geo"));
  json_object_set_new(props, "requestedBackupStorageRedundancy", json_string("Geo"));
  json_object_set_new(props, "isLedgerOn", json_false());
  json_object_set_new(props, "isInfraEncryptionEnabled", json_false());
  if(d->secondary_type[0])
    json_object_set_new(props, "secondaryType", json_string(d->secondary_type));
  if(d->fail_code[0] && !strcmp(d->status, "Inaccessible"))
    json_object_set_new(props, "inaccessibilityReason", json_string(d->fail_code));
  if(cmk_fields) {
    if(d->prot_uri[0])
      json_object_set_new(props, "encryptionProtector", json_string(d->prot_uri));
    json_object_set_new(props, "encryptionProtectorAutoRotation", json_boolean(d->auto_rot));
    if(d->fed_client_id[0])
      json_object_set_new(props, "federatedClientId", json_string(d->fed_client_id));
    if(expand)
      json_object_set_new(props, "keys", keys_json(e, d->uid, expand, at));
  }
  const char *tier = sq_json_str(sku, "tier");
  char kind[64];
  snprintf(kind, sizeof kind, "v12.0,user%s", tier && (!strcasecmp(tier, "Basic") || !strcasecmp(tier, "Standard") ||
                                                       !strcasecmp(tier, "Premium"))
                                                  ? ""
                                                  : ",vcore");
  json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:o}", "id", id, "name", d->name, "type",
                        d->is_mi ? "Microsoft.Sql/managedInstances/databases" : "Microsoft.Sql/servers/databases",
                        "location", d->location, "kind", kind, "sku", sku, "properties", props);
  if(d->is_mi) {
    json_object_del(j, "sku");
    json_object_del(j, "kind");
  }
  if(d->tags && json_object_size(d->tags))
    json_object_set_new(j, "tags", json_deep_copy(d->tags));
  if(cmk_fields && d->umi[0]) {
    sql_rid r;
    char tenant[EMU_ID_MAX] = "";
    if(!sql_parse_rid(d->parent_id, &r))
      emu_subscription_tenant(e, r.sub, tenant);
    json_t *ident = json_pack("{s:s,s:{s:{}}}", "type", "UserAssigned", "userAssignedIdentities", d->umi);
    json_object_set_new(j, "identity", sql_identity_json(e, ident, tenant));
    json_decref(ident);
  }
  return j;
}

static json_t *master_json(const sql_parent *p) {
  char id[SQL_RID_MAX + 64], created[40];
  snprintf(id, sizeof id, "%s/databases/master", p->id);
  sql_fmt_time_ms(p->created_ms, created, sizeof created);
  return json_pack("{s:s,s:s,s:s,s:s,s:s,s:{s:s,s:s,s:i},s:{s:s,s:s,s:s,s:s,s:I}}", "id", id, "name", "master", "type",
                   "Microsoft.Sql/servers/databases", "location", p->region, "kind", "v12.0,system", "sku", "name",
                   "System", "tier", "System", "capacity", 0, "properties", "collation", "SQL_Latin1_General_CP1_CI_AS",
                   "status", "Online", "databaseId", "00000000-0000-0000-0000-000000000001", "creationDate", created,
                   "maxSizeBytes", (json_int_t)32212254720LL);
}

/* ---- $expand ---- */

static int parse_point_in_time(const char *s, size_t n, int64_t *at) {
  /* pointInTime('current') | pointInTime('2023-02-04T01:57:42.49Z') */
  while(n && isspace((unsigned char)*s))
    s++, n--;
  if(n < 15 || strncasecmp(s, "pointInTime(", 12))
    return -1;
  s += 12;
  n -= 12;
  while(n && isspace((unsigned char)s[n - 1]))
    n--;
  if(!n || s[n - 1] != ')')
    return -1;
  n--;
  if(n < 2 || (s[0] != '\'' && s[0] != '"') || s[n - 1] != s[0])
    return -1;
  char v[64];
  if(n - 2 >= sizeof v)
    return -1;
  memcpy(v, s + 1, n - 2);
  v[n - 2] = '\0';
  if(!strcasecmp(v, "current")) {
    *at = -1;
    return 0;
  }
  *at = sql_parse_time_ms(v);
  return *at < 0 ? -1 : 0;
}

/* 0 none, 1 keys, 2 keys in use at *at; -1 malformed */
static int parse_expand(emu_call *c, int64_t *at) {
  const char *x = emu_query(c, "$expand"), *filter = emu_query(c, "$filter");
  *at = -1;
  if(!x || !*x)
    return 0;
  while(isspace((unsigned char)*x))
    x++;
  if(strncasecmp(x, "keys", 4))
    return -1;
  const char *p = x + 4;
  while(isspace((unsigned char)*p))
    p++;
  if(!*p) {
    if(filter && *filter)
      return parse_point_in_time(filter, strlen(filter), at) ? -1 : 2;
    return 1;
  }
  if(*p != '(')
    return -1;
  p++;
  while(isspace((unsigned char)*p))
    p++;
  if(strncasecmp(p, "$filter", 7))
    return -1;
  p += 7;
  while(isspace((unsigned char)*p))
    p++;
  if(*p != '=')
    return -1;
  p++;
  size_t n = strlen(p);
  while(n && isspace((unsigned char)p[n - 1]))
    n--;
  if(!n || p[n - 1] != ')')
    return -1;
  return parse_point_in_time(p, n - 1, at) ? -1 : 2;
}

/* ---- GET / list ---- */

static void not_found_db(emu_call *c, const char *name) {
  emu_arm_error(c, 404, "ResourceNotFound",
                "The Resource 'Microsoft.Sql/servers/%.128s/databases/%.128s' under resource group '%.128s' was not found. "
                "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
                emu_var(c, "server"), name, emu_var(c, "rg"));
}

void sql_h_db_get(emu_call *c) {
  sql_parent p;
  if(!sql_begin(c, 0, "Microsoft.Sql/servers/databases/read", &p))
    return;
  int64_t at;
  int ex = parse_expand(c, &at);
  const char *name = emu_var(c, "db");
  if(ex < 0) {
    emu_arm_error(c, 400, "InvalidExpandQueryParameter",
                  "The $expand value '%.200s' is not valid. Use 'keys' or \"keys($filter=pointInTime('current'|'<ISO 8601 time>'))\".",
                  emu_query(c, "$expand"));
  } else if(!strcasecmp(name, "master")) {
    emu_reply_json(c, 200, master_json(&p));
  } else {
    sql_db d;
    if(!sql_db_load(c->e, p.id, name, &d))
      not_found_db(c, name);
    else {
      emu_reply_json(c, 200, sql_db_json(c->e, &d, ex, at, sql_apiver_cmk(emu_query(c, "api-version"))));
      sql_db_free(&d);
    }
  }
  sql_parent_free(&p);
}

/* Databases of the route's server or instance (status_filter: that status
 * only). Servers list master first and page by listPageSize ($skipToken,
 * nextLink); instances answer in one page, without the CMK fields (no
 * database-level CMK there: azure-api.md §1.7). */
static void list_dbs(emu_call *c, int is_mi, const char *status_filter) {
  sql_parent p;
  const char *action = is_mi ? "Microsoft.Sql/managedInstances/databases/read" : "Microsoft.Sql/servers/databases/read";
  if(!sql_begin(c, is_mi, action, &p))
    return;
  long page = LONG_MAX, skip = 0;
  if(!is_mi) {
    sql_settings s;
    sql_settings_load(c->e, &s);
    page = (long)(s.list_page_size < 1 ? 1 : s.list_page_size > 1000 ? 1000 : s.list_page_size);
    const char *tok = emu_query(c, "$skipToken");
    skip = tok ? strtol(tok, NULL, 10) : 0;
    if(skip < 0)
      skip = 0;
  }
  int cmk = !is_mi && sql_apiver_cmk(emu_query(c, "api-version"));
  json_t *arr = json_array();
  long idx = 0;
  int more = 0;
  if(!is_mi && !status_filter) {
    if(idx >= skip && (long)json_array_size(arr) < page)
      json_array_append_new(arr, master_json(&p));
    idx++;
  }
  sqlite3_stmt *st = sql_db_cursor(c->e, p.id);
  sql_db d;
  while(!more && sql_db_next(c->e, st, &d)) {
    if(!status_filter || !strcmp(d.status, status_filter)) {
      if(idx >= skip) {
        if((long)json_array_size(arr) < page)
          json_array_append_new(arr, sql_db_json(c->e, &d, 0, -1, cmk));
        else
          more = 1;
      }
      idx++;
    }
    sql_db_free(&d);
  }
  sqlite3_finalize(st);
  json_t *body = json_pack("{s:o}", "value", arr);
  if(more) {
    char base[128], rid[SQL_RID_MAX];
    emu_base_url(c->e, "management.localhost", base, sizeof base);
    sql_req_rid(c, rid, sizeof rid);
    char link[2048];
    snprintf(link, sizeof link, "%s%s?api-version=%s&$skipToken=%ld", base, rid, emu_query(c, "api-version"),
             skip + (long)json_array_size(arr));
    json_object_set_new(body, "nextLink", json_string(link));
  }
  emu_reply_json(c, 200, body);
  sql_parent_free(&p);
}

void sql_h_db_list(emu_call *c) { list_dbs(c, 0, NULL); }
void sql_h_db_inaccessible(emu_call *c) { list_dbs(c, 0, "Inaccessible"); }

/* ---- the planner: validates a create or an update against current state ---- */

enum { M_DEFAULT = 0, M_COPY, M_SECONDARY, M_PITR, M_RESTORE, M_RECOVERY, M_LTR, M_UNSUPPORTED };

static int parse_mode(const char *s) {
  if(!s || !strcasecmp(s, "Default"))
    return M_DEFAULT;
  if(!strcasecmp(s, "Copy"))
    return M_COPY;
  if(!strcasecmp(s, "Secondary") || !strcasecmp(s, "OnlineSecondary"))
    return M_SECONDARY;
  if(!strcasecmp(s, "PointInTimeRestore"))
    return M_PITR;
  if(!strcasecmp(s, "Restore"))
    return M_RESTORE;
  if(!strcasecmp(s, "Recovery"))
    return M_RECOVERY;
  if(!strcasecmp(s, "RestoreLongTermRetentionBackup"))
    return M_LTR;
  if(!strcasecmp(s, "RestoreExternalBackup") || !strcasecmp(s, "RestoreExternalBackupSecondary"))
    return M_UNSUPPORTED;
  return -1;
}

typedef struct plan {
  int create;
  int mode;
  char umi[SQL_RID_MAX];
  char fed[64];
  char oid[EMU_ID_MAX];
  int identity_given;
  /* the keys map after the request: current + added - removed */
  sql_dbkey *keys;
  int nkeys;
  char **removed; /* uris removed (update) */
  int nremoved;
  int prot_given;
  char prot_uri[SQL_URI_MAX];     /* as sent */
  char prot_thumb[SQ_THUMBPRINT_HEX_LEN + 1];
  int auto_rot;                   /* -1 unchanged */
  int fed_given;
  /* sources */
  int64_t src_uid;
  int64_t src_at;                 /* -1 = now */
  char source_id[SQL_RID_MAX];
  char secondary_type[16];
} plan;

static void plan_free(plan *p) {
  free(p->keys);
  for(int i = 0; i < p->nremoved; i++)
    free(p->removed[i]);
  free(p->removed);
  memset(p, 0, sizeof *p);
}

static int key_index(const plan *p, const sqlkv_ref *r) {
  for(int i = 0; i < p->nkeys; i++)
    if(!strcasecmp(p->keys[i].ref.vault, r->vault) && !strcasecmp(p->keys[i].ref.name, r->name) &&
       (!r->version[0] || !strcasecmp(p->keys[i].ref.version, r->version)))
      return i;
  return -1;
}

static int plan_add_key(plan *p, const sql_dbkey *k) {
  sql_dbkey *n = realloc(p->keys, (size_t)(p->nkeys + 1) * sizeof *n);
  if(!n)
    return -1;
  p->keys = n;
  p->keys[p->nkeys++] = *k;
  return 0;
}

/* Identity block: exactly one user-assigned identity (azure-api.md §1.3, §1.7). */
static int plan_identity(emu *e, const json_t *ident, const char *cur_umi, plan *pl, sql_outcome *o) {
  snprintf(pl->umi, sizeof pl->umi, "%s", cur_umi ? cur_umi : "");
  if(!ident || json_is_null(ident))
    return 0;
  if(!json_is_object(ident))
    return sql_outf(o, 400, "InvalidRequestContent", "'identity' must be an object.");
  pl->identity_given = 1;
  const char *type = sq_json_str(ident, "type");
  const json_t *u = json_object_get(ident, "userAssignedIdentities");
  if(type && !strcasecmp(type, "None")) {
    pl->umi[0] = '\0';
    return 0;
  }
  if(type && strcasecmp(type, "UserAssigned"))
    return sql_outf(o, 400, "InvalidIdentityId",
                "Identity type '%.40s' is not supported for a database: use exactly one user-assigned identity "
                "(system-assigned identities are not supported at the database level).",
                type);
  if(u && !json_is_object(u))
    return sql_outf(o, 400, "InvalidRequestContent", "'identity.userAssignedIdentities' must be an object.");
  /* {} keeps/adds, null removes (PATCH) */
  char keep[4][SQL_RID_MAX];
  int nkeep = 0;
  if(pl->umi[0])
    snprintf(keep[nkeep++], SQL_RID_MAX, "%s", pl->umi);
  if(pl->create)
    nkeep = 0;
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)u, k, v) {
    int idx = -1;
    for(int i = 0; i < nkeep; i++)
      if(!strcasecmp(keep[i], k))
        idx = i;
    if(json_is_null(v)) {
      if(idx >= 0) {
        memmove(keep[idx], keep[idx + 1], (size_t)(nkeep - idx - 1) * SQL_RID_MAX);
        nkeep--;
      }
      continue;
    }
    if(idx >= 0)
      continue;
    if(nkeep >= 4)
      return sql_outf(o, 400, "MultipleIdentitiesOnDatabase", "A database can have only one user-assigned identity.");
    snprintf(keep[nkeep++], SQL_RID_MAX, "%s", k);
  }
  if(nkeep > 1)
    return sql_outf(o, 400, "MultipleIdentitiesOnDatabase",
                "A database can have exactly one user-assigned identity; the request leaves %d.", nkeep);
  if(nkeep == 0 && type)
    return sql_outf(o, 400, "InvalidNumberOfIdentities",
                "Identity type 'UserAssigned' needs exactly one entry in userAssignedIdentities.");
  pl->umi[0] = '\0';
  if(nkeep == 1) {
    emu_identity id;
    if(!emu_identity_by_resource_id(e, keep[0], &id) || strcmp(id.kind, "userAssigned"))
      return sql_outf(o, 400, "InvalidIdentityId", "The user-assigned identity '%.300s' does not exist.", keep[0]);
    snprintf(pl->umi, sizeof pl->umi, "%s", id.resource_id[0] ? id.resource_id : keep[0]);
  }
  return 0;
}

/* Resolves a key URI for the database (as its identity), filling a dbkey. */
static int resolve_key(emu *e, const char *uri, const char *oid, const char *apiver, int need_recovery, sql_dbkey *out,
                       sql_outcome *o) {
  memset(out, 0, sizeof *out);
  sqlkv_ref r;
  if(!sqlkv_parse_uri(uri, &r))
    return sql_outf(o, 400, "AzureKeyVaultInvalidUri",
                "'%.300s' is not a valid Azure Key Vault key URI (https://VAULT.vault.azure.net/keys/NAME/VERSION).", uri);
  if(!r.version[0] && apiver && strcmp(apiver, "2025-01-01") < 0)
    return sql_outf(o, 400, "AzureKeyVaultInvalidUri",
                "The key URI '%.300s' has no version; versionless keys need api-version 2025-01-01 or later.", uri);
  sqlkv_key k;
  sqlkv_fail f;
  if(sqlkv_access(e, uri, oid, SQLKV_ALL, need_recovery, &k, &f))
    return sql_out_kv(o, &f, SQLKV_CTX_DB, uri);
  snprintf(out->uri, sizeof out->uri, "%s", uri);
  out->ref = k.ref;
  snprintf(out->thumb, sizeof out->thumb, "%s", k.thumb);
  out->key_created_ms = k.created_s * 1000;
  snprintf(out->subregion, sizeof out->subregion, "%s", k.region);
  int latest = k.latest;
  sqlkv_key_free(&k);
  (void)latest;
  return 0;
}

/* Thumbprints a database's backup at 'at' needs (-1 = now): its DEK wrap and active log. */
static int needed_thumbs(emu *e, int64_t uid, int64_t at, char th[][SQ_THUMBPRINT_HEX_LEN + 1], int max,
                         char kinds[][8]) {
  int n = 0;
  sql_wrap w;
  if(sql_wrap_at(e, uid, at, &w)) {
    snprintf(th[n], SQ_THUMBPRINT_HEX_LEN + 1, "%s", w.thumb);
    snprintf(kinds[n++], 8, "%s", w.kind);
    sq_buf_free(&w.wrapped);
  }
  char v[64][SQ_THUMBPRINT_HEX_LEN + 1];
  int nv = sql_vlf_thumbs_at(e, uid, at, v, 64);
  for(int i = 0; i < nv && n < max; i++) {
    if(thumb_in(v[i], th, n))
      continue;
    /* which kind of protector wrote it: look at the wrap history */
    sqlite3_stmt *st = emu_sql(e, "SELECT kind FROM sql_wraps WHERE db_uid=? AND thumb=? LIMIT 1");
    char kind[8] = "db";
    if(st) {
      sqlite3_bind_int64(st, 1, uid);
      sqlite3_bind_text(st, 2, v[i], -1, SQLITE_STATIC);
      if(sqlite3_step(st) == SQLITE_ROW)
        snprintf(kind, sizeof kind, "%s", emu_col_text(st, 0));
      sqlite3_finalize(st);
    }
    snprintf(th[n], SQ_THUMBPRINT_HEX_LEN + 1, "%s", v[i]);
    snprintf(kinds[n++], 8, "%s", kind);
  }
  return n;
}

static int plan_has_thumb(const plan *pl, const char *t) {
  for(int i = 0; i < pl->nkeys; i++)
    if(!strcmp(pl->keys[i].thumb, t))
      return 1;
  return 0;
}

/* Locates the source of a copy / replica / restore. */
static int plan_source(emu *e, const json_t *props, const sql_parent *target, plan *pl, sql_outcome *o) {
  const char *sid = sq_json_str(props, "sourceDatabaseId");
  sql_settings s;
  sql_settings_load(e, &s);
  int64_t now = emu_now_ms(e);
  pl->src_at = -1;
  if(pl->mode == M_RESTORE) {
    const char *rd = sq_json_str(props, "restorableDroppedDatabaseId");
    sql_rid r;
    if(rd) {
      if(sql_parse_rid(rd, &r) || strcasecmp(r.child_kind, "restorableDroppedDatabases"))
        return sql_outf(o, 400, "InvalidRestorableDroppedDatabaseId", "'%.300s' is not a restorable dropped database id.", rd);
      char pid[SQL_RID_MAX];
      sql_rid_parent(&r, pid, sizeof pid);
      pl->src_uid = sql_dropped_uid(e, pid, r.child);
    } else if(sid) {
      const char *dd = sq_json_str(props, "sourceDatabaseDeletionDate");
      int64_t del = dd ? sql_parse_time_ms(dd) : -1;
      if(sql_parse_rid(sid, &r) || strcasecmp(r.child_kind, "databases"))
        return sql_outf(o, 400, "InvalidSourceDatabaseId", "'%.300s' is not a database id.", sid);
      char pid[SQL_RID_MAX];
      sql_rid_parent(&r, pid, sizeof pid);
      sqlite3_stmt *st = emu_sql(e, "SELECT uid, deleted_ms FROM sql_dbs WHERE parent_id=? AND name=? AND deleted_ms>0"
                                    " ORDER BY deleted_ms DESC");
      if(st) {
        sqlite3_bind_text(st, 1, pid, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, r.child, -1, SQLITE_STATIC);
        while(sqlite3_step(st) == SQLITE_ROW)
          if(del < 0 || llabs(sqlite3_column_int64(st, 1) - del) < 1000) {
            pl->src_uid = sqlite3_column_int64(st, 0);
            break;
          }
        sqlite3_finalize(st);
      }
    } else {
      return sql_outf(o, 400, "MissingRestorableDroppedDatabaseId",
                  "createMode Restore needs restorableDroppedDatabaseId (or sourceDatabaseId and sourceDatabaseDeletionDate).");
    }
    if(!pl->src_uid)
      return sql_outf(o, 404, "RestorableDroppedDatabaseNotFound", "The dropped database to restore was not found.");
    sql_db d;
    if(!sql_db_load_uid(e, pl->src_uid, &d))
      return sql_outf(o, 404, "RestorableDroppedDatabaseNotFound", "The dropped database to restore was not found.");
    pl->src_at = d.deleted_ms - 1;
    const char *rp = sq_json_str(props, "restorePointInTime");
    if(rp) {
      int64_t t = sql_parse_time_ms(rp);
      if(t < 0 || t < d.created_ms || t >= d.deleted_ms) {
        sql_db_free(&d);
        return sql_outf(o, 400, "InvalidRestorePointInTime",
                    "restorePointInTime '%.64s' is outside the dropped database's restore range.", rp);
      }
      pl->src_at = t;
    }
    if(now - d.deleted_ms > s.dropped_retention_ms) {
      sql_db_free(&d);
      return sql_outf(o, 404, "RestorableDroppedDatabaseNotFound", "The dropped database's backups have expired.");
    }
    snprintf(pl->source_id, sizeof pl->source_id, "%s/databases/%s", d.parent_id, d.name);
    sql_db_free(&d);
    return 0;
  }
  if(pl->mode == M_LTR) {
    const char *lid = sq_json_str(props, "longTermRetentionBackupResourceId");
    if(!lid)
      lid = sq_json_str(props, "recoveryServicesRecoveryPointId");
    if(!lid)
      return sql_outf(o, 400, "MissingLongTermRetentionBackupResourceId",
                  "createMode RestoreLongTermRetentionBackup needs longTermRetentionBackupResourceId.");
    if(!sql_ltr_lookup(e, lid, &pl->src_uid, &pl->src_at))
      return sql_outf(o, 404, "LongTermRetentionBackupNotFound", "The long-term retention backup '%.300s' was not found.", lid);
    snprintf(pl->source_id, sizeof pl->source_id, "%s", lid);
    return 0;
  }
  if(pl->mode == M_RECOVERY) {
    const char *rid = sq_json_str(props, "recoverableDatabaseId");
    if(!rid)
      rid = sid;
    sql_rid r;
    if(!rid || sql_parse_rid(rid, &r) ||
       (strcasecmp(r.child_kind, "recoverableDatabases") && strcasecmp(r.child_kind, "databases")))
      return sql_outf(o, 400, "InvalidRecoverableDatabaseId", "createMode Recovery needs a recoverableDatabaseId.");
    sid = rid;
  }
  if(!sid)
    return sql_outf(o, 400, "MissingSourceDatabaseId", "createMode %s needs sourceDatabaseId.",
                pl->mode == M_COPY ? "Copy" : pl->mode == M_SECONDARY ? "Secondary" : "PointInTimeRestore");
  sql_rid r;
  if(sql_parse_rid(sid, &r) || !r.child[0] ||
     (strcasecmp(r.child_kind, "databases") && strcasecmp(r.child_kind, "recoverableDatabases")))
    return sql_outf(o, 400, "InvalidSourceDatabaseId", "'%.300s' is not a database id.", sid);
  char pid[SQL_RID_MAX];
  sql_rid_parent(&r, pid, sizeof pid);
  sql_parent sp;
  if(!sql_parent_load_id(e, pid, &sp))
    return sql_outf(o, 404, "SourceDatabaseNotFound", "The source server '%.128s' was not found.", r.parent);
  sql_db d;
  int found = sql_db_load(e, sp.id, r.child, &d);
  sql_parent_free(&sp);
  if(!found)
    return sql_outf(o, 404, "SourceDatabaseNotFound", "The source database '%.128s' was not found.", r.child);
  pl->src_uid = d.uid;
  snprintf(pl->source_id, sizeof pl->source_id, "%s", sid);
  int rc = 0;
  if(pl->mode == M_PITR) {
    const char *rp = sq_json_str(props, "restorePointInTime");
    int64_t t = rp ? sql_parse_time_ms(rp) : -1;
    int64_t earliest = d.created_ms > now - s.pitr_retention_ms ? d.created_ms : now - s.pitr_retention_ms;
    if(!rp)
      rc = sql_outf(o, 400, "MissingRestorePointInTime", "createMode PointInTimeRestore needs restorePointInTime.");
    else if(t < 0 || t < earliest || t > now)
      rc = sql_outf(o, 400, "InvalidRestorePointInTime",
                "restorePointInTime '%.64s' is outside the restore range of '%s' (earliest %lld ms).", rp, d.name,
                (long long)earliest);
    else
      pl->src_at = t;
  }
  if(!rc && pl->mode == M_SECONDARY) {
    int64_t pu;
    if(!strcasecmp(d.parent_id, target->id))
      rc = sql_outf(o, 400, "InvalidGeoReplicationTarget", "A geo-secondary must be on a different server than its primary.");
    else if(sql_geo_is_secondary(e, d.uid, &pu) && (d.prot_uri[0] || strcmp(d.dek_kind, "smk")))
      rc = sql_outf(o, 400, "SecurityAzureKeyVaultGeoChainError",
                "The source database '%s' is itself a geo-secondary; chaining geo-replicas is not supported with "
                "customer-managed keys.",
                d.name);
    else if(sql_geo_secondary_count(e, d.uid) >= s.max_geo_secondaries)
      rc = sql_outf(o, 400, "GeoReplicationMaxSecondaryCountReached",
                "The database '%s' already has %d geo-secondaries (the maximum).", d.name, s.max_geo_secondaries);
  }
  if(!rc && (pl->mode == M_SECONDARY || pl->mode == M_COPY) && !strcmp(d.status, "Inaccessible"))
    rc = sql_outf(o, 400, "CMKOperationNotAllowed", "The source database '%s' is inaccessible.", d.name);
  sql_db_free(&d);
  return rc;
}

/* Rules tying the new database's keys to its source (azure-api.md §1.7, §2.5, §3.4). */
static int plan_source_keys(emu *e, const sql_parent *target, plan *pl, sql_outcome *o) {
  sql_db src;
  if(!sql_db_load_uid(e, pl->src_uid, &src))
    return sql_outf(o, 404, "SourceDatabaseNotFound", "The source database was not found.");
  int rc = 0;
  int src_dblevel = src.prot_uri[0] != 0 && !strcmp(src.dek_kind, "db");
  int copyish = pl->mode == M_COPY || pl->mode == M_SECONDARY;
  if(copyish && src_dblevel && !pl->prot_given)
    rc = sql_outf(o, 400, "PerDatabaseCMKCopyOrReplicationAttemptedWithoutDatabaseLevelEncryptionProtector",
              "The source database '%s' uses a database-level encryption protector; the %s must be created with one "
              "(encryptionProtector, a user-assigned identity and the source's current keys).",
              src.name, pl->mode == M_COPY ? "copy" : "secondary");
  else if(pl->mode == M_SECONDARY && src_dblevel && !pl->umi[0])
    rc = sql_outf(o, 400, "PerDatabaseCMKMissingIdentityOnGeoSecondaryDatabase",
              "A geo-secondary of a database with database-level CMK needs a user-assigned identity.");
  else if(pl->mode == M_SECONDARY && !src_dblevel && pl->prot_given)
    rc = sql_outf(o, 400, "PerDatabaseCMKGeoPrimaryIsNotConfiguredWithDatabaseLevelEncryptionProtector",
              "The geo-primary '%s' has no database-level encryption protector, so its secondary cannot have one.",
              src.name);
  char th[70][SQ_THUMBPRINT_HEX_LEN + 1], kinds[70][8];
  int nt = rc ? 0 : needed_thumbs(e, src.uid, pl->src_at, th, 64, kinds);
  for(int i = 0; i < nt && !rc; i++) {
    if(!strcmp(kinds[i], "smk"))
      continue; /* service-managed backups are readable by the service itself */
    if(plan_has_thumb(pl, th[i]))
      continue;
    if(!strcmp(kinds[i], "server") && !pl->prot_given && sql_pkey_has_thumb(e, target->id, th[i]))
      continue;
    if(copyish && !strcmp(kinds[i], "db"))
      rc = sql_outf(o, 400, "PerDatabaseCMKCopyOrReplicationAttemptedWithoutCurrentKeysWithDatabaseName",
                "The %s of '%s' must be created with all the source's current keys: no key with thumbprint %s was "
                "given. Read them with $expand=keys($filter=pointInTime('current')) on the source.",
                pl->mode == M_COPY ? "copy" : "secondary", src.name, th[i]);
    else if(pl->mode == M_SECONDARY)
      rc = sql_outf(o, 400, "SameKeyMaterialNotFoundOnRemoteServer",
                "The secondary server has no key with thumbprint %s, the protector of the primary '%s'. Add the key "
                "to the secondary server first.",
                th[i], src.name);
    else if(pl->mode == M_COPY)
      rc = sql_outf(o, 400, "MissingAsymmetricKeyOnTargetServer",
                "The target server has no key with thumbprint %s that protects the source '%s'.", th[i], src.name);
    else
      rc = sql_outf(o, 400, "MissingKeyVaultUriForRestore",
                "The backup needs the key with thumbprint %s, which is not in the request's keys%s. Pass every key "
                "returned by $expand=keys($filter=pointInTime('<restore time>')) (for long-term retention backups: "
                "every key the source ever used).",
                th[i], !strcmp(kinds[i], "server") ? " nor on the target server" : "");
  }
  sql_db_free(&src);
  return rc;
}

/* Builds a plan from a PUT/PATCH body against the current database (NULL on create). */
static int plan_build(emu *e, const json_t *body, const sql_parent *parent, const sql_db *cur, const char *apiver,
                      plan *pl, sql_outcome *o) {
  memset(pl, 0, sizeof *pl);
  memset(o, 0, sizeof *o);
  pl->create = cur == NULL;
  pl->auto_rot = -1;
  int cmk = sql_apiver_cmk(apiver);
  const json_t *props = json_object_get(body, "properties");
  if(props && !json_is_object(props))
    return sql_outf(o, 400, "InvalidRequestContent", "'properties' must be an object.");
  if(pl->create) {
    pl->mode = parse_mode(sq_json_str(props, "createMode"));
    if(pl->mode < 0)
      return sql_outf(o, 400, "InvalidParameterValue", "Invalid value '%.40s' for createMode.",
                  sq_json_str(props, "createMode"));
    if(pl->mode == M_UNSUPPORTED)
      return sql_outf(o, 400, "UnsupportedCreateMode", "createMode '%.40s' (external backups) is not supported here.",
                  sq_json_str(props, "createMode"));
  }
  if(cmk && plan_identity(e, json_object_get(body, "identity"), cur ? cur->umi : NULL, pl, o))
    return o->status;
  if(!cmk && cur)
    snprintf(pl->umi, sizeof pl->umi, "%s", cur->umi);
  snprintf(pl->fed, sizeof pl->fed, "%s", cur ? cur->fed_client_id : "");
  const json_t *fv = cmk ? json_object_get(props, "federatedClientId") : NULL;
  pl->fed_given = fv != NULL;
  if(fv && sql_fed_client_id(fv, pl->fed, o))
    return o->status;
  if(pl->fed[0] && !pl->umi[0])
    return sql_outf(o, 400, "MissingPrimaryDelegatedIdentityClientId",
                "A federated client id (cross-tenant CMK) needs a user-assigned identity on the database.");
  if(pl->fed[0]) {
    emu_identity id;
    if(!emu_identity_by_client_id(e, pl->fed, &id))
      return sql_outf(o, 400, "AdalServicePrincipalNotFound", "No application with client id '%s' exists.", pl->fed);
  }
  db_identity_oid(e, pl->umi, pl->fed, pl->oid);
  const json_t *ar = cmk ? json_object_get(props, "encryptionProtectorAutoRotation") : NULL;
  if(ar && !json_is_null(ar)) {
    if(!json_is_boolean(ar))
      return sql_outf(o, 400, "InvalidParameterValue", "encryptionProtectorAutoRotation must be a boolean.");
    pl->auto_rot = json_is_true(ar);
  }
  /* keys map */
  if(cur) {
    sql_dbkey *ck = NULL;
    int n = sql_dbkeys_list(e, cur->uid, -1, &ck);
    for(int i = 0; i < n; i++)
      plan_add_key(pl, &ck[i]);
    free(ck);
  }
  const json_t *keys = cmk ? json_object_get(props, "keys") : NULL;
  if(keys && !json_is_object(keys) && !json_is_null(keys))
    return sql_outf(o, 400, "InvalidRequestContent", "'properties.keys' must be an object of key URI -> {} or null.");
  const char *k;
  json_t *v;
  if(json_object_size(keys) > 512)
    return sql_outf(o, 400, "InvalidRequestContent", "Too many keys in one request (at most 512).");
  json_object_foreach((json_t *)keys, k, v) {
    sqlkv_ref r;
    if(!sqlkv_parse_uri(k, &r))
      return sql_outf(o, 400, "AzureKeyVaultInvalidUri", "'%.300s' is not a valid Azure Key Vault key URI.", k);
    int idx = key_index(pl, &r);
    if(json_is_null(v)) {
      if(idx < 0)
        continue;
      if(!pl->create) {
        char **nr = realloc(pl->removed, (size_t)(pl->nremoved + 1) * sizeof *nr);
        if(!nr)
          return sql_outf(o, 500, "InternalServerError", "out of memory");
        pl->removed = nr;
        pl->removed[pl->nremoved++] = strdup(pl->keys[idx].uri);
      }
      memmove(&pl->keys[idx], &pl->keys[idx + 1], (size_t)(pl->nkeys - idx - 1) * sizeof *pl->keys);
      pl->nkeys--;
      continue;
    }
    if(!json_is_object(v))
      return sql_outf(o, 400, "InvalidRequestContent", "Each value of 'properties.keys' must be {} or null.");
    if(idx >= 0)
      continue;
    if(!pl->umi[0])
      return sql_outf(o, 400, "InvalidNumberOfIdentities",
                  "Database-level keys need a user-assigned identity on the database (identity.type UserAssigned).");
    sql_dbkey dk;
    if(resolve_key(e, k, pl->oid, apiver, 0, &dk, o))
      return o->status;
    if(plan_add_key(pl, &dk))
      return sql_outf(o, 500, "InternalServerError", "out of memory");
  }
  /* protector */
  const json_t *pv = cmk ? json_object_get(props, "encryptionProtector") : NULL;
  if(pv && json_is_string(pv) && *json_string_value(pv)) {
    const char *uri = json_string_value(pv);
    pl->prot_given = 1;
    snprintf(pl->prot_uri, sizeof pl->prot_uri, "%s", uri);
    if(!pl->umi[0])
      return sql_outf(o, 400, "InvalidNumberOfIdentities",
                  "A database-level encryption protector needs a user-assigned identity on the database.");
    sql_dbkey dk;
    if(resolve_key(e, uri, pl->oid, apiver, 1, &dk, o))
      return o->status;
    sqlkv_ref r;
    sqlkv_parse_uri(uri, &r);
    if(r.version[0]) {
      sqlkv_key latest;
      sqlkv_fail f;
      if(!sqlkv_latest(e, &r, pl->oid, &latest, &f)) {
        int old = strcasecmp(latest.ref.version, r.version) != 0;
        sqlkv_key_free(&latest);
        if(old)
          return sql_outf(o, 400, "OldGenerationOfAKVKeyBeingUsedError",
                      "The key '%.300s' is not the latest version of '%s'; the protector must use the newest version.",
                      uri, r.name);
      }
    }
    snprintf(pl->prot_thumb, sizeof pl->prot_thumb, "%s", dk.thumb);
    if(key_index(pl, &r) < 0 && plan_add_key(pl, &dk))
      return sql_outf(o, 500, "InternalServerError", "out of memory");
  } else if(pv && !json_is_null(pv) && !json_is_string(pv)) {
    return sql_outf(o, 400, "InvalidRequestContent", "'encryptionProtector' must be a key URI string.");
  }
  /* database-level CMK cannot be dropped by removing its protector key or identity */
  const char *eff_prot = pl->prot_given ? pl->prot_uri : cur ? cur->prot_uri : "";
  if(cur && cur->prot_uri[0] && !pl->umi[0])
    return sql_outf(o, 400, "InvalidNumberOfIdentities",
                "The database uses a database-level encryption protector; it must keep one user-assigned identity.");
  if(cur) {
    for(int i = 0; i < pl->nremoved; i++) {
      sqlkv_ref r;
      sqlkv_parse_uri(pl->removed[i], &r);
      sqlkv_ref pr;
      if(eff_prot[0] && sqlkv_parse_uri(eff_prot, &pr) && !strcasecmp(pr.vault, r.vault) && !strcasecmp(pr.name, r.name) &&
         (!pr.version[0] || !strcasecmp(pr.version, r.version)))
        return sql_outf(o, 400, "AzureKeyVaultKeyNameCurrentlyInUse",
                    "The key '%.300s' is the database's encryption protector and cannot be removed.", pl->removed[i]);
      /* still protecting active log? */
      char th[SQ_THUMBPRINT_HEX_LEN + 1] = "";
      sqlite3_stmt *st = emu_sql(e, "SELECT thumb FROM sql_db_keys WHERE db_uid=? AND uri=? LIMIT 1");
      if(st) {
        sqlite3_bind_int64(st, 1, cur->uid);
        sqlite3_bind_text(st, 2, pl->removed[i], -1, SQLITE_STATIC);
        if(sqlite3_step(st) == SQLITE_ROW)
          snprintf(th, sizeof th, "%s", emu_col_text(st, 0));
        sqlite3_finalize(st);
      }
      char vt[64][SQ_THUMBPRINT_HEX_LEN + 1];
      int nv = sql_vlf_thumbs_at(e, cur->uid, -1, vt, 64);
      if(th[0] && thumb_in(th, vt, nv) && !plan_has_thumb(pl, th))
        return sql_outf(o, 400, "AzureKeyVaultKeyNameCurrentlyInUse",
                    "The key '%.300s' still protects active log of the database; generate log (or wait) before "
                    "removing it.",
                    pl->removed[i]);
    }
  }
  if(cur && pl->prot_given) {
    if(sql_db_rotation_blocked(e, cur, pl->prot_thumb))
      return sql_outf(o, 400, "PerDatabaseCMKKeyRotationAttemptedWhileOldThumbprintInUse",
                  "Key rotation of database '%s' is blocked: active log is still encrypted with a key older than the "
                  "current protector (thumbprint in use differs from %s). Wait for the log to be truncated or "
                  "generate workload, then retry. See https://aka.ms/azuresqldbkeyrotation",
                  cur->name, cur->dek_thumb);
    /* geo-primary: every secondary must already hold the new protector */
    int64_t secs[16];
    int ns = sql_geo_secondaries(e, cur->uid, secs, 16);
    for(int i = 0; i < ns; i++) {
      sql_dbkey *sk = NULL;
      int n = sql_dbkeys_list(e, secs[i], -1, &sk);
      int uri_ok = 0, mat_ok = 0;
      sqlkv_ref r;
      sqlkv_parse_uri(pl->prot_uri, &r);
      for(int j = 0; j < n; j++) {
        if(!strcmp(sk[j].thumb, pl->prot_thumb))
          mat_ok = 1;
        if(!strcasecmp(sk[j].ref.vault, r.vault) && !strcasecmp(sk[j].ref.name, r.name))
          uri_ok = 1;
      }
      free(sk);
      sql_db sdb;
      char sname[EMU_ID_MAX] = "?";
      if(sql_db_load_uid(e, secs[i], &sdb)) {
        snprintf(sname, sizeof sname, "%s", sdb.name);
        int dbl = sdb.prot_uri[0] != 0;
        sql_db_free(&sdb);
        if(!dbl)
          continue;
      }
      if(!mat_ok)
        return sql_outf(o, 400, "PerDatabaseCMKAKVKeyMaterialMissingOnGeoSecondary",
                    "The geo-secondary '%s' has no key with the new protector's material (thumbprint %s); add it to "
                    "every secondary first.",
                    sname, pl->prot_thumb);
      if(!uri_ok)
        return sql_outf(o, 400, "PerDatabaseCMKAKVKeyUriMissingOnGeoSecondary",
                    "The geo-secondary '%s' does not have the key URI '%.300s'; add it to every secondary first.",
                    sname, pl->prot_uri);
    }
  }
  /* the server's CMK and a database opting out: not possible (revert needs SMK) */
  if(pl->create && pl->mode != M_DEFAULT) {
    int rc = plan_source(e, props, parent, pl, o);
    if(!rc)
      rc = plan_source_keys(e, parent, pl, o);
    if(rc)
      return rc;
    const char *stype = sq_json_str(props, "secondaryType");
    snprintf(pl->secondary_type, sizeof pl->secondary_type, "%s",
             pl->mode == M_SECONDARY ? (stype ? stype : "Geo") : "");
  }
  return 0;
}

/* ---- applying a create ---- */

static const char *mode_name(int m) {
  static const char *const n[] = {"Default", "Copy", "Secondary", "PointInTimeRestore", "Restore", "Recovery",
                                  "RestoreLongTermRetentionBackup"};
  return m >= 0 && m < (int)(sizeof n / sizeof n[0]) ? n[m] : "Default";
}

/* Reads the source backup at src_at with the plan's keys: unwraps its DEK
 * and every active log segment's DEK, and authenticates its data. */
static int open_backup(emu *e, const plan *pl, const sql_parent *target, unsigned char dek[SQL_DEK_LEN], sql_outcome *o) {
  sql_wrap w;
  if(!sql_wrap_at(e, pl->src_uid, pl->src_at, &w))
    return sql_outf(o, 400, "SourceDatabaseNotFound", "The source has no backup at that time.");
  keysrc ks = {pl->oid, pl->keys, pl->nkeys, target};
  sqlkv_fail f;
  char used[SQL_URI_MAX];
  sqlkv_status st = unwrap_with(e, &ks, w.kind, w.thumb, w.wrapped.ptr, w.wrapped.len, dek, &f, used, sizeof used);
  sq_buf_free(&w.wrapped);
  if(st) {
    if(st == SK_NOTFOUND && strstr(f.detail, "was provided"))
      return sql_outf(o, 400, "MissingKeyVaultUriForRestore", "%s", f.detail);
    return sql_out_kv(o, &f, SQLKV_CTX_DB, used);
  }
  /* every log segment active at that time must open too */
  sqlite3_stmt *q = emu_sql(e, "SELECT thumb, wrapped FROM sql_vlfs WHERE db_uid=?1 AND created_ms<=?2 AND"
                               " (retired_ms=0 OR retired_ms>?2)");
  int rc = 0;
  if(q) {
    sqlite3_bind_int64(q, 1, pl->src_uid);
    sqlite3_bind_int64(q, 2, pl->src_at < 0 ? INT64_MAX : pl->src_at);
    while(!rc && sqlite3_step(q) == SQLITE_ROW) {
      char thumb[SQ_THUMBPRINT_HEX_LEN + 1], kind[8] = "db";
      snprintf(thumb, sizeof thumb, "%s", emu_col_text(q, 0));
      sqlite3_stmt *k = emu_sql(e, "SELECT kind FROM sql_wraps WHERE db_uid=? AND thumb=? LIMIT 1");
      if(k) {
        sqlite3_bind_int64(k, 1, pl->src_uid);
        sqlite3_bind_text(k, 2, thumb, -1, SQLITE_STATIC);
        if(sqlite3_step(k) == SQLITE_ROW)
          snprintf(kind, sizeof kind, "%s", emu_col_text(k, 0));
        sqlite3_finalize(k);
      }
      unsigned char d2[SQL_DEK_LEN];
      if(unwrap_with(e, &ks, kind, thumb, sqlite3_column_blob(q, 1), (size_t)sqlite3_column_bytes(q, 1), d2, &f, used,
                     sizeof used)) {
        if(f.st == SK_NOTFOUND && strstr(f.detail, "was provided"))
          rc = sql_outf(o, 400, "MissingKeyVaultUriForRestore", "The backup's log needs a key that was not provided: %s",
                    f.detail);
        else
          rc = sql_out_kv(o, &f, SQLKV_CTX_DB, used);
      } else if(memcmp(d2, dek, SQL_DEK_LEN)) {
        rc = sql_outf(o, 400, "AzureKeyVaultKeyThumbprintIsDifferent", "A log segment holds a different encryption key.");
      }
      sq_wipe(d2, sizeof d2);
    }
    sqlite3_finalize(q);
  }
  if(rc)
    return rc;
  q = emu_sql(e, "SELECT blob FROM sql_data WHERE db_uid=? AND created_ms<=?");
  if(q) {
    sqlite3_bind_int64(q, 1, pl->src_uid);
    sqlite3_bind_int64(q, 2, pl->src_at < 0 ? INT64_MAX : pl->src_at);
    while(!rc && sqlite3_step(q) == SQLITE_ROW) {
      sq_buf pt;
      sq_buf_init(&pt, 1 << 20);
      if(kvc_open(dek, sqlite3_column_blob(q, 0), (size_t)sqlite3_column_bytes(q, 0), &pt))
        rc = sql_outf(o, 400, "AzureKeyVaultKeyThumbprintIsDifferent", "The backup's data does not open with its key.");
      sq_buf_free_wipe(&pt);
    }
    sqlite3_finalize(q);
  }
  return rc;
}

/* Runs sql (?1 = the new database, ?2 = the plan's source, ?3 = its backup time). */
static void copy_backup_rows(emu *e, const char *sql, int64_t uid, const plan *pl) {
  sqlite3_stmt *q = emu_sql(e, sql);
  if(q) {
    sqlite3_bind_int64(q, 1, uid);
    sqlite3_bind_int64(q, 2, pl->src_uid);
    sqlite3_bind_int64(q, 3, pl->src_at < 0 ? INT64_MAX : pl->src_at);
    sqlite3_step(q);
    sqlite3_finalize(q);
  }
}

int sql_db_create(emu *e, const json_t *body, const sql_parent *parent, const char *name, const char *apiver,
                  int64_t now, sql_db *out, sql_outcome *o) {
  plan pl;
  if(plan_build(e, body, parent, NULL, apiver, &pl, o)) {
    plan_free(&pl);
    return o->status;
  }
  unsigned char dek[SQL_DEK_LEN];
  int rc = 0;
  if(pl.mode == M_DEFAULT) {
    if(RAND_bytes(dek, sizeof dek) != 1)
      rc = sql_outf(o, 500, "InternalServerError", "RAND_bytes failed");
  } else {
    rc = open_backup(e, &pl, parent, dek, o);
  }
  /* wrap under the new protector */
  sq_buf wrapped;
  sq_buf_init(&wrapped, 4096);
  char thumb[SQ_THUMBPRINT_HEX_LEN + 1] = "", canon[SQL_URI_MAX] = "";
  const char *kind = pl.prot_given ? "db" : !strcmp(parent->prot_type, "AzureKeyVault") ? "server" : "smk";
  if(!rc) {
    sqlkv_fail f;
    if(wrap_under(e, kind, pl.prot_uri, pl.oid, parent, dek, &wrapped, thumb, canon, &f))
      rc = sql_out_kv(o, &f, !strcmp(kind, "db") ? SQLKV_CTX_DB : SQLKV_CTX_SERVER, !strcmp(kind, "db") ? pl.prot_uri : parent->prot_uri);
  }
  if(rc)
    goto done;
  const json_t *props = json_object_get(body, "properties");
  sql_db d;
  memset(&d, 0, sizeof d);
  snprintf(d.parent_id, sizeof d.parent_id, "%s", parent->id);
  d.is_mi = parent->is_mi;
  snprintf(d.name, sizeof d.name, "%s", name);
  snprintf(d.location, sizeof d.location, "%s", parent->region);
  emu_guid(d.database_id);
  const json_t *sku = json_object_get(body, "sku");
  d.sku = json_is_object(sku) ? json_deep_copy(sku) : NULL;
  const json_t *tags = json_object_get(body, "tags");
  d.tags = json_is_object(tags) ? json_deep_copy(tags) : NULL;
  d.extra = json_object();
  static const char *const keep[] = {"readScale", "zoneRedundant", "licenseType", "autoPauseDelay", "minCapacity",
                                     "highAvailabilityReplicaCount", "requestedBackupStorageRedundancy",
                                     "elasticPoolId", NULL};
  for(int i = 0; keep[i]; i++)
    if(json_object_get(props, keep[i]))
      json_object_set(d.extra, keep[i], json_object_get(props, keep[i]));
  snprintf(d.create_mode, sizeof d.create_mode, "%s", mode_name(pl.mode));
  snprintf(d.source_id, sizeof d.source_id, "%s", pl.source_id);
  snprintf(d.secondary_type, sizeof d.secondary_type, "%s", pl.secondary_type);
  snprintf(d.status, sizeof d.status, "Online");
  snprintf(d.umi, sizeof d.umi, "%s", pl.umi);
  snprintf(d.fed_client_id, sizeof d.fed_client_id, "%s", pl.fed);
  if(pl.prot_given)
    snprintf(d.prot_uri, sizeof d.prot_uri, "%s", pl.prot_uri);
  d.auto_rot = pl.auto_rot > 0;
  const char *coll = sq_json_str(props, "collation");
  snprintf(d.collation, sizeof d.collation, "%s", coll ? coll : "SQL_Latin1_General_CP1_CI_AS");
  d.max_size = sq_json_int(props, "maxSizeBytes", 0);
  d.created_ms = now;
  d.earliest_restore_ms = now;
  sql_settings s;
  sql_settings_load(e, &s);
  d.next_check_ms = now + s.key_check_interval_ms;
  if(sql_db_save(e, &d) || set_wrap(e, &d, now, kind, canon, thumb, &wrapped) || sql_db_save(e, &d)) {
    rc = sql_outf(o, 500, "InternalServerError", "Could not store the database.");
    sql_db_free(&d);
    goto done;
  }
  for(int i = 0; i < pl.nkeys; i++)
    sql_dbkey_add(e, d.uid, &pl.keys[i], now);
  if(pl.mode == M_DEFAULT) {
    char line[256];
    snprintf(line, sizeof line, "CREATE DATABASE [%s]", name);
    add_data(e, d.uid, now, dek, line);
    add_vlf(e, &d, now, dek, line, 1, 0);
  } else {
    /* the backup's log and data come along as they are */
    copy_backup_rows(e, "INSERT INTO sql_vlfs(db_uid, created_ms, thumb, uri, wrapped, payload, records)"
                        " SELECT ?1, created_ms, thumb, uri, wrapped, payload, records FROM sql_vlfs"
                        " WHERE db_uid=?2 AND created_ms<=?3 AND (retired_ms=0 OR retired_ms>?3) ORDER BY seq",
                     d.uid, &pl);
    copy_backup_rows(e, "INSERT INTO sql_data(db_uid, created_ms, blob) SELECT ?1, created_ms, blob FROM sql_data"
                        " WHERE db_uid=?2 AND created_ms<=?3 ORDER BY seq",
                     d.uid, &pl);
    if(pl.mode == M_SECONDARY)
      sql_geo_link_add(e, pl.src_uid, d.uid, pl.secondary_type, now);
  }
  *out = d;
done:
  sq_wipe(dek, sizeof dek);
  sq_buf_free(&wrapped);
  plan_free(&pl);
  return rc;
}

/* ---- applying an update ---- */

static int apply_update(emu *e, const json_t *body, const sql_parent *parent, sql_db *d, const char *apiver, int64_t now,
                        sql_outcome *o) {
  plan pl;
  if(plan_build(e, body, parent, d, apiver, &pl, o)) {
    plan_free(&pl);
    return o->status;
  }
  int rc = 0;
  /* protector change: unwrap with the old protector, wrap with the new one */
  int rewrap = pl.prot_given && (strcmp(pl.prot_thumb, d->dek_thumb) || strcmp(d->dek_kind, "db") ||
                                 strcasecmp(pl.prot_uri, d->prot_uri));
  new_wrap w;
  memset(&w, 0, sizeof w);
  if(rewrap) {
    sqlkv_fail f;
    char used[SQL_URI_MAX] = "";
    if(rewrap_dek(e, d, "db", pl.prot_uri, pl.oid, parent, &w, &f, used))
      rc = sql_out_kv(o, &f, SQLKV_CTX_DB, used[0] ? pl.prot_uri : d->dek_uri); /* opening or wrapping failed */
  }
  if(!rc) {
    /* keys map history */
    sql_dbkey *ck = NULL;
    int n = sql_dbkeys_list(e, d->uid, -1, &ck);
    for(int i = 0; i < pl.nremoved; i++)
      sql_dbkey_remove(e, d->uid, pl.removed[i], now);
    for(int i = 0; i < pl.nkeys; i++) {
      int had = 0;
      for(int j = 0; j < n; j++)
        if(!strcmp(ck[j].uri, pl.keys[i].uri))
          had = 1;
      if(!had)
        sql_dbkey_add(e, d->uid, &pl.keys[i], now);
    }
    free(ck);
    snprintf(d->umi, sizeof d->umi, "%s", pl.umi);
    snprintf(d->fed_client_id, sizeof d->fed_client_id, "%s", pl.fed);
    if(pl.auto_rot >= 0)
      d->auto_rot = pl.auto_rot;
    if(pl.prot_given)
      snprintf(d->prot_uri, sizeof d->prot_uri, "%s", pl.prot_uri);
    if(rewrap)
      record_wrap(e, d, now, &w);
    const json_t *sku = json_object_get(body, "sku");
    if(json_is_object(sku)) {
      json_decref(d->sku);
      d->sku = json_deep_copy(sku);
    }
    const json_t *tags = json_object_get(body, "tags");
    if(json_is_object(tags)) {
      json_decref(d->tags);
      d->tags = json_deep_copy(tags);
    }
    if(sql_db_save(e, d))
      rc = sql_outf(o, 500, "InternalServerError", "Could not store the database.");
  }
  sq_buf_free(&w.wrapped);
  plan_free(&pl);
  return rc;
}

/* ---- handlers ---- */

static int valid_db_name(const char *n) {
  size_t l = strlen(n);
  if(l < 1 || l > 128 || n[l - 1] == '.' || n[l - 1] == ' ')
    return 0;
  for(size_t i = 0; i < l; i++)
    if(strchr("<>*%&:\\/?", n[i]) || (unsigned char)n[i] < 0x20)
      return 0;
  return 1;
}

/* A location as ARM compares it: "East US" is "eastus". */
static const char *location_key(const char *loc, char out[EMU_ID_MAX]) {
  size_t j = 0;
  for(const char *s = loc; *s && j + 1 < EMU_ID_MAX; s++)
    if(*s != ' ')
      out[j++] = (char)tolower((unsigned char)*s);
  out[j] = '\0';
  return out;
}

/* Caller needs assign/action on the identities it attaches (ARM linked authorization). */
static int check_linked_umi(emu_call *c, const json_t *body) {
  const json_t *u = sq_json_path(body, "identity.userAssignedIdentities");
  const char *k;
  json_t *v;
  if(!c->e->set.arm_authorization)
    return 0;
  json_object_foreach((json_t *)u, k, v) {
    if(json_is_null(v))
      continue;
    /* Built-in roles grant "userAssignedIdentities/(star)/assign/action"; the
     * framework's glob needs a segment there, so ask for both spellings. */
    if(!emu_rbac_allows(c->e, c->oid, k, "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action", 0) &&
       !emu_rbac_allows(c->e, c->oid, k, "Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action", 0)) {
      emu_arm_error(c, 403, "LinkedAuthorizationFailed",
                    "The client '%s' with object id '%s' has permission to perform action "
                    "'Microsoft.Sql/servers/databases/write' on scope '%.300s'; however, it does not have permission to "
                    "perform action 'Microsoft.ManagedIdentity/userAssignedIdentities/assign/action' on the linked "
                    "scope(s) '%.300s' or the linked scope(s) are invalid.",
                    c->appid[0] ? c->appid : c->oid, c->oid, c->req->path, k);
      return -1;
    }
  }
  return 0;
}

static void db_write(emu_call *c, int is_patch) {
  sql_parent p;
  if(!sql_begin(c, 0, "Microsoft.Sql/servers/databases/write", &p))
    return;
  json_t *body = NULL;
  const char *name = emu_var(c, "db");
  const char *apiver = emu_query(c, "api-version");
  sql_db cur;
  int exists = 0;
  sql_outcome o;
  plan pl;
  memset(&pl, 0, sizeof pl);
  if(emu_body_json(c, 0, &body))
    goto out;
  if(!valid_db_name(name)) {
    emu_arm_error(c, 400, "InvalidResourceName", "The database name '%.128s' is not valid.", name);
    goto out;
  }
  if(!strcasecmp(name, "master")) {
    if(json_object_get(body, "identity"))
      emu_arm_error(c, 400, "CannotAssignIdentityToMaster", "An identity cannot be assigned to the master database.");
    else
      emu_arm_error(c, 400, "OperationNotAllowedOnMasterDatabase", "The master database cannot be changed.");
    goto out;
  }
  if(check_linked_umi(c, body))
    goto out;
  exists = sql_db_load(c->e, p.id, name, &cur);
  if(is_patch && !exists) {
    not_found_db(c, name);
    goto out;
  }
  if(!exists) {
    const char *loc = sq_json_str(body, "location");
    if(!loc) {
      emu_arm_error(c, 400, "LocationRequired", "The location property is required for this definition.");
      goto out;
    }
    char a[EMU_ID_MAX], b[EMU_ID_MAX];
    if(strcmp(location_key(loc, a), location_key(p.region, b))) {
      emu_arm_error(c, 400, "InvalidResourceLocation",
                    "The database must be in its server's location '%s', not '%.64s'.", p.region, loc);
      goto out;
    }
    if(sql_lro_running(c)) {
      emu_arm_error(c, 409, "ConflictingDatabaseOperation", "An operation on database '%.128s' is already in progress.", name);
      goto out;
    }
  } else {
    const json_t *props = json_object_get(body, "properties");
    int touches_prot = json_object_get(props, "encryptionProtector") != NULL;
    if(sql_lro_running(c)) {
      emu_arm_error(c, 409, touches_prot ? "EncryptionProtectorChangeInProgress" : "ConflictingDatabaseOperation",
                    "An operation on database '%.128s' is already in progress; retry when it completes.", name);
      goto out;
    }
  }
  if(plan_build(c->e, body, &p, exists ? &cur : NULL, apiver, &pl, &o)) {
    sql_reply_outcome(c, &o);
    goto out;
  }
  json_t *input = json_pack("{s:s,s:s,s:O}", "parent", p.id, "name", name, "body", body);
  sql_lro(c, exists ? "UpdateLogicalDatabase" : "CreateLogicalDatabase", "database", p.region, input);
out:
  plan_free(&pl);
  if(exists)
    sql_db_free(&cur);
  json_decref(body);
  sql_parent_free(&p);
}

void sql_h_db_put(emu_call *c) { db_write(c, 0); }
void sql_h_db_patch(emu_call *c) { db_write(c, 1); }

static int lro_db_write(emu *e, const emu_lro *op, const json_t *in, char code[128], char msg[512], json_t **result) {
  sql_parent p;
  sql_outcome o;
  memset(&o, 0, sizeof o);
  const char *pid = sq_json_str(in, "parent"), *name = sq_json_str(in, "name"), *av = sq_json_str(in, "apiVersion");
  if(!pid || !name || !sql_parent_load_id(e, pid, &p)) {
    snprintf(code, 128, "ParentResourceNotFound");
    snprintf(msg, 512, "The server no longer exists.");
    return 1;
  }
  const json_t *body = json_object_get(in, "body");
  sql_db d;
  int existed = sql_db_load(e, p.id, name, &d);
  int rc = existed ? apply_update(e, body, &p, &d, av, op->done_ms, &o)
                   : sql_db_create(e, body, &p, name, av, op->done_ms, &d, &o);
  sql_parent_free(&p);
  if(rc) {
    if(existed)
      sql_db_free(&d);
    return sql_out_lro(&o, code, msg);
  }
  *result = sql_db_json(e, &d, 0, -1, sql_apiver_cmk(av));
  sql_db_free(&d);
  return 0;
}

void sql_h_db_delete(emu_call *c) {
  sql_parent p;
  if(!sql_begin(c, 0, "Microsoft.Sql/servers/databases/delete", &p))
    return;
  const char *name = emu_var(c, "db");
  sql_db d;
  if(!strcasecmp(name, "master")) {
    emu_arm_error(c, 400, "OperationNotAllowedOnMasterDatabase", "The master database cannot be deleted.");
  } else if(!sql_db_load(c->e, p.id, name, &d)) {
    emu_reply_empty(c, 204);
  } else {
    sql_lro(c, "DropLogicalDatabase", "database", p.region,
            json_pack("{s:s,s:s,s:I}", "parent", p.id, "name", name, "uid", (json_int_t)d.uid));
    sql_db_free(&d);
  }
  sql_parent_free(&p);
}

static int lro_db_drop(emu *e, const emu_lro *op, const json_t *in, char code[128], char msg[512], json_t **result) {
  (void)code;
  (void)msg;
  (void)result;
  sql_db d;
  if(!sql_db_load_uid(e, sq_json_int(in, "uid", 0), &d) || d.deleted_ms)
    return 0;
  d.deleted_ms = op->done_ms;
  sql_geo_drop_links(e, d.uid);
  sql_db_save(e, &d);
  sql_db_free(&d);
  return 0;
}

/* ---- revalidate / revert ---- */

static int load_db_for_action(emu_call *c, const char *action, sql_parent *p, sql_db *d) {
  if(!sql_begin_db(c, action, not_found_db, p, d))
    return 0;
  if(!d->prot_uri[0]) {
    emu_arm_error(c, 400, "DatabaseLevelEncryptionProtectorDoesNotExist",
                  "The database '%s' has no database-level encryption protector.", d->name);
    sql_db_free(d);
    sql_parent_free(p);
    return 0;
  }
  return 1;
}

void sql_h_db_revalidate(emu_call *c) {
  sql_parent p;
  sql_db d;
  if(!load_db_for_action(c, "Microsoft.Sql/servers/databases/encryptionProtector/revalidate/action", &p, &d))
    return;
  sqlkv_fail f;
  if(sql_db_check(c->e, &d, &f))
    sqlkv_reply_error(c, &f, SQLKV_CTX_DB, d.prot_uri);
  else
    sql_lro(c, "RevalidateDatabaseEncryptionProtector", "databaseEncryptionProtectorRevalidate", p.region,
            json_pack("{s:I}", "uid", (json_int_t)d.uid));
  sql_db_free(&d);
  sql_parent_free(&p);
}

/* The live database an LRO acts on (input "uid"); fails the LRO when it is gone. */
static int lro_db(emu *e, const json_t *in, sql_db *d, char code[128], char msg[512]) {
  if(sql_db_load_uid(e, sq_json_int(in, "uid", 0), d)) {
    if(!d->deleted_ms)
      return 1;
    sql_db_free(d);
  }
  snprintf(code, 128, "ResourceNotFound");
  snprintf(msg, 512, "The database no longer exists.");
  return 0;
}

void sql_db_clear_failure(sql_db *d) {
  d->fail_since_ms = 0;
  d->fail_code[0] = d->fail_msg[0] = '\0';
}

sqlkv_status sql_db_reopen(emu *e, sql_db *d, sqlkv_fail *f) {
  unsigned char dek[SQL_DEK_LEN];
  sqlkv_status st = sql_db_check(e, d, f);
  if(!st)
    st = sql_db_unwrap_current(e, d, dek, f, NULL);
  sq_wipe(dek, sizeof dek);
  if(!st) {
    snprintf(d->status, sizeof d->status, "Online");
    sql_db_clear_failure(d);
  }
  return st;
}

static int lro_db_revalidate(emu *e, const emu_lro *op, const json_t *in, char code[128], char msg[512],
                             json_t **result) {
  (void)result;
  sql_db d;
  if(!lro_db(e, in, &d, code, msg))
    return 1;
  sqlkv_fail f;
  int rc = 0;
  if(sql_db_reopen(e, &d, &f)) {
    sqlkv_error(&f, SQLKV_CTX_DB, d.prot_uri, code, msg);
    rc = 1;
  } else {
    sql_settings s;
    sql_settings_load(e, &s);
    d.next_check_ms = op->done_ms + s.key_check_interval_ms;
    sql_db_save(e, &d);
  }
  sql_db_free(&d);
  return rc;
}

void sql_h_db_revert(emu_call *c) {
  sql_parent p;
  sql_db d;
  if(!load_db_for_action(c, "Microsoft.Sql/servers/databases/encryptionProtector/revert/action", &p, &d))
    return;
  if(strcmp(p.prot_type, "ServiceManaged"))
    emu_arm_error(c, 400, "RevertDatabaseLevelKeyOnlySupportedWithSMK",
                  "Reverting database '%s' to server-level encryption is only supported when the server uses a "
                  "service-managed key; server '%s' uses a customer-managed key.",
                  d.name, p.name);
  else if(sql_lro_running(c))
    emu_arm_error(c, 409, "EncryptionProtectorChangeInProgress", "A protector change is already in progress.");
  else
    sql_lro(c, "RevertDatabaseEncryptionProtector", "databaseEncryptionProtectorRevert", p.region,
            json_pack("{s:I}", "uid", (json_int_t)d.uid));
  sql_db_free(&d);
  sql_parent_free(&p);
}

static int lro_db_revert(emu *e, const emu_lro *op, const json_t *in, char code[128], char msg[512], json_t **result) {
  (void)result;
  sql_db d;
  if(!lro_db(e, in, &d, code, msg))
    return 1;
  sql_parent p;
  int rc = 0;
  if(!sql_parent_load_id(e, d.parent_id, &p)) {
    sql_db_free(&d);
    return 0;
  }
  if(strcmp(p.prot_type, "ServiceManaged")) {
    snprintf(code, 128, "RevertDatabaseLevelKeyOnlySupportedWithSMK");
    snprintf(msg, 512, "The server started using a customer-managed key; revert needs a service-managed key.");
    rc = 1;
  } else if(d.prot_uri[0]) {
    sqlkv_fail f;
    char used[SQL_URI_MAX] = "";
    new_wrap w;
    if(rewrap_dek(e, &d, "smk", "", "", &p, &w, &f, used)) {
      sqlkv_error(&f, SQLKV_CTX_DB, used[0] ? used : d.prot_uri, code, msg);
      rc = 1;
    } else {
      record_wrap(e, &d, op->done_ms, &w);
      d.prot_uri[0] = '\0';
      d.auto_rot = 0;
      sql_db_save(e, &d);
    }
    sq_buf_free(&w.wrapped);
  }
  sql_parent_free(&p);
  sql_db_free(&d);
  return rc;
}

/* Used by server-level protector changes: new wrap for server-level databases. */
int sql_server_level_dbs(emu *e, const char *parent_id, int inaccessible, int64_t *out, int max) {
  /* collected first: the callers write these rows */
  sqlite3_stmt *st = emu_sql(e, "SELECT uid FROM sql_dbs WHERE parent_id=?1 AND deleted_ms=0 AND prot_uri=''"
                                " AND (?2=0 OR status='Inaccessible')");
  int n = 0;
  if(st) {
    sqlite3_bind_text(st, 1, parent_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, inaccessible);
    while(n < max && sqlite3_step(st) == SQLITE_ROW)
      out[n++] = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
  }
  return n;
}

void sql_parent_rewrap_dbs(emu *e, const sql_parent *p, int64_t now) {
  int64_t uids[512];
  int n = sql_server_level_dbs(e, p->id, 0, uids, 512);
  const char *kind = !strcmp(p->prot_type, "AzureKeyVault") ? "server" : "smk";
  for(int i = 0; i < n; i++) {
    sql_db d;
    if(!sql_db_load_uid(e, uids[i], &d))
      continue;
    sqlkv_fail f;
    new_wrap w;
    if(!rewrap_dek(e, &d, kind, p->prot_uri, "", p, &w, &f, NULL) &&
       (strcmp(w.thumb, d.dek_thumb) || strcmp(kind, d.dek_kind))) {
      record_wrap(e, &d, now, &w);
      sql_db_save(e, &d);
    }
    sq_buf_free(&w.wrapped);
    sql_db_free(&d);
  }
}

/* Auto-rotation of a database-level protector to the newest key version (tick). */
int sql_db_autorotate(emu *e, sql_db *d, int64_t now, int64_t window_ms) {
  if(!d->auto_rot || !d->prot_uri[0] || strcmp(d->status, "Online"))
    return 0;
  sqlkv_ref r;
  if(!sqlkv_parse_uri(d->prot_uri, &r))
    return 0;
  char oid[EMU_ID_MAX];
  db_identity_oid(e, d->umi, d->fed_client_id, oid);
  sqlkv_key k;
  sqlkv_fail f;
  if(sqlkv_latest(e, &r, oid, &k, &f))
    return 0;
  int rc = 0;
  if(strcmp(k.thumb, d->dek_thumb) && now - k.created_s * 1000 >= window_ms && !sql_db_rotation_blocked(e, d, k.thumb)) {
    char uri[SQL_URI_MAX];
    sqlkv_uri(e, &k.ref, uri, sizeof uri);
    new_wrap w;
    if(!rewrap_dek(e, d, "db", uri, oid, NULL, &w, &f, NULL)) {
      sql_dbkey dk;
      memset(&dk, 0, sizeof dk);
      snprintf(dk.uri, sizeof dk.uri, "%s", uri);
      dk.ref = k.ref;
      snprintf(dk.thumb, sizeof dk.thumb, "%s", k.thumb);
      dk.key_created_ms = k.created_s * 1000;
      snprintf(dk.subregion, sizeof dk.subregion, "%s", k.region);
      sql_dbkey_add(e, d->uid, &dk, now);
      /* a versionless protector stays versionless */
      if(r.version[0])
        snprintf(d->prot_uri, sizeof d->prot_uri, "%s", uri);
      record_wrap(e, d, now, &w);
      sql_db_save(e, d);
      rc = 1;
      SQ_INFO("emulator", "sql: database %s auto-rotated its protector to %s", d->name, uri);
    }
    sq_buf_free(&w.wrapped);
  }
  sqlkv_key_free(&k);
  return rc;
}


/* ---- managed instance databases (no database-level CMK there: azure-api.md §1.7) ---- */

void sql_h_mdb_list(emu_call *c) { list_dbs(c, 1, NULL); }
void sql_h_mdb_inaccessible(emu_call *c) { list_dbs(c, 1, "Inaccessible"); }

void sql_h_mdb_get(emu_call *c) {
  sql_parent p;
  if(!sql_begin(c, 1, "Microsoft.Sql/managedInstances/databases/read", &p))
    return;
  sql_db d;
  const char *name = emu_var(c, "db");
  if(!sql_db_load(c->e, p.id, name, &d)) {
    emu_arm_error(c, 404, "ResourceNotFound", "The Resource 'Microsoft.Sql/managedInstances/%.128s/databases/%.128s' under "
                  "resource group '%.128s' was not found.", p.name, name, p.rg);
  } else {
    emu_reply_json(c, 200, sql_db_json(c->e, &d, 0, -1, 0));
    sql_db_free(&d);
  }
  sql_parent_free(&p);
}

void sql_h_mdb_put(emu_call *c) {
  sql_parent p;
  if(!sql_begin(c, 1, "Microsoft.Sql/managedInstances/databases/write", &p))
    return;
  json_t *body = NULL;
  const char *name = emu_var(c, "db");
  sql_db d;
  if(emu_body_json(c, 0, &body))
    goto out;
  if(json_object_get(json_object_get(body, "properties"), "keys") ||
     json_object_get(json_object_get(body, "properties"), "encryptionProtector") || json_object_get(body, "identity")) {
    emu_arm_error(c, 400, "PerDatabaseCMKNotSupportedOnManagedInstance",
                  "Database-level customer-managed keys are not available on SQL Managed Instance; use the instance's "
                  "encryption protector.");
    goto out;
  }
  if(!valid_db_name(name)) {
    emu_arm_error(c, 400, "InvalidResourceName", "The database name '%.128s' is not valid.", name);
    goto out;
  }
  if(sql_db_load(c->e, p.id, name, &d)) {
    emu_reply_json(c, 200, sql_db_json(c->e, &d, 0, -1, 0));
    sql_db_free(&d);
    goto out;
  }
  json_t *plain = json_pack("{s:s,s:{s:s}}", "location", p.region, "properties", "createMode", "Default");
  json_t *input = json_pack("{s:s,s:s,s:o}", "parent", p.id, "name", name, "body", plain);
  sql_lro(c, "CreateManagedDatabase", "managedDatabase", p.region, input);
out:
  json_decref(body);
  sql_parent_free(&p);
}

const sql_lro_handler sql_db_lro_handlers[] = {
    {"CreateLogicalDatabase", lro_db_write},
    {"CreateManagedDatabase", lro_db_write},
    {"UpdateLogicalDatabase", lro_db_write},
    {"DropLogicalDatabase", lro_db_drop},
    {"RevalidateDatabaseEncryptionProtector", lro_db_revalidate},
    {"RevertDatabaseEncryptionProtector", lro_db_revert},
    {NULL, NULL},
};
