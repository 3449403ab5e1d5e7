/* test_emu_keyvault.c — the Key Vault data plane through emu_handle: the 401
 * challenge, create/import/get/list/update, real RSA wrap/unwrap checked with
 * OpenSSL outside the emulator, key attributes against the virtual clock,
 * access policies, RBAC, revocation, backup/restore rules, soft delete,
 * purge protection and scheduled purge, rotation policies, bad input. */
#include <openssl/core_names.h>
#include <openssl/rsa.h>

#include "emu_harness.h"
#include "sqltde/codec.h"

#define EAST "https://kv-tde-east.vault.localhost"
#define V "?api-version=7.5"

static emu *E;
static char *OP, *NOBODY, *UMI;

/* Tokens are minted again after each virtual-clock jump (they expire too). */
static void tokens(void) {
  free(OP);
  free(NOBODY);
  free(UMI);
  OP = t_token(E, T_OP_OID, "https://vault.localhost", 86400);
  NOBODY = t_token(E, T_NOBODY_OID, "https://vault.azure.net", 86400);
  UMI = t_token(E, T_UMI_OID, "https://vault.azure.net", 86400);
}

static void advance(int64_t seconds) {
  emu_clock_advance(E, seconds * 1000, NULL);
  tokens();
}

static void setup(void) {
  if(E)
    return;
  E = t_emu_open();
  tokens();
}

static char *create_key(const char *vault_url, const char *name, const char *body) {
  char url[512];
  snprintf(url, sizeof url, "%s/keys/%s/create" V, vault_url, name);
  t_resp r = t_json(E, "POST", url, OP, body ? body : "{\"kty\":\"RSA\",\"key_size\":2048}");
  char *kid = r.status == 200 ? strdup(t_str(&r, "key.kid")) : NULL;
  if(!kid)
    fprintf(stderr, "create %s: %d %s\n", name, r.status, r.body);
  t_resp_free(&r);
  return kid;
}

static const char *version_of(const char *kid) { return strrchr(kid, '/') + 1; }

TEST(challenge_401) {
  setup();
  t_resp r = t_get(E, EAST "/keys/tde-shared" V, NULL);
  ASSERT_EQ(r.status, 401);
  ASSERT_STR_EQ(t_resp_header(&r, "WWW-Authenticate"),
                "Bearer authorization=\"https://login.localhost:8443/" T_TENANT "\", resource=\"https://vault.localhost\"");
  ASSERT_STR_EQ(t_str(&r, "error.code"), "Unauthorized");
  t_resp_free(&r);
  r = t_get(E, EAST "/keys/tde-shared", OP);
  ASSERT_EQ(r.status, 400);
  ASSERT_STR_EQ(t_str(&r, "error.code"), "BadParameter");
  t_resp_free(&r);
  r = t_get(E, EAST "/keys/tde-shared?api-version=1.0", OP);
  ASSERT_EQ(r.status, 400);
  t_resp_free(&r);
  const char *versions[] = {"7.4", "7.5", "7.6", "2025-07-01"};
  for(int i = 0; i < 4; i++) {
    char url[256];
    snprintf(url, sizeof url, EAST "/keys/tde-shared?api-version=%s", versions[i]);
    r = t_get(E, url, OP);
    ASSERT_EQ(r.status, 200);
    t_resp_free(&r);
  }
  /* a token of another tenant is refused by this vault */
  char *fab = t_token(E, "0b0b0b0b-0000-4000-8000-000000000003", "https://vault.azure.net", 600);
  r = t_get(E, EAST "/keys/tde-shared" V, fab);
  ASSERT_EQ(r.status, 401);
  t_resp_free(&r);
  free(fab);
}

TEST(create_get_list_update) {
  setup();
  char *kid = create_key(EAST, "k-basic", "{\"kty\":\"RSA\",\"key_size\":3072,\"key_ops\":[\"wrapKey\",\"unwrapKey\"],"
                                          "\"tags\":{\"a\":\"b\"},\"attributes\":{\"exp\":4102444800}}");
  ASSERT_NOT_NULL(kid);
  ASSERT_STR_CONTAINS(kid, "https://kv-tde-east.vault.localhost:8443/keys/k-basic/");
  ASSERT_EQ(strlen(version_of(kid)), 32);
  t_resp r = t_get(E, EAST "/keys/K-BASIC/" V, OP); /* names are case-insensitive; trailing slash = latest */
  ASSERT_EQ(r.status, 200);
  ASSERT_STR_EQ(t_str(&r, "key.kid"), kid);
  ASSERT_EQ(sq_json_int(r.json, "attributes.exp", 0), 4102444800LL);
  ASSERT_STR_EQ(t_str(&r, "tags.a"), "b");
  sq_buf n;
  sq_buf_init(&n, 1024);
  ASSERT_OK(sq_b64_decode(t_str(&r, "key.n"), strlen(t_str(&r, "key.n")), &n));
  ASSERT_EQ(n.len, 384);
  ASSERT_NULL(sq_json_path(r.json, "key.d"));
  sq_buf_free(&n);
  t_resp_free(&r);
  /* more versions, then paging */
  char *kids[4];
  for(int i = 0; i < 4; i++)
    kids[i] = create_key(EAST, "k-paged", NULL);
  r = t_get(E, EAST "/keys/k-paged/versions?api-version=7.5&maxresults=3", OP);
  ASSERT_EQ(r.status, 200);
  ASSERT_EQ(json_array_size(json_object_get(r.json, "value")), 3);
  const char *next = t_str(&r, "nextLink");
  ASSERT_NOT_NULL(next);
  char url[1024];
  snprintf(url, sizeof url, "%s", next);
  t_resp_free(&r);
  r = t_get(E, url, OP);
  ASSERT_EQ(json_array_size(json_object_get(r.json, "value")), 1);
  ASSERT(json_is_null(json_object_get(r.json, "nextLink")));
  ASSERT_STR_EQ(sq_json_str(json_array_get(json_object_get(r.json, "value"), 0), "kid"), kids[3]);
  t_resp_free(&r);
  r = t_get(E, EAST "/keys?api-version=7.5&maxresults=26", OP);
  ASSERT_EQ(r.status, 400);
  t_resp_free(&r);
  r = t_get(E, EAST "/keys" V, OP);
  ASSERT_EQ(r.status, 200);
  int seen = 0;
  size_t i;
  json_t *it;
  json_array_foreach(json_object_get(r.json, "value"), i, it) if(!strcmp(sq_json_str(it, "kid"),
                                                                        "https://kv-tde-east.vault.localhost:8443/keys/k-paged")) seen++;
  ASSERT_EQ(seen, 1);
  t_resp_free(&r);
  /* update an old version's attributes */
  snprintf(url, sizeof url, EAST "/keys/k-paged/%s" V, version_of(kids[0]));
  r = t_json(E, "PATCH", url, OP, "{\"attributes\":{\"enabled\":false,\"nbf\":1000},\"tags\":{\"x\":\"y\"}}");
  ASSERT_EQ(r.status, 200);
  ASSERT(json_is_false(sq_json_path(r.json, "attributes.enabled")));
  ASSERT_EQ(sq_json_int(r.json, "attributes.nbf", 0), 1000);
  t_resp_free(&r);
  r = t_json(E, "PATCH", url, OP, "{\"attributes\":{\"nbf\":2000,\"exp\":1000}}");
  ASSERT_EQ(r.status, 400);
  t_resp_free(&r);
  for(int k = 0; k < 4; k++)
    free(kids[k]);
  free(kid);
}

/* JWK import of a key made here, so OpenSSL can check the emulator's crypto. */
static EVP_PKEY *LOCAL;
static char *import_local(const char *name) {
  LOCAL = EVP_RSA_gen(2048);
  const char *params[] = {OSSL_PKEY_PARAM_RSA_N, OSSL_PKEY_PARAM_RSA_E, OSSL_PKEY_PARAM_RSA_D,
                          OSSL_PKEY_PARAM_RSA_FACTOR1, OSSL_PKEY_PARAM_RSA_FACTOR2, OSSL_PKEY_PARAM_RSA_EXPONENT1,
                          OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1};
  const char *names[] = {"n", "e", "d", "p", "q", "dp", "dq", "qi"};
  json_t *jwk = json_pack("{s:s,s:[s,s,s,s]}", "kty", "RSA", "key_ops", "wrapKey", "unwrapKey", "encrypt", "decrypt");
  for(int i = 0; i < 8; i++) {
    BIGNUM *bn = NULL;
    EVP_PKEY_get_bn_param(LOCAL, params[i], &bn);
    unsigned char raw[512];
    int n = BN_bn2bin(bn, raw);
    sq_buf b;
    sq_buf_init(&b, 1024);
    sq_b64_encode(raw, (size_t)n, 1, &b);
    json_object_set_new(jwk, names[i], json_string(b.ptr));
    sq_buf_free(&b);
    BN_free(bn);
  }
  json_t *body = json_pack("{s:o}", "key", jwk);
  char *s = json_dumps(body, 0), url[256];
  json_decref(body);
  snprintf(url, sizeof url, EAST "/keys/%s" V, name);
  t_resp r = t_json(E, "PUT", url, OP, s);
  free(s);
  char *kid = r.status == 200 ? strdup(t_str(&r, "key.kid")) : NULL;
  if(!kid)
    fprintf(stderr, "import: %d %s\n", r.status, r.body);
  t_resp_free(&r);
  return kid;
}

static int local_decrypt(int pad, const EVP_MD *md, const unsigned char *in, size_t inl, unsigned char *out,
                         size_t *outl) {
  EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(LOCAL, NULL);
  int ok = EVP_PKEY_decrypt_init(c) > 0 && EVP_PKEY_CTX_set_rsa_padding(c, pad) > 0 &&
           (!md || (EVP_PKEY_CTX_set_rsa_oaep_md(c, md) > 0 && EVP_PKEY_CTX_set_rsa_mgf1_md(c, md) > 0)) &&
           EVP_PKEY_decrypt(c, out, outl, in, inl) > 0;
  EVP_PKEY_CTX_free(c);
  return ok;
}

TEST(wrap_unwrap_is_real_rsa) {
  setup();
  char *kid = import_local("k-local");
  ASSERT_NOT_NULL(kid);
  struct {
    const char *alg;
    int pad;
    const EVP_MD *md;
  } algs[] = {{"RSA-OAEP", RSA_PKCS1_OAEP_PADDING, NULL}, {"RSA-OAEP-256", RSA_PKCS1_OAEP_PADDING, NULL},
              {"RSA1_5", RSA_PKCS1_PADDING, NULL}};
  algs[0].md = EVP_sha1();
  algs[1].md = EVP_sha256();
  for(int a = 0; a < 3; a++) {
    char url[512], body[512];
    snprintf(url, sizeof url, EAST "/keys/k-local/%s/wrapkey" V, version_of(kid));
    snprintf(body, sizeof body, "{\"alg\":\"%s\",\"value\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\"}", algs[a].alg);
    t_resp r = t_json(E, "POST", url, OP, body);
    ASSERT_EQ(r.status, 200);
    ASSERT_STR_EQ(t_str(&r, "kid"), kid);
    sq_buf ct;
    sq_buf_init(&ct, 1024);
    ASSERT_OK(sq_b64_decode(t_str(&r, "value"), strlen(t_str(&r, "value")), &ct));
    unsigned char pt[512];
    size_t ptl = sizeof pt;
    ASSERT(local_decrypt(algs[a].pad, algs[a].md, (unsigned char *)ct.ptr, ct.len, pt, &ptl));
    ASSERT_EQ(ptl, 32);
    for(int i = 0; i < 32; i++)
      ASSERT_EQ(pt[i], i);
    /* and back through the emulator */
    snprintf(url, sizeof url, EAST "/keys/k-local/%s/unwrapkey" V, version_of(kid));
    snprintf(body, sizeof body, "{\"alg\":\"%s\",\"value\":\"%s\"}", algs[a].alg, t_str(&r, "value"));
    t_resp u = t_json(E, "POST", url, OP, body);
    ASSERT_EQ(u.status, 200);
    ASSERT_STR_EQ(t_str(&u, "value"), "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");
    t_resp_free(&u);
    /* a different algorithm cannot unwrap it */
    snprintf(body, sizeof body, "{\"alg\":\"%s\",\"value\":\"%s\"}", a == 1 ? "RSA-OAEP" : "RSA-OAEP-256",
             t_str(&r, "value"));
    u = t_json(E, "POST", url, OP, body);
    ASSERT_EQ(u.status, 400);
    t_resp_free(&u);
    sq_buf_free(&ct);
    t_resp_free(&r);
  }
  /* bad algorithm, bad base64, oversized plaintext */
  char url[512];
  snprintf(url, sizeof url, EAST "/keys/k-local/%s/wrapkey" V, version_of(kid));
  t_resp r = t_json(E, "POST", url, OP, "{\"alg\":\"A256KW\",\"value\":\"AAAA\"}");
  ASSERT_EQ(r.status, 400);
  t_resp_free(&r);
  r = t_json(E, "POST", url, OP, "{\"alg\":\"RSA-OAEP\",\"value\":\"***\"}");
  ASSERT_EQ(r.status, 400);
  t_resp_free(&r);
  char big[600] = "{\"alg\":\"RSA-OAEP\",\"value\":\"";
  for(int i = 0; i < 400; i++)
    strcat(big, "A");
  strcat(big, "\"}");
  r = t_json(E, "POST", url, OP, big);
  ASSERT_EQ(r.status, 400);
  t_resp_free(&r);
  /* the empty version ("/keys/NAME//wrapkey") means the latest */
  r = t_json(E, "POST", EAST "/keys/k-local//wrapkey" V, OP, "{\"alg\":\"RSA-OAEP\",\"value\":\"AAAA\"}");
  ASSERT_EQ(r.status, 200);
  t_resp_free(&r);
  EVP_PKEY_free(LOCAL);
  free(kid);
}

TEST(attributes_enforced_by_virtual_clock) {
  setup();
  char body[256];
  int64_t now = emu_now_s(E);
  snprintf(body, sizeof body, "{\"kty\":\"RSA\",\"attributes\":{\"nbf\":%lld,\"exp\":%lld}}", (long long)(now + 3600),
           (long long)(now + 7200));
  char *kid = create_key(EAST, "k-window", body);
  ASSERT_NOT_NULL(kid);
  const char *wrap = "{\"alg\":\"RSA-OAEP-256\",\"value\":\"AAAA\"}";
  char url[512];
  snprintf(url, sizeof url, EAST "/keys/k-window/%s/wrapkey" V, version_of(kid));
  t_resp r = t_json(E, "POST", url, OP, wrap);
  ASSERT_EQ(r.status, 403);
  ASSERT_STR_EQ(t_str(&r, "error.innererror.code"), "KeyNotYetValid");
  t_resp_free(&r);
  advance(3601);
  r = t_json(E, "POST", url, OP, wrap);
  ASSERT_EQ(r.status, 200);
  t_resp_free(&r);
  advance(3600);
  r = t_json(E, "POST", url, OP, wrap);
  ASSERT_EQ(r.status, 403);
  ASSERT_STR_EQ(t_str(&r, "error.innererror.code"), "KeyExpired");
  t_resp_free(&r);
  char *kid2 = create_key(EAST, "k-disabled", "{\"kty\":\"RSA\",\"attributes\":{\"enabled\":false}}");
  snprintf(url, sizeof url, EAST "/keys/k-disabled/%s/unwrapkey" V, version_of(kid2));
  r = t_json(E, "POST", url, OP, wrap);
  ASSERT_EQ(r.status, 403);
  ASSERT_STR_EQ(t_str(&r, "error.innererror.code"), "KeyDisabled");
  t_resp_free(&r);
  free(kid);
  free(kid2);
}

TEST(access_policies_rbac_and_revocation) {
  setup();
  /* the database identity: get/wrap/unwrap but not create */
  t_resp r = t_get(E, EAST "/keys/tde-shared" V, UMI);
  ASSERT_EQ(r.status, 200);
  t_resp_free(&r);
  r = t_json(E, "POST", EAST "/keys/x/create" V, UMI, "{\"kty\":\"RSA\"}");
  ASSERT_EQ(r.status, 403);
  ASSERT_STR_EQ(t_str(&r, "error.innererror.code"), "ForbiddenByPolicy");
  ASSERT_STR_CONTAINS(t_str(&r, "error.message"), "does not have keys create permission on key vault 'kv-tde-east;location=eastus'");
  t_resp_free(&r);
  r = t_get(E, EAST "/keys/tde-shared" V, NOBODY);
  ASSERT_EQ(r.status, 403);
  t_resp_free(&r);
  /* revoke the identity's access through the control API, then restore it */
  r = t_json(E, "POST", "https://control.localhost/_emulator/permissions/revoke", NULL,
             "{\"vault\":\"kv-tde-east\",\"objectId\":\"" T_UMI_OID "\"}");
  ASSERT_EQ(r.status, 201);
  t_resp_free(&r);
  r = t_get(E, EAST "/keys/tde-shared" V, UMI);
  ASSERT_EQ(r.status, 403);
  t_resp_free(&r);
  r = t_json(E, "POST", "https://control.localhost/_emulator/permissions/restore", NULL,
             "{\"vault\":\"kv-tde-east\",\"objectId\":\"" T_UMI_OID "\"}");
  ASSERT_EQ(sq_json_int(r.json, "restored", 0), 1);
  t_resp_free(&r);
  r = t_get(E, EAST "/keys/tde-shared" V, UMI);
  ASSERT_EQ(r.status, 200);
  t_resp_free(&r);
  /* RBAC vault: Crypto Officer creates, Crypto Service Encryption User wraps, nobody gets 403 ForbiddenByRbac */
  char *kid = create_key("https://kv-rbac.vault.localhost", "rk", NULL);
  ASSERT_NOT_NULL(kid);
  char url[512];
  snprintf(url, sizeof url, "https://kv-rbac.vault.localhost/keys/rk/%s/wrapkey" V, version_of(kid));
  r = t_json(E, "POST", url, UMI, "{\"alg\":\"RSA-OAEP\",\"value\":\"AAAA\"}");
  ASSERT_EQ(r.status, 200);
  t_resp_free(&r);
  r = t_json(E, "POST", "https://kv-rbac.vault.localhost/keys/rk2/create" V, UMI, "{\"kty\":\"RSA\"}");
  ASSERT_EQ(r.status, 403);
  ASSERT_STR_EQ(t_str(&r, "error.innererror.code"), "ForbiddenByRbac");
  ASSERT_STR_CONTAINS(t_str(&r, "error.message"), "Microsoft.KeyVault/vaults/keys/create/action");
  t_resp_free(&r);
  r = t_get(E, "https://kv-rbac.vault.localhost/keys/rk" V, NOBODY);
  ASSERT_EQ(r.status, 403);
  t_resp_free(&r);
  free(kid);
}

TEST(backup_restore_rules) {
  setup();
  char *kid = create_key(EAST, "k-bak", NULL);
  free(create_key(EAST, "k-bak", NULL));
  t_resp r = t_json(E, "POST", EAST "/keys/k-bak/backup" V, OP, NULL);
  ASSERT_EQ(r.status, 200);
  char body[65536];
  snprintf(body, sizeof body, "{\"value\":\"%s\"}", t_str(&r, "value"));
  ASSERT(!strstr(body, "k-bak")); /* encrypted */
  t_resp_free(&r);
  r = t_json(E, "POST", "https://kv-tde-west.vault.localhost/keys/restore" V, OP, body);
  ASSERT_EQ(r.status, 200);
  ASSERT_STR_CONTAINS(t_str(&r, "key.kid"), "https://kv-tde-west.vault.localhost:8443/keys/k-bak/");
  t_resp_free(&r);
  char url[512];
  snprintf(url, sizeof url, "https://kv-tde-west.vault.localhost/keys/k-bak/%s" V, version_of(kid));
  r = t_get(E, url, OP);
  ASSERT_EQ(r.status, 200); /* versions keep their ids */
  t_resp_free(&r);
  r = t_json(E, "POST", "https://kv-tde-west.vault.localhost/keys/restore" V, OP, body);
  ASSERT_EQ(r.status, 409);
  t_resp_free(&r);
  r = t_json(E, "POST", "https://kv-eu.vault.localhost/keys/restore" V, OP, body);
  ASSERT_EQ(r.status, 400);
  ASSERT_STR_CONTAINS(t_str(&r, "error.message"), "geography");
  t_resp_free(&r);
  r = t_json(E, "POST", "https://kv-other-sub.vault.localhost/keys/restore" V, OP, body);
  ASSERT_EQ(r.status, 400);
  t_resp_free(&r);
  /* a tampered blob */
  char *p = strstr(body, "\"value\":\"") + 20;
  *p = *p == 'A' ? 'B' : 'A';
  r = t_json(E, "POST", "https://kv-nopurge.vault.localhost/keys/restore" V, OP, body);
  ASSERT_EQ(r.status, 400);
  t_resp_free(&r);
  free(kid);
}

TEST(soft_delete_recover_purge) {
  setup();
  free(create_key(EAST, "k-del", NULL));
  t_resp r = t_do(E, "DELETE", EAST "/keys/k-del" V, OP, NULL, NULL);
  ASSERT_EQ(r.status, 200);
  ASSERT_STR_EQ(t_str(&r, "recoveryId"), "https://kv-tde-east.vault.localhost:8443/deletedkeys/k-del");
  ASSERT_EQ(sq_json_int(r.json, "scheduledPurgeDate", 0) - sq_json_int(r.json, "deletedDate", 0), 90 * 86400);
  t_resp_free(&r);
  r = t_get(E, EAST "/keys/k-del" V, OP);
  ASSERT_EQ(r.status, 404);
  ASSERT_STR_EQ(t_str(&r, "error.code"), "KeyNotFound");
  t_resp_free(&r);
  r = t_json(E, "POST", EAST "/keys/k-del/create" V, OP, "{\"kty\":\"RSA\"}");
  ASSERT_EQ(r.status, 409);
  t_resp_free(&r);
  r = t_do(E, "DELETE", EAST "/deletedkeys/k-del" V, OP, NULL, NULL);
  ASSERT_EQ(r.status, 403);
  ASSERT_STR_CONTAINS(t_str(&r, "error.message"), "purge protection");
  t_resp_free(&r);
  r = t_json(E, "POST", EAST "/deletedkeys/k-del/recover" V, OP, NULL);
  ASSERT_EQ(r.status, 200);
  t_resp_free(&r);
  r = t_get(E, EAST "/keys/k-del" V, OP);
  ASSERT_EQ(r.status, 200);
  t_resp_free(&r);
  /* no purge protection: purge works; the scheduled purge also happens when the clock passes it */
  free(create_key("https://kv-nopurge.vault.localhost", "p1", NULL));
  free(create_key("https://kv-nopurge.vault.localhost", "p2", NULL));
  r = t_do(E, "DELETE", "https://kv-nopurge.vault.localhost/keys/p1" V, OP, NULL, NULL);
  t_resp_free(&r);
  r = t_do(E, "DELETE", "https://kv-nopurge.vault.localhost/keys/p2" V, OP, NULL, NULL);
  t_resp_free(&r);
  r = t_get(E, "https://kv-nopurge.vault.localhost/deletedkeys" V, OP);
  ASSERT_EQ(json_array_size(json_object_get(r.json, "value")), 2);
  t_resp_free(&r);
  r = t_do(E, "DELETE", "https://kv-nopurge.vault.localhost/deletedkeys/p1" V, OP, NULL, NULL);
  ASSERT_EQ(r.status, 204);
  t_resp_free(&r);
  advance(7 * 86400 + 1);
  r = t_get(E, "https://kv-nopurge.vault.localhost/deletedkeys/p2" V, OP);
  ASSERT_EQ(r.status, 404);
  t_resp_free(&r);
  r = t_json(E, "POST", "https://kv-nopurge.vault.localhost/keys/p2/create" V, OP, "{\"kty\":\"RSA\"}");
  ASSERT_EQ(r.status, 200); /* the name is free again */
  t_resp_free(&r);
}

TEST(rotation_and_policy) {
  setup();
  char *kid = create_key(EAST, "k-rot", NULL);
  t_resp r = t_json(E, "POST", EAST "/keys/k-rot/rotate" V, OP, NULL);
  ASSERT_EQ(r.status, 200);
  ASSERT(strcmp(t_str(&r, "key.kid"), kid));
  t_resp_free(&r);
  r = t_json(E, "PUT", EAST "/keys/k-rot/rotationpolicy" V, OP,
             "{\"lifetimeActions\":[{\"trigger\":{\"timeAfterCreate\":\"P30D\"},\"action\":{\"type\":\"Rotate\"}}],"
             "\"attributes\":{\"expiryTime\":\"P90D\"}}");
  ASSERT_EQ(r.status, 200);
  ASSERT_STR_EQ(t_str(&r, "id"), "https://kv-tde-east.vault.localhost:8443/keys/k-rot/rotationpolicy");
  t_resp_free(&r);
  r = t_json(E, "PUT", EAST "/keys/k-rot/rotationpolicy" V, OP, "{\"attributes\":{\"expiryTime\":\"P1D\"}}");
  ASSERT_EQ(r.status, 400);
  t_resp_free(&r);
  r = t_get(E, EAST "/keys/k-rot/versions" V, OP);
  size_t before = json_array_size(json_object_get(r.json, "value"));
  t_resp_free(&r);
  advance(31LL * 86400);
  r = t_get(E, EAST "/keys/k-rot" V, OP); /* the policy fired: a new version with exp = +90 days */
  ASSERT_EQ(r.status, 200);
  ASSERT_EQ(sq_json_int(r.json, "attributes.exp", 0) - sq_json_int(r.json, "attributes.created", 0), 90LL * 86400);
  t_resp_free(&r);
  r = t_get(E, EAST "/keys/k-rot/versions" V, OP);
  ASSERT_EQ(json_array_size(json_object_get(r.json, "value")), before + 1);
  t_resp_free(&r);
  free(kid);
}

TEST(bad_input_shapes) {
  setup();
  struct {
    const char *method, *url, *ctype, *body;
    int status;
  } cases[] = {
      {"POST", EAST "/keys/bad_name/create" V, "application/json", "{\"kty\":\"RSA\"}", 400},
      {"POST", EAST "/keys/ok/create" V, "application/json", "{\"kty\":\"RSA\",\"key_size\":1024}", 400},
      {"POST", EAST "/keys/ok/create" V, "application/json", "{\"kty\":\"EC\"}", 400},
      {"POST", EAST "/keys/ok/create" V, "application/json", "{\"kty\":\"RSA\",\"key_ops\":[\"fly\"]}", 400},
      {"POST", EAST "/keys/ok/create" V, "application/json", "{not json", 400},
      {"POST", EAST "/keys/ok/create" V, "application/json", "[1,2]", 400},
      {"POST", EAST "/keys/ok/create" V, "text/plain", "{\"kty\":\"RSA\"}", 415},
      {"POST", EAST "/keys/ok/create" V, "application/json", "", 400},
      {"PUT", EAST "/keys/imp" V, "application/json", "{\"key\":{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}}", 400},
      {"GET", EAST "/keys/nope" V, NULL, NULL, 404},
      {"GET", EAST "/nothing" V, NULL, NULL, 404},
      {"DELETE", EAST "/keys/x/versions" V, NULL, NULL, 405},
      {"GET", "https://no-such-vault.vault.localhost/keys" V, NULL, NULL, 404},
      {"GET", "https://elsewhere.example/keys" V, NULL, NULL, 404},
      {"GET", EAST "/keys/%zz" V, NULL, NULL, 400},
  };
  for(size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    t_resp r = t_do(E, cases[i].method, cases[i].url, OP, cases[i].ctype, cases[i].body);
    if(r.status != cases[i].status)
      fprintf(stderr, "case %zu: %s %s -> %d %s\n", i, cases[i].method, cases[i].url, r.status, r.body);
    ASSERT_EQ(r.status, cases[i].status);
    ASSERT_NOT_NULL(t_str(&r, "error.code"));
    ASSERT_NOT_NULL(t_str(&r, "error.message"));
    t_resp_free(&r);
  }
  /* an oversized body is refused before parsing */
  char *big = malloc(EMU_MAX_BODY + 2);
  memset(big, ' ', EMU_MAX_BODY + 1);
  big[EMU_MAX_BODY + 1] = '\0';
  t_resp r = t_json(E, "POST", EAST "/keys/ok/create" V, OP, big);
  ASSERT_EQ(r.status, 413);
  t_resp_free(&r);
  free(big);
}

TEST(zz_teardown) {
  free(OP);
  free(NOBODY);
  free(UMI);
  t_emu_close(E);
  E = NULL;
}

TEST_MAIN()
