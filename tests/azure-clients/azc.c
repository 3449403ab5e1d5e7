/* azc.c — emulator harness for the Azure client integration tests; see azc.h. */
#include "azc.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sqltde/buf.h"
#include "sqltde/clock.h"
#include "sqltde/codec.h"
#include "sqltde/jsonx.h"
#include "sqltde/log.h"

int azc_write_file(const char *path, const char *content) {
  char tmp[600];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if(!f)
    return -1;
  int ok = fputs(content, f) >= 0;
  ok = fclose(f) == 0 && ok;
  if(!ok || rename(tmp, path))
    return -1;
  return 0;
}

static int copy_file(const char *from, const char *to) {
  sq_buf b;
  sq_buf_init(&b, 1 << 20);
  int rc = sq_buf_read_file(&b, from, NULL) ? -1 : azc_write_file(to, b.ptr ? b.ptr : "");
  sq_buf_free(&b);
  return rc;
}

static char *bio_string(BIO *b) {
  char *data;
  long len = BIO_get_mem_data(b, &data);
  return sq_memdup_str(data, (size_t)len);
}

/* operator.pem: a self-signed certificate and its private key; issuer keys */
static int make_creds(azc *a) {
  char dir[300];
  snprintf(dir, sizeof dir, "%s/creds", a->dir);
  if(mkdir(dir, 0700))
    return -1;
  EVP_PKEY *k = EVP_RSA_gen(2048);
  X509 *x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400 * 30);
  X509_set_pubkey(x, k);
  X509_NAME *n = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"sqltde-operator", -1, -1, 0);
  X509_set_issuer_name(x, n);
  X509_sign(x, k, EVP_sha256());
  BIO *b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, x);
  PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
  char *pem = bio_string(b);
  BIO_free(b);
  snprintf(a->cert_pem_path, sizeof a->cert_pem_path, "%s/creds/operator.pem", a->dir);
  int rc = azc_write_file(a->cert_pem_path, pem);
  sq_free_secret(pem);
  X509_free(x);
  EVP_PKEY_free(k);

  EVP_PKEY *ik = EVP_RSA_gen(2048);
  b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, ik, NULL, NULL, 0, NULL, NULL);
  char *priv = bio_string(b);
  BIO_free(b);
  b = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(b, ik);
  char *pub = bio_string(b);
  BIO_free(b);
  snprintf(a->issuer_key_path, sizeof a->issuer_key_path, "%s/creds/issuer.key", a->dir);
  char pubpath[340];
  snprintf(pubpath, sizeof pubpath, "%s/creds/issuer.pub.pem", a->dir);
  rc = rc || azc_write_file(a->issuer_key_path, priv) || azc_write_file(pubpath, pub);
  sq_free_secret(priv);
  free(pub);
  EVP_PKEY_free(ik);
  return rc;
}

static void echo_log(azc *a) {
  if(a->saved_stderr < 0)
    return;
  fflush(stderr);
  dup2(a->saved_stderr, STDERR_FILENO);
  close(a->saved_stderr);
  a->saved_stderr = -1;
  sq_buf b;
  sq_buf_init(&b, 64u << 20);
  if(!sq_buf_read_file(&b, a->client_log, NULL) && b.len) {
    ssize_t w = write(STDERR_FILENO, b.ptr, b.len);
    (void)w;
  }
  sq_buf_free(&b);
}

int azc_start(azc *a) {
  memset(a, 0, sizeof *a);
  a->saved_stderr = -1;
  a->pid = -1;
  const char *emu = getenv("SQLTDE_EMULATOR"), *src = getenv("SQLTDE_AZC_SRC");
  if(!emu || !src) {
    fprintf(stderr, "azc: SQLTDE_EMULATOR and SQLTDE_AZC_SRC must be set (run through ctest)\n");
    return -1;
  }
  snprintf(a->dir, sizeof a->dir, "%s/sqltde-azc-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if(!mkdtemp(a->dir)) {
    perror("azc: mkdtemp");
    return -1;
  }
  char seed_from[400], seed[400], state[400], logp[400];
  snprintf(seed_from, sizeof seed_from, "%s/seed.yaml", src);
  snprintf(seed, sizeof seed, "%s/seed.yaml", a->dir);
  snprintf(state, sizeof state, "%s/state", a->dir);
  snprintf(logp, sizeof logp, "%s/emulator.log", a->dir);
  if(make_creds(a) || copy_file(seed_from, seed) || mkdir(state, 0700)) {
    fprintf(stderr, "azc: cannot prepare %s\n", a->dir);
    return -1;
  }
  /* from here on our own log lines land in client.log (echoed at the end) */
  snprintf(a->client_log, sizeof a->client_log, "%s/client.log", a->dir);
  int lfd = open(a->client_log, O_WRONLY | O_CREAT | O_APPEND, 0600);
  if(lfd < 0)
    return -1;
  fflush(stderr);
  a->saved_stderr = dup(STDERR_FILENO);
  dup2(lfd, STDERR_FILENO);
  close(lfd);
  sq_log_set_level(SQ_LOG_DEBUG); /* the most verbose the clients get */

  a->pid = fork();
  if(a->pid == 0) {
    int fd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if(fd >= 0) {
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
    }
    execl(emu, emu, "--state-dir", state, "--seed", seed, "--port", "0", "--log-level", "info",
          (char *)NULL);
    _exit(127);
  }
  char ready[420], portf[420];
  snprintf(ready, sizeof ready, "%s/ready", state);
  snprintf(portf, sizeof portf, "%s/port", state);
  for(int i = 0; i < 1200; i++) {
    if(!access(ready, F_OK))
      break;
    int st;
    if(waitpid(a->pid, &st, WNOHANG) == a->pid) {
      a->pid = -1;
      fprintf(stderr, "azc: the emulator exited during start; see %s\n", logp);
      echo_log(a);
      sq_buf b;
      sq_buf_init(&b, 1 << 20);
      if(!sq_buf_read_file(&b, logp, NULL) && b.len)
        fprintf(stderr, "%s\n", b.ptr);
      sq_buf_free(&b);
      return -1;
    }
    sq_sleep_ms(50);
  }
  sq_buf pb;
  sq_buf_init(&pb, 64);
  if(sq_buf_read_file(&pb, portf, NULL) || !(a->port = atoi(pb.ptr ? pb.ptr : "0"))) {
    sq_buf_free(&pb);
    fprintf(stderr, "azc: the emulator did not become ready\n");
    return -1;
  }
  sq_buf_free(&pb);

  /* the emulator is just another cloud, described in a cloud file */
  char cloud_yaml[1024], cloud_path[400];
  snprintf(cloud_yaml, sizeof cloud_yaml,
           "name: sqltde-emulator\n"
           "authorityHost: https://login.localhost:%d/\n"
           "resourceManagerEndpoint: https://management.localhost:%d\n"
           "resourceManagerAudience: https://management.localhost\n"
           "keyVaultDNSSuffix: vault.localhost\n"
           "keyVaultAudience: https://vault.localhost\n"
           "caFile: state/ca.pem\n",
           a->port, a->port);
  snprintf(cloud_path, sizeof cloud_path, "%s/cloud.yaml", a->dir);
  sq_err e;
  if(azc_write_file(cloud_path, cloud_yaml) || sq_azure_cloud_load_file(cloud_path, &a->cloud, &e)) {
    fprintf(stderr, "azc: cloud file: %s\n", e.message);
    return -1;
  }
  snprintf(a->ca_file, sizeof a->ca_file, "%s", a->cloud.ca_file);
  sq_http_opts ho = {.ca_file = a->cloud.ca_file, .timeout_ms = 30000};
  if(sq_http_new(&ho, &a->http, &e)) {
    fprintf(stderr, "azc: http: %s\n", e.message);
    return -1;
  }
  snprintf(a->vault_east, sizeof a->vault_east, "https://azc-east.vault.localhost:%d", a->port);
  snprintf(a->vault_west, sizeof a->vault_west, "https://azc-west.vault.localhost:%d", a->port);
  snprintf(a->vault_eu, sizeof a->vault_eu, "https://azc-eu.vault.localhost:%d", a->port);
  snprintf(a->vault_fabrikam, sizeof a->vault_fabrikam, "https://azc-fabrikam.vault.localhost:%d", a->port);
  return 0;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(p);
}

void azc_stop(azc *a) {
  if(a->pid > 0) {
    kill(a->pid, SIGTERM);
    int st;
    for(int i = 0; i < 100 && waitpid(a->pid, &st, WNOHANG) != a->pid; i++)
      sq_sleep_ms(50);
    if(kill(a->pid, 0) == 0) {
      kill(a->pid, SIGKILL);
      waitpid(a->pid, &st, 0);
    }
    a->pid = -1;
  }
  sq_http_free(a->http);
  a->http = NULL;
  echo_log(a);
  if(a->dir[0] && !getenv("SQLTDE_AZC_KEEP"))
    nftw(a->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

void azc_pipeline(const azc *a, sq_azure_pipeline *p, int64_t base_ms) {
  sq_azure_pipeline_defaults(p);
  p->http = a->http;
  p->backoff_base_ms = base_ms;
  p->backoff_cap_ms = base_ms * 8;
}

long azc_control(azc *a, const char *method, const char *path, const json_t *body, json_t **out) {
  char url[600];
  snprintf(url, sizeof url, "https://control.localhost:%d%s", a->port, path);
  char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
  sq_http_req req = {.method = method, .url = url, .content_type = s ? "application/json" : NULL,
                     .body = s, .body_len = s ? strlen(s) : 0};
  sq_http_resp resp;
  sq_http_resp_init(&resp);
  sq_err e;
  long st = -1;
  if(out)
    *out = NULL;
  if(!sq_http_do(a->http, &req, &resp, &e)) {
    st = resp.status;
    if(out && resp.body.len)
      *out = json_loadb(resp.body.ptr, resp.body.len, 0, NULL);
  } else {
    fprintf(stderr, "azc: control %s %s: %s\n", method, path, e.message);
  }
  free(s);
  sq_http_resp_free(&resp);
  return st;
}

int azc_fault(azc *a, json_t *spec, char *id) {
  json_t *out = NULL;
  long st = azc_control(a, "POST", "/_emulator/faults", spec, &out);
  json_decref(spec);
  if(st != 201) {
    fprintf(stderr, "azc: fault not added (HTTP %ld)\n", st);
    json_decref(out);
    return -1;
  }
  if(id)
    snprintf(id, 64, "%s", sq_json_str(out, "id") ? sq_json_str(out, "id") : "");
  json_decref(out);
  return 0;
}

int azc_faults_clear(azc *a) { return azc_control(a, "DELETE", "/_emulator/faults", NULL, NULL) == 204 ? 0 : -1; }

int azc_clock_advance(azc *a, int64_t ms) {
  json_t *b = json_pack("{s:I}", "ms", (json_int_t)ms);
  long st = azc_control(a, "POST", "/_emulator/clock/advance", b, NULL);
  json_decref(b);
  return st == 200 ? 0 : -1;
}

int64_t azc_clock_now_ms(azc *a) {
  json_t *out = NULL;
  int64_t v = -1;
  if(azc_control(a, "GET", "/_emulator/clock", NULL, &out) == 200)
    v = sq_json_int(out, "nowMs", -1);
  json_decref(out);
  return v;
}

int azc_settings(azc *a, json_t *patch) {
  long st = azc_control(a, "PATCH", "/_emulator/settings", patch, NULL);
  json_decref(patch);
  return st == 200 ? 0 : -1;
}

json_t *azc_requests(azc *a, long long since, const char *host, const char *prefix, long long *last) {
  char path[800];
  sq_buf q;
  sq_buf_init(&q, 700);
  sq_buf_addf(&q, "since=%lld&limit=10000", since);
  if(host && *host) {
    sq_buf_adds(&q, "&host=");
    sq_url_escape(host, &q);
  }
  if(prefix && *prefix) {
    sq_buf_adds(&q, "&pathPrefix=");
    sq_url_escape(prefix, &q);
  }
  snprintf(path, sizeof path, "/_emulator/requests?%s", q.ptr);
  sq_buf_free(&q);
  json_t *out = NULL;
  if(azc_control(a, "GET", path, NULL, &out) != 200) {
    json_decref(out);
    return NULL;
  }
  if(last)
    *last = sq_json_int(out, "last", 0);
  json_t *v = json_incref(json_object_get(out, "value"));
  json_decref(out);
  return v;
}

long long azc_requests_last(azc *a) {
  long long last = 0;
  long long since = 0;
  for(;;) { /* page through to the end */
    json_t *v = azc_requests(a, since, NULL, NULL, &last);
    size_t n = json_array_size(v);
    json_decref(v);
    if(n < 10000)
      return last;
    since = last;
  }
}

static int b64url(sq_buf *out, const void *d, size_t n) { return sq_b64_encode(d, n, 1, out) ? -1 : 0; }

char *azc_federated_token(azc *a, int64_t nbf, int64_t exp) {
  sq_buf key, jwt;
  sq_buf_init(&key, 1 << 16);
  sq_buf_init(&jwt, 1 << 16);
  char *out = NULL;
  if(sq_buf_read_file(&key, a->issuer_key_path, NULL))
    goto done;
  BIO *b = BIO_new_mem_buf(key.ptr, (int)key.len);
  EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
  BIO_free(b);
  unsigned char r[8];
  RAND_bytes(r, sizeof r);
  char jti[32];
  snprintf(jti, sizeof jti, "%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
  json_t *h = json_pack("{s:s,s:s,s:s}", "alg", "RS256", "kid", "azc-issuer-1", "typ", "JWT");
  json_t *c = json_pack("{s:[s],s:I,s:I,s:s,s:I,s:s,s:s}", "aud", "api://AzureADTokenExchange", "exp",
                        (json_int_t)exp, "iat", (json_int_t)nbf, "iss", AZC_ISSUER, "nbf", (json_int_t)nbf,
                        "sub", AZC_SA_SUBJECT, "jti", jti);
  char *hs = json_dumps(h, JSON_COMPACT), *cs = json_dumps(c, JSON_COMPACT);
  b64url(&jwt, hs, strlen(hs));
  sq_buf_add(&jwt, ".", 1);
  b64url(&jwt, cs, strlen(cs));
  size_t siglen = 0;
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  unsigned char sig[512];
  if(k && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k) == 1 &&
     EVP_DigestSign(md, NULL, &siglen, (unsigned char *)jwt.ptr, jwt.len) == 1 && siglen <= sizeof sig &&
     EVP_DigestSign(md, sig, &siglen, (unsigned char *)jwt.ptr, jwt.len) == 1) {
    sq_buf_add(&jwt, ".", 1);
    b64url(&jwt, sig, siglen);
    out = strdup(jwt.ptr);
  }
  EVP_MD_CTX_free(md);
  EVP_PKEY_free(k);
  free(hs);
  free(cs);
  json_decref(h);
  json_decref(c);
done:
  sq_buf_free_wipe(&key);
  sq_buf_free_wipe(&jwt);
  return out;
}

int azc_log_contains(azc *a, const char *needle) {
  fflush(stderr);
  sq_buf b;
  sq_buf_init(&b, 256u << 20);
  int found = 0;
  if(!sq_buf_read_file(&b, a->client_log, NULL) && b.ptr && needle && *needle)
    found = memmem(b.ptr, b.len, needle, strlen(needle)) != NULL;
  sq_buf_free(&b);
  return found;
}

const char *azc_env(void *ud, const char *name) {
  const char *const *kv = ud;
  for(int i = 0; kv[i]; i += 2)
    if(!strcmp(kv[i], name))
      return kv[i + 1];
  return NULL;
}

static azc *g_setup;
static sq_azure_cred *g_cred;

static void teardown_operator(void) {
  sq_azure_cred_free(g_cred);
  azc_stop(g_setup);
}

void azc_setup_operator(azc *a, sq_azure_pipeline *p, sq_azure_cred **cred) {
  if(azc_start(a)) {
    azc_stop(a);
    exit(1);
  }
  g_setup = a;
  const char *env[] = {"AZURE_TENANT_ID", AZC_TENANT, "AZURE_CLIENT_ID", AZC_OPERATOR_CLIENT,
                       "AZURE_CLIENT_SECRET", AZC_OPERATOR_SECRET, NULL};
  sq_azure_cred_config cfg;
  sq_err e;
  azc_pipeline(a, p, 100);
  if(sq_azure_cred_config_from_env(azc_env, (void *)env, &cfg, &e) ||
     sq_azure_cred_new(&a->cloud, &cfg, p, &g_cred, &e)) {
    fprintf(stderr, "credential: %s\n", e.message);
    exit(1);
  }
  sq_azure_cred_config_clear(&cfg);
  *cred = g_cred;
  atexit(teardown_operator);
}

static sq_arm *g_arm;
static sq_kv *g_kv;

static void teardown_clients(void) {
  sq_arm_free(g_arm);
  sq_kv_free(g_kv);
  g_arm = NULL;
  g_kv = NULL;
}

void azc_operator_clients(azc *a, sq_azure_cred **cred, sq_arm **arm, sq_kv **kv) {
  sq_azure_pipeline p;
  sq_err e;
  azc_setup_operator(a, &p, cred);
  atexit(teardown_clients); /* registered after the credential's: runs first */
  sq_arm_opts o = {.cloud = &a->cloud, .cred = *cred, .pipeline = p, .lro_timeout_ms = 120000};
  sq_kv_opts ko = {.cloud = &a->cloud, .cred = *cred, .pipeline = p};
  if((arm && sq_arm_new(&o, &g_arm, &e)) || (kv && sq_kv_new(&ko, &g_kv, &e))) {
    fprintf(stderr, "clients: %s\n", e.message);
    exit(1);
  }
  if(arm)
    *arm = g_arm;
  if(kv)
    *kv = g_kv;
}

void azc_make_key(sq_kv *kv, const char *vault, const char *name, char kid[SQ_KV_KID_MAX]) {
  sq_kv_create_params p = {"RSA", 2048, 0, SQ_KV_ATTRS_UNSET, NULL};
  sq_kv_key k;
  sq_kv_key_init(&k);
  sq_err e;
  if(sq_kv_create(kv, vault, name, &p, &k, &e)) {
    fprintf(stderr, "key %s: %s\n", name, e.message);
    exit(1);
  }
  snprintf(kid, SQ_KV_KID_MAX, "%s", k.kid);
  sq_kv_key_free(&k);
}
