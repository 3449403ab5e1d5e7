/* kubetest.h — shared helpers for tests that run against the real local
 * apiserver (tests/integration/with-cluster.sh sets KUBECONFIG and
 * SQLTDE_CLUSTER_DIR). Failures end the current test case via TEST_FAIL_,
 * so include test.h first. */
#ifndef SQLTDE_KUBETEST_H
#define SQLTDE_KUBETEST_H

#include <jansson.h>

#include "sqltde/kube/client.h"

/* The admin client from $KUBECONFIG (created once, freed at exit). */
sq_kube *kt_admin(void);

/* Creates namespace ns if it does not exist. */
void kt_ensure_ns(const char *ns);

/* Installs a schemaless namespaced CRD (spec/status preserved, status
 * subresource) for gvr and waits until it is Established and served. */
void kt_install_crd(const sq_kube_gvr *gvr);

/* Applies every YAML file of a directory (e.g. the project's crds/) with
 * kubectl and waits for the CRDs to be established. */
void kt_kubectl_apply(const char *path);

/* The cluster's state dir and a path to a tests/cluster script. */
const char *kt_cluster_dir(void);
void kt_script(char *out, size_t n, const char *script);

/* Runs a shell command (printf-style); returns its exit status. */
int kt_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Polls cond(ud) every 50 ms until true or timeout_ms: 1 if it became true. */
int kt_wait(int (*cond)(void *ud), void *ud, long timeout_ms);

#endif
