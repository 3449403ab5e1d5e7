/* probes.c — /healthz, /readyz and /metrics; see
 * include/sqltde/server/probes.h. */
#include "sqltde/server/probes.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqltde/log.h"
#include "sqltde/server/httpd.h"

#define LOGGER "probes"
#define MAX_CHECKS 64
#define WHY_MAX 256
#define METRICS_BODY_MAX ((size_t)32 * 1024 * 1024)

typedef struct check {
  char name[64];
  sq_probe_fn fn;
  void *ud;
  int last_failed; /* for logging transitions only */
} check;

typedef struct check_set {
  const char *endpoint; /* "healthz" / "readyz" */
  check items[MAX_CHECKS];
  int n;
} check_set;

struct sq_probes {
  pthread_mutex_t mu; /* checks (list and last_failed) */
  check_set health;
  check_set ready;
  sq_metrics *metrics;
  sq_httpd *health_srv;  /* also serves /metrics when both addresses match */
  sq_httpd *metrics_srv; /* NULL when shared or disabled */
  int metrics_on_health; /* health_srv answers /metrics too */
};

/* ---- bind address ------------------------------------------------------ */

sq_code sq_parse_bind_addr(const char *s, char *host, size_t host_len, int *port, int *disabled,
                           sq_err *err) {
  *disabled = 0;
  if(!s || !*s || !strcmp(s, "0")) {
    *disabled = 1;
    return SQ_OK;
  }
  const char *colon = strrchr(s, ':');
  if(!colon)
    return sq_err_set(err, SQ_EINVAL, "invalid bind address \"%s\" (want [host]:port)", s);
  const char *h = s;
  size_t hl = (size_t)(colon - s);
  if(hl && s[0] == '[') {
    if(hl < 2 || s[hl - 1] != ']')
      return sq_err_set(err, SQ_EINVAL, "invalid bind address \"%s\" (want [host]:port)", s);
    h = s + 1;
    hl -= 2;
  } else if(memchr(s, ':', hl)) {
    return sq_err_set(err, SQ_EINVAL, "invalid bind address \"%s\" (IPv6 needs [brackets])", s);
  }
  if(hl >= host_len)
    return sq_err_set(err, SQ_EINVAL, "bind address host too long: \"%s\"", s);
  const char *p = colon + 1;
  if(!*p || strlen(p) > 5 || strspn(p, "0123456789") != strlen(p))
    return sq_err_set(err, SQ_EINVAL, "invalid port in bind address \"%s\"", s);
  long v = strtol(p, NULL, 10);
  if(v > 65535)
    return sq_err_set(err, SQ_EINVAL, "invalid port in bind address \"%s\"", s);
  memcpy(host, h, hl);
  host[hl] = '\0';
  *port = (int)v;
  return SQ_OK;
}

/* ---- checks ------------------------------------------------------------ */

static int always_ok(void *ud, char *why, size_t why_len) {
  (void)ud;
  (void)why;
  (void)why_len;
  return 0;
}

static int valid_check_name(const char *s) {
  if(!s || !*s || strlen(s) >= sizeof(((check *)0)->name))
    return 0;
  for(const char *p = s; *p; p++)
    if(!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
         *p == '_' || *p == '-' || *p == '.'))
      return 0;
  return 1;
}

static sq_code add_check(sq_probes *p, check_set *set, const char *name, sq_probe_fn fn,
                         void *ud) {
  if(!p || !fn || !valid_check_name(name))
    return SQ_EINVAL;
  sq_code rc = SQ_OK;
  pthread_mutex_lock(&p->mu);
  for(int i = 0; i < set->n; i++)
    if(!strcmp(set->items[i].name, name))
      rc = SQ_EINVAL;
  if(!rc && set->n == MAX_CHECKS)
    rc = SQ_ETOOBIG;
  if(!rc) {
    check *c = &set->items[set->n++];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    c->fn = fn;
    c->ud = ud;
  }
  pthread_mutex_unlock(&p->mu);
  return rc;
}

sq_code sq_probes_add_healthz(sq_probes *p, const char *name, sq_probe_fn fn, void *ud) {
  return add_check(p, p ? &p->health : NULL, name, fn, ud);
}

sq_code sq_probes_add_readyz(sq_probes *p, const char *name, sq_probe_fn fn, void *ud) {
  return add_check(p, p ? &p->ready : NULL, name, fn, ud);
}

/* True when the query has the flag (?verbose, ?verbose=1, &verbose...). */
static int query_has(const char *q, const char *key, const char *value) {
  size_t kl = strlen(key);
  for(const char *s = q; s && *s;) {
    const char *e = strchr(s, '&');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    if(n >= kl && !strncmp(s, key, kl) && (n == kl || s[kl] == '=')) {
      if(!value)
        return 1;
      if(n > kl && n - kl - 1 == strlen(value) && !strncmp(s + kl + 1, value, n - kl - 1))
        return 1;
    }
    s = e ? e + 1 : NULL;
  }
  return 0;
}

/* Runs the checks of one endpoint (or the one named by only) and writes
 * the Kubernetes-style answer. Callbacks run without the lock (a check may
 * take a while or register another); the list itself is copied first. */
static void run_checks(sq_probes *p, check_set *set, const char *only, const char *query,
                       sq_httpd_resp *resp) {
  check copy[MAX_CHECKS];
  int n;
  pthread_mutex_lock(&p->mu);
  n = set->n;
  memcpy(copy, set->items, (size_t)n * sizeof copy[0]);
  pthread_mutex_unlock(&p->mu);

  int verbose = query_has(query, "verbose", NULL);
  int ran = 0, failed = 0;
  sq_buf list;
  sq_buf_init(&list, 64 * 1024);
  for(int i = 0; i < n; i++) {
    if(only && strcmp(copy[i].name, only))
      continue;
    if(!only && query_has(query, "exclude", copy[i].name)) {
      sq_buf_addf(&list, "[+]%s excluded: ok\n", copy[i].name);
      continue;
    }
    char why[WHY_MAX] = "";
    int bad = copy[i].fn(copy[i].ud, why, sizeof why) != 0;
    why[sizeof why - 1] = '\0';
    ran++;
    failed += bad;
    sq_buf_addf(&list, bad ? "[-]%s failed: reason withheld\n" : "[+]%s ok\n", copy[i].name);

    /* Log state changes, not every probe. */
    pthread_mutex_lock(&p->mu);
    for(int j = 0; j < set->n; j++)
      if(!strcmp(set->items[j].name, copy[i].name)) {
        if(bad && !set->items[j].last_failed)
          sq_log_kv(SQ_LOG_INFO, LOGGER, "check failed", "endpoint", set->endpoint, "checker",
                    copy[i].name, "reason", why[0] ? why : "(none given)", NULL);
        else if(!bad && set->items[j].last_failed)
          sq_log_kv(SQ_LOG_INFO, LOGGER, "check passes again", "endpoint", set->endpoint,
                    "checker", copy[i].name, NULL);
        set->items[j].last_failed = bad;
      }
    pthread_mutex_unlock(&p->mu);
  }
  snprintf(resp->content_type, sizeof resp->content_type, "text/plain; charset=utf-8");
  if(only && !ran) {
    resp->status = 404;
    sq_buf_addf(&resp->body, "no %s check named \"%s\"\n", set->endpoint, only);
  } else if(failed) {
    resp->status = 500;
    sq_buf_add(&resp->body, list.ptr ? list.ptr : "", list.len);
    sq_buf_addf(&resp->body, "%s check failed\n", set->endpoint);
  } else if(verbose) {
    sq_buf_add(&resp->body, list.ptr ? list.ptr : "", list.len);
    sq_buf_addf(&resp->body, "%s check passed\n", set->endpoint);
  } else {
    sq_buf_adds(&resp->body, "ok");
  }
  sq_buf_free(&list);
}

/* ---- HTTP -------------------------------------------------------------- */

/* "/healthz" -> (set, NULL); "/healthz/ping" -> (set, "ping"). */
static int match_endpoint(const char *path, const char *prefix, const char **only) {
  size_t n = strlen(prefix);
  if(strncmp(path, prefix, n))
    return 0;
  if(path[n] == '\0' || (path[n] == '/' && path[n + 1] == '\0')) {
    *only = NULL;
    return 1;
  }
  if(path[n] == '/') {
    *only = path + n + 1;
    return 1;
  }
  return 0;
}

static void serve(sq_probes *p, int health, int metrics, const sq_httpd_req *req,
                  sq_httpd_resp *resp) {
  snprintf(resp->content_type, sizeof resp->content_type, "text/plain; charset=utf-8");
  const char *only = NULL;
  int is_get = !strcmp(req->method, "GET") || !strcmp(req->method, "HEAD");
  int known = 0;
  check_set *set = NULL;
  if(health && match_endpoint(req->path, "/healthz", &only))
    set = &p->health;
  else if(health && match_endpoint(req->path, "/readyz", &only))
    set = &p->ready;
  if(set || (metrics && !strcmp(req->path, "/metrics")))
    known = 1;
  if(!known) {
    resp->status = 404;
    sq_buf_adds(&resp->body, "404 page not found\n");
    return;
  }
  if(!is_get) {
    resp->status = 405;
    sq_httpd_resp_header(resp, "Allow", "GET, HEAD");
    sq_buf_adds(&resp->body, "method not allowed\n");
    return;
  }
  if(set) {
    run_checks(p, set, only, req->query, resp);
    return;
  }
  resp->body.max = METRICS_BODY_MAX; /* still empty here */
  if(sq_metrics_render(p->metrics, &resp->body)) {
    sq_buf_reset(&resp->body);
    resp->status = 500;
    sq_buf_adds(&resp->body, "metrics do not fit in the response limit\n");
    return;
  }
  snprintf(resp->content_type, sizeof resp->content_type, "%s", SQ_METRICS_CONTENT_TYPE);
}

static void health_handler(void *ud, const sq_httpd_req *req, sq_httpd_resp *resp) {
  sq_probes *p = ud;
  serve(p, 1, p->metrics_on_health, req, resp);
}

static void metrics_handler(void *ud, const sq_httpd_req *req, sq_httpd_resp *resp) {
  serve(ud, 0, 1, req, resp);
}

static sq_code start_one(const char *what, const char *host, int port, sq_httpd_handler h,
                         sq_probes *p, sq_httpd **out, sq_err *err) {
  sq_httpd_opts o = {0};
  o.bind_addr = *host ? host : NULL;
  o.port = port;
  o.max_body = 64 * 1024; /* nothing here takes a body */
  o.threads = 1;
  o.handler = h;
  o.ud = p;
  sq_code rc = sq_httpd_start(&o, out, err);
  if(rc)
    return sq_err_prefix(err, "%s endpoint", what);
  SQ_INFO(LOGGER, "serving %s on %s:%d", what, *host ? host : "*", sq_httpd_port(*out));
  return SQ_OK;
}

sq_code sq_probes_start(const sq_probes_opts *opts, sq_probes **out, sq_err *err) {
  *out = NULL;
  char hhost[256], mhost[256];
  int hport = 0, mport = 0, hoff = 0, moff = 0;
  sq_code rc = sq_parse_bind_addr(opts ? opts->health_addr : NULL, hhost, sizeof hhost, &hport,
                                  &hoff, err);
  if(rc)
    return sq_err_prefix(err, "health probe address");
  rc = sq_parse_bind_addr(opts ? opts->metrics_addr : NULL, mhost, sizeof mhost, &mport, &moff,
                          err);
  if(rc)
    return sq_err_prefix(err, "metrics address");

  sq_probes *p = calloc(1, sizeof *p);
  if(!p)
    return sq_err_set(err, SQ_ENOMEM, "probes: out of memory");
  pthread_mutex_init(&p->mu, NULL);
  p->health.endpoint = "healthz";
  p->ready.endpoint = "readyz";
  p->metrics = opts && opts->metrics ? opts->metrics : sq_metrics_global();
  add_check(p, &p->health, "ping", always_ok, NULL);

  /* One server when both addresses are the same (and not port 0, where
   * two listeners would get two different ports anyway). */
  int shared = !hoff && !moff && hport && hport == mport && !strcmp(hhost, mhost);
  if(!hoff) {
    p->metrics_on_health = shared;
    rc = start_one(shared ? "health probes and metrics" : "health probes", hhost, hport,
                   health_handler, p, &p->health_srv, err);
    if(rc)
      goto fail;
  }
  if(!moff && !shared) {
    rc = start_one("metrics", mhost, mport, metrics_handler, p, &p->metrics_srv, err);
    if(rc)
      goto fail;
  }
  *out = p;
  return SQ_OK;
fail:
  sq_probes_stop(p);
  return rc;
}

int sq_probes_health_port(const sq_probes *p) {
  return p && p->health_srv ? sq_httpd_port(p->health_srv) : 0;
}

int sq_probes_metrics_port(const sq_probes *p) {
  if(!p)
    return 0;
  if(p->metrics_srv)
    return sq_httpd_port(p->metrics_srv);
  return p->metrics_on_health ? sq_httpd_port(p->health_srv) : 0;
}

void sq_probes_stop(sq_probes *p) {
  if(!p)
    return;
  sq_httpd_stop(p->health_srv);
  sq_httpd_stop(p->metrics_srv);
  pthread_mutex_destroy(&p->mu);
  free(p);
}
