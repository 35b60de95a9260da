//! The command line (SPEC §8), as clap types and nothing else.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "supervisor",
    version,
    about = "Init and process supervisor for application containers",
    long_about = "Init and process supervisor for application containers: PID 1 done right, \
                  the environment validated before anything starts, migrations applied once \
                  across replicas, processes started in order, restarted and stopped gracefully.",
    arg_required_else_help = true,
    propagate_version = true
)]
pub struct Cli {
    /// Config file [default: $SUPERVISOR_CONFIG, ./supervisor.toml, then ./Procfile]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate, start and supervise every process until stopped (the container's ENTRYPOINT)
    Run {
        /// Deployment context (production, staging, …) [default: $SUPERVISOR_CONTEXT]
        #[arg(long, value_name = "NAME")]
        context: Option<String>,
    },
    /// Run one command with the same environment as `run`, reaping and forwarding signals
    Exec {
        /// Deployment context (production, staging, …) [default: $SUPERVISOR_CONTEXT]
        #[arg(long, value_name = "NAME")]
        context: Option<String>,
        /// The command and its arguments, after `--`
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "CMD"
        )]
        command: Vec<OsString>,
    },
    /// Validate the environment against the schema and print the report (exit 0 or 78)
    CheckEnv {
        /// Deployment context (production, staging, …) [default: $SUPERVISOR_CONTEXT]
        #[arg(long, value_name = "NAME")]
        context: Option<String>,
        /// Report format
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// Apply pending migrations under the lock, alone (for a release job or an init container)
    Migrate {
        /// Deployment context (production, staging, …) [default: $SUPERVISOR_CONTEXT]
        #[arg(long, value_name = "NAME")]
        context: Option<String>,
        /// List applied and pending migrations without taking the lock
        #[arg(long)]
        status: bool,
    },
    /// Print a commented .env.example generated from the env schema
    EnvExample,
    /// Exit 0 when /health answers 200, 1 otherwise (for Docker's HEALTHCHECK)
    Healthcheck {
        /// URL to check [default: /health on [health].listen or $SUPERVISOR_HEALTH_LISTEN]
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// Give up after this long
        #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = parse_timeout)]
        timeout: std::time::Duration,
    },
}

fn parse_timeout(text: &str) -> Result<std::time::Duration, String> {
    crate::config::parse_duration(text).ok_or_else(|| "expected a duration such as \"3s\" or \"500ms\"".to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
}
