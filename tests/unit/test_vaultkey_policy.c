/* Unit tests for the pure VaultKey and KeyVault decisions (operator/keypolicy.h):
 * what to write next, replication, rotation triggers, expiry, versions in
 * status, referrers that block deletion, and PEM inspection. */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

#include "sqltde/jsonx.h"
#include "sqltde/operator/keypolicy.h"
#include "test.h"

#define NOW 1700000000LL
#define DAY (24 * 3600LL)
#define TP_A "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define TP_B "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
#define TP_C "CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC"

static sq_vk_input *mk(size_t nv) {
  sq_vk_input *in = calloc(1, sizeof *in);
  in->now = NOW;
  snprintf(in->key_name, sizeof in->key_name, "tde1");
  snprintf(in->kty, sizeof in->kty, "RSA");
  in->size = 3072;
  in->expiry_warning_ms = 30 * DAY * 1000;
  in->n_vaults = nv;
  for(size_t i = 0; i < nv; i++) {
    sq_vk_vault *v = &in->vaults[i];
    snprintf(v->name, sizeof v->name, "kv%zu", i + 1);
    snprintf(v->origin, sizeof v->origin, "https://kv%zu.vault.azure.net", i + 1);
    snprintf(v->subscription, sizeof v->subscription, "sub-a");
    v->state = SQ_VAULT_READY;
    v->observed = 1;
  }
  return in;
}

static sq_vk_version *addv(sq_vk_vault *v, const char *ver, const char *tp, int64_t created) {
  sq_vk_version *x = &v->v[v->n++];
  memset(x, 0, sizeof *x);
  snprintf(x->version, sizeof x->version, "%s", ver);
  snprintf(x->thumbprint, sizeof x->thumbprint, "%s", tp);
  x->enabled = 1;
  x->created = created;
  v->key_exists = 1;
  sq_vk_sort_versions(v);
  return sq_vk_find_thumbprint(v, tp) >= 0 ? &v->v[sq_vk_find_thumbprint(v, tp)] : x;
}

/* ---- sq_vk_decide ----------------------------------------------------------- */

TEST(primary_vault_not_ready_blocks_everything) {
  static const struct {
    sq_vault_state st;
    sq_kstate want;
    const char *reason;
  } rows[] = {{SQ_VAULT_MISSING, SQ_KSTATE_RECONCILING, "VaultNotFound"},
              {SQ_VAULT_WAITING, SQ_KSTATE_RECONCILING, "WaitingForVault"},
              {SQ_VAULT_STALLED, SQ_KSTATE_STALLED, "VaultNotReady"}};
  for(size_t i = 0; i < 3; i++) {
    sq_vk_input *in = mk(2);
    in->vaults[0].state = rows[i].st;
    in->vaults[0].observed = 0;
    snprintf(in->vaults[0].state_reason, sizeof in->vaults[0].state_reason, "PurgeProtectionDisabled");
    sq_vk_decision d;
    sq_vk_decide(in, &d);
    ASSERT_EQ(d.action, SQ_VK_ACT_NONE);
    ASSERT_EQ(d.verdict.state, rows[i].want);
    ASSERT_STR_EQ(d.verdict.reason, rows[i].reason);
    ASSERT_STR_CONTAINS(d.verdict.message, "kv1");
    ASSERT_EQ(d.current, -1);
    ASSERT_EQ(d.replicated, -1);
    free(in);
  }
}

TEST(absent_key_by_source) {
  sq_vk_decision d;
  sq_vk_input *in = mk(1);
  in->source = SQ_VK_SRC_GENERATE;
  sq_vk_decide(in, &d);
  ASSERT_EQ(d.action, SQ_VK_ACT_CREATE);
  ASSERT_EQ(d.vault, 0);
  ASSERT_STR_CONTAINS(d.why, "RSA-3072");

  in->source = SQ_VK_SRC_IMPORT;
  snprintf(in->pem_thumbprint, sizeof in->pem_thumbprint, TP_A);
  sq_vk_decide(in, &d);
  ASSERT_EQ(d.action, SQ_VK_ACT_IMPORT);
  ASSERT_EQ(d.vault, 0);

  /* existing: wait, never create; a minute, not a hot loop */
  in->source = SQ_VK_SRC_EXISTING;
  sq_vk_decide(in, &d);
  ASSERT_EQ(d.action, SQ_VK_ACT_NONE);
  ASSERT_EQ(d.verdict.state, SQ_KSTATE_RECONCILING);
  ASSERT_STR_EQ(d.verdict.reason, "KeyNotFound");
  ASSERT_EQ(d.verdict.requeue_ms, SQ_VK_WAIT_MS);
  free(in);
}

TEST(import_follows_the_secret) {
  sq_vk_decision d;
  sq_vk_input *in = mk(1);
  in->source = SQ_VK_SRC_IMPORT;
  addv(&in->vaults[0], "v1", TP_A, NOW - DAY);
  snprintf(in->pem_thumbprint, sizeof in->pem_thumbprint, TP_A);
  sq_vk_decide(in, &d);
  ASSERT_EQ(d.action, SQ_VK_ACT_NONE);
  ASSERT_EQ(d.verdict.state, SQ_KSTATE_READY);
  ASSERT_STR_EQ(d.verdict.reason, "KeyReady");
  /* a new PEM in the Secret: imported as a new version */
  snprintf(in->pem_thumbprint, sizeof in->pem_thumbprint, TP_B);
  sq_vk_decide(in, &d);
  ASSERT_EQ(d.action, SQ_VK_ACT_IMPORT);
  ASSERT_STR_CONTAINS(d.why, TP_B);
  /* material already present as an older version: no re-import (that would
   * turn back a rotation) */
  addv(&in->vaults[0], "v2", TP_C, NOW);
  snprintf(in->pem_thumbprint, sizeof in->pem_thumbprint, TP_A);
  sq_vk_decide(in, &d);
  ASSERT_EQ(d.action, SQ_VK_ACT_NONE);
  ASSERT_EQ(d.current, 0);
  ASSERT_STR_EQ(in->vaults[0].v[d.current].version, "v2");
  free(in);
}

TEST(current_is_the_newest_version) {
  sq_vk_decision d;
  sq_vk_input *in = mk(1);
  addv(&in->vaults[0], "aaa", TP_A, NOW - 10 * DAY);
  addv(&in->vaults[0], "zzz", TP_B, NOW - 20 * DAY);
  addv(&in->vaults[0], "mmm", TP_C, NOW - 1 * DAY);
  sq_vk_decide(in, &d);
  ASSERT_EQ(d.current, 0);
  ASSERT_STR_EQ(in->vaults[0].v[0].version, "mmm");
  ASSERT_STR_CONTAINS(d.verdict.message, TP_C);
  free(in);
}

TEST(rotation_trigger_fires_once) {
  sq_vk_decision d;
  sq_vk_input *in = mk(1);
  addv(&in->vaults[0], "v1", TP_A, NOW - DAY);
  in->adopted = 1;
  snprintf(in->last_trigger, sizeof in->last_trigger, "t1");
  snprintf(in->trigger, sizeof in->trigger, "t2");
  sq_vk_decide(in, &d);
  ASSERT_EQ(d.action, SQ_VK_ACT_ROTATE);
  ASSERT_STR_EQ(d.rotate_tag, "t2");
  ASSERT_STR_EQ(d.trigger_to_record, "t1"); /* not recorded until the new version is seen */

  /* the rotated version carries the tag: recorded, no second rotation even if
   * status was never written (crash between rotate and status write) */
  sq_vk_version *n = addv(&in->vaults[0], "v2", TP_B, NOW);
  snprintf(n->trigger, sizeof n->trigger, "t2");
  sq_vk_decide(in, &d);
  ASSERT_EQ(d.action, SQ_VK_ACT_NONE);
  ASSERT_STR_EQ(d.trigger_to_record, "t2");

  /* recorded in status: nothing either */
  in->vaults[0].n = 1;
  snprintf(in->vaults[0].v[0].trigger, sizeof in->vaults[0].v[0].trigger, "%s", "");
  snprintf(in->last_trigger, sizeof in->last_trigger, "t2");
  sq_vk_decide(in, &d);
  ASSERT_EQ(d.action, SQ_VK_ACT_NONE);
  ASSERT_STR_EQ(d.trigger_to_record, "t2");
  free(in);
}

TEST(trigger_present_on_first_sight_does_not_rotate) {
  sq_vk_decision d;
  sq_vk_input *in = mk(1);
  addv(&in->vaults[0], "v1", TP_A, NOW - DAY);
  in->adopted = 0; /* status never had a current version */
  snprintf(in->trigger, sizeof in->trigger, "2025-01-01");
  sq_vk_decide(in, &d);
  ASSERT_EQ(d.action, SQ_VK_ACT_NONE);
  ASSERT_STR_EQ(d.trigger_to_record, "2025-01-01");
  free(in);
}

TEST(rotation_schedule) {
  sq_vk_decision d;
  sq_vk_input *in = mk(1);
  in->adopted = 1;
  in->rotation_every_ms = 90 * DAY * 1000;
  addv(&in->vaults[0], "old", TP_A, NOW - 100 * DAY);
  sq_vk_decide(in, &d);
  ASSERT_EQ(d.action, SQ_VK_ACT_ROTATE);
  ASSERT_STR_EQ(d.rotate_tag, ""); /* scheduled: no trigger tag */
  addv(&in->vaults[0], "new", TP_B, NOW - 10 * DAY);
  sq_vk_decide(in, &d);
  ASSERT_EQ(d.action, SQ_VK_ACT_NONE);
  ASSERT_EQ(d.verdict.state, SQ_KSTATE_READY);
  ASSERT_EQ(d.verdict.requeue_ms, 80 * DAY * 1000); /* when the next rotation is due */
  free(in);
}

TEST(no_rotation_across_vaults) {
  sq_vk_decision d;
  sq_vk_input *in = mk(2);
  in->adopted = 1;
  in->rotation_every_ms = DAY * 1000;
  snprintf(in->trigger, sizeof in->trigger, "t9");
  addv(&in->vaults[0], "v1", TP_A, NOW - 100 * DAY);
  addv(&in->vaults[1], "v1", TP_A, NOW - 100 * DAY);
  sq_vk_decide(in, &d);
  ASSERT_EQ(d.action, SQ_VK_ACT_NONE);
  ASSERT_EQ(d.replicated, 1);
  free(in);
}

TEST(backup_restore_replication) {
  sq_vk_decision d;
  sq_vk_input *in = mk(3);
  addv(&in->vaults[0], "v1", TP_A, NOW - DAY);
  addv(&in->vaults[2], "v1", TP_A, NOW - DAY);
  /* kv2 lacks the key: restore into it */
  sq_vk_decide(in, &d);
  ASSERT_EQ(d.action, SQ_VK_ACT_RESTORE);
  ASSERT_EQ(d.vault, 1);
  ASSERT_EQ(d.replicated, 0);
  ASSERT_EQ(d.holds[0], 1);
  ASSERT_EQ(d.holds[1], 0);
  ASSERT_EQ(d.holds[2], 1);
  /* another subscription: refused up front, no call */
  snprintf(in->vaults[1].subscription, sizeof in->vaults[1].subscription, "sub-b");
  sq_vk_decide(in, &d);
  ASSERT_EQ(d.action, SQ_VK_ACT_NONE);
  ASSERT_EQ(d.verdict.state, SQ_KSTATE_STALLED);
  ASSERT_STR_EQ(d.verdict.reason, "BackupRestoreAcrossSubscriptions");
  ASSERT_STR_CONTAINS(d.repl_message, "replication: import");
  /* the name is taken by other material: restore cannot help */
  snprintf(in->vaults[1].subscription, sizeof in->vaults[1].subscription, "sub-a");
  addv(&in->vaults[1], "x1", TP_B, NOW - DAY);
  sq_vk_decide(in, &d);
  ASSERT_EQ(d.action, SQ_VK_ACT_NONE);
  ASSERT_STR_EQ(d.repl_reason, "RestoreConflict");
  ASSERT_EQ(d.verdict.state, SQ_KSTATE_STALLED);
  /* it holds the material (any version id): replicated */
  addv(&in->vaults[1], "x2", TP_A, NOW);
  sq_vk_decide(in, &d);
  ASSERT_EQ(d.action, SQ_VK_ACT_NONE);
  ASSERT_EQ(d.replicated, 1);
  ASSERT_STR_EQ(d.repl_reason, "Replicated");
  ASSERT_EQ(d.verdict.state, SQ_KSTATE_READY);
  free(in);
}

TEST(refused_replication_is_not_retried) {
  sq_vk_decision d;
  sq_vk_input *in = mk(2);
  addv(&in->vaults[0], "v1", TP_A, NOW - DAY);
  snprintf(in->vaults[1].refused_thumbprint, sizeof in->vaults[1].refused_thumbprint, TP_A);
  snprintf(in->vaults[1].refused_reason, sizeof in->vaults[1].refused_reason, "BackupRestoreRefused");
  sq_vk_decide(in, &d);
  ASSERT_EQ(d.action, SQ_VK_ACT_NONE);
  ASSERT_STR_EQ(d.repl_reason, "BackupRestoreRefused");
  ASSERT_STR_CONTAINS(d.repl_message, "replication: import");
  ASSERT_EQ(d.verdict.state, SQ_KSTATE_STALLED);
  /* a refusal of older material does not block the current one */
  snprintf(in->vaults[1].refused_thumbprint, sizeof in->vaults[1].refused_thumbprint, TP_B);
  sq_vk_decide(in, &d);
  ASSERT_EQ(d.action, SQ_VK_ACT_RESTORE);
  free(in);
}

TEST(import_replication) {
  sq_vk_decision d;
  sq_vk_input *in = mk(2);
  in->source = SQ_VK_SRC_IMPORT;
  in->replication = SQ_VK_REPL_IMPORT;
  snprintf(in->pem_thumbprint, sizeof in->pem_thumbprint, TP_A);
  addv(&in->vaults[0], "v1", TP_A, NOW - DAY);
  snprintf(in->vaults[1].subscription, sizeof in->vaults[1].subscription, "other-sub"); /* fine for import */
  sq_vk_decide(in, &d);
  ASSERT_EQ(d.action, SQ_VK_ACT_IMPORT);
  ASSERT_EQ(d.vault, 1);
  /* the primary's current material is not the PEM: cannot copy it */
  addv(&in->vaults[0], "v2", TP_B, NOW);
  sq_vk_decide(in, &d);
  ASSERT_EQ(d.action, SQ_VK_ACT_NONE);
  ASSERT_STR_EQ(d.repl_reason, "PemMismatch");
  ASSERT_EQ(d.verdict.state, SQ_KSTATE_STALLED);
  free(in);
}

TEST(secondary_vault_not_ready_waits) {
  sq_vk_decision d;
  sq_vk_input *in = mk(2);
  addv(&in->vaults[0], "v1", TP_A, NOW - DAY);
  in->vaults[1].state = SQ_VAULT_WAITING;
  in->vaults[1].observed = 0;
  sq_vk_decide(in, &d);
  ASSERT_EQ(d.action, SQ_VK_ACT_NONE); /* no write into a vault that is not ready */
  ASSERT_EQ(d.replicated, 0);
  ASSERT_STR_EQ(d.repl_reason, "WaitingForVault");
  ASSERT_EQ(d.verdict.state, SQ_KSTATE_RECONCILING);
  ASSERT(d.verdict.requeue_ms > 0);
  in->vaults[1].state = SQ_VAULT_STALLED;
  sq_vk_decide(in, &d);
  ASSERT_EQ(d.verdict.state, SQ_KSTATE_STALLED);
  ASSERT_STR_EQ(d.repl_reason, "VaultNotReady");
  free(in);
}

TEST(single_vault_is_replicated) {
  sq_vk_decision d;
  sq_vk_input *in = mk(1);
  addv(&in->vaults[0], "v1", TP_A, NOW - DAY);
  sq_vk_decide(in, &d);
  ASSERT_EQ(d.replicated, 1);
  ASSERT_STR_EQ(d.repl_reason, "SingleVault");
  free(in);
}

TEST(health_of_the_current_version) {
  sq_vk_decision d;
  sq_vk_input *in = mk(1);
  sq_vk_version *c = addv(&in->vaults[0], "v1", TP_A, NOW - DAY);

  c->enabled = 0;
  sq_vk_decide(in, &d);
  ASSERT_EQ(d.disabled, 1);
  ASSERT_EQ(d.verdict.state, SQ_KSTATE_STALLED);
  ASSERT_STR_EQ(d.verdict.reason, "KeyDisabled");

  c->enabled = -1; /* not reported: enabled */
  c->exp = NOW - 1;
  sq_vk_decide(in, &d);
  ASSERT_EQ(d.disabled, 0);
  ASSERT_EQ(d.expired, 1);
  ASSERT_EQ(d.expiring, 0);
  ASSERT_STR_EQ(d.verdict.reason, "KeyExpired");

  c->exp = NOW + 10 * DAY; /* inside the 30-day warning */
  sq_vk_decide(in, &d);
  ASSERT_EQ(d.expired, 0);
  ASSERT_EQ(d.expiring, 1);
  ASSERT_EQ(d.verdict.state, SQ_KSTATE_READY);
  ASSERT_STR_CONTAINS(d.verdict.message, "expires");
  ASSERT_EQ(d.verdict.requeue_ms, 10 * DAY * 1000); /* look again at expiry */

  c->exp = NOW + 40 * DAY; /* warning starts in 10 days */
  sq_vk_decide(in, &d);
  ASSERT_EQ(d.expiring, 0);
  ASSERT_EQ(d.verdict.requeue_ms, 10 * DAY * 1000);

  c->exp = 0;
  c->nbf = NOW + 3600;
  sq_vk_decide(in, &d);
  ASSERT_EQ(d.not_yet_valid, 1);
  ASSERT_EQ(d.verdict.state, SQ_KSTATE_RECONCILING);
  ASSERT_STR_EQ(d.verdict.reason, "KeyNotYetValid");
  ASSERT_EQ(d.verdict.requeue_ms, 3600 * 1000);
  free(in);
}

TEST(decide_is_total) {
  sq_vk_decision d;
  sq_vk_input *in = mk(0);
  sq_vk_decide(in, &d);
  ASSERT_EQ(d.verdict.state, SQ_KSTATE_STALLED);
  ASSERT_EQ(d.action, SQ_VK_ACT_NONE);
  in->n_vaults = 1000;
  sq_vk_decide(in, &d);
  ASSERT_EQ(d.action, SQ_VK_ACT_NONE);
  /* primary observed with an unknown thumbprint: no replication decision */
  free(in);
  in = mk(2);
  addv(&in->vaults[0], "v1", "", NOW);
  sq_vk_decide(in, &d);
  ASSERT_EQ(d.action, SQ_VK_ACT_NONE);
  ASSERT_EQ(d.replicated, 0);
  ASSERT_STR_EQ(d.repl_reason, "ThumbprintUnknown");
  free(in);
}

/* ---- status.versions ---------------------------------------------------------- */

TEST(versions_json_groups_material_by_thumbprint) {
  sq_vk_input *in = mk(2);
  addv(&in->vaults[0], "p1", TP_A, NOW - 2 * DAY);
  sq_vk_version *p2 = addv(&in->vaults[0], "p2", TP_B, NOW - DAY);
  p2->exp = NOW + 100 * DAY;
  addv(&in->vaults[1], "s1", TP_A, NOW - 2 * DAY); /* import gives its own version id */
  addv(&in->vaults[1], "s9", TP_C, NOW);           /* only in the secondary */
  json_t *v = sq_vk_versions_json(in, "tde1");
  ASSERT_NOT_NULL(v);
  ASSERT_EQ(json_array_size(v), 3);
  json_t *e0 = json_array_get(v, 0), *e1 = json_array_get(v, 1), *e2 = json_array_get(v, 2);
  ASSERT_STR_EQ(sq_json_str(e0, "version"), "p2");
  ASSERT_STR_EQ(sq_json_str(e0, "keyUri"), "https://kv1.vault.azure.net/keys/tde1/p2");
  ASSERT_NOT_NULL(sq_json_str(e0, "expires"));
  ASSERT_EQ(json_array_size(sq_json_path(e0, "vaults")), 1);
  ASSERT_STR_EQ(sq_json_str(e1, "version"), "p1");
  ASSERT_STR_EQ(sq_json_str(e1, "thumbprint"), TP_A);
  ASSERT_EQ(json_array_size(sq_json_path(e1, "vaults")), 2);
  ASSERT_EQ(json_array_size(sq_json_path(e1, "locations")), 2);
  ASSERT_STR_EQ(sq_json_str(json_array_get(sq_json_path(e1, "locations"), 1), "version"), "s1");
  ASSERT_STR_EQ(sq_json_str(e2, "keyUri"), "https://kv2.vault.azure.net/keys/tde1/s9");

  /* the status remembers thumbprints per (vault, version) */
  json_t *status = json_pack("{s:O}", "versions", v);
  char tp[41];
  ASSERT_EQ(sq_vk_cached_thumbprint(status, "kv2", "s1", tp), 1);
  ASSERT_STR_EQ(tp, TP_A);
  ASSERT_EQ(sq_vk_cached_thumbprint(status, "kv1", "s1", tp), 0);
  ASSERT_EQ(sq_vk_cached_thumbprint(NULL, "kv1", "p1", tp), 0);

  /* and can refill a vault that cannot be read this pass */
  sq_vk_vault *back = calloc(1, sizeof *back);
  snprintf(back->name, sizeof back->name, "kv2");
  sq_vk_vault_from_status(status, back);
  ASSERT_EQ(back->n, 2);
  ASSERT_EQ(back->key_exists, 1);
  ASSERT_EQ(back->observed, 0);
  ASSERT(sq_vk_find_thumbprint(back, TP_C) >= 0);
  free(back);
  json_decref(status);
  json_decref(v);
  free(in);
}

/* ---- referrers (finalizer) ------------------------------------------------------ */

TEST(referrers_from_spec_and_status) {
  json_t *dbs = json_loads(
      "[{\"metadata\":{\"name\":\"db1\"},\"spec\":{\"encryptionProtector\":{\"vaultKey\":{\"name\":\"vk1\"}}}},"
      " {\"metadata\":{\"name\":\"db2\"},\"spec\":{\"keys\":[{\"vaultKey\":\"other\"},{\"vaultKey\":\"vk1\"}]}},"
      " {\"metadata\":{\"name\":\"db3\"},\"spec\":{},\"status\":{\"keyHistory\":[{\"keyUri\":"
      "\"https://KV1.vault.azure.net/keys/tde1/0123\"}]}},"
      " {\"metadata\":{\"name\":\"db4\"},\"spec\":{\"encryptionProtector\":{\"vaultKey\":{\"name\":\"vk10\"}}},"
      "  \"status\":{\"protectorKeyUri\":\"https://kv1.vault.azure.net/keys/tde10/0123\"}},"
      " {\"metadata\":{\"name\":\"db5\"}}]",
      0, NULL);
  json_t *servers = json_loads(
      "[{\"metadata\":{\"name\":\"s1\"},\"spec\":{\"protector\":{\"type\":\"CustomerManaged\",\"vaultKey\":"
      "{\"name\":\"vk1\"}}}},"
      " {\"metadata\":{\"name\":\"s2\"},\"spec\":{\"protector\":{\"type\":\"ServiceManaged\"}}}]",
      0, NULL);
  ASSERT_NOT_NULL(dbs);
  ASSERT_NOT_NULL(servers);
  const char *pre[] = {"https://kv1.vault.azure.net/keys/tde1", "https://kv2.vault.azure.net/keys/tde1"};
  char out[1024];
  size_t n = sq_vk_referrers(dbs, servers, "vk1", pre, 2, out, sizeof out);
  ASSERT_EQ(n, 4);
  ASSERT_STR_CONTAINS(out, "SqlDatabase db1 (spec.encryptionProtector)");
  ASSERT_STR_CONTAINS(out, "SqlDatabase db2 (spec.keys)");
  ASSERT_STR_CONTAINS(out, "SqlDatabase db3 (status.keyHistory");
  ASSERT_STR_CONTAINS(out, "SqlServer s1 (spec.protector)");
  ASSERT(!strstr(out, "db4")); /* tde10 is another key */
  ASSERT(!strstr(out, "s2"));
  /* nothing references vk2 */
  ASSERT_EQ(sq_vk_referrers(dbs, servers, "vk2", NULL, 0, out, sizeof out), 0);
  ASSERT_STR_EQ(out, "");
  /* a short buffer is cut, the count stays right */
  char small[48];
  ASSERT_EQ(sq_vk_referrers(dbs, servers, "vk1", pre, 2, small, sizeof small), 4);
  ASSERT_STR_CONTAINS(small, ", ...");
  ASSERT_EQ(sq_vk_referrers(NULL, NULL, "vk1", pre, 2, out, sizeof out), 0);
  json_decref(dbs);
  json_decref(servers);
}

TEST(vault_change_matters_only_on_readiness_change) {
  json_t *vk = json_loads("{\"spec\":{\"vaults\":[{\"name\":\"kv1\"},{\"name\":\"kv2\"}]},"
                          "\"status\":{\"vaults\":[{\"name\":\"kv1\",\"ready\":true}]}}",
                          0, NULL);
  ASSERT_EQ(sq_vk_vault_change_matters(vk, "kv1", 1), 0); /* periodic probe, nothing new */
  ASSERT_EQ(sq_vk_vault_change_matters(vk, "kv1", 0), 1);
  ASSERT_EQ(sq_vk_vault_change_matters(vk, "kv2", 1), 1); /* never recorded */
  ASSERT_EQ(sq_vk_vault_change_matters(vk, "kv3", 0), 0); /* not listed */
  /* an invalid spec waits for a spec change */
  json_object_set_new(json_object_get(vk, "status"), "conditions",
                      json_loads("[{\"type\":\"InvalidSpec\",\"status\":\"True\"}]", 0, NULL));
  ASSERT_EQ(sq_vk_vault_change_matters(vk, "kv2", 1), 0);
  ASSERT_EQ(sq_vk_vault_change_matters(vk, "kv1", 0), 0);
  json_decref(vk);
}

/* ---- PEM inspection -------------------------------------------------------------- */

static char *pem_of(EVP_PKEY *k, int traditional, const char *pass, size_t *len) {
  BIO *b = BIO_new(BIO_s_mem());
  int ok = traditional ? PEM_write_bio_PrivateKey_traditional(b, k, NULL, NULL, 0, NULL, NULL)
           : pass      ? PEM_write_bio_PrivateKey(b, k, EVP_aes_256_cbc(), (unsigned char *)pass, (int)strlen(pass),
                                                  NULL, NULL)
                       : PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
  char *data;
  long n = BIO_get_mem_data(b, &data);
  char *out = ok && n > 0 ? malloc((size_t)n + 1) : NULL;
  if(out) {
    memcpy(out, data, (size_t)n);
    out[n] = 0;
    *len = (size_t)n;
  }
  BIO_free(b);
  return out;
}

TEST(pem_inspect_rsa_sizes_and_forms) {
  static const int sizes[] = {1024, 2048};
  for(int s = 0; s < 2; s++) {
    EVP_PKEY *k = EVP_RSA_gen((unsigned)sizes[s]);
    ASSERT_NOT_NULL(k);
    char want[41];
    ASSERT_OK(sq_thumbprint_pkey(k, want, NULL));
    for(int trad = 0; trad < 2; trad++) { /* PKCS#8 and PKCS#1 */
      size_t len = 0;
      char *pem = pem_of(k, trad, NULL, &len);
      ASSERT_NOT_NULL(pem);
      ASSERT_STR_CONTAINS(pem, trad ? "BEGIN RSA PRIVATE KEY" : "BEGIN PRIVATE KEY");
      int bits = 0;
      char tp[41] = "";
      ASSERT_OK(sq_vk_pem_inspect(pem, len, &bits, tp, NULL));
      ASSERT_EQ(bits, sizes[s]);
      ASSERT_STR_EQ(tp, want);
      free(pem);
    }
    EVP_PKEY_free(k);
  }
}

TEST(pem_inspect_refuses_non_rsa_encrypted_and_garbage) {
  sq_err err;
  int bits = 0;
  char tp[41];
  EVP_PKEY *ec = EVP_EC_gen("P-256");
  ASSERT_NOT_NULL(ec);
  size_t len;
  char *pem = pem_of(ec, 0, NULL, &len);
  ASSERT_EQ(sq_vk_pem_inspect(pem, len, &bits, tp, &err), SQ_EPARSE);
  ASSERT_STR_CONTAINS(err.message, "RSA");
  free(pem);
  EVP_PKEY_free(ec);

  EVP_PKEY *k = EVP_RSA_gen(2048);
  pem = pem_of(k, 0, "secret-pass", &len);
  ASSERT_NOT_NULL(pem);
  ASSERT_STR_CONTAINS(pem, "ENCRYPTED");
  /* never prompts on a terminal: refused */
  ASSERT_EQ(sq_vk_pem_inspect(pem, len, &bits, tp, &err), SQ_EPARSE);
  ASSERT(!strstr(err.message, "-----")); /* nothing of the input in the message */
  free(pem);
  EVP_PKEY_free(k);

  ASSERT_EQ(sq_vk_pem_inspect("not a pem", 9, &bits, tp, &err), SQ_EPARSE);
  ASSERT_EQ(sq_vk_pem_inspect(NULL, 0, &bits, tp, &err), SQ_EPARSE);
}

/* ---- KeyVault ----------------------------------------------------------------------- */

static void obs_ok(sq_kvault_obs *o) {
  memset(o, 0, sizeof *o);
  json_t *j = json_loads("{\"id\":\"/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/kv1\","
                         "\"name\":\"kv1\",\"location\":\"eastus\",\"properties\":{\"tenantId\":\"T1\",\"vaultUri\":"
                         "\"https://kv1.vault.azure.net/\",\"enableSoftDelete\":true,\"enablePurgeProtection\":true}}",
                         0, NULL);
  sq_vault v;
  memset(&v, 0, sizeof v);
  if(sq_vault_parse(j, &v, NULL))
    fprintf(stderr, "vault fixture did not parse\n");
  sq_kvault_obs_from_vault(&v, o);
  sq_vault_free(&v);
  json_decref(j);
  o->probed = 1;
  o->dp_code = SQ_ENOTFOUND;
}

TEST(keyvault_assess_table) {
  static const struct {
    int mutate;
    sq_kstate want;
    const char *reason;
  } rows[] = {
      {0, SQ_KSTATE_READY, "VaultReady"},
      {1, SQ_KSTATE_STALLED, "PurgeProtectionDisabled"},
      {2, SQ_KSTATE_STALLED, "SoftDeleteDisabled"},
      {3, SQ_KSTATE_STALLED, "SoftDeleteAndPurgeProtectionDisabled"},
      {4, SQ_KSTATE_RETRYING, "Unreachable"},
      {5, SQ_KSTATE_STALLED, "VaultNotFound"},
      {6, SQ_KSTATE_STALLED, "ArmAccessDenied"},
      {7, SQ_KSTATE_RETRYING, "ArmUnavailable"},
      {8, SQ_KSTATE_STALLED, "VaultUriMismatch"},
      {9, SQ_KSTATE_STALLED, "TenantMismatch"},
      {10, SQ_KSTATE_STALLED, "LocationMismatch"},
      {11, SQ_KSTATE_READY, "VaultReady"}, /* 403 from the data plane: it answered */
      {12, SQ_KSTATE_READY, "VaultReady"}, /* "East US" is eastus */
  };
  for(size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    sq_kvault_obs o;
    obs_ok(&o);
    switch(rows[i].mutate) {
    case 1: o.purge_protection = 0; break;
    case 2: o.soft_delete = 0; break;
    case 3: o.soft_delete = o.purge_protection = 0; break;
    case 4: o.dp_code = SQ_ETRANSPORT; break;
    case 5: o.arm_code = SQ_ENOTFOUND; break;
    case 6: o.arm_code = SQ_EFORBIDDEN; break;
    case 7: o.arm_code = SQ_ESERVER; break;
    case 8: snprintf(o.arm_vault_uri, sizeof o.arm_vault_uri, "https://kv2.vault.azure.net/"); break;
    case 9: snprintf(o.arm_tenant, sizeof o.arm_tenant, "T2"); break;
    case 10: snprintf(o.arm_location, sizeof o.arm_location, "westus"); break;
    case 11: o.dp_code = SQ_EFORBIDDEN; break;
    case 12: snprintf(o.arm_location, sizeof o.arm_location, "East US"); break;
    }
    sq_verdict v;
    sq_kvault_assess("https://KV1.vault.azure.net:443", "eastus", "t1", &o, &v);
    if(v.state != rows[i].want || strcmp(v.reason, rows[i].reason))
      TEST_FAIL_("row %zu: got %d %s (%s), want %d %s", i, v.state, v.reason, v.message, rows[i].want,
                 rows[i].reason);
  }
}

TEST(arm_flags_defaults) {
  sq_kvault_obs o;
  obs_ok(&o);
  ASSERT_EQ(o.soft_delete, 1);
  ASSERT_EQ(o.purge_protection, 1);
  ASSERT_EQ(o.rbac, 0);
  ASSERT_STR_EQ(o.arm_tenant, "T1");
  ASSERT_STR_EQ(o.arm_location, "eastus");
  memset(&o, 0, sizeof o);
  json_t *j = json_loads("{\"id\":\"/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/kv1\","
                         "\"name\":\"kv1\",\"properties\":{\"enableRbacAuthorization\":true}}", 0, NULL);
  sq_vault v;
  memset(&v, 0, sizeof v);
  ASSERT_OK(sq_vault_parse(j, &v, NULL));
  sq_kvault_obs_from_vault(&v, &o);
  ASSERT_EQ(o.soft_delete, 1); /* Azure's default, sometimes omitted */
  ASSERT_EQ(o.purge_protection, 0);
  ASSERT_EQ(o.rbac, 1);
  sq_vault_free(&v);
  json_decref(j);
}

TEST(vault_uri_split) {
  char origin[256], name[64];
  ASSERT_OK(sq_vault_uri_split("https://KV-1.Vault.Azure.Net:443/", origin, sizeof origin, name, sizeof name));
  ASSERT_STR_EQ(origin, "https://kv-1.vault.azure.net");
  ASSERT_STR_EQ(name, "kv-1");
  ASSERT_OK(sq_vault_uri_split("https://kv.vault.localhost:8443", origin, sizeof origin, NULL, 0));
  ASSERT_STR_EQ(origin, "https://kv.vault.localhost:8443");
  ASSERT_EQ(sq_vault_uri_split("http://kv.vault.azure.net/", origin, sizeof origin, NULL, 0), SQ_EINVAL);
  ASSERT_EQ(sq_vault_uri_split("https://kv.vault.azure.net/keys", origin, sizeof origin, NULL, 0), SQ_EINVAL);
  ASSERT_EQ(sq_vault_uri_split("https://localhost/", origin, sizeof origin, NULL, 0), SQ_EINVAL);
  ASSERT_EQ(sq_vault_uri_split("https://kv.vault.azure.net:/", origin, sizeof origin, NULL, 0), SQ_EINVAL);
  ASSERT_EQ(sq_vault_uri_split(NULL, origin, sizeof origin, NULL, 0), SQ_EINVAL);
  ASSERT_EQ(sq_vault_uri_split("https://kv.vault.azure.net/", origin, 10, NULL, 0), SQ_ETOOBIG);
  char id[256];
  ASSERT_OK(sq_vault_arm_id("s", "g", "kv", id, sizeof id));
  ASSERT_STR_EQ(id, "/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/kv");
  ASSERT_EQ(sq_vault_arm_id("s", "g", "kv", id, 20), SQ_ETOOBIG);
}

TEST_MAIN()
