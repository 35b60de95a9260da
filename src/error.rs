//! The one error type that reaches `main`, and SPEC §7's exit codes.

use crate::config::ConfigError;
use crate::env::EnvError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),

    #[error(transparent)]
    Env(#[from] EnvError),

    /// The health port cannot be bound (in use, bad address): a config problem.
    #[error(transparent)]
    Listen(#[from] crate::health::ListenError),

    #[error(transparent)]
    WaitFor(#[from] crate::wait_for::WaitError),

    #[error(transparent)]
    Migrate(#[from] crate::migrate::MigrateError),

    #[error(transparent)]
    Task(#[from] crate::tasks::TaskError),

    /// A bad command line that clap could not catch.
    #[error("{0}")]
    Usage(String),

    /// `exec` could not start its command.
    #[error("cannot run {program}: {source}")]
    Exec {
        program: String,
        #[source]
        source: std::io::Error,
    },

    /// Something our own set-up needs failed (a signalfd, the runtime).
    #[error("{what}: {source}")]
    Startup {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// SPEC §7, written as one match.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) => 78,
            Error::Env(EnvError::UnknownContext { .. }) => 64,
            Error::Env(_) => 78,
            Error::Listen(_) => 78,
            Error::WaitFor(_) => 69,
            Error::Migrate(err) => err.exit_code(),
            Error::Task(err) => err.exit_code(),
            Error::Usage(_) => 64,
            Error::Exec { source, .. } => crate::pid1::spawn::spawn_error_code(source),
            Error::Startup { .. } => 70,
        }
    }
}
