/* 409 Conflict on update is retried from fresh state: writers racing on one
 * object through sq_kube_update_retry never lose an update. */
#include <pthread.h>
#include <stdio.h>

#include "kubetest.h"
#include "sqltde/jsonx.h"
#include "test.h"

static const sq_kube_gvr COUNTERS = {"conflict.sqltde.io", "v1", "counters", "Counter", 1};
#define WRITERS 4
#define INCREMENTS 15

static sq_code bump(void *ud, json_t *obj, sq_err *err) {
  (void)ud;
  (void)err;
  json_t *spec = json_object_get(obj, "spec");
  json_int_t n = json_integer_value(json_object_get(spec, "n"));
  json_object_set_new(spec, "n", json_integer(n + 1));
  return SQ_OK;
}

static sq_code decline(void *ud, json_t *obj, sq_err *err) {
  (void)ud;
  (void)obj;
  (void)err;
  return SQ_ESTATE;
}

typedef struct writer {
  sq_kube *k;
  int failures;
} writer;

static void *run_writer(void *arg) {
  writer *w = arg;
  for(int i = 0; i < INCREMENTS; i++) {
    sq_err e;
    if(sq_kube_update_retry(w->k, &COUNTERS, "conflict", "c1", 0, 20, bump, NULL, NULL, &e))
      w->failures++;
  }
  return NULL;
}

static sq_kube *client(void) {
  sq_kube_config cfg;
  sq_kube *k = NULL;
  sq_err e;
  if(sq_kube_config_load_file(getenv("KUBECONFIG"), NULL, &cfg, &e) || sq_kube_new(&cfg, &k, &e))
    TEST_FAIL_("client: %s", e.message);
  sq_kube_config_free(&cfg);
  return k;
}

TEST(racing_writers_lose_nothing) {
  kt_install_crd(&COUNTERS);
  kt_ensure_ns("conflict");
  json_t *o = json_pack("{s:s,s:s,s:{s:s},s:{s:i}}", "apiVersion", "conflict.sqltde.io/v1", "kind", "Counter",
                        "metadata", "name", "c1", "spec", "n", 0);
  sq_err e;
  ASSERT_OK(sq_kube_create(kt_admin(), &COUNTERS, "conflict", o, NULL, &e));
  json_decref(o);

  /* a stale write really conflicts (so the race below is a real one) */
  json_t *stale = NULL;
  ASSERT_OK(sq_kube_get(kt_admin(), &COUNTERS, "conflict", "c1", &stale, &e));
  ASSERT_OK(sq_kube_update_retry(kt_admin(), &COUNTERS, "conflict", "c1", 0, 0, bump, NULL, NULL, &e));
  ASSERT_EQ(sq_kube_update(kt_admin(), &COUNTERS, "conflict", stale, NULL, &e), SQ_ECONFLICT);
  json_decref(stale);

  writer w[WRITERS];
  pthread_t th[WRITERS];
  for(int i = 0; i < WRITERS; i++) {
    w[i] = (writer){.k = client()};
    ASSERT_OK(pthread_create(&th[i], NULL, run_writer, &w[i]));
  }
  for(int i = 0; i < WRITERS; i++) {
    pthread_join(th[i], NULL);
    ASSERT_EQ(w[i].failures, 0);
    sq_kube_free(w[i].k);
  }
  json_t *final = NULL;
  ASSERT_OK(sq_kube_get(kt_admin(), &COUNTERS, "conflict", "c1", &final, &e));
  ASSERT_EQ(sq_json_int(final, "spec.n", -1), 1 + WRITERS * INCREMENTS);
  const char *rv = sq_json_str(final, "metadata.resourceVersion");
  char rv_before[64];
  snprintf(rv_before, sizeof rv_before, "%s", rv ? rv : "");
  json_decref(final);

  /* declining writes nothing */
  ASSERT_OK(sq_kube_update_retry(kt_admin(), &COUNTERS, "conflict", "c1", 0, 0, decline, NULL, &final, &e));
  ASSERT_STR_EQ(sq_json_str(final, "metadata.resourceVersion"), rv_before);
  json_decref(final);
}

TEST_MAIN()
