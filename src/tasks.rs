//! `[task.NAME]` one-shot steps (SPEC §1 step 6): run in file order after
//! migrations, each must exit 0. `contexts` limits a task to some contexts;
//! `under_lock` runs it inside the migration phase, holding the lock, so
//! replicas take turns (the task itself must still be idempotent: every
//! replica runs it once).

use crate::environment::Environment;

use crate::config::Task;
use crate::job::{Job, Runner};
use crate::pid1::{spawn, ExitStatus};

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
pub fn start(runner: &Runner<'_>, task: &Task, env: &Environment) -> Result<Job, TaskError> {
    let base = env;
    let mut env = env.clone();
    for (key, template) in &task.env {
        let value = template.expand(base).map_err(|source| TaskError::Env {
            name: task.name.clone(),
            key: key.clone(),
            source,
        })?;
        env.set(key, value);
    }
    env.set("SUPERVISOR_PROCESS", format!("task.{}", task.name));
    let user = match &task.user {
        // Checked when the config was loaded; a user removed since is still named.
        Some(user) => Some(spawn::resolve_user(user).map_err(|source| TaskError::User {
            name: task.name.clone(),
            source,
        })?),
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
    .map_err(|source| TaskError::Spawn {
        name: task.name.clone(),
        command: task.command.to_string(),
        source,
    })
}

/// The one verdict on a task's run, under the lock or after it: exit 0 or the run stops.
pub fn judge(task: &Task, status: ExitStatus) -> Result<(), TaskError> {
    if !status.success() {
        return Err(TaskError::Failed {
            name: task.name.clone(),
            command: task.command.to_string(),
            code: status.code(),
        });
    }
    tracing::info!(task = %task.name, "task finished");
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("task.{name}.env.{key}: {source}")]
    Env {
        name: String,
        key: String,
        source: crate::config::interpolate::TemplateError,
    },
    #[error("task.{name}.user: {source}")]
    User { name: String, source: spawn::UserError },
    #[error("task.{name}: cannot start `{command}`: {source}")]
    Spawn {
        name: String,
        command: String,
        source: std::io::Error,
    },
    #[error("task.{name}: `{command}` exited with code {code}")]
    Failed { name: String, command: String, code: i32 },
}

impl TaskError {
    pub fn exit_code(&self) -> i32 {
        match self {
            // SPEC §7: what the config names and cannot be had is a config error.
            TaskError::Env { .. } | TaskError::User { .. } => 78,
            TaskError::Spawn { source, .. } => spawn::spawn_error_code(source),
            TaskError::Failed { code, .. } => *code,
        }
    }
}

/// Runs `tasks` one after another; the first failure stops the run.
pub async fn run(runner: &Runner<'_>, tasks: &[&Task], env: &Environment) -> Result<(), TaskError> {
    for task in tasks {
        tracing::info!(task = %task.name, "running task");
        let status = start(runner, task, env)?.wait().await;
        judge(task, status)?;
    }
    Ok(())
}
