/* identity.c — the ManagedIdentity controller.
 *
 * For every VaultKey used with this identity (SqlDatabases in the namespace
 * whose spec.identity names it: their protector and extra keys; SqlServers
 * whose spec.identity names it: their CustomerManaged protector) and every
 * vault holding that key, it checks through ARM, as a user would, whether the
 * identity's principal holds get, wrapKey and unwrapKey:
 *   access-policy vaults  the vault resource's properties.accessPolicies
 *   RBAC vaults           role assignments of the principal listed at the
 *                         key's scope (atScope(): the key, the vault and
 *                         above); a role counts at the vault, above it, or at
 *                         this key
 * One vault GET per distinct vault (+ one role-assignment list per distinct
 * key in RBAC vaults), whatever the number of databases.
 *
 * Azure SQL sees permission changes about 10 minutes late (azure-api.md §5):
 * a grant first seen now (or whose role assignment / vault change is younger
 * than op->cfg.permission_delay_ms) is reported as pending — condition
 * PermissionPending, keyAccess[].state Pending — until the delay has passed.
 *
 * Checks run when the set of (key, vault) pairs changes, when the spec
 * changes, and every op->cfg.key_check_ms (every minute while something is
 * missing or unknown); other wake-ups (status writes, database changes that
 * do not touch keys) only recompute pending windows from status, with no
 * Azure call. A federatedClientId (cross-tenant key) cannot be checked from
 * here: the key's tenant sees the multi-tenant application, whose principal
 * there the operator does not know; such entries are Unverified. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "keyctl.h"
#include "sqltde/api/kinds.h"
#include "sqltde/jsonx.h"
#include "sqltde/kube/finalizer.h"
#include "sqltde/log.h"
#include "sqltde/operator/controllers.h"

static const char *LOG = "identity";

#define MI_MAX_ITEMS 128
#define MI_MAX_KEYS 64
#define MI_RECHECK_MS (60 * 1000)

typedef struct mi_item {
  char vault_key[254];
  char vault[254];                 /* KeyVault object name ("" when the VaultKey is missing) */
  char key_name[128];
  char key_uri[SQ_KV_KID_MAX];     /* https://origin/keys/NAME */
  char vault_id[512];              /* ARM id of the vault, "" if unresolved */
  int rbac;                        /* -1 unknown */
  unsigned perms;
  int64_t observed_granted;        /* what Azure says about when (0 unknown) */
  int64_t granted_at;
  sq_access_state state;
  char message[768];               /* why Unknown / Unverified */
  int retryable;                   /* Unknown because of a transient error */
} mi_item;

typedef struct mi_vault {
  char id[512];
  sq_code code;
  char error[384];
  sq_vault v; /* valid when code == SQ_OK */
} mi_vault;

typedef struct mi_pass {
  sq_op *op;
  const sq_reconcile_req *req;
  mi_item items[MI_MAX_ITEMS];
  size_t n;
  mi_vault vaults[MI_MAX_ITEMS];
  size_t nv;
  int truncated;
} mi_pass;

/* ---- what uses the identity ------------------------------------------------ */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static size_t add_name(const char **names, size_t n, const char *s) {
  if(!s || !*s || n >= MI_MAX_KEYS)
    return n;
  for(size_t i = 0; i < n; i++)
    if(!strcmp(names[i], s))
      return n;
  names[n] = s;
  return n + 1;
}

/* Fills p->items from the cache: one per (VaultKey, vault). The arrays dbs
 * and servers own the name strings for the duration of the call. */
static void gather(mi_pass *p, const json_t *dbs, const json_t *servers) {
  const char *me = p->req->name;
  const char *names[MI_MAX_KEYS];
  size_t nn = 0, i, j;
  json_t *o, *it;
  json_array_foreach(dbs, i, o) {
    const char *id = sq_json_str(o, "spec.identity.name");
    if(!id || strcmp(id, me))
      continue;
    nn = add_name(names, nn, sq_json_str(o, "spec.encryptionProtector.vaultKey.name"));
    json_array_foreach(sq_json_path(o, "spec.keys"), j, it) nn = add_name(names, nn, sq_json_str(it, "vaultKey"));
  }
  json_array_foreach(servers, i, o) {
    const char *id = sq_json_str(o, "spec.identity.name"), *t = sq_json_str(o, "spec.protector.type");
    if(id && !strcmp(id, me) && t && !strcmp(t, "CustomerManaged"))
      nn = add_name(names, nn, sq_json_str(o, "spec.protector.vaultKey.name"));
  }
  qsort(names, nn, sizeof names[0], cmp_str);
  for(i = 0; i < nn; i++) {
    json_t *vk = sq_op_get(p->op, &SQ_GVR_VAULTKEY, p->req->ns, names[i]);
    if(!vk) {
      if(p->n < MI_MAX_ITEMS) {
        mi_item *x = &p->items[p->n++];
        memset(x, 0, sizeof *x);
        snprintf(x->vault_key, sizeof x->vault_key, "%s", names[i]);
        x->state = SQ_ACC_UNKNOWN;
        x->rbac = -1;
        snprintf(x->message, sizeof x->message, "VaultKey %s does not exist in this namespace", names[i]);
      }
      continue;
    }
    const char *key = sq_json_str(vk, "spec.keyName");
    json_array_foreach(sq_json_path(vk, "spec.vaults"), j, it) {
      if(p->n >= MI_MAX_ITEMS) {
        p->truncated = 1;
        break;
      }
      mi_item *x = &p->items[p->n++];
      memset(x, 0, sizeof *x);
      x->rbac = -1;
      x->state = SQ_ACC_UNKNOWN;
      const char *vname = sq_json_str(it, "name");
      snprintf(x->vault_key, sizeof x->vault_key, "%s", names[i]);
      snprintf(x->vault, sizeof x->vault, "%s", vname ? vname : "");
      snprintf(x->key_name, sizeof x->key_name, "%s", key ? key : "");
      json_t *kv = sq_op_get(p->op, &SQ_GVR_KEYVAULT, p->req->ns, vname);
      char origin[SQ_AZ_URL_MAX], vn[64];
      if(!kv) {
        snprintf(x->message, sizeof x->message, "KeyVault %s does not exist in this namespace", vname ? vname : "");
      } else if(!key || sq_vault_uri_split(sq_json_str(kv, "spec.vaultUri"), origin, sizeof origin, vn, sizeof vn) ||
                sq_vault_arm_id(sq_json_str(kv, "spec.subscriptionId"), sq_json_str(kv, "spec.resourceGroup"), vn,
                                x->vault_id, sizeof x->vault_id)) {
        x->vault_id[0] = '\0';
        snprintf(x->message, sizeof x->message, "KeyVault %s has an invalid spec", vname ? vname : "");
      } else {
        snprintf(x->key_uri, sizeof x->key_uri, "%s/keys/%s", origin, key);
      }
      json_decref(kv);
    }
    json_decref(vk);
  }
}

/* ---- checking through ARM ------------------------------------------------------ */

/* Role assignments of one principal that apply at a key (listed at the key's
 * scope: at it or above). Bounded: a principal with more assignments than
 * this covering one key is not a real case. */
#define MI_MAX_ASSIGNMENTS 256

typedef struct ra_acc {
  sq_role_assignment *v;
  size_t n, cap;
  int overflow;
} ra_acc;

static int collect_assignment(void *ud, const sq_role_assignment *ra) {
  ra_acc *a = ud;
  if(a->n == a->cap) {
    size_t cap = a->cap ? a->cap * 2 : 8;
    sq_role_assignment *nv = cap <= MI_MAX_ASSIGNMENTS ? realloc(a->v, cap * sizeof *nv) : NULL;
    if(!nv) {
      a->overflow = 1;
      return 1;
    }
    a->v = nv;
    a->cap = cap;
  }
  a->v[a->n++] = *ra;
  return 0;
}

static mi_vault *vault_for(mi_pass *p, const char *id) {
  for(size_t i = 0; i < p->nv; i++)
    if(!strcasecmp(p->vaults[i].id, id))
      return &p->vaults[i];
  if(p->nv >= MI_MAX_ITEMS)
    return NULL;
  mi_vault *v = &p->vaults[p->nv++];
  memset(v, 0, sizeof *v);
  snprintf(v->id, sizeof v->id, "%s", id);
  sq_err err;
  sq_err_clear(&err);
  v->code = sq_vault_get(p->op->arm, id, &v->v, &err);
  if(v->code)
    sq_kc_errstr(&err, v->code, v->error, sizeof v->error);
  return v;
}

/* One ARM read per distinct vault; for RBAC vaults one role-assignment list
 * per (key, vault) at the key's scope, which returns what applies there:
 * assignments at the key, the vault, and above. */
static void check(mi_pass *p, const char *principal) {
  for(size_t i = 0; i < p->n; i++) {
    mi_item *x = &p->items[i];
    if(!x->vault_id[0])
      continue;
    mi_vault *v = vault_for(p, x->vault_id);
    if(!v) {
      snprintf(x->message, sizeof x->message, "too many vaults to check");
      continue;
    }
    if(v->code) {
      x->retryable = sq_code_retryable(v->code);
      snprintf(x->message, sizeof x->message, "reading the vault through ARM: %s%s", v->error,
               v->code == SQ_EFORBIDDEN ? " (the operator's identity needs Reader on the vault)" : "");
      continue;
    }
    x->rbac = v->v.rbac;
    if(x->rbac) {
      char scope[800];
      snprintf(scope, sizeof scope, "%s/keys/%s", x->vault_id, x->key_name);
      ra_acc acc = {0};
      sq_err err;
      sq_err_clear(&err);
      sq_code rc = sq_role_assignments_list(p->op->arm, scope, principal, collect_assignment, &acc, &err);
      if(!rc && acc.overflow)
        rc = sq_err_set(&err, SQ_ETOOBIG, "more than %d role assignments", MI_MAX_ASSIGNMENTS);
      if(rc) {
        char es[384];
        sq_kc_errstr(&err, rc, es, sizeof es);
        x->retryable = sq_code_retryable(rc);
        snprintf(x->message, sizeof x->message, "listing role assignments: %s%s", es,
                 rc == SQ_EFORBIDDEN ? " (the operator's identity needs Microsoft.Authorization/roleAssignments/"
                                       "read, e.g. Reader)" : "");
        free(acc.v);
        continue;
      }
      x->perms = sq_access_rbac_perms(acc.v, acc.n, principal, x->vault_id, x->key_name);
      free(acc.v);
    } else {
      x->perms = sq_access_from_policy(sq_vault_key_perms(&v->v, principal));
    }
    x->observed_granted = 0; /* neither model says since when: first seen counts */
    x->state = SQ_ACC_MISSING; /* refined by finish() */
    x->message[0] = '\0';
  }
}

/* ---- status ------------------------------------------------------------------ */

static const json_t *prev_item(const json_t *status, const mi_item *x) {
  size_t i;
  json_t *e;
  json_array_foreach(json_object_get(status, "keyAccess"), i, e) {
    const char *vk = sq_json_str(e, "vaultKey"), *v = sq_json_str(e, "vault");
    if(vk && !strcmp(vk, x->vault_key) && !strcmp(v ? v : "", x->vault))
      return e;
  }
  return NULL;
}

/* Whether the (key, vault) pairs differ from those status recorded. */
static int pairs_changed(const mi_pass *p, const json_t *status) {
  const json_t *arr = json_object_get(status, "keyAccess");
  if(json_array_size(arr) != p->n)
    return 1;
  for(size_t i = 0; i < p->n; i++) {
    const json_t *e = json_array_get(arr, i);
    const char *vk = sq_json_str(e, "vaultKey"), *v = sq_json_str(e, "vault"), *u = sq_json_str(e, "keyUri");
    if(!vk || strcmp(vk, p->items[i].vault_key) || strcmp(v ? v : "", p->items[i].vault) ||
       strcmp(u ? u : "", p->items[i].key_uri))
      return 1;
  }
  return 0;
}

/* Not checking this pass: take perms and model from status. */
static void restore_from_status(mi_pass *p, const json_t *status) {
  for(size_t i = 0; i < p->n; i++) {
    mi_item *x = &p->items[i];
    const json_t *e = prev_item(status, x);
    if(!e || !x->vault_id[0])
      continue;
    const char *st = sq_json_str(e, "state");
    if(st && (!strcmp(st, "Unknown") || !strcmp(st, "Unverified"))) {
      x->state = !strcmp(st, "Unknown") ? SQ_ACC_UNKNOWN : SQ_ACC_UNVERIFIED;
      const char *m = sq_json_str(e, "message");
      snprintf(x->message, sizeof x->message, "%s", m ? m : "");
      continue;
    }
    x->perms = (sq_json_bool(e, "get", 0) ? SQ_ACCESS_GET : 0) | (sq_json_bool(e, "wrapKey", 0) ? SQ_ACCESS_WRAP : 0) |
               (sq_json_bool(e, "unwrapKey", 0) ? SQ_ACCESS_UNWRAP : 0);
    const char *model = sq_json_str(e, "model");
    x->rbac = model ? !strcmp(model, "RBAC") : -1;
    x->state = SQ_ACC_MISSING;
    x->message[0] = '\0';
  }
}

/* Grant times and states; returns the earliest end of a pending window (wall
 * seconds) or 0. */
static int64_t finish(mi_pass *p, const json_t *status, int64_t now, const json_t *obj) {
  int64_t next = 0;
  for(size_t i = 0; i < p->n; i++) {
    mi_item *x = &p->items[i];
    if(x->state == SQ_ACC_UNKNOWN || x->state == SQ_ACC_UNVERIFIED)
      continue;
    const json_t *e = prev_item(status, x);
    const char *g = sq_json_str(e, "grantedAt");
    int64_t prev = g ? sq_parse_rfc3339(g) : 0;
    x->granted_at = sq_access_granted_at(x->perms, prev > 0 ? prev : 0, x->observed_granted, now);
    x->state = sq_access_state_of(x->perms, x->granted_at, now, p->op->cfg.permission_delay_ms);
    if(x->state == SQ_ACC_PENDING) {
      int64_t end = x->granted_at + p->op->cfg.permission_delay_ms / 1000;
      if(!next || end < next)
        next = end;
    }
    const char *ps = sq_json_str(e, "state");
    if(x->state == SQ_ACC_MISSING && ps && (!strcmp(ps, "Granted") || !strcmp(ps, "Pending"))) {
      char miss[64];
      sq_access_names(SQ_ACCESS_ALL & ~x->perms, miss, sizeof miss);
      sq_op_event(p->op, obj, 1, "PermissionLost", "CheckAccess",
                  "identity lost %s on key %s in vault %s; databases using it become inaccessible within "
                  "about 10 minutes of Azure SQL noticing", miss, x->key_name, x->vault);
    }
  }
  return next;
}

static json_t *item_json(const mi_item *x) {
  json_t *e = json_pack("{s:s,s:s,s:s}", "vaultKey", x->vault_key, "vault", x->vault, "state",
                        sq_access_state_name(x->state));
  if(!e)
    return NULL;
  if(x->key_uri[0])
    json_object_set_new(e, "keyUri", json_string(x->key_uri));
  if(x->state == SQ_ACC_UNKNOWN || x->state == SQ_ACC_UNVERIFIED) {
    if(x->message[0])
      json_object_set_new(e, "message", json_string(x->message));
    return e;
  }
  if(x->rbac >= 0)
    json_object_set_new(e, "model", json_string(x->rbac ? "RBAC" : "AccessPolicy"));
  json_object_set_new(e, "get", json_boolean(x->perms & SQ_ACCESS_GET));
  json_object_set_new(e, "wrapKey", json_boolean(x->perms & SQ_ACCESS_WRAP));
  json_object_set_new(e, "unwrapKey", json_boolean(x->perms & SQ_ACCESS_UNWRAP));
  json_t *missing = json_array();
  static const struct {
    unsigned bit;
    const char *name;
  } names[] = {{SQ_ACCESS_GET, "get"}, {SQ_ACCESS_WRAP, "wrapKey"}, {SQ_ACCESS_UNWRAP, "unwrapKey"}};
  for(size_t b = 0; b < 3 && missing; b++)
    if(!(x->perms & names[b].bit))
      json_array_append_new(missing, json_string(names[b].name));
  if(missing)
    json_object_set_new(e, "missing", missing);
  if(x->granted_at > 0) {
    char t[32];
    sq_rfc3339(x->granted_at, t, sizeof t);
    json_object_set_new(e, "grantedAt", json_string(t));
  }
  return e;
}

/* The kstatus verdict over all items. */
static void verdict_of(const mi_pass *p, const char *principal, int64_t now, int64_t pending_end, sq_verdict *v) {
  size_t miss = 0, unk = 0, pend = 0, unver = 0, retry = 0;
  char mm[768] = "", um[1100] = "", pm[256] = "";
  for(size_t i = 0; i < p->n; i++) {
    const mi_item *x = &p->items[i];
    char one[400];
    switch(x->state) {
    case SQ_ACC_MISSING: {
      char names[64];
      sq_access_names(SQ_ACCESS_ALL & ~x->perms, names, sizeof names);
      snprintf(one, sizeof one, "%s on key %s in vault %s (%s)", names, x->key_name, x->vault,
               x->rbac ? "RBAC: assign Key Vault Crypto Service Encryption User" : "access policy");
      if(!miss++)
        snprintf(mm, sizeof mm, "%s", one);
      else if(strlen(mm) + strlen(one) + 3 < sizeof mm)
        snprintf(mm + strlen(mm), sizeof mm - strlen(mm), "; %s", one);
      break;
    }
    case SQ_ACC_UNKNOWN:
      retry += x->retryable;
      if(!unk++)
        snprintf(um, sizeof um, "%s%s%s: %s", x->vault_key, x->vault[0] ? "/" : "", x->vault, x->message);
      break;
    case SQ_ACC_PENDING:
      if(!pend++)
        snprintf(pm, sizeof pm, "key %s in vault %s", x->key_name, x->vault);
      break;
    case SQ_ACC_UNVERIFIED:
      unver++;
      break;
    case SQ_ACC_GRANTED:
      break;
    }
  }
  if(!p->n)
    sq_verdict_set(v, SQ_KSTATE_READY, "NotInUse", 0,
                   "no SqlDatabase or SqlServer in this namespace uses this identity with a VaultKey");
  else if(miss)
    sq_verdict_set(v, SQ_KSTATE_STALLED, "MissingPermissions", MI_RECHECK_MS,
                   "principal %s lacks %s", principal, mm);
  else if(unk)
    sq_verdict_set(v, retry ? SQ_KSTATE_RETRYING : SQ_KSTATE_RECONCILING, "AccessUnknown", MI_RECHECK_MS,
                   "%zu key/vault pair(s) could not be checked; first: %s", unk, um);
  else if(pend)
    sq_verdict_set(v, SQ_KSTATE_RECONCILING, "PermissionPending", (pending_end - now) * 1000 + 1000,
                   "get, wrapKey and unwrapKey were granted recently on %zu key/vault pair(s) (first: %s); "
                   "Azure SQL sees permission changes about %lld minutes later",
                   pend, pm, (long long)(p->op->cfg.permission_delay_ms / 60000));
  else if(unver)
    sq_verdict_set(v, SQ_KSTATE_READY, "AccessUnverified", 0,
                   "spec.federatedClientId is set: access to keys in another tenant goes through the "
                   "multi-tenant application and cannot be verified from here");
  else
    sq_verdict_set(v, SQ_KSTATE_READY, "AccessVerified", 0, "get, wrapKey and unwrapKey held on %zu key/vault "
                   "pair(s)%s", p->n, p->truncated ? " (list truncated)" : "");
}

static sq_reconcile_result reconcile(void *ud, const sq_reconcile_req *req) {
  sq_op *op = ud;
  json_t *obj = sq_op_get(op, &SQ_GVR_MANAGEDIDENTITY, req->ns, req->name);
  if(!obj || sq_finalizer_deleting(obj)) { /* nothing in Azure to release */
    json_decref(obj);
    return sq_kc_after(0);
  }
  int64_t now = sq_kc_now(op);
  sq_status_draft d;
  if(sq_status_begin(&d, obj, now)) {
    json_decref(obj);
    return sq_kc_error(SQ_ENOMEM);
  }
  sq_invalid inv;
  if(sq_validate_managedidentity(obj, &inv)) {
    sq_kc_set_invalid(&d, inv.rule, inv.message);
    sq_kc_transition_events(op, &d);
    sq_kc_commit(op, &SQ_GVR_MANAGEDIDENTITY, &d, LOG);
    json_decref(obj);
    return sq_kc_terminal(SQ_EINVAL);
  }
  sq_kc_clear_condition(&d, KC_COND_INVALID_SPEC);
  mi_pass *p = calloc(1, sizeof *p);
  if(!p) {
    sq_status_abandon(&d);
    json_decref(obj);
    return sq_kc_error(SQ_ENOMEM);
  }
  p->op = op;
  p->req = req;
  const json_t *status = sq_json_path(obj, "status");
  const char *principal = sq_json_str(obj, "spec.principalId");
  const char *fed = sq_json_str(obj, "spec.federatedClientId");

  json_t *dbs = sq_kc_list(op, &SQ_GVR_SQLDATABASE, req->ns);
  json_t *servers = sq_kc_list(op, &SQ_GVR_SQLSERVER, req->ns);
  gather(p, dbs, servers);
  json_decref(dbs);
  json_decref(servers);

  /* check through ARM only when due */
  int64_t check_ms = op->cfg.key_check_ms > 0 ? op->cfg.key_check_ms : 10 * 60 * 1000;
  int unsettled = 0;
  size_t i;
  json_t *e;
  json_array_foreach(json_object_get(status, "keyAccess"), i, e) {
    const char *st = sq_json_str(e, "state");
    unsettled |= !st || !strcmp(st, "Missing") || !strcmp(st, "Unknown");
  }
  int64_t interval = unsettled && check_ms > MI_RECHECK_MS ? MI_RECHECK_MS : check_ms;
  const char *lc = sq_json_str(status, "lastCheckTime");
  int64_t last = lc ? sq_parse_rfc3339(lc) : -1;
  int same_gen = sq_json_int(status, "observedGeneration", -1) == d.generation;
  int due = !same_gen || pairs_changed(p, status) || last <= 0 || now < last || now >= last + interval / 1000;
  if(due) {
    if(fed && *fed) {
      for(i = 0; i < p->n; i++)
        if(p->items[i].vault_id[0]) {
          p->items[i].state = SQ_ACC_UNVERIFIED;
          snprintf(p->items[i].message, sizeof p->items[i].message,
                   "cross-tenant key (spec.federatedClientId): not verifiable through ARM from here");
        }
    } else {
      check(p, principal);
    }
    char t[32];
    sq_rfc3339(now, t, sizeof t);
    json_object_set_new(d.status, "lastCheckTime", json_string(t));
    last = now;
  } else {
    restore_from_status(p, status);
  }
  int64_t pending_end = finish(p, status, now, obj);

  json_t *arr = json_array();
  for(i = 0; i < p->n && arr; i++) {
    json_t *x = item_json(&p->items[i]);
    if(x)
      json_array_append_new(arr, x);
  }
  if(arr)
    json_object_set_new(d.status, "keyAccess", arr);
  sq_verdict v;
  verdict_of(p, principal, now, pending_end, &v);
  sq_kc_apply_verdict(&d, &v);
  sq_kc_flag_condition(&d, KC_COND_PERMISSION_PENDING, !strcmp(v.reason, "PermissionPending"), "PermissionPending",
                       v.message);
  sq_kc_transition_events(op, &d);
  sq_code wrc = sq_kc_commit(op, &SQ_GVR_MANAGEDIDENTITY, &d, LOG);

  /* next look: the next check, or the end of a pending window if sooner */
  int recheck = v.state == SQ_KSTATE_STALLED || !strcmp(v.reason, "AccessUnknown");
  int64_t next_interval = recheck && check_ms > MI_RECHECK_MS ? MI_RECHECK_MS : check_ms;
  int64_t after = (last + next_interval / 1000 - now) * 1000;
  if(after <= 0)
    after = 1000;
  if(pending_end && (pending_end - now) * 1000 + 1000 < after)
    after = (pending_end - now) * 1000 + 1000;
  sq_reconcile_result res = sq_kc_after(after);
  if(v.state == SQ_KSTATE_RETRYING)
    res = sq_kc_error(SQ_ETRANSPORT);
  else if(wrc)
    res = sq_kc_error(wrc);
  for(i = 0; i < p->nv; i++)
    sq_vault_free(&p->vaults[i].v);
  free(p);
  json_decref(obj);
  return res;
}

/* ---- watches ---------------------------------------------------------------- */

/* A SqlDatabase / SqlServer changed: its identity may use other keys now. */
static void map_user(void *ud, const json_t *o, sq_map_out *out) {
  (void)ud;
  sq_map_emit(out, sq_json_str(o, "metadata.namespace"), sq_json_str(o, "spec.identity.name"));
}

/* A VaultKey changed (its vaults may have): the identities that check it. */
static void map_vaultkey(void *ud, const json_t *vk, sq_map_out *out) {
  sq_op *op = ud;
  const char *ns = sq_json_str(vk, "metadata.namespace"), *name = sq_json_str(vk, "metadata.name");
  if(!name)
    return;
  json_t *mis = sq_kc_list(op, &SQ_GVR_MANAGEDIDENTITY, ns);
  size_t i, j;
  json_t *mi, *e;
  json_array_foreach(mis, i, mi) {
    json_array_foreach(sq_json_path(mi, "status.keyAccess"), j, e) {
      const char *k = sq_json_str(e, "vaultKey");
      if(k && !strcmp(k, name)) {
        sq_map_emit(out, ns, sq_json_str(mi, "metadata.name"));
        break;
      }
    }
  }
  json_decref(mis);
}

sq_code sq_identity_controller_register(sq_op *op, int workers, sq_err *err) {
  sq_controller *c;
  sq_code rc = sq_manager_add_controller(op->mgr, "managedidentity", &SQ_GVR_MANAGEDIDENTITY, workers, reconcile,
                                         op, &c, err);
  if(!rc)
    rc = sq_controller_watch(c, op->mgr, &SQ_GVR_SQLDATABASE, map_user, op, err);
  if(!rc)
    rc = sq_controller_watch(c, op->mgr, &SQ_GVR_SQLSERVER, map_user, op, err);
  if(!rc)
    rc = sq_controller_watch(c, op->mgr, &SQ_GVR_VAULTKEY, map_vaultkey, op, err);
  if(!rc) /* only so the cache exists for sq_op_get; KeyVault changes are caught by the periodic check */
    rc = sq_manager_informer(op->mgr, &SQ_GVR_KEYVAULT, &(sq_informer *){NULL}, err);
  return rc;
}

sq_code sq_key_controllers_register(sq_op *op, int workers, sq_err *err) {
  sq_code rc = sq_keyvault_controller_register(op, workers, err);
  if(!rc)
    rc = sq_vaultkey_controller_register(op, workers, err);
  if(!rc)
    rc = sq_identity_controller_register(op, workers, err);
  return rc;
}
