//! `supervisor env-example`: print a `.env.example` generated from the schema.

use crate::env::{example, schema::Schema};
use crate::error::Error;
use crate::supervise::Outcome;

use super::Context;

pub fn env_example(ctx: Context) -> Result<Outcome, Error> {
    let (section, path) = ctx.schema_section("generate an example from")?;
    let schema = Schema::load(&path)?;
    let text = example::render(&schema, section.context_var.as_deref());
    ctx.output.stdout.write_now(text.into_bytes());
    Ok(Outcome { code: 0 })
}
