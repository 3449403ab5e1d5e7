/* tls.c — the emulator's own CA and server certificate, made once per state
 * directory so clients can keep trusting DIR/ca.pem across restarts. Clients
 * trust it explicitly (CA bundle, NODE_EXTRA_CA_CERTS); nothing disables
 * verification. */
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "emu.h"

static const char *const SERVER_SANS =
    "DNS:login.localhost,DNS:management.localhost,DNS:*.vault.localhost,DNS:control.localhost,"
    "DNS:imds.localhost,DNS:localhost,IP:127.0.0.1";

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
  X509_EXTENSION *ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
  if(!ex)
    return 0;
  int ok = X509_add_ext(cert, ex, -1);
  X509_EXTENSION_free(ex);
  return ok;
}

static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, int ca) {
  X509 *x = X509_new();
  if(!x)
    return NULL;
  BIGNUM *bn = BN_new();
  int ok = bn && BN_rand(bn, 120, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) &&
           BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) && X509_set_version(x, 2) &&
           X509_gmtime_adj(X509_getm_notBefore(x), -86400) &&
           X509_gmtime_adj(X509_getm_notAfter(x), (long)86400 * 3650) && X509_set_pubkey(x, key);
  BN_free(bn);
  X509_NAME *name = X509_get_subject_name(x);
  ok = ok && X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"sqltde Azure emulator", -1, -1, 0) &&
       X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0) &&
       X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
  X509 *iss = issuer ? issuer : x;
  if(ca)
    ok = ok && add_ext(x, iss, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") &&
         add_ext(x, iss, NID_key_usage, "critical,keyCertSign,cRLSign") &&
         add_ext(x, iss, NID_subject_key_identifier, "hash");
  else
    ok = ok && add_ext(x, iss, NID_basic_constraints, "critical,CA:FALSE") &&
         add_ext(x, iss, NID_key_usage, "critical,digitalSignature,keyEncipherment") &&
         add_ext(x, iss, NID_ext_key_usage, "serverAuth") && add_ext(x, iss, NID_subject_alt_name, SERVER_SANS) &&
         add_ext(x, iss, NID_authority_key_identifier, "keyid:always");
  ok = ok && X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256());
  if(!ok) {
    X509_free(x);
    return NULL;
  }
  return x;
}

static sq_code write_pem(const char *path, X509 *cert, X509 *chain, EVP_PKEY *key, sq_err *err) {
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if(!f)
    return sq_err_set(err, SQ_EIO, "cannot write %s", tmp);
  if(key)
    fchmod(fileno(f), 0600);
  int ok = key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL)
               : PEM_write_X509(f, cert) && (!chain || PEM_write_X509(f, chain));
  ok = fclose(f) == 0 && ok;
  if(!ok || rename(tmp, path)) {
    unlink(tmp);
    return sq_err_set(err, SQ_EIO, "cannot write %s", path);
  }
  return SQ_OK;
}

sq_code emu_tls_ensure(const char *dir, sq_err *err) {
  char ca_pem[4096], ca_key[4096], srv_pem[4096], srv_key[4096];
  snprintf(ca_pem, sizeof ca_pem, "%s/ca.pem", dir);
  snprintf(ca_key, sizeof ca_key, "%s/ca.key", dir);
  snprintf(srv_pem, sizeof srv_pem, "%s/server.pem", dir);
  snprintf(srv_key, sizeof srv_key, "%s/server.key", dir);
  if(!access(ca_pem, R_OK) && !access(srv_pem, R_OK) && !access(srv_key, R_OK))
    return SQ_OK;
  sq_code rc = SQ_OK;
  EVP_PKEY *cak = EVP_RSA_gen(2048), *sk = EVP_RSA_gen(2048);
  X509 *ca = cak ? make_cert(cak, "sqltde Azure emulator CA", NULL, NULL, 1) : NULL;
  X509 *srv = ca && sk ? make_cert(sk, "login.localhost", ca, cak, 0) : NULL;
  if(!srv)
    rc = sq_err_set(err, SQ_EIO, "cannot create the emulator's certificates");
  /* server.pem carries the chain (leaf then CA) */
  if(!rc)
    rc = write_pem(ca_key, NULL, NULL, cak, err);
  if(!rc)
    rc = write_pem(srv_key, NULL, NULL, sk, err);
  if(!rc)
    rc = write_pem(srv_pem, srv, ca, NULL, err);
  if(!rc)
    rc = write_pem(ca_pem, ca, NULL, NULL, err);
  X509_free(ca);
  X509_free(srv);
  EVP_PKEY_free(cak);
  EVP_PKEY_free(sk);
  return rc;
}
