/* test_server_obs.c — the per-server observation cache without a list call:
 * the fingerprint sees every plain field the list answer carries (and only
 * what the list can show), and the cheap path is refused — before any ARM
 * call — whenever the remembered observation cannot vouch for this pass. */
#include <string.h>

#include "sqltde/operator/server_obs.h"
#include "test.h"

#define SRV "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Sql/servers/srv"
#define DB SRV "/databases/db1"

static void base(sq_sql_database *d) {
  memset(d, 0, sizeof *d);
  snprintf(d->name, sizeof d->name, "db1");
  snprintf(d->status, sizeof d->status, "Online");
  snprintf(d->database_id, sizeof d->database_id, "0000-1");
  d->creation_date = 1700000000;
  snprintf(d->encryption_protector, sizeof d->encryption_protector, "https://kv.vault.azure.net/keys/k/v1");
  d->auto_rotation = 0;
  snprintf(d->federated_client_id, sizeof d->federated_client_id, "fc");
  snprintf(d->identity.type, sizeof d->identity.type, "UserAssigned");
  d->identity.n_umis = 2;
  snprintf(d->identity.umis[0].id, sizeof d->identity.umis[0].id, "/x/umi-a");
  snprintf(d->identity.umis[1].id, sizeof d->identity.umis[1].id, "/x/umi-b");
}

TEST(fingerprint_sees_each_plain_field) {
  sq_sql_database a, b;
  base(&a);
  uint64_t f0 = sq_server_obs_fingerprint(&a);
  for(int field = 0; field < 8; field++) {
    base(&b);
    switch(field) {
    case 0: snprintf(b.status, sizeof b.status, "Inaccessible"); break;
    case 1: snprintf(b.database_id, sizeof b.database_id, "0000-2"); break;
    case 2: b.creation_date++; break;
    case 3: snprintf(b.encryption_protector, sizeof b.encryption_protector, "https://kv.vault.azure.net/keys/k/v2"); break;
    case 4: b.auto_rotation = 1; break;
    case 5: b.federated_client_id[0] = '\0'; break;
    case 6: b.identity.n_umis = 1; break;
    case 7: snprintf(b.identity.umis[1].id, sizeof b.identity.umis[1].id, "/x/umi-c"); break;
    }
    if(sq_server_obs_fingerprint(&b) == f0) {
      fprintf(stderr, "  field %d not in the fingerprint\n", field);
      ASSERT(0);
    }
  }
}

TEST(fingerprint_ignores_case_order_and_keys) {
  sq_sql_database a, b;
  base(&a);
  base(&b);
  snprintf(b.encryption_protector, sizeof b.encryption_protector, "HTTPS://KV.vault.azure.net/keys/K/V1");
  snprintf(b.identity.umis[0].id, sizeof b.identity.umis[0].id, "/x/UMI-B");
  snprintf(b.identity.umis[1].id, sizeof b.identity.umis[1].id, "/x/umi-a");
  sq_sql_db_key k;
  memset(&k, 0, sizeof k);
  b.keys = &k; /* the keys map is not in a list answer: not in the fingerprint */
  b.n_keys = 1;
  b.keys_present = 1;
  ASSERT_EQ(sq_server_obs_fingerprint(&a), sq_server_obs_fingerprint(&b));
}

/* arm is NULL below: any list call would crash, so each ENOTFOUND proves the
 * cheap path was refused before asking Azure */
TEST(refused_without_usable_full_observation) {
  sq_server_obs *c;
  sq_sql_database d, out;
  base(&d);
  ASSERT_OK(sq_server_obs_new(10000, 60000, &c, NULL));
  ASSERT_EQ(sq_server_obs_lookup(c, NULL, SRV, DB, SQ_SQL_KEYS_NONE, &out, NULL), SQ_ENOTFOUND);
  /* remembered without keys: a pass that needs the keys map must GET */
  sq_server_obs_remember(c, SRV, DB, SQ_SQL_KEYS_NONE, &d, sq_mono_ms());
  ASSERT_EQ(sq_server_obs_lookup(c, NULL, SRV, DB, SQ_SQL_KEYS_ALL, &out, NULL), SQ_ENOTFOUND);
  /* ... and that refusal dropped the entry */
  ASSERT_EQ(sq_server_obs_lookup(c, NULL, SRV, DB, SQ_SQL_KEYS_NONE, &out, NULL), SQ_ENOTFOUND);
  /* forgotten after a write */
  sq_server_obs_remember(c, SRV, DB, SQ_SQL_KEYS_ALL, &d, sq_mono_ms());
  sq_server_obs_forget(c, SRV, DB);
  ASSERT_EQ(sq_server_obs_lookup(c, NULL, SRV, DB, SQ_SQL_KEYS_ALL, &out, NULL), SQ_ENOTFOUND);
  /* moved to another server */
  sq_server_obs_remember(c, SRV, DB, SQ_SQL_KEYS_ALL, &d, sq_mono_ms());
  ASSERT_EQ(sq_server_obs_lookup(c, NULL, SRV "2", DB, SQ_SQL_KEYS_ALL, &out, NULL), SQ_ENOTFOUND);
  uint64_t hits = 9, misses = 0, lists = 9;
  sq_server_obs_stats(c, &hits, &misses, &lists);
  ASSERT_EQ(hits, 0);
  ASSERT_EQ(misses, 5);
  ASSERT_EQ(lists, 0);
  sq_server_obs_free(c);
}

TEST(refused_when_full_observation_too_old) {
  sq_server_obs *c;
  sq_sql_database d, out;
  base(&d);
  ASSERT_OK(sq_server_obs_new(10000, 1000, &c, NULL));
  sq_server_obs_remember(c, SRV, DB, SQ_SQL_KEYS_ALL, &d, sq_mono_ms() - 5000);
  ASSERT_EQ(sq_server_obs_lookup(c, NULL, SRV, DB, SQ_SQL_KEYS_ALL, &out, NULL), SQ_ENOTFOUND);
  sq_server_obs_free(c);
}

TEST_MAIN()
