/* operator/op.h — what every per-kind controller shares: the Kubernetes
 * client and manager, the Events recorder, the Azure clients built from the
 * configured cloud and the standard credential environment, the clock, and
 * the tunables. One sq_op per process, built in main and borrowed by the
 * controllers (all members are thread-safe). */
#ifndef SQLTDE_OPERATOR_OP_H
#define SQLTDE_OPERATOR_OP_H

#include <jansson.h>
#include <stdint.h>

#include "sqltde/azure/arm.h"
#include "sqltde/azure/cloud.h"
#include "sqltde/azure/credential.h"
#include "sqltde/azure/keyvault.h"
#include "sqltde/clock.h"
#include "sqltde/err.h"
#include "sqltde/http.h"
#include "sqltde/kube/client.h"
#include "sqltde/kube/events.h"
#include "sqltde/kube/manager.h"

#define SQ_FINALIZER "sqltde.io/finalizer"

typedef struct sq_op_config {
  const char *azure_cloud;     /* named cloud or a custom cloud file */
  const char *azure_ca_bundle; /* extra CAs for Azure endpoints, or NULL */
  int64_t resync_ms;           /* how often Azure state is re-observed when nothing changed */
  int64_t key_check_ms;        /* key-health probe interval (Azure: 10 min) */
  int64_t permission_delay_ms; /* Azure SQL sees permission changes this late (10 min) */
} sq_op_config;

typedef struct sq_op {
  sq_kube *kube;     /* borrowed */
  sq_manager *mgr;   /* borrowed */
  sq_events *events; /* borrowed; may be NULL in tests */
  sq_azure_cloud cloud;
  sq_http *azure_http;
  sq_azure_cred *cred;
  sq_arm *arm;
  sq_kv *kv;
  const sq_clock *clock;
  sq_op_config cfg;
  struct sq_server_obs *server_obs; /* per-server observation cache; NULL = off */
} sq_op;

/* Builds the Azure side from cfg and the process environment
 * (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE, ...).
 * Errors name what is missing or wrong. */
sq_code sq_op_init(sq_op *op, sq_kube *k, sq_manager *mgr, sq_events *events, const sq_op_config *cfg,
                   sq_err *err);
void sq_op_free(sq_op *op);

/* The object ns/name of gvr from the manager's shared cache (a new object the
 * caller owns), or NULL when it does not exist. */
json_t *sq_op_get(sq_op *op, const sq_kube_gvr *gvr, const char *ns, const char *name);

/* Emits an Event about obj (no-op when op->events is NULL). */
void sq_op_event(sq_op *op, const json_t *obj, int warning, const char *reason, const char *action,
                 const char *fmt, ...) __attribute__((format(printf, 6, 7)));

#endif
