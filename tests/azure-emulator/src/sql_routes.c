/* sql_routes.c — the Microsoft.Sql provider's routes (azure-api.md §1.2,
 * §2.1-2.5; paths as @azure/arm-sql 10.0 sends them) and its test-control
 * routes under /_emulator/sql/ (no auth, like the rest of /_emulator):
 *
 *   GET|PATCH /_emulator/sql/settings   provider timing, milliseconds:
 *       keyCheckIntervalMs (600000), inaccessibleAfterMs (1800000, 4xx-type
 *       key failures), networkGraceMs (86400000, vault/region down),
 *       permissionDelayMs (600000, Key Vault permission propagation as SQL
 *       sees it), autoRotationWindowMs (3600000), pitrRetentionMs,
 *       droppedRetentionMs (7 days), listPageSize (100), maxGeoSecondaries (4)
 *   POST /_emulator/sql/workload {databaseId, records=1, text, retireOldLog=true}
 *       writes data + a log segment under the current protector; retiring
 *       truncates older segments (what unblocks a rotation). 409 + ARM-style
 *       error when the database's key cannot be reached.
 *   GET  /_emulator/sql/data?databaseId=ID   decrypts the data records (409 if the key is gone)
 *   GET  /_emulator/sql/vlfs?databaseId=ID   log segments with vlfEncryptorThumbprint and status
 *   POST /_emulator/sql/ltr-backups {databaseId, retentionDays=365}   takes an LTR backup now
 *   POST /_emulator/sql/check   runs every key check now; returns database statuses
 *
 * A key check that fails makes a database Inaccessible once the failure is
 * older than the grace period (checks run on the keyCheckInterval grid, so
 * detection takes up to interval + grace, plus permissionDelay for a
 * revocation); it comes back only through revalidate. */
#include "sql.h"

/* Messages and ids are built into fixed buffers on purpose (bounded memory for
 * anything derived from requests); truncating an over-long one is intended. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

/* Accepted api-versions: the CMK-capable stable and preview versions of the
 * spec repository, plus every version @azure/arm-sql 10.0 pins per
 * operation group (servers/databases 2022-08-01-preview, keys/protectors/
 * failover groups 2020-11-01-preview, replication links 2022-02-01-preview,
 * LTR 2021-05-01-preview, instance failover groups and managed databases
 * 2022-05-01-preview). Database-level CMK fields are read and written only
 * from 2022-08-01-preview on (sql_apiver_cmk). */
static const char *const V[] = {"2020-11-01-preview", "2021-02-01-preview", "2021-05-01-preview",
                                "2021-08-01-preview", "2021-11-01",         "2021-11-01-preview",
                                "2022-02-01-preview", "2022-05-01-preview", "2022-08-01-preview",
                                "2022-11-01-preview", "2023-02-01-preview", "2023-05-01-preview",
                                "2023-08-01",         "2023-08-01-preview", "2024-05-01-preview",
                                "2024-11-01-preview", "2025-01-01",         "2025-02-01-preview",
                                "2025-08-01-preview", NULL};

#define P "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Sql"
#define S P "/servers/{server}"
#define D S "/databases/{db}"
#define MI P "/managedInstances/{mi}"
#define LTRS "/locations/{loc}/longTermRetentionServers/{ltrserver}"
#define LTRD LTRS "/longTermRetentionDatabases/{ltrdb}/longTermRetentionBackups"
#define R_ (EMU_R_AUTH | EMU_R_READ)
#define W_ (EMU_R_AUTH | EMU_R_WRITE)
#define X_ (EMU_R_AUTH | EMU_R_DELETE)
#define A(m, p, f, fl) {EMU_FAM_ARM, m, p, f, fl, V}
#define CT(m, p, f) {EMU_FAM_CONTROL, m, p, f, 0, NULL}

const emu_route emu_sql_routes[] = {
    /* servers */
    A("GET", P "/servers", sql_h_server_list, R_),
    A("GET", S, sql_h_server_get, R_),
    A("PATCH", S, sql_h_server_patch, W_),
    /* databases */
    A("GET", S "/databases", sql_h_db_list, R_),
    A("GET", S "/inaccessibleDatabases", sql_h_db_inaccessible, R_),
    A("GET", D, sql_h_db_get, R_),
    A("PUT", D, sql_h_db_put, W_),
    A("PATCH", D, sql_h_db_patch, W_),
    A("DELETE", D, sql_h_db_delete, X_),
    A("POST", D "/encryptionProtector/{ep}/revalidate", sql_h_db_revalidate, W_),
    A("POST", D "/encryptionProtector/{ep}/revert", sql_h_db_revert, W_),
    /* replication links */
    A("GET", S "/replicationLinks", sql_h_links_server, R_),
    A("GET", D "/replicationLinks", sql_h_links_db, R_),
    A("GET", D "/replicationLinks/{link}", sql_h_link_get, R_),
    A("DELETE", D "/replicationLinks/{link}", sql_h_link_delete, X_),
    A("POST", D "/replicationLinks/{link}/failover", sql_h_link_failover, W_),
    A("POST", D "/replicationLinks/{link}/forceFailoverAllowDataLoss", sql_h_link_failover, W_),
    /* server keys and protector */
    A("GET", S "/keys", sql_h_key_list, R_),
    A("GET", S "/keys/{key}", sql_h_key_get, R_),
    A("PUT", S "/keys/{key}", sql_h_key_put, W_),
    A("DELETE", S "/keys/{key}", sql_h_key_delete, X_),
    A("GET", S "/encryptionProtector", sql_h_prot_list, R_),
    A("GET", S "/encryptionProtector/{ep}", sql_h_prot_get, R_),
    A("PUT", S "/encryptionProtector/{ep}", sql_h_prot_put, W_),
    A("POST", S "/encryptionProtector/{ep}/revalidate", sql_h_prot_revalidate, W_),
    /* failover groups */
    A("GET", S "/failoverGroups", sql_h_fog_list, R_),
    A("GET", S "/failoverGroups/{fog}", sql_h_fog_get, R_),
    A("PUT", S "/failoverGroups/{fog}", sql_h_fog_put, W_),
    A("PATCH", S "/failoverGroups/{fog}", sql_h_fog_put, W_),
    A("DELETE", S "/failoverGroups/{fog}", sql_h_fog_delete, X_),
    A("POST", S "/failoverGroups/{fog}/failover", sql_h_fog_failover, W_),
    A("POST", S "/failoverGroups/{fog}/forceFailoverAllowDataLoss", sql_h_fog_failover, W_),
    /* backups */
    A("GET", S "/restorableDroppedDatabases", sql_h_dropped_list, R_),
    A("GET", S "/restorableDroppedDatabases/{dropped}", sql_h_dropped_get, R_),
    A("GET", S "/recoverableDatabases", sql_h_recoverable_list, R_),
    A("GET", S "/recoverableDatabases/{db}", sql_h_recoverable_get, R_),
    A("GET", P LTRD, sql_h_ltr_list, R_),
    A("GET", P LTRS "/longTermRetentionBackups", sql_h_ltr_list, R_),
    A("GET", P "/locations/{loc}/longTermRetentionBackups", sql_h_ltr_list, R_),
    A("GET", P LTRD "/{backup}", sql_h_ltr_get, R_),
    A("DELETE", P LTRD "/{backup}", sql_h_ltr_delete, X_),
    A("GET", "/subscriptions/{sub}/providers/Microsoft.Sql" LTRD, sql_h_ltr_list, R_),
    A("GET", "/subscriptions/{sub}/providers/Microsoft.Sql" LTRS "/longTermRetentionBackups", sql_h_ltr_list, R_),
    A("GET", "/subscriptions/{sub}/providers/Microsoft.Sql/locations/{loc}/longTermRetentionBackups", sql_h_ltr_list, R_),
    A("GET", "/subscriptions/{sub}/providers/Microsoft.Sql" LTRD "/{backup}", sql_h_ltr_get, R_),
    A("DELETE", "/subscriptions/{sub}/providers/Microsoft.Sql" LTRD "/{backup}", sql_h_ltr_delete, X_),
    /* managed instances */
    A("GET", P "/managedInstances", sql_h_server_list, R_),
    A("GET", MI, sql_h_server_get, R_),
    A("PATCH", MI, sql_h_server_patch, W_),
    A("GET", MI "/keys", sql_h_key_list, R_),
    A("GET", MI "/keys/{key}", sql_h_key_get, R_),
    A("PUT", MI "/keys/{key}", sql_h_key_put, W_),
    A("DELETE", MI "/keys/{key}", sql_h_key_delete, X_),
    A("GET", MI "/encryptionProtector", sql_h_prot_list, R_),
    A("GET", MI "/encryptionProtector/{ep}", sql_h_prot_get, R_),
    A("PUT", MI "/encryptionProtector/{ep}", sql_h_prot_put, W_),
    A("POST", MI "/encryptionProtector/{ep}/revalidate", sql_h_prot_revalidate, W_),
    A("GET", MI "/databases", sql_h_mdb_list, R_),
    A("GET", MI "/inaccessibleManagedDatabases", sql_h_mdb_inaccessible, R_),
    A("GET", MI "/databases/{db}", sql_h_mdb_get, R_),
    A("PUT", MI "/databases/{db}", sql_h_mdb_put, W_),
    A("GET", P "/locations/{loc}/instanceFailoverGroups", sql_h_ifog_list, R_),
    A("GET", P "/locations/{loc}/instanceFailoverGroups/{fog}", sql_h_ifog_get, R_),
    A("PUT", P "/locations/{loc}/instanceFailoverGroups/{fog}", sql_h_ifog_put, W_),
    A("DELETE", P "/locations/{loc}/instanceFailoverGroups/{fog}", sql_h_ifog_delete, X_),
    A("POST", P "/locations/{loc}/instanceFailoverGroups/{fog}/failover", sql_h_ifog_failover, W_),
    A("POST", P "/locations/{loc}/instanceFailoverGroups/{fog}/forceFailoverAllowDataLoss", sql_h_ifog_failover, W_),
    /* operation status (Azure-AsyncOperation / Location): after
     * the fixed location paths above, which they would otherwise shadow */
    {EMU_FAM_ARM, "GET", P "/locations/{loc}/{optype}/{opid}", sql_h_lro_status, R_ | EMU_R_NOAPIVER, NULL},
    {EMU_FAM_ARM, "GET", "/subscriptions/{sub}/providers/Microsoft.Sql/locations/{loc}/{optype}/{opid}",
     sql_h_lro_status, R_ | EMU_R_NOAPIVER, NULL},
    /* test control */
    CT("GET", "/_emulator/sql/settings", sql_h_ctl_settings_get),
    CT("PATCH", "/_emulator/sql/settings", sql_h_ctl_settings_patch),
    CT("POST", "/_emulator/sql/workload", sql_h_ctl_workload),
    CT("GET", "/_emulator/sql/data", sql_h_ctl_data),
    CT("GET", "/_emulator/sql/vlfs", sql_h_ctl_vlfs),
    CT("POST", "/_emulator/sql/ltr-backups", sql_h_ctl_ltr_backup),
    CT("POST", "/_emulator/sql/check", sql_h_ctl_check),
    {0, NULL, NULL, NULL, 0, NULL},
};
