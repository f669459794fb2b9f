#!/usr/bin/env bash
# run.sh BUILD_DIR SECONDS TARGET...: runs each libFuzzer target for SECONDS
# from its seed corpus (tests/fuzz/corpus/<target>), one after the other.
# New interesting inputs go to BUILD_DIR/fuzz/corpus/<target> (the seeds in
# the repository stay as they are); a crash input is saved as
# BUILD_DIR/fuzz/<target>-crash-* and fails the run. Prints each target's
# executions.
set -euo pipefail
build=$1; seconds=$2; shift 2
here=$(cd "$(dirname "$0")" && pwd)
# A smaller ASan quarantine than the default 256 MB: the statement builder's
# many short strings otherwise grow RSS towards the limit.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=64"
status=0
for target in "$@"; do
  work=$build/fuzz/corpus/$target
  mkdir -p "$work"
  log=$build/fuzz/$target.log
  echo "fuzz: $target for ${seconds}s (log: $log)"
  if ! "$build/tests/fuzz/$target" -max_total_time="$seconds" \
      -print_final_stats=1 -max_len=4096 -timeout=10 -rss_limit_mb=3072 \
      -artifact_prefix="$build/fuzz/$target-" \
      "$work" "$here/corpus/$target" >"$log" 2>&1; then
    echo "fuzz: $target FAILED; the crash input and its report:" >&2
    grep -E "^(==|SUMMARY|invariant|artifact_prefix|Test unit written)" "$log" | head -20 >&2
    status=1
    continue
  fi
  grep -E "^stat::number_of_executed_units|^Done" "$log" | tr '\n' ' '
  echo
done
exit $status
