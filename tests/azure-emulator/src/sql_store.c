/* sql_store.c — the Microsoft.Sql provider's state: schema component "sql",
 * provider settings, servers and managed instances (adopted from the seed's
 * sql_servers / sql_managed_instances rows on first use), their keys,
 * databases with their keys-map history, DEK wrap history, log segments and
 * data records, and the JSON shapes ARM returns for them. */
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "sql.h"
#include "sqltde/jsonx.h"
#include "sqltde/log.h"

/* Messages and ids are built into fixed buffers on purpose (bounded memory for
 * anything derived from requests); truncating an over-long one is intended. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

/* ---- schema ---- */

static const char *const sql_steps[] = {
    /* 1 */
    "CREATE TABLE sql_parents(id TEXT PRIMARY KEY COLLATE NOCASE, kind TEXT NOT NULL,"
    " sub TEXT NOT NULL COLLATE NOCASE, rg TEXT NOT NULL COLLATE NOCASE, name TEXT NOT NULL COLLATE NOCASE,"
    " region TEXT NOT NULL, src TEXT NOT NULL DEFAULT '', identity TEXT NOT NULL DEFAULT '{}',"
    " primary_umi TEXT NOT NULL DEFAULT '', key_id TEXT NOT NULL DEFAULT '', fed_client_id TEXT NOT NULL DEFAULT '',"
    " prot_type TEXT NOT NULL DEFAULT 'ServiceManaged', prot_key_name TEXT NOT NULL DEFAULT 'ServiceManaged',"
    " prot_uri TEXT NOT NULL DEFAULT '', prot_thumb TEXT NOT NULL DEFAULT '', prot_auto INTEGER NOT NULL DEFAULT 0,"
    " active_uri TEXT NOT NULL DEFAULT '', extra TEXT NOT NULL DEFAULT '{}', created_ms INTEGER NOT NULL DEFAULT 0,"
    " next_check_ms INTEGER NOT NULL DEFAULT 0, fail_since_ms INTEGER NOT NULL DEFAULT 0,"
    " fail_code TEXT NOT NULL DEFAULT '', state TEXT NOT NULL DEFAULT 'Ready');"
    "CREATE TABLE sql_parent_keys(parent_id TEXT NOT NULL COLLATE NOCASE, name TEXT NOT NULL COLLATE NOCASE,"
    " uri TEXT NOT NULL, thumb TEXT NOT NULL, created_ms INTEGER NOT NULL, PRIMARY KEY(parent_id, name));"
    "CREATE TABLE sql_dbs(uid INTEGER PRIMARY KEY AUTOINCREMENT, parent_id TEXT NOT NULL COLLATE NOCASE,"
    " is_mi INTEGER NOT NULL DEFAULT 0, name TEXT NOT NULL COLLATE NOCASE, location TEXT NOT NULL,"
    " database_id TEXT NOT NULL, sku TEXT, tags TEXT, extra TEXT, create_mode TEXT NOT NULL DEFAULT 'Default',"
    " source_id TEXT NOT NULL DEFAULT '', secondary_type TEXT NOT NULL DEFAULT '', status TEXT NOT NULL,"
    " umi TEXT NOT NULL DEFAULT '', fed_client_id TEXT NOT NULL DEFAULT '', prot_uri TEXT NOT NULL DEFAULT '',"
    " auto_rot INTEGER NOT NULL DEFAULT 0, collation TEXT NOT NULL DEFAULT '', max_size INTEGER NOT NULL DEFAULT 0,"
    " created_ms INTEGER NOT NULL, deleted_ms INTEGER NOT NULL DEFAULT 0, earliest_restore_ms INTEGER NOT NULL DEFAULT 0,"
    " next_check_ms INTEGER NOT NULL DEFAULT 0, fail_since_ms INTEGER NOT NULL DEFAULT 0,"
    " fail_code TEXT NOT NULL DEFAULT '', fail_msg TEXT NOT NULL DEFAULT '', dek_kind TEXT NOT NULL DEFAULT '',"
    " dek_uri TEXT NOT NULL DEFAULT '', dek_thumb TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX sql_dbs_parent ON sql_dbs(parent_id, name);"
    "CREATE TABLE sql_db_keys(db_uid INTEGER NOT NULL, uri TEXT NOT NULL, vault TEXT NOT NULL,"
    " key_name TEXT NOT NULL, version TEXT NOT NULL, thumb TEXT NOT NULL, added_ms INTEGER NOT NULL,"
    " removed_ms INTEGER NOT NULL DEFAULT 0, key_created_ms INTEGER NOT NULL DEFAULT 0,"
    " subregion TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX sql_db_keys_uid ON sql_db_keys(db_uid);"
    /* the DEK wrapped by each protector the database had, from a time on */
    "CREATE TABLE sql_wraps(seq INTEGER PRIMARY KEY AUTOINCREMENT, db_uid INTEGER NOT NULL, from_ms INTEGER NOT NULL,"
    " kind TEXT NOT NULL, uri TEXT NOT NULL, thumb TEXT NOT NULL, wrapped BLOB NOT NULL);"
    "CREATE INDEX sql_wraps_uid ON sql_wraps(db_uid, from_ms);"
    /* log segments: tagged with the protector thumbprint of their time */
    "CREATE TABLE sql_vlfs(seq INTEGER PRIMARY KEY AUTOINCREMENT, db_uid INTEGER NOT NULL, created_ms INTEGER NOT NULL,"
    " retired_ms INTEGER NOT NULL DEFAULT 0, thumb TEXT NOT NULL, uri TEXT NOT NULL, wrapped BLOB NOT NULL,"
    " payload BLOB NOT NULL, records INTEGER NOT NULL);"
    "CREATE INDEX sql_vlfs_uid ON sql_vlfs(db_uid);"
    /* data records, AES-256-GCM under the DEK */
    "CREATE TABLE sql_data(seq INTEGER PRIMARY KEY AUTOINCREMENT, db_uid INTEGER NOT NULL, created_ms INTEGER NOT NULL,"
    " blob BLOB NOT NULL);"
    "CREATE INDEX sql_data_uid ON sql_data(db_uid);"
    "CREATE TABLE sql_perm_obs(vault TEXT NOT NULL COLLATE NOCASE, key_name TEXT NOT NULL COLLATE NOCASE,"
    " oid TEXT NOT NULL COLLATE NOCASE, cur INTEGER NOT NULL, prev INTEGER NOT NULL, since_ms INTEGER NOT NULL,"
    " PRIMARY KEY(vault, key_name, oid));"
    "CREATE TABLE sql_links(id TEXT PRIMARY KEY COLLATE NOCASE, primary_uid INTEGER NOT NULL,"
    " secondary_uid INTEGER NOT NULL, link_type TEXT NOT NULL, created_ms INTEGER NOT NULL);"
    "CREATE TABLE sql_fogs(kind TEXT NOT NULL, name TEXT NOT NULL COLLATE NOCASE, primary_id TEXT NOT NULL COLLATE NOCASE,"
    " secondary_id TEXT NOT NULL COLLATE NOCASE, location TEXT NOT NULL DEFAULT '', body TEXT NOT NULL,"
    " created_ms INTEGER NOT NULL, PRIMARY KEY(kind, primary_id, name));"
    "CREATE TABLE sql_ltr(name TEXT PRIMARY KEY COLLATE NOCASE, db_uid INTEGER NOT NULL, backup_ms INTEGER NOT NULL,"
    " expiry_ms INTEGER NOT NULL, location TEXT NOT NULL COLLATE NOCASE, server TEXT NOT NULL COLLATE NOCASE,"
    " database TEXT NOT NULL COLLATE NOCASE, sub TEXT NOT NULL COLLATE NOCASE, rg TEXT NOT NULL COLLATE NOCASE,"
    " server_created_ms INTEGER NOT NULL DEFAULT 0);",
    NULL};

const emu_schema emu_sql_schema = {"sql", sql_steps};

/* ---- settings ---- */

static void settings_default(sql_settings *s) {
  s->key_check_interval_ms = 10 * 60 * 1000;
  s->inaccessible_after_ms = 30 * 60 * 1000;
  s->network_grace_ms = (int64_t)24 * 3600 * 1000;
  s->permission_delay_ms = 10 * 60 * 1000;
  s->autorotation_window_ms = 60 * 60 * 1000;
  s->pitr_retention_ms = (int64_t)7 * 86400 * 1000;
  s->dropped_retention_ms = (int64_t)7 * 86400 * 1000;
  s->max_geo_secondaries = 4;
  s->list_page_size = 100;
}

static const struct {
  const char *name;
  size_t off;
} setting_fields[] = {
    {"keyCheckIntervalMs", offsetof(sql_settings, key_check_interval_ms)},
    {"inaccessibleAfterMs", offsetof(sql_settings, inaccessible_after_ms)},
    {"networkGraceMs", offsetof(sql_settings, network_grace_ms)},
    {"permissionDelayMs", offsetof(sql_settings, permission_delay_ms)},
    {"autoRotationWindowMs", offsetof(sql_settings, autorotation_window_ms)},
    {"pitrRetentionMs", offsetof(sql_settings, pitr_retention_ms)},
    {"droppedRetentionMs", offsetof(sql_settings, dropped_retention_ms)},
    {"listPageSize", offsetof(sql_settings, list_page_size)},
};

static sq_code settings_merge(sql_settings *s, const json_t *j, sq_err *err) {
  if(!json_is_object(j))
    return sq_err_set(err, SQ_EINVAL, "settings must be a JSON object");
  sql_settings n = *s;
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)j, k, v) {
    int done = 0;
    for(size_t i = 0; i < sizeof setting_fields / sizeof setting_fields[0]; i++)
      if(!strcmp(k, setting_fields[i].name)) {
        if(!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > (json_int_t)1 << 45)
          return sq_err_set(err, SQ_EINVAL, "%s must be a non-negative integer (milliseconds)", k);
        *(int64_t *)((char *)&n + setting_fields[i].off) = json_integer_value(v);
        done = 1;
      }
    if(!done && !strcmp(k, "maxGeoSecondaries")) {
      if(!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 16)
        return sq_err_set(err, SQ_EINVAL, "maxGeoSecondaries must be 1..16");
      n.max_geo_secondaries = (int)json_integer_value(v);
      done = 1;
    }
    if(!done)
      return sq_err_set(err, SQ_EINVAL, "unknown sql setting '%s'", k);
  }
  *s = n;
  return SQ_OK;
}

void sql_settings_load(emu *e, sql_settings *s) {
  settings_default(s);
  sq_buf b;
  sq_buf_init(&b, 8192);
  if(emu_meta_get(e, "sql_settings", &b) == SQ_OK) {
    json_t *j = json_loadb(b.ptr, b.len, 0, NULL);
    if(j)
      settings_merge(s, j, NULL);
    json_decref(j);
  }
  sq_buf_free(&b);
}

json_t *sql_settings_json(const sql_settings *s) {
  json_t *j = json_object();
  for(size_t i = 0; i < sizeof setting_fields / sizeof setting_fields[0]; i++)
    json_object_set_new(j, setting_fields[i].name,
                        json_integer(*(const int64_t *)((const char *)s + setting_fields[i].off)));
  json_object_set_new(j, "maxGeoSecondaries", json_integer(s->max_geo_secondaries));
  return j;
}

sq_code sql_settings_apply(emu *e, const json_t *patch, sq_err *err) {
  sql_settings s;
  sql_settings_load(e, &s);
  sq_code rc = settings_merge(&s, patch, err);
  if(rc)
    return rc;
  json_t *j = sql_settings_json(&s);
  char *t = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  if(!t)
    return SQ_ENOMEM;
  rc = emu_meta_set(e, "sql_settings", t, strlen(t));
  free(t);
  return rc;
}

/* ---- small helpers ---- */

int sql_str_ieq(const char *a, const char *b) { return a && b && !strcasecmp(a, b); }

int sql_apiver_cmk(const char *v) { return v && strcmp(v, "2022-08-01") >= 0; }

int64_t sql_parse_time_ms(const char *s) {
  if(!s || strlen(s) < 19 || strlen(s) > 40)
    return -1;
  char buf[48];
  snprintf(buf, sizeof buf, "%s", s);
  int ms = 0;
  char *dot = strchr(buf, '.');
  if(dot) {
    char *p = dot + 1;
    int digits = 0;
    while(isdigit((unsigned char)*p)) {
      if(digits < 3)
        ms = ms * 10 + (*p - '0');
      digits++;
      p++;
    }
    if(!digits)
      return -1;
    for(int d = digits; d < 3; d++)
      ms *= 10;
    memmove(dot, p, strlen(p) + 1);
  }
  size_t l = strlen(buf);
  if(l == 19 && l + 1 < sizeof buf) { /* no zone: UTC, as ARM reads it */
    buf[19] = 'Z';
    buf[20] = '\0';
  }
  int64_t t = sq_parse_rfc3339(buf);
  return t < 0 ? -1 : t * 1000 + ms;
}

int64_t sql_ticks(int64_t ms) { return ms * 10000 + INT64_C(621355968000000000); }

/* /subscriptions/S/resourceGroups/RG/providers/Microsoft.Sql/servers/P[/CHILDKIND/CHILD] */
int sql_parse_rid(const char *id, sql_rid *out) {
  memset(out, 0, sizeof *out);
  if(!id || strlen(id) > 2000)
    return -1;
  char buf[2048];
  snprintf(buf, sizeof buf, "%s", id);
  char *segs[16];
  int n = 0;
  for(char *tok = strtok(buf, "/"); tok && n < 16; tok = strtok(NULL, "/"))
    segs[n++] = tok;
  if(n < 8 || strcasecmp(segs[0], "subscriptions") || strcasecmp(segs[2], "resourceGroups") ||
     strcasecmp(segs[4], "providers") || strcasecmp(segs[5], "Microsoft.Sql"))
    return -1;
  if(strcasecmp(segs[6], "servers") && strcasecmp(segs[6], "managedInstances"))
    return -1;
  snprintf(out->sub, sizeof out->sub, "%s", segs[1]);
  snprintf(out->rg, sizeof out->rg, "%s", segs[3]);
  snprintf(out->parent_kind, sizeof out->parent_kind, "%s",
           !strcasecmp(segs[6], "servers") ? "servers" : "managedInstances");
  snprintf(out->parent, sizeof out->parent, "%s", segs[7]);
  if(n == 8)
    return 0;
  if(n != 10)
    return -1;
  snprintf(out->child_kind, sizeof out->child_kind, "%s", segs[8]);
  snprintf(out->child, sizeof out->child, "%s", segs[9]);
  return 0;
}

static void parent_rid(int is_mi, const char *sub, const char *rg, const char *name, char *out, size_t n) {
  snprintf(out, n, "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Sql/%s/%s", sub, rg,
           is_mi ? "managedInstances" : "servers", name);
}

void sql_rid_parent(const sql_rid *r, char *out, size_t n) {
  parent_rid(!strcmp(r->parent_kind, "managedInstances"), r->sub, r->rg, r->parent, out, n);
}

/* ---- parents ---- */

void sql_parent_free(sql_parent *p) {
  json_decref(p->identity);
  json_decref(p->extra);
  memset(p, 0, sizeof *p);
}

#define PARENT_COLS                                                                                                   \
  "id, kind, sub, rg, name, region, identity, primary_umi, key_id, fed_client_id, prot_type, prot_key_name, prot_uri," \
  " prot_thumb, prot_auto, active_uri, extra, created_ms, next_check_ms, fail_since_ms, fail_code, state"

static void row_to_parent(sqlite3_stmt *st, sql_parent *p) {
  memset(p, 0, sizeof *p);
  snprintf(p->id, sizeof p->id, "%s", emu_col_text(st, 0));
  p->is_mi = !strcmp(emu_col_text(st, 1), "mi");
  snprintf(p->sub, sizeof p->sub, "%s", emu_col_text(st, 2));
  snprintf(p->rg, sizeof p->rg, "%s", emu_col_text(st, 3));
  snprintf(p->name, sizeof p->name, "%s", emu_col_text(st, 4));
  snprintf(p->region, sizeof p->region, "%s", emu_col_text(st, 5));
  p->identity = json_loads(emu_col_text(st, 6), 0, NULL);
  if(!json_is_object(p->identity)) {
    json_decref(p->identity);
    p->identity = json_object();
  }
  snprintf(p->primary_umi, sizeof p->primary_umi, "%s", emu_col_text(st, 7));
  snprintf(p->key_id, sizeof p->key_id, "%s", emu_col_text(st, 8));
  snprintf(p->fed_client_id, sizeof p->fed_client_id, "%s", emu_col_text(st, 9));
  snprintf(p->prot_type, sizeof p->prot_type, "%s", emu_col_text(st, 10));
  snprintf(p->prot_key_name, sizeof p->prot_key_name, "%s", emu_col_text(st, 11));
  snprintf(p->prot_uri, sizeof p->prot_uri, "%s", emu_col_text(st, 12));
  snprintf(p->prot_thumb, sizeof p->prot_thumb, "%s", emu_col_text(st, 13));
  p->prot_auto = sqlite3_column_int(st, 14);
  snprintf(p->active_uri, sizeof p->active_uri, "%s", emu_col_text(st, 15));
  p->extra = json_loads(emu_col_text(st, 16), 0, NULL);
  if(!json_is_object(p->extra)) {
    json_decref(p->extra);
    p->extra = json_object();
  }
  p->created_ms = sqlite3_column_int64(st, 17);
  p->next_check_ms = sqlite3_column_int64(st, 18);
  p->fail_since_ms = sqlite3_column_int64(st, 19);
  snprintf(p->fail_code, sizeof p->fail_code, "%s", emu_col_text(st, 20));
  snprintf(p->state, sizeof p->state, "%s", emu_col_text(st, 21));
}

sq_code sql_parent_save(emu *e, const sql_parent *p) {
  char *ident = json_dumps(p->identity ? p->identity : json_object(), JSON_COMPACT);
  char *extra = json_dumps(p->extra ? p->extra : json_object(), JSON_COMPACT);
  sqlite3_stmt *st = emu_sql(e, "UPDATE sql_parents SET identity=?, primary_umi=?, key_id=?, fed_client_id=?,"
                                " prot_type=?, prot_key_name=?, prot_uri=?, prot_thumb=?, prot_auto=?, active_uri=?,"
                                " extra=?, next_check_ms=?, fail_since_ms=?, fail_code=?, state=? WHERE id=?");
  sq_code rc = SQ_EIO;
  if(st && ident && extra) {
    sqlite3_bind_text(st, 1, ident, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, p->primary_umi, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, p->key_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, p->fed_client_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, p->prot_type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, p->prot_key_name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, p->prot_uri, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, p->prot_thumb, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 9, p->prot_auto);
    sqlite3_bind_text(st, 10, p->active_uri, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 11, extra, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 12, p->next_check_ms);
    sqlite3_bind_int64(st, 13, p->fail_since_ms);
    sqlite3_bind_text(st, 14, p->fail_code, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 15, p->state[0] ? p->state : "Ready", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 16, p->id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st) == SQLITE_DONE ? SQ_OK : SQ_EIO;
  }
  sqlite3_finalize(st);
  free(ident);
  free(extra);
  return rc;
}

static const char *jstr2(const json_t *body, const char *a, const char *b) {
  const char *s = sq_json_str(body, a);
  return s ? s : sq_json_str(body, b);
}

/* Resource id of a UMI given as an id or a name. */
static void umi_rid(emu *e, const char *ref, char *out, size_t n) {
  snprintf(out, n, "%s", ref);
  if(strchr(ref, '/'))
    return;
  sqlite3_stmt *st = emu_sql(e, "SELECT resource_id FROM identities WHERE kind='userAssigned' AND (name=? OR"
                                " client_id=? OR object_id=?)");
  if(!st)
    return;
  for(int i = 1; i <= 3; i++)
    sqlite3_bind_text(st, i, ref, -1, SQLITE_STATIC);
  if(sqlite3_step(st) == SQLITE_ROW && *emu_col_text(st, 0))
    snprintf(out, n, "%s", emu_col_text(st, 0));
  sqlite3_finalize(st);
}

/* identity from the seed: {"type":..., "userAssignedIdentities": {id:{}} | [ids or names], "principalId"} */
static json_t *seed_identity(emu *e, const json_t *body) {
  const json_t *id = json_object_get(body, "identity");
  json_t *out = json_object();
  if(!json_is_object(id)) {
    json_object_set_new(out, "type", json_string("None"));
    return out;
  }
  json_t *umis = json_object();
  const json_t *u = json_object_get(id, "userAssignedIdentities");
  char rid[SQL_RID_MAX];
  if(json_is_object(u)) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)u, k, v) {
      umi_rid(e, k, rid, sizeof rid);
      json_object_set_new(umis, rid, json_object());
    }
  } else if(json_is_array(u)) {
    size_t i;
    json_t *v;
    json_array_foreach(u, i, v) if(json_is_string(v)) {
      umi_rid(e, json_string_value(v), rid, sizeof rid);
      json_object_set_new(umis, rid, json_object());
    }
  }
  const char *type = sq_json_str(id, "type");
  const char *pid = sq_json_str(id, "principalId");
  if(!type)
    type = json_object_size(umis) ? (pid ? "SystemAssigned,UserAssigned" : "UserAssigned") : (pid ? "SystemAssigned" : "None");
  json_object_set_new(out, "type", json_string(type));
  if(json_object_size(umis))
    json_object_set_new(out, "userAssignedIdentities", umis);
  else
    json_decref(umis);
  if(strstr(type, "SystemAssigned")) {
    char g[37];
    if(!pid) {
      emu_guid(g);
      pid = g;
    }
    json_object_set_new(out, "principalId", json_string(pid));
  }
  return out;
}

sq_code sql_pkey_put(emu *e, const char *parent_id, const char *name, const char *uri, const char *thumb,
                     int64_t now, int replace) {
  sqlite3_stmt *st = emu_sql(e, replace ? "INSERT OR REPLACE INTO sql_parent_keys(parent_id, name, uri, thumb, created_ms)"
                                          " VALUES(?,?,?,?,?)"
                                        : "INSERT OR IGNORE INTO sql_parent_keys(parent_id, name, uri, thumb, created_ms)"
                                          " VALUES(?,?,?,?,?)");
  if(!st)
    return SQ_EIO;
  sqlite3_bind_text(st, 1, parent_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, uri, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, thumb, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 5, now);
  int ok = sqlite3_step(st) == SQLITE_DONE;
  sqlite3_finalize(st);
  return ok ? SQ_OK : SQ_EIO;
}

/* Registers a seeded key URI on the parent (no permission needed: seeding). */
static void adopt_key(emu *e, sql_parent *p, const char *uri, int make_protector, int64_t now) {
  sqlkv_ref r;
  char thumb[SQ_THUMBPRINT_HEX_LEN + 1];
  if(!sqlkv_parse_uri(uri, &r) || !sqlkv_thumb_of(e, &r, thumb)) {
    SQ_WARN("emulator", "sql: seeded key '%s' of %s is not a key in the emulator's vaults; ignored", uri, p->name);
    return;
  }
  if(!r.version[0]) /* pin the version the seed meant: the newest */
    emu_sql_text(e, r.version, sizeof r.version, "SELECT version FROM kv_keys WHERE vault=? AND name=? ORDER BY seq DESC LIMIT 1",
                 r.vault, r.name, NULL);
  char name[256], canon[SQL_URI_MAX];
  sql_pkey_name(&r, name, sizeof name);
  sqlkv_uri(e, &r, canon, sizeof canon);
  sql_pkey_put(e, p->id, name, canon, thumb, now, 1);
  if(make_protector)
    sql_parent_set_protector(p, name, canon, thumb);
}

static void adopt(emu *e, int is_mi, const char *id, const char *sub, const char *rg, const char *name,
                  const char *region, const char *src) {
  json_t *body = json_loads(src, 0, NULL);
  if(!json_is_object(body)) {
    json_decref(body);
    body = json_object();
  }
  const json_t *props = json_object_get(body, "properties");
  if(!json_is_object(props))
    props = body;
  int64_t now = emu_now_ms(e);
  sql_parent p;
  memset(&p, 0, sizeof p);
  parent_rid(is_mi, sub, rg, name, p.id, sizeof p.id); /* canonical shape, case as seeded */
  (void)id;
  p.is_mi = is_mi;
  p.identity = seed_identity(e, body);
  const char *s;
  if((s = jstr2(props, "primaryUserAssignedIdentityId", "primaryUserAssignedIdentity")))
    umi_rid(e, s, p.primary_umi, sizeof p.primary_umi);
  else if(json_object_size(json_object_get(p.identity, "userAssignedIdentities")) == 1)
    snprintf(p.primary_umi, sizeof p.primary_umi, "%s",
             json_object_iter_key(json_object_iter(json_object_get(p.identity, "userAssignedIdentities"))));
  if((s = sq_json_str(props, "federatedClientId")))
    snprintf(p.fed_client_id, sizeof p.fed_client_id, "%s", s);
  snprintf(p.prot_type, sizeof p.prot_type, "ServiceManaged");
  snprintf(p.prot_key_name, sizeof p.prot_key_name, "ServiceManaged");
  p.extra = json_object();
  static const char *const keep[] = {"administratorLogin", "version", "publicNetworkAccess", "minimalTlsVersion",
                                     "subnetId", "licenseType", "vCores", "storageSizeInGB", NULL};
  for(int i = 0; keep[i]; i++)
    if(json_object_get(props, keep[i]))
      json_object_set(p.extra, keep[i], json_object_get(props, keep[i]));
  sqlite3_stmt *st = emu_sql(e, "INSERT OR REPLACE INTO sql_parents(id, kind, sub, rg, name, region, src, created_ms,"
                                " next_check_ms) VALUES(?,?,?,?,?,?,?,?,0)");
  if(st) {
    sqlite3_bind_text(st, 1, p.id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, is_mi ? "mi" : "server", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, sub, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, rg, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, region, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, src, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, now);
    sqlite3_step(st);
    sqlite3_finalize(st);
  }
  /* keys: "keys": [uri...], "keyId": uri (the CMK), "encryptionProtector": {uri|serverKeyName, autoRotationEnabled} */
  const json_t *keys = json_object_get(props, "keys");
  if(!keys)
    keys = json_object_get(body, "keys");
  size_t i;
  json_t *k;
  json_array_foreach(keys, i, k) if(json_is_string(k)) adopt_key(e, &p, json_string_value(k), 0, now);
  const char *key_id = jstr2(props, "keyId", "keyID");
  const json_t *ep = json_object_get(props, "encryptionProtector");
  if(!ep)
    ep = json_object_get(body, "encryptionProtector");
  const char *ep_uri = json_is_string(ep) ? json_string_value(ep) : sq_json_str(ep, "uri");
  if(!ep_uri)
    ep_uri = key_id;
  if(ep_uri && (!sq_json_str(ep, "serverKeyType") || !strcasecmp(sq_json_str(ep, "serverKeyType"), "AzureKeyVault")))
    adopt_key(e, &p, ep_uri, 1, now);
  if(key_id)
    snprintf(p.key_id, sizeof p.key_id, "%s", key_id);
  if(json_is_object(ep)) {
    p.prot_auto = sq_json_bool(ep, "autoRotationEnabled", 0);
    if(!p.prot_auto)
      p.prot_auto = sq_json_bool(ep, "autoRotation", 0);
  }
  snprintf(p.state, sizeof p.state, "Ready");
  sql_parent_save(e, &p);
  sql_parent_free(&p);
  json_decref(body);
}

/* Seeded row source text for a parent, NULL if not seeded (caller frees). */
static int seed_row(emu *e, int is_mi, const char *sub, const char *rg, const char *name, char *id, size_t idn,
                    char *region, size_t rn, char **src) {
  sqlite3_stmt *st = emu_sql(e, is_mi ? "SELECT id, region, body FROM sql_managed_instances WHERE sub=? AND rg=? AND name=?"
                                      : "SELECT id, region, body FROM sql_servers WHERE sub=? AND rg=? AND name=?");
  if(!st)
    return 0;
  sqlite3_bind_text(st, 1, sub, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, rg, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
  int ok = sqlite3_step(st) == SQLITE_ROW;
  if(ok) {
    snprintf(id, idn, "%s", emu_col_text(st, 0));
    snprintf(region, rn, "%s", emu_col_text(st, 1));
    *src = strdup(emu_col_text(st, 2));
  }
  sqlite3_finalize(st);
  return ok && *src;
}

static int parent_row(emu *e, const char *where_id, int is_mi, const char *sub, const char *rg, const char *name,
                      sql_parent *out, char **src_out) {
  sqlite3_stmt *st;
  if(where_id) {
    st = emu_sql(e, "SELECT " PARENT_COLS ", src FROM sql_parents WHERE id=?");
    if(st)
      sqlite3_bind_text(st, 1, where_id, -1, SQLITE_STATIC);
  } else {
    st = emu_sql(e, "SELECT " PARENT_COLS ", src FROM sql_parents WHERE kind=? AND sub=? AND rg=? AND name=?");
    if(st) {
      sqlite3_bind_text(st, 1, is_mi ? "mi" : "server", -1, SQLITE_STATIC);
      sqlite3_bind_text(st, 2, sub, -1, SQLITE_STATIC);
      sqlite3_bind_text(st, 3, rg, -1, SQLITE_STATIC);
      sqlite3_bind_text(st, 4, name, -1, SQLITE_STATIC);
    }
  }
  if(!st)
    return 0;
  int ok = sqlite3_step(st) == SQLITE_ROW;
  if(ok) {
    row_to_parent(st, out);
    if(src_out)
      *src_out = strdup(emu_col_text(st, 22));
  }
  sqlite3_finalize(st);
  return ok;
}

int sql_parent_load(emu *e, int is_mi, const char *sub, const char *rg, const char *name, sql_parent *out) {
  char *have_src = NULL, *seed_src = NULL, sid[SQL_RID_MAX], region[EMU_ID_MAX];
  int have = parent_row(e, NULL, is_mi, sub, rg, name, out, &have_src);
  int seeded = seed_row(e, is_mi, sub, rg, name, sid, sizeof sid, region, sizeof region, &seed_src);
  /* (Re-)adopt when the seed row is new or was changed by a later seeding. */
  if(seeded && (!have || strcmp(have_src ? have_src : "", seed_src))) {
    if(have)
      sql_parent_free(out);
    char rgs[EMU_ID_MAX] = "", subs[EMU_ID_MAX] = "", names[EMU_ID_MAX] = "";
    sqlite3_stmt *st = emu_sql(e, is_mi ? "SELECT sub, rg, name FROM sql_managed_instances WHERE id=?"
                                        : "SELECT sub, rg, name FROM sql_servers WHERE id=?");
    if(st) {
      sqlite3_bind_text(st, 1, sid, -1, SQLITE_STATIC);
      if(sqlite3_step(st) == SQLITE_ROW) {
        snprintf(subs, sizeof subs, "%s", emu_col_text(st, 0));
        snprintf(rgs, sizeof rgs, "%s", emu_col_text(st, 1));
        snprintf(names, sizeof names, "%s", emu_col_text(st, 2));
      }
      sqlite3_finalize(st);
    }
    adopt(e, is_mi, sid, subs, rgs, names, region, seed_src);
    have = parent_row(e, NULL, is_mi, sub, rg, name, out, NULL);
  }
  free(have_src);
  free(seed_src);
  return have;
}

int sql_parent_load_id(emu *e, const char *id, sql_parent *out) {
  sql_rid r;
  if(sql_parse_rid(id, &r) || r.child_kind[0])
    return 0;
  return sql_parent_load(e, !strcmp(r.parent_kind, "managedInstances"), r.sub, r.rg, r.parent, out);
}

void sql_parent_adopt_all(emu *e) {
  for(int mi = 0; mi < 2; mi++) {
    sqlite3_stmt *st = emu_sql(e, mi ? "SELECT s.sub, s.rg, s.name FROM sql_managed_instances s LEFT JOIN sql_parents p"
                                       " ON p.kind='mi' AND p.sub=s.sub AND p.rg=s.rg AND p.name=s.name"
                                       " WHERE p.id IS NULL OR p.src != s.body LIMIT 32"
                                     : "SELECT s.sub, s.rg, s.name FROM sql_servers s LEFT JOIN sql_parents p"
                                       " ON p.kind='server' AND p.sub=s.sub AND p.rg=s.rg AND p.name=s.name"
                                       " WHERE p.id IS NULL OR p.src != s.body LIMIT 32");
    if(!st)
      continue;
    char rows[32][3][EMU_ID_MAX];
    int n = 0;
    while(n < 32 && sqlite3_step(st) == SQLITE_ROW) {
      for(int i = 0; i < 3; i++)
        snprintf(rows[n][i], EMU_ID_MAX, "%s", emu_col_text(st, i));
      n++;
    }
    sqlite3_finalize(st);
    for(int i = 0; i < n; i++) {
      sql_parent p;
      if(sql_parent_load(e, mi, rows[i][0], rows[i][1], rows[i][2], &p))
        sql_parent_free(&p);
    }
  }
}

sqlkv_status sql_parent_oid(emu *e, const sql_parent *p, char oid[EMU_ID_MAX], int *is_umi) {
  oid[0] = '\0';
  *is_umi = 0;
  if(p->fed_client_id[0]) {
    emu_identity id;
    if(emu_identity_by_client_id(e, p->fed_client_id, &id)) {
      snprintf(oid, EMU_ID_MAX, "%s", id.object_id);
      *is_umi = p->primary_umi[0] != 0;
      return SK_OK;
    }
    return SK_NOIDENTITY;
  }
  if(p->primary_umi[0]) {
    emu_identity id;
    if(emu_identity_by_resource_id(e, p->primary_umi, &id)) {
      snprintf(oid, EMU_ID_MAX, "%s", id.object_id);
      *is_umi = 1;
      return SK_OK;
    }
    return SK_NOIDENTITY;
  }
  const char *pid = sq_json_str(p->identity, "principalId");
  if(pid && *pid) {
    snprintf(oid, EMU_ID_MAX, "%s", pid);
    return SK_OK;
  }
  return SK_NOIDENTITY;
}

json_t *sql_identity_json(emu *e, const json_t *identity, const char *tenant) {
  json_t *o = json_object();
  const char *type = sq_json_str(identity, "type");
  json_object_set_new(o, "type", json_string(type ? type : "None"));
  if(tenant && *tenant && type && strcmp(type, "None"))
    json_object_set_new(o, "tenantId", json_string(tenant));
  const char *pid = sq_json_str(identity, "principalId");
  if(pid)
    json_object_set_new(o, "principalId", json_string(pid));
  const json_t *u = json_object_get(identity, "userAssignedIdentities");
  if(json_object_size(u)) {
    json_t *m = json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)u, k, v) {
      emu_identity id;
      if(emu_identity_by_resource_id(e, k, &id))
        json_object_set_new(m, k, json_pack("{s:s,s:s}", "principalId", id.object_id, "clientId", id.client_id));
      else
        json_object_set_new(m, k, json_object());
    }
    json_object_set_new(o, "userAssignedIdentities", m);
  }
  return o;
}

json_t *sql_parent_json(emu *e, const sql_parent *p) {
  char tenant[EMU_ID_MAX];
  emu_subscription_tenant(e, p->sub, tenant);
  json_t *props = json_deep_copy(p->extra);
  if(!props)
    props = json_object();
  char fqdn[300];
  if(p->is_mi)
    snprintf(fqdn, sizeof fqdn, "%s.emulator.database.localhost", p->name);
  else
    snprintf(fqdn, sizeof fqdn, "%s.database.localhost", p->name);
  for(char *c = fqdn; *c; c++)
    *c = (char)tolower((unsigned char)*c);
  json_object_set_new(props, "fullyQualifiedDomainName", json_string(fqdn));
  json_object_set_new(props, "state", json_string(p->state[0] && strcmp(p->state, "Ready") ? p->state : "Ready"));
  if(!p->is_mi && !json_object_get(props, "version"))
    json_object_set_new(props, "version", json_string("12.0"));
  if(!json_object_get(props, "publicNetworkAccess"))
    json_object_set_new(props, "publicNetworkAccess", json_string("Enabled"));
  if(p->primary_umi[0])
    json_object_set_new(props, "primaryUserAssignedIdentityId", json_string(p->primary_umi));
  if(p->key_id[0] || !strcmp(p->prot_type, "AzureKeyVault"))
    json_object_set_new(props, "keyId", json_string(p->key_id[0] ? p->key_id : p->prot_uri));
  if(p->fed_client_id[0])
    json_object_set_new(props, "federatedClientId", json_string(p->fed_client_id));
  json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:o,s:o}", "id", p->id, "name", p->name, "type",
                        p->is_mi ? "Microsoft.Sql/managedInstances" : "Microsoft.Sql/servers", "location", p->region,
                        "identity", sql_identity_json(e, p->identity, tenant), "properties", props);
  if(!p->is_mi)
    json_object_set_new(j, "kind", json_string("v12.0"));
  return j;
}

void sql_parent_set_protector(sql_parent *p, const char *key_name, const char *uri, const char *thumb) {
  snprintf(p->prot_type, sizeof p->prot_type, "AzureKeyVault");
  snprintf(p->prot_key_name, sizeof p->prot_key_name, "%s", key_name);
  snprintf(p->prot_uri, sizeof p->prot_uri, "%s", uri);
  snprintf(p->prot_thumb, sizeof p->prot_thumb, "%s", thumb);
  p->active_uri[0] = '\0'; /* a new protector starts on its own vault */
}

void sql_parent_use_key(emu *e, sql_parent *p, const sqlkv_key *k, const char *uri, int64_t now) {
  char name[256], canon[SQL_URI_MAX];
  sql_pkey_name(&k->ref, name, sizeof name);
  sqlkv_uri(e, &k->ref, canon, sizeof canon);
  sql_pkey_put(e, p->id, name, uri ? uri : canon, k->thumb, now, 0);
  sql_parent_set_protector(p, name, canon, k->thumb);
}

/* ---- parent keys ---- */

void sql_pkey_name(const sqlkv_ref *r, char *out, size_t n) {
  if(r->version[0])
    snprintf(out, n, "%s_%s_%s", r->vault, r->name, r->version);
  else
    snprintf(out, n, "%s_%s", r->vault, r->name);
}

int sql_pkey_get(emu *e, const char *parent_id, const char *name, sql_pkey *out) {
  sqlite3_stmt *st = emu_sql(e, "SELECT name, uri, thumb, created_ms FROM sql_parent_keys WHERE parent_id=? AND name=?");
  if(!st)
    return 0;
  sqlite3_bind_text(st, 1, parent_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
  int ok = sqlite3_step(st) == SQLITE_ROW;
  if(ok && out) {
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", emu_col_text(st, 0));
    snprintf(out->uri, sizeof out->uri, "%s", emu_col_text(st, 1));
    snprintf(out->thumb, sizeof out->thumb, "%s", emu_col_text(st, 2));
    out->created_ms = sqlite3_column_int64(st, 3);
    snprintf(out->type, sizeof out->type, "AzureKeyVault");
  }
  sqlite3_finalize(st);
  return ok;
}

int sql_pkey_has_thumb(emu *e, const char *parent_id, const char *thumb) {
  sqlite3_stmt *st = emu_sql(e, "SELECT 1 FROM sql_parent_keys WHERE parent_id=? AND thumb=?");
  if(!st)
    return 0;
  sqlite3_bind_text(st, 1, parent_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, thumb, -1, SQLITE_STATIC);
  int ok = sqlite3_step(st) == SQLITE_ROW;
  sqlite3_finalize(st);
  return ok;
}

/* ---- databases ---- */

void sql_db_free(sql_db *d) {
  json_decref(d->sku);
  json_decref(d->tags);
  json_decref(d->extra);
  memset(d, 0, sizeof *d);
}

#define DB_COLS                                                                                                    \
  "uid, parent_id, is_mi, name, location, database_id, sku, tags, extra, create_mode, source_id, secondary_type," \
  " status, umi, fed_client_id, prot_uri, auto_rot, collation, max_size, created_ms, deleted_ms,"                  \
  " earliest_restore_ms, next_check_ms, fail_since_ms, fail_code, fail_msg, dek_kind, dek_uri, dek_thumb"

static json_t *load_json_col(sqlite3_stmt *st, int i) {
  if(sqlite3_column_type(st, i) != SQLITE_TEXT)
    return NULL;
  return json_loads(emu_col_text(st, i), 0, NULL);
}

static void row_to_db(sqlite3_stmt *st, sql_db *d) {
  memset(d, 0, sizeof *d);
  d->uid = sqlite3_column_int64(st, 0);
  snprintf(d->parent_id, sizeof d->parent_id, "%s", emu_col_text(st, 1));
  d->is_mi = sqlite3_column_int(st, 2);
  snprintf(d->name, sizeof d->name, "%s", emu_col_text(st, 3));
  snprintf(d->location, sizeof d->location, "%s", emu_col_text(st, 4));
  snprintf(d->database_id, sizeof d->database_id, "%s", emu_col_text(st, 5));
  d->sku = load_json_col(st, 6);
  d->tags = load_json_col(st, 7);
  d->extra = load_json_col(st, 8);
  snprintf(d->create_mode, sizeof d->create_mode, "%s", emu_col_text(st, 9));
  snprintf(d->source_id, sizeof d->source_id, "%s", emu_col_text(st, 10));
  snprintf(d->secondary_type, sizeof d->secondary_type, "%s", emu_col_text(st, 11));
  snprintf(d->status, sizeof d->status, "%s", emu_col_text(st, 12));
  snprintf(d->umi, sizeof d->umi, "%s", emu_col_text(st, 13));
  snprintf(d->fed_client_id, sizeof d->fed_client_id, "%s", emu_col_text(st, 14));
  snprintf(d->prot_uri, sizeof d->prot_uri, "%s", emu_col_text(st, 15));
  d->auto_rot = sqlite3_column_int(st, 16);
  snprintf(d->collation, sizeof d->collation, "%s", emu_col_text(st, 17));
  d->max_size = sqlite3_column_int64(st, 18);
  d->created_ms = sqlite3_column_int64(st, 19);
  d->deleted_ms = sqlite3_column_int64(st, 20);
  d->earliest_restore_ms = sqlite3_column_int64(st, 21);
  d->next_check_ms = sqlite3_column_int64(st, 22);
  d->fail_since_ms = sqlite3_column_int64(st, 23);
  snprintf(d->fail_code, sizeof d->fail_code, "%s", emu_col_text(st, 24));
  snprintf(d->fail_msg, sizeof d->fail_msg, "%s", emu_col_text(st, 25));
  snprintf(d->dek_kind, sizeof d->dek_kind, "%s", emu_col_text(st, 26));
  snprintf(d->dek_uri, sizeof d->dek_uri, "%s", emu_col_text(st, 27));
  snprintf(d->dek_thumb, sizeof d->dek_thumb, "%s", emu_col_text(st, 28));
}

/* The one row of a bound query (finalized here); 0 if none. */
static int db_from_query(sqlite3_stmt *st, sql_db *out) {
  if(!st)
    return 0;
  int ok = sqlite3_step(st) == SQLITE_ROW;
  if(ok)
    row_to_db(st, out);
  sqlite3_finalize(st);
  return ok;
}

int sql_db_load(emu *e, const char *parent_id, const char *name, sql_db *out) {
  sqlite3_stmt *st = emu_sql(e, "SELECT " DB_COLS " FROM sql_dbs WHERE parent_id=? AND name=? AND deleted_ms=0");
  if(st) {
    sqlite3_bind_text(st, 1, parent_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
  }
  return db_from_query(st, out);
}

int sql_db_load_uid(emu *e, int64_t uid, sql_db *out) {
  sqlite3_stmt *st = emu_sql(e, "SELECT " DB_COLS " FROM sql_dbs WHERE uid=?");
  if(st)
    sqlite3_bind_int64(st, 1, uid);
  return db_from_query(st, out);
}

sqlite3_stmt *sql_db_cursor(emu *e, const char *parent_id) {
  sqlite3_stmt *st = emu_sql(e, "SELECT uid FROM sql_dbs WHERE parent_id=? AND deleted_ms=0 ORDER BY uid");
  if(st)
    sqlite3_bind_text(st, 1, parent_id, -1, SQLITE_STATIC);
  return st;
}

int sql_db_next(emu *e, sqlite3_stmt *st, sql_db *out) {
  while(st && sqlite3_step(st) == SQLITE_ROW)
    if(sql_db_load_uid(e, sqlite3_column_int64(st, 0), out))
      return 1;
  return 0;
}

static void bind_json(sqlite3_stmt *st, int i, const json_t *j, char **keep) {
  *keep = j ? json_dumps(j, JSON_COMPACT) : NULL;
  if(*keep)
    sqlite3_bind_text(st, i, *keep, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(st, i);
}

sq_code sql_db_save(emu *e, sql_db *d) {
  sqlite3_stmt *st;
  if(d->uid)
    st = emu_sql(e, "UPDATE sql_dbs SET parent_id=?1, is_mi=?2, name=?3, location=?4, database_id=?5, sku=?6, tags=?7,"
                    " extra=?8, create_mode=?9, source_id=?10, secondary_type=?11, status=?12, umi=?13,"
                    " fed_client_id=?14, prot_uri=?15, auto_rot=?16, collation=?17, max_size=?18, created_ms=?19,"
                    " deleted_ms=?20, earliest_restore_ms=?21, next_check_ms=?22, fail_since_ms=?23, fail_code=?24,"
                    " fail_msg=?25, dek_kind=?26, dek_uri=?27, dek_thumb=?28 WHERE uid=?29");
  else
    st = emu_sql(e, "INSERT INTO sql_dbs(parent_id, is_mi, name, location, database_id, sku, tags, extra, create_mode,"
                    " source_id, secondary_type, status, umi, fed_client_id, prot_uri, auto_rot, collation, max_size,"
                    " created_ms, deleted_ms, earliest_restore_ms, next_check_ms, fail_since_ms, fail_code, fail_msg,"
                    " dek_kind, dek_uri, dek_thumb) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,"
                    "?18,?19,?20,?21,?22,?23,?24,?25,?26,?27,?28)");
  if(!st)
    return SQ_EIO;
  char *j1, *j2, *j3;
  sqlite3_bind_text(st, 1, d->parent_id, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 2, d->is_mi);
  sqlite3_bind_text(st, 3, d->name, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, d->location, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 5, d->database_id, -1, SQLITE_STATIC);
  bind_json(st, 6, d->sku, &j1);
  bind_json(st, 7, d->tags, &j2);
  bind_json(st, 8, d->extra, &j3);
  sqlite3_bind_text(st, 9, d->create_mode, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 10, d->source_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 11, d->secondary_type, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 12, d->status, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 13, d->umi, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 14, d->fed_client_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 15, d->prot_uri, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 16, d->auto_rot);
  sqlite3_bind_text(st, 17, d->collation, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 18, d->max_size);
  sqlite3_bind_int64(st, 19, d->created_ms);
  sqlite3_bind_int64(st, 20, d->deleted_ms);
  sqlite3_bind_int64(st, 21, d->earliest_restore_ms);
  sqlite3_bind_int64(st, 22, d->next_check_ms);
  sqlite3_bind_int64(st, 23, d->fail_since_ms);
  sqlite3_bind_text(st, 24, d->fail_code, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 25, d->fail_msg, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 26, d->dek_kind, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 27, d->dek_uri, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 28, d->dek_thumb, -1, SQLITE_STATIC);
  if(d->uid)
    sqlite3_bind_int64(st, 29, d->uid);
  int ok = sqlite3_step(st) == SQLITE_DONE;
  sqlite3_finalize(st);
  free(j1);
  free(j2);
  free(j3);
  if(ok && !d->uid)
    d->uid = sqlite3_last_insert_rowid(e->db);
  return ok ? SQ_OK : SQ_EIO;
}

void sql_db_id(const sql_db *d, char *out, size_t n) { snprintf(out, n, "%s/databases/%s", d->parent_id, d->name); }

/* A history query of a database: now_sql for the present (at < 0), else
 * at_sql with ?2 = at; ?1 = uid in both. */
static sqlite3_stmt *history_query(emu *e, const char *now_sql, const char *at_sql, int64_t uid, int64_t at) {
  sqlite3_stmt *st = emu_sql(e, at < 0 ? now_sql : at_sql);
  if(st) {
    sqlite3_bind_int64(st, 1, uid);
    if(at >= 0)
      sqlite3_bind_int64(st, 2, at);
  }
  return st;
}

/* ---- keys map ---- */

#define DBKEY_SELECT \
  "SELECT uri, vault, key_name, version, thumb, added_ms, removed_ms, key_created_ms, subregion FROM sql_db_keys"

int sql_dbkeys_list(emu *e, int64_t uid, int64_t at, sql_dbkey **out) {
  *out = NULL;
  sqlite3_stmt *st = history_query(e, DBKEY_SELECT " WHERE db_uid=? AND removed_ms=0 ORDER BY rowid",
                                   DBKEY_SELECT " WHERE db_uid=? AND added_ms<=?2 AND (removed_ms=0 OR removed_ms>?2)"
                                                " ORDER BY rowid",
                                   uid, at);
  if(!st)
    return 0;
  int n = 0, cap = 0;
  while(sqlite3_step(st) == SQLITE_ROW && n < 4096) {
    if(n == cap) {
      cap = cap ? cap * 2 : 8;
      sql_dbkey *nk = realloc(*out, (size_t)cap * sizeof **out);
      if(!nk)
        break;
      *out = nk;
    }
    sql_dbkey *k = &(*out)[n++];
    memset(k, 0, sizeof *k);
    snprintf(k->uri, sizeof k->uri, "%s", emu_col_text(st, 0));
    snprintf(k->ref.vault, sizeof k->ref.vault, "%s", emu_col_text(st, 1));
    snprintf(k->ref.name, sizeof k->ref.name, "%s", emu_col_text(st, 2));
    snprintf(k->ref.version, sizeof k->ref.version, "%s", emu_col_text(st, 3));
    snprintf(k->thumb, sizeof k->thumb, "%s", emu_col_text(st, 4));
    k->added_ms = sqlite3_column_int64(st, 5);
    k->removed_ms = sqlite3_column_int64(st, 6);
    k->key_created_ms = sqlite3_column_int64(st, 7);
    snprintf(k->subregion, sizeof k->subregion, "%s", emu_col_text(st, 8));
  }
  sqlite3_finalize(st);
  return n;
}

sq_code sql_dbkey_add(emu *e, int64_t uid, const sql_dbkey *k, int64_t now) {
  sqlite3_stmt *st = emu_sql(e, "INSERT INTO sql_db_keys(db_uid, uri, vault, key_name, version, thumb, added_ms,"
                                " key_created_ms, subregion) VALUES(?,?,?,?,?,?,?,?,?)");
  if(!st)
    return SQ_EIO;
  sqlite3_bind_int64(st, 1, uid);
  sqlite3_bind_text(st, 2, k->uri, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, k->ref.vault, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, k->ref.name, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 5, k->ref.version, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 6, k->thumb, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 7, now);
  sqlite3_bind_int64(st, 8, k->key_created_ms);
  sqlite3_bind_text(st, 9, k->subregion, -1, SQLITE_STATIC);
  int ok = sqlite3_step(st) == SQLITE_DONE;
  sqlite3_finalize(st);
  return ok ? SQ_OK : SQ_EIO;
}

sq_code sql_dbkey_remove(emu *e, int64_t uid, const char *uri, int64_t now) {
  sqlite3_stmt *st = emu_sql(e, "UPDATE sql_db_keys SET removed_ms=? WHERE db_uid=? AND uri=? AND removed_ms=0");
  if(!st)
    return SQ_EIO;
  sqlite3_bind_int64(st, 1, now);
  sqlite3_bind_int64(st, 2, uid);
  sqlite3_bind_text(st, 3, uri, -1, SQLITE_STATIC);
  int ok = sqlite3_step(st) == SQLITE_DONE;
  sqlite3_finalize(st);
  return ok ? SQ_OK : SQ_EIO;
}

/* ---- DEK wraps and VLFs ---- */

sq_code sql_wrap_record(emu *e, int64_t uid, int64_t at, const char *kind, const char *uri, const char *thumb,
                        const void *wrapped, size_t n) {
  sqlite3_stmt *st = emu_sql(e, "INSERT INTO sql_wraps(db_uid, from_ms, kind, uri, thumb, wrapped) VALUES(?,?,?,?,?,?)");
  if(!st)
    return SQ_EIO;
  sqlite3_bind_int64(st, 1, uid);
  sqlite3_bind_int64(st, 2, at);
  sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, uri, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 5, thumb, -1, SQLITE_STATIC);
  sqlite3_bind_blob(st, 6, wrapped, (int)n, SQLITE_STATIC);
  int ok = sqlite3_step(st) == SQLITE_DONE;
  sqlite3_finalize(st);
  return ok ? SQ_OK : SQ_EIO;
}

int sql_wrap_at(emu *e, int64_t uid, int64_t at, sql_wrap *out) {
  sqlite3_stmt *st = emu_sql(e, "SELECT kind, uri, thumb, wrapped, from_ms FROM sql_wraps WHERE db_uid=? AND from_ms<=?"
                                " ORDER BY from_ms DESC, seq DESC LIMIT 1");
  if(!st)
    return 0;
  sqlite3_bind_int64(st, 1, uid);
  sqlite3_bind_int64(st, 2, at < 0 ? INT64_MAX : at);
  int ok = sqlite3_step(st) == SQLITE_ROW;
  if(ok) {
    snprintf(out->kind, sizeof out->kind, "%s", emu_col_text(st, 0));
    snprintf(out->uri, sizeof out->uri, "%s", emu_col_text(st, 1));
    snprintf(out->thumb, sizeof out->thumb, "%s", emu_col_text(st, 2));
    sq_buf_init(&out->wrapped, 4096);
    sq_buf_add(&out->wrapped, sqlite3_column_blob(st, 3), (size_t)sqlite3_column_bytes(st, 3));
    out->from_ms = sqlite3_column_int64(st, 4);
  }
  sqlite3_finalize(st);
  return ok;
}

int sql_vlf_thumbs_at(emu *e, int64_t uid, int64_t at, char thumbs[][SQ_THUMBPRINT_HEX_LEN + 1], int max) {
  sqlite3_stmt *st = history_query(e, "SELECT DISTINCT thumb FROM sql_vlfs WHERE db_uid=? AND retired_ms=0",
                                   "SELECT DISTINCT thumb FROM sql_vlfs WHERE db_uid=? AND created_ms<=?2 AND"
                                   " (retired_ms=0 OR retired_ms>?2)",
                                   uid, at);
  if(!st)
    return 0;
  int n = 0;
  while(n < max && sqlite3_step(st) == SQLITE_ROW)
    snprintf(thumbs[n++], SQ_THUMBPRINT_HEX_LEN + 1, "%s", emu_col_text(st, 0));
  sqlite3_finalize(st);
  return n;
}
