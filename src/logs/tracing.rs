//! Our own events: `tracing` to stderr, through the stderr writer thread so
//! they never tear a child's line, as text or JSON (`SUPERVISOR_LOG_FORMAT`).

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use super::Sink;
use crate::config::settings::LogFormat;

/// Hands each formatted event to the stderr sink in one piece.
#[derive(Clone)]
struct EventWriter(Sink);

impl std::io::Write for EventWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write_now(buf.to_vec());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for EventWriter {
    type Writer = EventWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// An invalid `SUPERVISOR_LOG_LEVEL`.
#[derive(Debug, thiserror::Error)]
#[error("SUPERVISOR_LOG_LEVEL: not a log level or filter (expected e.g. \"info\", \"debug\", \"supervisor=trace\")")]
pub struct BadLevel;

/// Installs the global subscriber. `level` is a tracing filter (default `info`).
pub fn init(stderr: Sink, format: LogFormat, level: Option<&str>) -> Result<(), BadLevel> {
    let (filter, bad) = match EnvFilter::try_new(level.unwrap_or("info")) {
        Ok(filter) => (filter, false),
        Err(_) => (EnvFilter::new("info"), true),
    };
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(EventWriter(stderr))
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(colour).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if bad {
        Err(BadLevel)
    } else {
        Ok(())
    }
}
