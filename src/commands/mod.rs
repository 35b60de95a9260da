//! One short, linear file per subcommand. Each returns an `Outcome` or an
//! `Error`; none exits or prints the error itself (`main` does).

pub mod exec;
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
    /// `--config` > `SUPERVISOR_CONFIG`.
    pub fn config_path(&self) -> Option<PathBuf> {
        self.config_flag
            .clone()
            .or_else(|| self.settings.config.clone())
    }
}
