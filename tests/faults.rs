//! Fault injection: real processes, real signals, a real stuck reader.
//! PID 1 must survive all of it, lose no child, leave no zombie.

use std::io::Read;
use std::time::{Duration, Instant};

use crate::support::{secs, send, Test};

#[test]
fn ten_thousand_mixed_signals_while_children_start_and_die() {
    let trap = r#"trap '' HUP USR1 USR2 WINCH ALRM; "#;
    let config = format!(
        r#"
[process.steady]
command = "{trap}echo up; while :; do sleep 0.05; done"
instances = 2

[process.flapping]
command = "{trap}sleep 0.01; exit 1"
backoff = {{ initial = "0s", max = "0s" }}
max_restarts = 100000
restart_window = "1s"
critical = false
"#
    );
    let mut run = Test::new().config(&config).args(["run"]).pid1().start();
    run.wait_stdout("steady.1 | up", secs(10));
    let pid = run.pid();
    let mix = [
        "HUP", "USR1", "USR2", "WINCH", "TSTP", "TTIN", "TTOU", "CHLD", "ALRM", "CONT", "PIPE", "URG",
    ];
    for i in 0..10_000 {
        send(pid, mix[i % mix.len()]);
    }
    // Still supervising: nothing is a zombie for long, and the flapping
    // process keeps being restarted after the storm.
    run.wait_descendants(secs(10), "no zombie left", |procs| procs.iter().all(|p| p.state != 'Z'));
    let stopped_state = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    assert!(!stopped_state.contains("State:\tT"), "PID 1 was stopped");
    let restarts = || run.stderr.text().matches("process=flapping").count();
    let after_storm = restarts();
    run.stderr
        .wait_until(secs(10), "the flapping process restarting again", |text| {
            text.matches("process=flapping").count() > after_storm + 10
        });
    let sent = Instant::now();
    run.signal("TERM");
    assert_eq!(run.wait_exit(secs(15)), 0, "{}", run.stderr.text());
    assert!(sent.elapsed() < Duration::from_secs(5));
    // The steady processes ran once each, from start to stop: same pids throughout.
    let stderr = run.stderr.text();
    assert_eq!(stderr.matches("started process=steady").count(), 2, "{stderr}");
    crate::support::assert_each_run_ended(&stderr);
}

#[test]
fn a_child_that_forks_five_thousand_grandchildren_and_exits() {
    let mut run = Test::new()
        .config(
            "[process.forker]\ncommand = 'for i in $(seq 5000); do sleep 0.5 & done; echo forked; exit 0'\nrestart = \"never\"\n\
             [process.steady]\ncommand = [\"sleep\", \"1000\"]\n",
        )
        .args(["run"])
        .pid1()
        .start();
    run.wait_stdout("forker.0 | forked", secs(60));
    // The 5,000 orphans exit and are reaped; only the steady process is left.
    let left = run.wait_descendants(secs(60), "every orphan reaped", |procs| {
        procs.len() == 1 && procs[0].state != 'Z' && procs[0].comm == "sleep"
    });
    assert_eq!(left[0].comm, "sleep");
    run.assert_stops_cleanly(secs(10));
}

#[test]
fn a_child_that_closes_its_stdout_early_keeps_running() {
    let mut run = Test::new()
        .config("[process.quiet]\ncommand = 'echo bye; exec 1>&- 2>&-; sleep 1000'\n")
        .args(["run"])
        .pid1()
        .start();
    run.wait_stdout("quiet.0 | bye", secs(10));
    run.wait_descendants(secs(10), "the sleep", |p| p.iter().any(|p| p.comm == "sleep"));
    run.assert_stops_cleanly(secs(10));
    // One run from start to stop: the closed pipes were not taken for an exit.
    let stderr = run.stderr.text();
    assert_eq!(stderr.matches("started process=quiet").count(), 1, "{stderr}");
}

#[test]
fn a_stalled_reader_back_pressures_children_and_sigterm_still_stops_everything() {
    // Nobody reads our stdout for a while: the pipe fills, the relays wait,
    // the child blocks in write(). Nothing may be dropped or reordered, and a
    // stop must still work.
    let mut run = Test::new()
        .config("[process.flood]\ncommand = 'seq 1 10000000'\nstop_timeout = \"2s\"\n")
        .args(["run"])
        .pid1()
        .start_unread_stdout();
    std::thread::sleep(Duration::from_millis(1500)); // let the pipe fill: the condition under test is "nobody reads"
    let child = run
        .descendants()
        .into_iter()
        .find(|p| p.comm == "seq")
        .expect("seq still running: it must be blocked, not done");
    let wchan = std::fs::read_to_string(format!("/proc/{}/wchan", child.pid)).unwrap_or_default();
    assert!(
        matches!(child.state, 'S' | 'D'),
        "seq is {} ({wchan}), not blocked",
        child.state
    );
    let sent = Instant::now();
    run.signal("TERM");
    // Drain while it stops, as a reader coming back would.
    let mut stdout = run.take_stdout();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    assert_eq!(run.wait_exit(secs(15)), 0);
    assert!(
        sent.elapsed() < Duration::from_secs(8),
        "stop took {:?}",
        sent.elapsed()
    );
    let text = reader.join().expect("reader");
    let lines: Vec<&str> = text.lines().collect();
    let mut expected = 1u64;
    for (index, line) in lines.iter().enumerate() {
        let digits = line
            .strip_prefix("flood.0 | ")
            .unwrap_or_else(|| panic!("torn line {line:?}"));
        if index + 1 == lines.len() && digits != expected.to_string() {
            // `seq` was killed mid-write: its unterminated last line is written as it is.
            assert!(
                expected.to_string().starts_with(digits),
                "last line {line:?}, expected {expected}"
            );
            break;
        }
        assert_eq!(digits, expected.to_string(), "lost or reordered at {line:?}");
        expected += 1;
    }
    assert!(expected > 1000, "only {expected} lines made it");
}

#[test]
fn stdout_going_away_never_kills_pid1() {
    // As PID 1 the kernel would shield us from SIGPIPE anyway; as a subreaper it would not.
    for as_pid1 in [true, false] {
        let test = Test::new()
            .config("[process.talker]\ncommand = 'while :; do echo chatter; sleep 0.01; done'\n")
            .args(["run"]);
        let mut run = if as_pid1 { test.pid1() } else { test }.start_unread_stdout();
        run.wait_stderr("started process=talker", secs(10));
        drop(run.take_stdout()); // the reader goes away: every write now fails with EPIPE
        std::thread::sleep(Duration::from_millis(300)); // let EPIPEs happen: surviving them is what is tested
        let address = run.health_address();
        assert_eq!(crate::support::http("GET", &address, "/livez").0, 200, "pid1={as_pid1}");
        assert_eq!(
            crate::support::http("GET", &address, "/health").0,
            200,
            "pid1={as_pid1}"
        );
        run.assert_stops_cleanly(secs(10));
    }
}

#[test]
fn a_hundred_processes_times_four_instances() {
    let mut config = String::new();
    for i in 0..100 {
        config.push_str(&format!(
            "[process.p{i}]\ncommand = [\"sleep\", \"1000\"]\ninstances = 4\n"
        ));
    }
    let mut run = Test::new().config(&config).args(["run"]).pid1().start();
    run.wait_descendants(secs(30), "400 sleeps", |p| {
        p.iter().filter(|p| p.comm == "sleep").count() == 400
    });
    let address = run.health_address();
    crate::support::wait_health(&address, secs(10), "ok", |code, json| {
        code == 200 && json["processes"].as_array().map_or(0, Vec::len) == 400
    });
    let sent = Instant::now();
    run.assert_stops_cleanly(secs(15));
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "stop took {:?}",
        sent.elapsed()
    );
}

#[test]
fn a_user_that_does_not_exist_is_a_config_error() {
    let finished = Test::new()
        .config("[process.app]\ncommand = \"true\"\nuser = \"no-such-user-xyz\"\n")
        .args(["run"])
        .run();
    finished.assert_code(78);
    assert!(
        finished
            .stderr
            .contains("process.app.user: user \"no-such-user-xyz\" does not exist"),
        "{}",
        finished.stderr
    );
}
