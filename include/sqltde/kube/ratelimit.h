/* ratelimit.h — the two retry-delay policies of the work queue, as pure
 * functions of (state, now): per-item exponential backoff and an overall
 * token bucket. Defaults are controller-runtime's (client-go's
 * DefaultTypedControllerRateLimiter): 5 ms * 2^failures capped at 1000 s,
 * combined by max with a 10 qps / burst 100 bucket. No locking, no clock
 * reads: the caller passes now and serialises access. */
#ifndef SQLTDE_KUBE_RATELIMIT_H
#define SQLTDE_KUBE_RATELIMIT_H

#include <stdint.h>

/* 5 ms is short enough that a transient conflict retries almost at once, and
 * doubling reaches the 1000 s cap after 18 failures, so a persistently broken
 * object costs one attempt every ~17 minutes instead of a hot loop. */
#define SQ_BACKOFF_BASE_MS 5
#define SQ_BACKOFF_MAX_MS (1000 * 1000)

/* The bucket protects the apiserver and Azure from a burst of many distinct
 * keys failing at once (the per-item backoff alone would retry them all
 * together after 5 ms). */
#define SQ_BUCKET_QPS 10.0
#define SQ_BUCKET_BURST 100

/* base_ms * 2^failures, saturating at max_ms (never overflows). failures is
 * the number of failures before this one: 0 gives base_ms. */
int64_t sq_backoff_ms(int64_t base_ms, int64_t max_ms, unsigned failures);

/* The same with "equal jitter": half of the delay fixed, half drawn from rnd,
 * so many clients retrying together spread out but none comes back at once.
 * The one jittered backoff of the project (informers, Azure pipeline). */
int64_t sq_backoff_jitter_ms(int64_t base_ms, int64_t max_ms, unsigned failures, uint32_t rnd);

/* A token bucket with golang.org/x/time/rate's Reserve semantics: every
 * reservation succeeds and takes one token; when the bucket is empty the
 * token is borrowed from the future and the reservation says how long to
 * wait. Plain value, no allocation. */
typedef struct sq_bucket {
  double qps;      /* refill rate, tokens per second (> 0) */
  double burst;    /* capacity */
  double tokens;   /* may go negative: tokens already promised */
  int64_t last_ms; /* time of the last refill */
} sq_bucket;

/* Starts full at now_ms. qps <= 0 or burst < 1 is clamped to the defaults. */
void sq_bucket_init(sq_bucket *b, double qps, int burst, int64_t now_ms);

/* Takes one token at now_ms and returns the delay in ms (>= 0, rounded up)
 * before acting on it. A clock that goes backwards refills nothing. */
int64_t sq_bucket_reserve(sq_bucket *b, int64_t now_ms);

#endif
