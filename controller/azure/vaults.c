/* vaults.c — Key Vault resources and role assignments through ARM; see
 * include/sqltde/azure/vaults.h. */
#include "sqltde/azure/vaults.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sqltde/buf.h"
#include "sqltde/http.h"
#include "sqltde/jsonx.h"

static const struct {
  const char *name;
  unsigned bit;
} perm_names[] = {
    {"get", SQ_KP_GET},         {"list", SQ_KP_LIST},       {"wrapKey", SQ_KP_WRAP},
    {"unwrapKey", SQ_KP_UNWRAP}, {"create", SQ_KP_CREATE},   {"import", SQ_KP_IMPORT},
    {"update", SQ_KP_UPDATE},   {"delete", SQ_KP_DELETE},   {"recover", SQ_KP_RECOVER},
    {"backup", SQ_KP_BACKUP},   {"restore", SQ_KP_RESTORE}, {"rotate", SQ_KP_ROTATE},
    {"purge", SQ_KP_PURGE},     {"encrypt", SQ_KP_ENCRYPT}, {"decrypt", SQ_KP_DECRYPT},
    {"sign", SQ_KP_SIGN},       {"verify", SQ_KP_VERIFY},
};

unsigned sq_vault_key_perm_bit(const char *name) {
  if(!name)
    return 0;
  if(!strcasecmp(name, "all")) {
    /* the portal's "all" template does not include purge */
    unsigned all = 0;
    for(size_t i = 0; i < sizeof perm_names / sizeof *perm_names; i++)
      all |= perm_names[i].bit;
    return all & ~SQ_KP_PURGE;
  }
  for(size_t i = 0; i < sizeof perm_names / sizeof *perm_names; i++)
    if(!strcasecmp(name, perm_names[i].name))
      return perm_names[i].bit;
  return 0;
}

void sq_vault_free(sq_vault *v) {
  if(!v)
    return;
  free(v->policies);
  v->policies = NULL;
  v->n_policies = 0;
}

#define STR(obj, path, field)                                                                      \
  do {                                                                                             \
    sq_code rc_ = sq_azure_json_strcpy((obj), (path), (field), sizeof(field), what, err);          \
    if(rc_)                                                                                        \
      return rc_;                                                                                  \
  } while(0)

static int flag(const json_t *p, const char *k, int def) {
  json_t *v = json_object_get(p, k);
  return json_is_boolean(v) ? json_is_true(v) : def;
}

static sq_code vault_parse(const json_t *j, sq_vault *out, sq_err *err) {
  static const char *what = "Key Vault resource";
  if(!json_is_object(j))
    return sq_err_set(err, SQ_EPARSE, "%s: not a JSON object", what);
  STR(j, "id", out->id);
  if(!out->id[0])
    return sq_err_set(err, SQ_EPARSE, "%s: no id", what);
  STR(j, "name", out->name);
  STR(j, "location", out->location);
  const json_t *p = json_object_get(j, "properties");
  if(!json_is_object(p))
    return sq_err_set(err, SQ_EPARSE, "%s: no properties object", what);
  STR(p, "tenantId", out->tenant_id);
  STR(p, "vaultUri", out->vault_uri);
  STR(p, "publicNetworkAccess", out->public_network_access);
  out->soft_delete = flag(p, "enableSoftDelete", 1);
  out->purge_protection = flag(p, "enablePurgeProtection", 0);
  out->rbac = flag(p, "enableRbacAuthorization", 0);
  out->retention_days = (int)sq_json_int(p, "softDeleteRetentionInDays", 90);
  const json_t *aps = json_object_get(p, "accessPolicies");
  if(aps && !json_is_array(aps) && !json_is_null(aps))
    return sq_err_set(err, SQ_EPARSE, "%s: accessPolicies is not an array", what);
  size_t n = json_array_size(aps);
  if(n > SQ_VAULT_MAX_POLICIES)
    return sq_err_set(err, SQ_ETOOBIG, "%s: more than %d access policies", what, SQ_VAULT_MAX_POLICIES);
  if(n && !(out->policies = calloc(n, sizeof *out->policies)))
    return sq_err_set(err, SQ_ENOMEM, "out of memory");
  size_t i;
  json_t *ap;
  json_array_foreach(aps, i, ap) {
    sq_vault_policy *pol = &out->policies[out->n_policies];
    if(!json_is_object(ap))
      return sq_err_set(err, SQ_EPARSE, "%s: accessPolicies[%zu] is not an object", what, i);
    STR(ap, "tenantId", pol->tenant_id);
    STR(ap, "objectId", pol->object_id);
    const json_t *keys = sq_json_path(ap, "permissions.keys");
    if(keys && !json_is_array(keys))
      return sq_err_set(err, SQ_EPARSE, "%s: accessPolicies[%zu].permissions.keys is not an array", what, i);
    size_t k;
    json_t *perm;
    json_array_foreach(keys, k, perm) {
      if(json_is_string(perm))
        pol->keys |= sq_vault_key_perm_bit(json_string_value(perm));
    }
    out->n_policies++;
  }
  return SQ_OK;
}

sq_code sq_vault_parse(const json_t *j, sq_vault *out, sq_err *err) {
  memset(out, 0, sizeof *out);
  sq_code rc = vault_parse(j, out, err);
  if(rc)
    sq_vault_free(out);
  return rc;
}

sq_code sq_vault_get(sq_arm *a, const char *vault_id, sq_vault *out, sq_err *err) {
  json_t *j = NULL;
  memset(out, 0, sizeof *out);
  sq_code rc = sq_arm_get(a, vault_id, SQ_VAULT_API_VERSION, NULL, &j, err);
  if(!rc)
    rc = sq_vault_parse(j, out, err);
  json_decref(j);
  return rc;
}

unsigned sq_vault_key_perms(const sq_vault *v, const char *object_id) {
  unsigned bits = 0;
  for(size_t i = 0; object_id && i < v->n_policies; i++)
    if(!strcasecmp(v->policies[i].object_id, object_id))
      bits |= v->policies[i].keys; /* several policies for one principal add up */
  return bits;
}

sq_code sq_role_assignment_parse(const json_t *j, sq_role_assignment *out, sq_err *err) {
  static const char *what = "role assignment";
  memset(out, 0, sizeof *out);
  if(!json_is_object(j))
    return sq_err_set(err, SQ_EPARSE, "%s: not a JSON object", what);
  STR(j, "id", out->id);
  if(!out->id[0])
    return sq_err_set(err, SQ_EPARSE, "%s: no id", what);
  STR(j, "name", out->name);
  STR(j, "properties.scope", out->scope);
  STR(j, "properties.roleDefinitionId", out->role_definition_id);
  STR(j, "properties.principalId", out->principal_id);
  STR(j, "properties.principalType", out->principal_type);
  const char *slash = strrchr(out->role_definition_id, '/');
  const char *guid = slash ? slash + 1 : out->role_definition_id;
  if(strlen(guid) >= sizeof out->role_guid)
    return sq_err_set(err, SQ_EPARSE, "%s: roleDefinitionId does not end in a GUID", what);
  memcpy(out->role_guid, guid, strlen(guid) + 1);
  return SQ_OK;
}

typedef struct ra_ctx {
  sq_role_assignment_fn fn;
  void *ud;
  sq_err *err;
  sq_code rc;
} ra_ctx;

static int ra_item(void *ud, const json_t *it) {
  ra_ctx *c = ud;
  sq_role_assignment ra;
  c->rc = sq_role_assignment_parse(it, &ra, c->err);
  return c->rc ? 1 : c->fn(c->ud, &ra);
}

sq_code sq_role_assignments_list(sq_arm *a, const char *scope, const char *principal_id,
                                 sq_role_assignment_fn fn, void *ud, sq_err *err) {
  char path[1024];
  if(!scope || snprintf(path, sizeof path, "%s/providers/Microsoft.Authorization/roleAssignments",
                        strcmp(scope, "/") ? scope : "") >= (int)sizeof path)
    return sq_err_set(err, SQ_EINVAL, "role assignments: scope too long");
  for(const char *p = principal_id; p && *p; p++)
    if(*p == '\'' || (unsigned char)*p < 0x20)
      return sq_err_set(err, SQ_EINVAL, "role assignments: invalid principal id");
  char filter[256];
  if(principal_id)
    snprintf(filter, sizeof filter, "atScope() and assignedTo('%s')", principal_id);
  else
    snprintf(filter, sizeof filter, "atScope()");
  sq_buf q;
  sq_buf_init(&q, 1024);
  sq_code rc = sq_buf_adds(&q, "$filter=");
  if(!rc)
    rc = sq_url_escape(filter, &q);
  if(rc) {
    sq_buf_free(&q);
    return sq_err_set(err, SQ_EINVAL, "role assignments: filter too long");
  }
  ra_ctx c = {fn, ud, err, SQ_OK};
  rc = sq_arm_list(a, path, SQ_AUTHZ_API_VERSION, q.ptr, "roleAssignments.list", ra_item, &c, err);
  sq_buf_free(&q);
  return rc ? rc : c.rc;
}
