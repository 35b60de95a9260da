//! The one event loop: start, watch, restart and stop every process.
//!
//! # Theory of operation
//!
//! What happens to an instance is decided by [`step::step`], a pure
//! function of its state, one input, its config and the time; this module
//! is the executor: the only code here that calls into `pid1` (spawn,
//! signal), starts probe tasks and logs. [`Supervisor::run`] waits on
//! exactly three things: a signal (from `pid1::signals`), an [`Event`] (a
//! child exited: the reaper calls back into our channel; a probe answered),
//! or the next deadline (a backoff ending, a stop timeout running out).
//! There is no polling tick: with nothing to do, the loop sleeps until
//! something happens.
//!
//! After every wake-up, [`Supervisor::advance`] feeds the inputs the world
//! now implies: due deadlines, `Start` to what waits and is satisfied,
//! `Blocked` to what never can be, and, once the run is stopping, `Stop` to
//! each instance as soon as everything that depends on it is down (SPEC §1
//! step 9). The run's own phase (`Running`, `Stopping { reason, forced }`)
//! lives here. The loop ends when every instance is terminal; `finish` then
//! deals with stragglers, drains the output relays and returns the
//! [`Outcome`] that `main` turns into our exit code (SPEC §7).

mod graph;
pub mod probes;
pub mod process;
mod requests;
pub mod restart;
pub mod step;

use std::collections::VecDeque;
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
use process::{Core, Instance, State};
use step::{Action, Input, Note};

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

/// Where the run is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RunPhase {
    Running,
    /// A stop began with `drain` set (SPEC §6): /health says `draining`,
    /// nothing is signalled, started or restarted until `until`; then `Stopping`.
    Draining {
        reason: StopReason,
        until: Instant,
    },
    /// `forced`: a second stop signal came, everything left was SIGKILLed.
    Stopping {
        reason: StopReason,
        forced: bool,
    },
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
    /// How long a stop signal only flips readiness before the stop (0: no drain).
    pub drain: Duration,
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
    phase: RunPhase,
    /// The first non-critical failure, reported as our code if all else finishes.
    first_failure: Option<i32>,
    /// Operators' requests from the control socket, when it is on.
    requests: Option<mpsc::Receiver<crate::control::Pending>>,
    /// Stops, restarts and starts asked for, carried out first to last.
    batches: VecDeque<requests::Batch>,
}

impl Supervisor {
    pub fn new(planned: Vec<PlannedProcess>, reaper: Reaper, output: Output, options: Options) -> Supervisor {
        let names: Vec<&str> = planned.iter().map(|p| &*p.name).collect();
        let graph = Graph::new(&names, &dependency_lists(&planned));
        let processes: Vec<Arc<PlannedProcess>> = planned.into_iter().map(Arc::new).collect();
        let width = processes
            .iter()
            .filter(|p| p.instances > 0)
            .map(|p| format!("{}.{}", p.name, p.instances - 1).len())
            .max()
            .unwrap_or(0);
        let mut instances = Vec::new();
        for (index, process) in processes.iter().enumerate() {
            for instance in 0..process.instances {
                instances.push(Instance {
                    process: index,
                    index: instance,
                    label: Arc::new(Label::new(process.name.clone(), instance, index, options.format, width)),
                    core: Core::default(),
                    probes: Vec::new(),
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
            phase: RunPhase::Running,
            first_failure: None,
            requests: None,
            batches: VecDeque::new(),
        }
    }

    /// Takes operators' requests from `requests` (the control socket's).
    pub fn with_requests(mut self, requests: mpsc::Receiver<crate::control::Pending>) -> Supervisor {
        self.requests = Some(requests);
        self
    }

    /// Supervises until every process is down, then stops what is left.
    pub async fn run(mut self, signals: &mut mpsc::UnboundedReceiver<Signal>) -> Outcome {
        // Signals that arrived before we got here are acted on before anything starts.
        while let Ok(signal) = signals.try_recv() {
            self.on_signal(signal);
        }
        if !self.is_stopping() {
            self.options.board.set_phase(health::Phase::Running);
        }
        self.advance(Instant::now());
        self.publish();
        while !self.is_done() {
            let drain_ends = match self.phase {
                RunPhase::Draining { until, .. } => Some(until),
                _ => None,
            };
            let deadline = self
                .instances
                .iter()
                .filter_map(|i| i.state().deadline())
                .chain(drain_ends)
                .chain(self.batches.front().and_then(requests::Batch::deadline))
                .min();
            tokio::select! {
                biased;
                Some(signal) = signals.recv() => self.on_signal(signal),
                Some(event) = self.events_rx.recv() => self.on_event(event),
                Some(request) = next_request(&mut self.requests) => self.on_request(request),
                () = sleep_until(deadline) => {}
            }
            self.advance(Instant::now());
            self.publish();
        }
        self.finish(signals).await
    }

    fn is_stopping(&self) -> bool {
        matches!(self.phase, RunPhase::Stopping { .. })
    }

    /// Draining or stopping: nothing new starts, nothing is restarted.
    fn is_winding_down(&self) -> bool {
        !matches!(self.phase, RunPhase::Running)
    }

    /// Also during a drain: when every process has exited on its own, there is nothing to wait for.
    fn is_done(&self) -> bool {
        self.is_winding_down() && self.instances.iter().all(|i| i.state().is_terminal())
    }

    fn on_signal(&mut self, signal: Signal) {
        match meaning(signal) {
            Meaning::Stop if self.is_stopping() => {
                tracing::warn!(signal = %signal, "second stop signal: killing what is left");
                self.force();
            }
            Meaning::Stop if matches!(self.phase, RunPhase::Draining { .. }) => {
                tracing::info!(signal = %signal, "second stop signal: ending the drain, stopping now");
                self.begin_stop(StopReason::Signal(signal));
            }
            // Ctrl-C in a terminal means now; a drain is for load balancers.
            Meaning::Stop if signal == Signal::SIGINT || self.options.drain.is_zero() => {
                tracing::info!(signal = %signal, "stopping");
                self.begin_stop(StopReason::Signal(signal));
            }
            Meaning::Stop => {
                tracing::info!(
                    signal = %signal,
                    "draining for {}: /health and /readyz answer 503, the processes keep serving; then stopping (a second {signal} stops now)",
                    humantime::format_duration(self.options.drain)
                );
                self.begin_drain(StopReason::Signal(signal));
            }
            Meaning::Forward => {
                tracing::debug!(signal = %signal, "forwarding to every process group");
                for instance in &self.instances {
                    if let Some(pid) = instance.state().pid() {
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
                // Only the run it belongs to: a late exit of an earlier run is old news.
                if self.instances[instance].state().pid() == Some(pid) {
                    self.apply(instance, Input::Exited { status }, Instant::now());
                }
                while self.relays.try_join_next().is_some() {}
            }
            Event::Probe {
                instance,
                pid,
                kind,
                passed,
            } => {
                if self.instances[instance].state().pid() == Some(pid) {
                    self.apply(instance, Input::Probe { kind, passed }, Instant::now());
                }
            }
        }
    }

    /// Feeds one input to an instance's state machine and carries out what it decides.
    fn apply(&mut self, at: usize, input: Input, now: Instant) {
        let process = self.processes[self.instances[at].process].clone();
        let stopping = self.is_winding_down();
        let actions = step::step(
            &mut self.instances[at].core,
            input,
            &process.config,
            stopping,
            now,
            fastrand::f64(),
        );
        for action in actions {
            self.execute(at, &process, action, now);
        }
    }

    /// The one place where a decision of `step` touches the world.
    fn execute(&mut self, at: usize, process: &Arc<PlannedProcess>, action: Action, now: Instant) {
        match action {
            Action::Spawn => {
                let input = match self.spawn(at, process) {
                    Ok(pid) => Input::Spawned { pid },
                    Err(err) => {
                        let index = self.instances[at].index;
                        tracing::error!(process = %process.name, instance = index, error = %err, "cannot start {}", process.config.command);
                        Input::SpawnFailed {
                            code: spawn::spawn_error_code(&err),
                        }
                    }
                };
                self.apply(at, input, now);
            }
            Action::StopGroup { pid, signal } => spawn::stop_group(pid, signal),
            Action::KillGroup { pid } => spawn::signal_group(pid, Signal::SIGKILL),
            Action::StartProbe(kind) => self.start_probe(at, process, kind),
            Action::EndProbes => {
                for probe in self.instances[at].probes.drain(..) {
                    probe.abort();
                }
            }
            Action::FailedForGood { code } => self.on_failed(at, code),
            Action::Log(note) => self.log(at, process, note),
        }
    }

    fn log(&self, at: usize, process: &PlannedProcess, note: Note) {
        let (name, index) = (&*process.name, self.instances[at].index);
        match note {
            Note::Started { pid } => tracing::info!(process = %name, instance = index, pid = pid.as_raw(), "started"),
            Note::Ready { pid } => tracing::info!(process = %name, instance = index, pid = pid.as_raw(), "ready"),
            Note::NotReady { pid } => {
                tracing::warn!(process = %name, instance = index, pid = pid.as_raw(), "readiness probe failing: not ready")
            }
            Note::LiveFailed { pid, failures } => tracing::warn!(
                process = %name,
                instance = index,
                pid = pid.as_raw(),
                "liveness probe failed {failures} times: restarting"
            ),
            Note::Restarting { status, attempt, delay } => tracing::warn!(
                process = %name,
                instance = index,
                exit_code = status.code(),
                attempt,
                delay_ms = delay.as_millis() as u64,
                "{status}; restarting"
            ),
            Note::Completed { status } => {
                tracing::info!(process = %name, instance = index, exit_code = status.code(), "completed")
            }
            Note::FailedForGood { status } => tracing::error!(
                process = %name,
                instance = index,
                exit_code = status.code(),
                "{status}; failed for good"
            ),
            Note::Looped => tracing::error!(
                process = %name,
                instance = index,
                "exited with 0 again and again under restart = \"always\" (a loop): failed for good"
            ),
            Note::Stopped { pid, status } => tracing::info!(
                process = %name,
                instance = index,
                pid = pid.as_raw(),
                exit_code = status.code(),
                "stopped"
            ),
            Note::ExitedDuringStop { pid, status } => tracing::info!(
                process = %name,
                instance = index,
                pid = pid.as_raw(),
                exit_code = status.code(),
                "exited during stop"
            ),
            Note::KilledAfterTimeout { pid } => tracing::warn!(
                process = %name,
                instance = index,
                pid = pid.as_raw(),
                "still running after stop_timeout: sending SIGKILL to its group"
            ),
            Note::Blocked => tracing::error!(process = %name, instance = index, "cannot start: a dependency failed"),
            Note::Held { pid, status } => tracing::info!(
                process = %name,
                instance = index,
                pid = pid.as_raw(),
                exit_code = status.code(),
                "stopped by request; `supervisor start` resumes it"
            ),
        }
    }

    /// Spawns a new run of instance `at` and relays its output.
    fn spawn(&mut self, at: usize, process: &PlannedProcess) -> std::io::Result<Pid> {
        let env = process.env_for(self.instances[at].index);
        let output = match process.config.log {
            crate::config::LogMode::Prefix => spawn::Output::Piped,
            crate::config::LogMode::Raw => spawn::Output::Inherit,
        };
        let cwd = process.config.cwd.as_deref();
        spawn::check_cwd(cwd)?;
        let mut command = spawn::command(&Spec {
            command: &process.config.command,
            cwd,
            env,
            user: process.user.as_ref(),
            output,
            pass_stdin: false,
            take_terminal: false,
            guarded: false,
        });
        let mut child = self.reaper.spawn(&mut command)?;
        let label = self.instances[at].label.clone();
        self.output
            .relay_child(&mut child, &label, self.options.format, &mut self.relays);
        let (pid, mut exit, events) = (child.pid, child.exit, self.events_tx.clone());
        tokio::spawn(async move {
            let status = exit.wait().await;
            let _ = events.send(Event::Exited {
                instance: at,
                pid,
                status,
            });
        });
        Ok(pid)
    }

    fn start_probe(&mut self, at: usize, process: &PlannedProcess, kind: probes::Kind) {
        let planned = &process.each[self.instances[at].index as usize];
        let probe = match kind {
            probes::Kind::Ready => &planned.ready,
            probes::Kind::Live => &planned.live,
        };
        let (Some(probe), Some(pid)) = (probe, self.instances[at].state().pid()) else {
            return;
        };
        let context = probes::Context {
            env: planned.env.clone(),
            cwd: process.config.cwd.clone(),
            reaper: self.reaper.clone(),
        };
        let handle = probes::start(kind, probe.clone(), at, pid, context, self.events_tx.clone());
        self.instances[at].probes.push(handle);
    }

    /// Publishes what /health shows.
    fn publish(&self) {
        let processes = self
            .instances
            .iter()
            .map(|i| health::status::ProcessStatus {
                name: self.processes[i.process].name.clone(),
                instance: i.index,
                state: i.state().name(),
                pid: i.state().pid().map(Pid::as_raw),
                restarts: i.core.restarts,
                ready: matches!(i.state(), State::Running { ready: true, .. }),
                healthy: i.core.is_healthy(),
                started: match i.state() {
                    State::Running { since, .. } | State::Stopping { since, .. } => Some(*since),
                    _ => None,
                },
            })
            .collect();
        self.options.board.set_processes(processes);
    }

    fn on_failed(&mut self, at: usize, code: i32) {
        let process = &self.processes[self.instances[at].process];
        if process.config.is_critical && !self.options.drain.is_zero() && self.phase == RunPhase::Running {
            // The others may still serve (the frontend when the API failed):
            // the load balancer gets its time to notice, as for a stop signal.
            tracing::error!(
                process = %process.name,
                exit_code = code,
                "critical process failed: draining for {}, then stopping everything",
                humantime::format_duration(self.options.drain)
            );
            self.options.board.set_failed();
            self.begin_drain(StopReason::Failed { code });
        } else if process.config.is_critical {
            tracing::error!(process = %process.name, exit_code = code, "critical process failed: stopping everything");
            self.begin_stop(StopReason::Failed { code });
        } else {
            self.first_failure.get_or_insert(code);
            tracing::warn!(process = %process.name, exit_code = code, "non-critical process failed: the rest keeps running");
        }
    }

    /// Readiness down, children untouched, the stop after `drain`.
    fn begin_drain(&mut self, reason: StopReason) {
        self.abandon_requests();
        self.options.board.set_phase(health::Phase::Draining);
        self.phase = RunPhase::Draining {
            reason,
            until: Instant::now() + self.options.drain,
        };
        self.cancel_unstarted();
    }

    fn begin_stop(&mut self, reason: StopReason) {
        if self.is_stopping() {
            return;
        }
        // A drain that ends early keeps what began it: a critical failure's code.
        let reason = match &self.phase {
            RunPhase::Draining {
                reason: StopReason::Failed { code },
                ..
            } => StopReason::Failed { code: *code },
            _ => reason,
        };
        if matches!(reason, StopReason::Failed { .. }) {
            self.options.board.set_failed();
        }
        self.abandon_requests();
        self.options.board.set_phase(health::Phase::Stopping);
        self.phase = RunPhase::Stopping { reason, forced: false };
        self.cancel_unstarted();
    }

    /// What has not started yet never will.
    fn cancel_unstarted(&mut self) {
        let now = Instant::now();
        for at in 0..self.instances.len() {
            if matches!(
                self.instances[at].state(),
                State::Waiting | State::Backoff { .. } | State::Held
            ) {
                self.apply(at, Input::Stop, now);
            }
        }
    }

    /// SIGKILL to every group still up; stragglers too when we are PID 1.
    fn force(&mut self) {
        if let RunPhase::Stopping { forced, .. } = &mut self.phase {
            *forced = true;
        }
        let now = Instant::now();
        for at in 0..self.instances.len() {
            self.apply(at, Input::Kill, now);
        }
        if self.options.is_init {
            spawn::signal_stragglers(Signal::SIGKILL, true);
        }
    }

    /// Brings every instance in line with where the run is.
    fn advance(&mut self, now: Instant) {
        for at in 0..self.instances.len() {
            if self.instances[at].state().deadline().is_some_and(|d| d <= now) {
                self.apply(at, Input::Deadline, now);
            }
        }
        if let RunPhase::Draining { reason, until } = &self.phase {
            if *until <= now {
                tracing::info!("drain over: stopping");
                self.begin_stop(reason.clone());
            }
        }
        if !self.is_winding_down() {
            self.progress_requests(now);
            while self.start_satisfied(now) {}
            self.progress_requests(now);
            if !self.is_winding_down() && self.instances.iter().all(|i| i.state().is_terminal()) {
                tracing::info!("every process has finished");
                self.begin_stop(StopReason::Finished);
            }
        }
        // Also when the stop began just now (a critical process blocked or
        // failed while starting others): nothing else would wake us to do it.
        if self.is_stopping() {
            self.send_stop_signals(now);
        }
    }

    /// Starts every waiting instance whose dependencies hold; blocks those that never will.
    /// Returns true when something changed, so dependents get another look.
    fn start_satisfied(&mut self, now: Instant) -> bool {
        let mut changed = false;
        for at in 0..self.instances.len() {
            if self.is_winding_down() {
                break;
            }
            if *self.instances[at].state() != State::Waiting {
                continue;
            }
            let input = match self.graph.verdict(self.instances[at].process, &self.instances) {
                Verdict::Met => Input::Start,
                Verdict::Pending => continue,
                Verdict::Never(code) => Input::Blocked { code },
            };
            self.apply(at, input, now);
            changed = true;
        }
        changed
    }

    /// Stops each running instance whose dependents are all down.
    fn send_stop_signals(&mut self, now: Instant) {
        for at in 0..self.instances.len() {
            if matches!(self.instances[at].state(), State::Running { .. })
                && self.graph.dependents_down(self.instances[at].process, &self.instances)
            {
                self.apply(at, Input::Stop, now);
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
        let (reason, forced) = match &self.phase {
            RunPhase::Stopping { reason, forced } => (reason.clone(), *forced),
            // Everything exited on its own during the drain.
            RunPhase::Draining { reason, .. } => (reason.clone(), false),
            RunPhase::Running => (StopReason::Finished, false),
        };
        crate::pid1::stop_stragglers(&self.reaper, self.options.is_init, grace, forced, signals).await;
        drain_relays(&mut self.relays, Duration::from_secs(2)).await;
        let code = match reason {
            StopReason::Failed { code } => code,
            StopReason::Finished => self.first_failure.unwrap_or(0),
            StopReason::Signal(_) => {
                let killed = self
                    .instances
                    .iter()
                    .any(|i| *i.state() == State::Stopped { clean: false });
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

/// The longest a graceful stop of `planned` can take (see [`Graph::longest_stop`]).
pub fn longest_stop(planned: &[PlannedProcess]) -> Duration {
    let names: Vec<&str> = planned.iter().map(|p| &*p.name).collect();
    let graph = Graph::new(&names, &dependency_lists(planned));
    let timeouts: Vec<Duration> = planned
        .iter()
        .map(|p| {
            if p.instances == 0 {
                Duration::ZERO
            } else {
                p.config.stop_timeout
            }
        })
        .collect();
    graph.longest_stop(&timeouts)
}

fn dependency_lists(planned: &[PlannedProcess]) -> Vec<Vec<(String, crate::config::Condition)>> {
    planned
        .iter()
        .map(|p| {
            p.config
                .depends_on
                .iter()
                .map(|d| (d.process.clone(), d.condition))
                .collect()
        })
        .collect()
}

async fn drain_relays(relays: &mut JoinSet<()>, limit: Duration) {
    let drained = tokio::time::timeout(limit, async { while relays.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!("output pipes still open after every process stopped: a leftover process holds them");
        relays.abort_all();
    }
}

async fn next_request(
    requests: &mut Option<mpsc::Receiver<crate::control::Pending>>,
) -> Option<crate::control::Pending> {
    match requests {
        Some(requests) => requests.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}
