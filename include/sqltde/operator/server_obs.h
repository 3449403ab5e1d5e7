/* operator/server_obs.h — per-server observation cache: what makes a
 * converged resync cost one `GET .../servers/{s}/databases` per server
 * instead of one (expanded) GET per database (SPEC §2/§7: observation
 * batched per server, ARM reads O(servers + distinct keys)).
 *
 * Two things are remembered, both in memory only (a restart starts cold):
 *  - per database: its last FULL observation (the per-database GET, with the
 *    keys map when it was expanded) and a fingerprint of its plain fields;
 *  - per server: the fingerprints of the plain fields of every database in
 *    the server's list answer, and when that list call started.
 *
 * The cheap rule (sq_server_obs_lookup): the remembered full observation of
 * a database is reused as the observation of this pass only when
 *  - it is younger than full_max_age_ms and was read with at least the key
 *    expansion this pass wants,
 *  - a server list that STARTED after that full observation and is younger
 *    than list_max_age_ms (fetched now if needed, single-flight per server)
 *    lists the database with identical plain fields (status, databaseId,
 *    creation date, encryptionProtector, autoRotation, federatedClientId,
 *    identity type and user-assigned identities),
 *  - nothing was forgotten since (sq_server_obs_forget: the operator wrote
 *    to a database of that server).
 * Otherwise the caller does the full per-database observation. The keys map
 * is not in the list answer (azure-api.md §1.5): a change made to it alone
 * out of band is seen by the next full observation, at most full_max_age_ms
 * later. Callers must never write based on a reused observation: when the
 * plan is anything but converged, observe fully and plan again.
 *
 * Thread safety: all functions may be called concurrently (one mutex; a
 * condition variable makes list calls single-flight per server). The list
 * call itself runs without the lock held.
 *
 * Ownership: the cache owns copies of everything it remembers; lookup fills
 * a caller-owned sq_sql_database (free with sq_sql_database_free). */
#ifndef SQLTDE_OPERATOR_SERVER_OBS_H
#define SQLTDE_OPERATOR_SERVER_OBS_H

#include <stdint.h>

#include "sqltde/azure/arm.h"
#include "sqltde/azure/sql.h"
#include "sqltde/err.h"

typedef struct sq_server_obs sq_server_obs;

sq_code sq_server_obs_new(int64_t list_max_age_ms, int64_t full_max_age_ms, sq_server_obs **out, sq_err *err);
void sq_server_obs_free(sq_server_obs *c);

/* A hash of the plain fields a server list answer carries (see above);
 * case-insensitive where Azure is (URIs, ids), identity order ignored. */
uint64_t sq_server_obs_fingerprint(const sq_sql_database *d);

/* SQ_OK: *out is a copy of the remembered full observation of db_id, still
 * valid by the rule above (out->keys present iff they were expanded then).
 * SQ_ENOTFOUND: the cheap path does not apply — observe fully. Another code:
 * the list call failed (err filled); observe fully as well. want is the key
 * expansion this pass needs (NONE or ALL). */
sq_code sq_server_obs_lookup(sq_server_obs *c, sq_arm *arm, const char *server_id, const char *db_id,
                             sq_sql_keys_filter want, sq_sql_database *out, sq_err *err);

/* Remembers a full observation of db_id (read with expansion f, at
 * observed_ms = sq_mono_ms() taken BEFORE the read started). */
void sq_server_obs_remember(sq_server_obs *c, const char *server_id, const char *db_id, sq_sql_keys_filter f,
                            const sq_sql_database *d, int64_t observed_ms);

/* Forgets the server's list and db_id's full observation (db_id may be
 * NULL): the operator wrote (or tried to write) to a database there. */
void sq_server_obs_forget(sq_server_obs *c, const char *server_id, const char *db_id);

/* Counters for tests and logs: cheap hits, misses, list calls made. */
void sq_server_obs_stats(sq_server_obs *c, uint64_t *hits, uint64_t *misses, uint64_t *lists);

#endif
