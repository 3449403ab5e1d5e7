/* client.c — libcurl-based HTTP client; see include/sqltde/http.h. */
#include "sqltde/http.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_CONNECT_MS 10000L
#define DEFAULT_TIMEOUT_MS 60000L
#define DEFAULT_MAX_BODY (32u * 1024u * 1024u)

struct sq_http {
  char *ca_file, *ca_pem, *cert_file, *key_file, *cert_pem, *key_pem, *user_agent;
  long connect_timeout_ms, timeout_ms;
  size_t max_body;
  CURLSH *share;
  pthread_mutex_t locks[CURL_LOCK_DATA_LAST];
};

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static void global_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }
void sq_http_global_init(void) { pthread_once(&g_once, global_init_once); }

static void share_lock(CURL *c, curl_lock_data d, curl_lock_access a, void *ud) {
  (void)c;
  (void)a;
  sq_http *h = ud;
  pthread_mutex_lock(&h->locks[d]);
}
static void share_unlock(CURL *c, curl_lock_data d, void *ud) {
  (void)c;
  sq_http *h = ud;
  pthread_mutex_unlock(&h->locks[d]);
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

sq_code sq_http_new(const sq_http_opts *o, sq_http **out, sq_err *err) {
  sq_http_global_init();
  *out = NULL;
  sq_http *h = calloc(1, sizeof *h);
  if(!h)
    return sq_err_set(err, SQ_ENOMEM, "out of memory creating HTTP client");
  h->ca_file = dup_or_null(o ? o->ca_file : NULL);
  h->ca_pem = dup_or_null(o ? o->ca_pem : NULL);
  h->cert_file = dup_or_null(o ? o->cert_file : NULL);
  h->key_file = dup_or_null(o ? o->key_file : NULL);
  h->cert_pem = dup_or_null(o ? o->cert_pem : NULL);
  h->key_pem = dup_or_null(o ? o->key_pem : NULL);
  h->user_agent = strdup(o && o->user_agent ? o->user_agent : "sqltde-operator");
  h->connect_timeout_ms = o && o->connect_timeout_ms ? o->connect_timeout_ms : DEFAULT_CONNECT_MS;
  h->timeout_ms = o && o->timeout_ms ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
  h->max_body = o && o->max_body ? o->max_body : DEFAULT_MAX_BODY;
  for(int i = 0; i < CURL_LOCK_DATA_LAST; i++)
    pthread_mutex_init(&h->locks[i], NULL);
  h->share = curl_share_init();
  if(!h->share || !h->user_agent) {
    sq_http_free(h);
    return sq_err_set(err, SQ_ENOMEM, "out of memory creating HTTP client");
  }
  curl_share_setopt(h->share, CURLSHOPT_LOCKFUNC, share_lock);
  curl_share_setopt(h->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
  curl_share_setopt(h->share, CURLSHOPT_USERDATA, h);
  curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
  curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  *out = h;
  return SQ_OK;
}

void sq_http_free(sq_http *h) {
  if(!h)
    return;
  if(h->share)
    curl_share_cleanup(h->share);
  for(int i = 0; i < CURL_LOCK_DATA_LAST; i++)
    pthread_mutex_destroy(&h->locks[i]);
  free(h->ca_file);
  sq_free_secret(h->ca_pem);
  free(h->cert_file);
  free(h->key_file);
  sq_free_secret(h->cert_pem);
  sq_free_secret(h->key_pem);
  free(h->user_agent);
  free(h);
}

void sq_http_resp_init(sq_http_resp *r) {
  memset(r, 0, sizeof *r);
  sq_buf_init(&r->body, DEFAULT_MAX_BODY);
}

void sq_http_resp_free(sq_http_resp *r) {
  sq_buf_free_wipe(&r->body);
  r->status = 0;
}

static void resp_reset(sq_http_resp *r, size_t max_body) {
  sq_buf_free_wipe(&r->body);
  memset(r, 0, sizeof *r);
  sq_buf_init(&r->body, max_body);
}

/* ---- per-transfer state ---- */

typedef struct xfer {
  sq_http_resp *resp;
  const atomic_int *cancel;
  /* streaming */
  sq_http_line_fn line_fn;
  void *ud;
  sq_buf line;
  int stopped;   /* callback asked to stop */
  int too_big;   /* a bound was hit */
  int streaming; /* 2xx status seen with a line callback */
} xfer;

static void copy_header_value(char *dst, size_t dstlen, const char *v, size_t n) {
  while(n && (*v == ' ' || *v == '\t')) {
    v++;
    n--;
  }
  while(n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
    n--;
  if(n >= dstlen)
    n = dstlen - 1; /* over-long header values are truncated, never overflow */
  memcpy(dst, v, n);
  dst[n] = '\0';
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *ud) {
  xfer *x = ud;
  size_t n = size * nitems;
  const char *colon = memchr(buf, ':', n);
  if(!colon)
    return n;
  size_t nlen = (size_t)(colon - buf);
  const char *v = colon + 1;
  size_t vlen = n - nlen - 1;
  sq_http_resp *r = x->resp;
#define HDR(name, field)                                                   \
  if(nlen == sizeof(name) - 1 && !strncasecmp(buf, name, nlen)) {          \
    copy_header_value(r->field, sizeof r->field, v, vlen);                 \
    return n;                                                              \
  }
  HDR("content-type", content_type)
  HDR("retry-after", retry_after)
  HDR("location", location)
  HDR("azure-asyncoperation", azure_async_operation)
  HDR("www-authenticate", www_authenticate)
  HDR("x-ms-request-id", request_id)
  if(!r->request_id[0]) {
    HDR("x-request-id", request_id)
  }
#undef HDR
  return n;
}

/* Emits every complete line held in x->line. */
static int flush_lines(xfer *x) {
  size_t start = 0;
  for(size_t i = 0; i < x->line.len; i++) {
    if(x->line.ptr[i] == '\n') {
      size_t len = i - start;
      if(len && x->line.ptr[start + len - 1] == '\r')
        len--;
      if(len && x->line_fn(x->ud, x->line.ptr + start, len)) {
        x->stopped = 1;
        return -1;
      }
      start = i + 1;
    }
  }
  if(start) {
    memmove(x->line.ptr, x->line.ptr + start, x->line.len - start);
    x->line.len -= start;
    x->line.ptr[x->line.len] = '\0';
  }
  return 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud) {
  xfer *x = ud;
  size_t n = size * nmemb;
  if(x->line_fn && !x->resp->status) {
    /* status is filled after headers; fetch it lazily below */
  }
  if(x->streaming) {
    if(sq_buf_add(&x->line, data, n)) {
      x->too_big = 1;
      return 0;
    }
    if(flush_lines(x))
      return 0;
    return n;
  }
  if(sq_buf_add(&x->resp->body, data, n)) {
    x->too_big = 1;
    return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
  }
  return n;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
  (void)dt;
  (void)dn;
  (void)ut;
  (void)un;
  xfer *x = ud;
  return x->cancel && atomic_load(x->cancel) ? 1 : 0;
}

/* Decides streaming mode once the status line is known. libcurl calls the
 * header callback for the status line too, so check it there. */
static size_t on_header_stream(char *buf, size_t size, size_t nitems, void *ud) {
  xfer *x = ud;
  size_t n = size * nitems;
  if(n > 5 && !strncmp(buf, "HTTP/", 5)) {
    const char *sp = memchr(buf, ' ', n);
    long st = sp ? strtol(sp + 1, NULL, 10) : 0;
    x->resp->status = st;
    x->streaming = x->line_fn && st >= 200 && st < 300;
    return n;
  }
  return on_header(buf, size, nitems, ud);
}

static sq_code perform(sq_http *h, const sq_http_req *req, xfer *x, sq_err *err) {
  CURL *c = curl_easy_init();
  if(!c)
    return sq_err_set(err, SQ_ENOMEM, "cannot create HTTP handle");
  struct curl_slist *hdrs = NULL;
  char line[8192];
  sq_code rc = SQ_OK;

  curl_easy_setopt(c, CURLOPT_URL, req->url);
  curl_easy_setopt(c, CURLOPT_SHARE, h->share);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, h->user_agent);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https,http");
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, h->connect_timeout_ms);
  long to = req->timeout_ms ? req->timeout_ms : h->timeout_ms;
  if(to > 0)
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, to);
  if(h->ca_file)
    curl_easy_setopt(c, CURLOPT_CAINFO, h->ca_file);
  if(h->ca_pem) {
    struct curl_blob b = {h->ca_pem, strlen(h->ca_pem), CURL_BLOB_NOCOPY};
    curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &b);
  }
  if(h->cert_file)
    curl_easy_setopt(c, CURLOPT_SSLCERT, h->cert_file);
  if(h->key_file)
    curl_easy_setopt(c, CURLOPT_SSLKEY, h->key_file);
  if(h->cert_pem) {
    struct curl_blob b = {h->cert_pem, strlen(h->cert_pem), CURL_BLOB_NOCOPY};
    curl_easy_setopt(c, CURLOPT_SSLCERT_BLOB, &b);
    curl_easy_setopt(c, CURLOPT_SSLCERTTYPE, "PEM");
  }
  if(h->key_pem) {
    struct curl_blob b = {h->key_pem, strlen(h->key_pem), CURL_BLOB_NOCOPY};
    curl_easy_setopt(c, CURLOPT_SSLKEY_BLOB, &b);
    curl_easy_setopt(c, CURLOPT_SSLKEYTYPE, "PEM");
  }

  const char *method = req->method ? req->method : "GET";
  if(!strcmp(method, "GET")) {
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  } else if(!strcmp(method, "HEAD")) {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body ? req->body : "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(req->body ? req->body_len : 0));
  }

  snprintf(line, sizeof line, "Accept: %s", req->accept ? req->accept : "application/json");
  hdrs = curl_slist_append(hdrs, line);
  if(req->content_type) {
    snprintf(line, sizeof line, "Content-Type: %s", req->content_type);
    hdrs = curl_slist_append(hdrs, line);
  }
  hdrs = curl_slist_append(hdrs, "Expect:"); /* no 100-continue round trip */
  if(req->bearer) {
    size_t need = strlen(req->bearer) + 32;
    char *auth = malloc(need);
    if(!auth) {
      rc = sq_err_set(err, SQ_ENOMEM, "out of memory");
      goto out;
    }
    snprintf(auth, need, "Authorization: Bearer %s", req->bearer);
    hdrs = curl_slist_append(hdrs, auth);
    sq_free_secret(auth);
  }
  for(const char *const *p = req->headers; p && *p; p++)
    hdrs = curl_slist_append(hdrs, *p);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);

  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header_stream);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
  if(req->cancel) {
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, x);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  }

  CURLcode cc = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  x->resp->status = status;
  if(cc == CURLE_OK) {
    rc = SQ_OK;
  } else if(x->too_big) {
    rc = sq_err_set(err, SQ_ETOOBIG, "%s %s: response exceeds the size limit", method, req->url);
  } else if(x->stopped || cc == CURLE_ABORTED_BY_CALLBACK) {
    rc = sq_err_set(err, SQ_ECANCELED, "%s %s: stopped", method, req->url);
  } else if(cc == CURLE_OPERATION_TIMEDOUT) {
    rc = sq_err_set(err, SQ_ETIMEOUT, "%s %s: timed out", method, req->url);
  } else {
    rc = sq_err_set(err, SQ_ETRANSPORT, "%s %s: %s", method, req->url, curl_easy_strerror(cc));
  }
out:
  /* the list holds a copy of "Authorization: Bearer ..." */
  for(struct curl_slist *l = hdrs; l; l = l->next)
    if(l->data)
      sq_wipe(l->data, strlen(l->data));
  curl_slist_free_all(hdrs);
  curl_easy_cleanup(c);
  return rc;
}

sq_code sq_http_do(sq_http *h, const sq_http_req *req, sq_http_resp *resp, sq_err *err) {
  resp_reset(resp, req->max_body ? req->max_body : h->max_body);
  xfer x;
  memset(&x, 0, sizeof x);
  x.resp = resp;
  x.cancel = req->cancel;
  return perform(h, req, &x, err);
}

sq_code sq_http_stream(sq_http *h, const sq_http_req *req, size_t max_line, sq_http_line_fn fn,
                       void *ud, sq_http_resp *resp, sq_err *err) {
  resp_reset(resp, req->max_body ? req->max_body : h->max_body);
  xfer x;
  memset(&x, 0, sizeof x);
  x.resp = resp;
  x.cancel = req->cancel;
  x.line_fn = fn;
  x.ud = ud;
  sq_buf_init(&x.line, max_line);
  sq_code rc = perform(h, req, &x, err);
  if(rc == SQ_ETOOBIG && x.streaming)
    sq_err_set(err, SQ_ETOOBIG, "stream %s: a line exceeds %zu bytes", req->url, max_line);
  if(!rc && x.streaming && x.line.len) {
    /* a final line without '\n' */
    if(fn(ud, x.line.ptr, x.line.len))
      rc = SQ_ECANCELED;
  }
  sq_buf_free_wipe(&x.line);
  return rc;
}

sq_code sq_url_escape(const char *s, sq_buf *out) {
  static const char hex[] = "0123456789ABCDEF";
  for(const unsigned char *p = (const unsigned char *)s; *p; p++) {
    sq_code rc;
    if((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
       *p == '-' || *p == '_' || *p == '.' || *p == '~') {
      rc = sq_buf_add(out, p, 1);
    } else {
      char enc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
      rc = sq_buf_add(out, enc, 3);
    }
    if(rc)
      return rc;
  }
  return SQ_OK;
}
