//! Watches plugin and Python files and reports each new version of one once it is complete.
//!
//! Owns the `notify` watcher (with `notify-debouncer-full`) and the rule for "complete": after a
//! debounced create, write, rename or close-write of a watched name, the file must exist, be a
//! regular file, and have no writer left open on it (below). A file that is whole by the last
//! event (a new hard link, a rename onto the name, its writer's CLOSE_WRITE) is taken at the
//! first look; otherwise it must also keep the same identity, size and mtime across two looks
//! [`LOOK`] apart. It does not own what happens next (loading, checking,
//! swapping): the receiver gets only the path.
//!
//! Why these rules (../shared/notes/runtime-facts.md, "How cargo replaces a plugin library"):
//! - Cargo replaces `target/debug/libx.so` by DELETE then CREATE of a hard link to the finished
//!   `deps/` file, so an inotify watch on the file itself would die with the old inode: we watch
//!   each file's folder, non-recursively, and filter by name. Between the DELETE and the CREATE
//!   the name is briefly missing, which is not "the plugin was removed": a removal alone yields
//!   nothing, and a name that stays missing is given up after [`MISSING_GRACE`].
//! - A build that copies instead (another filesystem) shows CREATE, MODIFY…, CLOSE_WRITE, and a
//!   slow writer can pause for longer than any stability window. So after a create (of a file
//!   with one link) or a write, we also wait for the CLOSE_WRITE. A new hard link (cargo) or a
//!   rename onto the name is complete when it appears. Should that close never be seen (a link
//!   whose other name was removed at once, say), the file is taken after [`WRITER_PATIENCE`]
//!   without events.
//! - The debouncer may report one change as several batches (a long copy). Every event for a
//!   name merges into one pending check, and a version (device, inode, size, mtime) already
//!   reported, or the one there at start, is not reported again: one change, one path.

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};
use notify::RecursiveMode;
use notify_debouncer_full::{new_debouncer, DebounceEventResult, Debouncer, RecommendedCache};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// Time between the two looks at a file that must agree before it counts as stable.
pub const LOOK: Duration = Duration::from_millis(20);

/// How long a watched name may stay missing after an event before the change is given up (a
/// delete that no create follows).
pub const MISSING_GRACE: Duration = Duration::from_secs(3);

/// How long to wait for the CLOSE_WRITE of a file written in place, counted from its last event,
/// before taking it anyway.
pub const WRITER_PATIENCE: Duration = Duration::from_secs(1);

/// Why the watcher could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// A path to watch is relative; the host resolves plugin and Python paths before watching.
    #[error("cannot watch `{}`: the path must be absolute", path.display())]
    RelativePath {
        /// The path as given.
        path: PathBuf,
    },
    /// The `notify` watcher or its debouncer could not be created (e.g. the inotify instance
    /// limit, `fs.inotify.max_user_instances`, is reached).
    #[error("cannot start the file watcher: {0}")]
    Start(#[source] notify::Error),
    /// A file's folder cannot be watched (it does not exist, or the inotify watch limit,
    /// `fs.inotify.max_user_watches`, is reached).
    #[error("cannot watch folder `{}` (for `{}`): {source}", folder.display(), file.display())]
    Folder {
        /// The folder.
        folder: PathBuf,
        /// The watched file in it that needed the folder.
        file: PathBuf,
        /// Why.
        source: notify::Error,
    },
    /// The thread that checks files for completeness could not be spawned.
    #[error("cannot start the file watcher's thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Watches a set of files; see the module docs. Dropping it stops watching: its threads end, and
/// the receiver from [`Watcher::start`] then reports disconnection.
pub struct Watcher {
    debouncer: Option<Debouncer<notify::RecommendedWatcher, RecommendedCache>>,
    settler: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").finish_non_exhaustive()
    }
}

/// What a debounced event says about a watched name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// The name was created: a new inode under it (a hard link, or a file being written).
    Created,
    /// Data was written through an open file: wait for its close.
    Written,
    /// A writer closed the file.
    Closed,
    /// A file was renamed onto the name: complete as it appears.
    Renamed,
    /// Something else (metadata, an overflowed event queue): look, report only a new version.
    Touched,
}

/// The trigger of an event, and the watched name it concerns (the rename's destination).
fn trigger_of(kind: &EventKind) -> Option<Trigger> {
    match kind {
        EventKind::Create(_) => Some(Trigger::Created),
        // Renamed away is, for the old name, a removal: nothing to report.
        EventKind::Modify(ModifyKind::Name(RenameMode::From)) => None,
        EventKind::Modify(ModifyKind::Name(_)) => Some(Trigger::Renamed),
        EventKind::Modify(ModifyKind::Metadata(_)) => Some(Trigger::Touched),
        EventKind::Modify(_) => Some(Trigger::Written),
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Some(Trigger::Closed),
        _ => None,
    }
}

/// Which version of a file is there: a new inode or new contents change it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: Option<SystemTime>,
}

/// A look at a file: its version and link count, or `None` when it is missing or not a regular
/// file.
fn look(path: &Path) -> Option<(Version, u64)> {
    let meta = std::fs::metadata(path).ok().filter(|m| m.is_file())?;
    let version = Version {
        dev: meta.dev(),
        ino: meta.ino(),
        len: meta.len(),
        mtime: meta.modified().ok(),
    };
    Some((version, meta.nlink()))
}

/// What a pending change still waits for, besides stability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writer {
    /// Nothing.
    None,
    /// The CLOSE_WRITE of a created file, unless it turns out to be a hard link (cargo).
    CloseUnlessLinked,
    /// The CLOSE_WRITE of a file written in place.
    Close,
}

/// A watched name with a change not yet reported.
#[derive(Debug)]
struct Pending {
    last_event: Instant,
    writer: Writer,
    /// The previous look and when it was taken; `None` after a new event.
    last_look: Option<(Option<Version>, Instant)>,
    /// The last event left a whole file under the name (a rename onto it, or its writer's
    /// close), with no write since.
    whole: bool,
}

impl Pending {
    fn apply(&mut self, trigger: Trigger, now: Instant) {
        self.last_event = now;
        self.last_look = None;
        self.writer = match (trigger, self.writer) {
            (Trigger::Created, Writer::Close) => Writer::Close,
            (Trigger::Created, _) => Writer::CloseUnlessLinked,
            (Trigger::Written, _) => Writer::Close,
            (Trigger::Closed | Trigger::Renamed, _) => Writer::None,
            (Trigger::Touched, w) => w,
        };
        self.whole = match trigger {
            Trigger::Renamed | Trigger::Closed => true,
            Trigger::Created | Trigger::Written => false,
            Trigger::Touched => self.whole,
        };
    }
}

/// The checking thread's state: pending changes and the last version reported per file.
struct Settler {
    pending: HashMap<PathBuf, Pending>,
    reported: HashMap<PathBuf, Version>,
    out: Sender<PathBuf>,
}

impl Settler {
    fn trigger(&mut self, path: PathBuf, trigger: Trigger, now: Instant) {
        let entry = self.pending.entry(path).or_insert(Pending {
            last_event: now,
            writer: Writer::None,
            last_look: None,
            whole: false,
        });
        entry.apply(trigger, now);
    }

    /// Looks at every pending file that is due; reports the complete ones. Returns `false` once
    /// nobody listens any more.
    fn look_all(&mut self, now: Instant) -> bool {
        let mut done = Vec::new();
        for (path, p) in &mut self.pending {
            if p.last_look.is_some_and(|(_, at)| now.duration_since(at) < LOOK) {
                continue;
            }
            let seen = look(path);
            let quiet = now.duration_since(p.last_event);
            match seen {
                None if quiet >= MISSING_GRACE => {
                    tracing::debug!(file = %path.display(), "watched file removed and not recreated");
                    done.push((path.clone(), None));
                }
                None => p.last_look = Some((None, now)),
                Some((version, links)) => {
                    // A file that is whole needs no second look: cargo's hard link to the
                    // finished build, a file renamed into place (which the debouncer may report
                    // as its creation and its writer's close, under the new name), a copy whose
                    // writer closed it. This saves a [`LOOK`] of every reload's latency.
                    let whole = p.whole || (p.writer == Writer::CloseUnlessLinked && links > 1);
                    let stable = whole || p.last_look.is_some_and(|(v, _)| v == Some(version));
                    let writer_done = match p.writer {
                        Writer::None => true,
                        Writer::CloseUnlessLinked => links > 1,
                        Writer::Close => false,
                    } || quiet >= WRITER_PATIENCE;
                    if stable && writer_done {
                        done.push((path.clone(), Some(version)));
                    } else {
                        p.last_look = Some((Some(version), now));
                    }
                }
            }
        }
        for (path, version) in done {
            self.pending.remove(&path);
            let Some(version) = version else { continue };
            if self.reported.get(&path) == Some(&version) {
                continue;
            }
            self.reported.insert(path.clone(), version);
            tracing::debug!(file = %path.display(), "new version of a watched file is complete");
            if self.out.send(path).is_err() {
                return false;
            }
        }
        true
    }

    /// Runs until the debouncer's side of `events` is gone (the [`Watcher`] was dropped) or the
    /// receiver of the reports is.
    fn run(mut self, events: Receiver<(PathBuf, Trigger)>) {
        loop {
            let first = if self.pending.is_empty() {
                events.recv().map_err(|_| RecvTimeoutError::Disconnected)
            } else {
                events.recv_timeout(LOOK)
            };
            match first {
                Ok((path, trigger)) => self.trigger(path, trigger, Instant::now()),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            while let Ok((path, trigger)) = events.try_recv() {
                self.trigger(path, trigger, Instant::now());
            }
            if !self.look_all(Instant::now()) {
                return;
            }
        }
    }
}

impl Watcher {
    /// Watches `files` (absolute paths): each file's FOLDER is watched non-recursively, since a
    /// rebuild deletes and recreates the file (an inotify watch on the old inode dies). The
    /// receiver yields a file's path once per new version, when it is complete (module docs),
    /// at the earliest `debounce` after the change. The folders must exist; the files need not.
    pub fn start(files: &[PathBuf], debounce: Duration) -> Result<(Watcher, Receiver<PathBuf>), WatchError> {
        let mut folders = BTreeSet::new();
        for file in files {
            let folder = file
                .parent()
                .filter(|_| file.is_absolute())
                .ok_or_else(|| WatchError::RelativePath { path: file.clone() })?;
            folders.insert((folder.to_path_buf(), file.clone()));
        }
        let watched: HashSet<PathBuf> = files.iter().cloned().collect();
        // The versions there now are the ones the host loaded: not news. Taken before the
        // watches start, so a change after this point is an event with a version that differs.
        let reported = files
            .iter()
            .filter_map(|f| look(f).map(|(v, _)| (f.clone(), v)))
            .collect();

        let (events_tx, events_rx) = mpsc::channel();
        let handler = move |result: DebounceEventResult| match result {
            Ok(events) => {
                for event in events {
                    if event.need_rescan() {
                        // The kernel queue overflowed: any watched file may have changed.
                        for file in &watched {
                            let _ = events_tx.send((file.clone(), Trigger::Touched));
                        }
                        continue;
                    }
                    let Some(trigger) = trigger_of(&event.kind) else {
                        continue;
                    };
                    // A rename's destination is its last path; other events have one path.
                    if let Some(path) = event.paths.last().filter(|p| watched.contains(*p)) {
                        let _ = events_tx.send((path.clone(), trigger));
                    }
                }
            }
            Err(errors) => {
                for error in errors {
                    tracing::warn!(%error, "file watcher error; hot reload may miss a change");
                }
            }
        };
        let mut debouncer = new_debouncer(debounce, None, handler).map_err(WatchError::Start)?;
        let mut done = BTreeSet::new();
        for (folder, file) in folders {
            if done.insert(folder.clone()) {
                debouncer
                    .watch(&folder, RecursiveMode::NonRecursive)
                    .map_err(|source| WatchError::Folder { folder, file, source })?;
            }
        }

        let (out, reports) = mpsc::channel();
        let settler = Settler {
            pending: HashMap::new(),
            reported,
            out,
        };
        let settler = std::thread::Builder::new()
            .name("horus-watch".to_owned())
            .spawn(move || settler.run(events_rx))
            .map_err(WatchError::Thread)?;
        let watcher = Watcher {
            debouncer: Some(debouncer),
            settler: Some(settler),
        };
        Ok((watcher, reports))
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        // Stopping joins the debouncer's thread (at most one tick, a quarter of the debounce),
        // which drops the event sender; the settler then sees the channel closed and ends.
        if let Some(debouncer) = self.debouncer.take() {
            debouncer.stop();
        }
        if let Some(settler) = self.settler.take() {
            let _ = settler.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    const DEBOUNCE: Duration = Duration::from_millis(50);
    /// Far more than a change needs (debounce + a few looks); only a broken watcher waits this long.
    const WAIT: Duration = Duration::from_secs(5);
    /// How long "nothing more" is awaited after a report or an ignored change.
    const QUIET: Duration = Duration::from_millis(400);

    fn assert_quiet(rx: &Receiver<PathBuf>) {
        match rx.recv_timeout(QUIET) {
            Err(RecvTimeoutError::Timeout) => {}
            other => panic!("expected nothing, got {other:?}"),
        }
    }

    #[test]
    fn cargo_like_replacement_by_hard_link_is_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("libx.so");
        std::fs::write(&lib, b"old build").unwrap();
        let (_watcher, rx) = Watcher::start(std::slice::from_ref(&lib), DEBOUNCE).unwrap();

        // As cargo does: the new file is complete elsewhere (deps/), then the name is deleted and
        // recreated as a hard link to it.
        let built = dir.path().join("libx-0123.so");
        std::fs::write(&built, b"the new build, longer").unwrap();
        std::fs::remove_file(&lib).unwrap();
        std::fs::hard_link(&built, &lib).unwrap();

        assert_eq!(rx.recv_timeout(WAIT).unwrap(), lib);
        assert_eq!(std::fs::read(&lib).unwrap(), b"the new build, longer");
        assert_quiet(&rx);
    }

    #[test]
    fn a_file_renamed_into_place_is_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("libx.so");
        std::fs::write(&lib, b"old build").unwrap();
        let (_watcher, rx) = Watcher::start(std::slice::from_ref(&lib), DEBOUNCE).unwrap();

        let tmp = dir.path().join("libx.so.tmp");
        std::fs::write(&tmp, b"the new build, renamed").unwrap();
        std::fs::rename(&tmp, &lib).unwrap();

        assert_eq!(rx.recv_timeout(WAIT).unwrap(), lib);
        assert_eq!(std::fs::read(&lib).unwrap(), b"the new build, renamed");
        assert_quiet(&rx);
    }

    #[test]
    fn slow_copy_is_reported_once_when_complete() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("libx.so");
        let (_watcher, rx) = Watcher::start(std::slice::from_ref(&lib), DEBOUNCE).unwrap();

        // Pauses longer than the stability window and the debounce: only the close says done.
        const CHUNK: usize = 4096;
        const CHUNKS: usize = 8;
        let written = Arc::new(AtomicBool::new(false));
        let writer = {
            let (lib, written) = (lib.clone(), written.clone());
            std::thread::spawn(move || {
                let mut f = std::fs::File::create(&lib).unwrap();
                for i in 0..CHUNKS {
                    f.write_all(&[i as u8; CHUNK]).unwrap();
                    std::thread::sleep(Duration::from_millis(60));
                }
                // Set before the close, so a report before the close would find it false.
                written.store(true, Ordering::SeqCst);
                drop(f);
            })
        };
        assert_eq!(rx.recv_timeout(WAIT).unwrap(), lib);
        assert!(
            written.load(Ordering::SeqCst),
            "reported while the copy was still being written"
        );
        assert_eq!(std::fs::metadata(&lib).unwrap().len(), (CHUNK * CHUNKS) as u64);
        writer.join().unwrap();
        assert_quiet(&rx);
    }

    #[test]
    fn unrelated_file_in_the_folder_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("libx.so");
        std::fs::write(&lib, b"build").unwrap();
        let (_watcher, rx) = Watcher::start(std::slice::from_ref(&lib), DEBOUNCE).unwrap();

        let other = dir.path().join("liby.so");
        std::fs::write(&other, b"another plugin").unwrap();
        std::fs::remove_file(&other).unwrap();
        std::fs::hard_link(&lib, &other).unwrap();
        assert_quiet(&rx);
    }

    #[test]
    fn delete_without_recreate_is_not_reported() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("libx.so");
        std::fs::write(&lib, b"build").unwrap();
        let (_watcher, rx) = Watcher::start(std::slice::from_ref(&lib), DEBOUNCE).unwrap();

        std::fs::remove_file(&lib).unwrap();
        match rx.recv_timeout(Duration::from_secs(1)) {
            Err(RecvTimeoutError::Timeout) => {}
            other => panic!("expected nothing, got {other:?}"),
        }
    }

    #[test]
    fn dropping_the_watcher_closes_the_receiver() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("libx.so");
        let (watcher, rx) = Watcher::start(std::slice::from_ref(&lib), DEBOUNCE).unwrap();
        drop(watcher);
        assert_eq!(rx.recv_timeout(WAIT), Err(RecvTimeoutError::Disconnected));
    }

    #[test]
    fn relative_path_and_missing_folder_are_refused() {
        let err = Watcher::start(&[PathBuf::from("target/debug/libx.so")], DEBOUNCE).unwrap_err();
        assert!(matches!(err, WatchError::RelativePath { .. }), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("no-such-folder").join("libx.so");
        let err = Watcher::start(&[lib], DEBOUNCE).unwrap_err();
        assert!(matches!(err, WatchError::Folder { .. }), "{err}");
    }
}
