#!/usr/bin/env bash
# Auto-rotation: with spec.autoRotation the operator turns on
# encryptionProtectorAutoRotation and then leaves version moves to Azure: a
# new VaultKey version causes no protector write from the operator; after
# Azure's auto-rotation window (24 h on the emulator's virtual clock) the
# database is on the new version and status follows.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/db_lib.sh"
db_estate_up
wait_for "SqlDatabase orders Ready" 180 is_ready sqldatabase/orders
v1=$(jp vaultkey/tde-demo '{.status.currentKeyUri}')

seq0=$(req_seq)
k patch sqldatabase/orders --type=merge -p '{"spec":{"autoRotation":true}}' >/dev/null
patched() { [ "$(arm_writes "$seq0" /databases/orders 2>/dev/null)" -ge 1 ] && is_ready sqldatabase/orders; }
wait_for "auto-rotation turned on" 90 patched
n=$(arm_writes "$seq0" /databases/orders)
[ "$n" = 1 ] && pass "one PATCH to turn it on" || fail "writes to turn on auto-rotation" "$n"

seq1=$(req_seq)
k patch vaultkey/tde-demo --type=merge -p '{"spec":{"rotation":{"trigger":"r1"}}}' >/dev/null
newver() { v=$(jp vaultkey/tde-demo '{.status.currentKeyUri}'); [ -n "$v" ] && [ "$v" != "$v1" ]; }
wait_for "VaultKey has a new version" 90 newver
v2=$(jp vaultkey/tde-demo '{.status.currentKeyUri}')
k annotate --overwrite sqldatabase/orders e2e/poke="$(date +%s%N)" >/dev/null
sleep 5
w=$(arm_writes "$seq1" /databases/orders)
[ "$w" = 0 ] && pass "no protector write from the operator for a new version (Azure moves it)" || fail "database writes after rotation" "$w"
is_ready sqldatabase/orders && pass "Ready while Azure has not moved yet (within 24 h)" || fail "not Ready before the window"

emu POST clock/advance '{"seconds": 90000}' >/dev/null
emu POST sql/check '{}' >/dev/null
on_v2() { [ "$(jp sqldatabase/orders '{.status.protectorKeyUri}' | tr A-Z a-z)" = "$(echo "$v2" | tr A-Z a-z)" ]; }
wait_for "Azure auto-rotated the database; status follows" 90 on_v2
w=$(arm_writes "$seq1" /databases/orders)
[ "$w" = 0 ] && pass "still no database write from the operator" || fail "database writes" "$w"
wait_for "Ready on the new version" 60 is_ready sqldatabase/orders
grep -E 'Sanitizer|runtime error' "$E2E_DIR/operator.log" >/dev/null && fail "sanitizer report in operator log" || pass "no sanitizer report"
e2e_finish
