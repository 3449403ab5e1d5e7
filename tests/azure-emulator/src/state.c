/* state.c — the emulator's SQLite state: schema, migrations, meta values,
 * the virtual clock and settings.
 *
 * Schema is versioned per component (core, keyvault, and later providers such
 * as sql): component X at version N has run the first N steps of its list.
 * A new table or column is a new step appended to the component's list, never
 * an edit of an old step, so existing state dirs migrate forward. */
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "emu.h"
#include "sql.h"
#include "sqltde/codec.h"
#include "sqltde/log.h"

/* ---- schema ---- */

static const char *const core_steps[] = {
    /* 1 */
    "CREATE TABLE meta(k TEXT PRIMARY KEY, v BLOB);"
    "CREATE TABLE tenants(id TEXT PRIMARY KEY COLLATE NOCASE, name TEXT NOT NULL DEFAULT '');"
    "CREATE TABLE subscriptions(id TEXT PRIMARY KEY COLLATE NOCASE, tenant TEXT NOT NULL COLLATE NOCASE,"
    " name TEXT NOT NULL DEFAULT '');"
    "CREATE TABLE regions(name TEXT PRIMARY KEY COLLATE NOCASE, geography TEXT NOT NULL,"
    " paired TEXT NOT NULL DEFAULT '', display_name TEXT NOT NULL DEFAULT '');"
    "CREATE TABLE resource_groups(sub TEXT NOT NULL COLLATE NOCASE, name TEXT NOT NULL COLLATE NOCASE,"
    " region TEXT NOT NULL, PRIMARY KEY(sub, name));"
    /* applications (service principals) and user-assigned managed identities */
    "CREATE TABLE identities(object_id TEXT PRIMARY KEY COLLATE NOCASE,"
    " client_id TEXT NOT NULL UNIQUE COLLATE NOCASE, tenant TEXT NOT NULL COLLATE NOCASE,"
    " kind TEXT NOT NULL, name TEXT NOT NULL DEFAULT '', resource_id TEXT NOT NULL DEFAULT '' COLLATE NOCASE,"
    " secret TEXT);"
    "CREATE TABLE identity_certs(client_id TEXT NOT NULL COLLATE NOCASE, x5t TEXT NOT NULL,"
    " x5t256 TEXT NOT NULL, pem TEXT NOT NULL);"
    "CREATE TABLE federated_credentials(client_id TEXT NOT NULL COLLATE NOCASE, name TEXT NOT NULL DEFAULT '',"
    " issuer TEXT NOT NULL, subject TEXT NOT NULL, audiences TEXT NOT NULL);"
    /* trusted external token issuers (federated credentials): issuer -> JWKS JSON */
    "CREATE TABLE issuers(issuer TEXT PRIMARY KEY, jwks TEXT NOT NULL);"
    "CREATE TABLE role_assignments(name TEXT PRIMARY KEY COLLATE NOCASE, scope TEXT NOT NULL COLLATE NOCASE,"
    " role_guid TEXT NOT NULL COLLATE NOCASE, principal_id TEXT NOT NULL COLLATE NOCASE,"
    " principal_type TEXT NOT NULL DEFAULT 'ServicePrincipal', created_s INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE lro(id TEXT PRIMARY KEY, kind TEXT NOT NULL, resource_id TEXT NOT NULL, sub TEXT NOT NULL,"
    " status TEXT NOT NULL, start_ms INTEGER NOT NULL, done_ms INTEGER NOT NULL, input TEXT,"
    " result TEXT, err_code TEXT, err_msg TEXT);"
    "CREATE TABLE faults(id TEXT PRIMARY KEY, kind TEXT NOT NULL, host TEXT NOT NULL DEFAULT '',"
    " path_prefix TEXT NOT NULL DEFAULT '', method TEXT NOT NULL DEFAULT '', vault TEXT NOT NULL DEFAULT '' COLLATE NOCASE,"
    " region TEXT NOT NULL DEFAULT '' COLLATE NOCASE, object_id TEXT NOT NULL DEFAULT '' COLLATE NOCASE,"
    " status INTEGER NOT NULL DEFAULT 0, retry_after INTEGER NOT NULL DEFAULT 0,"
    " latency_ms INTEGER NOT NULL DEFAULT 0, remaining INTEGER NOT NULL DEFAULT -1,"
    " fired INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE request_log(seq INTEGER PRIMARY KEY AUTOINCREMENT, ts_ms INTEGER NOT NULL,"
    " method TEXT NOT NULL, host TEXT NOT NULL, path TEXT NOT NULL, query TEXT NOT NULL,"
    " status INTEGER NOT NULL, oid TEXT NOT NULL, family TEXT NOT NULL, note TEXT NOT NULL);"
    /* Microsoft.Sql resources from the seed, for the SQL provider */
    "CREATE TABLE sql_servers(id TEXT PRIMARY KEY COLLATE NOCASE, sub TEXT NOT NULL COLLATE NOCASE,"
    " rg TEXT NOT NULL COLLATE NOCASE, name TEXT NOT NULL COLLATE NOCASE, region TEXT NOT NULL, body TEXT NOT NULL);"
    "CREATE TABLE sql_managed_instances(id TEXT PRIMARY KEY COLLATE NOCASE, sub TEXT NOT NULL COLLATE NOCASE,"
    " rg TEXT NOT NULL COLLATE NOCASE, name TEXT NOT NULL COLLATE NOCASE, region TEXT NOT NULL, body TEXT NOT NULL);",
    /* 2 */
    /* a multi-tenant application's service principals in tenants other than
     * its home tenant (consented there): the object id it acts as in each */
    "CREATE TABLE service_principals(client_id TEXT NOT NULL COLLATE NOCASE, tenant TEXT NOT NULL COLLATE NOCASE,"
    " object_id TEXT NOT NULL UNIQUE COLLATE NOCASE, PRIMARY KEY(client_id, tenant));",
    NULL};

static const char *const keyvault_steps[] = {
    /* 1 */
    "CREATE TABLE vaults(name TEXT PRIMARY KEY COLLATE NOCASE, sub TEXT NOT NULL COLLATE NOCASE,"
    " rg TEXT NOT NULL COLLATE NOCASE, region TEXT NOT NULL, tenant TEXT NOT NULL COLLATE NOCASE,"
    " soft_delete INTEGER NOT NULL, purge_protection INTEGER NOT NULL, rbac INTEGER NOT NULL,"
    " retention_days INTEGER NOT NULL, sku TEXT NOT NULL DEFAULT 'standard', tags TEXT NOT NULL DEFAULT '{}');"
    "CREATE TABLE access_policies(vault TEXT NOT NULL COLLATE NOCASE, object_id TEXT NOT NULL COLLATE NOCASE,"
    " tenant TEXT NOT NULL, keys TEXT NOT NULL DEFAULT '[]', secrets TEXT NOT NULL DEFAULT '[]',"
    " certificates TEXT NOT NULL DEFAULT '[]', PRIMARY KEY(vault, object_id));"
    /* one row per key version; der = PKCS#8 private key (never leaves except in backups) */
    "CREATE TABLE kv_keys(vault TEXT NOT NULL COLLATE NOCASE, name TEXT NOT NULL COLLATE NOCASE,"
    " version TEXT NOT NULL, seq INTEGER NOT NULL, kty TEXT NOT NULL, key_ops TEXT NOT NULL,"
    " tags TEXT, enabled INTEGER NOT NULL, nbf INTEGER, exp INTEGER, created INTEGER NOT NULL,"
    " updated INTEGER NOT NULL, der BLOB NOT NULL, thumbprint TEXT NOT NULL,"
    " PRIMARY KEY(vault, name, version));"
    "CREATE INDEX kv_keys_seq ON kv_keys(vault, name, seq);"
    /* a key name present here is soft-deleted (its versions stay in kv_keys) */
    "CREATE TABLE kv_deleted(vault TEXT NOT NULL COLLATE NOCASE, name TEXT NOT NULL COLLATE NOCASE,"
    " deleted INTEGER NOT NULL, purge INTEGER NOT NULL, PRIMARY KEY(vault, name));"
    "CREATE TABLE kv_rotation_policies(vault TEXT NOT NULL COLLATE NOCASE, name TEXT NOT NULL COLLATE NOCASE,"
    " body TEXT NOT NULL, created INTEGER NOT NULL, updated INTEGER NOT NULL, PRIMARY KEY(vault, name));",
    NULL};

static const emu_schema core_schema = {"core", core_steps};
static const emu_schema keyvault_schema = {"keyvault", keyvault_steps};

/* Add a provider's schema here (one line). */
const emu_schema *const emu_schemas[] = {&core_schema, &keyvault_schema, &emu_sql_schema, NULL};

/* ---- helpers ---- */

sqlite3_stmt *emu_sql(emu *e, const char *sql) {
  sqlite3_stmt *st = NULL;
  if(sqlite3_prepare_v2(e->db, sql, -1, &st, NULL) != SQLITE_OK) {
    SQ_ERROR("emulator", "sqlite prepare failed: %s (%s)", sqlite3_errmsg(e->db), sql);
    return NULL;
  }
  return st;
}

sq_code emu_exec(emu *e, const char *sql, sq_err *err) {
  char *msg = NULL;
  if(sqlite3_exec(e->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
    sq_err_set(err, SQ_EIO, "sqlite: %s", msg ? msg : sqlite3_errmsg(e->db));
    sqlite3_free(msg);
    return SQ_EIO;
  }
  return SQ_OK;
}

const char *emu_col_text(sqlite3_stmt *st, int i) {
  const unsigned char *t = sqlite3_column_text(st, i);
  return t ? (const char *)t : "";
}

int emu_sql_text(emu *e, char *out, size_t n, const char *sql, ...) {
  sqlite3_stmt *st = emu_sql(e, sql);
  if(!st)
    return 0;
  va_list ap;
  va_start(ap, sql);
  const char *v;
  for(int i = 1; (v = va_arg(ap, const char *)) != NULL; i++)
    sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
  va_end(ap);
  int found = sqlite3_step(st) == SQLITE_ROW;
  if(found)
    snprintf(out, n, "%s", emu_col_text(st, 0));
  sqlite3_finalize(st);
  return found;
}

sq_code emu_meta_get(emu *e, const char *k, sq_buf *out) {
  sqlite3_stmt *st = emu_sql(e, "SELECT v FROM meta WHERE k=?");
  if(!st)
    return SQ_EIO;
  sqlite3_bind_text(st, 1, k, -1, SQLITE_STATIC);
  sq_code rc = SQ_ENOTFOUND;
  if(sqlite3_step(st) == SQLITE_ROW) {
    const void *v = sqlite3_column_blob(st, 0);
    int n = sqlite3_column_bytes(st, 0);
    rc = sq_buf_add(out, v ? v : "", (size_t)n);
  }
  sqlite3_finalize(st);
  return rc;
}

sq_code emu_meta_set(emu *e, const char *k, const void *v, size_t n) {
  sqlite3_stmt *st = emu_sql(e, "INSERT OR REPLACE INTO meta(k, v) VALUES(?, ?)");
  if(!st)
    return SQ_EIO;
  sqlite3_bind_text(st, 1, k, -1, SQLITE_STATIC);
  sqlite3_bind_blob(st, 2, v, (int)n, SQLITE_STATIC);
  int r = sqlite3_step(st);
  sqlite3_finalize(st);
  return r == SQLITE_DONE ? SQ_OK : SQ_EIO;
}

sq_code emu_migrate(emu *e, sq_err *err) {
  sq_code rc = emu_exec(e, "CREATE TABLE IF NOT EXISTS schema_versions(component TEXT PRIMARY KEY,"
                           " version INTEGER NOT NULL)", err);
  if(rc)
    return rc;
  for(int i = 0; emu_schemas[i]; i++) {
    const emu_schema *s = emu_schemas[i];
    int have = 0;
    sqlite3_stmt *st = emu_sql(e, "SELECT version FROM schema_versions WHERE component=?");
    if(!st)
      return sq_err_set(err, SQ_EIO, "sqlite: cannot read schema versions");
    sqlite3_bind_text(st, 1, s->component, -1, SQLITE_STATIC);
    if(sqlite3_step(st) == SQLITE_ROW)
      have = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    int total = 0;
    while(s->steps[total])
      total++;
    if(have > total)
      return sq_err_set(err, SQ_EINVAL,
                        "state.db component %s is at version %d, newer than this emulator (%d)",
                        s->component, have, total);
    for(int v = have; v < total; v++) {
      if((rc = emu_exec(e, "BEGIN IMMEDIATE", err)))
        return rc;
      rc = emu_exec(e, s->steps[v], err);
      if(!rc) {
        char sql[256];
        snprintf(sql, sizeof sql,
                 "INSERT OR REPLACE INTO schema_versions(component, version) VALUES('%s', %d)",
                 s->component, v + 1);
        rc = emu_exec(e, sql, err);
      }
      if(rc) {
        emu_exec(e, "ROLLBACK", NULL);
        return sq_err_prefix(err, "migrating %s to version %d", s->component, v + 1);
      }
      if((rc = emu_exec(e, "COMMIT", err)))
        return rc;
    }
  }
  return SQ_OK;
}

/* ---- settings ---- */

void emu_settings_default(emu_settings *s) {
  memset(s, 0, sizeof *s);
  s->token_lifetime_s = 3600;
  s->lro_delay_ms = 2000;
  s->lro_retry_after_s = 1;
  /* ARM's regional token buckets (2024): reads 250/25 s, writes and deletes 200/10 s */
  s->throttle[EMU_OP_READ] = (emu_bucket_cfg){250, 25};
  s->throttle[EMU_OP_WRITE] = (emu_bucket_cfg){200, 10};
  s->throttle[EMU_OP_DELETE] = (emu_bucket_cfg){200, 10};
  s->throttle_enabled = 1;
  s->arm_authorization = 1;
}

static int num(const json_t *v, double *out) {
  if(json_is_integer(v)) {
    *out = (double)json_integer_value(v);
    return 1;
  }
  if(json_is_real(v)) {
    *out = json_real_value(v);
    return 1;
  }
  return 0;
}

sq_code emu_settings_apply(emu_settings *s, const json_t *obj, sq_err *err) {
  if(!json_is_object(obj))
    return sq_err_set(err, SQ_EINVAL, "settings must be an object");
  emu_settings n = *s;
  const char *k;
  json_t *v;
  double d;
  json_object_foreach((json_t *)obj, k, v) {
    if(!strcmp(k, "tokenLifetimeSeconds")) {
      if(!num(v, &d) || d < 1 || d > 86400 * 365)
        return sq_err_set(err, SQ_EINVAL, "tokenLifetimeSeconds must be 1..31536000");
      n.token_lifetime_s = (int64_t)d;
    } else if(!strcmp(k, "lroDelaySeconds") || !strcmp(k, "lroDelayMs")) {
      if(!num(v, &d) || d < 0 || d > 86400e3)
        return sq_err_set(err, SQ_EINVAL, "%s out of range", k);
      n.lro_delay_ms = (int64_t)(strcmp(k, "lroDelayMs") ? d * 1000 : d);
    } else if(!strcmp(k, "lroRetryAfterSeconds")) {
      if(!num(v, &d) || d < 0 || d > 3600)
        return sq_err_set(err, SQ_EINVAL, "lroRetryAfterSeconds must be 0..3600");
      n.lro_retry_after_s = (int64_t)d;
    } else if(!strcmp(k, "armAuthorization")) {
      if(!json_is_boolean(v))
        return sq_err_set(err, SQ_EINVAL, "armAuthorization must be a boolean");
      n.arm_authorization = json_is_true(v);
    } else if(!strcmp(k, "throttle")) {
      if(!json_is_object(v))
        return sq_err_set(err, SQ_EINVAL, "throttle must be an object");
      static const char *const kinds[EMU_OP_KINDS] = {"reads", "writes", "deletes"};
      const char *tk;
      json_t *tv;
      json_object_foreach(v, tk, tv) {
        if(!strcmp(tk, "enabled")) {
          if(!json_is_boolean(tv))
            return sq_err_set(err, SQ_EINVAL, "throttle.enabled must be a boolean");
          n.throttle_enabled = json_is_true(tv);
          continue;
        }
        int kind = -1;
        for(int i = 0; i < EMU_OP_KINDS; i++)
          if(!strcmp(tk, kinds[i]))
            kind = i;
        if(kind < 0 || !json_is_object(tv))
          return sq_err_set(err, SQ_EINVAL, "throttle.%s: expected reads|writes|deletes: {burst, perSecond}", tk);
        double b = n.throttle[kind].burst, r = n.throttle[kind].rate;
        json_t *bv = json_object_get(tv, "burst"), *rv = json_object_get(tv, "perSecond");
        if((bv && (!num(bv, &b) || b < 1 || b > 1e6)) || (rv && (!num(rv, &r) || r <= 0 || r > 1e6)))
          return sq_err_set(err, SQ_EINVAL, "throttle.%s: burst >= 1 and perSecond > 0 required", tk);
        n.throttle[kind] = (emu_bucket_cfg){b, r};
      }
    } else {
      return sq_err_set(err, SQ_EINVAL, "unknown setting '%s'", k);
    }
  }
  *s = n;
  return SQ_OK;
}

json_t *emu_settings_json(const emu_settings *s) {
  json_t *t = json_object();
  static const char *const kinds[EMU_OP_KINDS] = {"reads", "writes", "deletes"};
  for(int i = 0; i < EMU_OP_KINDS; i++)
    json_object_set_new(t, kinds[i], json_pack("{s:f,s:f}", "burst", s->throttle[i].burst,
                                                "perSecond", s->throttle[i].rate));
  json_object_set_new(t, "enabled", json_boolean(s->throttle_enabled));
  return json_pack("{s:I,s:I,s:I,s:o,s:b}", "tokenLifetimeSeconds", (json_int_t)s->token_lifetime_s,
                   "lroDelayMs", (json_int_t)s->lro_delay_ms, "lroRetryAfterSeconds",
                   (json_int_t)s->lro_retry_after_s, "throttle", t, "armAuthorization",
                   s->arm_authorization);
}

sq_code emu_settings_save(emu *e) {
  json_t *j = emu_settings_json(&e->set);
  char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  if(!s)
    return SQ_ENOMEM;
  sq_code rc = emu_meta_set(e, "settings", s, strlen(s));
  free(s);
  return rc;
}

/* ---- clock ---- */

static int64_t real_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t emu_now_ms(const emu *e) { return real_wall_ms() + e->clock_offset_ms; }

static int64_t vclock_wall_s(void *ud) { return emu_now_s((const emu *)ud); }
static int64_t vclock_mono_ms(void *ud) {
  (void)ud;
  return sq_mono_ms();
}

sq_code emu_clock_advance(emu *e, int64_t ms, sq_err *err) {
  if(ms < 0 || ms > (int64_t)1000 * 86400 * 366 * 20)
    return sq_err_set(err, SQ_EINVAL, "the clock only moves forward, by at most 20 years");
  e->clock_offset_ms += ms;
  char v[32];
  int n = snprintf(v, sizeof v, "%lld", (long long)e->clock_offset_ms);
  return emu_meta_set(e, "clock_offset_ms", v, (size_t)n);
}

/* ---- keys kept in state ---- */

static sq_code load_or_make_token_key(emu *e, sq_err *err) {
  sq_buf pem;
  sq_buf_init(&pem, 64 * 1024);
  sq_code rc = emu_meta_get(e, "token_key", &pem);
  if(rc == SQ_OK) {
    BIO *bio = BIO_new_mem_buf(pem.ptr, (int)pem.len);
    e->token_key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    sq_buf_free_wipe(&pem);
    if(!e->token_key)
      return sq_err_set(err, SQ_EPARSE, "state.db: token signing key unreadable");
  } else {
    sq_buf_free(&pem);
    e->token_key = EVP_RSA_gen(2048);
    if(!e->token_key)
      return sq_err_set(err, SQ_ENOMEM, "cannot generate the token signing key");
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL;
    long n = 0;
    if(!bio || !PEM_write_bio_PrivateKey(bio, e->token_key, NULL, NULL, 0, NULL, NULL) ||
       (n = BIO_get_mem_data(bio, &data)) <= 0) {
      BIO_free(bio);
      return sq_err_set(err, SQ_EIO, "cannot encode the token signing key");
    }
    rc = emu_meta_set(e, "token_key", data, (size_t)n);
    BIO_free(bio);
    if(rc)
      return sq_err_set(err, rc, "cannot store the token signing key");
  }
  /* kid: base64url(SHA-1(SubjectPublicKeyInfo DER)), like Entra's x5t-style kids */
  unsigned char *der = NULL;
  int dn = i2d_PUBKEY(e->token_key, &der);
  if(dn <= 0)
    return sq_err_set(err, SQ_EIO, "cannot encode the token public key");
  unsigned char md[SHA_DIGEST_LENGTH];
  SHA1(der, (size_t)dn, md);
  OPENSSL_free(der);
  sq_buf kid;
  sq_buf_init(&kid, sizeof e->token_kid - 1);
  rc = sq_b64_encode(md, sizeof md, 1, &kid);
  if(!rc)
    snprintf(e->token_kid, sizeof e->token_kid, "%s", kid.ptr);
  sq_buf_free(&kid);
  return rc;
}

static sq_code load_or_make_backup_key(emu *e, sq_err *err) {
  sq_buf b;
  sq_buf_init(&b, 64);
  sq_code rc = emu_meta_get(e, "backup_key", &b);
  if(rc == SQ_OK && b.len == sizeof e->backup_key) {
    memcpy(e->backup_key, b.ptr, sizeof e->backup_key);
  } else {
    if(RAND_bytes(e->backup_key, sizeof e->backup_key) != 1) {
      sq_buf_free_wipe(&b);
      return sq_err_set(err, SQ_EIO, "RAND_bytes failed");
    }
    rc = emu_meta_set(e, "backup_key", e->backup_key, sizeof e->backup_key);
  }
  sq_buf_free_wipe(&b);
  return rc ? sq_err_set(err, rc, "cannot store the backup key") : SQ_OK;
}

sq_code emu_open(emu *e, const char *db_path, sq_err *err) {
  memset(e, 0, sizeof *e);
  pthread_mutex_init(&e->mu, NULL);
  emu_settings_default(&e->set);
  e->vclock = (sq_clock){vclock_mono_ms, vclock_wall_s, e};
  sq_code rc;
  if(sqlite3_open_v2(db_path, &e->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
    rc = sq_err_set(err, SQ_EIO, "cannot open %s: %s", db_path,
                    e->db ? sqlite3_errmsg(e->db) : "out of memory");
    goto fail;
  }
  sqlite3_busy_timeout(e->db, 5000);
  if((rc = emu_exec(e, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", err)))
    goto fail;
  if((rc = emu_migrate(e, err)))
    goto fail;
  if((rc = load_or_make_token_key(e, err)) || (rc = load_or_make_backup_key(e, err)))
    goto fail;
  sq_buf b;
  sq_buf_init(&b, 64 * 1024);
  if(emu_meta_get(e, "clock_offset_ms", &b) == SQ_OK)
    e->clock_offset_ms = strtoll(b.ptr, NULL, 10);
  sq_buf_reset(&b);
  if(emu_meta_get(e, "settings", &b) == SQ_OK) {
    json_t *j = json_loadb(b.ptr, b.len, 0, NULL);
    if(j)
      emu_settings_apply(&e->set, j, NULL);
    json_decref(j);
  }
  sq_buf_free(&b);
  return SQ_OK;
fail:
  emu_close(e);
  return rc;
}

void emu_close(emu *e) {
  if(e->db)
    sqlite3_close(e->db);
  e->db = NULL;
  EVP_PKEY_free(e->token_key);
  e->token_key = NULL;
  sq_wipe(e->backup_key, sizeof e->backup_key);
  while(e->buckets) {
    emu_bucket *n = e->buckets->next;
    free(e->buckets);
    e->buckets = n;
  }
  pthread_mutex_destroy(&e->mu);
}
