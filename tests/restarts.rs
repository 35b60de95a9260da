//! SPEC §2 restart keys and §7: backoff, budget, critical and non-critical failures.

use crate::support::{secs, wait_lines, Test};

#[test]
fn a_crash_loop_backs_off_with_growing_gaps_then_fails_the_container() {
    let mut run = Test::new()
        .config(
            r#"
[process.crashy]
command = 'date +%s%N >> starts.log; exit 3'
backoff = { initial = "100ms", max = "10s" }
max_restarts = 4
restart_window = "60s"

[process.bystander]
command = ["sleep", "1000"]
"#,
        )
        .args(["run"])
        .pid1()
        .start();
    // One start plus four restarts, then the budget is spent: exit with its code.
    assert_eq!(run.wait_exit(secs(20)), 3);
    let starts: Vec<u128> = wait_lines(&run.dir().join("starts.log"), 5, secs(1))
        .iter()
        .map(|line| line.parse().expect("timestamp"))
        .collect();
    assert_eq!(starts.len(), 5, "{starts:?}");
    let gaps: Vec<u128> = starts.windows(2).map(|w| (w[1] - w[0]) / 1_000_000).collect();
    for pair in gaps.windows(2) {
        assert!(pair[1] > pair[0], "gaps must grow: {gaps:?}");
    }
    assert!(gaps[0] >= 70 && gaps[0] < 1000, "first gap near 100 ms: {gaps:?}");
    let stderr = run.stderr.text();
    assert!(stderr.contains("failed for good"), "{stderr}");
    assert!(stderr.contains("critical process failed"), "{stderr}");
}

#[test]
fn a_non_critical_failure_keeps_the_rest_running() {
    let mut run = Test::new()
        .config(
            r#"
[process.worker]
command = "exit 4"
restart = "never"
critical = false

[process.backend]
command = "echo serving; sleep 1000"
"#,
        )
        .args(["run"])
        .pid1()
        .start();
    run.wait_stderr("non-critical process failed", secs(10));
    run.wait_stdout("backend.0 | serving", secs(10));
    // "serving" is printed before the shell forks its sleep: wait for it rather than snapshot.
    run.wait_descendants(secs(10), "backend alive (its sleep running)", |procs| {
        procs.iter().any(|p| p.comm == "sleep")
    });
    run.assert_stops_cleanly(secs(10));
}

#[test]
fn on_failure_restarts_failures_but_not_success() {
    let mut run = Test::new()
        .config(
            r#"
[process.job]
command = 'echo run >> runs.log; n=$(wc -l < runs.log); [ "$n" -ge 3 ] && exit 0; exit 1'
restart = "on-failure"
backoff = { initial = "10ms", max = "10ms" }
"#,
        )
        .args(["run"])
        .pid1()
        .start();
    // Two failures, one success; then everything has finished: exit 0.
    assert_eq!(run.wait_exit(secs(10)), 0);
    assert_eq!(wait_lines(&run.dir().join("runs.log"), 3, secs(1)).len(), 3);
}

#[test]
fn a_crashed_process_is_restarted_and_the_others_keep_their_pids() {
    let mut run = Test::new()
        .config(
            "[process.backend]\ncommand = [\"sleep\", \"1000\"]\n[process.worker]\ncommand = [\"sleep\", \"2000\"]\n",
        )
        .args(["run"])
        .pid1()
        .start();
    let cmdline = |pid: i32| std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    // Both exec'd (a forked child has the supervisor's cmdline until it execs).
    let procs = run.wait_descendants(secs(10), "two sleeps", |p| {
        p.len() == 2 && p.iter().all(|p| p.comm == "sleep")
    });
    let backend = procs
        .iter()
        .find(|p| cmdline(p.pid).contains("1000"))
        .expect("backend")
        .pid;
    let worker = procs
        .iter()
        .find(|p| cmdline(p.pid).contains("2000"))
        .expect("worker")
        .pid;
    crate::support::send(backend, "KILL");
    run.wait_descendants(secs(10), "a new backend", |p| {
        p.iter().any(|p| p.pid != backend && cmdline(p.pid).contains("1000")) && p.iter().all(|p| p.state != 'Z')
    });
    assert!(
        run.descendants().iter().any(|p| p.pid == worker),
        "the worker was disturbed"
    );
    run.wait_stderr("killed by SIGKILL; restarting", secs(10));
    run.assert_stops_cleanly(secs(10));
}

#[test]
fn a_missing_binary_is_a_failure_of_that_process_not_a_crash() {
    let finished = Test::new()
        .config("[process.ghost]\ncommand = [\"/nonexistent/binary\"]\nrestart = \"never\"\n")
        .args(["run"])
        .pid1()
        .run();
    finished.assert_code(127);
    assert!(finished.stderr.contains("process=ghost"), "{}", finished.stderr);
    assert!(
        finished.stderr.contains("No such file or directory"),
        "{}",
        finished.stderr
    );
}

/// Issue 13, bug 2: the backoff grows past `restart_window / max_restarts`
/// (here 100 → 400 ms against 5 within 1 s), so a sliding window never held
/// enough restarts and the loop went on forever. Restarts are counted in a
/// row, since the last run as long as `restart_window`: the loop ends.
#[test]
fn a_crash_loop_ends_even_when_the_backoff_outgrows_the_window() {
    let mut run = Test::new()
        .config(
            r#"
[process.crashy]
command = 'echo start >> starts.log; exit 3'
backoff = { initial = "100ms", max = "400ms" }
max_restarts = 5
restart_window = "1s"
"#,
        )
        .args(["run"])
        .start();
    assert_eq!(run.wait_exit(secs(20)), 3, "{}", run.stderr.text());
    assert_eq!(
        wait_lines(&run.dir().join("starts.log"), 6, secs(1)).len(),
        6,
        "one start, five restarts"
    );
}

/// Issue 13, bug 3: `restart = "always"` on a process that keeps exiting 0
/// is a loop that failed, and the exit code says so (not 0).
#[test]
fn a_loop_of_clean_exits_under_restart_always_fails_with_code_1() {
    let finished = Test::new()
        .config(
            "[process.oneshot]\ncommand = \"true\"\nbackoff = { initial = \"10ms\", max = \"10ms\" }\nmax_restarts = 2\n",
        )
        .args(["run"])
        .run();
    finished.assert_code(1);
    assert!(
        finished
            .stderr
            .contains("exited with 0 again and again under restart = \"always\" (a loop): failed for good"),
        "{}",
        finished.stderr
    );
}

/// Issue 13, bug 4: `instances = 0` turns a process off (it is not started
/// and not on /health); depending on it is a config error naming both.
#[test]
fn zero_instances_turn_a_process_off_and_depending_on_it_is_refused() {
    let config = "[process.api]\ncommand = \"echo api up; sleep 1000\"\ninstances = \"${CLUSTER_WORKERS:-1}\"\n\n[process.bot]\ncommand = \"echo bot done\"\nrestart = \"never\"\n";
    let finished = Test::new()
        .config(config)
        .env("CLUSTER_WORKERS", "0")
        .args(["run"])
        .run();
    finished.assert_code(0);
    assert!(finished.stdout.contains("bot.0 | bot done"), "{}", finished.stdout);
    assert!(!finished.stdout.contains("api up"), "{}", finished.stdout);
    assert!(
        finished.stderr.contains("turned off: instances = 0"),
        "{}",
        finished.stderr
    );
    let dependent = format!("{config}depends_on = [\"api\"]\n");
    let refused = Test::new()
        .config(&dependent)
        .env("CLUSTER_WORKERS", "0")
        .args(["run"])
        .run();
    refused.assert_code(78);
    assert!(
        refused.stderr.contains(
            "process.bot.depends_on: \"api\" has instances = 0 (turned off), so this dependency could never be met"
        ),
        "{}",
        refused.stderr
    );
}
