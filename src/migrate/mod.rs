//! Migrations, applied exactly once across replicas (SPEC §4).
//!
//! # Theory of operation
//!
//! Every replica runs the same phase. It opens one dedicated connection
//! (retrying while the database comes up), reads what is applied and what
//! is pending *without* the lock, and leaves at once when there is nothing
//! to do. Otherwise it polls for a session advisory lock (`pg_try_advisory_lock`
//! or MySQL's `GET_LOCK`), never blocking inside the server; between polls it
//! re-checks, so waiters leave as soon as the holder has finished the work.
//! The holder re-reads the history under the lock, applies pending SQL files,
//! runs the migration command when its fingerprint changed, then the tasks
//! that asked for the lock, with a heartbeat checking the lock is still held.
//! A connection lost half way (the server restarted) rolls the open
//! transaction back; the whole phase is then retried from the top.
//!
//! `url` names the database without its password, `db` holds every SQL
//! statement, `native` reads the SQL files, `fingerprint` hashes the tool's
//! inputs.

pub mod db;
mod fingerprint;
pub mod native;
pub mod url;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::{MigrateSection, Task};
use crate::health::status::Migrations;
use crate::job::{Job, Runner};
use db::{Db, LockKey};
use native::Migration;
use url::DatabaseUrl;

/// Waiters try the lock this often, give or take a quarter…
const POLL: Duration = Duration::from_millis(250);
/// …after first tries that start this soon and double.
const FIRST_POLL: Duration = Duration::from_millis(25);
/// A waiter says who holds the lock this often.
const REPORT_EVERY: Duration = Duration::from_secs(5);
/// The lock is checked this often while a command runs under it.
const HEARTBEAT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("migrate: {var} is not set (it names the database to migrate)")]
    MissingUrl { var: String },
    #[error("migrate: {var} {reason}")]
    BadUrl { var: String, reason: String },
    #[error("migrate: {}: {reason}", path.display())]
    BadFile { path: PathBuf, reason: String },
    #[error("migrate.fingerprint: {reason}")]
    Fingerprint { reason: String },
    #[error("migrate: {url} looks like a transaction-mode pooler (PgBouncer?): session locks do not work through it\nhint: point [migrate].database_url_env at a direct connection URL, e.g. DIRECT_DATABASE_URL")]
    Pooler { url: DatabaseUrl },
    #[error("migrate: {url} is not reachable after {}: {error}", humantime::format_duration(*waited))]
    Unreachable {
        url: DatabaseUrl,
        waited: Duration,
        error: String,
    },
    #[error("migrate: cannot connect to {url}: {error}")]
    Refused { url: DatabaseUrl, error: String },
    #[error("migrate: {url}: {error}")]
    Database { url: DatabaseUrl, error: String },
    #[error("migrate: the migration lock was not free within {}; held by {holder}", humantime::format_duration(*waited))]
    LockTimeout { waited: Duration, holder: String },
    #[error("migrate: the migration lock was lost while {what} ran; it was stopped")]
    LockLost { what: String },
    #[error("migrate: {} failed and was rolled back (not recorded): {error}", path.display())]
    Failed { path: PathBuf, error: String },
    #[error("migrate: {} (version {version}) changed after it was applied\nhint: {hint}", path.display())]
    Changed { path: PathBuf, version: i64, hint: String },
    #[error("migrate: `{command}` exited with code {code}")]
    CommandFailed { command: String, code: i32 },
    #[error("task.{name}: `{command}` exited with code {code}")]
    TaskFailed { name: String, command: String, code: i32 },
    #[error("{what}: cannot start `{command}`: {error}")]
    Spawn {
        what: String,
        command: String,
        error: std::io::Error,
    },
}

impl MigrateError {
    /// SPEC §7: 65 a failed or changed migration; 69 database or lock; 78 config.
    pub fn exit_code(&self) -> i32 {
        match self {
            MigrateError::MissingUrl { .. }
            | MigrateError::BadUrl { .. }
            | MigrateError::BadFile { .. }
            | MigrateError::Fingerprint { .. }
            | MigrateError::Pooler { .. } => 78,
            MigrateError::Unreachable { .. }
            | MigrateError::Refused { .. }
            | MigrateError::Database { .. }
            | MigrateError::LockTimeout { .. }
            | MigrateError::LockLost { .. } => 69,
            MigrateError::Failed { .. } | MigrateError::Changed { .. } => 65,
            MigrateError::CommandFailed { code, .. } | MigrateError::TaskFailed { code, .. } => *code,
            MigrateError::Spawn { error, .. } => crate::pid1::spawn::spawn_error_code(error),
        }
    }
}

/// Everything the phase needs.
pub struct Phase<'a> {
    pub config: &'a MigrateSection,
    pub base_dir: &'a Path,
    pub env: &'a [(OsString, OsString)],
    /// `[task.NAME]` steps with `under_lock`, already filtered by context.
    pub tasks: Vec<&'a Task>,
    pub runner: Runner<'a>,
}

/// What the phase did, for logs and /health.
#[derive(Debug, Default)]
pub struct Summary {
    pub applied: Vec<(String, Duration)>,
    pub command_ran: bool,
    pub duration: Duration,
}

impl Summary {
    pub fn migrations(&self) -> Migrations {
        let did_something = !self.applied.is_empty() || self.command_ran;
        Migrations {
            state: if did_something { "applied" } else { "up_to_date" },
            applied: self.applied.len() as u32,
            duration_seconds: (self.duration.as_secs_f64() * 1000.0).round() / 1000.0,
        }
    }
}

/// What this replica has to do, read without the lock and again under it.
struct Work<'m> {
    pending: Vec<&'m Migration>,
    run_command: bool,
}

impl Work<'_> {
    fn is_empty(&self) -> bool {
        self.pending.is_empty() && !self.run_command
    }
}

/// How one attempt at the phase ended.
enum Attempt {
    Done(Summary),
    /// The connection dropped mid-phase: start over.
    Lost(String),
}

pub async fn run(phase: &Phase<'_>) -> Result<Summary, MigrateError> {
    let started = std::time::Instant::now();
    let url = database_url(phase.config, phase.env)?;

    // Problems with the files are found before touching the database.
    let migrations = match &phase.config.dir {
        Some(dir) => native::load(dir)?,
        None => Vec::new(),
    };
    let fingerprint = match (&phase.config.command, phase.config.fingerprint.is_empty()) {
        (Some(command), false) => Some(
            fingerprint::compute(&command.to_string(), &phase.config.fingerprint, phase.base_dir)
                .map_err(|reason| MigrateError::Fingerprint { reason })?,
        ),
        _ => None,
    };
    loop {
        match attempt(phase, &url, &migrations, fingerprint.as_deref()).await? {
            Attempt::Done(mut summary) => {
                summary.duration = started.elapsed();
                return Ok(summary);
            }
            Attempt::Lost(error) => {
                tracing::warn!(database = %url, error = %error, "connection lost during migrations; starting over");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// The database to migrate: `[migrate].database_url_env` in the validated environment.
pub fn database_url(config: &MigrateSection, env: &[(OsString, OsString)]) -> Result<DatabaseUrl, MigrateError> {
    let var = &config.database_url_env;
    let raw = crate::env::lookup(env, var)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| MigrateError::MissingUrl { var: var.clone() })?;
    let raw = raw.to_str().ok_or_else(|| MigrateError::BadUrl {
        var: var.clone(),
        reason: "is not valid UTF-8".to_string(),
    })?;
    DatabaseUrl::parse(raw).map_err(|reason| MigrateError::BadUrl {
        var: var.clone(),
        reason,
    })
}

/// The key under which the migration command's fingerprint is recorded.
fn state_key(lock_name: &str) -> String {
    format!("command:{lock_name}")
}

async fn attempt(
    phase: &Phase<'_>,
    url: &DatabaseUrl,
    migrations: &[Migration],
    fingerprint: Option<&str>,
) -> Result<Attempt, MigrateError> {
    let config = phase.config;
    let mut db = connect(url, config.connect_timeout).await?;
    let sql = |err: sqlx::Error| describe(url, &err);
    macro_rules! db_try {
        ($e:expr) => {
            match $e {
                Ok(value) => value,
                Err(err) if db::is_transient(&err) => return Ok(Attempt::Lost(sql(err))),
                Err(err) => {
                    return Err(MigrateError::Database {
                        url: url.clone(),
                        error: sql(err),
                    })
                }
            }
        };
    }
    let database = db_try!(db.database_name().await);
    let key = LockKey::new(&config.lock_name, &database);
    if db_try!(db.looks_pooled(&key).await) {
        return Err(MigrateError::Pooler { url: url.clone() });
    }

    let state_key = state_key(&config.lock_name);
    let mut work = db_try!(work(&mut db, migrations, fingerprint, config, &state_key).await)?;
    if work.is_empty() && phase.tasks.is_empty() {
        if fingerprint.is_some() && config.command.is_some() {
            tracing::info!("migration command skipped: its fingerprint is unchanged");
        }
        tracing::info!(migrations = migrations.len(), "Database is up to date");
        db.close().await;
        return Ok(Attempt::Done(Summary::default()));
    }

    // The lock: try, re-check, report the holder, give up at lock_timeout.
    let waiting_since = Instant::now();
    let mut last_report: Option<Instant> = None;
    let mut tries: u32 = 0;
    loop {
        if db_try!(db.try_lock(&key).await) {
            break;
        }
        work = db_try!(self::work(&mut db, migrations, fingerprint, config, &state_key).await)?;
        if work.is_empty() && phase.tasks.is_empty() {
            tracing::info!("migrations applied by another replica; continuing");
            db.close().await;
            return Ok(Attempt::Done(Summary::default()));
        }
        let waited = waiting_since.elapsed();
        if last_report.is_none_or(|at| at.elapsed() >= REPORT_EVERY) || waited >= config.lock_timeout {
            let holder = db_try!(db.holder(&key).await).unwrap_or_else(|| "nobody (released just now)".to_string());
            if waited >= config.lock_timeout {
                return Err(MigrateError::LockTimeout {
                    waited: config.lock_timeout,
                    holder,
                });
            }
            tracing::info!(
                waited_s = waited.as_secs(),
                "waiting for the migration lock held by {holder}"
            );
            last_report = Some(Instant::now());
        }
        // Most deploys migrate in milliseconds: the first tries come quickly
        // (25, 50, 100, 200 ms), then every POLL. ±25% keeps replicas out of
        // step, while the last waiter to notice a finished migration is late
        // by at most 1.25 × POLL.
        let step = FIRST_POLL.saturating_mul(1 << tries.min(4)).min(POLL);
        tries += 1;
        tokio::time::sleep(step.mul_f64(0.75 + fastrand::f64() / 2.0)).await;
    }

    // Under the lock: read everything again, then do the work.
    let applied_by = crate::migrate::applied_by();
    db_try!(db.ensure_tables().await);
    work = db_try!(self::work(&mut db, migrations, fingerprint, config, &state_key).await)?;
    let mut summary = Summary::default();
    for migration in &work.pending {
        match db.apply(migration, &applied_by).await {
            Ok(took) => {
                tracing::info!(migration = %migration.name, duration_ms = took.as_millis() as u64, "applied");
                summary.applied.push((migration.name.clone(), took));
            }
            Err(err) if db::is_transient(&err) => return Ok(Attempt::Lost(sql(err))),
            Err(err) => {
                return Err(MigrateError::Failed {
                    path: migration.path.clone(),
                    error: sql(err),
                })
            }
        }
    }
    if !summary.applied.is_empty() {
        let list: Vec<String> = summary
            .applied
            .iter()
            .map(|(name, took)| format!("{name} ({} ms)", took.as_millis()))
            .collect();
        tracing::info!("Applied {} migration(s): {}", summary.applied.len(), list.join(", "));
    }
    if work.run_command {
        if let Some(command) = &config.command {
            let text = command.to_string();
            let started = std::time::Instant::now();
            let job = Job::start(&phase.runner, "migrate", command, None, phase.env, None).map_err(|error| {
                MigrateError::Spawn {
                    what: "migrate".to_string(),
                    command: text.clone(),
                    error,
                }
            })?;
            let status = db_try!(under_lock(&mut db, &key, job, "the migration command").await)?;
            if !status.success() {
                return Err(MigrateError::CommandFailed {
                    command: text,
                    code: status.code(),
                });
            }
            summary.command_ran = true;
            tracing::info!(
                duration_ms = started.elapsed().as_millis() as u64,
                "migration command finished: `{text}`"
            );
            if let Some(fingerprint) = fingerprint {
                db_try!(
                    db.record_fingerprint(&state_key, fingerprint, &text, started.elapsed(), &applied_by)
                        .await
                );
            }
        }
    }
    for task in &phase.tasks {
        run_task_under_lock(phase, &mut db, &key, task).await?;
    }
    if summary.applied.is_empty() && !summary.command_ran {
        tracing::info!(migrations = migrations.len(), "Database is up to date");
    }
    match db.unlock(&key).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!("the migration lock was not held any more at release"),
        Err(err) => {
            tracing::warn!(error = %sql(err), "cannot release the migration lock; closing the connection releases it")
        }
    }
    db.close().await;
    Ok(Attempt::Done(summary))
}

async fn run_task_under_lock(phase: &Phase<'_>, db: &mut Db, key: &LockKey, task: &Task) -> Result<(), MigrateError> {
    let label = format!("task.{}", task.name);
    let text = task.command.to_string();
    let job = crate::tasks::start(&phase.runner, task, phase.env).map_err(|error| MigrateError::Spawn {
        what: label.clone(),
        command: text.clone(),
        error,
    })?;
    let status = match under_lock(db, key, job, &label).await {
        Ok(result) => result?,
        Err(err) => {
            return Err(MigrateError::LockLost {
                what: format!("{label} ({})", err),
            })
        }
    };
    if status.success() {
        tracing::info!(task = %task.name, "task finished");
        Ok(())
    } else {
        Err(MigrateError::TaskFailed {
            name: task.name.clone(),
            command: text,
            code: status.code(),
        })
    }
}

/// Waits for `job` while checking, every few seconds, that we still hold
/// the lock; a lost lock stops the job (SPEC §4).
async fn under_lock(
    db: &mut Db,
    key: &LockKey,
    mut job: Job,
    what: &str,
) -> Result<Result<crate::pid1::ExitStatus, MigrateError>, sqlx::Error> {
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.tick().await;
    loop {
        tokio::select! {
            status = job.wait() => return Ok(Ok(status)),
            _ = heartbeat.tick() => {
                let held = match db.holds_lock(key).await {
                    Ok(held) => held,
                    Err(err) => {
                        tracing::error!(error = %err, "the lock heartbeat failed");
                        false
                    }
                };
                if !held {
                    tracing::error!("the migration lock was lost while {what} ran: stopping it");
                    job.stop(Duration::from_secs(5)).await;
                    return Ok(Err(MigrateError::LockLost { what: what.to_string() }));
                }
            }
        }
    }
}

/// What is left to do, from the history and the recorded fingerprint.
/// The outer error is the database's; the inner one a changed file.
async fn work<'m>(
    db: &mut Db,
    migrations: &'m [Migration],
    fingerprint: Option<&str>,
    config: &MigrateSection,
    state_key: &str,
) -> Result<Result<Work<'m>, MigrateError>, sqlx::Error> {
    let pending = if config.dir.is_some() {
        let applied = db.applied().await?;
        match native::pending(migrations, &applied) {
            Ok(pending) => pending,
            Err(err) => return Ok(Err(err)),
        }
    } else {
        Vec::new()
    };
    let run_command = match (&config.command, fingerprint) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(_), Some(ours)) => db.fingerprint(state_key).await?.as_deref() != Some(ours),
    };
    Ok(Ok(Work { pending, run_command }))
}

/// Connects, retrying with backoff while the database is not up yet.
async fn connect(url: &DatabaseUrl, timeout: Duration) -> Result<Db, MigrateError> {
    let started = Instant::now();
    let name = applied_by();
    let mut delay = Duration::from_millis(250);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let left = timeout.saturating_sub(started.elapsed());
        match Db::connect(
            url,
            &name,
            left.clamp(Duration::from_millis(100), Duration::from_secs(5)),
        )
        .await
        {
            Ok(db) => {
                tracing::info!(database = %url, "connected");
                return Ok(db);
            }
            Err(err) if !db::is_transient(&err) => {
                return Err(MigrateError::Refused {
                    url: url.clone(),
                    error: describe(url, &err),
                })
            }
            Err(err) => {
                let error = describe(url, &err);
                if started.elapsed() + delay >= timeout {
                    // Another attempt would not fit in the budget: report the budget, as wait_for does.
                    return Err(MigrateError::Unreachable {
                        url: url.clone(),
                        waited: timeout,
                        error,
                    });
                }
                tracing::info!(database = %url, attempt, delay_ms = delay.as_millis() as u64, error = %error, "database not reachable yet");
                tokio::time::sleep(delay.mul_f64(0.75 + fastrand::f64() / 2.0)).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// A database error in words, with the SQLSTATE, and never the password.
pub fn describe(url: &DatabaseUrl, err: &sqlx::Error) -> String {
    let text = match err {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => format!("{} (SQLSTATE {code})", db.message()),
            None => db.message().to_string(),
        },
        sqlx::Error::Configuration(inner) => inner.to_string(),
        other => other.to_string(),
    };
    url.scrub(&text)
}

/// `supervisor@<hostname>`: the application name waiters see in the holder report.
pub fn applied_by() -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".to_string());
    let mut name = format!("supervisor@{host}");
    name.truncate(63);
    name
}
