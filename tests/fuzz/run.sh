#!/usr/bin/env bash
# run.sh FUZZER SECONDS [SEED_CORPUS_DIR] — runs a libFuzzer target for a
# bounded time on a scratch copy of its seed corpus (the tree is never
# written). Exits non-zero when the fuzzer finds a crash, leak or UB.
#
# FUZZ_SEED=N fixes libFuzzer's random seed: ctest passes one so that a CI run
# replays the same mutations (a regression run; a red CI is then a change's
# fault, not the dice). Without it each run explores anew — use that for
# discovery campaigns, e.g. FUZZ_KEEP=DIR tests/fuzz/run.sh build-fuzz/tests/X 600 seeds,
# and add what it finds (and the crash inputs it prints) to tests/fuzz/corpus/.
set -euo pipefail
fuzzer=$(readlink -f "$1") secs=$2 seeds=${3:-}
[ -x "$fuzzer" ] || { echo "fuzz: $fuzzer not built (run scripts/test.sh)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/sqltde-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus"
[ -n "$seeds" ] && [ -d "$seeds" ] && cp -r "$seeds"/. "$work/corpus/" 2>/dev/null || true
cd "$work"
seed_opt=()
[ -n "${FUZZ_SEED:-}" ] && seed_opt=(-seed="$FUZZ_SEED")
"$fuzzer" "${seed_opt[@]}" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
  -artifact_prefix="$work/" "$work/corpus" 2>"$work/log" || {
  tail -50 "$work/log" >&2
  echo "fuzz: $(basename "$fuzzer") failed; artifacts:" >&2
  ls "$work" >&2
  # CI keeps no files: print each finding so it can be replayed from the log
  # (base64 -d > x; $fuzzer x) and added to the seed corpus.
  for f in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
    [ -f "$f" ] || continue
    echo "fuzz: $(basename "$f") as base64:" >&2
    head -c 65536 "$f" | base64 -w 120 >&2
  done
  exit 1
}
grep -E '^stat::number_of_executed_runs' "$work/log" || true
if [ -n "${FUZZ_KEEP:-}" ]; then
  mkdir -p "$FUZZ_KEEP" && cp -r "$work/corpus"/. "$FUZZ_KEEP"/
fi
echo "fuzz: $(basename "$fuzzer") ran ${secs}s without findings"
