#!/usr/bin/env bash
# The release artifact: one statically linked binary (glibc, static-pie) that
# runs on any Linux image of its architecture — Debian, Alpine (musl), distroless,
# scratch — since it loads no shared library at all. glibc ≥ 2.34 has the `files`
# and `dns` name services built in, so `user = "app"` (/etc/passwd) and host names
# (/etc/hosts, DNS) resolve without libnss_*.so; tests/static_binary.rs proves it
# as PID 1 in an empty root filesystem.
#
#   scripts/build-static.sh            builds it, prints its path on stdout
#
# Why not musl: these machines have no musl target to test it with, and a binary
# we ship is one we test. Why `--target`: with an explicit target, RUSTFLAGS apply
# to the binary only, not to build scripts and proc macros (which cannot be static).
# Its own target folder, so it never invalidates the ordinary (dynamic) build.
set -euo pipefail
cd "$(dirname "$0")/.."

triple=$(rustc -vV | sed -n 's/^host: //p')
case "$triple" in
  *-linux-gnu) ;;
  *) echo "build-static.sh: needs a *-linux-gnu host, not $triple" >&2; exit 1 ;;
esac

# Called from a test, we inherit the variables cargo sets for it; ring's build
# script reruns when CARGO_MANIFEST_DIR changes, so each caller would rebuild
# everything (4 minutes) for the other. Both see the same environment this way.
for name in $(compgen -e); do
  case "$name" in
    CARGO_MANIFEST_*|CARGO_PKG_*|CARGO_BIN_EXE_*|CARGO_CRATE_NAME|CARGO_TARGET_TMPDIR|OUT_DIR) unset "$name" ;;
  esac
done
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
  cargo build --release --locked --quiet --target "$triple" --target-dir target/static >&2

binary="target/static/$triple/release/supervisor"
# A binary that still names an interpreter or a library would fail in scratch.
if readelf -lW "$binary" | grep -q 'Requesting program interpreter' \
  || readelf -dW "$binary" | grep -q '(NEEDED)'; then
  echo "build-static.sh: $binary is not static" >&2
  exit 1
fi
echo "$PWD/$binary"
