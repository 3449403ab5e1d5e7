/* httpd.c — the project's HTTP(S) server on libwebsockets 4.1; see
 * include/sqltde/server/httpd.h.
 *
 * Threads. Debian's lws is built with LWS_MAX_SMP=1: one lws context has
 * exactly one service thread, and lws only sets SO_REUSEPORT when a context
 * has several. So for N threads we run N independent contexts, each with
 * one vhost that has no listener of its own (CONTEXT_PORT_NO_LISTEN_SERVER).
 * We bind the listening socket ourselves and every context adopts a dup of
 * it as a raw descriptor; when it polls readable, that context accept4()s
 * and adopts the connection on its own thread (lws calls must stay on the
 * owning context's thread). Idle threads win the accept race, busy ones
 * do not, which spreads load without a dispatcher. A connection then lives
 * on the thread that accepted it, so the handler runs inline on that thread
 * and can read headers straight from lws: no copies, no hand-off — the
 * admission webhook's latency budget is small.
 *
 * Request flow: LWS_CALLBACK_HTTP (headers parsed) -> body chunks
 * (LWS_CALLBACK_HTTP_BODY) into a bounded sq_buf -> BODY_COMPLETION ->
 * handler -> response written on WRITEABLE: headers (with a small body in
 * the same write), then the body in WRITE_CHUNK pieces, then
 * lws_http_transaction_completed for keep-alive.
 *
 * Known lws 4.1 quirks handled here:
 *  - POST/PUT/PATCH without Content-Length makes lws wait for a 100 MiB
 *    body; we answer such requests with an empty body and close.
 *  - lws does not implement "Expect: 100-continue"; we send the interim
 *    100 ourselves (or a final 413 when the announced body is too big).
 *  - lws has no chunked request-body decoder: chunked uploads get 411.
 *  - pipelined requests with a body make lws spin; we close a connection
 *    whose client pipelined (see pipelined_input_pending).
 *  - the path and query arrive percent-decoded from lws (see httpd.h). */
#include "sqltde/server/httpd.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libwebsockets.h>
#include <openssl/ssl.h>

#include "sqltde/log.h"

#define LOGGER "httpd"

#define DEFAULT_MAX_BODY ((size_t)4 * 1024 * 1024)
/* Response body write size; also lws' per-thread I/O buffer so each chunk
 * goes out in one send instead of being copied into lws' overflow list. */
#define WRITE_CHUNK (32 * 1024)
/* lws header table per connection: room for long bearer tokens. */
#define HEADER_DATA 16384
/* Connections that may be in the header phase at once, per thread. */
#define HEADER_POOL 256
/* An over-limit body announced up to this size is read and discarded so
 * the client gets a clean 413 on a reusable connection; bigger ones get a
 * 413 and a close straight away. */
#define DRAIN_MAX ((unsigned long long)64 * 1024 * 1024)
/* Response bodies come from our own handlers; this only catches bugs. */
#define RESP_BODY_MAX ((size_t)256 * 1024 * 1024)
#define RESP_HEADERS_MAX ((size_t)64 * 1024)
#define KEEPALIVE_S 60
#define TIMEOUT_S 30
#define MAX_THREADS 64
#define ACCEPT_BATCH 16
#define ACCEPT_RETRY_US (100 * 1000)

/* ---- per-connection state ---------------------------------------------- */

typedef struct hval {
  struct hval *next;
  char v[];
} hval;

typedef enum phase {
  PH_IDLE = 0, /* no request yet / between requests */
  PH_BODY,     /* reading the request body */
  PH_RESP,     /* response prepared, being written */
  PH_DRAIN,    /* all written; waiting for lws to flush what it buffered */
} phase;

struct worker;

/* lws allocates this zeroed per connection and frees it at every
 * transaction end (keep-alive re-binds the protocol), so everything it owns
 * is released by conn_reset, called from every path that can end it. */
typedef struct conn {
  sq_httpd_req req;
  struct lws *wsi;
  phase ph;
  int over;        /* body larger than max_body: answer 413 */
  int close_after; /* close instead of keep-alive after the response */
  int is_head;
  char *path;
  char *host;
  char *ctype;
  sq_buf query;
  sq_buf body;
  hval *hvals; /* strings returned by req->header(), freed per request */
  sq_httpd_resp resp;
  int headers_sent;
  size_t body_off;
  unsigned char *chunk; /* LWS_PRE + WRITE_CHUNK scratch for body writes */
} conn;

typedef struct worker {
  sq_httpd *srv;
  int idx;
  struct lws_context *ctx;
  struct lws_vhost *vh;
  struct lws *accept_wsi;
  lws_sorted_usec_list_t accept_retry;
  pthread_t thread;
  int thread_started;
} worker;

struct sq_httpd {
  sq_httpd_handler handler;
  void *ud;
  size_t max_body;
  int listen_fd;
  int port;
  int nworkers;
  worker *workers;
  atomic_int stopping;
  atomic_ulong next_conn_id;
};

/* ---- process-wide lws setup -------------------------------------------- */

/* lws keeps process-global state (log level, OpenSSL ex-data indexes that
 * each TLS context creation re-allocates): create/destroy contexts under
 * one lock. */
static pthread_mutex_t g_lws_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

typedef struct known_hdr {
  const char *name; /* lws spelling, lower case, with trailing ':' */
  size_t len;       /* without the ':' */
  enum lws_token_indexes tok;
} known_hdr;

static known_hdr g_known[WSI_TOKEN_COUNT];
static size_t g_nknown;

/* Given to every TLS vhost as its (unused) client SSL_CTX. Otherwise lws
 * builds one per vhost, loading the whole system CA store, and with several
 * contexts in one process fails to free it: lws looks its bookkeeping up
 * through a process-global ex-data index that the next context creation
 * overwrites. Created once, lives for the process. */
static SSL_CTX *g_client_ctx;

static void lws_log_emit(int level, const char *line) {
  char msg[512];
  size_t n = strlen(line);
  while(n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
    n--;
  if(n >= sizeof msg)
    n = sizeof msg - 1;
  memcpy(msg, line, n);
  msg[n] = '\0';
  sq_logf(level & LLL_ERR ? SQ_LOG_ERROR : level & LLL_WARN ? SQ_LOG_WARN : SQ_LOG_DEBUG, "lws",
          "%s", msg);
}

static void global_init(void) {
  /* Quiet by default; SQLTDE_LWS_LOG=<lws LLL_ bitmask> for debugging. */
  int lvl = LLL_ERR | LLL_WARN;
  const char *env = getenv("SQLTDE_LWS_LOG");
  if(env && *env)
    lvl = atoi(env);
  lws_set_log_level(lvl, lws_log_emit);

  /* Request-header names lws parses into tokens; anything else is a
   * "custom" header looked up by name. */
  for(int t = 0; t < WSI_TOKEN_COUNT; t++) {
    const char *s = (const char *)lws_token_to_string((enum lws_token_indexes)t);
    if(!s || !*s || s[0] == ':')
      continue;
    size_t n = strlen(s);
    if(n < 2 || s[n - 1] != ':')
      continue;
    g_known[g_nknown].name = s;
    g_known[g_nknown].len = n - 1;
    g_known[g_nknown].tok = (enum lws_token_indexes)t;
    g_nknown++;
  }
  g_client_ctx = SSL_CTX_new(TLS_client_method());
}

/* ---- small pure helpers ------------------------------------------------ */

static int is_unreserved_q(unsigned char c) {
  /* Characters left as-is when re-encoding a decoded query component:
   * RFC 3986 unreserved plus a few sub-delims that carry no meaning in
   * name=value&... parsing ('$' for OData's $filter, ',' ':' '/' '@'). */
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '.' || c == '_' || c == '~' || c == '$' || c == ',' || c == ':' ||
         c == '/' || c == '@' || c == '!' || c == '*' || c == '(' || c == ')' || c == '\'';
}

static sq_code add_escaped(sq_buf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789ABCDEF";
  sq_code rc = SQ_OK;
  for(size_t i = 0; i < n && !rc; i++) {
    unsigned char c = (unsigned char)s[i];
    if(is_unreserved_q(c)) {
      rc = sq_buf_add(b, &s[i], 1);
    } else {
      char e[3] = {'%', hex[c >> 4], hex[c & 15]};
      rc = sq_buf_add(b, e, 3);
    }
  }
  return rc;
}

/* lws hands us the query already split at '&'/';' and percent-decoded
 * ('+' became ' '); re-encode each name=value so the handler sees one
 * unambiguous, standard query string. */
static sq_code build_query(struct lws *wsi, sq_buf *out) {
  int total = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS);
  if(total <= 0)
    return SQ_OK;
  char *frag = malloc((size_t)total + 1);
  if(!frag)
    return SQ_ENOMEM;
  sq_code rc = SQ_OK;
  for(int i = 0; !rc; i++) {
    int n = lws_hdr_copy_fragment(wsi, frag, total + 1, WSI_TOKEN_HTTP_URI_ARGS, i);
    if(n < 0)
      break;
    if(n == 0)
      continue;
    if(out->len)
      rc = sq_buf_add(out, "&", 1);
    const char *eq = memchr(frag, '=', (size_t)n);
    if(!rc && eq) {
      rc = add_escaped(out, frag, (size_t)(eq - frag));
      if(!rc)
        rc = sq_buf_add(out, "=", 1);
      if(!rc)
        rc = add_escaped(out, eq + 1, (size_t)(n - (eq + 1 - frag)));
    } else if(!rc) {
      rc = add_escaped(out, frag, (size_t)n);
    }
  }
  free(frag);
  return rc;
}

/* "Example.COM:8443" -> "example.com"; "[::1]:80" -> "[::1]". */
static char *host_from_header(const char *h) {
  size_t n = strlen(h);
  if(h[0] == '[') {
    const char *rb = strchr(h, ']');
    if(rb)
      n = (size_t)(rb - h) + 1;
  } else {
    const char *colon = strchr(h, ':');
    if(colon)
      n = (size_t)(colon - h);
  }
  char *s = malloc(n + 1);
  if(!s)
    return NULL;
  for(size_t i = 0; i < n; i++)
    s[i] = (char)((h[i] >= 'A' && h[i] <= 'Z') ? h[i] + 32 : h[i]);
  s[n] = '\0';
  return s;
}

static int has_token_ci(const char *hay, const char *needle) {
  size_t n = strlen(needle);
  for(const char *p = hay; *p; p++)
    if(!strncasecmp(p, needle, n))
      return 1;
  return 0;
}

static int header_safe(const char *s, int is_name) {
  for(const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if(*p == '\r' || *p == '\n' || *p == 0x7f || (*p < 0x20 && *p != '\t'))
      return 0;
    if(is_name && (*p == ':' || *p == ' ' || *p == '\t'))
      return 0;
  }
  return 1;
}

sq_code sq_httpd_resp_header(sq_httpd_resp *r, const char *name, const char *value) {
  if(!r || !name || !*name || !value || !header_safe(name, 1) || !header_safe(value, 0))
    return SQ_EINVAL;
  return sq_buf_addf(&r->headers, "%s: %s\r\n", name, value);
}

/* ---- request access ---------------------------------------------------- */

static const char *keep_str(conn *c, const char *s, size_t n) {
  hval *h = malloc(sizeof *h + n + 1);
  if(!h)
    return NULL;
  memcpy(h->v, s, n);
  h->v[n] = '\0';
  h->next = c->hvals;
  c->hvals = h;
  return h->v;
}

/* req->header: known lws tokens first, then custom headers (which lws
 * stores with lower-cased names including the ':'). */
static const char *req_header(const sq_httpd_req *req, const char *name) {
  conn *c = req ? req->impl : NULL;
  if(!c || !c->wsi || !name || !*name)
    return NULL;
  size_t nlen = strlen(name);
  for(size_t i = 0; i < g_nknown; i++) {
    if(g_known[i].len != nlen || strncasecmp(g_known[i].name, name, nlen))
      continue;
    int len = lws_hdr_total_length(c->wsi, g_known[i].tok);
    if(len <= 0)
      return NULL;
    char *tmp = malloc((size_t)len + 1);
    if(!tmp)
      return NULL;
    const char *out = NULL;
    if(lws_hdr_copy(c->wsi, tmp, len + 1, g_known[i].tok) >= 0)
      out = keep_str(c, tmp, strlen(tmp));
    sq_wipe(tmp, (size_t)len + 1); /* Authorization passes through here */
    free(tmp);
    return out;
  }
  char key[256];
  if(nlen + 2 > sizeof key)
    return NULL;
  for(size_t i = 0; i < nlen; i++)
    key[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
  key[nlen] = ':';
  key[nlen + 1] = '\0';
  int len = lws_hdr_custom_length(c->wsi, key, (int)nlen + 1);
  if(len < 0)
    return NULL;
  char *tmp = malloc((size_t)len + 1);
  if(!tmp)
    return NULL;
  const char *out = NULL;
  if(lws_hdr_custom_copy(c->wsi, tmp, len + 1, key, (int)nlen + 1) >= 0)
    out = keep_str(c, tmp, (size_t)len);
  sq_wipe(tmp, (size_t)len + 1);
  free(tmp);
  return out;
}

static char *hdr_dup(struct lws *wsi, enum lws_token_indexes tok) {
  int len = lws_hdr_total_length(wsi, tok);
  char *s = malloc(len > 0 ? (size_t)len + 1 : 1);
  if(!s)
    return NULL;
  s[0] = '\0';
  if(len > 0 && lws_hdr_copy(wsi, s, len + 1, tok) < 0)
    s[0] = '\0';
  return s;
}

/* ---- connection lifecycle ---------------------------------------------- */

static void free_request(conn *c) {
  free(c->path);
  free(c->host);
  free(c->ctype);
  c->path = c->host = c->ctype = NULL;
  sq_buf_free(&c->query);
  sq_buf_free_wipe(&c->body); /* token requests carry client secrets */
  while(c->hvals) {
    hval *n = c->hvals->next;
    sq_wipe(c->hvals->v, strlen(c->hvals->v));
    free(c->hvals);
    c->hvals = n;
  }
}

static void conn_reset(conn *c) {
  if(!c)
    return;
  free_request(c);
  sq_buf_free(&c->resp.headers);
  sq_buf_free_wipe(&c->resp.body); /* tokens from the emulator's login endpoint */
  if(c->chunk) {
    sq_wipe(c->chunk, LWS_PRE + WRITE_CHUNK);
    free(c->chunk);
  }
  memset(c, 0, sizeof *c);
}

static sq_httpd *srv_of(struct lws *wsi) {
  worker *w = lws_context_user(lws_get_context(wsi));
  return w ? w->srv : NULL;
}

static void resp_init(sq_httpd_resp *r) {
  memset(r, 0, sizeof *r);
  r->status = 200;
  snprintf(r->content_type, sizeof r->content_type, "application/json");
  sq_buf_init(&r->headers, RESP_HEADERS_MAX);
  sq_buf_init(&r->body, RESP_BODY_MAX);
}

/* Prepares a response without calling the handler (413, 411, 400...). */
static int reply_status(conn *c, struct lws *wsi, int status, const char *msg, int close_after) {
  free_request(c);
  resp_init(&c->resp);
  c->resp.status = status;
  snprintf(c->resp.content_type, sizeof c->resp.content_type, "text/plain; charset=utf-8");
  if(sq_buf_adds(&c->resp.body, msg))
    return -1;
  c->close_after |= close_after;
  c->ph = PH_RESP;
  lws_callback_on_writable(wsi);
  return 0;
}

static int dispatch(conn *c, struct lws *wsi) {
  sq_httpd *s = srv_of(wsi);
  if(!s)
    return -1;
  c->req.path = c->path ? c->path : "/";
  c->req.query = c->query.ptr ? c->query.ptr : "";
  c->req.host = c->host ? c->host : "";
  c->req.content_type = c->ctype ? c->ctype : "";
  c->req.body = c->body.ptr ? c->body.ptr : "";
  c->req.body_len = c->body.len;
  c->req.header = req_header;
  c->req.impl = c;
  resp_init(&c->resp);
  c->ph = PH_RESP;

  s->handler(s->ud, &c->req, &c->resp);

  free_request(c);
  unsigned long id = c->req.conn_id;
  memset(&c->req, 0, sizeof c->req);
  c->req.conn_id = id;
  if(c->resp.drop)
    return -1; /* lws closes the connection; nothing is sent */
  if(c->resp.status < 200 || c->resp.status > 999)
    c->resp.status = 500; /* 1xx are not final answers */
  if(c->resp.status == 204 || c->resp.status == 304)
    sq_buf_free_wipe(&c->resp.body); /* these carry no body (RFC 9110) */
  lws_callback_on_writable(wsi);
  return 0;
}

static const struct {
  enum lws_token_indexes tok;
  const char *name;
  int body_expected; /* lws waits for a body even without Content-Length */
} k_methods[] = {
    {WSI_TOKEN_GET_URI, "GET", 0},         {WSI_TOKEN_POST_URI, "POST", 1},
    {WSI_TOKEN_PUT_URI, "PUT", 1},         {WSI_TOKEN_PATCH_URI, "PATCH", 1},
    {WSI_TOKEN_DELETE_URI, "DELETE", 0},   {WSI_TOKEN_OPTIONS_URI, "OPTIONS", 0},
    {WSI_TOKEN_HEAD_URI, "HEAD", 0},
};

static int on_request(conn *c, struct lws *wsi, const char *uri, size_t uri_len) {
  sq_httpd *s = srv_of(wsi);
  if(!s)
    return -1;
  conn_reset(c);
  c->wsi = wsi;
  /* The id lives on the wsi: conn is wiped at every transaction end. */
  uintptr_t id = (uintptr_t)lws_get_opaque_user_data(wsi);
  if(!id) {
    id = (uintptr_t)(atomic_fetch_add(&s->next_conn_id, 1) + 1);
    lws_set_opaque_user_data(wsi, (void *)id);
  }
  c->req.conn_id = (unsigned long)id;

  int body_expected = 0;
  for(size_t i = 0; i < sizeof k_methods / sizeof k_methods[0]; i++)
    if(lws_hdr_total_length(wsi, k_methods[i].tok)) {
      c->req.method = k_methods[i].name;
      body_expected = k_methods[i].body_expected;
      break;
    }
  if(!c->req.method)
    return -1; /* CONNECT and friends: not ours */
  c->is_head = !strcmp(c->req.method, "HEAD");

  c->path = malloc(uri_len + 1);
  if(!c->path)
    return -1;
  memcpy(c->path, uri, uri_len);
  c->path[uri_len] = '\0';

  sq_buf_init(&c->query, (size_t)HEADER_DATA * 3);
  sq_buf_init(&c->body, s->max_body);
  if(build_query(wsi, &c->query))
    return reply_status(c, wsi, 400, "bad query string\n", 1);

  char *h = hdr_dup(wsi, WSI_TOKEN_HOST);
  c->host = h ? host_from_header(h) : NULL;
  free(h);
  c->ctype = hdr_dup(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE);
  if(!c->host || !c->ctype)
    return -1;

  char tmp[64];
  int has_cl = 0;
  unsigned long long cl = 0;
  if(lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 &&
     lws_hdr_copy(wsi, tmp, sizeof tmp, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0) {
    char *end;
    errno = 0;
    cl = strtoull(tmp, &end, 10);
    if(errno || end == tmp || *end || tmp[0] == '-')
      return reply_status(c, wsi, 400, "bad Content-Length\n", 1);
    has_cl = 1;
  }
  int chunked = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0;
  int expect = 0;
  if(lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_EXPECT) > 0 &&
     lws_hdr_copy(wsi, tmp, sizeof tmp, WSI_TOKEN_HTTP_EXPECT) > 0)
    expect = has_token_ci(tmp, "100-continue");

  if(chunked && !has_cl)
    return reply_status(c, wsi, 411, "chunked request bodies are not supported; send Content-Length\n",
                        1);
  if(has_cl && cl > s->max_body) {
    c->over = 1;
    if(expect || cl > DRAIN_MAX) /* the client has not sent it / too much to drain */
      return reply_status(c, wsi, 413, "request body too large\n", 1);
    c->ph = PH_BODY; /* drain, then 413 at BODY_COMPLETION */
    return 0;
  }
  if(has_cl && cl > 0) {
    if(expect) {
      static const char k100[] = "HTTP/1.1 100 Continue\r\n\r\n";
      unsigned char b[LWS_PRE + sizeof k100];
      memcpy(b + LWS_PRE, k100, sizeof k100 - 1);
      if(lws_write(wsi, b + LWS_PRE, sizeof k100 - 1, LWS_WRITE_HTTP) < 0)
        return -1;
    }
    c->ph = PH_BODY;
    return 0;
  }
  /* No body. lws still expects one for POST/PUT/PATCH without a
   * Content-Length (it would read the next request as body): close after. */
  if(!has_cl && body_expected)
    c->close_after = 1;
  return dispatch(c, wsi);
}

static int on_body(conn *c, const void *in, size_t len) {
  if(c->ph != PH_BODY || c->over)
    return 0;
  if(sq_buf_add(&c->body, in, len)) {
    c->over = 1;
    sq_buf_free_wipe(&c->body);
  }
  return 0;
}

static int on_body_done(conn *c, struct lws *wsi) {
  if(c->ph != PH_BODY)
    return 0; /* already answered (e.g. POST with Content-Length: 0) */
  if(c->over)
    return reply_status(c, wsi, 413, "request body too large\n", 0);
  return dispatch(c, wsi);
}

/* True when lws still holds bytes the client sent after the request just
 * answered (HTTP/1.1 pipelining). lws 4.1 then keeps the header table
 * attached across lws_http_transaction_completed, and detaches it
 * otherwise; lws_hdr_custom_copy is the one public call that tells the two
 * apart (it clears dst only when a table is attached).
 *
 * Why we care: lws 4.1 parses a pipelined request out of its buffer
 * without consuming it first, so a pipelined request with a body is read
 * with its own header bytes as body and then spins forever in
 * lws_http_action (found with this file's tests). We refuse pipelining
 * instead: the client gets its first answer and a close, and retries the
 * rest as RFC 9112 section 9.3.2 requires of pipelining clients. */
static int pipelined_input_pending(struct lws *wsi) {
  char probe = 'x';
  (void)lws_hdr_custom_copy(wsi, &probe, 1, "x-sqltde-probe:", 15);
  return probe == '\0';
}

/* Ends a response: keep-alive or close. */
static int finish(conn *c, struct lws *wsi) {
  int close_now = c->close_after;
  conn_reset(c);
  if(close_now)
    return -1;
  if(lws_http_transaction_completed(wsi))
    return -1;
  /* c is gone: lws re-created the per-connection data. */
  return pipelined_input_pending(wsi) ? -1 : 0;
}

/* After the last write: finish now, or once lws has flushed a partial
 * write (lws delivers WRITEABLE again only when its buffer is empty), so
 * the transaction really is complete when we look for pipelined input. */
static int written(conn *c, struct lws *wsi) {
  if(!lws_partial_buffered(wsi))
    return finish(c, wsi);
  c->ph = PH_DRAIN;
  lws_callback_on_writable(wsi);
  return 0;
}

static int on_writeable(conn *c, struct lws *wsi) {
  if(c->ph == PH_DRAIN)
    return finish(c, wsi);
  if(c->ph != PH_RESP)
    return 0;
  sq_httpd_resp *r = &c->resp;
  size_t blen = c->is_head ? 0 : r->body.len;

  if(!c->headers_sent) {
    size_t ctlen = strnlen(r->content_type, sizeof r->content_type);
    size_t hcap = 512 + ctlen + r->headers.len;
    size_t inline_body = blen <= WRITE_CHUNK ? blen : 0;
    unsigned char *buf = malloc(LWS_PRE + hcap + inline_body);
    if(!buf)
      return -1;
    unsigned char *start = buf + LWS_PRE, *p = start, *end = start + hcap - 1;
    char ct[sizeof r->content_type];
    memcpy(ct, r->content_type, ctlen);
    ct[ctlen] = '\0';
    int bad = lws_add_http_common_headers(wsi, (unsigned int)r->status,
                                          ctlen && header_safe(ct, 0) ? ct : NULL,
                                          (lws_filepos_t)r->body.len, &p, end);
    if(!bad && c->close_after)
      bad = lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION, (const unsigned char *)"close",
                                         5, &p, end);
    if(!bad && r->headers.len) {
      /* Lines come from sq_httpd_resp_header (validated); refuse a block
       * that was filled some other way and does not end a line. */
      if((size_t)(end - p) < r->headers.len || r->headers.len < 2 ||
         memcmp(r->headers.ptr + r->headers.len - 2, "\r\n", 2)) {
        bad = 1;
      } else {
        memcpy(p, r->headers.ptr, r->headers.len);
        p += r->headers.len;
      }
    }
    if(!bad)
      bad = lws_finalize_http_header(wsi, &p, end);
    if(bad) {
      free(buf);
      SQ_ERROR(LOGGER, "could not build response headers (status %d)", r->status);
      return -1;
    }
    /* A small body rides in the same write: one packet per answer. */
    if(inline_body) {
      memcpy(p, r->body.ptr, inline_body);
      p += inline_body;
      c->body_off = inline_body;
    }
    int n = lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS);
    sq_wipe(buf, LWS_PRE + hcap + inline_body);
    free(buf);
    if(n < 0)
      return -1;
    c->headers_sent = 1;
    if(c->body_off >= blen)
      return written(c, wsi);
    lws_callback_on_writable(wsi);
    return 0;
  }

  if(!c->chunk) {
    c->chunk = malloc(LWS_PRE + WRITE_CHUNK);
    if(!c->chunk)
      return -1;
  }
  size_t n = blen - c->body_off;
  if(n > WRITE_CHUNK)
    n = WRITE_CHUNK;
  memcpy(c->chunk + LWS_PRE, r->body.ptr + c->body_off, n);
  int last = c->body_off + n >= blen;
  if(lws_write(wsi, c->chunk + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < 0)
    return -1;
  c->body_off += n;
  if(last)
    return written(c, wsi);
  lws_callback_on_writable(wsi);
  return 0;
}

static int http_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len) {
  conn *c = user;
  switch(reason) {
  case LWS_CALLBACK_HTTP:
    return c ? on_request(c, wsi, in ? in : "/", in ? len : 1) : -1;
  case LWS_CALLBACK_HTTP_BODY:
    return c ? on_body(c, in, len) : -1;
  case LWS_CALLBACK_HTTP_BODY_COMPLETION:
    return c ? on_body_done(c, wsi) : -1;
  case LWS_CALLBACK_HTTP_WRITEABLE:
    return c ? on_writeable(c, wsi) : -1;
  case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
    /* No websocket, no h2c. lws cannot ignore an Upgrade header, so answer
     * 400 (lws writes it; returning 1 ends the transaction). */
    if(lws_return_http_status(wsi, HTTP_STATUS_BAD_REQUEST, "protocol upgrades are not supported"))
      return -1;
    return 1;
  case LWS_CALLBACK_RAW_ADOPT:
  case LWS_CALLBACK_RAW_RX:
    return -1; /* CONNECT turned the connection raw: not served */
  case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
  case LWS_CALLBACK_CLOSED_HTTP:
  case LWS_CALLBACK_WSI_DESTROY:
    conn_reset(c);
    return 0;
  default:
    return 0;
  }
}

/* ---- accepting --------------------------------------------------------- */

static void accept_rearm(lws_sorted_usec_list_t *sul) {
  worker *w = lws_container_of(sul, worker, accept_retry);
  if(w->accept_wsi)
    lws_rx_flow_control(w->accept_wsi, 1);
}

static int accept_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len) {
  (void)user;
  (void)in;
  (void)len;
  worker *w = lws_context_user(lws_get_context(wsi));
  switch(reason) {
  case LWS_CALLBACK_RAW_RX_FILE:
    for(int i = 0; i < ACCEPT_BATCH && !atomic_load(&w->srv->stopping); i++) {
      int fd = accept4(w->srv->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if(fd < 0) {
        if(errno == EINTR || errno == ECONNABORTED)
          continue;
        if(errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          /* Out of descriptors: stop polling the listener for a moment
           * instead of spinning on a socket that stays readable. */
          SQ_WARN(LOGGER, "accept: %s; pausing accepts", strerror(errno));
          lws_rx_flow_control(wsi, 0);
          lws_sul_schedule(w->ctx, 0, &w->accept_retry, accept_rearm, ACCEPT_RETRY_US);
        }
        break; /* EAGAIN: another thread took it */
      }
      int one = 1;
      (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      /* On failure (e.g. a TLS handshake that fails at once) lws has
       * already closed fd. */
      if(!lws_adopt_socket_vhost(w->vh, fd))
        SQ_DEBUG(LOGGER, "connection dropped during adoption");
    }
    return 0;
  case LWS_CALLBACK_RAW_CLOSE_FILE:
    if(w)
      w->accept_wsi = NULL;
    return 0;
  default:
    return 0;
  }
}

static const struct lws_protocols k_protocols[] = {
    {.name = "sq-http", .callback = http_cb, .per_session_data_size = sizeof(conn)},
    {.name = "sq-accept", .callback = accept_cb, .per_session_data_size = 0},
    {.name = NULL, .callback = NULL},
};

/* ---- listening socket -------------------------------------------------- */

static int try_bind(const struct sockaddr *sa, socklen_t salen, int family, int dual) {
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if(fd < 0)
    return -1;
  int one = 1, zero = 0;
  (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if(family == AF_INET6 && dual)
    (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  if(bind(fd, sa, salen) || listen(fd, 1024)) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

static sq_code open_listener(const char *bind_addr, int port, int *fd_out, int *port_out,
                             sq_err *err) {
  char portstr[16], host[256];
  snprintf(portstr, sizeof portstr, "%d", port);
  const char *node = NULL;
  if(bind_addr && *bind_addr) {
    size_t n = strlen(bind_addr);
    if(n >= sizeof host)
      return sq_err_set(err, SQ_EINVAL, "httpd: bind address too long");
    if(bind_addr[0] == '[' && bind_addr[n - 1] == ']') {
      memcpy(host, bind_addr + 1, n - 2);
      host[n - 2] = '\0';
    } else {
      memcpy(host, bind_addr, n + 1);
    }
    node = host;
  }
  int fd = -1, e = 0;
  if(!node) {
    /* All interfaces: dual-stack when the host has IPv6, else IPv4. */
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port),
                              .sin6_addr = in6addr_any};
    fd = try_bind((struct sockaddr *)&a6, sizeof a6, AF_INET6, 1);
    if(fd < 0) {
      struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_ANY)};
      fd = try_bind((struct sockaddr *)&a4, sizeof a4, AF_INET, 0);
    }
    e = errno;
  } else {
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int g = getaddrinfo(node, portstr, &hints, &res);
    if(g)
      return sq_err_set(err, SQ_EINVAL, "httpd: cannot resolve bind address %s: %s", node,
                        gai_strerror(g));
    for(struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
      fd = try_bind(ai->ai_addr, ai->ai_addrlen, ai->ai_family, 0);
      e = errno;
    }
    freeaddrinfo(res);
  }
  if(fd < 0)
    return sq_err_set(err, SQ_EIO, "httpd: cannot listen on %s:%d: %s", node ? node : "*", port,
                      strerror(e));
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if(getsockname(fd, (struct sockaddr *)&ss, &sl)) {
    e = errno;
    close(fd);
    return sq_err_set(err, SQ_EIO, "httpd: getsockname: %s", strerror(e));
  }
  *port_out = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                       : ntohs(((struct sockaddr_in *)&ss)->sin_port);
  *fd_out = fd;
  return SQ_OK;
}

/* ---- start / stop ------------------------------------------------------ */

static void *service_main(void *arg) {
  worker *w = arg;
  char name[16];
  snprintf(name, sizeof name, "sq-httpd-%d", w->idx);
  pthread_setname_np(pthread_self(), name);
  while(!atomic_load(&w->srv->stopping))
    if(lws_service(w->ctx, 0) < 0)
      break;
  return NULL;
}

static sq_code worker_init(sq_httpd *s, worker *w, const sq_httpd_opts *opts, sq_err *err) {
  struct lws_context_creation_info ci;
  memset(&ci, 0, sizeof ci);
  ci.port = CONTEXT_PORT_NO_LISTEN_SERVER;
  ci.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
  if(opts->cert_file)
    ci.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
  ci.user = w;
  ci.gid = -1;
  ci.uid = -1;
  ci.max_http_header_data = HEADER_DATA;
  ci.max_http_header_pool = HEADER_POOL;
  ci.pt_serv_buf_size = WRITE_CHUNK;
  ci.timeout_secs = TIMEOUT_S;

  pthread_mutex_lock(&g_lws_lock);
  w->ctx = lws_create_context(&ci);
  pthread_mutex_unlock(&g_lws_lock);
  if(!w->ctx)
    return sq_err_set(err, SQ_ENOMEM, "httpd: lws_create_context failed");

  struct lws_context_creation_info vi;
  memset(&vi, 0, sizeof vi);
  vi.port = CONTEXT_PORT_NO_LISTEN_SERVER;
  vi.vhost_name = "default";
  vi.protocols = k_protocols;
  vi.options = ci.options;
  vi.keepalive_timeout = KEEPALIVE_S;
  vi.timeout_secs = TIMEOUT_S;
  /* HTTP/1.1 only: the write path relies on h1 framing (a small body goes
   * out with the headers in one write). */
  vi.alpn = "http/1.1";
  vi.ssl_cert_filepath = opts->cert_file;
  vi.ssl_private_key_filepath = opts->key_file;
  vi.provided_client_ssl_ctx = g_client_ctx;
  pthread_mutex_lock(&g_lws_lock);
  w->vh = lws_create_vhost(w->ctx, &vi);
  pthread_mutex_unlock(&g_lws_lock);
  if(!w->vh)
    return sq_err_set(err, SQ_EINVAL,
                      opts->cert_file ? "httpd: cannot set up TLS with %s / %s (check both PEM files)"
                                      : "httpd: lws_create_vhost failed%s%s",
                      opts->cert_file ? opts->cert_file : "", opts->key_file ? opts->key_file : "");

  int dupfd = fcntl(s->listen_fd, F_DUPFD_CLOEXEC, 0);
  if(dupfd < 0)
    return sq_err_set(err, SQ_EIO, "httpd: dup: %s", strerror(errno));
  lws_sock_file_fd_type fd;
  fd.filefd = dupfd;
  /* Not yet serviced by any thread, so adopting from here is safe. */
  w->accept_wsi = lws_adopt_descriptor_vhost(w->vh, LWS_ADOPT_RAW_FILE_DESC, fd, "sq-accept", NULL);
  if(!w->accept_wsi) {
    close(dupfd);
    return sq_err_set(err, SQ_EIO, "httpd: cannot watch the listening socket");
  }
  return SQ_OK;
}

sq_code sq_httpd_start(const sq_httpd_opts *opts, sq_httpd **out, sq_err *err) {
  if(!opts || !out || !opts->handler)
    return sq_err_set(err, SQ_EINVAL, "httpd: handler is required");
  *out = NULL;
  if(opts->port < 0 || opts->port > 65535)
    return sq_err_set(err, SQ_EINVAL, "httpd: bad port %d", opts->port);
  if(!opts->cert_file != !opts->key_file)
    return sq_err_set(err, SQ_EINVAL, "httpd: cert_file and key_file go together");
  if(opts->threads < 0 || opts->threads > MAX_THREADS)
    return sq_err_set(err, SQ_EINVAL, "httpd: threads must be 0..%d", MAX_THREADS);
  if(opts->cert_file) {
    /* lws only logs a bad path; say which file is wrong. */
    if(access(opts->cert_file, R_OK))
      return sq_err_set(err, SQ_EINVAL, "httpd: cannot read certificate %s: %s", opts->cert_file,
                        strerror(errno));
    if(access(opts->key_file, R_OK))
      return sq_err_set(err, SQ_EINVAL, "httpd: cannot read key %s: %s", opts->key_file,
                        strerror(errno));
  }
  pthread_once(&g_once, global_init);
  if(opts->cert_file && !g_client_ctx)
    return sq_err_set(err, SQ_ENOMEM, "httpd: cannot create an SSL context");

  sq_httpd *s = calloc(1, sizeof *s);
  if(!s)
    return sq_err_set(err, SQ_ENOMEM, "httpd: out of memory");
  s->handler = opts->handler;
  s->ud = opts->ud;
  s->max_body = opts->max_body ? opts->max_body : DEFAULT_MAX_BODY;
  s->listen_fd = -1;
  s->nworkers = opts->threads > 0 ? opts->threads : 1;
  atomic_init(&s->stopping, 0);
  atomic_init(&s->next_conn_id, 0);
  sq_code rc = open_listener(opts->bind_addr, opts->port, &s->listen_fd, &s->port, err);
  if(rc)
    goto fail;
  s->workers = calloc((size_t)s->nworkers, sizeof *s->workers);
  if(!s->workers) {
    rc = sq_err_set(err, SQ_ENOMEM, "httpd: out of memory");
    goto fail;
  }
  for(int i = 0; i < s->nworkers; i++) {
    s->workers[i].srv = s;
    s->workers[i].idx = i;
    rc = worker_init(s, &s->workers[i], opts, err);
    if(rc)
      goto fail;
  }
  for(int i = 0; i < s->nworkers; i++) {
    if(pthread_create(&s->workers[i].thread, NULL, service_main, &s->workers[i])) {
      rc = sq_err_set(err, SQ_ENOMEM, "httpd: cannot start a service thread");
      goto fail;
    }
    s->workers[i].thread_started = 1;
  }
  SQ_DEBUG(LOGGER, "listening on port %d (%s, %d thread%s)", s->port,
           opts->cert_file ? "https" : "http", s->nworkers, s->nworkers == 1 ? "" : "s");
  *out = s;
  return SQ_OK;
fail:
  sq_httpd_stop(s);
  return rc;
}

int sq_httpd_port(const sq_httpd *s) { return s ? s->port : 0; }

void sq_httpd_stop(sq_httpd *s) {
  if(!s)
    return;
  atomic_store(&s->stopping, 1);
  for(int i = 0; s->workers && i < s->nworkers; i++)
    if(s->workers[i].ctx)
      lws_cancel_service(s->workers[i].ctx);
  for(int i = 0; s->workers && i < s->nworkers; i++)
    if(s->workers[i].thread_started)
      pthread_join(s->workers[i].thread, NULL);
  /* Service threads are gone: destroying from here is single-threaded per
   * context. Open connections are closed (their conns freed by the close
   * callbacks) and the listener dups are closed with their wsis. */
  for(int i = 0; s->workers && i < s->nworkers; i++) {
    worker *w = &s->workers[i];
    if(!w->ctx)
      continue;
    lws_sul_cancel(&w->accept_retry);
    pthread_mutex_lock(&g_lws_lock);
    lws_context_destroy(w->ctx);
    pthread_mutex_unlock(&g_lws_lock);
    w->ctx = NULL;
  }
  if(s->listen_fd >= 0)
    close(s->listen_fd);
  free(s->workers);
  free(s);
}
