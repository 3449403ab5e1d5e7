/* test_emu_sql.c — the Microsoft.Sql provider through emu_handle: database-
 * level CMK (identity, keys map, protector, $expand=keys with pointInTime),
 * LROs, the documented rules and error codes (azure-api.md §1.7, §3.4),
 * rotation blocked by old-thumbprint log and released by workload, revert /
 * revalidate, Inaccessible after key checks, point-in-time restore that
 * really needs the keys it is given, geo-secondaries, server keys and
 * protector, managed-instance vault fallback, state across a restart, and
 * data really lost once a key is purged. */
#include "emu_harness.h"
#include "sql.h"
#include "sqltde/crypto/thumbprint.h"

#define MGMT "https://management.localhost"
#define KVE "https://kv-tde-east.vault.localhost"
#define KVW "https://kv-tde-west.vault.localhost"
#define KVV "?api-version=7.5"
#define RG "/subscriptions/" T_SUB1 "/resourceGroups/rg-tde"
#define EASTSRV RG "/providers/Microsoft.Sql/servers/sql-east"
#define WESTSRV "/subscriptions/" T_SUB1 "/resourceGroups/rg-tde-west/providers/Microsoft.Sql/servers/sql-west"
#define MIEAST RG "/providers/Microsoft.Sql/managedInstances/mi-east"
#define UMI_DB1 RG "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/umi-db1"
#define UMI_MI RG "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/umi-mi"
#define UMI_DB1_OID T_UMI_OID
#define UMI_MI_OID "0d0d0d0d-0000-4000-8000-000000000002"
#define AV "2025-01-01"

static emu *E;
static char *ARM, *KV;

static void tokens(void) {
  free(ARM);
  free(KV);
  ARM = t_token(E, T_OP_OID, "https://management.azure.com", 86400 * 400);
  KV = t_token(E, T_OP_OID, "https://vault.azure.net", 86400 * 400);
}

/* Through the control API, as a test client would: that request's tick first
 * observes what the previous requests changed (at the old time). */
static void advance_ms(int64_t ms) {
  char body[64];
  snprintf(body, sizeof body, "{\"ms\":%lld}", (long long)ms);
  t_resp r = t_json(E, "POST", "https://control.localhost/_emulator/clock/advance", NULL, body);
  if(r.status != 200)
    fprintf(stderr, "clock advance: %d %s\n", r.status, r.body);
  t_resp_free(&r);
}

static void setup(void) {
  if(E)
    return;
  E = t_emu_open();
  tokens();
  /* quick key checks and no permission lag unless a test asks for it */
  t_resp r = t_json(E, "PATCH", "https://control.localhost/_emulator/sql/settings", NULL,
                    "{\"permissionDelayMs\":0,\"keyCheckIntervalMs\":60000,\"inaccessibleAfterMs\":120000,"
                    "\"networkGraceMs\":120000,\"autoRotationWindowMs\":0}");
  if(r.status != 200)
    fprintf(stderr, "settings: %d %s\n", r.status, r.body);
  t_resp_free(&r);
}

static t_resp arm(const char *method, const char *path, const char *body) {
  char url[4096];
  snprintf(url, sizeof url, MGMT "%s%sapi-version=" AV, path, strchr(path, '?') ? "&" : "?");
  return body ? t_json(E, method, url, ARM, body) : t_do(E, method, url, ARM, NULL, NULL);
}

/* Creates a key (new version if the name exists); returns its kid (caller frees). */
static char *kv_create(const char *vault, const char *name) {
  char url[512];
  snprintf(url, sizeof url, "%s/keys/%s/create" KVV, vault, name);
  t_resp r = t_json(E, "POST", url, KV, "{\"kty\":\"RSA\",\"key_size\":2048}");
  char *kid = r.status == 200 ? strdup(t_str(&r, "key.kid")) : NULL;
  if(!kid)
    fprintf(stderr, "kv create %s: %d %s\n", name, r.status, r.body);
  t_resp_free(&r);
  return kid;
}

/* Thumbprint of a key computed here from its public JWK, independently of the provider. */
static void thumb_of(const char *kid, char out[41]) {
  char url[1024];
  snprintf(url, sizeof url, "%s" KVV, kid);
  t_resp r = t_get(E, url, KV);
  out[0] = '\0';
  if(r.status == 200)
    sq_thumbprint_jwk(t_str(&r, "key.n"), t_str(&r, "key.e"), out, NULL);
  t_resp_free(&r);
}

/* Follows a 202 to its end; returns the final async status ("Succeeded"/"Failed") and the error code. */
static const char *lro_finish(t_resp *r, char *code, size_t cn) {
  static char status[32];
  status[0] = '\0';
  if(code)
    code[0] = '\0';
  if(r->status != 202) {
    fprintf(stderr, "expected 202, got %d %s\n", r->status, r->body);
    return "NotStarted";
  }
  const char *aa = t_resp_header(r, "Azure-AsyncOperation");
  char poll[2048];
  snprintf(poll, sizeof poll, "%s", aa ? aa : t_resp_header(r, "Location"));
  for(int i = 0; i < 20; i++) {
    t_resp p = t_get(E, poll, ARM);
    const char *s = t_str(&p, "status");
    if(s && strcmp(s, "InProgress")) {
      snprintf(status, sizeof status, "%s", s);
      if(code && t_str(&p, "error.code"))
        snprintf(code, cn, "%s", t_str(&p, "error.code"));
      t_resp_free(&p);
      return status;
    }
    t_resp_free(&p);
    advance_ms(1500);
  }
  return "Timeout";
}

static int db_put_ok(const char *path, const char *body) {
  t_resp r = arm("PUT", path, body);
  char code[128];
  const char *st = lro_finish(&r, code, sizeof code);
  if(strcmp(st, "Succeeded"))
    fprintf(stderr, "PUT %s: %s %s\n", path, st, code);
  t_resp_free(&r);
  return !strcmp(st, "Succeeded");
}

static char *db_body(const char *umi, const char *keys[], const char *prot, const char *extra_props) {
  static char b[16384];
  char km[12000] = "";
  size_t used = 0;
  for(int i = 0; keys && keys[i]; i++)
    used += (size_t)snprintf(km + used, sizeof km - used, "%s\"%s\":{}", i ? "," : "", keys[i]);
  snprintf(b, sizeof b,
           "{\"location\":\"eastus\",%s%s%s\"properties\":{\"keys\":{%s}%s%s%s%s%s}}",
           umi ? "\"identity\":{\"type\":\"UserAssigned\",\"userAssignedIdentities\":{\"" : "", umi ? umi : "",
           umi ? "\":{}}}," : "", km, prot ? ",\"encryptionProtector\":\"" : "", prot ? prot : "", prot ? "\"" : "",
           extra_props ? "," : "", extra_props ? extra_props : "");
  return b;
}

static void workload(const char *dbid, const char *text) {
  char body[2048];
  snprintf(body, sizeof body, "{\"databaseId\":\"%s\",\"records\":2,\"text\":\"%s\"}", dbid, text);
  t_resp r = t_json(E, "POST", "https://control.localhost/_emulator/sql/workload", NULL, body);
  if(r.status != 200)
    fprintf(stderr, "workload: %d %s\n", r.status, r.body);
  t_resp_free(&r);
}

static t_resp ctl_data(const char *dbid) {
  char url[2048];
  snprintf(url, sizeof url, "https://control.localhost/_emulator/sql/data?databaseId=%s", dbid);
  return t_get(E, url, NULL);
}

/* ---------------------------------------------------------------------------------------------- */

TEST(create_db_with_keys_protector_and_expand) {
  setup();
  char *k1 = kv_create(KVE, "tde-a"), *k2 = kv_create(KVE, "tde-b");
  ASSERT(k1 && k2);
  const char *keys[] = {k1, k2, NULL};
  t_resp r = arm("PUT", EASTSRV "/databases/db1", db_body(UMI_DB1, keys, k1, NULL));
  ASSERT_EQ(r.status, 202);
  ASSERT(t_resp_header(&r, "Azure-AsyncOperation") != NULL);
  ASSERT_STR_CONTAINS(t_resp_header(&r, "Azure-AsyncOperation"), "/locations/eastus/databaseAzureAsyncOperation/");
  ASSERT_STR_CONTAINS(t_resp_header(&r, "Location"), "/locations/eastus/databaseOperationResults/");
  ASSERT(t_resp_header(&r, "Retry-After") != NULL);
  ASSERT_STR_EQ(t_str(&r, "operation"), "CreateLogicalDatabase");
  /* not there before the operation completes */
  t_resp g = arm("GET", EASTSRV "/databases/db1", NULL);
  ASSERT_EQ(g.status, 404);
  t_resp_free(&g);
  char loc[2048];
  snprintf(loc, sizeof loc, "%s", t_resp_header(&r, "Location"));
  t_resp p = t_get(E, loc, ARM);
  ASSERT_EQ(p.status, 202);
  t_resp_free(&p);
  ASSERT_STR_EQ(lro_finish(&r, NULL, 0), "Succeeded");
  t_resp_free(&r);
  p = t_get(E, loc, ARM); /* Location poll ends with the resource */
  ASSERT_EQ(p.status, 200);
  ASSERT_STR_EQ(t_str(&p, "name"), "db1");
  t_resp_free(&p);

  g = arm("GET", EASTSRV "/databases/db1", NULL);
  ASSERT_EQ(g.status, 200);
  ASSERT_STR_EQ(t_str(&g, "properties.status"), "Online");
  ASSERT_STR_EQ(t_str(&g, "properties.encryptionProtector"), k1);
  ASSERT_STR_EQ(t_str(&g, "identity.type"), "UserAssigned");
  json_t *u = json_object_get(sq_json_path(g.json, "identity.userAssignedIdentities"), UMI_DB1);
  ASSERT_STR_EQ(sq_json_str(u, "principalId"), UMI_DB1_OID);
  ASSERT(sq_json_path(g.json, "properties.keys") == NULL); /* only with $expand */
  t_resp_free(&g);

  char t1[41], t2[41];
  thumb_of(k1, t1);
  thumb_of(k2, t2);
  ASSERT_EQ(strlen(t1), 40);
  g = arm("GET", EASTSRV "/databases/db1?$expand=keys", NULL);
  ASSERT_EQ(g.status, 200);
  json_t *km = sq_json_path(g.json, "properties.keys");
  ASSERT_EQ(json_object_size(km), 2);
  ASSERT_STR_EQ(sq_json_str(json_object_get(km, k1), "thumbprint"), t1);
  ASSERT_STR_EQ(sq_json_str(json_object_get(km, k2), "thumbprint"), t2);
  ASSERT_STR_EQ(sq_json_str(json_object_get(km, k1), "type"), "AzureKeyVault");
  t_resp_free(&g);
  /* keys in use now: the protector only (raw and percent-encoded forms) */
  const char *forms[] = {"?$expand=keys($filter=pointInTime('current'))",
                         "?%24expand=keys(%24filter%3DpointInTime(%27current%27))"};
  for(int i = 0; i < 2; i++) {
    char path[512];
    snprintf(path, sizeof path, EASTSRV "/databases/db1%s", forms[i]);
    g = arm("GET", path, NULL);
    ASSERT_EQ(g.status, 200);
    km = sq_json_path(g.json, "properties.keys");
    ASSERT_EQ(json_object_size(km), 1);
    ASSERT(json_object_get(km, k1) != NULL);
    t_resp_free(&g);
  }
  g = arm("GET", EASTSRV "/databases/db1?$expand=keys(pointInTime)", NULL);
  ASSERT_EQ(g.status, 400);
  t_resp_free(&g);
  /* list shows master and db1; the older api-version has no CMK fields */
  g = arm("GET", EASTSRV "/databases", NULL);
  ASSERT_EQ(g.status, 200);
  ASSERT_EQ(json_array_size(json_object_get(g.json, "value")), 2);
  t_resp_free(&g);
  g = t_get(E, MGMT EASTSRV "/databases/db1?api-version=2021-11-01", ARM);
  ASSERT_EQ(g.status, 200);
  ASSERT(sq_json_path(g.json, "properties.encryptionProtector") == NULL);
  t_resp_free(&g);
  g = t_get(E, MGMT EASTSRV "/databases/db1?api-version=2019-01-01", ARM);
  ASSERT_EQ(g.status, 400);
  t_resp_free(&g);
  free(k1);
  free(k2);
}

TEST(identity_and_key_rules) {
  setup();
  char *k = kv_create(KVE, "tde-rules");
  char *kw = kv_create(KVW, "tde-west-only");
  ASSERT(k && kw);
  const char *keys[] = {k, NULL};
  /* two identities */
  char body[16384];
  snprintf(body, sizeof body,
           "{\"location\":\"eastus\",\"identity\":{\"type\":\"UserAssigned\",\"userAssignedIdentities\":{\"" UMI_DB1
           "\":{},\"" UMI_MI "\":{}}},\"properties\":{\"keys\":{\"%s\":{}},\"encryptionProtector\":\"%s\"}}",
           k, k);
  t_resp r = arm("PUT", EASTSRV "/databases/rules", body);
  ASSERT_EQ(r.status, 400);
  ASSERT_STR_EQ(t_str(&r, "error.code"), "MultipleIdentitiesOnDatabase");
  t_resp_free(&r);
  /* system-assigned is not supported at database level */
  snprintf(body, sizeof body, "{\"location\":\"eastus\",\"identity\":{\"type\":\"SystemAssigned\"},\"properties\":{}}");
  r = arm("PUT", EASTSRV "/databases/rules", body);
  ASSERT_EQ(r.status, 400);
  ASSERT_STR_EQ(t_str(&r, "error.code"), "InvalidIdentityId");
  t_resp_free(&r);
  /* keys without identity */
  r = arm("PUT", EASTSRV "/databases/rules", db_body(NULL, keys, k, NULL));
  ASSERT_EQ(r.status, 400);
  ASSERT_STR_EQ(t_str(&r, "error.code"), "InvalidNumberOfIdentities");
  t_resp_free(&r);
  /* the identity cannot reach a key of a vault whose policy does not list it */
  const char *wk[] = {kw, NULL};
  r = arm("PUT", EASTSRV "/databases/rules", db_body(UMI_DB1, wk, kw, NULL));
  ASSERT_EQ(r.status, 400);
  ASSERT_STR_EQ(t_str(&r, "error.code"), "AkvKeyAccessDenied");
  ASSERT_STR_CONTAINS(t_str(&r, "error.message"), "wrapKey");
  t_resp_free(&r);
  /* an older version as protector */
  char *k_new = kv_create(KVE, "tde-rules");
  r = arm("PUT", EASTSRV "/databases/rules", db_body(UMI_DB1, keys, NULL, NULL));
  ASSERT_EQ(r.status, 202); /* an old version may be in the keys map ... */
  t_resp_free(&r);
  advance_ms(3000);
  r = arm("PATCH", EASTSRV "/databases/rules", db_body(UMI_DB1, NULL, k, NULL));
  ASSERT_EQ(r.status, 400); /* ... but not be the protector */
  ASSERT_STR_EQ(t_str(&r, "error.code"), "OldGenerationOfAKVKeyBeingUsedError");
  t_resp_free(&r);
  /* malformed URI, bad body, wrong content type */
  const char *bad[] = {"https://example.com/keys/x/1", NULL};
  r = arm("PATCH", EASTSRV "/databases/rules", db_body(UMI_DB1, bad, NULL, NULL));
  ASSERT_EQ(r.status, 400);
  ASSERT_STR_EQ(t_str(&r, "error.code"), "AzureKeyVaultInvalidUri");
  t_resp_free(&r);
  r = arm("PATCH", EASTSRV "/databases/rules", "{\"properties\":");
  ASSERT_EQ(r.status, 400);
  t_resp_free(&r);
  char url[1024];
  snprintf(url, sizeof url, MGMT EASTSRV "/databases/rules?api-version=" AV);
  r = t_do(E, "PATCH", url, ARM, "text/plain", "{}");
  ASSERT_EQ(r.status, 415);
  t_resp_free(&r);
  /* the protector key cannot be removed from the map */
  snprintf(body, sizeof body, "{\"properties\":{\"keys\":{\"%s\":{}},\"encryptionProtector\":\"%s\"}}", k_new, k_new);
  r = arm("PATCH", EASTSRV "/databases/rules", body);
  ASSERT_STR_EQ(lro_finish(&r, NULL, 0), "Succeeded");
  t_resp_free(&r);
  snprintf(body, sizeof body, "{\"properties\":{\"keys\":{\"%s\":null}}}", k_new);
  r = arm("PATCH", EASTSRV "/databases/rules", body);
  ASSERT_EQ(r.status, 400);
  ASSERT_STR_EQ(t_str(&r, "error.code"), "AzureKeyVaultKeyNameCurrentlyInUse");
  t_resp_free(&r);
  /* a vault without purge protection cannot hold a protector */
  t_resp np = t_json(E, "POST", "https://kv-nopurge.vault.localhost/keys/np/create" KVV, KV,
                     "{\"kty\":\"RSA\",\"key_size\":2048}");
  ASSERT_EQ(np.status, 200);
  snprintf(body, sizeof body, "{\"properties\":{\"encryptionProtector\":\"%s\"}}", t_str(&np, "key.kid"));
  t_resp_free(&np);
  r = arm("PATCH", EASTSRV "/databases/rules", body);
  ASSERT_EQ(r.status, 400);
  ASSERT_STR_EQ(t_str(&r, "error.code"), "SecurityInvalidAzureKeyVaultRecoveryLevel");
  t_resp_free(&r);
  free(k);
  free(kw);
  free(k_new);
}

TEST(rotation_blocked_until_log_is_retired) {
  setup();
  char *a = kv_create(KVE, "rot-a"), *b = kv_create(KVE, "rot-b"), *c = kv_create(KVE, "rot-c");
  const char *keys[] = {a, b, c, NULL};
  ASSERT(db_put_ok(EASTSRV "/databases/rot", db_body(UMI_DB1, keys, a, NULL)));
  char ta[41], tb[41];
  thumb_of(a, ta);
  thumb_of(b, tb);
  int64_t before = emu_now_ms(E);
  advance_ms(1000);
  /* first rotation: allowed (all active log is under the current protector) */
  char body[4096];
  snprintf(body, sizeof body, "{\"properties\":{\"encryptionProtector\":\"%s\"}}", b);
  t_resp r = arm("PATCH", EASTSRV "/databases/rot", body);
  ASSERT_STR_EQ(lro_finish(&r, NULL, 0), "Succeeded");
  t_resp_free(&r);
  /* second rotation right away: the log written under A is still active */
  snprintf(body, sizeof body, "{\"properties\":{\"encryptionProtector\":\"%s\"}}", c);
  r = arm("PATCH", EASTSRV "/databases/rot", body);
  ASSERT_EQ(r.status, 400);
  ASSERT_STR_EQ(t_str(&r, "error.code"), "PerDatabaseCMKKeyRotationAttemptedWhileOldThumbprintInUse");
  t_resp_free(&r);
  /* keys in use now: B (protector) and A (active log) */
  t_resp g = arm("GET", EASTSRV "/databases/rot?$expand=keys($filter=pointInTime('current'))", NULL);
  ASSERT_EQ(json_object_size(sq_json_path(g.json, "properties.keys")), 2);
  t_resp_free(&g);
  /* the log's view: one segment tagged with A's thumbprint */
  char dbid[512], url[1024];
  snprintf(dbid, sizeof dbid, EASTSRV "/databases/rot");
  snprintf(url, sizeof url, "https://control.localhost/_emulator/sql/vlfs?databaseId=%s", dbid);
  g = t_get(E, url, NULL);
  ASSERT_STR_EQ(t_str(&g, "protectorThumbprint"), tb);
  ASSERT_STR_EQ(sq_json_str(json_array_get(json_object_get(g.json, "vlfs"), 0), "vlfEncryptorThumbprint"), ta);
  t_resp_free(&g);
  /* workload writes log under B and retires the old segments */
  workload(dbid, "after-rotation");
  g = arm("GET", EASTSRV "/databases/rot?$expand=keys($filter=pointInTime('current'))", NULL);
  ASSERT_EQ(json_object_size(sq_json_path(g.json, "properties.keys")), 1);
  ASSERT(json_object_get(sq_json_path(g.json, "properties.keys"), b) != NULL);
  t_resp_free(&g);
  r = arm("PATCH", EASTSRV "/databases/rot", body);
  ASSERT_STR_EQ(lro_finish(&r, NULL, 0), "Succeeded");
  t_resp_free(&r);
  /* history: at the creation time only A was in use */
  char ts[40], path[512];
  sql_fmt_time_ms(before, ts, sizeof ts);
  snprintf(path, sizeof path, EASTSRV "/databases/rot?$expand=keys($filter=pointInTime('%s'))", ts);
  g = arm("GET", path, NULL);
  json_t *km = sq_json_path(g.json, "properties.keys");
  ASSERT_EQ(json_object_size(km), 1);
  ASSERT(json_object_get(km, a) != NULL);
  t_resp_free(&g);
  /* data still readable through the DEK (only the wrap changed) */
  g = ctl_data(dbid);
  ASSERT_EQ(g.status, 200);
  ASSERT_STR_CONTAINS(g.body, "after-rotation");
  ASSERT_STR_CONTAINS(g.body, "CREATE DATABASE [rot]");
  t_resp_free(&g);
  free(a);
  free(b);
  free(c);
}

TEST(revert_and_revalidate) {
  setup();
  char *k = kv_create(KVE, "rv");
  const char *keys[] = {k, NULL};
  ASSERT(db_put_ok(EASTSRV "/databases/rv", db_body(UMI_DB1, keys, k, NULL)));
  t_resp r = arm("POST", EASTSRV "/databases/rv/encryptionProtector/current/revalidate", NULL);
  ASSERT_EQ(r.status, 202);
  ASSERT_STR_CONTAINS(t_resp_header(&r, "Location"), "databaseEncryptionProtectorRevalidateOperationResults");
  ASSERT_STR_EQ(lro_finish(&r, NULL, 0), "Succeeded");
  t_resp_free(&r);
  /* server sql-east is service-managed: revert works */
  r = arm("POST", EASTSRV "/databases/rv/encryptionProtector/current/revert", NULL);
  ASSERT_EQ(r.status, 202);
  ASSERT_STR_EQ(lro_finish(&r, NULL, 0), "Succeeded");
  t_resp_free(&r);
  t_resp g = arm("GET", EASTSRV "/databases/rv", NULL);
  ASSERT(sq_json_path(g.json, "properties.encryptionProtector") == NULL);
  t_resp_free(&g);
  /* and the data is still there, now under the service key */
  g = ctl_data(EASTSRV "/databases/rv");
  ASSERT_EQ(g.status, 200);
  t_resp_free(&g);
  r = arm("POST", EASTSRV "/databases/rv/encryptionProtector/current/revert", NULL);
  ASSERT_EQ(r.status, 400);
  ASSERT_STR_EQ(t_str(&r, "error.code"), "DatabaseLevelEncryptionProtectorDoesNotExist");
  t_resp_free(&r);
  r = arm("POST", EASTSRV "/databases/rv/encryptionProtector/current/revalidate", NULL);
  ASSERT_EQ(r.status, 400);
  ASSERT_STR_EQ(t_str(&r, "error.code"), "DatabaseLevelEncryptionProtectorDoesNotExist");
  t_resp_free(&r);
  free(k);
}

TEST(server_keys_protector_and_revert_rule) {
  setup();
  char *k = kv_create(KVE, "srv-key");
  ASSERT(k);
  const char *ver = strrchr(k, '/') + 1;
  char name[256], path[512], body[2048];
  snprintf(name, sizeof name, "kv-tde-east_srv-key_%s", ver);
  snprintf(body, sizeof body, "{\"properties\":{\"serverKeyType\":\"AzureKeyVault\",\"uri\":\"%s\"}}", k);
  t_resp r = arm("PUT", WESTSRV "/keys/wrong_name", body);
  ASSERT_EQ(r.status, 400);
  ASSERT_STR_EQ(t_str(&r, "error.code"), "InvalidKeyName");
  t_resp_free(&r);
  r = arm("PUT", WESTSRV "/keys/ServiceManaged", "{\"properties\":{\"serverKeyType\":\"ServiceManaged\"}}");
  ASSERT_EQ(r.status, 400);
  ASSERT_STR_EQ(t_str(&r, "error.code"), "InvalidUpsertKeyType");
  t_resp_free(&r);
  snprintf(path, sizeof path, WESTSRV "/keys/%s", name);
  r = arm("PUT", path, body);
  ASSERT_STR_EQ(lro_finish(&r, NULL, 0), "Succeeded");
  t_resp_free(&r);
  char t[41];
  thumb_of(k, t);
  t_resp g = arm("GET", path, NULL);
  ASSERT_EQ(g.status, 200);
  ASSERT_STR_EQ(t_str(&g, "properties.thumbprint"), t);
  ASSERT_STR_EQ(t_str(&g, "kind"), "azurekeyvault");
  t_resp_free(&g);
  g = arm("GET", WESTSRV "/keys", NULL);
  ASSERT_EQ(json_array_size(json_object_get(g.json, "value")), 2); /* ServiceManaged + ours */
  t_resp_free(&g);
  r = arm("PUT", WESTSRV "/encryptionProtector/current",
          "{\"properties\":{\"serverKeyType\":\"AzureKeyVault\",\"serverKeyName\":\"nope\"}}");
  ASSERT_EQ(r.status, 404);
  ASSERT_STR_EQ(t_str(&r, "error.code"), "ServerKeyNotFound");
  t_resp_free(&r);
  snprintf(body, sizeof body,
           "{\"properties\":{\"serverKeyType\":\"AzureKeyVault\",\"serverKeyName\":\"%s\",\"autoRotationEnabled\":false}}",
           name);
  r = arm("PUT", WESTSRV "/encryptionProtector/current", body);
  ASSERT_STR_EQ(lro_finish(&r, NULL, 0), "Succeeded");
  t_resp_free(&r);
  g = arm("GET", WESTSRV "/encryptionProtector/current", NULL);
  ASSERT_STR_EQ(t_str(&g, "properties.serverKeyType"), "AzureKeyVault");
  ASSERT_STR_EQ(t_str(&g, "properties.thumbprint"), t);
  t_resp_free(&g);
  g = arm("GET", WESTSRV, NULL);
  ASSERT_STR_EQ(t_str(&g, "properties.primaryUserAssignedIdentityId"), UMI_DB1);
  t_resp_free(&g);
  /* the protector key cannot be deleted */
  r = arm("DELETE", path, NULL);
  ASSERT_EQ(r.status, 409);
  ASSERT_STR_EQ(t_str(&r, "error.code"), "AzureKeyVaultKeyInUse");
  t_resp_free(&r);
  /* a server with CMK: a database with its own protector cannot be reverted */
  char *dk = kv_create(KVE, "west-db");
  const char *keys[] = {dk, NULL};
  char *b = db_body(UMI_DB1, keys, dk, NULL);
  char *loc = strstr(b, "eastus");
  memcpy(loc, "westus", 6);
  ASSERT(db_put_ok(WESTSRV "/databases/wdb", b));
  r = arm("POST", WESTSRV "/databases/wdb/encryptionProtector/current/revert", NULL);
  ASSERT_EQ(r.status, 400);
  ASSERT_STR_EQ(t_str(&r, "error.code"), "RevertDatabaseLevelKeyOnlySupportedWithSMK");
  t_resp_free(&r);
  /* back to service-managed */
  r = arm("PUT", WESTSRV "/encryptionProtector/current", "{\"properties\":{\"serverKeyType\":\"ServiceManaged\",\"serverKeyName\":\"ServiceManaged\"}}");
  ASSERT_STR_EQ(lro_finish(&r, NULL, 0), "Succeeded");
  t_resp_free(&r);
  r = arm("DELETE", WESTSRV "/databases/wdb", NULL);
  ASSERT_STR_EQ(lro_finish(&r, NULL, 0), "Succeeded");
  t_resp_free(&r);
  free(k);
  free(dk);
}

TEST(inaccessible_after_revocation_then_revalidate) {
  setup();
  char *k = kv_create(KVE, "inacc");
  const char *keys[] = {k, NULL};
  ASSERT(db_put_ok(EASTSRV "/databases/inacc", db_body(UMI_DB1, keys, k, NULL)));
  t_resp r = t_json(E, "POST", "https://control.localhost/_emulator/permissions/revoke", NULL,
                    "{\"vault\":\"kv-tde-east\",\"objectId\":\"" UMI_DB1_OID "\"}");
  ASSERT(r.status == 200 || r.status == 201);
  t_resp_free(&r);
  /* within the grace period: still online */
  advance_ms(60000);
  t_resp g = arm("GET", EASTSRV "/databases/inacc", NULL);
  ASSERT_STR_EQ(t_str(&g, "properties.status"), "Online");
  t_resp_free(&g);
  advance_ms(5 * 60000);
  g = arm("GET", EASTSRV "/databases/inacc", NULL);
  ASSERT_STR_EQ(t_str(&g, "properties.status"), "Inaccessible");
  t_resp_free(&g);
  g = arm("GET", EASTSRV "/inaccessibleDatabases", NULL);
  int found = 0;
  size_t i;
  json_t *v;
  json_array_foreach(json_object_get(g.json, "value"), i, v) if(!strcmp(sq_json_str(v, "name"), "inacc")) found = 1;
  ASSERT(found);
  t_resp_free(&g);
  r = arm("POST", EASTSRV "/databases/inacc/encryptionProtector/current/revalidate", NULL);
  ASSERT_EQ(r.status, 400);
  ASSERT_STR_EQ(t_str(&r, "error.code"), "AkvKeyAccessDenied");
  t_resp_free(&r);
  /* the data cannot be read either */
  g = ctl_data(EASTSRV "/databases/inacc");
  ASSERT_EQ(g.status, 409);
  t_resp_free(&g);
  r = t_json(E, "POST", "https://control.localhost/_emulator/permissions/restore", NULL,
             "{\"vault\":\"kv-tde-east\",\"objectId\":\"" UMI_DB1_OID "\"}");
  t_resp_free(&r);
  g = arm("GET", EASTSRV "/databases/inacc", NULL);
  ASSERT_STR_EQ(t_str(&g, "properties.status"), "Inaccessible"); /* no auto-heal after the grace period */
  t_resp_free(&g);
  r = arm("POST", EASTSRV "/databases/inacc/encryptionProtector/current/revalidate", NULL);
  ASSERT_STR_EQ(lro_finish(&r, NULL, 0), "Succeeded");
  t_resp_free(&r);
  g = arm("GET", EASTSRV "/databases/inacc", NULL);
  ASSERT_STR_EQ(t_str(&g, "properties.status"), "Online");
  t_resp_free(&g);
  free(k);
}

TEST(permission_propagation_delay) {
  setup();
  /* umi-mi has no policy on kv-tde-east keys it does not need... give it a vault where it has nothing */
  t_resp r = t_json(E, "PATCH", "https://control.localhost/_emulator/sql/settings", NULL, "{\"permissionDelayMs\":600000}");
  t_resp_free(&r);
  char *k = kv_create(KVE, "prop");
  const char *keys[] = {k, NULL};
  /* revoke: SQL still sees the old grant for ~10 minutes */
  r = t_json(E, "POST", "https://control.localhost/_emulator/permissions/revoke", NULL,
             "{\"vault\":\"kv-tde-east\",\"objectId\":\"" UMI_DB1_OID "\"}");
  t_resp_free(&r);
  t_resp g = t_get(E, "https://control.localhost/_emulator/health", NULL); /* a request: the change is observed */
  t_resp_free(&g);
  r = arm("PUT", EASTSRV "/databases/prop", db_body(UMI_DB1, keys, k, NULL));
  ASSERT_EQ(r.status, 202);
  ASSERT_STR_EQ(lro_finish(&r, NULL, 0), "Succeeded");
  t_resp_free(&r);
  advance_ms(11 * 60000);
  r = arm("PATCH", EASTSRV "/databases/prop", db_body(UMI_DB1, keys, k, NULL));
  ASSERT_EQ(r.status, 400);
  ASSERT_STR_EQ(t_str(&r, "error.code"), "AkvKeyAccessDenied");
  t_resp_free(&r);
  r = t_json(E, "POST", "https://control.localhost/_emulator/permissions/restore", NULL,
             "{\"vault\":\"kv-tde-east\",\"objectId\":\"" UMI_DB1_OID "\"}");
  t_resp_free(&r);
  /* the grant is pending for SQL too */
  r = arm("PATCH", EASTSRV "/databases/prop", db_body(UMI_DB1, keys, k, NULL));
  ASSERT_EQ(r.status, 400);
  t_resp_free(&r);
  advance_ms(11 * 60000);
  r = arm("PATCH", EASTSRV "/databases/prop", db_body(UMI_DB1, keys, k, NULL));
  ASSERT_EQ(r.status, 202);
  lro_finish(&r, NULL, 0);
  t_resp_free(&r);
  r = t_json(E, "PATCH", "https://control.localhost/_emulator/sql/settings", NULL, "{\"permissionDelayMs\":0}");
  t_resp_free(&r);
  /* the database went inaccessible meanwhile: bring it back for later tests */
  r = arm("POST", EASTSRV "/databases/prop/encryptionProtector/current/revalidate", NULL);
  lro_finish(&r, NULL, 0);
  t_resp_free(&r);
  free(k);
}

TEST(point_in_time_restore_needs_the_keys_of_its_time) {
  setup();
  char *a = kv_create(KVE, "pitr-a"), *b = kv_create(KVE, "pitr-b");
  const char *keys[] = {a, b, NULL};
  ASSERT(db_put_ok(EASTSRV "/databases/pitr", db_body(UMI_DB1, keys, a, NULL)));
  workload(EASTSRV "/databases/pitr", "before");
  advance_ms(2000);
  int64_t t0 = emu_now_ms(E);
  advance_ms(2000);
  char body[16384];
  snprintf(body, sizeof body, "{\"properties\":{\"encryptionProtector\":\"%s\"}}", b);
  t_resp r = arm("PATCH", EASTSRV "/databases/pitr", body);
  ASSERT_STR_EQ(lro_finish(&r, NULL, 0), "Succeeded");
  t_resp_free(&r);
  workload(EASTSRV "/databases/pitr", "after");
  char ts[40];
  sql_fmt_time_ms(t0, ts, sizeof ts);
  char props[2048];
  snprintf(props, sizeof props,
           "\"createMode\":\"PointInTimeRestore\",\"sourceDatabaseId\":\"" EASTSRV "/databases/pitr\","
           "\"restorePointInTime\":\"%s\"",
           ts);
  /* with only B: the backup of t0 is under A */
  const char *only_b[] = {b, NULL};
  r = arm("PUT", EASTSRV "/databases/pitr-r1", db_body(UMI_DB1, only_b, b, props));
  ASSERT_EQ(r.status, 400);
  ASSERT_STR_EQ(t_str(&r, "error.code"), "MissingKeyVaultUriForRestore");
  t_resp_free(&r);
  /* with A (the keys of pointInTime(t0)), and without a protector: server-level encryption */
  const char *only_a[] = {a, NULL};
  ASSERT(db_put_ok(EASTSRV "/databases/pitr-r1", db_body(UMI_DB1, only_a, NULL, props)));
  t_resp g = arm("GET", EASTSRV "/databases/pitr-r1", NULL);
  ASSERT(sq_json_path(g.json, "properties.encryptionProtector") == NULL);
  t_resp_free(&g);
  g = ctl_data(EASTSRV "/databases/pitr-r1");
  ASSERT_EQ(g.status, 200);
  ASSERT_STR_CONTAINS(g.body, "before");
  ASSERT(strstr(g.body, "after") == NULL); /* the restore point is before that */
  t_resp_free(&g);
  /* a restore with its own protector */
  ASSERT(db_put_ok(EASTSRV "/databases/pitr-r2", db_body(UMI_DB1, keys, b, props)));
  g = arm("GET", EASTSRV "/databases/pitr-r2", NULL);
  ASSERT_STR_EQ(t_str(&g, "properties.encryptionProtector"), b);
  t_resp_free(&g);
  /* dropped database restore */
  r = arm("DELETE", EASTSRV "/databases/pitr-r2", NULL);
  ASSERT_STR_EQ(lro_finish(&r, NULL, 0), "Succeeded");
  t_resp_free(&r);
  g = arm("GET", EASTSRV "/restorableDroppedDatabases", NULL);
  const char *did = NULL;
  size_t i;
  json_t *v;
  json_array_foreach(json_object_get(g.json, "value"), i, v) if(!strcmp(sq_json_str(v, "properties.databaseName"),
                                                                          "pitr-r2")) did = sq_json_str(v, "id");
  ASSERT(did != NULL);
  char drop_id[1024];
  snprintf(drop_id, sizeof drop_id, "%s", did);
  t_resp_free(&g);
  snprintf(props, sizeof props, "\"createMode\":\"Restore\",\"restorableDroppedDatabaseId\":\"%s\"", drop_id);
  ASSERT(db_put_ok(EASTSRV "/databases/pitr-r3", db_body(UMI_DB1, keys, b, props)));
  g = ctl_data(EASTSRV "/databases/pitr-r3");
  ASSERT_EQ(g.status, 200);
  ASSERT_STR_CONTAINS(g.body, "before");
  t_resp_free(&g);
  /* long-term retention: a backup now needs every key in use now (B, and A while its log is active) */
  r = t_json(E, "POST", "https://control.localhost/_emulator/sql/ltr-backups", NULL,
             "{\"databaseId\":\"" EASTSRV "/databases/pitr\"}");
  ASSERT_EQ(r.status, 201);
  t_resp_free(&r);
  g = arm("GET", RG "/providers/Microsoft.Sql/locations/eastus/longTermRetentionServers/sql-east/"
                 "longTermRetentionDatabases/pitr/longTermRetentionBackups", NULL);
  ASSERT_EQ(g.status, 200);
  ASSERT_EQ(json_array_size(json_object_get(g.json, "value")), 1);
  char ltr[2048];
  snprintf(ltr, sizeof ltr, "%s", sq_json_str(json_array_get(json_object_get(g.json, "value"), 0), "id"));
  ASSERT_STR_EQ(sq_json_str(json_array_get(json_object_get(g.json, "value"), 0), "properties.databaseName"), "pitr");
  t_resp_free(&g);
  snprintf(props, sizeof props, "\"createMode\":\"RestoreLongTermRetentionBackup\",\"longTermRetentionBackupResourceId\":\"%s\"", ltr);
  ASSERT(db_put_ok(EASTSRV "/databases/pitr-ltr", db_body(UMI_DB1, keys, b, props)));
  g = ctl_data(EASTSRV "/databases/pitr-ltr");
  ASSERT_EQ(g.status, 200);
  ASSERT_STR_CONTAINS(g.body, "after");
  t_resp_free(&g);
  free(a);
  free(b);
}

TEST(geo_secondary_rules) {
  setup();
  char *a = kv_create(KVE, "geo-a"), *b = kv_create(KVE, "geo-b");
  const char *keys[] = {a, NULL};
  ASSERT(db_put_ok(EASTSRV "/databases/geo", db_body(UMI_DB1, keys, a, NULL)));
  const char *props = "\"createMode\":\"Secondary\",\"sourceDatabaseId\":\"" EASTSRV "/databases/geo\"";
  char *body = db_body(UMI_DB1, NULL, NULL, props);
  memcpy(strstr(body, "eastus"), "westus", 6);
  t_resp r = arm("PUT", WESTSRV "/databases/geo", body);
  ASSERT_EQ(r.status, 400);
  ASSERT_STR_EQ(t_str(&r, "error.code"), "PerDatabaseCMKCopyOrReplicationAttemptedWithoutDatabaseLevelEncryptionProtector");
  t_resp_free(&r);
  const char *wrong[] = {b, NULL};
  body = db_body(UMI_DB1, wrong, b, props);
  memcpy(strstr(body, "eastus"), "westus", 6);
  r = arm("PUT", WESTSRV "/databases/geo", body);
  ASSERT_EQ(r.status, 400);
  ASSERT_STR_EQ(t_str(&r, "error.code"), "PerDatabaseCMKCopyOrReplicationAttemptedWithoutCurrentKeysWithDatabaseName");
  t_resp_free(&r);
  body = db_body(UMI_DB1, keys, a, props);
  memcpy(strstr(body, "eastus"), "westus", 6);
  ASSERT(db_put_ok(WESTSRV "/databases/geo", body));
  t_resp g = arm("GET", EASTSRV "/databases/geo/replicationLinks", NULL);
  ASSERT_EQ(json_array_size(json_object_get(g.json, "value")), 1);
  ASSERT_STR_EQ(sq_json_str(json_array_get(json_object_get(g.json, "value"), 0), "properties.role"), "Primary");
  t_resp_free(&g);
  g = arm("GET", WESTSRV "/databases/geo", NULL);
  ASSERT_STR_EQ(t_str(&g, "properties.secondaryType"), "Geo");
  t_resp_free(&g);
  /* the primary cannot switch to a protector its secondary lacks */
  char pb[4096];
  snprintf(pb, sizeof pb, "{\"properties\":{\"keys\":{\"%s\":{}},\"encryptionProtector\":\"%s\"}}", b, b);
  r = arm("PATCH", EASTSRV "/databases/geo", pb);
  ASSERT_EQ(r.status, 400);
  ASSERT_STR_EQ(t_str(&r, "error.code"), "PerDatabaseCMKAKVKeyMaterialMissingOnGeoSecondary");
  t_resp_free(&r);
  /* add it to the secondary first, then the primary may move */
  snprintf(pb, sizeof pb, "{\"properties\":{\"keys\":{\"%s\":{}}}}", b);
  r = arm("PATCH", WESTSRV "/databases/geo", pb);
  ASSERT_STR_EQ(lro_finish(&r, NULL, 0), "Succeeded");
  t_resp_free(&r);
  snprintf(pb, sizeof pb, "{\"properties\":{\"keys\":{\"%s\":{}},\"encryptionProtector\":\"%s\"}}", b, b);
  r = arm("PATCH", EASTSRV "/databases/geo", pb);
  ASSERT_STR_EQ(lro_finish(&r, NULL, 0), "Succeeded");
  t_resp_free(&r);
  /* the log ships to the secondary and opens there */
  workload(EASTSRV "/databases/geo", "replicated");
  g = ctl_data(WESTSRV "/databases/geo");
  ASSERT_EQ(g.status, 200);
  ASSERT_STR_CONTAINS(g.body, "replicated");
  t_resp_free(&g);
  /* no chaining from the secondary */
  const char *chain = "\"createMode\":\"Secondary\",\"sourceDatabaseId\":\"" WESTSRV "/databases/geo\"";
  const char *ab[] = {a, b, NULL};
  r = arm("PUT", EASTSRV "/databases/geo-chain", db_body(UMI_DB1, ab, b, chain));
  ASSERT_EQ(r.status, 400);
  ASSERT_STR_EQ(t_str(&r, "error.code"), "SecurityAzureKeyVaultGeoChainError");
  t_resp_free(&r);
  free(a);
  free(b);
}

TEST(managed_instance_falls_back_to_secondary_vault) {
  setup();
  /* tde-shared holds the same material in kv-tde-east and kv-tde-west (seed) */
  t_resp ke = t_get(E, KVE "/keys/tde-shared/" KVV, KV), kw = t_get(E, KVW "/keys/tde-shared/" KVV, KV);
  ASSERT_EQ(ke.status, 200);
  ASSERT_EQ(kw.status, 200);
  char east[1024], west[1024], body[2048], path[1024];
  snprintf(east, sizeof east, "%s", t_str(&ke, "key.kid"));
  snprintf(west, sizeof west, "%s", t_str(&kw, "key.kid"));
  t_resp_free(&ke);
  t_resp_free(&kw);
  const char *uris[] = {east, west};
  const char *vaults[] = {"kv-tde-east", "kv-tde-west"};
  char names[2][256];
  for(int i = 0; i < 2; i++) {
    snprintf(names[i], sizeof names[i], "%s_tde-shared_%s", vaults[i], strrchr(uris[i], '/') + 1);
    snprintf(path, sizeof path, MIEAST "/keys/%s", names[i]);
    snprintf(body, sizeof body, "{\"properties\":{\"serverKeyType\":\"AzureKeyVault\",\"uri\":\"%s\"}}", uris[i]);
    t_resp r = arm("PUT", path, body);
    ASSERT_STR_EQ(lro_finish(&r, NULL, 0), "Succeeded");
    t_resp_free(&r);
  }
  t_resp a = arm("GET", MIEAST "/keys", NULL);
  ASSERT_STR_EQ(sq_json_str(json_array_get(json_object_get(a.json, "value"), 1), "properties.thumbprint"),
                sq_json_str(json_array_get(json_object_get(a.json, "value"), 2), "properties.thumbprint"));
  t_resp_free(&a);
  snprintf(body, sizeof body, "{\"properties\":{\"serverKeyType\":\"AzureKeyVault\",\"serverKeyName\":\"%s\"}}", names[0]);
  t_resp r = arm("PUT", MIEAST "/encryptionProtector/current", body);
  ASSERT_STR_EQ(lro_finish(&r, NULL, 0), "Succeeded");
  t_resp_free(&r);
  r = arm("PUT", MIEAST "/databases/mdb", "{\"location\":\"eastus\",\"properties\":{}}");
  ASSERT_STR_EQ(lro_finish(&r, NULL, 0), "Succeeded");
  t_resp_free(&r);
  /* database-level CMK does not exist on managed instances */
  r = arm("PUT", MIEAST "/databases/mdb2", "{\"location\":\"eastus\",\"properties\":{\"encryptionProtector\":\"x\"}}");
  ASSERT_EQ(r.status, 400);
  t_resp_free(&r);
  /* primary vault down: the instance uses the same key in the west vault */
  r = t_json(E, "POST", "https://control.localhost/_emulator/faults", NULL, "{\"kind\":\"vaultDown\",\"vault\":\"kv-tde-east\"}");
  ASSERT(r.status == 200 || r.status == 201);
  t_resp_free(&r);
  advance_ms(10 * 60000);
  t_resp g = arm("GET", MIEAST "/databases/mdb", NULL);
  ASSERT_STR_EQ(t_str(&g, "properties.status"), "Online");
  t_resp_free(&g);
  g = ctl_data(MIEAST "/databases/mdb");
  ASSERT_EQ(g.status, 200);
  t_resp_free(&g);
  /* west revoked too: nothing left */
  r = t_json(E, "POST", "https://control.localhost/_emulator/permissions/revoke", NULL,
             "{\"vault\":\"kv-tde-west\",\"objectId\":\"" UMI_MI_OID "\"}");
  t_resp_free(&r);
  advance_ms(10 * 60000);
  g = arm("GET", MIEAST "/databases/mdb", NULL);
  ASSERT_STR_EQ(t_str(&g, "properties.status"), "Inaccessible");
  t_resp_free(&g);
  r = t_do(E, "DELETE", "https://control.localhost/_emulator/faults", NULL, NULL, NULL);
  t_resp_free(&r);
  r = t_json(E, "POST", "https://control.localhost/_emulator/permissions/restore", NULL,
             "{\"vault\":\"kv-tde-west\",\"objectId\":\"" UMI_MI_OID "\"}");
  t_resp_free(&r);
}

TEST(state_survives_restart) {
  setup();
  char *k = kv_create(KVE, "restart");
  const char *keys[] = {k, NULL};
  ASSERT(db_put_ok(EASTSRV "/databases/rs", db_body(UMI_DB1, keys, k, NULL)));
  workload(EASTSRV "/databases/rs", "persisted");
  char dbpath[256];
  snprintf(dbpath, sizeof dbpath, "%s/state.db", t_dir);
  emu_close(E);
  sq_err err;
  sq_err_clear(&err);
  ASSERT_OK(emu_open(E, dbpath, &err));
  E->port = 8443;
  t_resp g = arm("GET", EASTSRV "/databases/rs?$expand=keys", NULL);
  ASSERT_EQ(g.status, 200);
  ASSERT_STR_EQ(t_str(&g, "properties.encryptionProtector"), k);
  ASSERT_EQ(json_object_size(sq_json_path(g.json, "properties.keys")), 1);
  t_resp_free(&g);
  g = ctl_data(EASTSRV "/databases/rs");
  ASSERT_EQ(g.status, 200);
  ASSERT_STR_CONTAINS(g.body, "persisted");
  t_resp_free(&g);
  free(k);
}

TEST(throttled_writes_answer_429) {
  setup();
  t_resp r = t_json(E, "PATCH", "https://control.localhost/_emulator/settings", NULL,
                    "{\"throttle\":{\"writes\":{\"burst\":1,\"perSecond\":0.001}}}");
  ASSERT_EQ(r.status, 200);
  t_resp_free(&r);
  int saw = 0;
  for(int i = 0; i < 3; i++) {
    r = arm("PATCH", EASTSRV "/databases/nonexistent", "{}");
    if(r.status == 429) {
      saw = 1;
      ASSERT(t_resp_header(&r, "Retry-After") != NULL);
      ASSERT_STR_EQ(t_str(&r, "error.code"), "TooManyRequests");
    }
    t_resp_free(&r);
  }
  ASSERT(saw);
  r = t_json(E, "PATCH", "https://control.localhost/_emulator/settings", NULL,
             "{\"throttle\":{\"enabled\":false,\"writes\":{\"burst\":200,\"perSecond\":10}}}");
  t_resp_free(&r);
}

TEST(auto_rotation_picks_up_a_new_key_version) {
  setup();
  char *v1 = kv_create(KVE, "autorot");
  const char *keys[] = {v1, NULL};
  ASSERT(db_put_ok(EASTSRV "/databases/autorot",
                   db_body(UMI_DB1, keys, v1, "\"encryptionProtectorAutoRotation\":true")));
  char *v2 = kv_create(KVE, "autorot"); /* a new version of the same key */
  ASSERT(v2 && strcmp(v1, v2));
  advance_ms(2 * 60000);
  t_resp g = arm("GET", EASTSRV "/databases/autorot?$expand=keys", NULL);
  ASSERT_STR_EQ(t_str(&g, "properties.encryptionProtector"), v2);
  ASSERT(t_str(&g, "properties.encryptionProtectorAutoRotation") == NULL); /* a boolean, not a string */
  ASSERT(json_is_true(sq_json_path(g.json, "properties.encryptionProtectorAutoRotation")));
  ASSERT_EQ(json_object_size(sq_json_path(g.json, "properties.keys")), 2);
  t_resp_free(&g);
  g = ctl_data(EASTSRV "/databases/autorot");
  ASSERT_EQ(g.status, 200);
  t_resp_free(&g);
  free(v1);
  free(v2);
}

TEST(failover_group_seeds_only_server_level_databases) {
  setup();
  ASSERT(db_put_ok(EASTSRV "/databases/fogdb", "{\"location\":\"eastus\"}"));
  char *k = kv_create(KVE, "fogkey");
  const char *keys[] = {k, NULL};
  ASSERT(db_put_ok(EASTSRV "/databases/fogcmk", db_body(UMI_DB1, keys, k, NULL)));
  char code[128];
  t_resp r = arm("PUT", EASTSRV "/failoverGroups/fog1",
                 "{\"properties\":{\"readWriteEndpoint\":{\"failoverPolicy\":\"Manual\"},\"partnerServers\":[{\"id\":\"" WESTSRV
                 "\"}],\"databases\":[\"" EASTSRV "/databases/fogcmk\"]}}");
  ASSERT_STR_EQ(lro_finish(&r, code, sizeof code), "Failed");
  ASSERT_STR_EQ(code, "PerDatabaseCMKCopyOrReplicationAttemptedWithoutDatabaseLevelEncryptionProtector");
  t_resp_free(&r);
  r = arm("PUT", EASTSRV "/failoverGroups/fog1",
          "{\"properties\":{\"readWriteEndpoint\":{\"failoverPolicy\":\"Manual\"},\"partnerServers\":[{\"id\":\"" WESTSRV
          "\"}],\"databases\":[\"" EASTSRV "/databases/fogdb\"]}}");
  ASSERT_STR_EQ(lro_finish(&r, NULL, 0), "Succeeded");
  t_resp_free(&r);
  t_resp g = arm("GET", WESTSRV "/failoverGroups/fog1", NULL);
  ASSERT_EQ(g.status, 200);
  ASSERT_STR_EQ(t_str(&g, "properties.replicationRole"), "Secondary");
  t_resp_free(&g);
  g = arm("GET", WESTSRV "/databases/fogdb", NULL); /* seeded by the group */
  ASSERT_EQ(g.status, 200);
  ASSERT_STR_EQ(t_str(&g, "properties.secondaryType"), "Geo");
  t_resp_free(&g);
  r = arm("POST", EASTSRV "/failoverGroups/fog1/failover", NULL);
  ASSERT_EQ(r.status, 400); /* only on the secondary */
  t_resp_free(&r);
  r = arm("POST", WESTSRV "/failoverGroups/fog1/failover", NULL);
  ASSERT_STR_EQ(lro_finish(&r, NULL, 0), "Succeeded");
  t_resp_free(&r);
  g = arm("GET", EASTSRV "/failoverGroups/fog1", NULL);
  ASSERT_STR_EQ(t_str(&g, "properties.replicationRole"), "Secondary");
  t_resp_free(&g);
  g = arm("GET", WESTSRV "/databases/fogdb/replicationLinks", NULL);
  ASSERT_STR_EQ(sq_json_str(json_array_get(json_object_get(g.json, "value"), 0), "properties.role"), "Primary");
  t_resp_free(&g);
  free(k);
}

/* After failover_group_seeds_only_server_level_databases: sql-east and sql-west are FOG partners. */
TEST(server_cmk_key_must_reach_the_geo_partner_first) {
  setup();
  /* the server's identity (umi-db1) has no access policy in kv-tde-west */
  char *kw = kv_create(KVW, "west-srv");
  char name[256], path[512], body[2048];
  snprintf(name, sizeof name, "kv-tde-west_west-srv_%s", strrchr(kw, '/') + 1);
  snprintf(path, sizeof path, WESTSRV "/keys/%s", name);
  snprintf(body, sizeof body, "{\"properties\":{\"serverKeyType\":\"AzureKeyVault\",\"uri\":\"%s\"}}", kw);
  t_resp r = arm("PUT", path, body);
  ASSERT_EQ(r.status, 400);
  ASSERT_STR_EQ(t_str(&r, "error.code"), "UmiMissingAkvPermissions");
  t_resp_free(&r);
  char *k = kv_create(KVE, "geo-srv");
  snprintf(name, sizeof name, "kv-tde-east_geo-srv_%s", strrchr(k, '/') + 1);
  snprintf(body, sizeof body, "{\"properties\":{\"serverKeyType\":\"AzureKeyVault\",\"uri\":\"%s\"}}", k);
  snprintf(path, sizeof path, WESTSRV "/keys/%s", name);
  r = arm("PUT", path, body);
  ASSERT_STR_EQ(lro_finish(&r, NULL, 0), "Succeeded");
  t_resp_free(&r);
  char pb[1024];
  snprintf(pb, sizeof pb, "{\"properties\":{\"serverKeyType\":\"AzureKeyVault\",\"serverKeyName\":\"%s\"}}", name);
  r = arm("PUT", WESTSRV "/encryptionProtector/current", pb);
  ASSERT_EQ(r.status, 400);
  ASSERT_STR_EQ(t_str(&r, "error.code"), "SameKeyMaterialNotFoundOnRemoteServer");
  t_resp_free(&r);
  /* the partner first, then this server */
  snprintf(path, sizeof path, EASTSRV "/keys/%s", name);
  r = arm("PUT", path, body);
  ASSERT_STR_EQ(lro_finish(&r, NULL, 0), "Succeeded");
  t_resp_free(&r);
  r = arm("PUT", WESTSRV "/encryptionProtector/current", pb);
  ASSERT_STR_EQ(lro_finish(&r, NULL, 0), "Succeeded");
  t_resp_free(&r);
  /* server-level databases of sql-west are now wrapped by the server key and still readable */
  t_resp g = ctl_data(WESTSRV "/databases/fogdb");
  ASSERT_EQ(g.status, 200);
  t_resp_free(&g);
  char url[1024];
  snprintf(url, sizeof url, "https://control.localhost/_emulator/sql/vlfs?databaseId=%s", WESTSRV "/databases/fogdb");
  g = t_get(E, url, NULL);
  char t[41];
  thumb_of(k, t);
  ASSERT_STR_EQ(t_str(&g, "protectorThumbprint"), t);
  t_resp_free(&g);
  r = arm("PUT", WESTSRV "/encryptionProtector/current",
          "{\"properties\":{\"serverKeyType\":\"ServiceManaged\",\"serverKeyName\":\"ServiceManaged\"}}");
  ASSERT_STR_EQ(lro_finish(&r, NULL, 0), "Succeeded");
  t_resp_free(&r);
  free(kw);
  free(k);
}

TEST(bad_input_is_answered_not_crashed) {
  setup();
  static const char *const bodies[] = {
      "{\"location\":\"eastus\",\"properties\":{\"keys\":[]}}",
      "{\"location\":\"eastus\",\"identity\":\"x\"}",
      "{\"location\":\"eastus\",\"identity\":{\"type\":\"UserAssigned\",\"userAssignedIdentities\":[1]}}",
      "{\"location\":\"eastus\",\"identity\":{\"type\":\"UserAssigned\",\"userAssignedIdentities\":{\"/x\":{}}}}",
      "{\"location\":\"eastus\",\"properties\":{\"createMode\":\"Copy\"}}",
      "{\"location\":\"eastus\",\"properties\":{\"createMode\":\"Nope\"}}",
      "{\"location\":\"eastus\",\"properties\":{\"createMode\":\"Restore\",\"restorableDroppedDatabaseId\":\"garbage\"}}",
      "{\"location\":\"eastus\",\"properties\":{\"createMode\":\"PointInTimeRestore\",\"sourceDatabaseId\":\"" EASTSRV
      "/databases/db1\",\"restorePointInTime\":\"yesterday\"}}",
      "{\"location\":\"eastus\",\"properties\":{\"createMode\":\"RestoreLongTermRetentionBackup\",\"longTermRetentionBackupResourceId\":\"/\"}}",
      "{\"location\":\"eastus\",\"properties\":{\"createMode\":\"Recovery\",\"recoverableDatabaseId\":\"/subscriptions/x\"}}",
      "{\"location\":\"eastus\",\"properties\":{\"encryptionProtector\":42}}",
      "{\"location\":\"eastus\",\"properties\":{\"federatedClientId\":\"not-a-guid\"}}",
      "{\"location\":\"westeurope\"}",
      "{}",
      "[]",
      "null",
  };
  for(size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
    t_resp r = arm("PUT", EASTSRV "/databases/bad-input", bodies[i]);
    ASSERT(r.status >= 400 && r.status < 500);
    ASSERT(t_str(&r, "error.code") != NULL);
    t_resp_free(&r);
  }
  static const char *const gets[] = {
      EASTSRV "/databases/db1?$expand=keys(",
      EASTSRV "/databases/db1?$expand=keys($filter=pointInTime('2020-13-45T99:00:00Z'))",
      EASTSRV "/databases/db1?$expand=nonsense",
      EASTSRV "/databases?$skipToken=-5",
      EASTSRV "/restorableDroppedDatabases/nocomma",
      EASTSRV "/restorableDroppedDatabases/x,notanumber",
      EASTSRV "/databases/db1/replicationLinks/nope",
      EASTSRV "/keys/nope",
      EASTSRV "/encryptionProtector/other",
      RG "/providers/Microsoft.Sql/servers/nosuchserver/databases/x",
      RG "/providers/Microsoft.Sql/locations/eastus/databaseAzureAsyncOperation/nope",
      RG "/providers/Microsoft.Sql/locations/eastus/somethingElse/nope",
      "/subscriptions/not-a-guid/resourceGroups/rg-tde/providers/Microsoft.Sql/servers/sql-east/databases/db1",
  };
  for(size_t i = 0; i < sizeof gets / sizeof gets[0]; i++) {
    t_resp r = arm("GET", gets[i], NULL);
    ASSERT(r.status == 200 || (r.status >= 400 && r.status < 500));
    t_resp_free(&r);
  }
  t_resp r = arm("GET", EASTSRV "/databases/db1?$expand=keys(", NULL);
  ASSERT_EQ(r.status, 400);
  t_resp_free(&r);
  r = t_json(E, "POST", "https://control.localhost/_emulator/sql/workload", NULL, "{\"databaseId\":\"/x\"}");
  ASSERT_EQ(r.status, 400);
  t_resp_free(&r);
  r = t_json(E, "PATCH", "https://control.localhost/_emulator/sql/settings", NULL, "{\"unknown\":1}");
  ASSERT_EQ(r.status, 400);
  t_resp_free(&r);
}

/* Last: jumps the clock by months. */
TEST(data_is_lost_when_the_key_is_purged) {
  setup();
  char *k = kv_create(KVE, "doomed");
  const char *keys[] = {k, NULL};
  ASSERT(db_put_ok(EASTSRV "/databases/doomed", db_body(UMI_DB1, keys, k, NULL)));
  workload(EASTSRV "/databases/doomed", "precious");
  t_resp g = ctl_data(EASTSRV "/databases/doomed");
  ASSERT_EQ(g.status, 200);
  ASSERT_STR_CONTAINS(g.body, "precious");
  t_resp_free(&g);
  int64_t t0 = emu_now_ms(E);
  advance_ms(1000);
  /* delete the key; the vault purges it when its retention (90 days) ends */
  t_resp r = t_do(E, "DELETE", KVE "/keys/doomed" KVV, KV, NULL, NULL);
  ASSERT_EQ(r.status, 200);
  t_resp_free(&r);
  g = ctl_data(EASTSRV "/databases/doomed");
  ASSERT_EQ(g.status, 409);
  ASSERT_STR_EQ(t_str(&g, "error.code"), "AkvKeyDeleted");
  t_resp_free(&g);
  advance_ms((int64_t)91 * 86400 * 1000);
  tokens();
  r = t_get(E, KVE "/deletedkeys/doomed" KVV, KV);
  ASSERT_EQ(r.status, 404); /* purged for good */
  t_resp_free(&r);
  g = arm("GET", EASTSRV "/databases/doomed", NULL);
  ASSERT_STR_EQ(t_str(&g, "properties.status"), "Inaccessible");
  t_resp_free(&g);
  g = ctl_data(EASTSRV "/databases/doomed");
  ASSERT_EQ(g.status, 409);
  ASSERT_STR_EQ(t_str(&g, "error.code"), "AzureKeyVaultKeyNameNotFound");
  t_resp_free(&g);
  /* and no backup can be opened: the long-term backup needs the purged key */
  (void)t0;
  r = t_json(E, "POST", "https://control.localhost/_emulator/sql/ltr-backups", NULL,
             "{\"databaseId\":\"" EASTSRV "/databases/doomed\"}");
  ASSERT_EQ(r.status, 201);
  char ltr[2048];
  snprintf(ltr, sizeof ltr, "%s", t_str(&r, "id"));
  t_resp_free(&r);
  char props[4096];
  snprintf(props, sizeof props, "\"createMode\":\"RestoreLongTermRetentionBackup\",\"longTermRetentionBackupResourceId\":\"%s\"",
           ltr);
  r = arm("PUT", EASTSRV "/databases/doomed-ltr", db_body(UMI_DB1, keys, NULL, props));
  ASSERT_EQ(r.status, 409);
  ASSERT_STR_EQ(t_str(&r, "error.code"), "AzureKeyVaultKeyNameNotFound");
  t_resp_free(&r);
  r = arm("PUT", EASTSRV "/databases/doomed-ltr", db_body(UMI_DB1, NULL, NULL, props));
  ASSERT_EQ(r.status, 400);
  ASSERT_STR_EQ(t_str(&r, "error.code"), "MissingKeyVaultUriForRestore");
  t_resp_free(&r);
  free(k);
  free(ARM);
  free(KV);
  t_emu_close(E);
  E = NULL;
}

TEST_MAIN()
