//! `supervisor run`: the whole lifecycle, top to bottom (SPEC §1).
//!
//! config → environment → plan → supervise → stop. Health, `wait_for`,
//! migrations and tasks slot in between plan and supervise.

use std::io::IsTerminal;

use crate::config::{self, settings::LogFormat, ConfigError, Problem};
use crate::error::Error;
use crate::logs::lines;
use crate::plan;
use crate::supervise::{Options, Outcome, Supervisor};

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

    // 7. Processes, in dependency order.
    let planned = plan::build(&config, &environment.vars)?;
    let format = match ctx.settings.log_format {
        LogFormat::Json => lines::Format::Json,
        LogFormat::Text => lines::Format::Prefix {
            colour: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        },
    };
    let options = Options {
        format,
        is_init: ctx.is_init,
    };
    tracing::info!(config = %config.source.path.display(), processes = planned.len(), "starting");
    let supervisor = Supervisor::new(planned, ctx.reaper.clone(), ctx.output.clone(), options);

    // 8–9. Supervise until stopped, then stop in reverse dependency order.
    Ok(supervisor.run(&mut ctx.signals).await)
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
    if !config.wait_for.is_empty() {
        refuse("wait_for");
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Invalid { problems })
    }
}
