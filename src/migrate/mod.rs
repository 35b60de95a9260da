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
pub mod lease;
pub mod native;
pub mod tls;
pub mod url;

use crate::environment::Environment;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::{MigrateSection, Task};
use crate::health::status::Migrations;
use crate::job::{Job, Runner};
use crate::pid1::signals::next_stop;
use db::{Db, LockKey};
use native::Migration;
use url::DatabaseUrl;

/// Waiters try the lock this often, give or take a quarter…
const POLL: Duration = Duration::from_millis(250);
/// …after first tries that start this soon and double…
const FIRST_POLL: Duration = Duration::from_millis(25);
/// …and, once the lock has been held this long (a long migration), this often.
const SLOW_AFTER: Duration = Duration::from_secs(5);
const SLOW_POLL: Duration = Duration::from_secs(1);
/// Connections the holder leaves free for its command's own before it starts it.
const HEADROOM: i64 = 2;
/// A waiter says who holds the lock this often.
const REPORT_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("migrate: {var} is not set (it names the database to migrate)")]
    MissingUrl { var: String },
    #[error("migrate: {var} {source}")]
    BadUrl { var: String, source: url::UrlError },
    #[error("migrate: {}: {reason}", path.display())]
    BadFile { path: PathBuf, reason: String },
    #[error("migrate.fingerprint: {0}")]
    Fingerprint(#[from] fingerprint::FingerprintError),
    #[error("migrate: {url} goes through a transaction-mode pooler (PgBouncer, Supavisor, RDS Proxy…): two of our connections shared one server session, so the migration lock would not hold\nhint: point [migrate].database_url_env at a direct connection, e.g. `database_url_env = \"DIRECT_URL\"` with DIRECT_URL on the database's own port (5432, not the pooler's 6432/6543); a session-mode pooler works too")]
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
    TlsConfig { url: DatabaseUrl, error: String },
    #[error("migrate: {url}: {error}")]
    Database { url: DatabaseUrl, error: String },
    #[error("migrate: the migration lock was not free within {}; held by {holder}", humantime::format_duration(*waited))]
    LockTimeout { waited: Duration, holder: String },
    #[error("migrate: the migration lock was lost while {what} ran ({reason}); it was stopped")]
    LockLost { what: String, reason: String },
    #[error("migrate: stopped by {signal} before the migrations finished")]
    Stopped { signal: Signal },
    #[error("migrate: {} failed and was rolled back (not recorded): {error}", path.display())]
    Failed { path: PathBuf, error: String },
    #[error("migrate: {} (version {version}) changed after it was applied\nhint: {hint}", path.display())]
    Changed { path: PathBuf, version: i64, hint: String },
    #[error("migrate: `{command}` exited with code {code}")]
    CommandFailed { command: String, code: i32 },
    #[error(transparent)]
    Task(#[from] crate::tasks::TaskError),
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
            | MigrateError::Pooler { .. }
            | MigrateError::TlsConfig { .. } => 78,
            MigrateError::Unreachable { .. }
            | MigrateError::Refused { .. }
            | MigrateError::Database { .. }
            | MigrateError::LockTimeout { .. }
            | MigrateError::LockLost { .. } => 69,
            MigrateError::Failed { .. } | MigrateError::Changed { .. } => 65,
            MigrateError::CommandFailed { code, .. } => *code,
            MigrateError::Task(err) => err.exit_code(),
            MigrateError::Spawn { error, .. } => crate::pid1::spawn::spawn_error_code(error),
            MigrateError::Stopped { signal } => 128 + *signal as i32,
        }
    }
}

/// Everything the phase needs.
pub struct Phase<'a> {
    pub config: &'a MigrateSection,
    pub base_dir: &'a Path,
    pub env: &'a Environment,
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

/// Why an attempt at the phase did not finish.
enum Failure {
    /// The connection dropped half way (the server restarted): start over.
    Lost(String),
    /// Anything else ends the phase.
    Fatal(MigrateError),
}

impl From<MigrateError> for Failure {
    fn from(err: MigrateError) -> Failure {
        Failure::Fatal(err)
    }
}

/// A database error as a failure: the connection's own errors start the
/// phase over, the statement's end it.
fn sql(url: &DatabaseUrl) -> impl Fn(sqlx::Error) -> Failure + '_ {
    move |err| {
        if db::is_pooled_session(&err) {
            Failure::Fatal(MigrateError::Pooler { url: url.clone() })
        } else if db::is_transient(&err) {
            Failure::Lost(describe(url, &err))
        } else {
            Failure::Fatal(MigrateError::Database {
                url: url.clone(),
                error: describe(url, &err),
            })
        }
    }
}

/// Runs `future` unless a stop signal comes first.
async fn or_stop<T>(
    future: impl std::future::Future<Output = T>,
    signals: &mut mpsc::UnboundedReceiver<Signal>,
) -> Result<T, Failure> {
    tokio::select! {
        value = future => Ok(value),
        signal = next_stop(signals) => Err(Failure::Fatal(MigrateError::Stopped { signal })),
    }
}

/// The phase, with every replica racing: applied exactly once, never two
/// commands at once (`lease`). A stop signal ends it: a command under the
/// lock is stopped first, and only then is the lock released.
pub async fn run(phase: &Phase<'_>, signals: &mut mpsc::UnboundedReceiver<Signal>) -> Result<Summary, MigrateError> {
    let started = std::time::Instant::now();
    let url = database_url(phase.config, phase.env)?;

    // Problems with the files are found before touching the database.
    let migrations = match &phase.config.dir {
        Some(dir) => native::load(dir)?,
        None => Vec::new(),
    };
    let fingerprint = command_fingerprint(phase.config, phase.base_dir)?;
    let wanted = Wanted {
        migrations: &migrations,
        fingerprint: fingerprint.as_deref(),
        config: phase.config,
        state_key: state_key(&phase.config.lock_name),
    };
    loop {
        match attempt(phase, &url, &wanted, signals).await {
            Ok(mut summary) => {
                summary.duration = started.elapsed();
                return Ok(summary);
            }
            Err(Failure::Fatal(err)) => return Err(err),
            Err(Failure::Lost(error)) => {
                tracing::warn!(database = %url, error = %error, "connection lost during migrations; starting over");
                if let Err(Failure::Fatal(err)) = or_stop(tokio::time::sleep(Duration::from_millis(500)), signals).await
                {
                    return Err(err);
                }
            }
        }
    }
}

/// What this replica wants done, to be compared with what the database says.
struct Wanted<'m> {
    migrations: &'m [Migration],
    fingerprint: Option<&'m str>,
    config: &'m MigrateSection,
    state_key: String,
}

/// The database to migrate: `[migrate].database_url_env` in the validated environment.
pub fn database_url(config: &MigrateSection, env: &Environment) -> Result<DatabaseUrl, MigrateError> {
    let var = &config.database_url_env;
    let raw = env
        .get(var)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| MigrateError::MissingUrl { var: var.clone() })?;
    let bad_url = |source| MigrateError::BadUrl {
        var: var.clone(),
        source,
    };
    let raw = raw.to_str().ok_or(url::UrlError::NotUtf8).map_err(bad_url)?;
    DatabaseUrl::parse(raw).map_err(bad_url)
}

/// The hash of the migration command and its `fingerprint` files, when it has them.
pub fn command_fingerprint(config: &MigrateSection, base_dir: &Path) -> Result<Option<String>, MigrateError> {
    match (&config.command, config.fingerprint.is_empty()) {
        (Some(command), false) => fingerprint::compute(&command.to_string(), &config.fingerprint, base_dir)
            .map(Some)
            .map_err(MigrateError::from),
        _ => Ok(None),
    }
}

/// The key under which the migration command's fingerprint is recorded.
pub fn state_key(lock_name: &str) -> String {
    format!("command:{lock_name}")
}

/// One attempt: connect, leave when there is nothing to do, take the lock
/// (or see another replica finish), do the work under it, release it.
async fn attempt(
    phase: &Phase<'_>,
    url: &DatabaseUrl,
    wanted: &Wanted<'_>,
    signals: &mut mpsc::UnboundedReceiver<Signal>,
) -> Result<Summary, Failure> {
    let config = phase.config;
    let mut db = or_stop(connect(url, config.connect_timeout, true), signals).await??;
    if db.shares_sessions(url, &applied_by()).await.map_err(sql(url))? {
        return Err(MigrateError::Pooler { url: url.clone() }.into());
    }
    let database = db.database_name().await.map_err(sql(url))?;
    let key = LockKey::new(&config.lock_name, &database);
    if db.looks_pooled(&key).await.map_err(sql(url))? {
        return Err(MigrateError::Pooler { url: url.clone() }.into());
    }
    if work(&mut db, wanted).await.map_err(sql(url))??.is_empty() && phase.tasks.is_empty() {
        if wanted.fingerprint.is_some() && config.command.is_some() {
            tracing::info!("migration command skipped: its fingerprint is unchanged");
        }
        tracing::info!(migrations = wanted.migrations.len(), "Database is up to date");
        db.close().await;
        return Ok(Summary::default());
    }
    let Some(mut db) = or_stop(acquire(db, &key, url, wanted, phase), signals).await?? else {
        tracing::info!("migrations applied by another replica; continuing");
        return Ok(Summary::default());
    };
    // A failure leaves the connection as it is: dropping it releases the lock.
    let summary = under_lock(phase, &mut db, &key, url, wanted, signals).await?;
    match db.unlock(&key).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!("the migration lock was not held any more at release"),
        Err(err) => {
            tracing::warn!(error = %describe(url, &err), "cannot release the migration lock; closing the connection releases it")
        }
    }
    db.close().await;
    Ok(summary)
}

/// Polls for the lock: the connection that holds it, or `None` when another
/// replica finished the work meanwhile; reports the holder; gives up at
/// `lock_timeout`. A waiter holds no connection between its tries: on a
/// database with few connection slots, 30 waiters holding one each would
/// leave none for the holder's migration tool.
async fn acquire(
    mut db: Db,
    key: &LockKey,
    url: &DatabaseUrl,
    wanted: &Wanted<'_>,
    phase: &Phase<'_>,
) -> Result<Option<Db>, Failure> {
    let lock_timeout = phase.config.lock_timeout;
    let waiting_since = Instant::now();
    let mut last_report: Option<Instant> = None;
    let mut tries: u32 = 0;
    loop {
        if db.try_lock(key).await.map_err(sql(url))? {
            return Ok(Some(db));
        }
        let waited = waiting_since.elapsed();
        if last_report.is_none_or(|at| at.elapsed() >= REPORT_EVERY) || waited >= lock_timeout {
            let holder = db
                .holder(key)
                .await
                .map_err(sql(url))?
                .unwrap_or_else(|| "nobody (released just now)".to_string());
            if waited >= lock_timeout {
                return Err(MigrateError::LockTimeout {
                    waited: lock_timeout,
                    holder,
                }
                .into());
            }
            tracing::info!(
                waited_s = waited.as_secs(),
                "waiting for the migration lock held by {holder}"
            );
            last_report = Some(Instant::now());
        }
        // Most deploys migrate in milliseconds: the first tries come quickly
        // (25, 50, 100, 200 ms), then every POLL, and every SLOW_POLL once
        // the migration is a long one. ±25% keeps replicas out of step, while
        // the last waiter to notice a finished migration is late by at most
        // 1.25 × the step. The last try comes at `lock_timeout`.
        let step = if waited >= SLOW_AFTER {
            SLOW_POLL
        } else {
            FIRST_POLL.saturating_mul(1 << tries.min(4)).min(POLL)
        };
        tries += 1;
        db.close().await;
        let left = lock_timeout.saturating_sub(waiting_since.elapsed());
        tokio::time::sleep(step.mul_f64(0.75 + fastrand::f64() / 2.0).min(left)).await;
        let left = lock_timeout.saturating_sub(waiting_since.elapsed());
        db = connect(url, phase.config.connect_timeout.min(left), false).await?;
        // Done by the holder meanwhile? Then leave without taking the lock.
        if work(&mut db, wanted).await.map_err(sql(url))??.is_empty() && phase.tasks.is_empty() {
            db.close().await;
            return Ok(None);
        }
    }
}

/// The work, holding the lock: wait out a previous holder that did not
/// finish, read everything again, apply the files, run the command and the
/// tasks under the lock.
async fn under_lock(
    phase: &Phase<'_>,
    db: &mut Db,
    key: &LockKey,
    url: &DatabaseUrl,
    wanted: &Wanted<'_>,
    signals: &mut mpsc::UnboundedReceiver<Signal>,
) -> Result<Summary, Failure> {
    let config = phase.config;
    db.ensure_tables().await.map_err(sql(url))?;
    if let Some(previous) = db.unfinished(&config.lock_name).await.map_err(sql(url))? {
        tracing::warn!(
            "the lock was taken over from {previous}, which did not finish: waiting {} for it to have stopped",
            humantime::format_duration(lease::TAKEOVER_WAIT)
        );
        or_stop(tokio::time::sleep(lease::TAKEOVER_WAIT), signals).await?;
    }
    let work = work(db, wanted).await.map_err(sql(url))??;
    let applied_by = applied_by();
    let mut summary = Summary::default();
    for migration in &work.pending {
        match or_stop(db.apply(migration, &applied_by), signals).await? {
            Ok(took) => {
                tracing::info!(migration = %migration.name, duration_ms = took.as_millis() as u64, "applied");
                summary.applied.push((migration.name.clone(), took));
            }
            Err(err) if db::is_transient(&err) => return Err(Failure::Lost(describe(url, &err))),
            Err(err) => {
                return Err(MigrateError::Failed {
                    path: migration.path.clone(),
                    error: describe(url, &err),
                }
                .into())
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
    if let (true, Some(command)) = (work.run_command, &config.command) {
        let text = command.to_string();
        let started = std::time::Instant::now();
        let locked = Locked { db: &mut *db, key, url };
        let start = || {
            Job::start(&phase.runner, "migrate", command, None, phase.env, None).map_err(|error| MigrateError::Spawn {
                what: "the migration command".to_string(),
                command: text.clone(),
                error,
            })
        };
        let status = locked.run("the migration command", start, signals).await?;
        if !status.success() {
            return Err(MigrateError::CommandFailed {
                command: text,
                code: status.code(),
            }
            .into());
        }
        summary.command_ran = true;
        tracing::info!(
            duration_ms = started.elapsed().as_millis() as u64,
            "migration command finished: `{text}`"
        );
        if let Some(fingerprint) = wanted.fingerprint {
            db.record_fingerprint(&wanted.state_key, fingerprint, &text, started.elapsed(), &applied_by)
                .await
                .map_err(sql(url))?;
        }
    }
    for task in &phase.tasks {
        let label = format!("task.{}", task.name);
        let locked = Locked { db: &mut *db, key, url };
        let start = || crate::tasks::start(&phase.runner, task, phase.env).map_err(MigrateError::from);
        let status = locked.run(&label, start, signals).await?;
        crate::tasks::judge(task, status).map_err(MigrateError::from)?;
    }
    if summary.applied.is_empty() && !summary.command_ran {
        tracing::info!(migrations = wanted.migrations.len(), "Database is up to date");
    }
    Ok(summary)
}

/// The lock session, while it holds the lock.
struct Locked<'a> {
    db: &'a mut Db,
    key: &'a LockKey,
    url: &'a DatabaseUrl,
}

impl Locked<'_> {
    /// Runs a command outside the lock session under the lease: recorded as
    /// unfinished before it starts, its whole group gone before the record
    /// is cleared, stopped when the lease cannot be renewed.
    async fn run(
        self,
        what: &str,
        start: impl FnOnce() -> Result<Job, MigrateError>,
        signals: &mut mpsc::UnboundedReceiver<Signal>,
    ) -> Result<crate::pid1::ExitStatus, Failure> {
        let Locked { db, key, url } = self;
        let lock_name = &key.name;
        wait_for_headroom(db, url).await?;
        let confirmed = Instant::now();
        if !db.holds_lock(key).await.map_err(sql(url))? {
            return Err(MigrateError::LockLost {
                what: what.to_string(),
                reason: "it was not held any more when the command was to start".to_string(),
            }
            .into());
        }
        db.mark_unfinished(lock_name, &applied_by(), what)
            .await
            .map_err(sql(url))?;
        let mut job = match start() {
            Ok(job) => job,
            Err(err) => {
                let _ = db.clear_unfinished(lock_name).await;
                return Err(err.into());
            }
        };
        let ended = lease::hold(db, key, url, &mut job, confirmed, signals).await;
        job.end_group().await;
        match ended {
            lease::Ended::Finished(status) => {
                db.clear_unfinished(lock_name).await.map_err(sql(url))?;
                Ok(status)
            }
            lease::Ended::Lost(reason) => Err(MigrateError::LockLost {
                what: what.to_string(),
                reason,
            }
            .into()),
            lease::Ended::Stopped(signal) => {
                if let Err(err) = db.clear_unfinished(lock_name).await {
                    tracing::warn!(error = %describe(url, &err), "cannot clear the lease record; the next holder waits it out");
                }
                Err(MigrateError::Stopped { signal }.into())
            }
        }
    }
}

/// Before a command that will open connections of its own starts: wait a
/// little (10 s at most) for HEADROOM free connection slots, which waiters'
/// short-lived tries and the replicas' start-up stampede may be using.
async fn wait_for_headroom(db: &mut Db, url: &DatabaseUrl) -> Result<(), Failure> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut said = false;
    while let Some(free) = db.free_connections().await.map_err(sql(url))? {
        if free >= HEADROOM || Instant::now() >= deadline {
            break;
        }
        if !said {
            tracing::info!(
                free,
                "waiting for free database connections before starting the command"
            );
            said = true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// What is left to do, from the history and the recorded fingerprint.
/// The outer error is the database's; the inner one a changed file.
async fn work<'m>(db: &mut Db, wanted: &Wanted<'m>) -> Result<Result<Work<'m>, MigrateError>, sqlx::Error> {
    let pending = if wanted.config.dir.is_some() {
        let applied = db.applied().await?;
        match native::pending(wanted.migrations, &applied) {
            Ok(pending) => pending,
            Err(err) => return Ok(Err(err)),
        }
    } else {
        Vec::new()
    };
    let run_command = match (&wanted.config.command, wanted.fingerprint) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(_), Some(ours)) => db.fingerprint(&wanted.state_key).await?.as_deref() != Some(ours),
    };
    Ok(Ok(Work { pending, run_command }))
}

/// Connects, retrying with backoff while the database is not up yet, until
/// the whole budget is spent (the last try comes at its very end).
async fn connect(url: &DatabaseUrl, timeout: Duration, announce: bool) -> Result<Db, MigrateError> {
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
                if announce {
                    tracing::info!(database = %url, "connected");
                }
                return Ok(db);
            }
            Err(sqlx::Error::Tls(inner)) if inner.downcast_ref::<tls::TlsError>().is_some_and(|e| e.is_config()) => {
                return Err(MigrateError::TlsConfig {
                    url: url.clone(),
                    error: url.scrub(&inner.to_string()),
                })
            }
            Err(err) if !db::is_transient(&err) => {
                let mut error = describe(url, &err);
                if error.contains("unsupported startup parameter") {
                    error.push_str(
                        "\nhint: a PgBouncer refuses startup parameters it does not know: list them in \
                         ignore_startup_parameters in pgbouncer.ini, or use a direct URL for migrations",
                    );
                }
                return Err(MigrateError::Refused {
                    url: url.clone(),
                    error,
                });
            }
            Err(err) => {
                let error = describe(url, &err);
                let left = timeout.saturating_sub(started.elapsed());
                if left.is_zero() {
                    return Err(MigrateError::Unreachable {
                        url: url.clone(),
                        waited: timeout,
                        error,
                    });
                }
                tracing::info!(database = %url, attempt, delay_ms = delay.as_millis() as u64, error = %error, "database not reachable yet");
                tokio::time::sleep(delay.mul_f64(0.75 + fastrand::f64() / 2.0).min(left)).await;
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
