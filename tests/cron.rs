//! SPEC §10: `[cron.NAME]` jobs through the real binary, with 6-field
//! (seconds) schedules so that a test takes seconds, not minutes.

use std::time::{Duration, Instant};

use crate::support::{http, secs, wait_health, wait_lines, Test};

/// A long-running process so the run stays up, plus `jobs`.
fn config(jobs: &str) -> String {
    format!("[process.web]\ncommand = \"sleep 1000\"\n{jobs}")
}

#[test]
fn a_job_runs_on_time_every_second_with_the_validated_environment() {
    let mut run = Test::new()
        .env("GREETING", "hello")
        .config(&config(
            "[cron.tick]\nschedule = \"* * * * * *\"\ncommand = 'echo \"$(date +%s.%N) $SUPERVISOR_PROCESS $GREETING $EXTRA\" >> ticks'\nenv = { EXTRA = \"x${GREETING}\" }\n",
        ))
        .args(["run"])
        .start();
    let address = run.health_address();
    let ticks = wait_lines(&run.dir().join("ticks"), 3, secs(15));
    let mut seconds = Vec::new();
    for tick in &ticks[..3] {
        let mut fields = tick.split_whitespace();
        let at: f64 = fields.next().and_then(|t| t.parse().ok()).expect("a time");
        assert_eq!(fields.collect::<Vec<_>>(), ["cron.tick", "hello", "xhello"], "{tick}");
        // On the second: started well within it (the clock is the wall clock).
        assert!(at.fract() < 0.9, "{tick}");
        seconds.push(at.trunc() as i64);
    }
    assert!(
        seconds.windows(2).all(|w| w[1] > w[0]),
        "one run per second: {seconds:?}"
    );
    let health = wait_health(&address, secs(5), "cron listed", |_, json| {
        json["cron"][0]["runs"]["ok"].as_u64() >= Some(2)
    });
    let job = &health["cron"][0];
    assert_eq!(job["name"], "tick");
    assert_eq!(job["schedule"], "* * * * * *");
    assert_eq!(job["timezone"], "UTC");
    assert_eq!(job["last_exit_code"], 0);
    assert!(job["next_run"].as_str().is_some_and(|t| t.ends_with('Z')), "{job}");
    assert!(job["last_start"].as_str().is_some(), "{job}");
    // A job never makes /health fail by itself.
    assert_eq!(health["status"], "ok");
    let (_, metrics) = http("GET", &address, "/metrics");
    assert!(
        metrics.contains("supervisor_cron_runs_total{job=\"tick\",result=\"ok\"}"),
        "{metrics}"
    );
    run.assert_stops_cleanly(secs(10));
}

#[test]
fn a_failed_run_is_counted_and_logged_never_fatal() {
    let mut run = Test::new()
        .config(&config(
            "[cron.broken]\nschedule = \"* * * * * *\"\ncommand = 'echo ran >> runs; exit 3'\n",
        ))
        .args(["run"])
        .start();
    let address = run.health_address();
    wait_lines(&run.dir().join("runs"), 2, secs(15));
    let health = wait_health(&address, secs(5), "failures counted", |_, json| {
        json["cron"][0]["runs"]["failed"].as_u64() >= Some(2)
    });
    assert_eq!(health["cron"][0]["last_exit_code"], 3);
    assert_eq!(health["status"], "ok");
    assert!(
        run.stderr.text().contains("failed: exited with code 3"),
        "{}",
        run.stderr.text()
    );
    run.assert_stops_cleanly(secs(10));
}

#[test]
fn overlap_skip_never_starts_a_second_run_and_replace_stops_the_old_one() {
    // Each run records start and end; a run lasts 2.5 s on a 1 s schedule.
    let job = |name: &str, overlap: &str| {
        format!(
            "[cron.{name}]\nschedule = \"* * * * * *\"\noverlap = \"{overlap}\"\ncommand = \"trap 'echo end $$ >> {name}; exit 0' TERM; echo start $$ >> {name}; sleep 2.5 & wait; echo end $$ >> {name}\"\n"
        )
    };
    let mut run = Test::new()
        .config(&config(&(job("skipping", "skip") + &job("replacing", "replace"))))
        .args(["run"])
        .start();
    let address = run.health_address();
    wait_lines(&run.dir().join("skipping"), 4, secs(20));
    wait_lines(&run.dir().join("replacing"), 4, secs(20));
    let health = wait_health(&address, secs(10), "skips counted", |_, json| {
        json["cron"][0]["runs"]["skipped"].as_u64() >= Some(1)
    });
    assert_eq!(health["cron"][0]["name"], "skipping");
    run.assert_stops_cleanly(secs(10));
    for name in ["skipping", "replacing"] {
        let lines = std::fs::read_to_string(run.dir().join(name)).expect("runs");
        let lines: Vec<&str> = lines.lines().collect();
        // start, end, start, end…: never two runs at once.
        for pair in lines.chunks(2) {
            let pid = pair[0]
                .strip_prefix("start ")
                .unwrap_or_else(|| panic!("{name}: {lines:?}"));
            if let Some(end) = pair.get(1) {
                assert_eq!(*end, format!("end {pid}"), "{name}: {lines:?}");
            }
        }
    }
    let stderr = run.stderr.text();
    assert!(stderr.contains("skipping this one (overlap = \"skip\")"), "{stderr}");
    assert!(
        stderr.contains("stopping it for this one (overlap = \"replace\")"),
        "{stderr}"
    );
}

#[test]
fn a_timeout_stops_the_whole_group_of_the_run() {
    let mut run = Test::new()
        .config(&config(
            "[cron.slow]\nschedule = \"*/2 * * * * *\"\ntimeout = \"1s\"\ncommand = \"sh -c 'echo $$ > grandchild; exec sleep 100' & wait\"\n",
        ))
        .args(["run"])
        .start();
    let address = run.health_address();
    let grandchild: i32 = wait_lines(&run.dir().join("grandchild"), 1, secs(15))[0]
        .trim()
        .parse()
        .expect("a pid");
    let health = wait_health(&address, secs(10), "a timeout counted", |_, json| {
        json["cron"][0]["runs"]["timeout"].as_u64() >= Some(1)
    });
    assert_eq!(health["cron"][0]["last_exit_code"], 143, "{health}");
    // The grandchild went with its group.
    let deadline = Instant::now() + secs(10);
    while crate::support::proc_info(grandchild).is_some_and(|p| p.comm == "sleep") {
        assert!(Instant::now() < deadline, "the job's grandchild outlived its timeout");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(run
        .stderr
        .text()
        .contains("still running after its timeout of 1s: stopping its group"));
    run.assert_stops_cleanly(secs(10));
}

#[test]
fn a_stop_during_a_run_stops_the_job_gracefully() {
    let mut run = Test::new()
        .config(&config(
            "[cron.long]\nschedule = \"* * * * * *\"\ncommand = \"trap 'echo job got TERM; exit 0' TERM; echo job running; sleep 100 & wait\"\n",
        ))
        .args(["run"])
        .start();
    run.wait_stdout("job running", secs(15));
    run.signal("TERM");
    run.wait_stdout("job got TERM", secs(10));
    assert_eq!(run.wait_exit(secs(15)), 0, "{}", run.stderr.text());
    assert!(
        run.stdout.text().contains("cron.long | job got TERM"),
        "{}",
        run.stdout.text()
    );
}

#[test]
fn a_job_not_listed_for_the_context_never_runs() {
    let mut run = Test::new()
        .env("SUPERVISOR_CONTEXT", "production")
        .config(&config(
            "[cron.everywhere]\nschedule = \"* * * * * *\"\ncommand = 'echo x >> everywhere'\n\
             [cron.staging-only]\nschedule = \"* * * * * *\"\ncommand = 'echo x >> staging'\ncontexts = [\"staging\"]\n",
        ))
        .args(["run"])
        .start();
    run.wait_stderr("not scheduled: not listed for this context", secs(10));
    // Both would have run in these three seconds.
    wait_lines(&run.dir().join("everywhere"), 3, secs(15));
    assert!(!run.dir().join("staging").exists());
    run.assert_stops_cleanly(secs(10));
}

#[test]
fn bad_schedules_zones_and_overlaps_are_config_errors_naming_the_key() {
    let bad = Test::new()
        .config(&config(
            "[cron.a]\nschedule = \"61 * * * *\"\ncommand = \"true\"\n\
             [cron.b]\nschedule = \"@daily\"\ntimezone = \"Mars/Olympus\"\ncommand = \"true\"\n\
             [cron.c]\nschedule = \"* * * * *\"\noverlap = \"queue\"\ncommand = \"true\"\n\
             [cron.d]\nschedule = \"* * * * *\"\ntimeout = \"soon\"\ncommand = \"true\"\n",
        ))
        .args(["run"])
        .run();
    bad.assert_code(78);
    for key in ["cron.a.schedule", "cron.b.timezone", "cron.c.overlap", "cron.d.timeout"] {
        assert!(bad.stderr.contains(key), "{key} in {}", bad.stderr);
    }
    assert!(
        bad.stderr.contains("unknown time zone \"Mars/Olympus\""),
        "{}",
        bad.stderr
    );
}

#[test]
fn status_lists_the_jobs() {
    let mut run = Test::new()
        .config(&config(
            "[cron.tick]\nschedule = \"* * * * * *\"\ncommand = 'echo x >> ticks'\n",
        ))
        .args(["run"])
        .start();
    wait_lines(&run.dir().join("ticks"), 1, secs(15));
    let output = std::process::Command::new(crate::support::BIN)
        .arg("status")
        .current_dir(run.dir())
        .env_remove("SUPERVISOR_CONTROL_SOCKET")
        .output()
        .expect("status");
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("cron.tick"), "{table}");
    assert!(table.contains("* * * * * *"), "{table}");
    run.assert_stops_cleanly(secs(10));
}
