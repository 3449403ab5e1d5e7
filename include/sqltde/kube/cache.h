/* kube/cache.h — the informer's object store: Kubernetes objects by key.
 *
 * An informer keeps one sq_cache per watched resource; controllers read it
 * instead of calling the apiserver. Objects are keyed "namespace/name"
 * ("name" for cluster-scoped ones). Only what controllers use is kept: before
 * an object is stored the informer strips metadata.managedFields and the
 * kubectl last-applied annotation (sq_cache_strip), plus whatever the caller's
 * transform removes.
 *
 * Footprint: each object is held as ONE allocation carrying its key, its
 * resourceVersion and its compact JSON text. A jansson tree of a SqlDatabase-
 * sized object costs several KiB (one allocation per node, hashtables per
 * object); the text costs its length. tests/bench/bench_cache.c measures both.
 * Readers therefore get a freshly parsed object: that is the price (a few
 * microseconds per 1 KiB object) of a small cache.
 *
 * Threads: any number of readers at once, from any thread. Writes
 * (put/delete/replace) must come from one thread at a time (the informer's);
 * they take the write lock only for the pointer swap, never while parsing or
 * while calling back.
 *
 * Ownership: every json_t* returned by this module is a NEW object owned by
 * the caller (json_decref); changing it never changes the cache. Objects passed
 * in are only read (serialised); the caller keeps them. */
#ifndef SQLTDE_KUBE_CACHE_H
#define SQLTDE_KUBE_CACHE_H

#include <jansson.h>
#include <stddef.h>

#include "sqltde/err.h"

/* Longest key: namespace (63) + '/' + name (253). */
#define SQ_CACHE_KEY_MAX 320

typedef struct sq_cache sq_cache;

/* A transform edits an object in place before it is stored and handed to
 * event handlers (e.g. drops fields no controller reads). Return non-zero to
 * refuse the object: it is then neither stored nor delivered (logged). */
typedef int (*sq_cache_transform_fn)(void *ud, json_t *obj);

/* The default transform: removes metadata.managedFields and the
 * metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"]
 * entry (and the annotations object if that leaves it empty). Never fails. */
void sq_cache_strip(json_t *obj);

/* Writes obj's key into out ("ns/name", or "name" without a namespace).
 * SQ_EINVAL when metadata.name is missing or the key does not fit. */
sq_code sq_cache_key_of(const json_t *obj, char *out, size_t outlen, sq_err *err);

sq_code sq_cache_new(sq_cache **out, sq_err *err);
void sq_cache_free(sq_cache *c);

/* Number of objects. */
size_t sq_cache_len(sq_cache *c);

/* Stores obj (serialised compactly) under its key, replacing what was there.
 * If prev is non-NULL it receives the object previously stored (new, owned by
 * the caller) or NULL when the key is new. */
sq_code sq_cache_put(sq_cache *c, const json_t *obj, json_t **prev, sq_err *err);

/* Removes key. prev as for put. SQ_ENOTFOUND (no err message) if absent. */
sq_code sq_cache_delete(sq_cache *c, const char *key, json_t **prev, sq_err *err);

/* The object under key, freshly parsed (new, owned by the caller), or NULL
 * when absent. */
json_t *sq_cache_get(sq_cache *c, const char *key);

/* Copies the stored resourceVersion of key into out; 0 when present and it
 * fits, -1 otherwise. Does not parse: cheap enough for comparisons. */
int sq_cache_get_rv(sq_cache *c, const char *key, char *out, size_t outlen);

/* All keys, sorted (strcmp). *out is a NULL-terminated array; free it with
 * sq_cache_keys_free. */
sq_code sq_cache_keys(sq_cache *c, char ***out, size_t *n, sq_err *err);
void sq_cache_keys_free(char **keys);

/* A JSON array (new, owned by the caller) of every object, sorted by key;
 * ns non-NULL and non-empty keeps only that namespace. Parses every object:
 * for 10,000 objects expect tens of milliseconds. */
sq_code sq_cache_snapshot(sq_cache *c, const char *ns, json_t **out, sq_err *err);

/* Bytes held by stored objects (text + per-object header), without the hash
 * table's buckets and without malloc's own overhead. */
size_t sq_cache_payload_bytes(sq_cache *c);

/* ---- whole-content replacement (relist) ---------------------------------- */

/* A staging area filled with the result of a LIST, page by page, then swapped
 * in by sq_cache_replace. Owned by the caller until replace takes it. */
typedef struct sq_cache_stage sq_cache_stage;

sq_code sq_cache_stage_new(sq_cache_stage **out, sq_err *err);
/* Adds obj (serialised; the caller keeps obj). A second object with the same
 * key replaces the first. */
sq_code sq_cache_stage_put(sq_cache_stage *s, const json_t *obj, sq_err *err);
size_t sq_cache_stage_len(const sq_cache_stage *s);
void sq_cache_stage_free(sq_cache_stage *s);

typedef enum sq_cache_change {
  SQ_CACHE_ADDED,   /* key not cached before: old NULL */
  SQ_CACHE_UPDATED, /* resourceVersion differs: old and new set */
  SQ_CACHE_DELETED, /* key not in the new content: new NULL */
} sq_cache_change;

/* Called once per difference; old/new are borrowed for the call. */
typedef void (*sq_cache_change_fn)(void *ud, sq_cache_change change, const json_t *old_obj,
                                   const json_t *new_obj);

/* Makes the staged content the cache's content (takes ownership of s, even on
 * failure), then calls fn (if non-NULL) for each difference between the old
 * and the new content: first additions and updates in key order, then
 * deletions in key order. Objects with equal resourceVersions are unchanged
 * and not reported. Readers see either the old or the new content, never a
 * mix; when fn runs, the cache already holds the new content. */
sq_code sq_cache_replace(sq_cache *c, sq_cache_stage *s, sq_cache_change_fn fn, void *ud,
                         sq_err *err);

#endif
