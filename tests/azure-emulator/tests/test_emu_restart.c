/* test_emu_restart.c — the real process over real HTTPS (sq_http, libcurl
 * resolving *.localhost): start the emulator, get a token, create a key, wrap
 * a secret, move the virtual clock; stop it; start it again on the same state
 * directory and find the same CA, key, token validity, unwrap result and
 * clock. */
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "emu_harness.h"
#include "sqltde/http.h"

static char dir[64];
static pid_t pid;
static int port;

static int start(void) {
  const char *bin = getenv("SQLTDE_EMULATOR"), *src = getenv("SQLTDE_EMU_SRC");
  if(!bin || !src)
    return -1;
  char seed[1024], ready[128], log[128];
  snprintf(seed, sizeof seed, "%s/seeds/small.yaml", src);
  snprintf(ready, sizeof ready, "%s/ready", dir);
  snprintf(log, sizeof log, "%s.log", dir);
  pid = fork();
  if(pid == 0) {
    FILE *f = freopen(log, "a", stderr);
    (void)f;
    execl(bin, bin, "--state-dir", dir, "--seed", seed, "--port", "0", (char *)NULL);
    _exit(127);
  }
  for(int i = 0; i < 600; i++) { /* generous: key generation under ASan */
    struct stat st;
    if(!stat(ready, &st)) {
      char pf[128];
      snprintf(pf, sizeof pf, "%s/port", dir);
      FILE *f = fopen(pf, "r");
      if(f && fscanf(f, "%d", &port) == 1) {
        fclose(f);
        return 0;
      }
      if(f)
        fclose(f);
    }
    if(waitpid(pid, NULL, WNOHANG) == pid)
      return -1;
    sq_sleep_ms(100);
  }
  return -1;
}

static int stop(void) {
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static sq_http *client(void) {
  char ca[128];
  snprintf(ca, sizeof ca, "%s/ca.pem", dir);
  sq_http_opts o = {.ca_file = ca};
  sq_http *h = NULL;
  return sq_http_new(&o, &h, NULL) ? NULL : h;
}

static json_t *call(sq_http *h, const char *method, const char *url, const char *bearer, const char *ctype,
                    const char *body, long *status) {
  sq_http_req rq = {.method = method, .url = url, .bearer = bearer, .content_type = ctype, .body = body,
                    .body_len = body ? strlen(body) : 0};
  sq_http_resp rs;
  sq_http_resp_init(&rs);
  sq_err err;
  json_t *out = NULL;
  if(sq_http_do(h, &rq, &rs, &err) == SQ_OK) {
    *status = rs.status;
    out = rs.body.len ? json_loadb(rs.body.ptr, rs.body.len, 0, NULL) : NULL;
  } else {
    fprintf(stderr, "%s %s: %s\n", method, url, err.message);
    *status = 0;
  }
  sq_http_resp_free(&rs);
  return out;
}

static char *slurp(const char *name) {
  char p[128];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  sq_buf b;
  sq_buf_init(&b, 1 << 20);
  if(sq_buf_read_file(&b, p, NULL)) {
    sq_buf_free(&b);
    return NULL;
  }
  return sq_buf_detach(&b);
}

TEST(state_survives_restart) {
  sq_http_global_init();
  snprintf(dir, sizeof dir, "/tmp/sqltde-emu-restart.XXXXXX");
  ASSERT_NOT_NULL(mkdtemp(dir));
  ASSERT_OK(start());
  char *ca1 = slurp("ca.pem");
  ASSERT_NOT_NULL(ca1);
  sq_http *h = client();
  ASSERT_NOT_NULL(h);
  char url[512];
  long st;
  snprintf(url, sizeof url, "https://login.localhost:%d/" T_TENANT "/oauth2/v2.0/token", port);
  json_t *tok = call(h, "POST", url, NULL, "application/x-www-form-urlencoded",
                     "grant_type=client_credentials&client_id=" T_OP_CID
                     "&client_secret=operator-test-secret&scope=https://vault.azure.net/.default", &st);
  ASSERT_EQ(st, 200);
  char *bearer = strdup(sq_json_str(tok, "access_token"));
  json_decref(tok);
  snprintf(url, sizeof url, "https://kv-tde-east.vault.localhost:%d/keys/survivor/create?api-version=7.5", port);
  json_t *k = call(h, "POST", url, bearer, "application/json", "{\"kty\":\"RSA\",\"key_size\":2048}", &st);
  ASSERT_EQ(st, 200);
  const char *kid = sq_json_str(k, "key.kid");
  char version[40], n[600];
  snprintf(version, sizeof version, "%s", strrchr(kid, '/') + 1);
  snprintf(n, sizeof n, "%s", sq_json_str(k, "key.n"));
  json_decref(k);
  snprintf(url, sizeof url, "https://kv-tde-east.vault.localhost:%d/keys/survivor/%s/wrapkey?api-version=7.5", port, version);
  json_t *w = call(h, "POST", url, bearer, "application/json", "{\"alg\":\"RSA-OAEP-256\",\"value\":\"c2VjcmV0LWRlaw\"}", &st);
  ASSERT_EQ(st, 200);
  char wrapped[1024];
  snprintf(wrapped, sizeof wrapped, "%s", sq_json_str(w, "value"));
  json_decref(w);
  snprintf(url, sizeof url, "https://control.localhost:%d/_emulator/clock/advance", port);
  json_t *c = call(h, "POST", url, NULL, "application/json", "{\"seconds\":600}", &st);
  ASSERT_EQ(st, 200);
  int64_t offset = sq_json_int(c, "offsetMs", 0);
  ASSERT_GE(offset, 600000);
  json_decref(c);
  sq_http_free(h);

  ASSERT_EQ(stop(), 0);
  char ready[128];
  snprintf(ready, sizeof ready, "%s/ready", dir);
  ASSERT_NE(access(ready, F_OK), 0); /* removed on a clean stop */

  ASSERT_OK(start());
  char *ca2 = slurp("ca.pem");
  ASSERT_STR_EQ(ca1, ca2); /* clients keep trusting the same CA */
  h = client();
  /* the token issued before the restart still verifies: the signing key is in state */
  snprintf(url, sizeof url, "https://kv-tde-east.vault.localhost:%d/keys/survivor?api-version=7.5", port);
  k = call(h, "GET", url, bearer, NULL, NULL, &st);
  ASSERT_EQ(st, 200);
  ASSERT_STR_EQ(strrchr(sq_json_str(k, "key.kid"), '/') + 1, version);
  ASSERT_STR_EQ(sq_json_str(k, "key.n"), n);
  json_decref(k);
  snprintf(url, sizeof url, "https://kv-tde-east.vault.localhost:%d/keys/survivor/%s/unwrapkey?api-version=7.5", port,
           version);
  char body[1200];
  snprintf(body, sizeof body, "{\"alg\":\"RSA-OAEP-256\",\"value\":\"%s\"}", wrapped);
  json_t *u = call(h, "POST", url, bearer, "application/json", body, &st);
  ASSERT_EQ(st, 200);
  ASSERT_STR_EQ(sq_json_str(u, "value"), "c2VjcmV0LWRlaw");
  json_decref(u);
  snprintf(url, sizeof url, "https://control.localhost:%d/_emulator/clock", port);
  c = call(h, "GET", url, NULL, NULL, NULL, &st);
  ASSERT_EQ(sq_json_int(c, "offsetMs", 0), offset);
  json_decref(c);
  sq_http_free(h);
  ASSERT_EQ(stop(), 0);
  free(ca1);
  free(ca2);
  free(bearer);
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s.log'", dir, dir);
  ASSERT_EQ(system(cmd), 0);
}

TEST_MAIN()
