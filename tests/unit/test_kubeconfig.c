/* test_kubeconfig.c — kubeconfig / in-cluster loading and sq_kube_path.
 *
 * Fixtures live in $SQLTDE_TEST_DATA/kubeconfig (see its README.md). Every
 * refusal is checked for its code and for a message naming the file and the
 * field, since that message is all an operator's user will see. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sqltde/kube/client.h"
#include "test.h"

static char g_path[1024];

static const char *fx(const char *name) {
  const char *d = getenv("SQLTDE_TEST_DATA");
  if(!d)
    TEST_FAIL_("SQLTDE_TEST_DATA is not set (run through ctest)");
  snprintf(g_path, sizeof g_path, "%s/kubeconfig/%s", d, name);
  return g_path;
}

/* Loads a fixture expecting failure; returns the error for message checks. */
static sq_err load_fail(const char *name, const char *ctx, sq_code want) {
  sq_kube_config c;
  sq_err err;
  sq_err_clear(&err);
  sq_code rc = sq_kube_config_load_file(fx(name), ctx, &c, &err);
  if(rc != want)
    TEST_FAIL_("%s: want %s, got %s (%s)", name, sq_code_name(want), sq_code_name(rc),
               err.message);
  /* on failure nothing is handed out */
  ASSERT_NULL(c.server);
  ASSERT_NULL(c.token);
  ASSERT_NULL(c.namespace);
  ASSERT_STR_CONTAINS(err.message, fx(name));
  ASSERT(strchr(err.message, '\n') == NULL);
  return err;
}

TEST(token_user_ca_file_relative) {
  sq_kube_config c;
  sq_err err;
  ASSERT_OK(sq_kube_config_load_file(fx("token.yaml"), NULL, &c, &err));
  ASSERT_STR_EQ(c.server, "https://dev.example.test:6443"); /* trailing slash dropped */
  ASSERT_STR_EQ(c.token, "fixture-static-token");
  ASSERT_NULL(c.token_file);
  ASSERT_STR_EQ(c.namespace, "team-a");
  ASSERT_STR_EQ(c.context, "dev-alice");
  ASSERT_STR_EQ(c.ca_file, fx("ca.crt")); /* relative to the kubeconfig's directory */
  ASSERT_NULL(c.ca_pem);
  ASSERT_NULL(c.cert_pem);
  ASSERT_NULL(c.key_pem);
  sq_kube_config_free(&c);
  ASSERT_NULL(c.server); /* free leaves a zeroed struct */
  sq_kube_config_free(&c); /* and is idempotent */
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if(!f)
    return NULL;
  char *buf = calloc(1, 65536);
  size_t n = fread(buf, 1, 65535, f);
  fclose(f);
  buf[n] = '\0';
  return buf;
}

TEST(client_cert_inline_data) {
  sq_kube_config c;
  sq_err err;
  ASSERT_OK(sq_kube_config_load_file(fx("certdata.yaml"), NULL, &c, &err));
  ASSERT_STR_EQ(c.server, "https://10.1.2.3:443");
  ASSERT_STR_EQ(c.namespace, "default"); /* context without namespace */
  ASSERT_NULL(c.token);
  ASSERT_NULL(c.ca_file);
  ASSERT_NULL(c.cert_file);
  ASSERT_NULL(c.key_file);
  /* decoded bytes equal the PEM files the base64 was made from */
  char *ca = slurp(fx("ca.crt"));
  char *crt = slurp(fx("certs/client.crt"));
  char *key = slurp(fx("certs/client.key"));
  ASSERT_NOT_NULL(ca);
  ASSERT_NOT_NULL(crt);
  ASSERT_NOT_NULL(key);
  ASSERT_STR_EQ(c.ca_pem, ca);
  ASSERT_STR_EQ(c.cert_pem, crt);
  ASSERT_STR_EQ(c.key_pem, key);
  free(ca);
  free(crt);
  free(key);
  sq_kube_config_free(&c);
}

TEST(context_selection_and_namespace) {
  sq_kube_config c;
  sq_err err;
  /* current-context: first (wrapped base64 CA in a block scalar, client cert files) */
  ASSERT_OK(sq_kube_config_load_file(fx("multi.yaml"), NULL, &c, &err));
  ASSERT_STR_EQ(c.context, "first");
  ASSERT_STR_EQ(c.server, "https://one.example.test");
  ASSERT_STR_EQ(c.namespace, "ns-first");
  ASSERT_NOT_NULL(c.ca_pem);
  ASSERT_STR_CONTAINS(c.ca_pem, "-----BEGIN CERTIFICATE-----");
  char *ca = slurp(fx("ca.crt"));
  ASSERT_STR_EQ(c.ca_pem, ca);
  free(ca);
  ASSERT_STR_EQ(c.cert_file, fx("certs/client.crt"));
  ASSERT_STR_EQ(c.key_file, fx("certs/client.key"));
  ASSERT_NULL(c.token);
  sq_kube_config_free(&c);

  /* explicit context overrides current-context; scheme-less server gets https */
  ASSERT_OK(sq_kube_config_load_file(fx("multi.yaml"), "second", &c, &err));
  ASSERT_STR_EQ(c.context, "second");
  ASSERT_STR_EQ(c.server, "https://two.example.test:8443");
  ASSERT_STR_EQ(c.namespace, "ns-second");
  ASSERT_STR_EQ(c.token_file, fx("token"));
  ASSERT_NULL(c.token);
  ASSERT_STR_EQ(c.ca_file, fx("certs/../ca.crt"));
  sq_kube_config_free(&c);

  /* a context without a user is anonymous, not an error */
  ASSERT_OK(sq_kube_config_load_file(fx("multi.yaml"), "nouser", &c, &err));
  ASSERT_NULL(c.token);
  ASSERT_NULL(c.token_file);
  ASSERT_NULL(c.cert_file);
  ASSERT_STR_EQ(c.namespace, "default");
  sq_kube_config_free(&c);
}

TEST(unknown_context_cluster_user) {
  sq_err e = load_fail("multi.yaml", "nope", SQ_EINVAL);
  ASSERT_STR_CONTAINS(e.message, "context \"nope\" not found");
  e = load_fail("multi.yaml", "ghost-cluster", SQ_EINVAL);
  ASSERT_STR_CONTAINS(e.message, "cluster \"nowhere\" not found");
  e = load_fail("multi.yaml", "ghost-user", SQ_EINVAL);
  ASSERT_STR_CONTAINS(e.message, "user \"nobody\" not found");
}

TEST(missing_current_context) {
  sq_err e = load_fail("nocurrent.yaml", NULL, SQ_EINVAL);
  ASSERT_STR_CONTAINS(e.message, "current-context is not set");
  /* naming the context works */
  sq_kube_config c;
  sq_err err;
  ASSERT_OK(sq_kube_config_load_file(fx("nocurrent.yaml"), "only", &c, &err));
  ASSERT_STR_EQ(c.token, "t");
  sq_kube_config_free(&c);
}

TEST(malformed_yaml_has_line_and_column) {
  sq_err e = load_fail("malformed.yaml", NULL, SQ_EPARSE);
  char want[1200];
  snprintf(want, sizeof want, "kubeconfig %s: line 7 column 4: did not find expected key",
           fx("malformed.yaml"));
  ASSERT_STR_EQ(e.message, want);
  e = load_fail("notamap.yaml", NULL, SQ_EINVAL);
  ASSERT_STR_CONTAINS(e.message, "not a kubeconfig");
}

TEST(missing_file_is_io_error) {
  sq_kube_config c;
  sq_err err;
  ASSERT_EQ(sq_kube_config_load_file(fx("no-such-file.yaml"), NULL, &c, &err), SQ_EIO);
  ASSERT_STR_CONTAINS(err.message, "cannot open");
  ASSERT_STR_CONTAINS(err.message, fx("no-such-file.yaml"));
}

TEST(missing_server) {
  sq_err e = load_fail("noserver.yaml", NULL, SQ_EINVAL);
  ASSERT_STR_CONTAINS(e.message, "cluster \"c\": server is missing");
  e = load_fail("plainhttp.yaml", NULL, SQ_EINVAL);
  ASSERT_STR_CONTAINS(e.message, "only https");
}

TEST(insecure_skip_tls_verify_refused) {
  sq_err e = load_fail("insecure.yaml", NULL, SQ_EINVAL);
  ASSERT_STR_CONTAINS(e.message, "cluster \"lab\": insecure-skip-tls-verify is refused");
  ASSERT_STR_CONTAINS(e.message, "TLS is always verified");
}

TEST(plugins_and_basic_auth_refused) {
  sq_err e = load_fail("exec.yaml", NULL, SQ_EINVAL);
  ASSERT_STR_CONTAINS(e.message, "user \"cloud\": exec credential plugins are not supported");
  ASSERT_STR_CONTAINS(e.message, "kubelogin");
  e = load_fail("authprovider.yaml", NULL, SQ_EINVAL);
  ASSERT_STR_CONTAINS(e.message, "user \"g\": auth-provider plugins are not supported");
  ASSERT_STR_CONTAINS(e.message, "gcp");
  e = load_fail("basicauth.yaml", NULL, SQ_EINVAL);
  ASSERT_STR_CONTAINS(e.message, "username/password");
  ASSERT(!strstr(e.message, "hunter2"));
}

TEST(bad_fields) {
  sq_err e = load_fail("badbase64.yaml", NULL, SQ_EPARSE);
  ASSERT_STR_CONTAINS(e.message, "cluster \"c\": certificate-authority-data is not valid base64");
  e = load_fail("certnokey.yaml", NULL, SQ_EINVAL);
  ASSERT_STR_CONTAINS(e.message,
                      "user \"half\": client-certificate is set but client-key is missing");
  e = load_fail("missingca.yaml", NULL, SQ_EIO);
  ASSERT_STR_CONTAINS(e.message, "cluster \"c\": certificate-authority: cannot open");
  ASSERT_STR_CONTAINS(e.message, "does-not-exist.crt");
}

TEST(oversized_kubeconfig_refused) {
  char path[] = "/tmp/test-kubeconfig-big-XXXXXX";
  int fd = mkstemp(path);
  ASSERT(fd >= 0);
  ASSERT_OK(ftruncate(fd, 2 * 1024 * 1024));
  close(fd);
  sq_kube_config c;
  sq_err err;
  ASSERT_EQ(sq_kube_config_load_file(path, NULL, &c, &err), SQ_ETOOBIG);
  ASSERT_STR_CONTAINS(err.message, path);
  unlink(path);
}

/* ---- in-cluster ---- */

static void write_file(const char *dir, const char *name, const char *content) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen(p, "w");
  ASSERT_NOT_NULL(f);
  fputs(content, f);
  fclose(f);
}

TEST(in_cluster) {
  char dir[] = "/tmp/test-incluster-XXXXXX";
  ASSERT_NOT_NULL(mkdtemp(dir));
  write_file(dir, "token", "sa-token\n");
  write_file(dir, "ca.crt", "-----BEGIN CERTIFICATE-----\n");
  write_file(dir, "namespace", "operators\n");
  sq_kube_config c;
  sq_err err;

  unsetenv("KUBERNETES_SERVICE_HOST");
  unsetenv("KUBERNETES_SERVICE_PORT");
  ASSERT_EQ(sq_kube_config_in_cluster(dir, &c, &err), SQ_EINVAL);
  ASSERT_STR_CONTAINS(err.message, "KUBERNETES_SERVICE_HOST");

  setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
  setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  ASSERT_OK(sq_kube_config_in_cluster(dir, &c, &err));
  ASSERT_STR_EQ(c.server, "https://10.96.0.1:443");
  char want[512];
  snprintf(want, sizeof want, "%s/token", dir);
  ASSERT_STR_EQ(c.token_file, want); /* a file, so rotations are seen */
  ASSERT_NULL(c.token);
  snprintf(want, sizeof want, "%s/ca.crt", dir);
  ASSERT_STR_EQ(c.ca_file, want);
  ASSERT_STR_EQ(c.namespace, "operators");
  ASSERT_NULL(c.context);
  sq_kube_config_free(&c);

  setenv("KUBERNETES_SERVICE_HOST", "fd00:10:96::1", 1);
  ASSERT_OK(sq_kube_config_in_cluster(dir, &c, &err));
  ASSERT_STR_EQ(c.server, "https://[fd00:10:96::1]:443");
  sq_kube_config_free(&c);

  setenv("KUBERNETES_SERVICE_PORT", "https", 1);
  ASSERT_EQ(sq_kube_config_in_cluster(dir, &c, &err), SQ_EINVAL);
  ASSERT_STR_CONTAINS(err.message, "KUBERNETES_SERVICE_PORT");
  setenv("KUBERNETES_SERVICE_PORT", "443", 1);

  /* no namespace file -> "default" */
  snprintf(want, sizeof want, "%s/namespace", dir);
  unlink(want);
  ASSERT_OK(sq_kube_config_in_cluster(dir, &c, &err));
  ASSERT_STR_EQ(c.namespace, "default");
  sq_kube_config_free(&c);

  /* no token -> the error names the file */
  snprintf(want, sizeof want, "%s/token", dir);
  unlink(want);
  ASSERT_EQ(sq_kube_config_in_cluster(dir, &c, &err), SQ_EIO);
  ASSERT_STR_CONTAINS(err.message, want);
  ASSERT_NULL(c.server);

  snprintf(want, sizeof want, "%s/ca.crt", dir);
  unlink(want);
  rmdir(dir);
  unsetenv("KUBERNETES_SERVICE_HOST");
  unsetenv("KUBERNETES_SERVICE_PORT");
}

TEST(default_order) {
  sq_kube_config c;
  sq_err err;
  char home[] = "/tmp/test-kchome-XXXXXX";
  ASSERT_NOT_NULL(mkdtemp(home));
  setenv("HOME", home, 1);
  unsetenv("KUBECONFIG");
  unsetenv("KUBERNETES_SERVICE_HOST");
  unsetenv("KUBERNETES_SERVICE_PORT");

  /* nothing anywhere */
  ASSERT_EQ(sq_kube_config_default(NULL, &c, &err), SQ_EINVAL);
  ASSERT_STR_CONTAINS(err.message, "no Kubernetes configuration");

  /* ~/.kube/config (a copy of token.yaml pointing at the fixture CA by absolute path) */
  char p[512];
  snprintf(p, sizeof p, "%s/.kube", home);
  ASSERT_OK(mkdir(p, 0700));
  char body[1024];
  snprintf(body, sizeof body,
           "clusters:\n- name: h\n  cluster: {server: 'https://home.example.test', "
           "certificate-authority: '%s'}\n"
           "contexts:\n- name: hc\n  context: {cluster: h}\ncurrent-context: hc\n",
           fx("ca.crt"));
  write_file(p, "config", body);
  ASSERT_OK(sq_kube_config_default(NULL, &c, &err));
  ASSERT_STR_EQ(c.server, "https://home.example.test");
  sq_kube_config_free(&c);

  /* in-cluster env set but no mount here: falls back to ~/.kube/config */
  setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
  setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  if(access("/var/run/secrets/kubernetes.io/serviceaccount/token", F_OK) != 0) {
    ASSERT_OK(sq_kube_config_default(NULL, &c, &err));
    ASSERT_STR_EQ(c.server, "https://home.example.test");
    sq_kube_config_free(&c);
  }

  /* $KUBECONFIG wins over in-cluster and home; first existing entry of a list */
  char list[2048];
  snprintf(list, sizeof list, "/nonexistent/kc:%s", fx("token.yaml"));
  setenv("KUBECONFIG", list, 1);
  ASSERT_OK(sq_kube_config_default(NULL, &c, &err));
  ASSERT_STR_EQ(c.server, "https://dev.example.test:6443");
  sq_kube_config_free(&c);
  setenv("KUBECONFIG", "/nonexistent/kc", 1);
  ASSERT_EQ(sq_kube_config_default(NULL, &c, &err), SQ_EIO);
  ASSERT_STR_CONTAINS(err.message, "/nonexistent/kc");

  /* an explicit path wins over everything */
  ASSERT_OK(sq_kube_config_default(fx("certdata.yaml"), &c, &err));
  ASSERT_STR_EQ(c.server, "https://10.1.2.3:443");
  sq_kube_config_free(&c);

  unsetenv("KUBECONFIG");
  unsetenv("KUBERNETES_SERVICE_HOST");
  unsetenv("KUBERNETES_SERVICE_PORT");
  snprintf(p, sizeof p, "%s/.kube/config", home);
  unlink(p);
  snprintf(p, sizeof p, "%s/.kube", home);
  rmdir(p);
  rmdir(home);
}

/* ---- client construction without a server round trip ---- */

TEST(client_token_file_must_be_readable) {
  sq_kube_config c;
  sq_err err;
  ASSERT_OK(sq_kube_config_load_file(fx("multi.yaml"), "second", &c, &err));
  sq_kube *k = NULL;
  ASSERT_OK(sq_kube_new(&c, &k, &err));
  ASSERT_STR_EQ(sq_kube_namespace(k), "ns-second");
  sq_kube_free(k);
  free(c.token_file);
  c.token_file = strdup("/nonexistent/token");
  ASSERT_EQ(sq_kube_new(&c, &k, &err), SQ_EIO);
  ASSERT_NULL(k);
  ASSERT_STR_CONTAINS(err.message, "/nonexistent/token");
  sq_kube_config_free(&c);

  sq_kube_config empty;
  memset(&empty, 0, sizeof empty);
  ASSERT_EQ(sq_kube_new(&empty, &k, &err), SQ_EINVAL);
}

/* ---- paths ---- */

TEST(kube_path_table) {
  static const sq_kube_gvr pods = {"", "v1", "pods", "Pod", 1};
  static const sq_kube_gvr nss = {"", "v1", "namespaces", "Namespace", 0};
  static const sq_kube_gvr dbs = {"sqltde.io", "v1alpha1", "sqldatabases", "SqlDatabase", 1};
  static const sq_kube_gvr crds = {"apiextensions.k8s.io", "v1", "customresourcedefinitions",
                                   "CustomResourceDefinition", 0};
  static const sq_kube_gvr leases = {"coordination.k8s.io", "v1", "leases", "Lease", 1};
  static const struct {
    const sq_kube_gvr *r;
    const char *ns, *name, *sub, *want;
  } cases[] = {
      {&pods, "default", NULL, NULL, "/api/v1/namespaces/default/pods"},
      {&pods, NULL, NULL, NULL, "/api/v1/pods"}, /* all namespaces */
      {&pods, "", NULL, NULL, "/api/v1/pods"},
      {&pods, "kube-system", "p1", NULL, "/api/v1/namespaces/kube-system/pods/p1"},
      {&pods, "ns", "p1", "status", "/api/v1/namespaces/ns/pods/p1/status"},
      {&nss, NULL, "default", NULL, "/api/v1/namespaces/default"},
      {&nss, "ignored", "default", NULL, "/api/v1/namespaces/default"}, /* cluster-scoped */
      {&dbs, "ns1", NULL, NULL, "/apis/sqltde.io/v1alpha1/namespaces/ns1/sqldatabases"},
      {&dbs, "ns1", "db", "status",
       "/apis/sqltde.io/v1alpha1/namespaces/ns1/sqldatabases/db/status"},
      {&dbs, NULL, NULL, NULL, "/apis/sqltde.io/v1alpha1/sqldatabases"},
      {&crds, NULL, "x.sqltde.io", NULL,
       "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/x.sqltde.io"},
      {&leases, "ns", "sqltde-leader", NULL,
       "/apis/coordination.k8s.io/v1/namespaces/ns/leases/sqltde-leader"},
      {&pods, "ns", "a/b?c", NULL, "/api/v1/namespaces/ns/pods/a%2Fb%3Fc"}, /* escaped */
      {&pods, "ns", NULL, "status", "/api/v1/namespaces/ns/pods"}, /* sub needs a name */
  };
  for(size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char *p = sq_kube_path(cases[i].r, cases[i].ns, cases[i].name, cases[i].sub);
    if(!p || strcmp(p, cases[i].want))
      TEST_FAIL_("case %zu: got %s want %s", i, p ? p : "(null)", cases[i].want);
    free(p);
  }
  static const sq_kube_gvr noplural = {"", "v1", NULL, NULL, 0};
  ASSERT_NULL(sq_kube_path(&noplural, NULL, NULL, NULL));
  ASSERT_NULL(sq_kube_path(NULL, NULL, NULL, NULL));
}

TEST_MAIN()
