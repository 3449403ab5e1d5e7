/* test_httpd.c — the HTTP(S) server, driven by the project's own sq_http
 * client (TLS verified against a CA made here with the openssl CLI) and by
 * a raw socket for the protocol corners curl never exercises. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sqltde/http.h"
#include "sqltde/server/httpd.h"
#include "test.h"

/* ---- the test handler -------------------------------------------------- */

typedef struct srv_state {
  atomic_int calls;
} srv_state;

static uint64_t fnv1a(const char *p, size_t n) {
  uint64_t h = 1469598103934665603ULL;
  for(size_t i = 0; i < n; i++) {
    h ^= (unsigned char)p[i];
    h *= 1099511628211ULL;
  }
  return h;
}

static char pattern_byte(size_t i) { return (char)('a' + (i * 7 + i / 4096) % 26); }

static size_t query_num(const char *q, const char *key) {
  size_t kl = strlen(key);
  for(const char *p = q; p && *p;) {
    if(!strncmp(p, key, kl) && p[kl] == '=')
      return (size_t)strtoull(p + kl + 1, NULL, 10);
    p = strchr(p, '&');
    if(p)
      p++;
  }
  return 0;
}

static void handler(void *ud, const sq_httpd_req *req, sq_httpd_resp *resp) {
  srv_state *st = ud;
  atomic_fetch_add(&st->calls, 1);
  if(!strcmp(req->path, "/drop")) {
    resp->drop = 1;
    return;
  }
  if(!strcmp(req->path, "/big")) {
    size_t n = query_num(req->query, "n");
    for(size_t i = 0; i < n; i++) {
      char c = pattern_byte(i);
      if(sq_buf_add(&resp->body, &c, 1))
        break;
    }
    snprintf(resp->content_type, sizeof resp->content_type, "application/octet-stream");
    return;
  }
  if(!strcmp(req->path, "/slow"))
    usleep(20 * 1000);
  if(!strcmp(req->path, "/status"))
    resp->status = (int)query_num(req->query, "code");
  if(!strcmp(req->path, "/badheader"))
    resp->status = sq_httpd_resp_header(resp, "X-Evil", "a\r\nInjected: yes") == SQ_EINVAL ? 299 : 500;
  const char *xms = req->header(req, "x-ms-version");
  const char *auth = req->header(req, "Authorization");
  const char *cid = req->header(req, "X-MS-Client-Request-Id");
  const char *missing = req->header(req, "x-not-sent");
  const char *ua = req->header(req, "user-agent");
  sq_buf_addf(&resp->body,
              "method=%s\npath=%s\nquery=%s\nhost=%s\nctype=%s\nlen=%zu\nsum=%llu\nxms=%s\n"
              "auth=%s\nmissing=%s\nua=%s\nconn=%lu\n",
              req->method, req->path, req->query, req->host, req->content_type, req->body_len,
              (unsigned long long)fnv1a(req->body, req->body_len), xms ? xms : "(null)",
              auth ? auth : "(null)", missing ? missing : "(null)", ua ? ua : "(null)",
              req->conn_id);
  if(cid)
    sq_httpd_resp_header(resp, "x-ms-request-id", cid);
  sq_httpd_resp_header(resp, "Location", "https://example.test/operations/1");
  snprintf(resp->content_type, sizeof resp->content_type, "text/plain; charset=utf-8");
}

/* Value of "key=" line in an echo body, into out. */
static const char *field(const char *body, const char *key, char *out, size_t n) {
  size_t kl = strlen(key);
  out[0] = '\0';
  for(const char *p = body; p && *p;) {
    if(!strncmp(p, key, kl) && p[kl] == '=') {
      const char *v = p + kl + 1, *e = strchr(v, '\n');
      size_t l = e ? (size_t)(e - v) : strlen(v);
      if(l >= n)
        l = n - 1;
      memcpy(out, v, l);
      out[l] = '\0';
      return out;
    }
    p = strchr(p, '\n');
    if(p)
      p++;
  }
  return out;
}

static sq_httpd *start_srv(srv_state *st, size_t max_body, int threads, const char *cert,
                           const char *key) {
  sq_httpd_opts o = {0};
  o.bind_addr = "127.0.0.1";
  o.port = 0;
  o.max_body = max_body;
  o.threads = threads;
  o.cert_file = cert;
  o.key_file = key;
  o.handler = handler;
  o.ud = st;
  sq_httpd *s = NULL;
  sq_err err;
  sq_err_clear(&err);
  sq_code rc = sq_httpd_start(&o, &s, &err);
  if(rc)
    fprintf(stderr, "start: %s\n", err.message);
  return rc ? NULL : s;
}

static sq_http *new_client(const char *ca_file) {
  sq_http_opts o = {0};
  o.ca_file = ca_file;
  o.timeout_ms = 20000;
  o.connect_timeout_ms = 5000;
  sq_http *h = NULL;
  return sq_http_new(&o, &h, NULL) ? NULL : h;
}

static sq_code do_req(sq_http *h, const char *method, const char *url, const char *body,
                      size_t body_len, const char *const *headers, sq_http_resp *resp) {
  sq_http_req r = {0};
  r.method = method;
  r.url = url;
  r.body = body;
  r.body_len = body_len;
  r.content_type = body ? "application/json" : NULL;
  r.headers = headers;
  sq_err err;
  sq_err_clear(&err);
  return sq_http_do(h, &r, resp, &err);
}

/* ---- plain HTTP -------------------------------------------------------- */

TEST(methods_with_bodies) {
  srv_state st = {0};
  sq_httpd *s = start_srv(&st, 0, 1, NULL, NULL);
  ASSERT_NOT_NULL(s);
  ASSERT_GT(sq_httpd_port(s), 0);
  sq_http *h = new_client(NULL);
  ASSERT_NOT_NULL(h);
  char url[128], v[256];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/things/a", sq_httpd_port(s));
  const char *methods[] = {"GET", "PUT", "PATCH", "DELETE", "POST", "OPTIONS"};
  for(size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
    char body[64];
    int n = snprintf(body, sizeof body, "{\"m\":\"%s\",\"i\":%zu}", methods[i], i);
    int has_body = strcmp(methods[i], "GET") != 0;
    sq_http_resp resp;
    sq_http_resp_init(&resp);
    ASSERT_OK(do_req(h, methods[i], url, has_body ? body : NULL, has_body ? (size_t)n : 0, NULL,
                     &resp));
    ASSERT_EQ(resp.status, 200);
    ASSERT_STR_EQ(field(resp.body.ptr, "method", v, sizeof v), methods[i]);
    ASSERT_STR_EQ(field(resp.body.ptr, "path", v, sizeof v), "/v1/things/a");
    char want[32];
    snprintf(want, sizeof want, "%d", has_body ? n : 0);
    ASSERT_STR_EQ(field(resp.body.ptr, "len", v, sizeof v), want);
    snprintf(want, sizeof want, "%llu",
             (unsigned long long)fnv1a(has_body ? body : "", has_body ? (size_t)n : 0));
    ASSERT_STR_EQ(field(resp.body.ptr, "sum", v, sizeof v), want);
    ASSERT_STR_EQ(field(resp.body.ptr, "ctype", v, sizeof v), has_body ? "application/json" : "");
    ASSERT_STR_EQ(resp.content_type, "text/plain; charset=utf-8");
    ASSERT_STR_EQ(resp.location, "https://example.test/operations/1");
    sq_http_resp_free(&resp);
  }
  ASSERT_EQ(atomic_load(&st.calls), 6);

  /* HEAD: headers only. */
  sq_http_resp resp;
  sq_http_resp_init(&resp);
  ASSERT_OK(do_req(h, "HEAD", url, NULL, 0, NULL, &resp));
  ASSERT_EQ(resp.status, 200);
  ASSERT_EQ(resp.body.len, 0);
  sq_http_resp_free(&resp);

  /* Status codes pass through, including ones lws has no text for. */
  int codes[] = {201, 202, 204, 404, 409, 429, 503};
  for(size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
    snprintf(url, sizeof url, "http://127.0.0.1:%d/status?code=%d", sq_httpd_port(s), codes[i]);
    sq_http_resp_init(&resp);
    ASSERT_OK(do_req(h, "GET", url, NULL, 0, NULL, &resp));
    ASSERT_EQ(resp.status, codes[i]);
    sq_http_resp_free(&resp);
  }
  /* Not a final status -> 500; 204 goes without the body the handler wrote. */
  snprintf(url, sizeof url, "http://127.0.0.1:%d/status?code=99", sq_httpd_port(s));
  sq_http_resp_init(&resp);
  ASSERT_OK(do_req(h, "GET", url, NULL, 0, NULL, &resp));
  ASSERT_EQ(resp.status, 500);
  ASSERT_GT(resp.body.len, 0);
  sq_http_resp_free(&resp);
  snprintf(url, sizeof url, "http://127.0.0.1:%d/status?code=204", sq_httpd_port(s));
  sq_http_resp_init(&resp);
  ASSERT_OK(do_req(h, "GET", url, NULL, 0, NULL, &resp));
  ASSERT_EQ(resp.status, 204);
  ASSERT_EQ(resp.body.len, 0);
  sq_http_resp_free(&resp);
  sq_http_free(h);
  sq_httpd_stop(s);
}

TEST(headers_host_query) {
  srv_state st = {0};
  sq_httpd *s = start_srv(&st, 0, 1, NULL, NULL);
  ASSERT_NOT_NULL(s);
  sq_http *h = new_client(NULL);
  ASSERT_NOT_NULL(h);
  char url[256], v[512];
  snprintf(url, sizeof url,
           "http://127.0.0.1:%d/keys/k1?api-version=7.4&$filter=name%%20eq%%20'a%%26b'&x=1+2&e=",
           sq_httpd_port(s));
  const char *hdrs[] = {"Host: MyVault.Vault.LOCALHOST:8443", "x-ms-version: 2021-06-01",
                        "Authorization: Bearer abc.def.ghi", "X-MS-Client-Request-Id: rid-42",
                        NULL};
  sq_http_resp resp;
  sq_http_resp_init(&resp);
  ASSERT_OK(do_req(h, "GET", url, NULL, 0, hdrs, &resp));
  ASSERT_EQ(resp.status, 200);
  ASSERT_STR_EQ(field(resp.body.ptr, "host", v, sizeof v), "myvault.vault.localhost");
  ASSERT_STR_EQ(field(resp.body.ptr, "xms", v, sizeof v), "2021-06-01");
  ASSERT_STR_EQ(field(resp.body.ptr, "auth", v, sizeof v), "Bearer abc.def.ghi");
  ASSERT_STR_EQ(field(resp.body.ptr, "missing", v, sizeof v), "(null)");
  ASSERT_STR_EQ(field(resp.body.ptr, "ua", v, sizeof v), "sqltde-operator");
  ASSERT_STR_EQ(field(resp.body.ptr, "path", v, sizeof v), "/keys/k1");
  /* Decoded by lws, re-encoded by us: '&' inside a value stays escaped,
   * '+' (a space) comes back as %20, an empty value stays. */
  ASSERT_STR_EQ(field(resp.body.ptr, "query", v, sizeof v),
                "api-version=7.4&$filter=name%20eq%20'a%26b'&x=1%202&e=");
  /* A custom request header round-trips into a response header. */
  ASSERT_STR_EQ(resp.request_id, "rid-42");
  sq_http_resp_free(&resp);

  /* IPv6 literal host keeps its brackets, loses its port. */
  const char *h6[] = {"Host: [::1]:9000", NULL};
  sq_http_resp_init(&resp);
  ASSERT_OK(do_req(h, "GET", url, NULL, 0, h6, &resp));
  ASSERT_STR_EQ(field(resp.body.ptr, "host", v, sizeof v), "[::1]");
  sq_http_resp_free(&resp);

  /* Header injection is refused by sq_httpd_resp_header. */
  snprintf(url, sizeof url, "http://127.0.0.1:%d/badheader", sq_httpd_port(s));
  sq_http_resp_init(&resp);
  ASSERT_OK(do_req(h, "GET", url, NULL, 0, NULL, &resp));
  ASSERT_EQ(resp.status, 299);
  sq_http_resp_free(&resp);
  sq_http_free(h);
  sq_httpd_stop(s);
}

TEST(large_bodies_both_ways) {
  srv_state st = {0};
  sq_httpd *s = start_srv(&st, 8u << 20, 1, NULL, NULL);
  ASSERT_NOT_NULL(s);
  sq_http *h = new_client(NULL);
  ASSERT_NOT_NULL(h);
  char url[128], v[64];
  const size_t big = 5u << 20;
  snprintf(url, sizeof url, "http://127.0.0.1:%d/big?n=%zu", sq_httpd_port(s), big);
  sq_http_resp resp;
  sq_http_resp_init(&resp);
  ASSERT_OK(do_req(h, "GET", url, NULL, 0, NULL, &resp));
  ASSERT_EQ(resp.status, 200);
  ASSERT_EQ(resp.body.len, big);
  size_t bad = 0;
  for(size_t i = 0; i < big; i++)
    bad += resp.body.ptr[i] != pattern_byte(i);
  ASSERT_EQ(bad, 0);
  sq_http_resp_free(&resp);

  char *up = malloc(big);
  ASSERT_NOT_NULL(up);
  for(size_t i = 0; i < big; i++)
    up[i] = pattern_byte(i * 3);
  snprintf(url, sizeof url, "http://127.0.0.1:%d/upload", sq_httpd_port(s));
  sq_http_resp_init(&resp);
  ASSERT_OK(do_req(h, "PUT", url, up, big, NULL, &resp));
  ASSERT_EQ(resp.status, 200);
  char want[32];
  snprintf(want, sizeof want, "%zu", big);
  ASSERT_STR_EQ(field(resp.body.ptr, "len", v, sizeof v), want);
  snprintf(want, sizeof want, "%llu", (unsigned long long)fnv1a(up, big));
  ASSERT_STR_EQ(field(resp.body.ptr, "sum", v, sizeof v), want);
  sq_http_resp_free(&resp);
  free(up);
  sq_http_free(h);
  sq_httpd_stop(s);
}

TEST(body_limit_413) {
  srv_state st = {0};
  sq_httpd *s = start_srv(&st, 1024, 1, NULL, NULL);
  ASSERT_NOT_NULL(s);
  sq_http *h = new_client(NULL);
  ASSERT_NOT_NULL(h);
  char url[128], v[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", sq_httpd_port(s));
  char *body = malloc(300000);
  ASSERT_NOT_NULL(body);
  memset(body, 'x', 300000);
  /* Exactly at the limit is fine. */
  sq_http_resp resp;
  sq_http_resp_init(&resp);
  ASSERT_OK(do_req(h, "POST", url, body, 1024, NULL, &resp));
  ASSERT_EQ(resp.status, 200);
  ASSERT_STR_EQ(field(resp.body.ptr, "len", v, sizeof v), "1024");
  unsigned long conn = strtoul(field(resp.body.ptr, "conn", v, sizeof v), NULL, 10);
  sq_http_resp_free(&resp);
  ASSERT_EQ(atomic_load(&st.calls), 1);
  /* One byte over, and far over: 413, handler not called. */
  size_t sizes[] = {1025, 300000};
  for(size_t i = 0; i < 2; i++) {
    sq_http_resp_init(&resp);
    ASSERT_OK(do_req(h, "PUT", url, body, sizes[i], NULL, &resp));
    ASSERT_EQ(resp.status, 413);
    sq_http_resp_free(&resp);
  }
  ASSERT_EQ(atomic_load(&st.calls), 1);
  /* The body was drained, so the connection stays usable. */
  sq_http_resp_init(&resp);
  ASSERT_OK(do_req(h, "GET", url, NULL, 0, NULL, &resp));
  ASSERT_EQ(resp.status, 200);
  ASSERT_EQ(strtoul(field(resp.body.ptr, "conn", v, sizeof v), NULL, 10), conn);
  sq_http_resp_free(&resp);
  free(body);
  sq_http_free(h);
  sq_httpd_stop(s);
}

TEST(keepalive_reuses_connection) {
  srv_state st = {0};
  sq_httpd *s = start_srv(&st, 0, 1, NULL, NULL);
  ASSERT_NOT_NULL(s);
  sq_http *h = new_client(NULL);
  ASSERT_NOT_NULL(h);
  char url[128], v[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", sq_httpd_port(s));
  unsigned long first = 0;
  for(int i = 0; i < 5; i++) {
    sq_http_resp resp;
    sq_http_resp_init(&resp);
    ASSERT_OK(do_req(h, i % 2 ? "PUT" : "GET", url, i % 2 ? "{}" : NULL, i % 2 ? 2 : 0, NULL,
                     &resp));
    ASSERT_EQ(resp.status, 200);
    unsigned long id = strtoul(field(resp.body.ptr, "conn", v, sizeof v), NULL, 10);
    ASSERT_GT(id, 0);
    if(!first)
      first = id;
    ASSERT_EQ(id, first);
    sq_http_resp_free(&resp);
  }
  /* A second client opens a second connection. */
  sq_http *h2 = new_client(NULL);
  ASSERT_NOT_NULL(h2);
  sq_http_resp resp;
  sq_http_resp_init(&resp);
  ASSERT_OK(do_req(h2, "GET", url, NULL, 0, NULL, &resp));
  ASSERT_NE(strtoul(field(resp.body.ptr, "conn", v, sizeof v), NULL, 10), first);
  sq_http_resp_free(&resp);
  sq_http_free(h2);
  sq_http_free(h);
  sq_httpd_stop(s);
}

TEST(drop_is_a_transport_error) {
  srv_state st = {0};
  sq_httpd *s = start_srv(&st, 0, 1, NULL, NULL);
  ASSERT_NOT_NULL(s);
  sq_http *h = new_client(NULL);
  ASSERT_NOT_NULL(h);
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/drop", sq_httpd_port(s));
  sq_http_resp resp;
  sq_http_resp_init(&resp);
  ASSERT_EQ(do_req(h, "PUT", url, "{}", 2, NULL, &resp), SQ_ETRANSPORT);
  ASSERT_EQ(resp.status, 0);
  sq_http_resp_free(&resp);
  /* The server is fine afterwards. */
  snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", sq_httpd_port(s));
  sq_http_resp_init(&resp);
  ASSERT_OK(do_req(h, "GET", url, NULL, 0, NULL, &resp));
  ASSERT_EQ(resp.status, 200);
  sq_http_resp_free(&resp);
  sq_http_free(h);
  sq_httpd_stop(s);
}

/* ---- concurrency ------------------------------------------------------- */

typedef struct client_job {
  const char *base;
  const char *ca_file;
  int n;
  int ok;
  int failed;
  const char *path;
  atomic_int *stop;
  int transport_errors;
} client_job;

static void *client_main(void *arg) {
  client_job *j = arg;
  sq_http *h = new_client(j->ca_file);
  if(!h) {
    j->failed = j->n ? j->n : 1;
    return NULL;
  }
  char url[256], body[128], v[64], want[32];
  for(int i = 0; j->stop ? !atomic_load(j->stop) : i < j->n; i++) {
    snprintf(url, sizeof url, "%s%s", j->base, j->path ? j->path : "/echo");
    int n = snprintf(body, sizeof body, "{\"thread\":\"%p\",\"i\":%d}", (void *)j, i);
    sq_http_resp resp;
    sq_http_resp_init(&resp);
    sq_code rc = do_req(h, "POST", url, body, (size_t)n, NULL, &resp);
    if(rc == SQ_OK && resp.status == 200) {
      snprintf(want, sizeof want, "%llu", (unsigned long long)fnv1a(body, (size_t)n));
      if(!strcmp(field(resp.body.ptr, "sum", v, sizeof v), want))
        j->ok++;
      else
        j->failed++;
    } else if(rc == SQ_ETRANSPORT) {
      j->transport_errors++;
      if(j->stop)
        usleep(1000);
      else
        j->failed++;
    } else {
      j->failed++;
    }
    sq_http_resp_free(&resp);
  }
  sq_http_free(h);
  return NULL;
}

static void run_concurrent(const char *scheme, const char *ca_file, const char *cert,
                           const char *key) {
  srv_state st = {0};
  sq_httpd *s = start_srv(&st, 0, 3, cert, key);
  ASSERT_NOT_NULL(s);
  char base[128];
  snprintf(base, sizeof base, "%s://localhost:%d", scheme, sq_httpd_port(s));
  enum { NT = 4, PER = 60 };
  pthread_t th[NT];
  client_job jobs[NT];
  for(int i = 0; i < NT; i++) {
    jobs[i] = (client_job){.base = base, .ca_file = ca_file, .n = PER};
    ASSERT_OK(pthread_create(&th[i], NULL, client_main, &jobs[i]));
  }
  int ok = 0, failed = 0;
  for(int i = 0; i < NT; i++) {
    pthread_join(th[i], NULL);
    ok += jobs[i].ok;
    failed += jobs[i].failed;
  }
  ASSERT_EQ(failed, 0);
  ASSERT_EQ(ok, NT * PER);
  ASSERT_EQ(atomic_load(&st.calls), NT * PER);
  sq_httpd_stop(s);
}

TEST(concurrent_clients_plain) { run_concurrent("http", NULL, NULL, NULL); }

TEST(stop_under_load) {
  srv_state st = {0};
  sq_httpd *s = start_srv(&st, 0, 2, NULL, NULL);
  ASSERT_NOT_NULL(s);
  char base[128];
  snprintf(base, sizeof base, "http://127.0.0.1:%d", sq_httpd_port(s));
  atomic_int stop = 0;
  enum { NT = 4 };
  pthread_t th[NT];
  client_job jobs[NT];
  for(int i = 0; i < NT; i++) {
    jobs[i] = (client_job){.base = base, .path = i % 2 ? "/slow" : "/echo", .stop = &stop};
    ASSERT_OK(pthread_create(&th[i], NULL, client_main, &jobs[i]));
  }
  /* Let load build up, then stop the server under it. */
  for(int i = 0; i < 500 && atomic_load(&st.calls) < 50; i++)
    usleep(10 * 1000);
  int served = atomic_load(&st.calls);
  ASSERT_GE(served, 50);
  sq_httpd_stop(s);
  /* Clients now fail with transport errors, never with wrong answers. */
  usleep(100 * 1000);
  atomic_store(&stop, 1);
  int ok = 0, failed = 0, terr = 0;
  for(int i = 0; i < NT; i++) {
    pthread_join(th[i], NULL);
    ok += jobs[i].ok;
    failed += jobs[i].failed;
    terr += jobs[i].transport_errors;
  }
  /* Every request the handler saw before the stop was answered, except at
   * most the one in flight per client. */
  ASSERT_GE(ok, served - NT);
  ASSERT_EQ(failed, 0);
  ASSERT_GT(terr, 0);
}

/* ---- raw socket corners ------------------------------------------------ */

static int raw_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if(fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a)) {
    if(fd >= 0)
      close(fd);
    return -1;
  }
  struct timeval tv = {.tv_sec = 10};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

static void raw_send(int fd, const char *s) {
  size_t n = strlen(s), off = 0;
  while(off < n) {
    ssize_t w = send(fd, s + off, n - off, MSG_NOSIGNAL);
    if(w <= 0)
      return;
    off += (size_t)w;
  }
}

/* Reads until `until` appears in what was read (or EOF/timeout). */
static size_t raw_read_until(int fd, char *buf, size_t cap, const char *until) {
  size_t len = 0;
  buf[0] = '\0';
  while(len + 1 < cap && (!until || !strstr(buf, until))) {
    ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
    if(n <= 0)
      break;
    len += (size_t)n;
    buf[len] = '\0';
  }
  return len;
}

static int count_of(const char *hay, const char *needle) {
  int n = 0;
  for(const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
    n++;
  return n;
}

TEST(raw_expect_continue) {
  srv_state st = {0};
  sq_httpd *s = start_srv(&st, 1000, 1, NULL, NULL);
  ASSERT_NOT_NULL(s);
  char buf[8192];
  int fd = raw_connect(sq_httpd_port(s));
  ASSERT_GE(fd, 0);
  raw_send(fd, "PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
  raw_read_until(fd, buf, sizeof buf, "\r\n\r\n");
  ASSERT_STR_CONTAINS(buf, "HTTP/1.1 100 Continue");
  ASSERT_EQ(atomic_load(&st.calls), 0);
  raw_send(fd, "hello");
  raw_read_until(fd, buf, sizeof buf, "conn=");
  ASSERT_STR_CONTAINS(buf, "HTTP/1.1 200");
  ASSERT_STR_CONTAINS(buf, "len=5\n");
  close(fd);

  /* Announced body over the limit: a final 413 instead of 100, no body read. */
  fd = raw_connect(sq_httpd_port(s));
  ASSERT_GE(fd, 0);
  raw_send(fd, "PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n");
  raw_read_until(fd, buf, sizeof buf, NULL);
  ASSERT_STR_CONTAINS(buf, "HTTP/1.1 413");
  ASSERT(strstr(buf, "100 Continue") == NULL);
  close(fd);
  ASSERT_EQ(atomic_load(&st.calls), 1);
  sq_httpd_stop(s);
}

TEST(raw_no_length_chunked_pipelined) {
  srv_state st = {0};
  sq_httpd *s = start_srv(&st, 0, 1, NULL, NULL);
  ASSERT_NOT_NULL(s);
  char buf[16384];
  /* POST without Content-Length: an empty body, then the server closes. */
  int fd = raw_connect(sq_httpd_port(s));
  ASSERT_GE(fd, 0);
  raw_send(fd, "POST /x HTTP/1.1\r\nHost: a\r\n\r\n");
  raw_read_until(fd, buf, sizeof buf, NULL); /* returns at EOF */
  ASSERT_STR_CONTAINS(buf, "HTTP/1.1 200");
  ASSERT_STR_CONTAINS(buf, "len=0\n");
  ASSERT_STR_CONTAINS(buf, "connection: close");
  close(fd);

  /* Chunked upload: 411, handler not called. */
  int before = atomic_load(&st.calls);
  fd = raw_connect(sq_httpd_port(s));
  ASSERT_GE(fd, 0);
  raw_send(fd, "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
  raw_read_until(fd, buf, sizeof buf, NULL);
  ASSERT_STR_CONTAINS(buf, "HTTP/1.1 411");
  close(fd);
  ASSERT_EQ(atomic_load(&st.calls), before);

  /* Pipelining is refused (lws 4.1 spins on a pipelined request with a
   * body): the first request is answered, then the connection closes, and
   * the server thread is not stuck (the next checks need it). */
  const char *pipelines[] = {
      "GET /one HTTP/1.1\r\nHost: a\r\n\r\nPUT /two HTTP/1.1\r\nHost: b\r\nContent-Length: 3\r\n\r\nabc",
      "PUT /one HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /two HTTP/1.1\r\nHost: b\r\n\r\n",
      "GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\r\nHost: b\r\n\r\n",
  };
  for(size_t i = 0; i < sizeof pipelines / sizeof pipelines[0]; i++) {
    int calls = atomic_load(&st.calls);
    fd = raw_connect(sq_httpd_port(s));
    ASSERT_GE(fd, 0);
    raw_send(fd, pipelines[i]);
    raw_read_until(fd, buf, sizeof buf, NULL); /* until the server closes */
    close(fd);
    ASSERT_EQ(count_of(buf, "HTTP/1.1 200"), 1);
    ASSERT_STR_CONTAINS(buf, "path=/one");
    ASSERT(strstr(buf, "path=/two") == NULL);
    ASSERT_EQ(atomic_load(&st.calls), calls + 1);
  }

  /* Sequential requests on one connection still share it. */
  fd = raw_connect(sq_httpd_port(s));
  ASSERT_GE(fd, 0);
  raw_send(fd, "PUT /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc");
  raw_read_until(fd, buf, sizeof buf, "conn=");
  ASSERT_STR_CONTAINS(buf, "path=/a");
  raw_send(fd, "PUT /b HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nxy");
  raw_read_until(fd, buf, sizeof buf, "conn=");
  ASSERT_STR_CONTAINS(buf, "path=/b");
  ASSERT_STR_CONTAINS(buf, "len=2\n");
  close(fd);

  /* Garbage instead of HTTP: the connection is closed, the server lives. */
  fd = raw_connect(sq_httpd_port(s));
  ASSERT_GE(fd, 0);
  raw_send(fd, "\x16\x03\x01 this is not http\r\n\r\n");
  raw_read_until(fd, buf, sizeof buf, NULL);
  close(fd);
  fd = raw_connect(sq_httpd_port(s));
  ASSERT_GE(fd, 0);
  raw_send(fd, "GET /alive HTTP/1.1\r\nHost: a\r\n\r\n");
  raw_read_until(fd, buf, sizeof buf, "conn=");
  ASSERT_STR_CONTAINS(buf, "path=/alive");
  close(fd);
  sq_httpd_stop(s);
}

/* ---- HTTPS ------------------------------------------------------------- */

static char g_dir[256];
static char g_ca[300], g_cert[300], g_key[300], g_other_ca[300];

static void rm_pki(void) {
  if(!g_dir[0])
    return;
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  if(system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", g_dir);
  g_dir[0] = '\0';
}

/* A CA and a server certificate with the SANs the Azure emulator uses,
 * made with the openssl CLI into a temp dir (once per process). */
static int make_pki(void) {
  if(g_dir[0])
    return 0;
  snprintf(g_dir, sizeof g_dir, "/tmp/sqltde-httpd-XXXXXX");
  if(!mkdtemp(g_dir))
    return -1;
  atexit(rm_pki);
  snprintf(g_ca, sizeof g_ca, "%s/ca.pem", g_dir);
  snprintf(g_cert, sizeof g_cert, "%s/srv.pem", g_dir);
  snprintf(g_key, sizeof g_key, "%s/srv.key", g_dir);
  snprintf(g_other_ca, sizeof g_other_ca, "%s/other-ca.pem", g_dir);
  char cmd[4096];
  snprintf(cmd, sizeof cmd,
           "set -e; cd %s;"
           "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
           " -keyout ca.key -out ca.pem -days 2 -subj /CN=sqltde-test-ca"
           " -addext basicConstraints=critical,CA:TRUE"
           " -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null;"
           "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
           " -keyout other-ca.key -out other-ca.pem -days 2 -subj /CN=other-ca 2>/dev/null;"
           "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
           " -keyout srv.key -out srv.csr -subj /CN=localhost 2>/dev/null;"
           "printf 'subjectAltName=DNS:localhost,DNS:login.localhost,DNS:management.localhost,"
           "DNS:*.vault.localhost,IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n"
           "extendedKeyUsage=serverAuth\\n' > ext.cnf;"
           "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
           " -out srv.pem -days 2 -extfile ext.cnf 2>/dev/null",
           g_dir);
  return system(cmd) == 0 ? 0 : -1;
}

TEST(https_verified) {
  ASSERT_OK(make_pki());
  srv_state st = {0};
  sq_httpd *s = start_srv(&st, 8u << 20, 2, g_cert, g_key);
  ASSERT_NOT_NULL(s);
  sq_http *h = new_client(g_ca);
  ASSERT_NOT_NULL(h);
  char url[256], v[256];
  /* By name and by IP SAN. */
  const char *hosts[] = {"localhost", "127.0.0.1"};
  for(int i = 0; i < 2; i++) {
    snprintf(url, sizeof url, "https://%s:%d/vaults/v?api-version=2023-07-01", hosts[i],
             sq_httpd_port(s));
    sq_http_resp resp;
    sq_http_resp_init(&resp);
    ASSERT_OK(do_req(h, "PATCH", url, "{\"a\":1}", 7, NULL, &resp));
    ASSERT_EQ(resp.status, 200);
    ASSERT_STR_EQ(field(resp.body.ptr, "method", v, sizeof v), "PATCH");
    ASSERT_STR_EQ(field(resp.body.ptr, "host", v, sizeof v), hosts[i]);
    ASSERT_STR_EQ(field(resp.body.ptr, "query", v, sizeof v), "api-version=2023-07-01");
    ASSERT_STR_EQ(field(resp.body.ptr, "len", v, sizeof v), "7");
    sq_http_resp_free(&resp);
  }
  /* A 5 MiB answer through TLS. */
  const size_t big = 5u << 20;
  snprintf(url, sizeof url, "https://localhost:%d/big?n=%zu", sq_httpd_port(s), big);
  sq_http_resp resp;
  sq_http_resp_init(&resp);
  ASSERT_OK(do_req(h, "GET", url, NULL, 0, NULL, &resp));
  ASSERT_EQ(resp.status, 200);
  ASSERT_EQ(resp.body.len, big);
  size_t bad = 0;
  for(size_t i = 0; i < big; i++)
    bad += resp.body.ptr[i] != pattern_byte(i);
  ASSERT_EQ(bad, 0);
  sq_http_resp_free(&resp);
  sq_http_free(h);

  /* A client trusting another CA refuses the server. */
  sq_http *wrong = new_client(g_other_ca);
  ASSERT_NOT_NULL(wrong);
  snprintf(url, sizeof url, "https://localhost:%d/echo", sq_httpd_port(s));
  sq_http_resp_init(&resp);
  ASSERT_EQ(do_req(wrong, "GET", url, NULL, 0, NULL, &resp), SQ_ETRANSPORT);
  sq_http_resp_free(&resp);
  sq_http_free(wrong);

  /* Plain HTTP to the TLS port does not reach the handler. */
  int calls = atomic_load(&st.calls);
  sq_http *plain = new_client(NULL);
  snprintf(url, sizeof url, "http://localhost:%d/echo", sq_httpd_port(s));
  sq_http_resp_init(&resp);
  sq_code rc = do_req(plain, "GET", url, NULL, 0, NULL, &resp);
  ASSERT(rc != SQ_OK || resp.status != 200);
  sq_http_resp_free(&resp);
  sq_http_free(plain);
  ASSERT_EQ(atomic_load(&st.calls), calls);
  sq_httpd_stop(s);
}

TEST(concurrent_clients_https) {
  ASSERT_OK(make_pki());
  run_concurrent("https", g_ca, g_cert, g_key);
}

TEST(start_errors) {
  srv_state st = {0};
  sq_httpd_opts o = {0};
  o.bind_addr = "127.0.0.1";
  o.handler = handler;
  o.ud = &st;
  sq_httpd *s = NULL, *s2 = NULL;
  sq_err err;
  /* Port already taken. */
  ASSERT_OK(sq_httpd_start(&o, &s, &err));
  o.port = sq_httpd_port(s);
  ASSERT_EQ(sq_httpd_start(&o, &s2, &err), SQ_EIO);
  ASSERT_NULL(s2);
  ASSERT_STR_CONTAINS(err.message, "cannot listen");
  sq_httpd_stop(s);
  o.port = 0;
  /* Missing certificate / key without certificate / no handler. */
  o.cert_file = "/nonexistent/cert.pem";
  o.key_file = "/nonexistent/key.pem";
  ASSERT_EQ(sq_httpd_start(&o, &s2, &err), SQ_EINVAL);
  ASSERT_STR_CONTAINS(err.message, "/nonexistent/cert.pem");
  o.cert_file = NULL;
  ASSERT_EQ(sq_httpd_start(&o, &s2, &err), SQ_EINVAL);
  o.key_file = NULL;
  o.handler = NULL;
  ASSERT_EQ(sq_httpd_start(&o, &s2, &err), SQ_EINVAL);
  o.handler = handler;
  o.bind_addr = "no-such-host.invalid";
  ASSERT_EQ(sq_httpd_start(&o, &s2, &err), SQ_EINVAL);
  /* A key that does not match the certificate is refused at start. */
  ASSERT_OK(make_pki());
  char other_key[320];
  snprintf(other_key, sizeof other_key, "%s/other-ca.key", g_dir);
  o.bind_addr = "127.0.0.1";
  o.cert_file = g_cert;
  o.key_file = other_key;
  ASSERT_NE(sq_httpd_start(&o, &s2, &err), SQ_OK);
  ASSERT_NULL(s2);
  sq_httpd_stop(NULL);
}

TEST(all_interfaces_bind) {
  srv_state st = {0};
  sq_httpd_opts o = {0};
  o.handler = handler;
  o.ud = &st;
  sq_httpd *s = NULL;
  ASSERT_OK(sq_httpd_start(&o, &s, NULL));
  int fd = raw_connect(sq_httpd_port(s));
  ASSERT_GE(fd, 0);
  char buf[4096];
  raw_send(fd, "GET /v4 HTTP/1.1\r\nHost: a\r\n\r\n");
  raw_read_until(fd, buf, sizeof buf, "conn=");
  ASSERT_STR_CONTAINS(buf, "path=/v4");
  close(fd);
  sq_httpd_stop(s);
}

TEST_MAIN()
