#!/usr/bin/env python3
"""Benchmarks: supervisor side by side with tini, dumb-init, s6, supervisord,
honcho and Horust, in one run on one machine. Medians over repeated runs,
ratios to the best peer. Writes bench/out/*.csv, docs/benchmarks.md and
docs/bench/*.png. These are measurements, never assertions.

    python3 bench/harness.py [--quick] [--only METRIC,...]
"""
import argparse
import csv
import glob
import os
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench", "out")
DOCS = os.path.join(ROOT, "docs")
SUPERVISOR = os.path.join(ROOT, "target", "release", "supervisor")
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- /proc helpers

def children(pid):
    out = []
    for path in glob.glob(f"/proc/{pid}/task/*/children"):
        try:
            out += [int(x) for x in open(path).read().split()]
        except OSError:
            pass
    return out


def descendants(pid):
    seen, stack = [], children(pid)
    while stack:
        p = stack.pop()
        seen.append(p)
        stack += children(p)
    return seen


def comm(pid):
    try:
        return open(f"/proc/{pid}/comm").read().strip()
    except OSError:
        return ""


def status_field(pid, field):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def smaps_rollup(pid, field):
    try:
        for line in open(f"/proc/{pid}/smaps_rollup"):
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_seconds(pid):
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError):
        return None


def wait_until(pred, timeout, step=0.0005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return False


def wait_exit(proc, timeout):
    """Waits for proc to exit, woken by its pidfd at the exit itself.
    (Popen.wait(timeout) polls with sleeps of 0.5, 1, 2, 4 ms…, which alone
    would turn a 1.2 ms stop into 1.5 or 3.5 ms.)"""
    fd = os.pidfd_open(proc.pid)
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
    finally:
        os.close(fd)
    if ready:
        proc.wait()
    return bool(ready)


def kill_tree(proc):
    for pid in descendants(proc.pid) + [proc.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


# ---------------------------------------------------------------- peers

def launch(argv, workdir, stdout):
    """Starts a tool the way every peer is started: in its own session (so the
    whole tree can be killed), stderr discarded, no SUPERVISOR_* settings."""
    return subprocess.Popen(argv, stdout=stdout, stderr=subprocess.DEVNULL, cwd=workdir, start_new_session=True,
                            env=clean_env())


class Peer:
    """Runs a set of named shell commands under one tool."""
    name = "?"
    restarts = False
    logs = True

    def available(self):
        return True

    def start(self, commands, workdir, restart=False, stdout=subprocess.DEVNULL):
        raise NotImplementedError


class Supervisor(Peer):
    name = "supervisor"
    restarts = True

    binary = None  # SUPERVISOR unless set (a baseline build beside the current one)

    def available(self):
        return os.path.exists(self.binary or SUPERVISOR)

    def start(self, commands, workdir, restart=False, stdout=subprocess.DEVNULL):
        lines = ['[health]\nlisten = "off"\n']
        for name, cmd in commands.items():
            lines.append(f"[process.{name}]\ncommand = {toml_str(cmd)}\n")
            if restart:
                lines.append('backoff = { initial = "0s", max = "0s" }\nmax_restarts = 1000000\nrestart_window = "1s"\n')
            else:
                lines.append('restart = "never"\n')
        path = os.path.join(workdir, "supervisor.toml")
        open(path, "w").write("".join(lines))
        return launch([self.binary or SUPERVISOR, "run", "--config", path], workdir, stdout)


class Variant(Supervisor):
    """Another build (`--variant NAME=PATH`, `--baseline PATH`): an earlier
    commit, or the same sources linked another way, measured in the same run
    beside the peers to show what a change moved."""

    def __init__(self, label, binary):
        self.name = f"supervisor ({label})"
        self.binary = os.path.abspath(binary)


def supervisors():
    """(name, binary) of every supervisor build measured in this run."""
    return [(p.name, p.binary or SUPERVISOR) for p in PEERS if isinstance(p, Supervisor)]


class S6(Peer):
    name = "s6"
    restarts = True

    def available(self):
        return shutil.which("s6-svscan") is not None

    def start(self, commands, workdir, restart=False, stdout=subprocess.DEVNULL):
        scan = os.path.join(workdir, "scan")
        os.makedirs(scan, exist_ok=True)
        for name, cmd in commands.items():
            d = os.path.join(scan, name)
            os.makedirs(d, exist_ok=True)
            run = os.path.join(d, "run")
            open(run, "w").write(f"#!/bin/sh\nexec sh -c {sh_quote(cmd)}\n")
            os.chmod(run, 0o755)
            if not restart:
                open(os.path.join(d, "finish"), "w").write("#!/bin/sh\ns6-svc -O .\n")
                os.chmod(os.path.join(d, "finish"), 0o755)
        return launch(["s6-svscan", scan], workdir, stdout)


class Supervisord(Peer):
    name = "supervisord"
    restarts = True

    def available(self):
        return shutil.which("supervisord") is not None

    def start(self, commands, workdir, restart=False, stdout=subprocess.DEVNULL):
        lines = [f"[supervisord]\nnodaemon=true\nlogfile={workdir}/sv.log\npidfile={workdir}/sv.pid\n"
                 f"[unix_http_server]\nfile={workdir}/sv.sock\n"]
        for name, cmd in commands.items():
            lines.append(f"[program:{name}]\ncommand=sh -c {sh_quote(cmd)}\nstartsecs=0\n"
                         f"autorestart={'true' if restart else 'false'}\nstartretries=1000000\n"
                         "stdout_logfile=/dev/stdout\nstdout_logfile_maxbytes=0\n")
        path = os.path.join(workdir, "sv.conf")
        open(path, "w").write("".join(lines))
        return launch(["supervisord", "-c", path], workdir, stdout)


class Honcho(Peer):
    name = "honcho"

    def available(self):
        return shutil.which("honcho") is not None

    def start(self, commands, workdir, restart=False, stdout=subprocess.DEVNULL):
        path = os.path.join(workdir, "Procfile")
        open(path, "w").write("".join(f"{n}: {c}\n" for n, c in commands.items()))
        return launch(["honcho", "-f", path, "start"], workdir, stdout)


class Horust(Peer):
    name = "horust"
    restarts = True

    def available(self):
        return shutil.which("horust") is not None

    def start(self, commands, workdir, restart=False, stdout=subprocess.DEVNULL):
        services = os.path.join(workdir, "services")
        os.makedirs(services, exist_ok=True)
        for name, cmd in commands.items():
            text = f'command = "sh -c {cmd_for_horust(cmd)}"\n'
            if restart:
                text += '[restart]\nstrategy = "always"\nbackoff = "0s"\nattempts = 1000000\n'
            open(os.path.join(services, f"{name}.toml"), "w").write(text)
        uds = os.path.join(workdir, "uds")
        os.makedirs(uds, exist_ok=True)
        return launch(["horust", "--services-path", services, "--uds-folder-path", uds], workdir, stdout)


PEERS = [Supervisor(), S6(), Honcho(), Horust(), Supervisord()]


class ShellFloor(Peer):
    """No supervisor at all: `sh -c "a & b & c & wait"`. Not a peer but the
    floor of the launch measurement (fork/exec of sh and the children, and
    this harness's polling of /proc), so the report shows what is left to gain."""
    name = "floor: sh &"

    def start(self, commands, workdir, restart=False, stdout=subprocess.DEVNULL):
        script = " ".join(f"sh -c {sh_quote(cmd)} &" for cmd in commands.values()) + " wait"
        return launch(["sh", "-c", script], workdir, stdout)


def toml_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def sh_quote(s):
    return "'" + s.replace("'", "'\\''") + "'"


def cmd_for_horust(cmd):
    return sh_quote(cmd).replace('"', '\\"')


def clean_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERVISOR_")}
    env["NO_COLOR"] = "1"
    return env


# ---------------------------------------------------------------- metrics

def metric_launch(reps):
    """1. launch → 3 children running (ms)."""
    rows = []
    for peer in PEERS + [ShellFloor()]:
        for _ in range(reps):
            with tempfile.TemporaryDirectory() as wd:
                t0 = time.monotonic()
                proc = peer.start({f"c{i}": "exec sleep 61" for i in range(3)}, wd)
                ok = wait_until(lambda: sum(1 for p in descendants(proc.pid) if comm(p) == "sleep") >= 3, 10)
                t1 = time.monotonic()
                kill_tree(proc)
                if ok:
                    rows.append((peer.name, (t1 - t0) * 1e3))
    return rows


def metric_rss_and_stop(reps):
    """2. peak RSS with 3 idle children (kB), with its private parts; 3. SIGTERM → exit (ms).
    The memory tables keep the `sh &` floor: what any process that waits on three children costs."""
    rss, stop, anon, pss = [], [], [], []
    for peer in PEERS + [ShellFloor()]:
        for _ in range(reps):
            with tempfile.TemporaryDirectory() as wd:
                proc = peer.start({f"c{i}": "exec sleep 61" for i in range(3)}, wd)
                if not wait_until(lambda: sum(1 for p in descendants(proc.pid) if comm(p) == "sleep") >= 3, 10):
                    kill_tree(proc)
                    continue
                time.sleep(1.0)
                rss.append((peer.name, status_field(proc.pid, "VmHWM")))
                anon.append((peer.name, status_field(proc.pid, "RssAnon")))
                pss.append((peer.name, smaps_rollup(proc.pid, "Pss")))
                t0 = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                # A shell's TERM is not a stop of its children: no floor row for 3.
                if wait_exit(proc, 15) and not isinstance(peer, ShellFloor):
                    stop.append((peer.name, (time.monotonic() - t0) * 1e3))
                kill_tree(proc)
    return rss, stop, anon, pss


def metric_respawn(reps):
    """4. child death → respawn, no backoff (ms between an exit and the next start)."""
    rows = []
    for peer in PEERS:
        if not peer.restarts:
            continue
        with tempfile.TemporaryDirectory() as wd:
            log = os.path.join(wd, "starts.log")
            cmd = f"echo S $(date +%s%N) >> {log}; echo E $(date +%s%N) >> {log}; exit 1"
            proc = peer.start({"crash": cmd}, wd, restart=True)
            wait_until(lambda: os.path.exists(log) and sum(1 for _ in open(log)) >= 2 * (reps + 2), 8, 0.01)
            kill_tree(proc)
            if not os.path.exists(log):
                continue
            end = None
            gaps = []
            for line in open(log):
                kind, at = line.split()
                if kind == "E":
                    end = int(at)
                elif end is not None:
                    gaps.append((int(at) - end) / 1e6)
                    end = None
            rows += [(peer.name, g) for g in gaps[:max(reps, 5)]]
    return rows


def metric_orphans(reps, storm):
    """5. orphan storm: 10,000 orphans reaped (ms), PID 1's peak RSS (kB), and its own CPU time
    (ms) and wake-ups meanwhile, as PID 1: the init's share of a time that is mostly the kernel's."""
    inits = {name: [binary, "exec", "--"] for name, binary in supervisors()}
    inits.update({"tini": ["tini", "--"], "dumb-init": ["dumb-init", "--"]})
    times, rss, cpu, wakeups = [], [], [], []
    for name, argv in inits.items():
        if shutil.which(argv[0]) is None and not os.path.exists(argv[0]):
            continue
        for _ in range(reps):
            out = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc"] + argv + [storm, "10000"],
                                 capture_output=True, text=True, timeout=120, env=clean_env())
            fields = dict(kv.split("=") for kv in out.stdout.split())
            if fields.get("left") == "0":
                times.append((name, float(fields["reaped_ms"])))
                rss.append((name, int(fields["pid1_hwm_kb"])))
                cpu.append((name, float(fields["pid1_cpu_ms"])))
                wakeups.append((name, int(fields["pid1_wakeups"])))
    return times, rss, cpu, wakeups


def metric_logs(lines, size, writer):
    """6. log relay: two children, `lines` lines of `size` bytes each, to a pipe."""
    rows = []
    for peer in PEERS:
        if not peer.logs:
            continue
        with tempfile.TemporaryDirectory() as wd:
            cmds = {"a": f"exec {writer} a {lines} {size}", "b": f"exec {writer} b {lines} {size}"}
            t0 = time.monotonic()
            proc = peer.start(cmds, wd, stdout=subprocess.PIPE)
            counts = {"a": 0, "b": 0}
            torn = 0
            last_cpu = 0.0
            deadline = time.monotonic() + 300
            expected = 2 * lines
            pending = b""
            last_data = time.monotonic()
            fd = proc.stdout.fileno()
            # Ends when every line arrived, or nothing came for 3 s (lines torn or
            # lost: the count stays short), or at the deadline.
            while counts["a"] + counts["b"] < expected and time.monotonic() < deadline:
                ready, _, _ = select.select([fd], [], [], 0.5)
                if not ready:
                    if time.monotonic() - last_data > 3:
                        break
                    continue
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                last_data = time.monotonic()
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for line in complete:
                    # Any prefix ("a.0 | ", "a | ", timestamps): find our "<id>-<seq>-xxx" part.
                    for ident in (b"a", b"b"):
                        at = line.find(ident + b"-")
                        if at >= 0:
                            parts = line[at:].split(b"-", 2)
                            if len(parts) == 3 and parts[1].isdigit() and len(line) - at == size - 1:
                                counts[ident.decode()] += 1
                            else:
                                torn += 1
                            break
                sample = cpu_seconds(proc.pid)
                if sample is not None:
                    last_cpu = sample
            last_cpu = cpu_seconds(proc.pid) or last_cpu
            wall = time.monotonic() - t0
            kill_tree(proc)
            lost = expected - counts["a"] - counts["b"]
            rows.append((peer.name, wall, last_cpu, torn, max(lost, 0)))
    return rows


def metric_idle(seconds):
    """9. idle cost: CPU seconds and wake-ups (context switches) per second, 3 idle children."""
    rows = []
    with tempfile.TemporaryDirectory() as wd:
        procs = []
        for peer in PEERS:
            d = os.path.join(wd, peer.name)
            os.makedirs(d)
            procs.append((peer, peer.start({f"c{i}": "exec sleep 600" for i in range(3)}, d)))
        time.sleep(2)

        def sample(pid):
            sw = (status_field(pid, "voluntary_ctxt_switches") or 0) + (status_field(pid, "nonvoluntary_ctxt_switches") or 0)
            for tid in os.listdir(f"/proc/{pid}/task"):
                if int(tid) != pid:
                    sw += sum(int(l.split()[1]) for l in open(f"/proc/{pid}/task/{tid}/status")
                              if l.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")))
            return cpu_seconds(pid), sw
        before = {peer.name: sample(p.pid) for peer, p in procs}
        time.sleep(seconds)
        for peer, p in procs:
            cpu, sw = sample(p.pid)
            rows.append((peer.name, (cpu - before[peer.name][0]) / seconds, (sw - before[peer.name][1]) / seconds))
            kill_tree(p)
    return rows


def metric_health(seconds):
    """8. /health under wrk, alone and with 300 junk connections."""
    if shutil.which("wrk") is None:
        return []
    rows = []
    with tempfile.TemporaryDirectory() as wd:
        port = free_port()
        open(os.path.join(wd, "s.toml"), "w").write(
            f'[health]\nlisten = "127.0.0.1:{port}"\n[process.a]\ncommand = ["sleep", "600"]\n')
        proc = subprocess.Popen([SUPERVISOR, "run", "--config", "s.toml"], cwd=wd, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True, env=clean_env())
        wait_until(lambda: port_open(port), 10, 0.01)
        for label in ("alone", "300 junk connections"):
            junk = []
            if label != "alone":
                for i in range(300):
                    s = socket.create_connection(("127.0.0.1", port))
                    if i % 3 == 1:
                        s.sendall(b"GET /health HTTP/1.1\r\nHost: x")
                    elif i % 3 == 2:
                        s.sendall(b"\x16\x03\x01garbage\r\n\r\n")
                    junk.append(s)
            out = subprocess.run(["wrk", "-t2", "-c64", f"-d{seconds}s", "--latency", f"http://127.0.0.1:{port}/health"],
                                 capture_output=True, text=True).stdout
            rps = float(next(l.split()[1] for l in out.splitlines() if l.startswith("Requests/sec")))
            p99 = next(l.split()[1] for l in out.splitlines() if l.strip().startswith("99%"))
            rows.append((label, rps, to_ms(p99)))
            for s in junk:
                s.close()
        kill_tree(proc)
    return rows


def metric_migrations(reps, quick):
    """7. N replicas racing over one throwaway Postgres; ratio to one replica alone."""
    pg = Postgres.start()
    if pg is None:
        return []
    rows = []
    try:
        for sleep_s in (0, 2):
            for n in ((1, 8) if quick else (1, 8, 16, 32)):
                for rep in range(reps):
                    ok, wall = migration_race(pg, f"m_{sleep_s}_{n}_{rep}", n,
                                              f"CREATE TABLE t (id int);\nSELECT pg_sleep({sleep_s});\n",
                                              'dir = "migrations"')
                    if ok:
                        rows.append((f"{n} replicas, {sleep_s}s migration", n, sleep_s, wall))
    finally:
        pg.stop()
    return rows


def migration_race(pg, db, n, sql_body, config_body, extra_files=()):
    """n `supervisor migrate` replicas at once; (all exited 0, wall seconds)."""
    pg.sql(f"CREATE DATABASE {db}")
    with tempfile.TemporaryDirectory() as wd:
        os.makedirs(os.path.join(wd, "migrations"))
        open(os.path.join(wd, "migrations", "1_init.sql"), "w").write(sql_body)
        for name, text in extra_files:
            open(os.path.join(wd, name), "w").write(text)
        open(os.path.join(wd, "supervisor.toml"), "w").write(
            '[health]\nlisten = "off"\n[migrate]\n' + config_body + '\n[process.a]\ncommand = "true"\n')
        env = clean_env()
        env["DATABASE_URL"] = pg.url(db)
        t0 = time.monotonic()
        procs = [subprocess.Popen([SUPERVISOR, "migrate"], cwd=wd, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) for _ in range(n)]
        codes = [p.wait() if wait_exit(p, 300) else None for p in procs]
        return all(c == 0 for c in codes), time.monotonic() - t0


def metric_migrations_few_connections(reps):
    """7b. 32 replicas against max_connections = 10: a 2 s SQL migration, and a
    tool that needs a connection of its own (psql) under the lock."""
    pg = Postgres.start(max_connections=10)
    if pg is None:
        return []
    rows = []
    psql = shutil.which("psql") or f"{pg.bin}/psql"
    tool = f'command = \'{psql} -X -q -d "$DATABASE_URL" -c "SELECT pg_sleep(2)"\'\nfingerprint = ["migrations/**"]'
    try:
        for rep in range(reps):
            for case, config in (("2 s SQL file", 'dir = "migrations"'), ("2 s psql command", tool)):
                ok, wall = migration_race(pg, f"f_{rep}_{len(rows)}", 32, "CREATE TABLE t (id int);\nSELECT pg_sleep(2);\n"
                                          if "SQL" in case else "SELECT 1;\n", config)
                rows.append((case, 32, ok, wall))
    finally:
        pg.stop()
    return rows


def metric_lease():
    """7c. What the lease costs: heartbeat traffic while a command runs under the
    lock, connections held by waiters, and the take-over delay after a holder
    is SIGKILLed mid-command."""
    pg = Postgres.start()
    if pg is None:
        return []
    rows = []
    try:
        # Heartbeat traffic: what the holder writes to the server per second
        # while a silent command runs (/proc/PID/io: write syscalls, bytes).
        pg.sql("CREATE DATABASE lease_beat")
        with tempfile.TemporaryDirectory() as wd:
            open(os.path.join(wd, "supervisor.toml"), "w").write(
                '[health]\nlisten = "off"\n[migrate]\ncommand = "sleep 10"\n[process.a]\ncommand = "true"\n')
            env = clean_env()
            env["DATABASE_URL"] = pg.url("lease_beat")

            proc = subprocess.Popen([SUPERVISOR, "migrate"], cwd=wd, env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            time.sleep(2)
            port = pg.query("SELECT client_port FROM pg_stat_activity WHERE datname = 'lease_beat' "
                            "AND application_name LIKE 'supervisor@%'")

            def sent():
                # The lock connection's own counters, from the kernel (ss -ti).
                out = subprocess.run(["ss", "-tinH", f"sport = :{port}"], capture_output=True, text=True).stdout
                fields = dict(f.split(":", 1) for f in out.split() if ":" in f and f.split(":", 1)[1].isdigit())
                return int(fields.get("segs_out", 0)), int(fields.get("bytes_sent", 0))
            (s0, b0), t0 = sent(), time.monotonic()
            time.sleep(5)
            (s1, b1), t1 = sent(), time.monotonic()
            wait_exit(proc, 30)
            rows.append(("heartbeat: TCP segments sent per second while a command runs", (s1 - s0) / (t1 - t0)))
            rows.append(("heartbeat: bytes sent per second", (b1 - b0) / (t1 - t0)))
        # Connections held by 31 waiters while one replica runs a 6 s command.
        pg.sql("CREATE DATABASE lease_waiters")
        with tempfile.TemporaryDirectory() as wd:
            os.makedirs(os.path.join(wd, "m"))
            open(os.path.join(wd, "m", "x"), "w").write("x")
            open(os.path.join(wd, "supervisor.toml"), "w").write(
                '[health]\nlisten = "off"\n[migrate]\ncommand = "sleep 6"\nfingerprint = ["m/**"]\n[process.a]\ncommand = "true"\n')
            env = clean_env()
            env["DATABASE_URL"] = pg.url("lease_waiters")
            procs = [subprocess.Popen([SUPERVISOR, "migrate"], cwd=wd, env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL) for _ in range(32)]
            time.sleep(2)
            samples = []
            for _ in range(60):
                samples.append(int(pg.query("SELECT count(*) FROM pg_stat_activity WHERE datname = 'lease_waiters' "
                                            "AND application_name LIKE 'supervisor@%'")) - 1)
                time.sleep(0.05)
            for p in procs:
                wait_exit(p, 60)
            rows.append(("connections held by 31 waiters: mean", statistics.mean(samples)))
            rows.append(("connections held by 31 waiters: max", max(samples)))
        # Take-over: the holder is SIGKILLed mid-command; time until the waiter's command starts.
        pg.sql("CREATE DATABASE lease_takeover")
        with tempfile.TemporaryDirectory() as wd:
            marks = os.path.join(wd, "marks")
            open(os.path.join(wd, "supervisor.toml"), "w").write(
                '[health]\nlisten = "off"\n[migrate]\ncommand = \'date +%s.%N >> ' + marks
                + '; [ $(wc -l < ' + marks + ') -gt 1 ] || sleep 60\'\n[process.a]\ncommand = "true"\n')
            env = clean_env()
            env["DATABASE_URL"] = pg.url("lease_takeover")
            holder = subprocess.Popen([SUPERVISOR, "migrate"], cwd=wd, env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
            wait_until(lambda: os.path.exists(marks), 30)
            waiter = subprocess.Popen([SUPERVISOR, "migrate"], cwd=wd, env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
            time.sleep(1)
            killed = time.time()
            holder.kill()
            wait_exit(waiter, 60)
            wait_exit(holder, 10)
            started = float(open(marks).read().split()[-1])
            rows.append(("take-over after a SIGKILLed holder (s)", started - killed))
    finally:
        pg.stop()
    return rows


def metric_drain(rolls):
    """11. A rolling deploy behind HAProxy: two replicas of a Node server that
    closes its listener on SIGTERM, ~200 requests/s through the LB (new
    connection each, no retries), each replica stopped and replaced in turn.
    Failed requests per replacement, by init and by how the LB learns of the
    stop: polling health (`inter 200ms fall 2`) or the endpoint removed 1 s
    after SIGTERM (the Kubernetes shape)."""
    import threading
    haproxy = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
    node = shutil.which("node")
    if haproxy is None or node is None:
        return []
    server_js = os.path.join(ROOT, "tests", "fixtures", "drain-server", "server.js")
    rows = []

    def admin(sock, line):
        with socket.socket(socket.AF_UNIX) as conn:
            conn.connect(sock)
            conn.sendall(line.encode() + b"\n")
            out = b""
            while chunk := conn.recv(65536):
                out += chunk
        return out.decode()

    def status(sock, name):
        lines = admin(sock, "show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        for line in lines[1:]:
            fields = line.split(",")
            if fields[:2] == ["app", name]:
                return fields[header.index("status")]
        return ""

    def start_replica(init, name, port, hport, drain, wd):
        env = clean_env()
        env.update(PORT=str(port), REPLICA=name)
        if init == "tini":
            proc = subprocess.Popen(["tini", "--", node, server_js], env=env, cwd=wd, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
        else:
            cfg = os.path.join(wd, f"{name}.toml")
            open(cfg, "w").write(f'[process.web]\ncommand = ["{node}", "{server_js}"]\n'
                                 f'ready = {{ http = "http://127.0.0.1:{port}/", interval = "100ms" }}\n')
            env.update(SUPERVISOR_HEALTH_LISTEN=f"127.0.0.1:{hport}", SUPERVISOR_DRAIN=drain)
            proc = subprocess.Popen([SUPERVISOR, "--config", cfg, "run"], env=env, cwd=wd,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        check = hport if init != "tini" else port
        wait_until(lambda: port_open(port) and port_open(check), 20, 0.02)
        return proc

    cases = [("tini", "health checks", "0s"), ("supervisor", "health checks", "0s"),
             ("supervisor drain=1s", "health checks", "1s"),
             ("tini", "endpoint lag 1 s", "0s"), ("supervisor", "endpoint lag 1 s", "0s"),
             ("supervisor drain=2s", "endpoint lag 1 s", "2s")]
    for label, shape, drain in cases:
        init = "tini" if label == "tini" else "supervisor"
        if init == "tini" and shutil.which("tini") is None:
            continue
        with tempfile.TemporaryDirectory() as wd:
            replicas = [(name, free_port(), free_port()) for name in ("a", "b")]
            sock = os.path.join(wd, "admin.sock")
            front = free_port()
            cfg = (f"global\n  stats socket {sock} mode 600 level admin\n"
                   "defaults\n  mode http\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\n"
                   "  retries 0\n  option http-server-close\n"
                   f"frontend web\n  bind 127.0.0.1:{front}\n  default_backend app\n"
                   "backend app\n  balance roundrobin\n"
                   # tini has no health endpoint: the LB checks the app itself, as it would.
                   + ("  option httpchk GET /\n" if init == "tini" else "  option httpchk GET /readyz\n")
                   + "  default-server inter 200ms fall 2 rise 2\n")
            for name, port, hport in replicas:
                checked = shape == "health checks"
                cfg += f"  server {name} 127.0.0.1:{port}" + (
                    f" check port {hport if init != 'tini' else port}" if checked else "") + "\n"
            open(os.path.join(wd, "haproxy.cfg"), "w").write(cfg)
            lb = subprocess.Popen([haproxy, "-db", "-f", os.path.join(wd, "haproxy.cfg")],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs = {}
            try:
                for name, port, hport in replicas:
                    procs[name] = start_replica(init, name, port, hport, drain, wd)
                serving = "UP" if shape == "health checks" else "no check"
                wait_until(lambda: os.path.exists(sock), 10, 0.02)
                for name, _, _ in replicas:
                    wait_until(lambda: status(sock, name) == serving, 10, 0.02)
                stop = threading.Event()
                counts = []

                def client():
                    sent = failed = 0
                    nxt = time.monotonic()
                    while not stop.is_set():
                        sent += 1
                        try:
                            with socket.create_connection(("127.0.0.1", front), timeout=5) as conn:
                                conn.sendall(b"GET / HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
                                answer = b""
                                while chunk := conn.recv(4096):
                                    answer += chunk
                            if not answer.startswith(b"HTTP/1.1 200"):
                                failed += 1
                        except OSError:
                            failed += 1
                        nxt += 0.02
                        time.sleep(max(0.0, nxt - time.monotonic()))
                    counts.append((sent, failed))
                clients = [threading.Thread(target=client) for _ in range(4)]
                for c in clients:
                    c.start()
                replaced = 0
                for _ in range(rolls):
                    for name, port, hport in replicas:
                        procs[name].send_signal(signal.SIGTERM)
                        if shape != "health checks":
                            time.sleep(1.0)  # the endpoint controller's lag
                            admin(sock, f"disable server app/{name}")
                        wait_exit(procs[name], 30)
                        procs[name] = start_replica(init, name, port, hport, drain, wd)
                        if shape != "health checks":
                            admin(sock, f"enable server app/{name}")
                        wait_until(lambda: status(sock, name) == serving, 10, 0.02)
                        replaced += 1
                stop.set()
                for c in clients:
                    c.join()
                sent = sum(c[0] for c in counts)
                failed = sum(c[1] for c in counts)
                rows.append((label, shape, replaced, sent, failed))
            finally:
                for proc in procs.values():
                    kill_tree(proc)
                lb.kill()
                lb.wait()
    return rows


def metric_size_and_build(full):
    """10. binary size (stripped) and cold build time."""
    rows = [(name, os.path.getsize(binary)) for name, binary in supervisors()]
    for tool in ("tini", "dumb-init", "s6-svscan", "horust", "supervisord", "honcho"):
        path = shutil.which(tool)
        if path:
            rows.append((tool, os.path.getsize(os.path.realpath(path))))
    build = None
    if full:
        with tempfile.TemporaryDirectory() as target:
            t0 = time.monotonic()
            subprocess.run(["cargo", "build", "--release", "--quiet", "--target-dir", target], cwd=ROOT, check=True)
            build = time.monotonic() - t0
    return rows, build


# ---------------------------------------------------------------- postgres

class Postgres:
    def __init__(self, wd, bin_dir, port):
        self.wd, self.bin, self.port = wd, bin_dir, port

    @staticmethod
    def start(max_connections=300):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not bins:
            return None
        bin_dir = os.path.dirname(bins[-1])
        wd = tempfile.mkdtemp()
        os.chmod(wd, 0o755)
        as_user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"] if os.geteuid() == 0 else []
        if os.geteuid() == 0:
            subprocess.run(["chown", "65534:65534", wd], check=True)
        data = os.path.join(wd, "data")
        subprocess.run(as_user + [f"{bin_dir}/initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port = free_port()
        opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {wd} -c fsync=off -c max_connections={max_connections}"
        if max_connections < 20:
            opts += " -c max_wal_senders=0"
        subprocess.run(as_user + [f"{bin_dir}/pg_ctl", "-D", data, "-l", f"{wd}/log", "-o", opts, "-w", "start"],
                       check=True, stdout=subprocess.DEVNULL)
        pg = Postgres(wd, bin_dir, port)
        pg.as_user = as_user
        return pg

    def url(self, db):
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"

    def sql(self, query):
        subprocess.run([f"{self.bin}/psql", "-X", "-q", "-d", self.url("postgres"), "-c", query], check=True,
                       stdout=subprocess.DEVNULL)

    def query(self, query, db="postgres"):
        return subprocess.run([f"{self.bin}/psql", "-X", "-q", "-t", "-A", "-d", self.url(db), "-c", query], check=True,
                              capture_output=True, text=True).stdout.strip()

    def stop(self):
        subprocess.run(self.as_user + [f"{self.bin}/pg_ctl", "-D", f"{self.wd}/data", "-m", "immediate", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.wd, ignore_errors=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def to_ms(text):
    for unit, factor in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)


# ---------------------------------------------------------------- report

def summarize(rows, lower_is_better=True):
    """peer → (median, min, max, n)."""
    by = {}
    for name, value in rows:
        if value is not None:
            by.setdefault(name, []).append(value)
    return {k: (statistics.median(v), min(v), max(v), len(v)) for k, v in by.items()}


def table(title, unit, stats, goal="", lower_is_better=True):
    peers = {k: v for k, v in stats.items() if not k.startswith("supervisor") and not k.startswith("floor")}
    best = (min if lower_is_better else max)((v[0] for v in peers.values()), default=None)
    lines = [f"### {title}\n", f"Goal: {goal}\n" if goal else "",
             f"| tool | median ({unit}) | min – max | runs | ratio to best peer |", "|---|---|---|---|---|"]
    for name, (med, lo, hi, n) in sorted(stats.items(), key=lambda kv: kv[1][0], reverse=not lower_is_better):
        ratio = f"{med / best:.2f}×" if best else "–"
        mark = "**" if name == "supervisor" else ""
        lines.append(f"| {mark}{name}{mark} | {med:.2f} | {lo:.2f} – {hi:.2f} | {n} | {ratio} |")
    return "\n".join(lines) + "\n"


def chart(name, title, unit, stats):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    os.makedirs(os.path.join(DOCS, "bench"), exist_ok=True)
    names = list(stats)
    values = [stats[n][0] for n in names]
    colors = ["#d62728" if n == "supervisor" else "#1f77b4" for n in names]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.barh(names, values, color=colors)
    ax.set_xlabel(unit)
    ax.set_title(title)
    if max(values) / max(min(values), 1e-9) > 100:
        ax.set_xscale("log")
    fig.tight_layout()
    path = os.path.join(DOCS, "bench", f"{name}.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"bench/{name}.png"


def evict_binaries():
    """Drops every measured executable from the page cache once, so each is read
    back by readahead the way an image's file is. A file just written (by the
    linker, by `strip`) sits in the cache in large folios, and on this kernel a
    first touch then maps more of it: the same binary measured 5.1 MB of VmHWM
    fresh from `strip` and 3.3 MB once read back from disk."""
    paths = [binary for _, binary in supervisors()]
    paths += [shutil.which(tool) for tool in ("tini", "dumb-init", "s6-svscan", "s6-supervise", "horust", "sh", "sleep")]
    for path in filter(None, paths):
        try:
            fd = os.open(os.path.realpath(path), os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def write_csv(name, header, rows):
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, f"{name}.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and shorter runs (a smoke)")
    parser.add_argument("--binary", default=None, help="the supervisor binary to measure [default: target/release]")
    parser.add_argument("--require", default="",
                        help="comma-separated tools that must appear in every measured metric, else exit 1 "
                             "(a tool that never comes up is otherwise just left out of the table)")
    parser.add_argument("--only", default="", help="comma-separated metrics: launch,rss,respawn,orphans,logs,migrations,health,idle,drain,size")
    parser.add_argument("--baseline", default=None,
                        help="an earlier supervisor binary, measured beside the current one as \"supervisor (baseline)\"")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=PATH",
                        help="another supervisor binary, measured beside the current one as \"supervisor (NAME)\" (repeatable)")
    parser.add_argument("--no-cold-build", action="store_true", help="size: bytes on disk only, no cold build (~5 min)")
    args = parser.parse_args()
    variants = [v.split("=", 1) for v in args.variant] + ([["baseline", args.baseline]] if args.baseline else [])
    for position, (label, binary) in enumerate(variants, start=1):
        PEERS.insert(position, Variant(label, binary))
    global SUPERVISOR
    if args.binary:
        SUPERVISOR = os.path.abspath(args.binary)
    only = set(filter(None, args.only.split(",")))
    want = lambda m: not only or m in only
    reps = 2 if args.quick else 7
    build = os.path.join(OUT, "bin")
    os.makedirs(build, exist_ok=True)
    storm, writer = os.path.join(build, "storm"), os.path.join(build, "writer")
    subprocess.run(["cc", "-O2", "-o", storm, os.path.join(ROOT, "bench", "storm.c")], check=True)
    subprocess.run(["cc", "-O2", "-o", writer, os.path.join(ROOT, "bench", "writer.c")], check=True)
    missing = [p.name for p in PEERS if not p.available()]
    sections = [f"# Benchmarks\n\nGenerated by `bench/run.sh` on {time.strftime('%Y-%m-%d')} "
                f"({os.cpu_count()} cores, {'quick' if args.quick else 'full'} run). Medians over repeated runs; "
                f"ratios are to the best peer (lower is better unless said). Raw numbers: `bench/out/*.csv`.\n"
                + (f"\nNot installed, so not measured: {', '.join(missing)}.\n" if missing else "")]
    PEERS[:] = [p for p in PEERS if p.available()]
    evict_binaries()

    required = set(filter(None, args.require.split(",")))
    absent = []

    def add(key, title, unit, rows, goal="", lower=True):
        absent.extend(f"{tool} in {key}" for tool in required if not any(name == tool for name, *_ in rows))
        stats = summarize(rows)
        picture = None
        if not args.quick:  # a smoke writes nothing: the committed report stays as measured
            write_csv(key, ["tool", unit], rows)
            picture = chart(key, title, unit, stats)
        sections.append(table(title, unit, stats, goal, lower) + (f"\n![{title}]({picture})\n" if picture else ""))
        print(f"bench: {key}: " + ", ".join(f"{k} {v[0]:.2f}" for k, v in stats.items()), flush=True)

    if want("launch"):
        add("launch", "1. Launch → 3 children running", "ms", metric_launch(reps), "≤ 1.15× the floor")
    if want("rss"):
        rss, stop, anon, pss = metric_rss_and_stop(reps)
        add("rss", "2. Peak RSS (VmHWM) with 3 idle children", "kB", rss,
            "≤ 3 MB (3,072 kB), the binary's resident code included")
        add("rss_anon", "2b. Private anonymous memory (RssAnon) with 3 idle children", "kB", anon,
            "≤ Horust's (the memory no other process can share)")
        add("rss_pss", "2c. Proportional set size (PSS) with 3 idle children", "kB", pss, "below Horust's")
        add("stop", "3. SIGTERM → exit with 3 cooperative children", "ms", stop, "≤ 2 ms")
    if want("respawn"):
        add("respawn", "4. Child death → respawn, no backoff", "ms", metric_respawn(reps), "≤ 2 ms")
    if want("orphans"):
        times, rss, cpu, wakeups = metric_orphans(reps, storm)
        add("orphans", "5a. 10,000 orphans reaped (as PID 1)", "ms", times, "≤ dumb-init")
        add("orphans_rss", "5b. PID 1 peak RSS during the orphan storm", "kB", rss)
        add("orphans_cpu", "5c. PID 1's own CPU time during the orphan storm (user + system)", "ms", cpu)
        add("orphans_wakeups", "5d. PID 1's wake-ups during the orphan storm (voluntary context switches)", "count", wakeups)
    if want("logs"):
        for lines, size in ((100_000 if args.quick else 1_000_000, 100), (500 if args.quick else 2_000, 10_000)):
            rows = metric_logs(lines, size, writer)
            if not args.quick:
                write_csv(f"logs_{size}", ["tool", "wall_s", "cpu_s", "torn", "lost"], rows)
            honcho = next((r for r in rows if r[0] == "honcho"), None)
            text = [f"### 6. Log relay: 2 × {lines:,} lines of {size:,} bytes to a pipe\n",
                    "Goal: 0 torn, ≥ 5× honcho's throughput at ≤ 0.5× its CPU\n",
                    "| tool | wall (s) | lines/s | supervisor CPU (s) | torn | lost | throughput vs honcho | CPU vs honcho |",
                    "|---|---|---|---|---|---|---|---|"]
            for name, wall, cpu, torn, lost in rows:
                vs = f"{honcho[1] / wall:.2f}×" if honcho else "–"
                cpu_vs = f"{cpu / honcho[2]:.2f}×" if honcho and honcho[2] else "–"
                text.append(f"| {name} | {wall:.2f} | {2 * lines / wall:,.0f} | {cpu:.2f} | {torn} | {lost} | {vs} | {cpu_vs} |")
            sections.append("\n".join(text) + "\n")
            print(f"bench: logs {size}: {rows}", flush=True)
    if want("migrations"):
        rows = metric_migrations(2 if args.quick else 3, args.quick)
        if not args.quick:
            write_csv("migrations", ["case", "replicas", "migration_s", "wall_s"], rows)
        alone = {s: statistics.median([w for _, n, s2, w in rows if n == 1 and s2 == s]) for _, _, s, _ in rows if any(n == 1 and s2 == s for _, n, s2, _ in rows)}
        text = ["### 7. Migrations: replicas racing on one PostgreSQL\n",
                "Goal: 32 replicas with a 2 s migration ≤ 1.15× one replica alone\n",
                "| replicas | migration | median wall (s) | ratio to one alone |", "|---|---|---|---|"]
        cases = sorted({(n, s) for _, n, s, _ in rows})
        for n, s in cases:
            med = statistics.median([w for _, n2, s2, w in rows if n2 == n and s2 == s])
            text.append(f"| {n} | {s} s | {med:.2f} | {med / alone[s]:.2f}× |")
        sections.append("\n".join(text) + "\n")
        print(f"bench: migrations: {rows}", flush=True)
        few = metric_migrations_few_connections(1 if args.quick else 3)
        if not args.quick:
            write_csv("migrations_few_connections", ["case", "replicas", "all_ok", "wall_s"], few)
        text = ["### 7b. Migrations: 32 replicas against `max_connections = 10`\n",
                "Goal: every replica succeeds, also with a tool that needs a connection of its own\n",
                "| case | replicas | all exited 0 | median wall (s) |", "|---|---|---|---|"]
        for case in sorted({c for c, _, _, _ in few}):
            walls = [w for c, _, _, w in few if c == case]
            oks = all(ok for c, _, ok, _ in few if c == case)
            text.append(f"| {case} | 32 | {'yes' if oks else 'NO'} ({len(walls)} runs) | {statistics.median(walls):.2f} |")
        sections.append("\n".join(text) + "\n")
        print(f"bench: migrations, few connections: {few}", flush=True)
        lease = metric_lease()
        if not args.quick:
            write_csv("lease", ["what", "value"], lease)
        text = ["### 7c. What the lease costs\n",
                "| what | measured |", "|---|---|"]
        text += [f"| {what} | {value:.2f} |" for what, value in lease]
        sections.append("\n".join(text) + "\n")
        print(f"bench: lease: {lease}", flush=True)
    if want("health"):
        rows = metric_health(3 if args.quick else 10)
        if not args.quick:
            write_csv("health", ["case", "requests_per_s", "p99_ms"], rows)
        text = ["### 8. /health under load (wrk, 64 connections)\n", "Goal: p99 < 10 ms with the junk connections\n",
                "| case | requests/s | p99 (ms) |", "|---|---|---|"]
        text += [f"| {c} | {r:,.0f} | {p:.2f} |" for c, r, p in rows]
        sections.append("\n".join(text) + "\n")
        print(f"bench: health: {rows}", flush=True)
    if want("idle"):
        rows = metric_idle(10 if args.quick else 60)
        if not args.quick:
            write_csv("idle", ["tool", "cpu_s_per_s", "wakeups_per_s"], rows)
        text = ["### 9. Idle cost with 3 idle children (no probes)\n", "Goal: ~0 (no polling tick)\n",
                "| tool | CPU (ms per s) | wake-ups per s |", "|---|---|---|"]
        text += [f"| {n} | {c * 1e3:.3f} | {w:.2f} |" for n, c, w in rows]
        sections.append("\n".join(text) + "\n")
        print(f"bench: idle: {rows}", flush=True)
    if want("drain"):
        rows = metric_drain(1 if args.quick else 3)
        if not args.quick:
            write_csv("drain", ["init", "shape", "replacements", "requests", "failed"], rows)
        text = ["### 11. Rolling deploy behind HAProxy: failed requests\n",
                "Goal: 0 with drain; the others for comparison (~200 requests/s, 2 replicas, each replaced in turn)\n",
                "| init | the LB learns of the stop by | replacements | requests | failed | failed per replacement |",
                "|---|---|---|---|---|---|"]
        text += [f"| {i} | {sh} | {n} | {r:,} | {f} | {f / n:.1f} |" for i, sh, n, r, f in rows]
        picture = None
        if not args.quick and rows:
            picture = chart("drain", "11. Failed requests per replacement", "failed requests",
                            {f"{i} ({sh})": (f / n, 0, 0, 1) for i, sh, n, r, f in rows})
        sections.append("\n".join(text) + "\n" + (f"\n![drain]({picture})\n" if picture else ""))
        print(f"bench: drain: {rows}", flush=True)
    if want("size"):
        rows, build_s = metric_size_and_build(not args.quick and not args.no_cold_build)
        if not args.quick:
            write_csv("size", ["tool", "bytes"], rows)
        text = ["### 10. Binary size and cold build\n", "Goal: ≤ 6 MB (6,291,456 bytes)\n",
                "| tool | bytes on disk |", "|---|---|"]
        text += [f"| {n} | {b:,} |" for n, b in rows]
        if build_s:
            text.append(f"\nCold release build of supervisor (LTO): {build_s:.0f} s.")
        sections.append("\n".join(text) + "\n")
        print(f"bench: size: {rows} build={build_s}", flush=True)
    if absent:
        print(f"bench: no measurement for {', '.join(absent)}: it never came up", file=sys.stderr, flush=True)
        return 1
    if not args.quick:
        report = os.path.join(DOCS, "benchmarks.md")
        if args.only and os.path.exists(report):
            # A partial run replaces only its own sections of the last full report.
            sections = merge_sections(open(report).read(), sections)
        open(report, "w").write("\n".join(sections))
        print("bench: wrote docs/benchmarks.md", flush=True)


def merge_sections(old_report, new_sections):
    """The old report with each `### N.` section replaced by the new one of the same number."""
    def key(section):
        first = section.lstrip().splitlines()[0] if section.strip() else ""
        return first if first.startswith("### ") else None
    parts = re.split(r"(?m)^(?=### )", old_report)
    fresh = {key(s): s for s in new_sections if key(s)}
    merged = [fresh.pop(key(p), p) if key(p) else p for p in parts]
    # A new section (7b.) goes after its number's last section (7., 7a.).
    for k, section in fresh.items():
        number = re.match(r"### (\d+)", k).group(1)
        at = max((i for i, p in enumerate(merged) if re.match(rf"### {number}\D", key(p) or "")), default=len(merged) - 1)
        merged.insert(at + 1, section)
    return [p.rstrip("\n") + "\n" for p in merged]


if __name__ == "__main__":
    sys.exit(main())
