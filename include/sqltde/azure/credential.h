/* azure/credential.h — Microsoft Entra ID tokens for the operator.
 *
 * One sq_azure_cred per process. It is picked from the standard environment
 * the way the Azure SDKs' DefaultAzureCredential picks (EnvironmentCredential,
 * then WorkloadIdentityCredential, then ManagedIdentityCredential), restricted
 * to what an operator in Kubernetes uses. The choice is made once, at start,
 * from which variables are set (not by trying each at run time), so a token
 * failure is reported as that credential's failure instead of silently
 * switching identity:
 *
 *   1. client secret       AZURE_TENANT_ID + AZURE_CLIENT_ID + AZURE_CLIENT_SECRET
 *   2. client certificate  AZURE_TENANT_ID + AZURE_CLIENT_ID + AZURE_CLIENT_CERTIFICATE_PATH
 *                          (PEM holding the certificate and its private key;
 *                          AZURE_CLIENT_CERTIFICATE_PASSWORD if the key is encrypted)
 *   3. workload identity   AZURE_TENANT_ID + AZURE_CLIENT_ID + AZURE_FEDERATED_TOKEN_FILE
 *                          (the file is re-read on every exchange: kubelet rotates it)
 *   4. managed identity    IMDS; AZURE_CLIENT_ID, when set, selects a user-assigned
 *                          identity (client_id=); AZURE_POD_IDENTITY_AUTHORITY_HOST
 *                          replaces the IMDS origin http://169.254.169.254 (as the
 *                          Azure SDKs/MSAL do). IDENTITY_ENDPOINT/MSI_ENDPOINT
 *                          (App Service, Arc, Cloud Shell protocols) are not supported.
 * AZURE_AUTHORITY_HOST (trailing '/' dropped) replaces the cloud's authority for
 * 1-3. AZURE_ADDITIONALLY_ALLOWED_TENANTS (";"-separated, "*" = any) lists
 * the tenants other than AZURE_TENANT_ID a token may be requested for (a
 * cross-tenant vault names its tenant in its 401 challenge). AZURE_TOKEN_CREDENTIALS
 * = EnvironmentCredential | WorkloadIdentityCredential | ManagedIdentityCredential
 * forces one kind (an SDK variable too). A partial set (e.g. a secret without a
 * tenant) is skipped with a warning, as the SDK's chain skips it.
 *
 * Client certificate: the assertion is a JWT signed PS256 (RSASSA-PSS, SHA-256,
 * MGF1-SHA-256, salt 32 bytes) with header {"alg":"PS256","typ":"JWT",
 * "x5t#S256":b64url(SHA-256(cert DER)),"x5t":b64url(SHA-1(cert DER))} — the
 * current Entra documentation's form (azure-api.md §6.3); x5t is added for
 * endpoints that still look for it. Claims aud (the token URL), iss = sub =
 * client id, jti (random UUID), nbf = iat = now, exp = now + 10 min.
 *
 * Token cache: per (tenant, scope), thread-safe, single-flight (concurrent
 * callers wait for the one refresh in progress, or keep using a still-valid
 * token meanwhile). A token is refreshed once it is within min(5 min,
 * lifetime/2) of expiry. A failed refresh while the old token is still valid
 * returns the old token and retries no sooner than 10 s later.
 *
 * Secrets (client secret, key password, tokens, assertions, request bodies)
 * are wiped when dropped and never logged or put in error messages. */
#ifndef SQLTDE_AZURE_CREDENTIAL_H
#define SQLTDE_AZURE_CREDENTIAL_H

#include <limits.h>
#include <stdint.h>

#include "sqltde/azure/cloud.h"
#include "sqltde/azure/pipeline.h"
#include "sqltde/err.h"

typedef enum sq_azure_cred_kind {
  SQ_AZCRED_SECRET = 1,
  SQ_AZCRED_CERT,
  SQ_AZCRED_WORKLOAD,
  SQ_AZCRED_IMDS,
} sq_azure_cred_kind;

/* Stable name: "client-secret", "client-certificate", "workload-identity",
 * "managed-identity". */
const char *sq_azure_cred_kind_name(sq_azure_cred_kind k);

typedef struct sq_azure_cred_config {
  sq_azure_cred_kind kind;
  char tenant_id[128];
  char client_id[128];
  char *client_secret;                 /* owned; wiped by sq_azure_cred_config_clear */
  char cert_path[PATH_MAX];
  char *cert_password;                 /* owned; wiped */
  char federated_token_file[PATH_MAX];
  char authority_host[SQ_AZ_URL_MAX];  /* "" -> the cloud's */
  char imds_origin[SQ_AZ_URL_MAX];     /* "" -> http://169.254.169.254 */
  char additional_tenants[1024];       /* ";"-separated; "*" = any */
} sq_azure_cred_config;

/* Environment lookup, injectable for tests; NULL -> getenv. */
typedef const char *(*sq_getenv_fn)(void *ud, const char *name);

/* Fills cfg from the environment as described above. SQ_EINVAL for a
 * malformed value (a tenant id with '/', an unknown AZURE_TOKEN_CREDENTIALS). */
sq_code sq_azure_cred_config_from_env(sq_getenv_fn getenv_fn, void *ud, sq_azure_cred_config *cfg,
                                      sq_err *err);

/* Wipes and frees the secrets in cfg. */
void sq_azure_cred_config_clear(sq_azure_cred_config *cfg);

typedef struct sq_azure_cred sq_azure_cred;

/* Creates the credential. cfg is copied (the caller still clears its own).
 * pipe is copied; pipe->http must outlive the credential. A certificate is
 * loaded once here to fail early; it is read again on every exchange so a
 * rotated Secret is picked up. */
sq_code sq_azure_cred_new(const sq_azure_cloud *cloud, const sq_azure_cred_config *cfg,
                          const sq_azure_pipeline *pipe, sq_azure_cred **out, sq_err *err);
void sq_azure_cred_free(sq_azure_cred *c);

sq_azure_cred_kind sq_azure_cred_kind_of(const sq_azure_cred *c);
/* The configured tenant ("" for managed identity). */
const char *sq_azure_cred_tenant(const sq_azure_cred *c);

typedef struct sq_azure_token {
  char *value;            /* owned; sq_azure_token_clear wipes it */
  int64_t expires_on;     /* wall-clock seconds */
} sq_azure_token;

void sq_azure_token_clear(sq_azure_token *t);

/* A token for scope (e.g. "https://vault.azure.net/.default") in tenant (NULL
 * or "" -> the credential's own). Another tenant must be allowed (see above),
 * else SQ_EFORBIDDEN with reason "TenantNotAllowed". Managed identity ignores
 * the tenant (IMDS has none). The returned copy belongs to the caller. */
sq_code sq_azure_cred_token(sq_azure_cred *c, const char *tenant, const char *scope,
                            sq_azure_token *out, sq_err *err);

/* Drops the cached token for (tenant, scope) if it is still `rejected` (a
 * service answered 401 to it), so the next sq_azure_cred_token fetches a new
 * one; a token already replaced by another thread is kept. */
void sq_azure_cred_invalidate(sq_azure_cred *c, const char *tenant, const char *scope,
                              const char *rejected);

/* Number of token requests sent to Entra/IMDS so far (for tests and metrics). */
uint64_t sq_azure_cred_exchanges(const sq_azure_cred *c);

/* ---- pure helpers (unit-tested) ---- */

/* Parses an Entra v2 or IMDS token response. expires_in may be a number or a
 * numeric string; if absent, expires_on (Unix seconds, string or number) is
 * used against now_wall_s. *lifetime_s gets the remaining lifetime.
 * token_out is owned by the caller (sq_free_secret). */
sq_code sq_azure_parse_token_response(const char *body, size_t len, int64_t now_wall_s,
                                      char **token_out, int64_t *lifetime_s, sq_err *err);

/* Milliseconds after issue at which a token of lifetime_ms is refreshed:
 * lifetime - min(5 min, lifetime / 2). */
int64_t sq_azure_refresh_after_ms(int64_t lifetime_ms);

/* Builds a client assertion JWT for certificate auth from a PEM holding the
 * certificate and the RSA private key (password may be NULL). aud is the token
 * URL. now is wall seconds. *jwt_out is owned by the caller (sq_free_secret). */
sq_code sq_azure_client_assertion(const char *pem, size_t pem_len, const char *password,
                                  const char *client_id, const char *aud, int64_t now,
                                  char **jwt_out, sq_err *err);

/* True if tenant may be used: equal to home, or listed in allowed (";"-separated,
 * "*" = any). Tenant ids are compared case-insensitively. */
int sq_azure_tenant_allowed(const char *home, const char *allowed, const char *tenant);

/* True for a tenant id that is safe in a URL path: [A-Za-z0-9.-], 1-127 chars. */
int sq_azure_tenant_valid(const char *tenant);

#endif
