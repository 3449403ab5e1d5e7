/* kubetest.c — see kubetest.h. */
#include "kubetest.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sqltde/clock.h"
#include "sqltde/jsonx.h"
#include "test.h"

static sq_kube *g_admin;
static const sq_kube_gvr NAMESPACES = {"", "v1", "namespaces", "Namespace", 0};
static const sq_kube_gvr CRDS = {"apiextensions.k8s.io", "v1", "customresourcedefinitions",
                                 "CustomResourceDefinition", 0};

static void free_admin(void) { sq_kube_free(g_admin); }

sq_kube *kt_admin(void) {
  if(g_admin)
    return g_admin;
  sq_kube_config cfg;
  sq_err err;
  const char *kc = getenv("KUBECONFIG");
  if(!kc || !*kc)
    TEST_FAIL_("KUBECONFIG is not set (run through tests/integration/with-cluster.sh)");
  if(sq_kube_config_load_file(kc, NULL, &cfg, &err))
    TEST_FAIL_("load %s: %s", kc, err.message);
  sq_code rc = sq_kube_new(&cfg, &g_admin, &err);
  sq_kube_config_free(&cfg);
  if(rc)
    TEST_FAIL_("sq_kube_new: %s", err.message);
  atexit(free_admin);
  return g_admin;
}

void kt_ensure_ns(const char *ns) {
  json_t *o = json_pack("{s:s,s:s,s:{s:s}}", "apiVersion", "v1", "kind", "Namespace", "metadata", "name", ns);
  sq_err err;
  sq_code rc = sq_kube_create(kt_admin(), &NAMESPACES, NULL, o, NULL, &err);
  json_decref(o);
  if(rc && rc != SQ_ECONFLICT)
    TEST_FAIL_("create namespace %s: %s", ns, err.message);
}

static int crd_served(const sq_kube_gvr *gvr, const char *crd_name) {
  sq_err err;
  json_t *got = NULL;
  int established = 0;
  if(!sq_kube_get(kt_admin(), &CRDS, NULL, crd_name, &got, &err)) {
    size_t i;
    json_t *c;
    json_array_foreach(sq_json_path(got, "status.conditions"), i, c) {
      const char *t = sq_json_str(c, "type"), *s = sq_json_str(c, "status");
      if(t && s && !strcmp(t, "Established") && !strcmp(s, "True"))
        established = 1;
    }
    json_decref(got);
  }
  if(!established)
    return 0;
  /* discovery lags the Established condition a little: list to be sure */
  json_t *l = NULL;
  sq_kube_list_opts o = {.limit = 1};
  if(sq_kube_list_page(kt_admin(), gvr, "default", &o, &l, &err))
    return 0;
  json_decref(l);
  return 1;
}

static void wait_served(const sq_kube_gvr *gvr) {
  char name[256];
  snprintf(name, sizeof name, "%s.%s", gvr->plural, gvr->group);
  int64_t deadline = sq_mono_ms() + 90000;
  while(sq_mono_ms() < deadline) {
    if(crd_served(gvr, name))
      return;
    usleep(200 * 1000);
  }
  TEST_FAIL_("CRD %s not served within 90 s", name);
}

void kt_install_crd(const sq_kube_gvr *gvr) {
  char name[256], singular[128];
  snprintf(name, sizeof name, "%s.%s", gvr->plural, gvr->group);
  snprintf(singular, sizeof singular, "%s", gvr->kind);
  for(char *p = singular; *p; p++)
    *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
  json_t *crd = json_pack(
      "{s:s,s:s,s:{s:s},s:{s:s,s:s,s:{s:s,s:s,s:s},s:[{s:s,s:b,s:b,s:{s:{}},"
      "s:{s:{s:s,s:b}}}]}}",
      "apiVersion", "apiextensions.k8s.io/v1", "kind", "CustomResourceDefinition", "metadata", "name", name,
      "spec", "group", gvr->group, "scope", "Namespaced", "names", "plural", gvr->plural, "singular",
      singular, "kind", gvr->kind, "versions", "name", gvr->version, "served", 1, "storage", 1,
      "subresources", "status", "schema", "openAPIV3Schema", "type", "object",
      "x-kubernetes-preserve-unknown-fields", 1);
  ASSERT_NOT_NULL(crd);
  sq_err err;
  sq_code rc = sq_kube_create(kt_admin(), &CRDS, NULL, crd, NULL, &err);
  json_decref(crd);
  if(rc && rc != SQ_ECONFLICT)
    TEST_FAIL_("create CRD %s: %s", name, err.message);
  wait_served(gvr);
}

const char *kt_cluster_dir(void) {
  const char *d = getenv("SQLTDE_CLUSTER_DIR");
  if(!d || !*d)
    TEST_FAIL_("SQLTDE_CLUSTER_DIR is not set (run through tests/integration/with-cluster.sh)");
  return d;
}

void kt_script(char *out, size_t n, const char *script) {
  const char *src = getenv("SQLTDE_SOURCE_DIR");
  snprintf(out, n, "%s/tests/cluster/%s", src && *src ? src : ".", script);
}

int kt_sh(const char *fmt, ...) {
  char cmd[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  int st = system(cmd);
  return st == -1 ? -1 : WEXITSTATUS(st);
}

void kt_kubectl_apply(const char *path) {
  if(kt_sh("kubectl apply -f '%s' >/dev/null 2>&1", path))
    TEST_FAIL_("kubectl apply -f %s failed", path);
  if(kt_sh("kubectl wait --for=condition=Established crd --all --timeout=90s >/dev/null 2>&1"))
    TEST_FAIL_("CRDs from %s not established", path);
}

int kt_wait(int (*cond)(void *ud), void *ud, long timeout_ms) {
  int64_t deadline = sq_mono_ms() + timeout_ms;
  for(;;) {
    if(cond(ud))
      return 1;
    if(sq_mono_ms() > deadline)
      return 0;
    usleep(50 * 1000);
  }
}
