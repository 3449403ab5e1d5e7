/* azure/cloud.h — where Azure is: the endpoints of one cloud.
 *
 * Every Azure client takes its endpoints from an sq_azure_cloud, never from
 * constants, so the public cloud, the sovereign clouds and the project's
 * emulator are all "just a cloud". A cloud is one of the named environments
 * (AzurePublicCloud, AzureUSGovernment, AzureChinaCloud) or a custom one read
 * from a small JSON or YAML file and/or set field by field from flags.
 *
 * TLS: ca_file names a PEM bundle to trust (passed to sq_http_opts.ca_file);
 * empty means the system store. There is deliberately no way to switch
 * certificate verification off.
 *
 * The struct holds only fixed-size strings: copy it freely, nothing to free. */
#ifndef SQLTDE_AZURE_CLOUD_H
#define SQLTDE_AZURE_CLOUD_H

#include <stddef.h>

#include "sqltde/err.h"

#define SQ_AZ_URL_MAX 256

typedef struct sq_azure_cloud {
  char name[64];                        /* "AzurePublicCloud", ... or "custom" */
  char authority_host[SQ_AZ_URL_MAX];   /* Entra ID, e.g. https://login.microsoftonline.com */
  char arm_endpoint[SQ_AZ_URL_MAX];     /* e.g. https://management.azure.com */
  char arm_audience[SQ_AZ_URL_MAX];     /* token audience for ARM (scope = audience/.default) */
  char kv_dns_suffix[SQ_AZ_URL_MAX];    /* e.g. vault.azure.net (no scheme, no dot in front) */
  char kv_audience[SQ_AZ_URL_MAX];      /* e.g. https://vault.azure.net */
  char ca_file[1024];                   /* PEM bundle to trust; "" = system store */
} sq_azure_cloud;

/* Fills out with a named environment. Names are matched case-insensitively
 * and accept the usual aliases: "AzurePublicCloud"/"public"/"AzureCloud",
 * "AzureUSGovernment"/"usgovernment"/"AzureUSGovernmentCloud",
 * "AzureChinaCloud"/"china". Unknown name -> SQ_EINVAL listing the names. */
sq_code sq_azure_cloud_named(const char *name, sq_azure_cloud *out, sq_err *err);

/* Reads a custom cloud from a file: a JSON object or a YAML mapping of
 * scalars with these keys (all strings):
 *   name, authorityHost, resourceManagerEndpoint, resourceManagerAudience,
 *   keyVaultDNSSuffix, keyVaultAudience, caFile
 * plus optional "base": a named environment whose values fill the keys the
 * file leaves out. Without "base" every endpoint key is required. Unknown keys
 * are an error (a typo must not silently fall back to the public cloud).
 * A relative caFile is resolved against the file's directory. The result is
 * validated (sq_azure_cloud_validate). */
sq_code sq_azure_cloud_load_file(const char *path, sq_azure_cloud *out, sq_err *err);

/* Sets one field by its flag name (without leading dashes):
 *   azure-cloud               named environment (resets every field) or
 *                             "@<path>" for a file as above
 *   azure-authority-host      azure-arm-endpoint     azure-arm-audience
 *   azure-keyvault-dns-suffix azure-keyvault-audience azure-ca-file
 * Unknown flag -> SQ_EINVAL. Call sq_azure_cloud_validate after the last one. */
sq_code sq_azure_cloud_set(sq_azure_cloud *c, const char *flag, const char *value, sq_err *err);

/* Checks every endpoint is an https URL with a host and no query/fragment,
 * the DNS suffix is a bare host name, and normalises (trailing '/' removed).
 * An "http://" endpoint is refused: tokens never travel in clear text. */
sq_code sq_azure_cloud_validate(sq_azure_cloud *c, sq_err *err);

/* "<audience>/.default" with any trailing '/' of audience dropped, into out.
 * SQ_ETOOBIG if it does not fit. */
sq_code sq_azure_scope(const char *audience, char *out, size_t outlen, sq_err *err);

/* Splits an absolute URL into scheme ("https"), host (lower-cased, no port) and
 * port (0 if none given). Returns SQ_EINVAL for anything that is not
 * scheme://host[:port][/...]. Buffers are caller-provided. */
sq_code sq_azure_url_split(const char *url, char *scheme, size_t scheme_len, char *host,
                           size_t host_len, int *port);

/* True when url has the same scheme, host and effective port as base (a URL
 * or bare origin). Used before sending a bearer token to a URL a server gave
 * us (LRO status URLs, nextLinks). */
int sq_azure_same_origin(const char *url, const char *base);

/* True when host ends with "." + suffix (case-insensitive, whole labels). */
int sq_azure_host_has_suffix(const char *host, const char *suffix);

#endif
