/* sql.c — typed Microsoft.Sql operations; see include/sqltde/azure/sql.h.
 *
 * Each resource type is described once by an sql_kind: a table of its
 * scalar fields, a hook for the nested parts (identity, keys, partners), how
 * to free it and how to call the caller's list callback. Parsing, GET, list
 * and PUT/PATCH are each written once over that description. */
#include "sqltde/azure/sql.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sqltde/azure/keyvault.h"
#include "sqltde/buf.h"
#include "sqltde/clock.h"
#include "sqltde/http.h"
#include "sqltde/jsonx.h"

#define API SQ_SQL_API_VERSION
/* Request paths. ARM itself refuses paths over 900 bytes (sq_arm_path_valid),
 * so this bound only keeps the buffer fixed, it never decides first. */
#define PATH_LEN 1024
#define COUNT(a) (sizeof(a) / sizeof *(a))

/* ---- field tables ---- */

typedef enum field_kind {
  F_ID,   /* string that must be present and non-empty */
  F_OBJ,  /* nothing stored: must be an object when present */
  F_STR,  /* char[size]; "" when absent or null */
  F_DATE, /* int64_t wall seconds from RFC 3339; 0 when absent */
  F_TRI,  /* int: 1/0 from a boolean, -1 otherwise */
  F_INT,  /* int from an integer, def otherwise */
} field_kind;

/* One JSON value copied into one member of an output struct. */
typedef struct sql_field {
  const char *path; /* dotted, from the object parsed (sq_json_path) */
  field_kind kind;
  size_t off, size; /* the member */
  int def;          /* F_INT only */
} sql_field;

#define FIELD_(kind, T, path, m, def) {(path), (kind), offsetof(T, m), sizeof(((T *)0)->m), (def)}
#define FID(T) FIELD_(F_ID, T, "id", id, 0)
#define FOBJ(path) {(path), F_OBJ, 0, 0, 0}
#define FSTR(T, path, m) FIELD_(F_STR, T, path, m, 0)
#define FDATE(T, path, m) FIELD_(F_DATE, T, path, m, 0)
#define FTRI(T, path, m) FIELD_(F_TRI, T, path, m, -1)
#define FINT(T, path, m, def) FIELD_(F_INT, T, path, m, def)

/* RFC 3339 date at path into *out (0 when absent). ARM sometimes omits the
 * zone designator; such values are UTC. */
static sq_code date_at(const json_t *obj, const char *path, int64_t *out, const char *what,
                       sq_err *err) {
  *out = 0;
  json_t *v = sq_json_path(obj, path);
  if(!v || json_is_null(v))
    return SQ_OK;
  if(!json_is_string(v))
    return sq_err_set(err, SQ_EPARSE, "%s: %s is not a date string", what, path);
  const char *s = json_string_value(v);
  int64_t t = sq_parse_rfc3339(s);
  if(t < 0 && strlen(s) < 60) {
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%sZ", s);
    t = sq_parse_rfc3339(tmp);
  }
  if(t < 0)
    return sq_err_set(err, SQ_EPARSE, "%s: %s is not an RFC 3339 date", what, path);
  *out = t;
  return SQ_OK;
}

/* The member width a kind writes (0: any, strings are bounded by size). */
static size_t kind_width(field_kind k) {
  switch(k) {
  case F_DATE:
    return sizeof(int64_t);
  case F_TRI:
  case F_INT:
    return sizeof(int);
  default:
    return 0;
  }
}

static sq_code apply_field(const json_t *obj, const sql_field *f, char *base, const char *what,
                           sq_err *err) {
  void *dst = base + f->off;
  json_t *v;
  sq_code rc;
  switch(f->kind) {
  case F_ID:
    rc = sq_azure_json_strcpy(obj, f->path, dst, f->size, what, err);
    if(!rc && !*(char *)dst)
      rc = sq_err_set(err, SQ_EPARSE, "%s: no id", what);
    return rc;
  case F_OBJ:
    v = sq_json_path(obj, f->path);
    if(v && !json_is_object(v))
      return sq_err_set(err, SQ_EPARSE, "%s: %s is not an object", what, f->path);
    return SQ_OK;
  case F_STR:
    return sq_azure_json_strcpy(obj, f->path, dst, f->size, what, err);
  case F_DATE:
    return date_at(obj, f->path, dst, what, err);
  case F_TRI:
    v = sq_json_path(obj, f->path);
    *(int *)dst = json_is_boolean(v) ? json_is_true(v) : -1;
    return SQ_OK;
  case F_INT:
    *(int *)dst = (int)sq_json_int(obj, f->path, f->def);
    return SQ_OK;
  }
  return sq_err_set(err, SQ_EINVAL, "%s: field %s has no kind", what, f->path);
}

/* Copies every field of the table from obj into the struct at out. */
static sq_code apply_fields(const json_t *obj, const sql_field *fields, size_t n, void *out,
                            const char *what, sq_err *err) {
  for(size_t i = 0; i < n; i++) {
    const sql_field *f = &fields[i];
    /* a table row naming a member of the wrong type would write out of bounds */
    if(kind_width(f->kind) && kind_width(f->kind) != f->size)
      return sq_err_set(err, SQ_EINVAL, "%s: field table: %s has the wrong member type", what,
                        f->path);
    sq_code rc = apply_field(obj, f, out, what, err);
    if(rc)
      return rc;
  }
  return SQ_OK;
}

/* ---- nested parts: identity, database keys ---- */

static const sql_field IDENTITY_FIELDS[] = {
    FSTR(sq_sql_identity, "type", type),
    FSTR(sq_sql_identity, "tenantId", tenant_id),
    FSTR(sq_sql_identity, "principalId", principal_id),
};

static const sql_field UMI_FIELDS[] = {
    FSTR(sq_sql_umi, "principalId", principal_id),
    FSTR(sq_sql_umi, "clientId", client_id),
};

static sq_code parse_identity(const json_t *j, sq_sql_identity *out, const char *what, sq_err *err) {
  memset(out, 0, sizeof *out);
  const json_t *idn = json_object_get(j, "identity");
  if(!idn || json_is_null(idn))
    return SQ_OK;
  if(!json_is_object(idn))
    return sq_err_set(err, SQ_EPARSE, "%s: identity is not an object", what);
  sq_code rc = apply_fields(idn, IDENTITY_FIELDS, COUNT(IDENTITY_FIELDS), out, what, err);
  if(rc)
    return rc;
  const json_t *umis = json_object_get(idn, "userAssignedIdentities");
  if(umis && !json_is_null(umis) && !json_is_object(umis))
    return sq_err_set(err, SQ_EPARSE, "%s: identity.userAssignedIdentities is not an object", what);
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)umis, k, v) {
    if(out->n_umis >= SQ_SQL_MAX_UMIS)
      return sq_err_set(err, SQ_ETOOBIG, "%s: more than %d user-assigned identities", what,
                        SQ_SQL_MAX_UMIS);
    sq_sql_umi *u = &out->umis[out->n_umis];
    if(strlen(k) >= sizeof u->id)
      return sq_err_set(err, SQ_ETOOBIG, "%s: identity id too long", what);
    snprintf(u->id, sizeof u->id, "%s", k);
    if(json_is_object(v) && (rc = apply_fields(v, UMI_FIELDS, COUNT(UMI_FIELDS), u, what, err)))
      return rc;
    out->n_umis++;
  }
  return SQ_OK;
}

static const sql_field DB_KEY_FIELDS[] = {
    FSTR(sq_sql_db_key, "type", type),
    FSTR(sq_sql_db_key, "thumbprint", thumbprint),
    FSTR(sq_sql_db_key, "subregion", subregion),
    FSTR(sq_sql_db_key, "keyVersion", key_version),
    FDATE(sq_sql_db_key, "creationDate", creation_date),
};

/* The "keys" map of a database's properties. *keys is owned by the caller's
 * struct as soon as it is allocated (freed with it, also on failure). */
static sq_code parse_keys(const json_t *props, sq_sql_db_key **keys, size_t *n, int *present,
                          const char *what, sq_err *err) {
  *keys = NULL;
  *n = 0;
  if(present)
    *present = 0;
  const json_t *m = json_object_get(props, "keys");
  if(!m || json_is_null(m))
    return SQ_OK;
  if(!json_is_object(m))
    return sq_err_set(err, SQ_EPARSE, "%s: properties.keys is not an object", what);
  if(present)
    *present = 1;
  size_t count = json_object_size(m);
  if(count > SQ_SQL_MAX_KEYS)
    return sq_err_set(err, SQ_ETOOBIG, "%s: more than %d keys", what, SQ_SQL_MAX_KEYS);
  if(!count)
    return SQ_OK;
  sq_sql_db_key *arr = calloc(count, sizeof *arr);
  if(!arr)
    return sq_err_set(err, SQ_ENOMEM, "out of memory");
  *keys = arr;
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)m, k, v) {
    sq_sql_db_key *dk = &arr[*n];
    if(strlen(k) >= sizeof dk->uri)
      return sq_err_set(err, SQ_ETOOBIG, "%s: key URI too long", what);
    snprintf(dk->uri, sizeof dk->uri, "%s", k);
    if(json_is_object(v)) {
      sq_code rc = apply_fields(v, DB_KEY_FIELDS, COUNT(DB_KEY_FIELDS), dk, what, err);
      if(rc)
        return rc;
    } else if(!json_is_null(v)) {
      return sq_err_set(err, SQ_EPARSE, "%s: keys entry is not an object", what);
    }
    (*n)++;
  }
  return SQ_OK;
}

static void free_keys(sq_sql_db_key **keys, size_t *n) {
  free(*keys);
  *keys = NULL;
  *n = 0;
}

/* ---- resource kinds ---- */

/* A caller's typed list callback (sq_sql_db_fn, ...), stored untyped; the
 * kind's call casts it back, as C may only call through the right type. */
typedef void (*sql_cb)(void);

typedef struct sql_kind {
  const char *what; /* names the resource in messages */
  size_t size;      /* of the output struct */
  const sql_field *fields;
  size_t n_fields;
  /* nested parts after the table, or NULL */
  sq_code (*extra)(const json_t *j, void *out, const char *what, sq_err *err);
  void (*release)(void *out);                          /* owned parts, or NULL */
  int (*call)(sql_cb fn, void *ud, const void *item);  /* list callback, or NULL */
} sql_kind;

/* Any output struct, for list items parsed on the stack. */
typedef union sql_any {
  sq_sql_database db;
  sq_sql_server server;
  sq_sql_server_key key;
  sq_sql_protector protector;
  sq_sql_repl_link repl;
  sq_sql_fog fog;
  sq_sql_dropped_db dropped;
  sq_sql_ltr_backup ltr;
} sql_any;

/* Zeroes out and sets the "absent" values (-1 tri-states, F_INT defaults). */
static void kind_reset(const sql_kind *k, void *out) {
  memset(out, 0, k->size);
  for(size_t i = 0; i < k->n_fields; i++) {
    const sql_field *f = &k->fields[i];
    if(f->kind == F_TRI || f->kind == F_INT)
      *(int *)((char *)out + f->off) = f->def;
  }
}

/* Resets out (so it is defined on every path) and returns rc. */
static sq_code kind_fail(const sql_kind *k, void *out, sq_code rc) {
  kind_reset(k, out);
  return rc;
}

/* The public *_parse: resets out, fills it; on failure nothing stays owned. */
static sq_code kind_parse(const sql_kind *k, const json_t *j, void *out, sq_err *err) {
  kind_reset(k, out);
  if(!json_is_object(j))
    return sq_err_set(err, SQ_EPARSE, "%s: not a JSON object", k->what);
  sq_code rc = apply_fields(j, k->fields, k->n_fields, out, k->what, err);
  if(!rc && k->extra)
    rc = k->extra(j, out, k->what, err);
  if(rc && k->release)
    k->release(out);
  return rc;
}

/* ---- requests ---- */

static sq_code child_path(const char *parent, const char *suffix, char *out, size_t outlen,
                          sq_err *err) {
  if(snprintf(out, outlen, "%s%s", parent ? parent : "", suffix) >= (int)outlen)
    return sq_err_set(err, SQ_EINVAL, "resource id too long for %s", suffix[0] ? suffix : "a path");
  return SQ_OK;
}

/* Runs call; *body (if body is non-NULL) receives the final body, owned. */
static sq_code call_arm(sq_arm *a, const sq_arm_call *call, json_t **body, sq_err *err) {
  sq_arm_result r;
  sq_arm_result_init(&r);
  sq_code rc = sq_arm_do(a, call, &r, err);
  if(body) {
    *body = rc ? NULL : r.body;
    if(!rc)
      r.body = NULL;
  }
  sq_arm_result_free(&r);
  return rc;
}

/* GETs path (query: extra encoded query or NULL) and parses it into out. */
static sq_code get_parsed(sq_arm *a, const sql_kind *k, const char *path, const char *query,
                          void *out, sq_err *err) {
  kind_reset(k, out);
  json_t *j = NULL;
  sq_code rc = sq_arm_get(a, path, API, query, &j, err);
  if(!rc)
    rc = kind_parse(k, j, out, err);
  json_decref(j);
  return rc;
}

/* get_parsed with the keys expansion of f (databases, dropped databases). */
static sq_code get_expanded(sq_arm *a, const sql_kind *k, const char *id, sq_sql_keys_filter f,
                            int64_t at, void *out, sq_err *err) {
  char q[256];
  sq_code rc = sq_sql_expand_query(f, at, q, sizeof q, err);
  if(rc)
    return kind_fail(k, out, rc);
  return get_parsed(a, k, id, q[0] ? q : NULL, out, err);
}

/* Sends body (owned: freed here) with method to path (LROs followed by
 * sq_arm_do) and parses the final resource into out. need_body: an answer
 * without one is an error (PUTs of sub-resources always return it). */
static sq_code send_parsed(sq_arm *a, const sql_kind *k, const char *method, const char *path,
                           json_t *body, const char *op, int need_body, void *out, sq_err *err) {
  kind_reset(k, out);
  sq_arm_call call = {.method = method, .path = path, .api_version = API, .body = body, .operation = op};
  json_t *res = NULL;
  sq_code rc = call_arm(a, &call, &res, err);
  json_decref(body);
  if(!rc && need_body && !res)
    rc = sq_err_set(err, SQ_EPARSE, "%s: no resource in the answer", op);
  if(!rc && res)
    rc = kind_parse(k, res, out, err);
  json_decref(res);
  return rc;
}

typedef struct list_ctx {
  const sql_kind *kind;
  sql_cb fn;
  void *ud;
  sq_err *err;
  sq_code rc;
} list_ctx;

static int list_item(void *ud, const json_t *item) {
  list_ctx *c = ud;
  sql_any obj;
  c->rc = kind_parse(c->kind, item, &obj, c->err);
  if(c->rc)
    return 1;
  int stop = c->kind->call(c->fn, c->ud, &obj);
  if(c->kind->release)
    c->kind->release(&obj);
  return stop;
}

/* Lists parent + suffix, calling fn (the kind's typed callback) per item;
 * fn borrows each item. */
static sq_code list_parsed(sq_arm *a, const sql_kind *k, const char *parent, const char *suffix,
                           const char *op, sql_cb fn, void *ud, sq_err *err) {
  char path[PATH_LEN];
  sq_code rc = child_path(parent, suffix, path, sizeof path, err);
  if(rc)
    return rc;
  list_ctx c = {k, fn, ud, err, SQ_OK};
  rc = sq_arm_list(a, path, API, NULL, op, list_item, &c, err);
  return rc ? rc : c.rc;
}

static sq_code do_delete(sq_arm *a, const char *id, const char *op, sq_err *err) {
  sq_arm_call call = {.method = "DELETE", .path = id, .api_version = API, .operation = op};
  sq_code rc = call_arm(a, &call, NULL, err);
  if(rc == SQ_ENOTFOUND && err && err->http_status == 404) {
    sq_err_clear(err); /* already gone: what was asked */
    rc = SQ_OK;
  }
  return rc;
}

static sq_code post_action(sq_arm *a, const char *id, const char *suffix, const char *op,
                           int idempotent, sq_err *err) {
  char path[PATH_LEN];
  sq_code rc = child_path(id, suffix, path, sizeof path, err);
  if(rc)
    return rc;
  sq_arm_call call = {.method = "POST",
                      .path = path,
                      .api_version = API,
                      .operation = op,
                      .final_via_location = 1,
                      .post_idempotent = idempotent};
  return call_arm(a, &call, NULL, err);
}

/* ---- ids and queries ---- */

static sq_code add_seg(sq_buf *b, const char *seg) {
  if(!seg || !*seg || !strcmp(seg, ".") || !strcmp(seg, ".."))
    return SQ_EINVAL;
  sq_code rc = sq_buf_add(b, "/", 1);
  return rc ? rc : sq_url_escape(seg, b);
}

static sq_code finish_id(sq_buf *b, sq_code rc, char *out, size_t outlen, sq_err *err) {
  if(!rc && b->len >= outlen)
    rc = SQ_ETOOBIG;
  if(!rc)
    memcpy(out, b->ptr, b->len + 1);
  sq_buf_free(b);
  if(rc == SQ_EINVAL)
    return sq_err_set(err, rc, "resource id: empty or invalid name");
  if(rc)
    return sq_err_set(err, rc, "resource id too long");
  return SQ_OK;
}

static sq_code provider_id(const char *sub, const char *rg, const char *type, const char *name,
                           char *out, size_t outlen, sq_err *err) {
  sq_buf b;
  sq_buf_init(&b, 4096);
  sq_code rc = sq_buf_adds(&b, "/subscriptions");
  if(!rc)
    rc = add_seg(&b, sub);
  if(!rc)
    rc = sq_buf_adds(&b, "/resourceGroups");
  if(!rc)
    rc = add_seg(&b, rg);
  if(!rc)
    rc = sq_buf_addf(&b, "/providers/Microsoft.Sql/%s", type);
  if(!rc)
    rc = add_seg(&b, name);
  return finish_id(&b, rc, out, outlen, err);
}

sq_code sq_sql_server_id(const char *sub, const char *rg, const char *server, char *out,
                         size_t outlen, sq_err *err) {
  return provider_id(sub, rg, "servers", server, out, outlen, err);
}

sq_code sq_sql_mi_id(const char *sub, const char *rg, const char *mi, char *out, size_t outlen,
                     sq_err *err) {
  return provider_id(sub, rg, "managedInstances", mi, out, outlen, err);
}

sq_code sq_sql_database_id(const char *server_id, const char *db, char *out, size_t outlen,
                           sq_err *err) {
  sq_buf b;
  sq_buf_init(&b, 4096);
  sq_code rc = sq_buf_addf(&b, "%s/databases", server_id ? server_id : "");
  if(!rc)
    rc = add_seg(&b, db);
  return finish_id(&b, rc, out, outlen, err);
}

sq_code sq_sql_expand_query(sq_sql_keys_filter f, int64_t at, char *out, size_t outlen,
                            sq_err *err) {
  char raw[128];
  switch(f) {
  case SQ_SQL_KEYS_NONE:
    if(outlen)
      out[0] = '\0';
    return SQ_OK;
  case SQ_SQL_KEYS_ALL:
    snprintf(raw, sizeof raw, "keys");
    break;
  case SQ_SQL_KEYS_CURRENT:
    snprintf(raw, sizeof raw, "keys($filter=pointInTime('current'))");
    break;
  case SQ_SQL_KEYS_AT: {
    if(at <= 0)
      return sq_err_set(err, SQ_EINVAL, "keys filter: no point in time");
    char ts[32];
    sq_rfc3339(at, ts, sizeof ts);
    snprintf(raw, sizeof raw, "keys($filter=pointInTime('%s'))", ts);
    break;
  }
  default:
    return sq_err_set(err, SQ_EINVAL, "keys filter: unknown");
  }
  sq_buf b;
  sq_buf_init(&b, outlen ? outlen - 1 : 0);
  /* the value is percent-encoded (azure-api.md §1.5: the docs show it raw,
   * libcurl-style clients must encode '(' ')' '\'' ':' '$' '=') */
  sq_code rc = sq_buf_adds(&b, "$expand=");
  if(!rc)
    rc = sq_url_escape(raw, &b);
  if(!rc)
    memcpy(out, b.ptr, b.len + 1);
  sq_buf_free(&b);
  if(rc)
    return sq_err_set(err, SQ_ETOOBIG, "keys filter: buffer too small");
  return SQ_OK;
}

sq_code sq_sql_server_key_name(const char *key_uri, char *out, size_t outlen, sq_err *err) {
  char vault[SQ_AZ_URL_MAX], name[SQ_KV_NAME_MAX], version[SQ_KV_VERSION_MAX];
  sq_code rc = sq_kv_split_kid(key_uri, vault, sizeof vault, name, sizeof name, version,
                               sizeof version, err);
  if(rc)
    return rc;
  /* the vault name as the URI spells it (split_kid lower-cases the origin) */
  const char *host = strstr(key_uri, "://") + 3;
  size_t vl = strcspn(host, ".:/");
  int n = version[0] ? snprintf(out, outlen, "%.*s_%s_%s", (int)vl, host, name, version)
                     : snprintf(out, outlen, "%.*s_%s", (int)vl, host, name);
  if(n < 0 || (size_t)n >= outlen)
    return sq_err_set(err, SQ_ETOOBIG, "server key name too long");
  return SQ_OK;
}

static int key_name_valid(const char *s) {
  size_t n = s ? strlen(s) : 0;
  if(!n || n > 255)
    return 0;
  for(size_t i = 0; i < n; i++)
    if(!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '-'))
      return 0;
  return 1;
}

/* ---- databases ---- */

static const sql_field DATABASE_FIELDS[] = {
    FID(sq_sql_database),
    FSTR(sq_sql_database, "name", name),
    FSTR(sq_sql_database, "location", location),
    FSTR(sq_sql_database, "kind", kind),
    FSTR(sq_sql_database, "sku.name", sku_name),
    FSTR(sq_sql_database, "sku.tier", sku_tier),
    FOBJ("properties"),
    FSTR(sq_sql_database, "properties.status", status),
    FSTR(sq_sql_database, "properties.databaseId", database_id),
    FSTR(sq_sql_database, "properties.createMode", create_mode),
    FSTR(sq_sql_database, "properties.secondaryType", secondary_type),
    FSTR(sq_sql_database, "properties.encryptionProtector", encryption_protector),
    FSTR(sq_sql_database, "properties.federatedClientId", federated_client_id),
    FSTR(sq_sql_database, "properties.failoverGroupId", failover_group_id),
    FSTR(sq_sql_database, "properties.sourceDatabaseId", source_database_id),
    FSTR(sq_sql_database, "properties.provisioningState", provisioning_state),
    FTRI(sq_sql_database, "properties.encryptionProtectorAutoRotation", auto_rotation),
    FDATE(sq_sql_database, "properties.creationDate", creation_date),
    FDATE(sq_sql_database, "properties.earliestRestoreDate", earliest_restore_date),
};

static sq_code database_extra(const json_t *j, void *out, const char *what, sq_err *err) {
  sq_sql_database *d = out;
  sq_code rc = parse_identity(j, &d->identity, what, err);
  return rc ? rc
            : parse_keys(json_object_get(j, "properties"), &d->keys, &d->n_keys, &d->keys_present,
                         what, err);
}

void sq_sql_database_free(sq_sql_database *d) {
  if(d)
    free_keys(&d->keys, &d->n_keys);
}

static void database_release(void *d) { sq_sql_database_free(d); }

static int database_call(sql_cb fn, void *ud, const void *item) {
  return ((sq_sql_db_fn)fn)(ud, item);
}

static const sql_kind DATABASE = {"database",      sizeof(sq_sql_database),
                                  DATABASE_FIELDS, COUNT(DATABASE_FIELDS),
                                  database_extra,  database_release,
                                  database_call};

sq_code sq_sql_db_parse(const json_t *j, sq_sql_database *out, sq_err *err) {
  return kind_parse(&DATABASE, j, out, err);
}

sq_code sq_sql_db_get(sq_arm *a, const char *db_id, sq_sql_keys_filter f, int64_t at,
                      sq_sql_database *out, sq_err *err) {
  return get_expanded(a, &DATABASE, db_id, f, at, out, err);
}

sq_code sq_sql_db_list(sq_arm *a, const char *server_id, sq_sql_db_fn fn, void *ud, sq_err *err) {
  return list_parsed(a, &DATABASE, server_id, "/databases", "databases.list", (sql_cb)fn, ud, err);
}

sq_code sq_sql_db_list_inaccessible(sq_arm *a, const char *server_id, sq_sql_db_fn fn, void *ud,
                                    sq_err *err) {
  return list_parsed(a, &DATABASE, server_id, "/inaccessibleDatabases",
                     "databases.listInaccessible", (sql_cb)fn, ud, err);
}

const char *sq_sql_create_mode_name(sq_sql_create_mode m) {
  static const char *const names[] = {"Default",
                                      "Copy",
                                      "Secondary",
                                      "PointInTimeRestore",
                                      "Restore",
                                      "Recovery",
                                      "RestoreExternalBackup",
                                      "RestoreExternalBackupSecondary",
                                      "RestoreLongTermRetentionBackup",
                                      "OnlineSecondary"};
  if((unsigned)m >= sizeof names / sizeof *names)
    return NULL;
  return names[m];
}

static void set_str(int *bad, json_t *o, const char *k, const char *v) {
  if(v && *v)
    sq_json_put(bad, o, k, json_string(v));
}

static void set_date(int *bad, json_t *o, const char *k, int64_t t) {
  if(t > 0) {
    char ts[32];
    sq_rfc3339(t, ts, sizeof ts);
    sq_json_put(bad, o, k, json_string(ts));
  }
}

json_t *sq_sql_umi_identity(int *bad, const char *set, const char *const *remove) {
  json_t *map = json_object();
  if(set)
    sq_json_put(bad, map, set, json_object());
  for(const char *const *p = remove; p && *p; p++)
    sq_json_put(bad, map, *p, json_null());
  json_t *idn = json_object();
  if(set)
    sq_json_put(bad, idn, "type", json_string("UserAssigned"));
  sq_json_put(bad, idn, "userAssignedIdentities", map);
  if(!idn)
    *bad = 1;
  return idn;
}

/* A body that lost a field is no body at all. */
static sq_code body_done(int bad, json_t *b, const char *what, json_t **out, sq_err *err) {
  if(!bad && b) {
    *out = b;
    return SQ_OK;
  }
  json_decref(b);
  return sq_err_set(err, SQ_EINVAL, "%s: cannot build the body (out of memory, or a string that is not UTF-8)",
                    what);
}

sq_code sq_sql_db_create_body(const sq_sql_db_create_args *c, json_t **out, sq_err *err) {
  *out = NULL;
  const char *mode = sq_sql_create_mode_name(c->mode);
  if(!mode)
    return sq_err_set(err, SQ_EINVAL, "database create: unknown createMode");
  if(!c->location || !*c->location)
    return sq_err_set(err, SQ_EINVAL, "database create: location is required");
  switch(c->mode) {
  case SQ_SQL_CREATE_COPY:
  case SQ_SQL_CREATE_SECONDARY:
  case SQ_SQL_CREATE_ONLINE_SECONDARY:
    if(!c->source_database_id)
      return sq_err_set(err, SQ_EINVAL, "database create (%s): sourceDatabaseId is required", mode);
    break;
  case SQ_SQL_CREATE_PITR:
    if(!c->source_database_id || c->restore_point_in_time <= 0)
      return sq_err_set(err, SQ_EINVAL,
                        "database create (%s): sourceDatabaseId and restorePointInTime are required",
                        mode);
    break;
  case SQ_SQL_CREATE_RESTORE:
    if(!c->restorable_dropped_database_id &&
       !(c->source_database_id && c->source_database_deletion_date > 0))
      return sq_err_set(err, SQ_EINVAL,
                        "database create (%s): restorableDroppedDatabaseId, or sourceDatabaseId with "
                        "sourceDatabaseDeletionDate, is required",
                        mode);
    break;
  case SQ_SQL_CREATE_RECOVERY:
    if(!c->recoverable_database_id && !c->source_database_id)
      return sq_err_set(err, SQ_EINVAL,
                        "database create (%s): recoverableDatabaseId or sourceDatabaseId is required",
                        mode);
    break;
  case SQ_SQL_CREATE_RESTORE_LTR:
    if(!c->ltr_backup_id && !c->recovery_services_recovery_point_id)
      return sq_err_set(err, SQ_EINVAL,
                        "database create (%s): longTermRetentionBackupResourceId is required", mode);
    break;
  default:
    break;
  }
  int has_keys = (c->keys && c->keys[0]) || (c->encryption_protector && *c->encryption_protector);
  if(has_keys && !c->umi_id)
    return sq_err_set(err, SQ_EINVAL,
                      "database create: database-level keys need a user-assigned identity");
  if(c->secondary_type && strcmp(c->secondary_type, "Geo") && strcmp(c->secondary_type, "Named") &&
     strcmp(c->secondary_type, "Standby"))
    return sq_err_set(err, SQ_EINVAL, "database create: secondaryType must be Geo, Named or Standby");

  int bad = 0;
  json_t *b = json_object(), *p = json_object();
  set_str(&bad, b, "location", c->location);
  if(c->sku_name) {
    json_t *sku = json_object();
    set_str(&bad, sku, "name", c->sku_name);
    set_str(&bad, sku, "tier", c->sku_tier);
    sq_json_put(&bad, b, "sku", sku);
  }
  if(c->umi_id)
    sq_json_put(&bad, b, "identity", sq_sql_umi_identity(&bad, c->umi_id, NULL));
  if(c->tags)
    sq_json_put(&bad, b, "tags", json_deep_copy(c->tags));
  sq_json_put(&bad, p, "createMode", json_string(mode));
  set_str(&bad, p, "sourceDatabaseId", c->source_database_id);
  set_date(&bad, p, "restorePointInTime", c->restore_point_in_time);
  set_date(&bad, p, "sourceDatabaseDeletionDate", c->source_database_deletion_date);
  set_str(&bad, p, "restorableDroppedDatabaseId", c->restorable_dropped_database_id);
  set_str(&bad, p, "recoverableDatabaseId", c->recoverable_database_id);
  set_str(&bad, p, "longTermRetentionBackupResourceId", c->ltr_backup_id);
  set_str(&bad, p, "recoveryServicesRecoveryPointId", c->recovery_services_recovery_point_id);
  set_str(&bad, p, "secondaryType", c->secondary_type);
  set_str(&bad, p, "elasticPoolId", c->elastic_pool_id);
  set_str(&bad, p, "collation", c->collation);
  if(c->max_size_bytes > 0)
    sq_json_put(&bad, p, "maxSizeBytes", json_integer(c->max_size_bytes));
  if(has_keys) {
    json_t *keys = json_object();
    for(const char *const *k = c->keys; k && *k; k++)
      sq_json_put(&bad, keys, *k, json_object());
    /* the protector must be one of the database's keys */
    if(c->encryption_protector && *c->encryption_protector)
      sq_json_put(&bad, keys, c->encryption_protector, json_object());
    sq_json_put(&bad, p, "keys", keys);
  }
  set_str(&bad, p, "encryptionProtector", c->encryption_protector);
  if(c->auto_rotation >= 0)
    sq_json_put(&bad, p, "encryptionProtectorAutoRotation", json_boolean(c->auto_rotation));
  set_str(&bad, p, "federatedClientId", c->federated_client_id);
  if(p && c->extra_properties && json_is_object(c->extra_properties) &&
     json_object_update_missing(p, (json_t *)c->extra_properties))
    bad = 1;
  sq_json_put(&bad, b, "properties", p);
  return body_done(bad, b, "database create", out, err);
}

sq_code sq_sql_db_create(sq_arm *a, const char *db_id, const sq_sql_db_create_args *c,
                         sq_sql_database *out, sq_err *err) {
  json_t *body = NULL;
  sq_code rc = sq_sql_db_create_body(c, &body, err);
  if(rc)
    return kind_fail(&DATABASE, out, rc);
  return send_parsed(a, &DATABASE, "PUT", db_id, body, "databases.create", 0, out, err);
}

sq_code sq_sql_db_patch_body(const sq_sql_db_patch_args *pt, json_t **out, sq_err *err) {
  *out = NULL;
  for(const char *const *k = pt->keys_remove; k && *k; k++)
    for(const char *const *x = pt->keys_add; x && *x; x++)
      if(!strcmp(*k, *x))
        return sq_err_set(err, SQ_EINVAL, "database patch: key %.300s both added and removed", *k);
  int bad = 0;
  json_t *b = json_object(), *p = json_object();
  if(pt->umi_set || (pt->umi_remove && pt->umi_remove[0]))
    sq_json_put(&bad, b, "identity", sq_sql_umi_identity(&bad, pt->umi_set, pt->umi_remove));
  if((pt->keys_add && pt->keys_add[0]) || (pt->keys_remove && pt->keys_remove[0])) {
    json_t *keys = json_object();
    for(const char *const *k = pt->keys_add; k && *k; k++)
      sq_json_put(&bad, keys, *k, json_object());
    for(const char *const *k = pt->keys_remove; k && *k; k++)
      sq_json_put(&bad, keys, *k, json_null());
    sq_json_put(&bad, p, "keys", keys);
  }
  if(pt->encryption_protector)
    sq_json_put(&bad, p, "encryptionProtector", json_string(pt->encryption_protector));
  if(pt->auto_rotation >= 0)
    sq_json_put(&bad, p, "encryptionProtectorAutoRotation", json_boolean(pt->auto_rotation));
  if(pt->federated_client_id)
    sq_json_put(&bad, p, "federatedClientId",
                *pt->federated_client_id ? json_string(pt->federated_client_id) : json_null());
  if(json_object_size(p))
    sq_json_put(&bad, b, "properties", p);
  else
    json_decref(p);
  if(!bad && b && !json_object_size(b)) {
    json_decref(b);
    return sq_err_set(err, SQ_EINVAL, "database patch: nothing to change");
  }
  return body_done(bad, b, "database patch", out, err);
}

sq_code sq_sql_db_patch(sq_arm *a, const char *db_id, const sq_sql_db_patch_args *p,
                        sq_sql_database *out, sq_err *err) {
  json_t *body = NULL;
  sq_code rc = sq_sql_db_patch_body(p, &body, err);
  if(rc)
    return kind_fail(&DATABASE, out, rc);
  return send_parsed(a, &DATABASE, "PATCH", db_id, body, "databases.patch", 0, out, err);
}

sq_code sq_sql_db_delete(sq_arm *a, const char *db_id, sq_err *err) {
  return do_delete(a, db_id, "databases.delete", err);
}

sq_code sq_sql_db_revalidate(sq_arm *a, const char *db_id, sq_err *err) {
  return post_action(a, db_id, "/encryptionProtector/current/revalidate", "databases.revalidate", 1,
                     err);
}

sq_code sq_sql_db_revert(sq_arm *a, const char *db_id, sq_err *err) {
  return post_action(a, db_id, "/encryptionProtector/current/revert", "databases.revert", 1, err);
}

/* ---- servers / managed instances ---- */

static const sql_field SERVER_FIELDS[] = {
    FID(sq_sql_server),
    FSTR(sq_sql_server, "name", name),
    FSTR(sq_sql_server, "location", location),
    FSTR(sq_sql_server, "kind", kind),
    FOBJ("properties"),
    FSTR(sq_sql_server, "properties.primaryUserAssignedIdentityId", primary_umi_id),
    FSTR(sq_sql_server, "properties.keyId", key_id),
    FSTR(sq_sql_server, "properties.federatedClientId", federated_client_id),
    FSTR(sq_sql_server, "properties.state", state),
    FSTR(sq_sql_server, "properties.fullyQualifiedDomainName", fqdn),
};

static sq_code server_extra(const json_t *j, void *out, const char *what, sq_err *err) {
  return parse_identity(j, &((sq_sql_server *)out)->identity, what, err);
}

static const sql_kind SERVER = {"server", sizeof(sq_sql_server), SERVER_FIELDS,
                                COUNT(SERVER_FIELDS), server_extra, NULL, NULL};

sq_code sq_sql_server_parse(const json_t *j, sq_sql_server *out, sq_err *err) {
  return kind_parse(&SERVER, j, out, err);
}

sq_code sq_sql_server_get(sq_arm *a, const char *id, sq_sql_server *out, sq_err *err) {
  return get_parsed(a, &SERVER, id, NULL, out, err);
}

/* ---- server keys ---- */

static const sql_field SERVER_KEY_FIELDS[] = {
    FID(sq_sql_server_key),
    FSTR(sq_sql_server_key, "name", name),
    FSTR(sq_sql_server_key, "kind", kind),
    FOBJ("properties"),
    FSTR(sq_sql_server_key, "properties.serverKeyType", server_key_type),
    FSTR(sq_sql_server_key, "properties.uri", uri),
    FSTR(sq_sql_server_key, "properties.thumbprint", thumbprint),
    FSTR(sq_sql_server_key, "properties.keyVersion", key_version),
    FTRI(sq_sql_server_key, "properties.autoRotationEnabled", auto_rotation_enabled),
    FDATE(sq_sql_server_key, "properties.creationDate", creation_date),
};

static int server_key_call(sql_cb fn, void *ud, const void *item) {
  return ((sq_sql_server_key_fn)fn)(ud, item);
}

static const sql_kind SERVER_KEY = {"server key", sizeof(sq_sql_server_key), SERVER_KEY_FIELDS,
                                    COUNT(SERVER_KEY_FIELDS), NULL, NULL, server_key_call};

sq_code sq_sql_server_key_parse(const json_t *j, sq_sql_server_key *out, sq_err *err) {
  return kind_parse(&SERVER_KEY, j, out, err);
}

sq_code sq_sql_server_key_list(sq_arm *a, const char *parent_id, sq_sql_server_key_fn fn, void *ud,
                               sq_err *err) {
  return list_parsed(a, &SERVER_KEY, parent_id, "/keys", "keys.list", (sql_cb)fn, ud, err);
}

static sq_code key_path(const char *parent, const char *name, char *path, size_t len, sq_err *err) {
  if(!key_name_valid(name))
    return sq_err_set(err, SQ_EINVAL, "server key name \"%.200s\" is invalid", name ? name : "");
  char suffix[300]; /* "/keys/" + at most 255 bytes */
  snprintf(suffix, sizeof suffix, "/keys/%s", name);
  return child_path(parent, suffix, path, len, err);
}

sq_code sq_sql_server_key_get(sq_arm *a, const char *parent_id, const char *key_name,
                              sq_sql_server_key *out, sq_err *err) {
  char path[PATH_LEN];
  sq_code rc = key_path(parent_id, key_name, path, sizeof path, err);
  return rc ? kind_fail(&SERVER_KEY, out, rc) : get_parsed(a, &SERVER_KEY, path, NULL, out, err);
}

sq_code sq_sql_server_key_create(sq_arm *a, const char *parent_id, const char *key_uri,
                                 sq_sql_server_key *out, sq_err *err) {
  char name[256], path[PATH_LEN];
  sq_code rc = sq_sql_server_key_name(key_uri, name, sizeof name, err);
  if(!rc)
    rc = key_path(parent_id, name, path, sizeof path, err);
  if(rc)
    return kind_fail(&SERVER_KEY, out, rc);
  json_t *body = json_pack("{s:{s:s,s:s}}", "properties", "serverKeyType", "AzureKeyVault", "uri",
                           key_uri);
  return send_parsed(a, &SERVER_KEY, "PUT", path, body, "keys.create", 1, out, err);
}

sq_code sq_sql_server_key_delete(sq_arm *a, const char *parent_id, const char *key_name,
                                 sq_err *err) {
  char path[PATH_LEN];
  sq_code rc = key_path(parent_id, key_name, path, sizeof path, err);
  return rc ? rc : do_delete(a, path, "keys.delete", err);
}

/* ---- encryption protector ---- */

static const sql_field PROTECTOR_FIELDS[] = {
    FID(sq_sql_protector),
    FSTR(sq_sql_protector, "kind", kind),
    FOBJ("properties"),
    FSTR(sq_sql_protector, "properties.serverKeyName", server_key_name),
    FSTR(sq_sql_protector, "properties.serverKeyType", server_key_type),
    FSTR(sq_sql_protector, "properties.uri", uri),
    FSTR(sq_sql_protector, "properties.thumbprint", thumbprint),
    FSTR(sq_sql_protector, "properties.keyVersion", key_version),
    FTRI(sq_sql_protector, "properties.autoRotationEnabled", auto_rotation_enabled),
};

static const sql_kind PROTECTOR = {"encryption protector", sizeof(sq_sql_protector),
                                   PROTECTOR_FIELDS, COUNT(PROTECTOR_FIELDS), NULL, NULL, NULL};

#define PROTECTOR_PATH "/encryptionProtector/current"

sq_code sq_sql_protector_parse(const json_t *j, sq_sql_protector *out, sq_err *err) {
  return kind_parse(&PROTECTOR, j, out, err);
}

sq_code sq_sql_protector_get(sq_arm *a, const char *parent_id, sq_sql_protector *out, sq_err *err) {
  char path[PATH_LEN];
  sq_code rc = child_path(parent_id, PROTECTOR_PATH, path, sizeof path, err);
  return rc ? kind_fail(&PROTECTOR, out, rc) : get_parsed(a, &PROTECTOR, path, NULL, out, err);
}

sq_code sq_sql_protector_set(sq_arm *a, const char *parent_id, const char *server_key_name,
                             int auto_rotation, sq_sql_protector *out, sq_err *err) {
  char path[PATH_LEN];
  if(server_key_name && !key_name_valid(server_key_name))
    return kind_fail(&PROTECTOR, out,
                     sq_err_set(err, SQ_EINVAL, "protector: invalid server key name"));
  sq_code rc = child_path(parent_id, PROTECTOR_PATH, path, sizeof path, err);
  if(rc)
    return kind_fail(&PROTECTOR, out, rc);
  json_t *p = json_pack("{s:s,s:s}", "serverKeyType", server_key_name ? "AzureKeyVault" : "ServiceManaged",
                        "serverKeyName", server_key_name ? server_key_name : "ServiceManaged");
  if(auto_rotation >= 0)
    json_object_set_new(p, "autoRotationEnabled", json_boolean(auto_rotation));
  return send_parsed(a, &PROTECTOR, "PUT", path, json_pack("{s:o}", "properties", p),
                     "encryptionProtector.set", 1, out, err);
}

sq_code sq_sql_protector_revalidate(sq_arm *a, const char *parent_id, sq_err *err) {
  return post_action(a, parent_id, PROTECTOR_PATH "/revalidate", "encryptionProtector.revalidate",
                     1, err);
}

/* ---- replication links ---- */

static const sql_field REPL_FIELDS[] = {
    FID(sq_sql_repl_link),
    FSTR(sq_sql_repl_link, "name", name),
    FOBJ("properties"),
    FSTR(sq_sql_repl_link, "properties.partnerServer", partner_server),
    FSTR(sq_sql_repl_link, "properties.partnerDatabase", partner_database),
    FSTR(sq_sql_repl_link, "properties.partnerLocation", partner_location),
    FSTR(sq_sql_repl_link, "properties.role", role),
    FSTR(sq_sql_repl_link, "properties.partnerRole", partner_role),
    FSTR(sq_sql_repl_link, "properties.replicationMode", replication_mode),
    FSTR(sq_sql_repl_link, "properties.replicationState", replication_state),
    FSTR(sq_sql_repl_link, "properties.linkType", link_type),
    FINT(sq_sql_repl_link, "properties.percentComplete", percent_complete, 0),
    FTRI(sq_sql_repl_link, "properties.isTerminationAllowed", is_termination_allowed),
    FDATE(sq_sql_repl_link, "properties.startTime", start_time),
};

static int repl_call(sql_cb fn, void *ud, const void *item) {
  return ((sq_sql_repl_fn)fn)(ud, item);
}

static const sql_kind REPL_LINK = {"replication link", sizeof(sq_sql_repl_link), REPL_FIELDS,
                                   COUNT(REPL_FIELDS), NULL, NULL, repl_call};

sq_code sq_sql_repl_link_parse(const json_t *j, sq_sql_repl_link *out, sq_err *err) {
  return kind_parse(&REPL_LINK, j, out, err);
}

sq_code sq_sql_repl_list(sq_arm *a, const char *parent_id, sq_sql_repl_fn fn, void *ud, sq_err *err) {
  return list_parsed(a, &REPL_LINK, parent_id, "/replicationLinks", "replicationLinks.list",
                     (sql_cb)fn, ud, err);
}

sq_code sq_sql_repl_get(sq_arm *a, const char *link_id, sq_sql_repl_link *out, sq_err *err) {
  return get_parsed(a, &REPL_LINK, link_id, NULL, out, err);
}

sq_code sq_sql_repl_delete(sq_arm *a, const char *link_id, sq_err *err) {
  return do_delete(a, link_id, "replicationLinks.delete", err);
}

sq_code sq_sql_repl_failover(sq_arm *a, const char *link_id, int allow_data_loss, sq_err *err) {
  /* never retried blindly: a duplicated failover would swap the roles back */
  return post_action(a, link_id, allow_data_loss ? "/forceFailoverAllowDataLoss" : "/failover",
                     "replicationLinks.failover", 0, err);
}

/* ---- failover groups ---- */

static const sql_field FOG_FIELDS[] = {
    FID(sq_sql_fog),
    FSTR(sq_sql_fog, "name", name),
    FSTR(sq_sql_fog, "location", location),
    FOBJ("properties"),
    FSTR(sq_sql_fog, "properties.readWriteEndpoint.failoverPolicy", failover_policy),
    FINT(sq_sql_fog, "properties.readWriteEndpoint.failoverWithDataLossGracePeriodMinutes",
         grace_minutes, -1),
    FSTR(sq_sql_fog, "properties.readOnlyEndpoint.failoverPolicy", readonly_policy),
    FSTR(sq_sql_fog, "properties.replicationRole", replication_role),
    FSTR(sq_sql_fog, "properties.replicationState", replication_state),
};

/* the header declares the partner element type inline, without a name */
typedef __typeof__(((sq_sql_fog *)0)->partners[0]) fog_partner;

static const sql_field PARTNER_FIELDS[] = {
    FSTR(fog_partner, "id", id),
    FSTR(fog_partner, "location", location),
    FSTR(fog_partner, "replicationRole", role),
};

static sq_code fog_partners(const json_t *props, sq_sql_fog *out, const char *what, sq_err *err) {
  const json_t *ps = json_object_get(props, "partnerServers");
  if(ps && !json_is_array(ps))
    return sq_err_set(err, SQ_EPARSE, "%s: partnerServers is not an array", what);
  size_t i;
  json_t *it;
  json_array_foreach(ps, i, it) {
    if(out->n_partners >= SQ_SQL_MAX_PARTNERS)
      return sq_err_set(err, SQ_ETOOBIG, "%s: too many partner servers", what);
    sq_code rc = apply_fields(it, PARTNER_FIELDS, COUNT(PARTNER_FIELDS),
                              &out->partners[out->n_partners], what, err);
    if(rc)
      return rc;
    out->n_partners++;
  }
  return SQ_OK;
}

static sq_code fog_databases(const json_t *props, sq_sql_fog *out, const char *what, sq_err *err) {
  const json_t *dbs = json_object_get(props, "databases");
  if(dbs && !json_is_array(dbs))
    return sq_err_set(err, SQ_EPARSE, "%s: databases is not an array", what);
  size_t n = json_array_size(dbs);
  if(n > SQ_SQL_MAX_FOG_DBS)
    return sq_err_set(err, SQ_ETOOBIG, "%s: too many databases", what);
  if(n && !(out->databases = calloc(n, sizeof *out->databases)))
    return sq_err_set(err, SQ_ENOMEM, "out of memory");
  size_t i;
  json_t *it;
  json_array_foreach(dbs, i, it) {
    if(!json_is_string(it) || json_string_length(it) >= SQ_SQL_ID_MAX)
      return sq_err_set(err, SQ_EPARSE, "%s: databases[%zu] is not an id", what, i);
    if(!(out->databases[out->n_databases] = strdup(json_string_value(it))))
      return sq_err_set(err, SQ_ENOMEM, "out of memory");
    out->n_databases++;
  }
  return SQ_OK;
}

static sq_code fog_extra(const json_t *j, void *out, const char *what, sq_err *err) {
  const json_t *props = json_object_get(j, "properties");
  sq_code rc = fog_partners(props, out, what, err);
  return rc ? rc : fog_databases(props, out, what, err);
}

void sq_sql_fog_free(sq_sql_fog *f) {
  if(!f)
    return;
  for(size_t i = 0; i < f->n_databases; i++)
    free(f->databases[i]);
  free(f->databases);
  f->databases = NULL;
  f->n_databases = 0;
}

static void fog_release(void *f) { sq_sql_fog_free(f); }

static int fog_call(sql_cb fn, void *ud, const void *item) {
  return ((sq_sql_fog_fn)fn)(ud, item);
}

static const sql_kind FOG = {"failover group", sizeof(sq_sql_fog), FOG_FIELDS, COUNT(FOG_FIELDS),
                             fog_extra,        fog_release,        fog_call};

sq_code sq_sql_fog_parse(const json_t *j, sq_sql_fog *out, sq_err *err) {
  return kind_parse(&FOG, j, out, err);
}

static json_t *id_array(const char *const *ids, int as_objects) {
  json_t *a = json_array();
  for(const char *const *p = ids; p && *p; p++)
    json_array_append_new(a, as_objects ? json_pack("{s:s}", "id", *p) : json_string(*p));
  return a;
}

sq_code sq_sql_fog_body(const sq_sql_fog_spec *s, json_t **out, sq_err *err) {
  *out = NULL;
  if(!s->partner_server_ids || !s->partner_server_ids[0])
    return sq_err_set(err, SQ_EINVAL, "failover group: at least one partner server is required");
  if(!s->failover_policy || (strcmp(s->failover_policy, "Manual") && strcmp(s->failover_policy, "Automatic")))
    return sq_err_set(err, SQ_EINVAL, "failover group: failoverPolicy must be Manual or Automatic");
  if(!strcmp(s->failover_policy, "Automatic") && s->grace_minutes <= 0)
    return sq_err_set(err, SQ_EINVAL,
                      "failover group: Automatic needs failoverWithDataLossGracePeriodMinutes");
  json_t *rw = json_pack("{s:s}", "failoverPolicy", s->failover_policy);
  if(s->grace_minutes > 0)
    json_object_set_new(rw, "failoverWithDataLossGracePeriodMinutes", json_integer(s->grace_minutes));
  json_t *p = json_pack("{s:o,s:o,s:o}", "readWriteEndpoint", rw, "partnerServers",
                        id_array(s->partner_server_ids, 1), "databases",
                        id_array(s->database_ids, 0));
  if(s->readonly_policy)
    json_object_set_new(p, "readOnlyEndpoint", json_pack("{s:s}", "failoverPolicy", s->readonly_policy));
  *out = json_pack("{s:o}", "properties", p);
  return *out ? SQ_OK : sq_err_set(err, SQ_ENOMEM, "out of memory");
}

sq_code sq_sql_fog_get(sq_arm *a, const char *fog_id, sq_sql_fog *out, sq_err *err) {
  return get_parsed(a, &FOG, fog_id, NULL, out, err);
}

sq_code sq_sql_fog_list(sq_arm *a, const char *server_id, sq_sql_fog_fn fn, void *ud, sq_err *err) {
  return list_parsed(a, &FOG, server_id, "/failoverGroups", "failoverGroups.list", (sql_cb)fn, ud,
                     err);
}

sq_code sq_sql_fog_put(sq_arm *a, const char *fog_id, const sq_sql_fog_spec *s, sq_sql_fog *out,
                       sq_err *err) {
  json_t *body = NULL;
  sq_code rc = sq_sql_fog_body(s, &body, err);
  if(rc)
    return kind_fail(&FOG, out, rc);
  return send_parsed(a, &FOG, "PUT", fog_id, body, "failoverGroups.put", 1, out, err);
}

sq_code sq_sql_fog_set_databases(sq_arm *a, const char *fog_id, const char *const *database_ids,
                                 sq_sql_fog *out, sq_err *err) {
  json_t *body = json_pack("{s:{s:o}}", "properties", "databases", id_array(database_ids, 0));
  return send_parsed(a, &FOG, "PATCH", fog_id, body, "failoverGroups.patch", 0, out, err);
}

sq_code sq_sql_fog_delete(sq_arm *a, const char *fog_id, sq_err *err) {
  return do_delete(a, fog_id, "failoverGroups.delete", err);
}

sq_code sq_sql_fog_failover(sq_arm *a, const char *fog_id, int allow_data_loss, sq_err *err) {
  return post_action(a, fog_id, allow_data_loss ? "/forceFailoverAllowDataLoss" : "/failover",
                     "failoverGroups.failover", 0, err);
}

/* ---- restorable dropped databases ---- */

static const sql_field DROPPED_FIELDS[] = {
    FID(sq_sql_dropped_db),
    FSTR(sq_sql_dropped_db, "name", name),
    FOBJ("properties"),
    FSTR(sq_sql_dropped_db, "properties.databaseName", database_name),
    FDATE(sq_sql_dropped_db, "properties.creationDate", creation_date),
    FDATE(sq_sql_dropped_db, "properties.deletionDate", deletion_date),
    FDATE(sq_sql_dropped_db, "properties.earliestRestoreDate", earliest_restore_date),
};

static sq_code dropped_extra(const json_t *j, void *out, const char *what, sq_err *err) {
  sq_sql_dropped_db *d = out;
  return parse_keys(json_object_get(j, "properties"), &d->keys, &d->n_keys, NULL, what, err);
}

void sq_sql_dropped_db_free(sq_sql_dropped_db *d) {
  if(d)
    free_keys(&d->keys, &d->n_keys);
}

static void dropped_release(void *d) { sq_sql_dropped_db_free(d); }

static int dropped_call(sql_cb fn, void *ud, const void *item) {
  return ((sq_sql_dropped_fn)fn)(ud, item);
}

static const sql_kind DROPPED = {"restorable dropped database", sizeof(sq_sql_dropped_db),
                                 DROPPED_FIELDS, COUNT(DROPPED_FIELDS), dropped_extra,
                                 dropped_release, dropped_call};

sq_code sq_sql_dropped_db_parse(const json_t *j, sq_sql_dropped_db *out, sq_err *err) {
  return kind_parse(&DROPPED, j, out, err);
}

sq_code sq_sql_dropped_list(sq_arm *a, const char *server_id, sq_sql_dropped_fn fn, void *ud,
                            sq_err *err) {
  return list_parsed(a, &DROPPED, server_id, "/restorableDroppedDatabases",
                     "restorableDroppedDatabases.list", (sql_cb)fn, ud, err);
}

sq_code sq_sql_dropped_get(sq_arm *a, const char *dropped_id, sq_sql_keys_filter f, int64_t at,
                           sq_sql_dropped_db *out, sq_err *err) {
  return get_expanded(a, &DROPPED, dropped_id, f, at, out, err);
}

/* ---- long-term retention backups ---- */

static const sql_field LTR_FIELDS[] = {
    FID(sq_sql_ltr_backup),
    FSTR(sq_sql_ltr_backup, "name", name),
    FOBJ("properties"),
    FSTR(sq_sql_ltr_backup, "properties.serverName", server_name),
    FSTR(sq_sql_ltr_backup, "properties.databaseName", database_name),
    FSTR(sq_sql_ltr_backup, "properties.backupStorageRedundancy", storage_redundancy),
    FDATE(sq_sql_ltr_backup, "properties.serverCreateTime", server_create_time),
    FDATE(sq_sql_ltr_backup, "properties.databaseDeletionTime", database_deletion_time),
    FDATE(sq_sql_ltr_backup, "properties.backupTime", backup_time),
    FDATE(sq_sql_ltr_backup, "properties.backupExpirationTime", backup_expiration_time),
};

static int ltr_call(sql_cb fn, void *ud, const void *item) {
  return ((sq_sql_ltr_fn)fn)(ud, item);
}

static const sql_kind LTR = {"long-term retention backup", sizeof(sq_sql_ltr_backup), LTR_FIELDS,
                             COUNT(LTR_FIELDS), NULL, NULL, ltr_call};

sq_code sq_sql_ltr_parse(const json_t *j, sq_sql_ltr_backup *out, sq_err *err) {
  return kind_parse(&LTR, j, out, err);
}

sq_code sq_sql_ltr_list(sq_arm *a, const char *sub, const char *rg, const char *location,
                        const char *server, const char *database, sq_sql_ltr_fn fn, void *ud,
                        sq_err *err) {
  sq_buf b;
  sq_buf_init(&b, 4096);
  sq_code rc = sq_buf_adds(&b, "/subscriptions");
  if(!rc)
    rc = add_seg(&b, sub);
  if(!rc && rg) {
    rc = sq_buf_adds(&b, "/resourceGroups");
    if(!rc)
      rc = add_seg(&b, rg);
  }
  if(!rc)
    rc = sq_buf_adds(&b, "/providers/Microsoft.Sql/locations");
  if(!rc)
    rc = add_seg(&b, location);
  if(!rc)
    rc = sq_buf_adds(&b, "/longTermRetentionServers");
  if(!rc)
    rc = add_seg(&b, server);
  if(!rc)
    rc = sq_buf_adds(&b, "/longTermRetentionDatabases");
  if(!rc)
    rc = add_seg(&b, database);
  if(!rc)
    rc = sq_buf_adds(&b, "/longTermRetentionBackups");
  if(rc) {
    sq_buf_free(&b);
    return sq_err_set(err, SQ_EINVAL, "LTR path: empty or invalid name");
  }
  rc = list_parsed(a, &LTR, b.ptr, "", "longTermRetentionBackups.list", (sql_cb)fn, ud, err);
  sq_buf_free(&b);
  return rc;
}
