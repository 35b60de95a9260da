//! SPEC §6: stop signals, forwarding, process groups, escalation.

use std::time::{Duration, Instant};

use crate::support::{secs, status_field, wait_lines, Test};

#[test]
fn sigterm_stops_three_children_and_exits_zero() {
    let mut run = Test::new()
        .config(
            r#"
[process.backend]
command = "trap 'echo backend stops; exit 0' TERM; echo up; while :; do sleep 0.05; done"
[process.frontend]
command = "trap 'echo frontend stops; exit 0' TERM; echo up; while :; do sleep 0.05; done"
[process.worker]
command = "trap 'echo worker stops; exit 0' TERM; echo up; while :; do sleep 0.05; done"
"#,
        )
        .args(["run"])
        .pid1()
        .start();
    for name in ["backend", "frontend", "worker"] {
        run.wait_stdout(&format!("{name}.0 | up"), secs(10));
    }
    let sent = Instant::now();
    run.signal("TERM");
    let code = run.wait_exit(secs(10));
    assert_eq!(code, 0);
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "stop took {:?}",
        sent.elapsed()
    );
    // Each child stopped gracefully itself: an exit code alone cannot show
    // it, since the kernel SIGKILLs a namespace's children when PID 1 exits.
    let stdout = run.stdout.text();
    for name in ["backend", "frontend", "worker"] {
        assert!(
            stdout.contains(&format!("{name}.0 | {name} stops")),
            "{name} got no TERM:\n{stdout}"
        );
    }
}

/// The stop signal goes to the whole process group: a grandchild gets it
/// itself, not merely the leader. (USR1 as stop signal, so that the
/// straggler sweep's TERM, which would reach an orphan anyway, cannot pass
/// for it; the grandchild ignores TERM for the same reason.)
#[test]
fn a_grandchild_gets_the_stop_signal_itself() {
    for as_pid1 in [true, false] {
        let test = Test::new()
            .config(
                r#"
[process.app]
command = '''sh -c 'trap "" TERM; trap "echo grandchild got USR1; exit 0" USR1; echo grandchild up; while :; do sleep 0.05; done' & wait'''
stop_signal = "SIGUSR1"
"#,
            )
            .args(["run"]);
        let mut run = if as_pid1 { test.pid1() } else { test }.start();
        run.wait_stdout("app.0 | grandchild up", secs(10));
        run.signal("TERM");
        assert_eq!(run.wait_exit(secs(10)), 0, "{}", run.stderr.text());
        let stdout = run.stdout.text();
        assert!(
            stdout.contains("app.0 | grandchild got USR1"),
            "pid1={as_pid1}: {stdout}"
        );
    }
}

#[test]
fn a_shell_command_stops_at_once_because_its_group_is_signalled() {
    let mut run = Test::new()
        .config("[process.app]\ncommand = \"sleep 1000; echo after\"\nstop_timeout = \"20s\"\n")
        .args(["run"])
        .pid1()
        .start();
    run.wait_descendants(secs(10), "sh and sleep", |p| p.iter().any(|p| p.comm == "sleep"));
    let sent = Instant::now();
    run.signal("TERM");
    let finished = {
        let code = run.wait_exit(secs(15));
        run.finished(code)
    };
    finished.assert_code(0);
    assert!(
        sent.elapsed() < Duration::from_secs(3),
        "the group was not signalled: {:?}",
        sent.elapsed()
    );
    assert!(!finished.stdout.contains("after"), "{}", finished.stdout);
}

#[test]
fn a_child_that_ignores_sigterm_is_killed_after_stop_timeout() {
    let mut run = Test::new()
        .config(
            "[process.stubborn]\ncommand = \"trap '' TERM; echo ready; while :; do sleep 0.1; done\"\nstop_timeout = \"1s\"\n",
        )
        .args(["run"])
        .pid1()
        .start();
    run.wait_stdout("stubborn.0 | ready", secs(10));
    let sent = Instant::now();
    run.signal("TERM");
    let code = run.wait_exit(secs(10));
    let took = sent.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "killed before stop_timeout: {took:?}"
    );
    assert!(
        took < Duration::from_secs(4),
        "not killed soon after stop_timeout: {took:?}"
    );
    // It had to be killed: that is not a clean stop (SPEC §7).
    assert_eq!(code, 137);
    let stderr = run.stderr.text();
    assert!(stderr.contains("still running after stop_timeout"), "{stderr}");
}

#[test]
fn a_second_signal_stops_at_once() {
    let mut run = Test::new()
        .config(
            "[process.stubborn]\ncommand = \"trap '' TERM INT; echo ready; while :; do sleep 0.1; done\"\nstop_timeout = \"30s\"\n",
        )
        .args(["run"])
        .pid1()
        .start();
    run.wait_stdout("stubborn.0 | ready", secs(10));
    run.signal("TERM");
    run.wait_stderr("stopping", secs(5));
    let second = Instant::now();
    run.signal("INT");
    let code = run.wait_exit(secs(10));
    assert!(second.elapsed() < Duration::from_secs(2), "took {:?}", second.elapsed());
    assert_eq!(code, 137);
}

#[test]
fn sighup_usr1_usr2_and_winch_reach_every_child() {
    let script =
        r#"for s in HUP USR1 USR2 WINCH; do trap "echo got-$s" $s; done; echo ready; while :; do sleep 0.05; done"#;
    let config = format!("[process.a]\ncommand = '{script}'\n[process.b]\ncommand = '{script}'\ninstances = 2\n");
    let mut run = Test::new().config(&config).args(["run"]).pid1().start();
    for name in ["a.0", "b.0", "b.1"] {
        run.wait_stdout(&format!("{name} | ready"), secs(10));
    }
    for signal in ["HUP", "USR1", "USR2", "WINCH"] {
        run.signal(signal);
        for name in ["a.0", "b.0", "b.1"] {
            run.wait_stdout(&format!("{name} | got-{signal}"), secs(10));
        }
    }
    run.assert_stops_cleanly(secs(10));
}

#[test]
fn shutdown_order_is_the_reverse_of_depends_on() {
    let stopper = |name: &str| {
        format!(
            "[process.{name}]\ncommand = 'trap \"sleep 0.2; echo {name} >> order.log; exit 0\" TERM; echo up; while :; do sleep 0.05; done'\n"
        )
    };
    let config = format!(
        "{}depends_on = [\"frontend\"]\n{}depends_on = [\"backend\"]\n{}",
        stopper("worker"),
        stopper("frontend"),
        stopper("backend")
    );
    let mut run = Test::new().config(&config).args(["run"]).pid1().start();
    for name in ["backend", "frontend", "worker"] {
        run.wait_stdout(&format!("{name}.0 | up"), secs(10));
    }
    // Start order follows the dependencies. Our own lines travel on stderr,
    // a different pipe from the children's "up": wait for the last of them.
    let stderr = run.wait_stderr("started process=worker", secs(10));
    let started = |name: &str| stderr.find(&format!("started process={name}")).expect("started line");
    assert!(
        started("backend") < started("frontend") && started("frontend") < started("worker"),
        "{stderr}"
    );
    run.assert_stops_cleanly(secs(15));
    let order = wait_lines(&run.dir().join("order.log"), 3, secs(1));
    assert_eq!(order, ["worker", "frontend", "backend"]);
}

#[test]
fn a_signal_that_arrives_before_any_child_exists_is_not_lost() {
    // Send TERM as soon as the supervisor has blocked it: before children exist.
    for _ in 0..20 {
        let mut run = Test::new()
            .config("[process.app]\ncommand = [\"sleep\", \"1000\"]\n")
            .args(["run"])
            .pid1()
            .start();
        let pid = run.pid();
        let deadline = Instant::now() + secs(10);
        loop {
            // `unshare` itself blocks TERM for a moment before it execs us; only
            // count our own binary having blocked it.
            let is_ours = std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "supervisor");
            let blocked = status_field(pid, "SigBlk").and_then(|mask| u64::from_str_radix(&mask, 16).ok());
            if is_ours && blocked.is_some_and(|mask| mask & (1 << (15 - 1)) != 0) {
                break;
            }
            assert!(Instant::now() < deadline, "SIGTERM never blocked");
            std::thread::yield_now();
        }
        run.signal("TERM");
        assert_eq!(run.wait_exit(secs(5)), 0, "stderr: {}", run.stderr.text());
    }
}

#[test]
fn job_control_signals_never_stop_pid1() {
    let mut run = Test::new()
        .config("[process.app]\ncommand = \"echo ready; sleep 1000\"\n")
        .args(["run"])
        .pid1()
        .start();
    run.wait_stdout("app.0 | ready", secs(10));
    for signal in ["TSTP", "TTIN", "TTOU"] {
        run.signal(signal);
    }
    // The supervisor still reacts: a HUP would kill `sleep`… so ask for a stop instead.
    run.assert_stops_cleanly(secs(10));
}

/// The same as a subreaper (not PID 1), where the kernel protects nothing:
/// a supervisor stopped by TSTP would leave the TERM pending and never exit.
#[test]
fn job_control_signals_never_stop_the_supervisor_when_not_pid1() {
    let mut run = Test::new()
        .config("[process.app]\ncommand = \"echo ready; sleep 1000\"\n")
        .args(["run"])
        .start();
    run.wait_stdout("app.0 | ready", secs(10));
    for signal in ["TSTP", "TTIN", "TTOU"] {
        run.signal(signal);
    }
    run.assert_stops_cleanly(secs(10));
}
