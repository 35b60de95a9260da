#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60) and prints, per
# target, the executions done and whether a crash was found. Crashes land in
# fuzz/artifacts/<target>/; turn each into a regression test.
# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain use them.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
cd fuzz
cargo fuzz build -O
status=0
for target in $(cargo fuzz list); do
  log="$(mktemp)"
  if cargo fuzz run -O "$target" -- -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    result=ok
  else
    result=CRASH
    status=1
  fi
  execs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo "?")
  echo "fuzz: $target: $result, $execs executions in ${seconds}s"
  [ "$result" = ok ] || tail -40 "$log"
  rm -f "$log"
done
exit $status
