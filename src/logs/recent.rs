//! The last lines of every process, kept in memory for `supervisor logs`
//! (SPEC §9), and a way to follow what comes next.
//!
//! Relays add what they read in batches (one lock and one copy per read of
//! a pipe, not per line), as the raw bytes of whole lines; the `name.N | `
//! prefix is added only when somebody asks, so keeping costs a memcpy. The
//! buffer is bounded in bytes; the oldest batches go first. A follower keeps
//! the sequence number of the last batch it saw and waits on a `Notify`, so
//! nothing here ever waits for a reader: a slow `logs -f` falls behind and is
//! told how many batches it missed, supervision and relays never stall.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// What is kept: about this many bytes of recent lines.
pub const CAPACITY: usize = 512 * 1024;

/// Lines one relay read at once: all of one instance.
#[derive(Debug, Clone)]
pub struct Batch {
    pub seq: u64,
    /// `name.N`, the same for every line of the batch.
    pub instance: Arc<str>,
    /// Whole lines as the process wrote them, each ending in `\n`.
    pub lines: Vec<u8>,
}

impl Batch {
    /// `name.N | line` text, one per line.
    pub fn text(&self) -> String {
        let mut text = String::with_capacity(self.lines.len() + 16);
        for line in self
            .lines
            .strip_suffix(b"\n")
            .unwrap_or(&self.lines)
            .split(|&b| b == b'\n')
        {
            push_line(&mut text, &self.instance, line);
        }
        text
    }
}

fn push_line(text: &mut String, instance: &str, line: &[u8]) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    text.push_str(instance);
    text.push_str(" | ");
    text.push_str(&String::from_utf8_lossy(line));
    text.push('\n');
}

#[derive(Default)]
struct Ring {
    batches: VecDeque<Batch>,
    bytes: usize,
    next_seq: u64,
}

#[derive(Default)]
pub struct Recent {
    ring: Mutex<Ring>,
    added: Notify,
}

impl Recent {
    pub fn new() -> Arc<Recent> {
        Arc::new(Recent::default())
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        // Nothing here can panic while holding the lock but an allocation failure.
        self.ring.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds the lines of one read: whole lines, each ending in `\n`.
    pub fn push(&self, instance: &Arc<str>, lines: &[u8]) {
        if lines.is_empty() {
            return;
        }
        let lines = lines.to_vec();
        let mut ring = self.lock();
        let seq = ring.next_seq;
        ring.next_seq += 1;
        ring.bytes += lines.len();
        ring.batches.push_back(Batch {
            seq,
            instance: instance.clone(),
            lines,
        });
        while ring.bytes > CAPACITY && ring.batches.len() > 1 {
            if let Some(old) = ring.batches.pop_front() {
                ring.bytes -= old.lines.len();
            }
        }
        drop(ring);
        self.added.notify_waiters();
    }

    /// The last `lines` lines of the instances `wanted` accepts, and the
    /// sequence number to follow from.
    pub fn tail(&self, lines: usize, wanted: impl Fn(&str) -> bool) -> (Vec<String>, u64) {
        let ring = self.lock();
        let mut out: Vec<String> = Vec::new();
        for batch in ring.batches.iter().rev() {
            if out.len() >= lines {
                break;
            }
            if !wanted(&batch.instance) {
                continue;
            }
            let body = batch.lines.strip_suffix(b"\n").unwrap_or(&batch.lines);
            for line in body.rsplit(|&b| b == b'\n') {
                if out.len() >= lines {
                    break;
                }
                let mut text = String::new();
                push_line(&mut text, &batch.instance, line);
                out.push(text);
            }
        }
        out.reverse();
        (out, ring.next_seq)
    }

    /// The batches after `seq` that `wanted` accepts, the next `seq`, and how
    /// many batches were dropped before this reader got to them.
    pub fn since(&self, seq: u64, wanted: impl Fn(&str) -> bool) -> (Vec<Batch>, u64, u64) {
        let ring = self.lock();
        let oldest = ring.batches.front().map_or(ring.next_seq, |b| b.seq);
        let missed = oldest.saturating_sub(seq);
        let batches = ring
            .batches
            .iter()
            .filter(|b| b.seq >= seq && wanted(&b.instance))
            .cloned()
            .collect();
        (batches, ring.next_seq, missed)
    }

    /// Resolves after the next `push`. Create it before reading with `since`,
    /// so a batch added in between is not waited past.
    pub fn added(&self) -> tokio::sync::futures::Notified<'_> {
        self.added.notified()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_lines_within_its_capacity_and_filters_by_instance() {
        let recent = Recent::default();
        let web: Arc<str> = "web.0".into();
        let api: Arc<str> = "api.0".into();
        recent.push(&web, b"one\ntwo\r\n");
        recent.push(&api, b"three\n");
        recent.push(&web, b"four\n");
        let (lines, next) = recent.tail(2, |i| i == "web.0");
        assert_eq!(lines, ["web.0 | two\n", "web.0 | four\n"]);
        assert_eq!(next, 3);
        let (all, _) = recent.tail(100, |_| true);
        assert_eq!(all.len(), 4);
        let (batches, next, missed) = recent.since(1, |_| true);
        assert_eq!((batches.len(), next, missed), (2, 3, 0));
        assert_eq!(batches[0].text(), "api.0 | three\n");

        let big = "x".repeat(CAPACITY / 4);
        for _ in 0..8 {
            recent.push(&web, format!("{big}\n").as_bytes());
        }
        let ring = recent.lock();
        assert!(ring.bytes <= CAPACITY, "{}", ring.bytes);
        drop(ring);
        let (_, _, missed) = recent.since(0, |_| true);
        assert!(missed >= 3, "the oldest batches went first: {missed}");
    }
}
