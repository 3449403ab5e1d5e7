#!/usr/bin/env bash
# ManagedIdentity and the VaultKey finalizer end to end (kubectl, real
# apiserver, Azure emulator with seeds/small.yaml, operator under its own
# ServiceAccount):
#   - an identity with get/wrapKey/unwrapKey through an access policy and
#     through the RBAC role is reported per key and vault, as Pending (Azure
#     SQL sees grants ~10 minutes late), never as done
#     until the permission delay has passed, then Ready (AccessVerified)
#   - an identity without a role on an RBAC vault: Stalled, naming what is
#     missing, the key and the vault; a role assignment added in Azure is
#     noticed (recheck while missing), reported Pending, then Ready; the
#     assignment deleted in Azure is noticed within the check interval
#     (Stalled again, PermissionLost Warning)
#   - deleting a VaultKey that a SqlDatabase references is held by the
#     finalizer with a DeletionBlocked condition naming the referrer; when
#     the reference goes, the finalizer goes and the key stays in Key Vault
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_cluster_up
e2e_emulator_up
# short permission delay and check interval so pending -> granted and a
# revocation are seen within the test (production: 10m each)
e2e_operator_up --permission-delay 30s --key-check-interval 20s

NS=idkeys
SUB=aaaaaaaa-0000-4000-8000-000000000001
RBAC_SCOPE=/subscriptions/$SUB/resourceGroups/rg-tde/providers/Microsoft.KeyVault/vaults/kv-rbac
RA_NAME=5e2e0000-0000-4000-8000-00000000e2e1
k create namespace $NS >/dev/null

jp() { k get -n $NS "$1" -o "jsonpath=$2" 2>/dev/null; }
is() { [ "$(jp "$1" "$2")" = "$3" ]; }
condis() { [ "$(jp "$1" "{.status.conditions[?(@.type==\"$2\")].status}")" = "$3" ]; }
reasonis() { [ "$(jp "$1" "{.status.conditions[?(@.type==\"$2\")].reason}")" = "$3" ]; }
msghas() { jp "$1" "{.status.conditions[?(@.type==\"$2\")].message}" | grep -q -- "$3"; }
gone() { ! k get -n $NS "$1" >/dev/null 2>&1; }
vault_deletes() {
  emu GET "requests?since=0&limit=10000" | python3 -c '
import json, sys
print(sum(1 for r in json.load(sys.stdin)["value"] if ".vault.localhost" in r["host"] and r["method"] == "DELETE"))'
}

k apply -f - >/dev/null <<EOF
apiVersion: sqltde.io/v1alpha1
kind: KeyVault
metadata: {name: kv-east, namespace: $NS}
spec:
  vaultUri: https://kv-tde-east.vault.localhost:$EMU_PORT/
  location: eastus
  subscriptionId: $SUB
  resourceGroup: rg-tde
  tenantId: $E2E_TENANT
---
apiVersion: sqltde.io/v1alpha1
kind: KeyVault
metadata: {name: kv-rbac, namespace: $NS}
spec:
  vaultUri: https://kv-rbac.vault.localhost:$EMU_PORT/
  location: eastus
  subscriptionId: $SUB
  resourceGroup: rg-tde
  tenantId: $E2E_TENANT
---
apiVersion: sqltde.io/v1alpha1
kind: VaultKey
metadata: {name: k-east, namespace: $NS}
spec:
  vaults: [{name: kv-east}]
  keyName: e2e-east
  source: {type: generate, size: 2048}
---
apiVersion: sqltde.io/v1alpha1
kind: VaultKey
metadata: {name: k-rbac, namespace: $NS}
spec:
  vaults: [{name: kv-rbac}]
  keyName: e2e-rbac
  source: {type: generate, size: 2048}
---
apiVersion: sqltde.io/v1alpha1
kind: ManagedIdentity
metadata: {name: umi-db1, namespace: $NS}
spec:
  resourceId: /subscriptions/$SUB/resourceGroups/rg-tde/providers/Microsoft.ManagedIdentity/userAssignedIdentities/umi-db1
  clientId: 0c0c0c0c-0000-4000-8000-000000000001
  principalId: 0d0d0d0d-0000-4000-8000-000000000001
---
apiVersion: sqltde.io/v1alpha1
kind: ManagedIdentity
metadata: {name: umi-mi, namespace: $NS}
spec:
  resourceId: /subscriptions/$SUB/resourceGroups/rg-tde/providers/Microsoft.ManagedIdentity/userAssignedIdentities/umi-mi
  clientId: 0c0c0c0c-0000-4000-8000-000000000002
  principalId: 0d0d0d0d-0000-4000-8000-000000000002
---
# Databases on a server that is not declared: their own controller waits,
# while the identity and key controllers see who uses what.
apiVersion: sqltde.io/v1alpha1
kind: SqlDatabase
metadata: {name: db1, namespace: $NS}
spec:
  server: {name: not-declared}
  identity: {name: umi-db1}
  encryptionProtector: {vaultKey: {name: k-east}}
  keys: [{vaultKey: k-rbac}]
---
apiVersion: sqltde.io/v1alpha1
kind: SqlDatabase
metadata: {name: db2, namespace: $NS}
spec:
  server: {name: not-declared}
  identity: {name: umi-mi}
  encryptionProtector: {vaultKey: {name: k-rbac}}
EOF

wait_for "keys Ready" 90 bash -c "[ \"\$(kubectl get -n $NS vk/k-east vk/k-rbac -o jsonpath='{.items[*].status.conditions[?(@.type==\"Ready\")].status}')\" = 'True True' ]"

# ---- identity holding every permission: reported, but pending ---------------
wait_for "identity: one keyAccess entry per key and vault" 90 bash -c "[ \"\$(kubectl get -n $NS mi/umi-db1 -o jsonpath='{.status.keyAccess[*].vaultKey}')\" = 'k-east k-rbac' ]"
expect_ok "... access policy and RBAC models told apart" is mi/umi-db1 '{.status.keyAccess[*].model}' 'AccessPolicy RBAC'
expect_ok "... get, wrapKey, unwrapKey seen on both" is mi/umi-db1 '{.status.keyAccess[*].unwrapKey}' 'true true'
expect_ok "... fresh grants are Pending, not done" is mi/umi-db1 '{.status.keyAccess[*].state}' 'Pending Pending'
expect_ok "... grantedAt recorded" bash -c "[ \"\$(kubectl get -n $NS mi/umi-db1 -o jsonpath='{.status.keyAccess[*].grantedAt}' | wc -w)\" = 2 ]"
expect_ok "... PermissionPending condition" condis mi/umi-db1 PermissionPending True
expect_ok "... Ready not yet True" bash -c "[ \"\$(kubectl get -n $NS mi/umi-db1 -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}')\" != True ]"
expect_ok "... Reconciling while pending" reasonis mi/umi-db1 Reconciling PermissionPending

# ---- identity missing the role on an RBAC vault ----------------------------------
wait_for "identity without the role: Stalled MissingPermissions" 90 reasonis mi/umi-mi Stalled MissingPermissions
expect_ok "... names the permissions, key and vault" msghas mi/umi-mi Ready 'get, wrapKey, unwrapKey on key e2e-rbac in vault kv-rbac'
expect_ok "... and the role to assign" msghas mi/umi-mi Ready 'Key Vault Crypto Service Encryption User'
expect_ok "... keyAccess lists what is missing" is mi/umi-mi '{.status.keyAccess[0].missing[*]}' 'get wrapKey unwrapKey'
expect_ok "... Warning Event" bash -c "kubectl get events -n $NS --field-selector involvedObject.name=umi-mi -o jsonpath='{.items[*].reason}' | grep -q MissingPermissions"

emu POST seed "{\"roleAssignments\":[{\"name\":\"$RA_NAME\",\"scope\":\"$RBAC_SCOPE\",\"role\":\"Key Vault Crypto Service Encryption User\",\"principalId\":\"0d0d0d0d-0000-4000-8000-000000000002\"}]}" >/dev/null
wait_for "role assigned in Azure: noticed, reported Pending" 90 is mi/umi-mi '{.status.keyAccess[0].state}' Pending
expect_ok "... Stalled cleared" bash -c "[ -z \"\$(kubectl get -n $NS mi/umi-mi -o jsonpath='{.status.conditions[?(@.type==\"Stalled\")].status}')\" ]"
expect_ok "... PermissionPending" condis mi/umi-mi PermissionPending True

# ---- after the permission delay: Ready ----------------------------------------------
wait_for "permission delay passed: identity Ready" 90 reasonis mi/umi-db1 Ready AccessVerified
expect_ok "... entries Granted" is mi/umi-db1 '{.status.keyAccess[*].state}' 'Granted Granted'
expect_ok "... PermissionPending removed" bash -c "[ -z \"\$(kubectl get -n $NS mi/umi-db1 -o jsonpath='{.status.conditions[?(@.type==\"PermissionPending\")].status}')\" ]"
wait_for "the new role too" 90 reasonis mi/umi-mi Ready AccessVerified

# ---- revocation in Azure is noticed within the check interval ------------------------
emu PATCH settings '{"armAuthorization":false}' >/dev/null
tok=$(emu POST token '{"objectId":"0b0b0b0b-0000-4000-8000-000000000001","resource":"https://management.localhost"}' |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
expect_ok "role assignment deleted in Azure" curl -sS --fail-with-body --cacert "$EMU_CA" -X DELETE -H "Authorization: Bearer $tok" \
  "https://management.localhost:$EMU_PORT$RBAC_SCOPE/providers/Microsoft.Authorization/roleAssignments/$RA_NAME?api-version=2022-04-01"
emu PATCH settings '{"armAuthorization":true}' >/dev/null
wait_for "revocation noticed: Stalled MissingPermissions" 90 reasonis mi/umi-mi Stalled MissingPermissions
expect_ok "... grantedAt cleared" is mi/umi-mi '{.status.keyAccess[0].grantedAt}' ''
expect_ok "... PermissionLost Warning Event" bash -c "kubectl get events -n $NS --field-selector involvedObject.name=umi-mi,type=Warning -o jsonpath='{.items[*].reason}' | grep -q PermissionLost"

# ---- finalizer: never delete key material while referenced ----------------------
k delete -n $NS vk/k-east --wait=false >/dev/null
wait_for "referenced key: deletion blocked" 60 condis vk/k-east DeletionBlocked True
expect_ok "... naming the referrer" msghas vk/k-east DeletionBlocked 'SqlDatabase db1 (spec.encryptionProtector)'
expect_ok "... object kept (finalizer)" bash -c "kubectl get -n $NS vk/k-east -o jsonpath='{.metadata.deletionTimestamp}' | grep -q ."
sleep 3
expect_ok "... still there after a while" bash -c "kubectl get -n $NS vk/k-east >/dev/null"

k patch -n $NS sqldb/db1 --type json -p '[{"op":"remove","path":"/spec/encryptionProtector"}]' >/dev/null
wait_for "reference removed: finalizer released" 60 gone vk/k-east
expect_ok "... KeyMaterialKept Event" bash -c "kubectl get events -n $NS -o jsonpath='{.items[*].reason}' | grep -q KeyMaterialKept"
n=$(vault_deletes)
[ "$n" -eq 0 ] && pass "... no key was ever deleted in Key Vault" || fail "no key deleted in Key Vault" "$n DELETEs"

# an unreferenced key goes at once, its material stays
k delete -n $NS vk/k-rbac --wait=false >/dev/null
k delete -n $NS sqldb/db1 sqldb/db2 --wait=false >/dev/null
wait_for "unreferenced key: deleted without touching Key Vault" 90 gone vk/k-rbac
n=$(vault_deletes)
[ "$n" -eq 0 ] && pass "... still no Key Vault delete" || fail "still no Key Vault delete" "$n DELETEs"

if grep -q -e 'Sanitizer' -e 'runtime error' "$E2E_DIR/operator.log"; then fail "no sanitizer reports"; else pass "no sanitizer reports"; fi
e2e_finish
