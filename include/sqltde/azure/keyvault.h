/* azure/keyvault.h — Azure Key Vault keys (data plane) client.
 *
 * What the operator does with keys: read them (latest or a version), list
 * versions, create, import from a PEM made offline, update attributes,
 * back up / restore (replicate material), rotate, delete / recover, and probe
 * access with a wrap+unwrap round trip. There is deliberately no purge.
 *
 * Authentication follows the Key Vault challenge protocol (azure-api.md §4.5,
 * as @azure/keyvault-common does it): the first request to a vault goes out
 * without a token and without its body; the vault's 401 carries
 * WWW-Authenticate: Bearer authorization="https://login.../{tenant}",
 * resource="https://vault.azure.net". The tenant (first path segment of
 * authorization/authorization_uri) and scope (resource + "/.default", or
 * the challenge's scope) are remembered per vault host, and the request is
 * sent again with a token for that tenant. The challenge's resource host must
 * be a suffix of the vault host ("kv1.vault.azure.net" ends with
 * ".vault.azure.net"), else SQ_EUNAUTH reason "ChallengeResourceMismatch".
 * A later 401 (expired or revoked token) refreshes the token once.
 *
 * Vault URLs must be https://NAME.<cloud kv_dns_suffix>[:port]; anything else
 * is SQ_EINVAL before a request (a vault URI from a custom resource can never
 * send a token elsewhere). Key names: [0-9a-zA-Z-]{1,127}; versions
 * [0-9a-zA-Z]{0,64}.
 *
 * Errors: as pipeline.h; reason is Key Vault's innermost error code
 * (KeyNotFound, ForbiddenByPolicy, ForbiddenByRbac, KeyDisabled, ...).
 * Thumbprints follow include/sqltde/crypto/thumbprint.h.
 *
 * Ownership: output sq_kv_key structs must have been set up with
 * sq_kv_key_init (calls reset them, freeing old tags) and are released with
 * sq_kv_key_free. One sq_kv per process; thread-safe. */
#ifndef SQLTDE_AZURE_KEYVAULT_H
#define SQLTDE_AZURE_KEYVAULT_H

#include <jansson.h>
#include <stdint.h>

#include "sqltde/azure/cloud.h"
#include "sqltde/azure/credential.h"
#include "sqltde/azure/pipeline.h"
#include "sqltde/buf.h"
#include "sqltde/crypto/thumbprint.h"
#include "sqltde/err.h"

/* key_ops bits */
enum {
  SQ_KV_OP_ENCRYPT = 1u << 0,
  SQ_KV_OP_DECRYPT = 1u << 1,
  SQ_KV_OP_SIGN = 1u << 2,
  SQ_KV_OP_VERIFY = 1u << 3,
  SQ_KV_OP_WRAP = 1u << 4,
  SQ_KV_OP_UNWRAP = 1u << 5,
  SQ_KV_OP_IMPORT = 1u << 6,
  SQ_KV_OP_EXPORT = 1u << 7,
};

#define SQ_KV_KID_MAX 512
#define SQ_KV_NAME_MAX 128
#define SQ_KV_VERSION_MAX 65
#define SQ_KV_N_MAX 1400 /* base64url modulus of an RSA key up to 8192 bits */

/* One key version as Key Vault describes it. Fixed-size except tags. */
typedef struct sq_kv_key {
  char kid[SQ_KV_KID_MAX];       /* full id with version */
  char vault[SQ_AZ_URL_MAX];     /* https://host[:port] */
  char name[SQ_KV_NAME_MAX];
  char version[SQ_KV_VERSION_MAX];
  char kty[16];                  /* "RSA", "RSA-HSM", ... ("" in list items) */
  int key_size;                  /* bits, from n; 0 if unknown */
  char n[SQ_KV_N_MAX];           /* base64url, "" if not returned */
  char e[16];
  unsigned ops;                  /* SQ_KV_OP_* */
  int enabled;                   /* 1/0; -1 when absent */
  int64_t nbf, exp;              /* Unix seconds; 0 = not set */
  int64_t created, updated;
  char recovery_level[64];
  int recoverable_days;
  int managed;                   /* backs a certificate */
  int exportable;                /* -1 when absent */
  char thumbprint[SQ_THUMBPRINT_HEX_LEN + 1]; /* RSA keys with n/e; "" otherwise */
  json_t *tags;                  /* owned object or NULL */
} sq_kv_key;

void sq_kv_key_init(sq_kv_key *k);
void sq_kv_key_free(sq_kv_key *k); /* frees tags; the struct itself is the caller's */

typedef struct sq_kv_deleted_key {
  sq_kv_key key;
  char recovery_id[SQ_KV_KID_MAX];
  int64_t deleted_date, scheduled_purge_date;
} sq_kv_deleted_key;

/* Attributes to send; fields left at their "unset" value are not sent. */
typedef struct sq_kv_attrs {
  int enabled;       /* -1 unset, 0, 1 */
  int64_t nbf, exp;  /* 0 unset; SQ_KV_CLEAR sends null (removes it) */
} sq_kv_attrs;
#define SQ_KV_CLEAR INT64_MIN
#define SQ_KV_ATTRS_UNSET {-1, 0, 0}

typedef struct sq_kv_create_params {
  const char *kty;      /* "RSA" or "RSA-HSM" */
  int key_size;         /* 2048, 3072, 4096 */
  unsigned ops;         /* 0 -> wrapKey|unwrapKey */
  sq_kv_attrs attrs;
  const json_t *tags;   /* optional object of strings */
} sq_kv_create_params;

typedef struct sq_kv_import_params {
  int hsm;              /* "Hsm": true */
  unsigned ops;         /* 0 -> wrapKey|unwrapKey */
  sq_kv_attrs attrs;
  const json_t *tags;
} sq_kv_import_params;

typedef struct sq_kv_opts {
  const sq_azure_cloud *cloud;  /* copied */
  sq_azure_cred *cred;          /* borrowed */
  sq_azure_pipeline pipeline;   /* copied */
  const char *api_version;      /* NULL -> "7.5" */
} sq_kv_opts;

typedef struct sq_kv sq_kv;

sq_code sq_kv_new(const sq_kv_opts *opts, sq_kv **out, sq_err *err);
void sq_kv_free(sq_kv *kv);

/* vault: "https://NAME.vault.azure.net" (a trailing '/' is fine). version
 * NULL or "" = the latest. */
sq_code sq_kv_get(sq_kv *kv, const char *vault, const char *name, const char *version,
                  sq_kv_key *out, sq_err *err);

/* Calls fn for each version (n/e/kty empty: list items carry attributes
 * only); return non-zero to stop. nextLinks must stay on the vault. */
typedef int (*sq_kv_key_fn)(void *ud, const sq_kv_key *k);
sq_code sq_kv_list_versions(sq_kv *kv, const char *vault, const char *name, sq_kv_key_fn fn,
                            void *ud, sq_err *err);

sq_code sq_kv_create(sq_kv *kv, const char *vault, const char *name,
                     const sq_kv_create_params *p, sq_kv_key *out, sq_err *err);

/* Imports an RSA private key given as PEM (PKCS#1 or PKCS#8, unencrypted) as
 * a JWK. The private parameters exist only in buffers that are wiped after
 * the request; the caller wipes pem. */
sq_code sq_kv_import_pem(sq_kv *kv, const char *vault, const char *name, const char *pem,
                         size_t pem_len, const sq_kv_import_params *p, sq_kv_key *out,
                         sq_err *err);

/* PATCH attributes (and tags if non-NULL) of a version (NULL = latest). */
sq_code sq_kv_update(sq_kv *kv, const char *vault, const char *name, const char *version,
                     const sq_kv_attrs *attrs, const json_t *tags, sq_kv_key *out, sq_err *err);

/* wrapkey / unwrapkey with a full versioned kid. alg: "RSA-OAEP-256" (or
 * "RSA-OAEP", "RSA1_5"). out receives the raw bytes (wipe it: unwrapped
 * material is a secret). kid_used (optional, SQ_KV_KID_MAX) gets the kid the
 * vault answered with. */
sq_code sq_kv_wrap(sq_kv *kv, const char *kid, const char *alg, const void *in, size_t in_len,
                   sq_buf *out, char *kid_used, sq_err *err);
sq_code sq_kv_unwrap(sq_kv *kv, const char *kid, const char *alg, const void *in, size_t in_len,
                     sq_buf *out, char *kid_used, sq_err *err);

/* Health probe: wraps 32 random bytes with RSA-OAEP-256 and unwraps them; a
 * mismatch is SQ_ESTATE. Needs wrapKey and unwrapKey. */
sq_code sq_kv_probe(sq_kv *kv, const char *kid, sq_err *err);

/* Backup: *blob_out (owned, free()) is the opaque base64url value. */
sq_code sq_kv_backup(sq_kv *kv, const char *vault, const char *name, char **blob_out, sq_err *err);
sq_code sq_kv_restore(sq_kv *kv, const char *vault, const char *blob, sq_kv_key *out, sq_err *err);

/* Rotate: a new version per the key's policy; out is the new version. */
sq_code sq_kv_rotate(sq_kv *kv, const char *vault, const char *name, sq_kv_key *out, sq_err *err);

/* Soft delete (all versions) and its inverse. */
sq_code sq_kv_delete(sq_kv *kv, const char *vault, const char *name, sq_kv_deleted_key *out,
                     sq_err *err);
sq_code sq_kv_get_deleted(sq_kv *kv, const char *vault, const char *name, sq_kv_deleted_key *out,
                          sq_err *err);
sq_code sq_kv_recover(sq_kv *kv, const char *vault, const char *name, sq_kv_key *out, sq_err *err);

/* Number of 401 challenges answered so far (tests). */
uint64_t sq_kv_challenges(const sq_kv *kv);

/* ---- pure helpers (unit-tested) ---- */

/* A parsed WWW-Authenticate Bearer challenge. */
typedef struct sq_kv_challenge {
  char tenant[128];           /* from authorization / authorization_uri */
  char authorization[SQ_AZ_URL_MAX];
  char resource[SQ_AZ_URL_MAX];
  char scope[SQ_AZ_URL_MAX + 16];  /* resource + "/.default", or the challenge's scope */
} sq_kv_challenge;

/* Parses a WWW-Authenticate value. SQ_EPARSE when it is not a Bearer
 * challenge with an authorization URI and a resource or scope. */
sq_code sq_kv_parse_challenge(const char *hdr, sq_kv_challenge *out, sq_err *err);

/* Checks the challenge's resource/scope host against the vault host as the
 * JS SDK does (vault host must end with "." + resource host). */
sq_code sq_kv_verify_challenge(const sq_kv_challenge *ch, const char *vault_host, sq_err *err);

/* Parses a KeyBundle (or a KeyItem) JSON object into out (already
 * initialised). Unknown fields are ignored; a missing kid, a malformed kid or
 * wrong types are SQ_EPARSE. */
sq_code sq_kv_parse_key(const json_t *bundle, sq_kv_key *out, sq_err *err);

/* Splits a kid "https://host[:port]/keys/NAME[/VERSION]" into vault origin,
 * name and version (version "" when absent). */
sq_code sq_kv_split_kid(const char *kid, char *vault, size_t vault_len, char *name,
                        size_t name_len, char *version, size_t version_len, sq_err *err);

/* Builds the JSON import body ({"Hsm":..,"key":{JWK},...}) from a PEM RSA
 * private key into out (bounded; caller frees with sq_buf_free_wipe). */
sq_code sq_kv_import_body(const char *pem, size_t pem_len, const sq_kv_import_params *p,
                          sq_buf *out, sq_err *err);

#endif
