/* Unit tests for the operator's command-line flags. */
#include "sqltde/cli/options.h"
#include "test.h"

static sq_code parse(sq_options *o, sq_err *e, int argc, char **argv) {
  sq_options_defaults(o);
  sq_err_clear(e);
  return sq_options_parse(o, argc, argv, e);
}

TEST(defaults_match_controller_runtime) {
  sq_options o;
  sq_options_defaults(&o);
  ASSERT_EQ(o.lease_duration_ms, 15000);
  ASSERT_EQ(o.renew_deadline_ms, 10000);
  ASSERT_EQ(o.retry_period_ms, 2000);
  ASSERT_STR_EQ(o.metrics_bind_address, ":8080");
  ASSERT_STR_EQ(o.health_probe_bind_address, ":8081");
  ASSERT_EQ(o.leader_elect, 0);
}

TEST(parses_both_forms) {
  sq_options o;
  sq_err e;
  char *argv[] = {"op", "--kubeconfig", "/k", "--leader-elect", "--namespace=ns1",
                  "--leader-elect-lease-duration=1m30s", "--zap-log-level", "debug",
                  "--max-concurrent-reconciles=4", "--metrics-bind-address=0"};
  ASSERT_OK(parse(&o, &e, 10, argv));
  ASSERT_STR_EQ(o.kubeconfig, "/k");
  ASSERT_EQ(o.leader_elect, 1);
  ASSERT_STR_EQ(o.namespace, "ns1");
  ASSERT_EQ(o.lease_duration_ms, 90000);
  ASSERT_EQ(o.log_level, SQ_LOG_DEBUG);
  ASSERT_EQ(o.max_concurrent_reconciles, 4);
  ASSERT_STR_EQ(o.metrics_bind_address, "0");
}

TEST(rejects_bad_input_with_named_flag) {
  sq_options o;
  sq_err e;
  char *a1[] = {"op", "--bogus"};
  ASSERT_EQ(parse(&o, &e, 2, a1), SQ_EINVAL);
  ASSERT_STR_CONTAINS(e.message, "unknown flag --bogus");
  char *a2[] = {"op", "--leader-elect-retry-period=soon"};
  ASSERT_EQ(parse(&o, &e, 2, a2), SQ_EINVAL);
  ASSERT_STR_CONTAINS(e.message, "--leader-elect-retry-period");
  char *a3[] = {"op", "--kubeconfig"};
  ASSERT_EQ(parse(&o, &e, 2, a3), SQ_EINVAL);
  ASSERT_STR_CONTAINS(e.message, "needs a value");
  char *a4[] = {"op", "--leader-elect", "--leader-elect-renew-deadline=20s"};
  ASSERT_EQ(parse(&o, &e, 3, a4), SQ_EINVAL);
  ASSERT_STR_CONTAINS(e.message, "renew-deadline");
  char *a5[] = {"op", "--max-concurrent-reconciles=0"};
  ASSERT_EQ(parse(&o, &e, 2, a5), SQ_EINVAL);
  char *a6[] = {"op", "stray"};
  ASSERT_EQ(parse(&o, &e, 2, a6), SQ_EINVAL);
}

TEST(durations) {
  int64_t ms;
  ASSERT_OK(sq_parse_duration_ms("250ms", &ms));
  ASSERT_EQ(ms, 250);
  ASSERT_OK(sq_parse_duration_ms("10h", &ms));
  ASSERT_EQ(ms, 36000000);
  ASSERT_OK(sq_parse_duration_ms("1.5s", &ms));
  ASSERT_EQ(ms, 1500);
  ASSERT_EQ(sq_parse_duration_ms("5", &ms), SQ_EINVAL);
  ASSERT_EQ(sq_parse_duration_ms("", &ms), SQ_EINVAL);
  ASSERT_EQ(sq_parse_duration_ms("-1s", &ms), SQ_EINVAL);
}

TEST_MAIN()
