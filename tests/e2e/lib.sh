# lib.sh — helpers for kubectl-driven end-to-end tests (sourced).
# Each test script: source this, call e2e_cluster_up, run `expect_*` checks,
# end with e2e_finish (prints "N passed, M failed", exits non-zero on failure).
# Clusters and processes started here are torn down on exit, whatever happens.
set -uo pipefail
E2E_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
E2E_PASSED=0
E2E_FAILED=0
E2E_PIDS=()
E2E_DIR=$(mktemp -d "${TMPDIR:-/tmp}/sqltde-e2e.XXXXXX")
OPERATOR=${SQLTDE_OPERATOR:-$E2E_ROOT/build-test/sqltde-operator}
BUILD_DIR=${SQLTDE_BUILD_DIR:-$(dirname "$OPERATOR")}
EMULATOR=${SQLTDE_EMULATOR:-$BUILD_DIR/tests/azure-emulator/sqltde-azure-emulator}
# The operator's Azure application in tests/azure-emulator/seeds/small.yaml.
E2E_TENANT=11111111-1111-4111-8111-111111111111
E2E_CLIENT_ID=0a0a0a0a-0000-4000-8000-000000000001
E2E_CLIENT_SECRET=operator-test-secret
# Tenants besides E2E_TENANT the operator may get tokens in (";"-separated, as
# AZURE_ADDITIONALLY_ALLOWED_TENANTS; empty = none). Set before e2e_operator_up.
E2E_ALLOWED_TENANTS=${E2E_ALLOWED_TENANTS:-}

e2e_cleanup() {
  local p
  for p in "${E2E_PIDS[@]:-}"; do
    [ -n "$p" ] && kill "$p" 2>/dev/null
  done
  [ -n "${EMU_PID:-}" ] && kill "$EMU_PID" 2>/dev/null && wait "$EMU_PID" 2>/dev/null
  [ -d "$E2E_DIR/cluster" ] && bash "$E2E_ROOT/tests/cluster/down.sh" "$E2E_DIR/cluster" >/dev/null 2>&1
  if [ "$E2E_FAILED" -eq 0 ] && [ -z "${KEEP:-}" ]; then rm -rf "$E2E_DIR"; else echo "e2e: kept $E2E_DIR" >&2; fi
}
trap e2e_cleanup EXIT

e2e_cluster_up() {
  bash "$E2E_ROOT/tests/cluster/up.sh" "$E2E_DIR/cluster" >"$E2E_DIR/cluster-up.log" 2>&1 || {
    cat "$E2E_DIR/cluster-up.log" >&2
    echo "e2e: control plane failed to start" >&2
    exit 1
  }
  # shellcheck disable=SC1091
  . "$E2E_DIR/cluster/env"
  export KUBECONFIG
}

# free_port — a free loopback TCP port
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# e2e_emulator_up [SEED] — starts the Azure emulator over HTTPS on a free port
# with the seed (default: the small estate), and writes $E2E_DIR/cloud.yaml, a
# custom cloud file that points the operator at it (trusting its CA).
e2e_emulator_up() {
  local seed=${1:-$E2E_ROOT/tests/azure-emulator/seeds/small.yaml}
  EMU_DIR=$E2E_DIR/emulator
  mkdir -p "$EMU_DIR"
  "$EMULATOR" --state-dir "$EMU_DIR" --seed "$seed" --port 0 >"$E2E_DIR/emulator.log" 2>&1 &
  EMU_PID=$!
  local i
  for i in $(seq 1 200); do
    [ -f "$EMU_DIR/ready" ] && break
    kill -0 "$EMU_PID" 2>/dev/null || { cat "$E2E_DIR/emulator.log" >&2; echo "e2e: emulator died" >&2; exit 1; }
    sleep 0.1
  done
  [ -f "$EMU_DIR/ready" ] || { echo "e2e: emulator not ready" >&2; exit 1; }
  EMU_PORT=$(cat "$EMU_DIR/port")
  EMU_CA=$EMU_DIR/ca.pem
  cat >"$E2E_DIR/cloud.yaml" <<EOC
name: emulator
authorityHost: https://login.localhost:$EMU_PORT
resourceManagerEndpoint: https://management.localhost:$EMU_PORT
resourceManagerAudience: https://management.localhost
keyVaultDNSSuffix: vault.localhost
keyVaultAudience: https://vault.localhost
caFile: $EMU_CA
EOC
}

# emu METHOD PATH [JSON] — the emulator's test-control API (/_emulator/...)
emu() {
  local m=$1 p=$2 body=${3:-}
  if [ -n "$body" ]; then
    curl -sS --fail-with-body --cacert "$EMU_CA" -X "$m" -H 'Content-Type: application/json' \
      -d "$body" "https://control.localhost:$EMU_PORT/_emulator/$p"
  else
    curl -sS --fail-with-body --cacert "$EMU_CA" -X "$m" "https://control.localhost:$EMU_PORT/_emulator/$p"
  fi
}

# e2e_operator_up [FLAGS...] — installs deploy/ (CRDs, RBAC), then runs the
# operator as its own ServiceAccount (RBAC enforced) against the emulator.
# Sets OP_PID, OP_METRICS, OP_HEALTH; logs in $E2E_DIR/operator.log.
e2e_operator_up() {
  k apply -k "$E2E_ROOT/deploy" >/dev/null
  k wait --for=condition=Established crd --all --timeout=60s >/dev/null
  bash "$E2E_ROOT/tests/cluster/sa-token.sh" --kubeconfig-out "$E2E_DIR/operator.kubeconfig" \
    "$E2E_DIR/cluster" sqltde-system sqltde-operator >/dev/null
  OP_METRICS=$(free_port)
  OP_HEALTH=$(free_port)
  AZURE_TENANT_ID=$E2E_TENANT AZURE_CLIENT_ID=$E2E_CLIENT_ID AZURE_CLIENT_SECRET=$E2E_CLIENT_SECRET \
    AZURE_ADDITIONALLY_ALLOWED_TENANTS=$E2E_ALLOWED_TENANTS \
    "$OPERATOR" --kubeconfig "$E2E_DIR/operator.kubeconfig" --azure-cloud "$E2E_DIR/cloud.yaml" \
    --metrics-bind-address "127.0.0.1:$OP_METRICS" --health-probe-bind-address "127.0.0.1:$OP_HEALTH" \
    --leader-elect --leader-election-namespace sqltde-system "$@" >>"$E2E_DIR/operator.log" 2>&1 &
  OP_PID=$!
  E2E_PIDS+=("$OP_PID")
  local i
  for i in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$OP_HEALTH/readyz" >/dev/null 2>&1 && return 0
    kill -0 "$OP_PID" 2>/dev/null || { tail -20 "$E2E_DIR/operator.log" >&2; echo "e2e: operator exited" >&2; exit 1; }
    sleep 0.2
  done
  tail -20 "$E2E_DIR/operator.log" >&2
  echo "e2e: operator not ready" >&2
  exit 1
}

# e2e_operator_stop — SIGTERM and wait (a clean stop must exit 0)
e2e_operator_stop() {
  kill -TERM "$OP_PID" 2>/dev/null
  wait "$OP_PID"
}

# cond OBJ TYPE — prints the status of condition TYPE on OBJ (e.g. sqldb/db1)
cond() { k get "$1" -o "jsonpath={.status.conditions[?(@.type==\"$2\")].status}" 2>/dev/null; }

# kubectl without the 1.32-client vs 1.20-server skew warning noise
k() { kubectl "$@" 2> >(grep -v -e 'version difference' -e '^Warning: ' >&2); }

pass() { E2E_PASSED=$((E2E_PASSED + 1)); echo "PASS $1"; }
fail() { E2E_FAILED=$((E2E_FAILED + 1)); echo "FAIL $1${2:+: $2}"; }

# expect_ok NAME CMD... — CMD must exit 0
expect_ok() {
  local name=$1; shift
  if out=$("$@" 2>&1); then pass "$name"; else fail "$name" "exit $?: $(echo "$out" | tail -3)"; fi
}

# expect_fail_line NAME REGEX CMD... — CMD must exit non-zero (but not crash:
# no signal exit, no sanitizer report) and print exactly one line on stderr matching REGEX
expect_fail_line() {
  local name=$1 re=$2; shift 2
  local err rc
  err=$("$@" 2>&1 >/dev/null); rc=$?
  if [ "$rc" -eq 0 ]; then fail "$name" "succeeded unexpectedly"; return; fi
  if [ "$rc" -ge 128 ]; then fail "$name" "crashed (exit $rc): $err"; return; fi
  if echo "$err" | grep -q -e 'Sanitizer' -e 'runtime error'; then fail "$name" "sanitizer: $err"; return; fi
  local lines; lines=$(printf '%s\n' "$err" | grep -v '^{' | grep -c .)
  if [ "$lines" -ne 1 ]; then fail "$name" "expected one error line, got $lines: $err"; return; fi
  if ! printf '%s\n' "$err" | grep -v '^{' | grep -Eq -- "$re"; then fail "$name" "error line does not match /$re/: $err"; return; fi
  pass "$name"
}

# wait_for NAME TIMEOUT_S CMD... — polls CMD every 0.5 s until it succeeds
wait_for() {
  local name=$1 t=$2; shift 2
  local deadline=$((SECONDS + t))
  while [ $SECONDS -lt $deadline ]; do
    if "$@" >/dev/null 2>&1; then pass "$name"; return 0; fi
    sleep 0.5
  done
  fail "$name" "not true within ${t}s"
  return 1
}

e2e_finish() {
  echo "$E2E_PASSED passed, $E2E_FAILED failed"
  [ "$E2E_FAILED" -eq 0 ]
  exit $?
}
