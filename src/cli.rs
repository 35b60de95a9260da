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
        /// Start only these processes, with the dependencies they need (comma-separated)
        #[arg(long, value_name = "NAME,…", value_delimiter = ',')]
        only: Vec<String>,
        /// Start every process but these (comma-separated)
        #[arg(long, value_name = "NAME,…", value_delimiter = ',')]
        except: Vec<String>,
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
    /// Show every process of the running supervisor: state, pid, uptime, restarts, ready
    Status {
        /// The same document as /health, with uptimes, as JSON
        #[arg(long)]
        json: bool,
    },
    /// Restart processes (NAME: every instance; NAME.N: one), in dependency order
    Restart {
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
    /// Stop processes until `supervisor start` (no restart policy revives them)
    Stop {
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
    /// Start processes stopped by `supervisor stop`, or failed for good
    Start {
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
    /// Send a signal (HUP, USR1, TERM…) to processes' groups
    Signal {
        #[arg(value_name = "SIGNAL")]
        signal: String,
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
    /// Print recent output of processes (every process without NAME), then follow with -f
    Logs {
        #[arg(value_name = "NAME")]
        names: Vec<String>,
        /// Keep printing new lines until interrupted
        #[arg(short, long)]
        follow: bool,
        /// How many recent lines
        #[arg(short = 'n', long, default_value_t = 100, value_name = "N")]
        lines: usize,
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
