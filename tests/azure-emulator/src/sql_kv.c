/* sql_kv.c — how the Microsoft.Sql provider reaches Key Vault: as the
 * identity Azure SQL would use (database UMI, server identity, cross-tenant
 * app), against the emulator's own vault state, with the same outcome the
 * vault would give that identity (outage, 403, soft-deleted, disabled,
 * expired), except that permission changes reach SQL only after the
 * propagation delay (azure-api.md §5: ~10 minutes). Also the mapping of each
 * failure to the documented ARM error code (azure-api.md §3.4) and the
 * service-managed TDE key. */
#include <ctype.h>
#include <stdarg.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kvcrypto.h"
#include "sql.h"
#include "sqltde/jsonx.h"
#include "sqltde/log.h"

/* Messages and ids are built into fixed buffers on purpose (bounded memory for
 * anything derived from requests); truncating an over-long one is intended. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

void sqlkv_key_free(sqlkv_key *k) {
  EVP_PKEY_free(k->pkey);
  memset(k, 0, sizeof *k);
}

/* ---- URIs ---- */

static int ends_with_ci(const char *s, size_t n, const char *suffix) {
  size_t l = strlen(suffix);
  return n > l && !strncasecmp(s + n - l, suffix, l);
}

int sqlkv_parse_uri(const char *uri, sqlkv_ref *out) {
  memset(out, 0, sizeof *out);
  if(!uri || strncasecmp(uri, "https://", 8))
    return 0;
  const char *h = uri + 8, *slash = strchr(h, '/');
  if(!slash)
    return 0;
  size_t hl = (size_t)(slash - h);
  const char *colon = memchr(h, ':', hl);
  if(colon) {
    for(const char *p = colon + 1; p < slash; p++)
      if(!isdigit((unsigned char)*p))
        return 0;
    hl = (size_t)(colon - h);
  }
  size_t vl;
  if(ends_with_ci(h, hl, ".vault.localhost"))
    vl = hl - strlen(".vault.localhost");
  else if(ends_with_ci(h, hl, ".vault.azure.net"))
    vl = hl - strlen(".vault.azure.net");
  else
    return 0;
  if(vl < 3 || vl > 24)
    return 0;
  for(size_t i = 0; i < vl; i++)
    if(!isalnum((unsigned char)h[i]) && h[i] != '-')
      return 0;
  memcpy(out->vault, h, vl);
  out->vault[vl] = '\0';
  const char *p = slash;
  if(strncasecmp(p, "/keys/", 6))
    return 0;
  p += 6;
  size_t nl = strcspn(p, "/?#");
  if(nl < 1 || nl > 127)
    return 0;
  for(size_t i = 0; i < nl; i++)
    if(!isalnum((unsigned char)p[i]) && p[i] != '-')
      return 0;
  memcpy(out->name, p, nl);
  out->name[nl] = '\0';
  p += nl;
  if(*p == '/') {
    p++;
    size_t vl2 = strcspn(p, "/?#");
    if(vl2 >= sizeof out->version)
      return 0;
    for(size_t i = 0; i < vl2; i++)
      if(!isalnum((unsigned char)p[i]))
        return 0;
    memcpy(out->version, p, vl2);
    out->version[vl2] = '\0';
    p += vl2;
    if(*p == '/')
      p++;
  }
  return *p == '\0';
}

void sqlkv_uri(emu *e, const sqlkv_ref *r, char *out, size_t n) {
  char host[EMU_ID_MAX + 32];
  snprintf(host, sizeof host, "%s.vault.localhost", r->vault);
  for(char *p = host; *p; p++)
    *p = (char)tolower((unsigned char)*p);
  char base[256];
  emu_base_url(e, host, base, sizeof base);
  if(r->version[0])
    snprintf(out, n, "%s/keys/%s/%s", base, r->name, r->version);
  else
    snprintf(out, n, "%s/keys/%s", base, r->name);
}

/* ---- SQL's delayed view of permissions ---- */

static const struct {
  unsigned bit;
  const char *policy;
  const char *action;
} perm_tab[] = {
    {SQLKV_GET, "get", "Microsoft.KeyVault/vaults/keys/read"},
    {SQLKV_WRAP, "wrapKey", "Microsoft.KeyVault/vaults/keys/wrap/action"},
    {SQLKV_UNWRAP, "unwrapKey", "Microsoft.KeyVault/vaults/keys/unwrap/action"},
};

/* What the vault itself would allow right now. */
static unsigned actual_perms(emu *e, const emu_vault *v, const char *key_name, const char *oid) {
  if(emu_fault_revoked(e, v->name, oid))
    return 0;
  unsigned bits = 0;
  if(!v->rbac) {
    sqlite3_stmt *st = emu_sql(e, "SELECT keys FROM access_policies WHERE vault=? AND object_id=?");
    if(!st)
      return 0;
    sqlite3_bind_text(st, 1, v->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, oid, -1, SQLITE_STATIC);
    if(sqlite3_step(st) == SQLITE_ROW) {
      json_t *perms = json_loads(emu_col_text(st, 0), 0, NULL);
      size_t i;
      json_t *p;
      json_array_foreach(perms, i, p) {
        const char *s = json_string_value(p);
        if(!s)
          continue;
        for(size_t k = 0; k < sizeof perm_tab / sizeof perm_tab[0]; k++)
          if(!strcasecmp(s, perm_tab[k].policy) || !strcasecmp(s, "all"))
            bits |= perm_tab[k].bit;
      }
      json_decref(perms);
    }
    sqlite3_finalize(st);
    return bits;
  }
  char scope[1024];
  emu_vault_resource_id(v, scope, sizeof scope);
  size_t n = strlen(scope);
  snprintf(scope + n, sizeof scope - n, "/keys/%s", key_name);
  for(size_t k = 0; k < sizeof perm_tab / sizeof perm_tab[0]; k++)
    if(emu_rbac_allows(e, oid, scope, perm_tab[k].action, 1))
      bits |= perm_tab[k].bit;
  return bits;
}

static int64_t perm_delay(emu *e) {
  sql_settings s;
  sql_settings_load(e, &s);
  return s.permission_delay_ms;
}

typedef struct obs {
  int found;
  unsigned cur, prev;
  int64_t since_ms;
} obs;

static void obs_load(emu *e, const char *vault, const char *key, const char *oid, obs *o) {
  memset(o, 0, sizeof *o);
  sqlite3_stmt *st = emu_sql(e, "SELECT cur, prev, since_ms FROM sql_perm_obs WHERE vault=? AND key_name=? AND oid=?");
  if(!st)
    return;
  sqlite3_bind_text(st, 1, vault, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, oid, -1, SQLITE_STATIC);
  if(sqlite3_step(st) == SQLITE_ROW) {
    o->found = 1;
    o->cur = (unsigned)sqlite3_column_int(st, 0);
    o->prev = (unsigned)sqlite3_column_int(st, 1);
    o->since_ms = sqlite3_column_int64(st, 2);
  }
  sqlite3_finalize(st);
}

static void obs_store(emu *e, const char *vault, const char *key, const char *oid, const obs *o) {
  sqlite3_stmt *st = emu_sql(e, "INSERT OR REPLACE INTO sql_perm_obs(vault, key_name, oid, cur, prev, since_ms)"
                                " VALUES(?,?,?,?,?,?)");
  if(!st)
    return;
  sqlite3_bind_text(st, 1, vault, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, oid, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 4, (int)o->cur);
  sqlite3_bind_int(st, 5, (int)o->prev);
  sqlite3_bind_int64(st, 6, o->since_ms);
  sqlite3_step(st);
  sqlite3_finalize(st);
}

static unsigned obs_effective(const obs *o, int64_t now, int64_t delay) {
  return now - o->since_ms >= delay ? o->cur : o->prev;
}

/* Folds the vault's current answer into the observation. A pair seen for the
 * first time counts as long established (seeded state). */
static void observe(emu *e, const emu_vault *v, const char *key, const char *oid, int64_t now, int64_t delay,
                    obs *o) {
  unsigned a = actual_perms(e, v, key, oid);
  obs_load(e, v->name, key, oid, o);
  if(!o->found) {
    o->found = 1;
    o->cur = o->prev = a;
    o->since_ms = 0;
    obs_store(e, v->name, key, oid, o);
  } else if(o->cur != a) {
    o->prev = obs_effective(o, now, delay);
    o->cur = a;
    o->since_ms = now;
    obs_store(e, v->name, key, oid, o);
  }
}

void sqlkv_observe_permissions(emu *e) {
  /* Cheap change detection: a digest of everything permissions depend on. */
  sqlite3_stmt *st = emu_sql(
      e, "SELECT (SELECT group_concat(vault||'|'||object_id||'|'||keys, ';') FROM access_policies),"
         " (SELECT group_concat(scope||'|'||role_guid||'|'||principal_id, ';') FROM role_assignments),"
         " (SELECT group_concat(vault||'|'||object_id, ';') FROM faults WHERE kind='revoke'),"
         " (SELECT group_concat(object_id, ';') FROM identities) || '+' ||"
         " ifnull((SELECT group_concat(object_id, ';') FROM service_principals), ''),"
         " (SELECT group_concat(DISTINCT vault||'/'||name) FROM kv_keys),"
         " (SELECT group_concat(name||rbac, ';') FROM vaults)");
  if(!st)
    return;
  EVP_MD_CTX *mdc = EVP_MD_CTX_new();
  unsigned char md[SHA_DIGEST_LENGTH];
  unsigned mdlen = 0;
  int ok = mdc && EVP_DigestInit_ex(mdc, EVP_sha1(), NULL) == 1;
  if(ok && sqlite3_step(st) == SQLITE_ROW)
    for(int i = 0; i < 6 && ok; i++) {
      const char *t = emu_col_text(st, i);
      ok = EVP_DigestUpdate(mdc, t, strlen(t) + 1) == 1;
    }
  sqlite3_finalize(st);
  ok = ok && EVP_DigestFinal_ex(mdc, md, &mdlen) == 1 && mdlen == sizeof md;
  EVP_MD_CTX_free(mdc);
  if(!ok)
    return;
  sq_buf old;
  sq_buf_init(&old, 64);
  int same = emu_meta_get(e, "sql_perm_digest", &old) == SQ_OK && old.len == sizeof md && !memcmp(old.ptr, md, sizeof md);
  sq_buf_free(&old);
  if(same)
    return;
  int64_t now = emu_now_ms(e), delay = perm_delay(e);
  /* every identity (and multi-tenant service principal) x every key name */
  st = emu_sql(e, "SELECT DISTINCT k.vault, k.name, i.object_id FROM kv_keys k,"
                  " (SELECT object_id FROM identities UNION SELECT object_id FROM service_principals) i");
  if(st) {
    typedef struct trio {
      char vault[EMU_ID_MAX], key[EMU_ID_MAX], oid[EMU_ID_MAX];
    } trio;
    trio *t = NULL;
    size_t n = 0, cap = 0;
    while(sqlite3_step(st) == SQLITE_ROW && n < 100000) {
      if(n == cap) {
        cap = cap ? cap * 2 : 64;
        trio *nt = realloc(t, cap * sizeof *t);
        if(!nt)
          break;
        t = nt;
      }
      snprintf(t[n].vault, EMU_ID_MAX, "%s", emu_col_text(st, 0));
      snprintf(t[n].key, EMU_ID_MAX, "%s", emu_col_text(st, 1));
      snprintf(t[n].oid, EMU_ID_MAX, "%s", emu_col_text(st, 2));
      n++;
    }
    sqlite3_finalize(st);
    emu_vault v;
    char last[EMU_ID_MAX] = "";
    int have = 0;
    for(size_t i = 0; i < n; i++) {
      if(strcasecmp(last, t[i].vault)) {
        have = emu_vault_get(e, t[i].vault, &v);
        snprintf(last, sizeof last, "%s", t[i].vault);
      }
      if(!have)
        continue;
      obs o;
      observe(e, &v, t[i].key, t[i].oid, now, delay, &o);
    }
    free(t);
  }
  emu_meta_set(e, "sql_perm_digest", md, sizeof md);
}

static unsigned effective_perms(emu *e, const emu_vault *v, const char *key, const char *oid, int64_t *since_eff) {
  int64_t now = emu_now_ms(e), delay = perm_delay(e);
  obs o;
  observe(e, v, key, oid, now, delay, &o);
  *since_eff = o.since_ms ? o.since_ms + delay : 0;
  return obs_effective(&o, now, delay);
}

int sqlkv_permission_pending(emu *e, const sqlkv_ref *ref, const char *oid) {
  emu_vault v;
  if(!emu_vault_get(e, ref->vault, &v))
    return 0;
  int64_t now = emu_now_ms(e), delay = perm_delay(e);
  char toid[EMU_ID_MAX];
  emu_oid_in_tenant(e, oid ? oid : "", v.tenant, toid); /* a federated app acts as its principal there */
  obs o;
  observe(e, &v, ref->name, toid, now, delay, &o);
  return obs_effective(&o, now, delay) != o.cur;
}

/* ---- access ---- */

static int vault_down(emu *e, const emu_vault *v, int64_t *since) {
  sqlite3_stmt *st = emu_sql(e, "SELECT created_ms FROM faults WHERE remaining != 0 AND"
                                " ((kind='vaultDown' AND vault=?) OR (kind='regionDown' AND region=?))"
                                " ORDER BY created_ms LIMIT 1");
  if(!st)
    return 0;
  sqlite3_bind_text(st, 1, v->name, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, v->region, -1, SQLITE_STATIC);
  int r = sqlite3_step(st) == SQLITE_ROW;
  if(r)
    *since = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return r;
}

static int name_deleted(emu *e, const char *vault, const char *name, int64_t *when_s) {
  sqlite3_stmt *st = emu_sql(e, "SELECT deleted FROM kv_deleted WHERE vault=? AND name=?");
  if(!st)
    return 0;
  sqlite3_bind_text(st, 1, vault, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
  int r = sqlite3_step(st) == SQLITE_ROW;
  if(r)
    *when_s = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return r;
}

static sqlkv_status fail(sqlkv_fail *f, sqlkv_status st, int64_t cause, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static sqlkv_status fail(sqlkv_fail *f, sqlkv_status st, int64_t cause, const char *fmt, ...) {
  f->st = st;
  f->cause_ms = cause;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(f->detail, sizeof f->detail, fmt, ap);
  va_end(ap);
  return st;
}

#define KEY_ROW_COLS "version, seq, kty, enabled, nbf, exp, created, updated, der"

/* Loads a key version row; versionless = newest enabled. 1 found. */
static int load_row(emu *e, const sqlkv_ref *r, int *enabled, int64_t *nbf, int *has_nbf, int64_t *exp, int *has_exp,
                    int64_t *created, int64_t *updated, int64_t *seq, char kty[16], char version[40], EVP_PKEY **pkey) {
  sqlite3_stmt *st;
  if(r->version[0]) {
    st = emu_sql(e, "SELECT " KEY_ROW_COLS " FROM kv_keys WHERE vault=? AND name=? AND version=?");
    if(st)
      sqlite3_bind_text(st, 3, r->version, -1, SQLITE_STATIC);
  } else {
    st = emu_sql(e, "SELECT " KEY_ROW_COLS " FROM kv_keys WHERE vault=? AND name=? ORDER BY enabled DESC, seq DESC"
                    " LIMIT 1");
  }
  if(!st)
    return 0;
  sqlite3_bind_text(st, 1, r->vault, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, r->name, -1, SQLITE_STATIC);
  int ok = 0;
  if(sqlite3_step(st) == SQLITE_ROW) {
    snprintf(version, 40, "%s", emu_col_text(st, 0));
    *seq = sqlite3_column_int64(st, 1);
    snprintf(kty, 16, "%s", emu_col_text(st, 2));
    *enabled = sqlite3_column_int(st, 3);
    *has_nbf = sqlite3_column_type(st, 4) != SQLITE_NULL;
    *nbf = sqlite3_column_int64(st, 4);
    *has_exp = sqlite3_column_type(st, 5) != SQLITE_NULL;
    *exp = sqlite3_column_int64(st, 5);
    *created = sqlite3_column_int64(st, 6);
    *updated = sqlite3_column_int64(st, 7);
    ok = pkey ? kvc_from_der(sqlite3_column_blob(st, 8), (size_t)sqlite3_column_bytes(st, 8), pkey) == SQ_OK : 1;
  }
  sqlite3_finalize(st);
  return ok;
}

static int64_t newest_enabled_seq(emu *e, const sqlkv_ref *r) {
  sqlite3_stmt *st = emu_sql(e, "SELECT MAX(seq) FROM kv_keys WHERE vault=? AND name=? AND enabled=1");
  int64_t s = -1;
  if(!st)
    return -1;
  sqlite3_bind_text(st, 1, r->vault, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, r->name, -1, SQLITE_STATIC);
  if(sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
    s = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return s;
}

static sqlkv_status access_ref(emu *e, const sqlkv_ref *in, const char *oid, unsigned perms, int need_recovery,
                               sqlkv_key *out, sqlkv_fail *f) {
  memset(f, 0, sizeof *f);
  if(out)
    memset(out, 0, sizeof *out);
  emu_vault v;
  if(!emu_vault_get(e, in->vault, &v))
    return fail(f, SK_NOVAULT, 0, "The vault '%s' does not exist (its name does not resolve).", in->vault);
  f->rbac = v.rbac;
  if(need_recovery && !(v.soft_delete && v.purge_protection))
    return fail(f, SK_RECOVERY, 0,
                "The vault '%s' must have soft delete and purge protection enabled to hold a TDE protector.", v.name);
  int64_t since = 0;
  if(vault_down(e, &v, &since))
    return fail(f, SK_VAULT_DOWN, since, "The vault '%s' could not be reached (connection failed).", v.name);
  if(!oid || !*oid)
    return fail(f, SK_NOIDENTITY, 0, "No identity is configured to access the vault '%s'.", v.name);
  /* cross-tenant (federatedClientId): a multi-tenant application reaches a
   * vault in another tenant as its service principal in that tenant, so the
   * vault's grants (and revocations) name that principal's object id */
  char toid[EMU_ID_MAX];
  emu_oid_in_tenant(e, oid, v.tenant, toid);
  oid = toid;
  int64_t eff_since = 0;
  unsigned have = effective_perms(e, &v, in->name, oid, &eff_since);
  for(size_t k = 0; k < sizeof perm_tab / sizeof perm_tab[0]; k++)
    if((perms & perm_tab[k].bit) && !(have & perm_tab[k].bit)) {
      snprintf(f->perm, sizeof f->perm, "%s", perm_tab[k].policy);
      return fail(f, SK_DENIED, eff_since,
                  "The identity with object id '%s' does not have the '%s' permission on key '%s' in vault '%s'%s.",
                  oid, perm_tab[k].policy, in->name, v.name, v.rbac ? " (RBAC)" : " (access policy)");
    }
  int64_t del_s = 0;
  if(name_deleted(e, in->vault, in->name, &del_s))
    return fail(f, SK_DELETED, del_s * 1000,
                "The key '%s' in vault '%s' is deleted; recover it from the soft-deleted state.", in->name, v.name);
  int enabled = 0, has_nbf = 0, has_exp = 0;
  int64_t nbf = 0, exp = 0, created = 0, updated = 0, seq = 0;
  char kty[16] = "", version[40] = "";
  EVP_PKEY *pkey = NULL;
  if(!load_row(e, in, &enabled, &nbf, &has_nbf, &exp, &has_exp, &created, &updated, &seq, kty, version,
               out ? &pkey : NULL))
    return fail(f, SK_NOTFOUND, 0, "The key '%s%s%s' was not found in vault '%s'.", in->name, in->version[0] ? "/" : "",
                in->version, v.name);
  int64_t now_s = emu_now_s(e);
  sqlkv_status st = SK_OK;
  if(!enabled)
    st = fail(f, SK_DISABLED, updated * 1000, "The key '%s/%s' in vault '%s' is disabled.", in->name, version, v.name);
  else if(has_exp && exp <= now_s)
    st = fail(f, SK_EXPIRED, exp * 1000, "The key '%s/%s' in vault '%s' has expired.", in->name, version, v.name);
  else if(has_nbf && nbf > now_s)
    st = fail(f, SK_NOTYET, 0, "The key '%s/%s' in vault '%s' is not active yet (nbf).", in->name, version, v.name);
  else if(strcmp(kty, "RSA") && strcmp(kty, "RSA-HSM"))
    st = fail(f, SK_KEYTYPE, 0, "The key '%s' is of type %s; only RSA and RSA-HSM keys of 2048 or 3072 bits are supported.",
              in->name, kty);
  if(!st && pkey) {
    int bits = kvc_bits(pkey);
    if(bits != 2048 && bits != 3072)
      st = fail(f, SK_KEYTYPE, 0, "The key '%s' is RSA %d; only RSA 2048 and 3072 bits are supported.", in->name, bits);
  }
  if(st || !out) {
    EVP_PKEY_free(pkey);
    return st;
  }
  out->ref = *in;
  snprintf(out->ref.version, sizeof out->ref.version, "%s", version);
  snprintf(out->ref.vault, sizeof out->ref.vault, "%s", v.name); /* stored case */
  out->created_s = created;
  out->latest = seq == newest_enabled_seq(e, in);
  snprintf(out->region, sizeof out->region, "%s", v.region);
  out->pkey = pkey;
  if(sq_thumbprint_pkey(pkey, out->thumb, NULL)) {
    sqlkv_key_free(out);
    return fail(f, SK_KEYTYPE, 0, "The key '%s' has no usable RSA public material.", in->name);
  }
  return SK_OK;
}

sqlkv_status sqlkv_access(emu *e, const char *uri, const char *oid, unsigned perms, int need_recovery,
                          sqlkv_key *out, sqlkv_fail *f) {
  sqlkv_ref r;
  if(!sqlkv_parse_uri(uri, &r)) {
    memset(f, 0, sizeof *f);
    if(out)
      memset(out, 0, sizeof *out);
    return fail(f, SK_BADURI, 0, "'%.300s' is not a Key Vault key identifier (https://VAULT.vault.azure.net/keys/NAME/VERSION).",
                uri ? uri : "");
  }
  return access_ref(e, &r, oid, perms, need_recovery, out, f);
}

sqlkv_status sqlkv_latest(emu *e, const sqlkv_ref *ref, const char *oid, sqlkv_key *out, sqlkv_fail *f) {
  sqlkv_ref r = *ref;
  r.version[0] = '\0';
  return access_ref(e, &r, oid, SQLKV_ALL, 0, out, f);
}

int sqlkv_thumb_of(emu *e, const sqlkv_ref *ref, char thumb[SQ_THUMBPRINT_HEX_LEN + 1]) {
  int enabled, has_nbf, has_exp;
  int64_t nbf, exp, created, updated, seq;
  char kty[16], version[40];
  EVP_PKEY *pkey = NULL;
  if(!load_row(e, ref, &enabled, &nbf, &has_nbf, &exp, &has_exp, &created, &updated, &seq, kty, version, &pkey))
    return 0;
  int ok = sq_thumbprint_pkey(pkey, thumb, NULL) == SQ_OK;
  EVP_PKEY_free(pkey);
  return ok;
}

/* ---- wrap / unwrap ---- */

sq_code sqlkv_wrap(sqlkv_key *k, const unsigned char *dek, size_t n, sq_buf *out) {
  return kvc_rsa_encrypt(k->pkey, KVC_ALG_OAEP256, dek, n, out);
}

sq_code sqlkv_unwrap(sqlkv_key *k, const void *wrapped, size_t n, unsigned char dek[SQL_DEK_LEN]) {
  sq_buf b;
  sq_buf_init(&b, 1024);
  sq_code rc = kvc_rsa_decrypt(k->pkey, KVC_ALG_OAEP256, wrapped, n, &b);
  if(!rc && b.len != SQL_DEK_LEN)
    rc = SQ_EPARSE;
  if(!rc)
    memcpy(dek, b.ptr, SQL_DEK_LEN);
  sq_buf_free_wipe(&b);
  return rc;
}

sq_code sqlkv_service_key(emu *e, EVP_PKEY **out, char thumb[SQ_THUMBPRINT_HEX_LEN + 1]) {
  *out = NULL;
  sq_buf b;
  sq_buf_init(&b, 16384);
  sq_code rc = emu_meta_get(e, "sql_service_key", &b);
  if(rc == SQ_OK) {
    rc = kvc_from_der(b.ptr, b.len, out);
  } else {
    rc = kvc_generate(2048, out, NULL);
    if(!rc) {
      sq_buf_reset(&b);
      rc = kvc_to_der(*out, &b);
      if(!rc)
        rc = emu_meta_set(e, "sql_service_key", b.ptr, b.len);
    }
  }
  sq_buf_free_wipe(&b);
  if(!rc)
    rc = sq_thumbprint_pkey(*out, thumb, NULL);
  if(rc) {
    EVP_PKEY_free(*out);
    *out = NULL;
  }
  return rc;
}

/* ---- errors ---- */

int sqlkv_is_network(const sqlkv_fail *f) { return f->st == SK_VAULT_DOWN; }

#define TSHOOT " See https://aka.ms/sqlmi-tde-troubleshooting"

int sqlkv_error(const sqlkv_fail *f, sqlkv_ctx ctx, const char *uri, char code[128], char msg[512]) {
  const char *c = "AzureKeyVaultClientError";
  int status = 400;
  char m[512];
  const char *u = uri ? uri : "";
  switch(f->st) {
  case SK_OK:
    c = "";
    break;
  case SK_BADURI:
    c = "AzureKeyVaultInvalidUri";
    break;
  case SK_NOVAULT:
    c = "AzureKeyVaultMalformedVaultUri";
    break;
  case SK_VAULT_DOWN:
    c = ctx == SQLKV_CTX_MI ? "AkvEndpointNotReachableFromNode" : "AzureKeyVaultConnectionFailed";
    status = ctx == SQLKV_CTX_MI ? 400 : 503;
    break;
  case SK_DENIED:
    if(ctx == SQLKV_CTX_SERVER_UMI)
      c = "UmiMissingAkvPermissions";
    else if(ctx == SQLKV_CTX_SERVER)
      c = "AzureKeyVaultMissingPermissions";
    else
      c = f->rbac ? "AkvKeyOperationNotAllowedByRBAC" : "AkvKeyAccessDenied";
    break;
  case SK_NOTFOUND:
    c = "AzureKeyVaultKeyNameNotFound";
    status = 409;
    break;
  case SK_DELETED:
    c = "AkvKeyDeleted";
    break;
  case SK_DISABLED:
    c = "AzureKeyVaultKeyDisabled";
    break;
  case SK_EXPIRED:
  case SK_NOTYET:
    c = "AzureKeyVaultInvalidExpirationDate";
    break;
  case SK_KEYTYPE:
    c = "AzureKeyVaultRsaKeyNotSupported";
    break;
  case SK_RECOVERY:
    c = "SecurityInvalidAzureKeyVaultRecoveryLevel";
    break;
  case SK_NOIDENTITY:
    c = "AzureKeyVaultNoServerIdentity";
    break;
  case SK_CRYPTO:
    c = "AzureKeyVaultKeyThumbprintIsDifferent";
    break;
  }
  if(f->st == SK_DENIED)
    snprintf(m, sizeof m, "%s The identity needs get, wrapKey and unwrapKey on '%.300s' (access policy) or the role "
                          "'Key Vault Crypto Service Encryption User' (RBAC); permission changes take about 10 minutes "
                          "to reach Azure SQL." TSHOOT,
             f->detail, u);
  else
    snprintf(m, sizeof m, "%s%s", f->detail, f->st == SK_OK ? "" : TSHOOT);
  snprintf(code, 128, "%s", c);
  snprintf(msg, 512, "%s", m);
  return status;
}

void sqlkv_reply_error(emu_call *c, const sqlkv_fail *f, sqlkv_ctx ctx, const char *uri) {
  char code[128], msg[512];
  int status = sqlkv_error(f, ctx, uri, code, msg);
  emu_arm_error(c, status, code, "%s", msg);
}
