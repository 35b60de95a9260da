//! The config made concrete for this environment: `${VAR}` expanded,
//! `instances` counted, users looked up, each process's environment built.
//!
//! Runs after the environment is validated and before anything starts, so
//! every problem here is still a config error (exit 78) that starts nothing.

use crate::environment::Environment;
use std::sync::Arc;

use crate::config::{validate, Check, Config, ConfigError, CronJob, Instances, Probe, Problem, Process, Template};
use crate::pid1::spawn::{self, Identity};

/// One `[process.NAME]`, ready to spawn `instances` copies of.
#[derive(Debug)]
pub struct PlannedProcess {
    /// As configured; its probes' targets are still templates (the
    /// thresholds are what the state machine reads).
    pub config: Process,
    pub name: Arc<str>,
    pub instances: u32,
    /// What differs per instance, index by index.
    pub each: Vec<PlannedInstance>,
    pub user: Option<Identity>,
}

/// One instance: its whole environment (`SUPERVISOR_INSTANCE`, its own
/// `PORT` when `port` is set) and its probes with `${…}` expanded from it.
#[derive(Debug)]
pub struct PlannedInstance {
    /// Shared with its probe tasks, which start again with every run.
    pub env: Arc<Environment>,
    pub ready: Option<Probe>,
    pub live: Option<Probe>,
}

impl PlannedProcess {
    /// The whole environment of instance `index`.
    pub fn env_for(&self, index: u32) -> &Environment {
        &self.each[index as usize].env
    }
}

/// Expands `${…}` in an `http`/`tcp` probe from the process's own environment,
/// so `http://127.0.0.1:${PORT}/health` follows the port the process was given.
/// Messages never quote the expanded text.
fn expand_probe(check: &mut Check, env: &Environment) -> Result<(), String> {
    let (text, is_valid): (&mut String, fn(&str) -> bool) = match check {
        Check::Http(url) => (url, |url| url.starts_with("http://")),
        Check::Tcp(address) => (address, validate::is_probe_address),
        Check::Exec(_) | Check::Log { .. } => return Ok(()),
    };
    let expanded = Template::parse(text)
        .and_then(|template| template.expand(env))
        .map_err(|err| err.to_string())?;
    if !is_valid(&expanded) {
        return Err(format!("{text:?} does not expand to a valid target"));
    }
    *text = expanded;
    Ok(())
}

/// A `wait_for` target with its `${…}` expanded; `shown` is the text as
/// written in the file, the only form that reaches logs and messages.
#[derive(Debug, Clone)]
pub struct WaitTarget {
    pub shown: String,
    pub address: String,
}

/// Expands `wait_for`, checking the shape of what the environment filled in.
fn wait_targets(config: &Config, env: &Environment, problems: &mut Vec<Problem>) -> Vec<WaitTarget> {
    let mut targets = Vec::new();
    for target in &config.wait_for {
        let problem = |message: String| Problem {
            file: config.source.path.clone(),
            line: Some(target.line),
            key: "wait_for".to_string(),
            message,
        };
        match target.template.expand(env) {
            Ok(address) if validate::is_wait_target(&address) => targets.push(WaitTarget {
                shown: crate::reach::without_credentials(&target.text),
                address,
            }),
            Ok(_) => problems.push(problem(validate::wait_target_error(&target.text))),
            Err(err) => problems.push(problem(err.to_string())),
        }
    }
    targets
}

/// The config made concrete: what to wait for, and what to start.
#[derive(Debug)]
pub struct Plan {
    pub wait_for: Vec<WaitTarget>,
    pub processes: Vec<PlannedProcess>,
    pub crons: Vec<PlannedCron>,
}

/// One `[cron.NAME]` job with its environment built and its user looked up.
#[derive(Debug)]
pub struct PlannedCron {
    pub job: CronJob,
    pub env: Environment,
    pub user: Option<Identity>,
}

impl PlannedCron {
    /// SPEC §10: a job runs only in the contexts it lists (every context when none).
    pub fn runs_in(&self, context: &str) -> bool {
        self.job
            .contexts
            .as_ref()
            .is_none_or(|contexts| contexts.iter().any(|c| c == context))
    }
}

fn plan_crons(config: &Config, env: &Environment, problems: &mut Vec<Problem>) -> Vec<PlannedCron> {
    let mut crons = Vec::new();
    for job in &config.crons {
        let mut report = |key: String, message: String| {
            problems.push(Problem {
                file: config.source.path.clone(),
                line: None,
                key,
                message,
            })
        };
        let user = match &job.user {
            Some(name) => match spawn::resolve_user(name) {
                Ok(identity) => Some(identity),
                Err(err) => {
                    report(format!("cron.{}.user", job.name), err.to_string());
                    None
                }
            },
            None => None,
        };
        let mut scope = env.clone();
        if let Some(identity) = &user {
            scope.set("HOME", identity.home.clone());
            scope.set("USER", &identity.name);
            scope.set("LOGNAME", &identity.name);
        }
        scope.set("SUPERVISOR_PROCESS", format!("cron.{}", job.name));
        let mut child_env = scope.clone();
        for (name, template) in &job.env {
            match template.expand(&scope) {
                Ok(value) => child_env.set(name, value),
                Err(err) => report(format!("cron.{}.env.{name}", job.name), err.to_string()),
            }
        }
        crons.push(PlannedCron {
            job: job.clone(),
            env: child_env,
            user,
        });
    }
    crons
}

/// `supervisor run --only api,web` / `--except bot`, as foreman and overmind users expect.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub only: Vec<String>,
    pub except: Vec<String>,
}

/// The processes `selection` keeps: `--only` and every dependency it needs
/// (transitively), minus `--except`; dropping a dependency of a kept process
/// is refused, since that process could never start.
pub fn select(processes: Vec<PlannedProcess>, selection: &Selection) -> Result<Vec<PlannedProcess>, String> {
    let known: Vec<&str> = processes.iter().map(|p| &*p.name).collect();
    for (flag, names) in [("--only", &selection.only), ("--except", &selection.except)] {
        if let Some(unknown) = names.iter().find(|name| !known.contains(&name.as_str())) {
            return Err(format!(
                "{flag}: no process named {unknown:?} (the processes are {})",
                known.join(", ")
            ));
        }
    }
    let mut keep: Vec<bool> = vec![selection.only.is_empty(); processes.len()];
    let mut pending: Vec<usize> = (0..processes.len())
        .filter(|&at| selection.only.iter().any(|name| *name == *processes[at].name))
        .collect();
    while let Some(at) = pending.pop() {
        if std::mem::replace(&mut keep[at], true) {
            continue;
        }
        for dependency in &processes[at].config.depends_on {
            pending.extend(processes.iter().position(|p| *p.name == *dependency.process));
        }
    }
    for (at, process) in processes.iter().enumerate() {
        if selection.except.iter().any(|name| *name == *process.name) {
            keep[at] = false;
        }
    }
    for (process, _) in processes.iter().zip(&keep).filter(|(_, kept)| **kept) {
        if let Some(dropped) = process
            .config
            .depends_on
            .iter()
            .find(|d| selection.except.contains(&d.process))
        {
            return Err(format!(
                "--except {}: {} depends on it; leave {} out too",
                dropped.process, process.name, process.name
            ));
        }
    }
    Ok(processes
        .into_iter()
        .zip(keep)
        .filter_map(|(process, kept)| kept.then_some(process))
        .collect())
}

/// Builds the plan; `env` is the validated environment, in order.
/// Every problem, of `wait_for` and of every process, is reported at once.
pub fn build(config: &Config, env: &Environment) -> Result<Plan, ConfigError> {
    let mut problems = Vec::new();
    let wait_for = wait_targets(config, env, &mut problems);
    let mut planned = Vec::new();
    for process in &config.processes {
        let mut report = |line: Option<usize>, key: String, message: String| {
            problems.push(Problem {
                file: config.source.path.clone(),
                line,
                key,
                message,
            })
        };
        let instances = match &process.instances {
            Instances::Count(count) => *count,
            Instances::Template { template, line } => {
                let key = format!("process.{}.instances", process.name);
                match template.expand(env) {
                    Ok(text) => match text.trim().parse::<u32>() {
                        Ok(count) if count <= validate::MAX_INSTANCES as u32 => count,
                        _ => {
                            report(
                                Some(*line),
                                key,
                                format!(
                                    "must expand to a whole number between 0 and {} (0 turns the process off)",
                                    validate::MAX_INSTANCES
                                ),
                            );
                            0
                        }
                    },
                    Err(err) => {
                        report(Some(*line), key, err.to_string());
                        0
                    }
                }
            }
        };
        let user = match &process.user {
            Some(name) => match spawn::resolve_user(name) {
                Ok(identity) => Some(identity),
                Err(err) => {
                    report(None, format!("process.{}.user", process.name), err.to_string());
                    None
                }
            },
            None => None,
        };
        let port = match &process.port {
            None => None,
            Some(Instances::Count(port)) => Some(*port),
            Some(Instances::Template { template, line }) => {
                match template.expand(env).map(|text| text.trim().parse::<u32>()) {
                    Ok(Ok(port)) if (1..=65535).contains(&port) => Some(port),
                    Ok(_) => {
                        report(
                            Some(*line),
                            format!("process.{}.port", process.name),
                            "must expand to a port between 1 and 65535".to_string(),
                        );
                        None
                    }
                    Err(err) => {
                        report(Some(*line), format!("process.{}.port", process.name), err.to_string());
                        None
                    }
                }
            }
        };
        if port.is_some_and(|port| port + instances.max(1) - 1 > 65535) {
            report(
                None,
                format!("process.{}.port", process.name),
                format!("with {instances} instances the last port would pass 65535"),
            );
        }
        let mut base = env.clone();
        if let Some(identity) = &user {
            base.set("HOME", identity.home.clone());
            base.set("USER", &identity.name);
            base.set("LOGNAME", &identity.name);
        }
        base.set("SUPERVISOR_PROCESS", &process.name);
        let mut each = Vec::new();
        for index in 0..instances {
            // What the process's own `env` values and probes may refer to:
            // the environment, `${SUPERVISOR_INSTANCE}`, and its own `${PORT}`.
            let mut scope = base.clone();
            scope.set("SUPERVISOR_INSTANCE", index.to_string());
            if let Some(port) = port {
                scope.set("PORT", (port + index).min(65535).to_string());
            }
            let mut child_env = scope.clone();
            for (name, template) in &process.env {
                match template.expand(&scope) {
                    Ok(value) => child_env.set(name, value),
                    // The same template fails the same way for every instance: say it once.
                    Err(err) if index == 0 => {
                        report(None, format!("process.{}.env.{name}", process.name), err.to_string())
                    }
                    Err(_) => {}
                }
            }
            let mut probes = [process.ready.clone(), process.live.clone()];
            for (kind, probe) in ["ready", "live"].iter().zip(probes.iter_mut()) {
                if let Some(probe) = probe {
                    if let Err(message) = expand_probe(&mut probe.check, &child_env) {
                        if index == 0 {
                            report(None, format!("process.{}.{kind}", process.name), message);
                        }
                    }
                }
            }
            let [ready, live] = probes;
            each.push(PlannedInstance {
                env: Arc::new(child_env),
                ready,
                live,
            });
        }
        planned.push(PlannedProcess {
            config: process.clone(),
            name: process.name.as_str().into(),
            instances,
            each,
            user,
        });
    }
    // `instances = 0` (CLUSTER_WORKERS=0) turns a process off; then nothing
    // may depend on it, since nothing would ever satisfy that dependency.
    for process in planned.iter().filter(|p| p.instances > 0) {
        for dependency in &process.config.depends_on {
            if planned
                .iter()
                .any(|p| p.instances == 0 && *p.name == *dependency.process)
            {
                problems.push(Problem {
                    file: config.source.path.clone(),
                    line: None,
                    key: format!("process.{}.depends_on", process.name),
                    message: format!(
                        "{:?} has instances = 0 (turned off), so this dependency could never be met",
                        dependency.process
                    ),
                });
            }
        }
    }
    for process in planned.iter().filter(|p| p.instances == 0) {
        tracing::info!(process = %process.name, "turned off: instances = 0");
    }
    planned.retain(|p| p.instances > 0);
    let crons = plan_crons(config, env, &mut problems);
    if problems.is_empty() {
        Ok(Plan {
            wait_for,
            processes: planned,
            crons,
        })
    } else {
        problems.sort();
        Err(ConfigError::Invalid { problems })
    }
}
