/* test_events.c — the pure Event aggregation and spam filter on a fake
 * clock, the keys, and the recorder's bounded queue (without I/O). */
#include <string.h>

#include "sqltde/kube/events.h"
#include "test.h"

static const sq_evagg_config CFG = {
    .window_ms = 60000, .patch_ms = 10000, .burst = 5, .refill_ms = 30000, .max_entries = 64};

static sq_evagg *new_agg(const sq_evagg_config *cfg) {
  sq_evagg *a = NULL;
  if(sq_evagg_new(cfg, &a))
    return NULL;
  return a;
}

/* Series key for object obj with the given reason/note. */
static char *skey(const char *obj, const char *reason, const char *note) {
  sq_event_ref ref = {"sqltde.io/v1alpha1", "SqlDatabase", "ns1", obj, "uid-1"};
  return sq_event_series_key(&ref, SQ_EVENT_WARNING, reason, "Reconcile", note);
}
static char *okey(const char *obj) {
  sq_event_ref ref = {"sqltde.io/v1alpha1", "SqlDatabase", "ns1", obj, "uid-1"};
  return sq_event_obj_key(&ref);
}

static sq_evagg_verdict obs(sq_evagg *a, const char *obj, const char *reason, const char *note,
                            int64_t now, sq_evagg_entry **e) {
  char *o = okey(obj), *s = skey(obj, reason, note);
  sq_evagg_entry *dummy;
  sq_evagg_verdict v = sq_evagg_observe(a, o, s, now, now * 1000, e ? e : &dummy);
  free(o);
  free(s);
  return v;
}

TEST(keys_separate_what_differs) {
  sq_event_ref r1 = {"v1", "ConfigMap", "ns", "a", "u1"};
  sq_event_ref r2 = {"v1", "ConfigMap", "ns", "a", "u2"}; /* same name, recreated object */
  char *k1 = sq_event_series_key(&r1, SQ_EVENT_NORMAL, "R", "A", "note");
  char *k1b = sq_event_series_key(&r1, SQ_EVENT_NORMAL, "R", "A", "note");
  char *k2 = sq_event_series_key(&r2, SQ_EVENT_NORMAL, "R", "A", "note");
  char *k3 = sq_event_series_key(&r1, SQ_EVENT_WARNING, "R", "A", "note");
  char *k4 = sq_event_series_key(&r1, SQ_EVENT_NORMAL, "R2", "A", "note");
  char *k5 = sq_event_series_key(&r1, SQ_EVENT_NORMAL, "R", "A", "note2");
  char *k6 = sq_event_series_key(&r1, SQ_EVENT_NORMAL, "R", "B", "note");
  /* Joining must not make ("ab","c") equal ("a","bc"). */
  char *k7 = sq_event_series_key(&r1, SQ_EVENT_NORMAL, "Rx", "y", "z");
  char *k8 = sq_event_series_key(&r1, SQ_EVENT_NORMAL, "R", "xy", "z");
  ASSERT_STR_EQ(k1, k1b);
  const char *others[] = {k2, k3, k4, k5, k6};
  for(int i = 0; i < 5; i++)
    ASSERT(strcmp(k1, others[i]) != 0);
  ASSERT(strcmp(k7, k8) != 0);
  char *o1 = sq_event_obj_key(&r1), *o2 = sq_event_obj_key(&r2);
  ASSERT(strcmp(o1, o2) != 0);
  /* The object key does not depend on the reason. */
  ASSERT_EQ(strncmp(k1, o1, strlen(o1)), 0);
  ASSERT_EQ(strncmp(k4, o1, strlen(o1)), 0);
  free(k1), free(k1b), free(k2), free(k3), free(k4), free(k5), free(k6), free(k7), free(k8);
  free(o1), free(o2);
}

TEST(ref_from_object) {
  json_t *o = json_loads("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":"
                         "{\"name\":\"cm\",\"namespace\":\"ns\",\"uid\":\"u\"}}",
                         0, NULL);
  sq_event_ref r;
  sq_event_ref_from_object(o, &r);
  ASSERT_STR_EQ(r.api_version, "v1");
  ASSERT_STR_EQ(r.kind, "ConfigMap");
  ASSERT_STR_EQ(r.namespace, "ns");
  ASSERT_STR_EQ(r.name, "cm");
  ASSERT_STR_EQ(r.uid, "u");
  json_decref(o);
}

TEST(repeats_fold_into_one_series) {
  sq_evagg *a = new_agg(&CFG);
  sq_evagg_entry *e = NULL, *e2 = NULL;
  ASSERT_EQ(obs(a, "db1", "KeyDisabled", "n", 0, &e), SQ_EVAGG_CREATE);
  ASSERT_NOT_NULL(e);
  ASSERT_EQ(e->count, 1);
  ASSERT_EQ(e->written, 0);
  sq_evagg_written(a, e, 1, json_object(), 0);
  /* 49 more within a second: all counted, none written. */
  for(int i = 1; i < 50; i++) {
    ASSERT_EQ(obs(a, "db1", "KeyDisabled", "n", i * 20, &e2), SQ_EVAGG_DEFER);
    ASSERT(e2 == e);
  }
  ASSERT_EQ(e->count, 50);
  ASSERT_EQ(e->written, 1);
  ASSERT_EQ(e->last_wall_us, 49 * 20 * 1000);
  ASSERT_EQ(sq_evagg_series_count(a), 1);

  /* Nothing due before the patch interval; exactly this one after it. */
  sq_evagg_entry *due[4];
  ASSERT_EQ(sq_evagg_next_due_ms(a), 10000);
  ASSERT_EQ(sq_evagg_due(a, 9999, 0, due, 4), 0);
  ASSERT_EQ(sq_evagg_due(a, 10000, 0, due, 4), 1);
  ASSERT(due[0] == e);
  /* force ignores the interval (flush / shutdown). */
  ASSERT_EQ(sq_evagg_due(a, 1, 1, due, 4), 1);
  sq_evagg_written(a, e, 50, NULL, 10000);
  ASSERT_EQ(sq_evagg_due(a, 99999, 1, due, 4), 0);
  ASSERT_EQ(sq_evagg_next_due_ms(a), INT64_MAX);

  /* A repeat after the interval is patched straight away. */
  ASSERT_EQ(obs(a, "db1", "KeyDisabled", "n", 20000, &e2), SQ_EVAGG_PATCH);
  ASSERT(e2 == e);
  ASSERT_EQ(e->count, 51);
  sq_evagg_written(a, e, 51, NULL, 20000);
  /* ...and one soon after that waits again. */
  ASSERT_EQ(obs(a, "db1", "KeyDisabled", "n", 21000, NULL), SQ_EVAGG_DEFER);
  ASSERT_EQ(sq_evagg_next_due_ms(a), 30000);
  sq_evagg_free(a);
}

TEST(failed_write_retries_after_interval) {
  sq_evagg *a = new_agg(&CFG);
  sq_evagg_entry *e, *due[2];
  ASSERT_EQ(obs(a, "db1", "R", "n", 0, &e), SQ_EVAGG_CREATE);
  sq_evagg_written(a, e, 1, json_object(), 0);
  obs(a, "db1", "R", "n", 100, NULL);
  ASSERT_EQ(sq_evagg_due(a, 10000, 0, due, 2), 1);
  sq_evagg_write_failed(a, due[0], 10000);
  ASSERT_EQ(sq_evagg_due(a, 15000, 0, due, 2), 0);
  ASSERT_EQ(sq_evagg_next_due_ms(a), 20000);
  ASSERT_EQ(sq_evagg_due(a, 20000, 0, due, 2), 1);
  sq_evagg_free(a);
}

TEST(different_reasons_or_notes_are_different_series) {
  sq_evagg *a = new_agg(&CFG);
  sq_evagg_entry *e1, *e2, *e3;
  ASSERT_EQ(obs(a, "db1", "R1", "n", 0, &e1), SQ_EVAGG_CREATE);
  ASSERT_EQ(obs(a, "db1", "R2", "n", 0, &e2), SQ_EVAGG_CREATE);
  ASSERT_EQ(obs(a, "db1", "R1", "other note", 0, &e3), SQ_EVAGG_CREATE);
  ASSERT(e1 != e2 && e1 != e3 && e2 != e3);
  ASSERT_EQ(sq_evagg_series_count(a), 3);
  sq_evagg_free(a);
}

TEST(series_ends_after_idle_window) {
  sq_evagg *a = new_agg(&CFG);
  sq_evagg_entry *e;
  ASSERT_EQ(obs(a, "db1", "R", "n", 0, &e), SQ_EVAGG_CREATE);
  sq_evagg_written(a, e, 1, json_object(), 0);
  ASSERT_EQ(obs(a, "db1", "R", "n", 59999, NULL), SQ_EVAGG_PATCH); /* still the series */
  sq_evagg_written(a, e, 2, NULL, 59999);
  /* Idle a full window after the last occurrence: a new Event object. */
  ASSERT_EQ(obs(a, "db1", "R", "n", 59999 + 60000, &e), SQ_EVAGG_CREATE);
  ASSERT_EQ(e->count, 1);
  sq_evagg_free(a);
}

TEST(expire_keeps_unwritten_counts) {
  sq_evagg *a = new_agg(&CFG);
  sq_evagg_entry *e, *f;
  ASSERT_EQ(obs(a, "db1", "R", "n", 0, &e), SQ_EVAGG_CREATE);
  sq_evagg_written(a, e, 1, json_object(), 0);
  obs(a, "db1", "R", "n", 5, NULL); /* pending: count 2, written 1 */
  ASSERT_EQ(obs(a, "db1", "Other", "n", 0, &f), SQ_EVAGG_CREATE);
  sq_evagg_written(a, f, 1, json_object(), 0);
  sq_evagg_expire(a, 100000);
  /* The written-up series ended; the pending one stays until flushed. */
  ASSERT_EQ(sq_evagg_series_count(a), 1);
  sq_evagg_entry *due[2];
  ASSERT_EQ(sq_evagg_due(a, 100000, 0, due, 2), 1);
  ASSERT(due[0] == e);
  sq_evagg_written(a, e, 2, NULL, 100000);
  sq_evagg_expire(a, 100000 + 60000);
  ASSERT_EQ(sq_evagg_series_count(a), 0);
  sq_evagg_free(a);
}

TEST(spam_filter_caps_new_objects_per_regarding) {
  sq_evagg *a = new_agg(&CFG); /* burst 5, 1 token / 30 s */
  char note[32];
  sq_evagg_entry *e;
  int created = 0, spam = 0;
  for(int i = 0; i < 20; i++) {
    snprintf(note, sizeof note, "attempt %d", i);
    sq_evagg_verdict v = obs(a, "bad", "Failed", note, i, &e);
    if(v == SQ_EVAGG_CREATE) {
      created++;
      sq_evagg_written(a, e, 1, json_object(), i);
    } else {
      ASSERT_EQ(v, SQ_EVAGG_SPAM);
      ASSERT_NULL(e);
      spam++;
    }
  }
  ASSERT_EQ(created, 5);
  ASSERT_EQ(spam, 15);
  char *ok = okey("bad");
  ASSERT_EQ(sq_evagg_tokens(a, ok, 20), 0);

  /* Repeats of an existing series cost nothing, even with an empty bucket. */
  ASSERT_EQ(obs(a, "bad", "Failed", "attempt 0", 30, NULL), SQ_EVAGG_DEFER);
  /* Another object has its own bucket. */
  ASSERT_EQ(obs(a, "good", "Failed", "x", 30, NULL), SQ_EVAGG_CREATE);

  /* One token per refill period... */
  ASSERT_EQ(obs(a, "bad", "Failed", "new 1", 29999, NULL), SQ_EVAGG_SPAM);
  ASSERT_EQ(sq_evagg_tokens(a, ok, 30000), 1);
  ASSERT_EQ(obs(a, "bad", "Failed", "new 2", 30000, NULL), SQ_EVAGG_CREATE);
  ASSERT_EQ(obs(a, "bad", "Failed", "new 3", 30001, NULL), SQ_EVAGG_SPAM);
  /* ...partial periods are not lost: the next token comes at 60 s. */
  ASSERT_EQ(sq_evagg_tokens(a, ok, 59999), 0);
  ASSERT_EQ(sq_evagg_tokens(a, ok, 60000), 1);
  /* ...and never more than the burst. */
  ASSERT_EQ(sq_evagg_tokens(a, ok, 10000000), 5);
  free(ok);
  sq_evagg_free(a);
}

TEST(expire_forgets_full_buckets) {
  sq_evagg *a = new_agg(&CFG);
  sq_evagg_entry *e;
  ASSERT_EQ(obs(a, "x", "R", "n", 0, &e), SQ_EVAGG_CREATE);
  sq_evagg_written(a, e, 1, json_object(), 0);
  char *ok = okey("x");
  ASSERT_EQ(sq_evagg_tokens(a, ok, 0), 4);
  sq_evagg_expire(a, 29999);
  ASSERT_EQ(sq_evagg_tokens(a, ok, 29999), 4); /* not refilled yet: kept */
  sq_evagg_expire(a, 30000);
  ASSERT_EQ(sq_evagg_tokens(a, ok, 30000), 5);
  free(ok);
  sq_evagg_free(a);
}

TEST(lru_bound_on_series) {
  sq_evagg_config c = CFG;
  c.max_entries = 4;
  c.burst = 100;
  sq_evagg *a = new_agg(&c);
  char reason[16];
  sq_evagg_entry *e;
  for(int i = 0; i < 6; i++) {
    snprintf(reason, sizeof reason, "R%d", i);
    ASSERT_EQ(obs(a, "o", reason, "n", i, &e), SQ_EVAGG_CREATE);
    sq_evagg_written(a, e, 1, json_object(), i);
    ASSERT_LE(sq_evagg_series_count(a), 4);
  }
  ASSERT_EQ(sq_evagg_series_count(a), 4);
  ASSERT_EQ(sq_evagg_evicted(a), 2);
  /* R0 and R1 were the least recent: they start over; R5 is still a series. */
  ASSERT_EQ(obs(a, "o", "R5", "n", 10, NULL), SQ_EVAGG_DEFER);
  ASSERT_EQ(obs(a, "o", "R0", "n", 10, NULL), SQ_EVAGG_CREATE);
  sq_evagg_free(a);
}

TEST(defaults_match_client_go) {
  sq_evagg *a = new_agg(NULL);
  char *ok = okey("o");
  ASSERT_EQ(sq_evagg_tokens(a, ok, 0), 25);
  char note[16];
  int created = 0;
  for(int i = 0; i < 30; i++) {
    snprintf(note, sizeof note, "%d", i);
    if(obs(a, "o", "R", note, 0, NULL) == SQ_EVAGG_CREATE)
      created++;
  }
  ASSERT_EQ(created, 25);
  ASSERT_EQ(sq_evagg_tokens(a, ok, 5 * 60 * 1000 - 1), 0);
  ASSERT_EQ(sq_evagg_tokens(a, ok, 5 * 60 * 1000), 1);
  free(ok);
  sq_evagg_free(a);
}

/* The recorder's queue is bounded and never blocks: emitting into a
 * recorder whose writer has not started fills it, then drops and counts. */
TEST(recorder_queue_drops_when_full) {
  sq_events *r = NULL;
  sq_events_config cfg;
  sq_err e;
  memset(&cfg, 0, sizeof cfg);
  ASSERT_EQ(sq_events_new(NULL, &cfg, &r, &e), SQ_EINVAL); /* identity required */
  ASSERT_STR_CONTAINS(e.message, "reporting instance");
  cfg.reporting_instance = "host_0123";
  cfg.queue_max = 4;
  ASSERT_OK(sq_events_new(NULL, &cfg, &r, &e));
  sq_event_ref ref = {"v1", "ConfigMap", "ns", "cm", "u"};
  int ok = 0, dropped = 0;
  for(int i = 0; i < 10; i++) {
    sq_code rc = sq_events_emitf(r, &ref, SQ_EVENT_NORMAL, "Tested", "Test", "n %d", i);
    if(rc == SQ_OK)
      ok++;
    else {
      ASSERT_EQ(rc, SQ_ETOOBIG);
      dropped++;
    }
  }
  ASSERT_EQ(ok, 4);
  ASSERT_EQ(dropped, 6);
  /* Missing required fields are refused, not queued. */
  ASSERT_EQ(sq_events_emit(r, &ref, SQ_EVENT_NORMAL, "", "Test", "n"), SQ_EINVAL);
  ASSERT_EQ(sq_events_emit(r, &ref, SQ_EVENT_NORMAL, "R", NULL, "n"), SQ_EINVAL);
  sq_event_ref noname = {"v1", "ConfigMap", "ns", NULL, NULL};
  ASSERT_EQ(sq_events_emit(r, &noname, SQ_EVENT_NORMAL, "R", "A", "n"), SQ_EINVAL);
  sq_events_stats st;
  sq_events_get_stats(r, &st);
  ASSERT_EQ(st.emitted, 4);
  ASSERT_EQ(st.dropped_queue, 6);
  ASSERT_EQ(st.dropped_other, 3);
  ASSERT_EQ(st.creates, 0);
  ASSERT_EQ(sq_events_flush(r, 10), SQ_ESTATE); /* not started */
  ASSERT_EQ(sq_events_start(r, &e), SQ_EINVAL);  /* no client */
  sq_events_free(r); /* frees queued items (ASan checks) */
}

TEST_MAIN()
