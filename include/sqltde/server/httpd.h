/* server/httpd.h — the project's one HTTP(S) server, on libwebsockets.
 *
 * Serves the operator's /healthz, /readyz, /metrics and admission webhook,
 * and the Azure emulator. A request is fully read (body bounded by max_body;
 * over it -> 413 without calling the handler) and handed to one handler
 * callback, which fills a response. Handlers run on the server's service
 * threads and must be thread-safe when threads > 1. */
#ifndef SQLTDE_SERVER_HTTPD_H
#define SQLTDE_SERVER_HTTPD_H

#include <stddef.h>

#include "sqltde/buf.h"
#include "sqltde/err.h"

typedef struct sq_httpd sq_httpd;

typedef struct sq_httpd_req {
  const char *method;       /* "GET", "PUT", ... */
  /* URL path as lws delivers it: percent-decoded, with "//", "/./" and
   * "/../" collapsed (so "%2F" arrives as '/'). */
  const char *path;
  /* Query string without '?', "" if none. lws decodes and splits it; we
   * re-encode each name=value (RFC 3986 style, spaces as %20, '&' '=' '+'
   * '%' ';' '#' escaped) and join with '&', so standard form decoding
   * yields the client's names and values. */
  const char *query;
  const char *host;         /* Host header without the port, lower-cased, "" if none */
  const char *content_type; /* "" if none */
  const char *body;         /* NUL-terminated for convenience; body_len is authoritative */
  size_t body_len;
  /* Connection number, unique within one server (from 1): requests that
   * share a kept-alive connection share it. For logs and tests. */
  unsigned long conn_id;
  /* Any request header by name (case-insensitive); NULL if absent. Repeated
   * headers come joined with ','. The string lives until the handler
   * returns; call it only from the handler. */
  const char *(*header)(const struct sq_httpd_req *req, const char *name);
  void *impl;
} sq_httpd_req;

typedef struct sq_httpd_resp {
  int status;                /* default 200 */
  char content_type[128];    /* default "application/json" */
  sq_buf headers;            /* extra "Name: value\r\n" lines; use sq_httpd_resp_header */
  sq_buf body;
  int drop;                  /* non-zero: close the connection without answering (fault injection) */
} sq_httpd_resp;

/* Appends "name: value". SQ_EINVAL if either contains CR, LF or other
 * control characters (no header injection), or name has ':' or spaces. */
sq_code sq_httpd_resp_header(sq_httpd_resp *r, const char *name, const char *value);

/* Called once per complete request, on a service thread; blocks that
 * thread (and the connections it serves) while it runs, so keep it quick.
 * resp arrives initialised (200, application/json, empty). A status outside
 * 200..999 becomes 500; 204 and 304 are sent without a body. Must not call
 * sq_httpd_stop. */
typedef void (*sq_httpd_handler)(void *ud, const sq_httpd_req *req, sq_httpd_resp *resp);

typedef struct sq_httpd_opts {
  const char *bind_addr;  /* e.g. "127.0.0.1", "::1", "localhost"; NULL -> all
                           * interfaces (IPv6 dual-stack when available) */
  int port;               /* 0 -> an ephemeral port (see sq_httpd_port) */
  const char *cert_file;  /* PEM, leaf first, may hold the chain; NULL -> plain HTTP.
                           * One certificate for every host name (use SANs). */
  const char *key_file;
  size_t max_body;        /* 0 -> 4 MiB */
  int threads;            /* service threads; 0 -> 1 (max 64). Each runs its
                           * own lws context; a connection stays on the
                           * thread that accepted it. */
  sq_httpd_handler handler;
  void *ud;
} sq_httpd_opts;

/* Starts serving on background thread(s); returns once the port is bound.
 * HTTP/1.1 only (ALPN "http/1.1"; h2c and websocket upgrades get 400),
 * keep-alive, "Expect: 100-continue" honoured. Request bodies need a
 * Content-Length (chunked uploads get 411). Responses always carry
 * Content-Length; large bodies are written in chunks. A client that
 * pipelines gets its first answer, then the connection closes (lws 4.1
 * mishandles pipelined bodies; see httpd.c), and must retry the rest.
 * lws logs only errors and warnings, through sq_log (SQLTDE_LWS_LOG=<lws
 * LLL_ bitmask> for more). */
sq_code sq_httpd_start(const sq_httpd_opts *opts, sq_httpd **out, sq_err *err);
int sq_httpd_port(const sq_httpd *s);
/* Stops, joins the threads, frees. NULL is fine. */
void sq_httpd_stop(sq_httpd *s);

#endif
