//! One process instance and its state (systemd's unit states, made explicit).
//!
//! Each piece of data lives only in the state where it is valid: a pid
//! exists only while `Running` or `Stopping`, a restart time only in
//! `Backoff`. The supervise loop owns every `Instance`; nothing else reads
//! or writes them.

use std::sync::Arc;
use std::time::Instant;

use nix::unistd::Pid;
use tokio::task::AbortHandle;

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
    Backoff {
        until: Instant,
    },
    /// Sent its stop signal; SIGKILL at `deadline` unless it exits first.
    Stopping {
        pid: Pid,
        deadline: Instant,
        killed: bool,
    },
    /// Its liveness probe failed: being stopped so that it can be restarted.
    Restarting {
        pid: Pid,
        since: Instant,
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
    Stopped {
        clean: bool,
    },
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
            State::Running { pid, .. } | State::Stopping { pid, .. } | State::Restarting { pid, .. } => Some(*pid),
            _ => None,
        }
    }

    /// The word used in logs and on /health.
    pub fn name(&self) -> &'static str {
        match self {
            State::Waiting => "waiting",
            State::Running { .. } => "running",
            State::Backoff { .. } => "backoff",
            State::Stopping { .. } => "stopping",
            State::Restarting { .. } => "restarting",
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
    /// Probe tasks of the current run; aborted when it ends.
    pub probes: Vec<AbortHandle>,
    /// Consecutive probe results of the current run.
    pub ready_passes: u32,
    pub ready_failures: u32,
    pub live_failures: u32,
}

impl Instance {
    /// Stops the probes of the run that just ended and forgets their counts.
    pub fn end_probes(&mut self) {
        for probe in self.probes.drain(..) {
            probe.abort();
        }
        self.ready_passes = 0;
        self.ready_failures = 0;
        self.live_failures = 0;
    }

    /// Healthy for /health: running and ready, or a one-shot that completed with 0.
    pub fn is_healthy(&self) -> bool {
        match self.state {
            State::Running { ready, .. } => ready,
            State::Exited(status) => status.success(),
            _ => false,
        }
    }
}
