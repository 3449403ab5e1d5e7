/* plan/plan_format.h — rendering a plan: status.plan for the SqlDatabase /
 * SqlServer status, and the ARM request each step stands for. Pure: no I/O.
 *
 * status.plan has the shape the CRD declares:
 *   {"steps":[{"action","target","detail","state"}], "completed", "total"}
 * where action is the step kind's name, target "primary:<server>/<db>",
 * "secondary:<server>/<db>" or "server:<server>", detail the step's
 * description and state Pending|Running|Done|Failed. */
#ifndef SQLTDE_PLAN_FORMAT_H
#define SQLTDE_PLAN_FORMAT_H

#include <jansson.h>

#include "sqltde/err.h"
#include "sqltde/plan/plan_types.h"

typedef enum sq_plan_step_state {
  SQ_STEP_PENDING = 0,
  SQ_STEP_RUNNING,
  SQ_STEP_DONE,
  SQ_STEP_FAILED,
} sq_plan_step_state;

/* "Pending", "Running", "Done", "Failed". */
const char *sq_plan_step_state_name(sq_plan_step_state s);

/* "primary:srv1/db1" etc. into out (truncated to outlen). */
void sq_plan_step_target_text(const sq_plan_step *s, char *out, size_t outlen);

/* status.plan for p. prev is the previous status.plan (NULL or anything
 * malformed = start afresh; pass NULL when metadata.generation changed):
 * its Done steps are kept, and its Pending/Running/Failed steps that no
 * longer appear in p (same action, target and detail) become Done, since
 * the planner drops a step once Azure shows it applied. Then p's steps
 * follow, the first with first_state (Running while the controller executes
 * it, Failed after it failed) and the rest Pending. At most 32 Done steps are
 * kept (the oldest go first); completed counts the Done ones kept, total all
 * entries. Returns a new reference (caller decrefs) or NULL on ENOMEM. */
json_t *sq_plan_status_json(const sq_plan *p, const json_t *prev, sq_plan_step_state first_state);

/* The ARM request a step stands for. path is relative to the ARM endpoint
 * (no api-version); body is NULL for DELETE and the POST actions. */
typedef struct sq_plan_request {
  char method[8]; /* "PUT", "PATCH", "POST", "DELETE" */
  char *path;     /* owned */
  json_t *body;   /* owned reference or NULL */
} sq_plan_request;

/* Builds the request for s:
 *   CreateDatabase       PUT    {server}/databases/{db}
 *   SetIdentity, SetFederatedClientId, AddKeys, SetAutoRotation,
 *   SetProtector, RemoveKeys  PATCH {server}/databases/{db}
 *   Revalidate / Revert  POST {server}/databases/{db}/encryptionProtector/current/revalidate|revert
 *   DeleteDatabase       DELETE {server}/databases/{db}
 *   SetServerIdentity    PATCH  {server}
 *   AddServerKey         PUT    {server}/keys/{vault}_{key}_{version}
 *   SetServerProtector, SetServerServiceManaged  PUT {server}/encryptionProtector/current
 * Bodies follow azure-api.md §1.4-1.6 and §2 (keys map entries {} to add,
 * null to remove; identity entries likewise). SQ_EINVAL for a step missing a
 * field its kind needs; SQ_ENOMEM. out is reset first; free with
 * sq_plan_request_free. */
sq_code sq_plan_step_request(const sq_plan_step *s, sq_plan_request *out, sq_err *err);
void sq_plan_request_free(sq_plan_request *r);


#endif
