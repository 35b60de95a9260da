//! The supervision core as a pure function: an instance's [`Core`], one
//! [`Input`], its process's config and the time give the next core and the
//! [`Action`]s the executor (`Supervisor`) carries out. Nothing here touches
//! the OS, spawns, signals or logs; every transition is a table test below,
//! with fake pids and instants.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::probes::Kind;
use super::process::{Core, ProbeCounts, State, Then};
use super::restart::{self, Decision};
use crate::config::Process;
use crate::pid1::ExitStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// Its dependencies hold (from `Waiting`).
    Start,
    /// The executor spawned it (after an `Action::Spawn`).
    Spawned {
        pid: Pid,
    },
    /// The executor could not spawn it: counts as an exit with `code`.
    SpawnFailed {
        code: i32,
    },
    Exited {
        status: ExitStatus,
    },
    Probe {
        kind: Kind,
        passed: bool,
    },
    /// `now` has reached the state's deadline (a backoff, a stop timeout).
    Deadline,
    /// A dependency can never hold; `code` is the exit that made it so.
    Blocked {
        code: i32,
    },
    /// The run is stopping and everything depending on this one is down.
    Stop,
    /// A second stop signal: SIGKILL at once.
    Kill,
    /// `supervisor stop` (or the first half of `supervisor restart`).
    Hold,
    /// `supervisor start` (or the second half of a restart): back to
    /// `Waiting`, its restart budget whole again.
    Release,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Spawn a new run; answer with `Spawned` or `SpawnFailed`.
    Spawn,
    /// `signal`, then SIGCONT, to the run's process group.
    StopGroup {
        pid: Pid,
        signal: Signal,
    },
    KillGroup {
        pid: Pid,
    },
    StartProbe(Kind),
    /// The run ended: its probe tasks go.
    EndProbes,
    /// It failed for good or can never start: the run decides (critical?).
    FailedForGood {
        code: i32,
    },
    /// Something to log.
    Log(Note),
}

/// What happened, for the executor's log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    Started {
        pid: Pid,
    },
    Ready {
        pid: Pid,
    },
    NotReady {
        pid: Pid,
    },
    LiveFailed {
        pid: Pid,
        failures: u32,
    },
    Restarting {
        status: ExitStatus,
        attempt: u32,
        delay: Duration,
    },
    Completed {
        status: ExitStatus,
    },
    FailedForGood {
        status: ExitStatus,
    },
    /// `restart = "always"` and it kept exiting 0.
    Looped,
    Stopped {
        pid: Pid,
        status: ExitStatus,
    },
    ExitedDuringStop {
        pid: Pid,
        status: ExitStatus,
    },
    KilledAfterTimeout {
        pid: Pid,
    },
    Blocked,
    /// Down by an operator's request.
    Held {
        pid: Pid,
        status: ExitStatus,
    },
}

/// The whole state machine of one instance. `stopping`: the run is
/// stopping; `jitter` in `[0, 1)` for the backoff.
pub fn step(core: &mut Core, input: Input, config: &Process, stopping: bool, now: Instant, jitter: f64) -> Vec<Action> {
    use Action::*;
    match (core.state, input) {
        (State::Waiting, Input::Start) => vec![Spawn],
        (State::Backoff { until }, Input::Deadline) if until <= now && !stopping => vec![Spawn],
        (State::Waiting | State::Backoff { .. }, Input::Spawned { pid }) => {
            core.ever_started = true;
            // Without a ready probe a process is ready once started (SPEC §2).
            core.state = State::Running {
                pid,
                since: now,
                ready: config.ready.is_none(),
                counts: ProbeCounts::default(),
            };
            let mut actions = vec![Log(Note::Started { pid })];
            if config.ready.is_some() {
                actions.push(StartProbe(Kind::Ready));
            } else if config.live.is_some() {
                actions.push(StartProbe(Kind::Live));
            }
            actions
        }
        (State::Waiting | State::Backoff { .. }, Input::SpawnFailed { code }) => {
            settle(core, ExitStatus::Exited(code), Duration::ZERO, config, now, jitter)
        }
        (State::Running { pid, since, .. }, Input::Exited { status }) => {
            let during_stop = Note::ExitedDuringStop { pid, status };
            run_ended(core, status, since, Some(during_stop), config, stopping, now, jitter)
        }
        (
            State::Stopping {
                pid,
                killed,
                then: Then::Stop,
                ..
            },
            Input::Exited { status },
        ) => {
            core.last_exit = Some(status);
            core.state = State::Stopped { clean: !killed };
            vec![EndProbes, Log(Note::Stopped { pid, status })]
        }
        (
            State::Stopping {
                since,
                then: Then::Restart,
                ..
            },
            Input::Exited { status },
        ) => run_ended(core, status, since, None, config, stopping, now, jitter),
        (
            State::Stopping {
                pid, then: Then::Hold, ..
            },
            Input::Exited { status },
        ) => {
            core.last_exit = Some(status);
            core.state = State::Held;
            vec![EndProbes, Log(Note::Held { pid, status })]
        }
        (
            State::Running {
                pid,
                since,
                ready,
                counts,
            },
            Input::Probe { kind, passed },
        ) => on_probe(core, pid, since, ready, counts, kind, passed, config, now),
        (
            State::Stopping {
                pid,
                since,
                deadline,
                killed: false,
                then,
            },
            Input::Deadline,
        ) if deadline <= now => {
            core.state = State::Stopping {
                pid,
                since,
                deadline,
                killed: true,
                then,
            };
            let mut actions = vec![KillGroup { pid }];
            // A liveness restart kills a hung run by design; any other stop timing out is news.
            if then != Then::Restart {
                actions.insert(0, Log(Note::KilledAfterTimeout { pid }));
            }
            actions
        }
        (State::Waiting, Input::Blocked { code }) => {
            core.state = State::Blocked;
            core.last_exit = Some(ExitStatus::Exited(code));
            vec![Log(Note::Blocked), FailedForGood { code }]
        }
        (State::Running { pid, since, .. }, Input::Stop) => {
            vec![begin_stopping(core, pid, since, Then::Stop, config, now)]
        }
        (
            State::Stopping {
                then: Then::Restart | Then::Hold,
                ..
            },
            Input::Stop,
        ) => {
            if let State::Stopping { then, .. } = &mut core.state {
                *then = Then::Stop;
            }
            Vec::new()
        }
        (State::Waiting | State::Backoff { .. } | State::Held, Input::Stop | Input::Kill) => {
            core.state = State::Stopped { clean: true };
            Vec::new()
        }
        (State::Running { pid, since, .. }, Input::Hold) => {
            vec![begin_stopping(core, pid, since, Then::Hold, config, now)]
        }
        (
            State::Stopping {
                then: Then::Restart, ..
            },
            Input::Hold,
        ) => {
            if let State::Stopping { then, .. } = &mut core.state {
                *then = Then::Hold;
            }
            Vec::new()
        }
        (State::Waiting | State::Backoff { .. }, Input::Hold) => {
            core.state = State::Held;
            Vec::new()
        }
        (State::Held | State::Exited(_) | State::Failed(_) | State::Blocked, Input::Release) if !stopping => {
            core.state = State::Waiting;
            core.history = Default::default();
            Vec::new()
        }
        (State::Running { pid, since, .. } | State::Stopping { pid, since, .. }, Input::Kill) => {
            core.state = State::Stopping {
                pid,
                since,
                deadline: now,
                killed: true,
                then: Then::Stop,
            };
            vec![KillGroup { pid }]
        }
        _ => Vec::new(),
    }
}

/// Sends the run its `stop_signal`, SIGKILL due after `stop_timeout` (at
/// none when the stop signal is SIGKILL itself).
fn begin_stopping(core: &mut Core, pid: Pid, since: Instant, then: Then, config: &Process, now: Instant) -> Action {
    core.state = State::Stopping {
        pid,
        since,
        deadline: now + config.stop_timeout,
        killed: config.stop_signal == Signal::SIGKILL,
        then,
    };
    Action::StopGroup {
        pid,
        signal: config.stop_signal,
    }
}

/// Counts a probe result; flips readiness or restarts on a threshold.
#[allow(clippy::too_many_arguments)]
fn on_probe(
    core: &mut Core,
    pid: Pid,
    since: Instant,
    ready: bool,
    mut counts: ProbeCounts,
    kind: Kind,
    passed: bool,
    config: &Process,
    now: Instant,
) -> Vec<Action> {
    let mut actions = Vec::new();
    let mut ready_now = ready;
    match kind {
        Kind::Ready => {
            let Some(probe) = &config.ready else {
                return actions;
            };
            if passed {
                counts.ready_passes += 1;
                counts.ready_failures = 0;
            } else {
                counts.ready_failures += 1;
                counts.ready_passes = 0;
            }
            if !ready && counts.ready_passes >= probe.success_threshold {
                ready_now = true;
                actions.push(Action::Log(Note::Ready { pid }));
                if config.live.is_some() {
                    actions.push(Action::StartProbe(Kind::Live));
                }
            } else if ready && counts.ready_failures >= probe.failure_threshold {
                ready_now = false;
                actions.push(Action::Log(Note::NotReady { pid }));
            }
        }
        Kind::Live => {
            let Some(probe) = &config.live else {
                return actions;
            };
            counts.live_failures = if passed { 0 } else { counts.live_failures + 1 };
            if counts.live_failures >= probe.failure_threshold {
                return vec![
                    Action::Log(Note::LiveFailed {
                        pid,
                        failures: counts.live_failures,
                    }),
                    Action::EndProbes,
                    begin_stopping(core, pid, since, Then::Restart, config, now),
                ];
            }
        }
    }
    core.state = State::Running {
        pid,
        since,
        ready: ready_now,
        counts,
    };
    actions
}

/// A run that ended without our stop (on its own, or killed for a liveness
/// restart): down for good when the run is stopping, else the policy decides.
#[allow(clippy::too_many_arguments)]
fn run_ended(
    core: &mut Core,
    status: ExitStatus,
    since: Instant,
    during_stop: Option<Note>,
    config: &Process,
    stopping: bool,
    now: Instant,
    jitter: f64,
) -> Vec<Action> {
    core.last_exit = Some(status);
    let mut actions = vec![Action::EndProbes];
    if stopping {
        core.state = State::Stopped { clean: true };
        actions.extend(during_stop.map(Action::Log));
    } else {
        actions.extend(settle(core, status, now - since, config, now, jitter));
    }
    actions
}

/// The restart policy for a run that ended on its own after `ran_for`.
fn settle(
    core: &mut Core,
    status: ExitStatus,
    ran_for: Duration,
    config: &Process,
    now: Instant,
    jitter: f64,
) -> Vec<Action> {
    core.last_exit = Some(status);
    match restart::decide(&config.restart, &mut core.history, status, ran_for, jitter) {
        Decision::Restart { delay } => {
            core.restarts += 1;
            core.state = State::Backoff { until: now + delay };
            vec![Action::Log(Note::Restarting {
                status,
                attempt: core.restarts,
                delay,
            })]
        }
        Decision::Completed => {
            core.state = State::Exited(status);
            vec![Action::Log(Note::Completed { status })]
        }
        Decision::Failed => {
            core.state = State::Failed(status);
            // A loop of clean exits under `restart = "always"` is a failure,
            // and its code must not say 0 (an orchestrator's on-failure
            // policy would never restart the container).
            if status.success() {
                vec![Action::Log(Note::Looped), Action::FailedForGood { code: 1 }]
            } else {
                vec![
                    Action::Log(Note::FailedForGood { status }),
                    Action::FailedForGood { code: status.code() },
                ]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Backoff, Check, Probe, RestartMode, RestartPolicy};

    fn config() -> Process {
        let mut process = Process::with_defaults("app".into(), crate::config::CommandLine::Shell("true".into()));
        process.restart = RestartPolicy {
            mode: RestartMode::Always,
            backoff: Backoff {
                initial: Duration::from_millis(100),
                max: Duration::from_secs(1),
            },
            max_restarts: 2,
            window: Duration::from_secs(60),
        };
        process.stop_timeout = Duration::from_secs(5);
        process
    }

    fn probe(success: u32, failure: u32) -> Probe {
        Probe {
            check: Check::Tcp("127.0.0.1:1".into()),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            success_threshold: success,
            failure_threshold: failure,
        }
    }

    const PID: Pid = Pid::from_raw(4242);

    fn running(since: Instant, ready: bool) -> Core {
        Core {
            state: State::Running {
                pid: PID,
                since,
                ready,
                counts: ProbeCounts::default(),
            },
            ever_started: true,
            ..Core::default()
        }
    }

    fn sec(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// A run started at `since`, sent its stop signal, SIGKILL due 5 s later.
    fn stopping(since: Instant, then: Then) -> Core {
        Core {
            state: State::Stopping {
                pid: PID,
                since,
                deadline: since + sec(5),
                killed: false,
                then,
            },
            ..Core::default()
        }
    }

    #[test]
    fn start_spawn_and_run() {
        let t0 = Instant::now();
        let mut core = Core::default();
        assert_eq!(
            step(&mut core, Input::Start, &config(), false, t0, 0.0),
            [Action::Spawn]
        );
        assert_eq!(core.state, State::Waiting, "unchanged until the executor answers");
        let actions = step(&mut core, Input::Spawned { pid: PID }, &config(), false, t0, 0.0);
        assert_eq!(actions, [Action::Log(Note::Started { pid: PID })]);
        assert_eq!(core, running(t0, true));
        let mut with_probe = config();
        with_probe.ready = Some(probe(1, 1));
        let mut core = Core::default();
        let actions = step(&mut core, Input::Spawned { pid: PID }, &with_probe, false, t0, 0.0);
        assert_eq!(actions[1], Action::StartProbe(Kind::Ready));
        assert!(matches!(core.state, State::Running { ready: false, .. }));
    }

    /// Exits, by state, restart mode and whether the run is stopping.
    #[test]
    fn exits_follow_the_state_and_the_policy() {
        let t0 = Instant::now();
        let later = t0 + sec(1);
        let fail = ExitStatus::Exited(3);
        let ok = ExitStatus::Exited(0);
        let stopping_state = |killed, then| State::Stopping {
            pid: PID,
            since: t0,
            deadline: later,
            killed,
            then,
        };
        let cases: Vec<(State, ExitStatus, bool, &str)> = vec![
            (running(t0, true).state, fail, false, "backoff"),
            (running(t0, true).state, ok, false, "backoff"),
            (running(t0, true).state, fail, true, "stopped"),
            (stopping_state(false, Then::Stop), ok, false, "stopped"),
            (
                stopping_state(true, Then::Stop),
                ExitStatus::Signaled(Signal::SIGKILL),
                true,
                "stopped",
            ),
            (stopping_state(false, Then::Restart), fail, false, "backoff"),
            (stopping_state(false, Then::Restart), fail, true, "stopped"),
        ];
        for (state, status, stopping, expected) in cases {
            let mut core = Core {
                state,
                ..Core::default()
            };
            let actions = step(&mut core, Input::Exited { status }, &config(), stopping, later, 0.0);
            assert_eq!(
                core.state.name(),
                expected,
                "{state:?} + {status:?}, stopping={stopping}"
            );
            assert_eq!(actions.first(), Some(&Action::EndProbes), "{state:?}: probes must end");
            assert_eq!(core.last_exit, Some(status));
        }
        // A stop that needed SIGKILL is not clean.
        let mut core = Core {
            state: stopping_state(true, Then::Stop),
            ..Core::default()
        };
        step(&mut core, Input::Exited { status: fail }, &config(), true, later, 0.0);
        assert_eq!(core.state, State::Stopped { clean: false });
    }

    #[test]
    fn the_budget_ends_in_failed_for_good_and_a_clean_loop_reports_1() {
        let t0 = Instant::now();
        for (status, code) in [(ExitStatus::Exited(3), 3), (ExitStatus::Exited(0), 1)] {
            let mut core = running(t0, true);
            let mut failed = None;
            for round in 0..3 {
                let now = t0 + sec(round);
                let actions = step(&mut core, Input::Exited { status }, &config(), false, now, 0.0);
                failed = actions.iter().find_map(|a| match a {
                    Action::FailedForGood { code } => Some(*code),
                    _ => None,
                });
                if failed.is_some() {
                    break;
                }
                assert_eq!(
                    step(&mut core, Input::Deadline, &config(), false, now + sec(5), 0.0),
                    [Action::Spawn]
                );
                step(
                    &mut core,
                    Input::Spawned { pid: PID },
                    &config(),
                    false,
                    now + sec(5),
                    0.0,
                );
            }
            assert_eq!(failed, Some(code), "{status:?}");
            assert_eq!(core.state, State::Failed(status));
            assert_eq!(core.restarts, 2);
        }
    }

    #[test]
    fn a_backoff_deadline_spawns_only_when_due_and_not_while_stopping() {
        let t0 = Instant::now();
        let mut core = Core {
            state: State::Backoff { until: t0 + sec(1) },
            ..Core::default()
        };
        assert!(step(&mut core, Input::Deadline, &config(), false, t0, 0.0).is_empty());
        assert!(step(&mut core, Input::Deadline, &config(), true, t0 + sec(2), 0.0).is_empty());
        assert_eq!(
            step(&mut core, Input::Deadline, &config(), false, t0 + sec(2), 0.0),
            [Action::Spawn]
        );
    }

    #[test]
    fn a_spawn_failure_goes_through_the_policy() {
        let t0 = Instant::now();
        let mut core = Core::default();
        let actions = step(&mut core, Input::SpawnFailed { code: 127 }, &config(), false, t0, 0.0);
        assert!(matches!(core.state, State::Backoff { .. }), "{actions:?}");
        assert_eq!(core.last_exit, Some(ExitStatus::Exited(127)));
    }

    #[test]
    fn stop_and_kill() {
        let t0 = Instant::now();
        let mut core = running(t0, true);
        let actions = step(&mut core, Input::Stop, &config(), true, t0, 0.0);
        assert_eq!(
            actions,
            [Action::StopGroup {
                pid: PID,
                signal: Signal::SIGTERM
            }]
        );
        assert_eq!(core.state.deadline(), Some(t0 + sec(5)));
        // Not yet due: nothing; due: SIGKILL to the group, once.
        assert!(step(&mut core, Input::Deadline, &config(), true, t0 + sec(4), 0.0).is_empty());
        let actions = step(&mut core, Input::Deadline, &config(), true, t0 + sec(5), 0.0);
        assert_eq!(actions.last(), Some(&Action::KillGroup { pid: PID }));
        assert_eq!(core.state.deadline(), None);
        // A second stop signal kills whatever is up; what never started just stays down.
        let mut core = running(t0, true);
        assert_eq!(
            step(&mut core, Input::Kill, &config(), true, t0, 0.0),
            [Action::KillGroup { pid: PID }]
        );
        let mut waiting = Core::default();
        assert!(step(&mut waiting, Input::Stop, &config(), true, t0, 0.0).is_empty());
        assert_eq!(waiting.state, State::Stopped { clean: true });
        // A stop signal of SIGKILL counts as killed from the start.
        let mut kill_config = config();
        kill_config.stop_signal = Signal::SIGKILL;
        let mut core = running(t0, true);
        step(&mut core, Input::Stop, &kill_config, true, t0, 0.0);
        assert!(matches!(core.state, State::Stopping { killed: true, .. }));
    }

    #[test]
    fn readiness_follows_the_thresholds() {
        let t0 = Instant::now();
        let mut process = config();
        process.ready = Some(probe(2, 2));
        process.live = Some(probe(1, 3));
        let mut core = running(t0, false);
        let ready = |passed| Input::Probe {
            kind: Kind::Ready,
            passed,
        };
        assert!(step(&mut core, ready(true), &process, false, t0, 0.0).is_empty());
        let actions = step(&mut core, ready(true), &process, false, t0, 0.0);
        assert_eq!(
            actions,
            [Action::Log(Note::Ready { pid: PID }), Action::StartProbe(Kind::Live)]
        );
        assert!(matches!(core.state, State::Running { ready: true, .. }));
        step(&mut core, ready(false), &process, false, t0, 0.0);
        let actions = step(&mut core, ready(false), &process, false, t0, 0.0);
        assert_eq!(actions, [Action::Log(Note::NotReady { pid: PID })]);
        assert!(matches!(core.state, State::Running { ready: false, .. }));
    }

    #[test]
    fn a_failing_liveness_probe_restarts_through_a_stop() {
        let t0 = Instant::now();
        let mut process = config();
        process.live = Some(probe(1, 2));
        let mut core = running(t0, true);
        let live = |passed| Input::Probe {
            kind: Kind::Live,
            passed,
        };
        step(&mut core, live(false), &process, false, t0, 0.0);
        step(&mut core, live(true), &process, false, t0, 0.0);
        step(&mut core, live(false), &process, false, t0, 0.0);
        assert!(matches!(core.state, State::Running { .. }), "a pass resets the count");
        let actions = step(&mut core, live(false), &process, false, t0 + sec(1), 0.0);
        assert_eq!(
            actions[1..],
            [
                Action::EndProbes,
                Action::StopGroup {
                    pid: PID,
                    signal: Signal::SIGTERM
                }
            ]
        );
        assert_eq!(core.state.name(), "restarting");
        // Once down it goes through the policy, its run counted from its start.
        step(
            &mut core,
            Input::Exited {
                status: ExitStatus::Signaled(Signal::SIGTERM),
            },
            &process,
            false,
            t0 + sec(2),
            0.0,
        );
        assert!(matches!(core.state, State::Backoff { .. }));
        assert_eq!(core.restarts, 1);
    }

    #[test]
    fn a_blocked_instance_fails_for_good_with_the_dependency_code() {
        let mut core = Core::default();
        let actions = step(
            &mut core,
            Input::Blocked { code: 2 },
            &config(),
            false,
            Instant::now(),
            0.0,
        );
        assert_eq!(actions, [Action::Log(Note::Blocked), Action::FailedForGood { code: 2 }]);
        assert_eq!(core.state, State::Blocked);
    }

    #[test]
    fn inputs_that_do_not_apply_change_nothing() {
        let t0 = Instant::now();
        let ended = [
            State::Exited(ExitStatus::Exited(0)),
            State::Failed(ExitStatus::Exited(1)),
            State::Blocked,
            State::Stopped { clean: true },
        ];
        let inputs = [
            Input::Start,
            Input::Exited {
                status: ExitStatus::Exited(1),
            },
            Input::Deadline,
            Input::Stop,
            Input::Kill,
            Input::Probe {
                kind: Kind::Ready,
                passed: true,
            },
        ];
        for state in ended {
            for input in inputs {
                let mut core = Core {
                    state,
                    ..Core::default()
                };
                assert!(
                    step(&mut core, input, &config(), false, t0, 0.0).is_empty(),
                    "{state:?} {input:?}"
                );
                assert_eq!(core.state, state);
            }
        }
    }

    /// Found by `cargo mutants`: the exact actions of a stop timeout, a stop
    /// during a liveness restart, a passing probe when already ready, and
    /// where a backoff ends.
    #[test]
    fn a_stop_timeout_kills_and_logs_only_a_real_stop() {
        let t0 = Instant::now();
        let deadline = t0 + sec(5);
        for (then, logged) in [(Then::Stop, true), (Then::Restart, false), (Then::Hold, true)] {
            let mut core = stopping(t0, then);
            let actions = step(&mut core, Input::Deadline, &config(), false, deadline, 0.0);
            let mut expected = vec![Action::KillGroup { pid: PID }];
            if logged {
                expected.insert(0, Action::Log(Note::KilledAfterTimeout { pid: PID }));
            }
            assert_eq!(actions, expected, "{then:?}");
        }
    }

    #[test]
    fn a_stop_during_a_liveness_restart_ends_it_for_good() {
        let t0 = Instant::now();
        let mut core = stopping(t0, Then::Restart);
        step(&mut core, Input::Stop, &config(), true, t0, 0.0);
        assert!(
            matches!(core.state, State::Stopping { then: Then::Stop, .. }),
            "{:?}",
            core.state
        );
        step(
            &mut core,
            Input::Exited {
                status: ExitStatus::Exited(0),
            },
            &config(),
            true,
            t0 + sec(1),
            0.0,
        );
        assert_eq!(core.state, State::Stopped { clean: true });
    }

    #[test]
    fn a_passing_readiness_probe_on_a_ready_run_says_nothing() {
        let t0 = Instant::now();
        let mut with_probe = config();
        with_probe.ready = Some(probe(1, 3));
        let mut core = running(t0, true);
        let actions = step(
            &mut core,
            Input::Probe {
                kind: Kind::Ready,
                passed: true,
            },
            &with_probe,
            false,
            t0,
            0.0,
        );
        assert_eq!(actions, []);
        assert!(matches!(core.state, State::Running { ready: true, .. }));
    }

    #[test]
    fn a_backoff_ends_its_delay_after_the_exit() {
        let t0 = Instant::now();
        let exited = t0 + sec(100);
        let mut core = running(t0, true);
        let actions = step(
            &mut core,
            Input::Exited {
                status: ExitStatus::Exited(1),
            },
            &config(),
            false,
            exited,
            0.5,
        );
        let State::Backoff { until } = core.state else {
            panic!("{:?}", core.state)
        };
        assert!(until > exited, "{until:?} is not after {exited:?}");
        assert!(
            matches!(actions.last(), Some(Action::Log(Note::Restarting { delay, .. })) if until == exited + *delay)
        );
    }

    /// `supervisor stop` / `start`: held until released, whatever the policy.
    #[test]
    fn an_operator_hold_lasts_until_release_and_release_renews_the_budget() {
        let t0 = Instant::now();
        let mut core = running(t0, true);
        let actions = step(&mut core, Input::Hold, &config(), false, t0, 0.0);
        assert!(
            matches!(actions[..], [Action::StopGroup { pid: PID, .. }]),
            "{actions:?}"
        );
        assert!(matches!(core.state, State::Stopping { then: Then::Hold, .. }));
        let status = ExitStatus::Exited(0);
        let actions = step(&mut core, Input::Exited { status }, &config(), false, t0, 0.0);
        assert_eq!(
            actions,
            [Action::EndProbes, Action::Log(Note::Held { pid: PID, status })]
        );
        assert_eq!(core.state, State::Held);
        // Nothing but a release (or the run's stop) moves it.
        for input in [
            Input::Start,
            Input::Deadline,
            Input::Hold,
            Input::Probe {
                kind: Kind::Ready,
                passed: true,
            },
        ] {
            assert_eq!(step(&mut core, input, &config(), false, t0 + sec(100), 0.0), []);
            assert_eq!(core.state, State::Held, "{input:?}");
        }
        assert_eq!(
            step(&mut core, Input::Release, &config(), true, t0, 0.0),
            [],
            "not while stopping"
        );
        assert_eq!(core.state, State::Held);
        core.history.in_a_row = 2;
        step(&mut core, Input::Release, &config(), false, t0, 0.0);
        assert_eq!(core.state, State::Waiting);
        assert_eq!(core.history.in_a_row, 0, "a manual start renews the budget");

        // Waiting or in backoff: held at once; a failed one can be released.
        for state in [State::Waiting, State::Backoff { until: t0 + sec(1) }] {
            let mut core = Core {
                state,
                ..Core::default()
            };
            step(&mut core, Input::Hold, &config(), false, t0, 0.0);
            assert_eq!(core.state, State::Held);
            step(&mut core, Input::Stop, &config(), true, t0, 0.0);
            assert_eq!(core.state, State::Stopped { clean: true }, "the run's stop ends a hold");
        }
        let mut failed = Core {
            state: State::Failed(ExitStatus::Exited(1)),
            ..Core::default()
        };
        step(&mut failed, Input::Release, &config(), false, t0, 0.0);
        assert_eq!(failed.state, State::Waiting);

        // A hold during a liveness restart wins; the run's stop wins over a hold.
        let mut core = stopping(t0, Then::Restart);
        step(&mut core, Input::Hold, &config(), false, t0, 0.0);
        assert!(matches!(core.state, State::Stopping { then: Then::Hold, .. }));
        step(&mut core, Input::Stop, &config(), true, t0, 0.0);
        assert!(matches!(core.state, State::Stopping { then: Then::Stop, .. }));
    }
}
