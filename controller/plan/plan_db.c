/* plan_db.c — the SqlDatabase planner; see include/sqltde/plan/plan.h.
 *
 * Shape (cert-manager's policy chain): next_step() is a chain of small named
 * checks over a *predicted* copy of the observed state; the first check that
 * finds a difference emits one step (after its gates) and applies the
 * step's effect to the prediction. Repeating until no check fires gives the
 * ordered plan, and every later step's payload is computed from the state
 * the earlier steps leave behind. The controller runs steps[0] and re-plans
 * from what Azure then shows, so the prediction never has to be perfect,
 * only the order and the gates. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan_internal.h"
#include "sqltde/plan/plan.h"

/* One database as the plan goes: starts as observed, then changed by the
 * effect of each emitted step. Strings are borrowed from the input. */
typedef struct pdb {
  const char *server_id;
  int exists;
  sq_plan_db_status status;
  const char *status_text;
  sq_plan_role role;
  pl_set ids;
  const char *protector;
  int auto_rot;
  const char *fcid;
  pl_set keys;
  pl_set current;
  const sq_plan_list *backup;
  int keys_complete;
  sq_plan_server_enc server_enc;
  const char *want_identity; /* NULL: leave identity as it is (undeclared replica) */
  const char *location;
  int desired_index; /* -1 for the primary and undeclared replicas */
} pdb;

typedef struct dbctx {
  const sq_plan_db_input *in;
  const sq_plan_desired_db *d;
  const sq_plan_facts *f;
  int64_t now;
  pl_out o;
  pdb db[1 + SQ_PLAN_SECONDARY_SLOTS]; /* [0] = primary */
  size_t n;
  pl_set extra; /* desired extra keys */
  char primary_id[2 * SQ_PLAN_STR_MAX + 16];
} dbctx;

static const sq_plan_list empty_list;

/* ---- small helpers ---------------------------------------------------------- */

static int is_cmk(const dbctx *c) {
  return c->d->encryption == SQ_DB_ENC_CUSTOMER_MANAGED;
}

static void who(const dbctx *c, size_t i, char *out, size_t len) {
  char srv[128];
  pl_short_id(c->db[i].server_id, srv, sizeof srv);
  snprintf(out, len, "%s %.128s (%s)",
           i == 0                        ? "primary"
           : c->db[i].desired_index >= 0 ? "secondary"
                                         : "undeclared secondary",
           c->d->name ? c->d->name : "?", srv);
}

/* "kv1/a/01234567, kv1/b/89abcdef" (cut with a count when long). */
static void keys_text(const pl_set *s, char *out, size_t len) {
  size_t used = 0;
  out[0] = '\0';
  for(size_t i = 0; i < s->n; i++) {
    char k[160];
    pl_short_key(s->v[i], k, sizeof k);
    int w = snprintf(out + used, len - used, "%s%s", i ? ", " : "", k);
    if(w < 0 || (size_t)w >= len - used - 24) {
      snprintf(out + used, len - used, "%s... (%zu more)", i ? ", " : "", s->n - i);
      return;
    }
    used += (size_t)w;
  }
}

/* The identity Azure will use for this database's keys. */
static const char *identity_of(const pdb *db) {
  if(db->ids.n == 1)
    return db->ids.v[0];
  return db->want_identity;
}

/* The protector the primary is headed for: the desired key, except that
 * with auto-rotation on another version of the same key is as good (Azure
 * adds and moves versions itself; adding the desired version ourselves
 * would be the very write rule 6 avoids). */
static const char *target_protector(const dbctx *c) {
  const pdb *p = &c->db[0];
  if(!is_cmk(c))
    return NULL;
  if(c->d->auto_rotation && p->exists && p->protector &&
     sq_plan_same_key(p->protector, c->d->protector_uri))
    return p->protector;
  return c->d->protector_uri;
}

/* Keys database i must hold: the desired extra keys, the target protector,
 * and on a secondary also the primary's protector (the geo invariant). */
static void needed_for(const dbctx *c, size_t i, pl_set *out) {
  *out = c->extra;
  pl_set_add(out, target_protector(c));
  if(i > 0 && c->db[0].exists)
    pl_set_add(out, c->db[0].protector);
}

static sq_plan_step *emit(dbctx *c, size_t i, sq_plan_step_kind kind) {
  sq_plan_step *s = pl_step_new(&c->o, kind, i == 0 ? SQ_TARGET_PRIMARY : SQ_TARGET_SECONDARY,
                                c->db[i].server_id, c->d->name);
  if(s)
    s->secondary = c->db[i].desired_index;
  return s;
}

static void copy_set(dbctx *c, sq_plan_list *dst, const pl_set *src) {
  for(size_t k = 0; k < src->n; k++)
    pl_list_add(&c->o, dst, src->v[k]);
}

/* A write to an existing database needs it Online (Inaccessible is handled
 * first by check_revalidate). */
static int writable(dbctx *c, size_t i) {
  const pdb *db = &c->db[i];
  if(db->status == SQ_DB_STATUS_ONLINE)
    return 1;
  char w[300];
  who(c, i, w, sizeof w);
  pl_stop(&c->o, SQ_PLAN_WAITING, SQ_REASON_DATABASE_BUSY, PL_BUSY_MS,
          "%s is %s; waiting until it is Online", w,
          db->status_text ? db->status_text : "not Online");
  return 0;
}

/* ---- the chain ------------------------------------------------------------------ */

/* Rule 8: an Inaccessible database whose protector is reachable again is
 * revalidated before anything else. */
static int check_revalidate(dbctx *c) {
  for(size_t i = 0; i < c->n; i++) {
    pdb *db = &c->db[i];
    if(!db->exists || db->status != SQ_DB_STATUS_INACCESSIBLE)
      continue;
    char w[300];
    who(c, i, w, sizeof w);
    if(!db->protector) {
      pl_stop(&c->o, SQ_PLAN_WAITING, SQ_REASON_DATABASE_INACCESSIBLE, PL_RECHECK_MS,
              "%s is Inaccessible and has no database-level protector: the server's protector "
              "must become reachable again",
              w);
      return 1;
    }
    pl_problem pr;
    if(!pl_key_check(&c->o, c->f, c->now, db->protector, identity_of(db), &pr)) {
      /* a wait that ends by itself (a grant taking effect) keeps its own
       * reason; anything a human must fix is DatabaseInaccessible */
      sq_plan_reason r = sq_plan_reason_stalled(pr.reason) || pr.verdict == SQ_PLAN_REFUSED
                             ? SQ_REASON_DATABASE_INACCESSIBLE
                             : pr.reason;
      int64_t retry = pr.retry_ms && pr.retry_ms < PL_RECHECK_MS ? pr.retry_ms : PL_RECHECK_MS;
      pl_stop(&c->o, SQ_PLAN_WAITING, r, retry,
              "%s is Inaccessible: %s; it is revalidated as soon as access is back", w, pr.msg);
      return 1;
    }
    sq_plan_step *s = emit(c, i, SQ_STEP_REVALIDATE);
    if(!s)
      return 1;
    pl_desc(s, "revalidate %s: its protector is reachable again", w);
    db->status = SQ_DB_STATUS_ONLINE;
    db->status_text = "Online";
    return 1;
  }
  return 0;
}

static int check_primary_online(dbctx *c) {
  return c->db[0].exists && !writable(c, 0);
}

static int gate_all(dbctx *c, const pl_set *keys, const char *identity, const char *what) {
  for(size_t k = 0; k < keys->n; k++)
    if(!pl_gate_key(&c->o, c->f, c->now, keys->v[k], identity, what))
      return 0;
  return 1;
}

static int check_create_primary(dbctx *c) {
  pdb *db = &c->db[0];
  const sq_plan_desired_db *d = c->d;
  if(db->exists)
    return 0;
  char w[300];
  who(c, 0, w, sizeof w);
  pl_set keys;
  needed_for(c, 0, &keys);
  if(!gate_all(c, &keys, d->identity_id, "CreateDatabase"))
    return 1;
  sq_plan_step *s = emit(c, 0, SQ_STEP_CREATE_DATABASE);
  if(!s)
    return 1;
  s->create_mode = SQ_CREATE_DEFAULT;
  s->location = pl_dup(&c->o, d->location);
  s->sku_name = pl_dup(&c->o, d->sku_name);
  s->sku_tier = pl_dup(&c->o, d->sku_tier);
  s->identity_id = pl_dup(&c->o, d->identity_id);
  copy_set(c, &s->keys, &keys);
  if(is_cmk(c)) {
    s->protector_uri = pl_dup(&c->o, d->protector_uri);
    s->auto_rotation = d->auto_rotation;
    s->federated_client_id = pl_dup(&c->o, d->federated_client_id);
  }
  char kt[256], pk[160];
  keys_text(&keys, kt, sizeof kt);
  pl_short_key(is_cmk(c) ? d->protector_uri : NULL, pk, sizeof pk);
  pl_desc(s, "create %s with %s%s", w,
          is_cmk(c) ? "database-level protector " : "server-level encryption", is_cmk(c) ? pk : "");
  if(keys.n)
    pl_desc_append(s, ", keys %s", kt);
  db->exists = 1;
  db->status = SQ_DB_STATUS_ONLINE;
  db->status_text = "Online";
  db->ids.n = 0;
  pl_set_add(&db->ids, d->identity_id);
  db->keys = keys;
  db->current.n = 0;
  if(is_cmk(c)) {
    db->protector = d->protector_uri;
    db->auto_rot = d->auto_rotation;
    db->fcid = d->federated_client_id;
    pl_set_add(&db->current, d->protector_uri);
  }
  return 1;
}

/* Rule 2: exactly one user-assigned identity, set before any key needs it. */
static int check_identities(dbctx *c) {
  for(size_t i = 0; i < c->n; i++) {
    pdb *db = &c->db[i];
    if(!db->exists)
      continue;
    char w[300];
    who(c, i, w, sizeof w);
    if(db->ids.n > 1)
      pl_finding(&c->o, SQ_REASON_MULTIPLE_IDENTITIES,
                 "%s has %zu user-assigned identities; a database has exactly one%s", w, db->ids.n,
                 db->want_identity ? ": the others are removed" : "");
    const char *want = db->want_identity;
    if(!want || (db->ids.n == 1 && sq_plan_uri_eq(db->ids.v[0], want)))
      continue;
    if(!writable(c, i))
      return 1;
    /* the new identity must reach the protector in use, or the database
     * would lose access to its own key */
    if(db->protector && !pl_gate_key(&c->o, c->f, c->now, db->protector, want, "SetIdentity"))
      return 1;
    sq_plan_step *s = emit(c, i, SQ_STEP_SET_IDENTITY);
    if(!s)
      return 1;
    s->identity_id = pl_dup(&c->o, want);
    for(size_t k = 0; k < db->ids.n; k++)
      if(!sq_plan_uri_eq(db->ids.v[k], want))
        pl_list_add(&c->o, &s->remove_identities, db->ids.v[k]);
    char id[160];
    pl_short_id(want, id, sizeof id);
    pl_desc(s, "set the identity of %s to %s%s", w, id,
            s->remove_identities.n ? " (removing the others)" : "");
    db->ids.n = 0;
    pl_set_add(&db->ids, want);
    return 1;
  }
  return 0;
}

static int check_fcid(dbctx *c) {
  if(!is_cmk(c))
    return 0;
  const char *want = c->d->federated_client_id;
  for(size_t i = 0; i < c->n; i++) {
    pdb *db = &c->db[i];
    if(!db->exists || sq_plan_uri_eq(db->fcid, want))
      continue;
    if(!writable(c, i))
      return 1;
    sq_plan_step *s = emit(c, i, SQ_STEP_SET_FEDERATED_CLIENT_ID);
    if(!s)
      return 1;
    s->federated_client_id = pl_dup(&c->o, want);
    char w[300];
    who(c, i, w, sizeof w);
    if(want)
      pl_desc(s, "set federatedClientId of %s to %.64s", w, want);
    else
      pl_desc(s, "clear federatedClientId of %s", w);
    db->fcid = want;
    return 1;
  }
  return 0;
}

/* AddKeys for the members of want that database i lacks; 0 if none. */
static int emit_add_keys(dbctx *c, size_t i, const pl_set *want) {
  pdb *db = &c->db[i];
  pl_set missing;
  missing.n = 0;
  for(size_t k = 0; k < want->n; k++)
    if(!pl_set_has(&db->keys, want->v[k]))
      pl_set_add(&missing, want->v[k]);
  if(!missing.n)
    return 0;
  if(!writable(c, i))
    return 1;
  if(!gate_all(c, &missing, identity_of(db), "AddKeys"))
    return 1;
  sq_plan_step *s = emit(c, i, SQ_STEP_ADD_KEYS);
  if(!s)
    return 1;
  copy_set(c, &s->keys, &missing);
  char w[300], kt[300];
  who(c, i, w, sizeof w);
  keys_text(&missing, kt, sizeof kt);
  pl_desc(s, "add key(s) %s to %s without changing its protector", kt, w);
  for(size_t k = 0; k < missing.n; k++)
    pl_set_add(&db->keys, missing.v[k]);
  return 1;
}

/* Rule 3 (1)+(2): every needed key, including the future protector, reaches
 * the primary and every secondary before any protector moves; the primary's
 * current protector is kept on every secondary. */
static int check_add_keys(dbctx *c) {
  for(size_t i = 0; i < c->n; i++) {
    pdb *db = &c->db[i];
    if(!db->exists)
      continue;
    pl_set need;
    needed_for(c, i, &need);
    if(emit_add_keys(c, i, &need))
      return 1;
  }
  return 0;
}

static int emit_auto_rotation(dbctx *c, size_t i, int on) {
  pdb *db = &c->db[i];
  if(!writable(c, i))
    return 1;
  sq_plan_step *s = emit(c, i, SQ_STEP_SET_AUTO_ROTATION);
  if(!s)
    return 1;
  s->auto_rotation = on;
  char w[300];
  who(c, i, w, sizeof w);
  pl_desc(s, "turn protector auto-rotation %s for %s", on ? "on" : "off", w);
  db->auto_rot = on;
  return 1;
}

/* Rules 3 (3)+(4), 4, 6, 7 for one database: auto-rotation, protector or
 * revert. Called for the primary first, then each secondary. */
static int check_protector(dbctx *c, size_t i) {
  pdb *db = &c->db[i];
  const sq_plan_desired_db *d = c->d;
  if(!db->exists)
    return 0;
  char w[300];
  who(c, i, w, sizeof w);
  if(!is_cmk(c)) {
    if(!db->protector)
      return 0;
    /* check every server before reverting anything: stopping half-way would
     * leave the primary and its replicas at different levels */
    size_t first = i, last = i + 1;
    if(i == 0) {
      first = 0;
      last = c->n;
    }
    for(size_t j = first; j < last; j++)
      if(c->db[j].exists && c->db[j].protector &&
         c->db[j].server_enc != SQ_SERVER_ENC_SERVICE_MANAGED) {
        db = &c->db[j];
        who(c, j, w, sizeof w);
        break;
      }
    char srv[128];
    pl_short_id(db->server_id, srv, sizeof srv);
    if(db->server_enc == SQ_SERVER_ENC_CUSTOMER_MANAGED) {
      pl_stop(&c->o, SQ_PLAN_REFUSED, SQ_REASON_REVERT_NOT_ALLOWED_WITH_SERVER_CMK,
              PL_REFUSED_RECHECK_MS,
              "cannot revert %s to server-level encryption: server %s uses a customer-managed "
              "key, and Azure reverts a database-level protector only when the server uses a "
              "service-managed key (RevertDatabaseLevelKeyOnlySupportedWithSMK); keep an "
              "encryptionProtector or switch the server to ServiceManaged",
              w, srv);
      return 1;
    }
    if(db->server_enc != SQ_SERVER_ENC_SERVICE_MANAGED) {
      pl_stop(&c->o, SQ_PLAN_WAITING, SQ_REASON_SERVER_NOT_OBSERVED, PL_OBSERVE_MS,
              "reverting %s needs the protector type of server %s, not observed yet", w, srv);
      return 1;
    }
    if(!writable(c, i))
      return 1;
    sq_plan_step *s = emit(c, i, SQ_STEP_REVERT);
    if(!s)
      return 1;
    pl_desc(s, "revert %s to server-level encryption (server %s is service-managed)", w, srv);
    db->protector = NULL;
    db->auto_rot = 0;
    return 1;
  }

  const char *want = d->protector_uri;
  /* enabling auto-rotation first lets Azure move the version itself */
  if(d->auto_rotation && !db->auto_rot && db->protector && sq_plan_same_key(db->protector, want))
    return emit_auto_rotation(c, i, 1);
  if(!pl_protector_matches(&c->o, c->f, c->now, db->protector, db->auto_rot, want, d->auto_rotation,
                           w)) {
    /* the geo invariant, enforced at the write that could break it (not
     * just assumed from check_add_keys having run first) */
    pl_set one;
    one.n = 0;
    pl_set_add(&one, want);
    for(size_t j = 1; i == 0 && j < c->n; j++)
      if(c->db[j].exists && emit_add_keys(c, j, &one))
        return 1;
    if(!writable(c, i))
      return 1;
    if(db->protector) {
      int64_t wait = pl_rotation_wait_ms(&c->in->last_failure, db->server_id, c->now);
      if(wait > 0) {
        pl_stop(&c->o, SQ_PLAN_WAITING, SQ_REASON_ROTATION_BLOCKED, wait,
                "Azure refused to rotate %s (%s): active log (VLFs) is still encrypted with the "
                "old protector; retrying in %llds (attempt %u)",
                w, SQ_PLAN_ROTATION_BLOCKED_CODE, (long long)((wait + 999) / 1000),
                c->in->last_failure.attempts + 1);
        return 1;
      }
    }
    if(!pl_gate_key(&c->o, c->f, c->now, want, identity_of(db), "SetProtector"))
      return 1;
    sq_plan_step *s = emit(c, i, SQ_STEP_SET_PROTECTOR);
    if(!s)
      return 1;
    s->protector_uri = pl_dup(&c->o, want);
    pl_list_add(&c->o, &s->keys, want);
    s->auto_rotation = d->auto_rotation;
    char pk[160];
    pl_short_key(want, pk, sizeof pk);
    pl_desc(s, "set the protector of %s to %s%s", w, pk,
            d->auto_rotation ? " (auto-rotation on)" : "");
    pl_set_add(&db->keys, want);
    pl_set_add(&db->current, want);
    db->protector = want;
    db->auto_rot = d->auto_rotation;
    return 1;
  }
  if(db->auto_rot != d->auto_rotation)
    return emit_auto_rotation(c, i, d->auto_rotation);
  return 0;
}

static int check_primary_protector(dbctx *c) {
  return check_protector(c, 0);
}

static int check_secondary_protectors(dbctx *c) {
  for(size_t i = 1; i < c->n; i++)
    if(check_protector(c, i))
      return 1;
  return 0;
}

/* Rule 10: a replica of a database-level-CMK database is created with a UMI,
 * the primary's current keys and its protector. */
static int check_create_secondaries(dbctx *c) {
  const pdb *p = &c->db[0];
  for(size_t i = 1; i < c->n; i++) {
    pdb *db = &c->db[i];
    if(db->exists || db->desired_index < 0)
      continue;
    pl_set keys = p->current;
    pl_set_add(&keys, p->protector);
    char w[300];
    who(c, i, w, sizeof w);
    if(!gate_all(c, &keys, db->want_identity, "CreateDatabase (geo-secondary)"))
      return 1;
    sq_plan_step *s = emit(c, i, SQ_STEP_CREATE_DATABASE);
    if(!s)
      return 1;
    s->create_mode = SQ_CREATE_SECONDARY;
    s->source_database_id = pl_dup(&c->o, c->primary_id);
    s->location = pl_dup(&c->o, db->location);
    s->sku_name = pl_dup(&c->o, c->d->sku_name);
    s->sku_tier = pl_dup(&c->o, c->d->sku_tier);
    s->identity_id = pl_dup(&c->o, db->want_identity);
    copy_set(c, &s->keys, &keys);
    s->protector_uri = pl_dup(&c->o, p->protector);
    s->auto_rotation = p->protector ? p->auto_rot : 0;
    s->federated_client_id = pl_dup(&c->o, p->protector ? p->fcid : NULL);
    char pk[160];
    pl_short_key(p->protector, pk, sizeof pk);
    if(p->protector)
      pl_desc(s,
              "create geo-secondary %s from the primary with its protector %s and its %zu "
              "current key(s)",
              w, pk, keys.n);
    else
      pl_desc(s, "create geo-secondary %s from the primary (server-level encryption)", w);
    db->exists = 1;
    db->status = SQ_DB_STATUS_ONLINE;
    db->status_text = "Online";
    db->role = SQ_ROLE_SECONDARY;
    db->ids.n = 0;
    pl_set_add(&db->ids, db->want_identity);
    db->keys = keys;
    db->current.n = 0;
    pl_set_add(&db->current, p->protector);
    db->protector = p->protector;
    db->auto_rot = s->auto_rotation;
    db->fcid = p->protector ? p->fcid : NULL;
    return 1;
  }
  return 0;
}

/* Rule 5: removal comes last and never touches a protector, a key of active
 * log or a key a retained backup needs. */
static int check_remove_keys(dbctx *c) {
  for(size_t i = 0; i < c->n; i++) {
    pdb *db = &c->db[i];
    if(!db->exists)
      continue;
    pl_set need, remove;
    needed_for(c, i, &need);
    char w[300];
    who(c, i, w, sizeof w);
    int complete = db->keys_complete && c->db[0].keys_complete;
    remove.n = 0;
    for(size_t k = 0; k < db->keys.n; k++) {
      const char *key = db->keys.v[k];
      if(pl_set_has(&need, key))
        continue;
      char kk[160];
      pl_short_key(key, kk, sizeof kk);
      if(!complete) {
        pl_finding(&c->o, SQ_REASON_KEY_REMOVAL_DEFERRED,
                   "key %s of %s is not in the spec; it is kept until the keys in use and the "
                   "keys retained backups need have been observed",
                   kk, w);
        continue;
      }
      /* versions of an auto-rotating protector are Azure's to manage */
      if(is_cmk(c) && (sq_plan_uri_eq(key, c->d->protector_uri) ||
                       (c->d->auto_rotation && sq_plan_same_key(key, c->d->protector_uri))))
        continue;
      const char *why = NULL;
      if(sq_plan_uri_eq(key, db->protector) || sq_plan_uri_eq(key, c->db[0].protector))
        why = "it is a protector in use";
      else if(pl_set_has(&db->current, key) || pl_set_has(&c->db[0].current, key))
        why = "active log (VLFs) is still encrypted with it";
      else if(sq_plan_list_has(db->backup, key) || sq_plan_list_has(c->db[0].backup, key))
        why = "retained backups need it for restores";
      if(why) {
        if(strcmp(why, "it is a protector in use"))
          pl_finding(&c->o, SQ_REASON_KEY_REMOVAL_WOULD_STRAND_BACKUP,
                     "key %s is not in the spec of %s but is kept: %s", kk, w, why);
        continue;
      }
      pl_set_add(&remove, key);
    }
    if(!remove.n)
      continue;
    if(!writable(c, i))
      return 1;
    sq_plan_step *s = emit(c, i, SQ_STEP_REMOVE_KEYS);
    if(!s)
      return 1;
    copy_set(c, &s->remove_keys, &remove);
    char kt[300];
    keys_text(&remove, kt, sizeof kt);
    pl_desc(s,
            "remove key(s) %s from %s (no longer in the spec, not used by active log or "
            "retained backups)",
            kt, w);
    for(size_t k = 0; k < remove.n; k++)
      pl_set_del(&db->keys, remove.v[k]);
    return 1;
  }
  return 0;
}

/* Ready also means every replica is Online (a secondary still seeding is not
 * done yet). */
static int check_secondaries_online(dbctx *c) {
  for(size_t i = 1; i < c->n; i++)
    if(c->db[i].exists && c->db[i].desired_index >= 0 && !writable(c, i))
      return 1;
  return 0;
}

static int next_step(dbctx *c) {
  return check_revalidate(c) || check_primary_online(c) || check_create_primary(c) ||
         check_identities(c) || check_fcid(c) || check_add_keys(c) || check_primary_protector(c) ||
         check_secondary_protectors(c) || check_create_secondaries(c) || check_remove_keys(c) ||
         check_secondaries_online(c);
}

/* Rule 9 with Delete: replicas first (a primary with geo links cannot be
 * dropped), then the primary. Undeclared replicas are not ours to drop. */
static int next_delete_step(dbctx *c) {
  for(size_t i = 1; i < c->n; i++) {
    pdb *db = &c->db[i];
    if(!db->exists)
      continue;
    char w[300];
    who(c, i, w, sizeof w);
    if(db->desired_index < 0) {
      pl_stop(&c->o, SQ_PLAN_REFUSED, SQ_REASON_UNDECLARED_SECONDARY, PL_REFUSED_RECHECK_MS,
              "cannot delete the database: %s is a geo-secondary this SqlDatabase does not "
              "declare; remove that replication link or declare it in geoSecondaries",
              w);
      return 1;
    }
    sq_plan_step *s = emit(c, i, SQ_STEP_DELETE_DATABASE);
    if(!s)
      return 1;
    pl_desc(s, "delete %s (deletionPolicy Delete)", w);
    db->exists = 0;
    return 1;
  }
  if(c->db[0].exists) {
    char w[300];
    who(c, 0, w, sizeof w);
    sq_plan_step *s = emit(c, 0, SQ_STEP_DELETE_DATABASE);
    if(!s)
      return 1;
    pl_desc(s, "delete %s (deletionPolicy Delete)", w);
    c->db[0].exists = 0;
    return 1;
  }
  return 0;
}

static void run_chain(dbctx *c, int (*next)(dbctx *)) {
  while(!c->o.stopped && !c->o.oom) {
    if(c->o.p->n_steps >= SQ_PLAN_MAX_STEPS) {
      pl_finding(&c->o, SQ_REASON_PLAN_TRUNCATED,
                 "the plan was cut at %d steps; the rest is planned once these are done",
                 SQ_PLAN_MAX_STEPS);
      return;
    }
    size_t before = c->o.p->n_steps;
    if(!next(c) || c->o.p->n_steps == before)
      return;
  }
}

/* ---- snapshot -> prediction ------------------------------------------------- */

static void load_pdb(pdb *p, const sq_plan_observed_db *o, const char *server_id) {
  memset(p, 0, sizeof *p);
  p->server_id = server_id;
  p->desired_index = -1;
  p->backup = &empty_list;
  p->server_enc = o->server_encryption;
  if(!o->exists)
    return;
  p->exists = 1;
  p->status = o->status;
  p->status_text = o->status_text;
  p->role = o->role;
  pl_set_add_list(&p->ids, &o->identities);
  p->protector = o->protector_uri && *o->protector_uri ? o->protector_uri : NULL;
  p->auto_rot = o->auto_rotation ? 1 : 0;
  p->fcid = o->federated_client_id && *o->federated_client_id ? o->federated_client_id : NULL;
  pl_set_add_list(&p->keys, &o->keys);
  pl_set_add_list(&p->current, &o->current_keys);
  p->backup = &o->backup_keys;
  p->keys_complete = o->keys_complete;
}

static int spec_invalid(dbctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int spec_invalid(dbctx *c, const char *fmt, ...) {
  char m[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(m, sizeof m, fmt, ap);
  va_end(ap);
  pl_stop(&c->o, SQ_PLAN_REFUSED, SQ_REASON_INVALID_SPEC, 0, "%s", m);
  return 0;
}

/* What the spec itself must satisfy before any Azure call. */
static int validate(dbctx *c) {
  const sq_plan_desired_db *d = c->d;
  if(d->invalid)
    return spec_invalid(c, "%s", d->invalid_message ? d->invalid_message : "the spec is invalid");
  if(d->unresolved && (!d->being_deleted || !d->server_id)) {
    pl_stop(&c->o, SQ_PLAN_WAITING, SQ_REASON_REFERENCE_NOT_FOUND, PL_RECHECK_MS, "%s",
            d->unresolved);
    return 0;
  }
  if(!d->server_id || !*d->server_id)
    return spec_invalid(c, "spec.server: the server's resource id is not known");
  if(!d->name || !*d->name)
    return spec_invalid(c, "spec.databaseName: empty database name");
  if(d->n_secondaries > SQ_PLAN_MAX_SECONDARIES)
    return spec_invalid(c,
                        "spec.geoSecondaries: %zu secondaries, Azure SQL allows at most %d per "
                        "database",
                        d->n_secondaries, SQ_PLAN_MAX_SECONDARIES);
  for(size_t i = 0; i < d->n_secondaries; i++) {
    const char *s = d->secondaries[i].server_id;
    if(!s || !*s)
      return spec_invalid(c, "spec.geoSecondaries[%zu].server: resource id not known", i);
    if(sq_plan_uri_eq(s, d->server_id))
      return spec_invalid(c,
                          "spec.geoSecondaries[%zu].server: a geo-secondary cannot be on the "
                          "primary's own server",
                          i);
    for(size_t j = 0; j < i; j++)
      if(sq_plan_uri_eq(s, d->secondaries[j].server_id))
        return spec_invalid(c,
                            "spec.geoSecondaries[%zu].server: the same server is listed twice "
                            "(entry %zu)",
                            i, j);
  }
  if(d->being_deleted)
    return 1; /* deleting needs nothing else */
  if(is_cmk(c)) {
    if(!d->protector_uri || !sq_plan_key_uri_valid(d->protector_uri))
      return spec_invalid(c, "spec.encryptionProtector: no valid versioned key URI resolved");
    if(d->protector_pinned && d->auto_rotation)
      return spec_invalid(c, "spec.encryptionProtector.version: a pinned version conflicts with "
                             "autoRotation (Azure moves the protector to the newest version)");
  }
  for(size_t k = 0; k < d->keys.n; k++)
    if(!sq_plan_key_uri_valid(d->keys.v[k]))
      return spec_invalid(c, "spec.keys[%zu]: not a Key Vault key URI", k);
  if((is_cmk(c) || d->keys.n) && !d->identity_id)
    return spec_invalid(c, "spec.identity: a database-level protector and extra keys need the "
                           "database's user-assigned identity (system-assigned is not supported "
                           "at database level)");
  return 1;
}

static int load(dbctx *c) {
  const sq_plan_db_input *in = c->in;
  const sq_plan_desired_db *d = c->d;
  if(!in->primary.known) {
    pl_stop(&c->o, SQ_PLAN_WAITING, SQ_REASON_OBSERVATION_INCOMPLETE, PL_OBSERVE_MS,
            "database %.128s has not been observed yet", d->name);
    return 0;
  }
  load_pdb(&c->db[0], &in->primary, d->server_id);
  c->db[0].want_identity = d->identity_id;
  c->n = 1;
  int used[SQ_PLAN_SECONDARY_SLOTS] = {0};
  for(size_t j = 0; j < d->n_secondaries && j < SQ_PLAN_SECONDARY_SLOTS; j++) {
    const sq_plan_desired_secondary *ds = &d->secondaries[j];
    size_t k = 0;
    while(k < in->n_secondaries && k < SQ_PLAN_SECONDARY_SLOTS &&
          (used[k] || !sq_plan_uri_eq(in->secondaries[k].server_id, ds->server_id)))
      k++;
    if(k >= in->n_secondaries || k >= SQ_PLAN_SECONDARY_SLOTS || !in->secondaries[k].known) {
      char srv[128];
      pl_short_id(ds->server_id, srv, sizeof srv);
      pl_stop(&c->o, SQ_PLAN_WAITING, SQ_REASON_OBSERVATION_INCOMPLETE, PL_OBSERVE_MS,
              "geo-secondary on server %s has not been observed yet", srv);
      return 0;
    }
    used[k] = 1;
    pdb *p = &c->db[c->n++];
    load_pdb(p, &in->secondaries[k], ds->server_id);
    p->desired_index = (int)j;
    p->want_identity = ds->identity_id ? ds->identity_id : d->identity_id;
    p->location = ds->location;
  }
  for(size_t k = 0; k < in->n_secondaries && k < SQ_PLAN_SECONDARY_SLOTS; k++) {
    const sq_plan_observed_db *o = &in->secondaries[k];
    if(used[k] || !o->known || !o->exists || !o->server_id ||
       sq_plan_uri_eq(o->server_id, d->server_id))
      continue;
    int dup = 0;
    for(size_t i = 0; i < c->n; i++)
      dup |= sq_plan_uri_eq(c->db[i].server_id, o->server_id);
    if(dup || c->n >= 1 + SQ_PLAN_SECONDARY_SLOTS)
      continue;
    pdb *p = &c->db[c->n++];
    load_pdb(p, o, o->server_id);
    char w[300];
    who(c, c->n - 1, w, sizeof w);
    pl_finding(&c->o, SQ_REASON_UNDECLARED_SECONDARY,
               "%s exists but is not in spec.geoSecondaries: its keys and protector are kept in "
               "step with the primary, but it is never created or deleted",
               w);
  }
  if(c->db[0].exists && c->db[0].role == SQ_ROLE_SECONDARY && d->n_secondaries && !d->being_deleted)
    return spec_invalid(c,
                        "spec.geoSecondaries: database %.128s is itself a geo-secondary; Azure "
                        "SQL does not chain geo-replicas (SecurityAzureKeyVaultGeoChainError)",
                        d->name);
  if(d->encryption == SQ_DB_ENC_SERVICE_MANAGED && !d->being_deleted) {
    for(size_t i = 0; i < c->n; i++) {
      if(c->db[i].desired_index < 0 && i)
        continue;
      char srv[128];
      pl_short_id(c->db[i].server_id, srv, sizeof srv);
      if(c->db[i].server_enc == SQ_SERVER_ENC_CUSTOMER_MANAGED) {
        pl_stop(&c->o, SQ_PLAN_REFUSED, SQ_REASON_OPT_IN_TO_SMK_NOT_ALLOWED, PL_REFUSED_RECHECK_MS,
                "database %.128s cannot opt into service-managed encryption: server %s uses a "
                "customer-managed key, and a database can't opt into SMK when its server uses "
                "CMK",
                d->name, srv);
        return 0;
      }
      if(c->db[i].server_enc == SQ_SERVER_ENC_UNKNOWN) {
        pl_stop(&c->o, SQ_PLAN_WAITING, SQ_REASON_SERVER_NOT_OBSERVED, PL_OBSERVE_MS,
                "service-managed encryption needs the protector type of server %s, not "
                "observed yet",
                srv);
        return 0;
      }
    }
  }
  c->extra.n = 0;
  pl_set_add_list(&c->extra, &d->keys);
  snprintf(c->primary_id, sizeof c->primary_id, "%s/databases/%s", d->server_id, d->name);
  return 1;
}

sq_code sq_plan_db(const sq_plan_db_input *in, sq_plan *out, sq_err *err) {
  memset(out, 0, sizeof *out);
  dbctx *c = calloc(1, sizeof *c);
  if(!c)
    return sq_err_set(err, SQ_ENOMEM, "planner: out of memory");
  c->in = in;
  c->d = &in->desired;
  c->f = &in->facts;
  c->now = in->now;
  c->o.p = out;
  const sq_plan_desired_db *d = c->d;
  if(d->being_deleted && d->deletion_policy != SQ_DELETION_DELETE) {
    pl_finish(&c->o, SQ_REASON_RETAINED,
              "deletionPolicy is Retain: the Azure database is kept and no Azure call is made");
  } else if(validate(c) && load(c)) {
    if(d->being_deleted) {
      run_chain(c, next_delete_step);
      pl_finish(&c->o, SQ_REASON_DELETED, "the database and its declared secondaries are gone");
    } else {
      run_chain(c, next_step);
      pl_finish(&c->o, SQ_REASON_UP_TO_DATE, "the database matches the desired state");
    }
  }
  int oom = c->o.oom;
  free(c);
  if(oom) {
    sq_plan_free(out);
    return sq_err_set(err, SQ_ENOMEM, "planner: out of memory");
  }
  return SQ_OK;
}
