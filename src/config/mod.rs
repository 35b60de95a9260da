//! `supervisor.toml` or a `Procfile` → a validated [`Config`].
//!
//! This module knows nothing of running processes: it turns text into plain
//! data whose durations, signals and dependency names are already checked,
//! and reports *every* problem at once with file, line and key (SPEC §2).
//! Values that depend on the environment (`${VAR}` templates, `instances`)
//! are kept as [`Template`]s and expanded by `plan` once the environment has
//! been built and validated.
//!
//! `raw` mirrors the file, `validate` turns it into [`Config`], `procfile`
//! reads the fallback format, `settings` reads the `SUPERVISOR_*` variables.

pub mod procfile;
mod raw;
pub mod settings;
pub(crate) mod validate;

pub use validate::{parse_duration, parse_signal, DEFAULT_STOP_TIMEOUT};

pub mod interpolate;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;

pub use interpolate::Template;
pub use raw::{Condition, LogMode, RestartMode};

/// Where the config came from, for messages and relative paths.
#[derive(Debug, Clone)]
pub struct Source {
    /// The path as the user gave it or as we found it; used in messages.
    pub path: PathBuf,
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Toml,
    Procfile,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub source: Source,
    /// Relative paths in the file (`cwd`, `[env].files`, `[migrate].dir`) are
    /// relative to the config file's folder, as in docker compose.
    pub base_dir: PathBuf,
    pub wait_for: Vec<WaitTarget>,
    pub wait_timeout: Duration,
    /// How long the first stop signal only flips readiness (SPEC §6 "Drain").
    pub drain: Duration,
    pub env: EnvSection,
    pub health: HealthSection,
    /// `[control] socket`: a path, `"off"`, or `None` for the default place.
    pub control_socket: Option<String>,
    pub migrate: Option<MigrateSection>,
    pub tasks: Vec<Task>,
    pub processes: Vec<Process>,
    /// `[cron.NAME]` scheduled jobs (SPEC §10).
    pub crons: Vec<CronJob>,
}

/// One `wait_for` entry. Hosts often come from the environment
/// (`tcp://${REDIS_HOST:-redis}:6379`), so messages show `text` as written and
/// never the expanded value.
#[derive(Debug, Clone)]
pub struct WaitTarget {
    pub text: String,
    pub template: Template,
    pub line: usize,
}

#[derive(Debug, Clone, Default)]
pub struct EnvSection {
    pub schema: Option<PathBuf>,
    pub files: Vec<PathBuf>,
    pub context_var: Option<String>,
}

#[derive(Debug, Clone)]
pub struct HealthSection {
    /// `None` when the file says `listen = "off"`.
    pub listen: Option<String>,
}

pub const DEFAULT_HEALTH_LISTEN: &str = "0.0.0.0:9090";

#[derive(Debug, Clone)]
pub struct MigrateSection {
    pub database_url_env: String,
    pub dir: Option<PathBuf>,
    pub command: Option<CommandLine>,
    pub fingerprint: Vec<String>,
    pub lock_name: String,
    pub lock_timeout: Duration,
    pub connect_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Task {
    pub name: String,
    pub command: CommandLine,
    pub cwd: Option<PathBuf>,
    pub env: Vec<(String, Template)>,
    /// Runs only in these contexts; every context when `None`.
    pub contexts: Option<Vec<String>>,
    pub under_lock: bool,
    pub user: Option<String>,
}

/// A `[cron.NAME]` job: the schedule already parsed, so a bad one is a config error.
#[derive(Debug, Clone)]
pub struct CronJob {
    pub name: String,
    pub schedule: crate::cron::Schedule,
    pub command: CommandLine,
    pub cwd: Option<PathBuf>,
    pub env: Vec<(String, Template)>,
    pub user: Option<String>,
    pub overlap: crate::cron::Overlap,
    /// The run's group gets SIGTERM after this long, SIGKILL 5 s later.
    pub timeout: Option<Duration>,
    /// Runs only in these contexts; every context when `None`.
    pub contexts: Option<Vec<String>>,
}

/// How a command is started: a string goes through `/bin/sh -c`, an array is exec'd as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandLine {
    Shell(String),
    Exec(Vec<String>),
}

impl fmt::Display for CommandLine {
    /// For logs of our own config only; never used for child environment values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandLine::Shell(line) => f.write_str(line),
            CommandLine::Exec(argv) => f.write_str(&argv.join(" ")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Process {
    pub name: String,
    pub command: CommandLine,
    pub cwd: Option<PathBuf>,
    pub env: Vec<(String, Template)>,
    pub instances: Instances,
    /// `port`: instance i gets `PORT` = port + i (a number, or a template
    /// expanded with the environment, as `instances`).
    pub port: Option<Instances>,
    pub restart: RestartPolicy,
    pub is_critical: bool,
    pub stop_signal: Signal,
    pub stop_timeout: Duration,
    pub ready: Option<Probe>,
    pub live: Option<Probe>,
    pub depends_on: Vec<Dependency>,
    pub user: Option<String>,
    pub log: LogMode,
    /// Globs relative to the config's folder (`watch.rs`).
    pub watch: Vec<String>,
    pub watch_ignore: Vec<String>,
}

/// `[health].listen` and `SUPERVISOR_HEALTH_LISTEN`, in the forms people
/// type: `"off"`, a port (`"9090"`, `":9090"`: every interface) or an
/// address (`"127.0.0.1:9090"`). `None` means off. The message never
/// quotes the text (it may come from the environment).
pub fn parse_listen(text: &str) -> Result<Option<String>, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let port = text.strip_prefix(':').unwrap_or(text);
    let parsed = if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
        port.parse::<u16>().ok().map(|port| format!("0.0.0.0:{port}"))
    } else {
        text.parse::<std::net::SocketAddr>().ok().map(|_| text.to_string())
    };
    parsed.map(Some).ok_or_else(|| {
        "is not a port or an address (expected e.g. \"9090\", \"127.0.0.1:9090\", \"0.0.0.0:9090\" or \"off\")"
            .to_string()
    })
}

/// Where the health server listens, the one place of this rule:
/// `SUPERVISOR_HEALTH_LISTEN` > `[health].listen` > the default. `None` is off.
pub fn health_listen(setting: Option<&Option<String>>, section: &HealthSection) -> Option<String> {
    match setting {
        Some(value) => value.clone(),
        None => section.listen.clone(),
    }
}

impl Process {
    /// A process with every other key at its default (SPEC §2): what a
    /// Procfile line gives.
    pub fn with_defaults(name: String, command: CommandLine) -> Process {
        Process {
            name,
            command,
            cwd: None,
            env: Vec::new(),
            instances: Instances::Count(1),
            port: None,
            restart: RestartPolicy {
                mode: RestartMode::Always,
                backoff: validate::DEFAULT_BACKOFF,
                max_restarts: validate::DEFAULT_MAX_RESTARTS,
                window: validate::DEFAULT_RESTART_WINDOW,
            },
            is_critical: true,
            stop_signal: nix::sys::signal::Signal::SIGTERM,
            stop_timeout: validate::DEFAULT_STOP_TIMEOUT,
            ready: None,
            live: None,
            depends_on: Vec::new(),
            user: None,
            log: LogMode::Prefix,
            watch: Vec::new(),
            watch_ignore: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Instances {
    Count(u32),
    /// Expanded and checked once the environment is known; `key` and `line` are kept for that message.
    Template {
        template: Template,
        line: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RestartPolicy {
    pub mode: RestartMode,
    pub backoff: Backoff,
    pub max_restarts: u32,
    pub window: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub process: String,
    pub condition: Condition,
}

#[derive(Debug, Clone)]
pub struct Probe {
    pub check: Check,
    pub interval: Duration,
    pub timeout: Duration,
    pub failure_threshold: u32,
    pub success_threshold: u32,
}

#[derive(Debug, Clone)]
pub enum Check {
    Http(String),
    Tcp(String),
    Exec(CommandLine),
    /// Ready when a line matches (`✓ Ready in 1.2s`): read by the output
    /// relays as lines pass, never polled.
    Log {
        pattern: std::sync::Arc<regex::bytes::Regex>,
        stream: LogStream,
    },
}

/// Which output a `log` readiness check reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
    /// Many frameworks announce readiness on stderr: both, by default.
    Any,
}

/// One config problem, with everything needed to find it in the file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub file: PathBuf,
    pub line: Option<usize>,
    /// Dotted key such as `process.web.stop_timeout`; empty for syntax errors.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no supervisor.toml or Procfile in {}\nhint: pass --config PATH or set SUPERVISOR_CONFIG", dir.display())]
    NotFound { dir: PathBuf },
    #[error("{}: cannot read the config: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Every problem found, sorted by file and line.
    #[error("{}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\nerror: "))]
    Invalid { problems: Vec<Problem> },
    #[error("{variable}: {message}")]
    Setting { variable: String, message: String },
}

/// Finds the config: `--config` > `$SUPERVISOR_CONFIG` > `./supervisor.toml` > `./Procfile` (SPEC §1).
pub fn locate(explicit: Option<&Path>) -> Result<Source, ConfigError> {
    if let Some(path) = explicit {
        return Ok(Source {
            path: path.to_path_buf(),
            format: format_of(path),
        });
    }
    for (name, format) in [("supervisor.toml", Format::Toml), ("Procfile", Format::Procfile)] {
        let path = PathBuf::from(name);
        if path.is_file() {
            return Ok(Source { path, format });
        }
    }
    Err(ConfigError::NotFound {
        dir: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
    })
}

/// A file whose name starts with `Procfile` (`Procfile`, `Procfile.dev`) is read as one.
fn format_of(path: &Path) -> Format {
    let is_procfile = path
        .file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with("Procfile"));
    if is_procfile {
        Format::Procfile
    } else {
        Format::Toml
    }
}

/// Reads and validates the config at `source`.
pub fn load(source: Source) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(&source.path).map_err(|err| ConfigError::Read {
        path: source.path.clone(),
        source: err,
    })?;
    let base_dir = match source.path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    parse(&text, source, base_dir)
}

/// Validates config `text` as if read from `source`; no I/O besides user
/// look-ups. Relative paths in it are resolved against `base_dir`.
pub fn parse(text: &str, source: Source, base_dir: PathBuf) -> Result<Config, ConfigError> {
    let result = match source.format {
        Format::Toml => validate::from_toml(text, source, base_dir),
        Format::Procfile => validate::from_procfile(text, source, base_dir),
    };
    result.map_err(|mut problems| {
        problems.sort();
        ConfigError::Invalid { problems }
    })
}

/// Parses `config` text as if it came from `path`; for unit tests.
#[cfg(test)]
pub fn parse_str(text: &str) -> Result<Config, ConfigError> {
    let dir = std::env::temp_dir().join(format!("supervisor-config-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("t{}.toml", fastrand::u64(..)));
    std::fs::write(&path, text).expect("temp dir is writable");
    let result = load(Source {
        path: path.clone(),
        format: Format::Toml,
    });
    let _ = std::fs::remove_file(&path);
    result
}
