//! `supervisor run`: the whole lifecycle, top to bottom (SPEC §1).
//!
//! config → environment → health → wait_for → (migrate → tasks) →
//! supervise → stop. Each phase before supervision is raced against a stop
//! signal.

use nix::sys::signal::Signal;
use tokio::sync::mpsc;

use crate::config;
use crate::control;
use crate::error::Error;
use crate::health::{self, Board, Phase};
use crate::job::Runner;
use crate::migrate;
use crate::pid1::signals::{meaning, Meaning};
use crate::pid1::stop_stragglers;
use crate::plan;
use crate::supervise::{Options, Outcome, Supervisor};
use crate::tasks;
use crate::wait_for;

use super::Context;

pub async fn run(mut ctx: Context, context: Option<String>, selection: plan::Selection) -> Result<Outcome, Error> {
    // 1. The config.
    let config = config::load(config::locate(ctx.config_path().as_deref())?)?;

    // 2. The environment the children get: validated, defaults applied.
    let environment = ctx.environment(&config.env, context.as_deref(), false)?;
    if let Some(report) = &environment.report {
        tracing::info!(context = %report.context, variables = report.checked, "environment ok");
    }

    let mut plan = plan::build(&config, &environment.vars)?;
    // `--only` / `--except` (a dev's subset): refused before anything starts.
    plan.processes = plan::select(plan.processes, &selection).map_err(Error::Usage)?;

    // 3. The health server, so orchestrators see `starting` from now on.
    let board = Board::new();
    let listen = config::health_listen(ctx.settings.health_listen.as_ref(), &config.health);
    if let Some(listen) = &listen {
        let address = health::serve(listen, board.clone()).await?;
        tracing::info!(address = %address, "health server listening");
    }

    // The control socket, so operators can look in from now on (SPEC §9).
    let requests = open_control(&mut ctx, &config, &board);

    // 4. Whatever lives outside the container.
    if !plan.wait_for.is_empty() {
        board.set_phase(Phase::WaitingFor);
        match until_stopped(
            wait_for::wait_all(&plan.wait_for, config.wait_timeout),
            &mut ctx.signals,
        )
        .await
        {
            Some(result) => result?,
            None => return Ok(stopped_before_start(&mut ctx).await),
        }
    }

    // 5. Migrations, once across replicas; 6. tasks.
    let context = ctx.context(&environment, &config.env, context.as_deref());
    let (locked_tasks, free_tasks) = tasks::for_context(&config.tasks, &context);
    let format = ctx.line_format();
    let runner = Runner {
        reaper: &ctx.reaper,
        output: &ctx.output,
        format,
    };
    if let Some(section) = &config.migrate {
        board.set_phase(Phase::Migrating);
        board.set_migrations(health::status::Migrations {
            state: "running",
            ..Default::default()
        });
        let phase = migrate::Phase {
            config: section,
            base_dir: &config.base_dir,
            env: &environment.vars,
            tasks: locked_tasks,
            runner: runner.clone(),
        };
        match migrate::run(&phase, &mut ctx.signals).await {
            Ok(summary) => board.set_migrations(summary.migrations()),
            Err(migrate::MigrateError::Stopped { signal }) => {
                tracing::info!(signal = %signal, "stopping before any process started");
                return Ok(stopped_before_start(&mut ctx).await);
            }
            Err(err) => {
                board.set_migrations(health::status::Migrations {
                    state: "failed",
                    ..Default::default()
                });
                return Err(err.into());
            }
        }
    }
    if !free_tasks.is_empty() {
        board.set_phase(Phase::Tasks);
        match until_stopped(tasks::run(&runner, &free_tasks, &environment.vars), &mut ctx.signals).await {
            Some(result) => result?,
            None => return Ok(stopped_before_start(&mut ctx).await),
        }
    }

    // 7. Processes, in dependency order.
    let drain = ctx.settings.drain.unwrap_or(config.drain);
    let options = Options {
        format,
        is_init: ctx.is_init,
        board,
        drain,
    };
    tracing::info!(config = %config.source.path.display(), processes = plan.processes.len(), "starting");
    let (crons, elsewhere): (Vec<_>, Vec<_>) = plan.crons.into_iter().partition(|job| job.runs_in(&context));
    for job in elsewhere {
        tracing::info!(job = %format!("cron.{}", job.job.name), context = %context, "not scheduled: not listed for this context");
    }
    let mut supervisor =
        Supervisor::new(plan.processes, ctx.reaper.clone(), ctx.output.clone(), options).with_crons(crons);
    warn_if_the_stop_cannot_fit(drain, supervisor.longest_stop(), ctx.settings.stop_grace);
    if let Err(err) = supervisor.watch_files(&config.base_dir) {
        tracing::warn!("watch: {err}; processes will not restart on file changes");
    }
    if let Some(requests) = requests {
        supervisor = supervisor.with_requests(requests);
    }

    // 8–9. Supervise until stopped, then stop in reverse dependency order.
    Ok(supervisor.run(&mut ctx.signals).await)
}

/// Binds the control socket and keeps recent lines for `supervisor logs`.
/// Trouble here is never fatal: the run goes on without it, and says why.
fn open_control(ctx: &mut Context, config: &config::Config, board: &Board) -> Option<mpsc::Receiver<control::Pending>> {
    let place = control::Place::of(
        ctx.settings.control_socket.as_deref(),
        config.control_socket.as_deref(),
        Some(&config.source.path),
    )?;
    let control::Place::At { path, explicit } = place else {
        return None;
    };
    let listener = match control::bind(&path, explicit) {
        Ok(listener) => listener,
        Err(err) => {
            tracing::warn!("control socket: {err}");
            return None;
        }
    };
    tracing::info!(socket = %listener.path().display(), "control socket listening");
    let recent = crate::logs::recent::Recent::new();
    ctx.output.recent = Some(recent.clone());
    let (requests, pending) = mpsc::channel(control::MAX_CLIENTS);
    control::serve(
        listener,
        control::Shared {
            board: board.clone(),
            recent,
            requests,
        },
    );
    Some(pending)
}

/// SPEC §6: `drain` plus the slowest chain of `stop_timeout`s must fit the
/// platform's grace period (Docker 10 s, Kubernetes and Coolify 30 s), or the
/// platform's SIGKILL cuts the stop short. Only a declared grace is checked.
fn warn_if_the_stop_cannot_fit(
    drain: std::time::Duration,
    stop: std::time::Duration,
    grace: Option<std::time::Duration>,
) {
    let Some(grace) = grace else { return };
    let needed = drain + stop;
    if needed > grace {
        tracing::warn!(
            "drain ({}) + the slowest stop ({}) = {} does not fit SUPERVISOR_STOP_GRACE ({}): the platform will SIGKILL before the stop ends; lower drain or stop_timeout, or raise the grace period (docs/deploys.md)",
            humantime::format_duration(drain),
            humantime::format_duration(stop),
            humantime::format_duration(needed),
            humantime::format_duration(grace),
        );
    }
}

/// A stop signal arrived before any process started: whatever a phase left
/// running (a migration tool, a task) is stopped, and that is a clean stop.
async fn stopped_before_start(ctx: &mut Context) -> Outcome {
    stop_stragglers(
        &ctx.reaper,
        ctx.is_init,
        config::DEFAULT_STOP_TIMEOUT,
        false,
        &mut ctx.signals,
    )
    .await;
    Outcome { code: 0 }
}

/// Runs a phase until it finishes or a stop signal arrives (`None`): a
/// `docker stop` during start-up must not wait for the phase to end.
async fn until_stopped<T>(
    phase: impl std::future::Future<Output = T>,
    signals: &mut mpsc::UnboundedReceiver<Signal>,
) -> Option<T> {
    tokio::pin!(phase);
    loop {
        tokio::select! {
            result = &mut phase => return Some(result),
            Some(signal) = signals.recv() => {
                if meaning(signal) == Meaning::Stop {
                    tracing::info!(signal = %signal, "stopping before any process started");
                    return None;
                }
            }
        }
    }
}
