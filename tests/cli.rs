//! SPEC §8: the command line, `exec`, and exit 64 on bad usage.

use std::time::{Duration, Instant};

use crate::support::{secs, Test};

#[test]
fn version_and_help_exit_zero() {
    let finished = Test::new().args(["--version"]).run();
    finished.assert_code(0);
    assert!(finished.stdout.starts_with("supervisor "), "{}", finished.stdout);
    let finished = Test::new().args(["help"]).run();
    finished.assert_code(0);
    assert!(finished.stdout.contains("run"), "{}", finished.stdout);
}

#[test]
fn a_bad_command_line_exits_64() {
    Test::new().args(["frobnicate"]).run().assert_code(64);
    Test::new().args(["run", "--no-such-flag"]).run().assert_code(64);
    Test::new().args(["exec"]).run().assert_code(64);
    Test::new().run().assert_code(64);
}

#[test]
fn exec_runs_one_command_and_passes_its_code_on() {
    let finished = Test::new()
        .args(["exec", "--", "sh", "-c", "echo one-off; exit 9"])
        .pid1()
        .run();
    finished.assert_code(9);
    assert_eq!(finished.stdout, "one-off\n");
}

#[test]
fn exec_of_a_missing_binary_exits_127_and_names_it() {
    let finished = Test::new().args(["exec", "--", "/no/such/tool"]).run();
    finished.assert_code(127);
    assert!(
        finished.stderr.contains("cannot run /no/such/tool"),
        "{}",
        finished.stderr
    );
}

#[test]
fn exec_as_pid1_forwards_signals_and_reaps() {
    let mut run = Test::new()
        .args([
            "exec",
            "--",
            "sh",
            "-c",
            "trap 'echo got-term; exit 0' TERM; (sleep 0.1 &); echo ready; while :; do sleep 0.05; done",
        ])
        .pid1()
        .start();
    run.wait_stdout("ready", secs(10));
    run.wait_descendants(secs(10), "the orphan reaped", |p| {
        p.iter().all(|p| p.state != 'Z') && p.len() <= 2
    });
    let sent = Instant::now();
    run.assert_stops_cleanly(secs(10));
    assert!(sent.elapsed() < Duration::from_secs(3));
    assert!(run.stdout.text().contains("got-term"));
}

/// SPEC §6: `exec` passes our stdin through (`supervisor exec -- psql < dump.sql`).
#[test]
fn exec_passes_stdin_through() {
    let finished = Test::new()
        .shell("printf 'first\\nsecond\\n' | \"$BIN\" exec -- cat")
        .run();
    finished.assert_code(0);
    assert_eq!(finished.stdout, "first\nsecond\n");
}
