//! Child pipes → whole lines, prefixed or as JSON (SPEC §6).
//!
//! A relay reads one pipe of one child into a fixed buffer, cuts it at
//! newlines and sends every complete line of a read to the sink in one
//! batch, keeping any partial line for the next read. A line longer than
//! the buffer is written in pieces, each a line of its own: split, never
//! dropped. A last line without a newline is written at EOF.

use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::recent::Recent;
use super::Sink;

/// The longest line written in one piece.
pub const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// How lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `name.instance | line`, the prefix coloured when `colour` is set.
    Prefix { colour: bool },
    /// `{"timestamp", "process", "instance", "stream", "message"}` per line.
    Json,
}

/// Which process instance a line belongs to, with its prefix pre-rendered.
#[derive(Debug)]
pub struct Label {
    pub process: Arc<str>,
    pub instance: u32,
    /// `name.N` (or a job's name): how `supervisor logs` shows and filters it.
    pub name: Arc<str>,
    prefix: Vec<u8>,
}

/// ANSI colours for prefixes, as honcho and foreman use.
const COLOURS: [&str; 6] = ["36", "33", "32", "35", "34", "31"];

/// A process's colour, from its name alone: adding or reordering processes
/// never repaints the others (FNV-1a, for a stable spread over six colours).
pub fn colour_of(name: &str) -> usize {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % COLOURS.len() as u64) as usize
}

impl Label {
    /// `width`: the widest `name.N` of the run, so every `|` lines up
    /// (`web.0    |` above `worker.0 |`), as foreman and overmind do.
    pub fn new(process: Arc<str>, instance: u32, colour_index: usize, format: Format, width: usize) -> Label {
        let name = format!("{process}.{instance}");
        let prefix = match format {
            Format::Prefix { colour: true } => {
                let code = COLOURS[colour_index % COLOURS.len()];
                format!("\x1b[{code}m{name:<width$} |\x1b[0m ")
            }
            Format::Prefix { colour: false } => format!("{name:<width$} | "),
            Format::Json => String::new(),
        };
        Label {
            process,
            instance,
            name: name.into(),
            prefix: prefix.into_bytes(),
        }
    }
}

impl Label {
    /// A label without an instance, for one-shot jobs: `migrate | line`.
    pub fn named(name: Arc<str>, format: Format) -> Label {
        let prefix = match format {
            Format::Prefix { colour: true } => format!("\x1b[1m{name} |\x1b[0m "),
            Format::Prefix { colour: false } => format!("{name} | "),
            Format::Json => String::new(),
        };
        Label {
            process: name.clone(),
            instance: 0,
            name,
            prefix: prefix.into_bytes(),
        }
    }
}

#[derive(Serialize)]
struct JsonLine<'a> {
    timestamp: String,
    process: &'a str,
    instance: u32,
    stream: &'static str,
    message: Message<'a>,
}

/// A child's line: text, or, when the line is itself a JSON object (pino,
/// the Fastify logger, structlog), that object, embedded rather than escaped.
#[derive(Serialize)]
#[serde(untagged)]
enum Message<'a> {
    Text(std::borrow::Cow<'a, str>),
    Object(serde_json::Map<String, serde_json::Value>),
}

impl<'a> Message<'a> {
    fn of(line: &'a [u8]) -> Message<'a> {
        if line.first() == Some(&b'{') {
            if let Ok(object) = serde_json::from_slice(line) {
                return Message::Object(object);
            }
        }
        Message::Text(String::from_utf8_lossy(line))
    }
}

fn render(line: &[u8], label: &Label, stream: Stream, format: Format, out: &mut Vec<u8>) {
    // A CRLF line (a Windows-built tool, a TTY-minded logger) keeps no `\r`.
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match format {
        Format::Prefix { .. } => {
            out.extend_from_slice(&label.prefix);
            out.extend_from_slice(line);
            out.push(b'\n');
        }
        Format::Json => {
            let record = JsonLine {
                timestamp: humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
                process: &label.process,
                instance: label.instance,
                stream: stream.as_str(),
                message: Message::of(line),
            };
            if serde_json::to_writer(&mut *out, &record).is_ok() {
                out.push(b'\n');
            }
        }
    }
}

/// `ready = { log = "…" }`: the first matching line of the run, on either of
/// its relays, says so once; afterwards lines are not even looked at.
pub struct ReadyLine {
    pattern: Arc<regex::bytes::Regex>,
    stream: crate::config::LogStream,
    fired: std::sync::atomic::AtomicBool,
    tell: Box<dyn Fn() + Send + Sync>,
}

impl ReadyLine {
    pub fn new(
        pattern: Arc<regex::bytes::Regex>,
        stream: crate::config::LogStream,
        tell: impl Fn() + Send + Sync + 'static,
    ) -> Arc<ReadyLine> {
        Arc::new(ReadyLine {
            pattern,
            stream,
            fired: std::sync::atomic::AtomicBool::new(false),
            tell: Box::new(tell),
        })
    }

    /// Whether lines of `stream` can make it ready.
    pub fn reads(&self, stream: Stream) -> bool {
        use crate::config::LogStream;
        match self.stream {
            LogStream::Any => true,
            LogStream::Stdout => stream == Stream::Stdout,
            LogStream::Stderr => stream == Stream::Stderr,
        }
    }

    fn look(&self, line: &[u8]) {
        use std::sync::atomic::Ordering;
        if !self.fired.load(Ordering::Relaxed)
            && self.pattern.is_match(line)
            && !self.fired.swap(true, Ordering::AcqRel)
        {
            (self.tell)();
        }
    }

    fn done(&self) -> bool {
        self.fired.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Relays `pipe` to `sink` until EOF.
///
/// The line buffer is reserved, not zeroed: a child that prints little never
/// costs its 64 KiB in resident memory (a zeroed buffer would, for every
/// stream of every instance, for the container's whole life).
pub async fn relay(
    mut pipe: impl AsyncRead + Unpin,
    label: Arc<Label>,
    stream: Stream,
    format: Format,
    sink: Sink,
    recent: Option<Arc<Recent>>,
    ready: Option<Arc<ReadyLine>>,
) {
    let keep = |lines: &[u8]| {
        if let Some(recent) = &recent {
            recent.push(&label.name, lines);
        }
        if let Some(ready) = ready.as_ref().filter(|ready| !ready.done()) {
            for line in lines.split(|&b| b == b'\n') {
                ready.look(line);
            }
        }
    };
    let mut buf: Vec<u8> = Vec::with_capacity(MAX_LINE);
    loop {
        // `buf.len() < MAX_LINE` here, so the read fills spare capacity and never grows the buffer.
        let read = match pipe.read_buf(&mut buf).await {
            Ok(read) => read,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => {
                tracing::debug!(process = %label.process, instance = label.instance, error = %err, "output pipe failed");
                0
            }
        };
        if read == 0 {
            if !buf.is_empty() {
                let mut out = Vec::with_capacity(buf.len() + 64);
                render(&buf, &label, stream, format, &mut out);
                keep(&buf);
                sink.write(out).await;
            }
            return;
        }
        let end = buf.len();
        let mut out = Vec::with_capacity(end + 256);
        let mut start = 0;
        while let Some(at) = memchr::memchr(b'\n', &buf[start..end]) {
            render(&buf[start..start + at], &label, stream, format, &mut out);
            start += at + 1;
        }
        if start == 0 && end >= MAX_LINE {
            // A line longer than the buffer: write this piece as a line of its own.
            render(&buf[..end], &label, stream, format, &mut out);
            start = end;
        }
        keep(&buf[..start]);
        buf.drain(..start);
        if !out.is_empty() {
            sink.write(out).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render_one(line: &[u8], format: Format) -> String {
        let label = Label::new("web".into(), 1, 0, format, 0);
        let mut out = Vec::new();
        render(line, &label, Stream::Stderr, format, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn renders_prefix_and_json() {
        assert_eq!(
            render_one(b"hello", Format::Prefix { colour: false }),
            "web.1 | hello\n"
        );
        assert_eq!(
            render_one(b"hi", Format::Prefix { colour: true }),
            "\x1b[36mweb.1 |\x1b[0m hi\n"
        );
        let json: serde_json::Value = serde_json::from_str(&render_one(b"a \"q\" \xff", Format::Json)).unwrap();
        assert_eq!(json["process"], "web");
        assert_eq!(json["instance"], 1);
        assert_eq!(json["stream"], "stderr");
        assert_eq!(json["message"], "a \"q\" \u{fffd}");
        assert!(json["timestamp"].as_str().unwrap().ends_with('Z'));
    }
}
