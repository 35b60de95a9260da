//! `supervisor check-env`: the environment step of `run`, alone, with its
//! report on stdout (text or JSON). Exit 0 when valid, 78 when not.

use crate::cli::ReportFormat;
use crate::error::Error;
use crate::supervise::Outcome;

use super::Context;

pub fn check_env(ctx: Context, context: Option<String>, format: ReportFormat) -> Result<Outcome, Error> {
    let (section, _) = ctx.schema_section("check the environment against")?;
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
