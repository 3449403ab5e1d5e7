/* sql.c — typed Microsoft.Sql operations; see include/sqltde/azure/sql.h. */
#include "sqltde/azure/sql.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sqltde/azure/keyvault.h"
#include "sqltde/buf.h"
#include "sqltde/clock.h"
#include "sqltde/http.h"
#include "sqltde/jsonx.h"

#define API SQ_SQL_API_VERSION

/* ---- parsing helpers ---- */

#define STR(obj, path, field, what)                                                                \
  do {                                                                                             \
    sq_code rc_ = sq_azure_json_strcpy((obj), (path), (field), sizeof(field), (what), err);        \
    if(rc_)                                                                                        \
      return rc_;                                                                                  \
  } while(0)

/* RFC 3339 date at path into *out (0 when absent). ARM sometimes omits the
 * zone designator; such values are UTC. */
static sq_code date_at(const json_t *obj, const char *path, int64_t *out, const char *what,
                       sq_err *err) {
  *out = 0;
  json_t *v = sq_json_path(obj, path);
  if(!v || json_is_null(v))
    return SQ_OK;
  if(!json_is_string(v))
    return sq_err_set(err, SQ_EPARSE, "%s: %s is not a date string", what, path);
  const char *s = json_string_value(v);
  int64_t t = sq_parse_rfc3339(s);
  if(t < 0 && strlen(s) < 60) {
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%sZ", s);
    t = sq_parse_rfc3339(tmp);
  }
  if(t < 0)
    return sq_err_set(err, SQ_EPARSE, "%s: %s is not an RFC 3339 date", what, path);
  *out = t;
  return SQ_OK;
}

static int tri_bool(const json_t *obj, const char *path) {
  json_t *v = sq_json_path(obj, path);
  return json_is_boolean(v) ? json_is_true(v) : -1;
}

static sq_code require_id(const json_t *j, char *id, size_t idlen, const char *what, sq_err *err) {
  if(!json_is_object(j))
    return sq_err_set(err, SQ_EPARSE, "%s: not a JSON object", what);
  sq_code rc = sq_azure_json_strcpy(j, "id", id, idlen, what, err);
  if(rc)
    return rc;
  if(!id[0])
    return sq_err_set(err, SQ_EPARSE, "%s: no id", what);
  return SQ_OK;
}

static sq_code parse_identity(const json_t *j, sq_sql_identity *out, const char *what, sq_err *err) {
  memset(out, 0, sizeof *out);
  const json_t *idn = json_object_get(j, "identity");
  if(!idn || json_is_null(idn))
    return SQ_OK;
  if(!json_is_object(idn))
    return sq_err_set(err, SQ_EPARSE, "%s: identity is not an object", what);
  STR(idn, "type", out->type, what);
  STR(idn, "tenantId", out->tenant_id, what);
  STR(idn, "principalId", out->principal_id, what);
  const json_t *umis = json_object_get(idn, "userAssignedIdentities");
  if(umis && !json_is_null(umis) && !json_is_object(umis))
    return sq_err_set(err, SQ_EPARSE, "%s: identity.userAssignedIdentities is not an object", what);
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)umis, k, v) {
    if(out->n_umis >= SQ_SQL_MAX_UMIS)
      return sq_err_set(err, SQ_ETOOBIG, "%s: more than %d user-assigned identities", what,
                        SQ_SQL_MAX_UMIS);
    sq_sql_umi *u = &out->umis[out->n_umis];
    if(strlen(k) >= sizeof u->id)
      return sq_err_set(err, SQ_ETOOBIG, "%s: identity id too long", what);
    snprintf(u->id, sizeof u->id, "%s", k);
    if(json_is_object(v)) {
      STR(v, "principalId", u->principal_id, what);
      STR(v, "clientId", u->client_id, what);
    }
    out->n_umis++;
  }
  return SQ_OK;
}

static sq_code parse_keys(const json_t *props, sq_sql_db_key **keys, size_t *n, int *present,
                          const char *what, sq_err *err) {
  *keys = NULL;
  *n = 0;
  if(present)
    *present = 0;
  const json_t *m = json_object_get(props, "keys");
  if(!m || json_is_null(m))
    return SQ_OK;
  if(!json_is_object(m))
    return sq_err_set(err, SQ_EPARSE, "%s: properties.keys is not an object", what);
  if(present)
    *present = 1;
  size_t count = json_object_size(m);
  if(count > SQ_SQL_MAX_KEYS)
    return sq_err_set(err, SQ_ETOOBIG, "%s: more than %d keys", what, SQ_SQL_MAX_KEYS);
  if(!count)
    return SQ_OK;
  sq_sql_db_key *arr = calloc(count, sizeof *arr);
  if(!arr)
    return sq_err_set(err, SQ_ENOMEM, "out of memory");
  *keys = arr; /* owned by the caller's struct from here on, freed with it */
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)m, k, v) {
    sq_sql_db_key *dk = &arr[*n];
    if(strlen(k) >= sizeof dk->uri)
      return sq_err_set(err, SQ_ETOOBIG, "%s: key URI too long", what);
    snprintf(dk->uri, sizeof dk->uri, "%s", k);
    if(json_is_object(v)) {
      STR(v, "type", dk->type, what);
      STR(v, "thumbprint", dk->thumbprint, what);
      STR(v, "subregion", dk->subregion, what);
      STR(v, "keyVersion", dk->key_version, what);
      sq_code rc = date_at(v, "creationDate", &dk->creation_date, what, err);
      if(rc)
        return rc;
    } else if(!json_is_null(v)) {
      return sq_err_set(err, SQ_EPARSE, "%s: keys entry is not an object", what);
    }
    (*n)++;
  }
  return SQ_OK;
}

void sq_sql_database_free(sq_sql_database *d) {
  if(!d)
    return;
  free(d->keys);
  d->keys = NULL;
  d->n_keys = 0;
}

static sq_code db_parse(const json_t *j, sq_sql_database *out, sq_err *err) {
  static const char *what = "database";
  sq_code rc;
  if((rc = require_id(j, out->id, sizeof out->id, what, err)))
    return rc;
  STR(j, "name", out->name, what);
  STR(j, "location", out->location, what);
  STR(j, "kind", out->kind, what);
  STR(j, "sku.name", out->sku_name, what);
  STR(j, "sku.tier", out->sku_tier, what);
  if((rc = parse_identity(j, &out->identity, what, err)))
    return rc;
  const json_t *p = json_object_get(j, "properties");
  if(p && !json_is_object(p))
    return sq_err_set(err, SQ_EPARSE, "%s: properties is not an object", what);
  if(!p)
    return SQ_OK;
  STR(p, "status", out->status, what);
  STR(p, "databaseId", out->database_id, what);
  STR(p, "createMode", out->create_mode, what);
  STR(p, "secondaryType", out->secondary_type, what);
  STR(p, "encryptionProtector", out->encryption_protector, what);
  STR(p, "federatedClientId", out->federated_client_id, what);
  STR(p, "failoverGroupId", out->failover_group_id, what);
  STR(p, "sourceDatabaseId", out->source_database_id, what);
  STR(p, "provisioningState", out->provisioning_state, what);
  out->auto_rotation = tri_bool(p, "encryptionProtectorAutoRotation");
  if((rc = date_at(p, "creationDate", &out->creation_date, what, err)) ||
     (rc = date_at(p, "earliestRestoreDate", &out->earliest_restore_date, what, err)))
    return rc;
  return parse_keys(p, &out->keys, &out->n_keys, &out->keys_present, what, err);
}

sq_code sq_sql_db_parse(const json_t *j, sq_sql_database *out, sq_err *err) {
  memset(out, 0, sizeof *out);
  out->auto_rotation = -1;
  sq_code rc = db_parse(j, out, err);
  if(rc)
    sq_sql_database_free(out);
  return rc;
}

/* ---- ids and queries ---- */

static sq_code add_seg(sq_buf *b, const char *seg) {
  if(!seg || !*seg || !strcmp(seg, ".") || !strcmp(seg, ".."))
    return SQ_EINVAL;
  sq_code rc = sq_buf_add(b, "/", 1);
  return rc ? rc : sq_url_escape(seg, b);
}

static sq_code finish_id(sq_buf *b, sq_code rc, char *out, size_t outlen, sq_err *err) {
  if(!rc && b->len >= outlen)
    rc = SQ_ETOOBIG;
  if(!rc)
    memcpy(out, b->ptr, b->len + 1);
  sq_buf_free(b);
  if(rc == SQ_EINVAL)
    return sq_err_set(err, rc, "resource id: empty or invalid name");
  if(rc)
    return sq_err_set(err, rc, "resource id too long");
  return SQ_OK;
}

static sq_code provider_id(const char *sub, const char *rg, const char *type, const char *name,
                           char *out, size_t outlen, sq_err *err) {
  sq_buf b;
  sq_buf_init(&b, 4096);
  sq_code rc = sq_buf_adds(&b, "/subscriptions");
  if(!rc)
    rc = add_seg(&b, sub);
  if(!rc)
    rc = sq_buf_adds(&b, "/resourceGroups");
  if(!rc)
    rc = add_seg(&b, rg);
  if(!rc)
    rc = sq_buf_addf(&b, "/providers/Microsoft.Sql/%s", type);
  if(!rc)
    rc = add_seg(&b, name);
  return finish_id(&b, rc, out, outlen, err);
}

sq_code sq_sql_server_id(const char *sub, const char *rg, const char *server, char *out,
                         size_t outlen, sq_err *err) {
  return provider_id(sub, rg, "servers", server, out, outlen, err);
}

sq_code sq_sql_mi_id(const char *sub, const char *rg, const char *mi, char *out, size_t outlen,
                     sq_err *err) {
  return provider_id(sub, rg, "managedInstances", mi, out, outlen, err);
}

sq_code sq_sql_database_id(const char *server_id, const char *db, char *out, size_t outlen,
                           sq_err *err) {
  sq_buf b;
  sq_buf_init(&b, 4096);
  sq_code rc = sq_buf_addf(&b, "%s/databases", server_id ? server_id : "");
  if(!rc)
    rc = add_seg(&b, db);
  return finish_id(&b, rc, out, outlen, err);
}

sq_code sq_sql_expand_query(sq_sql_keys_filter f, int64_t at, char *out, size_t outlen,
                            sq_err *err) {
  char raw[128];
  switch(f) {
  case SQ_SQL_KEYS_NONE:
    if(outlen)
      out[0] = '\0';
    return SQ_OK;
  case SQ_SQL_KEYS_ALL:
    snprintf(raw, sizeof raw, "keys");
    break;
  case SQ_SQL_KEYS_CURRENT:
    snprintf(raw, sizeof raw, "keys($filter=pointInTime('current'))");
    break;
  case SQ_SQL_KEYS_AT: {
    if(at <= 0)
      return sq_err_set(err, SQ_EINVAL, "keys filter: no point in time");
    char ts[32];
    sq_rfc3339(at, ts, sizeof ts);
    snprintf(raw, sizeof raw, "keys($filter=pointInTime('%s'))", ts);
    break;
  }
  default:
    return sq_err_set(err, SQ_EINVAL, "keys filter: unknown");
  }
  sq_buf b;
  sq_buf_init(&b, outlen ? outlen - 1 : 0);
  /* the value is percent-encoded (azure-api.md §1.5: the docs show it raw,
   * libcurl-style clients must encode '(' ')' '\'' ':' '$' '=') */
  sq_code rc = sq_buf_adds(&b, "$expand=");
  if(!rc)
    rc = sq_url_escape(raw, &b);
  if(!rc)
    memcpy(out, b.ptr, b.len + 1);
  sq_buf_free(&b);
  if(rc)
    return sq_err_set(err, SQ_ETOOBIG, "keys filter: buffer too small");
  return SQ_OK;
}

sq_code sq_sql_server_key_name(const char *key_uri, char *out, size_t outlen, sq_err *err) {
  char vault[SQ_AZ_URL_MAX], name[SQ_KV_NAME_MAX], version[SQ_KV_VERSION_MAX];
  sq_code rc = sq_kv_split_kid(key_uri, vault, sizeof vault, name, sizeof name, version,
                               sizeof version, err);
  if(rc)
    return rc;
  /* the vault name as the URI spells it (split_kid lower-cases the origin) */
  const char *host = strstr(key_uri, "://") + 3;
  size_t vl = strcspn(host, ".:/");
  int n = version[0] ? snprintf(out, outlen, "%.*s_%s_%s", (int)vl, host, name, version)
                     : snprintf(out, outlen, "%.*s_%s", (int)vl, host, name);
  if(n < 0 || (size_t)n >= outlen)
    return sq_err_set(err, SQ_ETOOBIG, "server key name too long");
  return SQ_OK;
}

static int key_name_valid(const char *s) {
  size_t n = s ? strlen(s) : 0;
  if(!n || n > 255)
    return 0;
  for(size_t i = 0; i < n; i++)
    if(!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '-'))
      return 0;
  return 1;
}

/* ---- databases ---- */

typedef struct db_list_ctx {
  sq_sql_db_fn fn;
  void *ud;
  sq_err *err;
  sq_code rc;
} db_list_ctx;

static int db_item(void *ud, const json_t *item) {
  db_list_ctx *c = ud;
  sq_sql_database d;
  c->rc = sq_sql_db_parse(item, &d, c->err);
  if(c->rc)
    return 1;
  int stop = c->fn(c->ud, &d);
  sq_sql_database_free(&d);
  return stop;
}

sq_code sq_sql_db_get(sq_arm *a, const char *db_id, sq_sql_keys_filter f, int64_t at,
                      sq_sql_database *out, sq_err *err) {
  char q[256];
  memset(out, 0, sizeof *out);
  out->auto_rotation = -1;
  sq_code rc = sq_sql_expand_query(f, at, q, sizeof q, err);
  if(rc)
    return rc;
  json_t *j = NULL;
  rc = sq_arm_get(a, db_id, API, q[0] ? q : NULL, &j, err);
  if(!rc)
    rc = sq_sql_db_parse(j, out, err);
  json_decref(j);
  return rc;
}

static sq_code db_list_path(sq_arm *a, const char *server_id, const char *suffix, const char *op,
                            sq_sql_db_fn fn, void *ud, sq_err *err) {
  char path[SQ_SQL_ID_MAX + 64];
  if(snprintf(path, sizeof path, "%s/%s", server_id, suffix) >= (int)sizeof path)
    return sq_err_set(err, SQ_EINVAL, "server id too long");
  db_list_ctx c = {fn, ud, err, SQ_OK};
  sq_code rc = sq_arm_list(a, path, API, NULL, op, db_item, &c, err);
  return rc ? rc : c.rc;
}

sq_code sq_sql_db_list(sq_arm *a, const char *server_id, sq_sql_db_fn fn, void *ud, sq_err *err) {
  return db_list_path(a, server_id, "databases", "databases.list", fn, ud, err);
}

sq_code sq_sql_db_list_inaccessible(sq_arm *a, const char *server_id, sq_sql_db_fn fn, void *ud,
                                    sq_err *err) {
  return db_list_path(a, server_id, "inaccessibleDatabases", "databases.listInaccessible", fn, ud,
                      err);
}

const char *sq_sql_create_mode_name(sq_sql_create_mode m) {
  static const char *const names[] = {"Default",
                                      "Copy",
                                      "Secondary",
                                      "PointInTimeRestore",
                                      "Restore",
                                      "Recovery",
                                      "RestoreExternalBackup",
                                      "RestoreExternalBackupSecondary",
                                      "RestoreLongTermRetentionBackup",
                                      "OnlineSecondary"};
  if((unsigned)m >= sizeof names / sizeof *names)
    return NULL;
  return names[m];
}

static void set_str(json_t *o, const char *k, const char *v) {
  if(v && *v)
    json_object_set_new(o, k, json_string(v));
}

static void set_date(json_t *o, const char *k, int64_t t) {
  if(t > 0) {
    char ts[32];
    sq_rfc3339(t, ts, sizeof ts);
    json_object_set_new(o, k, json_string(ts));
  }
}

static json_t *umi_identity(const char *set, const char *const *remove) {
  json_t *map = json_object();
  if(set)
    json_object_set_new(map, set, json_object());
  for(const char *const *p = remove; p && *p; p++)
    json_object_set_new(map, *p, json_null());
  json_t *idn = json_object();
  if(set)
    json_object_set_new(idn, "type", json_string("UserAssigned"));
  json_object_set_new(idn, "userAssignedIdentities", map);
  return idn;
}

sq_code sq_sql_db_create_body(const sq_sql_db_create_args *c, json_t **out, sq_err *err) {
  *out = NULL;
  const char *mode = sq_sql_create_mode_name(c->mode);
  if(!mode)
    return sq_err_set(err, SQ_EINVAL, "database create: unknown createMode");
  if(!c->location || !*c->location)
    return sq_err_set(err, SQ_EINVAL, "database create: location is required");
  switch(c->mode) {
  case SQ_SQL_CREATE_COPY:
  case SQ_SQL_CREATE_SECONDARY:
  case SQ_SQL_CREATE_ONLINE_SECONDARY:
    if(!c->source_database_id)
      return sq_err_set(err, SQ_EINVAL, "database create (%s): sourceDatabaseId is required", mode);
    break;
  case SQ_SQL_CREATE_PITR:
    if(!c->source_database_id || c->restore_point_in_time <= 0)
      return sq_err_set(err, SQ_EINVAL,
                        "database create (%s): sourceDatabaseId and restorePointInTime are required",
                        mode);
    break;
  case SQ_SQL_CREATE_RESTORE:
    if(!c->restorable_dropped_database_id &&
       !(c->source_database_id && c->source_database_deletion_date > 0))
      return sq_err_set(err, SQ_EINVAL,
                        "database create (%s): restorableDroppedDatabaseId, or sourceDatabaseId with "
                        "sourceDatabaseDeletionDate, is required",
                        mode);
    break;
  case SQ_SQL_CREATE_RECOVERY:
    if(!c->recoverable_database_id && !c->source_database_id)
      return sq_err_set(err, SQ_EINVAL,
                        "database create (%s): recoverableDatabaseId or sourceDatabaseId is required",
                        mode);
    break;
  case SQ_SQL_CREATE_RESTORE_LTR:
    if(!c->ltr_backup_id && !c->recovery_services_recovery_point_id)
      return sq_err_set(err, SQ_EINVAL,
                        "database create (%s): longTermRetentionBackupResourceId is required", mode);
    break;
  default:
    break;
  }
  int has_keys = (c->keys && c->keys[0]) || (c->encryption_protector && *c->encryption_protector);
  if(has_keys && !c->umi_id)
    return sq_err_set(err, SQ_EINVAL,
                      "database create: database-level keys need a user-assigned identity");
  if(c->secondary_type && strcmp(c->secondary_type, "Geo") && strcmp(c->secondary_type, "Named") &&
     strcmp(c->secondary_type, "Standby"))
    return sq_err_set(err, SQ_EINVAL, "database create: secondaryType must be Geo, Named or Standby");

  json_t *b = json_object(), *p = json_object();
  set_str(b, "location", c->location);
  if(c->sku_name) {
    json_t *sku = json_object();
    set_str(sku, "name", c->sku_name);
    set_str(sku, "tier", c->sku_tier);
    json_object_set_new(b, "sku", sku);
  }
  if(c->umi_id)
    json_object_set_new(b, "identity", umi_identity(c->umi_id, NULL));
  if(c->tags)
    json_object_set(b, "tags", (json_t *)c->tags);
  json_object_set_new(p, "createMode", json_string(mode));
  set_str(p, "sourceDatabaseId", c->source_database_id);
  set_date(p, "restorePointInTime", c->restore_point_in_time);
  set_date(p, "sourceDatabaseDeletionDate", c->source_database_deletion_date);
  set_str(p, "restorableDroppedDatabaseId", c->restorable_dropped_database_id);
  set_str(p, "recoverableDatabaseId", c->recoverable_database_id);
  set_str(p, "longTermRetentionBackupResourceId", c->ltr_backup_id);
  set_str(p, "recoveryServicesRecoveryPointId", c->recovery_services_recovery_point_id);
  set_str(p, "secondaryType", c->secondary_type);
  set_str(p, "elasticPoolId", c->elastic_pool_id);
  set_str(p, "collation", c->collation);
  if(c->max_size_bytes > 0)
    json_object_set_new(p, "maxSizeBytes", json_integer(c->max_size_bytes));
  if(has_keys) {
    json_t *keys = json_object();
    for(const char *const *k = c->keys; k && *k; k++)
      json_object_set_new(keys, *k, json_object());
    /* the protector must be one of the database's keys */
    if(c->encryption_protector && *c->encryption_protector)
      json_object_set_new(keys, c->encryption_protector, json_object());
    json_object_set_new(p, "keys", keys);
  }
  set_str(p, "encryptionProtector", c->encryption_protector);
  if(c->auto_rotation >= 0)
    json_object_set_new(p, "encryptionProtectorAutoRotation", json_boolean(c->auto_rotation));
  set_str(p, "federatedClientId", c->federated_client_id);
  if(c->extra_properties && json_is_object(c->extra_properties))
    json_object_update_missing(p, (json_t *)c->extra_properties);
  json_object_set_new(b, "properties", p);
  *out = b;
  return SQ_OK;
}

/* Sends body (owned: freed here) with method to path and hands back the
 * final resource (LROs followed by sq_arm_do). need_body: an answer without
 * one is an error (PUTs of sub-resources always return it). */
static sq_code send_json(sq_arm *a, const char *method, const char *path, json_t *body, const char *op,
                         int need_body, json_t **res, sq_err *err) {
  sq_arm_call call = {.method = method, .path = path, .api_version = API, .body = body, .operation = op};
  sq_arm_result r;
  sq_arm_result_init(&r);
  sq_code rc = sq_arm_do(a, &call, &r, err);
  *res = rc ? NULL : r.body;
  if(!rc)
    r.body = NULL;
  sq_arm_result_free(&r);
  json_decref(body);
  if(!rc && need_body && !*res)
    rc = sq_err_set(err, SQ_EPARSE, "%s: no resource in the answer", op);
  return rc;
}

static sq_code put_parse(sq_arm *a, const char *path, json_t *body, const char *op, json_t **res,
                         sq_err *err) {
  return send_json(a, "PUT", path, body, op, 1, res, err);
}

sq_code sq_sql_db_create(sq_arm *a, const char *db_id, const sq_sql_db_create_args *c,
                         sq_sql_database *out, sq_err *err) {
  json_t *body = NULL, *res = NULL;
  memset(out, 0, sizeof *out);
  out->auto_rotation = -1;
  sq_code rc = sq_sql_db_create_body(c, &body, err);
  if(!rc)
    rc = send_json(a, "PUT", db_id, body, "databases.create", 0, &res, err);
  if(!rc && res)
    rc = sq_sql_db_parse(res, out, err);
  json_decref(res);
  return rc;
}

sq_code sq_sql_db_patch_body(const sq_sql_db_patch_args *pt, json_t **out, sq_err *err) {
  *out = NULL;
  json_t *b = json_object(), *p = json_object();
  if(pt->umi_set || (pt->umi_remove && pt->umi_remove[0]))
    json_object_set_new(b, "identity", umi_identity(pt->umi_set, pt->umi_remove));
  if((pt->keys_add && pt->keys_add[0]) || (pt->keys_remove && pt->keys_remove[0])) {
    json_t *keys = json_object();
    for(const char *const *k = pt->keys_add; k && *k; k++)
      json_object_set_new(keys, *k, json_object());
    for(const char *const *k = pt->keys_remove; k && *k; k++) {
      if(json_object_get(keys, *k)) {
        json_decref(b);
        json_decref(p);
        json_decref(keys);
        return sq_err_set(err, SQ_EINVAL, "database patch: key %.300s both added and removed", *k);
      }
      json_object_set_new(keys, *k, json_null());
    }
    json_object_set_new(p, "keys", keys);
  }
  if(pt->encryption_protector)
    json_object_set_new(p, "encryptionProtector", json_string(pt->encryption_protector));
  if(pt->auto_rotation >= 0)
    json_object_set_new(p, "encryptionProtectorAutoRotation", json_boolean(pt->auto_rotation));
  if(pt->federated_client_id)
    json_object_set_new(p, "federatedClientId",
                        *pt->federated_client_id ? json_string(pt->federated_client_id) : json_null());
  if(json_object_size(p))
    json_object_set_new(b, "properties", p);
  else
    json_decref(p);
  if(!json_object_size(b)) {
    json_decref(b);
    return sq_err_set(err, SQ_EINVAL, "database patch: nothing to change");
  }
  *out = b;
  return SQ_OK;
}

sq_code sq_sql_db_patch(sq_arm *a, const char *db_id, const sq_sql_db_patch_args *p,
                        sq_sql_database *out, sq_err *err) {
  json_t *body = NULL, *res = NULL;
  memset(out, 0, sizeof *out);
  out->auto_rotation = -1;
  sq_code rc = sq_sql_db_patch_body(p, &body, err);
  if(!rc)
    rc = send_json(a, "PATCH", db_id, body, "databases.patch", 0, &res, err);
  if(!rc && res)
    rc = sq_sql_db_parse(res, out, err);
  json_decref(res);
  return rc;
}

static sq_code do_delete(sq_arm *a, const char *id, const char *op, sq_err *err) {
  sq_arm_call call = {.method = "DELETE", .path = id, .api_version = API, .operation = op};
  sq_arm_result r;
  sq_arm_result_init(&r);
  sq_code rc = sq_arm_do(a, &call, &r, err);
  sq_arm_result_free(&r);
  if(rc == SQ_ENOTFOUND && err && err->http_status == 404) {
    sq_err_clear(err); /* already gone: what was asked */
    rc = SQ_OK;
  }
  return rc;
}

sq_code sq_sql_db_delete(sq_arm *a, const char *db_id, sq_err *err) {
  return do_delete(a, db_id, "databases.delete", err);
}

static sq_code post_action(sq_arm *a, const char *id, const char *suffix, const char *op,
                           int idempotent, sq_err *err) {
  char path[SQ_SQL_ID_MAX + 128];
  if(snprintf(path, sizeof path, "%s%s", id ? id : "", suffix) >= (int)sizeof path)
    return sq_err_set(err, SQ_EINVAL, "resource id too long");
  sq_arm_call call = {.method = "POST",
                      .path = path,
                      .api_version = API,
                      .operation = op,
                      .final_via_location = 1,
                      .post_idempotent = idempotent};
  sq_arm_result r;
  sq_arm_result_init(&r);
  sq_code rc = sq_arm_do(a, &call, &r, err);
  sq_arm_result_free(&r);
  return rc;
}

sq_code sq_sql_db_revalidate(sq_arm *a, const char *db_id, sq_err *err) {
  return post_action(a, db_id, "/encryptionProtector/current/revalidate", "databases.revalidate", 1,
                     err);
}

sq_code sq_sql_db_revert(sq_arm *a, const char *db_id, sq_err *err) {
  return post_action(a, db_id, "/encryptionProtector/current/revert", "databases.revert", 1, err);
}

/* ---- servers / managed instances ---- */

sq_code sq_sql_server_parse(const json_t *j, sq_sql_server *out, sq_err *err) {
  static const char *what = "server";
  memset(out, 0, sizeof *out);
  sq_code rc;
  if((rc = require_id(j, out->id, sizeof out->id, what, err)))
    return rc;
  STR(j, "name", out->name, what);
  STR(j, "location", out->location, what);
  STR(j, "kind", out->kind, what);
  if((rc = parse_identity(j, &out->identity, what, err)))
    return rc;
  const json_t *p = json_object_get(j, "properties");
  if(p && !json_is_object(p))
    return sq_err_set(err, SQ_EPARSE, "%s: properties is not an object", what);
  if(!p)
    return SQ_OK;
  STR(p, "primaryUserAssignedIdentityId", out->primary_umi_id, what);
  STR(p, "keyId", out->key_id, what);
  STR(p, "federatedClientId", out->federated_client_id, what);
  STR(p, "state", out->state, what);
  STR(p, "fullyQualifiedDomainName", out->fqdn, what);
  return SQ_OK;
}

sq_code sq_sql_server_get(sq_arm *a, const char *id, sq_sql_server *out, sq_err *err) {
  json_t *j = NULL;
  memset(out, 0, sizeof *out);
  sq_code rc = sq_arm_get(a, id, API, NULL, &j, err);
  if(!rc)
    rc = sq_sql_server_parse(j, out, err);
  json_decref(j);
  return rc;
}

sq_code sq_sql_server_key_parse(const json_t *j, sq_sql_server_key *out, sq_err *err) {
  static const char *what = "server key";
  memset(out, 0, sizeof *out);
  out->auto_rotation_enabled = -1;
  sq_code rc;
  if((rc = require_id(j, out->id, sizeof out->id, what, err)))
    return rc;
  STR(j, "name", out->name, what);
  STR(j, "kind", out->kind, what);
  const json_t *p = json_object_get(j, "properties");
  if(p && !json_is_object(p))
    return sq_err_set(err, SQ_EPARSE, "%s: properties is not an object", what);
  if(!p)
    return SQ_OK;
  STR(p, "serverKeyType", out->server_key_type, what);
  STR(p, "uri", out->uri, what);
  STR(p, "thumbprint", out->thumbprint, what);
  STR(p, "keyVersion", out->key_version, what);
  out->auto_rotation_enabled = tri_bool(p, "autoRotationEnabled");
  return date_at(p, "creationDate", &out->creation_date, what, err);
}

typedef struct key_list_ctx {
  sq_sql_server_key_fn fn;
  void *ud;
  sq_err *err;
  sq_code rc;
} key_list_ctx;

static int key_item(void *ud, const json_t *it) {
  key_list_ctx *c = ud;
  sq_sql_server_key k;
  c->rc = sq_sql_server_key_parse(it, &k, c->err);
  return c->rc ? 1 : c->fn(c->ud, &k);
}

sq_code sq_sql_server_key_list(sq_arm *a, const char *parent_id, sq_sql_server_key_fn fn, void *ud,
                               sq_err *err) {
  char path[SQ_SQL_ID_MAX + 16];
  if(snprintf(path, sizeof path, "%s/keys", parent_id) >= (int)sizeof path)
    return sq_err_set(err, SQ_EINVAL, "parent id too long");
  key_list_ctx c = {fn, ud, err, SQ_OK};
  sq_code rc = sq_arm_list(a, path, API, NULL, "keys.list", key_item, &c, err);
  return rc ? rc : c.rc;
}

static sq_code key_path(const char *parent, const char *name, char *path, size_t len, sq_err *err) {
  if(!key_name_valid(name))
    return sq_err_set(err, SQ_EINVAL, "server key name \"%.200s\" is invalid", name ? name : "");
  if(snprintf(path, len, "%s/keys/%s", parent, name) >= (int)len)
    return sq_err_set(err, SQ_EINVAL, "parent id too long");
  return SQ_OK;
}

sq_code sq_sql_server_key_get(sq_arm *a, const char *parent_id, const char *key_name,
                              sq_sql_server_key *out, sq_err *err) {
  char path[SQ_SQL_ID_MAX + 300];
  memset(out, 0, sizeof *out);
  sq_code rc = key_path(parent_id, key_name, path, sizeof path, err);
  json_t *j = NULL;
  if(!rc)
    rc = sq_arm_get(a, path, API, NULL, &j, err);
  if(!rc)
    rc = sq_sql_server_key_parse(j, out, err);
  json_decref(j);
  return rc;
}

sq_code sq_sql_server_key_create(sq_arm *a, const char *parent_id, const char *key_uri,
                                 sq_sql_server_key *out, sq_err *err) {
  char name[256], path[SQ_SQL_ID_MAX + 300];
  memset(out, 0, sizeof *out);
  sq_code rc = sq_sql_server_key_name(key_uri, name, sizeof name, err);
  if(!rc)
    rc = key_path(parent_id, name, path, sizeof path, err);
  if(rc)
    return rc;
  json_t *res = NULL;
  rc = put_parse(a, path,
                 json_pack("{s:{s:s,s:s}}", "properties", "serverKeyType", "AzureKeyVault", "uri",
                           key_uri),
                 "keys.create", &res, err);
  if(!rc)
    rc = sq_sql_server_key_parse(res, out, err);
  json_decref(res);
  return rc;
}

sq_code sq_sql_server_key_delete(sq_arm *a, const char *parent_id, const char *key_name,
                                 sq_err *err) {
  char path[SQ_SQL_ID_MAX + 300];
  sq_code rc = key_path(parent_id, key_name, path, sizeof path, err);
  return rc ? rc : do_delete(a, path, "keys.delete", err);
}

sq_code sq_sql_protector_parse(const json_t *j, sq_sql_protector *out, sq_err *err) {
  static const char *what = "encryption protector";
  memset(out, 0, sizeof *out);
  out->auto_rotation_enabled = -1;
  sq_code rc;
  if((rc = require_id(j, out->id, sizeof out->id, what, err)))
    return rc;
  STR(j, "kind", out->kind, what);
  const json_t *p = json_object_get(j, "properties");
  if(p && !json_is_object(p))
    return sq_err_set(err, SQ_EPARSE, "%s: properties is not an object", what);
  if(!p)
    return SQ_OK;
  STR(p, "serverKeyName", out->server_key_name, what);
  STR(p, "serverKeyType", out->server_key_type, what);
  STR(p, "uri", out->uri, what);
  STR(p, "thumbprint", out->thumbprint, what);
  STR(p, "keyVersion", out->key_version, what);
  out->auto_rotation_enabled = tri_bool(p, "autoRotationEnabled");
  return SQ_OK;
}

static sq_code protector_path(const char *parent, char *path, size_t len, sq_err *err) {
  if(snprintf(path, len, "%s/encryptionProtector/current", parent ? parent : "") >= (int)len)
    return sq_err_set(err, SQ_EINVAL, "parent id too long");
  return SQ_OK;
}

sq_code sq_sql_protector_get(sq_arm *a, const char *parent_id, sq_sql_protector *out, sq_err *err) {
  char path[SQ_SQL_ID_MAX + 64];
  memset(out, 0, sizeof *out);
  json_t *j = NULL;
  sq_code rc = protector_path(parent_id, path, sizeof path, err);
  if(!rc)
    rc = sq_arm_get(a, path, API, NULL, &j, err);
  if(!rc)
    rc = sq_sql_protector_parse(j, out, err);
  json_decref(j);
  return rc;
}

sq_code sq_sql_protector_set(sq_arm *a, const char *parent_id, const char *server_key_name,
                             int auto_rotation, sq_sql_protector *out, sq_err *err) {
  char path[SQ_SQL_ID_MAX + 64];
  memset(out, 0, sizeof *out);
  if(server_key_name && !key_name_valid(server_key_name))
    return sq_err_set(err, SQ_EINVAL, "protector: invalid server key name");
  sq_code rc = protector_path(parent_id, path, sizeof path, err);
  if(rc)
    return rc;
  json_t *p = json_pack("{s:s,s:s}", "serverKeyType", server_key_name ? "AzureKeyVault" : "ServiceManaged",
                        "serverKeyName", server_key_name ? server_key_name : "ServiceManaged");
  if(auto_rotation >= 0)
    json_object_set_new(p, "autoRotationEnabled", json_boolean(auto_rotation));
  json_t *res = NULL;
  rc = put_parse(a, path, json_pack("{s:o}", "properties", p), "encryptionProtector.set", &res, err);
  if(!rc)
    rc = sq_sql_protector_parse(res, out, err);
  json_decref(res);
  return rc;
}

sq_code sq_sql_protector_revalidate(sq_arm *a, const char *parent_id, sq_err *err) {
  return post_action(a, parent_id, "/encryptionProtector/current/revalidate",
                     "encryptionProtector.revalidate", 1, err);
}

/* ---- replication links ---- */

sq_code sq_sql_repl_link_parse(const json_t *j, sq_sql_repl_link *out, sq_err *err) {
  static const char *what = "replication link";
  memset(out, 0, sizeof *out);
  out->is_termination_allowed = -1;
  sq_code rc;
  if((rc = require_id(j, out->id, sizeof out->id, what, err)))
    return rc;
  STR(j, "name", out->name, what);
  const json_t *p = json_object_get(j, "properties");
  if(p && !json_is_object(p))
    return sq_err_set(err, SQ_EPARSE, "%s: properties is not an object", what);
  if(!p)
    return SQ_OK;
  STR(p, "partnerServer", out->partner_server, what);
  STR(p, "partnerDatabase", out->partner_database, what);
  STR(p, "partnerLocation", out->partner_location, what);
  STR(p, "role", out->role, what);
  STR(p, "partnerRole", out->partner_role, what);
  STR(p, "replicationMode", out->replication_mode, what);
  STR(p, "replicationState", out->replication_state, what);
  STR(p, "linkType", out->link_type, what);
  out->percent_complete = (int)sq_json_int(p, "percentComplete", 0);
  out->is_termination_allowed = tri_bool(p, "isTerminationAllowed");
  return date_at(p, "startTime", &out->start_time, what, err);
}

typedef struct repl_ctx {
  sq_sql_repl_fn fn;
  void *ud;
  sq_err *err;
  sq_code rc;
} repl_ctx;

static int repl_item(void *ud, const json_t *it) {
  repl_ctx *c = ud;
  sq_sql_repl_link l;
  c->rc = sq_sql_repl_link_parse(it, &l, c->err);
  return c->rc ? 1 : c->fn(c->ud, &l);
}

sq_code sq_sql_repl_list(sq_arm *a, const char *parent_id, sq_sql_repl_fn fn, void *ud, sq_err *err) {
  char path[SQ_SQL_ID_MAX + 32];
  if(snprintf(path, sizeof path, "%s/replicationLinks", parent_id) >= (int)sizeof path)
    return sq_err_set(err, SQ_EINVAL, "parent id too long");
  repl_ctx c = {fn, ud, err, SQ_OK};
  sq_code rc = sq_arm_list(a, path, API, NULL, "replicationLinks.list", repl_item, &c, err);
  return rc ? rc : c.rc;
}

sq_code sq_sql_repl_get(sq_arm *a, const char *link_id, sq_sql_repl_link *out, sq_err *err) {
  json_t *j = NULL;
  memset(out, 0, sizeof *out);
  sq_code rc = sq_arm_get(a, link_id, API, NULL, &j, err);
  if(!rc)
    rc = sq_sql_repl_link_parse(j, out, err);
  json_decref(j);
  return rc;
}

sq_code sq_sql_repl_delete(sq_arm *a, const char *link_id, sq_err *err) {
  return do_delete(a, link_id, "replicationLinks.delete", err);
}

sq_code sq_sql_repl_failover(sq_arm *a, const char *link_id, int allow_data_loss, sq_err *err) {
  /* never retried blindly: a duplicated failover would swap the roles back */
  return post_action(a, link_id, allow_data_loss ? "/forceFailoverAllowDataLoss" : "/failover",
                     "replicationLinks.failover", 0, err);
}

/* ---- failover groups ---- */

void sq_sql_fog_free(sq_sql_fog *f) {
  if(!f)
    return;
  for(size_t i = 0; i < f->n_databases; i++)
    free(f->databases[i]);
  free(f->databases);
  f->databases = NULL;
  f->n_databases = 0;
}

static sq_code fog_parse(const json_t *j, sq_sql_fog *out, sq_err *err) {
  static const char *what = "failover group";
  sq_code rc;
  if((rc = require_id(j, out->id, sizeof out->id, what, err)))
    return rc;
  STR(j, "name", out->name, what);
  STR(j, "location", out->location, what);
  const json_t *p = json_object_get(j, "properties");
  if(p && !json_is_object(p))
    return sq_err_set(err, SQ_EPARSE, "%s: properties is not an object", what);
  if(!p)
    return SQ_OK;
  STR(p, "readWriteEndpoint.failoverPolicy", out->failover_policy, what);
  out->grace_minutes = (int)sq_json_int(p, "readWriteEndpoint.failoverWithDataLossGracePeriodMinutes", -1);
  STR(p, "readOnlyEndpoint.failoverPolicy", out->readonly_policy, what);
  STR(p, "replicationRole", out->replication_role, what);
  STR(p, "replicationState", out->replication_state, what);
  const json_t *ps = json_object_get(p, "partnerServers");
  if(ps && !json_is_array(ps))
    return sq_err_set(err, SQ_EPARSE, "%s: partnerServers is not an array", what);
  size_t i;
  json_t *it;
  json_array_foreach(ps, i, it) {
    if(out->n_partners >= SQ_SQL_MAX_PARTNERS)
      return sq_err_set(err, SQ_ETOOBIG, "%s: too many partner servers", what);
    STR(it, "id", out->partners[out->n_partners].id, what);
    STR(it, "location", out->partners[out->n_partners].location, what);
    STR(it, "replicationRole", out->partners[out->n_partners].role, what);
    out->n_partners++;
  }
  const json_t *dbs = json_object_get(p, "databases");
  if(dbs && !json_is_array(dbs))
    return sq_err_set(err, SQ_EPARSE, "%s: databases is not an array", what);
  size_t n = json_array_size(dbs);
  if(n > SQ_SQL_MAX_FOG_DBS)
    return sq_err_set(err, SQ_ETOOBIG, "%s: too many databases", what);
  if(n && !(out->databases = calloc(n, sizeof *out->databases)))
    return sq_err_set(err, SQ_ENOMEM, "out of memory");
  json_array_foreach(dbs, i, it) {
    if(!json_is_string(it) || json_string_length(it) >= SQ_SQL_ID_MAX)
      return sq_err_set(err, SQ_EPARSE, "%s: databases[%zu] is not an id", what, i);
    if(!(out->databases[out->n_databases] = strdup(json_string_value(it))))
      return sq_err_set(err, SQ_ENOMEM, "out of memory");
    out->n_databases++;
  }
  return SQ_OK;
}

sq_code sq_sql_fog_parse(const json_t *j, sq_sql_fog *out, sq_err *err) {
  memset(out, 0, sizeof *out);
  out->grace_minutes = -1;
  sq_code rc = fog_parse(j, out, err);
  if(rc)
    sq_sql_fog_free(out);
  return rc;
}

static json_t *id_array(const char *const *ids, int as_objects) {
  json_t *a = json_array();
  for(const char *const *p = ids; p && *p; p++)
    json_array_append_new(a, as_objects ? json_pack("{s:s}", "id", *p) : json_string(*p));
  return a;
}

sq_code sq_sql_fog_body(const sq_sql_fog_spec *s, json_t **out, sq_err *err) {
  *out = NULL;
  if(!s->partner_server_ids || !s->partner_server_ids[0])
    return sq_err_set(err, SQ_EINVAL, "failover group: at least one partner server is required");
  if(!s->failover_policy || (strcmp(s->failover_policy, "Manual") && strcmp(s->failover_policy, "Automatic")))
    return sq_err_set(err, SQ_EINVAL, "failover group: failoverPolicy must be Manual or Automatic");
  if(!strcmp(s->failover_policy, "Automatic") && s->grace_minutes <= 0)
    return sq_err_set(err, SQ_EINVAL,
                      "failover group: Automatic needs failoverWithDataLossGracePeriodMinutes");
  json_t *rw = json_pack("{s:s}", "failoverPolicy", s->failover_policy);
  if(s->grace_minutes > 0)
    json_object_set_new(rw, "failoverWithDataLossGracePeriodMinutes", json_integer(s->grace_minutes));
  json_t *p = json_pack("{s:o,s:o,s:o}", "readWriteEndpoint", rw, "partnerServers",
                        id_array(s->partner_server_ids, 1), "databases",
                        id_array(s->database_ids, 0));
  if(s->readonly_policy)
    json_object_set_new(p, "readOnlyEndpoint", json_pack("{s:s}", "failoverPolicy", s->readonly_policy));
  *out = json_pack("{s:o}", "properties", p);
  return *out ? SQ_OK : sq_err_set(err, SQ_ENOMEM, "out of memory");
}

sq_code sq_sql_fog_get(sq_arm *a, const char *fog_id, sq_sql_fog *out, sq_err *err) {
  json_t *j = NULL;
  memset(out, 0, sizeof *out);
  sq_code rc = sq_arm_get(a, fog_id, API, NULL, &j, err);
  if(!rc)
    rc = sq_sql_fog_parse(j, out, err);
  json_decref(j);
  return rc;
}

typedef struct fog_ctx {
  sq_sql_fog_fn fn;
  void *ud;
  sq_err *err;
  sq_code rc;
} fog_ctx;

static int fog_item(void *ud, const json_t *it) {
  fog_ctx *c = ud;
  sq_sql_fog f;
  c->rc = sq_sql_fog_parse(it, &f, c->err);
  if(c->rc)
    return 1;
  int stop = c->fn(c->ud, &f);
  sq_sql_fog_free(&f);
  return stop;
}

sq_code sq_sql_fog_list(sq_arm *a, const char *server_id, sq_sql_fog_fn fn, void *ud, sq_err *err) {
  char path[SQ_SQL_ID_MAX + 32];
  if(snprintf(path, sizeof path, "%s/failoverGroups", server_id) >= (int)sizeof path)
    return sq_err_set(err, SQ_EINVAL, "server id too long");
  fog_ctx c = {fn, ud, err, SQ_OK};
  sq_code rc = sq_arm_list(a, path, API, NULL, "failoverGroups.list", fog_item, &c, err);
  return rc ? rc : c.rc;
}

sq_code sq_sql_fog_put(sq_arm *a, const char *fog_id, const sq_sql_fog_spec *s, sq_sql_fog *out,
                       sq_err *err) {
  json_t *body = NULL, *res = NULL;
  memset(out, 0, sizeof *out);
  sq_code rc = sq_sql_fog_body(s, &body, err);
  if(!rc)
    rc = put_parse(a, fog_id, body, "failoverGroups.put", &res, err);
  if(!rc)
    rc = sq_sql_fog_parse(res, out, err);
  json_decref(res);
  return rc;
}

sq_code sq_sql_fog_set_databases(sq_arm *a, const char *fog_id, const char *const *database_ids,
                                 sq_sql_fog *out, sq_err *err) {
  memset(out, 0, sizeof *out);
  json_t *body = json_pack("{s:{s:o}}", "properties", "databases", id_array(database_ids, 0));
  json_t *res = NULL;
  sq_code rc = send_json(a, "PATCH", fog_id, body, "failoverGroups.patch", 0, &res, err);
  if(!rc && res)
    rc = sq_sql_fog_parse(res, out, err);
  json_decref(res);
  return rc;
}

sq_code sq_sql_fog_delete(sq_arm *a, const char *fog_id, sq_err *err) {
  return do_delete(a, fog_id, "failoverGroups.delete", err);
}

sq_code sq_sql_fog_failover(sq_arm *a, const char *fog_id, int allow_data_loss, sq_err *err) {
  return post_action(a, fog_id, allow_data_loss ? "/forceFailoverAllowDataLoss" : "/failover",
                     "failoverGroups.failover", 0, err);
}

/* ---- restorable dropped databases ---- */

void sq_sql_dropped_db_free(sq_sql_dropped_db *d) {
  if(!d)
    return;
  free(d->keys);
  d->keys = NULL;
  d->n_keys = 0;
}

static sq_code dropped_parse(const json_t *j, sq_sql_dropped_db *out, sq_err *err) {
  static const char *what = "restorable dropped database";
  sq_code rc;
  if((rc = require_id(j, out->id, sizeof out->id, what, err)))
    return rc;
  STR(j, "name", out->name, what);
  const json_t *p = json_object_get(j, "properties");
  if(p && !json_is_object(p))
    return sq_err_set(err, SQ_EPARSE, "%s: properties is not an object", what);
  if(!p)
    return SQ_OK;
  STR(p, "databaseName", out->database_name, what);
  if((rc = date_at(p, "creationDate", &out->creation_date, what, err)) ||
     (rc = date_at(p, "deletionDate", &out->deletion_date, what, err)) ||
     (rc = date_at(p, "earliestRestoreDate", &out->earliest_restore_date, what, err)))
    return rc;
  return parse_keys(p, &out->keys, &out->n_keys, NULL, what, err);
}

sq_code sq_sql_dropped_db_parse(const json_t *j, sq_sql_dropped_db *out, sq_err *err) {
  memset(out, 0, sizeof *out);
  sq_code rc = dropped_parse(j, out, err);
  if(rc)
    sq_sql_dropped_db_free(out);
  return rc;
}

typedef struct dropped_ctx {
  sq_sql_dropped_fn fn;
  void *ud;
  sq_err *err;
  sq_code rc;
} dropped_ctx;

static int dropped_item(void *ud, const json_t *it) {
  dropped_ctx *c = ud;
  sq_sql_dropped_db d;
  c->rc = sq_sql_dropped_db_parse(it, &d, c->err);
  if(c->rc)
    return 1;
  int stop = c->fn(c->ud, &d);
  sq_sql_dropped_db_free(&d);
  return stop;
}

sq_code sq_sql_dropped_list(sq_arm *a, const char *server_id, sq_sql_dropped_fn fn, void *ud,
                            sq_err *err) {
  char path[SQ_SQL_ID_MAX + 40];
  if(snprintf(path, sizeof path, "%s/restorableDroppedDatabases", server_id) >= (int)sizeof path)
    return sq_err_set(err, SQ_EINVAL, "server id too long");
  dropped_ctx c = {fn, ud, err, SQ_OK};
  sq_code rc = sq_arm_list(a, path, API, NULL, "restorableDroppedDatabases.list", dropped_item, &c, err);
  return rc ? rc : c.rc;
}

sq_code sq_sql_dropped_get(sq_arm *a, const char *dropped_id, sq_sql_keys_filter f, int64_t at,
                           sq_sql_dropped_db *out, sq_err *err) {
  char q[256];
  memset(out, 0, sizeof *out);
  sq_code rc = sq_sql_expand_query(f, at, q, sizeof q, err);
  json_t *j = NULL;
  if(!rc)
    rc = sq_arm_get(a, dropped_id, API, q[0] ? q : NULL, &j, err);
  if(!rc)
    rc = sq_sql_dropped_db_parse(j, out, err);
  json_decref(j);
  return rc;
}

/* ---- long-term retention backups ---- */

sq_code sq_sql_ltr_parse(const json_t *j, sq_sql_ltr_backup *out, sq_err *err) {
  static const char *what = "long-term retention backup";
  memset(out, 0, sizeof *out);
  sq_code rc;
  if((rc = require_id(j, out->id, sizeof out->id, what, err)))
    return rc;
  STR(j, "name", out->name, what);
  const json_t *p = json_object_get(j, "properties");
  if(p && !json_is_object(p))
    return sq_err_set(err, SQ_EPARSE, "%s: properties is not an object", what);
  if(!p)
    return SQ_OK;
  STR(p, "serverName", out->server_name, what);
  STR(p, "databaseName", out->database_name, what);
  STR(p, "backupStorageRedundancy", out->storage_redundancy, what);
  if((rc = date_at(p, "serverCreateTime", &out->server_create_time, what, err)) ||
     (rc = date_at(p, "databaseDeletionTime", &out->database_deletion_time, what, err)) ||
     (rc = date_at(p, "backupTime", &out->backup_time, what, err)) ||
     (rc = date_at(p, "backupExpirationTime", &out->backup_expiration_time, what, err)))
    return rc;
  return SQ_OK;
}

typedef struct ltr_ctx {
  sq_sql_ltr_fn fn;
  void *ud;
  sq_err *err;
  sq_code rc;
} ltr_ctx;

static int ltr_item(void *ud, const json_t *it) {
  ltr_ctx *c = ud;
  sq_sql_ltr_backup b;
  c->rc = sq_sql_ltr_parse(it, &b, c->err);
  return c->rc ? 1 : c->fn(c->ud, &b);
}

sq_code sq_sql_ltr_list(sq_arm *a, const char *sub, const char *rg, const char *location,
                        const char *server, const char *database, sq_sql_ltr_fn fn, void *ud,
                        sq_err *err) {
  sq_buf b;
  sq_buf_init(&b, 4096);
  sq_code rc = sq_buf_adds(&b, "/subscriptions");
  if(!rc)
    rc = add_seg(&b, sub);
  if(!rc && rg) {
    rc = sq_buf_adds(&b, "/resourceGroups");
    if(!rc)
      rc = add_seg(&b, rg);
  }
  if(!rc)
    rc = sq_buf_adds(&b, "/providers/Microsoft.Sql/locations");
  if(!rc)
    rc = add_seg(&b, location);
  if(!rc)
    rc = sq_buf_adds(&b, "/longTermRetentionServers");
  if(!rc)
    rc = add_seg(&b, server);
  if(!rc)
    rc = sq_buf_adds(&b, "/longTermRetentionDatabases");
  if(!rc)
    rc = add_seg(&b, database);
  if(!rc)
    rc = sq_buf_adds(&b, "/longTermRetentionBackups");
  if(rc) {
    sq_buf_free(&b);
    return sq_err_set(err, SQ_EINVAL, "LTR path: empty or invalid name");
  }
  ltr_ctx c = {fn, ud, err, SQ_OK};
  rc = sq_arm_list(a, b.ptr, API, NULL, "longTermRetentionBackups.list", ltr_item, &c, err);
  sq_buf_free(&b);
  return rc ? rc : c.rc;
}
