//! SPEC §6: every zombie reaped; children start clean.

use crate::support::{proc_info, secs, status_field, Test};

#[test]
fn an_orphan_storm_leaves_no_zombie() {
    let mut run = Test::new()
        .config(
            "[process.storm]\ncommand = 'for i in $(seq 1200); do (sleep 0.3 &); done; echo spawned; exec sleep 1000'\n",
        )
        .args(["run"])
        .pid1()
        .start();
    run.wait_stdout("storm.0 | spawned", secs(60));
    // Every orphan has exited and been reaped: only the service's sleep is left.
    let left = run.wait_descendants(secs(30), "the orphans to be reaped", |procs| {
        // The shell has exec'd its sleep, too: a snapshot before that would say "sh".
        procs.len() == 1 && procs.iter().all(|p| p.state != 'Z' && p.comm == "sleep")
    });
    assert_eq!(left[0].comm, "sleep");
    run.assert_stops_cleanly(secs(10));
}

#[test]
fn a_service_dying_together_with_orphans_is_still_seen() {
    // catatonit #4: the service's SIGCHLD coalesces with its orphans'.
    let mut run = Test::new()
        .config(
            "[process.flaky]\ncommand = '(sleep 0.01 &); (sleep 0.01 &); exit 1'\nbackoff = { initial = \"0s\", max = \"0s\" }\nmax_restarts = 50\nrestart_window = \"1h\"\n",
        )
        .args(["run"])
        .pid1()
        .start();
    // 51 runs, each noticed, then failed for good: exit with its code.
    assert_eq!(run.wait_exit(secs(30)), 1);
    let stderr = run.stderr.text();
    assert_eq!(stderr.matches("started process=flaky").count(), 51, "{stderr}");
}

#[test]
fn children_start_with_a_clean_signal_state_and_no_extra_descriptors() {
    // Leak fd 5 into the supervisor, as a careless parent would.
    let mut run = Test::new()
        .config("[process.app]\ncommand = [\"sleep\", \"1000\"]\n")
        .shell("exec 5</etc/hostname; exec \"$BIN\" run")
        .start();
    let procs = run.wait_descendants(secs(10), "sleep", |p| p.iter().any(|p| p.comm == "sleep"));
    let sleep = procs.iter().find(|p| p.comm == "sleep").expect("sleep").pid;
    assert_eq!(status_field(sleep, "SigBlk").as_deref(), Some("0000000000000000"));
    assert_eq!(status_field(sleep, "SigIgn").as_deref(), Some("0000000000000000"));
    // `sleep` opens its locale files itself as it starts: wait for what stays.
    // A descriptor of ours would stay, and fail this at the deadline.
    let fds_of = |pid: i32| -> Vec<(String, String)> {
        let mut fds: Vec<(String, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|dir| {
                dir.flatten()
                    .map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        let target = std::fs::read_link(e.path())
                            .map(|t| t.display().to_string())
                            .unwrap_or_default();
                        (name, target)
                    })
                    .collect()
            })
            .unwrap_or_default();
        fds.sort();
        fds
    };
    let deadline = std::time::Instant::now() + secs(10);
    loop {
        let fds = fds_of(sleep);
        if fds.iter().map(|(fd, _)| fd.as_str()).eq(["0", "1", "2"]) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "descriptors beyond 0, 1, 2: {fds:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // stdin is /dev/null, and the child leads its own process group.
    assert_eq!(
        std::fs::read_link(format!("/proc/{sleep}/fd/0"))
            .expect("fd 0")
            .to_string_lossy(),
        "/dev/null"
    );
    let stat = std::fs::read_to_string(format!("/proc/{sleep}/stat")).expect("stat");
    let after_comm = &stat[stat.rfind(')').expect(")") + 2..];
    let pgrp: i32 = after_comm
        .split_whitespace()
        .nth(2)
        .expect("pgrp")
        .parse()
        .expect("pgrp number");
    assert_eq!(pgrp, sleep);
    run.assert_stops_cleanly(secs(10));
}

#[test]
fn when_not_pid1_it_adopts_and_reaps_orphans_and_stops_stragglers() {
    let mut run = Test::new()
        .config("[process.app]\ncommand = '(setsid sleep 1000 &); echo ready; exec sleep 999'\n")
        .args(["run"])
        .start();
    run.wait_stdout("app.0 | ready", secs(10));
    let supervisor = run.pid();
    // The escaped sleep was re-parented to us (child subreaper), not to the host's init.
    let procs = run.wait_descendants(secs(10), "the orphan", |p| {
        p.iter().filter(|p| p.comm == "sleep").count() == 2
    });
    let orphan = procs
        .iter()
        .find(|p| std::fs::read_to_string(format!("/proc/{}/cmdline", p.pid)).is_ok_and(|c| c.contains("1000")))
        .expect("orphan")
        .pid;
    let ppid: i32 = status_field(orphan, "PPid").expect("PPid").parse().expect("ppid");
    assert_eq!(ppid, supervisor);
    run.assert_stops_cleanly(secs(10));
    // The straggler that left its group was stopped before we exited.
    assert!(proc_info(orphan).is_none_or(|p| p.state == 'Z'), "straggler survived");
}
