#!/usr/bin/env bash
# run.sh — builds the benchmarks without sanitizers (ASan replaces malloc, so
# memory figures would be meaningless) and runs them, printing their figures
# ("name value" lines) next to the targets of SPEC.md §7. Benchmarks measure;
# they do not pass or fail, so they are not part of ctest.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
bash scripts/setup.sh
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-bench -j"$(nproc)" --target bench_cache sqltde-operator sqltde-azure-emulator >/dev/null

echo "## informer cache, 10,000 SqlDatabase-sized objects, store only (target: <= 2048 bytes per object)"
build-bench/tests/bench_cache store 10000
echo
echo "## informer cache, 10,000 objects through a real apiserver (target: <= 2048 bytes per object)"
tests/integration/with-cluster.sh build-bench/tests/bench_cache apiserver "${BENCH_APISERVER_OBJECTS:-10000}"
echo
# The estate: a real apiserver, the emulator and the operator; sizes from
# BENCH_DBS / BENCH_SERVERS / BENCH_KEYS / BENCH_SUBS (knobs and layout in
# bench_estate.sh and estate-seed.py). About 1.5 hours at full size on 2
# cores; BENCH_ESTATE=0 skips it.
if [ "${BENCH_ESTATE:-1}" != 0 ]; then
  bash tests/bench/bench_estate.sh
fi
