//! `supervisor check-env`: the environment step of `run`, alone, with its
//! report on stdout (text or JSON). Exit 0 when valid, 78 when not.

use crate::cli::ReportFormat;
use crate::config::{ConfigError, Problem};
use crate::error::Error;
use crate::supervise::Outcome;

use super::Context;

pub fn check_env(ctx: Context, context: Option<String>, format: ReportFormat) -> Result<Outcome, Error> {
    let (config, section) = ctx.env_section()?;
    if section.schema.is_none() {
        let file = config.map_or_else(|| "supervisor.toml".into(), |c| c.source.path);
        return Err(ConfigError::Invalid {
            problems: vec![Problem {
                file,
                line: None,
                key: "env.schema".to_string(),
                message: "is not set: there is no schema to check the environment against".to_string(),
            }],
        }
        .into());
    }
    let environment = ctx.environment(&section, context.as_deref(), true)?;
    let Some(report) = environment.report else {
        return Ok(Outcome { code: 0 });
    };
    let rendered = match format {
        ReportFormat::Text => report.text(),
        ReportFormat::Json => report.json(),
    };
    ctx.output.stdout.write_now(rendered.into_bytes());
    Ok(Outcome {
        code: if report.is_ok() { 0 } else { 78 },
    })
}
