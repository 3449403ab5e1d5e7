/* The pure parts of the snapshot gatherer (operator/gather.h):
 * sq_gather_vaultkey_uri (a VaultKey + optional pinned version -> versioned
 * key URI) and sq_gather_key_facts (key facts from the VaultKey status,
 * access facts from the ManagedIdentity status.keyAccess, with grantedAt
 * shifted so the planner's fixed 10-minute delay equals the configured one).
 * Inputs are JSON literals shaped like the CRDs (crds/sqltde.io_vaultkeys.yaml, _managedidentities.yaml) and the
 * statuses vaultkey.c / identity.c write. */
#include <jansson.h>

#include "sqltde/clock.h"
#include "sqltde/operator/gather.h"
#include "sqltde/plan/plan.h"
#include "test.h"
#include "test_plan_fixture.h"

#define VK_KV "https://kv9.vault.azure.net/keys/tde9"
#define V1 "11111111111111111111111111111111"
#define V2 "22222222222222222222222222222222"
#define V3 "33333333333333333333333333333333"
#define U1 VK_KV "/" V1
#define U2 VK_KV "/" V2
#define U3 VK_KV "/" V3
#define TP1 "A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1"
#define TP2 "B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2"
/* 2027-01-15T08:00:00Z and friends */
#define T_CREATED1 "2026-01-15T08:00:00Z"
#define T_CREATED2 "2027-01-15T08:00:00Z"
#define T_EXPIRES1 "2028-01-15T08:00:00Z"

static json_t *parse(const char *text) {
  json_error_t je;
  json_t *j = json_loads(text, 0, &je);
  if(!j)
    fprintf(stderr, "  bad JSON literal: %s (line %d)\n", je.text, je.line);
  ASSERT_NOT_NULL(j);
  return j;
}

/* A VaultKey as vaultkey.c leaves it: newest version first; v2 current. A
 * third entry has no keyUri (skipped). */
static const char *VK_JSON =
    "{\"apiVersion\":\"sqltde.io/v1alpha1\",\"kind\":\"VaultKey\","
    " \"metadata\":{\"name\":\"tde9\",\"namespace\":\"team-a\"},"
    " \"spec\":{\"vaults\":[{\"name\":\"kv9\"}],\"keyName\":\"tde9\",\"source\":{\"type\":\"generate\"}},"
    " \"status\":{\"observedGeneration\":1,\"currentVersion\":\"" V2 "\",\"currentThumbprint\":\"" TP2 "\","
    "  \"currentKeyUri\":\"" U2 "\","
    "  \"versions\":["
    "   {\"version\":\"" V2 "\",\"keyUri\":\"" U2 "\",\"thumbprint\":\"" TP2 "\",\"enabled\":true,"
    "    \"created\":\"" T_CREATED2 "\",\"vaults\":[\"kv9\"],\"locations\":[{\"vault\":\"kv9\",\"version\":\"" V2 "\"}]},"
    "   {\"version\":\"" V1 "\",\"keyUri\":\"" U1 "\",\"thumbprint\":\"" TP1 "\",\"enabled\":false,"
    "    \"created\":\"" T_CREATED1 "\",\"expires\":\"" T_EXPIRES1 "\",\"vaults\":[\"kv9\"],"
    "    \"locations\":[{\"vault\":\"kv9\",\"version\":\"" V1 "\"}]},"
    "   {\"version\":\"" V3 "\",\"thumbprint\":null,\"enabled\":true,\"vaults\":[],\"locations\":[]}"
    "  ]}}";

/* A ManagedIdentity whose status.keyAccess has one entry for tde9 in kv9
 * (shape of identity.c's item_json), plus an entry for another VaultKey. */
static json_t *mi_with(const char *entry_for_tde9) {
  char text[2048];
  snprintf(text, sizeof text,
           "{\"apiVersion\":\"sqltde.io/v1alpha1\",\"kind\":\"ManagedIdentity\","
           " \"metadata\":{\"name\":\"umi1\",\"namespace\":\"team-a\"},"
           " \"spec\":{\"resourceId\":\"%s\",\"clientId\":\"c\",\"principalId\":\"p\"},"
           " \"status\":{\"principalId\":\"p\",\"keyAccess\":["
           "  {\"vaultKey\":\"other\",\"vault\":\"kv9\",\"keyUri\":\"https://kv9.vault.azure.net/keys/other\","
           "   \"state\":\"Granted\",\"model\":\"AccessPolicy\",\"get\":true,\"wrapKey\":true,\"unwrapKey\":true,"
           "   \"missing\":[]}%s%s]}}",
           UMI1, entry_for_tde9 ? "," : "", entry_for_tde9 ? entry_for_tde9 : "");
  return parse(text);
}

#define ENTRY(state, get, wrap, unwrap, extra)                                                              \
  "{\"vaultKey\":\"tde9\",\"vault\":\"kv9\",\"keyUri\":\"" VK_KV "\",\"state\":\"" state "\","             \
  "\"model\":\"AccessPolicy\",\"get\":" get ",\"wrapKey\":" wrap ",\"unwrapKey\":" unwrap extra "}"

/* ---- sq_gather_vaultkey_uri ---------------------------------------------- */

TEST(vaultkey_uri_latest_is_the_current_key_uri) {
  json_t *vk = parse(VK_JSON);
  char out[SQ_SQL_URI_MAX] = "junk";
  ASSERT_EQ(sq_gather_vaultkey_uri(vk, NULL, out, sizeof out), 0);
  ASSERT_STR_EQ(out, U2);
  /* an empty pinned version means latest too */
  snprintf(out, sizeof out, "junk");
  ASSERT_EQ(sq_gather_vaultkey_uri(vk, "", out, sizeof out), 0);
  ASSERT_STR_EQ(out, U2);
  /* never a truncated URI (it would name another key) */
  ASSERT_EQ(sq_gather_vaultkey_uri(vk, NULL, out, strlen(U2)), -1);
  ASSERT_STR_EQ(out, "");
  ASSERT_EQ(sq_gather_vaultkey_uri(vk, NULL, out, strlen(U2) + 1), 0);
  json_decref(vk);
}

TEST(vaultkey_uri_pinned_version_present) {
  json_t *vk = parse(VK_JSON);
  char out[SQ_SQL_URI_MAX] = "junk";
  ASSERT_EQ(sq_gather_vaultkey_uri(vk, V1, out, sizeof out), 0);
  ASSERT_STR_EQ(out, U1); /* not the current one */
  /* versions compare case-insensitively (Key Vault versions are hex) */
  snprintf(out, sizeof out, "junk");
  ASSERT_EQ(sq_gather_vaultkey_uri(vk, "22222222222222222222222222222222", out, sizeof out), 0);
  ASSERT_STR_EQ(out, U2);
  json_decref(vk);
  json_t *hex = parse("{\"metadata\":{\"name\":\"k\"},\"status\":{\"currentKeyUri\":\"" U2 "\",\"versions\":["
                      "{\"version\":\"abcdef0123456789abcdef0123456789\",\"keyUri\":\"" VK_KV
                      "/abcdef0123456789abcdef0123456789\"}]}}");
  ASSERT_EQ(sq_gather_vaultkey_uri(hex, "ABCDEF0123456789ABCDEF0123456789", out, sizeof out), 0);
  ASSERT_STR_EQ(out, VK_KV "/abcdef0123456789abcdef0123456789");
  json_decref(hex);
}

TEST(vaultkey_uri_pinned_version_absent) {
  json_t *vk = parse(VK_JSON);
  char out[SQ_SQL_URI_MAX] = "junk";
  ASSERT_EQ(sq_gather_vaultkey_uri(vk, "99999999999999999999999999999999", out, sizeof out), -1);
  ASSERT_STR_EQ(out, "");
  /* listed but without a keyUri: not resolvable either */
  snprintf(out, sizeof out, "junk");
  ASSERT_EQ(sq_gather_vaultkey_uri(vk, V3, out, sizeof out), -1);
  ASSERT_STR_EQ(out, "");
  json_decref(vk);
}

TEST(vaultkey_uri_without_status) {
  json_t *vk = parse("{\"apiVersion\":\"sqltde.io/v1alpha1\",\"kind\":\"VaultKey\","
                     "\"metadata\":{\"name\":\"tde9\"},\"spec\":{\"vaults\":[{\"name\":\"kv9\"}],"
                     "\"keyName\":\"tde9\",\"source\":{\"type\":\"generate\"}}}");
  char out[SQ_SQL_URI_MAX] = "junk";
  ASSERT_EQ(sq_gather_vaultkey_uri(vk, NULL, out, sizeof out), -1);
  ASSERT_STR_EQ(out, "");
  snprintf(out, sizeof out, "junk");
  ASSERT_EQ(sq_gather_vaultkey_uri(vk, V1, out, sizeof out), -1);
  ASSERT_STR_EQ(out, "");
  json_decref(vk);
  /* status with versions but no current one yet: latest fails, pinned works */
  vk = parse("{\"metadata\":{\"name\":\"tde9\"},\"status\":{\"currentKeyUri\":\"\",\"versions\":["
             "{\"version\":\"" V1 "\",\"keyUri\":\"" U1 "\"}]}}");
  ASSERT_EQ(sq_gather_vaultkey_uri(vk, NULL, out, sizeof out), -1);
  ASSERT_STR_EQ(out, "");
  ASSERT_EQ(sq_gather_vaultkey_uri(vk, V1, out, sizeof out), 0);
  ASSERT_STR_EQ(out, U1);
  json_decref(vk);
}

TEST(vaultkey_uri_null_vaultkey) {
  char out[SQ_SQL_URI_MAX] = "junk";
  ASSERT_EQ(sq_gather_vaultkey_uri(NULL, NULL, out, sizeof out), -1);
  ASSERT_STR_EQ(out, "");
  snprintf(out, sizeof out, "junk");
  ASSERT_EQ(sq_gather_vaultkey_uri(NULL, V1, out, sizeof out), -1);
  ASSERT_STR_EQ(out, "");
}

/* ---- sq_gather_key_facts: key facts -------------------------------------- */

TEST(key_facts_one_per_version) {
  json_t *vk = parse(VK_JSON);
  sq_plan_facts f = {0};
  sq_err e;
  ASSERT_OK(sq_gather_key_facts(&f, vk, NULL, UMI1, 600000, &e));
  /* v3 has no keyUri: no fact */
  ASSERT_EQ(f.n_keys, 2);
  ASSERT_EQ(f.n_access, 0); /* no ManagedIdentity: access unknown */

  const sq_plan_key_fact *k2 = sq_plan_facts_key(&f, U2);
  ASSERT_NOT_NULL(k2);
  ASSERT_EQ(k2->exists, 1);
  ASSERT_EQ(k2->enabled, 1);
  ASSERT_EQ(k2->created_s, sq_parse_rfc3339(T_CREATED2));
  ASSERT_GT(k2->created_s, 0);
  ASSERT_EQ(k2->exp_s, 0);
  ASSERT_EQ(k2->nbf_s, 0);
  ASSERT_STR_EQ(k2->thumbprint, TP2);

  const sq_plan_key_fact *k1 = sq_plan_facts_key(&f, U1);
  ASSERT_NOT_NULL(k1);
  ASSERT_EQ(k1->exists, 1);
  ASSERT_EQ(k1->enabled, 0);
  ASSERT_EQ(k1->created_s, sq_parse_rfc3339(T_CREATED1));
  ASSERT_EQ(k1->exp_s, sq_parse_rfc3339(T_EXPIRES1));
  ASSERT_GT(k1->exp_s, k1->created_s);
  ASSERT_STR_EQ(k1->thumbprint, TP1);

  ASSERT_NULL(sq_plan_facts_key(&f, U3));
  sq_plan_facts_free(&f);
  json_decref(vk);
}

/* A keyUri the facts refuse (longer than SQ_PLAN_STR_MAX) leaves that key
 * unobserved; the call and the other versions go on. */
TEST(key_facts_skip_a_key_uri_the_facts_refuse) {
  char big[SQ_PLAN_STR_MAX + 64];
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  memcpy(big, VK_KV "/", strlen(VK_KV "/"));
  json_t *vk = parse("{\"metadata\":{\"name\":\"tde9\"},\"status\":{\"versions\":["
                     "{\"version\":\"" V2 "\",\"keyUri\":\"" U2 "\"}]}}");
  json_t *v = json_pack("{s:s,s:s}", "version", V3, "keyUri", big);
  ASSERT_NOT_NULL(v);
  ASSERT_OK(json_array_insert_new(json_object_get(json_object_get(vk, "status"), "versions"), 0, v));
  json_t *mi = mi_with(ENTRY("Granted", "true", "true", "true", ""));
  sq_plan_facts f = {0};
  sq_err e;
  ASSERT_OK(sq_gather_key_facts(&f, vk, mi, UMI1, 600000, &e));
  ASSERT_EQ(f.n_keys, 1);
  ASSERT_NOT_NULL(sq_plan_facts_key(&f, U2));
  ASSERT_EQ(f.n_access, 1);
  ASSERT_NOT_NULL(sq_plan_facts_access(&f, U2, UMI1));
  sq_plan_facts_free(&f);
  json_decref(mi);
  json_decref(vk);
}

TEST(key_facts_enabled_defaults_to_true_and_thumbprint_may_be_null) {
  json_t *vk = parse("{\"metadata\":{\"name\":\"tde9\"},\"status\":{\"versions\":["
                     "{\"version\":\"" V1 "\",\"keyUri\":\"" U1 "\",\"thumbprint\":null}]}}");
  sq_plan_facts f = {0};
  ASSERT_OK(sq_gather_key_facts(&f, vk, NULL, NULL, 600000, NULL));
  ASSERT_EQ(f.n_keys, 1);
  ASSERT_EQ(f.keys[0].enabled, 1);
  ASSERT_STR_EQ(f.keys[0].thumbprint, "");
  ASSERT_EQ(f.keys[0].created_s, 0);
  sq_plan_facts_free(&f);
  json_decref(vk);
}

TEST(key_facts_without_vaultkey_or_status_add_nothing) {
  sq_plan_facts f = {0};
  json_t *mi = mi_with(ENTRY("Granted", "true", "true", "true", ""));
  ASSERT_OK(sq_gather_key_facts(&f, NULL, mi, UMI1, 600000, NULL));
  ASSERT_EQ(f.n_keys, 0);
  ASSERT_EQ(f.n_access, 0);
  json_t *vk = parse("{\"metadata\":{\"name\":\"tde9\"},\"spec\":{\"keyName\":\"tde9\"}}");
  ASSERT_OK(sq_gather_key_facts(&f, vk, mi, UMI1, 600000, NULL));
  ASSERT_EQ(f.n_keys, 0);
  ASSERT_EQ(f.n_access, 0);
  sq_plan_facts_free(&f);
  json_decref(vk);
  json_decref(mi);
}

/* ---- sq_gather_key_facts: access facts ----------------------------------- */

/* Facts for VK_JSON with the ManagedIdentity entry `entry` (NULL: none for
 * tde9), identity UMI1. */
static void facts_with(const char *entry, int64_t delay_ms, sq_plan_facts *f) {
  json_t *vk = parse(VK_JSON);
  json_t *mi = mi_with(entry);
  memset(f, 0, sizeof *f);
  sq_err e;
  sq_code rc = sq_gather_key_facts(f, vk, mi, UMI1, delay_ms, &e);
  json_decref(vk);
  json_decref(mi);
  ASSERT_OK(rc);
  ASSERT_EQ(f->n_keys, 2);
}

TEST(access_granted_long_ago) {
  sq_plan_facts f;
  facts_with(ENTRY("Granted", "true", "true", "true", ",\"missing\":[],\"grantedAt\":\"2026-03-01T10:00:00Z\""),
             600000, &f);
  ASSERT_EQ(f.n_access, 2); /* one per version, for this identity */
  const char *uris[] = {U1, U2};
  for(int i = 0; i < 2; i++) {
    const sq_plan_access *a = sq_plan_facts_access(&f, uris[i], UMI1);
    ASSERT_NOT_NULL(a);
    ASSERT_EQ(a->state, SQ_ACCESS_GRANTED);
    ASSERT_EQ(a->missing, 0);
    /* the configured delay is the planner's own 10 minutes: no shift */
    ASSERT_EQ(a->granted_s, sq_parse_rfc3339("2026-03-01T10:00:00Z"));
  }
  ASSERT_NULL(sq_plan_facts_access(&f, U2, UMI2)); /* only the identity asked for */
  sq_plan_facts_free(&f);
}

TEST(access_granted_without_granted_at_is_old) {
  sq_plan_facts f;
  facts_with(ENTRY("Granted", "true", "true", "true", ""), 60000, &f);
  const sq_plan_access *a = sq_plan_facts_access(&f, U2, UMI1);
  ASSERT_NOT_NULL(a);
  ASSERT_EQ(a->state, SQ_ACCESS_GRANTED);
  ASSERT_EQ(a->granted_s, 0);
  sq_plan_facts_free(&f);
}

TEST(access_pending_is_granted_with_a_shifted_grant_time) {
  const char *at = "2026-03-01T10:00:00Z";
  int64_t gs = sq_parse_rfc3339(at);
  ASSERT_GT(gs, 0);
  static const int64_t delays_ms[] = {0, 5000, 60000, 600000, 1200000};
  for(size_t i = 0; i < sizeof delays_ms / sizeof delays_ms[0]; i++) {
    sq_plan_facts f;
    facts_with(ENTRY("Pending", "true", "true", "true", ",\"missing\":[],\"grantedAt\":\"2026-03-01T10:00:00Z\""),
               delays_ms[i], &f);
    const sq_plan_access *a = sq_plan_facts_access(&f, U2, UMI1);
    ASSERT_NOT_NULL(a);
    ASSERT_EQ(a->state, SQ_ACCESS_GRANTED);
    ASSERT_EQ(a->missing, 0);
    /* the planner's fixed wait ends exactly when the configured one does */
    ASSERT_EQ(a->granted_s + SQ_PLAN_GRANT_DELAY_S, gs + delays_ms[i] / 1000);
    sq_plan_facts_free(&f);
  }
}

TEST(access_shift_never_reaches_unknown) {
  /* a grant so early that the shift would go to or below 0 stays a grant
   * time (1), not "0 = long ago/unknown" by accident of arithmetic */
  sq_plan_facts f;
  facts_with(ENTRY("Granted", "true", "true", "true", ",\"grantedAt\":\"1970-01-01T00:01:40Z\""), 0, &f);
  const sq_plan_access *a = sq_plan_facts_access(&f, U1, UMI1);
  ASSERT_NOT_NULL(a);
  ASSERT_EQ(a->granted_s, 1);
  sq_plan_facts_free(&f);
}

TEST(access_missing_names_the_permissions) {
  sq_plan_facts f;
  facts_with(ENTRY("Missing", "true", "false", "false", ",\"missing\":[\"wrapKey\",\"unwrapKey\"]"), 600000, &f);
  const sq_plan_access *a = sq_plan_facts_access(&f, U2, UMI1);
  ASSERT_NOT_NULL(a);
  ASSERT_EQ(a->state, SQ_ACCESS_MISSING);
  ASSERT_EQ(a->missing, SQ_PERM_WRAP | SQ_PERM_UNWRAP);
  sq_plan_facts_free(&f);
  facts_with(ENTRY("Missing", "false", "true", "true", ",\"missing\":[\"get\"]"), 600000, &f);
  a = sq_plan_facts_access(&f, U1, UMI1);
  ASSERT_NOT_NULL(a);
  ASSERT_EQ(a->state, SQ_ACCESS_MISSING);
  ASSERT_EQ(a->missing, SQ_PERM_GET);
  sq_plan_facts_free(&f);
}

/* A VaultKey in two vaults has one keyAccess entry per vault: a version's
 * access is the entry of its own vault, whatever the order. */
TEST(access_is_taken_from_the_entry_of_the_versions_vault) {
  sq_plan_facts f;
  facts_with("{\"vaultKey\":\"tde9\",\"vault\":\"kv8\",\"keyUri\":\"https://kv8.vault.azure.net/keys/tde9\","
             "\"state\":\"Missing\",\"model\":\"RBAC\",\"get\":false,\"wrapKey\":false,\"unwrapKey\":false},"
             ENTRY("Granted", "true", "true", "true", ""),
             600000, &f);
  const sq_plan_access *a = sq_plan_facts_access(&f, U2, UMI1);
  ASSERT_NOT_NULL(a);
  ASSERT_EQ(a->state, SQ_ACCESS_GRANTED);
  sq_plan_facts_free(&f);
  /* only the other vault's entry: no access fact for kv9's versions */
  facts_with("{\"vaultKey\":\"tde9\",\"vault\":\"kv8\",\"keyUri\":\"https://kv8.vault.azure.net/keys/tde9\","
             "\"state\":\"Granted\",\"model\":\"RBAC\",\"get\":true,\"wrapKey\":true,\"unwrapKey\":true}",
             600000, &f);
  ASSERT_NULL(sq_plan_facts_access(&f, U2, UMI1));
  sq_plan_facts_free(&f);
  /* a key name that merely starts the same is another key */
  facts_with("{\"vaultKey\":\"tde9\",\"vault\":\"kv9\",\"keyUri\":\"https://kv9.vault.azure.net/keys/tde\","
             "\"state\":\"Granted\",\"model\":\"RBAC\",\"get\":true,\"wrapKey\":true,\"unwrapKey\":true}",
             600000, &f);
  ASSERT_NULL(sq_plan_facts_access(&f, U2, UMI1));
  sq_plan_facts_free(&f);
}

TEST(access_unknown_and_unverified_carry_no_verdict) {
  const char *entries[] = {
      "{\"vaultKey\":\"tde9\",\"vault\":\"kv9\",\"state\":\"Unknown\",\"message\":\"vault kv9 not found\"}",
      "{\"vaultKey\":\"tde9\",\"vault\":\"kv9\",\"keyUri\":\"" VK_KV "\",\"state\":\"Unverified\","
      "\"message\":\"cross-tenant key\"}"};
  for(int i = 0; i < 2; i++) {
    sq_plan_facts f;
    facts_with(entries[i], 600000, &f);
    const sq_plan_access *a = sq_plan_facts_access(&f, U2, UMI1);
    ASSERT_NOT_NULL(a);
    ASSERT_EQ(a->state, SQ_ACCESS_UNKNOWN); /* not "everything missing" */
    ASSERT_EQ(a->missing, 0);
    sq_plan_facts_free(&f);
  }
}

TEST(access_absent_entry_or_no_identity_adds_no_access_fact) {
  sq_plan_facts f;
  facts_with(NULL, 600000, &f); /* keyAccess lists only another VaultKey */
  ASSERT_EQ(f.n_access, 0);
  ASSERT_NULL(sq_plan_facts_access(&f, U2, UMI1));
  sq_plan_facts_free(&f);

  json_t *vk = parse(VK_JSON);
  json_t *mi = mi_with(ENTRY("Granted", "true", "true", "true", ""));
  memset(&f, 0, sizeof f);
  ASSERT_OK(sq_gather_key_facts(&f, vk, mi, NULL, 600000, NULL));
  ASSERT_EQ(f.n_keys, 2);
  ASSERT_EQ(f.n_access, 0);
  ASSERT_OK(sq_gather_key_facts(&f, vk, mi, "", 600000, NULL));
  ASSERT_EQ(f.n_access, 0);
  sq_plan_facts_free(&f);
  /* a ManagedIdentity that has not been checked yet (no status) */
  json_t *bare = parse("{\"metadata\":{\"name\":\"umi1\"},\"spec\":{\"resourceId\":\"" UMI1 "\"}}");
  memset(&f, 0, sizeof f);
  ASSERT_OK(sq_gather_key_facts(&f, vk, bare, UMI1, 600000, NULL));
  ASSERT_EQ(f.n_keys, 2);
  ASSERT_EQ(f.n_access, 0);
  sq_plan_facts_free(&f);
  json_decref(bare);
  json_decref(mi);
  json_decref(vk);
}

/* ---- what the planner makes of it ---------------------------------------- */

/* db1 moves from KA1 to the VaultKey's current version U2 (fixture base,
 * SMK server); the facts for U2 come from gather with a 60 s delay and a
 * grant at `at`. */
static sq_plan_verdict plan_at(int64_t now, int64_t gs, sq_plan_reason *reason) {
  sq_plan_db_input in;
  fx_base(&in);
  in.now = now;
  fx_set(&in.desired.protector_uri, U2);
  char at[40], entry[512];
  sq_rfc3339(gs, at, sizeof at);
  snprintf(entry, sizeof entry, ENTRY("Pending", "true", "true", "true", ",\"grantedAt\":\"%s\""), at);
  json_t *vk = parse(VK_JSON);
  json_t *mi = mi_with(entry);
  ASSERT_OK(sq_gather_key_facts(&in.facts, vk, mi, UMI1, 60000, NULL));
  json_decref(vk);
  json_decref(mi);
  sq_plan p = {0};
  ASSERT_OK(sq_plan_db(&in, &p, NULL));
  sq_plan_verdict v = p.verdict;
  *reason = p.reason;
  int sets = p.n_steps && p.steps[p.n_steps - 1].kind == SQ_STEP_SET_PROTECTOR &&
             sq_plan_uri_eq(p.steps[p.n_steps - 1].protector_uri, U2);
  if(v == SQ_PLAN_PROGRESSING && !sets)
    fprintf(stderr, "  unexpected plan: %s\n", fx_sig(&p));
  sq_plan_free(&p);
  sq_plan_db_input_free(&in);
  ASSERT(v != SQ_PLAN_PROGRESSING || sets);
  return v;
}

TEST(planner_waits_exactly_the_configured_delay) {
  int64_t gs = NOW - 30; /* granted 30 s ago, the delay is 60 s */
  sq_plan_reason r;
  ASSERT_EQ(plan_at(NOW, gs, &r), SQ_PLAN_WAITING);
  ASSERT_EQ(r, SQ_REASON_PERMISSION_PENDING);
  ASSERT_EQ(plan_at(gs + 59, gs, &r), SQ_PLAN_WAITING);
  ASSERT_EQ(r, SQ_REASON_PERMISSION_PENDING);
  ASSERT_EQ(plan_at(gs + 60, gs, &r), SQ_PLAN_PROGRESSING);
  ASSERT_EQ(plan_at(gs + 61, gs, &r), SQ_PLAN_PROGRESSING);
}

TEST_MAIN()
