//! The one and only reaper.
//!
//! SIGCHLDs coalesce, so every wake-up drains `waitpid(-1, WNOHANG)` until it
//! says "none left" (0) or "no children" (ECHILD), and recognises the pids we
//! spawned *inside* that loop (catatonit #4: a service dying together with an
//! orphan must still be seen). Nothing else may wait: `tokio::process` or
//! `Child::wait` running beside us would steal statuses.
//!
//! `spawn` registers the new pid under the same lock that `reap` holds, so a
//! child that dies at once cannot be reaped as an unknown orphan before its
//! owner is on record, and std's own wait after a failed exec never races us.
//! It hands back a [`Child`]: a pid, its output pipes and an [`Exit`] that
//! resolves exactly once. There is no `wait` to call by mistake.

use std::collections::HashMap;
use std::fmt;
use std::os::fd::OwnedFd;
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::sync::{oneshot, watch};

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Exited(i32),
    Signaled(Signal),
}

impl ExitStatus {
    /// The shell convention: the exit code, or 128+N when killed by signal N (SPEC §7).
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(code) => code,
            ExitStatus::Signaled(signal) => 128 + signal as i32,
        }
    }

    pub fn success(self) -> bool {
        self == ExitStatus::Exited(0)
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Exited(code) => write!(f, "exited with code {code}"),
            ExitStatus::Signaled(signal) => write!(f, "killed by {signal}"),
        }
    }
}

/// A child we spawned. Dropping it neither waits nor kills: the reaper
/// still reaps the pid, and nobody hears of it.
#[derive(Debug)]
pub struct Child {
    pub pid: Pid,
    /// The read ends of its output, when they were piped.
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    pub exit: Exit,
}

/// How and when a child ended, told once by the reaper.
#[derive(Debug)]
pub struct Exit {
    reported: oneshot::Receiver<ExitStatus>,
    status: Option<ExitStatus>,
}

impl Exit {
    /// Resolves when the child has been reaped; again at once afterwards. Cancel-safe.
    pub async fn wait(&mut self) -> ExitStatus {
        if let Some(status) = self.status {
            return status;
        }
        // The sender lives in the registry until the pid is reaped: a closed
        // channel means the reaper itself is gone, and the child with it.
        let status = (&mut self.reported)
            .await
            .unwrap_or(ExitStatus::Signaled(Signal::SIGKILL));
        self.status = Some(status);
        status
    }

    /// The status if the child has been reaped already; never blocks.
    pub fn status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.reported.try_recv().ok();
        }
        self.status
    }
}

struct Registry {
    owners: HashMap<Pid, oneshot::Sender<ExitStatus>>,
}

/// Shared handle to the reaper; clone it freely.
#[derive(Clone)]
pub struct Reaper {
    registry: Arc<Mutex<Registry>>,
    /// True while we have at least one child (ours or adopted); the stop
    /// sequence waits on it to know when every straggler is gone.
    has_children: watch::Sender<bool>,
}

impl Default for Reaper {
    fn default() -> Self {
        Reaper::new()
    }
}

impl Reaper {
    pub fn new() -> Reaper {
        Reaper {
            registry: Arc::new(Mutex::new(Registry { owners: HashMap::new() })),
            has_children: watch::channel(false).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        // A poisoned lock only means a callback panicked; the map is still sound.
        self.registry.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Spawns `command`, its pid on record before anyone can reap it.
    pub fn spawn(&self, command: &mut Command) -> std::io::Result<Child> {
        let mut registry = self.lock();
        let mut child = command.spawn()?;
        let pid = Pid::from_raw(child.id() as i32);
        let (tell, reported) = oneshot::channel();
        registry.owners.insert(pid, tell);
        self.has_children.send_replace(true);
        Ok(Child {
            pid,
            stdout: child.stdout.take().map(OwnedFd::from),
            stderr: child.stderr.take().map(OwnedFd::from),
            exit: Exit { reported, status: None },
        })
        // std's `Child` is dropped here without waiting: only `reap` waits.
    }

    /// The pids still awaited, each the leader of its process group. Never
    /// blocks: from a panic hook the lock may be held (or poisoned) already.
    pub fn registered(&self) -> Vec<Pid> {
        match self.registry.try_lock() {
            Ok(registry) => registry.owners.keys().copied().collect(),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner().owners.keys().copied().collect(),
            Err(std::sync::TryLockError::WouldBlock) => Vec::new(),
        }
    }

    /// Reaps every child that has exited; call on each SIGCHLD.
    pub fn reap(&self) {
        let mut registry = self.lock();
        loop {
            let (pid, status) = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, ExitStatus::Exited(code)),
                Ok(WaitStatus::Signaled(pid, signal, _core)) => (pid, ExitStatus::Signaled(signal)),
                Ok(WaitStatus::StillAlive) => {
                    self.has_children.send_replace(true);
                    return;
                }
                // Stops and continues are not reported without WUNTRACED/WCONTINUED.
                Ok(_) => continue,
                Err(Errno::EINTR) => continue,
                Err(Errno::ECHILD) => {
                    self.has_children.send_replace(false);
                    return;
                }
                Err(err) => {
                    tracing::error!(error = %err, "waitpid failed");
                    return;
                }
            };
            match registry.owners.remove(&pid) {
                Some(owner) => {
                    // The owner may have dropped its `Exit`: nobody to tell then.
                    let _ = owner.send(status);
                }
                None => tracing::trace!(pid = pid.as_raw(), %status, "reaped an orphan"),
            }
        }
    }

    /// Whether any child is left, ours or adopted, after reaping the exited
    /// ones. One `waitpid` answers it, where listing /proc would take several reads.
    pub fn has_children(&self) -> bool {
        self.reap();
        *self.has_children.borrow()
    }

    /// Resolves once we have no child left at all (every straggler reaped).
    pub async fn all_gone(&self) {
        self.reap();
        let mut watch = self.has_children.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = watch.wait_for(|has| !has).await;
    }
}
