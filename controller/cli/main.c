/* main.c — the sqltde-operator entry point: flags, configuration, preflight,
 * then the manager with every controller. Any startup problem ends in one line
 * on stderr and a non-zero exit (2 for bad flags, 1 otherwise), never a crash.
 * SIGTERM/SIGINT stop it cleanly: in-flight reconciles finish, the Lease is
 * released, Events are flushed. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqltde/cli/options.h"
#include "sqltde/cli/preflight.h"
#include "sqltde/http.h"
#include "sqltde/kube/client.h"
#include "sqltde/kube/events.h"
#include "sqltde/kube/leader.h"
#include "sqltde/kube/manager.h"
#include "sqltde/log.h"
#include "sqltde/operator/op.h"
#include "sqltde/operator/register.h"
#include "sqltde/server/probes.h"

#define SQLTDE_VERSION "0.1.0"

static atomic_int g_stop;

static void on_signal(int sig) {
  (void)sig;
  atomic_store(&g_stop, 1);
}

static void install_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN); /* a peer closing a socket must not kill us */
}

/* /readyz: caches synced (a replica that is not the leader is still ready:
 * it serves probes and metrics and stands by). */
static int ready_check(void *ud, char *why, size_t why_len) {
  if(sq_manager_ready(ud))
    return 0;
  snprintf(why, why_len, "informer caches not synced yet");
  return 1;
}

int main(int argc, char **argv) {
  sq_options o;
  sq_err e;
  sq_err_clear(&e);
  sq_options_defaults(&o);
  if(sq_options_parse(&o, argc, argv, &e)) {
    fprintf(stderr, "sqltde-operator: %s\n", e.message);
    return 2;
  }
  if(o.show_help) {
    sq_options_usage(stdout);
    return 0;
  }
  if(o.show_version) {
    puts("sqltde-operator " SQLTDE_VERSION);
    return 0;
  }
  sq_log_set_level(o.log_level);
  sq_http_global_init();
  install_signals();

  sq_kube_config cfg = {0};
  sq_kube *kube = NULL;
  sq_manager *mgr = NULL;
  sq_events *events = NULL;
  sq_probes *probes = NULL;
  sq_op op;
  memset(&op, 0, sizeof op);
  int status = 1;
  char identity[SQ_LEADER_ID_MAX + 1];

  if(sq_kube_config_default(o.kubeconfig, &cfg, &e) || sq_kube_new(&cfg, &kube, &e) ||
     sq_preflight(kube, o.namespace, &e))
    goto out;
  SQ_INFO("setup", "connected to %s; access to every watched kind verified", cfg.server);
  if(o.check_only) {
    printf("sqltde-operator: access to %s ok\n", cfg.server);
    status = 0;
    goto out;
  }

  if(sq_leader_make_identity(identity, sizeof identity, &e))
    goto out;
  sq_manager_opts mo = {.namespace = o.namespace,
                        .resync_ms = o.resync_period_ms,
                        .leader_elect = o.leader_elect,
                        .leader_election_id = o.leader_election_id,
                        .leader_election_ns = o.leader_election_ns,
                        .lease_duration_ms = o.lease_duration_ms,
                        .renew_deadline_ms = o.renew_deadline_ms,
                        .retry_period_ms = o.retry_period_ms};
  if(sq_manager_new(kube, &mo, &mgr, &e))
    goto out;
  sq_events_config ec = {.reporting_instance = identity};
  if(sq_events_new(kube, &ec, &events, &e) || sq_events_start(events, &e))
    goto out;
  sq_op_config oc = {.azure_cloud = o.azure_cloud,
                     .azure_ca_bundle = o.azure_ca_bundle,
                     .resync_ms = o.azure_resync_ms,
                     .key_check_ms = o.key_check_ms,
                     .permission_delay_ms = o.permission_delay_ms};
  if(sq_op_init(&op, kube, mgr, events, &oc, &e))
    goto out;
  if(sq_register_controllers(&op, o.max_concurrent_reconciles, &e))
    goto out;
  sq_probes_opts po = {.health_addr = o.health_probe_bind_address, .metrics_addr = o.metrics_bind_address};
  if(sq_probes_start(&po, &probes, &e) ||
     sq_probes_add_readyz(probes, "informers", ready_check, mgr))
    goto out;

  sq_code rc = sq_manager_run(mgr, &g_stop, &e);
  if(rc == SQ_OK) {
    SQ_INFO("setup", "stopped");
    status = 0;
  }
out:
  if(status && e.code)
    fprintf(stderr, "sqltde-operator: %s\n", e.message[0] ? e.message : sq_code_name(e.code));
  sq_probes_stop(probes);
  sq_manager_free(mgr);
  sq_events_free(events);
  sq_op_free(&op);
  sq_kube_free(kube);
  sq_kube_config_free(&cfg);
  return status;
}
