/* Unit tests for azure/arm.h pure parts: the client-side token bucket driven
 * by a fake clock, operation classes, ids, LRO header decisions, the
 * mapping of terminal operation errors, and the list pager ARM and Key Vault
 * share (against a fake service). */
#include "sqltde/azure/arm.h"
#include "sqltde/azure/pager.h"
#include "sqltde/jsonx.h"
#include "sqltde/http.h"
#include "test.h"

TEST(bucket_burst_then_refill_rate) {
  sq_arm_bucket b;
  int64_t now = 1000000;
  sq_arm_bucket_init(&b, 200, 10, now); /* ARM writes: 200 burst, 10/s */
  for(int i = 0; i < 200; i++)
    ASSERT_EQ(sq_arm_bucket_reserve(&b, now, 60000), 0);
  /* the burst is spent: each further reservation queues 100 ms behind the last */
  ASSERT_EQ(sq_arm_bucket_reserve(&b, now, 60000), 100);
  ASSERT_EQ(sq_arm_bucket_reserve(&b, now, 60000), 200);
  ASSERT_EQ(sq_arm_bucket_reserve(&b, now, 60000), 300);
  /* 300 ms later the queue has drained exactly: the next one waits 100 ms */
  now += 300;
  ASSERT_EQ(sq_arm_bucket_reserve(&b, now, 60000), 100);
  /* over the wait budget: refused, nothing reserved (the same request asks
   * again and gets the same answer) */
  ASSERT_EQ(sq_arm_bucket_reserve(&b, now, 150), -200);
  ASSERT_EQ(sq_arm_bucket_reserve(&b, now, 150), -200);
  ASSERT_EQ(sq_arm_bucket_reserve(&b, now, 60000), 200);
  /* a long idle period refills to the burst, never beyond */
  now += 3600 * 1000;
  for(int i = 0; i < 200; i++)
    ASSERT_EQ(sq_arm_bucket_reserve(&b, now, 0), 0);
  ASSERT_EQ(sq_arm_bucket_reserve(&b, now, 0), -100);
}

TEST(bucket_reads_and_fractional_refill) {
  sq_arm_bucket b;
  int64_t now = 0;
  sq_arm_bucket_init(&b, 250, 25, now); /* ARM reads: 250 burst, 25/s */
  for(int i = 0; i < 250; i++)
    ASSERT_EQ(sq_arm_bucket_reserve(&b, now, 1000), 0);
  ASSERT_EQ(sq_arm_bucket_reserve(&b, now, 1000), 40); /* 1/25 s */
  /* 20 ms later half a token has come back: the next waits 40 + 20 ms */
  now += 20;
  ASSERT_EQ(sq_arm_bucket_reserve(&b, now, 1000), 60);
  /* over one second of sustained demand the bucket hands out exactly 25 */
  now += 10000; /* refill fully */
  for(int i = 0; i < 250; i++)
    sq_arm_bucket_reserve(&b, now, 0);
  int granted = 0;
  for(int t = 1; t <= 1000; t++) {
    if(sq_arm_bucket_reserve(&b, now + t, 0) == 0)
      granted++;
  }
  ASSERT_EQ(granted, 25);
}

TEST(bucket_clock_going_backwards_is_harmless) {
  sq_arm_bucket b;
  sq_arm_bucket_init(&b, 2, 1, 5000);
  ASSERT_EQ(sq_arm_bucket_reserve(&b, 5000, 0), 0);
  ASSERT_EQ(sq_arm_bucket_reserve(&b, 4000, 0), 0); /* no refill from negative time */
  ASSERT_EQ(sq_arm_bucket_reserve(&b, 4000, 0), -1000);
}

TEST(classes_and_ids) {
  ASSERT_EQ(sq_arm_class_of("GET"), SQ_ARM_READ);
  ASSERT_EQ(sq_arm_class_of("HEAD"), SQ_ARM_READ);
  ASSERT_EQ(sq_arm_class_of("PUT"), SQ_ARM_WRITE);
  ASSERT_EQ(sq_arm_class_of("PATCH"), SQ_ARM_WRITE);
  ASSERT_EQ(sq_arm_class_of("POST"), SQ_ARM_WRITE);
  ASSERT_EQ(sq_arm_class_of("DELETE"), SQ_ARM_DELETE);

  char sub[64];
  sq_arm_subscription_of("/subscriptions/ABC-def/resourceGroups/rg/providers/x", sub, sizeof sub);
  ASSERT_STR_EQ(sub, "abc-def");
  sq_arm_subscription_of("/providers/Microsoft.Authorization/roleDefinitions", sub, sizeof sub);
  ASSERT_STR_EQ(sub, "");

  struct {
    const char *path, *type;
  } rt[] = {
      {"/subscriptions/s/resourceGroups/g/providers/Microsoft.Sql/servers/x/databases/y",
       "Microsoft.Sql/servers/databases"},
      {"/subscriptions/s/resourceGroups/g/providers/Microsoft.Sql/servers/x", "Microsoft.Sql/servers"},
      {"/subscriptions/s/resourceGroups/g/providers/Microsoft.Sql/servers/x/databases",
       "Microsoft.Sql/servers/databases"},
      {"/subscriptions/s/resourceGroups/g/providers/Microsoft.Sql/locations/eastus/"
       "databaseAzureAsyncOperation/0a4e",
       "Microsoft.Sql/locations/databaseAzureAsyncOperation"},
      {"/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/kv/providers/"
       "Microsoft.Authorization/roleAssignments/r1",
       "Microsoft.Authorization/roleAssignments"},
      {"/subscriptions/s/resourceGroups/g", ""},
  };
  for(size_t i = 0; i < sizeof rt / sizeof *rt; i++) {
    char t[128];
    sq_arm_resource_type(rt[i].path, t, sizeof t);
    ASSERT_STR_EQ(t, rt[i].type);
  }

  ASSERT(sq_arm_path_valid("/subscriptions/s/resourceGroups/g/providers/Microsoft.Sql/servers/x"));
  ASSERT(sq_arm_path_valid("/subscriptions/s/resourceGroups/my rg(1)/x/db,1332015"));
  ASSERT(!sq_arm_path_valid("subscriptions/s"));
  ASSERT(!sq_arm_path_valid("/subscriptions/s?api-version=1"));
  ASSERT(!sq_arm_path_valid("/subscriptions/s#frag"));
  ASSERT(!sq_arm_path_valid("/subscriptions/../x"));
  ASSERT(!sq_arm_path_valid("/subscriptions/./x"));
  ASSERT(!sq_arm_path_valid("/subscriptions//x"));
  ASSERT(!sq_arm_path_valid("/subscriptions/a\nb"));
  ASSERT(!sq_arm_path_valid("/a\\b"));
}

TEST(failed_operation_codes) {
  ASSERT_EQ(sq_arm_failed_op_code("PerDatabaseCMKKeyRotationAttemptedWhileOldThumbprintInUse", 0),
            SQ_EBADREQ);
  ASSERT_EQ(sq_arm_failed_op_code("AzureKeyVaultMissingPermissions", 0), SQ_EBADREQ);
  ASSERT_EQ(sq_arm_failed_op_code("InternalServerError", 0), SQ_ESERVER);
  ASSERT_EQ(sq_arm_failed_op_code("SubscriptionTooManyCreateUpdateRequests", 0), SQ_ETHROTTLED);
  ASSERT_EQ(sq_arm_failed_op_code("EncryptionProtectorChangeInProgress", 0), SQ_ECONFLICT);
  ASSERT_EQ(sq_arm_failed_op_code(NULL, 0), SQ_EBADREQ);
  ASSERT_EQ(sq_arm_failed_op_code("Whatever", 1), SQ_ECONFLICT);
  ASSERT(!sq_code_retryable(sq_arm_failed_op_code("InvalidKeyName", 0)));
  ASSERT(sq_code_retryable(sq_arm_failed_op_code("ServiceUnavailable", 0)));
}

TEST(lro_header_decisions) {
  const char *arm = "https://management.localhost:8443";
  const char *path = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Sql/servers/x/databases/y";
  const char *aao = "https://management.localhost:8443/subscriptions/s/resourceGroups/g/providers/"
                    "Microsoft.Sql/locations/eastus/databaseAzureAsyncOperation/1?api-version=2025-01-01";
  const char *loc = "https://management.localhost:8443/subscriptions/s/resourceGroups/g/providers/"
                    "Microsoft.Sql/locations/eastus/databaseOperationResults/1?api-version=2025-01-01";
  sq_arm_lro l;
  sq_err e;
  /* synchronous answers need no polling */
  ASSERT_EQ(sq_arm_lro_from_response("PUT", path, "2025-01-01", arm, 200, "", "", 0, &l, &e), 0);
  ASSERT_EQ(sq_arm_lro_from_response("DELETE", path, "2025-01-01", arm, 204, "", "", 0, &l, &e), 0);
  /* both headers: Azure-AsyncOperation is what gets polled, Location kept */
  ASSERT_EQ(sq_arm_lro_from_response("PUT", path, "2025-01-01", arm, 202, aao, loc, 0, &l, &e), 1);
  ASSERT_STR_EQ(l.async_url, aao);
  ASSERT_STR_EQ(l.location_url, loc);
  ASSERT_STR_EQ(l.method, "PUT");
  ASSERT_STR_EQ(l.path, path);
  /* Location only */
  ASSERT_EQ(sq_arm_lro_from_response("PATCH", path, "2025-01-01", arm, 202, "", loc, 0, &l, &e), 1);
  ASSERT_STR_EQ(l.async_url, "");
  ASSERT_STR_EQ(l.location_url, loc);
  /* 201 with a Location: polled like a 202 (DOC-ARM-ASYNC) */
  ASSERT_EQ(sq_arm_lro_from_response("PUT", path, "2025-01-01", arm, 201, "", loc, 0, &l, &e), 1);
  ASSERT_STR_EQ(l.location_url, loc);
  ASSERT(!l.poll_resource);
  /* 201 with nothing to poll: created, done */
  ASSERT_EQ(sq_arm_lro_from_response("PUT", path, "2025-01-01", arm, 201, "", "", 0, &l, &e), 0);
  /* 202 without headers: a typed protocol error, never a guess */
  ASSERT_EQ(sq_arm_lro_from_response("PUT", path, "2025-01-01", arm, 202, "", "", 0, &l, &e), -1);
  ASSERT_EQ(e.code, SQ_EPARSE);
  ASSERT_STR_EQ(e.reason, "MissingOperationHeaders");
  /* a status URL elsewhere would receive our token: refused */
  ASSERT_EQ(sq_arm_lro_from_response("PUT", path, "2025-01-01", arm, 202,
                                     "https://evil.example.com/op/1", "", 0, &l, &e),
            -1);
  ASSERT_STR_CONTAINS(e.message, "not on the ARM endpoint");
  ASSERT_EQ(sq_arm_lro_from_response("PUT", path, "2025-01-01", arm, 202, "",
                                     "http://management.localhost:8443/op", 0, &l, &e),
            -1);
  /* a 4 KiB status URL (ARM allows them) is kept whole */
  static char big[sizeof((sq_http_resp *)0)->location];
  memset(big, 'a', sizeof big);
  memcpy(big, "https://management.localhost:8443/", 34);
  big[4096] = '\0';
  ASSERT_EQ(sq_arm_lro_from_response("PUT", path, "2025-01-01", arm, 202, big, "", 0, &l, &e), 1);
  ASSERT_EQ(strlen(l.async_url), 4096);
  /* a header that filled sq_http's whole field was truncated: refused */
  big[4096] = 'a';
  big[sizeof big - 1] = '\0';
  ASSERT_EQ(sq_arm_lro_from_response("PUT", path, "2025-01-01", arm, 202, big, "", 0, &l, &e), -1);
  ASSERT_STR_CONTAINS(e.message, "too long");
}

/* ---- the shared pager (azure/pager.h), driven by a fake service ---- */

#define ORIGIN "https://management.localhost:8443"

typedef struct fake_page {
  const char *url;
  long status;
  const char *body;
} fake_page;

typedef struct fake_service {
  const fake_page *pages;
  size_t n_pages;
  int sends;
} fake_service;

static sq_code fake_send(void *ud, const char *url, sq_http_resp *resp, sq_err *err) {
  fake_service *f = ud;
  (void)err;
  f->sends++;
  for(size_t i = 0; i < f->n_pages; i++) {
    if(!strcmp(f->pages[i].url, url)) {
      resp->status = f->pages[i].status;
      snprintf(resp->content_type, sizeof resp->content_type, "application/json");
      return sq_buf_adds(&resp->body, f->pages[i].body);
    }
  }
  resp->status = 404;
  return SQ_OK;
}

typedef struct collected {
  char names[16][16];
  int n, stop_after;
} collected;

static int collect(void *ud, const json_t *item) {
  collected *c = ud;
  if(c->n < 16)
    snprintf(c->names[c->n], sizeof c->names[c->n], "%s", sq_json_str(item, "name") ? sq_json_str(item, "name") : "?");
  c->n++;
  return c->stop_after && c->n >= c->stop_after;
}

static sq_code run_pager(const fake_page *pages, size_t n, int max_pages, size_t max_items,
                         fake_service *f, collected *c, sq_err *e) {
  f->pages = pages;
  f->n_pages = n;
  f->sends = 0;
  sq_azure_pager p = {.what = "list things", .origin = ORIGIN, .origin_name = "the test origin",
                      .max_pages = max_pages, .max_items = max_items, .max_url = 256,
                      .send = fake_send, .send_ud = f, .item = collect, .item_ud = c};
  sq_err_clear(e);
  return sq_azure_list_pages(&p, ORIGIN "/things?p=1", e);
}

TEST(pager_follows_next_links_in_order) {
  const fake_page pages[] = {
      {ORIGIN "/things?p=1", 200,
       "{\"value\":[{\"name\":\"a\"},{\"name\":\"b\"}],\"nextLink\":\"" ORIGIN "/things?p=2\"}"},
      {ORIGIN "/things?p=2", 200, "{\"value\":[],\"nextLink\":\"" ORIGIN "/things?p=3\"}"},
      {ORIGIN "/things?p=3", 200, "{\"value\":[{\"name\":\"c\"}],\"nextLink\":\"\"}"},
  };
  fake_service f;
  collected c = {0};
  sq_err e;
  ASSERT_OK(run_pager(pages, 3, 10, 0, &f, &c, &e));
  ASSERT_EQ(f.sends, 3);
  ASSERT_EQ(c.n, 3);
  ASSERT_STR_EQ(c.names[0], "a");
  ASSERT_STR_EQ(c.names[2], "c");

  /* the callback's stop ends the listing without fetching more pages */
  collected stop = {.stop_after = 2};
  ASSERT_OK(run_pager(pages, 3, 10, 0, &f, &stop, &e));
  ASSERT_EQ(f.sends, 1);
  ASSERT_EQ(stop.n, 2);
}

TEST(pager_refuses_bad_next_links) {
  struct {
    fake_page pages[2];
    sq_code code;
    const char *msg;
  } cases[] = {
      /* the token would go elsewhere */
      {{{ORIGIN "/things?p=1", 200, "{\"value\":[],\"nextLink\":\"https://evil.example.com/x\"}"}},
       SQ_EPARSE, "not on the test origin"},
      {{{ORIGIN "/things?p=1", 200, "{\"value\":[],\"nextLink\":\"http://management.localhost:8443/x\"}"}},
       SQ_EPARSE, "not on the test origin"},
      /* A -> A and A -> B -> A would loop forever */
      {{{ORIGIN "/things?p=1", 200, "{\"value\":[],\"nextLink\":\"" ORIGIN "/things?p=1\"}"}},
       SQ_EPARSE, "repeats"},
      {{{ORIGIN "/things?p=1", 200, "{\"value\":[],\"nextLink\":\"" ORIGIN "/things?p=2\"}"},
        {ORIGIN "/things?p=2", 200, "{\"value\":[],\"nextLink\":\"" ORIGIN "/things?p=1\"}"}},
       SQ_EPARSE, "repeats"},
      /* over max_url (256) */
      {{{ORIGIN "/things?p=1", 200,
         "{\"value\":[],\"nextLink\":\"" ORIGIN "/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}"}},
       SQ_ETOOBIG, "nextLink too long"},
      /* pages that are not list pages */
      {{{ORIGIN "/things?p=1", 200, "{\"values\":[]}"}}, SQ_EPARSE, "\"value\" array"},
      {{{ORIGIN "/things?p=1", 200, "[1,2]"}}, SQ_EPARSE, "list things"},
      {{{ORIGIN "/things?p=1", 403,
         "{\"error\":{\"code\":\"AuthorizationFailed\",\"message\":\"no\"}}"}},
       SQ_EFORBIDDEN, "list things"},
      /* a nextLink to a page that fails: the error of that page */
      {{{ORIGIN "/things?p=1", 200, "{\"value\":[{\"name\":\"a\"}],\"nextLink\":\"" ORIGIN "/gone\"}"}},
       SQ_ENOTFOUND, "list things"},
  };
  for(size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    fake_service f;
    collected c = {0};
    sq_err e;
    size_t n = cases[i].pages[1].url ? 2 : 1;
    ASSERT_EQ(run_pager(cases[i].pages, n, 10, 0, &f, &c, &e), cases[i].code);
    ASSERT_EQ(e.code, cases[i].code);
    ASSERT_STR_CONTAINS(e.message, cases[i].msg);
  }
}

TEST(pager_bounds_pages_and_items) {
  /* an endless chain of distinct links stops at max_pages */
  const fake_page chain[] = {
      {ORIGIN "/things?p=1", 200, "{\"value\":[{\"name\":\"a\"}],\"nextLink\":\"" ORIGIN "/things?p=2\"}"},
      {ORIGIN "/things?p=2", 200, "{\"value\":[{\"name\":\"b\"}],\"nextLink\":\"" ORIGIN "/things?p=3\"}"},
      {ORIGIN "/things?p=3", 200, "{\"value\":[{\"name\":\"c\"}],\"nextLink\":\"" ORIGIN "/things?p=4\"}"},
  };
  fake_service f;
  collected c = {0};
  sq_err e;
  ASSERT_EQ(run_pager(chain, 3, 2, 0, &f, &c, &e), SQ_ETOOBIG);
  ASSERT_STR_CONTAINS(e.message, "more than 2 pages");
  ASSERT_EQ(f.sends, 2);
  /* items are counted across pages; 0 = no bound */
  collected d = {0};
  ASSERT_EQ(run_pager(chain, 3, 10, 2, &f, &d, &e), SQ_ETOOBIG);
  ASSERT_STR_CONTAINS(e.message, "more than 2 items");
  ASSERT_EQ(d.n, 2);
  collected all = {0};
  ASSERT_EQ(run_pager(chain, 3, 10, 0, &f, &all, &e), SQ_ENOTFOUND); /* p=4 does not exist */
  ASSERT_EQ(all.n, 3);
}

TEST_MAIN()
