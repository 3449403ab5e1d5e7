#!/usr/bin/env bash
# Restart chaos with the real binary (issue 5): while an estate converges
# through several ARM writes, the operator is killed with SIGKILL right after
# each new ARM write shows up in the emulator's request log, and started
# again. Whatever step it died after, it must re-plan from observed Azure
# state and converge, and Azure's side must never break a rule:
#   - every resource Ready, status protector/thumbprint = the VaultKey's;
#   - the database's protector key is in its key map (Azure's $expand=keys);
#   - no key that was ever the protector was removed from the key map;
#   - exactly one user-assigned identity on the database;
#   - a forced resync of the converged estate makes zero ARM writes.
# Phase 1 creates a database with its own protector and two extra keys on a
# server that goes from SMK to CMK; phase 2 rotates the protector key and adds
# a third extra key at once. Kills: the first CHAOS_KILLS writes of each phase.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/db_lib.sh"
CHAOS_KILLS=${CHAOS_KILLS:-3}
SUB=aaaaaaaa-0000-4000-8000-000000000001
SRV_ID=/subscriptions/$SUB/resourceGroups/rg-tde/providers/Microsoft.Sql/servers/sql-east
DB_ID=$SRV_ID/databases/orders
OPERATOR_OID=0b0b0b0b-0000-4000-8000-000000000001
# a short lease: a SIGKILLed leader never releases it, the next one waits it out
OP_FLAGS=(--permission-delay 3s --azure-resync-period 20s --key-check-interval 10s
  --leader-elect-lease-duration 6s --leader-elect-renew-deadline 4s --leader-elect-retry-period 1s)

e2e_cluster_up
e2e_emulator_up
# LROs long enough that some kills land while one is in flight
emu PATCH settings '{"lroDelayMs": 800, "lroRetryAfterSeconds": 0}' >/dev/null
e2e_operator_up "${OP_FLAGS[@]}"
KILLS=0

# op_kill_restart — SIGKILL the operator (no clean shutdown, lease kept) and
# start a fresh one
op_kill_restart() {
  local old=$OP_PID p keep=()
  kill -9 "$old" 2>/dev/null
  wait "$old" 2>/dev/null
  for p in "${E2E_PIDS[@]}"; do [ "$p" != "$old" ] && keep+=("$p"); done
  E2E_PIDS=("${keep[@]}")
  KILLS=$((KILLS + 1))
  echo "--- kill -9 #$KILLS of operator pid $old" >>"$E2E_DIR/operator.log"
  e2e_operator_up "${OP_FLAGS[@]}"
  echo "  restarted: operator pid $OP_PID"
}

# ARM access as the operator's application, to read what Azure holds
ARM_TOK=$(emu POST token "{\"objectId\":\"$OPERATOR_OID\",\"resource\":\"https://management.localhost\"}" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
arm_get() { curl -sS --fail-with-body --cacert "$EMU_CA" -H "Authorization: Bearer $ARM_TOK" "https://management.localhost:$EMU_PORT$1"; }
db_azure() { arm_get "$DB_ID?api-version=2025-01-01&%24expand=keys" 2>/dev/null; }
# the protector Azure has now (lower case; empty when the database does not exist yet)
azure_protector() { db_azure | python3 -c 'import json,sys
try: print((json.load(sys.stdin)["properties"].get("encryptionProtector") or "").lower())
except Exception: pass'; }

PROTS_SEEN=$E2E_DIR/protectors-seen.txt
: >"$PROTS_SEEN"
note_protector() { local p; p=$(azure_protector); [ -n "$p" ] && echo "$p" >>"$PROTS_SEEN"; return 0; }

# writes_after SEQ — the ARM writes logged after SEQ, one "seq method path status" a line
writes_after() {
  emu GET "requests?since=$1&limit=100000" | python3 -c '
import json,sys
for r in json.load(sys.stdin)["value"]:
    if r["host"].startswith("management.") and r["method"] in ("PUT","PATCH","POST","DELETE"):
        print(r["seq"], r["method"], r["path"], r["status"])'
}

# chaos PHASE DEADLINE_S DONE_CMD... — kill -9 + restart as soon as a new ARM
# write shows up, until the first CHAOS_KILLS writes of the phase have each
# been followed by a kill (the server and database controllers run in
# parallel, so two writes can show up in one poll: one kill then covers both),
# sampling Azure's protector as it goes; then waits for DONE_CMD or the deadline
chaos() {
  local phase=$1 t=$2; shift 2
  local since=$CHAOS_SEQ seen=0 covered=0 kills=0 deadline=$((SECONDS + t)) line new
  while [ $SECONDS -lt $deadline ]; do
    note_protector
    new=$(writes_after "$since")
    if [ -n "$new" ]; then
      while read -r line; do seen=$((seen + 1)); echo "  [$phase] ARM write #$seen seen: $line"; done <<<"$new"
      since=$(echo "$new" | tail -1 | cut -d' ' -f1)
      if [ "$covered" -lt "$CHAOS_KILLS" ]; then
        covered=$seen kills=$((kills + 1))
        echo "  [$phase] kill -9 after write #$seen"
        op_kill_restart
        note_protector
        continue
      fi
    fi
    if [ "$covered" -ge "$CHAOS_KILLS" ] && "$@" >/dev/null 2>&1; then break; fi
    sleep 0.3
  done
  echo "  [$phase] $seen ARM writes seen, $kills kills, the first $covered writes each followed by a kill"
  [ "$covered" -ge "$CHAOS_KILLS" ] && [ "$kills" -ge 2 ] &&
    pass "[$phase] operator killed -9 ($kills times) after each of the first $CHAOS_KILLS ARM writes" ||
    fail "[$phase] kills" "$kills kills covering $covered writes of $seen within ${t}s"
}

all_ready() {
  local o
  for o in keyvault/kv-tde-east vaultkey/tde-demo vaultkey/tde-extra1 vaultkey/tde-extra2 managedidentity/umi-db1 \
    sqlserver/sql-east sqldatabase/orders "$@"; do
    is_ready "$o" || return 1
  done
}

# check_converged PHASE EXTRA_VAULTKEYS... — status and Azure agree, rules hold
check_converged() {
  local phase=$1; shift
  local vk_uri vk_th st_uri st_th srv_uri
  vk_uri=$(jp vaultkey/tde-demo '{.status.currentKeyUri}')
  vk_th=$(jp vaultkey/tde-demo '{.status.currentThumbprint}')
  st_uri=$(jp sqldatabase/orders '{.status.protectorKeyUri}')
  st_th=$(jp sqldatabase/orders '{.status.thumbprint}')
  srv_uri=$(jp sqlserver/sql-east '{.status.protectorKeyUri}')
  [ -n "$vk_uri" ] && [ "${st_uri,,}" = "${vk_uri,,}" ] && pass "[$phase] database status protector = VaultKey's current version" \
    || fail "[$phase] database status protector" "'$st_uri' vs '$vk_uri'"
  [ -n "$vk_th" ] && [ "${st_th,,}" = "${vk_th,,}" ] && pass "[$phase] database status thumbprint = VaultKey's" \
    || fail "[$phase] database thumbprint" "'$st_th' vs '$vk_th'"
  [ "${srv_uri,,}" = "${vk_uri,,}" ] && pass "[$phase] server status protector = VaultKey's current version" \
    || fail "[$phase] server protector" "'$srv_uri' vs '$vk_uri'"
  local extras="" v
  for v in "$@"; do extras+="$(jp "vaultkey/$v" '{.status.currentKeyUri}') "; done
  # status keyHistory: every protector the operator recorded
  jp sqldatabase/orders '{.status.keyHistory[*].keyUri}' | tr ' ' '\n' | tr A-Z a-z | grep . >>"$PROTS_SEEN"
  echo "  [$phase] protectors seen over the run:"; sort -u "$PROTS_SEEN" | sed 's/^/    /'
  local out
  out=$(db_azure | python3 -c '
import json,sys
d=json.load(sys.stdin); p=d["properties"]
want_prot=sys.argv[1].lower(); extras=[e.lower() for e in sys.argv[2].split()]
seen=set(l.strip() for l in open(sys.argv[3]) if l.strip())
keys=set(k.lower() for k in (p.get("keys") or {}))
prot=(p.get("encryptionProtector") or "").lower()
ids=list(((d.get("identity") or {}).get("userAssignedIdentities") or {}).keys())
print("keymap", len(keys), " ".join(sorted(keys)), file=sys.stderr)
print("protector", "ok" if prot==want_prot else "BAD "+prot)
print("prot_in_map", "ok" if prot in keys else "BAD")
miss=[e for e in extras if e not in keys]
print("extras_in_map", "ok" if not miss else "BAD missing "+" ".join(miss))
gone=sorted(s for s in seen if s not in keys)
print("old_protectors_kept", "ok" if not gone else "BAD removed "+" ".join(gone))
print("one_identity", "ok" if len(ids)==1 and ids[0].lower().endswith("/userassignedidentities/umi-db1") else "BAD %r" % ids)
print("autorot", "ok" if p.get("encryptionProtectorAutoRotation") in (False, None) else "BAD")
' "$vk_uri" "$extras" "$PROTS_SEEN")
  echo "$out" | grep -q . || { fail "[$phase] could not read the database from Azure"; return; }
  local name res
  while read -r name res; do
    [ "$res" = ok ] && pass "[$phase] Azure: $name" || fail "[$phase] Azure: $name" "$res"
  done <<<"$out"
}

# check_resync_quiet PHASE — a forced resync of everything makes zero ARM writes
check_resync_quiet() {
  local phase=$1 o seq0 w
  sleep 3 # passes that follow the last status writes settle
  seq0=$(req_seq)
  for o in $(k get sqlserver,sqldatabase,vaultkey,keyvault,managedidentity -o name); do
    k annotate --overwrite "$o" e2e/resync="$(date +%s%N)" >/dev/null
  done
  re_observed() { [ "$(arm_reads "$seq0" /servers/sql-east/databases)" -ge 1 ] && [ "$(arm_reads "$seq0" /encryptionProtector)" -ge 1 ]; }
  wait_for "[$phase] forced resync re-observed the server and the database" 60 re_observed
  sleep 5 # any write that would follow the reads happens here
  w=$(arm_writes "$seq0")
  [ "$w" = 0 ] && pass "[$phase] zero ARM writes over a forced resync of the converged estate" || fail "[$phase] ARM writes over resync" "$w"
}

# --- phase 1: server SMK -> CMK, database created with protector + 2 extra keys
mkdir -p "$E2E_DIR/demo"
for f in "$E2E_ROOT"/docs/examples/demo/*.yaml; do
  sed "s/:8443\//:$EMU_PORT\//" "$f" >"$E2E_DIR/demo/$(basename "$f")"
done
cat >"$E2E_DIR/demo/50-extra.yaml" <<YAML
apiVersion: sqltde.io/v1alpha1
kind: VaultKey
metadata: {name: tde-extra1}
spec:
  vaults: [{name: kv-tde-east}]
  keyName: tde-extra1
  source: {type: generate, kty: RSA, size: 2048}
---
apiVersion: sqltde.io/v1alpha1
kind: VaultKey
metadata: {name: tde-extra2}
spec:
  vaults: [{name: kv-tde-east}]
  keyName: tde-extra2
  source: {type: generate, kty: RSA, size: 2048}
---
apiVersion: sqltde.io/v1alpha1
kind: VaultKey
metadata: {name: tde-extra3}
spec:
  vaults: [{name: kv-tde-east}]
  keyName: tde-extra3
  source: {type: generate, kty: RSA, size: 2048}
YAML
# the database asks for the two extra keys from the start
sed -i 's/^      name: tde-demo$/      name: tde-demo\n  keys:\n    - vaultKey: tde-extra1\n    - vaultKey: tde-extra2/' \
  "$E2E_DIR/demo/40-sqldatabase.yaml"
grep -q 'vaultKey: tde-extra2' "$E2E_DIR/demo/40-sqldatabase.yaml" || { fail "could not add keys to the database manifest"; e2e_finish; }
CHAOS_SEQ=$(req_seq)
k apply -f "$E2E_DIR/demo" >/dev/null
echo "phase 1: estate applied (request log at seq $CHAOS_SEQ)"
chaos create 240 all_ready vaultkey/tde-extra3
wait_for "[create] every resource Ready after the kills" 240 all_ready vaultkey/tde-extra3
check_converged create tde-extra1 tde-extra2
check_resync_quiet create

# --- phase 2: rotate the protector key and add a third extra key, at once -----
v1=$(jp vaultkey/tde-demo '{.status.currentKeyUri}')
CHAOS_SEQ=$(req_seq)
k patch vaultkey/tde-demo --type=merge -p '{"spec":{"rotation":{"trigger":"chaos-r1"}}}' >/dev/null
k patch sqldatabase/orders --type=merge \
  -p '{"spec":{"keys":[{"vaultKey":"tde-extra1"},{"vaultKey":"tde-extra2"},{"vaultKey":"tde-extra3"}]}}' >/dev/null
echo "phase 2: rotation + third key requested (request log at seq $CHAOS_SEQ)"
rotated() {
  local now; now=$(jp vaultkey/tde-demo '{.status.currentKeyUri}')
  [ -n "$now" ] && [ "${now,,}" != "${v1,,}" ] &&
    [ "$(jp sqldatabase/orders '{.status.protectorKeyUri}' | tr A-Z a-z)" = "${now,,}" ] &&
    jp sqldatabase/orders '{.status.currentKeys[*].keyUri}' | tr ' A-Z' '\na-z' | grep -qx "$(jp vaultkey/tde-extra3 '{.status.currentKeyUri}' | tr A-Z a-z)" &&
    all_ready vaultkey/tde-extra3
}
chaos rotate 240 rotated
wait_for "[rotate] rotated to a new version with the third key, every resource Ready" 240 rotated
[ -n "$v1" ] && grep -qx "${v1,,}" "$PROTS_SEEN" && pass "[rotate] the first protector is among those tracked" || fail "[rotate] first protector not tracked" "$v1"
check_converged rotate tde-extra1 tde-extra2 tde-extra3
check_resync_quiet rotate

echo "operator killed -9 $KILLS times in all"
n=$(grep -c '"level":"error"' "$E2E_DIR/operator.log" 2>/dev/null); echo "operator error log lines: ${n:-0}"
grep -E 'Sanitizer|runtime error' "$E2E_DIR/operator.log" >/dev/null && fail "sanitizer report in operator log" || pass "no sanitizer report"
e2e_finish
