/* sql_server.c — logical servers and managed instances (azure-api.md §2.1-
 * §2.4): GET / list / PATCH (identity, primaryUserAssignedIdentityId, keyId,
 * federatedClientId), keys ({vault}_{key}_{version}, thumbprint from the key's
 * public material as the server's identity reads it), the encryption
 * protector (ServiceManaged | AzureKeyVault, auto-rotation) and its
 * revalidation. Servers and instances share this code; the route's {mi} or
 * {server} capture tells which. */
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

static int is_mi(emu_call *c) { return emu_var(c, "mi") != NULL; }

static const char *type_prefix(int mi) { return mi ? "Microsoft.Sql/managedInstances" : "Microsoft.Sql/servers"; }

static void action(char *out, size_t n, int mi, const char *suffix) {
  snprintf(out, n, "%s%s", type_prefix(mi), suffix);
}

static sqlkv_ctx ctx_for(const sql_parent *p, int is_umi) {
  return p->is_mi ? SQLKV_CTX_MI : is_umi ? SQLKV_CTX_SERVER_UMI : SQLKV_CTX_SERVER;
}

static int check_ep_name(emu_call *c) {
  const char *ep = emu_var(c, "ep");
  if(ep && strcasecmp(ep, "current")) {
    emu_arm_error(c, 400, "InvalidEncryptionProtectorName", "The encryption protector name must be 'current'.");
    return -1;
  }
  return 0;
}

/* Common start of the handlers: the protector name where the route has {ep},
 * then the route's server or instance, authorized for its type + suffix
 * ("/keys/read"). 1 with p loaded, else 0 with the error written. */
static int srv_begin(emu_call *c, const char *suffix, sql_parent *p) {
  char a[128];
  action(a, sizeof a, is_mi(c), suffix);
  return !check_ep_name(c) && sql_begin(c, is_mi(c), a, p);
}

/* srv_begin, then the JSON body; on failure nothing is held. */
static int srv_begin_body(emu_call *c, const char *suffix, sql_parent *p, json_t **body) {
  if(!srv_begin(c, suffix, p))
    return 0;
  if(emu_body_json(c, 0, body)) {
    sql_parent_free(p);
    return 0;
  }
  return 1;
}

/* A long-running operation of servers and instances: its name and status URL
 * family, [0] for a server, [1] for a managed instance. */
typedef struct srv_op {
  const char *name[2];
  const char *family[2];
} srv_op;

static const srv_op OP_UPSERT = {{"UpsertLogicalServer", "UpsertManagedServer"}, {"server", "managedInstance"}};
static const srv_op OP_KEY_PUT = {{"UpsertServerKey", "UpsertManagedServerKey"}, {"serverKey", "managedInstanceKey"}};
static const srv_op OP_KEY_DROP = {{"DropServerKey", "DropManagedServerKey"}, {"serverKey", "managedInstanceKey"}};
static const srv_op OP_PROT_PUT = {{"UpsertEncryptionProtector", "UpsertManagedServerEncryptionProtector"},
                                   {"encryptionProtector", "managedInstanceEncryptionProtector"}};
static const srv_op OP_PROT_REVALIDATE = {
    {"RevalidateEncryptionProtector", "RevalidateManagedServerEncryptionProtector"},
    {"encryptionProtectorRevalidate", "managedInstanceEncryptionProtectorRevalidate"}};

static void srv_lro(emu_call *c, const sql_parent *p, const srv_op *op, json_t *input) {
  sql_lro(c, op->name[p->is_mi], op->family[p->is_mi], p->region, input);
}

/* The parent an LRO acts on (input "parent"); fails the LRO when it is gone. */
static int lro_parent(emu *e, const json_t *in, sql_parent *p, char code[128], char msg[512]) {
  if(sql_parent_load_id(e, sq_json_str(in, "parent"), p))
    return 1;
  snprintf(code, 128, "ResourceNotFound");
  snprintf(msg, 512, "The server no longer exists.");
  return 0;
}

/* Resolves uri as the parent's identity with every permission SQL needs and
 * the vault's recovery settings (the planners' check of a new key); noid is
 * the message when the parent has no identity. */
static int parent_key_access(emu *e, const sql_parent *p, const char *uri, const char *noid, sqlkv_key *k,
                             sql_outcome *o) {
  char oid[EMU_ID_MAX];
  int is_umi;
  if(sql_parent_oid(e, p, oid, &is_umi))
    return sql_outf(o, 400, "AzureKeyVaultNoServerIdentity", "%s", noid);
  sqlkv_fail f;
  if(sqlkv_access(e, uri, oid, SQLKV_ALL, 1, k, &f))
    return sql_out_kv(o, &f, ctx_for(p, is_umi), uri);
  return 0;
}

/* ---- GET / list / PATCH ---- */

void sql_h_server_get(emu_call *c) {
  sql_parent p;
  if(!srv_begin(c, "/read", &p))
    return;
  emu_reply_json(c, 200, sql_parent_json(c->e, &p));
  sql_parent_free(&p);
}

void sql_h_server_list(emu_call *c) {
  const char *sub = emu_var(c, "sub"), *rg = emu_var(c, "rg");
  int mi = strstr(c->req->path, "/managedInstances") != NULL;
  char a[128];
  action(a, sizeof a, mi, "/read");
  if(!sql_authorize(c, a))
    return;
  sql_parent_adopt_all(c->e);
  json_t *arr = json_array();
  sqlite3_stmt *st = emu_sql(c->e, "SELECT name FROM sql_parents WHERE kind=? AND sub=? AND rg=? ORDER BY name");
  if(st) {
    sqlite3_bind_text(st, 1, mi ? "mi" : "server", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, sub, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, rg, -1, SQLITE_STATIC);
    while(sqlite3_step(st) == SQLITE_ROW) {
      sql_parent p;
      if(sql_parent_load(c->e, mi, sub, rg, emu_col_text(st, 0), &p)) {
        json_array_append_new(arr, sql_parent_json(c->e, &p));
        sql_parent_free(&p);
      }
    }
    sqlite3_finalize(st);
  }
  emu_reply_json(c, 200, json_pack("{s:o}", "value", arr));
}

static int remote_material_check(emu *e, const sql_parent *p, const char *thumb, sql_outcome *o);

/* Applies a PATCH body to p in memory (validating); the caller saves. */
static int server_patch_plan(emu *e, sql_parent *p, const json_t *body, sql_outcome *o, sqlkv_key *newkey) {
  memset(o, 0, sizeof *o);
  const json_t *ident = json_object_get(body, "identity");
  const json_t *props = json_object_get(body, "properties");
  if(json_is_object(ident)) {
    const char *type = sq_json_str(ident, "type");
    json_t *umis = json_object_get(p->identity, "userAssignedIdentities");
    umis = umis ? json_deep_copy(umis) : json_object();
    const json_t *u = json_object_get(ident, "userAssignedIdentities");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)u, k, v) {
      if(json_is_null(v)) {
        json_object_del(umis, k);
        continue;
      }
      emu_identity id;
      if(!emu_identity_by_resource_id(e, k, &id)) {
        json_decref(umis);
        return sql_outf(o, 400, "InvalidIdentityId", "The user-assigned identity '%.300s' does not exist.", k);
      }
      json_object_set_new(umis, k, json_object());
    }
    if(type && !strcasecmp(type, "None"))
      json_object_clear(umis);
    json_t *ni = json_object();
    const char *t = type ? type : sq_json_str(p->identity, "type");
    json_object_set_new(ni, "type", json_string(t ? t : "None"));
    if(json_object_size(umis))
      json_object_set(ni, "userAssignedIdentities", umis);
    if(t && strstr(t, "SystemAssigned")) {
      const char *pid = sq_json_str(p->identity, "principalId");
      char g[37];
      if(!pid) {
        emu_guid(g);
        pid = g;
      }
      json_object_set_new(ni, "principalId", json_string(pid));
    }
    json_decref(umis);
    json_decref(p->identity);
    p->identity = ni;
  }
  const char *s;
  if((s = sq_json_str(props, "primaryUserAssignedIdentityId")))
    snprintf(p->primary_umi, sizeof p->primary_umi, "%s", s);
  if(p->primary_umi[0] && !json_object_get(json_object_get(p->identity, "userAssignedIdentities"), p->primary_umi)) {
    /* ARM ids compare case-insensitively */
    int found = 0;
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(p->identity, "userAssignedIdentities"), k, v) if(!strcasecmp(k, p->primary_umi))
        found = 1;
    if(!found)
      return sql_outf(o, 400, "InvalidIdentityId",
                "primaryUserAssignedIdentityId '%.300s' must be one of the server's user-assigned identities.",
                p->primary_umi);
  }
  const json_t *fv = json_object_get(props, "federatedClientId");
  if(fv && sql_fed_client_id(fv, p->fed_client_id, o))
    return o->status;
  if(p->fed_client_id[0] && !p->primary_umi[0])
    return sql_outf(o, 400, "BlockSystemAssignedIdentityForCrossTenantCMK",
              "Cross-tenant customer-managed keys need a user-assigned identity as the server's primary identity.");
  const char *key_id = sq_json_str(props, "keyId");
  if(key_id && *key_id) {
    char noid[512];
    snprintf(noid, sizeof noid, "The server has no identity that could reach '%.300s'; assign one first.", key_id);
    if(parent_key_access(e, p, key_id, noid, newkey, o))
      return o->status;
    if(remote_material_check(e, p, newkey->thumb, o)) {
      sqlkv_key_free(newkey);
      return o->status;
    }
    snprintf(p->key_id, sizeof p->key_id, "%s", key_id);
  }
  return 0;
}

void sql_h_server_patch(emu_call *c) {
  sql_parent p;
  json_t *body;
  if(!srv_begin_body(c, "/write", &p, &body))
    return;
  sql_outcome o;
  sqlkv_key k;
  memset(&k, 0, sizeof k);
  if(server_patch_plan(c->e, &p, body, &o, &k))
    sql_reply_outcome(c, &o);
  else
    srv_lro(c, &p, &OP_UPSERT, json_pack("{s:s,s:O}", "parent", p.id, "body", body));
  sqlkv_key_free(&k);
  json_decref(body);
  sql_parent_free(&p);
}

static int lro_server_patch(emu *e, const emu_lro *op, const json_t *in, char code[128], char msg[512],
                            json_t **result) {
  sql_parent p;
  if(!lro_parent(e, in, &p, code, msg))
    return 1;
  sql_outcome o;
  sqlkv_key k;
  memset(&k, 0, sizeof k);
  const json_t *body = json_object_get(in, "body");
  int rc = server_patch_plan(e, &p, body, &o, &k);
  if(rc) {
    sql_out_lro(&o, code, msg);
  } else {
    const char *key_id = sq_json_str(body, "properties.keyId");
    if(key_id && *key_id && k.pkey)
      sql_parent_use_key(e, &p, &k, key_id, op->done_ms);
    sql_parent_save(e, &p);
    if(key_id && *key_id)
      sql_parent_rewrap_dbs(e, &p, op->done_ms);
    *result = sql_parent_json(e, &p);
  }
  sqlkv_key_free(&k);
  sql_parent_free(&p);
  return rc ? 1 : 0;
}

/* ---- keys ---- */

static json_t *key_json(emu *e, const sql_parent *p, const sql_pkey *k) {
  char id[SQL_RID_MAX + 300], created[40];
  snprintf(id, sizeof id, "%s/keys/%s", p->id, k->name);
  sql_fmt_time_ms(k->created_ms, created, sizeof created);
  sqlkv_ref r;
  sqlkv_parse_uri(k->uri, &r);
  char ver[40] = "";
  if(r.version[0])
    snprintf(ver, sizeof ver, "%s", r.version);
  emu_vault v;
  const char *sub = emu_vault_get(e, r.vault, &v) ? v.region : p->region;
  int is_prot = !strcasecmp(p->prot_key_name, k->name);
  json_t *props = json_pack("{s:s,s:s,s:s,s:s,s:s,s:b}", "serverKeyType", "AzureKeyVault", "uri", k->uri, "thumbprint",
                            k->thumb, "creationDate", created, "subregion", sub, "autoRotationEnabled",
                            is_prot && p->prot_auto);
  if(ver[0])
    json_object_set_new(props, "keyVersion", json_string(ver));
  return json_pack("{s:s,s:s,s:s,s:s,s:s,s:o}", "id", id, "name", k->name, "type",
                   p->is_mi ? "Microsoft.Sql/managedInstances/keys" : "Microsoft.Sql/servers/keys", "kind",
                   "azurekeyvault", "location", p->region, "properties", props);
}

static json_t *smk_key_json(const sql_parent *p) {
  char id[SQL_RID_MAX + 64];
  snprintf(id, sizeof id, "%s/keys/ServiceManaged", p->id);
  return json_pack("{s:s,s:s,s:s,s:s,s:s,s:{s:s}}", "id", id, "name", "ServiceManaged", "type",
                   p->is_mi ? "Microsoft.Sql/managedInstances/keys" : "Microsoft.Sql/servers/keys", "kind",
                   "servicemanaged", "location", p->region, "properties", "serverKeyType", "ServiceManaged");
}

void sql_h_key_list(emu_call *c) {
  sql_parent p;
  if(!srv_begin(c, "/keys/read", &p))
    return;
  json_t *arr = json_array();
  json_array_append_new(arr, smk_key_json(&p));
  sqlite3_stmt *st = emu_sql(c->e, "SELECT name FROM sql_parent_keys WHERE parent_id=? ORDER BY created_ms, name");
  if(st) {
    sqlite3_bind_text(st, 1, p.id, -1, SQLITE_STATIC);
    while(sqlite3_step(st) == SQLITE_ROW) {
      sql_pkey k;
      if(sql_pkey_get(c->e, p.id, emu_col_text(st, 0), &k))
        json_array_append_new(arr, key_json(c->e, &p, &k));
    }
    sqlite3_finalize(st);
  }
  emu_reply_json(c, 200, json_pack("{s:o}", "value", arr));
  sql_parent_free(&p);
}

void sql_h_key_get(emu_call *c) {
  sql_parent p;
  if(!srv_begin(c, "/keys/read", &p))
    return;
  const char *name = emu_var(c, "key");
  sql_pkey k;
  if(!strcasecmp(name, "ServiceManaged"))
    emu_reply_json(c, 200, smk_key_json(&p));
  else if(!sql_pkey_get(c->e, p.id, name, &k))
    emu_arm_error(c, 404, "ServerKeyNotFound", "The server key '%.300s' does not exist on '%s'.", name, p.name);
  else
    emu_reply_json(c, 200, key_json(c->e, &p, &k));
  sql_parent_free(&p);
}

/* Validates a key registration; fills the resolved key. */
static int key_plan(emu *e, const sql_parent *p, const char *name, const json_t *body, sqlkv_key *k, sql_outcome *o) {
  memset(o, 0, sizeof *o);
  memset(k, 0, sizeof *k);
  const char *type = sq_json_str(body, "properties.serverKeyType");
  const char *uri = sq_json_str(body, "properties.uri");
  if(type && !strcasecmp(type, "ServiceManaged"))
    return sql_outf(o, 400, "InvalidUpsertKeyType", "Service-managed keys cannot be created; they always exist.");
  if(!type || strcasecmp(type, "AzureKeyVault"))
    return sql_outf(o, 400, "InvalidKeyType", "serverKeyType must be 'AzureKeyVault'.");
  if(!uri || !*uri)
    return sql_outf(o, 400, "InvalidKeyUpsertRequest", "properties.uri (the Key Vault key identifier) is required.");
  sqlkv_ref r;
  if(!sqlkv_parse_uri(uri, &r))
    return sql_outf(o, 400, "AzureKeyVaultInvalidUri", "'%.300s' is not a Key Vault key URI.", uri);
  char expect[256];
  sql_pkey_name(&r, expect, sizeof expect);
  if(strcasecmp(expect, name))
    return sql_outf(o, 400, "InvalidKeyName", "The key name '%.200s' does not match its URI; it must be '%s'.", name, expect);
  if(p->is_mi && !r.version[0])
    return sql_outf(o, 400, "AzureKeyVaultInvalidUri", "Managed instances need a versioned key URI.");
  char noid[512];
  snprintf(noid, sizeof noid, "The %s '%s' has no identity; assign a managed identity before adding Key Vault keys.",
           p->is_mi ? "instance" : "server", p->name);
  if(parent_key_access(e, p, uri, noid, k, o))
    return o->status;
  sqlite3_stmt *st = emu_sql(e, "SELECT name FROM sql_parent_keys WHERE parent_id=? AND uri=? COLLATE NOCASE AND name!=?");
  int dup = 0;
  if(st) {
    sqlite3_bind_text(st, 1, p->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, uri, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
    dup = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
  }
  if(dup) {
    sqlkv_key_free(k);
    return sql_outf(o, 409, "ServerKeyUriAlreadyExists", "The key URI '%.300s' is already registered on '%s'.", uri, p->name);
  }
  return 0;
}

void sql_h_key_put(emu_call *c) {
  sql_parent p;
  json_t *body;
  if(!srv_begin_body(c, "/keys/write", &p, &body))
    return;
  const char *name = emu_var(c, "key");
  sqlkv_key k;
  sql_outcome o;
  if(key_plan(c->e, &p, name, body, &k, &o))
    sql_reply_outcome(c, &o);
  else
    srv_lro(c, &p, &OP_KEY_PUT, json_pack("{s:s,s:s,s:O}", "parent", p.id, "name", name, "body", body));
  sqlkv_key_free(&k);
  json_decref(body);
  sql_parent_free(&p);
}

static int lro_key_put(emu *e, const emu_lro *op, const json_t *in, char code[128], char msg[512], json_t **result) {
  sql_parent p;
  if(!lro_parent(e, in, &p, code, msg))
    return 1;
  const char *name = sq_json_str(in, "name");
  sqlkv_key k;
  sql_outcome o;
  int rc = key_plan(e, &p, name ? name : "", json_object_get(in, "body"), &k, &o);
  if(rc) {
    sql_out_lro(&o, code, msg);
  } else {
    sql_pkey_put(e, p.id, name, sq_json_str(in, "body.properties.uri"), k.thumb, op->done_ms, 1);
    sql_pkey pk;
    if(sql_pkey_get(e, p.id, name, &pk))
      *result = key_json(e, &p, &pk);
    sqlkv_key_free(&k);
  }
  sql_parent_free(&p);
  return rc ? 1 : 0;
}

void sql_h_key_delete(emu_call *c) {
  sql_parent p;
  if(!srv_begin(c, "/keys/delete", &p))
    return;
  const char *name = emu_var(c, "key");
  sql_pkey k;
  if(!sql_pkey_get(c->e, p.id, name, &k)) {
    emu_reply_empty(c, 204);
  } else if(!strcasecmp(p.prot_key_name, name) || (!strcmp(p.prot_type, "AzureKeyVault") && !strcmp(p.prot_thumb, k.thumb) &&
                                                    !sqlite3_stricmp(p.active_uri, k.uri))) {
    emu_arm_error(c, 409, "AzureKeyVaultKeyInUse",
                  "The key '%.300s' is the current encryption protector of '%s' and cannot be deleted.", name, p.name);
  } else {
    srv_lro(c, &p, &OP_KEY_DROP, json_pack("{s:s,s:s}", "parent", p.id, "name", name));
  }
  sql_parent_free(&p);
}

static int lro_key_delete(emu *e, const emu_lro *op, const json_t *in, char code[128], char msg[512], json_t **result) {
  (void)op;
  (void)code;
  (void)msg;
  (void)result;
  sqlite3_stmt *st = emu_sql(e, "DELETE FROM sql_parent_keys WHERE parent_id=? AND name=?");
  if(st) {
    sqlite3_bind_text(st, 1, sq_json_str(in, "parent"), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, sq_json_str(in, "name"), -1, SQLITE_STATIC);
    sqlite3_step(st);
    sqlite3_finalize(st);
  }
  return 0;
}

/* ---- encryption protector ---- */

static json_t *prot_json(emu *e, const sql_parent *p) {
  char id[SQL_RID_MAX + 64];
  snprintf(id, sizeof id, "%s/encryptionProtector/current", p->id);
  int akv = !strcmp(p->prot_type, "AzureKeyVault");
  json_t *props = json_pack("{s:s,s:s,s:b}", "serverKeyName", akv ? p->prot_key_name : "ServiceManaged",
                            "serverKeyType", akv ? "AzureKeyVault" : "ServiceManaged", "autoRotationEnabled",
                            akv && p->prot_auto);
  if(akv) {
    sql_pkey k;
    const char *uri = sql_pkey_get(e, p->id, p->prot_key_name, &k) ? k.uri : p->prot_uri;
    json_object_set_new(props, "uri", json_string(uri));
    json_object_set_new(props, "thumbprint", json_string(p->prot_thumb));
    sqlkv_ref r;
    if(sqlkv_parse_uri(p->prot_uri, &r)) {
      emu_vault v;
      json_object_set_new(props, "subregion", json_string(emu_vault_get(e, r.vault, &v) ? v.region : p->region));
      if(r.version[0])
        json_object_set_new(props, "keyVersion", json_string(r.version));
    }
  }
  return json_pack("{s:s,s:s,s:s,s:s,s:s,s:o}", "id", id, "name", "current", "type",
                   p->is_mi ? "Microsoft.Sql/managedInstances/encryptionProtector" : "Microsoft.Sql/servers/encryptionProtector",
                   "kind", akv ? "azurekeyvault" : "servicemanaged", "location", p->region, "properties", props);
}

void sql_h_prot_list(emu_call *c) {
  sql_parent p;
  if(!srv_begin(c, "/encryptionProtector/read", &p))
    return;
  emu_reply_json(c, 200, json_pack("{s:[o]}", "value", prot_json(c->e, &p)));
  sql_parent_free(&p);
}

void sql_h_prot_get(emu_call *c) {
  sql_parent p;
  if(!srv_begin(c, "/encryptionProtector/read", &p))
    return;
  emu_reply_json(c, 200, prot_json(c->e, &p));
  sql_parent_free(&p);
}

/* Every place the key material must already be before it protects p (azure-api.md §2.4, §2.5). */
static int remote_material_check(emu *e, const sql_parent *p, const char *thumb, sql_outcome *o) {
  /* geo: partner servers of this server's replicated server-level databases */
  sqlite3_stmt *st = emu_sql(e, "SELECT DISTINCT s.parent_id FROM sql_links l JOIN sql_dbs pdb ON pdb.uid=l.primary_uid"
                                " JOIN sql_dbs s ON s.uid=l.secondary_uid WHERE pdb.parent_id=? AND pdb.prot_uri=''"
                                " UNION SELECT DISTINCT pdb.parent_id FROM sql_links l JOIN sql_dbs pdb"
                                " ON pdb.uid=l.primary_uid JOIN sql_dbs s ON s.uid=l.secondary_uid"
                                " WHERE s.parent_id=? AND s.prot_uri=''"
                                " UNION SELECT secondary_id FROM sql_fogs WHERE primary_id=?"
                                " UNION SELECT primary_id FROM sql_fogs WHERE secondary_id=?");
  char partners[16][SQL_RID_MAX];
  int n = 0;
  if(st) {
    for(int i = 1; i <= 4; i++)
      sqlite3_bind_text(st, i, p->id, -1, SQLITE_STATIC);
    while(n < 16 && sqlite3_step(st) == SQLITE_ROW)
      snprintf(partners[n++], SQL_RID_MAX, "%s", emu_col_text(st, 0));
    sqlite3_finalize(st);
  }
  for(int i = 0; i < n; i++)
    if(strcasecmp(partners[i], p->id) && !sql_pkey_has_thumb(e, partners[i], thumb))
      return sql_outf(o, 400, "SameKeyMaterialNotFoundOnRemoteServer",
                "The geo partner '%.300s' has no key with thumbprint %s. Add the key to the partner (secondary first) "
                "before making it the protector here.",
                partners[i], thumb);
  /* managed instance with keys in several vaults: each vault must hold the same material */
  if(p->is_mi) {
    st = emu_sql(e, "SELECT uri FROM sql_parent_keys WHERE parent_id=?");
    char vaults[16][EMU_ID_MAX];
    int nv = 0;
    if(st) {
      sqlite3_bind_text(st, 1, p->id, -1, SQLITE_STATIC);
      while(sqlite3_step(st) == SQLITE_ROW) {
        sqlkv_ref r;
        if(!sqlkv_parse_uri(emu_col_text(st, 0), &r))
          continue;
        int seen = 0;
        for(int j = 0; j < nv; j++)
          if(!strcasecmp(vaults[j], r.vault))
            seen = 1;
        if(!seen && nv < 16)
          snprintf(vaults[nv++], EMU_ID_MAX, "%s", r.vault);
      }
      sqlite3_finalize(st);
    }
    for(int j = 0; j < nv; j++) {
      int has = 0;
      st = emu_sql(e, "SELECT uri FROM sql_parent_keys WHERE parent_id=? AND thumb=?");
      if(st) {
        sqlite3_bind_text(st, 1, p->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, thumb, -1, SQLITE_STATIC);
        while(!has && sqlite3_step(st) == SQLITE_ROW) {
          sqlkv_ref r;
          has = sqlkv_parse_uri(emu_col_text(st, 0), &r) && !strcasecmp(r.vault, vaults[j]);
        }
        sqlite3_finalize(st);
      }
      if(!has)
        return sql_outf(o, 400, "SameKeyMaterialNotFoundOnRemoteServer",
                  "The instance uses keys in vault '%s', which holds no key with thumbprint %s; register the same key "
                  "material from every vault before it becomes the protector.",
                  vaults[j], thumb);
    }
  }
  return 0;
}

static int prot_plan(emu *e, const sql_parent *p, const json_t *body, sqlkv_key *k, sql_outcome *o) {
  memset(o, 0, sizeof *o);
  memset(k, 0, sizeof *k);
  const char *type = sq_json_str(body, "properties.serverKeyType");
  const char *name = sq_json_str(body, "properties.serverKeyName");
  const json_t *ar = sq_json_path(body, "properties.autoRotationEnabled");
  if(ar && !json_is_boolean(ar))
    return sql_outf(o, 400, "InvalidParameterValue", "autoRotationEnabled must be a boolean.");
  if(!type)
    return sql_outf(o, 400, "InvalidKeyType", "properties.serverKeyType is required.");
  if(!strcasecmp(type, "ServiceManaged"))
    return 0;
  if(strcasecmp(type, "AzureKeyVault"))
    return sql_outf(o, 400, "InvalidKeyType", "serverKeyType must be 'ServiceManaged' or 'AzureKeyVault'.");
  sql_pkey pk;
  if(!name || !sql_pkey_get(e, p->id, name, &pk))
    return sql_outf(o, 404, "ServerKeyNotFound", "The server key '%.300s' does not exist; register it under keys first.",
              name ? name : "");
  if(parent_key_access(e, p, pk.uri, "The server has no identity to reach its key.", k, o))
    return o->status;
  sqlkv_ref r;
  sqlkv_parse_uri(pk.uri, &r);
  if(r.version[0] && !k->latest) {
    sqlkv_key_free(k);
    return sql_outf(o, 400, "OldGenerationOfAKVKeyBeingUsedError",
              "The key '%.300s' is not the latest version; the protector must use the newest version.", pk.uri);
  }
  if(strcmp(k->thumb, pk.thumb)) {
    sqlkv_key_free(k);
    return sql_outf(o, 400, "AzureKeyVaultKeyThumbprintIsDifferent",
              "The key behind '%.200s' no longer has the material it was registered with.", name);
  }
  if(remote_material_check(e, p, k->thumb, o)) {
    sqlkv_key_free(k);
    return o->status;
  }
  return 0;
}

void sql_h_prot_put(emu_call *c) {
  sql_parent p;
  json_t *body;
  if(!srv_begin_body(c, "/encryptionProtector/write", &p, &body))
    return;
  sqlkv_key k;
  sql_outcome o;
  memset(&k, 0, sizeof k);
  if(sql_lro_running(c))
    emu_arm_error(c, 409, "EncryptionProtectorChangeInProgress", "A protector change of '%s' is already in progress.",
                  p.name);
  else if(prot_plan(c->e, &p, body, &k, &o))
    sql_reply_outcome(c, &o);
  else
    srv_lro(c, &p, &OP_PROT_PUT, json_pack("{s:s,s:O}", "parent", p.id, "body", body));
  sqlkv_key_free(&k);
  json_decref(body);
  sql_parent_free(&p);
}

static int lro_prot_put(emu *e, const emu_lro *op, const json_t *in, char code[128], char msg[512], json_t **result) {
  sql_parent p;
  if(!lro_parent(e, in, &p, code, msg))
    return 1;
  const json_t *body = json_object_get(in, "body");
  sqlkv_key k;
  sql_outcome o;
  int rc = prot_plan(e, &p, body, &k, &o);
  if(rc) {
    sql_out_lro(&o, code, msg);
  } else {
    if(!strcasecmp(sq_json_str(body, "properties.serverKeyType"), "ServiceManaged")) {
      snprintf(p.prot_type, sizeof p.prot_type, "ServiceManaged");
      snprintf(p.prot_key_name, sizeof p.prot_key_name, "ServiceManaged");
      p.prot_uri[0] = p.prot_thumb[0] = p.active_uri[0] = p.key_id[0] = '\0';
      p.prot_auto = 0;
    } else {
      char canon[SQL_URI_MAX];
      sqlkv_uri(e, &k.ref, canon, sizeof canon);
      sql_parent_set_protector(&p, sq_json_str(body, "properties.serverKeyName"), canon, k.thumb);
      p.prot_auto = sq_json_bool(body, "properties.autoRotationEnabled", 0);
    }
    sql_parent_save(e, &p);
    sql_parent_rewrap_dbs(e, &p, op->done_ms);
    *result = prot_json(e, &p);
    sqlkv_key_free(&k);
  }
  sql_parent_free(&p);
  return rc ? 1 : 0;
}

void sql_h_prot_revalidate(emu_call *c) {
  sql_parent p;
  if(!srv_begin(c, "/encryptionProtector/revalidate/action", &p))
    return;
  sqlkv_fail f;
  char oid[EMU_ID_MAX];
  int is_umi = 0;
  sql_parent_oid(c->e, &p, oid, &is_umi);
  if(!strcmp(p.prot_type, "ServiceManaged"))
    emu_arm_error(c, 400, "CMKOperationNotAllowed", "The protector of '%s' is service-managed; nothing to revalidate.",
                  p.name);
  else if(sql_parent_check(c->e, &p, &f)) {
    if(p.is_mi && f.st != SK_VAULT_DOWN)
      emu_arm_error(c, 400, "ManagedInstanceNoConditionToMakeDatabaseAccessible",
                    "The cause is still present: %s", f.detail);
    else
      sqlkv_reply_error(c, &f, ctx_for(&p, is_umi), p.prot_uri);
  } else
    srv_lro(c, &p, &OP_PROT_REVALIDATE, json_pack("{s:s}", "parent", p.id));
  sql_parent_free(&p);
}

static int lro_prot_revalidate(emu *e, const emu_lro *op, const json_t *in, char code[128], char msg[512],
                               json_t **result) {
  (void)result;
  sql_parent p;
  if(!sql_parent_load_id(e, sq_json_str(in, "parent"), &p))
    return 0;
  sqlkv_fail f;
  int rc = 0;
  if(sql_parent_check(e, &p, &f)) {
    sqlkv_error(&f, p.is_mi ? SQLKV_CTX_MI : SQLKV_CTX_SERVER, p.prot_uri, code, msg);
    rc = 1;
  } else {
    p.fail_since_ms = 0;
    p.fail_code[0] = '\0';
    snprintf(p.state, sizeof p.state, "Ready");
    sql_parent_save(e, &p);
    /* server-level databases that went inaccessible come back */
    int64_t uids[256];
    int n = sql_server_level_dbs(e, p.id, 1, uids, 256);
    for(int i = 0; i < n; i++) {
      sql_db d;
      if(!sql_db_load_uid(e, uids[i], &d))
        continue;
      sqlkv_fail f2;
      if(!sql_db_reopen(e, &d, &f2))
        sql_db_save(e, &d);
      sql_db_free(&d);
    }
  }
  (void)op;
  sql_parent_free(&p);
  return rc;
}

const sql_lro_handler sql_server_lro_handlers[] = {
    {"UpsertLogicalServer", lro_server_patch},
    {"UpsertManagedServer", lro_server_patch},
    {"UpsertServerKey", lro_key_put},
    {"UpsertManagedServerKey", lro_key_put},
    {"DropServerKey", lro_key_delete},
    {"DropManagedServerKey", lro_key_delete},
    {"UpsertEncryptionProtector", lro_prot_put},
    {"UpsertManagedServerEncryptionProtector", lro_prot_put},
    {"RevalidateEncryptionProtector", lro_prot_revalidate},
    {"RevalidateManagedServerEncryptionProtector", lro_prot_revalidate},
    {NULL, NULL},
};
