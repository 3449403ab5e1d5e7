/* sql_tick.c — the Microsoft.Sql provider's behaviour over (virtual) time,
 * run once per request from emu_handle: adopting seeded servers, SQL's
 * delayed view of Key Vault permissions, periodic protector checks that move
 * databases to Inaccessible after the grace period (4xx: 30 min, network:
 * 24 h in Azure; both configurable), managed-instance fallback to a
 * same-thumbprint key in another vault while the primary vault is down, and
 * auto-rotation pickup. Also the provider's test-control endpoints under
 * /_emulator/sql/ (settings, workload, data, log segments, LTR backups,
 * forcing a key check). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sql.h"
#include "sqltde/jsonx.h"
#include "sqltde/log.h"

/* Messages and ids are built into fixed buffers on purpose (bounded memory for
 * anything derived from requests); truncating an over-long one is intended. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

/* The first time on the check grid (base + k*interval) at or after t. */
static int64_t grid_at_or_after(int64_t base, int64_t interval, int64_t t) {
  if(t <= base || interval <= 0)
    return t <= base ? base : t;
  return base + ((t - base + interval - 1) / interval) * interval;
}

static int64_t next_grid_after(int64_t base, int64_t interval, int64_t now) {
  if(interval <= 0)
    return now;
  return base + ((now - base) / interval + 1) * interval;
}

/* A failing check at base: *since keeps when the failure began (set once: its
 * cause if known, put on the check grid, else base; never after now). 1 when
 * the grace period for this kind of failure (4xx or network) is over. */
static int failure_grace_over(const sql_settings *s, const sqlkv_fail *f, int64_t base, int64_t now, int64_t *since) {
  if(!*since)
    *since = f->cause_ms > base ? grid_at_or_after(base, s->key_check_interval_ms, f->cause_ms) : base;
  if(*since > now)
    *since = now;
  int64_t grace = sqlkv_is_network(f) ? s->network_grace_ms : s->inaccessible_after_ms;
  return now - *since >= grace;
}

/* ---- parents (servers, managed instances) ---- */

sqlkv_status sql_parent_check(emu *e, sql_parent *p, sqlkv_fail *f) {
  memset(f, 0, sizeof *f);
  if(strcmp(p->prot_type, "AzureKeyVault"))
    return SK_OK;
  char oid[EMU_ID_MAX];
  int is_umi;
  sqlkv_status st = sql_parent_oid(e, p, oid, &is_umi);
  if(st) {
    f->st = st;
    snprintf(f->detail, sizeof f->detail, "The %s '%s' has no identity to reach its key.", p->is_mi ? "instance" : "server",
             p->name);
    return st;
  }
  st = sqlkv_access(e, p->prot_uri, oid, SQLKV_ALL, 0, NULL, f);
  if(!st) {
    p->active_uri[0] = '\0'; /* back on the primary vault */
    return SK_OK;
  }
  if(!p->is_mi || !sqlkv_is_network(f))
    return st; /* no fallback when access was revoked or the key deleted (azure-api.md §2.4) */
  /* primary vault unreachable: a registered key with the same thumbprint in another vault */
  sqlkv_ref pr;
  sqlkv_parse_uri(p->prot_uri, &pr);
  sqlite3_stmt *q = emu_sql(e, "SELECT uri FROM sql_parent_keys WHERE parent_id=? AND thumb=?");
  char uris[8][SQL_URI_MAX];
  int n = 0;
  if(q) {
    sqlite3_bind_text(q, 1, p->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, p->prot_thumb, -1, SQLITE_STATIC);
    while(n < 8 && sqlite3_step(q) == SQLITE_ROW)
      snprintf(uris[n++], SQL_URI_MAX, "%s", emu_col_text(q, 0));
    sqlite3_finalize(q);
  }
  sqlkv_fail first = *f;
  for(int i = 0; i < n; i++) {
    sqlkv_ref r;
    if(!sqlkv_parse_uri(uris[i], &r) || !strcasecmp(r.vault, pr.vault))
      continue;
    sqlkv_key k;
    sqlkv_fail f2;
    if(!sqlkv_access(e, uris[i], oid, SQLKV_ALL, 0, &k, &f2)) {
      int same = !strcmp(k.thumb, p->prot_thumb);
      sqlkv_key_free(&k);
      if(same) {
        if(strcmp(p->active_uri, uris[i]))
          SQ_INFO("emulator", "sql: instance %s falls back to %s (primary vault unreachable)", p->name, uris[i]);
        snprintf(p->active_uri, sizeof p->active_uri, "%s", uris[i]);
        memset(f, 0, sizeof *f);
        return SK_OK;
      }
    }
  }
  *f = first;
  return st;
}

static void parent_autorotate(emu *e, sql_parent *p, int64_t now, int64_t window) {
  if(!p->prot_auto || strcmp(p->prot_type, "AzureKeyVault"))
    return;
  sqlkv_ref r;
  if(!sqlkv_parse_uri(p->prot_uri, &r))
    return;
  char oid[EMU_ID_MAX];
  int is_umi;
  if(sql_parent_oid(e, p, oid, &is_umi))
    return;
  sqlkv_key k;
  sqlkv_fail f;
  if(sqlkv_latest(e, &r, oid, &k, &f))
    return;
  if(strcmp(k.thumb, p->prot_thumb) && now - k.created_s * 1000 >= window) {
    sql_parent_use_key(e, p, &k, NULL, now);
    sql_parent_save(e, p);
    sql_parent_rewrap_dbs(e, p, now);
    SQ_INFO("emulator", "sql: %s auto-rotated its protector to %s", p->name, p->prot_uri);
  }
  sqlkv_key_free(&k);
}

static void check_parents(emu *e, const sql_settings *s, int64_t now) {
  sqlite3_stmt *st = emu_sql(e, "SELECT id FROM sql_parents WHERE next_check_ms<=? LIMIT 64");
  if(!st)
    return;
  sqlite3_bind_int64(st, 1, now);
  char ids[64][SQL_RID_MAX];
  int n = 0;
  while(n < 64 && sqlite3_step(st) == SQLITE_ROW)
    snprintf(ids[n++], SQL_RID_MAX, "%s", emu_col_text(st, 0));
  sqlite3_finalize(st);
  for(int i = 0; i < n; i++) {
    sql_parent p;
    if(!sql_parent_load_id(e, ids[i], &p))
      continue;
    int64_t base = p.next_check_ms ? p.next_check_ms : now;
    sqlkv_fail f;
    if(sql_parent_check(e, &p, &f)) {
      int over = failure_grace_over(s, &f, base, now, &p.fail_since_ms);
      char code[128], msg[512];
      sqlkv_error(&f, p.is_mi ? SQLKV_CTX_MI : SQLKV_CTX_SERVER, p.prot_uri, code, msg);
      snprintf(p.fail_code, sizeof p.fail_code, "%s", code);
      if(p.is_mi && over)
        snprintf(p.state, sizeof p.state, "Inaccessible");
    } else {
      p.fail_since_ms = 0;
      p.fail_code[0] = '\0';
      parent_autorotate(e, &p, now, s->autorotation_window_ms);
    }
    p.next_check_ms = next_grid_after(base, s->key_check_interval_ms, now);
    sql_parent_save(e, &p);
    sql_parent_free(&p);
  }
}

/* ---- databases ---- */

static void check_dbs(emu *e, const sql_settings *s, int64_t now) {
  sqlite3_stmt *st = emu_sql(e, "SELECT uid FROM sql_dbs WHERE deleted_ms=0 AND next_check_ms<=? LIMIT 256");
  if(!st)
    return;
  sqlite3_bind_int64(st, 1, now);
  int64_t uids[256];
  int n = 0;
  while(n < 256 && sqlite3_step(st) == SQLITE_ROW)
    uids[n++] = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  for(int i = 0; i < n; i++) {
    sql_db d;
    if(!sql_db_load_uid(e, uids[i], &d))
      continue;
    int64_t base = d.next_check_ms ? d.next_check_ms : now;
    sqlkv_fail f;
    if(sql_db_check(e, &d, &f)) {
      int over = failure_grace_over(s, &f, base, now, &d.fail_since_ms);
      char code[128], msg[512];
      sqlkv_error(&f, d.prot_uri[0] ? SQLKV_CTX_DB : d.is_mi ? SQLKV_CTX_MI : SQLKV_CTX_SERVER,
                  d.prot_uri[0] ? d.prot_uri : d.dek_uri, code, msg);
      if(strcmp(d.status, "Inaccessible") && over) {
        snprintf(d.status, sizeof d.status, "Inaccessible");
        snprintf(d.fail_code, sizeof d.fail_code, "%s", code);
        snprintf(d.fail_msg, sizeof d.fail_msg, "%s", msg);
        /* an inaccessible geo-replica drops out of replication (azure-api.md §2.5) */
        sql_geo_drop_links(e, d.uid);
        SQ_INFO("emulator", "sql: database %s is now Inaccessible (%s)", d.name, code);
      }
    } else if(strcmp(d.status, "Inaccessible")) {
      /* access came back before the grace period ended: auto-heal */
      sql_db_clear_failure(&d);
      sql_db_autorotate(e, &d, now, s->autorotation_window_ms);
    }
    d.next_check_ms = next_grid_after(base, s->key_check_interval_ms, now);
    sql_db_save(e, &d);
    sql_db_free(&d);
  }
}

void emu_sql_tick(emu *e) {
  sql_parent_adopt_all(e);
  sqlkv_observe_permissions(e);
  sql_settings s;
  sql_settings_load(e, &s);
  int64_t now = emu_now_ms(e);
  check_parents(e, &s, now);
  check_dbs(e, &s, now);
}

/* ---- control API ---- */

void sql_h_ctl_settings_get(emu_call *c) {
  sql_settings s;
  sql_settings_load(c->e, &s);
  emu_reply_json(c, 200, sql_settings_json(&s));
}

void sql_h_ctl_settings_patch(emu_call *c) {
  json_t *b;
  if(emu_body_json(c, 0, &b))
    return;
  sq_err err;
  sq_err_clear(&err);
  if(sql_settings_apply(c->e, b, &err))
    emu_error(c, 400, "BadRequest", "%s", err.message);
  else
    sql_h_ctl_settings_get(c);
  json_decref(b);
}

/* The live database named by an ARM id (body "databaseId" or query "databaseId"). */
static int ctl_db(emu_call *c, const char *id, sql_db *d) {
  sql_rid r;
  if(!id || sql_parse_rid(id, &r) || strcasecmp(r.child_kind, "databases")) {
    emu_error(c, 400, "BadRequest", "'databaseId' must be a database resource id.");
    return 0;
  }
  char pid[SQL_RID_MAX];
  sql_rid_parent(&r, pid, sizeof pid);
  sql_parent p;
  if(!sql_parent_load_id(c->e, pid, &p)) {
    emu_error(c, 404, "NotFound", "No server '%s'.", r.parent);
    return 0;
  }
  int ok = sql_db_load(c->e, p.id, r.child, d);
  sql_parent_free(&p);
  if(!ok)
    emu_error(c, 404, "NotFound", "No database '%s'.", r.child);
  return ok;
}

static void reply_kv_fail(emu_call *c, const sqlkv_fail *f, const sql_db *d) {
  char code[128], msg[512];
  sqlkv_error(f, SQLKV_CTX_DB, d->prot_uri[0] ? d->prot_uri : d->dek_uri, code, msg);
  emu_reply_json(c, 409, json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg));
}

void sql_h_ctl_workload(emu_call *c) {
  json_t *b;
  if(emu_body_json(c, 0, &b))
    return;
  sql_db d;
  if(ctl_db(c, sq_json_str(b, "databaseId"), &d)) {
    int64_t records = sq_json_int(b, "records", 1);
    int retire = sq_json_bool(b, "retireOldLog", 1);
    if(records < 1 || records > 10000) {
      emu_error(c, 400, "BadRequest", "records must be 1..10000");
    } else {
      sqlkv_fail f;
      if(sql_db_workload(c->e, &d, (int)records, retire, sq_json_str(b, "text"), &f))
        reply_kv_fail(c, &f, &d);
      else
        sql_h_ctl_vlfs(c);
    }
    sql_db_free(&d);
  }
  json_decref(b);
}

void sql_h_ctl_data(emu_call *c) {
  sql_db d;
  if(!ctl_db(c, emu_query(c, "databaseId"), &d))
    return;
  json_t *rows;
  sqlkv_fail f;
  if(sql_db_read_data(c->e, &d, &rows, &f))
    reply_kv_fail(c, &f, &d);
  else
    emu_reply_json(c, 200, json_pack("{s:o}", "records", rows));
  sql_db_free(&d);
}

/* sys.dm_db_log_info-like view: each segment with vlf_encryptor_thumbprint and status. */
void sql_h_ctl_vlfs(emu_call *c) {
  const char *id = emu_query(c, "databaseId");
  json_t *b = NULL;
  if(!id && c->req->body_len) {
    b = json_loadb(c->req->body, c->req->body_len, 0, NULL);
    id = sq_json_str(b, "databaseId");
  }
  sql_db d;
  if(ctl_db(c, id, &d)) {
    json_t *a = json_array();
    sqlite3_stmt *st = emu_sql(c->e, "SELECT seq, created_ms, retired_ms, thumb, records FROM sql_vlfs WHERE db_uid=?"
                                     " ORDER BY seq");
    if(st) {
      sqlite3_bind_int64(st, 1, d.uid);
      while(sqlite3_step(st) == SQLITE_ROW) {
        char t[40];
        sql_fmt_time_ms(sqlite3_column_int64(st, 1), t, sizeof t);
        json_array_append_new(a, json_pack("{s:I,s:s,s:s,s:s,s:i}", "vlfId", (json_int_t)sqlite3_column_int64(st, 0),
                                           "created", t, "status",
                                           sqlite3_column_int64(st, 2) ? "inactive" : "active",
                                           "vlfEncryptorThumbprint", emu_col_text(st, 3), "records",
                                           sqlite3_column_int(st, 4)));
      }
      sqlite3_finalize(st);
    }
    emu_reply_json(c, 200, json_pack("{s:s,s:s,s:s,s:o}", "status", d.status, "protectorThumbprint", d.dek_thumb,
                                     "encryptionProtector", d.prot_uri, "vlfs", a));
    sql_db_free(&d);
  }
  json_decref(b);
}

void sql_h_ctl_ltr_backup(emu_call *c) {
  json_t *b;
  if(emu_body_json(c, 0, &b))
    return;
  sql_db d;
  if(ctl_db(c, sq_json_str(b, "databaseId"), &d)) {
    sql_parent p;
    if(sql_parent_load_id(c->e, d.parent_id, &p)) {
      int64_t now = emu_now_ms(c->e);
      int64_t keep_days = sq_json_int(b, "retentionDays", 365);
      char guid[37], name[96];
      emu_guid(guid);
      snprintf(name, sizeof name, "%s;%lld", guid, (long long)sql_ticks(now));
      sqlite3_stmt *st = emu_sql(c->e, "INSERT INTO sql_ltr(name, db_uid, backup_ms, expiry_ms, location, server, database,"
                                       " sub, rg, server_created_ms) VALUES(?,?,?,?,?,?,?,?,?,?)");
      if(st) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, d.uid);
        sqlite3_bind_int64(st, 3, now);
        sqlite3_bind_int64(st, 4, now + keep_days * 86400 * 1000);
        sqlite3_bind_text(st, 5, p.region, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, p.name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 7, d.name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 8, p.sub, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 9, p.rg, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 10, p.created_ms);
        sqlite3_step(st);
        sqlite3_finalize(st);
      }
      char id[2048];
      snprintf(id, sizeof id,
               "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Sql/locations/%s/longTermRetentionServers/%s/"
               "longTermRetentionDatabases/%s/longTermRetentionBackups/%s",
               p.sub, p.rg, p.region, p.name, d.name, name);
      emu_reply_json(c, 201, json_pack("{s:s,s:s}", "id", id, "name", name));
      sql_parent_free(&p);
    }
    sql_db_free(&d);
  }
  json_decref(b);
}

void sql_h_ctl_check(emu_call *c) {
  emu_exec(c->e, "UPDATE sql_dbs SET next_check_ms=0 WHERE deleted_ms=0; UPDATE sql_parents SET next_check_ms=0", NULL);
  int64_t now = emu_now_ms(c->e);
  /* a forced check happens now: keep the grid from drifting into the past */
  sqlite3_stmt *st = emu_sql(c->e, "UPDATE sql_dbs SET next_check_ms=? WHERE deleted_ms=0");
  if(st) {
    sqlite3_bind_int64(st, 1, now);
    sqlite3_step(st);
    sqlite3_finalize(st);
  }
  st = emu_sql(c->e, "UPDATE sql_parents SET next_check_ms=?");
  if(st) {
    sqlite3_bind_int64(st, 1, now);
    sqlite3_step(st);
    sqlite3_finalize(st);
  }
  emu_sql_tick(c->e);
  json_t *a = json_array();
  st = emu_sql(c->e, "SELECT parent_id, name, status, fail_code FROM sql_dbs WHERE deleted_ms=0 ORDER BY uid");
  if(st) {
    while(sqlite3_step(st) == SQLITE_ROW)
      json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:s}", "server", emu_col_text(st, 0), "name", emu_col_text(st, 1),
                                         "status", emu_col_text(st, 2), "reason", emu_col_text(st, 3)));
    sqlite3_finalize(st);
  }
  emu_reply_json(c, 200, json_pack("{s:o}", "databases", a));
}
