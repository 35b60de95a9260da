//! Output: child lines and our own events, written whole.
//!
//! Each of our two output streams has one writer thread (`Sink`), so nothing
//! else ever writes to fd 1 or fd 2 and no line can be torn by another
//! writer. Child pipes are read by `lines::relay` tasks that cut whole lines
//! and hand them over in batches. A byte budget (a semaphore) bounds what is
//! queued: when our stdout stops draining, relays wait, children block on
//! their pipes, and nothing is dropped or buffered without limit. Our own
//! tracing events bypass the budget so the supervisor never blocks on its
//! own logging. Blocking writes happen on the writer threads, never on the
//! runtime, so a stuck `docker logs` cannot stall supervision.

pub mod lines;
pub mod recent;
pub mod tracing;

use std::io::Write;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

/// Bytes that may wait for one stream's writer before relays are held back.
const BUDGET: usize = 1 << 20;

enum Message {
    Data(Vec<u8>, Option<OwnedSemaphorePermit>),
    Flush(std::sync::mpsc::SyncSender<()>),
}

/// One output stream (our stdout or stderr), owned by its writer thread.
#[derive(Clone)]
pub struct Sink {
    tx: mpsc::UnboundedSender<Message>,
    budget: Arc<Semaphore>,
}

impl Sink {
    fn start(name: &str, target: Option<std::fs::File>) -> Sink {
        let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
        let spawned = std::thread::Builder::new().name(name.to_string()).spawn(move || {
            let mut target = target;
            while let Some(message) = rx.blocking_recv() {
                match message {
                    Message::Data(bytes, _permit) => {
                        if let Some(file) = target.as_mut() {
                            if write_all(file, &bytes).is_err() {
                                // EPIPE or a closed descriptor: the reader is gone.
                                // Keep draining so relays never wait on us.
                                target = None;
                            }
                        }
                    }
                    Message::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
        if spawned.is_err() {
            // Without a thread the channel's receiver is dropped and sends fail quietly.
            eprintln!("supervisor: cannot start the {name} writer thread");
        }
        Sink {
            tx,
            budget: Arc::new(Semaphore::new(BUDGET)),
        }
    }

    /// Queues `bytes` (whole lines), waiting while the writer is behind.
    pub async fn write(&self, bytes: Vec<u8>) {
        let cost = bytes.len().clamp(1, BUDGET) as u32;
        let permit = self.budget.clone().acquire_many_owned(cost).await.ok();
        let _ = self.tx.send(Message::Data(bytes, permit));
    }

    /// Queues `bytes` without waiting: for our own, low-volume events.
    pub fn write_now(&self, bytes: Vec<u8>) {
        let _ = self.tx.send(Message::Data(bytes, None));
    }

    /// Waits until everything queued so far is written, at most `timeout`.
    /// Returns false when the reader stalled past it.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (done_tx, done_rx) = std::sync::mpsc::sync_channel(1);
        if self.tx.send(Message::Flush(done_tx)).is_err() {
            return true;
        }
        done_rx.recv_timeout(timeout).is_ok()
    }
}

/// `write_all` that also survives a descriptor someone left non-blocking.
fn write_all(file: &mut std::fs::File, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        match file.write(bytes) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                let mut fds = [nix::poll::PollFd::new(file.as_fd(), nix::poll::PollFlags::POLLOUT)];
                let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(1000u16));
            }
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// Our stdout and stderr.
#[derive(Clone)]
pub struct Output {
    pub stdout: Sink,
    pub stderr: Sink,
    /// Where relays also keep recent lines, once a control socket can ask for them.
    pub recent: Option<Arc<recent::Recent>>,
}

impl Output {
    /// Starts both writer threads. Writes go to duplicates of fd 1 and 2, so a
    /// descriptor that was closed when we started simply discards.
    pub fn start() -> Output {
        let dup = |fd: std::os::fd::BorrowedFd<'_>| fd.try_clone_to_owned().ok().map(std::fs::File::from);
        Output {
            stdout: Sink::start("stdout-writer", dup(std::io::stdout().as_fd())),
            stderr: Sink::start("stderr-writer", dup(std::io::stderr().as_fd())),
            recent: None,
        }
    }

    /// Takes `child`'s stdout and stderr pipes (when piped) and relays each,
    /// line by line, to our own stream of the same name.
    pub fn relay_child(
        &self,
        child: &mut crate::pid1::Child,
        label: &std::sync::Arc<lines::Label>,
        format: lines::Format,
        relays: &mut tokio::task::JoinSet<()>,
        ready_line: Option<Arc<lines::ReadyLine>>,
    ) {
        let pipes = [
            (child.stdout.take(), lines::Stream::Stdout),
            (child.stderr.take(), lines::Stream::Stderr),
        ];
        for (fd, stream) in pipes {
            let Some(fd) = fd else { continue };
            match tokio::net::unix::pipe::Receiver::from_owned_fd(fd) {
                Ok(pipe) => {
                    let sink = self.sink(stream).clone();
                    let ready = ready_line.clone().filter(|ready| ready.reads(stream));
                    relays.spawn(lines::relay(
                        pipe,
                        label.clone(),
                        stream,
                        format,
                        sink,
                        self.recent.clone(),
                        ready,
                    ));
                }
                Err(err) => ::tracing::error!(process = %label.process, error = %err, "cannot read an output pipe"),
            }
        }
    }

    pub fn sink(&self, stream: lines::Stream) -> &Sink {
        match stream {
            lines::Stream::Stdout => &self.stdout,
            lines::Stream::Stderr => &self.stderr,
        }
    }

    /// Flushes both streams, giving a stalled reader at most `timeout` in all.
    pub fn flush(&self, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        self.stdout.flush(timeout);
        self.stderr.flush(
            deadline
                .saturating_duration_since(std::time::Instant::now())
                .max(Duration::from_millis(50)),
        );
    }
}

/// The one line a fatal error gets on stderr: `error: …` as text, or, with
/// `SUPERVISOR_LOG_FORMAT=json`, one JSON object like our other events (read
/// from the environment directly: the error may be that the settings could
/// not be read at all).
pub fn fatal_line(error: &dyn std::fmt::Display, exit_code: i32) -> Vec<u8> {
    let json = std::env::var("SUPERVISOR_LOG_FORMAT").is_ok_and(|format| {
        crate::config::settings::LogFormat::parse(&format) == Some(crate::config::settings::LogFormat::Json)
    });
    if !json {
        return format!("error: {error}\n").into_bytes();
    }
    let record = serde_json::json!({
        "timestamp": humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
        "level": "ERROR",
        "message": error.to_string(),
        "exit_code": exit_code,
    });
    let mut line = record.to_string().into_bytes();
    line.push(b'\n');
    line
}
