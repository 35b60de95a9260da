//! `supervisor status|restart|stop|start|signal|logs`: the client side of
//! the control socket (SPEC §9). Exit 0 done, 1 refused (the reason is
//! printed), 69 nobody answering.
//!
//! The socket is found as the server placed it (`control::Place`): the
//! setting, else the config's `[control] socket`, else the default for the
//! config this command finds from where it runs. When nobody answers there
//! (or no config is found) and the place was not set explicitly, the only
//! live socket of the default folder is taken (`docker exec -w / app
//! supervisor status` still works); as root, every user's folder is looked at.

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::control::protocol::{Reply, Request};
use crate::control::{self, Place};
use crate::pid1::signals::{meaning, Meaning};
use crate::supervise::Outcome;

use super::Context;

/// How long a stop or restart may take to be answered (it waits for `stop_timeout`s).
const ANSWER: Duration = Duration::from_secs(310);

pub async fn status(ctx: Context, json: bool) -> Outcome {
    let (reply, _) = match exchange(&ctx, &Request::Status {}, Duration::from_secs(10)).await {
        Ok(exchanged) => exchanged,
        Err(outcome) => return outcome,
    };
    let Some(document) = reply.status.filter(|_| reply.ok) else {
        return refused(&ctx, &reply.message);
    };
    let text = if json {
        format!("{}\n", serde_json::to_string_pretty(&document).unwrap_or_default())
    } else {
        table(&document)
    };
    ctx.output.stdout.write_now(text.into_bytes());
    Outcome { code: 0 }
}

pub async fn send(ctx: Context, request: Request) -> Outcome {
    match exchange(&ctx, &request, ANSWER).await {
        Ok((reply, _)) if reply.ok => {
            ctx.output.stdout.write_now(format!("{}\n", reply.message).into_bytes());
            Outcome { code: 0 }
        }
        Ok((reply, _)) => refused(&ctx, &reply.message),
        Err(outcome) => outcome,
    }
}

/// Recent lines, then (with `-f`) new ones until Ctrl-C or the supervisor ends.
pub async fn logs(mut ctx: Context, request: Request) -> Outcome {
    let (reply, mut rest) = match exchange(&ctx, &request, Duration::from_secs(10)).await {
        Ok(exchanged) => exchanged,
        Err(outcome) => return outcome,
    };
    if !reply.ok {
        return refused(&ctx, &reply.message);
    }
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            read = rest.read(&mut buffer) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => ctx.output.stdout.write(buffer[..n].to_vec()).await,
            },
            Some(signal) = ctx.signals.recv() => {
                if meaning(signal) == Meaning::Stop {
                    break;
                }
            }
        }
    }
    Outcome { code: 0 }
}

/// Sends `request`, reads the one-line reply; the rest of the stream is
/// returned for `logs`. Failures are printed and turned into the outcome.
async fn exchange(ctx: &Context, request: &Request, wait: Duration) -> Result<(Reply, BufReader<UnixStream>), Outcome> {
    let stream = connect(ctx).await?;
    let mut stream = BufReader::new(stream);
    let mut line = serde_json::to_vec(request).map_err(|err| refused(ctx, &err.to_string()))?;
    line.push(b'\n');
    // A refusal (too many clients) may come before the request is read:
    // a failed write still leaves that answer to read.
    let sent = stream.get_mut().write_all(&line).await;
    let mut answer = Vec::new();
    match tokio::time::timeout(wait, stream.read_until(b'\n', &mut answer)).await {
        Err(_) => return Err(nobody(ctx, "the supervisor did not answer in time")),
        Ok(Err(err)) => return Err(nobody(ctx, &format!("the supervisor hung up: {err}"))),
        Ok(Ok(0)) => {
            let why = sent
                .err()
                .map_or("without an answer".to_string(), |err| format!("({err})"));
            return Err(nobody(ctx, &format!("the supervisor hung up {why}")));
        }
        Ok(Ok(_)) => {}
    }
    let reply: Reply =
        serde_json::from_slice(&answer).map_err(|err| refused(ctx, &format!("unreadable answer: {err}")))?;
    Ok((reply, stream))
}

async fn connect(ctx: &Context) -> Result<UnixStream, Outcome> {
    let (first, explicit) = match place(ctx) {
        Some(Place::Off) => {
            return Err(nobody(
                ctx,
                "the control socket is off ([control] socket or SUPERVISOR_CONTROL_SOCKET is \"off\")",
            ))
        }
        Some(Place::At { path, explicit }) => (Some(path), explicit),
        None => (None, false),
    };
    if let Some(path) = &first {
        if let Ok(stream) = UnixStream::connect(path).await {
            return Ok(stream);
        }
        if explicit {
            return Err(nobody(ctx, &format!("no supervisor answers at {}", path.display())));
        }
    }
    // Ours first; as root, other users' only when we have none (a root
    // `docker exec` into an image whose USER runs the supervisor).
    let mut live = Vec::new();
    for dirs in [vec![control::default_dir()], other_users_dirs()] {
        for path in sockets_in(&dirs) {
            if let Ok(stream) = UnixStream::connect(&path).await {
                live.push((path, stream));
            }
        }
        if !live.is_empty() {
            break;
        }
    }
    match live.len() {
        1 => Ok(live.remove(0).1),
        0 => Err(nobody(
            ctx,
            &match &first {
                Some(path) => format!("no supervisor is running here (nobody answers at {})", path.display()),
                None => format!(
                    "no supervisor is running here (no socket in {})",
                    control::default_dir().display()
                ),
            },
        )),
        _ => {
            let paths: Vec<String> = live.iter().map(|(path, _)| path.display().to_string()).collect();
            Err(refused(
                ctx,
                &format!(
                    "several supervisors are running ({}): pass --config PATH or set SUPERVISOR_CONTROL_SOCKET",
                    paths.join(", ")
                ),
            ))
        }
    }
}

/// Where the server of this project put its socket, as far as we can tell.
fn place(ctx: &Context) -> Option<Place> {
    if let Some(setting) = ctx.settings.control_socket.as_deref() {
        return Place::of(Some(setting), None, None);
    }
    let source = crate::config::locate(ctx.config_path().as_deref()).ok()?;
    let path = source.path.clone();
    // A config that does not load here (a variable only the container has)
    // still names the default place by its path.
    let file = crate::config::load(source)
        .ok()
        .and_then(|config| config.control_socket);
    Place::of(None, file.as_deref(), Some(&path))
}

/// As root, every user's default folder in /tmp but our own.
fn other_users_dirs() -> Vec<PathBuf> {
    if !nix::unistd::geteuid().is_root() {
        return Vec::new();
    }
    let own = control::default_dir();
    let Ok(entries) = std::fs::read_dir("/tmp") else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("supervisor-"))
        })
        .filter(|path| *path != own)
        .collect();
    dirs.sort();
    dirs
}

fn sockets_in(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut sockets = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        sockets.extend(
            entries
                .flatten()
                .map(|entry| entry.path())
                .filter(|path| path.extension().is_some_and(|e| e == "sock")),
        );
    }
    sockets
}

/// `supervisorctl status` in spirit: one line per instance.
fn table(document: &serde_json::Value) -> String {
    let text = |value: &serde_json::Value| value.as_str().unwrap_or("").to_string();
    let mut out = format!(
        "supervisor: {} (phase {}, up {})\n",
        text(&document["status"]),
        text(&document["phase"]),
        uptime(document["uptime_seconds"].as_f64())
    );
    if let Some(reason) = document["reason"].as_str() {
        out.push_str(&format!("  {reason}\n"));
    }
    let mut rows = vec![[
        "NAME".to_string(),
        "STATE".to_string(),
        "PID".to_string(),
        "UPTIME".to_string(),
        "RESTARTS".to_string(),
        "READY".to_string(),
    ]];
    for process in document["processes"].as_array().into_iter().flatten() {
        rows.push([
            format!("{}.{}", text(&process["name"]), process["instance"]),
            text(&process["state"]),
            process["pid"].as_i64().map_or("-".to_string(), |pid| pid.to_string()),
            process["uptime_seconds"]
                .as_f64()
                .map_or("-".to_string(), |s| uptime(Some(s))),
            process["restarts"].to_string(),
            if process["ready"] == true { "yes" } else { "no" }.to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|column| rows.iter().map(|row| row[column].len()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    let jobs = document["cron"].as_array().into_iter().flatten();
    for (index, job) in jobs.enumerate() {
        if index == 0 {
            out.push_str("\nCRON  SCHEDULE  LAST START  LAST EXIT  NEXT RUN  RUNS (ok/failed/timeout/skipped)\n");
        }
        let runs = &job["runs"];
        out.push_str(&format!(
            "cron.{}  {} ({})  {}  {}  {}  {}/{}/{}/{}{}\n",
            text(&job["name"]),
            text(&job["schedule"]),
            text(&job["timezone"]),
            job["last_start"].as_str().unwrap_or("-"),
            job["last_exit_code"]
                .as_i64()
                .map_or("-".to_string(), |code| code.to_string()),
            job["next_run"].as_str().unwrap_or("-"),
            runs["ok"],
            runs["failed"],
            runs["timeout"],
            runs["skipped"],
            if job["running"] == true { "  (running)" } else { "" },
        ));
    }
    out
}

fn uptime(seconds: Option<f64>) -> String {
    match seconds {
        Some(seconds) => humantime::format_duration(Duration::from_secs(seconds.max(0.0) as u64)).to_string(),
        None => "-".to_string(),
    }
}

fn refused(ctx: &Context, message: &str) -> Outcome {
    ctx.output
        .stderr
        .write_now(format!("supervisor: {message}\n").into_bytes());
    Outcome { code: 1 }
}

fn nobody(ctx: &Context, message: &str) -> Outcome {
    ctx.output
        .stderr
        .write_now(format!("supervisor: {message}\n").into_bytes());
    Outcome { code: 69 }
}
