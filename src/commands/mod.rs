//! One short, linear file per subcommand. Each returns an `Outcome` or an
//! `Error`; none exits or prints the error itself (`main` does).

pub mod check_env;
pub mod control;
pub mod env_example;
pub mod exec;
pub mod healthcheck;
pub mod migrate;
pub mod run;

use std::path::PathBuf;

use nix::sys::signal::Signal;
use tokio::sync::mpsc;

use crate::config::settings::Settings;
use crate::logs::Output;
use crate::pid1::Reaper;

/// What every command gets from `main`.
pub struct Context {
    pub settings: Settings,
    /// `--config`, which wins over `SUPERVISOR_CONFIG`.
    pub config_flag: Option<PathBuf>,
    pub output: Output,
    pub reaper: Reaper,
    /// Every signal since start-up, in order; nothing is lost before we read it.
    pub signals: mpsc::UnboundedReceiver<Signal>,
    pub is_init: bool,
}

impl Context {
    /// The `[env]` section of the config, if there is a config. A missing
    /// config is fine for `exec` and `check-env` (then only the real
    /// environment counts); a named one that is missing is an error.
    pub fn env_section(
        &self,
    ) -> Result<(Option<crate::config::Config>, crate::config::EnvSection), crate::config::ConfigError> {
        let explicit = self.config_path();
        match crate::config::locate(explicit.as_deref()) {
            Ok(source) => {
                let config = crate::config::load(source)?;
                let section = config.env.clone();
                Ok((Some(config), section))
            }
            Err(crate::config::ConfigError::NotFound { .. }) => Ok((None, crate::config::EnvSection::default())),
            Err(err) => Err(err),
        }
    }

    /// How child output is written: prefixed (coloured on a terminal) or JSON.
    pub fn line_format(&self) -> crate::logs::lines::Format {
        use std::io::IsTerminal;
        match self.settings.log_format {
            crate::config::settings::LogFormat::Json => crate::logs::lines::Format::Json,
            crate::config::settings::LogFormat::Text => crate::logs::lines::Format::Prefix {
                colour: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
            },
        }
    }

    /// The context tasks are filtered by: the validated one, or, without a
    /// schema, `--context` > `SUPERVISOR_CONTEXT` > the context variable > production.
    pub fn context(
        &self,
        environment: &crate::env::Validated,
        section: &crate::config::EnvSection,
        flag: Option<&str>,
    ) -> String {
        if let Some(report) = &environment.report {
            return report.context.clone();
        }
        let variable = section
            .context_var
            .as_deref()
            .and_then(|var| Some((var, environment.vars.text(var)?)));
        let inputs = crate::env::ContextInputs {
            flag,
            setting: self.settings.context.as_deref(),
        };
        crate::env::pick_context(&inputs, variable, None).0
    }

    /// The env section, which must name a schema (`check-env`, `env-example`).
    pub fn schema_section(
        &self,
        purpose: &str,
    ) -> Result<(crate::config::EnvSection, std::path::PathBuf), crate::config::ConfigError> {
        let (config, section) = self.env_section()?;
        match section.schema.clone() {
            Some(schema) => Ok((section, schema)),
            None => Err(crate::config::ConfigError::Invalid {
                problems: vec![crate::config::Problem {
                    file: config.map_or_else(|| "supervisor.toml".into(), |c| c.source.path),
                    line: None,
                    key: "env.schema".to_string(),
                    message: format!("is not set: there is no schema to {purpose}"),
                }],
            }),
        }
    }

    /// Builds the validated environment (SPEC §1 step 2).
    pub fn environment(
        &self,
        section: &crate::config::EnvSection,
        flag: Option<&str>,
        keep_invalid: bool,
    ) -> Result<crate::env::Validated, crate::env::EnvError> {
        let inputs = crate::env::ContextInputs {
            flag,
            setting: self.settings.context.as_deref(),
        };
        crate::env::build(section, &inputs, keep_invalid)
    }

    /// `--config` > `SUPERVISOR_CONFIG`.
    pub fn config_path(&self) -> Option<PathBuf> {
        self.config_flag.clone().or_else(|| self.settings.config.clone())
    }
}
