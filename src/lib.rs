//! `supervisor`: an init and process supervisor for application containers.
//!
//! The binary (`src/main.rs`) is a thin shell around these modules; they are
//! a library only so that the fuzz targets in `fuzz/` can reach the parsers.
//! One module per concern, in lifecycle order:
//!
//! - `cli`, `commands`, `error`: the command line, one file per subcommand,
//!   and the exit codes of SPEC §7;
//! - `config`, `plan`: `supervisor.toml` or a Procfile → validated config →
//!   concrete processes for this environment;
//! - `env`: dotenv files and the JSON Schema check of the environment;
//! - `health`, `reach`, `wait_for`: the health server and reachability checks;
//! - `migrate`, `job`, `tasks`: migrations under a lock, one-shot commands;
//! - `pid1`, `supervise`, `logs`: signals and reaping, the event loop, output;
//! - `name_services`: users and host names in the static build.

pub mod cli;
pub mod commands;
pub mod config;
pub mod control;
pub mod cron;
pub mod env;
pub mod environment;
pub mod error;
pub mod globs;
pub mod health;
pub mod job;
pub mod logs;
pub mod migrate;
pub mod name_services;
pub mod pid1;
pub mod plan;
pub mod reach;
pub mod supervise;
pub mod tasks;
pub mod wait_for;
pub mod watch;
