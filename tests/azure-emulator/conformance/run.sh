#!/usr/bin/env bash
# run.sh EMULATOR_BINARY — the conformance run: installs the pinned SDKs
# (npm ci from package-lock.json), starts the emulator in a temp dir with the
# sample seed, runs `node --test` with the *.localhost DNS preload and the
# emulator's CA, then stops the emulator.
set -euo pipefail
emu=${1:?usage: run.sh path/to/sqltde-azure-emulator}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
seed="$here/../seeds/small.yaml"
command -v node >/dev/null && command -v npm >/dev/null || { echo "conformance: node and npm are required" >&2; exit 1; }

# node_modules is not committed; reinstall when the lock file changed.
stamp="$here/node_modules/.sqltde-lock-stamp"
if [ ! -f "$stamp" ] || ! cmp -s "$here/package-lock.json" "$stamp"; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >&2)
  cp "$here/package-lock.json" "$stamp"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/sqltde-emu-conf.XXXXXX")
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

"$emu" --state-dir "$work/emu" --seed "$seed" --port 0 >"$work/emulator.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do
  [ -f "$work/emu/ready" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/emulator.log" >&2; echo "conformance: emulator exited" >&2; exit 1; }
  sleep 0.1
done
[ -f "$work/emu/ready" ] || { cat "$work/emulator.log" >&2; echo "conformance: emulator not ready" >&2; exit 1; }

export EMU_DIR="$work/emu" EMU_PORT
EMU_PORT=$(cat "$work/emu/port")
export NODE_EXTRA_CA_CERTS="$work/emu/ca.pem"
# the SDKs must not find real Azure settings in the environment
unset AZURE_CLIENT_ID AZURE_TENANT_ID AZURE_CLIENT_SECRET AZURE_FEDERATED_TOKEN_FILE AZURE_AUTHORITY_HOST \
      AZURE_POD_IDENTITY_AUTHORITY_HOST IDENTITY_ENDPOINT MSI_ENDPOINT || true

cd "$here"
status=0
node --require ./localhost-dns.js --test --test-concurrency=1 test/ || status=$?

# Stop the emulator and check its own exit: a sanitizer build reports leaks
# and memory errors there.
kill "$pid" 2>/dev/null || true
emu_status=0
wait "$pid" || emu_status=$?
pid=""
if [ "$emu_status" -ne 0 ]; then
  echo "conformance: the emulator exited with status $emu_status" >&2
  status=1
fi
if [ "$status" -ne 0 ]; then
  echo "--- emulator log (last 60 lines) ---" >&2
  tail -60 "$work/emulator.log" >&2
fi
exit "$status"
