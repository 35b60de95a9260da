//! SPEC §4 "A lease, not a hope": with real faults (a holder SIGKILLed, its
//! session terminated, the server restarted, the network path frozen or
//! silently dropped, a stop signal), no two replicas' migration commands
//! ever run at the same time, and the work is done exactly once.
//!
//! Every test runs the same deliberately non-idempotent command, `record.sh`:
//! it appends a time-stamped line every 50 ms (from itself and from a
//! background child in its group) and `done` when it finishes. The first run
//! is long, so that the fault hits it; later runs are short. The log proves
//! what happened: the runs' intervals are disjoint, and one run finished.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::support::db::Postgres;
use crate::support::relay::Relay;
use crate::support::{secs, wait_lines, Running, Test};

/// Like a real migration tool, it finishes its current step (2 s of ticks)
/// when asked to stop, so a holder that released the lock before its
/// command was gone would show as an overlap.
const RECORD: &str = r#"stopping=0; after=0
trap 'stopping=1' TERM
log="$1"; id="$$"
if [ -e "$log.first" ]; then ticks=10; else : > "$log.first"; ticks=600; fi
echo "$id start $(date +%s%N)" >> "$log"
( trap - TERM; while :; do echo "$id tick $(date +%s%N)" >> "$log"; sleep 0.05; done ) &
i=0
while [ "$i" -lt "$ticks" ]; do
  echo "$id tick $(date +%s%N)" >> "$log"; i=$((i+1)); sleep 0.05
  if [ "$stopping" = 1 ]; then after=$((after+1)); [ "$after" -ge 40 ] && exit 1; fi
done
kill $!
echo "$id done $(date +%s%N)" >> "$log"
"#;

/// The shared recorder and its log, outside every replica's folder.
struct Recorder {
    dir: tempfile::TempDir,
}

impl Recorder {
    fn new() -> Recorder {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("record.sh"), RECORD).expect("write record.sh");
        Recorder { dir }
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("runs.log")
    }

    /// A `supervisor migrate` replica whose command is the recorder. The
    /// fingerprint makes a finished run the only one: later replicas skip it.
    fn replica(&self, url: &str) -> Test {
        let config = format!(
            "[migrate]\ncommand = 'sh {} {}'\nfingerprint = [\"prisma/migrations/**\"]\nlock_timeout = \"2m\"\n\n[process.app]\ncommand = \"true\"\n",
            self.dir.path().join("record.sh").display(),
            self.log().display()
        );
        Test::new()
            .config(&config)
            .file("prisma/migrations/1_init/migration.sql", "-- the tool's own input")
            .env("DATABASE_URL", url)
            .args(["migrate"])
    }

    /// Waits until the first run has started and ticked a few times.
    fn wait_first_run(&self) {
        wait_lines(&self.log(), 5, secs(30));
    }

    fn runs(&self) -> Vec<Run> {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        let mut runs: BTreeMap<String, Run> = BTreeMap::new();
        for line in text.lines() {
            let mut words = line.split(' ');
            let (Some(id), Some(kind), Some(at)) = (words.next(), words.next(), words.next()) else {
                continue;
            };
            let Ok(at) = at.parse::<u128>() else { continue };
            let run = runs.entry(id.to_string()).or_insert(Run {
                id: id.to_string(),
                first: at,
                last: at,
                done: false,
            });
            run.first = run.first.min(at);
            run.last = run.last.max(at);
            run.done |= kind == "done";
        }
        let mut runs: Vec<Run> = runs.into_values().collect();
        runs.sort_by_key(|run| run.first);
        runs
    }

    /// No two runs overlapped, and exactly one finished.
    fn assert_exactly_once(&self) -> Vec<Run> {
        let runs = self.runs();
        for pair in runs.windows(2) {
            assert!(
                pair[0].last < pair[1].first,
                "two commands ran at once: {:?} until {} ns, {:?} from {} ns ({} ms of overlap)\n{runs:#?}",
                pair[0].id,
                pair[0].last,
                pair[1].id,
                pair[1].first,
                (pair[0].last - pair[1].first) / 1_000_000
            );
        }
        let done = runs.iter().filter(|run| run.done).count();
        assert_eq!(done, 1, "the work must be done exactly once: {runs:#?}");
        runs
    }

    /// Nothing of any run is left: no process runs the recorder any more.
    fn assert_no_run_left(&self) {
        let needle = self.dir.path().join("record.sh");
        let deadline = Instant::now() + secs(10);
        loop {
            let left = crate::support::processes_mentioning(&needle.to_string_lossy());
            if left.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "still running the recorder: {left:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[derive(Debug)]
#[allow(dead_code)]
struct Run {
    id: String,
    first: u128,
    last: u128,
    done: bool,
}

/// Starts the holder, waits for its (long) run, then starts a waiter.
fn holder_and_waiter(recorder: &Recorder, holder: Test, url: &str) -> (Running, Running) {
    let holder = holder.start();
    recorder.wait_first_run();
    let waiter = recorder.replica(url).start();
    waiter.wait_stderr("waiting for the migration lock held by", secs(30));
    (holder, waiter)
}

#[test]
fn a_sigkilled_holder_that_is_not_pid1_takes_its_command_with_it() {
    let pg = Postgres::start();
    let url = pg.create_database("app");
    let recorder = Recorder::new();
    let (mut holder, mut waiter) = holder_and_waiter(&recorder, recorder.replica(&url), &url);
    holder.signal("KILL");
    let _ = holder.wait_exit(secs(10));
    assert_eq!(waiter.wait_exit(secs(90)), 0, "{}", waiter.stderr.text());
    let stderr = waiter.stderr.text();
    assert!(stderr.contains("which did not finish: waiting 12s"), "{stderr}");
    recorder.assert_exactly_once();
    recorder.assert_no_run_left();
}

#[test]
fn a_terminated_lock_session_stops_the_command_before_anyone_else_runs_it() {
    let pg = Postgres::start();
    let url = pg.create_database("app");
    let recorder = Recorder::new();
    let (mut holder, mut waiter) = holder_and_waiter(&recorder, recorder.replica(&url), &url);
    let holder_session = pg.sql(
        "app",
        "SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted",
    );
    pg.sql("postgres", &format!("SELECT pg_terminate_backend({holder_session})"));
    assert_eq!(holder.wait_exit(secs(20)), 69, "{}", holder.stderr.text());
    let stderr = holder.stderr.text();
    assert!(
        stderr.contains("the migration lock was lost while the migration command ran"),
        "{stderr}"
    );
    assert_eq!(waiter.wait_exit(secs(90)), 0, "{}", waiter.stderr.text());
    recorder.assert_exactly_once();
    recorder.assert_no_run_left();
}

#[test]
fn a_server_restart_under_a_running_command_never_lets_two_run() {
    let pg = Postgres::start();
    let url = pg.create_database("app");
    let recorder = Recorder::new();
    let (mut holder, mut waiter) = holder_and_waiter(&recorder, recorder.replica(&url), &url);
    pg.stop_server("fast");
    pg.start_server();
    assert_eq!(holder.wait_exit(secs(20)), 69, "{}", holder.stderr.text());
    assert_eq!(waiter.wait_exit(secs(90)), 0, "{}", waiter.stderr.text());
    recorder.assert_exactly_once();
    recorder.assert_no_run_left();
}

#[test]
fn a_frozen_path_makes_the_holder_give_up_in_bounded_time() {
    let pg = Postgres::start();
    let url = pg.create_database("app");
    let relay = Relay::start(pg.port);
    let through_relay = format!("postgres://postgres@127.0.0.1:{}/app", relay.port);
    let recorder = Recorder::new();
    let (mut holder, mut waiter) = holder_and_waiter(&recorder, recorder.replica(&through_relay), &url);
    // The server never learns that the holder went quiet: its session, and
    // the lock, stay as they are while the relay is frozen.
    relay.freeze();
    let frozen_at = Instant::now();
    assert_eq!(holder.wait_exit(secs(30)), 69, "{}", holder.stderr.text());
    let gave_up = frozen_at.elapsed();
    let stderr = holder.stderr.text();
    assert!(stderr.contains("did not answer a heartbeat"), "{stderr}");
    // Its command is gone when it exits, though the lock is still held.
    recorder.assert_no_run_left();
    assert!(waiter.stderr.text().matches("waiting for the migration lock").count() >= 1);
    // The path heals (the relay closes): the server ends the session.
    relay.cut();
    assert_eq!(waiter.wait_exit(secs(90)), 0, "{}", waiter.stderr.text());
    recorder.assert_exactly_once();
    eprintln!("frozen path: the holder gave up after {gave_up:?}");
}

/// iptables rules dropping one TCP connection on loopback, both ways;
/// removed when dropped.
struct Partition {
    rules: Vec<Vec<String>>,
}

impl Partition {
    fn drop_connection(port_a: u16, port_b: u16) -> Partition {
        let rules: Vec<Vec<String>> = [(port_a, port_b), (port_b, port_a)]
            .iter()
            .map(|(from, to)| {
                [
                    "INPUT",
                    "-i",
                    "lo",
                    "-p",
                    "tcp",
                    "--sport",
                    &from.to_string(),
                    "--dport",
                    &to.to_string(),
                    "-j",
                    "DROP",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect()
            })
            .collect();
        for rule in &rules {
            let status = std::process::Command::new("iptables")
                .arg("-I")
                .args(rule)
                .status()
                .expect("iptables not found: run ./scripts/test.sh, or `apt-get install iptables`");
            assert!(status.success(), "iptables -I {rule:?} failed");
        }
        Partition { rules }
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        for rule in &self.rules {
            let _ = std::process::Command::new("iptables").arg("-D").args(rule).status();
        }
    }
}

#[test]
fn a_silent_partition_of_the_lock_connection_never_lets_two_run() {
    let pg = Postgres::start();
    let url = pg.create_database("app");
    let recorder = Recorder::new();
    let (mut holder, mut waiter) = holder_and_waiter(&recorder, recorder.replica(&url), &url);
    let client_port: u16 = pg
        .sql(
            "app",
            "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted",
        )
        .parse()
        .expect("the holder's client port");
    let partition = Partition::drop_connection(client_port, pg.port);
    let cut_at = Instant::now();
    assert_eq!(holder.wait_exit(secs(30)), 69, "{}", holder.stderr.text());
    let gave_up = cut_at.elapsed();
    recorder.assert_no_run_left();
    assert_eq!(waiter.wait_exit(secs(120)), 0, "{}", waiter.stderr.text());
    let taken_over = cut_at.elapsed();
    drop(partition);
    recorder.assert_exactly_once();
    eprintln!("silent partition: the holder gave up after {gave_up:?}, the waiter finished after {taken_over:?}");
}

#[test]
fn sigterm_stops_supervisor_migrate_and_its_command_then_releases_the_lock() {
    let pg = Postgres::start();
    let url = pg.create_database("app");
    let recorder = Recorder::new();
    for as_pid1 in [false, true] {
        let _ = std::fs::remove_file(recorder.log());
        let _ = std::fs::remove_file(recorder.log().with_extension("log.first"));
        if as_pid1 {
            pg.sql("app", "DELETE FROM _supervisor_migrate_state");
        }
        let holder = recorder.replica(&url);
        let holder = if as_pid1 { holder.pid1() } else { holder };
        let (mut holder, mut waiter) = holder_and_waiter(&recorder, holder, &url);
        holder.signal("TERM");
        assert_eq!(holder.wait_exit(secs(15)), 143, "{}", holder.stderr.text());
        assert_eq!(waiter.wait_exit(secs(60)), 0, "{}", waiter.stderr.text());
        // A clean stop clears the lease: the next holder need not wait it out.
        let stderr = waiter.stderr.text();
        assert!(!stderr.contains("did not finish"), "{stderr}");
        let runs = recorder.assert_exactly_once();
        assert!(!runs[0].done && runs[1].done, "{runs:#?}");
        recorder.assert_no_run_left();
    }
}

/// Issue: waiters each kept a connection open, and the holder's own tool got
/// `too many clients`. 32 replicas on a server with 10 connection slots,
/// each running a tool that needs a connection of its own under the lock:
/// every one succeeds.
#[test]
fn thirty_two_waiters_leave_connections_for_the_holders_tool() {
    let pg = Postgres::start_with("-c max_connections=10 -c max_wal_senders=0");
    let url = pg.create_database("app");
    pg.sql("app", "CREATE TABLE runs (backend int, at timestamptz)");
    let config = "[migrate]\ncommand = 'psql -X -q -v ON_ERROR_STOP=1 -d \"$DATABASE_URL\" -c \"INSERT INTO runs VALUES (pg_backend_pid(), clock_timestamp())\" -c \"SELECT pg_sleep(0.1)\"'\nlock_timeout = \"5m\"\nconnect_timeout = \"5m\"\n\n[process.app]\ncommand = \"true\"\n";
    let mut replicas: Vec<Running> = (0..32)
        .map(|_| {
            Test::new()
                .config(config)
                .env("DATABASE_URL", &url)
                .args(["migrate"])
                .start()
        })
        .collect();
    for replica in &mut replicas {
        assert_eq!(replica.wait_exit(secs(240)), 0, "{}", replica.stderr.text());
    }
    assert_eq!(pg.sql("app", "SELECT count(*) FROM runs"), "32");
}
