/* vaultkey.c — the VaultKey controller.
 *
 * One reconcile: validate (InvalidSpec: no Azure call), resolve the KeyVault
 * objects, read the Secret for source import (GET only: the operator's RBAC
 * has no list/watch on Secrets), then loop a few times over
 *     observe (list versions in every Ready vault; thumbprints of versions not
 *              already remembered in status.versions)
 *     decide  (sq_vk_decide, pure)
 *     execute one write (create / import / rotate / backup+restore)
 * until nothing is left to do, and write status once: versions with
 * thumbprints and the vaults holding each, the current version, Replicated,
 * ExpiringSoon / Expired / Disabled, and the kstatus trio. Observation is
 * reads only, so a converged key costs one list call per vault per resync and
 * no write.
 *
 * Deletion (finalizer sqltde.io/finalizer): the finalizer stays while any
 * SqlDatabase or SqlServer in the namespace references the key (spec, or a
 * key URI of it in their status: retained backups need it), with a
 * DeletionBlocked condition naming them. When nothing does, the finalizer is
 * removed and the key is LEFT in Key Vault: the operator never deletes key
 * material — a backup kept for years may need a version nobody remembers, and
 * purge protection would only let a delete become a 90-day time bomb. Deleting
 * keys is a human decision. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyctl.h"
#include "sqltde/api/kinds.h"
#include "sqltde/buf.h"
#include "sqltde/codec.h"
#include "sqltde/jsonx.h"
#include "sqltde/kube/finalizer.h"
#include "sqltde/log.h"
#include "sqltde/operator/controllers.h"

static const char *LOG = "vaultkey";

#define VK_PEM_MAX (64 * 1024)
/* Secrets are not watched (get-only RBAC): problems with one are looked at
 * again on this period. */
#define VK_SECRET_RECHECK_MS (5 * 60 * 1000)
/* Thumbprint fetches (one GET per version) per reconcile; the rest on the
 * next pass. Remembered thumbprints are never fetched again. */
#define VK_FETCH_MAX 64
#define VK_DELETE_RECHECK_MS (60 * 1000)
#define VK_DEFAULT_EXPIRY_WARNING_MS (720LL * 3600 * 1000)
#define VK_OWNER_TAG "managed-by"
#define VK_OWNER_VALUE "sqltde-operator"

typedef struct vk_pass {
  sq_op *op;
  const sq_reconcile_req *req;
  const json_t *status;                       /* status as read (borrowed) */
  sq_vk_input in;
  char uris[SQ_VK_MAX_VAULTS][SQ_AZ_URL_MAX];  /* spec.vaultUri of each vault (KV client input) */
  char refused_msg[SQ_VK_MAX_VAULTS][512];
  sq_buf pem;                                 /* import: the Secret's PEM; wiped at the end */
  sq_reconcile_result res;
} vk_pass;

/* ---- gathering ------------------------------------------------------------ */

static void load_spec(vk_pass *p, const json_t *obj) {
  sq_vk_input *in = &p->in;
  const json_t *spec = sq_json_path(obj, "spec");
  in->now = sq_kc_now(p->op);
  snprintf(in->key_name, sizeof in->key_name, "%s", sq_json_str(spec, "keyName"));
  const char *src = sq_json_str(spec, "source.type");
  in->source = !strcmp(src, "import") ? SQ_VK_SRC_IMPORT : !strcmp(src, "existing") ? SQ_VK_SRC_EXISTING
                                                                                    : SQ_VK_SRC_GENERATE;
  const char *kty = sq_json_str(spec, "source.kty");
  snprintf(in->kty, sizeof in->kty, "%s", kty ? kty : "RSA");
  in->size = (int)sq_json_int(spec, "source.size", 3072);
  const char *repl = sq_json_str(spec, "replication");
  in->replication = repl && !strcmp(repl, "import") ? SQ_VK_REPL_IMPORT : SQ_VK_REPL_BACKUP_RESTORE;
  in->rotation_every_ms = sq_kc_duration_ms(spec, "rotation.every", 0);
  const char *trig = sq_json_str(spec, "rotation.trigger");
  snprintf(in->trigger, sizeof in->trigger, "%s", trig ? trig : "");
  in->expiry_warning_ms = sq_kc_duration_ms(spec, "expiryWarning", VK_DEFAULT_EXPIRY_WARNING_MS);
  const char *last = sq_json_str(p->status, "lastRotationTrigger");
  snprintf(in->last_trigger, sizeof in->last_trigger, "%s", last ? last : "");
  const char *cur = sq_json_str(p->status, "currentVersion");
  in->adopted = cur && *cur;

  /* a refusal recorded for this generation is not retried; a spec change is */
  int same_gen = sq_json_int(obj, "status.observedGeneration", -1) == sq_json_int(obj, "metadata.generation", 0);
  const json_t *vaults = json_object_get(spec, "vaults");
  in->n_vaults = json_array_size(vaults);
  for(size_t i = 0; i < in->n_vaults; i++) {
    sq_vk_vault *v = &in->vaults[i];
    snprintf(v->name, sizeof v->name, "%s", sq_json_str(json_array_get(vaults, i), "name"));
    json_t *kv = sq_op_get(p->op, &SQ_GVR_KEYVAULT, p->req->ns, v->name);
    v->state = sq_kc_object_state(kv, v->state_reason, sizeof v->state_reason);
    if(kv && sq_finalizer_deleting(kv))
      v->state = SQ_VAULT_WAITING;
    const char *uri = sq_json_str(kv, "spec.vaultUri");
    snprintf(p->uris[i], sizeof p->uris[i], "%s", uri ? uri : "");
    if(!uri || sq_vault_uri_split(uri, v->origin, sizeof v->origin, NULL, 0))
      v->origin[0] = '\0';
    const char *sub = sq_json_str(kv, "spec.subscriptionId");
    snprintf(v->subscription, sizeof v->subscription, "%s", sub ? sub : "");
    json_decref(kv);
    size_t j;
    json_t *e;
    json_array_foreach(sq_json_path(p->status, "vaults"), j, e) {
      const char *n = sq_json_str(e, "name"), *rt = sq_json_str(e, "refusedThumbprint");
      if(!same_gen || !n || strcmp(n, v->name) || !rt)
        continue;
      snprintf(v->refused_thumbprint, sizeof v->refused_thumbprint, "%s", rt);
      const char *rr = sq_json_str(e, "refusedReason"), *rm = sq_json_str(e, "refusedMessage");
      snprintf(v->refused_reason, sizeof v->refused_reason, "%s", rr ? rr : "ReplicationRefused");
      snprintf(p->refused_msg[i], sizeof p->refused_msg[i], "%s", rm ? rm : "");
    }
  }
}

/* Wipes every value of a Secret's data in place (jansson owns the strings). */
static void wipe_secret(json_t *secret) {
  const char *k;
  json_t *v;
  json_object_foreach(json_object_get(secret, "data"), k, v) {
    if(json_is_string(v))
      sq_wipe((char *)json_string_value(v), json_string_length(v));
  }
}

/* Reads the PEM for source import. 0: p->in.pem_thumbprint is set. 1: a
 * problem was written into the draft and p->res set. */
static int load_pem(vk_pass *p, const json_t *obj, sq_status_draft *d) {
  const char *name = sq_json_str(obj, "spec.source.secretRef.name");
  const char *key = sq_json_str(obj, "spec.source.secretRef.key");
  if(!key)
    key = "tls.key";
  sq_verdict v = {0};
  sq_err err;
  sq_err_clear(&err);
  json_t *sec = NULL;
  sq_code rc = sq_kube_get(p->op->kube, &SQ_GVR_SECRET, p->req->ns, name, &sec, &err);
  char es[384];
  int result = 1;
  if(rc == SQ_ENOTFOUND) {
    sq_verdict_set(&v, SQ_KSTATE_RECONCILING, "SecretNotFound", 0,
                   "waiting for Secret %s (spec.source.secretRef); Secrets are read with get only, so it is "
                   "looked for again every %d min", name, VK_SECRET_RECHECK_MS / 60000);
    p->res = sq_kc_after(SQ_VK_WAIT_MS);
    goto out;
  }
  if(rc) {
    sq_kc_errstr(&err, rc, es, sizeof es);
    if(sq_code_retryable(rc)) {
      sq_verdict_set(&v, SQ_KSTATE_RETRYING, "SecretReadFailed", 0, "reading Secret %s: %s", name, es);
      p->res = sq_kc_error(rc);
    } else {
      sq_verdict_set(&v, SQ_KSTATE_STALLED, rc == SQ_EFORBIDDEN ? "SecretForbidden" : "SecretReadFailed", 0,
                     "reading Secret %s: %s", name, es);
      p->res = sq_kc_after(VK_SECRET_RECHECK_MS);
    }
    goto out;
  }
  const json_t *data = sq_json_path(sec, "data");
  const json_t *b64 = json_object_get(data, key);
  if(!json_is_string(b64)) {
    sq_verdict_set(&v, SQ_KSTATE_STALLED, "SecretKeyMissing", 0, "Secret %s has no data key \"%s\" "
                   "(spec.source.secretRef.key)", name, key);
    p->res = sq_kc_after(VK_SECRET_RECHECK_MS);
    goto out;
  }
  sq_buf_free_wipe(&p->pem);
  sq_buf_init(&p->pem, VK_PEM_MAX);
  if(sq_b64_decode(json_string_value(b64), json_string_length(b64), &p->pem)) {
    sq_verdict_set(&v, SQ_KSTATE_STALLED, "InvalidKeyMaterial", 0,
                   "Secret %s key \"%s\" is not base64 or larger than %d KiB", name, key, VK_PEM_MAX / 1024);
    p->res = sq_kc_after(VK_SECRET_RECHECK_MS);
    goto out;
  }
  int bits = 0;
  sq_err_clear(&err);
  if(sq_vk_pem_inspect(p->pem.ptr, p->pem.len, &bits, p->in.pem_thumbprint, &err)) {
    sq_verdict_set(&v, SQ_KSTATE_STALLED, "InvalidKeyMaterial", 0, "Secret %s key \"%s\": %s", name, key,
                   err.message);
    p->res = sq_kc_after(VK_SECRET_RECHECK_MS);
    goto out;
  }
  if(bits < 2048) {
    char msg[512];
    snprintf(msg, sizeof msg,
             "spec.source.secretRef: Secret %s key \"%s\" holds a %d-bit RSA key; Azure SQL needs at least "
             "2048 bits, so it is not imported (KeyTooSmall)", name, key, bits);
    sq_status_condition(d, KC_COND_INVALID_SPEC, SQ_COND_TRUE, "KeyTooSmall", msg);
    sq_status_stalled(d, "KeyTooSmall", msg);
    p->in.pem_thumbprint[0] = '\0';
    /* not terminal: the Secret is not watched, a fixed one is noticed on the next look */
    p->res = sq_kc_after(VK_SECRET_RECHECK_MS);
    result = 1;
    goto done;
  }
  result = 0;
out:
  if(result)
    sq_kc_apply_verdict(d, &v);
done:
  if(sec) {
    wipe_secret(sec);
    json_decref(sec);
  }
  if(result)
    sq_buf_free_wipe(&p->pem);
  return result;
}

/* Keeps the newest SQ_VK_MAX_VERSIONS versions (Key Vault lists in no
 * particular order). */
static int collect_cb(void *ud, const sq_kv_key *k) {
  sq_vk_vault *v = ud;
  sq_vk_version x;
  memset(&x, 0, sizeof x);
  snprintf(x.version, sizeof x.version, "%s", k->version);
  x.enabled = k->enabled;
  x.created = k->created;
  x.nbf = k->nbf;
  x.exp = k->exp;
  const char *t = json_string_value(json_object_get(k->tags, SQ_VK_TRIGGER_TAG));
  snprintf(x.trigger, sizeof x.trigger, "%s", t ? t : "");
  if(v->n < SQ_VK_MAX_VERSIONS) {
    v->v[v->n++] = x;
    return 0;
  }
  v->truncated = 1;
  size_t oldest = 0;
  for(size_t i = 1; i < v->n; i++)
    if(v->v[i].created < v->v[oldest].created)
      oldest = i;
  if(x.created > v->v[oldest].created)
    v->v[oldest] = x;
  return 0;
}

/* Lists vault i's versions and fills in thumbprints: remembered ones from
 * status (or from an earlier observation in this pass), the others by GET. */
static sq_code observe(vk_pass *p, size_t i, int *fetches, sq_err *err) {
  sq_vk_vault *v = &p->in.vaults[i];
  size_t np = v->n;
  sq_vk_version *prev = np ? malloc(np * sizeof *prev) : NULL;
  if(np && !prev)
    return sq_err_set(err, SQ_ENOMEM, "out of memory");
  if(np)
    memcpy(prev, v->v, np * sizeof *prev);
  v->n = 0;
  v->key_exists = 0;
  v->truncated = 0;
  v->observed = 0;
  sq_code rc = sq_kv_list_versions(p->op->kv, p->uris[i], p->in.key_name, collect_cb, v, err);
  if(rc == SQ_ENOTFOUND) {
    v->n = 0;
    v->observed = 1;
    free(prev);
    return SQ_OK;
  }
  if(rc) {
    free(prev);
    return sq_err_prefix(err, "listing versions of %s in %s", p->in.key_name, v->name);
  }
  v->observed = 1;
  v->key_exists = v->n > 0;
  sq_vk_sort_versions(v);
  for(size_t j = 0; j < v->n && !rc; j++) {
    sq_vk_version *x = &v->v[j];
    for(size_t q = 0; q < np; q++)
      if(!strcmp(prev[q].version, x->version) && prev[q].thumbprint[0]) {
        memcpy(x->thumbprint, prev[q].thumbprint, sizeof x->thumbprint);
        memcpy(x->kty, prev[q].kty, sizeof x->kty);
        x->key_size = prev[q].key_size;
      }
    if(x->thumbprint[0] || sq_vk_cached_thumbprint(p->status, v->name, x->version, x->thumbprint))
      continue;
    if(*fetches >= VK_FETCH_MAX)
      continue;
    (*fetches)++;
    sq_kv_key k;
    sq_kv_key_init(&k);
    sq_code g = sq_kv_get(p->op->kv, p->uris[i], p->in.key_name, x->version, &k, err);
    if(!g) {
      snprintf(x->thumbprint, sizeof x->thumbprint, "%s", k.thumbprint);
      snprintf(x->kty, sizeof x->kty, "%s", k.kty);
      x->key_size = k.key_size;
    } else if(g != SQ_ENOTFOUND) { /* a version deleted meanwhile is just skipped */
      rc = sq_err_prefix(err, "reading version %s of %s in %s", x->version, p->in.key_name, v->name);
    }
    sq_kv_key_free(&k);
  }
  free(prev);
  return rc;
}

/* ---- acting ---------------------------------------------------------------- */

static json_t *owner_tags(const char *trigger) {
  json_t *t = json_pack("{s:s}", VK_OWNER_TAG, VK_OWNER_VALUE);
  if(t && trigger && *trigger)
    json_object_set_new(t, SQ_VK_TRIGGER_TAG, json_string(trigger));
  return t;
}

static sq_code execute(vk_pass *p, const sq_vk_decision *dec, char *done_msg, size_t done_len, sq_err *err) {
  sq_vk_input *in = &p->in;
  sq_kv *kv = p->op->kv;
  sq_kv_key out;
  sq_kv_key_init(&out);
  sq_code rc = SQ_OK;
  json_t *tags = owner_tags(dec->action == SQ_VK_ACT_ROTATE ? dec->rotate_tag : NULL);
  if(!tags)
    return sq_err_set(err, SQ_ENOMEM, "out of memory");
  switch(dec->action) {
  case SQ_VK_ACT_NONE:
    break;
  case SQ_VK_ACT_CREATE: {
    sq_kv_create_params cp = {.kty = in->kty, .key_size = in->size, .attrs = SQ_KV_ATTRS_UNSET, .tags = tags};
    rc = sq_kv_create(kv, p->uris[0], in->key_name, &cp, &out, err);
    snprintf(done_msg, done_len, "created %s-%d key %s in %s: version %s, thumbprint %s", in->kty, in->size,
             in->key_name, in->vaults[0].name, out.version, out.thumbprint);
    break;
  }
  case SQ_VK_ACT_ROTATE: {
    /* a new version with the current version's type and size (a generated
     * key: the spec's), tagged with the trigger that caused it */
    char kty[16];
    int size = in->size;
    snprintf(kty, sizeof kty, "%s", in->kty);
    if(in->source != SQ_VK_SRC_GENERATE) {
      sq_kv_key cur;
      sq_kv_key_init(&cur);
      rc = sq_kv_get(kv, p->uris[0], in->key_name, NULL, &cur, err);
      if(!rc && cur.kty[0])
        snprintf(kty, sizeof kty, "%s", cur.kty);
      if(!rc && cur.key_size >= 2048)
        size = cur.key_size;
      sq_kv_key_free(&cur);
      if(rc)
        break;
    }
    sq_kv_create_params cp = {.kty = kty, .key_size = size, .attrs = SQ_KV_ATTRS_UNSET, .tags = tags};
    rc = sq_kv_create(kv, p->uris[0], in->key_name, &cp, &out, err);
    snprintf(done_msg, done_len, "rotated %s in %s (%s): new version %s, thumbprint %s", in->key_name,
             in->vaults[0].name, dec->why, out.version, out.thumbprint);
    if(!rc && dec->rotate_tag[0])
      snprintf(in->last_trigger, sizeof in->last_trigger, "%s", dec->rotate_tag);
    break;
  }
  case SQ_VK_ACT_IMPORT: {
    sq_kv_import_params ip = {.hsm = 0, .attrs = SQ_KV_ATTRS_UNSET, .tags = tags};
    if(!p->pem.len) {
      rc = sq_err_set(err, SQ_ESTATE, "no key material loaded");
      break;
    }
    rc = sq_kv_import_pem(kv, p->uris[dec->vault], in->key_name, p->pem.ptr, p->pem.len, &ip, &out, err);
    snprintf(done_msg, done_len, "imported the Secret's key material as %s into %s: version %s, thumbprint %s",
             in->key_name, in->vaults[dec->vault].name, out.version, out.thumbprint);
    break;
  }
  case SQ_VK_ACT_RESTORE: {
    char *blob = NULL;
    rc = sq_kv_backup(kv, p->uris[0], in->key_name, &blob, err);
    if(!rc)
      rc = sq_kv_restore(kv, p->uris[dec->vault], blob, &out, err);
    sq_free_secret(blob); /* protected by Key Vault, but key material all the same */
    snprintf(done_msg, done_len, "restored a backup of %s from %s into %s (thumbprint %s)", in->key_name,
             in->vaults[0].name, in->vaults[dec->vault].name, out.thumbprint);
    break;
  }
  }
  json_decref(tags);
  sq_kv_key_free(&out);
  return rc;
}

static const char *done_reason(sq_vk_action a) {
  switch(a) {
  case SQ_VK_ACT_CREATE:
    return "KeyCreated";
  case SQ_VK_ACT_IMPORT:
    return "KeyImported";
  case SQ_VK_ACT_ROTATE:
    return "KeyRotated";
  case SQ_VK_ACT_RESTORE:
    return "KeyRestored";
  default:
    return "Reconciled";
  }
}

/* ---- status ------------------------------------------------------------------ */

static void write_vaults(vk_pass *p, sq_status_draft *d, const sq_vk_decision *dec) {
  json_t *arr = json_array();
  for(size_t i = 0; i < p->in.n_vaults && arr; i++) {
    const sq_vk_vault *v = &p->in.vaults[i];
    json_t *e = json_pack("{s:s,s:b}", "name", v->name, "ready", v->state == SQ_VAULT_READY);
    if(!e)
      continue;
    if(dec->current >= 0)
      json_object_set_new(e, "holdsCurrent", json_boolean(dec->holds[i]));
    if(v->refused_thumbprint[0]) {
      json_object_set_new(e, "refusedThumbprint", json_string(v->refused_thumbprint));
      json_object_set_new(e, "refusedReason", json_string(v->refused_reason));
      if(p->refused_msg[i][0])
        json_object_set_new(e, "refusedMessage", json_string(p->refused_msg[i]));
    }
    json_array_append_new(arr, e);
  }
  if(arr)
    json_object_set_new(d->status, "vaults", arr);
}

static void write_status(vk_pass *p, sq_status_draft *d, const sq_vk_decision *dec, const sq_verdict *v) {
  sq_vk_input *in = &p->in;
  const sq_vk_vault *pv = &in->vaults[0];
  if(pv->observed) {
    json_t *versions = sq_vk_versions_json(in, in->key_name);
    if(versions)
      json_object_set_new(d->status, "versions", versions);
    if(dec->current >= 0) {
      const sq_vk_version *c = &pv->v[dec->current];
      char uri[SQ_KV_KID_MAX];
      snprintf(uri, sizeof uri, "%s/keys/%s/%s", pv->origin, in->key_name, c->version);
      json_object_set_new(d->status, "currentVersion", json_string(c->version));
      json_object_set_new(d->status, "currentThumbprint", json_string(c->thumbprint));
      json_object_set_new(d->status, "currentKeyUri", json_string(uri));
    } else if(!pv->key_exists) {
      json_object_del(d->status, "currentVersion");
      json_object_del(d->status, "currentThumbprint");
      json_object_del(d->status, "currentKeyUri");
    }
  }
  if(dec->trigger_to_record[0])
    json_object_set_new(d->status, "lastRotationTrigger", json_string(dec->trigger_to_record));
  write_vaults(p, d, dec);

  sq_kc_apply_verdict(d, v);
  if(dec->replicated >= 0)
    sq_status_condition(d, KC_COND_REPLICATED, dec->replicated ? SQ_COND_TRUE : SQ_COND_FALSE,
                        dec->repl_reason[0] ? dec->repl_reason : "Unknown", dec->repl_message);
  else if(!sq_cond_find(sq_status_conditions(d), KC_COND_REPLICATED))
    sq_status_condition(d, KC_COND_REPLICATED, SQ_COND_UNKNOWN, "NotObserved",
                        "the key has not been observed in its vaults yet");
  if(dec->current >= 0) {
    const sq_vk_version *c = &pv->v[dec->current];
    char when[32] = "", msg[512];
    if(c->exp > 0)
      sq_rfc3339(c->exp, when, sizeof when);
    snprintf(msg, sizeof msg, "version %s of %s expires at %s (within spec.expiryWarning); rotate or extend it "
             "before Azure SQL loses the protector", c->version, in->key_name, when);
    sq_kc_flag_condition(d, KC_COND_EXPIRING, dec->expiring, "ExpiringSoon", msg);
    snprintf(msg, sizeof msg, "version %s of %s expired at %s; databases protected by it become "
             "inaccessible", c->version, in->key_name, when);
    sq_kc_flag_condition(d, KC_COND_EXPIRED, dec->expired, "KeyExpired", msg);
    snprintf(msg, sizeof msg, "version %s of %s is disabled in %s; databases protected by it become "
             "inaccessible", c->version, in->key_name, pv->name);
    sq_kc_flag_condition(d, KC_COND_DISABLED, dec->disabled, "KeyDisabled", msg);
  }
}

/* ---- reconcile ----------------------------------------------------------------- */

static sq_code apply(void *ud, const json_t *obj, sq_err *err) {
  (void)err;
  vk_pass *p = ud;
  sq_op *op = p->op;
  p->status = sq_json_path(obj, "status");
  sq_status_draft d;
  if(sq_status_begin(&d, obj, sq_kc_now(op)))
    return SQ_ENOMEM;
  sq_kc_clear_condition(&d, KC_COND_DELETION_BLOCKED);
  sq_invalid inv;
  if(sq_validate_vaultkey(obj, &inv)) {
    sq_kc_set_invalid(&d, inv.rule, inv.message);
    sq_kc_transition_events(op, &d);
    sq_kc_commit(op, &SQ_GVR_VAULTKEY, &d, LOG);
    p->res = sq_kc_terminal(SQ_EINVAL);
    return SQ_OK;
  }
  sq_kc_clear_condition(&d, KC_COND_INVALID_SPEC);
  load_spec(p, obj);
  if(p->in.source == SQ_VK_SRC_IMPORT && load_pem(p, obj, &d)) {
    sq_kc_transition_events(op, &d);
    sq_kc_commit(op, &SQ_GVR_VAULTKEY, &d, LOG);
    return SQ_OK;
  }

  sq_vk_decision dec;
  sq_verdict v;
  int have_verdict = 0, fetches = 0;
  sq_err e;
  char es[512], done_msg[1200];
  const int max_steps = 2 + (int)p->in.n_vaults;
  for(int step = 0;; step++) {
    sq_err_clear(&e);
    sq_code rc = SQ_OK;
    for(size_t i = 0; i < p->in.n_vaults && !rc; i++) {
      if(p->in.vaults[i].state == SQ_VAULT_READY)
        rc = observe(p, i, &fetches, &e);
      else if(step == 0)
        sq_vk_vault_from_status(p->status, &p->in.vaults[i]);
    }
    if(rc) {
      sq_kc_errstr(&e, rc, es, sizeof es);
      sq_vk_decide(&p->in, &dec); /* for whatever is known */
      sq_verdict_set(&v, sq_code_retryable(rc) ? SQ_KSTATE_RETRYING : SQ_KSTATE_STALLED, "ObserveFailed", 0,
                     "%s", es);
      have_verdict = 1;
      p->res = sq_code_retryable(rc) ? sq_kc_error(rc) : sq_kc_after(op->cfg.resync_ms);
      break;
    }
    sq_vk_decide(&p->in, &dec);
    if(dec.action == SQ_VK_ACT_NONE)
      break;
    if(step >= max_steps) { /* Key Vault has not shown what we wrote yet */
      sq_verdict_set(&v, SQ_KSTATE_RECONCILING, "Progressing", 0, "%s", dec.why);
      have_verdict = 1;
      p->res = sq_kc_after(5000);
      break;
    }
    SQ_INFO(LOG, "%s: %s", p->req->key, dec.why);
    done_msg[0] = '\0';
    sq_err_clear(&e);
    rc = execute(p, &dec, done_msg, sizeof done_msg, &e);
    if(!rc) {
      sq_op_event(op, obj, 0, done_reason(dec.action), sq_vk_action_name(dec.action), "%s", done_msg);
      continue;
    }
    sq_kc_errstr(&e, rc, es, sizeof es);
    int secondary = dec.vault > 0 && (dec.action == SQ_VK_ACT_RESTORE || dec.action == SQ_VK_ACT_IMPORT);
    if(secondary && (rc == SQ_EBADREQ || (rc == SQ_ECONFLICT && dec.action == SQ_VK_ACT_RESTORE))) {
      /* Azure refused this material for this vault for good (another
       * geography or subscription, the name taken): remember it, carry on */
      sq_vk_vault *t = &p->in.vaults[dec.vault];
      const char *reason = dec.action == SQ_VK_ACT_IMPORT ? "ImportRefused"
                           : rc == SQ_ECONFLICT          ? "RestoreConflict"
                                                         : "BackupRestoreRefused";
      snprintf(t->refused_thumbprint, sizeof t->refused_thumbprint, "%s", p->in.vaults[0].v[0].thumbprint);
      snprintf(t->refused_reason, sizeof t->refused_reason, "%s", reason);
      snprintf(p->refused_msg[dec.vault], sizeof p->refused_msg[dec.vault], "%s", es);
      sq_op_event(op, obj, 1, reason, sq_vk_action_name(dec.action), "%s into %s refused: %s%s",
                  sq_vk_action_name(dec.action), t->name, es,
                  dec.action == SQ_VK_ACT_RESTORE ? "; backup/restore works only within one subscription and "
                                                    "geography: use replication: import" : "");
      continue;
    }
    sq_verdict_set(&v, sq_code_retryable(rc) ? SQ_KSTATE_RETRYING : SQ_KSTATE_STALLED,
                   dec.action == SQ_VK_ACT_CREATE    ? "CreateFailed"
                   : dec.action == SQ_VK_ACT_IMPORT  ? "ImportFailed"
                   : dec.action == SQ_VK_ACT_ROTATE  ? "RotateFailed"
                                                     : "RestoreFailed",
                   0, "%s failed: %s%s", dec.why, es,
                   rc == SQ_EFORBIDDEN ? " (the operator's identity needs keys create/import/backup/restore "
                                         "permissions on the vault)" : "");
    have_verdict = 1;
    p->res = sq_code_retryable(rc) ? sq_kc_error(rc) : sq_kc_after(op->cfg.resync_ms);
    break;
  }
  if(!have_verdict) {
    v = dec.verdict;
    int64_t resync = op->cfg.resync_ms > 0 ? op->cfg.resync_ms : 10 * 60 * 1000;
    int64_t after = v.requeue_ms > 0 && v.requeue_ms < resync ? v.requeue_ms : resync;
    if(v.state == SQ_KSTATE_RECONCILING && !v.requeue_ms)
      after = SQ_VK_WAIT_MS;
    p->res = sq_kc_after(after);
  }
  write_status(p, &d, &dec, &v);
  sq_kc_transition_events(op, &d);
  sq_code wrc = sq_kc_commit(op, &SQ_GVR_VAULTKEY, &d, LOG);
  if(wrc && !p->res.err)
    p->res = sq_kc_error(wrc);
  return SQ_OK;
}

/* The key prefixes ("https://origin/keys/NAME") of this key in every vault it
 * lists, from the KeyVault objects and from status (a deleted KeyVault's
 * keys still count). */
static size_t key_prefixes(vk_pass *p, const json_t *obj, char (*out)[SQ_KV_KID_MAX], size_t max) {
  size_t n = 0, i;
  json_t *it;
  const char *key = sq_json_str(obj, "spec.keyName");
  if(!key)
    return 0;
  json_array_foreach(sq_json_path(obj, "spec.vaults"), i, it) {
    json_t *kv = sq_op_get(p->op, &SQ_GVR_KEYVAULT, p->req->ns, sq_json_str(it, "name"));
    char origin[SQ_AZ_URL_MAX];
    if(kv && n < max && !sq_vault_uri_split(sq_json_str(kv, "spec.vaultUri"), origin, sizeof origin, NULL, 0))
      snprintf(out[n++], SQ_KV_KID_MAX, "%s/keys/%s", origin, key);
    json_decref(kv);
  }
  json_array_foreach(sq_json_path(obj, "status.versions"), i, it) {
    const char *uri = sq_json_str(it, "keyUri");
    const char *slash = uri ? strrchr(uri, '/') : NULL;
    if(!slash || n >= max)
      continue;
    snprintf(out[n], SQ_KV_KID_MAX, "%.*s", (int)(slash - uri), uri);
    int dup = 0;
    for(size_t j = 0; j < n; j++)
      dup |= !strcasecmp(out[j], out[n]);
    if(!dup)
      n++;
  }
  return n;
}

static sq_code cleanup(void *ud, const json_t *obj, int *done, sq_err *err) {
  (void)err;
  vk_pass *p = ud;
  sq_op *op = p->op;
  char(*pre)[SQ_KV_KID_MAX] = calloc(2 * SQ_VK_MAX_VAULTS + 16, SQ_KV_KID_MAX);
  const char *ptrs[2 * SQ_VK_MAX_VAULTS + 16];
  if(!pre)
    return SQ_ENOMEM;
  size_t np = key_prefixes(p, obj, pre, 2 * SQ_VK_MAX_VAULTS + 16);
  for(size_t i = 0; i < np; i++)
    ptrs[i] = pre[i];
  json_t *dbs = sq_kc_list(op, &SQ_GVR_SQLDATABASE, p->req->ns);
  json_t *servers = sq_kc_list(op, &SQ_GVR_SQLSERVER, p->req->ns);
  char who[1024];
  size_t n = sq_vk_referrers(dbs, servers, p->req->name, ptrs, np, who, sizeof who);
  json_decref(dbs);
  json_decref(servers);
  free(pre);
  const char *key = sq_json_str(obj, "spec.keyName");
  if(n) {
    sq_status_draft d;
    if(sq_status_begin(&d, obj, sq_kc_now(op)))
      return SQ_ENOMEM;
    char msg[1400];
    snprintf(msg, sizeof msg, "deletion waits: still referenced by %s. Key material is never deleted by the "
             "operator; the finalizer goes once nothing references this VaultKey", who);
    sq_status_condition(&d, KC_COND_DELETION_BLOCKED, SQ_COND_TRUE, "StillReferenced", msg);
    sq_kc_transition_events(op, &d);
    sq_kc_commit(op, &SQ_GVR_VAULTKEY, &d, LOG);
    *done = 0;
    p->res = sq_kc_after(VK_DELETE_RECHECK_MS);
    return SQ_OK;
  }
  sq_op_event(op, obj, 0, "KeyMaterialKept", "Delete",
              "nothing references this VaultKey any more; finalizer removed. Key %s and all its versions stay "
              "in Key Vault: the operator never deletes key material (retained backups may need it); delete "
              "it by hand only when no backup can need it", key ? key : "?");
  *done = 1;
  p->res = sq_kc_after(0);
  return SQ_OK;
}

static sq_reconcile_result reconcile(void *ud, const sq_reconcile_req *req) {
  sq_op *op = ud;
  json_t *obj = sq_op_get(op, &SQ_GVR_VAULTKEY, req->ns, req->name);
  if(!obj)
    return sq_kc_after(0);
  vk_pass *p = calloc(1, sizeof *p);
  if(!p) {
    json_decref(obj);
    return sq_kc_error(SQ_ENOMEM);
  }
  p->op = op;
  p->req = req;
  sq_buf_init(&p->pem, VK_PEM_MAX);
  sq_err err;
  sq_err_clear(&err);
  sq_finalizer_action taken;
  sq_code rc = sq_finalizer_reconcile(op->kube, &SQ_GVR_VAULTKEY, obj, SQ_FINALIZER, apply, cleanup, p, &taken,
                                      &err);
  sq_reconcile_result res = p->res;
  if(rc) {
    sq_log_kv(SQ_LOG_WARN, LOG, "reconcile failed", "key", req->key, "error", err.message, NULL);
    res = rc == SQ_ENOTFOUND ? sq_kc_after(0) : sq_kc_error(rc);
  }
  sq_buf_free_wipe(&p->pem);
  free(p);
  json_decref(obj);
  return res;
}

/* ---- watches ---------------------------------------------------------------- */

/* A KeyVault changed: wake the VaultKeys whose recorded view of its readiness
 * is now wrong (not every key on every periodic probe). */
static void map_keyvault(void *ud, const json_t *kv, sq_map_out *out) {
  sq_op *op = ud;
  const char *ns = sq_json_str(kv, "metadata.namespace"), *name = sq_json_str(kv, "metadata.name");
  if(!name)
    return;
  /* the cached object, not the event's: a deleted vault is gone from the cache */
  json_t *live = sq_op_get(op, &SQ_GVR_KEYVAULT, ns, name);
  int ready = live && !sq_finalizer_deleting(live) && sq_kc_object_state(live, NULL, 0) == SQ_VAULT_READY;
  json_decref(live);
  json_t *vks = sq_kc_list(op, &SQ_GVR_VAULTKEY, ns);
  size_t i;
  json_t *vk;
  json_array_foreach(vks, i, vk) {
    if(sq_vk_vault_change_matters(vk, name, ready))
      sq_map_emit(out, ns, sq_json_str(vk, "metadata.name"));
  }
  json_decref(vks);
}

/* A SqlDatabase or SqlServer changed: wake the VaultKeys it references that
 * are being deleted (their finalizer may be free to go now). */
static void map_referrer(void *ud, const json_t *o, sq_map_out *out) {
  sq_op *op = ud;
  const char *ns = sq_json_str(o, "metadata.namespace");
  const char *names[80];
  size_t nn = 0, i;
  json_t *it;
  names[nn] = sq_json_str(o, "spec.encryptionProtector.vaultKey.name");
  nn += names[nn] != NULL;
  names[nn] = sq_json_str(o, "spec.protector.vaultKey.name");
  nn += names[nn] != NULL;
  json_array_foreach(sq_json_path(o, "spec.keys"), i, it) {
    if(nn < sizeof names / sizeof names[0] && (names[nn] = sq_json_str(it, "vaultKey")))
      nn++;
  }
  for(i = 0; i < nn; i++) {
    json_t *vk = sq_op_get(op, &SQ_GVR_VAULTKEY, ns, names[i]);
    if(vk && sq_finalizer_deleting(vk))
      sq_map_emit(out, ns, names[i]);
    json_decref(vk);
  }
}

sq_code sq_vaultkey_controller_register(sq_op *op, int workers, sq_err *err) {
  sq_controller *c;
  sq_code rc = sq_manager_add_controller(op->mgr, "vaultkey", &SQ_GVR_VAULTKEY, workers, reconcile, op, &c, err);
  if(!rc)
    rc = sq_controller_watch(c, op->mgr, &SQ_GVR_KEYVAULT, map_keyvault, op, err);
  if(!rc)
    rc = sq_controller_watch(c, op->mgr, &SQ_GVR_SQLDATABASE, map_referrer, op, err);
  if(!rc)
    rc = sq_controller_watch(c, op->mgr, &SQ_GVR_SQLSERVER, map_referrer, op, err);
  return rc;
}
