/* err.h — the one error type of sqltde-operator.
 *
 * Every fallible function returns an sq_code (0 = success) and, when the caller
 * passes a non-NULL sq_err, fills it with a one-line human message. Callers
 * propagate with:  rc = f(..., err); if(rc) return rc;
 * The message never contains secrets: callers must not format tokens or key
 * material into it. */
#ifndef SQLTDE_ERR_H
#define SQLTDE_ERR_H

#include <stddef.h>

typedef enum sq_code {
  SQ_OK = 0,
  SQ_ENOMEM,      /* allocation failed */
  SQ_EINVAL,      /* bad argument or bad input (config, spec, flag) */
  SQ_EPARSE,      /* malformed JSON/YAML/PEM from a file or peer */
  SQ_ETOOBIG,     /* a bounded buffer would overflow */
  SQ_ETRANSPORT,  /* could not connect / TLS failure / connection dropped */
  SQ_ETIMEOUT,    /* deadline passed */
  SQ_EHTTP,       /* an HTTP status not covered by a more specific code */
  SQ_EBADREQ,     /* 400 / 422 */
  SQ_EUNAUTH,     /* 401 */
  SQ_EFORBIDDEN,  /* 403 */
  SQ_ENOTFOUND,   /* 404 */
  SQ_ECONFLICT,   /* 409 */
  SQ_EGONE,       /* 410 (watch resourceVersion too old) */
  SQ_ETHROTTLED,  /* 429 */
  SQ_ESERVER,     /* 5xx */
  SQ_EIO,         /* local file / OS error */
  SQ_ECANCELED,   /* stopped on request (shutdown, lost leadership) */
  SQ_ESTATE,      /* operation not valid in the current state */
  SQ_CODE_COUNT
} sq_code;

#define SQ_ERR_MSG_MAX 512

typedef struct sq_err {
  sq_code code;
  long http_status;             /* 0 when not an HTTP error */
  char reason[64];              /* machine-readable reason (k8s reason / ARM code) or "" */
  char message[SQ_ERR_MSG_MAX]; /* one line, no secrets */
} sq_err;

/* Stable lower-case name of a code, e.g. "not-found". Never NULL. */
const char *sq_code_name(sq_code c);

/* Resets e (if non-NULL) to SQ_OK with empty strings. */
void sq_err_clear(sq_err *e);

/* Sets e (if non-NULL) to code c with a printf-style message; returns c so it
 * can be used as `return sq_err_set(err, SQ_EINVAL, "...")`. */
sq_code sq_err_set(sq_err *e, sq_code c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to e's message (keeps code/status/reason). Returns e->code
 * (or SQ_OK when e is NULL). Use to add context while propagating. */
sq_code sq_err_prefix(sq_err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Maps an HTTP status to the most specific code. 2xx -> SQ_OK. */
sq_code sq_code_from_http(long status);

/* True for errors worth retrying with backoff (transport, timeout, 429, 5xx,
 * conflict). Invalid input and auth failures are not retryable. */
int sq_code_retryable(sq_code c);

#endif
