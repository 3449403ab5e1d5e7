/* log.c — JSON line logger; see include/sqltde/log.h. */
#include "sqltde/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sqltde/buf.h"

static atomic_int g_level = SQ_LOG_INFO;
static _Thread_local char t_reconcile_id[64];

void sq_log_set_level(sq_log_level lvl) { atomic_store(&g_level, (int)lvl); }
sq_log_level sq_log_get_level(void) { return (sq_log_level)atomic_load(&g_level); }

int sq_log_parse_level(const char *s, sq_log_level *out) {
  static const struct {
    const char *name;
    sq_log_level lvl;
  } names[] = {{"debug", SQ_LOG_DEBUG}, {"info", SQ_LOG_INFO}, {"warn", SQ_LOG_WARN},
               {"error", SQ_LOG_ERROR}};
  if(!s || !*s)
    return -1;
  for(size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if(!strcmp(s, names[i].name)) {
      *out = names[i].lvl;
      return 0;
    }
  char *end;
  long v = strtol(s, &end, 10);
  if(*end)
    return -1;
  *out = v >= 1 ? SQ_LOG_DEBUG : v == 0 ? SQ_LOG_INFO : v == -1 ? SQ_LOG_WARN : SQ_LOG_ERROR;
  return 0;
}

void sq_log_set_reconcile_id(const char *id) {
  if(!id)
    t_reconcile_id[0] = '\0';
  else
    snprintf(t_reconcile_id, sizeof t_reconcile_id, "%s", id);
}

/* Appends s as a JSON string literal. Control characters are escaped so a
 * hostile message cannot break the one-object-per-line framing. */
static void add_json_str(sq_buf *b, const char *s) {
  sq_buf_add(b, "\"", 1);
  for(const unsigned char *p = (const unsigned char *)s; *p; p++) {
    switch(*p) {
    case '"':
      sq_buf_add(b, "\\\"", 2);
      break;
    case '\\':
      sq_buf_add(b, "\\\\", 2);
      break;
    case '\n':
      sq_buf_add(b, "\\n", 2);
      break;
    case '\r':
      sq_buf_add(b, "\\r", 2);
      break;
    case '\t':
      sq_buf_add(b, "\\t", 2);
      break;
    default:
      if(*p < 0x20)
        sq_buf_addf(b, "\\u%04x", *p);
      else
        sq_buf_add(b, p, 1);
    }
  }
  sq_buf_add(b, "\"", 1);
}

static const char *level_name(sq_log_level l) {
  switch(l) {
  case SQ_LOG_DEBUG:
    return "debug";
  case SQ_LOG_INFO:
    return "info";
  case SQ_LOG_WARN:
    return "warn";
  default:
    return "error";
  }
}

static void emit(sq_log_level lvl, const char *logger, const char *msg, va_list *kv) {
  sq_buf b;
  sq_buf_init(&b, 16384);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char tbuf[40];
  strftime(tbuf, sizeof tbuf, "%Y-%m-%dT%H:%M:%S", &tm);
  sq_buf_addf(&b, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"logger\":", tbuf,
              ts.tv_nsec / 1000000, level_name(lvl));
  add_json_str(&b, logger ? logger : "");
  sq_buf_adds(&b, ",\"msg\":");
  add_json_str(&b, msg);
  if(t_reconcile_id[0]) {
    sq_buf_adds(&b, ",\"reconcileID\":");
    add_json_str(&b, t_reconcile_id);
  }
  if(kv) {
    const char *k;
    while((k = va_arg(*kv, const char *)) != NULL) {
      const char *v = va_arg(*kv, const char *);
      sq_buf_adds(&b, ",");
      add_json_str(&b, k);
      sq_buf_adds(&b, ":");
      add_json_str(&b, v ? v : "");
    }
  }
  sq_buf_adds(&b, "}\n");
  if(b.ptr) {
    /* one write(2) per line keeps lines whole across threads */
    ssize_t w = write(STDERR_FILENO, b.ptr, b.len);
    (void)w;
  }
  sq_buf_free(&b);
}

void sq_logf(sq_log_level lvl, const char *logger, const char *fmt, ...) {
  if((int)lvl < atomic_load(&g_level))
    return;
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  emit(lvl, logger, msg, NULL);
}

void sq_log_kv(sq_log_level lvl, const char *logger, const char *msg, ...) {
  if((int)lvl < atomic_load(&g_level))
    return;
  va_list ap;
  va_start(ap, msg);
  emit(lvl, logger, msg, &ap);
  va_end(ap);
}
