/* test_emu_jwt.c — JWS sign/verify round trips (RS256, PS256), tampering,
 * malformed tokens, x5t thumbprints, and access tokens against the virtual
 * clock and audiences. */
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "emu_harness.h"
#include "sqltde/codec.h"

static EVP_PKEY *key(void) { return EVP_RSA_gen(2048); }

TEST(sign_verify_round_trip) {
  EVP_PKEY *k = key(), *other = key();
  const char *algs[] = {"RS256", "PS256"};
  for(int i = 0; i < 2; i++) {
    json_t *claims = json_pack("{s:s,s:i}", "sub", "me", "exp", 2000000000);
    json_t *hdr = json_pack("{s:s}", "kid", "k1");
    char *tok = NULL;
    ASSERT_OK(emu_jwt_sign(k, algs[i], hdr, claims, &tok, NULL));
    emu_jwt j;
    ASSERT_OK(emu_jwt_parse(tok, &j, NULL));
    ASSERT_STR_EQ(sq_json_str(j.header, "alg"), algs[i]);
    ASSERT_STR_EQ(sq_json_str(j.header, "kid"), "k1");
    ASSERT_STR_EQ(sq_json_str(j.claims, "sub"), "me");
    ASSERT_OK(emu_jwt_verify(&j, k, NULL));
    ASSERT_NE(emu_jwt_verify(&j, other, NULL), SQ_OK);
    emu_jwt_free(&j);
    /* flip one payload character: the signature no longer verifies */
    char *dot = strchr(tok, '.');
    dot[3] = dot[3] == 'A' ? 'B' : 'A';
    if(emu_jwt_parse(tok, &j, NULL) == SQ_OK) {
      ASSERT_NE(emu_jwt_verify(&j, k, NULL), SQ_OK);
      emu_jwt_free(&j);
    }
    free(tok);
    json_decref(claims);
    json_decref(hdr);
  }
  EVP_PKEY_free(k);
  EVP_PKEY_free(other);
}

TEST(unsupported_alg_refused) {
  EVP_PKEY *k = key();
  json_t *claims = json_object();
  char *tok = NULL;
  ASSERT_NE(emu_jwt_sign(k, "HS256", NULL, claims, &tok, NULL), SQ_OK);
  /* a token claiming alg none must not verify */
  emu_jwt j;
  ASSERT_OK(emu_jwt_parse("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2ln", &j, NULL));
  ASSERT_NE(emu_jwt_verify(&j, k, NULL), SQ_OK);
  emu_jwt_free(&j);
  json_decref(claims);
  EVP_PKEY_free(k);
}

TEST(malformed_tokens) {
  const char *bad[] = {"", "abc", "a.b", "a.b.c.d", "!!!.e30.c2ln", "e30.!!!.c2ln", "e30.e30.", "W10.e30.c2ln",
                       "e30.bm90LWpzb24.c2ln"};
  for(size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    emu_jwt j;
    ASSERT_NE(emu_jwt_parse(bad[i], &j, NULL), SQ_OK);
  }
  char *big = malloc(EMU_MAX_TOKEN + 10);
  memset(big, 'a', EMU_MAX_TOKEN + 9);
  big[EMU_MAX_TOKEN + 9] = '\0';
  emu_jwt j;
  ASSERT_EQ(emu_jwt_parse(big, &j, NULL), SQ_ETOOBIG);
  free(big);
}

TEST(x5t_of_certificate) {
  const char *src = getenv("SQLTDE_EMU_SRC");
  char path[1024];
  snprintf(path, sizeof path, "%s/seeds/creds/operator.pem", src ? src : "tests/azure-emulator");
  sq_buf pem;
  sq_buf_init(&pem, 1 << 20);
  ASSERT_OK(sq_buf_read_file(&pem, path, NULL));
  char x5t[64], x5t256[64];
  ASSERT_OK(emu_cert_x5t(pem.ptr, x5t, sizeof x5t, x5t256, sizeof x5t256, NULL));
  ASSERT_EQ(strlen(x5t), 27);    /* base64url of 20 bytes */
  ASSERT_EQ(strlen(x5t256), 43); /* base64url of 32 bytes */
  /* independently: SHA-1 of the DER */
  BIO *bio = BIO_new_mem_buf(pem.ptr, (int)pem.len);
  X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
  unsigned char md[20];
  unsigned int mdl = 0;
  ASSERT(X509_digest(x, EVP_sha1(), md, &mdl));
  sq_buf b;
  sq_buf_init(&b, 64);
  ASSERT_OK(sq_b64_encode(md, mdl, 1, &b));
  ASSERT_STR_EQ(x5t, b.ptr);
  sq_buf_free(&b);
  X509_free(x);
  BIO_free(bio);
  ASSERT_NE(emu_cert_x5t("not a pem", x5t, sizeof x5t, x5t256, sizeof x5t256, NULL), SQ_OK);
  sq_buf_free(&pem);
}

TEST(access_token_claims_and_clock) {
  emu *e = t_emu_open();
  ASSERT_NOT_NULL(e);
  char *tok = t_token(e, T_OP_OID, "https://vault.azure.net", 600);
  ASSERT_NOT_NULL(tok);
  emu_jwt j;
  ASSERT_OK(emu_jwt_parse(tok, &j, NULL));
  ASSERT_OK(emu_jwt_verify(&j, e->token_key, NULL));
  ASSERT_STR_EQ(sq_json_str(j.claims, "oid"), T_OP_OID);
  ASSERT_STR_EQ(sq_json_str(j.claims, "tid"), T_TENANT);
  ASSERT_STR_EQ(sq_json_str(j.claims, "appid"), T_OP_CID);
  ASSERT_STR_EQ(sq_json_str(j.claims, "aud"), "https://vault.azure.net");
  ASSERT_EQ(sq_json_int(j.claims, "exp", 0) - sq_json_int(j.claims, "iat", 0), 600);
  ASSERT_EQ(sq_json_int(j.claims, "iat", 0), emu_now_s(e));
  emu_jwt_free(&j);
  /* the token works now, and not after the virtual clock passes exp + 5 min skew */
  t_resp r = t_get(e, "https://kv-tde-east.vault.localhost/keys/tde-shared?api-version=7.5", tok);
  ASSERT_EQ(r.status, 200);
  t_resp_free(&r);
  ASSERT_OK(emu_clock_advance(e, (600 + 301) * 1000LL, NULL));
  r = t_get(e, "https://kv-tde-east.vault.localhost/keys/tde-shared?api-version=7.5", tok);
  ASSERT_EQ(r.status, 401);
  ASSERT_STR_CONTAINS(t_str(&r, "error.message"), "expired");
  ASSERT_NOT_NULL(t_resp_header(&r, "WWW-Authenticate"));
  t_resp_free(&r);
  /* wrong audience: an ARM token at Key Vault, a Key Vault token at ARM */
  char *arm = t_token(e, T_OP_OID, "https://management.azure.com", 600);
  r = t_get(e, "https://kv-tde-east.vault.localhost/keys/tde-shared?api-version=7.5", arm);
  ASSERT_EQ(r.status, 401);
  ASSERT_STR_CONTAINS(t_str(&r, "error.message"), "audience");
  t_resp_free(&r);
  char *kv = t_token(e, T_OP_OID, "https://vault.azure.net", 600);
  r = t_get(e, "https://management.localhost/subscriptions/" T_SUB1 "/resourceGroups/rg-tde/providers/Microsoft.KeyVault/vaults/kv-tde-east?api-version=2023-07-01", kv);
  ASSERT_EQ(r.status, 401);
  ASSERT_STR_EQ(t_str(&r, "error.code"), "InvalidAuthenticationTokenAudience");
  t_resp_free(&r);
  /* a token signed by someone else */
  EVP_PKEY *k = key();
  json_t *claims = json_pack("{s:s,s:s,s:s,s:s,s:I}", "aud", "https://vault.azure.net", "iss",
                             "https://login.localhost:8443/" T_TENANT "/v2.0", "oid", T_OP_OID, "tid", T_TENANT, "exp",
                             (json_int_t)(emu_now_s(e) + 600));
  char *forged = NULL;
  ASSERT_OK(emu_jwt_sign(k, "RS256", NULL, claims, &forged, NULL));
  r = t_get(e, "https://kv-tde-east.vault.localhost/keys/tde-shared?api-version=7.5", forged);
  ASSERT_EQ(r.status, 401);
  t_resp_free(&r);
  json_decref(claims);
  EVP_PKEY_free(k);
  free(forged);
  free(arm);
  free(kv);
  free(tok);
  t_emu_close(e);
}

TEST_MAIN()
