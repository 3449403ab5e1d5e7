/* keyvault.c — the Key Vault keys data plane (azure-api.md §4, §5): create,
 * import, get, list, list versions, update, delete (soft delete), deleted
 * keys, recover, purge (purge protection), backup/restore (same subscription
 * and geography), rotate, rotation policy, wrap/unwrap/encrypt/decrypt.
 * Authorization per caller object id by access policy or RBAC role
 * assignment; key attributes enforced against the virtual clock. */
#include <ctype.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "emu.h"
#include "kvcrypto.h"
#include "sqltde/codec.h"
#include "sqltde/crypto/thumbprint.h"
#include "sqltde/jsonx.h"
#include "sqltde/log.h"

#define KV_NOT_FOUND_HINT                                                                          \
  "If you recently deleted this key you may be able to recover it using the correct recovery "   \
  "command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"

/* ---- vaults ---- */

void emu_vault_from_row(sqlite3_stmt *st, emu_vault *out) {
  memset(out, 0, sizeof *out);
  snprintf(out->name, sizeof out->name, "%s", emu_col_text(st, 0));
  snprintf(out->sub, sizeof out->sub, "%s", emu_col_text(st, 1));
  snprintf(out->rg, sizeof out->rg, "%s", emu_col_text(st, 2));
  snprintf(out->region, sizeof out->region, "%s", emu_col_text(st, 3));
  snprintf(out->tenant, sizeof out->tenant, "%s", emu_col_text(st, 4));
  out->soft_delete = sqlite3_column_int(st, 5);
  out->purge_protection = sqlite3_column_int(st, 6);
  out->rbac = sqlite3_column_int(st, 7);
  out->retention_days = sqlite3_column_int(st, 8);
}

int emu_vault_get(emu *e, const char *name, emu_vault *out) {
  sqlite3_stmt *st = emu_sql(e, "SELECT " EMU_VAULT_COLS " FROM vaults WHERE name=?");
  if(!st)
    return 0;
  sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
  int ok = sqlite3_step(st) == SQLITE_ROW;
  if(ok && out)
    emu_vault_from_row(st, out);
  sqlite3_finalize(st);
  return ok;
}

void emu_vault_url(emu *e, const char *name, char *out, size_t outlen) {
  char host[EMU_ID_MAX + 32];
  snprintf(host, sizeof host, "%s.vault.localhost", name);
  for(char *p = host; *p; p++)
    *p = (char)tolower((unsigned char)*p);
  emu_base_url(e, host, out, outlen);
}

void emu_vault_resource_id(const emu_vault *v, char *out, size_t outlen) {
  snprintf(out, outlen, "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.KeyVault/vaults/%s", v->sub,
           v->rg, v->name);
}

void emu_region_geography(emu *e, const char *region, char *out, size_t outlen) {
  out[0] = '\0';
  emu_sql_text(e, out, outlen, "SELECT geography FROM regions WHERE name=?", region, NULL);
}

/* ---- keys in state ---- */

typedef struct kv_key {
  char name[EMU_ID_MAX];
  char version[40];
  int64_t seq;
  char kty[16];
  json_t *key_ops; /* array */
  json_t *tags;    /* object or NULL */
  int enabled;
  int has_nbf, has_exp;
  int64_t nbf, exp, created, updated;
  EVP_PKEY *pkey;
  char thumb[SQ_THUMBPRINT_HEX_LEN + 1];
} kv_key;

static void kv_key_free(kv_key *k) {
  json_decref(k->key_ops);
  json_decref(k->tags);
  EVP_PKEY_free(k->pkey);
  memset(k, 0, sizeof *k);
}

/* Is name soft-deleted in vault? deleted and purge (may be NULL) get its dates. */
static int load_deleted(emu *e, const char *vault, const char *name, int64_t *deleted, int64_t *purge) {
  sqlite3_stmt *st = emu_sql(e, "SELECT deleted, purge FROM kv_deleted WHERE vault=? AND name=?");
  if(!st)
    return 0;
  sqlite3_bind_text(st, 1, vault, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
  int ok = sqlite3_step(st) == SQLITE_ROW;
  if(ok && deleted)
    *deleted = sqlite3_column_int64(st, 0);
  if(ok && purge)
    *purge = sqlite3_column_int64(st, 1);
  sqlite3_finalize(st);
  return ok;
}

static int name_deleted(emu *e, const char *vault, const char *name) {
  return load_deleted(e, vault, name, NULL, NULL);
}

/* Runs sql with ?1 = vault, ?2 = name. */
static void exec_vault_name(emu *e, const char *sql, const char *vault, const char *name) {
  sqlite3_stmt *st = emu_sql(e, sql);
  if(!st)
    return;
  sqlite3_bind_text(st, 1, vault, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
  sqlite3_step(st);
  sqlite3_finalize(st);
}

#define KEY_COLS "name, version, seq, kty, key_ops, tags, enabled, nbf, exp, created, updated, der, thumbprint"

static int row_to_key(sqlite3_stmt *st, kv_key *k) {
  memset(k, 0, sizeof *k);
  snprintf(k->name, sizeof k->name, "%s", emu_col_text(st, 0));
  snprintf(k->version, sizeof k->version, "%s", emu_col_text(st, 1));
  k->seq = sqlite3_column_int64(st, 2);
  snprintf(k->kty, sizeof k->kty, "%s", emu_col_text(st, 3));
  k->key_ops = json_loads(emu_col_text(st, 4), 0, NULL);
  if(!json_is_array(k->key_ops)) {
    json_decref(k->key_ops);
    k->key_ops = json_array();
  }
  if(sqlite3_column_type(st, 5) == SQLITE_TEXT)
    k->tags = json_loads(emu_col_text(st, 5), 0, NULL);
  k->enabled = sqlite3_column_int(st, 6);
  k->has_nbf = sqlite3_column_type(st, 7) != SQLITE_NULL;
  k->nbf = sqlite3_column_int64(st, 7);
  k->has_exp = sqlite3_column_type(st, 8) != SQLITE_NULL;
  k->exp = sqlite3_column_int64(st, 8);
  k->created = sqlite3_column_int64(st, 9);
  k->updated = sqlite3_column_int64(st, 10);
  if(kvc_from_der(sqlite3_column_blob(st, 11), (size_t)sqlite3_column_bytes(st, 11), &k->pkey)) {
    kv_key_free(k);
    return 0;
  }
  snprintf(k->thumb, sizeof k->thumb, "%s", emu_col_text(st, 12));
  return 1;
}

/* Loads version (or the latest when version is NULL or ""); deleted names are
 * invisible unless include_deleted. */
static int kv_load(emu *e, const char *vault, const char *name, const char *version, int include_deleted,
                   kv_key *k) {
  if(!include_deleted && name_deleted(e, vault, name))
    return 0;
  sqlite3_stmt *st;
  if(version && *version) {
    st = emu_sql(e, "SELECT " KEY_COLS " FROM kv_keys WHERE vault=? AND name=? AND version=?");
    if(!st)
      return 0;
    sqlite3_bind_text(st, 3, version, -1, SQLITE_STATIC);
  } else {
    st = emu_sql(e, "SELECT " KEY_COLS " FROM kv_keys WHERE vault=? AND name=? ORDER BY seq DESC LIMIT 1");
    if(!st)
      return 0;
  }
  sqlite3_bind_text(st, 1, vault, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
  int ok = sqlite3_step(st) == SQLITE_ROW && row_to_key(st, k);
  sqlite3_finalize(st);
  return ok;
}

static sq_code kv_store(emu *e, const char *vault, kv_key *k) {
  sq_buf der;
  sq_buf_init(&der, 16384);
  sq_code rc = kvc_to_der(k->pkey, &der);
  if(rc) {
    sq_buf_free_wipe(&der);
    return rc;
  }
  if(!k->thumb[0] && (rc = sq_thumbprint_pkey(k->pkey, k->thumb, NULL))) {
    sq_buf_free_wipe(&der);
    return rc;
  }
  char *ops = json_dumps(k->key_ops, JSON_COMPACT);
  char *tags = k->tags ? json_dumps(k->tags, JSON_COMPACT) : NULL;
  sqlite3_stmt *st = emu_sql(e, "INSERT OR REPLACE INTO kv_keys(vault, " KEY_COLS
                                ") VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
  rc = SQ_EIO;
  if(st && ops) {
    sqlite3_bind_text(st, 1, vault, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, k->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, k->version, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, k->seq);
    sqlite3_bind_text(st, 5, k->kty, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, ops, -1, SQLITE_STATIC);
    if(tags)
      sqlite3_bind_text(st, 7, tags, -1, SQLITE_STATIC);
    else
      sqlite3_bind_null(st, 7);
    sqlite3_bind_int(st, 8, k->enabled);
    if(k->has_nbf)
      sqlite3_bind_int64(st, 9, k->nbf);
    else
      sqlite3_bind_null(st, 9);
    if(k->has_exp)
      sqlite3_bind_int64(st, 10, k->exp);
    else
      sqlite3_bind_null(st, 10);
    sqlite3_bind_int64(st, 11, k->created);
    sqlite3_bind_int64(st, 12, k->updated);
    sqlite3_bind_blob(st, 13, der.ptr, (int)der.len, SQLITE_STATIC);
    sqlite3_bind_text(st, 14, k->thumb, -1, SQLITE_STATIC);
    if(sqlite3_step(st) == SQLITE_DONE)
      rc = SQ_OK;
  }
  sqlite3_finalize(st);
  free(ops);
  free(tags);
  sq_buf_free_wipe(&der);
  return rc;
}

/* Name as first stored (Key Vault names are case-insensitive but keep their case). */
static void stored_name(emu *e, const char *vault, const char *name, char *out, size_t n, int64_t *next_seq) {
  snprintf(out, n, "%s", name);
  *next_seq = 1;
  sqlite3_stmt *st = emu_sql(e, "SELECT name, MAX(seq) FROM kv_keys WHERE vault=? AND name=?");
  if(!st)
    return;
  sqlite3_bind_text(st, 1, vault, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
  if(sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
    snprintf(out, n, "%s", emu_col_text(st, 0));
    *next_seq = sqlite3_column_int64(st, 1) + 1;
  }
  sqlite3_finalize(st);
}

/* ---- JSON shapes ---- */

static void vault_base(emu_call *c, const emu_vault *v, char *out, size_t n) { emu_vault_url(c->e, v->name, out, n); }

static const char *recovery_level(const emu_vault *v) {
  if(!v->soft_delete)
    return "Purgeable";
  int custom = v->retention_days < 90;
  if(v->purge_protection)
    return custom ? "CustomizedRecoverable" : "Recoverable";
  return custom ? "CustomizedRecoverable+Purgeable" : "Recoverable+Purgeable";
}

static json_t *attributes_json(const emu_vault *v, const kv_key *k) {
  json_t *a = json_pack("{s:b,s:I,s:I,s:s,s:i,s:b}", "enabled", k->enabled, "created", (json_int_t)k->created,
                        "updated", (json_int_t)k->updated, "recoveryLevel", recovery_level(v), "recoverableDays",
                        v->soft_delete ? v->retention_days : 0, "exportable", 0);
  if(k->has_nbf)
    json_object_set_new(a, "nbf", json_integer(k->nbf));
  if(k->has_exp)
    json_object_set_new(a, "exp", json_integer(k->exp));
  return a;
}

static json_t *bundle_json(emu_call *c, const emu_vault *v, const kv_key *k) {
  char base[256], kid[512];
  vault_base(c, v, base, sizeof base);
  snprintf(kid, sizeof kid, "%s/keys/%s/%s", base, k->name, k->version);
  json_t *jwk = emu_rsa_public_jwk(k->pkey);
  if(!jwk)
    return NULL;
  json_object_set_new(jwk, "kid", json_string(kid));
  json_object_set_new(jwk, "kty", json_string(k->kty));
  json_object_set_new(jwk, "key_ops", json_deep_copy(k->key_ops));
  json_t *b = json_pack("{s:o,s:o}", "key", jwk, "attributes", attributes_json(v, k));
  if(k->tags && json_object_size(k->tags))
    json_object_set_new(b, "tags", json_deep_copy(k->tags));
  return b;
}

static json_t *item_json(emu_call *c, const emu_vault *v, const kv_key *k, int with_version) {
  char base[256], kid[512];
  vault_base(c, v, base, sizeof base);
  if(with_version)
    snprintf(kid, sizeof kid, "%s/keys/%s/%s", base, k->name, k->version);
  else
    snprintf(kid, sizeof kid, "%s/keys/%s", base, k->name);
  json_t *it = json_pack("{s:s,s:o}", "kid", kid, "attributes", attributes_json(v, k));
  if(k->tags && json_object_size(k->tags))
    json_object_set_new(it, "tags", json_deep_copy(k->tags));
  return it;
}

static void add_deleted_fields(emu_call *c, const emu_vault *v, json_t *b, const char *name, int64_t deleted,
                               int64_t purge) {
  char base[256], rid[512];
  vault_base(c, v, base, sizeof base);
  snprintf(rid, sizeof rid, "%s/deletedkeys/%s", base, name);
  json_object_set_new(b, "recoveryId", json_string(rid));
  json_object_set_new(b, "deletedDate", json_integer(deleted));
  json_object_set_new(b, "scheduledPurgeDate", json_integer(purge));
}

/* ---- authorization ---- */

typedef struct kv_perm {
  const char *policy;      /* access-policy permission name */
  const char *data_action; /* RBAC data action */
  const char *label;       /* operation name in messages */
} kv_perm;

static const kv_perm P_GET = {"get", "Microsoft.KeyVault/vaults/keys/read", "get"};
static const kv_perm P_LIST = {"list", "Microsoft.KeyVault/vaults/keys/read", "list"};
static const kv_perm P_CREATE = {"create", "Microsoft.KeyVault/vaults/keys/create/action", "create"};
static const kv_perm P_IMPORT = {"import", "Microsoft.KeyVault/vaults/keys/import/action", "import"};
static const kv_perm P_UPDATE = {"update", "Microsoft.KeyVault/vaults/keys/update/action", "update"};
static const kv_perm P_DELETE = {"delete", "Microsoft.KeyVault/vaults/keys/delete", "delete"};
static const kv_perm P_BACKUP = {"backup", "Microsoft.KeyVault/vaults/keys/backup/action", "backup"};
static const kv_perm P_RESTORE = {"restore", "Microsoft.KeyVault/vaults/keys/restore/action", "restore"};
static const kv_perm P_RECOVER = {"recover", "Microsoft.KeyVault/vaults/keys/recover/action", "recover"};
static const kv_perm P_PURGE = {"purge", "Microsoft.KeyVault/vaults/deletedKeys/delete", "purge"};
static const kv_perm P_DEL_READ = {"list", "Microsoft.KeyVault/vaults/deletedKeys/read", "list"};
static const kv_perm P_DEL_GET = {"get", "Microsoft.KeyVault/vaults/deletedKeys/read", "get"};
static const kv_perm P_WRAP = {"wrapKey", "Microsoft.KeyVault/vaults/keys/wrap/action", "wrapKey"};
static const kv_perm P_UNWRAP = {"unwrapKey", "Microsoft.KeyVault/vaults/keys/unwrap/action", "unwrapKey"};
static const kv_perm P_ENCRYPT = {"encrypt", "Microsoft.KeyVault/vaults/keys/encrypt/action", "encrypt"};
static const kv_perm P_DECRYPT = {"decrypt", "Microsoft.KeyVault/vaults/keys/decrypt/action", "decrypt"};
static const kv_perm P_ROTATE = {"rotate", "Microsoft.KeyVault/vaults/keys/rotate/action", "rotate"};
static const kv_perm P_GETPOL = {"getrotationpolicy", "Microsoft.KeyVault/vaults/keyrotationpolicies/read",
                                 "getrotationpolicy"};
static const kv_perm P_SETPOL = {"setrotationpolicy", "Microsoft.KeyVault/vaults/keyrotationpolicies/write",
                                 "setrotationpolicy"};

static int policy_allows(emu *e, const char *vault, const char *oid, const char *perm) {
  sqlite3_stmt *st = emu_sql(e, "SELECT keys FROM access_policies WHERE vault=? AND object_id=?");
  if(!st)
    return 0;
  sqlite3_bind_text(st, 1, vault, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, oid, -1, SQLITE_STATIC);
  int ok = 0;
  if(sqlite3_step(st) == SQLITE_ROW) {
    json_t *perms = json_loads(emu_col_text(st, 0), 0, NULL);
    size_t i;
    json_t *p;
    json_array_foreach(perms, i, p) if(json_is_string(p) && (!strcasecmp(json_string_value(p), perm) ||
                                                             !strcasecmp(json_string_value(p), "all"))) ok = 1;
    json_decref(perms);
  }
  sqlite3_finalize(st);
  return ok;
}

/* 0 when allowed; otherwise writes the documented 403 and returns -1. */
static int kv_authorize(emu_call *c, const emu_vault *v, const char *key_name, const kv_perm *p) {
  int revoked = emu_fault_revoked(c->e, v->name, c->oid);
  char caller[512];
  snprintf(caller, sizeof caller, "appid=%s;oid=%s;iss=https://sts.windows.net/%s/", c->appid, c->oid, c->tid);
  if(!v->rbac) {
    if(!revoked && policy_allows(c->e, v->name, c->oid, p->policy))
      return 0;
    emu_kv_error(c, 403, "Forbidden", "ForbiddenByPolicy",
                 "The user, group or application '%s' does not have keys %s permission on key vault '%s;location=%s'. "
                 "For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287",
                 caller, p->policy, v->name, v->region);
    return -1;
  }
  char scope[1024];
  emu_vault_resource_id(v, scope, sizeof scope);
  if(key_name) {
    size_t n = strlen(scope);
    snprintf(scope + n, sizeof scope - n, "/keys/%s", key_name);
  }
  if(!revoked && emu_rbac_allows(c->e, c->oid, scope, p->data_action, 1))
    return 0;
  char lower[1024];
  snprintf(lower, sizeof lower, "%s", scope);
  for(char *q = lower; *q; q++)
    *q = (char)tolower((unsigned char)*q);
  emu_kv_error(c, 403, "Forbidden", "ForbiddenByRbac",
               "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or "
               "role definitions were changed recently, please observe propagation time.\r\nCaller: %s\r\n"
               "Action: '%s'\r\nResource: '%s'\r\nAssignment: (not found)\r\nDenyAssignmentId: null\r\n"
               "DecisionReason: 'DeniedWithNoValidRBAC' \r\nVault: %s;location=%s\r\n",
               caller, p->data_action, lower, v->name, v->region);
  return -1;
}

/* Common start of every handler: vault row (the prelude checked it exists) and authorization. */
static int kv_begin(emu_call *c, emu_vault *v, const char *key_name, const kv_perm *p) {
  if(!emu_vault_get(c->e, c->vault, v)) {
    emu_kv_error(c, 404, "VaultNotFound", NULL, "Vault not found.");
    return -1;
  }
  return kv_authorize(c, v, key_name, p);
}

static int valid_key_name(emu_call *c, const char *name) {
  size_t n = strlen(name);
  int ok = n >= 1 && n <= 127;
  for(size_t i = 0; ok && i < n; i++)
    ok = isalnum((unsigned char)name[i]) || name[i] == '-';
  if(!ok)
    emu_kv_error(c, 400, "BadParameter", NULL,
                 "The request URI contains an invalid name: %.200s. Key names may contain only 0-9, a-z, A-Z and '-' "
                 "(1-127 characters).",
                 name);
  return ok;
}

static void key_not_found(emu_call *c, const char *name, const char *version) {
  if(version && *version)
    emu_kv_error(c, 404, "KeyNotFound", NULL, "A key with (name/id) %.200s/%.64s was not found in this key vault. %s",
                 name, version, KV_NOT_FOUND_HINT);
  else
    emu_kv_error(c, 404, "KeyNotFound", NULL, "A key with (name/id) %.200s was not found in this key vault. %s", name,
                 KV_NOT_FOUND_HINT);
}

/* A soft-deleted name cannot be reused: answers 409 and returns 1 when name is one. */
static int deleted_conflict(emu_call *c, const emu_vault *v, const char *name) {
  if(!name_deleted(c->e, v->name, name))
    return 0;
  emu_kv_error(c, 409, "Conflict", "ObjectIsDeletedButRecoverable",
               "Key %.200s is currently in a deleted but recoverable state, and its name cannot be reused; in this "
               "state, the key can only be recovered or purged.",
               name);
  return 1;
}

static void deleted_not_found(emu_call *c, const char *name) {
  emu_kv_error(c, 404, "KeyNotFound", NULL, "Deleted Key not found: %.200s", name);
}

/* Common start of the handlers on one key ({name}): kv_begin, the JSON body
 * when body is not NULL, then the key's version (NULL or "" = the latest).
 * 0 with all of it held, else -1 with the error written and nothing held. */
static int kv_begin_key(emu_call *c, const kv_perm *p, const char *version, emu_vault *v, json_t **body, kv_key *k) {
  const char *name = emu_var(c, "name");
  if(kv_begin(c, v, name, p) || (body && emu_body_json(c, 0, body)))
    return -1;
  if(kv_load(c->e, v->name, name, version, 0, k))
    return 0;
  key_not_found(c, name, version);
  if(body) {
    json_decref(*body);
    *body = NULL;
  }
  return -1;
}

/* kv_begin, then the soft-deleted key {name} with its dates; 0, or -1 with the error written. */
static int kv_begin_deleted(emu_call *c, const kv_perm *p, emu_vault *v, int64_t *deleted, int64_t *purge) {
  const char *name = emu_var(c, "name");
  if(kv_begin(c, v, name, p))
    return -1;
  if(load_deleted(c->e, v->name, name, deleted, purge))
    return 0;
  deleted_not_found(c, name);
  return -1;
}

/* ---- request body parts ---- */

static const char *const rsa_ops[] = {"encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey", NULL};
static const char *const all_ops[] = {"encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey", "import",
                                      "export", NULL};

static json_t *default_key_ops(void) {
  json_t *a = json_array();
  for(int i = 0; rsa_ops[i]; i++)
    json_array_append_new(a, json_string(rsa_ops[i]));
  return a;
}

/* key_ops: validated copy, or the RSA default. -1 on bad input (error written). */
static int parse_key_ops(emu_call *c, const json_t *v, json_t **out) {
  *out = NULL;
  if(!v || json_is_null(v)) {
    *out = default_key_ops();
    return 0;
  }
  if(!json_is_array(v) || json_array_size(v) > 16) {
    emu_kv_error(c, 400, "BadParameter", NULL, "key_ops must be an array of operation names.");
    return -1;
  }
  json_t *a = json_array();
  size_t i;
  json_t *op;
  json_array_foreach(v, i, op) {
    int ok = 0;
    for(int k = 0; json_is_string(op) && all_ops[k]; k++)
      if(!strcmp(json_string_value(op), all_ops[k]))
        ok = 1;
    if(!ok) {
      json_decref(a);
      emu_kv_error(c, 400, "BadParameter", NULL, "Invalid key operation in key_ops: %.64s.",
                   json_is_string(op) ? json_string_value(op) : "(not a string)");
      return -1;
    }
    json_array_append_new(a, json_string(json_string_value(op)));
  }
  *out = a;
  return 0;
}

static int parse_tags(emu_call *c, const json_t *v, json_t **out) {
  *out = NULL;
  if(!v || json_is_null(v))
    return 0;
  if(!json_is_object(v) || json_object_size(v) > 15) {
    emu_kv_error(c, 400, "BadParameter", NULL, "tags must be an object of at most 15 string values.");
    return -1;
  }
  const char *k;
  json_t *t;
  json_object_foreach((json_t *)v, k, t) {
    if(!json_is_string(t) || strlen(k) > 512 || strlen(json_string_value(t)) > 512) {
      emu_kv_error(c, 400, "BadParameter", NULL, "Tag '%.64s' must be a string of at most 512 characters.", k);
      return -1;
    }
  }
  *out = json_deep_copy(v);
  return 0;
}

/* attributes: enabled, nbf, exp (null clears); exportable must stay false. */
static int parse_attributes(emu_call *c, const json_t *a, kv_key *k) {
  if(!a || json_is_null(a))
    return 0;
  if(!json_is_object(a)) {
    emu_kv_error(c, 400, "BadParameter", NULL, "attributes must be an object.");
    return -1;
  }
  json_t *v;
  if((v = json_object_get(a, "enabled")) && !json_is_null(v)) {
    if(!json_is_boolean(v)) {
      emu_kv_error(c, 400, "BadParameter", NULL, "attributes.enabled must be a boolean.");
      return -1;
    }
    k->enabled = json_is_true(v);
  }
  struct {
    const char *n;
    int *has;
    int64_t *val;
  } t[2] = {{"nbf", &k->has_nbf, &k->nbf}, {"exp", &k->has_exp, &k->exp}};
  for(int i = 0; i < 2; i++) {
    if(!json_object_get(a, t[i].n))
      continue;
    v = json_object_get(a, t[i].n);
    if(json_is_null(v)) {
      *t[i].has = 0;
      continue;
    }
    if(!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 253402300799LL) {
      emu_kv_error(c, 400, "BadParameter", NULL, "attributes.%s must be Unix seconds.", t[i].n);
      return -1;
    }
    *t[i].has = 1;
    *t[i].val = json_integer_value(v);
  }
  if(k->has_nbf && k->has_exp && k->exp <= k->nbf) {
    emu_kv_error(c, 400, "BadParameter", NULL, "The expiration time must be later than the activation time (nbf).");
    return -1;
  }
  if(json_is_true(json_object_get(a, "exportable"))) {
    emu_kv_error(c, 400, "BadParameter", NULL, "Exportable keys require a release policy, which the emulator does not support.");
    return -1;
  }
  return 0;
}

static int has_op(const kv_key *k, const char *op) {
  size_t i;
  json_t *v;
  json_array_foreach(k->key_ops, i, v) if(json_is_string(v) && !strcmp(json_string_value(v), op)) return 1;
  return 0;
}

/* key_ops (from ops_src), tags and attributes of a new key (create, import). */
static int parse_new_key(emu_call *c, const json_t *ops_src, const json_t *body, kv_key *k) {
  if(parse_key_ops(c, json_object_get(ops_src, "key_ops"), &k->key_ops) ||
     parse_tags(c, json_object_get(body, "tags"), &k->tags) ||
     parse_attributes(c, json_object_get(body, "attributes"), k))
    return -1;
  return 0;
}

/* Stores k (material, operations, tags and attributes set) as a new version
 * of name created at now (seconds); the name keeps the case it was first
 * stored with. */
static sq_code kv_store_new(emu *e, const char *vault, const char *name, const char *kty, int64_t now, kv_key *k) {
  stored_name(e, vault, name, k->name, sizeof k->name, &k->seq);
  snprintf(k->kty, sizeof k->kty, "%s", kty);
  emu_rand_hex(k->version, 16);
  k->created = k->updated = now;
  return kv_store(e, vault, k);
}

/* ---- handlers ---- */

static void reply_bundle(emu_call *c, const emu_vault *v, const kv_key *k) {
  json_t *b = bundle_json(c, v, k);
  if(!b)
    emu_kv_error(c, 500, "InternalError", NULL, "Cannot encode the key.");
  else
    emu_reply_json(c, 200, b);
}

/* Answers a stored key (rc from storing it). */
static void reply_stored(emu_call *c, const emu_vault *v, const kv_key *k, sq_code rc) {
  if(rc)
    emu_kv_error(c, 500, "InternalError", NULL, "Cannot store the key.");
  else
    reply_bundle(c, v, k);
}

/* Common start of create and import: kv_begin on a valid {name}, the body,
 * and a blank enabled key. 0, or -1 with the error written. */
static int kv_begin_new(emu_call *c, const kv_perm *p, emu_vault *v, json_t **body, kv_key *k) {
  const char *name = emu_var(c, "name");
  if(kv_begin(c, v, name, p) || !valid_key_name(c, name) || emu_body_json(c, 0, body))
    return -1;
  memset(k, 0, sizeof *k);
  k->enabled = 1;
  return 0;
}

static void h_create(emu_call *c) {
  emu_vault v;
  const char *name = emu_var(c, "name");
  json_t *body = NULL;
  kv_key k;
  if(kv_begin_new(c, &P_CREATE, &v, &body, &k))
    return;
  const char *kty = sq_json_str(body, "kty");
  json_t *sz = json_object_get(body, "key_size");
  json_t *pe = json_object_get(body, "public_exponent");
  int bits = sz ? (int)json_integer_value(sz) : 2048;
  if(!kty) {
    emu_kv_error(c, 400, "BadParameter", NULL, "The parameter 'kty' is required.");
    goto out;
  }
  if(strcmp(kty, "RSA") && strcmp(kty, "RSA-HSM")) {
    emu_kv_error(c, 400, "BadParameter", NULL, "Key type '%.32s' is not supported by the emulator (RSA, RSA-HSM).", kty);
    goto out;
  }
  if((sz && !json_is_integer(sz)) || (bits != 2048 && bits != 3072 && bits != 4096)) {
    emu_kv_error(c, 400, "BadParameter", NULL, "Invalid key size; RSA keys are 2048, 3072 or 4096 bits.");
    goto out;
  }
  if(pe && !json_is_null(pe) && (!json_is_integer(pe) || json_integer_value(pe) != 65537)) {
    emu_kv_error(c, 400, "BadParameter", NULL, "Only public_exponent 65537 is supported.");
    goto out;
  }
  if(parse_new_key(c, body, body, &k) || deleted_conflict(c, &v, name))
    goto out;
  if(kvc_generate(bits, &k.pkey, NULL)) {
    emu_kv_error(c, 500, "InternalError", NULL, "Key generation failed.");
    goto out;
  }
  reply_stored(c, &v, &k, kv_store_new(c->e, v.name, name, kty, c->now_ms / 1000, &k));
out:
  kv_key_free(&k);
  json_decref(body);
}

static void h_import(emu_call *c) {
  emu_vault v;
  const char *name = emu_var(c, "name");
  json_t *body = NULL;
  kv_key k;
  if(kv_begin_new(c, &P_IMPORT, &v, &body, &k))
    return;
  json_t *jwk = json_object_get(body, "key");
  json_t *hsm = json_object_get(body, "Hsm");
  const char *kty = sq_json_str(jwk, "kty");
  sq_err err;
  sq_err_clear(&err);
  if(!json_is_object(jwk)) {
    emu_kv_error(c, 400, "BadParameter", NULL, "The parameter 'key' (a JSON Web Key) is required.");
    goto out;
  }
  if(hsm && !json_is_boolean(hsm)) {
    emu_kv_error(c, 400, "BadParameter", NULL, "Hsm must be a boolean.");
    goto out;
  }
  if(!kty || (strcmp(kty, "RSA") && strcmp(kty, "RSA-HSM"))) {
    emu_kv_error(c, 400, "BadParameter", NULL, "Key type '%.32s' cannot be imported by the emulator (RSA, RSA-HSM).",
                 kty ? kty : "(missing)");
    goto out;
  }
  if(json_object_get(jwk, "key_hsm")) {
    emu_kv_error(c, 400, "BadParameter", NULL, "BYOK (key_hsm) imports are not supported by the emulator.");
    goto out;
  }
  if(parse_new_key(c, jwk, body, &k))
    goto out;
  if(kvc_from_jwk_private(jwk, &k.pkey, &err)) {
    emu_kv_error(c, 400, "BadParameter", NULL, "The key is not a valid RSA private key: %s.", err.message);
    goto out;
  }
  int bits = kvc_bits(k.pkey);
  if(bits != 2048 && bits != 3072 && bits != 4096) {
    emu_kv_error(c, 400, "BadParameter", NULL, "Invalid key size %d; RSA keys are 2048, 3072 or 4096 bits.", bits);
    goto out;
  }
  if(deleted_conflict(c, &v, name))
    goto out;
  reply_stored(c, &v, &k,
               kv_store_new(c->e, v.name, name, json_is_true(hsm) || !strcmp(kty, "RSA-HSM") ? "RSA-HSM" : "RSA",
                            c->now_ms / 1000, &k));
out:
  kv_key_free(&k);
  json_decref(body);
}

static void h_get(emu_call *c) {
  emu_vault v;
  kv_key k;
  if(kv_begin_key(c, &P_GET, emu_var(c, "version"), &v, NULL, &k))
    return;
  reply_bundle(c, &v, &k);
  kv_key_free(&k);
}

static void h_update(emu_call *c) {
  emu_vault v;
  json_t *body = NULL;
  kv_key k;
  if(kv_begin_key(c, &P_UPDATE, emu_var(c, "version"), &v, &body, &k))
    return;
  json_t *ops = NULL, *tags = NULL;
  if(json_object_get(body, "key_ops") && parse_key_ops(c, json_object_get(body, "key_ops"), &ops))
    goto out;
  if(json_object_get(body, "tags") && parse_tags(c, json_object_get(body, "tags"), &tags))
    goto out;
  if(parse_attributes(c, json_object_get(body, "attributes"), &k))
    goto out;
  if(ops) {
    json_decref(k.key_ops);
    k.key_ops = ops;
    ops = NULL;
  }
  if(json_object_get(body, "tags")) {
    json_decref(k.tags);
    k.tags = tags;
    tags = NULL;
  }
  k.updated = c->now_ms / 1000;
  reply_stored(c, &v, &k, kv_store(c->e, v.name, &k));
out:
  json_decref(ops);
  json_decref(tags);
  kv_key_free(&k);
  json_decref(body);
}

static void purge_name(emu *e, const char *vault, const char *name) {
  const char *sqls[] = {"DELETE FROM kv_keys WHERE vault=? AND name=?", "DELETE FROM kv_deleted WHERE vault=? AND name=?",
                        "DELETE FROM kv_rotation_policies WHERE vault=? AND name=?"};
  for(int i = 0; i < 3; i++)
    exec_vault_name(e, sqls[i], vault, name);
}

static void h_delete(emu_call *c) {
  emu_vault v;
  kv_key k;
  if(kv_begin_key(c, &P_DELETE, NULL, &v, NULL, &k))
    return;
  json_t *b = bundle_json(c, &v, &k);
  if(!b) {
    emu_kv_error(c, 500, "InternalError", NULL, "Cannot encode the key.");
    kv_key_free(&k);
    return;
  }
  if(v.soft_delete) {
    int64_t now = c->now_ms / 1000, purge = now + (int64_t)v.retention_days * 86400;
    sqlite3_stmt *st = emu_sql(c->e, "INSERT OR REPLACE INTO kv_deleted(vault, name, deleted, purge) VALUES(?,?,?,?)");
    if(st) {
      sqlite3_bind_text(st, 1, v.name, -1, SQLITE_STATIC);
      sqlite3_bind_text(st, 2, k.name, -1, SQLITE_STATIC);
      sqlite3_bind_int64(st, 3, now);
      sqlite3_bind_int64(st, 4, purge);
      sqlite3_step(st);
      sqlite3_finalize(st);
    }
    add_deleted_fields(c, &v, b, k.name, now, purge);
  } else {
    purge_name(c->e, v.name, k.name);
  }
  kv_key_free(&k);
  emu_reply_json(c, 200, b);
}

/* maxresults: 1..25, default 25; -1 on bad input (error written) */
static int max_results(emu_call *c) {
  const char *m = emu_query(c, "maxresults");
  if(!m)
    return 25;
  char *end = NULL;
  long n = strtol(m, &end, 10);
  if(!*m || *end || n < 1 || n > 25) {
    emu_kv_error(c, 400, "BadParameter", NULL, "maxresults must be an integer between 1 and 25.");
    return -1;
  }
  return (int)n;
}

static void next_link(emu_call *c, const emu_vault *v, const char *path, const char *token, int max, json_t *page) {
  sq_buf t, esc;
  sq_buf_init(&t, 1024);
  sq_buf_init(&esc, 2048);
  if(!sq_b64_encode(token, strlen(token), 1, &t)) {
    char base[256], link[2048];
    vault_base(c, v, base, sizeof base);
    snprintf(link, sizeof link, "%s%s?api-version=%s&$skiptoken=%s&maxresults=%d", base, path,
             emu_query(c, "api-version"), t.ptr, max);
    json_object_set_new(page, "nextLink", json_string(link));
  }
  sq_buf_free(&t);
  sq_buf_free(&esc);
}

/* Decoded $skiptoken into out ("" when absent); -1 on a bad token (error written). */
static int skip_token(emu_call *c, char *out, size_t n) {
  out[0] = '\0';
  const char *t = emu_query(c, "$skiptoken");
  if(!t)
    return 0;
  sq_buf b;
  sq_buf_init(&b, n - 1);
  if(sq_b64_decode(t, strlen(t), &b) || memchr(b.ptr ? b.ptr : "", 0, b.len)) {
    sq_buf_free(&b);
    emu_kv_error(c, 400, "BadParameter", NULL, "The $skiptoken is not valid.");
    return -1;
  }
  snprintf(out, n, "%s", b.ptr ? b.ptr : "");
  sq_buf_free(&b);
  return 0;
}

/* Common start of the list handlers: kv_begin, then maxresults and the
 * decoded $skiptoken; 0, or -1 with the error written. */
static int kv_begin_list(emu_call *c, const char *key_name, const kv_perm *p, emu_vault *v, int *max,
                         char after[EMU_ID_MAX + 1]) {
  if(kv_begin(c, v, key_name, p))
    return -1;
  *max = max_results(c);
  return *max < 0 || skip_token(c, after, EMU_ID_MAX + 1) ? -1 : 0;
}

/* Answers one page of items; more: with a nextLink to path continuing after token. */
static void reply_page(emu_call *c, const emu_vault *v, json_t *items, int more, const char *path, const char *token,
                       int max) {
  json_t *page = json_pack("{s:o}", "value", items);
  if(more)
    next_link(c, v, path, token, max, page);
  else
    json_object_set_new(page, "nextLink", json_null());
  emu_reply_json(c, 200, page);
}

/* A page of key names in name order: the live keys, or the soft-deleted ones
 * with their deletion dates. */
static void list_names(emu_call *c, int deleted) {
  emu_vault v;
  int max;
  char after[EMU_ID_MAX + 1];
  if(kv_begin_list(c, NULL, deleted ? &P_DEL_READ : &P_LIST, &v, &max, after))
    return;
  sqlite3_stmt *st = emu_sql(c->e, deleted ? "SELECT name, deleted, purge FROM kv_deleted WHERE vault=? AND name > ?"
                                             " COLLATE NOCASE ORDER BY name COLLATE NOCASE LIMIT ?"
                                           : "SELECT DISTINCT name FROM kv_keys k WHERE vault=? AND name > ? COLLATE NOCASE"
                                             " AND NOT EXISTS (SELECT 1 FROM kv_deleted d WHERE d.vault=k.vault AND"
                                             " d.name=k.name) ORDER BY name COLLATE NOCASE LIMIT ?");
  if(!st) {
    emu_kv_error(c, 500, "InternalError", NULL, "State error.");
    return;
  }
  sqlite3_bind_text(st, 1, v.name, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, after, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 3, max + 1);
  json_t *items = json_array();
  char last[EMU_ID_MAX] = "";
  int n = 0, more = 0;
  while(sqlite3_step(st) == SQLITE_ROW) {
    if(n == max) {
      more = 1;
      break;
    }
    char nm[EMU_ID_MAX];
    snprintf(nm, sizeof nm, "%s", emu_col_text(st, 0));
    int64_t del = deleted ? sqlite3_column_int64(st, 1) : 0, purge = deleted ? sqlite3_column_int64(st, 2) : 0;
    kv_key k;
    if(kv_load(c->e, v.name, nm, NULL, deleted, &k)) {
      json_t *it = item_json(c, &v, &k, 0);
      if(deleted)
        add_deleted_fields(c, &v, it, k.name, del, purge);
      json_array_append_new(items, it);
      kv_key_free(&k);
    }
    snprintf(last, sizeof last, "%s", nm);
    n++;
  }
  sqlite3_finalize(st);
  reply_page(c, &v, items, more, deleted ? "/deletedkeys" : "/keys", last, max);
}

static void h_list(emu_call *c) { list_names(c, 0); }

static void h_versions(emu_call *c) {
  emu_vault v;
  const char *name = emu_var(c, "name");
  int max;
  char after[EMU_ID_MAX + 1];
  if(kv_begin_list(c, name, &P_LIST, &v, &max, after))
    return;
  if(name_deleted(c->e, v.name, name)) {
    key_not_found(c, name, NULL);
    return;
  }
  sqlite3_stmt *st = emu_sql(c->e, "SELECT " KEY_COLS " FROM kv_keys WHERE vault=? AND name=? AND seq > ?"
                                   " ORDER BY seq LIMIT ?");
  if(!st) {
    emu_kv_error(c, 500, "InternalError", NULL, "State error.");
    return;
  }
  sqlite3_bind_text(st, 1, v.name, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, after[0] ? strtoll(after, NULL, 10) : 0);
  sqlite3_bind_int(st, 4, max + 1);
  json_t *items = json_array();
  int n = 0, more = 0;
  int64_t last = 0;
  while(sqlite3_step(st) == SQLITE_ROW) {
    if(n == max) {
      more = 1;
      break;
    }
    kv_key k;
    if(row_to_key(st, &k)) {
      json_array_append_new(items, item_json(c, &v, &k, 1));
      last = k.seq;
      kv_key_free(&k);
    }
    n++;
  }
  sqlite3_finalize(st);
  if(n == 0 && !after[0]) {
    json_decref(items);
    key_not_found(c, name, NULL);
    return;
  }
  char tok[32], path[EMU_ID_MAX + 32];
  snprintf(tok, sizeof tok, "%lld", (long long)last);
  snprintf(path, sizeof path, "/keys/%s/versions", name);
  reply_page(c, &v, items, more, path, tok, max);
}

/* wrapkey / unwrapkey / encrypt / decrypt */
static void crypto_op(emu_call *c, const kv_perm *p, int decrypt) {
  emu_vault v;
  json_t *body = NULL;
  kv_key k;
  if(kv_begin_key(c, p, emu_var(c, "version"), &v, &body, &k))
    return;
  sq_buf in, out, enc;
  sq_buf_init(&in, 4096);
  sq_buf_init(&out, 4096);
  sq_buf_init(&enc, 8192);
  const char *algs = sq_json_str(body, "alg"), *val = sq_json_str(body, "value");
  int alg = kvc_alg(algs);
  int64_t now = c->now_ms / 1000;
  if(!alg) {
    emu_kv_error(c, 400, "BadParameter", NULL, "Invalid algorithm '%.32s' for an RSA key (RSA-OAEP, RSA-OAEP-256, RSA1_5).",
                 algs ? algs : "(missing)");
    goto out;
  }
  if(!val || sq_b64_decode(val, strlen(val), &in)) {
    emu_kv_error(c, 400, "BadParameter", NULL, "The parameter 'value' must be base64url.");
    goto out;
  }
  if(!has_op(&k, p->label)) {
    emu_kv_error(c, 403, "Forbidden", "KeyOperationForbidden", "Operation %s is not permitted on this key (key_ops).",
                 p->label);
    goto out;
  }
  if(!k.enabled) {
    emu_kv_error(c, 403, "Forbidden", "KeyDisabled", "Operation %s is not allowed on a disabled key.", p->label);
    goto out;
  }
  if(k.has_exp && k.exp <= now) {
    emu_kv_error(c, 403, "Forbidden", "KeyExpired", "Operation %s is not allowed on an expired key.", p->label);
    goto out;
  }
  if(k.has_nbf && k.nbf > now) {
    emu_kv_error(c, 403, "Forbidden", "KeyNotYetValid", "Operation %s is not allowed on a key that is not yet valid.",
                 p->label);
    goto out;
  }
  sq_code rc = decrypt ? kvc_rsa_decrypt(k.pkey, alg, in.ptr, in.len, &out)
                       : kvc_rsa_encrypt(k.pkey, alg, in.ptr ? in.ptr : "", in.len, &out);
  if(rc) {
    emu_kv_error(c, 400, "BadParameter", NULL,
                 decrypt ? "The value could not be decrypted with this key and algorithm."
                         : "The value is too long for this key and algorithm.");
    goto out;
  }
  if(sq_b64_encode(out.ptr, out.len, 1, &enc)) {
    emu_kv_error(c, 500, "InternalError", NULL, "Encoding failed.");
    goto out;
  }
  char base[256], kid[512];
  vault_base(c, &v, base, sizeof base);
  snprintf(kid, sizeof kid, "%s/keys/%s/%s", base, k.name, k.version);
  emu_reply_json(c, 200, json_pack("{s:s,s:s}", "kid", kid, "value", enc.ptr));
out:
  sq_buf_free_wipe(&in);
  sq_buf_free_wipe(&out);
  sq_buf_free_wipe(&enc);
  kv_key_free(&k);
  json_decref(body);
}

static void h_wrap(emu_call *c) { crypto_op(c, &P_WRAP, 0); }
static void h_unwrap(emu_call *c) { crypto_op(c, &P_UNWRAP, 1); }
static void h_encrypt(emu_call *c) { crypto_op(c, &P_ENCRYPT, 0); }
static void h_decrypt(emu_call *c) { crypto_op(c, &P_DECRYPT, 1); }

/* ---- backup / restore ---- */

static void h_backup(emu_call *c) {
  emu_vault v;
  const char *name = emu_var(c, "name");
  if(kv_begin(c, &v, name, &P_BACKUP))
    return;
  if(name_deleted(c->e, v.name, name)) {
    key_not_found(c, name, NULL);
    return;
  }
  char geo[EMU_ID_MAX];
  emu_region_geography(c->e, v.region, geo, sizeof geo);
  json_t *versions = json_array();
  sqlite3_stmt *st = emu_sql(c->e, "SELECT " KEY_COLS " FROM kv_keys WHERE vault=? AND name=? ORDER BY seq");
  char stored[EMU_ID_MAX] = "";
  if(st) {
    sqlite3_bind_text(st, 1, v.name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    while(sqlite3_step(st) == SQLITE_ROW) {
      sq_buf der;
      sq_buf_init(&der, 32768);
      snprintf(stored, sizeof stored, "%s", emu_col_text(st, 0));
      if(!sq_b64_encode(sqlite3_column_blob(st, 11), (size_t)sqlite3_column_bytes(st, 11), 1, &der)) {
        json_t *ver = json_pack("{s:s,s:I,s:s,s:s,s:i,s:s,s:I,s:I,s:s}", "version", emu_col_text(st, 1), "seq",
                                (json_int_t)sqlite3_column_int64(st, 2), "kty", emu_col_text(st, 3), "key_ops",
                                emu_col_text(st, 4), "enabled", sqlite3_column_int(st, 6), "tags",
                                emu_col_text(st, 5), "created", (json_int_t)sqlite3_column_int64(st, 9), "updated",
                                (json_int_t)sqlite3_column_int64(st, 10), "der", der.ptr);
        if(sqlite3_column_type(st, 7) != SQLITE_NULL)
          json_object_set_new(ver, "nbf", json_integer(sqlite3_column_int64(st, 7)));
        if(sqlite3_column_type(st, 8) != SQLITE_NULL)
          json_object_set_new(ver, "exp", json_integer(sqlite3_column_int64(st, 8)));
        json_array_append_new(versions, ver);
      }
      sq_buf_free_wipe(&der);
    }
    sqlite3_finalize(st);
  }
  if(!json_array_size(versions)) {
    json_decref(versions);
    key_not_found(c, name, NULL);
    return;
  }
  json_t *doc = json_pack("{s:i,s:s,s:s,s:s,s:s,s:o}", "v", 1, "subscription", v.sub, "geography", geo, "vault",
                          v.name, "name", stored, "versions", versions);
  char *plain = json_dumps(doc, JSON_COMPACT);
  json_decref(doc);
  sq_buf blob, b64;
  sq_buf_init(&blob, 16u << 20);
  sq_buf_init(&b64, 24u << 20);
  if(!plain || kvc_seal(c->e->backup_key, plain, strlen(plain), &blob) ||
     sq_b64_encode(blob.ptr, blob.len, 1, &b64))
    emu_kv_error(c, 500, "InternalError", NULL, "Cannot build the backup.");
  else
    emu_reply_json(c, 200, json_pack("{s:s}", "value", b64.ptr));
  if(plain) {
    sq_wipe(plain, strlen(plain));
    free(plain);
  }
  sq_buf_free(&blob);
  sq_buf_free(&b64);
}

static void h_restore(emu_call *c) {
  emu_vault v;
  if(kv_begin(c, &v, NULL, &P_RESTORE))
    return;
  json_t *body = NULL, *doc = NULL;
  if(emu_body_json(c, 0, &body))
    return;
  const char *val = sq_json_str(body, "value");
  sq_buf blob, plain;
  sq_buf_init(&blob, 16u << 20);
  sq_buf_init(&plain, 16u << 20);
  if(!val) {
    emu_kv_error(c, 400, "BadParameter", NULL, "The parameter 'value' (the backup blob) is required.");
    goto out;
  }
  if(sq_b64_decode(val, strlen(val), &blob) || kvc_open(c->e->backup_key, blob.ptr, blob.len, &plain) ||
     !(doc = json_loadb(plain.ptr, plain.len, 0, NULL)) || json_integer_value(json_object_get(doc, "v")) != 1) {
    emu_kv_error(c, 400, "BadParameter", NULL, "Backup blob contains invalid or corrupt data; cannot decrypt backup blob.");
    goto out;
  }
  char geo[EMU_ID_MAX];
  emu_region_geography(c->e, v.region, geo, sizeof geo);
  const char *bsub = sq_json_str(doc, "subscription"), *bgeo = sq_json_str(doc, "geography");
  const char *name = sq_json_str(doc, "name");
  if(!bsub || !bgeo || !name || strcasecmp(bsub, v.sub) || strcasecmp(bgeo, geo)) {
    emu_kv_error(c, 400, "BadParameter", NULL,
                 "Cannot decrypt backup blob. A key backup can only be restored to a vault in the same subscription "
                 "and the same Azure geography (backup: subscription %.64s, geography %.32s; this vault: subscription "
                 "%.64s, geography %.32s).",
                 bsub ? bsub : "?", bgeo ? bgeo : "?", v.sub, geo);
    goto out;
  }
  if(deleted_conflict(c, &v, name))
    goto out;
  kv_key probe;
  if(kv_load(c->e, v.name, name, NULL, 1, &probe)) {
    kv_key_free(&probe);
    emu_kv_error(c, 409, "Conflict", NULL, "There is already a key named %.200s in this vault; restore needs the name to be free.",
                 name);
    goto out;
  }
  emu_exec(c->e, "SAVEPOINT restore", NULL);
  size_t i;
  json_t *ver;
  int failed = 0, count = 0;
  json_array_foreach(json_object_get(doc, "versions"), i, ver) {
    kv_key k;
    memset(&k, 0, sizeof k);
    sq_buf der;
    sq_buf_init(&der, 32768);
    const char *d = sq_json_str(ver, "der");
    snprintf(k.name, sizeof k.name, "%s", name);
    snprintf(k.version, sizeof k.version, "%s", sq_json_str(ver, "version") ? sq_json_str(ver, "version") : "");
    snprintf(k.kty, sizeof k.kty, "%s", sq_json_str(ver, "kty") ? sq_json_str(ver, "kty") : "RSA");
    k.seq = sq_json_int(ver, "seq", (int64_t)i + 1);
    k.key_ops = json_loads(sq_json_str(ver, "key_ops") ? sq_json_str(ver, "key_ops") : "[]", 0, NULL);
    const char *tg = sq_json_str(ver, "tags");
    k.tags = tg && *tg ? json_loads(tg, 0, NULL) : NULL;
    k.enabled = (int)sq_json_int(ver, "enabled", 1);
    k.has_nbf = json_is_integer(json_object_get(ver, "nbf"));
    k.nbf = sq_json_int(ver, "nbf", 0);
    k.has_exp = json_is_integer(json_object_get(ver, "exp"));
    k.exp = sq_json_int(ver, "exp", 0);
    k.created = sq_json_int(ver, "created", 0);
    k.updated = sq_json_int(ver, "updated", 0);
    if(!d || sq_b64_decode(d, strlen(d), &der) || kvc_from_der(der.ptr, der.len, &k.pkey) || !k.key_ops ||
       kv_store(c->e, v.name, &k))
      failed = 1;
    else
      count++;
    sq_buf_free_wipe(&der);
    kv_key_free(&k);
    if(failed)
      break;
  }
  if(failed || !count) {
    emu_exec(c->e, "ROLLBACK TO restore; RELEASE restore", NULL);
    emu_kv_error(c, 400, "BadParameter", NULL, "Backup blob contains invalid or corrupt data.");
    goto out;
  }
  emu_exec(c->e, "RELEASE restore", NULL);
  kv_key k;
  if(kv_load(c->e, v.name, name, NULL, 0, &k)) {
    reply_bundle(c, &v, &k);
    kv_key_free(&k);
  } else {
    emu_kv_error(c, 500, "InternalError", NULL, "Restore lost the key.");
  }
out:
  sq_buf_free(&blob);
  sq_buf_free_wipe(&plain);
  json_decref(doc);
  json_decref(body);
}

/* ---- rotation ---- */

/* ISO 8601 duration (PnYnMnDTnHnMnS, months = 30 days, years = 365 days) -> seconds; -1 if malformed. */
static int64_t iso_duration(const char *s) {
  if(!s || *s != 'P')
    return -1;
  s++;
  int64_t total = 0;
  int time = 0, any = 0;
  while(*s) {
    if(*s == 'T') {
      time = 1;
      s++;
      continue;
    }
    char *end;
    long long n = strtoll(s, &end, 10);
    if(end == s || n < 0 || n > 100000)
      return -1;
    int64_t unit;
    switch(*end) {
    case 'Y': unit = time ? -1 : 365 * 86400; break;
    case 'M': unit = time ? 60 : 30 * 86400; break;
    case 'W': unit = time ? -1 : 7 * 86400; break;
    case 'D': unit = time ? -1 : 86400; break;
    case 'H': unit = time ? 3600 : -1; break;
    case 'S': unit = time ? 1 : -1; break;
    default: unit = -1;
    }
    if(unit < 0)
      return -1;
    total += n * unit;
    any = 1;
    s = end + 1;
  }
  return any ? total : -1;
}

static json_t *load_policy(emu *e, const char *vault, const char *name, int64_t *created, int64_t *updated) {
  sqlite3_stmt *st = emu_sql(e, "SELECT body, created, updated FROM kv_rotation_policies WHERE vault=? AND name=?");
  if(!st)
    return NULL;
  sqlite3_bind_text(st, 1, vault, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
  json_t *p = NULL;
  if(sqlite3_step(st) == SQLITE_ROW) {
    p = json_loads(emu_col_text(st, 0), 0, NULL);
    if(created)
      *created = sqlite3_column_int64(st, 1);
    if(updated)
      *updated = sqlite3_column_int64(st, 2);
  }
  sqlite3_finalize(st);
  return p;
}

/* Creates a new version of k (same type, size, operations, tags) at time now. */
static sq_code rotate_key(emu *e, const char *vault, const kv_key *k, int64_t now, kv_key *out) {
  memset(out, 0, sizeof *out);
  sq_code rc = kvc_generate(kvc_bits(k->pkey), &out->pkey, NULL);
  if(rc)
    return rc;
  out->key_ops = json_deep_copy(k->key_ops);
  out->tags = k->tags ? json_deep_copy(k->tags) : NULL;
  out->enabled = 1;
  json_t *pol = load_policy(e, vault, k->name, NULL, NULL);
  int64_t expiry = iso_duration(sq_json_str(pol, "attributes.expiryTime"));
  if(expiry > 0) {
    out->has_exp = 1;
    out->exp = now + expiry;
  }
  json_decref(pol);
  return kv_store_new(e, vault, k->name, k->kty, now, out);
}

static void h_rotate(emu_call *c) {
  emu_vault v;
  kv_key k, n;
  if(kv_begin_key(c, &P_ROTATE, NULL, &v, NULL, &k))
    return;
  if(rotate_key(c->e, v.name, &k, c->now_ms / 1000, &n))
    emu_kv_error(c, 500, "InternalError", NULL, "Rotation failed.");
  else
    reply_bundle(c, &v, &n);
  kv_key_free(&n);
  kv_key_free(&k);
}

static json_t *policy_json(emu_call *c, const emu_vault *v, const char *name, json_t *p, int64_t created,
                           int64_t updated) {
  char base[256], id[512];
  vault_base(c, v, base, sizeof base);
  snprintf(id, sizeof id, "%s/keys/%s/rotationpolicy", base, name);
  json_t *out = json_object();
  json_object_set_new(out, "id", json_string(id));
  json_t *la = json_object_get(p, "lifetimeActions");
  json_object_set_new(out, "lifetimeActions",
                      la ? json_deep_copy(la)
                         : json_pack("[{s:{s:s},s:{s:s}}]", "trigger", "timeBeforeExpiry", "P30D", "action", "type",
                                     "Notify"));
  json_t *attrs = json_object();
  const char *exp = sq_json_str(p, "attributes.expiryTime");
  if(exp)
    json_object_set_new(attrs, "expiryTime", json_string(exp));
  if(created)
    json_object_set_new(attrs, "created", json_integer(created));
  if(updated)
    json_object_set_new(attrs, "updated", json_integer(updated));
  json_object_set_new(out, "attributes", attrs);
  return out;
}

static void h_get_policy(emu_call *c) {
  emu_vault v;
  kv_key k;
  if(kv_begin_key(c, &P_GETPOL, NULL, &v, NULL, &k))
    return;
  int64_t cr = 0, up = 0;
  json_t *p = load_policy(c->e, v.name, emu_var(c, "name"), &cr, &up);
  emu_reply_json(c, 200, policy_json(c, &v, k.name, p, cr, up));
  json_decref(p);
  kv_key_free(&k);
}

static void h_set_policy(emu_call *c) {
  emu_vault v;
  json_t *body = NULL;
  kv_key k;
  if(kv_begin_key(c, &P_SETPOL, NULL, &v, &body, &k))
    return;
  json_t *la = json_object_get(body, "lifetimeActions");
  const char *exp = sq_json_str(body, "attributes.expiryTime");
  size_t i;
  json_t *a;
  if(la && !json_is_array(la))
    goto bad;
  json_array_foreach(la, i, a) {
    const char *type = sq_json_str(a, "action.type");
    const char *tac = sq_json_str(a, "trigger.timeAfterCreate"), *tbe = sq_json_str(a, "trigger.timeBeforeExpiry");
    if(!type || (strcasecmp(type, "Rotate") && strcasecmp(type, "Notify")) || (!tac == !tbe) ||
       (tac && iso_duration(tac) <= 0) || (tbe && iso_duration(tbe) <= 0))
      goto bad;
  }
  if(exp && iso_duration(exp) < 28 * 86400) {
    emu_kv_error(c, 400, "BadParameter", NULL, "expiryTime must be at least 28 days (P28D).");
    goto out;
  }
  int64_t now = c->now_ms / 1000, created = now;
  json_t *old = load_policy(c->e, v.name, k.name, &created, NULL);
  json_decref(old);
  json_t *store = json_object();
  if(la)
    json_object_set(store, "lifetimeActions", la);
  if(exp)
    json_object_set_new(store, "attributes", json_pack("{s:s}", "expiryTime", exp));
  char *s = json_dumps(store, JSON_COMPACT);
  sqlite3_stmt *st = emu_sql(c->e, "INSERT OR REPLACE INTO kv_rotation_policies(vault, name, body, created, updated)"
                                   " VALUES(?,?,?,?,?)");
  if(st && s) {
    sqlite3_bind_text(st, 1, v.name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, k.name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, s, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, created);
    sqlite3_bind_int64(st, 5, now);
    sqlite3_step(st);
  }
  sqlite3_finalize(st);
  free(s);
  emu_reply_json(c, 200, policy_json(c, &v, k.name, store, created, now));
  json_decref(store);
  goto out;
bad:
  emu_kv_error(c, 400, "BadParameter", NULL,
               "lifetimeActions must be an array of {trigger: {timeAfterCreate | timeBeforeExpiry: ISO 8601 duration}, "
               "action: {type: Rotate | Notify}}.");
out:
  kv_key_free(&k);
  json_decref(body);
}

/* ---- deleted keys ---- */

static void h_deleted_get(emu_call *c) {
  emu_vault v;
  const char *name = emu_var(c, "name");
  int64_t del, purge;
  kv_key k;
  if(kv_begin_deleted(c, &P_DEL_GET, &v, &del, &purge))
    return;
  if(!kv_load(c->e, v.name, name, NULL, 1, &k)) {
    deleted_not_found(c, name);
    return;
  }
  json_t *b = bundle_json(c, &v, &k);
  if(b)
    add_deleted_fields(c, &v, b, k.name, del, purge);
  emu_reply_json(c, b ? 200 : 500, b);
  kv_key_free(&k);
}

static void h_deleted_list(emu_call *c) { list_names(c, 1); }

static void h_purge(emu_call *c) {
  emu_vault v;
  int64_t del, purge;
  if(kv_begin_deleted(c, &P_PURGE, &v, &del, &purge))
    return;
  if(v.purge_protection) {
    emu_kv_error(c, 403, "Forbidden", "PurgeProtectionEnabled",
                 "Operation \"purge\" is not allowed because purge protection is enabled for this vault. Key Vault "
                 "service will automatically purge it after the retention period has passed.");
    return;
  }
  purge_name(c->e, v.name, emu_var(c, "name"));
  emu_reply_empty(c, 204);
}

static void h_recover(emu_call *c) {
  emu_vault v;
  const char *name = emu_var(c, "name");
  int64_t del, purge;
  if(kv_begin_deleted(c, &P_RECOVER, &v, &del, &purge))
    return;
  exec_vault_name(c->e, "DELETE FROM kv_deleted WHERE vault=? AND name=?", v.name, name);
  kv_key k;
  if(!kv_load(c->e, v.name, name, NULL, 0, &k)) {
    key_not_found(c, name, NULL);
    return;
  }
  reply_bundle(c, &v, &k);
  kv_key_free(&k);
}

/* ---- time-driven behaviour: scheduled purge and rotation policies ---- */

void emu_kv_tick(emu *e) {
  int64_t now = emu_now_s(e);
  sqlite3_stmt *st = emu_sql(e, "SELECT vault, name FROM kv_deleted WHERE purge <= ? LIMIT 100");
  if(st) {
    sqlite3_bind_int64(st, 1, now);
    char pairs[100][2][EMU_ID_MAX];
    int n = 0;
    while(n < 100 && sqlite3_step(st) == SQLITE_ROW) {
      snprintf(pairs[n][0], EMU_ID_MAX, "%s", emu_col_text(st, 0));
      snprintf(pairs[n][1], EMU_ID_MAX, "%s", emu_col_text(st, 1));
      n++;
    }
    sqlite3_finalize(st);
    for(int i = 0; i < n; i++)
      purge_name(e, pairs[i][0], pairs[i][1]);
  }
  /* Rotation policies with a Rotate action: timeAfterCreate from the latest
   * version's creation, timeBeforeExpiry before its expiry. */
  st = emu_sql(e, "SELECT p.vault, p.name, p.body FROM kv_rotation_policies p WHERE p.body LIKE '%otate%'"
                  " AND NOT EXISTS (SELECT 1 FROM kv_deleted d WHERE d.vault=p.vault AND d.name=p.name)");
  if(!st)
    return;
  typedef struct due {
    char vault[EMU_ID_MAX], name[EMU_ID_MAX];
    int64_t after_create, before_expiry;
  } due;
  due d[64];
  int nd = 0;
  while(nd < 64 && sqlite3_step(st) == SQLITE_ROW) {
    json_t *p = json_loads(emu_col_text(st, 2), 0, NULL);
    size_t i;
    json_t *a;
    int64_t ac = -1, be = -1;
    json_array_foreach(json_object_get(p, "lifetimeActions"), i, a) {
      const char *type = sq_json_str(a, "action.type");
      if(!type || strcasecmp(type, "Rotate"))
        continue;
      if(sq_json_str(a, "trigger.timeAfterCreate"))
        ac = iso_duration(sq_json_str(a, "trigger.timeAfterCreate"));
      if(sq_json_str(a, "trigger.timeBeforeExpiry"))
        be = iso_duration(sq_json_str(a, "trigger.timeBeforeExpiry"));
    }
    json_decref(p);
    if(ac > 0 || be > 0) {
      snprintf(d[nd].vault, EMU_ID_MAX, "%s", emu_col_text(st, 0));
      snprintf(d[nd].name, EMU_ID_MAX, "%s", emu_col_text(st, 1));
      d[nd].after_create = ac;
      d[nd].before_expiry = be;
      nd++;
    }
  }
  sqlite3_finalize(st);
  for(int i = 0; i < nd; i++) {
    kv_key k, n;
    if(!kv_load(e, d[i].vault, d[i].name, NULL, 0, &k))
      continue;
    int64_t when = -1;
    if(d[i].after_create > 0)
      when = k.created + d[i].after_create;
    if(d[i].before_expiry > 0 && k.has_exp && (when < 0 || k.exp - d[i].before_expiry < when))
      when = k.exp - d[i].before_expiry;
    if(when >= 0 && when <= now) {
      if(!rotate_key(e, d[i].vault, &k, now, &n))
        SQ_INFO("emulator", "rotation policy rotated key %s/%s to version %s", d[i].vault, k.name, n.version);
      kv_key_free(&n);
    }
    kv_key_free(&k);
  }
}

sq_code emu_kv_seed_key(emu *e, const char *vault, const json_t *spec, const char *base_dir, sq_err *err) {
  static const char *const allowed[] = {"name", "kty", "size", "keyOps", "pemFile", "enabled", "nbf", "exp", NULL};
  const char *k;
  json_t *v;
  if(!json_is_object(spec))
    return sq_err_set(err, SQ_EINVAL, "vaults[%s].keys[] must be mappings", vault);
  json_object_foreach((json_t *)spec, k, v) {
    int ok = 0;
    for(int i = 0; allowed[i]; i++)
      ok |= !strcmp(allowed[i], k);
    if(!ok)
      return sq_err_set(err, SQ_EINVAL, "vaults[%s].keys[]: unknown field '%s'", vault, k);
  }
  const char *name = sq_json_str(spec, "name"), *kty = sq_json_str(spec, "kty"), *pem = sq_json_str(spec, "pemFile");
  int bits = (int)sq_json_int(spec, "size", 2048);
  if(!name || !*name || strlen(name) > 127 || strspn(name, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-") != strlen(name))
    return sq_err_set(err, SQ_EINVAL, "vaults[%s].keys[]: a valid name is required", vault);
  if(kty && strcmp(kty, "RSA") && strcmp(kty, "RSA-HSM"))
    return sq_err_set(err, SQ_EINVAL, "vaults[%s].keys[%s]: kty must be RSA or RSA-HSM", vault, name);
  if(!pem && bits != 2048 && bits != 3072 && bits != 4096)
    return sq_err_set(err, SQ_EINVAL, "vaults[%s].keys[%s]: size must be 2048, 3072 or 4096", vault, name);
  kv_key key;
  memset(&key, 0, sizeof key);
  sq_code rc = SQ_OK;
  if(pem) {
    char path[4096];
    snprintf(path, sizeof path, "%s%s%s", pem[0] == '/' || !base_dir ? "" : base_dir,
             pem[0] == '/' || !base_dir ? "" : "/", pem);
    sq_buf b;
    sq_buf_init(&b, 1u << 20);
    if((rc = sq_buf_read_file(&b, path, err))) {
      sq_buf_free(&b);
      return rc;
    }
    BIO *bio = BIO_new_mem_buf(b.ptr, (int)b.len);
    key.pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    sq_buf_free_wipe(&b);
    if(!key.pkey || EVP_PKEY_get_base_id(key.pkey) != EVP_PKEY_RSA)
      rc = sq_err_set(err, SQ_EINVAL, "vaults[%s].keys[%s]: %s is not an RSA private key (PEM)", vault, name, path);
  } else {
    rc = kvc_generate(bits, &key.pkey, err);
  }
  json_t *ops = json_object_get(spec, "keyOps");
  key.key_ops = ops ? json_deep_copy(ops) : NULL;
  if(!rc && !key.key_ops)
    key.key_ops = default_key_ops();
  if(!rc && !json_is_array(key.key_ops))
    rc = sq_err_set(err, SQ_EINVAL, "vaults[%s].keys[%s]: keyOps must be a list", vault, name);
  if(!rc) {
    key.enabled = sq_json_bool(spec, "enabled", 1);
    key.has_nbf = json_is_integer(json_object_get(spec, "nbf"));
    key.nbf = sq_json_int(spec, "nbf", 0);
    key.has_exp = json_is_integer(json_object_get(spec, "exp"));
    key.exp = sq_json_int(spec, "exp", 0);
    if(kv_store_new(e, vault, name, kty ? kty : "RSA", emu_now_s(e), &key))
      rc = sq_err_set(err, SQ_EIO, "vaults[%s].keys[%s]: cannot store", vault, name);
  }
  kv_key_free(&key);
  return rc;
}

#define KV(m, p, f) {EMU_FAM_KV, m, p, f, EMU_R_AUTH, NULL}

const emu_route emu_kv_routes[] = {
    KV("GET", "/keys", h_list),
    KV("POST", "/keys/restore", h_restore),
    KV("POST", "/keys/{name}/create", h_create),
    KV("PUT", "/keys/{name}", h_import),
    KV("DELETE", "/keys/{name}", h_delete),
    KV("GET", "/keys/{name}", h_get),
    KV("PATCH", "/keys/{name}", h_update),
    KV("GET", "/keys/{name}/versions", h_versions),
    KV("POST", "/keys/{name}/backup", h_backup),
    KV("POST", "/keys/{name}/rotate", h_rotate),
    KV("GET", "/keys/{name}/rotationpolicy", h_get_policy),
    KV("PUT", "/keys/{name}/rotationpolicy", h_set_policy),
    KV("GET", "/keys/{name}/{version}", h_get),
    KV("PATCH", "/keys/{name}/{version}", h_update),
    KV("POST", "/keys/{name}/{version}/wrapkey", h_wrap),
    KV("POST", "/keys/{name}/{version}/unwrapkey", h_unwrap),
    KV("POST", "/keys/{name}/{version}/encrypt", h_encrypt),
    KV("POST", "/keys/{name}/{version}/decrypt", h_decrypt),
    /* sq_httpd collapses "//", so "/keys/NAME//wrapkey" (empty version) arrives like this: latest version */
    KV("POST", "/keys/{name}/wrapkey", h_wrap),
    KV("POST", "/keys/{name}/unwrapkey", h_unwrap),
    KV("POST", "/keys/{name}/encrypt", h_encrypt),
    KV("POST", "/keys/{name}/decrypt", h_decrypt),
    KV("GET", "/deletedkeys", h_deleted_list),
    KV("GET", "/deletedkeys/{name}", h_deleted_get),
    KV("DELETE", "/deletedkeys/{name}", h_purge),
    KV("POST", "/deletedkeys/{name}/recover", h_recover),
    {0, NULL, NULL, NULL, 0, NULL},
};
