/* bench_cache.c — memory of the informer cache for SqlDatabase-sized objects.
 *
 *   bench_cache [store] [N]       feed the store directly from generated JSON
 *   bench_cache apiserver [N]     create N custom resources in a real apiserver
 *                                 (KUBECONFIG) and sync an informer over them:
 *       tests/integration/with-cluster.sh build/tests/bench_cache apiserver 10000
 *
 * N defaults to 10,000. Each object is a SqlDatabase-like custom resource of
 * about 1.5 KiB of JSON: spec with server/identity refs, protector, 3 key
 * URIs, geoSecondaries, a status with a condition, plus the managedFields and
 * kubectl last-applied annotation that the cache must strip. The figures
 * (one "name value" per line) are:
 *   raw_json_bytes_per_object       the object as the apiserver sends it
 *   stripped_json_bytes_per_object  after sq_cache_strip
 *   cache_bytes_per_object          malloc'd bytes the cache holds (mallinfo2
 *                                   delta), table and malloc overhead included
 *   jansson_bytes_per_object        (store mode) the same objects kept as
 *                                   jansson trees instead: the alternative
 *   put_us_per_object               parse + strip + store of one object
 *   get_us_per_object               cost of a read (parse of the stored text)
 *   rss_kib                         VmRSS of the process at the end
 * Build without sanitizers: ASan replaces malloc and mallinfo2 reads 0. */
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqltde/clock.h"
#include "sqltde/http.h"
#include "sqltde/jsonx.h"
#include "sqltde/kube/cache.h"
#include "sqltde/kube/client.h"
#include "sqltde/kube/informer.h"
#include "sqltde/log.h"

#define NS "bench"

static const sq_kube_gvr BENCH_GVR = {"bench.sqltde.io", "v1alpha1", "sqldatabases", "SqlDatabase",
                                      1};

static size_t heap_used(void) {
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

static long rss_kib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kib = -1;
  if(!f)
    return -1;
  while(fgets(line, sizeof line, f))
    if(!strncmp(line, "VmRSS:", 6)) {
      kib = strtol(line + 6, NULL, 10);
      break;
    }
  fclose(f);
  return kib;
}

/* A 40-hex-digit pseudo thumbprint / key version from i, deterministic. */
static void hexid(char *out, unsigned i, unsigned salt, int len) {
  uint64_t x = (uint64_t)i * 0x9E3779B97F4A7C15ull ^ salt;
  for(int k = 0; k < len; k++) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    out[k] = "0123456789abcdef"[x & 15];
  }
  out[len] = '\0';
}

/* The spec and labels of database i, as JSON text (also used inside the
 * last-applied annotation, as kubectl does). */
static void spec_json(char *out, size_t n, unsigned i) {
  char v1[33], v2[33], v3[33], uid[13];
  hexid(v1, i, 1, 32);
  hexid(v2, i, 2, 32);
  hexid(v3, i, 3, 32);
  hexid(uid, i, 4, 12);
  snprintf(out, n,
           "{\"serverRef\":\"sqlsrv-weu-%02u\",\"databaseName\":\"tenantdb-%05u\","
           "\"identityRef\":\"umi-tenant-%04u\","
           "\"federatedClientId\":\"6a1c2f4e-0b7d-4c8e-9f21-%s\","
           "\"encryptionProtector\":{\"keyRef\":\"tde-tenant-%04u\"},"
           "\"keys\":[\"https://kv-tenant-%04u.vault.azure.net/keys/tde/%s\","
           "\"https://kv-tenant-%04u.vault.azure.net/keys/tde/%s\","
           "\"https://kv-tenant-%04u.vault.azure.net/keys/tde/%s\"],"
           "\"autoRotation\":true,"
           "\"geoSecondaries\":[{\"serverRef\":\"sqlsrv-neu-%02u\"}],"
           "\"deletionPolicy\":\"Retain\"}",
           i % 100, i, i % 1000, uid, i % 1000, i % 1000, v1, i % 1000, v2, i % 1000, v3, i % 100);
}

/* The whole object as a client sends it (no server fields). */
static json_t *make_object(unsigned i, int with_server_fields) {
  char spec[1024], name[32], annot[1400], thumb[41], uid[37];
  json_t *spec_j = NULL;
  spec_json(spec, sizeof spec, i);
  snprintf(name, sizeof name, "tenantdb-%05u", i);
  snprintf(annot, sizeof annot,
           "{\"apiVersion\":\"sqltde.io/v1alpha1\",\"kind\":\"SqlDatabase\","
           "\"metadata\":{\"annotations\":{},"
           "\"labels\":{\"app.kubernetes.io/part-of\":\"tenants\"},"
           "\"name\":\"%s\",\"namespace\":\"" NS "\"},\"spec\":%s}\n",
           name, spec);
  if(sq_json_parse(spec, strlen(spec), "spec", &spec_j, NULL))
    return NULL;
  hexid(thumb, i, 5, 40);
  json_t *o = json_pack(
      "{s:s, s:s, s:{s:s, s:s, s:{s:s}, s:{s:s}, s:[s]}, s:o, s:{s:i, s:s, s:s, s:[{s:s, s:s, "
      "s:i, s:s, s:s, s:s}]}}",
      "apiVersion", "bench.sqltde.io/v1alpha1", "kind", "SqlDatabase", "metadata", "name", name,
      "namespace", NS, "labels", "app.kubernetes.io/part-of", "tenants", "annotations",
      "kubectl.kubernetes.io/last-applied-configuration", annot, "finalizers",
      "sqltde.io/finalizer", "spec", spec_j, "status", "observedGeneration", 1, "state", "Online",
      "protectorThumbprint", thumb, "conditions", "type", "Ready", "status", "True",
      "observedGeneration", 1, "lastTransitionTime", "2026-11-20T10:00:00Z", "reason",
      "Reconciled", "message", "database encrypted with its own protector");
  if(o && with_server_fields) {
    /* What the apiserver adds: identity, versions and the field manager's
     * record of who set what (kubectl client-side apply). */
    hexid(uid, i, 6, 36);
    uid[8] = uid[13] = uid[18] = uid[23] = '-';
    json_t *md = json_object_get(o, "metadata");
    json_object_set_new(md, "uid", json_string(uid));
    json_object_set_new(md, "resourceVersion", json_sprintf("%u", 100000 + i));
    json_object_set_new(md, "generation", json_integer(1));
    json_object_set_new(md, "creationTimestamp", json_string("2026-11-20T09:59:58Z"));
    const char *mf =
        "[{\"manager\":\"kubectl-client-side-apply\",\"operation\":\"Update\","
        "\"apiVersion\":\"sqltde.io/v1alpha1\",\"time\":\"2026-11-20T09:59:58Z\","
        "\"fieldsType\":\"FieldsV1\",\"fieldsV1\":{\"f:metadata\":{\"f:annotations\":{\".\":{},"
        "\"f:kubectl.kubernetes.io/last-applied-configuration\":{}},\"f:labels\":{\".\":{},"
        "\"f:app.kubernetes.io/part-of\":{}}},\"f:spec\":{\".\":{},\"f:autoRotation\":{},"
        "\"f:databaseName\":{},\"f:deletionPolicy\":{},\"f:encryptionProtector\":{\".\":{},"
        "\"f:keyRef\":{}},\"f:federatedClientId\":{},\"f:geoSecondaries\":{},"
        "\"f:identityRef\":{},\"f:keys\":{},\"f:serverRef\":{}}}},"
        "{\"manager\":\"sqltde-operator\",\"operation\":\"Update\","
        "\"apiVersion\":\"sqltde.io/v1alpha1\",\"time\":\"2026-11-20T10:00:00Z\","
        "\"fieldsType\":\"FieldsV1\",\"fieldsV1\":{\"f:metadata\":{\"f:finalizers\":{\".\":{},"
        "\"v:\\\"sqltde.io/finalizer\\\"\":{}}},\"f:status\":{\".\":{},\"f:conditions\":{},"
        "\"f:observedGeneration\":{},\"f:protectorThumbprint\":{},\"f:state\":{}}}}]";
    json_t *mfj = NULL;
    if(!sq_json_parse(mf, strlen(mf), "managedFields", &mfj, NULL))
      json_object_set_new(md, "managedFields", mfj);
  }
  return o;
}

static int64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static size_t dump_len(const json_t *o) { return json_dumpb(o, NULL, 0, JSON_COMPACT); }

/* Object i as text, as it would arrive from the wire. Caller frees. */
static char *wire_text(unsigned i) {
  json_t *o = make_object(i, 1);
  char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  return t;
}

static int bench_store(unsigned n) {
  sq_cache *c;
  sq_err err;
  size_t raw = 0, stripped = 0;
  int64_t t_put = 0;

  size_t before = heap_used();
  if(!before) {
    fprintf(stderr, "mallinfo2 reports nothing: build without sanitizers\n");
    return 1;
  }
  if(sq_cache_new(&c, &err)) {
    fprintf(stderr, "%s\n", err.message);
    return 1;
  }
  /* Texts are generated one at a time and freed, so that the heap delta and
   * the RSS show the cache, not the generator. */
  for(unsigned i = 0; i < n; i++) {
    char *text = wire_text(i);
    if(!text)
      return fprintf(stderr, "cannot generate object %u\n", i), 1;
    raw += strlen(text);
    int64_t t0 = mono_us();
    json_t *o = NULL;
    if(sq_json_parse(text, strlen(text), "object", &o, &err))
      return fprintf(stderr, "%s\n", err.message), 1;
    sq_cache_strip(o);
    if(sq_cache_put(c, o, NULL, &err))
      return fprintf(stderr, "%s\n", err.message), 1;
    t_put += mono_us() - t0;
    stripped += dump_len(o);
    json_decref(o);
    free(text);
  }
  size_t cache_bytes = heap_used() - before;

  /* read cost: every object once */
  int64_t t0 = mono_us();
  char key[64];
  for(unsigned i = 0; i < n; i++) {
    snprintf(key, sizeof key, NS "/tenantdb-%05u", i);
    json_t *o = sq_cache_get(c, key);
    if(!o)
      return fprintf(stderr, "missing %s\n", key), 1;
    json_decref(o);
  }
  int64_t t_get = mono_us() - t0;
  long rss_with_cache = rss_kib();

  printf("objects %u\n", n);
  printf("raw_json_bytes_per_object %zu\n", raw / n);
  printf("stripped_json_bytes_per_object %zu\n", stripped / n);
  printf("cache_payload_bytes_per_object %zu\n", sq_cache_payload_bytes(c) / n);
  printf("cache_bytes_per_object %zu\n", cache_bytes / n);
  printf("put_us_per_object %.1f\n", (double)t_put / n);
  printf("get_us_per_object %.1f\n", (double)t_get / n);
  printf("rss_kib %ld\n", rss_with_cache);
  sq_cache_free(c);

  /* The alternative: keep the stripped jansson trees themselves. */
  json_t **trees = calloc(n, sizeof *trees);
  size_t before_j = heap_used();
  for(unsigned i = 0; i < n; i++) {
    char *text = wire_text(i);
    if(!text || sq_json_parse(text, strlen(text), "object", &trees[i], &err))
      return fprintf(stderr, "cannot generate object %u\n", i), 1;
    sq_cache_strip(trees[i]);
    free(text);
  }
  size_t jansson_bytes = heap_used() - before_j;
  printf("jansson_bytes_per_object %zu\n", jansson_bytes / n);
  printf("jansson_rss_kib %ld\n", rss_kib());
  for(unsigned i = 0; i < n; i++)
    json_decref(trees[i]);
  free(trees);
  return cache_bytes / n <= 2048 ? 0 : 3;
}

/* ---- apiserver mode -------------------------------------------------------------- */

typedef struct creator {
  sq_kube *k;
  atomic_uint next;
  unsigned n;
  atomic_uint failed;
} creator;

static void *create_worker(void *arg) {
  creator *cr = arg;
  sq_err err;
  for(;;) {
    unsigned i = atomic_fetch_add(&cr->next, 1);
    if(i >= cr->n)
      break;
    json_t *o = make_object(i, 0);
    sq_code rc = SQ_ETRANSPORT;
    for(int attempt = 0; attempt < 5 && rc && rc != SQ_ECONFLICT; attempt++) {
      rc = sq_kube_create(cr->k, &BENCH_GVR, NS, o, NULL, &err);
      if(rc && rc != SQ_ECONFLICT)
        sq_sleep_ms(200);
    }
    if(rc && rc != SQ_ECONFLICT) {
      fprintf(stderr, "create %u: %s\n", i, err.message);
      atomic_fetch_add(&cr->failed, 1);
    }
    json_decref(o);
  }
  return NULL;
}

static int setup_cluster(sq_kube *k, unsigned n) {
  sq_err err;
  const char *crd =
      "{\"apiVersion\":\"apiextensions.k8s.io/v1\",\"kind\":\"CustomResourceDefinition\","
      "\"metadata\":{\"name\":\"sqldatabases.bench.sqltde.io\"},"
      "\"spec\":{\"group\":\"bench.sqltde.io\",\"scope\":\"Namespaced\","
      "\"names\":{\"plural\":\"sqldatabases\",\"singular\":\"sqldatabase\","
      "\"kind\":\"SqlDatabase\",\"listKind\":\"SqlDatabaseList\"},"
      "\"versions\":[{\"name\":\"v1alpha1\",\"served\":true,\"storage\":true,"
      "\"schema\":{\"openAPIV3Schema\":{\"type\":\"object\","
      "\"x-kubernetes-preserve-unknown-fields\":true}}}]}}";
  json_t *o = NULL;
  sq_json_parse(crd, strlen(crd), "crd", &o, NULL);
  sq_code rc = sq_kube_request(k, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                               "application/json", o, NULL, &err);
  json_decref(o);
  if(rc && rc != SQ_ECONFLICT)
    return fprintf(stderr, "CRD: %s\n", err.message), 1;
  o = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "v1", "kind", "Namespace", "metadata", "name",
                NS);
  static const sq_kube_gvr ns_gvr = {"", "v1", "namespaces", "Namespace", 0};
  rc = sq_kube_create(k, &ns_gvr, NULL, o, NULL, &err);
  json_decref(o);
  if(rc && rc != SQ_ECONFLICT)
    return fprintf(stderr, "namespace: %s\n", err.message), 1;
  /* wait until the CRD is served */
  for(int i = 0;; i++) {
    json_t *l = NULL;
    sq_kube_list_opts lo = {.limit = 1};
    if(!sq_kube_list_page(k, &BENCH_GVR, NS, &lo, &l, &err)) {
      json_decref(l);
      break;
    }
    if(i > 300)
      return fprintf(stderr, "CRD not served: %s\n", err.message), 1;
    sq_sleep_ms(100);
  }
  /* create what is missing (a rerun against the same cluster skips this) */
  creator cr = {.k = k, .n = n};
  atomic_init(&cr.next, 0);
  atomic_init(&cr.failed, 0);
  int64_t t0 = sq_mono_ms();
  pthread_t th[4];
  for(int i = 0; i < 4; i++)
    pthread_create(&th[i], NULL, create_worker, &cr);
  for(int i = 0; i < 4; i++)
    pthread_join(th[i], NULL);
  fprintf(stderr, "created/checked %u objects in %lld ms\n", n, (long long)(sq_mono_ms() - t0));
  return atomic_load(&cr.failed) ? 1 : 0;
}

static int bench_apiserver(unsigned n) {
  sq_kube_config cfg;
  sq_kube *k = NULL;
  sq_err err;
  sq_http_global_init();
  memset(&cfg, 0, sizeof cfg);
  if(sq_kube_config_default(NULL, &cfg, &err) || sq_kube_new(&cfg, &k, &err))
    return fprintf(stderr, "kube client: %s\n", err.message), 1;
  sq_kube_config_free(&cfg);
  if(setup_cluster(k, n))
    return 1;
  /* the raw size, as served (with the server's managedFields) */
  json_t *sample = NULL;
  if(sq_kube_get(k, &BENCH_GVR, NS, "tenantdb-00000", &sample, &err))
    return fprintf(stderr, "get: %s\n", err.message), 1;
  size_t raw = dump_len(sample);
  sq_cache_strip(sample);
  size_t stripped = dump_len(sample);
  json_decref(sample);

  malloc_trim(0);
  long rss_before = rss_kib();
  size_t before = heap_used();
  sq_informer_opts o = {.gvr = BENCH_GVR, .namespace = NS};
  sq_informer *inf;
  if(sq_informer_new(k, &o, &inf, &err) || sq_informer_start(inf, &err))
    return fprintf(stderr, "informer: %s\n", err.message), 1;
  int64_t t0 = sq_mono_ms();
  if(sq_informer_wait_for_sync(inf, 600000))
    return fprintf(stderr, "informer did not sync\n"), 1;
  int64_t t_sync = sq_mono_ms() - t0;
  size_t len = sq_cache_len(sq_informer_cache(inf));
  malloc_trim(0);
  size_t cache_bytes = heap_used() - before;
  long rss = rss_kib();

  printf("objects %zu\n", len);
  printf("raw_json_bytes_per_object %zu\n", raw);
  printf("stripped_json_bytes_per_object %zu\n", stripped);
  size_t per = len ? len : 1;
  printf("cache_payload_bytes_per_object %zu\n",
         sq_cache_payload_bytes(sq_informer_cache(inf)) / per);
  printf("cache_bytes_per_object %zu\n", cache_bytes / per);
  printf("sync_ms %lld\n", (long long)t_sync);
  printf("rss_before_informer_kib %ld\n", rss_before);
  printf("rss_kib %ld\n", rss);
  sq_informer_free(inf);
  sq_kube_free(k);
  return len && cache_bytes / len <= 2048 ? 0 : 3;
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "store";
  unsigned n = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 10000;
  if(!n)
    n = 10000;
  sq_log_set_level(SQ_LOG_WARN);
  if(!strcmp(mode, "store"))
    return bench_store(n);
  if(!strcmp(mode, "apiserver"))
    return bench_apiserver(n);
  fprintf(stderr, "usage: %s [store|apiserver] [N]\n", argv[0]);
  return 2;
}
