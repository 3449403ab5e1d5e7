#!/usr/bin/env bash
# (Re)start only the kube-apiserver of the cluster in DIR, with the same flags, port and
# certificates that up.sh chose (DIR/run-apiserver.sh), and wait until /readyz is ok.
# Used by up.sh, restart-apiserver.sh, and by tests after kill-apiserver.sh.
#
#   tests/cluster/start-apiserver.sh DIR
#
# Env: APISERVER_READY_TIMEOUT seconds (default 120).
# Exit 1 with a log tail when it does not come up (the apiserver is then stopped).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

[ $# -eq 1 ] || die "usage: $0 DIR"
dir=$(cd "$1" && pwd)
[ -x "$dir/run-apiserver.sh" ] && [ -f "$dir/env" ] || die "$dir is not a cluster dir (run up.sh)"
pid_alive "$dir/apiserver.pid" kube-apiserver && die "kube-apiserver already running in $dir"
pid_alive "$dir/etcd.pid" etcd || die "etcd is not running in $dir"

# shellcheck disable=SC1091
. "$dir/env"
timeout=${APISERVER_READY_TIMEOUT:-120}

mkdir -p "$dir/logs"
echo "=== kube-apiserver start $(date -Is) port $APISERVER_PORT" >>"$dir/logs/apiserver.log"
nohup "$dir/run-apiserver.sh" </dev/null >>"$dir/logs/apiserver.log" 2>&1 &
pid=$!
echo "$pid" >"$dir/apiserver.pid"
sed -i "s/^APISERVER_PID=.*/APISERVER_PID=$pid/" "$dir/env"

deadline=$(( $(date +%s) + timeout ))
while :; do
  if ! proc_running "$pid"; then
    tail -n 30 "$dir/logs/apiserver.log" >&2
    rm -f "$dir/apiserver.pid"
    log "kube-apiserver exited during startup (log: $dir/logs/apiserver.log)"
    exit 1
  fi
  # /readyz answers "ok" once etcd is reachable and the post-start hooks (RBAC
  # bootstrap roles among them) have run.
  if [ "$(curl -sS --max-time 5 --cacert "$CA_FILE" -H "Authorization: Bearer $ADMIN_TOKEN" \
          "$APISERVER_URL/readyz" 2>/dev/null)" = ok ]; then
    break
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    curl -sS --max-time 5 --cacert "$CA_FILE" -H "Authorization: Bearer $ADMIN_TOKEN" \
      "$APISERVER_URL/readyz?verbose" >&2 || true
    tail -n 30 "$dir/logs/apiserver.log" >&2
    stop_pid "$dir/apiserver.pid" kube-apiserver 10
    log "kube-apiserver not ready after ${timeout}s (log: $dir/logs/apiserver.log)"
    exit 1
  fi
  sleep 0.2
done
log "kube-apiserver ready at $APISERVER_URL (pid $pid)"
