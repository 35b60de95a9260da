//! The supervisor's own `SUPERVISOR_*` settings (SPEC §2), read with envy.
//!
//! Precedence is flag > variable > file; this module only reads the
//! variables. Values are read as strings and checked here so that a bad one
//! is reported by variable name without echoing it.

use std::ffi::OsString;
use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

/// How our own events and child lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human text: `name.instance | line` for children, tracing's text for us.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl LogFormat {
    /// `SUPERVISOR_LOG_FORMAT`'s value: `text` (or empty) or `json`, any case.
    pub fn parse(value: &str) -> Option<LogFormat> {
        match value.to_ascii_lowercase().as_str() {
            "" | "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct RawSettings {
    config: Option<String>,
    context: Option<String>,
    log_format: Option<String>,
    health_listen: Option<String>,
    log_level: Option<String>,
    drain: Option<String>,
    stop_grace: Option<String>,
    control_socket: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub config: Option<PathBuf>,
    pub context: Option<String>,
    pub log_format: LogFormat,
    /// `Some(None)`: set to "off".
    pub health_listen: Option<Option<String>>,
    /// A tracing filter such as `info` or `supervisor=debug`.
    pub log_level: Option<String>,
    /// `SUPERVISOR_DRAIN`: overrides the file's `drain`.
    pub drain: Option<std::time::Duration>,
    /// `SUPERVISOR_STOP_GRACE`: the platform's grace period (Docker's 10 s,
    /// Kubernetes' 30 s), declared so that a drain and stop that cannot fit it is warned about.
    pub stop_grace: Option<std::time::Duration>,
    /// `SUPERVISOR_CONTROL_SOCKET`: a path, or `off`.
    pub control_socket: Option<String>,
}

impl Settings {
    /// Reads the settings from the real environment.
    pub fn from_env() -> Result<Settings, ConfigError> {
        Settings::from_vars(std::env::vars_os())
    }

    /// Reads the settings from `vars`. Non-UTF-8 `SUPERVISOR_*` values are an
    /// error; everything else in the environment is none of our business
    /// (envy's own `from_env` would panic on a non-UTF-8 `PATH`).
    pub fn from_vars(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Result<Settings, ConfigError> {
        let mut ours = Vec::new();
        for (name, value) in vars {
            let Some(name) = name.to_str().filter(|name| name.starts_with("SUPERVISOR_")) else {
                continue;
            };
            let value = value.into_string().map_err(|_| ConfigError::Setting {
                variable: name.to_string(),
                message: "is not valid UTF-8".to_string(),
            })?;
            ours.push((name.to_string(), value));
        }
        let raw: RawSettings = envy::prefixed("SUPERVISOR_")
            .from_iter(ours)
            .map_err(|err| ConfigError::Setting {
                variable: "SUPERVISOR_*".to_string(),
                message: format!("cannot be read: {err}"),
            })?;
        let log_format =
            LogFormat::parse(raw.log_format.as_deref().unwrap_or("")).ok_or_else(|| ConfigError::Setting {
                variable: "SUPERVISOR_LOG_FORMAT".to_string(),
                message: "must be \"text\" or \"json\"".to_string(),
            })?;
        let non_empty = |value: Option<String>| value.filter(|value| !value.is_empty());
        let health_listen = match non_empty(raw.health_listen) {
            Some(text) => Some(super::parse_listen(&text).map_err(|message| ConfigError::Setting {
                variable: "SUPERVISOR_HEALTH_LISTEN".to_string(),
                message,
            })?),
            None => None,
        };
        let duration = |variable: &str, value: Option<String>| match non_empty(value) {
            Some(text) => super::validate::parse_duration(&text)
                .map(Some)
                .ok_or_else(|| ConfigError::Setting {
                    variable: variable.to_string(),
                    message: "is not a duration (expected e.g. \"5s\", \"500ms\", \"1m\")".to_string(),
                }),
            None => Ok(None),
        };
        Ok(Settings {
            drain: duration("SUPERVISOR_DRAIN", raw.drain)?,
            stop_grace: duration("SUPERVISOR_STOP_GRACE", raw.stop_grace)?,
            control_socket: non_empty(raw.control_socket),
            config: non_empty(raw.config).map(PathBuf::from),
            context: non_empty(raw.context),
            log_format,
            health_listen,
            log_level: non_empty(raw.log_level),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs.iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    #[test]
    fn reads_our_variables_and_ignores_the_rest() {
        let settings = Settings::from_vars(vars(&[
            ("SUPERVISOR_CONFIG", "/app/supervisor.toml"),
            ("SUPERVISOR_LOG_FORMAT", "JSON"),
            ("SUPERVISOR_CONTEXT", "staging"),
            ("SUPERVISOR_PROCESS", "web"),
            ("PATH", "/bin"),
        ]))
        .unwrap();
        assert_eq!(settings.config, Some(PathBuf::from("/app/supervisor.toml")));
        assert_eq!(settings.log_format, LogFormat::Json);
        assert_eq!(settings.context.as_deref(), Some("staging"));
        let settings =
            Settings::from_vars(vars(&[("SUPERVISOR_DRAIN", "2s"), ("SUPERVISOR_STOP_GRACE", "30s")])).unwrap();
        assert_eq!(settings.drain, Some(std::time::Duration::from_secs(2)));
        assert_eq!(settings.stop_grace, Some(std::time::Duration::from_secs(30)));
        let err = Settings::from_vars(vars(&[("SUPERVISOR_DRAIN", "soon")])).unwrap_err();
        assert!(
            err.to_string().starts_with("SUPERVISOR_DRAIN: is not a duration"),
            "{err}"
        );
    }

    #[test]
    fn names_a_bad_variable_without_its_value() {
        let err = Settings::from_vars(vars(&[("SUPERVISOR_LOG_FORMAT", "s3cr3t")])).unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with("SUPERVISOR_LOG_FORMAT:"), "{message}");
        assert!(!message.contains("s3cr3t"));
    }
}
