//! SPEC §7: our exit code tells what happened.

use crate::support::{secs, Test};

fn critical_exit(command: &str) -> i32 {
    Test::new()
        .config(&format!(
            "[process.app]\ncommand = '{command}'\nrestart = \"never\"\n[process.other]\ncommand = [\"sleep\", \"1000\"]\n"
        ))
        .args(["run"])
        .pid1()
        .run()
        .code
}

#[test]
fn a_critical_failure_passes_its_code_on() {
    assert_eq!(critical_exit("exit 7"), 7);
    assert_eq!(critical_exit("exit 255"), 255);
}

#[test]
fn a_critical_process_killed_by_signal_n_gives_128_plus_n() {
    assert_eq!(critical_exit("kill -USR1 $$"), 138);
    assert_eq!(critical_exit("kill -SEGV $$"), 139);
}

#[test]
fn every_process_finishing_with_zero_exits_zero() {
    Test::new()
        .config("[process.a]\ncommand = \"true\"\nrestart = \"never\"\n[process.b]\ncommand = \"exit 0\"\nrestart = \"on-failure\"\n")
        .args(["run"])
        .pid1()
        .run()
        .assert_code(0);
}

#[test]
fn a_blocked_critical_dependent_stops_the_run_instead_of_hanging() {
    let finished = Test::new()
        .config(
            r#"
[process.migrate]
command = "exit 5"
restart = "never"
critical = false

[process.web]
command = ["sleep", "1000"]
depends_on = { migrate = "completed" }
"#,
        )
        .args(["run"])
        .pid1()
        .run();
    finished.assert_code(5);
    assert!(
        finished.stderr.contains("cannot start: a dependency failed"),
        "{}",
        finished.stderr
    );
}

/// Issue 13, bug 1: with another process running, the blocked critical
/// dependent used to log "stopping everything" and then hang, never
/// signalling `bot`. Now the stop goes on at once, and `bot` gets its TERM.
/// (`assets` fails only once `bot` has set its trap, or the TERM could come
/// before the trap and kill it silently.)
#[test]
fn a_blocked_critical_dependent_stops_the_others_too() {
    let mut run = Test::new()
        .config(
            r#"
[process.assets]
command = "while [ ! -e bot-is-up ]; do sleep 0.01; done; exit 2"
restart = "never"
critical = false

[process.web]
command = ["sleep", "1000"]
depends_on = { assets = "completed" }

[process.bot]
command = "trap 'echo bot got TERM; exit 0' TERM; touch bot-is-up; while :; do sleep 0.1; done"
"#,
        )
        .args(["run"])
        .pid1()
        .start();
    assert_eq!(run.wait_exit(secs(15)), 2, "{}", run.stderr.text());
    let stdout = run.stdout.text();
    assert!(
        stdout.contains("bot.0 | bot got TERM"),
        "bot was never stopped gracefully:\n{stdout}"
    );
}

#[test]
fn dependents_wait_for_a_completed_one_shot() {
    let mut run = Test::new()
        .config(
            r#"
[process.assets]
command = "sleep 0.3; echo built > built.txt"
restart = "on-failure"

[process.web]
command = "cat built.txt; sleep 1000"
depends_on = { assets = "completed" }
"#,
        )
        .args(["run"])
        .pid1()
        .start();
    run.wait_stdout("web.0 | built", secs(10));
    run.assert_stops_cleanly(secs(10));
}
