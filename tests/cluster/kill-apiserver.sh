#!/usr/bin/env bash
# Stop only the kube-apiserver of the cluster in DIR; etcd (and so all data) stays.
# Bring it back on the same port with start-apiserver.sh DIR.
#
#   tests/cluster/kill-apiserver.sh [--kill] DIR
#
# Default: SIGTERM (graceful: open watches are closed by the server), SIGKILL after 15 s.
# --kill:  SIGKILL at once, like a crash: clients see the connection drop mid-stream.
# Safe to call when the apiserver is not running.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

sig=TERM
if [ "${1:-}" = --kill ]; then sig=KILL; shift; fi
[ $# -eq 1 ] || die "usage: $0 [--kill] DIR"
dir=$(cd "$1" && pwd)
stop_pid "$dir/apiserver.pid" kube-apiserver 15 "$sig"
# Wait until the port is released, so an immediate start-apiserver.sh can bind it.
if [ -f "$dir/env" ]; then
  port=$(sed -n 's/^APISERVER_PORT=//p' "$dir/env")
  for _ in $(seq 1 100); do port_free "$port" && break; sleep 0.1; done
fi
