/* gather.c — snapshots for the SqlServer / SqlDatabase planners; see
 * include/sqltde/operator/gather.h. Reads only: caches and ARM GETs. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "sqltde/api/kinds.h"
#include "sqltde/jsonx.h"
#include "sqltde/kube/finalizer.h"
#include "sqltde/operator/gather.h"
#include "sqltde/operator/server_obs.h"

static int str_empty(const char *s) {
  return !s || !*s;
}

/* Copies a URI whole or not at all: a truncated key URI would name a
 * different key. */
static int copy_uri(const char *u, char *out, size_t outlen) {
  if(str_empty(u) || strlen(u) >= outlen)
    return -1;
  memcpy(out, u, strlen(u) + 1);
  return 0;
}

int sq_gather_vaultkey_uri(const json_t *vk, const char *version, char *out, size_t outlen) {
  if(!outlen)
    return -1;
  out[0] = '\0';
  if(!vk)
    return -1;
  if(str_empty(version))
    return copy_uri(sq_json_str(vk, "status.currentKeyUri"), out, outlen);
  const json_t *vs = sq_json_path(vk, "status.versions");
  size_t i;
  const json_t *v;
  json_array_foreach(vs, i, v) {
    const char *ver = sq_json_str(v, "version"), *u = sq_json_str(v, "keyUri");
    if(ver && u && !strcasecmp(ver, version))
      return copy_uri(u, out, outlen);
  }
  return -1;
}

/* Whether versionless key URI base (https://VAULT/keys/NAME) names the key
 * that versioned URI u is a version of (same vault, same key). */
static int key_uri_base_of(const char *base, const char *u) {
  size_t n = strlen(base);
  while(n && base[n - 1] == '/')
    n--;
  return n && !strncasecmp(base, u, n) && (u[n] == '/' || u[n] == '\0');
}

/* The ManagedIdentity's keyAccess entry for version URI u of VaultKey
 * vk_name. A VaultKey may live in several vaults and access is per vault, so
 * the entry must be the one for u's vault (its keyUri); an entry without
 * keyUri counts only when it is the VaultKey's only entry. */
static const json_t *key_access_entry(const json_t *mi, const char *vk_name, const char *u) {
  const json_t *ka = sq_json_path(mi, "status.keyAccess");
  size_t i, named = 0;
  const json_t *e, *only = NULL;
  json_array_foreach(ka, i, e) {
    const char *n = sq_json_str(e, "vaultKey");
    if(!n || !vk_name || strcmp(n, vk_name))
      continue;
    const char *base = sq_json_str(e, "keyUri");
    if(base && key_uri_base_of(base, u))
      return e;
    named++;
    only = base ? NULL : e;
  }
  return named == 1 ? only : NULL;
}

sq_code sq_gather_key_facts(sq_plan_facts *f, const json_t *vk, const json_t *mi, const char *identity_id,
                            int64_t permission_delay_ms, sq_err *err) {
  if(!vk)
    return SQ_OK;
  const char *vk_name = sq_json_str(vk, "metadata.name");
  const json_t *vs = sq_json_path(vk, "status.versions");
  size_t i;
  const json_t *v;
  json_array_foreach(vs, i, v) {
    const char *u = sq_json_str(v, "keyUri");
    if(str_empty(u))
      continue;
    sq_plan_key_fact k;
    memset(&k, 0, sizeof k);
    k.uri = (char *)u;
    k.exists = 1;
    k.enabled = sq_json_bool(v, "enabled", 1);
    const char *c = sq_json_str(v, "created"), *x = sq_json_str(v, "expires");
    k.created_s = c ? sq_parse_rfc3339(c) : 0;
    k.exp_s = x ? sq_parse_rfc3339(x) : 0;
    if(k.created_s < 0)
      k.created_s = 0;
    if(k.exp_s < 0)
      k.exp_s = 0;
    const char *t = sq_json_str(v, "thumbprint");
    snprintf(k.thumbprint, sizeof k.thumbprint, "%s", t ? t : "");
    sq_code rc = sq_plan_facts_add_key(f, &k, err);
    if(rc == SQ_ENOMEM)
      return rc;
    if(rc)
      continue; /* a malformed uri in someone's status: that key stays unobserved */
    const json_t *acc = mi ? key_access_entry(mi, vk_name, u) : NULL;
    if(!acc || str_empty(identity_id))
      continue;
    sq_plan_access a;
    memset(&a, 0, sizeof a);
    a.key_uri = (char *)u;
    a.identity_id = (char *)identity_id;
    /* Unknown (not checked yet) and Unverified (cross-tenant: ARM cannot
     * tell) carry no booleans: let Azure make the final check rather than
     * reading them as "everything missing". */
    const char *st = sq_json_str(acc, "state");
    if(st && (!strcmp(st, "Unknown") || !strcmp(st, "Unverified"))) {
      a.state = SQ_ACCESS_UNKNOWN;
      sq_code arc = sq_plan_facts_add_access(f, &a, err);
      if(arc == SQ_ENOMEM)
        return arc;
      continue;
    }
    unsigned missing = 0;
    if(!sq_json_bool(acc, "get", 0))
      missing |= SQ_PERM_GET;
    if(!sq_json_bool(acc, "wrapKey", 0))
      missing |= SQ_PERM_WRAP;
    if(!sq_json_bool(acc, "unwrapKey", 0))
      missing |= SQ_PERM_UNWRAP;
    a.state = missing ? SQ_ACCESS_MISSING : SQ_ACCESS_GRANTED;
    a.missing = missing;
    const char *g = sq_json_str(acc, "grantedAt");
    int64_t gs = g ? sq_parse_rfc3339(g) : 0;
    if(gs > 0) {
      /* the planner waits a fixed SQ_PLAN_GRANT_DELAY_S after a grant; the
       * configured delay (tests shorten it) is applied by moving the grant */
      int64_t delay_s = permission_delay_ms / 1000;
      gs -= (int64_t)SQ_PLAN_GRANT_DELAY_S - delay_s;
      a.granted_s = gs > 0 ? gs : 1;
    }
    rc = sq_plan_facts_add_access(f, &a, err);
    if(rc == SQ_ENOMEM)
      return rc;
  }
  return SQ_OK;
}

/* ---- SqlDatabase ---------------------------------------------------------- */

static void set_unresolved(sq_plan_desired_db *d, const char *fmt, const char *a) {
  if(d->unresolved)
    return;
  char m[512];
  snprintf(m, sizeof m, fmt, a);
  sq_plan_set_str(&d->unresolved, m, NULL);
}

static void set_invalid(sq_plan_desired_db *d, const char *m) {
  if(d->invalid)
    return;
  d->invalid = 1;
  sq_plan_set_str(&d->invalid_message, m, NULL);
}

static sq_plan_server_enc server_enc_of(const char *t) {
  if(!t)
    return SQ_SERVER_ENC_UNKNOWN;
  if(!strcmp(t, "ServiceManaged"))
    return SQ_SERVER_ENC_SERVICE_MANAGED;
  if(!strcmp(t, "CustomerManaged") || !strcmp(t, "AzureKeyVault"))
    return SQ_SERVER_ENC_CUSTOMER_MANAGED;
  return SQ_SERVER_ENC_UNKNOWN;
}

static void list_from_keys(sq_plan_list *l, const sq_sql_database *db) {
  for(size_t i = 0; i < db->n_keys; i++)
    sq_plan_list_add(l, db->keys[i].uri, NULL);
}

/* The desired side: references resolved from the caches. */
static sq_code gather_db_desired(sq_op *op, const json_t *obj, sq_db_snapshot *s, sq_err *err) {
  sq_plan_desired_db *d = &s->in.desired;
  const char *ns = sq_json_str(obj, "metadata.namespace");
  const json_t *spec = sq_json_path(obj, "spec");
  sq_code rc = SQ_OK;
  json_t *srv = NULL, *mi = NULL, *pvk = NULL;

  d->being_deleted = sq_finalizer_deleting(obj);
  const char *dp = sq_json_str(spec, "deletionPolicy");
  d->deletion_policy = dp && !strcmp(dp, "Delete") ? SQ_DELETION_DELETE : SQ_DELETION_RETAIN;
  const char *dbn = sq_json_str(spec, "databaseName");
  snprintf(s->db_name, sizeof s->db_name, "%s", str_empty(dbn) ? sq_json_str(obj, "metadata.name") : dbn);
  sq_plan_set_str(&d->name, s->db_name, NULL);
  sq_plan_set_str(&d->sku_name, sq_json_str(spec, "sku.name"), NULL);
  sq_plan_set_str(&d->sku_tier, sq_json_str(spec, "sku.tier"), NULL);
  d->auto_rotation = sq_json_bool(spec, "autoRotation", 0);

  const char *sname = sq_json_str(spec, "server.name");
  srv = sname ? sq_op_get(op, &SQ_GVR_SQLSERVER, ns, sname) : NULL;
  if(!srv)
    set_unresolved(d, "SqlServer %s not found", sname ? sname : "(none)");
  else {
    const char *rid = sq_json_str(srv, "spec.resourceId");
    sq_plan_set_str(&d->server_id, rid, NULL);
    const char *loc = sq_json_str(srv, "status.location");
    if(str_empty(loc))
      set_unresolved(d, "SqlServer %s has not been observed in Azure yet", sname);
    else {
      snprintf(s->location, sizeof s->location, "%s", loc);
      sq_plan_set_str(&d->location, loc, NULL);
    }
    s->in.primary.server_encryption = server_enc_of(sq_json_str(srv, "status.protectorType"));
    const char *pu = sq_json_str(srv, "status.protectorKeyUri"), *pt = sq_json_str(srv, "status.thumbprint");
    snprintf(s->server_protector_uri, sizeof s->server_protector_uri, "%s", pu ? pu : "");
    snprintf(s->server_thumbprint, sizeof s->server_thumbprint, "%s", pt ? pt : "");
    if(rid && sq_sql_database_id(rid, s->db_name, s->db_id, sizeof s->db_id, NULL))
      s->db_id[0] = '\0';
  }

  const char *iname = sq_json_str(spec, "identity.name");
  if(iname) {
    mi = sq_op_get(op, &SQ_GVR_MANAGEDIDENTITY, ns, iname);
    const char *rid = mi ? sq_json_str(mi, "spec.resourceId") : NULL;
    if(str_empty(rid))
      set_unresolved(d, "ManagedIdentity %s not found", iname);
    else
      sq_plan_set_str(&d->identity_id, rid, NULL);
  }
  const char *fc = sq_json_str(spec, "federatedClientId");
  if(str_empty(fc) && mi)
    fc = sq_json_str(mi, "spec.federatedClientId");
  if(!str_empty(fc))
    sq_plan_set_str(&d->federated_client_id, fc, NULL);

  char uri[SQ_SQL_URI_MAX];
  const json_t *ep = sq_json_path(spec, "encryptionProtector");
  if(ep && json_is_object(ep)) {
    const char *vkn = sq_json_str(ep, "vaultKey.name"), *ver = sq_json_str(ep, "version");
    d->encryption = SQ_DB_ENC_CUSTOMER_MANAGED;
    d->protector_pinned = !str_empty(ver);
    if(d->protector_pinned && d->auto_rotation)
      set_invalid(d, "spec.encryptionProtector.version: a pinned version cannot be combined with "
                     "spec.autoRotation (Azure would move the database off the pinned version) "
                     "(PinnedVersionWithAutoRotation)");
    if(!iname)
      set_invalid(d, "spec.identity: a database-level customer-managed key needs the database's "
                     "user-assigned identity (IdentityRequiredForDatabaseCMK)");
    pvk = vkn ? sq_op_get(op, &SQ_GVR_VAULTKEY, ns, vkn) : NULL;
    if(!pvk)
      set_unresolved(d, "VaultKey %s not found", vkn ? vkn : "(none)");
    else if(sq_gather_vaultkey_uri(pvk, ver, uri, sizeof uri))
      set_unresolved(d, d->protector_pinned ? "VaultKey %s does not list the pinned version yet"
                                            : "VaultKey %s has no current version yet",
                     vkn);
    else
      sq_plan_set_str(&d->protector_uri, uri, NULL);
    rc = sq_gather_key_facts(&s->in.facts, pvk, mi, d->identity_id, op->cfg.permission_delay_ms, err);
    if(rc)
      goto out;
  }

  const json_t *keys = sq_json_path(spec, "keys");
  size_t i;
  const json_t *k;
  json_array_foreach(keys, i, k) {
    const char *vkn = sq_json_str(k, "vaultKey"), *ver = sq_json_str(k, "version");
    json_t *vk = vkn ? sq_op_get(op, &SQ_GVR_VAULTKEY, ns, vkn) : NULL;
    if(!vk)
      set_unresolved(d, "VaultKey %s (spec.keys) not found", vkn ? vkn : "(none)");
    else if(sq_gather_vaultkey_uri(vk, ver, uri, sizeof uri))
      set_unresolved(d, "VaultKey %s (spec.keys) does not list that version yet", vkn);
    else {
      if(!iname)
        set_invalid(d, "spec.identity: extra keys need the database's user-assigned identity "
                       "(IdentityRequiredForDatabaseCMK)");
      sq_plan_list_add(&d->keys, uri, NULL);
    }
    if(vk)
      rc = sq_gather_key_facts(&s->in.facts, vk, mi, d->identity_id, op->cfg.permission_delay_ms, err);
    json_decref(vk);
    if(rc)
      goto out;
  }
  if(json_array_size(sq_json_path(spec, "geoSecondaries")))
    set_unresolved(d, "%s", "spec.geoSecondaries are not handled by this operator version yet");

  /* last failed attempt, kept in status so a restart keeps the backoff */
  const json_t *lf = sq_json_path(obj, "status.lastFailure");
  if(lf && sq_json_str(lf, "code")) {
    sq_plan_set_str(&s->in.last_failure.code, sq_json_str(lf, "code"), NULL);
    sq_plan_set_str(&s->in.last_failure.server_id, sq_json_str(lf, "server"), NULL);
    const char *at = sq_json_str(lf, "at");
    s->in.last_failure.at_s = at ? sq_parse_rfc3339(at) : 0;
    s->in.last_failure.attempts = (unsigned)sq_json_int(lf, "attempts", 1);
  }
out:
  json_decref(srv);
  json_decref(mi);
  json_decref(pvk);
  return rc;
}

static int wants_keys(const sq_db_snapshot *s) {
  const sq_plan_desired_db *d = &s->in.desired;
  return d->encryption == SQ_DB_ENC_CUSTOMER_MANAGED || d->keys.n;
}

static sq_code gather_db(sq_op *op, const json_t *obj, int64_t now, int allow_cached, sq_db_snapshot *s,
                         sq_err *err) {
  sq_code rc;
  memset(s, 0, sizeof *s);
  s->in.now = now;
  rc = gather_db_desired(op, obj, s, err);
  if(rc)
    return rc;
  sq_plan_desired_db *d = &s->in.desired;
  sq_plan_observed_db *p = &s->in.primary;
  /* Retain: releasing the object needs nothing from Azure */
  if(d->being_deleted && d->deletion_policy == SQ_DELETION_RETAIN)
    return SQ_OK;
  if(d->invalid || !s->db_id[0] || (d->unresolved && !d->being_deleted))
    return SQ_OK; /* InvalidSpec / waiting for a reference: no Azure call */

  sq_sql_keys_filter f = wants_keys(s) ? SQ_SQL_KEYS_ALL : SQ_SQL_KEYS_NONE;
  /* the cheap path (operator/server_obs.h): the server's list shows this
   * database exactly as its last full observation saw it */
  if(allow_cached && op->server_obs && !d->being_deleted) {
    sq_err lerr;
    sq_err_clear(&lerr);
    rc = sq_server_obs_lookup(op->server_obs, op->arm, d->server_id, s->db_id, f, &s->db, &lerr);
    if(rc == SQ_ENOMEM)
      return rc;
    if(!rc) {
      s->from_cache = 1;
      goto observed;
    }
    /* no match, or the list failed: the per-database GET decides */
  }
  int64_t started_ms = sq_mono_ms();
  rc = sq_sql_db_get(op->arm, s->db_id, f, 0, &s->db, err);
  if(rc == SQ_ENOTFOUND) {
    s->observed = 1;
    p->known = 1;
    p->exists = 0;
    sq_plan_set_str(&p->server_id, d->server_id, NULL);
    return SQ_OK;
  }
  if(rc) {
    s->azure_error = 1;
    return rc;
  }
  /* a database-level protector we did not ask for: its keys matter too */
  if(f == SQ_SQL_KEYS_NONE && s->db.encryption_protector[0]) {
    sq_sql_database_free(&s->db);
    f = SQ_SQL_KEYS_ALL;
    rc = sq_sql_db_get(op->arm, s->db_id, f, 0, &s->db, err);
    if(rc) {
      s->azure_error = 1;
      return rc;
    }
  }
  if(op->server_obs)
    sq_server_obs_remember(op->server_obs, d->server_id, s->db_id, f, &s->db, started_ms);
observed:
  s->observed = 1;
  p->known = 1;
  p->exists = 1;
  sq_plan_set_str(&p->server_id, d->server_id, NULL);
  p->status = sq_plan_db_status_parse(s->db.status);
  sq_plan_set_str(&p->status_text, s->db.status, NULL);
  p->role = SQ_ROLE_PRIMARY;
  for(size_t i = 0; i < s->db.identity.n_umis; i++)
    sq_plan_list_add(&p->identities, s->db.identity.umis[i].id, NULL);
  if(s->db.encryption_protector[0])
    sq_plan_set_str(&p->protector_uri, s->db.encryption_protector, NULL);
  p->auto_rotation = s->db.auto_rotation > 0;
  if(s->db.federated_client_id[0])
    sq_plan_set_str(&p->federated_client_id, s->db.federated_client_id, NULL);
  list_from_keys(&p->keys, &s->db);

  /* Only a key that would be removed needs the keys in use now and those
   * retained backups need. */
  int removal = 0;
  for(size_t i = 0; i < p->keys.n; i++) {
    const char *u = p->keys.v[i];
    if(!sq_plan_list_has(&d->keys, u) && !sq_plan_uri_eq(u, d->protector_uri) &&
       !sq_plan_uri_eq(u, p->protector_uri))
      removal = 1;
  }
  if(removal) {
    sq_sql_database cur, back;
    memset(&cur, 0, sizeof cur);
    memset(&back, 0, sizeof back);
    sq_code r1 = sq_sql_db_get(op->arm, s->db_id, SQ_SQL_KEYS_CURRENT, 0, &cur, err);
    int64_t ear = s->db.earliest_restore_date > 0 ? s->db.earliest_restore_date : s->db.creation_date;
    sq_code r2 = r1 ? r1 : sq_sql_db_get(op->arm, s->db_id, SQ_SQL_KEYS_AT, ear > 0 ? ear : now, &back, err);
    if(!r1 && !r2) {
      list_from_keys(&p->current_keys, &cur);
      list_from_keys(&p->backup_keys, &back);
      for(size_t i = 0; i < cur.n_keys; i++)
        if(cur.keys[i].thumbprint[0])
          sq_plan_list_add(&s->vlf_thumbprints, cur.keys[i].thumbprint, NULL);
      s->vlf_known = 1;
      /* protectors recorded in the key history since the earliest restore
       * point are needed by backups taken under them */
      const json_t *kh = sq_json_path(obj, "status.keyHistory");
      size_t i;
      const json_t *e;
      json_array_foreach(kh, i, e) {
        const char *to = sq_json_str(e, "to"), *u = sq_json_str(e, "keyUri");
        int64_t tos = to ? sq_parse_rfc3339(to) : 0;
        if(u && *u && (!to || tos >= ear))
          sq_plan_list_add(&p->backup_keys, u, NULL);
      }
      p->keys_complete = 1;
    }
    sq_sql_database_free(&cur);
    sq_sql_database_free(&back);
    if(r1 || r2) {
      rc = r1 ? r1 : r2;
      s->azure_error = 1;
      return rc;
    }
  }
  return SQ_OK;
}

sq_code sq_gather_db(sq_op *op, const json_t *obj, int64_t now, sq_db_snapshot *s, sq_err *err) {
  return gather_db(op, obj, now, 0, s, err);
}

sq_code sq_gather_db_cached(sq_op *op, const json_t *obj, int64_t now, sq_db_snapshot *s, sq_err *err) {
  return gather_db(op, obj, now, 1, s, err);
}

void sq_db_snapshot_free(sq_db_snapshot *s) {
  if(!s)
    return;
  sq_plan_db_input_free(&s->in);
  sq_sql_database_free(&s->db);
  sq_plan_list_free(&s->vlf_thumbprints);
  memset(s, 0, sizeof *s);
}

/* ---- SqlServer -------------------------------------------------------------- */

sq_code sq_gather_server(sq_op *op, const json_t *obj, int64_t now, sq_server_snapshot *s, sq_err *err) {
  sq_code rc = SQ_OK;
  memset(s, 0, sizeof *s);
  s->in.now = now;
  sq_plan_desired_server *d = &s->in.desired;
  sq_plan_observed_server *o = &s->in.observed;
  const char *ns = sq_json_str(obj, "metadata.namespace");
  const json_t *spec = sq_json_path(obj, "spec");
  json_t *mi = NULL, *vk = NULL;

  d->being_deleted = sq_finalizer_deleting(obj);
  sq_plan_set_str(&d->server_id, sq_json_str(spec, "resourceId"), NULL);
  const char *iname = sq_json_str(spec, "identity.name");
  if(iname) {
    mi = sq_op_get(op, &SQ_GVR_MANAGEDIDENTITY, ns, iname);
    const char *rid = mi ? sq_json_str(mi, "spec.resourceId") : NULL;
    if(str_empty(rid)) {
      char m[400];
      snprintf(m, sizeof m, "ManagedIdentity %s not found", iname);
      sq_plan_set_str(&d->unresolved, m, NULL);
    } else
      sq_plan_set_str(&d->identity_id, rid, NULL);
  }
  const char *pt = sq_json_str(spec, "protector.type");
  const char *vkn = sq_json_str(spec, "protector.vaultKey.name");
  d->auto_rotation = sq_json_bool(spec, "protector.autoRotation", 0);
  if(pt && !strcmp(pt, "ServiceManaged")) {
    d->encryption = SQ_SERVER_ENC_SERVICE_MANAGED;
    if(vkn) {
      d->invalid = 1;
      sq_plan_set_str(&d->invalid_message,
                      "spec.protector.vaultKey: a ServiceManaged protector takes no vaultKey "
                      "(VaultKeyWithServiceManaged)",
                      NULL);
    }
  } else if(pt && !strcmp(pt, "CustomerManaged")) {
    d->encryption = SQ_SERVER_ENC_CUSTOMER_MANAGED;
    if(!vkn) {
      d->invalid = 1;
      sq_plan_set_str(&d->invalid_message,
                      "spec.protector.vaultKey: a CustomerManaged protector needs a vaultKey "
                      "(VaultKeyRequired)",
                      NULL);
    } else {
      char uri[SQ_SQL_URI_MAX];
      vk = sq_op_get(op, &SQ_GVR_VAULTKEY, ns, vkn);
      if(!vk || sq_gather_vaultkey_uri(vk, NULL, uri, sizeof uri)) {
        char m[400];
        snprintf(m, sizeof m, vk ? "VaultKey %s has no current version yet" : "VaultKey %s not found", vkn);
        if(!d->unresolved)
          sq_plan_set_str(&d->unresolved, m, NULL);
      } else
        sq_plan_set_str(&d->key_uri, uri, NULL);
      rc = sq_gather_key_facts(&s->in.facts, vk, mi, d->identity_id, op->cfg.permission_delay_ms, err);
      if(rc)
        goto out;
    }
  }
  if(d->invalid || d->being_deleted || !d->server_id)
    goto out;

  rc = sq_sql_server_get(op->arm, d->server_id, &s->server, err);
  if(rc == SQ_ENOTFOUND) {
    o->known = 1;
    o->exists = 0;
    rc = SQ_OK;
    goto out;
  }
  if(rc)
    goto out;
  rc = sq_sql_protector_get(op->arm, d->server_id, &s->protector, err);
  if(rc)
    goto out;
  s->observed = 1;
  o->known = 1;
  o->exists = 1;
  o->system_assigned = strstr(s->server.identity.type, "SystemAssigned") != NULL;
  for(size_t i = 0; i < s->server.identity.n_umis; i++)
    sq_plan_list_add(&o->identities, s->server.identity.umis[i].id, NULL);
  if(s->server.primary_umi_id[0])
    sq_plan_set_str(&o->primary_identity_id, s->server.primary_umi_id, NULL);
  int akv = !strcmp(s->protector.server_key_type, "AzureKeyVault");
  o->encryption = akv ? SQ_SERVER_ENC_CUSTOMER_MANAGED : SQ_SERVER_ENC_SERVICE_MANAGED;
  if(akv && s->protector.uri[0]) {
    sq_plan_set_str(&o->protector_uri, s->protector.uri, NULL);
    sq_plan_list_add(&o->server_keys, s->protector.uri, NULL);
  }
  o->auto_rotation = s->protector.auto_rotation_enabled > 0;
  /* the server keys matter only when another key must become the protector */
  if(d->key_uri && !sq_plan_uri_eq(d->key_uri, o->protector_uri)) {
    char name[256];
    sq_sql_server_key k;
    if(!sq_sql_server_key_name(d->key_uri, name, sizeof name, NULL)) {
      sq_code r = sq_sql_server_key_get(op->arm, d->server_id, name, &k, err);
      if(!r && k.uri[0])
        sq_plan_list_add(&o->server_keys, k.uri, NULL);
      else if(r && r != SQ_ENOTFOUND) {
        rc = r;
        goto out;
      }
    }
  }
out:
  json_decref(mi);
  json_decref(vk);
  return rc;
}

void sq_server_snapshot_free(sq_server_snapshot *s) {
  if(!s)
    return;
  sq_plan_server_input_free(&s->in);
  memset(s, 0, sizeof *s);
}
