#!/usr/bin/env bash
# Cross-tenant key with federatedClientId (ISV pattern, SPEC §1): the
# protector key lives in kv-fabrikam, in the customer's tenant (fabrikam);
# the operator (a multi-tenant app from contoso with a service principal in
# fabrikam granted get/list) tracks it, following the vault's 401 challenge
# to a token in fabrikam (AZURE_ADDITIONALLY_ALLOWED_TENANTS); Azure SQL
# reaches it as the federated app's principal in fabrikam. The database
# reaches Ready with the other tenant's protector and thumbprint; when the
# customer revokes the federated principal's grant, Azure SQL's key check
# makes the database Inaccessible and the operator surfaces it.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/db_lib.sh"
FABRIKAM=22222222-2222-4222-8222-222222222222
OP_SP_OID=0e0e0e0e-0000-4000-8000-000000000001  # the operator's principal in fabrikam
FED_SP_OID=0e0e0e0e-0000-4000-8000-000000000004 # isv-tde-app's principal in fabrikam
E2E_ALLOWED_TENANTS=$FABRIKAM
db_estate_up
seed_json=$(python3 -c 'import json,sys,yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))' \
  "$E2E_ROOT/tests/e2e/seeds/cross-tenant.yaml")
emu POST seed "$seed_json" >/dev/null && pass "cross-tenant seed applied" || fail "cross-tenant seed"
wait_for "SqlServer sql-east Ready" 180 is_ready sqlserver/sql-east

seq0=$(req_seq)
sed -e "s#\.vault\.azure\.net/#.vault.localhost:$EMU_PORT/#" "$E2E_ROOT/docs/examples/cross-tenant-federated.yaml" \
  >"$E2E_DIR/cross-tenant.yaml"
k apply -f "$E2E_DIR/cross-tenant.yaml" >/dev/null && pass "applied the cross-tenant example" || fail "apply cross-tenant example"

vk_has_version() { [ -n "$(jp vaultkey/fabrikam-tde '{.status.currentKeyUri}')" ]; }
wait_for "VaultKey in the other tenant has a current version" 120 vk_has_version
wait_for "SqlDatabase fabrikam-db Ready" 180 is_ready sqldatabase/fabrikam-db
k get sqltde -o wide >"$E2E_DIR/estate.txt" 2>&1

vk_uri=$(jp vaultkey/fabrikam-tde '{.status.currentKeyUri}')
vk_th=$(jp vaultkey/fabrikam-tde '{.status.currentThumbprint}')
echo "$vk_uri" | grep -q '^https://kv-fabrikam\.vault\.localhost:[0-9]*/keys/fabrikam-tde/[0-9a-f]\{32\}$' \
  && pass "the key version is kv-fabrikam's" || fail "VaultKey uri" "$vk_uri"
db_uri=$(jp sqldatabase/fabrikam-db '{.status.protectorKeyUri}')
db_th=$(jp sqldatabase/fabrikam-db '{.status.thumbprint}')
[ -n "$vk_uri" ] && [ "${db_uri,,}" = "${vk_uri,,}" ] && pass "database protector is the other tenant's key" \
  || fail "database protector" "$db_uri vs $vk_uri"
echo "$db_th" | grep -Eiq '^[0-9a-f]{40}$' && [ "${db_th,,}" = "${vk_th,,}" ] && pass "thumbprint in status" \
  || fail "database thumbprint" "'$db_th' vs '$vk_th'"
[ "$(jp sqldatabase/fabrikam-db '{.status.state}')" = Online ] && pass "state Online" \
  || fail "state" "$(jp sqldatabase/fabrikam-db '{.status.state}')"

# the request log: the vault token came from fabrikam, and the vault saw the
# operator as its principal there
emu GET "requests?since=$seq0&limit=100000" >"$E2E_DIR/requests.json"
python3 - "$E2E_DIR/requests.json" "$FABRIKAM" "$OP_SP_OID" >"$E2E_DIR/xt-log.txt" <<'PY'
import json,sys
v=json.load(open(sys.argv[1]))["value"]
fab, sp = sys.argv[2].lower(), sys.argv[3].lower()
tok=[r for r in v if r["host"].startswith("login.") and r["method"]=="POST" and r["path"].lower().startswith("/"+fab+"/") and "token" in r["path"] and r["status"]==200]
kv=[r for r in v if r["host"].startswith("kv-fabrikam.") and r["method"]=="GET" and r["status"]==200 and r.get("callerOid","").lower()==sp]
print("fabrikam_tokens", len(tok))
print("kv_reads_as_sp", len(kv))
PY
n_tok=$(awk '$1=="fabrikam_tokens"{print $2}' "$E2E_DIR/xt-log.txt")
n_kv=$(awk '$1=="kv_reads_as_sp"{print $2}' "$E2E_DIR/xt-log.txt")
[ "${n_tok:-0}" -ge 1 ] && pass "a token for the vault was issued in the fabrikam tenant ($n_tok)" || fail "no token in fabrikam" "$(cat "$E2E_DIR/xt-log.txt")"
[ "${n_kv:-0}" -ge 1 ] && pass "kv-fabrikam was read as the operator's principal in fabrikam ($n_kv)" || fail "no vault read as the fabrikam principal" "$(cat "$E2E_DIR/xt-log.txt")"

# --- the customer removes its grant: Inaccessible, surfaced ------------------
emu POST permissions/revoke "{\"vault\":\"kv-fabrikam\",\"objectId\":\"$FED_SP_OID\"}" >/dev/null \
  && pass "revoked the federated principal on kv-fabrikam" || fail "revoke"
# past SQL's delayed view of permissions and the grace period
emu POST clock/advance '{"seconds": 3000}' >/dev/null
inacc_azure() {
  emu POST sql/check '{}' | python3 -c '
import json,sys
sys.exit(0 if any(d["name"]=="fabrikam-db" and d["status"]=="Inaccessible" for d in json.load(sys.stdin)["databases"]) else 1)'
}
wait_for "the emulator made fabrikam-db Inaccessible" 60 inacc_azure
online_azure() {
  emu POST sql/check '{}' | python3 -c '
import json,sys
sys.exit(0 if any(d["name"]=="orders" and d["status"]=="Online" for d in json.load(sys.stdin)["databases"]) else 1)'
}
online_azure && pass "the same-tenant database stays Online (the revoke is the fabrikam principal's only)" || fail "orders not Online"
inacc() { [ "$(cond sqldatabase/fabrikam-db Inaccessible)" = True ] && [ "$(jp sqldatabase/fabrikam-db '{.status.state}')" = Inaccessible ]; }
wait_for "Inaccessible surfaced by the operator" 120 inacc
[ "$(cond sqldatabase/fabrikam-db Ready)" != True ] && pass "not Ready while Inaccessible" || fail "Ready while Inaccessible"

grep -E 'Sanitizer|runtime error' "$E2E_DIR/operator.log" >/dev/null && fail "sanitizer report in operator log" || pass "no sanitizer report"
e2e_finish
