/* pipeline.c — the shared Azure request loop; see include/sqltde/azure/pipeline.h. */
#include "sqltde/azure/pipeline.h"
#include "sqltde/kube/ratelimit.h"

#include <ctype.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "sqltde/jsonx.h"
#include "sqltde/log.h"
#include "sqltde/server/metrics.h"

#define LOGGER "azure"

void sq_azure_pipeline_defaults(sq_azure_pipeline *p) {
  memset(p, 0, sizeof *p);
  p->max_retries = 4;
  p->backoff_base_ms = 1000;
  p->backoff_cap_ms = 30000;
  p->max_retry_after_ms = 5 * 60 * 1000;
  p->max_body = 8u * 1024u * 1024u;
  p->metrics = sq_azure_metrics_prometheus;
}

void sq_azure_metrics_prometheus(void *ud, const sq_azure_metric *m) {
  (void)ud;
  if(!strcmp(m->result, "client_throttled"))
    return;
  sq_metrics_azure_request(m->service, m->operation, m->resource_type, m->status,
                           (double)m->duration_ms / 1000.0);
}

uint32_t sq_azure_random32(void) {
  uint32_t v = 0;
  if(RAND_bytes((unsigned char *)&v, sizeof v) != 1)
    v = (uint32_t)sq_mono_ms() * 2654435761u; /* still spreads workers if RAND fails */
  return v;
}

int64_t sq_azure_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms, uint32_t rnd) {
  if(base_ms <= 0)
    base_ms = 1;
  if(cap_ms < base_ms)
    cap_ms = base_ms;
  return sq_backoff_jitter_ms(base_ms, cap_ms, attempt < 0 ? 0u : (unsigned)attempt, rnd);
}

int64_t sq_azure_parse_retry_after(const char *value, int64_t now_wall_s) {
  if(!value)
    return -1;
  while(*value == ' ' || *value == '\t')
    value++;
  size_t n = strlen(value);
  while(n && (value[n - 1] == ' ' || value[n - 1] == '\t'))
    n--;
  if(!n)
    return -1;
  int digits = 1;
  for(size_t i = 0; i < n; i++)
    if(!isdigit((unsigned char)value[i]))
      digits = 0;
  if(digits) {
    if(n > 9) /* more than ~31 years: treat as "very long", callers cap it */
      return (int64_t)999999999 * 1000;
    return (int64_t)strtol(value, NULL, 10) * 1000;
  }
  char tmp[64];
  if(n >= sizeof tmp)
    return -1;
  memcpy(tmp, value, n);
  tmp[n] = '\0';
  static const char *const fmts[] = {
      "%a, %d %b %Y %H:%M:%S GMT", /* IMF-fixdate (RFC 9110) */
      "%A, %d-%b-%y %H:%M:%S GMT", /* obsolete RFC 850 */
      "%a %b %d %H:%M:%S %Y",      /* obsolete asctime */
  };
  for(size_t i = 0; i < sizeof fmts / sizeof fmts[0]; i++) {
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(tmp, fmts[i], &tm);
    if(end && !*end) {
      int64_t t = (int64_t)timegm(&tm);
      int64_t d = t - now_wall_s;
      return d > 0 ? d * 1000 : 0;
    }
  }
  return -1;
}

static const char *const throttle_codes[] = {
    "TooManyRequests", "SubscriptionTooManyRequests", "SubscriptionTooManyCreateUpdateRequests",
    "Throttled", "RequestThrottled"};

sq_code sq_azure_classify(long status, const char *code) {
  if(code && (status == 503 || status == 400)) {
    for(size_t i = 0; i < sizeof throttle_codes / sizeof throttle_codes[0]; i++)
      if(!strcmp(code, throttle_codes[i]))
        return SQ_ETHROTTLED;
  }
  if(!status)
    return SQ_ETRANSPORT;
  return sq_code_from_http(status);
}

/* Copies s into out as one line: control characters become spaces. */
static void one_line(char *out, size_t outlen, const char *s) {
  size_t j = 0;
  for(size_t i = 0; s[i] && j + 1 < outlen; i++) {
    unsigned char c = (unsigned char)s[i];
    if(c < 0x20 || c == 0x7f) {
      if(j && out[j - 1] != ' ')
        out[j++] = ' ';
    } else {
      out[j++] = (char)c;
    }
  }
  out[j] = '\0';
}

int sq_azure_error_fields(const char *body, size_t len, char *code, size_t code_len, char *msg,
                          size_t msg_len) {
  if(code && code_len)
    code[0] = '\0';
  if(msg && msg_len)
    msg[0] = '\0';
  if(!body || !len)
    return 0;
  json_error_t je;
  json_t *root = json_loadb(body, len, 0, &je);
  if(!json_is_object(root)) {
    json_decref(root);
    return 0;
  }
  int found = 0;
  json_t *e = json_object_get(root, "error");
  if(json_is_object(e)) {
    /* ARM / Key Vault: the innermost code is the most specific */
    const char *c = sq_json_str(e, "code");
    const char *m = sq_json_str(e, "message");
    json_t *inner = json_object_get(e, "innererror");
    for(int depth = 0; json_is_object(inner) && depth < 8; depth++) {
      const char *ic = sq_json_str(inner, "code");
      if(ic && *ic)
        c = ic;
      inner = json_object_get(inner, "innererror");
    }
    if(c && *c) {
      found = 1;
      if(code)
        one_line(code, code_len, c);
    }
    if(m && msg)
      one_line(msg, msg_len, m);
  } else if(json_is_string(e)) {
    /* Entra ID / IMDS: {"error":"invalid_client","error_description":"AADSTS..."} */
    found = 1;
    if(code)
      one_line(code, code_len, json_string_value(e));
    const char *d = sq_json_str(root, "error_description");
    if(d && msg)
      one_line(msg, msg_len, d);
  } else {
    /* some RPs answer {"code":"...","message":"..."} without the envelope */
    const char *c = sq_json_str(root, "code");
    const char *m = sq_json_str(root, "message");
    if(c && *c) {
      found = 1;
      if(code)
        one_line(code, code_len, c);
      if(m && msg)
        one_line(msg, msg_len, m);
    }
  }
  json_decref(root);
  return found;
}

sq_code sq_azure_error_from_resp(const sq_http_resp *resp, const char *what, sq_err *err) {
  char code[64], msg[400];
  int found = sq_azure_error_fields(resp->body.ptr, resp->body.len, code, sizeof code, msg, sizeof msg);
  sq_code c = sq_azure_classify(resp->status, found ? code : NULL);
  if(c == SQ_OK) /* a 2xx the caller could not use: still an error */
    c = SQ_EHTTP;
  if(!err)
    return c;
  if(found)
    sq_err_set(err, c, "%s: HTTP %ld %s: %s", what, resp->status, code, msg[0] ? msg : "(no message)");
  else if(resp->body.len)
    sq_err_set(err, c, "%s: HTTP %ld (body is not an Azure error object)", what, resp->status);
  else
    sq_err_set(err, c, "%s: HTTP %ld (empty body)", what, resp->status);
  err->http_status = resp->status;
  snprintf(err->reason, sizeof err->reason, "%s", found ? code : "");
  return c;
}

sq_code sq_azure_json_body(const sq_http_resp *resp, const char *what, json_t **out, sq_err *err) {
  *out = NULL;
  if(resp->content_type[0] && !strcasestr(resp->content_type, "json"))
    return sq_err_set(err, SQ_EPARSE, "%s: expected a JSON body, got content type \"%s\"", what,
                      resp->content_type);
  if(!resp->body.len)
    return sq_err_set(err, SQ_EPARSE, "%s: empty body where JSON was expected (HTTP %ld)", what,
                      resp->status);
  sq_code rc = sq_json_parse(resp->body.ptr, resp->body.len, what, out, err);
  if(!rc && !json_is_object(*out)) {
    json_decref(*out);
    *out = NULL;
    rc = sq_err_set(err, SQ_EPARSE, "%s: expected a JSON object", what);
  }
  return rc;
}

sq_code sq_azure_json_strcpy(const json_t *obj, const char *path, char *out, size_t outlen,
                             const char *what, sq_err *err) {
  json_t *v = sq_json_path(obj, path);
  if(!v || json_is_null(v)) {
    out[0] = '\0';
    return SQ_OK;
  }
  if(!json_is_string(v))
    return sq_err_set(err, SQ_EPARSE, "%s: field %s is not a string", what, path);
  size_t n = json_string_length(v);
  if(n >= outlen)
    return sq_err_set(err, SQ_ETOOBIG, "%s: field %s is longer than %zu bytes", what, path,
                      outlen - 1);
  memcpy(out, json_string_value(v), n);
  out[n] = '\0';
  if(memchr(out, '\0', n))
    return sq_err_set(err, SQ_EPARSE, "%s: field %s contains a NUL byte", what, path);
  return SQ_OK;
}

/* ---- the loop ---- */

static int default_sleep(const sq_azure_pipeline *p, int64_t ms) {
  /* in slices so a shutdown is noticed within 100 ms */
  while(ms > 0) {
    if(p->cancel && atomic_load(p->cancel))
      return 1;
    int64_t step = ms > 100 ? 100 : ms;
    sq_sleep_ms(step);
    ms -= step;
  }
  return p->cancel && atomic_load(p->cancel);
}

sq_code sq_azure_sleep(const sq_azure_pipeline *p, int64_t ms, sq_err *err) {
  int stop = p->sleep ? p->sleep(p->sleep_ud, ms) : default_sleep(p, ms);
  if(stop)
    return sq_err_set(err, SQ_ECANCELED, "stopped while waiting");
  return SQ_OK;
}

static const char *result_of(sq_code rc, long status) {
  if(rc)
    return "transport_error";
  if(status >= 200 && status < 400)
    return "success";
  if(status == 401)
    return "unauthorized";
  if(status == 429)
    return "throttled";
  if(status >= 500)
    return "server_error";
  return "client_error";
}

static const sq_clock *clock_of(const sq_azure_pipeline *p) {
  return p->clock ? p->clock : sq_clock_real();
}

sq_code sq_azure_exec(const sq_azure_pipeline *p, const sq_azure_exec_info *info,
                      const sq_azure_auth *auth, sq_http_req *req, sq_http_resp *resp,
                      sq_azure_outcome *out, sq_err *err) {
  const sq_clock *clk = clock_of(p);
  int transient = 0, auth_retries = 0;
  sq_azure_outcome local = {0, -1};
  if(!out)
    out = &local;
  out->attempts = 0;
  out->retry_after_ms = -1;
  if(!req->timeout_ms)
    req->timeout_ms = p->timeout_ms;
  if(!req->max_body)
    req->max_body = p->max_body;
  for(;;) {
    if(p->cancel && atomic_load(p->cancel))
      return sq_err_set(err, SQ_ECANCELED, "%s %s: stopped", info->service, info->operation);
    if(auth && auth->prepare) {
      sq_code rc = auth->prepare(auth->ud, req, err);
      if(rc)
        return rc;
    }
    int64_t t0 = clk->mono_ms(clk->ud);
    sq_code rc = sq_http_do(p->http, req, resp, err);
    int64_t dur = clk->mono_ms(clk->ud) - t0;
    out->attempts++;
    if(p->metrics) {
      sq_azure_metric m = {info->service, info->operation,
                           info->resource_type ? info->resource_type : "",
                           req->method ? req->method : "GET", rc ? 0 : resp->status,
                           result_of(rc, resp->status), dur};
      p->metrics(p->metrics_ud, &m);
    }
    if(rc) {
      if((rc == SQ_ETRANSPORT || rc == SQ_ETIMEOUT) && info->idempotent && transient < p->max_retries) {
        int64_t w = sq_azure_backoff_ms(transient, p->backoff_base_ms, p->backoff_cap_ms,
                                        sq_azure_random32());
        SQ_DEBUG(LOGGER, "%s %s: %s; retry %d in %lld ms", info->service, info->operation,
                 sq_code_name(rc), transient + 1, (long long)w);
        transient++;
        sq_code src = sq_azure_sleep(p, w, err);
        if(src)
          return src;
        continue;
      }
      return rc;
    }
    long st = resp->status;
    if(st == 401 && auth && auth->unauthorized && auth_retries < 2 &&
       auth->unauthorized(auth->ud, req, resp)) {
      auth_retries++;
      continue;
    }
    int throttled = st == 429;
    if(!throttled && (st == 503 || st == 400)) {
      char code[64];
      if(sq_azure_error_fields(resp->body.ptr, resp->body.len, code, sizeof code, NULL, 0))
        throttled = sq_azure_classify(st, code) == SQ_ETHROTTLED;
    }
    int transient_status = st >= 500 || (info->retry_404 && (st == 404 || st == 410));
    if(!throttled && !(transient_status && info->idempotent))
      return SQ_OK;
    int64_t ra = sq_azure_parse_retry_after(resp->retry_after[0] ? resp->retry_after : NULL,
                                            clk->wall_s(clk->ud));
    if(ra >= 0)
      out->retry_after_ms = ra;
    if(transient >= p->max_retries)
      return SQ_OK; /* the last answer stands; the caller maps it */
    int64_t w;
    if(ra > p->max_retry_after_ms) {
      sq_err_set(err, SQ_ETHROTTLED, "%s %s: HTTP %ld, Retry-After %lld s exceeds the wait budget",
                 info->service, info->operation, st, (long long)(ra / 1000));
      if(err) {
        err->http_status = st;
        snprintf(err->reason, sizeof err->reason, "RetryAfterTooLong");
      }
      return SQ_ETHROTTLED;
    }
    if(ra >= 0)
      w = ra; /* exactly what the server asked for */
    else
      w = sq_azure_backoff_ms(transient, p->backoff_base_ms, p->backoff_cap_ms, sq_azure_random32());
    SQ_DEBUG(LOGGER, "%s %s: HTTP %ld; retry %d in %lld ms%s", info->service, info->operation, st,
             transient + 1, (long long)w, ra >= 0 ? " (Retry-After)" : "");
    transient++;
    sq_code src = sq_azure_sleep(p, w, err);
    if(src)
      return src;
  }
}
