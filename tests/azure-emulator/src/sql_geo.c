/* sql_geo.c — geo replication links, failover groups (servers) and instance
 * failover groups, restorable dropped databases, recoverable (geo-restore)
 * databases and long-term retention backups (azure-api.md §2.5, §1.5-1.6).
 * Replica creation itself is a createMode of databases (sql_db.c); this file
 * keeps the links and the groups and serves their shapes. */
#include <ctype.h>
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

/* ---- links ---- */

int sql_geo_secondary_count(emu *e, int64_t primary_uid) {
  sqlite3_stmt *st = emu_sql(e, "SELECT COUNT(*) FROM sql_links WHERE primary_uid=?");
  int n = 0;
  if(st) {
    sqlite3_bind_int64(st, 1, primary_uid);
    if(sqlite3_step(st) == SQLITE_ROW)
      n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
  }
  return n;
}

int sql_geo_is_secondary(emu *e, int64_t uid, int64_t *primary_uid) {
  sqlite3_stmt *st = emu_sql(e, "SELECT primary_uid FROM sql_links WHERE secondary_uid=?");
  int r = 0;
  if(st) {
    sqlite3_bind_int64(st, 1, uid);
    if(sqlite3_step(st) == SQLITE_ROW) {
      r = 1;
      *primary_uid = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
  }
  return r;
}

sq_code sql_geo_link_add(emu *e, int64_t primary_uid, int64_t secondary_uid, const char *type, int64_t now) {
  char id[37];
  emu_guid(id);
  sqlite3_stmt *st = emu_sql(e, "INSERT INTO sql_links(id, primary_uid, secondary_uid, link_type, created_ms)"
                                " VALUES(?,?,?,?,?)");
  if(!st)
    return SQ_EIO;
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, primary_uid);
  sqlite3_bind_int64(st, 3, secondary_uid);
  sqlite3_bind_text(st, 4, type && !strcasecmp(type, "Named") ? "NAMED" : type && !strcasecmp(type, "Standby") ? "STANDBY" : "GEO",
                    -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 5, now);
  int ok = sqlite3_step(st) == SQLITE_DONE;
  sqlite3_finalize(st);
  return ok ? SQ_OK : SQ_EIO;
}

int sql_geo_secondaries(emu *e, int64_t primary_uid, int64_t *out, int max) {
  sqlite3_stmt *st = emu_sql(e, "SELECT secondary_uid FROM sql_links WHERE primary_uid=? ORDER BY created_ms");
  int n = 0;
  if(st) {
    sqlite3_bind_int64(st, 1, primary_uid);
    while(n < max && sqlite3_step(st) == SQLITE_ROW)
      out[n++] = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
  }
  return n;
}

void sql_geo_drop_links(emu *e, int64_t uid) {
  sqlite3_stmt *st = emu_sql(e, "DELETE FROM sql_links WHERE primary_uid=? OR secondary_uid=?");
  if(st) {
    sqlite3_bind_int64(st, 1, uid);
    sqlite3_bind_int64(st, 2, uid);
    sqlite3_step(st);
    sqlite3_finalize(st);
  }
  /* a standalone ex-secondary is a normal database again */
  st = emu_sql(e, "UPDATE sql_dbs SET secondary_type='' WHERE uid=? AND secondary_type!=''");
  if(st) {
    sqlite3_bind_int64(st, 1, uid);
    sqlite3_step(st);
    sqlite3_finalize(st);
  }
}

typedef struct link_row {
  char id[40];
  int64_t primary_uid, secondary_uid, created_ms;
  char type[16];
} link_row;

static int links_of(emu *e, int64_t uid, const char *server_id, link_row *out, int max) {
  sqlite3_stmt *st;
  if(server_id)
    st = emu_sql(e, "SELECT l.id, l.primary_uid, l.secondary_uid, l.link_type, l.created_ms FROM sql_links l"
                    " JOIN sql_dbs p ON p.uid=l.primary_uid JOIN sql_dbs s ON s.uid=l.secondary_uid"
                    " WHERE p.parent_id=?1 OR s.parent_id=?1 ORDER BY l.created_ms");
  else
    st = emu_sql(e, "SELECT id, primary_uid, secondary_uid, link_type, created_ms FROM sql_links"
                    " WHERE primary_uid=?1 OR secondary_uid=?1 ORDER BY created_ms");
  if(!st)
    return 0;
  if(server_id)
    sqlite3_bind_text(st, 1, server_id, -1, SQLITE_STATIC);
  else
    sqlite3_bind_int64(st, 1, uid);
  int n = 0;
  while(n < max && sqlite3_step(st) == SQLITE_ROW) {
    snprintf(out[n].id, sizeof out[n].id, "%s", emu_col_text(st, 0));
    out[n].primary_uid = sqlite3_column_int64(st, 1);
    out[n].secondary_uid = sqlite3_column_int64(st, 2);
    snprintf(out[n].type, sizeof out[n].type, "%s", emu_col_text(st, 3));
    out[n].created_ms = sqlite3_column_int64(st, 4);
    n++;
  }
  sqlite3_finalize(st);
  return n;
}

/* A link as seen from database self (one of its two ends). */
static json_t *link_json(emu *e, const link_row *l, int64_t self_uid) {
  sql_db me, other;
  int64_t other_uid = self_uid == l->primary_uid ? l->secondary_uid : l->primary_uid;
  if(!sql_db_load_uid(e, self_uid, &me))
    return NULL;
  if(!sql_db_load_uid(e, other_uid, &other)) {
    sql_db_free(&me);
    return NULL;
  }
  sql_rid orid;
  sql_parse_rid(other.parent_id, &orid);
  char id[SQL_RID_MAX + 300], start[40], mid[SQL_RID_MAX + 200];
  sql_db_id(&me, mid, sizeof mid);
  snprintf(id, sizeof id, "%s/replicationLinks/%s", mid, l->id);
  sql_fmt_time_ms(l->created_ms, start, sizeof start);
  int primary = self_uid == l->primary_uid;
  json_t *j = json_pack("{s:s,s:s,s:s,s:{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:s,s:b,s:s}}", "id", id, "name", l->id, "type",
                        "Microsoft.Sql/servers/databases/replicationLinks", "properties", "partnerServer", orid.parent,
                        "partnerDatabase", other.name, "partnerLocation", other.location, "role",
                        primary ? "Primary" : "Secondary", "partnerRole", primary ? "Secondary" : "Primary",
                        "replicationMode", "Async", "startTime", start, "percentComplete", 100, "replicationState",
                        "CATCH_UP", "isTerminationAllowed", 1, "linkType", l->type);
  char pdbid[SQL_RID_MAX + 200];
  sql_db_id(&other, pdbid, sizeof pdbid);
  json_object_set_new(json_object_get(j, "properties"), "partnerDatabaseId", json_string(pdbid));
  sql_db_free(&me);
  sql_db_free(&other);
  return j;
}

static void db_not_found(emu_call *c, const char *name) {
  emu_arm_error(c, 404, "ResourceNotFound", "The database '%.128s' was not found.", name);
}


void sql_h_links_server(emu_call *c) {
  sql_parent p;
  if(!sql_begin(c, 0, "Microsoft.Sql/servers/replicationLinks/read", &p))
    return;
  link_row l[64];
  int n = links_of(c->e, 0, p.id, l, 64);
  json_t *arr = json_array();
  for(int i = 0; i < n; i++) {
    sql_db a;
    int64_t self = l[i].primary_uid;
    if(sql_db_load_uid(c->e, l[i].primary_uid, &a)) {
      if(strcasecmp(a.parent_id, p.id))
        self = l[i].secondary_uid;
      sql_db_free(&a);
    }
    json_t *j = link_json(c->e, &l[i], self);
    if(j)
      json_array_append_new(arr, j);
  }
  emu_reply_json(c, 200, json_pack("{s:o}", "value", arr));
  sql_parent_free(&p);
}

void sql_h_links_db(emu_call *c) {
  sql_parent p;
  sql_db d;
  if(!sql_begin_db(c, "Microsoft.Sql/servers/databases/replicationLinks/read", db_not_found, &p, &d))
    return;
  link_row l[32];
  int n = links_of(c->e, d.uid, NULL, l, 32);
  json_t *arr = json_array();
  for(int i = 0; i < n; i++) {
    json_t *j = link_json(c->e, &l[i], d.uid);
    if(j)
      json_array_append_new(arr, j);
  }
  emu_reply_json(c, 200, json_pack("{s:o}", "value", arr));
  sql_db_free(&d);
  sql_parent_free(&p);
}

static int find_link(emu_call *c, const sql_db *d, link_row *out) {
  link_row l[32];
  int n = links_of(c->e, d->uid, NULL, l, 32);
  for(int i = 0; i < n; i++)
    if(!strcasecmp(l[i].id, emu_var(c, "link"))) {
      *out = l[i];
      return 1;
    }
  emu_arm_error(c, 404, "ResourceNotFound", "The replication link '%.64s' was not found.", emu_var(c, "link"));
  return 0;
}

void sql_h_link_get(emu_call *c) {
  sql_parent p;
  sql_db d;
  link_row l;
  if(!sql_begin_db(c, "Microsoft.Sql/servers/databases/replicationLinks/read", db_not_found, &p, &d))
    return;
  if(find_link(c, &d, &l))
    emu_reply_json(c, 200, link_json(c->e, &l, d.uid));
  sql_db_free(&d);
  sql_parent_free(&p);
}

void sql_h_link_delete(emu_call *c) {
  sql_parent p;
  sql_db d;
  link_row l;
  if(!sql_begin_db(c, "Microsoft.Sql/servers/databases/replicationLinks/delete", db_not_found, &p, &d))
    return;
  if(find_link(c, &d, &l))
    sql_lro(c, "DeleteReplicationLink", "replicationLink", p.region, json_pack("{s:s}", "link", l.id));
  sql_db_free(&d);
  sql_parent_free(&p);
}

void sql_h_link_failover(emu_call *c) {
  sql_parent p;
  sql_db d;
  link_row l;
  if(!sql_begin_db(c, "Microsoft.Sql/servers/databases/replicationLinks/failover/action", db_not_found, &p, &d))
    return;
  if(find_link(c, &d, &l)) {
    if(l.secondary_uid != d.uid)
      emu_arm_error(c, 400, "ReplicationLinkFailoverOnPrimary",
                    "Failover must be requested on the secondary database of the link.");
    else
      sql_lro(c, "FailoverReplicationLink", "replicationLink", p.region, json_pack("{s:s}", "link", l.id));
  }
  sql_db_free(&d);
  sql_parent_free(&p);
}

static int lro_link_delete(emu *e, const emu_lro *op, const json_t *in, char code[128], char msg[512], json_t **result) {
  (void)op, (void)code, (void)msg, (void)result;
  sqlite3_stmt *st = emu_sql(e, "SELECT secondary_uid FROM sql_links WHERE id=?");
  if(st) {
    sqlite3_bind_text(st, 1, sq_json_str(in, "link"), -1, SQLITE_STATIC);
    int64_t sec = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if(sec) {
      st = emu_sql(e, "DELETE FROM sql_links WHERE id=?");
      if(st) {
        sqlite3_bind_text(st, 1, sq_json_str(in, "link"), -1, SQLITE_STATIC);
        sqlite3_step(st);
        sqlite3_finalize(st);
      }
      st = emu_sql(e, "UPDATE sql_dbs SET secondary_type='' WHERE uid=?");
      if(st) {
        sqlite3_bind_int64(st, 1, sec);
        sqlite3_step(st);
        sqlite3_finalize(st);
      }
    }
  }
  return 0;
}

static void swap_link(emu *e, const char *link_id) {
  sqlite3_stmt *st = emu_sql(e, "SELECT primary_uid, secondary_uid FROM sql_links WHERE id=?");
  if(!st)
    return;
  sqlite3_bind_text(st, 1, link_id, -1, SQLITE_STATIC);
  int64_t a = 0, b = 0;
  if(sqlite3_step(st) == SQLITE_ROW) {
    a = sqlite3_column_int64(st, 0);
    b = sqlite3_column_int64(st, 1);
  }
  sqlite3_finalize(st);
  if(!a)
    return;
  st = emu_sql(e, "UPDATE sql_links SET primary_uid=?, secondary_uid=? WHERE id=?");
  if(st) {
    sqlite3_bind_int64(st, 1, b);
    sqlite3_bind_int64(st, 2, a);
    sqlite3_bind_text(st, 3, link_id, -1, SQLITE_STATIC);
    sqlite3_step(st);
    sqlite3_finalize(st);
  }
  st = emu_sql(e, "UPDATE sql_dbs SET secondary_type=CASE WHEN uid=? THEN '' ELSE 'Geo' END WHERE uid IN (?, ?)");
  if(st) {
    sqlite3_bind_int64(st, 1, b);
    sqlite3_bind_int64(st, 2, a);
    sqlite3_bind_int64(st, 3, b);
    sqlite3_step(st);
    sqlite3_finalize(st);
  }
}

static int lro_link_failover(emu *e, const emu_lro *op, const json_t *in, char code[128], char msg[512],
                             json_t **result) {
  (void)op, (void)code, (void)msg, (void)result;
  swap_link(e, sq_json_str(in, "link"));
  return 0;
}

/* ---- server failover groups ---- */

typedef struct fog_row {
  char name[EMU_ID_MAX];
  char primary_id[SQL_RID_MAX], secondary_id[SQL_RID_MAX];
  json_t *body; /* owned: {readWriteEndpoint, readOnlyEndpoint, databases:[names]} */
  int64_t created_ms;
} fog_row;

static int fog_load(emu *e, const char *kind, const char *server_id, const char *name, fog_row *out) {
  sqlite3_stmt *st = emu_sql(e, "SELECT name, primary_id, secondary_id, body, created_ms FROM sql_fogs WHERE kind=?1 AND"
                                " name=?3 AND (primary_id=?2 OR secondary_id=?2)");
  if(!st)
    return 0;
  sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, server_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
  int ok = sqlite3_step(st) == SQLITE_ROW;
  if(ok) {
    snprintf(out->name, sizeof out->name, "%s", emu_col_text(st, 0));
    snprintf(out->primary_id, sizeof out->primary_id, "%s", emu_col_text(st, 1));
    snprintf(out->secondary_id, sizeof out->secondary_id, "%s", emu_col_text(st, 2));
    out->body = json_loads(emu_col_text(st, 3), 0, NULL);
    out->created_ms = sqlite3_column_int64(st, 4);
  }
  sqlite3_finalize(st);
  return ok;
}

/* Stores a group (kind "server" | "instance") as its upsert LRO completes. */
static void fog_store(emu *e, const char *kind, const char *name, const char *primary_id, const char *secondary_id,
                      const char *location, const json_t *body, int64_t now) {
  char *b = json_dumps(body, JSON_COMPACT);
  sqlite3_stmt *st = emu_sql(e, "INSERT OR REPLACE INTO sql_fogs(kind, name, primary_id, secondary_id, location, body,"
                                " created_ms) VALUES(?,?,?,?,?,?,?)");
  if(st && b) {
    sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, primary_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, secondary_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, location, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, b, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, now);
    sqlite3_step(st);
  }
  sqlite3_finalize(st);
  free(b);
}

/* What the drop and failover LROs need to find a group again. */
static json_t *fog_ref(const char *kind, const fog_row *f) {
  return json_pack("{s:s,s:s,s:s}", "kind", kind, "primary", f->primary_id, "name", f->name);
}

static void fog_not_found(emu_call *c) {
  emu_arm_error(c, 404, "ResourceNotFound", "The failover group '%.128s' was not found.", emu_var(c, "fog"));
}

static json_t *fog_json(emu *e, const fog_row *f, const char *self_id) {
  sql_parent me, partner;
  int primary = !strcasecmp(self_id, f->primary_id);
  const char *other = primary ? f->secondary_id : f->primary_id;
  if(!sql_parent_load_id(e, self_id, &me))
    return NULL;
  int hp = sql_parent_load_id(e, other, &partner);
  char id[SQL_RID_MAX + 200];
  snprintf(id, sizeof id, "%s/failoverGroups/%s", me.id, f->name);
  json_t *dbs = json_array();
  size_t i;
  json_t *v;
  json_array_foreach(json_object_get(f->body, "databases"), i, v) {
    char dbid[SQL_RID_MAX + 200];
    snprintf(dbid, sizeof dbid, "%s/databases/%s", me.id, json_string_value(v));
    json_array_append_new(dbs, json_string(dbid));
  }
  json_t *rw = json_object_get(f->body, "readWriteEndpoint");
  json_t *ro = json_object_get(f->body, "readOnlyEndpoint");
  json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:{s:O,s:O,s:s,s:s,s:[{s:s,s:s,s:s}],s:o}}", "id", id, "name", f->name, "type",
                        "Microsoft.Sql/servers/failoverGroups", "location", me.region, "properties", "readWriteEndpoint",
                        rw ? rw : json_null(), "readOnlyEndpoint", ro ? ro : json_null(), "replicationRole",
                        primary ? "Primary" : "Secondary", "replicationState", "CATCH_UP", "partnerServers", "id", other,
                        "location", hp ? partner.region : "", "replicationRole", primary ? "Secondary" : "Primary",
                        "databases", dbs);
  sql_parent_free(&me);
  if(hp)
    sql_parent_free(&partner);
  return j;
}

void sql_h_fog_list(emu_call *c) {
  sql_parent p;
  if(!sql_begin(c, 0, "Microsoft.Sql/servers/failoverGroups/read", &p))
    return;
  json_t *arr = json_array();
  sqlite3_stmt *st = emu_sql(c->e, "SELECT name FROM sql_fogs WHERE kind='server' AND (primary_id=?1 OR secondary_id=?1)");
  if(st) {
    sqlite3_bind_text(st, 1, p.id, -1, SQLITE_STATIC);
    while(sqlite3_step(st) == SQLITE_ROW) {
      fog_row f;
      if(fog_load(c->e, "server", p.id, emu_col_text(st, 0), &f)) {
        json_t *j = fog_json(c->e, &f, p.id);
        if(j)
          json_array_append_new(arr, j);
        json_decref(f.body);
      }
    }
    sqlite3_finalize(st);
  }
  emu_reply_json(c, 200, json_pack("{s:o}", "value", arr));
  sql_parent_free(&p);
}

/* sql_begin, then the route's failover group {fog} of that server; a missing
 * one is answered 404, or 204 for a delete (already gone). 1 with both held. */
static int fog_begin(emu_call *c, const char *action, int is_delete, sql_parent *p, fog_row *f) {
  if(!sql_begin(c, 0, action, p))
    return 0;
  if(fog_load(c->e, "server", p->id, emu_var(c, "fog"), f))
    return 1;
  if(is_delete)
    emu_reply_empty(c, 204);
  else
    fog_not_found(c);
  sql_parent_free(p);
  return 0;
}

void sql_h_fog_get(emu_call *c) {
  sql_parent p;
  fog_row f;
  if(!fog_begin(c, "Microsoft.Sql/servers/failoverGroups/read", 0, &p, &f))
    return;
  emu_reply_json(c, 200, fog_json(c->e, &f, p.id));
  json_decref(f.body);
  sql_parent_free(&p);
}

/* Validates a group spec; on success fills the normalised body and partner id. */
static int fog_plan(emu *e, const sql_parent *p, const json_t *req, const fog_row *cur, json_t **body, char *partner,
                    size_t pn, sql_outcome *o) {
  const json_t *props = json_object_get(req, "properties");
  *body = json_object();
  const json_t *rw = json_object_get(props, "readWriteEndpoint");
  if(!rw && cur)
    rw = json_object_get(cur->body, "readWriteEndpoint");
  if(!json_is_object(rw))
    return sql_outf(o, 400, "InvalidParameterValue", "readWriteEndpoint with failoverPolicy is required.");
  const char *pol = sq_json_str(rw, "failoverPolicy");
  if(!pol || (strcasecmp(pol, "Manual") && strcasecmp(pol, "Automatic")) ||
     (!strcasecmp(pol, "Automatic") && !json_object_get(rw, "failoverWithDataLossGracePeriodMinutes")))
    return sql_outf(o, 400, "InvalidParameterValue",
                    "failoverPolicy must be Manual or Automatic (Automatic needs failoverWithDataLossGracePeriodMinutes).");
  json_object_set(*body, "readWriteEndpoint", (json_t *)rw);
  const json_t *ro = json_object_get(props, "readOnlyEndpoint");
  if(!ro && cur)
    ro = json_object_get(cur->body, "readOnlyEndpoint");
  json_object_set_new(*body, "readOnlyEndpoint", ro ? json_deep_copy(ro) : json_pack("{s:s}", "failoverPolicy", "Disabled"));
  const char *pid = sq_json_str(json_array_get(json_object_get(props, "partnerServers"), 0), "id");
  if(cur)
    pid = !strcasecmp(cur->primary_id, p->id) ? cur->secondary_id : cur->primary_id;
  sql_parent partner_p;
  if(!pid || !sql_parent_load_id(e, pid, &partner_p) || partner_p.is_mi)
    return sql_outf(o, 400, "InvalidFailoverGroupPartner", "partnerServers[0].id must name an existing server.");
  snprintf(partner, pn, "%s", partner_p.id);
  sql_parent_free(&partner_p);
  json_t *names = json_array();
  const json_t *dbs = json_object_get(props, "databases");
  if(!dbs && cur)
    dbs = NULL;
  size_t i;
  json_t *v;
  if(dbs) {
    json_array_foreach(dbs, i, v) {
      sql_rid r;
      if(!json_is_string(v) || sql_parse_rid(json_string_value(v), &r) || strcasecmp(r.child_kind, "databases")) {
        json_decref(names);
        return sql_outf(o, 400, "InvalidParameterValue", "databases[] must be database ids.");
      }
      json_array_append_new(names, json_string(r.child));
    }
  } else if(cur) {
    json_decref(names);
    names = json_deep_copy(json_object_get(cur->body, "databases"));
  }
  json_object_set_new(*body, "databases", names);
  return 0;
}

void sql_h_fog_put(emu_call *c) {
  sql_parent p;
  if(!sql_begin(c, 0, "Microsoft.Sql/servers/failoverGroups/write", &p))
    return;
  json_t *req, *body = NULL;
  if(emu_body_json(c, 0, &req)) {
    sql_parent_free(&p);
    return;
  }
  char partner[SQL_RID_MAX];
  sql_outcome o;
  fog_row cur;
  int have = fog_load(c->e, "server", p.id, emu_var(c, "fog"), &cur);
  if(have && strcasecmp(cur.primary_id, p.id))
    emu_arm_error(c, 400, "FailoverGroupUpdateOnSecondary", "Update the failover group on its primary server.");
  else if(!have && !strcmp(c->req->method, "PATCH"))
    fog_not_found(c);
  else if(fog_plan(c->e, &p, req, have ? &cur : NULL, &body, partner, sizeof partner, &o))
    sql_reply_outcome(c, &o);
  else
    sql_lro(c, "UpsertFailoverGroup", "failoverGroup", p.region,
            json_pack("{s:s,s:s,s:O,s:s}", "parent", p.id, "name", emu_var(c, "fog"), "body", body, "partner", partner));
  if(have)
    json_decref(cur.body);
  json_decref(body);
  json_decref(req);
  sql_parent_free(&p);
}

/* A database joining a group: its geo-secondary on the partner already, or
 * seeded there now (server-level CMK only). */
static int fog_join(emu *e, const sql_parent *p, const sql_parent *partner, const char *dn, int64_t now,
                    sql_outcome *o) {
  sql_db d, s;
  if(!sql_db_load(e, p->id, dn, &d))
    return sql_outf(o, 404, "ResourceNotFound", "The database '%s' does not exist on the primary.", dn);
  int64_t pu;
  int has_sec = sql_db_load(e, partner->id, dn, &s);
  int linked = has_sec && sql_geo_is_secondary(e, s.uid, &pu) && pu == d.uid;
  int rc = 0;
  if(linked) {
    /* nothing to do */
  } else if(d.prot_uri[0]) {
    rc = sql_outf(o, 400, "PerDatabaseCMKCopyOrReplicationAttemptedWithoutDatabaseLevelEncryptionProtector",
                  "Database '%s' uses database-level CMK: failover groups do not seed its secondary. Create the "
                  "same-name secondary on the partner with its identity, keys and protector first, then add it.",
                  dn);
  } else if(has_sec) {
    rc = sql_outf(o, 409, "FailoverGroupDatabaseAlreadyExistsOnPartner",
                  "A database '%s' that is not its geo-secondary already exists on the partner.", dn);
  } else {
    char sid[SQL_RID_MAX + 200];
    sql_db_id(&d, sid, sizeof sid);
    json_t *cb = json_pack("{s:s,s:{s:s,s:s,s:s}}", "location", partner->region, "properties", "createMode",
                           "Secondary", "sourceDatabaseId", sid, "secondaryType", "Geo");
    sql_db nd;
    rc = sql_db_create(e, cb, partner, dn, "2023-08-01", now, &nd, o);
    json_decref(cb);
    if(!rc)
      sql_db_free(&nd);
  }
  if(has_sec)
    sql_db_free(&s);
  sql_db_free(&d);
  return rc;
}

static int lro_fog_put(emu *e, const emu_lro *op, const json_t *in, char code[128], char msg[512], json_t **result) {
  sql_parent p, partner;
  sql_outcome o;
  const char *name = sq_json_str(in, "name");
  const json_t *body = json_object_get(in, "body");
  if(!sql_parent_load_id(e, sq_json_str(in, "parent"), &p))
    return 0;
  if(!sql_parent_load_id(e, sq_json_str(in, "partner"), &partner)) {
    sql_parent_free(&p);
    sql_outf(&o, 404, "InvalidFailoverGroupPartner", "The partner server no longer exists.");
    return sql_out_lro(&o, code, msg);
  }
  int rc = 0;
  size_t i;
  json_t *v;
  json_array_foreach(json_object_get(body, "databases"), i, v) {
    if((rc = fog_join(e, &p, &partner, json_string_value(v), op->done_ms, &o)))
      break;
  }
  if(rc) {
    sql_out_lro(&o, code, msg);
  } else {
    fog_store(e, "server", name, p.id, partner.id, p.region, body, op->done_ms);
    fog_row f;
    if(fog_load(e, "server", p.id, name, &f)) {
      *result = fog_json(e, &f, p.id);
      json_decref(f.body);
    }
  }
  sql_parent_free(&p);
  sql_parent_free(&partner);
  return rc ? 1 : 0;
}

void sql_h_fog_delete(emu_call *c) {
  sql_parent p;
  fog_row f;
  if(!fog_begin(c, "Microsoft.Sql/servers/failoverGroups/delete", 1, &p, &f))
    return;
  sql_lro(c, "DropFailoverGroup", "failoverGroup", p.region, fog_ref("server", &f));
  json_decref(f.body);
  sql_parent_free(&p);
}

static int lro_fog_delete(emu *e, const emu_lro *op, const json_t *in, char code[128], char msg[512], json_t **result) {
  (void)op, (void)code, (void)msg, (void)result;
  sqlite3_stmt *st = emu_sql(e, "DELETE FROM sql_fogs WHERE kind=? AND primary_id=? AND name=?");
  if(st) {
    sqlite3_bind_text(st, 1, sq_json_str(in, "kind"), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, sq_json_str(in, "primary"), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, sq_json_str(in, "name"), -1, SQLITE_STATIC);
    sqlite3_step(st);
    sqlite3_finalize(st);
  }
  return 0;
}

void sql_h_fog_failover(emu_call *c) {
  sql_parent p;
  fog_row f;
  if(!fog_begin(c, "Microsoft.Sql/servers/failoverGroups/failover/action", 0, &p, &f))
    return;
  if(!strcasecmp(f.primary_id, p.id))
    emu_arm_error(c, 400, "FailoverGroupFailoverOnPrimary", "Failover must be requested on the secondary server of the group.");
  else
    sql_lro(c, "FailoverFailoverGroup", "failoverGroup", p.region, fog_ref("server", &f));
  json_decref(f.body);
  sql_parent_free(&p);
}

static int lro_fog_failover(emu *e, const emu_lro *op, const json_t *in, char code[128], char msg[512], json_t **result) {
  (void)op, (void)code, (void)msg, (void)result;
  const char *kind = sq_json_str(in, "kind");
  fog_row f;
  if(!fog_load(e, kind, sq_json_str(in, "primary"), sq_json_str(in, "name"), &f))
    return 0;
  if(!strcmp(kind, "server")) {
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(f.body, "databases"), i, v) {
      sql_db d;
      if(!sql_db_load(e, f.primary_id, json_string_value(v), &d))
        continue;
      link_row l[16];
      int n = links_of(e, d.uid, NULL, l, 16);
      for(int k = 0; k < n; k++) {
        sql_db s;
        if(l[k].primary_uid == d.uid && sql_db_load_uid(e, l[k].secondary_uid, &s)) {
          if(!strcasecmp(s.parent_id, f.secondary_id))
            swap_link(e, l[k].id);
          sql_db_free(&s);
        }
      }
      sql_db_free(&d);
    }
  }
  sqlite3_stmt *st = emu_sql(e, "UPDATE sql_fogs SET primary_id=secondary_id, secondary_id=primary_id"
                                " WHERE kind=? AND primary_id=? AND name=?");
  if(st) {
    sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, f.primary_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, f.name, -1, SQLITE_STATIC);
    sqlite3_step(st);
    sqlite3_finalize(st);
  }
  json_decref(f.body);
  return 0;
}

/* ---- instance failover groups: .../locations/{loc}/instanceFailoverGroups/{fog} ---- */

static int ifog_load_by_name(emu *e, const char *sub, const char *rg, const char *name, fog_row *out) {
  char prefix[SQL_RID_MAX];
  snprintf(prefix, sizeof prefix, "/subscriptions/%s/resourceGroups/%s/", sub, rg);
  sqlite3_stmt *st = emu_sql(e, "SELECT primary_id FROM sql_fogs WHERE kind='instance' AND name=?");
  if(!st)
    return 0;
  sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
  char pid[SQL_RID_MAX] = "";
  while(sqlite3_step(st) == SQLITE_ROW)
    if(!strncasecmp(emu_col_text(st, 0), prefix, strlen(prefix)))
      snprintf(pid, sizeof pid, "%s", emu_col_text(st, 0));
  sqlite3_finalize(st);
  return pid[0] && fog_load(e, "instance", pid, name, out);
}

static json_t *ifog_json(emu *e, emu_call *c, const fog_row *f) {
  sql_parent a, b;
  int ha = sql_parent_load_id(e, f->primary_id, &a), hb = sql_parent_load_id(e, f->secondary_id, &b);
  char id[SQL_RID_MAX + 200];
  snprintf(id, sizeof id, "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Sql/locations/%s/instanceFailoverGroups/%s",
           emu_var(c, "sub"), emu_var(c, "rg"), emu_var(c, "loc"), f->name);
  int here_primary = ha && !strcasecmp(a.region, emu_var(c, "loc"));
  json_t *rw = json_object_get(f->body, "readWriteEndpoint");
  json_t *ro = json_object_get(f->body, "readOnlyEndpoint");
  json_t *j = json_pack("{s:s,s:s,s:s,s:{s:O,s:O,s:s,s:s,s:[{s:s,s:s},{s:s,s:s}],s:[{s:s,s:s}]}}", "id", id, "name",
                        f->name, "type", "Microsoft.Sql/locations/instanceFailoverGroups", "properties",
                        "readWriteEndpoint", rw ? rw : json_null(), "readOnlyEndpoint", ro ? ro : json_null(),
                        "replicationRole", here_primary ? "Primary" : "Secondary", "replicationState", "CATCH_UP",
                        "partnerRegions", "location", ha ? a.region : "", "replicationRole", "Primary", "location",
                        hb ? b.region : "", "replicationRole", "Secondary", "managedInstancePairs",
                        "primaryManagedInstanceId", f->primary_id, "partnerManagedInstanceId", f->secondary_id);
  if(ha)
    sql_parent_free(&a);
  if(hb)
    sql_parent_free(&b);
  return j;
}


void sql_h_ifog_list(emu_call *c) {
  if(!sql_authorize(c, "Microsoft.Sql/locations/instanceFailoverGroups/read"))
    return;
  json_t *arr = json_array();
  sqlite3_stmt *st = emu_sql(c->e, "SELECT name FROM sql_fogs WHERE kind='instance' AND location=?");
  if(st) {
    sqlite3_bind_text(st, 1, emu_var(c, "loc"), -1, SQLITE_STATIC);
    while(sqlite3_step(st) == SQLITE_ROW) {
      fog_row f;
      if(ifog_load_by_name(c->e, emu_var(c, "sub"), emu_var(c, "rg"), emu_col_text(st, 0), &f)) {
        json_array_append_new(arr, ifog_json(c->e, c, &f));
        json_decref(f.body);
      }
    }
    sqlite3_finalize(st);
  }
  emu_reply_json(c, 200, json_pack("{s:o}", "value", arr));
}

/* Authorizes action, then loads the route's instance failover group {fog};
 * a missing one is answered 404, or 204 for a delete (already gone). */
static int ifog_begin(emu_call *c, const char *action, int is_delete, fog_row *f) {
  if(!sql_authorize(c, action))
    return 0;
  if(ifog_load_by_name(c->e, emu_var(c, "sub"), emu_var(c, "rg"), emu_var(c, "fog"), f))
    return 1;
  if(is_delete)
    emu_reply_empty(c, 204);
  else
    emu_arm_error(c, 404, "ResourceNotFound", "The instance failover group '%.128s' was not found.", emu_var(c, "fog"));
  return 0;
}

void sql_h_ifog_get(emu_call *c) {
  fog_row f;
  if(!ifog_begin(c, "Microsoft.Sql/locations/instanceFailoverGroups/read", 0, &f))
    return;
  emu_reply_json(c, 200, ifog_json(c->e, c, &f));
  json_decref(f.body);
}

void sql_h_ifog_put(emu_call *c) {
  if(!sql_authorize(c, "Microsoft.Sql/locations/instanceFailoverGroups/write"))
    return;
  json_t *req;
  if(emu_body_json(c, 0, &req))
    return;
  const json_t *props = json_object_get(req, "properties");
  const json_t *pair = json_array_get(json_object_get(props, "managedInstancePairs"), 0);
  const char *a = sq_json_str(pair, "primaryManagedInstanceId"), *b = sq_json_str(pair, "partnerManagedInstanceId");
  sql_parent pa, pb;
  int ha = a && sql_parent_load_id(c->e, a, &pa), hb = b && sql_parent_load_id(c->e, b, &pb);
  const json_t *rw = json_object_get(props, "readWriteEndpoint");
  if(!ha || !hb || !pa.is_mi || !pb.is_mi) {
    emu_arm_error(c, 400, "InvalidParameterValue",
                  "managedInstancePairs[0] must name two existing managed instances (primary and partner).");
  } else if(!json_is_object(rw) || !sq_json_str(rw, "failoverPolicy")) {
    emu_arm_error(c, 400, "InvalidParameterValue", "readWriteEndpoint.failoverPolicy is required.");
  } else if(!strcmp(pa.prot_type, "AzureKeyVault") && !sql_pkey_has_thumb(c->e, pb.id, pa.prot_thumb)) {
    emu_arm_error(c, 400, "SameKeyMaterialNotFoundOnRemoteServer",
                  "The partner instance '%s' has no key with thumbprint %s, the primary's TDE protector. Register the "
                  "same key material on the partner first.",
                  pb.name, pa.prot_thumb);
  } else if(!strcmp(pb.prot_type, "AzureKeyVault") && !sql_pkey_has_thumb(c->e, pa.id, pb.prot_thumb)) {
    emu_arm_error(c, 400, "SameKeyMaterialNotFoundOnRemoteServer",
                  "The primary instance '%s' has no key with thumbprint %s, the partner's TDE protector.", pa.name,
                  pb.prot_thumb);
  } else {
    json_t *body = json_pack("{s:O,s:o}", "readWriteEndpoint", rw, "readOnlyEndpoint",
                             json_object_get(props, "readOnlyEndpoint")
                                 ? json_deep_copy(json_object_get(props, "readOnlyEndpoint"))
                                 : json_pack("{s:s}", "failoverPolicy", "Disabled"));
    sql_lro(c, "UpsertInstanceFailoverGroup", "instanceFailoverGroup", emu_var(c, "loc"),
            json_pack("{s:s,s:s,s:s,s:o,s:s}", "name", emu_var(c, "fog"), "primary", pa.id, "partner", pb.id, "body",
                      body, "location", emu_var(c, "loc")));
  }
  if(ha)
    sql_parent_free(&pa);
  if(hb)
    sql_parent_free(&pb);
  json_decref(req);
}

static int lro_ifog_put(emu *e, const emu_lro *op, const json_t *in, char code[128], char msg[512], json_t **result) {
  (void)code, (void)msg, (void)result;
  fog_store(e, "instance", sq_json_str(in, "name"), sq_json_str(in, "primary"), sq_json_str(in, "partner"),
            sq_json_str(in, "location"), json_object_get(in, "body"), op->done_ms);
  return 0;
}

void sql_h_ifog_delete(emu_call *c) {
  fog_row f;
  if(!ifog_begin(c, "Microsoft.Sql/locations/instanceFailoverGroups/delete", 1, &f))
    return;
  sql_lro(c, "DropInstanceFailoverGroup", "instanceFailoverGroup", emu_var(c, "loc"), fog_ref("instance", &f));
  json_decref(f.body);
}

void sql_h_ifog_failover(emu_call *c) {
  fog_row f;
  if(!ifog_begin(c, "Microsoft.Sql/locations/instanceFailoverGroups/failover/action", 0, &f))
    return;
  sql_lro(c, "FailoverInstanceFailoverGroup", "instanceFailoverGroup", emu_var(c, "loc"), fog_ref("instance", &f));
  json_decref(f.body);
}

/* ---- restorable dropped and recoverable databases ---- */

int64_t sql_dropped_uid(emu *e, const char *parent_id, const char *name_ticks) {
  const char *comma = strrchr(name_ticks, ',');
  if(!comma)
    return 0;
  char name[EMU_ID_MAX];
  snprintf(name, sizeof name, "%.*s", (int)(comma - name_ticks), name_ticks);
  long long ticks = strtoll(comma + 1, NULL, 10);
  sqlite3_stmt *st = emu_sql(e, "SELECT uid, deleted_ms FROM sql_dbs WHERE parent_id=? AND name=? AND deleted_ms>0");
  int64_t uid = 0;
  if(!st)
    return 0;
  sqlite3_bind_text(st, 1, parent_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
  while(!uid && sqlite3_step(st) == SQLITE_ROW)
    if(sql_ticks(sqlite3_column_int64(st, 1)) == ticks)
      uid = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return uid;
}

/* A key set for $expand on backups: keys in use at time at (DEK wrap + active log). */
static json_t *backup_keys(emu *e, int64_t uid, int64_t at) {
  sql_db tmp;
  memset(&tmp, 0, sizeof tmp);
  if(!sql_db_load_uid(e, uid, &tmp))
    return json_object();
  json_t *j = sql_db_json(e, &tmp, 2, at, 1);
  json_t *keys = json_incref(sq_json_path(j, "properties.keys"));
  json_decref(j);
  sql_db_free(&tmp);
  return keys ? keys : json_object();
}

static json_t *dropped_json(emu *e, const sql_parent *p, const sql_db *d, int expand, int64_t at) {
  char name[EMU_ID_MAX + 32], id[SQL_RID_MAX + 300], created[40], deleted[40];
  snprintf(name, sizeof name, "%s,%lld", d->name, (long long)sql_ticks(d->deleted_ms));
  snprintf(id, sizeof id, "%s/restorableDroppedDatabases/%s", p->id, name);
  sql_fmt_time_ms(d->created_ms, created, sizeof created);
  sql_fmt_time_ms(d->deleted_ms, deleted, sizeof deleted);
  json_t *props = json_pack("{s:s,s:s,s:s,s:s,s:I,s:s}", "databaseName", d->name, "creationDate", created,
                            "deletionDate", deleted, "earliestRestoreDate", created, "maxSizeBytes",
                            (json_int_t)(d->max_size ? d->max_size : 34359738368LL), "backupStorageRedundancy", "Geo");
  if(expand)
    json_object_set_new(props, "keys", backup_keys(e, d->uid, expand == 1 ? d->deleted_ms - 1 : at));
  json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:o}", "id", id, "name", name, "type",
                        "Microsoft.Sql/servers/restorableDroppedDatabases", "location", p->region, "properties", props);
  if(d->sku)
    json_object_set_new(j, "sku", json_deep_copy(d->sku));
  return j;
}

/* $expand for backup resources: 0 none, 1 keys, 2 pointInTime */
static int backup_expand(emu_call *c, int64_t *at) {
  const char *x = emu_query(c, "$expand");
  *at = -1;
  if(!x || !*x)
    return 0;
  const char *p = strstr(x, "pointInTime(");
  if(!p)
    return 1;
  p += 12;
  while(*p == '\'' || *p == '"')
    p++;
  char v[64];
  size_t n = strcspn(p, "'\")");
  if(n >= sizeof v)
    return 1;
  memcpy(v, p, n);
  v[n] = '\0';
  if(!strcasecmp(v, "current"))
    return 1;
  *at = sql_parse_time_ms(v);
  return *at < 0 ? 1 : 2;
}

void sql_h_dropped_list(emu_call *c) {
  sql_parent p;
  if(!sql_begin(c, 0, "Microsoft.Sql/servers/restorableDroppedDatabases/read", &p))
    return;
  sql_settings s;
  sql_settings_load(c->e, &s);
  json_t *arr = json_array();
  sqlite3_stmt *st = emu_sql(c->e, "SELECT uid FROM sql_dbs WHERE parent_id=? AND deleted_ms>? ORDER BY deleted_ms");
  if(st) {
    sqlite3_bind_text(st, 1, p.id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, c->now_ms - s.dropped_retention_ms);
  }
  sql_db d;
  while(sql_db_next(c->e, st, &d)) {
    json_array_append_new(arr, dropped_json(c->e, &p, &d, 0, -1));
    sql_db_free(&d);
  }
  sqlite3_finalize(st);
  emu_reply_json(c, 200, json_pack("{s:o}", "value", arr));
  sql_parent_free(&p);
}

void sql_h_dropped_get(emu_call *c) {
  sql_parent p;
  if(!sql_begin(c, 0, "Microsoft.Sql/servers/restorableDroppedDatabases/read", &p))
    return;
  int64_t uid = sql_dropped_uid(c->e, p.id, emu_var(c, "dropped"));
  sql_db d;
  if(!uid || !sql_db_load_uid(c->e, uid, &d)) {
    emu_arm_error(c, 404, "ResourceNotFound", "The restorable dropped database '%.200s' was not found.",
                  emu_var(c, "dropped"));
  } else {
    int64_t at;
    int ex = backup_expand(c, &at);
    emu_reply_json(c, 200, dropped_json(c->e, &p, &d, ex, at));
    sql_db_free(&d);
  }
  sql_parent_free(&p);
}

static json_t *recoverable_json(emu *e, const sql_parent *p, const sql_db *d, int expand) {
  char id[SQL_RID_MAX + 300], last[40];
  snprintf(id, sizeof id, "%s/recoverableDatabases/%s", p->id, d->name);
  sql_fmt_time_ms(emu_now_ms(e), last, sizeof last);
  const char *sku = sq_json_str(d->sku, "name");
  json_t *props = json_pack("{s:s,s:s,s:s}", "edition", sq_json_str(d->sku, "tier") ? sq_json_str(d->sku, "tier") : "GeneralPurpose",
                            "serviceLevelObjective", sku ? sku : "GP_Gen5", "lastAvailableBackupDate", last);
  if(expand)
    json_object_set_new(props, "keys", backup_keys(e, d->uid, -1));
  return json_pack("{s:s,s:s,s:s,s:o}", "id", id, "name", d->name, "type", "Microsoft.Sql/servers/recoverableDatabases",
                   "properties", props);
}

void sql_h_recoverable_list(emu_call *c) {
  sql_parent p;
  if(!sql_begin(c, 0, "Microsoft.Sql/servers/recoverableDatabases/read", &p))
    return;
  json_t *arr = json_array();
  sqlite3_stmt *st = sql_db_cursor(c->e, p.id);
  sql_db d;
  while(sql_db_next(c->e, st, &d)) {
    json_array_append_new(arr, recoverable_json(c->e, &p, &d, 0));
    sql_db_free(&d);
  }
  sqlite3_finalize(st);
  emu_reply_json(c, 200, json_pack("{s:o}", "value", arr));
  sql_parent_free(&p);
}

static void recoverable_not_found(emu_call *c, const char *name) {
  emu_arm_error(c, 404, "ResourceNotFound", "The recoverable database '%.128s' was not found.", name);
}

void sql_h_recoverable_get(emu_call *c) {
  sql_parent p;
  sql_db d;
  if(!sql_begin_db(c, "Microsoft.Sql/servers/recoverableDatabases/read", recoverable_not_found, &p, &d))
    return;
  int64_t at;
  emu_reply_json(c, 200, recoverable_json(c->e, &p, &d, backup_expand(c, &at)));
  sql_db_free(&d);
  sql_parent_free(&p);
}

/* ---- long-term retention backups ---- */

int sql_ltr_lookup(emu *e, const char *backup_id, int64_t *uid, int64_t *at) {
  const char *name = backup_id ? strrchr(backup_id, '/') : NULL;
  name = name ? name + 1 : backup_id;
  if(!name || !*name)
    return 0;
  sqlite3_stmt *st = emu_sql(e, "SELECT db_uid, backup_ms FROM sql_ltr WHERE name=? AND expiry_ms>?");
  if(!st)
    return 0;
  sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, emu_now_ms(e));
  int ok = sqlite3_step(st) == SQLITE_ROW;
  if(ok) {
    *uid = sqlite3_column_int64(st, 0);
    *at = sqlite3_column_int64(st, 1);
  }
  sqlite3_finalize(st);
  return ok;
}

static json_t *ltr_json(sqlite3_stmt *st, int rg_scope) {
  /* name, location, server, database, sub, rg, backup_ms, expiry_ms, server_created_ms, deleted_ms */
  char id[2048], bt[40], et[40], sc[40];
  const char *name = emu_col_text(st, 0), *loc = emu_col_text(st, 1), *srv = emu_col_text(st, 2),
             *db = emu_col_text(st, 3), *sub = emu_col_text(st, 4), *rg = emu_col_text(st, 5);
  if(rg_scope)
    snprintf(id, sizeof id,
             "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Sql/locations/%s/longTermRetentionServers/%s/"
             "longTermRetentionDatabases/%s/longTermRetentionBackups/%s",
             sub, rg, loc, srv, db, name);
  else
    snprintf(id, sizeof id,
             "/subscriptions/%s/providers/Microsoft.Sql/locations/%s/longTermRetentionServers/%s/"
             "longTermRetentionDatabases/%s/longTermRetentionBackups/%s",
             sub, loc, srv, db, name);
  sql_fmt_time_ms(sqlite3_column_int64(st, 6), bt, sizeof bt);
  sql_fmt_time_ms(sqlite3_column_int64(st, 7), et, sizeof et);
  sql_fmt_time_ms(sqlite3_column_int64(st, 8), sc, sizeof sc);
  json_t *props = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "serverName", srv, "serverCreateTime", sc, "databaseName",
                            db, "backupTime", bt, "backupExpirationTime", et, "backupStorageRedundancy", "Geo",
                            "requestedBackupStorageRedundancy", "Geo");
  int64_t del = sqlite3_column_int64(st, 9);
  if(del) {
    char dt[40];
    sql_fmt_time_ms(del, dt, sizeof dt);
    json_object_set_new(props, "databaseDeletionTime", json_string(dt));
  }
  return json_pack("{s:s,s:s,s:s,s:o}", "id", id, "name", name, "type",
                   "Microsoft.Sql/locations/longTermRetentionServers/longTermRetentionDatabases/longTermRetentionBackups",
                   "properties", props);
}

#define LTR_SELECT                                                                                                  \
  "SELECT l.name, l.location, l.server, l.database, l.sub, l.rg, l.backup_ms, l.expiry_ms, l.server_created_ms,"   \
  " d.deleted_ms FROM sql_ltr l JOIN sql_dbs d ON d.uid=l.db_uid WHERE l.sub=?1 AND l.location=?2 AND l.expiry_ms>?3" \
  " AND (?4 IS NULL OR l.rg=?4) AND (?5 IS NULL OR l.server=?5) AND (?6 IS NULL OR l.database=?6)"                  \
  " AND (?7 IS NULL OR l.name=?7)"

static sqlite3_stmt *ltr_query(emu_call *c, const char *name) {
  sqlite3_stmt *st = emu_sql(c->e, LTR_SELECT " ORDER BY l.backup_ms");
  if(!st)
    return NULL;
  const char *vals[] = {emu_var(c, "sub"), emu_var(c, "loc"), NULL, emu_var(c, "rg"), emu_var(c, "ltrserver"),
                        emu_var(c, "ltrdb"), name};
  for(int i = 0; i < 7; i++) {
    if(i == 2)
      sqlite3_bind_int64(st, 3, c->now_ms);
    else if(vals[i])
      sqlite3_bind_text(st, i + 1, vals[i], -1, SQLITE_STATIC);
    else
      sqlite3_bind_null(st, i + 1);
  }
  return st;
}


void sql_h_ltr_list(emu_call *c) {
  if(!sql_authorize(c, "Microsoft.Sql/locations/longTermRetentionBackups/read"))
    return;
  json_t *arr = json_array();
  sqlite3_stmt *st = ltr_query(c, NULL);
  if(st) {
    while(sqlite3_step(st) == SQLITE_ROW)
      json_array_append_new(arr, ltr_json(st, emu_var(c, "rg") != NULL));
    sqlite3_finalize(st);
  }
  emu_reply_json(c, 200, json_pack("{s:o}", "value", arr));
}

void sql_h_ltr_get(emu_call *c) {
  if(!sql_authorize(c, "Microsoft.Sql/locations/longTermRetentionServers/longTermRetentionDatabases/longTermRetentionBackups/read"))
    return;
  sqlite3_stmt *st = ltr_query(c, emu_var(c, "backup"));
  if(st && sqlite3_step(st) == SQLITE_ROW)
    emu_reply_json(c, 200, ltr_json(st, emu_var(c, "rg") != NULL));
  else
    emu_arm_error(c, 404, "LongTermRetentionBackupNotFound", "The long-term retention backup '%.128s' was not found.",
                  emu_var(c, "backup"));
  sqlite3_finalize(st);
}

void sql_h_ltr_delete(emu_call *c) {
  if(!sql_authorize(c, "Microsoft.Sql/locations/longTermRetentionServers/longTermRetentionDatabases/longTermRetentionBackups/delete"))
    return;
  sqlite3_stmt *st = ltr_query(c, emu_var(c, "backup"));
  int found = st && sqlite3_step(st) == SQLITE_ROW;
  sqlite3_finalize(st);
  if(!found)
    emu_reply_empty(c, 204);
  else
    sql_lro(c, "DeleteLongTermRetentionBackup", "longTermRetentionBackup", emu_var(c, "loc"),
            json_pack("{s:s}", "name", emu_var(c, "backup")));
}

static int lro_ltr_delete(emu *e, const emu_lro *op, const json_t *in, char code[128], char msg[512], json_t **result) {
  (void)op, (void)code, (void)msg, (void)result;
  sqlite3_stmt *st = emu_sql(e, "DELETE FROM sql_ltr WHERE name=?");
  if(st) {
    sqlite3_bind_text(st, 1, sq_json_str(in, "name"), -1, SQLITE_STATIC);
    sqlite3_step(st);
    sqlite3_finalize(st);
  }
  return 0;
}

const sql_lro_handler sql_geo_lro_handlers[] = {
    {"DeleteReplicationLink", lro_link_delete},
    {"FailoverReplicationLink", lro_link_failover},
    {"UpsertFailoverGroup", lro_fog_put},
    {"DropFailoverGroup", lro_fog_delete},
    {"FailoverFailoverGroup", lro_fog_failover},
    {"UpsertInstanceFailoverGroup", lro_ifog_put},
    {"DropInstanceFailoverGroup", lro_fog_delete},
    {"FailoverInstanceFailoverGroup", lro_fog_failover},
    {"DeleteLongTermRetentionBackup", lro_ltr_delete},
    {NULL, NULL},
};
