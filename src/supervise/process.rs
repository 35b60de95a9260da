//! One process instance and its state (systemd's unit states, made explicit).
//!
//! Each piece of data lives only in the state where it is valid: a pid
//! exists only while `Running` or `Stopping`, a restart time only in
//! `Backoff`. The supervise loop owns every `Instance`; nothing else reads
//! or writes them.

use std::sync::Arc;
use std::time::Instant;

use nix::unistd::Pid;

use super::restart::History;
use crate::logs::lines::Label;
use crate::pid1::ExitStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not started yet: its dependencies are not satisfied.
    Waiting,
    Running {
        pid: Pid,
        since: Instant,
        ready: bool,
    },
    /// Exited; will be started again at `until`.
    Backoff { until: Instant },
    /// Sent its stop signal; SIGKILL at `deadline` unless it exits first.
    Stopping {
        pid: Pid,
        deadline: Instant,
        killed: bool,
    },
    /// Finished and will not run again (exit 0 under `on-failure`/`never`).
    Exited(ExitStatus),
    /// Failed for good: no restart left.
    Failed(ExitStatus),
    /// Never started because a dependency can never be satisfied.
    Blocked,
    /// Stopped by us; `clean` when it exited before its `stop_timeout`.
    Stopped { clean: bool },
}

impl State {
    /// No process exists and none will be started again.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            State::Exited(_) | State::Failed(_) | State::Blocked | State::Stopped { .. }
        )
    }

    pub fn pid(&self) -> Option<Pid> {
        match self {
            State::Running { pid, .. } | State::Stopping { pid, .. } => Some(*pid),
            _ => None,
        }
    }

    /// The word used in logs and on /health.
    #[expect(dead_code, reason = "used by /health")]
    pub fn name(&self) -> &'static str {
        match self {
            State::Waiting => "waiting",
            State::Running { .. } => "running",
            State::Backoff { .. } => "backoff",
            State::Stopping { .. } => "stopping",
            State::Exited(_) => "exited",
            State::Failed(_) => "failed",
            State::Blocked => "blocked",
            State::Stopped { .. } => "stopped",
        }
    }
}

#[derive(Debug)]
pub struct Instance {
    /// Index of its process in the plan.
    pub process: usize,
    pub index: u32,
    pub label: Arc<Label>,
    pub state: State,
    pub history: History,
    /// Restarts since the supervisor started (for /health and /metrics).
    pub restarts: u32,
    pub ever_started: bool,
    pub last_exit: Option<ExitStatus>,
}
