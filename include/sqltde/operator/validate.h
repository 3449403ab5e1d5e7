/* operator/validate.h — spec rules the CRD schemas cannot express.
 *
 * The apiserver already enforces what OpenAPI can say (types, enums, patterns,
 * bounds, required fields). What remains — rules that relate two fields, depend
 * on the configured cloud, or need parsing (durations) — is checked here, in
 * pure functions, before a controller makes any Azure call. A failure names
 * the field path and the rule, which the controller turns into an InvalidSpec
 * condition (reason = rule) and a Stalled status; nothing is sent to Azure
 * until the spec changes.
 *
 * The validators also re-check the schema's own required fields and bounds
 * cheaply: an object created before a CRD upgrade, or with the schema
 * bypassed, must never reach Azure with a hole in it.
 *
 * One function per kind. SqlServer / SqlDatabase rules are added here by their
 * controllers' author. Objects are borrowed; nothing is allocated. */
#ifndef SQLTDE_OPERATOR_VALIDATE_H
#define SQLTDE_OPERATOR_VALIDATE_H

#include <jansson.h>
#include <stdint.h>

#include "sqltde/err.h"

typedef struct sq_invalid {
  char field[128];   /* JSON path of the offending field, e.g. "spec.vaults[1].name" */
  char rule[64];     /* machine-readable rule (a valid condition reason), e.g. "DuplicateVault" */
  char message[512]; /* "spec.vaults[1].name: vault kv-east is listed twice (DuplicateVault)" */
} sq_invalid;

/* Bounds on durations given in specs (milliseconds). */
#define SQ_PROBE_INTERVAL_MIN_MS (10 * 1000LL)          /* faster probing only burns ARM reads */
#define SQ_PROBE_INTERVAL_MAX_MS (24 * 3600 * 1000LL)   /* a day: keys are checked far more often by Azure SQL */
#define SQ_ROTATION_EVERY_MIN_MS (3600 * 1000LL)        /* an hour: a typo like "1m" must not mint a version a minute */
#define SQ_DURATION_MAX_MS (100LL * 366 * 24 * 3600 * 1000) /* a century */

/* Parses a Go-style duration as the CRDs spell it ("5m", "2160h", "1h30m",
 * "250ms"): strictly digits with an optional fraction, then a unit, repeated.
 * SQ_EINVAL for anything else (including "inf", exponents, signs) or more
 * than SQ_DURATION_MAX_MS. */
sq_code sq_spec_duration_ms(const char *s, int64_t *out);

/* KeyVault: vaultUri must be https://NAME.<kv_dns_suffix>[:port][/] with a
 * valid vault name (3-24 of [A-Za-z0-9-], starting with a letter, ending
 * alphanumeric, no "--"); probeInterval parses and lies within the bounds
 * above. kv_dns_suffix is the configured cloud's (e.g. "vault.azure.net").
 * SQ_OK when valid; SQ_EINVAL with *inv filled otherwise. */
sq_code sq_validate_keyvault(const json_t *obj, const char *kv_dns_suffix, sq_invalid *inv);

/* VaultKey: vaults unique; secretRef present exactly for source import;
 * replication import across several vaults needs source import (a generated or
 * adopted key is not exportable); rotation with several vaults is refused
 * (Key Vault restore refuses an existing key name, and imported material can
 * only be rotated by a new PEM, so a new version could never reach the other
 * vaults); durations parse within bounds. */
sq_code sq_validate_vaultkey(const json_t *obj, sq_invalid *inv);

/* ManagedIdentity: resourceId names a subscription GUID; federatedClientId, if
 * set, differs from the identity's own clientId (it names the multi-tenant
 * application, not the identity). */
sq_code sq_validate_managedidentity(const json_t *obj, sq_invalid *inv);

#endif
