#!/usr/bin/env bash
# shellcheck disable=SC1091  # DIR/env files exist only at run time
# Self-test of the local control plane scripts: two clusters side by side, a CRD with a
# status subresource, RBAC on a ServiceAccount token, apiserver kill/restart keeping
# data, watch history compaction (410), clean teardown. Last line: "N passed, M failed".
#
#   tests/cluster/selftest.sh
#
# Env: KEEP=1 keeps the cluster dirs (they are always kept when a check fails).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

passed=0 failed=0
base=$(mktemp -d "${TMPDIR:-/tmp}/sqltde-cluster-selftest.XXXXXX")
A=$base/a B=$base/b
out=$base/last.out   # output of the last check, shown when it fails

finish() {
  local rc=$?
  "$here/down.sh" "$A" >/dev/null 2>&1 || true
  "$here/down.sh" "$B" >/dev/null 2>&1 || true
  if [ "$failed" -eq 0 ] && [ "$rc" -eq 0 ] && [ "${KEEP:-0}" != 1 ]; then
    rm -rf "$base"
  else
    echo "cluster dirs kept in $base (logs in */logs/)"
  fi
  [ "$rc" -eq 0 ] || [ "$failed" -gt 0 ] || failed=1   # a crash counts as a failure
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ] && exit "$rc"
  exit 1
}
trap finish EXIT

# check NAME CMD...: run CMD (output to $out), count and print the result.
check() {
  local name=$1; shift
  if "$@" >"$out" 2>&1; then
    passed=$((passed + 1)); echo "PASS $name"
  else
    failed=$((failed + 1)); echo "FAIL $name"; sed 's/^/    /' "$out" | tail -n 25
  fi
}

kA() { kubectl --kubeconfig "$A/kubeconfig" "$@"; }
kB() { kubectl --kubeconfig "$B/kubeconfig" "$@"; }
envof() { (. "$1/env"; eval "echo \"\$$2\""); }

# http_code DIR TOKEN METHOD PATH [JSON-BODY [CONTENT-TYPE]]: HTTP status of one request.
http_code() {
  local dir=$1 token=$2 method=$3 path=$4 body=${5:-} ctype=${6:-application/json}
  curl -sS -o "$base/http.body" -w '%{http_code}' --max-time 10 \
    --cacert "$(envof "$dir" CA_FILE)" -H "Authorization: Bearer $token" \
    -X "$method" ${body:+-H "Content-Type: $ctype" --data "$body"} \
    "$(envof "$dir" APISERVER_URL)$path"
}
# expect_code WANT DIR TOKEN METHOD PATH [BODY [CTYPE]]
expect_code() {
  local want=$1 got; shift
  got=$(http_code "$@") || true
  echo "$3 $4 -> $got (want $want)"; cat "$base/http.body" 2>/dev/null; echo
  [ "$got" = "$want" ]
}
# eventually SECONDS CMD...: retry CMD every 0.5 s until it succeeds or time runs out.
eventually() {
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@"; do [ "$(date +%s)" -lt "$deadline" ] || return 1; sleep 0.5; done
}

# Checks below run inside `if` (errexit is off there): each chains its steps with &&.

# ---- bring up two clusters at once (exercises port choice and the build lock) --------
echo "bringing up two clusters in $base (the first run ever builds kube-apiserver: ~5 min)"
"$here/up.sh" "$A" >"$base/up-a.log" 2>&1 & pa=$!
# Cluster B disables the apiserver's own etcd compaction and its watch cache, so that a
# manual `etcdctl compact` makes watches from old resourceVersions answer 410 Gone.
APISERVER_EXTRA_ARGS="--etcd-compaction-interval=0 --watch-cache=false" \
  "$here/up.sh" "$B" >"$base/up-b.log" 2>&1 & pb=$!
rca=0 rcb=0; wait $pa || rca=$?; wait $pb || rcb=$?
check "up.sh cluster A" eval "cat '$base/up-a.log'; [ $rca = 0 ]"
check "up.sh cluster B" eval "cat '$base/up-b.log'; [ $rcb = 0 ]"
[ $rca = 0 ] && [ $rcb = 0 ] || exit 1

distinct_ports() {
  local a b
  a=$(. "$A/env"; echo "$APISERVER_PORT $ETCD_PORT $ETCD_PEER_PORT")
  b=$(. "$B/env"; echo "$APISERVER_PORT $ETCD_PORT $ETCD_PEER_PORT")
  echo "A: $a  B: $b"
  [ "$(echo "$a $b" | tr ' ' '\n' | sort -u | wc -l)" = 6 ]
}
check "clusters use distinct ports" distinct_ports

env_complete() {
  ( set -u; . "$A/env"
    echo "$CLUSTER_DIR $APISERVER_URL $APISERVER_PORT $ETCD_URL $ETCD_PORT $KUBECONFIG" \
         "$CA_FILE $ADMIN_TOKEN $ETCD_PID $APISERVER_PID_FILE $ETCD_PID_FILE $ETCDCTL_ENDPOINTS" &&
    [ -n "$APISERVER_PID" ] && [ "$APISERVER_PID" = "$(cat "$APISERVER_PID_FILE")" ] )
}
check "env file has the documented variables" env_complete
check "up.sh refuses a dir with a running cluster" eval "! '$here/up.sh' '$A'"
check "kubectl get ns on cluster A" kA get ns default
check "kubectl get ns on cluster B" kB get ns default

# ---- CRD with status subresource -----------------------------------------------------
cat >"$base/crd.yaml" <<'EOF'
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.selftest.sqltde.io
spec:
  group: selftest.sqltde.io
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Phase, type: string, jsonPath: .status.phase}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties: {size: {type: integer}}
          status:
            type: object
            properties: {phase: {type: string}}
EOF
cat >"$base/w1.yaml" <<'EOF'
apiVersion: selftest.sqltde.io/v1
kind: Widget
metadata: {name: w1, namespace: default}
spec: {size: 3}
EOF
admin_a=$(envof "$A" ADMIN_TOKEN)
wpath=/apis/selftest.sqltde.io/v1/namespaces/default/widgets/w1

check "apply CRD and wait Established" eval "kA apply -f '$base/crd.yaml' &&
  kA wait --for=condition=Established --timeout=30s crd/widgets.selftest.sqltde.io"
# Discovery of a new group can lag a moment behind Established.
check "create a custom resource" eventually 15 kA apply -f "$base/w1.yaml"
check "schema rejects a missing required field (server side)" eval \
  "! kA create --validate=false -f - <<<'{\"apiVersion\":\"selftest.sqltde.io/v1\",\"kind\":\"Widget\",\"metadata\":{\"name\":\"bad\",\"namespace\":\"default\"},\"spec\":{}}'"
check "status subresource: PATCH /status sets status" \
  expect_code 200 "$A" "$admin_a" PATCH "$wpath/status" \
  '{"status":{"phase":"Ready"}}' application/merge-patch+json
main_ignores_status() {
  kA patch widget w1 --type=merge -p '{"spec":{"size":4},"status":{"phase":"Bogus"}}' &&
  [ "$(kA get widget w1 -o jsonpath='{.status.phase}/{.spec.size}')" = Ready/4 ]
}
check "status subresource: main resource ignores status" main_ignores_status
check "printer column shows status" eval "kA get widget w1 | grep -E 'w1 +Ready'"
check "clusters are isolated (no CRD on B)" eval "! kB get crd widgets.selftest.sqltde.io"

# ---- ServiceAccount token and RBAC -----------------------------------------------------
sa_kc=$base/sa.kubeconfig
mint() {
  local t
  t=$("$here/sa-token.sh" --kubeconfig-out "$sa_kc" "$A" selftest-ns operator 1h) &&
  [ -n "$t" ] && [ -s "$sa_kc" ] && echo "$t" >"$base/sa.token"
}
check "sa-token.sh mints a token and a kubeconfig" mint
sa_tok=$(cat "$base/sa.token" 2>/dev/null || echo none)
cm_path=/api/v1/namespaces/selftest-ns/configmaps
check "SA token: 403 before ClusterRoleBinding" expect_code 403 "$A" "$sa_tok" GET "$cm_path"
check "grant ClusterRole get,list configmaps" eval "
  kA create clusterrole selftest-cm-reader --verb=get,list --resource=configmaps &&
  kA create clusterrolebinding selftest-cm-reader --clusterrole=selftest-cm-reader \
     --serviceaccount=selftest-ns:operator"
# The RBAC authorizer reads bindings through an informer: allow it a moment.
check "SA token: 200 after ClusterRoleBinding" eventually 15 expect_code 200 "$A" "$sa_tok" GET "$cm_path"
check "SA token: 403 for a verb not granted (create)" expect_code 403 "$A" "$sa_tok" POST "$cm_path" \
  '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}'
check "SA kubeconfig works with kubectl" kubectl --kubeconfig "$sa_kc" get configmaps
check "sa-token.sh again (SA exists) still works" eval "'$here/sa-token.sh' '$A' selftest-ns operator >/dev/null"
check "SA token from A is rejected by B (401)" expect_code 401 "$B" "$sa_tok" GET "$cm_path"

# ---- apiserver kill / restart keeps data and port ----------------------------------------
port_a=$(envof "$A" APISERVER_PORT)
check "create a ConfigMap before the kill" kA -n default create configmap keepme --from-literal=k=v
check "kill-apiserver.sh --kill stops it" eval "'$here/kill-apiserver.sh' --kill '$A' &&
  [ ! -e '$A/apiserver.pid' ] && ! curl -sk --max-time 3 https://127.0.0.1:$port_a/readyz"
check "kill-apiserver.sh when already stopped is a no-op" "$here/kill-apiserver.sh" "$A"
check "start-apiserver.sh brings it back on the same port" eval "'$here/start-apiserver.sh' '$A' &&
  [ \"\$(envof '$A' APISERVER_PORT)\" = $port_a ] && kA get ns default"
data_kept() {
  [ "$(kA -n default get configmap keepme -o jsonpath='{.data.k}')" = v ] &&
  [ "$(kA get widget w1 -o jsonpath='{.status.phase}')" = Ready ]
}
check "data survived the kill (ConfigMap, CR status)" data_kept
check "restart-apiserver.sh (graceful) keeps data" eval "'$here/restart-apiserver.sh' '$A' && data_kept"
check "SA token still valid after restart" expect_code 200 "$A" "$sa_tok" GET "$cm_path"

# ---- watch history compaction on B ------------------------------------------------------
# watch_from DIR RV OUTFILE: stream a ConfigMap watch from RV for 3 s into OUTFILE.
watch_from() {
  ( . "$1/env"
    curl -sS --max-time 3 --cacert "$CA_FILE" -H "Authorization: Bearer $ADMIN_TOKEN" \
      "$APISERVER_URL/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=$2" >"$3" ) || true
}
compaction() {
  local rv rev n
  kB -n default create configmap hist --from-literal=n=0 &&
  rv=$(kB -n default get configmap hist -o jsonpath='{.metadata.resourceVersion}') || return 1
  for n in 1 2 3; do
    kB -n default patch configmap hist --type=merge -p "{\"data\":{\"n\":\"$n\"}}" || return 1
  done
  # Before compaction the old revision can still be watched from.
  watch_from "$B" "$rv" "$base/watch1"
  grep -q '"type":"MODIFIED"' "$base/watch1" || { echo "no MODIFIED before compaction"; return 1; }
  rev=$( . "$B/env"; etcdctl endpoint status -w json |
         py -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"])') &&
  ( . "$B/env"; etcdctl compact "$rev" ) || return 1
  watch_from "$B" "$rv" "$base/watch2"
  cat "$base/watch2"
  grep -q '"type":"ERROR".*"code":410' "$base/watch2"
}
check "compaction: watch from a compacted resourceVersion gets 410 Gone" compaction

# ---- teardown ---------------------------------------------------------------------------
pids=$(cat "$A/etcd.pid" "$A/apiserver.pid" "$B/etcd.pid" "$B/apiserver.pid" 2>/dev/null || true)
ports="$(. "$A/env"; echo "$APISERVER_PORT $ETCD_PORT") $(. "$B/env"; echo "$APISERVER_PORT $ETCD_PORT")"
all_down() {
  local p
  "$here/down.sh" "$A" && "$here/down.sh" "$B" || return 1
  for p in $pids; do ! proc_running "$p" || { echo "pid $p still running"; return 1; }; done
  for p in $ports; do port_free "$p" || { echo "port $p still bound"; return 1; }; done
}
check "down.sh stops both clusters (processes gone, ports free)" all_down
check "down.sh twice is safe" eval "'$here/down.sh' '$A' && '$here/down.sh' '$B'"
