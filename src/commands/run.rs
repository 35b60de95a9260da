//! `supervisor run`: the whole lifecycle, top to bottom (SPEC §1).
//!
//! config → environment → health → wait_for → (migrate → tasks) →
//! supervise → stop. Each phase before supervision is raced against a stop
//! signal.

use std::io::IsTerminal;

use nix::sys::signal::Signal;
use tokio::sync::mpsc;

use crate::config::{self, settings::LogFormat, ConfigError, Problem};
use crate::error::Error;
use crate::health::{self, Board, Phase};
use crate::logs::lines;
use crate::pid1::signals::{meaning, Meaning};
use crate::plan;
use crate::supervise::{Options, Outcome, Supervisor};
use crate::wait_for;

use super::Context;

pub async fn run(mut ctx: Context, context: Option<String>) -> Result<Outcome, Error> {
    // 1. The config.
    let config = config::load(config::locate(ctx.config_path().as_deref())?)?;
    refuse_unbuilt_sections(&config)?;

    // 2. The environment the children get: validated, defaults applied.
    let environment = ctx.environment(&config.env, context.as_deref(), false)?;
    if let Some(report) = &environment.report {
        tracing::info!(context = %report.context, variables = report.checked, "environment ok");
    }

    let planned = plan::build(&config, &environment.vars)?;

    // 3. The health server, so orchestrators see `starting` from now on.
    let board = Board::new();
    let listen = ctx
        .settings
        .health_listen
        .clone()
        .or_else(|| config.health.listen.clone())
        .filter(|l| l != "off");
    if let Some(listen) = &listen {
        let address = health::serve(listen, board.clone()).await?;
        tracing::info!(address = %address, "health server listening");
    }

    // 4. Whatever lives outside the container.
    if !config.wait_for.is_empty() {
        board.set_phase(Phase::WaitingFor);
        match until_stopped(
            wait_for::wait_all(&config.wait_for, config.wait_timeout),
            &mut ctx.signals,
        )
        .await
        {
            Some(result) => result?,
            None => return Ok(Outcome { code: 0 }),
        }
    }

    // 7. Processes, in dependency order.
    let format = match ctx.settings.log_format {
        LogFormat::Json => lines::Format::Json,
        LogFormat::Text => lines::Format::Prefix {
            colour: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        },
    };
    let options = Options {
        format,
        is_init: ctx.is_init,
        board,
    };
    tracing::info!(config = %config.source.path.display(), processes = planned.len(), "starting");
    let supervisor = Supervisor::new(planned, ctx.reaper.clone(), ctx.output.clone(), options);

    // 8–9. Supervise until stopped, then stop in reverse dependency order.
    Ok(supervisor.run(&mut ctx.signals).await)
}

/// Runs a phase until it finishes or a stop signal arrives (`None`): a
/// `docker stop` during start-up must not wait for the phase to end.
async fn until_stopped<T>(
    phase: impl std::future::Future<Output = T>,
    signals: &mut mpsc::UnboundedReceiver<Signal>,
) -> Option<T> {
    tokio::pin!(phase);
    loop {
        tokio::select! {
            result = &mut phase => return Some(result),
            Some(signal) = signals.recv() => {
                if meaning(signal) == Meaning::Stop {
                    tracing::info!(signal = %signal, "stopping before any process started");
                    return None;
                }
            }
        }
    }
}

/// Sections whose phase is not part of this build yet are refused, never
/// silently skipped: starting an app without its migrations is worse than
/// not starting it.
fn refuse_unbuilt_sections(config: &config::Config) -> Result<(), ConfigError> {
    let mut problems = Vec::new();
    let mut refuse = |key: &str| {
        problems.push(Problem {
            file: config.source.path.clone(),
            line: None,
            key: key.to_string(),
            message: "is not supported by this version of supervisor yet".to_string(),
        })
    };
    if config.migrate.is_some() {
        refuse("migrate");
    }
    if !config.tasks.is_empty() {
        refuse("task");
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Invalid { problems })
    }
}
