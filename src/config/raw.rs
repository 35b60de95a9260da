//! A serde mirror of `supervisor.toml`, with no logic of its own.
//!
//! Every table denies unknown keys, so a typo such as `stop_timout` is a
//! config error instead of a silently ignored line. Values that need parsing
//! (durations, signals) stay `Spanned<String>` here so that `validate` can
//! report *every* bad value with its line, rather than stopping at the first
//! one as a serde error would.

use indexmap::IndexMap;
use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub wait_for: Vec<Spanned<String>>,
    pub wait_timeout: Option<Spanned<String>>,
    pub drain: Option<Spanned<String>>,
    pub env: Option<RawEnv>,
    pub health: Option<RawHealth>,
    pub control: Option<RawControl>,
    pub migrate: Option<RawMigrate>,
    #[serde(default)]
    pub task: IndexMap<String, Spanned<RawTask>>,
    #[serde(default)]
    pub process: IndexMap<String, Spanned<RawProcess>>,
    #[serde(default)]
    pub cron: IndexMap<String, Spanned<RawCron>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEnv {
    pub schema: Option<String>,
    #[serde(default)]
    pub files: Vec<String>,
    pub context_var: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub listen: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawControl {
    pub socket: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMigrate {
    pub database_url_env: Option<String>,
    pub dir: Option<String>,
    pub command: Option<RawCommand>,
    #[serde(default)]
    pub fingerprint: Vec<String>,
    pub lock_name: Option<String>,
    pub lock_timeout: Option<Spanned<String>>,
    pub connect_timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTask {
    pub command: RawCommand,
    pub cwd: Option<String>,
    #[serde(default)]
    pub env: IndexMap<String, String>,
    pub contexts: Option<Vec<String>>,
    #[serde(default)]
    pub under_lock: bool,
    pub user: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCron {
    pub schedule: Spanned<String>,
    pub command: RawCommand,
    pub cwd: Option<String>,
    #[serde(default)]
    pub env: IndexMap<String, String>,
    pub user: Option<Spanned<String>>,
    pub timezone: Option<Spanned<String>>,
    pub overlap: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub contexts: Option<Vec<String>>,
}

/// `command = "node server.js"` (run by `/bin/sh -c`) or `["node", "server.js"]` (exec'd as is).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, expecting = "expected a string or an array of strings")]
pub enum RawCommand {
    Shell(String),
    Exec(Vec<String>),
}

/// `instances = 3` or `instances = "${CLUSTER_WORKERS:-1}"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "expected a whole number or a string such as \"${WORKERS:-1}\""
)]
pub enum RawInstances {
    Count(i64),
    Template(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProcess {
    pub command: RawCommand,
    pub cwd: Option<String>,
    #[serde(default)]
    pub env: IndexMap<String, String>,
    pub instances: Option<Spanned<RawInstances>>,
    /// A number or a template, like `instances`: instance i gets `PORT` = port + i.
    pub port: Option<Spanned<RawInstances>>,
    pub restart: Option<RestartMode>,
    pub backoff: Option<RawBackoff>,
    pub max_restarts: Option<u32>,
    pub restart_window: Option<Spanned<String>>,
    pub critical: Option<bool>,
    pub stop_signal: Option<Spanned<String>>,
    pub stop_timeout: Option<Spanned<String>>,
    pub ready: Option<Spanned<RawProbe>>,
    pub live: Option<Spanned<RawProbe>>,
    pub depends_on: Option<Spanned<RawDependsOn>>,
    pub user: Option<Spanned<String>>,
    pub log: Option<LogMode>,
    /// Dev: restart when a file matching one of these globs changes.
    #[serde(default)]
    pub watch: Vec<String>,
    #[serde(default)]
    pub watch_ignore: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartMode {
    Always,
    OnFailure,
    Never,
}

/// How a process's output reaches our stdout/stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogMode {
    /// Read line by line and written whole, prefixed (or as JSON lines).
    #[default]
    Prefix,
    /// The child writes straight to our stdout/stderr.
    Raw,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackoff {
    pub initial: Option<Spanned<String>>,
    pub max: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProbe {
    pub http: Option<String>,
    pub tcp: Option<String>,
    pub exec: Option<RawCommand>,
    /// A regex: ready when a line of the process's output matches.
    pub log: Option<String>,
    /// Which output `log` reads: stdout, stderr or any (default).
    pub stream: Option<String>,
    pub interval: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub failure_threshold: Option<u32>,
    pub success_threshold: Option<u32>,
}

/// `depends_on = ["a", "b"]` (each must be ready) or `{ a = "completed", b = "started" }`.
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "expected an array of process names or a table of name = condition"
)]
pub enum RawDependsOn {
    List(Vec<String>),
    Conditions(IndexMap<String, Condition>),
}

/// What a dependent waits for before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Condition {
    /// Spawned at least once.
    Started,
    /// Running and its `ready` probe passed (or it has none).
    Ready,
    /// Exited with code 0 and will not be restarted.
    Completed,
}
