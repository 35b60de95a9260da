//! `supervisor exec -- CMD …`: one command with the environment `run` would
//! build, for one-off jobs (`docker exec app supervisor exec -- node
//! scripts/invite.js`). As PID 1 we reap and forward every signal to it; its
//! exit code is ours.

use std::ffi::OsString;
use std::io::IsTerminal;

use crate::config::CommandLine;
use crate::error::Error;
use crate::pid1::signals::{meaning, Meaning};
use crate::pid1::spawn::{self, Spec};
use crate::pid1::stop_stragglers;
use crate::supervise::Outcome;

use super::Context;

pub async fn exec(mut ctx: Context, context: Option<String>, argv: Vec<OsString>) -> Result<Outcome, Error> {
    let argv: Vec<String> = argv
        .into_iter()
        .map(|arg| {
            arg.into_string()
                .map_err(|_| Error::Usage("exec: arguments must be valid UTF-8".to_string()))
        })
        .collect::<Result<_, _>>()?;
    let command_line = CommandLine::Exec(argv.clone());
    let (_, section) = ctx.env_section()?;
    let env = ctx.environment(&section, context.as_deref(), false)?.vars;

    // Hand the terminal to the command only if it is ours to give.
    let stdin = std::io::stdin();
    let take_terminal = stdin.is_terminal() && nix::unistd::tcgetpgrp(&stdin).ok() == Some(nix::unistd::getpgrp());
    let mut command = spawn::command(&Spec {
        command: &command_line,
        cwd: None,
        env: &env,
        user: None,
        output: spawn::Output::Inherit,
        pass_stdin: true,
        take_terminal,
        guarded: false,
    });
    let crate::pid1::Child { pid, mut exit, .. } = ctx.reaper.spawn(&mut command).map_err(|source| Error::Exec {
        program: argv[0].clone(),
        source,
    })?;

    let status = loop {
        tokio::select! {
            biased;
            status = exit.wait() => break status,
            Some(signal) = ctx.signals.recv() => match meaning(signal) {
                Meaning::Stop | Meaning::Forward => spawn::signal_group(pid, signal),
                Meaning::Ignore => {}
            },
        }
    };
    stop_stragglers(
        &ctx.reaper,
        ctx.is_init,
        crate::config::DEFAULT_STOP_TIMEOUT,
        false,
        &mut ctx.signals,
    )
    .await;
    Ok(Outcome { code: status.code() })
}
