/* Unit tests for the work queue, its delay heap and its rate limiters.
 * Time-dependent cases use a fake clock and sq_wq_try_get, so they never
 * sleep; the few real-time cases only assert lower bounds or bounded waits. */
#include <pthread.h>
#include <stdatomic.h>

#include "sqltde/clock.h"
#include "sqltde/kube/heap.h"
#include "sqltde/kube/ratelimit.h"
#include "sqltde/kube/workqueue.h"
#include "test.h"

/* ---- fake clock ---------------------------------------------------------- */

typedef struct fake_clock {
  _Atomic int64_t ms;
  sq_clock c;
} fake_clock;

static int64_t fake_mono(void *ud) { return atomic_load(&((fake_clock *)ud)->ms); }
static int64_t fake_wall(void *ud) { return 1700000000 + fake_mono(ud) / 1000; }

static void fake_init(fake_clock *f, int64_t start) {
  atomic_store(&f->ms, start);
  f->c = (sq_clock){fake_mono, fake_wall, f};
}
static void fake_advance(fake_clock *f, int64_t ms) { atomic_fetch_add(&f->ms, ms); }

static sq_wq *new_queue(fake_clock *f, double qps) {
  sq_wq_opts o = {.name = "test", .clock = f ? &f->c : NULL, .bucket_qps = qps};
  sq_wq *q = NULL;
  if(sq_wq_new(&o, &q, NULL))
    return NULL;
  return q;
}

/* try_get that returns the key, or "" when nothing is ready */
static const char *take(sq_wq *q, char *buf) {
  sq_code rc = sq_wq_try_get(q, buf, SQ_WQ_KEY_MAX);
  if(rc)
    buf[0] = '\0';
  return buf;
}

/* ---- basic semantics ----------------------------------------------------- */

TEST(fifo_order) {
  sq_wq *q = new_queue(NULL, 0);
  ASSERT_NOT_NULL(q);
  char k[SQ_WQ_KEY_MAX];
  const char *keys[] = {"ns/c", "ns/a", "ns/b", "other/a"};
  for(int i = 0; i < 4; i++)
    ASSERT_OK(sq_wq_add(q, keys[i]));
  ASSERT_EQ(sq_wq_len(q), 4);
  for(int i = 0; i < 4; i++) {
    ASSERT_OK(sq_wq_try_get(q, k, sizeof k));
    ASSERT_STR_EQ(k, keys[i]);
  }
  ASSERT_EQ(sq_wq_try_get(q, k, sizeof k), SQ_ETIMEOUT);
  for(int i = 0; i < 4; i++)
    ASSERT_OK(sq_wq_done(q, keys[i]));
  sq_wq_free(q);
}

TEST(dedup_waiting_keys) {
  sq_wq *q = new_queue(NULL, 0);
  char k[SQ_WQ_KEY_MAX];
  ASSERT_OK(sq_wq_add(q, "a"));
  ASSERT_OK(sq_wq_add(q, "b"));
  ASSERT_OK(sq_wq_add(q, "a")); /* already waiting: keeps its place */
  ASSERT_OK(sq_wq_add(q, "b"));
  ASSERT_EQ(sq_wq_len(q), 2);
  sq_wq_stats st;
  sq_wq_stats_get(q, &st);
  ASSERT_EQ(st.adds_total, 2);
  ASSERT_EQ(st.depth, 2);
  ASSERT_STR_EQ(take(q, k), "a");
  ASSERT_STR_EQ(take(q, k), "b");
  ASSERT_STR_EQ(take(q, k), "");
  ASSERT_OK(sq_wq_done(q, "a"));
  ASSERT_OK(sq_wq_done(q, "b"));
  ASSERT_STR_EQ(take(q, k), ""); /* done without a new add re-queues nothing */
  sq_wq_free(q);
}

TEST(dirty_while_processing_requeues_on_done) {
  sq_wq *q = new_queue(NULL, 0);
  char k[SQ_WQ_KEY_MAX];
  ASSERT_OK(sq_wq_add(q, "x"));
  ASSERT_STR_EQ(take(q, k), "x");
  /* added twice while a worker holds it: one re-queue, held back until done */
  ASSERT_OK(sq_wq_add(q, "x"));
  ASSERT_OK(sq_wq_add(q, "x"));
  ASSERT_OK(sq_wq_add(q, "y"));
  ASSERT_STR_EQ(take(q, k), "y"); /* x is not handed to a second worker */
  ASSERT_STR_EQ(take(q, k), "");
  sq_wq_stats st;
  sq_wq_stats_get(q, &st);
  ASSERT_EQ(st.depth, 1); /* x is dirty */
  ASSERT_EQ(st.processing, 2);
  ASSERT_OK(sq_wq_done(q, "x"));
  ASSERT_EQ(sq_wq_len(q), 1);
  ASSERT_STR_EQ(take(q, k), "x");
  ASSERT_OK(sq_wq_done(q, "x"));
  ASSERT_OK(sq_wq_done(q, "y"));
  ASSERT_STR_EQ(take(q, k), "");
  sq_wq_stats_get(q, &st);
  ASSERT_EQ(st.keys, 0);
  sq_wq_free(q);
}

TEST(bad_arguments) {
  sq_wq *q = new_queue(NULL, 0);
  char k[SQ_WQ_KEY_MAX];
  char small[8];
  ASSERT_EQ(sq_wq_add(q, ""), SQ_EINVAL);
  ASSERT_EQ(sq_wq_add(q, NULL), SQ_EINVAL);
  char *big = malloc(SQ_WQ_KEY_MAX + 1);
  memset(big, 'k', SQ_WQ_KEY_MAX);
  big[SQ_WQ_KEY_MAX] = '\0';
  ASSERT_EQ(sq_wq_add(q, big), SQ_EINVAL);
  big[SQ_WQ_KEY_MAX - 1] = '\0'; /* the longest accepted key */
  ASSERT_OK(sq_wq_add(q, big));
  ASSERT_EQ(sq_wq_try_get(q, small, sizeof small), SQ_EINVAL);
  ASSERT_EQ(sq_wq_len(q), 1); /* the refused get took nothing */
  ASSERT_OK(sq_wq_try_get(q, k, sizeof k));
  ASSERT_STR_EQ(k, big);
  ASSERT_EQ(sq_wq_done(q, "never-got"), SQ_ESTATE);
  ASSERT_OK(sq_wq_done(q, big));
  ASSERT_EQ(sq_wq_done(q, big), SQ_ESTATE); /* twice is a caller bug */
  free(big);
  sq_wq_free(q);
}

TEST(name_is_copied) {
  char name[16] = "vaultkey";
  sq_wq_opts o = {.name = name};
  sq_wq *q = NULL;
  ASSERT_OK(sq_wq_new(&o, &q, NULL));
  name[0] = 'X';
  ASSERT_STR_EQ(sq_wq_name(q), "vaultkey");
  sq_wq_free(q);
  ASSERT_OK(sq_wq_new(NULL, &q, NULL));
  ASSERT_STR_EQ(sq_wq_name(q), "");
  sq_wq_free(q);
}

/* ---- delayed adds -------------------------------------------------------- */

TEST(add_after_orders_by_ready_time) {
  fake_clock f;
  fake_init(&f, 1000);
  sq_wq *q = new_queue(&f, 0);
  char k[SQ_WQ_KEY_MAX];
  ASSERT_OK(sq_wq_add_after(q, "a", 300));
  ASSERT_OK(sq_wq_add_after(q, "b", 100));
  ASSERT_OK(sq_wq_add_after(q, "c", 200));
  ASSERT_OK(sq_wq_add_after(q, "d", 200)); /* same time as c: after c */
  ASSERT_STR_EQ(take(q, k), "");
  fake_advance(&f, 99);
  ASSERT_STR_EQ(take(q, k), "");
  fake_advance(&f, 1);
  ASSERT_STR_EQ(take(q, k), "b");
  ASSERT_STR_EQ(take(q, k), "");
  fake_advance(&f, 100);
  ASSERT_STR_EQ(take(q, k), "c");
  ASSERT_STR_EQ(take(q, k), "d");
  ASSERT_STR_EQ(take(q, k), "");
  fake_advance(&f, 1000); /* long overdue keys come out too */
  ASSERT_STR_EQ(take(q, k), "a");
  ASSERT_STR_EQ(take(q, k), "");
  const char *all[] = {"a", "b", "c", "d"};
  for(int i = 0; i < 4; i++)
    ASSERT_OK(sq_wq_done(q, all[i]));
  sq_wq_stats st;
  sq_wq_stats_get(q, &st);
  ASSERT_EQ(st.retries_total, 4);
  ASSERT_EQ(st.keys, 0);
  sq_wq_free(q);
}

TEST(add_after_earliest_wins) {
  fake_clock f;
  fake_init(&f, 0);
  sq_wq *q = new_queue(&f, 0);
  char k[SQ_WQ_KEY_MAX];
  ASSERT_OK(sq_wq_add_after(q, "x", 500));
  ASSERT_OK(sq_wq_add_after(q, "x", 100)); /* earlier: replaces */
  ASSERT_OK(sq_wq_add_after(q, "x", 900)); /* later: ignored */
  sq_wq_stats st;
  sq_wq_stats_get(q, &st);
  ASSERT_EQ(st.delayed, 1); /* one heap entry per key */
  fake_advance(&f, 100);
  ASSERT_STR_EQ(take(q, k), "x");
  ASSERT_OK(sq_wq_done(q, "x"));
  fake_advance(&f, 2000); /* neither 500 nor 900 fires a second time */
  ASSERT_STR_EQ(take(q, k), "");
  sq_wq_stats_get(q, &st);
  ASSERT_EQ(st.delayed, 0);
  ASSERT_EQ(st.keys, 0);
  sq_wq_free(q);
}

TEST(add_after_zero_or_negative_is_immediate) {
  fake_clock f;
  fake_init(&f, 0);
  sq_wq *q = new_queue(&f, 0);
  char k[SQ_WQ_KEY_MAX];
  ASSERT_OK(sq_wq_add_after(q, "now", 0));
  ASSERT_OK(sq_wq_add_after(q, "past", -50));
  ASSERT_STR_EQ(take(q, k), "now");
  ASSERT_STR_EQ(take(q, k), "past");
  ASSERT_OK(sq_wq_done(q, "now"));
  ASSERT_OK(sq_wq_done(q, "past"));
  /* a huge delay saturates instead of overflowing into the past */
  ASSERT_OK(sq_wq_add_after(q, "far", INT64_MAX));
  fake_advance(&f, 1000000000);
  ASSERT_STR_EQ(take(q, k), "");
  sq_wq_free(q);
}

TEST(delayed_key_due_while_processing_waits_for_done) {
  fake_clock f;
  fake_init(&f, 0);
  sq_wq *q = new_queue(&f, 0);
  char k[SQ_WQ_KEY_MAX];
  ASSERT_OK(sq_wq_add(q, "k"));
  ASSERT_STR_EQ(take(q, k), "k");
  ASSERT_OK(sq_wq_add_after(q, "k", 10));
  fake_advance(&f, 10);
  ASSERT_STR_EQ(take(q, k), ""); /* due, but a worker still holds k */
  ASSERT_OK(sq_wq_done(q, "k"));
  ASSERT_STR_EQ(take(q, k), "k");
  ASSERT_OK(sq_wq_done(q, "k"));
  sq_wq_free(q);
}

typedef struct getter_arg {
  sq_wq *q;
  int64_t timeout_ms;
  sq_code rc;
  char key[SQ_WQ_KEY_MAX];
  atomic_int finished;
} getter_arg;

static void *getter(void *p) {
  getter_arg *a = p;
  a->rc = sq_wq_get_wait(a->q, a->key, sizeof a->key, a->timeout_ms);
  atomic_store(&a->finished, 1);
  return NULL;
}

/* polls until flag is set or 10 s pass; generous so a loaded CI box passes */
static int wait_flag(atomic_int *flag) {
  for(int i = 0; i < 1000 && !atomic_load(flag); i++)
    sq_sleep_ms(10);
  return atomic_load(flag);
}

TEST(blocked_getter_sees_fake_clock_after_wake) {
  fake_clock f;
  fake_init(&f, 0);
  /* max wait of one hour: only sq_wq_wake can end the wait early */
  sq_wq_opts o = {.clock = &f.c, .max_wait_ms = 3600 * 1000};
  sq_wq *q = NULL;
  ASSERT_OK(sq_wq_new(&o, &q, NULL));
  ASSERT_OK(sq_wq_add_after(q, "later", 60000));
  getter_arg a = {.q = q, .timeout_ms = 30000};
  pthread_t t;
  ASSERT_OK(pthread_create(&t, NULL, getter, &a));
  sq_sleep_ms(20); /* most likely blocked by now; correct either way */
  ASSERT(!atomic_load(&a.finished));
  fake_advance(&f, 60000);
  sq_wq_wake(q);
  ASSERT(wait_flag(&a.finished));
  pthread_join(t, NULL);
  ASSERT_OK(a.rc);
  ASSERT_STR_EQ(a.key, "later");
  ASSERT_OK(sq_wq_done(q, "later"));
  sq_wq_free(q);
}

TEST(blocking_get_waits_for_real_delay) {
  sq_wq *q = new_queue(NULL, 0);
  char k[SQ_WQ_KEY_MAX];
  int64_t t0 = sq_mono_ms();
  ASSERT_OK(sq_wq_add_after(q, "soon", 40));
  ASSERT_OK(sq_wq_get_wait(q, k, sizeof k, 10000));
  ASSERT_STR_EQ(k, "soon");
  ASSERT_GE(sq_mono_ms() - t0, 40); /* never early; lateness is not asserted */
  ASSERT_OK(sq_wq_done(q, "soon"));
  sq_wq_free(q);
}

TEST(get_wait_times_out_when_empty) {
  sq_wq *q = new_queue(NULL, 0);
  char k[SQ_WQ_KEY_MAX];
  int64_t t0 = sq_mono_ms();
  ASSERT_EQ(sq_wq_get_wait(q, k, sizeof k, 30), SQ_ETIMEOUT);
  ASSERT_GE(sq_mono_ms() - t0, 30);
  ASSERT_STR_EQ(k, "");
  sq_wq_free(q);
}

TEST(new_earliest_delay_wakes_blocked_getter) {
  /* a getter sleeping toward a far deadline must notice a nearer one */
  sq_wq *q = new_queue(NULL, 0);
  ASSERT_OK(sq_wq_add_after(q, "far", 3600 * 1000));
  getter_arg a = {.q = q, .timeout_ms = 20000};
  pthread_t t;
  ASSERT_OK(pthread_create(&t, NULL, getter, &a));
  sq_sleep_ms(20);
  ASSERT_OK(sq_wq_add_after(q, "near", 30));
  ASSERT(wait_flag(&a.finished));
  pthread_join(t, NULL);
  ASSERT_OK(a.rc);
  ASSERT_STR_EQ(a.key, "near");
  ASSERT_OK(sq_wq_done(q, "near"));
  sq_wq_free(q);
}

/* ---- rate limiting ------------------------------------------------------- */

TEST(backoff_table) {
  static const struct {
    unsigned failures;
    int64_t want;
  } cases[] = {
      {0, 5},          {1, 10},         {2, 20},         {3, 40},
      {10, 5120},      {17, 655360},    {18, 1000000},   {19, 1000000},
      {61, 1000000},   {62, 1000000},   {63, 1000000},   {64, 1000000},
      {1000, 1000000}, {UINT32_MAX, 1000000},
  };
  for(size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    ASSERT_EQ(sq_backoff_ms(SQ_BACKOFF_BASE_MS, SQ_BACKOFF_MAX_MS, cases[i].failures),
              cases[i].want);
  ASSERT_EQ(sq_backoff_ms(0, 100, 3), 0);
  ASSERT_EQ(sq_backoff_ms(50, 20, 0), 20); /* max below base: max */
}

TEST(rate_limited_backoff_per_key_and_forget) {
  fake_clock f;
  fake_init(&f, 0);
  sq_wq *q = new_queue(&f, -1); /* bucket off: pure per-key backoff */
  int64_t d = -1;
  int64_t want = SQ_BACKOFF_BASE_MS;
  for(unsigned i = 0; i < 25; i++) {
    ASSERT_EQ(sq_wq_num_requeues(q, "k"), i);
    ASSERT_OK(sq_wq_add_rate_limited(q, "k", &d));
    ASSERT_EQ(d, want);
    want = want * 2 > SQ_BACKOFF_MAX_MS ? SQ_BACKOFF_MAX_MS : want * 2;
  }
  ASSERT_EQ(d, SQ_BACKOFF_MAX_MS);
  /* another key has its own count */
  ASSERT_OK(sq_wq_add_rate_limited(q, "other", &d));
  ASSERT_EQ(d, SQ_BACKOFF_BASE_MS);
  sq_wq_forget(q, "k");
  ASSERT_EQ(sq_wq_num_requeues(q, "k"), 0);
  ASSERT_EQ(sq_wq_num_requeues(q, "other"), 1);
  ASSERT_OK(sq_wq_add_rate_limited(q, "k", &d));
  ASSERT_EQ(d, SQ_BACKOFF_BASE_MS);
  sq_wq_stats st;
  sq_wq_stats_get(q, &st);
  ASSERT_EQ(st.retries_total, 27);
  sq_wq_free(q);
}

TEST(rate_limited_key_becomes_ready_after_backoff) {
  fake_clock f;
  fake_init(&f, 0);
  sq_wq *q = new_queue(&f, -1);
  char k[SQ_WQ_KEY_MAX];
  ASSERT_OK(sq_wq_add_rate_limited(q, "k", NULL));
  ASSERT_OK(sq_wq_add_rate_limited(q, "k", NULL)); /* 10 ms, but 5 ms wins */
  fake_advance(&f, 4);
  ASSERT_STR_EQ(take(q, k), "");
  fake_advance(&f, 1);
  ASSERT_STR_EQ(take(q, k), "k");
  ASSERT_OK(sq_wq_done(q, "k"));
  sq_wq_forget(q, "k");
  sq_wq_stats st;
  sq_wq_stats_get(q, &st);
  ASSERT_EQ(st.keys, 0); /* forget after done frees the entry */
  sq_wq_free(q);
}

TEST(bucket_reserve) {
  sq_bucket b;
  sq_bucket_init(&b, 10, 100, 0);
  for(int i = 0; i < 100; i++)
    ASSERT_EQ(sq_bucket_reserve(&b, 0), 0);
  ASSERT_EQ(sq_bucket_reserve(&b, 0), 100);
  ASSERT_EQ(sq_bucket_reserve(&b, 0), 200);
  /* 1 s later ten tokens have come back; two were already promised */
  for(int i = 0; i < 8; i++)
    ASSERT_EQ(sq_bucket_reserve(&b, 1000), 0);
  ASSERT_EQ(sq_bucket_reserve(&b, 1000), 100);
  /* a long idle refills only up to the burst */
  sq_bucket_init(&b, 10, 5, 0);
  for(int i = 0; i < 5; i++)
    ASSERT_EQ(sq_bucket_reserve(&b, 100000), 0);
  ASSERT_EQ(sq_bucket_reserve(&b, 100000), 100);
  /* a clock stepping back refills nothing and does not crash */
  ASSERT_EQ(sq_bucket_reserve(&b, 50000), 200);
  /* defaults */
  sq_bucket_init(&b, 0, 0, 0);
  ASSERT(b.qps == SQ_BUCKET_QPS);
  ASSERT(b.burst == SQ_BUCKET_BURST);
}

TEST(overall_bucket_limits_distinct_keys) {
  fake_clock f;
  fake_init(&f, 0);
  sq_wq *q = new_queue(&f, 0); /* defaults: 10 qps, burst 100 */
  char key[32];
  int64_t d;
  for(int i = 0; i < 100; i++) {
    snprintf(key, sizeof key, "ns/k%d", i);
    ASSERT_OK(sq_wq_add_rate_limited(q, key, &d));
    ASSERT_EQ(d, SQ_BACKOFF_BASE_MS); /* burst: per-key backoff decides */
  }
  for(int i = 100; i < 120; i++) {
    snprintf(key, sizeof key, "ns/k%d", i);
    ASSERT_OK(sq_wq_add_rate_limited(q, key, &d));
    ASSERT_EQ(d, (i - 99) * 100); /* then one key per 100 ms */
  }
  /* the bucket spreads them out: by +1 s only the burst and ten more run */
  fake_advance(&f, 1000);
  char k[SQ_WQ_KEY_MAX];
  int n = 0;
  while(sq_wq_try_get(q, k, sizeof k) == SQ_OK)
    n++;
  ASSERT_EQ(n, 110);
  sq_wq_free(q);
}

/* ---- shutdown ------------------------------------------------------------ */

TEST(shutdown_wakes_all_blocked_getters) {
  sq_wq *q = new_queue(NULL, 0);
  enum { N = 4 };
  getter_arg a[N];
  pthread_t t[N];
  memset(a, 0, sizeof a);
  for(int i = 0; i < N; i++) {
    a[i].q = q;
    a[i].timeout_ms = -1;
    ASSERT_OK(pthread_create(&t[i], NULL, getter, &a[i]));
  }
  sq_sleep_ms(30);
  for(int i = 0; i < N; i++)
    ASSERT(!atomic_load(&a[i].finished));
  sq_wq_shutdown(q);
  for(int i = 0; i < N; i++)
    ASSERT(wait_flag(&a[i].finished));
  for(int i = 0; i < N; i++) {
    pthread_join(t[i], NULL);
    ASSERT_EQ(a[i].rc, SQ_ECANCELED);
  }
  sq_wq_free(q);
}

TEST(shutdown_refuses_adds_but_allows_done) {
  fake_clock f;
  fake_init(&f, 0);
  sq_wq *q = new_queue(&f, 0);
  char k[SQ_WQ_KEY_MAX];
  ASSERT_OK(sq_wq_add(q, "held"));
  ASSERT_OK(sq_wq_add(q, "queued"));
  ASSERT_OK(sq_wq_add_after(q, "delayed", 10));
  ASSERT_STR_EQ(take(q, k), "held");
  sq_wq_shutdown(q);
  ASSERT(sq_wq_shutting_down(q));
  ASSERT_EQ(sq_wq_add(q, "new"), SQ_ECANCELED);
  ASSERT_EQ(sq_wq_add_after(q, "new", 5), SQ_ECANCELED);
  ASSERT_EQ(sq_wq_add_rate_limited(q, "new", NULL), SQ_ECANCELED);
  fake_advance(&f, 100);
  ASSERT_EQ(sq_wq_try_get(q, k, sizeof k), SQ_ECANCELED); /* even with "queued" */
  ASSERT_EQ(sq_wq_get(q, k, sizeof k), SQ_ECANCELED);     /* does not block */
  ASSERT_OK(sq_wq_done(q, "held"));
  sq_wq_stats st;
  sq_wq_stats_get(q, &st);
  ASSERT_EQ(st.delayed, 0);
  sq_wq_shutdown(q); /* idempotent */
  sq_wq_free(q);     /* ASan: the never-served "queued" entry is freed */
}

typedef struct drain_worker {
  sq_wq *q;
  atomic_int handled;
  atomic_int exited;
} drain_worker;

static void *drain_loop(void *p) {
  drain_worker *w = p;
  char k[SQ_WQ_KEY_MAX];
  while(sq_wq_get(w->q, k, sizeof k) == SQ_OK) {
    sq_sleep_ms(2);
    atomic_fetch_add(&w->handled, 1);
    sq_wq_done(w->q, k);
  }
  atomic_store(&w->exited, 1);
  return NULL;
}

TEST(shutdown_drain_serves_queued_keys) {
  sq_wq *q = new_queue(NULL, 0);
  char key[32];
  for(int i = 0; i < 20; i++) {
    snprintf(key, sizeof key, "k%d", i);
    ASSERT_OK(sq_wq_add(q, key));
  }
  ASSERT_OK(sq_wq_add_after(q, "delayed", 3600 * 1000));
  drain_worker w = {.q = q};
  pthread_t t[2];
  for(int i = 0; i < 2; i++)
    ASSERT_OK(pthread_create(&t[i], NULL, drain_loop, &w));
  ASSERT_OK(sq_wq_shutdown_drain(q, 30000));
  int handled = atomic_load(&w.handled);
  ASSERT_EQ(handled, 20); /* every queued key, not "delayed" */
  ASSERT_EQ(sq_wq_add(q, "late"), SQ_ECANCELED);
  for(int i = 0; i < 2; i++)
    pthread_join(t[i], NULL);
  ASSERT(atomic_load(&w.exited));
  sq_wq_stats st;
  sq_wq_stats_get(q, &st);
  ASSERT_EQ(st.keys, 0);
  sq_wq_free(q);
}

TEST(shutdown_drain_times_out_on_stuck_worker) {
  sq_wq *q = new_queue(NULL, 0);
  char k[SQ_WQ_KEY_MAX];
  ASSERT_OK(sq_wq_add(q, "stuck"));
  ASSERT_OK(sq_wq_try_get(q, k, sizeof k));
  int64_t t0 = sq_mono_ms();
  ASSERT_EQ(sq_wq_shutdown_drain(q, 50), SQ_ETIMEOUT);
  ASSERT_GE(sq_mono_ms() - t0, 50);
  ASSERT_EQ(sq_wq_try_get(q, k, sizeof k), SQ_ECANCELED);
  ASSERT_OK(sq_wq_done(q, "stuck"));
  sq_wq_free(q);
}

/* ---- metrics ------------------------------------------------------------- */

TEST(metrics_with_fake_clock) {
  fake_clock f;
  fake_init(&f, 5000);
  sq_wq *q = new_queue(&f, 0);
  char k[SQ_WQ_KEY_MAX];
  sq_wq_stats st;
  ASSERT_OK(sq_wq_add(q, "a"));
  ASSERT_OK(sq_wq_add(q, "a"));
  fake_advance(&f, 250);
  ASSERT_OK(sq_wq_add(q, "b"));
  sq_wq_stats_get(q, &st);
  ASSERT_EQ(st.depth, 2);
  ASSERT_EQ(st.adds_total, 2);
  ASSERT_STR_EQ(take(q, k), "a"); /* waited 250 ms */
  ASSERT_STR_EQ(take(q, k), "b"); /* waited 0 ms */
  fake_advance(&f, 1500);
  sq_wq_stats_get(q, &st);
  ASSERT_EQ(st.depth, 0);
  ASSERT_EQ(st.processing, 2);
  ASSERT_EQ(st.queue_duration.count, 2);
  ASSERT(st.queue_duration.sum > 0.2499 && st.queue_duration.sum < 0.2501);
  ASSERT_EQ(st.queue_duration.le[0], 1);  /* the 0 s wait <= 1e-8 */
  ASSERT_EQ(st.queue_duration.le[7], 1);  /* 0.25 > 0.1 */
  ASSERT_EQ(st.queue_duration.le[8], 2);  /* 0.25 <= 1 */
  ASSERT_EQ(st.queue_duration.le[11], 2); /* cumulative to the top */
  ASSERT(st.unfinished_work_seconds > 2.999 && st.unfinished_work_seconds < 3.001);
  ASSERT(st.longest_running_processor_seconds > 1.499 &&
         st.longest_running_processor_seconds < 1.501);
  ASSERT_OK(sq_wq_done(q, "a"));
  fake_advance(&f, 500);
  sq_wq_stats_get(q, &st);
  ASSERT(st.longest_running_processor_seconds > 1.999 &&
         st.longest_running_processor_seconds < 2.001);
  ASSERT_OK(sq_wq_done(q, "b"));
  sq_wq_stats_get(q, &st);
  ASSERT_EQ(st.work_duration.count, 2);
  ASSERT(st.work_duration.sum > 3.499 && st.work_duration.sum < 3.501); /* 1.5 + 2.0 */
  ASSERT_EQ(st.work_duration.le[8], 0);
  ASSERT_EQ(st.work_duration.le[9], 2);
  ASSERT(st.unfinished_work_seconds == 0.0);
  ASSERT(st.longest_running_processor_seconds == 0.0);
  ASSERT_EQ(st.retries_total, 0);
  sq_wq_free(q);
}

TEST(depth_counts_due_delayed_keys) {
  fake_clock f;
  fake_init(&f, 0);
  sq_wq *q = new_queue(&f, 0);
  sq_wq_stats st;
  ASSERT_OK(sq_wq_add_after(q, "d", 10));
  sq_wq_stats_get(q, &st);
  ASSERT_EQ(st.depth, 0);
  ASSERT_EQ(st.delayed, 1);
  fake_advance(&f, 10);
  sq_wq_stats_get(q, &st);
  ASSERT_EQ(st.depth, 1);
  ASSERT_EQ(st.delayed, 0);
  ASSERT_EQ(st.adds_total, 1);
  ASSERT_EQ(st.retries_total, 1);
  sq_wq_free(q);
}

/* ---- memory bound -------------------------------------------------------- */

TEST(entries_freed_when_keys_go_idle) {
  fake_clock f;
  fake_init(&f, 0);
  sq_wq *q = new_queue(&f, -1);
  char key[32], k[SQ_WQ_KEY_MAX];
  sq_wq_stats st;
  enum { N = 20000 };
  for(int i = 0; i < N; i++) {
    snprintf(key, sizeof key, "SqlDatabase/ns/db-%d", i);
    ASSERT_OK(sq_wq_add(q, key));
    if(i % 3 == 0)
      ASSERT_OK(sq_wq_add_after(q, key, 10 + i % 7));
    if(i % 5 == 0)
      ASSERT_OK(sq_wq_add_rate_limited(q, key, NULL));
  }
  sq_wq_stats_get(q, &st);
  ASSERT_EQ(st.keys, N);
  ASSERT_EQ(st.depth, N);
  fake_advance(&f, 100);
  int served = 0;
  while(sq_wq_try_get(q, k, sizeof k) == SQ_OK) {
    served++;
    ASSERT_OK(sq_wq_done(q, k));
    sq_wq_forget(q, k);
  }
  ASSERT_EQ(served, N); /* delayed re-adds of served keys came due before */
  sq_wq_stats_get(q, &st);
  ASSERT_EQ(st.keys, 0);
  ASSERT_EQ(st.delayed, 0);
  ASSERT_EQ(st.depth, 0);
  /* the table shrank back and still works */
  ASSERT_OK(sq_wq_add(q, "again"));
  ASSERT_STR_EQ(take(q, k), "again");
  ASSERT_OK(sq_wq_done(q, "again"));
  sq_wq_free(q);
}

TEST(free_with_everything_outstanding) {
  /* ASan's leak check is the assertion: queued, processing, dirty, delayed
   * and failed entries are all released by sq_wq_free */
  fake_clock f;
  fake_init(&f, 0);
  sq_wq *q = new_queue(&f, 0);
  char k[SQ_WQ_KEY_MAX];
  ASSERT_OK(sq_wq_add(q, "p"));
  ASSERT_STR_EQ(take(q, k), "p");
  ASSERT_OK(sq_wq_add(q, "p"));
  ASSERT_OK(sq_wq_add(q, "q"));
  ASSERT_OK(sq_wq_add_after(q, "d", 100));
  ASSERT_OK(sq_wq_add_rate_limited(q, "r", NULL));
  sq_wq_stats st;
  sq_wq_stats_get(q, &st);
  ASSERT_EQ(st.keys, 4);
  sq_wq_free(q);
  sq_wq_free(NULL);
}

/* ---- concurrency --------------------------------------------------------- */

enum { ST_KEYS = 16, ST_WORKERS = 8, ST_TARGET = 20000 };

typedef struct stress {
  sq_wq *q;
  atomic_int inflight[ST_KEYS];
  atomic_int max_inflight;
  atomic_long added_gen[ST_KEYS]; /* bumped before each add */
  atomic_long seen_gen[ST_KEYS];  /* added_gen read when processing starts */
  atomic_int stop;                /* no more adds */
  atomic_int adding;              /* adds in progress */
  atomic_long processed;
} stress;

static unsigned rnd(unsigned *s) {
  *s = *s * 1103515245u + 12345u;
  return *s >> 16;
}

/* Adds key i unless the test is stopping; 0 once stopped. The adding count
 * lets the main thread wait until no add is half-way through. */
static int stress_add(stress *s, int i) {
  atomic_fetch_add(&s->adding, 1);
  int ok = !atomic_load(&s->stop);
  if(ok) {
    char key[16];
    snprintf(key, sizeof key, "ns/obj%d", i);
    atomic_fetch_add(&s->added_gen[i], 1);
    sq_wq_add(s->q, key);
  }
  atomic_fetch_sub(&s->adding, 1);
  return ok;
}

static void *stress_worker(void *p) {
  stress *s = p;
  unsigned seed = (unsigned)(uintptr_t)&seed;
  char k[SQ_WQ_KEY_MAX];
  while(sq_wq_get(s->q, k, sizeof k) == SQ_OK) {
    int i = atoi(k + strlen("ns/obj"));
    int mine = atomic_fetch_add(&s->inflight[i], 1) + 1;
    int m = atomic_load(&s->max_inflight);
    while(mine > m && !atomic_compare_exchange_weak(&s->max_inflight, &m, mine)) {
    }
    atomic_store(&s->seen_gen[i], atomic_load(&s->added_gen[i]));
    unsigned r = rnd(&seed);
    if(r % 3 == 0)
      stress_add(s, i); /* re-add itself while held: must not run twice */
    if(r % 4 == 0)
      stress_add(s, (int)(rnd(&seed) % ST_KEYS));
    for(unsigned y = r % 4; y > 0; y--)
      sched_yield(); /* widen the window in which a second worker could slip in */
    atomic_fetch_sub(&s->inflight[i], 1);
    atomic_fetch_add(&s->processed, 1);
    sq_wq_done(s->q, k);
  }
  return NULL;
}

static void *stress_producer(void *p) {
  stress *s = p;
  unsigned seed = (unsigned)(uintptr_t)&seed;
  while(stress_add(s, (int)(rnd(&seed) % ST_KEYS)))
    if(rnd(&seed) % 16 == 0)
      sched_yield();
  return NULL;
}

TEST(stress_one_worker_per_key_and_no_lost_adds) {
  static stress s;
  memset(&s, 0, sizeof s);
  s.q = new_queue(NULL, 0);
  pthread_t w[ST_WORKERS], p[2];
  for(int i = 0; i < ST_WORKERS; i++)
    ASSERT_OK(pthread_create(&w[i], NULL, stress_worker, &s));
  for(int i = 0; i < 2; i++)
    ASSERT_OK(pthread_create(&p[i], NULL, stress_producer, &s));
  for(int i = 0; i < 6000 && atomic_load(&s.processed) < ST_TARGET; i++)
    sq_sleep_ms(10);
  atomic_store(&s.stop, 1);
  for(int i = 0; i < 2; i++)
    pthread_join(p[i], NULL);
  /* wait for adds still inside sq_wq_add */
  for(int i = 0; i < 6000 && atomic_load(&s.adding); i++)
    sq_sleep_ms(5);
  int adding = atomic_load(&s.adding);
  ASSERT_EQ(adding, 0);
  /* drain = wait for quiescence: nothing queued, nothing processing */
  ASSERT_OK(sq_wq_shutdown_drain(s.q, 60000));
  for(int i = 0; i < ST_WORKERS; i++)
    pthread_join(w[i], NULL);
  long processed = atomic_load(&s.processed);
  printf("  stress: %ld keys processed by %d workers\n", processed, ST_WORKERS);
  int max_inflight = atomic_load(&s.max_inflight);
  ASSERT_EQ(max_inflight, 1);
  ASSERT_GE(processed, ST_TARGET);
  /* every add was followed by a processing that saw it */
  for(int i = 0; i < ST_KEYS; i++) {
    long seen = atomic_load(&s.seen_gen[i]), added = atomic_load(&s.added_gen[i]);
    ASSERT_EQ(seen, added);
  }
  sq_wq_stats st;
  sq_wq_stats_get(s.q, &st);
  ASSERT_EQ(st.keys, 0);
  ASSERT_EQ(st.work_duration.count, (uint64_t)processed);
  sq_wq_free(s.q);
}

/* ---- heap ---------------------------------------------------------------- */

TEST(heap_random_against_reference) {
  enum { N = 500 };
  static sq_heap_node nodes[N];
  static int64_t ref[N]; /* INT64_MIN when not a member */
  sq_heap h;
  sq_heap_init(&h);
  unsigned seed = 7;
  for(int i = 0; i < N; i++) {
    sq_heap_node_init(&nodes[i]);
    ref[i] = INT64_MIN;
  }
  for(int step = 0; step < 20000; step++) {
    int i = (int)(rnd(&seed) % N);
    int64_t when = (int64_t)(rnd(&seed) % 1000);
    switch(rnd(&seed) % 4) {
    case 0:
    case 1:
      if(!sq_heap_member(&nodes[i])) {
        ASSERT_OK(sq_heap_push(&h, &nodes[i], when));
        ref[i] = when;
      } else {
        sq_heap_rekey(&h, &nodes[i], when);
        ref[i] = when;
      }
      break;
    case 2:
      sq_heap_remove(&h, &nodes[i]);
      ASSERT(!sq_heap_member(&nodes[i]));
      ref[i] = INT64_MIN;
      break;
    default: {
      sq_heap_node *top = sq_heap_pop(&h);
      int64_t min = INT64_MAX;
      for(int j = 0; j < N; j++)
        if(ref[j] != INT64_MIN && ref[j] < min)
          min = ref[j];
      if(!top) {
        ASSERT_EQ(min, INT64_MAX);
        break;
      }
      int j = (int)(top - nodes);
      ASSERT_EQ(ref[j], min);
      ASSERT_EQ(top->when, min);
      ASSERT(!sq_heap_member(top));
      ref[j] = INT64_MIN;
    }
    }
  }
  /* what is left comes out sorted, ties in insertion order */
  int64_t last = INT64_MIN;
  uint64_t last_seq = 0;
  sq_heap_node *n;
  while((n = sq_heap_pop(&h))) {
    ASSERT(n->when > last || (n->when == last && n->seq > last_seq));
    last = n->when;
    last_seq = n->seq;
    ref[n - nodes] = INT64_MIN;
  }
  for(int j = 0; j < N; j++)
    ASSERT_EQ(ref[j], INT64_MIN);
  sq_heap_free(&h);
}

TEST(heap_ties_are_fifo) {
  sq_heap h;
  sq_heap_init(&h);
  sq_heap_node n[40];
  for(int i = 0; i < 40; i++) {
    sq_heap_node_init(&n[i]);
    ASSERT_OK(sq_heap_push(&h, &n[i], i % 2 ? 5 : 3));
  }
  for(int i = 0; i < 40; i++) {
    sq_heap_node *top = sq_heap_pop(&h);
    int want = i < 20 ? 2 * i : 2 * (i - 20) + 1;
    ASSERT_EQ(top - n, want);
  }
  ASSERT_NULL(sq_heap_pop(&h));
  sq_heap_free(&h);
}

TEST_MAIN()
