/* cloud.c — named and custom Azure clouds; see include/sqltde/azure/cloud.h. */
#include "sqltde/azure/cloud.h"

#include <ctype.h>
#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "sqltde/buf.h"
#include "sqltde/jsonx.h"

typedef struct named_cloud {
  const char *names[4]; /* canonical first */
  const char *authority, *arm, *arm_aud, *kv_suffix, *kv_aud;
} named_cloud;

/* Values as the Azure SDKs' cloud configurations and `az cloud show` list
 * them. The ARM audience is the management endpoint itself (the scope
 * azure-api.md §6 uses: https://management.azure.com/.default). */
static const named_cloud clouds[] = {
    {{"AzurePublicCloud", "public", "AzureCloud", NULL},
     "https://login.microsoftonline.com",
     "https://management.azure.com",
     "https://management.azure.com",
     "vault.azure.net",
     "https://vault.azure.net"},
    {{"AzureUSGovernment", "usgovernment", "AzureUSGovernmentCloud", "usgov"},
     "https://login.microsoftonline.us",
     "https://management.usgovcloudapi.net",
     "https://management.usgovcloudapi.net",
     "vault.usgovcloudapi.net",
     "https://vault.usgovcloudapi.net"},
    {{"AzureChinaCloud", "china", NULL, NULL},
     "https://login.chinacloudapi.cn",
     "https://management.chinacloudapi.cn",
     "https://management.chinacloudapi.cn",
     "vault.azure.cn",
     "https://vault.azure.cn"},
};

static sq_code copy_field(char *dst, size_t dstlen, const char *v, const char *what, sq_err *err) {
  size_t n = strlen(v);
  if(n >= dstlen)
    return sq_err_set(err, SQ_EINVAL, "cloud: %s is longer than %zu characters", what, dstlen - 1);
  memcpy(dst, v, n + 1);
  return SQ_OK;
}

sq_code sq_azure_cloud_named(const char *name, sq_azure_cloud *out, sq_err *err) {
  for(size_t i = 0; i < sizeof clouds / sizeof clouds[0]; i++) {
    for(int j = 0; j < 4 && clouds[i].names[j]; j++) {
      if(name && !strcasecmp(name, clouds[i].names[j])) {
        memset(out, 0, sizeof *out);
        snprintf(out->name, sizeof out->name, "%s", clouds[i].names[0]);
        snprintf(out->authority_host, sizeof out->authority_host, "%s", clouds[i].authority);
        snprintf(out->arm_endpoint, sizeof out->arm_endpoint, "%s", clouds[i].arm);
        snprintf(out->arm_audience, sizeof out->arm_audience, "%s", clouds[i].arm_aud);
        snprintf(out->kv_dns_suffix, sizeof out->kv_dns_suffix, "%s", clouds[i].kv_suffix);
        snprintf(out->kv_audience, sizeof out->kv_audience, "%s", clouds[i].kv_aud);
        return SQ_OK;
      }
    }
  }
  return sq_err_set(err, SQ_EINVAL,
                    "unknown Azure cloud \"%s\" (known: AzurePublicCloud, AzureUSGovernment, "
                    "AzureChinaCloud, or a custom cloud file)",
                    name ? name : "");
}

sq_code sq_azure_url_split(const char *url, char *scheme, size_t scheme_len, char *host,
                           size_t host_len, int *port) {
  const char *p = strstr(url ? url : "", "://");
  if(!p || p == url)
    return SQ_EINVAL;
  size_t sl = (size_t)(p - url);
  if(sl >= scheme_len)
    return SQ_EINVAL;
  for(size_t i = 0; i < sl; i++)
    scheme[i] = (char)tolower((unsigned char)url[i]);
  scheme[sl] = '\0';
  const char *h = p + 3;
  size_t hl = strcspn(h, ":/?#");
  if(!hl || hl >= host_len)
    return SQ_EINVAL;
  for(size_t i = 0; i < hl; i++) {
    unsigned char c = (unsigned char)h[i];
    if(!(isalnum(c) || c == '-' || c == '.' || c == '_'))
      return SQ_EINVAL; /* no userinfo, no IPv6 literals, no odd bytes */
    host[i] = (char)tolower(c);
  }
  host[hl] = '\0';
  *port = 0;
  if(h[hl] == ':') {
    char *end;
    long v = strtol(h + hl + 1, &end, 10);
    if(end == h + hl + 1 || v <= 0 || v > 65535 || (*end && *end != '/' && *end != '?' && *end != '#'))
      return SQ_EINVAL;
    *port = (int)v;
  }
  return SQ_OK;
}

static int effective_port(const char *scheme, int port) {
  if(port)
    return port;
  return !strcmp(scheme, "https") ? 443 : !strcmp(scheme, "http") ? 80 : 0;
}

int sq_azure_same_origin(const char *url, const char *base) {
  char s1[16], h1[256], s2[16], h2[256];
  int p1, p2;
  if(sq_azure_url_split(url, s1, sizeof s1, h1, sizeof h1, &p1) ||
     sq_azure_url_split(base, s2, sizeof s2, h2, sizeof h2, &p2))
    return 0;
  return !strcmp(s1, s2) && !strcmp(h1, h2) && effective_port(s1, p1) == effective_port(s2, p2);
}

int sq_azure_host_has_suffix(const char *host, const char *suffix) {
  size_t hl = strlen(host), sl = strlen(suffix);
  if(!sl || hl < sl + 2)
    return 0;
  return host[hl - sl - 1] == '.' && !strcasecmp(host + hl - sl, suffix);
}

static sq_code check_https(char *url, const char *what, sq_err *err) {
  size_t n = strlen(url);
  while(n && url[n - 1] == '/')
    url[--n] = '\0';
  char scheme[16], host[256];
  int port;
  if(!n || sq_azure_url_split(url, scheme, sizeof scheme, host, sizeof host, &port))
    return sq_err_set(err, SQ_EINVAL, "cloud: %s \"%s\" is not an absolute URL", what, url);
  if(strcmp(scheme, "https"))
    return sq_err_set(err, SQ_EINVAL, "cloud: %s \"%s\" must use https (tokens never travel in clear text)",
                      what, url);
  if(strpbrk(url, "?# \t\r\n"))
    return sq_err_set(err, SQ_EINVAL, "cloud: %s \"%s\" must not carry a query, fragment or spaces",
                      what, url);
  return SQ_OK;
}

sq_code sq_azure_cloud_validate(sq_azure_cloud *c, sq_err *err) {
  sq_code rc;
  if((rc = check_https(c->authority_host, "authority host", err)) ||
     (rc = check_https(c->arm_endpoint, "ARM endpoint", err)) ||
     (rc = check_https(c->arm_audience, "ARM audience", err)) ||
     (rc = check_https(c->kv_audience, "Key Vault audience", err)))
    return rc;
  char *s = c->kv_dns_suffix;
  while(*s == '.')
    memmove(s, s + 1, strlen(s));
  size_t n = strlen(s);
  if(!n)
    return sq_err_set(err, SQ_EINVAL, "cloud: Key Vault DNS suffix is empty");
  for(size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if(!(isalnum(ch) || ch == '-' || ch == '.'))
      return sq_err_set(err, SQ_EINVAL,
                        "cloud: Key Vault DNS suffix \"%s\" must be a bare host name (e.g. vault.azure.net)",
                        s);
    s[i] = (char)tolower(ch);
  }
  if(!c->name[0])
    snprintf(c->name, sizeof c->name, "custom");
  return SQ_OK;
}

sq_code sq_azure_scope(const char *audience, char *out, size_t outlen, sq_err *err) {
  size_t n = strlen(audience);
  while(n && audience[n - 1] == '/')
    n--;
  if(!n)
    return sq_err_set(err, SQ_EINVAL, "empty token audience");
  if(n + sizeof "/.default" > outlen)
    return sq_err_set(err, SQ_ETOOBIG, "token audience too long");
  memcpy(out, audience, n);
  memcpy(out + n, "/.default", sizeof "/.default");
  return SQ_OK;
}

/* ---- custom cloud files ---- */

/* Applies one key of a cloud file. base_seen tracks whether "base" came first
 * so later keys override it. */
static sq_code apply_file_key(sq_azure_cloud *c, const char *key, const char *val, const char *dir,
                              unsigned *seen, sq_err *err) {
  static const struct {
    const char *key;
    size_t off, len;
    unsigned bit;
  } fields[] = {
      {"name", offsetof(sq_azure_cloud, name), sizeof(((sq_azure_cloud *)0)->name), 1u},
      {"authorityHost", offsetof(sq_azure_cloud, authority_host), SQ_AZ_URL_MAX, 2u},
      {"resourceManagerEndpoint", offsetof(sq_azure_cloud, arm_endpoint), SQ_AZ_URL_MAX, 4u},
      {"resourceManagerAudience", offsetof(sq_azure_cloud, arm_audience), SQ_AZ_URL_MAX, 8u},
      {"keyVaultDNSSuffix", offsetof(sq_azure_cloud, kv_dns_suffix), SQ_AZ_URL_MAX, 16u},
      {"keyVaultAudience", offsetof(sq_azure_cloud, kv_audience), SQ_AZ_URL_MAX, 32u},
  };
  if(!strcmp(key, "base")) {
    if(*seen)
      return sq_err_set(err, SQ_EINVAL, "cloud file: \"base\" must come before the keys it fills");
    sq_code rc = sq_azure_cloud_named(val, c, err);
    if(!rc)
      *seen |= 0x100u;
    return rc;
  }
  if(!strcmp(key, "caFile")) {
    if(val[0] == '/' || !dir)
      return copy_field(c->ca_file, sizeof c->ca_file, val, "caFile", err);
    char tmp[sizeof c->ca_file];
    int n = snprintf(tmp, sizeof tmp, "%s/%s", dir, val);
    if(n < 0 || (size_t)n >= sizeof tmp)
      return sq_err_set(err, SQ_EINVAL, "cloud file: caFile path too long");
    memcpy(c->ca_file, tmp, (size_t)n + 1);
    return SQ_OK;
  }
  for(size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    if(!strcmp(key, fields[i].key)) {
      *seen |= fields[i].bit;
      return copy_field((char *)c + fields[i].off, fields[i].len, val, key, err);
    }
  }
  return sq_err_set(err, SQ_EINVAL,
                    "cloud file: unknown key \"%s\" (known: base, name, authorityHost, "
                    "resourceManagerEndpoint, resourceManagerAudience, keyVaultDNSSuffix, "
                    "keyVaultAudience, caFile)",
                    key);
}

static sq_code load_json(const sq_buf *b, sq_azure_cloud *c, const char *dir, unsigned *seen,
                         sq_err *err) {
  json_t *root = NULL;
  sq_code rc = sq_json_parse(b->ptr, b->len, "cloud file", &root, err);
  if(rc)
    return rc;
  if(!json_is_object(root)) {
    json_decref(root);
    return sq_err_set(err, SQ_EPARSE, "cloud file: top level must be an object");
  }
  /* "base" first so the other keys override it whatever the key order */
  json_t *base = json_object_get(root, "base");
  if(base) {
    if(!json_is_string(base))
      rc = sq_err_set(err, SQ_EPARSE, "cloud file: \"base\" must be a string");
    else
      rc = apply_file_key(c, "base", json_string_value(base), dir, seen, err);
  }
  const char *k;
  json_t *v;
  json_object_foreach(root, k, v) {
    if(rc)
      break;
    if(!strcmp(k, "base"))
      continue;
    if(!json_is_string(v))
      rc = sq_err_set(err, SQ_EPARSE, "cloud file: \"%s\" must be a string", k);
    else
      rc = apply_file_key(c, k, json_string_value(v), dir, seen, err);
  }
  json_decref(root);
  return rc;
}

/* A flat YAML mapping of scalar keys to scalar values; anything else is an
 * error. "base" is applied first, as in the JSON form. */
static sq_code load_yaml(const sq_buf *b, sq_azure_cloud *c, const char *dir, unsigned *seen,
                         sq_err *err) {
  yaml_parser_t p;
  yaml_event_t ev;
  sq_code rc = SQ_OK;
  char keys[16][64];
  char vals[16][1024];
  int n = 0, depth = 0, have_key = 0, done = 0;
  if(!yaml_parser_initialize(&p))
    return sq_err_set(err, SQ_ENOMEM, "cloud file: cannot create YAML parser");
  yaml_parser_set_input_string(&p, (const unsigned char *)b->ptr, b->len);
  while(!done && !rc) {
    if(!yaml_parser_parse(&p, &ev)) {
      rc = sq_err_set(err, SQ_EPARSE, "cloud file: YAML error at line %zu: %s",
                      p.problem_mark.line + 1, p.problem ? p.problem : "unknown");
      break;
    }
    switch(ev.type) {
    case YAML_MAPPING_START_EVENT:
      if(++depth > 1)
        rc = sq_err_set(err, SQ_EPARSE, "cloud file: values must be plain strings");
      break;
    case YAML_SEQUENCE_START_EVENT:
    case YAML_ALIAS_EVENT:
      rc = depth ? sq_err_set(err, SQ_EPARSE, "cloud file: values must be plain strings")
                 : sq_err_set(err, SQ_EPARSE, "cloud file: top level must be a mapping");
      break;
    case YAML_SCALAR_EVENT: {
      const char *s = (const char *)ev.data.scalar.value;
      if(depth != 1) {
        rc = sq_err_set(err, SQ_EPARSE, "cloud file: top level must be a mapping");
      } else if(!have_key) {
        if(n >= 16 || ev.data.scalar.length >= sizeof keys[0])
          rc = sq_err_set(err, SQ_EPARSE, "cloud file: too many or too long keys");
        else
          snprintf(keys[n], sizeof keys[n], "%s", s);
        have_key = 1;
      } else {
        if(ev.data.scalar.length >= sizeof vals[0])
          rc = sq_err_set(err, SQ_EPARSE, "cloud file: value of \"%s\" too long", keys[n]);
        else
          snprintf(vals[n], sizeof vals[n], "%s", s);
        have_key = 0;
        n++;
      }
      break;
    }
    case YAML_STREAM_END_EVENT:
      done = 1;
      break;
    default:
      break;
    }
    yaml_event_delete(&ev);
  }
  yaml_parser_delete(&p);
  if(!rc && depth == 0)
    rc = sq_err_set(err, SQ_EPARSE, "cloud file: top level must be a mapping");
  for(int i = 0; i < n && !rc; i++)
    if(!strcmp(keys[i], "base"))
      rc = apply_file_key(c, keys[i], vals[i], dir, seen, err);
  for(int i = 0; i < n && !rc; i++)
    if(strcmp(keys[i], "base"))
      rc = apply_file_key(c, keys[i], vals[i], dir, seen, err);
  return rc;
}

sq_code sq_azure_cloud_load_file(const char *path, sq_azure_cloud *out, sq_err *err) {
  sq_buf b;
  sq_buf_init(&b, 64 * 1024);
  sq_azure_cloud c;
  memset(&c, 0, sizeof c);
  unsigned seen = 0;
  char *pathcopy = strdup(path);
  sq_code rc = pathcopy ? sq_buf_read_file(&b, path, err) : sq_err_set(err, SQ_ENOMEM, "out of memory");
  if(rc)
    goto out;
  const char *dir = dirname(pathcopy);
  const char *s = b.ptr ? b.ptr : "";
  while(*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
    s++;
  if(*s == '{')
    rc = load_json(&b, &c, dir, &seen, err);
  else
    rc = load_yaml(&b, &c, dir, &seen, err);
  if(rc) {
    sq_err_prefix(err, "%s", path);
    goto out;
  }
  if(!(seen & 0x100u) && (seen & 0x3eu) != 0x3eu) {
    rc = sq_err_set(err, SQ_EINVAL,
                    "%s: a custom cloud needs authorityHost, resourceManagerEndpoint, "
                    "resourceManagerAudience, keyVaultDNSSuffix and keyVaultAudience (or a \"base\")",
                    path);
    goto out;
  }
  if(!(seen & 1u))
    snprintf(c.name, sizeof c.name, "custom");
  rc = sq_azure_cloud_validate(&c, err);
  if(rc) {
    sq_err_prefix(err, "%s", path);
    goto out;
  }
  *out = c;
out:
  free(pathcopy);
  sq_buf_free(&b);
  return rc;
}

sq_code sq_azure_cloud_set(sq_azure_cloud *c, const char *flag, const char *value, sq_err *err) {
  if(!value)
    return sq_err_set(err, SQ_EINVAL, "--%s needs a value", flag);
  if(!strcmp(flag, "azure-cloud")) {
    if(value[0] == '@')
      return sq_azure_cloud_load_file(value + 1, c, err);
    return sq_azure_cloud_named(value, c, err);
  }
  static const struct {
    const char *flag;
    size_t off, len;
  } f[] = {
      {"azure-authority-host", offsetof(sq_azure_cloud, authority_host), SQ_AZ_URL_MAX},
      {"azure-arm-endpoint", offsetof(sq_azure_cloud, arm_endpoint), SQ_AZ_URL_MAX},
      {"azure-arm-audience", offsetof(sq_azure_cloud, arm_audience), SQ_AZ_URL_MAX},
      {"azure-keyvault-dns-suffix", offsetof(sq_azure_cloud, kv_dns_suffix), SQ_AZ_URL_MAX},
      {"azure-keyvault-audience", offsetof(sq_azure_cloud, kv_audience), SQ_AZ_URL_MAX},
      {"azure-ca-file", offsetof(sq_azure_cloud, ca_file), sizeof(((sq_azure_cloud *)0)->ca_file)},
  };
  for(size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
    if(!strcmp(flag, f[i].flag)) {
      sq_code rc = copy_field((char *)c + f[i].off, f[i].len, value, flag, err);
      if(!rc && f[i].off != offsetof(sq_azure_cloud, ca_file))
        snprintf(c->name, sizeof c->name, "custom");
      return rc;
    }
  }
  return sq_err_set(err, SQ_EINVAL, "unknown Azure cloud flag --%s", flag);
}
