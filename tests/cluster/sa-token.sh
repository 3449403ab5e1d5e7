#!/usr/bin/env bash
# Print a bound token for ServiceAccount NAMESPACE/SA of the cluster in DIR, creating the
# namespace and ServiceAccount if missing. The token comes from the TokenRequest API
# (`kubectl create token`), signed by the apiserver's SA key: RBAC applies to it exactly
# as to an operator running in a real cluster.
#
#   tests/cluster/sa-token.sh [--kubeconfig-out PATH] DIR NAMESPACE SA [DURATION]
#
# DURATION: a Go duration, default 24h (minimum 10m).
# --kubeconfig-out PATH: also write a kubeconfig that authenticates as that SA
#   (server, embedded CA, token; context namespace = NAMESPACE).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

out=
args=()
while [ $# -gt 0 ]; do
  case $1 in
    --kubeconfig-out) [ $# -ge 2 ] || die "--kubeconfig-out needs a path"; out=$2; shift 2 ;;
    --kubeconfig-out=*) out=${1#*=}; shift ;;
    -*) die "unknown option $1" ;;
    *) args+=("$1"); shift ;;
  esac
done
[ ${#args[@]} -ge 3 ] && [ ${#args[@]} -le 4 ] ||
  die "usage: $0 [--kubeconfig-out PATH] DIR NAMESPACE SA [DURATION]"
dir=$(cd "${args[0]}" && pwd); ns=${args[1]}; sa=${args[2]}; duration=${args[3]:-24h}
[ -f "$dir/env" ] || die "$dir is not a cluster dir (run up.sh)"
# shellcheck disable=SC1091
. "$dir/env"

command -v kubectl >/dev/null || ensure_pkgs kubernetes-client
k() { kubectl --kubeconfig "$KUBECONFIG" "$@"; }

# Create-or-ignore, so that concurrent callers do not trip over AlreadyExists.
k create namespace "$ns" >/dev/null 2>&1 || k get namespace "$ns" >/dev/null
k -n "$ns" create serviceaccount "$sa" >/dev/null 2>&1 || k -n "$ns" get serviceaccount "$sa" >/dev/null

if kubectl create token --help >/dev/null 2>&1; then
  token=$(k -n "$ns" create token "$sa" --duration="$duration")
else
  # kubectl < 1.24 (Debian's kubernetes-client is 1.20) has no `create token`: call the
  # same TokenRequest subresource directly.
  secs=$(py -c '
import re, sys
total = 0
for n, u in re.findall(r"(\d+)(h|m|s)", sys.argv[1]):
    total += int(n) * {"h": 3600, "m": 60, "s": 1}[u]
print(total)' "$duration")
  token=$(k create --raw "/api/v1/namespaces/$ns/serviceaccounts/$sa/token" -f - <<EOF |
{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{"expirationSeconds":$secs}}
EOF
    py -c 'import json,sys; print(json.load(sys.stdin)["status"]["token"])')
fi
[ -n "$token" ] || die "empty token"

if [ -n "$out" ]; then
  mkdir -p "$(dirname "$out")"
  umask 077
  cat >"$out" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: sqltde-test
  cluster:
    server: $APISERVER_URL
    certificate-authority-data: $(base64 -w0 "$CA_FILE")
users:
- name: $ns-$sa
  user:
    token: $token
contexts:
- name: $ns-$sa@sqltde-test
  context: {cluster: sqltde-test, user: $ns-$sa, namespace: $ns}
current-context: $ns-$sa@sqltde-test
EOF
fi
echo "$token"
