#!/usr/bin/env bash
# The slower checks CI runs after the README's test command (scripts/test.sh):
# dependency policy, a smoke of every fuzz target, a smoke of the benchmark
# harness. Run them yourself with ./scripts/ci-extra.sh (the first run
# compiles cargo-deny and cargo-fuzz, and the fuzz targets: ~15 min).
set -euo pipefail
cd "$(dirname "$0")/.."

# Dependencies: licenses, duplicates/wildcards, sources (advisories need GitHub: see docs/security.md).
command -v cargo-deny >/dev/null 2>&1 || cargo install cargo-deny --locked --quiet
cargo deny --log-level error check licenses bans sources

# A short smoke of every fuzz target, so they keep building and running
# (scripts/fuzz.sh SECONDS for a real session).
./scripts/fuzz.sh "${FUZZ_SECONDS:-5}"

# A smoke of the benchmark harness, so it does not rot (bench/run.sh measures
# for real). It fails when a peer row of ours is missing (a binary that never
# comes up), so it can fail.
cargo build --quiet
python3 bench/harness.py --quick --only launch,respawn --binary target/debug/supervisor \
  --variant again=target/debug/supervisor --require "supervisor,supervisor (again)"
