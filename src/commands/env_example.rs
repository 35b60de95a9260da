//! `supervisor env-example`: print a `.env.example` generated from the schema.

use crate::config::{ConfigError, Problem};
use crate::env::{example, schema::Schema};
use crate::error::Error;
use crate::supervise::Outcome;

use super::Context;

pub fn env_example(ctx: Context) -> Result<Outcome, Error> {
    let (config, section) = ctx.env_section()?;
    let Some(path) = &section.schema else {
        let file = config.map_or_else(|| "supervisor.toml".into(), |c| c.source.path);
        return Err(ConfigError::Invalid {
            problems: vec![Problem {
                file,
                line: None,
                key: "env.schema".to_string(),
                message: "is not set: there is no schema to generate an example from".to_string(),
            }],
        }
        .into());
    };
    let schema = Schema::load(path)?;
    let text = example::render(&schema, section.context_var.as_deref());
    ctx.output.stdout.write_now(text.into_bytes());
    Ok(Outcome { code: 0 })
}
