//! Everything that makes us a correct PID 1, and the only code that calls
//! `sigprocmask`, `waitpid`, `kill` and `setpgid`.
//!
//! Kept small on purpose (tini is the model): `signals` blocks every signal at
//! the top of `main` and reads them back from a signalfd; `reaper` drains
//! `waitpid(-1)` on each SIGCHLD and hands each status to whoever spawned that
//! pid; `spawn` starts a child in its own process group with a clean signal
//! state and no inherited descriptors, and signals groups.

pub mod panic;
pub mod reaper;
pub mod signals;
pub mod spawn;

pub use reaper::{Child, Exit, ExitStatus, Reaper};

use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::sync::mpsc;

use signals::{meaning, Meaning};

/// True when we are the init of a PID namespace (a container's PID 1).
pub fn is_init() -> bool {
    nix::unistd::getpid() == Pid::from_raw(1)
}

/// Makes orphans re-parent to us when we are not PID 1 (`docker run --init`,
/// Kubernetes `shareProcessNamespace`, or a laptop), so they are still reaped.
pub fn become_subreaper() -> std::io::Result<()> {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Marks every descriptor above stderr close-on-exec, so children never
/// inherit what our own parent leaked to us (catatonit #12).
pub fn close_inherited_descriptors() {
    // SAFETY: close_range only changes descriptor flags; CLOSE_RANGE_CLOEXEC closes nothing now.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    if rc == 0 {
        return;
    }
    // Kernels before 5.11: walk /proc/self/fd instead.
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: F_SETFD on a descriptor number only sets a flag; an already-closed fd yields EBADF.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
}

/// TERM (then KILL after `grace`) to whatever is left of our children: as
/// PID 1 our exit would SIGKILL them without warning (SPEC §6). Ends as soon
/// as nothing is left, never after a fixed sleep; a stop signal cuts the grace short.
pub async fn stop_stragglers(
    reaper: &Reaper,
    is_init: bool,
    grace: Duration,
    forced: bool,
    signals: &mut mpsc::UnboundedReceiver<Signal>,
) {
    // Every process of a PID namespace descends from its PID 1, and orphans
    // come back to a subreaper: no child at all means no straggler.
    if !reaper.has_children() {
        return;
    }
    if !forced {
        spawn::signal_stragglers(Signal::SIGTERM, is_init);
        let deadline = tokio::time::Instant::now() + grace;
        let gone = reaper.all_gone();
        tokio::pin!(gone);
        loop {
            tokio::select! {
                () = &mut gone => return,
                () = tokio::time::sleep_until(deadline) => break,
                Some(signal) = signals.recv() => if meaning(signal) == Meaning::Stop { break },
            }
        }
    }
    spawn::signal_stragglers(Signal::SIGKILL, is_init);
    let _ = tokio::time::timeout(Duration::from_secs(2), reaper.all_gone()).await;
}
