#!/usr/bin/env python3
"""Hand-made mutations of the product that the tests must notice.

Each mutation replaces exact snippets (each must occur exactly once) and
names the integration tests that must then fail. Files are restored after
each run, whatever happens. Usage: scripts/mutations.py [NAME-SUBSTRING,…]
"""
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent

MUTATIONS = [
    {
        "name": "no-guard: a job's group does not die with its supervisor",
        "edits": [("src/job.rs", "guarded: true", "guarded: false")],
        "tests": ["lease::a_sigkilled_holder"],
    },
    {
        "name": "no-takeover-wait: unfinished work is taken over at once",
        "edits": [(
            "src/migrate/mod.rs",
            "or_stop(tokio::time::sleep(lease::TAKEOVER_WAIT), signals).await?;",
            "or_stop(tokio::time::sleep(Duration::ZERO), signals).await?;",
        )],
        "tests": ["lease::a_terminated", "lease::a_server_restart"],
    },
    {
        "name": "release-before-stop: a stop signal releases the lock while the command still stops",
        "edits": [
            ("src/migrate/lease.rs", "job.stop(STOP_GRACE).await;",
             "crate::pid1::spawn::stop_group(job.pid, Signal::SIGTERM);"),
            ("src/migrate/mod.rs", "        job.end_group().await;\n",
             "        if !matches!(ended, lease::Ended::Stopped(_)) { job.end_group().await; }\n"),
        ],
        "tests": ["lease::sigterm_stops"],
    },
    {
        "name": "no-pooler-probe: a transaction-mode PgBouncer goes unnoticed",
        "edits": [("src/migrate/db.rs", "Ok(probe_pid == Some(*pid) || now != *pid)", "Ok(now != *pid)")],
        "tests": ["migrate::a_transaction_mode_pgbouncer"],
    },
    {
        "name": "waiters-keep-connections: every waiter holds a connection while it waits",
        "edits": [
            ("src/migrate/mod.rs", "        db.close().await;\n        let left = lock_timeout", "        let left = lock_timeout"),
            ("src/migrate/mod.rs", "        db = connect(url, phase.config.connect_timeout.min(left), false).await?;\n", ""),
        ],
        "tests": ["lease::thirty_two_waiters"],
    },
    {
        "name": "leader-only: the stop signal reaches the group leader, not its group",
        "edits": [("src/pid1/spawn.rs", "    match signal::killpg(pid, signal) {", "    match signal::kill(pid, signal) {")],
        "tests": ["signals::a_grandchild_gets_the_stop_signal_itself"],
    },
    {
        "name": "exit-at-once: PID 1 exits 0 on the first SIGTERM without stopping anyone",
        "edits": [("src/supervise/mod.rs", 'tracing::info!(signal = %signal, "stopping");',
                   'tracing::info!(signal = %signal, "stopping");\n                std::process::exit(0);')],
        "tests": ["signals::sigterm_stops_three_children_and_exits_zero", "faults::a_child_that_closes_its_stdout_early"],
    },
    {
        "name": "job-control-default: TSTP, TTIN and TTOU act (stop us) instead of being read",
        "edits": [
            ("src/pid1/signals.rs", "    Signal::SIGPIPE,\n];",
             "    Signal::SIGPIPE,\n    Signal::SIGTSTP,\n    Signal::SIGTTIN,\n    Signal::SIGTTOU,\n];"),
            ("src/pid1/signals.rs", "const NEVER_BLOCKED: [Signal; 8]", "const NEVER_BLOCKED: [Signal; 11]"),
        ],
        "tests": ["signals::job_control_signals_never_stop_the_supervisor_when_not_pid1"],
    },
    {
        "name": "blocked-stop-hangs: a stop begun while starting others is not acted on",
        "edits": [
            ("src/supervise/mod.rs", "    fn advance(&mut self, now: Instant) {\n",
             "    fn advance(&mut self, now: Instant) {\n        let was_stopping = self.is_stopping();\n"),
            ("src/supervise/mod.rs", "        if self.is_stopping() {\n            self.send_stop_signals(now);\n        }",
             "        if was_stopping {\n            self.send_stop_signals(now);\n        }"),
        ],
        "tests": ["exit_codes::a_blocked_critical_dependent_stops_the_others_too"],
    },
    {
        "name": "loop-exits-0: a loop of clean exits ends with code 0",
        "edits": [("src/supervise/step.rs", "Action::FailedForGood { code: 1 }", "Action::FailedForGood { code: 0 }")],
        "tests": ["restarts::a_loop_of_clean_exits"],
    },
    {
        "name": "heartbeat-without-deadline: a frozen path hangs the holder",
        "edits": [(
            "src/migrate/lease.rs",
            "tokio::time::timeout(PAUSE + ANSWER_WITHIN, db.beat(key, PAUSE))",
            "tokio::time::timeout(Duration::from_secs(3600), db.beat(key, PAUSE))",
        )],
        "tests": ["lease::a_frozen_path"],
    },
]


def main() -> int:
    only = sys.argv[1].split(",") if len(sys.argv) > 1 else [""]
    survived = []
    for mutation in MUTATIONS:
        if not any(part in mutation["name"] for part in only):
            continue
        originals = {}
        try:
            for path, old, new in mutation["edits"]:
                file = ROOT / path
                text = originals.setdefault(file, file.read_text())
                current = file.read_text()
                count = current.count(old)
                assert count == 1, f"{path}: {old!r} occurs {count} times"
                file.write_text(current.replace(old, new))
            print(f"== {mutation['name']}\n   expecting {' '.join(mutation['tests'])} to fail", flush=True)
            run = subprocess.run(
                ["cargo", "test", "--test", "integration", "--", *mutation["tests"]],
                cwd=ROOT, capture_output=True, text=True,
            )
            failed = [line for line in run.stdout.splitlines() if line.startswith("test ") and line.endswith("... FAILED")]
            if run.returncode == 0:
                survived.append(mutation["name"])
                print("   !! SURVIVED", flush=True)
            elif not failed:
                print("   ?? the build or harness failed:\n" + run.stderr[-2000:], flush=True)
                survived.append(mutation["name"])
            else:
                print(f"   killed by {len(failed)} test(s): {', '.join(l.split()[1] for l in failed)}", flush=True)
                for line in run.stdout.splitlines():
                    if "panicked at" in line or "overlap" in line:
                        print("     " + line[:300], flush=True)
        finally:
            for file, text in originals.items():
                file.write_text(text)
    print(f"{len(survived)} mutation(s) survived" + (": " + "; ".join(survived) if survived else ""))
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
