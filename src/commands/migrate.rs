//! `supervisor migrate`: the migration phase of `run`, alone, for a release
//! job or an init container. `--status` lists applied and pending
//! migrations without taking the lock.

use crate::config::{self, ConfigError, Problem};
use crate::error::Error;
use crate::job::Runner;
use crate::migrate::{self, db::Db, native, MigrateError};
use crate::supervise::Outcome;

use super::Context;

pub async fn migrate(mut ctx: Context, context: Option<String>, status: bool) -> Result<Outcome, Error> {
    let config = config::load(config::locate(ctx.config_path().as_deref())?)?;
    let Some(section) = &config.migrate else {
        return Err(ConfigError::Invalid {
            problems: vec![Problem {
                file: config.source.path.clone(),
                line: None,
                key: "migrate".to_string(),
                message: "is not configured: there is nothing to migrate".to_string(),
            }],
        }
        .into());
    };
    let environment = ctx.environment(&config.env, context.as_deref(), false)?;
    if status {
        return print_status(&ctx, &config, section, &environment.vars).await;
    }
    let phase = migrate::Phase {
        config: section,
        base_dir: &config.base_dir,
        env: &environment.vars,
        tasks: Vec::new(),
        runner: Runner {
            reaper: &ctx.reaper,
            output: &ctx.output,
            format: ctx.line_format(),
        },
    };
    migrate::run(&phase, &mut ctx.signals).await?;
    Ok(Outcome { code: 0 })
}

async fn print_status(
    ctx: &Context,
    config: &config::Config,
    section: &config::MigrateSection,
    env: &crate::environment::Environment,
) -> Result<Outcome, Error> {
    let url = migrate::database_url(section, env)?;
    let migrations = match &section.dir {
        Some(dir) => native::load(dir)?,
        None => Vec::new(),
    };
    let fingerprint = migrate::command_fingerprint(section, &config.base_dir)?;
    let database_error = |err: sqlx::Error| MigrateError::Database {
        url: url.clone(),
        error: migrate::describe(&url, &err),
    };
    let mut db = Db::connect(
        &url,
        &migrate::applied_by(),
        section.connect_timeout.min(std::time::Duration::from_secs(10)),
    )
    .await
    .map_err(|err| MigrateError::Refused {
        url: url.clone(),
        error: migrate::describe(&url, &err),
    })?;
    let applied = db.applied().await.map_err(database_error)?;
    let record = match &section.command {
        Some(_) => db
            .command_record(&migrate::state_key(&section.lock_name))
            .await
            .map_err(database_error)?,
        None => None,
    };
    db.close().await;

    let mut out = String::new();
    if section.dir.is_some() {
        for row in &applied {
            let marker = match migrations.iter().find(|m| m.version == row.version) {
                None => "  (not in this image)",
                Some(file) if file.checksum != row.checksum => "  (CHANGED since it was applied)",
                Some(_) => "",
            };
            out.push_str(&format!(
                "applied  {:<20} {}  {}{marker}\n",
                row.version, row.name, row.applied_at
            ));
        }
        let pending: Vec<_> = migrations
            .iter()
            .filter(|m| !applied.iter().any(|a| a.version == m.version))
            .collect();
        for migration in &pending {
            out.push_str(&format!("pending  {:<20} {}\n", migration.version, migration.name));
        }
        out.push_str(&format!(
            "{} applied, {} pending ({url})\n",
            applied.len(),
            pending.len()
        ));
    }
    if let Some(command) = &section.command {
        let last = record
            .as_ref()
            .map(|r| format!("last succeeded {} by {}", r.applied_at, r.applied_by))
            .unwrap_or_else(|| "never recorded as succeeded".to_string());
        let verdict = match (&fingerprint, &record) {
            (None, _) => "runs on every start (no fingerprint)",
            (Some(ours), Some(r)) if *ours == r.fingerprint => "fingerprint matches: it would be skipped",
            (Some(_), Some(_)) => "fingerprint changed: it would run",
            (Some(_), None) => "no fingerprint recorded: it would run",
        };
        out.push_str(&format!("command  `{command}`: {verdict}; {last} ({url})\n"));
    }
    ctx.output.stdout.write_now(out.into_bytes());
    Ok(Outcome { code: 0 })
}
