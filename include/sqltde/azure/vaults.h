/* azure/vaults.h — the ARM side of Key Vault, as the operator checks it.
 *
 * SPEC §4: whether a vault is fit for TDE (soft delete + purge protection)
 * and whether an identity can use a key (get/wrapKey/unwrapKey through an
 * access policy, or the "Key Vault Crypto Service Encryption User" role in
 * RBAC mode) are read through ARM, as a user would: the
 * Microsoft.KeyVault/vaults resource and Microsoft.Authorization role
 * assignments. Typed over sq_arm (azure/arm.h); parsing is bounded and
 * unknown fields are ignored. */
#ifndef SQLTDE_AZURE_VAULTS_H
#define SQLTDE_AZURE_VAULTS_H

#include <jansson.h>

#include "sqltde/azure/arm.h"
#include "sqltde/err.h"

#define SQ_VAULT_API_VERSION "2023-07-01"
#define SQ_AUTHZ_API_VERSION "2022-04-01"
#define SQ_VAULT_MAX_POLICIES 1024 /* ARM's own limit (azure-api.md §5) */

/* Key permission bits of an access policy. */
enum {
  SQ_KP_GET = 1u << 0,
  SQ_KP_LIST = 1u << 1,
  SQ_KP_WRAP = 1u << 2,
  SQ_KP_UNWRAP = 1u << 3,
  SQ_KP_CREATE = 1u << 4,
  SQ_KP_IMPORT = 1u << 5,
  SQ_KP_UPDATE = 1u << 6,
  SQ_KP_DELETE = 1u << 7,
  SQ_KP_RECOVER = 1u << 8,
  SQ_KP_BACKUP = 1u << 9,
  SQ_KP_RESTORE = 1u << 10,
  SQ_KP_ROTATE = 1u << 11,
  SQ_KP_PURGE = 1u << 12,
  SQ_KP_ENCRYPT = 1u << 13,
  SQ_KP_DECRYPT = 1u << 14,
  SQ_KP_SIGN = 1u << 15,
  SQ_KP_VERIFY = 1u << 16,
};
/* What TDE needs (azure-api.md §5). */
#define SQ_KP_TDE (SQ_KP_GET | SQ_KP_WRAP | SQ_KP_UNWRAP)

/* Permission name (case-insensitive; "all" -> every bit but purge) to bits; 0 if unknown. */
unsigned sq_vault_key_perm_bit(const char *name);

typedef struct sq_vault_policy {
  char tenant_id[48];
  char object_id[48];
  unsigned keys; /* SQ_KP_* */
} sq_vault_policy;

typedef struct sq_vault {
  char id[512];
  char name[128];
  char location[64];
  char tenant_id[48];
  char vault_uri[256];
  int soft_delete;        /* enableSoftDelete; absent = 1 (the default since 2020) */
  int purge_protection;   /* enablePurgeProtection; absent = 0 */
  int rbac;               /* enableRbacAuthorization; absent = 0 (access policies) */
  int retention_days;     /* softDeleteRetentionInDays; absent = 90 */
  char public_network_access[32];
  size_t n_policies;
  sq_vault_policy *policies; /* owned */
} sq_vault;

void sq_vault_free(sq_vault *v);
sq_code sq_vault_parse(const json_t *j, sq_vault *out, sq_err *err);
sq_code sq_vault_get(sq_arm *a, const char *vault_id, sq_vault *out, sq_err *err);

/* The key permissions an access policy grants object_id (0 if none). */
unsigned sq_vault_key_perms(const sq_vault *v, const char *object_id);

typedef struct sq_role_assignment {
  char id[768];
  char name[48];
  char scope[512];
  char role_definition_id[256];
  char role_guid[48];      /* last segment of role_definition_id */
  char principal_id[48];
  char principal_type[32];
} sq_role_assignment;

sq_code sq_role_assignment_parse(const json_t *j, sq_role_assignment *out, sq_err *err);
typedef int (*sq_role_assignment_fn)(void *ud, const sq_role_assignment *ra);
/* Role assignments that apply at scope (at it or above), optionally only
 * those of principal_id ($filter=atScope() and assignedTo('...')). */
sq_code sq_role_assignments_list(sq_arm *a, const char *scope, const char *principal_id,
                                 sq_role_assignment_fn fn, void *ud, sq_err *err);

#endif
