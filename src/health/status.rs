//! The health snapshot: what `/health`, `/readyz` and `/metrics` report.
//!
//! The supervise loop and the lifecycle write it through a [`Board`]; the
//! server only reads the latest copy, so answering never waits on a probe
//! or on the loop. It holds names, states and numbers: no environment
//! value, no command line.

use std::fmt::Write as _;
use std::time::{Instant, SystemTime};

use serde::Serialize;
use tokio::sync::watch;

/// Where the lifecycle is (SPEC §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Starting,
    WaitingFor,
    Migrating,
    Tasks,
    Running,
    /// A stop signal came and `drain` runs: not ready, the children still serve.
    Draining,
    Stopping,
}

impl Phase {
    pub const ALL: [Phase; 7] = [
        Phase::Starting,
        Phase::WaitingFor,
        Phase::Migrating,
        Phase::Tasks,
        Phase::Running,
        Phase::Draining,
        Phase::Stopping,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::WaitingFor => "waiting_for",
            Phase::Migrating => "migrating",
            Phase::Tasks => "tasks",
            Phase::Running => "running",
            Phase::Draining => "draining",
            Phase::Stopping => "stopping",
        }
    }
}

/// The overall verdict (SPEC §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Starting,
    Degraded,
    Draining,
    Stopping,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessStatus {
    /// Shared with the plan: publishing after every event must not allocate.
    pub name: std::sync::Arc<str>,
    pub instance: u32,
    pub state: &'static str,
    pub pid: Option<i32>,
    pub restarts: u32,
    pub ready: bool,
    /// Counts as healthy: running and ready, or a one-shot that completed with 0.
    #[serde(skip)]
    pub healthy: bool,
    /// When the current run started (`supervisor status` shows the uptime).
    #[serde(skip)]
    pub started: Option<std::time::Instant>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Migrations {
    /// none | pending | running | up_to_date | applied | failed
    pub state: &'static str,
    pub applied: u32,
    pub duration_seconds: f64,
}

/// One `[cron.NAME]` job, as /health and `supervisor status` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CronStatus {
    pub name: std::sync::Arc<str>,
    pub schedule: String,
    pub timezone: String,
    pub running: bool,
    /// RFC 3339, UTC.
    pub last_start: Option<String>,
    pub last_exit_code: Option<i32>,
    pub next_run: Option<String>,
    pub runs: CronRuns,
}

/// Runs of a job since the supervisor started, by result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CronRuns {
    pub ok: u64,
    pub failed: u64,
    pub timeout: u64,
    pub skipped: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub phase: Phase,
    /// A critical failure is stopping the run.
    pub failed: bool,
    pub migrations: Migrations,
    pub processes: Vec<ProcessStatus>,
    /// A failed run never makes /health fail (SPEC §10): jobs are listed, not judged.
    pub cron: Vec<CronStatus>,
}

impl Snapshot {
    /// The verdict and, when not ok, why.
    pub fn status(&self) -> (Status, Option<String>) {
        match self.phase {
            Phase::Stopping | Phase::Draining if self.failed => {
                (Status::Failed, Some("a critical process failed".to_string()))
            }
            Phase::Draining => (
                Status::Draining,
                Some("the container stops soon: send no new requests".to_string()),
            ),
            Phase::Stopping => (Status::Stopping, Some("stopping".to_string())),
            Phase::Running => match self.processes.iter().find(|p| !p.healthy) {
                None => (Status::Ok, None),
                Some(p) => {
                    let what = match p.state {
                        "running" => "not ready",
                        "backoff" => "waiting to be restarted",
                        "waiting" => "waiting for its dependencies",
                        "blocked" => "blocked: a dependency failed",
                        "failed" => "failed for good",
                        "held" => "held by `supervisor stop` (`supervisor start` resumes it)",
                        other => other,
                    };
                    (Status::Degraded, Some(format!("{}.{} is {what}", p.name, p.instance)))
                }
            },
            phase => (Status::Starting, Some(phase.as_str().replace('_', " "))),
        }
    }
}

/// Where the snapshot is written; cheap to clone.
#[derive(Clone)]
pub struct Board {
    tx: watch::Sender<Snapshot>,
    started: Instant,
}

impl Default for Board {
    fn default() -> Self {
        Board::new()
    }
}

impl Board {
    pub fn new() -> Board {
        let snapshot = Snapshot {
            phase: Phase::Starting,
            failed: false,
            migrations: Migrations {
                state: "none",
                ..Migrations::default()
            },
            processes: Vec::new(),
            cron: Vec::new(),
        };
        Board {
            tx: watch::channel(snapshot).0,
            started: Instant::now(),
        }
    }

    pub fn set_phase(&self, phase: Phase) {
        self.tx
            .send_if_modified(|s| std::mem::replace(&mut s.phase, phase) != phase);
    }

    pub fn set_failed(&self) {
        self.tx.send_if_modified(|s| !std::mem::replace(&mut s.failed, true));
    }

    pub fn set_migrations(&self, migrations: Migrations) {
        self.tx.send_modify(|s| s.migrations = migrations);
    }

    /// Readers (/health waiters) hear of a change only when there is one.
    fn set_if_changed<T: PartialEq>(&self, value: T, field: impl FnOnce(&mut Snapshot) -> &mut T) {
        self.tx.send_if_modified(|s| {
            let slot = field(s);
            if *slot == value {
                false
            } else {
                *slot = value;
                true
            }
        });
    }

    pub fn set_processes(&self, processes: Vec<ProcessStatus>) {
        self.set_if_changed(processes, |s| &mut s.processes);
    }

    pub fn set_cron(&self, cron: Vec<CronStatus>) {
        self.set_if_changed(cron, |s| &mut s.cron);
    }

    /// The phase alone, without copying the snapshot.
    pub fn phase(&self) -> Phase {
        self.tx.borrow().phase
    }

    pub fn snapshot(&self) -> Snapshot {
        self.tx.borrow().clone()
    }

    pub fn uptime_seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

#[derive(Serialize)]
struct HealthBody<'a> {
    status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    timestamp: String,
    uptime_seconds: f64,
    phase: Phase,
    migrations: &'a Migrations,
    processes: &'a [ProcessStatus],
    #[serde(skip_serializing_if = "<[CronStatus]>::is_empty")]
    cron: &'a [CronStatus],
}

fn health_body(snapshot: &Snapshot, uptime_seconds: f64) -> HealthBody<'_> {
    let (status, reason) = snapshot.status();
    HealthBody {
        status,
        reason,
        timestamp: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        uptime_seconds: (uptime_seconds * 1000.0).round() / 1000.0,
        phase: snapshot.phase,
        migrations: &snapshot.migrations,
        processes: &snapshot.processes,
        cron: &snapshot.cron,
    }
}

/// `/health`'s JSON body.
pub fn health_json(snapshot: &Snapshot, uptime_seconds: f64) -> String {
    serde_json::to_string(&health_body(snapshot, uptime_seconds)).unwrap_or_else(|_| "{}".to_string()) + "\n"
}

/// The same document as a value, for `supervisor status` to add to.
pub fn health_document(snapshot: &Snapshot, uptime_seconds: f64) -> serde_json::Value {
    serde_json::to_value(health_body(snapshot, uptime_seconds)).unwrap_or_default()
}

/// `/metrics` in the Prometheus text exposition format (version 0.0.4).
pub fn metrics_text(snapshot: &Snapshot, uptime_seconds: f64) -> String {
    fn family(out: &mut String, name: &str, kind: &str, help: &str) {
        let _ = writeln!(out, "# HELP supervisor_{name} {help}\n# TYPE supervisor_{name} {kind}");
    }
    let mut out = String::new();
    /// name, type, help, and the value for one instance.
    type Family = (&'static str, &'static str, &'static str, fn(&ProcessStatus) -> u64);
    let per_process: [Family; 3] = [
        (
            "up",
            "gauge",
            "Whether the process instance is running (1) or not (0).",
            |p| u64::from(p.pid.is_some()),
        ),
        (
            "ready",
            "gauge",
            "Whether the process instance is ready (1) or not (0).",
            |p| u64::from(p.ready),
        ),
        (
            "restarts_total",
            "counter",
            "Restarts of the process instance since the supervisor started.",
            |p| u64::from(p.restarts),
        ),
    ];
    for (name, kind, help, value) in per_process {
        family(&mut out, name, kind, help);
        for p in &snapshot.processes {
            let _ = writeln!(
                out,
                "supervisor_{name}{{process=\"{}\",instance=\"{}\"}} {}",
                p.name,
                p.instance,
                value(p)
            );
        }
    }
    family(
        &mut out,
        "phase",
        "gauge",
        "The lifecycle phase the supervisor is in (1 for the current one).",
    );
    for phase in Phase::ALL {
        let _ = writeln!(
            out,
            "supervisor_phase{{phase=\"{}\"}} {}",
            phase.as_str(),
            u8::from(phase == snapshot.phase)
        );
    }
    if !snapshot.cron.is_empty() {
        family(
            &mut out,
            "cron_runs_total",
            "counter",
            "Runs of a scheduled job since the supervisor started, by result (ok, failed, timeout, skipped).",
        );
        for job in &snapshot.cron {
            let runs = job.runs;
            for (result, count) in [
                ("ok", runs.ok),
                ("failed", runs.failed),
                ("timeout", runs.timeout),
                ("skipped", runs.skipped),
            ] {
                let _ = writeln!(
                    out,
                    "supervisor_cron_runs_total{{job=\"{}\",result=\"{result}\"}} {count}",
                    job.name
                );
            }
        }
    }
    family(&mut out, "healthy", "gauge", "1 when /health answers 200.");
    let _ = writeln!(
        out,
        "supervisor_healthy {}",
        u8::from(snapshot.status().0 == Status::Ok)
    );
    family(
        &mut out,
        "migrations_applied_total",
        "counter",
        "Migrations this replica applied at start-up.",
    );
    let _ = writeln!(
        out,
        "supervisor_migrations_applied_total {}",
        snapshot.migrations.applied
    );
    family(
        &mut out,
        "migration_duration_seconds",
        "gauge",
        "How long the migration phase took.",
    );
    let _ = writeln!(
        out,
        "supervisor_migration_duration_seconds {}",
        snapshot.migrations.duration_seconds
    );
    family(
        &mut out,
        "uptime_seconds",
        "gauge",
        "Seconds since the supervisor started.",
    );
    let _ = writeln!(out, "supervisor_uptime_seconds {uptime_seconds:.3}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(state: &'static str, ready: bool, healthy: bool) -> ProcessStatus {
        ProcessStatus {
            name: "web".into(),
            instance: 0,
            state,
            pid: Some(7),
            restarts: 1,
            ready,
            healthy,
            started: None,
        }
    }

    #[test]
    fn status_follows_phase_and_processes() {
        let board = Board::new();
        assert_eq!(board.snapshot().status().0, Status::Starting);
        board.set_phase(Phase::Running);
        board.set_processes(vec![process("running", true, true)]);
        assert_eq!(board.snapshot().status(), (Status::Ok, None));
        board.set_processes(vec![process("running", false, false)]);
        assert_eq!(
            board.snapshot().status(),
            (Status::Degraded, Some("web.0 is not ready".into()))
        );
        board.set_processes(vec![process("failed", false, false)]);
        assert_eq!(
            board.snapshot().status(),
            (Status::Degraded, Some("web.0 is failed for good".into()))
        );
        board.set_phase(Phase::Draining);
        assert_eq!(board.snapshot().status().0, Status::Draining);
        board.set_phase(Phase::Stopping);
        assert_eq!(board.snapshot().status().0, Status::Stopping);
        board.set_failed();
        assert_eq!(board.snapshot().status().0, Status::Failed);
    }

    #[test]
    fn metrics_name_every_family_once() {
        let board = Board::new();
        board.set_processes(vec![process("running", true, true)]);
        let text = metrics_text(&board.snapshot(), 1.5);
        assert!(text.contains("supervisor_up{process=\"web\",instance=\"0\"} 1\n"));
        assert!(text.contains("supervisor_restarts_total{process=\"web\",instance=\"0\"} 1\n"));
        assert!(text.contains("supervisor_phase{phase=\"starting\"} 1\n"));
        assert_eq!(text.matches("# TYPE supervisor_up ").count(), 1);
    }
}
