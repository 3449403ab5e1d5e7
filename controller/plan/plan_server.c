/* plan_server.c — the SqlServer planner; see include/sqltde/plan/plan.h.
 *
 * Same shape as plan_db.c (a chain of checks over a predicted copy of the
 * observed server), kept separate on purpose (rule 11): nothing here can
 * produce a database step, so a server-level change never touches a
 * database that has its own protector. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan_internal.h"
#include "sqltde/plan/plan.h"

typedef struct psrv {
  pl_set ids;
  const char *primary_id;
  sq_plan_server_enc enc;
  const char *protector;
  int auto_rot;
  pl_set keys;
} psrv;

typedef struct srvctx {
  const sq_plan_server_input *in;
  const sq_plan_desired_server *d;
  int64_t now;
  pl_out o;
  psrv s;
  char name[128];
} srvctx;

static sq_plan_step *emit(srvctx *c, sq_plan_step_kind kind) {
  return pl_step_new(&c->o, kind, SQ_TARGET_SERVER, c->d->server_id, NULL);
}

/* The identity Azure SQL uses for the server's keys (NULL: system-assigned
 * or unknown, access then unverified). */
static const char *server_identity(const srvctx *c) {
  return c->d->identity_id ? c->d->identity_id : c->s.primary_id;
}

static int check_identity(srvctx *c) {
  const char *want = c->d->identity_id;
  if(!want || (pl_set_has(&c->s.ids, want) && sq_plan_uri_eq(c->s.primary_id, want)))
    return 0;
  /* the identity that will reach the vault must reach the protector in use */
  if(c->s.enc == SQ_SERVER_ENC_CUSTOMER_MANAGED && c->s.protector &&
     !pl_gate_key(&c->o, &c->in->facts, c->now, c->s.protector, want, "SetServerIdentity"))
    return 1;
  sq_plan_step *s = emit(c, SQ_STEP_SET_SERVER_IDENTITY);
  if(!s)
    return 1;
  s->identity_id = pl_dup(&c->o, want);
  s->system_assigned = c->in->observed.system_assigned;
  char id[160];
  pl_short_id(want, id, sizeof id);
  pl_desc(s, "assign identity %s to server %s as its primary user-assigned identity", id, c->name);
  pl_set_add(&c->s.ids, want);
  c->s.primary_id = want;
  return 1;
}

/* The key the server protector is set to: the desired one, except that with
 * auto-rotation another version of the same key is kept (Azure moves to the
 * newest version itself; registering it ourselves would be a wasted write). */
static const char *server_target(const srvctx *c) {
  if(c->d->auto_rotation && c->s.enc == SQ_SERVER_ENC_CUSTOMER_MANAGED && c->s.protector &&
     sq_plan_same_key(c->s.protector, c->d->key_uri))
    return c->s.protector;
  return c->d->key_uri;
}

/* servers/keys before encryptionProtector: Azure needs the key registered
 * (ServerKeyNotFound otherwise). */
static int check_server_key(srvctx *c) {
  const char *key = server_target(c);
  if(c->d->encryption != SQ_SERVER_ENC_CUSTOMER_MANAGED || pl_set_has(&c->s.keys, key))
    return 0;
  if(!pl_gate_key(&c->o, &c->in->facts, c->now, key, server_identity(c), "AddServerKey"))
    return 1;
  sq_plan_step *s = emit(c, SQ_STEP_ADD_SERVER_KEY);
  if(!s)
    return 1;
  pl_list_add(&c->o, &s->keys, key);
  char k[160];
  pl_short_key(key, k, sizeof k);
  pl_desc(s, "register key %s on server %s", k, c->name);
  pl_set_add(&c->s.keys, key);
  return 1;
}

static int check_protector(srvctx *c) {
  const sq_plan_desired_server *d = c->d;
  if(d->encryption == SQ_SERVER_ENC_SERVICE_MANAGED) {
    if(c->s.enc == SQ_SERVER_ENC_SERVICE_MANAGED)
      return 0;
    sq_plan_step *s = emit(c, SQ_STEP_SET_SERVER_SERVICE_MANAGED);
    if(!s)
      return 1;
    pl_desc(s,
            "set the protector of server %s to service-managed (databases with their own "
            "protector keep it)",
            c->name);
    c->s.enc = SQ_SERVER_ENC_SERVICE_MANAGED;
    c->s.protector = NULL;
    c->s.auto_rot = 0;
    return 1;
  }
  if(d->encryption != SQ_SERVER_ENC_CUSTOMER_MANAGED)
    return 0; /* spec.protector absent: not managed */
  char who[160];
  snprintf(who, sizeof who, "server %s", c->name);
  int cmk = c->s.enc == SQ_SERVER_ENC_CUSTOMER_MANAGED;
  if(cmk &&
     pl_protector_matches(&c->o, &c->in->facts, c->now, c->s.protector, c->s.auto_rot, d->key_uri,
                          d->auto_rotation, who) &&
     c->s.auto_rot == (d->auto_rotation ? 1 : 0))
    return 0;
  const char *target = server_target(c);
  if(!pl_gate_key(&c->o, &c->in->facts, c->now, target, server_identity(c), "SetServerProtector"))
    return 1;
  sq_plan_step *s = emit(c, SQ_STEP_SET_SERVER_PROTECTOR);
  if(!s)
    return 1;
  s->protector_uri = pl_dup(&c->o, target);
  s->auto_rotation = d->auto_rotation ? 1 : 0;
  char k[160];
  pl_short_key(target, k, sizeof k);
  pl_desc(s,
          "set the protector of server %s to %s (auto-rotation %s; databases with their own "
          "protector keep it)",
          c->name, k, d->auto_rotation ? "on" : "off");
  c->s.enc = SQ_SERVER_ENC_CUSTOMER_MANAGED;
  c->s.protector = target;
  c->s.auto_rot = s->auto_rotation;
  return 1;
}

static int next_step(srvctx *c) {
  return check_identity(c) || check_server_key(c) || check_protector(c);
}

static int validate(srvctx *c) {
  const sq_plan_desired_server *d = c->d;
  const char *why = NULL;
  if(d->invalid)
    why = d->invalid_message ? d->invalid_message : "the spec is invalid";
  else if(d->unresolved) {
    pl_stop(&c->o, SQ_PLAN_WAITING, SQ_REASON_REFERENCE_NOT_FOUND, PL_RECHECK_MS, "%s",
            d->unresolved);
    return 0;
  } else if(!d->server_id || !*d->server_id)
    why = "spec.resourceId: empty";
  else if(d->encryption == SQ_SERVER_ENC_CUSTOMER_MANAGED &&
          (!d->key_uri || !sq_plan_key_uri_valid(d->key_uri)))
    why = "spec.protector.vaultKey: no valid versioned key URI resolved";
  if(why) {
    pl_stop(&c->o, SQ_PLAN_REFUSED, SQ_REASON_INVALID_SPEC, 0, "%s", why);
    return 0;
  }
  const sq_plan_observed_server *o = &c->in->observed;
  if(!o->known) {
    pl_stop(&c->o, SQ_PLAN_WAITING, SQ_REASON_OBSERVATION_INCOMPLETE, PL_OBSERVE_MS,
            "server %s has not been observed yet", c->name);
    return 0;
  }
  if(!o->exists) {
    pl_stop(&c->o, SQ_PLAN_REFUSED, SQ_REASON_SERVER_NOT_FOUND, PL_REFUSED_RECHECK_MS,
            "server %s does not exist; SqlServer adopts existing servers and never creates one",
            c->name);
    return 0;
  }
  return 1;
}

sq_code sq_plan_server(const sq_plan_server_input *in, sq_plan *out, sq_err *err) {
  memset(out, 0, sizeof *out);
  srvctx *c = calloc(1, sizeof *c);
  if(!c)
    return sq_err_set(err, SQ_ENOMEM, "planner: out of memory");
  c->in = in;
  c->d = &in->desired;
  c->now = in->now;
  c->o.p = out;
  pl_short_id(c->d->server_id, c->name, sizeof c->name);
  const sq_plan_observed_server *o = &in->observed;
  if(c->d->being_deleted) {
    pl_finish(&c->o, SQ_REASON_RETAINED,
              "SqlServer adopts an existing server: deleting the object releases it without any "
              "Azure call");
  } else if(validate(c)) {
    pl_set_add_list(&c->s.ids, &o->identities);
    c->s.primary_id = o->primary_identity_id;
    c->s.enc = o->encryption;
    c->s.protector = o->protector_uri && *o->protector_uri ? o->protector_uri : NULL;
    c->s.auto_rot = o->auto_rotation ? 1 : 0;
    pl_set_add_list(&c->s.keys, &o->server_keys);
    while(!c->o.stopped && !c->o.oom && c->o.p->n_steps < SQ_PLAN_MAX_STEPS) {
      size_t before = c->o.p->n_steps;
      if(!next_step(c) || c->o.p->n_steps == before)
        break;
    }
    pl_finish(&c->o, SQ_REASON_UP_TO_DATE, "the server matches the desired state");
  }
  int oom = c->o.oom;
  free(c);
  if(oom) {
    sq_plan_free(out);
    return sq_err_set(err, SQ_ENOMEM, "planner: out of memory");
  }
  return SQ_OK;
}
