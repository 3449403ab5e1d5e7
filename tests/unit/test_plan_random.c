/* Randomized property test of the SqlDatabase planner against a small model
 * of Azure's documented behaviour (azure-api.md §1.7, §2.5, §3.4, §7).
 *
 * Each scenario draws a desired SqlDatabase and an Azure-consistent starting
 * estate (primary, up to four secondaries, keys with random health and
 * permissions, a long transaction that blocks rotation, auto-rotation moving
 * versions on its own). Then, until the planner says Converged or is blocked
 * on something only a human can fix:
 *   snapshot the model -> plan -> execute the first 1..3 steps the way Azure
 *   would (refusing what Azure documents it refuses) -> time passes.
 * The operator is "killed" between passes: nothing survives but the model
 * and, sometimes, the executor's record of the last failure.
 *
 * Checked after every step: the primary's protector is on every secondary;
 * no key that is current (active VLFs) or needed by a retained backup is
 * ever removed; a database has exactly one identity after an identity step;
 * Azure refuses nothing except a rotation blocked by old VLFs; no write is
 * planned when the model already matches the spec; a converged verdict
 * really matches it. Scenarios without an injected blocker must converge
 * within the bound; those with one must stop on a reason that names it.
 *
 * Deterministic: fixed seeds (SQLTDE_PLAN_SEED adds one, SQLTDE_PLAN_SCENARIOS
 * changes the count); a failure prints the scenario seed to replay. */
#include <stdarg.h>
#include <stdlib.h>

#include "sqltde/plan/plan.h"
#include "test.h"
#include "test_plan_fixture.h"

#define NKEYS 6
#define NSRV 6 /* srv1 (primary) .. srv6 */
#define NUMI 2
#define MAX_PLANS 80
#define MAX_STEPS_APPLIED 80
enum { A1, A2, B1, C1, D1, E1 };

static const char *const key_uri[NKEYS] = {KA1, KA2, KB1, KC1, KD1, KE1};
static const char *const srv_id[NSRV] = {SRV1, SRV2, SRV3, SRV4, SRV5, SRV6};
static const char *const umi_id[NUMI] = {UMI1, UMI2};

/* ---- rng (splitmix64) ---------------------------------------------------- */

typedef struct rng {
  uint64_t s;
} rng;
static uint64_t rnext(rng *r) {
  uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static int rint_(rng *r, int n) {
  return (int)(rnext(r) % (uint64_t)n);
}
static int chance(rng *r, int pct) {
  return rint_(r, 100) < pct;
}

/* ---- the Azure model ------------------------------------------------------- */

enum { ST_ONLINE, ST_CREATING, ST_INACCESSIBLE };

typedef struct mdb {
  int exists;
  int status;
  unsigned ids;  /* bit per UMI */
  int protector; /* key index or -1 */
  int auto_rot;
  int fcid;         /* 1: FCID set */
  unsigned keys;    /* keys map */
  unsigned current; /* protector + keys of active VLFs */
  unsigned backup;  /* keys retained backups need */
  int secondary;    /* role */
} mdb;

typedef struct mkey {
  int exists, enabled, expired;
  int64_t created;
} mkey;

typedef struct maccess {
  int granted;
  int64_t granted_at; /* 0 = long ago */
} maccess;

typedef struct model {
  mdb db[NSRV]; /* db[i] is "db1" on server i; [0] the primary */
  int server_cmk[NSRV];
  mkey key[NKEYS];
  maccess acc[NKEYS][NUMI];
  int blocked_ticks; /* a long transaction keeps old VLFs: rotation refused */
  int64_t now;
  int refusals_rotation;
  char violation[512];
} model;

/* The spec, in model terms. */
typedef struct spec {
  int enc; /* sq_plan_db_enc */
  int protector;
  unsigned extra;
  int umi;
  int auto_rot, fcid, pinned;
  int nsec;
  int sec_srv[6];
  int sec_umi[6];
  int deleting, delete_policy;
  int expect_invalid;
} spec;

static void violate(model *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void violate(model *m, const char *fmt, ...) {
  if(m->violation[0])
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(m->violation, sizeof m->violation, fmt, ap);
  va_end(ap);
}

static int usable(const model *m, int k, int umi) {
  if(k < 0 || umi < 0)
    return 0;
  const mkey *x = &m->key[k];
  const maccess *a = &m->acc[k][umi];
  return x->exists && x->enabled && !x->expired && a->granted &&
         (a->granted_at == 0 || m->now >= a->granted_at + SQ_PLAN_GRANT_DELAY_S);
}

static int one_umi(unsigned ids) {
  if(ids == 1u)
    return 0;
  if(ids == 2u)
    return 1;
  return -1;
}

static int key_index(const char *uri) {
  for(int k = 0; k < NKEYS; k++)
    if(sq_plan_uri_eq(key_uri[k], uri))
      return k;
  return -1;
}
static int srv_index(const char *id) {
  for(int i = 0; i < NSRV; i++)
    if(sq_plan_uri_eq(srv_id[i], id))
      return i;
  return -1;
}
static int umi_index(const char *id) {
  for(int i = 0; i < NUMI; i++)
    if(sq_plan_uri_eq(umi_id[i], id))
      return i;
  return -1;
}
static unsigned mask_of(const sq_plan_list *l) {
  unsigned m = 0;
  for(size_t i = 0; i < l->n; i++)
    if(key_index(l->v[i]) >= 0)
      m |= 1u << key_index(l->v[i]);
  return m;
}
static int n_secondaries(const model *m) {
  int n = 0;
  for(int i = 1; i < NSRV; i++)
    n += m->db[i].exists;
  return n;
}

/* Every key in mask usable by umi, or the code Azure answers. */
static const char *keys_usable(const model *m, unsigned mask, int umi) {
  for(int k = 0; k < NKEYS; k++) {
    if(!(mask & (1u << k)))
      continue;
    if(!m->key[k].exists)
      return "AkvKeyDeleted";
    if(!m->key[k].enabled)
      return "AzureKeyVaultKeyDisabled";
    if(m->key[k].expired)
      return "AzureKeyVaultInvalidExpirationDate";
    if(!usable(m, k, umi))
      return "UmiMissingAkvPermissions";
  }
  return NULL;
}

/* Applies one step the way Azure would; returns the refusal code or NULL. */
static const char *azure_apply(model *m, const sq_plan_step *s) {
  int t = srv_index(s->server_id);
  if(t < 0 || !s->database || strcmp(s->database, "db1"))
    return "ResourceNotFound";
  mdb *db = &m->db[t];
  mdb *p = &m->db[0];
  const char *e;
  unsigned keys = mask_of(&s->keys);
  int umi;
  switch(s->kind) {
  case SQ_STEP_CREATE_DATABASE: {
    if(db->exists)
      return "DatabaseAlreadyExists";
    umi = s->identity_id ? umi_index(s->identity_id) : -1;
    int prot = s->protector_uri ? key_index(s->protector_uri) : -1;
    if(s->create_mode == SQ_CREATE_SECONDARY) {
      if(!p->exists || t == 0)
        return "SourceDatabaseNotFound";
      if(p->secondary)
        return "SecurityAzureKeyVaultGeoChainError";
      if(n_secondaries(m) >= 4)
        return "TooManySecondaries";
      if(p->protector >= 0) {
        if(prot != p->protector)
          return "SourceDatabaseEncryptionProtectorKeyUriRequiredForPerDatabaseCMKCopyOrReplicatio"
                 "n";
        if((keys & p->current) != p->current)
          return "PerDatabaseCMKCopyOrReplicationAttemptedWithoutCurrentKeys";
        if(umi < 0)
          return "PerDatabaseCMKMissingIdentityOnGeoSecondaryDatabase";
      }
    }
    if(prot >= 0 && !(keys & (1u << prot)))
      return "InvalidKeys";
    if(keys && (e = keys_usable(m, keys, umi)))
      return e;
    memset(db, 0, sizeof *db);
    db->exists = 1;
    db->status = ST_ONLINE; /* the executor follows the LRO to its end */
    db->ids = umi >= 0 ? 1u << umi : 0;
    db->protector = prot;
    db->auto_rot = prot >= 0 && s->auto_rotation;
    db->fcid = s->federated_client_id != NULL;
    db->keys = keys;
    db->current = prot >= 0 ? 1u << prot : 0;
    db->backup = db->current;
    db->secondary = s->create_mode == SQ_CREATE_SECONDARY;
    if(s->identity_id && one_umi(db->ids) < 0)
      violate(m, "create left %u identities", db->ids);
    return NULL;
  }
  case SQ_STEP_DELETE_DATABASE:
    if(!db->exists)
      return NULL; /* 204 */
    if(t == 0 && n_secondaries(m))
      return "DatabaseHasGeoSecondaries";
    memset(db, 0, sizeof *db);
    db->protector = -1;
    return NULL;
  default:
    break;
  }
  if(!db->exists)
    return "ResourceNotFound";
  if(s->kind == SQ_STEP_REVALIDATE) {
    if(db->protector < 0)
      return "DatabaseLevelEncryptionProtectorDoesNotExist";
    if(!usable(m, db->protector, one_umi(db->ids)))
      return "AkvKeyAccessDenied";
    db->status = ST_ONLINE;
    return NULL;
  }
  if(db->status != ST_ONLINE)
    return db->status == ST_INACCESSIBLE ? "DatabaseInaccessible" : "DatabaseBusy";
  umi = one_umi(db->ids);
  switch(s->kind) {
  case SQ_STEP_SET_IDENTITY: {
    int want = umi_index(s->identity_id);
    if(want < 0)
      return "InvalidIdentityId";
    unsigned ids = db->ids | (1u << want);
    for(size_t i = 0; i < s->remove_identities.n; i++) {
      int r = umi_index(s->remove_identities.v[i]);
      if(r >= 0)
        ids &= ~(1u << r);
    }
    if(one_umi(ids) < 0)
      return "MultipleIdentitiesOnDatabase";
    if(db->protector >= 0 && !usable(m, db->protector, want))
      violate(m, "SetIdentity on srv%d cut the database off its protector", t + 1);
    db->ids = ids;
    return NULL;
  }
  case SQ_STEP_SET_FEDERATED_CLIENT_ID:
    db->fcid = s->federated_client_id != NULL;
    return NULL;
  case SQ_STEP_ADD_KEYS:
    if(umi < 0)
      return "InvalidNumberOfIdentities";
    if((e = keys_usable(m, keys, umi)))
      return e;
    db->keys |= keys;
    return NULL;
  case SQ_STEP_SET_AUTO_ROTATION:
    db->auto_rot = s->auto_rotation;
    return NULL;
  case SQ_STEP_SET_PROTECTOR: {
    int k = key_index(s->protector_uri);
    if(k < 0)
      return "AzureKeyVaultInvalidUri";
    if(umi < 0)
      return "InvalidNumberOfIdentities";
    if((e = keys_usable(m, keys | (1u << k), umi)))
      return e;
    if(t == 0)
      for(int i = 1; i < NSRV; i++)
        if(m->db[i].exists && !(m->db[i].keys & (1u << k)))
          return "PerDatabaseCMKAKVKeyUriMissingOnGeoSecondary";
    if(db->protector >= 0 && db->protector != k && m->blocked_ticks > 0) {
      m->refusals_rotation++;
      return SQ_PLAN_ROTATION_BLOCKED_CODE;
    }
    db->keys |= keys | (1u << k);
    db->current |= 1u << k; /* the old protector stays current while VLFs use it */
    db->backup |= 1u << k;
    db->protector = k;
    db->auto_rot = s->auto_rotation;
    return NULL;
  }
  case SQ_STEP_REMOVE_KEYS: {
    unsigned rm = mask_of(&s->remove_keys);
    if(db->protector >= 0 && (rm & (1u << db->protector)))
      return "AzureKeyVaultKeyInUse";
    if(rm & (db->current | db->backup | p->current | p->backup))
      violate(m, "RemoveKeys on srv%d removed a key still current or needed by a backup (%#x)",
              t + 1, rm & (db->current | db->backup | p->current | p->backup));
    if(t != 0 && p->protector >= 0 && (rm & (1u << p->protector)))
      violate(m, "RemoveKeys removed the primary's protector from srv%d", t + 1);
    db->keys &= ~rm;
    return NULL;
  }
  case SQ_STEP_REVERT:
    if(db->protector < 0)
      return "DatabaseLevelEncryptionProtectorDoesNotExist";
    if(m->server_cmk[t])
      return "RevertDatabaseLevelKeyOnlySupportedWithSMK";
    db->protector = -1;
    db->auto_rot = 0;
    return NULL;
  default:
    return "UnsupportedStep";
  }
}

/* The geo invariant and the identity rule, on the whole estate. */
static void check_invariants(model *m, const sq_plan_step *s) {
  const mdb *p = &m->db[0];
  for(int i = 1; i < NSRV; i++)
    if(p->exists && p->protector >= 0 && m->db[i].exists && !(m->db[i].keys & (1u << p->protector)))
      violate(m, "after %s: srv%d lacks the primary's protector %d",
              sq_plan_step_kind_name(s->kind), i + 1, p->protector);
  if(s->kind == SQ_STEP_SET_IDENTITY || s->kind == SQ_STEP_CREATE_DATABASE) {
    int t = srv_index(s->server_id);
    if(t >= 0 && m->db[t].exists && s->identity_id && one_umi(m->db[t].ids) < 0)
      violate(m, "after %s: srv%d has identities %#x", sq_plan_step_kind_name(s->kind), t + 1,
              m->db[t].ids);
  }
}

/* Time passes: old VLFs age out, a long transaction ends, auto-rotation
 * moves protectors to the newest version (rotated keys reach the
 * secondaries first, as Azure transfers them). */
static void tick(model *m, rng *r, int64_t dt) {
  m->now += dt;
  if(m->blocked_ticks > 0)
    m->blocked_ticks--;
  for(int i = 0; i < NSRV; i++) {
    mdb *db = &m->db[i];
    if(db->exists && db->protector >= 0 && chance(r, 35))
      db->current = 1u << db->protector;
    if(db->exists && db->status == ST_CREATING && chance(r, 60))
      db->status = ST_ONLINE;
  }
  mdb *p = &m->db[0];
  if(p->exists && p->status == ST_ONLINE && p->auto_rot && p->protector == A1 && chance(r, 30) &&
     usable(m, A2, one_umi(p->ids))) {
    for(int i = 1; i < NSRV; i++)
      if(m->db[i].exists)
        m->db[i].keys |= 1u << A2;
    for(int i = 0; i < NSRV; i++) {
      mdb *db = &m->db[i];
      if(db->exists && db->auto_rot && db->protector == A1) {
        db->keys |= 1u << A2;
        db->current |= 1u << A2;
        db->backup |= 1u << A2;
        db->protector = A2;
      }
    }
  }
}

/* ---- scenario generation ------------------------------------------------------ */

typedef struct scenario {
  model m;
  spec d;
  unsigned allowed; /* bit per sq_plan_reason a blocked end may show */
  int feasible;     /* no blocker injected: must converge */
} scenario;

static void allow(scenario *sc, sq_plan_reason r) {
  sc->allowed |= 1u << r;
  sc->feasible = 0;
}

static void gen_db(rng *r, mdb *db, int with_protector, int protector, int umi) {
  db->exists = 1;
  db->status = ST_ONLINE;
  db->ids = 1u << umi;
  db->protector = with_protector ? protector : -1;
  db->keys = (unsigned)rint_(r, 1 << NKEYS);
  if(db->protector >= 0)
    db->keys |= 1u << db->protector;
  db->current =
      (db->protector >= 0 ? 1u << db->protector : 0) | (db->keys & (unsigned)rint_(r, 64));
  db->backup = (db->protector >= 0 ? 1u << db->protector : 0) | (db->keys & (unsigned)rint_(r, 64));
  db->auto_rot = with_protector && chance(r, 30);
  db->fcid = chance(r, 15);
}

static void gen(scenario *sc, uint64_t seed) {
  rng r = {seed};
  memset(sc, 0, sizeof *sc);
  sc->feasible = 1;
  model *m = &sc->m;
  spec *d = &sc->d;
  m->now = NOW;
  for(int k = 0; k < NKEYS; k++) {
    m->key[k] = (mkey){1, 1, 0, NOW - (int64_t)rint_(&r, 400) * 24 * HOUR};
    for(int u = 0; u < NUMI; u++)
      m->acc[k][u] = (maccess){1, 0};
  }
  m->key[A2].created = NOW - (int64_t)rint_(&r, 48) * HOUR; /* the newest version */
  for(int i = 0; i < NSRV; i++) {
    m->db[i].protector = -1;
    m->server_cmk[i] = chance(&r, 35);
  }

  /* desired */
  int e = rint_(&r, 10);
  d->enc = e < 7   ? SQ_DB_ENC_CUSTOMER_MANAGED
           : e < 9 ? SQ_DB_ENC_SERVER_LEVEL
                   : SQ_DB_ENC_SERVICE_MANAGED;
  d->protector = rint_(&r, 4);             /* A1, A2, B1, C1 */
  d->extra = (unsigned)rint_(&r, 8) << B1; /* subset of B1, C1, D1 */
  d->umi = chance(&r, 80) ? 0 : 1;
  d->auto_rot = d->enc == SQ_DB_ENC_CUSTOMER_MANAGED && chance(&r, 35);
  d->pinned = !d->auto_rot && chance(&r, 20);
  d->fcid = d->enc == SQ_DB_ENC_CUSTOMER_MANAGED && chance(&r, 20);
  d->nsec = rint_(&r, 10) < 5 ? 0 : 1 + rint_(&r, 3);
  int used[NSRV] = {1};
  for(int i = 0; i < d->nsec; i++) {
    int s;
    do
      s = 1 + rint_(&r, 4);
    while(used[s]);
    used[s] = 1;
    d->sec_srv[i] = s;
    d->sec_umi[i] = chance(&r, 70) ? -1 : 1;
  }
  if(chance(&r, 3)) { /* invalid: five secondaries, or one on the primary's server */
    d->expect_invalid = 1;
    if(chance(&r, 50)) {
      d->nsec = 5;
      for(int i = 0; i < 5; i++)
        d->sec_srv[i] = i + 1, d->sec_umi[i] = -1;
    } else {
      d->sec_srv[d->nsec] = 0;
      d->sec_umi[d->nsec++] = -1;
    }
    allow(sc, SQ_REASON_INVALID_SPEC);
  }
  if(chance(&r, 6)) {
    d->deleting = 1;
    d->delete_policy = chance(&r, 50) ? SQ_DELETION_DELETE : SQ_DELETION_RETAIN;
  }

  /* observed: an estate Azure could be in */
  mdb *p = &m->db[0];
  if(chance(&r, 85)) {
    int with_prot = chance(&r, 65);
    int prot = rint_(&r, 5);
    gen_db(&r, p, with_prot, prot, chance(&r, 80) ? 0 : 1);
    if(chance(&r, 5))
      p->status = ST_CREATING;
    else if(with_prot && chance(&r, 10))
      p->status = ST_INACCESSIBLE;
    else if(chance(&r, 10))
      p->ids = 3u; /* misconfigured: two UMIs */
    if(!with_prot && chance(&r, 50))
      p->ids = 0;
    for(int s = 1; s <= 4; s++) {
      int declared = 0;
      for(int i = 0; i < d->nsec; i++)
        declared |= d->sec_srv[i] == s;
      if(!chance(&r, declared ? 55 : 8))
        continue;
      mdb *x = &m->db[s];
      gen_db(&r, x, with_prot, prot, chance(&r, 70) ? 0 : 1);
      x->secondary = 1;
      x->auto_rot = p->auto_rot;
      if(with_prot) {
        x->keys |= 1u << prot;
        if(chance(&r, 20)) { /* its own protector differs, still holding the primary's */
          x->protector = rint_(&r, 5);
          x->keys |= 1u << x->protector;
          x->current |= 1u << x->protector;
        }
      }
      if(!declared && d->deleting && d->delete_policy == SQ_DELETION_DELETE && !d->expect_invalid)
        allow(sc, SQ_REASON_UNDECLARED_SECONDARY);
    }
  }
  if(chance(&r, 30))
    m->blocked_ticks = 1 + rint_(&r, 4);

  /* blockers */
  if(chance(&r, 12)) {
    int k = rint_(&r, NKEYS);
    int how = rint_(&r, 3);
    if(how == 0)
      m->key[k].enabled = 0;
    else if(how == 1)
      m->key[k].exists = 0;
    else
      m->key[k].expired = 1;
    allow(sc, how == 0   ? SQ_REASON_KEY_DISABLED
              : how == 1 ? SQ_REASON_KEY_NOT_FOUND
                         : SQ_REASON_KEY_EXPIRED);
    allow(sc, SQ_REASON_DATABASE_INACCESSIBLE);
  }
  if(chance(&r, 10)) {
    m->acc[rint_(&r, NKEYS)][rint_(&r, NUMI)].granted = 0;
    allow(sc, SQ_REASON_IDENTITY_MISSING_PERMISSIONS);
    allow(sc, SQ_REASON_DATABASE_INACCESSIBLE);
  }
  if(chance(&r, 20)) /* a recent grant: pending for up to 10 minutes */
    m->acc[rint_(&r, NKEYS)][rint_(&r, NUMI)].granted_at = NOW - rint_(&r, 600);
  if(d->enc != SQ_DB_ENC_CUSTOMER_MANAGED) {
    int cmk_with_prot = 0;
    for(int i = 0; i < NSRV; i++)
      cmk_with_prot |= m->db[i].exists && m->db[i].protector >= 0 && m->server_cmk[i];
    if(cmk_with_prot)
      allow(sc, SQ_REASON_REVERT_NOT_ALLOWED_WITH_SERVER_CMK);
    int cmk_server = m->server_cmk[0];
    for(int i = 0; i < d->nsec; i++)
      cmk_server |= m->server_cmk[d->sec_srv[i]];
    if(d->enc == SQ_DB_ENC_SERVICE_MANAGED && cmk_server)
      allow(sc, SQ_REASON_OPT_IN_TO_SMK_NOT_ALLOWED);
  }
}

/* ---- snapshot ---------------------------------------------------------------- */

static void observe_db(const model *m, int i, sq_plan_observed_db *o) {
  const mdb *db = &m->db[i];
  o->known = 1;
  o->exists = db->exists;
  fx_set(&o->server_id, srv_id[i]);
  o->server_encryption =
      m->server_cmk[i] ? SQ_SERVER_ENC_CUSTOMER_MANAGED : SQ_SERVER_ENC_SERVICE_MANAGED;
  if(!db->exists)
    return;
  static const char *const st[] = {"Online", "Creating", "Inaccessible"};
  fx_set(&o->status_text, st[db->status]);
  o->status = sq_plan_db_status_parse(st[db->status]);
  o->role = db->secondary ? SQ_ROLE_SECONDARY : SQ_ROLE_PRIMARY;
  for(int u = 0; u < NUMI; u++)
    if(db->ids & (1u << u))
      fx_add(&o->identities, umi_id[u]);
  if(db->protector >= 0)
    fx_set(&o->protector_uri, key_uri[db->protector]);
  o->auto_rotation = db->auto_rot;
  if(db->fcid)
    fx_set(&o->federated_client_id, FCID);
  for(int k = 0; k < NKEYS; k++) {
    if(db->keys & (1u << k))
      fx_add(&o->keys, key_uri[k]);
    if(db->current & (1u << k))
      fx_add(&o->current_keys, key_uri[k]);
    if(db->backup & (1u << k))
      fx_add(&o->backup_keys, key_uri[k]);
  }
  o->keys_complete = 1;
}

typedef struct failure {
  char code[128];
  int srv;
  int64_t at;
  unsigned attempts;
} failure;

static void snapshot(const scenario *sc, const failure *f, sq_plan_db_input *in) {
  const model *m = &sc->m;
  const spec *d = &sc->d;
  memset(in, 0, sizeof *in);
  in->now = m->now;
  sq_plan_desired_db *dd = &in->desired;
  fx_set(&dd->server_id, srv_id[0]);
  fx_set(&dd->name, "db1");
  fx_set(&dd->location, "westeurope");
  fx_set(&dd->identity_id, umi_id[d->umi]);
  dd->encryption = (sq_plan_db_enc)d->enc;
  if(d->enc == SQ_DB_ENC_CUSTOMER_MANAGED)
    fx_set(&dd->protector_uri, key_uri[d->protector]);
  dd->protector_pinned = d->pinned;
  for(int k = 0; k < NKEYS; k++)
    if(d->extra & (1u << k))
      fx_add(&dd->keys, key_uri[k]);
  dd->auto_rotation = d->auto_rot;
  if(d->fcid)
    fx_set(&dd->federated_client_id, FCID);
  dd->being_deleted = d->deleting;
  dd->deletion_policy = (sq_plan_deletion)d->delete_policy;
  int declared[NSRV] = {0};
  for(int i = 0; i < d->nsec; i++) {
    sq_plan_desired_secondary *s = &dd->secondaries[dd->n_secondaries++];
    fx_set(&s->server_id, srv_id[d->sec_srv[i]]);
    if(d->sec_umi[i] >= 0)
      fx_set(&s->identity_id, umi_id[d->sec_umi[i]]);
    fx_set(&s->location, "northeurope");
    declared[d->sec_srv[i]] = 1;
  }
  observe_db(m, 0, &in->primary);
  for(int i = 1; i < NSRV; i++)
    if(declared[i] || m->db[i].exists)
      observe_db(m, i, &in->secondaries[in->n_secondaries++]);
  for(int k = 0; k < NKEYS; k++) {
    sq_plan_key_fact kf = {.uri = (char *)key_uri[k],
                           .exists = m->key[k].exists,
                           .enabled = m->key[k].enabled,
                           .created_s = m->key[k].created,
                           .exp_s = m->key[k].expired ? NOW - HOUR : 0};
    ASSERT_OK(sq_plan_facts_add_key(&in->facts, &kf, NULL));
    for(int u = 0; u < NUMI; u++) {
      sq_plan_access a = {.key_uri = (char *)key_uri[k],
                          .identity_id = (char *)umi_id[u],
                          .state = m->acc[k][u].granted ? SQ_ACCESS_GRANTED : SQ_ACCESS_MISSING,
                          .missing = m->acc[k][u].granted ? 0 : SQ_PERM_WRAP | SQ_PERM_UNWRAP,
                          .granted_s = m->acc[k][u].granted_at};
      ASSERT_OK(sq_plan_facts_add_access(&in->facts, &a, NULL));
    }
  }
  if(f->code[0]) {
    fx_set(&in->last_failure.code, f->code);
    fx_set(&in->last_failure.server_id, srv_id[f->srv]);
    in->last_failure.at_s = f->at;
    in->last_failure.attempts = f->attempts;
  }
}

/* ---- the oracle: does the model match the spec? --------------------------------- */

static int protector_ok(const spec *d, const mdb *db) {
  if(d->enc != SQ_DB_ENC_CUSTOMER_MANAGED)
    return db->protector < 0;
  if(db->protector == d->protector)
    return db->auto_rot == d->auto_rot;
  /* same key (tdeA), another version, auto-rotation on both sides */
  int fam =
      (db->protector == A1 || db->protector == A2) && (d->protector == A1 || d->protector == A2);
  return fam && d->auto_rot && db->auto_rot;
}

static int matches(const scenario *sc) {
  const model *m = &sc->m;
  const spec *d = &sc->d;
  const mdb *p = &m->db[0];
  if(!p->exists || p->status != ST_ONLINE)
    return 0;
  unsigned need = d->extra;
  if(d->enc == SQ_DB_ENC_CUSTOMER_MANAGED) {
    int fam = d->auto_rot && (d->protector == A1 || d->protector == A2) &&
              (p->protector == A1 || p->protector == A2);
    need |= 1u << (fam ? p->protector : d->protector);
  }
  int declared[NSRV] = {1};
  for(int i = 0; i < d->nsec; i++)
    declared[d->sec_srv[i]] = 1;
  for(int i = 0; i < NSRV; i++) {
    const mdb *db = &m->db[i];
    if(i && !db->exists) {
      if(declared[i])
        return 0;
      continue;
    }
    if(db->status != ST_ONLINE)
      return 0;
    int want_umi = i == 0 ? d->umi : -2;
    for(int j = 0; j < d->nsec; j++)
      if(d->sec_srv[j] == i)
        want_umi = d->sec_umi[j] >= 0 ? d->sec_umi[j] : d->umi;
    if(want_umi >= 0 && db->ids != 1u << want_umi)
      return 0;
    if(!protector_ok(d, db))
      return 0;
    if(d->enc == SQ_DB_ENC_CUSTOMER_MANAGED && db->fcid != d->fcid)
      return 0;
    unsigned need_i = need | (i && p->protector >= 0 ? 1u << p->protector : 0);
    if((db->keys & need_i) != need_i)
      return 0;
    unsigned keep = need_i | db->current | db->backup | p->current | p->backup;
    if(db->protector >= 0)
      keep |= 1u << db->protector;
    if(p->protector >= 0)
      keep |= 1u << p->protector;
    if(d->enc == SQ_DB_ENC_CUSTOMER_MANAGED) {
      keep |= 1u << d->protector;
      if(d->auto_rot && (d->protector == A1 || d->protector == A2))
        keep |= (1u << A1) | (1u << A2);
    }
    if(db->keys & ~keep)
      return 0; /* a key the planner should have removed */
  }
  return 1;
}

/* ---- the driver -------------------------------------------------------------------- */

typedef struct stats {
  long scenarios, plans, steps, converged, blocked, invalid, rotation_refusals, kills;
} stats;

static void fail_scenario(uint64_t seed, const char *what, const scenario *sc, const sq_plan *p) {
  printf("  scenario seed %llu: %s\n", (unsigned long long)seed, what);
  if(sc->m.violation[0])
    printf("    violation: %s\n", sc->m.violation);
  if(p) {
    printf("    last plan %s/%s: %s\n", sq_plan_verdict_name(p->verdict),
           sq_plan_reason_name(p->reason), p->message ? p->message : "");
    for(size_t i = 0; i < p->n_steps; i++)
      printf("      %zu. %s\n", i + 1, p->steps[i].description);
  }
  printf("    replay: SQLTDE_PLAN_SEED=%llu SQLTDE_PLAN_SCENARIOS=1\n", (unsigned long long)seed);
}

static int run_scenario(uint64_t seed, stats *st) {
  scenario *sc = calloc(1, sizeof *sc);
  ASSERT_NOT_NULL(sc);
  gen(sc, seed);
  rng r = {seed ^ 0x5eed5eedull};
  failure f = {0};
  int ok = 0, steps_applied = 0;
  sq_plan p = {0};
  st->scenarios++;
  for(int iter = 0; iter < MAX_PLANS; iter++) {
    sq_plan_db_input in;
    snapshot(sc, &f, &in);
    sq_plan_free(&p);
    ASSERT_OK(sq_plan_db(&in, &p, NULL));
    sq_plan_db_input_free(&in);
    st->plans++;
    if((p.n_steps > 0) != (p.verdict == SQ_PLAN_PROGRESSING)) {
      fail_scenario(seed, "steps present iff Progressing", sc, &p);
      goto out;
    }
    int in_sync = !sc->d.deleting && !sc->d.expect_invalid && matches(sc);
    if(p.verdict == SQ_PLAN_CONVERGED) {
      if(sc->d.deleting) {
        int gone = sc->d.delete_policy == SQ_DELETION_RETAIN || !sc->m.db[0].exists;
        for(int i = 0; i < sc->d.nsec; i++)
          gone &= sc->d.delete_policy == SQ_DELETION_RETAIN || !sc->m.db[sc->d.sec_srv[i]].exists;
        if(!gone || (sc->d.delete_policy == SQ_DELETION_RETAIN && steps_applied)) {
          fail_scenario(seed, "deletion converged wrongly", sc, &p);
          goto out;
        }
      } else if(!in_sync) {
        fail_scenario(seed, "Converged but the model does not match the spec", sc, &p);
        goto out;
      }
      st->converged++;
      ok = 1;
      goto out;
    }
    if(p.verdict == SQ_PLAN_PROGRESSING) {
      if(in_sync) {
        fail_scenario(seed, "a write was planned although the model matches the spec", sc, &p);
        goto out;
      }
      size_t k = 1 + (size_t)rint_(&r, 3);
      for(size_t j = 0; j < k && j < p.n_steps; j++) {
        const sq_plan_step *s = &p.steps[j];
        const char *code = azure_apply(&sc->m, s);
        steps_applied++;
        st->steps++;
        if(!code) {
          check_invariants(&sc->m, s);
          if(f.code[0] && srv_index(s->server_id) == f.srv && s->kind == SQ_STEP_SET_PROTECTOR)
            f.code[0] = '\0'; /* the executor clears the record on success */
        } else if(!strcmp(code, SQ_PLAN_ROTATION_BLOCKED_CODE)) {
          int same = !strcmp(f.code, code) && f.srv == srv_index(s->server_id);
          snprintf(f.code, sizeof f.code, "%s", code);
          f.srv = srv_index(s->server_id);
          f.attempts = same ? f.attempts + 1 : 1;
          f.at = sc->m.now;
          st->rotation_refusals++;
          break;
        } else {
          violate(&sc->m, "Azure refused %s on %s: %s", sq_plan_step_kind_name(s->kind),
                  fx_short(s->server_id), code);
        }
        if(sc->m.violation[0])
          break;
      }
      if(sc->m.violation[0]) {
        fail_scenario(seed, "rule broken", sc, &p);
        goto out;
      }
      if(steps_applied > MAX_STEPS_APPLIED) {
        fail_scenario(seed, "too many steps (not converging)", sc, &p);
        goto out;
      }
      if(chance(&r, 30)) { /* the operator restarts and forgets the failure */
        f.code[0] = '\0';
        st->kills++;
      }
      tick(&sc->m, &r, 5 + rint_(&r, 120));
      continue;
    }
    /* Waiting or Refused */
    if(sq_plan_reason_stalled(p.reason) || p.verdict == SQ_PLAN_REFUSED) {
      if(!(sc->allowed & (1u << p.reason))) {
        fail_scenario(seed, "blocked on a reason no injected fault explains", sc, &p);
        goto out;
      }
      if(p.reason == SQ_REASON_INVALID_SPEC && steps_applied) {
        fail_scenario(seed, "writes before an InvalidSpec refusal", sc, &p);
        goto out;
      }
      st->blocked += p.reason != SQ_REASON_INVALID_SPEC;
      st->invalid += p.reason == SQ_REASON_INVALID_SPEC;
      ok = 1;
      goto out;
    }
    if(p.retry_after_ms <= 0 || p.retry_after_ms > SQ_PLAN_ROTATION_BACKOFF_MAX_MS) {
      fail_scenario(seed, "a wait without a bounded retry", sc, &p);
      goto out;
    }
    tick(&sc->m, &r, (p.retry_after_ms + 999) / 1000 + rint_(&r, 30));
  }
  if(!sc->feasible) { /* a blocker may also stall a wait forever (e.g. busy) */
    fail_scenario(seed, "did not settle within the bound", sc, &p);
    goto out;
  }
  fail_scenario(seed, "did not converge within the bound", sc, &p);
out:
  sq_plan_free(&p);
  free(sc);
  return ok;
}

static long env_long(const char *name, long def) {
  const char *v = getenv(name);
  return v && *v ? strtol(v, NULL, 10) : def;
}

TEST(randomized_kill_and_replan) {
  static const uint64_t seeds[] = {1, 20240917, 0xC0FFEE, 987654321};
  long per_seed = env_long("SQLTDE_PLAN_SCENARIOS", 1500);
  long extra = env_long("SQLTDE_PLAN_SEED", 0);
  stats st = {0};
  int failed = 0;
  printf("  seeds 1, 20240917, 0xC0FFEE, 987654321 x %ld scenarios", per_seed);
  if(extra)
    printf(" + SQLTDE_PLAN_SEED=%ld", extra);
  printf("\n");
  for(size_t s = 0; s < sizeof seeds / sizeof seeds[0] + (extra ? 1 : 0); s++) {
    uint64_t base = s < sizeof seeds / sizeof seeds[0] ? seeds[s] : (uint64_t)extra;
    int replay = s >= sizeof seeds / sizeof seeds[0];
    for(long i = 0; i < per_seed; i++) {
      uint64_t seed = replay && per_seed == 1 ? base : base * 1000003ull + (uint64_t)i;
      if(!run_scenario(seed, &st) && ++failed >= 5)
        break;
    }
  }
  printf("  %ld scenarios, %ld plans, %ld steps applied; %ld converged, %ld blocked on an "
         "injected fault, %ld invalid specs; %ld rotations refused by Azure, %ld restarts that "
         "lost the failure record\n",
         st.scenarios, st.plans, st.steps, st.converged, st.blocked, st.invalid,
         st.rotation_refusals, st.kills);
  ASSERT_EQ(failed, 0);
  /* the generator really exercises the interesting paths */
  ASSERT_GT(st.converged, st.scenarios / 2);
  ASSERT_GT(st.rotation_refusals, 0);
  ASSERT_GT(st.blocked, 0);
}

TEST_MAIN()
