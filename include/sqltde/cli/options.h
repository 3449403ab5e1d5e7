/* cli/options.h — the operator's command-line flags, controller-runtime style.
 *
 * Defaults live here and only here. Parsing is pure (no I/O): it fills
 * sq_options or returns SQ_EINVAL with a one-line message naming the flag. */
#ifndef SQLTDE_CLI_OPTIONS_H
#define SQLTDE_CLI_OPTIONS_H

#include <stdint.h>

#include "sqltde/err.h"
#include "sqltde/log.h"

typedef struct sq_options {
  const char *kubeconfig;           /* --kubeconfig; NULL -> $KUBECONFIG / in-cluster / ~/.kube/config */
  const char *namespace;            /* --namespace: watch only this namespace; NULL -> all */
  int leader_elect;                 /* --leader-elect */
  const char *leader_election_id;   /* --leader-election-id */
  const char *leader_election_ns;   /* --leader-election-namespace; NULL -> the kubeconfig's namespace */
  int64_t lease_duration_ms;        /* --leader-elect-lease-duration (15s) */
  int64_t renew_deadline_ms;        /* --leader-elect-renew-deadline (10s) */
  int64_t retry_period_ms;          /* --leader-elect-retry-period (2s) */
  const char *metrics_bind_address; /* --metrics-bind-address (":8080"; "0" disables) */
  const char *health_probe_bind_address; /* --health-probe-bind-address (":8081") */
  sq_log_level log_level;           /* --zap-log-level (info) */
  int max_concurrent_reconciles;    /* --max-concurrent-reconciles (2) */
  int64_t resync_period_ms;         /* --sync-period (10h) */
  int64_t azure_resync_ms;          /* --azure-resync-period (10m): re-observe Azure when nothing changed */
  int64_t key_check_ms;             /* --key-check-interval (10m) */
  int64_t permission_delay_ms;      /* --permission-delay (10m): Azure SQL sees Key Vault permission changes this late */
  const char *azure_cloud;          /* --azure-cloud: AzurePublicCloud | AzureUSGovernment | AzureChinaCloud | path of a custom cloud file */
  const char *azure_ca_bundle;      /* --azure-ca-bundle: extra CAs to trust for Azure endpoints */
  int check_only;                   /* --check: verify access to the apiserver and exit */
  int show_help;                    /* --help */
  int show_version;                 /* --version */
} sq_options;

/* Fills o with the defaults. */
void sq_options_defaults(sq_options *o);

/* Parses argv (argv[0] is skipped). Accepts --flag=value and --flag value;
 * booleans accept --flag, --flag=true|false. Strings point into argv. */
sq_code sq_options_parse(sq_options *o, int argc, char **argv, sq_err *err);

/* Parses a Go-style duration ("15s", "1m30s", "250ms", "10h") into ms. */
sq_code sq_parse_duration_ms(const char *s, int64_t *out);

/* Writes the usage text to a FILE* (void* to keep stdio out of the header). */
void sq_options_usage(void *file);

#endif
