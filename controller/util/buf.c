/* buf.c — bounded buffers and secret wiping; see include/sqltde/buf.h. */
#include "sqltde/buf.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sq_wipe(void *p, size_t n) {
  if(p && n)
    OPENSSL_cleanse(p, n);
}

void sq_free_secret(char *s) {
  if(!s)
    return;
  sq_wipe(s, strlen(s));
  free(s);
}

void sq_buf_init(sq_buf *b, size_t max) {
  b->ptr = NULL;
  b->len = 0;
  b->cap = 0;
  b->max = max;
}

/* Grows so that `need` content bytes plus the NUL fit. Old memory is wiped
 * before release because buffers carry tokens. */
static sq_code grow(sq_buf *b, size_t need) {
  if(need + 1 <= b->cap)
    return SQ_OK;
  size_t cap = b->cap ? b->cap : 256;
  while(cap < need + 1)
    cap = cap > ((size_t)-1) / 2 ? need + 1 : cap * 2;
  if(cap > b->max + 1)
    cap = b->max + 1;
  char *p = malloc(cap);
  if(!p)
    return SQ_ENOMEM;
  if(b->ptr) {
    memcpy(p, b->ptr, b->len + 1);
    sq_wipe(b->ptr, b->cap);
    free(b->ptr);
  } else {
    p[0] = '\0';
  }
  b->ptr = p;
  b->cap = cap;
  return SQ_OK;
}

sq_code sq_buf_add(sq_buf *b, const void *data, size_t n) {
  if(n > b->max || b->len > b->max - n)
    return SQ_ETOOBIG;
  sq_code rc = grow(b, b->len + n);
  if(rc)
    return rc;
  if(n)
    memcpy(b->ptr + b->len, data, n);
  b->len += n;
  b->ptr[b->len] = '\0';
  return SQ_OK;
}

sq_code sq_buf_adds(sq_buf *b, const char *s) { return sq_buf_add(b, s, strlen(s)); }

sq_code sq_buf_addf(sq_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if(n < 0)
    return SQ_EINVAL;
  if((size_t)n > b->max || b->len > b->max - (size_t)n)
    return SQ_ETOOBIG;
  sq_code rc = grow(b, b->len + (size_t)n);
  if(rc)
    return rc;
  va_start(ap, fmt);
  vsnprintf(b->ptr + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return SQ_OK;
}

void sq_buf_reset(sq_buf *b) {
  if(b->ptr) {
    sq_wipe(b->ptr, b->len);
    b->ptr[0] = '\0';
  }
  b->len = 0;
}

char *sq_buf_detach(sq_buf *b) {
  char *p = b->ptr;
  if(!p) {
    p = calloc(1, 1);
  }
  b->ptr = NULL;
  b->len = b->cap = 0;
  return p;
}

void sq_buf_free(sq_buf *b) {
  free(b->ptr);
  b->ptr = NULL;
  b->len = b->cap = 0;
}

void sq_buf_free_wipe(sq_buf *b) {
  if(b->ptr)
    sq_wipe(b->ptr, b->cap);
  sq_buf_free(b);
}

sq_code sq_buf_read_file(sq_buf *b, const char *path, sq_err *err) {
  FILE *f = fopen(path, "rb");
  if(!f)
    return sq_err_set(err, SQ_EIO, "cannot open %s: %s", path, strerror(errno));
  char chunk[4096];
  size_t n;
  sq_code rc = SQ_OK;
  while((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    rc = sq_buf_add(b, chunk, n);
    if(rc) {
      sq_err_set(err, rc, "%s is larger than %zu bytes", path, b->max);
      break;
    }
  }
  if(!rc && ferror(f))
    rc = sq_err_set(err, SQ_EIO, "cannot read %s", path);
  sq_wipe(chunk, sizeof chunk);
  fclose(f);
  return rc;
}

char *sq_memdup_str(const void *data, size_t len) {
  char *p = malloc(len + 1);
  if(!p)
    return NULL;
  if(len)
    memcpy(p, data, len);
  p[len] = '\0';
  return p;
}
