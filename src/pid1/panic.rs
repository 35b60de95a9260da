//! What a panic does to PID 1: stop the children, then exit 70.
//!
//! As PID 1, our exit SIGKILLs every process in the container without
//! warning, and `panic = "abort"` would end us with SIGABRT. So the hook,
//! which runs before the abort, gives every child its SIGTERM, waits up to a
//! grace period while reaping, SIGKILLs what is left and exits with 70
//! (EX_SOFTWARE). The message names the code location only: a panic payload
//! may quote data (a string being sliced, say) and could leak a value.

use std::io::Write;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};

use super::spawn;
use super::Reaper;

const GRACE: Duration = Duration::from_secs(3);

pub fn install(reaper: Reaper, is_init: bool) {
    std::panic::set_hook(Box::new(move |info| {
        let location = info.location().map_or_else(
            || "an unknown place".to_string(),
            |l| format!("{}:{}", l.file(), l.line()),
        );
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(
            stderr,
            "error: internal error (panic at {location}); stopping every process\nhint: please report this, with the lines above"
        );
        stop_everything(&reaper, is_init);
        std::process::exit(70);
    }));
}

fn stop_everything(reaper: &Reaper, is_init: bool) {
    let groups = reaper.registered();
    for &pid in &groups {
        spawn::stop_group(pid, Signal::SIGTERM);
    }
    spawn::signal_stragglers(Signal::SIGTERM, is_init);
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(10)),
            Ok(_) => {}
            Err(_) => return,
        }
    }
    for &pid in &groups {
        spawn::signal_group(pid, Signal::SIGKILL);
    }
    spawn::signal_stragglers(Signal::SIGKILL, is_init);
}
