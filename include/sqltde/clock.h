/* clock.h — time sources. Code that decides with time takes an sq_clock so
 * tests can drive it; production passes sq_clock_real(). */
#ifndef SQLTDE_CLOCK_H
#define SQLTDE_CLOCK_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef struct sq_clock {
  /* monotonic milliseconds; only differences are meaningful */
  int64_t (*mono_ms)(void *ud);
  /* wall clock, seconds since the epoch */
  int64_t (*wall_s)(void *ud);
  void *ud;
} sq_clock;

/* The process-wide real clock (CLOCK_MONOTONIC / CLOCK_REALTIME). */
const sq_clock *sq_clock_real(void);

int64_t sq_mono_ms(void);
int64_t sq_wall_s(void);

/* Formats t as RFC 3339 UTC ("2026-11-23T11:36:13Z") into out (>= 21 bytes). */
void sq_rfc3339(int64_t t, char *out, size_t outlen);

/* Wall clock in microseconds since the epoch (CLOCK_REALTIME). */
int64_t sq_wall_us(void);

/* Formats wall_us as a Kubernetes MicroTime ("2026-11-23T11:36:13.123456Z",
 * always six fraction digits, as the apiserver requires) into out (>= 28 bytes). */
void sq_rfc3339_micro(int64_t wall_us, char *out, size_t outlen);

/* Parses RFC 3339 UTC with optional fractional seconds; -1 if malformed. */
int64_t sq_parse_rfc3339(const char *s);

/* Sleeps ms milliseconds (restarting on EINTR). */
void sq_sleep_ms(int64_t ms);

/* Fills ts with the CLOCK_REALTIME instant ms milliseconds from now, for
 * pthread_cond_timedwait. */
void sq_abstime_in(struct timespec *ts, int64_t ms);

#endif
