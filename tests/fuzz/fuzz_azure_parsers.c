/* fuzz_azure_parsers.c — libFuzzer target: arbitrary bytes through every
 * parser that reads what Azure (or something pretending to be Azure) sends:
 * error bodies, token responses, Retry-After, the Key Vault challenge, key
 * ids and KeyBundles, the Microsoft.Sql resources, vault resources and role
 * assignments, LRO status headers and ARM ids. Any crash, leak, hang or UB is a finding. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sqltde/azure/arm.h"
#include "sqltde/azure/credential.h"
#include "sqltde/azure/keyvault.h"
#include "sqltde/azure/pipeline.h"
#include "sqltde/azure/sql.h"
#include "sqltde/azure/vaults.h"
#include "sqltde/jsonx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void json_parsers(const json_t *j) {
  sq_err e;
  sq_sql_database d;
  if(!sq_sql_db_parse(j, &d, &e))
    sq_sql_database_free(&d);
  sq_sql_server s;
  (void)sq_sql_server_parse(j, &s, &e);
  sq_sql_server_key k;
  (void)sq_sql_server_key_parse(j, &k, &e);
  sq_sql_protector p;
  (void)sq_sql_protector_parse(j, &p, &e);
  sq_sql_repl_link l;
  (void)sq_sql_repl_link_parse(j, &l, &e);
  sq_sql_fog f;
  if(!sq_sql_fog_parse(j, &f, &e))
    sq_sql_fog_free(&f);
  sq_sql_dropped_db dd;
  if(!sq_sql_dropped_db_parse(j, &dd, &e))
    sq_sql_dropped_db_free(&dd);
  sq_sql_ltr_backup b;
  (void)sq_sql_ltr_parse(j, &b, &e);
  sq_kv_key kk;
  sq_kv_key_init(&kk);
  (void)sq_kv_parse_key(j, &kk, &e);
  sq_kv_key_free(&kk);
  sq_vault v;
  if(!sq_vault_parse(j, &v, &e)) {
    (void)sq_vault_key_perms(&v, "oid");
    sq_vault_free(&v);
  }
  sq_role_assignment ra;
  (void)sq_role_assignment_parse(j, &ra, &e);
  /* the same parsers on nested members, as list pages hand them items */
  const json_t *value = json_object_get(j, "value");
  size_t i;
  json_t *it;
  json_array_foreach(value, i, it) {
    if(i > 4)
      break;
    if(!sq_sql_db_parse(it, &d, &e))
      sq_sql_database_free(&d);
    sq_kv_key_init(&kk);
    (void)sq_kv_parse_key(it, &kk, &e);
    sq_kv_key_free(&kk);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if(size > 256 * 1024)
    return 0;
  char *s = malloc(size + 1);
  if(!s)
    return 0;
  memcpy(s, data, size);
  s[size] = '\0';
  sq_err e;

  /* bodies */
  char code[64], msg[256];
  (void)sq_azure_error_fields(s, size, code, sizeof code, msg, sizeof msg);
  char *tok = NULL;
  int64_t life;
  if(!sq_azure_parse_token_response(s, size, 1700000000, &tok, &life, &e))
    sq_free_secret(tok);
  json_t *j = NULL;
  if(!sq_json_parse(s, size, "fuzz", &j, &e)) {
    json_parsers(j);
    json_decref(j);
  }
  sq_http_resp r;
  sq_http_resp_init(&r);
  r.status = size ? 400 + data[0] % 200 : 500;
  snprintf(r.content_type, sizeof r.content_type, "application/json");
  if(!sq_buf_add(&r.body, s, size)) {
    (void)sq_azure_error_from_resp(&r, "fuzz", &e);
    json_t *jb = NULL;
    if(!sq_azure_json_body(&r, "fuzz", &jb, &e))
      json_decref(jb);
  }
  sq_http_resp_free(&r);

  /* headers and ids (NUL-terminated strings) */
  (void)sq_azure_parse_retry_after(s, 1700000000);
  sq_kv_challenge ch;
  if(!sq_kv_parse_challenge(s, &ch, &e))
    (void)sq_kv_verify_challenge(&ch, "kv1.vault.localhost", &e);
  char v[256], n[128], ver[65];
  (void)sq_kv_split_kid(s, v, sizeof v, n, sizeof n, ver, sizeof ver, &e);
  char name[256];
  (void)sq_sql_server_key_name(s, name, sizeof name, &e);
  char rt[256], sub[64];
  sq_arm_resource_type(s, rt, sizeof rt);
  sq_arm_subscription_of(s, sub, sizeof sub);
  (void)sq_arm_path_valid(s);
  char scheme[16], host[256];
  int port;
  (void)sq_azure_url_split(s, scheme, sizeof scheme, host, sizeof host, &port);
  (void)sq_azure_same_origin(s, "https://management.localhost:8443");
  if(size < 2048) {
    sq_arm_lro lro;
    (void)sq_arm_lro_from_response("PUT", "/subscriptions/s/x", "2025-01-01",
                                   "https://management.localhost:8443", 202, s, s, 0, &lro, &e);
  }
  free(s);
  return 0;
}
