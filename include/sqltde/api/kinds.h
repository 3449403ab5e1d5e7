/* api/kinds.h — the custom resource kinds of group sqltde.io/v1alpha1, in one
 * place: every controller, the preflight check and the tests take the
 * resource descriptors from here. */
#ifndef SQLTDE_API_KINDS_H
#define SQLTDE_API_KINDS_H

#include <stddef.h>

#include "sqltde/kube/client.h"

#define SQ_API_GROUP "sqltde.io"
#define SQ_API_VERSION "v1alpha1"
#define SQ_API_GROUP_VERSION "sqltde.io/v1alpha1"

extern const sq_kube_gvr SQ_GVR_KEYVAULT;
extern const sq_kube_gvr SQ_GVR_VAULTKEY;
extern const sq_kube_gvr SQ_GVR_MANAGEDIDENTITY;
extern const sq_kube_gvr SQ_GVR_SQLSERVER;
extern const sq_kube_gvr SQ_GVR_SQLDATABASE;

/* Core and other groups the operator touches. */
extern const sq_kube_gvr SQ_GVR_SECRET;
extern const sq_kube_gvr SQ_GVR_LEASE;
extern const sq_kube_gvr SQ_GVR_EVENT;

/* The kinds the operator watches, in dependency order (vaults before keys
 * before identities before servers before databases). */
extern const sq_kube_gvr *const SQ_WATCHED_KINDS[];
extern const size_t SQ_WATCHED_KINDS_COUNT;

#endif
