/* azc.h — harness for the Azure client integration tests: starts the project's
 * Azure emulator (HTTPS on loopback, its own CA) in a scratch directory with
 * tests/azure-clients/seed.yaml and freshly made credentials, builds the
 * matching custom cloud (through a cloud file, as a user would), drives the
 * emulator's test-control API (faults, virtual clock, settings, request log)
 * and captures this process's log lines so tests can prove no secret or token
 * was ever logged.
 *
 * Environment: SQLTDE_EMULATOR (the emulator executable) and SQLTDE_AZC_SRC
 * (this folder) are set by CMake. */
#ifndef SQLTDE_AZC_H
#define SQLTDE_AZC_H

#include <jansson.h>
#include <sys/types.h>

#include "sqltde/azure/arm.h"
#include "sqltde/azure/cloud.h"
#include "sqltde/azure/credential.h"
#include "sqltde/azure/keyvault.h"
#include "sqltde/azure/pipeline.h"
#include "sqltde/http.h"

/* seed.yaml's identities */
#define AZC_TENANT "11111111-1111-4111-8111-111111111111"
#define AZC_TENANT_B "22222222-2222-4222-8222-222222222222"
#define AZC_SUB "aaaaaaaa-0000-4000-8000-000000000001"
#define AZC_OPERATOR_CLIENT "0a0a0a0a-0000-4000-8000-000000000001"
#define AZC_OPERATOR_OID "0b0b0b0b-0000-4000-8000-000000000001"
#define AZC_OPERATOR_SECRET "azc-Operator-Secret-7f3c9e"
#define AZC_NOBODY_CLIENT "0a0a0a0a-0000-4000-8000-000000000002"
#define AZC_NOBODY_SECRET "azc-Nobody-Secret-51d2aa"
#define AZC_UMI_CLIENT "0c0c0c0c-0000-4000-8000-000000000001"
#define AZC_ISSUER "https://oidc.localhost/azc"
#define AZC_SA_SUBJECT "system:serviceaccount:sqltde-system:sqltde-operator"

typedef struct azc {
  char dir[256];
  pid_t pid;
  int port;
  char ca_file[1024];
  char cert_pem_path[320];   /* operator certificate + key */
  char issuer_key_path[320]; /* federated token signing key */
  char client_log[320];      /* this process's stderr */
  int saved_stderr;
  sq_azure_cloud cloud;
  sq_http *http;             /* trusts the emulator's CA */
  char vault_east[128], vault_west[128], vault_eu[128], vault_fabrikam[128];
} azc;

/* Starts everything; on failure prints why and returns non-zero. */
int azc_start(azc *a);
/* Stops the emulator, restores stderr (echoing the captured log to it) and
 * removes the scratch directory. */
void azc_stop(azc *a);

/* A pipeline with the defaults, the harness's HTTP client and fast backoff
 * (base_ms) so retry tests stay short. */
void azc_pipeline(const azc *a, sq_azure_pipeline *p, int64_t base_ms);

/* Calls the control API (method, "/_emulator/..."); *out gets the JSON body
 * (may be NULL). Returns the HTTP status, or -1 on transport error. */
long azc_control(azc *a, const char *method, const char *path, const json_t *body, json_t **out);

/* Adds a fault ({"kind":"status",...}); returns its id in id (64 bytes) or -1. */
int azc_fault(azc *a, json_t *spec, char *id);
int azc_faults_clear(azc *a);
int azc_clock_advance(azc *a, int64_t ms);
int64_t azc_clock_now_ms(azc *a);
int azc_settings(azc *a, json_t *patch);
/* Request log entries after seq since matching host ("" any) and path prefix;
 * returns the "value" array (owned) and the last seq in *last. */
json_t *azc_requests(azc *a, long long since, const char *host, const char *prefix, long long *last);
long long azc_requests_last(azc *a);

/* An RS256 JWT from the test issuer for the operator's service account,
 * valid [nbf, exp] in emulator time (seconds). Caller frees (sq_free_secret). */
char *azc_federated_token(azc *a, int64_t nbf, int64_t exp);

/* Writes content to path atomically (rename), as the kubelet does. */
int azc_write_file(const char *path, const char *content);

/* 1 if the captured log of this process contains needle. */
int azc_log_contains(azc *a, const char *needle);

/* Environment lookup over a NULL-terminated {name, value, ...} list. */
const char *azc_env(void *ud, const char *name);

/* Starts the emulator once per process (exits on failure; stops it at exit)
 * and fills *p with a test pipeline (backoff base 100 ms) and *cred with the
 * seed's operator application (client secret). */
void azc_setup_operator(azc *a, sq_azure_pipeline *p, sq_azure_cred **cred);

/* azc_setup_operator, then the operator's ARM client (LRO timeout 120 s) and
 * Key Vault client on that credential; either out may be NULL. Exits on
 * failure; the clients are freed at exit, before the credential. */
void azc_operator_clients(azc *a, sq_azure_cred **cred, sq_arm **arm, sq_kv **kv);

/* Creates RSA-2048 key name in vault through kv and copies its kid (exits on
 * failure). */
void azc_make_key(sq_kv *kv, const char *vault, const char *name, char kid[SQ_KV_KID_MAX]);

#endif
