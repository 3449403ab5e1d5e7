/* cache.c — the informer's object store; see include/sqltde/kube/cache.h.
 *
 * A chained hash table of immutable, reference-counted entries. An entry is
 * one allocation: header + key + resourceVersion + compact JSON text. Being
 * immutable and counted, an entry can be handed from under the lock to a
 * reader that parses it after unlocking, so writers never wait for parsing. */
#include "sqltde/kube/cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sqltde/jsonx.h"
#include "sqltde/log.h"

#define LAST_APPLIED "kubectl.kubernetes.io/last-applied-configuration"
#define MIN_BUCKETS 64

typedef struct entry {
  struct entry *next;
  atomic_uint refs;
  uint32_t hash;
  uint32_t json_len;
  uint16_t key_len;
  uint16_t rv_len;
  char data[]; /* key '\0' rv '\0' json '\0' */
} entry;

static const char *entry_key(const entry *e) { return e->data; }
static const char *entry_rv(const entry *e) { return e->data + e->key_len + 1; }
static const char *entry_json(const entry *e) { return e->data + e->key_len + 1 + e->rv_len + 1; }

static size_t entry_size(const entry *e) {
  return sizeof(entry) + (size_t)e->key_len + 1 + e->rv_len + 1 + e->json_len + 1;
}

static void entry_ref(entry *e) { atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed); }

static void entry_unref(entry *e) {
  if(e && atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) == 1)
    free(e);
}

/* Parses an entry's text. The text was produced by jansson from a valid
 * object, so failure means memory exhaustion; NULL is returned then. */
static json_t *entry_parse(const entry *e) {
  json_t *v = json_loadb(entry_json(e), e->json_len, 0, NULL);
  if(!v)
    SQ_ERROR("cache", "could not re-parse cached object %s", entry_key(e));
  return v;
}

/* FNV-1a: keys are short ASCII strings; this spreads them well enough. */
static uint32_t hash_key(const char *k) {
  uint32_t h = 2166136261u;
  for(; *k; k++) {
    h ^= (unsigned char)*k;
    h *= 16777619u;
  }
  return h;
}

static sq_code entry_new(const json_t *obj, entry **out, sq_err *err) {
  char key[SQ_CACHE_KEY_MAX];
  sq_code rc = sq_cache_key_of(obj, key, sizeof key, err);
  if(rc)
    return rc;
  const char *rv = sq_json_str(obj, "metadata.resourceVersion");
  if(!rv)
    rv = "";
  size_t klen = strlen(key), rvlen = strlen(rv);
  if(rvlen > 255)
    return sq_err_set(err, SQ_EINVAL, "object %s: resourceVersion longer than 255 bytes", key);
  /* Insertion order is kept (no JSON_SORT_KEYS): sorting would cost time on
   * every event for nothing the cache needs. */
  size_t jlen = json_dumpb(obj, NULL, 0, JSON_COMPACT);
  if(!jlen || jlen > UINT32_MAX)
    return sq_err_set(err, SQ_EINVAL, "object %s could not be serialised", key);
  entry *e = malloc(sizeof(entry) + klen + 1 + rvlen + 1 + jlen + 1);
  if(!e)
    return sq_err_set(err, SQ_ENOMEM, "out of memory caching %s", key);
  e->next = NULL;
  atomic_init(&e->refs, 1);
  e->hash = hash_key(key);
  e->key_len = (uint16_t)klen;
  e->rv_len = (uint16_t)rvlen;
  e->json_len = (uint32_t)jlen;
  memcpy(e->data, key, klen + 1);
  memcpy(e->data + klen + 1, rv, rvlen + 1);
  char *j = e->data + klen + 1 + rvlen + 1;
  if(json_dumpb(obj, j, jlen, JSON_COMPACT) != jlen) {
    free(e);
    return sq_err_set(err, SQ_EINVAL, "object %s changed size while serialised", key);
  }
  j[jlen] = '\0';
  *out = e;
  return SQ_OK;
}

/* ---- hash table (no locking: callers lock) -------------------------------- */

typedef struct table {
  entry **buckets;
  size_t nbuckets; /* power of two */
  size_t len;
  size_t payload; /* sum of entry_size */
} table;

static sq_code table_init(table *t, sq_err *err) {
  t->buckets = calloc(MIN_BUCKETS, sizeof *t->buckets);
  if(!t->buckets)
    return sq_err_set(err, SQ_ENOMEM, "out of memory creating cache");
  t->nbuckets = MIN_BUCKETS;
  t->len = 0;
  t->payload = 0;
  return SQ_OK;
}

static void table_clear(table *t) {
  for(size_t i = 0; t->buckets && i < t->nbuckets; i++) {
    entry *e = t->buckets[i];
    while(e) {
      entry *next = e->next;
      entry_unref(e);
      e = next;
    }
  }
  free(t->buckets);
  memset(t, 0, sizeof *t);
}

static entry **table_slot(const table *t, const char *key, uint32_t h) {
  entry **pp = &t->buckets[h & (t->nbuckets - 1)];
  while(*pp && ((*pp)->hash != h || strcmp(entry_key(*pp), key)))
    pp = &(*pp)->next;
  return pp;
}

static entry *table_find(const table *t, const char *key) {
  return *table_slot(t, key, hash_key(key));
}

/* Doubles the bucket array when the load passes 1. Failure to grow is not an
 * error: chains just get longer. */
static void table_maybe_grow(table *t) {
  if(t->len <= t->nbuckets)
    return;
  size_t n = t->nbuckets * 2;
  entry **b = calloc(n, sizeof *b);
  if(!b)
    return;
  for(size_t i = 0; i < t->nbuckets; i++) {
    entry *e = t->buckets[i];
    while(e) {
      entry *next = e->next;
      e->next = b[e->hash & (n - 1)];
      b[e->hash & (n - 1)] = e;
      e = next;
    }
  }
  free(t->buckets);
  t->buckets = b;
  t->nbuckets = n;
}

/* Links e (taking its reference); returns the entry it replaced (whose table
 * reference passes to the caller) or NULL. */
static entry *table_put(table *t, entry *e) {
  entry **pp = table_slot(t, entry_key(e), e->hash);
  entry *old = *pp;
  if(old) {
    e->next = old->next;
    t->payload -= entry_size(old);
  } else {
    e->next = NULL;
    t->len++;
  }
  *pp = e;
  t->payload += entry_size(e);
  if(!old)
    table_maybe_grow(t);
  return old;
}

static entry *table_remove(table *t, const char *key) {
  entry **pp = table_slot(t, key, hash_key(key));
  entry *old = *pp;
  if(old) {
    *pp = old->next;
    old->next = NULL;
    t->len--;
    t->payload -= entry_size(old);
  }
  return old;
}

/* ---- public API ------------------------------------------------------------ */

struct sq_cache {
  pthread_rwlock_t lock;
  table tab;
};

struct sq_cache_stage {
  table tab;
};

void sq_cache_strip(json_t *obj) {
  json_t *md = json_object_get(obj, "metadata");
  if(!json_is_object(md))
    return;
  json_object_del(md, "managedFields");
  json_t *ann = json_object_get(md, "annotations");
  if(json_is_object(ann)) {
    json_object_del(ann, LAST_APPLIED);
    if(json_object_size(ann) == 0)
      json_object_del(md, "annotations");
  }
}

sq_code sq_cache_key_of(const json_t *obj, char *out, size_t outlen, sq_err *err) {
  const char *name = sq_json_str(obj, "metadata.name");
  const char *ns = sq_json_str(obj, "metadata.namespace");
  if(!name || !*name)
    return sq_err_set(err, SQ_EINVAL, "object without metadata.name");
  int n = (ns && *ns) ? snprintf(out, outlen, "%s/%s", ns, name)
                       : snprintf(out, outlen, "%s", name);
  if(n < 0 || (size_t)n >= outlen)
    return sq_err_set(err, SQ_EINVAL, "object key longer than %zu bytes", outlen - 1);
  return SQ_OK;
}

sq_code sq_cache_new(sq_cache **out, sq_err *err) {
  *out = NULL;
  sq_cache *c = calloc(1, sizeof *c);
  if(!c)
    return sq_err_set(err, SQ_ENOMEM, "out of memory creating cache");
  sq_code rc = table_init(&c->tab, err);
  if(rc) {
    free(c);
    return rc;
  }
  pthread_rwlock_init(&c->lock, NULL);
  *out = c;
  return SQ_OK;
}

void sq_cache_free(sq_cache *c) {
  if(!c)
    return;
  table_clear(&c->tab);
  pthread_rwlock_destroy(&c->lock);
  free(c);
}

size_t sq_cache_len(sq_cache *c) {
  pthread_rwlock_rdlock(&c->lock);
  size_t n = c->tab.len;
  pthread_rwlock_unlock(&c->lock);
  return n;
}

size_t sq_cache_payload_bytes(sq_cache *c) {
  pthread_rwlock_rdlock(&c->lock);
  size_t n = c->tab.payload;
  pthread_rwlock_unlock(&c->lock);
  return n;
}

/* Hands the previous entry to the caller as a parsed object, then drops it. */
static sq_code give_prev(entry *old, json_t **prev, sq_err *err) {
  sq_code rc = SQ_OK;
  if(prev) {
    *prev = old ? entry_parse(old) : NULL;
    if(old && !*prev)
      rc = sq_err_set(err, SQ_ENOMEM, "out of memory parsing cached %s", entry_key(old));
  }
  entry_unref(old);
  return rc;
}

sq_code sq_cache_put(sq_cache *c, const json_t *obj, json_t **prev, sq_err *err) {
  entry *e;
  if(prev)
    *prev = NULL;
  sq_code rc = entry_new(obj, &e, err);
  if(rc)
    return rc;
  pthread_rwlock_wrlock(&c->lock);
  entry *old = table_put(&c->tab, e);
  pthread_rwlock_unlock(&c->lock);
  return give_prev(old, prev, err);
}

sq_code sq_cache_delete(sq_cache *c, const char *key, json_t **prev, sq_err *err) {
  if(prev)
    *prev = NULL;
  pthread_rwlock_wrlock(&c->lock);
  entry *old = table_remove(&c->tab, key);
  pthread_rwlock_unlock(&c->lock);
  if(!old)
    return SQ_ENOTFOUND;
  return give_prev(old, prev, err);
}

/* The entry under key with a reference for the caller, or NULL. */
static entry *cache_ref(sq_cache *c, const char *key) {
  pthread_rwlock_rdlock(&c->lock);
  entry *e = table_find(&c->tab, key);
  if(e)
    entry_ref(e);
  pthread_rwlock_unlock(&c->lock);
  return e;
}

json_t *sq_cache_get(sq_cache *c, const char *key) {
  entry *e = cache_ref(c, key);
  if(!e)
    return NULL;
  json_t *v = entry_parse(e);
  entry_unref(e);
  return v;
}

int sq_cache_get_rv(sq_cache *c, const char *key, char *out, size_t outlen) {
  int res = -1;
  pthread_rwlock_rdlock(&c->lock);
  entry *e = table_find(&c->tab, key);
  if(e && (size_t)e->rv_len < outlen) {
    memcpy(out, entry_rv(e), (size_t)e->rv_len + 1);
    res = 0;
  }
  pthread_rwlock_unlock(&c->lock);
  return res;
}

/* Every entry of t, each with a new reference, in an array of t->len. */
static sq_code table_refs(const table *t, entry ***out, sq_err *err) {
  entry **arr = malloc((t->len ? t->len : 1) * sizeof *arr);
  if(!arr)
    return sq_err_set(err, SQ_ENOMEM, "out of memory listing cache");
  size_t n = 0;
  for(size_t i = 0; i < t->nbuckets; i++)
    for(entry *e = t->buckets[i]; e; e = e->next) {
      entry_ref(e);
      arr[n++] = e;
    }
  *out = arr;
  return SQ_OK;
}

static int cmp_entry_key(const void *a, const void *b) {
  return strcmp(entry_key(*(entry *const *)a), entry_key(*(entry *const *)b));
}

static void unref_all(entry **arr, size_t n) {
  for(size_t i = 0; i < n; i++)
    entry_unref(arr[i]);
  free(arr);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

sq_code sq_cache_keys(sq_cache *c, char ***out, size_t *n, sq_err *err) {
  *out = NULL;
  if(n)
    *n = 0;
  pthread_rwlock_rdlock(&c->lock);
  size_t len = c->tab.len;
  char **keys = calloc(len + 1, sizeof *keys);
  size_t k = 0;
  for(size_t i = 0; keys && i < c->tab.nbuckets; i++)
    for(entry *e = c->tab.buckets[i]; e; e = e->next) {
      keys[k] = strdup(entry_key(e));
      if(!keys[k])
        goto oom;
      k++;
    }
  pthread_rwlock_unlock(&c->lock);
  if(!keys)
    return sq_err_set(err, SQ_ENOMEM, "out of memory listing cache keys");
  qsort(keys, k, sizeof *keys, cmp_str);
  *out = keys;
  if(n)
    *n = k;
  return SQ_OK;
oom:
  pthread_rwlock_unlock(&c->lock);
  sq_cache_keys_free(keys);
  return sq_err_set(err, SQ_ENOMEM, "out of memory listing cache keys");
}

void sq_cache_keys_free(char **keys) {
  if(!keys)
    return;
  for(char **p = keys; *p; p++)
    free(*p);
  free(keys);
}

sq_code sq_cache_snapshot(sq_cache *c, const char *ns, json_t **out, sq_err *err) {
  entry **arr = NULL;
  size_t n;
  *out = NULL;
  pthread_rwlock_rdlock(&c->lock);
  n = c->tab.len;
  sq_code rc = table_refs(&c->tab, &arr, err);
  pthread_rwlock_unlock(&c->lock);
  if(rc)
    return rc;
  qsort(arr, n, sizeof *arr, cmp_entry_key);
  json_t *list = json_array();
  size_t nslen = ns ? strlen(ns) : 0;
  if(!list)
    rc = sq_err_set(err, SQ_ENOMEM, "out of memory taking cache snapshot");
  for(size_t i = 0; !rc && i < n; i++) {
    const char *key = entry_key(arr[i]);
    /* Keys of namespaced objects start with "ns/". */
    if(nslen && (strncmp(key, ns, nslen) || key[nslen] != '/'))
      continue;
    json_t *v = entry_parse(arr[i]);
    if(!v || json_array_append_new(list, v))
      rc = sq_err_set(err, SQ_ENOMEM, "out of memory taking cache snapshot");
  }
  unref_all(arr, n);
  if(rc) {
    json_decref(list);
    return rc;
  }
  *out = list;
  return SQ_OK;
}

/* ---- staging and replacement ------------------------------------------------ */

sq_code sq_cache_stage_new(sq_cache_stage **out, sq_err *err) {
  *out = NULL;
  sq_cache_stage *s = calloc(1, sizeof *s);
  if(!s)
    return sq_err_set(err, SQ_ENOMEM, "out of memory staging a list");
  sq_code rc = table_init(&s->tab, err);
  if(rc) {
    free(s);
    return rc;
  }
  *out = s;
  return SQ_OK;
}

sq_code sq_cache_stage_put(sq_cache_stage *s, const json_t *obj, sq_err *err) {
  entry *e;
  sq_code rc = entry_new(obj, &e, err);
  if(rc)
    return rc;
  entry_unref(table_put(&s->tab, e));
  return SQ_OK;
}

size_t sq_cache_stage_len(const sq_cache_stage *s) { return s->tab.len; }

void sq_cache_stage_free(sq_cache_stage *s) {
  if(!s)
    return;
  table_clear(&s->tab);
  free(s);
}

typedef struct change {
  sq_cache_change kind;
  entry *old_e; /* referenced, or NULL */
  entry *new_e; /* referenced, or NULL */
} change;

static const char *change_key(const change *ch) {
  return entry_key(ch->new_e ? ch->new_e : ch->old_e);
}

/* Additions/updates first, deletions last; by key within each group. */
static int cmp_change(const void *a, const void *b) {
  const change *x = a, *y = b;
  int dx = x->kind == SQ_CACHE_DELETED, dy = y->kind == SQ_CACHE_DELETED;
  if(dx != dy)
    return dx - dy;
  return strcmp(change_key(x), change_key(y));
}

static void changes_free(change *chs, size_t n) {
  for(size_t i = 0; i < n; i++) {
    entry_unref(chs[i].old_e);
    entry_unref(chs[i].new_e);
  }
  free(chs);
}

sq_code sq_cache_replace(sq_cache *c, sq_cache_stage *s, sq_cache_change_fn fn, void *ud,
                         sq_err *err) {
  sq_code rc = SQ_OK;
  table old;
  change *chs = NULL;
  size_t nch = 0;

  pthread_rwlock_wrlock(&c->lock);
  old = c->tab;
  c->tab = s->tab;
  pthread_rwlock_unlock(&c->lock);
  free(s);

  if(fn) {
    /* The old table is private now; the new one is only read (writers are
     * serialised by contract, and we are the writer), so the read lock is
     * all we need while collecting the differences. */
    pthread_rwlock_rdlock(&c->lock);
    const table *cur = &c->tab;
    chs = malloc((cur->len + old.len + 1) * sizeof *chs);
    if(!chs) {
      pthread_rwlock_unlock(&c->lock);
      rc = sq_err_set(err, SQ_ENOMEM, "out of memory comparing a relist with the cache");
      goto out;
    }
    for(size_t i = 0; i < cur->nbuckets; i++)
      for(entry *e = cur->buckets[i]; e; e = e->next) {
        entry *o = table_find(&old, entry_key(e));
        if(o && !strcmp(entry_rv(o), entry_rv(e)))
          continue;
        entry_ref(e);
        if(o)
          entry_ref(o);
        chs[nch++] = (change){o ? SQ_CACHE_UPDATED : SQ_CACHE_ADDED, o, e};
      }
    for(size_t i = 0; i < old.nbuckets; i++)
      for(entry *o = old.buckets[i]; o; o = o->next)
        if(!table_find(cur, entry_key(o))) {
          entry_ref(o);
          chs[nch++] = (change){SQ_CACHE_DELETED, o, NULL};
        }
    pthread_rwlock_unlock(&c->lock);

    qsort(chs, nch, sizeof *chs, cmp_change);
    for(size_t i = 0; i < nch; i++) {
      json_t *o = chs[i].old_e ? entry_parse(chs[i].old_e) : NULL;
      json_t *n = chs[i].new_e ? entry_parse(chs[i].new_e) : NULL;
      if((chs[i].old_e && !o) || (chs[i].new_e && !n))
        rc = sq_err_set(err, SQ_ENOMEM, "out of memory delivering relist changes");
      else
        fn(ud, chs[i].kind, o, n);
      json_decref(o);
      json_decref(n);
    }
  }
out:
  changes_free(chs, nch);
  table_clear(&old);
  return rc;
}
