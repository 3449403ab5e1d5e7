#!/usr/bin/env bash
# test.sh — runs every test of the project on a fresh Debian 12 machine:
# installs what is missing, builds with AddressSanitizer + UBSan, builds the
# libFuzzer targets with clang, and runs ctest (unit, integration against a
# real local kube-apiserver + etcd, the Azure emulator and its conformance
# tests with Microsoft's SDKs, end-to-end, and short fuzz runs).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

bash scripts/setup.sh
# Build (or reuse the cached) kube-apiserver up front so the first
# integration test does not spend its timeout on a 4-minute Go build.
bash tests/cluster/build-apiserver.sh >/dev/null

jobs=$(nproc 2>/dev/null || echo 2)

# libFuzzer needs clang; its targets run briefly from ctest (label "fuzz").
CC=clang cmake -S . -B build-fuzz -DSQLTDE_FUZZ=ON -DSQLTDE_TESTS=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-fuzz -j"$jobs" --target fuzzers

cmake -S . -B build-test -DSQLTDE_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug \
  -DSQLTDE_FUZZ_BUILD_DIR="$root/build-fuzz" >/dev/null
cmake --build build-test -j"$jobs"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
cd build-test
# Integration tests each start their own control plane; two at a time on 2 cores.
ctest --output-on-failure --timeout 900 -j2 "$@"
