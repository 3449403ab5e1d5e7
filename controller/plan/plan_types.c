/* plan_types.c — snapshot containers (bounded lists, facts, inputs) and key
 * URI helpers; see include/sqltde/plan/plan_types.h. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "plan_internal.h"
#include "sqltde/plan/plan_types.h"

/* ---- strings ----------------------------------------------------------- */

static size_t trimmed_len(const char *s) {
  size_t n = strlen(s);
  if(n > 1 && s[n - 1] == '/')
    n--;
  return n;
}

int sq_plan_uri_eq(const char *a, const char *b) {
  if(!a || !b)
    return a == b;
  size_t na = trimmed_len(a), nb = trimmed_len(b);
  return na == nb && strncasecmp(a, b, na) == 0;
}

static int check_str(const char *s, sq_err *err) {
  if(strnlen(s, SQ_PLAN_STR_MAX + 1) > SQ_PLAN_STR_MAX) {
    sq_err_set(err, SQ_EINVAL, "string longer than %d bytes", SQ_PLAN_STR_MAX);
    return 0;
  }
  return 1;
}

sq_code sq_plan_set_str(char **dst, const char *s, sq_err *err) {
  char *copy = NULL;
  if(s) {
    if(!check_str(s, err))
      return SQ_EINVAL;
    copy = strdup(s);
    if(!copy)
      return sq_err_set(err, SQ_ENOMEM, "out of memory");
  }
  free(*dst);
  *dst = copy;
  return SQ_OK;
}

sq_code sq_plan_list_add(sq_plan_list *l, const char *s, sq_err *err) {
  if(!s || !*s)
    return sq_err_set(err, SQ_EINVAL, "empty list entry");
  if(!check_str(s, err))
    return SQ_EINVAL;
  if(sq_plan_list_has(l, s))
    return SQ_OK;
  if(l->n >= SQ_PLAN_LIST_MAX)
    return sq_err_set(err, SQ_ETOOBIG, "more than %d entries", SQ_PLAN_LIST_MAX);
  if(l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 4;
    if(cap > SQ_PLAN_LIST_MAX)
      cap = SQ_PLAN_LIST_MAX;
    char **v = realloc(l->v, cap * sizeof *v);
    if(!v)
      return sq_err_set(err, SQ_ENOMEM, "out of memory");
    l->v = v;
    l->cap = cap;
  }
  char *copy = strdup(s);
  if(!copy)
    return sq_err_set(err, SQ_ENOMEM, "out of memory");
  l->v[l->n++] = copy;
  return SQ_OK;
}

int sq_plan_list_has(const sq_plan_list *l, const char *s) {
  for(size_t i = 0; i < l->n; i++)
    if(sq_plan_uri_eq(l->v[i], s))
      return 1;
  return 0;
}

void sq_plan_list_free(sq_plan_list *l) {
  for(size_t i = 0; i < l->n; i++)
    free(l->v[i]);
  free(l->v);
  l->v = NULL;
  l->n = l->cap = 0;
}

/* ---- key URIs ------------------------------------------------------------ */

int pl_keyuri_parse(const char *uri, pl_keyuri *out) {
  static const char scheme[] = "https://";
  if(!uri || strncasecmp(uri, scheme, sizeof scheme - 1))
    return 0;
  const char *p = uri + sizeof scheme - 1;
  const char *host = p;
  while(*p && *p != '/') {
    if(!isalnum((unsigned char)*p) && *p != '.' && *p != '-' && *p != ':')
      return 0;
    p++;
  }
  size_t host_len = (size_t)(p - host);
  if(host_len < 3 || host_len > 253 || !memchr(host, '.', host_len))
    return 0;
  if(strncmp(p, "/keys/", 6))
    return 0;
  p += 6;
  const char *name = p;
  while(*p && *p != '/') {
    if(!isalnum((unsigned char)*p) && *p != '-')
      return 0;
    p++;
  }
  size_t name_len = (size_t)(p - name);
  if(name_len < 1 || name_len > 127)
    return 0;
  const char *ver = p;
  size_t ver_len = 0;
  if(*p == '/') {
    ver = ++p;
    while(*p && *p != '/') {
      if(!isalnum((unsigned char)*p))
        return 0;
      p++;
    }
    ver_len = (size_t)(p - ver);
    if(ver_len > 64)
      return 0;
    if(*p == '/')
      p++;
  }
  if(*p)
    return 0;
  out->host = host;
  out->host_len = host_len;
  out->name = name;
  out->name_len = name_len;
  out->version = ver;
  out->version_len = ver_len;
  return 1;
}

int sq_plan_key_uri_valid(const char *uri) {
  pl_keyuri k;
  return strnlen(uri ? uri : "", SQ_PLAN_STR_MAX + 1) <= SQ_PLAN_STR_MAX &&
         pl_keyuri_parse(uri, &k);
}

int sq_plan_same_key(const char *a, const char *b) {
  pl_keyuri ka, kb;
  if(!pl_keyuri_parse(a, &ka) || !pl_keyuri_parse(b, &kb))
    return 0;
  return ka.host_len == kb.host_len && !strncasecmp(ka.host, kb.host, ka.host_len) &&
         ka.name_len == kb.name_len && !strncasecmp(ka.name, kb.name, ka.name_len);
}

void pl_short_id(const char *id, char *out, size_t outlen) {
  if(!outlen)
    return;
  if(!id) {
    snprintf(out, outlen, "(none)");
    return;
  }
  size_t n = trimmed_len(id);
  size_t start = n;
  while(start > 0 && id[start - 1] != '/')
    start--;
  if(start == n) /* no segment after the last '/' */
    start = 0;
  snprintf(out, outlen, "%.*s", (int)(n - start), id + start);
}

void pl_short_key(const char *uri, char *out, size_t outlen) {
  pl_keyuri k;
  if(!outlen)
    return;
  if(!pl_keyuri_parse(uri, &k)) {
    snprintf(out, outlen, "%.80s", uri ? uri : "(none)");
    return;
  }
  size_t vault = 0;
  while(vault < k.host_len && k.host[vault] != '.')
    vault++;
  if(k.version_len)
    snprintf(out, outlen, "%.*s/%.*s/%.*s", (int)vault, k.host, (int)k.name_len, k.name,
             (int)(k.version_len > 8 ? 8 : k.version_len), k.version);
  else
    snprintf(out, outlen, "%.*s/%.*s", (int)vault, k.host, (int)k.name_len, k.name);
}

sq_plan_db_status sq_plan_db_status_parse(const char *s) {
  if(!s || !*s)
    return SQ_DB_STATUS_UNKNOWN;
  if(!strcmp(s, "Online"))
    return SQ_DB_STATUS_ONLINE;
  if(!strcmp(s, "Creating"))
    return SQ_DB_STATUS_CREATING;
  if(!strcmp(s, "Inaccessible"))
    return SQ_DB_STATUS_INACCESSIBLE;
  return SQ_DB_STATUS_OTHER;
}

/* ---- facts ------------------------------------------------------------------ */

sq_code sq_plan_facts_add_key(sq_plan_facts *f, const sq_plan_key_fact *k, sq_err *err) {
  if(!k->uri || !*k->uri || !check_str(k->uri, err))
    return sq_err_set(err, SQ_EINVAL, "key fact without a usable uri");
  for(size_t i = 0; i < f->n_keys; i++)
    if(sq_plan_uri_eq(f->keys[i].uri, k->uri)) {
      char *uri = f->keys[i].uri;
      f->keys[i] = *k;
      f->keys[i].uri = uri;
      f->keys[i].thumbprint[sizeof f->keys[i].thumbprint - 1] = '\0';
      return SQ_OK;
    }
  if(f->n_keys >= SQ_PLAN_FACTS_MAX)
    return sq_err_set(err, SQ_ETOOBIG, "more than %d key facts", SQ_PLAN_FACTS_MAX);
  if(f->n_keys == f->cap_keys) {
    size_t cap = f->cap_keys ? f->cap_keys * 2 : 8;
    sq_plan_key_fact *v = realloc(f->keys, cap * sizeof *v);
    if(!v)
      return sq_err_set(err, SQ_ENOMEM, "out of memory");
    f->keys = v;
    f->cap_keys = cap;
  }
  char *uri = strdup(k->uri);
  if(!uri)
    return sq_err_set(err, SQ_ENOMEM, "out of memory");
  sq_plan_key_fact *dst = &f->keys[f->n_keys++];
  *dst = *k;
  dst->uri = uri;
  dst->thumbprint[sizeof dst->thumbprint - 1] = '\0';
  return SQ_OK;
}

sq_code sq_plan_facts_add_access(sq_plan_facts *f, const sq_plan_access *a, sq_err *err) {
  if(!a->key_uri || !*a->key_uri || !a->identity_id || !*a->identity_id ||
     !check_str(a->key_uri, err) || !check_str(a->identity_id, err))
    return sq_err_set(err, SQ_EINVAL, "access fact without key uri or identity");
  for(size_t i = 0; i < f->n_access; i++) {
    sq_plan_access *x = &f->access[i];
    if(sq_plan_uri_eq(x->key_uri, a->key_uri) && sq_plan_uri_eq(x->identity_id, a->identity_id)) {
      x->state = a->state;
      x->missing = a->missing;
      x->granted_s = a->granted_s;
      return SQ_OK;
    }
  }
  if(f->n_access >= SQ_PLAN_FACTS_MAX)
    return sq_err_set(err, SQ_ETOOBIG, "more than %d access facts", SQ_PLAN_FACTS_MAX);
  if(f->n_access == f->cap_access) {
    size_t cap = f->cap_access ? f->cap_access * 2 : 8;
    sq_plan_access *v = realloc(f->access, cap * sizeof *v);
    if(!v)
      return sq_err_set(err, SQ_ENOMEM, "out of memory");
    f->access = v;
    f->cap_access = cap;
  }
  char *key = strdup(a->key_uri), *id = strdup(a->identity_id);
  if(!key || !id) {
    free(key);
    free(id);
    return sq_err_set(err, SQ_ENOMEM, "out of memory");
  }
  sq_plan_access *dst = &f->access[f->n_access++];
  *dst = *a;
  dst->key_uri = key;
  dst->identity_id = id;
  return SQ_OK;
}

const sq_plan_key_fact *sq_plan_facts_key(const sq_plan_facts *f, const char *uri) {
  for(size_t i = 0; uri && i < f->n_keys; i++)
    if(sq_plan_uri_eq(f->keys[i].uri, uri))
      return &f->keys[i];
  return NULL;
}

const sq_plan_access *sq_plan_facts_access(const sq_plan_facts *f, const char *uri,
                                           const char *identity_id) {
  for(size_t i = 0; uri && identity_id && i < f->n_access; i++)
    if(sq_plan_uri_eq(f->access[i].key_uri, uri) &&
       sq_plan_uri_eq(f->access[i].identity_id, identity_id))
      return &f->access[i];
  return NULL;
}

void sq_plan_facts_free(sq_plan_facts *f) {
  for(size_t i = 0; i < f->n_keys; i++)
    free(f->keys[i].uri);
  for(size_t i = 0; i < f->n_access; i++) {
    free(f->access[i].key_uri);
    free(f->access[i].identity_id);
  }
  free(f->keys);
  free(f->access);
  memset(f, 0, sizeof *f);
}

/* ---- inputs and plans ----------------------------------------------------- */

static void observed_db_free(sq_plan_observed_db *o) {
  free(o->server_id);
  free(o->status_text);
  free(o->protector_uri);
  free(o->federated_client_id);
  sq_plan_list_free(&o->identities);
  sq_plan_list_free(&o->keys);
  sq_plan_list_free(&o->current_keys);
  sq_plan_list_free(&o->backup_keys);
  memset(o, 0, sizeof *o);
}

void sq_plan_db_input_free(sq_plan_db_input *in) {
  sq_plan_desired_db *d = &in->desired;
  free(d->invalid_message);
  free(d->unresolved);
  free(d->server_id);
  free(d->name);
  free(d->location);
  free(d->sku_name);
  free(d->sku_tier);
  free(d->identity_id);
  free(d->federated_client_id);
  free(d->protector_uri);
  sq_plan_list_free(&d->keys);
  for(size_t i = 0; i < SQ_PLAN_SECONDARY_SLOTS; i++) {
    free(d->secondaries[i].server_id);
    free(d->secondaries[i].identity_id);
    free(d->secondaries[i].location);
  }
  observed_db_free(&in->primary);
  for(size_t i = 0; i < SQ_PLAN_SECONDARY_SLOTS; i++)
    observed_db_free(&in->secondaries[i]);
  sq_plan_facts_free(&in->facts);
  free(in->last_failure.code);
  free(in->last_failure.server_id);
  memset(in, 0, sizeof *in);
}

void sq_plan_server_input_free(sq_plan_server_input *in) {
  sq_plan_desired_server *d = &in->desired;
  free(d->invalid_message);
  free(d->unresolved);
  free(d->server_id);
  free(d->identity_id);
  free(d->key_uri);
  sq_plan_observed_server *o = &in->observed;
  sq_plan_list_free(&o->identities);
  free(o->primary_identity_id);
  free(o->protector_uri);
  sq_plan_list_free(&o->server_keys);
  sq_plan_facts_free(&in->facts);
  memset(in, 0, sizeof *in);
}

static void step_free(sq_plan_step *s) {
  free(s->server_id);
  free(s->database);
  free(s->source_database_id);
  free(s->location);
  free(s->sku_name);
  free(s->sku_tier);
  free(s->identity_id);
  sq_plan_list_free(&s->remove_identities);
  sq_plan_list_free(&s->keys);
  sq_plan_list_free(&s->remove_keys);
  free(s->protector_uri);
  free(s->federated_client_id);
}

void sq_plan_free(sq_plan *p) {
  for(size_t i = 0; i < p->n_steps; i++)
    step_free(&p->steps[i]);
  free(p->steps);
  for(size_t i = 0; i < p->n_findings; i++)
    free(p->findings[i].message);
  free(p->findings);
  free(p->message);
  memset(p, 0, sizeof *p);
}
