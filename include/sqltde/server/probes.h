/* server/probes.h — the operator's health probe and metrics endpoints.
 *
 * Mirrors controller-runtime's --health-probe-bind-address (serves /healthz
 * and /readyz) and --metrics-bind-address (serves /metrics), both plain
 * HTTP on the project's server (server/httpd.h). "0" or "" disables an
 * endpoint; the same address for both serves all three paths on one port.
 *
 * Checks are named callbacks registered by the caller (e.g. "informers"
 * passing once every informer has synced). /healthz always has a "ping"
 * check that passes while the process serves. Answers follow
 * Kubernetes/controller-runtime: 200 "ok"; with ?verbose one line per check
 * ("[+]name ok" / "[-]name failed: reason withheld") and a final
 * "<endpoint> check passed"; 500 with the same listing when any check fails
 * (the failure reason goes to the log, not the body). /healthz/<name> and
 * /readyz/<name> run one check (404 if unknown); ?exclude=<name> skips one. */
#ifndef SQLTDE_SERVER_PROBES_H
#define SQLTDE_SERVER_PROBES_H

#include <stddef.h>

#include "sqltde/err.h"
#include "sqltde/server/metrics.h"

/* A check: returns 0 when healthy; otherwise non-zero, with a one-line
 * reason written to why (NUL-terminated, at most why_len bytes). Runs on
 * the probe server's thread; must be quick and thread-safe. */
typedef int (*sq_probe_fn)(void *ud, char *why, size_t why_len);

typedef struct sq_probes_opts {
  const char *health_addr;  /* "[host]:port", e.g. ":8081"; NULL, "" or "0" disables */
  const char *metrics_addr; /* e.g. ":8080" or "127.0.0.1:8080"; NULL, "" or "0" disables */
  sq_metrics *metrics;      /* NULL -> sq_metrics_global() */
} sq_probes_opts;

typedef struct sq_probes sq_probes;

/* Binds and starts serving; returns once both ports are bound. */
sq_code sq_probes_start(const sq_probes_opts *opts, sq_probes **out, sq_err *err);

/* Registers a named check (names: [A-Za-z0-9_.-], unique per endpoint).
 * ud must stay valid until sq_probes_stop. Safe at any time, from any
 * thread. SQ_EINVAL for a bad or duplicate name. */
sq_code sq_probes_add_healthz(sq_probes *p, const char *name, sq_probe_fn fn, void *ud);
sq_code sq_probes_add_readyz(sq_probes *p, const char *name, sq_probe_fn fn, void *ud);

/* Bound ports (useful with ":0"); 0 when the endpoint is disabled. */
int sq_probes_health_port(const sq_probes *p);
int sq_probes_metrics_port(const sq_probes *p);

/* Stops the servers and frees everything. NULL is fine. */
void sq_probes_stop(sq_probes *p);

/* Parses a controller-runtime bind address: ":8080" (all interfaces),
 * "127.0.0.1:8081", "[::1]:8080", "localhost:0". Sets *disabled for NULL,
 * "" and "0" (host and port untouched then). host gets "" for all
 * interfaces. Pure; SQ_EINVAL on anything else. */
sq_code sq_parse_bind_addr(const char *s, char *host, size_t host_len, int *port, int *disabled,
                           sq_err *err);

#endif
