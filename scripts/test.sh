#!/usr/bin/env bash
# The test suite, from a fresh Debian machine with only the Rust toolchain.
# Installs what the tests need when it is missing, then runs formatting,
# lints, unit tests and the integration tests (the real binary as PID 1).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
need unshare util-linux   # PID-1 tests run in a fresh PID namespace
need setsid util-linux
need python3 python3      # stand-in programs of the examples
need seq coreutils
need setpriv util-linux   # database servers refuse root: they run as nobody
# Migration tests run real, throwaway servers (started by the tests themselves).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
[ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
need mariadb mariadb-client
need psql postgresql-client   # the Prisma stand-in of the examples talks through psql/mysql
need node nodejs              # examples: stand-in apps, drizzle-orm's real migrator
need npm npm
need iptables iptables         # lease tests: a silent network partition of the lock connection
[ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)   # transaction- and session-mode pooler tests
need openssl openssl           # TLS tests make their certificates
[ -x /usr/sbin/haproxy ] || missing+=(haproxy)       # drain tests: a real load balancer polling /readyz
# The static release binary as PID 1 of an empty image: busybox-static is its `sh`.
{ [ -x /bin/busybox ] && ! readelf -lW /bin/busybox 2>/dev/null | grep -q INTERP; } || missing+=(busybox-static)
need readelf binutils          # … and proves the binary asks for no loader and no library
# … and that an nsswitch.conf naming a loadable module (systemd's) cannot crash it.
[ -n "$(ls /usr/lib/*/libnss_systemd.so.2 /lib/*/libnss_systemd.so.2 2>/dev/null)" ] || missing+=(libnss-systemd)
if [ ${#missing[@]} -gt 0 ]; then
  echo "test.sh: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The real migration tools of the examples and of the races in tests/tools.rs
# (drizzle-orm, knex, node-pg-migrate, pg, postgres.js) from npm, as locked.
for example in examples/*/ tests/fixtures/*/; do
  if [ -f "$example/package-lock.json" ] && [ ! -d "$example/node_modules" ]; then
    (cd "$example" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done

cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings
# Most integration tests wait on servers and children, not on the CPU: four at
# a time keep two cores busy (5 runs in a row passed with stress-ng --cpu 2 on top).
# The release artifact, built before the tests so that none of them waits on
# (or competes with) a 5-minute LTO build; tests/static_binary.rs runs it.
scripts/build-static.sh >/dev/null
cargo test --all-targets -- --test-threads=4
