/* options.c — command-line flags; see include/sqltde/cli/options.h. */
#include "sqltde/cli/options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sq_options_defaults(sq_options *o) {
  memset(o, 0, sizeof *o);
  o->leader_election_id = "sqltde-operator-leader";
  o->lease_duration_ms = 15000;
  o->renew_deadline_ms = 10000;
  o->retry_period_ms = 2000;
  o->metrics_bind_address = ":8080";
  o->health_probe_bind_address = ":8081";
  o->log_level = SQ_LOG_INFO;
  o->max_concurrent_reconciles = 2;
  o->resync_period_ms = 10LL * 3600 * 1000;
  o->azure_cloud = "AzurePublicCloud";
}

sq_code sq_parse_duration_ms(const char *s, int64_t *out) {
  if(!s || !*s)
    return SQ_EINVAL;
  double total = 0;
  const char *p = s;
  while(*p) {
    char *end;
    double v = strtod(p, &end);
    if(end == p || v < 0)
      return SQ_EINVAL;
    p = end;
    double unit;
    if(!strncmp(p, "ms", 2)) {
      unit = 1;
      p += 2;
    } else if(*p == 's') {
      unit = 1000;
      p++;
    } else if(*p == 'm') {
      unit = 60000;
      p++;
    } else if(*p == 'h') {
      unit = 3600000;
      p++;
    } else {
      return SQ_EINVAL;
    }
    total += v * unit;
    if(total > 1e15)
      return SQ_EINVAL;
  }
  *out = (int64_t)total;
  return SQ_OK;
}

static int parse_bool(const char *v, int *out) {
  if(!v || !strcmp(v, "true") || !strcmp(v, "1")) {
    *out = 1;
    return 0;
  }
  if(!strcmp(v, "false") || !strcmp(v, "0")) {
    *out = 0;
    return 0;
  }
  return -1;
}

enum kind { K_STR, K_BOOL, K_DUR, K_INT, K_LEVEL };
typedef struct flag {
  const char *name;
  enum kind kind;
  size_t off;
  const char *help;
} flag;

#define F(n, k, field, h) {n, k, offsetof(sq_options, field), h}
static const flag flags[] = {
    F("kubeconfig", K_STR, kubeconfig, "path to a kubeconfig (default: $KUBECONFIG, in-cluster, ~/.kube/config)"),
    F("namespace", K_STR, namespace, "watch only this namespace (default: all namespaces)"),
    F("leader-elect", K_BOOL, leader_elect, "use a Lease so only one replica reconciles"),
    F("leader-election-id", K_STR, leader_election_id, "name of the Lease"),
    F("leader-election-namespace", K_STR, leader_election_ns, "namespace of the Lease"),
    F("leader-elect-lease-duration", K_DUR, lease_duration_ms, "lease duration (15s)"),
    F("leader-elect-renew-deadline", K_DUR, renew_deadline_ms, "renew deadline (10s)"),
    F("leader-elect-retry-period", K_DUR, retry_period_ms, "retry period (2s)"),
    F("metrics-bind-address", K_STR, metrics_bind_address, "address of /metrics (\":8080\"; \"0\" disables)"),
    F("health-probe-bind-address", K_STR, health_probe_bind_address, "address of /healthz and /readyz (\":8081\")"),
    F("zap-log-level", K_LEVEL, log_level, "debug | info | warn | error, or an integer (higher = more verbose)"),
    F("max-concurrent-reconciles", K_INT, max_concurrent_reconciles, "workers per controller (2)"),
    F("sync-period", K_DUR, resync_period_ms, "periodic resync of every object (10h)"),
    F("azure-resync-period", K_DUR, azure_resync_ms, "re-observe Azure state of converged resources this often (10m)"),
    F("key-check-interval", K_DUR, key_check_ms, "key-health probe interval (10m)"),
    F("permission-delay", K_DUR, permission_delay_ms, "how late Azure SQL applies Key Vault permission changes (10m)"),
    F("azure-cloud", K_STR, azure_cloud, "AzurePublicCloud | AzureUSGovernment | AzureChinaCloud | path to a custom cloud file"),
    F("azure-ca-bundle", K_STR, azure_ca_bundle, "PEM file of extra CAs to trust for Azure endpoints"),
    F("check", K_BOOL, check_only, "check access to the apiserver and exit"),
    F("help", K_BOOL, show_help, "show this help"),
    F("version", K_BOOL, show_version, "print the version"),
};
#undef F

void sq_options_usage(void *file) {
  FILE *f = file;
  fprintf(f, "usage: sqltde-operator [flags]\n\nflags:\n");
  for(size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
    fprintf(f, "  --%-30s %s\n", flags[i].name, flags[i].help);
}

sq_code sq_options_parse(sq_options *o, int argc, char **argv, sq_err *err) {
  for(int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if(strncmp(a, "--", 2) && !(a[0] == '-' && a[1] && a[1] != '-'))
      return sq_err_set(err, SQ_EINVAL, "unexpected argument \"%s\" (flags start with --)", a);
    a += a[1] == '-' ? 2 : 1; /* pflag also accepts a single dash for long names */
    const char *eq = strchr(a, '=');
    size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
    const flag *fl = NULL;
    for(size_t j = 0; j < sizeof flags / sizeof flags[0]; j++)
      if(strlen(flags[j].name) == nlen && !strncmp(flags[j].name, a, nlen))
        fl = &flags[j];
    if(!fl)
      return sq_err_set(err, SQ_EINVAL, "unknown flag --%.*s (see --help)", (int)nlen, a);
    const char *val = eq ? eq + 1 : NULL;
    if(!val && fl->kind != K_BOOL) {
      if(i + 1 >= argc)
        return sq_err_set(err, SQ_EINVAL, "flag --%s needs a value", fl->name);
      val = argv[++i];
    }
    char *field = (char *)o + fl->off;
    switch(fl->kind) {
    case K_STR:
      *(const char **)field = val;
      break;
    case K_BOOL:
      if(parse_bool(val, (int *)field))
        return sq_err_set(err, SQ_EINVAL, "flag --%s: \"%s\" is not true or false", fl->name, val);
      break;
    case K_DUR: {
      int64_t ms;
      if(sq_parse_duration_ms(val, &ms))
        return sq_err_set(err, SQ_EINVAL, "flag --%s: \"%s\" is not a duration like 15s, 1m or 250ms",
                          fl->name, val);
      *(int64_t *)field = ms;
      break;
    }
    case K_INT: {
      char *end;
      long v = strtol(val, &end, 10);
      if(*end || end == val || v < 1 || v > 1024)
        return sq_err_set(err, SQ_EINVAL, "flag --%s: \"%s\" is not an integer in 1..1024", fl->name, val);
      *(int *)field = (int)v;
      break;
    }
    case K_LEVEL:
      if(sq_log_parse_level(val, (sq_log_level *)field))
        return sq_err_set(err, SQ_EINVAL, "flag --%s: \"%s\" is not debug, info, warn, error or an integer",
                          fl->name, val);
      break;
    }
  }
  if(o->leader_elect) {
    if(o->renew_deadline_ms >= o->lease_duration_ms)
      return sq_err_set(err, SQ_EINVAL, "--leader-elect-renew-deadline must be shorter than --leader-elect-lease-duration");
    if(o->retry_period_ms >= o->renew_deadline_ms)
      return sq_err_set(err, SQ_EINVAL, "--leader-elect-retry-period must be shorter than --leader-elect-renew-deadline");
  }
  return SQ_OK;
}
