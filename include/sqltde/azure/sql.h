/* azure/sql.h — typed Microsoft.Sql operations the controllers need.
 *
 * Thin, typed layer over sq_arm (azure/arm.h): builds request bodies for the
 * TDE customer-managed-key surface (azure-api.md §1-2) and parses answers
 * into bounded C structs. Unknown response fields are ignored; a field with
 * the wrong type, an over-long value or a missing id is SQ_EPARSE naming the
 * field. Every call runs its long-running operation to completion (with the
 * ARM client's deadline) and returns the final resource.
 *
 * Ids are ARM resource ids ("/subscriptions/.../servers/s/databases/d"); the
 * helpers sq_sql_*_id build them from names. Managed-instance keys and
 * protectors use the same functions as servers: pass the managed instance id
 * as the parent.
 *
 * Ownership: every parsed struct owns its heap parts (key lists, long ids);
 * release with the matching *_free, which also accepts a zeroed struct.
 * Output structs are reset by the call (free them first if reused). */
#ifndef SQLTDE_AZURE_SQL_H
#define SQLTDE_AZURE_SQL_H

#include <jansson.h>
#include <stdint.h>

#include "sqltde/azure/arm.h"
#include "sqltde/err.h"

/* api-version for every Microsoft.Sql call (azure-api.md §1.1). */
#define SQ_SQL_API_VERSION "2025-01-01"

#define SQ_SQL_MAX_KEYS 512      /* keys map entries we accept in one database */
#define SQ_SQL_MAX_UMIS 8        /* user-assigned identities on one resource */
#define SQ_SQL_MAX_PARTNERS 16   /* failover group partner servers */
#define SQ_SQL_MAX_FOG_DBS 4096  /* databases in one failover group */
#define SQ_SQL_ID_MAX 512        /* resource ids */
#define SQ_SQL_URI_MAX 1024      /* Key Vault key URIs */

typedef struct sq_sql_umi {
  char id[SQ_SQL_ID_MAX];
  char principal_id[48];
  char client_id[48];
} sq_sql_umi;

typedef struct sq_sql_identity {
  char type[48];          /* "None", "UserAssigned", "SystemAssigned", ... ("" absent) */
  char tenant_id[48];
  char principal_id[48];  /* system-assigned */
  size_t n_umis;
  sq_sql_umi umis[SQ_SQL_MAX_UMIS];
} sq_sql_identity;

/* One entry of a database's "keys" map (values are all read-only). */
typedef struct sq_sql_db_key {
  char uri[SQ_SQL_URI_MAX];
  char type[32];
  char thumbprint[48];
  int64_t creation_date;   /* wall seconds; 0 absent */
  char subregion[64];
  char key_version[80];
} sq_sql_db_key;

typedef struct sq_sql_database {
  char id[SQ_SQL_ID_MAX];
  char name[128];
  char location[64];
  char kind[64];
  char sku_name[64];
  char sku_tier[64];
  sq_sql_identity identity;
  char status[48];
  char database_id[48];
  char create_mode[48];
  char secondary_type[16];
  char encryption_protector[SQ_SQL_URI_MAX];  /* "" = server-level encryption */
  int auto_rotation;                          /* -1 absent */
  char federated_client_id[48];
  size_t n_keys;
  sq_sql_db_key *keys;                        /* owned (only with $expand) */
  int keys_present;                           /* the response carried a keys map */
  char failover_group_id[SQ_SQL_ID_MAX];
  char source_database_id[SQ_SQL_ID_MAX];
  int64_t creation_date, earliest_restore_date;
  char provisioning_state[32];
} sq_sql_database;

void sq_sql_database_free(sq_sql_database *d);

/* Which key set a database GET expands. */
typedef enum sq_sql_keys_filter {
  SQ_SQL_KEYS_NONE = 0,    /* plain GET: protector and identity only */
  SQ_SQL_KEYS_ALL,         /* $expand=keys */
  SQ_SQL_KEYS_CURRENT,     /* $expand=keys($filter=pointInTime('current')) */
  SQ_SQL_KEYS_AT,          /* $expand=keys($filter=pointInTime('<RFC 3339>')) */
} sq_sql_keys_filter;

/* Builds the (percent-encoded) query for a filter into out; at is wall
 * seconds for SQ_SQL_KEYS_AT. "" for NONE. */
sq_code sq_sql_expand_query(sq_sql_keys_filter f, int64_t at, char *out, size_t outlen,
                            sq_err *err);

/* ---- ids ---- */
sq_code sq_sql_server_id(const char *sub, const char *rg, const char *server, char *out,
                         size_t outlen, sq_err *err);
sq_code sq_sql_database_id(const char *server_id, const char *db, char *out, size_t outlen,
                           sq_err *err);
sq_code sq_sql_mi_id(const char *sub, const char *rg, const char *mi, char *out, size_t outlen,
                     sq_err *err);

/* Server key name for a Key Vault key URI (azure-api.md §2.1):
 * https://V.vault.azure.net/keys/K/VER -> "V_K_VER"; versionless -> "V_K". */
sq_code sq_sql_server_key_name(const char *key_uri, char *out, size_t outlen, sq_err *err);

/* ---- databases ---- */

sq_code sq_sql_db_parse(const json_t *j, sq_sql_database *out, sq_err *err);

sq_code sq_sql_db_get(sq_arm *a, const char *db_id, sq_sql_keys_filter f, int64_t at,
                      sq_sql_database *out, sq_err *err);

/* Calls fn for each database of a server (fn borrows d). Return non-zero to stop. */
typedef int (*sq_sql_db_fn)(void *ud, const sq_sql_database *d);
sq_code sq_sql_db_list(sq_arm *a, const char *server_id, sq_sql_db_fn fn, void *ud, sq_err *err);
sq_code sq_sql_db_list_inaccessible(sq_arm *a, const char *server_id, sq_sql_db_fn fn, void *ud,
                                    sq_err *err);

typedef enum sq_sql_create_mode {
  SQ_SQL_CREATE_DEFAULT = 0,
  SQ_SQL_CREATE_COPY,
  SQ_SQL_CREATE_SECONDARY,
  SQ_SQL_CREATE_PITR,               /* PointInTimeRestore */
  SQ_SQL_CREATE_RESTORE,            /* deleted database */
  SQ_SQL_CREATE_RECOVERY,           /* geo-restore */
  SQ_SQL_CREATE_RESTORE_EXT,        /* RestoreExternalBackup */
  SQ_SQL_CREATE_RESTORE_EXT_SECONDARY,
  SQ_SQL_CREATE_RESTORE_LTR,        /* RestoreLongTermRetentionBackup */
  SQ_SQL_CREATE_ONLINE_SECONDARY,
} sq_sql_create_mode;

/* Wire name ("Default", "PointInTimeRestore", ...). */
const char *sq_sql_create_mode_name(sq_sql_create_mode m);

typedef struct sq_sql_db_create_args {
  const char *location;                 /* required */
  sq_sql_create_mode mode;
  const char *sku_name, *sku_tier;      /* optional */
  const char *source_database_id;       /* Copy, Secondary, PITR, Restore, Recovery */
  int64_t restore_point_in_time;        /* PITR (required), Restore (optional); wall s */
  int64_t source_database_deletion_date;/* Restore by original id */
  const char *restorable_dropped_database_id; /* Restore */
  const char *recoverable_database_id;  /* Recovery (alternative to source id) */
  const char *ltr_backup_id;            /* RestoreLongTermRetentionBackup */
  const char *recovery_services_recovery_point_id; /* RestoreLongTermRetentionBackup alt. */
  const char *secondary_type;           /* "Geo", "Named", "Standby" (Secondary) */
  const char *elastic_pool_id;
  const char *collation;
  int64_t max_size_bytes;               /* 0 = default */
  const char *umi_id;                   /* user-assigned identity (required with keys) */
  const char *const *keys;              /* key URIs, NULL-terminated, or NULL */
  const char *encryption_protector;     /* key URI or NULL (server-level encryption) */
  int auto_rotation;                    /* -1 unset, 0, 1 */
  const char *federated_client_id;      /* cross-tenant app id or NULL */
  const json_t *tags;                   /* optional */
  const json_t *extra_properties;       /* optional: merged into "properties" (e.g. the
                                           storage fields of RestoreExternalBackup) */
} sq_sql_db_create_args;

/* Builds the PUT body; checks each mode's required fields (SQ_EINVAL naming
 * the missing one). Caller owns the result. */
sq_code sq_sql_db_create_body(const sq_sql_db_create_args *c, json_t **out, sq_err *err);
sq_code sq_sql_db_create(sq_arm *a, const char *db_id, const sq_sql_db_create_args *c,
                         sq_sql_database *out, sq_err *err);

typedef struct sq_sql_db_patch_args {
  const char *umi_set;                  /* add/keep this identity ({}), type UserAssigned */
  const char *const *umi_remove;        /* identities to drop (null), NULL-terminated */
  const char *const *keys_add;          /* key URIs to add ({}) */
  const char *const *keys_remove;       /* key URIs to remove (null) */
  const char *encryption_protector;     /* NULL = unchanged */
  int auto_rotation;                    /* -1 unchanged */
  const char *federated_client_id;      /* NULL unchanged; "" sends null (clears it) */
} sq_sql_db_patch_args;

sq_code sq_sql_db_patch_body(const sq_sql_db_patch_args *p, json_t **out, sq_err *err);

/* {"type":"UserAssigned","userAssignedIdentities":{set:{}, remove...:null}}
 * ("type" only with set), the identity block of databases and servers; a
 * failure is recorded in *bad (sq_json_put). */
json_t *sq_sql_umi_identity(int *bad, const char *set, const char *const *remove);
sq_code sq_sql_db_patch(sq_arm *a, const char *db_id, const sq_sql_db_patch_args *p,
                        sq_sql_database *out, sq_err *err);

/* DELETE; a database that does not exist (204/404) is success. */
sq_code sq_sql_db_delete(sq_arm *a, const char *db_id, sq_err *err);

/* POST .../encryptionProtector/current/revalidate | revert (azure-api.md §1.2). */
sq_code sq_sql_db_revalidate(sq_arm *a, const char *db_id, sq_err *err);
sq_code sq_sql_db_revert(sq_arm *a, const char *db_id, sq_err *err);

/* ---- servers and managed instances ---- */

typedef struct sq_sql_server {
  char id[SQ_SQL_ID_MAX];
  char name[128];
  char location[64];
  char kind[64];
  sq_sql_identity identity;
  char primary_umi_id[SQ_SQL_ID_MAX];   /* properties.primaryUserAssignedIdentityId */
  char key_id[SQ_SQL_URI_MAX];          /* properties.keyId */
  char federated_client_id[48];
  char state[48];
  char fqdn[256];
} sq_sql_server;

sq_code sq_sql_server_parse(const json_t *j, sq_sql_server *out, sq_err *err);
/* Works for servers and managed instances (same identity/keyId shape). */
sq_code sq_sql_server_get(sq_arm *a, const char *id, sq_sql_server *out, sq_err *err);

/* servers/keys and managedInstances/keys */
typedef struct sq_sql_server_key {
  char id[SQ_SQL_ID_MAX];
  char name[256];
  char kind[32];
  char server_key_type[32];   /* "AzureKeyVault" | "ServiceManaged" */
  char uri[SQ_SQL_URI_MAX];
  char thumbprint[48];
  int64_t creation_date;
  int auto_rotation_enabled;  /* -1 absent */
  char key_version[80];
} sq_sql_server_key;

sq_code sq_sql_server_key_parse(const json_t *j, sq_sql_server_key *out, sq_err *err);
typedef int (*sq_sql_server_key_fn)(void *ud, const sq_sql_server_key *k);
sq_code sq_sql_server_key_list(sq_arm *a, const char *parent_id, sq_sql_server_key_fn fn, void *ud,
                               sq_err *err);
sq_code sq_sql_server_key_get(sq_arm *a, const char *parent_id, const char *key_name,
                              sq_sql_server_key *out, sq_err *err);
/* Registers an AKV key (name derived from the URI). */
sq_code sq_sql_server_key_create(sq_arm *a, const char *parent_id, const char *key_uri,
                                 sq_sql_server_key *out, sq_err *err);
sq_code sq_sql_server_key_delete(sq_arm *a, const char *parent_id, const char *key_name,
                                 sq_err *err);

/* encryptionProtector/current of a server or managed instance */
typedef struct sq_sql_protector {
  char id[SQ_SQL_ID_MAX];
  char kind[32];
  char server_key_name[256];
  char server_key_type[32];
  char uri[SQ_SQL_URI_MAX];
  char thumbprint[48];
  int auto_rotation_enabled;  /* -1 absent */
  char key_version[80];
} sq_sql_protector;

sq_code sq_sql_protector_parse(const json_t *j, sq_sql_protector *out, sq_err *err);
sq_code sq_sql_protector_get(sq_arm *a, const char *parent_id, sq_sql_protector *out, sq_err *err);
/* server_key_name NULL -> service-managed ("ServiceManaged"). auto_rotation -1 = not sent. */
sq_code sq_sql_protector_set(sq_arm *a, const char *parent_id, const char *server_key_name,
                             int auto_rotation, sq_sql_protector *out, sq_err *err);
sq_code sq_sql_protector_revalidate(sq_arm *a, const char *parent_id, sq_err *err);

/* ---- geo replication ---- */

typedef struct sq_sql_repl_link {
  char id[SQ_SQL_ID_MAX];
  char name[128];
  char partner_server[128];
  char partner_database[128];
  char partner_location[64];
  char role[32];
  char partner_role[32];
  char replication_mode[16];
  char replication_state[32];
  char link_type[16];
  int percent_complete;
  int is_termination_allowed;  /* -1 absent */
  int64_t start_time;
} sq_sql_repl_link;

sq_code sq_sql_repl_link_parse(const json_t *j, sq_sql_repl_link *out, sq_err *err);
typedef int (*sq_sql_repl_fn)(void *ud, const sq_sql_repl_link *l);
/* parent_id: a database id (its links) or a server id (all links). */
sq_code sq_sql_repl_list(sq_arm *a, const char *parent_id, sq_sql_repl_fn fn, void *ud, sq_err *err);
sq_code sq_sql_repl_get(sq_arm *a, const char *link_id, sq_sql_repl_link *out, sq_err *err);
sq_code sq_sql_repl_delete(sq_arm *a, const char *link_id, sq_err *err);
sq_code sq_sql_repl_failover(sq_arm *a, const char *link_id, int allow_data_loss, sq_err *err);

typedef struct sq_sql_fog {
  char id[SQ_SQL_ID_MAX];
  char name[128];
  char location[64];
  char failover_policy[16];      /* readWriteEndpoint.failoverPolicy */
  int grace_minutes;             /* failoverWithDataLossGracePeriodMinutes; -1 absent */
  char readonly_policy[16];      /* readOnlyEndpoint.failoverPolicy */
  char replication_role[32];
  char replication_state[32];
  size_t n_partners;
  struct {
    char id[SQ_SQL_ID_MAX];
    char location[64];
    char role[32];
  } partners[SQ_SQL_MAX_PARTNERS];
  size_t n_databases;
  char **databases;              /* owned ids */
} sq_sql_fog;

void sq_sql_fog_free(sq_sql_fog *f);
sq_code sq_sql_fog_parse(const json_t *j, sq_sql_fog *out, sq_err *err);

typedef struct sq_sql_fog_spec {
  const char *const *partner_server_ids;  /* NULL-terminated, at least one */
  const char *const *database_ids;        /* NULL-terminated or NULL */
  const char *failover_policy;            /* "Manual" | "Automatic" */
  int grace_minutes;                      /* required with Automatic; 0 = not sent */
  const char *readonly_policy;            /* "Disabled" | "Enabled" | NULL */
} sq_sql_fog_spec;

sq_code sq_sql_fog_body(const sq_sql_fog_spec *s, json_t **out, sq_err *err);
sq_code sq_sql_fog_get(sq_arm *a, const char *fog_id, sq_sql_fog *out, sq_err *err);
typedef int (*sq_sql_fog_fn)(void *ud, const sq_sql_fog *f);
sq_code sq_sql_fog_list(sq_arm *a, const char *server_id, sq_sql_fog_fn fn, void *ud, sq_err *err);
sq_code sq_sql_fog_put(sq_arm *a, const char *fog_id, const sq_sql_fog_spec *s, sq_sql_fog *out,
                       sq_err *err);
/* PATCH of the member databases only. */
sq_code sq_sql_fog_set_databases(sq_arm *a, const char *fog_id, const char *const *database_ids,
                                 sq_sql_fog *out, sq_err *err);
sq_code sq_sql_fog_delete(sq_arm *a, const char *fog_id, sq_err *err);
/* POST failover / forceFailoverAllowDataLoss (on the secondary's group). */
sq_code sq_sql_fog_failover(sq_arm *a, const char *fog_id, int allow_data_loss, sq_err *err);

/* ---- backups ---- */

typedef struct sq_sql_dropped_db {
  char id[SQ_SQL_ID_MAX];
  char name[192];              /* "db,133201549661600000" */
  char database_name[128];
  int64_t creation_date, deletion_date, earliest_restore_date;
  size_t n_keys;
  sq_sql_db_key *keys;         /* owned; with $expand */
} sq_sql_dropped_db;

void sq_sql_dropped_db_free(sq_sql_dropped_db *d);
sq_code sq_sql_dropped_db_parse(const json_t *j, sq_sql_dropped_db *out, sq_err *err);
typedef int (*sq_sql_dropped_fn)(void *ud, const sq_sql_dropped_db *d);
sq_code sq_sql_dropped_list(sq_arm *a, const char *server_id, sq_sql_dropped_fn fn, void *ud,
                            sq_err *err);
sq_code sq_sql_dropped_get(sq_arm *a, const char *dropped_id, sq_sql_keys_filter f, int64_t at,
                           sq_sql_dropped_db *out, sq_err *err);

typedef struct sq_sql_ltr_backup {
  char id[SQ_SQL_ID_MAX];
  char name[192];
  char server_name[128];
  char database_name[128];
  int64_t server_create_time, database_deletion_time, backup_time, backup_expiration_time;
  char storage_redundancy[32];
} sq_sql_ltr_backup;

sq_code sq_sql_ltr_parse(const json_t *j, sq_sql_ltr_backup *out, sq_err *err);
typedef int (*sq_sql_ltr_fn)(void *ud, const sq_sql_ltr_backup *b);
/* LTR backups of one database: rg NULL = subscription scope
 * (/subscriptions/S/providers/Microsoft.Sql/locations/L/longTermRetentionServers/
 * SRV/longTermRetentionDatabases/DB/longTermRetentionBackups), else the
 * resource-group scoped path. */
sq_code sq_sql_ltr_list(sq_arm *a, const char *sub, const char *rg, const char *location,
                        const char *server, const char *database, sq_sql_ltr_fn fn, void *ud,
                        sq_err *err);

#endif
