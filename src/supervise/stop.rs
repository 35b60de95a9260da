//! How a run ends: a drain, then the stop in reverse dependency order (SPEC
//! §1 step 9, §6), a second signal's SIGKILL, and the exit code (SPEC §7).

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::process::State;
use super::step::Input;
use super::{health, Outcome, RunPhase, StopReason, Supervisor};
use crate::pid1::spawn;

impl Supervisor {
    /// The longest a graceful stop can take (`Graph::longest_stop` over the `stop_timeout`s).
    pub fn longest_stop(&self) -> Duration {
        let timeouts: Vec<Duration> = self.processes.iter().map(|p| p.config.stop_timeout).collect();
        self.graph.longest_stop(&timeouts)
    }

    pub(super) fn on_failed(&mut self, at: usize, code: i32) {
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
    pub(super) fn begin_drain(&mut self, reason: StopReason) {
        self.abandon_requests();
        self.unschedule_crons();
        self.options.board.set_phase(health::Phase::Draining);
        self.phase = RunPhase::Draining {
            reason,
            until: Instant::now() + self.options.drain,
        };
        self.cancel_unstarted();
    }

    pub(super) fn begin_stop(&mut self, reason: StopReason) {
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
        self.stop_crons(Instant::now(), crate::config::DEFAULT_STOP_TIMEOUT);
        self.options.board.set_phase(health::Phase::Stopping);
        self.phase = RunPhase::Stopping { reason, forced: false };
        self.cancel_unstarted();
    }

    /// What has not started yet never will.
    pub(super) fn cancel_unstarted(&mut self) {
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
    pub(super) fn force(&mut self) {
        if let RunPhase::Stopping { forced, .. } = &mut self.phase {
            *forced = true;
        }
        let now = Instant::now();
        for at in 0..self.instances.len() {
            self.apply(at, Input::Kill, now);
        }
        self.kill_crons();
        if self.options.is_init {
            spawn::signal_stragglers(Signal::SIGKILL, true);
        }
    }

    /// Stops each running instance whose dependents are all down.
    pub(super) fn send_stop_signals(&mut self, now: Instant) {
        for at in 0..self.instances.len() {
            if matches!(self.instances[at].state(), State::Running { .. })
                && self.graph.dependents_down(self.instances[at].process, &self.instances)
            {
                self.apply(at, Input::Stop, now);
            }
        }
    }

    /// After every instance is down: stop stragglers, drain output, pick the exit code.
    pub(super) async fn finish(mut self, signals: &mut mpsc::UnboundedReceiver<Signal>) -> Outcome {
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

async fn drain_relays(relays: &mut JoinSet<()>, limit: Duration) {
    let drained = tokio::time::timeout(limit, async { while relays.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!("output pipes still open after every process stopped: a leftover process holds them");
        relays.abort_all();
    }
}
