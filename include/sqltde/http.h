/* http.h — the project's one HTTP(S) client, on libcurl.
 *
 * Used for the Kubernetes API and for every Azure endpoint. TLS peer and host
 * verification are always on; the only knobs are which CAs to trust and an
 * optional client certificate. Response bodies land in bounded buffers.
 * Thread-safe: one sq_http may be used from many threads at once; it shares a
 * connection cache between them. */
#ifndef SQLTDE_HTTP_H
#define SQLTDE_HTTP_H

#include <stdatomic.h>
#include <stddef.h>

#include "sqltde/buf.h"
#include "sqltde/err.h"

typedef struct sq_http_opts {
  /* Trust: a PEM bundle file and/or inline PEM; both NULL = system store. */
  const char *ca_file;
  const char *ca_pem;
  /* Optional client certificate (PEM), as files or inline. */
  const char *cert_file;
  const char *key_file;
  const char *cert_pem;
  const char *key_pem;
  long connect_timeout_ms; /* 0 -> 10 s */
  long timeout_ms;         /* 0 -> 60 s; per request, overridable */
  size_t max_body;         /* 0 -> 32 MiB; per request, overridable */
  const char *user_agent;  /* NULL -> "sqltde-operator" */
} sq_http_opts;

typedef struct sq_http sq_http;

/* Creates a client; copies everything in opts (inline PEM is wiped on free). */
sq_code sq_http_new(const sq_http_opts *opts, sq_http **out, sq_err *err);
void sq_http_free(sq_http *h);

typedef struct sq_http_req {
  const char *method; /* "GET", "POST", ... */
  const char *url;
  const char *content_type; /* for the body; NULL -> none sent */
  const char *accept;       /* NULL -> "application/json" */
  const char *body;
  size_t body_len;
  const char *bearer;         /* Authorization: Bearer <bearer>; never logged */
  const char *const *headers; /* extra "Name: value" lines, NULL-terminated, or NULL */
  long timeout_ms;            /* 0 -> client default; <0 -> no overall timeout (streams) */
  size_t max_body;            /* 0 -> client default */
  /* Abort once *cancel becomes non-zero. libcurl polls it at least once a
   * second even on an idle stream, so a stop takes up to ~1 s. */
  const atomic_int *cancel;
} sq_http_req;

/* Headers that callers act on are captured by name (case-insensitive). */
typedef struct sq_http_resp {
  long status; /* 0 if no response was received */
  sq_buf body;
  char content_type[128];
  char retry_after[64];
  char location[8192]; /* ARM allows status URLs of 4 KiB and more */
  char azure_async_operation[8192];
  char www_authenticate[1024];
  char request_id[128]; /* x-ms-request-id, else x-request-id */
} sq_http_resp;

void sq_http_resp_init(sq_http_resp *r);
void sq_http_resp_free(sq_http_resp *r); /* wipes the body */

/* Performs one request. Returns SQ_OK whenever a response arrived, whatever
 * its status (the caller interprets resp->status); SQ_ETRANSPORT, SQ_ETIMEOUT,
 * SQ_ETOOBIG (body over the limit) or SQ_ECANCELED otherwise. resp must have
 * been initialised; it is reset first. */
sq_code sq_http_do(sq_http *h, const sq_http_req *req, sq_http_resp *resp, sq_err *err);

/* Called for each complete line of a streamed 2xx body (without the '\n').
 * Return non-zero to stop the stream (sq_http_stream then returns SQ_ECANCELED). */
typedef int (*sq_http_line_fn)(void *ud, const char *line, size_t len);

/* Streams a response line by line (Kubernetes watch). A line longer than
 * max_line fails with SQ_ETOOBIG. A non-2xx response body is collected into
 * resp->body instead (bounded) and SQ_OK is returned with resp->status set.
 * Returns SQ_OK when the server ended the stream normally. */
sq_code sq_http_stream(sq_http *h, const sq_http_req *req, size_t max_line, sq_http_line_fn fn,
                       void *ud, sq_http_resp *resp, sq_err *err);

/* Percent-encodes s for use in a URL query or path segment into out. */
sq_code sq_url_escape(const char *s, sq_buf *out);

/* Global libcurl init/cleanup; call once from main (idempotent). */
void sq_http_global_init(void);

#endif
