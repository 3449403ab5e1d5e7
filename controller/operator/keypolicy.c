/* keypolicy.c — pure decisions of the KeyVault, VaultKey and ManagedIdentity
 * controllers; see include/sqltde/operator/keypolicy.h. */
#include "sqltde/operator/keypolicy.h"

#include <ctype.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sqltde/clock.h"
#include "sqltde/jsonx.h"

/* ---- shared ------------------------------------------------------------- */

void sq_verdict_set(sq_verdict *v, sq_kstate st, const char *reason, int64_t requeue_ms,
                    const char *fmt, ...) {
  v->state = st;
  snprintf(v->reason, sizeof v->reason, "%s", reason);
  v->requeue_ms = requeue_ms;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(v->message, sizeof v->message, fmt, ap);
  va_end(ap);
}

/* strlcpy-style copy that always terminates. */
static void cpy(char *dst, size_t n, const char *src) { snprintf(dst, n, "%s", src ? src : ""); }

sq_code sq_vault_uri_split(const char *uri, char *origin, size_t origin_len, char *name,
                           size_t name_len) {
  if(!uri || strncasecmp(uri, "https://", 8))
    return SQ_EINVAL;
  const char *host = uri + 8;
  size_t hn = strcspn(host, ":/?#");
  const char *p = host + hn;
  size_t port_len = 0;
  if(*p == ':') {
    port_len = 1 + strspn(p + 1, "0123456789");
    if(port_len == 1)
      return SQ_EINVAL;
  }
  const char *after = p + port_len;
  if(*after == '/')
    after++;
  const char *dot = memchr(host, '.', hn);
  if(*after || !hn || !dot || dot == host || dot + 1 == host + hn)
    return SQ_EINVAL;
  /* ":443" is the https default: drop it so equal vaults compare equal */
  if(port_len == 4 && !strncmp(p, ":443", 4))
    port_len = 0;
  if(origin) {
    if(8 + hn + port_len + 1 > origin_len)
      return SQ_ETOOBIG;
    snprintf(origin, origin_len, "https://%.*s%.*s", (int)hn, host, (int)port_len, p);
    for(char *c = origin; *c; c++)
      *c = (char)tolower((unsigned char)*c);
  }
  if(name) {
    size_t nn = (size_t)(dot - host);
    if(nn + 1 > name_len)
      return SQ_ETOOBIG;
    snprintf(name, name_len, "%.*s", (int)nn, host);
    for(char *c = name; *c; c++)
      *c = (char)tolower((unsigned char)*c);
  }
  return SQ_OK;
}

sq_code sq_vault_arm_id(const char *sub, const char *rg, const char *name, char *out, size_t outlen) {
  int n = snprintf(out, outlen, "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.KeyVault/vaults/%s",
                   sub ? sub : "", rg ? rg : "", name ? name : "");
  return n < 0 || (size_t)n >= outlen ? SQ_ETOOBIG : SQ_OK;
}

int sq_region_eq(const char *a, const char *b) {
  if(!a || !b)
    return 0;
  for(;;) {
    while(*a == ' ')
      a++;
    while(*b == ' ')
      b++;
    if(!*a || !*b)
      return !*a && !*b;
    if(tolower((unsigned char)*a) != tolower((unsigned char)*b))
      return 0;
    a++;
    b++;
  }
}

/* ---- KeyVault ------------------------------------------------------------ */

void sq_kvault_obs_from_vault(const sq_vault *v, sq_kvault_obs *o) {
  o->soft_delete = v->soft_delete;
  o->purge_protection = v->purge_protection;
  o->rbac = v->rbac;
  cpy(o->arm_vault_uri, sizeof o->arm_vault_uri, v->vault_uri);
  cpy(o->arm_location, sizeof o->arm_location, v->location);
  cpy(o->arm_tenant, sizeof o->arm_tenant, v->tenant_id);
}

int sq_kvault_dp_reachable(sq_code c) {
  switch(c) {
  case SQ_OK:
  case SQ_ENOTFOUND:
  case SQ_EFORBIDDEN:
  case SQ_EUNAUTH:
  case SQ_EBADREQ:
  case SQ_ECONFLICT:
  case SQ_EHTTP:
  case SQ_ETHROTTLED:
    return 1;
  default:
    return 0;
  }
}

void sq_kvault_assess(const char *spec_uri, const char *spec_location, const char *spec_tenant,
                      const sq_kvault_obs *o, sq_verdict *out) {
  memset(out, 0, sizeof *out);
  if(o->arm_code == SQ_ENOTFOUND) {
    sq_verdict_set(out, SQ_KSTATE_STALLED, "VaultNotFound", 0,
                   "ARM has no such vault: check spec.subscriptionId, spec.resourceGroup and the vault "
                   "name in spec.vaultUri (%s)",
                   o->arm_error);
    return;
  }
  if(o->arm_code == SQ_EFORBIDDEN || o->arm_code == SQ_EUNAUTH) {
    sq_verdict_set(out, SQ_KSTATE_STALLED, "ArmAccessDenied", 0,
                   "the operator cannot read the vault resource through ARM; grant its identity Reader "
                   "on the vault (%s)",
                   o->arm_error);
    return;
  }
  if(o->arm_code) {
    if(sq_code_retryable(o->arm_code))
      sq_verdict_set(out, SQ_KSTATE_RETRYING, "ArmUnavailable", 0, "reading the vault through ARM failed: %s",
                     o->arm_error);
    else
      sq_verdict_set(out, SQ_KSTATE_STALLED, "ArmError", 0, "reading the vault through ARM failed: %s",
                     o->arm_error);
    return;
  }
  char a[SQ_AZ_URL_MAX], b[SQ_AZ_URL_MAX];
  if(o->arm_vault_uri[0] && (sq_vault_uri_split(spec_uri, a, sizeof a, NULL, 0) ||
                             sq_vault_uri_split(o->arm_vault_uri, b, sizeof b, NULL, 0) || strcmp(a, b))) {
    sq_verdict_set(out, SQ_KSTATE_STALLED, "VaultUriMismatch", 0,
                   "the vault resource's vaultUri is %s but spec.vaultUri is %s", o->arm_vault_uri,
                   spec_uri ? spec_uri : "");
    return;
  }
  if(o->arm_tenant[0] && spec_tenant && strcasecmp(o->arm_tenant, spec_tenant)) {
    sq_verdict_set(out, SQ_KSTATE_STALLED, "TenantMismatch", 0,
                   "the vault belongs to tenant %s but spec.tenantId is %s", o->arm_tenant, spec_tenant);
    return;
  }
  if(o->arm_location[0] && spec_location && !sq_region_eq(o->arm_location, spec_location)) {
    sq_verdict_set(out, SQ_KSTATE_STALLED, "LocationMismatch", 0,
                   "the vault is in %s but spec.location is %s", o->arm_location, spec_location);
    return;
  }
  if(!o->soft_delete && !o->purge_protection) {
    sq_verdict_set(out, SQ_KSTATE_STALLED, "SoftDeleteAndPurgeProtectionDisabled", 0,
                   "soft delete and purge protection are off; Azure SQL refuses such vaults for TDE "
                   "protectors (enable both; they cannot be turned off again)");
    return;
  }
  if(!o->soft_delete) {
    sq_verdict_set(out, SQ_KSTATE_STALLED, "SoftDeleteDisabled", 0,
                   "soft delete is off; Azure SQL refuses such vaults for TDE protectors");
    return;
  }
  if(!o->purge_protection) {
    sq_verdict_set(out, SQ_KSTATE_STALLED, "PurgeProtectionDisabled", 0,
                   "purge protection is off; Azure SQL refuses such vaults for TDE protectors (enable it: "
                   "it cannot be turned off again, which is the point)");
    return;
  }
  if(o->probed && !sq_kvault_dp_reachable(o->dp_code)) {
    sq_verdict_set(out, SQ_KSTATE_RETRYING, "Unreachable", 0, "the vault's data plane did not answer: %s",
                   o->dp_error);
    return;
  }
  sq_verdict_set(out, SQ_KSTATE_READY, "VaultReady", 0,
                 "reachable; soft delete and purge protection on; permissions by %s",
                 o->rbac ? "Azure RBAC" : "access policies");
}

/* ---- VaultKey ------------------------------------------------------------ */

const char *sq_vk_action_name(sq_vk_action a) {
  switch(a) {
  case SQ_VK_ACT_NONE:
    return "None";
  case SQ_VK_ACT_CREATE:
    return "Create";
  case SQ_VK_ACT_IMPORT:
    return "Import";
  case SQ_VK_ACT_ROTATE:
    return "Rotate";
  case SQ_VK_ACT_RESTORE:
    return "Restore";
  }
  return "?";
}

static int version_cmp(const void *pa, const void *pb) {
  const sq_vk_version *a = pa, *b = pb;
  if(a->created != b->created)
    return a->created > b->created ? -1 : 1;
  return -strcmp(a->version, b->version);
}

void sq_vk_sort_versions(sq_vk_vault *v) {
  if(v->n > 1)
    qsort(v->v, v->n, sizeof v->v[0], version_cmp);
}

int sq_vk_find_thumbprint(const sq_vk_vault *v, const char *tp) {
  if(!tp || !*tp)
    return -1;
  for(size_t i = 0; i < v->n; i++)
    if(!strcasecmp(v->v[i].thumbprint, tp))
      return (int)i;
  return -1;
}

static const char *vault_state_word(sq_vault_state s) {
  switch(s) {
  case SQ_VAULT_MISSING:
    return "not found";
  case SQ_VAULT_WAITING:
    return "not ready yet";
  case SQ_VAULT_STALLED:
    return "not usable";
  case SQ_VAULT_READY:
    return "ready";
  }
  return "?";
}

/* The verdict for a vault that blocks everything. */
static void vault_blocks(sq_vk_decision *out, const sq_vk_vault *v, const char *role) {
  if(v->state == SQ_VAULT_MISSING)
    sq_verdict_set(&out->verdict, SQ_KSTATE_RECONCILING, "VaultNotFound", SQ_VK_WAIT_MS,
                   "KeyVault %s (%s) does not exist in this namespace", v->name, role);
  else if(v->state == SQ_VAULT_STALLED)
    sq_verdict_set(&out->verdict, SQ_KSTATE_STALLED, "VaultNotReady", 0,
                   "KeyVault %s (%s) is not usable: %s", v->name, role,
                   v->state_reason[0] ? v->state_reason : "see its conditions");
  else
    sq_verdict_set(&out->verdict, SQ_KSTATE_RECONCILING, "WaitingForVault", SQ_VK_WAIT_MS,
                   "KeyVault %s (%s) is not ready yet%s%s", v->name, role, v->state_reason[0] ? ": " : "",
                   v->state_reason);
}

static void set_action(sq_vk_decision *out, sq_vk_action a, int vault, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void set_action(sq_vk_decision *out, sq_vk_action a, int vault, const char *fmt, ...) {
  out->action = a;
  out->vault = vault;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(out->why, sizeof out->why, fmt, ap);
  va_end(ap);
  sq_verdict_set(&out->verdict, SQ_KSTATE_RECONCILING, sq_vk_action_name(a), 0, "%s", out->why);
}

/* min over positive candidates */
static void due_at(int64_t *next, int64_t t) {
  if(t > 0 && (*next == 0 || t < *next))
    *next = t;
}

void sq_vk_decide(const sq_vk_input *in, sq_vk_decision *out) {
  memset(out, 0, sizeof *out);
  out->current = -1;
  out->vault = -1;
  out->replicated = -1;
  cpy(out->trigger_to_record, sizeof out->trigger_to_record, in->last_trigger);
  if(in->n_vaults < 1 || in->n_vaults > SQ_VK_MAX_VAULTS) {
    sq_verdict_set(&out->verdict, SQ_KSTATE_STALLED, "InvalidSpec", 0, "spec.vaults: list 1 to %d KeyVaults",
                   SQ_VK_MAX_VAULTS);
    return;
  }
  const sq_vk_vault *p = &in->vaults[0];
  if(p->state != SQ_VAULT_READY) {
    vault_blocks(out, p, "the primary");
    return;
  }
  if(!p->observed) {
    sq_verdict_set(&out->verdict, SQ_KSTATE_RETRYING, "NotObserved", 0, "the primary vault %s was not read",
                   p->name);
    return;
  }
  if(!p->key_exists || p->n == 0) {
    switch(in->source) {
    case SQ_VK_SRC_GENERATE:
      set_action(out, SQ_VK_ACT_CREATE, 0, "generating %s-%d key %s in %s", in->kty[0] ? in->kty : "RSA",
                 in->size, in->key_name, p->name);
      return;
    case SQ_VK_SRC_IMPORT:
      set_action(out, SQ_VK_ACT_IMPORT, 0, "importing the Secret's key material as key %s into %s",
                 in->key_name, p->name);
      return;
    case SQ_VK_SRC_EXISTING:
      sq_verdict_set(&out->verdict, SQ_KSTATE_RECONCILING, "KeyNotFound", SQ_VK_WAIT_MS,
                     "waiting for key %s to exist in vault %s (source existing adopts, never creates)",
                     in->key_name, p->name);
      return;
    }
  }
  if(in->source == SQ_VK_SRC_IMPORT && in->pem_thumbprint[0] && sq_vk_find_thumbprint(p, in->pem_thumbprint) < 0) {
    set_action(out, SQ_VK_ACT_IMPORT, 0, "the Secret holds new key material (thumbprint %s): importing it as a "
               "new version of %s in %s", in->pem_thumbprint, in->key_name, p->name);
    return;
  }

  out->current = 0;
  const sq_vk_version *c = &p->v[0];
  int64_t next = 0; /* wall seconds when something time-based is next due */

  /* rotation: only for a single vault (sq_validate_vaultkey refuses the rest) */
  if(in->trigger[0]) {
    if(!strcmp(in->trigger, in->last_trigger) || !strcmp(c->trigger, in->trigger) || !in->adopted) {
      /* fired already (status, or the tag survived a crash before the status
       * write), or the trigger came with the key itself: nothing to rotate */
      cpy(out->trigger_to_record, sizeof out->trigger_to_record, in->trigger);
    } else if(in->n_vaults == 1) {
      cpy(out->rotate_tag, sizeof out->rotate_tag, in->trigger);
      set_action(out, SQ_VK_ACT_ROTATE, 0, "rotation.trigger changed to \"%s\": creating a new version of %s in %s",
                 in->trigger, in->key_name, p->name);
      return;
    }
  }
  if(in->rotation_every_ms > 0 && in->n_vaults == 1 && c->created > 0) {
    int64_t due = c->created + in->rotation_every_ms / 1000;
    if(in->now >= due) {
      set_action(out, SQ_VK_ACT_ROTATE, 0, "version %s is older than rotation.every: creating a new version of %s "
                 "in %s", c->version, in->key_name, p->name);
      return;
    }
    due_at(&next, due);
  }

  /* replication */
  const char *tp = c->thumbprint;
  out->holds[0] = 1;
  int all = 1, stalled = 0;
  char blocker[64] = "", msg[768] = "";
  for(size_t i = 1; i < in->n_vaults; i++) {
    const sq_vk_vault *v = &in->vaults[i];
    const char *why = NULL;
    char detail[512] = "";
    if(v->state != SQ_VAULT_READY) {
      why = v->state == SQ_VAULT_STALLED ? "VaultNotReady" : "WaitingForVault";
      snprintf(detail, sizeof detail, "KeyVault %s is %s%s%s", v->name, vault_state_word(v->state),
               v->state_reason[0] ? ": " : "", v->state_reason);
      stalled |= v->state == SQ_VAULT_STALLED;
    } else if(!v->observed) {
      why = "NotObserved";
      snprintf(detail, sizeof detail, "KeyVault %s was not read", v->name);
    } else if(tp[0] && sq_vk_find_thumbprint(v, tp) >= 0) {
      out->holds[i] = 1;
      continue;
    } else if(!tp[0]) {
      why = "ThumbprintUnknown";
      snprintf(detail, sizeof detail, "the current version's thumbprint is unknown");
    } else if(v->refused_thumbprint[0] && !strcasecmp(v->refused_thumbprint, tp)) {
      why = v->refused_reason[0] ? v->refused_reason : "ReplicationRefused";
      snprintf(detail, sizeof detail,
               "Key Vault refused to take thumbprint %s into %s (%s); this is not retried until the spec "
               "changes%s",
               tp, v->name, why, in->replication == SQ_VK_REPL_BACKUP_RESTORE ?
               "; backup/restore only works within one subscription and geography: use replication: "
               "import with an offline-made PEM (source import)" : "");
      stalled = 1;
    } else if(in->replication == SQ_VK_REPL_BACKUP_RESTORE) {
      if(v->key_exists) {
        why = "RestoreConflict";
        snprintf(detail, sizeof detail,
                 "%s already holds a key named %s without the current material (thumbprint %s); Key Vault "
                 "restore refuses an existing name. Use replication: import, or free the name in %s by hand",
                 v->name, in->key_name, tp, v->name);
        stalled = 1;
      } else if(strcasecmp(v->subscription, p->subscription)) {
        why = "BackupRestoreAcrossSubscriptions";
        snprintf(detail, sizeof detail,
                 "%s is in subscription %s but the primary %s is in %s; Key Vault restores backups only "
                 "within one subscription and geography: use replication: import with source import",
                 v->name, v->subscription, p->name, p->subscription);
        stalled = 1;
      } else {
        if(out->action == SQ_VK_ACT_NONE)
          set_action(out, SQ_VK_ACT_RESTORE, (int)i, "restoring a backup of %s from %s into %s", in->key_name,
                     p->name, v->name);
        why = "Replicating";
        snprintf(detail, sizeof detail, "restoring %s into %s", in->key_name, v->name);
      }
    } else {
      if(!in->pem_thumbprint[0] || strcasecmp(in->pem_thumbprint, tp)) {
        why = "PemMismatch";
        snprintf(detail, sizeof detail,
                 "the current version in %s (thumbprint %s) is not the Secret's key material (thumbprint %s); "
                 "import replication can only copy the Secret's PEM",
                 p->name, tp, in->pem_thumbprint[0] ? in->pem_thumbprint : "none");
        stalled = 1;
      } else {
        if(out->action == SQ_VK_ACT_NONE)
          set_action(out, SQ_VK_ACT_IMPORT, (int)i, "importing the Secret's key material as %s into %s",
                     in->key_name, v->name);
        why = "Replicating";
        snprintf(detail, sizeof detail, "importing %s into %s", in->key_name, v->name);
      }
    }
    all = 0;
    if(!blocker[0]) {
      cpy(blocker, sizeof blocker, why);
      cpy(msg, sizeof msg, detail);
    } else if(strlen(msg) + strlen(detail) + 3 < sizeof msg) {
      strcat(msg, "; ");
      strcat(msg, detail);
    }
  }
  if(in->n_vaults == 1) {
    out->replicated = 1;
    cpy(out->repl_reason, sizeof out->repl_reason, "SingleVault");
    snprintf(out->repl_message, sizeof out->repl_message, "the key lives in one vault (%s)", p->name);
  } else if(all) {
    out->replicated = 1;
    cpy(out->repl_reason, sizeof out->repl_reason, "Replicated");
    snprintf(out->repl_message, sizeof out->repl_message, "all %zu vaults hold thumbprint %s", in->n_vaults, tp);
  } else {
    out->replicated = 0;
    cpy(out->repl_reason, sizeof out->repl_reason, blocker);
    cpy(out->repl_message, sizeof out->repl_message, msg);
  }

  /* health of the current version (Azure SQL needs enabled, nbf past, exp future) */
  int64_t warn = in->expiry_warning_ms / 1000;
  out->disabled = c->enabled == 0;
  out->expired = c->exp > 0 && c->exp <= in->now;
  out->not_yet_valid = c->nbf > in->now;
  out->expiring = !out->expired && c->exp > 0 && c->exp - in->now <= warn;
  if(out->not_yet_valid)
    due_at(&next, c->nbf);
  if(c->exp > in->now) {
    due_at(&next, c->exp);
    if(c->exp - warn > in->now)
      due_at(&next, c->exp - warn);
  }
  int64_t requeue = next ? (next - in->now) * 1000 : 0;
  if(requeue < 0)
    requeue = 1000;

  if(out->action != SQ_VK_ACT_NONE)
    return;
  char when[32] = "";
  if(c->exp > 0)
    sq_rfc3339(c->exp, when, sizeof when);
  if(out->disabled)
    sq_verdict_set(&out->verdict, SQ_KSTATE_STALLED, "KeyDisabled", requeue,
                   "the current version %s of %s in %s is disabled; Azure SQL cannot use it: enable it or "
                   "rotate", c->version, in->key_name, p->name);
  else if(out->expired)
    sq_verdict_set(&out->verdict, SQ_KSTATE_STALLED, "KeyExpired", requeue,
                   "the current version %s of %s in %s expired at %s; Azure SQL cannot use it: extend exp "
                   "or rotate", c->version, in->key_name, p->name, when);
  else if(out->not_yet_valid)
    sq_verdict_set(&out->verdict, SQ_KSTATE_RECONCILING, "KeyNotYetValid", requeue,
                   "the current version %s of %s only becomes valid (nbf) later", c->version, in->key_name);
  else if(out->replicated == 0)
    sq_verdict_set(&out->verdict, stalled ? SQ_KSTATE_STALLED : SQ_KSTATE_RECONCILING, out->repl_reason,
                   stalled ? requeue : SQ_VK_WAIT_MS, "not replicated: %s", out->repl_message);
  else
    sq_verdict_set(&out->verdict, SQ_KSTATE_READY, "KeyReady", requeue,
                   "version %s (thumbprint %s) held by %zu vault(s)%s%s", c->version, tp, in->n_vaults,
                   out->expiring ? "; expires " : "", out->expiring ? when : "");
}

static json_t *str_or_null(const char *s) { return s && *s ? json_string(s) : json_null(); }

static int add_location(json_t *entry, const char *vault, const char *version) {
  json_t *vaults = json_object_get(entry, "vaults");
  json_t *locs = json_object_get(entry, "locations");
  size_t i;
  json_t *it;
  int have = 0;
  json_array_foreach(vaults, i, it) if(!strcmp(json_string_value(it), vault)) have = 1;
  if(!have && json_array_append_new(vaults, json_string(vault)))
    return -1;
  return json_array_append_new(locs, json_pack("{s:s,s:s}", "vault", vault, "version", version));
}

static json_t *version_entry(const sq_vk_vault *v, const sq_vk_version *ver, const char *key_name) {
  char uri[SQ_KV_KID_MAX], t[32];
  snprintf(uri, sizeof uri, "%s/keys/%s/%s", v->origin, key_name, ver->version);
  json_t *e = json_pack("{s:s,s:s,s:o,s:b,s:[],s:[]}", "version", ver->version, "keyUri", uri, "thumbprint",
                        str_or_null(ver->thumbprint), "enabled", ver->enabled != 0, "vaults", "locations");
  if(!e)
    return NULL;
  if(ver->created > 0) {
    sq_rfc3339(ver->created, t, sizeof t);
    json_object_set_new(e, "created", json_string(t));
  }
  if(ver->exp > 0) {
    sq_rfc3339(ver->exp, t, sizeof t);
    json_object_set_new(e, "expires", json_string(t));
  }
  return e;
}

/* Adds every location of material tp (all vaults) to e; marks them used. */
static int add_all_locations(json_t *e, const sq_vk_input *in, const char *tp, unsigned char used[][SQ_VK_MAX_VERSIONS]) {
  for(size_t i = 0; i < in->n_vaults; i++)
    for(size_t j = 0; j < in->vaults[i].n; j++)
      if(!used[i][j] && in->vaults[i].v[j].thumbprint[0] && !strcasecmp(in->vaults[i].v[j].thumbprint, tp)) {
        used[i][j] = 1;
        if(add_location(e, in->vaults[i].name, in->vaults[i].v[j].version))
          return -1;
      }
  return 0;
}

json_t *sq_vk_versions_json(const sq_vk_input *in, const char *key_name) {
  json_t *arr = json_array();
  unsigned char(*used)[SQ_VK_MAX_VERSIONS] = calloc(SQ_VK_MAX_VAULTS, sizeof *used);
  if(!arr || !used)
    goto fail;
  for(size_t i = 0; i < in->n_vaults && i < SQ_VK_MAX_VAULTS; i++) {
    const sq_vk_vault *v = &in->vaults[i];
    for(size_t j = 0; j < v->n && json_array_size(arr) < SQ_VK_MAX_VERSIONS; j++) {
      if(used[i][j])
        continue;
      json_t *e = version_entry(v, &v->v[j], key_name);
      if(!e || json_array_append_new(arr, e))
        goto fail;
      if(v->v[j].thumbprint[0]) {
        if(add_all_locations(e, in, v->v[j].thumbprint, used))
          goto fail;
      } else {
        used[i][j] = 1;
        if(add_location(e, v->name, v->v[j].version))
          goto fail;
      }
    }
  }
  free(used);
  return arr;
fail:
  free(used);
  json_decref(arr);
  return NULL;
}

int sq_vk_cached_thumbprint(const json_t *status, const char *vault, const char *version,
                            char out[SQ_THUMBPRINT_HEX_LEN + 1]) {
  const json_t *vers = json_object_get(status, "versions");
  size_t i, j;
  json_t *e, *l;
  json_array_foreach(vers, i, e) {
    const char *tp = sq_json_str(e, "thumbprint");
    if(!tp || strlen(tp) != SQ_THUMBPRINT_HEX_LEN)
      continue;
    json_array_foreach(json_object_get(e, "locations"), j, l) {
      const char *lv = sq_json_str(l, "vault"), *lver = sq_json_str(l, "version");
      if(lv && lver && !strcmp(lv, vault) && !strcmp(lver, version)) {
        memcpy(out, tp, SQ_THUMBPRINT_HEX_LEN + 1);
        return 1;
      }
    }
  }
  return 0;
}

void sq_vk_vault_from_status(const json_t *status, sq_vk_vault *v) {
  const json_t *vers = json_object_get(status, "versions");
  size_t i, j;
  json_t *e, *l;
  v->n = 0;
  json_array_foreach(vers, i, e) {
    json_array_foreach(json_object_get(e, "locations"), j, l) {
      const char *lv = sq_json_str(l, "vault"), *lver = sq_json_str(l, "version");
      if(!lv || !lver || strcmp(lv, v->name) || v->n >= SQ_VK_MAX_VERSIONS)
        continue;
      sq_vk_version *x = &v->v[v->n++];
      memset(x, 0, sizeof *x);
      cpy(x->version, sizeof x->version, lver);
      const char *tp = sq_json_str(e, "thumbprint");
      if(tp && strlen(tp) == SQ_THUMBPRINT_HEX_LEN)
        memcpy(x->thumbprint, tp, SQ_THUMBPRINT_HEX_LEN + 1);
      x->enabled = sq_json_bool(e, "enabled", 1);
      const char *t = sq_json_str(e, "created");
      x->created = t ? sq_parse_rfc3339(t) : 0;
      t = sq_json_str(e, "expires");
      x->exp = t ? sq_parse_rfc3339(t) : 0;
      if(x->created < 0)
        x->created = 0;
      if(x->exp < 0)
        x->exp = 0;
    }
  }
  v->key_exists = v->n > 0;
  sq_vk_sort_versions(v);
}

static int uri_has_prefix(const char *uri, const char *prefix) {
  size_t n = strlen(prefix);
  return uri && n && !strncasecmp(uri, prefix, n) && (uri[n] == '\0' || uri[n] == '/');
}

static int uri_matches(const char *uri, const char *const *prefixes, size_t np) {
  for(size_t i = 0; i < np; i++)
    if(prefixes[i] && uri_has_prefix(uri, prefixes[i]))
      return 1;
  return 0;
}

static int uris_in(const json_t *arr, const char *field, const char *const *prefixes, size_t np) {
  size_t i;
  json_t *it;
  json_array_foreach(arr, i, it) if(uri_matches(sq_json_str(it, field), prefixes, np)) return 1;
  return 0;
}

/* Appends "Kind name (a, b)" to out, cutting with ", ..." when full. */
static void add_referrer(char *out, size_t outlen, size_t *count, const char *kind, const char *name,
                         const char *why) {
  (*count)++;
  size_t len = strlen(out);
  if(len && !strcmp(out + len - (len >= 5 ? 5 : len), ", ..."))
    return;
  char item[512];
  snprintf(item, sizeof item, "%s%s %s (%s)", len ? ", " : "", kind, name ? name : "?", why);
  if(len + strlen(item) + 6 < outlen)
    strcat(out, item);
  else if(len + 6 <= outlen)
    strcat(out, ", ...");
}

size_t sq_vk_referrers(const json_t *dbs, const json_t *servers, const char *vk_name,
                       const char *const *key_prefixes, size_t n_prefixes, char *out, size_t outlen) {
  size_t count = 0, i, j;
  json_t *o, *it;
  if(outlen)
    out[0] = '\0';
  json_array_foreach(dbs, i, o) {
    char why[256] = "";
#define WHY(s) snprintf(why + strlen(why), sizeof why - strlen(why), "%s%s", why[0] ? ", " : "", s)
    const char *pk = sq_json_str(o, "spec.encryptionProtector.vaultKey.name");
    if(pk && !strcmp(pk, vk_name))
      WHY("spec.encryptionProtector");
    json_array_foreach(sq_json_path(o, "spec.keys"), j, it) {
      const char *k = sq_json_str(it, "vaultKey");
      if(!k)
        k = sq_json_str(it, "vaultKey.name");
      if(k && !strcmp(k, vk_name)) {
        WHY("spec.keys");
        break;
      }
    }
    if(uri_matches(sq_json_str(o, "status.protectorKeyUri"), key_prefixes, n_prefixes))
      WHY("status.protectorKeyUri");
    if(uris_in(sq_json_path(o, "status.currentKeys"), "keyUri", key_prefixes, n_prefixes))
      WHY("status.currentKeys");
    if(uris_in(sq_json_path(o, "status.keyHistory"), "keyUri", key_prefixes, n_prefixes))
      WHY("status.keyHistory: retained backups");
    if(why[0])
      add_referrer(out, outlen, &count, "SqlDatabase", sq_json_str(o, "metadata.name"), why);
  }
  json_array_foreach(servers, i, o) {
    char why[256] = "";
    const char *pk = sq_json_str(o, "spec.protector.vaultKey.name");
    if(pk && !strcmp(pk, vk_name))
      WHY("spec.protector");
    if(uri_matches(sq_json_str(o, "status.protectorKeyUri"), key_prefixes, n_prefixes))
      WHY("status.protectorKeyUri");
    if(why[0])
      add_referrer(out, outlen, &count, "SqlServer", sq_json_str(o, "metadata.name"), why);
#undef WHY
  }
  return count;
}

int sq_vk_vault_change_matters(const json_t *vk, const char *vault_name, int vault_ready) {
  size_t i;
  json_t *it;
  int listed = 0;
  json_array_foreach(sq_json_path(vk, "spec.vaults"), i, it) {
    const char *n = sq_json_str(it, "name");
    if(n && !strcmp(n, vault_name))
      listed = 1;
  }
  if(!listed)
    return 0;
  /* an invalid spec waits for a spec change, whatever the vaults do */
  json_array_foreach(sq_json_path(vk, "status.conditions"), i, it) {
    const char *t = sq_json_str(it, "type"), *st = sq_json_str(it, "status");
    if(t && st && !strcmp(t, "InvalidSpec") && !strcmp(st, "True"))
      return 0;
  }
  json_array_foreach(sq_json_path(vk, "status.vaults"), i, it) {
    const char *n = sq_json_str(it, "name");
    if(n && !strcmp(n, vault_name))
      return sq_json_bool(it, "ready", -1) != (vault_ready ? 1 : 0);
  }
  return 1;
}

/* OpenSSL would prompt on the terminal for an encrypted PEM without a
 * callback: refuse instead. */
static int no_password(char *buf, int size, int rwflag, void *u) {
  (void)buf;
  (void)size;
  (void)rwflag;
  (void)u;
  return -1;
}

sq_code sq_vk_pem_inspect(const char *pem, size_t len, int *bits,
                          char thumbprint[SQ_THUMBPRINT_HEX_LEN + 1], sq_err *err) {
  if(!pem || !len || len > (size_t)1 << 20)
    return sq_err_set(err, SQ_EPARSE, "no PEM private key");
  BIO *bio = BIO_new_mem_buf(pem, (int)len);
  if(!bio)
    return sq_err_set(err, SQ_ENOMEM, "out of memory");
  EVP_PKEY *pk = PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL);
  BIO_free(bio);
  ERR_clear_error(); /* OpenSSL's error queue may name what it read: drop it */
  if(!pk)
    return sq_err_set(err, SQ_EPARSE,
                      "not an unencrypted PEM private key (PKCS#1 \"RSA PRIVATE KEY\" or PKCS#8 \"PRIVATE KEY\")");
  sq_code rc = SQ_OK;
  if(EVP_PKEY_get_base_id(pk) != EVP_PKEY_RSA) {
    rc = sq_err_set(err, SQ_EPARSE, "the PEM holds a %s key; TDE protectors are RSA keys",
                    EVP_PKEY_get0_type_name(pk) ? EVP_PKEY_get0_type_name(pk) : "non-RSA");
    goto out;
  }
  *bits = EVP_PKEY_get_bits(pk);
  rc = sq_thumbprint_pkey(pk, thumbprint, err);
out:
  EVP_PKEY_free(pk); /* RSA private components are cleared on free */
  return rc;
}

/* ---- ManagedIdentity ------------------------------------------------------ */

unsigned sq_access_role_perms(const char *id) {
  if(!id)
    return 0;
  const char *slash = strrchr(id, '/');
  const char *g = slash ? slash + 1 : id;
  if(!strcasecmp(g, SQ_ROLE_KV_CRYPTO_SERVICE_ENCRYPTION_USER) || !strcasecmp(g, SQ_ROLE_KV_CRYPTO_OFFICER) ||
     !strcasecmp(g, SQ_ROLE_KV_ADMINISTRATOR) || !strcasecmp(g, SQ_ROLE_KV_CRYPTO_USER))
    return SQ_ACCESS_ALL;
  if(!strcasecmp(g, SQ_ROLE_KV_READER)) /* keys/read: metadata, i.e. "get", no crypto */
    return SQ_ACCESS_GET;
  return 0;
}

unsigned sq_access_from_policy(unsigned kp) {
  return ((kp & SQ_KP_GET) ? SQ_ACCESS_GET : 0) | ((kp & SQ_KP_WRAP) ? SQ_ACCESS_WRAP : 0) |
         ((kp & SQ_KP_UNWRAP) ? SQ_ACCESS_UNWRAP : 0);
}

/* Is an assignment at scope relevant for the key? At the vault, above it
 * (ancestor path, management group, root), or at this key itself. */
static int scope_covers(const char *scope, const char *vault_scope, const char *key_name) {
  if(!scope || !vault_scope)
    return 0;
  size_t sn = strlen(scope), vn = strlen(vault_scope);
  while(sn > 1 && scope[sn - 1] == '/')
    sn--;
  if(sn == 1 && scope[0] == '/')
    return 1;
  if(!strncasecmp(scope, "/providers/Microsoft.Management/managementGroups/", 49))
    return 1;
  if(sn <= vn && !strncasecmp(scope, vault_scope, sn) && (vault_scope[sn] == '\0' || vault_scope[sn] == '/'))
    return 1;
  if(sn > vn && !strncasecmp(scope, vault_scope, vn) && scope[vn] == '/' && key_name) {
    const char *rest = scope + vn;
    return !strncasecmp(rest, "/keys/", 6) && strlen(key_name) == sn - vn - 6 &&
           !strncasecmp(rest + 6, key_name, sn - vn - 6);
  }
  return 0;
}

unsigned sq_access_rbac_perms(const sq_role_assignment *ra, size_t n, const char *principal_id,
                              const char *vault_scope, const char *key_name) {
  unsigned bits = 0;
  for(size_t i = 0; principal_id && ra && i < n; i++)
    if(!strcasecmp(ra[i].principal_id, principal_id) && scope_covers(ra[i].scope, vault_scope, key_name))
      bits |= sq_access_role_perms(ra[i].role_definition_id[0] ? ra[i].role_definition_id : ra[i].role_guid);
  return bits;
}

void sq_access_names(unsigned bits, char *out, size_t outlen) {
  if(!outlen)
    return;
  out[0] = '\0';
  static const char *names[3] = {"get", "wrapKey", "unwrapKey"};
  for(int b = 0; b < 3; b++)
    if(bits & (1u << b))
      snprintf(out + strlen(out), outlen - strlen(out), "%s%s", out[0] ? ", " : "", names[b]);
}

const char *sq_access_state_name(sq_access_state s) {
  switch(s) {
  case SQ_ACC_GRANTED:
    return "Granted";
  case SQ_ACC_PENDING:
    return "Pending";
  case SQ_ACC_MISSING:
    return "Missing";
  case SQ_ACC_UNKNOWN:
    return "Unknown";
  case SQ_ACC_UNVERIFIED:
    return "Unverified";
  }
  return "Unknown";
}

int64_t sq_access_granted_at(unsigned perms, int64_t prev_granted_s, int64_t observed_granted_s, int64_t now) {
  if((perms & SQ_ACCESS_ALL) != SQ_ACCESS_ALL)
    return 0;
  if(prev_granted_s > 0)
    return prev_granted_s;
  if(observed_granted_s > 0)
    return observed_granted_s < now ? observed_granted_s : now;
  return now;
}

sq_access_state sq_access_state_of(unsigned perms, int64_t granted_s, int64_t now, int64_t delay_ms) {
  if((perms & SQ_ACCESS_ALL) != SQ_ACCESS_ALL)
    return SQ_ACC_MISSING;
  if(granted_s <= 0 || now < granted_s + delay_ms / 1000)
    return SQ_ACC_PENDING;
  return SQ_ACC_GRANTED;
}
