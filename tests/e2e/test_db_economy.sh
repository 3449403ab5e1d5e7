#!/usr/bin/env bash
# Observation is batched per server (SPEC §2/§7): with seven databases with a
# database-level protector on one server, a resync of the converged estate
# costs the server's database list — no per-database GET, no write — and a
# change made in Azure out of band is still seen and corrected.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/db_lib.sh"
db_estate_up

N=6
for i in $(seq 1 $N); do
  cat <<YAML
---
apiVersion: sqltde.io/v1alpha1
kind: SqlDatabase
metadata: {name: econ-$i}
spec:
  server: {name: sql-east}
  identity: {name: umi-db1}
  encryptionProtector:
    vaultKey: {name: tde-demo}
YAML
done | k apply -f - >/dev/null

wait_for "SqlServer sql-east Ready" 180 is_ready sqlserver/sql-east
all_ready() {
  local i
  is_ready sqldatabase/orders || return 1
  for i in $(seq 1 $N); do is_ready sqldatabase/econ-$i || return 1; done
}
wait_for "orders and $N more databases Ready" 300 all_ready
SRV=/subscriptions/aaaaaaaa-0000-4000-8000-000000000001/resourceGroups/rg-tde/providers/Microsoft.Sql/servers/sql-east

# db_gets SINCE — ARM GETs of single databases (any .../databases/NAME) after SINCE
db_gets() {
  emu GET "requests?since=$1&limit=100000" | python3 -c '
import json,sys
v=json.load(sys.stdin)["value"]
g=[r for r in v if r["host"].startswith("management.") and r["method"]=="GET" and "/databases/" in r["path"]]
for r in g: print("  db get:", r["seq"], r["path"], r.get("query",""), file=sys.stderr)
print(len(g))'
}
# list_calls SINCE — ARM GETs of the server's database list after SINCE
list_calls() {
  emu GET "requests?since=$1&limit=100000" | python3 -c '
import json,sys
v=json.load(sys.stdin)["value"]
print(sum(1 for r in v if r["host"].startswith("management.") and r["method"]=="GET" and r["path"].rstrip("/").lower().endswith(sys.argv[1].lower()+"/databases")))' "$SRV"
}

# --- a forced resync of every database: one list, no database GET ----------
sleep 3 # let the passes that follow the last status writes settle
seq0=$(req_seq)
for i in orders $(seq -f 'econ-%g' 1 $N); do k annotate --overwrite sqldatabase/$i e2e/resync="$(date +%s%N)" >/dev/null; done
listed() { [ "$(list_calls "$seq0")" -ge 1 ]; }
wait_for "resync listed the server's databases" 60 listed
sleep 5 # every database's pass (and any read or write it would make) happens here
g=$(db_gets "$seq0"); l=$(list_calls "$seq0"); w=$(arm_writes "$seq0")
echo "resync of $((N + 1)) databases: database GETs $g, server list calls $l, ARM writes $w"
[ "$g" = 0 ] && pass "no per-database GET over a resync of $((N + 1)) converged databases" || fail "database GETs over resync" "$g"
[ "$l" -ge 1 ] && [ "$l" -le 3 ] && pass "server list calls O(servers) ($l)" || fail "server list calls" "$l"
[ "$w" = 0 ] && pass "zero ARM writes over the resync" || fail "ARM writes over resync" "$w"
all_ready && pass "all still Ready" || fail "Ready after resync"

# --- the periodic resync (20 s) with nothing touched: same economy -----------
seqp=$(req_seq)
sleep 25
g=$(db_gets "$seqp"); l=$(list_calls "$seqp"); w=$(arm_writes "$seqp")
echo "25 s of periodic resyncs: database GETs $g, server list calls $l, ARM writes $w"
[ "$g" -lt "$N" ] && pass "periodic resyncs: fewer database GETs ($g) than databases" || fail "periodic database GETs" "$g"
[ "$l" -ge 1 ] && pass "periodic resyncs re-observed Azure through the list ($l)" || fail "no list call in 25 s"
[ "$w" = 0 ] && pass "zero ARM writes over periodic resyncs" || fail "ARM writes over periodic resyncs" "$w"

# --- drift made in Azure out of band is seen and corrected -------------------
tok=$(emu POST token '{"objectId":"0b0b0b0b-0000-4000-8000-000000000001","resource":"https://management.localhost"}' |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
arm() { curl -sS --fail-with-body --cacert "$EMU_CA" -H "Authorization: Bearer $tok" -H 'Content-Type: application/json' "$@"; }
DB3="$SRV/databases/econ-3"
autorot() { arm "https://management.localhost:$EMU_PORT$DB3?api-version=2025-01-01" |
            python3 -c 'import json,sys; print(str(json.load(sys.stdin)["properties"].get("encryptionProtectorAutoRotation")).lower())'; }
[ "$(autorot)" = false ] && pass "econ-3 has auto-rotation off in Azure (as in spec)" || fail "econ-3 autoRotation before" "$(autorot)"
seq1=$(req_seq)
emu PATCH settings '{"armAuthorization":false}' >/dev/null
expect_ok "out-of-band PATCH turns auto-rotation on for econ-3" \
  arm -o /dev/null -X PATCH -d '{"properties":{"encryptionProtectorAutoRotation":true}}' \
  "https://management.localhost:$EMU_PORT$DB3?api-version=2025-01-01"
emu PATCH settings '{"armAuthorization":true}' >/dev/null
on_then_off() { [ "$(arm_writes "$seq1" /databases/econ-3 2>/dev/null)" -ge 2 ] && [ "$(autorot)" = false ]; }
wait_for "the operator saw the drift and turned auto-rotation off again" 120 on_then_off
w_other=$(emu GET "requests?since=$seq1&limit=100000" | python3 -c '
import json,sys
v=json.load(sys.stdin)["value"]
print(sum(1 for r in v if r["host"].startswith("management.") and r["method"] in ("PUT","PATCH","POST","DELETE") and "/databases/econ-3" not in r["path"]))')
[ "$w_other" = 0 ] && pass "no write to the other databases" || fail "writes to other databases" "$w_other"
wait_for "econ-3 Ready again" 60 is_ready sqldatabase/econ-3

grep -E 'Sanitizer|runtime error' "$E2E_DIR/operator.log" >/dev/null && fail "sanitizer report in operator log" || pass "no sanitizer report"
e2e_finish
