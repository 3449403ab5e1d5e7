/* it_rest.c — sq_kube against a real kube-apiserver (tests/cluster).
 *
 * Needs KUBECONFIG (admin) and SQLTDE_CLUSTER_DIR (its `env` names the CA
 * key, used to mint a client certificate). Installs a tiny CRD through the
 * REST API itself, then exercises CRUD, status, merge patch, pagination,
 * optimistic concurrency, auth failures, transport failures and watches.
 * Every test uses its own namespace so reruns against one cluster work. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sqltde/buf.h"
#include "sqltde/clock.h"
#include "sqltde/codec.h"
#include "sqltde/jsonx.h"
#include "sqltde/kube/client.h"
#include "kubetest.h"
#include "test.h"

static const sq_kube_gvr WIDGETS = {"ittest.sqltde.io", "v1", "widgets", "Widget", 1};
static const sq_kube_gvr NAMESPACES = {"", "v1", "namespaces", "Namespace", 0};
static const sq_kube_gvr SERVICEACCOUNTS = {"", "v1", "serviceaccounts", "ServiceAccount", 1};
static const sq_kube_gvr CRDS = {"apiextensions.k8s.io", "v1", "customresourcedefinitions",
                                 "CustomResourceDefinition", 0};

static int g_crd_ready;

static void sleep_ms(int ms) { usleep((useconds_t)ms * 1000); }

static sq_kube *admin(void) { return kt_admin(); }

/* Creates a namespace named it-rest-<tag>-<pid> and returns it (static buffer per call site). */
static void make_ns(const char *tag, char *out, size_t n) {
  snprintf(out, n, "it-rest-%s-%d", tag, (int)getpid());
  json_t *ns = json_pack("{s:s,s:s,s:{s:s}}", "apiVersion", "v1", "kind", "Namespace", "metadata",
                         "name", out);
  sq_err err;
  sq_code rc = sq_kube_create(admin(), &NAMESPACES, NULL, ns, NULL, &err);
  json_decref(ns);
  if(rc && rc != SQ_ECONFLICT)
    TEST_FAIL_("create namespace %s: %s", out, err.message);
}

static void ensure_crd(void) {
  if(g_crd_ready)
    return;
  sq_kube *k = admin();
  json_t *crd = json_pack(
      "{s:s,s:s,s:{s:s},s:{s:s,s:s,s:{s:s,s:s,s:s,s:[s]},s:[{s:s,s:b,s:b,s:{s:{}},"
      "s:{s:{s:s,s:b}}}]}}",
      "apiVersion", "apiextensions.k8s.io/v1", "kind", "CustomResourceDefinition", "metadata",
      "name", "widgets.ittest.sqltde.io", "spec", "group", "ittest.sqltde.io", "scope",
      "Namespaced", "names", "plural", "widgets", "singular", "widget", "kind", "Widget",
      "shortNames", "wdg", "versions", "name", "v1", "served", 1, "storage", 1, "subresources",
      "status", "schema", "openAPIV3Schema", "type", "object",
      "x-kubernetes-preserve-unknown-fields", 1);
  ASSERT_NOT_NULL(crd);
  sq_err err;
  sq_code rc = sq_kube_create(k, &CRDS, NULL, crd, NULL, &err);
  json_decref(crd);
  if(rc && rc != SQ_ECONFLICT)
    TEST_FAIL_("create CRD: %s", err.message);

  /* Established, then served: discovery lags the condition a little. */
  int64_t deadline = sq_mono_ms() + 90000;
  int established = 0;
  while(sq_mono_ms() < deadline) {
    json_t *got = NULL;
    if(!established && !sq_kube_get(k, &CRDS, NULL, "widgets.ittest.sqltde.io", &got, &err)) {
      json_t *conds = sq_json_path(got, "status.conditions");
      size_t i;
      json_t *c;
      json_array_foreach(conds, i, c) {
        const char *t = sq_json_str(c, "type"), *s = sq_json_str(c, "status");
        if(t && s && !strcmp(t, "Established") && !strcmp(s, "True"))
          established = 1;
      }
      json_decref(got);
    }
    if(established) {
      json_t *l = NULL;
      sq_kube_list_opts o = {.limit = 1};
      if(!sq_kube_list_page(k, &WIDGETS, "default", &o, &l, &err)) {
        json_decref(l);
        g_crd_ready = 1;
        return;
      }
    }
    sleep_ms(200);
  }
  TEST_FAIL_("CRD widgets.ittest.sqltde.io not served within 90 s (established=%d): %s",
             established, err.message);
}

static json_t *widget(const char *ns, const char *name, int size) {
  return json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:i}}", "apiVersion", "ittest.sqltde.io/v1", "kind",
                   "Widget", "metadata", "name", name, "namespace", ns, "spec", "size", size);
}

TEST(crud_status_patch_conflict) {
  ensure_crd();
  sq_kube *k = admin();
  char ns[64];
  make_ns("crud", ns, sizeof ns);
  sq_err err;
  json_t *w = widget(ns, "w1", 1), *created = NULL, *got = NULL, *upd = NULL, *tmp = NULL;
  ASSERT_OK(sq_kube_create(k, &WIDGETS, ns, w, &created, &err));
  json_decref(w);
  ASSERT_STR_EQ(sq_json_str(created, "metadata.name"), "w1");
  ASSERT_STR_EQ(sq_json_str(created, "metadata.namespace"), ns);
  const char *rv1 = sq_json_str(created, "metadata.resourceVersion");
  ASSERT_NOT_NULL(rv1);

  /* creating it again is a conflict naming the object */
  w = widget(ns, "w1", 1);
  ASSERT_EQ(sq_kube_create(k, &WIDGETS, ns, w, NULL, &err), SQ_ECONFLICT);
  json_decref(w);
  ASSERT_EQ(err.http_status, 409);
  ASSERT_STR_EQ(err.reason, "AlreadyExists");
  ASSERT_STR_CONTAINS(err.message, "create widgets.ittest.sqltde.io/w1 in ");

  ASSERT_OK(sq_kube_get(k, &WIDGETS, ns, "w1", &got, &err));
  ASSERT_EQ(sq_json_int(got, "spec.size", 0), 1);
  ASSERT_STR_EQ(sq_json_str(got, "metadata.resourceVersion"), rv1);

  /* update with the current resourceVersion */
  json_object_set_new(json_object_get(got, "spec"), "size", json_integer(2));
  ASSERT_OK(sq_kube_update(k, &WIDGETS, ns, got, &upd, &err));
  ASSERT_EQ(sq_json_int(upd, "spec.size", 0), 2);
  ASSERT(strcmp(sq_json_str(upd, "metadata.resourceVersion"), rv1) != 0);

  /* the same (now stale) resourceVersion again -> conflict */
  json_object_set_new(json_object_get(got, "spec"), "size", json_integer(3));
  ASSERT_EQ(sq_kube_update(k, &WIDGETS, ns, got, NULL, &err), SQ_ECONFLICT);
  ASSERT_EQ(err.http_status, 409);
  ASSERT_STR_EQ(err.reason, "Conflict");
  ASSERT_STR_CONTAINS(err.message, "update widgets.ittest.sqltde.io/w1 in ");
  ASSERT_STR_CONTAINS(err.message, "the object has been modified");
  json_decref(got);
  got = NULL;

  /* merge patch keeps the other fields */
  json_t *patch = json_pack("{s:{s:s}}", "spec", "color", "blue");
  ASSERT_OK(sq_kube_merge_patch(k, &WIDGETS, ns, "w1", NULL, patch, &tmp, &err));
  json_decref(patch);
  ASSERT_STR_EQ(sq_json_str(tmp, "spec.color"), "blue");
  ASSERT_EQ(sq_json_int(tmp, "spec.size", 0), 2);

  /* status through the subresource; the spec stays */
  json_object_set_new(tmp, "status", json_pack("{s:s}", "phase", "Ready"));
  json_object_set_new(json_object_get(tmp, "spec"), "size", json_integer(99));
  json_decref(upd);
  ASSERT_OK(sq_kube_update_status(k, &WIDGETS, ns, tmp, &upd, &err));
  json_decref(tmp);
  tmp = NULL;
  ASSERT_STR_EQ(sq_json_str(upd, "status.phase"), "Ready");
  ASSERT_EQ(sq_json_int(upd, "spec.size", 0), 2); /* status writes ignore spec */

  /* and a main-resource update ignores status (that is what the subresource is for) */
  json_object_set_new(upd, "status", json_pack("{s:s}", "phase", "Hacked"));
  ASSERT_OK(sq_kube_update(k, &WIDGETS, ns, upd, &tmp, &err));
  ASSERT_STR_EQ(sq_json_str(tmp, "status.phase"), "Ready");
  json_decref(tmp);
  tmp = NULL;

  patch = json_pack("{s:{s:s}}", "status", "phase", "Degraded");
  ASSERT_OK(sq_kube_merge_patch(k, &WIDGETS, ns, "w1", "status", patch, &tmp, &err));
  json_decref(patch);
  ASSERT_STR_EQ(sq_json_str(tmp, "status.phase"), "Degraded");
  json_decref(tmp);
  json_decref(upd);
  json_decref(created);

  ASSERT_OK(sq_kube_delete(k, &WIDGETS, ns, "w1", &err));
  /* custom objects without finalizers are gone at once */
  ASSERT_EQ(sq_kube_get(k, &WIDGETS, ns, "w1", &got, &err), SQ_ENOTFOUND);
  ASSERT_NULL(got);
  ASSERT_EQ(err.http_status, 404);
  ASSERT_STR_EQ(err.reason, "NotFound");
  ASSERT_STR_CONTAINS(err.message, "get widgets.ittest.sqltde.io/w1 in ");
  ASSERT_EQ(sq_kube_delete(k, &WIDGETS, ns, "w1", &err), SQ_ENOTFOUND);
  ASSERT_STR_CONTAINS(err.message, "delete widgets.ittest.sqltde.io/w1");
}

TEST(list_pagination) {
  ensure_crd();
  sq_kube *k = admin();
  char ns[64];
  make_ns("page", ns, sizeof ns);
  sq_err err;
  enum { N = 25 };
  for(int i = 0; i < N; i++) {
    char name[32];
    snprintf(name, sizeof name, "p%02d", i);
    json_t *w = widget(ns, name, i);
    json_object_set_new(json_object_get(w, "metadata"), "labels",
                        json_pack("{s:s}", "batch", "pg"));
    ASSERT_OK(sq_kube_create(k, &WIDGETS, ns, w, NULL, &err));
    json_decref(w);
  }
  json_t *odd = widget(ns, "unlabelled", 0);
  ASSERT_OK(sq_kube_create(k, &WIDGETS, ns, odd, NULL, &err));
  json_decref(odd);

  int seen[N] = {0}, pages = 0, total = 0;
  char *cont = NULL;
  do {
    sq_kube_list_opts o = {.label_selector = "batch=pg", .limit = 10, .continue_token = cont};
    json_t *page = NULL;
    ASSERT_OK(sq_kube_list_page(k, &WIDGETS, ns, &o, &page, &err));
    pages++;
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(page, "items"), i, it) {
      const char *name = sq_json_str(it, "metadata.name");
      ASSERT_NOT_NULL(name);
      ASSERT_EQ(name[0], 'p');
      int idx = atoi(name + 1);
      ASSERT(idx >= 0 && idx < N);
      seen[idx]++;
      total++;
    }
    ASSERT_LE(json_array_size(json_object_get(page, "items")), 10);
    free(cont);
    const char *c = sq_json_str(page, "metadata.continue");
    cont = c && *c ? strdup(c) : NULL;
    json_decref(page);
    ASSERT_LE(pages, 10);
  } while(cont);
  ASSERT_EQ(pages, 3);
  ASSERT_EQ(total, N);
  for(int i = 0; i < N; i++)
    ASSERT_EQ(seen[i], 1);

  /* sq_kube_list follows continue by itself */
  json_t *all = NULL;
  ASSERT_OK(sq_kube_list(k, &WIDGETS, ns, "batch=pg", 10, &all, &err));
  ASSERT_EQ(json_array_size(json_object_get(all, "items")), N);
  ASSERT_NULL(sq_json_str(all, "metadata.continue"));
  ASSERT_NOT_NULL(sq_json_str(all, "metadata.resourceVersion"));
  json_decref(all);

  /* without a selector the unlabelled one is there too; fieldSelector narrows to one */
  ASSERT_OK(sq_kube_list(k, &WIDGETS, ns, NULL, 0, &all, &err));
  ASSERT_EQ(json_array_size(json_object_get(all, "items")), N + 1);
  json_decref(all);
  sq_kube_list_opts fo = {.field_selector = "metadata.name=p07"};
  ASSERT_OK(sq_kube_list_page(k, &WIDGETS, ns, &fo, &all, &err));
  ASSERT_EQ(json_array_size(json_object_get(all, "items")), 1);
  ASSERT_STR_EQ(sq_json_str(json_array_get(json_object_get(all, "items"), 0), "metadata.name"),
                "p07");
  json_decref(all);

  /* a bad selector is the server's 400, with its message */
  sq_kube_list_opts bad = {.label_selector = "batch in (("};
  ASSERT_EQ(sq_kube_list_page(k, &WIDGETS, ns, &bad, &all, &err), SQ_EBADREQ);
  ASSERT_NULL(all);
  ASSERT_EQ(err.http_status, 400);
  ASSERT_STR_CONTAINS(err.message, "list widgets.ittest.sqltde.io in ");
}

static sq_kube *client_with(const char *token, const char *token_file, const char *server) {
  sq_kube_config cfg;
  sq_err err;
  if(sq_kube_config_load_file(getenv("KUBECONFIG"), NULL, &cfg, &err))
    TEST_FAIL_("load: %s", err.message);
  sq_free_secret(cfg.token);
  cfg.token = token ? strdup(token) : NULL;
  cfg.token_file = token_file ? strdup(token_file) : NULL;
  if(server) {
    free(cfg.server);
    cfg.server = strdup(server);
  }
  sq_kube *k = NULL;
  sq_code rc = sq_kube_new(&cfg, &k, &err);
  sq_kube_config_free(&cfg);
  if(rc)
    TEST_FAIL_("sq_kube_new: %s", err.message);
  return k;
}

TEST(wrong_token_is_unauthorized) {
  sq_kube *k = client_with("not-a-valid-token", NULL, NULL);
  sq_err err;
  json_t *out = NULL;
  sq_code rc = sq_kube_get(k, &NAMESPACES, NULL, "default", &out, &err);
  sq_kube_free(k);
  ASSERT_EQ(rc, SQ_EUNAUTH);
  ASSERT_NULL(out);
  ASSERT_EQ(err.http_status, 401);
  ASSERT_STR_EQ(err.reason, "Unauthorized");
  ASSERT_STR_CONTAINS(err.message, "get namespaces/default: ");
  ASSERT_STR_CONTAINS(err.message, "rejected our credentials");
  ASSERT(!strstr(err.message, "not-a-valid-token")); /* never echo the secret */
}

TEST(token_file_rotation_is_seen) {
  char dir[] = "/tmp/it-rest-tok-XXXXXX";
  ASSERT_NOT_NULL(mkdtemp(dir));
  char path[128];
  snprintf(path, sizeof path, "%s/token", dir);
  FILE *f = fopen(path, "w");
  ASSERT_NOT_NULL(f);
  fputs("stale-token\n", f);
  fclose(f);
  sq_kube *k = client_with(NULL, path, NULL);
  sq_err err;
  json_t *out = NULL;
  ASSERT_EQ(sq_kube_get(k, &NAMESPACES, NULL, "default", &out, &err), SQ_EUNAUTH);

  /* "rotate": write the admin token the way the kubelet does (new file, rename) */
  sq_kube_config cfg;
  ASSERT_OK(sq_kube_config_load_file(getenv("KUBECONFIG"), NULL, &cfg, &err));
  ASSERT_NOT_NULL(cfg.token);
  char tmp[160];
  snprintf(tmp, sizeof tmp, "%s/token.new", dir);
  f = fopen(tmp, "w");
  ASSERT_NOT_NULL(f);
  fprintf(f, "%s\n", cfg.token);
  fclose(f);
  sq_kube_config_free(&cfg);
  ASSERT_OK(rename(tmp, path));
  sq_code rc = sq_kube_get(k, &NAMESPACES, NULL, "default", &out, &err);
  if(rc)
    TEST_FAIL_("after rotation: %s", err.message);
  ASSERT_STR_EQ(sq_json_str(out, "metadata.name"), "default");
  json_decref(out);
  sq_kube_free(k);
  unlink(path);
  rmdir(dir);
}

TEST(service_account_without_rbac_is_forbidden) {
  ensure_crd();
  sq_kube *k = admin();
  char ns[64];
  make_ns("rbac", ns, sizeof ns);
  sq_err err;
  json_t *sa = json_pack("{s:s,s:s,s:{s:s}}", "apiVersion", "v1", "kind", "ServiceAccount",
                         "metadata", "name", "nobody");
  sq_code rc = sq_kube_create(k, &SERVICEACCOUNTS, ns, sa, NULL, &err);
  json_decref(sa);
  if(rc && rc != SQ_ECONFLICT)
    TEST_FAIL_("create SA: %s", err.message);

  /* TokenRequest: POST .../serviceaccounts/nobody/token */
  char *path = sq_kube_path(&SERVICEACCOUNTS, ns, "nobody", "token");
  ASSERT_NOT_NULL(path);
  json_t *tr = json_pack("{s:s,s:s,s:{s:i}}", "apiVersion", "authentication.k8s.io/v1", "kind",
                         "TokenRequest", "spec", "expirationSeconds", 3600);
  json_t *resp = NULL;
  rc = sq_kube_request(k, "POST", path, NULL, tr, &resp, &err);
  json_decref(tr);
  free(path);
  if(rc)
    TEST_FAIL_("TokenRequest: %s", err.message);
  const char *tok = sq_json_str(resp, "status.token");
  ASSERT_NOT_NULL(tok);
  sq_kube *weak = client_with(tok, NULL, NULL);
  json_decref(resp);

  json_t *out = NULL;
  rc = sq_kube_list(weak, &WIDGETS, ns, NULL, 0, &out, &err);
  ASSERT_EQ(rc, SQ_EFORBIDDEN);
  ASSERT_NULL(out);
  ASSERT_EQ(err.http_status, 403);
  ASSERT_STR_EQ(err.reason, "Forbidden");
  ASSERT_STR_CONTAINS(err.message, "list widgets.ittest.sqltde.io in ");
  char who[128];
  snprintf(who, sizeof who, "system:serviceaccount:%s:nobody", ns);
  ASSERT_STR_CONTAINS(err.message, who);
  ASSERT_STR_CONTAINS(err.message, "cannot list resource \"widgets\"");

  json_t *w = widget(ns, "x", 1);
  ASSERT_EQ(sq_kube_create(weak, &WIDGETS, ns, w, NULL, &err), SQ_EFORBIDDEN);
  ASSERT_STR_CONTAINS(err.message, "cannot create resource \"widgets\"");
  json_decref(w);
  sq_kube_free(weak);
}

TEST(unreachable_server_is_transport_error) {
  /* a port that was just free and that nobody listens on */
  int s = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT(s >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  ASSERT_OK(bind(s, (struct sockaddr *)&a, sizeof a));
  socklen_t al = sizeof a;
  ASSERT_OK(getsockname(s, (struct sockaddr *)&a, &al));
  close(s);
  char url[64];
  snprintf(url, sizeof url, "https://127.0.0.1:%d", ntohs(a.sin_port));
  sq_kube *k = client_with("whatever", NULL, url);
  sq_err err;
  json_t *out = NULL;
  sq_code rc = sq_kube_get(k, &NAMESPACES, NULL, "default", &out, &err);
  ASSERT_EQ(rc, SQ_ETRANSPORT);
  ASSERT_NULL(out);
  ASSERT_EQ(err.http_status, 0);
  ASSERT_STR_CONTAINS(err.message, url);
  ASSERT_STR_CONTAINS(err.message, "cannot reach the apiserver");
  atomic_int cancel = 0;
  rc = sq_kube_watch(k, &NAMESPACES, NULL, NULL, NULL, 5, &cancel, NULL, NULL, &err);
  ASSERT_EQ(rc, SQ_ETRANSPORT);
  ASSERT_STR_CONTAINS(err.message, url);
  sq_kube_free(k);
}

TEST(non_json_answer_is_parse_error) {
  /* /healthz answers "ok" as text/plain: a body that is not JSON must be a
   * parse error, never a crash or a silent success */
  sq_err err;
  json_t *out = NULL;
  ASSERT_EQ(sq_kube_request(admin(), "GET", "/healthz", NULL, NULL, &out, &err), SQ_EPARSE);
  ASSERT_NULL(out);
  ASSERT_STR_CONTAINS(err.message, "GET /healthz: ");
  /* and with out == NULL the body is not needed, so it is fine */
  ASSERT_OK(sq_kube_request(admin(), "GET", "/healthz", NULL, NULL, NULL, &err));
}

/* ---- watch ---- */

typedef struct events {
  pthread_mutex_t mu;
  char log[64][48]; /* "TYPE name" */
  int n;
  const char *stop_on; /* name whose DELETED ends the watch */
  sq_code rc;
  sq_err err;
  const char *ns;
  const char *rv;
  atomic_int cancel;
  atomic_int started;
} events;

static int on_event(void *ud, const char *type, json_t *obj) {
  events *e = ud;
  const char *name = sq_json_str(obj, "metadata.name");
  if(!strcmp(type, "BOOKMARK") || !name)
    return 0;
  pthread_mutex_lock(&e->mu);
  if(e->n < 64)
    snprintf(e->log[e->n++], sizeof e->log[0], "%s %s", type, name);
  pthread_mutex_unlock(&e->mu);
  return !strcmp(type, "DELETED") && !strcmp(name, e->stop_on);
}

static void *watch_thread(void *ud) {
  events *e = ud;
  atomic_store(&e->started, 1);
  e->rc = sq_kube_watch(admin(), &WIDGETS, e->ns, e->rv, NULL, 120, &e->cancel, on_event, e,
                        &e->err);
  return NULL;
}

TEST(watch_sees_add_modify_delete) {
  ensure_crd();
  sq_kube *k = admin();
  char ns[64];
  make_ns("watch", ns, sizeof ns);
  sq_err err;
  json_t *l = NULL;
  ASSERT_OK(sq_kube_list(k, &WIDGETS, ns, NULL, 0, &l, &err));
  char rv[64];
  snprintf(rv, sizeof rv, "%s", sq_json_str(l, "metadata.resourceVersion"));
  json_decref(l);

  events e;
  memset(&e, 0, sizeof e);
  pthread_mutex_init(&e.mu, NULL);
  e.stop_on = "wa";
  e.ns = ns;
  e.rv = rv;
  pthread_t th;
  ASSERT_OK(pthread_create(&th, NULL, watch_thread, &e));

  /* changes made while the watch runs; starting from rv, none can be missed */
  json_t *w = widget(ns, "wa", 1);
  ASSERT_OK(sq_kube_create(k, &WIDGETS, ns, w, NULL, &err));
  json_decref(w);
  json_t *patch = json_pack("{s:{s:i}}", "spec", "size", 5);
  ASSERT_OK(sq_kube_merge_patch(k, &WIDGETS, ns, "wa", NULL, patch, NULL, &err));
  json_decref(patch);
  ASSERT_OK(sq_kube_delete(k, &WIDGETS, ns, "wa", &err));

  /* the thread ends when it sees DELETED; cancel after a generous deadline */
  int64_t deadline = sq_mono_ms() + 60000;
  for(;;) {
    pthread_mutex_lock(&e.mu);
    int done = e.n >= 3;
    pthread_mutex_unlock(&e.mu);
    if(done || sq_mono_ms() > deadline)
      break;
    sleep_ms(50);
  }
  atomic_store(&e.cancel, 1);
  pthread_join(th, NULL);
  if(e.rc)
    TEST_FAIL_("watch returned %s: %s", sq_code_name(e.rc), e.err.message);
  ASSERT_EQ(e.n, 3);
  ASSERT_STR_EQ(e.log[0], "ADDED wa");
  ASSERT_STR_EQ(e.log[1], "MODIFIED wa");
  ASSERT_STR_EQ(e.log[2], "DELETED wa");
  pthread_mutex_destroy(&e.mu);
}

TEST(watch_cancel_and_server_timeout) {
  ensure_crd();
  char ns[64];
  make_ns("wcancel", ns, sizeof ns);
  events e;
  memset(&e, 0, sizeof e);
  pthread_mutex_init(&e.mu, NULL);
  e.stop_on = "never";
  e.ns = ns;
  pthread_t th;
  ASSERT_OK(pthread_create(&th, NULL, watch_thread, &e));
  sleep_ms(1000);
  int64_t t0 = sq_mono_ms();
  atomic_store(&e.cancel, 1);
  pthread_join(th, NULL);
  ASSERT_EQ(e.rc, SQ_ECANCELED);
  ASSERT_LT(sq_mono_ms() - t0, 10000); /* generous: the flag is polled ~every 100 ms */

  /* timeoutSeconds=1: the server closes the stream, which is SQ_OK */
  sq_err err;
  atomic_int never = 0;
  ASSERT_OK(sq_kube_watch(admin(), &WIDGETS, ns, NULL, NULL, 1, &never, on_event, &e, &err));
  pthread_mutex_destroy(&e.mu);
}

TEST(watch_too_old_resource_version_is_gone) {
  /* The apiserver's watch cache for the CRD starts at the rv current when the
   * CRD was installed, so rv 1 is "too old": it answers with an ERROR event
   * carrying code 410 (reason Expired), which must become SQ_EGONE. */
  ensure_crd();
  sq_err err;
  events e;
  memset(&e, 0, sizeof e);
  pthread_mutex_init(&e.mu, NULL);
  e.stop_on = "never";
  atomic_int never = 0;
  sq_code rc =
      sq_kube_watch(admin(), &WIDGETS, "default", "1", NULL, 5, &never, on_event, &e, &err);
  ASSERT_EQ(rc, SQ_EGONE);
  ASSERT_EQ(err.http_status, 410);
  ASSERT(err.reason[0] != '\0');
  ASSERT_STR_CONTAINS(err.message, "watch widgets.ittest.sqltde.io in default: ");
  ASSERT_STR_CONTAINS(err.message, "too old");
  ASSERT_EQ(e.n, 0); /* the ERROR event is not handed to the callback */
  pthread_mutex_destroy(&e.mu);
}

/* ---- client certificate from inline kubeconfig data, CA from a relative file ---- */

static int run(const char *cmd) {
  int st = system(cmd);
  return st;
}

static char *b64_file(const char *path) {
  sq_buf raw, enc;
  sq_buf_init(&raw, 1 << 20);
  sq_buf_init(&enc, 2 << 20);
  if(sq_buf_read_file(&raw, path, NULL) || sq_b64_encode(raw.ptr, raw.len, 0, &enc)) {
    sq_buf_free_wipe(&raw);
    sq_buf_free(&enc);
    return NULL;
  }
  sq_buf_free_wipe(&raw);
  return sq_buf_detach(&enc);
}

TEST(client_certificate_kubeconfig) {
  const char *cdir = getenv("SQLTDE_CLUSTER_DIR");
  if(!cdir)
    TEST_FAIL_("SQLTDE_CLUSTER_DIR is not set");
  char dir[] = "/tmp/it-rest-cert-XXXXXX";
  ASSERT_NOT_NULL(mkdtemp(dir));
  char cmd[2048];
  /* CN = user, O = group; system:masters may do anything */
  snprintf(cmd, sizeof cmd,
           "cd %s && openssl req -newkey rsa:2048 -nodes -keyout u.key -out u.csr "
           "-subj '/O=system:masters/CN=it-rest-cert' 2>/dev/null && "
           "openssl x509 -req -in u.csr -CA %s/pki/ca.crt -CAkey %s/pki/ca.key -CAcreateserial "
           "-days 1 -sha256 -out u.crt 2>/dev/null && mkdir -p sub && cp %s/pki/ca.crt sub/ca.crt",
           dir, cdir, cdir, cdir);
  ASSERT_OK(run(cmd));
  char p[256];
  snprintf(p, sizeof p, "%s/u.crt", dir);
  char *crt = b64_file(p);
  snprintf(p, sizeof p, "%s/u.key", dir);
  char *key = b64_file(p);
  ASSERT_NOT_NULL(crt);
  ASSERT_NOT_NULL(key);

  sq_kube_config admin_cfg;
  sq_err err;
  ASSERT_OK(sq_kube_config_load_file(getenv("KUBECONFIG"), NULL, &admin_cfg, &err));
  snprintf(p, sizeof p, "%s/config", dir);
  FILE *f = fopen(p, "w");
  ASSERT_NOT_NULL(f);
  fprintf(f,
          "apiVersion: v1\nkind: Config\n"
          "clusters:\n- name: c\n  cluster:\n    server: %s/\n    certificate-authority: "
          "sub/ca.crt\n"
          "users:\n- name: u\n  user:\n    client-certificate-data: %s\n    client-key-data: %s\n"
          "contexts:\n- name: x\n  context: {cluster: c, user: u, namespace: kube-system}\n"
          "current-context: x\n",
          admin_cfg.server, crt, key);
  fclose(f);
  sq_kube_config_free(&admin_cfg);
  sq_free_secret(key);
  free(crt);

  sq_kube_config cfg;
  ASSERT_OK(sq_kube_config_load_file(p, NULL, &cfg, &err));
  ASSERT_NOT_NULL(cfg.cert_pem);
  ASSERT_NOT_NULL(cfg.key_pem);
  ASSERT_NULL(cfg.token);
  sq_kube *k = NULL;
  ASSERT_OK(sq_kube_new(&cfg, &k, &err));
  sq_kube_config_free(&cfg);
  ASSERT_STR_EQ(sq_kube_namespace(k), "kube-system");
  json_t *out = NULL;
  sq_code rc = sq_kube_get(k, &NAMESPACES, NULL, "kube-system", &out, &err);
  if(rc)
    TEST_FAIL_("get with client certificate: %s", err.message);
  ASSERT_STR_EQ(sq_json_str(out, "metadata.name"), "kube-system");
  json_decref(out);
  sq_kube_free(k);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  ASSERT_OK(run(cmd));
}

TEST(cleanup) {
  /* best effort: the namespaces of this run (the cluster is usually thrown away) */
  const char *tags[] = {"crud", "page", "rbac", "watch", "wcancel"};
  for(size_t i = 0; i < sizeof tags / sizeof *tags; i++) {
    char ns[64];
    snprintf(ns, sizeof ns, "it-rest-%s-%d", tags[i], (int)getpid());
    sq_err err;
    sq_code rc = sq_kube_delete(admin(), &NAMESPACES, NULL, ns, &err);
    ASSERT(rc == SQ_OK || rc == SQ_ENOTFOUND);
  }
}

TEST_MAIN()
