/* arm_keyvault.c — the management-plane resources the operator reads to
 * check permissions "as a user would" (SPEC.md §4): Microsoft.KeyVault/vaults
 * (GET, list) and Microsoft.Authorization roleAssignments (list at a scope
 * with $filter, get, create, delete) and roleDefinitions (get, list). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "emu.h"
#include "sqltde/jsonx.h"

static const char *const kv_mgmt_versions[] = {
    "2015-06-01", "2016-10-01", "2018-02-14", "2019-09-01", "2021-04-01-preview", "2021-06-01-preview",
    "2021-10-01", "2021-11-01-preview", "2022-02-01-preview", "2022-07-01", "2022-11-01", "2023-02-01",
    "2023-07-01", "2023-08-01-preview", "2024-04-01-preview", "2024-11-01", "2024-12-01-preview",
    "2025-05-01", "2026-02-01", NULL};

static const char *const authz_versions[] = {"2015-07-01", "2018-01-01-preview", "2018-09-01-preview",
                                             "2020-03-01-preview", "2020-04-01-preview", "2020-08-01-preview",
                                             "2020-10-01-preview", "2021-04-01-preview", "2022-01-01-preview",
                                             "2022-04-01", "2022-05-01-preview", NULL};

/* ---- vaults ---- */

#define VAULT_COLS EMU_VAULT_COLS ", sku, tags"

/* A row of VAULT_COLS as ARM returns the vault. */
static json_t *vault_json(emu_call *c, sqlite3_stmt *st) {
  emu_vault v;
  emu_vault_from_row(st, &v);
  char id[1024], uri[256];
  emu_vault_resource_id(&v, id, sizeof id);
  emu_vault_url(c->e, v.name, uri, sizeof uri);
  strncat(uri, "/", sizeof uri - strlen(uri) - 1);
  json_t *aps = json_array();
  sqlite3_stmt *q = emu_sql(c->e, "SELECT object_id, tenant, keys, secrets, certificates FROM access_policies WHERE vault=?"
                                  " ORDER BY rowid");
  if(q) {
    sqlite3_bind_text(q, 1, v.name, -1, SQLITE_STATIC);
    while(sqlite3_step(q) == SQLITE_ROW) {
      json_t *perm = json_pack("{s:o,s:o,s:o}", "keys", json_loads(emu_col_text(q, 2), 0, NULL), "secrets",
                               json_loads(emu_col_text(q, 3), 0, NULL), "certificates",
                               json_loads(emu_col_text(q, 4), 0, NULL));
      if(perm)
        json_array_append_new(aps, json_pack("{s:s,s:s,s:o}", "tenantId", emu_col_text(q, 1), "objectId",
                                             emu_col_text(q, 0), "permissions", perm));
    }
    sqlite3_finalize(q);
  }
  json_t *props = json_pack("{s:{s:s,s:s},s:s,s:o,s:b,s:b,s:b,s:b,s:i,s:b,s:s,s:s,s:s}", "sku", "family", "A", "name",
                            emu_col_text(st, 9), "tenantId", v.tenant, "accessPolicies", aps, "enabledForDeployment", 0,
                            "enabledForDiskEncryption", 0, "enabledForTemplateDeployment", 0, "enableSoftDelete",
                            v.soft_delete, "softDeleteRetentionInDays", v.retention_days, "enableRbacAuthorization",
                            v.rbac, "vaultUri", uri, "provisioningState", "Succeeded", "publicNetworkAccess", "Enabled");
  /* Azure omits enablePurgeProtection unless it is on (it cannot be turned off) */
  if(v.purge_protection)
    json_object_set_new(props, "enablePurgeProtection", json_true());
  json_t *tags = json_loads(emu_col_text(st, 10), 0, NULL);
  return json_pack("{s:s,s:s,s:s,s:s,s:o,s:o}", "id", id, "name", v.name, "type", "Microsoft.KeyVault/vaults",
                   "location", v.region, "tags", tags ? tags : json_object(), "properties", props);
}


/* Checks the route's {sub}/{rg}, authorizes reading vaults at scope and
 * prepares sql; NULL with the error written. */
static sqlite3_stmt *vault_query(emu_call *c, const char *scope, const char *sql) {
  if(emu_arm_check_scope(c, emu_var(c, "sub"), emu_var(c, "rg")) ||
     emu_arm_authorize(c, scope, "Microsoft.KeyVault/vaults/read"))
    return NULL;
  sqlite3_stmt *st = emu_sql(c->e, sql);
  if(!st)
    emu_arm_error(c, 500, "InternalServerError", "State error.");
  return st;
}

static void h_vault_get(emu_call *c) {
  const char *sub = emu_var(c, "sub"), *rg = emu_var(c, "rg"), *name = emu_var(c, "vault");
  char scope[1024];
  snprintf(scope, sizeof scope, "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.KeyVault/vaults/%s", sub, rg,
           name);
  sqlite3_stmt *st = vault_query(c, scope, "SELECT " VAULT_COLS " FROM vaults WHERE name=? AND sub=? AND rg=?");
  if(!st)
    return;
  sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, sub, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, rg, -1, SQLITE_STATIC);
  if(sqlite3_step(st) == SQLITE_ROW)
    emu_reply_json(c, 200, vault_json(c, st));
  else
    emu_arm_error(c, 404, "ResourceNotFound",
                  "The Resource 'Microsoft.KeyVault/vaults/%.100s' under resource group '%.100s' was not found. For more "
                  "details please go to https://aka.ms/ARMResourceNotFoundFix",
                  name, rg);
  sqlite3_finalize(st);
}

static void h_vault_list(emu_call *c) {
  const char *sub = emu_var(c, "sub"), *rg = emu_var(c, "rg");
  char scope[512];
  if(rg)
    snprintf(scope, sizeof scope, "/subscriptions/%s/resourceGroups/%s", sub, rg);
  else
    snprintf(scope, sizeof scope, "/subscriptions/%s", sub);
  sqlite3_stmt *st =
      vault_query(c, scope, "SELECT " VAULT_COLS " FROM vaults WHERE sub=? AND (?2 IS NULL OR rg=?2) ORDER BY name");
  if(!st)
    return;
  sqlite3_bind_text(st, 1, sub, -1, SQLITE_STATIC);
  if(rg)
    sqlite3_bind_text(st, 2, rg, -1, SQLITE_STATIC);
  json_t *a = json_array();
  while(sqlite3_step(st) == SQLITE_ROW)
    json_array_append_new(a, vault_json(c, st));
  sqlite3_finalize(st);
  emu_reply_json(c, 200, json_pack("{s:o}", "value", a));
}

/* ---- role assignments ---- */

/* Validates an ARM scope: "/subscriptions/{guid}[/resourceGroups/{rg}[/providers/...]]". */
static int check_scope_path(emu_call *c, const char *scope, char *sub, size_t subn) {
  if(strncasecmp(scope, "/subscriptions/", 15)) {
    emu_arm_error(c, 400, "InvalidScope", "The scope '%.300s' is not valid; it must start with /subscriptions/.", scope);
    return -1;
  }
  const char *s = scope + 15, *slash = strchr(s, '/');
  size_t n = slash ? (size_t)(slash - s) : strlen(s);
  if(n >= subn)
    n = subn - 1;
  memcpy(sub, s, n);
  sub[n] = '\0';
  char rg[EMU_ID_MAX] = "";
  if(slash && !strncasecmp(slash, "/resourceGroups/", 16)) {
    const char *r = slash + 16, *e = strchr(r, '/');
    size_t rn = e ? (size_t)(e - r) : strlen(r);
    if(rn >= sizeof rg)
      rn = sizeof rg - 1;
    memcpy(rg, r, rn);
    rg[rn] = '\0';
  } else if(slash && strncasecmp(slash, "/providers/", 11)) {
    emu_arm_error(c, 400, "InvalidScope", "The scope '%.300s' is not valid.", scope);
    return -1;
  }
  return emu_arm_check_scope(c, sub, rg[0] ? rg : NULL);
}

static json_t *assignment_json(sqlite3_stmt *st) {
  const char *name = emu_col_text(st, 0), *scope = emu_col_text(st, 1);
  char sub[EMU_ID_MAX] = "", id[1400], def[256], created[32];
  if(!strncasecmp(scope, "/subscriptions/", 15)) {
    const char *s = scope + 15, *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    snprintf(sub, sizeof sub, "%.*s", (int)n, s);
  }
  snprintf(id, sizeof id, "%s/providers/Microsoft.Authorization/roleAssignments/%s", strcmp(scope, "/") ? scope : "",
           name);
  snprintf(def, sizeof def, "/subscriptions/%s/providers/Microsoft.Authorization/roleDefinitions/%s", sub,
           emu_col_text(st, 2));
  sq_rfc3339(sqlite3_column_int64(st, 5), created, sizeof created);
  return json_pack("{s:s,s:s,s:s,s:{s:s,s:s,s:s,s:s,s:n,s:n,s:s,s:s,s:n,s:n,s:n,s:n}}", "id", id, "type",
                   "Microsoft.Authorization/roleAssignments", "name", name, "properties", "roleDefinitionId", def,
                   "principalId", emu_col_text(st, 3), "principalType", emu_col_text(st, 4), "scope", scope,
                   "condition", "conditionVersion", "createdOn", created, "updatedOn", created, "createdBy",
                   "updatedBy", "delegatedManagedIdentityResourceId", "description");
}

/* Case-insensitive: does a cover b (same or ancestor)? */
static int covers(const char *a, const char *b) {
  size_t n = strlen(a);
  while(n && a[n - 1] == '/')
    n--;
  return !strncasecmp(a, b, n) && (b[n] == '\0' || b[n] == '/');
}

/* $filter: atScope(), principalId eq '{id}', assignedTo('{id}'), joined by " and ". */
static int parse_filter(emu_call *c, int *at_scope, char *principal, size_t pn) {
  *at_scope = 0;
  principal[0] = '\0';
  const char *f = emu_query(c, "$filter");
  if(!f || !*f)
    return 0;
  char buf[512];
  snprintf(buf, sizeof buf, "%s", f);
  char *p = buf;
  while(*p) {
    while(*p == ' ')
      p++;
    if(!strncasecmp(p, "atScope()", 9)) {
      *at_scope = 1;
      p += 9;
    } else if(!strncasecmp(p, "principalId eq '", 16) || !strncasecmp(p, "assignedTo('", 12)) {
      char *q = strchr(p, '\'') + 1, *e = strchr(q, '\'');
      if(!e)
        goto bad;
      snprintf(principal, pn, "%.*s", (int)(e - q), q);
      p = e + 1;
      if(*p == ')')
        p++;
    } else {
      goto bad;
    }
    while(*p == ' ')
      p++;
    if(!strncasecmp(p, "and ", 4))
      p += 4;
    else if(*p)
      goto bad;
  }
  return 0;
bad:
  emu_arm_error(c, 400, "InvalidFilterInQueryString",
                "The filter '%.200s' is not supported. Supported: atScope(), principalId eq '{id}', assignedTo('{id}').", f);
  return -1;
}

#define RA_COLS "name, scope, role_guid, principal_id, principal_type, created_s"

/* Common start of the role assignment handlers: a valid {scope} and action authorized there. */
static int ra_begin(emu_call *c, const char *action) {
  char sub[EMU_ID_MAX];
  const char *scope = emu_var(c, "scope");
  return !check_scope_path(c, scope, sub, sizeof sub) && !emu_arm_authorize(c, scope, action);
}

/* The assignment name (at scope; NULL: at any) as ARM returns it, NULL if none. */
static json_t *ra_find(emu *e, const char *name, const char *scope) {
  sqlite3_stmt *st = emu_sql(e, scope ? "SELECT " RA_COLS " FROM role_assignments WHERE name=? AND scope=?"
                                      : "SELECT " RA_COLS " FROM role_assignments WHERE name=?");
  if(!st)
    return NULL;
  sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
  if(scope)
    sqlite3_bind_text(st, 2, scope, -1, SQLITE_STATIC);
  json_t *j = sqlite3_step(st) == SQLITE_ROW ? assignment_json(st) : NULL;
  sqlite3_finalize(st);
  return j;
}

static void h_ra_list(emu_call *c) {
  const char *scope = emu_var(c, "scope");
  char principal[EMU_ID_MAX];
  int at_scope;
  if(!ra_begin(c, "Microsoft.Authorization/roleAssignments/read") ||
     parse_filter(c, &at_scope, principal, sizeof principal))
    return;
  sqlite3_stmt *st = emu_sql(c->e, "SELECT " RA_COLS " FROM role_assignments ORDER BY created_s, name");
  if(!st) {
    emu_arm_error(c, 500, "InternalServerError", "State error.");
    return;
  }
  json_t *a = json_array();
  while(sqlite3_step(st) == SQLITE_ROW) {
    const char *as = emu_col_text(st, 1);
    /* at or above the scope always; below it only without atScope() */
    int rel = covers(as, scope) || (!at_scope && covers(scope, as));
    if(!rel || (principal[0] && strcasecmp(principal, emu_col_text(st, 3))))
      continue;
    json_array_append_new(a, assignment_json(st));
  }
  sqlite3_finalize(st);
  emu_reply_json(c, 200, json_pack("{s:o}", "value", a));
}

static void h_ra_get(emu_call *c) {
  const char *name = emu_var(c, "name");
  if(!ra_begin(c, "Microsoft.Authorization/roleAssignments/read"))
    return;
  json_t *j = ra_find(c->e, name, emu_var(c, "scope"));
  if(j)
    emu_reply_json(c, 200, j);
  else
    emu_arm_error(c, 404, "RoleAssignmentNotFound", "The role assignment '%.64s' is not found.", name);
}

static void h_ra_put(emu_call *c) {
  const char *scope = emu_var(c, "scope"), *name = emu_var(c, "name");
  json_t *b = NULL;
  if(!ra_begin(c, "Microsoft.Authorization/roleAssignments/write") || emu_body_json(c, 0, &b))
    return;
  const char *def = sq_json_str(b, "properties.roleDefinitionId"), *pid = sq_json_str(b, "properties.principalId");
  const char *ptype = sq_json_str(b, "properties.principalType");
  const char *role = emu_role_guid(def);
  if(!emu_is_guid(name)) {
    emu_arm_error(c, 400, "InvalidRoleAssignmentId", "The role assignment ID '%.64s' is not valid. The role assignment ID must be a GUID.", name);
  } else if(!role || !pid || !emu_is_guid(pid)) {
    emu_arm_error(c, 400, "InvalidRoleDefinitionId",
                  "properties.roleDefinitionId must name a built-in role and properties.principalId must be a GUID.");
  } else {
    sqlite3_stmt *st = emu_sql(c->e, "INSERT OR REPLACE INTO role_assignments(" RA_COLS ") VALUES(?,?,?,?,?,?)");
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, scope, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, role, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, pid, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, ptype ? ptype : "ServicePrincipal", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, c->now_ms / 1000);
    sqlite3_step(st);
    sqlite3_finalize(st);
    json_t *j = ra_find(c->e, name, NULL);
    if(j)
      emu_reply_json(c, 201, j);
    else
      emu_arm_error(c, 500, "InternalServerError", "State error.");
  }
  json_decref(b);
}

static void h_ra_delete(emu_call *c) {
  const char *name = emu_var(c, "name");
  if(!ra_begin(c, "Microsoft.Authorization/roleAssignments/delete"))
    return;
  json_t *body = ra_find(c->e, name, emu_var(c, "scope"));
  if(!body) {
    emu_reply_empty(c, 204);
    return;
  }
  sqlite3_stmt *st = emu_sql(c->e, "DELETE FROM role_assignments WHERE name=?");
  sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
  sqlite3_step(st);
  sqlite3_finalize(st);
  emu_reply_json(c, 200, body);
}

static void h_rd_get(emu_call *c) {
  const char *scope = emu_var(c, "scope"), *id = emu_var(c, "id");
  char sub[EMU_ID_MAX];
  if(check_scope_path(c, scope, sub, sizeof sub))
    return;
  json_t *d = emu_role_definition_json(id, sub);
  if(d)
    emu_reply_json(c, 200, d);
  else
    emu_arm_error(c, 404, "RoleDefinitionDoesNotExist", "The specified role definition with ID '%.64s' does not exist.", id);
}

static void h_rd_list(emu_call *c) {
  const char *scope = emu_var(c, "scope");
  char sub[EMU_ID_MAX];
  if(check_scope_path(c, scope, sub, sizeof sub))
    return;
  const char *f = emu_query(c, "$filter");
  char want[128] = "";
  if(f && sscanf(f, "roleName eq '%127[^']'", want) != 1) {
    emu_arm_error(c, 400, "InvalidFilterInQueryString", "Only $filter=roleName eq '{name}' is supported.");
    return;
  }
  json_t *a = json_array();
  for(int i = 0; emu_role_at(i); i++) {
    const char *g = emu_role_at(i);
    if(want[0] && strcasecmp(want, emu_role_name(g)))
      continue;
    json_array_append_new(a, emu_role_definition_json(g, sub));
  }
  emu_reply_json(c, 200, json_pack("{s:o}", "value", a));
}

#define ARM(m, p, f, fl, v) {EMU_FAM_ARM, m, p, f, EMU_R_AUTH | (fl), v}

const emu_route emu_arm_keyvault_routes[] = {
    ARM("GET", "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{vault}", h_vault_get,
        EMU_R_READ, kv_mgmt_versions),
    ARM("GET", "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults", h_vault_list, EMU_R_READ,
        kv_mgmt_versions),
    ARM("GET", "/subscriptions/{sub}/providers/Microsoft.KeyVault/vaults", h_vault_list, EMU_R_READ, kv_mgmt_versions),
    ARM("GET", "/{*scope}/providers/Microsoft.Authorization/roleAssignments", h_ra_list, EMU_R_READ, authz_versions),
    ARM("GET", "/{*scope}/providers/Microsoft.Authorization/roleAssignments/{name}", h_ra_get, EMU_R_READ,
        authz_versions),
    ARM("PUT", "/{*scope}/providers/Microsoft.Authorization/roleAssignments/{name}", h_ra_put, EMU_R_WRITE,
        authz_versions),
    ARM("DELETE", "/{*scope}/providers/Microsoft.Authorization/roleAssignments/{name}", h_ra_delete, EMU_R_DELETE,
        authz_versions),
    ARM("GET", "/{*scope}/providers/Microsoft.Authorization/roleDefinitions", h_rd_list, EMU_R_READ, authz_versions),
    ARM("GET", "/{*scope}/providers/Microsoft.Authorization/roleDefinitions/{id}", h_rd_get, EMU_R_READ,
        authz_versions),
    {0, NULL, NULL, NULL, 0, NULL},
};
