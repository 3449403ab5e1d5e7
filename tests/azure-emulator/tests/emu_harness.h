/* emu_harness.h — drives emu_handle() in-process for the emulator's C tests:
 * an emulator on a fresh SQLite file seeded with seeds/small.yaml, requests
 * built from strings, responses parsed as JSON. No network. */
#ifndef SQLTDE_EMU_HARNESS_H
#define SQLTDE_EMU_HARNESS_H

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "emu.h"
#include "sqltde/jsonx.h"
#include "test.h"

#define T_TENANT "11111111-1111-4111-8111-111111111111"
#define T_SUB1 "aaaaaaaa-0000-4000-8000-000000000001"
#define T_SUB2 "aaaaaaaa-0000-4000-8000-000000000002"
#define T_OP_CID "0a0a0a0a-0000-4000-8000-000000000001"
#define T_OP_OID "0b0b0b0b-0000-4000-8000-000000000001"
#define T_NOBODY_CID "0a0a0a0a-0000-4000-8000-000000000002"
#define T_NOBODY_OID "0b0b0b0b-0000-4000-8000-000000000002"
#define T_UMI_CID "0c0c0c0c-0000-4000-8000-000000000001"
#define T_UMI_OID "0d0d0d0d-0000-4000-8000-000000000001"

typedef struct t_req {
  const char *method, *host, *path, *query, *ctype;
  const char *body;
  size_t body_len;
  const char *hnames[8], *hvals[8];
  int nh;
} t_req;

static inline const char *t_header(const sq_httpd_req *r, const char *name) {
  const t_req *t = r->impl;
  for(int i = 0; i < t->nh; i++)
    if(!strcasecmp(t->hnames[i], name))
      return t->hvals[i];
  if(!strcasecmp(name, "Content-Type") && t->ctype)
    return t->ctype;
  return NULL;
}

typedef struct t_resp {
  int status;
  int drop;
  json_t *json; /* NULL when the body is empty or not JSON */
  char *body;
  char *headers; /* "Name: value\r\n..." */
} t_resp;

static inline void t_resp_free(t_resp *r) {
  json_decref(r->json);
  free(r->body);
  free(r->headers);
  memset(r, 0, sizeof *r);
}

/* Value of a response header (into a static buffer), NULL if absent. */
static inline const char *t_resp_header(const t_resp *r, const char *name) {
  static char val[2048];
  size_t nl = strlen(name);
  for(const char *p = r->headers; p && *p;) {
    const char *eol = strstr(p, "\r\n");
    size_t len = eol ? (size_t)(eol - p) : strlen(p);
    if(len > nl + 1 && !strncasecmp(p, name, nl) && p[nl] == ':') {
      const char *v = p + nl + 1;
      while(*v == ' ')
        v++;
      snprintf(val, sizeof val, "%.*s", (int)(len - (size_t)(v - p)), v);
      return val;
    }
    p = eol ? eol + 2 : p + len;
  }
  return NULL;
}

/* Performs one request. url = "https://HOST/path?query" (scheme and port ignored). */
static inline t_resp t_do(emu *e, const char *method, const char *url, const char *bearer, const char *ctype,
                          const char *body) {
  char buf[16384];
  snprintf(buf, sizeof buf, "%s", url);
  char *p = strstr(buf, "://") ? strstr(buf, "://") + 3 : buf;
  char *slash = strchr(p, '/');
  static char empty[] = "";
  char *path = slash ? strdup(slash) : strdup("/");
  if(slash)
    *slash = '\0';
  char *colon = strchr(p, ':');
  if(colon)
    *colon = '\0';
  char *q = strchr(path, '?');
  char *query = empty;
  if(q) {
    *q = '\0';
    query = q + 1;
  }
  t_req t = {.method = method, .host = p, .path = path, .query = query, .ctype = ctype, .body = body,
             .body_len = body ? strlen(body) : 0};
  char auth[EMU_MAX_TOKEN + 16];
  if(bearer) {
    snprintf(auth, sizeof auth, "Bearer %s", bearer);
    t.hnames[t.nh] = "Authorization";
    t.hvals[t.nh++] = auth;
  }
  sq_httpd_req req = {.method = method, .path = path, .query = query, .host = p, .content_type = ctype ? ctype : "",
                      .body = body ? body : "", .body_len = t.body_len, .header = t_header, .impl = &t};
  sq_httpd_resp resp;
  emu_resp_init(&resp);
  int latency = 0;
  emu_handle(e, &req, &resp, &latency);
  t_resp out = {.status = resp.status, .drop = resp.drop};
  out.body = strdup(resp.body.ptr ? resp.body.ptr : "");
  out.headers = strdup(resp.headers.ptr ? resp.headers.ptr : "");
  if(resp.body.len)
    out.json = json_loadb(resp.body.ptr, resp.body.len, 0, NULL);
  emu_resp_free(&resp);
  free(path);
  return out;
}

static inline t_resp t_get(emu *e, const char *url, const char *bearer) { return t_do(e, "GET", url, bearer, NULL, NULL); }
static inline t_resp t_json(emu *e, const char *method, const char *url, const char *bearer, const char *body) {
  return t_do(e, method, url, bearer, "application/json", body);
}

static char t_dir[64];

/* Opens an emulator on a temp SQLite file with the sample seed. */
static inline emu *t_emu_open(void) {
  snprintf(t_dir, sizeof t_dir, "/tmp/sqltde-emu-test.XXXXXX");
  char *d = mkdtemp(t_dir);
  if(!d)
    return NULL;
  char db[128], seed[1024];
  snprintf(db, sizeof db, "%s/state.db", d);
  const char *src = getenv("SQLTDE_EMU_SRC");
  snprintf(seed, sizeof seed, "%s/seeds/small.yaml", src ? src : "tests/azure-emulator");
  emu *e = calloc(1, sizeof *e);
  sq_err err;
  sq_err_clear(&err);
  if(emu_open(e, db, &err) || emu_seed_load_file(e, seed, &err)) {
    fprintf(stderr, "t_emu_open: %s\n", err.message);
    free(e);
    return NULL;
  }
  e->port = 8443;
  return e;
}

static inline void t_emu_close(emu *e) {
  if(e) {
    emu_close(e);
    free(e);
  }
  const char *files[] = {"state.db", "state.db-wal", "state.db-shm"};
  char p[128];
  for(int i = 0; i < 3; i++) {
    snprintf(p, sizeof p, "%s/%s", t_dir, files[i]);
    unlink(p);
  }
  rmdir(t_dir);
}

/* An access token for a seeded identity (object id) and resource. */
static inline char *t_token(emu *e, const char *oid, const char *resource, int64_t lifetime) {
  emu_identity id;
  if(!emu_identity_by_object_id(e, oid, &id))
    return NULL;
  char *tok = NULL;
  int64_t exp;
  if(emu_token_mint(e, id.object_id, id.tenant, id.client_id, resource, lifetime, &tok, &exp, NULL))
    return NULL;
  return tok;
}

static inline const char *t_str(const t_resp *r, const char *path) { return sq_json_str(r->json, path); }

#endif
