/* server_obs.c — per-server observation cache; see
 * include/sqltde/operator/server_obs.h. Small linear tables: an operator
 * watches few servers, and a database is looked up once per pass. */
#include "sqltde/operator/server_obs.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sqltde/clock.h"

typedef struct list_ent {
  char name[128];
  uint64_t fp;
} list_ent;

typedef struct srv_ent {
  char id[SQ_SQL_ID_MAX];
  int valid;            /* dbs/started_ms describe a completed list */
  int fetching;         /* a worker is listing right now (single flight) */
  uint64_t epoch;       /* bumped by forget: a list in flight is stale */
  int64_t started_ms;   /* when the list call started (mono) */
  size_t n;
  list_ent *dbs;
} srv_ent;

typedef struct full_ent {
  char db_id[SQ_SQL_ID_MAX];
  char server_id[SQ_SQL_ID_MAX];
  sq_sql_keys_filter f;
  uint64_t fp;
  int64_t observed_ms;
  sq_sql_database db; /* keys owned */
} full_ent;

struct sq_server_obs {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int64_t list_max_age_ms, full_max_age_ms;
  size_t n_srv, cap_srv;
  srv_ent **srv;
  size_t n_full, cap_full;
  full_ent **full;
  uint64_t hits, misses, lists;
};

sq_code sq_server_obs_new(int64_t list_max_age_ms, int64_t full_max_age_ms, sq_server_obs **out, sq_err *err) {
  *out = NULL;
  sq_server_obs *c = calloc(1, sizeof *c);
  if(!c)
    return sq_err_set(err, SQ_ENOMEM, "server observation cache: out of memory");
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cv, NULL);
  c->list_max_age_ms = list_max_age_ms;
  c->full_max_age_ms = full_max_age_ms;
  *out = c;
  return SQ_OK;
}

void sq_server_obs_free(sq_server_obs *c) {
  if(!c)
    return;
  for(size_t i = 0; i < c->n_srv; i++) {
    free(c->srv[i]->dbs);
    free(c->srv[i]);
  }
  for(size_t i = 0; i < c->n_full; i++) {
    sq_sql_database_free(&c->full[i]->db);
    free(c->full[i]);
  }
  free(c->srv);
  free(c->full);
  pthread_cond_destroy(&c->cv);
  pthread_mutex_destroy(&c->mu);
  free(c);
}

/* FNV-1a over a field, lower-cased, with a separator so that fields cannot
 * run into each other. */
static uint64_t fnv(uint64_t h, const char *s) {
  for(; s && *s; s++) {
    h ^= (unsigned char)tolower((unsigned char)*s);
    h *= 1099511628211ULL;
  }
  h ^= 0x1f;
  h *= 1099511628211ULL;
  return h;
}

static uint64_t fnv_int(uint64_t h, int64_t v) {
  char b[32];
  snprintf(b, sizeof b, "%lld", (long long)v);
  return fnv(h, b);
}

uint64_t sq_server_obs_fingerprint(const sq_sql_database *d) {
  uint64_t h = 1469598103934665603ULL;
  h = fnv(h, d->status);
  h = fnv(h, d->database_id);
  h = fnv_int(h, d->creation_date);
  h = fnv(h, d->encryption_protector);
  h = fnv_int(h, d->auto_rotation);
  h = fnv(h, d->federated_client_id);
  h = fnv(h, d->identity.type);
  /* identities: order-independent (sum of per-id hashes) */
  uint64_t ids = 0;
  for(size_t i = 0; i < d->identity.n_umis; i++)
    ids += fnv(1469598103934665603ULL, d->identity.umis[i].id);
  h = fnv_int(h, (int64_t)d->identity.n_umis);
  h ^= ids;
  h *= 1099511628211ULL;
  return h;
}

static const char *last_segment(const char *id) {
  const char *s = strrchr(id, '/');
  return s ? s + 1 : id;
}

static srv_ent *find_srv(sq_server_obs *c, const char *id, int add) {
  for(size_t i = 0; i < c->n_srv; i++)
    if(!strcasecmp(c->srv[i]->id, id))
      return c->srv[i];
  if(!add)
    return NULL;
  if(c->n_srv == c->cap_srv) {
    size_t nc = c->cap_srv ? c->cap_srv * 2 : 8;
    srv_ent **v = realloc(c->srv, nc * sizeof *v);
    if(!v)
      return NULL;
    c->srv = v;
    c->cap_srv = nc;
  }
  srv_ent *s = calloc(1, sizeof *s);
  if(!s)
    return NULL;
  snprintf(s->id, sizeof s->id, "%s", id);
  c->srv[c->n_srv++] = s;
  return s;
}

static size_t find_full(sq_server_obs *c, const char *db_id) {
  for(size_t i = 0; i < c->n_full; i++)
    if(!strcasecmp(c->full[i]->db_id, db_id))
      return i;
  return (size_t)-1;
}

static void drop_full(sq_server_obs *c, size_t i) {
  sq_sql_database_free(&c->full[i]->db);
  free(c->full[i]);
  c->full[i] = c->full[--c->n_full];
}

/* What a list call collects (outside the lock). */
typedef struct collect {
  size_t n, cap;
  list_ent *v;
  int oom;
} collect;

static int collect_fn(void *ud, const sq_sql_database *d) {
  collect *k = ud;
  if(k->n == k->cap) {
    size_t nc = k->cap ? k->cap * 2 : 16;
    list_ent *v = realloc(k->v, nc * sizeof *v);
    if(!v) {
      k->oom = 1;
      return 1;
    }
    k->v = v;
    k->cap = nc;
  }
  snprintf(k->v[k->n].name, sizeof k->v[k->n].name, "%s", d->name);
  k->v[k->n].fp = sq_server_obs_fingerprint(d);
  k->n++;
  return 0;
}

static sq_code copy_db(sq_sql_database *out, const sq_sql_database *in) {
  *out = *in;
  out->keys = NULL;
  out->n_keys = 0;
  if(in->n_keys) {
    out->keys = malloc(in->n_keys * sizeof *out->keys);
    if(!out->keys)
      return SQ_ENOMEM;
    memcpy(out->keys, in->keys, in->n_keys * sizeof *out->keys);
    out->n_keys = in->n_keys;
  }
  return SQ_OK;
}

sq_code sq_server_obs_lookup(sq_server_obs *c, sq_arm *arm, const char *server_id, const char *db_id,
                             sq_sql_keys_filter want, sq_sql_database *out, sq_err *err) {
  memset(out, 0, sizeof *out);
  if(!c || !server_id || !*server_id || !db_id || !*db_id)
    return SQ_ENOTFOUND;
  sq_code rc = SQ_ENOTFOUND;
  int waited = 0;
  pthread_mutex_lock(&c->mu);
  for(;;) {
    size_t fi = find_full(c, db_id);
    if(fi == (size_t)-1)
      break;
    full_ent *f = c->full[fi];
    int64_t now = sq_mono_ms();
    if(now - f->observed_ms >= c->full_max_age_ms || (want == SQ_SQL_KEYS_ALL && f->f != SQ_SQL_KEYS_ALL) ||
       strcasecmp(f->server_id, server_id)) {
      drop_full(c, fi);
      break;
    }
    srv_ent *s = find_srv(c, server_id, 1);
    if(!s) {
      rc = SQ_ENOMEM;
      break;
    }
    if(s->valid && s->started_ms >= f->observed_ms && now - s->started_ms < c->list_max_age_ms) {
      const char *name = last_segment(db_id);
      for(size_t i = 0; i < s->n; i++)
        if(!strcasecmp(s->dbs[i].name, name)) {
          if(s->dbs[i].fp == f->fp)
            rc = copy_db(out, &f->db) ? SQ_ENOMEM : SQ_OK;
          break;
        }
      break;
    }
    if(waited)
      break; /* the list we waited for failed or was discarded: observe fully */
    if(s->fetching) {
      /* single flight: another worker is listing this server; its answer
       * decides, re-checked from the top */
      while(s->fetching)
        pthread_cond_wait(&c->cv, &c->mu);
      waited = 1;
      continue;
    }
    s->fetching = 1;
    uint64_t epoch = s->epoch;
    int64_t started = sq_mono_ms();
    c->lists++;
    pthread_mutex_unlock(&c->mu);
    collect k;
    memset(&k, 0, sizeof k);
    sq_code lrc = sq_sql_db_list(arm, server_id, collect_fn, &k, err);
    if(!lrc && k.oom)
      lrc = SQ_ENOMEM;
    pthread_mutex_lock(&c->mu);
    s->fetching = 0;
    pthread_cond_broadcast(&c->cv);
    if(lrc) {
      free(k.v);
      rc = lrc;
      break;
    }
    if(s->epoch != epoch) {
      /* the operator wrote there while we listed: the answer may predate it */
      free(k.v);
      break;
    }
    free(s->dbs);
    s->dbs = k.v;
    s->n = k.n;
    s->started_ms = started;
    s->valid = 1;
    /* loop: the checks above now find a fresh list */
  }
  if(rc == SQ_OK)
    c->hits++;
  else
    c->misses++;
  pthread_mutex_unlock(&c->mu);
  return rc;
}

void sq_server_obs_remember(sq_server_obs *c, const char *server_id, const char *db_id, sq_sql_keys_filter f,
                            const sq_sql_database *d, int64_t observed_ms) {
  if(!c || !server_id || !*server_id || !db_id || !*db_id)
    return;
  pthread_mutex_lock(&c->mu);
  size_t i = find_full(c, db_id);
  full_ent *e;
  if(i != (size_t)-1) {
    e = c->full[i];
    sq_sql_database_free(&e->db);
  } else {
    if(c->n_full == c->cap_full) {
      size_t nc = c->cap_full ? c->cap_full * 2 : 16;
      full_ent **v = realloc(c->full, nc * sizeof *v);
      if(!v)
        goto out;
      c->full = v;
      c->cap_full = nc;
    }
    e = calloc(1, sizeof *e);
    if(!e)
      goto out;
    c->full[c->n_full++] = e;
  }
  snprintf(e->db_id, sizeof e->db_id, "%s", db_id);
  snprintf(e->server_id, sizeof e->server_id, "%s", server_id);
  e->f = f;
  e->fp = sq_server_obs_fingerprint(d);
  e->observed_ms = observed_ms;
  if(copy_db(&e->db, d)) {
    /* no copy, no entry */
    drop_full(c, find_full(c, db_id));
  }
out:
  pthread_mutex_unlock(&c->mu);
}

void sq_server_obs_forget(sq_server_obs *c, const char *server_id, const char *db_id) {
  if(!c)
    return;
  pthread_mutex_lock(&c->mu);
  if(server_id) {
    srv_ent *s = find_srv(c, server_id, 0);
    if(s) {
      s->valid = 0;
      s->epoch++;
    }
  }
  if(db_id) {
    size_t i = find_full(c, db_id);
    if(i != (size_t)-1)
      drop_full(c, i);
  }
  pthread_mutex_unlock(&c->mu);
}

void sq_server_obs_stats(sq_server_obs *c, uint64_t *hits, uint64_t *misses, uint64_t *lists) {
  if(!c)
    return;
  pthread_mutex_lock(&c->mu);
  if(hits)
    *hits = c->hits;
  if(misses)
    *misses = c->misses;
  if(lists)
    *lists = c->lists;
  pthread_mutex_unlock(&c->mu);
}
