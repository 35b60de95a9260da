//! One process instance and its state (systemd's unit states, made explicit).
//!
//! Each piece of data lives only in the state where it is valid: a pid
//! exists only while `Running` or `Stopping`, a restart time only in
//! `Backoff`, probe counters only in `Running`, so nothing can outlive the
//! run it belongs to. [`Core`] is the pure part that `step` transforms; an
//! [`Instance`] adds what only the executor touches (probe tasks, a label).

use std::sync::Arc;
use std::time::Instant;

use nix::unistd::Pid;
use tokio::task::AbortHandle;

use super::restart::History;
use crate::logs::lines::Label;
use crate::pid1::ExitStatus;

/// Consecutive probe results of the current run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProbeCounts {
    pub ready_passes: u32,
    pub ready_failures: u32,
    pub live_failures: u32,
}

/// What follows a stop that `step` started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// The run is stopping: this instance stays down.
    Stop,
    /// Its liveness probe failed: it goes through the restart policy once down.
    Restart,
    /// An operator's `supervisor stop` (or the first half of a `restart`):
    /// it stays down, `Held`, until `supervisor start`.
    Hold,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not started yet: its dependencies are not satisfied.
    Waiting,
    Running {
        pid: Pid,
        since: Instant,
        ready: bool,
        counts: ProbeCounts,
    },
    /// Exited; will be started again at `until`.
    Backoff { until: Instant },
    /// Sent its stop signal; SIGKILL at `deadline` unless it exits first.
    Stopping {
        pid: Pid,
        /// When this run started (a restart counts its length).
        since: Instant,
        deadline: Instant,
        killed: bool,
        then: Then,
    },
    /// Finished and will not run again (exit 0 under `on-failure`/`never`).
    Exited(ExitStatus),
    /// Failed for good: no restart left.
    Failed(ExitStatus),
    /// Never started because a dependency can never be satisfied.
    Blocked,
    /// Stopped by us; `clean` when it exited before its `stop_timeout`.
    Stopped { clean: bool },
    /// Down by an operator's `supervisor stop`: no restart policy revives
    /// it, `supervisor start` does. Not terminal: the run goes on without it.
    Held,
}

impl State {
    /// No process exists and none will be started again.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            State::Exited(_) | State::Failed(_) | State::Blocked | State::Stopped { .. }
        )
    }

    /// No process exists and none will start by itself: terminal, or held.
    pub fn is_down(&self) -> bool {
        self.is_terminal() || *self == State::Held
    }

    pub fn pid(&self) -> Option<Pid> {
        match self {
            State::Running { pid, .. } | State::Stopping { pid, .. } => Some(*pid),
            _ => None,
        }
    }

    /// The word used in logs and on /health.
    pub fn name(&self) -> &'static str {
        match self {
            State::Waiting => "waiting",
            State::Running { .. } => "running",
            State::Backoff { .. } => "backoff",
            State::Stopping { then: Then::Stop, .. } => "stopping",
            State::Stopping {
                then: Then::Restart, ..
            } => "restarting",
            State::Stopping { then: Then::Hold, .. } => "stopping",
            State::Exited(_) => "exited",
            State::Failed(_) => "failed",
            State::Blocked => "blocked",
            State::Stopped { .. } => "stopped",
            State::Held => "held",
        }
    }

    /// When `step` wants an `Input::Deadline`, if ever.
    pub fn deadline(&self) -> Option<Instant> {
        match *self {
            State::Backoff { until } => Some(until),
            State::Stopping {
                deadline,
                killed: false,
                ..
            } => Some(deadline),
            _ => None,
        }
    }
}

/// The pure part of an instance: everything `step` reads and writes.
#[derive(Debug, Clone, PartialEq)]
pub struct Core {
    pub state: State,
    pub history: History,
    /// Restarts since the supervisor started (for /health and /metrics).
    pub restarts: u32,
    pub ever_started: bool,
    pub last_exit: Option<ExitStatus>,
}

impl Default for Core {
    fn default() -> Core {
        Core {
            state: State::Waiting,
            history: History::default(),
            restarts: 0,
            ever_started: false,
            last_exit: None,
        }
    }
}

impl Core {
    /// Healthy for /health: running and ready, or a one-shot that completed with 0.
    pub fn is_healthy(&self) -> bool {
        match self.state {
            State::Running { ready, .. } => ready,
            State::Exited(status) => status.success(),
            _ => false,
        }
    }
}

#[derive(Debug)]
pub struct Instance {
    /// Index of its process in the plan.
    pub process: usize,
    pub index: u32,
    pub label: Arc<Label>,
    pub core: Core,
    /// Probe tasks of the current run; aborted when it ends.
    pub probes: Vec<AbortHandle>,
}

impl Instance {
    pub fn state(&self) -> &State {
        &self.core.state
    }
}
