/* clock.c — time sources; see include/sqltde/clock.h. */
#include "sqltde/clock.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int64_t sq_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sq_wall_s(void) { return (int64_t)time(NULL); }

static int64_t real_mono(void *ud) {
  (void)ud;
  return sq_mono_ms();
}
static int64_t real_wall(void *ud) {
  (void)ud;
  return sq_wall_s();
}

const sq_clock *sq_clock_real(void) {
  static const sq_clock c = {real_mono, real_wall, NULL};
  return &c;
}

void sq_rfc3339(int64_t t, char *out, size_t outlen) {
  time_t tt = (time_t)t;
  struct tm tm;
  gmtime_r(&tt, &tm);
  strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int64_t sq_wall_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void sq_rfc3339_micro(int64_t wall_us, char *out, size_t outlen) {
  int64_t s = wall_us / 1000000, us = wall_us % 1000000;
  if(us < 0) { /* floor division for instants before 1970 */
    us += 1000000;
    s--;
  }
  time_t tt = (time_t)s;
  struct tm tm;
  char base[32];
  gmtime_r(&tt, &tm);
  strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out, outlen, "%s.%06dZ", base, (int)us);
}

int64_t sq_parse_rfc3339(const char *s) {
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  if(!s)
    return -1;
  const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
  if(!p)
    return -1;
  if(*p == '.') {
    p++;
    while(*p >= '0' && *p <= '9')
      p++;
  }
  long off = 0;
  if(*p == 'Z' || *p == 'z') {
    p++;
  } else if(*p == '+' || *p == '-') {
    int hh, mm;
    if(sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2)
      return -1;
    off = (hh * 3600L + mm * 60L) * (*p == '+' ? 1 : -1);
    p += 6;
  } else {
    return -1;
  }
  if(*p)
    return -1;
  return (int64_t)timegm(&tm) - off;
}

void sq_sleep_ms(int64_t ms) {
  if(ms <= 0)
    return;
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  while(nanosleep(&ts, &ts) == -1 && errno == EINTR) {
  }
}

void sq_abstime_in(struct timespec *ts, int64_t ms) {
  clock_gettime(CLOCK_REALTIME, ts);
  if(ms < 0)
    ms = 0;
  ts->tv_sec += (time_t)(ms / 1000);
  ts->tv_nsec += (long)(ms % 1000) * 1000000L;
  if(ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}
