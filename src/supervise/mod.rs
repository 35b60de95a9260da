//! The one event loop: start, watch, restart and stop every process.
//!
//! # Theory of operation
//!
//! [`Supervisor::run`] owns every [`Instance`]. It waits on exactly three
//! things: a signal (from `pid1::signals`), an [`Event`] (a child exited:
//! the reaper calls back into our channel), or the next deadline (a backoff
//! ending, a stop timeout running out). There is no polling tick: with
//! nothing to do, the loop sleeps until something happens.
//!
//! After every wake-up, [`Supervisor::advance`] brings the world in line with
//! the states: it fires due deadlines, starts what is waiting and satisfied,
//! blocks what can never start, and, once stopping, signals each process as
//! soon as everything that depends on it is down. Exits feed the restart
//! policy (`restart`), and a critical process failing for good starts the
//! stop. The loop ends when every instance is terminal; `finish` then
//! deals with stragglers, drains the output relays and returns the
//! [`Outcome`] that `main` turns into our exit code (SPEC §7).

mod graph;
pub mod probes;
pub mod process;
pub mod restart;

use std::ffi::OsString;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::health::{self, Board};
use crate::logs::lines::{self, Label};
use crate::logs::Output;
use crate::pid1::signals::{meaning, Meaning};
use crate::pid1::spawn::{self, Spec};
use crate::pid1::{ExitStatus, Reaper};
use crate::plan::PlannedProcess;

use graph::{Graph, Verdict};
use process::{Instance, State};
use restart::Decision;

/// Everything the loop reacts to besides signals and deadlines.
#[derive(Debug)]
pub enum Event {
    Exited {
        instance: usize,
        pid: Pid,
        status: ExitStatus,
    },
    /// A probe of the run with `pid` passed or failed once.
    Probe {
        instance: usize,
        pid: Pid,
        kind: probes::Kind,
        passed: bool,
    },
}

/// Why the supervisor is stopping.
#[derive(Debug, Clone, PartialEq, Eq)]
enum StopReason {
    Signal(Signal),
    /// A critical process failed for good, or can never start; exit with `code`.
    Failed {
        code: i32,
    },
    /// Every process finished on its own.
    Finished,
}

/// How `run` ended, for `main` to turn into an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub code: i32,
}

/// Per-run settings that are not per-process config.
pub struct Options {
    pub format: lines::Format,
    /// We are PID 1: stragglers anywhere in the namespace are ours to stop.
    pub is_init: bool,
    /// Where /health reads what we publish.
    pub board: Board,
}

pub struct Supervisor {
    processes: Vec<Arc<PlannedProcess>>,
    instances: Vec<Instance>,
    graph: Graph,
    events_tx: mpsc::UnboundedSender<Event>,
    events_rx: mpsc::UnboundedReceiver<Event>,
    reaper: Reaper,
    output: Output,
    options: Options,
    /// Tasks relaying child pipes to our output; drained before we exit.
    relays: JoinSet<()>,
    stopping: Option<StopReason>,
    /// A second stop signal arrived: everything left is SIGKILLed.
    forced: bool,
    /// The first non-critical failure, reported as our code if all else finishes.
    first_failure: Option<i32>,
}

impl Supervisor {
    pub fn new(planned: Vec<PlannedProcess>, reaper: Reaper, output: Output, options: Options) -> Supervisor {
        let names: Vec<&str> = planned.iter().map(|p| &*p.name).collect();
        let depends_on: Vec<Vec<_>> = planned
            .iter()
            .map(|p| {
                p.config
                    .depends_on
                    .iter()
                    .map(|d| (d.process.clone(), d.condition))
                    .collect()
            })
            .collect();
        let graph = Graph::new(&names, &depends_on);
        let processes: Vec<Arc<PlannedProcess>> = planned.into_iter().map(Arc::new).collect();
        let mut instances = Vec::new();
        for (index, process) in processes.iter().enumerate() {
            for instance in 0..process.instances {
                instances.push(Instance {
                    process: index,
                    index: instance,
                    label: Arc::new(Label::new(process.name.clone(), instance, index, options.format)),
                    state: State::Waiting,
                    history: restart::History::default(),
                    restarts: 0,
                    ever_started: false,
                    last_exit: None,
                    probes: Vec::new(),
                    ready_passes: 0,
                    ready_failures: 0,
                    live_failures: 0,
                });
            }
        }
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        Supervisor {
            processes,
            instances,
            graph,
            events_tx,
            events_rx,
            reaper,
            output,
            options,
            relays: JoinSet::new(),
            stopping: None,
            forced: false,
            first_failure: None,
        }
    }

    /// Supervises until every process is down, then stops what is left.
    pub async fn run(mut self, signals: &mut mpsc::UnboundedReceiver<Signal>) -> Outcome {
        // Signals that arrived before we got here are acted on before anything starts.
        while let Ok(signal) = signals.try_recv() {
            self.on_signal(signal);
        }
        if self.stopping.is_none() {
            self.options.board.set_phase(health::Phase::Running);
        }
        self.advance(Instant::now());
        self.publish();
        while !self.is_done() {
            let deadline = self.next_deadline();
            tokio::select! {
                biased;
                Some(signal) = signals.recv() => self.on_signal(signal),
                Some(event) = self.events_rx.recv() => self.on_event(event),
                () = sleep_until(deadline) => {}
            }
            self.advance(Instant::now());
            self.publish();
        }
        self.finish(signals).await
    }

    fn is_done(&self) -> bool {
        self.stopping.is_some() && self.instances.iter().all(|i| i.state.is_terminal())
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.instances
            .iter()
            .filter_map(|i| match i.state {
                State::Backoff { until } => Some(until),
                State::Stopping {
                    deadline,
                    killed: false,
                    ..
                }
                | State::Restarting {
                    deadline,
                    killed: false,
                    ..
                } => Some(deadline),
                _ => None,
            })
            .min()
    }

    fn on_signal(&mut self, signal: Signal) {
        match meaning(signal) {
            Meaning::Stop if self.stopping.is_some() => {
                tracing::warn!(signal = %signal, "second stop signal: killing what is left");
                self.force();
            }
            Meaning::Stop => {
                tracing::info!(signal = %signal, "stopping");
                self.begin_stop(StopReason::Signal(signal));
            }
            Meaning::Forward => {
                tracing::debug!(signal = %signal, "forwarding to every process group");
                for instance in &self.instances {
                    if let Some(pid) = instance.state.pid() {
                        spawn::signal_group(pid, signal);
                    }
                }
            }
            Meaning::Ignore => tracing::debug!(signal = %signal, "ignored"),
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Exited { instance, pid, status } => {
                if self.instances[instance].state.pid() == Some(pid) {
                    self.instances[instance].end_probes();
                    self.on_exit(instance, status, Instant::now());
                }
                while self.relays.try_join_next().is_some() {}
            }
            Event::Probe {
                instance,
                pid,
                kind,
                passed,
            } => {
                if self.instances[instance].state.pid() == Some(pid) {
                    self.on_probe(instance, kind, passed, Instant::now());
                }
            }
        }
    }

    /// Counts a probe result; flips readiness or restarts on a threshold.
    fn on_probe(&mut self, at: usize, kind: probes::Kind, passed: bool, now: Instant) {
        let process = self.processes[self.instances[at].process].clone();
        let instance = &mut self.instances[at];
        let State::Running { pid, since, ready } = instance.state else {
            return;
        };
        let (name, index) = (&*process.name, instance.index);
        match kind {
            probes::Kind::Ready => {
                let Some(probe) = &process.config.ready else { return };
                if passed {
                    instance.ready_passes += 1;
                    instance.ready_failures = 0;
                } else {
                    instance.ready_failures += 1;
                    instance.ready_passes = 0;
                }
                if !ready && instance.ready_passes >= probe.success_threshold {
                    tracing::info!(process = %name, instance = index, pid = pid.as_raw(), "ready");
                    instance.state = State::Running {
                        pid,
                        since,
                        ready: true,
                    };
                    self.start_live_probe(at, pid);
                } else if ready && instance.ready_failures >= probe.failure_threshold {
                    tracing::warn!(process = %name, instance = index, pid = pid.as_raw(), "readiness probe failing: not ready");
                    instance.state = State::Running {
                        pid,
                        since,
                        ready: false,
                    };
                }
            }
            probes::Kind::Live => {
                let Some(probe) = &process.config.live else { return };
                instance.live_failures = if passed { 0 } else { instance.live_failures + 1 };
                if instance.live_failures >= probe.failure_threshold {
                    tracing::warn!(
                        process = %name,
                        instance = index,
                        pid = pid.as_raw(),
                        "liveness probe failed {} times: restarting",
                        instance.live_failures
                    );
                    instance.end_probes();
                    let config = &process.config;
                    spawn::stop_group(pid, config.stop_signal);
                    instance.state = State::Restarting {
                        pid,
                        since,
                        deadline: now + config.stop_timeout,
                        killed: config.stop_signal == Signal::SIGKILL,
                    };
                }
            }
        }
    }

    fn start_live_probe(&mut self, at: usize, pid: Pid) {
        let process = self.processes[self.instances[at].process].clone();
        if let Some(probe) = &process.config.live {
            let context = self.probe_context(&process, at);
            let handle = probes::start(
                probes::Kind::Live,
                probe.clone(),
                at,
                pid,
                context,
                self.events_tx.clone(),
            );
            self.instances[at].probes.push(handle);
        }
    }

    fn probe_context(&self, process: &PlannedProcess, at: usize) -> probes::Context {
        probes::Context {
            env: Arc::new(process.env_for(self.instances[at].index)),
            cwd: process.config.cwd.clone(),
            reaper: self.reaper.clone(),
        }
    }

    /// Publishes what /health shows.
    fn publish(&self) {
        let processes = self
            .instances
            .iter()
            .map(|i| health::status::ProcessStatus {
                name: self.processes[i.process].name.clone(),
                instance: i.index,
                state: i.state.name(),
                pid: i.state.pid().map(Pid::as_raw),
                restarts: i.restarts,
                ready: matches!(i.state, State::Running { ready: true, .. }),
                healthy: i.is_healthy(),
            })
            .collect();
        self.options.board.set_processes(processes);
    }

    fn on_exit(&mut self, at: usize, status: ExitStatus, now: Instant) {
        let instance = &mut self.instances[at];
        instance.last_exit = Some(status);
        let pid = instance.state.pid().map_or(0, Pid::as_raw);
        let (name, index, code) = (
            self.processes[instance.process].name.clone(),
            instance.index,
            status.code(),
        );
        match instance.state {
            State::Stopping { killed, .. } => {
                tracing::info!(process = %name, instance = index, pid, exit_code = code, "stopped");
                instance.state = State::Stopped { clean: !killed };
            }
            State::Restarting { .. } if self.stopping.is_some() => {
                instance.state = State::Stopped { clean: true };
            }
            State::Restarting { since, .. } => self.settle(at, status, now - since, now),
            // It went down on its own while others were being stopped.
            State::Running { .. } if self.stopping.is_some() => {
                tracing::info!(process = %name, instance = index, pid, exit_code = code, "exited during stop");
                instance.state = State::Stopped { clean: true };
            }
            State::Running { since, .. } => self.settle(at, status, now - since, now),
            _ => {}
        }
    }

    /// Applies the restart policy to an instance that ended on its own (or never started).
    fn settle(&mut self, at: usize, status: ExitStatus, ran_for: Duration, now: Instant) {
        let process = self.processes[self.instances[at].process].clone();
        let instance = &mut self.instances[at];
        instance.last_exit = Some(status);
        let (name, index, code) = (&*process.name, instance.index, status.code());
        let decision = restart::decide(
            &process.config.restart,
            &mut instance.history,
            status,
            ran_for,
            fastrand::f64(),
        );
        match decision {
            Decision::Restart { delay } => {
                instance.restarts += 1;
                tracing::warn!(
                    process = %name,
                    instance = index,
                    exit_code = code,
                    attempt = instance.restarts,
                    delay_ms = delay.as_millis() as u64,
                    "{status}; restarting"
                );
                instance.state = State::Backoff { until: now + delay };
            }
            Decision::Completed => {
                tracing::info!(process = %name, instance = index, exit_code = code, "completed");
                instance.state = State::Exited(status);
            }
            Decision::Failed if status.success() => {
                // `restart = "always"` and it keeps exiting 0: a loop, not a
                // success, so the exit code must not say 0 (an orchestrator's
                // on-failure policy would never restart the container).
                tracing::error!(
                    process = %name,
                    instance = index,
                    "exited with 0 again and again under restart = \"always\" (a loop): failed for good"
                );
                instance.state = State::Failed(status);
                self.on_failed(at, 1);
            }
            Decision::Failed => {
                tracing::error!(process = %name, instance = index, exit_code = code, "{status}; failed for good");
                instance.state = State::Failed(status);
                self.on_failed(at, code);
            }
        }
    }

    fn on_failed(&mut self, at: usize, code: i32) {
        let process = &self.processes[self.instances[at].process];
        if process.config.is_critical {
            tracing::error!(process = %process.name, exit_code = code, "critical process failed: stopping everything");
            self.begin_stop(StopReason::Failed { code });
        } else {
            self.first_failure.get_or_insert(code);
            tracing::warn!(process = %process.name, exit_code = code, "non-critical process failed: the rest keeps running");
        }
    }

    fn begin_stop(&mut self, reason: StopReason) {
        if self.stopping.is_some() {
            return;
        }
        if matches!(reason, StopReason::Failed { .. }) {
            self.options.board.set_failed();
        }
        self.options.board.set_phase(health::Phase::Stopping);
        self.stopping = Some(reason);
        for instance in &mut self.instances {
            if matches!(instance.state, State::Waiting | State::Backoff { .. }) {
                instance.state = State::Stopped { clean: true };
            }
        }
    }

    /// SIGKILL to every group still up; stragglers too when we are PID 1.
    fn force(&mut self) {
        self.forced = true;
        for instance in &mut self.instances {
            if let Some(pid) = instance.state.pid() {
                spawn::signal_group(pid, Signal::SIGKILL);
                instance.state = State::Stopping {
                    pid,
                    deadline: Instant::now(),
                    killed: true,
                };
            }
        }
        if self.options.is_init {
            spawn::signal_stragglers(Signal::SIGKILL, true);
        }
    }

    /// Brings every instance in line with where the run is.
    fn advance(&mut self, now: Instant) {
        self.fire_deadlines(now);
        if self.stopping.is_none() {
            while self.start_satisfied(now) {}
            if self.stopping.is_none() && self.instances.iter().all(|i| i.state.is_terminal()) {
                tracing::info!("every process has finished");
                self.begin_stop(StopReason::Finished);
            }
        }
        // Also when the stop began just now (a critical process blocked or
        // failed while starting others): nothing else would wake us to do it.
        if self.stopping.is_some() {
            self.send_stop_signals(now);
        }
    }

    fn fire_deadlines(&mut self, now: Instant) {
        for at in 0..self.instances.len() {
            match self.instances[at].state {
                State::Backoff { until } if until <= now && self.stopping.is_none() => self.start(at, now),
                State::Restarting {
                    pid,
                    since,
                    deadline,
                    killed: false,
                } if deadline <= now => {
                    spawn::signal_group(pid, Signal::SIGKILL);
                    self.instances[at].state = State::Restarting {
                        pid,
                        since,
                        deadline,
                        killed: true,
                    };
                }
                State::Stopping {
                    pid,
                    deadline,
                    killed: false,
                } if deadline <= now => {
                    let process = &self.processes[self.instances[at].process];
                    tracing::warn!(
                        process = %process.name,
                        instance = self.instances[at].index,
                        pid = pid.as_raw(),
                        "still running after stop_timeout: sending SIGKILL to its group"
                    );
                    spawn::signal_group(pid, Signal::SIGKILL);
                    self.instances[at].state = State::Stopping {
                        pid,
                        deadline,
                        killed: true,
                    };
                }
                _ => {}
            }
        }
    }

    /// Starts every waiting instance whose dependencies hold; blocks those that never will.
    /// Returns true when something changed, so dependents get another look.
    fn start_satisfied(&mut self, now: Instant) -> bool {
        let mut changed = false;
        for at in 0..self.instances.len() {
            if self.stopping.is_some() {
                break;
            }
            if self.instances[at].state != State::Waiting {
                continue;
            }
            let process = self.instances[at].process;
            match self.graph.verdict(process, &self.instances) {
                Verdict::Met => {
                    self.start(at, now);
                    changed = true;
                }
                Verdict::Pending => {}
                Verdict::Never(code) => {
                    let planned = &self.processes[process];
                    tracing::error!(process = %planned.name, instance = self.instances[at].index, "cannot start: a dependency failed");
                    self.instances[at].state = State::Blocked;
                    self.instances[at].last_exit = Some(ExitStatus::Exited(code));
                    self.on_failed(at, code);
                    changed = true;
                }
            }
        }
        changed
    }

    /// Sends the stop signal to each running instance whose dependents are all down.
    fn send_stop_signals(&mut self, now: Instant) {
        for at in 0..self.instances.len() {
            let State::Running { pid, .. } = self.instances[at].state else {
                continue;
            };
            let process = self.instances[at].process;
            if !self.graph.dependents_down(process, &self.instances) {
                continue;
            }
            let config = &self.processes[process].config;
            tracing::debug!(process = %self.processes[process].name, pid = pid.as_raw(), signal = %config.stop_signal, "stopping");
            spawn::stop_group(pid, config.stop_signal);
            self.instances[at].state = State::Stopping {
                pid,
                deadline: now + config.stop_timeout,
                killed: config.stop_signal == Signal::SIGKILL,
            };
        }
    }

    fn start(&mut self, at: usize, now: Instant) {
        let process = self.processes[self.instances[at].process].clone();
        let index = self.instances[at].index;
        let env: Vec<(OsString, OsString)> = process.env_for(index);
        let output = match process.config.log {
            crate::config::LogMode::Prefix => spawn::Output::Piped,
            crate::config::LogMode::Raw => spawn::Output::Inherit,
        };
        let cwd = process.config.cwd.as_deref();
        let result = match spawn::check_cwd(cwd) {
            Err(err) => Err(err),
            Ok(()) => {
                let mut command = spawn::command(&Spec {
                    command: &process.config.command,
                    cwd,
                    env: &env,
                    user: process.user.as_ref(),
                    output,
                    take_terminal: false,
                    guarded: false,
                });
                let events = self.events_tx.clone();
                self.reaper.spawn(&mut command, move |pid, status| {
                    let _ = events.send(Event::Exited {
                        instance: at,
                        pid,
                        status,
                    });
                })
            }
        };
        match result {
            Ok(mut child) => {
                let pid = Pid::from_raw(child.id() as i32);
                tracing::info!(process = %process.name, instance = index, pid = pid.as_raw(), "started");
                let instance = &mut self.instances[at];
                instance.ever_started = true;
                // Without a ready probe a process is ready once started (SPEC §2).
                instance.state = State::Running {
                    pid,
                    since: now,
                    ready: process.config.ready.is_none(),
                };
                let label = instance.label.clone();
                if let Some(probe) = &process.config.ready {
                    let handle = probes::start(
                        probes::Kind::Ready,
                        probe.clone(),
                        at,
                        pid,
                        self.probe_context(&process, at),
                        self.events_tx.clone(),
                    );
                    self.instances[at].probes.push(handle);
                } else {
                    self.start_live_probe(at, pid);
                }
                self.output
                    .relay_child(&mut child, &label, self.options.format, &mut self.relays);
                // `child` is dropped without waiting: only the reaper waits.
            }
            Err(err) => {
                let code = spawn::spawn_error_code(&err);
                tracing::error!(process = %process.name, instance = index, error = %err, "cannot start {}", process.config.command);
                self.settle(at, ExitStatus::Exited(code), Duration::ZERO, now);
            }
        }
    }

    /// After every instance is down: stop stragglers, drain output, pick the exit code.
    async fn finish(mut self, signals: &mut mpsc::UnboundedReceiver<Signal>) -> Outcome {
        let grace = self
            .processes
            .iter()
            .map(|p| p.config.stop_timeout)
            .max()
            .unwrap_or(crate::config::DEFAULT_STOP_TIMEOUT);
        stop_stragglers(&self.reaper, self.options.is_init, grace, self.forced, signals).await;
        drain_relays(&mut self.relays, Duration::from_secs(2)).await;
        let code = match self.stopping {
            Some(StopReason::Failed { code }) => code,
            Some(StopReason::Finished) => self.first_failure.unwrap_or(0),
            Some(StopReason::Signal(_)) | None => {
                let killed = self
                    .instances
                    .iter()
                    .any(|i| i.state == State::Stopped { clean: false });
                if killed {
                    128 + Signal::SIGKILL as i32
                } else {
                    0
                }
            }
        };
        Outcome { code }
    }
}

/// TERM (then KILL after `grace`) to whatever is left of our children: as
/// PID 1 our exit would SIGKILL them without warning (SPEC §6). Ends as soon
/// as nothing is left, never after a fixed sleep; a stop signal cuts the grace short.
pub async fn stop_stragglers(
    reaper: &Reaper,
    is_init: bool,
    grace: Duration,
    forced: bool,
    signals: &mut mpsc::UnboundedReceiver<Signal>,
) {
    // Every process of a PID namespace descends from its PID 1, and orphans
    // come back to a subreaper: no child at all means no straggler.
    if !reaper.has_children() {
        return;
    }
    if !forced {
        spawn::signal_stragglers(Signal::SIGTERM, is_init);
        let deadline = tokio::time::Instant::now() + grace;
        let gone = reaper.all_gone();
        tokio::pin!(gone);
        loop {
            tokio::select! {
                () = &mut gone => return,
                () = tokio::time::sleep_until(deadline) => break,
                Some(signal) = signals.recv() => if meaning(signal) == Meaning::Stop { break },
            }
        }
    }
    spawn::signal_stragglers(Signal::SIGKILL, is_init);
    let _ = tokio::time::timeout(Duration::from_secs(2), reaper.all_gone()).await;
}

async fn drain_relays(relays: &mut JoinSet<()>, limit: Duration) {
    let drained = tokio::time::timeout(limit, async { while relays.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!("output pipes still open after every process stopped: a leftover process holds them");
        relays.abort_all();
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}
