/* conditions.c — metav1.Condition writer and kstatus helpers; see
 * include/sqltde/kube/conditions.h. */
#include "sqltde/kube/conditions.h"

#include <stdlib.h>
#include <string.h>

#include "sqltde/clock.h"

static const char *const status_names[] = {
    [SQ_COND_UNKNOWN] = "Unknown", [SQ_COND_TRUE] = "True", [SQ_COND_FALSE] = "False"};

const char *sq_cond_status_name(sq_cond_status s) {
  if(s < SQ_COND_UNKNOWN || s > SQ_COND_FALSE)
    return NULL;
  return status_names[s];
}

static int is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
static int is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

/* DNS-1123 subdomain: dot-separated labels of [a-z0-9-], each starting and
 * ending alphanumeric, at most 253 bytes. */
static int dns_subdomain_ok(const char *s, size_t n) {
  if(n == 0 || n > 253)
    return 0;
  size_t start = 0;
  for(size_t i = 0; i <= n; i++) {
    if(i < n && s[i] != '.') {
      if(!is_lower_alnum(s[i]) && s[i] != '-')
        return 0;
      continue;
    }
    if(i == start || !is_lower_alnum(s[start]) || !is_lower_alnum(s[i - 1]))
      return 0;
    start = i + 1;
  }
  return 1;
}

int sq_cond_type_valid(const char *type) {
  if(!type)
    return 0;
  size_t n = strnlen(type, SQ_COND_TYPE_MAX + 1);
  if(n == 0 || n > SQ_COND_TYPE_MAX)
    return 0;
  const char *name = type;
  const char *slash = memchr(type, '/', n);
  if(slash) {
    if(!dns_subdomain_ok(type, (size_t)(slash - type)))
      return 0;
    name = slash + 1;
  }
  size_t m = n - (size_t)(name - type);
  if(m == 0 || m > 63 || !is_alnum(name[0]) || !is_alnum(name[m - 1]))
    return 0;
  for(size_t i = 0; i < m; i++)
    if(!is_alnum(name[i]) && name[i] != '-' && name[i] != '_' && name[i] != '.')
      return 0;
  return 1;
}

int sq_cond_reason_valid(const char *reason) {
  if(!reason)
    return 0;
  size_t n = strnlen(reason, SQ_COND_REASON_MAX + 1);
  if(n == 0 || n > SQ_COND_REASON_MAX)
    return 0;
  char first = reason[0], last = reason[n - 1];
  if(!((first >= 'a' && first <= 'z') || (first >= 'A' && first <= 'Z')))
    return 0;
  for(size_t i = 1; i < n; i++) {
    char c = reason[i];
    if(!is_alnum(c) && c != '_' && c != ',' && c != ':')
      return 0;
  }
  return is_alnum(last) || last == '_';
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if invalid. Follows
 * RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF. */
static size_t utf8_seq(const unsigned char *s) {
  unsigned char c = s[0];
  if(c < 0x80)
    return 1;
  unsigned char lo = 0x80, hi = 0xBF;
  size_t n;
  if(c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if(c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if(c == 0xE0)
      lo = 0xA0;
    else if(c == 0xED)
      hi = 0x9F;
  } else if(c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if(c == 0xF0)
      lo = 0x90;
    else if(c == 0xF4)
      hi = 0x8F;
  } else {
    return 0;
  }
  /* a NUL terminator fails the range check, so this never reads past it */
  if(s[1] < lo || s[1] > hi)
    return 0;
  for(size_t i = 2; i < n; i++)
    if(s[i] < 0x80 || s[i] > 0xBF)
      return 0;
  return n;
}

char *sq_cond_message_sanitize(const char *message) {
  static const char repl[] = "\xEF\xBF\xBD"; /* U+FFFD */
  const unsigned char *s = (const unsigned char *)(message ? message : "");
  /* output never exceeds the cap; the input may be far longer */
  size_t inlen = strlen((const char *)s);
  size_t cap = inlen < SQ_COND_MESSAGE_MAX / 3 ? inlen * 3 : SQ_COND_MESSAGE_MAX;
  char *out = malloc(cap + 1);
  if(!out)
    return NULL;
  size_t o = 0;
  while(*s) {
    size_t n = utf8_seq(s);
    const char *src = (const char *)s;
    size_t take = n;
    if(!n) {
      src = repl;
      take = 3;
      n = 1; /* skip one bad byte, then resynchronise */
    }
    if(o + take > cap)
      break; /* cut before a whole character, never inside one */
    memcpy(out + o, src, take);
    o += take;
    s += n;
  }
  out[o] = '\0';
  return out;
}

json_t *sq_cond_array(json_t *status) {
  if(!json_is_object(status))
    return NULL;
  json_t *a = json_object_get(status, "conditions");
  if(json_is_array(a))
    return a;
  a = json_array();
  if(!a || json_object_set_new(status, "conditions", a))
    return NULL;
  return a;
}

static const char *cond_type(const json_t *c) {
  return json_string_value(json_object_get(c, "type"));
}

json_t *sq_cond_find(const json_t *conds, const char *type) {
  if(!json_is_array(conds) || !type)
    return NULL;
  size_t i;
  json_t *c;
  json_array_foreach(conds, i, c) {
    const char *t = cond_type(c);
    if(t && !strcmp(t, type))
      return c;
  }
  return NULL;
}

sq_cond_status sq_cond_get_status(const json_t *conds, const char *type) {
  json_t *c = sq_cond_find(conds, type);
  if(!c)
    return SQ_COND_ABSENT;
  const char *s = json_string_value(json_object_get(c, "status"));
  if(s && !strcmp(s, "True"))
    return SQ_COND_TRUE;
  if(s && !strcmp(s, "False"))
    return SQ_COND_FALSE;
  return SQ_COND_UNKNOWN;
}

int sq_cond_is_true(const json_t *conds, const char *type) {
  return sq_cond_get_status(conds, type) == SQ_COND_TRUE;
}

/* Removes entries of type at index >= from; returns how many. */
static int remove_from(json_t *conds, const char *type, size_t from) {
  int n = 0;
  size_t i = from;
  while(i < json_array_size(conds)) {
    const char *t = cond_type(json_array_get(conds, i));
    if(t && !strcmp(t, type)) {
      json_array_remove(conds, i);
      n++;
    } else {
      i++;
    }
  }
  return n;
}

void sq_cond_remove(json_t *conds, const char *type, int *changed) {
  int n = (json_is_array(conds) && type) ? remove_from(conds, type, 0) : 0;
  if(changed)
    *changed = n > 0;
}

static int str_field_is(const json_t *c, const char *key, const char *want) {
  const char *v = json_string_value(json_object_get(c, key));
  return v && !strcmp(v, want);
}

/* Sets c[key] to a string if it differs; 1 if changed, -1 on ENOMEM. */
static int put_str(json_t *c, const char *key, const char *v) {
  if(str_field_is(c, key, v))
    return 0;
  json_t *s = json_string(v);
  if(!s || json_object_set_new(c, key, s))
    return -1;
  return 1;
}

static int put_int(json_t *c, const char *key, int64_t v) {
  json_t *cur = json_object_get(c, key);
  if(json_is_integer(cur) && json_integer_value(cur) == (json_int_t)v)
    return 0;
  json_t *n = json_integer((json_int_t)v);
  if(!n || json_object_set_new(c, key, n))
    return -1;
  return 1;
}

sq_code sq_cond_set(json_t *conds, const char *type, sq_cond_status st, const char *reason,
                    const char *message, int64_t generation, int64_t now, int *changed,
                    sq_err *err) {
  sq_code rc = SQ_OK;
  char *msg = NULL;
  int ch = 0;
  if(changed)
    *changed = 0;
  if(!json_is_array(conds))
    return sq_err_set(err, SQ_EINVAL, "conditions: not an array");
  if(!sq_cond_type_valid(type))
    return sq_err_set(err, SQ_EINVAL, "conditions: invalid condition type");
  const char *stname = sq_cond_status_name(st);
  if(!stname)
    return sq_err_set(err, SQ_EINVAL, "conditions: %s: invalid status %d", type, (int)st);
  if(!sq_cond_reason_valid(reason))
    return sq_err_set(err, SQ_EINVAL,
                      "conditions: %s: reason must be CamelCase matching "
                      "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$ and at most %d bytes",
                      type, SQ_COND_REASON_MAX);
  if(generation < 0)
    return sq_err_set(err, SQ_EINVAL, "conditions: %s: negative observedGeneration", type);
  msg = sq_cond_message_sanitize(message);
  if(!msg) {
    rc = sq_err_set(err, SQ_ENOMEM, "conditions: out of memory");
    goto out;
  }
  char ts[32];
  sq_rfc3339(now, ts, sizeof ts);

  size_t idx = 0;
  json_t *c = NULL;
  for(; idx < json_array_size(conds); idx++) {
    const char *t = cond_type(json_array_get(conds, idx));
    if(t && !strcmp(t, type)) {
      c = json_array_get(conds, idx);
      break;
    }
  }
  if(!c || !json_is_object(c)) {
    /* a same-typed non-object (only from a broken writer) is replaced */
    json_t *nc = json_object();
    if(!nc || json_object_set_new(nc, "type", json_string(type)) ||
       json_object_set_new(nc, "status", json_string(stname)) ||
       json_object_set_new(nc, "observedGeneration", json_integer((json_int_t)generation)) ||
       json_object_set_new(nc, "lastTransitionTime", json_string(ts)) ||
       json_object_set_new(nc, "reason", json_string(reason)) ||
       json_object_set_new(nc, "message", json_string(msg)) ||
       (c ? json_array_set_new(conds, idx, nc) : json_array_append_new(conds, nc))) {
      json_decref(nc);
      rc = sq_err_set(err, SQ_ENOMEM, "conditions: out of memory");
      goto out;
    }
    ch = 1;
  } else {
    /* the transition time moves only with the status (or if it is missing
     * or unreadable, which a valid condition never is) */
    int flip = !str_field_is(c, "status", stname);
    const char *lt = json_string_value(json_object_get(c, "lastTransitionTime"));
    int r[5] = {0};
    r[0] = put_str(c, "status", stname);
    if(flip || !lt || sq_parse_rfc3339(lt) < 0)
      r[1] = put_str(c, "lastTransitionTime", ts);
    r[2] = put_str(c, "reason", reason);
    r[3] = put_str(c, "message", msg);
    r[4] = put_int(c, "observedGeneration", generation);
    for(int i = 0; i < 5; i++) {
      if(r[i] < 0) {
        rc = sq_err_set(err, SQ_ENOMEM, "conditions: out of memory");
        ch = 1; /* partly written: let the caller treat it as dirty */
        goto out;
      }
      ch |= r[i];
    }
  }
  if(remove_from(conds, type, idx + 1))
    ch = 1;
out:
  free(msg);
  if(changed)
    *changed = ch;
  return rc;
}

/* Sets Ready and the two abnormal-true conditions in one go. reconciling /
 * stalled: 1 = set True, 0 = remove. */
static sq_code set_kstatus(json_t *conds, sq_cond_status ready, int reconciling, int stalled,
                           const char *reason, const char *message, int64_t generation,
                           int64_t now, int *changed, sq_err *err) {
  int any = 0, ch = 0;
  sq_code rc;
  /* validate once up front so a bad reason leaves conds untouched */
  if(!json_is_array(conds))
    return sq_err_set(err, SQ_EINVAL, "conditions: not an array");
  if(!sq_cond_reason_valid(reason))
    return sq_err_set(err, SQ_EINVAL,
                      "conditions: reason must be CamelCase matching "
                      "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$ and at most %d bytes",
                      SQ_COND_REASON_MAX);
  if(generation < 0)
    return sq_err_set(err, SQ_EINVAL, "conditions: negative observedGeneration");

  rc = sq_cond_set(conds, SQ_COND_READY, ready, reason, message, generation, now, &ch, err);
  any |= ch;
  if(rc)
    goto out;
  if(reconciling) {
    rc = sq_cond_set(conds, SQ_COND_RECONCILING, SQ_COND_TRUE, reason, message, generation, now,
                     &ch, err);
    any |= ch;
    if(rc)
      goto out;
  } else {
    sq_cond_remove(conds, SQ_COND_RECONCILING, &ch);
    any |= ch;
  }
  if(stalled) {
    rc = sq_cond_set(conds, SQ_COND_STALLED, SQ_COND_TRUE, reason, message, generation, now, &ch,
                     err);
    any |= ch;
    if(rc)
      goto out;
  } else {
    sq_cond_remove(conds, SQ_COND_STALLED, &ch);
    any |= ch;
  }
out:
  if(changed)
    *changed = any;
  return rc;
}

sq_code sq_cond_set_ready(json_t *conds, const char *reason, const char *message,
                          int64_t generation, int64_t now, int *changed, sq_err *err) {
  return set_kstatus(conds, SQ_COND_TRUE, 0, 0, reason, message, generation, now, changed, err);
}

sq_code sq_cond_set_reconciling(json_t *conds, const char *reason, const char *message,
                                int64_t generation, int64_t now, int *changed, sq_err *err) {
  return set_kstatus(conds, SQ_COND_UNKNOWN, 1, 0, reason, message, generation, now, changed,
                     err);
}

sq_code sq_cond_set_retrying(json_t *conds, const char *reason, const char *message,
                             int64_t generation, int64_t now, int *changed, sq_err *err) {
  return set_kstatus(conds, SQ_COND_FALSE, 1, 0, reason, message, generation, now, changed, err);
}

sq_code sq_cond_set_stalled(json_t *conds, const char *reason, const char *message,
                            int64_t generation, int64_t now, int *changed, sq_err *err) {
  return set_kstatus(conds, SQ_COND_FALSE, 0, 1, reason, message, generation, now, changed, err);
}
