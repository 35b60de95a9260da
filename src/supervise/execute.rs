//! The executor's hands: where a decision of `step` touches the world
//! (spawn, signal, probes), and what /health is told after each change.

use std::sync::Arc;
use std::time::Instant;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::process::State;
use super::step::{Action, Input, Note};
use super::{probes, Event, Supervisor};
use crate::health;
use crate::logs::lines;
use crate::pid1::spawn::{self, Spec};
use crate::plan::PlannedProcess;

impl Supervisor {
    /// Once, when every instance has been ready (or a one-shot has
    /// completed): how long each process took, for a developer's eye.
    pub(super) fn announce_ready(&mut self) {
        if self.announced || self.instances.is_empty() {
            return;
        }
        // Looked at after every wake-up, so the first time it is seen ready is
        // the wake-up that made it so (with a probe or, without one, at spawn).
        let now = Instant::now();
        for at in 0..self.instances.len() {
            if matches!(self.instances[at].state(), State::Running { ready: true, .. }) {
                self.first_ready[at].get_or_insert(now);
            }
        }
        let done = |at: usize| {
            self.first_ready[at].is_some()
                || matches!(self.instances[at].state(), State::Exited(status) if status.success())
        };
        if !(0..self.instances.len()).all(done) {
            return;
        }
        self.announced = true;
        let mut parts = Vec::new();
        for (index, process) in self.processes.iter().enumerate() {
            let ready = self.instances_of(index).filter_map(|at| self.first_ready[at]).max();
            if let Some(ready) = ready {
                let took = ready.saturating_duration_since(self.began).as_secs_f64();
                parts.push(format!("{} ready in {took:.1} s", process.name));
            }
        }
        if !parts.is_empty() {
            tracing::info!("{}", parts.join(", "));
        }
    }

    /// The one place where a decision of `step` touches the world.
    pub(super) fn execute(&mut self, at: usize, process: &Arc<PlannedProcess>, action: Action, now: Instant) {
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

    pub(super) fn log(&self, at: usize, process: &PlannedProcess, note: Note) {
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
    pub(super) fn spawn(&mut self, at: usize, process: &PlannedProcess) -> std::io::Result<Pid> {
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
        let ready_line = match process.config.ready.as_ref().map(|probe| &probe.check) {
            Some(crate::config::Check::Log { pattern, stream }) => {
                let (events, pid) = (self.events_tx.clone(), child.pid);
                Some(lines::ReadyLine::new(pattern.clone(), *stream, move || {
                    let _ = events.send(Event::Probe {
                        instance: at,
                        pid,
                        kind: probes::Kind::Ready,
                        passed: true,
                    });
                }))
            }
            _ => None,
        };
        self.output
            .relay_child(&mut child, &label, self.options.format, &mut self.relays, ready_line);
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

    pub(super) fn start_probe(&mut self, at: usize, process: &PlannedProcess, kind: probes::Kind) {
        let planned = &process.each[self.instances[at].index as usize];
        let probe = match kind {
            probes::Kind::Ready => &planned.ready,
            probes::Kind::Live => &planned.live,
        };
        let (Some(probe), Some(pid)) = (probe, self.instances[at].state().pid()) else {
            return;
        };
        if let crate::config::Check::Log { .. } = probe.check {
            return; // the relays watch for the line (see `spawn`)
        }
        let context = probes::Context {
            env: planned.env.clone(),
            cwd: process.config.cwd.clone(),
            reaper: self.reaper.clone(),
        };
        let handle = probes::start(kind, probe.clone(), at, pid, context, self.events_tx.clone());
        self.instances[at].probes.push(handle);
    }

    /// Publishes what /health shows.
    pub(super) fn publish(&self) {
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
        if !self.crons.is_empty() {
            self.options
                .board
                .set_cron(self.crons.iter().map(super::cron::Scheduled::status).collect());
        }
    }
}
