/* entra.c — Microsoft Entra ID: the v2 (and v1) token endpoint with client
 * credentials (secret, certificate assertion, federated token), OpenID
 * metadata, JWKS, instance discovery, and an IMDS-style managed identity
 * endpoint; plus minting and verifying the access tokens ARM and Key Vault
 * accept. All validity windows use the virtual clock. */
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "emu.h"
#include "sqltde/codec.h"
#include "sqltde/jsonx.h"

#define ASSERTION_TYPE "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#define SKEW_S 300 /* Entra and the resource providers tolerate 5 minutes of clock skew */

/* ---- identities ---- */

static int identity_row(emu *e, const char *where, const char *val, emu_identity *out) {
  char sql[256];
  snprintf(sql, sizeof sql,
           "SELECT object_id, client_id, tenant, kind, resource_id, name FROM identities WHERE %s=?", where);
  sqlite3_stmt *st = emu_sql(e, sql);
  if(!st)
    return 0;
  sqlite3_bind_text(st, 1, val, -1, SQLITE_STATIC);
  int found = sqlite3_step(st) == SQLITE_ROW;
  if(found && out) {
    memset(out, 0, sizeof *out);
    snprintf(out->object_id, sizeof out->object_id, "%s", emu_col_text(st, 0));
    snprintf(out->client_id, sizeof out->client_id, "%s", emu_col_text(st, 1));
    snprintf(out->tenant, sizeof out->tenant, "%s", emu_col_text(st, 2));
    snprintf(out->kind, sizeof out->kind, "%s", emu_col_text(st, 3));
    snprintf(out->resource_id, sizeof out->resource_id, "%s", emu_col_text(st, 4));
    snprintf(out->name, sizeof out->name, "%s", emu_col_text(st, 5));
  }
  sqlite3_finalize(st);
  return found;
}

int emu_identity_by_client_id(emu *e, const char *id, emu_identity *out) {
  return identity_row(e, "client_id", id, out);
}
int emu_identity_by_object_id(emu *e, const char *id, emu_identity *out) {
  return identity_row(e, "object_id", id, out);
}
int emu_identity_by_resource_id(emu *e, const char *id, emu_identity *out) {
  return identity_row(e, "resource_id", id, out);
}

/* A multi-tenant application acts in a tenant other than its home tenant
 * through its service principal there: that principal's object id, or 0
 * when the application has none in tid (not consented there). */
int emu_sp_object_id(emu *e, const char *client_id, const char *tid, char oid[EMU_ID_MAX]) {
  return emu_sql_text(e, oid, EMU_ID_MAX, "SELECT object_id FROM service_principals WHERE client_id=? AND tenant=?",
                      client_id, tid, NULL);
}

int emu_oid_in_tenant(emu *e, const char *oid, const char *tid, char out[EMU_ID_MAX]) {
  emu_identity id;
  if(emu_identity_by_object_id(e, oid, &id) && strcasecmp(id.tenant, tid) && emu_sp_object_id(e, id.client_id, tid, out))
    return 1;
  snprintf(out, EMU_ID_MAX, "%s", oid);
  return 0;
}

/* Tenant id for a path segment (id or name), or 0. */
static int tenant_resolve(emu *e, const char *seg, char *tid, size_t n) {
  return emu_sql_text(e, tid, n, "SELECT id FROM tenants WHERE id=? OR name=? COLLATE NOCASE", seg, seg, NULL);
}

/* ---- resources (audiences) ---- */

static int host_is(const char *url, const char *host) {
  static const char https[] = "https://";
  if(strncasecmp(url, https, sizeof https - 1))
    return 0;
  const char *h = url + sizeof https - 1;
  size_t hl = strlen(host);
  if(strncasecmp(h, host, hl))
    return 0;
  const char *rest = h + hl;
  if(*rest == ':') { /* optional port */
    rest++;
    while(*rest >= '0' && *rest <= '9')
      rest++;
  }
  return *rest == '\0';
}

static int is_arm_resource(const char *r) {
  return host_is(r, "management.azure.com") || host_is(r, "management.core.windows.net") ||
         host_is(r, "management.localhost");
}

static int is_kv_resource(const char *r) {
  return host_is(r, "vault.azure.net") || host_is(r, "vault.localhost") ||
         !strcmp(r, "cfa8b339-82a2-471a-a3c9-0fc0be7a4093");
}

const char *emu_resource_canonical(const char *s, char *buf, size_t buflen) {
  if(!s)
    return NULL;
  size_t n = strlen(s);
  static const char dflt[] = "/.default";
  if(n >= sizeof dflt - 1 && !strcmp(s + n - (sizeof dflt - 1), dflt))
    n -= sizeof dflt - 1;
  while(n && s[n - 1] == '/')
    n--;
  if(!n || n >= buflen)
    return NULL;
  memcpy(buf, s, n);
  buf[n] = '\0';
  if(is_arm_resource(buf) || is_kv_resource(buf) || host_is(buf, "database.windows.net") ||
     host_is(buf, "database.localhost"))
    return buf;
  return NULL;
}

/* ---- minting and verifying access tokens ---- */

static void issuer_for(const emu *e, const char *tid, char *out, size_t n) {
  snprintf(out, n, "https://login.localhost:%d/%s/v2.0", e->port, tid);
}

static sq_code mint(emu *e, const emu_identity *id, const char *resource, const char *acr, char **out,
                    int64_t *exp_out, sq_err *err) {
  int64_t now = emu_now_s(e);
  int64_t exp = now + e->set.token_lifetime_s;
  char iss[256], uti[33];
  issuer_for(e, id->tenant, iss, sizeof iss);
  emu_rand_hex(uti, 16);
  json_t *claims = json_pack("{s:s,s:s,s:I,s:I,s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}",
                             "aud", resource, "iss", iss, "iat", (json_int_t)now, "nbf",
                             (json_int_t)now, "exp", (json_int_t)exp, "appid", id->client_id,
                             "appidacr", acr, "azp", id->client_id, "azpacr", acr, "idp", iss, "oid",
                             id->object_id, "sub", id->object_id, "tid", id->tenant, "ver", "1.0",
                             "idtyp", "app", "uti", uti);
  if(id->resource_id[0])
    json_object_set_new(claims, "xms_mirid", json_string(id->resource_id));
  json_t *hdr = json_pack("{s:s,s:s}", "kid", e->token_kid, "x5t", e->token_kid);
  sq_code rc = emu_jwt_sign(e->token_key, "RS256", hdr, claims, out, err);
  json_decref(hdr);
  json_decref(claims);
  if(exp_out)
    *exp_out = exp;
  return rc;
}

sq_code emu_token_mint(emu *e, const char *oid, const char *tid, const char *appid,
                       const char *resource, int64_t lifetime_s, char **out, int64_t *exp_out,
                       sq_err *err) {
  emu_identity id;
  memset(&id, 0, sizeof id);
  snprintf(id.object_id, sizeof id.object_id, "%s", oid);
  snprintf(id.tenant, sizeof id.tenant, "%s", tid);
  snprintf(id.client_id, sizeof id.client_id, "%s", appid);
  int64_t saved = e->set.token_lifetime_s;
  if(lifetime_s > 0)
    e->set.token_lifetime_s = lifetime_s;
  sq_code rc = mint(e, &id, resource, "1", out, exp_out, err);
  e->set.token_lifetime_s = saved;
  return rc;
}

emu_tok_status emu_bearer_verify(emu_call *c, emu_audience aud, json_t **claims_out) {
  if(claims_out)
    *claims_out = NULL;
  const char *h = emu_header_in(c, "Authorization");
  if(!h || !*h)
    return EMU_TOK_MISSING;
  if(strncasecmp(h, "Bearer ", 7))
    return EMU_TOK_MALFORMED;
  const char *tok = h + 7;
  while(*tok == ' ')
    tok++;
  emu_jwt j;
  if(emu_jwt_parse(tok, &j, NULL))
    return EMU_TOK_MALFORMED;
  emu_tok_status st = EMU_TOK_OK;
  if(emu_jwt_verify(&j, c->e->token_key, NULL)) {
    st = EMU_TOK_BADSIG;
    goto out;
  }
  const char *iss = sq_json_str(j.claims, "iss");
  if(!iss || strncmp(iss, "https://login.localhost", 23)) {
    st = EMU_TOK_ISSUER;
    goto out;
  }
  int64_t now = c->now_ms / 1000;
  json_t *expv = json_object_get(j.claims, "exp"), *nbfv = json_object_get(j.claims, "nbf");
  if(!json_is_integer(expv) || json_integer_value(expv) + SKEW_S < now) {
    st = EMU_TOK_EXPIRED;
    goto out;
  }
  if(json_is_integer(nbfv) && json_integer_value(nbfv) - SKEW_S > now) {
    st = EMU_TOK_NOTYET;
    goto out;
  }
  const char *a = sq_json_str(j.claims, "aud");
  char abuf[256];
  if(!a || strlen(a) >= sizeof abuf) {
    st = EMU_TOK_AUDIENCE;
    goto out;
  }
  snprintf(abuf, sizeof abuf, "%s", a);
  size_t al = strlen(abuf);
  while(al && abuf[al - 1] == '/')
    abuf[--al] = '\0';
  if((aud == EMU_AUD_ARM && !is_arm_resource(abuf)) || (aud == EMU_AUD_KV && !is_kv_resource(abuf))) {
    st = EMU_TOK_AUDIENCE;
    goto out;
  }
  snprintf(c->oid, sizeof c->oid, "%s", sq_json_str(j.claims, "oid") ? sq_json_str(j.claims, "oid") : "");
  snprintf(c->tid, sizeof c->tid, "%s", sq_json_str(j.claims, "tid") ? sq_json_str(j.claims, "tid") : "");
  snprintf(c->appid, sizeof c->appid, "%s",
           sq_json_str(j.claims, "appid") ? sq_json_str(j.claims, "appid") : "");
  if(claims_out)
    *claims_out = json_incref(j.claims);
out:
  emu_jwt_free(&j);
  return st;
}

/* ---- form bodies ---- */

typedef struct form {
  char *buf;
  size_t cap;
  emu_qparam p[EMU_MAX_QUERY];
  int n;
} form;

static int form_parse(const char *body, size_t len, form *f) {
  memset(f, 0, sizeof *f);
  f->buf = malloc(len + 2 * EMU_MAX_QUERY + 2);
  if(!f->buf)
    return -1;
  size_t used = 0, cap = len + 2 * EMU_MAX_QUERY + 2;
  f->cap = cap;
  size_t i = 0;
  while(i < len) {
    size_t j = i;
    while(j < len && body[j] != '&')
      j++;
    if(j > i) {
      if(f->n >= EMU_MAX_QUERY)
        return -1;
      const char *eq = memchr(body + i, '=', j - i);
      size_t kn = eq ? (size_t)(eq - (body + i)) : j - i;
      long dk = emu_pct_decode(body + i, kn, 1, f->buf + used, cap - used);
      if(dk < 0)
        return -1;
      f->p[f->n].name = f->buf + used;
      used += (size_t)dk + 1;
      const char *v = eq ? eq + 1 : body + j;
      long dv = emu_pct_decode(v, (size_t)(body + j - v), 1, f->buf + used, cap - used);
      if(dv < 0)
        return -1;
      f->p[f->n].value = f->buf + used;
      used += (size_t)dv + 1;
      f->n++;
    }
    i = j + 1;
  }
  return 0;
}

static const char *form_get(const form *f, const char *name) {
  for(int i = 0; i < f->n; i++)
    if(!strcmp(f->p[i].name, name))
      return f->p[i].value;
  return NULL;
}

static void form_free(form *f) {
  if(f->buf) {
    sq_wipe(f->buf, f->cap); /* holds client secrets and assertions */
    free(f->buf);
  }
  f->buf = NULL;
}

/* ---- the token endpoint ---- */

static int secrets_equal(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  return la == lb && CRYPTO_memcmp(a, b, la) == 0;
}

/* Validates exp/nbf of an assertion against the virtual clock. */
static int assertion_time_ok(emu_call *c, const emu_jwt *j) {
  int64_t now = c->now_ms / 1000;
  json_t *exp = json_object_get(j->claims, "exp"), *nbf = json_object_get(j->claims, "nbf");
  if(!json_is_integer(exp) || json_integer_value(exp) + SKEW_S < now ||
     (json_is_integer(nbf) && json_integer_value(nbf) - SKEW_S > now)) {
    char nowt[32];
    sq_rfc3339(now, nowt, sizeof nowt);
    emu_aad_error(c, 400, "invalid_client", 700024,
                  "Client assertion is not within its valid time range. Current time: %s, expiry time of assertion %lld.",
                  nowt, json_is_integer(exp) ? (long long)json_integer_value(exp) : 0LL);
    return 0;
  }
  return 1;
}

static int aud_is_token_endpoint(const char *aud) {
  if(!aud)
    return 0;
  const char *path = NULL;
  if(!strncasecmp(aud, "https://login.localhost", 23))
    path = strchr(aud + 8, '/');
  else if(!strncasecmp(aud, "https://login.microsoftonline.com/", 34))
    path = aud + 33;
  if(!path)
    return 0;
  size_t n = strlen(path);
  static const char v2[] = "/oauth2/v2.0/token", v1[] = "/oauth2/token";
  return (n > sizeof v2 - 1 && !strcmp(path + n - (sizeof v2 - 1), v2)) ||
         (n > sizeof v1 - 1 && !strcmp(path + n - (sizeof v1 - 1), v1));
}

/* Certificate assertion: iss = sub = client_id, signed by a registered cert. */
static int check_cert_assertion(emu_call *c, const emu_identity *id, const emu_jwt *j) {
  const char *x5t = sq_json_str(j->header, "x5t");
  const char *x5t256 = sq_json_str(j->header, "x5t#S256");
  sqlite3_stmt *st = emu_sql(c->e, "SELECT pem FROM identity_certs WHERE client_id=? AND (x5t=? OR x5t256=?)");
  if(!st) {
    emu_aad_error(c, 500, "server_error", 90033, "State error.");
    return 0;
  }
  sqlite3_bind_text(st, 1, id->client_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, x5t ? x5t : "", -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, x5t256 ? x5t256 : "", -1, SQLITE_STATIC);
  EVP_PKEY *pub = NULL;
  if(sqlite3_step(st) == SQLITE_ROW) {
    BIO *bio = BIO_new_mem_buf(emu_col_text(st, 0), -1);
    X509 *cert = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    pub = cert ? X509_get_pubkey(cert) : NULL;
    X509_free(cert);
  }
  sqlite3_finalize(st);
  if(!pub) {
    emu_aad_error(c, 401, "invalid_client", 700027,
                  "The certificate with identifier used to sign the client assertion is not registered on application. "
                  "[Reason - The key was not found., Thumbprint of key used by client: '%.64s']",
                  x5t256 ? x5t256 : x5t ? x5t : "(none)");
    return 0;
  }
  int ok = emu_jwt_verify(j, pub, NULL) == SQ_OK;
  EVP_PKEY_free(pub);
  if(!ok) {
    emu_aad_error(c, 401, "invalid_client", 700027, "Client assertion failed signature validation.");
    return 0;
  }
  const char *sub = sq_json_str(j->claims, "sub");
  if(!sub || strcasecmp(sub, id->client_id)) {
    emu_aad_error(c, 400, "invalid_client", 700021,
                  "Client assertion application identifier doesn't match 'client_id' parameter.");
    return 0;
  }
  if(!aud_is_token_endpoint(sq_json_str(j->claims, "aud"))) {
    emu_aad_error(c, 400, "invalid_client", 700027,
                  "Client assertion contains an invalid audience; it must be the token endpoint.");
    return 0;
  }
  return assertion_time_ok(c, j);
}

/* Federated: iss/sub/aud match a federated credential, signed by the issuer's keys. */
static int check_federated(emu_call *c, const emu_identity *id, const emu_jwt *j) {
  const char *iss = sq_json_str(j->claims, "iss"), *sub = sq_json_str(j->claims, "sub");
  json_t *audv = json_object_get(j->claims, "aud");
  if(!iss || !sub) {
    emu_aad_error(c, 400, "invalid_request", 50027, "JWT token is invalid or malformed (iss and sub are required).");
    return 0;
  }
  sqlite3_stmt *st = emu_sql(c->e, "SELECT audiences FROM federated_credentials WHERE client_id=? AND issuer=? AND subject=?");
  if(!st)
    return 0;
  sqlite3_bind_text(st, 1, id->client_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, iss, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, sub, -1, SQLITE_STATIC);
  int found = 0, aud_ok = 0;
  const char *first_aud = json_is_string(audv) ? json_string_value(audv)
                          : json_is_array(audv) && json_is_string(json_array_get(audv, 0))
                              ? json_string_value(json_array_get(audv, 0))
                              : "";
  while(sqlite3_step(st) == SQLITE_ROW) {
    found = 1;
    json_t *auds = json_loads(emu_col_text(st, 0), 0, NULL);
    size_t i;
    json_t *a;
    json_array_foreach(auds, i, a) {
      const char *want = json_string_value(a);
      if(!want)
        continue;
      if(json_is_string(audv) && !strcmp(json_string_value(audv), want))
        aud_ok = 1;
      size_t k;
      json_t *x;
      if(json_is_array(audv))
        json_array_foreach(audv, k, x) if(json_is_string(x) && !strcmp(json_string_value(x), want)) aud_ok = 1;
    }
    json_decref(auds);
  }
  sqlite3_finalize(st);
  if(!found) {
    emu_aad_error(c, 400, "invalid_request", 70021,
                  "No matching federated identity record found for presented assertion. Assertion Issuer: '%.200s'. "
                  "Assertion Subject: '%.200s'. Assertion Audience: '%.200s'.",
                  iss, sub, first_aud);
    return 0;
  }
  if(!aud_ok) {
    emu_aad_error(c, 400, "invalid_request", 700212,
                  "No matching federated identity record found for presented assertion audience '%.200s'.", first_aud);
    return 0;
  }
  /* the issuer's signing keys, registered in the seed or through the control API */
  st = emu_sql(c->e, "SELECT jwks FROM issuers WHERE issuer=?");
  if(!st)
    return 0;
  sqlite3_bind_text(st, 1, iss, -1, SQLITE_STATIC);
  json_t *jwks = NULL;
  if(sqlite3_step(st) == SQLITE_ROW)
    jwks = json_loads(emu_col_text(st, 0), 0, NULL);
  sqlite3_finalize(st);
  if(!jwks) {
    emu_aad_error(c, 400, "invalid_request", 50166,
                  "Request to External OIDC endpoint failed: issuer '%.200s' has no registered signing keys.", iss);
    return 0;
  }
  const char *kid = sq_json_str(j->header, "kid");
  int verified = 0;
  size_t i;
  json_t *k;
  json_array_foreach(json_object_get(jwks, "keys"), i, k) {
    const char *kk = sq_json_str(k, "kid");
    if(kid && kk && strcmp(kid, kk))
      continue;
    EVP_PKEY *pub = NULL;
    if(emu_rsa_from_jwk_public(k, &pub, NULL) == SQ_OK && emu_jwt_verify(j, pub, NULL) == SQ_OK)
      verified = 1;
    EVP_PKEY_free(pub);
    if(verified)
      break;
  }
  json_decref(jwks);
  if(!verified) {
    emu_aad_error(c, 401, "invalid_client", 700027,
                  "Client assertion failed signature validation (no key of issuer '%.200s' verifies it).", iss);
    return 0;
  }
  return assertion_time_ok(c, j);
}

static void reply_token(emu_call *c, const emu_identity *id, const char *resource, const char *acr, int v1) {
  char *tok = NULL;
  int64_t exp = 0;
  sq_err err;
  if(mint(c->e, id, resource, acr, &tok, &exp, &err)) {
    emu_aad_error(c, 500, "server_error", 90033, "Could not sign the token.");
    return;
  }
  snprintf(c->oid, sizeof c->oid, "%s", id->object_id);
  int64_t life = exp - c->now_ms / 1000;
  json_t *b = json_pack("{s:s,s:I,s:I,s:s}", "token_type", "Bearer", "expires_in", (json_int_t)life,
                        "ext_expires_in", (json_int_t)life, "access_token", tok);
  if(v1) {
    char s[32];
    snprintf(s, sizeof s, "%lld", (long long)exp);
    json_object_set_new(b, "expires_on", json_string(s));
    json_object_set_new(b, "resource", json_string(resource));
  }
  sq_free_secret(tok);
  emu_header(c, "Cache-Control", "no-store, no-cache");
  emu_reply_json(c, 200, b);
}

static void token_endpoint(emu_call *c, int v1) {
  char tid[EMU_ID_MAX];
  const char *tseg = emu_var(c, "tenant");
  if(!tenant_resolve(c->e, tseg, tid, sizeof tid)) {
    emu_aad_error(c, 400, "invalid_request", 90002,
                  "Tenant '%.100s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.",
                  tseg);
    return;
  }
  const char *ct = c->req->content_type ? c->req->content_type : "";
  if(strncasecmp(ct, "application/x-www-form-urlencoded", 33)) {
    emu_aad_error(c, 400, "invalid_request", 900144,
                  "The request body must contain the following parameter: 'grant_type'. (Content-Type must be application/x-www-form-urlencoded.)");
    return;
  }
  form f;
  if(form_parse(c->req->body ? c->req->body : "", c->req->body_len, &f)) {
    form_free(&f);
    emu_aad_error(c, 400, "invalid_request", 900144, "The request body is not a valid form.");
    return;
  }
  const char *grant = form_get(&f, "grant_type"), *client_id = form_get(&f, "client_id");
  const char *secret = form_get(&f, "client_secret"), *assertion = form_get(&f, "client_assertion");
  const char *atype = form_get(&f, "client_assertion_type");
  const char *scope = v1 ? form_get(&f, "resource") : form_get(&f, "scope");
  char basic_id[EMU_ID_MAX] = "", basic_secret[512] = "";
  const char *auth = emu_header_in(c, "Authorization");
  if(auth && !strncasecmp(auth, "Basic ", 6)) {
    sq_buf b;
    sq_buf_init(&b, 1024);
    if(!sq_b64_decode(auth + 6, strlen(auth + 6), &b)) {
      char *colon = memchr(b.ptr, ':', b.len);
      if(colon) {
        *colon = '\0';
        emu_pct_decode(b.ptr, strlen(b.ptr), 1, basic_id, sizeof basic_id);
        emu_pct_decode(colon + 1, strlen(colon + 1), 1, basic_secret, sizeof basic_secret);
      }
    }
    sq_buf_free_wipe(&b);
    if(!client_id && basic_id[0])
      client_id = basic_id;
    if(!secret && basic_secret[0])
      secret = basic_secret;
  }
  emu_identity id;
  char resbuf[256];
  const char *resource = NULL;
  if(!grant) {
    emu_aad_error(c, 400, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.");
    goto out;
  }
  if(strcmp(grant, "client_credentials")) {
    emu_aad_error(c, 400, "unsupported_grant_type", 70003,
                  "The app requested an unsupported grant type '%.64s'. The emulator supports client_credentials.", grant);
    goto out;
  }
  if(!client_id || !*client_id) {
    emu_aad_error(c, 400, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.");
    goto out;
  }
  char sp_oid[EMU_ID_MAX];
  memset(&id, 0, sizeof id);
  if(emu_identity_by_client_id(c->e, client_id, &id) && strcasecmp(id.tenant, tid) &&
     emu_sp_object_id(c->e, id.client_id, tid, sp_oid)) {
    /* multi-tenant app: same credentials, token as its principal in tid */
    snprintf(id.tenant, sizeof id.tenant, "%s", tid);
    snprintf(id.object_id, sizeof id.object_id, "%s", sp_oid);
  }
  if(!id.client_id[0] || strcasecmp(id.client_id, client_id) || strcasecmp(id.tenant, tid)) {
    emu_aad_error(c, 400, "unauthorized_client", 700016,
                  "Application with identifier '%.64s' was not found in the directory '%.64s'. This can happen if the "
                  "application has not been installed by the administrator of the tenant.",
                  client_id, tid);
    goto out;
  }
  if(!scope || !*scope) {
    emu_aad_error(c, 400, "invalid_request", 900144, "The request body must contain the following parameter: '%s'.",
                  v1 ? "resource" : "scope");
    goto out;
  }
  if(!v1) {
    /* client credentials: exactly one "<resource>/.default" scope */
    char sc[512];
    snprintf(sc, sizeof sc, "%s", scope);
    char *save = NULL, *chosen = NULL;
    for(char *t = strtok_r(sc, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
      if(!strcmp(t, "openid") || !strcmp(t, "profile") || !strcmp(t, "offline_access"))
        continue;
      chosen = t;
      break;
    }
    size_t cl = chosen ? strlen(chosen) : 0;
    if(!chosen || cl < 9 || strcmp(chosen + cl - 9, "/.default")) {
      emu_aad_error(c, 400, "invalid_scope", 1002012,
                    "The provided value for scope %.200s is not valid. Client credential flows must have a scope value "
                    "with /.default suffixed to the resource identifier (application ID URI).",
                    scope);
      goto out;
    }
    resource = emu_resource_canonical(chosen, resbuf, sizeof resbuf);
    if(!resource) {
      emu_aad_error(c, 400, "invalid_resource", 500011,
                    "The resource principal named %.200s was not found in the tenant named %.64s. This can happen if the "
                    "application has not been installed by the administrator of the tenant.",
                    chosen, tid);
      goto out;
    }
  } else {
    resource = emu_resource_canonical(scope, resbuf, sizeof resbuf);
    if(!resource) {
      emu_aad_error(c, 400, "invalid_resource", 500011,
                    "The resource principal named %.200s was not found in the tenant named %.64s.", scope, tid);
      goto out;
    }
  }
  if(assertion) {
    if(!atype || strcmp(atype, ASSERTION_TYPE)) {
      emu_aad_error(c, 400, "invalid_request", 900144,
                    "The request body must contain 'client_assertion_type' = '" ASSERTION_TYPE "'.");
      goto out;
    }
    emu_jwt j;
    sq_err err;
    if(emu_jwt_parse(assertion, &j, &err)) {
      emu_aad_error(c, 400, "invalid_request", 50027, "JWT token is invalid or malformed.");
      goto out;
    }
    const char *iss = sq_json_str(j.claims, "iss");
    int is_cert = (json_object_get(j.header, "x5t") || json_object_get(j.header, "x5t#S256")) && iss &&
                  !strcasecmp(iss, id.client_id);
    int ok = is_cert ? check_cert_assertion(c, &id, &j) : check_federated(c, &id, &j);
    emu_jwt_free(&j);
    if(ok)
      reply_token(c, &id, resource, "2", v1);
    goto out;
  }
  if(secret) {
    sqlite3_stmt *st = emu_sql(c->e, "SELECT secret FROM identities WHERE client_id=?");
    int ok = 0;
    if(st) {
      sqlite3_bind_text(st, 1, id.client_id, -1, SQLITE_STATIC);
      if(sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_TEXT)
        ok = secrets_equal(emu_col_text(st, 0), secret);
      sqlite3_finalize(st);
    }
    if(!ok) {
      emu_aad_error(c, 401, "invalid_client", 7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, "
                    "not the client secret ID, for a secret added to app '%.64s'.",
                    id.client_id);
      goto out;
    }
    reply_token(c, &id, resource, "1", v1);
    goto out;
  }
  emu_aad_error(c, 401, "invalid_client", 7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.");
out:
  sq_wipe(basic_secret, sizeof basic_secret);
  form_free(&f);
}

static void h_token_v2(emu_call *c) { token_endpoint(c, 0); }
static void h_token_v1(emu_call *c) { token_endpoint(c, 1); }

static void h_openid(emu_call *c) {
  char tid[EMU_ID_MAX];
  const char *tseg = emu_var(c, "tenant");
  if(!tenant_resolve(c->e, tseg, tid, sizeof tid)) {
    emu_aad_error(c, 400, "invalid_tenant", 90002, "Tenant '%.100s' not found.", tseg);
    return;
  }
  char b[128], u[8][320];
  emu_base_url(c->e, "login.localhost", b, sizeof b);
  snprintf(u[0], sizeof u[0], "%s/%s/oauth2/v2.0/token", b, tid);
  snprintf(u[1], sizeof u[1], "%s/%s/discovery/v2.0/keys", b, tid);
  snprintf(u[2], sizeof u[2], "%s/%s/v2.0", b, tid);
  snprintf(u[3], sizeof u[3], "%s/%s/oauth2/v2.0/authorize", b, tid);
  snprintf(u[4], sizeof u[4], "%s/%s/oauth2/v2.0/devicecode", b, tid);
  snprintf(u[5], sizeof u[5], "%s/%s/oauth2/v2.0/logout", b, tid);
  snprintf(u[6], sizeof u[6], "%s/%s/kerberos", b, tid);
  json_t *v = json_pack(
      "{s:s,s:[s,s,s],s:s,s:[s,s,s],s:[s],s:[s],s:[s,s,s,s],s:[s,s,s,s],s:s,s:b,s:s,s:s,s:b,s:b,s:s,s:s,"
      "s:s,s:s,s:s,s:s,s:s}",
      "token_endpoint", u[0], "token_endpoint_auth_methods_supported", "client_secret_post",
      "private_key_jwt", "client_secret_basic", "jwks_uri", u[1], "response_modes_supported", "query",
      "fragment", "form_post", "subject_types_supported", "pairwise",
      "id_token_signing_alg_values_supported", "RS256", "response_types_supported", "code", "id_token",
      "code id_token", "id_token token", "scopes_supported", "openid", "profile", "email",
      "offline_access", "issuer", u[2], "request_uri_parameter_supported", 0,
      "authorization_endpoint", u[3], "device_authorization_endpoint", u[4], "http_logout_supported", 1,
      "frontchannel_logout_supported", 1, "end_session_endpoint", u[5], "kerberos_endpoint", u[6],
      "tenant_region_scope", "NA", "cloud_instance_name", "localhost", "cloud_graph_host_name",
      "graph.localhost", "msgraph_host", "graph.localhost", "rbac_url", "https://pas.localhost");
  emu_reply_json(c, 200, v);
}

static void h_jwks(emu_call *c) {
  json_t *k = emu_rsa_public_jwk(c->e->token_key);
  if(!k) {
    emu_error(c, 500, "server_error", "Cannot encode the signing key.");
    return;
  }
  json_object_set_new(k, "kid", json_string(c->e->token_kid));
  json_object_set_new(k, "x5t", json_string(c->e->token_kid));
  json_object_set_new(k, "use", json_string("sig"));
  json_object_set_new(k, "alg", json_string("RS256"));
  emu_reply_json(c, 200, json_pack("{s:[o]}", "keys", k));
}

static void h_instance_discovery(emu_call *c) {
  char hostport[128], disc[320];
  snprintf(hostport, sizeof hostport, "login.localhost:%d", c->e->port);
  const char *auth = emu_query(c, "authorization_endpoint");
  (void)auth;
  snprintf(disc, sizeof disc, "https://%s/common/v2.0/.well-known/openid-configuration", hostport);
  emu_reply_json(c, 200,
                 json_pack("{s:s,s:s,s:[{s:s,s:s,s:[s]}]}", "tenant_discovery_endpoint", disc,
                           "api-version", "1.1", "metadata", "preferred_network", hostport,
                           "preferred_cache", hostport, "aliases", hostport));
}

/* ---- IMDS ---- */

static void h_imds_token(emu_call *c) {
  const char *md = emu_header_in(c, "Metadata");
  if(!md || strcmp(md, "true")) {
    emu_reply_json(c, 400, json_pack("{s:s,s:s}", "error", "invalid_request", "error_description",
                                     "Required metadata header not specified"));
    return;
  }
  if(!emu_query(c, "api-version")) {
    emu_reply_json(c, 400, json_pack("{s:s,s:s}", "error", "invalid_request", "error_description",
                                     "Required query variable 'api-version' is missing"));
    return;
  }
  const char *res = emu_query(c, "resource");
  if(!res || !*res) {
    emu_reply_json(c, 400, json_pack("{s:s,s:s}", "error", "invalid_request", "error_description",
                                     "Required query variable 'resource' is missing"));
    return;
  }
  char resbuf[256];
  const char *resource = emu_resource_canonical(res, resbuf, sizeof resbuf);
  if(!resource) {
    emu_reply_json(c, 400, json_pack("{s:s,s:s}", "error", "invalid_resource", "error_description",
                                     "AADSTS500011: The resource principal was not found in the tenant."));
    return;
  }
  const char *cid = emu_query(c, "client_id");
  const char *oid = emu_query(c, "object_id") ? emu_query(c, "object_id") : emu_query(c, "principal_id");
  const char *rid = emu_query(c, "msi_res_id") ? emu_query(c, "msi_res_id") : emu_query(c, "mi_res_id");
  emu_identity id;
  int found = 0;
  if(cid)
    found = emu_identity_by_client_id(c->e, cid, &id);
  else if(oid)
    found = emu_identity_by_object_id(c->e, oid, &id);
  else if(rid)
    found = emu_identity_by_resource_id(c->e, rid, &id);
  else {
    /* no selector: the VM's only user-assigned identity */
    sqlite3_stmt *st = emu_sql(c->e, "SELECT client_id FROM identities WHERE kind='userAssigned' LIMIT 2");
    int n = 0;
    char only[EMU_ID_MAX] = "";
    while(st && sqlite3_step(st) == SQLITE_ROW) {
      n++;
      snprintf(only, sizeof only, "%s", emu_col_text(st, 0));
    }
    sqlite3_finalize(st);
    if(n > 1) {
      emu_reply_json(c, 400, json_pack("{s:s,s:s}", "error", "invalid_request", "error_description",
                                       "Multiple user assigned identities exist, please specify the clientId / "
                                       "resourceId of the identity in the token request"));
      return;
    }
    found = n == 1 && emu_identity_by_client_id(c->e, only, &id);
  }
  if(!found || strcmp(id.kind, "userAssigned")) {
    emu_reply_json(c, 400, json_pack("{s:s,s:s}", "error", "invalid_request", "error_description",
                                     "Identity not found"));
    return;
  }
  char *tok = NULL;
  int64_t exp = 0;
  if(mint(c->e, &id, resource, "2", &tok, &exp, NULL)) {
    emu_reply_json(c, 500, json_pack("{s:s,s:s}", "error", "server_error", "error_description", "signing failed"));
    return;
  }
  snprintf(c->oid, sizeof c->oid, "%s", id.object_id);
  char s_exp[32], s_in[32], s_nbf[32];
  int64_t now = c->now_ms / 1000;
  snprintf(s_exp, sizeof s_exp, "%lld", (long long)exp);
  snprintf(s_in, sizeof s_in, "%lld", (long long)(exp - now));
  snprintf(s_nbf, sizeof s_nbf, "%lld", (long long)now);
  /* IMDS answers every number as a string */
  emu_reply_json(c, 200,
                 json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "access_token", tok, "refresh_token", "",
                           "client_id", id.client_id, "expires_in", s_in, "expires_on", s_exp,
                           "ext_expires_in", s_in, "not_before", s_nbf, "resource", resource,
                           "token_type", "Bearer"));
  sq_free_secret(tok);
}

const emu_route emu_entra_routes[] = {
    {EMU_FAM_LOGIN, "POST", "/{tenant}/oauth2/v2.0/token", h_token_v2, 0, NULL},
    {EMU_FAM_LOGIN, "POST", "/{tenant}/oauth2/token", h_token_v1, 0, NULL},
    {EMU_FAM_LOGIN, "GET", "/{tenant}/v2.0/.well-known/openid-configuration", h_openid, 0, NULL},
    {EMU_FAM_LOGIN, "GET", "/{tenant}/.well-known/openid-configuration", h_openid, 0, NULL},
    {EMU_FAM_LOGIN, "GET", "/common/discovery/instance", h_instance_discovery, 0, NULL},
    {EMU_FAM_LOGIN, "GET", "/{tenant}/discovery/v2.0/keys", h_jwks, 0, NULL},
    {EMU_FAM_LOGIN, "GET", "/{tenant}/discovery/keys", h_jwks, 0, NULL},
    {EMU_FAM_IMDS, "GET", "/metadata/identity/oauth2/token", h_imds_token, 0, NULL},
    /* msal-node's IMDS source sends a trailing slash */
    {EMU_FAM_IMDS, "GET", "/metadata/identity/oauth2/token/", h_imds_token, 0, NULL},
    {0, NULL, NULL, NULL, 0, NULL},
};
