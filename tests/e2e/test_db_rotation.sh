#!/usr/bin/env bash
# Rotation blocked by active log: after a first rotation, log written under
# the old protector is still active, so Azure refuses the next rotation with
# PerDatabaseCMKKeyRotationAttemptedWhileOldThumbprintInUse. The SqlDatabase
# shows RotationBlocked, records the failure in status (a restart keeps the
# backoff), does not hot-loop, and once log generation retires the old log it
# retries and moves to the new version.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/db_lib.sh"
db_estate_up
DB_ID=/subscriptions/aaaaaaaa-0000-4000-8000-000000000001/resourceGroups/rg-tde/providers/Microsoft.Sql/servers/sql-east/databases/orders

wait_for "SqlDatabase orders Ready" 180 is_ready sqldatabase/orders
v1=$(jp vaultkey/tde-demo '{.status.currentKeyUri}')

# log under v1 stays active
emu POST sql/workload "{\"databaseId\":\"$DB_ID\",\"records\":50,\"retireOldLog\":false}" >/dev/null
rotate() { # rotate TRIGGER — new VaultKey version; prints its URI
  local before; before=$(jp vaultkey/tde-demo '{.status.currentKeyUri}')
  k patch vaultkey/tde-demo --type=merge -p "{\"spec\":{\"rotation\":{\"trigger\":\"$1\"}}}" >/dev/null
  local deadline=$((SECONDS + 90))
  while [ $SECONDS -lt $deadline ]; do
    local now; now=$(jp vaultkey/tde-demo '{.status.currentKeyUri}')
    [ -n "$now" ] && [ "$now" != "$before" ] && { echo "$now"; return 0; }
    sleep 0.5
  done
  return 1
}
v2=$(rotate r1) && pass "VaultKey rotated to a second version" || fail "rotation r1"
on_v() { [ "$(jp sqldatabase/orders '{.status.protectorKeyUri}' | tr A-Z a-z)" = "$(echo "$1" | tr A-Z a-z)" ] && is_ready sqldatabase/orders; }
wait_for "database moved to the second version" 120 on_v "$v2"
# more log, old log still active
emu POST sql/workload "{\"databaseId\":\"$DB_ID\",\"records\":50,\"retireOldLog\":false}" >/dev/null

v3=$(rotate r2) && pass "VaultKey rotated to a third version" || fail "rotation r2"
blocked() { [ "$(cond sqldatabase/orders RotationBlocked)" = True ] &&
  [ "$(jp sqldatabase/orders '{.status.lastFailure.code}')" = PerDatabaseCMKKeyRotationAttemptedWhileOldThumbprintInUse ]; }
wait_for "RotationBlocked surfaced with the ARM code recorded in status" 120 blocked
[ "$(cond sqldatabase/orders Ready)" != True ] && pass "not Ready while rotation is blocked" || fail "Ready while blocked"
# bounded retry: the planner's backoff (1 min, doubling) — no hot loop
seq1=$(req_seq)
sleep 15
w=$(arm_writes "$seq1")
[ "$w" -le 1 ] && pass "bounded retries while blocked ($w writes in 15 s)" || fail "writes while blocked" "$w"

# log generation retires the old log; the next retry succeeds
emu POST sql/workload "{\"databaseId\":\"$DB_ID\",\"records\":50,\"retireOldLog\":true}" >/dev/null
wait_for "rotation retried and succeeded after log generation" 200 on_v "$v3"
[ -z "$(jp sqldatabase/orders '{.status.lastFailure.code}')" ] && pass "last failure cleared" || fail "last failure kept"
[ "$(cond sqldatabase/orders RotationBlocked)" = "" ] && pass "RotationBlocked cleared" || fail "RotationBlocked still set"
n=$(jp sqldatabase/orders '{.status.keyHistory[*].keyUri}' | wc -w)
[ "$n" -ge 3 ] && pass "key history holds the three protectors ($n entries)" || fail "key history" "$n entries"
[ "$v1" != "$v3" ] || fail "versions differ"
grep -E 'Sanitizer|runtime error' "$E2E_DIR/operator.log" >/dev/null && fail "sanitizer report in operator log" || pass "no sanitizer report"
e2e_finish
