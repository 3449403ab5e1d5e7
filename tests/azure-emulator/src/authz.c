/* authz.c — Azure RBAC as the emulator applies it: the built-in role
 * definitions the project meets (management actions and Key Vault data
 * actions), wildcard action matching, and scope inheritance (an assignment
 * at a scope applies to everything below it). Role ids from azure-api.md §5
 * and Azure's built-in roles list. */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "emu.h"

typedef struct emu_role {
  const char *guid;
  const char *name;
  const char *const *actions;
  const char *const *not_actions;
  const char *const *data_actions;
} emu_role;

#define L(...) (const char *const[]){__VA_ARGS__, NULL}

static const emu_role roles[] = {
    {"8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "Owner", L("*"), NULL, NULL},
    {"b24988ac-6180-42a0-ab88-20f7382dd24c", "Contributor", L("*"),
     L("Microsoft.Authorization/*/Delete", "Microsoft.Authorization/*/Write",
       "Microsoft.Authorization/elevateAccess/Action"),
     NULL},
    {"acdd72a7-3385-48ef-bd42-f606fba81ae7", "Reader", L("*/read"), NULL, NULL},
    {"18d7d88d-d35e-4fb5-a5c3-7773c20a72d9", "User Access Administrator",
     L("*/read", "Microsoft.Authorization/*"), NULL, NULL},
    {"f25e0fa2-a7c8-4377-a976-54943a77a395", "Key Vault Contributor",
     L("Microsoft.Authorization/*/read", "Microsoft.KeyVault/*", "Microsoft.Resources/subscriptions/resourceGroups/read"),
     L("Microsoft.KeyVault/locations/deletedVaults/purge/action", "Microsoft.KeyVault/hsmPools/*",
       "Microsoft.KeyVault/managedHsms/*"),
     NULL},
    {"6d8ee4ec-f05a-4a1d-8b00-a9b17e38b437", "SQL Server Contributor",
     L("Microsoft.Authorization/*/read", "Microsoft.Sql/locations/*/read", "Microsoft.Sql/servers/*",
       "Microsoft.Resources/subscriptions/resourceGroups/read"),
     NULL, NULL},
    {"9b7fa17d-e63e-47b0-bb0a-15c516ac86ec", "SQL DB Contributor",
     L("Microsoft.Authorization/*/read", "Microsoft.Sql/locations/*/read", "Microsoft.Sql/servers/databases/*",
       "Microsoft.Sql/servers/read", "Microsoft.Resources/subscriptions/resourceGroups/read"),
     NULL, NULL},
    {"4939a1f6-9ae0-4e48-a1e0-f2cbe897382d", "SQL Managed Instance Contributor",
     L("Microsoft.Authorization/*/read", "Microsoft.Sql/locations/*", "Microsoft.Sql/managedInstances/*",
       "Microsoft.Resources/subscriptions/resourceGroups/read"),
     NULL, NULL},
    {"f1a07417-d97a-45cb-824c-7a7467783830", "Managed Identity Operator",
     L("Microsoft.ManagedIdentity/userAssignedIdentities/*/read",
       "Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action", "Microsoft.Authorization/*/read"),
     NULL, NULL},
    {"00482a5a-887f-4fb3-b363-3b7fe8e74483", "Key Vault Administrator",
     L("Microsoft.Authorization/*/read", "Microsoft.KeyVault/vaults/*/read", "Microsoft.KeyVault/operations/read"),
     NULL, L("Microsoft.KeyVault/vaults/*")},
    {"14b46e9e-c2b7-41b4-b07b-48a6ebf60603", "Key Vault Crypto Officer",
     L("Microsoft.Authorization/*/read", "Microsoft.KeyVault/vaults/*/read", "Microsoft.KeyVault/operations/read"),
     NULL,
     L("Microsoft.KeyVault/vaults/keys/*", "Microsoft.KeyVault/vaults/deletedKeys/*",
       "Microsoft.KeyVault/vaults/keyrotationpolicies/*")},
    {"12338af0-0e69-4776-bea7-57ae8d297424", "Key Vault Crypto User", NULL, NULL,
     L("Microsoft.KeyVault/vaults/keys/read", "Microsoft.KeyVault/vaults/keys/update/action",
       "Microsoft.KeyVault/vaults/keys/backup/action", "Microsoft.KeyVault/vaults/keys/encrypt/action",
       "Microsoft.KeyVault/vaults/keys/decrypt/action", "Microsoft.KeyVault/vaults/keys/wrap/action",
       "Microsoft.KeyVault/vaults/keys/unwrap/action", "Microsoft.KeyVault/vaults/keys/sign/action",
       "Microsoft.KeyVault/vaults/keys/verify/action")},
    {"e147488a-f6f5-4113-8e2d-b22465e65bf6", "Key Vault Crypto Service Encryption User",
     L("Microsoft.EventGrid/eventSubscriptions/write", "Microsoft.EventGrid/eventSubscriptions/read",
       "Microsoft.EventGrid/eventSubscriptions/delete"),
     NULL,
     L("Microsoft.KeyVault/vaults/keys/read", "Microsoft.KeyVault/vaults/keys/wrap/action",
       "Microsoft.KeyVault/vaults/keys/unwrap/action")},
    {"21090545-7ca7-4776-b22c-e363652d74d2", "Key Vault Reader",
     L("Microsoft.Authorization/*/read", "Microsoft.KeyVault/checkNameAvailability/read",
       "Microsoft.KeyVault/deletedVaults/read", "Microsoft.KeyVault/locations/*/read",
       "Microsoft.KeyVault/vaults/*/read", "Microsoft.KeyVault/operations/read"),
     NULL, L("Microsoft.KeyVault/vaults/*/read", "Microsoft.KeyVault/vaults/secrets/readMetadata/action")},
    {"08bbd89e-9f13-488c-ac41-acfcb10c90ab", "Key Vault Crypto Service Release User", NULL, NULL,
     L("Microsoft.KeyVault/vaults/keys/release/action")},
    {NULL, NULL, NULL, NULL, NULL},
};

/* Case-insensitive glob where '*' matches any run of characters. */
static int glob_match(const char *pat, const char *s) {
  const char *start = pat;
  while(*pat) {
    if(*pat == '*') {
      /* Azure's "a/STAR/b" also covers "a/b": Managed Identity Operator's
       * "userAssignedIdentities/STAR/assign/action" (STAR = '*') grants
       * "userAssignedIdentities/assign/action". */
      if(pat > start && pat[-1] == '/' && pat[1] == '/' && glob_match(pat + 2, s))
        return 1;
      pat++;
      if(!*pat)
        return 1;
      for(; *s; s++)
        if(glob_match(pat, s))
          return 1;
      return 0;
    }
    if(!*s || tolower((unsigned char)*pat) != tolower((unsigned char)*s))
      return 0;
    pat++;
    s++;
  }
  return *s == '\0';
}

static int list_match(const char *const *list, const char *action) {
  for(; list && *list; list++)
    if(glob_match(*list, action))
      return 1;
  return 0;
}

static const emu_role *role_by_guid(const char *g) {
  for(const emu_role *r = roles; r->guid; r++)
    if(!strcasecmp(r->guid, g))
      return r;
  return NULL;
}

const char *emu_role_guid(const char *s) {
  if(!s)
    return NULL;
  const char *slash = strrchr(s, '/');
  const char *tail = slash ? slash + 1 : s;
  for(const emu_role *r = roles; r->guid; r++)
    if(!strcasecmp(r->guid, tail) || !strcasecmp(r->name, s))
      return r->guid;
  return NULL;
}

const char *emu_role_name(const char *guid) {
  const emu_role *r = role_by_guid(guid);
  return r ? r->name : NULL;
}

static int role_allows(const emu_role *r, const char *action, int data) {
  if(data)
    return list_match(r->data_actions, action);
  return list_match(r->actions, action) && !list_match(r->not_actions, action);
}

/* Does assignment scope `scope` cover `target` (same, or an ancestor)? */
static int scope_covers(const char *scope, const char *target) {
  size_t n = strlen(scope);
  while(n && scope[n - 1] == '/')
    n--;
  if(n == 0)
    return 1; /* "/" (root) */
  return !strncasecmp(scope, target, n) && (target[n] == '\0' || target[n] == '/');
}

int emu_rbac_allows(emu *e, const char *oid, const char *scope, const char *action, int data) {
  sqlite3_stmt *st = emu_sql(e, "SELECT scope, role_guid FROM role_assignments WHERE principal_id=?");
  if(!st)
    return 0;
  sqlite3_bind_text(st, 1, oid, -1, SQLITE_STATIC);
  int ok = 0;
  while(!ok && sqlite3_step(st) == SQLITE_ROW) {
    const emu_role *r = role_by_guid(emu_col_text(st, 1));
    ok = r && scope_covers(emu_col_text(st, 0), scope) && role_allows(r, action, data);
  }
  sqlite3_finalize(st);
  return ok;
}

json_t *emu_role_definition_json(const char *guid, const char *sub) {
  const emu_role *r = role_by_guid(guid);
  if(!r)
    return NULL;
  json_t *a = json_array(), *na = json_array(), *da = json_array();
  for(const char *const *p = r->actions; p && *p; p++)
    json_array_append_new(a, json_string(*p));
  for(const char *const *p = r->not_actions; p && *p; p++)
    json_array_append_new(na, json_string(*p));
  for(const char *const *p = r->data_actions; p && *p; p++)
    json_array_append_new(da, json_string(*p));
  char id[256];
  snprintf(id, sizeof id, "/subscriptions/%s/providers/Microsoft.Authorization/roleDefinitions/%s", sub, r->guid);
  return json_pack("{s:s,s:s,s:s,s:{s:s,s:s,s:s,s:[{s:o,s:o,s:o,s:[]}],s:[s]}}", "id", id, "type",
                   "Microsoft.Authorization/roleDefinitions", "name", r->guid, "properties", "roleName",
                   r->name, "type", "BuiltInRole", "description", r->name, "permissions", "actions", a,
                   "notActions", na, "dataActions", da, "notDataActions", "assignableScopes", "/");
}

/* Iterates built-in roles for listings: returns the guid of role i or NULL. */
const char *emu_role_at(int i) {
  int n = 0;
  while(roles[n].guid)
    n++;
  return i >= 0 && i < n ? roles[i].guid : NULL;
}
