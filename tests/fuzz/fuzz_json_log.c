/* fuzz_json_log.c — libFuzzer target: arbitrary bytes through the project's
 * JSON parse + path helpers and base64 decoding, which sit in front of every
 * peer's input. Any crash, leak or UB is a finding. */
#include <stddef.h>
#include <stdint.h>

#include "sqltde/codec.h"
#include "sqltde/jsonx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  json_t *v = NULL;
  if(sq_json_parse((const char *)data, size, "fuzz", &v, NULL) == SQ_OK) {
    (void)sq_json_str(v, "metadata.name");
    (void)sq_json_int(v, "metadata.generation", 0);
    (void)sq_json_path(v, "status.conditions");
    char *s = sq_json_dump(v);
    free(s);
    json_decref(v);
  }
  sq_buf b;
  sq_buf_init(&b, 1 << 16);
  (void)sq_b64_decode((const char *)data, size, &b);
  sq_buf_free(&b);
  return 0;
}
