//! Hot reload (issue 14): a rebuilt node's plugin or Python file is picked up by the running host.
//!
//! Owns noticing that a new version of a watched file is complete ([`watch`]) and preparing the
//! new build off the scheduler thread ([`prepare`]). It does not own the swap itself: the
//! scheduler does that at a tick boundary.

pub mod prepare;
pub mod watch;

use prepare::{Prepared, Watched};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

/// How long file events settle before a change is looked at.
pub const DEBOUNCE: Duration = Duration::from_millis(50);

/// The `horus-reload` thread of a run with `--watch`: watches the plugin files of the watched
/// nodes and sends each new build, prepared ([`prepare::prepare`]: loaded and checked), to the
/// scheduler, which swaps it in at a tick boundary. Dropping it stops the thread.
pub struct Reloader {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader").finish_non_exhaustive()
    }
}

/// Why hot reload could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReloadStartError {
    /// The files cannot be watched.
    #[error("cannot watch the plugin files for hot reload: {0}")]
    Watch(#[from] watch::WatchError),
    /// The thread could not be spawned.
    #[error("cannot start the hot-reload thread: {0}")]
    Spawn(std::io::Error),
}

impl Reloader {
    /// Starts watching; the receiver goes to `scheduler::run`.
    pub fn start(watched: Vec<Watched>) -> Result<(Reloader, Receiver<Prepared>), ReloadStartError> {
        let mut files: Vec<PathBuf> = watched.iter().map(|w| w.file.clone()).collect();
        files.sort();
        files.dedup();
        let (watcher, changes) = watch::Watcher::start(&files, DEBOUNCE)?;
        let (tx, rx) = std::sync::mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("horus-reload".into())
            .spawn(move || {
                let _watcher = watcher;
                while !stopping.load(Ordering::Acquire) {
                    match changes.recv_timeout(Duration::from_millis(100)) {
                        Ok(file) => {
                            tracing::info!(file = %file.display(), "hot reload: a new build is there, loading it");
                            if tx.send(prepare::prepare(&file, &watched)).is_err() {
                                return;
                            }
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            })
            .map_err(ReloadStartError::Spawn)?;
        Ok((
            Reloader {
                stop,
                thread: Some(thread),
            },
            rx,
        ))
    }
}

impl Drop for Reloader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let Some(thread) = self.thread.take() else {
            return;
        };
        // It notices `stop` within 100 ms, unless it is inside a library that hangs while it
        // loads: then it is left behind, so that the host can still exit.
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while !thread.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if thread.is_finished() {
            let _ = thread.join();
        } else {
            tracing::warn!("the hot-reload thread is stuck loading a library; leaving it behind");
        }
    }
}
