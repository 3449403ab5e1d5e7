/* operator/gather.h — builds the planner's snapshot for one SqlServer or
 * SqlDatabase: the desired state from the object and the objects it
 * references (read from the informer caches: SqlServer, VaultKey,
 * ManagedIdentity), key facts from the VaultKey statuses (one set per distinct
 * VaultKey, no Key Vault call), access facts from the ManagedIdentity status,
 * and the observed Azure state through ARM reads only.
 *
 * Economy: a converged database costs its server's list call, shared by all
 * databases of the server (sq_gather_db_cached, operator/server_obs.h);
 * otherwise a database is read with one GET; $expand=keys only when a
 * database-level protector or extra keys are wanted or present, and the
 * pointInTime('current') / pointInTime(earliestRestoreDate) expansions only
 * when a key would be removed. A SqlDatabase being deleted with
 * deletionPolicy Retain makes no Azure call at all. A server is read with a
 * GET of the server and of its encryptionProtector; its keys are listed only
 * when a key has to become the protector.
 *
 * Ownership: the snapshot owns everything in it; free it with the matching
 * *_free (a zeroed snapshot is valid). The object passed in is borrowed. */
#ifndef SQLTDE_OPERATOR_GATHER_H
#define SQLTDE_OPERATOR_GATHER_H

#include <jansson.h>
#include <stdint.h>

#include "sqltde/azure/sql.h"
#include "sqltde/err.h"
#include "sqltde/operator/op.h"
#include "sqltde/plan/plan_types.h"

typedef struct sq_db_snapshot {
  sq_plan_db_input in;   /* what the planner reads */
  char db_id[SQ_SQL_ID_MAX];   /* ARM id of the primary database ("" if unknown) */
  char db_name[130];
  char location[64];
  /* observed */
  sq_sql_database db;    /* the database as read (keys only when expanded) */
  int observed;          /* 1 when db was read (exists or 404) */
  int from_cache;        /* db is a remembered full observation the server list vouched for */
  int azure_error;       /* the observation failed: err explains */
  sq_plan_list vlf_thumbprints; /* thumbprints of keys in use now, when gathered */
  int vlf_known;
  char server_protector_uri[SQ_SQL_URI_MAX]; /* the SqlServer's CMK protector, "" when SMK/unknown */
  char server_thumbprint[48];
} sq_db_snapshot;

/* Fills s for the SqlDatabase obj. Missing/unready references and invalid
 * specs land in s->in.desired (unresolved / invalid), not in the return
 * code. An ARM read failure returns its code with err filled; s is still
 * usable (primary.known = 0, so the planner waits). */
sq_code sq_gather_db(sq_op *op, const json_t *obj, int64_t now, sq_db_snapshot *s, sq_err *err);
void sq_db_snapshot_free(sq_db_snapshot *s);

/* Like sq_gather_db, but may take the cheap path of operator/server_obs.h:
 * one server list call instead of the per-database GET (s->from_cache = 1).
 * Never execute steps planned from such a snapshot: gather fully first. */
sq_code sq_gather_db_cached(sq_op *op, const json_t *obj, int64_t now, sq_db_snapshot *s, sq_err *err);

typedef struct sq_server_snapshot {
  sq_plan_server_input in;
  sq_sql_server server;
  sq_sql_protector protector;
  int observed;
} sq_server_snapshot;

sq_code sq_gather_server(sq_op *op, const json_t *obj, int64_t now, sq_server_snapshot *s, sq_err *err);
void sq_server_snapshot_free(sq_server_snapshot *s);

/* Resolves a VaultKey (cached object, may be NULL) and an optional pinned
 * version to a versioned key URI into out. 0 on success, -1 when the
 * VaultKey has no such version (or no current version yet). */
int sq_gather_vaultkey_uri(const json_t *vk, const char *version, char *out, size_t outlen);

/* Adds a key fact per version listed in the VaultKey's status, and for each
 * an access fact of identity_id from the ManagedIdentity's status.keyAccess
 * entry for that VaultKey (mi may be NULL: access unknown). grantedAt is
 * shifted so that the planner's fixed 10-minute grant delay equals
 * permission_delay_ms. */
sq_code sq_gather_key_facts(sq_plan_facts *f, const json_t *vk, const json_t *mi, const char *identity_id,
                            int64_t permission_delay_ms, sq_err *err);

#endif
