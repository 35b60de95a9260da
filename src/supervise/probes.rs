//! Ready and live probes: one task per probe of a running instance.
//!
//! A probe task checks on its own schedule and reports each result to the
//! loop as an `Event::Probe`; the loop keeps the counters and decides
//! (ready, not ready, restart). The health server never waits on a probe:
//! it reads the state the loop last published.

use crate::environment::Environment;
use std::path::PathBuf;
use std::sync::Arc;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::Event;
use crate::config::{Check, Probe};
use crate::pid1::spawn::{self, Spec};
use crate::pid1::Reaper;
use crate::reach;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ready,
    Live,
}

/// What an exec probe runs with: the process's own environment and directory.
pub struct Context {
    pub env: Arc<Environment>,
    pub cwd: Option<PathBuf>,
    pub reaper: Reaper,
}

/// Starts checking; the task runs until aborted.
pub fn start(
    kind: Kind,
    probe: Probe,
    instance: usize,
    pid: Pid,
    context: Context,
    events: mpsc::UnboundedSender<Event>,
) -> AbortHandle {
    tokio::spawn(async move {
        // Until it first passes, a readiness check comes quickly and then
        // ever less often (50, 100, 200 ms … up to `interval`): most servers
        // bind within milliseconds, and each layer of `depends_on` would
        // otherwise wait a whole interval.
        let mut quick = std::time::Duration::from_millis(50);
        let mut wait = match kind {
            Kind::Ready => quick.min(probe.interval),
            Kind::Live => probe.interval,
        };
        loop {
            tokio::time::sleep(wait).await;
            let passed = check(&probe, &context).await;
            wait = if kind == Kind::Ready && !passed {
                quick = quick.saturating_mul(2);
                quick.min(probe.interval)
            } else {
                quick = probe.interval;
                probe.interval
            };
            if events
                .send(Event::Probe {
                    instance,
                    pid,
                    kind,
                    passed,
                })
                .is_err()
            {
                return;
            }
        }
    })
    .abort_handle()
}

async fn check(probe: &Probe, context: &Context) -> bool {
    match &probe.check {
        Check::Http(url) => matches!(reach::http_status(url, probe.timeout).await, Ok(200..=399)),
        Check::Tcp(address) => reach::tcp(address, probe.timeout).await.is_ok(),
        // Answered by the output relays (`lines::ReadyLine`); never started as a task.
        Check::Log { .. } => false,
        Check::Exec(command) => {
            let mut command = spawn::command(&Spec {
                command,
                cwd: context.cwd.as_deref(),
                env: &context.env,
                user: None,
                output: spawn::Output::Null,
                pass_stdin: false,
                take_terminal: false,
                guarded: false,
            });
            let Ok(mut child) = context.reaper.spawn(&mut command) else {
                return false;
            };
            match tokio::time::timeout(probe.timeout, child.exit.wait()).await {
                Ok(status) => status.success(),
                Err(_) => {
                    spawn::signal_group(child.pid, Signal::SIGKILL);
                    false
                }
            }
        }
    }
}
