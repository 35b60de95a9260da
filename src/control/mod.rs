//! The control socket (SPEC §9): `supervisor status`, `restart`, `stop`,
//! `start`, `signal` and `logs` reach the running `supervisor run` here.
//!
//! # Where the socket is
//! With no setting, `$XDG_RUNTIME_DIR/supervisor/` (a desktop session) or
//! `/tmp/supervisor-<uid>/` (a container, where `/run` is often not
//! writable for a non-root `USER`), named after a hash of the config file's
//! real path: the client, run from the same project (`docker exec app
//! supervisor status` starts in the image's `WORKDIR`, with its `ENV`),
//! finds the config and so the socket; two projects side by side never share
//! one. A client that finds no config, or nobody at its path, takes the only
//! live socket of that folder. `[control] socket` or
//! `SUPERVISOR_CONTROL_SOCKET` set a path, `"off"` turns it off.
//!
//! # Who may talk
//! The folder is created 0700 and must be ours; the socket is 0600; and the
//! peer's credentials (SO_PEERCRED) must be our uid or root. A socket left
//! by a SIGKILLed supervisor refuses connections and is replaced; one that
//! answers belongs to a live supervisor and is never taken: we run without
//! a control socket then, and say so.
//!
//! # Never stalling supervision
//! Connections are served by tasks of their own, at most [`MAX_CLIENTS`] at
//! once, with deadlines on reading the request and on every write. `status`
//! and `logs` are answered here from what /health and the relays publish;
//! requests that change something are sent to the event loop, which carries
//! them out one at a time (`supervise::requests`).

pub mod protocol;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::health::{Board, Phase};
use crate::logs::recent::Recent;
use protocol::{Reply, Request};

/// Connections served at once; more are refused at once.
pub const MAX_CLIENTS: usize = 16;
/// How long a client may take to send its request.
const READ_REQUEST: Duration = Duration::from_secs(5);
/// How long one write to a client may wait for it to read.
const WRITE: Duration = Duration::from_secs(10);
/// How long the loop may take with a request (a stop waits for `stop_timeout`).
const CARRY_OUT: Duration = Duration::from_secs(300);

/// A request only the event loop can carry out, and where its answer goes.
#[derive(Debug)]
pub struct Pending {
    pub operation: Operation,
    pub reply: oneshot::Sender<Reply>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    Restart(Vec<String>),
    Stop(Vec<String>),
    Start(Vec<String>),
    Signal(Signal, Vec<String>),
}

/// Where the socket goes, from the setting, the file, and the config's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    Off,
    /// `explicit`: set by the user, so a client does not look elsewhere.
    At {
        path: PathBuf,
        explicit: bool,
    },
}

impl Place {
    /// `SUPERVISOR_CONTROL_SOCKET` > `[control] socket` > the default for `config`.
    pub fn of(setting: Option<&str>, file: Option<&str>, config: Option<&Path>) -> Option<Place> {
        match setting.or(file) {
            Some("off") => Some(Place::Off),
            Some(path) => Some(Place::At {
                path: PathBuf::from(path),
                explicit: true,
            }),
            None => config.map(|config| Place::At {
                path: default_path(config),
                explicit: false,
            }),
        }
    }
}

/// `$XDG_RUNTIME_DIR/supervisor`, else `/tmp/supervisor-<uid>`.
pub fn default_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(runtime) if runtime.is_absolute() => runtime.join("supervisor"),
        _ => PathBuf::from(format!("/tmp/supervisor-{}", nix::unistd::geteuid())),
    }
}

/// The default socket of the project whose config is `config`.
pub fn default_path(config: &Path) -> PathBuf {
    let real = std::fs::canonicalize(config).unwrap_or_else(|_| config.to_path_buf());
    let digest = Sha256::digest(real.as_os_str().as_encoded_bytes());
    default_dir().join(format!("{}.sock", &hex::encode(digest)[..12]))
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{} answers: another supervisor runs with this config; this one runs without a control socket", path.display())]
    InUse { path: PathBuf },
    #[error("{} exists and is not a socket; not replacing it", path.display())]
    NotASocket { path: PathBuf },
    #[error("{} is not a folder of ours with mode 0700 (owner uid {owner}, mode {mode:o}); not using it", path.display())]
    UnsafeDir { path: PathBuf, owner: u32, mode: u32 },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

/// The listening socket; removes its file when dropped.
pub struct Listener {
    listener: UnixListener,
    path: PathBuf,
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Listener {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Creates the socket at `place`, replacing a stale one, never a live one.
pub fn bind(path: &Path, explicit: bool) -> Result<Listener, ControlError> {
    let io = |source| ControlError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        if !explicit {
            ensure_private_dir(dir)?;
        }
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) => {
            return Err(ControlError::NotASocket {
                path: path.to_path_buf(),
            })
        }
        Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => {
                return Err(ControlError::InUse {
                    path: path.to_path_buf(),
                })
            }
            // Nobody listens: what a SIGKILLed supervisor leaves behind.
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
                std::fs::remove_file(path).map_err(io)?;
            }
            Err(err) => return Err(io(err)),
        },
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(io(err)),
    }
    let listener = UnixListener::bind(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(Listener {
        listener,
        path: path.to_path_buf(),
    })
}

/// Our default folder: created 0700, and refused unless it is ours and
/// closed to others (`/tmp` is shared: someone else may have made it first).
fn ensure_private_dir(dir: &Path) -> Result<(), ControlError> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir) {
        Ok(()) => {}
        Err(source) => {
            return Err(ControlError::Io {
                path: dir.to_path_buf(),
                source,
            })
        }
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|source| ControlError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let ours = meta.is_dir() && meta.uid() == nix::unistd::geteuid().as_raw() && meta.mode() & 0o077 == 0;
    if !ours {
        return Err(ControlError::UnsafeDir {
            path: dir.to_path_buf(),
            owner: meta.uid(),
            mode: meta.mode() & 0o7777,
        });
    }
    Ok(())
}

/// What connection tasks need.
#[derive(Clone)]
pub struct Shared {
    pub board: Board,
    pub recent: Arc<Recent>,
    pub requests: mpsc::Sender<Pending>,
}

/// Accepts connections until the runtime ends.
pub fn serve(listener: Listener, shared: Shared) {
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
        loop {
            let stream = match listener.listener.accept().await {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::debug!(error = %err, "control socket: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let shared = shared.clone();
            match slots.clone().try_acquire_owned() {
                Ok(slot) => {
                    tokio::spawn(async move {
                        let _slot = slot;
                        connection(stream, shared).await;
                    });
                }
                Err(_) => {
                    tokio::spawn(async move {
                        let mut stream = stream;
                        let _ = send(&mut stream, &Reply::refused("too many control connections; try again")).await;
                    });
                }
            }
        }
    });
}

async fn connection(mut stream: tokio::net::UnixStream, shared: Shared) {
    let allowed = match stream.peer_cred() {
        Ok(peer) => peer.uid() == 0 || peer.uid() == nix::unistd::geteuid().as_raw(),
        Err(_) => false,
    };
    if !allowed {
        let _ = send(
            &mut stream,
            &Reply::refused("only the supervisor's own user or root may control it"),
        )
        .await;
        return;
    }
    let (read, mut write) = stream.split();
    let request = match read_request(read).await {
        Ok(request) => request,
        Err(reason) => {
            let _ = send(&mut write, &Reply::refused(reason)).await;
            return;
        }
    };
    let operation = match request {
        Request::Status {} => {
            let _ = send(&mut write, &status(&shared.board)).await;
            return;
        }
        Request::Logs { names, follow, lines } => {
            logs(&mut write, &shared.recent, &names, follow, lines).await;
            return;
        }
        Request::Restart { names } => Operation::Restart(names),
        Request::Stop { names } => Operation::Stop(names),
        Request::Start { names } => Operation::Start(names),
        Request::Signal { signal, names } => match crate::config::parse_signal(&signal) {
            Some(signal) => Operation::Signal(signal, names),
            None => {
                let _ = send(&mut write, &Reply::refused(format!("unknown signal {signal:?}"))).await;
                return;
            }
        },
    };
    let phase = shared.board.phase();
    if phase != Phase::Running {
        let why = format!(
            "the processes are not running yet or any more (phase {})",
            phase.as_str()
        );
        let _ = send(&mut write, &Reply::refused(why)).await;
        return;
    }
    let (reply, answer) = oneshot::channel();
    let reply = match shared.requests.try_send(Pending { operation, reply }) {
        Ok(()) => match tokio::time::timeout(CARRY_OUT, answer).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Reply::refused("the supervisor is stopping"),
            Err(_) => Reply::refused("no answer from the event loop in time"),
        },
        Err(_) => Reply::refused("busy with other requests; try again"),
    };
    let _ = send(&mut write, &reply).await;
}

/// One request line, within [`READ_REQUEST`] and [`protocol::MAX_REQUEST`].
async fn read_request(read: impl AsyncRead + Unpin) -> Result<Request, String> {
    use tokio::io::AsyncReadExt;
    let mut reader = BufReader::new(read.take(protocol::MAX_REQUEST as u64 + 1));
    let mut line = Vec::new();
    match tokio::time::timeout(READ_REQUEST, reader.read_until(b'\n', &mut line)).await {
        Err(_) => return Err("no request within 5 s".to_string()),
        Ok(Err(err)) => return Err(format!("cannot read the request: {err}")),
        Ok(Ok(_)) => {}
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    } else if line.len() > protocol::MAX_REQUEST {
        return Err(format!("request longer than {} bytes", protocol::MAX_REQUEST));
    }
    protocol::parse(&line)
}

async fn send(write: &mut (impl AsyncWrite + Unpin), reply: &Reply) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(reply).map_err(std::io::Error::other)?;
    line.push(b'\n');
    write_within(write, &line).await
}

async fn write_within(write: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) -> std::io::Result<()> {
    match tokio::time::timeout(WRITE, write.write_all(bytes)).await {
        Ok(result) => result,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

/// `/health`'s document, with each process's uptime: `status` and `/health` never disagree.
fn status(board: &Board) -> Reply {
    let snapshot = board.snapshot();
    let mut value = crate::health::status::health_document(&snapshot, board.uptime_seconds());
    if let Some(processes) = value["processes"].as_array_mut() {
        for (json, process) in processes.iter_mut().zip(&snapshot.processes) {
            json["uptime_seconds"] = process
                .started
                .map_or(serde_json::Value::Null, |since| since.elapsed().as_secs_f64().into());
        }
    }
    let message = match (value["status"].as_str(), value["reason"].as_str()) {
        (Some(status), Some(reason)) => format!("{status}: {reason}"),
        _ => "ok".to_string(),
    };
    Reply {
        ok: true,
        message,
        status: Some(value),
    }
}

/// The last `lines` lines of `names` (every process when empty), then, when
/// following, what comes next until the client goes away.
async fn logs(write: &mut (impl AsyncWrite + Unpin), recent: &Recent, names: &[String], follow: bool, lines: usize) {
    let wanted = |instance: &str| {
        names.is_empty()
            || names.iter().any(|name| {
                instance == name
                    || instance
                        .strip_prefix(name.as_str())
                        .is_some_and(|rest| rest.starts_with('.'))
            })
    };
    let (tail, mut next) = recent.tail(lines, wanted);
    if send(write, &Reply::done(format!("{} recent lines", tail.len())))
        .await
        .is_err()
    {
        return;
    }
    if write_within(write, tail.concat().as_bytes()).await.is_err() || !follow {
        return;
    }
    loop {
        let added = recent.added();
        tokio::pin!(added);
        added.as_mut().enable();
        let (batches, after, missed) = recent.since(next, wanted);
        next = after;
        if missed > 0 {
            let note = format!("supervisor | … {missed} batches of lines dropped: this reader fell behind\n");
            if write_within(write, note.as_bytes()).await.is_err() {
                return;
            }
        }
        for batch in batches {
            if write_within(write, batch.text().as_bytes()).await.is_err() {
                return;
            }
        }
        added.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setting_wins_over_the_file_and_off_turns_it_off() {
        let config = Path::new("/app/supervisor.toml");
        assert_eq!(Place::of(Some("off"), Some("/x.sock"), Some(config)), Some(Place::Off));
        assert_eq!(
            Place::of(Some("/a.sock"), Some("off"), Some(config)),
            Some(Place::At {
                path: "/a.sock".into(),
                explicit: true
            })
        );
        assert_eq!(Place::of(None, Some("off"), Some(config)), Some(Place::Off));
        let Some(Place::At { path, explicit: false }) = Place::of(None, None, Some(config)) else {
            panic!("a default place")
        };
        assert_eq!(path.parent(), Some(default_dir().as_path()));
        assert_ne!(
            default_path(Path::new("/one/supervisor.toml")),
            default_path(Path::new("/two/supervisor.toml"))
        );
        assert_eq!(Place::of(None, None, None), None);
    }
}
