# db_lib.sh — shared set-up of the SqlServer/SqlDatabase e2e tests (sourced
# after lib.sh): cluster + emulator (short LROs) + operator, and the demo
# estate from docs/examples/demo with the emulator's port.
db_estate_up() {
  e2e_cluster_up
  e2e_emulator_up
  emu PATCH settings '{"lroDelayMs": 200, "lroRetryAfterSeconds": 0}' >/dev/null
  e2e_operator_up --permission-delay 3s --azure-resync-period 20s --key-check-interval 10s
  mkdir -p "$E2E_DIR/demo"
  local f
  for f in "$E2E_ROOT"/docs/examples/demo/*.yaml; do
    sed "s/:8443\//:$EMU_PORT\//" "$f" >"$E2E_DIR/demo/$(basename "$f")"
  done
  k apply -f "$E2E_DIR/demo" >/dev/null
}

# jp OBJ JSONPATH — a field of an object
jp() { k get "$1" -o "jsonpath=$2" 2>/dev/null; }

is_ready() { [ "$(cond "$1" Ready)" = True ]; }

# arm_writes SINCE_SEQ [PATHPART] — number of ARM (management) writes logged
# after SEQ (whose path contains PATHPART); lists them on stderr
arm_writes() {
  emu GET "requests?since=$1&limit=100000" | python3 -c '
import json,sys
v=json.load(sys.stdin)["value"]
part=sys.argv[1] if len(sys.argv)>1 else ""
w=[r for r in v if r["host"].startswith("management.") and r["method"] in ("PUT","PATCH","POST","DELETE") and part in r["path"]]
for r in w: print("  write:", r["seq"], r["method"], r["path"], r["status"], file=sys.stderr)
print(len(w))' ${2:+"$2"}
}
# arm_reads SINCE_SEQ PATHPART — ARM GETs after SEQ whose path contains PATHPART
arm_reads() {
  emu GET "requests?since=$1&limit=100000" | python3 -c '
import json,sys
v=json.load(sys.stdin)["value"]
print(sum(1 for r in v if r["host"].startswith("management.") and r["method"]=="GET" and sys.argv[1] in r["path"]))' "$2"
}
# req_seq — the sequence number of the newest logged request
req_seq() { emu GET 'requests?limit=100000' | python3 -c 'import json,sys; print(json.load(sys.stdin)["last"])'; }
