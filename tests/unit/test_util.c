/* Unit tests for the shared utilities: errors, bounded buffers, JSON, time. */
#include "sqltde/buf.h"
#include "sqltde/clock.h"
#include "sqltde/err.h"
#include "sqltde/http.h"
#include "sqltde/jsonx.h"
#include "sqltde/log.h"
#include "test.h"

TEST(buf_respects_max) {
  sq_buf b;
  sq_buf_init(&b, 8);
  ASSERT_OK(sq_buf_adds(&b, "12345"));
  ASSERT_EQ(sq_buf_adds(&b, "6789"), SQ_ETOOBIG);
  ASSERT_STR_EQ(b.ptr, "12345"); /* unchanged after a refused add */
  ASSERT_OK(sq_buf_adds(&b, "678"));
  ASSERT_EQ(b.len, 8);
  ASSERT_EQ(sq_buf_addf(&b, "%d", 1), SQ_ETOOBIG);
  sq_buf_free_wipe(&b);
  ASSERT_NULL(b.ptr);
}

TEST(buf_grows_and_detaches) {
  sq_buf b;
  sq_buf_init(&b, 1 << 20);
  for(int i = 0; i < 10000; i++)
    ASSERT_OK(sq_buf_addf(&b, "%04d", i % 10000));
  ASSERT_EQ(b.len, 40000);
  char *s = sq_buf_detach(&b);
  ASSERT_EQ(strncmp(s, "000000010002", 12), 0);
  free(s);
  ASSERT_EQ(b.len, 0);
}

TEST(err_helpers) {
  sq_err e;
  sq_err_clear(&e);
  ASSERT_EQ(sq_err_set(&e, SQ_ENOTFOUND, "thing %s missing", "x"), SQ_ENOTFOUND);
  sq_err_prefix(&e, "get %s", "y");
  ASSERT_STR_EQ(e.message, "get y: thing x missing");
  ASSERT_EQ(sq_code_from_http(404), SQ_ENOTFOUND);
  ASSERT_EQ(sq_code_from_http(201), SQ_OK);
  ASSERT_EQ(sq_code_from_http(503), SQ_ESERVER);
  ASSERT_EQ(sq_code_from_http(429), SQ_ETHROTTLED);
  ASSERT(sq_code_retryable(SQ_ETHROTTLED));
  ASSERT(!sq_code_retryable(SQ_EFORBIDDEN));
  ASSERT_STR_EQ(sq_code_name(SQ_EGONE), "gone");
  ASSERT_STR_EQ(sq_code_name((sq_code)999), "unknown");
}

TEST(json_parse_and_paths) {
  json_t *v = NULL;
  sq_err e;
  sq_err_clear(&e);
  const char *doc = "{\"metadata\":{\"name\":\"a\",\"generation\":3},\"ok\":true}";
  ASSERT_OK(sq_json_parse(doc, strlen(doc), "test", &v, &e));
  ASSERT_STR_EQ(sq_json_str(v, "metadata.name"), "a");
  ASSERT_EQ(sq_json_int(v, "metadata.generation", -1), 3);
  ASSERT_EQ(sq_json_int(v, "metadata.name", -1), -1); /* wrong type -> default */
  ASSERT_NULL(sq_json_str(v, "metadata.name.deeper"));
  ASSERT_EQ(sq_json_bool(v, "ok", 0), 1);
  json_decref(v);
  ASSERT_EQ(sq_json_parse("{\"a\":", 5, "peer", &v, &e), SQ_EPARSE);
  ASSERT_STR_CONTAINS(e.message, "peer: malformed JSON");
  ASSERT_EQ(sq_json_parse("{\"a\":1,\"a\":2}", 13, "peer", &v, &e), SQ_EPARSE);
  ASSERT_EQ(sq_json_parse("", 0, "peer", &v, &e), SQ_EPARSE);
}

TEST(rfc3339_round_trip) {
  char s[32];
  sq_rfc3339(1700000000, s, sizeof s);
  ASSERT_STR_EQ(s, "2023-11-14T22:13:20Z");
  ASSERT_EQ(sq_parse_rfc3339(s), 1700000000);
  ASSERT_EQ(sq_parse_rfc3339("2023-11-14T22:13:20.123456Z"), 1700000000);
  ASSERT_EQ(sq_parse_rfc3339("2023-11-14T23:13:20+01:00"), 1700000000);
  ASSERT_EQ(sq_parse_rfc3339("2023-11-14 22:13:20"), -1);
  ASSERT_EQ(sq_parse_rfc3339("garbage"), -1);
}

TEST(json_number_saturates) {
  /* a fuzzer found 1e300 in a key's "exp" reaching a float-to-int cast */
  json_t *v = NULL;
  sq_err e;
  const char *doc = "[1e300,-1e300,12.9,-12.9,7,\"7\",9223372036854775807]";
  ASSERT_OK(sq_json_parse(doc, strlen(doc), "test", &v, &e));
  ASSERT_EQ(sq_json_number_i64(json_array_get(v, 0), -1), INT64_MAX);
  ASSERT_EQ(sq_json_number_i64(json_array_get(v, 1), -1), INT64_MIN);
  ASSERT_EQ(sq_json_number_i64(json_array_get(v, 2), -1), 12);
  ASSERT_EQ(sq_json_number_i64(json_array_get(v, 3), -1), -12);
  ASSERT_EQ(sq_json_number_i64(json_array_get(v, 4), -1), 7);
  ASSERT_EQ(sq_json_number_i64(json_array_get(v, 5), -1), -1);
  ASSERT_EQ(sq_json_number_i64(json_array_get(v, 6), -1), INT64_MAX);
  ASSERT_EQ(sq_json_number_i64(NULL, -3), -3);
  json_decref(v);
}

TEST(json_put_records_what_it_could_not_set) {
  int bad = 0;
  json_t *o = json_object();
  sq_json_put(&bad, o, "a", json_string("x"));
  ASSERT_EQ(bad, 0);
  sq_json_put(&bad, o, "b", json_string("\xff\xfe")); /* not UTF-8: jansson gives NULL */
  ASSERT_EQ(bad, 1);
  bad = 0;
  sq_json_put(&bad, o, "\xff", json_object()); /* a key that is not UTF-8 */
  ASSERT_EQ(bad, 1);
  bad = 0;
  sq_json_put(&bad, NULL, "c", json_integer(1)); /* no object: the value is released, not leaked */
  ASSERT_EQ(bad, 1);
  ASSERT_EQ(json_object_size(o), 1);
  json_decref(o);
}

TEST(log_levels_parse) {
  sq_log_level l;
  ASSERT_OK(sq_log_parse_level("debug", &l));
  ASSERT_EQ(l, SQ_LOG_DEBUG);
  ASSERT_OK(sq_log_parse_level("2", &l));
  ASSERT_EQ(l, SQ_LOG_DEBUG);
  ASSERT_OK(sq_log_parse_level("-2", &l));
  ASSERT_EQ(l, SQ_LOG_ERROR);
  ASSERT_EQ(sq_log_parse_level("loud", &l), -1);
}

TEST(url_escape) {
  sq_buf b;
  sq_buf_init(&b, 256);
  ASSERT_OK(sq_url_escape("keys($filter=pointInTime('current'))", &b));
  ASSERT_STR_EQ(b.ptr, "keys%28%24filter%3DpointInTime%28%27current%27%29%29");
  sq_buf_free(&b);
}

TEST_MAIN()
