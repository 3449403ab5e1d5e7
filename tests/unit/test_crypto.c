/* Unit tests for codecs and the TDE thumbprint definition. */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "sqltde/codec.h"
#include "sqltde/crypto/thumbprint.h"
#include "test.h"

TEST(base64_vectors) {
  const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
  const char *std[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
  const char *url[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
  for(int i = 0; i < 7; i++) {
    sq_buf b, u, d;
    sq_buf_init(&b, 64);
    sq_buf_init(&u, 64);
    sq_buf_init(&d, 64);
    ASSERT_OK(sq_b64_encode(in[i], strlen(in[i]), 0, &b));
    ASSERT_STR_EQ(b.ptr, std[i]);
    ASSERT_OK(sq_b64_encode(in[i], strlen(in[i]), 1, &u));
    ASSERT_STR_EQ(u.ptr, url[i]);
    ASSERT_OK(sq_b64_decode(url[i], strlen(url[i]), &d));
    ASSERT_STR_EQ(d.ptr, in[i]);
    sq_buf_free(&b);
    sq_buf_free(&u);
    sq_buf_free(&d);
  }
  sq_buf d;
  sq_buf_init(&d, 64);
  ASSERT_EQ(sq_b64_decode("Zm9v!", 5, &d), SQ_EPARSE);
  ASSERT_EQ(sq_b64_decode("Z", 1, &d), SQ_EPARSE);
  sq_buf_free(&d);
  unsigned char bin[] = {0xfb, 0xff};
  sq_buf b;
  sq_buf_init(&b, 16);
  ASSERT_OK(sq_b64_encode(bin, 2, 1, &b));
  ASSERT_STR_EQ(b.ptr, "-_8");
  sq_buf_free(&b);
}

TEST(thumbprint_same_material_same_value) {
  EVP_PKEY *k1 = EVP_RSA_gen(2048);
  EVP_PKEY *k2 = EVP_RSA_gen(2048);
  ASSERT_NOT_NULL(k1);
  ASSERT_NOT_NULL(k2);
  char t1[41], t1b[41], t2[41];
  ASSERT_OK(sq_thumbprint_pkey(k1, t1, NULL));
  ASSERT_OK(sq_thumbprint_pkey(k2, t2, NULL));
  ASSERT_EQ(strlen(t1), 40);
  ASSERT(strcmp(t1, t2) != 0);
  /* the same material via n/e (as a JWK would carry it) gives the same value */
  BIGNUM *n = NULL, *e = NULL;
  ASSERT(EVP_PKEY_get_bn_param(k1, "n", &n));
  ASSERT(EVP_PKEY_get_bn_param(k1, "e", &e));
  unsigned char nb[512], eb[8];
  int nl = BN_bn2bin(n, nb), el = BN_bn2bin(e, eb);
  ASSERT_OK(sq_thumbprint_rsa(nb, (size_t)nl, eb, (size_t)el, t1b, NULL));
  ASSERT_STR_EQ(t1, t1b);
  sq_buf nu, eu;
  sq_buf_init(&nu, 1024);
  sq_buf_init(&eu, 16);
  ASSERT_OK(sq_b64_encode(nb, (size_t)nl, 1, &nu));
  ASSERT_OK(sq_b64_encode(eb, (size_t)el, 1, &eu));
  char t1c[41];
  ASSERT_OK(sq_thumbprint_jwk(nu.ptr, eu.ptr, t1c, NULL));
  ASSERT_STR_EQ(t1, t1c);
  for(int i = 0; i < 40; i++)
    ASSERT((t1[i] >= '0' && t1[i] <= '9') || (t1[i] >= 'A' && t1[i] <= 'F'));
  sq_buf_free(&nu);
  sq_buf_free(&eu);
  BN_free(n);
  BN_free(e);
  EVP_PKEY_free(k1);
  EVP_PKEY_free(k2);
}

TEST(thumbprint_rejects_garbage) {
  char t[41];
  sq_err e;
  sq_err_clear(&e);
  ASSERT_EQ(sq_thumbprint_jwk("!!", "AQAB", t, &e), SQ_EPARSE);
  ASSERT_EQ(sq_thumbprint_jwk(NULL, "AQAB", t, &e), SQ_EINVAL);
  ASSERT_EQ(sq_thumbprint_rsa(NULL, 0, NULL, 0, t, &e), SQ_EINVAL);
}

TEST_MAIN()
