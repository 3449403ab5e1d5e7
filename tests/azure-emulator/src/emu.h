/* emu.h — the Azure emulator's internal map.
 *
 * One process serves Entra ID (login.localhost), ARM (management.localhost),
 * Key Vault data planes (NAME.vault.localhost), an IMDS-style endpoint and a
 * test-control API (/_emulator/... on any host) over one HTTPS port.
 *
 * Request flow (dispatch.c): the I/O layer (server.c, on sq_httpd) hands every
 * request to emu_handle(), which is pure with respect to the network: request
 * struct in, response struct out, state in SQLite. emu_handle classifies the
 * host into a family, applies injected faults, matches a route (router.c),
 * runs the family prelude (bearer check, api-version, throttling) and calls
 * the route's handler with an emu_call. Errors are always written in the
 * family's own shape (ARM, Key Vault, AADSTS, IMDS) by the helpers below.
 *
 * Adding a resource provider (e.g. Microsoft.Sql): write a route table
 * (emu_route[] ending with {0}), list it in routes.c, add a schema component
 * to the migrations list in state.c, use emu_arm_* helpers for errors, bodies,
 * authorization, LRO and throttling.
 *
 * Threading: emu_handle takes e->mu for the whole request; handlers never
 * lock. Time: every decision uses emu_now_ms() (virtual clock), never time(). */
#ifndef SQLTDE_EMU_H
#define SQLTDE_EMU_H

#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "sqltde/buf.h"
#include "sqltde/clock.h"
#include "sqltde/err.h"
#include "sqltde/server/httpd.h"

/* ---- limits (every input is bounded) ---- */
#define EMU_MAX_PATH 8192       /* longer request paths -> 414 */
#define EMU_MAX_QUERYSTR 8192   /* longer query strings -> 414 */
#define EMU_MAX_SEGS 64         /* path segments */
#define EMU_MAX_VARS 8          /* captures per route */
#define EMU_MAX_QUERY 32        /* query parameters */
#define EMU_MAX_BODY (1u << 20) /* request bodies; ARM's own limit is 4 MB, 1 MiB is plenty */
#define EMU_MAX_TOKEN 16384     /* bearer tokens and client assertions */
#define EMU_ID_MAX 128          /* names and ids kept in fixed buffers */

/* ---- families: which Azure service a request is for ---- */
typedef enum emu_family {
  EMU_FAM_NONE = 0,
  EMU_FAM_LOGIN,   /* login.localhost: Entra ID */
  EMU_FAM_ARM,     /* management.localhost: Azure Resource Manager */
  EMU_FAM_KV,      /* NAME.vault.localhost: Key Vault data plane */
  EMU_FAM_IMDS,    /* /metadata/identity/oauth2/token on any host */
  EMU_FAM_CONTROL, /* /_emulator/... on any host, or control.localhost */
} emu_family;

const char *emu_family_name(emu_family f);

typedef struct emu emu;

/* ---- settings (seed "settings:", changeable through the control API) ---- */
typedef struct emu_bucket_cfg {
  double burst; /* bucket size */
  double rate;  /* tokens refilled per second */
} emu_bucket_cfg;

enum { EMU_OP_READ = 0, EMU_OP_WRITE = 1, EMU_OP_DELETE = 2, EMU_OP_KINDS = 3 };

typedef struct emu_settings {
  int64_t token_lifetime_s;  /* access token lifetime (Entra default ~1 h) */
  int64_t lro_delay_ms;      /* how long an ARM long-running operation runs */
  int64_t lro_retry_after_s; /* Retry-After on 202s and polls */
  emu_bucket_cfg throttle[EMU_OP_KINDS]; /* per subscription: reads, writes, deletes */
  int throttle_enabled;
  int arm_authorization; /* enforce ARM RBAC on management calls (default on) */
} emu_settings;

void emu_settings_default(emu_settings *s);
/* Applies the members present in a JSON object (seed or control API). */
sq_code emu_settings_apply(emu_settings *s, const json_t *obj, sq_err *err);
json_t *emu_settings_json(const emu_settings *s);
/* Persists e->set in state.db. */
sq_code emu_settings_save(emu *e);

/* ---- the emulator ---- */
typedef struct emu_bucket {
  char sub[EMU_ID_MAX];
  double tokens[EMU_OP_KINDS];
  int64_t last_ms[EMU_OP_KINDS]; /* monotonic */
  struct emu_bucket *next;
} emu_bucket;

struct emu {
  pthread_mutex_t mu; /* held for each request (emu_handle) */
  sqlite3 *db;
  int port;           /* the port clients reach us on, used in URLs (kid, vaultUri, ...) */
  EVP_PKEY *token_key; /* signs access tokens; kept in state.db */
  char token_kid[64];
  unsigned char backup_key[32]; /* encrypts Key Vault backup blobs; kept in state.db */
  int64_t clock_offset_ms;      /* virtual clock = real wall clock + offset */
  emu_settings set;
  emu_bucket *buckets; /* ARM throttling, in memory (refill by the monotonic clock) */
  uint64_t seq;        /* request counter for ids */
  sq_clock vclock;     /* the virtual clock as an sq_clock (wall_s), for shared code */
  int path_decoded;    /* the I/O layer hands over percent-decoded paths (sq_httpd does) */
};

/* Opens (creating/migrating) DIR/state.db and loads keys, clock and settings.
 * db_path may be ":memory:" for unit tests. */
sq_code emu_open(emu *e, const char *db_path, sq_err *err);
void emu_close(emu *e);

/* Virtual clock. */
int64_t emu_now_ms(const emu *e);
static inline int64_t emu_now_s(const emu *e) { return emu_now_ms(e) / 1000; }
sq_code emu_clock_advance(emu *e, int64_t ms, sq_err *err);

/* ---- per-request context ---- */
typedef struct emu_route emu_route;

typedef struct emu_qparam {
  const char *name;  /* decoded */
  const char *value; /* decoded */
} emu_qparam;

typedef struct emu_call {
  emu *e;
  const sq_httpd_req *req;
  sq_httpd_resp *resp;
  emu_family fam;
  const emu_route *route;
  int64_t now_ms; /* virtual time at request start */
  /* decoded path */
  char pathbuf[EMU_MAX_PATH + EMU_MAX_SEGS];
  const char *segs[EMU_MAX_SEGS];
  int nsegs;
  int trailing_slash;
  /* route captures ({name} or {*name}); greedy captures are re-joined with '/' */
  const char *var_names[EMU_MAX_VARS];
  const char *var_vals[EMU_MAX_VARS];
  char varbuf[EMU_MAX_PATH + EMU_MAX_SEGS];
  int nvars;
  /* decoded query */
  char querybuf[EMU_MAX_QUERYSTR + EMU_MAX_QUERY];
  emu_qparam query[EMU_MAX_QUERY];
  int nquery;
  /* Key Vault: vault name from the host */
  char vault[EMU_ID_MAX];
  /* caller, after bearer verification */
  char oid[EMU_ID_MAX];
  char tid[EMU_ID_MAX];
  char appid[EMU_ID_MAX];
  char request_id[37];
  /* results for the I/O layer */
  int latency_ms;  /* injected latency to apply before answering */
  char note[64];   /* what the dispatcher did (fault kind), for the request log */
} emu_call;

/* Capture by name ("" if it matched an empty segment), NULL if absent. */
const char *emu_var(const emu_call *c, const char *name);
/* Decoded query parameter (name compared case-insensitively), NULL if absent. */
const char *emu_query(const emu_call *c, const char *name);
/* Request header, NULL if absent. */
const char *emu_header_in(const emu_call *c, const char *name);

/* ---- routes ---- */
enum {
  EMU_R_AUTH = 1u << 0,   /* bearer token required (ARM, KV) */
  EMU_R_READ = 1u << 1,   /* ARM throttling class */
  EMU_R_WRITE = 1u << 2,
  EMU_R_DELETE = 1u << 3,
  EMU_R_NOAPIVER = 1u << 4, /* no api-version check (status URLs carry theirs) */
};

struct emu_route {
  emu_family fam;
  const char *method;  /* "GET"...; NULL = any */
  const char *pattern; /* "/keys/{name}/{version}/wrapkey"; "{*scope}" greedy (>= 1 segment) */
  void (*fn)(emu_call *c);
  unsigned flags;
  const char *const *api_versions; /* ARM: accepted api-versions, NULL-terminated; NULL = any */
};

/* Each module's routes (control.c, entra.c, keyvault.c, arm_keyvault.c). */
extern const emu_route emu_control_routes[];
extern const emu_route emu_entra_routes[];
extern const emu_route emu_kv_routes[];
extern const emu_route emu_arm_keyvault_routes[];

/* All route tables, in match order (routes.c). */
extern const emu_route *const emu_route_tables[];
/* One extra table consulted after those (tests register routes here); NULL normally. */
extern const emu_route *emu_extra_routes;

typedef enum emu_match_result { EMU_MATCH_NONE = 0, EMU_MATCH_OK, EMU_MATCH_METHOD } emu_match_result;

/* Splits and percent-decodes path into c->segs; SQ_EPARSE on bad escapes or
 * NUL bytes, SQ_ETOOBIG when over the limits. */
sq_code emu_path_split(emu_call *c, const char *path);
/* Decodes a raw query string into c->query. */
sq_code emu_query_parse(emu_call *c, const char *query);
/* Finds the first route of family fam matching c->segs; fills captures.
 * EMU_MATCH_METHOD when only the method differs. Literal segments compare
 * case-insensitively (ARM and Key Vault paths are case-insensitive). */
emu_match_result emu_route_find(emu_call *c, emu_family fam, const char *method);
/* Pattern match alone, for tests and the fuzzer. */
int emu_pattern_match(emu_call *c, const char *pattern);

/* Percent-decodes (no '+' handling unless form=1) into out (NUL-terminated);
 * returns length or -1 on malformed escapes / embedded NUL / overflow. */
long emu_pct_decode(const char *s, size_t n, int form, char *out, size_t outcap);

/* ---- dispatch ---- */
/* Handles one request. resp must be initialised (emu_resp_init). */
void emu_handle(emu *e, const sq_httpd_req *req, sq_httpd_resp *resp, int *latency_ms);
void emu_resp_init(sq_httpd_resp *r);
void emu_resp_free(sq_httpd_resp *r);

/* ---- response helpers ---- */
void emu_header(emu_call *c, const char *name, const char *value);
void emu_headerf(emu_call *c, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Sets status and a JSON body; takes ownership of v (NULL -> empty body). */
void emu_reply_json(emu_call *c, int status, json_t *v);
void emu_reply_empty(emu_call *c, int status);
/* Error in the family's shape (ARM / KV / AADSTS / IMDS / control). */
void emu_error(emu_call *c, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Key Vault error with innererror code (may be NULL). */
void emu_kv_error(emu_call *c, int status, const char *code, const char *inner, const char *fmt,
                  ...) __attribute__((format(printf, 5, 6)));
/* AADSTS-shaped error: {"error","error_description":"AADSTS<n>: ...","error_codes":[n],...}. */
void emu_aad_error(emu_call *c, int status, const char *error, int aadsts, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void emu_arm_error(emu_call *c, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Parses the request body as a JSON object with the right content type.
 * On failure writes the family's 400/415 error and returns non-zero. An empty
 * body gives an empty object when allow_empty. *out is owned by the caller. */
int emu_body_json(emu_call *c, int allow_empty, json_t **out);

/* Random lower-case hex (n bytes -> 2n chars) and GUIDs. */
void emu_rand_hex(char *out, size_t nbytes);
void emu_guid(char out[37]);

/* The public base URL of a host: "https://HOST:PORT". */
void emu_base_url(const emu *e, const char *host, char *out, size_t outlen);

/* ---- tokens (jwt.c, entra.c) ---- */
typedef struct emu_jwt {
  json_t *header;
  json_t *claims;
  char *signing_input; /* "b64(header).b64(payload)" */
  unsigned char *sig;
  size_t sig_len;
} emu_jwt;

/* Splits and decodes a compact JWS (bounded by EMU_MAX_TOKEN). */
sq_code emu_jwt_parse(const char *token, emu_jwt *out, sq_err *err);
void emu_jwt_free(emu_jwt *j);
/* Verifies the signature with alg RS256 or PS256 (from the header). */
sq_code emu_jwt_verify(const emu_jwt *j, EVP_PKEY *pub, sq_err *err);
/* Signs claims with alg ("RS256" | "PS256"); header gets typ, alg and the
 * extra members of hdr (may be NULL). *out is malloc'd. */
sq_code emu_jwt_sign(EVP_PKEY *key, const char *alg, const json_t *hdr, const json_t *claims,
                     char **out, sq_err *err);
/* base64url(SHA-1) / base64url(SHA-256) of a certificate's DER: x5t, x5t#S256. */
sq_code emu_cert_x5t(const char *pem, char *x5t, size_t x5t_len, char *x5t256, size_t x5t256_len,
                     sq_err *err);
/* JWK (kty, n, e, kid, use, alg) of an RSA public key; new reference. */
json_t *emu_rsa_public_jwk(EVP_PKEY *pkey);
/* RSA public key from a JWK's n and e. */
sq_code emu_rsa_from_jwk_public(const json_t *jwk, EVP_PKEY **out, sq_err *err);

/* Audiences an access token may carry. */
typedef enum emu_audience { EMU_AUD_ARM = 1, EMU_AUD_KV = 2 } emu_audience;

typedef enum emu_tok_status {
  EMU_TOK_OK = 0,
  EMU_TOK_MISSING,
  EMU_TOK_MALFORMED,
  EMU_TOK_BADSIG,
  EMU_TOK_EXPIRED,
  EMU_TOK_NOTYET,
  EMU_TOK_AUDIENCE,
  EMU_TOK_ISSUER,
} emu_tok_status;

/* Verifies "Authorization: Bearer ..." against our signing key, the virtual
 * clock and the audience; fills c->oid/tid/appid. Does not write a response. */
emu_tok_status emu_bearer_verify(emu_call *c, emu_audience aud, json_t **claims_out);
/* Mints an access token for an identity (object id, tenant, app id) and resource. */
sq_code emu_token_mint(emu *e, const char *oid, const char *tid, const char *appid,
                       const char *resource, int64_t lifetime_s, char **out, int64_t *exp_out,
                       sq_err *err);
/* Resource (audience) for a requested scope/resource string, NULL if unknown. */
const char *emu_resource_canonical(const char *s, char *buf, size_t buflen);

/* ---- ARM shared infrastructure (arm.c) ---- */
/* Is it a valid GUID? (subscription ids, principal ids) */
int emu_is_guid(const char *s);
/* Validates the api-version query parameter against the route's list; writes
 * 400 MissingApiVersionParameter / InvalidApiVersionParameter /
 * NoRegisteredProviderFound and returns non-zero when bad. */
int emu_arm_check_api_version(emu_call *c, const char *resource_type);
/* Checks that the subscription and resource group of c's {sub}/{rg} vars exist
 * (400 InvalidSubscriptionId, 404 SubscriptionNotFound / ResourceGroupNotFound).
 * rg may be NULL (subscription-level routes). */
int emu_arm_check_scope(emu_call *c, const char *sub, const char *rg);
/* Authorizes a management action ("Microsoft.KeyVault/vaults/read") at scope for
 * the caller, by the role assignments in state (403 AuthorizationFailed). */
int emu_arm_authorize(emu_call *c, const char *scope, const char *action);
/* Throttling: takes one token of kind from the subscription's bucket; on
 * exhaustion writes 429 TooManyRequests + Retry-After. Always adds the
 * x-ms-ratelimit-remaining-subscription-* header. */
int emu_arm_throttle(emu_call *c, const char *sub, int kind);
/* Standard ARM response headers (x-ms-request-id, correlation, routing). */
void emu_arm_headers(emu_call *c);
/* ARM's ms-precision RFC 3339 time: "2022-12-15T05:48:23.090Z". */
void emu_fmt_time_ms(int64_t ms, char *out, size_t n);
/* The tenant of subscription sub: 1, or 0 with out "" when there is no such subscription. */
int emu_subscription_tenant(emu *e, const char *sub, char out[EMU_ID_MAX]);

/* Long-running operations. A module starts one, answering 202 with
 * Azure-AsyncOperation + Location + Retry-After; polls of those URLs are
 * answered by emu_lro_poll_*; when the virtual clock passes the deadline the
 * operation's completion hook (registered by kind) runs once and decides the
 * final status. */
typedef struct emu_lro {
  char id[37];
  char kind[64];         /* e.g. "CreateLogicalDatabase" (hook key) */
  char resource_id[1024];
  char sub[EMU_ID_MAX];
  char status[16];       /* InProgress | Succeeded | Failed | Canceled */
  int64_t start_ms, done_ms;
  json_t *input;         /* borrowed: what the module stored at start (may be NULL) */
} emu_lro;

typedef struct emu_lro_hook {
  const char *kind;
  /* Runs once when due. Return 0 for Succeeded, or fill err_code/err_msg
   * (sizes 128/512) and return non-zero for Failed. May set *result (owned by
   * the LRO table afterwards) for the Location poll's final 200 body. */
  int (*complete)(emu *e, const emu_lro *op, char *err_code, char *err_msg, json_t **result);
} emu_lro_hook;

extern const emu_lro_hook *const emu_lro_hooks[];

/* Starts an LRO and writes the 202 answer. async_path and location_path are
 * paths (no host) under which this operation is polled, e.g.
 * "/subscriptions/S/providers/Microsoft.Sql/locations/eastus/databaseAzureAsyncOperation/{id}";
 * "{id}" is replaced. body (stolen, may be NULL) is the 202 body. input
 * (stolen, may be NULL) is kept for the hook. */
sq_code emu_lro_start(emu_call *c, const char *kind, const char *resource_id, const char *sub,
                      const char *async_path, const char *location_path, json_t *input,
                      json_t *body, char id_out[37]);
/* Runs due completion hooks (called at every request). */
void emu_lro_tick(emu *e);
/* Answers an Azure-AsyncOperation poll for id (200 + {name,status,startTime[,endTime,error]}). */
void emu_lro_poll_async(emu_call *c, const char *id);
/* Answers a Location poll (202 while running, then 200 with the result or 204). */
void emu_lro_poll_location(emu_call *c, const char *id);

/* ---- state (state.c) ---- */
/* Prepares sql; logs and returns NULL on error (a bug, not bad input). */
sqlite3_stmt *emu_sql(emu *e, const char *sql);
/* Runs sql with no results; SQ_EIO on failure. */
sq_code emu_exec(emu *e, const char *sql, sq_err *err);
/* Meta key/value (small strings and blobs). */
sq_code emu_meta_get(emu *e, const char *k, sq_buf *out);
sq_code emu_meta_set(emu *e, const char *k, const void *v, size_t n);
/* Column text as "" instead of NULL. */
const char *emu_col_text(sqlite3_stmt *st, int i);
/* Runs sql with the text parameters that follow (NULL ends them) and copies
 * the first column of its first row into out: 1 if there was a row, else 0
 * with out untouched. */
int emu_sql_text(emu *e, char *out, size_t n, const char *sql, ...) __attribute__((sentinel));

typedef struct emu_schema {
  const char *component;     /* e.g. "core", "keyvault", "sql" */
  const char *const *steps;  /* migration i brings the component to version i+1 */
} emu_schema;
extern const emu_schema *const emu_schemas[];
sq_code emu_migrate(emu *e, sq_err *err);

/* ---- seed (seed.c) ---- */
/* YAML (one document) -> JSON; bounded depth, no aliases. */
sq_code emu_yaml_to_json(const char *data, size_t len, json_t **out, sq_err *err);
/* Validates and stores a seed (already converted to JSON). base_dir resolves
 * relative file names ("certificateFile", "jwksFile"). */
sq_code emu_seed_apply(emu *e, const json_t *seed, const char *base_dir, sq_err *err);
sq_code emu_seed_load_file(emu *e, const char *path, sq_err *err);

/* ---- identities (entra.c) ---- */
typedef struct emu_identity {
  char object_id[EMU_ID_MAX]; /* principal id (oid claim) */
  char client_id[EMU_ID_MAX]; /* app id */
  char tenant[EMU_ID_MAX];
  char kind[16];              /* "application" | "userAssigned" */
  char resource_id[1024];     /* user-assigned identities */
  char name[EMU_ID_MAX];
} emu_identity;
int emu_identity_by_client_id(emu *e, const char *client_id, emu_identity *out);
int emu_identity_by_object_id(emu *e, const char *oid, emu_identity *out);
int emu_identity_by_resource_id(emu *e, const char *rid, emu_identity *out);
/* Multi-tenant applications (seed identities[].servicePrincipals): the object
 * id of client_id's service principal in tenant tid (1), or 0 if none. */
int emu_sp_object_id(emu *e, const char *client_id, const char *tid, char oid[EMU_ID_MAX]);
/* The object id principal oid acts as in tenant tid: its service principal
 * there when oid is an application from another tenant with one (returns 1),
 * else oid itself (returns 0). */
int emu_oid_in_tenant(emu *e, const char *oid, const char *tid, char out[EMU_ID_MAX]);

/* ---- TLS material (tls.c) ---- */
/* Creates DIR/ca.pem, ca.key, server.pem, server.key on first use (kept
 * across restarts); the server certificate names login.localhost,
 * management.localhost, *.vault.localhost, control.localhost, localhost and
 * 127.0.0.1. */
sq_code emu_tls_ensure(const char *dir, sq_err *err);

/* ---- faults and control (control.c) ---- */
typedef enum emu_fault_kind {
  EMU_FAULT_NONE = 0,
  EMU_FAULT_STATUS,  /* answer status (429 / 5xx) */
  EMU_FAULT_DROP,    /* close without answering */
  EMU_FAULT_LATENCY, /* delay, then serve */
} emu_fault_kind;

typedef struct emu_fault_hit {
  emu_fault_kind kind;
  int status;
  int retry_after_s;
  int latency_ms;
  char id[40];
} emu_fault_hit;

/* Consults injected faults (vault/region down, scoped status/drop/latency) for
 * this request; consumes a count when one fires. */
int emu_fault_check(emu_call *c, emu_fault_hit *hit);
/* Is the caller's access to vault revoked by the control API? */
int emu_fault_revoked(emu *e, const char *vault, const char *oid);
/* Appends an entry to the request log (never tokens or bodies). */
void emu_reqlog_add(emu_call *c);

/* ---- Key Vault helpers shared with other providers ---- */
/* Vault row. */
typedef struct emu_vault {
  char name[EMU_ID_MAX];
  char sub[EMU_ID_MAX];
  char rg[EMU_ID_MAX];
  char region[EMU_ID_MAX];
  char tenant[EMU_ID_MAX];
  int soft_delete, purge_protection, rbac;
  int retention_days;
} emu_vault;
int emu_vault_get(emu *e, const char *name, emu_vault *out);
/* The vaults table's columns that make an emu_vault, in emu_vault_from_row's order. */
#define EMU_VAULT_COLS "name, sub, rg, region, tenant, soft_delete, purge_protection, rbac, retention_days"
void emu_vault_from_row(sqlite3_stmt *st, emu_vault *out);
/* "https://NAME.vault.localhost:PORT", the name in lower case (DNS). */
void emu_vault_url(emu *e, const char *name, char *out, size_t outlen);
/* A key from the seed ({name, kty, size, keyOps, pemFile, enabled, nbf, exp}):
 * generated, or imported from a PEM private key file (relative to base_dir). */
sq_code emu_kv_seed_key(emu *e, const char *vault, const json_t *spec, const char *base_dir, sq_err *err);
/* Time-driven Key Vault behaviour (scheduled purge, rotation policies); run per request. */
void emu_kv_tick(emu *e);
/* "/subscriptions/S/resourceGroups/RG/providers/Microsoft.KeyVault/vaults/NAME" */
void emu_vault_resource_id(const emu_vault *v, char *out, size_t outlen);
/* Geography of a region ("" if unknown). */
void emu_region_geography(emu *e, const char *region, char *out, size_t outlen);
/* Does principal oid hold data action (e.g. "Microsoft.KeyVault/vaults/keys/wrap/action")
 * at scope through a role assignment (at or above scope)? */
int emu_rbac_allows(emu *e, const char *oid, const char *scope, const char *action, int data);
/* Canonical role definition GUID from a GUID, a role name or a definition id; NULL if unknown. */
const char *emu_role_guid(const char *s);
const char *emu_role_name(const char *guid);
/* The built-in role definition as ARM returns it (id under subscription sub); NULL if unknown. */
json_t *emu_role_definition_json(const char *guid, const char *sub);
/* Built-in role i (0..), NULL past the end: for listings. */
const char *emu_role_at(int i);
/* Is region down by an injected fault? Providers call it for their regional resources. */
int emu_region_is_down(emu *e, const char *region);

#endif
