/* test_plan_fixture.h — builders for planner inputs and a compact signature
 * of a plan ("AddKeys/p[B1]; SetProtector/srv2[B1]") so tables can state the
 * exact expected step list. Header-only: included by test_plan_*.c. */
#ifndef TEST_PLAN_FIXTURE_H
#define TEST_PLAN_FIXTURE_H

#include <stdio.h>
#include <string.h>

#include "sqltde/plan/plan.h"
#include "sqltde/plan/plan_types.h"
#include "test.h"

#define ARM "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg"
#define SRV1 ARM "/providers/Microsoft.Sql/servers/srv1"
#define SRV2 ARM "/providers/Microsoft.Sql/servers/srv2"
#define SRV3 ARM "/providers/Microsoft.Sql/servers/srv3"
#define SRV4 ARM "/providers/Microsoft.Sql/servers/srv4"
#define SRV5 ARM "/providers/Microsoft.Sql/servers/srv5"
#define SRV6 ARM "/providers/Microsoft.Sql/servers/srv6"
#define UMI1 ARM "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/umi1"
#define UMI2 ARM "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/umi2"
#define KV "https://kv1.vault.azure.net/keys/"
#define KA1 KV "tdeA/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1"
#define KA2 KV "tdeA/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa2"
#define KB1 KV "tdeB/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb1"
#define KC1 KV "tdeC/ccccccccccccccccccccccccccccccc1"
#define KD1 KV "tdeD/ddddddddddddddddddddddddddddddd1"
#define KE1 KV "tdeE/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeee1"
#define FCID "11111111-2222-3333-4444-555555555555"
#define NOW ((int64_t)1800000000)
#define HOUR ((int64_t)3600)

static const struct {
  const char *uri, *label;
} fx_keys[] = {{KA1, "A1"}, {KA2, "A2"}, {KB1, "B1"}, {KC1, "C1"}, {KD1, "D1"}, {KE1, "E1"}};

static inline const char *fx_label(const char *uri) {
  for(size_t i = 0; i < sizeof fx_keys / sizeof fx_keys[0]; i++)
    if(sq_plan_uri_eq(fx_keys[i].uri, uri))
      return fx_keys[i].label;
  return "?";
}

static inline const char *fx_short(const char *id) {
  const char *s = id ? strrchr(id, '/') : NULL;
  return s ? s + 1 : id ? id : "-";
}

static inline void fx_add(sq_plan_list *l, const char *s) {
  ASSERT_OK(sq_plan_list_add(l, s, NULL));
}
static inline void fx_set(char **dst, const char *s) {
  ASSERT_OK(sq_plan_set_str(dst, s, NULL));
}

/* Key usable (created long ago), and both identities granted long ago. */
static inline void fx_key_ok(sq_plan_facts *f, const char *uri, int64_t created) {
  sq_plan_key_fact k = {.uri = (char *)uri, .exists = 1, .enabled = 1, .created_s = created};
  ASSERT_OK(sq_plan_facts_add_key(f, &k, NULL));
  const char *ids[] = {UMI1, UMI2};
  for(int i = 0; i < 2; i++) {
    sq_plan_access a = {
        .key_uri = (char *)uri, .identity_id = (char *)ids[i], .state = SQ_ACCESS_GRANTED};
    ASSERT_OK(sq_plan_facts_add_access(f, &a, NULL));
  }
}

static inline void fx_all_keys_ok(sq_plan_facts *f) {
  fx_key_ok(f, KA1, NOW - 400 * 24 * HOUR);
  fx_key_ok(f, KA2, NOW - 200 * 24 * HOUR);
  fx_key_ok(f, KB1, NOW - 300 * 24 * HOUR);
  fx_key_ok(f, KC1, NOW - 300 * 24 * HOUR);
  fx_key_ok(f, KD1, NOW - 300 * 24 * HOUR);
}

/* An existing Online database with protector `prot` (NULL = server level). */
static inline void fx_observed(sq_plan_observed_db *o, const char *server, const char *umi,
                               const char *prot, sq_plan_server_enc enc) {
  o->known = 1;
  o->exists = 1;
  fx_set(&o->server_id, server);
  o->server_encryption = enc;
  o->status = SQ_DB_STATUS_ONLINE;
  fx_set(&o->status_text, "Online");
  if(umi)
    fx_add(&o->identities, umi);
  if(prot) {
    fx_set(&o->protector_uri, prot);
    fx_add(&o->keys, prot);
    fx_add(&o->current_keys, prot);
  }
  o->keys_complete = 1;
}

/* The base case: db1 on srv1 (SMK server) with database-level protector A1
 * and identity umi1, exactly as desired. */
static inline void fx_base(sq_plan_db_input *in) {
  memset(in, 0, sizeof *in);
  in->now = NOW;
  sq_plan_desired_db *d = &in->desired;
  fx_set(&d->server_id, SRV1);
  fx_set(&d->name, "db1");
  fx_set(&d->location, "westeurope");
  fx_set(&d->identity_id, UMI1);
  d->encryption = SQ_DB_ENC_CUSTOMER_MANAGED;
  fx_set(&d->protector_uri, KA1);
  fx_observed(&in->primary, SRV1, UMI1, KA1, SQ_SERVER_ENC_SERVICE_MANAGED);
  fx_all_keys_ok(&in->facts);
}

/* Declares a geo-secondary on server srv and observes it (exists with
 * protector prot, or absent when exists == 0). */
static inline sq_plan_observed_db *fx_secondary(sq_plan_db_input *in, const char *srv, int exists,
                                                const char *prot) {
  sq_plan_desired_secondary *ds = &in->desired.secondaries[in->desired.n_secondaries++];
  fx_set(&ds->server_id, srv);
  fx_set(&ds->location, "northeurope");
  sq_plan_observed_db *o = &in->secondaries[in->n_secondaries++];
  if(exists) {
    fx_observed(o, srv, UMI1, prot, SQ_SERVER_ENC_SERVICE_MANAGED);
    o->role = SQ_ROLE_SECONDARY;
  } else {
    o->known = 1;
    fx_set(&o->server_id, srv);
    o->server_encryption = SQ_SERVER_ENC_SERVICE_MANAGED;
  }
  return o;
}

static inline void fx_list_labels(char *out, size_t len, const sq_plan_list *l) {
  size_t used = strlen(out);
  for(size_t i = 0; i < l->n && used < len; i++) {
    snprintf(out + used, len - used, "%s%s", i ? "," : "", fx_label(l->v[i]));
    used = strlen(out);
  }
}

/* "Kind/target[payload]; ..." where target is p (primary), the secondary's
 * server short name, or "server". */
static inline const char *fx_sig(const sq_plan *p) {
  static char buf[4096];
  buf[0] = '\0';
  for(size_t i = 0; i < p->n_steps; i++) {
    const sq_plan_step *s = &p->steps[i];
    size_t used = strlen(buf);
    const char *t = s->target == SQ_TARGET_PRIMARY  ? "p"
                    : s->target == SQ_TARGET_SERVER ? "server"
                                                    : fx_short(s->server_id);
    snprintf(buf + used, sizeof buf - used, "%s%s/%s", i ? "; " : "",
             sq_plan_step_kind_name(s->kind), t);
    used = strlen(buf);
    char pay[512] = "";
    switch(s->kind) {
    case SQ_STEP_CREATE_DATABASE:
      snprintf(pay, sizeof pay,
               "%s %s P=%s K=", s->create_mode == SQ_CREATE_SECONDARY ? "Secondary" : "Default",
               fx_short(s->identity_id), s->protector_uri ? fx_label(s->protector_uri) : "-");
      fx_list_labels(pay, sizeof pay, &s->keys);
      break;
    case SQ_STEP_SET_IDENTITY:
    case SQ_STEP_SET_SERVER_IDENTITY:
      snprintf(pay, sizeof pay, "%s", fx_short(s->identity_id));
      for(size_t k = 0; k < s->remove_identities.n; k++) {
        size_t u = strlen(pay);
        snprintf(pay + u, sizeof pay - u, " -%s", fx_short(s->remove_identities.v[k]));
      }
      break;
    case SQ_STEP_ADD_KEYS:
    case SQ_STEP_ADD_SERVER_KEY:
      fx_list_labels(pay, sizeof pay, &s->keys);
      break;
    case SQ_STEP_REMOVE_KEYS:
      fx_list_labels(pay, sizeof pay, &s->remove_keys);
      break;
    case SQ_STEP_SET_PROTECTOR:
    case SQ_STEP_SET_SERVER_PROTECTOR:
      snprintf(pay, sizeof pay, "%s%s", fx_label(s->protector_uri),
               s->auto_rotation ? " auto" : "");
      break;
    case SQ_STEP_SET_AUTO_ROTATION:
      snprintf(pay, sizeof pay, "%s", s->auto_rotation ? "on" : "off");
      break;
    case SQ_STEP_SET_FEDERATED_CLIENT_ID:
      snprintf(pay, sizeof pay, "%s", s->federated_client_id ? "set" : "clear");
      break;
    default:
      break;
    }
    if(pay[0])
      snprintf(buf + used, sizeof buf - used, "[%s]", pay);
  }
  return buf;
}

static inline int fx_has_finding(const sq_plan *p, sq_plan_reason r, const char *needle) {
  for(size_t i = 0; i < p->n_findings; i++)
    if(p->findings[i].reason == r && (!needle || strstr(p->findings[i].message, needle)))
      return 1;
  return 0;
}

#endif
