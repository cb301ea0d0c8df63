//! Live introspection: every running host serves its latest stats on a Unix socket, and
//! `horus stats` reads them.
//!
//! The socket lives in `$XDG_RUNTIME_DIR/horus/<namespace>/` (or `/tmp/horus-<uid>/<namespace>/`
//! without a runtime dir), a directory created 0700, as `<pid>.sock` with mode 0600: only the
//! user who runs the host can read it. The protocol is one JSON request line ([`Request`]: the
//! protocol version and `stats`, or `apply` with a manifest's absolute path) and one JSON reply
//! ([`StatsReply`] or [`ApplyReply`], each with the host's protocol version), then the server
//! closes the connection. Both sides check the version, so a `horus` of another protocol gets
//! a clear error, not a misread reply; a bare `stats` line (protocol 1) is still answered.
//!
//! Owns the socket, its directory and the client. Does not own the stats themselves: the
//! scheduler publishes them on a [`StatsBoard`], and the network hubs' [`HubStatus`] comes from
//! a [`HubProbe`] ([`crate::net::status`]).

use crate::net::status::{HubProbe, HubStatus};
use crate::scheduler::{NodeStats, StatsBoard};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Version of the control protocol ([`Request`], [`StatsReply`], [`ApplyReply`]); each side
/// refuses other versions. 2: JSON requests, `apply`, `manifest_path`.
pub const PROTOCOL_VERSION: u32 = 2;

/// A request to a host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    /// [`PROTOCOL_VERSION`] of the client.
    pub version: u32,
    /// What is asked.
    #[serde(flatten)]
    pub what: Ask,
}

/// What a [`Request`] asks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Ask {
    /// The node stats ([`StatsReply`]).
    Stats,
    /// Apply the manifest at `manifest` (absolute), or only plan it ([`ApplyReply`]).
    Apply {
        /// The manifest's absolute path.
        manifest: PathBuf,
        /// Plan only.
        dry_run: bool,
    },
}

/// What a host answers to `apply`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApplyReply {
    /// [`PROTOCOL_VERSION`] of the host.
    pub version: u32,
    /// The host's process id.
    pub pid: u32,
    /// `applied`, `planned`, `invalid`, `refused` or `failed` ([`crate::apply::Outcome`]).
    pub outcome: String,
    /// The summary, or the errors.
    pub text: String,
}

/// What a host answers to a request it cannot serve.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ErrorReply {
    version: u32,
    error: String,
}

/// The apply side of a host, shared by the control thread and the `--watch` thread.
pub type SharedApplier = Arc<std::sync::Mutex<crate::apply::Applier>>;

/// What a host answers to `stats`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatsReply {
    /// [`PROTOCOL_VERSION`].
    pub version: u32,
    /// The host's process id.
    pub pid: u32,
    /// The manifest it runs, as given.
    pub manifest: String,
    /// The manifest it runs, absolute (what `horus apply` matches).
    #[serde(default)]
    pub manifest_path: PathBuf,
    /// Seconds since it started.
    pub uptime_s: f64,
    /// One object per node, as in `--stats-json`.
    pub nodes: Vec<NodeStats>,
    /// The host's network hubs (none without the `network` feature or tcp hubs).
    #[serde(default)]
    pub hubs: Vec<HubStatus>,
}

/// Why `horus stats` could not read a host.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No host is running in the namespace.
    #[error("no running horus host found in namespace `{namespace}` (looked in {dir})")]
    NoHost {
        /// The namespace.
        namespace: String,
        /// Where the sockets would be.
        dir: PathBuf,
    },
    /// Several hosts run and the caller did not say which.
    #[error("{count} horus hosts are running (pids {pids}); choose one with --pid")]
    Ambiguous {
        /// How many.
        count: usize,
        /// Their pids.
        pids: String,
    },
    /// The asked-for host is not running.
    #[error("no horus host with pid {pid} in namespace `{namespace}`")]
    NoSuchPid {
        /// The pid asked for.
        pid: u32,
        /// The namespace.
        namespace: String,
    },
    /// Talking to the host failed.
    #[error("cannot read stats from {path}: {reason}")]
    Io {
        /// The socket.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// The directory of this user's control sockets for `namespace`.
pub fn socket_dir(namespace: &str) -> PathBuf {
    let base = match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("horus"),
        _ => std::env::temp_dir().join(format!("horus-{}", rustix::process::getuid().as_raw())),
    };
    base.join(namespace)
}

/// The control server of a running host; removes its socket when dropped.
pub struct ControlServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    /// The listening socket (a clone of the thread's), shut down to end its accept.
    waker: UnixListener,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ControlServer {
    /// Serves `board` (and what `hubs` reads) on `<socket_dir(namespace)>/<pid>.sock`.
    pub fn start(
        namespace: &str,
        manifest: &Path,
        board: StatsBoard,
        hubs: Option<HubProbe>,
        applier: Option<SharedApplier>,
    ) -> std::io::Result<ControlServer> {
        let dir = socket_dir(namespace);
        let path = dir.join(format!("{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        // The folder goes with the last host of the namespace (see `Drop`): one that does so
        // between our making it and binding in it makes us make it again.
        let mut tries = 0;
        let listener = loop {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)?;
            match UnixListener::bind(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && tries < 3 => tries += 1,
                bound => break bound?,
            }
        };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        // A blocking accept: an idle host's control thread does not wake at all. Dropping the
        // server shuts this clone down, which ends the accept.
        let waker = listener.try_clone()?;
        let stop = Arc::new(AtomicBool::new(false));
        let manifest_path = std::fs::canonicalize(manifest).unwrap_or_else(|_| manifest.to_path_buf());
        let (stop2, manifest) = (stop.clone(), manifest.display().to_string());
        let started = Instant::now();
        let thread = std::thread::Builder::new()
            .name("horus-control".into())
            .spawn(move || {
                // Answering `horus stats` and validating a `horus apply` are never urgent: at
                // the lowest priority they never preempt the scheduler thread.
                let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19);
                while !stop2.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok(_) if stop2.load(Ordering::Relaxed) => break,
                        Ok((stream, _)) => {
                            let stats = || StatsReply {
                                version: PROTOCOL_VERSION,
                                pid: std::process::id(),
                                manifest: manifest.clone(),
                                manifest_path: manifest_path.clone(),
                                uptime_s: started.elapsed().as_secs_f64(),
                                nodes: snapshot(&board),
                                hubs: hubs.as_ref().map(|h| h()).unwrap_or_default(),
                            };
                            if let Err(e) = serve(stream, stats, applier.as_ref()) {
                                tracing::debug!("control client: {e}");
                            }
                        }
                        Err(_) if stop2.load(Ordering::Relaxed) => break,
                        Err(e) => {
                            tracing::warn!("control socket: {e}");
                            std::thread::sleep(Duration::from_millis(200));
                        }
                    }
                }
            })?;
        Ok(ControlServer {
            path,
            stop,
            waker,
            thread: Some(thread),
        })
    }
}

fn snapshot(board: &StatsBoard) -> Vec<NodeStats> {
    board.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

fn serve(
    stream: UnixStream,
    stats: impl Fn() -> StatsReply,
    applier: Option<&SharedApplier>,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut line = String::new();
    BufReader::new(&stream).take(8192).read_line(&mut line)?;
    let mut stream = stream;
    let error = |stream: &mut UnixStream, error: String| -> std::io::Result<()> {
        serde_json::to_writer(
            &mut *stream,
            &ErrorReply {
                version: PROTOCOL_VERSION,
                error,
            },
        )?;
        stream.write_all(b"\n")
    };
    // Protocol 1's request: answered, and its client refuses the version with a clear error.
    if line.trim() == "stats" {
        serde_json::to_writer(&mut stream, &stats())?;
        return stream.write_all(b"\n");
    }
    let request: Request = match serde_json::from_str(line.trim()) {
        Ok(r) => r,
        Err(e) => return error(&mut stream, format!("unknown request ({e})")),
    };
    if request.version != PROTOCOL_VERSION {
        return error(
            &mut stream,
            format!(
                "this host speaks control protocol {PROTOCOL_VERSION}, the client {}: use the same horus version",
                request.version
            ),
        );
    }
    match request.what {
        Ask::Stats => serde_json::to_writer(&mut stream, &stats())?,
        Ask::Apply { manifest, dry_run } => {
            let Some(applier) = applier else {
                return error(&mut stream, "this host cannot apply manifests".into());
            };
            // An apply validates (it may open plugins in child processes) and waits for a tick
            // boundary: seconds at most, never a hang.
            stream.set_write_timeout(Some(Duration::from_secs(60)))?;
            let mut applier = applier.lock().unwrap_or_else(|p| p.into_inner());
            let requested = std::fs::canonicalize(&manifest).unwrap_or(manifest);
            let outcome = if requested != applier.path() {
                crate::apply::Outcome::Failed(format!(
                    "this host runs {}, not {}",
                    applier.path().display(),
                    requested.display()
                ))
            } else {
                let outcome = applier.apply(&requested, dry_run);
                crate::apply::log(&outcome);
                outcome
            };
            serde_json::to_writer(
                &mut stream,
                &ApplyReply {
                    version: PROTOCOL_VERSION,
                    pid: std::process::id(),
                    outcome: outcome.kind().into(),
                    text: outcome.text().into(),
                },
            )?
        }
    }
    stream.write_all(b"\n")
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Ends the blocked accept: shutting the listening socket down wakes it (EINVAL), and a
        // connection of our own would too.
        let _ = rustix::net::shutdown(&self.waker, rustix::net::Shutdown::Both);
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
        // The namespace's folder too, once no other host's socket is in it (`remove_dir` takes
        // only an empty folder): test runs and short-lived namespaces leave nothing behind.
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Sends `ask` to the host behind `path` and reads its reply, waiting up to `wait`; a reply of
/// another protocol version, or an error reply, is an error that says so.
fn request<T: serde::de::DeserializeOwned>(path: &Path, ask: Ask, wait: Duration) -> Result<T, ControlError> {
    let io = |e: std::io::Error| ControlError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut stream = UnixStream::connect(path).map_err(io)?;
    stream.set_read_timeout(Some(wait)).map_err(io)?;
    let mut line = serde_json::to_string(&Request {
        version: PROTOCOL_VERSION,
        what: ask,
    })
    .map_err(|e| io(e.into()))?;
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(io)?;
    let mut text = String::new();
    stream.read_to_string(&mut text).map_err(io)?;
    let bad = |reason: String| ControlError::Io {
        path: path.to_path_buf(),
        reason,
    };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(format!("bad reply: {e}")))?;
    let version = value.get("version").and_then(serde_json::Value::as_u64);
    if let Some(error) = value.get("error").and_then(serde_json::Value::as_str) {
        return Err(bad(match version {
            // Protocol 1 hosts answer anything but `stats` with an error and no version.
            None => format!(
                "the host speaks an older control protocol (1; this horus speaks {PROTOCOL_VERSION}): {error}"
            ),
            Some(_) => error.to_owned(),
        }));
    }
    if version != Some(u64::from(PROTOCOL_VERSION)) {
        return Err(bad(format!(
            "protocol version {} (this horus speaks {PROTOCOL_VERSION})",
            version.map_or("none".into(), |v| v.to_string())
        )));
    }
    serde_json::from_value(value).map_err(|e| bad(format!("bad reply: {e}")))
}

/// Asks the host behind `path` to apply (or with `dry_run` only plan) the manifest at
/// `manifest` (absolute).
pub fn apply(path: &Path, manifest: &Path, dry_run: bool) -> Result<ApplyReply, ControlError> {
    request(
        path,
        Ask::Apply {
            manifest: manifest.to_path_buf(),
            dry_run,
        },
        Duration::from_secs(60),
    )
}

/// Asks the host behind `path` for its stats.
pub fn query(path: &Path) -> Result<StatsReply, ControlError> {
    let reply: StatsReply = request(path, Ask::Stats, Duration::from_secs(5))?;
    if reply.version != PROTOCOL_VERSION {
        return Err(ControlError::Io {
            path: path.to_path_buf(),
            reason: format!(
                "protocol version {} (this horus speaks {PROTOCOL_VERSION})",
                reply.version
            ),
        });
    }
    Ok(reply)
}

/// The running hosts in `namespace` (pid, socket), removing sockets whose host is gone.
pub fn hosts(namespace: &str) -> Vec<(u32, PathBuf)> {
    let dir = socket_dir(namespace);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut found: Vec<(u32, PathBuf)> = entries
        .filter_map(|e| {
            let path = e.ok()?.path();
            let pid = path.file_name()?.to_str()?.strip_suffix(".sock")?.parse().ok()?;
            Some((pid, path))
        })
        .filter(|(_, path)| {
            // A socket nobody listens on was left by a crashed host.
            let alive = UnixStream::connect(path).is_ok();
            if !alive {
                let _ = std::fs::remove_file(path);
            }
            alive
        })
        .collect();
    found.sort();
    found
}

/// Picks the host to read: the one with `pid`, or the only one running.
pub fn pick(namespace: &str, pid: Option<u32>) -> Result<PathBuf, ControlError> {
    let hosts = hosts(namespace);
    match pid {
        Some(pid) => hosts
            .into_iter()
            .find(|(p, _)| *p == pid)
            .map(|(_, path)| path)
            .ok_or(ControlError::NoSuchPid {
                pid,
                namespace: namespace.to_owned(),
            }),
        None => match hosts.len() {
            0 => Err(ControlError::NoHost {
                namespace: namespace.to_owned(),
                dir: socket_dir(namespace),
            }),
            1 => Ok(hosts.into_iter().next().expect("one").1),
            n => Err(ControlError::Ambiguous {
                count: n,
                pids: hosts
                    .iter()
                    .map(|(p, _)| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        },
    }
}
