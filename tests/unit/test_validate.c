/* Unit tests for operator/validate.h: every rule the CRD schemas cannot
 * express, for KeyVault, VaultKey and ManagedIdentity, table-driven: each row
 * is a spec, whether it is valid, and the field and rule named when not. */
#include <string.h>

#include "sqltde/jsonx.h"
#include "sqltde/operator/validate.h"
#include "test.h"

typedef struct row {
  const char *spec; /* JSON of .spec */
  const char *field; /* NULL: valid */
  const char *rule;
} row;

static json_t *obj_of(const char *spec) {
  json_t *s = json_loads(spec, 0, NULL);
  if(!s) {
    fprintf(stderr, "bad JSON in table: %s\n", spec);
    return NULL;
  }
  return json_pack("{s:{s:s,s:s},s:o}", "metadata", "name", "x", "namespace", "ns", "spec", s);
}

typedef sq_code (*validator)(const json_t *obj, sq_invalid *inv);

static int run_table(const row *rows, size_t n, validator fn) {
  int bad = 0;
  for(size_t i = 0; i < n; i++) {
    json_t *o = obj_of(rows[i].spec);
    if(!o) {
      bad++;
      continue;
    }
    sq_invalid inv;
    memset(&inv, 0x5a, sizeof inv);
    sq_code rc = fn(o, &inv);
    if(!rows[i].field) {
      if(rc) {
        fprintf(stderr, "  row %zu: expected valid, got %s\n", i, inv.message);
        bad++;
      } else if(inv.field[0] || inv.rule[0]) {
        fprintf(stderr, "  row %zu: valid but inv not cleared\n", i);
        bad++;
      }
    } else if(rc != SQ_EINVAL || strcmp(inv.field, rows[i].field) || strcmp(inv.rule, rows[i].rule) ||
              !strstr(inv.message, rows[i].field) || !strstr(inv.message, rows[i].rule)) {
      fprintf(stderr, "  row %zu: expected %s/%s, got rc=%d %s/%s (%s)\n", i, rows[i].field, rows[i].rule, rc,
              rc ? inv.field : "-", rc ? inv.rule : "-", rc ? inv.message : "");
      bad++;
    }
    json_decref(o);
  }
  return bad;
}

/* ---- KeyVault ---------------------------------------------------------------- */

#define KV_OK_TAIL                                                                                   \
  "\"location\":\"eastus\",\"subscriptionId\":\"aaaaaaaa-0000-4000-8000-000000000001\","            \
  "\"resourceGroup\":\"rg-tde\",\"tenantId\":\"11111111-1111-4111-8111-111111111111\""

static sq_code kv_public(const json_t *o, sq_invalid *inv) { return sq_validate_keyvault(o, "vault.azure.net", inv); }
static sq_code kv_emulator(const json_t *o, sq_invalid *inv) {
  return sq_validate_keyvault(o, "vault.localhost", inv);
}

TEST(keyvault_rules) {
  static const row rows[] = {
      {"{\"vaultUri\":\"https://kv-tde-east.vault.azure.net/\"," KV_OK_TAIL "}", NULL, NULL},
      {"{\"vaultUri\":\"https://kv-tde-east.vault.azure.net\"," KV_OK_TAIL ",\"probeInterval\":\"5m\"}", NULL, NULL},
      {"{\"vaultUri\":\"https://KV1abc.VAULT.azure.net:443/\"," KV_OK_TAIL "}", NULL, NULL},
      {"{\"vaultUri\":\"https://kv1.vault.azure.net/keys/x\"," KV_OK_TAIL "}", "spec.vaultUri", "VaultUriHasPath"},
      {"{\"vaultUri\":\"https://kv1.vault.azure.net/?a=b\"," KV_OK_TAIL "}", "spec.vaultUri", "VaultUriHasPath"},
      {"{\"vaultUri\":\"http://kv1.vault.azure.net/\"," KV_OK_TAIL "}", "spec.vaultUri", "VaultUriNotHttps"},
      {"{\"vaultUri\":\"https://kv1.vault.azure.cn/\"," KV_OK_TAIL "}", "spec.vaultUri", "VaultUriNotInCloud"},
      {"{\"vaultUri\":\"https://kv1.evil.com/.vault.azure.net/\"," KV_OK_TAIL "}", "spec.vaultUri", "VaultUriHasPath"},
      {"{\"vaultUri\":\"https://kv1.notvault.azure.net/\"," KV_OK_TAIL "}", "spec.vaultUri", "VaultUriNotInCloud"},
      {"{\"vaultUri\":\"https://vault.azure.net/\"," KV_OK_TAIL "}", "spec.vaultUri", "VaultUriNotInCloud"},
      {"{\"vaultUri\":\"https://kv.vault.azure.net/\"," KV_OK_TAIL "}", "spec.vaultUri", "InvalidVaultName"},
      {"{\"vaultUri\":\"https://1kv.vault.azure.net/\"," KV_OK_TAIL "}", "spec.vaultUri", "InvalidVaultName"},
      {"{\"vaultUri\":\"https://kv--a.vault.azure.net/\"," KV_OK_TAIL "}", "spec.vaultUri", "InvalidVaultName"},
      {"{\"vaultUri\":\"https://kva-.vault.azure.net/\"," KV_OK_TAIL "}", "spec.vaultUri", "InvalidVaultName"},
      {"{\"vaultUri\":\"https://abcdefghijklmnopqrstuvwxy.vault.azure.net/\"," KV_OK_TAIL "}", "spec.vaultUri",
       "InvalidVaultName"},
      {"{\"vaultUri\":\"https://kv1.vault.azure.net:0/\"," KV_OK_TAIL "}", "spec.vaultUri", "VaultUriInvalidPort"},
      {"{\"vaultUri\":\"https://kv1.vault.azure.net:99999/\"," KV_OK_TAIL "}", "spec.vaultUri", "VaultUriInvalidPort"},
      {"{" KV_OK_TAIL "}", "spec.vaultUri", "Required"},
      {"{\"vaultUri\":\"https://kv1.vault.azure.net/\",\"subscriptionId\":\"aaaaaaaa-0000-4000-8000-000000000001\","
       "\"resourceGroup\":\"rg\",\"tenantId\":\"11111111-1111-4111-8111-111111111111\"}",
       "spec.location", "Required"},
      {"{\"vaultUri\":\"https://kv1.vault.azure.net/\",\"location\":\"eastus\",\"subscriptionId\":\"not-a-guid\","
       "\"resourceGroup\":\"rg\",\"tenantId\":\"11111111-1111-4111-8111-111111111111\"}",
       "spec.subscriptionId", "InvalidGuid"},
      {"{\"vaultUri\":\"https://kv1.vault.azure.net/\",\"location\":\"eastus\","
       "\"subscriptionId\":\"aaaaaaaa-0000-4000-8000-000000000001\",\"resourceGroup\":\"rg/../x\","
       "\"tenantId\":\"11111111-1111-4111-8111-111111111111\"}",
       "spec.resourceGroup", "InvalidResourceGroup"},
      {"{\"vaultUri\":\"https://kv1.vault.azure.net/\",\"location\":\"eastus\","
       "\"subscriptionId\":\"aaaaaaaa-0000-4000-8000-000000000001\",\"resourceGroup\":\"rg.\","
       "\"tenantId\":\"11111111-1111-4111-8111-111111111111\"}",
       "spec.resourceGroup", "InvalidResourceGroup"},
      {"{\"vaultUri\":\"https://kv1.vault.azure.net/\",\"location\":\"eastus\","
       "\"subscriptionId\":\"aaaaaaaa-0000-4000-8000-000000000001\",\"resourceGroup\":\"rg\","
       "\"tenantId\":\"11111111-1111-4111-8111-11111111111\"}",
       "spec.tenantId", "InvalidGuid"},
      {"{\"vaultUri\":\"https://kv1.vault.azure.net/\"," KV_OK_TAIL ",\"probeInterval\":\"5s\"}", "spec.probeInterval",
       "ProbeIntervalOutOfRange"},
      {"{\"vaultUri\":\"https://kv1.vault.azure.net/\"," KV_OK_TAIL ",\"probeInterval\":\"25h\"}",
       "spec.probeInterval", "ProbeIntervalOutOfRange"},
      {"{\"vaultUri\":\"https://kv1.vault.azure.net/\"," KV_OK_TAIL ",\"probeInterval\":\"inf\"}",
       "spec.probeInterval", "InvalidDuration"},
      {"{\"vaultUri\":\"https://kv1.vault.azure.net/\"," KV_OK_TAIL ",\"probeInterval\":\"1e3s\"}",
       "spec.probeInterval", "InvalidDuration"},
      {"{\"vaultUri\":\"https://kv1.vault.azure.net/\"," KV_OK_TAIL ",\"probeInterval\":10}", "spec.probeInterval",
       "InvalidDuration"},
  };
  ASSERT_EQ(run_table(rows, sizeof rows / sizeof rows[0], kv_public), 0);
}

TEST(keyvault_cloud_suffix_follows_config) {
  /* the emulator's vaults live under vault.localhost with a port */
  static const row rows[] = {
      {"{\"vaultUri\":\"https://kv-tde-east.vault.localhost:8443/\"," KV_OK_TAIL "}", NULL, NULL},
      {"{\"vaultUri\":\"https://kv-tde-east.vault.azure.net/\"," KV_OK_TAIL "}", "spec.vaultUri",
       "VaultUriNotInCloud"},
  };
  ASSERT_EQ(run_table(rows, sizeof rows / sizeof rows[0], kv_emulator), 0);
  /* no suffix configured: nothing passes */
  json_t *o = obj_of("{\"vaultUri\":\"https://kv1.vault.azure.net/\"," KV_OK_TAIL "}");
  sq_invalid inv;
  ASSERT_EQ(sq_validate_keyvault(o, NULL, &inv), SQ_EINVAL);
  ASSERT_STR_EQ(inv.rule, "VaultUriNotInCloud");
  ASSERT_EQ(sq_validate_keyvault(o, "vault.azure.net", NULL), SQ_OK);
  json_decref(o);
}

/* ---- VaultKey ---------------------------------------------------------------- */

#define ONE_VAULT "\"vaults\":[{\"name\":\"kv1\"}],\"keyName\":\"tde1\""
#define TWO_VAULTS "\"vaults\":[{\"name\":\"kv1\"},{\"name\":\"kv2\"}],\"keyName\":\"tde1\""
#define IMPORT_SRC "\"source\":{\"type\":\"import\",\"secretRef\":{\"name\":\"pem\"}}"

TEST(vaultkey_rules) {
  static const row rows[] = {
      {"{" ONE_VAULT ",\"source\":{\"type\":\"generate\"}}", NULL, NULL},
      {"{" ONE_VAULT ",\"source\":{\"type\":\"generate\",\"kty\":\"RSA-HSM\",\"size\":4096}}", NULL, NULL},
      {"{" ONE_VAULT ",\"source\":{\"type\":\"existing\"},\"rotation\":{\"every\":\"2160h\",\"trigger\":\"t1\"}}",
       NULL, NULL},
      {"{" TWO_VAULTS ",\"source\":{\"type\":\"generate\"},\"replication\":\"backupRestore\"}", NULL, NULL},
      {"{" TWO_VAULTS "," IMPORT_SRC ",\"replication\":\"import\"}", NULL, NULL},
      {"{" TWO_VAULTS "," IMPORT_SRC ",\"replication\":\"backupRestore\",\"expiryWarning\":\"720h\"}", NULL, NULL},
      {"{\"vaults\":[],\"keyName\":\"k\",\"source\":{\"type\":\"generate\"}}", "spec.vaults", "VaultCount"},
      {"{\"keyName\":\"k\",\"source\":{\"type\":\"generate\"}}", "spec.vaults", "VaultCount"},
      {"{\"vaults\":[{\"name\":\"kv1\"},{\"name\":\"kv1\"}],\"keyName\":\"k\",\"source\":{\"type\":\"generate\"}}",
       "spec.vaults[1].name", "DuplicateVault"},
      {"{\"vaults\":[{\"name\":\"kv1\"},{}],\"keyName\":\"k\",\"source\":{\"type\":\"generate\"}}",
       "spec.vaults[1].name", "Required"},
      {"{\"vaults\":[{\"name\":\"kv1\"}],\"keyName\":\"bad_name\",\"source\":{\"type\":\"generate\"}}",
       "spec.keyName", "InvalidKeyName"},
      {"{" ONE_VAULT ",\"source\":{\"type\":\"copy\"}}", "spec.source.type", "InvalidSourceType"},
      {"{" ONE_VAULT ",\"source\":{\"type\":\"generate\",\"size\":1024}}", "spec.source.size", "InvalidKeySize"},
      {"{" ONE_VAULT ",\"source\":{\"type\":\"generate\",\"kty\":\"EC\"}}", "spec.source.kty", "InvalidKeyType"},
      {"{" ONE_VAULT ",\"source\":{\"type\":\"import\"}}", "spec.source.secretRef.name", "SecretRefRequired"},
      {"{" ONE_VAULT ",\"source\":{\"type\":\"generate\",\"secretRef\":{\"name\":\"pem\"}}}",
       "spec.source.secretRef", "SecretRefOnlyForImport"},
      {"{" ONE_VAULT ",\"source\":{\"type\":\"import\",\"secretRef\":{\"name\":\"pem\",\"key\":\"a/b\"}}}",
       "spec.source.secretRef.key", "InvalidSecretKey"},
      {"{" TWO_VAULTS ",\"source\":{\"type\":\"generate\"},\"replication\":\"import\"}", "spec.replication",
       "ImportReplicationNeedsPem"},
      {"{" TWO_VAULTS ",\"source\":{\"type\":\"existing\"},\"replication\":\"import\"}", "spec.replication",
       "ImportReplicationNeedsPem"},
      /* one vault: replication mode does not matter */
      {"{" ONE_VAULT ",\"source\":{\"type\":\"generate\"},\"replication\":\"import\"}", NULL, NULL},
      {"{" ONE_VAULT ",\"source\":{\"type\":\"generate\"},\"replication\":\"copy\"}", "spec.replication",
       "InvalidReplication"},
      {"{" TWO_VAULTS ",\"source\":{\"type\":\"generate\"},\"rotation\":{\"trigger\":\"x\"}}", "spec.rotation",
       "RotationCannotReplicate"},
      {"{" TWO_VAULTS "," IMPORT_SRC ",\"replication\":\"import\",\"rotation\":{\"every\":\"2160h\"}}",
       "spec.rotation", "RotationCannotReplicate"},
      /* an empty trigger is no rotation */
      {"{" TWO_VAULTS ",\"source\":{\"type\":\"generate\"},\"rotation\":{\"trigger\":\"\"}}", NULL, NULL},
      {"{" ONE_VAULT ",\"source\":{\"type\":\"generate\"},\"rotation\":{\"every\":\"30m\"}}", "spec.rotation.every",
       "RotationIntervalTooShort"},
      {"{" ONE_VAULT ",\"source\":{\"type\":\"generate\"},\"rotation\":{\"every\":\"90d\"}}", "spec.rotation.every",
       "InvalidDuration"},
      {"{" ONE_VAULT ",\"source\":{\"type\":\"generate\"},\"rotation\":{\"every\":5}}", "spec.rotation.every",
       "InvalidDuration"},
      {"{" ONE_VAULT ",\"source\":{\"type\":\"generate\"},\"expiryWarning\":\"-1h\"}", "spec.expiryWarning",
       "InvalidDuration"},
      {"{" ONE_VAULT ",\"source\":{\"type\":\"generate\"},\"expiryWarning\":\"1.5h\"}", NULL, NULL},
  };
  ASSERT_EQ(run_table(rows, sizeof rows / sizeof rows[0], sq_validate_vaultkey), 0);
}

/* ---- ManagedIdentity ---------------------------------------------------------- */

#define MI_RID "/subscriptions/aaaaaaaa-0000-4000-8000-000000000001/resourceGroups/rg-tde/providers/" \
               "Microsoft.ManagedIdentity/userAssignedIdentities/umi-db1"
#define MI_IDS "\"clientId\":\"0c0c0c0c-0000-4000-8000-000000000001\",\"principalId\":\"0d0d0d0d-0000-4000-8000-000000000001\""

TEST(managedidentity_rules) {
  static const row rows[] = {
      {"{\"resourceId\":\"" MI_RID "\"," MI_IDS "}", NULL, NULL},
      {"{\"resourceId\":\"" MI_RID "\"," MI_IDS ",\"federatedClientId\":\"0a0a0a0a-0000-4000-8000-000000000003\"}",
       NULL, NULL},
      {"{\"resourceId\":\"" MI_RID "\"," MI_IDS ",\"federatedClientId\":\"0C0C0C0C-0000-4000-8000-000000000001\"}",
       "spec.federatedClientId", "FederatedClientIsIdentity"},
      {"{\"resourceId\":\"" MI_RID "\"," MI_IDS ",\"federatedClientId\":\"nope\"}", "spec.federatedClientId",
       "InvalidGuid"},
      {"{\"resourceId\":\"/subscriptions/sub1/resourceGroups/rg/providers/Microsoft.ManagedIdentity/"
       "userAssignedIdentities/u\"," MI_IDS "}",
       "spec.resourceId", "InvalidResourceId"},
      {"{\"resourceId\":\"/subscriptions/aaaaaaaa-0000-4000-8000-000000000001/resourceGroups/rg/providers/"
       "Microsoft.Sql/servers/s\"," MI_IDS "}",
       "spec.resourceId", "NotUserAssignedIdentity"},
      {"{\"resourceId\":\"umi-db1\"," MI_IDS "}", "spec.resourceId", "InvalidResourceId"},
      {"{\"resourceId\":\"" MI_RID "\",\"clientId\":\"x\",\"principalId\":\"0d0d0d0d-0000-4000-8000-000000000001\"}",
       "spec.clientId", "InvalidGuid"},
      {"{\"resourceId\":\"" MI_RID "\",\"clientId\":\"0c0c0c0c-0000-4000-8000-000000000001\"}", "spec.principalId",
       "InvalidGuid"},
      {"{\"resourceId\":\"" MI_RID "\",\"clientId\":\"0c0c0c0c-0000-4000-8000-000000000001\","
       "\"principalId\":\"0c0c0c0c-0000-4000-8000-000000000001\"}",
       "spec.principalId", "PrincipalIsClientId"},
  };
  ASSERT_EQ(run_table(rows, sizeof rows / sizeof rows[0], sq_validate_managedidentity), 0);
}

TEST(missing_spec_is_invalid_not_a_crash) {
  json_t *o = json_pack("{s:{s:s}}", "metadata", "name", "x");
  sq_invalid inv;
  ASSERT_EQ(sq_validate_keyvault(o, "vault.azure.net", &inv), SQ_EINVAL);
  ASSERT_STR_EQ(inv.field, "spec");
  ASSERT_EQ(sq_validate_vaultkey(o, &inv), SQ_EINVAL);
  ASSERT_STR_EQ(inv.rule, "Required");
  ASSERT_EQ(sq_validate_managedidentity(o, &inv), SQ_EINVAL);
  ASSERT_EQ(sq_validate_managedidentity(NULL, &inv), SQ_EINVAL);
  json_decref(o);
}

TEST(durations) {
  static const struct {
    const char *s;
    int64_t ms; /* -1: invalid */
  } rows[] = {{"5m", 300000},   {"1h30m", 5400000}, {"250ms", 250},  {"1.5h", 5400000}, {"2160h", 7776000000LL},
              {"", -1},         {"5", -1},          {"m", -1},       {"1.h", -1},       {"+5m", -1},
              {"5M", -1},       {"inf", -1},        {"1e3s", -1},    {"5m ", -1},       {"0x10s", -1},
              {"999999999h", -1}};
  for(size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    int64_t ms = -7;
    sq_code rc = sq_spec_duration_ms(rows[i].s, &ms);
    if(rows[i].ms < 0) {
      if(rc != SQ_EINVAL)
        TEST_FAIL_("\"%s\" should be invalid", rows[i].s);
    } else {
      if(rc || ms != rows[i].ms)
        TEST_FAIL_("\"%s\": rc %d ms %lld, want %lld", rows[i].s, rc, (long long)ms, (long long)rows[i].ms);
    }
  }
  ASSERT_EQ(sq_spec_duration_ms(NULL, NULL), SQ_EINVAL);
}

TEST_MAIN()
