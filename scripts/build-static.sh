#!/usr/bin/env bash
# The release artifact: one statically linked binary (glibc, not PIE) that
# runs on any Linux image of its architecture — Debian, Alpine (musl), distroless,
# scratch — since it loads no shared library at all. glibc ≥ 2.34 has the `files`
# and `dns` name services built in, so `user = "app"` (/etc/passwd) and host names
# (/etc/hosts, DNS) resolve without libnss_*.so; tests/static_binary.rs proves it
# as PID 1 in an empty root filesystem.
#
#   scripts/build-static.sh            builds it, prints its path on stdout
#   scripts/build-static.sh --symbols  the same binary with its symbols (scripts/startup-symbols.sh)
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
flags="-C target-feature=+crt-static"
# Not position-independent: nothing to relocate at start (a static-pie rewrote
# 19.9k pointers, 0.35 MB of private pages, before main) and its constant
# tables stay shared with the page cache. The price is a fixed address for our
# own code and data (stack, heap and mmap stay randomised), as tini-static and
# dumb-init have; docs/benchmarks.md has the figures of both.
flags+=" -C relocation-model=static"
# The functions start-up runs, side by side at the start of .text, so that a
# running supervisor keeps ~1 MB of its code resident instead of ~4 MB
# (scripts/startup-symbols.sh says why and regenerates the list). lld is
# rustc's linker on x86_64-unknown-linux-gnu since Rust 1.90 (only there).
target=target/static
# Built with its symbols and stripped afterwards: cargo hashes the profile into
# every mangled name, so a build stripped by cargo would not have the names
# that startup-symbols.sh read from the one with symbols, and the list would
# order nothing.
export CARGO_PROFILE_RELEASE_STRIP=false
# Cargo does not watch files named in link arguments: a copy named by its hash
# changes RUSTFLAGS, hence relinks, whenever the list changes.
list="$target/startup-symbols-$(sha256sum scripts/startup-symbols.txt | cut -c1-12).txt"
mkdir -p "$target"
[ -f "$list" ] || cp scripts/startup-symbols.txt "$list"
minor=$(rustc -V | sed -n 's/^rustc 1\.\([0-9]*\).*/\1/p')
if [ "$triple" = x86_64-unknown-linux-gnu ] && [ "${minor:-0}" -ge 90 ]; then
  flags+=" -C link-arg=-Wl,--symbol-ordering-file=$PWD/$list"
  flags+=" -C link-arg=-Wl,--no-warn-symbol-ordering"
else
  # Elsewhere (aarch64, older rustc) the linker is GNU ld, which has no such option.
  echo "build-static.sh: linking with GNU ld here: start-up code left unordered (~2 MB more resident)" >&2
fi
RUSTFLAGS="${RUSTFLAGS:-} $flags" \
  cargo build --release --locked --quiet --target "$triple" --target-dir "$target" >&2

built="$target/$triple/release/supervisor"
if [ "${1:-}" = --symbols ]; then
  echo "$PWD/$built"
  exit 0
fi
binary="$target/supervisor"
if [ ! -f "$binary" ] || [ "$built" -nt "$binary" ]; then
  strip --strip-all -o "$binary.tmp" "$built"
  mv "$binary.tmp" "$binary"
fi
# A binary that still names an interpreter or a library would fail in scratch.
if readelf -lW "$binary" | grep -q 'Requesting program interpreter' \
  || readelf -dW "$binary" | grep -q '(NEEDED)'; then
  echo "build-static.sh: $binary is not static" >&2
  exit 1
fi
echo "$PWD/$binary"
