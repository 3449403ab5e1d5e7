/* Unit tests for the ManagedIdentity decisions (operator/keypolicy.h): which
 * of get / wrapKey / unwrapKey an identity holds on a key, from access
 * policies or role assignments, and the pending window after a grant. */
#include <string.h>

#include "sqltde/jsonx.h"
#include "sqltde/operator/keypolicy.h"
#include "test.h"

#define P "0d0d0d0d-0000-4000-8000-000000000001"
#define SUB "/subscriptions/aaaaaaaa-0000-4000-8000-000000000001"
#define RG SUB "/resourceGroups/rg-tde"
#define VAULT RG "/providers/Microsoft.KeyVault/vaults/kv1"
#define DEF(g) SUB "/providers/Microsoft.Authorization/roleDefinitions/" g

TEST(access_policies_union_for_the_principal_only) {
  json_t *j = json_loads(
      "{\"id\":\"" VAULT "\",\"name\":\"kv1\",\"properties\":{\"accessPolicies\":["
      "{\"tenantId\":\"t\",\"objectId\":\"0D0D0D0D-0000-4000-8000-000000000001\",\"permissions\":{\"keys\":[\"Get\",\"WrapKey\"]}},"
      "{\"tenantId\":\"t\",\"objectId\":\"" P "\",\"permissions\":{\"keys\":[\"unwrapKey\",\"list\"],\"secrets\":[\"all\"]}},"
      "{\"tenantId\":\"t\",\"objectId\":\"ffffffff-0000-4000-8000-000000000001\",\"permissions\":{\"keys\":[\"all\"]}}]}}",
      0, NULL);
  ASSERT_NOT_NULL(j);
  sq_vault v;
  memset(&v, 0, sizeof v);
  ASSERT_OK(sq_vault_parse(j, &v, NULL));
  ASSERT_EQ(sq_access_from_policy(sq_vault_key_perms(&v, P)), SQ_ACCESS_ALL);
  ASSERT_EQ(sq_access_from_policy(sq_vault_key_perms(&v, "ffffffff-0000-4000-8000-000000000001")), SQ_ACCESS_ALL);
  ASSERT_EQ(sq_access_from_policy(sq_vault_key_perms(&v, "eeeeeeee-0000-4000-8000-000000000001")), 0);
  sq_vault_free(&v);
  /* without the second entry: unwrapKey missing */
  json_array_remove(sq_json_path(j, "properties.accessPolicies"), 1);
  ASSERT_OK(sq_vault_parse(j, &v, NULL));
  ASSERT_EQ(sq_access_from_policy(sq_vault_key_perms(&v, P)), SQ_ACCESS_GET | SQ_ACCESS_WRAP);
  sq_vault_free(&v);
  json_decref(j);
  ASSERT_EQ(sq_access_from_policy(SQ_KP_LIST | SQ_KP_CREATE | SQ_KP_DECRYPT), 0);
  ASSERT_EQ(sq_access_from_policy(SQ_KP_TDE), SQ_ACCESS_ALL);
}

static sq_role_assignment ra(const char *scope, const char *role, const char *principal) {
  sq_role_assignment r;
  memset(&r, 0, sizeof r);
  snprintf(r.scope, sizeof r.scope, "%s", scope);
  snprintf(r.role_definition_id, sizeof r.role_definition_id, "%s", role);
  snprintf(r.principal_id, sizeof r.principal_id, "%s", principal);
  return r;
}

TEST(role_perms) {
  ASSERT_EQ(sq_access_role_perms(DEF(SQ_ROLE_KV_CRYPTO_SERVICE_ENCRYPTION_USER)), SQ_ACCESS_ALL);
  ASSERT_EQ(sq_access_role_perms("E147488A-F6F5-4113-8E2D-B22465E65BF6"), SQ_ACCESS_ALL);
  ASSERT_EQ(sq_access_role_perms(DEF(SQ_ROLE_KV_CRYPTO_OFFICER)), SQ_ACCESS_ALL);
  ASSERT_EQ(sq_access_role_perms(DEF(SQ_ROLE_KV_ADMINISTRATOR)), SQ_ACCESS_ALL);
  ASSERT_EQ(sq_access_role_perms(DEF(SQ_ROLE_KV_CRYPTO_USER)), SQ_ACCESS_ALL);
  ASSERT_EQ(sq_access_role_perms(DEF(SQ_ROLE_KV_READER)), SQ_ACCESS_GET);
  ASSERT_EQ(sq_access_role_perms(DEF("8e3af657-a8ff-443c-a75c-2fe8c4bcb635")), 0); /* Owner: control plane only */
  ASSERT_EQ(sq_access_role_perms(NULL), 0);
}

TEST(rbac_scopes) {
  static const struct {
    const char *scope;
    int counts;
  } rows[] = {
      {VAULT, 1},
      {VAULT "/", 1},
      {RG, 1},
      {SUB, 1},
      {"/", 1},
      {"/providers/Microsoft.Management/managementGroups/mg1", 1},
      {VAULT "/keys/tde1", 1},
      {VAULT "/keys/TDE1", 1},
      {VAULT "/keys/tde10", 0},   /* another key */
      {VAULT "/keys/other", 0},
      {RG "/providers/Microsoft.KeyVault/vaults/kv10", 0}, /* a sibling vault sharing a prefix */
      {RG "/providers/Microsoft.KeyVault/vaults/kv2", 0},
      {SUB "/resourceGroups/rg-tde2", 0},
  };
  for(size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    sq_role_assignment a = ra(rows[i].scope, DEF(SQ_ROLE_KV_CRYPTO_SERVICE_ENCRYPTION_USER), P);
    unsigned got = sq_access_rbac_perms(&a, 1, P, VAULT, "tde1");
    if(got != (rows[i].counts ? SQ_ACCESS_ALL : 0))
      TEST_FAIL_("scope %s: got %u", rows[i].scope, got);
  }
}

TEST(rbac_principal_and_union) {
  sq_role_assignment a[3];
  a[0] = ra(VAULT, DEF(SQ_ROLE_KV_CRYPTO_SERVICE_ENCRYPTION_USER), "ffffffff-0000-4000-8000-000000000001");
  a[1] = ra(RG, DEF(SQ_ROLE_KV_READER), "0D0D0D0D-0000-4000-8000-000000000001");
  a[2] = ra(VAULT "/keys/tde1", DEF(SQ_ROLE_KV_CRYPTO_USER), P);
  ASSERT_EQ(sq_access_rbac_perms(a, 1, P, VAULT, "tde1"), 0);
  ASSERT_EQ(sq_access_rbac_perms(a, 2, P, VAULT, "tde1"), SQ_ACCESS_GET);
  ASSERT_EQ(sq_access_rbac_perms(a, 3, P, VAULT, "tde1"), SQ_ACCESS_ALL);
  ASSERT_EQ(sq_access_rbac_perms(NULL, 0, P, VAULT, "tde1"), 0);
  ASSERT_EQ(sq_access_rbac_perms(a, 3, NULL, VAULT, "tde1"), 0);
  /* only the role guid known (role_definition_id empty) */
  sq_role_assignment g = ra(VAULT, "", P);
  snprintf(g.role_guid, sizeof g.role_guid, "%s", SQ_ROLE_KV_CRYPTO_SERVICE_ENCRYPTION_USER);
  ASSERT_EQ(sq_access_rbac_perms(&g, 1, P, VAULT, "tde1"), SQ_ACCESS_ALL);
}

TEST(names) {
  char s[64];
  sq_access_names(SQ_ACCESS_WRAP | SQ_ACCESS_UNWRAP, s, sizeof s);
  ASSERT_STR_EQ(s, "wrapKey, unwrapKey");
  sq_access_names(0, s, sizeof s);
  ASSERT_STR_EQ(s, "");
  sq_access_names(SQ_ACCESS_ALL, s, sizeof s);
  ASSERT_STR_EQ(s, "get, wrapKey, unwrapKey");
}

TEST(granted_at_and_pending_window) {
  const int64_t now = 1700000000, delay_ms = 10 * 60 * 1000;
  static const struct {
    unsigned perms;
    int64_t prev, observed, want;
  } rows[] = {
      {SQ_ACCESS_GET, 1699990000, 1699990000, 0},  /* not all held: nothing recorded */
      {SQ_ACCESS_ALL, 0, 0, 1700000000},           /* first seen now */
      {SQ_ACCESS_ALL, 1699000000, 0, 1699000000},  /* keep what status recorded */
      {SQ_ACCESS_ALL, 1699000000, 1600000000, 1699000000},
      {SQ_ACCESS_ALL, 0, 1600000000, 1600000000},  /* Azure says since when */
      {SQ_ACCESS_ALL, 0, 1800000000, 1700000000},  /* a clock ahead of ours is capped */
  };
  for(size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
    ASSERT_EQ(sq_access_granted_at(rows[i].perms, rows[i].prev, rows[i].observed, now), rows[i].want);

  ASSERT_EQ(sq_access_state_of(SQ_ACCESS_GET | SQ_ACCESS_WRAP, now, now, delay_ms), SQ_ACC_MISSING);
  ASSERT_EQ(sq_access_state_of(SQ_ACCESS_ALL, now, now, delay_ms), SQ_ACC_PENDING);
  ASSERT_EQ(sq_access_state_of(SQ_ACCESS_ALL, now - 599, now, delay_ms), SQ_ACC_PENDING);
  ASSERT_EQ(sq_access_state_of(SQ_ACCESS_ALL, now - 600, now, delay_ms), SQ_ACC_GRANTED);
  ASSERT_EQ(sq_access_state_of(SQ_ACCESS_ALL, 0, now, delay_ms), SQ_ACC_PENDING);
  ASSERT_EQ(sq_access_state_of(SQ_ACCESS_ALL, now, now, 0), SQ_ACC_GRANTED);
  ASSERT_STR_EQ(sq_access_state_name(SQ_ACC_PENDING), "Pending");
  ASSERT_STR_EQ(sq_access_state_name(SQ_ACC_UNVERIFIED), "Unverified");
}

TEST_MAIN()
