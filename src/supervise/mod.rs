//! The one event loop: start, watch, restart and stop every process.
//!
//! # Theory of operation
//!
//! What happens to an instance is decided by [`step::step`], a pure
//! function of its state, one input, its config and the time; the
//! `Supervisor` is the executor: the only code of supervision that calls
//! into `pid1` (spawn, signal), starts probe tasks and logs. [`Supervisor::run`]
//! waits on exactly four things: a signal (from `pid1::signals`), an [`Event`]
//! (a child exited, its exit told once by the reaper; a probe answered), an
//! operator's request from the control socket, or the next deadline (a
//! backoff ending, a stop timeout, the drain, a request's wait). There is no
//! polling tick: with nothing to do, the loop sleeps until something happens.
//!
//! After every wake-up, `advance` feeds the inputs the world now implies:
//! due deadlines, the first request's next step, `Start` to what waits and is
//! satisfied, `Blocked` to what never can be, and, once the run is stopping,
//! `Stop` to each instance as soon as everything that depends on it is down
//! (SPEC §1 step 9). The run's own phase (`Running`, `Draining { reason,
//! until }`, `Stopping { reason, forced }`) lives here. The loop ends when
//! every instance is terminal; `finish` then deals with stragglers, drains
//! the output relays and returns the [`Outcome`] that `main` turns into our
//! exit code (SPEC §7).
//!
//! By concern: this file is the loop; `execute` carries out actions (spawn,
//! signal, probes, /health); `stop` is how a run ends (drain, stop order,
//! SIGKILL, exit code); `requests` is the control socket's stop, restart,
//! start and signal; `step`, `process`, `restart` and `graph` are pure.

mod cron;
mod execute;
mod graph;
pub mod probes;
pub mod process;
mod requests;
pub mod restart;
pub mod step;
mod stop;

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
use crate::pid1::spawn;
use crate::pid1::{ExitStatus, Reaper};
use crate::plan::PlannedProcess;

use graph::{Graph, Verdict};
use process::{Core, Instance, State};
use step::Input;

/// Everything the loop reacts to besides signals and deadlines.
#[derive(Debug)]
pub enum Event {
    Exited {
        instance: usize,
        pid: Pid,
        status: ExitStatus,
    },
    /// Files that these processes watch changed (one debounced batch).
    Watched { processes: Vec<usize> },
    /// A run of cron job `job` (its `id`-th) ended.
    CronExited { job: usize, id: u64, status: ExitStatus },
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
    /// `[cron.NAME]` jobs of this context.
    crons: Vec<cron::Scheduled>,
    /// When the loop began, and when each instance was first ready: for the
    /// one-line start summary (`api ready in 1.2 s, web ready in 3.4 s`).
    began: Instant,
    first_ready: Vec<Option<Instant>>,
    announced: bool,
    /// The file watcher, when some process has `watch`.
    watch: Option<crate::watch::Watch>,
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
                    label: Arc::new(Label::new(
                        process.name.clone(),
                        instance,
                        lines::colour_of(&process.name),
                        options.format,
                        width,
                    )),
                    core: Core::default(),
                    probes: Vec::new(),
                });
            }
        }
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let first_ready = vec![None; instances.len()];
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
            crons: Vec::new(),
            began: Instant::now(),
            first_ready,
            announced: false,
            watch: None,
        }
    }

    /// Restarts each process with `watch` when its files change (relative to
    /// `base`). On failure (an inotify limit) the run goes on without watching.
    pub fn watch_files(&mut self, base: &std::path::Path) -> Result<(), crate::watch::WatchError> {
        let rules = self
            .processes
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.config.watch.is_empty())
            .map(|(process, p)| crate::watch::Rule {
                process,
                watch: p.config.watch.clone(),
                ignore: p.config.watch_ignore.clone(),
            })
            .collect();
        let events = self.events_tx.clone();
        self.watch = crate::watch::start(base, rules, move |processes| {
            let _ = events.send(Event::Watched { processes });
        })?;
        Ok(())
    }

    /// Runs these jobs on their schedules once the processes run (SPEC §10).
    pub fn with_crons(mut self, crons: Vec<crate::plan::PlannedCron>) -> Supervisor {
        self.crons = crons.into_iter().map(cron::Scheduled::new).collect();
        self
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
        if !self.is_winding_down() {
            self.schedule_crons(Instant::now());
        }
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
                .chain(self.crons.iter().filter_map(cron::Scheduled::deadline))
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

    /// The instances (indices into `instances`) of process `process`.
    fn instances_of(&self, process: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.instances.len()).filter(move |&at| self.instances[at].process == process)
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
        self.is_winding_down()
            && self.instances.iter().all(|i| i.state().is_terminal())
            && !self.crons.iter().any(cron::Scheduled::is_running)
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
            Event::Watched { processes } => self.on_files_changed(&processes),
            Event::CronExited { job, id, status } => {
                self.on_cron_exit(job, id, status);
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
            self.announce_ready();
            // Scheduled jobs keep a run alive whose processes have all finished (or that has none).
            let finished = self.instances.iter().all(|i| i.state().is_terminal()) && self.crons.is_empty();
            if !self.is_winding_down() && finished {
                tracing::info!("every process has finished");
                self.begin_stop(StopReason::Finished);
            }
        }
        self.advance_crons(now);
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
