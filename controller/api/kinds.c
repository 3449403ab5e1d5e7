/* kinds.c — resource descriptors; see include/sqltde/api/kinds.h. */
#include "sqltde/api/kinds.h"

const sq_kube_gvr SQ_GVR_KEYVAULT = {SQ_API_GROUP, SQ_API_VERSION, "keyvaults", "KeyVault", 1};
const sq_kube_gvr SQ_GVR_VAULTKEY = {SQ_API_GROUP, SQ_API_VERSION, "vaultkeys", "VaultKey", 1};
const sq_kube_gvr SQ_GVR_MANAGEDIDENTITY = {SQ_API_GROUP, SQ_API_VERSION, "managedidentities",
                                            "ManagedIdentity", 1};
const sq_kube_gvr SQ_GVR_SQLSERVER = {SQ_API_GROUP, SQ_API_VERSION, "sqlservers", "SqlServer", 1};
const sq_kube_gvr SQ_GVR_SQLDATABASE = {SQ_API_GROUP, SQ_API_VERSION, "sqldatabases", "SqlDatabase", 1};

const sq_kube_gvr SQ_GVR_SECRET = {"", "v1", "secrets", "Secret", 1};
const sq_kube_gvr SQ_GVR_LEASE = {"coordination.k8s.io", "v1", "leases", "Lease", 1};
const sq_kube_gvr SQ_GVR_EVENT = {"events.k8s.io", "v1", "events", "Event", 1};

const sq_kube_gvr *const SQ_WATCHED_KINDS[] = {&SQ_GVR_KEYVAULT, &SQ_GVR_VAULTKEY,
                                               &SQ_GVR_MANAGEDIDENTITY, &SQ_GVR_SQLSERVER,
                                               &SQ_GVR_SQLDATABASE};
const size_t SQ_WATCHED_KINDS_COUNT = sizeof SQ_WATCHED_KINDS / sizeof SQ_WATCHED_KINDS[0];
