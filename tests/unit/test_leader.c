/* test_leader.c — the pure part of leader election: observation, expiry by
 * the local clock, the decision table, the renew deadline, configuration. */
#include <string.h>
#include <unistd.h>

#include "sqltde/kube/leader.h"
#include "test.h"

static sq_lease_record rec(const char *holder, int64_t dur, const char *renew, int64_t trans) {
  sq_lease_record r;
  memset(&r, 0, sizeof r);
  snprintf(r.holder, sizeof r.holder, "%s", holder);
  r.duration_s = dur;
  snprintf(r.acquire_time, sizeof r.acquire_time, "2026-01-01T00:00:00.000000Z");
  snprintf(r.renew_time, sizeof r.renew_time, "%s", renew);
  r.transitions = trans;
  return r;
}

TEST(record_from_json) {
  json_t *lease = json_loads("{\"metadata\":{\"name\":\"x\"},\"spec\":{\"holderIdentity\":\"h1\","
                             "\"leaseDurationSeconds\":15,\"acquireTime\":\"A\",\"renewTime\":\"R\","
                             "\"leaseTransitions\":3}}",
                             0, NULL);
  ASSERT_NOT_NULL(lease);
  sq_lease_record r;
  sq_lease_record_from_json(lease, &r);
  ASSERT_STR_EQ(r.holder, "h1");
  ASSERT_EQ(r.duration_s, 15);
  ASSERT_STR_EQ(r.acquire_time, "A");
  ASSERT_STR_EQ(r.renew_time, "R");
  ASSERT_EQ(r.transitions, 3);
  json_decref(lease);

  /* A Lease with no spec (or a released one) reads as "nobody holds it". */
  lease = json_loads("{\"metadata\":{\"name\":\"x\"}}", 0, NULL);
  sq_lease_record_from_json(lease, &r);
  ASSERT_STR_EQ(r.holder, "");
  ASSERT_EQ(r.duration_s, 0);
  ASSERT_EQ(r.transitions, 0);
  json_decref(lease);
}

TEST(observe_moves_only_on_change) {
  sq_leader_view v;
  memset(&v, 0, sizeof v);
  sq_lease_record r1 = rec("other", 15, "T1", 0);
  ASSERT_EQ(sq_leader_observe(&v, &r1, 1000), 1);
  ASSERT_EQ(v.observed_ms, 1000);
  /* Same content read again later: the observation time must not move,
   * otherwise a dead leader's lease would never expire. */
  ASSERT_EQ(sq_leader_observe(&v, &r1, 9000), 0);
  ASSERT_EQ(v.observed_ms, 1000);
  /* A renewal changes renewTime: the clock restarts. */
  sq_lease_record r2 = rec("other", 15, "T2", 0);
  ASSERT_EQ(sq_leader_observe(&v, &r2, 10000), 1);
  ASSERT_EQ(v.observed_ms, 10000);
  /* Any field counts: a new holder, a new duration, new transitions. */
  sq_lease_record r3 = rec("other", 16, "T2", 0);
  ASSERT_EQ(sq_leader_observe(&v, &r3, 11000), 1);
  sq_lease_record r4 = rec("other", 16, "T2", 1);
  ASSERT_EQ(sq_leader_observe(&v, &r4, 12000), 1);
  sq_lease_record r5 = rec("third", 16, "T2", 1);
  ASSERT_EQ(sq_leader_observe(&v, &r5, 13000), 1);
  ASSERT_EQ(v.observed_ms, 13000);
}

typedef struct decide_case {
  const char *name;
  int exists;
  const char *holder;
  int64_t dur_s;
  int64_t observed_ms;
  int64_t now_ms;
  int leading;
  sq_leader_action want;
} decide_case;

TEST(decide_table) {
  static const decide_case cases[] = {
      {"missing lease: create", 0, "", 0, 0, 0, 0, SQ_LEADER_CREATE},
      {"missing lease while leading: create again", 0, "", 0, 0, 0, 1, SQ_LEADER_CREATE},
      {"held by other, fresh", 1, "other", 15, 1000, 1000, 0, SQ_LEADER_WAIT},
      {"held by other, 1 ms before expiry", 1, "other", 15, 1000, 15999, 0, SQ_LEADER_WAIT},
      {"held by other, expired exactly", 1, "other", 15, 1000, 16000, 0, SQ_LEADER_TAKE},
      {"held by other, long expired", 1, "other", 15, 1000, 99000, 0, SQ_LEADER_TAKE},
      {"released (empty holder): take at once", 1, "", 1, 1000, 1000, 0, SQ_LEADER_TAKE},
      {"zero duration: take at once", 1, "other", 0, 1000, 1000, 0, SQ_LEADER_TAKE},
      {"negative duration: take", 1, "other", -5, 1000, 1000, 0, SQ_LEADER_TAKE},
      {"mine: renew", 1, "me", 15, 1000, 2000, 1, SQ_LEADER_RENEW},
      {"mine after restart (not leading yet): renew", 1, "me", 15, 1000, 2000, 0,
       SQ_LEADER_RENEW},
      {"mine and expired: still renew", 1, "me", 15, 1000, 99000, 1, SQ_LEADER_RENEW},
      {"leading but other holds: step down", 1, "other", 15, 1000, 1000, 1,
       SQ_LEADER_STEP_DOWN},
      {"leading but released by someone: step down", 1, "", 1, 1000, 1000, 1,
       SQ_LEADER_STEP_DOWN},
      {"leading, other's lease expired: step down anyway", 1, "other", 15, 1000, 99000, 1,
       SQ_LEADER_STEP_DOWN},
  };
  for(size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const decide_case *c = &cases[i];
    sq_leader_view v;
    memset(&v, 0, sizeof v);
    if(c->exists) {
      sq_lease_record r = rec(c->holder, c->dur_s, "R", 0);
      sq_leader_observe(&v, &r, c->observed_ms);
    }
    sq_leader_action got = sq_leader_decide(&v, c->exists, "me", c->leading, c->now_ms);
    if(got != c->want)
      fprintf(stderr, "  case \"%s\": got %s want %s\n", c->name, sq_leader_action_name(got),
              sq_leader_action_name(c->want));
    ASSERT_EQ(got, c->want);
  }
}

TEST(expiry_uses_local_observation_not_lease_clock) {
  /* renewTime from a far-off clock (year 2000 or 2099) must not matter: a
   * record first seen now is valid for its duration from now. */
  const char *times[] = {"2000-01-01T00:00:00.000000Z", "2099-01-01T00:00:00.000000Z"};
  for(int i = 0; i < 2; i++) {
    sq_leader_view v;
    memset(&v, 0, sizeof v);
    sq_lease_record r = rec("other", 10, times[i], 0);
    sq_leader_observe(&v, &r, 50000);
    ASSERT_EQ(sq_leader_decide(&v, 1, "me", 0, 50000), SQ_LEADER_WAIT);
    ASSERT_EQ(sq_leader_decide(&v, 1, "me", 0, 59999), SQ_LEADER_WAIT);
    ASSERT_EQ(sq_leader_decide(&v, 1, "me", 0, 60000), SQ_LEADER_TAKE);
  }
}

TEST(view_without_observation_waits) {
  sq_leader_view v;
  memset(&v, 0, sizeof v);
  ASSERT_EQ(sq_leader_decide(&v, 1, "me", 0, 0), SQ_LEADER_WAIT);
  ASSERT_EQ(sq_leader_lease_valid(&v, 0), 0);
}

TEST(huge_duration_does_not_overflow) {
  sq_leader_view v;
  memset(&v, 0, sizeof v);
  sq_lease_record r = rec("other", INT64_MAX / 10, "R", 0);
  sq_leader_observe(&v, &r, 0);
  ASSERT_EQ(sq_leader_lease_valid(&v, INT64_MAX / 2), 1);
  ASSERT_EQ(sq_leader_decide(&v, 1, "me", 0, INT64_MAX / 2), SQ_LEADER_WAIT);
}

TEST(renew_deadline) {
  ASSERT_EQ(sq_leader_renew_expired(1000, 1000, 10000), 0);
  ASSERT_EQ(sq_leader_renew_expired(1000, 10999, 10000), 0);
  ASSERT_EQ(sq_leader_renew_expired(1000, 11000, 10000), 1);
  ASSERT_EQ(sq_leader_renew_expired(1000, 50000, 10000), 1);
}

/* A simulated store and two candidates on one fake clock, following the
 * elector's loop: A leads and renews every retry period, then dies; B polls
 * every retry period. B must take over no earlier than a full lease duration
 * after the last renewal it saw, and no later than one more poll. */
TEST(simulated_takeover_after_crash) {
  const int64_t lease_s = 15, retry = 2000, renew_deadline = 10000;
  sq_lease_record store = rec("A", lease_s, "r0", 0);
  int rv = 0;
  sq_leader_view va, vb;
  memset(&va, 0, sizeof va);
  memset(&vb, 0, sizeof vb);
  int64_t a_last_ok = 0, a_last_write = 0, b_took = -1;
  int a_alive = 1, a_leading = 1;
  const int64_t crash_at = 41000;
  for(int64_t t = 0; t <= 120000; t += 500) {
    if(a_alive && t >= crash_at)
      a_alive = 0;
    if(a_alive && t % retry == 0) {
      sq_leader_observe(&va, &store, t);
      sq_leader_action act = sq_leader_decide(&va, 1, "A", a_leading, t);
      ASSERT_EQ(act, SQ_LEADER_RENEW);
      snprintf(store.renew_time, sizeof store.renew_time, "r%d", ++rv);
      a_last_ok = a_last_write = t;
      ASSERT_EQ(sq_leader_renew_expired(a_last_ok, t, renew_deadline), 0);
    }
    if(b_took < 0 && t % retry == 1000) { /* B polls out of phase with A */
      sq_leader_observe(&vb, &store, t);
      sq_leader_action act = sq_leader_decide(&vb, 1, "B", 0, t);
      if(act == SQ_LEADER_TAKE) {
        b_took = t;
        snprintf(store.holder, sizeof store.holder, "B");
        store.transitions++;
      } else {
        ASSERT_EQ(act, SQ_LEADER_WAIT);
        /* While A lives, B never gets it. */
      }
    }
    if(a_alive)
      ASSERT_EQ(b_took, -1);
  }
  ASSERT_GE(b_took, 0);
  ASSERT_GE(b_took, a_last_write + lease_s * 1000);
  ASSERT_LE(b_took, a_last_write + lease_s * 1000 + retry + 1000);
  ASSERT_EQ(store.transitions, 1);
  /* A, had it been stuck instead of dead, would have stepped down well before. */
  ASSERT(sq_leader_renew_expired(a_last_ok, a_last_ok + renew_deadline, renew_deadline));
  ASSERT_LT(a_last_ok + renew_deadline, b_took);
}

TEST(config_check) {
  sq_leader_config c;
  sq_err e;
  memset(&c, 0, sizeof c);
  c.lease_namespace = "ns";
  c.lease_name = "sqltde-operator";
  sq_leader_config_defaults(&c);
  ASSERT_EQ(c.lease_duration_ms, 15000);
  ASSERT_EQ(c.renew_deadline_ms, 10000);
  ASSERT_EQ(c.retry_period_ms, 2000);
  ASSERT_OK(sq_leader_config_check(&c, &e));

  struct {
    int64_t lease, renew, retry;
    const char *msg;
  } bad[] = {
      {15000, 15000, 2000, "greater than the renew deadline"},
      {10000, 15000, 2000, "greater than the renew deadline"},
      {15000, 2400, 2000, "1.2 x retry"},
      {15500, 10000, 2000, "whole seconds"},
      {0, 10000, 2000, "positive"},
      {15000, 10000, -1, "positive"},
  };
  for(size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    sq_leader_config b = c;
    b.lease_duration_ms = bad[i].lease;
    b.renew_deadline_ms = bad[i].renew;
    b.retry_period_ms = bad[i].retry;
    sq_err_clear(&e);
    ASSERT_EQ(sq_leader_config_check(&b, &e), SQ_EINVAL);
    ASSERT_STR_CONTAINS(e.message, bad[i].msg);
  }
  /* The integration test's short timings are valid. */
  sq_leader_config s = c;
  s.lease_duration_ms = 3000;
  s.renew_deadline_ms = 2000;
  s.retry_period_ms = 500;
  ASSERT_OK(sq_leader_config_check(&s, &e));

  sq_leader_config n = c;
  n.lease_name = "";
  ASSERT_EQ(sq_leader_config_check(&n, &e), SQ_EINVAL);
  ASSERT_STR_CONTAINS(e.message, "lease name");
  n = c;
  n.lease_namespace = NULL;
  ASSERT_EQ(sq_leader_config_check(&n, &e), SQ_EINVAL);
  ASSERT_STR_CONTAINS(e.message, "namespace");
}

TEST(identity_is_hostname_and_random_suffix) {
  char a[SQ_LEADER_ID_MAX + 1], b[SQ_LEADER_ID_MAX + 1], host[65];
  sq_err e;
  ASSERT_OK(sq_leader_make_identity(a, sizeof a, &e));
  ASSERT_OK(sq_leader_make_identity(b, sizeof b, &e));
  ASSERT_OK(gethostname(host, sizeof host));
  host[64] = '\0';
  size_t hl = strlen(host);
  ASSERT_EQ(strncmp(a, host, hl), 0);
  ASSERT_EQ(a[hl], '_');
  ASSERT_EQ(strlen(a + hl + 1), 16);
  ASSERT_EQ(strspn(a + hl + 1, "0123456789abcdef"), 16);
  ASSERT(strcmp(a, b) != 0); /* two candidates on one host differ */
  char small[8];
  ASSERT_EQ(sq_leader_make_identity(small, sizeof small, &e), SQ_EINVAL);
}

/* Lease times are MicroTime: the apiserver wants exactly six fraction digits. */
TEST(micro_time_format) {
  char t[40];
  sq_rfc3339_micro(1700000000123456LL, t, sizeof t);
  ASSERT_STR_EQ(t, "2023-11-14T22:13:20.123456Z");
  ASSERT_EQ(sq_parse_rfc3339(t), 1700000000);
  sq_rfc3339_micro(1700000000000001LL, t, sizeof t);
  ASSERT_STR_EQ(t, "2023-11-14T22:13:20.000001Z");
  sq_rfc3339_micro(-1, t, sizeof t);
  ASSERT_STR_EQ(t, "1969-12-31T23:59:59.999999Z");
  int64_t now = sq_wall_us();
  ASSERT_LE(now / 1000000 - sq_wall_s(), 0);
  ASSERT_GE(now / 1000000 - sq_wall_s(), -2);
}

TEST(action_names) {
  ASSERT_STR_EQ(sq_leader_action_name(SQ_LEADER_CREATE), "create");
  ASSERT_STR_EQ(sq_leader_action_name(SQ_LEADER_TAKE), "take");
  ASSERT_STR_EQ(sq_leader_action_name(SQ_LEADER_RENEW), "renew");
  ASSERT_STR_EQ(sq_leader_action_name(SQ_LEADER_WAIT), "wait");
  ASSERT_STR_EQ(sq_leader_action_name(SQ_LEADER_STEP_DOWN), "step-down");
}

TEST_MAIN()
