//! Operators' requests from the control socket, carried out by the loop one
//! at a time (SPEC §9).
//!
//! `stop`, `restart` and `start` become a [`Batch`] of instances, queued in
//! arrival order; only the first batch moves, so eight `restart web` at once
//! are eight restarts in a row, never two `web`s side by side. A batch
//! first holds its instances, each once the batch's own dependents of it are
//! down (the stop order of SPEC §1 step 9, within the batch), then — for a
//! restart or a start — releases them all to `Waiting`, from where the
//! ordinary start logic brings them back in `depends_on` order with their
//! restart budget whole. The answer goes out when each is ready again (or
//! down for good), or after [`START_WAIT`], saying which are not ready yet. Dependents outside
//! the batch are left alone: restarting `api` does not restart `web`, which
//! sees `api` go away as it would on a crash; `restart api web` restarts
//! both, `web` down first and up last.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::sync::oneshot;

use super::process::State;
use super::step::Input;
use super::Supervisor;
use crate::control::protocol::Reply;
use crate::control::{Operation, Pending};
use crate::pid1::spawn;

/// How long a restart or start waits for its instances to be ready before answering.
pub const START_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Stop,
    Restart,
    Start,
}

pub struct Batch {
    kind: Kind,
    instances: Vec<usize>,
    reply: Option<oneshot::Sender<Reply>>,
    /// When its instances were released to `Waiting`.
    released: Option<Instant>,
}

impl Batch {
    /// When the loop must look again even if nothing happens.
    pub fn deadline(&self) -> Option<Instant> {
        self.released.map(|at| at + START_WAIT)
    }
}

impl Supervisor {
    pub(super) fn on_request(&mut self, request: Pending) {
        let Pending { operation, reply } = request;
        if self.is_winding_down() {
            let _ = reply.send(Reply::refused("the supervisor is stopping"));
            return;
        }
        let (kind, names) = match operation {
            Operation::Signal(signal, names) => {
                let answer = match self.resolve(&names) {
                    Ok(instances) => self.signal(signal, &instances),
                    Err(why) => Reply::refused(why),
                };
                let _ = reply.send(answer);
                return;
            }
            Operation::Stop(names) => (Kind::Stop, names),
            Operation::Restart(names) => (Kind::Restart, names),
            Operation::Start(names) => (Kind::Start, names),
        };
        let instances = match self.resolve(&names) {
            Ok(instances) => instances,
            Err(why) => {
                let _ = reply.send(Reply::refused(why));
                return;
            }
        };
        tracing::info!(request = ?kind, instances = %self.names_of(&instances), "control request");
        self.batches.push_back(Batch {
            kind,
            instances,
            reply: Some(reply),
            released: None,
        });
    }

    /// `watch`: a restart of each process, as `supervisor restart` would do
    /// it, unless one is already queued and not yet under way.
    pub(super) fn on_files_changed(&mut self, processes: &[usize]) {
        if self.is_winding_down() {
            return;
        }
        for &process in processes {
            let instances: Vec<usize> = self.instances_of(process).collect();
            let queued = self
                .batches
                .iter()
                .any(|b| b.kind == Kind::Restart && b.released.is_none() && b.instances == instances);
            if queued || instances.is_empty() {
                continue;
            }
            tracing::info!(process = %self.processes[process].name, "files changed: restarting");
            self.batches.push_back(Batch {
                kind: Kind::Restart,
                instances,
                reply: None,
                released: None,
            });
        }
    }

    /// `web` is every instance of web, `web.1` one of them.
    fn resolve(&self, names: &[String]) -> Result<Vec<usize>, String> {
        if names.is_empty() {
            return Err(format!("name a process: {}", self.known()));
        }
        let mut chosen = Vec::new();
        for name in names {
            let (process, index) = match name.rsplit_once('.').map(|(p, i)| (p, i.parse::<u32>())) {
                Some((process, Ok(index))) => (process, Some(index)),
                _ => (name.as_str(), None),
            };
            let matching: Vec<usize> = (0..self.instances.len())
                .filter(|&at| {
                    let instance = &self.instances[at];
                    &*self.processes[instance.process].name == process && index.is_none_or(|i| i == instance.index)
                })
                .collect();
            if matching.is_empty() {
                let known_process = self.processes.iter().find(|p| &*p.name == process);
                return Err(match known_process {
                    Some(p) if p.instances == 0 => format!("{process} is turned off (instances = 0)"),
                    Some(p) => format!(
                        "{process} has {} instance(s): {process}.0 … {process}.{}",
                        p.instances,
                        p.instances - 1
                    ),
                    None => format!("no process named {name:?}: {}", self.known()),
                });
            }
            for at in matching {
                if !chosen.contains(&at) {
                    chosen.push(at);
                }
            }
        }
        Ok(chosen)
    }

    fn known(&self) -> String {
        let names: Vec<&str> = self.processes.iter().map(|p| &*p.name).collect();
        format!("the processes are {}", names.join(", "))
    }

    fn names_of(&self, instances: &[usize]) -> String {
        let names: Vec<&str> = instances.iter().map(|&at| &*self.instances[at].label.name).collect();
        names.join(", ")
    }

    fn signal(&self, signal: Signal, instances: &[usize]) -> Reply {
        let mut sent = Vec::new();
        let mut down = Vec::new();
        for &at in instances {
            let name = &self.instances[at].label.name;
            match self.instances[at].state() {
                State::Running { pid, .. } => {
                    spawn::signal_group(*pid, signal);
                    sent.push(format!("{name} (pid {pid})"));
                }
                _ => down.push(name.to_string()),
            }
        }
        if sent.is_empty() {
            return Reply::refused(format!("not running: {}", down.join(", ")));
        }
        tracing::info!(signal = %signal, to = %sent.join(", "), "signal from the control socket");
        let mut message = format!("sent {signal} to {}", sent.join(", "));
        if !down.is_empty() {
            message.push_str(&format!("; not running: {}", down.join(", ")));
        }
        Reply::done(message)
    }

    /// Moves the first batch as far as it can go now; answers finished ones.
    pub(super) fn progress_requests(&mut self, now: Instant) {
        while let Some(batch) = self.batches.front() {
            let members = batch.instances.clone();
            let (kind, released) = (batch.kind, batch.released);
            if released.is_none() {
                if kind != Kind::Start {
                    // `step` ignores a Hold where one is already under way (or the run's stop).
                    for &at in &members {
                        if !self.instances[at].state().is_down() && self.batch_dependents_down(at, &members) {
                            self.apply(at, Input::Hold, now);
                        }
                    }
                    if !members.iter().all(|&at| self.instances[at].state().is_down()) {
                        return;
                    }
                }
                if kind == Kind::Stop {
                    self.answer(format!("stopped {}", self.names_of(&members)));
                    continue;
                }
                for &at in &members {
                    self.apply(at, Input::Release, now);
                }
                if let Some(batch) = self.batches.front_mut() {
                    batch.released = Some(now);
                }
                return;
            }
            // Back means ready (or down for good): the next request then
            // finds a run that is really up, not one still starting.
            let waiting: Vec<usize> = members
                .iter()
                .copied()
                .filter(|&at| {
                    let state = self.instances[at].state();
                    !(state.is_down() || matches!(state, State::Running { ready: true, .. }))
                })
                .collect();
            let started_all = waiting.is_empty();
            if !started_all && released.is_some_and(|at| now < at + START_WAIT) {
                return;
            }
            let verb = if kind == Kind::Restart { "restarted" } else { "started" };
            let report = self.report(&members);
            if started_all {
                self.answer(format!("{verb} {report}"));
            } else {
                self.answer(format!("{verb} {report}; not ready yet: {}", self.names_of(&waiting)));
            }
        }
    }

    /// Whether every member that depends on `at`'s process is down.
    fn batch_dependents_down(&self, at: usize, members: &[usize]) -> bool {
        let process = self.instances[at].process;
        members.iter().all(|&other| {
            let dependent = self.graph.dependents[process].contains(&self.instances[other].process);
            !dependent || self.instances[other].state().is_down()
        })
    }

    fn report(&self, members: &[usize]) -> String {
        let parts: Vec<String> = members
            .iter()
            .map(|&at| {
                let instance = &self.instances[at];
                match instance.state().pid() {
                    Some(pid) => format!("{} (pid {pid})", instance.label.name),
                    None => format!("{} ({})", instance.label.name, instance.state().name()),
                }
            })
            .collect();
        parts.join(", ")
    }

    /// The first batch is done: tell its client (a watch restart has none).
    fn answer(&mut self, message: String) {
        if let Some(batch) = self.batches.pop_front() {
            tracing::info!("control request done: {message}");
            if let Some(reply) = batch.reply {
                let _ = reply.send(Reply::done(message));
            }
        }
    }

    /// The run is winding down: what was asked and not done will not be.
    pub(super) fn abandon_requests(&mut self) {
        for mut batch in self.batches.drain(..) {
            if let Some(reply) = batch.reply.take() {
                let _ = reply.send(Reply::refused(
                    "the supervisor is stopping; the request was not finished",
                ));
            }
        }
    }
}
