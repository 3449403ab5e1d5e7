/* test_finalizer.c — finalizer list edits, the merge patch, the
 * Apply/Cleanup decision and the reconcile helper's branches that need no
 * apiserver (a NULL client proves no request is made). */
#include <string.h>

#include "sqltde/jsonx.h"
#include "sqltde/kube/finalizer.h"
#include "test.h"

#define FIN "sqltde.io/finalizer"

static json_t *obj(const char *finalizers_json, const char *deletion, const char *rv) {
  char buf[1024];
  snprintf(buf, sizeof buf,
           "{\"apiVersion\":\"sqltde.io/v1alpha1\",\"kind\":\"SqlDatabase\",\"metadata\":{"
           "\"name\":\"db1\",\"namespace\":\"ns1\"%s%s%s%s%s%s%s}}",
           finalizers_json ? ",\"finalizers\":" : "", finalizers_json ? finalizers_json : "",
           deletion ? ",\"deletionTimestamp\":" : "", deletion ? deletion : "",
           rv ? ",\"resourceVersion\":\"" : "", rv ? rv : "", rv ? "\"" : "");
  json_error_t je;
  json_t *o = json_loads(buf, 0, &je);
  if(!o)
    fprintf(stderr, "bad fixture %s: %s\n", buf, je.text);
  return o;
}

TEST(has) {
  struct {
    const char *list;
    int want;
  } cases[] = {
      {NULL, 0},
      {"[]", 0},
      {"[\"" FIN "\"]", 1},
      {"[\"other\",\"" FIN "\"]", 1},
      {"[\"other\"]", 0},
      {"[\"sqltde.io/finalizer-x\"]", 0}, /* exact match only */
      {"\"" FIN "\"", 0},                 /* not an array */
      {"[1,null,{}]", 0},                 /* junk entries */
      {"[1,\"" FIN "\"]", 1},
  };
  for(size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    json_t *o = obj(cases[i].list, NULL, "1");
    ASSERT_NOT_NULL(o);
    ASSERT_EQ(sq_finalizer_has(o, FIN), cases[i].want);
    json_decref(o);
  }
  ASSERT_EQ(sq_finalizer_has(NULL, FIN), 0);
  json_t *empty = json_object();
  ASSERT_EQ(sq_finalizer_has(empty, FIN), 0);
  json_decref(empty);
}

TEST(decide_table) {
  struct {
    const char *list, *deletion;
    sq_finalizer_action want;
  } cases[] = {
      {NULL, NULL, SQ_FIN_ADD},
      {"[\"other\"]", NULL, SQ_FIN_ADD},
      {"[\"" FIN "\"]", NULL, SQ_FIN_APPLY},
      {"[\"" FIN "\"]", "\"2026-01-01T00:00:00Z\"", SQ_FIN_CLEANUP},
      {"[\"other\",\"" FIN "\"]", "\"2026-01-01T00:00:00Z\"", SQ_FIN_CLEANUP},
      {"[\"other\"]", "\"2026-01-01T00:00:00Z\"", SQ_FIN_NONE},
      {NULL, "\"2026-01-01T00:00:00Z\"", SQ_FIN_NONE},
      {"[\"" FIN "\"]", "null", SQ_FIN_APPLY}, /* null is "not set" */
      {NULL, "\"\"", SQ_FIN_ADD},
  };
  for(size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    json_t *o = obj(cases[i].list, cases[i].deletion, "1");
    ASSERT_NOT_NULL(o);
    sq_finalizer_action got = sq_finalizer_decide(o, FIN);
    if(got != cases[i].want)
      fprintf(stderr, "  case %zu: got %s want %s\n", i, sq_finalizer_action_name(got),
              sq_finalizer_action_name(cases[i].want));
    ASSERT_EQ(got, cases[i].want);
    json_decref(o);
  }
}

static char *dump(const json_t *v) { return sq_json_dump(v); }

TEST(patch_add_and_remove) {
  int nomem = 1;
  json_t *o = obj("[\"a\",\"b\"]", NULL, "42");
  json_t *p = sq_finalizer_patch(o, FIN, 1, &nomem);
  ASSERT_NOT_NULL(p);
  ASSERT_EQ(nomem, 0);
  char *s = dump(p);
  ASSERT_STR_EQ(s, "{\"metadata\":{\"finalizers\":[\"a\",\"b\",\"" FIN
                   "\"],\"resourceVersion\":\"42\"}}");
  free(s);
  json_decref(p);
  /* Already there: nothing to write. */
  ASSERT_NULL(sq_finalizer_patch(o, "a", 1, &nomem));
  ASSERT_EQ(nomem, 0);
  /* Removing keeps the order of the others. */
  p = sq_finalizer_patch(o, "a", 0, &nomem);
  s = dump(p);
  ASSERT_STR_EQ(s, "{\"metadata\":{\"finalizers\":[\"b\"],\"resourceVersion\":\"42\"}}");
  free(s);
  json_decref(p);
  ASSERT_NULL(sq_finalizer_patch(o, FIN, 0, &nomem));
  json_decref(o);

  /* Duplicates of ours all go; the last one leaves an empty list (not an
   * absent key: the merge patch must state the full list). */
  o = obj("[\"" FIN "\",\"" FIN "\"]", NULL, "7");
  p = sq_finalizer_patch(o, FIN, 0, &nomem);
  s = dump(p);
  ASSERT_STR_EQ(s, "{\"metadata\":{\"finalizers\":[],\"resourceVersion\":\"7\"}}");
  free(s);
  json_decref(p);
  json_decref(o);

  /* No list yet. */
  o = obj(NULL, NULL, "9");
  p = sq_finalizer_patch(o, FIN, 1, NULL);
  s = dump(p);
  ASSERT_STR_EQ(s, "{\"metadata\":{\"finalizers\":[\"" FIN "\"],\"resourceVersion\":\"9\"}}");
  free(s);
  json_decref(p);
  json_decref(o);
}

TEST(add_remove_refuse_without_request) {
  sq_err e;
  json_t *out = (json_t *)1;
  /* Being deleted: adding is refused locally (NULL client: no request). */
  json_t *o = obj(NULL, "\"2026-01-01T00:00:00Z\"", "5");
  ASSERT_EQ(sq_finalizer_add(NULL, NULL, o, FIN, &out, &e), SQ_ESTATE);
  ASSERT_STR_CONTAINS(e.message, "being deleted");
  ASSERT_NULL(out);
  json_decref(o);
  /* No resourceVersion: no unguarded write. */
  o = obj(NULL, NULL, NULL);
  ASSERT_EQ(sq_finalizer_add(NULL, NULL, o, FIN, &out, &e), SQ_EINVAL);
  ASSERT_STR_CONTAINS(e.message, "resourceVersion");
  json_decref(o);
  /* Nothing to change: SQ_OK, a copy, no request. */
  o = obj("[\"" FIN "\"]", NULL, "5");
  ASSERT_OK(sq_finalizer_add(NULL, NULL, o, FIN, &out, &e));
  ASSERT_NOT_NULL(out);
  ASSERT(out != o);
  ASSERT(json_equal(out, o));
  json_decref(out);
  json_decref(o);
  o = obj("[\"other\"]", NULL, "5");
  ASSERT_OK(sq_finalizer_remove(NULL, NULL, o, FIN, NULL, &e));
  json_decref(o);
}

typedef struct calls {
  int apply, cleanup;
  int cleanup_done;
  sq_code cleanup_rc;
  const json_t *seen;
} calls;

static sq_code apply_cb(void *ud, const json_t *o, sq_err *err) {
  (void)err;
  calls *c = ud;
  c->apply++;
  c->seen = o;
  return SQ_OK;
}

static sq_code cleanup_cb(void *ud, const json_t *o, int *done, sq_err *err) {
  calls *c = ud;
  c->cleanup++;
  c->seen = o;
  *done = c->cleanup_done;
  if(c->cleanup_rc)
    return sq_err_set(err, c->cleanup_rc, "cleanup failed");
  return SQ_OK;
}

TEST(reconcile_branches_without_writes) {
  sq_err e;
  sq_finalizer_action taken;
  calls c;

  /* APPLY: apply runs on the object as given. */
  memset(&c, 0, sizeof c);
  json_t *o = obj("[\"" FIN "\"]", NULL, "1");
  ASSERT_OK(sq_finalizer_reconcile(NULL, NULL, o, FIN, apply_cb, cleanup_cb, &c, &taken, &e));
  ASSERT_EQ(taken, SQ_FIN_APPLY);
  ASSERT_EQ(c.apply, 1);
  ASSERT_EQ(c.cleanup, 0);
  ASSERT(c.seen == o);
  json_decref(o);

  /* CLEANUP not done yet: the finalizer stays (no request). */
  memset(&c, 0, sizeof c);
  o = obj("[\"" FIN "\"]", "\"2026-01-01T00:00:00Z\"", "1");
  ASSERT_OK(sq_finalizer_reconcile(NULL, NULL, o, FIN, apply_cb, cleanup_cb, &c, &taken, &e));
  ASSERT_EQ(taken, SQ_FIN_CLEANUP);
  ASSERT_EQ(c.cleanup, 1);
  ASSERT_EQ(c.apply, 0);

  /* CLEANUP failing: its error comes back, the finalizer stays. */
  memset(&c, 0, sizeof c);
  c.cleanup_done = 1;
  c.cleanup_rc = SQ_ETHROTTLED;
  ASSERT_EQ(sq_finalizer_reconcile(NULL, NULL, o, FIN, apply_cb, cleanup_cb, &c, &taken, &e),
            SQ_ETHROTTLED);
  ASSERT_STR_CONTAINS(e.message, "cleanup failed");
  json_decref(o);

  /* NONE: nothing runs. */
  memset(&c, 0, sizeof c);
  o = obj("[\"other\"]", "\"2026-01-01T00:00:00Z\"", "1");
  ASSERT_OK(sq_finalizer_reconcile(NULL, NULL, o, FIN, apply_cb, cleanup_cb, &c, &taken, &e));
  ASSERT_EQ(taken, SQ_FIN_NONE);
  ASSERT_EQ(c.apply + c.cleanup, 0);
  json_decref(o);

  /* ADD on an object without resourceVersion: refused before apply runs. */
  memset(&c, 0, sizeof c);
  o = obj(NULL, NULL, NULL);
  ASSERT_EQ(sq_finalizer_reconcile(NULL, NULL, o, FIN, apply_cb, cleanup_cb, &c, &taken, &e),
            SQ_EINVAL);
  ASSERT_EQ(taken, SQ_FIN_ADD);
  ASSERT_EQ(c.apply, 0);
  json_decref(o);
}

TEST_MAIN()
