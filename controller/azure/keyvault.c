/* keyvault.c — Key Vault keys client; see include/sqltde/azure/keyvault.h. */
#include "sqltde/azure/keyvault.h"

#include <ctype.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sqltde/azure/pager.h"
#include "sqltde/codec.h"
#include "sqltde/jsonx.h"
#include "sqltde/log.h"

#define LOGGER "azure.keyvault"
#define MAX_VAULTS 4096
#define MAX_PAGES 1000
#define LIST_URL_MAX 8192

/* ---- small validators ---- */

static int name_valid(const char *s) {
  size_t n = s ? strlen(s) : 0;
  if(!n || n > 127)
    return 0;
  for(size_t i = 0; i < n; i++)
    if(!(isalnum((unsigned char)s[i]) || s[i] == '-'))
      return 0;
  return 1;
}

static int version_valid(const char *s) {
  size_t n = s ? strlen(s) : 0;
  if(n >= SQ_KV_VERSION_MAX)
    return 0;
  for(size_t i = 0; i < n; i++)
    if(!isalnum((unsigned char)s[i]))
      return 0;
  return 1;
}

/* ---- challenge ---- */

/* Reads one auth-param value (quoted-string or token) at *pp into out. */
static int read_param_value(const char **pp, char *out, size_t outlen) {
  const char *p = *pp;
  size_t j = 0;
  if(*p == '"') {
    p++;
    while(*p && *p != '"') {
      if(*p == '\\' && p[1])
        p++;
      if(j + 1 >= outlen)
        return -1;
      out[j++] = *p++;
    }
    if(*p != '"')
      return -1;
    p++;
  } else {
    while(*p && *p != ',' && *p != ' ' && *p != '\t') {
      if(j + 1 >= outlen)
        return -1;
      out[j++] = *p++;
    }
  }
  out[j] = '\0';
  *pp = p;
  return 0;
}

sq_code sq_kv_parse_challenge(const char *hdr, sq_kv_challenge *out, sq_err *err) {
  memset(out, 0, sizeof *out);
  if(!hdr)
    return sq_err_set(err, SQ_EPARSE, "no WWW-Authenticate challenge");
  const char *p = hdr;
  while(*p == ' ')
    p++;
  if(strncasecmp(p, "Bearer", 6) || (p[6] != ' ' && p[6] != '\t'))
    return sq_err_set(err, SQ_EPARSE, "WWW-Authenticate is not a Bearer challenge");
  p += 6;
  char scope[SQ_AZ_URL_MAX] = "";
  for(;;) {
    while(*p == ' ' || *p == '\t' || *p == ',')
      p++;
    if(!*p)
      break;
    char key[32];
    size_t k = 0;
    while(*p && (isalnum((unsigned char)*p) || *p == '_' || *p == '-')) {
      if(k + 1 >= sizeof key)
        return sq_err_set(err, SQ_EPARSE, "WWW-Authenticate: parameter name too long");
      key[k++] = (char)tolower((unsigned char)*p++);
    }
    key[k] = '\0';
    if(!k || *p != '=') {
      /* a second scheme ("PoP ...") or junk: stop at what we have */
      break;
    }
    p++;
    char val[1024];
    if(read_param_value(&p, val, sizeof val))
      return sq_err_set(err, SQ_EPARSE, "WWW-Authenticate: malformed or overlong value for %s", key);
    if(!strcmp(key, "authorization") || !strcmp(key, "authorization_uri") ||
       !strcmp(key, "authorization_url")) {
      if(strlen(val) >= sizeof out->authorization)
        return sq_err_set(err, SQ_EPARSE, "WWW-Authenticate: authorization too long");
      memcpy(out->authorization, val, strlen(val) + 1);
    } else if(!strcmp(key, "resource")) {
      if(strlen(val) >= sizeof out->resource)
        return sq_err_set(err, SQ_EPARSE, "WWW-Authenticate: resource too long");
      memcpy(out->resource, val, strlen(val) + 1);
    } else if(!strcmp(key, "scope")) {
      if(strlen(val) >= sizeof scope)
        return sq_err_set(err, SQ_EPARSE, "WWW-Authenticate: scope too long");
      memcpy(scope, val, strlen(val) + 1);
    }
  }
  if(!out->authorization[0])
    return sq_err_set(err, SQ_EPARSE, "WWW-Authenticate: no authorization URI");
  if(!out->resource[0] && !scope[0])
    return sq_err_set(err, SQ_EPARSE, "WWW-Authenticate: neither resource nor scope");
  /* tenant = first path segment of the authorization URI */
  const char *a = strstr(out->authorization, "://");
  a = a ? strchr(a + 3, '/') : NULL;
  if(!a)
    return sq_err_set(err, SQ_EPARSE, "WWW-Authenticate: authorization URI has no tenant");
  a++;
  size_t tl = strcspn(a, "/?#");
  if(!tl || tl >= sizeof out->tenant)
    return sq_err_set(err, SQ_EPARSE, "WWW-Authenticate: authorization URI has no tenant");
  memcpy(out->tenant, a, tl);
  out->tenant[tl] = '\0';
  if(!sq_azure_tenant_valid(out->tenant))
    return sq_err_set(err, SQ_EPARSE, "WWW-Authenticate: invalid tenant in authorization URI");
  if(out->resource[0])
    return sq_azure_scope(out->resource, out->scope, sizeof out->scope, err);
  snprintf(out->scope, sizeof out->scope, "%s", scope);
  return SQ_OK;
}

sq_code sq_kv_verify_challenge(const sq_kv_challenge *ch, const char *vault_host, sq_err *err) {
  const char *u = ch->resource[0] ? ch->resource : ch->scope;
  char scheme[16], host[256];
  int port;
  if(sq_azure_url_split(u, scheme, sizeof scheme, host, sizeof host, &port) ||
     !sq_azure_host_has_suffix(vault_host, host)) {
    sq_err_set(err, SQ_EUNAUTH,
               "Key Vault challenge resource \"%.200s\" does not match the vault host %.200s", u,
               vault_host);
    if(err)
      snprintf(err->reason, sizeof err->reason, "ChallengeResourceMismatch");
    return SQ_EUNAUTH;
  }
  return SQ_OK;
}

/* ---- key parsing ---- */

void sq_kv_key_init(sq_kv_key *k) {
  memset(k, 0, sizeof *k);
  k->enabled = -1;
  k->exportable = -1;
}

void sq_kv_key_free(sq_kv_key *k) {
  if(!k)
    return;
  json_decref(k->tags);
  k->tags = NULL;
}

sq_code sq_kv_split_kid(const char *kid, char *vault, size_t vault_len, char *name,
                        size_t name_len, char *version, size_t version_len, sq_err *err) {
  char scheme[16], host[256];
  int port;
  if(!kid || sq_azure_url_split(kid, scheme, sizeof scheme, host, sizeof host, &port) ||
     strcmp(scheme, "https"))
    return sq_err_set(err, SQ_EPARSE, "key id \"%.200s\" is not an https URL", kid ? kid : "");
  const char *p = strstr(kid, "://") + 3;
  p += strcspn(p, "/");
  size_t olen = (size_t)(p - kid);
  if(olen >= vault_len)
    return sq_err_set(err, SQ_EPARSE, "key id: vault URL too long");
  memcpy(vault, kid, olen);
  vault[olen] = '\0';
  for(size_t i = 0; i < olen; i++) /* origins compare lower-case */
    vault[i] = (char)tolower((unsigned char)vault[i]);
  if(strncmp(p, "/keys/", 6) && strncmp(p, "/deletedkeys/", 13))
    return sq_err_set(err, SQ_EPARSE, "key id \"%.200s\" has no /keys/ segment", kid);
  p += p[1] == 'k' ? 6 : 13;
  size_t nl = strcspn(p, "/?#");
  if(!nl || nl >= name_len)
    return sq_err_set(err, SQ_EPARSE, "key id \"%.200s\": bad key name", kid);
  memcpy(name, p, nl);
  name[nl] = '\0';
  p += nl;
  version[0] = '\0';
  if(*p == '/') {
    p++;
    size_t vl = strcspn(p, "/?#");
    if(vl >= version_len || p[vl] == '/')
      return sq_err_set(err, SQ_EPARSE, "key id \"%.200s\": bad version", kid);
    memcpy(version, p, vl);
    version[vl] = '\0';
    p += vl;
  }
  if(*p && *p != '?')
    return sq_err_set(err, SQ_EPARSE, "key id \"%.200s\": trailing data", kid);
  if(!name_valid(name) || !version_valid(version))
    return sq_err_set(err, SQ_EPARSE, "key id \"%.200s\": invalid name or version", kid);
  return SQ_OK;
}

static int64_t json_time(const json_t *v) { return sq_json_number_i64(v, 0); }

static unsigned op_bit(const char *s) {
  static const struct {
    const char *n;
    unsigned b;
  } t[] = {{"encrypt", SQ_KV_OP_ENCRYPT}, {"decrypt", SQ_KV_OP_DECRYPT}, {"sign", SQ_KV_OP_SIGN},
           {"verify", SQ_KV_OP_VERIFY},   {"wrapKey", SQ_KV_OP_WRAP},     {"unwrapKey", SQ_KV_OP_UNWRAP},
           {"import", SQ_KV_OP_IMPORT},   {"export", SQ_KV_OP_EXPORT}};
  for(size_t i = 0; i < sizeof t / sizeof *t; i++)
    if(!strcmp(s, t[i].n))
      return t[i].b;
  return 0;
}

sq_code sq_kv_parse_key(const json_t *bundle, sq_kv_key *out, sq_err *err) {
  static const char *what = "Key Vault key";
  if(!json_is_object(bundle))
    return sq_err_set(err, SQ_EPARSE, "%s: not a JSON object", what);
  const json_t *key = json_object_get(bundle, "key");
  const char *kidpath = json_is_object(key) ? "key.kid" : "kid";
  sq_code rc;
  if((rc = sq_azure_json_strcpy(bundle, kidpath, out->kid, sizeof out->kid, what, err)))
    return rc;
  if(!out->kid[0])
    return sq_err_set(err, SQ_EPARSE, "%s: no kid", what);
  if((rc = sq_kv_split_kid(out->kid, out->vault, sizeof out->vault, out->name, sizeof out->name,
                           out->version, sizeof out->version, err)))
    return rc;
  if(json_is_object(key)) {
    if((rc = sq_azure_json_strcpy(key, "kty", out->kty, sizeof out->kty, what, err)) ||
       (rc = sq_azure_json_strcpy(key, "n", out->n, sizeof out->n, what, err)) ||
       (rc = sq_azure_json_strcpy(key, "e", out->e, sizeof out->e, what, err)))
      return rc;
    const json_t *ops = json_object_get(key, "key_ops");
    if(ops && !json_is_array(ops))
      return sq_err_set(err, SQ_EPARSE, "%s: key_ops is not an array", what);
    size_t i;
    json_t *o;
    json_array_foreach(ops, i, o) {
      if(json_is_string(o))
        out->ops |= op_bit(json_string_value(o));
    }
  }
  const json_t *attrs = json_object_get(bundle, "attributes");
  if(attrs && !json_is_object(attrs))
    return sq_err_set(err, SQ_EPARSE, "%s: attributes is not an object", what);
  if(attrs) {
    const json_t *en = json_object_get(attrs, "enabled");
    if(en && !json_is_boolean(en))
      return sq_err_set(err, SQ_EPARSE, "%s: attributes.enabled is not a boolean", what);
    out->enabled = en ? json_is_true(en) : -1;
    const json_t *ex = json_object_get(attrs, "exportable");
    out->exportable = json_is_boolean(ex) ? json_is_true(ex) : -1;
    out->nbf = json_time(json_object_get(attrs, "nbf"));
    out->exp = json_time(json_object_get(attrs, "exp"));
    out->created = json_time(json_object_get(attrs, "created"));
    out->updated = json_time(json_object_get(attrs, "updated"));
    out->recoverable_days = (int)sq_json_int(attrs, "recoverableDays", 0);
    if((rc = sq_azure_json_strcpy(attrs, "recoveryLevel", out->recovery_level,
                                  sizeof out->recovery_level, what, err)))
      return rc;
  }
  out->managed = sq_json_bool(bundle, "managed", 0);
  const json_t *tags = json_object_get(bundle, "tags");
  if(json_is_object(tags)) {
    json_decref(out->tags);
    out->tags = json_deep_copy(tags);
  }
  out->thumbprint[0] = '\0';
  out->key_size = 0;
  if(out->n[0] && out->e[0] && !strncmp(out->kty, "RSA", 3)) {
    sq_buf nb;
    sq_buf_init(&nb, 2048);
    if(sq_b64_decode(out->n, strlen(out->n), &nb))
      rc = sq_err_set(err, SQ_EPARSE, "%s: n is not base64url", what);
    else {
      size_t skip = 0;
      while(skip < nb.len && !nb.ptr[skip])
        skip++;
      out->key_size = (int)((nb.len - skip) * 8);
      rc = sq_thumbprint_jwk(out->n, out->e, out->thumbprint, err);
    }
    sq_buf_free(&nb);
  }
  return rc;
}

static sq_code parse_deleted(const json_t *b, sq_kv_deleted_key *out, sq_err *err) {
  sq_code rc = sq_kv_parse_key(b, &out->key, err);
  if(rc)
    return rc;
  rc = sq_azure_json_strcpy(b, "recoveryId", out->recovery_id, sizeof out->recovery_id,
                            "deleted key", err);
  out->deleted_date = json_time(json_object_get(b, "deletedDate"));
  out->scheduled_purge_date = json_time(json_object_get(b, "scheduledPurgeDate"));
  return rc;
}

/* ---- the client ---- */

typedef struct vault_state {
  char origin[SQ_AZ_URL_MAX];
  char tenant[128];
  char scope[SQ_AZ_URL_MAX + 16];
} vault_state;

struct sq_kv {
  sq_azure_cloud cloud;
  sq_azure_cred *cred;
  sq_azure_pipeline pipe;
  char api_version[32];
  pthread_mutex_t mu;
  vault_state *vaults;
  int n_vaults, cap_vaults;
  atomic_ullong challenges;
};

uint64_t sq_kv_challenges(const sq_kv *kv) { return atomic_load(&((sq_kv *)kv)->challenges); }

sq_code sq_kv_new(const sq_kv_opts *o, sq_kv **out, sq_err *err) {
  *out = NULL;
  if(!o->cloud || !o->cred || !o->pipeline.http)
    return sq_err_set(err, SQ_EINVAL, "Key Vault client: cloud, credential and HTTP client are required");
  sq_kv *kv = calloc(1, sizeof *kv);
  if(!kv)
    return sq_err_set(err, SQ_ENOMEM, "out of memory");
  kv->cloud = *o->cloud;
  kv->cred = o->cred;
  kv->pipe = o->pipeline;
  snprintf(kv->api_version, sizeof kv->api_version, "%s", o->api_version ? o->api_version : "7.5");
  pthread_mutex_init(&kv->mu, NULL);
  *out = kv;
  return SQ_OK;
}

void sq_kv_free(sq_kv *kv) {
  if(!kv)
    return;
  free(kv->vaults);
  pthread_mutex_destroy(&kv->mu);
  free(kv);
}

/* Validates a vault URL and returns its origin "https://host[:port]" and host. */
static sq_code vault_origin(const sq_kv *kv, const char *vault, char *origin, size_t olen,
                            char *host, size_t hlen, sq_err *err) {
  char scheme[16];
  int port;
  if(!vault || sq_azure_url_split(vault, scheme, sizeof scheme, host, hlen, &port) ||
     strcmp(scheme, "https"))
    return sq_err_set(err, SQ_EINVAL, "vault URL \"%.200s\" is not an https URL", vault ? vault : "");
  const char *rest = strstr(vault, "://") + 3;
  rest += strcspn(rest, "/?#");
  if(*rest && strcmp(rest, "/"))
    return sq_err_set(err, SQ_EINVAL, "vault URL \"%.200s\" must not have a path", vault);
  if(!sq_azure_host_has_suffix(host, kv->cloud.kv_dns_suffix))
    return sq_err_set(err, SQ_EINVAL, "vault host %s is not under the cloud's Key Vault suffix .%s",
                      host, kv->cloud.kv_dns_suffix);
  int n = port ? snprintf(origin, olen, "https://%s:%d", host, port)
               : snprintf(origin, olen, "https://%s", host);
  if(n < 0 || (size_t)n >= olen)
    return sq_err_set(err, SQ_EINVAL, "vault URL too long");
  return SQ_OK;
}

static int find_vault(sq_kv *kv, const char *origin, char *tenant, char *scope) {
  int found = 0;
  pthread_mutex_lock(&kv->mu);
  for(int i = 0; i < kv->n_vaults; i++)
    if(!strcmp(kv->vaults[i].origin, origin)) {
      memcpy(tenant, kv->vaults[i].tenant, sizeof kv->vaults[i].tenant);
      memcpy(scope, kv->vaults[i].scope, sizeof kv->vaults[i].scope);
      found = 1;
      break;
    }
  pthread_mutex_unlock(&kv->mu);
  return found;
}

static void store_vault(sq_kv *kv, const char *origin, const sq_kv_challenge *ch) {
  pthread_mutex_lock(&kv->mu);
  int i;
  for(i = 0; i < kv->n_vaults; i++)
    if(!strcmp(kv->vaults[i].origin, origin))
      break;
  if(i == kv->n_vaults) {
    if(kv->n_vaults == kv->cap_vaults && kv->cap_vaults < MAX_VAULTS) {
      int cap = kv->cap_vaults ? kv->cap_vaults * 2 : 8;
      vault_state *v = realloc(kv->vaults, (size_t)cap * sizeof *v);
      if(v) {
        kv->vaults = v;
        kv->cap_vaults = cap;
      }
    }
    if(kv->n_vaults == kv->cap_vaults) {
      pthread_mutex_unlock(&kv->mu); /* full: the challenge will simply be repeated */
      return;
    }
    kv->n_vaults++;
  }
  snprintf(kv->vaults[i].origin, sizeof kv->vaults[i].origin, "%s", origin);
  snprintf(kv->vaults[i].tenant, sizeof kv->vaults[i].tenant, "%s", ch->tenant);
  snprintf(kv->vaults[i].scope, sizeof kv->vaults[i].scope, "%s", ch->scope);
  pthread_mutex_unlock(&kv->mu);
}

typedef struct kv_auth {
  sq_kv *kv;
  const char *origin;
  const char *host;
  const char *body;
  size_t body_len;
  char tenant[128];
  char scope[SQ_AZ_URL_MAX + 16];
  sq_azure_token tok;
  int probing;
  int refreshed;
  sq_code fail;
  sq_err fail_err;
} kv_auth;

static sq_code kv_prepare(void *ud, sq_http_req *req, sq_err *err) {
  kv_auth *st = ud;
  if(!find_vault(st->kv, st->origin, st->tenant, st->scope)) {
    /* challenge probe: no token, no body (as the SDK does) */
    st->probing = 1;
    req->bearer = NULL;
    req->body = st->body ? "" : NULL;
    req->body_len = 0;
    return SQ_OK;
  }
  st->probing = 0;
  if(!st->tok.value) {
    sq_code rc = sq_azure_cred_token(st->kv->cred, st->tenant, st->scope, &st->tok, err);
    if(rc) {
      sq_err_prefix(err, "Key Vault token (tenant %s)", st->tenant);
      return rc;
    }
  }
  req->bearer = st->tok.value;
  req->body = st->body;
  req->body_len = st->body_len;
  return SQ_OK;
}

static int kv_unauthorized(void *ud, sq_http_req *req, const sq_http_resp *resp) {
  kv_auth *st = ud;
  sq_kv_challenge ch;
  sq_err e;
  sq_err_clear(&e);
  if(sq_kv_parse_challenge(resp->www_authenticate[0] ? resp->www_authenticate : NULL, &ch, &e) ||
     sq_kv_verify_challenge(&ch, st->host, &e)) {
    if(!e.code)
      e.code = SQ_EUNAUTH;
    e.code = SQ_EUNAUTH;
    e.http_status = 401;
    if(!e.reason[0])
      snprintf(e.reason, sizeof e.reason, "InvalidChallenge");
    st->fail = SQ_EUNAUTH;
    st->fail_err = e;
    return 0;
  }
  atomic_fetch_add(&st->kv->challenges, 1);
  int changed = strcasecmp(ch.tenant, st->tenant) || strcmp(ch.scope, st->scope);
  store_vault(st->kv, st->origin, &ch);
  if(st->probing)
    return 1;
  if(st->tok.value) {
    if(changed) {
      sq_azure_token_clear(&st->tok);
      req->bearer = NULL;
      return 1;
    }
    if(!st->refreshed) {
      sq_azure_cred_invalidate(st->kv->cred, st->tenant, st->scope, st->tok.value);
      sq_azure_token_clear(&st->tok);
      req->bearer = NULL;
      st->refreshed = 1;
      return 1;
    }
  }
  return 0;
}

/* One Key Vault request. url is absolute. Returns SQ_OK with the final
 * response in resp (any status) or an error. */
static sq_code kv_send(sq_kv *kv, const char *method, const char *url, const char *origin,
                       const char *host, const char *body, size_t body_len, const char *operation,
                       int idempotent, sq_http_resp *resp, sq_err *err) {
  kv_auth st;
  memset(&st, 0, sizeof st);
  st.kv = kv;
  st.origin = origin;
  st.host = host;
  st.body = body;
  st.body_len = body_len;
  sq_azure_exec_info info = {"keyvault", operation, "Microsoft.KeyVault/vaults/keys", idempotent, 0};
  sq_azure_auth auth = {kv_prepare, kv_unauthorized, &st};
  sq_http_req req = {.method = method,
                     .url = url,
                     .content_type = body ? "application/json" : NULL,
                     .accept = "application/json"};
  sq_code rc = sq_azure_exec(&kv->pipe, &info, &auth, &req, resp, NULL, err);
  if(!rc && resp->status == 401 && st.fail) {
    if(err) {
      *err = st.fail_err;
      sq_err_prefix(err, "%s %s", method, operation);
    }
    rc = st.fail;
  } else if(!rc && st.probing && resp->status != 401) {
    /* a vault must challenge an unauthenticated request; anything else means
     * we are not talking to Key Vault (and we sent no body) */
    rc = sq_err_set(err, SQ_EUNAUTH,
                    "%s %s: vault %s answered HTTP %ld to an unauthenticated request instead of a "
                    "401 challenge",
                    method, operation, origin, resp->status);
    if(err) {
      err->http_status = resp->status;
      snprintf(err->reason, sizeof err->reason, "NoChallenge");
    }
  }
  sq_azure_token_clear(&st.tok);
  return rc;
}

/* Builds origin + path + ?api-version and runs the request; on a 2xx parses
 * the JSON body into *out (unless out is NULL); non-2xx -> typed error. */
static sq_code kv_json(sq_kv *kv, const char *method, const char *vault, const char *path_fmt,
                       const char *a1, const char *a2, const char *body, size_t body_len,
                       const char *operation, int idempotent, json_t **out, sq_err *err) {
  char origin[SQ_AZ_URL_MAX], host[256], path[512];
  sq_http_resp resp;
  sq_http_resp_init(&resp);
  sq_buf url;
  sq_buf_init(&url, 4096);
  if(out)
    *out = NULL;
  sq_code rc = vault_origin(kv, vault, origin, sizeof origin, host, sizeof host, err);
  if(rc)
    goto out;
  snprintf(path, sizeof path, path_fmt, a1 ? a1 : "", a2 ? a2 : "");
  if(sq_buf_addf(&url, "%s%s?api-version=%s", origin, path, kv->api_version)) {
    rc = sq_err_set(err, SQ_EINVAL, "Key Vault URL too long");
    goto out;
  }
  rc = kv_send(kv, method, url.ptr, origin, host, body, body_len, operation, idempotent, &resp, err);
  if(rc)
    goto out;
  char what[1024];
  snprintf(what, sizeof what, "Key Vault %s %s%s", operation, origin, path);
  if(resp.status < 200 || resp.status > 299) {
    rc = sq_azure_error_from_resp(&resp, what, err);
    goto out;
  }
  if(out)
    rc = sq_azure_json_body(&resp, what, out, err);
out:
  sq_http_resp_free(&resp);
  sq_buf_free(&url);
  return rc;
}

static sq_code key_from(json_t *b, sq_kv_key *out, sq_err *err) {
  sq_kv_key_free(out);
  sq_kv_key_init(out);
  sq_code rc = sq_kv_parse_key(b, out, err);
  json_decref(b);
  return rc;
}

/* kv_json for a request on one key by name; fmt's second "%s" gets "". */
static sq_code named_json(sq_kv *kv, const char *method, const char *vault, const char *fmt,
                          const char *name, const char *op, int idempotent, json_t **out,
                          sq_err *err) {
  if(!name_valid(name))
    return sq_err_set(err, SQ_EINVAL, "Key Vault: invalid key name");
  return kv_json(kv, method, vault, fmt, name, NULL, NULL, 0, op, idempotent, out, err);
}

sq_code sq_kv_get(sq_kv *kv, const char *vault, const char *name, const char *version,
                  sq_kv_key *out, sq_err *err) {
  if(!name_valid(name) || !version_valid(version))
    return sq_err_set(err, SQ_EINVAL, "Key Vault: invalid key name or version");
  json_t *b = NULL;
  sq_code rc = kv_json(kv, "GET", vault, "/keys/%s/%s", name, version, NULL, 0, "keys.get", 1, &b, err);
  return rc ? rc : key_from(b, out, err);
}

static const char *const op_names[] = {"encrypt", "decrypt", "sign", "verify",
                                       "wrapKey", "unwrapKey", "import", "export"};

static json_t *ops_json(unsigned ops) {
  if(!ops)
    ops = SQ_KV_OP_WRAP | SQ_KV_OP_UNWRAP;
  json_t *a = json_array();
  for(unsigned i = 0; i < 8; i++)
    if(ops & (1u << i))
      json_array_append_new(a, json_string(op_names[i]));
  return a;
}

static json_t *attrs_json(const sq_kv_attrs *a) {
  json_t *o = json_object();
  if(a->enabled >= 0)
    json_object_set_new(o, "enabled", json_boolean(a->enabled));
  if(a->nbf == SQ_KV_CLEAR)
    json_object_set_new(o, "nbf", json_null());
  else if(a->nbf)
    json_object_set_new(o, "nbf", json_integer(a->nbf));
  if(a->exp == SQ_KV_CLEAR)
    json_object_set_new(o, "exp", json_null());
  else if(a->exp)
    json_object_set_new(o, "exp", json_integer(a->exp));
  return o;
}

static sq_code dump_and_send(sq_kv *kv, const char *method, const char *vault, const char *fmt,
                             const char *a1, const char *a2, json_t *body, const char *op,
                             int idem, json_t **out, sq_err *err) {
  char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  if(body && !s)
    return sq_err_set(err, SQ_ENOMEM, "out of memory");
  sq_code rc = kv_json(kv, method, vault, fmt, a1, a2, s ? s : NULL, s ? strlen(s) : 0, op, idem,
                       out, err);
  sq_free_secret(s); /* may be a backup blob */
  return rc;
}

sq_code sq_kv_create(sq_kv *kv, const char *vault, const char *name,
                     const sq_kv_create_params *p, sq_kv_key *out, sq_err *err) {
  if(!name_valid(name))
    return sq_err_set(err, SQ_EINVAL, "Key Vault: invalid key name \"%.130s\"", name ? name : "");
  if(!p->kty || (strcmp(p->kty, "RSA") && strcmp(p->kty, "RSA-HSM")))
    return sq_err_set(err, SQ_EINVAL, "Key Vault create: kty must be RSA or RSA-HSM");
  if(p->key_size != 2048 && p->key_size != 3072 && p->key_size != 4096)
    return sq_err_set(err, SQ_EINVAL, "Key Vault create: key size must be 2048, 3072 or 4096");
  json_t *b = json_pack("{s:s,s:i,s:o,s:o}", "kty", p->kty, "key_size", p->key_size, "key_ops",
                        ops_json(p->ops), "attributes", attrs_json(&p->attrs));
  if(b && p->tags)
    json_object_set(b, "tags", (json_t *)p->tags);
  json_t *r = NULL;
  sq_code rc = dump_and_send(kv, "POST", vault, "/keys/%s/create", name, NULL, b, "keys.create", 0,
                             &r, err);
  return rc ? rc : key_from(r, out, err);
}

/* Appends ,"name":"<b64url of bn>" using a wiped scratch buffer. */
static sq_code add_bn(sq_buf *out, const char *name, const BIGNUM *bn) {
  int n = BN_num_bytes(bn);
  if(n <= 0 || n > 2048)
    return SQ_EINVAL;
  unsigned char *tmp = malloc((size_t)n);
  if(!tmp)
    return SQ_ENOMEM;
  BN_bn2bin(bn, tmp);
  sq_code rc = sq_buf_addf(out, ",\"%s\":\"", name);
  if(!rc)
    rc = sq_b64_encode(tmp, (size_t)n, 1, out);
  if(!rc)
    rc = sq_buf_add(out, "\"", 1);
  sq_wipe(tmp, (size_t)n);
  free(tmp);
  return rc;
}

sq_code sq_kv_import_body(const char *pem, size_t pem_len, const sq_kv_import_params *p,
                          sq_buf *out, sq_err *err) {
  static const struct {
    const char *jwk;
    const char *param;
  } parts[] = {{"n", OSSL_PKEY_PARAM_RSA_N},
               {"e", OSSL_PKEY_PARAM_RSA_E},
               {"d", OSSL_PKEY_PARAM_RSA_D},
               {"p", OSSL_PKEY_PARAM_RSA_FACTOR1},
               {"q", OSSL_PKEY_PARAM_RSA_FACTOR2},
               {"dp", OSSL_PKEY_PARAM_RSA_EXPONENT1},
               {"dq", OSSL_PKEY_PARAM_RSA_EXPONENT2},
               {"qi", OSSL_PKEY_PARAM_RSA_COEFFICIENT1}};
  sq_code rc = SQ_OK;
  EVP_PKEY *pk = NULL;
  json_t *attrs = NULL, *ops = NULL;
  char *attrs_s = NULL, *ops_s = NULL, *tags_s = NULL;
  if(pem_len > INT32_MAX)
    return sq_err_set(err, SQ_ETOOBIG, "import: PEM too large");
  BIO *bio = BIO_new_mem_buf(pem, (int)pem_len);
  if(!bio)
    return sq_err_set(err, SQ_ENOMEM, "out of memory");
  /* no password callback: an encrypted PEM fails instead of prompting */
  pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"");
  BIO_free(bio);
  if(!pk) {
    rc = sq_err_set(err, SQ_EPARSE, "import: no unencrypted private key in the PEM");
    goto out;
  }
  if(EVP_PKEY_get_base_id(pk) != EVP_PKEY_RSA) {
    rc = sq_err_set(err, SQ_EINVAL, "import: the key must be RSA");
    goto out;
  }
  int bits = EVP_PKEY_get_bits(pk);
  if(bits != 2048 && bits != 3072 && bits != 4096) {
    rc = sq_err_set(err, SQ_EINVAL, "import: RSA key size %d is not 2048, 3072 or 4096", bits);
    goto out;
  }
  ops = ops_json(p->ops);
  attrs = attrs_json(&p->attrs);
  ops_s = json_dumps(ops, JSON_COMPACT);
  attrs_s = json_dumps(attrs, JSON_COMPACT);
  tags_s = p->tags ? json_dumps(p->tags, JSON_COMPACT) : NULL;
  if(!ops_s || !attrs_s || (p->tags && !tags_s)) {
    rc = sq_err_set(err, SQ_ENOMEM, "out of memory");
    goto out;
  }
  rc = sq_buf_addf(out, "{\"Hsm\":%s,\"key\":{\"kty\":\"RSA\",\"key_ops\":%s", p->hsm ? "true" : "false",
                   ops_s);
  for(size_t i = 0; !rc && i < sizeof parts / sizeof *parts; i++) {
    BIGNUM *bn = NULL;
    if(!EVP_PKEY_get_bn_param(pk, parts[i].param, &bn)) {
      rc = sq_err_set(err, SQ_EINVAL, "import: the RSA key lacks its %s parameter", parts[i].jwk);
      goto out;
    }
    rc = add_bn(out, parts[i].jwk, bn);
    BN_clear_free(bn);
  }
  if(!rc)
    rc = sq_buf_addf(out, "},\"attributes\":%s", attrs_s);
  if(!rc && tags_s)
    rc = sq_buf_addf(out, ",\"tags\":%s", tags_s);
  if(!rc)
    rc = sq_buf_add(out, "}", 1);
  if(rc)
    sq_err_set(err, rc, "import: cannot build the key body (too large?)");
out:
  ERR_clear_error();
  EVP_PKEY_free(pk);
  json_decref(ops);
  json_decref(attrs);
  free(ops_s);
  free(attrs_s);
  free(tags_s);
  return rc;
}

sq_code sq_kv_import_pem(sq_kv *kv, const char *vault, const char *name, const char *pem,
                         size_t pem_len, const sq_kv_import_params *p, sq_kv_key *out,
                         sq_err *err) {
  if(!name_valid(name))
    return sq_err_set(err, SQ_EINVAL, "Key Vault: invalid key name \"%.130s\"", name ? name : "");
  sq_buf body;
  sq_buf_init(&body, 64 * 1024);
  sq_code rc = sq_kv_import_body(pem, pem_len, p, &body, err);
  json_t *r = NULL;
  if(!rc)
    rc = kv_json(kv, "PUT", vault, "/keys/%s%s", name, NULL, body.ptr, body.len, "keys.import", 1, &r,
                 err);
  sq_buf_free_wipe(&body); /* the private key parameters */
  return rc ? rc : key_from(r, out, err);
}

sq_code sq_kv_update(sq_kv *kv, const char *vault, const char *name, const char *version,
                     const sq_kv_attrs *attrs, const json_t *tags, sq_kv_key *out, sq_err *err) {
  if(!name_valid(name) || !version_valid(version))
    return sq_err_set(err, SQ_EINVAL, "Key Vault: invalid key name or version");
  json_t *b = json_pack("{s:o}", "attributes", attrs_json(attrs));
  if(b && tags)
    json_object_set(b, "tags", (json_t *)tags);
  json_t *r = NULL;
  sq_code rc = dump_and_send(kv, "PATCH", vault, "/keys/%s/%s", name, version, b, "keys.update", 1,
                             &r, err);
  return rc ? rc : key_from(r, out, err);
}

static sq_code wrap_op(sq_kv *kv, const char *kid, const char *alg, const void *in, size_t in_len,
                       sq_buf *out, char *kid_used, const char *op, const char *opname,
                       sq_err *err) {
  char vault[SQ_AZ_URL_MAX], name[SQ_KV_NAME_MAX], version[SQ_KV_VERSION_MAX];
  sq_code rc = sq_kv_split_kid(kid, vault, sizeof vault, name, sizeof name, version, sizeof version, err);
  if(rc)
    return sq_err_set(err, SQ_EINVAL, "%s: %s", opname, err ? err->message : "bad key id");
  if(!version[0])
    return sq_err_set(err, SQ_EINVAL, "%s needs a versioned key id", opname);
  if(!alg || (strcmp(alg, "RSA-OAEP-256") && strcmp(alg, "RSA-OAEP") && strcmp(alg, "RSA1_5")))
    return sq_err_set(err, SQ_EINVAL, "%s: unsupported algorithm", opname);
  sq_buf b64, body;
  sq_buf_init(&b64, 64 * 1024);
  sq_buf_init(&body, 64 * 1024 + 128);
  json_t *r = NULL;
  char path_fmt[64];
  snprintf(path_fmt, sizeof path_fmt, "/keys/%%s/%%s/%s", op);
  rc = sq_b64_encode(in, in_len, 1, &b64);
  if(!rc)
    rc = sq_buf_addf(&body, "{\"alg\":\"%s\",\"value\":\"%s\"}", alg, b64.ptr);
  if(rc) {
    rc = sq_err_set(err, rc, "%s: input too large", opname);
    goto out;
  }
  rc = kv_json(kv, "POST", vault, path_fmt, name, version, body.ptr, body.len, opname, 1, &r, err);
  if(rc)
    goto out;
  const char *v = sq_json_str(r, "value");
  if(!v) {
    rc = sq_err_set(err, SQ_EPARSE, "%s: response has no value", opname);
    goto out;
  }
  if(sq_b64_decode(v, strlen(v), out)) {
    rc = sq_err_set(err, SQ_EPARSE, "%s: response value is not base64url", opname);
    goto out;
  }
  if(kid_used) {
    const char *k = sq_json_str(r, "kid");
    snprintf(kid_used, SQ_KV_KID_MAX, "%s", k ? k : "");
  }
out:
  if(r) {
    json_t *v2 = json_object_get(r, "value");
    if(json_is_string(v2)) /* unwrapped key material */
      sq_wipe((char *)json_string_value(v2), json_string_length(v2));
  }
  json_decref(r);
  sq_buf_free_wipe(&b64);
  sq_buf_free_wipe(&body);
  return rc;
}

sq_code sq_kv_wrap(sq_kv *kv, const char *kid, const char *alg, const void *in, size_t in_len,
                   sq_buf *out, char *kid_used, sq_err *err) {
  return wrap_op(kv, kid, alg, in, in_len, out, kid_used, "wrapkey", "keys.wrap", err);
}

sq_code sq_kv_unwrap(sq_kv *kv, const char *kid, const char *alg, const void *in, size_t in_len,
                     sq_buf *out, char *kid_used, sq_err *err) {
  return wrap_op(kv, kid, alg, in, in_len, out, kid_used, "unwrapkey", "keys.unwrap", err);
}

sq_code sq_kv_probe(sq_kv *kv, const char *kid, sq_err *err) {
  unsigned char secret[32];
  if(RAND_bytes(secret, sizeof secret) != 1)
    return sq_err_set(err, SQ_EIO, "probe: no randomness");
  sq_buf wrapped, plain;
  sq_buf_init(&wrapped, 4096);
  sq_buf_init(&plain, 4096);
  sq_code rc = sq_kv_wrap(kv, kid, "RSA-OAEP-256", secret, sizeof secret, &wrapped, NULL, err);
  if(!rc)
    rc = sq_kv_unwrap(kv, kid, "RSA-OAEP-256", wrapped.ptr, wrapped.len, &plain, NULL, err);
  if(!rc && (plain.len != sizeof secret || CRYPTO_memcmp(plain.ptr, secret, sizeof secret)))
    rc = sq_err_set(err, SQ_ESTATE, "probe: unwrap did not return what was wrapped");
  sq_wipe(secret, sizeof secret);
  sq_buf_free_wipe(&wrapped);
  sq_buf_free_wipe(&plain);
  return rc;
}

sq_code sq_kv_backup(sq_kv *kv, const char *vault, const char *name, char **blob_out, sq_err *err) {
  *blob_out = NULL;
  json_t *r = NULL;
  sq_code rc = named_json(kv, "POST", vault, "/keys/%s/backup%s", name, "keys.backup", 1, &r, err);
  if(rc)
    return rc;
  const char *v = sq_json_str(r, "value");
  if(!v || !*v)
    rc = sq_err_set(err, SQ_EPARSE, "backup: response has no value");
  else if(!(*blob_out = strdup(v)))
    rc = sq_err_set(err, SQ_ENOMEM, "out of memory");
  json_decref(r);
  return rc;
}

sq_code sq_kv_restore(sq_kv *kv, const char *vault, const char *blob, sq_kv_key *out, sq_err *err) {
  if(!blob || !*blob)
    return sq_err_set(err, SQ_EINVAL, "restore: empty backup");
  json_t *r = NULL;
  sq_code rc = dump_and_send(kv, "POST", vault, "/keys/restore%s%s", NULL, NULL,
                             json_pack("{s:s}", "value", blob), "keys.restore", 0, &r, err);
  return rc ? rc : key_from(r, out, err);
}

sq_code sq_kv_rotate(sq_kv *kv, const char *vault, const char *name, sq_kv_key *out, sq_err *err) {
  json_t *r = NULL;
  sq_code rc = named_json(kv, "POST", vault, "/keys/%s/rotate%s", name, "keys.rotate", 0, &r, err);
  return rc ? rc : key_from(r, out, err);
}

static sq_code deleted_from(json_t *r, sq_kv_deleted_key *out, sq_err *err) {
  sq_kv_key_free(&out->key);
  memset(out, 0, sizeof *out);
  sq_kv_key_init(&out->key);
  sq_code rc = parse_deleted(r, out, err);
  json_decref(r);
  return rc;
}

sq_code sq_kv_delete(sq_kv *kv, const char *vault, const char *name, sq_kv_deleted_key *out,
                     sq_err *err) {
  json_t *r = NULL;
  sq_code rc = named_json(kv, "DELETE", vault, "/keys/%s%s", name, "keys.delete", 1, &r, err);
  return rc ? rc : deleted_from(r, out, err);
}

sq_code sq_kv_get_deleted(sq_kv *kv, const char *vault, const char *name, sq_kv_deleted_key *out,
                          sq_err *err) {
  json_t *r = NULL;
  sq_code rc = named_json(kv, "GET", vault, "/deletedkeys/%s%s", name, "deletedkeys.get", 1, &r, err);
  return rc ? rc : deleted_from(r, out, err);
}

sq_code sq_kv_recover(sq_kv *kv, const char *vault, const char *name, sq_kv_key *out, sq_err *err) {
  json_t *r = NULL;
  sq_code rc = named_json(kv, "POST", vault, "/deletedkeys/%s/recover%s", name,
                          "deletedkeys.recover", 1, &r, err);
  return rc ? rc : key_from(r, out, err);
}

/* The pager's send callback: one GET through the vault's challenge auth. */
typedef struct kv_page_send {
  sq_kv *kv;
  const char *origin, *host;
} kv_page_send;

static sq_code kv_page_get(void *ud, const char *url, sq_http_resp *resp, sq_err *err) {
  kv_page_send *s = ud;
  return kv_send(s->kv, "GET", url, s->origin, s->host, NULL, 0, "keys.listVersions", 1, resp, err);
}

/* The pager's item callback: parses a KeyItem and hands it to the caller. */
typedef struct kv_versions_ctx {
  const char *origin, *what;
  sq_kv_key_fn fn;
  void *ud;
  sq_err *err;
  sq_code rc;
} kv_versions_ctx;

static int kv_version_item(void *ud, const json_t *it) {
  kv_versions_ctx *c = ud;
  sq_kv_key k;
  sq_kv_key_init(&k);
  int stop = 0;
  c->rc = sq_kv_parse_key(it, &k, c->err);
  if(!c->rc && strcmp(k.vault, c->origin))
    c->rc = sq_err_set(c->err, SQ_EPARSE, "%s: item from another vault", c->what);
  if(!c->rc)
    stop = c->fn(c->ud, &k);
  sq_kv_key_free(&k);
  return c->rc || stop;
}

sq_code sq_kv_list_versions(sq_kv *kv, const char *vault, const char *name, sq_kv_key_fn fn,
                            void *ud, sq_err *err) {
  if(!name_valid(name))
    return sq_err_set(err, SQ_EINVAL, "Key Vault: invalid key name");
  char origin[SQ_AZ_URL_MAX], host[256];
  sq_code rc = vault_origin(kv, vault, origin, sizeof origin, host, sizeof host, err);
  if(rc)
    return rc;
  char what[400];
  snprintf(what, sizeof what, "Key Vault list versions of %s/keys/%s", origin, name);
  kv_page_send send = {kv, origin, host};
  kv_versions_ctx items = {origin, what, fn, ud, err, SQ_OK};
  sq_azure_pager p = {.what = what,
                      .origin = origin,
                      .origin_name = "the vault",
                      .max_pages = MAX_PAGES,
                      .max_url = LIST_URL_MAX,
                      .send = kv_page_get,
                      .send_ud = &send,
                      .item = kv_version_item,
                      .item_ud = &items};
  sq_buf url;
  sq_buf_init(&url, LIST_URL_MAX);
  if(sq_buf_addf(&url, "%s/keys/%s/versions?api-version=%s&maxresults=25", origin, name,
                 kv->api_version))
    rc = sq_err_set(err, SQ_EINVAL, "URL too long");
  if(!rc)
    rc = sq_azure_list_pages(&p, url.ptr, err);
  sq_buf_free(&url);
  return rc ? rc : items.rc;
}
