/* Table-driven tests of the SqlServer planner (rule 11: server-level changes
 * are planned separately and never produce a database step). */
#include "sqltde/plan/plan.h"
#include "test.h"
#include "test_plan_fixture.h"

/* srv1 with identity umi1 (primary) and server-level CMK protector A1. */
static void base(sq_plan_server_input *in) {
  memset(in, 0, sizeof *in);
  in->now = NOW;
  fx_set(&in->desired.server_id, SRV1);
  fx_set(&in->desired.identity_id, UMI1);
  in->desired.encryption = SQ_SERVER_ENC_CUSTOMER_MANAGED;
  fx_set(&in->desired.key_uri, KA1);
  sq_plan_observed_server *o = &in->observed;
  o->known = 1;
  o->exists = 1;
  fx_add(&o->identities, UMI1);
  fx_set(&o->primary_identity_id, UMI1);
  o->encryption = SQ_SERVER_ENC_CUSTOMER_MANAGED;
  fx_set(&o->protector_uri, KA1);
  fx_add(&o->server_keys, KA1);
  fx_all_keys_ok(&in->facts);
}

static void s_converged(sq_plan_server_input *in) {
  base(in);
}
static void s_identity(sq_plan_server_input *in) {
  base(in);
  sq_plan_list_free(&in->observed.identities);
  sq_plan_set_str(&in->observed.primary_identity_id, NULL, NULL);
  in->observed.system_assigned = 1;
}
static void s_identity_not_primary(sq_plan_server_input *in) {
  base(in);
  fx_add(&in->observed.identities, UMI2);
  fx_set(&in->observed.primary_identity_id, UMI2);
}
static void s_identity_lacks_protector_access(sq_plan_server_input *in) {
  s_identity_not_primary(in);
  sq_plan_access a = {
      .key_uri = KA1, .identity_id = UMI1, .state = SQ_ACCESS_MISSING, .missing = SQ_PERM_GET};
  sq_plan_facts_add_access(&in->facts, &a, NULL);
}
static void s_smk_to_cmk(sq_plan_server_input *in) {
  base(in);
  in->observed.encryption = SQ_SERVER_ENC_SERVICE_MANAGED;
  sq_plan_set_str(&in->observed.protector_uri, NULL, NULL);
  sq_plan_list_free(&in->observed.server_keys);
}
static void s_key_change(sq_plan_server_input *in) {
  base(in);
  fx_set(&in->desired.key_uri, KB1);
}
static void s_key_already_registered(sq_plan_server_input *in) {
  s_key_change(in);
  fx_add(&in->observed.server_keys, KB1);
}
static void s_cmk_to_smk(sq_plan_server_input *in) {
  base(in);
  in->desired.encryption = SQ_SERVER_ENC_SERVICE_MANAGED;
  sq_plan_set_str(&in->desired.key_uri, NULL, NULL);
}
static void s_smk_converged(sq_plan_server_input *in) {
  s_cmk_to_smk(in);
  in->observed.encryption = SQ_SERVER_ENC_SERVICE_MANAGED;
}
static void s_auto_equivalent(sq_plan_server_input *in) {
  base(in);
  fx_set(&in->desired.key_uri, KA2);
  in->desired.auto_rotation = 1;
  in->observed.auto_rotation = 1;
  fx_key_ok(&in->facts, KA2, NOW - HOUR);
}
static void s_auto_overdue(sq_plan_server_input *in) {
  s_auto_equivalent(in);
  fx_key_ok(&in->facts, KA2, NOW - 30 * HOUR);
}
static void s_auto_enable(sq_plan_server_input *in) {
  base(in);
  in->desired.auto_rotation = 1;
}
static void s_unmanaged(sq_plan_server_input *in) {
  base(in);
  in->desired.encryption = SQ_SERVER_ENC_UNKNOWN;
  sq_plan_set_str(&in->desired.key_uri, NULL, NULL);
  sq_plan_set_str(&in->desired.identity_id, NULL, NULL);
}
static void s_deleted(sq_plan_server_input *in) {
  s_key_change(in);
  in->desired.being_deleted = 1;
}
static void s_missing_server(sq_plan_server_input *in) {
  base(in);
  in->observed.exists = 0;
}
static void s_not_observed(sq_plan_server_input *in) {
  base(in);
  in->observed.known = 0;
}
static void s_invalid(sq_plan_server_input *in) {
  base(in);
  fx_set(&in->desired.key_uri, "not-a-uri");
}
static void s_key_disabled(sq_plan_server_input *in) {
  s_key_change(in);
  sq_plan_key_fact k = {.uri = KB1, .exists = 1, .enabled = 0};
  sq_plan_facts_add_key(&in->facts, &k, NULL);
}
static void s_permission_pending(sq_plan_server_input *in) {
  s_key_change(in);
  sq_plan_access a = {
      .key_uri = KB1, .identity_id = UMI1, .state = SQ_ACCESS_GRANTED, .granted_s = NOW - 60};
  sq_plan_facts_add_access(&in->facts, &a, NULL);
}

static const struct {
  const char *name;
  void (*setup)(sq_plan_server_input *);
  sq_plan_verdict verdict;
  sq_plan_reason reason;
  const char *sig;
  sq_plan_reason finding;
  const char *message_text;
} cases[] = {
    {"converged", s_converged, SQ_PLAN_CONVERGED, SQ_REASON_UP_TO_DATE, "", 0, NULL},
    {"identity", s_identity, SQ_PLAN_PROGRESSING, SQ_REASON_PROGRESSING,
     "SetServerIdentity/server[umi1]", 0, NULL},
    {"identity_not_primary", s_identity_not_primary, SQ_PLAN_PROGRESSING, SQ_REASON_PROGRESSING,
     "SetServerIdentity/server[umi1]", 0, NULL},
    {"identity_lacks_protector_access", s_identity_lacks_protector_access, SQ_PLAN_REFUSED,
     SQ_REASON_IDENTITY_MISSING_PERMISSIONS, "", 0, "lacks get"},
    {"smk_to_cmk", s_smk_to_cmk, SQ_PLAN_PROGRESSING, SQ_REASON_PROGRESSING,
     "AddServerKey/server[A1]; SetServerProtector/server[A1]", 0, NULL},
    {"key_change", s_key_change, SQ_PLAN_PROGRESSING, SQ_REASON_PROGRESSING,
     "AddServerKey/server[B1]; SetServerProtector/server[B1]", 0, NULL},
    {"key_already_registered", s_key_already_registered, SQ_PLAN_PROGRESSING, SQ_REASON_PROGRESSING,
     "SetServerProtector/server[B1]", 0, NULL},
    {"cmk_to_smk", s_cmk_to_smk, SQ_PLAN_PROGRESSING, SQ_REASON_PROGRESSING,
     "SetServerServiceManaged/server", 0, NULL},
    {"smk_converged", s_smk_converged, SQ_PLAN_CONVERGED, SQ_REASON_UP_TO_DATE, "", 0, NULL},
    {"auto_equivalent_no_write", s_auto_equivalent, SQ_PLAN_CONVERGED, SQ_REASON_UP_TO_DATE, "", 0,
     NULL},
    {"auto_overdue", s_auto_overdue, SQ_PLAN_CONVERGED, SQ_REASON_UP_TO_DATE, "",
     SQ_REASON_AUTO_ROTATION_OVERDUE, NULL},
    {"auto_enable", s_auto_enable, SQ_PLAN_PROGRESSING, SQ_REASON_PROGRESSING,
     "SetServerProtector/server[A1 auto]", 0, NULL},
    {"unmanaged_protector", s_unmanaged, SQ_PLAN_CONVERGED, SQ_REASON_UP_TO_DATE, "", 0, NULL},
    {"deleted_releases", s_deleted, SQ_PLAN_CONVERGED, SQ_REASON_RETAINED, "", 0,
     "without any Azure call"},
    {"missing_server", s_missing_server, SQ_PLAN_REFUSED, SQ_REASON_SERVER_NOT_FOUND, "", 0,
     "adopts existing"},
    {"not_observed", s_not_observed, SQ_PLAN_WAITING, SQ_REASON_OBSERVATION_INCOMPLETE, "", 0,
     NULL},
    {"invalid", s_invalid, SQ_PLAN_REFUSED, SQ_REASON_INVALID_SPEC, "", 0, "spec.protector"},
    {"key_disabled", s_key_disabled, SQ_PLAN_WAITING, SQ_REASON_KEY_DISABLED, "", 0, NULL},
    {"permission_pending", s_permission_pending, SQ_PLAN_WAITING, SQ_REASON_PERMISSION_PENDING, "",
     0, NULL},
};

TEST(server_rule_table) {
  for(size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    sq_plan_server_input in;
    sq_plan p = {0};
    printf("  case %s\n", cases[i].name);
    cases[i].setup(&in);
    ASSERT_OK(sq_plan_server(&in, &p, NULL));
    if(strcmp(fx_sig(&p), cases[i].sig) || p.reason != cases[i].reason)
      printf("    got %s/%s: [%s] %s\n", sq_plan_verdict_name(p.verdict),
             sq_plan_reason_name(p.reason), fx_sig(&p), p.message ? p.message : "");
    ASSERT_STR_EQ(fx_sig(&p), cases[i].sig);
    ASSERT_EQ(p.verdict, cases[i].verdict);
    ASSERT_EQ(p.reason, cases[i].reason);
    if(cases[i].message_text)
      ASSERT_STR_CONTAINS(p.message, cases[i].message_text);
    if(cases[i].finding)
      ASSERT(fx_has_finding(&p, cases[i].finding, NULL));
    /* rule 11: the server planner never emits a database step */
    for(size_t k = 0; k < p.n_steps; k++) {
      ASSERT_EQ(p.steps[k].target, SQ_TARGET_SERVER);
      ASSERT_GE(p.steps[k].kind, SQ_STEP_SET_SERVER_IDENTITY);
      ASSERT_NULL(p.steps[k].database);
    }
    sq_plan_free(&p);
    sq_plan_server_input_free(&in);
  }
  printf("  %zu cases\n", sizeof cases / sizeof cases[0]);
}

TEST(server_identity_keeps_system_assigned) {
  sq_plan_server_input in;
  sq_plan p = {0};
  s_identity(&in);
  ASSERT_OK(sq_plan_server(&in, &p, NULL));
  ASSERT_EQ(p.n_steps, 1);
  ASSERT_EQ(p.steps[0].system_assigned, 1);
  ASSERT_STR_EQ(p.steps[0].identity_id, UMI1);
  sq_plan_free(&p);
  sq_plan_server_input_free(&in);
}

TEST(server_total_on_empty_input) {
  sq_plan_server_input in;
  sq_plan p = {0};
  memset(&in, 0, sizeof in);
  ASSERT_OK(sq_plan_server(&in, &p, NULL));
  ASSERT_EQ(p.verdict, SQ_PLAN_REFUSED);
  ASSERT_EQ(p.reason, SQ_REASON_INVALID_SPEC);
  ASSERT_EQ(sq_plan_kstatus_of(&p), SQ_PLAN_KSTATUS_STALLED);
  sq_plan_free(&p);
}

TEST_MAIN()
