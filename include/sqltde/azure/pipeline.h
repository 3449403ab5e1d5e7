/* azure/pipeline.h — the one request loop every Azure client shares.
 *
 * Entra ID, IMDS, ARM and Key Vault requests all go through sq_azure_exec:
 * authorize (a callback: ARM asks the credential for a token, Key Vault runs
 * its 401 challenge), send with sq_http, report a metric, and decide:
 *   - 401: ask the authorizer whether to try again (it refreshes the token
 *     once, or learns the vault's challenge); never more than twice;
 *   - 429: wait exactly what Retry-After says (delta-seconds or HTTP-date);
 *     without the header, jittered exponential backoff; a Retry-After longer
 *     than max_retry_after_ms is not slept on: the 429 goes back to the caller
 *     (err->code SQ_ETHROTTLED, the wait in sq_azure_outcome.retry_after_ms)
 *     so a controller can requeue instead of holding a worker;
 *   - 5xx and transport errors: jittered exponential backoff, only for
 *     idempotent requests, at most max_retries times;
 *   - anything else is final.
 * The pure pieces (Retry-After parsing, backoff arithmetic, error bodies ->
 * typed errors) are exported for unit tests.
 *
 * Errors: a non-2xx final answer becomes an sq_err whose code follows the
 * HTTP status (sq_code_from_http), reason is the service's error code (ARM
 * error.code, Key Vault's innermost innererror.code, Entra's "error"), and
 * message is "<what>: HTTP <status> <code>: <service message>" on one line.
 * Whether to retry later is sq_code_retryable(err->code). Secrets never reach
 * a message: request bodies are not echoed and only the service's error text
 * is quoted. */
#ifndef SQLTDE_AZURE_PIPELINE_H
#define SQLTDE_AZURE_PIPELINE_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdint.h>

#include "sqltde/clock.h"
#include "sqltde/err.h"
#include "sqltde/http.h"

/* One finished HTTP attempt, as reported to the metrics hook. */
typedef struct sq_azure_metric {
  const char *service;       /* "arm", "keyvault", "entra", "imds" */
  const char *operation;     /* e.g. "databases.get", "keys.wrap", "token" */
  const char *resource_type; /* e.g. "Microsoft.Sql/servers/databases"; "" if none */
  const char *method;        /* "GET", ... */
  long status;               /* HTTP status; 0 = no response (transport) */
  const char *result;        /* "success", "client_error", "unauthorized", "throttled",
                                "server_error", "transport_error", "client_throttled" */
  int64_t duration_ms;
} sq_azure_metric;

/* Called once per HTTP attempt (and once per client-side throttle refusal).
 * Must be thread-safe and quick. */
typedef void (*sq_azure_metrics_fn)(void *ud, const sq_azure_metric *m);

/* Sleeps for ms; returns non-zero to abort (shutdown). */
typedef int (*sq_azure_sleep_fn)(void *ud, int64_t ms);

typedef struct sq_azure_pipeline {
  sq_http *http;                  /* borrowed; required */
  const sq_clock *clock;          /* NULL -> sq_clock_real() */
  sq_azure_sleep_fn sleep;        /* NULL -> real sleep, cut short by *cancel */
  void *sleep_ud;
  const atomic_int *cancel;       /* optional: non-zero aborts waits with SQ_ECANCELED */
  sq_azure_metrics_fn metrics;    /* optional */
  void *metrics_ud;
  int max_retries;                /* transient retries per request (5xx/transport/429) */
  int64_t backoff_base_ms;        /* first backoff step */
  int64_t backoff_cap_ms;         /* largest backoff step */
  int64_t max_retry_after_ms;     /* longer Retry-After waits are handed back to the caller */
  size_t max_body;                /* response body bound; 0 -> sq_http's default */
  long timeout_ms;                /* per attempt; 0 -> sq_http's default */
} sq_azure_pipeline;

/* Defaults: 4 retries, backoff 1 s doubling up to 30 s, Retry-After up to
 * 5 minutes slept on, bodies up to 8 MiB, metrics into the process-wide
 * Prometheus registry (sq_azure_metrics_prometheus). http must be set by the
 * caller. */
void sq_azure_pipeline_defaults(sq_azure_pipeline *p);

/* The metrics hook for the operator: each HTTP attempt becomes
 * sqltde_azure_requests_total{service,operation,resource_type,code} and
 * sqltde_azure_request_duration_seconds{service,operation}
 * (server/metrics.h). Client-side throttling refusals send nothing, so they
 * are not requests and are not counted there. ud is unused. */
void sq_azure_metrics_prometheus(void *ud, const sq_azure_metric *m);

/* How one request authenticates. Both callbacks are optional (NULL auth =
 * anonymous, e.g. the token endpoint itself). */
typedef struct sq_azure_auth {
  /* Before every attempt: set req->bearer (and, if it wants, req->body) for
   * this attempt. The string must stay valid until the next call or until
   * sq_azure_exec returns. A failure ends the request with that error. */
  sq_code (*prepare)(void *ud, sq_http_req *req, sq_err *err);
  /* On a 401: update state from resp (challenge, stale token) and return 1 to
   * send again, 0 to give up (the 401 becomes the answer). */
  int (*unauthorized)(void *ud, sq_http_req *req, const sq_http_resp *resp);
  void *ud;
} sq_azure_auth;

/* What a request is, for retry decisions and metrics. */
typedef struct sq_azure_exec_info {
  const char *service;
  const char *operation;
  const char *resource_type;
  int idempotent;  /* retry 5xx and transport errors */
  int retry_404;   /* IMDS: 404 and 410 are transient too */
} sq_azure_exec_info;

typedef struct sq_azure_outcome {
  int attempts;            /* HTTP requests sent */
  int64_t retry_after_ms;  /* last throttling wait asked for (or -1) */
} sq_azure_outcome;

/* Runs the loop above. Returns SQ_OK when a final response is in resp (any
 * status: map it with sq_azure_error_from_resp), or the error that stopped
 * it: SQ_ETRANSPORT/SQ_ETIMEOUT after the retries, SQ_ETHROTTLED when a
 * Retry-After exceeded the budget (resp holds the 429 as well), SQ_ECANCELED,
 * SQ_ETOOBIG for an oversized body (never retried). out may be NULL. */
sq_code sq_azure_exec(const sq_azure_pipeline *p, const sq_azure_exec_info *info,
                      const sq_azure_auth *auth, sq_http_req *req, sq_http_resp *resp,
                      sq_azure_outcome *out, sq_err *err);

/* Sleeps ms through the pipeline's sleeper; SQ_ECANCELED if aborted. */
sq_code sq_azure_sleep(const sq_azure_pipeline *p, int64_t ms, sq_err *err);

/* ---- pure helpers (unit-tested) ---- */

/* Retry-After: delta-seconds ("120") or an HTTP-date (IMF-fixdate
 * "Sun, 06 Nov 1994 08:49:37 GMT", also RFC 850 and asctime forms), relative
 * to now_wall_s. Returns milliseconds >= 0, or -1 when absent or malformed.
 * A date in the past gives 0. */
int64_t sq_azure_parse_retry_after(const char *value, int64_t now_wall_s);

/* Backoff before retry number attempt (0-based): d = min(cap, base * 2^attempt),
 * result in [d/2, d] chosen by rnd ("equal jitter": never less than half, so
 * retries from many workers spread out but never hammer). */
int64_t sq_azure_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms, uint32_t rnd);

/* A random 32-bit value for jitter (OpenSSL RAND). */
uint32_t sq_azure_random32(void);

/* Maps an HTTP status and a service error code to an sq_code: the status
 * decides (sq_code_from_http), except that a 503/400 whose code says
 * throttling (TooManyRequests, SubscriptionTooManyRequests, ...) is
 * SQ_ETHROTTLED. */
sq_code sq_azure_classify(long status, const char *code);

/* Extracts the error code and message of an Azure error body into code/msg
 * (either may be NULL). Shapes: ARM/Key Vault {"error":{"code","message",
 * "innererror":{"code"}}} (the innermost code wins), Entra {"error":"...",
 * "error_description":"..."}. Returns 1 if a code was found. */
int sq_azure_error_fields(const char *body, size_t len, char *code, size_t code_len, char *msg,
                          size_t msg_len);

/* Fills err from a non-2xx response as described at the top; returns the code. */
sq_code sq_azure_error_from_resp(const sq_http_resp *resp, const char *what, sq_err *err);

/* Parses a 2xx JSON body. An empty body, a content type that is not JSON, or
 * malformed JSON is SQ_EPARSE naming what. *out is owned by the caller. */
sq_code sq_azure_json_body(const sq_http_resp *resp, const char *what, json_t **out, sq_err *err);

/* Copies a JSON string member at path into out (bounded). Missing -> def
 * ("" if NULL); too long -> SQ_ETOOBIG naming the field; wrong type ->
 * SQ_EPARSE. what prefixes messages. */
sq_code sq_azure_json_strcpy(const json_t *obj, const char *path, char *out, size_t outlen,
                             const char *what, sq_err *err);

#endif
