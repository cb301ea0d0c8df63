//! Live introspection: every running host serves its latest stats on a Unix socket, and
//! `horus stats` reads them.
//!
//! The socket lives in `$XDG_RUNTIME_DIR/horus/<namespace>/` (or `/tmp/horus-<uid>/<namespace>/`
//! without a runtime dir), a directory created 0700, as `<pid>.sock` with mode 0600: only the
//! user who runs the host can read it. The protocol is one request line (`stats`) and one JSON
//! reply ([`StatsReply`]), then the server closes the connection.
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

/// Version of [`StatsReply`]; a client refuses other versions.
pub const PROTOCOL_VERSION: u32 = 1;

/// What a host answers to `stats`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatsReply {
    /// [`PROTOCOL_VERSION`].
    pub version: u32,
    /// The host's process id.
    pub pid: u32,
    /// The manifest it runs.
    pub manifest: String,
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
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ControlServer {
    /// Serves `board` (and what `hubs` reads) on `<socket_dir(namespace)>/<pid>.sock`.
    pub fn start(
        namespace: &str,
        manifest: &Path,
        board: StatsBoard,
        hubs: Option<HubProbe>,
    ) -> std::io::Result<ControlServer> {
        let dir = socket_dir(namespace);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        let path = dir.join(format!("{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (stop2, manifest) = (stop.clone(), manifest.display().to_string());
        let started = Instant::now();
        let thread = std::thread::Builder::new()
            .name("horus-control".into())
            .spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let reply = StatsReply {
                                version: PROTOCOL_VERSION,
                                pid: std::process::id(),
                                manifest: manifest.clone(),
                                uptime_s: started.elapsed().as_secs_f64(),
                                nodes: snapshot(&board),
                                hubs: hubs.as_ref().map(|h| h()).unwrap_or_default(),
                            };
                            if let Err(e) = serve(stream, &reply) {
                                tracing::debug!("control client: {e}");
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(20));
                        }
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
            thread: Some(thread),
        })
    }
}

fn snapshot(board: &StatsBoard) -> Vec<NodeStats> {
    board.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

fn serve(stream: UnixStream, reply: &StatsReply) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut line = String::new();
    BufReader::new(&stream).take(64).read_line(&mut line)?;
    let mut stream = stream;
    if line.trim() != "stats" {
        return writeln!(stream, "{{\"error\":\"unknown request; send `stats`\"}}");
    }
    serde_json::to_writer(&mut stream, reply)?;
    stream.write_all(b"\n")
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Asks the host behind `path` for its stats.
pub fn query(path: &Path) -> Result<StatsReply, ControlError> {
    let io = |e: std::io::Error| ControlError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut stream = UnixStream::connect(path).map_err(io)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(io)?;
    stream.write_all(b"stats\n").map_err(io)?;
    let mut text = String::new();
    stream.read_to_string(&mut text).map_err(io)?;
    let reply: StatsReply = serde_json::from_str(&text).map_err(|e| ControlError::Io {
        path: path.to_path_buf(),
        reason: format!("bad reply: {e}"),
    })?;
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
