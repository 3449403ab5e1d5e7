/* plan/plan_types.h — the data the pure planners read and write.
 *
 * A controller gathers one snapshot (desired objects + observed Azure state +
 * key facts + the last failed attempt), calls sq_plan_db() or
 * sq_plan_server() (plan/plan.h) and gets back an sq_plan: an ordered list of
 * idempotent steps and a verdict. Nothing here does I/O.
 *
 * Memory: every string in an input is a malloc'd copy owned by the input
 * (set them with sq_plan_set_str / sq_plan_list_add / sq_plan_facts_add_*);
 * sq_plan_db_input_free / sq_plan_server_input_free release them. A
 * zero-initialised input is valid (and empty). Every array is bounded by the
 * limits below; adding past a bound is SQ_ETOOBIG, so a snapshot can never
 * grow without limit, whatever Azure returns.
 *
 * Key URIs are Key Vault key identifiers, https://{vault}.{dns}/keys/{name}[/{version}].
 * They are compared case-insensitively, ignoring a trailing '/'. Desired key
 * URIs are versioned (the controller resolves a VaultKey + optional pinned
 * version before planning). Time is Unix seconds (wall clock), durations in
 * plans are milliseconds. */
#ifndef SQLTDE_PLAN_TYPES_H
#define SQLTDE_PLAN_TYPES_H

#include <stddef.h>
#include <stdint.h>

#include "sqltde/err.h"

/* Azure SQL allows at most 4 geo-secondaries per database. */
#define SQ_PLAN_MAX_SECONDARIES 4
/* Room to hold (and refuse with InvalidSpec) a spec that slipped past the CRD
 * schema with more than 4, and to observe undeclared replicas. */
#define SQ_PLAN_SECONDARY_SLOTS 8
/* Any list (keys, identities): the CRD allows 64 extra keys; a database that
 * has seen many rotations can hold more versions than that. */
#define SQ_PLAN_LIST_MAX 128
/* Distinct key facts / (key, identity) access facts per snapshot. */
#define SQ_PLAN_FACTS_MAX 512
/* Longest string accepted anywhere (ARM ids are < 1 KiB, key URIs < 300 B). */
#define SQ_PLAN_STR_MAX 2048
/* Longest plan: 9 databases x the step kinds is well below this. */
#define SQ_PLAN_MAX_STEPS 64
#define SQ_PLAN_MAX_FINDINGS 32
#define SQ_PLAN_DESC_MAX 512

/* Azure SQL applies Key Vault permission changes about 10 minutes after they
 * are made (azure-api.md §5): a grant younger than this is still pending. */
#define SQ_PLAN_GRANT_DELAY_S 600
/* Auto-rotation moves a database to a new key version within 24 h (§7). */
#define SQ_PLAN_AUTOROTATE_S (24 * 3600)

/* ---- bounded string list --------------------------------------------- */

/* A set of owned strings (dedup on add, order of first insertion kept).
 * Zero-initialised = empty. */
typedef struct sq_plan_list {
  char **v;
  size_t n, cap;
} sq_plan_list;

/* Adds a copy of s unless an equal entry (sq_plan_uri_eq) is present.
 * SQ_EINVAL for NULL/empty/longer than SQ_PLAN_STR_MAX; SQ_ETOOBIG past
 * SQ_PLAN_LIST_MAX entries; SQ_ENOMEM. */
sq_code sq_plan_list_add(sq_plan_list *l, const char *s, sq_err *err);
/* 1 if an entry equals s (sq_plan_uri_eq). */
int sq_plan_list_has(const sq_plan_list *l, const char *s);
void sq_plan_list_free(sq_plan_list *l);

/* Replaces *dst with a copy of s (NULL clears). SQ_EINVAL if s is longer
 * than SQ_PLAN_STR_MAX; SQ_ENOMEM. */
sq_code sq_plan_set_str(char **dst, const char *s, sq_err *err);

/* Key URIs and ARM ids: equal ignoring ASCII case and one trailing '/'.
 * NULL equals only NULL. */
int sq_plan_uri_eq(const char *a, const char *b);
/* 1 if a and b name the same Key Vault key (vault + key name), whatever
 * their versions; 0 if either does not parse. */
int sq_plan_same_key(const char *a, const char *b);
/* 1 if uri parses as https://host/keys/name[/version] with a sane host,
 * name and (when present) version. */
int sq_plan_key_uri_valid(const char *uri);

/* ---- enums shared by inputs ------------------------------------------- */

/* A logical server's protector as observed (or desired for SqlServer). */
typedef enum sq_plan_server_enc {
  SQ_SERVER_ENC_UNKNOWN = 0,      /* not observed / (desired) not managed */
  SQ_SERVER_ENC_SERVICE_MANAGED,  /* SMK */
  SQ_SERVER_ENC_CUSTOMER_MANAGED, /* CMK (AzureKeyVault) */
} sq_plan_server_enc;

/* What a SqlDatabase asks for. */
typedef enum sq_plan_db_enc {
  SQ_DB_ENC_SERVER_LEVEL = 0, /* no database-level protector (CRD: encryptionProtector absent) */
  SQ_DB_ENC_CUSTOMER_MANAGED, /* database-level CMK: protector_uri */
  SQ_DB_ENC_SERVICE_MANAGED,  /* explicitly service-managed: only on an SMK server
                               * (no CRD field yet; rule "a database can't opt into
                               * SMK when the server is CMK") */
} sq_plan_db_enc;

typedef enum sq_plan_deletion {
  SQ_DELETION_RETAIN = 0, /* default: deleting the object never drops the database */
  SQ_DELETION_DELETE,
} sq_plan_deletion;

/* properties.status of a database, folded to what the planner needs. */
typedef enum sq_plan_db_status {
  SQ_DB_STATUS_UNKNOWN = 0,
  SQ_DB_STATUS_ONLINE,
  SQ_DB_STATUS_CREATING,
  SQ_DB_STATUS_INACCESSIBLE, /* the CMK-lost state */
  SQ_DB_STATUS_OTHER,        /* Scaling, Paused, Restoring, ...: not writable now */
} sq_plan_db_status;

/* "Online" -> ONLINE, "Creating" -> CREATING, "Inaccessible" -> INACCESSIBLE,
 * any other non-empty string -> OTHER, NULL/"" -> UNKNOWN (case-sensitive, as
 * ARM sends them). */
sq_plan_db_status sq_plan_db_status_parse(const char *azure_status);

typedef enum sq_plan_role {
  SQ_ROLE_PRIMARY = 0, /* also: not geo-replicated */
  SQ_ROLE_SECONDARY,
} sq_plan_role;

/* ---- key facts (one per distinct key URI) ------------------------------ */

typedef struct sq_plan_key_fact {
  char *uri;           /* owned */
  int exists;          /* 0: Key Vault says 404 / deleted */
  int enabled;         /* attributes.enabled */
  int64_t nbf_s;       /* attributes.nbf, 0 = none */
  int64_t exp_s;       /* attributes.exp, 0 = none */
  int64_t created_s;   /* attributes.created, 0 = unknown (auto-rotation overdue check) */
  char thumbprint[41]; /* 40 hex or "" */
} sq_plan_key_fact;

typedef enum sq_plan_access_state {
  /* not checked (or cannot be, e.g. cross-tenant): proceed, finding AccessUnverified */
  SQ_ACCESS_UNKNOWN = 0,
  SQ_ACCESS_GRANTED,
  SQ_ACCESS_MISSING,
} sq_plan_access_state;

/* Permissions Azure SQL needs on a key (access policy or the RBAC role
 * "Key Vault Crypto Service Encryption User"). */
#define SQ_PERM_GET 1u
#define SQ_PERM_WRAP 2u
#define SQ_PERM_UNWRAP 4u
#define SQ_PERM_ALL (SQ_PERM_GET | SQ_PERM_WRAP | SQ_PERM_UNWRAP)

/* Whether one identity can use one key (from the ManagedIdentity controller). */
typedef struct sq_plan_access {
  char *key_uri;     /* owned */
  char *identity_id; /* owned; UMI ARM resource id */
  sq_plan_access_state state;
  unsigned missing;  /* SQ_PERM_* bits missing when state == MISSING */
  int64_t granted_s; /* when the last needed permission was granted; 0 = long ago/unknown */
} sq_plan_access;

typedef struct sq_plan_facts {
  sq_plan_key_fact *keys;
  size_t n_keys, cap_keys;
  sq_plan_access *access;
  size_t n_access, cap_access;
} sq_plan_facts;

/* Copies k (its uri too) into f; a later fact for the same uri replaces the
 * earlier one. SQ_EINVAL (bad uri), SQ_ETOOBIG, SQ_ENOMEM. */
sq_code sq_plan_facts_add_key(sq_plan_facts *f, const sq_plan_key_fact *k, sq_err *err);
/* Same for an access fact, keyed by (key_uri, identity_id). */
sq_code sq_plan_facts_add_access(sq_plan_facts *f, const sq_plan_access *a, sq_err *err);
/* Borrowed lookups; NULL when absent. */
const sq_plan_key_fact *sq_plan_facts_key(const sq_plan_facts *f, const char *uri);
const sq_plan_access *sq_plan_facts_access(const sq_plan_facts *f, const char *uri,
                                           const char *identity_id);
void sq_plan_facts_free(sq_plan_facts *f);

/* The executor's record of the last failed step (kept in status so a restart
 * does not lose it; losing it costs at most one extra failed attempt). */
typedef struct sq_plan_failure {
  /* ARM error code, e.g. PerDatabaseCMKKeyRotationAttemptedWhileOldThumbprintInUse; NULL = none */
  char *code;
  char *server_id;   /* server of the database the failed step targeted */
  int64_t at_s;      /* when it failed */
  unsigned attempts; /* consecutive failures with this code (>= 1) */
} sq_plan_failure;

/* ---- SqlDatabase: desired ------------------------------------------------ */

typedef struct sq_plan_desired_secondary {
  char *server_id;   /* ARM id of the secondary's server */
  char *identity_id; /* UMI for the replica; NULL = the primary's identity_id */
  char *location;    /* region of that server (for the create body) */
} sq_plan_desired_secondary;

typedef struct sq_plan_desired_db {
  int invalid;               /* 1: the controller's own validation failed ... */
  char *invalid_message;     /* ... naming the field and the rule -> InvalidSpec */
  char *unresolved;          /* a reference that is missing/not ready, e.g.
                              * "VaultKey key-a not found" -> Waiting ReferenceNotFound */
  char *server_id;           /* ARM id of the primary's server (from SqlServer) */
  char *name;                /* database name */
  char *location;            /* the server's region (create) */
  char *sku_name, *sku_tier; /* create only; NULL = Azure's default */
  char *identity_id;         /* the database's single UMI; NULL = none / leave */
  char *federated_client_id; /* cross-tenant app id; NULL = none */
  sq_plan_db_enc encryption;
  char *protector_uri;  /* versioned key URI when encryption == CUSTOMER_MANAGED */
  int protector_pinned; /* spec pinned the version */
  sq_plan_list keys;    /* extra keys (versioned URIs) */
  int auto_rotation;
  sq_plan_desired_secondary secondaries[SQ_PLAN_SECONDARY_SLOTS];
  size_t n_secondaries;
  sq_plan_deletion deletion_policy;
  int being_deleted; /* metadata.deletionTimestamp is set */
} sq_plan_desired_db;

/* ---- SqlDatabase: observed (one database) ------------------------------- */

typedef struct sq_plan_observed_db {
  int known;                            /* 0: not observed (GET failed / not gathered yet) */
  int exists;                           /* 0: 404 */
  char *server_id;                      /* hosting server (identifies a secondary) */
  sq_plan_server_enc server_encryption; /* that server's protector type */
  sq_plan_db_status status;
  char *status_text; /* Azure's string, for messages */
  sq_plan_role role;
  sq_plan_list identities; /* identity.userAssignedIdentities keys */
  char *protector_uri;     /* properties.encryptionProtector; NULL = server-level */
  int auto_rotation;       /* properties.encryptionProtectorAutoRotation */
  char *federated_client_id;
  sq_plan_list keys;         /* $expand=keys: every key in the database's map */
  sq_plan_list current_keys; /* pointInTime('current'): protector + keys of active VLFs */
  sq_plan_list backup_keys;  /* keys retained backups need: pointInTime(earliestRestoreDate)
                              * plus the key history inside the retention window */
  int keys_complete;         /* 1 when keys, current_keys and backup_keys were all
                              * gathered; 0 -> the planner removes no key at all */
} sq_plan_observed_db;

typedef struct sq_plan_db_input {
  int64_t now; /* wall clock, Unix seconds */
  sq_plan_desired_db desired;
  sq_plan_observed_db primary;
  /* One entry per desired secondary (exists = 0 when the replica is absent;
   * a desired secondary without an entry means "not observed" and the
   * planner waits) plus any replica Azure reports that the spec does not
   * declare (kept in step with the protector, never created or deleted). */
  sq_plan_observed_db secondaries[SQ_PLAN_SECONDARY_SLOTS];
  size_t n_secondaries;
  sq_plan_facts facts; /* every key URI the plan may pass, with access per identity */
  sq_plan_failure last_failure;
} sq_plan_db_input;

void sq_plan_db_input_free(sq_plan_db_input *in);

/* ---- SqlServer ----------------------------------------------------------- */

typedef struct sq_plan_desired_server {
  int invalid;
  char *invalid_message;
  char *unresolved;
  char *server_id;
  char *identity_id;             /* primary UMI; NULL = leave identity alone */
  sq_plan_server_enc encryption; /* UNKNOWN = spec.protector absent: not managed */
  char *key_uri;                 /* versioned, when CUSTOMER_MANAGED */
  int auto_rotation;
  int being_deleted; /* adopted servers are never deleted: release */
} sq_plan_desired_server;

typedef struct sq_plan_observed_server {
  int known;
  int exists;
  int system_assigned;           /* identity.type includes SystemAssigned (kept on PATCH) */
  sq_plan_list identities;       /* userAssignedIdentities keys */
  char *primary_identity_id;     /* properties.primaryUserAssignedIdentityId */
  sq_plan_server_enc encryption; /* encryptionProtector/current serverKeyType */
  char *protector_uri;           /* its uri when AzureKeyVault */
  int auto_rotation;
  sq_plan_list server_keys; /* uris of servers/keys (AzureKeyVault ones) */
} sq_plan_observed_server;

typedef struct sq_plan_server_input {
  int64_t now;
  sq_plan_desired_server desired;
  sq_plan_observed_server observed;
  sq_plan_facts facts;
} sq_plan_server_input;

void sq_plan_server_input_free(sq_plan_server_input *in);

/* ---- the plan ------------------------------------------------------------ */

typedef enum sq_plan_step_kind {
  /* database steps (sq_plan_db) */
  SQ_STEP_CREATE_DATABASE = 0,
  SQ_STEP_SET_IDENTITY,
  SQ_STEP_SET_FEDERATED_CLIENT_ID,
  SQ_STEP_ADD_KEYS,
  SQ_STEP_SET_AUTO_ROTATION,
  SQ_STEP_SET_PROTECTOR,
  SQ_STEP_REMOVE_KEYS,
  SQ_STEP_REVALIDATE,
  SQ_STEP_REVERT,
  SQ_STEP_DELETE_DATABASE,
  /* server steps (sq_plan_server) */
  SQ_STEP_SET_SERVER_IDENTITY,
  SQ_STEP_ADD_SERVER_KEY,
  SQ_STEP_SET_SERVER_PROTECTOR,
  SQ_STEP_SET_SERVER_SERVICE_MANAGED,
  SQ_STEP_KIND_COUNT
} sq_plan_step_kind;

typedef enum sq_plan_target {
  SQ_TARGET_PRIMARY = 0, /* the SqlDatabase's own database */
  SQ_TARGET_SECONDARY,   /* one of its geo-secondaries */
  SQ_TARGET_SERVER,      /* the logical server itself */
} sq_plan_target;

typedef enum sq_plan_create_mode {
  SQ_CREATE_DEFAULT = 0,
  SQ_CREATE_SECONDARY, /* geo-secondary: sourceDatabaseId = the primary */
} sq_plan_create_mode;

/* One idempotent write. Which fields are set depends on kind:
 *   CreateDatabase   create_mode, location, sku_*, identity_id (opt),
 *                    keys (every entry {}), protector_uri (opt),
 *                    auto_rotation, federated_client_id (opt),
 *                    source_database_id (Secondary)
 *   SetIdentity      identity_id (exactly this one UMI remains),
 *                    remove_identities (entries sent as null)
 *   SetFederatedClientId  federated_client_id (NULL = clear)
 *   AddKeys          keys (entries {}; never changes the protector)
 *   SetAutoRotation  auto_rotation
 *   SetProtector     protector_uri, keys (= {protector}, entries {}), auto_rotation
 *   RemoveKeys       remove_keys (entries sent as null)
 *   Revalidate, Revert, DeleteDatabase   (no payload)
 *   SetServerIdentity     identity_id (added and made primary), system_assigned (keep it)
 *   AddServerKey          keys (one uri)
 *   SetServerProtector    protector_uri, auto_rotation
 *   SetServerServiceManaged  (no payload)
 * All strings are owned by the plan. */
typedef struct sq_plan_step {
  sq_plan_step_kind kind;
  sq_plan_target target;
  int secondary;   /* index into desired.secondaries, or -1 (primary, server, undeclared) */
  char *server_id; /* server the request goes to */
  char *database;  /* database name; NULL for server steps */
  sq_plan_create_mode create_mode;
  char *source_database_id;
  char *location, *sku_name, *sku_tier;
  char *identity_id;
  int system_assigned;
  sq_plan_list remove_identities;
  sq_plan_list keys;
  sq_plan_list remove_keys;
  char *protector_uri;
  int auto_rotation;
  char *federated_client_id;
  char description[SQ_PLAN_DESC_MAX]; /* one line for status.plan and Events */
} sq_plan_step;

typedef enum sq_plan_verdict {
  SQ_PLAN_CONVERGED = 0, /* nothing to write: Ready */
  SQ_PLAN_PROGRESSING,   /* steps[0] is ready to execute now */
  SQ_PLAN_WAITING,       /* nothing to execute yet; re-plan after retry_after_ms */
  SQ_PLAN_REFUSED,       /* will not act until spec (or environment) changes */
} sq_plan_verdict;

/* Machine-readable reasons (condition reasons are their names). */
typedef enum sq_plan_reason {
  SQ_REASON_NONE = 0,
  /* converged */
  SQ_REASON_UP_TO_DATE,
  SQ_REASON_RETAINED, /* deleted with Retain: release, no Azure call */
  SQ_REASON_DELETED,  /* deleted with Delete: nothing left in Azure */
  /* progressing */
  SQ_REASON_PROGRESSING,
  /* waiting */
  SQ_REASON_OBSERVATION_INCOMPLETE,
  SQ_REASON_REFERENCE_NOT_FOUND,
  SQ_REASON_DATABASE_BUSY,
  SQ_REASON_DATABASE_INACCESSIBLE,
  SQ_REASON_SERVER_NOT_OBSERVED,
  SQ_REASON_KEY_NOT_OBSERVED,
  SQ_REASON_KEY_NOT_FOUND,
  SQ_REASON_KEY_DISABLED,
  SQ_REASON_KEY_EXPIRED,
  SQ_REASON_KEY_NOT_YET_VALID,
  SQ_REASON_PERMISSION_PENDING,
  SQ_REASON_ROTATION_BLOCKED,
  /* refused */
  SQ_REASON_INVALID_SPEC,
  SQ_REASON_IDENTITY_MISSING_PERMISSIONS,
  SQ_REASON_REVERT_NOT_ALLOWED_WITH_SERVER_CMK,
  SQ_REASON_OPT_IN_TO_SMK_NOT_ALLOWED,
  SQ_REASON_UNDECLARED_SECONDARY,
  SQ_REASON_SERVER_NOT_FOUND,
  /* findings only (warnings / information) */
  SQ_REASON_KEY_REMOVAL_WOULD_STRAND_BACKUP,
  SQ_REASON_KEY_REMOVAL_DEFERRED,
  SQ_REASON_AUTO_ROTATION_OVERDUE,
  SQ_REASON_MULTIPLE_IDENTITIES,
  SQ_REASON_ACCESS_UNVERIFIED,
  SQ_REASON_PLAN_TRUNCATED,
  SQ_REASON_COUNT
} sq_plan_reason;

typedef struct sq_plan_finding {
  sq_plan_reason reason;
  char *message; /* owned */
} sq_plan_finding;

/* The planner's answer. Zero-initialise, pass to sq_plan_db/server, release
 * with sq_plan_free. */
typedef struct sq_plan {
  sq_plan_verdict verdict;
  sq_plan_reason reason;  /* why this verdict */
  char *message;          /* one line naming the rule; owned */
  int64_t retry_after_ms; /* Waiting/Refused: re-plan after this (0 = on the next change only) */
  sq_plan_step *steps;    /* owned, n_steps entries; empty unless PROGRESSING */
  size_t n_steps;
  sq_plan_finding *findings; /* owned; warnings and what blocks later steps */
  size_t n_findings;
} sq_plan;

void sq_plan_free(sq_plan *p);

#endif
