//! Holding the migration lock while a command outside the lock session works
//! (the migration tool, a task under the lock): a lease, not a hope (SPEC §4).
//!
//! # Why no two replicas' commands can overlap
//!
//! The server hands the lock to a waiter only once our session is gone, and
//! it can go at any moment: `pg_terminate_backend`, a restart, its keepalive
//! giving up on a partitioned client. Two rules together make that safe:
//!
//! 1. **The holder's bound.** Each heartbeat asks the server whether this
//!    session still holds the lock. Call `renewed` the moment the last
//!    confirmed heartbeat was *sent*: the lock was held then, so the server
//!    released it (if it did) after `renewed`. The holder's command is dead
//!    by `renewed + LEASE` whatever happens to the connection: a heartbeat
//!    error (seen at once, since a query is in flight nearly all the time), a
//!    heartbeat with no answer, or a session that lost the lock all stop it,
//!    and SIGKILL reaches its whole group at that deadline at the latest. The
//!    command itself cannot outlive a holder that is killed: a guard process
//!    kills its group (`pid1::spawn`).
//! 2. **The taker's wait.** Before a command starts, the holder records it as
//!    unfinished in `_supervisor_lease` (committed, `synchronous_commit = on`)
//!    and clears the record once the command's group is empty. A replica that
//!    takes the lock and finds the record waits `TAKEOVER_WAIT` (> `LEASE`)
//!    from the moment it got the lock before it does anything: by then the
//!    previous holder's command is dead, since the lock was released after
//!    `renewed` and that command was dead by `renewed + LEASE`.
//!
//! The server's own timeouts on a silent client (`tcp_user_timeout` and
//! keepalives, set on the lock session in `db`) are longer than `LEASE` too,
//! so in a partition the holder has given up before the lock is even free.
//! What this cannot cover: a holder frozen by SIGSTOP while its command goes
//! on (its deadline cannot fire), and clocks running at different *rates*.

use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::db::{Db, LockKey};
use super::url::DatabaseUrl;
use crate::job::Job;
use crate::pid1::signals::next_stop;
use crate::pid1::ExitStatus;

/// The holder's command is dead within this of its last confirmed heartbeat.
pub const LEASE: Duration = Duration::from_secs(10);
/// A replica that finds unfinished work waits this long after taking the lock.
pub const TAKEOVER_WAIT: Duration = Duration::from_secs(12);
/// Each heartbeat waits this long inside the server after its check…
const PAUSE: Duration = Duration::from_millis(500);
/// …and must be answered within this much more.
const ANSWER_WITHIN: Duration = Duration::from_secs(3);
/// SIGKILL comes this long before the deadline, so the group is gone by it.
const KILL_MARGIN: Duration = Duration::from_millis(500);
/// How long a command stopped by a stop signal gets before SIGKILL.
const STOP_GRACE: Duration = crate::config::DEFAULT_STOP_TIMEOUT;

/// How holding the lock for a command ended.
pub enum Ended {
    Finished(ExitStatus),
    /// The lease could not be renewed; the command was stopped.
    Lost(String),
    Stopped(Signal),
}

/// Waits for `job` while renewing the lease. `confirmed` is when the check
/// that the lock was held, made just before the job started, was sent.
pub async fn hold(
    db: &mut Db,
    key: &LockKey,
    url: &DatabaseUrl,
    job: &mut Job,
    confirmed: Instant,
    signals: &mut mpsc::UnboundedReceiver<Signal>,
) -> Ended {
    let mut renewed = confirmed;
    let reason = loop {
        let sent = Instant::now();
        let beat = tokio::time::timeout(PAUSE + ANSWER_WITHIN, db.beat(key, PAUSE));
        tokio::select! {
            status = job.wait() => return Ended::Finished(status),
            signal = next_stop(signals) => {
                tracing::info!(signal = %signal, "stopping the command under the migration lock; the lock is released once it has stopped");
                job.stop(STOP_GRACE).await;
                return Ended::Stopped(signal);
            }
            answer = beat => match answer {
                Ok(Ok(true)) => renewed = sent,
                Ok(Ok(false)) => break "this session no longer holds it".to_string(),
                Ok(Err(err)) => break super::describe(url, &err),
                Err(_) => break format!(
                    "the database did not answer a heartbeat within {}",
                    humantime::format_duration(PAUSE + ANSWER_WITHIN)
                ),
            },
        }
    };
    let deadline = renewed + LEASE;
    tracing::error!(
        reason = %reason,
        "the migration lock is lost: stopping the command (SIGKILL within {} ms)",
        deadline.saturating_duration_since(Instant::now()).as_millis()
    );
    let grace = deadline
        .saturating_duration_since(Instant::now())
        .saturating_sub(KILL_MARGIN);
    job.stop(grace).await;
    Ended::Lost(reason)
}
