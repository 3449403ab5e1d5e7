/* main.c — sqltde-azure-emulator: the process around emu_handle.
 *
 *   sqltde-azure-emulator --state-dir DIR --seed FILE.yaml [--port N] [--bind ADDR]
 *                         [--reseed] [--threads N] [--log-level L]
 *
 * On first start in DIR it creates the CA and server certificate and applies
 * the seed; later starts keep DIR/state.db as it is (the seed is still
 * parsed, so a broken seed fails loudly; --reseed upserts it again). After
 * listening it writes DIR/port and then DIR/ready; both are removed on exit
 * (SIGINT / SIGTERM). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "emu.h"
#include "sqltde/log.h"

static void serve(void *ud, const sq_httpd_req *req, sq_httpd_resp *resp) {
  int latency = 0;
  emu_handle((emu *)ud, req, resp, &latency);
  /* injected latency is slept outside the state lock, on this service thread */
  if(latency > 0)
    sq_sleep_ms(latency);
}

static int write_file(const char *dir, const char *name, const char *content) {
  char path[4200], tmp[4300];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if(!f)
    return -1;
  int ok = fputs(content, f) >= 0;
  ok = fclose(f) == 0 && ok;
  if(!ok || rename(tmp, path)) {
    unlink(tmp);
    return -1;
  }
  return 0;
}

static void usage(FILE *f) {
  fprintf(f, "usage: sqltde-azure-emulator --state-dir DIR --seed FILE.yaml [--port N (0 = ephemeral)]\n"
             "                             [--bind 127.0.0.1] [--reseed] [--threads N] [--log-level L]\n");
}

int main(int argc, char **argv) {
  const char *dir = NULL, *seed = NULL, *bind = "127.0.0.1";
  int port = 0, reseed = 0, threads = 4;
  static const struct option opts[] = {
      {"state-dir", required_argument, NULL, 'd'}, {"seed", required_argument, NULL, 's'},
      {"port", required_argument, NULL, 'p'},      {"bind", required_argument, NULL, 'b'},
      {"reseed", no_argument, NULL, 'r'},          {"threads", required_argument, NULL, 't'},
      {"log-level", required_argument, NULL, 'l'}, {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  int ch;
  while((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    char *end = NULL;
    switch(ch) {
    case 'd': dir = optarg; break;
    case 's': seed = optarg; break;
    case 'b': bind = optarg; break;
    case 'r': reseed = 1; break;
    case 'p':
      port = (int)strtol(optarg, &end, 10);
      if(!*optarg || *end || port < 0 || port > 65535) {
        fprintf(stderr, "--port must be 0..65535\n");
        return 2;
      }
      break;
    case 't':
      threads = (int)strtol(optarg, &end, 10);
      if(!*optarg || *end || threads < 1 || threads > 32) {
        fprintf(stderr, "--threads must be 1..32\n");
        return 2;
      }
      break;
    case 'l': {
      sq_log_level lvl;
      if(sq_log_parse_level(optarg, &lvl)) {
        fprintf(stderr, "--log-level: debug|info|warn|error\n");
        return 2;
      }
      sq_log_set_level(lvl);
      break;
    }
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if(!dir || !seed || optind != argc) {
    usage(stderr);
    return 2;
  }
  if(mkdir(dir, 0700) && errno != EEXIST) {
    fprintf(stderr, "cannot create %s: %s\n", dir, strerror(errno));
    return 1;
  }
  char path[4200];
  snprintf(path, sizeof path, "%s/ready", dir);
  unlink(path);
  snprintf(path, sizeof path, "%s/port", dir);
  unlink(path);

  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* service threads inherit the mask */
  signal(SIGPIPE, SIG_IGN);

  sq_err err;
  sq_err_clear(&err);
  emu e;
  if(emu_tls_ensure(dir, &err)) {
    SQ_ERROR("emulator", "%s", err.message);
    return 1;
  }
  snprintf(path, sizeof path, "%s/state.db", dir);
  if(emu_open(&e, path, &err)) {
    SQ_ERROR("emulator", "%s", err.message);
    return 1;
  }
  e.path_decoded = 1;
  sq_buf seeded;
  sq_buf_init(&seeded, 64);
  int fresh = emu_meta_get(&e, "seeded", &seeded) != SQ_OK;
  sq_buf_free(&seeded);
  if(fresh || reseed) {
    if(emu_seed_load_file(&e, seed, &err)) {
      SQ_ERROR("emulator", "seed: %s", err.message);
      emu_close(&e);
      return 1;
    }
    emu_meta_set(&e, "seeded", "1", 1);
    SQ_INFO("emulator", "applied seed %s", seed);
  } else {
    /* keep the state as it is, but refuse a seed that no longer parses */
    sq_buf b;
    sq_buf_init(&b, 4u << 20);
    json_t *j = NULL;
    if(sq_buf_read_file(&b, seed, &err) || emu_yaml_to_json(b.ptr ? b.ptr : "", b.len, &j, &err)) {
      SQ_ERROR("emulator", "seed %s: %s", seed, err.message);
      sq_buf_free(&b);
      emu_close(&e);
      return 1;
    }
    json_decref(j);
    sq_buf_free(&b);
    SQ_INFO("emulator", "state exists in %s; seed not re-applied (use --reseed)", dir);
  }

  char cert[4200], key[4200];
  snprintf(cert, sizeof cert, "%s/server.pem", dir);
  snprintf(key, sizeof key, "%s/server.key", dir);
  sq_httpd_opts ho = {.bind_addr = bind,
                      .port = port,
                      .cert_file = cert,
                      .key_file = key,
                      /* bodies over EMU_MAX_BODY get 413 in each API's own shape from emu_handle;
                       * only far larger ones meet the server's generic limit */
                      .max_body = (size_t)8 << 20,
                      .threads = threads,
                      .handler = serve,
                      .ud = &e};
  sq_httpd *srv = NULL;
  if(sq_httpd_start(&ho, &srv, &err)) {
    SQ_ERROR("emulator", "cannot listen on %s:%d: %s", bind, port, err.message);
    emu_close(&e);
    return 1;
  }
  pthread_mutex_lock(&e.mu);
  e.port = sq_httpd_port(srv);
  pthread_mutex_unlock(&e.mu);
  char num[32];
  snprintf(num, sizeof num, "%d\n", e.port);
  if(write_file(dir, "port", num) || write_file(dir, "ready", num)) {
    SQ_ERROR("emulator", "cannot write %s/port or %s/ready", dir, dir);
    sq_httpd_stop(srv);
    emu_close(&e);
    return 1;
  }
  SQ_INFO("emulator", "listening on https://%s:%d (state %s)", bind, e.port, dir);

  int sig = 0;
  sigwait(&sigs, &sig);
  SQ_INFO("emulator", "signal %d: stopping", sig);
  snprintf(path, sizeof path, "%s/ready", dir);
  unlink(path);
  snprintf(path, sizeof path, "%s/port", dir);
  unlink(path);
  sq_httpd_stop(srv);
  emu_close(&e);
  return 0;
}
