//! The config made concrete for this environment: `${VAR}` expanded,
//! `instances` counted, users looked up, each process's environment built.
//!
//! Runs after the environment is validated and before anything starts, so
//! every problem here is still a config error (exit 78) that starts nothing.

use std::ffi::OsString;
use std::sync::Arc;

use crate::config::{validate, Check, Config, ConfigError, Instances, Problem, Process, Template};
use crate::env;
use crate::pid1::spawn::{self, Identity};

/// One `[process.NAME]`, ready to spawn `instances` copies of.
#[derive(Debug)]
pub struct PlannedProcess {
    pub config: Process,
    pub name: Arc<str>,
    pub instances: u32,
    /// The environment every instance gets, before `SUPERVISOR_INSTANCE`.
    pub env: Vec<(OsString, OsString)>,
    pub user: Option<Identity>,
}

impl PlannedProcess {
    /// The whole environment of instance `index`.
    pub fn env_for(&self, index: u32) -> Vec<(OsString, OsString)> {
        let mut env = self.env.clone();
        env.push(("SUPERVISOR_INSTANCE".into(), index.to_string().into()));
        env
    }
}

/// Expands `${…}` in an `http`/`tcp` probe from the process's own environment,
/// so `http://127.0.0.1:${PORT}/health` follows the port the process was given.
/// Messages never quote the expanded text.
fn expand_probe(check: &mut Check, env: &[(OsString, OsString)]) -> Result<(), String> {
    let (text, is_valid): (&mut String, fn(&str) -> bool) = match check {
        Check::Http(url) => (url, |url| url.starts_with("http://")),
        Check::Tcp(address) => (address, validate::is_probe_address),
        Check::Exec(_) => return Ok(()),
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
fn wait_targets(config: &Config, env: &[(OsString, OsString)], problems: &mut Vec<Problem>) -> Vec<WaitTarget> {
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
}

/// Builds the plan; `env` is the validated environment, in order.
/// Every problem, of `wait_for` and of every process, is reported at once.
pub fn build(config: &Config, env: &[(OsString, OsString)]) -> Result<Plan, ConfigError> {
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
                Err(message) => {
                    report(None, format!("process.{}.user", process.name), message);
                    None
                }
            },
            None => None,
        };
        let mut child_env: Vec<(OsString, OsString)> = env.to_vec();
        if let Some(identity) = &user {
            env::set(&mut child_env, "HOME", identity.home.clone());
            env::set(&mut child_env, "USER", &identity.name);
            env::set(&mut child_env, "LOGNAME", &identity.name);
        }
        for (name, template) in &process.env {
            match template.expand(env) {
                Ok(value) => env::set(&mut child_env, name, value),
                Err(err) => report(None, format!("process.{}.env.{name}", process.name), err.to_string()),
            }
        }
        env::set(&mut child_env, "SUPERVISOR_PROCESS", &process.name);
        let mut config = process.clone();
        for (kind, probe) in [("ready", &mut config.ready), ("live", &mut config.live)] {
            if let Some(probe) = probe {
                if let Err(message) = expand_probe(&mut probe.check, &child_env) {
                    report(None, format!("process.{}.{kind}", process.name), message);
                }
            }
        }
        planned.push(PlannedProcess {
            config,
            name: process.name.as_str().into(),
            instances,
            env: child_env,
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
    if problems.is_empty() {
        Ok(Plan {
            wait_for,
            processes: planned,
        })
    } else {
        problems.sort();
        Err(ConfigError::Invalid { problems })
    }
}
