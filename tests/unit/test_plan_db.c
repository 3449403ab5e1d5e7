/* Table-driven tests of the SqlDatabase planner: one case per rule of
 * SPEC.md §4 (numbered as in plan.h) with the exact expected step list,
 * verdict and reason, plus cases for the gates and refusals. */
#include "sqltde/plan/plan.h"
#include "test.h"
#include "test_plan_fixture.h"

typedef struct dbcase {
  const char *name;
  void (*setup)(sq_plan_db_input *in);
  sq_plan_verdict verdict;
  sq_plan_reason reason;
  const char *sig;          /* exact step list (fx_sig) */
  sq_plan_reason finding;   /* a finding that must be present (0 = none checked) */
  const char *finding_text; /* ... whose message contains this */
  const char *message_text; /* the plan's message contains this (NULL = not checked) */
} dbcase;

/* ---- rule 1: no write when observed matches desired ---------------------- */
static void s_converged(sq_plan_db_input *in) {
  fx_base(in);
}
static void s_converged_geo(sq_plan_db_input *in) {
  fx_base(in);
  fx_secondary(in, SRV2, 1, KA1);
}
static void s_converged_server_level(sq_plan_db_input *in) {
  fx_base(in);
  in->desired.encryption = SQ_DB_ENC_SERVER_LEVEL;
  sq_plan_set_str(&in->desired.protector_uri, NULL, NULL);
  sq_plan_set_str(&in->primary.protector_uri, NULL, NULL);
}

/* ---- rule 2: exactly one UMI, set before keys that need it ---------------- */
static void s_multiple_identities(sq_plan_db_input *in) {
  fx_base(in);
  fx_add(&in->primary.identities, UMI2);
}
static void s_identity_before_keys(sq_plan_db_input *in) {
  fx_base(in);
  sq_plan_list_free(&in->primary.identities);
  sq_plan_list_free(&in->primary.keys);
  sq_plan_list_free(&in->primary.current_keys);
  sq_plan_set_str(&in->primary.protector_uri, NULL, NULL);
  fx_add(&in->desired.keys, KC1);
}
static void s_identity_swap_needs_access(sq_plan_db_input *in) {
  fx_base(in);
  sq_plan_list_free(&in->primary.identities);
  fx_add(&in->primary.identities, UMI2);
  sq_plan_access a = {.key_uri = KA1,
                      .identity_id = UMI1,
                      .state = SQ_ACCESS_MISSING,
                      .missing = SQ_PERM_WRAP | SQ_PERM_UNWRAP};
  sq_plan_facts_add_access(&in->facts, &a, NULL);
}
static void s_fcid(sq_plan_db_input *in) {
  fx_base(in);
  fx_set(&in->desired.federated_client_id, FCID);
}

/* ---- rule 3: geo-replicated migration order ------------------------------ */
static void s_geo_migration(sq_plan_db_input *in) {
  fx_base(in);
  fx_set(&in->desired.protector_uri, KB1);
  fx_secondary(in, SRV2, 1, KA1);
  fx_secondary(in, SRV3, 1, KA1);
}
static void s_geo_invariant_repair(sq_plan_db_input *in) {
  fx_base(in);
  /* someone broke it: the secondary lacks the primary's protector */
  sq_plan_observed_db *s = fx_secondary(in, SRV2, 1, KB1);
  (void)s;
  fx_add(&in->desired.keys, KB1);
  fx_add(&in->primary.keys, KB1);
}
static void s_geo_invariant_repair_during_migration(sq_plan_db_input *in) {
  fx_base(in);
  fx_set(&in->desired.protector_uri, KC1);
  fx_secondary(in, SRV2, 1, KB1); /* lacks the primary's current protector A1 */
}
static void s_geo_from_server_level(sq_plan_db_input *in) {
  fx_base(in);
  sq_plan_set_str(&in->primary.protector_uri, NULL, NULL);
  sq_plan_list_free(&in->primary.keys);
  sq_plan_list_free(&in->primary.current_keys);
  fx_secondary(in, SRV2, 1, NULL);
}

/* ---- rule 4: revert only on an SMK server; no opt-in to SMK on CMK -------- */
static void s_revert_smk(sq_plan_db_input *in) {
  fx_base(in);
  in->desired.encryption = SQ_DB_ENC_SERVER_LEVEL;
  sq_plan_set_str(&in->desired.protector_uri, NULL, NULL);
}
static void s_revert_cmk(sq_plan_db_input *in) {
  s_revert_smk(in);
  in->primary.server_encryption = SQ_SERVER_ENC_CUSTOMER_MANAGED;
}
static void s_revert_geo_secondary_cmk(sq_plan_db_input *in) {
  s_revert_smk(in);
  sq_plan_observed_db *s = fx_secondary(in, SRV2, 1, KA1);
  s->server_encryption = SQ_SERVER_ENC_CUSTOMER_MANAGED;
}
static void s_revert_geo(sq_plan_db_input *in) {
  s_revert_smk(in);
  fx_secondary(in, SRV2, 1, KA1);
}
static void s_opt_in_smk_on_cmk(sq_plan_db_input *in) {
  s_converged_server_level(in);
  in->desired.encryption = SQ_DB_ENC_SERVICE_MANAGED;
  in->primary.server_encryption = SQ_SERVER_ENC_CUSTOMER_MANAGED;
}
static void s_smk_on_smk_reverts(sq_plan_db_input *in) {
  s_revert_smk(in);
  in->desired.encryption = SQ_DB_ENC_SERVICE_MANAGED;
}
static void s_server_level_on_cmk_server(sq_plan_db_input *in) {
  s_converged_server_level(in);
  in->primary.server_encryption = SQ_SERVER_ENC_CUSTOMER_MANAGED;
}

/* ---- rule 5: never remove a current or backup-needed key; removal last ---- */
static void s_remove_keys(sq_plan_db_input *in) {
  fx_base(in);
  fx_add(&in->primary.keys, KB1);
  fx_add(&in->primary.keys, KC1);
  fx_add(&in->primary.keys, KD1);
  fx_add(&in->primary.backup_keys, KB1);  /* a retained backup needs B1 */
  fx_add(&in->primary.current_keys, KD1); /* active VLFs still under D1 */
}
static void s_remove_deferred(sq_plan_db_input *in) {
  fx_base(in);
  fx_add(&in->primary.keys, KC1);
  in->primary.keys_complete = 0;
}
static void s_removal_last(sq_plan_db_input *in) {
  fx_base(in);
  fx_set(&in->desired.protector_uri, KB1);
  fx_add(&in->primary.keys, KC1);
}
static void s_remove_on_secondary_keeps_primary_backup(sq_plan_db_input *in) {
  fx_base(in);
  sq_plan_observed_db *s = fx_secondary(in, SRV2, 1, KA1);
  fx_add(&s->keys, KB1);
  fx_add(&s->keys, KC1);
  fx_add(&in->primary.backup_keys, KB1);
}

/* ---- rule 6: auto-rotation --------------------------------------------------- */
static void s_auto_newer_version_no_write(sq_plan_db_input *in) {
  fx_base(in);
  fx_set(&in->desired.protector_uri, KA2);
  in->desired.auto_rotation = 1;
  in->primary.auto_rotation = 1;
  fx_key_ok(&in->facts, KA2, NOW - 2 * HOUR);
}
static void s_auto_overdue(sq_plan_db_input *in) {
  s_auto_newer_version_no_write(in);
  fx_key_ok(&in->facts, KA2, NOW - 25 * HOUR);
}
static void s_auto_enable_first(sq_plan_db_input *in) {
  fx_base(in);
  fx_set(&in->desired.protector_uri, KA2);
  in->desired.auto_rotation = 1;
}
static void s_auto_disable(sq_plan_db_input *in) {
  fx_base(in);
  fx_set(&in->desired.protector_uri, KA2);
  in->primary.auto_rotation = 1;
}
static void s_auto_only_flag(sq_plan_db_input *in) {
  fx_base(in);
  in->desired.auto_rotation = 1;
}

/* ---- rule 7: rotation blocked -> bounded backoff ----------------------------- */
static void blocked(sq_plan_db_input *in, int64_t ago, unsigned attempts) {
  fx_base(in);
  fx_set(&in->desired.protector_uri, KB1);
  fx_add(&in->primary.keys, KB1);
  fx_set(&in->last_failure.code, SQ_PLAN_ROTATION_BLOCKED_CODE);
  fx_set(&in->last_failure.server_id, SRV1);
  in->last_failure.at_s = NOW - ago;
  in->last_failure.attempts = attempts;
}
static void s_rotation_blocked(sq_plan_db_input *in) {
  blocked(in, 30, 1);
}
static void s_rotation_retry_due(sq_plan_db_input *in) {
  blocked(in, 61, 1);
}
static void s_rotation_other_server(sq_plan_db_input *in) {
  blocked(in, 30, 1);
  fx_set(&in->last_failure.server_id, SRV2);
}

/* ---- rule 8: revalidate first ----------------------------------------------- */
static void s_revalidate_first(sq_plan_db_input *in) {
  fx_base(in);
  in->primary.status = SQ_DB_STATUS_INACCESSIBLE;
  fx_set(&in->desired.protector_uri, KB1);
}
static void s_inaccessible_no_access(sq_plan_db_input *in) {
  s_revalidate_first(in);
  sq_plan_key_fact k = {.uri = KA1, .exists = 1, .enabled = 0};
  sq_plan_facts_add_key(&in->facts, &k, NULL);
}

/* ---- rule 9: deletionPolicy --------------------------------------------------- */
static void s_delete_retain(sq_plan_db_input *in) {
  fx_base(in);
  fx_secondary(in, SRV2, 1, KA1);
  in->desired.being_deleted = 1;
}
static void s_delete_delete(sq_plan_db_input *in) {
  s_delete_retain(in);
  in->desired.deletion_policy = SQ_DELETION_DELETE;
  /* a missing VaultKey must not block the teardown */
  fx_set(&in->desired.unresolved, "VaultKey key-a not found");
}
static void s_delete_gone(sq_plan_db_input *in) {
  fx_base(in);
  in->desired.being_deleted = 1;
  in->desired.deletion_policy = SQ_DELETION_DELETE;
  in->primary.exists = 0;
}
static void s_delete_undeclared(sq_plan_db_input *in) {
  fx_base(in);
  in->desired.being_deleted = 1;
  in->desired.deletion_policy = SQ_DELETION_DELETE;
  sq_plan_observed_db *o = &in->secondaries[in->n_secondaries++];
  fx_observed(o, SRV3, UMI1, KA1, SQ_SERVER_ENC_SERVICE_MANAGED);
}

/* ---- rule 10: secondaries: create with current keys; <= 4; no chaining ------- */
static void s_create_secondary(sq_plan_db_input *in) {
  fx_base(in);
  fx_add(&in->primary.keys, KC1);
  fx_add(&in->primary.current_keys, KC1); /* old VLFs still under C1 */
  fx_secondary(in, SRV2, 0, NULL);
}
static void s_create_secondary_after_migration(sq_plan_db_input *in) {
  fx_base(in);
  fx_set(&in->desired.protector_uri, KB1);
  fx_secondary(in, SRV2, 0, NULL);
}
static void s_too_many_secondaries(sq_plan_db_input *in) {
  fx_base(in);
  const char *s[] = {SRV2, SRV3, SRV4, SRV5, SRV6};
  for(int i = 0; i < 5; i++)
    fx_secondary(in, s[i], 1, KA1);
}
static void s_secondary_on_own_server(sq_plan_db_input *in) {
  fx_base(in);
  fx_set(&in->desired.secondaries[in->desired.n_secondaries++].server_id, SRV1);
}
static void s_chaining(sq_plan_db_input *in) {
  fx_base(in);
  in->primary.role = SQ_ROLE_SECONDARY;
  fx_secondary(in, SRV2, 1, KA1);
}
static void s_duplicate_secondary(sq_plan_db_input *in) {
  fx_base(in);
  fx_secondary(in, SRV2, 1, KA1);
  fx_set(&in->desired.secondaries[in->desired.n_secondaries++].server_id, SRV2);
}
static void s_secondary_not_observed(sq_plan_db_input *in) {
  fx_base(in);
  fx_set(&in->desired.secondaries[in->desired.n_secondaries++].server_id, SRV2);
}
static void s_undeclared_secondary_kept_in_step(sq_plan_db_input *in) {
  s_geo_migration(in);
  in->desired.n_secondaries = 1; /* srv3 exists but is no longer declared */
  sq_plan_set_str(&in->desired.secondaries[1].server_id, NULL, NULL);
}

/* ---- creation, gates, spec ----------------------------------------------------- */
static void s_create_primary(sq_plan_db_input *in) {
  fx_base(in);
  in->primary.exists = 0;
  fx_add(&in->desired.keys, KC1);
}
static void s_busy(sq_plan_db_input *in) {
  fx_base(in);
  in->primary.status = SQ_DB_STATUS_CREATING;
  fx_set(&in->primary.status_text, "Creating");
}
static void s_not_observed(sq_plan_db_input *in) {
  fx_base(in);
  in->primary.known = 0;
}
static void s_unresolved(sq_plan_db_input *in) {
  fx_base(in);
  fx_set(&in->desired.unresolved, "VaultKey key-b not found");
}
static void s_invalid_from_controller(sq_plan_db_input *in) {
  fx_base(in);
  in->desired.invalid = 1;
  fx_set(&in->desired.invalid_message, "spec.keys[0].vaultKey: empty name");
}
static void s_cmk_without_identity(sq_plan_db_input *in) {
  fx_base(in);
  sq_plan_set_str(&in->desired.identity_id, NULL, NULL);
}
static void s_pinned_with_auto(sq_plan_db_input *in) {
  fx_base(in);
  in->desired.protector_pinned = 1;
  in->desired.auto_rotation = 1;
}
static void s_bad_key_uri(sq_plan_db_input *in) {
  fx_base(in);
  fx_add(&in->desired.keys, "https://kv1.vault.azure.net/secrets/x/1");
}
static void new_protector(sq_plan_db_input *in) {
  fx_base(in);
  fx_set(&in->desired.protector_uri, KB1);
}
static void s_key_disabled(sq_plan_db_input *in) {
  new_protector(in);
  sq_plan_key_fact k = {.uri = KB1, .exists = 1, .enabled = 0};
  sq_plan_facts_add_key(&in->facts, &k, NULL);
}
static void s_key_not_found(sq_plan_db_input *in) {
  new_protector(in);
  sq_plan_key_fact k = {.uri = KB1, .exists = 0};
  sq_plan_facts_add_key(&in->facts, &k, NULL);
}
static void s_key_expired(sq_plan_db_input *in) {
  new_protector(in);
  sq_plan_key_fact k = {.uri = KB1, .exists = 1, .enabled = 1, .exp_s = NOW - 1};
  sq_plan_facts_add_key(&in->facts, &k, NULL);
}
static void s_key_not_observed(sq_plan_db_input *in) {
  new_protector(in);
  fx_set(&in->desired.protector_uri, KV "tdeZ/zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz1");
}
static void s_missing_perms(sq_plan_db_input *in) {
  new_protector(in);
  sq_plan_access a = {
      .key_uri = KB1, .identity_id = UMI1, .state = SQ_ACCESS_MISSING, .missing = SQ_PERM_UNWRAP};
  sq_plan_facts_add_access(&in->facts, &a, NULL);
}
static void s_permission_pending(sq_plan_db_input *in) {
  new_protector(in);
  sq_plan_access a = {
      .key_uri = KB1, .identity_id = UMI1, .state = SQ_ACCESS_GRANTED, .granted_s = NOW - 240};
  sq_plan_facts_add_access(&in->facts, &a, NULL);
}
static void s_access_unknown_proceeds(sq_plan_db_input *in) {
  new_protector(in);
  sq_plan_access a = {.key_uri = KB1, .identity_id = UMI1, .state = SQ_ACCESS_UNKNOWN};
  sq_plan_facts_add_access(&in->facts, &a, NULL);
}
static void s_later_step_blocked(sq_plan_db_input *in) {
  s_key_disabled(in);
  sq_plan_list_free(&in->primary.identities);
  fx_add(&in->primary.identities, UMI2);
}

static const dbcase cases[] = {
    /* rule 1 */
    {"converged", s_converged, SQ_PLAN_CONVERGED, SQ_REASON_UP_TO_DATE, "", 0, NULL, NULL},
    {"converged_geo", s_converged_geo, SQ_PLAN_CONVERGED, SQ_REASON_UP_TO_DATE, "", 0, NULL, NULL},
    {"converged_server_level", s_converged_server_level, SQ_PLAN_CONVERGED, SQ_REASON_UP_TO_DATE,
     "", 0, NULL, NULL},
    /* rule 2 */
    {"multiple_identities", s_multiple_identities, SQ_PLAN_PROGRESSING, SQ_REASON_PROGRESSING,
     "SetIdentity/p[umi1 -umi2]", SQ_REASON_MULTIPLE_IDENTITIES, "exactly one", NULL},
    {"identity_before_keys", s_identity_before_keys, SQ_PLAN_PROGRESSING, SQ_REASON_PROGRESSING,
     "SetIdentity/p[umi1]; AddKeys/p[C1,A1]; SetProtector/p[A1]", 0, NULL, NULL},
    {"identity_swap_needs_access", s_identity_swap_needs_access, SQ_PLAN_REFUSED,
     SQ_REASON_IDENTITY_MISSING_PERMISSIONS, "", 0, NULL, "wrapKey, unwrapKey"},
    {"fcid", s_fcid, SQ_PLAN_PROGRESSING, SQ_REASON_PROGRESSING, "SetFederatedClientId/p[set]", 0,
     NULL, NULL},
    /* rule 3 */
    {"geo_migration", s_geo_migration, SQ_PLAN_PROGRESSING, SQ_REASON_PROGRESSING,
     "AddKeys/p[B1]; AddKeys/srv2[B1]; AddKeys/srv3[B1]; SetProtector/p[B1]; "
     "SetProtector/srv2[B1]; SetProtector/srv3[B1]",
     0, NULL, NULL},
    {"geo_invariant_repair", s_geo_invariant_repair, SQ_PLAN_PROGRESSING, SQ_REASON_PROGRESSING,
     "AddKeys/srv2[A1]; SetProtector/srv2[A1]", 0, NULL, NULL},
    {"geo_invariant_repair_during_migration", s_geo_invariant_repair_during_migration,
     SQ_PLAN_PROGRESSING, SQ_REASON_PROGRESSING,
     "AddKeys/p[C1]; AddKeys/srv2[C1,A1]; SetProtector/p[C1]; SetProtector/srv2[C1]", 0, NULL,
     NULL},
    {"geo_from_server_level", s_geo_from_server_level, SQ_PLAN_PROGRESSING, SQ_REASON_PROGRESSING,
     "AddKeys/p[A1]; AddKeys/srv2[A1]; SetProtector/p[A1]; SetProtector/srv2[A1]", 0, NULL, NULL},
    {"undeclared_secondary_kept_in_step", s_undeclared_secondary_kept_in_step, SQ_PLAN_PROGRESSING,
     SQ_REASON_PROGRESSING,
     "AddKeys/p[B1]; AddKeys/srv2[B1]; AddKeys/srv3[B1]; SetProtector/p[B1]; "
     "SetProtector/srv2[B1]; SetProtector/srv3[B1]",
     SQ_REASON_UNDECLARED_SECONDARY, "srv3", NULL},
    /* rule 4 */
    {"revert_smk", s_revert_smk, SQ_PLAN_PROGRESSING, SQ_REASON_PROGRESSING, "Revert/p", 0, NULL,
     NULL},
    {"revert_cmk_refused", s_revert_cmk, SQ_PLAN_REFUSED,
     SQ_REASON_REVERT_NOT_ALLOWED_WITH_SERVER_CMK, "", 0, NULL,
     "RevertDatabaseLevelKeyOnlySupportedWithSMK"},
    {"revert_geo_secondary_cmk_refused_before_any_revert", s_revert_geo_secondary_cmk,
     SQ_PLAN_REFUSED, SQ_REASON_REVERT_NOT_ALLOWED_WITH_SERVER_CMK, "", 0, NULL, "srv2"},
    {"revert_geo", s_revert_geo, SQ_PLAN_PROGRESSING, SQ_REASON_PROGRESSING,
     "Revert/p; Revert/srv2", 0, NULL, NULL},
    {"opt_in_smk_on_cmk_refused", s_opt_in_smk_on_cmk, SQ_PLAN_REFUSED,
     SQ_REASON_OPT_IN_TO_SMK_NOT_ALLOWED, "", 0, NULL, "can't opt into SMK"},
    {"smk_on_smk_server_reverts", s_smk_on_smk_reverts, SQ_PLAN_PROGRESSING, SQ_REASON_PROGRESSING,
     "Revert/p", 0, NULL, NULL},
    {"server_level_on_cmk_server_converged", s_server_level_on_cmk_server, SQ_PLAN_CONVERGED,
     SQ_REASON_UP_TO_DATE, "", 0, NULL, NULL},
    /* rule 5 */
    {"remove_keys", s_remove_keys, SQ_PLAN_PROGRESSING, SQ_REASON_PROGRESSING, "RemoveKeys/p[C1]",
     SQ_REASON_KEY_REMOVAL_WOULD_STRAND_BACKUP, "tdeB", NULL},
    {"remove_keys_vlf", s_remove_keys, SQ_PLAN_PROGRESSING, SQ_REASON_PROGRESSING,
     "RemoveKeys/p[C1]", SQ_REASON_KEY_REMOVAL_WOULD_STRAND_BACKUP, "tdeD", NULL},
    {"remove_deferred", s_remove_deferred, SQ_PLAN_CONVERGED, SQ_REASON_UP_TO_DATE, "",
     SQ_REASON_KEY_REMOVAL_DEFERRED, "tdeC", NULL},
    {"removal_last_old_protector_kept", s_removal_last, SQ_PLAN_PROGRESSING, SQ_REASON_PROGRESSING,
     "AddKeys/p[B1]; SetProtector/p[B1]; RemoveKeys/p[C1]",
     SQ_REASON_KEY_REMOVAL_WOULD_STRAND_BACKUP, "tdeA", NULL},
    {"remove_on_secondary_keeps_primary_backup", s_remove_on_secondary_keeps_primary_backup,
     SQ_PLAN_PROGRESSING, SQ_REASON_PROGRESSING, "RemoveKeys/srv2[C1]",
     SQ_REASON_KEY_REMOVAL_WOULD_STRAND_BACKUP, "tdeB", NULL},
    /* rule 6 */
    {"auto_newer_version_no_write", s_auto_newer_version_no_write, SQ_PLAN_CONVERGED,
     SQ_REASON_UP_TO_DATE, "", 0, NULL, NULL},
    {"auto_overdue", s_auto_overdue, SQ_PLAN_CONVERGED, SQ_REASON_UP_TO_DATE, "",
     SQ_REASON_AUTO_ROTATION_OVERDUE, "24 h", NULL},
    {"auto_enable_first", s_auto_enable_first, SQ_PLAN_PROGRESSING, SQ_REASON_PROGRESSING,
     "SetAutoRotation/p[on]", 0, NULL, NULL},
    {"auto_disable_sets_version", s_auto_disable, SQ_PLAN_PROGRESSING, SQ_REASON_PROGRESSING,
     "AddKeys/p[A2]; SetProtector/p[A2]", 0, NULL, NULL},
    {"auto_only_flag", s_auto_only_flag, SQ_PLAN_PROGRESSING, SQ_REASON_PROGRESSING,
     "SetAutoRotation/p[on]", 0, NULL, NULL},
    /* rule 7 */
    {"rotation_blocked", s_rotation_blocked, SQ_PLAN_WAITING, SQ_REASON_ROTATION_BLOCKED, "", 0,
     NULL, SQ_PLAN_ROTATION_BLOCKED_CODE},
    {"rotation_retry_due", s_rotation_retry_due, SQ_PLAN_PROGRESSING, SQ_REASON_PROGRESSING,
     "SetProtector/p[B1]", 0, NULL, NULL},
    {"rotation_failure_elsewhere", s_rotation_other_server, SQ_PLAN_PROGRESSING,
     SQ_REASON_PROGRESSING, "SetProtector/p[B1]", 0, NULL, NULL},
    /* rule 8 */
    {"revalidate_first", s_revalidate_first, SQ_PLAN_PROGRESSING, SQ_REASON_PROGRESSING,
     "Revalidate/p; AddKeys/p[B1]; SetProtector/p[B1]", 0, NULL, NULL},
    {"inaccessible_without_access", s_inaccessible_no_access, SQ_PLAN_WAITING,
     SQ_REASON_DATABASE_INACCESSIBLE, "", 0, NULL, "disabled"},
    /* rule 9 */
    {"delete_retain", s_delete_retain, SQ_PLAN_CONVERGED, SQ_REASON_RETAINED, "", 0, NULL,
     "no Azure call"},
    {"delete_secondaries_first", s_delete_delete, SQ_PLAN_PROGRESSING, SQ_REASON_PROGRESSING,
     "DeleteDatabase/srv2; DeleteDatabase/p", 0, NULL, NULL},
    {"delete_gone", s_delete_gone, SQ_PLAN_CONVERGED, SQ_REASON_DELETED, "", 0, NULL, NULL},
    {"delete_undeclared_refused", s_delete_undeclared, SQ_PLAN_REFUSED,
     SQ_REASON_UNDECLARED_SECONDARY, "", 0, NULL, "srv3"},
    /* rule 10 */
    {"create_secondary_current_keys", s_create_secondary, SQ_PLAN_PROGRESSING,
     SQ_REASON_PROGRESSING, "CreateDatabase/srv2[Secondary umi1 P=A1 K=A1,C1]", 0, NULL, NULL},
    {"create_secondary_after_migration", s_create_secondary_after_migration, SQ_PLAN_PROGRESSING,
     SQ_REASON_PROGRESSING,
     "AddKeys/p[B1]; SetProtector/p[B1]; CreateDatabase/srv2[Secondary umi1 P=B1 K=A1,B1]", 0, NULL,
     NULL},
    {"too_many_secondaries", s_too_many_secondaries, SQ_PLAN_REFUSED, SQ_REASON_INVALID_SPEC, "", 0,
     NULL, "at most 4"},
    {"secondary_on_own_server", s_secondary_on_own_server, SQ_PLAN_REFUSED, SQ_REASON_INVALID_SPEC,
     "", 0, NULL, "own server"},
    {"chaining", s_chaining, SQ_PLAN_REFUSED, SQ_REASON_INVALID_SPEC, "", 0, NULL, "chain"},
    {"duplicate_secondary", s_duplicate_secondary, SQ_PLAN_REFUSED, SQ_REASON_INVALID_SPEC, "", 0,
     NULL, "twice"},
    {"secondary_not_observed", s_secondary_not_observed, SQ_PLAN_WAITING,
     SQ_REASON_OBSERVATION_INCOMPLETE, "", 0, NULL, "srv2"},
    /* creation, gates, spec */
    {"create_primary", s_create_primary, SQ_PLAN_PROGRESSING, SQ_REASON_PROGRESSING,
     "CreateDatabase/p[Default umi1 P=A1 K=C1,A1]", 0, NULL, NULL},
    {"busy", s_busy, SQ_PLAN_WAITING, SQ_REASON_DATABASE_BUSY, "", 0, NULL, "Creating"},
    {"not_observed", s_not_observed, SQ_PLAN_WAITING, SQ_REASON_OBSERVATION_INCOMPLETE, "", 0, NULL,
     NULL},
    {"unresolved", s_unresolved, SQ_PLAN_WAITING, SQ_REASON_REFERENCE_NOT_FOUND, "", 0, NULL,
     "key-b"},
    {"invalid_from_controller", s_invalid_from_controller, SQ_PLAN_REFUSED, SQ_REASON_INVALID_SPEC,
     "", 0, NULL, "spec.keys[0]"},
    {"cmk_without_identity", s_cmk_without_identity, SQ_PLAN_REFUSED, SQ_REASON_INVALID_SPEC, "", 0,
     NULL, "spec.identity"},
    {"pinned_with_auto", s_pinned_with_auto, SQ_PLAN_REFUSED, SQ_REASON_INVALID_SPEC, "", 0, NULL,
     "pinned"},
    {"bad_key_uri", s_bad_key_uri, SQ_PLAN_REFUSED, SQ_REASON_INVALID_SPEC, "", 0, NULL,
     "spec.keys[0]"},
    {"key_disabled", s_key_disabled, SQ_PLAN_WAITING, SQ_REASON_KEY_DISABLED, "", 0, NULL,
     "AzureKeyVaultKeyDisabled"},
    {"key_not_found", s_key_not_found, SQ_PLAN_WAITING, SQ_REASON_KEY_NOT_FOUND, "", 0, NULL,
     "tdeB"},
    {"key_expired", s_key_expired, SQ_PLAN_WAITING, SQ_REASON_KEY_EXPIRED, "", 0, NULL, "expired"},
    {"key_not_observed", s_key_not_observed, SQ_PLAN_WAITING, SQ_REASON_KEY_NOT_OBSERVED, "", 0,
     NULL, "tdeZ"},
    {"missing_permissions", s_missing_perms, SQ_PLAN_REFUSED,
     SQ_REASON_IDENTITY_MISSING_PERMISSIONS, "", 0, NULL, "lacks unwrapKey"},
    {"permission_pending", s_permission_pending, SQ_PLAN_WAITING, SQ_REASON_PERMISSION_PENDING, "",
     0, NULL, "10 minutes"},
    {"access_unknown_proceeds", s_access_unknown_proceeds, SQ_PLAN_PROGRESSING,
     SQ_REASON_PROGRESSING, "AddKeys/p[B1]; SetProtector/p[B1]", SQ_REASON_ACCESS_UNVERIFIED,
     "tdeB", NULL},
    {"later_step_blocked", s_later_step_blocked, SQ_PLAN_PROGRESSING, SQ_REASON_PROGRESSING,
     "SetIdentity/p[umi1 -umi2]", SQ_REASON_KEY_DISABLED, "after step 1", NULL},
};

static void run_case(const dbcase *c) {
  sq_plan_db_input in;
  sq_plan p = {0};
  printf("  case %s\n", c->name);
  c->setup(&in);
  ASSERT_OK(sq_plan_db(&in, &p, NULL));
  if(strcmp(fx_sig(&p), c->sig) || p.verdict != c->verdict || p.reason != c->reason)
    printf("    got %s/%s: [%s] %s\n", sq_plan_verdict_name(p.verdict),
           sq_plan_reason_name(p.reason), fx_sig(&p), p.message ? p.message : "");
  ASSERT_STR_EQ(fx_sig(&p), c->sig);
  ASSERT_EQ(p.verdict, c->verdict);
  ASSERT_EQ(p.reason, c->reason);
  ASSERT(p.message != NULL);
  if(c->message_text)
    ASSERT_STR_CONTAINS(p.message, c->message_text);
  if(c->finding && !fx_has_finding(&p, c->finding, c->finding_text)) {
    for(size_t i = 0; i < p.n_findings; i++)
      printf("    finding %s: %s\n", sq_plan_reason_name(p.findings[i].reason),
             p.findings[i].message);
    ASSERT(!"expected finding missing");
  }
  /* a plan is steps XOR a wait/refusal/convergence */
  ASSERT_EQ(p.n_steps > 0, p.verdict == SQ_PLAN_PROGRESSING);
  for(size_t i = 0; i < p.n_steps; i++)
    ASSERT(p.steps[i].description[0] != '\0');
  sq_plan_free(&p);
  sq_plan_db_input_free(&in);
}

TEST(rule_table) {
  for(size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    run_case(&cases[i]);
  printf("  %zu cases\n", sizeof cases / sizeof cases[0]);
}

/* Rule 7 in numbers: the wait is what remains of 1 min * 2^(attempts-1),
 * capped at 30 min, so a blocked rotation never turns into a hot loop. */
TEST(rotation_backoff_grows_and_is_bounded) {
  struct {
    int64_t ago;
    unsigned attempts;
    int64_t want_ms;
  } t[] = {
      {30, 1, 30 * 1000},       {0, 2, 120 * 1000},  {100, 3, 140 * 1000}, {0, 6, 30 * 60 * 1000},
      {0, 100, 30 * 60 * 1000}, {-50, 1, 60 * 1000}, {1799, 40, 1000},
  };
  int64_t prev = 0;
  for(size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    sq_plan_db_input in;
    sq_plan p = {0};
    blocked(&in, t[i].ago, t[i].attempts);
    ASSERT_OK(sq_plan_db(&in, &p, NULL));
    ASSERT_EQ(p.verdict, SQ_PLAN_WAITING);
    ASSERT_EQ(p.reason, SQ_REASON_ROTATION_BLOCKED);
    ASSERT_EQ(p.retry_after_ms, t[i].want_ms);
    ASSERT_LE(p.retry_after_ms, SQ_PLAN_ROTATION_BACKOFF_MAX_MS);
    ASSERT_EQ(sq_plan_kstatus_of(&p), SQ_PLAN_KSTATUS_RECONCILING);
    sq_plan_free(&p);
    sq_plan_db_input_free(&in);
    (void)prev;
  }
  /* the delay doubles with attempts until the cap */
  for(unsigned a = 1; a < 12; a++) {
    sq_plan_db_input in;
    sq_plan p = {0};
    blocked(&in, 0, a);
    ASSERT_OK(sq_plan_db(&in, &p, NULL));
    ASSERT_GE(p.retry_after_ms, prev);
    prev = p.retry_after_ms;
    sq_plan_free(&p);
    sq_plan_db_input_free(&in);
  }
  ASSERT_EQ(prev, SQ_PLAN_ROTATION_BACKOFF_MAX_MS);
}

TEST(permission_pending_waits_for_the_rest_of_ten_minutes) {
  sq_plan_db_input in;
  sq_plan p = {0};
  s_permission_pending(&in);
  ASSERT_OK(sq_plan_db(&in, &p, NULL));
  ASSERT_EQ(p.retry_after_ms, (600 - 240) * 1000);
  sq_plan_free(&p);
  sq_plan_db_input_free(&in);
  /* 11 minutes later the same grant is effective */
  s_permission_pending(&in);
  in.now += 660;
  ASSERT_OK(sq_plan_db(&in, &p, NULL));
  ASSERT_STR_EQ(fx_sig(&p), "AddKeys/p[B1]; SetProtector/p[B1]");
  sq_plan_free(&p);
  sq_plan_db_input_free(&in);
}

TEST(kstatus_mapping) {
  struct {
    void (*setup)(sq_plan_db_input *);
    sq_plan_kstatus want;
  } t[] = {
      {s_converged, SQ_PLAN_KSTATUS_READY},
      {s_geo_migration, SQ_PLAN_KSTATUS_RECONCILING},
      {s_busy, SQ_PLAN_KSTATUS_RECONCILING},
      {s_key_disabled, SQ_PLAN_KSTATUS_STALLED},
      {s_revert_cmk, SQ_PLAN_KSTATUS_STALLED},
      {s_too_many_secondaries, SQ_PLAN_KSTATUS_STALLED},
      {s_permission_pending, SQ_PLAN_KSTATUS_RECONCILING},
      {s_inaccessible_no_access, SQ_PLAN_KSTATUS_STALLED},
  };
  for(size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    sq_plan_db_input in;
    sq_plan p = {0};
    t[i].setup(&in);
    ASSERT_OK(sq_plan_db(&in, &p, NULL));
    ASSERT_EQ(sq_plan_kstatus_of(&p), t[i].want);
    sq_plan_free(&p);
    sq_plan_db_input_free(&in);
  }
  /* a spec refusal waits for a spec change; environment refusals re-check */
  sq_plan_db_input in;
  sq_plan p = {0};
  s_too_many_secondaries(&in);
  ASSERT_OK(sq_plan_db(&in, &p, NULL));
  ASSERT_EQ(p.retry_after_ms, 0);
  sq_plan_free(&p);
  sq_plan_db_input_free(&in);
  s_revert_cmk(&in);
  ASSERT_OK(sq_plan_db(&in, &p, NULL));
  ASSERT_GT(p.retry_after_ms, 0);
  sq_plan_free(&p);
  sq_plan_db_input_free(&in);
}

/* The payload of a geo-secondary create: source id, identity, location and
 * exactly the primary's current keys and protector. */
TEST(create_secondary_payload) {
  sq_plan_db_input in;
  sq_plan p = {0};
  s_create_secondary(&in);
  ASSERT_OK(sq_plan_db(&in, &p, NULL));
  ASSERT_EQ(p.n_steps, 1);
  const sq_plan_step *s = &p.steps[0];
  ASSERT_EQ(s->target, SQ_TARGET_SECONDARY);
  ASSERT_EQ(s->secondary, 0);
  ASSERT_STR_EQ(s->server_id, SRV2);
  ASSERT_STR_EQ(s->database, "db1");
  ASSERT_STR_EQ(s->source_database_id, SRV1 "/databases/db1");
  ASSERT_STR_EQ(s->location, "northeurope");
  ASSERT_STR_EQ(s->identity_id, UMI1);
  ASSERT_STR_EQ(s->protector_uri, KA1);
  ASSERT_EQ(s->keys.n, 2);
  ASSERT(sq_plan_list_has(&s->keys, KC1));
  sq_plan_free(&p);
  sq_plan_db_input_free(&in);
}

/* Removal never names a key that is current, backup-needed or a protector,
 * on the primary or on a secondary. */
TEST(removal_never_strands) {
  sq_plan_db_input in;
  sq_plan p = {0};
  s_remove_keys(&in);
  ASSERT_OK(sq_plan_db(&in, &p, NULL));
  for(size_t i = 0; i < p.n_steps; i++) {
    const sq_plan_list *r = &p.steps[i].remove_keys;
    ASSERT(!sq_plan_list_has(r, KA1));
    ASSERT(!sq_plan_list_has(r, KB1));
    ASSERT(!sq_plan_list_has(r, KD1));
  }
  sq_plan_free(&p);
  sq_plan_db_input_free(&in);
}

/* Total on nonsense: empty input, garbage URIs, extreme times. */
TEST(total_on_degenerate_input) {
  sq_plan_db_input in;
  sq_plan p = {0};
  memset(&in, 0, sizeof in);
  ASSERT_OK(sq_plan_db(&in, &p, NULL));
  ASSERT_EQ(p.verdict, SQ_PLAN_REFUSED);
  ASSERT_EQ(p.reason, SQ_REASON_INVALID_SPEC);
  sq_plan_free(&p);
  fx_base(&in);
  in.now = INT64_MIN;
  fx_set(&in.last_failure.code, SQ_PLAN_ROTATION_BLOCKED_CODE);
  fx_set(&in.last_failure.server_id, SRV1);
  in.last_failure.at_s = INT64_MAX;
  in.last_failure.attempts = 0xffffffffu;
  fx_set(&in.desired.protector_uri, KB1);
  sq_plan_access a = {
      .key_uri = KB1, .identity_id = UMI1, .state = SQ_ACCESS_GRANTED, .granted_s = INT64_MAX};
  sq_plan_facts_add_access(&in.facts, &a, NULL);
  ASSERT_OK(sq_plan_db(&in, &p, NULL));
  ASSERT(p.verdict == SQ_PLAN_WAITING || p.verdict == SQ_PLAN_PROGRESSING);
  ASSERT_LE(p.retry_after_ms, SQ_PLAN_ROTATION_BACKOFF_MAX_MS);
  sq_plan_free(&p);
  sq_plan_db_input_free(&in);
}

TEST(list_and_uri_helpers) {
  sq_plan_list l = {0};
  ASSERT_OK(sq_plan_list_add(&l, KA1, NULL));
  ASSERT_OK(sq_plan_list_add(
      &l, "HTTPS://KV1.VAULT.AZURE.NET/keys/tdeA/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1/", NULL));
  ASSERT_EQ(l.n, 1);
  ASSERT_EQ(sq_plan_list_add(&l, "", NULL), SQ_EINVAL);
  for(int i = 1; i < SQ_PLAN_LIST_MAX; i++) {
    char k[128];
    snprintf(k, sizeof k, KV "k%d/00000000000000000000000000000001", i);
    ASSERT_OK(sq_plan_list_add(&l, k, NULL));
  }
  ASSERT_EQ(sq_plan_list_add(&l, KB1, NULL), SQ_ETOOBIG);
  sq_plan_list_free(&l);
  ASSERT(sq_plan_same_key(KA1, KA2));
  ASSERT(!sq_plan_same_key(KA1, KB1));
  ASSERT(sq_plan_key_uri_valid(KV "tdeA"));
  ASSERT(!sq_plan_key_uri_valid("http://kv1.vault.azure.net/keys/a/b"));
  ASSERT(!sq_plan_key_uri_valid("https://kv1.vault.azure.net/keys//b"));
  ASSERT(!sq_plan_key_uri_valid(NULL));
  ASSERT_EQ(sq_plan_db_status_parse("Online"), SQ_DB_STATUS_ONLINE);
  ASSERT_EQ(sq_plan_db_status_parse("Inaccessible"), SQ_DB_STATUS_INACCESSIBLE);
  ASSERT_EQ(sq_plan_db_status_parse("Scaling"), SQ_DB_STATUS_OTHER);
  ASSERT_EQ(sq_plan_db_status_parse(""), SQ_DB_STATUS_UNKNOWN);
  char *s = NULL;
  char big[SQ_PLAN_STR_MAX + 2];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  ASSERT_EQ(sq_plan_set_str(&s, big, NULL), SQ_EINVAL);
  ASSERT_NULL(s);
}

TEST_MAIN()
