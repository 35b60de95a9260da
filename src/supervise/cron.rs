//! `[cron.NAME]` jobs in the loop (SPEC §10): when each is due, its run,
//! its timeout, overlap and shutdown. What is due is decided on the wall
//! clock by `crate::cron::wake`; the loop only ever sleeps until the next
//! due instant (no tick). A run is a `Job` (its own process group, output
//! prefixed `cron.NAME |`); its exit comes back as an `Event::CronExited`.
//! A failed run is logged and counted, never fatal.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::{Event, Supervisor};
use crate::config::DEFAULT_STOP_TIMEOUT;
use crate::cron::{self, Overlap, Wake};
use crate::health::status::{CronRuns, CronStatus};
use crate::job::{Job, Runner};
use crate::pid1::spawn;
use crate::pid1::ExitStatus;
use crate::plan::PlannedCron;

/// One job and what the loop knows of it.
pub struct Scheduled {
    planned: Arc<PlannedCron>,
    name: Arc<str>,
    /// The next occurrence by the wall clock, and when the loop wakes for it.
    due: Option<Timestamp>,
    wake_at: Option<Instant>,
    run: Option<Run>,
    /// `overlap = "replace"`: the old run was told to stop; start when it has.
    replace_pending: bool,
    last_start: Option<Timestamp>,
    last_exit: Option<i32>,
    runs: CronRuns,
    next_id: u64,
}

struct Run {
    id: u64,
    pid: Pid,
    /// SIGTERM to the group at this instant (`timeout`).
    timeout_at: Option<Instant>,
    /// SIGKILL to the group at this instant (5 s after a SIGTERM of ours).
    kill_at: Option<Instant>,
    timed_out: bool,
}

impl Scheduled {
    pub fn new(planned: PlannedCron) -> Scheduled {
        let name: Arc<str> = format!("cron.{}", planned.job.name).into();
        Scheduled {
            planned: Arc::new(planned),
            name,
            due: None,
            wake_at: None,
            run: None,
            replace_pending: false,
            last_start: None,
            last_exit: None,
            runs: CronRuns::default(),
            next_id: 0,
        }
    }

    /// When the loop must wake for this job, if ever.
    pub fn deadline(&self) -> Option<Instant> {
        let run = self.run.as_ref();
        [
            self.wake_at,
            run.and_then(|r| r.timeout_at),
            run.and_then(|r| r.kill_at),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn is_running(&self) -> bool {
        self.run.is_some()
    }

    pub fn status(&self) -> CronStatus {
        let rfc3339 = |at: Timestamp| format!("{at:.3}");
        CronStatus {
            name: self.planned.job.name.as_str().into(),
            schedule: self.planned.job.schedule.text.clone(),
            timezone: self.planned.job.schedule.timezone_name.clone(),
            running: self.run.is_some(),
            last_start: self.last_start.map(rfc3339),
            last_exit_code: self.last_exit,
            next_run: self.due.map(rfc3339),
            runs: self.runs,
        }
    }
}

impl Supervisor {
    /// The processes run: every job gets its first occurrence.
    pub(super) fn schedule_crons(&mut self, now: Instant) {
        let wall = Timestamp::now();
        for job in &mut self.crons {
            job.due = job.planned.job.schedule.next_after(wall);
            job.wake_at = job.due.map(|due| now + cron::until(due, wall));
            if let Some(due) = job.due {
                tracing::info!(
                    job = %job.name,
                    schedule = %job.planned.job.schedule.text,
                    timezone = %job.planned.job.schedule.timezone_name,
                    next = %format!("{due:.0}"),
                    "scheduled"
                );
            }
        }
    }

    /// Timeouts and kills always; due runs only while the run is `Running`
    /// and every process has been started (SPEC §10: jobs start once the
    /// processes are running; a due run waits for that, it is not lost).
    pub(super) fn advance_crons(&mut self, now: Instant) {
        // After every wake-up of the loop: nothing to scan without jobs.
        if self.crons.is_empty() {
            return;
        }
        let starting = self
            .instances
            .iter()
            .any(|i| *i.state() == super::process::State::Waiting);
        for at in 0..self.crons.len() {
            let job = &mut self.crons[at];
            if let Some(run) = &mut job.run {
                if run.kill_at.is_some_and(|t| t <= now) {
                    run.kill_at = None;
                    spawn::signal_group(run.pid, Signal::SIGKILL);
                }
                if run.timeout_at.is_some_and(|t| t <= now) {
                    run.timeout_at = None;
                    run.timed_out = true;
                    run.kill_at = Some(now + DEFAULT_STOP_TIMEOUT);
                    tracing::warn!(
                        job = %job.name,
                        pid = run.pid.as_raw(),
                        "still running after its timeout of {}: stopping its group",
                        humantime::format_duration(job.planned.job.timeout.unwrap_or_default())
                    );
                    spawn::stop_group(run.pid, Signal::SIGTERM);
                }
            }
            if self.is_winding_down() || starting {
                continue;
            }
            let job = &mut self.crons[at];
            let (Some(due), Some(wake_at)) = (job.due, job.wake_at) else {
                continue;
            };
            if wake_at > now {
                continue;
            }
            let wall = Timestamp::now();
            match cron::wake(&job.planned.job.schedule, due, wall) {
                Wake::NotYet(left) => job.wake_at = Some(now + left),
                Wake::Run { next } => {
                    job.due = next;
                    job.wake_at = next.map(|next| now + cron::until(next, wall));
                    self.fire(at, now);
                }
            }
        }
    }

    /// An occurrence is due: start it, or apply the overlap policy.
    fn fire(&mut self, at: usize, now: Instant) {
        let job = &mut self.crons[at];
        let Some(run) = &mut job.run else {
            self.start_cron(at);
            return;
        };
        match job.planned.job.overlap {
            Overlap::Skip => {
                job.runs.skipped += 1;
                tracing::warn!(
                    job = %job.name,
                    pid = run.pid.as_raw(),
                    "the previous run is still going: skipping this one (overlap = \"skip\")"
                );
            }
            Overlap::Replace if !job.replace_pending => {
                job.replace_pending = true;
                run.timeout_at = None;
                run.kill_at = Some(now + DEFAULT_STOP_TIMEOUT);
                tracing::info!(
                    job = %job.name,
                    pid = run.pid.as_raw(),
                    "the previous run is still going: stopping it for this one (overlap = \"replace\")"
                );
                spawn::stop_group(run.pid, Signal::SIGTERM);
            }
            Overlap::Replace => {}
        }
    }

    fn start_cron(&mut self, at: usize) {
        let runner = Runner {
            reaper: &self.reaper,
            output: &self.output,
            format: self.options.format,
        };
        let job = &mut self.crons[at];
        let planned = job.planned.clone();
        let config = &planned.job;
        job.last_start = Some(Timestamp::now());
        let started = Job::start(
            &runner,
            &job.name,
            &config.command,
            config.cwd.as_deref(),
            &planned.env,
            planned.user.as_ref(),
        );
        let mut handle = match started {
            Ok(handle) => handle,
            Err(err) => {
                job.runs.failed += 1;
                job.last_exit = Some(spawn::spawn_error_code(&err));
                tracing::error!(job = %job.name, error = %err, "cannot start `{}`", config.command);
                return;
            }
        };
        let id = job.next_id;
        job.next_id += 1;
        let pid = handle.pid;
        job.run = Some(Run {
            id,
            pid,
            timeout_at: config.timeout.map(|timeout| Instant::now() + timeout),
            kill_at: None,
            timed_out: false,
        });
        tracing::info!(job = %job.name, pid = pid.as_raw(), "started");
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            let status = handle.wait().await;
            let _ = events.send(Event::CronExited { job: at, id, status });
        });
    }

    pub(super) fn on_cron_exit(&mut self, at: usize, id: u64, status: ExitStatus) {
        let stopping = self.is_stopping();
        let job = &mut self.crons[at];
        let Some(run) = job.run.take_if(|run| run.id == id) else {
            return;
        };
        job.last_exit = Some(status.code());
        let next = job
            .due
            .map(|due| format!("{due:.0}"))
            .unwrap_or_else(|| "none".to_string());
        if run.timed_out {
            job.runs.timeout += 1;
            tracing::warn!(job = %job.name, pid = run.pid.as_raw(), exit_code = status.code(), next = %next, "timed out: {status}");
        } else if status.success() || stopping {
            job.runs.ok += u64::from(status.success());
            tracing::info!(job = %job.name, pid = run.pid.as_raw(), exit_code = status.code(), next = %next, "finished");
        } else if job.replace_pending {
            tracing::info!(job = %job.name, pid = run.pid.as_raw(), exit_code = status.code(), "replaced: {status}");
        } else {
            job.runs.failed += 1;
            tracing::warn!(job = %job.name, pid = run.pid.as_raw(), exit_code = status.code(), next = %next, "failed: {status}");
        }
        if std::mem::take(&mut job.replace_pending) && !self.is_winding_down() {
            self.start_cron(at);
        }
    }

    /// Draining or stopping: no new runs.
    pub(super) fn unschedule_crons(&mut self) {
        for job in &mut self.crons {
            job.wake_at = None;
            job.due = None;
            job.replace_pending = false;
        }
    }

    /// The stop: each run's group gets SIGTERM, SIGKILL after 5 s, like a process's.
    pub(super) fn stop_crons(&mut self, now: Instant, grace: Duration) {
        self.unschedule_crons();
        for job in &mut self.crons {
            if let Some(run) = &mut job.run {
                run.timeout_at = None;
                run.kill_at = Some(now + grace);
                tracing::info!(job = %job.name, pid = run.pid.as_raw(), "stopping the running job");
                spawn::stop_group(run.pid, Signal::SIGTERM);
            }
        }
    }

    /// A second stop signal.
    pub(super) fn kill_crons(&mut self) {
        for job in &mut self.crons {
            if let Some(run) = &mut job.run {
                run.kill_at = None;
                spawn::signal_group(run.pid, Signal::SIGKILL);
            }
        }
    }
}
