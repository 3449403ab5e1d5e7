/* test_cache.c — the informer's store: stripping, keys, put/get/delete,
 * snapshots and relist replacement with its change events. No cluster. */
#include <pthread.h>
#include <stdatomic.h>

#include "sqltde/jsonx.h"
#include "sqltde/kube/cache.h"
#include "test.h"

static json_t *parse(const char *s) {
  json_t *v = NULL;
  sq_err err;
  if(sq_json_parse(s, strlen(s), "test", &v, &err))
    TEST_FAIL_("bad test JSON: %s", err.message);
  return v;
}

static json_t *obj(const char *ns, const char *name, const char *rv, const char *payload) {
  json_t *o = json_pack("{s:s, s:{s:s, s:s}, s:{s:s}}", "kind", "Thing", "metadata", "name", name,
                        "resourceVersion", rv, "spec", "payload", payload);
  if(ns)
    json_object_set_new(json_object_get(o, "metadata"), "namespace", json_string(ns));
  return o;
}

/* ---- strip ------------------------------------------------------------------ */

static const struct {
  const char *in, *want;
} strip_cases[] = {
    /* both dropped; the emptied annotations object goes too */
    {"{\"metadata\":{\"name\":\"a\",\"managedFields\":[{\"manager\":\"kubectl\"}],"
     "\"annotations\":{\"kubectl.kubernetes.io/last-applied-configuration\":\"{}\"}},"
     "\"spec\":{\"x\":1}}",
     "{\"metadata\":{\"name\":\"a\"},\"spec\":{\"x\":1}}"},
    /* other annotations survive */
    {"{\"metadata\":{\"name\":\"a\",\"annotations\":{\"keep\":\"me\","
     "\"kubectl.kubernetes.io/last-applied-configuration\":\"{}\"}}}",
     "{\"metadata\":{\"name\":\"a\",\"annotations\":{\"keep\":\"me\"}}}"},
    /* an empty annotations object is dropped too: the cache cannot tell it
     * from one it emptied, and nobody reads an empty map */
    {"{\"metadata\":{\"name\":\"a\",\"annotations\":{}}}", "{\"metadata\":{\"name\":\"a\"}}"},
    /* nothing to strip */
    {"{\"metadata\":{\"name\":\"a\",\"labels\":{\"l\":\"v\"}}}",
     "{\"metadata\":{\"name\":\"a\",\"labels\":{\"l\":\"v\"}}}"},
    /* malformed shapes never crash and are left alone */
    {"{\"metadata\":\"oops\"}", "{\"metadata\":\"oops\"}"},
    {"{\"metadata\":{\"annotations\":[1]}}", "{\"metadata\":{\"annotations\":[1]}}"},
    {"[1,2]", "[1,2]"},
    {"{\"spec\":{\"managedFields\":1}}", "{\"spec\":{\"managedFields\":1}}"},
};

TEST(strip_table) {
  for(size_t i = 0; i < sizeof strip_cases / sizeof strip_cases[0]; i++) {
    json_t *in = parse(strip_cases[i].in), *want = parse(strip_cases[i].want);
    sq_cache_strip(in);
    char *got = sq_json_dump(in);
    if(!json_equal(in, want))
      TEST_FAIL_("case %zu: got %s", i, got);
    free(got);
    json_decref(in);
    json_decref(want);
  }
}

/* ---- keys ------------------------------------------------------------------- */

TEST(key_of_table) {
  char key[SQ_CACHE_KEY_MAX];
  sq_err err;
  static const struct {
    const char *json, *want; /* want NULL = error */
  } cases[] = {
      {"{\"metadata\":{\"name\":\"db1\",\"namespace\":\"ns1\"}}", "ns1/db1"},
      {"{\"metadata\":{\"name\":\"node1\"}}", "node1"},
      {"{\"metadata\":{\"name\":\"n\",\"namespace\":\"\"}}", "n"},
      {"{\"metadata\":{\"namespace\":\"ns1\"}}", NULL},
      {"{\"metadata\":{\"name\":\"\"}}", NULL},
      {"{\"metadata\":{\"name\":7}}", NULL},
      {"{}", NULL},
  };
  for(size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    json_t *o = parse(cases[i].json);
    sq_code rc = sq_cache_key_of(o, key, sizeof key, &err);
    if(cases[i].want) {
      ASSERT_OK(rc);
      ASSERT_STR_EQ(key, cases[i].want);
    } else {
      ASSERT_EQ(rc, SQ_EINVAL);
    }
    json_decref(o);
  }
  /* too long for the buffer */
  json_t *o = obj("namespace-x", "name-y", "1", "");
  ASSERT_EQ(sq_cache_key_of(o, key, 8, &err), SQ_EINVAL);
  ASSERT_STR_CONTAINS(err.message, "longer");
  json_decref(o);
}

/* ---- put / get / delete --------------------------------------------------- */

TEST(put_get_delete) {
  sq_cache *c;
  sq_err err;
  json_t *prev = (json_t *)1;
  ASSERT_OK(sq_cache_new(&c, &err));
  ASSERT_NULL(sq_cache_get(c, "ns/a"));

  json_t *a1 = obj("ns", "a", "10", "first");
  ASSERT_OK(sq_cache_put(c, a1, &prev, &err));
  ASSERT_NULL(prev);
  ASSERT_EQ(sq_cache_len(c), 1);

  json_t *got = sq_cache_get(c, "ns/a");
  ASSERT_NOT_NULL(got);
  ASSERT(json_equal(got, a1));
  ASSERT(got != a1);
  /* the caller's copy is its own: editing it leaves the cache alone */
  json_object_set_new(json_object_get(got, "spec"), "payload", json_string("edited"));
  json_decref(got);
  got = sq_cache_get(c, "ns/a");
  ASSERT_STR_EQ(sq_json_str(got, "spec.payload"), "first");
  json_decref(got);
  /* and so is the object passed in */
  json_object_set_new(json_object_get(a1, "spec"), "payload", json_string("changed-after-put"));
  got = sq_cache_get(c, "ns/a");
  ASSERT_STR_EQ(sq_json_str(got, "spec.payload"), "first");
  json_decref(got);

  char rv[16];
  ASSERT_OK(sq_cache_get_rv(c, "ns/a", rv, sizeof rv));
  ASSERT_STR_EQ(rv, "10");
  ASSERT_EQ(sq_cache_get_rv(c, "ns/a", rv, 2), -1); /* does not fit */
  ASSERT_EQ(sq_cache_get_rv(c, "ns/zz", rv, sizeof rv), -1);

  json_t *a2 = obj("ns", "a", "11", "second");
  ASSERT_OK(sq_cache_put(c, a2, &prev, &err));
  ASSERT_NOT_NULL(prev);
  ASSERT_STR_EQ(sq_json_str(prev, "spec.payload"), "first");
  ASSERT_STR_EQ(sq_json_str(prev, "metadata.resourceVersion"), "10");
  json_decref(prev);
  ASSERT_EQ(sq_cache_len(c), 1);

  /* same name in another namespace is another key */
  json_t *b = obj("other", "a", "12", "b");
  ASSERT_OK(sq_cache_put(c, b, NULL, &err));
  ASSERT_EQ(sq_cache_len(c), 2);

  ASSERT_OK(sq_cache_delete(c, "ns/a", &prev, &err));
  ASSERT_STR_EQ(sq_json_str(prev, "spec.payload"), "second");
  json_decref(prev);
  ASSERT_EQ(sq_cache_delete(c, "ns/a", &prev, &err), SQ_ENOTFOUND);
  ASSERT_NULL(prev);
  ASSERT_NULL(sq_cache_get(c, "ns/a"));
  ASSERT_EQ(sq_cache_len(c), 1);

  /* objects without a name are refused */
  json_t *bad = parse("{\"metadata\":{}}");
  ASSERT_EQ(sq_cache_put(c, bad, NULL, &err), SQ_EINVAL);
  json_decref(bad);

  json_decref(a1);
  json_decref(a2);
  json_decref(b);
  sq_cache_free(c);
}

TEST(many_keys_snapshot_and_payload) {
  sq_cache *c;
  sq_err err;
  char name[32];
  ASSERT_OK(sq_cache_new(&c, &err));
  ASSERT_EQ(sq_cache_payload_bytes(c), 0);
  /* enough to make the table grow several times */
  for(int i = 0; i < 3000; i++) {
    snprintf(name, sizeof name, "o%05d", i);
    json_t *o = obj(i % 2 ? "odd" : "even", name, "1", name);
    ASSERT_OK(sq_cache_put(c, o, NULL, &err));
    json_decref(o);
  }
  ASSERT_EQ(sq_cache_len(c), 3000);
  size_t payload = sq_cache_payload_bytes(c);
  ASSERT_GT(payload, 3000 * 60); /* each holds at least its JSON text */
  ASSERT_LT(payload, 3000 * 200);
  for(int i = 0; i < 3000; i += 7) {
    char key[64];
    snprintf(key, sizeof key, "%s/o%05d", i % 2 ? "odd" : "even", i);
    json_t *g = sq_cache_get(c, key);
    ASSERT_NOT_NULL(g);
    snprintf(name, sizeof name, "o%05d", i);
    ASSERT_STR_EQ(sq_json_str(g, "spec.payload"), name);
    json_decref(g);
  }

  char **keys;
  size_t n;
  ASSERT_OK(sq_cache_keys(c, &keys, &n, &err));
  ASSERT_EQ(n, 3000);
  ASSERT_STR_EQ(keys[0], "even/o00000");
  ASSERT_STR_EQ(keys[1499], "even/o02998");
  ASSERT_STR_EQ(keys[1500], "odd/o00001");
  ASSERT_NULL(keys[3000]);
  for(size_t i = 1; i < n; i++)
    ASSERT(strcmp(keys[i - 1], keys[i]) < 0);
  sq_cache_keys_free(keys);

  json_t *snap;
  ASSERT_OK(sq_cache_snapshot(c, "odd", &snap, &err));
  ASSERT_EQ(json_array_size(snap), 1500);
  ASSERT_STR_EQ(sq_json_str(json_array_get(snap, 0), "metadata.name"), "o00001");
  json_decref(snap);
  /* a namespace that is a prefix of another must not match it */
  ASSERT_OK(sq_cache_snapshot(c, "od", &snap, &err));
  ASSERT_EQ(json_array_size(snap), 0);
  json_decref(snap);
  ASSERT_OK(sq_cache_snapshot(c, NULL, &snap, &err));
  ASSERT_EQ(json_array_size(snap), 3000);
  json_decref(snap);

  for(int i = 0; i < 3000; i++) {
    char key[64];
    snprintf(key, sizeof key, "%s/o%05d", i % 2 ? "odd" : "even", i);
    ASSERT_OK(sq_cache_delete(c, key, NULL, &err));
  }
  ASSERT_EQ(sq_cache_len(c), 0);
  ASSERT_EQ(sq_cache_payload_bytes(c), 0);
  sq_cache_free(c);
}

/* ---- replace (relist) --------------------------------------------------------- */

typedef struct seen {
  char log[2048];
} seen;

static void record(void *ud, sq_cache_change ch, const json_t *o, const json_t *n) {
  seen *s = ud;
  char line[128];
  const char *kind = ch == SQ_CACHE_ADDED ? "add" : ch == SQ_CACHE_UPDATED ? "upd" : "del";
  snprintf(line, sizeof line, "%s %s %s->%s;", kind,
           sq_json_str(n ? n : o, "metadata.name"),
           o ? sq_json_str(o, "metadata.resourceVersion") : "-",
           n ? sq_json_str(n, "metadata.resourceVersion") : "-");
  strncat(s->log, line, sizeof s->log - strlen(s->log) - 1);
}

TEST(replace_reports_differences) {
  sq_cache *c;
  sq_cache_stage *st;
  sq_err err;
  ASSERT_OK(sq_cache_new(&c, &err));
  const char *before[][2] = {{"keep", "1"}, {"change", "2"}, {"vanish", "3"}, {"also-gone", "4"}};
  for(size_t i = 0; i < 4; i++) {
    json_t *o = obj("ns", before[i][0], before[i][1], "x");
    ASSERT_OK(sq_cache_put(c, o, NULL, &err));
    json_decref(o);
  }
  ASSERT_OK(sq_cache_stage_new(&st, &err));
  const char *after[][2] = {{"new-b", "9"}, {"keep", "1"}, {"change", "7"}, {"new-a", "8"}};
  for(size_t i = 0; i < 4; i++) {
    json_t *o = obj("ns", after[i][0], after[i][1], "y");
    ASSERT_OK(sq_cache_stage_put(st, o, &err));
    json_decref(o);
  }
  ASSERT_EQ(sq_cache_stage_len(st), 4);
  seen s = {{0}};
  ASSERT_OK(sq_cache_replace(c, st, record, &s, &err));
  /* additions/updates by key, then deletions by key */
  ASSERT_STR_EQ(s.log, "upd change 2->7;add new-a -->8;add new-b -->9;"
                       "del also-gone 4->-;del vanish 3->-;");
  ASSERT_EQ(sq_cache_len(c), 4);
  ASSERT_NULL(sq_cache_get(c, "ns/vanish"));
  json_t *k = sq_cache_get(c, "ns/keep");
  /* unchanged objects take the listed content (it is the same version) */
  ASSERT_STR_EQ(sq_json_str(k, "spec.payload"), "y");
  json_decref(k);

  /* replacing with nothing deletes everything; without a callback too */
  ASSERT_OK(sq_cache_stage_new(&st, &err));
  memset(&s, 0, sizeof s);
  ASSERT_OK(sq_cache_replace(c, st, record, &s, &err));
  ASSERT_STR_EQ(s.log, "del change 7->-;del keep 1->-;del new-a 8->-;del new-b 9->-;");
  ASSERT_EQ(sq_cache_len(c), 0);
  ASSERT_OK(sq_cache_stage_new(&st, &err));
  json_t *o = obj("ns", "z", "1", "");
  ASSERT_OK(sq_cache_stage_put(st, o, &err));
  ASSERT_OK(sq_cache_stage_put(st, o, &err)); /* duplicate key: last wins */
  ASSERT_EQ(sq_cache_stage_len(st), 1);
  ASSERT_OK(sq_cache_replace(c, st, NULL, NULL, &err));
  ASSERT_EQ(sq_cache_len(c), 1);
  json_decref(o);
  sq_cache_stage_free(NULL);
  sq_cache_free(c);
}

/* Handlers may read the cache while replace calls them: no lock is held. */
typedef struct reentry {
  sq_cache *c;
  int found;
} reentry;

static void read_back(void *ud, sq_cache_change ch, const json_t *o, const json_t *n) {
  reentry *r = ud;
  (void)o;
  char key[SQ_CACHE_KEY_MAX];
  if(ch == SQ_CACHE_DELETED || sq_cache_key_of(n, key, sizeof key, NULL))
    return;
  json_t *g = sq_cache_get(r->c, key);
  r->found += g != NULL;
  json_decref(g);
}

TEST(replace_callback_can_read_cache) {
  reentry r = {0};
  sq_cache_stage *st;
  sq_err err;
  ASSERT_OK(sq_cache_new(&r.c, &err));
  ASSERT_OK(sq_cache_stage_new(&st, &err));
  for(int i = 0; i < 5; i++) {
    char name[8];
    snprintf(name, sizeof name, "n%d", i);
    json_t *o = obj("ns", name, "1", "");
    ASSERT_OK(sq_cache_stage_put(st, o, &err));
    json_decref(o);
  }
  ASSERT_OK(sq_cache_replace(r.c, st, read_back, &r, &err));
  ASSERT_EQ(r.found, 5);
  sq_cache_free(r.c);
}

/* ---- concurrency smoke test (meaningful under ASan/TSan) --------------------- */

typedef struct race {
  sq_cache *c;
  atomic_int stop;
  atomic_long reads;
  atomic_long bad;
} race;

static void *reader(void *arg) {
  race *r = arg;
  while(!atomic_load(&r->stop)) {
    json_t *g = sq_cache_get(r->c, "ns/hot");
    if(g) {
      /* every version written has payload == its resourceVersion */
      const char *rv = sq_json_str(g, "metadata.resourceVersion");
      const char *p = sq_json_str(g, "spec.payload");
      if(!rv || !p || strcmp(rv, p))
        r->bad++;
      r->reads++;
      json_decref(g);
    }
    json_t *snap = NULL;
    if(!sq_cache_snapshot(r->c, "ns", &snap, NULL))
      json_decref(snap);
  }
  return NULL;
}

TEST(concurrent_readers_and_writer) {
  race r = {0};
  sq_err err;
  pthread_t th[2];
  ASSERT_OK(sq_cache_new(&r.c, &err));
  atomic_init(&r.stop, 0);
  for(int i = 0; i < 2; i++)
    ASSERT_OK(pthread_create(&th[i], NULL, reader, &r));
  for(int i = 0; i < 4000; i++) {
    char rv[16];
    snprintf(rv, sizeof rv, "%d", i);
    json_t *o = obj("ns", "hot", rv, rv);
    ASSERT_OK(sq_cache_put(r.c, o, NULL, &err));
    json_decref(o);
    if(i % 100 == 99) {
      ASSERT_OK(sq_cache_delete(r.c, "ns/hot", NULL, &err));
      sq_cache_stage *st;
      ASSERT_OK(sq_cache_stage_new(&st, &err));
      o = obj("ns", "hot", rv, rv);
      ASSERT_OK(sq_cache_stage_put(st, o, &err));
      json_decref(o);
      ASSERT_OK(sq_cache_replace(r.c, st, NULL, NULL, &err));
    }
  }
  atomic_store(&r.stop, 1);
  for(int i = 0; i < 2; i++)
    pthread_join(th[i], NULL);
  ASSERT_EQ(r.bad, 0);
  sq_cache_free(r.c);
}

TEST_MAIN()
