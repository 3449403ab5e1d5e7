/* ratelimit.c — backoff and token bucket; see include/sqltde/kube/ratelimit.h. */
#include "sqltde/kube/ratelimit.h"

#include <math.h>

int64_t sq_backoff_ms(int64_t base_ms, int64_t max_ms, unsigned failures) {
  if(base_ms <= 0)
    return 0;
  if(max_ms < base_ms)
    return max_ms < 0 ? 0 : max_ms;
  /* base * 2^f > max  <=>  base > max >> f; checking before shifting keeps
   * the arithmetic in range for any failure count. */
  if(failures >= 62 || base_ms > (max_ms >> failures))
    return max_ms;
  return base_ms << failures;
}

int64_t sq_backoff_jitter_ms(int64_t base_ms, int64_t max_ms, unsigned failures, uint32_t rnd) {
  int64_t d = sq_backoff_ms(base_ms, max_ms, failures);
  int64_t half = d / 2;
  return half + (int64_t)(rnd % (uint64_t)(d - half + 1));
}

void sq_bucket_init(sq_bucket *b, double qps, int burst, int64_t now_ms) {
  b->qps = qps > 0 ? qps : SQ_BUCKET_QPS;
  b->burst = burst >= 1 ? (double)burst : (double)SQ_BUCKET_BURST;
  b->tokens = b->burst;
  b->last_ms = now_ms;
}

int64_t sq_bucket_reserve(sq_bucket *b, int64_t now_ms) {
  if(now_ms > b->last_ms) {
    b->tokens += (double)(now_ms - b->last_ms) * b->qps / 1000.0;
    if(b->tokens > b->burst)
      b->tokens = b->burst;
    b->last_ms = now_ms;
  }
  b->tokens -= 1.0;
  if(b->tokens >= 0)
    return 0;
  /* the epsilon absorbs float noise so exactly n tokens short at 10 qps is
   * n*100 ms, not n*100+1 */
  double ms = -b->tokens * 1000.0 / b->qps;
  return (int64_t)ceil(ms - 1e-6);
}
