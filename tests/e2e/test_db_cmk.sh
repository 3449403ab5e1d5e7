#!/usr/bin/env bash
# SqlServer with a customer-managed server protector and a SqlDatabase with
# its own database-level protector (override) reach Ready with protector and
# thumbprint in status; a resync of the converged estate makes zero ARM
# writes; a revert to server level on a CMK server is refused (Stalled, rule
# named) without any Azure write; an invalid spec gets InvalidSpec and no
# Azure call at all.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/db_lib.sh"
db_estate_up

wait_for "SqlServer sql-east Ready" 180 is_ready sqlserver/sql-east
wait_for "SqlDatabase orders Ready" 180 is_ready sqldatabase/orders
k get sqltde -o wide >"$E2E_DIR/estate.txt" 2>&1

vk_uri=$(jp vaultkey/tde-demo '{.status.currentKeyUri}')
vk_th=$(jp vaultkey/tde-demo '{.status.currentThumbprint}')
srv_type=$(jp sqlserver/sql-east '{.status.protectorType}')
srv_uri=$(jp sqlserver/sql-east '{.status.protectorKeyUri}')
[ "$srv_type" = CustomerManaged ] && pass "server protector is CustomerManaged" || fail "server protector type" "$srv_type"
[ -n "$vk_uri" ] && [ "${srv_uri,,}" = "${vk_uri,,}" ] && pass "server protector is the VaultKey's current version" \
  || fail "server protector uri" "$srv_uri vs $vk_uri"
db_uri=$(jp sqldatabase/orders '{.status.protectorKeyUri}')
db_th=$(jp sqldatabase/orders '{.status.thumbprint}')
db_level=$(jp sqldatabase/orders '{.status.level}')
[ "${db_uri,,}" = "${vk_uri,,}" ] && pass "database protector in status" || fail "database protector" "$db_uri vs $vk_uri"
echo "$db_th" | grep -Eiq '^[0-9a-f]{40}$' && [ "${db_th,,}" = "${vk_th,,}" ] && pass "database thumbprint in status" \
  || fail "database thumbprint" "'$db_th' vs '$vk_th'"
[ "$db_level" = Database ] && pass "database-level protector in effect" || fail "level" "$db_level"
[ "$(jp sqldatabase/orders '{.status.state}')" = Online ] && pass "state Online" || fail "state" "$(jp sqldatabase/orders '{.status.state}')"
[ -n "$(jp sqldatabase/orders '{.status.keyHistory[0].from}')" ] && pass "key history has an open entry" || fail "key history"
# Azure agrees (not just our status)
db_id=/subscriptions/aaaaaaaa-0000-4000-8000-000000000001/resourceGroups/rg-tde/providers/Microsoft.Sql/servers/sql-east/databases/orders

# --- zero ARM writes over a resync of the converged estate -----------------
seq0=$(req_seq)
for o in sqlserver/sql-east sqldatabase/orders; do k annotate --overwrite "$o" e2e/resync="$(date +%s%N)" >/dev/null; done
# the database is observed through its server's list (a converged database)
# or its own GET: both paths contain /servers/sql-east/databases
re_observed() { [ "$(arm_reads "$seq0" /servers/sql-east/databases)" -ge 1 ] && [ "$(arm_reads "$seq0" /encryptionProtector)" -ge 1 ]; }
wait_for "resync re-observed the database and the server" 60 re_observed
sleep 3 # let any write that would follow the reads happen
w=$(arm_writes "$seq0")
[ "$w" = 0 ] && pass "zero ARM writes over a resync of the converged estate" || fail "ARM writes over resync" "$w"
is_ready sqldatabase/orders && pass "still Ready after resync" || fail "Ready after resync"
# and the periodic one (--azure-resync-period 20s), with nothing touched
seqp=$(req_seq)
periodic() { [ "$(arm_reads "$seqp" /servers/sql-east/databases)" -ge 1 ] && [ "$(arm_reads "$seqp" /encryptionProtector)" -ge 1 ]; }
wait_for "periodic resync re-observed Azure" 60 periodic
sleep 2
w=$(arm_writes "$seqp")
[ "$w" = 0 ] && pass "zero ARM writes over a periodic resync" || fail "ARM writes over periodic resync" "$w"

# --- revert to server level on a CMK server: refused, rule named, no write ---
seq1=$(req_seq)
k patch sqldatabase/orders --type=json -p '[{"op":"remove","path":"/spec/encryptionProtector"}]' >/dev/null
stalled_revert() { [ "$(cond sqldatabase/orders Stalled)" = True ] && [ "$(jp sqldatabase/orders '{.status.conditions[?(@.type=="Stalled")].reason}')" = RevertNotAllowedWithServerCMK ]; }
wait_for "revert on a CMK server is Stalled with RevertNotAllowedWithServerCMK" 60 stalled_revert
jp sqldatabase/orders '{.status.conditions[?(@.type=="Stalled")].message}' | grep -q RevertDatabaseLevelKeyOnlySupportedWithSMK \
  && pass "the message names Azure's rule" || fail "stalled message" "$(jp sqldatabase/orders '{.status.conditions[?(@.type=="Stalled")].message}')"
sleep 2
w=$(arm_writes "$seq1")
[ "$w" = 0 ] && pass "no Azure write for the refused revert" || fail "writes after refused revert" "$w"
k get events --field-selector involvedObject.name=orders -o jsonpath='{.items[*].reason}' | grep -q RevertNotAllowedWithServerCMK \
  && pass "a Warning Event names the rule" || fail "event for the refusal"

# restore the override: back to Ready without a write (Azure never changed)
seq2=$(req_seq)
k patch sqldatabase/orders --type=merge -p '{"spec":{"encryptionProtector":{"vaultKey":{"name":"tde-demo"}}}}' >/dev/null
wait_for "back to Ready after restoring the spec" 60 is_ready sqldatabase/orders
w=$(arm_writes "$seq2")
[ "$w" = 0 ] && pass "no Azure write when the spec returns to what Azure has" || fail "writes after restore" "$w"

# --- InvalidSpec: pinned version + autoRotation -> no Azure call at all ------
seq3=$(req_seq)
cat <<YAML | k apply -f - >/dev/null
apiVersion: sqltde.io/v1alpha1
kind: SqlDatabase
metadata: {name: badpin}
spec:
  server: {name: sql-east}
  identity: {name: umi-db1}
  autoRotation: true
  encryptionProtector:
    vaultKey: {name: tde-demo}
    version: 0123456789abcdef0123456789abcdef
YAML
invalid() { [ "$(cond sqldatabase/badpin InvalidSpec)" = True ] && [ "$(cond sqldatabase/badpin Stalled)" = True ]; }
wait_for "pinned version with autoRotation is InvalidSpec + Stalled" 60 invalid
jp sqldatabase/badpin '{.status.conditions[?(@.type=="InvalidSpec")].message}' | grep -q 'spec.encryptionProtector.version' \
  && pass "InvalidSpec names the field" || fail "InvalidSpec message"
n=$(arm_reads "$seq3" /databases/badpin); w=$(arm_writes "$seq3")
[ "$n" = 0 ] && [ "$w" = 0 ] && pass "no Azure call for an invalid spec" || fail "Azure calls for invalid spec" "reads $n writes $w"

# --- deletion with the default Retain keeps the Azure database ---------------
seq4=$(req_seq)
k delete sqldatabase/orders --timeout=60s >/dev/null && pass "Retain: the object is released" || fail "delete orders"
w=$(arm_writes "$seq4")
[ "$w" = 0 ] && pass "Retain: no Azure write on deletion" || fail "writes on Retain deletion" "$w"

grep -E 'Sanitizer|runtime error' "$E2E_DIR/operator.log" >/dev/null && fail "sanitizer report in operator log" || pass "no sanitizer report"
e2e_finish
