/* seed.c — the seed file: YAML (libyaml) converted to JSON, validated
 * strictly (unknown fields are errors, so typos surface) and stored in one
 * transaction. The same JSON shape is accepted at run time by
 * POST /_emulator/seed. Format: tests/azure-emulator/README.md. */
#include <ctype.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "emu.h"
#include "sqltde/jsonx.h"
#include "sqltde/log.h"

#define SEED_MAX_BYTES (4u << 20)
#define SEED_MAX_DEPTH 64

/* ---- YAML -> JSON ---- */

static json_t *scalar_value(const yaml_event_t *ev) {
  const char *s = (const char *)ev->data.scalar.value;
  size_t n = ev->data.scalar.length;
  if(ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
    return json_stringn(s, n);
  if(n == 0 || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL"))
    return json_null();
  if(!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
    return json_true();
  if(!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
    return json_false();
  char *end = NULL;
  if(isdigit((unsigned char)s[0]) || ((s[0] == '-' || s[0] == '+') && isdigit((unsigned char)s[1]))) {
    long long v = strtoll(s, &end, 10);
    if(end && !*end && (size_t)(end - s) == n)
      return json_integer(v);
    double d = strtod(s, &end);
    if(end && !*end && (size_t)(end - s) == n)
      return json_real(d);
  }
  return json_stringn(s, n);
}

sq_code emu_yaml_to_json(const char *data, size_t len, json_t **out, sq_err *err) {
  *out = NULL;
  yaml_parser_t p;
  if(!yaml_parser_initialize(&p))
    return sq_err_set(err, SQ_ENOMEM, "yaml: cannot initialise the parser");
  yaml_parser_set_input_string(&p, (const unsigned char *)data, len);
  json_t *stack[SEED_MAX_DEPTH];
  char *keys[SEED_MAX_DEPTH]; /* pending mapping key per level */
  int depth = 0, docs = 0, done = 0;
  json_t *root = NULL;
  sq_code rc = SQ_OK;
  memset(keys, 0, sizeof keys);
  while(!done) {
    yaml_event_t ev;
    if(!yaml_parser_parse(&p, &ev)) {
      rc = sq_err_set(err, SQ_EPARSE, "yaml: %s at line %zu column %zu", p.problem ? p.problem : "syntax error",
                      p.problem_mark.line + 1, p.problem_mark.column + 1);
      break;
    }
    json_t *v = NULL;
    int push = 0;
    switch(ev.type) {
    case YAML_STREAM_END_EVENT:
      done = 1;
      break;
    case YAML_DOCUMENT_START_EVENT:
      if(++docs > 1)
        rc = sq_err_set(err, SQ_EPARSE, "yaml: the seed must be a single document");
      break;
    case YAML_ALIAS_EVENT:
      rc = sq_err_set(err, SQ_EPARSE, "yaml: aliases are not supported (line %zu)", ev.start_mark.line + 1);
      break;
    case YAML_SCALAR_EVENT:
      if(depth > 0 && json_is_object(stack[depth - 1]) && !keys[depth - 1]) {
        keys[depth - 1] = strndup((const char *)ev.data.scalar.value, ev.data.scalar.length);
        if(!keys[depth - 1])
          rc = sq_err_set(err, SQ_ENOMEM, "out of memory");
      } else {
        v = scalar_value(&ev);
      }
      break;
    case YAML_SEQUENCE_START_EVENT:
      v = json_array();
      push = 1;
      break;
    case YAML_MAPPING_START_EVENT:
      v = json_object();
      push = 1;
      break;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
      depth--;
      break;
    default:
      break;
    }
    if(!rc && v) {
      if(depth == 0) {
        json_decref(root);
        root = json_incref(v);
      } else if(json_is_array(stack[depth - 1])) {
        json_array_append(stack[depth - 1], v);
      } else if(keys[depth - 1]) {
        if(json_object_get(stack[depth - 1], keys[depth - 1]))
          rc = sq_err_set(err, SQ_EPARSE, "yaml: duplicate key '%s' (line %zu)", keys[depth - 1], ev.start_mark.line + 1);
        else
          json_object_set(stack[depth - 1], keys[depth - 1], v);
        free(keys[depth - 1]);
        keys[depth - 1] = NULL;
      } else {
        rc = sq_err_set(err, SQ_EPARSE, "yaml: mapping keys must be scalars (line %zu)", ev.start_mark.line + 1);
      }
      if(!rc && push) {
        if(depth >= SEED_MAX_DEPTH)
          rc = sq_err_set(err, SQ_EPARSE, "yaml: nested deeper than %d levels", SEED_MAX_DEPTH);
        else
          stack[depth++] = v;
      }
      json_decref(v); /* the parent (or root) holds its own reference */
    } else {
      json_decref(v);
    }
    yaml_event_delete(&ev);
    if(rc)
      break;
  }
  for(int i = 0; i < SEED_MAX_DEPTH; i++)
    free(keys[i]);
  yaml_parser_delete(&p);
  if(rc) {
    json_decref(root);
    return rc;
  }
  *out = root ? root : json_null();
  return SQ_OK;
}

/* ---- validation helpers ---- */

typedef struct seedctx {
  emu *e;
  const char *base_dir;
  sq_err *err;
} seedctx;

static int check_keys(seedctx *s, const json_t *obj, const char *what, const char *const *allowed) {
  if(!json_is_object(obj)) {
    sq_err_set(s->err, SQ_EINVAL, "%s must be a mapping", what);
    return -1;
  }
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)obj, k, v) {
    int ok = 0;
    for(const char *const *a = allowed; *a; a++)
      if(!strcmp(*a, k))
        ok = 1;
    if(!ok) {
      sq_err_set(s->err, SQ_EINVAL, "%s: unknown field '%s'", what, k);
      return -1;
    }
  }
  return 0;
}

/* Required (or optional, def != NULL) string field. */
static const char *str(seedctx *s, const json_t *obj, const char *what, const char *k, const char *def) {
  json_t *v = json_object_get(obj, k);
  if(!v || json_is_null(v)) {
    if(!def)
      sq_err_set(s->err, SQ_EINVAL, "%s: '%s' is required", what, k);
    return def;
  }
  if(!json_is_string(v) || !json_string_length(v) || json_string_length(v) > 1000) {
    sq_err_set(s->err, SQ_EINVAL, "%s: '%s' must be a non-empty string", what, k);
    return NULL;
  }
  return json_string_value(v);
}

static int boolean(seedctx *s, const json_t *obj, const char *what, const char *k, int def, int *out) {
  json_t *v = json_object_get(obj, k);
  *out = def;
  if(!v || json_is_null(v))
    return 0;
  if(!json_is_boolean(v)) {
    sq_err_set(s->err, SQ_EINVAL, "%s: '%s' must be true or false", what, k);
    return -1;
  }
  *out = json_is_true(v);
  return 0;
}

static json_t *list(seedctx *s, const json_t *seed, const char *k) {
  json_t *v = json_object_get(seed, k);
  if(v && !json_is_array(v) && !json_is_null(v)) {
    sq_err_set(s->err, SQ_EINVAL, "'%s' must be a list", k);
    return NULL;
  }
  return v;
}

static int guid_field(seedctx *s, const char *what, const char *k, const char *v) {
  if(!emu_is_guid(v)) {
    sq_err_set(s->err, SQ_EINVAL, "%s: '%s' must be a GUID (got '%.64s')", what, k, v);
    return -1;
  }
  return 0;
}

static int run(seedctx *s, const char *sql, const char *const *vals, int n) {
  sqlite3_stmt *st = emu_sql(s->e, sql);
  if(!st) {
    sq_err_set(s->err, SQ_EIO, "state error (%s)", sqlite3_errmsg(s->e->db));
    return -1;
  }
  for(int i = 0; i < n; i++) {
    if(vals[i])
      sqlite3_bind_text(st, i + 1, vals[i], -1, SQLITE_TRANSIENT);
    else
      sqlite3_bind_null(st, i + 1);
  }
  int r = sqlite3_step(st);
  sqlite3_finalize(st);
  if(r != SQLITE_DONE) {
    sq_err_set(s->err, SQ_EINVAL, "cannot store seed entry: %s", sqlite3_errmsg(s->e->db));
    return -1;
  }
  return 0;
}

static int exists(seedctx *s, const char *sql, const char *a, const char *b) {
  sqlite3_stmt *st = emu_sql(s->e, sql);
  if(!st)
    return 0;
  sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
  if(b)
    sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
  int r = sqlite3_step(st) == SQLITE_ROW;
  sqlite3_finalize(st);
  return r;
}

static int read_rel_file(seedctx *s, const char *what, const char *name, sq_buf *out) {
  char path[4096];
  if(name[0] == '/' || !s->base_dir)
    snprintf(path, sizeof path, "%s", name);
  else
    snprintf(path, sizeof path, "%s/%s", s->base_dir, name);
  sq_err e2;
  if(sq_buf_read_file(out, path, &e2)) {
    sq_err_set(s->err, SQ_EIO, "%s: cannot read '%s': %s", what, path, e2.message);
    return -1;
  }
  return 0;
}

/* ---- sections ---- */

static int seed_tenants(seedctx *s, const json_t *seed) {
  static const char *const allowed[] = {"id", "name", NULL};
  json_t *l = list(s, seed, "tenants"), *t;
  size_t i;
  json_array_foreach(l, i, t) {
    const char *id, *name;
    if(check_keys(s, t, "tenants[]", allowed) || !(id = str(s, t, "tenants[]", "id", NULL)) ||
       guid_field(s, "tenants[]", "id", id) || !(name = str(s, t, "tenants[]", "name", "")))
      return -1;
    const char *v[] = {id, name};
    if(run(s, "INSERT OR REPLACE INTO tenants(id, name) VALUES(?,?)", v, 2))
      return -1;
  }
  return 0;
}

static int seed_subscriptions(seedctx *s, const json_t *seed) {
  static const char *const allowed[] = {"id", "tenant", "name", NULL};
  json_t *l = list(s, seed, "subscriptions"), *t;
  size_t i;
  json_array_foreach(l, i, t) {
    const char *id, *tenant, *name;
    if(check_keys(s, t, "subscriptions[]", allowed) || !(id = str(s, t, "subscriptions[]", "id", NULL)) ||
       guid_field(s, "subscriptions[]", "id", id) || !(tenant = str(s, t, "subscriptions[]", "tenant", NULL)) ||
       !(name = str(s, t, "subscriptions[]", "name", "")))
      return -1;
    if(!exists(s, "SELECT 1 FROM tenants WHERE id=?", tenant, NULL)) {
      sq_err_set(s->err, SQ_EINVAL, "subscriptions[%s]: unknown tenant '%s'", id, tenant);
      return -1;
    }
    const char *v[] = {id, tenant, name};
    if(run(s, "INSERT OR REPLACE INTO subscriptions(id, tenant, name) VALUES(?,?,?)", v, 3))
      return -1;
  }
  return 0;
}

static int seed_regions(seedctx *s, const json_t *seed) {
  static const char *const allowed[] = {"name", "geography", "pairedRegion", "displayName", NULL};
  json_t *l = list(s, seed, "regions"), *t;
  size_t i;
  json_array_foreach(l, i, t) {
    const char *name, *geo, *paired, *disp;
    if(check_keys(s, t, "regions[]", allowed) || !(name = str(s, t, "regions[]", "name", NULL)) ||
       !(geo = str(s, t, "regions[]", "geography", NULL)) || !(paired = str(s, t, "regions[]", "pairedRegion", "")) ||
       !(disp = str(s, t, "regions[]", "displayName", name)))
      return -1;
    const char *v[] = {name, geo, paired, disp};
    if(run(s, "INSERT OR REPLACE INTO regions(name, geography, paired, display_name) VALUES(?,?,?,?)", v, 4))
      return -1;
  }
  return 0;
}

static int check_region(seedctx *s, const char *what, const char *region) {
  if(!exists(s, "SELECT 1 FROM regions WHERE name=?", region, NULL)) {
    sq_err_set(s->err, SQ_EINVAL, "%s: unknown region '%s' (list it under regions:)", what, region);
    return -1;
  }
  return 0;
}

static int check_rg(seedctx *s, const char *what, const char *sub, const char *rg) {
  if(!exists(s, "SELECT 1 FROM resource_groups WHERE sub=? AND name=?", sub, rg)) {
    sq_err_set(s->err, SQ_EINVAL, "%s: unknown resource group '%s' in subscription '%s'", what, rg, sub);
    return -1;
  }
  return 0;
}

static int seed_resource_groups(seedctx *s, const json_t *seed) {
  static const char *const allowed[] = {"subscription", "name", "location", NULL};
  json_t *l = list(s, seed, "resourceGroups"), *t;
  size_t i;
  json_array_foreach(l, i, t) {
    const char *sub, *name, *loc;
    if(check_keys(s, t, "resourceGroups[]", allowed) || !(sub = str(s, t, "resourceGroups[]", "subscription", NULL)) ||
       !(name = str(s, t, "resourceGroups[]", "name", NULL)) || !(loc = str(s, t, "resourceGroups[]", "location", NULL)) ||
       check_region(s, "resourceGroups[]", loc))
      return -1;
    if(!exists(s, "SELECT 1 FROM subscriptions WHERE id=?", sub, NULL)) {
      sq_err_set(s->err, SQ_EINVAL, "resourceGroups[%s]: unknown subscription '%s'", name, sub);
      return -1;
    }
    const char *v[] = {sub, name, loc};
    if(run(s, "INSERT OR REPLACE INTO resource_groups(sub, name, region) VALUES(?,?,?)", v, 3))
      return -1;
  }
  return 0;
}

static int seed_identities(seedctx *s, const json_t *seed) {
  static const char *const allowed[] = {"type", "name", "tenant", "clientId", "objectId", "principalId",
                                        "subscription", "resourceGroup", "resourceId", "clientSecret",
                                        "certificates", "federatedCredentials", "servicePrincipals", NULL};
  static const char *const cert_allowed[] = {"pem", "file", NULL};
  static const char *const sp_allowed[] = {"tenant", "objectId", NULL};
  static const char *const fic_allowed[] = {"name", "issuer", "subject", "audiences", NULL};
  json_t *l = list(s, seed, "identities"), *t;
  size_t i;
  json_array_foreach(l, i, t) {
    const char *w = "identities[]";
    const char *type, *name, *tenant, *cid, *oid, *secret, *rid;
    if(check_keys(s, t, w, allowed) || !(type = str(s, t, w, "type", NULL)) || !(name = str(s, t, w, "name", NULL)) ||
       !(tenant = str(s, t, w, "tenant", NULL)) || !(cid = str(s, t, w, "clientId", NULL)) ||
       guid_field(s, w, "clientId", cid))
      return -1;
    int umi = !strcmp(type, "userAssigned");
    if(!umi && strcmp(type, "application")) {
      sq_err_set(s->err, SQ_EINVAL, "identities[%s]: type must be application or userAssigned", name);
      return -1;
    }
    oid = str(s, t, w, umi ? "principalId" : "objectId", NULL);
    if(!oid && !(oid = str(s, t, w, umi ? "objectId" : "principalId", NULL)))
      return sq_err_set(s->err, SQ_EINVAL, "identities[%s]: %s is required", name, umi ? "principalId" : "objectId"), -1;
    if(guid_field(s, w, "objectId", oid))
      return -1;
    if(!exists(s, "SELECT 1 FROM tenants WHERE id=?", tenant, NULL)) {
      sq_err_set(s->err, SQ_EINVAL, "identities[%s]: unknown tenant '%s'", name, tenant);
      return -1;
    }
    char ridbuf[1024] = "";
    rid = str(s, t, w, "resourceId", "");
    if(umi && !*rid) {
      const char *sub = str(s, t, w, "subscription", NULL), *rg = sub ? str(s, t, w, "resourceGroup", NULL) : NULL;
      if(!sub || !rg)
        return sq_err_set(s->err, SQ_EINVAL,
                          "identities[%s]: a userAssigned identity needs resourceId or subscription + resourceGroup", name),
               -1;
      snprintf(ridbuf, sizeof ridbuf,
               "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.ManagedIdentity/userAssignedIdentities/%s", sub,
               rg, name);
      rid = ridbuf;
    }
    secret = str(s, t, w, "clientSecret", "");
    if(*secret && umi)
      return sq_err_set(s->err, SQ_EINVAL, "identities[%s]: managed identities have no client secret", name), -1;
    const char *v[] = {oid, cid, tenant, type, name, rid, *secret ? secret : NULL};
    if(run(s, "DELETE FROM identities WHERE client_id=? AND object_id<>?", (const char *const[]){cid, oid}, 2) ||
       run(s, "INSERT OR REPLACE INTO identities(object_id, client_id, tenant, kind, name, resource_id, secret)"
              " VALUES(?,?,?,?,?,?,?)",
           v, 7) ||
       run(s, "DELETE FROM identity_certs WHERE client_id=?", &cid, 1) ||
       run(s, "DELETE FROM federated_credentials WHERE client_id=?", &cid, 1) ||
       run(s, "DELETE FROM service_principals WHERE client_id=?", &cid, 1))
      return -1;
    /* multi-tenant application: a service principal (own object id) in each
     * other tenant that consented to it; tokens asked in that tenant carry it */
    json_t *sps = json_object_get(t, "servicePrincipals"), *sp;
    size_t q;
    if(sps && (umi || !json_is_array(sps)))
      return sq_err_set(s->err, SQ_EINVAL, "identities[%s]: servicePrincipals must be a list (applications only)", name), -1;
    json_array_foreach(sps, q, sp) {
      const char *sw = "identities[].servicePrincipals[]", *stid, *soid;
      if(check_keys(s, sp, sw, sp_allowed) || !(stid = str(s, sp, sw, "tenant", NULL)) ||
         !(soid = str(s, sp, sw, "objectId", NULL)) || guid_field(s, sw, "objectId", soid))
        return -1;
      if(!exists(s, "SELECT 1 FROM tenants WHERE id=?", stid, NULL) || !strcasecmp(stid, tenant))
        return sq_err_set(s->err, SQ_EINVAL, "identities[%s].servicePrincipals[]: tenant '%s' is unknown or the home tenant",
                          name, stid),
               -1;
      const char *spv[] = {cid, stid, soid};
      if(run(s, "INSERT OR REPLACE INTO service_principals(client_id, tenant, object_id) VALUES(?,?,?)", spv, 3))
        return -1;
    }
    json_t *certs = json_object_get(t, "certificates"), *c;
    size_t k;
    if(certs && !json_is_array(certs))
      return sq_err_set(s->err, SQ_EINVAL, "identities[%s]: certificates must be a list", name), -1;
    json_array_foreach(certs, k, c) {
      if(check_keys(s, c, "identities[].certificates[]", cert_allowed))
        return -1;
      sq_buf pem;
      sq_buf_init(&pem, 1u << 20);
      const char *p = str(s, c, "certificates[]", "pem", "");
      const char *f = str(s, c, "certificates[]", "file", "");
      if(*p)
        sq_buf_adds(&pem, p);
      else if(!*f || read_rel_file(s, "certificates[]", f, &pem)) {
        sq_buf_free(&pem);
        if(!*f)
          sq_err_set(s->err, SQ_EINVAL, "identities[%s].certificates[]: pem or file is required", name);
        return -1;
      }
      char x5t[64], x5t256[64];
      sq_err e2;
      if(emu_cert_x5t(pem.ptr, x5t, sizeof x5t, x5t256, sizeof x5t256, &e2)) {
        sq_buf_free_wipe(&pem);
        return sq_err_set(s->err, SQ_EINVAL, "identities[%s].certificates[]: %s", name, e2.message), -1;
      }
      /* keep only the certificate: a PEM file may also hold the private key */
      BIO *in = BIO_new_mem_buf(pem.ptr, (int)pem.len), *outb = BIO_new(BIO_s_mem());
      X509 *x = in ? PEM_read_bio_X509(in, NULL, NULL, NULL) : NULL;
      char *cp = NULL;
      long cl = x && outb && PEM_write_bio_X509(outb, x) ? BIO_get_mem_data(outb, &cp) : 0;
      char *certpem = cl > 0 ? malloc((size_t)cl + 1) : NULL; /* BIO memory is not NUL-terminated */
      if(certpem) {
        memcpy(certpem, cp, (size_t)cl);
        certpem[cl] = '\0';
      }
      X509_free(x);
      BIO_free(in);
      BIO_free(outb);
      sq_buf_free_wipe(&pem);
      if(!certpem)
        return sq_err_set(s->err, SQ_ENOMEM, "identities[%s].certificates[]: cannot re-encode", name), -1;
      const char *cv[] = {cid, x5t, x5t256, certpem};
      int r = run(s, "INSERT INTO identity_certs(client_id, x5t, x5t256, pem) VALUES(?,?,?,?)", cv, 4);
      free(certpem);
      if(r)
        return -1;
    }
    json_t *fics = json_object_get(t, "federatedCredentials"), *fc;
    if(fics && !json_is_array(fics))
      return sq_err_set(s->err, SQ_EINVAL, "identities[%s]: federatedCredentials must be a list", name), -1;
    json_array_foreach(fics, k, fc) {
      const char *fw = "identities[].federatedCredentials[]", *iss, *sub, *fname;
      if(check_keys(s, fc, fw, fic_allowed) || !(iss = str(s, fc, fw, "issuer", NULL)) ||
         !(sub = str(s, fc, fw, "subject", NULL)) || !(fname = str(s, fc, fw, "name", "")))
        return -1;
      json_t *auds = json_object_get(fc, "audiences");
      json_t *a = auds ? json_deep_copy(auds) : json_pack("[s]", "api://AzureADTokenExchange");
      size_t m;
      json_t *x;
      int bad = !json_is_array(a) || !json_array_size(a);
      json_array_foreach(a, m, x) if(!json_is_string(x)) bad = 1;
      char *as = bad ? NULL : json_dumps(a, JSON_COMPACT);
      json_decref(a);
      if(!as)
        return sq_err_set(s->err, SQ_EINVAL, "%s: audiences must be a non-empty list of strings", fw), -1;
      const char *fv[] = {cid, fname, iss, sub, as};
      int r = run(s, "INSERT INTO federated_credentials(client_id, name, issuer, subject, audiences) VALUES(?,?,?,?,?)",
                  fv, 5);
      free(as);
      if(r)
        return -1;
    }
  }
  return 0;
}

static int seed_issuers(seedctx *s, const json_t *seed) {
  static const char *const allowed[] = {"issuer", "jwks", "jwksFile", "publicKeyFile", "publicKeyPem", "kid", NULL};
  json_t *l = list(s, seed, "issuers"), *t;
  size_t i;
  json_array_foreach(l, i, t) {
    const char *w = "issuers[]", *iss;
    if(check_keys(s, t, w, allowed) || !(iss = str(s, t, w, "issuer", NULL)))
      return -1;
    json_t *jwks = NULL;
    const char *jf = str(s, t, w, "jwksFile", ""), *pf = str(s, t, w, "publicKeyFile", "");
    const char *pp = str(s, t, w, "publicKeyPem", ""), *kid = str(s, t, w, "kid", "");
    if(json_object_get(t, "jwks")) {
      jwks = json_deep_copy(json_object_get(t, "jwks"));
    } else if(*jf || *pf || *pp) {
      sq_buf b;
      sq_buf_init(&b, 1u << 20);
      if(*pp)
        sq_buf_adds(&b, pp);
      else if(read_rel_file(s, w, *jf ? jf : pf, &b)) {
        sq_buf_free(&b);
        return -1;
      }
      if(*jf) {
        jwks = json_loadb(b.ptr, b.len, 0, NULL);
      } else {
        BIO *bio = BIO_new_mem_buf(b.ptr, (int)b.len);
        EVP_PKEY *pk = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);
        json_t *k = pk && EVP_PKEY_get_base_id(pk) == EVP_PKEY_RSA ? emu_rsa_public_jwk(pk) : NULL;
        EVP_PKEY_free(pk);
        if(k && *kid)
          json_object_set_new(k, "kid", json_string(kid));
        jwks = k ? json_pack("{s:[o]}", "keys", k) : NULL;
      }
      sq_buf_free(&b);
    }
    if(!json_is_array(json_object_get(jwks, "keys"))) {
      json_decref(jwks);
      return sq_err_set(s->err, SQ_EINVAL, "issuers[%s]: give jwks {keys: [...]}, jwksFile, publicKeyFile or publicKeyPem (RSA)", iss),
             -1;
    }
    char *js = json_dumps(jwks, JSON_COMPACT);
    json_decref(jwks);
    const char *v[] = {iss, js};
    int r = js ? run(s, "INSERT OR REPLACE INTO issuers(issuer, jwks) VALUES(?,?)", v, 2) : -1;
    free(js);
    if(r)
      return -1;
  }
  return 0;
}

static int seed_vaults(seedctx *s, const json_t *seed) {
  static const char *const allowed[] = {"name", "subscription", "resourceGroup", "location", "tenant",
                                        "enableSoftDelete", "softDeleteRetentionInDays", "enablePurgeProtection",
                                        "enableRbacAuthorization", "sku", "tags", "accessPolicies", "keys", NULL};
  static const char *const ap_allowed[] = {"objectId", "tenantId", "keys", "secrets", "certificates", "permissions", NULL};
  json_t *l = list(s, seed, "vaults"), *t;
  size_t i;
  json_array_foreach(l, i, t) {
    const char *w = "vaults[]", *name, *sub, *rg, *loc, *tenant, *sku;
    if(check_keys(s, t, w, allowed) || !(name = str(s, t, w, "name", NULL)) || !(sub = str(s, t, w, "subscription", NULL)) ||
       !(rg = str(s, t, w, "resourceGroup", NULL)) || !(loc = str(s, t, w, "location", NULL)) ||
       !(sku = str(s, t, w, "sku", "standard")) || check_region(s, w, loc) || check_rg(s, w, sub, rg))
      return -1;
    size_t nl = strlen(name);
    int okname = nl >= 3 && nl <= 24;
    for(size_t k = 0; okname && k < nl; k++)
      okname = isalnum((unsigned char)name[k]) || name[k] == '-';
    if(!okname)
      return sq_err_set(s->err, SQ_EINVAL, "vaults[%s]: names are 3-24 characters of 0-9, a-z, A-Z and '-'", name), -1;
    char subtenant[EMU_ID_MAX];
    emu_subscription_tenant(s->e, sub, subtenant);
    if(!(tenant = str(s, t, w, "tenant", subtenant)))
      return -1;
    int sd, pp, rbac;
    if(boolean(s, t, w, "enableSoftDelete", 1, &sd) || boolean(s, t, w, "enablePurgeProtection", 0, &pp) ||
       boolean(s, t, w, "enableRbacAuthorization", 0, &rbac))
      return -1;
    json_t *rd = json_object_get(t, "softDeleteRetentionInDays");
    int days = rd ? (int)json_integer_value(rd) : 90;
    if(rd && (!json_is_integer(rd) || days < 7 || days > 90))
      return sq_err_set(s->err, SQ_EINVAL, "vaults[%s]: softDeleteRetentionInDays must be 7..90", name), -1;
    if(pp && !sd)
      return sq_err_set(s->err, SQ_EINVAL, "vaults[%s]: purge protection requires soft delete", name), -1;
    char sds[4], pps[4], rbs[4], dys[8];
    snprintf(sds, sizeof sds, "%d", sd);
    snprintf(pps, sizeof pps, "%d", pp);
    snprintf(rbs, sizeof rbs, "%d", rbac);
    snprintf(dys, sizeof dys, "%d", days);
    json_t *tags = json_object_get(t, "tags");
    char *ts = tags ? json_dumps(tags, JSON_COMPACT) : strdup("{}");
    const char *v[] = {name, sub, rg, loc, tenant, sds, pps, rbs, dys, sku, ts};
    int r = run(s, "INSERT OR REPLACE INTO vaults(name, sub, rg, region, tenant, soft_delete, purge_protection, rbac,"
                   " retention_days, sku, tags) VALUES(?,?,?,?,?,?,?,?,?,?,?)",
                v, 11);
    free(ts);
    if(r || run(s, "DELETE FROM access_policies WHERE vault=?", &name, 1))
      return -1;
    json_t *aps = json_object_get(t, "accessPolicies"), *ap;
    size_t k;
    if(aps && !json_is_array(aps))
      return sq_err_set(s->err, SQ_EINVAL, "vaults[%s]: accessPolicies must be a list", name), -1;
    json_array_foreach(aps, k, ap) {
      const char *aw = "vaults[].accessPolicies[]", *oid, *tid;
      if(check_keys(s, ap, aw, ap_allowed) || !(oid = str(s, ap, aw, "objectId", NULL)) || guid_field(s, aw, "objectId", oid) ||
         !(tid = str(s, ap, aw, "tenantId", tenant)))
        return -1;
      /* permissions either flat (keys: [...]) or ARM-shaped (permissions: {keys: [...]}) */
      const json_t *perms = json_object_get(ap, "permissions") ? json_object_get(ap, "permissions") : ap;
      const char *kinds[] = {"keys", "secrets", "certificates"};
      char *pv[3];
      for(int m = 0; m < 3; m++) {
        json_t *pl = json_object_get(perms, kinds[m]);
        size_t q;
        json_t *x;
        int bad = pl && !json_is_array(pl);
        json_array_foreach(pl, q, x) if(!json_is_string(x)) bad = 1;
        if(bad) {
          for(int z = 0; z < m; z++)
            free(pv[z]);
          return sq_err_set(s->err, SQ_EINVAL, "%s: %s must be a list of permission names", aw, kinds[m]), -1;
        }
        pv[m] = pl ? json_dumps(pl, JSON_COMPACT) : strdup("[]");
      }
      const char *av[] = {name, oid, tid, pv[0], pv[1], pv[2]};
      r = run(s, "INSERT OR REPLACE INTO access_policies(vault, object_id, tenant, keys, secrets, certificates)"
                 " VALUES(?,?,?,?,?,?)",
              av, 6);
      for(int m = 0; m < 3; m++)
        free(pv[m]);
      if(r)
        return -1;
    }
    json_t *keys = json_object_get(t, "keys"), *key;
    if(keys && !json_is_array(keys))
      return sq_err_set(s->err, SQ_EINVAL, "vaults[%s]: keys must be a list", name), -1;
    json_array_foreach(keys, k, key) {
      if(emu_kv_seed_key(s->e, name, key, s->base_dir, s->err))
        return -1;
    }
  }
  return 0;
}

static int seed_role_assignments(seedctx *s, const json_t *seed) {
  static const char *const allowed[] = {"scope", "role", "principalId", "principalType", "name", NULL};
  json_t *l = list(s, seed, "roleAssignments"), *t;
  size_t i;
  json_array_foreach(l, i, t) {
    const char *w = "roleAssignments[]", *scope, *role, *pid, *ptype, *name;
    if(check_keys(s, t, w, allowed) || !(scope = str(s, t, w, "scope", NULL)) || !(role = str(s, t, w, "role", NULL)) ||
       !(pid = str(s, t, w, "principalId", NULL)) || guid_field(s, w, "principalId", pid) ||
       !(ptype = str(s, t, w, "principalType", "ServicePrincipal")))
      return -1;
    const char *rg = emu_role_guid(role);
    if(!rg)
      return sq_err_set(s->err, SQ_EINVAL, "roleAssignments[]: unknown role '%s' (a built-in role name or id)", role), -1;
    if(strncasecmp(scope, "/subscriptions/", 15) && strcmp(scope, "/"))
      return sq_err_set(s->err, SQ_EINVAL, "roleAssignments[]: scope must start with /subscriptions/ (got '%s')", scope), -1;
    char gen[37];
    emu_guid(gen);
    if(!(name = str(s, t, w, "name", gen)) || guid_field(s, w, "name", name))
      return -1;
    char created[32];
    snprintf(created, sizeof created, "%lld", (long long)emu_now_s(s->e));
    const char *v[] = {name, scope, rg, pid, ptype, created};
    if(run(s, "INSERT OR REPLACE INTO role_assignments(name, scope, role_guid, principal_id, principal_type, created_s)"
              " VALUES(?,?,?,?,?,?)",
           v, 6))
      return -1;
  }
  return 0;
}

/* servers / managedInstances: stored as given (plus computed ids) for the SQL provider. */
static int seed_sql(seedctx *s, const json_t *seed, const char *key, const char *table, const char *type) {
  json_t *l = list(s, seed, key), *t;
  size_t i;
  json_array_foreach(l, i, t) {
    const char *name, *sub, *rg, *loc;
    if(!json_is_object(t))
      return sq_err_set(s->err, SQ_EINVAL, "%s[] must be mappings", key), -1;
    if(!(name = str(s, t, key, "name", NULL)) || !(sub = str(s, t, key, "subscription", NULL)) ||
       !(rg = str(s, t, key, "resourceGroup", NULL)) || !(loc = str(s, t, key, "location", NULL)) ||
       check_region(s, key, loc) || check_rg(s, key, sub, rg))
      return -1;
    char id[1024], sql[256];
    snprintf(id, sizeof id, "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Sql/%s/%s", sub, rg, type, name);
    char *body = json_dumps(t, JSON_COMPACT | JSON_SORT_KEYS);
    const char *v[] = {id, sub, rg, name, loc, body};
    snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO %s(id, sub, rg, name, region, body) VALUES(?,?,?,?,?,?)", table);
    int r = body ? run(s, sql, v, 6) : -1;
    free(body);
    if(r)
      return -1;
  }
  return 0;
}

sq_code emu_seed_apply(emu *e, const json_t *seed, const char *base_dir, sq_err *err) {
  static const char *const allowed[] = {"settings", "tenants", "subscriptions", "regions", "resourceGroups",
                                        "identities", "issuers", "vaults", "roleAssignments", "servers",
                                        "managedInstances", NULL};
  seedctx s = {e, base_dir, err};
  if(json_is_null(seed))
    return SQ_OK;
  if(check_keys(&s, seed, "seed", allowed))
    return SQ_EINVAL;
  sq_code rc = emu_exec(e, "SAVEPOINT seed", err);
  if(rc)
    return rc;
  emu_settings saved = e->set;
  json_t *set = json_object_get(seed, "settings");
  if((set && (rc = emu_settings_apply(&e->set, set, err))) || seed_tenants(&s, seed) || seed_subscriptions(&s, seed) ||
     seed_regions(&s, seed) || seed_resource_groups(&s, seed) || seed_identities(&s, seed) || seed_issuers(&s, seed) ||
     seed_vaults(&s, seed) || seed_role_assignments(&s, seed) ||
     seed_sql(&s, seed, "servers", "sql_servers", "servers") ||
     seed_sql(&s, seed, "managedInstances", "sql_managed_instances", "managedInstances")) {
    emu_exec(e, "ROLLBACK TO seed; RELEASE seed", NULL);
    e->set = saved;
    return err && err->code ? err->code : SQ_EINVAL;
  }
  if(set)
    emu_settings_save(e);
  return emu_exec(e, "RELEASE seed", err);
}

sq_code emu_seed_load_file(emu *e, const char *path, sq_err *err) {
  sq_buf b;
  sq_buf_init(&b, SEED_MAX_BYTES);
  sq_code rc = sq_buf_read_file(&b, path, err);
  if(rc) {
    sq_buf_free(&b);
    return rc;
  }
  json_t *seed = NULL;
  rc = emu_yaml_to_json(b.ptr ? b.ptr : "", b.len, &seed, err);
  sq_buf_free(&b);
  if(rc)
    return sq_err_prefix(err, "%s", path);
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if(slash)
    *slash = '\0';
  else
    snprintf(dir, sizeof dir, ".");
  rc = emu_seed_apply(e, seed, dir, err);
  json_decref(seed);
  if(rc)
    return sq_err_prefix(err, "%s", path);
  return SQ_OK;
}
