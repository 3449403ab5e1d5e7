/* credential.c — Entra ID credentials and the token cache; see
 * include/sqltde/azure/credential.h. */
#include "sqltde/azure/credential.h"

#include <ctype.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sqltde/buf.h"
#include "sqltde/codec.h"
#include "sqltde/jsonx.h"
#include "sqltde/log.h"

#define LOGGER "azure.credential"
#define IMDS_DEFAULT_ORIGIN "http://169.254.169.254"
#define MAX_CACHE_ENTRIES 256
#define FAILED_REFRESH_PAUSE_MS 10000
#define WAIT_FOR_REFRESH_MS 180000
#define ASSERTION_LIFETIME_S 600

const char *sq_azure_cred_kind_name(sq_azure_cred_kind k) {
  switch(k) {
  case SQ_AZCRED_SECRET:
    return "client-secret";
  case SQ_AZCRED_CERT:
    return "client-certificate";
  case SQ_AZCRED_WORKLOAD:
    return "workload-identity";
  case SQ_AZCRED_IMDS:
    return "managed-identity";
  }
  return "unknown";
}

int sq_azure_tenant_valid(const char *t) {
  size_t n = t ? strlen(t) : 0;
  if(!n || n > 127)
    return 0;
  for(size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)t[i];
    if(!(isalnum(ch) || ch == '-' || ch == '.'))
      return 0;
  }
  return strcmp(t, ".") && strcmp(t, "..");
}

int sq_azure_tenant_allowed(const char *home, const char *allowed, const char *tenant) {
  if(!tenant || !*tenant || (home && !strcasecmp(home, tenant)))
    return 1;
  if(!allowed)
    return 0;
  const char *p = allowed;
  while(*p) {
    while(*p == ';' || *p == ' ' || *p == ',')
      p++;
    size_t n = strcspn(p, "; ,");
    if(n == 1 && *p == '*')
      return 1;
    if(n && n == strlen(tenant) && !strncasecmp(p, tenant, n))
      return 1;
    p += n;
  }
  return 0;
}

/* ---- configuration from the environment ---- */

static const char *env_get(sq_getenv_fn fn, void *ud, const char *name) {
  const char *v = fn ? fn(ud, name) : getenv(name);
  return v && *v ? v : NULL;
}

static sq_code copy_env(char *dst, size_t len, const char *v, const char *name, sq_err *err) {
  if(strlen(v) >= len)
    return sq_err_set(err, SQ_EINVAL, "%s is too long", name);
  snprintf(dst, len, "%s", v);
  return SQ_OK;
}

void sq_azure_cred_config_clear(sq_azure_cred_config *cfg) {
  if(!cfg)
    return;
  sq_free_secret(cfg->client_secret);
  sq_free_secret(cfg->cert_password);
  cfg->client_secret = cfg->cert_password = NULL;
}

sq_code sq_azure_cred_config_from_env(sq_getenv_fn fn, void *ud, sq_azure_cred_config *cfg,
                                      sq_err *err) {
  memset(cfg, 0, sizeof *cfg);
  const char *tenant = env_get(fn, ud, "AZURE_TENANT_ID");
  const char *client = env_get(fn, ud, "AZURE_CLIENT_ID");
  const char *secret = env_get(fn, ud, "AZURE_CLIENT_SECRET");
  const char *cert = env_get(fn, ud, "AZURE_CLIENT_CERTIFICATE_PATH");
  const char *certpw = env_get(fn, ud, "AZURE_CLIENT_CERTIFICATE_PASSWORD");
  const char *fedfile = env_get(fn, ud, "AZURE_FEDERATED_TOKEN_FILE");
  const char *authority = env_get(fn, ud, "AZURE_AUTHORITY_HOST");
  const char *podhost = env_get(fn, ud, "AZURE_POD_IDENTITY_AUTHORITY_HOST");
  const char *extra = env_get(fn, ud, "AZURE_ADDITIONALLY_ALLOWED_TENANTS");
  const char *force = env_get(fn, ud, "AZURE_TOKEN_CREDENTIALS");
  sq_code rc;

  if(tenant && !sq_azure_tenant_valid(tenant))
    return sq_err_set(err, SQ_EINVAL, "AZURE_TENANT_ID is not a valid tenant id");
  if(tenant && (rc = copy_env(cfg->tenant_id, sizeof cfg->tenant_id, tenant, "AZURE_TENANT_ID", err)))
    return rc;
  if(client && (rc = copy_env(cfg->client_id, sizeof cfg->client_id, client, "AZURE_CLIENT_ID", err)))
    return rc;
  if(authority) {
    if((rc = copy_env(cfg->authority_host, sizeof cfg->authority_host, authority,
                      "AZURE_AUTHORITY_HOST", err)))
      return rc;
    size_t n = strlen(cfg->authority_host);
    while(n && cfg->authority_host[n - 1] == '/') /* the webhook sets a trailing '/' */
      cfg->authority_host[--n] = '\0';
  }
  if(podhost) {
    if((rc = copy_env(cfg->imds_origin, sizeof cfg->imds_origin, podhost,
                      "AZURE_POD_IDENTITY_AUTHORITY_HOST", err)))
      return rc;
    size_t n = strlen(cfg->imds_origin);
    while(n && cfg->imds_origin[n - 1] == '/')
      cfg->imds_origin[--n] = '\0';
  }
  if(extra && (rc = copy_env(cfg->additional_tenants, sizeof cfg->additional_tenants, extra,
                             "AZURE_ADDITIONALLY_ALLOWED_TENANTS", err)))
    return rc;

  int want_env = 1, want_wi = 1, want_mi = 1;
  if(force) {
    if(!strcasecmp(force, "EnvironmentCredential"))
      want_wi = want_mi = 0;
    else if(!strcasecmp(force, "WorkloadIdentityCredential"))
      want_env = want_mi = 0;
    else if(!strcasecmp(force, "ManagedIdentityCredential"))
      want_env = want_wi = 0;
    else if(strcasecmp(force, "prod"))
      return sq_err_set(err, SQ_EINVAL,
                        "AZURE_TOKEN_CREDENTIALS=%s is not supported here (use prod, "
                        "EnvironmentCredential, WorkloadIdentityCredential or ManagedIdentityCredential)",
                        force);
  }

  if(want_env && (secret || cert)) {
    if(!tenant || !client) {
      SQ_WARN(LOGGER, "AZURE_CLIENT_%s is set but AZURE_TENANT_ID or AZURE_CLIENT_ID is missing; "
                      "skipping the environment credential",
              secret ? "SECRET" : "CERTIFICATE_PATH");
    } else if(secret) {
      cfg->kind = SQ_AZCRED_SECRET;
      cfg->client_secret = strdup(secret);
      if(!cfg->client_secret)
        return sq_err_set(err, SQ_ENOMEM, "out of memory");
      return SQ_OK;
    } else {
      cfg->kind = SQ_AZCRED_CERT;
      if((rc = copy_env(cfg->cert_path, sizeof cfg->cert_path, cert,
                        "AZURE_CLIENT_CERTIFICATE_PATH", err)))
        return rc;
      if(certpw && !(cfg->cert_password = strdup(certpw)))
        return sq_err_set(err, SQ_ENOMEM, "out of memory");
      return SQ_OK;
    }
  }
  if(want_wi && fedfile) {
    if(!tenant || !client) {
      SQ_WARN(LOGGER, "AZURE_FEDERATED_TOKEN_FILE is set but AZURE_TENANT_ID or AZURE_CLIENT_ID "
                      "is missing; skipping workload identity");
    } else {
      cfg->kind = SQ_AZCRED_WORKLOAD;
      return copy_env(cfg->federated_token_file, sizeof cfg->federated_token_file, fedfile,
                      "AZURE_FEDERATED_TOKEN_FILE", err);
    }
  }
  if(want_mi) {
    cfg->kind = SQ_AZCRED_IMDS;
    cfg->tenant_id[0] = '\0'; /* IMDS has no tenant */
    return SQ_OK;
  }
  return sq_err_set(err, SQ_EINVAL, "AZURE_TOKEN_CREDENTIALS=%s but its variables are not set", force);
}

/* ---- pure helpers ---- */

int64_t sq_azure_refresh_after_ms(int64_t lifetime_ms) {
  if(lifetime_ms <= 0)
    return 0;
  int64_t margin = lifetime_ms / 2;
  if(margin > 5 * 60 * 1000)
    margin = 5 * 60 * 1000;
  return lifetime_ms - margin;
}

/* A number or a numeric string (IMDS sends strings); -1 if neither. */
static int64_t num_or_string(const json_t *v) {
  if(json_is_number(v))
    return sq_json_number_i64(v, -1);
  if(json_is_string(v)) {
    const char *s = json_string_value(v);
    char *end;
    if(!*s)
      return -1;
    long long x = strtoll(s, &end, 10);
    return *end ? -1 : (int64_t)x;
  }
  return -1;
}

sq_code sq_azure_parse_token_response(const char *body, size_t len, int64_t now_wall_s,
                                      char **token_out, int64_t *lifetime_s, sq_err *err) {
  json_t *root = NULL;
  *token_out = NULL;
  sq_code rc = sq_json_parse(body, len, "token response", &root, err);
  if(rc)
    return rc;
  const char *tok = sq_json_str(root, "access_token");
  const char *type = sq_json_str(root, "token_type");
  int64_t in = num_or_string(json_object_get(root, "expires_in"));
  int64_t on = num_or_string(json_object_get(root, "expires_on"));
  int64_t life = in >= 0 ? in : (on >= 0 ? on - now_wall_s : -1);
  if(!tok || !*tok) {
    rc = sq_err_set(err, SQ_EPARSE, "token response: no access_token");
  } else if(type && strcasecmp(type, "Bearer")) {
    rc = sq_err_set(err, SQ_EPARSE, "token response: token_type \"%.32s\" is not Bearer", type);
  } else if(life < 0) {
    rc = sq_err_set(err, SQ_EPARSE, "token response: no usable expires_in/expires_on");
  } else if(strlen(tok) > 64 * 1024 || strpbrk(tok, " \t\r\n\"")) {
    rc = sq_err_set(err, SQ_EPARSE, "token response: access_token is not a plain token");
  } else if(!(*token_out = strdup(tok))) {
    rc = sq_err_set(err, SQ_ENOMEM, "out of memory");
  } else {
    /* Entra tokens live hours, not years; capping keeps later ms arithmetic
     * far from overflow whatever a server claims. */
    *lifetime_s = life > 7 * 24 * 3600 ? 7 * 24 * 3600 : life;
  }
  /* the parsed copy inside jansson holds the token: wipe before freeing */
  json_t *at = json_object_get(root, "access_token");
  if(json_is_string(at))
    sq_wipe((char *)json_string_value(at), json_string_length(at));
  json_decref(root);
  return rc;
}

/* ---- client assertion (certificate credential) ---- */

static int pem_pw_cb(char *buf, int size, int rwflag, void *u) {
  (void)rwflag;
  const char *pw = u;
  if(!pw)
    return 0;
  int n = (int)strlen(pw);
  if(n > size)
    n = size;
  memcpy(buf, pw, (size_t)n);
  return n;
}

static sq_code b64url_add(sq_buf *out, const void *data, size_t len) {
  return sq_b64_encode(data, len, 1, out);
}

static sq_code json_b64url(sq_buf *out, const json_t *v) {
  char *s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
  if(!s)
    return SQ_ENOMEM;
  sq_code rc = b64url_add(out, s, strlen(s));
  free(s);
  return rc;
}

sq_code sq_azure_client_assertion(const char *pem, size_t pem_len, const char *password,
                                  const char *client_id, const char *aud, int64_t now,
                                  char **jwt_out, sq_err *err) {
  *jwt_out = NULL;
  sq_code rc = SQ_OK;
  BIO *bc = NULL, *bk = NULL;
  X509 *cert = NULL;
  EVP_PKEY *key = NULL;
  EVP_MD_CTX *md = NULL;
  json_t *hdr = NULL, *claims = NULL;
  unsigned char *sig = NULL;
  sq_buf jwt, t256, t1;
  sq_buf_init(&jwt, 64 * 1024);
  sq_buf_init(&t256, 128);
  sq_buf_init(&t1, 128);

  if(pem_len > INT32_MAX)
    return sq_err_set(err, SQ_ETOOBIG, "client certificate: PEM too large");
  bc = BIO_new_mem_buf(pem, (int)pem_len);
  bk = BIO_new_mem_buf(pem, (int)pem_len);
  if(!bc || !bk) {
    rc = sq_err_set(err, SQ_ENOMEM, "out of memory");
    goto out;
  }
  cert = PEM_read_bio_X509(bc, NULL, NULL, NULL);
  if(!cert) {
    rc = sq_err_set(err, SQ_EPARSE, "client certificate: no CERTIFICATE block in the PEM");
    goto out;
  }
  key = PEM_read_bio_PrivateKey(bk, NULL, pem_pw_cb, (void *)password);
  if(!key) {
    rc = sq_err_set(err, SQ_EPARSE,
                    "client certificate: no readable private key in the PEM (wrong or missing "
                    "AZURE_CLIENT_CERTIFICATE_PASSWORD?)");
    goto out;
  }
  if(EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
    rc = sq_err_set(err, SQ_EINVAL, "client certificate: the key must be RSA (PS256)");
    goto out;
  }
  if(X509_check_private_key(cert, key) != 1) {
    rc = sq_err_set(err, SQ_EINVAL, "client certificate: the private key does not match the certificate");
    goto out;
  }
  unsigned char d256[EVP_MAX_MD_SIZE], d1[EVP_MAX_MD_SIZE];
  unsigned l256 = 0, l1 = 0;
  if(!X509_digest(cert, EVP_sha256(), d256, &l256) || !X509_digest(cert, EVP_sha1(), d1, &l1) ||
     b64url_add(&t256, d256, l256) || b64url_add(&t1, d1, l1)) {
    rc = sq_err_set(err, SQ_ENOMEM, "client certificate: cannot hash the certificate");
    goto out;
  }
  unsigned char rnd[16];
  if(RAND_bytes(rnd, sizeof rnd) != 1) {
    rc = sq_err_set(err, SQ_EIO, "client assertion: no randomness for jti");
    goto out;
  }
  rnd[6] = (unsigned char)((rnd[6] & 0x0f) | 0x40); /* UUID v4 */
  rnd[8] = (unsigned char)((rnd[8] & 0x3f) | 0x80);
  char jti[37];
  snprintf(jti, sizeof jti,
           "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1],
           rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7], rnd[8], rnd[9], rnd[10], rnd[11],
           rnd[12], rnd[13], rnd[14], rnd[15]);
  hdr = json_pack("{s:s,s:s,s:s,s:s}", "alg", "PS256", "typ", "JWT", "x5t#S256", t256.ptr, "x5t",
                  t1.ptr);
  claims = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:I}", "aud", aud, "iss", client_id, "sub",
                     client_id, "jti", jti, "nbf", (json_int_t)now, "iat", (json_int_t)now, "exp",
                     (json_int_t)(now + ASSERTION_LIFETIME_S));
  if(!hdr || !claims || json_b64url(&jwt, hdr) || sq_buf_add(&jwt, ".", 1) ||
     json_b64url(&jwt, claims)) {
    rc = sq_err_set(err, SQ_ENOMEM, "client assertion: cannot build the JWT");
    goto out;
  }
  md = EVP_MD_CTX_new();
  EVP_PKEY_CTX *pctx = NULL;
  size_t siglen = 0;
  if(!md || EVP_DigestSignInit(md, &pctx, EVP_sha256(), NULL, key) != 1 ||
     EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
     EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1 ||
     EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) != 1 ||
     EVP_DigestSign(md, NULL, &siglen, (unsigned char *)jwt.ptr, jwt.len) != 1 ||
     !(sig = OPENSSL_malloc(siglen)) ||
     EVP_DigestSign(md, sig, &siglen, (unsigned char *)jwt.ptr, jwt.len) != 1) {
    rc = sq_err_set(err, SQ_EINVAL, "client assertion: signing failed");
    goto out;
  }
  if(sq_buf_add(&jwt, ".", 1) || b64url_add(&jwt, sig, siglen)) {
    rc = sq_err_set(err, SQ_ENOMEM, "out of memory");
    goto out;
  }
  *jwt_out = sq_buf_detach(&jwt);
out:
  ERR_clear_error();
  OPENSSL_free(sig);
  EVP_MD_CTX_free(md);
  json_decref(hdr);
  json_decref(claims);
  EVP_PKEY_free(key); /* OpenSSL clears private key material on free */
  X509_free(cert);
  BIO_free(bc);
  BIO_free(bk);
  sq_buf_free_wipe(&jwt);
  sq_buf_free(&t256);
  sq_buf_free(&t1);
  return rc;
}

/* ---- the credential ---- */

typedef struct tok_entry {
  struct tok_entry *next;
  char tenant[128];
  char scope[512];
  char *token;          /* secret */
  int64_t expires_on;   /* wall seconds */
  int64_t usable_mono;  /* after this the token is not handed out */
  int64_t refresh_mono; /* after this a refresh is due */
  int64_t retry_mono;   /* no refresh attempt before this (after a failure) */
  int refreshing;
  unsigned gen;         /* bumped after each refresh attempt */
  sq_err last_err;      /* of the last failed attempt (no secrets in it) */
} tok_entry;

struct sq_azure_cred {
  sq_azure_cloud cloud;
  sq_azure_cred_config cfg;
  sq_azure_pipeline pipe;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  tok_entry *entries;
  int n_entries;
  atomic_ullong exchanges;
};

sq_azure_cred_kind sq_azure_cred_kind_of(const sq_azure_cred *c) { return c->cfg.kind; }
const char *sq_azure_cred_tenant(const sq_azure_cred *c) { return c->cfg.tenant_id; }
uint64_t sq_azure_cred_exchanges(const sq_azure_cred *c) {
  return atomic_load(&((sq_azure_cred *)c)->exchanges);
}

void sq_azure_token_clear(sq_azure_token *t) {
  if(!t)
    return;
  sq_free_secret(t->value);
  t->value = NULL;
  t->expires_on = 0;
}

sq_code sq_azure_cred_new(const sq_azure_cloud *cloud, const sq_azure_cred_config *cfg,
                          const sq_azure_pipeline *pipe, sq_azure_cred **out, sq_err *err) {
  *out = NULL;
  if(!pipe || !pipe->http)
    return sq_err_set(err, SQ_EINVAL, "credential: no HTTP client");
  if(cfg->kind < SQ_AZCRED_SECRET || cfg->kind > SQ_AZCRED_IMDS)
    return sq_err_set(err, SQ_EINVAL, "credential: no credential kind chosen");
  if(cfg->kind != SQ_AZCRED_IMDS && (!sq_azure_tenant_valid(cfg->tenant_id) || !cfg->client_id[0]))
    return sq_err_set(err, SQ_EINVAL, "credential %s needs a tenant id and a client id",
                      sq_azure_cred_kind_name(cfg->kind));
  if(cfg->kind == SQ_AZCRED_SECRET && (!cfg->client_secret || !*cfg->client_secret))
    return sq_err_set(err, SQ_EINVAL, "credential client-secret: empty secret");
  sq_azure_cred *c = calloc(1, sizeof *c);
  if(!c)
    return sq_err_set(err, SQ_ENOMEM, "out of memory");
  c->cloud = *cloud;
  c->cfg = *cfg;
  c->cfg.client_secret = cfg->client_secret ? strdup(cfg->client_secret) : NULL;
  c->cfg.cert_password = cfg->cert_password ? strdup(cfg->cert_password) : NULL;
  c->pipe = *pipe;
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cv, NULL);
  if((cfg->client_secret && !c->cfg.client_secret) || (cfg->cert_password && !c->cfg.cert_password)) {
    sq_azure_cred_free(c);
    return sq_err_set(err, SQ_ENOMEM, "out of memory");
  }
  sq_code rc = SQ_OK;
  if(!c->cfg.authority_host[0])
    snprintf(c->cfg.authority_host, sizeof c->cfg.authority_host, "%s", cloud->authority_host);
  if(c->cfg.kind != SQ_AZCRED_IMDS) {
    char scheme[16], host[256];
    int port;
    if(sq_azure_url_split(c->cfg.authority_host, scheme, sizeof scheme, host, sizeof host, &port) ||
       strcmp(scheme, "https"))
      rc = sq_err_set(err, SQ_EINVAL, "credential: authority host \"%s\" must be an https URL",
                      c->cfg.authority_host);
  } else {
    if(!c->cfg.imds_origin[0])
      snprintf(c->cfg.imds_origin, sizeof c->cfg.imds_origin, "%s", IMDS_DEFAULT_ORIGIN);
    char scheme[16], host[256];
    int port;
    if(sq_azure_url_split(c->cfg.imds_origin, scheme, sizeof scheme, host, sizeof host, &port) ||
       (strcmp(scheme, "https") && strcmp(scheme, "http")))
      rc = sq_err_set(err, SQ_EINVAL, "credential: IMDS endpoint \"%s\" is not an http(s) URL",
                      c->cfg.imds_origin);
  }
  if(!rc && c->cfg.kind == SQ_AZCRED_CERT) {
    /* fail at start, not at the first reconcile, if the PEM is unusable */
    sq_buf pem;
    sq_buf_init(&pem, 1024 * 1024);
    char *jwt = NULL;
    rc = sq_buf_read_file(&pem, c->cfg.cert_path, err);
    if(!rc)
      rc = sq_azure_client_assertion(pem.ptr, pem.len, c->cfg.cert_password, c->cfg.client_id,
                                     "check", sq_wall_s(), &jwt, err);
    if(rc)
      sq_err_prefix(err, "credential client-certificate (%s)", c->cfg.cert_path);
    sq_free_secret(jwt);
    sq_buf_free_wipe(&pem);
  }
  if(rc) {
    sq_azure_cred_free(c);
    return rc;
  }
  SQ_INFO(LOGGER, "Azure credential: %s%s%s", sq_azure_cred_kind_name(c->cfg.kind),
          c->cfg.client_id[0] ? " client " : "", c->cfg.client_id);
  *out = c;
  return SQ_OK;
}

void sq_azure_cred_free(sq_azure_cred *c) {
  if(!c)
    return;
  tok_entry *e = c->entries;
  while(e) {
    tok_entry *next = e->next;
    sq_free_secret(e->token);
    free(e);
    e = next;
  }
  sq_azure_cred_config_clear(&c->cfg);
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->cv);
  sq_wipe(c, sizeof *c);
  free(c);
}

static int64_t now_mono(const sq_azure_cred *c) {
  const sq_clock *k = c->pipe.clock ? c->pipe.clock : sq_clock_real();
  return k->mono_ms(k->ud);
}
static int64_t now_wall(const sq_azure_cred *c) {
  const sq_clock *k = c->pipe.clock ? c->pipe.clock : sq_clock_real();
  return k->wall_s(k->ud);
}

/* Appends "&name=value" (or "name=value" first) with value percent-encoded. */
static sq_code form_add(sq_buf *b, const char *name, const char *value) {
  sq_code rc;
  if((rc = sq_buf_addf(b, "%s%s=", b->len ? "&" : "", name)))
    return rc;
  return sq_url_escape(value, b);
}

/* Token endpoint exchange (client secret, certificate assertion, federated token). */
static sq_code fetch_entra(sq_azure_cred *c, const char *tenant, const char *scope, char **tok,
                           int64_t *life, sq_err *err) {
  sq_buf url, form, file;
  sq_buf_init(&url, 4096);
  sq_buf_init(&form, 256 * 1024);
  sq_buf_init(&file, 128 * 1024);
  char *assertion = NULL;
  sq_http_resp resp;
  sq_http_resp_init(&resp);
  sq_code rc = sq_buf_addf(&url, "%s/%s/oauth2/v2.0/token", c->cfg.authority_host, tenant);
  if(rc) {
    rc = sq_err_set(err, rc, "token URL too long");
    goto out;
  }
  if(c->cfg.kind == SQ_AZCRED_WORKLOAD) {
    /* re-read every time: the kubelet rotates the projected token */
    rc = sq_buf_read_file(&file, c->cfg.federated_token_file, err);
    if(rc) {
      sq_err_prefix(err, "workload identity: federated token file");
      goto out;
    }
    size_t n = file.len;
    while(n && isspace((unsigned char)file.ptr[n - 1]))
      file.ptr[--n] = '\0';
    file.len = n;
    if(!n) {
      rc = sq_err_set(err, SQ_EINVAL, "workload identity: federated token file %s is empty",
                      c->cfg.federated_token_file);
      goto out;
    }
    assertion = strdup(file.ptr);
  } else if(c->cfg.kind == SQ_AZCRED_CERT) {
    rc = sq_buf_read_file(&file, c->cfg.cert_path, err);
    if(!rc)
      rc = sq_azure_client_assertion(file.ptr, file.len, c->cfg.cert_password, c->cfg.client_id,
                                     url.ptr, now_wall(c), &assertion, err);
    if(rc) {
      sq_err_prefix(err, "client certificate %s", c->cfg.cert_path);
      goto out;
    }
  }
  if(c->cfg.kind != SQ_AZCRED_SECRET && !assertion) {
    rc = sq_err_set(err, SQ_ENOMEM, "out of memory");
    goto out;
  }
  if((rc = form_add(&form, "client_id", c->cfg.client_id)) || (rc = form_add(&form, "scope", scope)) ||
     (rc = form_add(&form, "grant_type", "client_credentials")))
    goto toolong;
  if(c->cfg.kind == SQ_AZCRED_SECRET) {
    if((rc = form_add(&form, "client_secret", c->cfg.client_secret)))
      goto toolong;
  } else if((rc = form_add(&form, "client_assertion_type",
                           "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")) ||
            (rc = form_add(&form, "client_assertion", assertion))) {
    goto toolong;
  }
  sq_http_req req = {.method = "POST",
                     .url = url.ptr,
                     .content_type = "application/x-www-form-urlencoded",
                     .accept = "application/json",
                     .body = form.ptr,
                     .body_len = form.len,
                     .max_body = 256 * 1024};
  sq_azure_exec_info info = {"entra", "token", "", 1, 0};
  atomic_fetch_add(&c->exchanges, 1);
  rc = sq_azure_exec(&c->pipe, &info, NULL, &req, &resp, NULL, err);
  if(rc)
    goto out;
  if(resp.status != 200) {
    char what[200];
    snprintf(what, sizeof what, "token request (%s, tenant %s)", sq_azure_cred_kind_name(c->cfg.kind),
             tenant);
    rc = sq_azure_error_from_resp(&resp, what, err);
    goto out;
  }
  rc = sq_azure_parse_token_response(resp.body.ptr, resp.body.len, now_wall(c), tok, life, err);
  goto out;
toolong:
  rc = sq_err_set(err, rc, "token request too large");
out:
  sq_http_resp_free(&resp);
  sq_free_secret(assertion);
  sq_buf_free(&url);
  sq_buf_free_wipe(&form);
  sq_buf_free_wipe(&file);
  return rc;
}

/* Managed identity through IMDS (azure-api.md §6.4). */
static sq_code fetch_imds(sq_azure_cred *c, const char *scope, char **tok, int64_t *life,
                          sq_err *err) {
  sq_buf url;
  sq_buf_init(&url, 4096);
  sq_http_resp resp;
  sq_http_resp_init(&resp);
  char resource[512];
  size_t n = strlen(scope);
  static const char suffix[] = "/.default";
  if(n >= sizeof resource)
    return sq_err_set(err, SQ_EINVAL, "scope too long");
  memcpy(resource, scope, n + 1);
  if(n > sizeof suffix - 1 && !strcmp(resource + n - (sizeof suffix - 1), suffix))
    resource[n - (sizeof suffix - 1)] = '\0';
  sq_code rc = sq_buf_addf(&url, "%s/metadata/identity/oauth2/token?api-version=2018-02-01&resource=",
                           c->cfg.imds_origin);
  if(!rc)
    rc = sq_url_escape(resource, &url);
  if(!rc && c->cfg.client_id[0]) {
    rc = sq_buf_adds(&url, "&client_id=");
    if(!rc)
      rc = sq_url_escape(c->cfg.client_id, &url);
  }
  if(rc) {
    sq_buf_free(&url);
    return sq_err_set(err, rc, "IMDS URL too long");
  }
  static const char *const hdrs[] = {"Metadata: true", NULL};
  sq_http_req req = {.method = "GET", .url = url.ptr, .headers = hdrs, .max_body = 256 * 1024};
  sq_azure_exec_info info = {"imds", "token", "", 1, 1};
  atomic_fetch_add(&c->exchanges, 1);
  rc = sq_azure_exec(&c->pipe, &info, NULL, &req, &resp, NULL, err);
  if(!rc) {
    if(resp.status != 200)
      rc = sq_azure_error_from_resp(&resp, "managed identity token (IMDS)", err);
    else
      rc = sq_azure_parse_token_response(resp.body.ptr, resp.body.len, now_wall(c), tok, life, err);
  }
  sq_http_resp_free(&resp);
  sq_buf_free(&url);
  return rc;
}

static tok_entry *find_entry(sq_azure_cred *c, const char *tenant, const char *scope) {
  for(tok_entry *e = c->entries; e; e = e->next)
    if(!strcasecmp(e->tenant, tenant) && !strcmp(e->scope, scope))
      return e;
  return NULL;
}

/* Called locked. Evicts the entry expiring first (not being refreshed) when full. */
static tok_entry *get_entry(sq_azure_cred *c, const char *tenant, const char *scope) {
  tok_entry *e = find_entry(c, tenant, scope);
  if(e)
    return e;
  if(c->n_entries >= MAX_CACHE_ENTRIES) {
    tok_entry **victim = NULL;
    for(tok_entry **pp = &c->entries; *pp; pp = &(*pp)->next)
      if(!(*pp)->refreshing && (!victim || (*pp)->usable_mono < (*victim)->usable_mono))
        victim = pp;
    if(!victim)
      return NULL;
    tok_entry *v = *victim;
    *victim = v->next;
    sq_free_secret(v->token);
    free(v);
    c->n_entries--;
  }
  e = calloc(1, sizeof *e);
  if(!e)
    return NULL;
  snprintf(e->tenant, sizeof e->tenant, "%s", tenant);
  snprintf(e->scope, sizeof e->scope, "%s", scope);
  e->next = c->entries;
  c->entries = e;
  c->n_entries++;
  return e;
}

static sq_code hand_out(const tok_entry *e, sq_azure_token *out, sq_err *err) {
  out->value = strdup(e->token);
  out->expires_on = e->expires_on;
  if(!out->value)
    return sq_err_set(err, SQ_ENOMEM, "out of memory");
  return SQ_OK;
}

sq_code sq_azure_cred_token(sq_azure_cred *c, const char *tenant, const char *scope,
                            sq_azure_token *out, sq_err *err) {
  out->value = NULL;
  out->expires_on = 0;
  if(!scope || !*scope || strlen(scope) >= sizeof((tok_entry *)0)->scope)
    return sq_err_set(err, SQ_EINVAL, "token request: bad scope");
  if(!tenant || !*tenant || c->cfg.kind == SQ_AZCRED_IMDS)
    tenant = c->cfg.tenant_id;
  if(c->cfg.kind != SQ_AZCRED_IMDS) {
    if(!sq_azure_tenant_valid(tenant))
      return sq_err_set(err, SQ_EINVAL, "token request: invalid tenant id");
    if(!sq_azure_tenant_allowed(c->cfg.tenant_id, c->cfg.additional_tenants, tenant)) {
      sq_err_set(err, SQ_EFORBIDDEN,
                 "token request for tenant %s refused: not the credential's tenant and not in "
                 "AZURE_ADDITIONALLY_ALLOWED_TENANTS",
                 tenant);
      if(err)
        snprintf(err->reason, sizeof err->reason, "TenantNotAllowed");
      return SQ_EFORBIDDEN;
    }
  }
  pthread_mutex_lock(&c->mu);
  tok_entry *e = get_entry(c, tenant, scope);
  if(!e) {
    pthread_mutex_unlock(&c->mu);
    return sq_err_set(err, SQ_ENOMEM, "token cache full");
  }
  int64_t wait_until = now_mono(c) + WAIT_FOR_REFRESH_MS;
  unsigned seen_gen = e->gen;
  int waited = 0;
  for(;;) {
    int64_t now = now_mono(c);
    int valid = e->token && now < e->usable_mono;
    if(valid && (now < e->refresh_mono || e->refreshing || now < e->retry_mono)) {
      sq_code rc = hand_out(e, out, err);
      pthread_mutex_unlock(&c->mu);
      return rc;
    }
    if(!valid && !e->refreshing && e->last_err.code &&
       ((waited && e->gen != seen_gen) || now < e->retry_mono)) {
      /* the refresh we waited for (or one a moment ago) failed: report it
       * rather than send Entra a stampede of identical failing requests */
      if(err)
        *err = e->last_err;
      sq_code rc = e->last_err.code;
      pthread_mutex_unlock(&c->mu);
      return rc;
    }
    if(!e->refreshing)
      break;
    if(now >= wait_until) {
      pthread_mutex_unlock(&c->mu);
      return sq_err_set(err, SQ_ETIMEOUT, "timed out waiting for a token refresh");
    }
    struct timespec ts;
    sq_abstime_in(&ts, 1000);
    waited = 1;
    pthread_cond_timedwait(&c->cv, &c->mu, &ts);
  }
  e->refreshing = 1;
  pthread_mutex_unlock(&c->mu);

  char *tok = NULL;
  int64_t life_s = 0;
  sq_err local;
  sq_err_clear(&local);
  int64_t t0 = now_mono(c);
  sq_code rc = c->cfg.kind == SQ_AZCRED_IMDS ? fetch_imds(c, scope, &tok, &life_s, &local)
                                             : fetch_entra(c, tenant, scope, &tok, &life_s, &local);

  pthread_mutex_lock(&c->mu);
  e->refreshing = 0;
  e->gen++;
  int64_t now = now_mono(c);
  if(!rc) {
    int64_t life_ms = life_s * 1000;
    int64_t skew = life_ms / 10 < 30000 ? life_ms / 10 : 30000;
    sq_free_secret(e->token);
    e->token = tok;
    tok = NULL;
    e->expires_on = now_wall(c) + life_s;
    e->usable_mono = t0 + life_ms - skew;
    e->refresh_mono = t0 + sq_azure_refresh_after_ms(life_ms);
    e->retry_mono = 0;
    sq_err_clear(&e->last_err);
    SQ_DEBUG(LOGGER, "token for %s (tenant %s) valid %llds", scope, tenant[0] ? tenant : "-",
             (long long)life_s);
    rc = hand_out(e, out, err);
  } else {
    e->last_err = local;
    e->retry_mono = now + FAILED_REFRESH_PAUSE_MS;
    if(e->token && now < e->usable_mono) {
      SQ_WARN(LOGGER, "token refresh failed, using the current token until it expires: %s",
              local.message);
      rc = hand_out(e, out, err);
    } else if(err) {
      *err = local;
    }
  }
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
  sq_free_secret(tok);
  return rc;
}

void sq_azure_cred_invalidate(sq_azure_cred *c, const char *tenant, const char *scope,
                              const char *rejected) {
  if(!tenant || !*tenant || c->cfg.kind == SQ_AZCRED_IMDS)
    tenant = c->cfg.tenant_id;
  pthread_mutex_lock(&c->mu);
  tok_entry *e = find_entry(c, tenant, scope);
  if(e && e->token && rejected && !strcmp(e->token, rejected)) {
    sq_free_secret(e->token);
    e->token = NULL;
    e->usable_mono = e->refresh_mono = e->retry_mono = 0;
  }
  pthread_mutex_unlock(&c->mu);
}
