/* cli/preflight.h — startup checks that turn a misconfiguration into one
 * clear line before anything runs: the kubeconfig loads, the apiserver
 * answers, the credentials are accepted and every verb the operator needs on
 * every kind it watches is allowed. */
#ifndef SQLTDE_CLI_PREFLIGHT_H
#define SQLTDE_CLI_PREFLIGHT_H

#include "sqltde/err.h"
#include "sqltde/kube/client.h"

/* Lists (limit 1) each watched kind in ns (NULL = all namespaces) and asks
 * the apiserver (SelfSubjectAccessReview) whether watch, patch and status
 * updates are allowed. The first failure is returned with a message naming
 * the verb and resource. */
sq_code sq_preflight(sq_kube *k, const char *ns, sq_err *err);

#endif
