/* azure/arm.h — Azure Resource Manager client: resources by id + api-version.
 *
 * One sq_arm per process (thread-safe). Every request goes through the shared
 * Azure pipeline (azure/pipeline.h: 401 -> one token refresh, 429 waits
 * exactly Retry-After, 5xx/transport jittered backoff) after taking a token
 * from a client-side token bucket per subscription and operation class that
 * mirrors ARM's own (reads 250 burst / 25 per s, writes 200 / 10 per s,
 * deletes 200 / 10 per s), so the operator slows itself down before ARM has
 * to. A request that would wait longer than bucket_max_wait_ms is refused
 * with SQ_ETHROTTLED, reason "ClientThrottled", and the wait in
 * sq_arm_result.retry_after_ms, so a controller can requeue.
 *
 * Long-running operations (azure-api.md §3.1): a 201/202 is followed by
 * polling Azure-AsyncOperation when present, else Location, each wait being
 * the poll response's Retry-After (never less than lro_min_poll_ms, since SQL
 * sends 0), lro_default_poll_ms without one, until Succeeded/Failed/Canceled
 * or the deadline. The final body: for PUT/PATCH a GET of the resource, for a
 * Location poll the last 200 body, for POST with final_via_location a GET of
 * the Location URL. A 200/201 PUT whose body shows a non-terminal
 * provisioningState is polled by GETting the resource. Status URLs and
 * nextLinks must be on the ARM endpoint's origin (the token goes with them).
 *
 * Errors: a non-2xx answer -> sq_err as in pipeline.h (code by HTTP status,
 * reason = ARM error.code, http_status set). An operation that ends Failed or
 * Canceled -> http_status 0, reason = its error.code, code by that code:
 * throttling codes -> SQ_ETHROTTLED, transient service codes
 * (InternalServerError, ServiceUnavailable, ...) -> SQ_ESERVER, in-progress
 * conflicts and Canceled -> SQ_ECONFLICT, everything else -> SQ_EBADREQ.
 * Retry later iff sq_code_retryable(err->code). A 202 without any status
 * header, a status URL elsewhere, or a status body without "status" ->
 * SQ_EPARSE. The deadline -> SQ_ETIMEOUT with the operation still running in
 * Azure. */
#ifndef SQLTDE_AZURE_ARM_H
#define SQLTDE_AZURE_ARM_H

#include <jansson.h>
#include <stdint.h>

#include "sqltde/azure/cloud.h"
#include "sqltde/azure/credential.h"
#include "sqltde/azure/pipeline.h"
#include "sqltde/err.h"

/* ---- token bucket (pure, unit-tested) ---- */

typedef struct sq_arm_bucket {
  int64_t capacity_milli; /* burst * 1000 */
  int64_t refill_per_s;   /* tokens per second */
  int64_t level_milli;    /* may go negative: reservations queue up behind each other */
  int64_t last_ms;        /* monotonic time of the last update */
} sq_arm_bucket;

void sq_arm_bucket_init(sq_arm_bucket *b, int64_t burst, int64_t refill_per_s, int64_t now_ms);

/* Reserves one token at now_ms. Returns the milliseconds the caller must wait
 * before sending (0 = now). If that wait would exceed max_wait_ms nothing is
 * reserved and the needed wait is returned negated (-wait). */
int64_t sq_arm_bucket_reserve(sq_arm_bucket *b, int64_t now_ms, int64_t max_wait_ms);

typedef enum sq_arm_class { SQ_ARM_READ = 0, SQ_ARM_WRITE, SQ_ARM_DELETE } sq_arm_class;

/* GET/HEAD -> read, DELETE -> delete, anything else -> write. */
sq_arm_class sq_arm_class_of(const char *method);

/* "/subscriptions/{sub}/..." -> sub (lower-cased) into out; "" if none. */
void sq_arm_subscription_of(const char *path, char *out, size_t outlen);

/* Resource type from an id, for metrics: "/subscriptions/s/resourceGroups/g/
 * providers/Microsoft.Sql/servers/x/databases/y" -> "Microsoft.Sql/servers/databases";
 * "" when the path has no provider. */
void sq_arm_resource_type(const char *path, char *out, size_t outlen);

/* True for a path sq_arm accepts: starts with '/', at most 900 bytes, no
 * control characters, '?', '#', backslashes, empty or "." / ".." segments.
 * Spaces and non-ASCII bytes are allowed and percent-encoded on the wire. */
int sq_arm_path_valid(const char *path);

/* ---- client ---- */

typedef struct sq_arm_opts {
  const sq_azure_cloud *cloud;  /* copied */
  sq_azure_cred *cred;          /* borrowed; outlives the client */
  const char *tenant;           /* NULL -> the credential's tenant */
  sq_azure_pipeline pipeline;   /* copied */
  int bucket_disabled;          /* 1 = no client-side throttling */
  int64_t read_burst, read_per_s;     /* 0 -> 250, 25 */
  int64_t write_burst, write_per_s;   /* 0 -> 200, 10 */
  int64_t delete_burst, delete_per_s; /* 0 -> 200, 10 */
  int64_t bucket_max_wait_ms;   /* 0 -> 120 s */
  int64_t lro_min_poll_ms;      /* 0 -> 1000 */
  int64_t lro_default_poll_ms;  /* 0 -> 5000 */
  int64_t lro_timeout_ms;       /* 0 -> 30 min */
  size_t max_list_items;        /* 0 -> 100000 */
} sq_arm_opts;

typedef struct sq_arm sq_arm;

sq_code sq_arm_new(const sq_arm_opts *opts, sq_arm **out, sq_err *err);
void sq_arm_free(sq_arm *a);

/* The state of a long-running operation, enough to resume polling later
 * (e.g. after a requeue). Fixed-size: copy it freely. */
typedef struct sq_arm_lro {
  char method[8];
  char path[1024];          /* the resource the operation acts on */
  char api_version[32];
  char async_url[8192];     /* Azure-AsyncOperation, or "" */
  char location_url[8192];  /* Location, or "" */
  int final_via_location;
  int poll_resource;        /* no status URL: GET the resource until provisioningState ends */
  int polls;
  int not_found_polls;
  char status[32];          /* last status seen ("InProgress", ...) */
  int64_t next_poll_ms;     /* suggested wait before the next poll */
} sq_arm_lro;

typedef struct sq_arm_result {
  long status;              /* final HTTP status */
  json_t *body;             /* owned; NULL when there is none (204, DELETE) */
  int64_t retry_after_ms;   /* on SQ_ETHROTTLED: how long to wait; else -1 */
  int lro_pending;          /* wait=0 and an operation is running: see lro */
  sq_arm_lro lro;
} sq_arm_result;

void sq_arm_result_init(sq_arm_result *r);
void sq_arm_result_free(sq_arm_result *r);

typedef struct sq_arm_call {
  const char *method;       /* "GET", "PUT", "PATCH", "DELETE", "POST" */
  const char *path;         /* resource id or collection path, starts with "/" */
  const char *api_version;
  const char *query;        /* extra query, already encoded, without '&' ("$expand=..."), or NULL */
  const json_t *body;       /* NULL -> no body (POST sends an empty one) */
  const char *operation;    /* metrics label; NULL -> "<last type segment>.<method>",
                               e.g. "databases.patch" */
  int no_wait;              /* 1 = return after the first response, LRO pending in result */
  int final_via_location;   /* POST/DELETE: fetch the Location URL once done */
  int post_idempotent;      /* POST may be retried after 5xx/transport errors */
  int64_t lro_timeout_ms;   /* 0 -> the client's */
} sq_arm_call;

/* Performs the call (following its LRO unless no_wait). Non-2xx and failed
 * operations are errors (see above); the result is filled either way with
 * what is known. */
sq_code sq_arm_do(sq_arm *a, const sq_arm_call *call, sq_arm_result *res, sq_err *err);

/* One poll of a pending operation. On return res->lro_pending says whether it
 * is still running (then res->lro.next_poll_ms is the suggested wait); when
 * done the result is filled as sq_arm_do would. */
sq_code sq_arm_lro_poll(sq_arm *a, sq_arm_lro *lro, sq_arm_result *res, sq_err *err);

/* Polls until done or timeout_ms (0 -> the client's). */
sq_code sq_arm_lro_wait(sq_arm *a, sq_arm_lro *lro, int64_t timeout_ms, sq_arm_result *res,
                        sq_err *err);

/* Shorthands. *out (may be NULL) receives the final body, owned by the caller. */
sq_code sq_arm_get(sq_arm *a, const char *path, const char *api_version, const char *query,
                   json_t **out, sq_err *err);
sq_code sq_arm_put(sq_arm *a, const char *path, const char *api_version, const json_t *body,
                   json_t **out, sq_err *err);
sq_code sq_arm_patch(sq_arm *a, const char *path, const char *api_version, const json_t *body,
                     json_t **out, sq_err *err);
sq_code sq_arm_delete(sq_arm *a, const char *path, const char *api_version, sq_err *err);
sq_code sq_arm_post(sq_arm *a, const char *path, const char *api_version, const json_t *body,
                    json_t **out, sq_err *err);

/* Called for each element of "value" (borrowed). Return non-zero to stop. */
typedef int (*sq_arm_item_fn)(void *ud, const json_t *item);

/* GETs path and follows nextLink until the end (or max_list_items, which is
 * SQ_ETOOBIG), with the rules of azure/pager.h: a nextLink that repeats or
 * leaves the ARM origin is SQ_EPARSE, one over 8 KiB SQ_ETOOBIG. */
sq_code sq_arm_list(sq_arm *a, const char *path, const char *api_version, const char *query,
                    const char *operation, sq_arm_item_fn fn, void *ud, sq_err *err);

/* Maps an operation's terminal error code (LRO Failed) to an sq_code as
 * described above. */
sq_code sq_arm_failed_op_code(const char *code, int canceled);

/* Pure LRO bookkeeping for unit tests: from an initial response, fills lro
 * and returns 1 if polling is needed, 0 if done, or -1 (err set) if the
 * response is a 202 without a usable status URL. */
int sq_arm_lro_from_response(const char *method, const char *path, const char *api_version,
                             const char *arm_origin, long status, const char *async_hdr,
                             const char *location_hdr, int final_via_location, sq_arm_lro *lro,
                             sq_err *err);

#endif
