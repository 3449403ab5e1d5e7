#!/usr/bin/env bash
# KeyVault and VaultKey end to end, with kubectl against a real apiserver, the
# Azure emulator (seeds/small.yaml) and the operator under its own
# ServiceAccount:
#   - vaults: Ready with soft delete + purge protection; Stalled naming the
#     missing setting otherwise; InvalidSpec for a vault URI outside the cloud
#   - keys: generate, existing (adopt; absent -> waiting, not a hot loop),
#     import from a Secret's PEM (thumbprint = the PEM's), a 1024-bit PEM
#     refused (KeyTooSmall, nothing imported), backupRestore replication
#     (same geography: Replicated; another geography: refused, naming
#     replication: import), import replication across geographies
#   - rotation trigger: one new version per trigger value, never two
#   - exp within expiryWarning, disabled and expired versions: conditions
#     and Warning Events
#   - InvalidSpec (rotation across vaults): no Azure call at all
#   - a restart re-observes everything and writes nothing to Azure
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_cluster_up
e2e_emulator_up
e2e_operator_up

NS=keys
SUB=aaaaaaaa-0000-4000-8000-000000000001
TENANT=$E2E_TENANT
k create namespace $NS >/dev/null

jp() { k get -n $NS "$1" -o "jsonpath=$2" 2>/dev/null; }
is() { [ "$(jp "$1" "$2")" = "$3" ]; }
condis() { [ "$(jp "$1" "{.status.conditions[?(@.type==\"$2\")].status}")" = "$3" ]; }
reasonis() { [ "$(jp "$1" "{.status.conditions[?(@.type==\"$2\")].reason}")" = "$3" ]; }
msghas() { jp "$1" "{.status.conditions[?(@.type==\"$2\")].message}" | grep -q -- "$3"; }
# vault-host writes (POST/PUT/PATCH/DELETE) in the emulator's request log since SEQ, optionally for one key name
writes_since() {
  emu GET "requests?since=$1&limit=10000" | python3 -c '
import json, sys
key = sys.argv[1]
n = 0
for r in json.load(sys.stdin)["value"]:
    if ".vault.localhost" not in r["host"] or r["method"] == "GET":
        continue
    if key and ("/keys/" + key) not in r["path"] and not r["path"].endswith("/keys/restore"):
        continue
    n += 1
print(n)' "${2:-}"
}
requests_for_key() {
  emu GET "requests?since=$1&limit=10000" | python3 -c '
import json, sys
print(sum(1 for r in json.load(sys.stdin)["value"] if ("/keys/" + sys.argv[1]) in r["path"]))' "$2"
}
le() { [ "$1" -le "$2" ]; }
last_seq() { # the request log's newest sequence number
  local s=0 n
  while :; do
    n=$(emu GET "requests?since=$s&limit=10000" | python3 -c 'import json,sys; print(json.load(sys.stdin)["last"])')
    [ "$n" = "$s" ] && break
    s=$n
  done
  echo "$s"
}

keyvault() { # name vault-name rg location [sub]
  cat <<EOF
apiVersion: sqltde.io/v1alpha1
kind: KeyVault
metadata: {name: $1, namespace: $NS}
spec:
  vaultUri: https://$2.vault.localhost:$EMU_PORT/
  location: $4
  subscriptionId: ${5:-$SUB}
  resourceGroup: $3
  tenantId: $TENANT
  probeInterval: 30s
EOF
}

# ---- KeyVaults ----------------------------------------------------------------
{
  keyvault kv-east kv-tde-east rg-tde eastus; echo ---
  keyvault kv-west kv-tde-west rg-tde-west westus; echo ---
  keyvault kv-eu kv-eu rg-eu northeurope; echo ---
  keyvault kv-nopurge kv-nopurge rg-tde eastus; echo ---
  keyvault kv-rbac kv-rbac rg-tde eastus
} | k apply -f - >/dev/null

wait_for "vault with soft delete + purge protection is Ready" 60 condis kv/kv-east Ready True
expect_ok "status: reachable, flags, lastProbeTime" bash -c "
  [ \"\$(kubectl get -n $NS kv/kv-east -o jsonpath='{.status.reachable} {.status.softDeleteEnabled} {.status.purgeProtectionEnabled} {.status.rbacAuthorization}')\" = 'true true true false' ] &&
  [ -n \"\$(kubectl get -n $NS kv/kv-east -o jsonpath='{.status.lastProbeTime}')\" ]"
wait_for "RBAC vault is Ready and says RBAC" 60 is kv/kv-rbac '{.status.rbacAuthorization}' true
wait_for "vault without purge protection is Stalled" 60 condis kv/kv-nopurge Stalled True
expect_ok "... naming the missing setting" reasonis kv/kv-nopurge Ready PurgeProtectionDisabled
expect_ok "... and Ready is False" condis kv/kv-nopurge Ready False
wait_for "paired-region and EU vaults Ready" 60 bash -c "[ \"\$(kubectl get -n $NS kv/kv-west kv/kv-eu -o jsonpath='{.items[*].status.conditions[?(@.type==\"Ready\")].status}')\" = 'True True' ]"

keyvault kv-bad kv-tde-east rg-tde eastus | sed "s#vault.localhost:$EMU_PORT#vault.azure.net#" | k apply -f - >/dev/null
wait_for "vault URI outside the configured cloud: InvalidSpec" 30 reasonis kv/kv-bad InvalidSpec VaultUriNotInCloud
expect_ok "... Stalled, field named" msghas kv/kv-bad Stalled 'spec.vaultUri'

# ---- VaultKey: generate -----------------------------------------------------------
k apply -f - >/dev/null <<EOF
apiVersion: sqltde.io/v1alpha1
kind: VaultKey
metadata: {name: gen, namespace: $NS}
spec:
  vaults: [{name: kv-east}]
  keyName: e2e-gen
  source: {type: generate, kty: RSA, size: 2048}
EOF
wait_for "generated key Ready" 60 condis vk/gen Ready True
expect_ok "thumbprint is 40 hex" bash -c "kubectl get -n $NS vk/gen -o jsonpath='{.status.currentThumbprint}' | grep -Eq '^[0-9A-F]{40}$'"
expect_ok "currentKeyUri names the version" bash -c "
  v=\$(kubectl get -n $NS vk/gen -o jsonpath='{.status.currentVersion}')
  [ -n \"\$v\" ] && [ \"\$(kubectl get -n $NS vk/gen -o jsonpath='{.status.currentKeyUri}')\" = \"https://kv-tde-east.vault.localhost:$EMU_PORT/keys/e2e-gen/\$v\" ]"
expect_ok "single vault: Replicated True" reasonis vk/gen Replicated SingleVault
expect_ok "finalizer added" bash -c "kubectl get -n $NS vk/gen -o jsonpath='{.metadata.finalizers}' | grep -q sqltde.io/finalizer"

# ---- rotation trigger ----------------------------------------------------------------
v1=$(jp vk/gen '{.status.currentVersion}')
t1=$(jp vk/gen '{.status.currentThumbprint}')
k patch -n $NS vk/gen --type merge -p '{"spec":{"rotation":{"trigger":"2026-01-01"}}}' >/dev/null
wait_for "trigger: a new current version" 60 bash -c "v=\$(kubectl get -n $NS vk/gen -o jsonpath='{.status.currentVersion}'); [ -n \"\$v\" ] && [ \"\$v\" != '$v1' ]"
expect_ok "... with new material" bash -c "[ \"\$(kubectl get -n $NS vk/gen -o jsonpath='{.status.currentThumbprint}')\" != '$t1' ]"
wait_for "... trigger recorded" 30 is vk/gen '{.status.lastRotationTrigger}' 2026-01-01
expect_ok "... both versions listed" bash -c "[ \"\$(kubectl get -n $NS vk/gen -o jsonpath='{.status.versions[*].version}' | wc -w)\" = 2 ]"
sleep 5
expect_ok "the trigger fires once" bash -c "[ \"\$(kubectl get -n $NS vk/gen -o jsonpath='{.status.versions[*].version}' | wc -w)\" = 2 ]"
expect_ok "KeyRotated Event" bash -c "kubectl get events -n $NS --field-selector involvedObject.name=gen -o jsonpath='{.items[*].reason}' | grep -q KeyRotated"

# ---- expiry and disabled keys ------------------------------------------------------------
# change the key's attributes in Key Vault as a human would, then poke the
# object (Key Vault is not watched: the periodic resync would find it too)
kv_patch() { # key version json-attributes
  local tok
  tok=$(emu POST token '{"objectId":"0b0b0b0b-0000-4000-8000-000000000001","resource":"https://vault.localhost"}' |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl -sS --fail-with-body --cacert "$EMU_CA" -X PATCH -H "Authorization: Bearer $tok" -H 'Content-Type: application/json' \
    -d "{\"attributes\":$3}" "https://kv-tde-east.vault.localhost:$EMU_PORT/keys/$1/$2?api-version=7.5" >/dev/null
}
poke() { k annotate -n $NS "$1" --overwrite "e2e/poke=$(date +%s%N)" >/dev/null; }
k apply -f - >/dev/null <<EOF
apiVersion: sqltde.io/v1alpha1
kind: VaultKey
metadata: {name: exp, namespace: $NS}
spec:
  vaults: [{name: kv-east}]
  keyName: e2e-exp
  source: {type: generate, size: 2048}
  expiryWarning: 720h
EOF
wait_for "key for expiry checks Ready" 60 condis vk/exp Ready True
ev=$(jp vk/exp '{.status.currentVersion}')
expect_ok "set exp in 10 days" kv_patch e2e-exp "$ev" "{\"exp\":$(( $(date +%s) + 10 * 86400 ))}"
poke vk/exp
wait_for "exp within expiryWarning: ExpiringSoon" 60 condis vk/exp ExpiringSoon True
expect_ok "... still Ready" condis vk/exp Ready True
expect_ok "... expiry recorded in versions" bash -c "kubectl get -n $NS vk/exp -o jsonpath='{.status.versions[0].expires}' | grep -q T"
expect_ok "... Warning Event" bash -c "kubectl get events -n $NS --field-selector involvedObject.name=exp,type=Warning -o jsonpath='{.items[*].reason}' | grep -q ExpiringSoon"
expect_ok "disable the version" kv_patch e2e-exp "$ev" '{"enabled":false}'
poke vk/exp
wait_for "disabled version: Disabled condition" 60 condis vk/exp Disabled True
expect_ok "... Stalled KeyDisabled" reasonis vk/exp Stalled KeyDisabled
expect_ok "... Warning Event" bash -c "kubectl get events -n $NS --field-selector involvedObject.name=exp,type=Warning -o jsonpath='{.items[*].reason}' | grep -q KeyDisabled"
expect_ok "enable it, let it expire" kv_patch e2e-exp "$ev" "{\"enabled\":true,\"exp\":$(( $(date +%s) - 60 ))}"
poke vk/exp
wait_for "expired version: Expired condition" 60 condis vk/exp Expired True
expect_ok "... Stalled KeyExpired" reasonis vk/exp Stalled KeyExpired
expect_ok "... Disabled cleared" bash -c "[ -z \"\$(kubectl get -n $NS vk/exp -o jsonpath='{.status.conditions[?(@.type==\"Disabled\")].status}')\" ]"
k delete -n $NS vk/exp --wait=false >/dev/null

# ---- existing -------------------------------------------------------------------------
k apply -f - >/dev/null <<EOF
apiVersion: sqltde.io/v1alpha1
kind: VaultKey
metadata: {name: shared, namespace: $NS}
spec:
  vaults: [{name: kv-east}]
  keyName: tde-shared
  source: {type: existing}
---
apiVersion: sqltde.io/v1alpha1
kind: VaultKey
metadata: {name: absent, namespace: $NS}
spec:
  vaults: [{name: kv-east}]
  keyName: e2e-not-there
  source: {type: existing}
EOF
wait_for "existing key adopted: Ready" 60 condis vk/shared Ready True
wait_for "absent existing key: waiting (Reconciling KeyNotFound)" 60 reasonis vk/absent Reconciling KeyNotFound
s0=$(last_seq)
sleep 10
expect_ok "... not a hot loop (at most 2 lookups in 10 s)" le "$(requests_for_key "$s0" e2e-not-there)" 2
expect_ok "... never created" bash -c "[ \"\$(kubectl get -n $NS vk/absent -o jsonpath='{.status.currentVersion}')\" = '' ]"

# ---- backupRestore replication -----------------------------------------------------------
k apply -f - >/dev/null <<EOF
apiVersion: sqltde.io/v1alpha1
kind: VaultKey
metadata: {name: pair, namespace: $NS}
spec:
  vaults: [{name: kv-east}, {name: kv-west}]
  keyName: e2e-pair
  source: {type: generate, size: 2048}
  replication: backupRestore
---
apiVersion: sqltde.io/v1alpha1
kind: VaultKey
metadata: {name: geo, namespace: $NS}
spec:
  vaults: [{name: kv-east}, {name: kv-eu}]
  keyName: e2e-geo
  source: {type: generate, size: 2048}
  replication: backupRestore
EOF
wait_for "same geography: Replicated True" 90 condis vk/pair Replicated True
expect_ok "... and Ready" condis vk/pair Ready True
expect_ok "... the version is held by both vaults" bash -c "[ \"\$(kubectl get -n $NS vk/pair -o jsonpath='{.status.versions[0].vaults[*]}')\" = 'kv-east kv-west' ]"
wait_for "other geography: Replicated False" 90 condis vk/geo Replicated False
expect_ok "... refused by Key Vault" reasonis vk/geo Replicated BackupRestoreRefused
expect_ok "... suggesting replication: import" msghas vk/geo Replicated 'replication: import'
expect_ok "... Stalled" condis vk/geo Stalled True
s0=$(last_seq)
sleep 5
k annotate -n $NS vk/geo e2e/poke=1 >/dev/null
sleep 5
expect_ok "... the refused restore is not retried" le "$(writes_since "$s0" e2e-geo)" 0

# ---- import from a Secret -------------------------------------------------------------------
openssl genrsa -out "$E2E_DIR/tde.pem" 2048 2>/dev/null
openssl genrsa -out "$E2E_DIR/small.pem" 1024 2>/dev/null
want=$(openssl rsa -in "$E2E_DIR/tde.pem" -RSAPublicKey_out -outform DER 2>/dev/null | openssl dgst -sha1 -hex | awk '{print toupper($NF)}')
k create secret generic tde-pem -n $NS --from-file=tls.key="$E2E_DIR/tde.pem" >/dev/null
k create secret generic small-pem -n $NS --from-file=tls.key="$E2E_DIR/small.pem" >/dev/null
s_small=$(last_seq)
k apply -f - >/dev/null <<EOF
apiVersion: sqltde.io/v1alpha1
kind: VaultKey
metadata: {name: byok, namespace: $NS}
spec:
  vaults: [{name: kv-east}, {name: kv-eu}]
  keyName: e2e-byok
  source: {type: import, secretRef: {name: tde-pem}}
  replication: import
---
apiVersion: sqltde.io/v1alpha1
kind: VaultKey
metadata: {name: small, namespace: $NS}
spec:
  vaults: [{name: kv-east}]
  keyName: e2e-small
  source: {type: import, secretRef: {name: small-pem}}
EOF
wait_for "imported key replicated across geographies by import" 90 condis vk/byok Replicated True
expect_ok "... thumbprint is the PEM's" is vk/byok '{.status.currentThumbprint}' "$want"
expect_ok "... both vaults hold it" bash -c "[ \"\$(kubectl get -n $NS vk/byok -o jsonpath='{.status.versions[0].vaults[*]}')\" = 'kv-east kv-eu' ]"
wait_for "1024-bit PEM refused: InvalidSpec KeyTooSmall" 60 reasonis vk/small InvalidSpec KeyTooSmall
expect_ok "... Stalled" condis vk/small Stalled True
expect_ok "... nothing sent to Key Vault for it" le "$(writes_since "$s_small" e2e-small)" 0
expect_ok "operator never logged key material" bash -c "! grep -q 'PRIVATE KEY' '$E2E_DIR/operator.log'"

# ---- InvalidSpec: no Azure call -------------------------------------------------------------
s_inv=$(last_seq)
k apply -f - >/dev/null <<EOF
apiVersion: sqltde.io/v1alpha1
kind: VaultKey
metadata: {name: badrot, namespace: $NS}
spec:
  vaults: [{name: kv-east}, {name: kv-west}]
  keyName: e2e-badrot
  source: {type: generate}
  rotation: {trigger: now}
EOF
wait_for "rotation across vaults: InvalidSpec RotationCannotReplicate" 30 reasonis vk/badrot InvalidSpec RotationCannotReplicate
expect_ok "... field named in Stalled" msghas vk/badrot Stalled 'spec.rotation'
expect_ok "... no Azure request for it" le "$(requests_for_key "$s_inv" e2e-badrot)" 0

# ---- settled: no reconcile loops ------------------------------------------------------------
reconciles() { # total reconciles of controller $1 so far
  curl -sf "http://127.0.0.1:$OP_METRICS/metrics" | python3 -c '
import re, sys
print(int(sum(float(m.group(1)) for l in sys.stdin
              for m in [re.match(r"controller_runtime_reconcile_total\{.*controller=\"%s\".*\} (\S+)" % sys.argv[1], l)] if m)))' "$1"
}
sleep 5
r0=$(reconciles vaultkey); k0=$(reconciles keyvault)
sleep 20
r1=$(reconciles vaultkey); k1=$(reconciles keyvault)
expect_ok "settled keys are not reconciled in a loop ($r0 -> $r1 in 20 s)" le $((r1 - r0)) 3
expect_ok "vaults are probed on their interval ($k0 -> $k1 in 20 s, 6 vaults at 30 s)" le $((k1 - k0)) 14
expect_ok "metrics counted reconciles at all" le 10 "$r1"

# ---- a restart re-observes everything and writes nothing ------------------------------------
if e2e_operator_stop; then pass "clean stop"; else fail "clean stop" "exit $?"; fi
s_restart=$(last_seq)
e2e_operator_up
sleep 15
expect_ok "restart: keys still Ready" bash -c "[ \"\$(kubectl get -n $NS vk/gen vk/pair vk/byok vk/shared -o jsonpath='{.items[*].status.conditions[?(@.type==\"Ready\")].status}')\" = 'True True True True' ]"
n=$(writes_since "$s_restart")
[ "$n" -eq 0 ] && pass "restart: zero Key Vault writes when nothing differs" || fail "restart: zero Key Vault writes" "$n writes"
reads=$(emu GET "requests?since=$s_restart&limit=10000" | python3 -c 'import json,sys; print(sum(1 for r in json.load(sys.stdin)["value"] if "/versions" in r["path"]))')
[ "$reads" -ge 4 ] && pass "restart: keys were re-observed ($reads version lists)" || fail "restart: keys re-observed" "$reads version lists"

if grep -q -e 'Sanitizer' -e 'runtime error' "$E2E_DIR/operator.log"; then fail "no sanitizer reports"; else pass "no sanitizer reports"; fi
e2e_finish
