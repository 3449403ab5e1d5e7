/* Unit tests for azure/sql.h mapping: Microsoft.Sql JSON -> structs (bounded,
 * typed errors, unknown fields ignored) and request bodies for every create
 * mode and the PATCH with null removals (azure-api.md §1-2). */
#include "sqltde/azure/sql.h"
#include "sqltde/jsonx.h"
#include "test.h"

static json_t *J(const char *s) {
  json_error_t je;
  json_t *j = json_loads(s, JSON_REJECT_DUPLICATES, &je);
  if(!j)
    fprintf(stderr, "bad test JSON: %s\n", je.text);
  return j;
}

/* azure-api.md §1.6, "GET with $expand=keys" */
static const char *DB_EXPANDED =
    "{\"id\":\"/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Sql/servers/testsvr/databases/testdb\","
    "\"name\":\"testdb\",\"type\":\"Microsoft.Sql/servers/databases\",\"location\":\"southeastasia\","
    "\"kind\":\"v12.0,user,vcore\",\"sku\":{\"name\":\"BC_Gen5\",\"tier\":\"BusinessCritical\",\"capacity\":2},"
    "\"identity\":{\"type\":\"UserAssigned\",\"tenantId\":\"11111111-1111-1111-1111-111111111111\","
    "\"userAssignedIdentities\":{\"/subscriptions/s1/resourcegroups/rg/providers/"
    "Microsoft.ManagedIdentity/userAssignedIdentities/umi\":{\"principalId\":\"22222222-0000-0000-0000-000000000000\","
    "\"clientId\":\"33333333-0000-0000-0000-000000000000\"}}},"
    "\"properties\":{\"status\":\"Online\",\"databaseId\":\"6c764297-577b-470f-9af4-96d3d41e2ba3\","
    "\"creationDate\":\"2025-05-01T10:00:00.123Z\",\"someFutureField\":{\"x\":[1,2]},"
    "\"keys\":{\"https://kv1.vault.azure.net/keys/tde1/0123456789abcdef0123456789abcdef\":{"
    "\"type\":\"AzureKeyVault\",\"thumbprint\":\"00112233445566778899AABBCCDDEEFFAABBCCDD\","
    "\"creationDate\":\"2025-05-01T10:00:00Z\",\"subregion\":\"southeastasia\","
    "\"keyVersion\":\"0123456789abcdef0123456789abcdef\"},"
    "\"https://kv1.vault.azure.net/keys/tde2/fedcba9876543210fedcba9876543210\":{}},"
    "\"encryptionProtector\":\"https://kv1.vault.azure.net/keys/tde1/0123456789abcdef0123456789abcdef\","
    "\"encryptionProtectorAutoRotation\":false}}";

TEST(database_parse) {
  json_t *j = J(DB_EXPANDED);
  sq_sql_database d;
  sq_err e;
  ASSERT_OK(sq_sql_db_parse(j, &d, &e));
  ASSERT_STR_EQ(d.name, "testdb");
  ASSERT_STR_EQ(d.location, "southeastasia");
  ASSERT_STR_EQ(d.sku_name, "BC_Gen5");
  ASSERT_STR_EQ(d.status, "Online");
  ASSERT_STR_EQ(d.identity.type, "UserAssigned");
  ASSERT_EQ(d.identity.n_umis, 1);
  ASSERT_STR_CONTAINS(d.identity.umis[0].id, "userAssignedIdentities/umi");
  ASSERT_STR_EQ(d.identity.umis[0].client_id, "33333333-0000-0000-0000-000000000000");
  ASSERT_EQ(d.auto_rotation, 0);
  ASSERT_STR_EQ(d.encryption_protector,
                "https://kv1.vault.azure.net/keys/tde1/0123456789abcdef0123456789abcdef");
  ASSERT(d.keys_present);
  ASSERT_EQ(d.n_keys, 2);
  int found = 0;
  for(size_t i = 0; i < d.n_keys; i++) {
    if(strstr(d.keys[i].uri, "tde1")) {
      found++;
      ASSERT_STR_EQ(d.keys[i].thumbprint, "00112233445566778899AABBCCDDEEFFAABBCCDD");
      ASSERT_EQ(d.keys[i].creation_date, 1746093600);
      ASSERT_STR_EQ(d.keys[i].type, "AzureKeyVault");
    } else {
      ASSERT_STR_EQ(d.keys[i].thumbprint, ""); /* {} values, as in the spec examples */
    }
  }
  ASSERT_EQ(found, 1);
  ASSERT_EQ(d.creation_date, 1746093600);
  sq_sql_database_free(&d);
  json_decref(j);

  /* a plain GET: no keys map, absent tri-state */
  j = J("{\"id\":\"/x/databases/d\",\"properties\":{\"status\":\"Inaccessible\"}}");
  ASSERT_OK(sq_sql_db_parse(j, &d, &e));
  ASSERT(!d.keys_present);
  ASSERT_EQ(d.n_keys, 0);
  ASSERT_EQ(d.auto_rotation, -1);
  ASSERT_STR_EQ(d.status, "Inaccessible");
  sq_sql_database_free(&d);
  json_decref(j);
}

TEST(database_parse_errors) {
  struct {
    const char *json;
    sq_code code;
    const char *msg;
  } cases[] = {
      {"{\"name\":\"x\"}", SQ_EPARSE, "no id"},
      {"[]", SQ_EPARSE, "not a JSON object"},
      {"{\"id\":5}", SQ_EPARSE, "id"},
      {"{\"id\":\"/d\",\"properties\":[]}", SQ_EPARSE, "properties"},
      {"{\"id\":\"/d\",\"properties\":{\"keys\":[]}}", SQ_EPARSE, "keys"},
      {"{\"id\":\"/d\",\"properties\":{\"keys\":{\"u\":5}}}", SQ_EPARSE, "keys entry"},
      {"{\"id\":\"/d\",\"properties\":{\"status\":true}}", SQ_EPARSE, "status"},
      {"{\"id\":\"/d\",\"properties\":{\"creationDate\":\"yesterday\"}}", SQ_EPARSE, "creationDate"},
      {"{\"id\":\"/d\",\"identity\":\"UserAssigned\"}", SQ_EPARSE, "identity"},
      {"{\"id\":\"/d\",\"identity\":{\"userAssignedIdentities\":[]}}", SQ_EPARSE, "userAssigned"},
  };
  for(size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    json_t *j = J(cases[i].json);
    ASSERT_NOT_NULL(j);
    sq_sql_database d;
    sq_err e;
    sq_err_clear(&e);
    ASSERT_EQ(sq_sql_db_parse(j, &d, &e), cases[i].code);
    ASSERT_STR_CONTAINS(e.message, cases[i].msg);
    ASSERT_NULL(d.keys); /* nothing leaks on failure */
    json_decref(j);
  }
  /* bounds: too many keys / identities / an overlong protector */
  json_t *keys = json_object();
  for(int i = 0; i < SQ_SQL_MAX_KEYS + 1; i++) {
    char k[80];
    snprintf(k, sizeof k, "https://kv.vault.azure.net/keys/k%d", i);
    json_object_set_new(keys, k, json_object());
  }
  json_t *j = json_pack("{s:s,s:{s:o}}", "id", "/d", "properties", "keys", keys);
  sq_sql_database d;
  sq_err e;
  ASSERT_EQ(sq_sql_db_parse(j, &d, &e), SQ_ETOOBIG);
  json_decref(j);
  char longv[SQ_SQL_URI_MAX + 10];
  memset(longv, 'a', sizeof longv);
  longv[sizeof longv - 1] = '\0';
  j = json_pack("{s:s,s:{s:s}}", "id", "/d", "properties", "encryptionProtector", longv);
  ASSERT_EQ(sq_sql_db_parse(j, &d, &e), SQ_ETOOBIG);
  json_decref(j);
  /* a date without zone designator is UTC */
  j = J("{\"id\":\"/d\",\"properties\":{\"creationDate\":\"2017-06-07T04:51:33.203\"}}");
  ASSERT_OK(sq_sql_db_parse(j, &d, &e));
  ASSERT_EQ(d.creation_date, 1496811093);
  json_decref(j);
}

TEST(expand_queries) {
  char q[256];
  sq_err e;
  ASSERT_OK(sq_sql_expand_query(SQ_SQL_KEYS_NONE, 0, q, sizeof q, &e));
  ASSERT_STR_EQ(q, "");
  ASSERT_OK(sq_sql_expand_query(SQ_SQL_KEYS_ALL, 0, q, sizeof q, &e));
  ASSERT_STR_EQ(q, "$expand=keys");
  ASSERT_OK(sq_sql_expand_query(SQ_SQL_KEYS_CURRENT, 0, q, sizeof q, &e));
  ASSERT_STR_EQ(q, "$expand=keys%28%24filter%3DpointInTime%28%27current%27%29%29");
  ASSERT_OK(sq_sql_expand_query(SQ_SQL_KEYS_AT, 1675475862, q, sizeof q, &e));
  ASSERT_STR_EQ(q, "$expand=keys%28%24filter%3DpointInTime%28%272023-02-04T01%3A57%3A42Z%27%29%29");
  ASSERT_EQ(sq_sql_expand_query(SQ_SQL_KEYS_AT, 0, q, sizeof q, &e), SQ_EINVAL);
  ASSERT_EQ(sq_sql_expand_query(SQ_SQL_KEYS_CURRENT, 0, q, 10, &e), SQ_ETOOBIG);
}

TEST(ids_and_key_names) {
  char id[SQ_SQL_ID_MAX], db[SQ_SQL_ID_MAX], name[256];
  sq_err e;
  ASSERT_OK(sq_sql_server_id("sub-1", "my rg(1)", "svr", id, sizeof id, &e));
  ASSERT_STR_EQ(id, "/subscriptions/sub-1/resourceGroups/my%20rg%281%29/providers/Microsoft.Sql/servers/svr");
  ASSERT_OK(sq_sql_database_id(id, "db1", db, sizeof db, &e));
  ASSERT_STR_CONTAINS(db, "/servers/svr/databases/db1");
  ASSERT_OK(sq_sql_mi_id("s", "g", "mi1", id, sizeof id, &e));
  ASSERT_STR_EQ(id, "/subscriptions/s/resourceGroups/g/providers/Microsoft.Sql/managedInstances/mi1");
  ASSERT_EQ(sq_sql_server_id("s", "", "svr", id, sizeof id, &e), SQ_EINVAL);
  ASSERT_EQ(sq_sql_server_id("s", "..", "svr", id, sizeof id, &e), SQ_EINVAL);
  ASSERT_EQ(sq_sql_server_id("s", "g", "svr", id, 20, &e), SQ_ETOOBIG);

  ASSERT_OK(sq_sql_server_key_name("https://someVault.vault.azure.net/keys/someKey/01234567890123456789012345678901",
                                   name, sizeof name, &e));
  ASSERT_STR_EQ(name, "someVault_someKey_01234567890123456789012345678901");
  ASSERT_OK(sq_sql_server_key_name("https://someVault.vault.azure.net/keys/someKey", name, sizeof name, &e));
  ASSERT_STR_EQ(name, "someVault_someKey");
  ASSERT_OK(sq_sql_server_key_name("https://kv1.vault.localhost:8443/keys/k1/abc", name, sizeof name, &e));
  ASSERT_STR_EQ(name, "kv1_k1_abc");
  ASSERT_EQ(sq_sql_server_key_name("https://kv.vault.azure.net/yourKey/yourKeyVersion", name, sizeof name, &e),
            SQ_EPARSE);
}

TEST(create_bodies_per_mode) {
  const char *keys[] = {"https://kv1.vault.azure.net/keys/tde2/v2", NULL};
  const char *prot = "https://kv1.vault.azure.net/keys/tde1/v1";
  const char *umi = "/subscriptions/s/resourcegroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/umi";
  const char *src = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Sql/servers/p/databases/db";
  sq_err e;
  json_t *b = NULL;

  sq_sql_db_create_args c = {.location = "westus", .mode = SQ_SQL_CREATE_SECONDARY,
                             .source_database_id = src, .secondary_type = "Geo", .umi_id = umi,
                             .keys = keys, .encryption_protector = prot, .auto_rotation = 0,
                             .federated_client_id = "00000000-0000-0000-0000-000000000001"};
  ASSERT_OK(sq_sql_db_create_body(&c, &b, &e));
  ASSERT_STR_EQ(sq_json_str(b, "location"), "westus");
  ASSERT_STR_EQ(sq_json_str(b, "identity.type"), "UserAssigned");
  ASSERT(json_is_object(json_object_get(sq_json_path(b, "identity.userAssignedIdentities"), umi)));
  ASSERT_STR_EQ(sq_json_str(b, "properties.createMode"), "Secondary");
  ASSERT_STR_EQ(sq_json_str(b, "properties.secondaryType"), "Geo");
  ASSERT_STR_EQ(sq_json_str(b, "properties.sourceDatabaseId"), src);
  json_t *km = sq_json_path(b, "properties.keys");
  ASSERT_EQ(json_object_size(km), 2); /* the protector is added to the key list */
  ASSERT(json_is_object(json_object_get(km, prot)));
  ASSERT(json_is_object(json_object_get(km, keys[0])));
  ASSERT_STR_EQ(sq_json_str(b, "properties.encryptionProtector"), prot);
  ASSERT(json_is_false(sq_json_path(b, "properties.encryptionProtectorAutoRotation")));
  ASSERT_STR_EQ(sq_json_str(b, "properties.federatedClientId"), "00000000-0000-0000-0000-000000000001");
  json_decref(b);

  /* PITR carries an RFC 3339 restore point */
  sq_sql_db_create_args pitr = {.location = "eastus", .mode = SQ_SQL_CREATE_PITR,
                                .source_database_id = src, .restore_point_in_time = 1675475862,
                                .auto_rotation = -1};
  ASSERT_OK(sq_sql_db_create_body(&pitr, &b, &e));
  ASSERT_STR_EQ(sq_json_str(b, "properties.createMode"), "PointInTimeRestore");
  ASSERT_STR_EQ(sq_json_str(b, "properties.restorePointInTime"), "2023-02-04T01:57:42Z");
  ASSERT_NULL(sq_json_path(b, "properties.encryptionProtectorAutoRotation"));
  ASSERT_NULL(json_object_get(b, "identity"));
  json_decref(b);

  /* each mode's required fields */
  struct {
    sq_sql_db_create_args a;
    const char *msg;
  } bad[] = {
      {{.location = "l", .mode = SQ_SQL_CREATE_COPY, .auto_rotation = -1}, "sourceDatabaseId"},
      {{.location = "l", .mode = SQ_SQL_CREATE_PITR, .source_database_id = src, .auto_rotation = -1},
       "restorePointInTime"},
      {{.location = "l", .mode = SQ_SQL_CREATE_RESTORE, .source_database_id = src, .auto_rotation = -1},
       "restorableDroppedDatabaseId"},
      {{.location = "l", .mode = SQ_SQL_CREATE_RECOVERY, .auto_rotation = -1}, "recoverableDatabaseId"},
      {{.location = "l", .mode = SQ_SQL_CREATE_RESTORE_LTR, .auto_rotation = -1},
       "longTermRetentionBackupResourceId"},
      {{.mode = SQ_SQL_CREATE_DEFAULT, .auto_rotation = -1}, "location"},
      {{.location = "l", .encryption_protector = "https://kv/keys/a/b", .auto_rotation = -1},
       "user-assigned identity"},
      {{.location = "l", .mode = (sq_sql_create_mode)99, .auto_rotation = -1}, "createMode"},
      {{.location = "l", .mode = SQ_SQL_CREATE_SECONDARY, .source_database_id = src,
        .secondary_type = "Primary", .auto_rotation = -1},
       "secondaryType"},
  };
  for(size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    b = (json_t *)1;
    ASSERT_EQ(sq_sql_db_create_body(&bad[i].a, &b, &e), SQ_EINVAL);
    ASSERT_NULL(b);
    ASSERT_STR_CONTAINS(e.message, bad[i].msg);
  }
  /* the good variants of the same modes */
  sq_sql_db_create_args good[] = {
      {.location = "l", .mode = SQ_SQL_CREATE_RESTORE, .restorable_dropped_database_id = "/x/db,1332", .auto_rotation = -1},
      {.location = "l", .mode = SQ_SQL_CREATE_RESTORE, .source_database_id = src,
       .source_database_deletion_date = 1675475862, .auto_rotation = -1},
      {.location = "l", .mode = SQ_SQL_CREATE_RECOVERY, .recoverable_database_id = "/x/r", .auto_rotation = -1},
      {.location = "l", .mode = SQ_SQL_CREATE_RESTORE_LTR, .ltr_backup_id = "/x/ltr", .auto_rotation = -1},
      {.location = "l", .mode = SQ_SQL_CREATE_COPY, .source_database_id = src, .auto_rotation = -1},
      {.location = "l", .mode = SQ_SQL_CREATE_ONLINE_SECONDARY, .source_database_id = src, .auto_rotation = -1},
      {.location = "l", .mode = SQ_SQL_CREATE_RESTORE_EXT, .auto_rotation = -1},
      {.location = "l", .mode = SQ_SQL_CREATE_RESTORE_EXT_SECONDARY, .auto_rotation = -1},
  };
  const char *modes[] = {"Restore", "Restore", "Recovery", "RestoreLongTermRetentionBackup", "Copy",
                         "OnlineSecondary", "RestoreExternalBackup", "RestoreExternalBackupSecondary"};
  for(size_t i = 0; i < sizeof good / sizeof *good; i++) {
    ASSERT_OK(sq_sql_db_create_body(&good[i], &b, &e));
    ASSERT_STR_EQ(sq_json_str(b, "properties.createMode"), modes[i]);
    json_decref(b);
  }
}

TEST(patch_body_with_null_removals) {
  const char *add[] = {"https://kv1.vault.azure.net/keys/tde3/aaa", NULL};
  const char *rm[] = {"https://kv1.vault.azure.net/keys/tde2/fed", NULL};
  const char *umi_rm[] = {"/x/userAssignedIdentities/umiToDelete", NULL};
  sq_sql_db_patch_args p = {.umi_set = "/x/userAssignedIdentities/umi", .umi_remove = umi_rm,
                            .keys_add = add, .keys_remove = rm,
                            .encryption_protector = "https://kv1.vault.azure.net/keys/tde3/aaa",
                            .auto_rotation = 1, .federated_client_id = ""};
  json_t *b = NULL;
  sq_err e;
  ASSERT_OK(sq_sql_db_patch_body(&p, &b, &e));
  char *s = sq_json_dump(b);
  /* exactly the shape of the 2023-08-01 PATCH example (azure-api.md §1.6) */
  ASSERT_STR_EQ(s, "{\"identity\":{\"type\":\"UserAssigned\",\"userAssignedIdentities\":{"
                   "\"/x/userAssignedIdentities/umi\":{},\"/x/userAssignedIdentities/umiToDelete\":null}},"
                   "\"properties\":{\"encryptionProtector\":\"https://kv1.vault.azure.net/keys/tde3/aaa\","
                   "\"encryptionProtectorAutoRotation\":true,\"federatedClientId\":null,\"keys\":{"
                   "\"https://kv1.vault.azure.net/keys/tde2/fed\":null,"
                   "\"https://kv1.vault.azure.net/keys/tde3/aaa\":{}}}}");
  free(s);
  json_decref(b);

  sq_sql_db_patch_args only_rot = {.auto_rotation = 0};
  ASSERT_OK(sq_sql_db_patch_body(&only_rot, &b, &e));
  s = sq_json_dump(b);
  ASSERT_STR_EQ(s, "{\"properties\":{\"encryptionProtectorAutoRotation\":false}}");
  free(s);
  json_decref(b);

  sq_sql_db_patch_args nothing = {.auto_rotation = -1};
  ASSERT_EQ(sq_sql_db_patch_body(&nothing, &b, &e), SQ_EINVAL);
  const char *both[] = {"https://kv1.vault.azure.net/keys/x/1", NULL};
  sq_sql_db_patch_args conflict = {.keys_add = both, .keys_remove = both, .auto_rotation = -1};
  ASSERT_EQ(sq_sql_db_patch_body(&conflict, &b, &e), SQ_EINVAL);
  ASSERT_STR_CONTAINS(e.message, "both added and removed");
}

TEST(server_key_protector_parse) {
  json_t *k = J("{\"id\":\"/s/servers/svr/keys/someVault_someKey_0123\",\"name\":\"someVault_someKey_0123\","
                "\"type\":\"Microsoft.Sql/servers/keys\",\"location\":\"Japan East\",\"kind\":\"azurekeyvault\","
                "\"properties\":{\"serverKeyType\":\"AzureKeyVault\",\"uri\":\"https://someVault.vault.azure.net/keys/someKey/0123\","
                "\"thumbprint\":\"00112233445566778899AABBCCDDEEFFAABBCCDD\",\"creationDate\":\"2024-11-15T00:00:00Z\","
                "\"autoRotationEnabled\":true}}");
  sq_sql_server_key sk;
  sq_err e;
  ASSERT_OK(sq_sql_server_key_parse(k, &sk, &e));
  ASSERT_STR_EQ(sk.name, "someVault_someKey_0123");
  ASSERT_STR_EQ(sk.server_key_type, "AzureKeyVault");
  ASSERT_STR_EQ(sk.thumbprint, "00112233445566778899AABBCCDDEEFFAABBCCDD");
  ASSERT_EQ(sk.auto_rotation_enabled, 1);
  ASSERT_EQ(sk.creation_date, 1731628800);
  json_decref(k);

  json_t *p = J("{\"id\":\"/s/servers/svr/encryptionProtector/current\",\"name\":\"current\",\"kind\":\"azurekeyvault\","
                "\"properties\":{\"serverKeyName\":\"someVault_someKey_0123\",\"serverKeyType\":\"AzureKeyVault\","
                "\"uri\":\"https://someVault.vault.azure.net/keys/someKey/0123\",\"autoRotationEnabled\":false}}");
  sq_sql_protector pr;
  ASSERT_OK(sq_sql_protector_parse(p, &pr, &e));
  ASSERT_STR_EQ(pr.server_key_name, "someVault_someKey_0123");
  ASSERT_EQ(pr.auto_rotation_enabled, 0);
  ASSERT_STR_EQ(pr.thumbprint, "");
  json_decref(p);

  json_t *srv = J("{\"id\":\"/s/servers/svr\",\"name\":\"svr\",\"location\":\"eastus\",\"identity\":{\"type\":"
                  "\"SystemAssigned,UserAssigned\",\"principalId\":\"p1\",\"userAssignedIdentities\":{\"/u/1\":{},\"/u/2\":{}}},"
                  "\"properties\":{\"primaryUserAssignedIdentityId\":\"/u/1\",\"keyId\":\"https://kv/keys/k/1\","
                  "\"state\":\"Ready\",\"fullyQualifiedDomainName\":\"svr.database.windows.net\"}}");
  sq_sql_server sv;
  ASSERT_OK(sq_sql_server_parse(srv, &sv, &e));
  ASSERT_STR_EQ(sv.identity.type, "SystemAssigned,UserAssigned");
  ASSERT_EQ(sv.identity.n_umis, 2);
  ASSERT_STR_EQ(sv.primary_umi_id, "/u/1");
  ASSERT_STR_EQ(sv.key_id, "https://kv/keys/k/1");
  json_decref(srv);
}

TEST(geo_and_backup_parse) {
  json_t *l = J("{\"id\":\"/s/servers/a/databases/d/replicationLinks/5b301b68\",\"name\":\"5b301b68\","
                "\"properties\":{\"partnerServer\":\"b\",\"partnerDatabase\":\"d\",\"partnerLocation\":\"westus\","
                "\"role\":\"Primary\",\"partnerRole\":\"Secondary\",\"replicationMode\":\"Async\","
                "\"replicationState\":\"CATCH_UP\",\"linkType\":\"GEO\",\"percentComplete\":100,"
                "\"isTerminationAllowed\":true,\"startTime\":\"2025-01-01T00:00:00Z\"}}");
  sq_sql_repl_link rl;
  sq_err e;
  ASSERT_OK(sq_sql_repl_link_parse(l, &rl, &e));
  ASSERT_STR_EQ(rl.partner_server, "b");
  ASSERT_STR_EQ(rl.replication_state, "CATCH_UP");
  ASSERT_EQ(rl.percent_complete, 100);
  ASSERT_EQ(rl.is_termination_allowed, 1);
  json_decref(l);

  json_t *f = J("{\"id\":\"/s/servers/a/failoverGroups/fg\",\"name\":\"fg\",\"location\":\"eastus\","
                "\"properties\":{\"readWriteEndpoint\":{\"failoverPolicy\":\"Automatic\","
                "\"failoverWithDataLossGracePeriodMinutes\":60},\"readOnlyEndpoint\":{\"failoverPolicy\":\"Disabled\"},"
                "\"replicationRole\":\"Primary\",\"replicationState\":\"CATCH_UP\","
                "\"partnerServers\":[{\"id\":\"/s/servers/b\",\"location\":\"westus\",\"replicationRole\":\"Secondary\"}],"
                "\"databases\":[\"/s/servers/a/databases/d1\",\"/s/servers/a/databases/d2\"]}}");
  sq_sql_fog fg;
  ASSERT_OK(sq_sql_fog_parse(f, &fg, &e));
  ASSERT_STR_EQ(fg.failover_policy, "Automatic");
  ASSERT_EQ(fg.grace_minutes, 60);
  ASSERT_EQ(fg.n_partners, 1);
  ASSERT_STR_EQ(fg.partners[0].id, "/s/servers/b");
  ASSERT_EQ(fg.n_databases, 2);
  ASSERT_STR_EQ(fg.databases[1], "/s/servers/a/databases/d2");
  sq_sql_fog_free(&fg);
  json_decref(f);
  json_t *bad = J("{\"id\":\"/fg\",\"properties\":{\"databases\":[\"ok\",5]}}");
  ASSERT_EQ(sq_sql_fog_parse(bad, &fg, &e), SQ_EPARSE);
  ASSERT_NULL(fg.databases); /* freed on failure */
  json_decref(bad);

  const char *partners[] = {"/s/servers/b", NULL};
  const char *dbs[] = {"/s/servers/a/databases/d1", NULL};
  sq_sql_fog_spec spec = {partners, dbs, "Automatic", 60, "Disabled"};
  json_t *body = NULL;
  ASSERT_OK(sq_sql_fog_body(&spec, &body, &e));
  char *s = sq_json_dump(body);
  ASSERT_STR_EQ(s, "{\"properties\":{\"databases\":[\"/s/servers/a/databases/d1\"],\"partnerServers\":[{\"id\":"
                   "\"/s/servers/b\"}],\"readOnlyEndpoint\":{\"failoverPolicy\":\"Disabled\"},"
                   "\"readWriteEndpoint\":{\"failoverPolicy\":\"Automatic\","
                   "\"failoverWithDataLossGracePeriodMinutes\":60}}}");
  free(s);
  json_decref(body);
  sq_sql_fog_spec nograce = {partners, dbs, "Automatic", 0, NULL};
  ASSERT_EQ(sq_sql_fog_body(&nograce, &body, &e), SQ_EINVAL);

  json_t *dr = J("{\"id\":\"/s/servers/a/restorableDroppedDatabases/db,133201549661600000\","
                 "\"name\":\"db,133201549661600000\",\"properties\":{\"databaseName\":\"db\","
                 "\"creationDate\":\"2022-01-01T00:00:00Z\",\"deletionDate\":\"2023-02-04T01:57:42Z\","
                 "\"earliestRestoreDate\":\"2023-01-28T00:00:00Z\",\"keys\":{\"https://kv/keys/a/1\":{}}}}");
  sq_sql_dropped_db dd;
  ASSERT_OK(sq_sql_dropped_db_parse(dr, &dd, &e));
  ASSERT_STR_EQ(dd.database_name, "db");
  ASSERT_EQ(dd.deletion_date, 1675475862);
  ASSERT_EQ(dd.n_keys, 1);
  sq_sql_dropped_db_free(&dd);
  json_decref(dr);

  json_t *ltr = J("{\"id\":\"/s/providers/Microsoft.Sql/locations/eastus/longTermRetentionServers/a/"
                  "longTermRetentionDatabases/db/longTermRetentionBackups/55555555-6666-7777-8888-999999999999;131637960820000000\","
                  "\"name\":\"55555555-6666-7777-8888-999999999999;131637960820000000\",\"properties\":{"
                  "\"serverName\":\"a\",\"databaseName\":\"db\",\"backupTime\":\"2018-02-23T03:41:22Z\","
                  "\"backupExpirationTime\":\"2028-02-23T03:41:22Z\",\"backupStorageRedundancy\":\"Geo\"}}");
  sq_sql_ltr_backup lb;
  ASSERT_OK(sq_sql_ltr_parse(ltr, &lb, &e));
  ASSERT_STR_EQ(lb.database_name, "db");
  ASSERT_EQ(lb.backup_time, 1519357282);
  ASSERT_STR_EQ(lb.storage_redundancy, "Geo");
  json_decref(ltr);
}

/* ---- every resource parser shares one shape: the checks below run on all ---- */

typedef enum res_kind { R_DB, R_SERVER, R_KEY, R_PROT, R_REPL, R_FOG, R_DROPPED, R_LTR, R_COUNT } res_kind;

static const char *const res_what[R_COUNT] = {
    "database", "server", "server key", "encryption protector", "replication link",
    "failover group", "restorable dropped database", "long-term retention backup"};

/* Parses j as kind k, releases what it owns, and returns the code. */
static sq_code parse_as(res_kind k, const json_t *j, sq_err *e) {
  union {
    sq_sql_database db;
    sq_sql_server server;
    sq_sql_server_key key;
    sq_sql_protector prot;
    sq_sql_repl_link repl;
    sq_sql_fog fog;
    sq_sql_dropped_db dropped;
    sq_sql_ltr_backup ltr;
  } u;
  sq_code rc = SQ_EINVAL;
  switch(k) {
  case R_DB: rc = sq_sql_db_parse(j, &u.db, e); sq_sql_database_free(&u.db); break;
  case R_SERVER: rc = sq_sql_server_parse(j, &u.server, e); break;
  case R_KEY: rc = sq_sql_server_key_parse(j, &u.key, e); break;
  case R_PROT: rc = sq_sql_protector_parse(j, &u.prot, e); break;
  case R_REPL: rc = sq_sql_repl_link_parse(j, &u.repl, e); break;
  case R_FOG: rc = sq_sql_fog_parse(j, &u.fog, e); sq_sql_fog_free(&u.fog); break;
  case R_DROPPED: rc = sq_sql_dropped_db_parse(j, &u.dropped, e); sq_sql_dropped_db_free(&u.dropped); break;
  case R_LTR: rc = sq_sql_ltr_parse(j, &u.ltr, e); break;
  default: break;
  }
  return rc;
}

TEST(all_parsers_share_the_basic_checks) {
  struct {
    const char *json;
    sq_code code;
    const char *msg; /* after "<what>: " */
  } common[] = {
      {"[]", SQ_EPARSE, "not a JSON object"},
      {"{\"name\":\"x\"}", SQ_EPARSE, "no id"},
      {"{\"id\":\"\"}", SQ_EPARSE, "no id"},
      {"{\"id\":[]}", SQ_EPARSE, "field id is not a string"},
      {"{\"id\":\"/x\",\"properties\":[]}", SQ_EPARSE, "properties is not an object"},
      {"{\"id\":\"/x\",\"properties\":null}", SQ_EPARSE, "properties is not an object"},
      {"{\"id\":\"/x\"}", SQ_OK, ""},
      {"{\"id\":\"/x\",\"properties\":{},\"someFutureField\":1}", SQ_OK, ""},
  };
  for(int k = 0; k < R_COUNT; k++) {
    for(size_t i = 0; i < sizeof common / sizeof *common; i++) {
      json_t *j = J(common[i].json);
      ASSERT_NOT_NULL(j);
      sq_err e;
      sq_err_clear(&e);
      if(parse_as((res_kind)k, j, &e) != common[i].code)
        fprintf(stderr, "kind %s, input %s: %s\n", res_what[k], common[i].json, e.message);
      ASSERT_EQ(e.code, common[i].code);
      if(common[i].code) {
        char want[128];
        snprintf(want, sizeof want, "%s: %s", res_what[k], common[i].msg);
        ASSERT_STR_CONTAINS(e.message, want);
      }
      json_decref(j);
    }
  }
}

TEST(parser_errors_name_the_field) {
  char longv[SQ_SQL_URI_MAX + 10];
  memset(longv, 'a', sizeof longv);
  longv[sizeof longv - 1] = '\0';
  char longkey[SQ_SQL_URI_MAX + 64];
  snprintf(longkey, sizeof longkey, "{\"id\":\"/s\",\"properties\":{\"keyId\":\"%s\"}}", longv);
  struct {
    res_kind kind;
    const char *json;
    sq_code code;
    const char *msg;
  } cases[] = {
      {R_KEY, "{\"id\":\"/k\",\"properties\":{\"uri\":7}}", SQ_EPARSE, "properties.uri"},
      {R_KEY, "{\"id\":\"/k\",\"properties\":{\"creationDate\":\"soon\"}}", SQ_EPARSE,
       "properties.creationDate"},
      {R_PROT, "{\"id\":\"/p\",\"properties\":{\"serverKeyName\":[]}}", SQ_EPARSE, "serverKeyName"},
      {R_PROT, "{\"id\":\"/p\",\"kind\":false}", SQ_EPARSE, "field kind"},
      {R_REPL, "{\"id\":\"/l\",\"properties\":{\"startTime\":\"x\"}}", SQ_EPARSE, "startTime"},
      {R_REPL, "{\"id\":\"/l\",\"properties\":{\"role\":1}}", SQ_EPARSE, "role"},
      {R_FOG, "{\"id\":\"/f\",\"properties\":{\"partnerServers\":{}}}", SQ_EPARSE, "partnerServers"},
      {R_FOG, "{\"id\":\"/f\",\"properties\":{\"partnerServers\":[{\"id\":5}]}}", SQ_EPARSE, "field id"},
      {R_FOG, "{\"id\":\"/f\",\"properties\":{\"readWriteEndpoint\":{\"failoverPolicy\":1}}}", SQ_EPARSE,
       "readWriteEndpoint.failoverPolicy"},
      {R_FOG, "{\"id\":\"/f\",\"properties\":{\"databases\":{}}}", SQ_EPARSE, "databases"},
      {R_DROPPED, "{\"id\":\"/d\",\"properties\":{\"deletionDate\":5}}", SQ_EPARSE, "deletionDate"},
      {R_DROPPED, "{\"id\":\"/d\",\"properties\":{\"keys\":{\"u\":{\"keyVersion\":1}}}}", SQ_EPARSE,
       "keyVersion"},
      {R_LTR, "{\"id\":\"/b\",\"properties\":{\"backupTime\":\"nope\"}}", SQ_EPARSE, "backupTime"},
      {R_LTR, "{\"id\":\"/b\",\"name\":{}}", SQ_EPARSE, "field name"},
      {R_SERVER, longkey, SQ_ETOOBIG, "properties.keyId"},
      {R_SERVER, "{\"id\":\"/s\",\"identity\":{\"userAssignedIdentities\":{\"/u\":{\"clientId\":5}}}}",
       SQ_EPARSE, "clientId"},
      {R_SERVER, "{\"id\":\"/s\",\"identity\":{\"type\":5}}", SQ_EPARSE, "type"},
      {R_DB, "{\"id\":\"/d\",\"sku\":{\"tier\":3}}", SQ_EPARSE, "sku.tier"},
      {R_DB, "{\"id\":\"/d\",\"properties\":{\"keys\":{\"u\":{\"thumbprint\":5}}}}", SQ_EPARSE,
       "thumbprint"},
      {R_DB, "{\"id\":\"/d\",\"properties\":{\"earliestRestoreDate\":\"x\"}}", SQ_EPARSE,
       "earliestRestoreDate"},
  };
  for(size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    json_t *j = J(cases[i].json);
    ASSERT_NOT_NULL(j);
    sq_err e;
    sq_err_clear(&e);
    ASSERT_EQ(parse_as(cases[i].kind, j, &e), cases[i].code);
    ASSERT_STR_CONTAINS(e.message, res_what[cases[i].kind]);
    ASSERT_STR_CONTAINS(e.message, cases[i].msg);
    json_decref(j);
  }
  /* bounds on nested lists */
  json_t *ps = json_array();
  for(int i = 0; i < SQ_SQL_MAX_PARTNERS + 1; i++)
    json_array_append_new(ps, json_pack("{s:s}", "id", "/s/servers/b"));
  json_t *f = json_pack("{s:s,s:{s:o}}", "id", "/f", "properties", "partnerServers", ps);
  sq_err e;
  ASSERT_EQ(parse_as(R_FOG, f, &e), SQ_ETOOBIG);
  ASSERT_STR_CONTAINS(e.message, "partner servers");
  json_decref(f);
}

TEST(parsers_reset_output_and_fill_absent_values) {
  /* whatever was in the struct before, absent values come back as documented */
  json_t *bare = J("{\"id\":\"/x\"}");
  sq_err e;
  sq_sql_server_key k;
  memset(&k, 0x55, sizeof k);
  ASSERT_OK(sq_sql_server_key_parse(bare, &k, &e));
  ASSERT_STR_EQ(k.id, "/x");
  ASSERT_STR_EQ(k.uri, "");
  ASSERT_EQ(k.auto_rotation_enabled, -1);
  ASSERT_EQ(k.creation_date, 0);
  sq_sql_protector p;
  memset(&p, 0x55, sizeof p);
  ASSERT_OK(sq_sql_protector_parse(bare, &p, &e));
  ASSERT_EQ(p.auto_rotation_enabled, -1);
  ASSERT_STR_EQ(p.server_key_name, "");
  sq_sql_repl_link l;
  memset(&l, 0x55, sizeof l);
  ASSERT_OK(sq_sql_repl_link_parse(bare, &l, &e));
  ASSERT_EQ(l.percent_complete, 0);
  ASSERT_EQ(l.is_termination_allowed, -1);
  ASSERT_EQ(l.start_time, 0);
  sq_sql_fog f;
  memset(&f, 0x55, sizeof f);
  ASSERT_OK(sq_sql_fog_parse(bare, &f, &e));
  ASSERT_EQ(f.grace_minutes, -1);
  ASSERT_EQ(f.n_partners, 0);
  ASSERT_EQ(f.n_databases, 0);
  ASSERT_NULL(f.databases);
  sq_sql_database d;
  memset(&d, 0x55, sizeof d);
  ASSERT_OK(sq_sql_db_parse(bare, &d, &e));
  ASSERT_EQ(d.auto_rotation, -1);
  ASSERT_EQ(d.identity.n_umis, 0);
  ASSERT_NULL(d.keys);
  sq_sql_database_free(&d);
  json_decref(bare);

  /* values of the wrong JSON type for a tri-state or a count read as absent */
  json_t *odd = J("{\"id\":\"/x\",\"properties\":{\"autoRotationEnabled\":\"yes\","
                  "\"isTerminationAllowed\":1,\"percentComplete\":\"half\","
                  "\"readWriteEndpoint\":{\"failoverWithDataLossGracePeriodMinutes\":\"60\"}}}");
  ASSERT_OK(sq_sql_server_key_parse(odd, &k, &e));
  ASSERT_EQ(k.auto_rotation_enabled, -1);
  ASSERT_OK(sq_sql_repl_link_parse(odd, &l, &e));
  ASSERT_EQ(l.is_termination_allowed, -1);
  ASSERT_EQ(l.percent_complete, 0);
  ASSERT_OK(sq_sql_fog_parse(odd, &f, &e));
  ASSERT_EQ(f.grace_minutes, -1);
  json_decref(odd);

  /* a failed parse leaves the struct reset, owning nothing */
  json_t *bad = J("{\"id\":\"/x\",\"properties\":{\"databases\":[\"/a\",\"/b\",7]}}");
  memset(&f, 0x55, sizeof f);
  ASSERT_EQ(sq_sql_fog_parse(bad, &f, &e), SQ_EPARSE);
  ASSERT_STR_CONTAINS(e.message, "databases[2]");
  ASSERT_NULL(f.databases);
  ASSERT_EQ(f.n_databases, 0);
  json_decref(bad);
}

TEST(bodies_never_drop_a_field) {
  /* a key URI that is not UTF-8 would vanish from the keys map: refused */
  const char *bad_keys[] = {"https://kv.vault.azure.net/keys/k/\xff", NULL};
  sq_sql_db_patch_args p = {.keys_add = bad_keys, .auto_rotation = -1};
  json_t *body = NULL;
  sq_err e;
  ASSERT_EQ(sq_sql_db_patch_body(&p, &body, &e), SQ_EINVAL);
  ASSERT_NULL(body);
  ASSERT_STR_CONTAINS(e.message, "database patch: cannot build the body");
  sq_sql_db_create_args c = {.location = "eastus", .umi_id = "/x/umi", .keys = bad_keys, .auto_rotation = -1};
  ASSERT_EQ(sq_sql_db_create_body(&c, &body, &e), SQ_EINVAL);
  ASSERT_NULL(body);
}

TEST_MAIN()
