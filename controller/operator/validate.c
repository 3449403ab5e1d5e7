/* validate.c — spec rules beyond the CRD schemas; see
 * include/sqltde/operator/validate.h. */
#include "sqltde/operator/validate.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "sqltde/cli/options.h"
#include "sqltde/jsonx.h"

static sq_code invalid(sq_invalid *inv, const char *field, const char *rule, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static sq_code invalid(sq_invalid *inv, const char *field, const char *rule, const char *fmt, ...) {
  if(inv) {
    char what[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(inv->field, sizeof inv->field, "%s", field);
    snprintf(inv->rule, sizeof inv->rule, "%s", rule);
    snprintf(inv->message, sizeof inv->message, "%s: %s (%s)", field, what, rule);
  }
  return SQ_EINVAL;
}

static void clear(sq_invalid *inv) {
  if(inv)
    memset(inv, 0, sizeof *inv);
}

/* 8-4-4-4-12 hex digits. */
static int is_guid(const char *s) {
  static const int groups[] = {8, 4, 4, 4, 12};
  if(!s)
    return 0;
  for(int g = 0; g < 5; g++) {
    for(int i = 0; i < groups[g]; i++, s++)
      if(!isxdigit((unsigned char)*s))
        return 0;
    if(g < 4 && *s++ != '-')
      return 0;
  }
  return *s == '\0';
}

static int nonempty(const char *s) { return s && *s; }

sq_code sq_spec_duration_ms(const char *s, int64_t *out) {
  if(!s || !*s || strlen(s) > 64)
    return SQ_EINVAL;
  /* the CRD pattern ^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$ — checked here because
   * strtod (inside sq_parse_duration_ms) also takes "inf", "1e9", "+5" */
  for(const char *p = s; *p;) {
    if(!isdigit((unsigned char)*p))
      return SQ_EINVAL;
    while(isdigit((unsigned char)*p))
      p++;
    if(*p == '.') {
      p++;
      if(!isdigit((unsigned char)*p))
        return SQ_EINVAL;
      while(isdigit((unsigned char)*p))
        p++;
    }
    if(p[0] == 'm' && p[1] == 's')
      p += 2;
    else if(*p == 's' || *p == 'm' || *p == 'h')
      p++;
    else
      return SQ_EINVAL;
  }
  int64_t ms;
  if(sq_parse_duration_ms(s, &ms) || ms > SQ_DURATION_MAX_MS)
    return SQ_EINVAL;
  *out = ms;
  return SQ_OK;
}

/* Azure vault names: 3-24 of [A-Za-z0-9-], a letter first, alphanumeric
 * last, no consecutive hyphens. */
static int vault_name_ok(const char *s, size_t n) {
  if(n < 3 || n > 24 || !isalpha((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
    return 0;
  for(size_t i = 0; i < n; i++) {
    if(!isalnum((unsigned char)s[i]) && s[i] != '-')
      return 0;
    if(s[i] == '-' && i + 1 < n && s[i + 1] == '-')
      return 0;
  }
  return 1;
}

/* ARM resource group names: 1-90 of letters, digits, '_', '-', '.', '(',
 * ')', not ending in '.'. */
static int rg_ok(const char *s) {
  size_t n = s ? strlen(s) : 0;
  if(n < 1 || n > 90 || s[n - 1] == '.')
    return 0;
  for(size_t i = 0; i < n; i++)
    if(!isalnum((unsigned char)s[i]) && !strchr("_-.()", s[i]))
      return 0;
  return 1;
}

sq_code sq_validate_keyvault(const json_t *obj, const char *kv_dns_suffix, sq_invalid *inv) {
  clear(inv);
  const json_t *spec = sq_json_path(obj, "spec");
  if(!json_is_object(spec))
    return invalid(inv, "spec", "Required", "the spec is missing");
  const char *uri = sq_json_str(spec, "vaultUri");
  if(!nonempty(uri))
    return invalid(inv, "spec.vaultUri", "Required", "the vault URI is required");
  if(strncasecmp(uri, "https://", 8))
    return invalid(inv, "spec.vaultUri", "VaultUriNotHttps", "must start with https://");
  const char *host = uri + 8;
  size_t hn = strcspn(host, ":/");
  const char *rest = host + hn;
  if(*rest == ':') {
    const char *p = rest + 1;
    size_t digits = strspn(p, "0123456789");
    long port = digits && digits <= 5 ? strtol(p, NULL, 10) : 0;
    if(port < 1 || port > 65535)
      return invalid(inv, "spec.vaultUri", "VaultUriInvalidPort", "the port must be 1-65535");
    rest = p + digits;
  }
  if(*rest == '/')
    rest++;
  if(*rest)
    return invalid(inv, "spec.vaultUri", "VaultUriHasPath",
                   "must be the vault's origin (https://NAME.%s/), without a path, query or fragment",
                   kv_dns_suffix ? kv_dns_suffix : "vault.azure.net");
  const char *dot = memchr(host, '.', hn);
  size_t sl = kv_dns_suffix ? strlen(kv_dns_suffix) : 0;
  if(!dot || !sl || hn - (size_t)(dot + 1 - host) != sl || strncasecmp(dot + 1, kv_dns_suffix, sl))
    return invalid(inv, "spec.vaultUri", "VaultUriNotInCloud",
                   "the host must be NAME.%s, the Key Vault DNS suffix of the configured Azure cloud",
                   sl ? kv_dns_suffix : "(none configured)");
  if(!vault_name_ok(host, (size_t)(dot - host)))
    return invalid(inv, "spec.vaultUri", "InvalidVaultName",
                   "vault names are 3-24 letters, digits and hyphens, start with a letter, end with a "
                   "letter or digit and have no consecutive hyphens");
  if(!nonempty(sq_json_str(spec, "location")))
    return invalid(inv, "spec.location", "Required", "the vault's region is required");
  if(!is_guid(sq_json_str(spec, "subscriptionId")))
    return invalid(inv, "spec.subscriptionId", "InvalidGuid", "must be a subscription id (a GUID)");
  if(!rg_ok(sq_json_str(spec, "resourceGroup")))
    return invalid(inv, "spec.resourceGroup", "InvalidResourceGroup",
                   "must be 1-90 letters, digits, '_', '-', '.', '(' or ')', not ending in '.'");
  if(!is_guid(sq_json_str(spec, "tenantId")))
    return invalid(inv, "spec.tenantId", "InvalidGuid", "must be an Entra tenant id (a GUID)");
  const json_t *pi = json_object_get(spec, "probeInterval");
  if(pi) {
    int64_t ms;
    if(!json_is_string(pi) || sq_spec_duration_ms(json_string_value(pi), &ms))
      return invalid(inv, "spec.probeInterval", "InvalidDuration", "must be a duration such as 30s, 5m or 1h");
    if(ms < SQ_PROBE_INTERVAL_MIN_MS || ms > SQ_PROBE_INTERVAL_MAX_MS)
      return invalid(inv, "spec.probeInterval", "ProbeIntervalOutOfRange", "must be between 10s and 24h");
  }
  return SQ_OK;
}

static int key_name_ok(const char *s) {
  size_t n = s ? strlen(s) : 0;
  if(n < 1 || n > 127)
    return 0;
  for(size_t i = 0; i < n; i++)
    if(!isalnum((unsigned char)s[i]) && s[i] != '-')
      return 0;
  return 1;
}

sq_code sq_validate_vaultkey(const json_t *obj, sq_invalid *inv) {
  clear(inv);
  const json_t *spec = sq_json_path(obj, "spec");
  if(!json_is_object(spec))
    return invalid(inv, "spec", "Required", "the spec is missing");
  const json_t *vaults = json_object_get(spec, "vaults");
  size_t nv = json_is_array(vaults) ? json_array_size(vaults) : 0;
  if(nv < 1 || nv > 8)
    return invalid(inv, "spec.vaults", "VaultCount", "list 1 to 8 KeyVaults; the first is the primary");
  for(size_t i = 0; i < nv; i++) {
    const char *n = sq_json_str(json_array_get(vaults, i), "name");
    char field[64];
    snprintf(field, sizeof field, "spec.vaults[%zu].name", i);
    if(!nonempty(n) || strlen(n) > 253)
      return invalid(inv, field, "Required", "each vault needs the name of a KeyVault object");
    for(size_t j = 0; j < i; j++)
      if(!strcmp(n, sq_json_str(json_array_get(vaults, j), "name")))
        return invalid(inv, field, "DuplicateVault", "KeyVault %.200s is listed twice", n);
  }
  if(!key_name_ok(sq_json_str(spec, "keyName")))
    return invalid(inv, "spec.keyName", "InvalidKeyName", "must be 1-127 letters, digits and hyphens");

  const char *type = sq_json_str(spec, "source.type");
  if(!type || (strcmp(type, "generate") && strcmp(type, "import") && strcmp(type, "existing")))
    return invalid(inv, "spec.source.type", "InvalidSourceType", "must be generate, import or existing");
  int import = !strcmp(type, "import");
  const char *kty = sq_json_str(spec, "source.kty");
  if(kty && strcmp(kty, "RSA") && strcmp(kty, "RSA-HSM"))
    return invalid(inv, "spec.source.kty", "InvalidKeyType", "must be RSA or RSA-HSM");
  const json_t *size = sq_json_path(spec, "source.size");
  if(size) {
    json_int_t s = json_is_integer(size) ? json_integer_value(size) : 0;
    if(s != 2048 && s != 3072 && s != 4096)
      return invalid(inv, "spec.source.size", "InvalidKeySize",
                     "must be 2048, 3072 or 4096 bits (Azure SQL refuses smaller keys)");
  }
  const json_t *sref = sq_json_path(spec, "source.secretRef");
  if(import && !nonempty(sq_json_str(sref, "name")))
    return invalid(inv, "spec.source.secretRef.name", "SecretRefRequired",
                   "source import reads the PEM private key from a Secret; name it here");
  if(!import && sref)
    return invalid(inv, "spec.source.secretRef", "SecretRefOnlyForImport",
                   "is only read when source.type is import; remove it or change the source");
  const char *skey = sq_json_str(sref, "key");
  if(sref && skey && (!*skey || strlen(skey) > 253 || strspn(skey, "abcdefghijklmnopqrstuvwxyz"
                                                                    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != strlen(skey)))
    return invalid(inv, "spec.source.secretRef.key", "InvalidSecretKey",
                   "must be a Secret data key (letters, digits, '-', '_', '.')");

  const char *repl = sq_json_str(spec, "replication");
  if(repl && strcmp(repl, "backupRestore") && strcmp(repl, "import"))
    return invalid(inv, "spec.replication", "InvalidReplication", "must be backupRestore or import");
  int repl_import = repl && !strcmp(repl, "import");
  if(nv > 1 && repl_import && !import)
    return invalid(inv, "spec.replication", "ImportReplicationNeedsPem",
                   "import replication imports the Secret's PEM into every vault, so it needs source.type "
                   "import; a %s key is not exportable, use backupRestore (same subscription and geography)",
                   type);

  const json_t *rot = json_object_get(spec, "rotation");
  const char *every = sq_json_str(rot, "every");
  const char *trigger = sq_json_str(rot, "trigger");
  if(json_object_get(rot, "every") && !every)
    return invalid(inv, "spec.rotation.every", "InvalidDuration", "must be a duration such as 2160h");
  if(every) {
    int64_t ms;
    if(sq_spec_duration_ms(every, &ms))
      return invalid(inv, "spec.rotation.every", "InvalidDuration", "must be a duration such as 2160h");
    if(ms < SQ_ROTATION_EVERY_MIN_MS)
      return invalid(inv, "spec.rotation.every", "RotationIntervalTooShort",
                     "must be at least 1h: every rotation adds a key version that backups may need forever");
  }
  if(trigger && strlen(trigger) > 63)
    return invalid(inv, "spec.rotation.trigger", "TriggerTooLong", "must be at most 63 characters");
  if(nv > 1 && (every || nonempty(trigger))) {
    if(repl_import)
      return invalid(inv, "spec.rotation", "RotationCannotReplicate",
                     "a key replicated by import is rotated by putting a new PEM in the Secret; a version "
                     "made inside Key Vault could not be imported into the other vaults");
    return invalid(inv, "spec.rotation", "RotationCannotReplicate",
                   "Key Vault restore refuses a key name that already exists, so a new version could never "
                   "reach spec.vaults[1..] by backupRestore; use one vault, or source import with "
                   "replication import and rotate by changing the Secret's PEM");
  }
  const json_t *ew = json_object_get(spec, "expiryWarning");
  if(ew) {
    int64_t ms;
    if(!json_is_string(ew) || sq_spec_duration_ms(json_string_value(ew), &ms))
      return invalid(inv, "spec.expiryWarning", "InvalidDuration", "must be a duration such as 720h");
  }
  return SQ_OK;
}

sq_code sq_validate_managedidentity(const json_t *obj, sq_invalid *inv) {
  clear(inv);
  const json_t *spec = sq_json_path(obj, "spec");
  if(!json_is_object(spec))
    return invalid(inv, "spec", "Required", "the spec is missing");
  const char *rid = sq_json_str(spec, "resourceId");
  static const char pre[] = "/subscriptions/";
  if(!nonempty(rid) || strncasecmp(rid, pre, sizeof pre - 1))
    return invalid(inv, "spec.resourceId", "InvalidResourceId",
                   "must be /subscriptions/SUB/resourceGroups/RG/providers/Microsoft.ManagedIdentity/"
                   "userAssignedIdentities/NAME");
  char sub[64];
  const char *s = rid + sizeof pre - 1;
  size_t sn = strcspn(s, "/");
  snprintf(sub, sizeof sub, "%.*s", (int)(sn < sizeof sub ? sn : sizeof sub - 1), s);
  if(sn >= sizeof sub || !is_guid(sub))
    return invalid(inv, "spec.resourceId", "InvalidResourceId", "the subscription segment must be a GUID");
  if(!strcasestr(rid, "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/"))
    return invalid(inv, "spec.resourceId", "NotUserAssignedIdentity",
                   "must name a user-assigned identity (system-assigned identities are not supported at "
                   "database level)");
  const char *client = sq_json_str(spec, "clientId");
  if(!is_guid(client))
    return invalid(inv, "spec.clientId", "InvalidGuid", "must be the identity's client id (a GUID)");
  if(!is_guid(sq_json_str(spec, "principalId")))
    return invalid(inv, "spec.principalId", "InvalidGuid", "must be the identity's object (principal) id (a GUID)");
  const char *fed = sq_json_str(spec, "federatedClientId");
  if(json_object_get(spec, "federatedClientId") && !is_guid(fed))
    return invalid(inv, "spec.federatedClientId", "InvalidGuid", "must be the multi-tenant application's id");
  if(fed && !strcasecmp(fed, client))
    return invalid(inv, "spec.federatedClientId", "FederatedClientIsIdentity",
                   "names the multi-tenant application registered in the key's tenant, not the identity "
                   "itself; it cannot equal spec.clientId");
  if(!strcasecmp(client, sq_json_str(spec, "principalId")))
    return invalid(inv, "spec.principalId", "PrincipalIsClientId",
                   "the object (principal) id differs from the client id; copy principalId from the "
                   "identity's properties");
  return SQ_OK;
}
