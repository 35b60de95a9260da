//! One-shot commands run to completion: a migration tool under the lock,
//! or a `[task.NAME]` step. Like a process, a job runs in its own process
//! group with its output relayed line by line (`migrate | …`); unlike one,
//! it is never restarted. Only the reaper waits for it.

use crate::environment::Environment;
use std::path::Path;
use std::sync::Arc;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::task::JoinSet;

use crate::config::CommandLine;
use crate::logs::lines::{self, Label};
use crate::logs::Output;
use crate::pid1::spawn::{self, Identity, Spec};
use crate::pid1::{Exit, ExitStatus, Reaper};

pub struct Job {
    pub pid: Pid,
    exit: Exit,
    relays: JoinSet<()>,
}

/// Everything a job needs besides its command.
#[derive(Clone)]
pub struct Runner<'a> {
    pub reaper: &'a Reaper,
    pub output: &'a Output,
    pub format: lines::Format,
}

impl Job {
    pub fn start(
        runner: &Runner<'_>,
        label: &str,
        command: &CommandLine,
        cwd: Option<&Path>,
        env: &Environment,
        user: Option<&Identity>,
    ) -> std::io::Result<Job> {
        spawn::check_cwd(cwd)?;
        let mut std_command = spawn::command(&Spec {
            command,
            cwd,
            env,
            user,
            output: spawn::Output::Piped,
            pass_stdin: false,
            take_terminal: false,
            guarded: true,
        });
        let mut child = runner.reaper.spawn(&mut std_command)?;
        let label = Arc::new(Label::named(label.into(), runner.format));
        let mut relays = JoinSet::new();
        runner
            .output
            .relay_child(&mut child, &label, runner.format, &mut relays, None);
        Ok(Job {
            pid: child.pid,
            exit: child.exit,
            relays,
        })
    }

    /// Waits for the exit and for its last lines. Cancel-safe.
    pub async fn wait(&mut self) -> ExitStatus {
        let status = self.exit.wait().await;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
            while self.relays.join_next().await.is_some() {}
        })
        .await;
        status
    }

    /// SIGKILL to whatever is left in the job's group (what the command
    /// started and left behind), waiting until the group is empty: nothing of
    /// a job that ran under the lock may outlive our hold on it.
    pub async fn end_group(&self) {
        if !spawn::kill_group_and_wait(self.pid, std::time::Duration::from_secs(5)).await {
            tracing::warn!(
                pid = self.pid.as_raw(),
                "processes of the job's group are still there 5 s after SIGKILL"
            );
        }
    }

    /// TERM (and CONT) to its group, SIGKILL after `grace`; then waits.
    pub async fn stop(&mut self, grace: std::time::Duration) -> ExitStatus {
        spawn::stop_group(self.pid, Signal::SIGTERM);
        match tokio::time::timeout(grace, self.wait()).await {
            Ok(status) => status,
            Err(_) => {
                spawn::signal_group(self.pid, Signal::SIGKILL);
                self.wait().await
            }
        }
    }
}

impl Drop for Job {
    /// A job abandoned mid-run (the phase was cancelled by a stop signal)
    /// is asked to stop; the final straggler sweep kills what remains.
    fn drop(&mut self) {
        if self.exit.status().is_none() {
            spawn::stop_group(self.pid, Signal::SIGTERM);
        }
    }
}
