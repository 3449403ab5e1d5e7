#!/usr/bin/env bash
# bench_estate.sh — the estate targets of SPEC.md §7, measured against a real
# kube-apiserver and the Azure emulator with the operator built without
# sanitizers (tests/bench/run.sh builds build-bench):
#   1. RSS of the operator once it has reconciled BENCH_DBS SqlDatabase +
#      BENCH_SERVERS SqlServer + BENCH_KEYS VaultKey (target <= 64 MiB);
#   2. a resync period with nothing changed: ARM writes (target 0) and ARM
#      reads (target O(servers + distinct keys), not O(databases)), from the
#      emulator's request log;
#   3. a protector change applied to the databases of one subscription
#      (BENCH_DBS / BENCH_SUBS, 1,000 by default): time to converge against
#      what ARM's write budget allows (bucket 200, refill 10/s), and the
#      writes it took.
# It prints "name value" lines (targets in "# ..." comments) and does not
# pass or fail. Layout of the estate and its knobs: tests/bench/estate-seed.py.
# Other knobs: BENCH_RESYNC (--azure-resync-period and --key-check-interval,
# the measuring window of 2.; default 120s), BENCH_WORKERS
# (--max-concurrent-reconciles, default 2 as the operator's), BENCH_LRO_MS
# (emulator LRO duration once set up, default 2000 as the emulator's),
# BENCH_TIMEOUT (per wait, s, default 7200), KEEP=1 keeps the temp dir.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export SQLTDE_OPERATOR=${SQLTDE_OPERATOR:-$root/build-bench/sqltde-operator}
# shellcheck source=../e2e/lib.sh
. "$root/tests/e2e/lib.sh"
set -e

SEED="python3 $root/tests/bench/estate-seed.py"
DBS=${BENCH_DBS:-10000}
SERVERS=${BENCH_SERVERS:-1000}
KEYS=${BENCH_KEYS:-1000}
SUBS=${BENCH_SUBS:-10}
RESYNC=${BENCH_RESYNC:-120s}
WORKERS=${BENCH_WORKERS:-2}
LRO_MS=${BENCH_LRO_MS:-2000}
TIMEOUT=${BENCH_TIMEOUT:-7200}
export BENCH_DBS=$DBS BENCH_SERVERS=$SERVERS BENCH_KEYS=$KEYS BENCH_SUBS=$SUBS
t_all=$SECONDS

die() { E2E_FAILED=1; echo "bench_estate: $*" >&2; exit 1; }
log() { echo "  [$((SECONDS - t_all)) s] $*" >&2; }
fig() { echo "$1 $2${3:+   # $3}"; }
secs() { case $1 in *ms) echo $(( ${1%ms} / 1000 ));; *m) echo $(( ${1%m} * 60 ));; *s) echo "${1%s}";; *) echo "$1";; esac; }
now() { date +%s.%N; }
since() { python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$1" "$(now)"; }
last_seq() { $SEED last-seq --port "$EMU_PORT" --ca "$EMU_CA" --since "${1:-0}"; }
# requests PREFIX SINCE [UNTIL] — counts of logged ARM / Key Vault calls
requests() { $SEED requests --port "$EMU_PORT" --ca "$EMU_CA" --prefix "$1" --since "$2" ${3:+--until "$3"}; }
# rss LABEL — VmRSS and VmHWM of the operator, in KiB
rss() {
  local r h
  r=$(awk '/^VmRSS/ {print $2}' "/proc/$OP_PID/status")
  h=$(awk '/^VmHWM/ {print $2}' "/proc/$OP_PID/status")
  fig "${1}_operator_vmrss_kib" "$r" "target <= 65536 (64 MiB)"
  fig "${1}_operator_vmhwm_kib" "$h" "target <= 65536 (64 MiB)"
}
cpu_s() { awk '{printf "%.1f", ($14 + $15) / 100}' "/proc/$OP_PID/stat"; }
# not_ready KIND — objects of KIND whose Ready condition is not True
not_ready() {
  k get "$1" -n estate -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' |
    grep -vc '^True$' || true
}

echo "## estate: $DBS SqlDatabase, $SERVERS SqlServer, $KEYS VaultKey over $SUBS subscriptions"
echo "## (operator: --max-concurrent-reconciles $WORKERS, --azure-resync-period $RESYNC; emulator LROs ${LRO_MS} ms)"

# ---- Azure: base seed, then vaults/keys/servers and databases -------------------
$SEED seed "$E2E_DIR/seed.json"
e2e_cluster_up
log "control plane up"
e2e_emulator_up "$E2E_DIR/seed.json"
emu PATCH settings '{"throttle": {"enabled": false}, "lroDelayMs": 0, "lroRetryAfterSeconds": 0}' >/dev/null
$SEED estate "$E2E_DIR/estate.json"
t=$SECONDS
curl -sS --fail-with-body --cacert "$EMU_CA" -X POST -H 'Content-Type: application/json' \
  --data-binary @"$E2E_DIR/estate.json" "https://control.localhost:$EMU_PORT/_emulator/seed" >/dev/null ||
  die "seeding vaults, keys and servers failed"
log "emulator seeded with $KEYS keys and $SERVERS servers in $((SECONDS - t)) s"
token() {
  emu POST token "{\"objectId\":\"0b0b0b0b-0000-4000-8000-000000000001\",\"resource\":\"$1\"}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
t=$SECONDS
$SEED create-dbs --port "$EMU_PORT" --ca "$EMU_CA" --arm-token "$(token https://management.localhost)" \
  --kv-token "$(token https://vault.localhost)" || die "creating the databases failed"
log "$DBS databases created in Azure in $((SECONDS - t)) s"
# from here on Azure behaves as by default: throttled, LROs that take time
emu PATCH settings "{\"throttle\": {\"enabled\": true}, \"lroDelayMs\": $LRO_MS, \"lroRetryAfterSeconds\": 1}" >/dev/null
emu GET settings | python3 -c 'import json,sys; s=json.load(sys.stdin); print("  emulator settings:", json.dumps(s["throttle"]), "lroDelayMs", s["lroDelayMs"])' >&2

# ---- Kubernetes: the operator, then the custom resources ---------------------------
# The operator starts first: started on top of the estate it is not ready
# within e2e_operator_up's minute (see the restart below, which measures it).
seq_start=$(last_seq)
e2e_operator_up --azure-resync-period "$RESYNC" --key-check-interval "$RESYNC" --permission-delay 1s \
  --max-concurrent-reconciles "$WORKERS"
log "operator up (pid $OP_PID)"
k create namespace estate >/dev/null
$SEED crs --port "$EMU_PORT" "$E2E_DIR/crs"
t0=$(now)
k create -f "$E2E_DIR/crs/00-base.json" -f "$E2E_DIR/crs/10-vaultkeys.json" -f "$E2E_DIR/crs/20-sqlservers.json" >/dev/null
# databases: two kubectl at a time (2 cores)
ls "$E2E_DIR"/crs/30-sqldatabases-*.json | xargs -P 2 -I{} sh -c 'kubectl create -f "$1" >/dev/null 2>&1 || echo "create failed: $1" >&2' _ {}
n=$(k get sqldatabases -n estate -o name | wc -l)
[ "$n" -eq "$DBS" ] || die "only $n of $DBS SqlDatabases were created"
fig create_objects_s "$(since "$t0")" "kubectl create of every custom resource"
log "waiting for all $DBS databases to be Ready"
$SEED watch --what all --timeout "$TIMEOUT" --progress >/dev/null || die "the estate did not converge"
fig adopt_all_ready_s "$(since "$t0")" "kubectl create start -> every SqlDatabase Ready"
for kind in sqlservers vaultkeys managedidentities keyvaults; do
  fig "not_ready_$kind" "$(not_ready $kind)" "expected 0"
done
requests adopt_ "$seq_start"
fig adopt_operator_cpu_s "$(cpu_s)"
sleep 10
rss converged

# ---- 2. steady state: one resync period, nothing changed ----------------------------
period=$(secs "$RESYNC")
# the first passes after convergence re-observe what they just wrote: let
# one period go by before counting
log "settling for one resync period (${period} s)"
sleep "$period"
seq0=$(last_seq)
cpu0=$(cpu_s)
log "counting ARM calls over one resync period (${period} s)"
sleep "$period"
seq1=$(last_seq "$seq0")
echo "## steady state, one resync period (${period} s) with nothing changed"
requests steady_ "$seq0" "$seq1" | while read -r name value; do
  case $name in
    steady_arm_writes) fig "$name" "$value" "target 0" ;;
    steady_arm_reads) fig "$name" "$value" "target O(servers + distinct keys) = O($SERVERS + $KEYS), not O($DBS)" ;;
    *) fig "$name" "$value" ;;
  esac
done
fig steady_operator_cpu_s "$(python3 -c "print('%.1f' % ($(cpu_s) - $cpu0))")" "CPU seconds over the period"
rss steady

# ---- 3. a protector change on the databases of one subscription -----------------------
nchange=$((DBS / SUBS))
$SEED change --port "$EMU_PORT" "$E2E_DIR/change.json"
echo "## protector change applied to $nchange databases (one subscription)"
seqc=$(last_seq "$seq1")
t0=$(now)
$SEED watch --what change --timeout "$TIMEOUT" >"$E2E_DIR/change.out" 2>"$E2E_DIR/change.err" &
watch_pid=$!
sleep 2 # the watch has listed the old state
k apply --server-side --force-conflicts --validate=false --field-manager bench-estate -f "$E2E_DIR/change.json" >/dev/null
fig change_apply_s "$(since "$t0")" "kubectl apply of the $nchange changed specs"
wait "$watch_pid" || die "the protector change did not converge: $(cat "$E2E_DIR/change.err")"
tc=$(since "$t0")
seqc1=$(last_seq "$seqc")
requests change_ "$seqc" "$seqc1" >"$E2E_DIR/change.req"
writes=$(awk '$1 == "change_arm_writes" {print $2}' "$E2E_DIR/change.req")
fig change_converge_s "$tc" "apply start -> all $nchange Ready with the new protector"
cat "$E2E_DIR/change.req"
python3 - "$tc" "$writes" "$nchange" <<'EOF'
import sys
tc, w, n = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def budget(x):  # ARM's write bucket: 200 at once, then 10 per second
    return max(0.0, (x - 200) / 10.0)
for name, x in (("one_write_per_db", n), ("writes_made", w)):
    b = budget(x)
    print("change_budget_%s_s %.1f   # (%d - 200) / 10" % (name, b, x))
    print("change_ratio_%s %s   # target <= 1.10" % (name, "%.2f" % (tc / b) if b > 0 else "n/a (within the burst)"))
print("change_writes_per_db %.2f" % (w / n if n else 0))
EOF

# ---- after the change: one more resync period (the old keys are kept) --------------------
sleep "$period"
seq2=$(last_seq "$seqc1")
sleep "$period"
seq3=$(last_seq "$seq2")
echo "## steady state after the change, one resync period (${period} s)"
requests after_change_ "$seq2" "$seq3"
rss final
fig operator_cpu_total_s "$(cpu_s)"

# ---- 4. a restart on top of the estate: how long until ready, and the memory then ----
# Same command line and credentials as e2e_operator_up gave it, but waiting
# as long as it takes (e2e_operator_up gives up after a minute).
mapfile -t args < <(tr '\0' '\n' <"/proc/$OP_PID/cmdline" | tail -n +2)
e2e_operator_stop || true
echo "## restart of the operator on top of the converged estate"
t0=$(now)
seqr=$(last_seq "$seq3")
AZURE_TENANT_ID=$E2E_TENANT AZURE_CLIENT_ID=$E2E_CLIENT_ID AZURE_CLIENT_SECRET=$E2E_CLIENT_SECRET \
  AZURE_ADDITIONALLY_ALLOWED_TENANTS=$E2E_ALLOWED_TENANTS \
  "$OPERATOR" "${args[@]}" >>"$E2E_DIR/operator.log" 2>&1 &
OP_PID=$!
E2E_PIDS+=("$OP_PID")
until curl -sf "http://127.0.0.1:$OP_HEALTH/readyz" >/dev/null 2>&1; do
  kill -0 "$OP_PID" 2>/dev/null || die "the restarted operator exited"
  python3 -c "import sys; sys.exit(float(sys.argv[1]) >= $TIMEOUT)" "$(since "$t0")" || die "not ready $TIMEOUT s after the restart"
  sleep 1
done
fig restart_ready_s "$(since "$t0")" "start -> /readyz answers 200"
rss restart_ready
sleep "$period"
requests restart_period_ "$seqr"
rss restart_after_period
fig bench_total_s $((SECONDS - t_all))
grep -c '"level":"error"' "$E2E_DIR/operator.log" | sed 's/^/operator_log_errors /' || true
