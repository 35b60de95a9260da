//! Whether and when a process that exited runs again.
//!
//! Pure functions over a small history, so the policy is tested with tables
//! and no processes. Backoff doubles from `initial` up to `max`, with a
//! jitter that only ever shortens a step by up to a quarter: consecutive
//! gaps still grow (each range `[0.75b, b]` lies below the next, `[1.5b, 2b]`)
//! while replicas that crash together stop retrying in lock step. After a run
//! of [`STABLE_RUN`] the backoff starts over. The budget counts every restart
//! within the sliding `window`; one more than `max_restarts` means the process
//! has failed for good (systemd's StartLimitBurst/IntervalSec).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::{Backoff, RestartMode, RestartPolicy};
use crate::pid1::ExitStatus;

/// A run at least this long resets the backoff to `initial` (SPEC §2).
pub const STABLE_RUN: Duration = Duration::from_secs(60);

/// What to do with a process that has just exited on its own.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    Restart {
        delay: Duration,
    },
    /// Done, successfully; it will not run again.
    Completed,
    /// Failed for good: a non-zero exit with no restart, or the budget is spent.
    Failed,
}

/// Restarts so far, for the budget and the backoff.
#[derive(Debug, Default, Clone)]
pub struct History {
    recent: VecDeque<Instant>,
    attempt: u32,
}

impl Backoff {
    /// The delay before restart number `attempt` (0-based), `jitter` in `[0, 1)`.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(31));
        let base = self.initial.saturating_mul(factor).min(self.max);
        base.mul_f64(1.0 - 0.25 * jitter.clamp(0.0, 1.0))
    }
}

pub fn decide(
    policy: &RestartPolicy,
    history: &mut History,
    status: ExitStatus,
    ran_for: Duration,
    now: Instant,
    jitter: f64,
) -> Decision {
    if ran_for >= STABLE_RUN {
        history.attempt = 0;
    }
    let wanted = match policy.mode {
        RestartMode::Always => true,
        RestartMode::OnFailure => !status.success(),
        RestartMode::Never => false,
    };
    if !wanted {
        return if status.success() {
            Decision::Completed
        } else {
            Decision::Failed
        };
    }
    while history
        .recent
        .front()
        .is_some_and(|&at| now.duration_since(at) >= policy.window)
    {
        history.recent.pop_front();
    }
    if history.recent.len() >= policy.max_restarts as usize {
        return Decision::Failed;
    }
    history.recent.push_back(now);
    let delay = policy.backoff.delay(history.attempt, jitter);
    history.attempt = history.attempt.saturating_add(1);
    Decision::Restart { delay }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(mode: RestartMode, max_restarts: u32) -> RestartPolicy {
        RestartPolicy {
            mode,
            backoff: Backoff {
                initial: Duration::from_millis(100),
                max: Duration::from_secs(1),
            },
            max_restarts,
            window: Duration::from_secs(60),
        }
    }

    const FAIL: ExitStatus = ExitStatus::Exited(1);
    const OK: ExitStatus = ExitStatus::Exited(0);

    #[test]
    fn modes_decide_by_exit_status() {
        let now = Instant::now();
        let short = Duration::from_millis(10);
        let cases = [
            (RestartMode::Always, OK, true),
            (RestartMode::Always, FAIL, true),
            (RestartMode::OnFailure, OK, false),
            (RestartMode::OnFailure, FAIL, true),
            (RestartMode::Never, OK, false),
            (RestartMode::Never, FAIL, false),
        ];
        for (mode, status, restarts) in cases {
            let decision = decide(&policy(mode, 5), &mut History::default(), status, short, now, 0.0);
            assert_eq!(
                matches!(decision, Decision::Restart { .. }),
                restarts,
                "{mode:?} {status:?}"
            );
        }
        let never_fail = decide(
            &policy(RestartMode::Never, 5),
            &mut History::default(),
            FAIL,
            short,
            now,
            0.0,
        );
        assert_eq!(never_fail, Decision::Failed);
        let never_ok = decide(
            &policy(RestartMode::Never, 5),
            &mut History::default(),
            OK,
            short,
            now,
            0.0,
        );
        assert_eq!(never_ok, Decision::Completed);
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let backoff = policy(RestartMode::Always, 5).backoff;
        let ms = |attempt, jitter| backoff.delay(attempt, jitter).as_millis();
        assert_eq!(
            [ms(0, 0.0), ms(1, 0.0), ms(2, 0.0), ms(3, 0.0), ms(4, 0.0), ms(9, 0.0)],
            [100, 200, 400, 800, 1000, 1000]
        );
        // The worst jitter on a step still leaves it above the best of the step before.
        for attempt in 0..3 {
            assert!(backoff.delay(attempt + 1, 0.999) > backoff.delay(attempt, 0.0));
        }
        assert_eq!(ms(0, 1.0), 75);
    }

    #[test]
    fn budget_within_the_window_then_failed_for_good() {
        let policy = policy(RestartMode::Always, 3);
        let mut history = History::default();
        let start = Instant::now();
        let short = Duration::from_millis(10);
        let mut delays = Vec::new();
        for i in 0..3 {
            match decide(&policy, &mut history, FAIL, short, start + Duration::from_secs(i), 0.0) {
                Decision::Restart { delay } => delays.push(delay.as_millis()),
                other => panic!("restart {i}: {other:?}"),
            }
        }
        assert_eq!(delays, [100, 200, 400]);
        assert_eq!(
            decide(&policy, &mut history, FAIL, short, start + Duration::from_secs(4), 0.0),
            Decision::Failed
        );
        // Once the window has slid past the first restarts, the budget is back.
        let later = start + Duration::from_secs(62);
        assert!(matches!(
            decide(&policy, &mut history, FAIL, short, later, 0.0),
            Decision::Restart { .. }
        ));
    }

    #[test]
    fn a_stable_run_resets_the_backoff() {
        let policy = policy(RestartMode::Always, 100);
        let mut history = History::default();
        let now = Instant::now();
        let short = Duration::from_millis(10);
        for _ in 0..3 {
            decide(&policy, &mut history, FAIL, short, now, 0.0);
        }
        let after_stable = decide(&policy, &mut history, FAIL, STABLE_RUN, now, 0.0);
        assert_eq!(
            after_stable,
            Decision::Restart {
                delay: Duration::from_millis(100)
            }
        );
    }

    #[test]
    fn zero_budget_never_restarts() {
        let decision = decide(
            &policy(RestartMode::Always, 0),
            &mut History::default(),
            FAIL,
            Duration::ZERO,
            Instant::now(),
            0.0,
        );
        assert_eq!(decision, Decision::Failed);
    }
}
