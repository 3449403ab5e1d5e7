/* fuzz_emulator_router.c — libFuzzer target for the emulator's request path:
 * the input is split on '\n' into method, host, path, query, content type and
 * body (the rest), optionally with a valid bearer token (first byte odd), and
 * handed to emu_handle() against an in-memory state. Also feeds the raw
 * pieces to the path/query decoders and the YAML seed parser. Any crash,
 * leak or UB is a finding; every answer must be a well-formed status. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "emu.h"

static emu *E;
static char *TOKEN_KV, *TOKEN_ARM;

static const char *SEED =
    "{\"tenants\":[{\"id\":\"11111111-1111-4111-8111-111111111111\"}],"
    "\"subscriptions\":[{\"id\":\"aaaaaaaa-0000-4000-8000-000000000001\",\"tenant\":\"11111111-1111-4111-8111-111111111111\"}],"
    "\"regions\":[{\"name\":\"eastus\",\"geography\":\"US\"}],"
    "\"resourceGroups\":[{\"subscription\":\"aaaaaaaa-0000-4000-8000-000000000001\",\"name\":\"rg\",\"location\":\"eastus\"}],"
    "\"identities\":[{\"type\":\"application\",\"name\":\"op\",\"tenant\":\"11111111-1111-4111-8111-111111111111\","
    "\"clientId\":\"0a0a0a0a-0000-4000-8000-000000000001\",\"objectId\":\"0b0b0b0b-0000-4000-8000-000000000001\","
    "\"clientSecret\":\"s\"}],"
    "\"vaults\":[{\"name\":\"kv1\",\"subscription\":\"aaaaaaaa-0000-4000-8000-000000000001\",\"resourceGroup\":\"rg\","
    "\"location\":\"eastus\",\"accessPolicies\":[{\"objectId\":\"0b0b0b0b-0000-4000-8000-000000000001\",\"keys\":[\"all\"]}]}],"
    "\"roleAssignments\":[{\"scope\":\"/subscriptions/aaaaaaaa-0000-4000-8000-000000000001\",\"role\":\"Owner\","
    "\"principalId\":\"0b0b0b0b-0000-4000-8000-000000000001\"}]}";

typedef struct fz {
  const char *auth;
  const char *ctype;
} fz;

static const char *hdr(const sq_httpd_req *r, const char *name) {
  const fz *f = r->impl;
  if(!strcasecmp(name, "Authorization"))
    return f->auth;
  if(!strcasecmp(name, "Content-Type"))
    return f->ctype;
  if(!strcasecmp(name, "Metadata"))
    return "true";
  return NULL;
}

static void init(void) {
  E = calloc(1, sizeof *E);
  if(emu_open(E, ":memory:", NULL))
    abort();
  json_t *seed = json_loads(SEED, 0, NULL);
  if(emu_seed_apply(E, seed, NULL, NULL))
    abort();
  json_decref(seed);
  E->port = 443;
  /* keep runs fast: tiny RSA work is still real, but no throttling noise */
  E->set.throttle_enabled = 0;
  int64_t exp;
  if(emu_token_mint(E, "0b0b0b0b-0000-4000-8000-000000000001", "11111111-1111-4111-8111-111111111111",
                    "0a0a0a0a-0000-4000-8000-000000000001", "https://vault.azure.net", 86400 * 365, &TOKEN_KV, &exp, NULL) ||
     emu_token_mint(E, "0b0b0b0b-0000-4000-8000-000000000001", "11111111-1111-4111-8111-111111111111",
                    "0a0a0a0a-0000-4000-8000-000000000001", "https://management.azure.com", 86400 * 365, &TOKEN_ARM,
                    &exp, NULL))
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if(!E)
    init();
  if(size < 1 || size > 65536)
    return 0;
  int with_auth = data[0] & 1;
  char *buf = malloc(size);
  memcpy(buf, data + 1, size - 1);
  buf[size - 1] = '\0';
  /* split into fields; the body may contain anything after the 5th newline */
  char *f[6] = {0};
  char *p = buf;
  for(int i = 0; i < 5; i++) {
    f[i] = p;
    char *nl = memchr(p, '\n', (size_t)(buf + size - 1 - p));
    if(!nl) {
      p = buf + size - 1;
      for(int k = i + 1; k < 6; k++)
        f[k] = p;
      break;
    }
    *nl = '\0';
    p = nl + 1;
  }
  if(!f[5])
    f[5] = p;
  size_t body_len = (size_t)(buf + size - 1 - f[5]);
  /* raw decoders */
  emu_call *c = calloc(1, sizeof *c);
  (void)emu_path_split(c, f[2]);
  (void)emu_query_parse(c, f[3]);
  json_t *y = NULL;
  if(emu_yaml_to_json(f[5], strnlen(f[5], body_len), &y, NULL) == SQ_OK)
    json_decref(y);
  free(c);
  /* the whole request path */
  char auth[EMU_MAX_TOKEN + 16] = "";
  int arm = !strcmp(f[1], "management.localhost");
  if(with_auth)
    snprintf(auth, sizeof auth, "Bearer %s", arm ? TOKEN_ARM : TOKEN_KV);
  fz ctx = {with_auth ? auth : NULL, f[4]};
  sq_httpd_req req = {.method = f[0], .host = f[1], .path = f[2], .query = f[3], .content_type = f[4],
                      .body = f[5], .body_len = body_len, .header = hdr, .impl = &ctx};
  sq_httpd_resp resp;
  emu_resp_init(&resp);
  int latency = 0;
  emu_handle(E, &req, &resp, &latency);
  if(!resp.drop && (resp.status < 100 || resp.status > 599))
    abort();
  if(resp.body.len) {
    json_t *j = json_loadb(resp.body.ptr, resp.body.len, JSON_DECODE_ANY, NULL);
    if(!j)
      abort(); /* every answer with a body is JSON */
    json_decref(j);
  }
  emu_resp_free(&resp);
  free(buf);
  return 0;
}
