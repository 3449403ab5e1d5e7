/* sql.h — the emulator's Microsoft.Sql provider: logical servers, databases
 * with database-level customer-managed keys, managed instances, geo
 * replication, failover groups, backups (azure-api.md §1, §2, §3.4, §7).
 *
 * Hooks into the framework (emu.h):
 *   - emu_sql_routes[]      route table (ARM + /_emulator/sql control), listed in routes.c
 *   - emu_sql_schema        schema component "sql", listed in state.c's emu_schemas
 *   - emu_sql_lro_hook      one LRO completion hook (kind "Microsoft.Sql"; the
 *                           operation name travels in the LRO input as "op")
 *   - emu_sql_tick(e)       time-driven behaviour, run once per request (dispatch.c)
 *
 * Crypto model (sql_kv.c, sql_store.c). Each database has a random 256-bit
 * DEK that is never stored in clear: it is wrapped (RSA-OAEP-256) by the
 * protector's RSA key -- a Key Vault key read from the emulator's own vault
 * state *as the identity that SQL would use* (the database's UMI for a
 * database-level protector, the server's identity for server-level CMK), or
 * the emulator's service key for service-managed TDE. Data records are
 * AES-256-GCM under the DEK. Log segments (VLFs) carry the thumbprint of the
 * protector of their time and their own copy of the DEK wrapped by it, so
 * reading (restoring) them really needs every key they name. The wrap
 * history per database gives point-in-time backups; purging a key makes the
 * data it protects unreadable for good.
 *
 * SQL's view of Key Vault permissions lags the vault's by a configurable
 * delay (Azure: ~10 minutes, azure-api.md §5): sql_kv.c observes grants and
 * revocations per (vault, key, principal) and answers from that view.
 *
 * Everything runs under the emulator's request mutex (emu.h); nothing here
 * locks. Time is always the virtual clock. */
#ifndef SQLTDE_EMU_SQL_H
#define SQLTDE_EMU_SQL_H

#include <jansson.h>
#include <stdint.h>

#include "emu.h"
#include "sqltde/crypto/thumbprint.h"

/* ---- registration ---- */
extern const emu_route emu_sql_routes[];
extern const emu_schema emu_sql_schema;
extern const emu_lro_hook emu_sql_lro_hook;
void emu_sql_tick(emu *e);

#define SQL_LRO_KIND "Microsoft.Sql"
#define SQL_URI_MAX 1024
#define SQL_RID_MAX 1024
#define SQL_DEK_LEN 32

/* ---- provider settings (PATCH /_emulator/sql/settings; meta "sql_settings") ---- */
typedef struct sql_settings {
  int64_t key_check_interval_ms;   /* periodic protector checks (Azure: 10 min) */
  int64_t inaccessible_after_ms;   /* 4xx-type failures before Inaccessible (Azure: 30 min) */
  int64_t network_grace_ms;        /* 5xx/network failures before Inaccessible (Azure: 24 h) */
  int64_t permission_delay_ms;     /* Key Vault permission propagation (Azure: ~10 min) */
  int64_t autorotation_window_ms;  /* new key version picked up after (Azure: within 24 h) */
  int64_t pitr_retention_ms;       /* point-in-time restore window (Azure default 7 days) */
  int64_t dropped_retention_ms;    /* restorable dropped databases kept */
  int64_t list_page_size;          /* items per page of list answers (nextLink) */
  int max_geo_secondaries;         /* 4 */
} sql_settings;

void sql_settings_load(emu *e, sql_settings *s);
sq_code sql_settings_apply(emu *e, const json_t *patch, sq_err *err);
json_t *sql_settings_json(const sql_settings *s);

/* ---- Key Vault access as an identity (sql_kv.c) ---- */
enum { SQLKV_GET = 1, SQLKV_WRAP = 2, SQLKV_UNWRAP = 4, SQLKV_ALL = 7 };

typedef enum sqlkv_status {
  SK_OK = 0,
  SK_BADURI,     /* not a Key Vault key URI */
  SK_NOVAULT,    /* no such vault (DNS would fail) */
  SK_VAULT_DOWN, /* injected vault/region outage: network-type */
  SK_DENIED,     /* the identity lacks a permission (as SQL currently sees it) */
  SK_NOTFOUND,   /* key or version does not exist (or was purged) */
  SK_DELETED,    /* soft-deleted */
  SK_DISABLED,
  SK_EXPIRED,
  SK_NOTYET,
  SK_KEYTYPE,    /* not RSA 2048/3072 */
  SK_RECOVERY,   /* vault lacks soft delete + purge protection */
  SK_NOIDENTITY, /* no identity to act as */
  SK_CRYPTO,     /* unwrap failed: wrong key material */
} sqlkv_status;

typedef struct sqlkv_ref {
  char vault[EMU_ID_MAX];
  char name[EMU_ID_MAX];
  char version[40]; /* "" = versionless */
} sqlkv_ref;

typedef struct sqlkv_fail {
  sqlkv_status st;
  int rbac;            /* the vault uses RBAC (for the denial code) */
  char perm[16];       /* missing permission ("get", "wrapKey", "unwrapKey") */
  int64_t cause_ms;    /* when the failure started, if known (0 = unknown) */
  char detail[512];
} sqlkv_fail;

typedef struct sqlkv_key {
  sqlkv_ref ref;            /* version resolved */
  char thumb[SQ_THUMBPRINT_HEX_LEN + 1];
  int64_t created_s;
  int latest;               /* newest enabled version of its name */
  char region[EMU_ID_MAX];  /* the vault's region */
  EVP_PKEY *pkey;           /* owned; free with sqlkv_key_free */
} sqlkv_key;

void sqlkv_key_free(sqlkv_key *k);
/* Parses https://VAULT.vault.localhost[:port]/keys/NAME[/VERSION] (also *.vault.azure.net). */
int sqlkv_parse_uri(const char *uri, sqlkv_ref *out);
/* The canonical URI of a key version as this emulator names it. */
void sqlkv_uri(emu *e, const sqlkv_ref *r, char *out, size_t n);
/* Resolves uri as principal oid with the permissions in perms (SQLKV_*);
 * honours vault outages, soft delete, attributes, the SQL permission view.
 * need_recovery: also require soft delete + purge protection on the vault. */
sqlkv_status sqlkv_access(emu *e, const char *uri, const char *oid, unsigned perms, int need_recovery,
                          sqlkv_key *out, sqlkv_fail *f);
/* The latest enabled version of ref's key name, as oid sees it. */
sqlkv_status sqlkv_latest(emu *e, const sqlkv_ref *ref, const char *oid, sqlkv_key *out, sqlkv_fail *f);
/* Key's public material -> thumbprint without any permission (emulator-internal bookkeeping). */
int sqlkv_thumb_of(emu *e, const sqlkv_ref *ref, char thumb[SQ_THUMBPRINT_HEX_LEN + 1]);
/* RSA-OAEP-256 wrap / unwrap of a DEK with a resolved key. */
sq_code sqlkv_wrap(sqlkv_key *k, const unsigned char *dek, size_t n, sq_buf *out);
sq_code sqlkv_unwrap(sqlkv_key *k, const void *wrapped, size_t n, unsigned char dek[SQL_DEK_LEN]);
/* The emulator's service-managed TDE key (created once, kept in meta). */
sq_code sqlkv_service_key(emu *e, EVP_PKEY **out, char thumb[SQ_THUMBPRINT_HEX_LEN + 1]);
/* Maps a failure to the ARM status and code for a context. */
typedef enum sqlkv_ctx { SQLKV_CTX_DB = 0, SQLKV_CTX_SERVER, SQLKV_CTX_SERVER_UMI, SQLKV_CTX_MI } sqlkv_ctx;
int sqlkv_error(const sqlkv_fail *f, sqlkv_ctx ctx, const char *uri, char code[128], char msg[512]);
/* Writes that error as the ARM response. */
void sqlkv_reply_error(emu_call *c, const sqlkv_fail *f, sqlkv_ctx ctx, const char *uri);
/* Is the failure network-type (5xx grace) rather than Key Vault 4xx? */
int sqlkv_is_network(const sqlkv_fail *f);
/* Keeps SQL's delayed view of permissions current (called by emu_sql_tick). */
void sqlkv_observe_permissions(emu *e);
/* Is a grant not yet visible to SQL ("pending")? For messages. */
int sqlkv_permission_pending(emu *e, const sqlkv_ref *ref, const char *oid);

/* ---- small shared helpers (sql_store.c) ---- */
/* ms-precision RFC 3339 ("2023-02-04T01:57:42.49Z"); -1 on error. */
int64_t sql_parse_time_ms(const char *s);
static inline void sql_fmt_time_ms(int64_t ms, char *out, size_t n) { emu_fmt_time_ms(ms, out, n); }
/* .NET ticks of a time (restorable dropped database names). */
int64_t sql_ticks(int64_t ms);
int sql_str_ieq(const char *a, const char *b);
/* Is api-version v at least "2022-08-01" (database-level CMK fields)? */
int sql_apiver_cmk(const char *v);
/* Splits an ARM id into (sub, rg, type path segments); returns 0 on success. */
typedef struct sql_rid {
  char sub[EMU_ID_MAX], rg[EMU_ID_MAX];
  char parent_kind[24]; /* "servers" | "managedInstances" */
  char parent[EMU_ID_MAX];
  char child_kind[48];  /* "databases", "restorableDroppedDatabases", ... or "" */
  char child[256];
} sql_rid;
int sql_parse_rid(const char *id, sql_rid *out);
/* The id of r's parent (server or managed instance). */
void sql_rid_parent(const sql_rid *r, char *out, size_t n);

/* ---- outcomes: a status with ARM code and message, carried from a planner
 * to the HTTP answer or to a failed LRO (sql_db.c) ---- */
typedef struct sql_outcome {
  int status; /* 0 = ok */
  char code[128];
  char msg[512];
} sql_outcome;
/* Fills o; returns status. */
int sql_outf(sql_outcome *o, int status, const char *code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The ARM error for a Key Vault failure in context ctx; returns its status. */
int sql_out_kv(sql_outcome *o, const sqlkv_fail *f, sqlkv_ctx ctx, const char *uri);
/* Copies o into an LRO hook's failure (code[128], msg[512]); returns 1. */
int sql_out_lro(const sql_outcome *o, char code[128], char msg[512]);
/* Answers o as the ARM error. */
void sql_reply_outcome(emu_call *c, const sql_outcome *o);
/* Applies a request's "federatedClientId" (null or "" clears it) to fed;
 * 400 in o unless it is a GUID. */
int sql_fed_client_id(const json_t *v, char fed[64], sql_outcome *o);

/* ---- parents: logical servers and managed instances (sql_store.c) ---- */
typedef struct sql_parent {
  char id[SQL_RID_MAX];
  int is_mi;
  char sub[EMU_ID_MAX], rg[EMU_ID_MAX], name[EMU_ID_MAX], region[EMU_ID_MAX];
  json_t *identity;         /* {"type":..., "userAssignedIdentities":{rid:{}}, "principalId"?} owned */
  char primary_umi[SQL_RID_MAX];
  char key_id[SQL_URI_MAX];
  char fed_client_id[64];
  char prot_type[24];       /* "ServiceManaged" | "AzureKeyVault" */
  char prot_key_name[256];
  char prot_uri[SQL_URI_MAX];
  char prot_thumb[SQ_THUMBPRINT_HEX_LEN + 1];
  int prot_auto;
  char active_uri[SQL_URI_MAX]; /* MI: key actually in use (secondary vault on fallback) */
  json_t *extra;            /* other properties (administratorLogin, version...) owned */
  int64_t created_ms, next_check_ms, fail_since_ms;
  char fail_code[128];
  char state[32];           /* "Ready" | "Inaccessible" (MI whose key is unreachable) */
} sql_parent;

void sql_parent_free(sql_parent *p);
/* Loads by ARM parts (adopting the seed's row on first use); 0 if absent. */
int sql_parent_load(emu *e, int is_mi, const char *sub, const char *rg, const char *name, sql_parent *out);
int sql_parent_load_id(emu *e, const char *id, sql_parent *out);
sq_code sql_parent_save(emu *e, const sql_parent *p);
/* Adopts every seeded server/instance not yet known (tick). */
void sql_parent_adopt_all(emu *e);
/* Object id SQL uses for Key Vault as this parent ("" + SK_NOIDENTITY if none). */
sqlkv_status sql_parent_oid(emu *e, const sql_parent *p, char oid[EMU_ID_MAX], int *is_umi);
json_t *sql_parent_json(emu *e, const sql_parent *p);
json_t *sql_identity_json(emu *e, const json_t *identity, const char *tenant);

/* parent keys (servers/keys, managedInstances/keys) */
typedef struct sql_pkey {
  char name[256];
  char uri[SQL_URI_MAX];
  char thumb[SQ_THUMBPRINT_HEX_LEN + 1];
  int64_t created_ms;
  char type[24]; /* AzureKeyVault */
} sql_pkey;
int sql_pkey_get(emu *e, const char *parent_id, const char *name, sql_pkey *out);
int sql_pkey_has_thumb(emu *e, const char *parent_id, const char *thumb);
/* "{vault}_{key}_{version}" or "{vault}_{key}". */
void sql_pkey_name(const sqlkv_ref *r, char *out, size_t n);
/* Registers a key on a parent; replace: overwrite a registration of the same
 * name (a key PUT, seeding) rather than keep it (a protector change). */
sq_code sql_pkey_put(emu *e, const char *parent_id, const char *name, const char *uri, const char *thumb,
                     int64_t now, int replace);
/* Registers key k (under uri as given, NULL = its canonical URI) unless a key
 * of that name is, and makes it the parent's protector (in memory: the caller
 * saves). */
void sql_parent_use_key(emu *e, sql_parent *p, const sqlkv_key *k, const char *uri, int64_t now);
/* Points the parent's protector at a registered key (in memory). */
void sql_parent_set_protector(sql_parent *p, const char *key_name, const char *uri, const char *thumb);

/* ---- databases (sql_store.c) ---- */
typedef struct sql_db {
  int64_t uid;
  char parent_id[SQL_RID_MAX];
  int is_mi;
  char name[EMU_ID_MAX];
  char location[EMU_ID_MAX];
  char database_id[40];
  json_t *sku;              /* owned */
  json_t *tags;             /* owned */
  json_t *extra;            /* other properties kept as given, owned */
  char create_mode[40];
  char source_id[SQL_RID_MAX];
  char secondary_type[16];
  char status[24];          /* Online | Inaccessible | ... */
  char umi[SQL_RID_MAX];    /* the one user-assigned identity ("" none) */
  char fed_client_id[64];
  char prot_uri[SQL_URI_MAX]; /* database-level protector, "" = server-level */
  int auto_rot;
  char collation[64];
  int64_t max_size;
  int64_t created_ms, deleted_ms, earliest_restore_ms;
  int64_t next_check_ms, fail_since_ms;
  char fail_code[128];
  char fail_msg[512];
  /* the current wrap of the DEK */
  char dek_kind[8];         /* "smk" | "server" | "db" */
  char dek_uri[SQL_URI_MAX];
  char dek_thumb[SQ_THUMBPRINT_HEX_LEN + 1];
} sql_db;

void sql_db_free(sql_db *d);
int sql_db_load(emu *e, const char *parent_id, const char *name, sql_db *out);
int sql_db_load_uid(emu *e, int64_t uid, sql_db *out);
/* Live databases of a parent in creation order: a cursor for sql_db_next
 * (finalize it; NULL on a state error). */
sqlite3_stmt *sql_db_cursor(emu *e, const char *parent_id);
/* The next database of a cursor, or of any statement whose first column is a
 * database uid (st may be NULL); 0 at the end. */
int sql_db_next(emu *e, sqlite3_stmt *st, sql_db *out);
sq_code sql_db_save(emu *e, sql_db *d); /* inserts when uid == 0 */
void sql_db_id(const sql_db *d, char *out, size_t n);

/* keys map with history */
typedef struct sql_dbkey {
  char uri[SQL_URI_MAX];
  sqlkv_ref ref;
  char thumb[SQ_THUMBPRINT_HEX_LEN + 1];
  int64_t added_ms, removed_ms; /* removed 0 = current */
  int64_t key_created_ms;
  char subregion[EMU_ID_MAX];
} sql_dbkey;
/* Current keys (removed_ms == 0), or all rows valid at time at (at >= 0). */
int sql_dbkeys_list(emu *e, int64_t uid, int64_t at, sql_dbkey **out);
sq_code sql_dbkey_add(emu *e, int64_t uid, const sql_dbkey *k, int64_t now);
sq_code sql_dbkey_remove(emu *e, int64_t uid, const char *uri, int64_t now);

/* DEK wraps, VLFs and data (sql_store.c) */
sq_code sql_wrap_record(emu *e, int64_t uid, int64_t at, const char *kind, const char *uri, const char *thumb,
                        const void *wrapped, size_t n);
typedef struct sql_wrap {
  char kind[8];
  char uri[SQL_URI_MAX];
  char thumb[SQ_THUMBPRINT_HEX_LEN + 1];
  sq_buf wrapped; /* caller frees */
  int64_t from_ms;
} sql_wrap;
int sql_wrap_at(emu *e, int64_t uid, int64_t at, sql_wrap *out);
/* Thumbprints of VLFs active at time at (-1 = now), NUL-separated list of count entries. */
int sql_vlf_thumbs_at(emu *e, int64_t uid, int64_t at, char thumbs[][SQ_THUMBPRINT_HEX_LEN + 1], int max);

/* ---- database engine operations (sql_db.c) ---- */
/* Obtains the clear DEK of a live database through its current protector, as
 * its identity; 0 or the failure in f. */
sqlkv_status sql_db_unwrap_current(emu *e, const sql_db *d, unsigned char dek[SQL_DEK_LEN], sqlkv_fail *f,
                                   char uri_out[SQL_URI_MAX]);
/* Writes workload: records data and a new VLF under the current protector;
 * retire = mark older VLFs inactive (log truncation). */
sqlkv_status sql_db_workload(emu *e, sql_db *d, int records, int retire, const char *text, sqlkv_fail *f);
/* Decrypts the database's data records (for tests: proves the DEK works). */
sqlkv_status sql_db_read_data(emu *e, const sql_db *d, json_t **out, sqlkv_fail *f);
/* JSON of a database as ARM returns it; expand: 0 none, 1 keys (all current), 2 keys in use at 'at'. */
json_t *sql_db_json(emu *e, const sql_db *d, int expand, int64_t at, int cmk_fields);
/* Key check: evaluates access to the protector now. */
sqlkv_status sql_db_check(emu *e, const sql_db *d, sqlkv_fail *f);
/* Would rotating to new_thumb be blocked by active log under an older protector? */
int sql_db_rotation_blocked(emu *e, const sql_db *d, const char *new_thumb);

/* Creates a database from a PUT body (every createMode), as the LRO would;
 * the failure in o. */
int sql_db_create(emu *e, const json_t *body, const sql_parent *parent, const char *name, const char *apiver,
                  int64_t now, sql_db *out, sql_outcome *o);
/* Auto-rotation pickup (tick): moves to the newest key version; 1 if rotated. */
int sql_db_autorotate(emu *e, sql_db *d, int64_t now, int64_t window_ms);
/* Brings d back Online (in memory) when its protector is reachable and opens
 * its DEK now; otherwise f says why. */
sqlkv_status sql_db_reopen(emu *e, sql_db *d, sqlkv_fail *f);
/* The failure bookkeeping of a healthy check: no failure since, no reason. */
void sql_db_clear_failure(sql_db *d);

/* ---- server-side operations used across files ---- */
/* Re-wraps the DEK of every server-level database of a parent under its current protector. */
void sql_parent_rewrap_dbs(emu *e, const sql_parent *p, int64_t now);
/* uids of the live databases of parent_id under its server-level protector
 * (only the Inaccessible ones with inaccessible). */
int sql_server_level_dbs(emu *e, const char *parent_id, int inaccessible, int64_t *out, int max);
/* Checks a parent's protector (MI: falls back to a same-thumbprint key in another vault on outage). */
sqlkv_status sql_parent_check(emu *e, sql_parent *p, sqlkv_fail *f);

/* ---- LRO plumbing (sql_db.c) ---- */
/* Starts an LRO of operation op ("CreateLogicalDatabase") for the request's
 * resource; paths are built from the parent's location and the family of
 * status URLs ("database", "serverKey", ...). input is stolen and must hold
 * what the completion handler needs. Writes the 202. */
void sql_lro(emu_call *c, const char *op, const char *status_family, const char *region, json_t *input);
/* Is an operation on the request's resource still running? */
int sql_lro_running(emu_call *c);

typedef int (*sql_lro_fn)(emu *e, const emu_lro *op, const json_t *in, char code[128], char msg[512],
                          json_t **result);
typedef struct sql_lro_handler {
  const char *op;
  sql_lro_fn fn;
} sql_lro_handler;
extern const sql_lro_handler sql_db_lro_handlers[];
extern const sql_lro_handler sql_server_lro_handlers[];
extern const sql_lro_handler sql_geo_lro_handlers[];

/* ---- handlers by file (route table in sql_routes.c) ---- */
/* sql_db.c */
void sql_h_db_get(emu_call *c);
void sql_h_db_list(emu_call *c);
void sql_h_db_inaccessible(emu_call *c);
void sql_h_db_put(emu_call *c);
void sql_h_db_patch(emu_call *c);
void sql_h_db_delete(emu_call *c);
void sql_h_db_revalidate(emu_call *c);
void sql_h_db_revert(emu_call *c);
void sql_h_lro_status(emu_call *c);
/* sql_server.c */
void sql_h_server_get(emu_call *c);
void sql_h_server_list(emu_call *c);
void sql_h_server_patch(emu_call *c);
void sql_h_key_list(emu_call *c);
void sql_h_key_get(emu_call *c);
void sql_h_key_put(emu_call *c);
void sql_h_key_delete(emu_call *c);
void sql_h_prot_list(emu_call *c);
void sql_h_prot_get(emu_call *c);
void sql_h_prot_put(emu_call *c);
void sql_h_prot_revalidate(emu_call *c);
void sql_h_mdb_list(emu_call *c);
void sql_h_mdb_get(emu_call *c);
void sql_h_mdb_put(emu_call *c);
void sql_h_mdb_inaccessible(emu_call *c);
/* sql_geo.c */
void sql_h_links_server(emu_call *c);
void sql_h_links_db(emu_call *c);
void sql_h_link_get(emu_call *c);
void sql_h_link_delete(emu_call *c);
void sql_h_link_failover(emu_call *c);
void sql_h_fog_list(emu_call *c);
void sql_h_fog_get(emu_call *c);
void sql_h_fog_put(emu_call *c);
void sql_h_fog_delete(emu_call *c);
void sql_h_fog_failover(emu_call *c);
void sql_h_ifog_list(emu_call *c);
void sql_h_ifog_get(emu_call *c);
void sql_h_ifog_put(emu_call *c);
void sql_h_ifog_delete(emu_call *c);
void sql_h_ifog_failover(emu_call *c);
void sql_h_dropped_list(emu_call *c);
void sql_h_dropped_get(emu_call *c);
void sql_h_recoverable_list(emu_call *c);
void sql_h_recoverable_get(emu_call *c);
void sql_h_ltr_list(emu_call *c);
void sql_h_ltr_get(emu_call *c);
void sql_h_ltr_delete(emu_call *c);
/* sql_tick.c (control API) */
void sql_h_ctl_settings_get(emu_call *c);
void sql_h_ctl_settings_patch(emu_call *c);
void sql_h_ctl_workload(emu_call *c);
void sql_h_ctl_data(emu_call *c);
void sql_h_ctl_vlfs(emu_call *c);
void sql_h_ctl_ltr_backup(emu_call *c);
void sql_h_ctl_check(emu_call *c);

/* geo helpers used by databases (sql_geo.c) */
int sql_geo_secondary_count(emu *e, int64_t primary_uid);
int sql_geo_is_secondary(emu *e, int64_t uid, int64_t *primary_uid);
sq_code sql_geo_link_add(emu *e, int64_t primary_uid, int64_t secondary_uid, const char *type, int64_t now);
/* uids of a primary's secondaries */
int sql_geo_secondaries(emu *e, int64_t primary_uid, int64_t *out, int max);
void sql_geo_drop_links(emu *e, int64_t uid);
/* Restorable dropped database: "name,ticks" id part -> uid */
int64_t sql_dropped_uid(emu *e, const char *parent_id, const char *name_ticks);
/* LTR backup id -> (uid, backup time) */
int sql_ltr_lookup(emu *e, const char *backup_id, int64_t *uid, int64_t *at);

/* ---- common request helpers (sql_db.c) ---- */
/* Checks the route's {sub}/{rg} and authorizes action (if any) on the
 * request's resource; writes the error and returns 0 on failure. */
int sql_authorize(emu_call *c, const char *action);
/* Loads the parent named by the route ({sub},{rg},{server}|{mi}) and checks
 * scope + authorization for action; writes the error and returns 0 on failure. */
int sql_begin(emu_call *c, int is_mi, const char *action, sql_parent *p);
/* sql_begin on a server, then the database named by {db}; a missing one is
 * answered by not_found(c, name). 1 with both loaded, else 0 (nothing held). */
int sql_begin_db(emu_call *c, const char *action, void (*not_found)(emu_call *c, const char *name), sql_parent *p,
                 sql_db *d);
/* Resource id of the request path (without query), case as sent. */
void sql_req_rid(emu_call *c, char *out, size_t n);

#endif
