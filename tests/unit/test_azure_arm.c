/* Unit tests for azure/arm.h pure parts: the client-side token bucket driven
 * by a fake clock, operation classes, ids, LRO header decisions and the
 * mapping of terminal operation errors. */
#include "sqltde/azure/arm.h"
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

TEST_MAIN()
