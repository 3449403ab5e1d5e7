/* test_emu_entra.c — Entra ID through emu_handle: client secret (form and
 * HTTP Basic), certificate assertions (RS256 + x5t, PS256 + x5t#S256),
 * federated tokens, every refusal in the AADSTS shape, OpenID metadata, JWKS
 * verification of issued tokens, and the IMDS endpoint. */
#include <openssl/pem.h>

#include "emu_harness.h"
#include "sqltde/codec.h"

#define TOKEN_URL "https://login.localhost/" T_TENANT "/oauth2/v2.0/token"
#define FORM "application/x-www-form-urlencoded"

static emu *E;

static void setup(void) {
  if(!E)
    E = t_emu_open();
}

static t_resp post_form(const char *body) { return t_do(E, "POST", TOKEN_URL, NULL, FORM, body); }

static void assert_aad_error(const t_resp *r, int status, const char *error, int code) {
  ASSERT_EQ(r->status, status);
  ASSERT_STR_EQ(t_str(r, "error"), error);
  char prefix[32];
  snprintf(prefix, sizeof prefix, "AADSTS%d:", code);
  ASSERT(!strncmp(t_str(r, "error_description"), prefix, strlen(prefix)));
  ASSERT_EQ(json_integer_value(json_array_get(json_object_get(r->json, "error_codes"), 0)), code);
  ASSERT_NOT_NULL(t_str(r, "trace_id"));
  ASSERT_NOT_NULL(t_str(r, "correlation_id"));
  ASSERT_NOT_NULL(t_str(r, "timestamp"));
}

static char *claim(const char *tok, const char *name) {
  emu_jwt j;
  if(emu_jwt_parse(tok, &j, NULL))
    return NULL;
  const char *v = sq_json_str(j.claims, name);
  char *out = v ? strdup(v) : NULL;
  emu_jwt_free(&j);
  return out;
}

TEST(client_secret) {
  setup();
  t_resp r = post_form("grant_type=client_credentials&client_id=" T_OP_CID
                       "&client_secret=operator-test-secret&scope=https%3A%2F%2Fvault.azure.net%2F.default");
  ASSERT_EQ(r.status, 200);
  ASSERT_STR_EQ(t_str(&r, "token_type"), "Bearer");
  ASSERT_EQ(sq_json_int(r.json, "expires_in", 0), 3600);
  char *oid = claim(t_str(&r, "access_token"), "oid"), *aud = claim(t_str(&r, "access_token"), "aud");
  ASSERT_STR_EQ(oid, T_OP_OID);
  ASSERT_STR_EQ(aud, "https://vault.azure.net");
  free(oid);
  free(aud);
  t_resp_free(&r);
  /* HTTP Basic client authentication */
  sq_buf b;
  sq_buf_init(&b, 256);
  ASSERT_OK(sq_b64_encode(T_OP_CID ":operator-test-secret", strlen(T_OP_CID ":operator-test-secret"), 0, &b));
  /* t_do only knows Bearer; build the request by hand */
  t_req t = {.method = "POST", .host = "login.localhost", .path = "/" T_TENANT "/oauth2/v2.0/token", .query = "",
             .ctype = FORM, .body = "grant_type=client_credentials&scope=https://management.azure.com/.default"};
  char auth[300];
  snprintf(auth, sizeof auth, "Basic %s", b.ptr);
  t.hnames[0] = "Authorization";
  t.hvals[0] = auth;
  t.nh = 1;
  sq_httpd_req req = {.method = t.method, .path = t.path, .query = "", .host = t.host, .content_type = FORM,
                      .body = t.body, .body_len = strlen(t.body), .header = t_header, .impl = &t};
  sq_httpd_resp resp;
  emu_resp_init(&resp);
  int lat;
  emu_handle(E, &req, &resp, &lat);
  ASSERT_EQ(resp.status, 200);
  emu_resp_free(&resp);
  sq_buf_free(&b);
}

TEST(refusals_have_aadsts_shape) {
  setup();
  struct {
    const char *body;
    int status;
    const char *error;
    int code;
  } cases[] = {
      {"grant_type=client_credentials&client_id=" T_OP_CID "&client_secret=wrong&scope=https://vault.azure.net/.default",
       401, "invalid_client", 7000215},
      {"grant_type=password&client_id=" T_OP_CID, 400, "unsupported_grant_type", 70003},
      {"client_id=" T_OP_CID, 400, "invalid_request", 900144},
      {"grant_type=client_credentials&client_secret=x&scope=https://vault.azure.net/.default", 400, "invalid_request",
       900144},
      {"grant_type=client_credentials&client_id=99999999-0000-4000-8000-000000000000&client_secret=x&scope=https://"
       "vault.azure.net/.default",
       400, "unauthorized_client", 700016},
      {"grant_type=client_credentials&client_id=0a0a0a0a-0000-4000-8000-000000000003&client_secret=fabrikam-test-"
       "secret&scope=https://vault.azure.net/.default",
       400, "unauthorized_client", 700016}, /* registered in the other tenant */
      {"grant_type=client_credentials&client_id=" T_OP_CID "&client_secret=operator-test-secret&scope=https://vault.azure.net",
       400, "invalid_scope", 1002012},
      {"grant_type=client_credentials&client_id=" T_OP_CID "&client_secret=operator-test-secret&scope=https://evil.example/.default",
       400, "invalid_resource", 500011},
      {"grant_type=client_credentials&client_id=" T_OP_CID "&scope=https://vault.azure.net/.default", 401,
       "invalid_client", 7000218},
      {"grant_type=client_credentials&client_id=" T_OP_CID "&scope=https://vault.azure.net/.default&client_assertion_"
       "type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=garbage",
       400, "invalid_request", 50027},
      {"grant_type=client_credentials&client_id=%zz", 400, "invalid_request", 900144},
  };
  for(size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    t_resp r = post_form(cases[i].body);
    if(r.status != cases[i].status)
      fprintf(stderr, "case %zu: %d %s\n", i, r.status, r.body);
    assert_aad_error(&r, cases[i].status, cases[i].error, cases[i].code);
    t_resp_free(&r);
  }
  t_resp r = t_do(E, "POST", "https://login.localhost/99999999-9999-4999-8999-999999999999/oauth2/v2.0/token", NULL,
                  FORM, "grant_type=client_credentials");
  assert_aad_error(&r, 400, "invalid_request", 90002);
  t_resp_free(&r);
  r = t_do(E, "POST", TOKEN_URL, NULL, "application/json", "{}");
  ASSERT_EQ(r.status, 400);
  t_resp_free(&r);
}

static EVP_PKEY *read_key(const char *rel) {
  char path[1024];
  const char *src = getenv("SQLTDE_EMU_SRC");
  snprintf(path, sizeof path, "%s/seeds/creds/%s", src ? src : "tests/azure-emulator", rel);
  FILE *f = fopen(path, "r");
  EVP_PKEY *k = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
  if(f)
    fclose(f);
  return k;
}

static t_resp assertion_request(const char *assertion) {
  char body[EMU_MAX_TOKEN + 512];
  snprintf(body, sizeof body,
           "grant_type=client_credentials&client_id=" T_OP_CID "&scope=https://management.azure.com/.default"
           "&client_assertion_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Aclient-assertion-type%%3Ajwt-bearer&client_assertion=%s",
           assertion);
  return post_form(body);
}

static char *cert_assertion(EVP_PKEY *k, const char *alg, const char *hdr_name, const char *thumb, const char *aud,
                            int64_t exp_delta) {
  int64_t now = emu_now_s(E);
  json_t *claims = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:I}", "aud", aud, "iss", T_OP_CID, "sub", T_OP_CID, "jti",
                             "1", "nbf", (json_int_t)now, "iat", (json_int_t)now, "exp", (json_int_t)(now + exp_delta));
  json_t *hdr = json_pack("{s:s}", hdr_name, thumb);
  char *tok = NULL;
  emu_jwt_sign(k, alg, hdr, claims, &tok, NULL);
  json_decref(claims);
  json_decref(hdr);
  return tok;
}

TEST(certificate_assertions) {
  setup();
  EVP_PKEY *k = read_key("operator.pem");
  ASSERT_NOT_NULL(k);
  sq_buf pem;
  sq_buf_init(&pem, 1 << 20);
  char path[1024];
  const char *src = getenv("SQLTDE_EMU_SRC");
  snprintf(path, sizeof path, "%s/seeds/creds/operator.pem", src ? src : "tests/azure-emulator");
  ASSERT_OK(sq_buf_read_file(&pem, path, NULL));
  char x5t[64], x5t256[64];
  ASSERT_OK(emu_cert_x5t(pem.ptr, x5t, sizeof x5t, x5t256, sizeof x5t256, NULL));
  sq_buf_free(&pem);
  const char *aud = "https://login.localhost:8443/" T_TENANT "/oauth2/v2.0/token";
  char *a1 = cert_assertion(k, "RS256", "x5t", x5t, aud, 600);
  t_resp r = assertion_request(a1);
  ASSERT_EQ(r.status, 200);
  char *acr = claim(t_str(&r, "access_token"), "appidacr");
  ASSERT_STR_EQ(acr, "2");
  free(acr);
  t_resp_free(&r);
  char *a2 = cert_assertion(k, "PS256", "x5t#S256", x5t256, aud, 600);
  r = assertion_request(a2);
  ASSERT_EQ(r.status, 200);
  t_resp_free(&r);
  /* unknown certificate, wrong audience, expired, signed by another key */
  char *a3 = cert_assertion(k, "RS256", "x5t", "AAAAAAAAAAAAAAAAAAAAAAAAAAA", aud, 600);
  r = assertion_request(a3);
  assert_aad_error(&r, 401, "invalid_client", 700027);
  t_resp_free(&r);
  char *a4 = cert_assertion(k, "RS256", "x5t", x5t, "https://example.com/token", 600);
  r = assertion_request(a4);
  assert_aad_error(&r, 400, "invalid_client", 700027);
  t_resp_free(&r);
  char *a5 = cert_assertion(k, "RS256", "x5t", x5t, aud, -1000);
  r = assertion_request(a5);
  assert_aad_error(&r, 400, "invalid_client", 700024);
  t_resp_free(&r);
  EVP_PKEY *other = EVP_RSA_gen(2048);
  char *a6 = cert_assertion(other, "RS256", "x5t", x5t, aud, 600);
  r = assertion_request(a6);
  assert_aad_error(&r, 401, "invalid_client", 700027);
  ASSERT_STR_CONTAINS(t_str(&r, "error_description"), "signature");
  t_resp_free(&r);
  EVP_PKEY_free(other);
  EVP_PKEY_free(k);
  free(a1);
  free(a2);
  free(a3);
  free(a4);
  free(a5);
  free(a6);
}

static char *federated(EVP_PKEY *k, const char *iss, const char *sub, const char *aud) {
  int64_t now = emu_now_s(E);
  json_t *claims = json_pack("{s:s,s:s,s:[s],s:I,s:I}", "iss", iss, "sub", sub, "aud", aud, "iat", (json_int_t)now,
                             "exp", (json_int_t)(now + 3600));
  json_t *hdr = json_pack("{s:s}", "kid", "test-issuer-key-1");
  char *tok = NULL;
  emu_jwt_sign(k, "RS256", hdr, claims, &tok, NULL);
  json_decref(claims);
  json_decref(hdr);
  return tok;
}

TEST(federated_credentials) {
  setup();
  EVP_PKEY *k = read_key("federated-issuer.key");
  ASSERT_NOT_NULL(k);
  const char *iss = "https://oidc.localhost/sqltde-test", *sub = "system:serviceaccount:sqltde-system:sqltde-operator";
  char *ok = federated(k, iss, sub, "api://AzureADTokenExchange");
  t_resp r = assertion_request(ok);
  ASSERT_EQ(r.status, 200);
  t_resp_free(&r);
  char *bad_sub = federated(k, iss, "system:serviceaccount:x:y", "api://AzureADTokenExchange");
  r = assertion_request(bad_sub);
  assert_aad_error(&r, 400, "invalid_request", 70021);
  t_resp_free(&r);
  char *bad_aud = federated(k, iss, sub, "api://Other");
  r = assertion_request(bad_aud);
  assert_aad_error(&r, 400, "invalid_request", 700212);
  t_resp_free(&r);
  EVP_PKEY *other = EVP_RSA_gen(2048);
  char *forged = federated(other, iss, sub, "api://AzureADTokenExchange");
  r = assertion_request(forged);
  assert_aad_error(&r, 401, "invalid_client", 700027);
  t_resp_free(&r);
  /* a new issuer registered at run time through the control API */
  json_t *jwk = emu_rsa_public_jwk(other);
  json_t *reg = json_pack("{s:s,s:{s:[o]}}", "issuer", "https://runtime.localhost", "jwks", "keys", jwk);
  char *regs = json_dumps(reg, 0);
  r = t_json(E, "PUT", "https://control.localhost/_emulator/issuers", NULL, regs);
  ASSERT_EQ(r.status, 200);
  t_resp_free(&r);
  r = t_json(E, "POST", "https://control.localhost/_emulator/seed", NULL,
             "{\"identities\":[{\"type\":\"userAssigned\",\"name\":\"umi-rt\",\"tenant\":\"" T_TENANT "\","
             "\"subscription\":\"" T_SUB1 "\",\"resourceGroup\":\"rg-tde\",\"clientId\":\"0c0c0c0c-0000-4000-8000-00000000000f\","
             "\"principalId\":\"0d0d0d0d-0000-4000-8000-00000000000f\",\"federatedCredentials\":[{\"issuer\":"
             "\"https://runtime.localhost\",\"subject\":\"s1\"}]}]}");
  ASSERT_EQ(r.status, 200);
  t_resp_free(&r);
  char *rt = federated(other, "https://runtime.localhost", "s1", "api://AzureADTokenExchange");
  char body[EMU_MAX_TOKEN + 512];
  snprintf(body, sizeof body,
           "grant_type=client_credentials&client_id=0c0c0c0c-0000-4000-8000-00000000000f&scope=https://vault.azure.net/"
           ".default&client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion=%s",
           rt);
  r = post_form(body);
  ASSERT_EQ(r.status, 200);
  char *oid = claim(t_str(&r, "access_token"), "oid");
  ASSERT_STR_EQ(oid, "0d0d0d0d-0000-4000-8000-00000000000f");
  free(oid);
  t_resp_free(&r);
  json_decref(reg);
  free(regs);
  free(rt);
  EVP_PKEY_free(other);
  EVP_PKEY_free(k);
  free(ok);
  free(bad_sub);
  free(bad_aud);
  free(forged);
}

TEST(openid_metadata_and_jwks_verify_tokens) {
  setup();
  t_resp r = t_get(E, "https://login.localhost/" T_TENANT "/v2.0/.well-known/openid-configuration", NULL);
  ASSERT_EQ(r.status, 200);
  ASSERT_STR_EQ(t_str(&r, "token_endpoint"), "https://login.localhost:8443/" T_TENANT "/oauth2/v2.0/token");
  ASSERT_STR_EQ(t_str(&r, "issuer"), "https://login.localhost:8443/" T_TENANT "/v2.0");
  char jwks_url[256];
  snprintf(jwks_url, sizeof jwks_url, "%s", t_str(&r, "jwks_uri"));
  t_resp_free(&r);
  r = t_get(E, jwks_url, NULL);
  ASSERT_EQ(r.status, 200);
  json_t *k = json_array_get(json_object_get(r.json, "keys"), 0);
  EVP_PKEY *pub = NULL;
  ASSERT_OK(emu_rsa_from_jwk_public(k, &pub, NULL));
  char kid[64];
  snprintf(kid, sizeof kid, "%s", sq_json_str(k, "kid"));
  t_resp_free(&r);
  /* a token from the endpoint verifies with the published key and names its kid */
  r = post_form("grant_type=client_credentials&client_id=" T_OP_CID
                "&client_secret=operator-test-secret&scope=https://vault.azure.net/.default");
  emu_jwt j;
  ASSERT_OK(emu_jwt_parse(t_str(&r, "access_token"), &j, NULL));
  ASSERT_OK(emu_jwt_verify(&j, pub, NULL));
  ASSERT_STR_EQ(sq_json_str(j.header, "kid"), kid);
  emu_jwt_free(&j);
  t_resp_free(&r);
  EVP_PKEY_free(pub);
  r = t_get(E, "https://login.localhost/nope/v2.0/.well-known/openid-configuration", NULL);
  ASSERT_EQ(r.status, 400);
  t_resp_free(&r);
  /* the tenant's name works as well as its id */
  r = t_get(E, "https://login.localhost/contoso/v2.0/.well-known/openid-configuration", NULL);
  ASSERT_EQ(r.status, 200);
  t_resp_free(&r);
}

TEST(imds) {
  setup();
  const char *base = "https://localhost/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net";
  /* no Metadata header -> 400 (this is also how SDKs probe IMDS) */
  t_resp r = t_get(E, base, NULL);
  ASSERT_EQ(r.status, 400);
  ASSERT_STR_EQ(t_str(&r, "error"), "invalid_request");
  t_resp_free(&r);
}

static t_resp imds(const char *query) {
  char path[512];
  snprintf(path, sizeof path, "%s", query);
  t_req t = {.method = "GET", .host = "imds.localhost", .path = "/metadata/identity/oauth2/token", .query = path};
  t.hnames[0] = "Metadata";
  t.hvals[0] = "true";
  t.nh = 1;
  sq_httpd_req req = {.method = "GET", .path = t.path, .query = path, .host = t.host, .content_type = "",
                      .body = "", .header = t_header, .impl = &t};
  sq_httpd_resp resp;
  emu_resp_init(&resp);
  int lat;
  emu_handle(E, &req, &resp, &lat);
  t_resp out = {.status = resp.status, .json = json_loadb(resp.body.ptr ? resp.body.ptr : "", resp.body.len, 0, NULL)};
  emu_resp_free(&resp);
  return out;
}

TEST(imds_with_metadata) {
  setup();
  t_resp r = imds("api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net&client_id=" T_UMI_CID);
  ASSERT_EQ(r.status, 200);
  ASSERT(json_is_string(json_object_get(r.json, "expires_in")));
  ASSERT(json_is_string(json_object_get(r.json, "expires_on")));
  char *oid = claim(t_str(&r, "access_token"), "oid");
  ASSERT_STR_EQ(oid, T_UMI_OID);
  free(oid);
  t_resp_free(&r);
  r = imds("api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net"); /* two UMIs: must choose */
  ASSERT_EQ(r.status, 400);
  t_resp_free(&r);
  r = imds("api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F&msi_res_id=%2Fsubscriptions%2F" T_SUB1
           "%2FresourceGroups%2Frg-tde%2Fproviders%2FMicrosoft.ManagedIdentity%2FuserAssignedIdentities%2Fumi-mi");
  ASSERT_EQ(r.status, 200);
  t_resp_free(&r);
  r = imds("api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net&client_id=" T_OP_CID); /* an app, not a UMI */
  ASSERT_EQ(r.status, 400);
  t_resp_free(&r);
  r = imds("resource=https%3A%2F%2Fvault.azure.net&client_id=" T_UMI_CID);
  ASSERT_EQ(r.status, 400);
  t_resp_free(&r);
}

/* A multi-tenant application: same credentials, a token in another tenant
 * only where it has a service principal, carrying that principal's oid. */
TEST(multi_tenant_application) {
  setup();
  sq_err err;
  json_t *seed = json_loads(
      "{\"identities\":[{\"type\":\"application\",\"name\":\"mt-app\","
      "\"tenant\":\"11111111-1111-4111-8111-111111111111\",\"clientId\":\"0a0a0a0a-0000-4000-8000-0000000000f1\","
      "\"objectId\":\"0b0b0b0b-0000-4000-8000-0000000000f1\",\"clientSecret\":\"mt-secret\","
      "\"servicePrincipals\":[{\"tenant\":\"22222222-2222-4222-8222-222222222222\","
      "\"objectId\":\"0e0e0e0e-0000-4000-8000-0000000000f1\"}]}]}",
      0, NULL);
  ASSERT_NOT_NULL(seed);
  ASSERT_OK(emu_seed_apply(E, seed, NULL, &err));
  json_decref(seed);
  const char *form = "grant_type=client_credentials&client_id=0a0a0a0a-0000-4000-8000-0000000000f1"
                     "&client_secret=mt-secret&scope=https://vault.azure.net/.default";
  t_resp r = t_do(E, "POST", "https://login.localhost/22222222-2222-4222-8222-222222222222/oauth2/v2.0/token", NULL,
                  FORM, form);
  ASSERT_EQ(r.status, 200);
  char *oid = claim(t_str(&r, "access_token"), "oid"), *tid = claim(t_str(&r, "access_token"), "tid");
  ASSERT_STR_EQ(oid, "0e0e0e0e-0000-4000-8000-0000000000f1");
  ASSERT_STR_EQ(tid, "22222222-2222-4222-8222-222222222222");
  free(oid);
  free(tid);
  t_resp_free(&r);
  r = post_form(form); /* home tenant: the application's own object */
  ASSERT_EQ(r.status, 200);
  oid = claim(t_str(&r, "access_token"), "oid");
  ASSERT_STR_EQ(oid, "0b0b0b0b-0000-4000-8000-0000000000f1");
  free(oid);
  t_resp_free(&r);
  r = t_do(E, "POST", "https://login.localhost/22222222-2222-4222-8222-222222222222/oauth2/v2.0/token", NULL, FORM,
           "grant_type=client_credentials&client_id=0a0a0a0a-0000-4000-8000-0000000000f1"
           "&client_secret=wrong&scope=https://vault.azure.net/.default");
  assert_aad_error(&r, 401, "invalid_client", 7000215); /* still the home app's credentials */
  t_resp_free(&r);
  /* the principal a resource provider sees for it in each tenant */
  char m[EMU_ID_MAX];
  ASSERT_EQ(emu_oid_in_tenant(E, "0b0b0b0b-0000-4000-8000-0000000000f1", "22222222-2222-4222-8222-222222222222", m), 1);
  ASSERT_STR_EQ(m, "0e0e0e0e-0000-4000-8000-0000000000f1");
  ASSERT_EQ(emu_oid_in_tenant(E, "0b0b0b0b-0000-4000-8000-0000000000f1", "11111111-1111-4111-8111-111111111111", m), 0);
  ASSERT_STR_EQ(m, "0b0b0b0b-0000-4000-8000-0000000000f1");
  ASSERT_EQ(emu_oid_in_tenant(E, T_OP_OID, "22222222-2222-4222-8222-222222222222", m), 0); /* none there */
  ASSERT_STR_EQ(m, T_OP_OID);
  /* a service principal in the home tenant is a seed error */
  seed = json_loads("{\"identities\":[{\"type\":\"application\",\"name\":\"bad\","
                    "\"tenant\":\"11111111-1111-4111-8111-111111111111\",\"clientId\":\"0a0a0a0a-0000-4000-8000-0000000000f2\","
                    "\"objectId\":\"0b0b0b0b-0000-4000-8000-0000000000f2\",\"servicePrincipals\":[{\"tenant\":"
                    "\"11111111-1111-4111-8111-111111111111\",\"objectId\":\"0e0e0e0e-0000-4000-8000-0000000000f2\"}]}]}",
                    0, NULL);
  ASSERT_NOT_NULL(seed);
  ASSERT(emu_seed_apply(E, seed, NULL, &err) != SQ_OK);
  ASSERT_STR_CONTAINS(err.message, "servicePrincipals");
  json_decref(seed);
}

TEST(zz_teardown) {
  t_emu_close(E);
  E = NULL;
}

TEST_MAIN()
