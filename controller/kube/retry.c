/* retry.c — read-modify-write retried on conflict; see sq_kube_update_retry
 * in include/sqltde/kube/client.h. */
#include <openssl/rand.h>

#include "sqltde/clock.h"
#include "sqltde/kube/client.h"

/* client-go's DefaultRetry: 5 steps from 10 ms with jitter. Conflicts clear
 * as soon as we re-read, so waiting long buys nothing. */
#define RETRY_DEFAULT_ATTEMPTS 5
#define RETRY_BASE_MS 10

sq_code sq_kube_update_retry(sq_kube *k, const sq_kube_gvr *r, const char *ns, const char *name, int status,
                             int attempts, sq_kube_mutate_fn fn, void *ud, json_t **out, sq_err *err) {
  if(attempts <= 0)
    attempts = RETRY_DEFAULT_ATTEMPTS;
  if(out)
    *out = NULL;
  sq_code rc = SQ_OK;
  for(int i = 0; i < attempts; i++) {
    json_t *obj = NULL;
    rc = sq_kube_get(k, r, ns, name, &obj, err);
    if(rc)
      return rc;
    rc = fn(ud, obj, err);
    if(rc == SQ_ESTATE) {
      if(out)
        *out = obj;
      else
        json_decref(obj);
      return SQ_OK;
    }
    if(rc) {
      json_decref(obj);
      return rc;
    }
    json_t *written = NULL;
    rc = status ? sq_kube_update_status(k, r, ns, obj, &written, err) : sq_kube_update(k, r, ns, obj, &written, err);
    json_decref(obj);
    if(rc != SQ_ECONFLICT) {
      if(out && !rc)
        *out = written;
      else
        json_decref(written);
      return rc;
    }
    unsigned char j = 0;
    RAND_bytes(&j, 1);
    sq_sleep_ms(RETRY_BASE_MS * (1 << i) + (j % 10));
  }
  return rc; /* still conflicting after every attempt: SQ_ECONFLICT */
}
