//! `wait_for` (SPEC §1 step 4): dependencies outside the container, such as
//! Redis or a database, waited on with backoff before migrations, bounded
//! by `wait_timeout`.

use std::time::Duration;

use tokio::time::Instant;

use crate::plan::WaitTarget;
use crate::reach;

#[derive(Debug, thiserror::Error)]
#[error("wait_for: {target} is not reachable after {}: {last_error}", humantime::format_duration(*waited))]
pub struct WaitError {
    pub target: String,
    pub waited: Duration,
    #[source]
    pub last_error: reach::ReachError,
}

/// Waits until every target answers, or fails naming the first that never did.
pub async fn wait_all(targets: &[WaitTarget], timeout: Duration) -> Result<(), WaitError> {
    let started = Instant::now();
    let deadline = started + timeout;
    for target in targets {
        let mut delay = Duration::from_millis(100);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let attempt = reach::target(
                &target.address,
                left.clamp(Duration::from_millis(1), Duration::from_secs(2)),
            )
            .await;
            match attempt {
                Ok(()) => {
                    tracing::info!(target = %target.shown, "reachable");
                    break;
                }
                Err(last_error) => {
                    // The budget is spent in full: the last try comes at its end.
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(WaitError {
                            target: target.shown.clone(),
                            waited: started.elapsed().max(timeout),
                            last_error,
                        });
                    }
                    tracing::info!(target = %target.shown, error = %last_error, delay_ms = delay.as_millis() as u64, "waiting");
                    tokio::time::sleep(delay.min(left)).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
    Ok(())
}
