/* test_emu_seed.c — YAML conversion (types, no aliases, one document, bounded
 * depth), strict seed validation, and the sample seed's content in state. */
#include "emu_harness.h"

TEST(yaml_scalars_and_structure) {
  const char *y = "a: 1\nb: -2\nc: 1.5\nd: true\ne: null\nf: '12'\ng: ~\nh: [x, 'y', 3]\ni: {j: k}\nl: \"true\"\n";
  json_t *j = NULL;
  ASSERT_OK(emu_yaml_to_json(y, strlen(y), &j, NULL));
  ASSERT_EQ(json_integer_value(json_object_get(j, "a")), 1);
  ASSERT_EQ(json_integer_value(json_object_get(j, "b")), -2);
  ASSERT(json_is_real(json_object_get(j, "c")));
  ASSERT(json_is_true(json_object_get(j, "d")));
  ASSERT(json_is_null(json_object_get(j, "e")));
  ASSERT_STR_EQ(json_string_value(json_object_get(j, "f")), "12");
  ASSERT(json_is_null(json_object_get(j, "g")));
  ASSERT_EQ(json_array_size(json_object_get(j, "h")), 3);
  ASSERT_STR_EQ(sq_json_str(j, "i.j"), "k");
  ASSERT_STR_EQ(json_string_value(json_object_get(j, "l")), "true");
  json_decref(j);
}

TEST(yaml_bad_input) {
  const char *bad[] = {
      "a: &x 1\nb: *x\n",      /* alias */
      "a: 1\n---\nb: 2\n",     /* two documents */
      "a: [1, 2\n",            /* syntax */
      "a: 1\na: 2\n",          /* duplicate key */
      "? [1]\n: x\n",          /* non-scalar key */
  };
  for(size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    json_t *j = NULL;
    sq_err err;
    sq_err_clear(&err);
    ASSERT_NE(emu_yaml_to_json(bad[i], strlen(bad[i]), &j, &err), SQ_OK);
    ASSERT_NULL(j);
    ASSERT(err.message[0]);
  }
  char deep[1000] = "";
  for(int i = 0; i < 100; i++)
    strcat(deep, "[");
  json_t *j = NULL;
  ASSERT_NE(emu_yaml_to_json(deep, strlen(deep), &j, NULL), SQ_OK);
  json_t *empty = NULL;
  ASSERT_OK(emu_yaml_to_json("", 0, &empty, NULL));
  ASSERT(json_is_null(empty));
  json_decref(empty);
}

static int count(emu *e, const char *sql) {
  sqlite3_stmt *st = emu_sql(e, sql);
  int n = st && sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
  sqlite3_finalize(st);
  return n;
}

TEST(sample_seed_in_state) {
  emu *e = t_emu_open();
  ASSERT_NOT_NULL(e);
  ASSERT_EQ(count(e, "SELECT COUNT(*) FROM tenants"), 2);
  ASSERT_EQ(count(e, "SELECT COUNT(*) FROM subscriptions"), 3);
  ASSERT_EQ(count(e, "SELECT COUNT(*) FROM regions WHERE geography='US'"), 2);
  ASSERT_EQ(count(e, "SELECT COUNT(*) FROM identities WHERE kind='userAssigned'"), 2);
  ASSERT_EQ(count(e, "SELECT COUNT(*) FROM identity_certs"), 1);
  ASSERT_EQ(count(e, "SELECT COUNT(*) FROM identity_certs WHERE pem LIKE '%PRIVATE KEY%'"), 0);
  ASSERT_EQ(count(e, "SELECT COUNT(*) FROM federated_credentials"), 1);
  ASSERT_EQ(count(e, "SELECT COUNT(*) FROM issuers"), 1);
  ASSERT_EQ(count(e, "SELECT COUNT(*) FROM vaults WHERE rbac=1"), 1);
  ASSERT_EQ(count(e, "SELECT COUNT(*) FROM sql_servers"), 2);
  ASSERT_EQ(count(e, "SELECT COUNT(*) FROM sql_managed_instances"), 1);
  /* the same PEM imported into two vaults: same thumbprint */
  ASSERT_EQ(count(e, "SELECT COUNT(DISTINCT thumbprint) FROM kv_keys WHERE name='tde-shared'"), 1);
  ASSERT_EQ(count(e, "SELECT COUNT(*) FROM kv_keys WHERE name='tde-shared'"), 2);
  emu_identity id;
  ASSERT(emu_identity_by_client_id(e, T_UMI_CID, &id));
  ASSERT_STR_EQ(id.resource_id, "/subscriptions/" T_SUB1
                                "/resourceGroups/rg-tde/providers/Microsoft.ManagedIdentity/userAssignedIdentities/umi-db1");
  ASSERT_EQ(e->set.lro_delay_ms, 2000);
  t_emu_close(e);
}

TEST(seed_validation_errors) {
  emu *e = t_emu_open();
  ASSERT_NOT_NULL(e);
  struct {
    const char *json, *expect;
  } cases[] = {
      {"{\"tenant\": []}", "unknown field 'tenant'"},
      {"{\"tenants\": [{\"id\": \"not-a-guid\"}]}", "GUID"},
      {"{\"subscriptions\": [{\"id\": \"aaaaaaaa-0000-4000-8000-000000000009\", \"tenant\": "
       "\"99999999-9999-4999-8999-999999999999\"}]}", "unknown tenant"},
      {"{\"vaults\": [{\"name\": \"kv-x\", \"subscription\": \"" T_SUB1 "\", \"resourceGroup\": \"nope\", "
       "\"location\": \"eastus\"}]}", "unknown resource group"},
      {"{\"vaults\": [{\"name\": \"kv-y\", \"subscription\": \"" T_SUB1 "\", \"resourceGroup\": \"rg-tde\", "
       "\"location\": \"mars\"}]}", "unknown region"},
      {"{\"vaults\": [{\"name\": \"kv-z\", \"subscription\": \"" T_SUB1 "\", \"resourceGroup\": \"rg-tde\", "
       "\"location\": \"eastus\", \"enableSoftDelete\": false, \"enablePurgeProtection\": true}]}", "requires soft delete"},
      {"{\"roleAssignments\": [{\"scope\": \"/subscriptions/" T_SUB1 "\", \"role\": \"Janitor\", "
       "\"principalId\": \"" T_OP_OID "\"}]}", "unknown role"},
      {"{\"identities\": [{\"type\": \"robot\", \"name\": \"r\", \"tenant\": \"" T_TENANT "\", \"clientId\": \""
       T_OP_CID "\"}]}", "type must be"},
      {"{\"settings\": {\"tokenLifetimeSeconds\": 0}}", "tokenLifetimeSeconds"},
  };
  for(size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    json_t *j = json_loads(cases[i].json, 0, NULL);
    ASSERT_NOT_NULL(j);
    sq_err err;
    sq_err_clear(&err);
    ASSERT_NE(emu_seed_apply(e, j, NULL, &err), SQ_OK);
    ASSERT_STR_CONTAINS(err.message, cases[i].expect);
    json_decref(j);
  }
  /* a failed seed leaves nothing behind */
  ASSERT_EQ(count(e, "SELECT COUNT(*) FROM vaults WHERE name LIKE 'kv-_'"), 0);
  ASSERT_EQ(e->set.token_lifetime_s, 3600);
  t_emu_close(e);
}

TEST_MAIN()
