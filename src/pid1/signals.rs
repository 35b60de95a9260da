//! Signals: blocked before anything else runs, read back in one place.
//!
//! A PID-namespace init drops every signal left at SIG_DFL, and a handler
//! installed after the runtime started would race with early signals. So
//! `block` runs first in `main`, before any thread exists (threads inherit
//! the mask), and `listen` reads the pending signals from a signalfd. A
//! blocked signal stays pending until we read it: nothing that arrives
//! before the children exist is lost. std's `Command` gives every child an
//! empty mask and default dispositions, so children never inherit ours.

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use super::Reaper;

/// Synchronous faults must stay deliverable: blocking them makes a real fault
/// kill us without a core. SIGPIPE stays ignored (the Rust runtime's default)
/// rather than blocked, or our own EPIPEs would queue up as signals to read.
const NEVER_BLOCKED: [Signal; 8] = [
    Signal::SIGSEGV,
    Signal::SIGBUS,
    Signal::SIGILL,
    Signal::SIGFPE,
    Signal::SIGABRT,
    Signal::SIGTRAP,
    Signal::SIGSYS,
    Signal::SIGPIPE,
];

/// The set `block` blocks and `listen` reads.
fn blocked_set() -> SigSet {
    let mut set = SigSet::all();
    for signal in NEVER_BLOCKED {
        set.remove(signal);
    }
    set
}

/// Blocks every asynchronous signal in the calling thread. Call it first in
/// `main`, before any thread or runtime exists.
pub fn block() -> nix::Result<()> {
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&blocked_set()), None)
}

/// Starts reading signals on the current runtime. SIGCHLD is consumed here,
/// by draining the reaper; every other signal is sent, in arrival order, on
/// the returned channel, which buffers them until someone listens.
pub fn listen(reaper: Reaper) -> std::io::Result<mpsc::UnboundedReceiver<Signal>> {
    let fd = SignalFd::with_flags(&blocked_set(), SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
    // SAFETY: the SignalFd owns its descriptor, which stays open and unchanged
    // until the AsyncFd (moved into the task below) drops it.
    let fd = unsafe { AsyncFd::register(fd) }.map_err(std::io::Error::from)?;
    let (tx, rx) = mpsc::unbounded_channel();
    // A child may have exited before the signalfd existed; its SIGCHLD is
    // pending and will be read, but drain once anyway to be sure.
    reaper.reap();
    tokio::spawn(async move {
        loop {
            let mut guard = match fd.readable().await {
                Ok(guard) => guard,
                Err(err) => {
                    tracing::error!(error = %err, "cannot wait for signals");
                    return;
                }
            };
            loop {
                match guard.get_inner().read_signal() {
                    Ok(Some(info)) => {
                        let Ok(signal) = Signal::try_from(info.ssi_signo as i32) else {
                            tracing::debug!(signal = info.ssi_signo, "ignoring a real-time signal");
                            continue;
                        };
                        tracing::trace!(signal = %signal, sender = info.ssi_pid, "received");
                        if signal == Signal::SIGCHLD {
                            reaper.reap();
                        } else if tx.send(signal).is_err() {
                            // Nobody listens any more: we are exiting.
                        }
                    }
                    Ok(None) => {
                        guard.clear_ready();
                        break;
                    }
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(err) => {
                        tracing::error!(error = %err, "cannot read signals");
                        guard.clear_ready();
                        break;
                    }
                }
            }
        }
    });
    Ok(rx)
}

/// What a signal sent to the supervisor means (SPEC §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    /// SIGTERM, SIGINT, SIGQUIT: stop gracefully; a second one stops at once.
    Stop,
    /// SIGHUP, SIGUSR1, SIGUSR2, SIGWINCH: passed on to every process group.
    Forward,
    /// Job control (TSTP, TTIN, TTOU) must never stop PID 1; the rest is noise.
    Ignore,
}

pub fn meaning(signal: Signal) -> Meaning {
    use Signal::*;
    match signal {
        SIGTERM | SIGINT | SIGQUIT => Meaning::Stop,
        SIGHUP | SIGUSR1 | SIGUSR2 | SIGWINCH => Meaning::Forward,
        _ => Meaning::Ignore,
    }
}

/// The next stop signal (SPEC §6), for phases that run before any process
/// exists: other signals have nobody to be forwarded to yet and are dropped.
/// Never resolves once the channel is closed.
pub async fn next_stop(signals: &mut mpsc::UnboundedReceiver<Signal>) -> Signal {
    loop {
        match signals.recv().await {
            Some(signal) if meaning(signal) == Meaning::Stop => return signal,
            Some(_) => {}
            None => std::future::pending::<()>().await,
        }
    }
}
