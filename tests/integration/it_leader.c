/* it_leader.c — leader election between real processes on a real apiserver.
 *
 * The binary is both the test and the candidate: started with
 *   it_leader --candidate NAME NAMESPACE LEASE LOGFILE
 * it campaigns for LEASE with short timings (lease 3 s, renew deadline 2 s,
 * retry 0.5 s) and appends "<monotonic ms> <event> <arg>" lines to LOGFILE
 * (identity, started, stopped lost|released, newleader, exit). CLOCK_MONOTONIC
 * is shared by all processes on the machine, so the test compares the
 * candidates' times directly to check that leadership never overlaps.
 * SIGTERM = clean shutdown (release); SIGKILL = crash. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sqltde/clock.h"
#include "sqltde/http.h"
#include "sqltde/jsonx.h"
#include "sqltde/kube/client.h"
#include "sqltde/kube/leader.h"
#include "test.h"

#define LEASE_MS 3000
#define RENEW_MS 2000
#define RETRY_MS 500

static const sq_kube_gvr LEASES = {"coordination.k8s.io", "v1", "leases", "Lease", 1};
static const sq_kube_gvr NAMESPACES = {"", "v1", "namespaces", "Namespace", 0};

static sq_kube *new_kube(sq_err *err) {
  sq_kube_config cfg;
  sq_kube *k = NULL;
  const char *kc = getenv("KUBECONFIG");
  if(!kc || !*kc) {
    sq_err_set(err, SQ_EINVAL, "KUBECONFIG is not set (run through with-cluster.sh)");
    return NULL;
  }
  if(sq_kube_config_load_file(kc, NULL, &cfg, err))
    return NULL;
  sq_code rc = sq_kube_new(&cfg, &k, err);
  sq_kube_config_free(&cfg);
  return rc ? NULL : k;
}

/* ---- the candidate process ------------------------------------------------ */

static int g_logfd = -1;
static atomic_int g_lost;

static void say(const char *ev, const char *arg) {
  char line[512];
  int n = snprintf(line, sizeof line, "%lld %s %s\n", (long long)sq_mono_ms(), ev, arg ? arg : "-");
  if(n > 0 && write(g_logfd, line, (size_t)n) < 0)
    perror("candidate log");
}

static void on_started(void *ud) {
  (void)ud;
  say("started", "-");
}
static void on_stopped(void *ud, sq_leader_stop_reason why) {
  (void)ud;
  say("stopped", why == SQ_LEADER_LOST ? "lost" : "released");
  if(why == SQ_LEADER_LOST)
    atomic_store(&g_lost, 1);
}
static void on_new_leader(void *ud, const char *id) {
  (void)ud;
  say("newleader", id);
}

static int candidate_main(int argc, char **argv) {
  if(argc != 6) {
    fprintf(stderr, "usage: %s --candidate NAME NAMESPACE LEASE LOGFILE\n", argv[0]);
    return 2;
  }
  sq_err err;
  sq_leader *l = NULL;
  g_logfd = open(argv[5], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if(g_logfd < 0) {
    perror(argv[5]);
    return 2;
  }
  /* SIGTERM is taken synchronously by this thread: block it before any
   * thread exists so none of them gets it. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  sq_http_global_init();
  sq_kube *k = new_kube(&err);
  if(!k) {
    fprintf(stderr, "candidate %s: %s\n", argv[2], err.message);
    return 2;
  }
  sq_leader_config c;
  memset(&c, 0, sizeof c);
  c.lease_namespace = argv[3];
  c.lease_name = argv[4];
  c.lease_duration_ms = LEASE_MS;
  c.renew_deadline_ms = RENEW_MS;
  c.retry_period_ms = RETRY_MS;
  c.on_started_leading = on_started;
  c.on_stopped_leading = on_stopped;
  c.on_new_leader = on_new_leader;
  if(sq_leader_new(k, &c, &l, &err) || sq_leader_start(l, &err)) {
    fprintf(stderr, "candidate %s: %s\n", argv[2], err.message);
    return 2;
  }
  say("identity", sq_leader_identity(l));
  for(;;) {
    struct timespec to = {0, 100 * 1000 * 1000};
    if(sigtimedwait(&set, NULL, &to) == SIGTERM)
      break;
    if(atomic_load(&g_lost)) {
      /* Like the operator: leadership is gone, exit now; a request may still
       * be stuck in the network, so do not wait for the threads. */
      say("exit", "lost");
      _exit(3);
    }
  }
  sq_leader_stop(l);
  sq_leader_status st;
  sq_leader_get_status(l, &st);
  char arg[64];
  snprintf(arg, sizeof arg, "%lld", (long long)st.last_renew_ms);
  say("exit", arg);
  sq_leader_free(l);
  sq_kube_free(k);
  close(g_logfd);
  return 0;
}

/* ---- the test side -------------------------------------------------------- */

typedef struct cand {
  char name[16];
  pid_t pid;
  char log[PATH_MAX];
  char id[SQ_LEADER_ID_MAX + 1];
} cand;

#define MAX_CANDS 8
static pid_t g_children[MAX_CANDS];
static int g_nchildren;
static char g_ns[64];
static char g_tmp[256];
static sq_kube *g_k;

static void kill_children(void) {
  for(int i = 0; i < g_nchildren; i++)
    if(g_children[i] > 0) {
      kill(g_children[i], SIGKILL);
      waitpid(g_children[i], NULL, 0);
      g_children[i] = 0;
    }
  g_nchildren = 0;
}

static void forget_child(pid_t pid) {
  for(int i = 0; i < g_nchildren; i++)
    if(g_children[i] == pid)
      g_children[i] = 0;
}

static sq_kube *kube(void) {
  sq_err err;
  if(!g_k) {
    sq_http_global_init();
    g_k = new_kube(&err);
    if(!g_k)
      TEST_FAIL_("kube client: %s", err.message);
    atexit(kill_children);
  }
  return g_k;
}

static void setup(void) {
  sq_err err;
  kill_children(); /* leftovers of a failed case */
  if(!g_ns[0]) {
    snprintf(g_ns, sizeof g_ns, "it-leader-%d", (int)getpid());
    json_t *ns = json_pack("{s:s,s:s,s:{s:s}}", "apiVersion", "v1", "kind", "Namespace",
                           "metadata", "name", g_ns);
    sq_code rc = sq_kube_create(kube(), &NAMESPACES, NULL, ns, NULL, &err);
    json_decref(ns);
    if(rc && rc != SQ_ECONFLICT)
      TEST_FAIL_("create namespace: %s", err.message);
    snprintf(g_tmp, sizeof g_tmp, "%s/it-leader-%d-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (int)getpid());
    if(!mkdtemp(g_tmp))
      TEST_FAIL_("mkdtemp: %s", strerror(errno));
  }
}

static void spawn(cand *c, const char *name, const char *lease) {
  memset(c, 0, sizeof *c);
  snprintf(c->name, sizeof c->name, "%s", name);
  snprintf(c->log, sizeof c->log, "%s/%s-%s.log", g_tmp, lease, name);
  unlink(c->log);
  pid_t pid = fork();
  if(pid < 0)
    TEST_FAIL_("fork: %s", strerror(errno));
  if(pid == 0) {
    execl("/proc/self/exe", "it_leader", "--candidate", name, g_ns, lease, c->log, (char *)NULL);
    _exit(127);
  }
  c->pid = pid;
  if(g_nchildren < MAX_CANDS)
    g_children[g_nchildren++] = pid;
}

/* Time of the first "<ev> <arg>" line (arg NULL = any) at or after since_ms;
 * -1 if none. The arg of the match is copied to arg_out when non-NULL. */
static int64_t find_event(const cand *c, const char *ev, const char *arg, int64_t since_ms,
                          char *arg_out, size_t arg_n) {
  FILE *f = fopen(c->log, "r");
  char line[512];
  int64_t found = -1;
  if(!f)
    return -1;
  while(fgets(line, sizeof line, f)) {
    long long ms;
    char e[32], a[400];
    if(sscanf(line, "%lld %31s %399s", &ms, e, a) != 3)
      continue;
    if(ms < since_ms || strcmp(e, ev) || (arg && strcmp(a, arg)))
      continue;
    found = ms;
    if(arg_out) {
      size_t n = strlen(a);
      if(n >= arg_n)
        n = arg_n - 1;
      memcpy(arg_out, a, n);
      arg_out[n] = '\0';
    }
    break;
  }
  fclose(f);
  return found;
}

static int64_t wait_event(const cand *c, const char *ev, const char *arg, int64_t timeout_ms) {
  int64_t end = sq_mono_ms() + timeout_ms;
  for(;;) {
    int64_t t = find_event(c, ev, arg, 0, NULL, 0);
    if(t >= 0 || sq_mono_ms() > end)
      return t;
    sq_sleep_ms(50);
  }
}

static void load_identity(cand *c) {
  int64_t end = sq_mono_ms() + 30000;
  while(find_event(c, "identity", NULL, 0, c->id, sizeof c->id) < 0) {
    if(sq_mono_ms() > end)
      TEST_FAIL_("candidate %s never started (see its stderr)", c->name);
    sq_sleep_ms(50);
  }
}

static json_t *get_lease(const char *lease) {
  json_t *o = NULL;
  sq_err err;
  if(sq_kube_get(kube(), &LEASES, g_ns, lease, &o, &err))
    TEST_FAIL_("get lease %s: %s", lease, err.message);
  return o;
}

static void stop_cand(cand *c, int sig) {
  int st = 0;
  kill(c->pid, sig);
  waitpid(c->pid, &st, 0);
  forget_child(c->pid);
  if(sig == SIGTERM && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
    TEST_FAIL_("candidate %s did not exit cleanly (status %d)", c->name, st);
}

/* Two candidates: exactly one leads; the follower sees it; after a crash of
 * the leader the follower takes over once the lease has expired, not before
 * and not much after. */
TEST(failover_after_leader_crash) {
  setup();
  cand a, b;
  spawn(&a, "a", "failover");
  spawn(&b, "b", "failover");
  load_identity(&a);
  load_identity(&b);
  ASSERT(strcmp(a.id, b.id) != 0);

  /* Someone leads within a few retry periods. */
  int64_t end = sq_mono_ms() + 30000, ta = -1, tb = -1;
  while(ta < 0 && tb < 0 && sq_mono_ms() < end) {
    sq_sleep_ms(50);
    ta = find_event(&a, "started", NULL, 0, NULL, 0);
    tb = find_event(&b, "started", NULL, 0, NULL, 0);
  }
  ASSERT(ta >= 0 || tb >= 0);
  cand *leader = ta >= 0 ? &a : &b, *follower = ta >= 0 ? &b : &a;

  /* Hold for more than a lease duration: still one leader, the other
   * follows and has been told who leads. */
  sq_sleep_ms(LEASE_MS + 1500);
  ASSERT_EQ(find_event(follower, "started", NULL, 0, NULL, 0), -1);
  ASSERT_EQ(find_event(leader, "stopped", NULL, 0, NULL, 0), -1);
  ASSERT_GE(find_event(follower, "newleader", leader->id, 0, NULL, 0), 0);

  json_t *lease = get_lease("failover");
  ASSERT_STR_EQ(sq_json_str(lease, "spec.holderIdentity"), leader->id);
  ASSERT_EQ(sq_json_int(lease, "spec.leaseDurationSeconds", -1), LEASE_MS / 1000);
  int64_t transitions = sq_json_int(lease, "spec.leaseTransitions", -1);
  ASSERT_GE(transitions, 0);
  /* The leader keeps renewing: renewTime moves, acquireTime and the
   * transition count stay. */
  char renew1[64], acquire1[64];
  snprintf(renew1, sizeof renew1, "%s", sq_json_str(lease, "spec.renewTime"));
  snprintf(acquire1, sizeof acquire1, "%s", sq_json_str(lease, "spec.acquireTime"));
  json_decref(lease);
  sq_sleep_ms(RETRY_MS * 3);
  lease = get_lease("failover");
  ASSERT(strcmp(renew1, sq_json_str(lease, "spec.renewTime")) != 0);
  ASSERT_STR_EQ(sq_json_str(lease, "spec.acquireTime"), acquire1);
  ASSERT_EQ(sq_json_int(lease, "spec.leaseTransitions", -1), transitions);
  json_decref(lease);

  /* Crash the leader. */
  stop_cand(leader, SIGKILL);
  int64_t t_kill = sq_mono_ms();
  int64_t t_take = wait_event(follower, "started", NULL, 30000);
  ASSERT_GE(t_take, 0);
  int64_t delay = t_take - t_kill;
  printf("  takeover %lld ms after the kill (lease %d ms)\n", (long long)delay, LEASE_MS);
  /* Never two leaders: the follower started only after the leader died. */
  ASSERT_GT(t_take, t_kill);
  /* Not before expiry: the dead leader's last renewal was at most a renew
   * deadline before the kill (it had not stepped down), and the follower
   * must then wait a full lease from when it saw that renewal. */
  ASSERT_GE(delay, LEASE_MS - RENEW_MS);
  /* Within the lease duration plus a jittered retry, with a generous margin
   * for a loaded machine. */
  ASSERT_LE(delay, LEASE_MS + 2 * RETRY_MS + 5000);

  lease = get_lease("failover");
  ASSERT_STR_EQ(sq_json_str(lease, "spec.holderIdentity"), follower->id);
  ASSERT_EQ(sq_json_int(lease, "spec.leaseTransitions", -1), transitions + 1);
  json_decref(lease);
  stop_cand(follower, SIGTERM);
}

/* A clean stop releases the lease: the successor takes over sooner than an
 * expiry ever could, and with nobody left the Lease shows no holder. */
TEST(graceful_stop_releases) {
  setup();
  cand a, b;
  spawn(&a, "a", "graceful");
  load_identity(&a);
  ASSERT_GE(wait_event(&a, "started", NULL, 30000), 0);
  spawn(&b, "b", "graceful");
  load_identity(&b);
  /* B has seen A's lease (and a renewal or two since). */
  ASSERT_GE(wait_event(&b, "newleader", a.id, 30000), 0);
  sq_sleep_ms(1000);
  ASSERT_EQ(find_event(&b, "started", NULL, 0, NULL, 0), -1);

  stop_cand(&a, SIGTERM);
  char arg[64] = "";
  int64_t a_stopped = find_event(&a, "stopped", "released", 0, NULL, 0);
  ASSERT_GE(find_event(&a, "exit", NULL, 0, arg, sizeof arg), 0);
  int64_t a_last_renew = atoll(arg);
  ASSERT_GT(a_stopped, 0);
  ASSERT_GT(a_last_renew, 0);

  /* Right after A exits the Lease is released (or B already has it). */
  json_t *lease = get_lease("graceful");
  const char *holder = sq_json_str(lease, "spec.holderIdentity");
  ASSERT(holder && (!holder[0] || !strcmp(holder, b.id)));
  json_decref(lease);

  int64_t t_take = wait_event(&b, "started", NULL, 30000);
  ASSERT_GE(t_take, 0);
  printf("  takeover %lld ms after the release; expiry would allow it only %lld ms after it\n",
         (long long)(t_take - a_stopped), (long long)(a_last_renew + LEASE_MS - a_stopped));
  ASSERT_GT(t_take, a_stopped); /* no overlap */
  /* By expiry B could not lead before a full lease after A's last renewal
   * (B saw that renewal no earlier than A began writing it). */
  ASSERT_LT(t_take, a_last_renew + LEASE_MS);

  /* The last one out leaves an empty, 1-second Lease for the next. */
  stop_cand(&b, SIGTERM);
  ASSERT_GE(find_event(&b, "stopped", "released", 0, NULL, 0), 0);
  lease = get_lease("graceful");
  ASSERT_STR_EQ(sq_json_str(lease, "spec.holderIdentity"), "");
  ASSERT_EQ(sq_json_int(lease, "spec.leaseDurationSeconds", -1), 1);
  json_decref(lease);

  /* And a newcomer gets it at once (no waiting out the old lease). */
  cand c;
  spawn(&c, "c", "graceful");
  load_identity(&c);
  int64_t t_id = find_event(&c, "identity", NULL, 0, NULL, 0);
  int64_t t_c = wait_event(&c, "started", NULL, 30000);
  ASSERT_GE(t_c, 0);
  ASSERT_LT(t_c - t_id, LEASE_MS);
  stop_cand(&c, SIGTERM);
}

/* The apiserver freezes (SIGSTOP: requests hang, nothing fails fast): the
 * leader must give up by its renew deadline even though its renewal is
 * stuck in the network, and the candidate process exits. */
TEST(frozen_apiserver_loses_leadership_by_deadline) {
  setup();
  const char *dir = getenv("SQLTDE_CLUSTER_DIR");
  if(!dir)
    TEST_FAIL_("SQLTDE_CLUSTER_DIR is not set");
  char pidfile[PATH_MAX], comm_path[64], comm[64] = "";
  snprintf(pidfile, sizeof pidfile, "%s/apiserver.pid", dir);
  FILE *f = fopen(pidfile, "r");
  ASSERT_NOT_NULL(f);
  int apid = 0;
  ASSERT_EQ(fscanf(f, "%d", &apid), 1);
  fclose(f);
  snprintf(comm_path, sizeof comm_path, "/proc/%d/comm", apid);
  f = fopen(comm_path, "r");
  ASSERT_NOT_NULL(f);
  ASSERT_NOT_NULL(fgets(comm, sizeof comm, f));
  fclose(f);
  ASSERT_STR_CONTAINS(comm, "kube-apiserver");

  cand a;
  spawn(&a, "a", "frozen");
  load_identity(&a);
  ASSERT_GE(wait_event(&a, "started", NULL, 30000), 0);
  sq_sleep_ms(RETRY_MS * 2);

  ASSERT_OK(kill(apid, SIGSTOP));
  int64_t t_freeze = sq_mono_ms();
  int64_t t_lost = wait_event(&a, "stopped", "lost", 20000);
  int st = 0;
  pid_t w = 0;
  /* A candidate that did not give up must not keep the case (and the frozen
   * apiserver) waiting: give it a moment to exit, then kill it. */
  for(int i = 0; i < 100 && w == 0; i++) {
    w = waitpid(a.pid, &st, WNOHANG);
    if(w == 0)
      sq_sleep_ms(50);
  }
  if(w == 0) {
    kill(a.pid, SIGKILL);
    waitpid(a.pid, NULL, 0);
  }
  kill(apid, SIGCONT); /* before any assertion can end the case */
  forget_child(a.pid);

  ASSERT_GE(t_lost, 0);
  printf("  leadership dropped %lld ms after the freeze (renew deadline %d ms)\n",
         (long long)(t_lost - t_freeze), RENEW_MS);
  /* The last successful renewal started at most one retry period (plus a
   * request) before the freeze; the deadline counts from that start. */
  ASSERT_LE(t_lost - t_freeze, RENEW_MS + 3000);
  ASSERT_EQ(w, a.pid);
  ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 3);

  /* The apiserver is back: the next candidate waits out the lost leader's
   * lease (it was never released) and then leads. */
  cand b;
  spawn(&b, "b", "frozen");
  load_identity(&b);
  ASSERT_GE(wait_event(&b, "started", NULL, 60000), 0);
  stop_cand(&b, SIGTERM);
}

int it_main_(int argc, char **argv);
#define main it_main_
TEST_MAIN()
#undef main

int main(int argc, char **argv) {
  if(argc > 1 && !strcmp(argv[1], "--candidate"))
    return candidate_main(argc, argv);
  int rc = it_main_(argc, argv);
  kill_children();
  if(g_k)
    sq_kube_free(g_k);
  return rc;
}
