//! `depends_on` as indices: who waits for whom, and whether a condition holds.
//!
//! Cycles and unknown names were rejected by `config`, so here every edge
//! points at a real process and start order is simply "start what is
//! satisfied, again after every change". Stop order is the same graph read
//! backwards: a process is stopped once everything that depends on it is
//! down (SPEC §1 step 9).

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
                .all(|i| i.state().is_terminal())
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
        (State::Exited(status), Condition::Completed) => Verdict::Never(status.code().max(1)),
        (State::Failed(_) | State::Blocked | State::Stopped { .. }, _) => never(instance),
        _ => Verdict::Pending,
    }
}
