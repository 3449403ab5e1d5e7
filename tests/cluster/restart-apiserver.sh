#!/usr/bin/env bash
# Stop and start only the kube-apiserver of the cluster in DIR: same port, flags and
# certificates; etcd keeps running, so all objects survive. Waits for /readyz.
#
#   tests/cluster/restart-apiserver.sh [--kill] DIR     (--kill: SIGKILL instead of SIGTERM)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
"$here/kill-apiserver.sh" "$@"
"$here/start-apiserver.sh" "${@: -1}"
