#!/usr/bin/env bash
# Vault access revoked -> Azure SQL marks the database Inaccessible (after its
# key check and grace period, on the emulator's virtual clock) -> the
# SqlDatabase surfaces an Inaccessible condition and a Warning Event and
# makes no write while access is missing -> access restored -> the operator
# revalidates the protector (one POST .../revalidate) -> Online and Ready.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/db_lib.sh"
db_estate_up
UMI_OID=0d0d0d0d-0000-4000-8000-000000000001

wait_for "SqlDatabase orders Ready" 180 is_ready sqldatabase/orders

seq0=$(req_seq)
emu POST permissions/revoke "{\"vault\":\"kv-tde-east\",\"objectId\":\"$UMI_OID\"}" >/dev/null
# past SQL's delayed view of permissions (10 min) and the 30 min grace
emu POST clock/advance '{"seconds": 3000}' >/dev/null
emu POST sql/check '{}' >/dev/null
inacc_azure() {
  emu POST sql/check '{}' | python3 -c '
import json,sys
sys.exit(0 if any(d["name"]=="orders" and d["status"]=="Inaccessible" for d in json.load(sys.stdin)["databases"]) else 1)'
}
wait_for "the emulator made the database Inaccessible" 60 inacc_azure
inacc() { [ "$(cond sqldatabase/orders Inaccessible)" = True ] && [ "$(jp sqldatabase/orders '{.status.state}')" = Inaccessible ]; }
wait_for "Inaccessible condition surfaced" 120 inacc
[ "$(cond sqldatabase/orders Ready)" != True ] && pass "not Ready while Inaccessible" || fail "Ready while Inaccessible"
k get events --field-selector involvedObject.name=orders,type=Warning -o jsonpath='{.items[*].reason}' | grep -q Inaccessible \
  && pass "Warning Event Inaccessible" || fail "Warning Event Inaccessible"

# while access is missing: no revalidation storm (at most one attempt per
# retry interval, and never a write other than revalidate)
sleep 8
seq1=$(req_seq)
sleep 10
w=$(arm_writes "$seq1")
[ "$w" -le 3 ] && pass "no write storm while access is missing ($w in 10 s)" || fail "writes while access missing" "$w"

emu POST permissions/restore "{\"vault\":\"kv-tde-east\",\"objectId\":\"$UMI_OID\"}" >/dev/null
emu POST clock/advance '{"seconds": 900}' >/dev/null
wait_for "revalidated: Ready again" 240 is_ready sqldatabase/orders
[ "$(jp sqldatabase/orders '{.status.state}')" = Online ] && pass "state Online" || fail "state" "$(jp sqldatabase/orders '{.status.state}')"
[ "$(cond sqldatabase/orders Inaccessible)" = "" ] && pass "Inaccessible condition cleared" || fail "Inaccessible condition" "$(cond sqldatabase/orders Inaccessible)"
n=$(emu GET "requests?since=$seq0&limit=100000&method=POST" | python3 -c '
import json,sys
print(sum(1 for r in json.load(sys.stdin)["value"] if r["path"].endswith("/databases/orders/encryptionProtector/current/revalidate") and r["status"] in (200,202)))')
[ "$n" -ge 1 ] && pass "the operator called revalidate ($n accepted)" || fail "no revalidate call"
grep -E 'Sanitizer|runtime error' "$E2E_DIR/operator.log" >/dev/null && fail "sanitizer report in operator log" || pass "no sanitizer report"
e2e_finish
