/* test_emu_arm.c — shared ARM behaviour through emu_handle: the vault
 * resource, role assignments at scopes with $filter, bearer and api-version
 * checks, scope errors, RBAC on management actions, throttling buckets,
 * long-running operations (through a test-only route table) and bad input,
 * all in the ARM error shape. */
#include "emu_harness.h"

#define MGMT "https://management.localhost"
#define RG "/subscriptions/" T_SUB1 "/resourceGroups/rg-tde"
#define VAULT RG "/providers/Microsoft.KeyVault/vaults/kv-tde-east"
#define KV_API "?api-version=2023-07-01"

static emu *E;
static char *OP, *NOBODY;

static void setup(void) {
  if(E)
    return;
  E = t_emu_open();
  OP = t_token(E, T_OP_OID, "https://management.azure.com", 86400);
  NOBODY = t_token(E, T_NOBODY_OID, "https://management.azure.com", 86400);
}

static void assert_arm_error(const t_resp *r, int status, const char *code) {
  if(r->status != status || !t_str(r, "error.code") || strcmp(t_str(r, "error.code"), code))
    fprintf(stderr, "expected %d %s, got %d %s\n", status, code, r->status, r->body);
  ASSERT_EQ(r->status, status);
  ASSERT_STR_EQ(t_str(r, "error.code"), code);
  ASSERT_NOT_NULL(t_str(r, "error.message"));
}

TEST(vault_resource) {
  setup();
  t_resp r = t_get(E, MGMT VAULT KV_API, OP);
  ASSERT_EQ(r.status, 200);
  ASSERT_STR_EQ(t_str(&r, "id"), VAULT);
  ASSERT_STR_EQ(t_str(&r, "type"), "Microsoft.KeyVault/vaults");
  ASSERT_STR_EQ(t_str(&r, "location"), "eastus");
  ASSERT_STR_EQ(t_str(&r, "properties.vaultUri"), "https://kv-tde-east.vault.localhost:8443/");
  ASSERT_STR_EQ(t_str(&r, "properties.tenantId"), T_TENANT);
  ASSERT(json_is_true(sq_json_path(r.json, "properties.enableSoftDelete")));
  ASSERT(json_is_true(sq_json_path(r.json, "properties.enablePurgeProtection")));
  ASSERT(json_is_false(sq_json_path(r.json, "properties.enableRbacAuthorization")));
  json_t *aps = sq_json_path(r.json, "properties.accessPolicies");
  ASSERT_EQ(json_array_size(aps), 3);
  json_t *umi = json_array_get(aps, 1);
  ASSERT_STR_EQ(sq_json_str(umi, "objectId"), T_UMI_OID);
  json_t *keys = sq_json_path(umi, "permissions.keys");
  ASSERT_EQ(json_array_size(keys), 3);
  ASSERT_STR_EQ(json_string_value(json_array_get(keys, 1)), "wrapKey");
  ASSERT_NOT_NULL(t_resp_header(&r, "x-ms-ratelimit-remaining-subscription-reads"));
  ASSERT_NOT_NULL(t_resp_header(&r, "x-ms-correlation-request-id"));
  t_resp_free(&r);
  r = t_get(E, MGMT RG "/providers/Microsoft.KeyVault/vaults/kv-nopurge" KV_API, OP);
  ASSERT_EQ(r.status, 200);
  ASSERT_NULL(sq_json_path(r.json, "properties.enablePurgeProtection")); /* Azure omits it when off */
  ASSERT_EQ(sq_json_int(r.json, "properties.softDeleteRetentionInDays", 0), 7);
  t_resp_free(&r);
  r = t_get(E, MGMT RG "/providers/Microsoft.KeyVault/vaults/kv-rbac" KV_API, OP);
  ASSERT(json_is_true(sq_json_path(r.json, "properties.enableRbacAuthorization")));
  t_resp_free(&r);
  r = t_get(E, MGMT "/subscriptions/" T_SUB1 "/providers/Microsoft.KeyVault/vaults" KV_API, OP);
  ASSERT_EQ(json_array_size(json_object_get(r.json, "value")), 5); /* kv-tde-east, kv-tde-west, kv-rbac, kv-nopurge, kv-eu */
  t_resp_free(&r);
}

TEST(auth_and_api_version_errors) {
  setup();
  t_resp r = t_get(E, MGMT VAULT KV_API, NULL);
  assert_arm_error(&r, 401, "AuthenticationFailed");
  ASSERT_NOT_NULL(t_resp_header(&r, "WWW-Authenticate"));
  t_resp_free(&r);
  r = t_get(E, MGMT VAULT KV_API, "not.a.jwt");
  assert_arm_error(&r, 401, "InvalidAuthenticationToken");
  t_resp_free(&r);
  r = t_get(E, MGMT VAULT, OP);
  assert_arm_error(&r, 400, "MissingApiVersionParameter");
  t_resp_free(&r);
  r = t_get(E, MGMT VAULT "?api-version=banana", OP);
  assert_arm_error(&r, 400, "InvalidApiVersionParameter");
  t_resp_free(&r);
  r = t_get(E, MGMT VAULT "?api-version=2099-01-01", OP);
  assert_arm_error(&r, 400, "NoRegisteredProviderFound");
  ASSERT_STR_CONTAINS(t_str(&r, "error.message"), "2023-07-01");
  t_resp_free(&r);
  /* a token of another tenant for this subscription */
  char *fab = t_token(E, "0b0b0b0b-0000-4000-8000-000000000003", "https://management.azure.com", 600);
  r = t_get(E, MGMT VAULT KV_API, fab);
  assert_arm_error(&r, 401, "InvalidAuthenticationTokenTenant");
  t_resp_free(&r);
  free(fab);
}

TEST(scope_errors_and_authorization) {
  setup();
  t_resp r = t_get(E, MGMT "/subscriptions/not-a-guid/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/x" KV_API, OP);
  assert_arm_error(&r, 400, "InvalidSubscriptionId");
  t_resp_free(&r);
  r = t_get(E, MGMT "/subscriptions/99999999-9999-4999-8999-999999999999/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/x" KV_API, OP);
  assert_arm_error(&r, 404, "SubscriptionNotFound");
  t_resp_free(&r);
  r = t_get(E, MGMT "/subscriptions/" T_SUB1 "/resourceGroups/nope/providers/Microsoft.KeyVault/vaults/x" KV_API, OP);
  assert_arm_error(&r, 404, "ResourceGroupNotFound");
  t_resp_free(&r);
  r = t_get(E, MGMT RG "/providers/Microsoft.KeyVault/vaults/missing" KV_API, OP);
  assert_arm_error(&r, 404, "ResourceNotFound");
  t_resp_free(&r);
  r = t_get(E, MGMT VAULT KV_API, NOBODY);
  assert_arm_error(&r, 403, "AuthorizationFailed");
  ASSERT_STR_CONTAINS(t_str(&r, "error.message"), "Microsoft.KeyVault/vaults/read");
  t_resp_free(&r);
  r = t_get(E, MGMT "/subscriptions/" T_SUB1 "/no/such/thing" KV_API, OP);
  ASSERT_EQ(r.status, 404);
  t_resp_free(&r);
}

static int count_role(const t_resp *r, const char *role_guid) {
  int n = 0;
  size_t i;
  json_t *a;
  json_array_foreach(json_object_get(r->json, "value"), i, a) {
    const char *def = sq_json_str(a, "properties.roleDefinitionId");
    if(def && strstr(def, role_guid))
      n++;
  }
  return n;
}

TEST(role_assignments) {
  setup();
  const char *kvr = MGMT RG "/providers/Microsoft.KeyVault/vaults/kv-rbac";
  char url[1024];
  snprintf(url, sizeof url, "%s/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01", kvr);
  t_resp r = t_get(E, url, OP);
  ASSERT_EQ(r.status, 200);
  ASSERT_EQ(count_role(&r, "e147488a-f6f5-4113-8e2d-b22465e65bf6"), 1);
  ASSERT_EQ(count_role(&r, "14b46e9e-c2b7-41b4-b07b-48a6ebf60603"), 1);
  ASSERT_EQ(count_role(&r, "acdd72a7-3385-48ef-bd42-f606fba81ae7"), 1); /* Reader inherited from the subscription */
  json_t *first = json_array_get(json_object_get(r.json, "value"), 0);
  ASSERT_STR_EQ(sq_json_str(first, "type"), "Microsoft.Authorization/roleAssignments");
  ASSERT_NOT_NULL(sq_json_str(first, "properties.principalId"));
  t_resp_free(&r);
  /* key scope, filtered to the database identity */
  snprintf(url, sizeof url,
           "%s/keys/rk/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&%%24filter=atScope()%%20and%%20assignedTo('%s')",
           kvr, T_UMI_OID);
  r = t_get(E, url, OP);
  ASSERT_EQ(r.status, 200);
  ASSERT_EQ(json_array_size(json_object_get(r.json, "value")), 1);
  ASSERT_STR_EQ(sq_json_str(json_array_get(json_object_get(r.json, "value"), 0), "properties.scope"),
                RG "/providers/Microsoft.KeyVault/vaults/kv-rbac");
  t_resp_free(&r);
  /* below-scope assignments appear only without atScope() */
  snprintf(url, sizeof url, MGMT "/subscriptions/" T_SUB1 "/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter=atScope()");
  r = t_get(E, url, OP);
  ASSERT_EQ(json_array_size(json_object_get(r.json, "value")), 1);
  t_resp_free(&r);
  snprintf(url, sizeof url, "%s/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter=bogus", kvr);
  r = t_get(E, url, OP);
  assert_arm_error(&r, 400, "InvalidFilterInQueryString");
  t_resp_free(&r);
  /* the role definition behind an assignment */
  r = t_get(E, MGMT "/subscriptions/" T_SUB1 "/providers/Microsoft.Authorization/roleDefinitions/e147488a-f6f5-4113-8e2d-b22465e65bf6?api-version=2022-04-01", OP);
  ASSERT_EQ(r.status, 200);
  ASSERT_STR_EQ(t_str(&r, "properties.roleName"), "Key Vault Crypto Service Encryption User");
  t_resp_free(&r);
  /* writing needs Microsoft.Authorization/roleAssignments/write: the operator (Reader) is refused */
  snprintf(url, sizeof url, "%s/providers/Microsoft.Authorization/roleAssignments/11111111-2222-4333-8444-555555555555?api-version=2022-04-01", kvr);
  r = t_json(E, "PUT", url, OP, "{\"properties\":{\"roleDefinitionId\":\"Reader\",\"principalId\":\"" T_NOBODY_OID "\"}}");
  assert_arm_error(&r, 403, "AuthorizationFailed");
  t_resp_free(&r);
  r = t_json(E, "POST", "https://control.localhost/_emulator/seed", NULL,
             "{\"roleAssignments\":[{\"scope\":\"/subscriptions/" T_SUB1 "\",\"role\":\"Owner\",\"principalId\":\"" T_OP_OID "\"}]}");
  ASSERT_EQ(r.status, 200);
  t_resp_free(&r);
  r = t_json(E, "PUT", url, OP,
             "{\"properties\":{\"roleDefinitionId\":\"/subscriptions/" T_SUB1
             "/providers/Microsoft.Authorization/roleDefinitions/12338af0-0e69-4776-bea7-57ae8d297424\",\"principalId\":\"" T_NOBODY_OID "\"}}");
  ASSERT_EQ(r.status, 201);
  t_resp_free(&r);
  ASSERT(emu_rbac_allows(E, T_NOBODY_OID, RG "/providers/Microsoft.KeyVault/vaults/kv-rbac/keys/any",
                         "Microsoft.KeyVault/vaults/keys/unwrap/action", 1));
  r = t_do(E, "DELETE", url, OP, NULL, NULL);
  ASSERT_EQ(r.status, 200);
  t_resp_free(&r);
  ASSERT(!emu_rbac_allows(E, T_NOBODY_OID, RG "/providers/Microsoft.KeyVault/vaults/kv-rbac/keys/any",
                          "Microsoft.KeyVault/vaults/keys/unwrap/action", 1));
  r = t_json(E, "PUT", url, OP, "{bad json");
  assert_arm_error(&r, 400, "InvalidRequestContent");
  t_resp_free(&r);
  r = t_do(E, "PUT", url, OP, "text/xml", "<x/>");
  assert_arm_error(&r, 415, "UnsupportedMediaType");
  t_resp_free(&r);
  char *big = malloc(EMU_MAX_BODY + 2);
  memset(big, ' ', EMU_MAX_BODY + 1);
  big[EMU_MAX_BODY + 1] = '\0';
  r = t_json(E, "PUT", url, OP, big);
  assert_arm_error(&r, 413, "RequestEntityTooLarge");
  t_resp_free(&r);
  free(big);
}

TEST(throttling_buckets) {
  setup();
  t_resp r = t_json(E, "PATCH", "https://control.localhost/_emulator/settings", NULL,
                    "{\"throttle\":{\"reads\":{\"burst\":3,\"perSecond\":0.01}}}");
  ASSERT_EQ(r.status, 200);
  t_resp_free(&r);
  /* a new subscription bucket: sub2 has not been used yet */
  const char *url = MGMT "/subscriptions/" T_SUB2 "/providers/Microsoft.KeyVault/vaults" KV_API;
  for(int i = 0; i < 3; i++) {
    r = t_get(E, url, OP);
    ASSERT_EQ(r.status, 200);
    ASSERT_EQ(atoi(t_resp_header(&r, "x-ms-ratelimit-remaining-subscription-reads")), 2 - i);
    t_resp_free(&r);
  }
  r = t_get(E, url, OP);
  assert_arm_error(&r, 429, "TooManyRequests");
  ASSERT_GE(atoi(t_resp_header(&r, "Retry-After")), 1);
  ASSERT_STR_EQ(t_resp_header(&r, "x-ms-ratelimit-remaining-subscription-reads"), "0");
  t_resp_free(&r);
  r = t_json(E, "PATCH", "https://control.localhost/_emulator/settings", NULL,
             "{\"throttle\":{\"reads\":{\"burst\":250,\"perSecond\":25}}}");
  t_resp_free(&r);
}

/* A test-only provider: PUT starts an LRO, two status URLs poll it. */
static void h_start(emu_call *c) {
  char id[37];
  emu_lro_start(c, "TestThing", "/things/x", emu_var(c, "sub"),
                "/subscriptions/" T_SUB1 "/providers/Microsoft.Emulator/locations/eastus/thingAzureAsyncOperation/{id}",
                "/subscriptions/" T_SUB1 "/providers/Microsoft.Emulator/locations/eastus/thingOperationResults/{id}", NULL,
                json_pack("{s:s}", "operation", "CreateThing"), id);
}
static void h_async(emu_call *c) { emu_lro_poll_async(c, emu_var(c, "id")); }
static void h_location(emu_call *c) { emu_lro_poll_location(c, emu_var(c, "id")); }
static const char *const test_versions[] = {"2024-01-01", NULL};
static const emu_route test_routes[] = {
    {EMU_FAM_ARM, "PUT", "/subscriptions/{sub}/providers/Microsoft.Emulator/things/{name}", h_start,
     EMU_R_AUTH | EMU_R_WRITE, test_versions},
    {EMU_FAM_ARM, "GET", "/subscriptions/{sub}/providers/Microsoft.Emulator/locations/{loc}/thingAzureAsyncOperation/{id}",
     h_async, EMU_R_AUTH | EMU_R_READ | EMU_R_NOAPIVER, NULL},
    {EMU_FAM_ARM, "GET", "/subscriptions/{sub}/providers/Microsoft.Emulator/locations/{loc}/thingOperationResults/{id}",
     h_location, EMU_R_AUTH | EMU_R_READ | EMU_R_NOAPIVER, NULL},
    {0, NULL, NULL, NULL, 0, NULL},
};

TEST(long_running_operations) {
  setup();
  emu_extra_routes = test_routes;
  t_resp r = t_json(E, "PUT", MGMT "/subscriptions/" T_SUB1 "/providers/Microsoft.Emulator/things/a?api-version=2024-01-01",
                    OP, "{}");
  ASSERT_EQ(r.status, 202);
  ASSERT_STR_EQ(t_str(&r, "operation"), "CreateThing");
  char async[2048], loc[2048];
  snprintf(async, sizeof async, "%s", t_resp_header(&r, "Azure-AsyncOperation"));
  snprintf(loc, sizeof loc, "%s", t_resp_header(&r, "Location"));
  ASSERT_STR_CONTAINS(async, "https://management.localhost:8443/subscriptions/" T_SUB1);
  ASSERT_STR_CONTAINS(async, "?api-version=2024-01-01");
  ASSERT_STR_EQ(t_resp_header(&r, "Retry-After"), "1");
  ASSERT_NOT_NULL(t_resp_header(&r, "x-ms-ratelimit-remaining-subscription-writes"));
  ASSERT_STR_CONTAINS(async, t_resp_header(&r, "x-ms-request-id")); /* the request id is the operation id */
  t_resp_free(&r);
  r = t_get(E, async, OP);
  ASSERT_EQ(r.status, 200);
  ASSERT_STR_EQ(t_str(&r, "status"), "InProgress");
  t_resp_free(&r);
  r = t_get(E, loc, OP);
  ASSERT_EQ(r.status, 202);
  t_resp_free(&r);
  ASSERT_OK(emu_clock_advance(E, E->set.lro_delay_ms + 1, NULL));
  r = t_get(E, async, OP);
  ASSERT_STR_EQ(t_str(&r, "status"), "Succeeded");
  ASSERT_NOT_NULL(t_str(&r, "endTime"));
  t_resp_free(&r);
  r = t_get(E, loc, OP);
  ASSERT_EQ(r.status, 204);
  t_resp_free(&r);
  r = t_get(E, MGMT "/subscriptions/" T_SUB1 "/providers/Microsoft.Emulator/locations/eastus/thingAzureAsyncOperation/nope", OP);
  ASSERT_EQ(r.status, 404);
  t_resp_free(&r);
  emu_extra_routes = NULL;
}

TEST(zz_teardown) {
  free(OP);
  free(NOBODY);
  t_emu_close(E);
  E = NULL;
}

TEST_MAIN()
