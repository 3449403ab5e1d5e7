/* Unit tests for azure/vaults.h: the Key Vault ARM resource (TDE fitness,
 * access-policy permissions) and role assignments, parsed bounded and typed. */
#include "sqltde/azure/vaults.h"
#include "test.h"

static const char *VAULT_JSON =
    "{\"id\":\"/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv1\",\"name\":\"kv1\","
    "\"type\":\"Microsoft.KeyVault/vaults\",\"location\":\"eastus\",\"tags\":{},\"properties\":{"
    "\"sku\":{\"family\":\"A\",\"name\":\"standard\"},\"tenantId\":\"t1\",\"accessPolicies\":["
    "{\"tenantId\":\"t1\",\"objectId\":\"OID-1\",\"permissions\":{\"keys\":[\"Get\",\"wrapKey\",\"unwrapKey\"],\"secrets\":[]}},"
    "{\"tenantId\":\"t1\",\"objectId\":\"oid-2\",\"permissions\":{\"keys\":[\"all\"]}},"
    "{\"tenantId\":\"t1\",\"objectId\":\"oid-1\",\"permissions\":{\"keys\":[\"list\",\"someFuturePerm\"]}}],"
    "\"enableSoftDelete\":true,\"softDeleteRetentionInDays\":7,\"enableRbacAuthorization\":false,"
    "\"enablePurgeProtection\":true,\"vaultUri\":\"https://kv1.vault.azure.net/\",\"newField\":[1]}}";

TEST(vault_resource) {
  json_t *j = json_loads(VAULT_JSON, 0, NULL);
  ASSERT_NOT_NULL(j);
  sq_vault v;
  sq_err e;
  ASSERT_OK(sq_vault_parse(j, &v, &e));
  ASSERT_STR_EQ(v.name, "kv1");
  ASSERT_STR_EQ(v.vault_uri, "https://kv1.vault.azure.net/");
  ASSERT_EQ(v.soft_delete, 1);
  ASSERT_EQ(v.purge_protection, 1);
  ASSERT_EQ(v.rbac, 0);
  ASSERT_EQ(v.retention_days, 7);
  ASSERT_EQ(v.n_policies, 3);
  /* policies for one principal add up; object ids compare case-insensitively */
  unsigned p1 = sq_vault_key_perms(&v, "oid-1");
  ASSERT_EQ(p1 & SQ_KP_TDE, SQ_KP_TDE);
  ASSERT(p1 & SQ_KP_LIST);
  ASSERT(!(p1 & SQ_KP_CREATE));
  unsigned p2 = sq_vault_key_perms(&v, "oid-2");
  ASSERT_EQ(p2 & SQ_KP_TDE, SQ_KP_TDE);
  ASSERT(!(p2 & SQ_KP_PURGE)); /* "all" is not purge */
  ASSERT_EQ(sq_vault_key_perms(&v, "stranger"), 0);
  sq_vault_free(&v);
  json_decref(j);

  /* defaults when Azure omits the flags */
  j = json_loads("{\"id\":\"/v\",\"properties\":{}}", 0, NULL);
  ASSERT_OK(sq_vault_parse(j, &v, &e));
  ASSERT_EQ(v.soft_delete, 1);
  ASSERT_EQ(v.purge_protection, 0);
  ASSERT_EQ(v.retention_days, 90);
  sq_vault_free(&v);
  json_decref(j);

  const char *bad[] = {"{\"properties\":{}}", "{\"id\":\"/v\"}", "{\"id\":\"/v\",\"properties\":{\"accessPolicies\":{}}}",
                       "{\"id\":\"/v\",\"properties\":{\"accessPolicies\":[5]}}",
                       "{\"id\":\"/v\",\"properties\":{\"accessPolicies\":[{\"permissions\":{\"keys\":\"get\"}}]}}"};
  for(size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    j = json_loads(bad[i], 0, NULL);
    ASSERT_EQ(sq_vault_parse(j, &v, &e), SQ_EPARSE);
    ASSERT_NULL(v.policies);
    json_decref(j);
  }
}

TEST(role_assignment) {
  json_t *j = json_loads(
      "{\"id\":\"/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv1/providers/"
      "Microsoft.Authorization/roleAssignments/r1\",\"name\":\"r1\",\"properties\":{\"roleDefinitionId\":"
      "\"/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/e147488a-f6f5-4113-8e2d-b22465e65bf6\","
      "\"principalId\":\"p1\",\"principalType\":\"ServicePrincipal\",\"scope\":\"/subscriptions/s/resourceGroups/rg\"}}",
      0, NULL);
  sq_role_assignment ra;
  sq_err e;
  ASSERT_OK(sq_role_assignment_parse(j, &ra, &e));
  ASSERT_STR_EQ(ra.role_guid, "e147488a-f6f5-4113-8e2d-b22465e65bf6");
  ASSERT_STR_EQ(ra.principal_id, "p1");
  ASSERT_STR_EQ(ra.scope, "/subscriptions/s/resourceGroups/rg");
  json_decref(j);
  j = json_loads("{\"name\":\"x\"}", 0, NULL);
  ASSERT_EQ(sq_role_assignment_parse(j, &ra, &e), SQ_EPARSE);
  json_decref(j);
}

TEST(permission_names) {
  ASSERT_EQ(sq_vault_key_perm_bit("WRAPKEY"), SQ_KP_WRAP);
  ASSERT_EQ(sq_vault_key_perm_bit("unwrapKey"), SQ_KP_UNWRAP);
  ASSERT_EQ(sq_vault_key_perm_bit("nonsense"), 0);
  ASSERT_EQ(sq_vault_key_perm_bit(NULL), 0);
}

TEST_MAIN()
