#!/usr/bin/env bash
# Extra keys: adding an entry to spec.keys adds the key to the database
# (no protector change); removing it removes the key. A key that a retained
# backup still needs (the protector before a rotation) is never removed: the
# object shows KeyRemovalBlocked (KeyRemovalWouldStrandBackup) and no write
# is sent.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/db_lib.sh"
db_estate_up
DB_ID=/subscriptions/aaaaaaaa-0000-4000-8000-000000000001/resourceGroups/rg-tde/providers/Microsoft.Sql/servers/sql-east/databases/orders
cat <<YAML | k apply -f - >/dev/null
apiVersion: sqltde.io/v1alpha1
kind: VaultKey
metadata: {name: tde-extra}
spec:
  vaults: [{name: kv-tde-east}]
  keyName: tde-extra
  source: {type: generate, kty: RSA, size: 2048}
YAML
wait_for "SqlDatabase orders Ready" 180 is_ready sqldatabase/orders
wait_for "VaultKey tde-extra Ready" 120 is_ready vaultkey/tde-extra
extra=$(jp vaultkey/tde-extra '{.status.currentKeyUri}')
prot=$(jp sqldatabase/orders '{.status.protectorKeyUri}')
has_key() { jp sqldatabase/orders '{.status.currentKeys[*].keyUri}' | tr ' A-Z' '\na-z' | grep -qx "$(echo "$1" | tr A-Z a-z)"; }

# --- add --------------------------------------------------------------------
k patch sqldatabase/orders --type=merge -p '{"spec":{"keys":[{"vaultKey":"tde-extra"}]}}' >/dev/null
added() { has_key "$extra" && is_ready sqldatabase/orders; }
wait_for "extra key added to the database" 120 added
[ "$(jp sqldatabase/orders '{.status.protectorKeyUri}')" = "$prot" ] && pass "protector unchanged by adding a key" || fail "protector changed"

# --- remove (not needed by log or backups) -----------------------------------
k patch sqldatabase/orders --type=json -p '[{"op":"remove","path":"/spec/keys"}]' >/dev/null
removed() { ! has_key "$extra" && is_ready sqldatabase/orders; }
wait_for "extra key removed from the database" 120 removed
n=$(emu GET "requests?limit=100000&method=GET" | python3 -c '
import json,sys
print(sum(1 for r in json.load(sys.stdin)["value"] if r["path"].endswith("/databases/orders") and "pointInTime" in (r.get("query") or "")))')
[ "$n" -ge 1 ] && pass "removal looked at the keys in use and the keys backups need ($n GETs)" || fail "no pointInTime read before removal"

# --- a key a retained backup needs is kept -----------------------------------
v1=$prot
k patch vaultkey/tde-demo --type=merge -p '{"spec":{"rotation":{"trigger":"r1"}}}' >/dev/null
moved() { p=$(jp sqldatabase/orders '{.status.protectorKeyUri}'); [ -n "$p" ] && [ "$p" != "$v1" ] && is_ready sqldatabase/orders; }
wait_for "database moved to the new version" 150 moved
# retire the log written under v1: only retained backups still need it now
emu POST sql/workload "{\"databaseId\":\"$DB_ID\",\"records\":20,\"retireOldLog\":true}" >/dev/null
k annotate --overwrite sqldatabase/orders e2e/poke="$(date +%s%N)" >/dev/null
kept() { [ "$(cond sqldatabase/orders KeyRemovalBlocked)" = True ]; }
wait_for "KeyRemovalBlocked: the old protector is kept for retained backups" 60 kept
[ "$(jp sqldatabase/orders '{.status.conditions[?(@.type=="KeyRemovalBlocked")].reason}')" = KeyRemovalWouldStrandBackup ] \
  && pass "reason KeyRemovalWouldStrandBackup" || fail "reason" "$(jp sqldatabase/orders '{.status.conditions[?(@.type=="KeyRemovalBlocked")].reason}')"
jp sqldatabase/orders '{.status.conditions[?(@.type=="KeyRemovalBlocked")].message}' | grep -q 'retained backups' \
  && pass "message says retained backups need it" || fail "message" "$(jp sqldatabase/orders '{.status.conditions[?(@.type=="KeyRemovalBlocked")].message}')"
seq0=$(req_seq)
k annotate --overwrite sqldatabase/orders e2e/poke="$(date +%s%N)" >/dev/null
sleep 4
has_key "$v1" && pass "old protector still in the database's keys" || fail "old protector was removed"
w=$(arm_writes "$seq0")
[ "$w" = 0 ] && pass "no removal write for a key a backup needs" || fail "writes" "$w"
is_ready sqldatabase/orders && pass "still Ready (a kept key is a warning, not a failure)" || fail "not Ready"
grep -E 'Sanitizer|runtime error' "$E2E_DIR/operator.log" >/dev/null && fail "sanitizer report in operator log" || pass "no sanitizer report"
e2e_finish
