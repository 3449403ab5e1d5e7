/* plan_format.c — status.plan JSON and the ARM request of each step; see
 * include/sqltde/plan/plan_format.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan_internal.h"
#include "sqltde/kube/conditions.h"
#include "sqltde/plan/plan.h"
#include "sqltde/plan/plan_format.h"
#include "sqltde/azure/sql.h"
#include "sqltde/jsonx.h"

/* Done steps kept in status.plan: enough to show a long migration's history
 * without letting status grow with every pass. */
#define DONE_MAX 32

const char *sq_plan_step_state_name(sq_plan_step_state s) {
  switch(s) {
  case SQ_STEP_PENDING:
    return "Pending";
  case SQ_STEP_RUNNING:
    return "Running";
  case SQ_STEP_DONE:
    return "Done";
  case SQ_STEP_FAILED:
    return "Failed";
  }
  return "Pending";
}

void sq_plan_step_target_text(const sq_plan_step *s, char *out, size_t outlen) {
  char srv[160];
  pl_short_id(s->server_id, srv, sizeof srv);
  if(s->target == SQ_TARGET_SERVER)
    snprintf(out, outlen, "server:%s", srv);
  else
    snprintf(out, outlen, "%s:%s/%.128s", s->target == SQ_TARGET_PRIMARY ? "primary" : "secondary",
             srv, s->database ? s->database : "?");
}

/* ---- status.plan ------------------------------------------------------------ */

/* Descriptions cut names at a byte count, which can split a UTF-8
 * character; jansson refuses such strings, so both texts are sanitised. */
static json_t *entry(const char *action, const char *target, const char *detail,
                     const char *state) {
  char *t = sq_cond_message_sanitize(target), *d = sq_cond_message_sanitize(detail);
  json_t *e = NULL;
  if(t && d)
    e = json_pack("{s:s, s:s, s:s, s:s}", "action", action, "target", t, "detail", d, "state",
                  state);
  free(t);
  free(d);
  return e;
}

static int in_plan(const sq_plan *p, const char *action, const char *target, const char *detail) {
  for(size_t i = 0; i < p->n_steps; i++) {
    char t[400];
    sq_plan_step_target_text(&p->steps[i], t, sizeof t);
    if(!strcmp(action, sq_plan_step_kind_name(p->steps[i].kind)) && !strcmp(target, t) &&
       !strcmp(detail, p->steps[i].description))
      return 1;
  }
  return 0;
}

json_t *sq_plan_status_json(const sq_plan *p, const json_t *prev, sq_plan_step_state first_state) {
  json_t *steps = json_array();
  if(!steps)
    return NULL;
  /* the planner knows the whole remaining plan only when it is progressing
   * or converged; while waiting, earlier entries keep their state */
  int know_all = p->verdict == SQ_PLAN_PROGRESSING || p->verdict == SQ_PLAN_CONVERGED;
  const json_t *prev_steps = json_is_object(prev) ? json_object_get(prev, "steps") : NULL;
  size_t done = 0;
  size_t i;
  const json_t *e;
  json_array_foreach(prev_steps, i, e) {
    const char *action = json_string_value(json_object_get(e, "action"));
    const char *target = json_string_value(json_object_get(e, "target"));
    const char *detail = json_string_value(json_object_get(e, "detail"));
    const char *state = json_string_value(json_object_get(e, "state"));
    if(!action || !target || !detail || !state)
      continue;
    int was_done = !strcmp(state, "Done");
    const char *now_state = NULL;
    if(was_done || (know_all && !in_plan(p, action, target, detail)))
      now_state = "Done";
    else if(!know_all)
      now_state = !strcmp(state, "Running") ? "Pending" : state;
    if(!now_state)
      continue; /* still planned: re-added below from p */
    json_t *x = entry(action, target, detail, now_state);
    if(!x || json_array_append_new(steps, x)) {
      json_decref(steps);
      return NULL;
    }
    if(!strcmp(now_state, "Done"))
      done++;
  }
  /* keep the newest DONE_MAX Done entries */
  for(size_t k = 0; done > DONE_MAX && k < json_array_size(steps);) {
    const char *st = json_string_value(json_object_get(json_array_get(steps, k), "state"));
    if(st && !strcmp(st, "Done")) {
      json_array_remove(steps, k);
      done--;
    } else {
      k++;
    }
  }
  for(size_t k = 0; k < p->n_steps; k++) {
    char t[400];
    sq_plan_step_target_text(&p->steps[k], t, sizeof t);
    json_t *x = entry(sq_plan_step_kind_name(p->steps[k].kind), t, p->steps[k].description,
                      sq_plan_step_state_name(k == 0 ? first_state : SQ_STEP_PENDING));
    if(!x || json_array_append_new(steps, x)) {
      json_decref(steps);
      return NULL;
    }
  }
  json_t *out = json_pack("{s:o, s:I, s:I}", "steps", steps, "completed", (json_int_t)done, "total",
                          (json_int_t)json_array_size(steps));
  return out;
}

/* ---- ARM requests ------------------------------------------------------------ */

/* Azure's server key naming rule lives with the Microsoft.Sql client; a URI
 * it cannot name is a bad step, not a parse error of an Azure answer. */
static sq_code server_key_name(const sq_plan_step *s, const char *uri, char *out, size_t outlen, sq_err *err) {
  sq_code rc = sq_sql_server_key_name(uri, out, outlen, NULL);
  if(rc == SQ_ETOOBIG)
    return sq_err_set(err, rc, "%s step: server key name for %.200s too long", sq_plan_step_kind_name(s->kind), uri);
  if(rc)
    return sq_err_set(err, SQ_EINVAL, "%s step: %.200s is not a Key Vault key URI", sq_plan_step_kind_name(s->kind),
                      uri ? uri : "(none)");
  return SQ_OK;
}

void sq_plan_request_free(sq_plan_request *r) {
  free(r->path);
  json_decref(r->body);
  memset(r, 0, sizeof *r);
}

static sq_code need(const void *field, const char *what, const sq_plan_step *s, sq_err *err) {
  if(field)
    return SQ_OK;
  return sq_err_set(err, SQ_EINVAL, "%s step without %s", sq_plan_step_kind_name(s->kind), what);
}

/* A NULL-terminated view of a list (strings borrowed); NULL when empty. */
static const char **nt(const sq_plan_list *l, int *bad) {
  if(!l->n)
    return NULL;
  const char **v = calloc(l->n + 1, sizeof *v);
  if(!v) {
    *bad = 1;
    return NULL;
  }
  for(size_t i = 0; i < l->n; i++)
    v[i] = l->v[i];
  return v;
}

/* The database steps' bodies come from the Microsoft.Sql client's builders
 * (azure/sql.h), the one rendering of a database PUT/PATCH; here only which
 * fields a step kind sets, and what it cannot go without. */
static sq_code db_body(const sq_plan_step *s, json_t **body, sq_err *err) {
  sq_code rc = SQ_OK;
  int bad = 0;
  const char **keys = nt(&s->keys, &bad), **rm_keys = nt(&s->remove_keys, &bad),
             **rm_ids = nt(&s->remove_identities, &bad);
  sq_sql_db_patch_args pa = {.auto_rotation = -1};
  if(bad) {
    rc = sq_err_set(err, SQ_ENOMEM, "out of memory");
    goto out;
  }
  switch(s->kind) {
  case SQ_STEP_CREATE_DATABASE: {
    int secondary = s->create_mode == SQ_CREATE_SECONDARY;
    if((rc = need(s->location, "location", s, err)) ||
       /* Azure refuses database-level keys on a database without its UMI */
       ((s->keys.n || s->protector_uri) &&
        (rc = need(s->identity_id, "identity (database-level keys need one)", s, err))) ||
       (secondary && (rc = need(s->source_database_id, "sourceDatabaseId", s, err))))
      goto out;
    sq_sql_db_create_args c = {
        .location = s->location,
        .mode = secondary ? SQ_SQL_CREATE_SECONDARY : SQ_SQL_CREATE_DEFAULT,
        .sku_name = s->sku_name,
        .sku_tier = s->sku_name ? s->sku_tier : NULL,
        .source_database_id = secondary ? s->source_database_id : NULL,
        .secondary_type = secondary ? "Geo" : NULL,
        .umi_id = s->identity_id,
        .keys = keys,
        .encryption_protector = s->protector_uri,
        .auto_rotation = s->protector_uri ? s->auto_rotation : -1,
        .federated_client_id = s->federated_client_id,
    };
    rc = sq_sql_db_create_body(&c, body, err);
    goto out;
  }
  case SQ_STEP_SET_IDENTITY:
    if((rc = need(s->identity_id, "identity", s, err)))
      goto out;
    pa.umi_set = s->identity_id;
    pa.umi_remove = rm_ids;
    break;
  case SQ_STEP_SET_FEDERATED_CLIENT_ID:
    pa.federated_client_id = s->federated_client_id ? s->federated_client_id : ""; /* "" clears it */
    break;
  case SQ_STEP_ADD_KEYS:
    if(!keys) {
      rc = sq_err_set(err, SQ_EINVAL, "AddKeys step without keys");
      goto out;
    }
    pa.keys_add = keys;
    break;
  case SQ_STEP_SET_AUTO_ROTATION:
    pa.auto_rotation = s->auto_rotation ? 1 : 0;
    break;
  case SQ_STEP_SET_PROTECTOR:
    if((rc = need(s->protector_uri, "protector", s, err)))
      goto out;
    pa.keys_add = keys;
    pa.encryption_protector = s->protector_uri;
    pa.auto_rotation = s->auto_rotation ? 1 : 0;
    break;
  case SQ_STEP_REMOVE_KEYS:
    if(!rm_keys) {
      rc = sq_err_set(err, SQ_EINVAL, "RemoveKeys step without keys");
      goto out;
    }
    pa.keys_remove = rm_keys;
    break;
  default:
    rc = sq_err_set(err, SQ_EINVAL, "%s is not a database step", sq_plan_step_kind_name(s->kind));
    goto out;
  }
  rc = sq_sql_db_patch_body(&pa, body, err);
out:
  free(keys);
  free(rm_keys);
  free(rm_ids);
  return rc;
}

sq_code sq_plan_step_request(const sq_plan_step *s, sq_plan_request *out, sq_err *err) {
  memset(out, 0, sizeof *out);
  sq_code rc = need(s->server_id, "server id", s, err);
  if(rc)
    return rc;
  /* the kind decides what the step addresses; a target that disagrees is a
   * planner bug, refused rather than sent somewhere else */
  int db_step = !sq_plan_step_is_server(s->kind);
  if(db_step != (s->target != SQ_TARGET_SERVER))
    return sq_err_set(err, SQ_EINVAL, "%s step with a %s target", sq_plan_step_kind_name(s->kind),
                      db_step ? "server" : "database");
  if(db_step && (rc = need(s->database, "database name", s, err)))
    return rc;
  const char *suffix = "";
  const char *method = "PATCH";
  json_t *body = NULL, *props = NULL;
  int bad = 0;
  char keyname[400];

  switch(s->kind) {
  case SQ_STEP_CREATE_DATABASE:
  case SQ_STEP_SET_IDENTITY:
  case SQ_STEP_SET_FEDERATED_CLIENT_ID:
  case SQ_STEP_ADD_KEYS:
  case SQ_STEP_SET_AUTO_ROTATION:
  case SQ_STEP_SET_PROTECTOR:
  case SQ_STEP_REMOVE_KEYS:
    if((rc = db_body(s, &body, err)))
      return rc;
    method = s->kind == SQ_STEP_CREATE_DATABASE ? "PUT" : "PATCH";
    break;
  case SQ_STEP_REVALIDATE:
    method = "POST";
    suffix = "/encryptionProtector/current/revalidate";
    break;
  case SQ_STEP_REVERT:
    method = "POST";
    suffix = "/encryptionProtector/current/revert";
    break;
  case SQ_STEP_DELETE_DATABASE:
    method = "DELETE";
    break;
  case SQ_STEP_SET_SERVER_IDENTITY: {
    if((rc = need(s->identity_id, "identity", s, err)))
      return rc;
    body = json_object();
    json_t *ident = sq_sql_umi_identity(&bad, s->identity_id, NULL);
    if(s->system_assigned) /* keep the system-assigned identity the server has */
      sq_json_put(&bad, ident, "type", json_string("SystemAssigned,UserAssigned"));
    sq_json_put(&bad, body, "identity", ident);
    props = json_object();
    sq_json_put(&bad, props, "primaryUserAssignedIdentityId", json_string(s->identity_id));
    break;
  }
  case SQ_STEP_ADD_SERVER_KEY:
    if(s->keys.n != 1)
      return sq_err_set(err, SQ_EINVAL, "AddServerKey step needs exactly one key");
    if((rc = server_key_name(s, s->keys.v[0], keyname, sizeof keyname, err)))
      return rc;
    method = "PUT";
    props = json_object();
    sq_json_put(&bad, props, "serverKeyType", json_string("AzureKeyVault"));
    sq_json_put(&bad, props, "uri", json_string(s->keys.v[0]));
    break;
  case SQ_STEP_SET_SERVER_PROTECTOR:
    if((rc = need(s->protector_uri, "protector", s, err)))
      return rc;
    if((rc = server_key_name(s, s->protector_uri, keyname, sizeof keyname, err)))
      return rc;
    method = "PUT";
    suffix = "/encryptionProtector/current";
    props = json_object();
    sq_json_put(&bad, props, "serverKeyType", json_string("AzureKeyVault"));
    sq_json_put(&bad, props, "serverKeyName", json_string(keyname));
    sq_json_put(&bad, props, "autoRotationEnabled", json_boolean(s->auto_rotation));
    break;
  case SQ_STEP_SET_SERVER_SERVICE_MANAGED:
    method = "PUT";
    suffix = "/encryptionProtector/current";
    props = json_object();
    sq_json_put(&bad, props, "serverKeyType", json_string("ServiceManaged"));
    sq_json_put(&bad, props, "serverKeyName", json_string("ServiceManaged"));
    break;
  default:
    return sq_err_set(err, SQ_EINVAL, "unknown step kind %d", (int)s->kind);
  }
  if(props) {
    if(!body)
      body = json_object();
    sq_json_put(&bad, body, "properties", props);
  }
  int n;
  if(s->kind == SQ_STEP_ADD_SERVER_KEY)
    n = asprintf(&out->path, "%s/keys/%s", s->server_id, keyname);
  else if(db_step)
    n = asprintf(&out->path, "%s/databases/%s%s", s->server_id, s->database, suffix);
  else
    n = asprintf(&out->path, "%s%s", s->server_id, suffix);
  if(n < 0) {
    out->path = NULL;
    bad = 1;
  }
  if(bad) {
    json_decref(body);
    sq_plan_request_free(out);
    return sq_err_set(err, SQ_ENOMEM,
                      "cannot build the %s request (out of memory or a string "
                      "that is not UTF-8)",
                      sq_plan_step_kind_name(s->kind));
  }
  snprintf(out->method, sizeof out->method, "%s", method);
  out->body = body;
  return SQ_OK;
}
