//! `supervisor`: an init and process supervisor for application containers.
//!
//! `main` does the few things that must happen before anything else (block
//! signals, keep inherited descriptors from children), parses the command
//! line, builds the runtime by hand (worker threads must inherit the mask,
//! which `#[tokio::main]` would not guarantee), and turns the command's
//! outcome into our exit code. It is the only place that exits. Everything
//! else lives in the library (`src/lib.rs`).

use std::time::Duration;

use clap::Parser;

use supervisor::cli::{Cli, Command};
use supervisor::commands::{self, Context};
use supervisor::config::{self, settings::Settings};
use supervisor::control::protocol::Request;
use supervisor::error::Error;
use supervisor::logs::{self, Output};
use supervisor::{pid1, plan, supervise};

fn main() {
    // PID 1 drops signals left at SIG_DFL, and threads inherit the mask: block
    // before anything else so no early SIGTERM is lost.
    if let Err(err) = pid1::signals::block() {
        eprintln!("error: cannot block signals: {err}");
        std::process::exit(70);
    }
    pid1::close_inherited_descriptors();
    // Before any thread and any lookup: a static glibc must never load the
    // image's NSS modules (see the module's doc).
    supervisor::name_services::use_built_in_services_only();

    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            use clap::error::ErrorKind;
            let code = match err.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => 0,
                _ => 64,
            };
            let _ = err.print();
            std::process::exit(code);
        }
    };

    let output = Output::start();
    let code = match run(cli, output.clone()) {
        Ok(outcome) => outcome.code,
        Err(err) => {
            output.stderr.write_now(logs::fatal_line(&err, err.exit_code()));
            err.exit_code()
        }
    };
    output.flush(Duration::from_secs(3));
    std::process::exit(code);
}

fn run(cli: Cli, output: Output) -> Result<supervise::Outcome, Error> {
    let settings = Settings::from_env()?;
    if logs::tracing::init(
        output.stderr.clone(),
        settings.log_format,
        settings.log_level.as_deref(),
    )
    .is_err()
    {
        use logs::tracing::BadLevel;
        return Err(Error::Config(config::ConfigError::Setting {
            variable: BadLevel::VARIABLE.to_string(),
            message: BadLevel::MESSAGE.to_string(),
        }));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Startup {
            what: "cannot start the async runtime",
            source,
        })?;
    runtime.block_on(async move {
        let is_init = pid1::is_init();
        if !is_init {
            if let Err(err) = pid1::become_subreaper() {
                tracing::warn!(error = %err, "cannot become a child subreaper: orphans of our children will not be reaped by us");
            }
        }
        let reaper = pid1::Reaper::new();
        pid1::panic::install(reaper.clone(), is_init);
        let signals = pid1::signals::listen(reaper.clone()).map_err(|source| Error::Startup {
            what: "cannot read signals",
            source,
        })?;
        let ctx = Context {
            settings,
            config_flag: cli.config,
            output,
            reaper,
            signals,
            is_init,
        };
        match cli.command {
            Command::Run { context, only, except } => {
                commands::run::run(ctx, context, plan::Selection { only, except }).await
            }
            Command::Exec { context, command } => commands::exec::exec(ctx, context, command).await,
            Command::CheckEnv { context, format } => commands::check_env::check_env(ctx, context, format),
            Command::EnvExample => commands::env_example::env_example(ctx),
            Command::Migrate { context, status } => commands::migrate::migrate(ctx, context, status).await,
            Command::Healthcheck { url, timeout } => Ok(commands::healthcheck::healthcheck(ctx, url, timeout).await),
            Command::Status { json } => Ok(commands::control::status(ctx, json).await),
            Command::Restart { names } => Ok(commands::control::send(ctx, Request::Restart { names }).await),
            Command::Stop { names } => Ok(commands::control::send(ctx, Request::Stop { names }).await),
            Command::Start { names } => Ok(commands::control::send(ctx, Request::Start { names }).await),
            Command::Signal { signal, names } => Ok(commands::control::send(ctx, Request::Signal { signal, names }).await),
            Command::Logs { names, follow, lines } => {
                Ok(commands::control::logs(ctx, Request::Logs { names, follow, lines }).await)
            }
        }
    })
}
