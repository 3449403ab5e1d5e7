/* operator/keypolicy.h — the pure decisions of the KeyVault, VaultKey and
 * ManagedIdentity controllers (cert-manager's policies shape: gather a
 * snapshot, decide here without I/O, act in the controller).
 *
 *   KeyVault         sq_kvault_assess: is the vault usable for TDE (reachable,
 *                    soft delete + purge protection, the ARM resource matches
 *                    the spec)?
 *   VaultKey         sq_vk_decide: the next write (create, import, rotate,
 *                    restore into a secondary) or none, the current version,
 *                    replication, expiry and the kstatus verdict;
 *                    sq_vk_versions_json: status.versions from the snapshot;
 *                    sq_vk_referrers: who still needs the key (finalizer).
 *   ManagedIdentity  sq_access_*: get/wrapKey/unwrapKey from a vault's access
 *                    policies or from role assignments, and the pending
 *                    window after a grant (Azure SQL sees permission changes
 *                    about 10 minutes late, azure-api.md §5).
 *
 * Everything is total: any input, including a half-observed or malformed
 * one, yields a verdict. Time is Unix seconds (wall) unless a name says _ms.
 * json_t arguments are borrowed; returned json_t* are new (caller decrefs). */
#ifndef SQLTDE_OPERATOR_KEYPOLICY_H
#define SQLTDE_OPERATOR_KEYPOLICY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "sqltde/azure/cloud.h"
#include "sqltde/azure/keyvault.h"
#include "sqltde/azure/vaults.h"
#include "sqltde/crypto/thumbprint.h"
#include "sqltde/err.h"

/* ---- shared ------------------------------------------------------------- */

typedef enum sq_kstate {
  SQ_KSTATE_READY = 0,   /* Ready=True */
  SQ_KSTATE_RECONCILING, /* Ready=Unknown, Reconciling=True: work or a wait in progress */
  SQ_KSTATE_RETRYING,    /* Ready=False, Reconciling=True: transient failure, retried with backoff */
  SQ_KSTATE_STALLED,     /* Ready=False, Stalled=True: needs a change to spec or environment */
} sq_kstate;

typedef struct sq_verdict {
  sq_kstate state;
  char reason[64];
  char message[1024];
  int64_t requeue_ms; /* > 0: look again after this long (0: the controller's resync) */
} sq_verdict;

/* Sets v (printf-style message). */
void sq_verdict_set(sq_verdict *v, sq_kstate st, const char *reason, int64_t requeue_ms,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* "https://KV1.vault.azure.net:443/" -> origin "https://kv1.vault.azure.net:443"
 * (lower-cased, no trailing '/') and name "kv1". SQ_EINVAL if uri is not
 * https://NAME.DOMAIN[:port][/]. Either output may be NULL. */
sq_code sq_vault_uri_split(const char *uri, char *origin, size_t origin_len, char *name,
                           size_t name_len);

/* ARM id of a vault: /subscriptions/S/resourceGroups/G/providers/Microsoft.KeyVault/vaults/N.
 * SQ_ETOOBIG if it does not fit. */
sq_code sq_vault_arm_id(const char *sub, const char *rg, const char *name, char *out, size_t outlen);

/* ---- KeyVault ------------------------------------------------------------ */

typedef struct sq_kvault_obs {
  /* ARM GET of the vault resource */
  sq_code arm_code;          /* SQ_OK: answered 200 */
  char arm_error[384];       /* otherwise: what failed (no secrets) */
  int soft_delete;           /* properties.enableSoftDelete (absent = true: Azure's default since 2020) */
  int purge_protection;      /* properties.enablePurgeProtection (absent = false) */
  int rbac;                  /* properties.enableRbacAuthorization */
  char arm_vault_uri[SQ_AZ_URL_MAX]; /* properties.vaultUri */
  char arm_location[64];     /* location */
  char arm_tenant[64];       /* properties.tenantId */
  /* data-plane probe */
  int probed;                /* 0: not attempted (ARM failed first) */
  sq_code dp_code;           /* the probe's result: SQ_OK / SQ_ENOTFOUND / SQ_EFORBIDDEN... */
  char dp_error[384];
} sq_kvault_obs;

/* Copies the flags and identity of a vault resource (azure/vaults.h) into o. */
void sq_kvault_obs_from_vault(const sq_vault *v, sq_kvault_obs *o);

/* Whether a data-plane answer shows the vault is there: any HTTP answer
 * (200, 401, 403, 404...) does; transport errors, timeouts and 5xx don't. */
int sq_kvault_dp_reachable(sq_code dp_code);

/* The verdict for a vault: Ready only when ARM answered, the resource
 * matches spec (vaultUri host, tenant, location), the data plane answered,
 * and soft delete and purge protection are both on (Azure SQL refuses other
 * vaults). Reasons: VaultNotFound, ArmAccessDenied, ArmUnavailable (retrying),
 * VaultUriMismatch, TenantMismatch, LocationMismatch, Unreachable (retrying),
 * SoftDeleteDisabled, PurgeProtectionDisabled, SoftDeleteAndPurgeProtectionDisabled,
 * VaultReady. */
void sq_kvault_assess(const char *spec_uri, const char *spec_location, const char *spec_tenant,
                      const sq_kvault_obs *o, sq_verdict *out);

/* "East US" / "eastus" / "EASTUS" compare equal (ARM normalises regions). */
int sq_region_eq(const char *a, const char *b);

/* ---- VaultKey ------------------------------------------------------------ */

#define SQ_VK_MAX_VAULTS 8
/* Versions tracked per vault (newest kept). A key rotated monthly for ten
 * years has 120; the bound keeps one reconcile's memory and status small. */
#define SQ_VK_MAX_VERSIONS 128
/* Tag put on versions the operator creates by rotation: the trigger value
 * that caused it, so a crash between the rotation and the status write never
 * rotates twice for one trigger. */
#define SQ_VK_TRIGGER_TAG "sqltde-rotation-trigger"
#define SQ_VK_TRIGGER_MAX 64
/* Waiting for something outside (an adopted key to appear, a vault): look
 * again after a minute, never in a hot loop. */
#define SQ_VK_WAIT_MS (60 * 1000)

typedef enum sq_vk_source { SQ_VK_SRC_GENERATE = 0, SQ_VK_SRC_IMPORT, SQ_VK_SRC_EXISTING } sq_vk_source;
typedef enum sq_vk_repl { SQ_VK_REPL_BACKUP_RESTORE = 0, SQ_VK_REPL_IMPORT } sq_vk_repl;

typedef enum sq_vault_state {
  SQ_VAULT_MISSING = 0,       /* no such KeyVault object */
  SQ_VAULT_WAITING,           /* not Ready yet, or transiently failing */
  SQ_VAULT_STALLED,           /* Stalled: needs a change (e.g. purge protection off) */
  SQ_VAULT_READY,
} sq_vault_state;

typedef struct sq_vk_version {
  char version[SQ_KV_VERSION_MAX];
  char thumbprint[SQ_THUMBPRINT_HEX_LEN + 1]; /* "" = unknown */
  int enabled;                /* 1, 0, or -1 (not reported: enabled) */
  int64_t created, nbf, exp;  /* 0 = not set */
  char trigger[SQ_VK_TRIGGER_MAX]; /* SQ_VK_TRIGGER_TAG value, "" if none */
  char kty[16];
  int key_size;
} sq_vk_version;

typedef struct sq_vk_vault {
  char name[254];              /* KeyVault object name */
  char origin[SQ_AZ_URL_MAX];  /* https://host[:port] */
  char subscription[64];
  sq_vault_state state;
  char state_reason[64];       /* the KeyVault's Ready reason */
  int observed;                /* versions were listed this pass */
  int key_exists;              /* the key name exists in this vault */
  sq_vk_version v[SQ_VK_MAX_VERSIONS]; /* newest first (sq_vk_sort_versions) */
  size_t n;
  int truncated;               /* more versions than SQ_VK_MAX_VERSIONS */
  char refused_thumbprint[SQ_THUMBPRINT_HEX_LEN + 1]; /* replication of this material into
                                                         * this vault was refused for good */
  char refused_reason[64];
} sq_vk_vault;

typedef struct sq_vk_input {
  int64_t now;
  char key_name[128];
  sq_vk_source source;
  char kty[16];                /* generate: RSA / RSA-HSM */
  int size;                    /* generate: bits */
  sq_vk_repl replication;
  int64_t rotation_every_ms;   /* 0 = no schedule */
  char trigger[SQ_VK_TRIGGER_MAX];       /* spec.rotation.trigger, "" = none */
  char last_trigger[SQ_VK_TRIGGER_MAX];  /* status.lastRotationTrigger */
  int adopted;                 /* status.currentVersion was set: the key was seen before */
  int64_t expiry_warning_ms;
  char pem_thumbprint[SQ_THUMBPRINT_HEX_LEN + 1]; /* import: the Secret's key, "" otherwise */
  size_t n_vaults;             /* [0] is the primary */
  sq_vk_vault vaults[SQ_VK_MAX_VAULTS];
} sq_vk_input;

typedef enum sq_vk_action {
  SQ_VK_ACT_NONE = 0,
  SQ_VK_ACT_CREATE,  /* generate the key in the primary */
  SQ_VK_ACT_IMPORT,  /* import the Secret's PEM into vaults[vault] */
  SQ_VK_ACT_ROTATE,  /* a new version in the primary, tagged with the trigger */
  SQ_VK_ACT_RESTORE, /* back up the primary's key and restore it into vaults[vault] */
} sq_vk_action;

const char *sq_vk_action_name(sq_vk_action a);

typedef struct sq_vk_decision {
  sq_vk_action action;
  int vault;                   /* target vault index for IMPORT / RESTORE */
  char why[256];               /* one line for logs and Events */
  int current;                 /* index into vaults[0].v of the current version, -1 none */
  /* replication: Replicated condition */
  int replicated;              /* 1 True, 0 False, -1 Unknown */
  char repl_reason[64];
  char repl_message[768];
  int holds[SQ_VK_MAX_VAULTS]; /* vault i holds the current material */
  /* health of the current version */
  int disabled, expired, expiring, not_yet_valid;
  char trigger_to_record[SQ_VK_TRIGGER_MAX]; /* status.lastRotationTrigger to write */
  char rotate_tag[SQ_VK_TRIGGER_MAX]; /* ROTATE: SQ_VK_TRIGGER_TAG value for the new version
                                       * ("" for a scheduled rotation) */
  sq_verdict verdict;          /* kstatus when action == NONE */
} sq_vk_decision;

/* Sorts a vault's versions newest first (created desc, then version desc). */
void sq_vk_sort_versions(sq_vk_vault *v);

/* Index of the version with that thumbprint in v, -1 if none. */
int sq_vk_find_thumbprint(const sq_vk_vault *v, const char *thumbprint);

/* Decides. `in` is only read. The rules, in order:
 *   primary vault not Ready          -> wait (no write anywhere)
 *   key absent from the primary      -> generate: CREATE; import: IMPORT[0];
 *                                       existing: wait (KeyNotFound, 1 min)
 *   import and no primary version
 *     holds the Secret's material    -> IMPORT[0] (the Secret changed)
 *   rotation (one vault only)        -> ROTATE when the trigger changed since
 *                                       it last fired (never on first sight of
 *                                       the key) or the current version is
 *                                       older than rotation.every
 *   each Ready secondary lacking the
 *     current thumbprint             -> backupRestore: RESTORE when the key
 *                                       name is free there and the vault is in
 *                                       the primary's subscription, else
 *                                       refused (RestoreConflict,
 *                                       BackupRestoreAcrossSubscriptions);
 *                                       import: IMPORT when the Secret's PEM is
 *                                       the current material, else PemMismatch
 *   health of the current version    -> KeyDisabled / KeyExpired (Stalled),
 *                                       KeyNotYetValid (waiting), ExpiringSoon
 * verdict.requeue_ms is when something time-based is next due (nbf, the
 * expiry warning, expiry, the rotation schedule), 0 if nothing is. */
void sq_vk_decide(const sq_vk_input *in, sq_vk_decision *out);

/* status.versions from the snapshot: one entry per version of the primary
 * (newest first) with the names of the vaults holding the same material and
 * where ("locations": [{vault, version}]), then material found only in
 * secondaries. At most SQ_VK_MAX_VERSIONS entries. NULL on ENOMEM. */
json_t *sq_vk_versions_json(const sq_vk_input *in, const char *key_name);

/* A thumbprint remembered in status.versions[].locations for (vault name,
 * version), so versions already seen are never fetched again (a version's
 * material never changes). Copies into out and returns 1, or 0. */
int sq_vk_cached_thumbprint(const json_t *status, const char *vault, const char *version,
                            char out[SQ_THUMBPRINT_HEX_LEN + 1]);

/* Fills v->v[] with what status.versions remembers about vault v->name
 * (version, thumbprint; enabled/created/expires of the entry), for a vault
 * that cannot be read this pass, so status does not forget it. Sets
 * key_exists when anything was found; observed stays 0. */
void sq_vk_vault_from_status(const json_t *status, sq_vk_vault *v);

/* Who still references VaultKey vk_name: SqlDatabases (spec.encryptionProtector.vaultKey.name,
 * spec.keys[].vaultKey, or a key URI of this key in status.protectorKeyUri /
 * currentKeys[].keyUri / keyHistory[].keyUri — retained backups need those) and
 * SqlServers (spec.protector.vaultKey.name, status.protectorKeyUri). key_prefixes
 * are "https://origin/keys/NAME" for each vault of the key (may be NULL/0).
 * dbs and servers are arrays of objects (NULL = none). Writes "SqlDatabase db1
 * (spec.encryptionProtector), SqlServer s1 (spec.protector)" into out (cut
 * with ", ..." when long) and returns the number of referrers. Objects being
 * deleted still count: they may still be using the key. */
size_t sq_vk_referrers(const json_t *dbs, const json_t *servers, const char *vk_name,
                       const char *const *key_prefixes, size_t n_prefixes, char *out, size_t outlen);

/* Whether a change of KeyVault vault_name (now Ready = vault_ready) matters to
 * VaultKey vk: vk lists the vault and its status.vaults[] entry for it is
 * missing or records a different readiness, and vk is not waiting on an
 * InvalidSpec. Used by the map function so a vault's periodic probe does not
 * wake every key in it. */
int sq_vk_vault_change_matters(const json_t *vk, const char *vault_name, int vault_ready);

/* Inspects a PEM private key (PKCS#1 or PKCS#8, unencrypted): RSA only.
 * Fills bits and thumbprint. SQ_EPARSE (not a PEM private key / not RSA:
 * err says which, never the content). Nothing secret is kept. */
sq_code sq_vk_pem_inspect(const char *pem, size_t len, int *bits,
                          char thumbprint[SQ_THUMBPRINT_HEX_LEN + 1], sq_err *err);

/* ---- ManagedIdentity ------------------------------------------------------ */

/* Permission bits, as plan/plan_types.h's SQ_PERM_*. */
#define SQ_ACCESS_GET 1u
#define SQ_ACCESS_WRAP 2u
#define SQ_ACCESS_UNWRAP 4u
#define SQ_ACCESS_ALL 7u

/* Built-in role definition ids (azure-api.md §5). */
#define SQ_ROLE_KV_CRYPTO_SERVICE_ENCRYPTION_USER "e147488a-f6f5-4113-8e2d-b22465e65bf6"
#define SQ_ROLE_KV_CRYPTO_OFFICER "14b46e9e-c2b7-41b4-b07b-48a6ebf60603"
#define SQ_ROLE_KV_ADMINISTRATOR "00482a5a-887f-4fb3-b363-3b7fe8e74483"
#define SQ_ROLE_KV_CRYPTO_USER "12338af0-0e69-4776-bea7-57ae8d297424"
#define SQ_ROLE_KV_READER "21090545-7ca7-4776-b22c-e363652d74d2"

/* The key permissions a built-in role grants (by id or full
 * roleDefinitionId ending in the id); 0 for any other role. */
unsigned sq_access_role_perms(const char *role_definition_id);

/* Access-policy model: the SQ_ACCESS_* bits among an access policy's key
 * permissions (azure/vaults.h SQ_KP_*, e.g. from sq_vault_key_perms). */
unsigned sq_access_from_policy(unsigned kp_bits);

/* RBAC model: the union over role assignments (from sq_role_assignments_list
 * at the key's scope: at it or above) for principal_id whose scope covers
 * the key: the vault scope itself, any ancestor (resource group,
 * subscription, management group, "/"), or vault_scope + "/keys/" + key_name.
 * Anything else (another vault or key sharing a prefix) does not count. */
unsigned sq_access_rbac_perms(const sq_role_assignment *ra, size_t n, const char *principal_id,
                              const char *vault_scope, const char *key_name);

/* "get, wrapKey, unwrapKey" for the bits in missing ("" for 0). */
void sq_access_names(unsigned bits, char *out, size_t outlen);

typedef enum sq_access_state {
  SQ_ACC_GRANTED = 0, /* all three, granted long enough ago */
  SQ_ACC_PENDING,     /* all three, but granted < permission delay ago */
  SQ_ACC_MISSING,     /* some permission missing */
  SQ_ACC_UNKNOWN,     /* could not be checked (vault unreadable, reference missing) */
  SQ_ACC_UNVERIFIED,  /* cannot be checked from here (cross-tenant key) */
} sq_access_state;

const char *sq_access_state_name(sq_access_state s);

/* grantedAt to record: 0 unless all three are held; else the previous
 * record if there was one, else what Azure says about when (observed_granted_s
 * > 0, capped at now; 0 when unknown), else now (first seen). */
int64_t sq_access_granted_at(unsigned perms, int64_t prev_granted_s, int64_t observed_granted_s,
                             int64_t now);

/* GRANTED / PENDING / MISSING from the bits and the recorded grant time. */
sq_access_state sq_access_state_of(unsigned perms, int64_t granted_s, int64_t now,
                                   int64_t delay_ms);

#endif
