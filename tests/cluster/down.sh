#!/usr/bin/env bash
# Stop the cluster in DIR: kube-apiserver first, then etcd (SIGTERM, SIGKILL after a
# bound). Keeps DIR (logs, certificates, etcd data) for inspection; up.sh DIR starts it
# again with the same data. Safe to call twice or on a half-started cluster.
#
#   tests/cluster/down.sh DIR
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

[ $# -eq 1 ] || die "usage: $0 DIR"
[ -d "$1" ] || exit 0
dir=$(cd "$1" && pwd)
stop_pid "$dir/apiserver.pid" kube-apiserver 15
stop_pid "$dir/etcd.pid" etcd 15
