#!/usr/bin/env bash
# with-cluster.sh PROGRAM [ARGS...] — runs PROGRAM against a fresh, real local
# control plane (tests/cluster/up.sh) and always tears it down afterwards.
# PROGRAM sees KUBECONFIG (admin), SQLTDE_CLUSTER_DIR (source $SQLTDE_CLUSTER_DIR/env
# for APISERVER_URL, ETCD_URL, ...) and SQLTDE_SOURCE_DIR.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
[ $# -ge 1 ] || { echo "usage: $0 PROGRAM [ARGS...]" >&2; exit 2; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/sqltde-it.XXXXXX")
cleanup() {
  bash "$root/tests/cluster/down.sh" "$dir" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

if ! bash "$root/tests/cluster/up.sh" "$dir" >"$dir.up.log" 2>&1; then
  echo "with-cluster: control plane failed to start:" >&2
  cat "$dir.up.log" >&2
  rm -f "$dir.up.log"
  exit 1
fi
rm -f "$dir.up.log"
export SQLTDE_CLUSTER_DIR="$dir" KUBECONFIG="$dir/kubeconfig" SQLTDE_SOURCE_DIR="$root"
"$@"
