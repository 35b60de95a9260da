//! Raw file → [`Config`], collecting every problem with file, line and key.
//!
//! serde can only report the first error of a document, so anything that is
//! a *value* problem (a duration, a signal, a dependency name) is checked here
//! instead, where all of them can be gathered and reported together.

use std::collections::HashSet;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use indexmap::IndexMap;
use nix::sys::signal::Signal;
use toml::Spanned;

use super::interpolate::Template;
use super::procfile;
use super::raw::{self, Condition, RawCommand, RawConfig, RawDependsOn, RawInstances, RawProbe, RawProcess};
use super::{
    Backoff, Check, CommandLine, Config, CronJob, Dependency, EnvSection, HealthSection, Instances, MigrateSection,
    Probe, Problem, Process, RestartMode, RestartPolicy, Source, Task, WaitTarget, DEFAULT_HEALTH_LISTEN,
};

pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_BACKOFF: Backoff = Backoff {
    initial: Duration::from_millis(100),
    max: Duration::from_secs(30),
};
pub const DEFAULT_MAX_RESTARTS: u32 = 10;
pub const DEFAULT_RESTART_WINDOW: Duration = Duration::from_secs(60);
/// The most instances one process may have (the one place this limit lives).
pub const MAX_INSTANCES: i64 = 1024;

/// Collects problems against one file.
struct Checker<'a> {
    text: &'a str,
    file: &'a Path,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn line_of(&self, span: Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
    }

    fn report(&mut self, span: Option<Range<usize>>, key: impl Into<String>, message: impl Into<String>) {
        let line = span.map(|span| self.line_of(span));
        self.problems.push(Problem {
            file: self.file.to_path_buf(),
            line,
            key: key.into(),
            message: message.into(),
        });
    }

    fn duration(&mut self, value: Option<&Spanned<String>>, key: &str, default: Duration) -> Duration {
        let Some(value) = value else { return default };
        match parse_duration(value.get_ref()) {
            Some(duration) => duration,
            None => {
                self.report(
                    Some(value.span()),
                    key,
                    format!(
                        "invalid duration {:?} (expected e.g. \"500ms\", \"5s\", \"15m\")",
                        value.get_ref()
                    ),
                );
                default
            }
        }
    }

    fn signal(&mut self, value: Option<&Spanned<String>>, key: &str, default: Signal) -> Signal {
        let Some(value) = value else { return default };
        match parse_signal(value.get_ref()) {
            Some(signal) => signal,
            None => {
                self.report(
                    Some(value.span()),
                    key,
                    format!(
                        "unknown signal {:?} (expected e.g. \"SIGTERM\", \"SIGINT\", \"SIGQUIT\")",
                        value.get_ref()
                    ),
                );
                default
            }
        }
    }

    fn command(&mut self, raw: &RawCommand, span: Option<Range<usize>>, key: &str) -> CommandLine {
        match raw {
            RawCommand::Shell(line) => {
                if line.trim().is_empty() {
                    self.report(span, key, "is empty");
                }
                CommandLine::Shell(line.clone())
            }
            RawCommand::Exec(argv) => {
                if argv.first().is_none_or(|program| program.is_empty()) {
                    self.report(span, key, "needs a program as its first element");
                }
                CommandLine::Exec(argv.clone())
            }
        }
    }

    fn env(
        &mut self,
        raw: &IndexMap<String, String>,
        span: Option<Range<usize>>,
        key: &str,
    ) -> Vec<(String, Template)> {
        let mut env = Vec::new();
        for (name, value) in raw {
            if name.is_empty() || name.contains(['=', '\0']) {
                self.report(span.clone(), format!("{key}.{name}"), "is not a valid variable name");
                continue;
            }
            match Template::parse(value) {
                Ok(template) => env.push((name.clone(), template)),
                Err(err) => self.report(span.clone(), format!("{key}.{name}"), err.to_string()),
            }
        }
        env
    }

    /// The name of a `[task.NAME]`, `[cron.NAME]` or `[process.NAME]` table.
    fn name(&mut self, table: &str, noun: &str, name: &str, span: Option<Range<usize>>) {
        if !is_valid_name(name) {
            self.report(
                span,
                format!("{table}.{name}"),
                format!("a {noun} name may only use letters, digits, `_` and `-`"),
            );
        }
    }

    /// Globs (`watch`, `watch_ignore`), each checked as globset will read it.
    fn globs(&mut self, patterns: &[String], span: Option<Range<usize>>, key: &str) -> Vec<String> {
        for pattern in patterns {
            // One pattern at a time, so that every bad one is named.
            if let Err(err) = crate::globs::set(std::slice::from_ref(pattern)) {
                self.report(span.clone(), key, err.to_string());
            }
        }
        patterns.to_vec()
    }

    fn user(&mut self, user: Option<&Spanned<String>>, key: &str) -> Option<String> {
        let user = user?;
        if let Err(err) = crate::pid1::spawn::resolve_user(user.get_ref()) {
            self.report(Some(user.span()), key, err.to_string());
        }
        Some(user.get_ref().clone())
    }
}

/// `"5s"`, `"100ms"`, `"1h 30m"`, and a bare `"0"`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    if text.trim() == "0" {
        return Some(Duration::ZERO);
    }
    humantime::parse_duration(text.trim()).ok()
}

/// `"SIGTERM"`, `"TERM"` or `"sigterm"`.
pub fn parse_signal(text: &str) -> Option<Signal> {
    let upper = text.trim().to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).ok()
}

fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A serde error as (key, message, span), in our words where serde's leak
/// its internals (`expected u32`, `invalid type`).
fn describe_toml_error(err: serde_path_to_error::Error<toml::de::Error>) -> (String, String, Option<Range<usize>>) {
    // `Spanned` shows up in the path as a private segment; users never wrote it.
    let mut key = err
        .path()
        .to_string()
        .split('.')
        .filter(|segment| !segment.starts_with("$__serde_spanned"))
        .collect::<Vec<_>>()
        .join(".");
    let inner = err.into_inner();
    let mut message = inner.message().trim().to_string();
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some((field, expected)) = rest.split_once('`') {
            if !key.ends_with(field) {
                key = if key == "." || key.is_empty() {
                    field.to_string()
                } else {
                    format!("{key}.{field}")
                };
            }
            message = match expected.strip_prefix(", expected ") {
                Some(expected) => format!("unknown key (expected {expected})"),
                None => "unknown key".to_string(),
            };
        }
    }
    if key == "." {
        key.clear();
    }
    (key.clone(), plain_words(&key, &message), inner.span())
}

/// serde's phrases, said for people who write TOML.
fn plain_words(key: &str, message: &str) -> String {
    let duration_key = ["timeout", "interval", "window", "initial", "max", "drain"]
        .iter()
        .any(|end| key.ends_with(end));
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        if let Some((found, expected)) = rest.split_once(", expected ") {
            if duration_key && expected == "a string" {
                return format!(
                    "expected a duration such as \"5s\" or \"500ms\", found {found} (a number alone has no unit)"
                );
            }
            let expected = match expected {
                "u32" | "u16" | "u64" | "i64" | "i32" | "usize" => "a whole number",
                "a boolean" => "true or false",
                other => other,
            };
            return format!("expected {expected}, found {found}");
        }
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        if let Some((found, expected)) = rest.split_once(", expected ") {
            let options = expected.trim_start_matches("one of ").replace('`', "");
            return format!("{:?} is not one of {options}", found.trim_matches('`'));
        }
    }
    message.to_string()
}

/// Blanks the lines `span` covers, unless one is a table header (a problem
/// of a whole table: masking it would hide the rest of that table).
fn mask_lines(text: &mut String, span: Range<usize>) -> bool {
    let start = text[..span.start.min(text.len())].rfind('\n').map_or(0, |at| at + 1);
    let end = text[span.end.min(text.len())..]
        .find('\n')
        .map_or(text.len(), |at| span.end.min(text.len()) + at);
    if text[start..end].lines().any(|line| line.trim_start().starts_with('[')) {
        return false;
    }
    let blank: String = text[start..end]
        .split('\n')
        .map(|line| {
            if line.is_empty() {
                String::new()
            } else {
                format!("#{}", " ".repeat(line.len() - 1))
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    text.replace_range(start..end, &blank);
    true
}

pub fn from_toml(text: &str, source: Source, base_dir: PathBuf) -> Result<Config, Vec<Problem>> {
    let mut checker = Checker {
        text,
        file: &source.path,
        problems: Vec::new(),
    };
    // serde stops at the first problem; users were promised all of them. So
    // each problem's lines are masked out (blanked to a comment of the same
    // length, so offsets and line numbers stay) and the text is read again,
    // until it reads or a problem cannot be masked (a missing key names a
    // whole table).
    let mut masked = text.to_string();
    let raw: RawConfig = loop {
        match serde_path_to_error::deserialize(toml::Deserializer::new(&masked)) {
            Ok(raw) => break raw,
            Err(err) => {
                let (key, message, span) = describe_toml_error(err);
                // A syntax error (no key) ends the reading: masking it would change what follows.
                let syntax = key.is_empty();
                let seen = syntax || checker.problems.iter().any(|p| p.key == key && p.message == message);
                if syntax || !seen {
                    checker.report(span.clone(), key, message);
                }
                if seen || checker.problems.len() >= 50 || !span.is_some_and(|span| mask_lines(&mut masked, span)) {
                    return Err(checker.problems);
                }
            }
        }
    };

    let wait_for = check_wait_for(&mut checker, &raw.wait_for);
    let wait_timeout = checker.duration(raw.wait_timeout.as_ref(), "wait_timeout", Duration::from_secs(60));
    let drain = checker.duration(raw.drain.as_ref(), "drain", Duration::ZERO);
    let env = raw.env.as_ref().map_or_else(EnvSection::default, |env| EnvSection {
        schema: env.schema.as_ref().map(|path| base_dir.join(path)),
        files: env.files.iter().map(|path| base_dir.join(path)).collect(),
        context_var: env.context_var.clone(),
    });
    let health = check_health(&mut checker, raw.health.as_ref());
    let control_socket = raw.control.as_ref().and_then(|control| control.socket.clone());
    if let Some(socket) = control_socket.as_deref().filter(|s| *s != "off") {
        // sun_path holds 108 bytes with its NUL.
        if socket.is_empty() || socket.len() > 107 {
            checker.report(None, "control.socket", "must be \"off\" or a path of 1 to 107 bytes");
        }
    }
    let migrate = raw
        .migrate
        .as_ref()
        .map(|migrate| check_migrate(&mut checker, migrate, &base_dir));
    let tasks: Vec<Task> = raw
        .task
        .iter()
        .map(|(name, task)| check_task(&mut checker, name, task, &base_dir))
        .collect();
    let processes: Vec<Process> = raw
        .process
        .iter()
        .map(|(name, process)| check_process(&mut checker, name, process, &base_dir))
        .collect();
    check_dependencies(&mut checker, &processes, &raw.process);
    let crons: Vec<CronJob> = raw
        .cron
        .iter()
        .filter_map(|(name, cron)| check_cron(&mut checker, name, cron, &base_dir))
        .collect();
    if migrate.is_none() {
        for (name, task) in &raw.task {
            if task.get_ref().under_lock {
                checker.report(
                    Some(task.span()),
                    format!("task.{name}.under_lock"),
                    "needs a [migrate] section: the lock lives on its database",
                );
            }
        }
    }

    if checker.problems.is_empty() {
        Ok(Config {
            source,
            base_dir,
            wait_for,
            wait_timeout,
            drain,
            env,
            health,
            control_socket,
            migrate,
            tasks,
            processes,
            crons,
        })
    } else {
        Err(checker.problems)
    }
}

pub fn from_procfile(text: &str, source: Source, base_dir: PathBuf) -> Result<Config, Vec<Problem>> {
    let entries = procfile::parse(text).map_err(|problems| {
        problems
            .into_iter()
            .map(|(line, message)| Problem {
                file: source.path.clone(),
                line: Some(line),
                key: String::new(),
                message,
            })
            .collect::<Vec<_>>()
    })?;
    // `release:` is Heroku's release phase: a one-shot step before the
    // others (a migration, say), not a server to keep restarting.
    let (release, servers): (Vec<_>, Vec<_>) = entries.into_iter().partition(|entry| entry.name == "release");
    let tasks = release
        .into_iter()
        .map(|entry| Task {
            name: entry.name,
            command: CommandLine::Shell(entry.command),
            cwd: None,
            env: Vec::new(),
            contexts: None,
            under_lock: false,
            user: None,
        })
        .collect();
    let processes = servers
        .into_iter()
        .map(|entry| Process::with_defaults(entry.name, CommandLine::Shell(entry.command)))
        .collect();
    Ok(Config {
        source,
        // As foreman, honcho and overmind do: `.env` beside the Procfile (a
        // variable already in the real environment wins; a missing file is fine).
        env: EnvSection {
            files: vec![base_dir.join(".env")],
            ..EnvSection::default()
        },
        base_dir,
        wait_for: Vec::new(),
        wait_timeout: Duration::from_secs(60),
        drain: Duration::ZERO,
        control_socket: None,
        health: HealthSection {
            listen: Some(DEFAULT_HEALTH_LISTEN.to_string()),
        },
        migrate: None,
        tasks,
        processes,
        crons: Vec::new(),
    })
}

fn check_wait_for(checker: &mut Checker, targets: &[Spanned<String>]) -> Vec<WaitTarget> {
    let mut checked = Vec::new();
    for target in targets {
        let text = target.get_ref();
        let line = checker.line_of(target.span());
        match Template::parse(text) {
            Ok(template) => {
                // A target built from the environment is checked once it is expanded (plan.rs).
                if template.is_literal() && !is_wait_target(text) {
                    checker.report(Some(target.span()), "wait_for", wait_target_error(text));
                }
                checked.push(WaitTarget {
                    text: text.clone(),
                    template,
                    line,
                });
            }
            Err(err) => checker.report(Some(target.span()), "wait_for", err.to_string()),
        }
    }
    checked
}

/// `tcp://host:port` or `http://…`: what `reach::target` understands.
pub(crate) fn is_wait_target(text: &str) -> bool {
    match text.split_once("://") {
        Some(("http", rest)) => !rest.is_empty(),
        _ => crate::reach::service_address(text).is_some(),
    }
}

/// Quotes the target as written in the file (never an expanded value, nor
/// the credentials of a URL written out in full).
pub(crate) fn wait_target_error(written: &str) -> String {
    format!(
        "invalid target {:?} (expected \"tcp://host:port\", \"http://host:port/path\" or a service URL such as \"redis://host:6379\", \"postgres://…\", \"amqp://…\")",
        crate::reach::without_credentials(written)
    )
}

fn check_health(checker: &mut Checker, health: Option<&raw::RawHealth>) -> HealthSection {
    let Some(listen) = health.and_then(|health| health.listen.as_ref()) else {
        return HealthSection {
            listen: Some(DEFAULT_HEALTH_LISTEN.to_string()),
        };
    };
    match super::parse_listen(listen.get_ref()) {
        Ok(listen) => HealthSection { listen },
        Err(message) => {
            checker.report(
                Some(listen.span()),
                "health.listen",
                format!("{:?} {message}", listen.get_ref()),
            );
            HealthSection { listen: None }
        }
    }
}

fn check_migrate(checker: &mut Checker, migrate: &raw::RawMigrate, base_dir: &Path) -> MigrateSection {
    if migrate.dir.is_none() && migrate.command.is_none() {
        checker.report(
            None,
            "migrate",
            "needs `dir` (plain SQL files) or `command` (any tool), or both",
        );
    }
    let command = migrate
        .command
        .as_ref()
        .map(|command| checker.command(command, None, "migrate.command"));
    MigrateSection {
        database_url_env: migrate
            .database_url_env
            .clone()
            .unwrap_or_else(|| "DATABASE_URL".to_string()),
        dir: migrate.dir.as_ref().map(|dir| base_dir.join(dir)),
        command,
        fingerprint: migrate.fingerprint.clone(),
        lock_name: migrate.lock_name.clone().unwrap_or_else(|| "migrations".to_string()),
        lock_timeout: checker.duration(
            migrate.lock_timeout.as_ref(),
            "migrate.lock_timeout",
            Duration::from_secs(15 * 60),
        ),
        connect_timeout: checker.duration(
            migrate.connect_timeout.as_ref(),
            "migrate.connect_timeout",
            Duration::from_secs(60),
        ),
    }
}

fn check_task(checker: &mut Checker, name: &str, task: &Spanned<raw::RawTask>, base_dir: &Path) -> Task {
    let key = format!("task.{name}");
    let span = Some(task.span());
    checker.name("task", "task", name, span.clone());
    let raw = task.get_ref();
    Task {
        name: name.to_string(),
        command: checker.command(&raw.command, span.clone(), &format!("{key}.command")),
        cwd: raw.cwd.as_ref().map(|cwd| base_dir.join(cwd)),
        env: checker.env(&raw.env, span, &format!("{key}.env")),
        contexts: raw.contexts.clone(),
        under_lock: raw.under_lock,
        user: checker.user(raw.user.as_ref(), &format!("{key}.user")),
    }
}

fn check_cron(checker: &mut Checker, name: &str, cron: &Spanned<raw::RawCron>, base_dir: &Path) -> Option<CronJob> {
    let key = |field: &str| format!("cron.{name}.{field}");
    let span = Some(cron.span());
    checker.name("cron", "cron job", name, span.clone());
    let raw = cron.get_ref();
    let zone = raw.timezone.as_ref().map_or("UTC", |zone| zone.get_ref().as_str());
    let schedule = match crate::cron::Schedule::parse(raw.schedule.get_ref(), zone) {
        Ok(schedule) => Some(schedule),
        Err(crate::cron::ScheduleError::UnknownZone) => {
            let span = raw.timezone.as_ref().map(|zone| zone.span());
            checker.report(
                span,
                key("timezone"),
                format!("unknown time zone {zone:?} (an IANA name such as \"Europe/Berlin\" or \"UTC\")"),
            );
            None
        }
        Err(reason) => {
            checker.report(
                Some(raw.schedule.span()),
                key("schedule"),
                format!("{:?}: {reason}", raw.schedule.get_ref()),
            );
            None
        }
    };
    let overlap = match raw.overlap.as_ref().map(|o| (o, o.get_ref().as_str())) {
        None | Some((_, "skip")) => crate::cron::Overlap::Skip,
        Some((_, "replace")) => crate::cron::Overlap::Replace,
        Some((spanned, other)) => {
            checker.report(
                Some(spanned.span()),
                key("overlap"),
                format!("{other:?} is not \"skip\" or \"replace\""),
            );
            crate::cron::Overlap::Skip
        }
    };
    let timeout = raw
        .timeout
        .as_ref()
        .map(|timeout| checker.duration(Some(timeout), &key("timeout"), Duration::ZERO))
        .filter(|timeout| !timeout.is_zero());
    let job = CronJob {
        name: name.to_string(),
        schedule: schedule?,
        command: checker.command(&raw.command, span.clone(), &key("command")),
        cwd: raw.cwd.as_ref().map(|cwd| base_dir.join(cwd)),
        env: checker.env(&raw.env, span, &key("env")),
        user: checker.user(raw.user.as_ref(), &key("user")),
        overlap,
        timeout,
        contexts: raw.contexts.clone(),
    };
    Some(job)
}

fn check_process(checker: &mut Checker, name: &str, process: &Spanned<RawProcess>, base_dir: &Path) -> Process {
    let key = |field: &str| format!("process.{name}.{field}");
    let span = Some(process.span());
    checker.name("process", "process", name, span.clone());
    let raw = process.get_ref();
    let instances = match raw.instances.as_ref() {
        None => Instances::Count(1),
        Some(spanned) => {
            let line = checker.line_of(spanned.span());
            match spanned.get_ref() {
                RawInstances::Count(count) if (0..=MAX_INSTANCES).contains(count) => Instances::Count(*count as u32),
                RawInstances::Count(_) => {
                    checker.report(
                        Some(spanned.span()),
                        key("instances"),
                        format!("must be between 0 and {MAX_INSTANCES}"),
                    );
                    Instances::Count(1)
                }
                RawInstances::Template(text) => match Template::parse(text) {
                    Ok(template) => Instances::Template { template, line },
                    Err(err) => {
                        checker.report(Some(spanned.span()), key("instances"), err.to_string());
                        Instances::Count(1)
                    }
                },
            }
        }
    };
    let port = raw.port.as_ref().map(|spanned| {
        let line = checker.line_of(spanned.span());
        match spanned.get_ref() {
            RawInstances::Count(port) if (1..=65535).contains(port) => Instances::Count(*port as u32),
            RawInstances::Count(_) => {
                checker.report(Some(spanned.span()), key("port"), "must be between 1 and 65535");
                Instances::Count(1)
            }
            RawInstances::Template(text) => match Template::parse(text) {
                Ok(template) => Instances::Template { template, line },
                Err(err) => {
                    checker.report(Some(spanned.span()), key("port"), err.to_string());
                    Instances::Count(1)
                }
            },
        }
    });
    if port.is_some() && raw.env.contains_key("PORT") {
        checker.report(span.clone(), key("port"), "and env.PORT both set the port: keep one");
    }
    let backoff = {
        let initial = raw.backoff.as_ref().and_then(|b| b.initial.as_ref());
        let max = raw.backoff.as_ref().and_then(|b| b.max.as_ref());
        let initial_value = checker.duration(initial, &key("backoff.initial"), DEFAULT_BACKOFF.initial);
        let max_value = checker.duration(max, &key("backoff.max"), DEFAULT_BACKOFF.max.max(initial_value));
        if max_value < initial_value {
            checker.report(
                max.map(Spanned::span),
                key("backoff.max"),
                "must not be shorter than backoff.initial",
            );
        }
        Backoff {
            initial: initial_value,
            max: max_value,
        }
    };
    let window = checker.duration(
        raw.restart_window.as_ref(),
        &key("restart_window"),
        DEFAULT_RESTART_WINDOW,
    );
    if window.is_zero() {
        checker.report(
            raw.restart_window.as_ref().map(Spanned::span),
            key("restart_window"),
            "must be longer than 0s",
        );
    }
    Process {
        name: name.to_string(),
        command: checker.command(&raw.command, span.clone(), &key("command")),
        cwd: raw.cwd.as_ref().map(|cwd| base_dir.join(cwd)),
        env: checker.env(&raw.env, span.clone(), &key("env")),
        instances,
        port,
        restart: RestartPolicy {
            mode: raw.restart.unwrap_or(RestartMode::Always),
            backoff,
            max_restarts: raw.max_restarts.unwrap_or(DEFAULT_MAX_RESTARTS),
            window,
        },
        is_critical: raw.critical.unwrap_or(true),
        stop_signal: checker.signal(raw.stop_signal.as_ref(), &key("stop_signal"), Signal::SIGTERM),
        stop_timeout: checker.duration(raw.stop_timeout.as_ref(), &key("stop_timeout"), DEFAULT_STOP_TIMEOUT),
        ready: raw
            .ready
            .as_ref()
            .map(|probe| check_probe(checker, probe, &key("ready"), Duration::from_secs(1))),
        live: raw
            .live
            .as_ref()
            .map(|probe| check_probe(checker, probe, &key("live"), Duration::from_secs(5))),
        depends_on: raw
            .depends_on
            .as_ref()
            .map_or_else(Vec::new, |deps| match deps.get_ref() {
                RawDependsOn::List(names) => names
                    .iter()
                    .map(|name| Dependency {
                        process: name.clone(),
                        condition: Condition::Ready,
                    })
                    .collect(),
                RawDependsOn::Conditions(table) => table
                    .iter()
                    .map(|(name, condition)| Dependency {
                        process: name.clone(),
                        condition: *condition,
                    })
                    .collect(),
            }),
        user: checker.user(raw.user.as_ref(), &key("user")),
        log: raw.log.unwrap_or_default(),
        watch: checker.globs(&raw.watch, span.clone(), &key("watch")),
        watch_ignore: checker.globs(&raw.watch_ignore, span.clone(), &key("watch_ignore")),
    }
}

fn check_probe(checker: &mut Checker, probe: &Spanned<RawProbe>, key: &str, default_interval: Duration) -> Probe {
    let raw = probe.get_ref();
    let span = Some(probe.span());
    let checks = [
        raw.http.is_some(),
        raw.tcp.is_some(),
        raw.exec.is_some(),
        raw.log.is_some(),
    ];
    if checks.iter().filter(|&&set| set).count() != 1 {
        checker.report(span.clone(), key, "needs exactly one of `http`, `tcp`, `exec` or `log`");
    }
    if raw.stream.is_some() && raw.log.is_none() {
        checker.report(span.clone(), format!("{key}.stream"), "only goes with `log`");
    }
    // `${VAR}` is expanded per process (plan.rs), so `${PORT}` is the process's own port.
    let literal = |checker: &mut Checker, text: &str| match Template::parse(text) {
        Ok(template) => Some(template.is_literal()),
        Err(err) => {
            checker.report(span.clone(), key, err.to_string());
            None
        }
    };
    let check = if let Some(url) = &raw.http {
        literal(checker, url);
        if !url.starts_with("http://") {
            checker.report(
                span.clone(),
                format!("{key}.http"),
                "must be an http:// URL (probes talk to the local process)",
            );
        }
        Check::Http(url.clone())
    } else if let Some(address) = &raw.tcp {
        if literal(checker, address) == Some(true) && !is_probe_address(address) {
            checker.report(span.clone(), format!("{key}.tcp"), "must be host:port");
        }
        Check::Tcp(address.clone())
    } else if let Some(command) = &raw.exec {
        Check::Exec(checker.command(command, span.clone(), &format!("{key}.exec")))
    } else if let Some(pattern) = &raw.log {
        let stream = match raw.stream.as_deref() {
            None | Some("any") => super::LogStream::Any,
            Some("stdout") => super::LogStream::Stdout,
            Some("stderr") => super::LogStream::Stderr,
            Some(other) => {
                checker.report(
                    span.clone(),
                    format!("{key}.stream"),
                    format!("{other:?} is not \"stdout\", \"stderr\" or \"any\""),
                );
                super::LogStream::Any
            }
        };
        if key.ends_with(".live") {
            checker.report(
                span.clone(),
                format!("{key}.log"),
                "a line once printed cannot tell whether the process still works: use http, tcp or exec for `live`",
            );
        }
        match regex::bytes::Regex::new(pattern) {
            Ok(regex) => Check::Log {
                pattern: std::sync::Arc::new(regex),
                stream,
            },
            Err(err) => {
                checker.report(span.clone(), format!("{key}.log"), format!("invalid regex: {err}"));
                Check::Tcp(String::new())
            }
        }
    } else {
        Check::Tcp(String::new())
    };
    let failure_threshold = raw.failure_threshold.unwrap_or(3);
    let success_threshold = raw.success_threshold.unwrap_or(1);
    if failure_threshold == 0 || success_threshold == 0 {
        checker.report(span, key, "thresholds must be at least 1");
    }
    Probe {
        check,
        interval: checker.duration(raw.interval.as_ref(), &format!("{key}.interval"), default_interval),
        timeout: checker.duration(raw.timeout.as_ref(), &format!("{key}.timeout"), Duration::from_secs(1)),
        failure_threshold,
        success_threshold,
    }
}

/// `host:port`, the shape a `tcp` probe needs.
pub(crate) fn is_probe_address(address: &str) -> bool {
    address
        .rsplit_once(':')
        .is_some_and(|(_, port)| port.parse::<u16>().is_ok())
}

/// Unknown names, cycles, and conditions that can never hold (SPEC §2: never hang).
fn check_dependencies(checker: &mut Checker, processes: &[Process], raw: &IndexMap<String, Spanned<RawProcess>>) {
    let names: HashSet<&str> = processes.iter().map(|p| p.name.as_str()).collect();
    let span_of = |name: &str| {
        raw.get(name)
            .and_then(|p| p.get_ref().depends_on.as_ref())
            .map(Spanned::span)
    };
    for process in processes {
        for dependency in &process.depends_on {
            let key = format!("process.{}.depends_on", process.name);
            if !names.contains(dependency.process.as_str()) {
                checker.report(
                    span_of(&process.name),
                    key,
                    format!("unknown process {:?}", dependency.process),
                );
                continue;
            }
            let target = processes.iter().find(|p| p.name == dependency.process);
            if dependency.condition == Condition::Completed
                && target.is_some_and(|t| t.restart.mode == RestartMode::Always)
            {
                checker.report(
                    span_of(&process.name),
                    key,
                    format!(
                        "{:?} can never be \"completed\": it has restart = \"always\" (use \"on-failure\" or \"never\")",
                        dependency.process
                    ),
                );
            }
        }
    }
    if let Some(cycle) = find_cycle(processes) {
        let first = cycle[0].clone();
        checker.report(
            span_of(&first),
            format!("process.{first}.depends_on"),
            format!("dependency cycle: {}", cycle.join(" -> ")),
        );
    }
}

/// Returns one cycle as a path `a -> b -> a`, if any.
fn find_cycle(processes: &[Process]) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit(at: usize, processes: &[Process], marks: &mut [Mark], path: &mut Vec<usize>) -> Option<Vec<String>> {
        marks[at] = Mark::Active;
        path.push(at);
        for dependency in &processes[at].depends_on {
            let Some(next) = processes.iter().position(|p| p.name == dependency.process) else {
                continue;
            };
            match marks[next] {
                Mark::Active => {
                    let from = path.iter().position(|&i| i == next).unwrap_or(0);
                    let mut cycle: Vec<String> = path[from..].iter().map(|&i| processes[i].name.clone()).collect();
                    cycle.push(processes[next].name.clone());
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(cycle) = visit(next, processes, marks, path) {
                        return Some(cycle);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks[at] = Mark::Done;
        None
    }
    let mut marks = vec![Mark::New; processes.len()];
    for start in 0..processes.len() {
        if marks[start] == Mark::New {
            if let Some(cycle) = visit(start, processes, &mut marks, &mut Vec::new()) {
                return Some(cycle);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::{parse_str, ConfigError};
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match parse_str(text) {
            Err(ConfigError::Invalid { problems }) => problems
                .into_iter()
                .map(|p| {
                    format!(
                        "{}: {}: {}",
                        p.line.map_or("-".into(), |l| l.to_string()),
                        p.key,
                        p.message
                    )
                })
                .collect(),
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn parses_every_process_key() {
        let config = parse_str(
            r#"
[process.backend]
command = "node dist/server.js"
cwd = "apps/backend"
env = { PORT = "4001", URL = "${BASE:-http://x}" }
instances = "${CLUSTER_WORKERS:-2}"
restart = "on-failure"
backoff = { initial = "200ms", max = "10s" }
max_restarts = 4
restart_window = "30s"
critical = false
stop_signal = "SIGINT"
stop_timeout = "2s"
ready = { http = "http://127.0.0.1:4001/health", interval = "1s", timeout = "1s" }
live = { tcp = "127.0.0.1:4001", failure_threshold = 3 }
user = "root"
log = "raw"

[process.frontend]
command = ["node", "server.js"]
depends_on = { backend = "ready" }
"#,
        )
        .unwrap();
        let backend = &config.processes[0];
        assert_eq!(backend.command, CommandLine::Shell("node dist/server.js".into()));
        assert!(backend.cwd.as_ref().unwrap().ends_with("apps/backend"));
        assert_eq!(backend.env.len(), 2);
        assert!(matches!(backend.instances, Instances::Template { line: 6, .. }));
        assert_eq!(backend.restart.mode, RestartMode::OnFailure);
        assert_eq!(backend.restart.backoff.initial, Duration::from_millis(200));
        assert_eq!(backend.restart.max_restarts, 4);
        assert!(!backend.is_critical);
        assert_eq!(backend.stop_signal, Signal::SIGINT);
        assert_eq!(backend.stop_timeout, Duration::from_secs(2));
        assert!(backend.ready.is_some() && backend.live.is_some());
        assert_eq!(backend.log, crate::config::LogMode::Raw);
        let frontend = &config.processes[1];
        assert_eq!(
            frontend.command,
            CommandLine::Exec(vec!["node".into(), "server.js".into()])
        );
        assert_eq!(frontend.depends_on[0].condition, Condition::Ready);
        assert_eq!(frontend.stop_timeout, DEFAULT_STOP_TIMEOUT);
    }

    #[test]
    fn keeps_file_order() {
        let config = parse_str("[process.zeta]\ncommand = \"a\"\n[process.alpha]\ncommand = \"b\"\n").unwrap();
        let names: Vec<&str> = config.processes.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["zeta", "alpha"]);
    }

    #[test]
    fn reports_every_value_problem_with_its_line() {
        let got = problems(
            "[process.web]\ncommand = \"x\"\nstop_timeout = \"soon\"\nstop_signal = \"SIGNOPE\"\n\n[process.api]\ncommand = \"y\"\ndepends_on = [\"db\"]\n",
        );
        assert_eq!(
            got,
            [
                "3: process.web.stop_timeout: invalid duration \"soon\" (expected e.g. \"500ms\", \"5s\", \"15m\")",
                "4: process.web.stop_signal: unknown signal \"SIGNOPE\" (expected e.g. \"SIGTERM\", \"SIGINT\", \"SIGQUIT\")",
                "8: process.api.depends_on: unknown process \"db\"",
            ]
        );
    }

    #[test]
    fn names_unknown_keys() {
        let got = problems("[process.web]\ncommand = \"x\"\nstop_timout = \"5s\"\n");
        assert_eq!(got.len(), 1);
        assert!(
            got[0].starts_with("3: process.web.stop_timout: unknown key (expected one of"),
            "{got:?}"
        );
    }

    #[test]
    fn reports_syntax_errors_with_a_line() {
        let got = problems("[process.web]\ncommand = \"x\nrestart = \"always\"\n");
        assert!(got[0].starts_with("2: "), "{got:?}");
    }

    #[test]
    fn finds_dependency_cycles() {
        let got = problems(
            "[process.a]\ncommand = \"x\"\ndepends_on = [\"b\"]\n[process.b]\ncommand = \"x\"\ndepends_on = [\"a\"]\n",
        );
        assert_eq!(got, ["3: process.a.depends_on: dependency cycle: a -> b -> a"]);
    }

    #[test]
    fn rejects_a_completed_condition_that_cannot_hold() {
        let got = problems(
            "[process.assets]\ncommand = \"x\"\n[process.web]\ncommand = \"y\"\ndepends_on = { assets = \"completed\" }\n",
        );
        assert!(got[0].contains("can never be \"completed\""), "{got:?}");
    }

    #[test]
    fn rejects_unknown_users_and_bad_values() {
        let got = problems(
            "[process.web]\ncommand = \"\"\nuser = \"no-such-user-here\"\ninstances = -1\nbackoff = { initial = \"5s\", max = \"1s\" }\n",
        );
        assert_eq!(got.len(), 4, "{got:?}");
    }

    #[test]
    fn parses_signals_and_durations() {
        assert_eq!(parse_signal("TERM"), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("sigquit"), Some(Signal::SIGQUIT));
        assert_eq!(parse_signal("SIGNOPE"), None);
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("1m 30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("5"), None);
    }
}
