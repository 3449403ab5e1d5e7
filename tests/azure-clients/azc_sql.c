/* azure.sql — the typed Microsoft.Sql operations against the emulator over
 * HTTPS, each a real ARM long-running operation: a database created with
 * database-level CMK (keys + protector + UMI), read back with $expand for all
 * keys, the current keys and a point in time, listed per server, patched
 * (add key, move the protector, remove a key with null, auto-rotation),
 * revalidated and reverted; server keys and the server protector; an LRO that
 * ends Failed mapped to its ARM error code; delete and the restorable
 * dropped database; geo secondary, replication links and a failover group.
 * Skipped (exit 77 -> reported as not run) while the emulator does not serve
 * Microsoft.Sql. */
#include <stdlib.h>

#include "azc.h"
#include "sqltde/azure/sql.h"
#include "sqltde/jsonx.h"
#include "test.h"

#define RG_ID "/subscriptions/" AZC_SUB "/resourceGroups/rg-tde"
#define UMI RG_ID "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/umi-db1"

static azc A;
static int started;
static sq_azure_cred *cred;
static sq_arm *arm;
static sq_kv *kv;
static char server_east[SQ_SQL_ID_MAX], server_west[SQ_SQL_ID_MAX];
static char key1[SQ_KV_KID_MAX], key2[SQ_KV_KID_MAX], key3[SQ_KV_KID_MAX], key_late[SQ_KV_KID_MAX],
    key_denied[SQ_KV_KID_MAX];

static void make_key(const char *vault, const char *name, char *kid) { azc_make_key(kv, vault, name, kid); }

static void setup(void) {
  if(started)
    return;
  started = 1;
  sq_err e;
  azc_operator_clients(&A, &cred, &arm, &kv);
  sq_sql_server_id(AZC_SUB, "rg-tde", "azc-sql-east", server_east, sizeof server_east, NULL);
  sq_sql_server_id(AZC_SUB, "rg-tde-west", "azc-sql-west", server_west, sizeof server_west, NULL);
  /* is Microsoft.Sql served yet? */
  sq_sql_server s;
  if(sq_sql_server_get(arm, server_east, &s, &e)) {
    fprintf(stderr, "SKIP: the emulator does not serve Microsoft.Sql yet (%s)\n", e.message);
    exit(77);
  }
  make_key(A.vault_east, "db-k1", key1);
  make_key(A.vault_east, "db-k2", key2);
  make_key(A.vault_east, "db-k3", key3);
  make_key(A.vault_east, "db-late", key_late);
  make_key(A.vault_west, "db-denied", key_denied); /* umi-db1 has no access in azc-west */
}

static int has_key(const sq_sql_database *d, const char *uri) {
  for(size_t i = 0; i < d->n_keys; i++)
    if(!strcasecmp(d->keys[i].uri, uri))
      return 1;
  return 0;
}

static char db1[SQ_SQL_ID_MAX];

TEST(server_and_database_with_cmk) {
  setup();
  sq_err e;
  sq_sql_server s;
  ASSERT_OK(sq_sql_server_get(arm, server_east, &s, &e));
  ASSERT_STR_EQ(s.name, "azc-sql-east");
  ASSERT_EQ(s.identity.n_umis, 1);

  ASSERT_OK(sq_sql_database_id(server_east, "db1", db1, sizeof db1, &e));
  long long before = azc_requests_last(&A);
  const char *keys[] = {key1, NULL};
  sq_sql_db_create_args c = {.location = "eastus", .mode = SQ_SQL_CREATE_DEFAULT, .umi_id = UMI,
                             .keys = keys, .encryption_protector = key1, .auto_rotation = 0};
  sq_sql_database d;
  sq_code rc = sq_sql_db_create(arm, db1, &c, &d, &e);
  if(rc)
    fprintf(stderr, "create: %s\n", e.message);
  ASSERT_OK(rc);
  ASSERT_STR_EQ(d.name, "db1");
  ASSERT_STR_EQ(d.status, "Online");
  ASSERT(!strcasecmp(d.encryption_protector, key1));
  ASSERT_EQ(d.identity.n_umis, 1);
  sq_sql_database_free(&d);
  /* it really was a long-running operation: 202, polls, then the final GET */
  long long last;
  json_t *log = azc_requests(&A, before, "management.localhost", NULL, &last);
  ASSERT_GE(json_array_size(log), 3);
  ASSERT_EQ(sq_json_int(json_array_get(log, 0), "status", 0), 202);
  /* polls go to Azure-AsyncOperation (preferred over Location), each no
   * sooner than the Retry-After (1 s) of the answer before it; the last
   * request is the GET of the database itself */
  int64_t prev = sq_json_int(json_array_get(log, 0), "timeMs", 0);
  size_t n = json_array_size(log), polls = 0;
  for(size_t i = 1; i + 1 < n; i++) {
    json_t *r = json_array_get(log, i);
    ASSERT_STR_CONTAINS(sq_json_str(r, "path"), "AzureAsyncOperation");
    ASSERT_GE(sq_json_int(r, "timeMs", 0) - prev, 1000);
    prev = sq_json_int(r, "timeMs", 0);
    polls++;
  }
  ASSERT_GE(polls, 1);
  ASSERT_STR_EQ(sq_json_str(json_array_get(log, n - 1), "path"), db1);
  ASSERT_STR_EQ(sq_json_str(json_array_get(log, n - 1), "method"), "GET");
  json_decref(log);

  /* $expand variants */
  ASSERT_OK(sq_sql_db_get(arm, db1, SQ_SQL_KEYS_NONE, 0, &d, &e));
  ASSERT(!d.keys_present || d.n_keys == 0);
  sq_sql_database_free(&d);
  ASSERT_OK(sq_sql_db_get(arm, db1, SQ_SQL_KEYS_ALL, 0, &d, &e));
  ASSERT(has_key(&d, key1));
  sq_sql_database_free(&d);
  ASSERT_OK(sq_sql_db_get(arm, db1, SQ_SQL_KEYS_CURRENT, 0, &d, &e));
  ASSERT(has_key(&d, key1));
  ASSERT_GT(d.creation_date, 0);
  int64_t created = d.creation_date;
  sq_sql_database_free(&d);
  ASSERT_OK(sq_sql_db_get(arm, db1, SQ_SQL_KEYS_AT, created + 1, &d, &e));
  ASSERT(has_key(&d, key1));
  sq_sql_database_free(&d);
}

static int find_db1(void *ud, const sq_sql_database *d) {
  if(!strcmp(d->name, "db1"))
    (*(int *)ud)++;
  return 0;
}

TEST(list_patch_revalidate_revert) {
  setup();
  sq_err e;
  int found = 0;
  ASSERT_OK(sq_sql_db_list(arm, server_east, find_db1, &found, &e));
  ASSERT_EQ(found, 1);
  /* add key2 (the new protector, with auto-rotation) and key3 (kept for later) */
  const char *add[] = {key2, key3, NULL};
  sq_sql_db_patch_args p = {.keys_add = add, .encryption_protector = key2, .auto_rotation = 1};
  sq_sql_database d;
  sq_code rc = sq_sql_db_patch(arm, db1, &p, &d, &e);
  if(rc)
    fprintf(stderr, "patch: %s\n", e.message);
  ASSERT_OK(rc);
  ASSERT(!strcasecmp(d.encryption_protector, key2));
  ASSERT_EQ(d.auto_rotation, 1);
  sq_sql_database_free(&d);
  /* key3 is attached (all keys) though not in use (current) */
  ASSERT_OK(sq_sql_db_get(arm, db1, SQ_SQL_KEYS_ALL, 0, &d, &e));
  ASSERT(has_key(&d, key3));
  ASSERT(has_key(&d, key2));
  sq_sql_database_free(&d);
  /* remove key3 (null in the keys map) */
  const char *rm3[] = {key3, NULL};
  sq_sql_db_patch_args r = {.keys_remove = rm3, .auto_rotation = -1};
  rc = sq_sql_db_patch(arm, db1, &r, &d, &e);
  if(rc)
    fprintf(stderr, "remove key: %s\n", e.message);
  ASSERT_OK(rc);
  sq_sql_database_free(&d);
  ASSERT_OK(sq_sql_db_get(arm, db1, SQ_SQL_KEYS_CURRENT, 0, &d, &e));
  ASSERT(has_key(&d, key2));
  ASSERT(!has_key(&d, key3));
  sq_sql_database_free(&d);
  /* key1 still protects active log: removing it is refused with the documented code */
  const char *rm1[] = {key1, NULL};
  sq_sql_db_patch_args r1 = {.keys_remove = rm1, .auto_rotation = -1};
  ASSERT_EQ(sq_sql_db_patch(arm, db1, &r1, &d, &e), SQ_EBADREQ);
  ASSERT_STR_EQ(e.reason, "AzureKeyVaultKeyNameCurrentlyInUse");
  /* revalidate (POST + Location LRO) */
  rc = sq_sql_db_revalidate(arm, db1, &e);
  if(rc)
    fprintf(stderr, "revalidate: %s\n", e.message);
  ASSERT_OK(rc);
  /* the server is service-managed: revert to server-level encryption works */
  rc = sq_sql_db_revert(arm, db1, &e);
  if(rc)
    fprintf(stderr, "revert: %s\n", e.message);
  ASSERT_OK(rc);
  ASSERT_OK(sq_sql_db_get(arm, db1, SQ_SQL_KEYS_NONE, 0, &d, &e));
  ASSERT_STR_EQ(d.encryption_protector, "");
  sq_sql_database_free(&d);
  /* a second revert: the documented error code, typed */
  ASSERT_EQ(sq_sql_db_revert(arm, db1, &e), SQ_EBADREQ);
  ASSERT_STR_EQ(e.reason, "DatabaseLevelEncryptionProtectorDoesNotExist");
}

TEST(failures_sync_and_async_are_typed) {
  setup();
  sq_err e;
  char id[SQ_SQL_ID_MAX];
  /* refused at once (the identity cannot reach the key): a 400 with SQL's code */
  ASSERT_OK(sq_sql_database_id(server_east, "db-denied", id, sizeof id, &e));
  const char *keys[] = {key_denied, NULL};
  sq_sql_db_create_args c = {.location = "eastus", .umi_id = UMI, .keys = keys,
                             .encryption_protector = key_denied, .auto_rotation = -1};
  sq_sql_database d;
  ASSERT_EQ(sq_sql_db_create(arm, id, &c, &d, &e), SQ_EBADREQ);
  ASSERT_EQ(e.http_status, 400);
  ASSERT(e.reason[0]);
  ASSERT(!sq_code_retryable(e.code));

  /* accepted, then the key is disabled while the operation runs: the LRO
   * ends Failed and its error code comes back typed (http_status 0). Also
   * exercises starting without waiting and resuming the poll later. */
  ASSERT_OK(sq_sql_database_id(server_east, "db-late", id, sizeof id, &e));
  const char *keys2[] = {key_late, NULL};
  sq_sql_db_create_args c2 = {.location = "eastus", .umi_id = UMI, .keys = keys2,
                              .encryption_protector = key_late, .auto_rotation = -1};
  json_t *body = NULL;
  ASSERT_OK(sq_sql_db_create_body(&c2, &body, &e));
  sq_arm_call call = {.method = "PUT", .path = id, .api_version = SQ_SQL_API_VERSION, .body = body,
                      .operation = "databases.create", .no_wait = 1};
  sq_arm_result r;
  sq_arm_result_init(&r);
  ASSERT_OK(sq_arm_do(arm, &call, &r, &e));
  ASSERT(r.lro_pending);
  ASSERT(r.lro.async_url[0]);
  ASSERT(r.lro.location_url[0]);
  char vault[SQ_AZ_URL_MAX], name[SQ_KV_NAME_MAX], version[SQ_KV_VERSION_MAX];
  ASSERT_OK(sq_kv_split_kid(key_late, vault, sizeof vault, name, sizeof name, version, sizeof version, &e));
  sq_kv_attrs off = {0, 0, 0};
  sq_kv_key k;
  sq_kv_key_init(&k);
  ASSERT_OK(sq_kv_update(kv, vault, name, version, &off, NULL, &k, &e));
  sq_kv_key_free(&k);
  sq_arm_lro lro = r.lro;
  sq_code rc = sq_arm_lro_wait(arm, &lro, 60000, &r, &e);
  fprintf(stderr, "expected failed operation: %s (reason %s, http %ld)\n", e.message, e.reason, e.http_status);
  ASSERT_EQ(rc, SQ_EBADREQ);
  ASSERT_EQ(e.http_status, 0);
  ASSERT_STR_CONTAINS(e.reason, "Disabled");
  ASSERT_STR_EQ(lro.status, "Failed");
  ASSERT_GE(lro.polls, 1);
  sq_arm_result_free(&r);
  json_decref(body);
}

static int count_keys(void *ud, const sq_sql_server_key *k) {
  (void)k;
  (*(int *)ud)++;
  return 0;
}

TEST(server_keys_and_protector) {
  setup();
  sq_err e;
  sq_sql_server_key k;
  sq_code rc = sq_sql_server_key_create(arm, server_east, key1, &k, &e);
  if(rc)
    fprintf(stderr, "server key: %s\n", e.message);
  ASSERT_OK(rc);
  char name[256];
  ASSERT_OK(sq_sql_server_key_name(key1, name, sizeof name, &e));
  ASSERT_STR_EQ(k.name, name);
  ASSERT_STR_EQ(k.server_key_type, "AzureKeyVault");
  ASSERT_EQ(strlen(k.thumbprint), 40);
  sq_sql_server_key got;
  ASSERT_OK(sq_sql_server_key_get(arm, server_east, name, &got, &e));
  ASSERT_STR_EQ(got.thumbprint, k.thumbprint);
  ASSERT(!strcasecmp(got.uri, key1));
  int n = 0;
  ASSERT_OK(sq_sql_server_key_list(arm, server_east, count_keys, &n, &e));
  ASSERT_GE(n, 1);
  sq_sql_protector p;
  rc = sq_sql_protector_set(arm, server_east, name, 0, &p, &e);
  if(rc)
    fprintf(stderr, "protector: %s\n", e.message);
  ASSERT_OK(rc);
  ASSERT_STR_EQ(p.server_key_name, name);
  ASSERT_OK(sq_sql_protector_get(arm, server_east, &p, &e));
  ASSERT_STR_EQ(p.server_key_type, "AzureKeyVault");
  ASSERT_OK(sq_sql_protector_revalidate(arm, server_east, &e));
  /* the key in use cannot be deleted: 409 AzureKeyVaultKeyInUse */
  ASSERT_EQ(sq_sql_server_key_delete(arm, server_east, name, &e), SQ_ECONFLICT);
  ASSERT_STR_EQ(e.reason, "AzureKeyVaultKeyInUse");
  /* back to service-managed, then the key can go */
  ASSERT_OK(sq_sql_protector_set(arm, server_east, NULL, -1, &p, &e));
  ASSERT_STR_EQ(p.server_key_type, "ServiceManaged");
  ASSERT_OK(sq_sql_server_key_delete(arm, server_east, name, &e));
  ASSERT_EQ(sq_sql_server_key_get(arm, server_east, name, &got, &e), SQ_ENOTFOUND);
}

static int find_dropped(void *ud, const sq_sql_dropped_db *d) {
  if(!strcmp(d->database_name, "db1"))
    snprintf((char *)ud, SQ_SQL_ID_MAX, "%s", d->id);
  return 0;
}

TEST(delete_and_restorable_dropped) {
  setup();
  sq_err e;
  ASSERT_OK(sq_sql_db_delete(arm, db1, &e));
  sq_sql_database d;
  ASSERT_EQ(sq_sql_db_get(arm, db1, SQ_SQL_KEYS_NONE, 0, &d, &e), SQ_ENOTFOUND);
  /* deleting again is success (already gone) */
  ASSERT_OK(sq_sql_db_delete(arm, db1, &e));
  char dropped[SQ_SQL_ID_MAX] = "";
  ASSERT_OK(sq_sql_dropped_list(arm, server_east, find_dropped, dropped, &e));
  ASSERT(dropped[0]);
  sq_sql_dropped_db dd;
  ASSERT_OK(sq_sql_dropped_get(arm, dropped, SQ_SQL_KEYS_ALL, 0, &dd, &e));
  ASSERT_STR_EQ(dd.database_name, "db1");
  ASSERT_GT(dd.deletion_date, 0);
  sq_sql_dropped_db_free(&dd);
}

static int first_link(void *ud, const sq_sql_repl_link *l) {
  memcpy(ud, l, sizeof *l);
  return 1;
}

typedef struct keylist {
  char uris[8][SQ_SQL_URI_MAX];
  const char *ptrs[9];
  int n;
} keylist;

static void keys_of(const sq_sql_db_key *keys, size_t n, keylist *kl) {
  memset(kl, 0, sizeof *kl);
  for(size_t i = 0; i < n && kl->n < 8; i++) {
    snprintf(kl->uris[kl->n], sizeof kl->uris[0], "%s", keys[i].uri);
    kl->ptrs[kl->n] = kl->uris[kl->n];
    kl->n++;
  }
}

static int count_fogs(void *ud, const sq_sql_fog *f) {
  if(!strcmp(f->name, "azc-fog"))
    (*(int *)ud)++;
  return 0;
}

TEST(geo_secondary_links_failover_group_and_restores) {
  setup();
  sq_err e;
  char primary[SQ_SQL_ID_MAX], secondary[SQ_SQL_ID_MAX];
  ASSERT_OK(sq_sql_database_id(server_east, "geo1", primary, sizeof primary, &e));
  ASSERT_OK(sq_sql_database_id(server_west, "geo1", secondary, sizeof secondary, &e));
  const char *keys[] = {key2, NULL};
  sq_sql_db_create_args c = {.location = "eastus", .umi_id = UMI, .keys = keys, .encryption_protector = key2,
                             .auto_rotation = -1};
  sq_sql_database d;
  sq_code rc = sq_sql_db_create(arm, primary, &c, &d, &e);
  if(rc)
    fprintf(stderr, "primary: %s\n", e.message);
  ASSERT_OK(rc);
  int64_t created = d.creation_date;
  sq_sql_database_free(&d);

  /* the secondary is created with the primary's current keys and protector */
  ASSERT_OK(sq_sql_db_get(arm, primary, SQ_SQL_KEYS_CURRENT, 0, &d, &e));
  keylist kl;
  keys_of(d.keys, d.n_keys, &kl);
  char prot[SQ_SQL_URI_MAX];
  snprintf(prot, sizeof prot, "%s", d.encryption_protector);
  sq_sql_database_free(&d);
  ASSERT_GE(kl.n, 1);
  sq_sql_db_create_args sc = {.location = "westus", .mode = SQ_SQL_CREATE_SECONDARY, .source_database_id = primary,
                              .secondary_type = "Geo", .umi_id = UMI, .keys = kl.ptrs, .encryption_protector = prot,
                              .auto_rotation = -1};
  rc = sq_sql_db_create(arm, secondary, &sc, &d, &e);
  if(rc)
    fprintf(stderr, "secondary: %s\n", e.message);
  ASSERT_OK(rc);
  sq_sql_database_free(&d);

  sq_sql_repl_link link;
  memset(&link, 0, sizeof link);
  ASSERT_OK(sq_sql_repl_list(arm, primary, first_link, &link, &e));
  ASSERT(link.id[0]);
  ASSERT_STR_EQ(link.partner_server, "azc-sql-west");
  ASSERT_STR_EQ(link.role, "Primary");
  sq_sql_repl_link got;
  ASSERT_OK(sq_sql_repl_get(arm, link.id, &got, &e));
  ASSERT_STR_EQ(got.id, link.id);

  /* a failover group over both servers */
  char fog[SQ_SQL_ID_MAX + 32];
  snprintf(fog, sizeof fog, "%s/failoverGroups/azc-fog", server_east);
  const char *partners[] = {server_west, NULL};
  const char *dbs[] = {primary, NULL};
  sq_sql_fog_spec spec = {partners, dbs, "Manual", 0, NULL};
  sq_sql_fog f;
  rc = sq_sql_fog_put(arm, fog, &spec, &f, &e);
  if(rc)
    fprintf(stderr, "fog: %s\n", e.message);
  ASSERT_OK(rc);
  ASSERT_EQ(f.n_databases, 1);
  ASSERT_STR_EQ(f.replication_role, "Primary");
  sq_sql_fog_free(&f);
  int fogs = 0;
  ASSERT_OK(sq_sql_fog_list(arm, server_east, count_fogs, &fogs, &e));
  ASSERT_EQ(fogs, 1);
  /* membership alone: out, then in again */
  const char *none[] = {NULL};
  ASSERT_OK(sq_sql_fog_set_databases(arm, fog, none, &f, &e));
  ASSERT_EQ(f.n_databases, 0);
  sq_sql_fog_free(&f);
  ASSERT_OK(sq_sql_fog_set_databases(arm, fog, dbs, &f, &e));
  ASSERT_EQ(f.n_databases, 1);
  sq_sql_fog_free(&f);
  /* fail over from the secondary's side, then the roles have swapped */
  char fog_west[SQ_SQL_ID_MAX + 32];
  snprintf(fog_west, sizeof fog_west, "%s/failoverGroups/azc-fog", server_west);
  rc = sq_sql_fog_failover(arm, fog_west, 0, &e);
  if(rc)
    fprintf(stderr, "failover: %s\n", e.message);
  ASSERT_OK(rc);
  ASSERT_OK(sq_sql_fog_get(arm, fog_west, &f, &e));
  ASSERT_STR_EQ(f.replication_role, "Primary");
  sq_sql_fog_free(&f);
  rc = sq_sql_fog_failover(arm, fog, 0, &e); /* and back */
  if(rc)
    fprintf(stderr, "failback: %s\n", e.message);
  ASSERT_OK(rc);
  ASSERT_OK(sq_sql_fog_delete(arm, fog, &e));

  /* point-in-time restore with the keys valid at that point */
  ASSERT_OK(sq_sql_db_get(arm, primary, SQ_SQL_KEYS_AT, created + 1, &d, &e));
  keys_of(d.keys, d.n_keys, &kl);
  sq_sql_database_free(&d);
  char pitr[SQ_SQL_ID_MAX];
  ASSERT_OK(sq_sql_database_id(server_east, "geo1-pitr", pitr, sizeof pitr, &e));
  sq_sql_db_create_args pc = {.location = "eastus", .mode = SQ_SQL_CREATE_PITR, .source_database_id = primary,
                              .restore_point_in_time = created + 1, .umi_id = UMI, .keys = kl.ptrs,
                              .encryption_protector = prot, .auto_rotation = -1};
  rc = sq_sql_db_create(arm, pitr, &pc, &d, &e);
  if(rc)
    fprintf(stderr, "pitr: %s\n", e.message);
  ASSERT_OK(rc);
  ASSERT_STR_EQ(d.status, "Online");
  sq_sql_database_free(&d);
}

static int find_dropped_db1(void *ud, const sq_sql_dropped_db *d) {
  if(!strcmp(d->database_name, "db1"))
    snprintf((char *)ud, SQ_SQL_ID_MAX, "%s", d->id);
  return 0;
}

static int count_ltr(void *ud, const sq_sql_ltr_backup *b) {
  (void)b;
  (*(int *)ud)++;
  return 0;
}

TEST(restore_dropped_and_ltr_listing) {
  setup();
  sq_err e;
  char dropped[SQ_SQL_ID_MAX] = "";
  ASSERT_OK(sq_sql_dropped_list(arm, server_east, find_dropped_db1, dropped, &e));
  ASSERT(dropped[0]);
  sq_sql_dropped_db dd;
  ASSERT_OK(sq_sql_dropped_get(arm, dropped, SQ_SQL_KEYS_ALL, 0, &dd, &e));
  keylist kl;
  keys_of(dd.keys, dd.n_keys, &kl);
  sq_sql_dropped_db_free(&dd);
  ASSERT_GE(kl.n, 1);
  char id[SQ_SQL_ID_MAX];
  ASSERT_OK(sq_sql_database_id(server_east, "db1-restored", id, sizeof id, &e));
  sq_sql_db_create_args rc_args = {.location = "eastus", .mode = SQ_SQL_CREATE_RESTORE,
                                   .restorable_dropped_database_id = dropped, .umi_id = UMI, .keys = kl.ptrs,
                                   .encryption_protector = key2, .auto_rotation = -1};
  sq_sql_database d;
  sq_code rc = sq_sql_db_create(arm, id, &rc_args, &d, &e);
  if(rc)
    fprintf(stderr, "restore dropped: %s\n", e.message);
  ASSERT_OK(rc);
  sq_sql_database_free(&d);
  int n = 0;
  ASSERT_OK(sq_sql_ltr_list(arm, AZC_SUB, NULL, "eastus", "azc-sql-east", "geo1", count_ltr, &n, &e));
  ASSERT_OK(sq_sql_ltr_list(arm, AZC_SUB, "rg-tde", "eastus", "azc-sql-east", "geo1", count_ltr, &n, &e));
}

TEST(managed_instance_keys_and_protector) {
  setup();
  sq_err e;
  char mi[SQ_SQL_ID_MAX];
  ASSERT_OK(sq_sql_mi_id(AZC_SUB, "rg-tde", "azc-mi-east", mi, sizeof mi, &e));
  sq_sql_server s;
  ASSERT_OK(sq_sql_server_get(arm, mi, &s, &e));
  ASSERT_STR_EQ(s.name, "azc-mi-east");
  ASSERT(s.primary_umi_id[0]);
  sq_sql_server_key k;
  sq_code rc = sq_sql_server_key_create(arm, mi, key3, &k, &e);
  if(rc)
    fprintf(stderr, "MI key: %s\n", e.message);
  ASSERT_OK(rc);
  ASSERT_EQ(strlen(k.thumbprint), 40);
  sq_sql_protector p;
  rc = sq_sql_protector_set(arm, mi, k.name, 0, &p, &e);
  if(rc)
    fprintf(stderr, "MI protector: %s\n", e.message);
  ASSERT_OK(rc);
  ASSERT_OK(sq_sql_protector_get(arm, mi, &p, &e));
  ASSERT_STR_EQ(p.server_key_name, k.name);
  ASSERT(!strcasecmp(p.uri, key3));
  ASSERT_OK(sq_sql_protector_revalidate(arm, mi, &e));
  ASSERT_OK(sq_sql_protector_set(arm, mi, NULL, -1, &p, &e));
  ASSERT_OK(sq_sql_server_key_delete(arm, mi, k.name, &e));
}

static int collect_names(void *ud, const sq_sql_database *d) {
  char *names = ud;
  snprintf(names + strlen(names), 512 - strlen(names), "%s ", d->name);
  return 0;
}

/* Last: it moves the emulator's clock past SQL's key check and grace period. */
TEST(zz_inaccessible_databases_are_listed) {
  setup();
  sq_err e;
  char kid[SQ_KV_KID_MAX], id[SQ_SQL_ID_MAX];
  make_key(A.vault_east, "inacc-k", kid);
  ASSERT_OK(sq_sql_database_id(server_east, "inacc1", id, sizeof id, &e));
  const char *keys[] = {kid, NULL};
  sq_sql_db_create_args c = {.location = "eastus", .umi_id = UMI, .keys = keys, .encryption_protector = kid,
                             .auto_rotation = -1};
  sq_sql_database d;
  sq_code rc = sq_sql_db_create(arm, id, &c, &d, &e);
  if(rc)
    fprintf(stderr, "create: %s\n", e.message);
  ASSERT_OK(rc);
  sq_sql_database_free(&d);
  char names[512] = "";
  ASSERT_OK(sq_sql_db_list_inaccessible(arm, server_east, collect_names, names, &e));
  ASSERT(!strstr(names, "inacc1 "));
  /* the protector disabled: after the key check and grace SQL gives up */
  sq_kv_attrs off = {0, 0, 0};
  sq_kv_key k;
  sq_kv_key_init(&k);
  ASSERT_OK(sq_kv_update(kv, A.vault_east, "inacc-k", NULL, &off, NULL, &k, &e));
  sq_kv_key_free(&k);
  ASSERT_OK(azc_clock_advance(&A, 3000 * 1000));
  json_t *body = json_object();
  long st = azc_control(&A, "POST", "/_emulator/sql/check", body, NULL);
  json_decref(body);
  ASSERT_EQ(st, 200);
  names[0] = '\0';
  ASSERT_OK(sq_sql_db_list_inaccessible(arm, server_east, collect_names, names, &e));
  ASSERT_STR_CONTAINS(names, "inacc1 ");
  ASSERT(!strstr(names, "db1 ")); /* the others are not listed */
}

TEST_MAIN()
