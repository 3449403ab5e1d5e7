/* Unit tests for the condition writer and the kstatus helpers. Time comes
 * from a fake sq_clock, so every lastTransitionTime is predictable. */
#include "sqltde/clock.h"
#include "sqltde/jsonx.h"
#include "sqltde/kube/conditions.h"
#include "test.h"

typedef struct fake_wall {
  int64_t s;
  sq_clock c;
} fake_wall;

static int64_t fw_mono(void *ud) { return ((fake_wall *)ud)->s * 1000; }
static int64_t fw_wall(void *ud) { return ((fake_wall *)ud)->s; }

static void fw_init(fake_wall *f, int64_t s) {
  f->s = s;
  f->c = (sq_clock){fw_mono, fw_wall, f};
}
static int64_t fw_now(const fake_wall *f) { return f->c.wall_s(f->c.ud); }

static const char *field(const json_t *conds, const char *type, const char *key) {
  return json_string_value(json_object_get(sq_cond_find(conds, type), key));
}

static int64_t gen_of(const json_t *conds, const char *type) {
  json_t *g = json_object_get(sq_cond_find(conds, type), "observedGeneration");
  return json_is_integer(g) ? (int64_t)json_integer_value(g) : -1;
}

static json_t *parse(const char *s) {
  json_t *v = NULL;
  if(sq_json_parse(s, strlen(s), "test", &v, NULL))
    return NULL;
  return v;
}

static char *rfc(int64_t t) {
  static char buf[4][32];
  static int i;
  char *b = buf[i++ % 4];
  sq_rfc3339(t, b, 32);
  return b;
}

/* 1 if s is well-formed UTF-8 (jansson refuses anything else) */
static int valid_utf8(const char *s) {
  json_t *j = json_string(s);
  json_decref(j);
  return j != NULL;
}

TEST(status_names) {
  ASSERT_STR_EQ(sq_cond_status_name(SQ_COND_TRUE), "True");
  ASSERT_STR_EQ(sq_cond_status_name(SQ_COND_FALSE), "False");
  ASSERT_STR_EQ(sq_cond_status_name(SQ_COND_UNKNOWN), "Unknown");
  ASSERT_NULL(sq_cond_status_name(SQ_COND_ABSENT));
  ASSERT_NULL(sq_cond_status_name((sq_cond_status)7));
}

TEST(insert_sets_every_field) {
  fake_wall f;
  fw_init(&f, 1700000000);
  json_t *conds = json_array();
  int changed = -1;
  ASSERT_OK(sq_cond_set(conds, "Replicated", SQ_COND_FALSE, "KeyMissing", "key absent in vault b",
                        3, fw_now(&f), &changed, NULL));
  ASSERT_EQ(changed, 1);
  ASSERT_EQ(json_array_size(conds), 1);
  char *s = sq_json_dump(conds);
  ASSERT_STR_EQ(s, "[{\"lastTransitionTime\":\"2023-11-14T22:13:20Z\",\"message\":\"key absent "
                   "in vault b\",\"observedGeneration\":3,\"reason\":\"KeyMissing\","
                   "\"status\":\"False\",\"type\":\"Replicated\"}]");
  free(s);
  json_decref(conds);
}

TEST(transition_time_moves_only_on_flip) {
  fake_wall f;
  fw_init(&f, 1700000000);
  json_t *conds = json_array();
  int changed;
  int64_t t0 = fw_now(&f);
  ASSERT_OK(sq_cond_set(conds, "Ready", SQ_COND_FALSE, "Pending", "m1", 1, t0, &changed, NULL));
  ASSERT_EQ(changed, 1);

  /* identical call later: nothing to write */
  f.s += 60;
  ASSERT_OK(
      sq_cond_set(conds, "Ready", SQ_COND_FALSE, "Pending", "m1", 1, fw_now(&f), &changed, NULL));
  ASSERT_EQ(changed, 0);
  ASSERT_STR_EQ(field(conds, "Ready", "lastTransitionTime"), rfc(t0));

  /* reason, message and generation update without moving the time */
  f.s += 60;
  ASSERT_OK(
      sq_cond_set(conds, "Ready", SQ_COND_FALSE, "Waiting", "m1", 1, fw_now(&f), &changed, NULL));
  ASSERT_EQ(changed, 1);
  ASSERT_STR_EQ(field(conds, "Ready", "reason"), "Waiting");
  ASSERT_OK(
      sq_cond_set(conds, "Ready", SQ_COND_FALSE, "Waiting", "m2", 1, fw_now(&f), &changed, NULL));
  ASSERT_EQ(changed, 1);
  ASSERT_STR_EQ(field(conds, "Ready", "message"), "m2");
  ASSERT_OK(
      sq_cond_set(conds, "Ready", SQ_COND_FALSE, "Waiting", "m2", 2, fw_now(&f), &changed, NULL));
  ASSERT_EQ(changed, 1);
  ASSERT_EQ(gen_of(conds, "Ready"), 2);
  ASSERT_STR_EQ(field(conds, "Ready", "lastTransitionTime"), rfc(t0));

  /* a flip moves it */
  f.s += 60;
  int64_t t1 = fw_now(&f);
  ASSERT_OK(sq_cond_set(conds, "Ready", SQ_COND_TRUE, "Succeeded", "ok", 2, t1, &changed, NULL));
  ASSERT_EQ(changed, 1);
  ASSERT_STR_EQ(field(conds, "Ready", "status"), "True");
  ASSERT_STR_EQ(field(conds, "Ready", "lastTransitionTime"), rfc(t1));

  /* and Unknown counts as a status of its own */
  f.s += 5;
  int64_t t2 = fw_now(&f);
  ASSERT_OK(sq_cond_set(conds, "Ready", SQ_COND_UNKNOWN, "Checking", "", 2, t2, &changed, NULL));
  ASSERT_EQ(changed, 1);
  ASSERT_STR_EQ(field(conds, "Ready", "lastTransitionTime"), rfc(t2));
  ASSERT_EQ(json_array_size(conds), 1);
  json_decref(conds);
}

TEST(no_change_detection_with_foreign_conditions_and_fields) {
  /* conditions written by someone else (or another kind of ours) and
   * unknown fields are left alone, and do not count as changes */
  json_t *conds = parse("[{\"type\":\"example.com/Healthy\",\"status\":\"True\","
                        "\"lastTransitionTime\":\"2024-01-01T00:00:00Z\",\"reason\":\"Fine\","
                        "\"message\":\"\"},"
                        "{\"type\":\"Ready\",\"status\":\"True\",\"observedGeneration\":4,"
                        "\"lastTransitionTime\":\"2024-02-02T10:00:00Z\",\"reason\":\"Done\","
                        "\"message\":\"all good\",\"x-extra\":1}]");
  ASSERT_NOT_NULL(conds);
  char *before = sq_json_dump(conds);
  int changed = -1;
  ASSERT_OK(sq_cond_set(conds, "Ready", SQ_COND_TRUE, "Done", "all good", 4, 1800000000, &changed,
                        NULL));
  ASSERT_EQ(changed, 0);
  char *after = sq_json_dump(conds);
  ASSERT_STR_EQ(after, before);
  free(before);
  free(after);
  json_decref(conds);
}

TEST(missing_or_bad_transition_time_is_repaired) {
  json_t *conds = parse("[{\"type\":\"Ready\",\"status\":\"True\",\"observedGeneration\":1,"
                        "\"reason\":\"Done\",\"message\":\"\"},"
                        "{\"type\":\"Synced\",\"status\":\"True\",\"observedGeneration\":1,"
                        "\"lastTransitionTime\":\"yesterday\",\"reason\":\"Done\",\"message\":\"\"}]");
  int changed;
  ASSERT_OK(sq_cond_set(conds, "Ready", SQ_COND_TRUE, "Done", "", 1, 1700000000, &changed, NULL));
  ASSERT_EQ(changed, 1);
  ASSERT_STR_EQ(field(conds, "Ready", "lastTransitionTime"), "2023-11-14T22:13:20Z");
  ASSERT_OK(sq_cond_set(conds, "Synced", SQ_COND_TRUE, "Done", "", 1, 1700000000, &changed, NULL));
  ASSERT_EQ(changed, 1);
  ASSERT_STR_EQ(field(conds, "Synced", "lastTransitionTime"), "2023-11-14T22:13:20Z");
  json_decref(conds);
}

TEST(duplicates_and_junk_entries) {
  json_t *conds = parse("[42, {\"status\":\"True\"}, {\"type\":7},"
                        "{\"type\":\"Ready\",\"status\":\"Maybe\"},"
                        "{\"type\":\"Ready\",\"status\":\"True\"}]");
  ASSERT_EQ(sq_cond_get_status(conds, "Ready"), SQ_COND_UNKNOWN); /* first one wins */
  ASSERT(!sq_cond_is_true(conds, "Ready"));
  int changed;
  ASSERT_OK(sq_cond_set(conds, "Ready", SQ_COND_TRUE, "Done", "", 1, 1700000000, &changed, NULL));
  ASSERT_EQ(changed, 1);
  ASSERT_EQ(json_array_size(conds), 4); /* the duplicate went, junk stays */
  ASSERT(sq_cond_is_true(conds, "Ready"));
  /* a same-typed non-object is replaced in place */
  json_t *odd = parse("[{\"type\":\"Ready\",\"status\":\"True\"}]");
  json_decref(conds);
  conds = odd;
  json_array_set_new(conds, 0, json_string("Ready"));
  ASSERT_OK(sq_cond_set(conds, "Ready", SQ_COND_FALSE, "X", "", 1, 1700000000, &changed, NULL));
  ASSERT_EQ(changed, 1);
  ASSERT_EQ(json_array_size(conds), 2);
  ASSERT_EQ(sq_cond_get_status(conds, "Ready"), SQ_COND_FALSE);
  json_decref(conds);
}

TEST(find_remove_and_status) {
  json_t *conds = json_array();
  int changed;
  ASSERT_EQ(sq_cond_get_status(conds, "Ready"), SQ_COND_ABSENT);
  ASSERT_NULL(sq_cond_find(conds, "Ready"));
  ASSERT_EQ(sq_cond_get_status(NULL, "Ready"), SQ_COND_ABSENT);
  ASSERT_OK(sq_cond_set(conds, "Ready", SQ_COND_TRUE, "Done", "", 0, 1, &changed, NULL));
  ASSERT_OK(sq_cond_set(conds, "Stalled", SQ_COND_TRUE, "Stuck", "", 0, 1, &changed, NULL));
  ASSERT_EQ(sq_cond_get_status(conds, "Ready"), SQ_COND_TRUE);
  ASSERT(sq_cond_is_true(conds, "Stalled"));
  sq_cond_remove(conds, "Stalled", &changed);
  ASSERT_EQ(changed, 1);
  ASSERT_EQ(sq_cond_get_status(conds, "Stalled"), SQ_COND_ABSENT);
  sq_cond_remove(conds, "Stalled", &changed);
  ASSERT_EQ(changed, 0);
  ASSERT_EQ(json_array_size(conds), 1);
  sq_cond_remove(NULL, "Ready", &changed); /* total on bad input */
  ASSERT_EQ(changed, 0);
  json_decref(conds);
}

TEST(reason_validation_table) {
  static const struct {
    const char *reason;
    int ok;
  } cases[] = {
      {"A", 1},          {"Ready", 1},       {"KeyNotFound", 1}, {"a1", 1},
      {"Foo_Bar", 1},    {"Foo:Bar1", 1},    {"Foo,Bar_", 1},    {"x_", 1},
      {"", 0},           {"1Abc", 0},        {"_Abc", 0},        {"Foo:", 0},
      {"Foo,", 0},       {"Foo-Bar", 0},     {"Foo Bar", 0},     {"F\xc3\xb6o", 0},
      {"Foo.Bar", 0},    {"Rotation/Blocked", 0},
  };
  for(size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    if(sq_cond_reason_valid(cases[i].reason) != cases[i].ok)
      TEST_FAIL_("reason \"%s\": want %d", cases[i].reason, cases[i].ok);
  }
  ASSERT(!sq_cond_reason_valid(NULL));
  char r[SQ_COND_REASON_MAX + 2];
  memset(r, 'R', sizeof r);
  r[SQ_COND_REASON_MAX] = '\0';
  ASSERT(sq_cond_reason_valid(r));
  r[SQ_COND_REASON_MAX] = 'R';
  r[SQ_COND_REASON_MAX + 1] = '\0';
  ASSERT(!sq_cond_reason_valid(r));
}

TEST(type_validation_table) {
  static const struct {
    const char *type;
    int ok;
  } cases[] = {
      {"Ready", 1},
      {"Replicated", 1},
      {"sqltde.io/KeyReady", 1},
      {"a.b-c", 1},
      {"Foo_bar.x", 1},
      {"9", 1},
      {"", 0},
      {"-Ready", 0},
      {"Ready-", 0},
      {"Example.com/Ready", 0},
      {"/Ready", 0},
      {"a/", 0},
      {"a/b/c", 0},
      {"a..b/Ready", 0},
      {"Has Space", 0},
  };
  for(size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    if(sq_cond_type_valid(cases[i].type) != cases[i].ok)
      TEST_FAIL_("type \"%s\": want %d", cases[i].type, cases[i].ok);
  }
  char t[80];
  memset(t, 'T', 63);
  t[63] = '\0';
  ASSERT(sq_cond_type_valid(t));
  t[63] = 'T';
  t[64] = '\0';
  ASSERT(!sq_cond_type_valid(t));
  ASSERT(!sq_cond_type_valid(NULL));
}

TEST(bad_input_leaves_conditions_untouched) {
  json_t *conds = parse("[{\"type\":\"Ready\",\"status\":\"True\",\"observedGeneration\":1,"
                        "\"lastTransitionTime\":\"2024-01-01T00:00:00Z\",\"reason\":\"Done\","
                        "\"message\":\"\"}]");
  char *before = sq_json_dump(conds);
  int changed = -1;
  sq_err e;
  sq_err_clear(&e);
  ASSERT_EQ(sq_cond_set(conds, "Ready", SQ_COND_FALSE, "not-camel", "m", 1, 5, &changed, &e),
            SQ_EINVAL);
  ASSERT_EQ(changed, 0);
  ASSERT_STR_CONTAINS(e.message, "reason");
  ASSERT_EQ(sq_cond_set(conds, "Ready", SQ_COND_FALSE, NULL, "m", 1, 5, &changed, NULL),
            SQ_EINVAL);
  ASSERT_EQ(sq_cond_set(conds, "bad type", SQ_COND_FALSE, "R", "m", 1, 5, &changed, NULL),
            SQ_EINVAL);
  ASSERT_EQ(sq_cond_set(conds, "Ready", (sq_cond_status)9, "R", "m", 1, 5, &changed, NULL),
            SQ_EINVAL);
  ASSERT_EQ(sq_cond_set(conds, "Ready", SQ_COND_ABSENT, "R", "m", 1, 5, &changed, NULL),
            SQ_EINVAL);
  ASSERT_EQ(sq_cond_set(conds, "Ready", SQ_COND_FALSE, "R", "m", -1, 5, &changed, NULL),
            SQ_EINVAL);
  ASSERT_EQ(sq_cond_set_stalled(conds, "Bad Reason", "m", 1, 5, &changed, NULL), SQ_EINVAL);
  ASSERT_EQ(changed, 0);
  char *after = sq_json_dump(conds);
  ASSERT_STR_EQ(after, before);
  json_t *obj = json_object();
  ASSERT_EQ(sq_cond_set(obj, "Ready", SQ_COND_TRUE, "R", "", 1, 5, &changed, NULL), SQ_EINVAL);
  json_decref(obj);
  free(before);
  free(after);
  json_decref(conds);
}

TEST(message_truncated_at_utf8_boundary) {
  /* fill with n ASCII bytes then 3-byte euros past the limit: the cut must
   * land between two euros whatever n is */
  for(int n = 0; n < 3; n++) {
    size_t len = (size_t)n + 3 * 12000;
    char *m = malloc(len + 1);
    memset(m, 'a', (size_t)n);
    for(size_t i = (size_t)n; i < len; i += 3)
      memcpy(m + i, "\xe2\x82\xac", 3);
    m[len] = '\0';
    char *s = sq_cond_message_sanitize(m);
    size_t sl = strlen(s);
    ASSERT_LE(sl, SQ_COND_MESSAGE_MAX);
    ASSERT_GT(sl + 3, SQ_COND_MESSAGE_MAX); /* no more than one char short */
    ASSERT_EQ((sl - (size_t)n) % 3, 0);
    ASSERT(valid_utf8(s));
    ASSERT_EQ(memcmp(s, m, sl), 0); /* a prefix of the input */
    free(s);
    free(m);
  }
  /* 4-byte characters too */
  size_t len = 1 + 4 * 9000;
  char *m = malloc(len + 1);
  m[0] = 'x';
  for(size_t i = 1; i < len; i += 4)
    memcpy(m + i, "\xf0\x9f\x94\x91", 4); /* U+1F511 key */
  m[len] = '\0';
  char *s = sq_cond_message_sanitize(m);
  ASSERT_EQ(strlen(s), 1 + 4 * ((SQ_COND_MESSAGE_MAX - 1) / 4));
  ASSERT(valid_utf8(s));
  free(s);
  free(m);
  /* short ASCII is untouched, NULL reads as "" */
  s = sq_cond_message_sanitize("fine");
  ASSERT_STR_EQ(s, "fine");
  free(s);
  s = sq_cond_message_sanitize(NULL);
  ASSERT_STR_EQ(s, "");
  free(s);
}

TEST(invalid_utf8_replaced) {
  static const struct {
    const char *in, *out;
  } cases[] = {
      {"ab\xff" "cd", "ab\xef\xbf\xbd" "cd"},
      {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},                    /* overlong '/' */
      {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},    /* surrogate */
      {"x\xe2\x82", "x\xef\xbf\xbd\xef\xbf\xbd"},                  /* cut short */
      {"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* > U+10FFFF */
      {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91"},
  };
  for(size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *s = sq_cond_message_sanitize(cases[i].in);
    ASSERT_STR_EQ(s, cases[i].out);
    ASSERT(valid_utf8(s));
    free(s);
  }
  /* 32768 bytes of invalid input: replacements expand but stay capped */
  char *m = malloc(SQ_COND_MESSAGE_MAX + 1);
  memset(m, 0xff, SQ_COND_MESSAGE_MAX);
  m[SQ_COND_MESSAGE_MAX] = '\0';
  char *s = sq_cond_message_sanitize(m);
  ASSERT_EQ(strlen(s), 3 * (SQ_COND_MESSAGE_MAX / 3));
  ASSERT(valid_utf8(s));
  free(s);
  free(m);
}

TEST(long_message_is_stored_truncated_and_stable) {
  json_t *conds = json_array();
  char *m = malloc(40001);
  memset(m, 'e', 40000);
  m[40000] = '\0';
  int changed;
  ASSERT_OK(sq_cond_set(conds, "Ready", SQ_COND_FALSE, "AzureError", m, 1, 10, &changed, NULL));
  ASSERT_EQ(changed, 1);
  ASSERT_EQ(strlen(field(conds, "Ready", "message")), SQ_COND_MESSAGE_MAX);
  /* the same long message again is not a change (compared after cutting) */
  ASSERT_OK(sq_cond_set(conds, "Ready", SQ_COND_FALSE, "AzureError", m, 1, 20, &changed, NULL));
  ASSERT_EQ(changed, 0);
  free(m);
  json_decref(conds);
}

TEST(cond_array_of_status) {
  json_t *status = json_object();
  json_t *a = sq_cond_array(status);
  ASSERT(json_is_array(a));
  ASSERT(json_object_get(status, "conditions") == a);
  ASSERT(sq_cond_array(status) == a); /* existing array returned */
  json_object_set_new(status, "conditions", json_string("junk"));
  a = sq_cond_array(status);
  ASSERT(json_is_array(a));
  ASSERT_EQ(json_array_size(a), 0);
  ASSERT_NULL(sq_cond_array(NULL));
  json_t *notobj = json_array();
  ASSERT_NULL(sq_cond_array(notobj));
  json_decref(notobj);
  json_decref(status);
}

/* ---- kstatus ------------------------------------------------------------ */

TEST(kstatus_combinations) {
  static const struct {
    int which; /* 0 ready, 1 reconciling, 2 retrying, 3 stalled */
    sq_cond_status ready, reconciling, stalled;
  } cases[] = {
      {0, SQ_COND_TRUE, SQ_COND_ABSENT, SQ_COND_ABSENT},
      {1, SQ_COND_UNKNOWN, SQ_COND_TRUE, SQ_COND_ABSENT},
      {2, SQ_COND_FALSE, SQ_COND_TRUE, SQ_COND_ABSENT},
      {3, SQ_COND_FALSE, SQ_COND_ABSENT, SQ_COND_TRUE},
  };
  /* every helper from every starting state gives the same trio */
  for(size_t from = 0; from < 4; from++) {
    for(size_t to = 0; to < 4; to++) {
      json_t *conds = json_array();
      int changed;
      sq_code (*fn[4])(json_t *, const char *, const char *, int64_t, int64_t, int *, sq_err *) = {
          sq_cond_set_ready, sq_cond_set_reconciling, sq_cond_set_retrying,
          sq_cond_set_stalled};
      ASSERT_OK(sq_cond_set(conds, "Replicated", SQ_COND_TRUE, "AllVaults", "", 1, 1, &changed,
                            NULL));
      ASSERT_OK(fn[cases[from].which](conds, "From", "before", 1, 100, &changed, NULL));
      ASSERT_EQ(changed, 1);
      ASSERT_OK(fn[cases[to].which](conds, "To", "after", 2, 200, &changed, NULL));
      ASSERT_EQ(changed, 1); /* reason and generation differ at least */
      ASSERT_EQ(sq_cond_get_status(conds, SQ_COND_READY), cases[to].ready);
      ASSERT_EQ(sq_cond_get_status(conds, SQ_COND_RECONCILING), cases[to].reconciling);
      ASSERT_EQ(sq_cond_get_status(conds, SQ_COND_STALLED), cases[to].stalled);
      ASSERT_STR_EQ(field(conds, "Ready", "reason"), "To");
      ASSERT_STR_EQ(field(conds, "Ready", "message"), "after");
      ASSERT_EQ(gen_of(conds, "Ready"), 2);
      if(cases[to].reconciling == SQ_COND_TRUE)
        ASSERT_STR_EQ(field(conds, "Reconciling", "reason"), "To");
      if(cases[to].stalled == SQ_COND_TRUE)
        ASSERT_STR_EQ(field(conds, "Stalled", "reason"), "To");
      /* Ready's time moves only if its status flipped */
      ASSERT_STR_EQ(field(conds, "Ready", "lastTransitionTime"),
                    rfc(cases[from].ready == cases[to].ready ? 100 : 200));
      /* the same helper again writes nothing */
      ASSERT_OK(fn[cases[to].which](conds, "To", "after", 2, 300, &changed, NULL));
      ASSERT_EQ(changed, 0);
      ASSERT(sq_cond_is_true(conds, "Replicated")); /* untouched */
      json_decref(conds);
    }
  }
}

TEST(kstatus_reconcile_lifecycle_times) {
  fake_wall f;
  fw_init(&f, 1750000000);
  json_t *conds = json_array();
  int changed;
  int64_t t0 = fw_now(&f);
  ASSERT_OK(sq_cond_set_reconciling(conds, "Progressing", "creating key", 1, t0, &changed, NULL));
  f.s += 30;
  int64_t t1 = fw_now(&f);
  ASSERT_OK(
      sq_cond_set_retrying(conds, "RotationBlocked", "old VLFs in use", 1, t1, &changed, NULL));
  ASSERT_EQ(changed, 1);
  /* Reconciling stayed True: its time is still t0; Ready went Unknown->False */
  ASSERT_STR_EQ(field(conds, "Reconciling", "lastTransitionTime"), rfc(t0));
  ASSERT_STR_EQ(field(conds, "Ready", "lastTransitionTime"), rfc(t1));
  ASSERT_STR_EQ(field(conds, "Reconciling", "reason"), "RotationBlocked");
  f.s += 30;
  int64_t t2 = fw_now(&f);
  ASSERT_OK(sq_cond_set_ready(conds, "Succeeded", "protector set", 1, t2, &changed, NULL));
  ASSERT_EQ(changed, 1);
  ASSERT_EQ(json_array_size(conds), 1);
  ASSERT_STR_EQ(field(conds, "Ready", "lastTransitionTime"), rfc(t2));
  /* new generation: only observedGeneration changes */
  f.s += 30;
  ASSERT_OK(sq_cond_set_ready(conds, "Succeeded", "protector set", 2, fw_now(&f), &changed, NULL));
  ASSERT_EQ(changed, 1);
  ASSERT_STR_EQ(field(conds, "Ready", "lastTransitionTime"), rfc(t2));
  ASSERT_EQ(gen_of(conds, "Ready"), 2);
  json_decref(conds);
}

TEST_MAIN()
