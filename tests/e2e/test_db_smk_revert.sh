#!/usr/bin/env bash
# Server SMK + database CMK: a database on a service-managed server gets its
# own protector; removing encryptionProtector reverts it to server-level
# encryption (POST .../encryptionProtector/current/revert) and it is Ready at
# level Server. Then deletionPolicy Delete drops the Azure database when the
# object is deleted.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/db_lib.sh"
db_estate_up
cat <<YAML | k apply -f - >/dev/null
apiVersion: sqltde.io/v1alpha1
kind: SqlServer
metadata: {name: sql-west}
spec:
  resourceId: /subscriptions/aaaaaaaa-0000-4000-8000-000000000001/resourceGroups/rg-tde-west/providers/Microsoft.Sql/servers/sql-west
  identity: {name: umi-db1}
  protector: {type: ServiceManaged}
---
apiVersion: sqltde.io/v1alpha1
kind: SqlDatabase
metadata: {name: inventory}
spec:
  server: {name: sql-west}
  identity: {name: umi-db1}
  deletionPolicy: Delete
  encryptionProtector:
    vaultKey: {name: tde-demo}
YAML
wait_for "SqlServer sql-west Ready" 180 is_ready sqlserver/sql-west
[ "$(jp sqlserver/sql-west '{.status.protectorType}')" = ServiceManaged ] && pass "sql-west is service-managed" || fail "sql-west type"
wait_for "SqlDatabase inventory Ready" 180 is_ready sqldatabase/inventory
[ "$(jp sqldatabase/inventory '{.status.level}')" = Database ] && pass "database-level CMK on an SMK server" || fail "level" "$(jp sqldatabase/inventory '{.status.level}')"
th=$(jp sqldatabase/inventory '{.status.thumbprint}')
echo "$th" | grep -Eiq '^[0-9a-f]{40}$' && pass "thumbprint in status" || fail "thumbprint" "$th"
cmk_uri=$(jp sqldatabase/inventory '{.status.protectorKeyUri}')

seq0=$(req_seq)
k patch sqldatabase/inventory --type=json -p '[{"op":"remove","path":"/spec/encryptionProtector"}]' >/dev/null
reverted() { [ "$(jp sqldatabase/inventory '{.status.level}')" = Server ] && is_ready sqldatabase/inventory; }
wait_for "reverted to server level and Ready" 120 reverted
n=$(emu GET "requests?since=$seq0&limit=100000&method=POST" | python3 -c '
import json,sys
print(sum(1 for r in json.load(sys.stdin)["value"] if r["path"].endswith("/databases/inventory/encryptionProtector/current/revert") and r["status"] in (200,202)))')
[ "$n" = 1 ] && pass "exactly one revert call" || fail "revert calls" "$n"
[ "$(jp sqldatabase/inventory '{.status.protectorKeyUri}')" = ServiceManaged ] && pass "status shows the service-managed server key" || fail "protector after revert" "$(jp sqldatabase/inventory '{.status.protectorKeyUri}')"
to=$(jp sqldatabase/inventory '{.status.keyHistory[0].to}')
[ -n "$to" ] && [ "$(jp sqldatabase/inventory '{.status.keyHistory[0].keyUri}')" = "$cmk_uri" ] && pass "key history closed the CMK period" || fail "key history" "$(jp sqldatabase/inventory '{.status.keyHistory}')"

# deletionPolicy Delete drops the database
seq1=$(req_seq)
k delete sqldatabase/inventory --timeout=90s >/dev/null && pass "object deleted" || fail "delete inventory"
n=$(emu GET "requests?since=$seq1&limit=100000&method=DELETE" | python3 -c '
import json,sys
print(sum(1 for r in json.load(sys.stdin)["value"] if r["path"].endswith("/servers/sql-west/databases/inventory") and r["status"] in (200,202,204)))')
[ "$n" -ge 1 ] && pass "deletionPolicy Delete dropped the Azure database" || fail "no DELETE"
gone() { ! emu POST sql/check '{}' | python3 -c 'import json,sys; sys.exit(0 if any(d["name"]=="inventory" for d in json.load(sys.stdin)["databases"]) else 1)'; }
gone && pass "the emulator no longer has the database" || fail "database still in the emulator"
grep -E 'Sanitizer|runtime error' "$E2E_DIR/operator.log" >/dev/null && fail "sanitizer report in operator log" || pass "no sanitizer report"
e2e_finish
