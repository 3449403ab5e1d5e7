#!/usr/bin/env bash
# Bad input at startup gets one clear line and a non-zero exit, never a crash:
# malformed or missing kubeconfig, unreachable apiserver, wrong token (401),
# missing permission (403 naming verb and resource). Then the operator's own
# ServiceAccount with the RBAC from deploy/ passes the same checks.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_cluster_up
k apply -k "$E2E_ROOT/deploy" >/dev/null

expect_fail_line "flags: unknown flag" 'unknown flag --bogus' "$OPERATOR" --bogus
expect_fail_line "missing kubeconfig" 'cannot open .*/nope' "$OPERATOR" --check --kubeconfig "$E2E_DIR/nope"

printf 'apiVersion: v1\nclusters: [ {cluster: {server: "https://x"}\n' >"$E2E_DIR/malformed.kubeconfig"
expect_fail_line "malformed kubeconfig" 'malformed.kubeconfig.*line' "$OPERATOR" --check --kubeconfig "$E2E_DIR/malformed.kubeconfig"

# a port nobody listens on: bind and close a socket to find one
free_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed "s#$APISERVER_URL#https://127.0.0.1:$free_port#" "$KUBECONFIG" >"$E2E_DIR/unreachable.kubeconfig"
expect_fail_line "unreachable apiserver" "127\.0\.0\.1:$free_port" "$OPERATOR" --check --kubeconfig "$E2E_DIR/unreachable.kubeconfig"

sed "s#token: .*#token: not-a-valid-token#" "$KUBECONFIG" >"$E2E_DIR/badtoken.kubeconfig"
grep -q 'not-a-valid-token' "$E2E_DIR/badtoken.kubeconfig" || fail "bad token kubeconfig prepared"
expect_fail_line "wrong token is 401" '(Unauthorized|unauthorized|credentials)' "$OPERATOR" --check --kubeconfig "$E2E_DIR/badtoken.kubeconfig"

# a ServiceAccount with no RBAC at all: 403 naming the verb and resource
bash "$E2E_ROOT/tests/cluster/sa-token.sh" --kubeconfig-out "$E2E_DIR/nobody.kubeconfig" "$E2E_DIR/cluster" default nobody >/dev/null
expect_fail_line "missing permission is 403 naming verb+resource" 'list.*keyvaults|keyvaults.*list' "$OPERATOR" --check --kubeconfig "$E2E_DIR/nobody.kubeconfig"

# list granted but not watch: preflight names the missing verb
k create clusterrole listonly --verb=list --resource=keyvaults.sqltde.io,vaultkeys.sqltde.io,managedidentities.sqltde.io,sqlservers.sqltde.io,sqldatabases.sqltde.io >/dev/null
k create clusterrolebinding nobody-listonly --clusterrole=listonly --serviceaccount=default:nobody >/dev/null
expect_fail_line "list without watch is refused, naming watch" 'cannot watch keyvaults' "$OPERATOR" --check --kubeconfig "$E2E_DIR/nobody.kubeconfig"

# the operator's own ServiceAccount with deploy/ RBAC passes
bash "$E2E_ROOT/tests/cluster/sa-token.sh" --kubeconfig-out "$E2E_DIR/operator.kubeconfig" "$E2E_DIR/cluster" sqltde-system sqltde-operator >/dev/null
expect_ok "operator ServiceAccount with deploy/ RBAC passes preflight" "$OPERATOR" --check --kubeconfig "$E2E_DIR/operator.kubeconfig"

# a Secret list is NOT granted (get only): prove least privilege holds
if KUBECONFIG="$E2E_DIR/operator.kubeconfig" kubectl auth can-i list secrets -A 2>/dev/null | grep -q yes; then
  fail "operator cannot list secrets"
else
  pass "operator cannot list secrets"
fi
e2e_finish
