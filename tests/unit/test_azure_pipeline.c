/* Unit tests for azure/pipeline.h: Retry-After parsing, backoff arithmetic,
 * error-body mapping and classification, JSON body checks. */
#include "sqltde/azure/pipeline.h"
#include "sqltde/server/metrics.h"
#include "test.h"

static sq_http_resp make_resp(long status, const char *ctype, const char *body) {
  sq_http_resp r;
  sq_http_resp_init(&r);
  r.status = status;
  if(ctype)
    snprintf(r.content_type, sizeof r.content_type, "%s", ctype);
  if(body)
    sq_buf_adds(&r.body, body);
  return r;
}

TEST(retry_after_seconds_and_dates) {
  /* 1994-11-06T08:49:37Z = 784111777 */
  const int64_t now = 784111777;
  struct {
    const char *v;
    int64_t ms;
  } cases[] = {
      {"0", 0},
      {"7", 7000},
      {" 120 ", 120000},
      {"Sun, 06 Nov 1994 08:49:37 GMT", 0},
      {"Sun, 06 Nov 1994 08:50:07 GMT", 30000},
      {"Sunday, 06-Nov-94 08:49:47 GMT", 10000},
      {"Sun Nov  6 08:49:40 1994", 3000},
      {"Sat, 05 Nov 1994 08:49:37 GMT", 0}, /* in the past: no wait */
      {"", -1},
      {"-5", -1},
      {"1.5", -1},
      {"soon", -1},
      {"Sun, 06 Nov 1994 08:49:37 GMT junk", -1},
  };
  for(size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    int64_t got = sq_azure_parse_retry_after(cases[i].v, now);
    if(got != cases[i].ms)
      fprintf(stderr, "case \"%s\": %lld\n", cases[i].v, (long long)got);
    ASSERT_EQ(got, cases[i].ms);
  }
  ASSERT_EQ(sq_azure_parse_retry_after(NULL, now), -1);
  /* absurd values saturate instead of overflowing */
  ASSERT_GT(sq_azure_parse_retry_after("99999999999999999999", now), 1000000);
}

TEST(backoff_bounds) {
  /* equal jitter: within [d/2, d] where d = min(cap, base*2^n) */
  for(int attempt = 0; attempt < 12; attempt++) {
    int64_t d = 1000;
    for(int i = 0; i < attempt && d < 30000; i++)
      d *= 2;
    if(d > 30000)
      d = 30000;
    uint32_t rnds[] = {0, 1, 12345, 0xffffffffu, 7777777};
    for(size_t r = 0; r < 5; r++) {
      int64_t w = sq_azure_backoff_ms(attempt, 1000, 30000, rnds[r]);
      ASSERT_GE(w, d / 2);
      ASSERT_LE(w, d);
    }
  }
  ASSERT_EQ(sq_azure_backoff_ms(0, 1000, 30000, 0), 500);
  ASSERT_EQ(sq_azure_backoff_ms(3, 1000, 30000, 0), 4000);
  ASSERT_EQ(sq_azure_backoff_ms(30, 1000, 30000, 0), 15000);
  /* a large attempt count never overflows */
  ASSERT_LE(sq_azure_backoff_ms(1000, 1000, 30000, 99), 30000);
}

TEST(classify) {
  ASSERT_EQ(sq_azure_classify(429, NULL), SQ_ETHROTTLED);
  ASSERT_EQ(sq_azure_classify(503, "TooManyRequests"), SQ_ETHROTTLED);
  ASSERT_EQ(sq_azure_classify(503, "ServiceUnavailable"), SQ_ESERVER);
  ASSERT_EQ(sq_azure_classify(500, NULL), SQ_ESERVER);
  ASSERT_EQ(sq_azure_classify(400, "PerDatabaseCMKKeyRotationAttemptedWhileOldThumbprintInUse"), SQ_EBADREQ);
  ASSERT_EQ(sq_azure_classify(404, "KeyNotFound"), SQ_ENOTFOUND);
  ASSERT_EQ(sq_azure_classify(409, "AzureKeyVaultKeyInUse"), SQ_ECONFLICT);
  ASSERT_EQ(sq_azure_classify(403, "Forbidden"), SQ_EFORBIDDEN);
  ASSERT_EQ(sq_azure_classify(401, NULL), SQ_EUNAUTH);
  ASSERT_EQ(sq_azure_classify(0, NULL), SQ_ETRANSPORT);
  ASSERT(sq_code_retryable(sq_azure_classify(429, NULL)));
  ASSERT(sq_code_retryable(sq_azure_classify(502, NULL)));
  ASSERT(!sq_code_retryable(sq_azure_classify(400, "InvalidKeyName")));
  ASSERT(!sq_code_retryable(sq_azure_classify(403, NULL)));
}

TEST(error_bodies) {
  struct {
    const char *body;
    int found;
    const char *code;
    const char *msg;
  } cases[] = {
      /* ARM (common-types ErrorResponse) */
      {"{\"error\":{\"code\":\"AzureKeyVaultMissingPermissions\",\"message\":\"Server lacks get.\","
       "\"details\":[{\"code\":\"x\"}]}}",
       1, "AzureKeyVaultMissingPermissions", "Server lacks get."},
      /* Key Vault: the innermost code wins; CRLF in messages becomes spaces */
      {"{\"error\":{\"code\":\"Forbidden\",\"message\":\"Operation is not allowed.\\r\\nCaller: "
       "appid=1\",\"innererror\":{\"code\":\"ForbiddenByPolicy\"}}}",
       1, "ForbiddenByPolicy", "Operation is not allowed. Caller: appid=1"},
      {"{\"error\":{\"code\":\"A\",\"innererror\":{\"code\":\"B\",\"innererror\":{\"code\":\"C\"}}}}",
       1, "C", ""},
      /* Entra ID */
      {"{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: Invalid client "
       "secret.\",\"error_codes\":[7000215]}",
       1, "invalid_client", "AADSTS7000215: Invalid client secret."},
      /* bare code/message */
      {"{\"code\":\"ResourceNotFound\",\"message\":\"gone\"}", 1, "ResourceNotFound", "gone"},
      {"<html>Bad Gateway</html>", 0, "", ""},
      {"{\"error\":{\"message\":\"no code\"}}", 0, "", "no code"},
      {"[1,2]", 0, "", ""},
      {"", 0, "", ""},
  };
  for(size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char code[64], msg[128];
    int f = sq_azure_error_fields(cases[i].body, strlen(cases[i].body), code, sizeof code, msg, sizeof msg);
    ASSERT_EQ(f, cases[i].found);
    ASSERT_STR_EQ(code, cases[i].code);
    ASSERT_STR_EQ(msg, cases[i].msg);
  }
}

TEST(error_from_resp) {
  sq_err e;
  sq_http_resp r = make_resp(400, "application/json; charset=utf-8",
                             "{\"error\":{\"code\":\"PerDatabaseCMKKeyRotationAttemptedWhileOldThumbprintInUse\","
                             "\"message\":\"see aka.ms/azuresqldbkeyrotation\"}}");
  ASSERT_EQ(sq_azure_error_from_resp(&r, "PATCH db1", &e), SQ_EBADREQ);
  ASSERT_EQ(e.code, SQ_EBADREQ);
  ASSERT_EQ(e.http_status, 400);
  /* reason holds at most 63 characters of the ARM code */
  ASSERT(strncmp(e.reason, "PerDatabaseCMKKeyRotationAttemptedWhileOldThumbprintInUse", 63) == 0);
  ASSERT_STR_CONTAINS(e.message, "PATCH db1: HTTP 400");
  ASSERT_STR_CONTAINS(e.message, "aka.ms/azuresqldbkeyrotation");
  sq_http_resp_free(&r);

  r = make_resp(502, "text/html", "<html>proxy</html>");
  ASSERT_EQ(sq_azure_error_from_resp(&r, "GET x", &e), SQ_ESERVER);
  ASSERT_STR_EQ(e.reason, "");
  ASSERT_STR_CONTAINS(e.message, "not an Azure error object");
  sq_http_resp_free(&r);

  r = make_resp(429, NULL, "");
  ASSERT_EQ(sq_azure_error_from_resp(&r, "GET y", &e), SQ_ETHROTTLED);
  ASSERT_STR_CONTAINS(e.message, "empty body");
  sq_http_resp_free(&r);
}

TEST(json_body_checks) {
  sq_err e;
  json_t *j = NULL;
  sq_http_resp r = make_resp(200, "application/json", "{\"a\":1}");
  ASSERT_OK(sq_azure_json_body(&r, "x", &j, &e));
  ASSERT_EQ(json_integer_value(json_object_get(j, "a")), 1);
  json_decref(j);
  sq_http_resp_free(&r);

  struct {
    const char *ctype;
    const char *body;
    const char *msg;
  } bad[] = {
      {"text/html", "<html/>", "content type"},
      {"application/json", "", "empty body"},
      {"application/json", "{\"a\":", "malformed JSON"},
      {"application/json", "{\"a\":1}{", "malformed JSON"},
      {"application/json", "[1]", "JSON object"},
      {NULL, "{\"a\":1,\"a\":2}", "malformed JSON"}, /* duplicate keys */
  };
  for(size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    r = make_resp(200, bad[i].ctype, bad[i].body);
    ASSERT_EQ(sq_azure_json_body(&r, "x", &j, &e), SQ_EPARSE);
    ASSERT_NULL(j);
    ASSERT_STR_CONTAINS(e.message, bad[i].msg);
    sq_http_resp_free(&r);
  }
}

TEST(json_strcpy_bounds) {
  json_t *o = json_pack("{s:s,s:i,s:{s:s},s:n}", "short", "abc", "num", 5, "nested", "x", "deep",
                        "nul");
  char buf[8];
  sq_err e;
  ASSERT_OK(sq_azure_json_strcpy(o, "short", buf, sizeof buf, "t", &e));
  ASSERT_STR_EQ(buf, "abc");
  ASSERT_OK(sq_azure_json_strcpy(o, "nested.x", buf, sizeof buf, "t", &e));
  ASSERT_STR_EQ(buf, "deep");
  ASSERT_OK(sq_azure_json_strcpy(o, "missing", buf, sizeof buf, "t", &e));
  ASSERT_STR_EQ(buf, "");
  ASSERT_OK(sq_azure_json_strcpy(o, "nul", buf, sizeof buf, "t", &e));
  ASSERT_STR_EQ(buf, "");
  ASSERT_EQ(sq_azure_json_strcpy(o, "num", buf, sizeof buf, "t", &e), SQ_EPARSE);
  char tiny[3];
  ASSERT_EQ(sq_azure_json_strcpy(o, "short", tiny, sizeof tiny, "t", &e), SQ_ETOOBIG);
  json_decref(o);
}

TEST(prometheus_hook) {
  sq_azure_pipeline p;
  sq_azure_pipeline_defaults(&p);
  ASSERT(p.metrics == sq_azure_metrics_prometheus);
  sq_azure_metric m = {"arm", "databases.get", "Microsoft.Sql/servers/databases", "GET", 200, "success", 250};
  p.metrics(NULL, &m);
  p.metrics(NULL, &m);
  sq_azure_metric t = {"arm", "databases.get", "Microsoft.Sql/servers/databases", "GET", 0, "transport_error", 5};
  p.metrics(NULL, &t);
  sq_azure_metric c = {"arm", "databases.get", "Microsoft.Sql/servers/databases", "GET", 0, "client_throttled", 0};
  p.metrics(NULL, &c); /* not a request: not counted */
  sq_metric *total = sq_metrics_find(sq_metrics_global(), "sqltde_azure_requests_total");
  ASSERT_NOT_NULL(total);
  const char *ok[] = {"arm", "databases.get", "Microsoft.Sql/servers/databases", "200"};
  const char *er[] = {"arm", "databases.get", "Microsoft.Sql/servers/databases", "<error>"};
  double v = 0;
  ASSERT_OK(sq_metric_get(total, ok, &v, NULL));
  ASSERT_EQ((int)v, 2);
  ASSERT_OK(sq_metric_get(total, er, &v, NULL));
  ASSERT_EQ((int)v, 1);
  sq_metric *dur = sq_metrics_find(sq_metrics_global(), "sqltde_azure_request_duration_seconds");
  const char *dl[] = {"arm", "databases.get"};
  uint64_t n = 0;
  ASSERT_OK(sq_metric_get(dur, dl, &v, &n));
  ASSERT_EQ(n, 3);
  ASSERT(v > 0.49 && v < 0.51);
}

TEST_MAIN()
