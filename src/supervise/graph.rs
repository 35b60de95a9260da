//! `depends_on` as indices: who waits for whom, and whether a condition holds.
//!
//! Cycles and unknown names were rejected by `config`, so here every edge
//! points at a real process and start order is simply "start what is
//! satisfied, again after every change". Stop order is the same graph read
//! backwards: a process is stopped once everything that depends on it is
//! down (SPEC §1 step 9).

use std::time::Duration;

use crate::config::Condition;

use super::process::{Instance, State};

#[derive(Debug, Default)]
pub struct Graph {
    /// For each process: the processes it depends on, with the condition.
    pub dependencies: Vec<Vec<(usize, Condition)>>,
    /// For each process: the processes that depend on it.
    pub dependents: Vec<Vec<usize>>,
}

/// Whether a dependency is met, may still be met, or never will be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Met,
    Pending,
    /// It can never hold; carries the exit code that made it so.
    Never(i32),
}

impl Graph {
    pub fn new(names: &[&str], depends_on: &[Vec<(String, Condition)>]) -> Graph {
        let index = |name: &str| names.iter().position(|n| *n == name);
        let dependencies: Vec<Vec<(usize, Condition)>> = depends_on
            .iter()
            .map(|deps| {
                deps.iter()
                    .filter_map(|(name, condition)| Some((index(name)?, *condition)))
                    .collect()
            })
            .collect();
        let mut dependents = vec![Vec::new(); names.len()];
        for (process, deps) in dependencies.iter().enumerate() {
            for &(dependency, _) in deps {
                dependents[dependency].push(process);
            }
        }
        Graph {
            dependencies,
            dependents,
        }
    }

    /// The longest a graceful stop can take, given each process's
    /// `stop_timeout`: dependents stop first, so the worst case is the
    /// heaviest chain of timeouts along `depends_on`.
    pub fn longest_stop(&self, stop_timeouts: &[Duration]) -> Duration {
        fn chain(graph: &Graph, process: usize, timeouts: &[Duration], memo: &mut [Option<Duration>]) -> Duration {
            if let Some(known) = memo[process] {
                return known;
            }
            let after = graph.dependents[process]
                .iter()
                .map(|&dependent| chain(graph, dependent, timeouts, memo))
                .max()
                .unwrap_or_default();
            let total = timeouts[process] + after;
            memo[process] = Some(total);
            total
        }
        let mut memo = vec![None; stop_timeouts.len()];
        (0..stop_timeouts.len())
            .map(|process| chain(self, process, stop_timeouts, &mut memo))
            .max()
            .unwrap_or_default()
    }

    /// The combined verdict over all of `process`'s dependencies.
    pub fn verdict(&self, process: usize, instances: &[Instance]) -> Verdict {
        let mut verdict = Verdict::Met;
        for &(dependency, condition) in &self.dependencies[process] {
            for instance in instances.iter().filter(|i| i.process == dependency) {
                match condition_verdict(condition, instance) {
                    Verdict::Never(code) => return Verdict::Never(code),
                    Verdict::Pending => verdict = Verdict::Pending,
                    Verdict::Met => {}
                }
            }
        }
        verdict
    }

    /// True once every instance of every dependent of `process` is down.
    pub fn dependents_down(&self, process: usize, instances: &[Instance]) -> bool {
        self.dependents[process].iter().all(|&dependent| {
            instances
                .iter()
                .filter(|i| i.process == dependent)
                .all(|i| i.state().is_down())
        })
    }
}

fn condition_verdict(condition: Condition, instance: &Instance) -> Verdict {
    let never = |instance: &Instance| Verdict::Never(instance.core.last_exit.map_or(1, |s| s.code()).max(1));
    match (instance.state(), condition) {
        (_, Condition::Started) if instance.core.ever_started => Verdict::Met,
        (State::Running { ready: true, .. }, Condition::Ready) => Verdict::Met,
        // A one-shot that finished cleanly has done what its dependents waited for.
        (State::Exited(status), Condition::Completed | Condition::Ready) if status.success() => Verdict::Met,
        // Exited holds a clean exit today; should a failed one ever land there, it must not hang anyone.
        (State::Exited(status), Condition::Completed | Condition::Ready) => Verdict::Never(status.code().max(1)),
        (State::Failed(_) | State::Blocked | State::Stopped { .. }, _) => never(instance),
        _ => Verdict::Pending,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use nix::unistd::Pid;

    use super::*;
    use crate::logs::lines::{Format, Label};
    use crate::pid1::ExitStatus;
    use crate::supervise::process::Core;

    fn instance(process: usize, state: State, ever_started: bool, last_exit: Option<ExitStatus>) -> Instance {
        Instance {
            process,
            index: 0,
            label: Arc::new(Label::new("p".into(), 0, 0, Format::Prefix { colour: false }, 0)),
            core: Core {
                state,
                ever_started,
                last_exit,
                ..Core::default()
            },
            probes: Vec::new(),
        }
    }

    fn running(ready: bool) -> State {
        State::Running {
            pid: Pid::from_raw(42),
            since: Instant::now(),
            ready,
            counts: Default::default(),
        }
    }

    #[test]
    fn each_condition_against_each_state_of_the_dependency() {
        use Condition::{Completed, Ready, Started};
        let ok = ExitStatus::Exited(0);
        let three = ExitStatus::Exited(3);
        let killed = ExitStatus::Signaled(nix::sys::signal::Signal::SIGKILL);
        let later = Instant::now() + Duration::from_secs(1);
        #[rustfmt::skip]
        let cases: Vec<(State, bool, Option<ExitStatus>, Condition, Verdict)> = vec![
            (State::Waiting, false, None, Started, Verdict::Pending),
            (State::Waiting, false, None, Ready, Verdict::Pending),
            (running(false), true, None, Started, Verdict::Met),
            (running(false), true, None, Ready, Verdict::Pending),
            (running(true), true, None, Ready, Verdict::Met),
            (running(true), true, None, Completed, Verdict::Pending),
            (State::Backoff { until: later }, true, Some(three), Started, Verdict::Met),
            (State::Backoff { until: later }, true, Some(three), Ready, Verdict::Pending),
            (State::Exited(ok), true, Some(ok), Completed, Verdict::Met),
            (State::Exited(ok), true, Some(ok), Ready, Verdict::Met),
            (State::Exited(three), true, Some(three), Completed, Verdict::Never(3)),
            (State::Exited(three), true, Some(three), Ready, Verdict::Never(3)),
            (State::Failed(three), true, Some(three), Ready, Verdict::Never(3)),
            (State::Failed(killed), true, Some(killed), Completed, Verdict::Never(137)),
            // Never started: the code is at least 1, so a blocked run never exits 0.
            (State::Blocked, false, None, Started, Verdict::Never(1)),
            (State::Stopped { clean: true }, false, None, Ready, Verdict::Never(1)),
            (State::Stopped { clean: true }, true, Some(ok), Ready, Verdict::Never(1)),
        ];
        for (state, ever_started, last_exit, condition, expected) in cases {
            let dependency = instance(0, state, ever_started, last_exit);
            assert_eq!(
                condition_verdict(condition, &dependency),
                expected,
                "{state:?} for {condition:?}"
            );
        }
    }

    #[test]
    fn the_verdict_combines_every_instance_and_never_wins() {
        let graph = Graph::new(&["db", "web"], &[vec![], vec![("db".to_string(), Condition::Ready)]]);
        let ready = || instance(0, running(true), true, None);
        let web = || instance(1, State::Waiting, false, None);
        assert_eq!(graph.verdict(1, &[ready(), ready(), web()]), Verdict::Met);
        let starting = instance(0, running(false), true, None);
        assert_eq!(graph.verdict(1, &[ready(), starting, web()]), Verdict::Pending);
        let failed = instance(
            0,
            State::Failed(ExitStatus::Exited(4)),
            true,
            Some(ExitStatus::Exited(4)),
        );
        let starting = instance(0, running(false), true, None);
        assert_eq!(graph.verdict(1, &[starting, failed, web()]), Verdict::Never(4));
        // db depends on nothing.
        assert_eq!(graph.verdict(0, &[ready(), web()]), Verdict::Met);
    }

    #[test]
    fn dependents_are_down_only_when_every_instance_is_terminal() {
        let graph = Graph::new(&["db", "web"], &[vec![], vec![("db".to_string(), Condition::Started)]]);
        let db = || instance(0, running(true), true, None);
        let stopped = || instance(1, State::Stopped { clean: true }, true, None);
        assert!(graph.dependents_down(0, &[db(), stopped(), stopped()]));
        assert!(!graph.dependents_down(0, &[db(), stopped(), instance(1, running(true), true, None)]));
        let stopping = State::Stopping {
            pid: Pid::from_raw(7),
            since: Instant::now(),
            deadline: Instant::now(),
            killed: false,
            then: crate::supervise::process::Then::Stop,
        };
        assert!(!graph.dependents_down(0, &[db(), instance(1, stopping, true, None)]));
        // web has no dependents.
        assert!(graph.dependents_down(1, &[db(), instance(1, running(true), true, None)]));
    }

    #[test]
    fn the_longest_stop_is_the_heaviest_chain_of_timeouts() {
        let secs = Duration::from_secs;
        // web → api → db, and worker → db: web stops, then api, then db.
        let names = ["db", "api", "web", "worker"];
        let on = |name: &str| vec![(name.to_string(), Condition::Started)];
        let graph = Graph::new(&names, &[vec![], on("db"), on("api"), on("db")]);
        assert_eq!(graph.longest_stop(&[secs(5), secs(10), secs(3), secs(20)]), secs(25));
        assert_eq!(graph.longest_stop(&[secs(5), secs(10), secs(3), secs(1)]), secs(18));
        assert_eq!(Graph::new(&[], &[]).longest_stop(&[]), Duration::ZERO);
    }
}
