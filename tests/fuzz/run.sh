#!/usr/bin/env bash
# run.sh FUZZER SECONDS [SEED_CORPUS_DIR] — runs a libFuzzer target for a
# bounded time on a scratch copy of its seed corpus (the tree is never
# written). Exits non-zero when the fuzzer finds a crash, leak or UB.
set -euo pipefail
fuzzer=$(readlink -f "$1") secs=$2 seeds=${3:-}
[ -x "$fuzzer" ] || { echo "fuzz: $fuzzer not built (run scripts/test.sh)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/sqltde-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus"
[ -n "$seeds" ] && [ -d "$seeds" ] && cp -r "$seeds"/. "$work/corpus/" 2>/dev/null || true
cd "$work"
"$fuzzer" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
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
echo "fuzz: $(basename "$fuzzer") ran ${secs}s without findings"
