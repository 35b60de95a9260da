//! Our own events: `tracing` to stderr, through the stderr writer thread so
//! they never tear a child's line, as text or JSON (`SUPERVISOR_LOG_FORMAT`).

use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

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
#[error("{}: {}", BadLevel::VARIABLE, BadLevel::MESSAGE)]
pub struct BadLevel;

impl BadLevel {
    pub const VARIABLE: &'static str = "SUPERVISOR_LOG_LEVEL";
    pub const MESSAGE: &'static str =
        "not a log level or filter (expected e.g. \"info\", \"debug\", \"supervisor=trace\")";
}

/// Every directive is a level, or `target=level`. A bare word such as
/// `verbose` would parse as "everything from target `verbose`" and silence
/// the supervisor instead: refuse it.
fn is_strict_filter(filter: &str) -> bool {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let is_level = |word: &str| LEVELS.contains(&word.trim().to_ascii_lowercase().as_str());
    filter.split(',').all(|directive| match directive.split_once('=') {
        Some((target, level)) => {
            !target.trim().is_empty()
                && target
                    .trim()
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
                && is_level(level)
        }
        None => is_level(directive),
    })
}

/// Installs the global subscriber. `level` is a level or per-target filter
/// such as `warn,supervisor=debug` (default `info`).
///
/// `Targets` rather than `EnvFilter`: the same `target=level` syntax without
/// a regex engine, whose code would otherwise be paged into every supervisor
/// for the life of the container (peak RSS, see docs/benchmarks.md).
pub fn init(stderr: Sink, format: LogFormat, level: Option<&str>) -> Result<(), BadLevel> {
    let level = level.unwrap_or("info");
    let (filter, bad) = match level.parse::<Targets>() {
        Ok(filter) if is_strict_filter(level) => (filter, false),
        _ => (Targets::new().with_default(tracing::Level::INFO), true),
    };
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(EventWriter(stderr))
        .with_target(false);
    let _ = match format {
        LogFormat::Text => tracing_subscriber::registry()
            .with(layer.with_ansi(colour).with_filter(filter))
            .try_init(),
        LogFormat::Json => tracing_subscriber::registry()
            .with(layer.json().flatten_event(true).with_filter(filter))
            .try_init(),
    };
    if bad {
        Err(BadLevel)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::is_strict_filter;

    #[test]
    fn filters_are_levels_or_target_equals_level() {
        for good in [
            "info",
            "DEBUG",
            "warn,supervisor=debug",
            "supervisor::migrate=trace",
            "off",
        ] {
            assert!(is_strict_filter(good), "{good}");
        }
        for bad in [
            "verbose",
            "bogus level!",
            "supervisor=loud",
            "=info",
            "info,",
            "a b=info",
        ] {
            assert!(!is_strict_filter(bad), "{bad}");
        }
    }
}
