#!/usr/bin/env bash
# Regenerates scripts/startup-symbols.txt: the functions `supervisor run`
# executes to start three processes, restart one, answer /health and stop.
# scripts/build-static.sh hands the list to the linker (lld's
# --symbol-ordering-file), which puts those functions side by side at the start
# of .text. Why it pays: the kernel maps a binary's code 64 KB around each page
# a process touches (fault-around), so ~1 MB of start-up code scattered over
# 9 MB of text kept ~4.4 MB resident in every supervisor (docs/benchmarks.md).
#
# Run it after changes that move the start-up path (new crates, a new phase of
# `run`), then scripts/build-static.sh, then it again until the list stops
# growing; a stale list is harmless: names it does not find are skipped, and
# functions it does not name are laid out as before.
#
#   scripts/startup-symbols.sh       (installs valgrind when missing; ~6 min)
set -euo pipefail
cd "$(dirname "$0")/.."

command -v valgrind >/dev/null 2>&1 || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
}
# The same build with its symbols kept (callgrind names functions by them).
binary=$(scripts/build-static.sh --symbols)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/supervisor.toml" <<'EOF'
[health]
listen = "127.0.0.1:0"

[process.web]
command = "exec sleep 1000"

[process.worker]
command = ["sleep", "1000"]

[process.flaky]
command = "sleep 0.5; exit 1"
max_restarts = 1
critical = false
EOF

# One run of the scenario under a tool: three processes up, one restarted
# until it fails for good, /health, /readyz and /metrics asked, then SIGTERM.
scenario() {
  local log="$work/stderr.$1"
  shift
  (cd "$work" && exec env -i PATH=/usr/bin:/bin "$@" "$binary" run >/dev/null 2>"$log") &
  local runner=$! deadline=$((SECONDS + 120))
  until grep -q 'failed for good' "$log" 2>/dev/null && grep -q 'health server listening' "$log"; do
    if [ $SECONDS -ge $deadline ]; then
      echo "startup-symbols.sh: the run never got going:" >&2
      cat "$log" >&2
      exit 1
    fi
    sleep 0.5
  done
  local port path
  port=$(sed -n 's/.*health server listening address=[0-9.]*:\([0-9]*\).*/\1/p' "$log" | head -1)
  for path in /health /readyz /metrics; do
    exec 3<>"/dev/tcp/127.0.0.1/$port"
    printf 'GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' "$path" >&3
    cat <&3 >/dev/null
    exec 3<&-
  done
  # The supervisor itself: under perf a child of perf, under valgrind valgrind.
  local pid
  for pid in $(pgrep -f -- "$binary run"); do
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q '^perf ' || kill -TERM "$pid" 2>/dev/null || true
  done
  wait "$runner" || true
}

# 1. Every function executed, as callgrind counts them.
scenario callgrind valgrind --tool=callgrind --demangle=no --callgrind-out-file="$work/callgrind.out"
# 2. What valgrind's emulated CPU does not show (glibc picks string functions
# by CPU; valgrind has no AVX-512): the page faults of a native run, each at
# the address that touched the code, with the binary read afresh from disk.
: >"$work/faults"
if command -v perf >/dev/null 2>&1; then
  python3 -c 'import os,sys; fd=os.open(sys.argv[1],os.O_RDONLY); os.posix_fadvise(fd,0,0,os.POSIX_FADV_DONTNEED)' "$binary"
  scenario perf perf record -q -e page-faults -c 1 -d -o "$work/perf.data"
  perf script -i "$work/perf.data" -F addr 2>/dev/null >"$work/faults" || true
fi

python3 - "$work/callgrind.out" "$binary" "$work/faults" <<'EOF' >"$work/startup-symbols.txt"
import bisect, re, subprocess, sys
profile, binary, faults = sys.argv[1], sys.argv[2], sys.argv[3]
executed = set()
for line in open(profile):
    m = re.match(r"^c?fn=\(\d+\)(?: (.+))?$", line.strip())
    if m and m.group(1):
        executed.add(m.group(1))
defined, starts = set(), []
for line in subprocess.run(["nm", "-n", "-S", "--defined-only", binary], capture_output=True, text=True, check=True).stdout.splitlines():
    parts = line.split()
    if len(parts) == 4 and parts[2] in "tTwW":
        defined.add(parts[3])
        starts.append((int(parts[0], 16), int(parts[1], 16), parts[3]))
chosen = executed & defined
# Names of the last list that still exist stay: a page fault shows only the first function
# touched in its 64 KB, so each round (regenerate, rebuild, regenerate) adds what the last hid.
chosen |= {name for name in open("scripts/startup-symbols.txt").read().split() if name in defined}
addresses = [start for start, _, _ in starts]
for line in open(faults):
    try:
        address = int(line.strip(), 16)
    except ValueError:
        continue
    i = bisect.bisect_right(addresses, address) - 1
    if i >= 0 and starts[i][0] <= address < starts[i][0] + starts[i][1]:
        chosen.add(starts[i][2])
# glibc picks its string functions by CPU at start (IFUNC): whichever variant
# ran under valgrind, keep its siblings beside it for the CPUs that pick another.
variant = re.compile(r"^(__[a-z0-9]+?)_(sse2|ssse3|sse4_1|sse4_2|sse42|avx|avx2|evex|avx512)")
families = {m.group(1) + "_" for m in map(variant.match, chosen) if m}
chosen |= {name for name in defined if any(name.startswith(f) for f in families) and variant.match(name)}
for name in sorted(chosen):
    print(name)
EOF
mv "$work/startup-symbols.txt" scripts/startup-symbols.txt
echo "startup-symbols.sh: $(wc -l <scripts/startup-symbols.txt) functions in scripts/startup-symbols.txt" >&2
