/* fuzz_plan.c — libFuzzer target: random bytes decoded into random planner
 * snapshots (desired + observed + facts + last failure, mostly drawn from a
 * small universe of servers, identities and keys so plans get deep, with
 * occasional raw byte strings and extreme times). Asserts the planners never
 * crash and never emit a step that breaks an invariant:
 *   - steps present iff Progressing; bounded; every step described;
 *   - replaying the steps on a copy of the observed keys: a SetProtector on
 *     the primary only when every existing secondary already holds the key,
 *     no RemoveKeys of a protector, an observed current/backup key, or the
 *     primary's protector on a secondary;
 *   - SetIdentity names one identity and removes every other;
 *   - the server planner emits server steps only;
 *   - status.plan and every step's ARM request render without crashing. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqltde/plan/plan.h"
#include "sqltde/plan/plan_format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The plan under test, printed when an invariant breaks (harness-only
 * state: libFuzzer runs one input at a time). */
static const sq_plan *g_plan;
static void dump_plan(void) {
  if(!g_plan)
    return;
  fprintf(stderr, "plan %s/%s: %s\n", sq_plan_verdict_name(g_plan->verdict),
          sq_plan_reason_name(g_plan->reason), g_plan->message ? g_plan->message : "");
  for(size_t i = 0; i < g_plan->n_steps; i++)
    fprintf(stderr, "  %zu. %s %s\n", i + 1, sq_plan_step_kind_name(g_plan->steps[i].kind),
            g_plan->steps[i].description);
}

#define CHECK(c)                                                                                   \
  do {                                                                                             \
    if(!(c)) {                                                                                     \
      fprintf(stderr, "fuzz_plan: invariant broken at %s:%d: %s\n", __FILE__, __LINE__, #c);       \
      dump_plan();                                                                                 \
      abort();                                                                                     \
    }                                                                                              \
  } while(0)

typedef struct rd {
  const uint8_t *d;
  size_t n, pos;
} rd;

static unsigned u8(rd *r) {
  return r->pos < r->n ? r->d[r->pos++] : 0;
}
static int bit(rd *r) {
  return u8(r) & 1;
}
static int64_t i64(rd *r) {
  uint64_t v = 0;
  for(int i = 0; i < 8; i++)
    v = v << 8 | u8(r);
  return (int64_t)v;
}

#define P "/subscriptions/s/resourceGroups/g/providers/"
static const char *const servers[] = {P "Microsoft.Sql/servers/a", P "Microsoft.Sql/servers/b",
                                      P "Microsoft.Sql/servers/c", P "Microsoft.Sql/servers/d",
                                      P "Microsoft.Sql/servers/e", P "Microsoft.Sql/servers/f"};
static const char *const umis[] = {P "Microsoft.ManagedIdentity/userAssignedIdentities/u1",
                                   P "Microsoft.ManagedIdentity/userAssignedIdentities/u2",
                                   P "Microsoft.ManagedIdentity/userAssignedIdentities/u3"};
static const char *const keys[] = {
    "https://v.vault.azure.net/keys/a/00000000000000000000000000000001",
    "https://v.vault.azure.net/keys/a/00000000000000000000000000000002",
    "https://v.vault.azure.net/keys/b/00000000000000000000000000000001",
    "https://w.vault.azure.net/keys/c/00000000000000000000000000000001",
    "https://w.vault.azure.net/keys/c",
    "https://v.vault.azure.net/keys/d/00000000000000000000000000000001",
};
#define N(a) (sizeof(a) / sizeof((a)[0]))

/* A string from the universe, NULL, or (rarely) raw bytes. Stored in a
 * per-run pool so it outlives the snapshot. */
static char pool[64][96];
static size_t npool;
static const char *pick(rd *r, const char *const *u, size_t n) {
  unsigned c = u8(r);
  if(c < 16)
    return NULL;
  if(c < 24 && npool < N(pool)) {
    char *s = pool[npool++];
    size_t len = u8(r) % (sizeof pool[0] - 1);
    for(size_t i = 0; i < len; i++)
      s[i] = (char)(u8(r) | 1);
    s[len] = '\0';
    return s;
  }
  return u[c % n];
}

static void add_keys(rd *r, sq_plan_list *l) {
  unsigned m = u8(r);
  for(size_t k = 0; k < N(keys); k++)
    if(m & (1u << k))
      sq_plan_list_add(l, keys[k], NULL);
}

static void gen_observed(rd *r, sq_plan_observed_db *o, const char *server) {
  o->known = u8(r) % 8 != 0;
  o->exists = u8(r) % 5 != 0;
  sq_plan_set_str(&o->server_id, server, NULL);
  o->server_encryption = (sq_plan_server_enc)(u8(r) % 3);
  static const char *const st[] = {"Online",       "Online",  "Online", "Creating",
                                   "Inaccessible", "Scaling", ""};
  const char *s = st[u8(r) % N(st)];
  sq_plan_set_str(&o->status_text, s, NULL);
  o->status = sq_plan_db_status_parse(s);
  o->role = (sq_plan_role)(u8(r) % 4 == 0);
  unsigned ids = u8(r);
  for(size_t i = 0; i < N(umis); i++)
    if(ids & (1u << i))
      sq_plan_list_add(&o->identities, umis[i], NULL);
  sq_plan_set_str(&o->protector_uri, pick(r, keys, N(keys)), NULL);
  o->auto_rotation = bit(r);
  add_keys(r, &o->keys);
  if(o->protector_uri && bit(r))
    sq_plan_list_add(&o->keys, o->protector_uri, NULL);
  add_keys(r, &o->current_keys);
  add_keys(r, &o->backup_keys);
  o->keys_complete = u8(r) % 4 != 0;
}

static void gen_facts(rd *r, sq_plan_facts *f, int64_t now) {
  for(size_t k = 0; k < N(keys); k++) {
    if(u8(r) % 8 == 0)
      continue; /* not observed */
    sq_plan_key_fact kf = {.uri = (char *)keys[k]};
    unsigned b = u8(r);
    kf.exists = (b & 7) != 0;
    kf.enabled = (b & 0x18) != 0;
    kf.exp_s = (b & 0x20) ? now + (int64_t)(int8_t)u8(r) * 3600 : 0;
    kf.nbf_s = (b & 0x40) ? now + (int64_t)(int8_t)u8(r) * 60 : 0;
    kf.created_s = (b & 0x80) ? i64(r) : now - (int64_t)u8(r) * 3600;
    sq_plan_facts_add_key(f, &kf, NULL);
    for(size_t u = 0; u < N(umis); u++) {
      unsigned a = u8(r);
      sq_plan_access ac = {.key_uri = (char *)keys[k],
                           .identity_id = (char *)umis[u],
                           .state = (sq_plan_access_state)(a % 3),
                           .missing = (a >> 2) & 7,
                           .granted_s = (a & 0x20) ? now - (int64_t)u8(r) * 10 : 0};
      sq_plan_facts_add_access(f, &ac, NULL);
    }
  }
}

/* ---- replay of a DB plan on the observed keys ---------------------------- */

typedef struct sim {
  const char *server;
  int exists;
  const char *protector;
  sq_plan_list keys; /* copies */
  sq_plan_list ids;
  const sq_plan_observed_db *obs;
} sim;

static void sim_load(sim *t, const char *server, const sq_plan_observed_db *o, int exists) {
  t->server = server;
  t->exists = exists;
  /* an empty encryptionProtector means server level, as for the planner */
  t->protector = exists && o->protector_uri && *o->protector_uri ? o->protector_uri : NULL;
  t->obs = o;
  for(size_t k = 0; exists && k < o->keys.n; k++)
    sq_plan_list_add(&t->keys, o->keys.v[k], NULL);
  for(size_t k = 0; exists && k < o->identities.n; k++)
    sq_plan_list_add(&t->ids, o->identities.v[k], NULL);
}

static sim *sim_find(sim *s, size_t n, const char *server) {
  for(size_t i = 0; i < n; i++)
    if(sq_plan_uri_eq(s[i].server, server))
      return &s[i];
  return NULL;
}

static void check_db_plan(const sq_plan_db_input *in, const sq_plan *p) {
  sim s[1 + SQ_PLAN_SECONDARY_SLOTS];
  size_t n = 0;
  memset(s, 0, sizeof s);
  sim_load(&s[n++], in->desired.server_id, &in->primary, in->primary.exists);
  for(size_t i = 0; i < in->n_secondaries; i++) {
    const sq_plan_observed_db *o = &in->secondaries[i];
    if(!o->server_id || sim_find(s, n, o->server_id))
      continue;
    sim_load(&s[n++], o->server_id, o, o->known && o->exists);
  }
  for(size_t i = 0; i < p->n_steps; i++) {
    const sq_plan_step *st = &p->steps[i];
    CHECK(st->server_id && st->database && st->description[0]);
    CHECK(st->target != SQ_TARGET_SERVER);
    CHECK(st->kind < SQ_STEP_SET_SERVER_IDENTITY);
    sim *t = sim_find(s, n, st->server_id);
    CHECK(t != NULL);
    CHECK((t == &s[0]) == (st->target == SQ_TARGET_PRIMARY));
    switch(st->kind) {
    case SQ_STEP_CREATE_DATABASE:
      t->exists = 1;
      t->protector = st->protector_uri;
      sq_plan_list_free(&t->ids);
      if(st->identity_id)
        sq_plan_list_add(&t->ids, st->identity_id, NULL);
      sq_plan_list_free(&t->keys);
      for(size_t k = 0; k < st->keys.n; k++)
        sq_plan_list_add(&t->keys, st->keys.v[k], NULL);
      if(st->create_mode == SQ_CREATE_SECONDARY && s[0].protector)
        CHECK(st->protector_uri && sq_plan_uri_eq(st->protector_uri, s[0].protector) &&
              sq_plan_list_has(&st->keys, s[0].protector));
      break;
    case SQ_STEP_SET_IDENTITY:
      /* exactly one identity afterwards: every other one is removed */
      CHECK(st->identity_id != NULL);
      for(size_t k = 0; k < t->ids.n; k++)
        CHECK(sq_plan_uri_eq(t->ids.v[k], st->identity_id) ||
              sq_plan_list_has(&st->remove_identities, t->ids.v[k]));
      sq_plan_list_free(&t->ids);
      sq_plan_list_add(&t->ids, st->identity_id, NULL);
      break;
    case SQ_STEP_ADD_KEYS:
      for(size_t k = 0; k < st->keys.n; k++)
        sq_plan_list_add(&t->keys, st->keys.v[k], NULL);
      break;
    case SQ_STEP_SET_PROTECTOR:
      CHECK(st->protector_uri != NULL);
      if(t == &s[0])
        for(size_t j = 1; j < n; j++)
          CHECK(!s[j].exists || sq_plan_list_has(&s[j].keys, st->protector_uri));
      sq_plan_list_add(&t->keys, st->protector_uri, NULL);
      t->protector = st->protector_uri;
      break;
    case SQ_STEP_REMOVE_KEYS:
      for(size_t k = 0; k < st->remove_keys.n; k++) {
        const char *key = st->remove_keys.v[k];
        CHECK(!sq_plan_uri_eq(key, t->protector));
        CHECK(!sq_plan_uri_eq(key, s[0].protector));
        CHECK(!t->obs || !t->obs->keys_complete ||
              (!sq_plan_list_has(&t->obs->current_keys, key) &&
               !sq_plan_list_has(&t->obs->backup_keys, key)));
        CHECK(!sq_plan_list_has(&in->primary.current_keys, key) &&
              !sq_plan_list_has(&in->primary.backup_keys, key));
        CHECK(t->obs && t->obs->keys_complete && in->primary.keys_complete);
        /* drop it from the replayed list */
        sq_plan_list tmp = {0};
        for(size_t x = 0; x < t->keys.n; x++)
          if(!sq_plan_uri_eq(t->keys.v[x], key))
            sq_plan_list_add(&tmp, t->keys.v[x], NULL);
        sq_plan_list_free(&t->keys);
        t->keys = tmp;
      }
      break;
    case SQ_STEP_REVERT:
      t->protector = NULL;
      break;
    case SQ_STEP_DELETE_DATABASE:
      /* secondaries go first: a primary is dropped only without replicas */
      t->exists = 0;
      if(t == &s[0])
        for(size_t j = 1; j < n; j++)
          CHECK(!s[j].exists);
      break;
    default:
      break;
    }
  }
  for(size_t i = 0; i < n; i++) {
    sq_plan_list_free(&s[i].keys);
    sq_plan_list_free(&s[i].ids);
  }
}

static void check_common(const sq_plan *p) {
  CHECK((p->n_steps > 0) == (p->verdict == SQ_PLAN_PROGRESSING));
  CHECK(p->n_steps <= SQ_PLAN_MAX_STEPS);
  CHECK(p->n_findings <= SQ_PLAN_MAX_FINDINGS);
  CHECK(p->message != NULL);
  CHECK(p->retry_after_ms >= 0);
  CHECK(strcmp(sq_plan_reason_name(p->reason), "Unknown"));
  (void)sq_plan_kstatus_of(p);
  json_t *j = sq_plan_status_json(p, NULL, SQ_STEP_RUNNING);
  CHECK(j != NULL);
  json_t *j2 = sq_plan_status_json(p, j, SQ_STEP_PENDING);
  CHECK(j2 != NULL);
  json_decref(j);
  json_decref(j2);
  for(size_t i = 0; i < p->n_steps; i++) {
    sq_plan_request req;
    sq_code rc = sq_plan_step_request(&p->steps[i], &req, NULL);
    CHECK(rc == SQ_OK || rc == SQ_EINVAL || rc == SQ_ENOMEM);
    sq_plan_request_free(&req);
  }
}

static void fuzz_db(rd *r) {
  sq_plan_db_input in;
  memset(&in, 0, sizeof in);
  in.now = bit(r) ? i64(r) : 1800000000 + (int64_t)u8(r) * 600;
  sq_plan_desired_db *d = &in.desired;
  d->invalid = u8(r) % 32 == 0;
  if(u8(r) % 32 == 0)
    sq_plan_set_str(&d->unresolved, "VaultKey x not found", NULL);
  sq_plan_set_str(&d->server_id, u8(r) % 16 ? servers[0] : pick(r, servers, N(servers)), NULL);
  sq_plan_set_str(&d->name, u8(r) % 16 ? "db" : pick(r, servers, N(servers)), NULL);
  sq_plan_set_str(&d->location, "westeurope", NULL);
  sq_plan_set_str(&d->identity_id, pick(r, umis, N(umis)), NULL);
  sq_plan_set_str(&d->federated_client_id, bit(r) ? "11111111-2222-3333-4444-555555555555" : NULL,
                  NULL);
  d->encryption = (sq_plan_db_enc)(u8(r) % 3);
  sq_plan_set_str(&d->protector_uri, pick(r, keys, N(keys)), NULL);
  d->protector_pinned = u8(r) % 4 == 0;
  add_keys(r, &d->keys);
  d->auto_rotation = bit(r);
  d->n_secondaries = u8(r) % 7;
  for(size_t i = 0; i < d->n_secondaries; i++) {
    sq_plan_set_str(&d->secondaries[i].server_id, pick(r, servers, N(servers)), NULL);
    sq_plan_set_str(&d->secondaries[i].identity_id, bit(r) ? pick(r, umis, N(umis)) : NULL, NULL);
    sq_plan_set_str(&d->secondaries[i].location, "northeurope", NULL);
  }
  d->deletion_policy = (sq_plan_deletion)bit(r);
  d->being_deleted = u8(r) % 8 == 0;
  gen_observed(r, &in.primary, d->server_id);
  /* observed replicas on distinct servers (Azure shows one per server) */
  unsigned present = u8(r);
  for(size_t i = 0; i < N(servers); i++)
    if(present & (1u << i))
      gen_observed(r, &in.secondaries[in.n_secondaries++], servers[i]);
  gen_facts(r, &in.facts, in.now);
  if(bit(r)) {
    sq_plan_set_str(&in.last_failure.code,
                    bit(r) ? SQ_PLAN_ROTATION_BLOCKED_CODE : "EncryptionProtectorChangeInProgress",
                    NULL);
    sq_plan_set_str(&in.last_failure.server_id, pick(r, servers, N(servers)), NULL);
    in.last_failure.at_s = bit(r) ? i64(r) : in.now - u8(r) * 10;
    in.last_failure.attempts = u8(r);
  }
  sq_plan p = {0};
  if(sq_plan_db(&in, &p, NULL) == SQ_OK) {
    g_plan = &p;
    check_common(&p);
    check_db_plan(&in, &p);
    if(p.verdict == SQ_PLAN_WAITING)
      CHECK(p.retry_after_ms > 0 && p.retry_after_ms <= 24LL * 3600 * 1000);
    sq_plan_free(&p);
  }
  g_plan = NULL;
  sq_plan_db_input_free(&in);
}

static void fuzz_server(rd *r) {
  sq_plan_server_input in;
  memset(&in, 0, sizeof in);
  in.now = 1800000000 + (int64_t)u8(r) * 600;
  sq_plan_desired_server *d = &in.desired;
  d->invalid = u8(r) % 32 == 0;
  sq_plan_set_str(&d->server_id, pick(r, servers, N(servers)), NULL);
  sq_plan_set_str(&d->identity_id, pick(r, umis, N(umis)), NULL);
  d->encryption = (sq_plan_server_enc)(u8(r) % 3);
  sq_plan_set_str(&d->key_uri, pick(r, keys, N(keys)), NULL);
  d->auto_rotation = bit(r);
  d->being_deleted = u8(r) % 8 == 0;
  sq_plan_observed_server *o = &in.observed;
  o->known = u8(r) % 8 != 0;
  o->exists = u8(r) % 8 != 0;
  o->system_assigned = bit(r);
  unsigned ids = u8(r);
  for(size_t i = 0; i < N(umis); i++)
    if(ids & (1u << i))
      sq_plan_list_add(&o->identities, umis[i], NULL);
  sq_plan_set_str(&o->primary_identity_id, pick(r, umis, N(umis)), NULL);
  o->encryption = (sq_plan_server_enc)(u8(r) % 3);
  sq_plan_set_str(&o->protector_uri, pick(r, keys, N(keys)), NULL);
  o->auto_rotation = bit(r);
  add_keys(r, &o->server_keys);
  gen_facts(r, &in.facts, in.now);
  sq_plan p = {0};
  if(sq_plan_server(&in, &p, NULL) == SQ_OK) {
    g_plan = &p;
    check_common(&p);
    for(size_t i = 0; i < p.n_steps; i++) {
      CHECK(p.steps[i].target == SQ_TARGET_SERVER);
      CHECK(p.steps[i].kind >= SQ_STEP_SET_SERVER_IDENTITY);
      CHECK(p.steps[i].database == NULL);
    }
    sq_plan_free(&p);
  }
  g_plan = NULL;
  sq_plan_server_input_free(&in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  rd r = {data, size, 0};
  npool = 0;
  if(u8(&r) & 1)
    fuzz_server(&r);
  else
    fuzz_db(&r);
  return 0;
}
