//! `[task.NAME]` one-shot steps (SPEC §1 step 6): run in file order after
//! migrations, each must exit 0. `contexts` limits a task to some contexts;
//! `under_lock` runs it inside the migration phase, holding the lock, so
//! replicas take turns (the task itself must still be idempotent: every
//! replica runs it once).

use std::ffi::OsString;

use crate::config::Task;
use crate::env;
use crate::job::{Job, Runner};
use crate::pid1::spawn;

/// The tasks that apply in `context`, split into (under the lock, after it).
pub fn for_context<'a>(tasks: &'a [Task], context: &str) -> (Vec<&'a Task>, Vec<&'a Task>) {
    tasks
        .iter()
        .filter(|task| {
            task.contexts
                .as_ref()
                .is_none_or(|contexts| contexts.iter().any(|c| c == context))
        })
        .partition(|task| task.under_lock)
}

/// Starts `task` with the validated environment plus its own `env`.
pub fn start(runner: &Runner<'_>, task: &Task, env: &[(OsString, OsString)]) -> std::io::Result<Job> {
    let base = env;
    let mut env = env.to_vec();
    for (name, template) in &task.env {
        let value = template
            .expand(base)
            .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("env.{name}: {err}")))?;
        env::set(&mut env, name, value);
    }
    env::set(&mut env, "SUPERVISOR_PROCESS", format!("task.{}", task.name));
    let user = match &task.user {
        Some(name) => Some(
            // Checked when the config was loaded; a user removed since is still named.
            spawn::resolve_user(name).map_err(std::io::Error::other)?,
        ),
        None => None,
    };
    Job::start(
        runner,
        &format!("task.{}", task.name),
        &task.command,
        task.cwd.as_deref(),
        &env,
        user.as_ref(),
    )
}

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("task.{name}: cannot start `{command}`: {error}")]
    Spawn {
        name: String,
        command: String,
        error: std::io::Error,
    },
    #[error("task.{name}: `{command}` exited with code {code}")]
    Failed { name: String, command: String, code: i32 },
}

impl TaskError {
    pub fn exit_code(&self) -> i32 {
        match self {
            TaskError::Spawn { error, .. } => spawn::spawn_error_code(error),
            TaskError::Failed { code, .. } => *code,
        }
    }
}

/// Runs `tasks` one after another; the first failure stops the run.
pub async fn run(runner: &Runner<'_>, tasks: &[&Task], env: &[(OsString, OsString)]) -> Result<(), TaskError> {
    for task in tasks {
        let command = task.command.to_string();
        tracing::info!(task = %task.name, "running task");
        let mut job = start(runner, task, env).map_err(|error| TaskError::Spawn {
            name: task.name.clone(),
            command: command.clone(),
            error,
        })?;
        let status = job.wait().await;
        if !status.success() {
            return Err(TaskError::Failed {
                name: task.name.clone(),
                command,
                code: status.code(),
            });
        }
        tracing::info!(task = %task.name, "task finished");
    }
    Ok(())
}
