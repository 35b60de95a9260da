#!/usr/bin/env bash
# Runs the basic example: builds supervisor, installs python3 if missing, and
# supervises a backend, a frontend and a crashing worker until Ctrl-C.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
if ! command -v python3 >/dev/null 2>&1; then
  echo "run.sh: installing python3 for the example's stand-in programs" >&2
  apt-get update -qq && apt-get install -y -qq python3 >/dev/null
fi
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
cd "$root/examples/basic"
cat >&2 <<'TXT'
run.sh: starting; try   curl http://127.0.0.1:4000/   in another terminal.
run.sh: stop with Ctrl-C (a graceful stop, in reverse dependency order).
TXT
exec "$root/target/release/supervisor" run "$@"
