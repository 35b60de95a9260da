//! `watch = ["apps/api/src/**"]`: restart a process when a file it watches
//! changes (SPEC §2, the dev loop).
//!
//! notify (inotify on Linux) and one debounce thread, only when some process
//! has `watch`; no thread, no wake-up otherwise, and none while files are
//! quiet (the thread blocks until an event comes). Only changes count —
//! created, written, removed, renamed — never a process opening or reading
//! a file (inotify reports opens: Python reading its own script would
//! restart it). An editor's save or a `git checkout` is many events: they
//! are handed over in one batch once the files have been quiet for
//! [`DEBOUNCE`], and the loop restarts each process once per batch (and not
//! again while that restart is still queued). notify-debouncer-mini drops
//! the event kinds and notify-debouncer-full ticks every 50 ms forever,
//! hence the few lines of debouncing here. Paths under `node_modules`, `.git`,
//! `.next`, `dist`, `.turbo` and `target` never count (build output would
//! loop), nor what `watch_ignore` names. Only the folder each pattern starts
//! in is watched. Restarts go through the loop's manual restart: never
//! counted against `max_restarts`, never backed off, and a process that
//! crashed for good is started again by the next change.

use std::path::{Path, PathBuf};
use std::time::Duration;

use globset::GlobSet;
use notify::event::{AccessKind, EventKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};

/// Files quiet this long make one batch.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// Folder names whose contents never trigger a restart.
pub const IGNORED_FOLDERS: [&str; 6] = ["node_modules", ".git", ".next", "dist", ".turbo", "target"];

/// What one process watches.
pub struct Rule {
    pub process: usize,
    pub watch: Vec<String>,
    pub ignore: Vec<String>,
}

struct Compiled {
    process: usize,
    watch: GlobSet,
    ignore: GlobSet,
}

/// Keeps the watcher alive; dropping it stops watching (and the debounce thread with it).
pub struct Watch {
    _watcher: RecommendedWatcher,
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Pattern(#[from] crate::globs::PatternError),
    #[error("cannot watch files: {0}")]
    Notify(#[from] notify::Error),
    #[error("cannot start the watch thread: {0}")]
    Thread(std::io::Error),
}

/// The processes a change of `path` (relative to the config's folder) restarts.
fn restarted_by(rules: &[Compiled], path: &Path) -> Vec<usize> {
    let in_ignored_folder = path
        .components()
        .any(|c| IGNORED_FOLDERS.iter().any(|ignored| c.as_os_str() == *ignored));
    if in_ignored_folder {
        return Vec::new();
    }
    rules
        .iter()
        .filter(|rule| rule.watch.is_match(path) && !rule.ignore.is_match(path))
        .map(|rule| rule.process)
        .collect()
}

/// Starts watching; `changed` gets the processes to restart, once per batch.
/// `None` when no rule watches anything.
pub fn start(
    base: &Path,
    rules: Vec<Rule>,
    changed: impl Fn(Vec<usize>) + Send + 'static,
) -> Result<Option<Watch>, WatchError> {
    if rules.iter().all(|rule| rule.watch.is_empty()) {
        return Ok(None);
    }
    let mut roots: Vec<PathBuf> = Vec::new();
    let mut compiled = Vec::new();
    for rule in &rules {
        compiled.push(Compiled {
            process: rule.process,
            watch: crate::globs::set(&rule.watch)?,
            ignore: crate::globs::set(&rule.ignore)?,
        });
        roots.extend(
            rule.watch
                .iter()
                .map(|pattern| base.join(crate::globs::literal_prefix(pattern))),
        );
    }
    roots.sort();
    roots.dedup();
    let base = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_path_buf());
    let (events, received) = std::sync::mpsc::channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |result: notify::Result<notify::Event>| {
        let Ok(event) = result else { return };
        if is_change(&event.kind) {
            for path in event.paths {
                let _ = events.send(path);
            }
        }
    })?;
    std::thread::Builder::new()
        .name("watch".into())
        .spawn(move || {
            // Blocks while nothing happens; ends when the watcher (the sender) is dropped.
            while let Ok(first) = received.recv() {
                let mut batch = vec![first];
                while let Ok(path) = received.recv_timeout(DEBOUNCE) {
                    batch.push(path);
                }
                let mut processes: Vec<usize> = Vec::new();
                for path in &batch {
                    let path = path.strip_prefix(&base).unwrap_or(path);
                    for process in restarted_by(&compiled, path) {
                        if !processes.contains(&process) {
                            processes.push(process);
                        }
                    }
                }
                if processes.is_empty() {
                    tracing::debug!(
                        paths = batch.len(),
                        "watch: changed files that restart nothing (ignored or unwatched)"
                    );
                } else {
                    changed(processes);
                }
            }
        })
        .map_err(WatchError::Thread)?;
    for root in roots {
        if !root.exists() {
            tracing::warn!(folder = %root.display(), "watch: nothing to watch there (it does not exist)");
            continue;
        }
        watcher.watch(&root, RecursiveMode::Recursive)?;
    }
    Ok(Some(Watch { _watcher: watcher }))
}

/// A file was created, written, removed or renamed: not merely opened, read or chmod'ed.
fn is_change(kind: &EventKind) -> bool {
    match kind {
        // Metadata is atime and chmod: a read can bump atime.
        EventKind::Modify(notify::event::ModifyKind::Metadata(_)) => false,
        EventKind::Create(_) | EventKind::Remove(_) | EventKind::Modify(_) => true,
        // A write ends in CLOSE_WRITE: counted too, in case MODIFY was coalesced away.
        EventKind::Access(AccessKind::Close(notify::event::AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Any | EventKind::Other => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::globs::set;

    #[test]
    fn only_changes_count_never_an_open_or_a_read() {
        use notify::event::{AccessMode, CreateKind, DataChange, MetadataKind, ModifyKind, RemoveKind};
        assert!(is_change(&EventKind::Create(CreateKind::File)));
        assert!(is_change(&EventKind::Modify(ModifyKind::Data(DataChange::Any))));
        assert!(is_change(&EventKind::Remove(RemoveKind::File)));
        assert!(is_change(&EventKind::Access(AccessKind::Close(AccessMode::Write))));
        assert!(!is_change(&EventKind::Access(AccessKind::Open(AccessMode::Any))));
        assert!(!is_change(&EventKind::Access(AccessKind::Close(AccessMode::Read))));
        assert!(!is_change(&EventKind::Modify(ModifyKind::Metadata(
            MetadataKind::AccessTime
        ))));
    }

    #[test]
    fn build_output_and_ignored_paths_never_restart() {
        let rules = vec![
            Compiled {
                process: 0,
                watch: set(&["apps/api/src/**".to_string()]).unwrap(),
                ignore: set(&["**/*.test.ts".to_string()]).unwrap(),
            },
            Compiled {
                process: 1,
                watch: set(&["apps/**".to_string()]).unwrap(),
                ignore: set(&[]).unwrap(),
            },
        ];
        assert_eq!(restarted_by(&rules, Path::new("apps/api/src/server.ts")), [0, 1]);
        assert_eq!(restarted_by(&rules, Path::new("apps/api/src/server.test.ts")), [1]);
        assert_eq!(restarted_by(&rules, Path::new("apps/web/page.tsx")), [1]);
        for ignored in [
            "apps/api/src/node_modules/x.js",
            "apps/.next/cache",
            "apps/api/dist/a.js",
            "apps/.git/HEAD",
        ] {
            assert!(restarted_by(&rules, Path::new(ignored)).is_empty(), "{ignored}");
        }
        assert!(restarted_by(&rules, Path::new("README.md")).is_empty());
    }
}
