//! Starting children and signalling their process groups.
//!
//! Each child gets its own process group, created *in the child before exec*
//! (std's `process_group(0)`); std's `spawn` returns only once exec has
//! happened, so by the time anyone knows the pid the group exists and a
//! signal to it cannot miss (the window that loses signals in `tini -g`).
//! stdin is /dev/null. std resets SIGPIPE in the child but leaves the mask
//! and other ignored signals alone, so `pre_exec` resets the whole signal
//! state; it also drops privileges last, with everything resolved before the
//! fork (getpwnam is not async-signal-safe).

use crate::environment::Environment;
use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::errno::Errno;
use nix::sys::signal::{self, Signal};
use nix::unistd::{Gid, Pid, Uid};

use crate::config::CommandLine;

/// A user to run a child as, looked up before forking.
#[derive(Debug, Clone)]
pub struct Identity {
    pub name: String,
    pub uid: Uid,
    pub gid: Gid,
    pub groups: Vec<Gid>,
    pub home: std::path::PathBuf,
}

/// Why a user could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("user {name:?} does not exist on this system")]
    NotFound { name: String },
    #[error("cannot look up user {name:?}: {source}")]
    Lookup {
        name: String,
        #[source]
        source: nix::Error,
    },
    #[error("user {name:?} has a NUL in its name")]
    Nul { name: String },
}

/// Looks up a user by name or numeric uid, with its supplementary groups:
/// the one place of this rule (config checks and spawning both use it).
pub fn resolve_user(name: &str) -> Result<Identity, UserError> {
    let user = match name.parse::<u32>() {
        Ok(uid) => nix::unistd::User::from_uid(Uid::from_raw(uid)),
        Err(_) => nix::unistd::User::from_name(name),
    }
    .map_err(|source| UserError::Lookup {
        name: name.to_string(),
        source,
    })?
    .ok_or_else(|| UserError::NotFound { name: name.to_string() })?;
    let c_name = CString::new(user.name.clone()).map_err(|_| UserError::Nul { name: name.to_string() })?;
    let groups = nix::unistd::getgrouplist(&c_name, user.gid).unwrap_or_else(|_| vec![user.gid]);
    Ok(Identity {
        name: user.name,
        uid: user.uid,
        gid: user.gid,
        groups,
        home: user.dir,
    })
}

/// Where a child's stdout and stderr go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Pipes we read line by line.
    Piped,
    /// Straight to our own stdout/stderr.
    Inherit,
    /// Discarded (probes).
    Null,
}

/// Everything needed to build one child's `Command`.
pub struct Spec<'a> {
    pub command: &'a CommandLine,
    pub cwd: Option<&'a Path>,
    /// The child's whole environment; nothing else is inherited.
    pub env: &'a Environment,
    pub user: Option<&'a Identity>,
    pub output: Output,
    /// Our stdin is the child's (`exec`: `supervisor exec -- psql < dump.sql`);
    /// otherwise /dev/null.
    pub pass_stdin: bool,
    /// Make the child's group the terminal's foreground group (interactive `exec`).
    pub take_terminal: bool,
    /// Never let the command outlive us: a guard process leads its group and
    /// kills the whole group if we die first (see `split_off_guard`).
    pub guarded: bool,
}

pub fn command(spec: &Spec) -> Command {
    let mut command = match spec.command {
        CommandLine::Shell(line) => {
            let mut command = Command::new("/bin/sh");
            command.arg("-c").arg(line);
            command
        }
        CommandLine::Exec(argv) => {
            let mut command = Command::new(&argv[0]);
            command.args(&argv[1..]);
            command
        }
    };
    command.env_clear().envs(spec.env.iter());
    if let Some(cwd) = spec.cwd {
        command.current_dir(cwd);
    }
    command.stdin(if spec.pass_stdin || spec.take_terminal {
        Stdio::inherit()
    } else {
        Stdio::null()
    });
    let (stdout, stderr) = match spec.output {
        Output::Piped => (Stdio::piped(), Stdio::piped()),
        Output::Inherit => (Stdio::inherit(), Stdio::inherit()),
        Output::Null => (Stdio::null(), Stdio::null()),
    };
    command.stdout(stdout).stderr(stderr).process_group(0);

    let identity = spec.user.cloned();
    let take_terminal = spec.take_terminal;
    let guard_for = spec.guarded.then(|| nix::unistd::getpid().as_raw());
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe syscalls (fork, prctl, sigprocmask, tcsetpgrp,
    // setgroups, setgid, setuid, waitpid, kill) on data resolved before the
    // fork; it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            if let Some(parent) = guard_for {
                split_off_guard(parent)?;
            }
            reset_signal_state()?;
            if take_terminal {
                claim_terminal();
            }
            if let Some(identity) = &identity {
                nix::unistd::setgroups(&identity.groups)?;
                nix::unistd::setgid(identity.gid)?;
                nix::unistd::setuid(identity.uid)?;
            }
            Ok(())
        });
    }
    command
}

/// In the forked child of a guarded spawn: fork once more. The grandchild
/// returns and goes on to exec the command; this process stays behind as the
/// leader of the command's process group and never returns.
///
/// Why: `PR_SET_PDEATHSIG` alone reaches only the direct child, so when we
/// are SIGKILLed (or OOM-killed) while not PID 1, whatever `sh -c` or `npx`
/// started would run on as orphans, and a migration command could then run
/// beside the next replica's (SPEC §4). The guard notices our death and
/// kills its whole group; while we live it only mirrors the command's exit.
fn split_off_guard(parent: libc::pid_t) -> std::io::Result<()> {
    // The group must exist before the fork so that both end up in it.
    // SAFETY: setpgid and fork are async-signal-safe; the forked child of a
    // multi-threaded process only makes raw syscalls from here on.
    let command = unsafe {
        if libc::setpgid(0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        libc::fork()
    };
    match command {
        -1 => Err(std::io::Error::last_os_error()),
        0 => {
            // The command: should the guard itself be killed, so is it.
            // SAFETY: prctl with integer arguments.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
            Ok(())
        }
        command => guard(parent, command),
    }
}

/// The guard's whole life: raw syscalls only (we are the fork of a
/// multi-threaded process and never exec).
fn guard(parent: libc::pid_t, command: libc::pid_t) -> ! {
    let every_signal: u64 = !0;
    // SAFETY: each call is a raw syscall on plain integers or on buffers owned
    // by this frame, sized as the kernel expects (an 8-byte sigset, a 128-byte
    // siginfo, a 16-byte rlimit); none allocates.
    unsafe {
        // Every signal is received by sigtimedwait, none acts: the stop signals
        // meant for the command reach this process too, as it leads the group.
        set_mask(libc::SIG_SETMASK, every_signal);
        // Nothing of ours stays open here: the command's pipes must end when it
        // does, std's exec-status pipe must close, and no socket of ours (the
        // lock session, the health listener) may outlive us through this copy.
        if libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32) != 0 {
            for fd in 0..4096 {
                libc::close(fd);
            }
        }
        // Mirroring a crash must not dump a core of a copy of our memory.
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGHUP, 0, 0, 0);
        let mut info = [0u64; 16];
        loop {
            // PDEATHSIG also fires when the spawning *thread* ends; only a new
            // parent means that the supervisor itself is gone.
            if libc::getppid() != parent {
                libc::kill(0, libc::SIGKILL);
                libc::_exit(137);
            }
            let mut status = 0;
            if libc::waitpid(command, &mut status, libc::WNOHANG) == command {
                mirror_exit(status);
            }
            libc::syscall(
                libc::SYS_rt_sigtimedwait,
                &every_signal as *const u64,
                info.as_mut_ptr(),
                std::ptr::null::<libc::timespec>(),
                8usize,
            );
        }
    }
}

/// Ends the guard the way its command ended, so the exit reads the same.
fn mirror_exit(status: libc::c_int) -> ! {
    // SAFETY: raw syscalls on integers and on a zeroed kernel sigaction.
    unsafe {
        if libc::WIFSIGNALED(status) {
            let signal = libc::WTERMSIG(status);
            set_default_action(signal);
            set_mask(libc::SIG_UNBLOCK, 1 << (signal - 1));
            libc::kill(libc::getpid(), signal);
            libc::_exit(128 + signal);
        }
        libc::_exit(libc::WEXITSTATUS(status))
    }
}

/// SIGKILL to the whole group led by `leader`, then waits (bounded) until no
/// member is left, zombies included: what the command started in its group
/// must be gone before the lock it ran under can go to someone else.
pub async fn kill_group_and_wait(leader: Pid, within: std::time::Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    let _ = signal::killpg(leader, Signal::SIGKILL);
    loop {
        match signal::killpg(leader, None) {
            Err(Errno::ESRCH) => return true,
            _ if tokio::time::Instant::now() >= deadline => return false,
            _ => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
        }
    }
}

/// In the child: default dispositions and an empty mask, whatever we inherited.
///
/// std resets only SIGPIPE, and our mask blocks everything, so a child would
/// otherwise ignore every signal we send; a signal that was ignored when we
/// started (nohup, a test harness) would stay ignored across exec too. Raw
/// syscalls, because glibc refuses to touch its internal signals (32, 33),
/// which may have come to us blocked or ignored.
fn reset_signal_state() -> std::io::Result<()> {
    for signal in 1..=64 {
        if signal != libc::SIGKILL && signal != libc::SIGSTOP {
            set_default_action(signal);
        }
    }
    if set_mask(libc::SIG_SETMASK, 0) == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// SIG_DFL for `signal`, by raw syscall (async-signal-safe; glibc would
/// refuse its internal signals 32 and 33).
fn set_default_action(signal: libc::c_int) {
    // Zeroed, this is SIG_DFL with no flags and an empty mask; 4 words cover
    // the kernel's `struct sigaction` on every 64-bit Linux.
    let default_action = [0u64; 4];
    // SAFETY: rt_sigaction reads a kernel `struct sigaction` (at most 32 bytes)
    // from `default_action` and writes nothing, as the old-action pointer is null.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            signal,
            default_action.as_ptr(),
            std::ptr::null_mut::<u64>(),
            std::mem::size_of::<u64>(),
        )
    };
}

/// `rt_sigprocmask(how, set)` by raw syscall; 0 on success.
fn set_mask(how: libc::c_int, set: u64) -> libc::c_long {
    // SAFETY: rt_sigprocmask reads 8 bytes from `set` (the kernel's sigset size
    // on Linux) and writes nothing, as the old-set pointer is null.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            how,
            &set as *const u64,
            std::ptr::null_mut::<u64>(),
            std::mem::size_of::<u64>(),
        )
    }
}

/// In the child: become the terminal's foreground group, so Ctrl-C and
/// reads from the terminal reach it (tini's `isolate_child`). A background
/// group calling tcsetpgrp gets SIGTTOU, hence the brief block. No terminal
/// (ENOTTY) or no controlling terminal (ENXIO) is fine: nothing to claim.
fn claim_terminal() {
    let mut ttou = signal::SigSet::empty();
    ttou.add(Signal::SIGTTOU);
    let mut old = signal::SigSet::empty();
    if signal::sigprocmask(signal::SigmaskHow::SIG_BLOCK, Some(&ttou), Some(&mut old)).is_ok() {
        let _ = nix::unistd::tcsetpgrp(std::io::stdin(), nix::unistd::getpgrp());
        let _ = signal::sigprocmask(signal::SigmaskHow::SIG_SETMASK, Some(&old), None);
    }
}

/// A `cwd` that is not a directory, named: std would report it as a bare
/// "No such file or directory", indistinguishable from a missing program.
pub fn check_cwd(cwd: Option<&Path>) -> std::io::Result<()> {
    match cwd {
        Some(cwd) if !cwd.is_dir() => Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("cwd {} is not a directory", cwd.display()),
        )),
        _ => Ok(()),
    }
}

/// Sends `signal` to the process group led by `pid`; falls back to the pid
/// itself when the group is gone (ESRCH), as a child may have left it.
pub fn signal_group(pid: Pid, signal: Signal) {
    match signal::killpg(pid, signal) {
        Ok(()) => {}
        Err(Errno::ESRCH) => {
            let _ = signal::kill(pid, signal);
        }
        Err(err) => {
            tracing::warn!(pid = pid.as_raw(), signal = %signal, error = %err, "cannot signal process group")
        }
    }
}

/// Sends `signal` then SIGCONT to a group: a stopped process with a handler
/// only acts on the signal once continued (s6 does the same).
pub fn stop_group(pid: Pid, signal: Signal) {
    signal_group(pid, signal);
    if signal != Signal::SIGKILL && signal != Signal::SIGCONT {
        signal_group(pid, Signal::SIGCONT);
    }
}

/// Signals every process we can reach that is left over at shutdown: as PID 1,
/// `kill(-1)` reaches the whole namespace but us; otherwise only our own
/// direct children (adopted orphans included), never the user's other processes.
pub fn signal_stragglers(signal: Signal, is_init: bool) {
    if is_init {
        let _ = signal::kill(Pid::from_raw(-1), signal);
        if signal != Signal::SIGKILL {
            let _ = signal::kill(Pid::from_raw(-1), Signal::SIGCONT);
        }
        return;
    }
    for pid in own_children() {
        let _ = signal::kill(pid, signal);
        if signal != Signal::SIGKILL {
            let _ = signal::kill(pid, Signal::SIGCONT);
        }
    }
}

/// Our direct children, from /proc (every thread's list).
pub fn own_children() -> Vec<Pid> {
    let mut pids = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return pids;
    };
    for task in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            pids.extend(
                text.split_whitespace()
                    .filter_map(|pid| pid.parse().ok())
                    .map(Pid::from_raw),
            );
        }
    }
    pids
}

/// The exit code a shell would give for a spawn error: 127 not found, 126 not executable.
pub fn spawn_error_code(err: &std::io::Error) -> i32 {
    match err.kind() {
        std::io::ErrorKind::NotFound => 127,
        std::io::ErrorKind::PermissionDenied => 126,
        _ => 1,
    }
}
