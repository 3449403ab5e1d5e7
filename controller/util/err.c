/* err.c — the one error type; see include/sqltde/err.h. */
#include "sqltde/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const names[SQ_CODE_COUNT] = {
    [SQ_OK] = "ok",
    [SQ_ENOMEM] = "out-of-memory",
    [SQ_EINVAL] = "invalid",
    [SQ_EPARSE] = "parse-error",
    [SQ_ETOOBIG] = "too-large",
    [SQ_ETRANSPORT] = "transport-error",
    [SQ_ETIMEOUT] = "timeout",
    [SQ_EHTTP] = "http-error",
    [SQ_EBADREQ] = "bad-request",
    [SQ_EUNAUTH] = "unauthorized",
    [SQ_EFORBIDDEN] = "forbidden",
    [SQ_ENOTFOUND] = "not-found",
    [SQ_ECONFLICT] = "conflict",
    [SQ_EGONE] = "gone",
    [SQ_ETHROTTLED] = "throttled",
    [SQ_ESERVER] = "server-error",
    [SQ_EIO] = "io-error",
    [SQ_ECANCELED] = "canceled",
    [SQ_ESTATE] = "bad-state",
};

const char *sq_code_name(sq_code c) {
  if((unsigned)c >= SQ_CODE_COUNT || !names[c])
    return "unknown";
  return names[c];
}

void sq_err_clear(sq_err *e) {
  if(!e)
    return;
  e->code = SQ_OK;
  e->http_status = 0;
  e->reason[0] = '\0';
  e->message[0] = '\0';
}

sq_code sq_err_set(sq_err *e, sq_code c, const char *fmt, ...) {
  if(!e)
    return c;
  e->code = c;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->message, sizeof e->message, fmt, ap);
  va_end(ap);
  return c;
}

sq_code sq_err_prefix(sq_err *e, const char *fmt, ...) {
  if(!e)
    return SQ_OK;
  char prefix[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  char old[SQ_ERR_MSG_MAX];
  memcpy(old, e->message, sizeof old);
  /* truncation is acceptable: the message is a one-line summary */
  size_t n = strlen(prefix);
  if(n > sizeof e->message - 3)
    n = sizeof e->message - 3;
  memcpy(e->message, prefix, n);
  e->message[n] = ':';
  e->message[n + 1] = ' ';
  size_t room = sizeof e->message - n - 2;
  size_t olen = strnlen(old, room - 1);
  memcpy(e->message + n + 2, old, olen);
  e->message[n + 2 + olen] = '\0';
  return e->code;
}

sq_code sq_code_from_http(long s) {
  if(s >= 200 && s < 300)
    return SQ_OK;
  switch(s) {
  case 400:
  case 422:
    return SQ_EBADREQ;
  case 401:
    return SQ_EUNAUTH;
  case 403:
    return SQ_EFORBIDDEN;
  case 404:
    return SQ_ENOTFOUND;
  case 409:
    return SQ_ECONFLICT;
  case 410:
    return SQ_EGONE;
  case 429:
    return SQ_ETHROTTLED;
  default:
    return s >= 500 ? SQ_ESERVER : SQ_EHTTP;
  }
}

int sq_code_retryable(sq_code c) {
  switch(c) {
  case SQ_ETRANSPORT:
  case SQ_ETIMEOUT:
  case SQ_ETHROTTLED:
  case SQ_ESERVER:
  case SQ_ECONFLICT:
    return 1;
  default:
    return 0;
  }
}
