#!/usr/bin/env bash
# One command: installs the peers when missing, builds supervisor (release, static and dynamic),
# and runs every benchmark side by side. `bench/run.sh --quick` is a smoke.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
for tool in tini dumb-init s6-svscan supervisord wrk cc haproxy; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tini dumb-init s6 supervisor wrk gcc haproxy >/dev/null
fi
command -v honcho >/dev/null 2>&1 || pip install -q honcho
python3 -c 'import matplotlib' 2>/dev/null || pip install -q matplotlib
command -v horust >/dev/null 2>&1 || cargo install horust --locked --quiet
# The release artifact (static) is "supervisor"; the ordinary dynamic build is
# measured beside it, so the report shows what static linking moved.
cargo build --release --quiet
static=$(scripts/build-static.sh)
exec python3 bench/harness.py --binary "$static" --variant dynamic=target/release/supervisor "$@"
