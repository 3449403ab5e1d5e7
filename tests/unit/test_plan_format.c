/* Tests of plan rendering: status.plan (shape from the SqlDatabase CRD,
 * progress carried across passes) and the ARM request of every step kind
 * (bodies as in azure-api.md §1.4-1.6 and §2). */
#include "sqltde/jsonx.h"
#include "sqltde/plan/plan.h"
#include "sqltde/plan/plan_format.h"
#include "test.h"
#include "test_plan_fixture.h"

static json_t *parse(const char *s) {
  json_t *v = NULL;
  if(sq_json_parse(s, strlen(s), "test", &v, NULL))
    return NULL;
  return v;
}

static void plan_for(void (*setup)(sq_plan_db_input *), sq_plan *p) {
  sq_plan_db_input in;
  setup(&in);
  ASSERT_OK(sq_plan_db(&in, p, NULL));
  sq_plan_db_input_free(&in);
}

static void geo_migration(sq_plan_db_input *in) {
  fx_base(in);
  fx_set(&in->desired.protector_uri, KB1);
  fx_secondary(in, SRV2, 1, KA1);
}
/* the same estate after the two AddKeys steps ran */
static void geo_migration_later(sq_plan_db_input *in) {
  geo_migration(in);
  fx_add(&in->primary.keys, KB1);
  fx_add(&in->secondaries[0].keys, KB1);
}
static void geo_migration_blocked(sq_plan_db_input *in) {
  geo_migration_later(in);
  sq_plan_key_fact k = {.uri = KB1, .exists = 1, .enabled = 0};
  sq_plan_facts_add_key(&in->facts, &k, NULL);
}
static void converged(sq_plan_db_input *in) {
  fx_base(in);
}

static const char *state_at(const json_t *j, size_t i) {
  return json_string_value(
      json_object_get(json_array_get(json_object_get(j, "steps"), i), "state"));
}
static const char *field_at(const json_t *j, size_t i, const char *f) {
  return json_string_value(json_object_get(json_array_get(json_object_get(j, "steps"), i), f));
}

TEST(status_plan_fresh) {
  sq_plan p = {0};
  plan_for(geo_migration, &p);
  ASSERT_EQ(p.n_steps, 4);
  json_t *j = sq_plan_status_json(&p, NULL, SQ_STEP_RUNNING);
  ASSERT_NOT_NULL(j);
  ASSERT_EQ(sq_json_int(j, "completed", -1), 0);
  ASSERT_EQ(sq_json_int(j, "total", -1), 4);
  ASSERT_STR_EQ(state_at(j, 0), "Running");
  ASSERT_STR_EQ(state_at(j, 1), "Pending");
  ASSERT_STR_EQ(field_at(j, 0, "action"), "AddKeys");
  ASSERT_STR_EQ(field_at(j, 0, "target"), "primary:srv1/db1");
  ASSERT_STR_EQ(field_at(j, 1, "target"), "secondary:srv2/db1");
  ASSERT_STR_EQ(field_at(j, 2, "action"), "SetProtector");
  ASSERT_STR_CONTAINS(field_at(j, 2, "detail"), "kv1/tdeB/bbbbbbbb");
  json_decref(j);
  sq_plan_free(&p);
}

TEST(status_plan_progress_carried) {
  sq_plan p1 = {0}, p2 = {0}, p3 = {0}, p4 = {0};
  plan_for(geo_migration, &p1);
  json_t *j1 = sq_plan_status_json(&p1, NULL, SQ_STEP_RUNNING);
  /* two AddKeys done: they vanish from the plan and become Done */
  plan_for(geo_migration_later, &p2);
  ASSERT_EQ(p2.n_steps, 2);
  json_t *j2 = sq_plan_status_json(&p2, j1, SQ_STEP_PENDING);
  ASSERT_EQ(sq_json_int(j2, "completed", -1), 2);
  ASSERT_EQ(sq_json_int(j2, "total", -1), 4);
  ASSERT_STR_EQ(state_at(j2, 0), "Done");
  ASSERT_STR_EQ(field_at(j2, 0, "action"), "AddKeys");
  ASSERT_STR_EQ(state_at(j2, 1), "Done");
  ASSERT_STR_EQ(state_at(j2, 2), "Pending");
  ASSERT_STR_EQ(field_at(j2, 2, "action"), "SetProtector");
  /* waiting: the planner does not know what remains, nothing turns Done */
  plan_for(geo_migration_blocked, &p3);
  ASSERT_EQ(p3.verdict, SQ_PLAN_WAITING);
  json_t *j3 = sq_plan_status_json(&p3, j2, SQ_STEP_FAILED);
  ASSERT_EQ(sq_json_int(j3, "completed", -1), 2);
  ASSERT_EQ(sq_json_int(j3, "total", -1), 4);
  ASSERT_STR_EQ(state_at(j3, 2), "Pending");
  /* converged: everything listed is done */
  plan_for(converged, &p4);
  json_t *j4 = sq_plan_status_json(&p4, j3, SQ_STEP_PENDING);
  ASSERT_EQ(sq_json_int(j4, "completed", -1), 4);
  ASSERT_EQ(sq_json_int(j4, "total", -1), 4);
  json_decref(j1);
  json_decref(j2);
  json_decref(j3);
  json_decref(j4);
  sq_plan_free(&p1);
  sq_plan_free(&p2);
  sq_plan_free(&p3);
  sq_plan_free(&p4);
}

TEST(status_plan_bounded_and_tolerant) {
  sq_plan p = {0};
  plan_for(converged, &p);
  /* 40 done steps in: only the newest 32 are kept */
  json_t *prev = parse("{\"steps\":[]}");
  for(int i = 0; i < 40; i++) {
    char d[32];
    snprintf(d, sizeof d, "step %d", i);
    json_array_append_new(json_object_get(prev, "steps"),
                          json_pack("{s:s,s:s,s:s,s:s}", "action", "AddKeys", "target", "t",
                                    "detail", d, "state", "Done"));
  }
  json_t *j = sq_plan_status_json(&p, prev, SQ_STEP_PENDING);
  ASSERT_EQ(sq_json_int(j, "completed", -1), 32);
  ASSERT_STR_EQ(field_at(j, 0, "detail"), "step 8");
  json_decref(j);
  json_decref(prev);
  const char *bad[] = {"[]", "{\"steps\":7}", "{\"steps\":[1,{\"action\":2},{}]}", "null"};
  for(size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    prev = parse(bad[i]);
    j = sq_plan_status_json(&p, prev, SQ_STEP_PENDING);
    ASSERT_NOT_NULL(j);
    ASSERT_EQ(sq_json_int(j, "total", -1), 0);
    json_decref(j);
    json_decref(prev);
  }
  sq_plan_free(&p);
}

TEST(status_plan_sanitises_utf8) {
  sq_plan_db_input in;
  sq_plan p = {0};
  fx_base(&in);
  in.primary.exists = 0;
  /* a 200-byte name of 2-byte characters is cut inside a character */
  char name[202];
  name[0] = 'x'; /* odd offset: the 128-byte cut lands inside a character */
  for(int i = 1; i < 201; i += 2) {
    name[i] = (char)0xC3;
    name[i + 1] = (char)0xA9;
  }
  name[201] = '\0';
  fx_set(&in.desired.name, name);
  ASSERT_OK(sq_plan_db(&in, &p, NULL));
  ASSERT_EQ(p.n_steps, 1);
  json_t *j = sq_plan_status_json(&p, NULL, SQ_STEP_PENDING);
  ASSERT_NOT_NULL(j);
  ASSERT_STR_CONTAINS(field_at(j, 0, "detail"), "\xEF\xBF\xBD"); /* U+FFFD for the cut */
  json_decref(j);
  sq_plan_free(&p);
  sq_plan_db_input_free(&in);
}

/* method, path and the body as compact JSON with sorted keys */
static void expect_request(const sq_plan_step *s, const char *method, const char *path,
                           const char *body) {
  sq_plan_request r;
  ASSERT_OK(sq_plan_step_request(s, &r, NULL));
  ASSERT_STR_EQ(r.method, method);
  ASSERT_STR_EQ(r.path, path);
  if(!body) {
    ASSERT_NULL(r.body);
  } else {
    char *got = sq_json_dump(r.body);
    json_t *w = parse(body);
    ASSERT_NOT_NULL(w);
    char *want = sq_json_dump(w);
    if(strcmp(got, want))
      printf("    got  %s\n    want %s\n", got, want);
    ASSERT_STR_EQ(got, want);
    free(got);
    free(want);
    json_decref(w);
  }
  sq_plan_request_free(&r);
}

static void create_secondary(sq_plan_db_input *in) {
  fx_base(in);
  fx_secondary(in, SRV2, 0, NULL);
}
static void identity_and_removal(sq_plan_db_input *in) {
  fx_base(in);
  fx_add(&in->primary.identities, UMI2);
  fx_add(&in->primary.keys, KC1);
  fx_set(&in->desired.federated_client_id, FCID);
}

TEST(requests_for_database_steps) {
  sq_plan p = {0};
  plan_for(create_secondary, &p);
  ASSERT_EQ(p.n_steps, 1);
  expect_request(&p.steps[0], "PUT", SRV2 "/databases/db1",
                 "{\"location\":\"northeurope\",\"identity\":{\"type\":\"UserAssigned\","
                 "\"userAssignedIdentities\":{\"" UMI1 "\":{}}},\"properties\":{\"createMode\":"
                 "\"Secondary\",\"secondaryType\":\"Geo\",\"sourceDatabaseId\":\"" SRV1
                 "/databases/db1\",\"keys\":{\"" KA1 "\":{}},\"encryptionProtector\":\"" KA1
                 "\",\"encryptionProtectorAutoRotation\":false}}");
  sq_plan_free(&p);

  plan_for(geo_migration, &p);
  expect_request(&p.steps[0], "PATCH", SRV1 "/databases/db1",
                 "{\"properties\":{\"keys\":{\"" KB1 "\":{}}}}");
  expect_request(&p.steps[2], "PATCH", SRV1 "/databases/db1",
                 "{\"properties\":{\"keys\":{\"" KB1 "\":{}},\"encryptionProtector\":\"" KB1
                 "\",\"encryptionProtectorAutoRotation\":false}}");
  sq_plan_free(&p);

  plan_for(identity_and_removal, &p);
  ASSERT_STR_EQ(fx_sig(&p),
                "SetIdentity/p[umi1 -umi2]; SetFederatedClientId/p[set]; RemoveKeys/p[C1]");
  expect_request(&p.steps[0], "PATCH", SRV1 "/databases/db1",
                 "{\"identity\":{\"type\":\"UserAssigned\",\"userAssignedIdentities\":{\"" UMI1
                 "\":{},\"" UMI2 "\":null}}}");
  expect_request(&p.steps[1], "PATCH", SRV1 "/databases/db1",
                 "{\"properties\":{\"federatedClientId\":\"" FCID "\"}}");
  expect_request(&p.steps[2], "PATCH", SRV1 "/databases/db1",
                 "{\"properties\":{\"keys\":{\"" KC1 "\":null}}}");
  sq_plan_free(&p);

  sq_plan_step s;
  memset(&s, 0, sizeof s);
  s.server_id = SRV1;
  s.database = "db1";
  s.kind = SQ_STEP_REVALIDATE;
  expect_request(&s, "POST", SRV1 "/databases/db1/encryptionProtector/current/revalidate", NULL);
  s.kind = SQ_STEP_REVERT;
  expect_request(&s, "POST", SRV1 "/databases/db1/encryptionProtector/current/revert", NULL);
  s.kind = SQ_STEP_DELETE_DATABASE;
  expect_request(&s, "DELETE", SRV1 "/databases/db1", NULL);
  s.kind = SQ_STEP_SET_AUTO_ROTATION;
  s.auto_rotation = 1;
  expect_request(&s, "PATCH", SRV1 "/databases/db1",
                 "{\"properties\":{\"encryptionProtectorAutoRotation\":true}}");
  s.kind = SQ_STEP_SET_FEDERATED_CLIENT_ID;
  expect_request(&s, "PATCH", SRV1 "/databases/db1",
                 "{\"properties\":{\"federatedClientId\":null}}");
  /* a step missing what its kind needs is refused, not rendered half */
  s.kind = SQ_STEP_SET_PROTECTOR;
  sq_plan_request r;
  ASSERT_EQ(sq_plan_step_request(&s, &r, NULL), SQ_EINVAL);
  ASSERT_NULL(r.path);
  s.kind = SQ_STEP_CREATE_DATABASE;
  ASSERT_EQ(sq_plan_step_request(&s, &r, NULL), SQ_EINVAL);
  s.database = NULL;
  s.kind = SQ_STEP_ADD_KEYS;
  ASSERT_EQ(sq_plan_step_request(&s, &r, NULL), SQ_EINVAL);
}

TEST(requests_for_server_steps) {
  sq_plan_step s;
  memset(&s, 0, sizeof s);
  s.server_id = SRV1;
  s.target = SQ_TARGET_SERVER;
  s.kind = SQ_STEP_SET_SERVER_IDENTITY;
  s.identity_id = UMI1;
  s.system_assigned = 1;
  expect_request(
      &s, "PATCH", SRV1,
      "{\"identity\":{\"type\":\"SystemAssigned,UserAssigned\",\"userAssignedIdentities\":"
      "{\"" UMI1 "\":{}}},\"properties\":{\"primaryUserAssignedIdentityId\":\"" UMI1 "\"}}");
  s.kind = SQ_STEP_ADD_SERVER_KEY;
  ASSERT_EQ(sq_plan_step_request(&s, &(sq_plan_request){0}, NULL), SQ_EINVAL);
  sq_plan_list_add(&s.keys, KA1, NULL);
  expect_request(&s, "PUT", SRV1 "/keys/kv1_tdeA_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1",
                 "{\"properties\":{\"serverKeyType\":\"AzureKeyVault\",\"uri\":\"" KA1 "\"}}");
  sq_plan_list_free(&s.keys);
  s.kind = SQ_STEP_SET_SERVER_PROTECTOR;
  s.protector_uri = KA1;
  s.auto_rotation = 1;
  expect_request(&s, "PUT", SRV1 "/encryptionProtector/current",
                 "{\"properties\":{\"serverKeyType\":\"AzureKeyVault\",\"serverKeyName\":"
                 "\"kv1_tdeA_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1\",\"autoRotationEnabled\":true}}");
  s.kind = SQ_STEP_SET_SERVER_SERVICE_MANAGED;
  expect_request(&s, "PUT", SRV1 "/encryptionProtector/current",
                 "{\"properties\":{\"serverKeyType\":\"ServiceManaged\",\"serverKeyName\":"
                 "\"ServiceManaged\"}}");
  /* a protector that is not a key URI is a bad step, named as such */
  sq_plan_request r;
  sq_err e;
  s.kind = SQ_STEP_SET_SERVER_PROTECTOR;
  s.protector_uri = "nope";
  ASSERT_EQ(sq_plan_step_request(&s, &r, &e), SQ_EINVAL);
  ASSERT_STR_CONTAINS(e.message, "SetServerProtector step: nope is not a Key Vault key URI");
  /* the kind decides what a step addresses; a disagreeing target is refused */
  s.kind = SQ_STEP_REVERT;
  ASSERT_EQ(sq_plan_step_request(&s, &r, &e), SQ_EINVAL);
  ASSERT_STR_CONTAINS(e.message, "Revert step with a server target");
  ASSERT_NULL(r.path);
  s.kind = SQ_STEP_SET_SERVER_SERVICE_MANAGED;
  s.target = SQ_TARGET_PRIMARY;
  s.database = "db1";
  ASSERT_EQ(sq_plan_step_request(&s, &r, &e), SQ_EINVAL);
  ASSERT_STR_CONTAINS(e.message, "SetServerServiceManaged step with a database target");
  ASSERT(sq_plan_step_is_server(SQ_STEP_ADD_SERVER_KEY));
  ASSERT(!sq_plan_step_is_server(SQ_STEP_DELETE_DATABASE));
}

TEST(names_are_stable) {
  ASSERT_STR_EQ(sq_plan_step_kind_name(SQ_STEP_SET_PROTECTOR), "SetProtector");
  ASSERT_STR_EQ(sq_plan_step_kind_name(SQ_STEP_KIND_COUNT), "Unknown");
  ASSERT_STR_EQ(sq_plan_reason_name(SQ_REASON_KEY_REMOVAL_WOULD_STRAND_BACKUP),
                "KeyRemovalWouldStrandBackup");
  ASSERT_STR_EQ(sq_plan_reason_name(SQ_REASON_REVERT_NOT_ALLOWED_WITH_SERVER_CMK),
                "RevertNotAllowedWithServerCMK");
  ASSERT_STR_EQ(sq_plan_verdict_name(SQ_PLAN_WAITING), "Waiting");
  ASSERT_STR_EQ(sq_plan_step_state_name(SQ_STEP_FAILED), "Failed");
  /* every reason has a name that is a valid condition reason */
  for(int r = 0; r < SQ_REASON_COUNT; r++) {
    const char *n = sq_plan_reason_name((sq_plan_reason)r);
    ASSERT(strcmp(n, "Unknown"));
    for(const char *c = n; *c; c++)
      ASSERT((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z'));
  }
}

TEST_MAIN()
