/* config.c — kubeconfig and in-cluster configuration; see include/sqltde/kube/client.h.
 *
 * The kubeconfig is read with libyaml's document loader and only the fields a
 * TLS-verifying bearer/client-certificate client can honour are accepted.
 * Anything that would weaken or silently change authentication
 * (insecure-skip-tls-verify, exec / auth-provider plugins, basic auth) is
 * refused with a message that names the file and the field, so an operator
 * never runs with a configuration other than the one its user wrote. */
#include "sqltde/kube/client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "sqltde/buf.h"
#include "sqltde/codec.h"

/* Real kubeconfigs are a few KiB even with inline certificates; 1 MiB leaves
 * room for many contexts while bounding what a stray file can make us parse. */
#define KUBECONFIG_MAX (1024u * 1024u)
/* Decoded inline PEM (CA bundle, certificate chain, key). */
#define PEM_MAX (512u * 1024u)
/* The in-cluster namespace file holds one DNS label. */
#define NS_FILE_MAX 4096u

#define IN_CLUSTER_ROOT "/var/run/secrets/kubernetes.io/serviceaccount"

typedef struct kc {
  const char *path; /* for messages */
  char *dir;        /* directory of the kubeconfig, for relative paths */
  yaml_document_t doc;
  sq_err *err;
} kc;

static void config_zero(sq_kube_config *c) { memset(c, 0, sizeof *c); }

void sq_kube_config_free(sq_kube_config *c) {
  if(!c)
    return;
  free(c->server);
  free(c->ca_file);
  free(c->ca_pem);
  free(c->cert_file);
  free(c->key_file);
  sq_free_secret(c->cert_pem);
  sq_free_secret(c->key_pem);
  sq_free_secret(c->token);
  free(c->token_file);
  free(c->namespace);
  free(c->context);
  config_zero(c);
}

/* ---- YAML helpers ---- */

static const char *scalar(const yaml_node_t *n) {
  return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static yaml_node_t *map_get(yaml_document_t *d, const yaml_node_t *map, const char *key) {
  if(!map || map->type != YAML_MAPPING_NODE)
    return NULL;
  for(yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
    const char *k = scalar(yaml_document_get_node(d, p->key));
    if(k && !strcmp(k, key))
      return yaml_document_get_node(d, p->value);
  }
  return NULL;
}

/* Reads an optional string field; *out stays NULL when absent or empty
 * (kubeconfig writers emit `token: ""` for "unset"). */
static sq_code get_str(kc *c, const yaml_node_t *map, const char *key, const char *where,
                       const char **out) {
  *out = NULL;
  yaml_node_t *n = map_get(&c->doc, map, key);
  if(!n)
    return SQ_OK;
  if(n->type != YAML_SCALAR_NODE)
    return sq_err_set(c->err, SQ_EINVAL, "kubeconfig %s: %s: %s must be a string", c->path, where,
                      key);
  const char *s = scalar(n);
  /* a NUL inside a scalar would silently truncate the value */
  if(strlen(s) != n->data.scalar.length)
    return sq_err_set(c->err, SQ_EINVAL, "kubeconfig %s: %s: %s contains a NUL byte", c->path,
                      where, key);
  int plain = n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
  if(*s && !(plain && (!strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL") ||
                       !strcmp(s, "~"))))
    *out = s;
  return SQ_OK;
}

static int is_true(const char *s) {
  return s && (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE") ||
               !strcmp(s, "yes") || !strcmp(s, "on"));
}

/* Finds the entry named `name` in the top-level list `list` (clusters, users,
 * contexts) and returns its `field` mapping (cluster, user, context). */
static sq_code find_named(kc *c, const yaml_node_t *root, const char *list, const char *field,
                          const char *name, const char *kind, yaml_node_t **out) {
  *out = NULL;
  yaml_node_t *seq = map_get(&c->doc, root, list);
  if(seq && seq->type == YAML_SCALAR_NODE && !strcmp(scalar(seq), "null"))
    seq = NULL;
  if(seq && seq->type != YAML_SEQUENCE_NODE)
    return sq_err_set(c->err, SQ_EINVAL, "kubeconfig %s: %s must be a list", c->path, list);
  if(seq) {
    for(yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top;
        it++) {
      yaml_node_t *entry = yaml_document_get_node(&c->doc, *it);
      const char *n = scalar(map_get(&c->doc, entry, "name"));
      if(!n || strcmp(n, name))
        continue;
      yaml_node_t *body = map_get(&c->doc, entry, field);
      if(!body || body->type != YAML_MAPPING_NODE)
        return sq_err_set(c->err, SQ_EINVAL, "kubeconfig %s: %s \"%s\": %s must be a mapping",
                          c->path, kind, name, field);
      *out = body;
      return SQ_OK;
    }
  }
  return sq_err_set(c->err, SQ_EINVAL, "kubeconfig %s: %s \"%s\" not found", c->path, kind, name);
}

static char *dirname_dup(const char *path) {
  const char *slash = strrchr(path, '/');
  if(!slash)
    return strdup(".");
  if(slash == path)
    return strdup("/");
  return strndup(path, (size_t)(slash - path));
}

/* Relative file references are relative to the kubeconfig's directory, as in
 * client-go; the file must exist now so a typo is reported at startup with
 * the field that holds it rather than as a TLS failure later. */
static sq_code resolve_file(kc *c, const char *where, const char *field, const char *value,
                            char **out) {
  char *p;
  if(value[0] == '/') {
    p = strdup(value);
  } else {
    size_t n = strlen(c->dir) + strlen(value) + 2;
    p = malloc(n);
    if(p)
      snprintf(p, n, "%s/%s", c->dir, value);
  }
  if(!p)
    return sq_err_set(c->err, SQ_ENOMEM, "out of memory");
  if(access(p, R_OK) != 0) {
    int e = errno;
    sq_err_set(c->err, SQ_EIO, "kubeconfig %s: %s: %s: cannot open %s: %s", c->path, where, field,
               p, strerror(e));
    free(p);
    return SQ_EIO;
  }
  *out = p;
  return SQ_OK;
}

/* Decodes a *-data field (base64 of PEM). Whitespace is dropped first because
 * YAML block scalars may wrap long base64 lines. */
static sq_code decode_pem(kc *c, const char *where, const char *field, const char *b64,
                          char **out) {
  sq_buf clean, dec;
  sq_buf_init(&clean, 4 * PEM_MAX / 3 + 16);
  sq_buf_init(&dec, PEM_MAX);
  sq_code rc = SQ_OK;
  for(const char *p = b64; *p && !rc; p++)
    if(*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t')
      rc = sq_buf_add(&clean, p, 1);
  if(!rc)
    rc = sq_b64_decode(clean.ptr ? clean.ptr : "", clean.len, &dec);
  if(rc == SQ_ETOOBIG) {
    sq_err_set(c->err, rc, "kubeconfig %s: %s: %s is larger than %u bytes", c->path, where, field,
               PEM_MAX);
  } else if(rc == SQ_EPARSE) {
    sq_err_set(c->err, rc, "kubeconfig %s: %s: %s is not valid base64", c->path, where, field);
  } else if(rc) {
    sq_err_set(c->err, rc, "out of memory");
  } else if(!dec.ptr || !strstr(dec.ptr, "-----BEGIN ") || strlen(dec.ptr) != dec.len) {
    rc = sq_err_set(c->err, SQ_EPARSE, "kubeconfig %s: %s: %s does not decode to PEM data",
                    c->path, where, field);
  }
  sq_buf_free_wipe(&clean);
  if(rc) {
    sq_buf_free_wipe(&dec);
    return rc;
  }
  *out = sq_buf_detach(&dec);
  return *out ? SQ_OK : sq_err_set(c->err, SQ_ENOMEM, "out of memory");
}

static sq_code dup_field(kc *c, const char *s, char **out) {
  *out = strdup(s);
  return *out ? SQ_OK : sq_err_set(c->err, SQ_ENOMEM, "out of memory");
}

static sq_code load_cluster(kc *c, const yaml_node_t *cl, const char *name, sq_kube_config *out) {
  char where[320];
  snprintf(where, sizeof where, "cluster \"%s\"", name);
  const char *server, *insecure, *ca, *ca_data, *proxy;
  sq_code rc;
  if((rc = get_str(c, cl, "server", where, &server)) ||
     (rc = get_str(c, cl, "insecure-skip-tls-verify", where, &insecure)) ||
     (rc = get_str(c, cl, "certificate-authority", where, &ca)) ||
     (rc = get_str(c, cl, "certificate-authority-data", where, &ca_data)) ||
     (rc = get_str(c, cl, "proxy-url", where, &proxy)))
    return rc;
  if(is_true(insecure))
    return sq_err_set(c->err, SQ_EINVAL,
                      "kubeconfig %s: %s: insecure-skip-tls-verify is refused (TLS is always "
                      "verified); set certificate-authority or certificate-authority-data instead",
                      c->path, where);
  if(proxy)
    return sq_err_set(c->err, SQ_EINVAL, "kubeconfig %s: %s: proxy-url is not supported", c->path,
                      where);
  if(!server)
    return sq_err_set(c->err, SQ_EINVAL, "kubeconfig %s: %s: server is missing", c->path, where);
  if(!strncmp(server, "http://", 7))
    return sq_err_set(c->err, SQ_EINVAL,
                      "kubeconfig %s: %s: server %s is plain http; only https is supported",
                      c->path, where, server);
  /* client-go assumes https when the scheme is omitted */
  size_t n = strlen(server);
  int has_scheme = !strncmp(server, "https://", 8);
  if(!has_scheme && strstr(server, "://"))
    return sq_err_set(c->err, SQ_EINVAL, "kubeconfig %s: %s: server %s is not an https URL",
                      c->path, where, server);
  out->server = malloc(n + 9);
  if(!out->server)
    return sq_err_set(c->err, SQ_ENOMEM, "out of memory");
  snprintf(out->server, n + 9, "%s%s", has_scheme ? "" : "https://", server);
  n = strlen(out->server);
  while(n > 8 && out->server[n - 1] == '/')
    out->server[--n] = '\0';
  if(n <= 8)
    return sq_err_set(c->err, SQ_EINVAL, "kubeconfig %s: %s: server has no host", c->path, where);

  if(ca_data)
    return decode_pem(c, where, "certificate-authority-data", ca_data, &out->ca_pem);
  if(ca)
    return resolve_file(c, where, "certificate-authority", ca, &out->ca_file);
  return SQ_OK;
}

static sq_code load_user(kc *c, const yaml_node_t *u, const char *name, sq_kube_config *out) {
  char where[320];
  snprintf(where, sizeof where, "user \"%s\"", name);
  yaml_node_t *exec = map_get(&c->doc, u, "exec");
  if(exec) {
    const char *cmd = scalar(map_get(&c->doc, exec, "command"));
    return sq_err_set(c->err, SQ_EINVAL,
                      "kubeconfig %s: %s: exec credential plugins are not supported (command "
                      "\"%s\"); use token, tokenFile or a client certificate",
                      c->path, where, cmd ? cmd : "?");
  }
  yaml_node_t *ap = map_get(&c->doc, u, "auth-provider");
  if(ap) {
    const char *pn = scalar(map_get(&c->doc, ap, "name"));
    return sq_err_set(c->err, SQ_EINVAL,
                      "kubeconfig %s: %s: auth-provider plugins are not supported (provider "
                      "\"%s\"); use token, tokenFile or a client certificate",
                      c->path, where, pn ? pn : "?");
  }
  const char *token, *token_file, *cert, *cert_data, *key, *key_data, *username, *password;
  sq_code rc;
  if((rc = get_str(c, u, "token", where, &token)) ||
     (rc = get_str(c, u, "tokenFile", where, &token_file)) ||
     (rc = get_str(c, u, "client-certificate", where, &cert)) ||
     (rc = get_str(c, u, "client-certificate-data", where, &cert_data)) ||
     (rc = get_str(c, u, "client-key", where, &key)) ||
     (rc = get_str(c, u, "client-key-data", where, &key_data)) ||
     (rc = get_str(c, u, "username", where, &username)) ||
     (rc = get_str(c, u, "password", where, &password)))
    return rc;
  if(username || password)
    return sq_err_set(c->err, SQ_EINVAL,
                      "kubeconfig %s: %s: basic authentication (username/password) is not "
                      "supported; use token, tokenFile or a client certificate",
                      c->path, where);
  if(map_get(&c->doc, u, "as") || map_get(&c->doc, u, "as-groups"))
    return sq_err_set(c->err, SQ_EINVAL, "kubeconfig %s: %s: impersonation (as) is not supported",
                      c->path, where);
  if((cert || cert_data) != (key || key_data))
    return sq_err_set(c->err, SQ_EINVAL,
                      "kubeconfig %s: %s: %s is set but %s is missing", c->path, where,
                      (cert || cert_data) ? "client-certificate" : "client-key",
                      (cert || cert_data) ? "client-key" : "client-certificate");
  if(token && (rc = dup_field(c, token, &out->token)))
    return rc;
  if(token_file && (rc = resolve_file(c, where, "tokenFile", token_file, &out->token_file)))
    return rc;
  /* inline data wins over a file, as in client-go */
  if(cert_data)
    rc = decode_pem(c, where, "client-certificate-data", cert_data, &out->cert_pem);
  else if(cert)
    rc = resolve_file(c, where, "client-certificate", cert, &out->cert_file);
  if(rc)
    return rc;
  if(key_data)
    rc = decode_pem(c, where, "client-key-data", key_data, &out->key_pem);
  else if(key)
    rc = resolve_file(c, where, "client-key", key, &out->key_file);
  return rc;
}

static sq_code parse_yaml(kc *c, const sq_buf *text) {
  yaml_parser_t p;
  if(!yaml_parser_initialize(&p))
    return sq_err_set(c->err, SQ_ENOMEM, "out of memory");
  yaml_parser_set_input_string(&p, (const unsigned char *)(text->ptr ? text->ptr : ""),
                               text->len);
  sq_code rc = SQ_OK;
  if(!yaml_parser_load(&p, &c->doc)) {
    rc = sq_err_set(c->err, SQ_EPARSE, "kubeconfig %s: line %zu column %zu: %s", c->path,
                    p.problem_mark.line + 1, p.problem_mark.column + 1,
                    p.problem ? p.problem : "malformed YAML");
    memset(&c->doc, 0, sizeof c->doc);
  }
  yaml_parser_delete(&p);
  return rc;
}

sq_code sq_kube_config_load_file(const char *path, const char *context, sq_kube_config *out,
                                 sq_err *err) {
  config_zero(out);
  kc c;
  memset(&c, 0, sizeof c);
  c.path = path;
  c.err = err;
  sq_buf text;
  sq_buf_init(&text, KUBECONFIG_MAX);
  sq_code rc = sq_buf_read_file(&text, path, err);
  if(rc) {
    if(rc == SQ_ETOOBIG)
      sq_err_set(err, rc, "kubeconfig %s: larger than %u bytes", path, KUBECONFIG_MAX);
    sq_buf_free_wipe(&text);
    return rc;
  }
  c.dir = dirname_dup(path);
  if(!c.dir) {
    sq_buf_free_wipe(&text);
    return sq_err_set(err, SQ_ENOMEM, "out of memory");
  }
  rc = parse_yaml(&c, &text);
  /* the text may hold tokens and keys */
  sq_buf_free_wipe(&text);
  if(rc) {
    free(c.dir);
    return rc;
  }

  yaml_node_t *root = yaml_document_get_root_node(&c.doc);
  yaml_node_t *ctx = NULL, *cl = NULL, *user = NULL;
  const char *ctx_name = context, *cl_name, *user_name, *ns;
  if(!root || root->type != YAML_MAPPING_NODE) {
    rc = sq_err_set(err, SQ_EINVAL, "kubeconfig %s: not a kubeconfig (expected a mapping)", path);
    goto out;
  }
  if(!ctx_name || !*ctx_name) {
    if((rc = get_str(&c, root, "current-context", "top level", &ctx_name)))
      goto out;
    if(!ctx_name) {
      rc = sq_err_set(err, SQ_EINVAL,
                      "kubeconfig %s: current-context is not set and no context was requested",
                      path);
      goto out;
    }
  }
  if((rc = find_named(&c, root, "contexts", "context", ctx_name, "context", &ctx)))
    goto out;
  char where[320];
  snprintf(where, sizeof where, "context \"%s\"", ctx_name);
  if((rc = get_str(&c, ctx, "cluster", where, &cl_name)) ||
     (rc = get_str(&c, ctx, "user", where, &user_name)) ||
     (rc = get_str(&c, ctx, "namespace", where, &ns)))
    goto out;
  if(!cl_name) {
    rc = sq_err_set(err, SQ_EINVAL, "kubeconfig %s: %s: cluster is missing", path, where);
    goto out;
  }
  if((rc = find_named(&c, root, "clusters", "cluster", cl_name, "cluster", &cl)) ||
     (rc = load_cluster(&c, cl, cl_name, out)))
    goto out;
  /* a context without a user is anonymous (or relies on the CA alone) */
  if(user_name && ((rc = find_named(&c, root, "users", "user", user_name, "user", &user)) ||
                   (rc = load_user(&c, user, user_name, out))))
    goto out;
  if((rc = dup_field(&c, ns ? ns : "default", &out->namespace)) ||
     (rc = dup_field(&c, ctx_name, &out->context)))
    goto out;
out:
  yaml_document_delete(&c.doc);
  free(c.dir);
  if(rc)
    sq_kube_config_free(out);
  return rc;
}

/* ---- in-cluster ---- */

sq_code sq_kube_config_in_cluster(const char *root, sq_kube_config *out, sq_err *err) {
  config_zero(out);
  if(!root)
    root = IN_CLUSTER_ROOT;
  const char *host = getenv("KUBERNETES_SERVICE_HOST");
  const char *port = getenv("KUBERNETES_SERVICE_PORT");
  if(!host || !*host || !port || !*port)
    return sq_err_set(err, SQ_EINVAL,
                      "in-cluster config: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT "
                      "must be set (not running in a pod?)");
  for(const char *p = port; *p; p++)
    if(*p < '0' || *p > '9')
      return sq_err_set(err, SQ_EINVAL, "in-cluster config: KUBERNETES_SERVICE_PORT \"%s\" is "
                                        "not a port number", port);
  sq_code rc = SQ_OK;
  sq_buf b;
  sq_buf_init(&b, 8192);
  /* an IPv6 literal needs brackets in a URL */
  int v6 = strchr(host, ':') != NULL && host[0] != '[';
  if((rc = sq_buf_addf(&b, "https://%s%s%s:%s", v6 ? "[" : "", host, v6 ? "]" : "", port)))
    goto oom;
  out->server = sq_buf_detach(&b);
  if(!out->server)
    goto oom;

  if((rc = sq_buf_addf(&b, "%s/token", root)))
    goto oom;
  out->token_file = sq_buf_detach(&b);
  if(!out->token_file)
    goto oom;
  if(access(out->token_file, R_OK) != 0) {
    rc = sq_err_set(err, SQ_EIO, "in-cluster config: cannot open %s: %s", out->token_file,
                    strerror(errno));
    goto out;
  }
  if((rc = sq_buf_addf(&b, "%s/ca.crt", root)))
    goto oom;
  out->ca_file = sq_buf_detach(&b);
  if(!out->ca_file)
    goto oom;
  if(access(out->ca_file, R_OK) != 0) {
    rc = sq_err_set(err, SQ_EIO, "in-cluster config: cannot open %s: %s", out->ca_file,
                    strerror(errno));
    goto out;
  }

  /* the namespace file is optional (some setups mount only token and CA) */
  char nspath[4096];
  snprintf(nspath, sizeof nspath, "%s/namespace", root);
  sq_buf nsb;
  sq_buf_init(&nsb, NS_FILE_MAX);
  if(access(nspath, F_OK) == 0) {
    rc = sq_buf_read_file(&nsb, nspath, err);
    if(rc) {
      sq_buf_free(&nsb);
      sq_err_prefix(err, "in-cluster config");
      goto out;
    }
  }
  size_t s = 0, e = nsb.len;
  while(s < e && (nsb.ptr[s] == ' ' || nsb.ptr[s] == '\n' || nsb.ptr[s] == '\r' ||
                  nsb.ptr[s] == '\t'))
    s++;
  while(e > s && (nsb.ptr[e - 1] == ' ' || nsb.ptr[e - 1] == '\n' || nsb.ptr[e - 1] == '\r' ||
                  nsb.ptr[e - 1] == '\t'))
    e--;
  out->namespace = e > s ? strndup(nsb.ptr + s, e - s) : strdup("default");
  sq_buf_free(&nsb);
  if(!out->namespace)
    goto oom;
  return SQ_OK;
oom:
  rc = sq_err_set(err, SQ_ENOMEM, "out of memory");
out:
  sq_buf_free(&b);
  sq_kube_config_free(out);
  return rc;
}

/* ---- default order ---- */

/* $KUBECONFIG may be a ':'-separated list; client-go merges the files, we take
 * the first one that exists (merging is not supported), or the first entry
 * when none exists so the error names it. */
static sq_code load_env_kubeconfig(const char *list, sq_kube_config *out, sq_err *err) {
  char *copy = strdup(list);
  if(!copy)
    return sq_err_set(err, SQ_ENOMEM, "out of memory");
  const char *first = NULL, *chosen = NULL;
  char *save = NULL;
  for(char *tok = strtok_r(copy, ":", &save); tok; tok = strtok_r(NULL, ":", &save)) {
    if(!first)
      first = tok;
    if(access(tok, F_OK) == 0) {
      chosen = tok;
      break;
    }
  }
  sq_code rc;
  if(!chosen)
    chosen = first;
  if(!chosen)
    rc = sq_err_set(err, SQ_EINVAL, "KUBECONFIG is set but names no file");
  else
    rc = sq_kube_config_load_file(chosen, NULL, out, err);
  free(copy);
  return rc;
}

sq_code sq_kube_config_default(const char *explicit_path, sq_kube_config *out, sq_err *err) {
  config_zero(out);
  if(explicit_path && *explicit_path)
    return sq_kube_config_load_file(explicit_path, NULL, out, err);
  const char *env = getenv("KUBECONFIG");
  if(env && *env)
    return load_env_kubeconfig(env, out, err);

  char home_cfg[4096] = "";
  const char *home = getenv("HOME");
  if(home && *home)
    snprintf(home_cfg, sizeof home_cfg, "%s/.kube/config", home);
  int have_home_cfg = home_cfg[0] && access(home_cfg, F_OK) == 0;

  const char *svc = getenv("KUBERNETES_SERVICE_HOST");
  if(svc && *svc) {
    sq_code rc = sq_kube_config_in_cluster(NULL, out, err);
    /* like controller-runtime, a broken in-cluster setup falls back to ~/.kube/config */
    if(!rc || !have_home_cfg)
      return rc;
  }
  if(have_home_cfg)
    return sq_kube_config_load_file(home_cfg, NULL, out, err);
  return sq_err_set(err, SQ_EINVAL,
                    "no Kubernetes configuration: pass --kubeconfig, set KUBECONFIG, run in a "
                    "pod, or create ~/.kube/config");
}
