/* jsonx.c — JSON helpers; see include/sqltde/jsonx.h. */
#include "sqltde/jsonx.h"

#include <string.h>

sq_code sq_json_parse(const char *data, size_t len, const char *what, json_t **out, sq_err *err) {
  json_error_t je;
  *out = NULL;
  if(!data || !len)
    return sq_err_set(err, SQ_EPARSE, "%s: empty body where JSON was expected", what);
  /* JSON_REJECT_DUPLICATES: a peer sending the same key twice is malformed */
  json_t *v = json_loadb(data, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
  if(!v)
    return sq_err_set(err, SQ_EPARSE, "%s: malformed JSON at line %d column %d: %s", what,
                      je.line, je.column, je.text);
  *out = v;
  return SQ_OK;
}

json_t *sq_json_path(const json_t *root, const char *path) {
  const json_t *cur = root;
  const char *p = path;
  char seg[256];
  while(cur && *p) {
    const char *dot = strchr(p, '.');
    size_t n = dot ? (size_t)(dot - p) : strlen(p);
    if(n >= sizeof seg || !json_is_object(cur))
      return NULL;
    memcpy(seg, p, n);
    seg[n] = '\0';
    cur = json_object_get(cur, seg);
    p = dot ? dot + 1 : p + n;
  }
  return (json_t *)cur;
}

const char *sq_json_str(const json_t *root, const char *path) {
  json_t *v = sq_json_path(root, path);
  return json_is_string(v) ? json_string_value(v) : NULL;
}

int64_t sq_json_int(const json_t *root, const char *path, int64_t def) {
  json_t *v = sq_json_path(root, path);
  return json_is_integer(v) ? (int64_t)json_integer_value(v) : def;
}

int64_t sq_json_number_i64(const json_t *v, int64_t def) {
  if(json_is_integer(v))
    return (int64_t)json_integer_value(v);
  if(!json_is_real(v))
    return def;
  double d = json_real_value(v);
  if(d != d)
    return def;
  /* 2^63 is exactly representable; anything at or beyond it saturates. */
  if(d >= 9223372036854775808.0)
    return INT64_MAX;
  if(d <= -9223372036854775808.0)
    return INT64_MIN;
  return (int64_t)d;
}

int sq_json_bool(const json_t *root, const char *path, int def) {
  json_t *v = sq_json_path(root, path);
  return json_is_boolean(v) ? json_is_true(v) : def;
}

void sq_json_put(int *bad, json_t *obj, const char *key, json_t *val) {
  if(!obj || !val || !key) {
    json_decref(val);
    *bad = 1;
    return;
  }
  if(json_object_set_new(obj, key, val)) /* jansson releases val on failure */
    *bad = 1;
}

char *sq_json_dump(const json_t *v) { return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS); }
