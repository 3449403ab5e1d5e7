/* Unit tests for the status writer's pure parts: no write when nothing
 * changed, dropped fields sent as null, conditions stamped consistently. */
#include "sqltde/jsonx.h"
#include "sqltde/operator/status.h"
#include "test.h"

static json_t *obj_with_status(const char *status_json) {
  json_t *o = json_pack("{s:{s:s,s:s,s:i}}", "metadata", "name", "db1", "namespace", "ns", "generation", 3);
  if(status_json)
    json_object_set_new(o, "status", json_loads(status_json, 0, NULL));
  return o;
}

TEST(patch_null_when_equal) {
  json_t *a = json_loads("{\"state\":\"Online\",\"observedGeneration\":3}", 0, NULL);
  json_t *b = json_deep_copy(a);
  ASSERT_NULL(sq_status_patch(a, b));
  json_t *empty = json_object();
  ASSERT_NULL(sq_status_patch(NULL, empty));
  json_decref(a);
  json_decref(b);
  json_decref(empty);
}

TEST(patch_nulls_dropped_fields) {
  json_t *a = json_loads("{\"state\":\"Online\",\"plan\":{\"total\":2}}", 0, NULL);
  json_t *b = json_loads("{\"state\":\"Inaccessible\"}", 0, NULL);
  json_t *p = sq_status_patch(a, b);
  ASSERT_NOT_NULL(p);
  ASSERT_STR_EQ(sq_json_str(p, "status.state"), "Inaccessible");
  ASSERT(json_is_null(sq_json_path(p, "status.plan")));
  json_decref(p);
  json_decref(a);
  json_decref(b);
}

TEST(draft_of_converged_object_writes_nothing) {
  /* first pass: a fresh object gets Ready and observedGeneration */
  json_t *o = obj_with_status(NULL);
  sq_status_draft d;
  ASSERT_OK(sq_status_begin(&d, o, 1000));
  ASSERT_OK(sq_status_ready(&d, "Reconciled", "all good"));
  json_object_set_new(d.status, "observedGeneration", json_integer(d.generation));
  json_t *p = sq_status_patch(sq_json_path(o, "status"), d.status);
  ASSERT_NOT_NULL(p);
  /* apply it, as the apiserver would */
  json_object_set(o, "status", sq_json_path(p, "status"));
  json_decref(p);
  sq_status_abandon(&d);
  /* second pass, later: same outcome -> no patch (transition time kept) */
  ASSERT_OK(sq_status_begin(&d, o, 2000));
  ASSERT_OK(sq_status_ready(&d, "Reconciled", "all good"));
  json_object_set_new(d.status, "observedGeneration", json_integer(d.generation));
  ASSERT_NULL(sq_status_patch(sq_json_path(o, "status"), d.status));
  sq_status_abandon(&d);
  /* a changed message is a change */
  ASSERT_OK(sq_status_begin(&d, o, 3000));
  ASSERT_OK(sq_status_ready(&d, "Reconciled", "all good, again"));
  json_object_set_new(d.status, "observedGeneration", json_integer(d.generation));
  p = sq_status_patch(sq_json_path(o, "status"), d.status);
  ASSERT_NOT_NULL(p);
  json_decref(p);
  sq_status_abandon(&d);
  json_decref(o);
}

TEST(bad_reason_is_refused) {
  json_t *o = obj_with_status("{}");
  sq_status_draft d;
  ASSERT_OK(sq_status_begin(&d, o, 1));
  ASSERT_EQ(sq_status_ready(&d, "not a reason!", "x"), SQ_EINVAL);
  sq_status_abandon(&d);
  json_decref(o);
}

TEST_MAIN()
